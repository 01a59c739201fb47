/*
 * apps.h: finding the user's apps that a backup must close.
 *
 * The session agent runs as one user and looks only at that user's
 * processes (real uid equal to the agent's).  A process counts when it
 * holds an open regular file, or a non-executable mapping of one, under one
 * of the sources (as fuser does: /proc/PID/fd and /proc/PID/maps), or when
 * its executable name (comm, the basename of its executable, the basename of
 * argv[0]) is one of the names asked for.
 *
 * An *app* is such a process lifted to its top-most ancestor of the same uid
 * that belongs with it: a parent in the same process group, or, where the
 * child sits in a dedicated systemd scope or service (not a login session's
 * scope), a parent in the same cgroup that is not a session leader.  Lifting
 * stops at a session leader, at pid 1, at a systemd user manager, and before
 * the agent and its ancestors, which are never part of an app, and before
 * a shell.  So a Firefox content process lifts to the main process,
 * soffice.bin to its launcher, but a program started from an interactive
 * shell stays itself: the shell leads another process group.
 *
 * A shell is never an app: closing it ends the user's job (or login) rather
 * than a program that saves and can be reopened.  A parent counts as a
 * shell when argv[0] starts with '-' (a login shell), or when its
 * executable, argv[0] or comm is one of sh, bash, dash, zsh, fish, ksh,
 * mksh, ash, csh, tcsh or busybox.  This covers the subshell that bash forks
 * for `cd dir && app &` (it leads the job's process group and has bash's
 * executable) and `sh -c 'app & wait'`: the app is the program under it.
 * A fork without exec of any other program still lifts (a worker to its
 * main process).
 *
 * For each app the list records what closing and reopening it needs: its
 * argv, working folder and environment (which stay inside the agent: they
 * can hold secrets), the held files, every process of the app (for window
 * matching and waiting), and whether one of them is connected to an X11 or
 * Wayland display server (a Unix socket whose peer is /tmp/.X11-unix/X<n>,
 * abstract or not, or a wayland-<n> socket).
 *
 * Ownership: apps_find() hands back a list the caller frees with
 * apps_list_free(); everything inside belongs to the list.
 */
#ifndef VIGIL_APPS_H
#define VIGIL_APPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* Held files kept per app; beyond it only nfiles grows. */
#define APPS_FILES_MAX	256

struct vg_app {
	pid_t		 pid;		/* the top-most process: the app */
	uint64_t	 start;		/* its start time (ticks since boot),
					   to tell a reused pid */
	char		*name;		/* basename of argv[0], else of the
					   executable, else comm */
	char		*exe;		/* the executable's path, or NULL */
	char	       **argv;		/* NULL-terminated, never empty */
	char		*cwd;		/* or NULL when unreadable */
	char	       **env;		/* NULL-terminated "K=V" */
	char		*display;	/* DISPLAY from env, or NULL */
	char	       **files;		/* held files under the sources (at
					   most APPS_FILES_MAX), NULL-term. */
	size_t		 nfiles;	/* all held files, even those not kept */
	pid_t		*pids;		/* every process of the app, top first */
	uint64_t	*starts;	/* their start times */
	size_t		 npids;
	bool		 x11;		/* connected to an X11 server */
	bool		 wayland;	/* connected to a Wayland compositor */
	bool		 named;		/* matched by name, not only by files */
};

struct vg_applist {
	struct vg_app	*v;
	size_t		 n;
};

struct apps_query {
	const char *const *sources;	/* absolute paths; may be empty */
	size_t		 nsources;
	const char *const *names;	/* executable names; may be empty */
	size_t		 nnames;
	uid_t		 uid;		/* whose processes: the agent's */
	pid_t		 self;		/* the agent: it and its ancestors
					   are never apps (0: getpid()) */
};

/*
 * Walk /proc and list the apps that match q, sorted by pid.  Processes that
 * vanish or cannot be read while we look are skipped.  0 with *out (never
 * NULL, maybe empty) or -1 with err (no /proc, out of memory).
 */
int	apps_find(const struct apps_query *q, struct vg_applist **out,
	    struct vg_err *err);
void	apps_list_free(struct vg_applist *l);
/* Free the members of one app (apps_list_free() does it for each). */
void	apps_app_clear(struct vg_app *a);
/* Move a->* into a new list entry of l; a is left zeroed.  0 or -1. */
int	apps_list_take(struct vg_applist *l, struct vg_app *a);

/* True when path is src or lies beneath it (component boundary). */
bool	apps_path_under(const char *path, const char *src);

/* Start time of pid from /proc/PID/stat; 0 when it is gone. */
uint64_t apps_start_time(pid_t pid);

#endif
