/*
 * sched.c: vigild's scheduling decisions (see sched.h and
 * docs/scheduler.md).  Pure logic: no clock, no I/O, no logging.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/schedule.h"
#include "scheduler/sched.h"

#define SCHED_DAY_S		86400
/* Slots sched_missed() looks at before it settles for what it found. */
#define SCHED_SCAN_MAX		100000
/* A window opens at most this long after any instant (a day, plus a DST
 * hour, with room to spare). */
#define SCHED_WINDOW_GAP_S	(2 * SCHED_DAY_S)

/* t - secs, saturating instead of wrapping for huge durations. */
static time_t
sched_sub(time_t t, uint64_t secs)
{
	if (secs > (uint64_t)INT64_MAX / 4)
		return (time_t)(INT64_MIN / 4);
	return t - (time_t)secs;
}

struct sched_job *
sched_job_new(int64_t id, const struct vg_job_def *def, struct vg_err *err)
{
	struct sched_job *j = NULL;
	const char *text, *hint = NULL;
	char *msg = NULL, *ename = NULL, *etext = NULL, *emsg = NULL;
	char wtext[32];

	if ((j = calloc(1, sizeof *j)) == NULL) {
		vg_err_sys(err, "cannot allocate a job's schedule state");
		return NULL;
	}
	j->id = id;
	text = def->schedule != NULL ? def->schedule : "manual";
	ename = log_escape(def->name != NULL ? def->name : "?");
	j->schedule = schedule_parse(text, &msg, &hint);
	if (j->schedule == NULL) {
		etext = log_escape(text);
		emsg = msg != NULL ? log_escape(msg) : NULL;
		vg_err_set(err, VG_ERR_PARSE, "job %s: schedule '%s': %s%s%s",
		    ename ? ename : "?", etext ? etext : "?",
		    emsg ? emsg : "cannot be read", hint ? "; " : "",
		    hint ? hint : "");
		goto fail;
	}
	if (def->has_window) {
		if (def->window_start >= 24 * 60 || def->window_end >= 24 * 60 ||
		    def->window_start == def->window_end) {
			vg_err_set(err, VG_ERR_INVALID, "job %s: the window "
			    "%u-%u (minutes of the day) is not a window; write "
			    "window = HH:MM-HH:MM with two different times",
			    ename ? ename : "?", def->window_start,
			    def->window_end);
			goto fail;
		}
		(void)snprintf(wtext, sizeof wtext, "daily %02u:%02u",
		    def->window_start / 60, def->window_start % 60);
		free(msg);
		msg = NULL;
		j->window_open = schedule_parse(wtext, &msg, &hint);
		if (j->window_open == NULL) {
			vg_err_set(err, VG_ERR_INTERNAL, "job %s: window "
			    "opening '%s': %s", ename ? ename : "?", wtext,
			    msg ? msg : "cannot be read");
			goto fail;
		}
	}
	j->missed = def->missed;
	j->grace_s = def->grace_s;
	j->has_window = def->has_window;
	j->window_start = def->window_start;
	j->window_end = def->window_end;
	j->max_runtime_s = def->max_runtime_s;
	j->wake = def->wake;
	j->warn_after_s = def->warn_after_s;
	free(msg);
	free(ename);
	free(etext);
	return j;
fail:
	free(msg);
	free(emsg);
	free(ename);
	free(etext);
	sched_job_free(j);
	return NULL;
}

void
sched_job_free(struct sched_job *j)
{
	if (j == NULL)
		return;
	schedule_free(j->schedule);
	schedule_free(j->window_open);
	free(j);
}

bool
sched_in_window(const struct sched_job *j, time_t t)
{
	struct tm tm;
	unsigned m;

	if (!j->has_window)
		return true;
	if (localtime_r(&t, &tm) == NULL)
		return false;
	m = (unsigned)(tm.tm_hour * 60 + tm.tm_min);
	if (j->window_start < j->window_end)
		return m >= j->window_start && m < j->window_end;
	return m >= j->window_start || m < j->window_end;
}

