/* closer.c: closing apps gracefully and reopening them (see closer.h). */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef VIGIL_HAVE_X11
#include <X11/Xatom.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#endif

#include "agent/apps.h"
#include "agent/closer.h"
#include "common/err.h"
#include "common/log.h"

extern char **environ;

#define CLOSER_KILL_WAIT_MS	5000	/* after SIGKILL */
#define CLOSER_X11_WAIT_MS	10000	/* the X11 helper must be done */
#define CLOSER_TICK_MS		100

static int64_t
closer_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- pidfds ---- */

static int
closer_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static int
closer_pidfd_signal(int pfd, int sig)
{
#ifdef SYS_pidfd_send_signal
	return (int)syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/* One process we wait for. */
struct closer_proc {
	pid_t		 pid;
	uint64_t	 start;
	int		 pfd;		/* -1: use the start time */
	bool		 alive;
};

static bool
closer_alive(struct closer_proc *p)
{
	struct pollfd pf;

	if (!p->alive)
		return false;
	if (p->pfd >= 0) {
		pf.fd = p->pfd;
		pf.events = POLLIN;
		if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLIN | POLLHUP)))
			p->alive = false;
		/* a zombie child of ours is gone for us too */
		if (p->alive && apps_start_time(p->pid) != p->start)
			p->alive = false;
	} else if (apps_start_time(p->pid) != p->start)
		p->alive = false;
	if (!p->alive && p->pfd >= 0) {
		close(p->pfd);
		p->pfd = -1;
	}
	return p->alive;
}

static void
closer_signal(struct closer_proc *p, int sig)
{
	if (!closer_alive(p))
		return;
	if (p->pfd >= 0)
		(void)closer_pidfd_signal(p->pfd, sig);
	else if (apps_start_time(p->pid) == p->start)
		(void)kill(p->pid, sig);
}

/* Open the app's processes that are still the ones we found. */
static struct closer_proc *
closer_procs(const struct vg_app *a, size_t *np)
{
	struct closer_proc *v;
	size_t i;

	*np = 0;
	if ((v = calloc(a->npids > 0 ? a->npids : 1, sizeof *v)) == NULL)
		return NULL;
	for (i = 0; i < a->npids; i++) {
		v[i].pid = a->pids[i];
		v[i].start = a->starts[i];
		v[i].pfd = closer_pidfd_open(a->pids[i]);
		/* checked after opening: the pidfd then names this very
		 * process, or it is already gone */
		v[i].alive = apps_start_time(a->pids[i]) == a->starts[i];
		if (!v[i].alive && v[i].pfd >= 0) {
			close(v[i].pfd);
			v[i].pfd = -1;
		}
	}
	*np = a->npids;
	return v;
}

static void
closer_procs_free(struct closer_proc *v, size_t n)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++)
		if (v[i].pfd >= 0)
			close(v[i].pfd);
	free(v);
}

static bool
closer_any_alive(struct closer_proc *v, size_t n)
{
	bool any = false;
	size_t i;

	for (i = 0; i < n; i++)
		if (closer_alive(&v[i]))
			any = true;
	return any;
}

/* ---- X11 ---- */

#ifdef VIGIL_HAVE_X11
bool
closer_have_x11(void)
{
	return true;
}

static long
closer_x11_cardinal(Display *d, Window w, Atom prop, Atom type, bool *ok)
{
	unsigned long n = 0, after;
	unsigned char *data = NULL;
	Atom got;
	int fmt;
	long v = 0;

	*ok = false;
	if (XGetWindowProperty(d, w, prop, 0, 1, False, type, &got, &fmt, &n,
	    &after, &data) == Success && data != NULL && got == type &&
	    fmt == 32 && n == 1) {
		v = (long)*(unsigned long *)data;
		*ok = true;
	}
	if (data != NULL)
		XFree(data);
	return v;
}

static bool
closer_x11_has_prop(Display *d, Window w, Atom prop)
{
	unsigned long n = 0, after;
	unsigned char *data = NULL;
	Atom got = None;
	int fmt;

	if (XGetWindowProperty(d, w, prop, 0, 0, False, AnyPropertyType, &got,
	    &fmt, &n, &after, &data) != Success)
		return false;
	if (data != NULL)
		XFree(data);
	return got != None;
}

