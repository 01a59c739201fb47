/*
 * archive_restore.c: restore from an archive job's archives (archive.h).
 *
 * 1. Every manifest in <dest>/.vigil/archives is read (header only) and the
 *    one for the as-of point is chosen: the newest whose run id (--as-of
 *    RUN) or time (--as-of TIME) is at or before it, else the newest.
 * 2. Its chain is followed through the parent stamps back to a full
 *    archive; a missing or unreadable link stops the restore.
 * 3. The chain's manifests are read whole and replayed oldest first: an
 *    "E ... ok" line makes its path live in that archive, a "D" line
 *    removes it, an "E ... bad" line changes nothing.
 * 4. Each archive of the chain is read in turn and each entry is written
 *    only if it is the live state of its path (so a file is written once,
 *    from the archive that holds its state at the as-of point) and it is
 *    asked for.
 *
 * Everything read is treated as hostile: manifests are checked line by
 * line (archive_manifest.c); an archive entry's path, and a hard link's
 * target, must be relative with no "." or ".." component; setuid/setgid
 * bits and device nodes, FIFOs and sockets are refused unless the caller
 * is root and asked for them (allow_special); and libarchive writes with
 * ARCHIVE_EXTRACT_SECURE_SYMLINKS | SECURE_NODOTDOT | SECURE_NOABSOLUTEPATHS
 * relative to the target folder (the process's working folder during the
 * restore, put back afterwards), so a symlink met on the way (from the
 * archive or planted at the target) is never written through.  Files are
 * written with ARCHIVE_EXTRACT_SAFE_WRITES (a temp file renamed into
 * place).  Owners are kept only with keep_owner (root).
 *
 * As root that is not enough: libarchive checks a path for symlinks and
 * then opens it by name, so a user who owns a folder of the target can
 * swap a parent for a symlink between the two and have root write into
 * root-only folders.  So as root the target folders are opened with
 * plat_open_dir_safe, and the writing happens in a forked child confined
 * to the target by chroot (see ar_extract_confined for why this and not a
 * writer of our own).
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <langinfo.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/log.h"
#include "common/platform.h"
#include "scheduler/archive.h"
#include "scheduler/archive_int.h"

struct ar_rec {
	const char	*path;		/* into a manifest's entries */
	size_t		 len;
	size_t		 seq;
	size_t		 arch;		/* chain index */
	char		 type;		/* f d l h, or 'D' */
	bool		 ok;
	bool		 done;		/* written (or deliberately skipped) */
};

struct ar_root {
	int		 fd;
	const char	*prefix;	/* dest-relative prefix it holds, "" */
	size_t		 prefix_len;	/* 0: everything */
	bool		 strip;		/* entries are written without it */
};

struct ar_ctx {
	const struct restore_opts *o;
	struct restore_result	*res;
	struct ar_rec		*live;
	size_t			 nlive;
	char			**req;		/* dest-relative requested */
	size_t			*req_len;
	size_t			 nreq;
	struct ar_root		*roots;
	size_t			 nroots;
	int			 cur_root;
	bool			 root;
	bool			 jail;		/* chroot into each root (child) */
	int			 flags;		/* archive_write_disk options */
	struct archive		*w;		/* the disk writer */
};

static void __attribute__((format(printf, 2, 3)))
ar_msg(struct ar_ctx *c, const char *fmt, ...)
{
	char **nm, *s;
	va_list ap;

	c->res->errors++;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	if (s == NULL)
		return;
	if ((nm = realloc(c->res->messages, (c->res->nmessages + 1) *
	    sizeof *nm)) == NULL) {
		free(s);
		return;
	}
	c->res->messages = nm;
	nm[c->res->nmessages++] = s;
}

static int
ar_cmp_rec(const void *a, const void *b)
{
	const struct ar_rec *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->path, y->path, n);

	if (r == 0)
		r = (x->len > y->len) - (x->len < y->len);
	if (r == 0)
		r = (x->seq > y->seq) - (x->seq < y->seq);
	return r;
}

