/*
 * snapshot.h: choosing and managing the snapshot of a run (DESIGN.md,
 * "Nobody is logged on"; `snapshot = auto | btrfs | lvm | reflink |
 * verify`).  Runs in the root parent: it takes the btrfs snapshots and makes
 * the reflink staging folders before the worker starts, and removes them
 * when the run is over.  Every snapshot and staging folder is recorded in
 * the snapshots table (db/snapshots.h) before it is made, so one left by a
 * killed run is removed by snapshot_cleanup() at the next start.
 *
 * Ownership: snapshot_take() returns a set freed with snapshot_set_free();
 * strings inside belong to the set.
 */
#ifndef VIGIL_SCHED_SNAPSHOT_H
#define VIGIL_SCHED_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/err.h"
#include "db/store.h"

struct snapshot_choice {
	enum vg_snapshot method;	/* BTRFS, REFLINK or VERIFY (never
					   AUTO; LVM is refused) */
	enum vg_capture	 capture;	/* SNAPSHOT_BTRFS, REFLINK, VERIFIED */
	char		 reason[512];	/* for `vigil doctor` and the run
					   record: what was chosen and why a
					   better method is not available */
};

/*
 * Decide how source (absolute, existing) is captured when nobody can close
 * its apps.  privileged: the caller may take and remove btrfs snapshots
 * (the root parent; vigild --user is not).  auto picks btrfs (source on
 * btrfs and privileged), else reflink (FICLONE works on its filesystem,
 * probed with an unnamed file, nothing left behind), else verify.  An
 * explicit method that cannot be used is an error (VG_ERR_INVALID, err says
 * why and what to set instead).  Makes no snapshot: `vigil doctor` calls it.
 */
int	snapshot_choose(const char *source, enum vg_snapshot want,
	    bool privileged, struct snapshot_choice *out, struct vg_err *err);

struct snapshot_source {
	const char	*source;	/* as configured */
	const char	*read_from;	/* the source inside the snapshot, or
					   NULL: read the source itself
					   (engine_source.read_from) */
	const char	*staging;	/* reflink: the staging folder the
					   worker clones into; else NULL */
	enum vg_snapshot method;	/* as used (auto resolved) */
	enum vg_capture	 capture;	/* engine_source.capture */
	const char	*reason;	/* snapshot_choice.reason, or why the
					   chosen method failed and the next
					   was used */
};

struct snapshot_set;

/*
 * Take what run run_id of job needs, per source in job->sources order:
 * a btrfs snapshot per subvolume (shared by sources in one subvolume), a
 * staging folder per mount for reflink (chowned to uid:gid, the worker's
 * user), nothing for verify.  Each is recorded in st before it is made.
 * With auto, a snapshot that fails falls to the next method (the reason
 * says so); an explicit method that fails is an error, and whatever was
 * made is removed again.  privileged as for snapshot_choose().
 */
int	snapshot_take(struct vg_store *st, int64_t run_id,
	    const struct vg_job_def *job, uid_t uid, gid_t gid,
	    bool privileged, struct snapshot_set **out, struct vg_err *err);

size_t	snapshot_count(const struct snapshot_set *set);
/* The i-th source's plan (i < snapshot_count); belongs to the set. */
const struct snapshot_source *snapshot_source(const struct snapshot_set *set,
	    size_t i);

/*
 * Remove the run's snapshots and staging folders, and their rows.  Goes on
 * past failures; -1 when one failed (err names the first; its row stays, so
 * snapshot_cleanup() tries again at the next start).  The set stays valid
 * (its read_from paths no longer exist) until snapshot_set_free().
 */
int	snapshot_release(struct vg_store *st, struct snapshot_set *set,
	    struct vg_err *err);
/* Free the set's memory; makes and removes nothing.  NULL is a no-op. */
void	snapshot_set_free(struct snapshot_set *set);

/*
 * At service start (after store_runs_mark_interrupted): remove every
 * snapshot and staging folder whose run is over, and their rows.  A row
 * whose path is not a snapshot (or staging folder) vigil could have made is
 * dropped without touching the path.  *removed counts what was removed,
 * *failed what could not be (left for the next start; err names the
 * first).  Returns -1 only when the DB could not be read.
 */
int	snapshot_cleanup(struct vg_store *st, size_t *removed, size_t *failed,
	    struct vg_err *err);

#endif
