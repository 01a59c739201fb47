/*
 * engine_int.h: what the copy engine's files share (engine.c: the run and
 * the walk; engine_copy.c: file content, metadata and the durable batch;
 * engine_dest.c: removing and versioning destination entries).  Not for use
 * outside scheduler/engine*.c and their tests.
 */
#ifndef VIGIL_ENGINE_INT_H
#define VIGIL_ENGINE_INT_H

#include <sys/stat.h>
#include <sys/types.h>

#include <pthread.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "common/filter.h"
#include "db/catalogue.h"
#include "scheduler/engine.h"
#include "scheduler/versions.h"

/*
 * How a batch of temp files is made durable before the renames: one
 * syncfs() of the destination filesystem, or an fsync() per file.  The
 * default was chosen by measurement (docs/architecture.md); tests and
 * benchmarks may change it before engine_run().
 */
enum engine_flush { ENGINE_FLUSH_SYNCFS, ENGINE_FLUSH_FSYNC };
extern enum engine_flush engine_flush_mode;
/* Batch limits: a batch is flushed at this many files or bytes. */
#define ENG_BATCH_FILES		1024
#define ENG_BATCH_BYTES		(64ULL << 20)
#define ENG_BATCH_ITEMS		4096	/* catalogue-only rows too */
/* A copy at least this big starts its writeback as soon as its data is
   written, so the device works while the walk goes on and the batch's
   flush waits less; smaller ones are left to the flush, which writes
   them together (bench/, docs/architecture.md). */
#define ENG_WRITEBACK_MIN	(64 << 10)
/* Old files a batch replaced are held open across their renames and
   closed (freed) by this many release threads while the walk goes on;
   fewer than ENG_RELEASE_MIN are closed at once (docs/architecture.md). */
#define ENG_RELEASE_THREADS	8
#define ENG_RELEASE_MIN		16

#define ENG_TMP_PREFIX		".vigil-tmp-"
#define ENG_META_DIR		".vigil"

enum eng_pass {
	ENG_PASS_COUNT,		/* count what mirror would delete; no output */
	ENG_PASS_DRY,		/* print the plan, change nothing */
	ENG_PASS_RUN,
};

enum eng_stop { ENG_GO = 0, ENG_STOP_FATAL, ENG_STOP_CANCEL };

/* A destination folder held open; shared by the walk and batch items. */
struct eng_dir {
	int	 fd;
	int	 refs;
	bool	 touched;	/* entries changed: fsync before commit */
	bool	 fresh;		/* made empty by this run's walk, which alone
				   puts names in it: nothing there to look
				   up */
	bool	 gid_known;
	gid_t	 new_gid;	/* the group a file made in it gets */
	bool	 mode_as_made;	/* no default ACL: a file made in it has
				   the mode asked for, less the umask */
	/* The walk's thread only: copies of files in this folder that the
	 * copier threads have not handed back yet, and the folder's own
	 * metadata item, held back until they have (a rename after it would
	 * move the folder's mtime). */
	unsigned		 pending;
	struct eng_item		*deferred_meta;
};

enum eng_item_kind {
	ENG_ITEM_FILE,		/* rename tmp over name (version first) */
	ENG_ITEM_PUT,		/* catalogue row only */
	ENG_ITEM_DEL,		/* catalogue row (and subtree) removal */
	ENG_ITEM_DIR_META,	/* apply mode/owner/mtime to a folder */
};

struct eng_item {
	enum eng_item_kind kind;
	struct eng_dir	*dir;		/* folder holding the entry */
	struct eng_dir	*self;		/* DIR_META: the folder itself */
	char		*rel;		/* dest relpath of the entry */
	size_t		 rel_len;
	size_t		 name_off;	/* name = rel + name_off */
	char		 tmp[64];	/* FILE: temp name in dir */
	int		 fd;		/* FILE: temp file, open, or -1 */
	bool		 version;	/* FILE: keep the old file first */
	bool		 verify;	/* FILE: re-read and compare sum */
	bool		 has_cat;	/* put ce into the catalogue */
	struct catalogue_entry ce;	/* ce.name points into rel */
	struct stat	 st;		/* the source entry as copied */
	enum vg_capture	 captured;	/* FILE: how it was captured */
	bool		 sqlite_db;	/* FILE: it has the SQLite header */
};

