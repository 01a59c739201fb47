/*
 * test_sched.c: the scheduler's decisions, driven by a fake clock: DST in
 * two zones, clock jumps both ways, missed runs after a simulated shutdown,
 * windows, the concurrency limit, the dead-man's switch and wake-ups.
 *
 * Expected instants are written in UTC (timegm), independent of the code
 * under test; the zone only decides what the schedule means.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/err.h"
#include "scheduler/sched.h"

#define H	3600
#define DAY	86400

static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static time_t
utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return timegm(&tm);
}

static const char *
show(time_t t)
{
	static char buf[4][64];
	static int k;
	struct tm tm;

	k = (k + 1) % 4;
	if (t == 0)
		return "never";
	gmtime_r(&t, &tm);
	strftime(buf[k], sizeof buf[k], "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf[k];
}

#define assert_time(got, want) do {					\
	time_t g_ = (got), w_ = (want);					\
	if (g_ != w_)							\
		fail_msg("got %s, want %s", show(g_), show(w_));	\
} while (0)

static struct sched_job *
job_make(int64_t id, const char *schedule, bool window, unsigned ws,
    unsigned we)
{
	struct vg_job_def d;
	struct vg_err err;
	struct sched_job *j;
	char name[32];

	memset(&d, 0, sizeof d);
	memset(&err, 0, sizeof err);
	(void)snprintf(name, sizeof name, "job%lld", (long long)id);
	d.name = name;
	d.schedule = (char *)schedule;
	d.missed = VG_MISSED_RUN_ONCE;
	d.grace_s = 12 * H;
	d.has_window = window;
	d.window_start = ws;
	d.window_end = we;
	j = sched_job_new(id, &d, &err);
	if (j == NULL)
		fail_msg("sched_job_new: %s", err.msg);
	return j;
}

static struct sched_job *
job(int64_t id, const char *schedule)
{
	return job_make(id, schedule, false, 0, 0);
}

/* ---- a small main loop on the fake clock ---- */

struct sim {
	struct vg_clock		*clock;
	struct vg_clock_timer	*timer;
	struct sched_job	*jobs[8];
	time_t			 ends[8];
	size_t			 njobs;
	unsigned		 concurrency;
	time_t			 run_len;
	struct {
		int64_t	 id;
		time_t	 at;
	}			 runs[64];
	size_t			 nruns;
	struct sched_missed_result missed[8];
};

static void
sim_init(struct sim *s, time_t start)
{
	memset(s, 0, sizeof *s);
	s->clock = clock_fake_new(start);
	assert_non_null(s->clock);
	s->timer = clock_timer_new(s->clock, false, NULL);
	assert_non_null(s->timer);
	s->run_len = 10 * 60;
}

static void
sim_add(struct sim *s, struct sched_job *j)
{
	assert_true(s->njobs < 8);
	s->jobs[s->njobs++] = j;
}

static void
sim_free(struct sim *s)
{
	size_t i;

	for (i = 0; i < s->njobs; i++)
		sched_job_free(s->jobs[i]);
	clock_timer_free(s->timer);
	clock_free(s->clock);
}

/* Service start, or the loop after a jump: the missed-run decisions. */
static void
sim_missed(struct sim *s)
{
	size_t i;

	for (i = 0; i < s->njobs; i++)
		sched_missed(s->jobs[i], clock_now(s->clock), &s->missed[i]);
}

/* End the runs that are over, start what sched_pick() says. */
static void
sim_step(struct sim *s)
{
	struct sched_pick p;
	time_t now = clock_now(s->clock);
	unsigned running = 0;
	size_t i, k;

	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i]->running && s->ends[i] <= now)
			(void)sched_run_finished(s->jobs[i], now, true);
	for (i = 0; i < s->njobs; i++)
		running += s->jobs[i]->running;
	assert_int_equal(sched_pick(s->jobs, s->njobs, now, s->concurrency,
	    running, &p, NULL), 0);
	for (k = 0; k < p.nstart; k++) {
		for (i = 0; i < s->njobs; i++)
			if (s->jobs[i] == p.start[k])
				break;
		assert_true(i < s->njobs);
		assert_true(s->nruns < 64);
		s->runs[s->nruns].id = s->jobs[i]->id;
		s->runs[s->nruns++].at = now;
		sched_run_started(s->jobs[i], now);
		s->ends[i] = now + s->run_len;
	}
	sched_pick_release(&p);
}

/* Run the loop until `until`: wake only when the timer fires. */
static void
sim_until(struct sim *s, time_t until)
{
	struct sched_wakeup w;
	time_t now, next;
	size_t i;
	int ev;

	for (;;) {
		sim_step(s);
		now = clock_now(s->clock);
		sched_next_wakeup(s->jobs, s->njobs, now, &w);
		next = w.at;
		for (i = 0; i < s->njobs; i++)
			if (s->jobs[i]->running && (next == 0 ||
			    s->ends[i] < next))
				next = s->ends[i];
		if (next == 0 || next > until) {
			clock_fake_advance(s->clock, until - now);
			return;
		}
		assert_true(next > now);
		assert_int_equal(clock_timer_arm_at(s->timer, next, NULL), 0);
		clock_fake_advance(s->clock, next - now);
		ev = clock_timer_read(s->timer, NULL);
		assert_int_equal(ev, CLOCK_TIMER_FIRED);
	}
}

