/*
 * catalogue.h: the per-job state database (catalogue/<uid>/<job id>.db).
 *
 * It records, for every entry the last run put at the destination, what the
 * source looked like then: type, size, mtime (ns), ctime (ns), inode, mode and
 * a checksum.  A no-change run compares fstatat() of the source against it and
 * touches nothing else.  The file is safe to throw away: catalogue_open()
 * on a missing, corrupt or foreign (other destination) file starts empty and
 * says so through *fresh, and the engine then does a full rescan.
 *
 * Entries are keyed by (directory path, name), both raw bytes relative to the
 * destination root ("" is the root).  catalogue_dir_load() returns one
 * directory's entries sorted by name (memcmp order), so the engine merges it
 * with a sorted readdir without holding the whole tree in memory.
 *
 * Writes are batched: catalogue_begin() / catalogue_commit() bracket up to a
 * few thousand puts; the engine commits only after the matching destination
 * files are durable.
 *
 * Ownership: arrays returned by catalogue_dir_load() are freed with
 * catalogue_entries_free().
 */
#ifndef VIGIL_CATALOGUE_H
#define VIGIL_CATALOGUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct vg_catalogue;

enum catalogue_type {
	CAT_FILE = 1,
	CAT_DIR = 2,
	CAT_SYMLINK = 3,
};

struct catalogue_entry {
	char		*name;		/* raw bytes, NUL-terminated */
	size_t		 name_len;
	int		 type;		/* enum catalogue_type */
	uint64_t	 size;
	int64_t		 mtime_ns;
	int64_t		 ctime_ns;
	uint64_t	 ino;
	uint64_t	 dev;
	uint32_t	 mode;
	uint32_t	 uid, gid;
	bool		 has_sum;
	uint8_t		 sum[16];	/* XXH3-128 of the content */
};

/*
 * Open or create.  dest_key identifies the destination (e.g. its path plus
 * device); a catalogue written for another key is discarded.  *fresh is set
 * true when the catalogue started empty (new, corrupt, foreign, of an
 * older format).  A corrupt file (not SQLite, quick_check fails, an unknown
 * format) is moved aside to "<path>.corrupt" with a warning in the log; one
 * of the previous format is emptied in place with a note.  One held by
 * another process (a second run of the job) is an error and is left alone.
 */
int	catalogue_open(const char *path, const char *dest_key,
	    struct vg_catalogue **out, bool *fresh, struct vg_err *err);
void	catalogue_close(struct vg_catalogue *cat);

/* Dirty flag: set at run start, cleared after a complete run.  A catalogue
 * found dirty means the last run did not finish (temp files may remain).
 * catalogue_was_dirty() is the flag as found at open; it is also true when a
 * corrupt file was discarded (its state is unknown).  Setting it outside a
 * batch is flushed to disk before catalogue_set_dirty() returns. */
int	catalogue_set_dirty(struct vg_catalogue *cat, bool dirty,
	    struct vg_err *err);
bool	catalogue_was_dirty(struct vg_catalogue *cat);

int	catalogue_begin(struct vg_catalogue *cat, struct vg_err *err);
int	catalogue_commit(struct vg_catalogue *cat, struct vg_err *err);

/* *out is one allocation holding the entries and their names: free it only
 * with catalogue_entries_free(), never a name alone.  *out NULL when n is 0. */
int	catalogue_dir_load(struct vg_catalogue *cat, const char *dir,
	    size_t dir_len, struct catalogue_entry **out, size_t *n,
	    struct vg_err *err);
void	catalogue_entries_free(struct catalogue_entry *v, size_t n);

int	catalogue_put(struct vg_catalogue *cat, const char *dir, size_t dir_len,
	    const struct catalogue_entry *e, struct vg_err *err);
int	catalogue_del(struct vg_catalogue *cat, const char *dir, size_t dir_len,
	    const char *name, size_t name_len, struct vg_err *err);
/* Remove the directory dir/name's own entry and everything below it. */
int	catalogue_del_tree(struct vg_catalogue *cat, const char *dir,
	    size_t dir_len, const char *name, size_t name_len,
	    struct vg_err *err);
/* Remove everything (used before a full rescan). */
int	catalogue_clear(struct vg_catalogue *cat, struct vg_err *err);

#endif
