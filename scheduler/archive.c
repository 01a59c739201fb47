/*
 * archive.c: archive mode, the writing side (archive.h; the layout is in
 * docs/architecture.md, "Archive mode").
 *
 * One run writes one archive of the job's sources into the destination
 * folder, <dest>/<job>-<stamp>-full.<ext> or -incr.<ext>, and its manifest
 * <dest>/.vigil/archives/<stamp>.manifest (archive_int.h has the format).
 *
 * The walk is the engine's: directory fds, openat/fstatat with O_NOFOLLOW,
 * each folder's entries sorted by name (memcmp) and merged with the
 * catalogue's rows for that folder.  A full run takes every entry and
 * rebuilds the catalogue; an incremental run takes only entries whose type,
 * size, mtime, ctime, inode or mode differ from their row, and lists as
 * deleted every row (folder contents included) the source no longer has.
 * An entry that could not be read keeps its row (it is neither changed nor
 * deleted), so the next run tries again.
 *
 * Durability: the archive is written to <dest>/.vigil-tmp-<run>-archive
 * and the manifest to .vigil/archives/.vigil-tmp-<run>-manifest; both are
 * fsync'd, the archive is renamed to its final name, the manifest after it
 * (each folder fsync'd), and only then is the catalogue's one transaction
 * committed.  A run killed before the manifest's rename leaves only temp
 * names (removed by the next run); restore reads only manifests, so an
 * archive never counts before its manifest is complete.  A catalogue found
 * dirty (a run killed before its commit) makes the next run a full one.
 *
 * tar.gz is compressed by arc_gz (archive_gz.c) on every CPU: libarchive
 * writes the plain tar stream into a callback that feeds it.  tar.zst uses
 * libarchive's zstd filter with threads = CPUs.  zip is libarchive's
 * deflate, one thread.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <xxhash.h>

#include "common/filter.h"
#include "common/log.h"
#include "common/platform.h"
#include "db/catalogue.h"
#include "scheduler/archive.h"
#include "scheduler/archive_int.h"

#define ARC_BUF		(1024 * 1024)
#define ARC_GZ_BLOCK	(1024 * 1024)
#define ARC_META	".vigil"

/* One name in a folder listing. */
struct arc_ent {
	char		*name;
	size_t		 len;
	struct stat	 st;
	int		 serr;		/* fstatat errno, 0 ok */
	int		 fd;		/* pre-opened (a source root), or -1 */
	const struct engine_source *src; /* a source root, else NULL */
};

/* What became of a catalogue row's path this run. */
enum arc_fate { ARC_TAKEN, ARC_UNCHANGED, ARC_ABSENT, ARC_KEEP };

struct arc_ctx {
	unsigned		 depth;		/* folders above the walk */
	const struct engine_opts *o;
	const struct vg_job_def	*job;
	struct vg_engine_result	*res;
	struct vg_filter	*filter;
	struct vg_catalogue	*cat;
	bool			 incr;		/* compare with the catalogue */
	bool			 write_cat;	/* update it */
	bool			 dry;
	struct archive		*a;
	struct archive_entry_linkresolver *lr;
	struct arc_gz		*gz;
	int			 afd;
	FILE			*mf;		/* manifest temp */
	int			 dest_fd;
	struct stat		 dest_st;
	uid_t			 uid;
	char			*rel;
	size_t			 rel_len, rel_cap;
	size_t			 src_root_len;	/* rel length at the source
						   root */
	bool			 multi;		/* several sources */
	const struct engine_source *src;
	dev_t			 src_dev;
	unsigned char		*buf;
	bool			 fatal;		/* stop: archive or catalogue
						   failed */
	bool			 cancelled;
	struct vg_err		 ferr;
	uint64_t		 nent, ndel, since_progress;
};

static const unsigned char arc_zeros[65536];

/* ---- results ---- */

static void __attribute__((format(printf, 3, 4)))
arc_problem(struct arc_ctx *c, const char *problem, const char *fmt, ...)
{
	struct engine_problem *np, *p;
	va_list ap;

	np = realloc(c->res->problems, (c->res->nproblems + 1) * sizeof *np);
	if (np == NULL)
		return;
	c->res->problems = np;
	p = &np[c->res->nproblems];
	memset(p, 0, sizeof *p);
	p->path = malloc(c->rel_len + 1);
	p->problem = strdup(problem);
	va_start(ap, fmt);
	if (vasprintf(&p->detail, fmt, ap) == -1)
		p->detail = NULL;
	va_end(ap);
	if (p->path == NULL || p->problem == NULL) {
		free(p->path);
		free(p->problem);
		free(p->detail);
		return;
	}
	memcpy(p->path, c->rel, c->rel_len);
	p->path[c->rel_len] = '\0';
	p->path_len = c->rel_len;
	p->capture = c->src != NULL ? c->src->capture : VG_CAP_LIVE;
	p->has_capture = c->src != NULL;
	c->res->nproblems++;
	c->res->files_failed++;
}

static void __attribute__((format(printf, 2, 3)))
arc_warn(struct arc_ctx *c, const char *fmt, ...)
{
	char **nw, *s;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	if (s == NULL)
		return;
	log_warnx("%s", s);
	if ((nw = realloc(c->res->warnings, (c->res->nwarnings + 1) *
	    sizeof *nw)) == NULL) {
		free(s);
		return;
	}
	c->res->warnings = nw;
	nw[c->res->nwarnings++] = s;
}

static void
arc_fail_archive(struct arc_ctx *c, const char *what)
{
	char *esc;

	if (c->fatal)
		return;
	c->fatal = true;
	esc = log_escape_len(c->rel, c->rel_len);
	vg_err_set(&c->ferr, VG_ERR_ARCHIVE, "writing the archive (%s %s): "
	    "%s", what, esc ? esc : "?", archive_error_string(c->a) ?
	    archive_error_string(c->a) : "unknown libarchive error");
	free(esc);
}

static void
arc_progress(struct arc_ctx *c, bool force)
{
	struct engine_progress p;
	char *cur;

	if (c->o->progress == NULL || (!force && ++c->since_progress < 256))
		return;
	c->since_progress = 0;
	memset(&p, 0, sizeof p);
	p.phase = ENGINE_PHASE_COPY;
	p.files_done = c->res->files + c->res->dirs;
	p.files_copied = c->res->files_copied;
	p.bytes_done = c->res->bytes_copied;
	cur = strndup(c->rel, c->rel_len);
	p.current = cur;
	c->o->progress(&p, c->o->progress_arg);
	free(cur);
}

/* ---- the relative path ---- */

static int
arc_push(struct arc_ctx *c, const char *name, size_t len)
{
	size_t need = c->rel_len + len + 2;
	char *n;

	if (need > c->rel_cap) {
		if ((n = realloc(c->rel, need * 2)) == NULL)
			return -1;
		c->rel = n;
		c->rel_cap = need * 2;
	}
	if (c->rel_len > 0)
		c->rel[c->rel_len++] = '/';
	memcpy(c->rel + c->rel_len, name, len);
	c->rel_len += len;
	c->rel[c->rel_len] = '\0';
	return 0;
}

static void
arc_pop(struct arc_ctx *c, size_t old)
{
	c->rel_len = old;
	c->rel[old] = '\0';
}

/* ---- manifest lines ---- */

