/*
 * snapshots.h: the snapshots table of vigil.db, the crash-safe record of
 * every btrfs snapshot and reflink staging folder a run uses.  A row is
 * written before the snapshot is made and removed after it is gone, so a
 * killed run's leftovers are listed (snapshots_list with stale_only) and
 * removed at the next start (scheduler/snapshot.h, snapshot_cleanup).
 *
 * Ownership: rows returned by snapshots_list are freed with
 * snapshot_rows_free().
 */
#ifndef VIGIL_DB_SNAPSHOTS_H
#define VIGIL_DB_SNAPSHOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "db/store.h"

/* Kinds of row. */
#define SNAPSHOTS_KIND_BTRFS	"btrfs"
#define SNAPSHOTS_KIND_LVM	"lvm"
#define SNAPSHOTS_KIND_STAGING	"reflink-staging"

struct vg_snapshot_row {
	int64_t	 id;
	int64_t	 run_id;
	char	*kind;		/* SNAPSHOTS_KIND_* */
	char	*path;		/* the snapshot or staging folder */
	char	*origin;	/* what it was taken of (subvolume, source);
				   may be NULL */
	int64_t	 created;	/* unix ms when recorded */
};
void	snapshot_rows_free(struct vg_snapshot_row *rows, size_t n);

/* Record a snapshot about to be made for run_id; *id names the row. */
int	snapshots_add(struct vg_store *st, int64_t run_id, const char *kind,
	    const char *path, const char *origin, int64_t *id,
	    struct vg_err *err);
/* Forget a row (the snapshot is gone).  A missing row is not an error. */
int	snapshots_remove(struct vg_store *st, int64_t id, struct vg_err *err);
/*
 * List rows, oldest first.  stale_only: only those whose run is over (its
 * status is not "running", or the run row is missing); else all.  run_id > 0
 * restricts to that run.  *rows is malloc'd (NULL when n is 0).
 */
int	snapshots_list(struct vg_store *st, bool stale_only, int64_t run_id,
	    struct vg_snapshot_row **rows, size_t *n, struct vg_err *err);

#endif
