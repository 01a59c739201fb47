/*
 * versions.h: the versions area of a destination, <dest>/.vigil/versions/
 * (docs/architecture.md, "Destination layout").
 *
 * Each run that replaces or deletes destination files keeps them under
 * <stamp>/<relpath>, where <stamp> is YYYYMMDDTHHMMSSZ-r<run id> (UTC start
 * of the run), and lists the entries it created in <stamp>.added.  Retention
 * removes what the job no longer wants kept:
 *   - keep_days D: every stamp older than D days (stamp time against now),
 *     with its .added list;
 *   - keep_versions N: per relpath, only the newest N versions; folders and
 *     stamps left empty are removed.  A stamp's .added list is removed
 *     with the stamp's last version, and when the stamp is older than
 *     every stamp still holding a version (restores "as of" runs that old
 *     are incomplete anyway).  While no stamp holds a version at all, the
 *     lists stay (keep_days bounds them).
 * Names in the area that are not stamps are left alone, except leftover
 * ".vigil-tmp-*" files, which are removed.
 */
#ifndef VIGIL_VERSIONS_H
#define VIGIL_VERSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define VERSIONS_DIR		".vigil/versions"
#define VERSIONS_STAMP_MAX	48

/* Write the stamp of run run_id started at now_ms (ms since the epoch,
 * UTC) into buf (at least VERSIONS_STAMP_MAX bytes). */
void	versions_stamp(int64_t now_ms, int64_t run_id, char *buf, size_t len);
/* Parse a stamp: 0 with *t_s (seconds since the epoch) and *run_id set,
 * -1 when name is not exactly a stamp. */
int	versions_stamp_parse(const char *name, int64_t *t_s, int64_t *run_id);

struct versions_policy {
	unsigned	 keep_versions;	/* 0 = no per-path limit */
	unsigned	 keep_days;	/* 0 = no age limit */
	int64_t		 now_ms;
};

/*
 * Apply retention to the versions area of the destination whose root
 * folder is dest_fd.  A missing area is not an error.  *pruned (may be
 * NULL) gets the number of versioned files and symlinks removed.  Returns
 * 0, or -1 with err naming what could not be removed.
 */
int	versions_prune(int dest_fd, const struct versions_policy *p,
	    uint64_t *pruned, struct vg_err *err);

#endif