static void
arc_mline(struct arc_ctx *c, char type, bool ok, uint64_t size,
    int64_t mtime_ns, const uint8_t *sum)
{
	char hex[33], *esc;
	int i;

	if (c->mf == NULL)
		return;
	if ((esc = arc_path_escape(c->rel, c->rel_len)) == NULL) {
		c->fatal = true;
		vg_err_sys(&c->ferr, "out of memory");
		return;
	}
	if (type == 'D')
		fprintf(c->mf, "D %s\n", esc);
	else {
		if (sum != NULL)
			for (i = 0; i < 16; i++)
				snprintf(hex + 2 * i, 3, "%02x", sum[i]);
		else
			strcpy(hex, "-");
		fprintf(c->mf, "E %c %s %" PRIu64 " %" PRId64 " %s %s\n",
		    type, ok ? "ok" : "bad", size, mtime_ns, hex, esc);
	}
	free(esc);
	if (type == 'D')
		c->ndel++;
	else
		c->nent++;
}

/* ---- catalogue ---- */

static void
arc_cat_fill(struct catalogue_entry *e, const char *name, size_t len,
    const struct stat *st, const uint8_t *sum)
{
	memset(e, 0, sizeof *e);
	e->name = (char *)name;
	e->name_len = len;
	e->type = S_ISDIR(st->st_mode) ? CAT_DIR : S_ISLNK(st->st_mode) ?
	    CAT_SYMLINK : CAT_FILE;
	e->size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
	e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 +
	    st->st_mtim.tv_nsec;
	e->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 +
	    st->st_ctim.tv_nsec;
	e->ino = st->st_ino;
	e->dev = st->st_dev;
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	if (sum != NULL) {
		e->has_sum = true;
		memcpy(e->sum, sum, 16);
	}
}

/* Record entry name (in the folder c->rel minus its last component). */
static void
arc_cat_put(struct arc_ctx *c, size_t dir_len, const char *name, size_t len,
    const struct stat *st, const uint8_t *sum)
{
	struct catalogue_entry e;

	if (!c->write_cat || c->fatal)
		return;
	arc_cat_fill(&e, name, len, st, sum);
	if (catalogue_put(c->cat, c->rel, dir_len, &e, &c->ferr) == -1)
		c->fatal = true;
}

static bool
arc_unchanged(const struct catalogue_entry *cn, const struct stat *st)
{
	struct catalogue_entry e;

	if (cn == NULL)
		return false;
	arc_cat_fill(&e, NULL, 0, st, NULL);
	return cn->type == e.type && cn->size == e.size &&
	    cn->mtime_ns == e.mtime_ns && cn->ctime_ns == e.ctime_ns &&
	    cn->ino == e.ino && cn->mode == e.mode;
}

/* List every catalogue row under the folder c->rel as deleted. */
static void
arc_deleted_below(struct arc_ctx *c)
{
	struct catalogue_entry *v = NULL;
	size_t n = 0, i, old = c->rel_len;

	if (catalogue_dir_load(c->cat, c->rel, c->rel_len, &v, &n,
	    &c->ferr) == -1) {
		c->fatal = true;
		return;
	}
	for (i = 0; i < n && !c->fatal; i++) {
		if (arc_push(c, v[i].name, v[i].name_len) == -1)
			break;
		if (v[i].type == CAT_DIR)
			arc_deleted_below(c);
		arc_mline(c, 'D', true, 0, 0, NULL);
		c->res->files_deleted++;
		arc_pop(c, old);
	}
	catalogue_entries_free(v, n);
}

/* The catalogue row cn (in folder c->rel) is gone from the source. */
static void
arc_deleted(struct arc_ctx *c, const struct catalogue_entry *cn,
    bool keep_self)
{
	size_t old = c->rel_len;

	if (arc_push(c, cn->name, cn->name_len) == -1)
		return;
	if (cn->type == CAT_DIR)
		arc_deleted_below(c);
	if (!keep_self) {
		arc_mline(c, 'D', true, 0, 0, NULL);
		c->res->files_deleted++;
	}
	if (c->dry && c->o->plan_out != NULL) {
		char *esc = log_escape_len(c->rel, c->rel_len);

		fprintf(c->o->plan_out, "delete %s\n", esc ? esc : "?");
		free(esc);
	}
	arc_pop(c, old);
	if (!c->write_cat || c->fatal)
		return;
	if (cn->type == CAT_DIR) {
		if (catalogue_del_tree(c->cat, c->rel, c->rel_len, cn->name,
		    cn->name_len, &c->ferr) == -1)
			c->fatal = true;
	} else if (!keep_self && catalogue_del(c->cat, c->rel, c->rel_len,
	    cn->name, cn->name_len, &c->ferr) == -1)
		c->fatal = true;
}

/* ---- entries ---- */

