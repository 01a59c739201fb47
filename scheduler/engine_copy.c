/*
 * engine_copy.c: copying one file's content and metadata to a temp file,
 * and the batch that makes temp files durable and renames them into place
 * (docs/architecture.md, "Durability protocol").
 *
 * Content: a reflink (FICLONE) when the filesystems allow it and no
 * checksum is needed, else copy_file_range() per data extent, else
 * read/write.  Holes are skipped (SEEK_DATA/SEEK_HOLE) and the file is
 * truncated to its size, so sparse files stay sparse.  With verify = yes the
 * content is read through user space to compute its XXH3-128 on the way.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "common/platform.h"
#include "db/sqlite_capture.h"
#include "scheduler/capture.h"
#include "scheduler/engine_int.h"

enum engine_flush engine_flush_mode = ENGINE_FLUSH_SYNCFS;

struct eng_dir *
eng_dir_new(int fd)
{
	struct eng_dir	*d;

	struct stat	 st;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->fd = fd;
	d->refs = 1;
	/* a setgid folder gives its group to what is made in it */
	if (fstat(fd, &st) == 0) {
		d->new_gid = (st.st_mode & S_ISGID) ? st.st_gid : getegid();
		d->gid_known = true;
	}
	/* a default ACL, not the umask, decides the mode of what is made */
	d->mode_as_made = !plat_dir_inherits_mode(fd);
	return d;
}

struct eng_dir *
eng_dir_ref(struct eng_dir *d)
{
	if (d != NULL)
		d->refs++;
	return d;
}

void
eng_dir_unref(struct eng_dir *d)
{
	if (d == NULL || --d->refs > 0)
		return;
	if (d->fd != -1)
		close(d->fd);
	free(d);
}

void
eng_fill_entry(struct catalogue_entry *ce, const struct stat *st)
{
	ce->type = S_ISDIR(st->st_mode) ? CAT_DIR : S_ISLNK(st->st_mode) ?
	    CAT_SYMLINK : CAT_FILE;
	ce->size = (uint64_t)st->st_size;
	ce->mtime_ns = eng_ts_ns(&st->st_mtim);
	ce->ctime_ns = eng_ts_ns(&st->st_ctim);
	ce->ino = (uint64_t)st->st_ino;
	ce->dev = (uint64_t)st->st_dev;
	ce->mode = (uint32_t)st->st_mode;
	ce->uid = (uint32_t)st->st_uid;
	ce->gid = (uint32_t)st->st_gid;
}

/* ---- content ---- */

/* Flags the copier threads share: set once, read often. */
#define ENG_FLAG_GET(f)		__atomic_load_n(&(f), __ATOMIC_RELAXED)
#define ENG_FLAG_SET(f)		__atomic_store_n(&(f), true, __ATOMIC_RELAXED)

static void
eng_count_bytes(struct eng_ctx *c, uint64_t n)
{
	__atomic_fetch_add(&c->bytes_done, n, __ATOMIC_RELAXED);
	eng_progress(c, false);		/* no-op on a copier thread */
}

static const unsigned char eng_zeros[65536];

static void
eng_hash_zeros(XXH3_state_t *xs, off_t n)
{
	size_t	 k;

	while (n > 0) {
		k = n > (off_t)sizeof(eng_zeros) ? sizeof(eng_zeros) :
		    (size_t)n;
		XXH3_128bits_update(xs, eng_zeros, k);
		n -= (off_t)k;
	}
}

static bool
eng_cfr_unsupported(int e)
{
	return e == EXDEV || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP ||
	    e == EBADF || e == ETXTBSY || e == EPERM;
}

/*
 * Copy the size bytes of sfd (last seen as *st) into the empty dfd, using
 * buf (ENG_BUF bytes) when the data passes through user space.  Returns
 * 0, -1 on a read error (errno), -2 on a write error (errno).  A source
 * that shrinks while it is read ends the copy early; the caller's fstat()
 * notices.  A file with as many blocks as bytes has no holes: it is copied
 * in one run without asking the filesystem where its data is.
 */