/* The clock is set to t while the loop waits: the timer says so. */
static void
sim_jump(struct sim *s, time_t t)
{
	assert_int_equal(clock_timer_arm_at(s->timer, 0, NULL), 0);
	clock_fake_set(s->clock, t);
	assert_int_equal(clock_timer_read(s->timer, NULL), CLOCK_TIMER_JUMPED);
	sim_missed(s);
}

static size_t
sim_runs_of(const struct sim *s, int64_t id)
{
	size_t i, n = 0;

	for (i = 0; i < s->nruns; i++)
		n += s->runs[i].id == id;
	return n;
}

/* ---- next run and DST ---- */

static void
test_next_daily(void **state)
{
	struct sched_job *j;

	(void)state;
	set_tz("Europe/Berlin");
	j = job(1, "daily 02:00");
	/* 2024-06-10 12:00 CEST -> 2024-06-11 02:00 CEST = 00:00Z */
	assert_time(sched_next_due(j, utc(2024, 6, 10, 10, 0)),
	    utc(2024, 6, 11, 0, 0));
	sched_job_free(j);
}

static void
test_next_manual_is_never(void **state)
{
	struct sched_job *j;

	(void)state;
	j = job(1, "manual");
	assert_time(sched_next_due(j, utc(2024, 6, 10, 10, 0)), 0);
	sched_job_free(j);
}

/* A skipped time runs at the first valid minute after it, once. */
static void
spring_forward(const char *tz, time_t start, time_t want, time_t after)
{
	struct sim s;

	set_tz(tz);
	sim_init(&s, start);
	sim_add(&s, job(1, "daily 02:30"));
	sim_missed(&s);
	assert_time(s.jobs[0]->next_run, want);
	sim_until(&s, start + 2 * DAY);
	assert_int_equal(s.nruns, 2);
	assert_time(s.runs[0].at, want);
	assert_time(s.runs[1].at, after);
	sim_free(&s);
}

static void
test_dst_spring_berlin(void **state)
{
	(void)state;
	/* 2024-03-31: 02:00 CET -> 03:00 CEST at 01:00Z. */
	spring_forward("Europe/Berlin", utc(2024, 3, 30, 11, 0),
	    utc(2024, 3, 31, 1, 0), utc(2024, 4, 1, 0, 30));
}

static void
test_dst_spring_new_york(void **state)
{
	(void)state;
	/* 2024-03-10: 02:00 EST -> 03:00 EDT at 07:00Z. */
	spring_forward("America/New_York", utc(2024, 3, 9, 17, 0),
	    utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 30));
}

/* The repeated hour runs once: the loop lives through both copies. */
static void
fall_back(const char *tz, const char *schedule, time_t start, time_t first,
    time_t second_copy, time_t next_day)
{
	struct sim s;

	set_tz(tz);
	sim_init(&s, start);
	sim_add(&s, job(1, schedule));
	sim_missed(&s);
	sim_until(&s, second_copy + 30 * 60);
	assert_int_equal(s.nruns, 1);
	assert_time(s.runs[0].at, first);
	assert_time(s.jobs[0]->next_run, next_day);
	sim_until(&s, next_day + H);
	assert_int_equal(s.nruns, 2);
	assert_time(s.runs[1].at, next_day);
	sim_free(&s);
}

static void
test_dst_fall_back_berlin(void **state)
{
	(void)state;
	/* 2024-10-27: 03:00 CEST -> 02:00 CET at 01:00Z; 02:30 happens at
	 * 00:30Z and again at 01:30Z. */
	fall_back("Europe/Berlin", "daily 02:30", utc(2024, 10, 26, 10, 0),
	    utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30),
	    utc(2024, 10, 28, 1, 30));
}

static void
test_dst_fall_back_new_york(void **state)
{
	(void)state;
	/* 2024-11-03: 02:00 EDT -> 01:00 EST at 06:00Z; 01:30 happens at
	 * 05:30Z and again at 06:30Z. */
	fall_back("America/New_York", "daily 01:30", utc(2024, 11, 2, 12, 0),
	    utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30),
	    utc(2024, 11, 4, 6, 30));
}

/* The fake clock replays the repeated hour by jumping back after the run
 * (as a wrong NTP step would): the slot still runs once. */
