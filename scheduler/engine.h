/*
 * engine.h: the copy engine.  One call runs one job's copy phase end to end:
 * walk the sources, compare against the catalogue (or the destination with
 * rescan), copy what changed through temp files renamed into place, delete
 * for mirror (after the max-delete check), move replaced and deleted files
 * into the versions area, apply retention, verify, and update the catalogue.
 *
 * The engine never decides *how* a run is captured beyond the copy itself
 * (agents and snapshots are the caller's business): the caller passes, per
 * source, the path to read from (a snapshot path, or the source itself) and
 * the capture method to record for files read from it.
 *
 * Ownership: engine_result_free() releases everything inside a
 * struct vg_engine_result; the struct itself is the caller's.
 */
#ifndef VIGIL_ENGINE_H
#define VIGIL_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/err.h"
#include "db/store.h"

/* Folders nested deeper than this below a source are not walked (the
 * walks recurse; a hostile tree must not exhaust the stack): the folder
 * is recorded as a problem "too-deep". */
#define ENGINE_MAX_DEPTH	1024

struct vg_catalogue;

enum engine_phase {
	ENGINE_PHASE_SCAN,
	ENGINE_PHASE_COPY,
	ENGINE_PHASE_DELETE,
	ENGINE_PHASE_VERIFY,
	ENGINE_PHASE_RETENTION,
	ENGINE_PHASE_DONE,
};
const char *engine_phase_name(enum engine_phase p);

struct engine_progress {
	enum engine_phase phase;
	uint64_t	 files_done;	/* entries examined so far */
	uint64_t	 files_copied;
	uint64_t	 bytes_done;	/* bytes written so far */
	uint64_t	 bytes_todo;	/* best estimate of bytes to write, 0 if
					   unknown */
	const char	*current;	/* relative path, raw bytes; only valid
					   during the callback */
};
typedef void (*engine_progress_fn)(const struct engine_progress *p, void *arg);

/*
 * How a source is read (the caller decides: scheduler/snapshot.h) and the
 * capture method its files are counted under:
 *   closed-app      the agents closed the apps: a plain copy, checked;
 *   snapshot-btrfs  read_from is inside a read-only snapshot: a plain copy;
 *   reflink         each file is cloned into staging and the clone copied;
 *   verified, live  a copy, checked with fstat before and after and copied
 *                   again while it moves (up to the job's retries).
 * Whatever the method, a file that had to be copied again counts as
 * verified, one that never held still as inconsistent (the run is then
 * partial), and a SQLite database (except from a btrfs snapshot) is copied
 * through the backup API and counts as sqlite-backup; its -wal, -shm and
 * -journal are then skipped (a warning names them), or copied with it when
 * the backup was not possible.
 */
struct engine_source {
	const char	*path;		/* the job's source as configured */
	const char	*read_from;	/* where to read it (snapshot), or NULL
					   for path itself */
	enum vg_capture	 capture;	/* method recorded for its files */
	const char	*staging;	/* reflink staging folder on the
					   source's filesystem, or NULL */
	/* A closed-app source's method for its fallback_files (its
	   read_from and staging serve them); VG_CAP_CLOSED_APP (zero):
	   engine_opts.fallback_capture. */
	enum vg_capture	 fallback;
};

struct engine_opts {
	const struct vg_job_def	*job;
	struct engine_source	*sources;	/* job->sources.n entries */
	size_t			 nsources;
	struct vg_catalogue	*catalogue;	/* may be NULL: no fast path */
	bool			 catalogue_fresh;
	int64_t			 run_id;
	int64_t			 now_ms;	/* run start, wall clock */
	bool			 dry_run;	/* print the plan, change nothing */
	FILE			*plan_out;	/* dry-run plan goes here */
	bool			 rescan;	/* compare against destination */
	bool			 as_root;	/* keep owners */
	engine_progress_fn	 progress;
	void			*progress_arg;
	volatile sig_atomic_t	*cancel;	/* set non-zero to stop */
	/*
	 * Files (absolute paths under the job's sources as configured; a
	 * folder covers what is under it) that apps held and would not
	 * close: when their source says closed-app they are captured by its
	 * fallback method (engine_source.fallback, else fallback_capture),
	 * counted under it, and listed in res->problems as problem
	 * "fallback" (which does not make the run partial).  NULL or empty:
	 * none.
	 */
	const struct vg_strlist	*fallback_files;
	enum vg_capture		 fallback_capture;
};

struct engine_problem {
	char		*path;		/* relative to destination root, raw */
	size_t		 path_len;
	enum vg_capture	 capture;	/* how it was captured, or -1 */
	bool		 has_capture;
	char		*problem;	/* "unreadable", "vanished",
					   "special-file", "inconsistent",
					   "verify-mismatch", "xattr", ... */
	char		*detail;
};

struct vg_engine_result {
	enum vg_run_status status;	/* OK, PARTIAL, FAILED, CANCELLED */
	char		*message;	/* why FAILED / summary; may be NULL */
	uint64_t	 files;		/* regular files + symlinks seen */
	uint64_t	 dirs;
	uint64_t	 files_copied, files_unchanged, files_deleted;
	uint64_t	 files_versioned, files_failed;
	uint64_t	 bytes_copied, bytes_total;
	uint64_t	 versions_pruned;
	uint64_t	 capture[VG_CAP_COUNT];
	struct engine_problem *problems;
	size_t		 nproblems;
	char		**warnings;
	size_t		 nwarnings;
	/* dry run only: what would happen */
	uint64_t	 plan_copies, plan_deletes, plan_versions, plan_bytes;
};

/*
 * Run the copy phase.  Returns 0 when the run reached a status (which may be
 * PARTIAL or FAILED: read res->status), -1 only when it could not start at
 * all (err says why; res->status is FAILED).
 */
int	engine_run(const struct engine_opts *opts, struct vg_engine_result *res,
	    struct vg_err *err);
void	engine_result_free(struct vg_engine_result *res);

#endif
