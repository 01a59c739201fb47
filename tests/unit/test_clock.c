/*
 * test_clock.c: the real timers (timerfd) fire on time and hear clock jumps;
 * the fake clock behaves like them under a test's hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"

static double
real_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait for fd to become readable; 1 if it did within ms. */
static int
wait_fd(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, ms);
	while (n == -1 && errno == EINTR);
	return n == 1;
}

/* ---- the real clock ---- */

static void
test_real_timer_fires_on_time(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t;
	time_t when;
	double fired;

	(void)state;
	assert_non_null(c = clock_real_new());
	assert_false(clock_is_fake(c));
	assert_non_null(t = clock_timer_new(c, false, NULL));
	when = clock_now(c) + 1;
	assert_int_equal(clock_timer_arm_at(t, when, NULL), 0);
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_NONE);
	assert_true(wait_fd(clock_timer_fd(t), 3000));
	fired = real_now();
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_FIRED);
	/* Not early, and late by less than a quarter second. */
	assert_true(fired >= (double)when);
	assert_true(fired < (double)when + 0.25);
	print_message("fired %.1f ms after the armed second\n",
	    (fired - (double)when) * 1000);
	/* Once per arming. */
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_NONE);
	clock_timer_free(t);
	clock_free(c);
}

static void
test_real_timer_in_past_fires_at_once(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t;

	(void)state;
	assert_non_null(c = clock_real_new());
	assert_non_null(t = clock_timer_new(c, false, NULL));
	assert_int_equal(clock_timer_arm_at(t, clock_now(c) - 3600, NULL), 0);
	assert_true(wait_fd(clock_timer_fd(t), 500));
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_FIRED);
	clock_timer_free(t);
	clock_free(c);
}

static void
test_real_timer_disarm(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t;

	(void)state;
	assert_non_null(c = clock_real_new());
	assert_non_null(t = clock_timer_new(c, false, NULL));
	assert_int_equal(clock_timer_arm_at(t, clock_now(c) + 1, NULL), 0);
	assert_int_equal(clock_timer_disarm(t, NULL), 0);
	assert_false(wait_fd(clock_timer_fd(t), 1500));
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_NONE);
	clock_timer_free(t);
	clock_free(c);
}

static void
test_real_deadline_fires(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t;
	int64_t start, when;
	struct vg_err err;

	(void)state;
	memset(&err, 0, sizeof err);
	assert_non_null(c = clock_real_new());
	assert_non_null(t = clock_deadline_new(c, NULL));
	start = clock_mono_ms(c);
	when = start + 200;
	assert_int_equal(clock_timer_arm_mono(t, when, NULL), 0);
	assert_true(wait_fd(clock_timer_fd(t), 2000));
	assert_true(clock_mono_ms(c) >= when);
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_FIRED);
	/* The wrong arming call is refused, not misread. */
	assert_int_equal(clock_timer_arm_at(t, clock_now(c) + 5, &err), -1);
	assert_int_equal(err.code, VG_ERR_INTERNAL);
	clock_timer_free(t);
	clock_free(c);
}

/*
 * Setting the clock, even to the time it already shows, cancels every
 * timer armed with TFD_TIMER_CANCEL_ON_SET.  Needs CAP_SYS_TIME; skipped
 * without it.  The clock is set to its own value, so nothing needs
 * restoring.
 */
static int
touch_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return clock_settime(CLOCK_REALTIME, &ts);
}

static void
test_real_clock_jump_detected(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t, *d;

	(void)state;
	assert_non_null(c = clock_real_new());
	assert_non_null(t = clock_timer_new(c, false, NULL));
	assert_non_null(d = clock_deadline_new(c, NULL));
	assert_int_equal(clock_timer_arm_at(t, 0, NULL), 0);
	assert_int_equal(clock_timer_arm_mono(d, clock_mono_ms(c) + 60000,
	    NULL), 0);
	if (touch_clock() == -1) {
		clock_timer_free(d);
		clock_timer_free(t);
		clock_free(c);
		if (errno == EPERM)
			skip();
		fail_msg("clock_settime: %s", strerror(errno));
	}
	assert_true(wait_fd(clock_timer_fd(t), 1000));
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_JUMPED);
	/* Disarmed after the jump: nothing more until re-armed. */
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_NONE);
	/* A deadline lives on the monotonic clock and hears nothing. */
	assert_int_equal(clock_timer_read(d, NULL), CLOCK_TIMER_NONE);
	/* Re-armed, it fires again. */
	assert_int_equal(clock_timer_arm_at(t, clock_now(c) - 1, NULL), 0);
	assert_true(wait_fd(clock_timer_fd(t), 500));
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_FIRED);
	clock_timer_free(d);
	clock_timer_free(t);
	clock_free(c);
}