static void
test_dst_fall_back_replayed_by_jump(void **state)
{
	struct sim s;

	(void)state;
	set_tz("America/New_York");
	sim_init(&s, utc(2024, 11, 3, 4, 0));
	sim_add(&s, job(1, "daily 01:30"));
	sim_missed(&s);
	sim_until(&s, utc(2024, 11, 3, 5, 50));
	assert_int_equal(s.nruns, 1);
	assert_time(s.runs[0].at, utc(2024, 11, 3, 5, 30));
	sim_jump(&s, utc(2024, 11, 3, 5, 0));	/* 01:00 EDT again */
	assert_int_equal(s.missed[0].action, SCHED_MISSED_NONE);
	assert_time(s.jobs[0]->next_run, utc(2024, 11, 4, 6, 30));
	sim_until(&s, utc(2024, 11, 3, 12, 0));
	assert_int_equal(s.nruns, 1);
	sim_free(&s);
}

/* ---- clock jumps ---- */

static void
test_jump_back_after_run_does_not_repeat(void **state)
{
	struct sim s;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 10, 20, 0));
	sim_add(&s, job(1, "daily 02:00"));
	sim_missed(&s);
	sim_until(&s, utc(2024, 6, 11, 1, 0));
	assert_int_equal(s.nruns, 1);
	/* Back 3 h, to before the slot that just ran. */
	sim_jump(&s, utc(2024, 6, 10, 22, 0));
	assert_time(s.jobs[0]->next_run, utc(2024, 6, 12, 0, 0));
	sim_until(&s, utc(2024, 6, 11, 6, 0));
	assert_int_equal(s.nruns, 1);
	sim_free(&s);
}

static void
test_jump_back_recomputes_from_new_time(void **state)
{
	struct sim s;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 12, 8, 0));
	sim_add(&s, job(1, "daily 02:00"));
	sim_missed(&s);
	assert_time(s.jobs[0]->next_run, utc(2024, 6, 13, 0, 0));
	/* Never ran: after a jump back of two days the slot of the new
	 * today is next. */
	sim_jump(&s, utc(2024, 6, 10, 8, 0));
	assert_time(s.jobs[0]->next_run, utc(2024, 6, 11, 0, 0));
	sim_until(&s, utc(2024, 6, 11, 1, 0));
	assert_int_equal(s.nruns, 1);
	assert_time(s.runs[0].at, utc(2024, 6, 11, 0, 0));
	sim_free(&s);
}

static void
test_jump_back_far_future_last_run_ignored(void **state)
{
	struct sched_job *j;
	time_t now = utc(2024, 6, 10, 8, 0);

	(void)state;
	set_tz("Europe/Berlin");
	j = job(1, "daily 02:00");
	/* Recorded while the clock read a month ahead: guarding on it would
	 * stop the job for a month. */
	j->last_run = now + 30 * DAY;
	assert_time(sched_next_due(j, now), utc(2024, 6, 11, 0, 0));
	/* Within the guard it holds. */
	j->last_run = now + DAY;
	assert_time(sched_next_due(j, now), utc(2024, 6, 12, 0, 0));
	sched_job_free(j);
}

static void
test_jump_forward_within_grace_runs_once(void **state)
{
	struct sim s;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 10, 20, 0));
	sim_add(&s, job(1, "every 1h"));
	sim_add(&s, job(2, "daily 02:00"));
	sim_missed(&s);
	/* Forward 5 h across the 02:00 slot and five hourly ones. */
	sim_jump(&s, utc(2024, 6, 11, 1, 0));
	assert_int_equal(s.missed[0].action, SCHED_MISSED_RUN);
	assert_int_equal(s.missed[1].action, SCHED_MISSED_RUN);
	assert_time(s.missed[1].slot, utc(2024, 6, 11, 0, 0));
	sim_until(&s, utc(2024, 6, 11, 1, 30));
	assert_int_equal(sim_runs_of(&s, 1), 1);
	assert_int_equal(sim_runs_of(&s, 2), 1);
	assert_time(s.runs[0].at, utc(2024, 6, 11, 1, 0));
	assert_time(s.jobs[1]->next_run, utc(2024, 6, 12, 0, 0));
	sim_free(&s);
}

static void
test_jump_forward_beyond_grace_skips(void **state)
{
	struct sim s;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 10, 20, 0));
	sim_add(&s, job(1, "daily 02:00"));
	s.jobs[0]->grace_s = H;
	sim_missed(&s);
	sim_jump(&s, utc(2024, 6, 11, 3, 0));	/* 05:00 CEST */
	assert_int_equal(s.missed[0].action, SCHED_MISSED_SKIP);
	assert_string_equal(s.missed[0].reason, SCHED_REASON_GRACE);
	assert_time(s.missed[0].slot, utc(2024, 6, 11, 0, 0));
	sim_until(&s, utc(2024, 6, 11, 20, 0));
	assert_int_equal(s.nruns, 0);
	assert_time(s.jobs[0]->next_run, utc(2024, 6, 12, 0, 0));
	sim_free(&s);
}

/* ---- missed runs after a simulated shutdown ---- */

/* The service stops: everything but what the DB keeps is lost. */
static struct sched_job *
restart(struct sched_job *old, const char *schedule)
{
	struct sched_job *j = job(old->id, schedule);

	j->missed = old->missed;
	j->grace_s = old->grace_s;
	j->last_run = old->last_run;
	j->last_success = old->last_success;
	j->next_run = old->next_run;
	sched_job_free(old);
	return j;
}