static void
arc_entry_common(struct arc_ctx *c, struct archive_entry *e,
    const struct stat *st)
{
	char *p = strndup(c->rel, c->rel_len);

	archive_entry_copy_pathname(e, p != NULL ? p : "");
	free(p);
	archive_entry_set_perm(e, st->st_mode & 07777);
	archive_entry_set_uid(e, st->st_uid);
	archive_entry_set_gid(e, st->st_gid);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

static void
arc_add_xattrs(struct archive_entry *e, int fd)
{
	char *names = NULL, *n;
	void *val;
	size_t len, vlen;

	if (plat_xattr_list(fd, &names, &len) == -1 || names == NULL)
		return;
	for (n = names; n < names + len; n += strlen(n) + 1) {
		if (strncmp(n, "user.", 5) != 0 &&
		    strncmp(n, "system.posix_acl_", 17) != 0 &&
		    strncmp(n, "security.", 9) != 0 &&
		    strncmp(n, "trusted.", 8) != 0)
			continue;
		if (plat_xattr_get(fd, n, &val, &vlen) == 0) {
			archive_entry_xattr_add_entry(e, n, val, vlen);
			free(val);
		}
	}
	free(names);
}

static int
arc_write_header(struct arc_ctx *c, struct archive_entry *e)
{
	int r = archive_write_header(c->a, e);

	if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
		return 0;
	if (r == ARCHIVE_FAILED) {
		arc_problem(c, "archive-entry", "%s",
		    archive_error_string(c->a));
		return 1;
	}
	arc_fail_archive(c, "header of");
	return -1;
}

static int
arc_data(struct arc_ctx *c, const void *p, size_t n, XXH3_state_t *h)
{
	la_ssize_t w;

	XXH3_128bits_update(h, p, n);
	if (c->dry)
		return 0;
	while (n > 0) {
		w = archive_write_data(c->a, p, n);
		if (w <= 0) {
			arc_fail_archive(c, "content of");
			return -1;
		}
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int
arc_zero(struct arc_ctx *c, uint64_t n, XXH3_state_t *h)
{
	size_t k;

	while (n > 0) {
		k = n > sizeof arc_zeros ? sizeof arc_zeros : (size_t)n;
		if (arc_data(c, arc_zeros, k, h) == -1)
			return -1;
		n -= k;
	}
	return 0;
}

/* A regular file: header, content (holes as zeros, which pax skips),
 * manifest line, catalogue row. */
static enum arc_fate
arc_file(struct arc_ctx *c, int dfd, struct arc_ent *s, size_t dir_len)
{
	struct archive_entry *e = NULL, *spare = NULL;
	XXH3_state_t *h = NULL;
	XXH128_canonical_t canon;
	struct stat st, st2;
	off_t off, data, hole, size;
	bool ok = true, sparse, is_link = false;
	ssize_t r;
	size_t want;
	int fd = -1, rc;
	enum arc_fate fate = ARC_KEEP;

	if (c->dry) {
		c->res->files_copied++;
		c->res->bytes_copied += (uint64_t)s->st.st_size;
		c->res->plan_copies++;
		c->res->plan_bytes += (uint64_t)s->st.st_size;
		if (c->o->plan_out != NULL) {
			char *esc = log_escape_len(c->rel, c->rel_len);

			fprintf(c->o->plan_out, "archive %s\n", esc ? esc :
			    "?");
			free(esc);
		}
		return ARC_TAKEN;
	}
	if ((fd = plat_open_read(dfd, s->name)) == -1) {
		arc_problem(c, errno == ENOENT ? "vanished" : "unreadable",
		    "cannot open: %s", strerror(errno));
		return ARC_KEEP;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_ino != s->st.st_ino || st.st_dev != s->st.st_dev) {
		arc_problem(c, "vanished", "the file was replaced while it "
		    "was read");
		goto out;
	}
	size = st.st_size;
	if ((e = archive_entry_new()) == NULL || (h = XXH3_createState()) ==
	    NULL) {
		c->fatal = true;
		vg_err_sys(&c->ferr, "out of memory");
		goto out;
	}
	XXH3_128bits_reset(h);
	arc_entry_common(c, e, &st);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_size(e, size);
	archive_entry_set_nlink(e, st.st_nlink);
	archive_entry_set_ino64(e, (la_int64_t)st.st_ino);
	archive_entry_set_dev(e, st.st_dev);
	arc_add_xattrs(e, fd);
	sparse = c->job->format != VG_FMT_ZIP && size > 0 &&
	    (off_t)st.st_blocks * 512 < size;
	if (sparse) {
		for (off = 0; off < size; off = hole) {
			rc = plat_next_data(fd, off, size, &data, &hole);
			if (rc <= 0)
				break;
			archive_entry_sparse_add_entry(e, data, hole - data);
		}
	}
	if (c->lr != NULL && st.st_nlink > 1) {
		archive_entry_linkify(c->lr, &e, &spare);
		if (e == NULL) {	/* deferred: cannot happen for tar */
			c->fatal = true;
			vg_err_set(&c->ferr, VG_ERR_INTERNAL, "hard link "
			    "resolver deferred an entry");
			goto out;
		}
		is_link = archive_entry_hardlink(e) != NULL;
	}
	if (arc_write_header(c, e) != 0) {
		fate = ARC_KEEP;
		goto out;
	}
	if (is_link) {
		arc_mline(c, 'h', true, (uint64_t)size,
		    (int64_t)st.st_mtim.tv_sec * 1000000000 +
		    st.st_mtim.tv_nsec, NULL);
		goto done;
	}
	/* the content, data runs by data runs */
	for (off = 0; off < size && ok && !c->fatal; ) {
		if (sparse) {
			rc = plat_next_data(fd, off, size, &data, &hole);
			if (rc == -1)
				data = off, hole = size;
			else if (rc == 0)
				data = hole = size;
		} else
			data = off, hole = size;
		if (data > off && arc_zero(c, (uint64_t)(data - off), h) == -1)
			goto out;
		off = data;
		while (off < hole) {
			want = (size_t)(hole - off) < ARC_BUF ?
			    (size_t)(hole - off) : ARC_BUF;
			r = pread(fd, c->buf, want, off);
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0) {
				if (r == 0)
					arc_problem(c, "inconsistent", "the "
					    "file shrank while it was read; "
					    "the archive holds it padded "
					    "with zeros");
				else
					arc_problem(c, "unreadable", "read "
					    "error: %s", strerror(errno));
				ok = false;
				break;
			}
			if (arc_data(c, c->buf, (size_t)r, h) == -1)
				goto out;
			off += r;
			c->res->bytes_copied += (uint64_t)r;
		}
	}
	if (c->fatal)
		goto out;
	if (off < size && arc_zero(c, (uint64_t)(size - off), h) == -1)
		goto out;
	if (ok && (fstat(fd, &st2) == -1 || st2.st_size != st.st_size ||
	    st2.st_mtim.tv_sec != st.st_mtim.tv_sec ||
	    st2.st_mtim.tv_nsec != st.st_mtim.tv_nsec ||
	    st2.st_ctim.tv_sec != st.st_ctim.tv_sec ||
	    st2.st_ctim.tv_nsec != st.st_ctim.tv_nsec)) {
		arc_problem(c, "inconsistent", "the file changed while it was "
		    "read; the archive holds what was read");
		/* the row keeps the state before the read: the next run
		 * sees the change and takes the file again */
	}
	XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(h));
	arc_mline(c, 'f', ok, (uint64_t)size,
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
	    canon.digest);
	if (!ok)
		goto out;
done:
	fate = ARC_TAKEN;
	c->res->files_copied++;
	c->res->capture[c->src != NULL ? c->src->capture : VG_CAP_LIVE]++;
	arc_cat_put(c, dir_len, s->name, s->len, &st, is_link ? NULL :
	    canon.digest);
out:
	archive_entry_free(e);
	archive_entry_free(spare);
	XXH3_freeState(h);
	if (fd != -1)
		close(fd);
	return fate;
}

static enum arc_fate
arc_symlink(struct arc_ctx *c, int dfd, struct arc_ent *s, size_t dir_len)
{
	struct archive_entry *e = NULL;
	XXH128_canonical_t canon;
	size_t cap = (size_t)s->st.st_size + 2;
	char *t = NULL;
	ssize_t n;
	enum arc_fate fate = ARC_KEEP;

	if (c->dry) {
		c->res->plan_copies++;
		c->res->files_copied++;
		return ARC_TAKEN;
	}
	if (cap < 64)
		cap = 64;
	if ((t = malloc(cap)) == NULL)
		return ARC_KEEP;
	n = readlinkat(dfd, s->name, t, cap);
	if (n == -1 || (size_t)n >= cap) {
		arc_problem(c, n == -1 && errno == ENOENT ? "vanished" :
		    "unreadable", "cannot read the link: %s", n == -1 ?
		    strerror(errno) : "it changed while it was read");
		goto out;
	}
	t[n] = '\0';
	if ((e = archive_entry_new()) == NULL)
		goto out;
	arc_entry_common(c, e, &s->st);
	archive_entry_set_filetype(e, AE_IFLNK);
	archive_entry_set_perm(e, 0777);
	archive_entry_copy_symlink(e, t);
	if (arc_write_header(c, e) != 0)
		goto out;
	XXH128_canonicalFromHash(&canon, XXH3_128bits(t, (size_t)n));
	arc_mline(c, 'l', true, (uint64_t)n,
	    (int64_t)s->st.st_mtim.tv_sec * 1000000000 + s->st.st_mtim.tv_nsec,
	    canon.digest);
	c->res->files_copied++;
	c->res->capture[c->src != NULL ? c->src->capture : VG_CAP_LIVE]++;
	arc_cat_put(c, dir_len, s->name, s->len, &s->st, canon.digest);
	fate = ARC_TAKEN;
out:
	archive_entry_free(e);
	free(t);
	return fate;
}

static int
arc_cmp_ent(const void *a, const void *b)
{
	const struct arc_ent *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->name, y->name, n);

	return r != 0 ? r : (x->len > y->len) - (x->len < y->len);
}

static void
arc_ents_free(struct arc_ent *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		if (v[i].fd != -1)
			close(v[i].fd);
	}
	free(v);
}