static int
eng_copy_data(struct eng_ctx *c, int sfd, int dfd, const struct stat *st,
    unsigned char *buf, XXH3_state_t *xs)
{
	off_t	 size = st->st_size, off = 0, ds, de, so, dof, pos, end = 0;
	ssize_t	 n, w, k;
	size_t	 want;
	bool	 dense;
	int	 r;

	if (xs == NULL && !ENG_FLAG_GET(c->no_clone) && size > 0) {
		if (plat_clone_file(dfd, sfd) == 0) {
			eng_count_bytes(c, (uint64_t)size);
			return 0;
		}
		ENG_FLAG_SET(c->no_clone);	/* not on these filesystems */
	}
	dense = (off_t)st->st_blocks * 512 >= size;
	while (off < size) {
		if (dense) {
			ds = off;
			de = size;
			r = 1;
		} else if ((r = plat_next_data(sfd, off, size, &ds, &de)) ==
		    -1)
			return -1;
		if (r == 0)
			break;
		if (xs != NULL && ds > off)
			eng_hash_zeros(xs, ds - off);
		pos = ds;
		if (xs == NULL && !ENG_FLAG_GET(c->no_cfr)) {
			so = dof = pos;
			while (so < de) {
				n = plat_copy_range(sfd, &so, dfd, &dof,
				    (size_t)(de - so));
				if (n == 0)
					goto shrank;
				if (n == -1) {
					if (errno == EINTR)
						continue;
					if (errno == ENOSPC ||
					    errno == EDQUOT || errno == EFBIG)
						return -2;
					if (eng_cfr_unsupported(errno))
						ENG_FLAG_SET(c->no_cfr);
					break;	/* read/write says which */
				}
				eng_count_bytes(c, (uint64_t)n);
			}
			pos = so;
		}
		while (pos < de) {
			want = de - pos > ENG_BUF ? ENG_BUF : (size_t)(de - pos);
			n = pread(sfd, buf, want, pos);
			if (n == -1) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			if (n == 0)
				goto shrank;
			if (xs != NULL)
				XXH3_128bits_update(xs, buf, (size_t)n);
			for (w = 0; w < n; w += k) {
				k = pwrite(dfd, buf + w, (size_t)(n - w),
				    pos + w);
				if (k == -1 && errno == EINTR) {
					k = 0;
					continue;
				}
				if (k <= 0) {
					if (k == 0)
						errno = EIO;
					return -2;
				}
			}
			pos += n;
			eng_count_bytes(c, (uint64_t)n);
		}
		off = end = de;
	}
	if (xs != NULL && off < size)
		eng_hash_zeros(xs, size - off);
	/* a hole at the end: the size comes from a truncate */
	if (end != size && ftruncate(dfd, size) == -1)
		return -2;
	return 0;
shrank:
	/* the copy holds what there was; the capture's fstat sees the change
	   and copies again (no zeros are made up for the missing end) */
	return 0;
}

/* ---- xattrs ---- */

static bool
eng_xattr_privileged(const char *name)
{
	return strncmp(name, "security.", 9) == 0 ||
	    strncmp(name, "trusted.", 8) == 0;
}

/* An entry whose xattrs are read or written: an open file (name NULL) or
 * the entry name under dirfd itself (a symlink, never followed). */
struct eng_xnode {
	int		 fd;
	const char	*name;
};

static int
eng_x_list(const struct eng_xnode *n, char **names, size_t *len)
{
	return n->name ? plat_lxattr_list(n->fd, n->name, names, len) :
	    plat_xattr_list(n->fd, names, len);
}

static int
eng_x_get(const struct eng_xnode *n, const char *x, void **val, size_t *len)
{
	return n->name ? plat_lxattr_get(n->fd, n->name, x, val, len) :
	    plat_xattr_get(n->fd, x, val, len);
}

static int
eng_x_set(const struct eng_xnode *n, const char *x, const void *val,
    size_t len)
{
	return n->name ? plat_lxattr_set(n->fd, n->name, x, val, len) :
	    plat_xattr_set(n->fd, x, val, len);
}

/* Warn once per run (flag shared by the copier threads). */
static bool
eng_first_time(bool *flag)
{
	return !__atomic_exchange_n(flag, true, __ATOMIC_RELAXED);
}

static void
eng_x_copy(struct eng_ctx *c, const char *rel, size_t rel_len,
    const struct eng_xnode *src, const struct eng_xnode *dst)
{
	char	*names = NULL, *p;
	void	*val = NULL;
	size_t	 len = 0, vlen;
	char	*dest;

	if (eng_x_list(src, &names, &len) == -1) {
		if (errno != ENOTSUP && errno != EOPNOTSUPP)
			eng_problem(c, rel, rel_len, "xattr", true,
			    "cannot list extended attributes: %s",
			    strerror(errno));
		return;
	}
	for (p = names; p < names + len; p += strlen(p) + 1) {
		if (eng_x_get(src, p, &val, &vlen) == -1) {
			if (errno != ENODATA)
				eng_problem(c, rel, rel_len, "xattr",
				    true, "cannot read extended attribute "
				    "%s: %s", p, strerror(errno));
			continue;
		}
		if (eng_x_set(dst, p, val, vlen) == -1) {
			if (errno == ENOTSUP || errno == EOPNOTSUPP) {
				if (eng_first_time(&c->warned_xattr_nosup)) {
					dest = log_escape(c->dest);
					eng_warn(c, "destination %s does not "
					    "support extended attribute %s "
					    "(or ACLs); they are not kept",
					    dest ? dest : "?", p);
					free(dest);
				}
			} else if ((errno == EPERM || errno == EACCES) &&
			    eng_xattr_privileged(p)) {
				if (eng_first_time(&c->warned_xattr_perm))
					eng_warn(c, "extended attributes such "
					    "as %s need privileges this run "
					    "lacks; they are not kept", p);
			} else
				eng_problem(c, rel, rel_len, "xattr",
				    true, "cannot set extended attribute %s: "
				    "%s", p, strerror(errno));
		}
		free(val);
		val = NULL;
	}
	free(names);
}

