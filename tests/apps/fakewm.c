/*
 * fakewm: the least window manager that lets the agent's tests check the
 * _NET_CLOSE_WINDOW path.  It takes SubstructureRedirect on the root,
 * advertises itself with _NET_SUPPORTING_WM_CHECK, maps windows as asked
 * (setting WM_STATE, without frames), and on _NET_CLOSE_WINDOW logs
 * "close WINDOW" to LOG and passes WM_DELETE_WINDOW to the window, as a
 * real window manager's close does.
 *
 * usage: fakewm LOG      (writes "ready" to LOG once it manages the root)
 */
#include <X11/Xatom.h>
#include <X11/Xlib.h>

#include <stdio.h>
#include <string.h>

static int wm_taken;

static int
on_error(Display *d, XErrorEvent *e)
{
	(void)d;
	if (e->error_code == BadAccess)
		wm_taken = 1;
	return 0;
}

int
main(int argc, char *argv[])
{
	Display *d;
	Window root, check;
	Atom wmcheck, supported, closew, wmstate, protocols, del;
	long state[2] = { 1, None };	/* NormalState */
	XEvent ev, out;
	FILE *log;

	if (argc != 2 || (log = fopen(argv[1], "a")) == NULL) {
		fprintf(stderr, "usage: fakewm LOG\n");
		return 2;
	}
	if ((d = XOpenDisplay(NULL)) == NULL)
		return 1;	/* cppcheck-suppress resourceLeak ; exits */
	XSetErrorHandler(on_error);
	root = DefaultRootWindow(d);
	XSelectInput(d, root, SubstructureRedirectMask |
	    SubstructureNotifyMask);
	XSync(d, False);
	if (wm_taken) {
		fprintf(stderr, "fakewm: another window manager runs\n");
		return 1;	/* cppcheck-suppress resourceLeak ; exits */
	}
	wmcheck = XInternAtom(d, "_NET_SUPPORTING_WM_CHECK", False);
	supported = XInternAtom(d, "_NET_SUPPORTED", False);
	closew = XInternAtom(d, "_NET_CLOSE_WINDOW", False);
	wmstate = XInternAtom(d, "WM_STATE", False);
	protocols = XInternAtom(d, "WM_PROTOCOLS", False);
	del = XInternAtom(d, "WM_DELETE_WINDOW", False);
	check = XCreateSimpleWindow(d, root, -10, -10, 1, 1, 0, 0, 0);
	XChangeProperty(d, root, wmcheck, XA_WINDOW, 32, PropModeReplace,
	    (unsigned char *)&check, 1);
	XChangeProperty(d, check, wmcheck, XA_WINDOW, 32, PropModeReplace,
	    (unsigned char *)&check, 1);
	XChangeProperty(d, root, supported, XA_ATOM, 32, PropModeReplace,
	    (unsigned char *)&closew, 1);
	XSync(d, False);
	fprintf(log, "ready\n");
	fflush(log);
	for (;;) {
		XNextEvent(d, &ev);
		if (ev.type == MapRequest) {
			XChangeProperty(d, ev.xmaprequest.window, wmstate,
			    wmstate, 32, PropModeReplace,
			    (unsigned char *)state, 2);
			XMapWindow(d, ev.xmaprequest.window);
		} else if (ev.type == ConfigureRequest) {
			XWindowChanges wc;

			memset(&wc, 0, sizeof wc);
			wc.x = ev.xconfigurerequest.x;
			wc.y = ev.xconfigurerequest.y;
			wc.width = ev.xconfigurerequest.width;
			wc.height = ev.xconfigurerequest.height;
			XConfigureWindow(d, ev.xconfigurerequest.window,
			    (unsigned)ev.xconfigurerequest.value_mask &
			    (CWX | CWY | CWWidth | CWHeight), &wc);
		} else if (ev.type == ClientMessage &&
		    ev.xclient.message_type == closew) {
			fprintf(log, "close 0x%lx\n", ev.xclient.window);
			fflush(log);
			memset(&out, 0, sizeof out);
			out.xclient.type = ClientMessage;
			out.xclient.window = ev.xclient.window;
			out.xclient.message_type = protocols;
			out.xclient.format = 32;
			out.xclient.data.l[0] = (long)del;
			out.xclient.data.l[1] = CurrentTime;
			XSendEvent(d, ev.xclient.window, False, NoEventMask,
			    &out);
			XFlush(d);
		}
	}
}
