/*
 * store.c: vigil.db, the service's own database.
 *
 * The file is created 0600 before SQLite sees it, opened in WAL mode with a
 * busy timeout, checked with PRAGMA quick_check and brought to
 * STORE_SCHEMA_VERSION by the numbered migrations below, each preceded by a
 * VACUUM INTO copy "<path>.pre-v<N>".  Every write runs in BEGIN IMMEDIATE.
 * SQLite result codes become struct vg_err in store_dberr_at() and nowhere
 * else.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/err.h"
#include "db/db_test.h"
#include "db/store.h"
#include "db/store_int.h"

struct vg_store {
	sqlite3	*db;
	char	*path;
	int	 busy_ms;
};

/*
 * The migrations: entry i brings the schema from version i to i + 1.  Never
 * edit a released entry; append a new one and bump STORE_SCHEMA_VERSION.
 */
static const char *const store_migrations[] = {
	/* v1: the first schema. */
	"CREATE TABLE jobs ("
	"  id INTEGER PRIMARY KEY,"
	"  owner_uid INTEGER NOT NULL,"
	"  name TEXT NOT NULL CHECK (length(name) > 0),"
	"  definition TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  deleted INTEGER NOT NULL DEFAULT 0,"
	"  last_run INTEGER NOT NULL DEFAULT 0,"
	"  next_run INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE UNIQUE INDEX jobs_owner_name ON jobs (owner_uid, name)"
	"  WHERE deleted = 0;"
	"CREATE TABLE runs ("
	"  id INTEGER PRIMARY KEY,"
	"  job_id INTEGER NOT NULL REFERENCES jobs (id),"
	"  status TEXT NOT NULL,"
	"  path TEXT,"
	"  path_reason TEXT,"
	"  trigger TEXT,"
	"  dry_run INTEGER NOT NULL DEFAULT 0,"
	"  started INTEGER NOT NULL,"
	"  ended INTEGER NOT NULL DEFAULT 0,"
	"  files INTEGER NOT NULL DEFAULT 0,"
	"  files_copied INTEGER NOT NULL DEFAULT 0,"
	"  files_unchanged INTEGER NOT NULL DEFAULT 0,"
	"  files_deleted INTEGER NOT NULL DEFAULT 0,"
	"  files_versioned INTEGER NOT NULL DEFAULT 0,"
	"  files_failed INTEGER NOT NULL DEFAULT 0,"
	"  bytes INTEGER NOT NULL DEFAULT 0,"
	"  bytes_total INTEGER NOT NULL DEFAULT 0,"
	"  cap_closed_app INTEGER NOT NULL DEFAULT 0,"
	"  cap_snapshot_btrfs INTEGER NOT NULL DEFAULT 0,"
	"  cap_snapshot_lvm INTEGER NOT NULL DEFAULT 0,"
	"  cap_reflink INTEGER NOT NULL DEFAULT 0,"
	"  cap_sqlite_backup INTEGER NOT NULL DEFAULT 0,"
	"  cap_verified INTEGER NOT NULL DEFAULT 0,"
	"  cap_inconsistent INTEGER NOT NULL DEFAULT 0,"
	"  cap_live INTEGER NOT NULL DEFAULT 0,"
	"  message TEXT"
	");"
	"CREATE TABLE run_files ("
	"  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  path BLOB NOT NULL,"
	"  capture TEXT,"
	"  problem TEXT,"
	"  detail TEXT,"
	"  PRIMARY KEY (run_id, seq)"
	") WITHOUT ROWID;"
	"CREATE TABLE settings ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT"
	") WITHOUT ROWID;",

	/* v2: the run's extra record; runs listed newest first per job. */
	"ALTER TABLE runs ADD COLUMN details_json TEXT;"
	"CREATE INDEX runs_job_started ON runs (job_id, started);"
	"CREATE INDEX runs_started ON runs (started);",

	/* v3: snapshots and staging folders in use, recorded before each is
	 * made so that a killed run's are removed at the next start. */
	"CREATE TABLE snapshots ("
	"  id INTEGER PRIMARY KEY,"
	"  run_id INTEGER NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  path BLOB NOT NULL,"
	"  origin BLOB,"
	"  created INTEGER NOT NULL"
	");"
	"CREATE INDEX snapshots_run ON snapshots (run_id);",
};

_Static_assert(sizeof store_migrations / sizeof store_migrations[0] ==
    STORE_SCHEMA_VERSION, "one migration per schema version");

static const char *const store_status_names[] = {
	"running", "ok", "partial", "failed", "interrupted", "cancelled",
	"skipped", "postponed",
};
_Static_assert(sizeof store_status_names / sizeof store_status_names[0] ==
    VG_RUN_POSTPONED + 1, "a name per run status");

static const char *const store_capture_names[] = {
	"closed-app", "snapshot-btrfs", "snapshot-lvm", "reflink",
	"sqlite-backup", "verified", "inconsistent", "live",
};
_Static_assert(sizeof store_capture_names / sizeof store_capture_names[0] ==
    VG_CAP_COUNT, "a name per capture method");

/* The runs columns, in the order store_run_read() expects. */
#define STORE_RUN_COLUMNS						\
	"r.id, r.job_id, j.name, j.owner_uid, r.status, r.path, "	\
	"r.path_reason, r.trigger, r.dry_run, r.started, r.ended, "	\
	"r.files, r.files_copied, r.files_unchanged, r.files_deleted, "	\
	"r.files_versioned, r.files_failed, r.bytes, r.bytes_total, "	\
	"r.cap_closed_app, r.cap_snapshot_btrfs, r.cap_snapshot_lvm, "	\
	"r.cap_reflink, r.cap_sqlite_backup, r.cap_verified, "		\
	"r.cap_inconsistent, r.cap_live, r.message, r.details_json "	\
	"FROM runs r JOIN jobs j ON j.id = r.job_id"

#define STORE_JOB_COLUMNS						\
	"id, owner_uid, name, definition, created, updated, last_run, "	\
	"next_run, deleted FROM jobs"

#define STORE_ERR(st, err, rc, ...) \
	store_dberr_at((st), (err), (rc), __func__, __VA_ARGS__)

