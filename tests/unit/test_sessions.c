/*
 * test_sessions.c: the session sources.  The utmpx source reads a real
 * utmpx file in a temp folder, written with pututxline() as login(1) and a
 * terminal emulator write it (logins, logouts, a stale entry of a dead
 * process, an X display, a remote host).  The fake source is what the other
 * unit tests stand on.  The logind source runs only where logind runs (the
 * end-to-end test boots a real one); elsewhere it says why it skipped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utmpx.h>

#include "common/err.h"
#include "common/sessions.h"

struct ufx {
	char	 dir[256];
	char	 path[300];
	char	 user[64];
};

static int
usetup(void **state)
{
	struct ufx *u = calloc(1, sizeof *u);
	struct passwd *pw;
	const char *tmp = getenv("TMPDIR");
	int fd;

	assert_non_null(u);
	snprintf(u->dir, sizeof u->dir, "%s/test_sessions.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	assert_non_null(mkdtemp(u->dir));
	snprintf(u->path, sizeof u->path, "%s/utmp", u->dir);
	/* pututxline() needs the file to exist */
	assert_true((fd = open(u->path, O_CREAT | O_WRONLY, 0644)) >= 0);
	close(fd);
	assert_non_null(pw = getpwuid(getuid()));
	snprintf(u->user, sizeof u->user, "%s", pw->pw_name);
	*state = u;
	return 0;
}

static int
uteardown(void **state)
{
	struct ufx *u = *state;
	char other[320];

	snprintf(other, sizeof other, "%s/other", u->dir);
	unlink(other);
	unlink(u->path);
	rmdir(u->dir);
	free(u);
	return 0;
}

/* Write one entry, as login(1) does (type USER_PROCESS) or at logout
 * (DEAD_PROCESS, same ut_id). */
static void
put(const struct ufx *u, short type, const char *id, const char *user,
    const char *line, const char *host, pid_t pid)
{
	struct utmpx ut;
	struct timeval tv;

	memset(&ut, 0, sizeof ut);
	ut.ut_type = type;
	ut.ut_pid = pid;
	strncpy(ut.ut_id, id, sizeof ut.ut_id);
	strncpy(ut.ut_user, user, sizeof ut.ut_user);
	strncpy(ut.ut_line, line, sizeof ut.ut_line);
	strncpy(ut.ut_host, host, sizeof ut.ut_host);
	gettimeofday(&tv, NULL);
	ut.ut_tv.tv_sec = tv.tv_sec;
	ut.ut_tv.tv_usec = tv.tv_usec;
	assert_int_equal(utmpxname(u->path), 0);
	setutxent();
	if (pututxline(&ut) == NULL)
		fail_msg("pututxline on %s: %s", u->path, strerror(errno));
	endutxent();
}

static struct vg_sessions *
utmp_source(const struct ufx *u)
{
	struct vg_sessions *s;
	struct vg_err err;

	vg_err_clear(&err);
	if ((s = sessions_utmp_new(u->path, &err)) == NULL)
		fail_msg("sessions_utmp_new: %s", err.msg);
	return s;
}

static size_t
list(struct vg_sessions *s, struct vg_session **v)
{
	struct vg_err err;
	size_t n = 99;

	vg_err_clear(&err);
	if (sessions_list(s, v, &n, &err) != 0)
		fail_msg("sessions_list: %s", err.msg);
	return n;
}

static bool
readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* ---- utmpx ---- */

static void
test_utmp_login_then_logout(void **state)
{
	struct ufx *u = *state;
	struct vg_sessions *s = utmp_source(u);
	struct vg_session *v = NULL;

	assert_int_equal(sessions_backend(s), VG_SESSIONS_UTMP);
	assert_string_equal(sessions_backend_name(s), "utmp");
	assert_false(sessions_checks_claims(s));
	assert_int_equal(list(s, &v), 0);
	assert_null(v);

	put(u, USER_PROCESS, "ts/9", u->user, "pts/9", "", getpid());
	assert_int_equal(list(s, &v), 1);
	assert_string_equal(v[0].id, "pts/9");
	assert_int_equal(v[0].uid, getuid());
	assert_string_equal(v[0].user, u->user);
	assert_int_equal(v[0].klass, VG_SESSION_CLASS_USER);
	assert_int_equal(v[0].type, VG_SESSION_TYPE_TTY);
	assert_int_equal(v[0].state, VG_SESSION_ONLINE);
	assert_string_equal(v[0].tty, "pts/9");
	assert_string_equal(v[0].display, "");
	assert_false(v[0].remote);
	assert_true(sessions_is_login(&v[0]));
	free(v);

	put(u, DEAD_PROCESS, "ts/9", "", "pts/9", "", getpid());
	assert_int_equal(list(s, &v), 0);
	sessions_free(s);
}

