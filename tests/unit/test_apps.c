/*
 * test_apps.c: the session agent's app finder and closer against real
 * processes: children of this test that hold files in a temp folder, the
 * holdfile and stubborn test apps, a process of another uid (as root).
 */
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/apps.h"
#include "agent/closer.h"
#include "common/err.h"

#ifndef HOLDFILE
#error HOLDFILE must name the holdfile test app
#endif
#ifndef STUBBORN
#error STUBBORN must name the stubborn test app
#endif

struct fx {
	char	 dir[64];
	char	 file[128];
	pid_t	 kids[8];
	int	 nkids;
	pid_t	 group;		/* a process group to kill, or 0 */
};

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);

	assert_non_null(fx);
	snprintf(fx->dir, sizeof fx->dir, "/tmp/vgapps.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->file, sizeof fx->file, "%s/doc.txt", fx->dir);
	*state = fx;
	return 0;
}

static void
kid_kill(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	int i;

	if (fx->group > 0)	/* a shell's job: its children too */
		kill(-fx->group, SIGKILL);
	for (i = 0; i < fx->nkids; i++)
		kid_kill(fx->kids[i]);
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void
fx_kid(struct fx *fx, pid_t pid)
{
	assert_true(fx->nkids < 8);
	fx->kids[fx->nkids++] = pid;
}

/* Wait for one byte on fd (5 s at most). */
static void
wait_ready(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char c;

	assert_int_equal(poll(&pf, 1, 5000), 1);
	assert_int_equal(read(fd, &c, 1), 1);
}

static void
ready(int fd)
{
	(void)!write(fd, "r", 1);
	close(fd);
}

/* Wait until path contains needle (5 s at most). */
static void
wait_content(const char *path, const char *needle)
{
	char buf[4096];
	ssize_t r;
	int fd, i;

	for (i = 0; i < 500; i++) {
		if ((fd = open(path, O_RDONLY)) != -1) {
			r = read(fd, buf, sizeof buf - 1);
			close(fd);
			if (r > 0) {
				buf[r] = '\0';
				if (strstr(buf, needle) != NULL)
					return;
			}
		}
		poll(NULL, 0, 10);
	}
	fail_msg("%s never contained \"%s\"", path, needle);
}

static struct vg_applist *
find(const char *src, const char *name, uid_t uid)
{
	const char *srcs[1] = { src }, *names[1] = { name };
	struct apps_query q;
	struct vg_applist *l = NULL;
	struct vg_err err;

	memset(&q, 0, sizeof q);
	q.sources = srcs;
	q.nsources = src != NULL;
	q.names = names;
	q.nnames = name != NULL;
	q.uid = uid;
	if (apps_find(&q, &l, &err) == -1)
		fail_msg("apps_find: %s", err.msg);
	assert_non_null(l);
	return l;
}

static struct vg_app *
app_of(struct vg_applist *l, pid_t pid)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->v[i].pid == pid)
			return &l->v[i];
	return NULL;
}

static bool
has_file(const struct vg_app *a, const char *path)
{
	size_t i;

	for (i = 0; a->files[i] != NULL; i++)
		if (strcmp(a->files[i], path) == 0)
			return true;
	return false;
}

static bool
has_pid(const struct vg_app *a, pid_t pid)
{
	size_t i;

	for (i = 0; i < a->npids; i++)
		if (a->pids[i] == pid)
			return true;
	return false;
}