static void
test_missed_within_grace_one_catch_up(void **state)
{
	struct sim s;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 9, 20, 0));
	sim_add(&s, job(1, "daily 02:00"));
	sim_missed(&s);
	sim_until(&s, utc(2024, 6, 10, 10, 0));
	assert_int_equal(s.nruns, 1);
	/* Down from 12:00 to 10:00 CEST the next day: the 02:00 slot passed
	 * 8 h ago, within the 12 h grace. */
	s.jobs[0] = restart(s.jobs[0], "daily 02:00");
	clock_fake_advance(s.clock, 22 * H);
	sim_missed(&s);
	assert_int_equal(s.missed[0].action, SCHED_MISSED_RUN);
	assert_time(s.missed[0].slot, utc(2024, 6, 11, 0, 0));
	sim_until(&s, utc(2024, 6, 11, 20, 0));
	assert_int_equal(s.nruns, 2);
	assert_time(s.runs[1].at, utc(2024, 6, 11, 8, 0));
	assert_time(s.jobs[0]->next_run, utc(2024, 6, 12, 0, 0));
	sim_free(&s);
}

static void
test_missed_beyond_grace_skipped(void **state)
{
	struct sim s;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 10, 10, 0));
	sim_add(&s, job(1, "daily 02:00"));
	sim_missed(&s);
	s.jobs[0] = restart(s.jobs[0], "daily 02:00");
	/* Back the next day at 22:00 CEST: 02:00 was 20 h ago. */
	clock_fake_advance(s.clock, 34 * H);
	sim_missed(&s);
	assert_int_equal(s.missed[0].action, SCHED_MISSED_SKIP);
	assert_string_equal(s.missed[0].reason, "missed by more than grace");
	assert_time(s.missed[0].slot, utc(2024, 6, 11, 0, 0));
	assert_time(s.jobs[0]->next_run, utc(2024, 6, 12, 0, 0));
	sim_until(&s, utc(2024, 6, 11, 23, 0));
	assert_int_equal(s.nruns, 0);
	sim_free(&s);
}

static void
test_missed_many_slots_one_run(void **state)
{
	struct sim s;
	time_t back = utc(2024, 6, 13, 12, 30);

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 10, 10, 0));
	sim_add(&s, job(1, "every 1h"));
	sim_add(&s, job(2, "30 * * * *"));
	sim_missed(&s);
	sim_until(&s, utc(2024, 6, 10, 12, 15));
	s.jobs[0] = restart(s.jobs[0], "every 1h");
	s.jobs[1] = restart(s.jobs[1], "30 * * * *");
	s.nruns = 0;
	/* Three days down: over seventy slots each. */
	clock_fake_advance(s.clock, back - utc(2024, 6, 10, 12, 15));
	sim_missed(&s);
	assert_int_equal(s.missed[0].action, SCHED_MISSED_RUN);
	assert_int_equal(s.missed[1].action, SCHED_MISSED_RUN);
	sim_until(&s, back + 50 * 60);
	assert_int_equal(sim_runs_of(&s, 1), 1);
	assert_int_equal(sim_runs_of(&s, 2), 1);
	assert_time(s.runs[0].at, back);
	assert_time(s.runs[1].at, back);
	sim_free(&s);
}

/* Several days missed, and the latest slot decides: a daily job back
 * 1 h after its slot catches up even though the first missed slot is days
 * old. */
static void
test_missed_latest_slot_decides(void **state)
{
	struct sched_job *j;
	struct sched_missed_result r;

	(void)state;
	set_tz("Europe/Berlin");
	j = job(1, "daily 02:00");
	j->next_run = utc(2024, 6, 8, 0, 0);
	sched_missed(j, utc(2024, 6, 11, 1, 0), &r);
	assert_int_equal(r.action, SCHED_MISSED_RUN);
	assert_time(r.slot, utc(2024, 6, 11, 0, 0));
	assert_time(j->next_run, utc(2024, 6, 11, 1, 0));
	/* Back 23 h after the latest slot: every one is beyond grace. */
	j->next_run = utc(2024, 6, 8, 0, 0);
	sched_missed(j, utc(2024, 6, 11, 23, 0), &r);
	assert_int_equal(r.action, SCHED_MISSED_SKIP);
	assert_time(r.slot, utc(2024, 6, 8, 0, 0));
	assert_time(j->next_run, utc(2024, 6, 12, 0, 0));
	sched_job_free(j);
}

static void
test_missed_policy_skip(void **state)
{
	struct sched_job *j;
	struct sched_missed_result r;

	(void)state;
	set_tz("Europe/Berlin");
	j = job(1, "daily 02:00");
	j->missed = VG_MISSED_SKIP;
	j->next_run = utc(2024, 6, 11, 0, 0);
	sched_missed(j, utc(2024, 6, 11, 0, 5), &r);
	assert_int_equal(r.action, SCHED_MISSED_SKIP);
	assert_string_equal(r.reason, SCHED_REASON_POLICY);
	assert_time(j->next_run, utc(2024, 6, 12, 0, 0));
	sched_job_free(j);
}

