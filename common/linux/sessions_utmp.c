/*
 * sessions_utmp.c: sessions from the utmpx file where logind does not run
 * (sessions.h).
 *
 * Each USER_PROCESS entry whose process still lives is a session; a logout
 * rewrites the entry as DEAD_PROCESS, and an entry left behind by a crash
 * names a process that is gone, so both drop out.  utmp knows no session
 * ids: the entry's line ("pts/3", "tty1", ":0") stands for one.  The
 * monitor is an inotify watch on the file's folder (the file may not exist
 * yet, or be replaced), filtered on the file's name.
 *
 * The glibc utmpx calls keep process-wide state: the file is named again
 * (utmpxname) before each read.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <utmpx.h>

#include "common/err.h"
#include "common/sessions.h"
#include "common/sessions_int.h"

struct sessions_utmp {
	char	*path;
	char	*base;		/* the file's name inside its folder */
};

/* Copy a fixed-size utmp field, which need not be NUL-terminated. */
static void
utmp_field(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t len = strnlen(src, srclen);

	if (len > dstlen - 1)
		len = dstlen - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static bool
utmp_pid_alive(pid_t pid)
{
	if (pid <= 0)
		return true;	/* unknown: keep it */
	return kill(pid, 0) == 0 || errno == EPERM;
}

/* One entry as a session: 0, or -1 to leave it out. */
static int
utmp_entry(const struct utmpx *u, struct vg_session *ss)
{
	struct passwd pw, *res = NULL;
	char user[sizeof u->ut_user + 1], line[sizeof u->ut_line + 1];
	char host[sizeof u->ut_host + 1], buf[4096];

	if (u->ut_type != USER_PROCESS || !utmp_pid_alive(u->ut_pid))
		return -1;
	utmp_field(user, sizeof user, u->ut_user, sizeof u->ut_user);
	utmp_field(line, sizeof line, u->ut_line, sizeof u->ut_line);
	utmp_field(host, sizeof host, u->ut_host, sizeof u->ut_host);
	if (user[0] == '\0' ||
	    getpwnam_r(user, &pw, buf, sizeof buf, &res) != 0 || res == NULL)
		return -1;	/* not a user of this system */
	ss->uid = res->pw_uid;
	sessions_copy(ss->user, sizeof ss->user, user);
	if (line[0] != '\0' && sessions_valid_id(line))
		sessions_copy(ss->id, sizeof ss->id, line);
	else
		snprintf(ss->id, sizeof ss->id, "utmp-%ld", (long)u->ut_pid);
	ss->klass = VG_SESSION_CLASS_USER;
	ss->state = VG_SESSION_ONLINE;
	if (line[0] == ':')
		sessions_copy(ss->display, sizeof ss->display, line);
	else if (host[0] == ':')
		sessions_copy(ss->display, sizeof ss->display, host);
	if (line[0] != ':')
		sessions_copy(ss->tty, sizeof ss->tty, line);
	ss->remote = host[0] != '\0' && host[0] != ':';
	if (ss->display[0] != '\0' && line[0] == ':')
		ss->type = VG_SESSION_TYPE_X11;
	else if (strncmp(line, "tty", 3) == 0 || strncmp(line, "pts/", 4) == 0)
		ss->type = VG_SESSION_TYPE_TTY;
	else
		ss->type = VG_SESSION_TYPE_UNSPECIFIED;
	return 0;
}

static int
utmp_list(struct vg_sessions *s, struct vg_session **out, size_t *n,
    struct vg_err *err)
{
	struct sessions_utmp *u = s->impl;
	struct vg_session *v = NULL, *slot;
	struct utmpx *ent;
	size_t nv = 0, cap = 0;
	int rc = -1;

	if (access(u->path, F_OK) == -1) {
		if (errno == ENOENT)
			return 0;	/* nobody ever logged on */
		vg_err_sys(err, "%s", u->path);
		return -1;
	}
	if (utmpxname(u->path) == -1) {
		vg_err_sys(err, "%s", u->path);
		return -1;
	}
	setutxent();
	errno = 0;
	while ((ent = getutxent()) != NULL) {
		if ((slot = sessions_grow(&v, &nv, &cap)) == NULL) {
			vg_err_sys(err, "listing sessions in %s", u->path);
			goto out;
		}
		if (utmp_entry(ent, slot) == -1)
			nv--;
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
	endutxent();
	free(v);
	return rc;
}

static int
utmp_flush(struct vg_sessions *s, struct vg_err *err)
{
	struct sessions_utmp *u = s->impl;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t len;
	char *p;
	int changed = 0;

	for (;;) {
		if ((len = read(s->monitor_fd, buf, sizeof buf)) == -1) {
			if (errno == EAGAIN)
				break;
			if (errno == EINTR)
				continue;
			vg_err_sys(err, "reading the watch on %s", u->path);
			return -1;
		}
		if (len == 0)
			break;
		for (p = buf; p < buf + len;
		    p += sizeof(struct inotify_event) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED |
			    IN_DELETE_SELF | IN_MOVE_SELF))
				/* two reasons, one outcome, kept apart to read:
				 * NOLINTNEXTLINE(bugprone-branch-clone) */
				changed = 1;
			else if (ev->len > 0 && strcmp(ev->name, u->base) == 0)
				changed = 1;
		}
	}
	return changed;
}