static void
test_utmp_leaves_out_dead_processes_and_unknown_users(void **state)
{
	struct ufx *u = *state;
	struct vg_sessions *s = utmp_source(u);
	struct vg_session *v = NULL;
	pid_t child;
	int status;

	/* a crash leaves a USER_PROCESS entry whose process is gone */
	if ((child = fork()) == 0)
		_exit(0);
	assert_true(child > 0);
	assert_int_equal(waitpid(child, &status, 0), child);
	put(u, USER_PROCESS, "tty3", u->user, "tty3", "", child);
	put(u, USER_PROCESS, "tty4", "no-such-user-vigil", "tty4", "",
	    getpid());
	put(u, LOGIN_PROCESS, "tty5", "LOGIN", "tty5", "", getpid());
	put(u, USER_PROCESS, "tty6", u->user, "tty6", "", getpid());
	assert_int_equal(list(s, &v), 1);
	assert_string_equal(v[0].id, "tty6");
	free(v);
	sessions_free(s);
}

static void
test_utmp_display_and_remote_entries(void **state)
{
	struct ufx *u = *state;
	struct vg_sessions *s = utmp_source(u);
	struct vg_session *v = NULL;
	struct vg_err err;
	char id[VG_SESSION_ID_MAX];
	uid_t uid = (uid_t)-1;
	size_t n, i;

	put(u, USER_PROCESS, ":0", u->user, ":0", ":0", getpid());
	put(u, USER_PROCESS, "ts/2", u->user, "pts/2", "192.0.2.7", getpid());
	n = list(s, &v);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		if (strcmp(v[i].id, ":0") == 0) {
			assert_int_equal(v[i].type, VG_SESSION_TYPE_X11);
			assert_string_equal(v[i].display, ":0");
			assert_string_equal(v[i].tty, "");
			assert_false(v[i].remote);
		} else {
			assert_string_equal(v[i].id, "pts/2");
			assert_true(v[i].remote);
			assert_string_equal(v[i].display, "");
		}
	}
	free(v);

	vg_err_clear(&err);
	assert_int_equal(sessions_session_uid(s, "pts/2", &uid, &err), 0);
	assert_int_equal(uid, getuid());
	assert_int_equal(sessions_session_uid(s, "pts/77", &uid, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	assert_int_equal(sessions_uid_display(s, getuid(), id, sizeof id,
	    &err), 0);
	assert_string_equal(id, ":0");
	assert_int_equal(sessions_uid_display(s, getuid() + 1, id, sizeof id,
	    &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	sessions_free(s);
}

static void
test_utmp_monitor_sees_logins_only_for_its_file(void **state)
{
	struct ufx *u = *state;
	struct vg_sessions *s = utmp_source(u);
	struct vg_err err;
	char other[320];
	int fd;

	assert_true(sessions_monitor_fd(s) >= 0);
	assert_false(readable(sessions_monitor_fd(s)));
	put(u, USER_PROCESS, "tty7", u->user, "tty7", "", getpid());
	assert_true(readable(sessions_monitor_fd(s)));
	vg_err_clear(&err);
	assert_int_equal(sessions_monitor_flush(s, &err), 1);
	assert_false(readable(sessions_monitor_fd(s)));

	/* another file in the same folder wakes the fd but is no change */
	snprintf(other, sizeof other, "%s/other", u->dir);
	assert_true((fd = open(other, O_CREAT | O_WRONLY, 0644)) >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	assert_true(readable(sessions_monitor_fd(s)));
	assert_int_equal(sessions_monitor_flush(s, &err), 0);
	sessions_free(s);
}

static void
test_utmp_missing_file_is_nobody_and_its_creation_is_seen(void **state)
{
	struct ufx *u = *state;
	struct vg_sessions *s;
	struct vg_session *v = NULL;
	struct vg_err err;
	int fd;

	assert_int_equal(unlink(u->path), 0);
	s = utmp_source(u);
	assert_int_equal(list(s, &v), 0);
	assert_true((fd = open(u->path, O_CREAT | O_WRONLY, 0644)) >= 0);
	close(fd);
	assert_true(readable(sessions_monitor_fd(s)));
	vg_err_clear(&err);
	assert_int_equal(sessions_monitor_flush(s, &err), 1);
	put(u, USER_PROCESS, "tty8", u->user, "tty8", "", getpid());
	assert_int_equal(list(s, &v), 1);
	free(v);
	sessions_free(s);
}

static void
test_utmp_relative_path_is_refused(void **state)
{
	struct vg_err err;

	(void)state;
	vg_err_clear(&err);
	assert_null(sessions_utmp_new("run/utmp", &err));
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_non_null(strstr(err.msg, "not an absolute path"));
}

/* ---- the fake ---- */

static void
test_fake_add_list_remove_and_monitor(void **state)
{
	struct vg_sessions *s = sessions_fake_new();
	struct vg_session a, *v = NULL;
	struct vg_err err;
	char id[VG_SESSION_ID_MAX];
	uid_t uid;

	(void)state;
	assert_non_null(s);
	assert_string_equal(sessions_backend_name(s), "fake");
	assert_true(sessions_checks_claims(s));
	assert_false(readable(sessions_monitor_fd(s)));
	memset(&a, 0, sizeof a);
	snprintf(a.id, sizeof a.id, "3");
	a.uid = 1000;
	snprintf(a.user, sizeof a.user, "alice");
	assert_int_equal(sessions_fake_add(s, &a), 0);
	assert_true(readable(sessions_monitor_fd(s)));
	vg_err_clear(&err);
	assert_int_equal(sessions_monitor_flush(s, &err), 1);
	assert_false(readable(sessions_monitor_fd(s)));
	assert_int_equal(list(s, &v), 1);
	assert_string_equal(v[0].user, "alice");
	free(v);
	assert_int_equal(sessions_session_uid(s, "3", &uid, &err), 0);
	assert_int_equal(uid, 1000);
	assert_int_equal(sessions_uid_display(s, 1000, id, sizeof id, &err),
	    -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	assert_int_equal(sessions_fake_set_display(s, 1000, "3"), 0);
	assert_int_equal(sessions_uid_display(s, 1000, id, sizeof id, &err),
	    0);
	assert_string_equal(id, "3");

	assert_int_equal(sessions_fake_remove(s, "3"), 0);
	assert_int_equal(sessions_fake_remove(s, "3"), -1);
	assert_true(readable(sessions_monitor_fd(s)));
	assert_int_equal(list(s, &v), 0);
	assert_int_equal(sessions_session_uid(s, "3", &uid, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	sessions_fake_fail_next_list(s);
	assert_int_equal(sessions_list(s, &v, &(size_t){0}, &err), -1);
	sessions_free(s);
}

static void
test_fake_calls_on_a_real_source_are_refused(void **state)
{
	struct ufx *u = *state;
	struct vg_sessions *s = utmp_source(u);
	struct vg_session a;

	memset(&a, 0, sizeof a);
	assert_int_equal(sessions_fake_add(s, &a), -1);
	assert_int_equal(sessions_fake_remove(s, "x"), -1);
	sessions_fake_set_checks_claims(s, true);
	assert_false(sessions_checks_claims(s));
	sessions_free(s);
}

/* ---- shared ---- */

static void
test_session_ids_are_checked(void **state)
{
	struct vg_sessions *s = sessions_fake_new();
	struct vg_err err;
	uid_t uid;

	(void)state;
	assert_true(sessions_valid_id("3"));
	assert_true(sessions_valid_id("c12"));
	assert_true(sessions_valid_id("pts/3"));
	assert_true(sessions_valid_id("agent:17"));
	assert_false(sessions_valid_id(""));
	assert_false(sessions_valid_id("../3"));
	assert_false(sessions_valid_id("3 4"));
	assert_false(sessions_valid_id("a\n"));
	assert_false(sessions_valid_id(
	    "0123456789012345678901234567890123456789012345678901234567890123"));
	vg_err_clear(&err);
	assert_int_equal(sessions_session_uid(s, "../../etc", &uid, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	sessions_free(s);
}

static void
test_names_parse_and_print(void **state)
{
	struct vg_session ss;

	(void)state;
	assert_int_equal(sessions_class_parse("user"), VG_SESSION_CLASS_USER);
	assert_int_equal(sessions_class_parse("user-early"),
	    VG_SESSION_CLASS_USER);
	assert_int_equal(sessions_class_parse("username"),
	    VG_SESSION_CLASS_OTHER);
	assert_int_equal(sessions_class_parse("greeter"),
	    VG_SESSION_CLASS_GREETER);
	assert_int_equal(sessions_class_parse("lock-screen"),
	    VG_SESSION_CLASS_LOCK_SCREEN);
	assert_int_equal(sessions_class_parse("background-light"),
	    VG_SESSION_CLASS_BACKGROUND);
	assert_int_equal(sessions_class_parse("manager"),
	    VG_SESSION_CLASS_MANAGER);
	assert_int_equal(sessions_class_parse(NULL), VG_SESSION_CLASS_OTHER);
	assert_int_equal(sessions_type_parse("wayland"),
	    VG_SESSION_TYPE_WAYLAND);
	assert_int_equal(sessions_type_parse("x11"), VG_SESSION_TYPE_X11);
	assert_int_equal(sessions_type_parse("mir"), VG_SESSION_TYPE_MIR);
	assert_int_equal(sessions_type_parse("vnc"),
	    VG_SESSION_TYPE_UNSPECIFIED);
	assert_int_equal(sessions_state_parse("closing"), VG_SESSION_CLOSING);
	assert_int_equal(sessions_state_parse("active"), VG_SESSION_ACTIVE);
	assert_int_equal(sessions_state_parse("bogus"), VG_SESSION_ONLINE);
	assert_string_equal(sessions_class_name(VG_SESSION_CLASS_LOCK_SCREEN),
	    "lock-screen");
	assert_string_equal(sessions_type_name(VG_SESSION_TYPE_TTY), "tty");
	assert_string_equal(sessions_state_name(VG_SESSION_CLOSING),
	    "closing");
	assert_string_equal(sessions_class_name((enum vg_session_class)42),
	    "unknown");

	memset(&ss, 0, sizeof ss);
	ss.klass = VG_SESSION_CLASS_USER;
	ss.state = VG_SESSION_ACTIVE;
	assert_true(sessions_is_login(&ss));
	ss.state = VG_SESSION_CLOSING;
	assert_false(sessions_is_login(&ss));
	ss.state = VG_SESSION_ONLINE;
	ss.klass = VG_SESSION_CLASS_GREETER;
	assert_false(sessions_is_login(&ss));
	ss.klass = VG_SESSION_CLASS_MANAGER;
	assert_false(sessions_is_login(&ss));
}

/* ---- logind ---- */

static void
test_source_picks_logind_only_where_it_runs(void **state)
{
	struct vg_sessions *s;
	struct vg_err err;

	(void)state;
	vg_err_clear(&err);
	if ((s = sessions_source_new(&err)) == NULL)
		fail_msg("sessions_source_new: %s", err.msg);
	assert_int_equal(sessions_backend(s), sessions_logind_running() ?
	    VG_SESSIONS_LOGIND : VG_SESSIONS_UTMP);
	sessions_free(s);
	if (!sessions_logind_running()) {
		vg_err_clear(&err);
		assert_null(sessions_logind_new(&err));
		assert_int_equal(err.code, VG_ERR_NOTFOUND);
		assert_non_null(strstr(err.msg, "does not run"));
	}
}

static void
test_logind_lists_and_watches(void **state)
{
	struct vg_sessions *s;
	struct vg_session *v = NULL;
	struct vg_err err;
	size_t n, i;
	uid_t uid;

	(void)state;
	if (!sessions_logind_running()) {
		print_message("logind does not run here (not booted with "
		    "systemd, or no /run/systemd/seats): the logind source is "
		    "tested by the end-to-end test under systemd-nspawn\n");
		skip();
	}
	vg_err_clear(&err);
	if ((s = sessions_logind_new(&err)) == NULL)
		fail_msg("sessions_logind_new: %s", err.msg);
	assert_true(sessions_monitor_fd(s) >= 0);
	assert_true(sessions_checks_claims(s));
	n = list(s, &v);
	for (i = 0; i < n; i++) {
		assert_true(sessions_valid_id(v[i].id));
		assert_int_equal(sessions_session_uid(s, v[i].id, &uid, &err),
		    0);
		assert_int_equal(uid, v[i].uid);
	}
	free(v);
	assert_int_equal(sessions_session_uid(s, "no-such-session", &uid,
	    &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	sessions_free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define U(name) cmocka_unit_test_setup_teardown(name, usetup, uteardown)
		U(test_utmp_login_then_logout),
		U(test_utmp_leaves_out_dead_processes_and_unknown_users),
		U(test_utmp_display_and_remote_entries),
		U(test_utmp_monitor_sees_logins_only_for_its_file),
		U(test_utmp_missing_file_is_nobody_and_its_creation_is_seen),
		cmocka_unit_test(test_utmp_relative_path_is_refused),
		cmocka_unit_test(test_fake_add_list_remove_and_monitor),
		U(test_fake_calls_on_a_real_source_are_refused),
		cmocka_unit_test(test_session_ids_are_checked),
		cmocka_unit_test(test_names_parse_and_print),
		cmocka_unit_test(test_source_picks_logind_only_where_it_runs),
		cmocka_unit_test(test_logind_lists_and_watches),
#undef U
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
