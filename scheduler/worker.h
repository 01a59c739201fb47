/*
 * worker.h: one child process per run.
 *
 * vigild (root) prepares the run (runner_prepare: the store row, the owner's
 * catalogue folder), then worker_spawn() forks a child that drops to the
 * job owner's uid, gids and supplementary groups before it touches a file
 * (root's jobs stay root), runs runner_execute() and streams frames to the
 * parent over a socket pair:
 *
 *   {"type": "progress", "phase": "copy", "files": N, "copied": N,
 *    "bytes": N, "bytes_todo": N, "current": "escaped/path"}
 *   {"type": "plan", "text": "..."}            (dry runs)
 *   {"type": "result", "result": {...runner_result_to_json()...}}
 *
 * The parent reads them from its event loop (worker_fd() becomes readable)
 * and records the run with worker_finish().  A worker that crashes or is
 * killed ends its run "failed" with the reason; the service goes on.  The
 * worker dies with the service (PR_SET_PDEATHSIG), so it never writes a
 * destination that nobody will record.
 *
 * Ownership: worker_spawn() takes the plan (the caller must not free it);
 * worker_free() frees everything and closes the socket.
 */
#ifndef VIGIL_WORKER_H
#define VIGIL_WORKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "db/store.h"
#include "scheduler/runner.h"

struct worker;

/* dry_run: the worker prints the plan (worker_plan_text()) and the run is
 * not recorded (worker_finish() records nothing). */
struct worker *worker_spawn(struct runner_plan *plan, bool rescan,
	    bool dry_run, struct vg_err *err);
/* A dry run's plan, once the worker is done (borrowed; may be NULL). */
const char *worker_plan_text(const struct worker *w);
bool	worker_is_dry_run(const struct worker *w);
int	worker_fd(const struct worker *w);
pid_t	worker_pid(const struct worker *w);
int64_t	worker_run_id(const struct worker *w);
int64_t	worker_job_id(const struct worker *w);
uid_t	worker_owner(const struct worker *w);
const char *worker_job_name(const struct worker *w);
/* Take the run's snapshot set out of the worker's plan (see
 * runner_plan.snapshots): the caller releases it (runner_release_set)
 * once the worker no longer reads the sources.  NULL when there is none or
 * it was taken already. */
struct snapshot_set *worker_take_snapshots(struct worker *w);
/* The last progress frame (borrowed; may be NULL). */
json_t	*worker_progress(const struct worker *w);

/*
 * Read what the worker sent.  Calls on_progress for each progress frame.
 * Returns 1 when the worker's side closed (call worker_finish), 0 when more
 * is expected.
 */
int	worker_handle(struct worker *w,
	    void (*on_progress)(struct worker *w, json_t *progress, void *arg),
	    void *arg);

/* Ask the worker to stop (SIGTERM); the run ends with status, and message
 * says why ("cancelled by alice", "stopped at max-runtime 2h").  A second
 * call, or worker_kill(), sends SIGKILL. */
void	worker_stop(struct worker *w, enum vg_run_status status,
	    const char *message);
void	worker_kill(struct worker *w);

/* Reap the child and record the run.  *status is the recorded status.
 * -1 when the record could not be written (err says why): call it again
 * later; the child is reaped only once. */
/* extra: more of the record (see runner_record()); may be NULL. */
int	worker_finish(struct worker *w, struct vg_store *st, json_t *extra,
	    enum vg_run_status *status, struct vg_err *err);
void	worker_free(struct worker *w);

#endif