static int
closer_x11_ignore(Display *d, XErrorEvent *e)
{
	(void)d;
	(void)e;
	return 0;	/* windows vanish while we look: not our problem */
}

struct closer_x11 {
	Display		*d;
	const struct vg_app *app;
	bool		 wm;
	Atom		 pid_atom, state, protocols, del, close;
	int		 asked, unreachable;
	Window		 done[256];
	int		 ndone;
};

static void
closer_x11_window(struct closer_x11 *x, Window w, int depth)
{
	XWindowAttributes wa;
	Window root, parent, *kids = NULL;
	unsigned int nk = 0, i;
	Atom *protos = NULL;
	XEvent ev;
	long pid;
	bool ok, mine = false, top, del = false;
	int np = 0, k;
	size_t j;

	pid = closer_x11_cardinal(x->d, w, x->pid_atom, XA_CARDINAL, &ok);
	for (j = 0; ok && j < x->app->npids && !mine; j++)
		mine = x->app->pids[j] == (pid_t)pid;
	if (mine && XGetWindowAttributes(x->d, w, &wa) &&
	    !wa.override_redirect) {
		top = closer_x11_has_prop(x->d, w, x->state) ||
		    (depth == 1 && wa.map_state == IsViewable);
		for (k = 0; k < x->ndone; k++)
			if (x->done[k] == w)
				top = false;
		if (top && x->ndone < (int)(sizeof x->done /
		    sizeof x->done[0])) {
			x->done[x->ndone++] = w;
			memset(&ev, 0, sizeof ev);
			ev.xclient.type = ClientMessage;
			ev.xclient.format = 32;
			ev.xclient.window = w;
			if (x->wm) {
				ev.xclient.message_type = x->close;
				ev.xclient.data.l[0] = CurrentTime;
				ev.xclient.data.l[1] = 2; /* as a pager */
				XSendEvent(x->d, DefaultRootWindow(x->d),
				    False, SubstructureRedirectMask |
				    SubstructureNotifyMask, &ev);
				x->asked++;
			} else {
				if (XGetWMProtocols(x->d, w, &protos, &np)) {
					for (k = 0; k < np; k++)
						if (protos[k] == x->del)
							del = true;
					XFree(protos);
				}
				if (del) {
					ev.xclient.message_type =
					    x->protocols;
					ev.xclient.data.l[0] = (long)x->del;
					ev.xclient.data.l[1] = CurrentTime;
					XSendEvent(x->d, w, False,
					    NoEventMask, &ev);
					x->asked++;
				} else
					x->unreachable++;
			}
		}
	}
	if (depth >= 3 || !XQueryTree(x->d, w, &root, &parent, &kids, &nk))
		return;
	for (i = 0; i < nk; i++)
		closer_x11_window(x, kids[i], depth + 1);
	if (kids != NULL)
		XFree(kids);
}

/* In a child process: ask; write "count reason" to fd. */
static void
closer_x11_child(const struct vg_app *a, const char *dpy_name, int fd)
{
	struct closer_x11 x;
	Window root, *kids = NULL, parent, wmw;
	unsigned int nk = 0, i;
	char out[320];
	bool ok;
	int n;

	XSetErrorHandler(closer_x11_ignore);
	memset(&x, 0, sizeof x);
	x.app = a;
	if ((x.d = XOpenDisplay(dpy_name)) == NULL) {
		n = snprintf(out, sizeof out, "0 cannot open display %s to "
		    "reach its windows", dpy_name);
		goto out;
	}
	x.pid_atom = XInternAtom(x.d, "_NET_WM_PID", False);
	x.state = XInternAtom(x.d, "WM_STATE", False);
	x.protocols = XInternAtom(x.d, "WM_PROTOCOLS", False);
	x.del = XInternAtom(x.d, "WM_DELETE_WINDOW", False);
	x.close = XInternAtom(x.d, "_NET_CLOSE_WINDOW", False);
	root = DefaultRootWindow(x.d);
	wmw = (Window)closer_x11_cardinal(x.d, root, XInternAtom(x.d,
	    "_NET_SUPPORTING_WM_CHECK", False), XA_WINDOW, &ok);
	if (ok)
		x.wm = (Window)closer_x11_cardinal(x.d, wmw, XInternAtom(x.d,
		    "_NET_SUPPORTING_WM_CHECK", False), XA_WINDOW, &ok) ==
		    wmw && ok;
	if (XQueryTree(x.d, root, &root, &parent, &kids, &nk)) {
		for (i = 0; i < nk; i++)
			closer_x11_window(&x, kids[i], 1);
		if (kids != NULL)
			XFree(kids);
	}
	XSync(x.d, False);
	if (x.asked > 0)
		n = snprintf(out, sizeof out, "%d %s", x.asked, x.wm ?
		    "_NET_CLOSE_WINDOW" : "WM_DELETE_WINDOW");
	else if (x.unreachable > 0)
		n = snprintf(out, sizeof out, "0 its windows on display %s "
		    "take no WM_DELETE_WINDOW and no window manager runs",
		    dpy_name);
	else
		n = snprintf(out, sizeof out, "0 no window of its own on "
		    "display %s (it may be on another display, or on "
		    "Wayland)", dpy_name);
	XCloseDisplay(x.d);
out:
	if (n > 0)
		(void)!write(fd, out, (size_t)n < sizeof out ? (size_t)n :
		    sizeof out - 1);
}

