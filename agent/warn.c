/* warn.c: the countdown warning, by notification or terminal (see warn.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-login.h>

#include "agent/warn.h"
#include "common/log.h"

#define WARN_BUS_NAME	"org.freedesktop.Notifications"
#define WARN_BUS_PATH	"/org/freedesktop/Notifications"
#define WARN_CALL_USEC	(5 * 1000 * 1000ULL)

struct vg_warn {
	sd_bus		*bus;
	sd_bus_slot	*slot_action, *slot_closed;
	uint32_t	 id;		/* the notification shown, or 0 */
	enum warn_answer answer;
	char		*session;
};

static void
warn_drop_bus(struct vg_warn *w)
{
	w->slot_action = sd_bus_slot_unref(w->slot_action);
	w->slot_closed = sd_bus_slot_unref(w->slot_closed);
	w->bus = sd_bus_flush_close_unref(w->bus);
	w->id = 0;
}

struct vg_warn *
warn_new(const char *session)
{
	struct vg_warn *w;

	if ((w = calloc(1, sizeof *w)) == NULL)
		return NULL;
	if (session != NULL && (w->session = strdup(session)) == NULL) {
		free(w);
		return NULL;
	}
	return w;
}

void
warn_free(struct vg_warn *w)
{
	if (w == NULL)
		return;
	warn_close(w);
	warn_drop_bus(w);
	free(w->session);
	free(w);
}

static int
warn_on_action(sd_bus_message *m, void *arg, sd_bus_error *e)
{
	struct vg_warn *w = arg;
	const char *key = NULL;
	uint32_t id = 0;

	(void)e;
	if (sd_bus_message_read(m, "us", &id, &key) < 0 || id == 0 ||
	    id != w->id || key == NULL)
		return 0;
	if (strcmp(key, "postpone") == 0)
		w->answer = WARN_POSTPONE;
	else if (strcmp(key, "start-now") == 0 || strcmp(key, "default") ==
	    0)
		w->answer = WARN_START_NOW;
	return 0;
}

static int
warn_on_closed(sd_bus_message *m, void *arg, sd_bus_error *e)
{
	struct vg_warn *w = arg;
	uint32_t id = 0, reason = 0;

	(void)e;
	if (sd_bus_message_read(m, "uu", &id, &reason) >= 0 && id != 0 &&
	    id == w->id)
		w->id = 0;	/* dismissed or expired: no answer */
	return 0;
}

static int
warn_open_bus(struct vg_warn *w)
{
	int r;

	if (w->bus != NULL)
		return 0;
	if ((r = sd_bus_open_user(&w->bus)) < 0) {
		w->bus = NULL;
		log_debug("no session bus for notifications: %s",
		    strerror(-r));
		return -1;
	}
	if (sd_bus_match_signal(w->bus, &w->slot_action, NULL, WARN_BUS_PATH,
	    WARN_BUS_NAME, "ActionInvoked", warn_on_action, w) < 0 ||
	    sd_bus_match_signal(w->bus, &w->slot_closed, NULL, WARN_BUS_PATH,
	    WARN_BUS_NAME, "NotificationClosed", warn_on_closed, w) < 0) {
		warn_drop_bus(w);
		return -1;
	}
	return 0;
}

/* Notification bodies are a small markup language: escape & < >. */
static char *
warn_markup(const char *s)
{
	char *o, *p;

	if ((o = malloc(strlen(s) * 5 + 1)) == NULL)
		return NULL;
	for (p = o; *s != '\0'; s++) {
		if (*s == '&')
			p = stpcpy(p, "&amp;");
		else if (*s == '<')
			p = stpcpy(p, "&lt;");
		else if (*s == '>')
			p = stpcpy(p, "&gt;");
		else
			*p++ = *s;
	}
	*p = '\0';
	return o;
}

