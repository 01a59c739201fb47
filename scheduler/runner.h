/*
 * runner.h: one recorded run of one job.
 *
 * runner_run() is the piece between a trigger (the CLI's local mode,
 * `vigild --run-once`, and later the scheduler and the worker) and the
 * engine: it loads and parses the job, checks require-mount and the sources,
 * opens the store row and the catalogue, takes the run's snapshots
 * (runner_capture: nobody is asked to close apps in a local run, so every
 * file goes to the fallback), applies priority, runs the engine, removes
 * the snapshots, writes the job's definition into `.vigil/job.ini` at the
 * destination and records the result.
 *
 * Dry runs print the plan and are not recorded.
 */
#ifndef VIGIL_RUNNER_H
#define VIGIL_RUNNER_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/err.h"
#include "db/store.h"
#include "scheduler/engine.h"

struct snapshot_set;

struct runner_request {
	int64_t			 job_id;
	const char		*trigger;	/* "manual", "schedule", ... */
	bool			 dry_run;
	bool			 rescan;
	FILE			*plan_out;	/* dry-run plan; NULL = stdout */
	engine_progress_fn	 progress;
	void			*progress_arg;
	volatile sig_atomic_t	*cancel;
};

/*
 * A run in three steps, so that the service can put the middle one in a
 * worker process that runs as the job's owner:
 *   runner_prepare()  parent: load and parse the job, pre-run checks, the
 *                     store row (status running), the owner's catalogue
 *                     folder;
 *   runner_execute()  worker: catalogue, priority, engine, .vigil/job.ini;
 *   runner_record()   parent: the run record.
 * runner_run() does all three in one process (the CLI's local mode and
 * `vigild --run-once`).
 */
struct runner_plan {
	struct vg_job_row	 row;		/* the job as stored */
	struct vg_job_def	*job;		/* parsed definition */
	int64_t			 run_id;	/* 0 for a dry run */
	int64_t			 started_ms;
	bool			 done;		/* ended in prepare (a failed
						   check): nothing to execute,
						   already recorded */
	enum vg_run_status	 status;	/* when done */
	char			*catalogue_path;
	char			*path;		/* "agent", "fallback", "skip" */
	char			*path_reason;
	struct engine_source	*sources;	/* job->sources.n, read live
						   until snapshots land */
	struct vg_strlist	 fallback_files; /* held by apps that refused
						    to close (owned) */
	enum vg_capture		 fallback_capture;
	/* The run's snapshots and staging folders (runner_capture()), read
	   by the worker through sources[].read_from and .staging.  Not freed
	   by runner_plan_free() nor by the worker: the parent that took them
	   removes them with runner_release(). */
	struct snapshot_set	*snapshots;
};
void	runner_plan_free(struct runner_plan *plan);	/* contents only */

/*
 * Parent, before the worker starts: how each file of the run is captured
 * (DESIGN.md, "The job run", step 3).  fallback_all: nobody closed the apps
 * (nobody logged on, no agent, a local run), so every file goes to the
 * fallback; else the sources are closed-app and only plan->fallback_files
 * go to it.  The fallback is a verified copy with logged-off = copy, else
 * the job's snapshot method (snapshot_take(): btrfs snapshot, reflink
 * staging folder or verified copy, recorded in st before anything is
 * made), which sets each source's read_from, staging and capture.  Nothing
 * is taken when nothing goes to the fallback.  -1 when an explicit
 * snapshot method cannot be used (err says why and what to set): the run
 * fails before copying anything.
 */
int	runner_capture(struct vg_store *st, struct runner_plan *plan,
	    bool fallback_all, struct vg_err *err);
/* Parent, once the sources are no longer read (or the run is over):
 * remove plan->snapshots and forget them.  Failures are logged (the next
 * start of the service tries again).  Nothing to do is a no-op. */
void	runner_release(struct vg_store *st, struct runner_plan *plan);
/* The same for a set already taken out of its plan; frees it. */
void	runner_release_set(struct vg_store *st, struct snapshot_set *set,
	    int64_t run_id);
/* At start (after the runs left running are marked interrupted): remove
 * the snapshots and staging folders of runs that are over, and log it. */
void	runner_cleanup_snapshots(struct vg_store *st);

int	runner_prepare(struct vg_store *st, const char *state_dir,
	    const struct runner_request *req, struct runner_plan *plan,
	    struct vg_err *err);
/* Fills res (free with engine_result_free); returns engine_run's value. */
int	runner_execute(const struct runner_plan *plan,
	    const struct runner_request *req, struct vg_engine_result *res,
	    struct vg_err *err);
/* extra (may be NULL): more of the record (agents, apps, sessions) merged
 * into the run's details; borrowed. */
int	runner_record(struct vg_store *st, const struct runner_plan *plan,
	    const struct vg_engine_result *res, const struct vg_err *run_err,
	    json_t *extra, struct vg_err *err);

/* The engine result as JSON (worker to parent) and back.  to_json returns a
 * new reference; from_json fills res (free with engine_result_free). */
json_t	*runner_result_to_json(const struct vg_engine_result *res);
int	runner_result_from_json(json_t *j, struct vg_engine_result *res);

/*
 * state_dir: where catalogue/<uid>/<job id>.db lives.  On return *run_id is
 * the recorded run (0 for a dry run) and *status its status.  Returns -1 only
 * when nothing could be recorded (err says why).
 */
int	runner_run(struct vg_store *st, const char *state_dir,
	    const struct runner_request *req, int64_t *run_id,
	    enum vg_run_status *status, struct vg_err *err);

/* Catalogue path for a job: "<state_dir>/catalogue/<uid>/<id>.db" (malloc'd). */
char	*runner_catalogue_path(const char *state_dir, uid_t owner, int64_t job_id);

#endif