static void
store_dberr_at(struct vg_store *st, struct vg_err *err, int rc,
    const char *func, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
store_dberr_at(struct vg_store *st, struct vg_err *err, int rc,
    const char *func, const char *fmt, ...)
{
	char op[512];
	const char *why;
	va_list ap;
	int syserr;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(op, sizeof op, fmt, ap);
	va_end(ap);
	why = (st->db != NULL && sqlite3_extended_errcode(st->db) == rc) ?
	    sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
	syserr = st->db != NULL ? sqlite3_system_errno(st->db) : 0;

	switch (rc & 0xff) {
	case SQLITE_FULL:
		vg_err_set_at(err, VG_ERR_NOSPACE, ENOSPC, func,
		    "database %s: %s: the filesystem holding it is full; "
		    "free some space and try again", st->path, op);
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		vg_err_set_at(err, VG_ERR_DB, 0, func,
		    "database %s: %s: another process holds the database "
		    "(waited %d ms); stop the other vigild or sqlite3 session "
		    "using it and try again", st->path, op, st->busy_ms);
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		vg_err_set_at(err, VG_ERR_DB, 0, func,
		    "database %s: %s: the file is damaged (%s); restore it "
		    "from a copy (%s.pre-v<N> is taken before each upgrade) or "
		    "move it aside so that a new one is created", st->path, op,
		    why, st->path);
		break;
	case SQLITE_READONLY:
		vg_err_set_at(err, VG_ERR_DB, 0, func,
		    "database %s: %s: cannot write (%s); check the owner and "
		    "mode of the file and its folder", st->path, op, why);
		break;
	case SQLITE_CANTOPEN:
		vg_err_set_at(err, VG_ERR_DB, syserr,
		    func, "database %s: %s: cannot open it (%s: %s); check "
		    "that its folder exists and is writable", st->path, op, why,
		    strerror(syserr));
		break;
	case SQLITE_IOERR:
		vg_err_set_at(err, VG_ERR_DB, syserr,
		    func, "database %s: %s: I/O error (%s%s%s)", st->path, op,
		    why, syserr != 0 ? ": " : "",
		    syserr != 0 ? strerror(syserr) : "");
		break;
	default:
		vg_err_set_at(err, VG_ERR_DB, 0, func, "database %s: %s: %s",
		    st->path, op, why);
		break;
	}
}

static int64_t
store_now(void)
{
	return (int64_t)time(NULL);
}

static int64_t
store_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
store_exec(struct vg_store *st, const char *sql, const char *op,
    struct vg_err *err)
{
	int rc;

	if ((rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL)) != SQLITE_OK) {
		STORE_ERR(st, err, rc, "%s", op);
		return -1;
	}
	return 0;
}

static int
store_prepare(struct vg_store *st, const char *sql, sqlite3_stmt **stmt,
    const char *op, struct vg_err *err)
{
	int rc;

	*stmt = NULL;
	if ((rc = sqlite3_prepare_v2(st->db, sql, -1, stmt, NULL)) !=
	    SQLITE_OK) {
		STORE_ERR(st, err, rc, "%s", op);
		return -1;
	}
	return 0;
}

/* Step a statement that returns no rows. */
static int
store_step_done(struct vg_store *st, sqlite3_stmt *stmt, const char *op,
    struct vg_err *err)
{
	int rc;

	if ((rc = sqlite3_step(stmt)) != SQLITE_DONE) {
		if (rc == SQLITE_ROW)
			rc = SQLITE_MISUSE;
		STORE_ERR(st, err, rc, "%s", op);
		return -1;
	}
	return 0;
}

static void
store_rollback(struct vg_store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

static int
store_begin(struct vg_store *st, const char *op, struct vg_err *err)
{
	return store_exec(st, "BEGIN IMMEDIATE", op, err);
}

static int
store_commit(struct vg_store *st, const char *op, struct vg_err *err)
{
	if (store_exec(st, "COMMIT", op, err) == -1) {
		store_rollback(st);
		return -1;
	}
	return 0;
}

/* Copy a text column; *out NULL for SQL NULL.  -1 only on ENOMEM. */
static int
store_coldup(sqlite3_stmt *stmt, int col, char **out, struct vg_err *err)
{
	const unsigned char *t;
	int len;

	*out = NULL;
	if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
		return 0;
	t = sqlite3_column_text(stmt, col);
	len = sqlite3_column_bytes(stmt, col);
	if (t == NULL || (*out = malloc((size_t)len + 1)) == NULL) {
		vg_err_set_at(err, VG_ERR_SYS, ENOMEM, __func__,
		    "out of memory reading the database");
		return -1;
	}
	memcpy(*out, t, (size_t)len);
	(*out)[len] = '\0';
	return 0;
}

static int
store_bind_text(sqlite3_stmt *stmt, int i, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(stmt, i);
	return sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC);
}

/* --- open, quick_check, migrations --- */

static int
store_get_int(struct vg_store *st, const char *sql, int64_t *val,
    const char *op, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	int rc, ret = -1;

	if (store_prepare(st, sql, &stmt, op, err) == -1)
		goto out;
	if ((rc = sqlite3_step(stmt)) != SQLITE_ROW) {
		STORE_ERR(st, err, rc == SQLITE_DONE ? SQLITE_MISUSE : rc,
		    "%s", op);
		goto out;
	}
	*val = sqlite3_column_int64(stmt, 0);
	ret = 0;
out:
	sqlite3_finalize(stmt);
	return ret;
}

static int
store_quick_check(struct vg_store *st, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	const char *t;
	char found[512];
	size_t len = 0;
	int rc, ret = -1;
	bool ok = false;

	found[0] = '\0';
	if (store_prepare(st, "PRAGMA quick_check(5)", &stmt,
	    "checking the database (quick_check)", err) == -1)
		goto out;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		t = (const char *)sqlite3_column_text(stmt, 0);
		if (t == NULL)
			continue;
		if (strcmp(t, "ok") == 0) {
			ok = true;
			continue;
		}
		if (len < sizeof found - 1)
			len += (size_t)snprintf(found + len, sizeof found - len,
			    "%s%s", len > 0 ? "; " : "", t);
		if (len > sizeof found - 1)
			len = sizeof found - 1;
	}
	if (rc != SQLITE_DONE) {
		STORE_ERR(st, err, rc, "checking the database (quick_check)");
		goto out;
	}
	if (!ok || found[0] != '\0') {
		vg_err_set(err, VG_ERR_DB, "database %s: the file is damaged "
		    "(quick_check: %s); restore it from a copy (%s.pre-v<N> is "
		    "taken before each upgrade) or move it aside so that a new "
		    "one is created", st->path,
		    found[0] != '\0' ? found : "no result", st->path);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(stmt);
	return ret;
}