static int
warn_notify(struct vg_warn *w, const char *summary, const char *body,
    int timeout_s, bool may_postpone)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *m = NULL, *reply = NULL;
	char *mb = NULL;
	char *actions[5];
	uint32_t id = 0;
	int r, k = 0, rc = -1;

	if (warn_open_bus(w) == -1)
		return -1;
	if (may_postpone) {
		actions[k++] = "postpone";
		actions[k++] = "Postpone";
	}
	actions[k++] = "start-now";
	actions[k++] = "Start now";
	actions[k] = NULL;
	if ((mb = warn_markup(body)) == NULL)
		goto out;
	if ((r = sd_bus_message_new_method_call(w->bus, &m, WARN_BUS_NAME,
	    WARN_BUS_PATH, WARN_BUS_NAME, "Notify")) < 0 ||
	    (r = sd_bus_message_append(m, "susss", "vigil", w->id,
	    "drive-harddisk", summary, mb)) < 0 ||
	    (r = sd_bus_message_append_strv(m, actions)) < 0 ||
	    (r = sd_bus_message_open_container(m, 'a', "{sv}")) < 0 ||
	    (r = sd_bus_message_append(m, "{sv}", "urgency", "y", 2)) < 0 ||
	    (r = sd_bus_message_close_container(m)) < 0 ||
	    (r = sd_bus_message_append(m, "i", timeout_s > 0 ?
	    timeout_s * 1000 : -1)) < 0) {
		log_debug("notification: %s", strerror(-r));
		goto out;
	}
	if ((r = sd_bus_call(w->bus, m, WARN_CALL_USEC, &e, &reply)) < 0) {
		log_debug("no notification server: %s", e.message != NULL ?
		    e.message : strerror(-r));
		if (r != -ENOENT && !sd_bus_error_has_name(&e,
		    SD_BUS_ERROR_SERVICE_UNKNOWN))
			warn_drop_bus(w);	/* retry the bus next time */
		goto out;
	}
	if (sd_bus_message_read(reply, "u", &id) < 0 || id == 0)
		goto out;
	w->id = id;
	w->answer = WARN_NONE;
	rc = 0;
out:
	sd_bus_error_free(&e);
	sd_bus_message_unref(m);
	sd_bus_message_unref(reply);
	free(mb);
	return rc;
}

static void
warn_terminal(struct vg_warn *w, const char *summary, const char *body)
{
	char path[96], *tty = NULL, *msg = NULL;
	int fd = -1, n;

	if (w->session != NULL && sd_session_get_tty(w->session, &tty) >= 0 &&
	    tty != NULL && strchr(tty, '/') == NULL) {
		snprintf(path, sizeof path, "/dev/%s", tty);
		fd = open(path, O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	}
	free(tty);
	if (fd == -1)
		fd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_NONBLOCK |
		    O_CLOEXEC);
	if (fd != -1 && !isatty(fd)) {
		close(fd);
		fd = -1;
	}
	n = asprintf(&msg, "\r\n\a*** vigil: %s ***\r\n%s\r\n\r\n", summary,
	    body);
	if (n > 0)
		(void)!write(fd != -1 ? fd : 2, msg, (size_t)n);
	if (fd != -1) {
		close(fd);
		/* The log has it too when stderr is the journal. */
		log_info("%s: %s", summary, body);
	}
	free(n > 0 ? msg : NULL);
}

int
warn_show(struct vg_warn *w, const char *summary, const char *body,
    int timeout_s, bool may_postpone)
{
	if (warn_notify(w, summary, body, timeout_s, may_postpone) == 0)
		return 1;
	warn_terminal(w, summary, body);
	return 0;
}

void
warn_close(struct vg_warn *w)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;

	if (w->bus != NULL && w->id != 0)
		(void)sd_bus_call_method(w->bus, WARN_BUS_NAME, WARN_BUS_PATH,
		    WARN_BUS_NAME, "CloseNotification", &e, NULL, "u", w->id);
	sd_bus_error_free(&e);
	w->id = 0;
	w->answer = WARN_NONE;
}

int
warn_fd(struct vg_warn *w)
{
	return w != NULL && w->bus != NULL ? sd_bus_get_fd(w->bus) : -1;
}

short
warn_events(struct vg_warn *w)
{
	int ev;

	if (w == NULL || w->bus == NULL || (ev = sd_bus_get_events(w->bus)) <
	    0)
		return POLLIN;
	return (short)ev;
}

enum warn_answer
warn_process(struct vg_warn *w)
{
	enum warn_answer a;
	int r, guard = 0;

	if (w == NULL || w->bus == NULL)
		return WARN_NONE;
	while ((r = sd_bus_process(w->bus, NULL)) > 0 && guard++ < 1000)
		;
	if (r < 0) {
		log_debug("session bus: %s", strerror(-r));
		warn_drop_bus(w);
	}
	a = w->answer;
	w->answer = WARN_NONE;
	return a;
}

char *
warn_join_names(const char *const *names, size_t n)
{
	size_t len = 1, i;
	char *s, *p;

	for (i = 0; i < n; i++)
		len += strlen(names[i]) + 5;
	if ((s = malloc(len)) == NULL)
		return NULL;
	p = s;
	*p = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			p = stpcpy(p, i == n - 1 ? " and " : ", ");
		p = stpcpy(p, names[i]);
	}
	return s;
}