/*
 * Hard-link table: one entry per source (dev, ino) with nlink > 1 met in
 * this walk, naming the destination file the other names of the group
 * link to.  The first name met registers it, whether this run copied it
 * (placed) or found it unchanged (catalogue or destination); a later name
 * whose destination file is not that same file is linked to it.
 */
struct eng_link {
	dev_t		 dev;
	ino_t		 ino;
	char		*rel;		/* dest relpath of the first name */
	size_t		 rel_len;
	uint64_t	 gen;		/* batch that placed it, 0 = durable */
	bool		 placed;	/* this run wrote the file at rel */
	bool		 has_dino;	/* dino/ddev known */
	dev_t		 ddev;		/* the destination file at rel */
	ino_t		 dino;
};

/* A file named in engine_opts.fallback_files, as (source, relpath). */
struct eng_fallback {
	size_t		 src;		/* index in engine_opts.sources */
	char		*rel;		/* below the source root, no '/' at
					   either end */
	size_t		 len;
};

struct eng_ctx {
	const struct engine_opts *o;
	const struct vg_job_def	*job;
	struct vg_engine_result	*res;
	struct vg_filter	*filter;
	struct vg_catalogue	*cat;
	enum eng_pass		 pass;
	enum eng_stop		 stop;
	bool			 use_cat;	/* fast path for this run */
	bool			 mirror;
	bool			 keep;		/* versions are kept */
	uid_t			 uid;		/* the process's: owns what it makes */
	mode_t			 umask;		/* the process's, read at start */

	const char		*dest;		/* as configured */
	int			 dest_fd;	/* -1 only in plan passes */
	struct stat		 dest_st;
	char			 stamp[VERSIONS_STAMP_MAX];
	uint64_t		 tmp_seq;

	unsigned		 depth;		/* folders above the walk */

	/* current source */
	const struct engine_source *src;
	size_t			 src_root_len;	/* rel length of its root */
	dev_t			 src_dev;

	/* dest relpath of the entry being handled */
	char			*rel;
	size_t			 rel_len, rel_cap;

	/* the batch */
	struct eng_item		*items;
	size_t			 nitems, items_cap;
	size_t			 batch_files;
	uint64_t		 batch_bytes;
	uint64_t		 gen;

	/* old files the last batch replaced, held open (plat_hold_file())
	   and closed on the release threads: their blocks are freed there,
	   not in the renames (engine_copy.c, eng_release_wait()) */
	int			*held;
	size_t			 nheld, held_cap;
	struct eng_release {
		pthread_t	 th;
		int		*fds;
		size_t		 n;
	}			 release[ENG_RELEASE_THREADS];
	unsigned		 nrel;		/* release threads running */

	/* hard links */
	struct eng_link		*links;
	size_t			 links_cap, links_used;

	/* versions: the folder of the last versioned entry, kept open */
	struct eng_dir		*vdir;
	char			*vdir_rel;
	size_t			 vdir_len;
	FILE			*added_fp;	/* <stamp>.added being written */
	bool			 added_failed;
	char			 added_tmp[64];
	uint64_t		 added_count;

	/* counts of the plan passes */
	uint64_t		 n_dest, n_del;

	/* capture: per source, its reflink staging folder or -1 */
	int			*stg_fds;
	/* files apps refused to close, relative to their source, sorted */
	struct eng_fallback	*fb;
	size_t			 nfb;
	bool			 walk_done;	/* sources are no longer read */
	bool			 warned_clone;
	uint64_t		 nnotes;	/* problems that are notes */

	bool			 no_clone, no_cfr;
	bool			 warned_xattr_nosup, warned_xattr_perm;
	unsigned char		*buf;		/* ENG_BUF bytes */
	struct engine_progress	 prog;
	struct timespec		 last_prog;
	uint64_t		 bytes_done;	/* atomic: copier threads add */

	/* the copier threads (engine_pool.c), or NULL: copy on the walk */
	struct eng_pool		*pool;
};
#define ENG_BUF		(1U << 20)

/* engine.c */
void	eng_problem(struct eng_ctx *c, const char *rel, size_t rel_len,
	    const char *problem, bool captured, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));
/* A file listed in the run record that is no problem (the run stays ok):
 * captured is how it was captured. */
void	eng_note(struct eng_ctx *c, const char *rel, size_t rel_len,
	    const char *what, enum vg_capture captured, const char *fmt, ...)
	    __attribute__((format(printf, 6, 7)));