static int
store_fsync_dir(const char *path, struct vg_err *err)
{
	char *copy = NULL;
	int fd = -1, ret = -1;

	if ((copy = strdup(path)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1 || fsync(fd) == -1) {
		vg_err_sys(err, "cannot flush the folder of %s", path);
		goto out;
	}
	ret = 0;
out:
	if (fd != -1)
		close(fd);
	free(copy);
	return ret;
}

/*
 * Take "<path>.pre-v<version>": VACUUM INTO a temp file created 0600, flush
 * it, and rename it over any older copy of that name.
 */
static int
store_copy_before(struct vg_store *st, int version, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	char *dst = NULL, *tmp = NULL;
	int fd = -1, ret = -1;

	if (asprintf(&dst, "%s.pre-v%d", st->path, version) == -1) {
		dst = NULL;
		vg_err_sys(err, "out of memory");
		goto out;
	}
	if (asprintf(&tmp, "%s.tmp", dst) == -1) {
		tmp = NULL;
		vg_err_sys(err, "out of memory");
		goto out;
	}
	if (unlink(tmp) == -1 && errno != ENOENT) {
		vg_err_sys(err, "cannot remove the stale copy %s", tmp);
		goto out;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1) {
		vg_err_sys(err, "cannot create %s for the copy taken before "
		    "the upgrade to schema v%d", tmp, version);
		goto out;
	}
	close(fd);
	fd = -1;
	if (store_prepare(st, "VACUUM INTO ?", &stmt, "copying before an "
	    "upgrade", err) == -1)
		goto out_unlink;
	sqlite3_bind_text(stmt, 1, tmp, -1, SQLITE_STATIC);
	if (store_step_done(st, stmt, "copying before an upgrade", err) == -1) {
		vg_err_prefix(err, "copy to %s", tmp);
		goto out_unlink;
	}
	if ((fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1 ||
	    fsync(fd) == -1) {
		vg_err_sys(err, "cannot flush %s", tmp);
		goto out_unlink;
	}
	if (rename(tmp, dst) == -1) {
		vg_err_sys(err, "cannot rename %s to %s", tmp, dst);
		goto out_unlink;
	}
	if (store_fsync_dir(dst, err) == -1)
		goto out;
	ret = 0;
	goto out;
out_unlink:
	(void)unlink(tmp);
out:
	if (fd != -1)
		close(fd);
	sqlite3_finalize(stmt);
	free(dst);
	free(tmp);
	return ret;
}

static int
store_migrate(struct vg_store *st, int upto, struct vg_err *err)
{
	char sql[64];
	int64_t v, now, ntables;
	int target = upto > 0 ? upto : STORE_SCHEMA_VERSION;
	bool existed;

	if (store_get_int(st, "PRAGMA user_version", &v,
	    "reading the schema version", err) == -1)
		return -1;
	if (v > STORE_SCHEMA_VERSION) {
		vg_err_set(err, VG_ERR_DB, "database %s: schema v%lld was "
		    "written by a newer vigil (this one knows up to v%d); "
		    "install the newer vigil again, or restore %s.pre-v%d "
		    "(the copy taken before that upgrade)", st->path,
		    (long long)v, STORE_SCHEMA_VERSION, st->path,
		    STORE_SCHEMA_VERSION + 1);
		return -1;
	}
	if (v == 0) {
		if (store_get_int(st, "SELECT count(*) FROM sqlite_schema",
		    &ntables, "reading the schema", err) == -1)
			return -1;
		if (ntables > 0) {
			vg_err_set(err, VG_ERR_INVALID, "database %s: not a "
			    "vigil database (it has tables but no vigil schema "
			    "version); move it aside or use another state "
			    "folder", st->path);
			return -1;
		}
	}
	/* A new, empty database needs no copy before its first steps. */
	existed = v > 0;
	while (v < target) {
		if (existed && store_copy_before(st, (int)v + 1, err) == -1) {
			vg_err_prefix(err, "before upgrading %s to schema v%d",
			    st->path, (int)v + 1);
			return -1;
		}
		if (store_begin(st, "upgrading the schema", err) == -1)
			return -1;
		/* Another process may have upgraded it meanwhile. */
		if (store_get_int(st, "PRAGMA user_version", &now,
		    "reading the schema version", err) == -1)
			goto fail;
		if (now != v) {
			store_rollback(st);
			if (now > STORE_SCHEMA_VERSION) {
				vg_err_set(err, VG_ERR_DB, "database %s: "
				    "upgraded meanwhile to an unknown schema "
				    "v%lld", st->path, (long long)now);
				return -1;
			}
			v = now;
			continue;
		}
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
		    (int)v + 1);
		if (store_exec(st, store_migrations[v], "upgrading the schema",
		    err) == -1 ||
		    store_exec(st, sql, "upgrading the schema", err) == -1)
			goto fail;
		if (store_commit(st, "upgrading the schema", err) == -1)
			return -1;
		v++;
	}
	return 0;
fail:
	vg_err_prefix(err, "migration to schema v%d", (int)v + 1);
	store_rollback(st);
	return -1;
}

int
store_open_ex(const char *path, int upto, int busy_ms, struct vg_store **out,
    struct vg_err *err)
{
	struct vg_store *st = NULL;
	struct stat sb;
	sqlite3_stmt *stmt = NULL;
	const char *mode;
	int fd = -1, rc, ret = -1;

	*out = NULL;
	if (upto < 0 || upto > STORE_SCHEMA_VERSION) {
		vg_err_set(err, VG_ERR_INVALID, "no schema version %d", upto);
		goto out;
	}
	if ((st = calloc(1, sizeof *st)) == NULL ||
	    (st->path = strdup(path)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	st->busy_ms = busy_ms > 0 ? busy_ms : STORE_BUSY_MS;

	/* Create it 0600 whatever the umask, before SQLite opens it. */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1) {
		vg_err_sys(err, "cannot open the database %s", path);
		goto out;
	}
	if (fstat(fd, &sb) == -1) {
		vg_err_sys(err, "cannot stat the database %s", path);
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		vg_err_set(err, VG_ERR_INVALID, "database %s is not a regular "
		    "file", path);
		goto out;
	}
	if ((sb.st_mode & 077) != 0 && fchmod(fd, 0600) == -1) {
		vg_err_sys(err, "cannot restrict the database %s to mode 0600",
		    path);
		goto out;
	}
	/* Closed before SQLite opens the file: closing a descriptor drops
	 * every POSIX lock the process holds on it. */
	close(fd);
	fd = -1;

	if ((rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOFOLLOW, NULL)) != SQLITE_OK) {
		STORE_ERR(st, err, rc, "opening");
		goto out;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, st->busy_ms);

	if (store_quick_check(st, err) == -1)
		goto out;
	if (store_prepare(st, "PRAGMA journal_mode = WAL", &stmt,
	    "switching to WAL", err) == -1)
		goto out;
	if ((rc = sqlite3_step(stmt)) != SQLITE_ROW) {
		STORE_ERR(st, err, rc, "switching to WAL");
		goto out;
	}
	mode = (const char *)sqlite3_column_text(stmt, 0);
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		vg_err_set(err, VG_ERR_DB, "database %s: cannot use WAL mode "
		    "(journal mode stays %s); keep the state folder on a local "
		    "filesystem", path, mode != NULL ? mode : "unknown");
		goto out;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (store_exec(st, "PRAGMA synchronous = NORMAL;"
	    "PRAGMA foreign_keys = ON;", "setting pragmas", err) == -1)
		goto out;
	if (store_migrate(st, upto, err) == -1)
		goto out;
	*out = st;
	st = NULL;
	ret = 0;
out:
	sqlite3_finalize(stmt);
	if (fd != -1)
		close(fd);
	store_close(st);
	return ret;
}

int
store_open(const char *path, struct vg_store **out, struct vg_err *err)
{
	return store_open_ex(path, 0, 0, out, err);
}

void
store_close(struct vg_store *st)
{
	if (st == NULL)
		return;
	if (st->db != NULL) {
		store_rollback(st);
		sqlite3_close_v2(st->db);
	}
	free(st->path);
	free(st);
}

int
store_user_version(struct vg_store *st)
{
	int64_t v;

	if (store_get_int(st, "PRAGMA user_version", &v, "reading the schema "
	    "version", NULL) == -1)
		return -1;
	return (int)v;
}

/* For the other files of db/ (db/store_int.h). */
sqlite3 *
store_sqlite(struct vg_store *st)
{
	return st->db;
}

const char *
store_path(struct vg_store *st)
{
	return st->path;
}

int
store_test_exec(struct vg_store *st, const char *sql, struct vg_err *err)
{
	return store_exec(st, sql, "test SQL", err);
}

int
store_test_int(struct vg_store *st, const char *sql, int64_t *val,
    struct vg_err *err)
{
	return store_get_int(st, sql, val, "test SQL", err);
}

/* --- jobs --- */

void
job_row_free(struct vg_job_row *row)
{
	if (row == NULL)
		return;
	free(row->name);
	free(row->definition);
	row->name = row->definition = NULL;
}

void
job_rows_free(struct vg_job_row *rows, size_t n)
{
	size_t i;

	if (rows == NULL)
		return;
	for (i = 0; i < n; i++)
		job_row_free(&rows[i]);
	free(rows);
}

/* Fill row from a STORE_JOB_COLUMNS result. */
static int
store_job_read(sqlite3_stmt *stmt, struct vg_job_row *row, struct vg_err *err)
{
	memset(row, 0, sizeof *row);
	row->id = sqlite3_column_int64(stmt, 0);
	row->owner_uid = (uid_t)sqlite3_column_int64(stmt, 1);
	row->created = sqlite3_column_int64(stmt, 4);
	row->updated = sqlite3_column_int64(stmt, 5);
	row->last_run = sqlite3_column_int64(stmt, 6);
	row->next_run = sqlite3_column_int64(stmt, 7);
	row->deleted = sqlite3_column_int64(stmt, 8);
	if (store_coldup(stmt, 2, &row->name, err) == -1 ||
	    store_coldup(stmt, 3, &row->definition, err) == -1) {
		job_row_free(row);
		return -1;
	}
	return 0;
}

static bool
store_put_named(const struct vg_job_put *puts, size_t nputs, uid_t uid,
    const char *name)
{
	size_t i;

	for (i = 0; i < nputs; i++)
		if (puts[i].owner_uid == uid && strcmp(puts[i].name, name) == 0)
			return true;
	return false;
}

/* REPLACE: mark removed every live job of uid that puts[] does not name. */
static int
store_import_remove(struct vg_store *st, uid_t uid,
    const struct vg_job_put *puts, size_t nputs, int64_t now,
    struct vg_err *err)
{
	sqlite3_stmt *sel = NULL, *del = NULL;
	int64_t *ids = NULL, *nids;
	size_t n = 0, cap = 0, i;
	int rc, ret = -1;

	if (store_prepare(st, "SELECT id, name FROM jobs WHERE owner_uid = ? "
	    "AND deleted = 0", &sel, "import: listing jobs", err) == -1 ||
	    store_prepare(st, "UPDATE jobs SET deleted = ?, updated = ? "
	    "WHERE id = ?", &del, "import: removing a job", err) == -1)
		goto out;
	sqlite3_bind_int64(sel, 1, (int64_t)uid);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		if (store_put_named(puts, nputs, uid,
		    (const char *)sqlite3_column_text(sel, 1)))
			continue;
		if (n == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nids = reallocarray(ids, cap, sizeof *ids)) ==
			    NULL) {
				vg_err_sys(err, "out of memory");
				goto out;
			}
			ids = nids;
		}
		ids[n++] = sqlite3_column_int64(sel, 0);
	}
	if (rc != SQLITE_DONE) {
		STORE_ERR(st, err, rc, "import: listing the jobs of uid %u",
		    (unsigned)uid);
		goto out;
	}
	for (i = 0; i < n; i++) {
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, now);
		sqlite3_bind_int64(del, 2, now);
		sqlite3_bind_int64(del, 3, ids[i]);
		if (store_step_done(st, del, "import: removing a job", err) ==
		    -1)
			goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	free(ids);
	return ret;
}