void
eng_copy_xattrs(struct eng_ctx *c, const char *rel, size_t rel_len, int sfd,
    int dfd)
{
	struct eng_xnode s = { sfd, NULL }, d = { dfd, NULL };

	eng_x_copy(c, rel, rel_len, &s, &d);
}

void
eng_copy_link_xattrs(struct eng_ctx *c, int sdirfd, const char *sname,
    int ddirfd, const char *dname)
{
	struct eng_xnode s = { sdirfd, sname }, d = { ddirfd, dname };

	eng_x_copy(c, c->rel, c->rel_len, &s, &d);
}

/* ---- one file ---- */

/* The engine's copy as the capture methods call it (capture_copy_fn). */
struct eng_copy_arg {
	struct eng_ctx	*c;
	int		 dfd;
	unsigned char	*buf;
	XXH3_state_t	*xs;
	bool		 written;	/* dfd may hold an earlier copy */
	int		 fail;		/* 0, or ENG_FAIL_READ / WRITE */
	int		 err;		/* errno of the failure */
};
#define ENG_FAIL_READ	1
#define ENG_FAIL_WRITE	2

static int
eng_capture_copy(void *arg, int src_fd, const struct stat *given)
{
	struct eng_copy_arg *a = arg;
	struct stat	 st;
	int		 r;

	a->fail = 0;
	if (given == NULL) {
		if (fstat(src_fd, &st) == -1) {
			a->fail = ENG_FAIL_READ;
			goto fail;
		}
		given = &st;
	}
	if (a->written && ftruncate(a->dfd, 0) == -1) {
		a->fail = ENG_FAIL_WRITE;
		goto fail;
	}
	a->written = true;
	if (a->xs != NULL)
		XXH3_128bits_reset(a->xs);
	r = eng_copy_data(a->c, src_fd, a->dfd, given, a->buf, a->xs);
	if (r == 0)
		return 0;
	a->fail = r == -1 ? ENG_FAIL_READ : ENG_FAIL_WRITE;
fail:
	a->err = errno;
	return -1;
}

