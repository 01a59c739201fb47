/*
 * store.h: vigil.db, the service's own database (jobs, runs, the files of a
 * run that had problems, settings).  Only db/ includes sqlite3.h.
 *
 * The file is opened in WAL mode with a busy timeout; every write runs in
 * BEGIN IMMEDIATE.  store_open() runs PRAGMA quick_check and the numbered
 * forward migrations (PRAGMA user_version), taking a VACUUM INTO copy
 * ("vigil.db.pre-vN") before each one.
 *
 * Ownership: strings in rows returned by store_* belong to the row and are
 * freed with the matching *_free() function.
 */
#ifndef VIGIL_STORE_H
#define VIGIL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* v1: jobs, runs, run_files, settings.  v2: runs.details_json and the
 * indexes that list runs newest first.  v3: snapshots (db/snapshots.h). */
#define STORE_SCHEMA_VERSION	3
/* How long a write waits for another connection's lock before failing. */
#define STORE_BUSY_MS		10000

struct vg_store;

int	store_open(const char *path, struct vg_store **out, struct vg_err *err);
void	store_close(struct vg_store *st);

/* --- jobs --- */

struct vg_job_row {
	int64_t	 id;
	uid_t	 owner_uid;
	char	*name;
	char	*definition;	/* the job's section text (vg_job_def.text) */
	int64_t	 created;	/* unix seconds */
	int64_t	 updated;
	int64_t	 last_run;	/* start of the last run, 0 = never */
	int64_t	 next_run;	/* 0 = not scheduled */
	int64_t	 deleted;	/* unix seconds when an import removed it,
				   0 = live (only store_job_get_id returns
				   removed jobs) */
};
/* Free the strings inside a row (not the row itself); NULL-safe. */
void	job_row_free(struct vg_job_row *row);
void	job_rows_free(struct vg_job_row *rows, size_t n);

/* One job to import. */
struct vg_job_put {
	uid_t		 owner_uid;
	const char	*name;
	const char	*definition;
};

enum store_import_mode { STORE_IMPORT_MERGE, STORE_IMPORT_REPLACE };

/*
 * Apply an import in one transaction.  MERGE adds or replaces the jobs named
 * (same owner and name keeps the job's id).  REPLACE also removes, for each
 * uid in scope[], every job of that uid not in puts[]; removed jobs are
 * marked deleted and keep their runs.  preamble (may be NULL) is stored as
 * the file-level comments of preamble_uid's export (setting
 * "preamble:<uid>"); NULL leaves the saved preamble as it is.  A job removed
 * by REPLACE and imported again later gets a new id.  Two puts with the same
 * owner and name are refused (VG_ERR_INVALID).
 */
int	store_jobs_import(struct vg_store *st, enum store_import_mode mode,
	    const struct vg_job_put *puts, size_t nputs,
	    const uid_t *scope, size_t nscope, uid_t preamble_uid,
	    const char *preamble, struct vg_err *err);

/* all_owners: list every owner's jobs; else only owner_uid's.  Sorted by
 * owner then name.  *rows is a malloc'd array freed with job_rows_free(). */
int	store_jobs_list(struct vg_store *st, bool all_owners, uid_t owner_uid,
	    struct vg_job_row **rows, size_t *n, struct vg_err *err);
/* Returns 0 and fills *row, or -1 with VG_ERR_NOTFOUND. */
int	store_job_get(struct vg_store *st, uid_t owner_uid, const char *name,
	    struct vg_job_row *row, struct vg_err *err);
int	store_job_get_id(struct vg_store *st, int64_t id, struct vg_job_row *row,
	    struct vg_err *err);
int	store_job_set_times(struct vg_store *st, int64_t job_id, int64_t last_run,
	    int64_t next_run, struct vg_err *err);
/* The preamble saved with uid's last import; *out malloc'd or NULL. */
int	store_preamble_get(struct vg_store *st, uid_t uid, char **out,
	    struct vg_err *err);

/* --- runs --- */

enum vg_run_status {
	VG_RUN_RUNNING,
	VG_RUN_OK,
	VG_RUN_PARTIAL,
	VG_RUN_FAILED,
	VG_RUN_INTERRUPTED,
	VG_RUN_CANCELLED,
	VG_RUN_SKIPPED,
	VG_RUN_POSTPONED,
};
const char *store_run_status_name(enum vg_run_status s);
int	store_run_status_parse(const char *s, enum vg_run_status *out);