/*
 * Send the close requests for a from a helper process, so that a display
 * that dies under us (Xlib exits on I/O errors) costs the helper, never
 * the agent.  Returns the number of windows asked; 0 with why.
 */
static int
closer_x11_request(const struct vg_app *a, char *why, size_t whylen)
{
	const char *dpy_name;
	char buf[320];
	struct pollfd pf;
	int64_t deadline;
	size_t got = 0;
	ssize_t r;
	pid_t pid;
	int p[2], st, asked = 0, rc;

	dpy_name = a->display != NULL ? a->display : getenv("DISPLAY");
	if (dpy_name == NULL || *dpy_name == '\0') {
		snprintf(why, whylen, "it has a display connection but no "
		    "DISPLAY is known to reach its windows; set close-method "
		    "= term to send it SIGTERM");
		return 0;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		return 0;
	}
	fflush(NULL);
	if ((pid = fork()) == -1) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return 0;
	}
	if (pid == 0) {
		close(p[0]);
		closer_x11_child(a, dpy_name, p[1]);
		_exit(0);
	}
	close(p[1]);
	deadline = closer_now() + CLOSER_X11_WAIT_MS;
	for (;;) {
		pf.fd = p[0];
		pf.events = POLLIN;
		rc = poll(&pf, 1, (int)(deadline > closer_now() ? deadline -
		    closer_now() : 0));
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		r = read(p[0], buf + got, sizeof buf - 1 - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got >= sizeof buf - 1)
			break;
	}
	close(p[0]);
	buf[got] = '\0';
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		(void)waitpid(pid, &st, 0);
	}
	if (got == 0) {
		snprintf(why, whylen, "the X11 helper for display %s gave "
		    "no answer (the display server did not respond)",
		    dpy_name);
		return 0;
	}
	/* only its sign is used: garbage reads as 0, "not asked":
	 * NOLINTNEXTLINE(cert-err34-c) */
	asked = atoi(buf);
	if (asked <= 0)
		snprintf(why, whylen, "%.*s", (int)whylen - 1,
		    strchr(buf, ' ') != NULL ? strchr(buf, ' ') + 1 : buf);
	else
		snprintf(why, whylen, "%.*s", (int)whylen - 1,
		    strchr(buf, ' ') != NULL ? strchr(buf, ' ') + 1 : "");
	return asked;
}
#else
bool
closer_have_x11(void)
{
	return false;
}

static int
closer_x11_request(const struct vg_app *a, char *why, size_t whylen)
{
	(void)a;
	snprintf(why, whylen, "no X11 support: this vigil-agent was built "
	    "without libX11; set close-method = term to send it SIGTERM");
	return 0;
}
#endif

/* ---- closing ---- */