int
store_jobs_import(struct vg_store *st, enum store_import_mode mode,
    const struct vg_job_put *puts, size_t nputs, const uid_t *scope,
    size_t nscope, uid_t preamble_uid, const char *preamble,
    struct vg_err *err)
{
	sqlite3_stmt *sel = NULL, *upd = NULL, *ins = NULL, *pre = NULL;
	const char *old;
	char key[64];
	int64_t now = store_now();
	size_t i, j;
	int rc, ret = -1;

	if (now <= 0)
		now = 1;	/* deleted = 0 means live */
	for (i = 0; i < nputs; i++) {
		if (puts[i].name == NULL || puts[i].definition == NULL) {
			vg_err_set(err, VG_ERR_INVALID, "import: job %zu has "
			    "no %s", i + 1, puts[i].name == NULL ? "name" :
			    "definition");
			return -1;
		}
		for (j = 0; j < i; j++)
			if (puts[j].owner_uid == puts[i].owner_uid &&
			    strcmp(puts[j].name, puts[i].name) == 0) {
				vg_err_set(err, VG_ERR_INVALID, "import: job "
				    "\"%s\" of uid %u appears twice; each job "
				    "name must be unique", puts[i].name,
				    (unsigned)puts[i].owner_uid);
				return -1;
			}
	}