static void
test_missed_nothing_missed(void **state)
{
	struct sched_job *j;
	struct sched_missed_result r;

	(void)state;
	set_tz("Europe/Berlin");
	j = job(1, "daily 02:00");
	j->next_run = utc(2024, 6, 12, 0, 0);
	sched_missed(j, utc(2024, 6, 11, 10, 0), &r);
	assert_int_equal(r.action, SCHED_MISSED_NONE);
	assert_null(r.reason);
	assert_time(j->next_run, utc(2024, 6, 12, 0, 0));
	sched_job_free(j);
}

static void
test_missed_interrupted_run(void **state)
{
	struct sched_job *j;
	struct sched_missed_result r;

	(void)state;
	set_tz("Europe/Berlin");
	j = job(1, "daily 02:00");
	/* Killed mid-run: the next slot is still ahead, but the run that was
	 * going counts as missed. */
	j->last_run = utc(2024, 6, 11, 0, 0);
	j->next_run = utc(2024, 6, 12, 0, 0);
	j->interrupted = true;
	sched_missed(j, utc(2024, 6, 11, 1, 0), &r);
	assert_int_equal(r.action, SCHED_MISSED_RUN);
	assert_time(r.slot, utc(2024, 6, 11, 0, 0));
	assert_time(j->next_run, utc(2024, 6, 11, 1, 0));
	assert_false(j->interrupted);
	/* The same, back after grace. */
	j->interrupted = true;
	j->next_run = utc(2024, 6, 12, 0, 0);
	sched_missed(j, utc(2024, 6, 11, 20, 0), &r);
	assert_int_equal(r.action, SCHED_MISSED_SKIP);
	assert_string_equal(r.reason, SCHED_REASON_GRACE);
	assert_time(j->next_run, utc(2024, 6, 12, 0, 0));
	sched_job_free(j);
}

static void
test_resume_from_sleep_counts_as_missed(void **state)
{
	struct sim s;
	int64_t slept;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 10, 20, 0));
	sim_add(&s, job(1, "daily 02:00"));
	s.jobs[0]->grace_s = H;
	sim_missed(&s);
	assert_int_equal(clock_timer_arm_at(s.timer, s.jobs[0]->next_run,
	    NULL), 0);
	slept = clock_slept_ms(s.clock);
	/* Asleep until 08:00 CEST: a plain timer fires late, on resume. */
	clock_fake_sleep(s.clock, 10 * H);
	assert_int_equal(clock_timer_read(s.timer, NULL), CLOCK_TIMER_FIRED);
	assert_true(clock_slept_ms(s.clock) > slept);
	sim_missed(&s);
	assert_int_equal(s.missed[0].action, SCHED_MISSED_SKIP);
	sim_until(&s, utc(2024, 6, 11, 12, 0));
	assert_int_equal(s.nruns, 0);
	sim_free(&s);
}

/* ---- windows ---- */

static void
test_window_crossing_midnight(void **state)
{
	struct sched_job *j;

	(void)state;
	set_tz("Europe/Berlin");
	j = job_make(1, "daily 02:00", true, 22 * 60, 6 * 60);
	/* CEST = UTC+2 */
	assert_true(sched_in_window(j, utc(2024, 6, 10, 20, 0)));  /* 22:00 */
	assert_true(sched_in_window(j, utc(2024, 6, 10, 23, 0)));  /* 01:00 */
	assert_true(sched_in_window(j, utc(2024, 6, 11, 3, 59)));  /* 05:59 */
	assert_false(sched_in_window(j, utc(2024, 6, 11, 4, 0)));  /* 06:00 */
	assert_false(sched_in_window(j, utc(2024, 6, 10, 19, 59))); /* 21:59 */
	sched_job_free(j);
	j = job_make(1, "daily 02:00", true, 60, 3 * 60);
	assert_true(sched_in_window(j, utc(2024, 6, 10, 23, 0)));  /* 01:00 */
	assert_false(sched_in_window(j, utc(2024, 6, 11, 1, 0)));  /* 03:00 */
	assert_false(sched_in_window(j, utc(2024, 6, 10, 22, 59))); /* 00:59 */
	sched_job_free(j);
}

static void
test_window_slot_outside_waits_for_opening(void **state)
{
	struct sim s;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 10, 6, 0));
	sim_add(&s, job_make(1, "daily 12:00", true, 22 * 60, 6 * 60));
	sim_missed(&s);
	/* 12:00 is outside 22:00-06:00: the run starts at 22:00. */
	assert_time(s.jobs[0]->next_run, utc(2024, 6, 10, 20, 0));
	sim_until(&s, utc(2024, 6, 11, 6, 0));
	assert_int_equal(s.nruns, 1);
	assert_time(s.runs[0].at, utc(2024, 6, 10, 20, 0));
	assert_time(s.jobs[0]->next_run, utc(2024, 6, 11, 20, 0));
	sim_free(&s);
}