static struct ar_rec *
ar_find(struct ar_ctx *c, const char *p, size_t len)
{
	size_t lo = 0, hi = c->nlive, mid, n;
	int r;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		n = len < c->live[mid].len ? len : c->live[mid].len;
		r = memcmp(p, c->live[mid].path, n);
		if (r == 0)
			r = (len > c->live[mid].len) - (len < c->live[mid].len);
		if (r == 0)
			return &c->live[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static bool
ar_requested(struct ar_ctx *c, const char *p, size_t len)
{
	size_t i, n;

	if (c->nreq == 0)
		return true;
	for (i = 0; i < c->nreq; i++) {
		n = c->req_len[i];
		if (n == 0 || (len >= n && memcmp(p, c->req[i], n) == 0 &&
		    (len == n || p[n] == '/')))
			return true;
	}
	return false;
}

/* Newest manifest at or before the as-of point. */
static int
ar_pick(const struct restore_opts *o, struct arc_manifest *hs, size_t n,
    size_t *out)
{
	size_t i;
	bool found = false;

	for (i = 0; i < n; i++) {
		if (o->as_of_run > 0 && hs[i].run > o->as_of_run)
			continue;
		if (o->as_of_run <= 0 && o->as_of_ms > 0 &&
		    hs[i].time_ms > o->as_of_ms)
			continue;
		if (!found || hs[i].time_ms > hs[*out].time_ms ||
		    (hs[i].time_ms == hs[*out].time_ms &&
		    hs[i].run > hs[*out].run)) {
			*out = i;
			found = true;
		}
	}
	return found ? 0 : -1;
}

/* Map a requested path (absolute under a source, or dest-relative) to a
 * dest-relative one. */
static int
ar_map_request(const struct vg_job_def *job, const char *arg, char **out)
{
	const char *src, *base, *rest;
	size_t i, n, bl;

	*out = NULL;
	if (arg[0] != '/') {
		n = strlen(arg);
		while (n > 0 && arg[n - 1] == '/')
			n--;
		if (n == 0)
			return (*out = strdup("")) != NULL ? 0 : -1;
		if (!arc_path_safe(arg, n))
			return -1;
		return (*out = strndup(arg, n)) != NULL ? 0 : -1;
	}
	for (i = 0; i < job->sources.n; i++) {
		src = job->sources.v[i];
		n = strlen(src);
		while (n > 1 && src[n - 1] == '/')
			n--;
		if (strncmp(arg, src, n) != 0 || (arg[n] != '\0' &&
		    arg[n] != '/'))
			continue;
		rest = arg + n;
		while (*rest == '/')
			rest++;
		base = src + n;
		while (base > src && base[-1] != '/')
			base--;
		bl = (size_t)(src + n - base);
		if (job->sources.n == 1) {
			if (*rest == '\0')
				return (*out = strdup("")) != NULL ? 0 : -1;
			if (!arc_path_safe(rest, strlen(rest)))
				return -1;
			return (*out = strdup(rest)) != NULL ? 0 : -1;
		}
		if (asprintf(out, "%.*s%s%s", (int)bl, base, *rest ? "/" : "",
		    rest) == -1) {
			*out = NULL;
			return -1;
		}
		if (!arc_path_safe(*out, strlen(*out))) {
			free(*out);
			*out = NULL;
			return -1;
		}
		return 0;
	}
	return -1;
}

static int	ar_open_target_path(const char *path, bool create);

/*
 * Open (creating it, and missing parents, where needed) a target folder;
 * -1 with err set, or with errno ENOENT and err untouched when it is
 * missing and create is false.  As root through plat_open_dir_safe: no
 * folder a user owns can send it into root's or another user's folders.
 */
static int
ar_open_target(const char *path, bool create, bool root,
    struct vg_err *err)
{
	struct vg_err perr;
	char *esc;
	int fd;

	if (root) {
		vg_err_clear(&perr);
		fd = plat_open_dir_safe(path, create ? PLAT_DIR_MKDIR |
		    PLAT_DIR_PRIVATE : 0, &perr);
		if (fd == -1 && (create || errno != ENOENT)) {
			/* perr names the path and the component */
			vg_err_set_at(err, perr.code, perr.sys_errno, __func__,
			    "restore target %s", perr.msg);
			errno = perr.sys_errno != 0 ? perr.sys_errno : EPERM;
		}
		return fd;
	}
	fd = ar_open_target_path(path, create);
	if (fd == -1 && (create || errno != ENOENT)) {
		esc = log_escape(path);
		vg_err_sys(err, "restore target %s", esc ? esc : "?");
		free(esc);
	}
	return fd;
}

/* A user's target, by path: whatever a symlink there leads to, she could
 * write herself. */
static int
ar_open_target_path(const char *path, bool create)
{
	char *p, *s;
	int fd;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1 ||
	    !create || errno != ENOENT)
		return fd;
	if ((p = strdup(path)) == NULL)
		return -1;
	for (s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) == -1 && errno != EEXIST) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return -1;
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The root that receives dest-relative path p; *strip: bytes to drop. */
static struct ar_root *
ar_root_for(struct ar_ctx *c, const char *p, size_t len)
{
	size_t i;

	for (i = 0; i < c->nroots; i++)
		if (c->roots[i].prefix_len == 0 ||
		    (len >= c->roots[i].prefix_len &&
		    memcmp(p, c->roots[i].prefix, c->roots[i].prefix_len) ==
		    0 && (len == c->roots[i].prefix_len ||
		    p[c->roots[i].prefix_len] == '/')))
			return &c->roots[i];
	return NULL;
}

static int
ar_copy_data(struct archive *r, struct archive *w)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int rc;

	while ((rc = archive_read_data_block(r, &buf, &len, &off)) ==
	    ARCHIVE_OK)
		if (archive_write_data_block(w, buf, len, off) < ARCHIVE_WARN)
			return -1;
	return rc == ARCHIVE_EOF ? 0 : -1;
}