/* Start an exec'd test app; envp may be NULL (ours), cwd may be NULL. */
static pid_t
spawn(char *const argv[], char *const envp[], const char *cwd)
{
	pid_t pid;

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		if (cwd != NULL && chdir(cwd) == -1)
			_exit(126);
		if (envp != NULL)
			execve(argv[0], argv, envp);
		else
			execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* ---- path matching ---- */

static void
test_path_under_boundary(void **state)
{
	(void)state;
	assert_true(apps_path_under("/a/b", "/a/b"));
	assert_true(apps_path_under("/a/b/c", "/a/b"));
	assert_true(apps_path_under("/a/b/c", "/a/b/"));
	assert_false(apps_path_under("/a/bc", "/a/b"));
	assert_false(apps_path_under("/a", "/a/b"));
	assert_true(apps_path_under("/x", "/"));
	assert_false(apps_path_under("socket:[1]", "/"));
	assert_false(apps_path_under("/a/b", "a/b"));
}

/* ---- finding ---- */

static void
test_find_open_file(void **state)
{
	struct fx *fx = *state;
	struct vg_applist *l;
	struct vg_app *a;
	int p[2], fd;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		fd = open(fx->file, O_RDWR | O_CREAT, 0600);
		if (fd == -1)
			_exit(1);
		ready(p[1]);
		for (;;)
			pause();
	}
	fx_kid(fx, pid);
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);

	l = find(fx->dir, NULL, getuid());
	assert_non_null(a = app_of(l, pid));
	assert_true(has_file(a, fx->file));
	assert_int_equal(a->nfiles, 1);
	assert_false(a->x11);
	assert_false(a->wayland);
	assert_false(a->named);
	assert_int_equal(a->npids, 1);
	assert_non_null(a->argv);
	assert_non_null(a->cwd);
	apps_list_free(l);

	/* A source beside it, sharing a prefix, does not match. */
	{
		char other[160];

		snprintf(other, sizeof other, "%s/do", fx->dir);
		l = find(other, NULL, getuid());
		assert_null(app_of(l, pid));
		apps_list_free(l);
	}
}

static void
test_find_mapped_file(void **state)
{
	struct fx *fx = *state;
	struct vg_applist *l;
	struct vg_app *a;
	void *m;
	int p[2], fd;
	pid_t pid;

	fd = open(fx->file, O_RDWR | O_CREAT, 0600);
	assert_true(fd != -1);
	assert_int_equal(ftruncate(fd, 4096), 0);
	close(fd);
	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		fd = open(fx->file, O_RDONLY);
		m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);	/* only the mapping holds it now */
		if (m == MAP_FAILED)
			_exit(1);
		ready(p[1]);
		for (;;)
			pause();
	}
	fx_kid(fx, pid);
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);

	l = find(fx->dir, NULL, getuid());
	assert_non_null(a = app_of(l, pid));
	assert_true(has_file(a, fx->file));
	apps_list_free(l);
}

static void
test_find_by_name(void **state)
{
	struct fx *fx = *state;
	struct vg_applist *l;
	struct vg_app *a;
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		prctl(PR_SET_NAME, "vgnamedapp");
		ready(p[1]);
		for (;;)
			pause();
	}
	fx_kid(fx, pid);
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);

	l = find(NULL, "vgnamedapp", getuid());
	assert_non_null(a = app_of(l, pid));
	assert_true(a->named);
	assert_int_equal(a->nfiles, 0);
	apps_list_free(l);

	l = find(NULL, "vgnamedap", getuid());	/* not a prefix match */
	assert_null(app_of(l, pid));
	apps_list_free(l);
	l = find(fx->dir, NULL, getuid());	/* holds nothing there */
	assert_null(app_of(l, pid));
	apps_list_free(l);
}

/* A child in its parent's process group lifts to the parent. */
static void
test_lift_to_group_leader(void **state)
{
	struct fx *fx = *state;
	struct vg_applist *l;
	struct vg_app *a;
	int p[2], fd;
	pid_t parent, child = 0;

	assert_int_equal(pipe(p), 0);
	if ((parent = fork()) == 0) {
		setpgid(0, 0);
		if ((child = fork()) == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(p[0]);
			fd = open(fx->file, O_RDWR | O_CREAT, 0600);
			if (fd == -1)
				_exit(1);
			ready(p[1]);
			for (;;)
				pause();
		}
		/* tell the test the child's pid, then wait */
		close(p[0]);
		close(p[1]);
		for (;;)
			pause();
	}
	fx_kid(fx, parent);
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);

	l = find(fx->dir, NULL, getuid());
	assert_non_null(a = app_of(l, parent));
	assert_true(has_file(a, fx->file));
	assert_int_equal(a->npids, 2);
	assert_int_equal(a->pids[0], parent);
	/* the holder itself is not an app of its own */
	assert_null(app_of(l, a->pids[1]));
	assert_true(has_pid(a, a->pids[1]));
	child = a->pids[1];
	apps_list_free(l);
	kill(child, SIGKILL);	/* the parent's child; the parent reaps */
}

/* A child that leads its own process group (as a shell's job does) is an
 * app of its own: its parent is not lifted to. */