const char *
closer_plan(const struct vg_app *app, enum closer_method method, char *why,
    size_t whylen)
{
	if (method == CLOSER_METHOD_TERM || (!app->x11 && !app->wayland))
		return "sigterm";
	if (app->x11) {
		if (!closer_have_x11()) {
			snprintf(why, whylen, "no X11 support: this "
			    "vigil-agent was built without libX11; set "
			    "close-method = term to send it SIGTERM");
			return NULL;
		}
		if ((app->display == NULL || *app->display == '\0') &&
		    getenv("DISPLAY") == NULL) {
			snprintf(why, whylen, "it has a display connection "
			    "but no DISPLAY is known to reach its windows; "
			    "set close-method = term to send it SIGTERM");
			return NULL;
		}
		return "window";
	}
	snprintf(why, whylen, "it is connected to Wayland only, which has no "
	    "way to ask another program's window to close; set "
	    "close-method = term to send it SIGTERM");
	return NULL;
}

int
closer_close(const struct vg_applist *l, const struct closer_opts *o,
    struct closer_result *res, struct vg_err *err)
{
	struct closer_proc **procs = NULL;
	size_t *nprocs = NULL, i, j;
	const char *how;
	int64_t deadline, next_progress, kill_deadline;
	bool *waiting = NULL, any;
	int rc = -1, every;

	if (l->n == 0)
		return 0;
	if ((procs = calloc(l->n, sizeof *procs)) == NULL ||
	    (nprocs = calloc(l->n, sizeof *nprocs)) == NULL ||
	    (waiting = calloc(l->n, sizeof *waiting)) == NULL) {
		vg_err_sys(err, "closing apps");
		goto out;
	}
	every = (o->progress_s > 0 ? o->progress_s : 10) * 1000;
	/* Ask them all first, then wait for them together. */
	for (i = 0; i < l->n; i++) {
		const struct vg_app *a = &l->v[i];

		memset(&res[i], 0, sizeof res[i]);
		res[i].outcome = CLOSER_REFUSED;
		if ((procs[i] = closer_procs(a, &nprocs[i])) == NULL) {
			vg_err_sys(err, "closing apps");
			goto out;
		}
		if (!closer_any_alive(procs[i], nprocs[i])) {
			res[i].outcome = CLOSER_CLOSED;
			snprintf(res[i].how, sizeof res[i].how, "gone");
			continue;
		}
		how = closer_plan(a, o->method, res[i].reason,
		    sizeof res[i].reason);
		if (how == NULL)
			continue;
		if (strcmp(how, "window") == 0) {
			if (closer_x11_request(a, res[i].reason,
			    sizeof res[i].reason) <= 0)
				continue;
			res[i].reason[0] = '\0';
		} else {
			for (j = 0; j < nprocs[i]; j++)
				closer_signal(&procs[i][j], SIGTERM);
		}
		snprintf(res[i].how, sizeof res[i].how, "%s", how);
		waiting[i] = true;
	}
	deadline = closer_now() + (int64_t)(o->timeout_s > 0 ?
	    o->timeout_s : 0) * 1000;
	next_progress = closer_now() + every;
	for (;;) {
		any = false;
		for (i = 0; i < l->n; i++) {
			if (!waiting[i])
				continue;
			if (!closer_any_alive(procs[i], nprocs[i])) {
				waiting[i] = false;
				res[i].outcome = CLOSER_CLOSED;
			} else
				any = true;
		}
		if (!any || closer_now() >= deadline)
			break;
		if (o->progress != NULL && closer_now() >= next_progress) {
			o->progress(o->arg);
			next_progress = closer_now() + every;
		}
		poll(NULL, 0, CLOSER_TICK_MS);
	}
	/* What is left did not close in time. */
	any = false;
	for (i = 0; i < l->n; i++) {
		if (!waiting[i])
			continue;
		if (!o->force) {
			snprintf(res[i].reason, sizeof res[i].reason, "did not "
			    "close within %d s", o->timeout_s);
			waiting[i] = false;
			continue;
		}
		for (j = 0; j < nprocs[i]; j++)
			closer_signal(&procs[i][j], SIGKILL);
		any = true;
	}
	kill_deadline = closer_now() + CLOSER_KILL_WAIT_MS;
	while (any) {
		any = false;
		for (i = 0; i < l->n; i++) {
			if (!waiting[i])
				continue;
			if (!closer_any_alive(procs[i], nprocs[i])) {
				waiting[i] = false;
				res[i].outcome = CLOSER_KILLED;
				snprintf(res[i].how, sizeof res[i].how,
				    "sigkill");
			} else
				any = true;
		}
		if (!any)
			break;
		if (closer_now() >= kill_deadline) {
			for (i = 0; i < l->n; i++)
				if (waiting[i])
					snprintf(res[i].reason,
					    sizeof res[i].reason, "did not "
					    "close within %d s, and was still "
					    "there %d s after SIGKILL",
					    o->timeout_s,
					    CLOSER_KILL_WAIT_MS / 1000);
			break;
		}
		poll(NULL, 0, CLOSER_TICK_MS);
	}
	rc = 0;
out:
	for (i = 0; procs != NULL && nprocs != NULL && i < l->n; i++)
		closer_procs_free(procs[i], nprocs[i]);
	free(procs);
	free(nprocs);
	free(waiting);
	return rc;
}

