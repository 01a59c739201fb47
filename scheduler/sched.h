/*
 * sched.h: vigild's scheduling decisions, as pure logic.
 *
 * Nothing here reads a clock, touches a file or logs: time comes in as
 * arguments (unix seconds, local time from TZ for the calendar), and the
 * answers are values the main loop acts on, persists (last and next run in
 * the DB) and logs.  The rules are written out in docs/scheduler.md; in
 * short:
 *   - next_run is the time a run is to START: the schedule's next slot,
 *     moved to the next opening of the job's window when the slot falls
 *     outside it.  A window only gates starts; a run that is going when the
 *     window closes goes on (max-runtime is what stops runs).
 *   - Slots at or before last_run are never run again (a clock set back
 *     must not repeat a run), unless last_run lies more than
 *     SCHED_GUARD_MAX_S ahead of the clock, which means it was recorded
 *     under a wrong clock.
 *   - At start, after a clock jump and after resume: sched_missed().  One
 *     catch-up run at most, however many slots were missed.
 *   - One run per job at a time; `concurrency` runs across jobs, the job
 *     due first starting first (sched_pick()).
 *
 * A typical loop:
 *   start:     for each job: sched_job_new(), set last_run, last_success,
 *              next_run, interrupted from the DB, sched_missed(), persist.
 *   each wake: sched_pick(); sched_run_started() for each started job and
 *              persist; sched_next_wakeup(); arm the timers.
 *   run ends:  sched_run_finished(); persist; sched_pick() again.
 *   jump:      sched_missed() for every job, then as each wake.
 *
 * Ownership: sched_job_new() returns a job freed with sched_job_free(),
 * which also frees the parsed schedule inside; the job keeps no pointer to
 * the struct vg_job_def it was made from.  sched_pick() fills arrays it
 * allocates, freed with sched_pick_release(); they point at the caller's
 * jobs, which they do not own.  Strings returned (reasons) are static.
 */
#ifndef VIGIL_SCHED_H
#define VIGIL_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/config.h"

struct vg_err;
struct vg_schedule;

/* How far ahead of the clock a last_run still guards against repeats. */
#define SCHED_GUARD_MAX_S	(7 * 86400)

struct sched_job {
	int64_t			 id;		/* the job's id in the DB */
	struct vg_schedule	*schedule;	/* owned */
	struct vg_schedule	*window_open;	/* owned; NULL: no window */

	/* Policy, copied from the job definition. */
	enum vg_missed		 missed;
	uint64_t		 grace_s;
	bool			 has_window;
	unsigned		 window_start, window_end; /* minutes of the
							      local day */
	uint64_t		 max_runtime_s;	/* 0 = none */
	bool			 wake;
	uint64_t		 warn_after_s;	/* 0 = none */

	/* State.  The caller loads these from the DB at start and persists
	 * them when the functions below change them.  0 means never/none. */
	time_t			 created;	/* job created: the dead-man's
						   switch counts from here
						   until a first success */
	time_t			 last_run;	/* start of the last run */
	time_t			 last_success;	/* end of the last good run */
	time_t			 next_run;	/* when the next run starts */
	time_t			 requested;	/* a manual "run now" asked at
						   this time; due at once,
						   window or not */
	bool			 running;
	bool			 interrupted;	/* the last run was left
						   running by a killed service:
						   set before sched_missed() */
	bool			 overdue_alerted; /* the dead-man's alert was
						     raised for this stretch */
};

/*
 * A job's scheduling state from its definition (schedule text, missed,
 * grace, window, max-runtime, wake, warn-after).  State fields start at 0.
 * NULL with err filled when the schedule does not parse (message and hint
 * name the job).
 */
struct sched_job *sched_job_new(int64_t id, const struct vg_job_def *def,
		    struct vg_err *err);
void		  sched_job_free(struct sched_job *j);

/* True when the job's window is open at t (always true without one). */
bool		  sched_in_window(const struct sched_job *j, time_t t);
/* The first instant at or after t inside the window (t itself without a
 * window); 0 if none can be found. */
time_t		  sched_window_next_open(const struct sched_job *j, time_t t);