static void
test_window_closes_while_waiting(void **state)
{
	struct sim s;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 10, 12, 0));
	s.concurrency = 1;
	s.run_len = 90 * 60;
	sim_add(&s, job(1, "daily 05:00"));
	sim_add(&s, job_make(2, "daily 05:50", true, 22 * 60, 6 * 60));
	sim_missed(&s);
	/* Job 1 runs 05:00-06:30; job 2 is due at 05:50 but waits for the
	 * slot, and when it frees the window has closed: 22:00 then. */
	sim_until(&s, utc(2024, 6, 11, 4, 40));		/* 06:40 */
	assert_int_equal(s.nruns, 1);
	assert_int_equal(s.runs[0].id, 1);
	assert_time(s.jobs[1]->next_run, utc(2024, 6, 11, 20, 0));
	sim_until(&s, utc(2024, 6, 11, 21, 0));
	assert_int_equal(s.nruns, 2);
	assert_int_equal(s.runs[1].id, 2);
	assert_time(s.runs[1].at, utc(2024, 6, 11, 20, 0));
	sim_free(&s);
}

static void
test_window_only_gates_starts(void **state)
{
	struct sched_job *j;
	struct sched_pick p;
	struct sched_job *v[1];

	(void)state;
	set_tz("Europe/Berlin");
	j = job_make(1, "daily 05:50", true, 22 * 60, 6 * 60);
	j->max_runtime_s = 2 * H;
	v[0] = j;
	sched_run_started(j, utc(2024, 6, 11, 3, 50));
	/* 06:30: the window closed, the run goes on; its only limit is
	 * max-runtime. */
	assert_int_equal(sched_pick(v, 1, utc(2024, 6, 11, 4, 30), 0, 1, &p,
	    NULL), 0);
	assert_int_equal(p.nstart + p.nwait + p.ndeferred, 0);
	sched_pick_release(&p);
	assert_true(j->running);
	assert_int_equal(sched_deadline(j, 5000), 5000 + 2 * H);
	j->max_runtime_s = UINT64_MAX;	/* saturates, never wraps */
	assert_true(sched_deadline(j, 5000) == INT64_MAX);
	j->max_runtime_s = 0;
	assert_int_equal(sched_deadline(j, 5000), 0);
	sched_job_free(j);
}

static void
test_window_opening_skipped_by_dst(void **state)
{
	struct sched_job *j;

	(void)state;
	set_tz("Europe/Berlin");
	/* 2024-03-31 has no 02:30: the window opens at 03:00 CEST. */
	j = job_make(1, "daily 01:00", true, 2 * 60 + 30, 5 * 60);
	assert_time(sched_next_due(j, utc(2024, 3, 30, 12, 0)),
	    utc(2024, 3, 31, 1, 0));
	sched_job_free(j);
}

static void
test_missed_catch_up_waits_for_window(void **state)
{
	struct sched_job *j;
	struct sched_missed_result r;

	(void)state;
	set_tz("Europe/Berlin");
	j = job_make(1, "daily 05:00", true, 22 * 60, 6 * 60);
	j->next_run = utc(2024, 6, 11, 3, 0);		/* 05:00 */
	sched_missed(j, utc(2024, 6, 11, 6, 0), &r);	/* 08:00 */
	assert_int_equal(r.action, SCHED_MISSED_RUN);
	assert_time(j->next_run, utc(2024, 6, 11, 20, 0));
	sched_job_free(j);
}

/* Days missed, and the latest slot waited for the window: it was due when
 * the window opened, which is within grace although the slot is not. */
static void
test_missed_window_deferred_slot_within_grace(void **state)
{
	struct sched_job *j;
	struct sched_missed_result r;

	(void)state;
	set_tz("Europe/Berlin");
	j = job_make(1, "daily 12:00", true, 22 * 60, 6 * 60);
	j->grace_s = 2 * H;
	j->next_run = utc(2024, 6, 7, 20, 0);
	/* 23:00 CEST: the 12:00 slot is 11 h old, its start (22:00) 1 h. */
	sched_missed(j, utc(2024, 6, 11, 21, 0), &r);
	assert_int_equal(r.action, SCHED_MISSED_RUN);
	assert_time(r.slot, utc(2024, 6, 11, 20, 0));
	assert_time(j->next_run, utc(2024, 6, 11, 21, 0));
	/* At 01:00 CEST that start is 3 h old: beyond grace. */
	j->next_run = utc(2024, 6, 7, 20, 0);
	sched_missed(j, utc(2024, 6, 11, 23, 0), &r);
	assert_int_equal(r.action, SCHED_MISSED_SKIP);
	assert_time(j->next_run, utc(2024, 6, 12, 20, 0));
	sched_job_free(j);
}

/* ---- concurrency ---- */