static void
test_no_lift_across_groups(void **state)
{
	struct fx *fx = *state;
	struct vg_applist *l;
	struct vg_app *a;
	int p[2], fd;
	pid_t parent;

	assert_int_equal(pipe(p), 0);
	if ((parent = fork()) == 0) {
		setpgid(0, 0);
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			setpgid(0, 0);
			close(p[0]);
			fd = open(fx->file, O_RDWR | O_CREAT, 0600);
			if (fd == -1)
				_exit(1);
			ready(p[1]);
			for (;;)
				pause();
		}
		close(p[0]);
		close(p[1]);
		for (;;)
			pause();
	}
	fx_kid(fx, parent);
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);

	l = find(fx->dir, NULL, getuid());
	assert_null(app_of(l, parent));
	assert_int_equal(l->n >= 1, 1);
	a = NULL;
	for (size_t i = 0; i < l->n; i++)
		if (has_file(&l->v[i], fx->file))
			a = &l->v[i];
	assert_non_null(a);
	assert_int_not_equal(a->pid, parent);
	assert_int_equal(a->npids, 1);
	kill(a->pid, SIGKILL);
	apps_list_free(l);
}

/* Run shell -c script (with $0 = HOLDFILE, $1 = the held file) as the
 * leader of its own process group, as a job; the app found must be the
 * holdfile under the shell, never the shell. */
static void
check_no_lift_to_shell(struct fx *fx, const char *shell, const char *script)
{
	char *argv[] = { (char *)shell, "-c", (char *)script, HOLDFILE,
	    fx->file, NULL };
	struct vg_applist *l;
	struct vg_app *a = NULL;
	size_t i;
	pid_t sh;

	if (access(shell, X_OK) == -1)
		skip();
	if ((sh = fork()) == 0) {
		setpgid(0, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	assert_true(sh != -1);
	fx_kid(fx, sh);
	setpgid(sh, sh);	/* as the child does: no race with teardown */
	fx->group = sh;
	wait_content(fx->file, "opened by");

	l = find(fx->dir, NULL, getuid());
	assert_null(app_of(l, sh));
	for (i = 0; i < l->n; i++)
		if (has_file(&l->v[i], fx->file))
			a = &l->v[i];
	assert_non_null(a);
	assert_int_not_equal(a->pid, sh);
	assert_false(has_pid(a, sh));
	assert_string_equal(a->name, "holdfile");
	assert_int_equal(a->npids, 1);
	kill(a->pid, SIGKILL);	/* the shell's child: the shell reaps */
	apps_list_free(l);
}

/* `sh -c 'app & wait'`: the background app shares the shell's process
 * group, and the app is the program, not the shell. */
static void
test_no_lift_to_shell(void **state)
{
	check_no_lift_to_shell(*state, "/bin/sh", "\"$0\" \"$1\" & wait");
}

/* `cd dir && app &` in bash: bash forks a subshell (bash's executable, no
 * exec) for the list; the app is the program, not the subshell. */
static void
test_no_lift_to_subshell(void **state)
{
	check_no_lift_to_shell(*state, "/bin/bash",
	    "cd / && \"$0\" \"$1\" & wait");
}

/* The agent (here: this test) and its ancestors are never apps. */
static void
test_self_never_listed(void **state)
{
	struct fx *fx = *state;
	struct vg_applist *l;
	char comm[32];
	int fd, p[2];
	pid_t pid;

	fd = open(fx->file, O_RDWR | O_CREAT, 0600);
	assert_true(fd != -1);
	assert_int_equal(prctl(PR_GET_NAME, comm), 0);
	/* A child that holds the same file shows the scan works. */
	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		ready(p[1]);
		for (;;)
			pause();	/* inherited fd: holds the file */
	}
	fx_kid(fx, pid);
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);

	l = find(fx->dir, comm, getuid());
	assert_non_null(app_of(l, pid));
	assert_null(app_of(l, getpid()));
	assert_null(app_of(l, getppid()));
	for (size_t i = 0; i < l->n; i++)
		assert_false(has_pid(&l->v[i], getpid()));
	apps_list_free(l);
	close(fd);
}

