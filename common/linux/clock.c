/*
 * clock.c: the real clock (clock_gettime, timerfd) and the fake clock
 * (eventfds a test moves by hand) behind common/clock.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

/* What the kernel says when there is no RTC to wake from (ENOTSUPP). */
#define CLOCK_ENOTSUPP		524
/* "Nothing due": arm this far ahead only to hear clock jumps. */
#define CLOCK_IDLE_AHEAD_S	(365 * 86400)

enum clock_timer_kind { CLOCK_KIND_REAL, CLOCK_KIND_MONO };

struct vg_clock_timer {
	struct vg_clock		*clock;
	enum clock_timer_kind	 kind;
	bool			 wakes;
	int			 fd;
	/* Fake clock only. */
	bool			 armed;
	int64_t			 when;	/* unix s (REAL) or mono ms (MONO) */
	int			 pending; /* enum clock_timer_event */
	struct vg_clock_timer	*next;
};

struct vg_clock {
	bool			 fake;
	time_t			 real;		/* fake: wall clock */
	int64_t			 mono_ms;	/* fake: monotonic */
	int64_t			 slept_ms;	/* fake: time suspended */
	struct vg_clock_timer	*timers;	/* fake: every live timer */
};

/* One log line per process when wake = yes cannot wake the machine. */
static bool clock_alarm_warned;

struct vg_clock *
clock_real_new(void)
{
	struct vg_clock *c;

	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	return c;
}

struct vg_clock *
clock_fake_new(time_t start)
{
	struct vg_clock *c;

	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	c->fake = true;
	c->real = start;
	c->mono_ms = 1000 * 1000;
	return c;
}

void
clock_free(struct vg_clock *c)
{
	free(c);
}

bool
clock_is_fake(const struct vg_clock *c)
{
	return c->fake;
}

time_t
clock_now(const struct vg_clock *c)
{
	struct timespec ts;

	if (c->fake)
		return c->real;
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return time(NULL);
	return ts.tv_sec;
}

int64_t
clock_mono_ms(const struct vg_clock *c)
{
	struct timespec ts;

	if (c->fake)
		return c->mono_ms;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;	/* cannot happen on Linux */
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
clock_slept_ms(const struct vg_clock *c)
{
	struct timespec b, m;

	if (c->fake)
		return c->slept_ms;
	if (clock_gettime(CLOCK_BOOTTIME, &b) == -1 ||
	    clock_gettime(CLOCK_MONOTONIC, &m) == -1)
		return 0;
	return ((int64_t)b.tv_sec - m.tv_sec) * 1000 +
	    (b.tv_nsec - m.tv_nsec) / 1000000;
}

/* Fake: wake t's fd with event ev (the first event wins until read). */
static void
clock_fake_signal(struct vg_clock_timer *t, int ev)
{
	uint64_t one = 1;

	t->armed = false;
	if (t->pending == CLOCK_TIMER_NONE)
		t->pending = ev;
	/* Cannot fail short of a counter overflow, which one write per
	 * firing never reaches. */
	if (write(t->fd, &one, sizeof one) == -1)
		return;
}

/* Fake: fire every armed timer whose time has come. */
static void
clock_fake_check(struct vg_clock *c)
{
	struct vg_clock_timer *t;

	for (t = c->timers; t != NULL; t = t->next) {
		if (!t->armed)
			continue;
		if ((t->kind == CLOCK_KIND_REAL && c->real >= t->when) ||
		    (t->kind == CLOCK_KIND_MONO && c->mono_ms >= t->when))
			clock_fake_signal(t, CLOCK_TIMER_FIRED);
	}
}

void
clock_fake_advance(struct vg_clock *c, int64_t seconds)
{
	if (!c->fake || seconds < 0)
		return;
	c->real += (time_t)seconds;
	c->mono_ms += seconds * 1000;
	clock_fake_check(c);
}

void
clock_fake_sleep(struct vg_clock *c, int64_t seconds)
{
	if (!c->fake || seconds < 0)
		return;
	c->real += (time_t)seconds;
	c->slept_ms += seconds * 1000;
	clock_fake_check(c);
}

void
clock_fake_set(struct vg_clock *c, time_t real)
{
	struct vg_clock_timer *t;

	if (!c->fake)
		return;
	c->real = real;
	/* Like TFD_TIMER_CANCEL_ON_SET: every armed wall-clock timer hears
	 * the jump, even one set to the clock's current value. */
	for (t = c->timers; t != NULL; t = t->next)
		if (t->armed && t->kind == CLOCK_KIND_REAL)
			clock_fake_signal(t, CLOCK_TIMER_JUMPED);
}

static struct vg_clock_timer *
clock_timer_make(struct vg_clock *c, enum clock_timer_kind kind, bool wake,
    struct vg_err *err)
{
	struct vg_clock_timer *t = NULL;
	clockid_t id;
	int e;

	if ((t = calloc(1, sizeof *t)) == NULL) {
		vg_err_sys(err, "cannot allocate a timer");
		return NULL;
	}
	t->clock = c;
	t->kind = kind;
	t->fd = -1;
	if (c->fake) {
		t->wakes = wake;
		if ((t->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
			vg_err_sys(err, "cannot create a fake timer (eventfd)");
			goto fail;
		}
		t->next = c->timers;
		c->timers = t;
		return t;
	}
	if (kind == CLOCK_KIND_MONO)
		id = CLOCK_MONOTONIC;
	else
		id = wake ? CLOCK_REALTIME_ALARM : CLOCK_REALTIME;
	t->fd = timerfd_create(id, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd == -1 && id == CLOCK_REALTIME_ALARM) {
		e = errno;
		if (e == EPERM || e == EINVAL || e == EOPNOTSUPP ||
		    e == CLOCK_ENOTSUPP) {
			if (!clock_alarm_warned) {
				clock_alarm_warned = true;
				log_warnx("wake = yes: cannot arm a timer that "
				    "wakes the machine (%s); runs will wait "
				    "until it is awake.  Give vigild "
				    "CAP_WAKE_ALARM and an RTC alarm to fix "
				    "this", e == EPERM ?
				    "no CAP_WAKE_ALARM" : "no RTC alarm");
			}
			t->fd = timerfd_create(CLOCK_REALTIME,
			    TFD_NONBLOCK | TFD_CLOEXEC);
		} else
			errno = e;
	} else if (t->fd != -1 && id == CLOCK_REALTIME_ALARM)
		t->wakes = true;
	if (t->fd == -1) {
		vg_err_sys(err, "cannot create a timer (timerfd_create)");
		goto fail;
	}
	return t;
fail:
	free(t);
	return NULL;
}

struct vg_clock_timer *
clock_timer_new(struct vg_clock *c, bool wake, struct vg_err *err)
{
	return clock_timer_make(c, CLOCK_KIND_REAL, wake, err);
}

struct vg_clock_timer *
clock_deadline_new(struct vg_clock *c, struct vg_err *err)
{
	return clock_timer_make(c, CLOCK_KIND_MONO, false, err);
}

void
clock_timer_free(struct vg_clock_timer *t)
{
	struct vg_clock_timer **pp;

	if (t == NULL)
		return;
	if (t->clock->fake) {
		for (pp = &t->clock->timers; *pp != NULL; pp = &(*pp)->next)
			if (*pp == t) {
				*pp = t->next;
				break;
			}
	}
	if (t->fd != -1)
		close(t->fd);
	free(t);
}

bool
clock_timer_wakes(const struct vg_clock_timer *t)
{
	return t->wakes;
}

int
clock_timer_fd(const struct vg_clock_timer *t)
{
	return t->fd;
}

/* Fake: forget a firing nobody read. */
static void
clock_fake_drain(struct vg_clock_timer *t)
{
	uint64_t v;

	t->pending = CLOCK_TIMER_NONE;
	/* EAGAIN when there was nothing to forget. */
	if (read(t->fd, &v, sizeof v) == -1)
		return;
}

int
clock_timer_arm_at(struct vg_clock_timer *t, time_t when, struct vg_err *err)
{
	struct itimerspec its;

	if (t->kind != CLOCK_KIND_REAL) {
		vg_err_set(err, VG_ERR_INTERNAL, "a deadline timer is armed "
		    "with clock_timer_arm_mono()");
		return -1;
	}
	if (when <= 0)
		when = clock_now(t->clock) + CLOCK_IDLE_AHEAD_S;
	if (t->clock->fake) {
		clock_fake_drain(t);
		t->armed = true;
		t->when = when;
		clock_fake_check(t->clock);
		return 0;
	}
	memset(&its, 0, sizeof its);
	its.it_value.tv_sec = when;
	if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET,
	    &its, NULL) == -1) {
		vg_err_sys(err, "cannot arm a timer for %lld",
		    (long long)when);
		return -1;
	}
	return 0;
}