static void
test_concurrency_fifo_by_due_time(void **state)
{
	struct sched_job *v[5];
	struct sched_pick p;
	time_t now = utc(2024, 6, 11, 12, 0);
	size_t i;

	(void)state;
	set_tz("UTC");
	for (i = 0; i < 5; i++)
		v[i] = job((int64_t)i + 1, "every 1h");
	v[0]->next_run = now - 60;
	v[1]->next_run = now - 300;
	v[2]->next_run = now - 60;	/* ties with id 1: id 1 first */
	v[3]->next_run = now + 60;	/* not due */
	v[4]->next_run = now - 600;
	v[4]->running = true;		/* one run per job */
	assert_int_equal(sched_pick(v, 5, now, 2, 1, &p, NULL), 0);
	assert_int_equal(p.nstart, 1);
	assert_ptr_equal(p.start[0], v[1]);
	assert_int_equal(p.nwait, 2);
	assert_ptr_equal(p.wait[0], v[0]);
	assert_ptr_equal(p.wait[1], v[2]);
	sched_pick_release(&p);
	/* A manual request counts from when it was asked. */
	v[3]->requested = now - 400;
	assert_int_equal(sched_pick(v, 5, now, 3, 0, &p, NULL), 0);
	assert_int_equal(p.nstart, 3);
	assert_ptr_equal(p.start[0], v[3]);
	assert_ptr_equal(p.start[1], v[1]);
	assert_ptr_equal(p.start[2], v[0]);
	assert_int_equal(p.nwait, 1);
	sched_pick_release(&p);
	/* concurrency 0: no limit; a full house: nothing starts. */
	assert_int_equal(sched_pick(v, 5, now, 0, 7, &p, NULL), 0);
	assert_int_equal(p.nstart, 4);
	sched_pick_release(&p);
	assert_int_equal(sched_pick(v, 5, now, 2, 3, &p, NULL), 0);
	assert_int_equal(p.nstart, 0);
	assert_int_equal(p.nwait, 4);
	sched_pick_release(&p);
	for (i = 0; i < 5; i++)
		sched_job_free(v[i]);
}

static void
test_concurrency_limit_in_loop(void **state)
{
	struct sim s;

	(void)state;
	set_tz("Europe/Berlin");
	sim_init(&s, utc(2024, 6, 10, 20, 0));
	s.concurrency = 1;
	s.run_len = 20 * 60;
	sim_add(&s, job(3, "daily 02:10"));
	sim_add(&s, job(1, "daily 02:00"));
	sim_add(&s, job(2, "daily 02:05"));
	sim_missed(&s);
	sim_until(&s, utc(2024, 6, 11, 3, 0));
	assert_int_equal(s.nruns, 3);
	assert_int_equal(s.runs[0].id, 1);
	assert_time(s.runs[0].at, utc(2024, 6, 11, 0, 0));
	assert_int_equal(s.runs[1].id, 2);
	assert_time(s.runs[1].at, utc(2024, 6, 11, 0, 20));
	assert_int_equal(s.runs[2].id, 3);
	assert_time(s.runs[2].at, utc(2024, 6, 11, 0, 40));
	sim_free(&s);
}

static void
test_slot_passing_during_run_is_skipped(void **state)
{
	struct sched_job *j;
	time_t t = utc(2024, 6, 11, 10, 0);

	(void)state;
	set_tz("UTC");
	j = job(1, "every 1h");
	sched_run_started(j, t);
	assert_time(j->next_run, t + H);
	assert_time(sched_run_finished(j, t + 90 * 60, true), t + H);
	assert_time(j->next_run, t + 2 * H);
	assert_false(j->running);
	assert_time(j->last_success, t + 90 * 60);
	/* A short run passes no slot. */
	sched_run_started(j, t + 2 * H);
	assert_time(sched_run_finished(j, t + 2 * H + 60, false), 0);
	assert_time(j->last_success, t + 90 * 60);
	sched_job_free(j);
}

/* ---- dead-man's switch ---- */

static void
test_overdue_detection(void **state)
{
	struct sched_job *j;
	time_t t = utc(2024, 6, 1, 0, 0);

	(void)state;
	j = job(1, "manual");
	j->created = t;
	assert_false(sched_overdue(j, t + 100 * DAY));	/* no warn-after */
	j->warn_after_s = 3 * DAY;
	assert_false(sched_overdue(j, t + 3 * DAY));
	assert_true(sched_overdue(j, t + 3 * DAY + 1));
	assert_time(sched_overdue_at(j), t + 3 * DAY + 1);
	j->last_success = t + 2 * DAY;
	assert_false(sched_overdue(j, t + 5 * DAY));
	assert_true(sched_overdue(j, t + 5 * DAY + 1));
	sched_job_free(j);
}

/* ---- wake-ups ---- */

