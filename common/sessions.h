/*
 * sessions.h: who is logged on, behind one platform-neutral interface.
 *
 * A struct vg_sessions is a session source.  Three implementations:
 *   logind  (common/linux/sessions_logind.c) through sd-login: every
 *           session with its class, type, state, seat, display and tty.
 *           Logins and logouts are announced on sessions_monitor_fd() (an
 *           sd_login_monitor), so nothing polls.
 *   utmp    (common/linux/sessions_utmp.c) where logind does not run
 *           (containers, minimal systems): USER_PROCESS entries of the utmpx
 *           file whose process is still alive.  The monitor fd is an inotify
 *           watch on the file's folder.  utmp knows no session ids, classes
 *           or states: the id is the entry's line ("pts/3", ":0"), the class
 *           is user and the state online.
 *   fake    (common/sessions_fake.c) for unit tests: sessions added and
 *           removed by hand; its monitor fd is an eventfd that becomes
 *           readable on every change.
 *
 * sessions_source_new() picks logind when the system was booted with
 * systemd and logind keeps its seat folder (/run/systemd/seats), else utmp.
 *
 * Claims.  An agent tells vigild which session it runs in.  With logind
 * (sessions_checks_claims() true) vigild accepts the claim only when
 * sessions_session_uid() says the session belongs to the agent's peer uid.
 * Without logind there is nothing to check a claim against: the agent's
 * connection itself counts as a session of its uid (see quiesce.h).
 *
 * Errors: functions return 0 or -1 and fill err when given one.  An unknown
 * session is VG_ERR_NOTFOUND.
 *
 * Ownership: *_new() return a source freed with sessions_free() (NULL-safe),
 * which closes the monitor fd.  sessions_list() returns a malloc'd array the
 * caller frees with free().  Not thread-safe: one loop owns a source.
 */
#ifndef VIGIL_SESSIONS_H
#define VIGIL_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vg_err;
struct vg_sessions;

#define VG_SESSION_ID_MAX	64
#define VG_SESSION_USER_MAX	64
#define VG_SESSION_SEAT_MAX	64
#define VG_SESSION_DISPLAY_MAX	128
#define VG_SESSION_TTY_MAX	64

enum vg_session_class {
	VG_SESSION_CLASS_USER = 0,
	VG_SESSION_CLASS_GREETER,
	VG_SESSION_CLASS_LOCK_SCREEN,
	VG_SESSION_CLASS_BACKGROUND,
	VG_SESSION_CLASS_MANAGER,
	VG_SESSION_CLASS_OTHER,
};

enum vg_session_type {
	VG_SESSION_TYPE_TTY = 0,
	VG_SESSION_TYPE_X11,
	VG_SESSION_TYPE_WAYLAND,
	VG_SESSION_TYPE_MIR,
	VG_SESSION_TYPE_UNSPECIFIED,
};

enum vg_session_state {
	VG_SESSION_ACTIVE = 0,		/* in the foreground of its seat */
	VG_SESSION_ONLINE,		/* logged in, not in the foreground */
	VG_SESSION_CLOSING,		/* logged out, processes remain */
};

struct vg_session {
	char			 id[VG_SESSION_ID_MAX];
	uid_t			 uid;
	char			 user[VG_SESSION_USER_MAX];
	enum vg_session_class	 klass;
	enum vg_session_type	 type;
	enum vg_session_state	 state;
	bool			 remote;
	char			 seat[VG_SESSION_SEAT_MAX];	/* "" none */
	char			 display[VG_SESSION_DISPLAY_MAX]; /* "" none */
	char			 tty[VG_SESSION_TTY_MAX];	/* "" none */
};

/* Which implementation a source is. */
enum vg_sessions_backend {
	VG_SESSIONS_LOGIND = 0,
	VG_SESSIONS_UTMP,
	VG_SESSIONS_FAKE,
};