/* ---- reopening ---- */

static const char *
closer_env_get(char *const *env, const char *key)
{
	size_t kl = strlen(key), i;

	for (i = 0; env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
			return env[i] + kl + 1;
	return NULL;
}

/* Find an executable name along a PATH list; malloc'd, or NULL. */
static char *
closer_search_path(const char *name, const char *path)
{
	char buf[PATH_MAX];
	const char *p, *e;
	struct stat st;
	size_t len;

	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; p != NULL && *p != '\0'; p = *e != '\0' ? e + 1 :
	    NULL) {
		e = strchr(p, ':');
		if (e == NULL)
			e = p + strlen(p);
		len = (size_t)(e - p);
		if (len == 0 || len + strlen(name) + 2 > sizeof buf)
			continue;
		memcpy(buf, p, len);
		buf[len] = '/';
		strcpy(buf + len + 1, name);
		if (stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(buf, X_OK) == 0)
			return strdup(buf);
	}
	return NULL;
}

bool
closer_use_systemd_run(void)
{
	struct sockaddr_un sa;
	const char *rt, *knob;
	char *sr;
	bool ok = false;
	int fd;

	/* VIGIL_AGENT_RELAUNCH=direct forces a plain fork (tests, and
	 * desktops whose user manager should not own the apps). */
	knob = getenv("VIGIL_AGENT_RELAUNCH");
	if (knob != NULL && strcmp(knob, "direct") == 0)
		return false;
	if ((rt = getenv("XDG_RUNTIME_DIR")) == NULL || *rt == '\0')
		return false;
	if ((sr = closer_search_path("systemd-run", getenv("PATH"))) == NULL)
		return false;
	free(sr);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path,
	    "%s/systemd/private", rt) >= sizeof sa.sun_path)
		return false;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return false;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

int
closer_relaunch(const struct vg_app *app, int settle_ms, pid_t *pid,
    struct vg_err *err)
{
	char *prog = NULL, *sr = NULL, **xargv = NULL, **xenv = NULL;
	char *rtvar = NULL;
	const char *home, *rt;
	size_t argc, envc, i, k;
	struct sigaction sa;
	sigset_t all;
	int64_t deadline;
	bool use_sr;
	pid_t child;
	int p[2] = { -1, -1 }, e = 0, st, sig, rc = -1, devnull;
	ssize_t r;