/* A process of another uid is never listed for ours. */
static void
test_other_uid_never_listed(void **state)
{
	struct fx *fx = *state;
	struct vg_applist *l;
	int p[2], fd;
	pid_t pid;

	if (getuid() != 0)
		skip();
	assert_int_equal(chmod(fx->dir, 0777), 0);
	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		if (setgroups(0, NULL) == -1 || setresgid(65534, 65534,
		    65534) == -1 || setresuid(65534, 65534, 65534) == -1)
			_exit(1);
		fd = open(fx->file, O_RDWR | O_CREAT, 0600);
		if (fd == -1)
			_exit(1);
		ready(p[1]);
		for (;;)
			pause();
	}
	fx_kid(fx, pid);
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);

	l = find(fx->dir, NULL, 0);
	assert_null(app_of(l, pid));
	for (size_t i = 0; i < l->n; i++)
		assert_false(has_pid(&l->v[i], pid));
	apps_list_free(l);
	/* The agent of that uid does find it. */
	l = find(fx->dir, NULL, 65534);
	assert_non_null(app_of(l, pid));
	apps_list_free(l);
}

/* A client of a socket named like Wayland's counts as a display app: it
 * is refused under close-method window, and SIGTERM'd under term. */
static void
test_wayland_client_refused_unless_term(void **state)
{
	struct fx *fx = *state;
	struct sockaddr_un sa;
	struct closer_result res[1];
	struct closer_opts o;
	struct vg_applist *l;
	struct vg_app *a;
	struct vg_err err;
	char why[256];
	int p[2], s, c;
	pid_t pid;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/wayland-7", fx->dir);
	assert_true((s = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(s, 4), 0);
	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		close(s);
		prctl(PR_SET_NAME, "vgwlclient");
		c = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&sa, sizeof sa) == -1)
			_exit(1);
		ready(p[1]);
		for (;;)
			pause();
	}
	fx_kid(fx, pid);
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);
	c = accept(s, NULL, NULL);

	l = find(NULL, "vgwlclient", getuid());
	assert_non_null(a = app_of(l, pid));
	assert_true(a->wayland);
	assert_false(a->x11);
	assert_null(closer_plan(a, CLOSER_METHOD_WINDOW, why, sizeof why));
	assert_non_null(strstr(why, "Wayland"));
	assert_string_equal(closer_plan(a, CLOSER_METHOD_TERM, why,
	    sizeof why), "sigterm");

	/* Keep only this app in the list we close. */
	{
		struct vg_applist one = { .v = a, .n = 1 };

		memset(&o, 0, sizeof o);
		o.method = CLOSER_METHOD_WINDOW;
		o.timeout_s = 1;
		assert_int_equal(closer_close(&one, &o, res, &err), 0);
		assert_int_equal(res[0].outcome, CLOSER_REFUSED);
		assert_int_equal(kill(pid, 0), 0);	/* left running */
		o.method = CLOSER_METHOD_TERM;
		assert_int_equal(closer_close(&one, &o, res, &err), 0);
		assert_int_equal(res[0].outcome, CLOSER_CLOSED);
		assert_string_equal(res[0].how, "sigterm");
	}
	apps_list_free(l);
	close(c);
	close(s);
}

/* A client of an abstract X11 socket counts as connected to X11. */
static void
test_x11_client_detected(void **state)
{
	struct fx *fx = *state;
	struct sockaddr_un sa;
	struct vg_applist *l;
	struct vg_app *a;
	socklen_t len;
	const char name[] = "/tmp/.X11-unix/X4093";
	int p[2], s, c;
	pid_t pid;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, name, sizeof name - 1);	/* abstract */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    sizeof name - 1);
	assert_true((s = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	if (bind(s, (struct sockaddr *)&sa, len) == -1) {
		close(s);
		skip();		/* a display :4093 exists here */
		return;		/* skip() jumps out, but is not noreturn */
	}
	assert_int_equal(listen(s, 4), 0);
	assert_int_equal(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		close(s);
		prctl(PR_SET_NAME, "vgx11client");
		c = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&sa, len) == -1)
			_exit(1);
		ready(p[1]);
		for (;;)
			pause();
	}
	fx_kid(fx, pid);
	close(p[1]);
	wait_ready(p[0]);
	close(p[0]);
	c = accept(s, NULL, NULL);

	l = find(NULL, "vgx11client", getuid());
	assert_non_null(a = app_of(l, pid));
	assert_true(a->x11);
	assert_false(a->wayland);
	apps_list_free(l);
	close(c);
	close(s);
}