/* logind when it runs, else utmp on the system's utmpx file. */
struct vg_sessions *sessions_source_new(struct vg_err *err);
/* True when logind runs here (sd_booted() and /run/systemd/seats). */
bool	sessions_logind_running(void);
/* logind; NULL with err when it does not run or the monitor fails. */
struct vg_sessions *sessions_logind_new(struct vg_err *err);
/*
 * utmpx.  path NULL: the system's file.  A test passes its own file (it
 * must exist before pututxline() writes to it).  The file need not exist
 * when the source is made: a missing file means nobody is logged on, and
 * the folder's watch sees it appear.
 */
struct vg_sessions *sessions_utmp_new(const char *path, struct vg_err *err);
/* Fake: no sessions yet; claims are checked (like logind) until
 * sessions_fake_set_checks_claims(s, false). */
struct vg_sessions *sessions_fake_new(void);
void	sessions_free(struct vg_sessions *s);

enum vg_sessions_backend sessions_backend(const struct vg_sessions *s);
/* "logind", "utmp", "fake". */
const char *sessions_backend_name(const struct vg_sessions *s);
/* True when agents' claims can be checked (logind, fake by default). */
bool	sessions_checks_claims(const struct vg_sessions *s);

/*
 * Every session now, in the source's order.  *out is malloc'd (NULL when
 * *n is 0) and freed by the caller.  Sessions that vanish while being read
 * are left out.
 */
int	sessions_list(struct vg_sessions *s, struct vg_session **out, size_t *n,
	    struct vg_err *err);

/*
 * The fd that becomes readable when sessions change (-1 when the source
 * cannot watch: then list again at each run).  After it was readable, call
 * sessions_monitor_flush(): 1 when the sessions may have changed (list
 * again), 0 when the wake-up was about something else (utmp's folder holds
 * other files), -1 on error.
 */
int	sessions_monitor_fd(const struct vg_sessions *s);
int	sessions_monitor_flush(struct vg_sessions *s, struct vg_err *err);

/* The uid that owns session id.  VG_ERR_NOTFOUND when there is no such
 * session (or id is not a valid session id). */
int	sessions_session_uid(struct vg_sessions *s, const char *id, uid_t *uid,
	    struct vg_err *err);
/* The display session of uid (the graphical session logind picked for it)
 * into id (size idlen).  VG_ERR_NOTFOUND when uid has none. */
int	sessions_uid_display(struct vg_sessions *s, uid_t uid, char *id,
	    size_t idlen, struct vg_err *err);

/* A session id as the sources make them: [A-Za-z0-9._:/-]{1,63}, not
 * starting with '.' or '/', without "..". */
bool	sessions_valid_id(const char *id);
/* True for the sessions where a person may be at work: class user (or
 * other) and not closing.  Greeters, lock screens, background (cron) and
 * manager (user@) sessions do not count. */
bool	sessions_is_login(const struct vg_session *ss);

/* Names as logind spells them; "unknown" for a bad value. */
const char *sessions_class_name(enum vg_session_class c);
const char *sessions_type_name(enum vg_session_type t);
const char *sessions_state_name(enum vg_session_state st);
/* Parse logind's strings (unknown ones: OTHER, UNSPECIFIED, ONLINE). */
enum vg_session_class sessions_class_parse(const char *s);
enum vg_session_type sessions_type_parse(const char *s);
enum vg_session_state sessions_state_parse(const char *s);

/* ---- the fake (tests) ---- */

/* Add a session (copied) or replace the one with the same id; the monitor
 * fd becomes readable.  0, or -1 when memory runs out. */
int	sessions_fake_add(struct vg_sessions *s, const struct vg_session *ss);
/* Remove session id: 0, or -1 when there is no such session. */
int	sessions_fake_remove(struct vg_sessions *s, const char *id);
/* The display session of uid (NULL: none). */
int	sessions_fake_set_display(struct vg_sessions *s, uid_t uid,
	    const char *id);
void	sessions_fake_set_checks_claims(struct vg_sessions *s, bool on);
/* Make the next sessions_list() fail (as a broken source would). */
void	sessions_fake_fail_next_list(struct vg_sessions *s);

#endif
