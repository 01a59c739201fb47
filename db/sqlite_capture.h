/*
 * sqlite_capture.h: a consistent copy of a live SQLite database through the
 * online backup API (DESIGN.md, "SQLite files").  The engine reaches it
 * through scheduler/capture.h; this header exposes no SQLite types (only
 * db/ includes sqlite3.h).
 *
 * The whole database is copied in one sqlite3_backup_step(-1) under one read
 * transaction of the source, so the copy is the database as of one commit,
 * even while another process writes to it in WAL mode.  Small steps would
 * restart each time the writer commits, for ever.
 */
#ifndef VIGIL_SQLITE_CAPTURE_H
#define VIGIL_SQLITE_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* The 16 bytes every SQLite 3 database starts with. */
#define SQLCAP_MAGIC		"SQLite format 3"	/* + its NUL */
#define SQLCAP_MAGIC_LEN	16

enum sqlcap_status {
	SQLCAP_OK = 0,
	SQLCAP_FAILED = -1,	/* writing the copy failed (the destination
				   is full, ...): the file is not copied */
	SQLCAP_LOCKED = -2,	/* no read lock before the deadline: a writer
				   in exclusive locking mode, or one
				   transaction longer than the deadline */
	SQLCAP_UNUSABLE = -3,	/* not a database SQLite can read (damaged,
				   not a database, cannot be opened read-only,
				   a symlink in the path) */
};

/* True when buf (len bytes, the start of a file) holds the SQLite header. */
bool	sqlcap_is_header(const void *buf, size_t len);
/*
 * False when a file of this size cannot be a database SQLite wrote: its
 * file is whole pages, and a page is 512 to 65536 bytes.  Spares reading
 * the header of almost every other file.  (A new WAL database whose pages
 * are all still in its -wal has an empty file: it is not taken for a
 * database at any size under 512, and is copied with its companions.)
 */
bool	sqlcap_size_may_be_db(long long size);

/*
 * Copy the database at src_path (absolute, no symlink in it: refused) into
 * dst_path, an empty or missing file that the caller owns; the caller makes
 * it durable (fsync) and renames it.  The source is opened read-only and
 * never written (nor checkpointed); only the main file is written at
 * dst_path, with no journal.  Lock waits share one deadline of deadline_ms.
 *
 * Returns SQLCAP_OK, or one of the negative statuses with err set (naming
 * src_path).  LOCKED and UNUSABLE mean "use the next capture method";
 * FAILED is a destination error, with err->code VG_ERR_NOSPACE when the
 * destination is full.  *pages (may be NULL) gets the pages copied.
 */
int	sqlcap_backup(const char *src_path, const char *dst_path,
	    int deadline_ms, long *pages, struct vg_err *err);

#endif