	if (store_begin(st, "import: starting", err) == -1)
		return -1;
	if (store_prepare(st, "SELECT id, definition FROM jobs WHERE "
	    "owner_uid = ? AND name = ? AND deleted = 0", &sel,
	    "import: finding a job", err) == -1 ||
	    store_prepare(st, "UPDATE jobs SET definition = ?, updated = ? "
	    "WHERE id = ?", &upd, "import: updating a job", err) == -1 ||
	    store_prepare(st, "INSERT INTO jobs (owner_uid, name, definition, "
	    "created, updated) VALUES (?, ?, ?, ?, ?)", &ins,
	    "import: adding a job", err) == -1)
		goto out;

	for (i = 0; i < nputs; i++) {
		sqlite3_reset(sel);
		sqlite3_bind_int64(sel, 1, (int64_t)puts[i].owner_uid);
		store_bind_text(sel, 2, puts[i].name);
		rc = sqlite3_step(sel);
		if (rc == SQLITE_ROW) {
			old = (const char *)sqlite3_column_text(sel, 1);
			if (old != NULL && strcmp(old, puts[i].definition) == 0)
				continue;
			sqlite3_reset(upd);
			store_bind_text(upd, 1, puts[i].definition);
			sqlite3_bind_int64(upd, 2, now);
			sqlite3_bind_int64(upd, 3, sqlite3_column_int64(sel,
			    0));
			if (store_step_done(st, upd, "import: updating a job",
			    err) == -1)
				goto fail_job;
		} else if (rc == SQLITE_DONE) {
			sqlite3_reset(ins);
			sqlite3_bind_int64(ins, 1, (int64_t)puts[i].owner_uid);
			store_bind_text(ins, 2, puts[i].name);
			store_bind_text(ins, 3, puts[i].definition);
			sqlite3_bind_int64(ins, 4, now);
			sqlite3_bind_int64(ins, 5, now);
			if (store_step_done(st, ins, "import: adding a job",
			    err) == -1)
				goto fail_job;
		} else {
			STORE_ERR(st, err, rc, "import: finding a job");
			goto fail_job;
		}
	}
	if (mode == STORE_IMPORT_REPLACE)
		for (i = 0; i < nscope; i++)
			if (store_import_remove(st, scope[i], puts, nputs, now,
			    err) == -1)
				goto out;
	if (preamble != NULL) {
		snprintf(key, sizeof key, "preamble:%u",
		    (unsigned)preamble_uid);
		if (store_prepare(st, "INSERT OR REPLACE INTO settings (key, "
		    "value) VALUES (?, ?)", &pre, "import: saving the preamble",
		    err) == -1)
			goto out;
		store_bind_text(pre, 1, key);
		store_bind_text(pre, 2, preamble);
		if (store_step_done(st, pre, "import: saving the preamble",
		    err) == -1)
			goto out;
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	sqlite3_finalize(ins);
	sqlite3_finalize(pre);
	sel = upd = ins = pre = NULL;
	if (store_commit(st, "import: committing", err) == -1)
		goto out;
	ret = 0;
	goto out;
fail_job:
	vg_err_prefix(err, "job \"%s\" of uid %u; nothing was imported",
	    puts[i].name, (unsigned)puts[i].owner_uid);
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	sqlite3_finalize(ins);
	sqlite3_finalize(pre);
	if (ret == -1)
		store_rollback(st);
	return ret;
}

int
store_jobs_list(struct vg_store *st, bool all_owners, uid_t owner_uid,
    struct vg_job_row **rows, size_t *n, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	struct vg_job_row *v = NULL, *nv;
	size_t cnt = 0, cap = 0;
	int rc, ret = -1;

	*rows = NULL;
	*n = 0;
	if (store_prepare(st, "SELECT " STORE_JOB_COLUMNS " WHERE deleted = 0 "
	    "AND (?1 OR owner_uid = ?2) ORDER BY owner_uid, name", &stmt,
	    "listing jobs", err) == -1)
		goto out;
	sqlite3_bind_int(stmt, 1, all_owners ? 1 : 0);
	sqlite3_bind_int64(stmt, 2, (int64_t)owner_uid);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof *v)) == NULL) {
				vg_err_sys(err, "out of memory");
				goto out;
			}
			v = nv;
		}
		if (store_job_read(stmt, &v[cnt], err) == -1)
			goto out;
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		STORE_ERR(st, err, rc, "listing jobs");
		goto out;
	}
	*rows = v;
	*n = cnt;
	v = NULL;
	ret = 0;
out:
	job_rows_free(v, cnt);
	sqlite3_finalize(stmt);
	return ret;
}

/* Run a query for at most one job row; NOTFOUND names what. */
static int
store_job_one(struct vg_store *st, sqlite3_stmt *stmt, struct vg_job_row *row,
    const char *what, struct vg_err *err)
{
	int rc;

	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		return store_job_read(stmt, row, err);
	if (rc == SQLITE_DONE)
		vg_err_set(err, VG_ERR_NOTFOUND, "no job %s", what);
	else
		STORE_ERR(st, err, rc, "reading job %s", what);
	return -1;
}

int
store_job_get(struct vg_store *st, uid_t owner_uid, const char *name,
    struct vg_job_row *row, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	char what[256];
	int ret = -1;

	memset(row, 0, sizeof *row);
	if (store_prepare(st, "SELECT " STORE_JOB_COLUMNS " WHERE "
	    "owner_uid = ? AND name = ? AND deleted = 0", &stmt, "reading a job", err) == -1)
		goto out;
	sqlite3_bind_int64(stmt, 1, (int64_t)owner_uid);
	store_bind_text(stmt, 2, name);
	snprintf(what, sizeof what, "\"%s\" of uid %u", name,
	    (unsigned)owner_uid);
	ret = store_job_one(st, stmt, row, what, err);
out:
	sqlite3_finalize(stmt);
	return ret;
}

int
store_job_get_id(struct vg_store *st, int64_t id, struct vg_job_row *row,
    struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	char what[64];
	int ret = -1;

	memset(row, 0, sizeof *row);
	if (store_prepare(st, "SELECT " STORE_JOB_COLUMNS " WHERE id = ?",
	    &stmt, "reading a job", err) == -1)
		goto out;
	sqlite3_bind_int64(stmt, 1, id);
	snprintf(what, sizeof what, "with id %lld", (long long)id);
	ret = store_job_one(st, stmt, row, what, err);
out:
	sqlite3_finalize(stmt);
	return ret;
}