/* The sorted listing of folder fd, each entry fstatat'd. */
static int
arc_list(struct arc_ctx *c, int fd, struct arc_ent **out, size_t *nout)
{
	struct arc_ent *v = NULL, *nv;
	struct dirent *de;
	size_t n = 0, cap = 0, len;
	DIR *d;
	int dfd;

	*out = NULL;
	*nout = 0;
	if ((dfd = dup(fd)) == -1 || (d = fdopendir(dfd)) == NULL) {
		if (dfd != -1)
			close(dfd);
		arc_problem(c, "unreadable", "cannot list the folder: %s",
		    strerror(errno));
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(v, cap * sizeof *v)) == NULL)
				goto nomem;
			v = nv;
		}
		len = strlen(de->d_name);
		memset(&v[n], 0, sizeof v[n]);
		v[n].fd = -1;
		if ((v[n].name = malloc(len + 1)) == NULL)
			goto nomem;
		memcpy(v[n].name, de->d_name, len + 1);
		v[n].len = len;
		if (fstatat(fd, v[n].name, &v[n].st, AT_SYMLINK_NOFOLLOW) == -1)
			v[n].serr = errno;
		n++;
	}
	if (errno != 0) {
		arc_problem(c, "unreadable", "cannot list the folder: %s",
		    strerror(errno));
		closedir(d);
		arc_ents_free(v, n);
		return -1;
	}
	closedir(d);
	if (n > 1)
		qsort(v, n, sizeof *v, arc_cmp_ent);
	*out = v;
	*nout = n;
	return 0;
nomem:
	closedir(d);
	arc_ents_free(v, n);
	c->fatal = true;
	vg_err_sys(&c->ferr, "out of memory listing a folder");
	return -1;
}

static void arc_merge(struct arc_ctx *c, int fd, struct arc_ent *S,
	    size_t ns, bool load_cat, dev_t pdev);

static bool
arc_excluded(struct arc_ctx *c, bool is_dir)
{
	size_t skip;

	if (c->filter == NULL)
		return false;
	skip = c->src_root_len == 0 ? 0 : c->src_root_len + 1;
	if (skip >= c->rel_len)
		return false;
	return filter_match(c->filter, c->rel + skip, c->rel_len - skip,
	    is_dir) == FILTER_SKIP;
}

static enum arc_fate
arc_dir(struct arc_ctx *c, int pfd, struct arc_ent *s,
    const struct catalogue_entry *cn, size_t dir_len, dev_t pdev)
{
	struct archive_entry *e = NULL;
	const struct engine_source *saved_src = c->src;
	size_t saved_root = c->src_root_len;
	dev_t saved_dev = c->src_dev;
	struct plat_fsinfo fi;
	struct stat cst;
	struct arc_ent *S = NULL;
	size_t ns = 0;
	bool descend = true, take;
	int cfd;
	char *esc;

	if (c->dest_fd != -1 && s->st.st_dev == c->dest_st.st_dev &&
	    s->st.st_ino == c->dest_st.st_ino)
		return ARC_ABSENT;	/* the destination, inside a source */
	if (s->fd != -1) {
		cfd = s->fd;
		s->fd = -1;
	} else if ((cfd = openat(pfd, s->name, O_RDONLY | O_DIRECTORY | // NOLINT(clang-analyzer-core.NonNullParamChecker): every entry has a name (arc_list, arc_open_sources)
	    O_NOFOLLOW | O_CLOEXEC)) == -1) {
		arc_problem(c, errno == ENOENT ? "vanished" : "unreadable",
		    "cannot open the folder: %s", strerror(errno));
		return ARC_KEEP;
	}
	if (fstat(cfd, &cst) == -1 || cst.st_dev != s->st.st_dev ||
	    cst.st_ino != s->st.st_ino) {
		arc_problem(c, "vanished", "the folder was replaced while it "
		    "was read");
		close(cfd);
		return ARC_KEEP;
	}
	c->res->dirs++;
	if (s->src != NULL) {
		c->src = s->src;
		c->src_root_len = c->rel_len;
		c->src_dev = s->st.st_dev;
	} else if (s->st.st_dev != pdev) {
		esc = log_escape_len(c->rel, c->rel_len);
		if (c->job->one_file_system && s->st.st_dev != c->src_dev)
			descend = false;
		else if (plat_fs_info(cfd, c->uid, &fi) == 0 && fi.pseudo) {
			descend = false;
			arc_warn(c, "%s: %s is a pseudo filesystem or a fuse "
			    "mount of another user; not walked",
			    esc ? esc : "?", fi.type);
		}
		free(esc);
	}
	take = !(c->incr && arc_unchanged(cn, &s->st));
	if (take && c->rel_len > 0 && !c->dry) {
		if ((e = archive_entry_new()) == NULL)
			goto out;
		arc_entry_common(c, e, &s->st);
		archive_entry_set_filetype(e, AE_IFDIR);
		arc_add_xattrs(e, cfd);
		if (arc_write_header(c, e) != 0)
			take = false;
		else
			arc_mline(c, 'd', true, 0,
			    (int64_t)s->st.st_mtim.tv_sec * 1000000000 +
			    s->st.st_mtim.tv_nsec, NULL);
	}
	if (take && c->rel_len > 0)
		arc_cat_put(c, dir_len, s->name, s->len, &s->st, NULL);
	if (descend && c->depth >= ENGINE_MAX_DEPTH) {
		arc_problem(c, "too-deep", "folders nest more than %d levels "
		    "deep here; nothing below this folder is archived",
		    ENGINE_MAX_DEPTH);
		descend = false;
	}
	if (descend && arc_list(c, cfd, &S, &ns) == 0) {
		c->depth++;
		arc_merge(c, cfd, S, ns, c->incr && (c->rel_len == 0 ||
		    (cn != NULL && cn->type == CAT_DIR)), s->st.st_dev);
		c->depth--;
	}
out:
	arc_ents_free(S, ns);
	archive_entry_free(e);
	close(cfd);
	c->src = saved_src;
	c->src_root_len = saved_root;
	c->src_dev = saved_dev;
	return take ? ARC_TAKEN : ARC_UNCHANGED;
}

static enum arc_fate
arc_entry(struct arc_ctx *c, int fd, struct arc_ent *s,
    const struct catalogue_entry *cn, size_t dir_len, dev_t pdev)
{
	const char *kind;
	bool is_dir;

	if (s->src == NULL && c->rel_len == c->src_root_len + s->len +
	    (c->src_root_len > 0 ? 1 : 0) && s->len == 6 &&
	    memcmp(s->name, ARC_META, 6) == 0) {
		arc_warn(c, "source %s: its .vigil folder is vigil's own and "
		    "is not archived", c->src != NULL ? c->src->path : "?");
		return ARC_ABSENT;
	}
	if (s->serr != 0) {
		arc_problem(c, s->serr == ENOENT ? "vanished" : "unreadable",
		    "%s", strerror(s->serr));
		return s->serr == ENOENT ? ARC_ABSENT : ARC_KEEP;
	}
	is_dir = S_ISDIR(s->st.st_mode);
	if (s->src == NULL && arc_excluded(c, is_dir))
		return ARC_ABSENT;
	if (is_dir)
		return arc_dir(c, fd, s, cn, dir_len, pdev);
	if (S_ISREG(s->st.st_mode) || S_ISLNK(s->st.st_mode)) {
		c->res->files++;
		c->res->bytes_total += S_ISREG(s->st.st_mode) ?
		    (uint64_t)s->st.st_size : 0;
		if (c->incr && arc_unchanged(cn, &s->st)) {
			c->res->files_unchanged++;
			return ARC_UNCHANGED;
		}
		return S_ISREG(s->st.st_mode) ? arc_file(c, fd, s, dir_len) :
		    arc_symlink(c, fd, s, dir_len);
	}
	if (S_ISFIFO(s->st.st_mode))
		kind = "a FIFO";
	else if (S_ISSOCK(s->st.st_mode))
		kind = "a socket";
	else
		kind = "a device";
	arc_problem(c, "special-file", "%s is not archived", kind);
	return ARC_ABSENT;
}