/* ---- closing ---- */

static void
test_close_sigterm_saves(void **state)
{
	struct fx *fx = *state;
	char marker[160], *argv[4];
	struct closer_result res[4];
	struct closer_opts o;
	struct vg_applist *l;
	struct vg_app *a;
	struct vg_err err;
	int st;
	pid_t pid;

	snprintf(marker, sizeof marker, "%s/marker", fx->dir);
	argv[0] = HOLDFILE;
	argv[1] = fx->file;
	argv[2] = marker;
	argv[3] = NULL;
	pid = spawn(argv, NULL, NULL);
	fx_kid(fx, pid);
	wait_content(fx->file, "opened by");

	l = find(fx->dir, NULL, getuid());
	assert_int_equal(l->n, 1);
	assert_non_null(a = app_of(l, pid));
	assert_string_equal(a->name, "holdfile");
	memset(&o, 0, sizeof o);
	o.method = CLOSER_METHOD_WINDOW;	/* no display: SIGTERM */
	o.timeout_s = 10;
	assert_int_equal(closer_close(l, &o, res, &err), 0);
	assert_int_equal(res[0].outcome, CLOSER_CLOSED);
	assert_string_equal(res[0].how, "sigterm");
	assert_int_equal(waitpid(pid, &st, 0), pid);
	fx->kids[--fx->nkids] = 0;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	wait_content(marker, "sigterm");
	wait_content(fx->file, "saved by");
	apps_list_free(l);
}

static void
test_stubborn_refused_after_timeout(void **state)
{
	struct fx *fx = *state;
	char *argv[3];
	struct closer_result res[4];
	struct closer_opts o;
	struct vg_applist *l;
	struct vg_err err;
	time_t t0;
	pid_t pid;

	argv[0] = STUBBORN;
	argv[1] = fx->file;
	argv[2] = NULL;
	pid = spawn(argv, NULL, NULL);
	fx_kid(fx, pid);
	wait_content(fx->file, "opened by");

	l = find(fx->dir, NULL, getuid());
	assert_int_equal(l->n, 1);
	memset(&o, 0, sizeof o);
	o.timeout_s = 1;
	t0 = time(NULL);
	assert_int_equal(closer_close(l, &o, res, &err), 0);
	assert_true(time(NULL) - t0 >= 1);
	assert_int_equal(res[0].outcome, CLOSER_REFUSED);
	assert_string_equal(res[0].reason, "did not close within 1 s");
	assert_int_equal(kill(pid, 0), 0);	/* still running */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
	apps_list_free(l);
}

static void
test_stubborn_force_killed(void **state)
{
	struct fx *fx = *state;
	char *argv[3];
	struct closer_result res[4];
	struct closer_opts o;
	struct vg_applist *l;
	struct vg_err err;
	int st;
	pid_t pid;

	argv[0] = STUBBORN;
	argv[1] = fx->file;
	argv[2] = NULL;
	pid = spawn(argv, NULL, NULL);
	fx_kid(fx, pid);
	wait_content(fx->file, "opened by");

	l = find(fx->dir, NULL, getuid());
	assert_int_equal(l->n, 1);
	memset(&o, 0, sizeof o);
	o.timeout_s = 1;
	o.force = true;
	assert_int_equal(closer_close(l, &o, res, &err), 0);
	assert_int_equal(res[0].outcome, CLOSER_KILLED);
	assert_string_equal(res[0].how, "sigkill");
	assert_int_equal(waitpid(pid, &st, 0), pid);
	fx->kids[--fx->nkids] = 0;
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	apps_list_free(l);
}

/* ---- reopening ---- */

static char *
slurp(const char *path, size_t *len)
{
	static char buf[65536];
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return NULL;
	r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r < 0)
		return NULL;
	buf[r] = '\0';
	*len = (size_t)r;
	return buf;
}