/*
 * The time the job's next scheduled run should start, as seen at now: the
 * first slot after max(now, last_run) (see SCHED_GUARD_MAX_S), moved into
 * the window.  0 for a manual job (or when no slot exists).  Pure.
 */
time_t		  sched_next_due(const struct sched_job *j, time_t now);

enum sched_missed_action {
	SCHED_MISSED_NONE = 0,	/* nothing was missed */
	SCHED_MISSED_RUN,	/* catch up: one run, due at next_run */
	SCHED_MISSED_SKIP,	/* record a skipped run with reason */
};

struct sched_missed_result {
	enum sched_missed_action action;
	time_t		 slot;		/* RUN: the earliest missed start time
					   within grace.  SKIP: the first
					   missed time.  NONE: 0 */
	const char	*reason;	/* SKIP: why (static string) */
};

#define SCHED_REASON_GRACE	"missed by more than grace"
#define SCHED_REASON_POLICY	"missed, and the job says missed = skip"

/*
 * At service start, after a clock jump (either way) and after a resume:
 * decide about runs that should have started before now (next_run <= now,
 * or an interrupted run) and recompute next_run.  With missed = run-once a
 * missed time within grace of now gives one catch-up run (next_run = now,
 * or the window's next opening); otherwise the missed runs are skipped and
 * next_run becomes the next slot.  A running job is left alone.  Sets
 * next_run, clears interrupted, fills *out.
 */
void		  sched_missed(struct sched_job *j, time_t now,
		    struct sched_missed_result *out);

/*
 * Run bookkeeping.  started: running, last_run = now, requested cleared,
 * next_run = the next slot after now.  finished: not running; a success
 * sets last_success = now and re-arms the dead-man's switch.  Returns the
 * slot that passed while the run went on (it is skipped: next_run moves to
 * the next slot after now), or 0.
 */
void		  sched_run_started(struct sched_job *j, time_t now);
time_t		  sched_run_finished(struct sched_job *j, time_t now,
		    bool success);

/* A run's max-runtime deadline, in the caller's clock (the monotonic one):
 * started + max_runtime_s, or 0 when the job has none. */
int64_t		  sched_deadline(const struct sched_job *j, int64_t started);

/*
 * Which due jobs start now.  A job is due when it is not running and either
 * requested (any time) or next_run != 0 && next_run <= now and the window
 * is open at now.  Due jobs are ordered by due time (requested, else
 * next_run), then id; the first concurrency - running start (all of them
 * when concurrency is 0), the rest wait.  A scheduled job whose next_run
 * passed while its window closed (it waited for a slot, or the loop woke
 * late) is deferred: next_run moves to the window's next opening; persist
 * it.  Nothing else changes; call sched_run_started() for what you start.
 * 0, or -1 with err filled (no memory).
 */
struct sched_pick {
	struct sched_job	**start, **wait, **deferred;
	size_t			  nstart, nwait, ndeferred;
};
int		  sched_pick(struct sched_job *const *jobs, size_t njobs,
		    time_t now, unsigned concurrency, unsigned running,
		    struct sched_pick *out, struct vg_err *err);
void		  sched_pick_release(struct sched_pick *p);

/*
 * The dead-man's switch: true when warn_after_s > 0 and more than
 * warn_after_s passed since the last success (or since created when the job
 * never succeeded).  sched_overdue_at() is the first time it is true (0:
 * never), for a timer.
 */
bool		  sched_overdue(const struct sched_job *j, time_t now);
time_t		  sched_overdue_at(const struct sched_job *j);

/*
 * When the loop must wake next, after now: the earliest future next_run of
 * a job that is not running, or overdue time not alerted yet.  Times at or
 * before now are sched_pick()'s business (call it first, and again when a
 * run ends), so they are not counted.  at = 0: nothing to wait for.  wake:
 * a job due at `at` wants wake = yes.  wake_at: the earliest future run of
 * a job with wake = yes (0: none); arm the wake-up timer there and the
 * plain one at `at`.
 */
struct sched_wakeup {
	time_t	at;
	bool	wake;
	time_t	wake_at;
};
void		  sched_next_wakeup(struct sched_job *const *jobs, size_t njobs,
		    time_t now, struct sched_wakeup *out);

#endif