int
store_job_set_times(struct vg_store *st, int64_t job_id, int64_t last_run,
    int64_t next_run, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	int ret = -1;

	if (store_begin(st, "saving a job's run times", err) == -1)
		return -1;
	if (store_prepare(st, "UPDATE jobs SET last_run = ?, next_run = ? "
	    "WHERE id = ?", &stmt, "saving a job's run times", err) == -1)
		goto out;
	sqlite3_bind_int64(stmt, 1, last_run);
	sqlite3_bind_int64(stmt, 2, next_run);
	sqlite3_bind_int64(stmt, 3, job_id);
	if (store_step_done(st, stmt, "saving a job's run times", err) == -1)
		goto out;
	if (sqlite3_changes(st->db) == 0) {
		vg_err_set(err, VG_ERR_NOTFOUND, "no job with id %lld",
		    (long long)job_id);
		goto out;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (store_commit(st, "saving a job's run times", err) == -1)
		goto out;
	ret = 0;
out:
	sqlite3_finalize(stmt);
	if (ret == -1)
		store_rollback(st);
	return ret;
}

int
store_run_set_details(struct vg_store *st, int64_t run_id,
    const char *details_json, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	int ret = -1;

	if (store_begin(st, "saving a run's details", err) == -1)
		return -1;
	if (store_prepare(st, "UPDATE runs SET details_json = ? WHERE id = ?",
	    &stmt, "saving a run's details", err) == -1)
		goto out;
	store_bind_text(stmt, 1, details_json);
	sqlite3_bind_int64(stmt, 2, run_id);
	if (store_step_done(st, stmt, "saving a run's details", err) == -1)
		goto out;
	if (sqlite3_changes(st->db) == 0) {
		vg_err_set(err, VG_ERR_NOTFOUND, "no run %lld",
		    (long long)run_id);
		goto out;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (store_commit(st, "saving a run's details", err) == -1)
		goto out;
	ret = 0;
out:
	sqlite3_finalize(stmt);
	if (ret == -1)
		store_rollback(st);
	return ret;
}

int
store_preamble_get(struct vg_store *st, uid_t uid, char **out,
    struct vg_err *err)
{
	char key[64];

	snprintf(key, sizeof key, "preamble:%u", (unsigned)uid);
	return store_setting_get(st, key, out, err);
}

/* --- runs --- */

const char *
store_run_status_name(enum vg_run_status s)
{
	if ((unsigned)s > VG_RUN_POSTPONED)
		return "unknown";
	return store_status_names[s];
}

int
store_run_status_parse(const char *s, enum vg_run_status *out)
{
	size_t i;

	for (i = 0; s != NULL && i <= VG_RUN_POSTPONED; i++)
		if (strcmp(s, store_status_names[i]) == 0) {
			*out = (enum vg_run_status)i;
			return 0;
		}
	return -1;
}

const char *
store_capture_name(enum vg_capture c)
{
	if ((unsigned)c >= VG_CAP_COUNT)
		return "unknown";
	return store_capture_names[c];
}

void
run_row_free(struct vg_run_row *row)
{
	if (row == NULL)
		return;
	free(row->job_name);
	free(row->path);
	free(row->path_reason);
	free(row->trigger);
	free(row->message);
	free(row->details_json);
	row->job_name = row->path = row->path_reason = row->trigger = NULL;
	row->message = row->details_json = NULL;
}

void
run_rows_free(struct vg_run_row *rows, size_t n)
{
	size_t i;

	if (rows == NULL)
		return;
	for (i = 0; i < n; i++)
		run_row_free(&rows[i]);
	free(rows);
}

void
run_files_free(struct vg_run_file *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].capture);
		free(v[i].problem);
		free(v[i].detail);
	}
	free(v);
}

/* Fill row from a STORE_RUN_COLUMNS result. */
static int
store_run_read(struct vg_store *st, sqlite3_stmt *stmt,
    struct vg_run_row *row, struct vg_err *err)
{
	const char *status;
	int i;

	memset(row, 0, sizeof *row);
	row->id = sqlite3_column_int64(stmt, 0);
	row->job_id = sqlite3_column_int64(stmt, 1);
	row->owner_uid = (uid_t)sqlite3_column_int64(stmt, 3);
	row->dry_run = sqlite3_column_int64(stmt, 8) != 0;
	row->started = sqlite3_column_int64(stmt, 9);
	row->ended = sqlite3_column_int64(stmt, 10);
	row->files = (uint64_t)sqlite3_column_int64(stmt, 11);
	row->files_copied = (uint64_t)sqlite3_column_int64(stmt, 12);
	row->files_unchanged = (uint64_t)sqlite3_column_int64(stmt, 13);
	row->files_deleted = (uint64_t)sqlite3_column_int64(stmt, 14);
	row->files_versioned = (uint64_t)sqlite3_column_int64(stmt, 15);
	row->files_failed = (uint64_t)sqlite3_column_int64(stmt, 16);
	row->bytes = (uint64_t)sqlite3_column_int64(stmt, 17);
	row->bytes_total = (uint64_t)sqlite3_column_int64(stmt, 18);
	for (i = 0; i < VG_CAP_COUNT; i++)
		row->capture[i] = (uint64_t)sqlite3_column_int64(stmt, 19 + i);
	status = (const char *)sqlite3_column_text(stmt, 4);
	if (store_run_status_parse(status, &row->status) == -1) {
		vg_err_set(err, VG_ERR_DB, "database %s: run %lld has an "
		    "unknown status \"%s\"", st->path, (long long)row->id,
		    status != NULL ? status : "");
		return -1;
	}
	if (store_coldup(stmt, 2, &row->job_name, err) == -1 ||
	    store_coldup(stmt, 5, &row->path, err) == -1 ||
	    store_coldup(stmt, 6, &row->path_reason, err) == -1 ||
	    store_coldup(stmt, 7, &row->trigger, err) == -1 ||
	    store_coldup(stmt, 19 + VG_CAP_COUNT, &row->message, err) == -1 ||
	    store_coldup(stmt, 20 + VG_CAP_COUNT, &row->details_json, err) ==
	    -1) {
		run_row_free(row);
		return -1;
	}
	return 0;
}

