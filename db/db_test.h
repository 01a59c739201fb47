/*
 * db_test.h: hooks for the unit tests of db/ (test_store, test_catalogue,
 * test_migrations).  Not for use by the service: they bypass the checks that
 * store_open() and catalogue_open() make.
 */
#ifndef VIGIL_DB_TEST_H
#define VIGIL_DB_TEST_H

#include "db/catalogue.h"
#include "db/store.h"

/*
 * store_open() with two knobs: upto > 0 applies migrations only up to that
 * schema version (to build an old database); busy_ms > 0 replaces the busy
 * timeout (default STORE_BUSY_MS).
 */
int	store_open_ex(const char *path, int upto, int busy_ms,
	    struct vg_store **out, struct vg_err *err);
/* Run raw SQL (one or more statements) on the store's connection. */
int	store_test_exec(struct vg_store *st, const char *sql,
	    struct vg_err *err);
/* Run SQL returning one integer (first column of the first row) in *val. */
int	store_test_int(struct vg_store *st, const char *sql, int64_t *val,
	    struct vg_err *err);
/* Run raw SQL on the catalogue's connection. */
int	catalogue_test_exec(struct vg_catalogue *cat, const char *sql,
	    struct vg_err *err);

#endif