	*pid = -1;
	if (app->argv == NULL || app->argv[0] == NULL) {
		vg_err_set(err, VG_ERR_INVALID, "%s: no command line to "
		    "start it again", app->name);
		return -1;
	}
	for (argc = 0; app->argv[argc] != NULL; argc++)
		;
	for (envc = 0; app->env != NULL && app->env[envc] != NULL; envc++)
		;
	/* The program: argv[0] as the app was started, else its
	 * executable. */
	if (strchr(app->argv[0], '/') != NULL) {
		if (access(app->argv[0], X_OK) == 0)
			prog = strdup(app->argv[0]);
	} else
		prog = closer_search_path(app->argv[0],
		    closer_env_get(app->env, "PATH"));
	if (prog == NULL && app->exe != NULL && access(app->exe, X_OK) == 0)
		prog = strdup(app->exe);
	if (prog == NULL) {
		vg_err_set(err, VG_ERR_NOTFOUND, "%s: its program is gone "
		    "(it may have been updated or removed while it was "
		    "closed)", app->name);
		goto out;
	}
	use_sr = closer_use_systemd_run();
	if (use_sr && (sr = closer_search_path("systemd-run",
	    getenv("PATH"))) == NULL)
		use_sr = false;
	if ((xargv = calloc(argc + 8, sizeof *xargv)) == NULL ||
	    (xenv = calloc(envc + 2, sizeof *xenv)) == NULL) {
		vg_err_sys(err, "%s", app->name);
		goto out;
	}
	k = 0;
	if (use_sr) {
		xargv[k++] = "systemd-run";
		xargv[k++] = "--user";
		xargv[k++] = "--scope";
		xargv[k++] = "--quiet";
		xargv[k++] = "--collect";
		xargv[k++] = "--";
		xargv[k++] = strchr(app->argv[0], '/') == NULL ?
		    app->argv[0] : prog;
		for (i = 1; i < argc; i++)
			xargv[k++] = app->argv[i];
	} else
		for (i = 0; i < argc; i++)
			xargv[k++] = app->argv[i];
	for (i = 0; i < envc; i++)
		xenv[i] = app->env[i];
	/* systemd-run finds the user's manager through XDG_RUNTIME_DIR. */
	if (use_sr && closer_env_get(app->env, "XDG_RUNTIME_DIR") == NULL &&
	    (rt = getenv("XDG_RUNTIME_DIR")) != NULL) {
		if (asprintf(&rtvar, "XDG_RUNTIME_DIR=%s", rt) == -1) {
			rtvar = NULL;
			vg_err_sys(err, "%s", app->name);
			goto out;
		}
		xenv[envc] = rtvar;
	}
	home = closer_env_get(app->env, "HOME");
	if (pipe2(p, O_CLOEXEC) == -1) {
		vg_err_sys(err, "%s: pipe", app->name);
		goto out;
	}
	fflush(NULL);
	if ((child = fork()) == -1) {
		vg_err_sys(err, "%s: fork", app->name);
		goto out;
	}
	if (child == 0) {
		close(p[0]);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		for (sig = 1; sig < NSIG; sig++)
			(void)sigaction(sig, &sa, NULL);
		(void)setsid();
		/* The app's old terminal or pipes are gone; the agent's own
		 * must not be held open by an app for its whole life. */
		if ((devnull = open("/dev/null", O_RDWR)) != -1) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
			if (devnull > 2)
				close(devnull);
		}
		if (app->cwd == NULL || chdir(app->cwd) == -1)
			if (home == NULL || chdir(home) == -1)
				(void)!chdir("/");
		if (p[1] > 3)
			(void)close_range(3, (unsigned)p[1] - 1, 0);
		(void)close_range((unsigned)p[1] + 1, ~0U, 0);
		environ = xenv;
		execv(use_sr ? sr : prog, xargv);
		e = errno;
		(void)!write(p[1], &e, sizeof e);
		_exit(127);
	}
	close(p[1]);
	p[1] = -1;
	do
		r = read(p[0], &e, sizeof e);
	while (r == -1 && errno == EINTR);
	if (r == (ssize_t)sizeof e) {
		(void)waitpid(child, &st, 0);
		vg_err_set_at(err, VG_ERR_SYS, e, __func__, "%s: cannot start "
		    "%s: %s", app->name, use_sr ? "systemd-run" : prog,
		    strerror(e));
		goto out;
	}
	/* Watch it for a moment: systemd-run refusing, or a program that
	 * dies at once, is a failed reopen. */
	deadline = closer_now() + (settle_ms > 0 ? settle_ms : 0);
	for (;;) {
		if (waitpid(child, &st, WNOHANG) == child) {
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				break;	/* done already, and happy */
			if (WIFEXITED(st))
				vg_err_set(err, VG_ERR_SYS, "%s: exited at "
				    "once with status %d%s", app->name,
				    WEXITSTATUS(st), use_sr ? " (under "
				    "systemd-run --user --scope)" : "");
			else
				vg_err_set(err, VG_ERR_SYS, "%s: killed at "
				    "once by signal %d", app->name,
				    WTERMSIG(st));
			goto out;
		}
		if (closer_now() >= deadline)
			break;
		poll(NULL, 0, 20);
	}
	*pid = child;
	rc = 0;
out:
	if (p[0] != -1)
		close(p[0]);
	if (p[1] != -1)
		close(p[1]);
	free(prog);
	free(sr);
	free(xargv);
	free(xenv);
	free(rtvar);
	return rc;
}
