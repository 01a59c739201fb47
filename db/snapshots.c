/*
 * snapshots.c: the snapshots table of vigil.db (see snapshots.h).  The
 * table comes with schema v3 (db/store.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "common/err.h"
#include "db/snapshots.h"
#include "db/store_int.h"

#define SNAPSHOTS_ERR(st, err, rc, op) \
	snapshots_dberr((st), (err), (rc), __func__, (op))

static void
snapshots_dberr(struct vg_store *st, struct vg_err *err, int rc,
    const char *func, const char *op)
{
	sqlite3	*db = store_sqlite(st);

	if ((rc & 0xff) == SQLITE_FULL)
		vg_err_set_at(err, VG_ERR_NOSPACE, ENOSPC, func, "database %s: "
		    "%s: the filesystem holding it is full", store_path(st), op);
	else if ((rc & 0xff) == SQLITE_BUSY)
		vg_err_set_at(err, VG_ERR_DB, 0, func, "database %s: %s: "
		    "another process holds the database; stop the other vigild "
		    "or sqlite3 session using it", store_path(st), op);
	else
		vg_err_set_at(err, VG_ERR_DB, 0, func, "database %s: %s: %s",
		    store_path(st), op, sqlite3_extended_errcode(db) == rc ?
		    sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int64_t
snapshots_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A BLOB or TEXT column as a NUL-terminated string; NULL for SQL NULL. */
static int
snapshots_col(sqlite3_stmt *stmt, int col, char **out)
{
	const void *p;
	int len;

	*out = NULL;
	if (sqlite3_column_type(stmt, col) == SQLITE_NULL)
		return 0;
	p = sqlite3_column_blob(stmt, col);
	len = sqlite3_column_bytes(stmt, col);
	if ((*out = malloc((size_t)len + 1)) == NULL)
		return -1;
	if (len > 0)
		memcpy(*out, p, (size_t)len);
	(*out)[len] = '\0';
	return 0;
}

void
snapshot_rows_free(struct vg_snapshot_row *rows, size_t n)
{
	size_t i;

	if (rows == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(rows[i].kind);
		free(rows[i].path);
		free(rows[i].origin);
	}
	free(rows);
}

int
snapshots_add(struct vg_store *st, int64_t run_id, const char *kind,
    const char *path, const char *origin, int64_t *id, struct vg_err *err)
{
	sqlite3		*db = store_sqlite(st);
	sqlite3_stmt	*stmt = NULL;
	int		 rc, ret = -1;

	/* one statement: autocommit makes it durable (WAL, synchronous) */
	rc = sqlite3_prepare_v2(db, "INSERT INTO snapshots (run_id, kind, "
	    "path, origin, created) VALUES (?, ?, ?, ?, ?)", -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int64(stmt, 1, run_id);
	sqlite3_bind_text(stmt, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 3, path, (int)strlen(path), SQLITE_STATIC);
	if (origin != NULL)
		sqlite3_bind_blob(stmt, 4, origin, (int)strlen(origin),
		    SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 4);
	sqlite3_bind_int64(stmt, 5, snapshots_now_ms());
	if ((rc = sqlite3_step(stmt)) != SQLITE_DONE)
		goto dberr;
	if (id != NULL)
		*id = sqlite3_last_insert_rowid(db);
	ret = 0;
	goto out;
dberr:
	SNAPSHOTS_ERR(st, err, rc, "recording a snapshot");
out:
	sqlite3_finalize(stmt);
	return ret;
}

int
snapshots_remove(struct vg_store *st, int64_t id, struct vg_err *err)
{
	sqlite3_stmt	*stmt = NULL;
	int		 rc, ret = -1;

	rc = sqlite3_prepare_v2(store_sqlite(st), "DELETE FROM snapshots "
	    "WHERE id = ?", -1, &stmt, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(stmt, 1, id);
		rc = sqlite3_step(stmt);
	}
	if (rc != SQLITE_DONE) {
		SNAPSHOTS_ERR(st, err, rc, "forgetting a removed snapshot");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(stmt);
	return ret;
}

int
snapshots_list(struct vg_store *st, bool stale_only, int64_t run_id,
    struct vg_snapshot_row **rows, size_t *n, struct vg_err *err)
{
	struct vg_snapshot_row *v = NULL, *nv, *r;
	sqlite3_stmt	*stmt = NULL;
	size_t		 cap = 0, cnt = 0;
	int		 rc, ret = -1;

	*rows = NULL;
	*n = 0;
	rc = sqlite3_prepare_v2(store_sqlite(st), "SELECT s.id, s.run_id, "
	    "s.kind, s.path, s.origin, s.created FROM snapshots s "
	    "LEFT JOIN runs r ON r.id = s.run_id "
	    "WHERE (?1 = 0 OR r.id IS NULL OR r.status != 'running') "
	    "AND (?2 <= 0 OR s.run_id = ?2) ORDER BY s.id", -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int(stmt, 1, stale_only ? 1 : 0);
	sqlite3_bind_int64(stmt, 2, run_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL)
				goto nomem;
			v = nv;
		}
		r = &v[cnt];
		memset(r, 0, sizeof(*r));
		cnt++;
		r->id = sqlite3_column_int64(stmt, 0);
		r->run_id = sqlite3_column_int64(stmt, 1);
		r->created = sqlite3_column_int64(stmt, 5);
		if (snapshots_col(stmt, 2, &r->kind) == -1 ||
		    snapshots_col(stmt, 3, &r->path) == -1 ||
		    snapshots_col(stmt, 4, &r->origin) == -1)
			goto nomem;
		if (r->kind == NULL || r->path == NULL) {
			vg_err_set(err, VG_ERR_DB, "database %s: snapshot row "
			    "%lld has no kind or path", store_path(st),
			    (long long)r->id);
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	*rows = v;
	*n = cnt;
	v = NULL;
	ret = 0;
	goto out;
nomem:
	vg_err_set_at(err, VG_ERR_SYS, ENOMEM, __func__,
	    "out of memory listing snapshots");
	goto out;
dberr:
	SNAPSHOTS_ERR(st, err, rc, "listing snapshots");
out:
	sqlite3_finalize(stmt);
	snapshot_rows_free(v, cnt);
	return ret;
}