/*
 * Merge the sorted entries S of the folder c->rel (fd) with the catalogue's
 * rows for it (load_cat).
 */
static void
arc_merge(struct arc_ctx *c, int fd, struct arc_ent *S, size_t ns,
    bool load_cat, dev_t pdev)
{
	struct catalogue_entry *C = NULL, *cn;
	size_t nc = 0, i = 0, j = 0, old = c->rel_len, n;
	enum arc_fate fate;
	int cmp;

	if (load_cat && catalogue_dir_load(c->cat, c->rel, c->rel_len, &C,
	    &nc, &c->ferr) == -1) {
		c->fatal = true;
		return;
	}
	while ((i < ns || j < nc) && !c->fatal) {
		if (c->o->cancel != NULL && *c->o->cancel) {
			c->cancelled = true;
			break;
		}
		if (i == ns)
			cmp = 1;
		else if (j == nc)
			cmp = -1;
		else {
			n = S[i].len < C[j].name_len ? S[i].len :
			    C[j].name_len;
			cmp = memcmp(S[i].name, C[j].name, n);
			if (cmp == 0)
				cmp = (S[i].len > C[j].name_len) -
				    (S[i].len < C[j].name_len);
		}
		if (cmp > 0) {		/* in the catalogue only */
			arc_deleted(c, &C[j], false);
			j++;
			continue;
		}
		cn = cmp == 0 ? &C[j] : NULL;
		if (arc_push(c, S[i].name, S[i].len) == -1) {
			c->fatal = true;
			vg_err_sys(&c->ferr, "out of memory");
			break;
		}
		/* a folder that became something else: its rows below go */
		if (cn != NULL && cn->type == CAT_DIR && S[i].serr == 0 &&
		    !S_ISDIR(S[i].st.st_mode)) {
			arc_pop(c, old);
			arc_deleted(c, cn, true);
			if (arc_push(c, S[i].name, S[i].len) == -1)
				break;
			cn = NULL;
		}
		fate = arc_entry(c, fd, &S[i], cn, old, pdev);
		arc_pop(c, old);
		if (fate == ARC_ABSENT && cn != NULL)
			arc_deleted(c, cn, false);
		arc_progress(c, false);
		i++;
		if (cmp == 0)
			j++;
	}
	catalogue_entries_free(C, nc);
}

/* ---- the run ---- */

static void
arc_stamp(const struct engine_opts *o, char *buf, size_t len)
{
	struct tm tm;
	time_t t = (time_t)(o->now_ms / 1000);
	char ts[32];

	if (gmtime_r(&t, &tm) == NULL || strftime(ts, sizeof ts,
	    "%Y%m%dT%H%M%SZ", &tm) == 0)
		strcpy(ts, "00000000T000000Z");
	snprintf(buf, len, "%s-r%lld", ts, (long long)o->run_id);
}

/* True when s is a stamp arc_stamp() writes: 8 digits T 6 digits Z-r
 * digits. */
static bool
arc_is_stamp(const char *s, size_t len)
{
	size_t i;

	if (len < 19 || s[8] != 'T' || s[15] != 'Z' || s[16] != '-' ||
	    s[17] != 'r')
		return false;
	for (i = 0; i < len; i++) {
		if (i == 8 || (i >= 15 && i <= 17))
			continue;
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return true;
}

/*
 * Remove job's archives that no manifest names: a run killed between the
 * archive's rename and its manifest's left a complete-looking file that no
 * restore can use (the manifest is the run's commit point).
 */
static void
arc_clean_orphans(struct arc_ctx *c, int fd, int metafd, const char *job)
{
	static const char *const kinds[] = { "-full.", "-incr." };
	struct dirent *de;
	struct stat st;
	const char *name, *rest, *k;
	char mname[128], *esc;
	size_t jl = strlen(job), i, sl;
	DIR *d;
	int dfd;

	if (metafd == -1 || (dfd = dup(fd)) == -1)
		return;
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		name = de->d_name;
		if (strncmp(name, job, jl) != 0 || name[jl] != '-')
			continue;
		rest = name + jl + 1;
		for (i = 0, k = NULL; i < 2 && k == NULL; i++)
			k = strstr(rest, kinds[i]);
		if (k == NULL || (sl = (size_t)(k - rest)) >= 100 ||
		    !arc_is_stamp(rest, sl) || (strcmp(k + 6, "tar.gz") != 0 &&
		    strcmp(k + 6, "tar.zst") != 0 && strcmp(k + 6, "zip") != 0))
			continue;
		snprintf(mname, sizeof mname, "%.*s.manifest", (int)sl, rest);
		if (fstatat(metafd, mname, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    errno != ENOENT)
			continue;
		if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode) || unlinkat(fd, name, 0) == -1)
			continue;
		esc = log_escape(name);
		arc_warn(c, "removed %s: the run that wrote it was stopped "
		    "before its manifest was written, so no restore could use "
		    "it", esc ? esc : "?");
		free(esc);
	}
	closedir(d);
}

/* Remove leftover temp files (a killed run) from folder fd. */
static void
arc_clean_tmp(int fd)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int dfd;

	if ((dfd = dup(fd)) == -1 || (d = fdopendir(dfd)) == NULL) {
		if (dfd != -1)
			close(dfd);
		return;
	}
	rewinddir(d);	/* the dup shares fd's offset */
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".vigil-tmp-", 11) == 0 &&
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			(void)unlinkat(fd, de->d_name, 0);
	closedir(d);
}

/* Compare manifest stamps "YYYYMMDDTHHMMSSZ-rN" by time, then run. */
static int
arc_stamp_cmp(const char *a, const char *b)
{
	int r = strncmp(a, b, 16);
	const char *ra = strstr(a, "-r"), *rb = strstr(b, "-r");
	long long x, y;

	if (r != 0 || ra == NULL || rb == NULL)
		return r != 0 ? r : strcmp(a, b);
	x = strtoll(ra + 2, NULL, 10);
	y = strtoll(rb + 2, NULL, 10);
	return (x > y) - (x < y);
}

/* The newest manifest's name in folder fd, or NULL (malloc'd). */
static char *
arc_latest_manifest(int fd)
{
	struct dirent *de;
	char *best = NULL;
	size_t n;
	DIR *d;
	int dfd;

	if ((dfd = dup(fd)) == -1 || (d = fdopendir(dfd)) == NULL) {
		if (dfd != -1)
			close(dfd);
		return NULL;
	}
	rewinddir(d);	/* the dup shares fd's offset */
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (n <= 9 || de->d_name[0] == '.' ||
		    strcmp(de->d_name + n - 9, ".manifest") != 0)
			continue;
		if (best == NULL || arc_stamp_cmp(de->d_name, best) > 0) {
			free(best);
			best = strdup(de->d_name);
		}
	}
	closedir(d);
	return best;
}