/* How a file was captured (DESIGN.md). */
enum vg_capture {
	VG_CAP_CLOSED_APP,
	VG_CAP_SNAPSHOT_BTRFS,
	VG_CAP_SNAPSHOT_LVM,
	VG_CAP_REFLINK,
	VG_CAP_SQLITE_BACKUP,
	VG_CAP_VERIFIED,
	VG_CAP_INCONSISTENT,
	VG_CAP_LIVE,
	VG_CAP_COUNT
};
const char *store_capture_name(enum vg_capture c);

struct vg_run_row {
	int64_t		 id;
	int64_t		 job_id;
	char		*job_name;
	uid_t		 owner_uid;
	enum vg_run_status status;
	char		*path;		/* "agent", "fallback", "skip" */
	char		*path_reason;
	char		*trigger;	/* "manual", "schedule", "missed", ... */
	bool		 dry_run;
	int64_t		 started;	/* unix ms */
	int64_t		 ended;		/* unix ms, 0 while running */
	uint64_t	 files;		/* files seen in the source */
	uint64_t	 files_copied, files_unchanged, files_deleted;
	uint64_t	 files_versioned, files_failed;
	uint64_t	 bytes;		/* bytes written to the destination */
	uint64_t	 bytes_total;	/* bytes of the source */
	uint64_t	 capture[VG_CAP_COUNT];
	char		*message;	/* failure reason or summary; may be NULL */
	char		*details_json;	/* extra record (apps, sessions,
					   warnings) as a JSON object text;
					   may be NULL */
};
/* Free the strings inside a row (not the row itself); NULL-safe. */
void	run_row_free(struct vg_run_row *row);
void	run_rows_free(struct vg_run_row *rows, size_t n);

/* A file with a problem or not captured the primary way.  path is raw bytes
 * (may be invalid UTF-8; stored as a BLOB). */
struct vg_run_file {
	char	*path;
	size_t	 path_len;
	char	*capture;	/* capture method name or NULL */
	char	*problem;	/* short class: "unreadable", "vanished",
				   "special-file", "inconsistent", ... */
	char	*detail;	/* strerror or explanation; may be NULL */
};
void	run_files_free(struct vg_run_file *v, size_t n);

/* Insert a run row in state RUNNING; started now.  Sets *run_id. */
int	store_run_begin(struct vg_store *st, int64_t job_id, const char *trigger,
	    bool dry_run, int64_t *run_id, struct vg_err *err);
/* Write the final record (status, path, path_reason, counts, capture,
 * message, details_json) and the files, in one transaction.  row->id names
 * the run; row->ended 0 means now; job_id, trigger, dry_run and started keep
 * what store_run_begin() wrote.  status RUNNING is refused. */
int	store_run_finish(struct vg_store *st, const struct vg_run_row *row,
	    const struct vg_run_file *files, size_t nfiles, struct vg_err *err);
int	store_run_get(struct vg_store *st, int64_t run_id, struct vg_run_row *row,
	    struct vg_err *err);
/* Replace a recorded run's details_json (agents that confirmed a resume
 * after the run was recorded). */
int	store_run_set_details(struct vg_store *st, int64_t run_id,
	    const char *details_json, struct vg_err *err);
int	store_run_files(struct vg_store *st, int64_t run_id,
	    struct vg_run_file **files, size_t *n, struct vg_err *err);
/* Newest first.  job_id 0 = all jobs visible to the filter; all_owners false
 * restricts to owner_uid's jobs.  limit 0 = no limit. */
int	store_runs_list(struct vg_store *st, int64_t job_id, bool all_owners,
	    uid_t owner_uid, size_t limit, struct vg_run_row **rows, size_t *n,
	    struct vg_err *err);
/* At start: every run still RUNNING becomes INTERRUPTED.  *n = how many. */
int	store_runs_mark_interrupted(struct vg_store *st, size_t *n,
	    struct vg_err *err);
/* The same for one job's runs (before a new run of it starts, where no
 * service owns the runs: a job has one run at a time). */
int	store_job_runs_mark_interrupted(struct vg_store *st, int64_t job_id,
	    size_t *n, struct vg_err *err);

/* --- settings --- */
int	store_setting_get(struct vg_store *st, const char *key, char **value,
	    struct vg_err *err);	/* *value NULL when unset */
int	store_setting_set(struct vg_store *st, const char *key, const char *value,
	    struct vg_err *err);	/* value NULL removes the key */

/* For tests: the schema version of an open store. */
int	store_user_version(struct vg_store *st);

#endif