void	eng_warn(struct eng_ctx *c, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	eng_fatal(struct eng_ctx *c, int e, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Record a destination-side failure: disk full and I/O errors stop the
 * run (fatal), anything else is a problem of that entry.  Returns -1 when
 * the run must stop, 0 otherwise. */
int	eng_dest_error(struct eng_ctx *c, int e, const char *rel,
	    size_t rel_len, const char *what);
void	eng_plan(struct eng_ctx *c, const char *verb, const char *rel,
	    size_t rel_len, int64_t bytes);
void	eng_progress(struct eng_ctx *c, bool force);
int64_t	eng_ts_ns(const struct timespec *ts);
void	eng_next_tmp(struct eng_ctx *c, char *buf, size_t len);

/* engine_copy.c */
struct eng_dir *eng_dir_new(int fd);
struct eng_dir *eng_dir_ref(struct eng_dir *d);
void	eng_dir_unref(struct eng_dir *d);
/*
 * One file's copy, split so that a copier thread can do the slow half:
 * eng_copy_open() (the walk's thread) opens the source file and checks it
 * is the one listed; eng_copy_body() makes the temp file, copies content
 * and metadata, and fills the item.  On a copier thread everything the
 * body reports (problems, warnings, fatal errors) is recorded and replayed
 * on the walk's thread (engine_pool.c).
 */
struct eng_copy_job {
	int		 sfd;		/* source folder */
	const char	*name;		/* the file's name in it */
	struct stat	 st;		/* as listed; then as opened */
	const struct engine_source *src;
	const char	*rel;		/* dest relpath, for problems */
	size_t		 rel_len;
	bool		 fallback;	/* an app refused to close it */
	unsigned char	*buf;		/* ENG_BUF bytes of scratch */
	/* set by eng_copy_open() */
	int		 fd;		/* the open source file */
	enum vg_capture	 method;
	bool		 is_db;		/* it has the SQLite header */
};
/* Open j's file: 0, or 1 when it had a problem (recorded, nothing open). */
int	eng_copy_open(struct eng_ctx *c, struct eng_copy_job *j);
/* Copy an opened file into the temp file it->tmp of folder it->dir (both
 * set by the caller, who holds the folder's reference).  Closes j->fd.
 * Returns as eng_copy_file(). */
int	eng_copy_body(struct eng_ctx *c, struct eng_copy_job *j,
	    struct eng_item *it);
/*
 * Copy the regular file name (under source folder sfd, last seen as *st)
 * to a new temp file in dest folder d, with metadata, capturing it as its
 * source says (scheduler/capture.h): a SQLite database through the backup
 * API (except from a btrfs snapshot), a clone in the staging folder for
 * reflink, else a copy checked with fstat before and after and repeated
 * while the file moves.  fallback: an app holding it refused to close (the
 * source's fallback method applies, and the file is noted in the record).
 * On success fills *it (kind FILE, fd, tmp, ce, captured, sqlite_db) and
 * returns 0; returns 1 when the file had a problem (recorded; nothing left
 * behind) and -1 when the run must stop.
 */
int	eng_copy_file(struct eng_ctx *c, int sfd, const char *name,
	    const struct stat *st, struct eng_dir *d, bool fallback,
	    struct eng_item *it);
/* The capture method of source s's files (fallback: one an app refused to
 * close). */
enum vg_capture eng_method(struct eng_ctx *c, const struct engine_source *s,
	    bool fallback);
/* Copy xattrs (ACLs included) from sfd to dfd; rel names the entry in
 * problems. */
void	eng_copy_xattrs(struct eng_ctx *c, const char *rel, size_t rel_len,
	    int sfd, int dfd);
/* The same for the symlink sname under sdirfd to dname under ddirfd (the
 * links themselves; only trusted.* and security.* can exist there). */
void	eng_copy_link_xattrs(struct eng_ctx *c, int sdirfd, const char *sname,
	    int ddirfd, const char *dname);
/* Add an item to the batch (takes over its memory); flushes when full.
 * Returns -1 when the run must stop. */
int	eng_batch_add(struct eng_ctx *c, struct eng_item *it);
/* Make every batched change durable, then commit its catalogue rows. */
int	eng_batch_flush(struct eng_ctx *c);
/* Drop the batch after a fatal error: temp files are removed. */
void	eng_batch_abort(struct eng_ctx *c);
/* Wait until the old files held by the last flush are closed (their
   blocks freed), closing any no thread took.  c->held stays allocated;
   the run frees it at its end.  Called before each flush's renames and
   when the run ends. */
void	eng_release_wait(struct eng_ctx *c);
void	eng_item_free(struct eng_item *it);
void	eng_fill_entry(struct catalogue_entry *ce, const struct stat *st);
/* Hard links: the first name of (dev, ino), or NULL. */
struct eng_link *eng_link_find(struct eng_ctx *c, dev_t dev, ino_t ino);
/* Register rel as the first name of (dev, ino).  The entry (owned by the
 * table, valid until the next eng_link_add) or NULL without memory. */
struct eng_link *eng_link_add(struct eng_ctx *c, dev_t dev, ino_t ino,
	    const char *rel, size_t rel_len, uint64_t gen);
void	eng_links_free(struct eng_ctx *c);

/* engine_pool.c: the copier threads.  Everything here is called on the
 * walk's thread. */
/* Start nthreads copier threads (0: none, copy on the walk).  -1 with
 * errno when they cannot start (the run then copies on the walk). */
int	eng_pool_start(struct eng_ctx *c, unsigned nthreads);
/* The number of copier threads for this machine (VIGIL_COPY_THREADS
 * overrides it; 0 turns them off). */
unsigned eng_pool_threads(void);
/* Whether file s of this folder can go to a copier thread (else
 * eng_copy_file() on the walk). */
bool	eng_pool_takes(struct eng_ctx *c, const struct stat *st, bool fallback,
	    bool sqlite_companions);
/* Hand the file to a copier thread (j->fd open, from eng_copy_open()):
 * present says the destination has the name already (a version is kept,
 * else it is added).  Takes over j->fd.  -1 when the run must stop. */
int	eng_pool_submit(struct eng_ctx *c, struct eng_copy_job *j,
	    struct eng_dir *d, bool present);
/* Take back finished copies (replay what they reported, batch them): those
 * ready now (cheap when none is: called after every entry), at least a
 * quarter of the most that may be out (the walk is ahead: one wake-up per
 * many copies, not one per copy), or all. */
enum eng_collect { ENG_COLLECT_READY, ENG_COLLECT_MANY, ENG_COLLECT_ALL };
void	eng_pool_collect(struct eng_ctx *c, enum eng_collect how);
/* Add a folder's metadata item to the batch, or hold it until the copies
 * of its files are back. */
int	eng_pool_dir_meta(struct eng_ctx *c, struct eng_item *it);
/* Stop the threads (after collecting everything) and free the pool. */
void	eng_pool_stop(struct eng_ctx *c);
/* True on a copier thread: what the engine reports is recorded for the
 * walk's thread; the eng_problem() family calls these. */
bool	eng_pool_recording(void);
void	eng_pool_record(int kind, const char *rel, size_t rel_len,
	    const char *tag, bool captured, int vcap, int e, const char *text);
#define ENG_REC_PROBLEM	1
#define ENG_REC_NOTE	2
#define ENG_REC_WARN	3
#define ENG_REC_FATAL	4
#define ENG_REC_DESTERR	5

/* engine_dest.c */
/*
 * Keep the destination entry name (under folder d, at dest relpath rel)
 * in this run's versions area: a hard link when link_only (the entry stays
 * where it is; the caller renames over it), else a rename (it leaves).
 * Falls back to a rename when links fail, so after a link_only call the
 * entry may be gone.  A path is kept at most once per run: when this run's
 * stamp holds it already (the state before the run), the entry (which the
 * run itself placed) is not kept again; link_only then does nothing, a
 * move removes it.  0 or -1 with errno.
 */
int	eng_version(struct eng_ctx *c, struct eng_dir *d, const char *name,
	    const char *rel, size_t rel_len, bool link_only);
/*
 * Remove destination entry name under d (c->rel is its relpath),
 * versioning its files when versions are kept; a folder is removed with
 * everything in it.  In plan passes it prints and counts instead.  counted:
 * a mirror deletion (counted against max-delete), not a replacement.
 * Returns -1 when the run must stop, 0 otherwise (problems are recorded).
 */
int	eng_remove(struct eng_ctx *c, struct eng_dir *d, const char *name,
	    bool counted);
/* Note an entry the run created where the destination had nothing. */
void	eng_added(struct eng_ctx *c, const char *rel, size_t rel_len);
int	eng_added_finish(struct eng_ctx *c);
void	eng_versions_close(struct eng_ctx *c);
/* Open (creating with 0700 when create) the folder path below root. */
int	eng_open_chain(int root, const char *path, size_t len, bool create);

#endif