static la_ssize_t
arc_gz_cb_write(struct archive *a, void *arg, const void *buf, size_t len)
{
	struct arc_ctx *c = arg;
	struct vg_err e;

	if (arc_gz_write(c->gz, buf, len, &e) == -1) {
		archive_set_error(a, EIO, "%s", e.msg);
		return -1;
	}
	return (la_ssize_t)len;
}

static int
arc_gz_cb_close(struct archive *a, void *arg)
{
	struct arc_ctx *c = arg;
	struct vg_err e;

	if (arc_gz_finish(c->gz, &e) == -1) {
		archive_set_error(a, EIO, "%s", e.msg);
		return ARCHIVE_FATAL;
	}
	return ARCHIVE_OK;
}

static unsigned
arc_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 16 ? 16 : (unsigned)n;
}

/* Set up the libarchive writer for the job's format onto c->afd. */
static int
arc_open_writer(struct arc_ctx *c, struct vg_err *err)
{
	const struct vg_job_def *job = c->job;
	char v[16];
	int r = ARCHIVE_OK;

	if ((c->a = archive_write_new()) == NULL)
		goto nomem;
	if (job->format == VG_FMT_ZIP) {
		r = archive_write_set_format_zip(c->a);
		if (r == ARCHIVE_OK)
			r = archive_write_set_format_option(c->a, "zip",
			    "compression", job->compression == 0 ? "store" :
			    "deflate");
		snprintf(v, sizeof v, "%d", job->compression);
		if (r == ARCHIVE_OK && job->compression > 0)
			r = archive_write_set_format_option(c->a, "zip",
			    "compression-level", v);
	} else {
		r = archive_write_set_format_pax(c->a);
		if (r == ARCHIVE_OK && (c->lr =
		    archive_entry_linkresolver_new()) == NULL)
			goto nomem;
		if (c->lr != NULL)
			archive_entry_linkresolver_set_strategy(c->lr,
			    archive_format(c->a));
	}
	if (r == ARCHIVE_OK && job->format == VG_FMT_TAR_ZST) {
		r = archive_write_add_filter_zstd(c->a);
		snprintf(v, sizeof v, "%d", arc_zstd_level(job->compression));
		if (r == ARCHIVE_OK)
			r = archive_write_set_filter_option(c->a, "zstd",
			    "compression-level", v);
		snprintf(v, sizeof v, "%u", arc_ncpu());
		if (r == ARCHIVE_OK && arc_ncpu() > 1)
			r = archive_write_set_filter_option(c->a, "zstd",
			    "threads", v);
	}
	if (r == ARCHIVE_OK)
		r = archive_write_set_bytes_per_block(c->a, 64 * 1024);
	if (r == ARCHIVE_OK)
		r = archive_write_set_bytes_in_last_block(c->a, 1);
	if (r != ARCHIVE_OK) {
		vg_err_set(err, VG_ERR_ARCHIVE, "setting up the %s writer: %s",
		    arc_format_ext(job->format), archive_error_string(c->a));
		return -1;
	}
	if (job->format == VG_FMT_TAR_GZ) {
		if ((c->gz = arc_gz_new(c->afd, job->compression, ARC_GZ_BLOCK,
		    0, err)) == NULL)
			return -1;
		r = archive_write_open2(c->a, c, NULL, arc_gz_cb_write,
		    arc_gz_cb_close, NULL);
	} else
		r = archive_write_open_fd(c->a, c->afd);
	if (r != ARCHIVE_OK) {
		vg_err_set(err, VG_ERR_ARCHIVE, "opening the archive: %s",
		    archive_error_string(c->a));
		return -1;
	}
	return 0;
nomem:
	vg_err_sys(err, "out of memory");
	return -1;
}

/*
 * Verify: read the archive back and compare each entry, in order, with the
 * manifest's lines (path, type; content checksum for files).
 */
static void
arc_verify(struct arc_ctx *c, int adirfd, const char *aname, int mdirfd,
    const char *mname)
{
	struct arc_manifest m;
	struct archive *r = NULL;
	struct archive_entry *e;
	XXH3_state_t *h = NULL;
	XXH128_canonical_t canon;
	const void *blk;
	size_t blen, k = 0, plen, bad = 0;
	la_int64_t boff, pos;
	const char *p;
	struct vg_err err;
	int fd = -1, rc;

	memset(&m, 0, sizeof m);
	if (arc_manifest_read(mdirfd, mname, false, &m, &err) == -1) {
		arc_problem(c, "verify-mismatch", "%s", err.msg);
		return;
	}
	if ((fd = openat(adirfd, aname, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		arc_problem(c, "verify-mismatch", "cannot open the archive: "
		    "%s", strerror(errno));
		goto out;
	}
	plat_drop_cache(fd);
	if ((r = archive_read_new()) == NULL || (h = XXH3_createState()) ==
	    NULL)
		goto out;
	archive_read_support_filter_all(r);
	archive_read_support_format_all(r);
	if (archive_read_open_fd(r, fd, 256 * 1024) != ARCHIVE_OK) {
		arc_problem(c, "verify-mismatch", "cannot read the archive: "
		    "%s", archive_error_string(r));
		goto out;
	}
	while ((rc = archive_read_next_header(r, &e)) == ARCHIVE_OK ||
	    rc == ARCHIVE_WARN) {
		while (k < m.n && m.v[k].type == 'D')
			k++;
		p = archive_entry_pathname(e);
		plen = p != NULL ? strlen(p) : 0;
		while (plen > 1 && p[plen - 1] == '/')
			plen--;
		if (k >= m.n || p == NULL || plen != m.v[k].len ||
		    memcmp(p, m.v[k].path, plen) != 0) {
			bad++;
			break;
		}
		if (m.v[k].type == 'f' && m.v[k].has_sum && m.v[k].ok) {
			XXH3_128bits_reset(h);
			pos = 0;
			while ((rc = archive_read_data_block(r, &blk, &blen,
			    &boff)) == ARCHIVE_OK) {
				for (; pos < boff; ) {
					size_t z = boff - pos > (la_int64_t)
					    sizeof arc_zeros ? sizeof arc_zeros
					    : (size_t)(boff - pos);
					XXH3_128bits_update(h, arc_zeros, z);
					pos += (la_int64_t)z;
				}
				XXH3_128bits_update(h, blk, blen);
				pos += (la_int64_t)blen;
			}
			if (rc != ARCHIVE_EOF) {
				bad++;
				break;
			}
			while (pos < (la_int64_t)m.v[k].size) {
				size_t z = (la_int64_t)m.v[k].size - pos >
				    (la_int64_t)sizeof arc_zeros ?
				    sizeof arc_zeros :
				    (size_t)((la_int64_t)m.v[k].size - pos);
				XXH3_128bits_update(h, arc_zeros, z);
				pos += (la_int64_t)z;
			}
			XXH128_canonicalFromHash(&canon,
			    XXH3_128bits_digest(h));
			if (memcmp(canon.digest, m.v[k].sum, 16) != 0) {
				c->rel_len = 0;
				if (arc_push(c, m.v[k].path, m.v[k].len) == 0)
					arc_problem(c, "verify-mismatch",
					    "the archived content differs "
					    "from what was read");
				arc_pop(c, 0);
			}
		}
		k++;
	}
	if (rc != ARCHIVE_EOF && bad == 0)
		bad++;
	while (k < m.n && m.v[k].type == 'D')
		k++;
	if (bad > 0 || k != m.n)
		arc_problem(c, "verify-mismatch", "the archive does not match "
		    "its manifest (entry %zu of %zu): %s", k, m.n,
		    rc != ARCHIVE_EOF && archive_error_string(r) != NULL ?
		    archive_error_string(r) : "entries differ");
	if (c->o->progress != NULL) {
		struct engine_progress pr;

		memset(&pr, 0, sizeof pr);
		pr.phase = ENGINE_PHASE_VERIFY;
		pr.files_done = k;
		c->o->progress(&pr, c->o->progress_arg);
	}
out:
	if (r != NULL)
		archive_read_free(r);
	XXH3_freeState(h);
	if (fd != -1)
		close(fd);
	arc_manifest_free(&m);
}

static int
arc_open_sources(struct arc_ctx *c, struct arc_ent *top, struct vg_err *err)
{
	const struct engine_opts *o = c->o;
	struct plat_fsinfo fi;
	const char *path, *base;
	size_t i, n;

	for (i = 0; i < o->nsources; i++) {
		top[i].fd = -1;
		path = o->sources[i].read_from ? o->sources[i].read_from :
		    o->sources[i].path;
		top[i].fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (top[i].fd == -1 || fstat(top[i].fd, &top[i].st) == -1) {
			vg_err_sys(err, "cannot read source %s (nothing was "
			    "archived; check that it exists and is mounted)",
			    path);
			return -1;
		}
		if (plat_fs_info(top[i].fd, c->uid, &fi) == 0 && fi.pseudo) {
			vg_err_set(err, VG_ERR_INVALID, "source %s is on a "
			    "pseudo filesystem (%s), which is never backed "
			    "up", path, fi.type);
			return -1;
		}
		if (c->dest_fd != -1 && top[i].st.st_dev ==
		    c->dest_st.st_dev && top[i].st.st_ino ==
		    c->dest_st.st_ino) {
			vg_err_set(err, VG_ERR_INVALID, "source %s is the "
			    "destination itself", path);
			return -1;
		}
		/* the name under the destination root: the last component */
		n = strlen(o->sources[i].path);
		while (n > 1 && o->sources[i].path[n - 1] == '/')
			n--;
		base = o->sources[i].path + n;
		while (base > o->sources[i].path && base[-1] != '/')
			base--;
		top[i].len = (size_t)(o->sources[i].path + n - base);
		if ((top[i].name = strndup(base, top[i].len)) == NULL) {
			vg_err_sys(err, "out of memory");
			return -1;
		}
		top[i].src = &o->sources[i];
	}
	return 0;
}

static int
arc_fsync_close_file(FILE *f, struct vg_err *err)
{
	int rc = 0;

	if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) == -1) {
		vg_err_sys(err, "writing the archive manifest");
		rc = -1;
	}
	if (fclose(f) != 0 && rc == 0) {
		vg_err_sys(err, "writing the archive manifest");
		rc = -1;
	}
	return rc;
}