/* A disk writer with the restore's options.  No user or group lookup is
 * set (archive_write_disk_set_standard_lookup is never called): owners
 * are numeric, so nothing reads the passwd or group files (or loads NSS
 * modules), which inside the confined child would be the user's. */
static int
ar_writer_new(struct ar_ctx *c)
{
	if ((c->w = archive_write_disk_new()) == NULL)
		return -1;
	if (archive_write_disk_set_options(c->w, c->flags) != ARCHIVE_OK) {
		archive_write_free(c->w);
		c->w = NULL;
		return -1;
	}
	return 0;
}

/* Set the folders' modes and times (libarchive does it at close, by the
 * names relative to the target it wrote them in) and drop the writer. */
static void
ar_writer_finish(struct ar_ctx *c)
{
	if (c->w == NULL)
		return;
	if (archive_write_close(c->w) != ARCHIVE_OK)
		ar_msg(c, "finishing folders: %s",
		    archive_error_string(c->w));
	archive_write_free(c->w);
	c->w = NULL;
}

/*
 * Make rt the folder entries are written relative to: the working folder,
 * and in the confined child the root folder too.  Leaving another root
 * first finishes its folders there, with a new writer for this one.
 */
static int
ar_enter_root(struct ar_ctx *c, const struct ar_root *rt)
{
	if (c->cur_root == rt->fd)
		return 0;
	if (c->cur_root != -1) {
		ar_writer_finish(c);
		if (ar_writer_new(c) == -1) {
			ar_msg(c, "restore: out of memory");
			return -1;
		}
	}
	if (fchdir(rt->fd) == -1) {
		ar_msg(c, "cannot enter the target folder: %s",
		    strerror(errno));
		return -1;
	}
	/* fchdir to an fd escapes an earlier chroot, then "." is the new
	 * root: each root confines the entries written into it */
	if (c->jail && chroot(".") == -1) {
		ar_msg(c, "cannot confine the restore to the target folder "
		    "(chroot: %s); nothing more is written", strerror(errno));
		return -1;
	}
	c->cur_root = rt->fd;
	return 0;
}