static void
test_relaunch_same_argv_cwd_env(void **state)
{
	struct fx *fx = *state;
	char marker[160], work[160], path[64], cwd[PATH_MAX], *argv[6];
	char *envp[] = { "VGTEST_SECRET=s3cret", "PATH=/usr/bin:/bin", NULL };
	char want[1024], *got;
	struct closer_result res[4];
	struct closer_opts o;
	struct vg_applist *l;
	struct vg_err err;
	size_t wl = 0, gl, i;
	ssize_t r;
	pid_t pid, npid;

	snprintf(marker, sizeof marker, "%s/marker", fx->dir);
	snprintf(work, sizeof work, "%s/work dir", fx->dir);
	assert_int_equal(mkdir(work, 0700), 0);
	argv[0] = HOLDFILE;
	argv[1] = fx->file;
	argv[2] = marker;
	argv[3] = "--tag";
	argv[4] = "two words";
	argv[5] = NULL;
	pid = spawn(argv, envp, work);
	fx_kid(fx, pid);
	wait_content(fx->file, "opened by");

	l = find(fx->dir, NULL, getuid());
	assert_int_equal(l->n, 1);
	assert_string_equal(l->v[0].cwd, work);
	memset(&o, 0, sizeof o);
	o.timeout_s = 10;
	assert_int_equal(closer_close(l, &o, res, &err), 0);
	assert_int_equal(res[0].outcome, CLOSER_CLOSED);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	fx->kids[--fx->nkids] = 0;

	setenv("VIGIL_AGENT_RELAUNCH", "direct", 1);
	if (closer_relaunch(&l->v[0], 200, &npid, &err) == -1)
		fail_msg("relaunch: %s", err.msg);
	fx_kid(fx, npid);
	assert_int_not_equal(npid, pid);
	snprintf(want, sizeof want, "opened by %d", (int)npid);
	wait_content(fx->file, want);

	for (i = 0; argv[i] != NULL; i++) {
		memcpy(want + wl, argv[i], strlen(argv[i]) + 1);
		wl += strlen(argv[i]) + 1;
	}
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)npid);
	assert_non_null(got = slurp(path, &gl));
	assert_int_equal(gl, wl);
	assert_memory_equal(got, want, wl);
	snprintf(path, sizeof path, "/proc/%d/cwd", (int)npid);
	assert_true((r = readlink(path, cwd, sizeof cwd - 1)) > 0);
	cwd[r] = '\0';
	assert_string_equal(cwd, work);
	snprintf(path, sizeof path, "/proc/%d/environ", (int)npid);
	assert_non_null(got = slurp(path, &gl));
	assert_int_equal(gl, strlen(envp[0]) + strlen(envp[1]) + 2);
	assert_string_equal(got, envp[0]);
	assert_string_equal(got + strlen(envp[0]) + 1, envp[1]);
	apps_list_free(l);
}

static void
test_relaunch_missing_program(void **state)
{
	char *argv[] = { "/nonexistent/vigil-test-prog", NULL };
	char *env[] = { NULL };
	struct vg_app a;
	struct vg_err err;
	pid_t pid;

	(void)state;
	memset(&a, 0, sizeof a);
	a.name = "vigil-test-prog";
	a.argv = argv;
	a.env = env;
	assert_int_equal(closer_relaunch(&a, 100, &pid, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	assert_non_null(strstr(err.msg, "vigil-test-prog"));
	assert_int_equal(pid, -1);
}

static void
test_relaunch_failing_at_once(void **state)
{
	char *argv[] = { "false", NULL };
	char *env[] = { "PATH=/usr/bin:/bin", NULL };
	struct vg_app a;
	struct vg_err err;
	pid_t pid;

	(void)state;
	memset(&a, 0, sizeof a);
	a.name = "false";
	a.argv = argv;
	a.env = env;
	setenv("VIGIL_AGENT_RELAUNCH", "direct", 1);
	assert_int_equal(closer_relaunch(&a, 2000, &pid, &err), -1);
	assert_non_null(strstr(err.msg, "exited at once with status 1"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_under_boundary),
		cmocka_unit_test_setup_teardown(test_find_open_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_find_mapped_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_find_by_name, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_lift_to_group_leader,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_lift_across_groups,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_lift_to_shell, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_lift_to_subshell,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_never_listed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_other_uid_never_listed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_wayland_client_refused_unless_term, setup, teardown),
		cmocka_unit_test_setup_teardown(test_x11_client_detected,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_sigterm_saves,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_stubborn_refused_after_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stubborn_force_killed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_relaunch_same_argv_cwd_env, setup, teardown),
		cmocka_unit_test(test_relaunch_missing_program),
		cmocka_unit_test(test_relaunch_failing_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