int
archive_run(const struct engine_opts *o, struct vg_engine_result *res,
    struct vg_err *err)
{
	struct arc_ctx c;
	struct arc_ent *top = NULL;
	struct arc_manifest pm;
	const struct vg_job_def *job = o->job;
	char stamp[64], aname[NAME_MAX + 1], atmp[64], mname[128], mtmp[64];
	char *latest = NULL, *errmsg = NULL;
	const char *why_full = NULL;
	struct vg_err merr;
	struct stat st;
	bool fresh_full, committed = false, renamed = false;
	int adirfd = -1, metafd = -1, mfd = -1, vfd, rc = -1, r;
	size_t i;

	memset(&c, 0, sizeof c);
	memset(&pm, 0, sizeof pm);
	memset(res, 0, sizeof *res);
	res->status = VG_RUN_FAILED;
	c.o = o;
	c.job = job;
	c.res = res;
	c.afd = c.dest_fd = -1;
	c.uid = geteuid();
	c.dry = o->dry_run;
	c.multi = o->nsources > 1;
	c.cat = o->catalogue;
	vg_err_clear(&c.ferr);
	if (job == NULL || o->nsources == 0 || o->nsources !=
	    job->sources.n) {
		vg_err_set(err, VG_ERR_INTERNAL, "archive: incomplete options");
		return -1;
	}
	(void)plat_raise_fd_limit();
	if ((c.filter = filter_compile(&job->include, &job->exclude,
	    &errmsg)) == NULL && (job->include.n > 0 ||
	    job->exclude.n > 0)) {
		vg_err_set(err, VG_ERR_INVALID, "job %s: %s", job->name,
		    errmsg ? errmsg : "bad filter");
		goto out;
	}
	if ((c.buf = malloc(ARC_BUF)) == NULL ||
	    (top = calloc(o->nsources, sizeof *top)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	for (i = 0; i < o->nsources; i++)
		top[i].fd = -1;
	c.dest_fd = open(job->destination, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC);
	if (c.dest_fd == -1 && !(c.dry && errno == ENOENT)) {
		vg_err_sys(err, "destination %s", job->destination);
		goto out;
	}
	if (c.dest_fd != -1 && fstat(c.dest_fd, &c.dest_st) == -1) {
		vg_err_sys(err, "destination %s", job->destination);
		goto out;
	}
	if (arc_open_sources(&c, top, err) == -1)
		goto out;

	/* .vigil/archives, and what the last run left */
	if (c.dest_fd != -1) {
		if (!c.dry && mkdirat(c.dest_fd, ARC_META, 0700) == -1 &&
		    errno != EEXIST) {
			vg_err_sys(err, "creating %s/.vigil", job->destination);
			goto out;
		}
		/* never through a link planted at .vigil */
		if ((vfd = openat(c.dest_fd, ARC_META, O_RDONLY |
		    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1 &&
		    errno != ENOENT) {
			vg_err_sys(err, "opening %s/.vigil (it must be a "
			    "folder, not a link; move it away)",
			    job->destination);
			goto out;
		}
		if (vfd != -1 && !c.dry && mkdirat(vfd, strchr(
		    ARC_MANIFEST_DIR, '/') + 1, 0700) == -1 &&
		    errno != EEXIST) {
			vg_err_sys(err, "creating %s/%s", job->destination,
			    ARC_MANIFEST_DIR);
			close(vfd);
			goto out;
		}
		if (vfd != -1)
			close(vfd);
		metafd = plat_open_beneath(c.dest_fd, ARC_MANIFEST_DIR,
		    O_RDONLY | O_DIRECTORY, 0);
		if (metafd == -1 && !c.dry) {
			vg_err_sys(err, "opening %s/%s", job->destination,
			    ARC_MANIFEST_DIR);
			goto out;
		}
	}
	if (!c.dry) {
		arc_clean_tmp(c.dest_fd);
		arc_clean_tmp(metafd);
		arc_clean_orphans(&c, c.dest_fd, metafd, job->name);
	}

	/* full or incremental */
	fresh_full = true;
	if (job->archive == VG_ARCHIVE_INCREMENTAL) {
		if (c.cat == NULL || o->catalogue_fresh)
			why_full = "no catalogue of the last archive";
		else if (catalogue_was_dirty(c.cat))
			why_full = "the last run did not finish";
		else if (metafd == -1 || (latest =
		    arc_latest_manifest(metafd)) == NULL)
			why_full = "no earlier archive";
		else if (arc_manifest_read(metafd, latest, true, &pm,
		    &merr) == -1)
			why_full = "the last manifest is unreadable";
		else if (fstatat(c.dest_fd, pm.archive, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode))
			why_full = "the last archive is missing";
		else
			fresh_full = false;
		if (why_full != NULL)
			arc_warn(&c, "job %s: a full archive instead of an "
			    "incremental one: %s", job->name, why_full);
	}
	c.incr = !fresh_full;
	c.write_cat = !c.dry && c.cat != NULL;

	arc_stamp(o, stamp, sizeof stamp);
	r = snprintf(aname, sizeof aname, "%s-%s-%s.%s", job->name, stamp,
	    c.incr ? "incr" : "full", arc_format_ext(job->format));
	if (r < 0 || (size_t)r >= sizeof aname) {
		vg_err_set(err, VG_ERR_INVALID, "archive name too long");
		goto out;
	}
	snprintf(atmp, sizeof atmp, ".vigil-tmp-%lld-archive",
	    (long long)o->run_id);
	snprintf(mtmp, sizeof mtmp, ".vigil-tmp-%lld-manifest",
	    (long long)o->run_id);
	r = snprintf(mname, sizeof mname, "%s.manifest", stamp);
	if (r < 0 || (size_t)r >= sizeof mname) {
		vg_err_set(err, VG_ERR_INVALID, "manifest name too long");
		goto out;
	}

	if (c.dry) {
		if (o->plan_out != NULL)
			fprintf(o->plan_out, "would write %s/%s (%s)\n",
			    job->destination, aname, c.incr ? "incremental" :
			    "full");
	} else {
		if ((c.afd = openat(c.dest_fd, atmp, O_WRONLY | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) == -1) {
			vg_err_sys(err, "creating the archive in %s",
			    job->destination);
			goto out;
		}
		if ((mfd = openat(metafd, mtmp, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1 ||
		    (c.mf = fdopen(mfd, "w")) == NULL) {
			vg_err_sys(err, "creating the manifest in %s/%s",
			    job->destination, ARC_MANIFEST_DIR);
			goto out;
		}
		mfd = -1;
		fprintf(c.mf, "%s\nrun %lld\ntime %lld\nkind %s\nformat %s\n"
		    "archive %s\nparent %s\n", ARC_MANIFEST_MAGIC,
		    (long long)o->run_id, (long long)o->now_ms,
		    c.incr ? "incremental" : "full",
		    arc_format_ext(job->format), aname,
		    c.incr ? pm.stamp : "-");
		if (arc_open_writer(&c, err) == -1)
			goto out;
		if (c.write_cat) {
			if (catalogue_set_dirty(c.cat, true, err) == -1 ||
			    catalogue_begin(c.cat, err) == -1) {
				c.write_cat = false;
				goto out;
			}
			if (!c.incr && catalogue_clear(c.cat, err) == -1)
				goto out;
		}
	}

	/* the walk */
	if ((c.rel = calloc(1, 256)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	c.rel_cap = 256;
	if (c.multi) {
		qsort(top, o->nsources, sizeof *top, arc_cmp_ent);
		arc_merge(&c, -1, top, o->nsources, c.incr, 0);
	} else {
		c.src = top[0].src;
		c.src_dev = top[0].st.st_dev;
		arc_dir(&c, -1, &top[0], NULL, 0, top[0].st.st_dev);
	}
	if (c.fatal || c.cancelled)
		goto finish;
	if (c.dry) {
		res->status = res->nproblems > 0 ? VG_RUN_PARTIAL : VG_RUN_OK;
		if (o->plan_out != NULL)
			fprintf(o->plan_out, "archive: %" PRIu64 " entries to "
			    "write, %" PRIu64 " unchanged, %" PRIu64
			    " deleted\n", res->plan_copies,
			    res->files_unchanged, res->files_deleted);
		rc = 0;
		goto out;
	}

	/* finish: close, flush, rename, commit */
	if (archive_write_close(c.a) != ARCHIVE_OK) {
		arc_fail_archive(&c, "closing");
		goto finish;
	}
	fprintf(c.mf, "end %" PRIu64 " %" PRIu64 "\n", c.nent, c.ndel);
	r = arc_fsync_close_file(c.mf, &c.ferr);
	c.mf = NULL;
	if (r == -1) {
		c.fatal = true;
		goto finish;
	}
	if (fsync(c.afd) == -1) {
		c.fatal = true;
		vg_err_sys(&c.ferr, "flushing the archive %s", aname);
		goto finish;
	}
	if (plat_rename_noreplace(c.dest_fd, atmp, c.dest_fd, aname) == -1 ||
	    fsync(c.dest_fd) == -1) {
		c.fatal = true;
		vg_err_sys(&c.ferr, "naming the archive %s", aname);
		goto finish;
	}
	renamed = true;
	if (plat_rename_noreplace(metafd, mtmp, metafd, mname) == -1 ||
	    fsync(metafd) == -1) {
		c.fatal = true;
		vg_err_sys(&c.ferr, "naming the manifest %s", mname);
		goto finish;
	}
	if (c.write_cat) {
		if (catalogue_commit(c.cat, &c.ferr) == -1 ||
		    catalogue_set_dirty(c.cat, false, &c.ferr) == -1) {
			arc_warn(&c, "the catalogue could not be updated (%s); "
			    "the next run writes a full archive", c.ferr.msg);
			vg_err_clear(&c.ferr);
		}
		c.write_cat = false;
		committed = true;
	}
	if (job->verify)
		arc_verify(&c, c.dest_fd, aname, metafd, mname);
	res->status = res->nproblems > 0 ? VG_RUN_PARTIAL : VG_RUN_OK;
	if (asprintf(&res->message, "archive %s (%s): %" PRIu64 " entries, %"
	    PRIu64 " deleted, %" PRIu64 " unchanged", aname, c.incr ?
	    "incremental" : "full", c.nent, c.ndel,
	    res->files_unchanged) == -1)
		res->message = NULL;
	rc = 0;
	goto out;
finish:
	if (c.cancelled && !c.fatal) {
		res->status = VG_RUN_CANCELLED;
		res->message = strdup("cancelled; no archive was written");
	} else {
		res->status = VG_RUN_FAILED;
		if (asprintf(&res->message, "%s%s", c.ferr.msg[0] ?
		    c.ferr.msg : "the archive could not be written",
		    renamed ? "" : "; no archive was written") == -1)
			res->message = NULL;
		log_warnx("%s", c.ferr.msg);
	}
	rc = 0;
out:
	if (rc == -1)
		res->status = VG_RUN_FAILED;
	/* An open catalogue batch is never committed: closing the catalogue
	 * rolls it back, and its dirty flag (set before the batch) makes the
	 * next run a full one. */
	(void)committed;
	if (c.a != NULL)
		archive_write_free(c.a);
	if (c.lr != NULL)
		archive_entry_linkresolver_free(c.lr);
	arc_gz_free(c.gz);
	if (c.mf != NULL)
		fclose(c.mf);
	if (mfd != -1)
		close(mfd);
	if (c.afd != -1)
		close(c.afd);
	if (!renamed && !c.dry && c.dest_fd != -1)
		(void)unlinkat(c.dest_fd, atmp, 0);
	if (res->status != VG_RUN_OK && res->status != VG_RUN_PARTIAL &&
	    !c.dry && metafd != -1)
		(void)unlinkat(metafd, mtmp, 0);
	if (top != NULL)
		arc_ents_free(top, o->nsources);
	if (metafd != -1)
		close(metafd);
	if (c.dest_fd != -1)
		close(c.dest_fd);
	if (adirfd != -1)
		close(adirfd);
	arc_manifest_free(&pm);
	filter_free(c.filter);
	free(errmsg);
	free(latest);
	free(c.buf);
	free(c.rel);
	return rc;
}