static void
test_real_wake_timer(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t;
	int fd;
	bool can;

	(void)state;
	/* What this machine allows us, asked directly. */
	fd = timerfd_create(CLOCK_REALTIME_ALARM, TFD_CLOEXEC);
	can = fd != -1;
	if (fd != -1)
		close(fd);
	assert_non_null(c = clock_real_new());
	assert_non_null(t = clock_timer_new(c, true, NULL));
	assert_int_equal(clock_timer_wakes(t), can);
	/* Either way it is a working timer. */
	assert_int_equal(clock_timer_arm_at(t, clock_now(c) - 1, NULL), 0);
	assert_true(wait_fd(clock_timer_fd(t), 500));
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_FIRED);
	clock_timer_free(t);
	clock_free(c);
}

/* Without CAP_WAKE_ALARM (an unprivileged user) wake = yes falls back to a
 * plain timer that still works. */
static void
test_real_wake_timer_falls_back(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t;
	pid_t pid;
	int status, rc;

	(void)state;
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		if (getuid() == 0 && setuid(65534) == -1)
			_exit(10);
		if ((c = clock_real_new()) == NULL)
			_exit(11);
		if ((t = clock_timer_new(c, true, NULL)) == NULL)
			_exit(12);
		rc = 0;
		if (clock_timer_wakes(t))
			rc = 13;
		else if (clock_timer_arm_at(t, clock_now(c) - 1, NULL) == -1 ||
		    !wait_fd(clock_timer_fd(t), 500) ||
		    clock_timer_read(t, NULL) != CLOCK_TIMER_FIRED)
			rc = 14;
		clock_timer_free(t);
		clock_free(c);
		_exit(rc);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_real_slept_is_sane(void **state)
{
	struct vg_clock *c;
	int64_t a, b;

	(void)state;
	assert_non_null(c = clock_real_new());
	a = clock_slept_ms(c);
	usleep(20000);
	b = clock_slept_ms(c);
	assert_true(a >= 0);
	/* No suspend in 20 ms: equal up to rounding. */
	assert_true(b - a <= 1 && a - b <= 1);
	clock_free(c);
}

/* ---- the fake clock ---- */

static void
test_fake_time_moves_only_when_told(void **state)
{
	struct vg_clock *c;
	int64_t m;

	(void)state;
	assert_non_null(c = clock_fake_new(1700000000));
	assert_true(clock_is_fake(c));
	m = clock_mono_ms(c);
	usleep(10000);
	assert_int_equal(clock_now(c), 1700000000);
	assert_int_equal(clock_mono_ms(c), m);
	clock_fake_advance(c, 90);
	assert_int_equal(clock_now(c), 1700000090);
	assert_int_equal(clock_mono_ms(c), m + 90000);
	/* A jump moves the wall clock only. */
	clock_fake_set(c, 1600000000);
	assert_int_equal(clock_now(c), 1600000000);
	assert_int_equal(clock_mono_ms(c), m + 90000);
	/* Sleep moves the wall clock and the slept time. */
	clock_fake_sleep(c, 100);
	assert_int_equal(clock_now(c), 1600000100);
	assert_int_equal(clock_mono_ms(c), m + 90000);
	assert_int_equal(clock_slept_ms(c), 100000);
	clock_free(c);
}

static void
test_fake_timer_fires_when_time_passes(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t;

	(void)state;
	assert_non_null(c = clock_fake_new(1000000));
	assert_non_null(t = clock_timer_new(c, true, NULL));
	assert_true(clock_timer_wakes(t));
	assert_int_equal(clock_timer_arm_at(t, 1000060, NULL), 0);
	clock_fake_advance(c, 59);
	assert_false(wait_fd(clock_timer_fd(t), 0));
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_NONE);
	clock_fake_advance(c, 1);
	assert_true(wait_fd(clock_timer_fd(t), 0));
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_FIRED);
	assert_false(wait_fd(clock_timer_fd(t), 0));
	/* Once per arming. */
	clock_fake_advance(c, 600);
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_NONE);
	/* In the past: at once. */
	assert_int_equal(clock_timer_arm_at(t, 5, NULL), 0);
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_FIRED);
	clock_timer_free(t);
	clock_free(c);
}

