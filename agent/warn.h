/*
 * warn.h: telling the user that a backup is about to close their apps.
 *
 * warn_show() puts up a desktop notification over the session bus
 * (org.freedesktop.Notifications.Notify, through sd-bus) with the actions
 * "postpone" (when allowed) and "start-now", and listens for ActionInvoked
 * and NotificationClosed.  Where no session bus or no notification server
 * answers, the text goes to the user's terminal instead, wall-style (the
 * session's tty when logind knows it, else the agent's controlling
 * terminal, else stderr), and to the log; there is then no way to answer
 * and the countdown simply runs out.
 *
 * The caller polls warn_fd() for warn_events() and calls warn_process()
 * when it is ready (or every second: sd-bus has its own timeouts).
 *
 * Ownership: warn_new()/warn_free(); strings are copied.
 */
#ifndef VIGIL_WARN_H
#define VIGIL_WARN_H

#include <stdbool.h>

#include "common/err.h"

enum warn_answer {
	WARN_NONE = 0,		/* nothing yet, or dismissed */
	WARN_POSTPONE,
	WARN_START_NOW,
};

struct vg_warn;

/* session: the logind session id whose tty gets the fallback (may be
 * NULL).  Never fails for want of a bus: that is the fallback. */
struct vg_warn *warn_new(const char *session);
void	warn_free(struct vg_warn *w);

/*
 * Show a warning: summary and body, expiring after timeout_s.  Replaces a
 * notification still shown.  Returns 1 when a notification server took it
 * (answers may come), 0 when it went to the terminal and log.
 */
int	warn_show(struct vg_warn *w, const char *summary, const char *body,
	    int timeout_s, bool may_postpone);
/* Withdraw the notification shown, if any. */
void	warn_close(struct vg_warn *w);

/* The bus fd to poll, or -1; and the poll events it wants. */
int	warn_fd(struct vg_warn *w);
short	warn_events(struct vg_warn *w);
/* Process what arrived; the user's answer to the shown notification. */
enum warn_answer warn_process(struct vg_warn *w);

/* Join names for a message: "A", "A and B", "A, B and C" (malloc'd). */
char	*warn_join_names(const char *const *names, size_t n);

#endif
