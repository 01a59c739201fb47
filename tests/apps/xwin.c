/*
 * xwin: a test app with one X11 window that closes when asked the way a
 * window manager's close button asks: WM_DELETE_WINDOW.  It sets
 * _NET_WM_PID so the agent can find its window.
 *
 * usage: xwin MARKER [FILE]
 *   Once its window is mapped it writes "mapped PID" to MARKER.  On
 *   WM_DELETE_WINDOW it appends "WM_DELETE_WINDOW PID" and exits 0; on
 *   SIGTERM it appends "SIGTERM PID" and exits 1, so a test can tell how
 *   it was closed.  FILE, when given, is held open the whole time.
 */
#include <X11/Xatom.h>
#include <X11/Xlib.h>
#include <X11/Xutil.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t term;

static void
on_term(int sig)
{
	(void)sig;
	term = 1;
}

static void
mark(const char *path, const char *what)
{
	char buf[96];
	int fd, n;

	n = snprintf(buf, sizeof buf, "%s %d\n", what, (int)getpid());
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644)) != -1) {
		(void)!write(fd, buf, (size_t)n);
		fsync(fd);
		close(fd);
	}
}

int
main(int argc, char *argv[])
{
	struct sigaction sa;
	struct pollfd pf;
	Display *d;
	Window w;
	Atom del, protocols, pid_atom;
	XEvent ev;
	long pid;
	int fd = -1;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: xwin MARKER [FILE]\n");
		return 2;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	if (argc == 3 && (fd = open(argv[2], O_RDWR | O_CREAT, 0644)) == -1) {
		perror(argv[2]);
		return 1;
	}
	if ((d = XOpenDisplay(NULL)) == NULL) {
		fprintf(stderr, "xwin: cannot open display\n");
		return 1;	/* cppcheck-suppress resourceLeak ; exits */
	}
	w = XCreateSimpleWindow(d, DefaultRootWindow(d), 10, 10, 200, 100, 1,
	    BlackPixel(d, DefaultScreen(d)), WhitePixel(d, DefaultScreen(d)));
	XStoreName(d, w, "xwin");
	del = XInternAtom(d, "WM_DELETE_WINDOW", False);
	protocols = XInternAtom(d, "WM_PROTOCOLS", False);
	pid_atom = XInternAtom(d, "_NET_WM_PID", False);
	pid = (long)getpid();
	XChangeProperty(d, w, pid_atom, XA_CARDINAL, 32, PropModeReplace,
	    (unsigned char *)&pid, 1);
	XSetWMProtocols(d, w, &del, 1);
	XSelectInput(d, w, StructureNotifyMask);
	XMapWindow(d, w);
	XFlush(d);
	for (;;) {
		if (term) {
			mark(argv[1], "SIGTERM");
			return 1;
		}
		if (XPending(d) == 0) {
			pf.fd = ConnectionNumber(d);
			pf.events = POLLIN;
			(void)poll(&pf, 1, 200);
			if (XPending(d) == 0)
				continue;
		}
		XNextEvent(d, &ev);
		if (ev.type == MapNotify)
			mark(argv[1], "mapped");
		else if (ev.type == ClientMessage &&
		    ev.xclient.message_type == protocols &&
		    (Atom)ev.xclient.data.l[0] == del) {
			mark(argv[1], "WM_DELETE_WINDOW");
			XDestroyWindow(d, w);
			XCloseDisplay(d);
			if (fd != -1)
				close(fd);
			return 0;
		}
	}
}
