/* test_hooks.c: pre/post commands run as argv, with a timeout. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scheduler/hooks.h"

static void
argv_of(struct vg_strlist *l, ...)
{
	va_list ap;
	const char *s;

	memset(l, 0, sizeof *l);
	va_start(ap, l);
	while ((s = va_arg(ap, const char *)) != NULL)
		assert_int_equal(strlist_push(l, s), 0);
	va_end(ap);
}

static void
test_success_captures_output(void **state)
{
	struct vg_strlist a;
	struct vg_err err;
	char *out = NULL;

	(void)state;
	argv_of(&a, "/bin/echo", "hello", NULL);
	assert_int_equal(hooks_run(&a, "pre", "docs", 7, NULL, 10, NULL, &out,
	    &err), 0);
	assert_non_null(out);
	assert_string_equal(out, "hello\\x0a");
	free(out);
	strlist_free(&a);
}

static void
test_no_shell(void **state)
{
	struct vg_strlist a;
	struct vg_err err;
	char *out = NULL, marker[64];

	(void)state;
	snprintf(marker, sizeof marker, "/tmp/vigil-hooks-%ld", (long)getpid());
	unlink(marker);
	argv_of(&a, "/bin/echo", "$(touch", marker, ");", "`id`", NULL);
	assert_int_equal(hooks_run(&a, "pre", "docs", 7, NULL, 10, NULL, &out,
	    &err), 0);
	/* The words arrive as they are: no shell ever saw them. */
	assert_non_null(strstr(out, "$(touch"));
	assert_non_null(strstr(out, "`id`"));
	assert_int_equal(access(marker, F_OK), -1);
	free(out);
	strlist_free(&a);
}

static void
test_exit_status_is_an_error(void **state)
{
	struct vg_strlist a;
	struct vg_err err;
	char *out = NULL;

	(void)state;
	argv_of(&a, "/bin/sh", "-c", "echo oops >&2; exit 3", NULL);
	assert_int_equal(hooks_run(&a, "post", "docs", 7, "ok", 10, NULL, &out,
	    &err), -1);
	assert_non_null(strstr(err.msg, "exited with status 3"));
	assert_non_null(strstr(out, "oops"));
	free(out);
	strlist_free(&a);
}

static void
test_timeout_stops_it(void **state)
{
	struct vg_strlist a;
	struct vg_err err;
	char *out = NULL;
	time_t t0 = time(NULL);

	(void)state;
	argv_of(&a, "/bin/sleep", "30", NULL);
	assert_int_equal(hooks_run(&a, "pre", "docs", 7, NULL, 1, NULL, &out,
	    &err), -1);
	assert_true(time(NULL) - t0 < 10);
	assert_non_null(strstr(err.msg, "did not finish within 1 s"));
	free(out);
	strlist_free(&a);
}

static volatile sig_atomic_t cancel_flag;

static void
on_alarm(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

static void
test_cancel_stops_it(void **state)
{
	struct vg_strlist a;
	struct vg_err err;
	struct sigaction sa;
	char *out = NULL;
	time_t t0 = time(NULL);

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	cancel_flag = 0;
	argv_of(&a, "/bin/sleep", "30", NULL);
	alarm(1);
	assert_int_equal(hooks_run(&a, "pre", "docs", 7, NULL, 60,
	    &cancel_flag, &out, &err), -1);
	alarm(0);
	assert_true(time(NULL) - t0 < 10);
	assert_int_equal(err.code, VG_ERR_CANCELLED);
	assert_non_null(strstr(err.msg, "cancelled"));
	free(out);
	strlist_free(&a);
}

static void
test_missing_program(void **state)
{
	struct vg_strlist a;
	struct vg_err err;
	char *out = NULL;

	(void)state;
	argv_of(&a, "/nonexistent/prog", NULL);
	assert_int_equal(hooks_run(&a, "pre", "docs", 7, NULL, 10, NULL, &out,
	    &err), -1);
	assert_non_null(strstr(err.msg, "could not be started"));
	free(out);
	strlist_free(&a);
	argv_of(&a, "echo", "relative", NULL);
	assert_int_equal(hooks_run(&a, "pre", "docs", 7, NULL, 10, NULL, &out,
	    &err), -1);
	assert_non_null(strstr(err.msg, "absolute"));
	free(out);
	strlist_free(&a);
}

static void
test_environment(void **state)
{
	struct vg_strlist a;
	struct vg_err err;
	char *out = NULL;

	(void)state;
	setenv("VIGIL_TEST_SECRET", "leak", 1);
	argv_of(&a, "/usr/bin/env", NULL);
	assert_int_equal(hooks_run(&a, "post", "docs", 42, "partial", 10, NULL,
	    &out, &err), 0);
	assert_non_null(strstr(out, "VIGIL_JOB=docs"));
	assert_non_null(strstr(out, "VIGIL_RUN=42"));
	assert_non_null(strstr(out, "VIGIL_STATUS=partial"));
	/* The service's own environment does not leak into commands. */
	assert_null(strstr(out, "VIGIL_TEST_SECRET"));
	free(out);
	strlist_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_success_captures_output),
		cmocka_unit_test(test_no_shell),
		cmocka_unit_test(test_exit_status_is_an_error),
		cmocka_unit_test(test_timeout_stops_it),
		cmocka_unit_test(test_cancel_stops_it),
		cmocka_unit_test(test_missing_program),
		cmocka_unit_test(test_environment),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
