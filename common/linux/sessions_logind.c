/*
 * sessions_logind.c: sessions from systemd-logind through sd-login
 * (sessions.h), and the choice between logind and utmp.
 *
 * sd-login reads /run/systemd directly, with no D-Bus round trip; the
 * monitor is an inotify fd inside sd_login_monitor, readable on every login,
 * logout and state change.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>

#include "common/err.h"
#include "common/sessions.h"
#include "common/sessions_int.h"

#define LOGIND_SEATS_DIR	"/run/systemd/seats"

bool
sessions_logind_running(void)
{
	struct stat st;

	return sd_booted() > 0 && stat(LOGIND_SEATS_DIR, &st) == 0 &&
	    S_ISDIR(st.st_mode);
}

static void
logind_user_name(uid_t uid, char *dst, size_t dstlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res != NULL)
		sessions_copy(dst, dstlen, res->pw_name);
	else
		snprintf(dst, dstlen, "uid %lu", (unsigned long)uid);
}

/* One session's fields; -1 when it vanished while we read it. */
static int
logind_read(const char *id, struct vg_session *ss)
{
	char *str = NULL;

	sessions_copy(ss->id, sizeof ss->id, id);
	if (sd_session_get_uid(id, &ss->uid) < 0)
		return -1;
	logind_user_name(ss->uid, ss->user, sizeof ss->user);
	ss->klass = VG_SESSION_CLASS_OTHER;
	if (sd_session_get_class(id, &str) >= 0)
		ss->klass = sessions_class_parse(str);
	free(str);
	str = NULL;
	ss->type = VG_SESSION_TYPE_UNSPECIFIED;
	if (sd_session_get_type(id, &str) >= 0)
		ss->type = sessions_type_parse(str);
	free(str);
	str = NULL;
	if (sd_session_get_state(id, &str) < 0)
		return -1;
	ss->state = sessions_state_parse(str);
	free(str);
	str = NULL;
	ss->remote = sd_session_is_remote(id) > 0;
	if (sd_session_get_seat(id, &str) >= 0)
		sessions_copy(ss->seat, sizeof ss->seat, str);
	free(str);
	str = NULL;
	if (sd_session_get_display(id, &str) >= 0)
		sessions_copy(ss->display, sizeof ss->display, str);
	free(str);
	str = NULL;
	if (sd_session_get_tty(id, &str) >= 0)
		sessions_copy(ss->tty, sizeof ss->tty, str);
	free(str);
	return 0;
}

static int
logind_list(struct vg_sessions *s, struct vg_session **out, size_t *n,
    struct vg_err *err)
{
	struct vg_session *v = NULL, *slot;
	char **ids = NULL;
	size_t nv = 0, cap = 0;
	int i, count, rc = -1;

	(void)s;
	if ((count = sd_get_sessions(&ids)) < 0) {
		vg_err_sys_at(err, -count, __func__, "listing logind sessions");
		goto out;
	}
	for (i = 0; i < count; i++) {
		if (!sessions_valid_id(ids[i]))
			continue;
		if ((slot = sessions_grow(&v, &nv, &cap)) == NULL) {
			vg_err_sys(err, "listing logind sessions");
			goto out;
		}
		if (logind_read(ids[i], slot) == -1)
			nv--;		/* it ended while we read it */
	}
	if (nv == 0) {
		free(v);
		v = NULL;
	}
	*out = v;
	*n = nv;
	v = NULL;
	rc = 0;
out:
	if (ids != NULL) {
		for (i = 0; i < count; i++)
			free(ids[i]);
		free(ids);
	}
	free(v);
	return rc;
}

static int
logind_flush(struct vg_sessions *s, struct vg_err *err)
{
	int r;

	if ((r = sd_login_monitor_flush(s->impl)) < 0) {
		vg_err_sys_at(err, -r, __func__, "reading the logind monitor");
		return -1;
	}
	return 1;
}

static int
logind_session_uid(struct vg_sessions *s, const char *id, uid_t *uid,
    struct vg_err *err)
{
	int r;

	(void)s;
	if ((r = sd_session_get_uid(id, uid)) < 0) {
		if (r == -ENXIO || r == -ENOENT || r == -EINVAL)
			vg_err_set(err, VG_ERR_NOTFOUND, "logind has no "
			    "session %s", id);
		else
			vg_err_sys_at(err, -r, __func__, "asking logind who "
			    "owns session %s", id);
		return -1;
	}
	return 0;
}

static int
logind_uid_display(struct vg_sessions *s, uid_t uid, char *id, size_t idlen,
    struct vg_err *err)
{
	char *str = NULL;
	int r;

	(void)s;
	if ((r = sd_uid_get_display(uid, &str)) < 0) {
		if (r == -ENODATA || r == -ENXIO || r == -ENOENT)
			vg_err_set(err, VG_ERR_NOTFOUND, "uid %lu has no "
			    "display session", (unsigned long)uid);
		else
			vg_err_sys_at(err, -r, __func__, "asking logind for "
			    "the display session of uid %lu",
			    (unsigned long)uid);
		return -1;
	}
	sessions_copy(id, idlen, str);
	free(str);
	return 0;
}

static void
logind_free(struct vg_sessions *s)
{
	if (s->impl != NULL)
		sd_login_monitor_unref(s->impl);
	s->impl = NULL;
	s->monitor_fd = -1;	/* it was the monitor's own fd */
}

static const struct sessions_ops logind_ops = {
	.backend = VG_SESSIONS_LOGIND,
	.name = "logind",
	.list = logind_list,
	.flush = logind_flush,
	.session_uid = logind_session_uid,
	.uid_display = logind_uid_display,
	.free = logind_free,
};

struct vg_sessions *
sessions_logind_new(struct vg_err *err)
{
	struct vg_sessions *s = NULL;
	sd_login_monitor *m = NULL;
	int r;

	if (!sessions_logind_running()) {
		vg_err_set(err, VG_ERR_NOTFOUND, "systemd-logind does not run "
		    "here (no %s)", LOGIND_SEATS_DIR);
		return NULL;
	}
	if ((s = calloc(1, sizeof *s)) == NULL) {
		vg_err_sys(err, "session tracker");
		return NULL;
	}
	s->ops = &logind_ops;
	s->checks_claims = true;
	s->monitor_fd = -1;
	if ((r = sd_login_monitor_new(NULL, &m)) < 0) {
		vg_err_sys_at(err, -r, __func__, "watching logind sessions");
		sessions_free(s);
		return NULL;
	}
	s->impl = m;
	if ((s->monitor_fd = sd_login_monitor_get_fd(m)) < 0)
		s->monitor_fd = -1;
	return s;
}

struct vg_sessions *
sessions_source_new(struct vg_err *err)
{
	if (sessions_logind_running())
		return sessions_logind_new(err);
	return sessions_utmp_new(NULL, err);
}
