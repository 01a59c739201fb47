/*
 * archive_int.h: the parts of archive mode shared by archive.c,
 * archive_restore.c and the unit tests: the parallel gzip writer, the
 * manifest format and the archive naming.
 *
 * Ownership: arc_gz_new() returns a writer freed by arc_gz_free();
 * arc_manifest_read() fills a struct arc_manifest freed with
 * arc_manifest_free().  Strings from arc_path_escape()/unescape are
 * malloc'd; the caller frees them.
 */
#ifndef VIGIL_ARCHIVE_INT_H
#define VIGIL_ARCHIVE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/err.h"

#define ARC_MANIFEST_DIR	".vigil/archives"
#define ARC_MANIFEST_MAGIC	"vigil-archive 1"

/* ---- parallel gzip (pigz-style): one standard gzip stream ---- */

struct arc_gz;

/*
 * A writer that compresses what arc_gz_write() is given in blocks of
 * block_size bytes on nthreads threads (0: one per CPU) and writes one
 * gzip stream (RFC 1952) to fd in order: each block is raw deflate primed
 * with the previous block's last 32 KiB, ended with a sync flush, the last
 * one with Z_FINISH; the trailer carries the crc32 (combined per block) and
 * the length.  fd stays the caller's (not closed).
 */
struct arc_gz *arc_gz_new(int fd, int level, size_t block_size,
	    unsigned nthreads, struct vg_err *err);
int	arc_gz_write(struct arc_gz *gz, const void *buf, size_t len,
	    struct vg_err *err);
/* Compress what is left, write the trailer.  0 or -1. */
int	arc_gz_finish(struct arc_gz *gz, struct vg_err *err);
void	arc_gz_free(struct arc_gz *gz);
/* Bytes written to fd so far. */
uint64_t arc_gz_out_bytes(const struct arc_gz *gz);

/* ---- manifests ---- */

/*
 * One manifest per archive, <dest>/.vigil/archives/<stamp>.manifest, a line
 * format (every path percent-escaped: bytes <= 0x20, >= 0x7f and '%' as
 * %XX):
 *
 *   vigil-archive 1
 *   run <run id>
 *   time <unix ms>
 *   kind full|incremental
 *   format zip|tar.gz|tar.zst
 *   archive <archive file name, in the destination folder>
 *   parent <stamp of the previous manifest>|-
 *   E <f|d|l|h> <ok|bad> <size> <mtime ns> <xxh3-128 hex>|- <path>
 *   D <path>
 *   end <entries> <deleted>
 *
 * E lines are in archive order; "bad" marks an entry whose content could
 * not be read whole (restore keeps the earlier state of that path).  D
 * lines name every path (folder contents included) that existed in the
 * previous state and no longer does.  A manifest without its end line, or
 * with counts that disagree, is refused.
 */
enum arc_etype { ARC_E_FILE = 'f', ARC_E_DIR = 'd', ARC_E_LINK = 'l',
	ARC_E_HARD = 'h' };

struct arc_mentry {
	char		*path;		/* raw bytes, NUL-terminated */
	size_t		 len;
	char		 type;		/* enum arc_etype, or 'D' deleted */
	bool		 ok;
	uint64_t	 size;
	int64_t		 mtime_ns;
	bool		 has_sum;
	uint8_t		 sum[16];
};

struct arc_manifest {
	char			*stamp;		/* file name without .manifest */
	int64_t			 run;
	int64_t			 time_ms;
	bool			 full;
	enum vg_format		 format;
	char			*archive;	/* file name */
	char			*parent;	/* stamp, NULL for none */
	struct arc_mentry	*v;		/* E and D lines, in order */
	size_t			 n;
	size_t			 nentries, ndeleted;
};

/* Read and check one manifest (fd of the .vigil/archives folder).  With
 * header_only the E/D lines are checked for count only, not kept.  name is
 * used in messages. */
int	arc_manifest_read(int dirfd, const char *name, bool header_only,
	    struct arc_manifest *m, struct vg_err *err);
void	arc_manifest_free(struct arc_manifest *m);

/* Escape raw bytes for a manifest line; NULL when memory runs out. */
char	*arc_path_escape(const char *p, size_t len);
/* Undo it; -1 on a bad escape, an empty result or an embedded NUL. */
int	arc_path_unescape(const char *s, char **out, size_t *len);

const char *arc_format_ext(enum vg_format f);	/* "tar.zst", ... */
/* zstd level for the job's compression 0..9 (6, the default, is zstd's own
 * default 3). */
int	arc_zstd_level(int compression);

/* Valid relative entry path: not empty, not absolute, no "." or ".."
 * component, no empty component, no NUL.  */
bool	arc_path_safe(const char *p, size_t len);

#endif