int
store_run_begin(struct vg_store *st, int64_t job_id, const char *trigger,
    bool dry_run, int64_t *run_id, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	int64_t deleted;
	int rc, ret = -1;

	*run_id = 0;
	if (store_begin(st, "starting a run", err) == -1)
		return -1;
	if (store_prepare(st, "SELECT deleted FROM jobs WHERE id = ?", &stmt,
	    "starting a run", err) == -1)
		goto out;
	sqlite3_bind_int64(stmt, 1, job_id);
	if ((rc = sqlite3_step(stmt)) != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			vg_err_set(err, VG_ERR_NOTFOUND, "no job with id %lld",
			    (long long)job_id);
		else
			STORE_ERR(st, err, rc, "starting a run");
		goto out;
	}
	deleted = sqlite3_column_int64(stmt, 0);
	if (deleted != 0) {
		vg_err_set(err, VG_ERR_NOTFOUND, "job id %lld was removed by "
		    "an import; it cannot run", (long long)job_id);
		goto out;
	}
	sqlite3_finalize(stmt);
	if (store_prepare(st, "INSERT INTO runs (job_id, status, trigger, "
	    "dry_run, started) VALUES (?, 'running', ?, ?, ?)", &stmt,
	    "starting a run", err) == -1)
		goto out;
	sqlite3_bind_int64(stmt, 1, job_id);
	store_bind_text(stmt, 2, trigger);
	sqlite3_bind_int(stmt, 3, dry_run ? 1 : 0);
	sqlite3_bind_int64(stmt, 4, store_now_ms());
	if (store_step_done(st, stmt, "starting a run", err) == -1)
		goto out;
	*run_id = sqlite3_last_insert_rowid(st->db);
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (store_commit(st, "starting a run", err) == -1) {
		*run_id = 0;
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(stmt);
	if (ret == -1)
		store_rollback(st);
	return ret;
}

int
store_run_finish(struct vg_store *st, const struct vg_run_row *row,
    const struct vg_run_file *files, size_t nfiles, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	const struct vg_run_file *f;
	char op[64];
	size_t i;
	int k, ret = -1;

	snprintf(op, sizeof op, "recording run %lld", (long long)row->id);
	if ((unsigned)row->status > VG_RUN_POSTPONED ||
	    row->status == VG_RUN_RUNNING) {
		vg_err_set(err, VG_ERR_INVALID, "%s: a finished run cannot "
		    "have status %s", op, store_run_status_name(row->status));
		return -1;
	}
	for (i = 0; i < nfiles; i++)
		if (files[i].path == NULL) {
			vg_err_set(err, VG_ERR_INVALID, "%s: file %zu has no "
			    "path", op, i + 1);
			return -1;
		}
	if (store_begin(st, op, err) == -1)
		return -1;
	if (store_prepare(st, "UPDATE runs SET status = ?, path = ?, "
	    "path_reason = ?, ended = ?, files = ?, files_copied = ?, "
	    "files_unchanged = ?, files_deleted = ?, files_versioned = ?, "
	    "files_failed = ?, bytes = ?, bytes_total = ?, "
	    "cap_closed_app = ?, cap_snapshot_btrfs = ?, cap_snapshot_lvm = ?, "
	    "cap_reflink = ?, cap_sqlite_backup = ?, cap_verified = ?, "
	    "cap_inconsistent = ?, cap_live = ?, message = ?, "
	    "details_json = ? WHERE id = ?", &stmt, op, err) == -1)
		goto out;
	k = 1;
	store_bind_text(stmt, k++, store_run_status_name(row->status));
	store_bind_text(stmt, k++, row->path);
	store_bind_text(stmt, k++, row->path_reason);
	sqlite3_bind_int64(stmt, k++, row->ended != 0 ? row->ended :
	    store_now_ms());
	sqlite3_bind_int64(stmt, k++, (int64_t)row->files);
	sqlite3_bind_int64(stmt, k++, (int64_t)row->files_copied);
	sqlite3_bind_int64(stmt, k++, (int64_t)row->files_unchanged);
	sqlite3_bind_int64(stmt, k++, (int64_t)row->files_deleted);
	sqlite3_bind_int64(stmt, k++, (int64_t)row->files_versioned);
	sqlite3_bind_int64(stmt, k++, (int64_t)row->files_failed);
	sqlite3_bind_int64(stmt, k++, (int64_t)row->bytes);
	sqlite3_bind_int64(stmt, k++, (int64_t)row->bytes_total);
	for (i = 0; i < VG_CAP_COUNT; i++)
		sqlite3_bind_int64(stmt, k++, (int64_t)row->capture[i]);
	store_bind_text(stmt, k++, row->message);
	store_bind_text(stmt, k++, row->details_json);
	sqlite3_bind_int64(stmt, k++, row->id);
	if (store_step_done(st, stmt, op, err) == -1)
		goto out;
	if (sqlite3_changes(st->db) == 0) {
		vg_err_set(err, VG_ERR_NOTFOUND, "%s: no such run", op);
		goto out;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;

	if (store_prepare(st, "DELETE FROM run_files WHERE run_id = ?", &stmt,
	    op, err) == -1)
		goto out;
	sqlite3_bind_int64(stmt, 1, row->id);
	if (store_step_done(st, stmt, op, err) == -1)
		goto out;
	sqlite3_finalize(stmt);
	stmt = NULL;

	if (store_prepare(st, "INSERT INTO run_files (run_id, seq, path, "
	    "capture, problem, detail) VALUES (?, ?, ?, ?, ?, ?)", &stmt, op,
	    err) == -1)
		goto out;
	for (i = 0; i < nfiles; i++) {
		f = &files[i];
		sqlite3_reset(stmt);
		sqlite3_bind_int64(stmt, 1, row->id);
		sqlite3_bind_int64(stmt, 2, (int64_t)i);
		/* A non-NULL pointer: a zero-length BLOB, never NULL. */
		sqlite3_bind_blob64(stmt, 3, f->path, f->path_len,
		    SQLITE_STATIC);
		store_bind_text(stmt, 4, f->capture);
		store_bind_text(stmt, 5, f->problem);
		store_bind_text(stmt, 6, f->detail);
		if (store_step_done(st, stmt, op, err) == -1)
			goto out;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (store_commit(st, op, err) == -1)
		goto out;
	ret = 0;
out:
	sqlite3_finalize(stmt);
	if (ret == -1)
		store_rollback(st);
	return ret;
}

int
store_run_get(struct vg_store *st, int64_t run_id, struct vg_run_row *row,
    struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	int rc, ret = -1;

	memset(row, 0, sizeof *row);
	if (store_prepare(st, "SELECT " STORE_RUN_COLUMNS " WHERE r.id = ?",
	    &stmt, "reading a run", err) == -1)
		goto out;
	sqlite3_bind_int64(stmt, 1, run_id);
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		ret = store_run_read(st, stmt, row, err);
	else if (rc == SQLITE_DONE)
		vg_err_set(err, VG_ERR_NOTFOUND, "no run with id %lld",
		    (long long)run_id);
	else
		STORE_ERR(st, err, rc, "reading run %lld", (long long)run_id);
out:
	sqlite3_finalize(stmt);
	return ret;
}

int
store_run_files(struct vg_store *st, int64_t run_id,
    struct vg_run_file **files, size_t *n, struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	struct vg_run_file *v = NULL, *nv, *f;
	const void *blob;
	size_t cnt = 0, cap = 0, len;
	int rc, ret = -1;

	*files = NULL;
	*n = 0;
	if (store_prepare(st, "SELECT path, capture, problem, detail FROM "
	    "run_files WHERE run_id = ? ORDER BY seq", &stmt,
	    "reading a run's files", err) == -1)
		goto out;
	sqlite3_bind_int64(stmt, 1, run_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof *v)) == NULL) {
				vg_err_sys(err, "out of memory");
				goto out;
			}
			v = nv;
		}
		f = &v[cnt];
		memset(f, 0, sizeof *f);
		cnt++;
		blob = sqlite3_column_blob(stmt, 0);
		len = (size_t)sqlite3_column_bytes(stmt, 0);
		if ((f->path = malloc(len + 1)) == NULL) {
			vg_err_sys(err, "out of memory");
			goto out;
		}
		if (len > 0)
			memcpy(f->path, blob, len);
		f->path[len] = '\0';
		f->path_len = len;
		if (store_coldup(stmt, 1, &f->capture, err) == -1 ||
		    store_coldup(stmt, 2, &f->problem, err) == -1 ||
		    store_coldup(stmt, 3, &f->detail, err) == -1)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		STORE_ERR(st, err, rc, "reading the files of run %lld",
		    (long long)run_id);
		goto out;
	}
	*files = v;
	*n = cnt;
	v = NULL;
	ret = 0;