/* Extract what is live in chain archive idx from the file it names. */
static int
ar_extract(struct ar_ctx *c, int destfd, const struct arc_manifest *m,
    size_t idx)
{
	struct archive *w;
	struct archive *r = NULL;
	struct archive_entry *e;
	struct ar_rec *lv, *tl;
	struct ar_root *rt;
	struct stat st;
	const char *p, *hl, *what;
	char *esc = NULL, *np = NULL, *nh = NULL;
	size_t plen, hlen;
	mode_t ft;
	int fd, rc, ret = -1;
	FILE *out = c->o->out;

	if ((fd = openat(destfd, m->archive, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		esc = log_escape(m->archive);
		ar_msg(c, "archive %s: %s (hint: restore as of a run whose "
		    "chain is complete)", esc ? esc : "?", strerror(errno));
		free(esc);
		return -1;
	}
	if ((r = archive_read_new()) == NULL)
		goto out;
	/* only the filters vigil writes (tar.gz, tar.zst; zip has none),
	 * in-process: filter_all would also run programs (lzop, lrzip,
	 * grzip, ...) found by PATH, which in the confined child are the
	 * user's files */
	if (archive_read_support_filter_gzip(r) != ARCHIVE_OK ||
	    archive_read_support_filter_zstd(r) != ARCHIVE_OK) {
		esc = log_escape(m->archive);
		ar_msg(c, "archive %s: this libarchive cannot read gzip and "
		    "zstd by itself", esc ? esc : "?");
		goto out;
	}
	archive_read_support_format_all(r);
	if (archive_read_open_fd(r, fd, 256 * 1024) != ARCHIVE_OK) {
		esc = log_escape(m->archive);
		ar_msg(c, "archive %s: %s", esc ? esc : "?",
		    archive_error_string(r));
		goto out;
	}
	for (;;) {
		rc = archive_read_next_header(r, &e);
		if (rc == ARCHIVE_EOF)
			break;
		if (rc < ARCHIVE_WARN) {
			esc = log_escape(m->archive);
			ar_msg(c, "archive %s: %s", esc ? esc : "?",
			    archive_error_string(r));
			goto out;
		}
		free(esc);
		esc = NULL;
		p = archive_entry_pathname(e);
		if (p == NULL)
			continue;
		plen = strlen(p);
		while (plen > 1 && p[plen - 1] == '/')
			plen--;
		esc = log_escape_len(p, plen);
		if (!arc_path_safe(p, plen)) {
			ar_msg(c, "%s: refused: the archive names a path "
			    "outside the target (absolute, or with . or ..)",
			    esc ? esc : "?");
			continue;
		}
		if ((lv = ar_find(c, p, plen)) == NULL || lv->arch != idx ||
		    lv->done || !ar_requested(c, p, plen))
			continue;
		lv->done = true;
		ft = archive_entry_filetype(e);
		hl = archive_entry_hardlink(e);
		what = NULL;
		if (ft != AE_IFREG && ft != AE_IFDIR && ft != AE_IFLNK &&
		    hl == NULL && !(c->root && c->o->allow_special))
			what = "a device node, FIFO or socket";
		else if ((archive_entry_mode(e) & (S_ISUID | S_ISGID)) != 0 &&
		    !(c->root && c->o->allow_special))
			what = "a setuid or setgid file";
		if (what != NULL) {
			ar_msg(c, "%s: refused: %s (hint: as root, "
			    "--allow-special restores it)", esc ? esc : "?",
			    what);
			continue;
		}
		if ((lv->type == 'h') != (hl != NULL) ||
		    (lv->type == 'd') != (ft == AE_IFDIR)) {
			ar_msg(c, "%s: the archive's entry is not what its "
			    "manifest says; not restored", esc ? esc : "?");
			continue;
		}
		if ((rt = ar_root_for(c, p, plen)) == NULL) {
			ar_msg(c, "%s: belongs to no source of the job; not "
			    "restored", esc ? esc : "?");
			continue;
		}
		if (hl != NULL) {
			hlen = strlen(hl);
			if (!arc_path_safe(hl, hlen) ||
			    (tl = ar_find(c, hl, hlen)) == NULL ||
			    tl->arch != idx || ar_root_for(c, hl, hlen) != rt) {
				ar_msg(c, "%s: refused: a hard link to a path "
				    "outside what this restore writes",
				    esc ? esc : "?");
				continue;
			}
		}
		free(np);
		free(nh);
		np = nh = NULL;
		if ((np = strndup(rt->strip ? p + rt->prefix_len +
		    (plen > rt->prefix_len ? 1 : 0) : p, plen -
		    (rt->strip ? rt->prefix_len + (plen > rt->prefix_len ?
		    1 : 0) : 0))) == NULL)
			goto out;
		if (np[0] == '\0')
			continue;	/* a source root: it exists */
		if (hl != NULL && (nh = strdup(rt->strip ? hl +
		    rt->prefix_len + 1 : hl)) == NULL)
			goto out;
		/* into the target first (confined, as root), so that even
		 * the look below resolves inside it */
		if (!c->o->dry_run && ar_enter_root(c, rt) == -1)
			goto out;
		w = c->w;
		if (!c->o->overwrite && ft != AE_IFDIR &&
		    fstatat(rt->fd, np, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !S_ISDIR(st.st_mode) && (st.st_mtim.tv_sec >
		    archive_entry_mtime(e) || (st.st_mtim.tv_sec ==
		    archive_entry_mtime(e) && st.st_mtim.tv_nsec >
		    archive_entry_mtime_nsec(e)))) {
			c->res->files_skipped_newer++;
			if (out != NULL)
				fprintf(out, "skip (newer) %s\n",
				    esc ? esc : "?");
			continue;
		}
		if (c->o->dry_run) {
			if (out != NULL)
				fprintf(out, "restore %s\n", esc ? esc : "?");
			c->res->files_restored++;
			continue;
		}
		/* SAFE_WRITES' temp name adds to the last component: a name
		 * near NAME_MAX is written in place instead */
		{
			const char *base = strrchr(np, '/');

			base = base != NULL ? base + 1 : np;
			(void)archive_write_disk_set_options(w, strlen(base) >
			    200 ? c->flags & ~ARCHIVE_EXTRACT_SAFE_WRITES :
			    c->flags);
		}
		archive_entry_set_pathname(e, np);
		if (nh != NULL)
			archive_entry_set_hardlink(e, nh);
		if (!c->o->keep_owner) {
			archive_entry_set_uid(e, geteuid());
			archive_entry_set_gid(e, getegid());
			archive_entry_set_uname(e, NULL);
			archive_entry_set_gname(e, NULL);
		}
		rc = archive_write_header(w, e);
		if (rc >= ARCHIVE_WARN && archive_entry_size(e) > 0 &&
		    hl == NULL)
			rc = ar_copy_data(r, w) == 0 ? ARCHIVE_OK :
			    ARCHIVE_FAILED;
		if (rc >= ARCHIVE_WARN)
			rc = archive_write_finish_entry(w);
		if (rc < ARCHIVE_WARN) {
			ar_msg(c, "%s: %s", esc ? esc : "?",
			    archive_error_string(w) ? archive_error_string(w) :
			    "cannot be written");
			if (rc == ARCHIVE_FATAL)
				goto out;
			continue;
		}
		if (ft != AE_IFDIR) {
			c->res->files_restored++;
			c->res->bytes += (uint64_t)archive_entry_size(e);
		}
		if (out != NULL)
			fprintf(out, "restored %s\n", esc ? esc : "?");
	}
	ret = 0;
out:
	free(esc);
	free(np);
	free(nh);
	if (r != NULL)
		archive_read_free(r);
	close(fd);
	return ret;
}

/*
 * Extract the whole chain in this process; *reached: the chain index the
 * extraction stopped at (nchain when every archive was read).  -1 only
 * when no writer could be made.
 */
static int
ar_extract_chain(struct ar_ctx *c, int destfd, const struct arc_manifest *chain,
    size_t nchain, size_t *reached)
{
	size_t i;

	if (ar_writer_new(c) == -1)
		return -1;
	for (i = 0; i < nchain; i++)
		if (ar_extract(c, destfd, &chain[i], i) == -1)
			break;
	ar_writer_finish(c);
	*reached = i;
	return 0;
}

/* What the confined child sends back: these, then each message (its
 * length, then its bytes), then one byte per live entry (done or not). */
struct ar_report {
	uint64_t	magic;
	uint64_t	reached;
	uint64_t	files_restored;
	uint64_t	files_skipped_newer;
	uint64_t	bytes;
	uint64_t	errors;
	uint64_t	nmessages;
};
#define AR_REPORT_MAGIC	0x76676c6172657374ULL

static int
ar_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The child's side: run the chain confined, report, exit. */
static void __attribute__((noreturn))
ar_child(struct ar_ctx *c, int destfd, const struct arc_manifest *chain,
    size_t nchain, int wfd)
{
	struct restore_result base = *c->res;
	struct ar_report rep;
	size_t i, reached = 0;
	uint32_t len;
	uint8_t b;
	iconv_t cd;

	/*
	 * libarchive converts UTF-8 names in pax headers and zip entries to
	 * the locale's charset with iconv, whose configuration and modules
	 * glibc loads by absolute path on first use.  Load them here, from
	 * the real root, and keep the converter open: inside the target they
	 * would be the user's files.
	 */
	cd = iconv_open(nl_langinfo(CODESET), "UTF-8");
	(void)cd;
	c->jail = true;
	if (ar_extract_chain(c, destfd, chain, nchain, &reached) == -1)
		ar_msg(c, "restore: out of memory");
	memset(&rep, 0, sizeof rep);
	rep.magic = AR_REPORT_MAGIC;
	rep.reached = reached;
	rep.files_restored = c->res->files_restored - base.files_restored;
	rep.files_skipped_newer = c->res->files_skipped_newer -
	    base.files_skipped_newer;
	rep.bytes = c->res->bytes - base.bytes;
	rep.errors = c->res->errors - base.errors;
	rep.nmessages = c->res->nmessages - base.nmessages;
	if (ar_write_all(wfd, &rep, sizeof rep) == -1)
		_exit(1);
	for (i = base.nmessages; i < c->res->nmessages; i++) {
		len = (uint32_t)strlen(c->res->messages[i]);
		if (ar_write_all(wfd, &len, sizeof len) == -1 ||
		    ar_write_all(wfd, c->res->messages[i], len) == -1)
			_exit(1);
	}
	for (i = 0; i < c->nlive; i++) {
		b = c->live[i].done ? 1 : 0;
		if (ar_write_all(wfd, &b, 1) == -1)
			_exit(1);
	}
	if (c->o->out != NULL)
		fflush(c->o->out);
	_exit(0);
}

/* Take the child's report from buf (n bytes); -1 when it is cut short. */
static int
ar_take_report(struct ar_ctx *c, const char *buf, size_t n, size_t *reached)
{
	struct ar_report rep;
	const char *p = buf, *end = buf + n;
	uint32_t len;
	uint64_t k;
	size_t i;

	if (n < sizeof rep)
		return -1;
	memcpy(&rep, p, sizeof rep);
	p += sizeof rep;
	if (rep.magic != AR_REPORT_MAGIC)
		return -1;
	c->res->files_restored += rep.files_restored;
	c->res->files_skipped_newer += rep.files_skipped_newer;
	c->res->bytes += rep.bytes;
	for (k = 0; k < rep.nmessages; k++) {
		if ((size_t)(end - p) < sizeof len)
			return -1;
		memcpy(&len, p, sizeof len);
		p += sizeof len;
		if ((size_t)(end - p) < len)
			return -1;
		ar_msg(c, "%.*s", (int)len, p);	/* counts one error */
		c->res->errors--;
		p += len;
	}
	c->res->errors += rep.errors;
	if ((size_t)(end - p) != c->nlive)
		return -1;
	for (i = 0; i < c->nlive; i++)
		c->live[i].done = p[i] != 0;
	*reached = (size_t)rep.reached;
	return 0;
}

/*
 * As root: extract the chain in a forked child that has chroot()ed into
 * each target folder (opened by plat_open_dir_safe) before writing in it.
 *
 * Why a confined child rather than a writer of our own with openat: every
 * path libarchive resolves then starts at, and cannot leave, the target
 * folder; a symlink swapped in for a parent, absolute or with "..", lands
 * inside the target (which the user could write anyway), whatever
 * libarchive checks or opens and in whatever order.  libarchive keeps
 * doing all it does today (SECURE_* flags, safe writes, sparse files,
 * modes, times, xattrs, hard links, folder fix-ups, its messages), so a
 * restore as root gives the same files as before; a writer of our own
 * would have to re-do all of that and would drift from the user's restore.
 * What a chroot needs: owners are numeric only (ar_writer_new), the iconv
 * modules are loaded before (ar_child), and the child leaves with _exit.
 * The parent is never confined, and the child changes nothing of its own.
 */
static int
ar_extract_confined(struct ar_ctx *c, int destfd,
    const struct arc_manifest *chain, size_t nchain, size_t *reached,
    struct vg_err *err)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t n;
	pid_t pid;
	int pfd[2] = { -1, -1 }, status, rc = -1;

	*reached = 0;
	if (pipe2(pfd, O_CLOEXEC) == -1) {
		vg_err_sys(err, "restore: cannot make a pipe");
		return -1;
	}
	fflush(NULL);	/* nothing buffered is written twice */
	if ((pid = fork()) == -1) {
		vg_err_sys(err, "restore: cannot start the confined writer");
		goto out;
	}
	if (pid == 0) {
		close(pfd[0]);
		ar_child(c, destfd, chain, nchain, pfd[1]);
	}
	close(pfd[1]);
	pfd[1] = -1;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			if ((nb = realloc(buf, cap)) == NULL) {
				vg_err_sys(err, "restore: out of memory");
				close(pfd[0]);
				pfd[0] = -1;
				(void)waitpid(pid, &status, 0);
				goto out;
			}
			buf = nb;
		}
		if ((n = read(pfd[0], buf + len, cap - len)) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR) {
			status = -1;
			break;
		}
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    ar_take_report(c, buf, len, reached) == -1) {
		if (status != -1 && WIFSIGNALED(status))
			ar_msg(c, "the confined restore writer was killed by "
			    "signal %d; what it wrote is in place, the rest "
			    "is not restored", WTERMSIG(status));
		else
			ar_msg(c, "the confined restore writer failed (exit "
			    "%d); what it wrote is in place, the rest is not "
			    "restored", status != -1 && WIFEXITED(status) ?
			    WEXITSTATUS(status) : -1);
		*reached = 0;
	}
	rc = 0;
out:
	if (pfd[0] != -1)
		close(pfd[0]);
	if (pfd[1] != -1)
		close(pfd[1]);
	free(buf);
	return rc;
}