static int
utmp_session_uid(struct vg_sessions *s, const char *id, uid_t *uid,
    struct vg_err *err)
{
	struct vg_session *v = NULL;
	size_t n = 0, i;
	int rc = -1;

	if (utmp_list(s, &v, &n, err) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(v[i].id, id) == 0) {
			*uid = v[i].uid;
			rc = 0;
			break;
		}
	if (rc == -1)
		vg_err_set(err, VG_ERR_NOTFOUND, "no session %s in %s", id,
		    ((struct sessions_utmp *)s->impl)->path);
	free(v);
	return rc;
}

static int
utmp_uid_display(struct vg_sessions *s, uid_t uid, char *id, size_t idlen,
    struct vg_err *err)
{
	struct vg_session *v = NULL;
	size_t n = 0, i;
	int rc = -1;

	if (utmp_list(s, &v, &n, err) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (v[i].uid == uid && v[i].display[0] != '\0') {
			sessions_copy(id, idlen, v[i].id);
			rc = 0;
			break;
		}
	if (rc == -1)
		vg_err_set(err, VG_ERR_NOTFOUND, "uid %lu has no display "
		    "session", (unsigned long)uid);
	free(v);
	return rc;
}

static void
utmp_free(struct vg_sessions *s)
{
	struct sessions_utmp *u = s->impl;

	if (u == NULL)
		return;
	free(u->path);
	free(u);
	s->impl = NULL;
}

static const struct sessions_ops utmp_ops = {
	.backend = VG_SESSIONS_UTMP,
	.name = "utmp",
	.list = utmp_list,
	.flush = utmp_flush,
	.session_uid = utmp_session_uid,
	.uid_display = utmp_uid_display,
	.free = utmp_free,
};

struct vg_sessions *
sessions_utmp_new(const char *path, struct vg_err *err)
{
	struct vg_sessions *s = NULL;
	struct sessions_utmp *u;
	char *dir = NULL, *slash;

	if (path == NULL)
		path = _PATH_UTMPX;
	if (path[0] != '/') {
		vg_err_set(err, VG_ERR_INVALID, "utmp file \"%s\" is not an "
		    "absolute path", path);
		return NULL;
	}
	if ((s = calloc(1, sizeof *s)) == NULL) {
		vg_err_sys(err, "session tracker for %s", path);
		return NULL;
	}
	s->ops = &utmp_ops;
	s->checks_claims = false;
	s->monitor_fd = -1;
	if ((s->impl = u = calloc(1, sizeof *u)) == NULL ||
	    (u->path = strdup(path)) == NULL || (dir = strdup(path)) == NULL) {
		vg_err_sys(err, "session tracker for %s", path);
		goto fail;
	}
	slash = strrchr(dir, '/');
	u->base = u->path + (slash - dir) + 1;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((s->monitor_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1) {
		vg_err_sys(err, "watching %s", path);
		goto fail;
	}
	if (inotify_add_watch(s->monitor_fd, dir, IN_CLOSE_WRITE | IN_MODIFY |
	    IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB |
	    IN_DELETE_SELF | IN_MOVE_SELF) == -1) {
		/* No folder to watch: list at each run instead. */
		close(s->monitor_fd);
		s->monitor_fd = -1;
	}
	free(dir);
	return s;
fail:
	free(dir);
	sessions_free(s);
	return NULL;
}