out:
	run_files_free(v, cnt);
	sqlite3_finalize(stmt);
	return ret;
}

int
store_runs_list(struct vg_store *st, int64_t job_id, bool all_owners,
    uid_t owner_uid, size_t limit, struct vg_run_row **rows, size_t *n,
    struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	struct vg_run_row *v = NULL, *nv;
	char sql[1024];
	size_t cnt = 0, cap = 0;
	int rc, k = 1, ret = -1;

	*rows = NULL;
	*n = 0;
	snprintf(sql, sizeof sql, "SELECT " STORE_RUN_COLUMNS " WHERE 1%s%s "
	    "ORDER BY r.started DESC, r.id DESC LIMIT ?",
	    job_id != 0 ? " AND r.job_id = ?" : "",
	    !all_owners ? " AND j.owner_uid = ?" : "");
	if (store_prepare(st, sql, &stmt, "listing runs", err) == -1)
		goto out;
	if (job_id != 0)
		sqlite3_bind_int64(stmt, k++, job_id);
	if (!all_owners)
		sqlite3_bind_int64(stmt, k++, (int64_t)owner_uid);
	sqlite3_bind_int64(stmt, k++, limit == 0 || limit > INT64_MAX ? -1 :
	    (int64_t)limit);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof *v)) == NULL) {
				vg_err_sys(err, "out of memory");
				goto out;
			}
			v = nv;
		}
		if (store_run_read(st, stmt, &v[cnt], err) == -1)
			goto out;
		cnt++;
	}
	if (rc != SQLITE_DONE) {
		STORE_ERR(st, err, rc, "listing runs");
		goto out;
	}
	*rows = v;
	*n = cnt;
	v = NULL;
	ret = 0;
out:
	run_rows_free(v, cnt);
	sqlite3_finalize(stmt);
	return ret;
}

static int
store_mark_interrupted(struct vg_store *st, int64_t job_id, size_t *n,
    struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	int ret = -1;

	*n = 0;
	if (store_begin(st, "marking interrupted runs", err) == -1)
		return -1;
	if (store_prepare(st, "UPDATE runs SET status = 'interrupted', "
	    "ended = ?, message = coalesce(message, 'the process running it "
	    "stopped before the run ended') WHERE status = 'running' AND "
	    "(?2 = 0 OR job_id = ?2)", &stmt, "marking interrupted runs",
	    err) == -1)
		goto out;
	sqlite3_bind_int64(stmt, 1, store_now_ms());
	sqlite3_bind_int64(stmt, 2, job_id);
	if (store_step_done(st, stmt, "marking interrupted runs", err) == -1)
		goto out;
	*n = (size_t)sqlite3_changes(st->db);
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (store_commit(st, "marking interrupted runs", err) == -1) {
		*n = 0;
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(stmt);
	if (ret == -1)
		store_rollback(st);
	return ret;
}

int
store_runs_mark_interrupted(struct vg_store *st, size_t *n,
    struct vg_err *err)
{
	return store_mark_interrupted(st, 0, n, err);
}

int
store_job_runs_mark_interrupted(struct vg_store *st, int64_t job_id,
    size_t *n, struct vg_err *err)
{
	return store_mark_interrupted(st, job_id, n, err);
}

/* --- settings --- */

int
store_setting_get(struct vg_store *st, const char *key, char **value,
    struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	int rc, ret = -1;

	*value = NULL;
	if (store_prepare(st, "SELECT value FROM settings WHERE key = ?",
	    &stmt, "reading a setting", err) == -1)
		goto out;
	store_bind_text(stmt, 1, key);
	if ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		ret = store_coldup(stmt, 0, value, err);
	else if (rc == SQLITE_DONE)
		ret = 0;
	else
		STORE_ERR(st, err, rc, "reading setting %s", key);
out:
	sqlite3_finalize(stmt);
	return ret;
}

int
store_setting_set(struct vg_store *st, const char *key, const char *value,
    struct vg_err *err)
{
	sqlite3_stmt *stmt = NULL;
	char op[256];
	int ret = -1;

	snprintf(op, sizeof op, "saving setting %s", key);
	if (store_begin(st, op, err) == -1)
		return -1;
	if (store_prepare(st, value != NULL ? "INSERT OR REPLACE INTO "
	    "settings (key, value) VALUES (?, ?)" : "DELETE FROM settings "
	    "WHERE key = ?", &stmt, op, err) == -1)
		goto out;
	store_bind_text(stmt, 1, key);
	if (value != NULL)
		store_bind_text(stmt, 2, value);
	if (store_step_done(st, stmt, op, err) == -1)
		goto out;
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (store_commit(st, op, err) == -1)
		goto out;
	ret = 0;
out:
	sqlite3_finalize(stmt);
	if (ret == -1)
		store_rollback(st);
	return ret;
}