int
archive_restore(const struct restore_opts *o, struct restore_result *res,
    struct vg_err *err)
{
	const struct vg_job_def *job;
	struct ar_ctx c;
	struct arc_manifest *hs = NULL, *chain = NULL, *nh;
	struct ar_rec *recs = NULL;
	struct dirent *de;
	struct vg_err merr;
	DIR *d = NULL;
	size_t nhs = 0, caph = 0, nchain = 0, nrecs = 0, i, k, pick = 0, j, n;
	int destfd = -1, metafd = -1, cwd = -1, rc = -1, flags, dfd;
	char *esc = NULL;
	const char *want;

	memset(&c, 0, sizeof c);
	memset(res, 0, sizeof *res);
	c.o = o;
	c.res = res;
	c.cur_root = -1;
	c.root = geteuid() == 0;
	job = o->job;
	if (o->keep_owner && !c.root) {
		vg_err_set(err, VG_ERR_PERM, "restore: keeping the backed-up "
		    "owners needs root (hint: drop --keep-owner)");
		return -1;
	}
	if (o->allow_special && !c.root) {
		vg_err_set(err, VG_ERR_PERM, "restore: --allow-special needs "
		    "root (setuid files and device nodes are never restored "
		    "by other users)");
		return -1;
	}
	if ((destfd = open(job->destination, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		esc = log_escape(job->destination);
		vg_err_sys(err, "destination %s of job %s", esc ? esc : "?",
		    job->name);
		goto out;
	}
	if ((metafd = plat_open_beneath(destfd, ARC_MANIFEST_DIR, O_RDONLY |
	    O_DIRECTORY, 0)) == -1) {
		vg_err_set(err, VG_ERR_NOTFOUND, "job %s has no archives yet "
		    "(no %s folder in its destination)", job->name,
		    ARC_MANIFEST_DIR);
		goto out;
	}

	/* 1. the manifests */
	if ((dfd = dup(metafd)) == -1 || (d = fdopendir(dfd)) == NULL) {
		if (dfd != -1)
			close(dfd);
		vg_err_sys(err, "listing the archive manifests");
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (n <= 9 || de->d_name[0] == '.' ||
		    strcmp(de->d_name + n - 9, ".manifest") != 0)
			continue;
		if (nhs == caph) {
			caph = caph ? caph * 2 : 16;
			if ((nh = realloc(hs, caph * sizeof *hs)) == NULL)
				goto nomem;
			hs = nh;
		}
		if (arc_manifest_read(metafd, de->d_name, true, &hs[nhs],
		    &merr) == -1) {
			log_warnx("%s", merr.msg);
			continue;
		}
		nhs++;
	}
	if (nhs == 0 || ar_pick(o, hs, nhs, &pick) == -1) {
		vg_err_set(err, VG_ERR_NOTFOUND, "job %s: no archive %s "
		    "(hint: vigil history %s lists the runs)", job->name,
		    o->as_of_run > 0 || o->as_of_ms > 0 ? "at or before the "
		    "--as-of point" : "was found", job->name);
		goto out;
	}

	/* 2. the chain, newest first while following parents */
	if ((chain = calloc(nhs, sizeof *chain)) == NULL)
		goto nomem;
	for (k = pick;;) {
		if (nchain == nhs) {
			vg_err_set(err, VG_ERR_PARSE, "job %s: the archive "
			    "manifests form a loop", job->name);
			goto out;
		}
		{
			char *fn = NULL;

			if (asprintf(&fn, "%s.manifest", hs[k].stamp) == -1)
				goto nomem;
			rc = arc_manifest_read(metafd, fn, false,
			    &chain[nchain], err);
			free(fn);
			if (rc == -1)
				goto out;
			rc = -1;
		}
		nchain++;
		if (hs[k].full)
			break;
		want = hs[k].parent;
		for (j = 0; j < nhs; j++)
			if (strcmp(hs[j].stamp, want) == 0)
				break;
		if (j == nhs) {
			esc = log_escape(want);
			vg_err_set(err, VG_ERR_NOTFOUND, "job %s: archive "
			    "manifest %s, which run %lld builds on, is missing "
			    "or unreadable; restore as of an earlier run",
			    job->name, esc ? esc : "?", (long long)hs[k].run);
			goto out;
		}
		k = j;
	}
	/* oldest first */
	for (i = 0; i < nchain / 2; i++) {
		struct arc_manifest t = chain[i];

		chain[i] = chain[nchain - 1 - i];
		chain[nchain - 1 - i] = t;
	}

	/* 3. the live state */
	for (i = 0, n = 0; i < nchain; i++)
		n += chain[i].n;
	if (n > 0 && (recs = calloc(n, sizeof *recs)) == NULL)
		goto nomem;
	for (i = 0; i < nchain; i++)
		for (j = 0; j < chain[i].n; j++) {
			recs[nrecs].path = chain[i].v[j].path;
			recs[nrecs].len = chain[i].v[j].len;
			recs[nrecs].seq = nrecs;
			recs[nrecs].arch = i;
			recs[nrecs].type = chain[i].v[j].type;
			recs[nrecs].ok = chain[i].v[j].ok;
			nrecs++;
		}
	if (nrecs > 1)
		qsort(recs, nrecs, sizeof *recs, ar_cmp_rec);
	for (i = 0; i < nrecs; ) {
		struct ar_rec *st = NULL;

		for (j = i; j < nrecs && recs[j].len == recs[i].len &&
		    memcmp(recs[j].path, recs[i].path, recs[i].len) == 0; j++) {
			if (recs[j].type == 'D')
				st = NULL;
			else if (recs[j].ok)
				st = &recs[j];
		}
		if (st != NULL)
			recs[c.nlive++] = *st;	/* c.nlive <= i, safe */
		i = j;
	}
	c.live = recs;

	/* the requested paths */
	if (o->npaths > 0) {
		if ((c.req = calloc(o->npaths, sizeof *c.req)) == NULL ||
		    (c.req_len = calloc(o->npaths, sizeof *c.req_len)) == NULL)
			goto nomem;
		for (i = 0; i < o->npaths; i++) {
			if (ar_map_request(job, o->paths[i], &c.req[i]) == -1) {
				esc = log_escape(o->paths[i]);
				vg_err_set(err, VG_ERR_INVALID, "restore: %s is "
				    "neither under a source of job %s nor a "
				    "clean path relative to its destination",
				    esc ? esc : "?", job->name);
				goto out;
			}
			c.req_len[i] = strlen(c.req[i]);
			c.nreq++;
		}
	}

	/* where to */
	n = o->to != NULL || job->sources.n == 1 ? 1 : job->sources.n;
	if ((c.roots = calloc(n, sizeof *c.roots)) == NULL)
		goto nomem;
	for (i = 0; i < n; i++)
		c.roots[i].fd = -1;
	c.nroots = n;
	if (n == 1) {
		c.roots[0].fd = ar_open_target(o->to != NULL ? o->to :
		    job->sources.v[0], !o->dry_run, c.root, err);
		if (c.roots[0].fd == -1 && (!o->dry_run || errno != ENOENT))
			goto out;
		c.roots[0].prefix = "";
	} else {
		for (i = 0; i < n; i++) {
			const char *src = job->sources.v[i], *b;
			size_t sl = strlen(src);

			while (sl > 1 && src[sl - 1] == '/')
				sl--;
			b = src + sl;
			while (b > src && b[-1] != '/')
				b--;
			c.roots[i].prefix = b;
			c.roots[i].prefix_len = (size_t)(src + sl - b);
			c.roots[i].strip = true;
			if ((esc = strndup(src, sl)) == NULL)
				goto nomem;
			c.roots[i].fd = ar_open_target(esc, !o->dry_run,
			    c.root, err);
			if (c.roots[i].fd == -1 && (!o->dry_run ||
			    errno != ENOENT))
				goto out;
			free(esc);
			esc = NULL;
		}
	}

	/* 4. extract */
	flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
	    ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SPARSE |
	    ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
	    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
	    ARCHIVE_EXTRACT_SAFE_WRITES;
	if (o->keep_owner)
		flags |= ARCHIVE_EXTRACT_OWNER;
	c.flags = flags;
	if (c.root && !o->dry_run) {
		if (ar_extract_confined(&c, destfd, chain, nchain, &i,
		    err) == -1)
			goto out;
	} else {
		if ((cwd = open(".", O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) == -1 && (cwd = open("/", O_RDONLY |
		    O_DIRECTORY | O_CLOEXEC)) == -1) {
			vg_err_sys(err, "restore: cannot note the working "
			    "folder");
			goto out;
		}
		if (ar_extract_chain(&c, destfd, chain, nchain, &i) == -1)
			goto nomem;
		if (fchdir(cwd) == -1)
			log_warn("cannot return to the working folder");
	}
	/* live entries the archives did not hold */
	if (i == nchain)
		for (j = 0; j < c.nlive; j++)
			if (!c.live[j].done && ar_requested(&c,
			    c.live[j].path, c.live[j].len) &&
			    ar_root_for(&c, c.live[j].path,
			    c.live[j].len) != NULL) {
				esc = log_escape_len(c.live[j].path,
				    c.live[j].len);
				ar_msg(&c, "%s: listed in the manifest of %s but "
				    "missing from the archive", esc ? esc : "?",
				    chain[c.live[j].arch].archive);
				free(esc);
				esc = NULL;
			}
	rc = res->errors > 0 ? -1 : 0;
	if (rc == -1 && err != NULL && err->msg[0] == '\0')
		vg_err_set(err, VG_ERR_ARCHIVE, "job %s: %llu entr%s could "
		    "not be restored", job->name,
		    (unsigned long long)res->errors,
		    res->errors == 1 ? "y" : "ies");
	goto out;
nomem:
	vg_err_sys(err, "restore: out of memory");
out:
	if (cwd != -1)
		close(cwd);
	if (d != NULL)
		closedir(d);
	for (i = 0; i < nhs; i++)
		arc_manifest_free(&hs[i]);
	free(hs);
	for (i = 0; i < nchain; i++)
		arc_manifest_free(&chain[i]);
	free(chain);
	free(recs);
	for (i = 0; i < c.nreq; i++)
		free(c.req[i]);
	free(c.req);
	free(c.req_len);
	for (i = 0; i < c.nroots; i++)
		if (c.roots[i].fd != -1)
			close(c.roots[i].fd);
	free(c.roots);
	if (metafd != -1)
		close(metafd);
	if (destfd != -1)
		close(destfd);
	free(esc);
	return rc;
}