/* The checksum of what SQLite wrote into the temp file (verify = yes). */
static int
eng_hash_written(int dfd, unsigned char *buf, XXH3_state_t *xs)
{
	off_t	 off = 0;
	ssize_t	 n;

	XXH3_128bits_reset(xs);
	for (;;) {
		n = pread(dfd, buf, ENG_BUF, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		XXH3_128bits_update(xs, buf, (size_t)n);
		off += n;
	}
}

/* How a file of source s is captured (see engine.h). */
enum vg_capture
eng_method(struct eng_ctx *c, const struct engine_source *s, bool fallback)
{
	if (s == NULL)
		return VG_CAP_LIVE;
	if (!fallback || s->capture != VG_CAP_CLOSED_APP)
		return s->capture;
	return s->fallback != VG_CAP_CLOSED_APP ? s->fallback :
	    c->o->fallback_capture;
}

static bool
eng_from_snapshot(enum vg_capture m)
{
	return m == VG_CAP_SNAPSHOT_BTRFS || m == VG_CAP_SNAPSHOT_LVM;
}

int
eng_copy_open(struct eng_ctx *c, struct eng_copy_job *j)
{
	struct stat	 a;
	char		 hdr[SQLCAP_MAGIC_LEN];
	ssize_t		 hn;
	int		 e;

	j->fd = plat_open_read(j->sfd, j->name);
	if (j->fd == -1) {
		e = errno;
		eng_problem(c, j->rel, j->rel_len, e == ENOENT ? "vanished" :
		    "unreadable", false, "cannot open: %s", strerror(e));
		return 1;
	}
	if (fstat(j->fd, &a) == -1 || !S_ISREG(a.st_mode) ||
	    a.st_dev != j->st.st_dev || a.st_ino != j->st.st_ino) {
		eng_problem(c, j->rel, j->rel_len, "vanished", false,
		    "the file was replaced while it was read");
		goto fail;
	}
	j->st = a;
	j->method = eng_method(c, j->src, j->fallback);
	j->is_db = false;
	/* a SQLite database is captured through the backup API (not from a
	   btrfs snapshot: it is one moment already, and SQLite cannot open a
	   WAL database read-only there without its -shm) */
	if (!eng_from_snapshot(j->method) &&
	    sqlcap_size_may_be_db((long long)a.st_size)) {
		if ((hn = pread(j->fd, hdr, sizeof(hdr), 0)) == -1) {
			eng_problem(c, j->rel, j->rel_len, "unreadable", false,
			    "read error: %s", strerror(errno));
			goto fail;
		}
		j->is_db = sqlcap_is_header(hdr, (size_t)hn);
	}
	return 0;
fail:
	close(j->fd);
	j->fd = -1;
	return 1;
}

int
eng_copy_body(struct eng_ctx *c, struct eng_copy_job *j,
    struct eng_item *it)
{
	struct eng_copy_arg	 ca;
	struct capture_outcome	 out;
	struct vg_err		 cerr;
	XXH3_state_t	*xs = NULL;
	XXH128_hash_t	 h;
	XXH128_canonical_t canon;
	struct stat	 a;
	struct timespec	 ts[2];
	enum vg_capture	 got;
	mode_t		 made;
	bool		 owned;
	int		 dfd = -1, dirfd = it->dir->fd, stg, r, rc = 1;
	char		*esc;

	/*
	 * The temp file is made with the file's permission bits when it
	 * already has the file's owner (no chown to come): one attribute
	 * change less per file.  Otherwise 0600 until the chown.  The owner
	 * can always read and write it meanwhile (a user.* xattr needs write
	 * permission).  A mode that differs from the one made (read-only,
	 * set-id bits, the umask, a default ACL, a change since the open) is
	 * set after the copy.
	 */
	owned = !c->o->as_root || (j->st.st_uid == c->uid &&
	    it->dir->gid_known && j->st.st_gid == it->dir->new_gid);
	made = owned ? (j->st.st_mode & 0777) | 0600 : 0600;
	dfd = openat(dirfd, it->tmp, O_RDWR | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, made);
	made = it->dir->mode_as_made ? made & ~c->umask : (mode_t)-1;
	if (dfd == -1) {
		rc = eng_dest_error(c, errno, j->rel, j->rel_len,
		    "creating a temp file for") == -1 ? -1 : 1;
		goto out;
	}
	if (c->job->verify && (xs = XXH3_createState()) == NULL) {
		eng_fatal(c, ENOMEM, "copying");
		rc = -1;
		goto out;
	}
	memset(&ca, 0, sizeof(ca));
	ca.c = c;
	ca.dfd = dfd;
	ca.buf = j->buf;
	ca.xs = xs;
	vg_err_clear(&cerr);
	r = CAPTURE_FALLTHROUGH;
	got = j->method;

	/* 1. a SQLite database, through the backup API */
	if (j->is_db) {
		r = capture_sqlite(j->sfd, j->name, j->fd, dirfd, it->tmp,
		    CAPTURE_SQLITE_DEADLINE_MS, &out, &cerr);
		if (r == -1) {
			if (cerr.code == VG_ERR_NOSPACE)
				rc = eng_dest_error(c, cerr.sys_errno ?
				    cerr.sys_errno : ENOSPC, j->rel,
				    j->rel_len, "writing") == -1 ? -1 : 1;
			else
				eng_problem(c, j->rel, j->rel_len,
				    "dest-error", false, "%s", cerr.msg);
			goto out;
		}
		if (r == 0) {
			got = VG_CAP_SQLITE_BACKUP;
			if (xs != NULL &&
			    eng_hash_written(dfd, j->buf, xs) == -1) {
				rc = eng_dest_error(c, errno, j->rel,
				    j->rel_len, "re-reading") == -1 ? -1 : 1;
				goto out;
			}
		} else {
			esc = log_escape_len(j->rel, j->rel_len);
			eng_warn(c, "%s: not captured through the SQLite "
			    "backup API: %s; its -wal and -journal are copied "
			    "with it", esc ? esc : "?", cerr.msg);
			free(esc);
			ca.written = true;
		}
	}
	/* 2. a clone in the source's staging folder */
	stg = j->src != NULL && c->stg_fds != NULL ?
	    c->stg_fds[j->src - c->o->sources] : -1;
	if (r == CAPTURE_FALLTHROUGH && j->method == VG_CAP_REFLINK &&
	    stg != -1) {
		r = capture_reflink(stg, j->fd, eng_capture_copy, &ca, &out,
		    &cerr);
		if (r == CAPTURE_FALLTHROUGH &&
		    eng_first_time(&c->warned_clone)) {
			esc = log_escape_len(j->rel, j->rel_len);
			eng_warn(c, "%s: %s", esc ? esc : "?", cerr.msg);
			free(esc);
		}
		if (r == 0)
			got = VG_CAP_REFLINK;
	}
	/* 3. copied and checked: fstat before and after, again while it
	   moves */
	if (r == CAPTURE_FALLTHROUGH) {
		r = capture_verified(j->fd, &j->st, c->job->retries,
		    eng_capture_copy, &ca, &out, &cerr);
		if (r == 0)
			got = !out.consistent ? VG_CAP_INCONSISTENT :
			    out.copies > 1 || j->method == VG_CAP_REFLINK ?
			    VG_CAP_VERIFIED : j->method;
	}
	if (r != 0) {
		if (ca.fail == ENG_FAIL_WRITE)
			rc = eng_dest_error(c, ca.err, j->rel, j->rel_len,
			    "writing") == -1 ? -1 : 1;
		else
			eng_problem(c, j->rel, j->rel_len, "unreadable",
			    false, "read error: %s", ca.fail ?
			    strerror(ca.err) : cerr.msg);
		goto out;
	}
	a = out.st;
	if (a.st_size >= ENG_WRITEBACK_MIN)
		plat_start_writeback(dfd);
	if (c->o->as_root && (!owned || a.st_uid != j->st.st_uid ||
	    a.st_gid != j->st.st_gid)) {
		if (fchown(dfd, a.st_uid, a.st_gid) == -1)
			eng_problem(c, j->rel, j->rel_len, "metadata", true,
			    "cannot set the owner: %s", strerror(errno));
		made = (mode_t)-1;	/* chown clears set-id bits */
	}
	eng_copy_xattrs(c, j->rel, j->rel_len, j->fd, dfd);
	if ((a.st_mode & 07777) != made && fchmod(dfd, a.st_mode & 07777) ==
	    -1)
		eng_problem(c, j->rel, j->rel_len, "metadata", true,
		    "cannot set the mode: %s", strerror(errno));
	ts[0] = a.st_atim;
	ts[1] = a.st_mtim;
	if (futimens(dfd, ts) == -1)
		eng_problem(c, j->rel, j->rel_len, "metadata", true,
		    "cannot set the times: %s", strerror(errno));
	if (got == VG_CAP_INCONSISTENT)
		eng_problem(c, j->rel, j->rel_len, "inconsistent", true,
		    "kept changing while it was copied (%u copies); the last "
		    "copy was kept", out.copies);
	if (j->fallback)
		eng_note(c, j->rel, j->rel_len, "fallback", got,
		    "held by an app that refused to close");

	it->kind = ENG_ITEM_FILE;
	it->fd = dfd;
	dfd = -1;
	it->verify = xs != NULL;
	/* on a copier thread c->cat is not read (the walk may drop it);
	   the walk checks it when it takes the copy back */
	it->has_cat = (eng_pool_recording() || c->cat != NULL) &&
	    got != VG_CAP_INCONSISTENT;
	eng_fill_entry(&it->ce, &a);
	it->ce.type = CAT_FILE;
	it->st = a;
	if (xs != NULL) {
		h = XXH3_128bits_digest(xs);
		XXH128_canonicalFromHash(&canon, h);
		memcpy(it->ce.sum, canon.digest, sizeof(it->ce.sum));
		it->ce.has_sum = true;
	}
	it->captured = got;
	it->sqlite_db = j->is_db;
	rc = 0;
out:
	if (dfd != -1) {
		close(dfd);
		(void)unlinkat(dirfd, it->tmp, 0);
	}
	close(j->fd);
	j->fd = -1;
	XXH3_freeState(xs);
	return rc;
}

int
eng_copy_file(struct eng_ctx *c, int sfd, const char *name,
    const struct stat *st, struct eng_dir *d, bool fallback,
    struct eng_item *it)
{
	struct eng_copy_job j;
	int		 rc;

	memset(&j, 0, sizeof(j));
	j.sfd = sfd;
	j.name = name;
	j.st = *st;
	j.src = c->src;
	j.rel = c->rel;
	j.rel_len = c->rel_len;
	j.fallback = fallback;
	j.buf = c->buf;
	if (eng_copy_open(c, &j) != 0)
		return 1;
	eng_next_tmp(c, it->tmp, sizeof(it->tmp));
	it->dir = eng_dir_ref(d);
	if ((rc = eng_copy_body(c, &j, it)) != 0) {
		eng_dir_unref(it->dir);
		it->dir = NULL;
	}
	return rc;
}

/* ---- the batch ---- */

void
eng_item_free(struct eng_item *it)
{
	if (it->fd != -1 && it->kind == ENG_ITEM_FILE) {
		close(it->fd);
		it->fd = -1;
	}
	eng_dir_unref(it->dir);
	eng_dir_unref(it->self);
	free(it->rel);
	memset(it, 0, sizeof(*it));
	it->fd = -1;
}

int
eng_batch_add(struct eng_ctx *c, struct eng_item *it)
{
	struct eng_item	*n;
	size_t		 cap;

	if (c->nitems == c->items_cap) {
		cap = c->items_cap ? c->items_cap * 2 : 256;
		if ((n = realloc(c->items, cap * sizeof(*n))) == NULL) {
			eng_item_free(it);
			eng_fatal(c, ENOMEM, "queueing a file");
			return -1;
		}
		c->items = n;
		c->items_cap = cap;
	}
	c->items[c->nitems++] = *it;
	if (it->kind == ENG_ITEM_FILE) {
		c->batch_files++;
		c->batch_bytes += (uint64_t)it->st.st_size;
	}
	memset(it, 0, sizeof(*it));
	it->fd = -1;
	if (c->batch_files >= ENG_BATCH_FILES ||
	    c->batch_bytes >= ENG_BATCH_BYTES ||
	    c->nitems >= ENG_BATCH_ITEMS)
		return eng_batch_flush(c);
	return 0;
}

void
eng_batch_abort(struct eng_ctx *c)
{
	size_t	 i;

	for (i = 0; i < c->nitems; i++) {
		if (c->items[i].kind == ENG_ITEM_FILE &&
		    c->items[i].dir != NULL)
			(void)unlinkat(c->items[i].dir->fd, c->items[i].tmp,
			    0);
		eng_item_free(&c->items[i]);
	}
	c->nitems = 0;
	c->batch_files = 0;
	c->batch_bytes = 0;
	c->gen++;
}

/* ---- releasing replaced files ---- */

/*
 * A rename over an old file frees the old file's blocks inside the rename
 * when it was the last name.  Where the filesystem discards freed blocks at
 * once that is a synchronous trip to the device per file (0.1 ms for
 * blocks written long ago, 1.6 ms for blocks written in the last half
 * minute, on the virtual disk of bench/), all on the walk's thread.  So
 * the old file is held open across the rename and closed afterwards on
 * release threads, while the walk flushes the folders and commits the
 * catalogue.  The run waits for them before it ends.
 */
static void
eng_hold_old(struct eng_ctx *c, const struct eng_item *it)
{
	int	*n;
	int	 fd;
	size_t	 cap;

	if (it->version || it->dir->fresh)
		return;		/* kept as a version, or nothing there */
	if ((fd = plat_hold_file(it->dir->fd, it->rel + it->name_off)) == -1)
		return;
	if (c->nheld == c->held_cap) {
		cap = c->held_cap ? c->held_cap * 2 : 256;
		if ((n = realloc(c->held, cap * sizeof(*n))) == NULL) {
			close(fd);	/* freed in the rename, as before */
			return;
		}
		c->held = n;
		c->held_cap = cap;
	}
	c->held[c->nheld++] = fd;
}

static void *
eng_release_main(void *arg)
{
	struct eng_release	*r = arg;
	size_t			 i;

	for (i = 0; i < r->n; i++)
		close(r->fds[i]);
	return NULL;
}

/* Close the held files: on the release threads when there are enough. */
static void
eng_release_start(struct eng_ctx *c)
{
	size_t		 per, off = 0, i;
	unsigned	 k;

	if (c->nheld >= ENG_RELEASE_MIN) {
		per = (c->nheld + ENG_RELEASE_THREADS - 1) /
		    ENG_RELEASE_THREADS;
		for (k = 0; k < ENG_RELEASE_THREADS && off < c->nheld; k++) {
			c->release[k].fds = c->held + off;
			c->release[k].n = c->nheld - off < per ? c->nheld - off :
			    per;
			if (pthread_create(&c->release[k].th, NULL,
			    eng_release_main, &c->release[k]) != 0)
				break;
			off += c->release[k].n;
			c->nrel = k + 1;
		}
	}
	for (i = off; i < c->nheld; i++)	/* few, or no thread */
		close(c->held[i]);
	if (c->nrel == 0)
		c->nheld = 0;
}

void
eng_release_wait(struct eng_ctx *c)
{
	unsigned	 k;
	size_t		 i;

	for (k = 0; k < c->nrel; k++)
		pthread_join(c->release[k].th, NULL);
	if (c->nrel == 0)	/* held, never released (a fatal error) */
		for (i = 0; i < c->nheld; i++)
			close(c->held[i]);
	c->nrel = 0;
	c->nheld = 0;
}

/* Re-read a placed file from the device and compare its checksum. */
static void
eng_verify(struct eng_ctx *c, struct eng_item *it)
{
	XXH3_state_t	*xs;
	XXH128_canonical_t canon;
	ssize_t		 n;
	int		 fd;
	bool		 ok = false;

	fd = openat(it->dir->fd, it->rel + it->name_off, O_RDONLY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 || (xs = XXH3_createState()) == NULL) {
		if (fd != -1)
			close(fd);
		eng_problem(c, it->rel, it->rel_len, "verify-mismatch", true,
		    "cannot re-read the copy: %s", strerror(errno));
		it->has_cat = false;
		return;
	}
	plat_drop_cache(fd);
	XXH3_128bits_reset(xs);
	while ((n = read(fd, c->buf, ENG_BUF)) > 0)
		XXH3_128bits_update(xs, c->buf, (size_t)n);
	if (n == 0) {
		XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(xs));
		ok = memcmp(canon.digest, it->ce.sum, sizeof(it->ce.sum)) == 0;
	}
	XXH3_freeState(xs);
	close(fd);
	if (!ok) {
		eng_problem(c, it->rel, it->rel_len, "verify-mismatch", true,
		    n == 0 ? "the copy's checksum differs from the source's" :
		    "the copy could not be re-read");
		it->has_cat = false;
	}
}

