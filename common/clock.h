/*
 * clock.h: the clock and timers vigild waits on, behind one interface so
 * that tests can drive time.
 *
 * A struct vg_clock is either the real clock (clock_real_new()) or a fake
 * one (clock_fake_new()) that moves only when a test says so.  Both give:
 *   clock_now()      wall-clock time, unix seconds (CLOCK_REALTIME);
 *   clock_mono_ms()  monotonic milliseconds, for deadlines and timeouts
 *                    (CLOCK_MONOTONIC: never jumps, unrelated to the date).
 *
 * Timers are file descriptors for the main loop's poll/epoll set:
 *   clock_timer_new(c, wake)  fires at a wall-clock time.  On the real clock
 *       it is a timerfd on CLOCK_REALTIME (CLOCK_REALTIME_ALARM when wake is
 *       true, so that a sleeping machine wakes up for it), armed with
 *       TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET: when anyone sets the
 *       clock (a jump forward or back, NTP stepping, a user's `date -s`),
 *       clock_timer_read() says CLOCK_TIMER_JUMPED, and the caller recomputes
 *       its schedule and re-arms.  Without the right to wake the machine
 *       (CAP_WAKE_ALARM, or no RTC alarm) the timer falls back to
 *       CLOCK_REALTIME, says so once in the log, and clock_timer_wakes()
 *       returns false.
 *   clock_deadline_new(c)  fires at a monotonic time (clock_mono_ms()
 *       terms): max-runtime deadlines.  It never reports a jump.
 * On the fake clock a timer's fd is an eventfd that becomes readable when
 * clock_fake_advance() passes its time, or (wall-clock timers only) when
 * clock_fake_set() makes the clock jump; so a main loop can be tested with
 * its real poll loop.
 *
 * A timer fires once per arming; arm it again after it fired or jumped.  A
 * wall-clock timer hears jumps only while armed, so keep it armed even when
 * nothing is due (clock_timer_arm_at() with when = 0 does that).
 *
 * Ownership: clock_*_new() return objects freed with clock_free(), and
 * clock_timer_new()/clock_deadline_new() return timers freed with
 * clock_timer_free() (which closes the fd).  Free every timer before its
 * clock.  Both frees accept NULL.  Not thread-safe: one loop owns a clock.
 */
#ifndef VIGIL_CLOCK_H
#define VIGIL_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct vg_err;
struct vg_clock;
struct vg_clock_timer;

enum clock_timer_event {
	CLOCK_TIMER_NONE = 0,	/* nothing happened yet (spurious wake-up) */
	CLOCK_TIMER_FIRED,	/* the armed time was reached */
	CLOCK_TIMER_JUMPED,	/* the wall clock was set: recompute, re-arm */
};

struct vg_clock	*clock_real_new(void);
/* A fake clock whose wall time starts at start (unix seconds) and whose
 * monotonic time starts at 1000 s. */
struct vg_clock	*clock_fake_new(time_t start);
void		 clock_free(struct vg_clock *c);
bool		 clock_is_fake(const struct vg_clock *c);

time_t		 clock_now(const struct vg_clock *c);
int64_t		 clock_mono_ms(const struct vg_clock *c);
/*
 * How long the machine has been suspended since boot, in milliseconds
 * (CLOCK_BOOTTIME - CLOCK_MONOTONIC).  When it grew between two wake-ups,
 * the machine slept in between: treat it like a clock jump (sched_missed()).
 */
int64_t		 clock_slept_ms(const struct vg_clock *c);

/* Fake clock only (no-ops on the real one).  advance moves wall and
 * monotonic time forward by seconds (>= 0): time passing.  set puts the
 * wall clock at real, leaving monotonic time alone: a clock jump, forward or
 * back; armed wall-clock timers report CLOCK_TIMER_JUMPED. */
void		 clock_fake_advance(struct vg_clock *c, int64_t seconds);
void		 clock_fake_set(struct vg_clock *c, time_t real);
/* Fake: the machine sleeps for seconds: wall time and clock_slept_ms()
 * move, monotonic time does not; wall-clock timers that came due fire. */
void		 clock_fake_sleep(struct vg_clock *c, int64_t seconds);

/* NULL with err filled when the timer cannot be made. */
struct vg_clock_timer *clock_timer_new(struct vg_clock *c, bool wake,
		    struct vg_err *err);
struct vg_clock_timer *clock_deadline_new(struct vg_clock *c,
		    struct vg_err *err);
void		 clock_timer_free(struct vg_clock_timer *t);

/* True when a wall-clock timer really wakes the machine. */
bool		 clock_timer_wakes(const struct vg_clock_timer *t);
/* The fd to wait on (readable when there is something to read). */
int		 clock_timer_fd(const struct vg_clock_timer *t);

/*
 * Arm a wall-clock timer for when (unix seconds; a time in the past fires at
 * once).  when = 0 arms it a year ahead, only to hear clock jumps.  Arm a
 * deadline timer with clock_timer_arm_mono() (when_ms in clock_mono_ms()
 * terms).  Disarm stops either.  Re-arming replaces the previous time and
 * forgets a firing not read yet.  0, or -1 with err filled.
 */
int		 clock_timer_arm_at(struct vg_clock_timer *t, time_t when,
		    struct vg_err *err);
int		 clock_timer_arm_mono(struct vg_clock_timer *t, int64_t when_ms,
		    struct vg_err *err);
int		 clock_timer_disarm(struct vg_clock_timer *t, struct vg_err *err);

/*
 * What happened, without blocking: an enum clock_timer_event, or -1 with
 * err filled.  After FIRED or JUMPED the timer is disarmed.
 */
int		 clock_timer_read(struct vg_clock_timer *t, struct vg_err *err);

#endif
