/*
 * closer.h: closing the user's apps the way the user would, and reopening
 * them afterwards.
 *
 * closer_close() asks every app of a list to close at once, then waits for
 * them together:
 *   - an app connected to a display server gets a close request on each of
 *     its top-level X11 windows (those whose _NET_WM_PID is one of the app's
 *     processes): _NET_CLOSE_WINDOW to the root window when a window manager
 *     runs (_NET_SUPPORTING_WM_CHECK), else WM_DELETE_WINDOW to the window
 *     itself.  If none can be reached (no DISPLAY, Wayland only, no window of
 *     its own, a build without X11) the app is refused with the reason;
 *   - with close method "term", or for an app with no display connection,
 *     every process of the app gets SIGTERM (top first), as `systemctl stop`
 *     does for a service;
 *   - an app closed when all its processes have exited.  One that has not
 *     within the timeout is refused, unless force is set: then its processes
 *     get SIGKILL and it counts as killed.
 * Signals go through pidfds opened after checking each process's start time,
 * so a pid reused in between is never signalled.
 *
 * closer_relaunch() starts an app again with the argv, working folder and
 * environment recorded when it was found: under `systemd-run --user --scope`
 * when systemd-run exists and the user's manager answers (so the app lives
 * in its own scope, not in the agent's unit), else forked directly in a new
 * session, with stdin, stdout and stderr on /dev/null.  The new process is
 * a child of the caller, who reaps it.  These
 * details are never logged or sent anywhere.
 */
#ifndef VIGIL_CLOSER_H
#define VIGIL_CLOSER_H

#include <stdbool.h>
#include <sys/types.h>

#include "agent/apps.h"
#include "common/err.h"

enum closer_method {
	CLOSER_METHOD_WINDOW = 0,	/* window requests; SIGTERM without a
					   display connection */
	CLOSER_METHOD_TERM,		/* SIGTERM for every app */
};

enum closer_outcome {
	CLOSER_CLOSED = 0,
	CLOSER_KILLED,			/* SIGKILL under force */
	CLOSER_REFUSED,
};

struct closer_opts {
	enum closer_method method;
	int		 timeout_s;	/* wait this long for apps to exit */
	bool		 force;		/* then SIGKILL */
	/* Called about every progress_s while waiting (may be NULL). */
	void		(*progress)(void *arg);
	void		*arg;
	int		 progress_s;	/* 0: 10 s */
};

struct closer_result {
	enum closer_outcome outcome;
	char		 how[16];	/* "window", "sigterm", "sigkill",
					   "gone" (exited by itself) */
	char		 reason[256];	/* why it was refused */
};

/* Whether this build can send X11 close requests. */
bool	closer_have_x11(void);

/*
 * How an app would be asked to close under method: "window", "sigterm", or
 * NULL with *why filled when it would be refused.  Used by dry runs.
 */
const char *closer_plan(const struct vg_app *app, enum closer_method method,
	    char *why, size_t whylen);

/*
 * Close every app of l; res (l->n entries, caller's) gets each outcome.
 * Returns 0 (refusals are outcomes, not failures) or -1 with err when
 * nothing could be attempted.
 */
int	closer_close(const struct vg_applist *l, const struct closer_opts *o,
	    struct closer_result *res, struct vg_err *err);

/*
 * Start app again.  *pid gets the new process (a child of the caller).
 * settle_ms: how long to watch it afterwards; one that exits within it with
 * a failure status (systemd-run refusing, a missing program) is a failure.
 * 0 or -1 with err naming the app (never its environment).
 */
int	closer_relaunch(const struct vg_app *app, int settle_ms, pid_t *pid,
	    struct vg_err *err);

/* Whether relaunching would use systemd-run (for logs and tests). */
bool	closer_use_systemd_run(void);

#endif