static int
eng_sync_dir(struct eng_ctx *c, struct eng_dir *d)
{
	if (d == NULL || !d->touched)
		return 0;
	d->touched = false;
	if (engine_flush_mode == ENGINE_FLUSH_SYNCFS)
		return 0;
	return fsync(d->fd);
}

int
eng_batch_flush(struct eng_ctx *c)
{
	struct eng_item	*it;
	struct timespec	 ts[2];
	struct vg_err	 err;
	size_t		 i;
	int		 e;
	bool		 failed;

	if (c->nitems == 0)
		return 0;
	/* 1. the data of every temp file */
	if (c->batch_files > 0) {
		if (engine_flush_mode == ENGINE_FLUSH_SYNCFS) {
			if (plat_syncfs(c->dest_fd) == -1) {
				eng_dest_error(c, errno, "", 0, "flushing");
				goto fatal;
			}
		} else {
			for (i = 0; i < c->nitems; i++) {
				it = &c->items[i];
				if (it->kind != ENG_ITEM_FILE ||
				    fsync(it->fd) == 0)
					continue;
				e = errno;
				eng_dest_error(c, e == EINVAL ? EIO : e,
				    it->rel, it->rel_len, "flushing");
				goto fatal;
			}
		}
	}
	/* 2. keep old versions, rename into place (the old file held, to be
	   freed on the release threads), folder metadata */
	eng_release_wait(c);
	for (i = 0; i < c->nitems; i++) {
		it = &c->items[i];
		failed = false;
		if (it->kind == ENG_ITEM_FILE) {
			close(it->fd);
			it->fd = -1;
			if (it->version && eng_version(c, it->dir,
			    it->rel + it->name_off, it->rel, it->rel_len,
			    true) == -1 && errno != ENOENT) {
				eng_problem(c, it->rel, it->rel_len, "version",
				    false, "the old file could not be kept in "
				    "the versions area, so it was not "
				    "replaced: %s", strerror(errno));
				failed = true;
			}
			if (!failed)
				eng_hold_old(c, it);
			if (!failed && renameat(it->dir->fd, it->tmp,
			    it->dir->fd, it->rel + it->name_off) == -1) {
				e = errno;
				if (eng_dest_error(c, e, it->rel, it->rel_len,
				    "placing") == -1)
					goto fatal;
				failed = true;
			}
			if (failed) {
				(void)unlinkat(it->dir->fd, it->tmp, 0);
				it->has_cat = false;
				it->verify = false;
				continue;
			}
			it->dir->touched = true;
			c->res->files_copied++;
			c->res->bytes_copied += (uint64_t)it->st.st_size;
			c->res->capture[it->captured]++;
		} else if (it->kind == ENG_ITEM_DIR_META) {
			if (c->o->as_root && fchown(it->self->fd,
			    it->st.st_uid, it->st.st_gid) == -1)
				eng_problem(c, it->rel, it->rel_len,
				    "metadata", true, "cannot set the owner: "
				    "%s", strerror(errno));
			if (fchmod(it->self->fd, it->st.st_mode & 07777) ==
			    -1)
				eng_problem(c, it->rel, it->rel_len,
				    "metadata", true, "cannot set the mode: %s",
				    strerror(errno));
			ts[0] = it->st.st_atim;
			ts[1] = it->st.st_mtim;
			if (futimens(it->self->fd, ts) == -1)
				eng_problem(c, it->rel, it->rel_len,
				    "metadata", true, "cannot set the times: "
				    "%s", strerror(errno));
			it->self->touched = true;
		}
	}
	eng_release_start(c);
	/* 3. the folders (and the versions area) */
	if (engine_flush_mode == ENGINE_FLUSH_SYNCFS) {
		if (plat_syncfs(c->dest_fd) == -1) {
			eng_dest_error(c, errno, "", 0, "flushing");
			goto fatal;
		}
	}
	for (i = 0; i < c->nitems; i++) {
		it = &c->items[i];
		if (eng_sync_dir(c, it->dir) == -1 ||
		    eng_sync_dir(c, it->self) == -1) {
			eng_dest_error(c, errno, it->rel, it->rel_len,
			    "flushing the folder of");
			goto fatal;
		}
	}
	if (c->vdir != NULL && eng_sync_dir(c, c->vdir) == -1) {
		eng_dest_error(c, errno, "", 0, "flushing the versions area");
		goto fatal;
	}
	/* 4. verify */
	for (i = 0; i < c->nitems; i++) {
		it = &c->items[i];
		if (it->kind == ENG_ITEM_FILE && it->verify) {
			/* The phase says "verify" only once the sources are
			   no longer read (the service resumes apps and
			   releases snapshots on it); during the walk each
			   batch's check is part of the copy. */
			if (c->walk_done &&
			    c->prog.phase != ENGINE_PHASE_VERIFY) {
				c->prog.phase = ENGINE_PHASE_VERIFY;
				eng_progress(c, true);
			}
			eng_verify(c, it);
		}
	}
	if (c->prog.phase == ENGINE_PHASE_VERIFY && !c->walk_done)
		c->prog.phase = ENGINE_PHASE_COPY;
	/* 5. the catalogue, now that the destination holds the batch */
	if (c->cat != NULL) {
		if (catalogue_begin(c->cat, &err) == -1)
			goto catfail;
		for (i = 0; i < c->nitems; i++) {
			it = &c->items[i];
			if (!it->has_cat)
				continue;
			it->ce.name = it->rel + it->name_off;
			it->ce.name_len = it->rel_len - it->name_off;
			if (it->kind == ENG_ITEM_DEL) {
				if (catalogue_del_tree(c->cat, it->rel,
				    it->name_off ? it->name_off - 1 : 0,
				    it->ce.name, it->ce.name_len, &err) == -1)
					goto catfail;
			} else if (catalogue_put(c->cat, it->rel,
			    it->name_off ? it->name_off - 1 : 0, &it->ce,
			    &err) == -1)
				goto catfail;
		}
		if (catalogue_commit(c->cat, &err) == -1)
			goto catfail;
	}
	goto done;
catfail:
	eng_warn(c, "catalogue: %s; the run goes on without it and the next "
	    "run compares with the destination", err.msg);
	c->cat = NULL;
	c->use_cat = false;
done:
	for (i = 0; i < c->nitems; i++)
		eng_item_free(&c->items[i]);
	c->nitems = 0;
	c->batch_files = 0;
	c->batch_bytes = 0;
	c->gen++;
	return 0;
fatal:
	eng_batch_abort(c);
	return -1;
}

