/*
 * capture.h: how the engine reads one file so that its copy is the file at
 * one point in time (DESIGN.md, "Nobody is logged on"), best method first:
 *
 *   sqlite-backup  capture_sqlite(): a file with the SQLite header, through
 *                  the online backup API; its -wal/-shm/-journal companions
 *                  are skipped (capture_is_sqlite_companion);
 *   reflink        capture_reflink(): clone the file into the run's staging
 *                  folder and copy the clone;
 *   verified       capture_verified(): copy, fstat before and after, copy
 *                  again while it moved, at most `retries` more times; if it
 *                  never held still, the last copy is kept and the file is
 *                  inconsistent.
 *
 * A file read from a btrfs snapshot needs none of them: the snapshot is the
 * point in time (the engine still uses capture_sqlite() first, which reads
 * the snapshot's database consistently, and otherwise copies it plainly).
 *
 * The engine keeps ownership of everything it writes: the copy itself is
 * its capture_copy_fn, which these functions call, once or more.
 */
#ifndef VIGIL_CAPTURE_H
#define VIGIL_CAPTURE_H

#include <sys/stat.h>

#include <stdbool.h>

#include "common/err.h"

/* Returned when a method cannot capture this file: err says why (record it
 * as a warning) and the caller goes on to the next method. */
#define CAPTURE_FALLTHROUGH	(-2)

/* The first wait before a re-copy; it doubles each time, up to the cap. */
#define CAPTURE_BACKOFF_MS	50
#define CAPTURE_BACKOFF_MAX_MS	1600
/* How long capture_sqlite waits for the database's locks in all. */
#define CAPTURE_SQLITE_DEADLINE_MS 10000

/*
 * The engine's copy of one file: copy all of src_fd's content, from offset
 * 0 (read with pread or offsets: the file position is not reset), to the
 * destination, replacing whatever an earlier call for the same file wrote.
 * st is the fstat of src_fd taken just before this copy, or NULL when the
 * function must take its own (a clone made after the method's fstat).
 * Returns 0, or -1 with errno when the copy failed (the engine records its
 * own problem; the capture call then returns -1 too).
 */
typedef int (*capture_copy_fn)(void *arg, int src_fd, const struct stat *st);

struct capture_outcome {
	unsigned	 copies;	/* times copy_fn ran */
	bool		 consistent;	/* false: still changing after the last
					   retry; the last copy was kept */
	struct stat	 st;		/* the source as it was just before the
					   copy that was kept: use it for the
					   copy's metadata and the catalogue */
};

/*
 * Verified copy of src_fd (a regular file opened for reading): fstat, copy,
 * fstat; when size, mtime (ns), ctime (ns), inode or device moved, wait
 * (CAPTURE_BACKOFF_MS, doubling) and copy again, at most retries more
 * times.  known, when not NULL, is an fstat of src_fd the caller took
 * since it opened it: it stands for the first "before" (an older "before"
 * only widens the window a change is caught in).  Returns 0 with *out
 * filled (out->consistent false: mark the file inconsistent and end the
 * run partial), or -1 when fstat or copy_fn failed (err says which).
 */
int	capture_verified(int src_fd, const struct stat *known,
	    unsigned retries, capture_copy_fn fn, void *arg,
	    struct capture_outcome *out, struct vg_err *err);

/*
 * Reflink capture: clone src_fd into an unnamed file in staging_fd (the
 * run's staging folder, see snapshot.h), call fn on the clone once, close
 * it.  out->st is the source's fstat taken just before the clone (so its
 * mtime is never newer than the data).  CAPTURE_FALLTHROUGH when the clone
 * is not possible (err says why): use capture_verified().  -1 when copy_fn
 * failed.
 */
int	capture_reflink(int staging_fd, int src_fd, capture_copy_fn fn,
	    void *arg, struct capture_outcome *out, struct vg_err *err);

/* True when the file src_fd starts with the SQLite 3 header (read with
 * pread: the file position does not move). */
bool	capture_is_sqlite(int src_fd);

/*
 * Copy the SQLite database src_name (in folder src_dirfd; src_fd is the
 * engine's open descriptor of it) into dst_name in dst_dirfd, an empty temp
 * file the engine created (it then flushes it through its own descriptor
 * and renames it as usual).  The source is opened read-only by path, with
 * no symlink allowed in the path, and must still be the file src_fd names
 * before and after the backup, else CAPTURE_FALLTHROUGH.
 *
 * Returns 0 (out->st: the source's fstat before the backup; copies 1), or
 * CAPTURE_FALLTHROUGH when the backup is not possible (locked by a writer in
 * exclusive mode past deadline_ms, damaged, not a database, replaced): err
 * says why; record it and use the next method (the temp file may hold
 * partial data: truncate it).  -1 when writing the copy failed (err code
 * VG_ERR_NOSPACE when the destination is full).
 */
int	capture_sqlite(int src_dirfd, const char *src_name, int src_fd,
	    int dst_dirfd, const char *dst_name, int deadline_ms,
	    struct capture_outcome *out, struct vg_err *err);

/*
 * True when name in dirfd is the -wal, -shm or -journal companion of a
 * SQLite database next to it (the name without the suffix is a regular file
 * with the SQLite header).  The engine skips such a file when its database
 * was captured with capture_sqlite() (a stale journal or WAL restored next to
 * the backup would be replayed into it and damage it) and says so in the
 * run; when the database's backup fell through, the companions are copied
 * like the database (the WAL holds committed data).  So the engine decides
 * about companions after their database: it defers them in the folder.
 */
bool	capture_is_sqlite_companion(int dirfd, const char *name);

#endif
