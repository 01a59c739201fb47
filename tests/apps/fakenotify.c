/*
 * fakenotify: a stand-in desktop notification server for the agent's
 * tests.  It owns org.freedesktop.Notifications on the session bus, logs
 * every Notify and CloseNotification to LOG, and DELAY_MS after a Notify
 * "clicks" ACTION on it (ActionInvoked), unless ACTION is "none".
 *
 * usage: fakenotify LOG ACTION DELAY_MS
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>

#define PATH	"/org/freedesktop/Notifications"
#define IFACE	"org.freedesktop.Notifications"

static FILE	*logf_;
static uint32_t	 last_id, pending;
static long long pending_at;
static long	 delay_ms;
static const char *action;

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
on_notify(sd_bus_message *m, void *arg, sd_bus_error *e)
{
	const char *app, *icon, *summary, *body;
	char **actions = NULL, **a;
	uint32_t rid;
	int32_t timeout;
	int r;

	(void)arg;
	(void)e;
	if ((r = sd_bus_message_read(m, "susss", &app, &rid, &icon, &summary,
	    &body)) < 0 || (r = sd_bus_message_read_strv(m, &actions)) < 0 ||
	    (r = sd_bus_message_skip(m, "a{sv}")) < 0 ||
	    (r = sd_bus_message_read(m, "i", &timeout)) < 0)
		return r;
	fprintf(logf_, "notify app=%s summary=%s body=%s timeout=%d actions=",
	    app, summary, body, (int)timeout);
	for (a = actions; a != NULL && *a != NULL; a++) {
		fprintf(logf_, "%s%s", a == actions ? "" : ",", *a);
		free(*a);
	}
	fprintf(logf_, "\n");
	fflush(logf_);
	free(actions);
	last_id = rid != 0 ? rid : last_id + 1;
	if (strcmp(action, "none") != 0) {
		pending = last_id;
		pending_at = now_ms() + delay_ms;
	}
	return sd_bus_reply_method_return(m, "u", last_id);
}

static int
on_close(sd_bus_message *m, void *arg, sd_bus_error *e)
{
	uint32_t id;
	int r;

	(void)arg;
	(void)e;
	if ((r = sd_bus_message_read(m, "u", &id)) < 0)
		return r;
	fprintf(logf_, "close %u\n", id);
	fflush(logf_);
	if (id == pending)
		pending = 0;
	return sd_bus_reply_method_return(m, "");
}

static int
on_caps(sd_bus_message *m, void *arg, sd_bus_error *e)
{
	(void)arg;
	(void)e;
	return sd_bus_reply_method_return(m, "as", 2, "actions", "body");
}

static const sd_bus_vtable vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Notify", "susssasa{sv}i", "u", on_notify, 0),
	SD_BUS_METHOD("CloseNotification", "u", "", on_close, 0),
	SD_BUS_METHOD("GetCapabilities", "", "as", on_caps, 0),
	SD_BUS_VTABLE_END
};

int
main(int argc, char *argv[])
{
	sd_bus *bus = NULL;
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: fakenotify LOG ACTION DELAY_MS\n");
		return 2;
	}
	if ((logf_ = fopen(argv[1], "a")) == NULL) {
		perror(argv[1]);
		return 1;
	}
	action = argv[2];
	delay_ms = strtol(argv[3], NULL, 10);
	if ((r = sd_bus_open_user(&bus)) < 0 ||
	    (r = sd_bus_add_object_vtable(bus, NULL, PATH, IFACE, vtable,
	    NULL)) < 0 ||
	    (r = sd_bus_request_name(bus, IFACE, 0)) < 0) {
		fprintf(stderr, "fakenotify: %s\n", strerror(-r));
		return 1;
	}
	fprintf(logf_, "ready\n");
	fflush(logf_);
	for (;;) {
		while ((r = sd_bus_process(bus, NULL)) > 0)
			;
		if (r < 0)
			return 0;	/* the bus went away */
		if (pending != 0 && now_ms() >= pending_at) {
			sd_bus_emit_signal(bus, PATH, IFACE, "ActionInvoked",
			    "us", pending, action);
			fprintf(logf_, "invoked %u %s\n", pending, action);
			fflush(logf_);
			pending = 0;
		}
		sd_bus_wait(bus, 50 * 1000);
	}
}
