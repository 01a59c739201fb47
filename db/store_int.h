/*
 * store_int.h: what the other files of db/ need from store.c (the open
 * connection of a struct vg_store).  Only db/ includes it.
 */
#ifndef VIGIL_STORE_INT_H
#define VIGIL_STORE_INT_H

#include "db/store.h"

struct sqlite3;

/* The store's connection (WAL, busy timeout STORE_BUSY_MS, foreign keys on)
 * and its file name; both belong to the store. */
struct sqlite3	*store_sqlite(struct vg_store *st);
const char	*store_path(struct vg_store *st);

#endif