/* ---- hard links ---- */

static size_t
eng_link_hash(dev_t dev, ino_t ino)
{
	uint64_t k[2] = { (uint64_t)dev, (uint64_t)ino };

	return (size_t)XXH3_64bits(k, sizeof(k));
}

struct eng_link *
eng_link_find(struct eng_ctx *c, dev_t dev, ino_t ino)
{
	size_t	 i;

	if (c->links_cap == 0)
		return NULL;
	for (i = eng_link_hash(dev, ino) & (c->links_cap - 1);
	    c->links[i].rel != NULL; i = (i + 1) & (c->links_cap - 1))
		if (c->links[i].dev == dev && c->links[i].ino == ino)
			return &c->links[i];
	return NULL;
}

struct eng_link *
eng_link_add(struct eng_ctx *c, dev_t dev, ino_t ino, const char *rel,
    size_t rel_len, uint64_t gen)
{
	struct eng_link	*nv;
	size_t		 ncap, i, j;

	if (c->links_used * 2 >= c->links_cap) {
		ncap = c->links_cap ? c->links_cap * 2 : 1024;
		if ((nv = calloc(ncap, sizeof(*nv))) == NULL)
			return NULL;
		for (i = 0; i < c->links_cap; i++) {
			if (c->links[i].rel == NULL)
				continue;
			for (j = eng_link_hash(c->links[i].dev,
			    c->links[i].ino) & (ncap - 1); nv[j].rel != NULL;
			    j = (j + 1) & (ncap - 1))
				;
			nv[j] = c->links[i];
		}
		free(c->links);
		c->links = nv;
		c->links_cap = ncap;
	}
	for (i = eng_link_hash(dev, ino) & (c->links_cap - 1);
	    c->links[i].rel != NULL; i = (i + 1) & (c->links_cap - 1))
		;
	memset(&c->links[i], 0, sizeof(c->links[i]));
	if ((c->links[i].rel = malloc(rel_len + 1)) == NULL)
		return NULL;
	memcpy(c->links[i].rel, rel, rel_len);
	c->links[i].rel[rel_len] = '\0';
	c->links[i].rel_len = rel_len;
	c->links[i].dev = dev;
	c->links[i].ino = ino;
	c->links[i].gen = gen;
	c->links_used++;
	return &c->links[i];
}

void
eng_links_free(struct eng_ctx *c)
{
	size_t	 i;

	for (i = 0; i < c->links_cap; i++)
		free(c->links[i].rel);
	free(c->links);
	c->links = NULL;
	c->links_cap = c->links_used = 0;
}