time_t
sched_window_next_open(const struct sched_job *j, time_t t)
{
	if (!j->has_window || j->window_open == NULL || sched_in_window(j, t))
		return t;
	/* The next time the wall clock reads the window's start (or the
	 * first minute after it, when DST skips it): strictly after t - 1. */
	return schedule_next(j->window_open, t - 1, 0);
}

/* The instant slots are computed after: now, or last_run when a clock set
 * back left it ahead of now (but not absurdly far ahead). */
static time_t
sched_base(const struct sched_job *j, time_t now)
{
	if (j->last_run > now && j->last_run - now <= SCHED_GUARD_MAX_S)
		return j->last_run;
	return now;
}

time_t
sched_next_due(const struct sched_job *j, time_t now)
{
	time_t s;

	if (schedule_is_manual(j->schedule))
		return 0;
	s = schedule_next(j->schedule, sched_base(j, now), j->last_run);
	if (s == 0)
		return 0;
	return sched_window_next_open(j, s);
}

/*
 * The earliest time a run was due (next_run, or a later slot moved into the
 * window) that lies within grace of now, or 0 when every missed time is
 * older.  j->next_run <= now.
 */
static time_t
sched_missed_within_grace(const struct sched_job *j, time_t now)
{
	time_t lo = sched_sub(now, j->grace_s), t, s, d;
	long i;

	if (j->next_run >= lo)
		return j->next_run;
	if (!j->has_window) {
		s = schedule_next(j->schedule, lo - 1, j->last_run);
		return (s != 0 && s <= now) ? s : 0;
	}
	/*
	 * With a window a slot older than lo can be due inside grace (it
	 * waited for the window), but never by more than a window gap.
	 */
	t = lo - SCHED_WINDOW_GAP_S;
	if (t < j->next_run)
		t = j->next_run;
	for (i = 0; i < SCHED_SCAN_MAX; i++) {
		s = schedule_next(j->schedule, t, j->last_run);
		if (s == 0 || s > now)
			break;
		d = sched_window_next_open(j, s);
		if (d == 0 || d > now)
			break;
		if (d >= lo)
			return d;
		/* Every slot before d is due at d too: skip them. */
		t = d > s ? d - 1 : s;
	}
	return 0;
}

void
sched_missed(struct sched_job *j, time_t now, struct sched_missed_result *out)
{
	time_t first = 0, within = 0, t;

	memset(out, 0, sizeof *out);
	if (j->running)
		return;
	if (j->next_run != 0 && j->next_run <= now &&
	    !schedule_is_manual(j->schedule)) {
		first = j->next_run;
		within = sched_missed_within_grace(j, now);
	}
	/* A run a killed service left behind counts as missed at its start. */
	if (j->interrupted && j->last_run != 0) {
		if (first == 0 || j->last_run < first)
			first = j->last_run;
		if (j->last_run >= sched_sub(now, j->grace_s) &&
		    (within == 0 || j->last_run < within))
			within = j->last_run;
	}
	j->interrupted = false;
	if (first == 0) {
		j->next_run = sched_next_due(j, now);
		return;
	}
	if (j->missed == VG_MISSED_RUN_ONCE && within != 0) {
		out->action = SCHED_MISSED_RUN;
		out->slot = within;
		t = sched_window_next_open(j, now);
		j->next_run = t != 0 ? t : now;
		return;
	}
	out->action = SCHED_MISSED_SKIP;
	out->slot = first;
	out->reason = j->missed == VG_MISSED_SKIP ? SCHED_REASON_POLICY :
	    SCHED_REASON_GRACE;
	j->next_run = sched_next_due(j, now);
}

void
sched_run_started(struct sched_job *j, time_t now)
{
	j->running = true;
	j->last_run = now;
	j->requested = 0;
	j->interrupted = false;
	j->next_run = sched_next_due(j, now);
}

time_t
sched_run_finished(struct sched_job *j, time_t now, bool success)
{
	time_t passed = 0;

	j->running = false;
	if (success) {
		j->last_success = now;
		j->overdue_alerted = false;
	}
	if (j->next_run != 0 && j->next_run <= now) {
		passed = j->next_run;
		j->next_run = sched_next_due(j, now);
	}
	return passed;
}