static void
test_next_wakeup(void **state)
{
	struct sched_job *v[4];
	struct sched_wakeup w;
	time_t now = utc(2024, 6, 11, 8, 0);
	size_t i;

	(void)state;
	set_tz("UTC");
	v[0] = job(1, "daily 10:00");
	v[1] = job(2, "daily 11:00");
	v[2] = job(3, "daily 09:00");
	v[3] = job(4, "manual");
	for (i = 0; i < 4; i++)
		sched_missed(v[i], now, &(struct sched_missed_result){ 0 });
	v[1]->wake = true;
	v[2]->running = true;
	sched_next_wakeup(v, 4, now, &w);
	assert_time(w.at, utc(2024, 6, 11, 10, 0));
	assert_false(w.wake);
	assert_time(w.wake_at, utc(2024, 6, 11, 11, 0));
	/* Two jobs at the earliest time, one wants wake. */
	v[1]->next_run = v[0]->next_run;
	sched_next_wakeup(v, 4, now, &w);
	assert_true(w.wake);
	assert_time(w.wake_at, utc(2024, 6, 11, 10, 0));
	/* A dead-man's alert due first wakes the loop first, once. */
	v[3]->warn_after_s = DAY;
	v[3]->created = now - DAY + 60;
	sched_next_wakeup(v, 4, now, &w);
	assert_time(w.at, now + 61);
	v[3]->overdue_alerted = true;
	sched_next_wakeup(v, 4, now, &w);
	assert_time(w.at, utc(2024, 6, 11, 10, 0));
	/* Due times in the past are sched_pick()'s, not the timer's. */
	sched_next_wakeup(v, 4, utc(2024, 6, 11, 10, 0), &w);
	assert_time(w.at, 0);
	for (i = 0; i < 4; i++)
		sched_job_free(v[i]);
}

/* ---- bad input ---- */

static void
test_bad_schedule_rejected(void **state)
{
	struct vg_job_def d;
	struct vg_err err;

	(void)state;
	memset(&d, 0, sizeof d);
	memset(&err, 0, sizeof err);
	d.name = "photos";
	d.schedule = "daily 25:00";
	assert_null(sched_job_new(1, &d, &err));
	assert_int_equal(err.code, VG_ERR_PARSE);
	assert_non_null(strstr(err.msg, "job photos"));
	assert_non_null(strstr(err.msg, "daily 25:00"));
	assert_non_null(strstr(err.msg, "HH:MM"));
	d.schedule = "daily\x1b[2J 02:00";
	assert_null(sched_job_new(1, &d, &err));
	assert_null(strchr(err.msg, '\x1b'));
}

static void
test_bad_window_rejected(void **state)
{
	struct vg_job_def d;
	struct vg_err err;

	(void)state;
	memset(&d, 0, sizeof d);
	memset(&err, 0, sizeof err);
	d.name = "photos";
	d.schedule = "daily 02:00";
	d.has_window = true;
	d.window_start = d.window_end = 60;
	assert_null(sched_job_new(1, &d, &err));
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_non_null(strstr(err.msg, "job photos"));
	d.window_end = 24 * 60;
	assert_null(sched_job_new(1, &d, &err));
	assert_int_equal(err.code, VG_ERR_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_daily),
		cmocka_unit_test(test_next_manual_is_never),
		cmocka_unit_test(test_dst_spring_berlin),
		cmocka_unit_test(test_dst_spring_new_york),
		cmocka_unit_test(test_dst_fall_back_berlin),
		cmocka_unit_test(test_dst_fall_back_new_york),
		cmocka_unit_test(test_dst_fall_back_replayed_by_jump),
		cmocka_unit_test(test_jump_back_after_run_does_not_repeat),
		cmocka_unit_test(test_jump_back_recomputes_from_new_time),
		cmocka_unit_test(test_jump_back_far_future_last_run_ignored),
		cmocka_unit_test(test_jump_forward_within_grace_runs_once),
		cmocka_unit_test(test_jump_forward_beyond_grace_skips),
		cmocka_unit_test(test_missed_within_grace_one_catch_up),
		cmocka_unit_test(test_missed_beyond_grace_skipped),
		cmocka_unit_test(test_missed_many_slots_one_run),
		cmocka_unit_test(test_missed_latest_slot_decides),
		cmocka_unit_test(test_missed_policy_skip),
		cmocka_unit_test(test_missed_nothing_missed),
		cmocka_unit_test(test_missed_interrupted_run),
		cmocka_unit_test(test_resume_from_sleep_counts_as_missed),
		cmocka_unit_test(test_window_crossing_midnight),
		cmocka_unit_test(test_window_slot_outside_waits_for_opening),
		cmocka_unit_test(test_window_closes_while_waiting),
		cmocka_unit_test(test_window_only_gates_starts),
		cmocka_unit_test(test_window_opening_skipped_by_dst),
		cmocka_unit_test(test_missed_catch_up_waits_for_window),
		cmocka_unit_test(test_missed_window_deferred_slot_within_grace),
		cmocka_unit_test(test_concurrency_fifo_by_due_time),
		cmocka_unit_test(test_concurrency_limit_in_loop),
		cmocka_unit_test(test_slot_passing_during_run_is_skipped),
		cmocka_unit_test(test_overdue_detection),
		cmocka_unit_test(test_next_wakeup),
		cmocka_unit_test(test_bad_schedule_rejected),
		cmocka_unit_test(test_bad_window_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
