/*
 * sqlite_capture.c: the SQLite online backup of a live database (see
 * sqlite_capture.h).  SQLite result codes become enum sqlcap_status and
 * struct vg_err here and nowhere else.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "common/err.h"
#include "db/sqlite_capture.h"

/* Between two attempts to take a lock. */
#define SQLCAP_POLL_MS	10

struct sqlcap_wait {
	int64_t	 deadline;	/* CLOCK_MONOTONIC ms */
	int	 waits;
};

static int64_t
sqlcap_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sqlcap_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* SQLite's busy handler: retry until the deadline. */
static int
sqlcap_busy(void *arg, int n)
{
	struct sqlcap_wait *w = arg;

	(void)n;
	if (sqlcap_now_ms() >= w->deadline)
		return 0;
	w->waits++;
	sqlcap_sleep_ms(SQLCAP_POLL_MS);
	return 1;
}

bool
sqlcap_is_header(const void *buf, size_t len)
{
	return len >= SQLCAP_MAGIC_LEN &&
	    memcmp(buf, SQLCAP_MAGIC, SQLCAP_MAGIC_LEN) == 0;
}

bool
sqlcap_size_may_be_db(long long size)
{
	return size >= 512 && size % 512 == 0;
}

/* Sort a SQLite failure into a status and say what it means. */
static int
sqlcap_fail(sqlite3 *db, int rc, const char *src, const char *dst,
    const char *op, int deadline_ms, struct vg_err *err)
{
	const char *why = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		vg_err_set(err, VG_ERR_DB, "%s: %s: the database stayed locked "
		    "for %d ms (a process holds it in exclusive locking mode, "
		    "or one transaction lasted that long); it is copied by the "
		    "next method", src, op, deadline_ms);
		return SQLCAP_LOCKED;
	case SQLITE_FULL:
		vg_err_set_at(err, VG_ERR_NOSPACE, ENOSPC, __func__,
		    "%s: %s: the destination is full writing %s; free some "
		    "space and run the job again", src, op, dst);
		return SQLCAP_FAILED;
	case SQLITE_NOMEM:
		vg_err_set_at(err, VG_ERR_SYS, ENOMEM, __func__,
		    "%s: %s: out of memory", src, op);
		return SQLCAP_FAILED;
	default:
		vg_err_set(err, VG_ERR_DB, "%s: %s: SQLite cannot read it as a "
		    "database (%s); it is copied by the next method", src, op,
		    why);
		return SQLCAP_UNUSABLE;
	}
}

int
sqlcap_backup(const char *src_path, const char *dst_path, int deadline_ms,
    long *pages, struct vg_err *err)
{
	struct sqlcap_wait wait;
	sqlite3		*src = NULL, *dst = NULL;
	sqlite3_backup	*b = NULL;
	int		 rc, ret = SQLCAP_FAILED;

	if (pages != NULL)
		*pages = 0;
	if (deadline_ms < 0)
		deadline_ms = 0;
	wait.deadline = sqlcap_now_ms() + deadline_ms;
	wait.waits = 0;

	rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_PRIVATECACHE, NULL);
	if (rc != SQLITE_OK) {
		ret = sqlcap_fail(src, rc, src_path, dst_path,
		    "opening it read-only", deadline_ms, err);
		if (ret == SQLCAP_FAILED)
			ret = SQLCAP_UNUSABLE;
		goto out;
	}
	/* the source is read, never trusted: no schema code runs */
	(void)sqlite3_db_config(src, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	(void)sqlite3_db_config(src, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_busy_handler(src, sqlcap_busy, &wait);

	rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW |
	    SQLITE_OPEN_PRIVATECACHE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dst, "PRAGMA journal_mode = OFF;"
		    "PRAGMA synchronous = OFF;", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		vg_err_set(err, VG_ERR_DB, "%s: cannot create the copy %s: %s",
		    src_path, dst_path, dst != NULL ? sqlite3_errmsg(dst) :
		    sqlite3_errstr(rc));
		if ((rc & 0xff) == SQLITE_FULL && err != NULL)
			err->code = VG_ERR_NOSPACE;
		goto out;
	}
	if ((b = sqlite3_backup_init(dst, "main", src, "main")) == NULL) {
		ret = sqlcap_fail(dst, sqlite3_errcode(dst), src_path,
		    dst_path, "starting the backup", deadline_ms, err);
		goto out;
	}
	for (;;) {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) &&
		    sqlcap_now_ms() < wait.deadline) {
			sqlcap_sleep_ms(SQLCAP_POLL_MS);
			continue;
		}
		if (rc != SQLITE_OK)
			break;
	}
	if (pages != NULL)
		*pages = sqlite3_backup_pagecount(b);
	/* finish reports the step's error again; keep the first */
	(void)sqlite3_backup_finish(b);
	b = NULL;
	if (rc != SQLITE_DONE) {
		ret = sqlcap_fail(dst, rc, src_path, dst_path,
		    "copying it with the backup API", deadline_ms, err);
		goto out;
	}
	ret = SQLCAP_OK;
out:
	if (b != NULL)
		(void)sqlite3_backup_finish(b);
	if (dst != NULL && sqlite3_close(dst) != SQLITE_OK && ret == SQLCAP_OK) {
		vg_err_set(err, VG_ERR_DB, "%s: cannot close the copy %s",
		    src_path, dst_path);
		ret = SQLCAP_FAILED;
	}
	if (src != NULL)
		(void)sqlite3_close(src);
	return ret;
}