int64_t
sched_deadline(const struct sched_job *j, int64_t started)
{
	if (j->max_runtime_s == 0)
		return 0;
	if (j->max_runtime_s > (uint64_t)INT64_MAX / 2 ||
	    (started > 0 && j->max_runtime_s > (uint64_t)(INT64_MAX - started)))
		return INT64_MAX;
	return started + (int64_t)j->max_runtime_s;
}

struct sched_due {
	struct sched_job	*job;
	time_t			 at;
};

static int
sched_due_cmp(const void *a, const void *b)
{
	const struct sched_due *x = a, *y = b;

	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	if (x->job->id != y->job->id)
		return x->job->id < y->job->id ? -1 : 1;
	return 0;
}

int
sched_pick(struct sched_job *const *jobs, size_t njobs, time_t now,
    unsigned concurrency, unsigned running, struct sched_pick *out,
    struct vg_err *err)
{
	struct sched_due *due = NULL;
	struct sched_job *j;
	size_t i, ndue = 0, room;
	time_t t;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (njobs == 0)
		return 0;
	due = calloc(njobs, sizeof *due);
	out->start = calloc(njobs, sizeof *out->start);
	out->wait = calloc(njobs, sizeof *out->wait);
	out->deferred = calloc(njobs, sizeof *out->deferred);
	if (due == NULL || out->start == NULL || out->wait == NULL ||
	    out->deferred == NULL) {
		vg_err_sys(err, "cannot choose the runs to start");
		goto out;
	}
	for (i = 0; i < njobs; i++) {
		j = jobs[i];
		if (j->running)
			continue;
		if (j->requested != 0) {
			due[ndue].job = j;
			due[ndue++].at = j->requested;
			continue;
		}
		if (j->next_run == 0 || j->next_run > now)
			continue;
		if (!sched_in_window(j, now)) {
			t = sched_window_next_open(j, now);
			if (t != 0)
				j->next_run = t;
			out->deferred[out->ndeferred++] = j;
			continue;
		}
		due[ndue].job = j;
		due[ndue++].at = j->next_run;
	}
	qsort(due, ndue, sizeof *due, sched_due_cmp);
	if (concurrency == 0)
		room = ndue;
	else
		room = concurrency > running ? concurrency - running : 0;
	for (i = 0; i < ndue; i++) {
		if (out->nstart < room)
			out->start[out->nstart++] = due[i].job;
		else
			out->wait[out->nwait++] = due[i].job;
	}
	rc = 0;
out:
	free(due);
	if (rc == -1)
		sched_pick_release(out);
	return rc;
}

void
sched_pick_release(struct sched_pick *p)
{
	if (p == NULL)
		return;
	free(p->start);
	free(p->wait);
	free(p->deferred);
	memset(p, 0, sizeof *p);
}

time_t
sched_overdue_at(const struct sched_job *j)
{
	time_t base;

	if (j->warn_after_s == 0)
		return 0;
	base = j->last_success != 0 ? j->last_success : j->created;
	if (base == 0)
		return 0;
	if (j->warn_after_s >= (uint64_t)(INT64_MAX / 2))
		return 0;
	return base + (time_t)j->warn_after_s + 1;
}

bool
sched_overdue(const struct sched_job *j, time_t now)
{
	time_t at = sched_overdue_at(j);

	return at != 0 && now >= at;
}

void
sched_next_wakeup(struct sched_job *const *jobs, size_t njobs, time_t now,
    struct sched_wakeup *out)
{
	const struct sched_job *j;
	time_t t;
	size_t i;

	memset(out, 0, sizeof *out);
	for (i = 0; i < njobs; i++) {
		j = jobs[i];
		if (!j->running && j->next_run > now) {
			if (out->at == 0 || j->next_run < out->at) {
				out->at = j->next_run;
				out->wake = j->wake;
			} else if (j->next_run == out->at && j->wake)
				out->wake = true;
			if (j->wake && (out->wake_at == 0 ||
			    j->next_run < out->wake_at))
				out->wake_at = j->next_run;
		}
		if (!j->overdue_alerted) {
			t = sched_overdue_at(j);
			if (t > now && (out->at == 0 || t < out->at)) {
				out->at = t;
				out->wake = false;
			}
		}
	}
}
