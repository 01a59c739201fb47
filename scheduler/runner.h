/*
 * runner.h: one recorded run of one job.
 *
 * runner_run() is the piece between a trigger (the CLI's local mode,
 * `vigild --run-once`, and later the scheduler and the worker) and the
 * engine: it loads and parses the job, checks require-mount and the sources,
 * opens the store row and the catalogue, applies priority, runs the engine
 * (reading each source live until the session and snapshot issues land:
 * path "fallback", capture "live"), writes the job's definition into
 * `.vigil/job.ini` at the destination and records the result.
 *
 * Dry runs print the plan and are not recorded.
 */
#ifndef VIGIL_RUNNER_H
#define VIGIL_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "db/store.h"
#include "scheduler/engine.h"

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