static void
test_fake_jump_reported_both_ways(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t, *d;

	(void)state;
	assert_non_null(c = clock_fake_new(1000000));
	assert_non_null(t = clock_timer_new(c, false, NULL));
	assert_non_null(d = clock_deadline_new(c, NULL));
	assert_int_equal(clock_timer_arm_mono(d, clock_mono_ms(c) + 5000,
	    NULL), 0);
	/* Forward past the armed time: a jump, not a firing. */
	assert_int_equal(clock_timer_arm_at(t, 1000100, NULL), 0);
	clock_fake_set(c, 1000500);
	assert_true(wait_fd(clock_timer_fd(t), 0));
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_JUMPED);
	/* Back. */
	assert_int_equal(clock_timer_arm_at(t, 1000600, NULL), 0);
	clock_fake_set(c, 900000);
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_JUMPED);
	/* Not armed: a jump goes unheard (arm with 0 to keep listening). */
	clock_fake_set(c, 950000);
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_NONE);
	assert_int_equal(clock_timer_arm_at(t, 0, NULL), 0);
	clock_fake_advance(c, 30 * 86400);
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_NONE);
	clock_fake_set(c, 950000);
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_JUMPED);
	/* The deadline fired on the 30 days of monotonic time, not on the
	 * jumps. */
	assert_int_equal(clock_timer_read(d, NULL), CLOCK_TIMER_FIRED);
	clock_timer_free(d);
	clock_timer_free(t);
	clock_free(c);
}

static void
test_fake_deadline_ignores_jumps_and_sleep(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *d;

	(void)state;
	assert_non_null(c = clock_fake_new(1000000));
	assert_non_null(d = clock_deadline_new(c, NULL));
	assert_int_equal(clock_timer_arm_mono(d, clock_mono_ms(c) + 10000,
	    NULL), 0);
	clock_fake_set(c, 2000000);
	clock_fake_sleep(c, 3600);
	assert_int_equal(clock_timer_read(d, NULL), CLOCK_TIMER_NONE);
	clock_fake_advance(c, 9);
	assert_int_equal(clock_timer_read(d, NULL), CLOCK_TIMER_NONE);
	clock_fake_advance(c, 1);
	assert_int_equal(clock_timer_read(d, NULL), CLOCK_TIMER_FIRED);
	/* Re-arming forgets an unread firing. */
	assert_int_equal(clock_timer_arm_mono(d, clock_mono_ms(c), NULL), 0);
	assert_int_equal(clock_timer_arm_mono(d, clock_mono_ms(c) + 1000,
	    NULL), 0);
	assert_int_equal(clock_timer_read(d, NULL), CLOCK_TIMER_NONE);
	assert_int_equal(clock_timer_disarm(d, NULL), 0);
	clock_fake_advance(c, 5);
	assert_int_equal(clock_timer_read(d, NULL), CLOCK_TIMER_NONE);
	clock_timer_free(d);
	clock_free(c);
}

static void
test_fake_sleep_fires_due_timer(void **state)
{
	struct vg_clock *c;
	struct vg_clock_timer *t;

	(void)state;
	assert_non_null(c = clock_fake_new(1000000));
	assert_non_null(t = clock_timer_new(c, false, NULL));
	assert_int_equal(clock_timer_arm_at(t, 1003600, NULL), 0);
	clock_fake_sleep(c, 8 * 3600);
	assert_int_equal(clock_timer_read(t, NULL), CLOCK_TIMER_FIRED);
	clock_timer_free(t);
	clock_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_timer_fires_on_time),
		cmocka_unit_test(test_real_timer_in_past_fires_at_once),
		cmocka_unit_test(test_real_timer_disarm),
		cmocka_unit_test(test_real_deadline_fires),
		cmocka_unit_test(test_real_clock_jump_detected),
		cmocka_unit_test(test_real_wake_timer),
		cmocka_unit_test(test_real_wake_timer_falls_back),
		cmocka_unit_test(test_real_slept_is_sane),
		cmocka_unit_test(test_fake_time_moves_only_when_told),
		cmocka_unit_test(test_fake_timer_fires_when_time_passes),
		cmocka_unit_test(test_fake_jump_reported_both_ways),
		cmocka_unit_test(test_fake_deadline_ignores_jumps_and_sleep),
		cmocka_unit_test(test_fake_sleep_fires_due_timer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
