/*
 * restore.h: bring files back from a backup or mirror destination, including
 * from the versions area (docs/architecture.md, "Destination layout").
 *
 * Restore runs as the user who asks for it (the CLI process), never as the
 * service.  Every write goes through directory fds opened with O_NOFOLLOW
 * from the target root down, into a temp file renamed into place, so a
 * symlink planted at the target is never written through.  A target file
 * newer than the backup copy is left alone unless overwrite is set.
 *
 * Ownership: restore_result_free() releases what the result holds.
 */
#ifndef VIGIL_RESTORE_H
#define VIGIL_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/err.h"

struct restore_opts {
	const struct vg_job_def	*job;
	/*
	 * What to restore: each item is either an absolute path under one of
	 * the job's sources (mapped through the destination layout) or a path
	 * relative to the destination root.  npaths 0 = everything.
	 */
	const char *const	*paths;
	size_t			 npaths;
	/* Point in time: 0/0 = the latest backup.  With as_of_run > 0, the
	 * state right after that run; else with as_of_ms > 0, the state at
	 * that wall-clock time (unix ms). */
	int64_t			 as_of_run;
	int64_t			 as_of_ms;
	/* Where to: NULL = back to the original source locations; else this
	 * folder, holding the restored paths relative to the dest root. */
	const char		*to;
	bool			 overwrite;	/* replace newer target files */
	bool			 dry_run;	/* list what would be restored */
	bool			 keep_owner;	/* root only: chown as backed up */
	bool			 allow_special;	/* root only, archive jobs:
						   restore setuid/setgid files
						   and device nodes, FIFOs */
	FILE			*out;		/* one line per action; may be NULL */
};

struct restore_result {
	uint64_t	 files_restored;
	uint64_t	 files_skipped_newer;
	uint64_t	 files_unchanged;
	uint64_t	 bytes;
	uint64_t	 errors;
	char		**messages;	/* per-file problems, escaped text */
	size_t		 nmessages;
};

/* 0 when everything asked for was restored or deliberately skipped, -1 when
 * the restore could not start (err) or any file failed (res->errors). */
int	restore_run(const struct restore_opts *opts, struct restore_result *res,
	    struct vg_err *err);
void	restore_result_free(struct restore_result *res);

#endif