int
clock_timer_arm_mono(struct vg_clock_timer *t, int64_t when_ms,
    struct vg_err *err)
{
	struct itimerspec its;

	if (t->kind != CLOCK_KIND_MONO) {
		vg_err_set(err, VG_ERR_INTERNAL, "a wall-clock timer is armed "
		    "with clock_timer_arm_at()");
		return -1;
	}
	if (when_ms <= 0)
		when_ms = 1;	/* 0 would disarm a timerfd */
	if (t->clock->fake) {
		clock_fake_drain(t);
		t->armed = true;
		t->when = when_ms;
		clock_fake_check(t->clock);
		return 0;
	}
	memset(&its, 0, sizeof its);
	its.it_value.tv_sec = when_ms / 1000;
	its.it_value.tv_nsec = (when_ms % 1000) * 1000000;
	if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) == -1) {
		vg_err_sys(err, "cannot arm a deadline timer");
		return -1;
	}
	return 0;
}

int
clock_timer_disarm(struct vg_clock_timer *t, struct vg_err *err)
{
	struct itimerspec its;

	if (t->clock->fake) {
		clock_fake_drain(t);
		t->armed = false;
		return 0;
	}
	memset(&its, 0, sizeof its);
	if (timerfd_settime(t->fd, 0, &its, NULL) == -1) {
		vg_err_sys(err, "cannot disarm a timer");
		return -1;
	}
	return 0;
}

int
clock_timer_read(struct vg_clock_timer *t, struct vg_err *err)
{
	uint64_t v;
	ssize_t n;
	int ev;

	if (t->clock->fake) {
		ev = t->pending;
		clock_fake_drain(t);
		return ev;
	}
	n = read(t->fd, &v, sizeof v);
	if (n == (ssize_t)sizeof v)
		return CLOCK_TIMER_FIRED;
	if (n == -1 && errno == ECANCELED) {
		/* The kernel stops listening for jumps after reporting one,
		 * but the expiry stays pending: disarm, as documented. */
		if (clock_timer_disarm(t, err) == -1)
			return -1;
		return CLOCK_TIMER_JUMPED;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return CLOCK_TIMER_NONE;
	if (n == -1)
		vg_err_sys(err, "cannot read a timer");
	else
		vg_err_set(err, VG_ERR_INTERNAL, "short read (%zd bytes) "
		    "from a timer", n);
	return -1;
}
