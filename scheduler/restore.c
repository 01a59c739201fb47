/*
 * restore.c: bring files back from a backup or mirror destination
 * (restore.h; the layout is in docs/architecture.md).
 *
 * Each requested path becomes a list of candidates: the entries of the
 * current destination under it, plus every file the versions area holds
 * under it in stamps after the as-of point (files deleted since).  Each
 * candidate is resolved to its state at that point: the earliest event
 * after it decides (a version: restore that content; an `.added` entry,
 * for the path or one of its parents: the path did not exist), and with no
 * event the current destination entry stands.
 *
 * Every target is reached by opening one component at a time with
 * O_DIRECTORY|O_NOFOLLOW from the target root, and written to a temp file
 * in its own folder that is renamed over the final name; so a symlink
 * planted anywhere in a target path is never written through.  Reading the
 * destination walks the same way.  As root, the target root itself is
 * opened with plat_open_dir_safe (rs_open_unit_safe): a folder a user owns
 * on the way to it cannot lead the restore into root's or another user's
 * folders through a symlink.
 *
 * Durability, in batches like the engine's (docs/architecture.md,
 * "Durability protocol"): up to RS_BATCH_FILES temp files or RS_BATCH_BYTES
 * are written complete (content, owner, xattrs, mode, mtime) without an
 * fsync each; then one syncfs() per filesystem the batch writes to; only
 * then each temp is renamed over its target; then each folder the batch
 * renamed into is fsync'd once.  A crash at any point leaves every target
 * old or new, never partly written (a leftover .vigil-restore-* temp file
 * at worst).  When syncfs fails, each temp is fsync'd on its own instead.
 *
 * "Unchanged": a target is left alone only when it has the backup copy's
 * type, size and mtime (ns) AND the same content (compared byte for byte;
 * a symlink's target text), the same mode (and owner with keep_owner), the
 * same restorable xattrs, and, for a hard-link member, is already a link
 * to the group's first restored name.  Size and mtime alone are not
 * trusted: an edit that keeps both would otherwise be skipped, and restore
 * is rare enough that reading both files is an acceptable cost.  A target
 * whose mtime is newer than the backup copy's is skipped unless overwrite.
 *
 * Extended attributes of files and of the folders restore creates are
 * restored (not those of symlinks, which the engine does not keep).
 * security.* and trusted.* ones only when restore runs as root; a target
 * filesystem without xattrs or ACLs gets a message, not an error.
 *
 * Hard links: entries read from the same place (the current destination,
 * or one versions stamp) that share (st_dev, st_ino) form a group; the
 * first name is restored as a file and the others are hard-linked to it
 * (linkat through folder fds, after the first name is in place).  Where a
 * link cannot be made (another filesystem, EPERM, EMLINK, the first name
 * failed) the name gets its own copy.  Folders the restore creates get
 * their mode, xattrs and mtime at the end (deepest first).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/platform.h"
#include "scheduler/archive.h"
#include "scheduler/restore.h"

#define RS_COPY_BUF	(256 * 1024)
#define RS_TMP_TRIES	1000
#define RS_BATCH_FILES	256
#define RS_BATCH_BYTES	(64 * 1024 * 1024)

struct rs_strv {
	char	**v;
	size_t	  n, cap;
};

/* One versions stamp after the as-of point. */
struct rs_stamp {
	char		*name;		/* YYYYMMDDTHHMMSSZ-rN */
	int64_t		 run;
	int64_t		 ms;
	bool		 has_dir;
	bool		 has_added;
	struct rs_strv	 added;		/* sorted dest-relative paths */
	struct rs_strv	 versions;	/* sorted, non-directories only */
};

/* Where the dest-relative prefix dprefix is written: troot. */
struct rs_unit {
	const char	*dprefix;	/* "" = the destination root */
	char		*troot;		/* target root path, as text */
	int		 tfd;		/* -1: missing (dry run only) */
	bool		 used;
};

struct rs_req {
	const char	*arg;		/* as given ("" for everything) */
	char		*rel;		/* dest-relative, "" = the root */
	size_t		 unit;
};

/* A folder the restore created: mode, xattrs and mtime are set at the
 * end, xattrs read again from the backup folder src of place. */
struct rs_dirfix {
	size_t		 unit;
	char		*trel;
	int		 place;
	char		*src;
	mode_t		 mode;
	struct timespec	 mtime;
	uid_t		 uid;
	gid_t		 gid;
};

enum rs_kind { RS_CURRENT, RS_VERSION, RS_ABSENT };

/*
 * Places entries are read from: RS_PLACE_DEST is the current destination,
 * a place >= 0 is the versions stamp ev[place].
 */
#define RS_PLACE_DEST	(-1)

/* A folder the current batch writes into, opened once per batch. */
struct rs_bdir {
	int		 fd;
	dev_t		 dev;
	ino_t		 ino;
	int		 syncerr;	/* syncfs of its filesystem failed */
	bool		 touched;	/* something was renamed into it */
	size_t		 unit;
	char		*trel;		/* the folder, target-relative */
};

enum rs_ikind { RS_IT_COPY, RS_IT_LINK };

/* One pending target of the batch. */
struct rs_item {
	enum rs_ikind	 kind;
	size_t		 dir;		/* bdirs index */
	char		*tname;		/* final name in that folder */
	char		 tmp[64];	/* RS_IT_COPY: the finished temp */
	bool		 isfile;	/* regular file (else a symlink) */
	bool		 rmdir_first;	/* an empty folder is in the way */
	char		*dtgt;		/* escaped display of the target */
	size_t		 group;		/* link group, or SIZE_MAX */
	bool		 leader;	/* RS_IT_COPY: the group's first name */
	size_t		 unit;		/* the target, target-relative */
	char		*trel;
	int		 place;		/* RS_IT_LINK: the backup copy, */
	char		*src;		/* to copy it if linking fails */
};

/* Hard-link groups: backup entries of one place sharing an inode. */
enum rs_gstate {
	RS_G_NONE,		/* no name of the group is at the target */
	RS_G_PENDING,		/* the first name waits in the batch */
	RS_G_READY		/* the first name is in place */
};

struct rs_group {
	int		 place;
	dev_t		 sdev;
	ino_t		 sino;
	enum rs_gstate	 state;
	size_t		 unit;		/* the first name at the target */
	char		*trel;
	dev_t		 tdev;
	ino_t		 tino;
};

struct rs_ctx {
	const struct restore_opts *o;
	struct restore_result	*res;
	char			*dest;		/* destination, no trailing / */
	int			 destfd;
	int			 versfd;	/* .vigil/versions or -1 */
	struct rs_stamp		*ev;		/* ascending by run id */
	size_t			 nev;
	struct rs_unit		*units;
	size_t			 nunits;
	struct rs_req		*reqs;
	size_t			 nreqs;
	struct rs_dirfix	*fix;
	size_t			 nfix;
	bool			 chown;		/* keep_owner as root */
	bool			 root;		/* running as root */
	unsigned		 tmpn;
	char			 asof[96];	/* " as of ...", or "" */
	char			*buf, *buf2;	/* RS_COPY_BUF each */
	struct rs_bdir		*bdirs;		/* the batch */
	size_t			 nbdirs, capbdirs;
	struct rs_item		*items;
	size_t			 nitems, capitems;
	uint64_t		 bbytes;
	struct rs_group		*groups;
	size_t			 ngroups;
	size_t			*gtab;		/* hash: group index + 1 */
	size_t			 gcap;		/* a power of two, or 0 */
	bool			 warned_xattr_nosup;
	bool			 warned_xattr_priv;
};

static int
rs_strv_push(struct rs_strv *sv, char *s)
{
	char **nv;
	size_t ncap;

	if (sv->n == sv->cap) {
		ncap = sv->cap ? sv->cap * 2 : 64;
		if ((nv = reallocarray(sv->v, ncap, sizeof *nv)) == NULL)
			return -1;
		sv->v = nv;
		sv->cap = ncap;
	}
	sv->v[sv->n++] = s;
	return 0;
}

static void
rs_strv_free(struct rs_strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	memset(sv, 0, sizeof *sv);
}

static int
rs_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates. */
static void
rs_strv_sort(struct rs_strv *sv)
{
	size_t i, j;

	if (sv->n == 0)
		return;
	qsort(sv->v, sv->n, sizeof *sv->v, rs_cmp);
	for (i = 1, j = 1; i < sv->n; i++) {
		if (strcmp(sv->v[i], sv->v[j - 1]) == 0)
			free(sv->v[i]);
		else
			sv->v[j++] = sv->v[i];
	}
	sv->n = j;
}

static bool
rs_strv_has(const struct rs_strv *sv, const char *s)
{
	if (sv->n == 0)
		return false;
	return bsearch(&s, sv->v, sv->n, sizeof *sv->v, rs_cmp) != NULL;
}

/* "a" + "/" + "b", either may be empty.  NULL on ENOMEM. */
static char *
rs_join(const char *a, const char *b)
{
	char *s;

	if (*a == '\0')
		return strdup(b);
	if (*b == '\0')
		return strdup(a);
	if (asprintf(&s, "%s/%s", a, b) == -1)
		return NULL;
	return s;
}

/* Escaped display of a/b/c (empty parts left out).  Never NULL. */
static char *
rs_disp(const char *a, const char *b, const char *c)
{
	char *ab = NULL, *abc = NULL, *e = NULL;

	if ((ab = rs_join(a, b != NULL ? b : "")) != NULL &&
	    (abc = rs_join(ab, c != NULL ? c : "")) != NULL)
		e = log_escape(abc);
	free(ab);
	free(abc);
	return e != NULL ? e : strdup("?");
}

static void __attribute__((format(printf, 3, 0)))
rs_vmsg(struct rs_ctx *c, bool error, const char *fmt, va_list ap)
{
	struct restore_result *r = c->res;
	char **nv, *m = NULL;

	if (error)
		r->errors++;
	if (vasprintf(&m, fmt, ap) == -1)
		return;
	if (c->o->out != NULL)
		fprintf(c->o->out, "%s%s\n", error ? "error: " : "", m);
	if ((nv = reallocarray(r->messages, r->nmessages + 1,
	    sizeof *nv)) == NULL) {
		free(m);
		return;
	}
	r->messages = nv;
	r->messages[r->nmessages++] = m;
}

/* A per-file failure: counted, kept, printed.  Text must be escaped. */
static void __attribute__((format(printf, 2, 3)))
rs_fail(struct rs_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rs_vmsg(c, true, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3)))
rs_note(struct rs_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rs_vmsg(c, false, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3)))
rs_line(struct rs_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->o->out == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(c->o->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->o->out);
}

/*
 * Clean a path given by the user: split at '/', drop empty and "."
 * components, refuse "..".  *out is the components joined by '/' (no
 * leading or trailing slash; "" for the root).  Returns -1 with *why set.
 */
static int
rs_clean(const char *in, char **out, const char **why)
{
	const char *p = in, *q;
	char *s, *w;
	size_t n;

	*out = NULL;
	if ((s = w = malloc(strlen(in) + 1)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	while (*p != '\0') {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		q = strchr(p, '/');
		n = q != NULL ? (size_t)(q - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			free(s);
			*why = "'..' is not allowed in a restore path";
			return -1;
		}
		if (!(n == 1 && p[0] == '.')) {
			if (w != s)
				*w++ = '/';
			memcpy(w, p, n);
			w += n;
		}
		p += n;
	}
	*w = '\0';
	*out = s;
	return 0;
}

static const char *
rs_base(const char *clean)
{
	const char *s = strrchr(clean, '/');

	return s != NULL ? s + 1 : clean;
}

/* Engine temp files (.vigil-tmp-<run>-<n>) and our own are not data. */
static bool
rs_is_tmp(const char *name)
{
	const char *p;
	int parts = 0;

	if (strncmp(name, ".vigil-restore-", 15) == 0)
		return true;
	if (strncmp(name, ".vigil-tmp-", 11) != 0)
		return false;
	for (p = name + 11; *p != '\0'; p++) {
		if (*p == '-' && p[-1] != '-' && p != name + 11)
			parts++;
		else if (*p < '0' || *p > '9')
			return false;
	}
	return parts == 1 && p[-1] != '-';
}

/*
 * Open the folder rel (len bytes, components separated by '/') below
 * rootfd, one component at a time with O_NOFOLLOW.  create: make missing
 * folders (mode 0777 & ~umask).  Returns 0 with *fdp open, 1 when a
 * component is missing (not created), -1 with *ferr (ELOOP: a symlink,
 * ENOTDIR: not a folder, else errno) and *faillen = the length of the
 * prefix of rel up to and including the failing component.
 */
static int
rs_walk(int rootfd, const char *rel, size_t len, bool create, int *fdp,
    size_t *faillen, int *ferr)
{
	char name[NAME_MAX + 1];
	const char *p = rel, *end = rel + len, *slash;
	struct stat st;
	size_t n = 0;
	int fd = -1, nfd, e;

	*fdp = -1;
	*faillen = 0;
	*ferr = 0;
	if (rootfd == -1)
		return 1;
	if ((fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0)) == -1) {
		*ferr = errno;
		return -1;
	}
	while (p < end) {
		slash = memchr(p, '/', (size_t)(end - p));
		n = (size_t)((slash != NULL ? slash : end) - p);
		if (n == 0) {
			p++;
			continue;
		}
		if (n > NAME_MAX) {
			e = ENAMETOOLONG;
			goto fail;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (nfd == -1 && errno == ENOENT && create) {
			if (mkdirat(fd, name, 0777) == -1 && errno != EEXIST) {
				e = errno;
				goto fail;
			}
			nfd = openat(fd, name, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd == -1) {
			e = errno;
			if (e == ENOENT && !create) {
				close(fd);
				return 1;
			}
			if (e == ELOOP || e == ENOTDIR) {
				if (fstatat(fd, name, &st,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
				    S_ISLNK(st.st_mode))
					e = ELOOP;
				else
					e = ENOTDIR;
			}
			goto fail;
		}
		close(fd);
		fd = nfd;
		p += n;
	}
	*fdp = fd;
	return 0;
fail:
	*faillen = (size_t)(p - rel) + n;
	*ferr = e;
	close(fd);
	return -1;
}

/* Explain a failed rs_walk of rel under root (all raw). */
static void
rs_walk_fail(struct rs_ctx *c, const char *root, const char *rel,
    size_t faillen, int e, const char *what)
{
	char *part = NULL, *dpart, *dall;

	if ((part = strndup(rel, faillen)) == NULL)
		part = NULL;
	dpart = rs_disp(root, part != NULL ? part : "", NULL);
	dall = rs_disp(root, rel, NULL);
	if (e == ELOOP)
		rs_fail(c, "%s: %s is a symlink; restore never writes "
		    "through one (hint: remove or rename the link, or restore "
		    "with --to DIR)", dall, dpart);
	else if (e == ENOTDIR)
		rs_fail(c, "%s: %s is not a folder (hint: move it away, or "
		    "restore with --to DIR)", dall, dpart);
	else
		rs_fail(c, "%s: cannot %s %s: %s", dall, what, dpart,
		    strerror(e));
	free(part);
	free(dpart);
	free(dall);
}

/* Split rel into its folder part (length) and last component. */
static const char *
rs_split(const char *rel, size_t *dirlen)
{
	const char *s = strrchr(rel, '/');

	if (s == NULL) {
		*dirlen = 0;
		return rel;
	}
	*dirlen = (size_t)(s - rel);
	return s + 1;
}

/* Collect every entry below dfd (prefix: its dest-relative path). */
#define RS_COLLECT_DIRS		0x1	/* list folders too */
#define RS_COLLECT_SKIPVIGIL	0x2	/* skip .vigil at the top */

static int
rs_collect(struct rs_ctx *c, int dfd, const char *prefix, int flags,
    const char *dispbase, struct rs_strv *out)
{
	DIR *d = NULL;
	struct dirent *de;
	struct stat st;
	char *path = NULL, *dd;
	int fd, sub, rc = -1;
	bool isdir;

	if ((fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0)) == -1 ||
	    (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		dd = rs_disp(dispbase, prefix, NULL);
		rs_fail(c, "%s: cannot list folder: %s", dd, strerror(errno));
		free(dd);
		return 0;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0) {
				dd = rs_disp(dispbase, prefix, NULL);
				rs_fail(c, "%s: cannot list folder: %s", dd,
				    strerror(errno));
				free(dd);
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 || rs_is_tmp(de->d_name))
			continue;
		if ((flags & RS_COLLECT_SKIPVIGIL) && *prefix == '\0' &&
		    strcmp(de->d_name, ".vigil") == 0)
			continue;
		if ((path = rs_join(prefix, de->d_name)) == NULL)
			goto out;
		isdir = de->d_type == DT_DIR;
		if (de->d_type == DT_UNKNOWN)
			isdir = fstatat(dirfd(d), de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
		if (isdir) {
			sub = openat(dirfd(d), de->d_name, O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub == -1) {
				dd = rs_disp(dispbase, path, NULL);
				rs_fail(c, "%s: cannot open folder: %s", dd,
				    strerror(errno));
				free(dd);
			} else {
				if (rs_collect(c, sub, path, flags, dispbase,
				    out) == -1) {
					close(sub);
					goto out;
				}
				close(sub);
			}
			if (!(flags & RS_COLLECT_DIRS)) {
				free(path);
				path = NULL;
				continue;
			}
		}
		if (rs_strv_push(out, path) == -1)
			goto out;
		path = NULL;
	}
	rc = 0;
out:
	free(path);
	closedir(d);
	return rc;
}

/* Parse "YYYYMMDDTHHMMSSZ-r<id>" (len bytes). */
static int
rs_parse_stamp(const char *s, size_t len, int64_t *run, int64_t *ms)
{
	struct tm tm;
	int64_t id = 0;
	size_t i;
	int v[6], w[6] = { 4, 2, 2, 2, 2, 2 }, k, j;
	const char *p = s;
	time_t t;

	if (len < 19 || s[8] != 'T' || s[15] != 'Z' || s[16] != '-' ||
	    s[17] != 'r')
		return -1;
	for (k = 0; k < 6; k++) {
		if (k == 3)
			p++;	/* 'T' */
		v[k] = 0;
		for (j = 0; j < w[k]; j++, p++) {
			if (*p < '0' || *p > '9')
				return -1;
			v[k] = v[k] * 10 + (*p - '0');
		}
	}
	for (i = 18; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || id > (INT64_MAX - 9) / 10)
			return -1;
		id = id * 10 + (s[i] - '0');
	}
	if (id <= 0)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 60 || (t = timegm(&tm)) == (time_t)-1)
		return -1;
	*run = id;
	*ms = (int64_t)t * 1000;
	return 0;
}

/* A manifest path is usable if it is relative and has no "..". */
static bool
rs_manifest_ok(const char *p)
{
	const char *q;

	if (*p == '\0' || *p == '/')
		return false;
	for (q = p; *q != '\0'; q = strchr(q, '/') + 1) {
		if (q[0] == '.' && q[1] == '.' && (q[2] == '/' || q[2] == '\0'))
			return false;
		if (strchr(q, '/') == NULL)
			break;
	}
	return true;
}

static int
rs_load_added(struct rs_ctx *c, struct rs_stamp *s, struct vg_err *err)
{
	char *name = NULL, *buf = NULL, *p, *end, *dup;
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd = -1, rc = -1;

	if (asprintf(&name, "%s.added", s->name) == -1) {
		vg_err_set(err, VG_ERR_SYS, "out of memory");
		goto out;
	}
	if ((fd = openat(c->versfd, name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC | O_NONBLOCK)) == -1 || fstat(fd, &st) == -1) {
		vg_err_sys(err, "%s/.vigil/versions/%s", c->dest, name);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		vg_err_set(err, VG_ERR_INVALID, "%s/.vigil/versions/%s: not "
		    "a regular file (hint: the versions area is damaged; "
		    "restore without --as-of)", c->dest, name);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		vg_err_set(err, VG_ERR_SYS, "out of memory");
		goto out;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			vg_err_sys(err, "%s/.vigil/versions/%s", c->dest,
			    name);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	for (p = buf, end = buf + len; p < end; p += strlen(p) + 1) {
		if (!rs_manifest_ok(p))
			continue;
		if ((dup = strdup(p)) == NULL ||
		    rs_strv_push(&s->added, dup) == -1) {
			free(dup);
			vg_err_set(err, VG_ERR_SYS, "out of memory");
			goto out;
		}
	}
	rs_strv_sort(&s->added);
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(name);
	free(buf);
	return rc;
}

static int
rs_stamp_cmp(const void *a, const void *b)
{
	const struct rs_stamp *x = a, *y = b;

	if (x->run != y->run)
		return x->run < y->run ? -1 : 1;
	if (x->ms != y->ms)
		return x->ms < y->ms ? -1 : 1;
	return 0;
}

static bool
rs_after(const struct rs_ctx *c, int64_t run, int64_t ms)
{
	if (c->o->as_of_run > 0)
		return run > c->o->as_of_run;
	return ms > c->o->as_of_ms;
}

/* Read .vigil/versions: the stamps after the as-of point. */
static int
rs_load_events(struct rs_ctx *c, struct vg_err *err)
{
	DIR *d = NULL;
	struct dirent *de;
	struct rs_stamp *s, *nv;
	size_t i, len, faillen;
	int64_t run, ms;
	int fd = -1, ferr, sub, r, rc = -1;
	bool added;
	char *disp;

	r = rs_walk(c->destfd, ".vigil/versions", 15, false, &c->versfd,
	    &faillen, &ferr);
	if (r == 1)
		return 0;	/* no versions kept yet */
	if (r == -1) {
		disp = log_escape(c->dest);
		if (ferr == ELOOP || ferr == ENOTDIR)
			vg_err_set(err, VG_ERR_INVALID, "%s/.vigil/versions: "
			    "a part of it is %s; the versions area is damaged "
			    "(hint: restore without --as-of, and let the next "
			    "run of job %s rebuild it)", disp != NULL ? disp :
			    "?", ferr == ELOOP ? "a symlink" : "not a folder",
			    c->o->job->name);
		else {
			errno = ferr;
			vg_err_sys(err, "%s/.vigil/versions",
			    disp != NULL ? disp : "?");
		}
		free(disp);
		return -1;
	}
	if ((fd = fcntl(c->versfd, F_DUPFD_CLOEXEC, 0)) == -1 ||
	    (d = fdopendir(fd)) == NULL) {
		vg_err_sys(err, "%s/.vigil/versions", c->dest);
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		added = len > 6 && strcmp(de->d_name + len - 6, ".added") == 0;
		if (added)
			len -= 6;
		if (rs_parse_stamp(de->d_name, len, &run, &ms) == -1 ||
		    !rs_after(c, run, ms))
			continue;
		for (i = 0; i < c->nev; i++)
			if (strlen(c->ev[i].name) == len &&
			    strncmp(c->ev[i].name, de->d_name, len) == 0)
				break;
		if (i == c->nev) {
			if ((nv = reallocarray(c->ev, c->nev + 1,
			    sizeof *nv)) == NULL)
				goto nomem;
			c->ev = nv;
			s = &c->ev[c->nev];
			memset(s, 0, sizeof *s);
			if ((s->name = strndup(de->d_name, len)) == NULL)
				goto nomem;
			c->nev++;
			s->run = run;
			s->ms = ms;
		}
		if (added)
			c->ev[i].has_added = true;
		else
			c->ev[i].has_dir = true;
	}
	if (c->nev > 0)
		qsort(c->ev, c->nev, sizeof *c->ev, rs_stamp_cmp);
	for (i = 0; i < c->nev; i++) {
		s = &c->ev[i];
		if (s->has_added && rs_load_added(c, s, err) == -1)
			goto out;
		if (!s->has_dir)
			continue;
		sub = openat(c->versfd, s->name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (sub == -1) {
			vg_err_sys(err, "%s/.vigil/versions/%s", c->dest,
			    s->name);
			goto out;
		}
		if (asprintf(&disp, "%s/.vigil/versions/%s", c->dest,
		    s->name) == -1) {
			close(sub);
			goto nomem;
		}
		r = rs_collect(c, sub, "", 0, disp, &s->versions);
		free(disp);
		close(sub);
		if (r == -1)
			goto nomem;
		rs_strv_sort(&s->versions);
	}
	rc = 0;
	goto out;
nomem:
	vg_err_set(err, VG_ERR_SYS, "out of memory");
out:
	closedir(d);
	return rc;
}

/*
 * The state of p at the as-of point: the earliest event after it decides.
 * Returns -1 on ENOMEM.
 */
static int
rs_resolve(struct rs_ctx *c, const char *p, enum rs_kind *kind, size_t *stamp)
{
	const struct rs_stamp *s;
	char *buf, *q;
	size_t i;
	bool gone;

	*kind = RS_CURRENT;
	if (c->nev == 0 || *p == '\0')
		return 0;
	if ((buf = strdup(p)) == NULL)
		return -1;
	for (i = 0; i < c->nev; i++) {
		s = &c->ev[i];
		if (rs_strv_has(&s->versions, p)) {
			*kind = RS_VERSION;
			*stamp = i;
			break;
		}
		gone = rs_strv_has(&s->added, p);
		/* a parent created by that run, or then a file */
		for (q = buf; !gone && (q = strchr(q, '/')) != NULL; q++) {
			*q = '\0';
			gone = rs_strv_has(&s->added, buf) ||
			    rs_strv_has(&s->versions, buf);
			*q = '/';
		}
		if (gone) {
			*kind = RS_ABSENT;
			break;
		}
	}
	free(buf);
	return 0;
}

/* The next temp name in a target folder. */
static void
rs_tmp_name(struct rs_ctx *c, char *tmp, size_t tmpsz)
{
	snprintf(tmp, tmpsz, ".vigil-restore-%ld-%u", (long)getpid(),
	    c->tmpn++);
}

/* Temp name in the target folder; returns fd (files) or 0 (links). */
static int
rs_tmp_create(struct rs_ctx *c, int pfd, char *tmp, size_t tmpsz,
    const char *linkto)
{
	int i, fd;

	for (i = 0; i < RS_TMP_TRIES; i++) {
		rs_tmp_name(c, tmp, tmpsz);
		if (linkto != NULL)
			fd = symlinkat(linkto, pfd, tmp);
		else
			fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL |
			    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

/* Hard-link lname (in lfd, never followed) as a temp name in pfd. */
static int
rs_tmp_link(struct rs_ctx *c, int lfd, const char *lname, int pfd, char *tmp,
    size_t tmpsz)
{
	int i;

	for (i = 0; i < RS_TMP_TRIES; i++) {
		rs_tmp_name(c, tmp, tmpsz);
		if (linkat(lfd, lname, pfd, tmp, 0) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

/* Copy [off, end) of in to out. */
static int
rs_copy_range(int in, int out, off_t off, off_t end, char *buf)
{
	ssize_t n, w, done;
	off_t oi, oo;
	bool cfr = true;

	while (off < end) {
		if (cfr) {
			oi = oo = off;
			n = plat_copy_range(in, &oi, out, &oo,
			    (size_t)(end - off));
			if (n > 0) {
				off += n;
				continue;
			}
			if (n == 0)
				break;	/* file shrank: stop at its end */
			if (errno == EINTR)
				continue;
			if (errno != EXDEV && errno != EINVAL &&
			    errno != ENOSYS && errno != EOPNOTSUPP &&
			    errno != EPERM && errno != ETXTBSY &&
			    errno != EBADF)
				return -1;
			cfr = false;
		}
		n = pread(in, buf, (size_t)(end - off) < RS_COPY_BUF ?
		    (size_t)(end - off) : RS_COPY_BUF, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		for (done = 0; done < n; done += w) {
			w = pwrite(out, buf + done, (size_t)(n - done),
			    off + done);
			if (w == -1 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w == -1)
				return -1;
		}
		off += n;
	}
	return 0;
}

/* Copy in to out keeping holes; out ends up exactly size bytes. */
static int
rs_copy_sparse(struct rs_ctx *c, int in, int out, off_t size)
{
	off_t off = 0, data, hole;
	int r;

	while (off < size) {
		r = plat_next_data(in, off, size, &data, &hole);
		if (r == 0)
			break;		/* a hole up to the end */
		if (r == -1) {
			data = off;	/* holes unknown: copy the rest */
			hole = size;
		}
		if (rs_copy_range(in, out, data, hole, c->buf) == -1)
			return -1;
		off = hole;
	}
	return ftruncate(out, size);
}

/* Read up to len bytes at off, short only at the end of the file. */
static ssize_t
rs_pread_full(int fd, char *buf, size_t len, off_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, buf + got, len - got, off + (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* 1 when a and b hold the same size bytes, 0 when not, -1 on errors. */
static int
rs_same_content(struct rs_ctx *c, int a, int b, off_t size)
{
	off_t off = 0;
	ssize_t na, nb;
	size_t want;

	while (off < size) {
		want = (size_t)(size - off) < RS_COPY_BUF ?
		    (size_t)(size - off) : RS_COPY_BUF;
		if ((na = rs_pread_full(a, c->buf, want, off)) == -1 ||
		    (nb = rs_pread_full(b, c->buf2, want, off)) == -1)
			return -1;
		if ((size_t)na != want || (size_t)nb != want ||
		    memcmp(c->buf, c->buf2, want) != 0)
			return 0;
		off += (off_t)want;
	}
	return 1;
}

/* Do the symlinks sname (in spfd) and tname (in tpfd) hold the same text? */
static bool
rs_same_link(struct rs_ctx *c, int spfd, const char *sname, int tpfd,
    const char *tname)
{
	ssize_t a, b;

	if ((a = readlinkat(spfd, sname, c->buf, RS_COPY_BUF)) == -1 ||
	    (b = readlinkat(tpfd, tname, c->buf2, RS_COPY_BUF)) == -1)
		return false;
	return a == b && a < RS_COPY_BUF && memcmp(c->buf, c->buf2,
	    (size_t)a) == 0;
}

static mode_t
rs_mode(const struct rs_ctx *c, mode_t m)
{
	m &= 07777;
	if (!c->chown)
		m &= ~(mode_t)(S_ISUID | S_ISGID);
	return m;
}

/* ---- extended attributes ---- */

static bool
rs_xattr_priv(const char *name)
{
	return strncmp(name, "security.", 9) == 0 ||
	    strncmp(name, "trusted.", 8) == 0;
}

/* Would this restore set the xattr name? */
static bool
rs_xattr_wanted(const struct rs_ctx *c, const char *name)
{
	return c->root || !rs_xattr_priv(name);
}

/*
 * Copy the xattrs of the backup entry sfd to the target tfd (dtgt: its
 * escaped display).  A target without xattrs, and privileged ones that
 * this restore may not set, give one message per run; other failures are
 * errors of that target.
 */
static void
rs_copy_xattrs(struct rs_ctx *c, int sfd, int tfd, const char *dtgt)
{
	char *names = NULL, *p, *dn = NULL;
	void *val = NULL;
	size_t len = 0, vlen;

	if (plat_xattr_list(sfd, &names, &len) == -1) {
		if (errno != ENOTSUP && errno != EOPNOTSUPP)
			rs_fail(c, "%s: cannot list the extended attributes of "
			    "the backup copy: %s", dtgt, strerror(errno));
		return;
	}
	for (p = names; p != NULL && p < names + len; p += strlen(p) + 1) {
		if (*p == '\0')
			continue;
		free(dn);
		if ((dn = log_escape(p)) == NULL)
			break;
		free(val);
		val = NULL;
		if (!rs_xattr_wanted(c, p)) {
			if (!c->warned_xattr_priv)
				rs_note(c, "%s: extended attributes such as %s "
				    "are restored only when restore runs as "
				    "root; left out", dtgt, dn);
			c->warned_xattr_priv = true;
		} else if (plat_xattr_get(sfd, p, &val, &vlen) == -1) {
			if (errno != ENODATA)
				rs_fail(c, "%s: cannot read extended attribute "
				    "%s of the backup copy: %s", dtgt, dn,
				    strerror(errno));
		} else if (plat_xattr_set(tfd, p, val, vlen) == -1) {
			if (errno == ENOTSUP || errno == EOPNOTSUPP) {
				if (!c->warned_xattr_nosup)
					rs_note(c, "%s: the target filesystem "
					    "does not support extended "
					    "attribute %s (or ACLs); such "
					    "attributes are not restored", dtgt,
					    dn);
				c->warned_xattr_nosup = true;
			} else if ((errno == EPERM || errno == EACCES) &&
			    rs_xattr_priv(p)) {
				if (!c->warned_xattr_priv)
					rs_note(c, "%s: extended attribute %s "
					    "needs privileges this restore "
					    "lacks; left out", dtgt, dn);
				c->warned_xattr_priv = true;
			} else
				rs_fail(c, "%s: cannot set extended attribute "
				    "%s: %s", dtgt, dn, strerror(errno));
		}
	}
	free(dn);
	free(val);
	free(names);
}

/*
 * Do sfd and tfd carry the same xattrs, among those restore would set?  A
 * target that cannot have xattrs counts as the same: there is nothing a
 * restore could change.
 */
static bool
rs_xattrs_same(const struct rs_ctx *c, int sfd, int tfd)
{
	char *sn = NULL, *tn = NULL, *p;
	void *sv = NULL, *tv = NULL;
	size_t sl = 0, tl = 0, svl, tvl, ns = 0, nt = 0;
	bool same = false;

	if (plat_xattr_list(tfd, &tn, &tl) == -1)
		return errno == ENOTSUP || errno == EOPNOTSUPP;
	/* ENOTSUP and EOPNOTSUPP are one value on Linux, not everywhere:
	 * NOLINTNEXTLINE(misc-redundant-expression) */
	if (plat_xattr_list(sfd, &sn, &sl) == -1 && errno != ENOTSUP &&
	    errno != EOPNOTSUPP)
		goto out;
	for (p = tn; p != NULL && p < tn + tl; p += strlen(p) + 1)
		if (*p != '\0' && rs_xattr_wanted(c, p))
			nt++;
	for (p = sn; p != NULL && p < sn + sl; p += strlen(p) + 1) {
		if (*p == '\0' || !rs_xattr_wanted(c, p))
			continue;
		ns++;
		if (plat_xattr_get(sfd, p, &sv, &svl) == -1 ||
		    plat_xattr_get(tfd, p, &tv, &tvl) == -1 || svl != tvl ||
		    (svl > 0 && memcmp(sv, tv, svl) != 0))
			goto out;
		free(sv);
		free(tv);
		sv = tv = NULL;
	}
	same = ns == nt;
out:
	free(sn);
	free(tn);
	free(sv);
	free(tv);
	return same;
}

/* ---- hard-link groups ---- */

static size_t
rs_ghash(int place, dev_t dev, ino_t ino)
{
	uint64_t h;

	h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL;
	h ^= ((uint64_t)dev + (uint64_t)(place + 2)) * 0xc2b2ae3d27d4eb4fULL;
	h ^= h >> 29;
	return (size_t)h;
}

/* The link group of the backup file sst read from place, made when new.
 * -1 on ENOMEM. */
static int
rs_group_get(struct rs_ctx *c, int place, const struct stat *sst, size_t *gi)
{
	struct rs_group *ng, *g;
	size_t *nt, ncap, i, k, mask;

	if ((c->ngroups + 1) * 2 > c->gcap) {
		ncap = c->gcap != 0 ? c->gcap * 2 : 64;
		/* groups grow with the table: half its size is enough */
		if ((ng = reallocarray(c->groups, ncap / 2,
		    sizeof *ng)) == NULL)
			return -1;
		c->groups = ng;
		if ((nt = calloc(ncap, sizeof *nt)) == NULL)
			return -1;
		for (i = 0; i < c->ngroups; i++) {
			g = &c->groups[i];
			for (k = rs_ghash(g->place, g->sdev, g->sino) &
			    (ncap - 1); nt[k] != 0; k = (k + 1) & (ncap - 1))
				;
			nt[k] = i + 1;
		}
		free(c->gtab);
		c->gtab = nt;
		c->gcap = ncap;
	}
	mask = c->gcap - 1;
	for (k = rs_ghash(place, sst->st_dev, sst->st_ino) & mask;
	    c->gtab[k] != 0; k = (k + 1) & mask) {
		g = &c->groups[c->gtab[k] - 1];
		if (g->place == place && g->sdev == sst->st_dev &&
		    g->sino == sst->st_ino) {
			*gi = c->gtab[k] - 1;
			return 0;
		}
	}
	g = &c->groups[c->ngroups];
	memset(g, 0, sizeof *g);
	g->place = place;
	g->sdev = sst->st_dev;
	g->sino = sst->st_ino;
	g->state = RS_G_NONE;
	c->gtab[k] = c->ngroups + 1;
	*gi = c->ngroups++;
	return 0;
}

/* Make the target trel of unit (dev, ino) the first name of group gi. */
static int
rs_group_lead(struct rs_ctx *c, size_t gi, enum rs_gstate state, size_t unit,
    const char *trel, dev_t dev, ino_t ino)
{
	struct rs_group *g = &c->groups[gi];
	char *s;

	if ((s = strdup(trel)) == NULL)
		return -1;
	free(g->trel);
	g->trel = s;
	g->unit = unit;
	g->tdev = dev;
	g->tino = ino;
	g->state = state;
	return 0;
}

/* ---- writing one target ---- */

/* A place's root: the destination, or a versions stamp.  -1 with errno. */
static int
rs_open_place(struct rs_ctx *c, int place)
{
	if (place == RS_PLACE_DEST)
		return fcntl(c->destfd, F_DUPFD_CLOEXEC, 0);
	return openat(c->versfd, c->ev[place].name, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
}

static void
rs_fail_write(struct rs_ctx *c, const char *dtgt, const char *what, int e)
{
	rs_fail(c, "%s: %s: %s%s", dtgt, what, strerror(e),
	    e == ENOSPC || e == EDQUOT ? " (hint: free space there, or "
	    "restore with --to DIR elsewhere)" :
	    e == EACCES || e == EPERM ? " (hint: restore runs as you; use "
	    "--to DIR for a folder you may write)" :
	    e == ENOTEMPTY ? " (hint: move the folder away)" : "");
}

/*
 * Make a complete temp copy, in the folder dfd, of the backup entry: a
 * symlink (sname in spfd) or a file (open as in): content, owner, xattrs,
 * mode, mtime; not flushed.  tmp gets its name, *tst (files, may be NULL)
 * its stat.  With outfd (files) the temp stays open there for the caller.
 * On failure returns -1 with *what and errno and leaves no temp behind.
 */
static int
rs_fill(struct rs_ctx *c, int in, int spfd, const char *sname,
    const struct stat *sst, int dfd, char *tmp, size_t tmpsz,
    const char *dtgt, struct stat *tst, int *outfd, const char **what)
{
	struct timespec ts[2];
	char *link = NULL;
	ssize_t n;
	size_t cap;
	int out = -1, rc = -1, e;
	bool made = false;

	if (outfd != NULL)
		*outfd = -1;
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = sst->st_mtim;
	if (S_ISLNK(sst->st_mode)) {
		*what = "cannot read the backup symlink";
		for (cap = (size_t)sst->st_size + 1 < 256 ? 256 :
		    (size_t)sst->st_size + 1;; cap *= 2) {
			free(link);
			if ((link = malloc(cap)) == NULL)
				goto out;
			if ((n = readlinkat(spfd, sname, link, cap)) == -1)
				goto out;
			if ((size_t)n < cap) {
				link[n] = '\0';
				break;
			}
		}
		*what = "cannot create the symlink";
		if (rs_tmp_create(c, dfd, tmp, tmpsz, link) == -1)
			goto out;
		made = true;
		*what = "cannot set the owner";
		if (c->chown && fchownat(dfd, tmp, sst->st_uid, sst->st_gid,
		    AT_SYMLINK_NOFOLLOW) == -1)
			goto out;
		*what = "cannot set the mtime";
		if (utimensat(dfd, tmp, ts, AT_SYMLINK_NOFOLLOW) == -1)
			goto out;
	} else {
		*what = "cannot create a temp file";
		if ((out = rs_tmp_create(c, dfd, tmp, tmpsz, NULL)) == -1)
			goto out;
		made = true;
		*what = "cannot copy";
		if (rs_copy_sparse(c, in, out, sst->st_size) == -1)
			goto out;
		c->res->bytes += (uint64_t)sst->st_size;
		/* owner first: chown clears security.capability */
		*what = "cannot set the owner";
		if (c->chown && fchown(out, sst->st_uid, sst->st_gid) == -1)
			goto out;
		rs_copy_xattrs(c, in, out, dtgt);
		/* mode after xattrs: it sets an ACL's mask as backed up */
		*what = "cannot set the mode";
		if (fchmod(out, rs_mode(c, sst->st_mode)) == -1)
			goto out;
		*what = "cannot set the mtime";
		if (futimens(out, ts) == -1)
			goto out;
		if (tst != NULL && fstat(out, tst) == -1)
			goto out;
	}
	rc = 0;
out:
	e = errno;
	if (out != -1 && (rc == -1 || outfd == NULL)) {
		if (close(out) == -1 && rc == 0) {
			*what = "cannot write";
			e = errno;
			rc = -1;
		}
		out = -1;
	}
	if (rc == -1 && made)
		unlinkat(dfd, tmp, 0);
	if (rc == 0 && outfd != NULL)
		*outfd = out;
	free(link);
	errno = e;
	return rc;
}

/* ---- the batch ---- */

/* Add the target folder fd (taken over: kept or closed) to the batch. */
static int
rs_batch_dir(struct rs_ctx *c, int fd, size_t unit, const char *trel,
    size_t tdl, size_t *di)
{
	struct rs_bdir *nv, *d;
	struct stat st;
	size_t i, ncap;

	if (fstat(fd, &st) == -1)
		goto fail;
	for (i = c->nbdirs; i-- > 0;) {
		if (c->bdirs[i].dev == st.st_dev &&
		    c->bdirs[i].ino == st.st_ino) {
			close(fd);
			*di = i;
			return 0;
		}
	}
	if (c->nbdirs == c->capbdirs) {
		ncap = c->capbdirs != 0 ? c->capbdirs * 2 : 16;
		if ((nv = reallocarray(c->bdirs, ncap, sizeof *nv)) == NULL)
			goto fail;
		c->bdirs = nv;
		c->capbdirs = ncap;
	}
	d = &c->bdirs[c->nbdirs];
	memset(d, 0, sizeof *d);
	if ((d->trel = strndup(trel, tdl)) == NULL)
		goto fail;
	d->fd = fd;
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	d->unit = unit;
	*di = c->nbdirs++;
	return 0;
fail:
	close(fd);
	return -1;
}

static int
rs_batch_push(struct rs_ctx *c, const struct rs_item *it)
{
	struct rs_item *nv;
	size_t ncap;

	if (c->nitems == c->capitems) {
		ncap = c->capitems != 0 ? c->capitems * 2 : 64;
		if ((nv = reallocarray(c->items, ncap, sizeof *nv)) == NULL)
			return -1;
		c->items = nv;
		c->capitems = ncap;
	}
	c->items[c->nitems++] = *it;
	return 0;
}

static void
rs_item_clear(struct rs_item *it)
{
	free(it->tname);
	free(it->dtgt);
	free(it->src);
	free(it->trel);
	memset(it, 0, sizeof *it);
}

/* Rename a finished temp into place. */
static void
rs_commit_copy(struct rs_ctx *c, struct rs_item *it)
{
	struct rs_bdir *d = &c->bdirs[it->dir];
	const char *what = "cannot flush";
	int fd, e, rc = -1;

	if (d->syncerr != 0 && it->isfile) {
		/* syncfs failed: this temp on its own, then */
		if ((fd = openat(d->fd, it->tmp, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC)) == -1)
			goto out;
		if (fsync(fd) == -1) {
			e = errno;
			close(fd);
			errno = e;
			goto out;
		}
		close(fd);
	}
	what = "cannot remove the folder in the way";
	if (it->rmdir_first && unlinkat(d->fd, it->tname, AT_REMOVEDIR) ==
	    -1 && errno != ENOENT)
		goto out;
	what = "cannot rename into place";
	if (renameat(d->fd, it->tmp, d->fd, it->tname) == -1)
		goto out;
	d->touched = true;
	c->res->files_restored++;
	rc = 0;
out:
	if (it->leader)
		c->groups[it->group].state = rc == 0 ? RS_G_READY : RS_G_NONE;
	if (rc == -1) {
		e = errno;
		unlinkat(d->fd, it->tmp, 0);
		rs_fail_write(c, it->dtgt, what, e);
	}
}

/* Hard-link it's target to the first name of its group.  -1 with errno
 * when that is not possible. */
static int
rs_link(struct rs_ctx *c, struct rs_item *it)
{
	const struct rs_group *g = &c->groups[it->group];
	struct rs_bdir *d = &c->bdirs[it->dir];
	const char *lname;
	struct stat st;
	char tmp[64];
	size_t ldl, faillen;
	int lfd = -1, ferr, e, rc = -1;
	bool made = false;

	lname = rs_split(g->trel, &ldl);
	if (rs_walk(c->units[g->unit].tfd, g->trel, ldl, false, &lfd,
	    &faillen, &ferr) != 0) {
		errno = ferr != 0 ? ferr : ENOENT;
		goto out;
	}
	/* still the file restore put there? */
	if (fstatat(lfd, lname, &st, AT_SYMLINK_NOFOLLOW) == -1)
		goto out;
	if (!S_ISREG(st.st_mode) || st.st_dev != g->tdev ||
	    st.st_ino != g->tino) {
		errno = ESTALE;
		goto out;
	}
	if (rs_tmp_link(c, lfd, lname, d->fd, tmp, sizeof tmp) == -1)
		goto out;
	made = true;
	if (fstatat(d->fd, tmp, &st, AT_SYMLINK_NOFOLLOW) == -1)
		goto out;
	if (st.st_dev != g->tdev || st.st_ino != g->tino) {
		errno = ESTALE;
		goto out;
	}
	if (it->rmdir_first && unlinkat(d->fd, it->tname, AT_REMOVEDIR) ==
	    -1 && errno != ENOENT)
		goto out;
	if (renameat(d->fd, tmp, d->fd, it->tname) == -1)
		goto out;
	/* a rename onto another name of the same file keeps both names */
	if (fstatat(d->fd, tmp, &st, AT_SYMLINK_NOFOLLOW) == 0)
		unlinkat(d->fd, tmp, 0);
	made = false;
	rc = 0;
out:
	e = errno;
	if (made)
		unlinkat(d->fd, tmp, 0);
	if (lfd != -1)
		close(lfd);
	errno = e;
	return rc;
}

/* A group member that cannot be linked gets its own copy, made durable on
 * its own (it is rare). */
static void
rs_copy_now(struct rs_ctx *c, struct rs_item *it)
{
	struct rs_bdir *d = &c->bdirs[it->dir];
	const char *sname, *what = "cannot open the backup copy";
	struct stat sst, tst;
	char tmp[64];
	size_t sdl, faillen;
	int base = -1, spfd = -1, in = -1, out = -1, ferr, e, rc = -1;
	bool made = false;

	if ((base = rs_open_place(c, it->place)) == -1)
		goto out;
	sname = rs_split(it->src, &sdl);
	if (rs_walk(base, it->src, sdl, false, &spfd, &faillen, &ferr) != 0) {
		errno = ferr != 0 ? ferr : ENOENT;
		goto out;
	}
	if ((in = openat(spfd, sname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NOCTTY | O_NONBLOCK)) == -1 || fstat(in, &sst) == -1)
		goto out;
	if (!S_ISREG(sst.st_mode)) {
		errno = EINVAL;
		goto out;
	}
	if (rs_fill(c, in, spfd, sname, &sst, d->fd, tmp, sizeof tmp,
	    it->dtgt, &tst, &out, &what) == -1)
		goto out;
	made = true;
	what = "cannot flush";
	if (fsync(out) == -1)
		goto out;
	what = "cannot remove the folder in the way";
	if (it->rmdir_first && unlinkat(d->fd, it->tname, AT_REMOVEDIR) ==
	    -1 && errno != ENOENT)
		goto out;
	what = "cannot rename into place";
	if (renameat(d->fd, tmp, d->fd, it->tname) == -1)
		goto out;
	made = false;
	d->touched = true;
	c->res->files_restored++;
	if (c->groups[it->group].state != RS_G_READY)
		(void)rs_group_lead(c, it->group, RS_G_READY, it->unit,
		    it->trel, tst.st_dev, tst.st_ino);
	rc = 0;
out:
	e = errno;
	if (made)
		unlinkat(d->fd, tmp, 0);
	if (out != -1 && close(out) == -1 && rc == 0) {
		e = errno;
		what = "cannot write";
		rc = -1;
	}
	if (in != -1)
		close(in);
	if (spfd != -1)
		close(spfd);
	if (base != -1)
		close(base);
	if (rc == -1)
		rs_fail_write(c, it->dtgt, what, e);
}

static void
rs_commit_link(struct rs_ctx *c, struct rs_item *it)
{
	const char *why = "its first name was not restored";

	if (c->groups[it->group].state == RS_G_READY) {
		if (rs_link(c, it) == 0) {
			c->bdirs[it->dir].touched = true;
			c->res->files_restored++;
			return;
		}
		why = errno == ESTALE ? "its first name changed meanwhile" :
		    strerror(errno);
	}
	rs_line(c, "copy %s: no hard link possible (%s)", it->dtgt, why);
	rs_copy_now(c, it);
}

/*
 * Finish the batch: one syncfs per filesystem makes every temp durable;
 * then, in order (a group's first name before its links), each target goes
 * into place; then each folder renamed into is fsync'd once.
 */
static void
rs_flush(struct rs_ctx *c)
{
	struct rs_bdir *d;
	struct rs_item *it;
	size_t i, j;
	char *disp;
	int e;

	for (i = 0; i < c->nbdirs; i++) {
		for (j = 0; j < i && c->bdirs[j].dev != c->bdirs[i].dev; j++)
			;
		if (j < i)
			c->bdirs[i].syncerr = c->bdirs[j].syncerr;
		else if (plat_syncfs(c->bdirs[i].fd) == -1)
			c->bdirs[i].syncerr = errno != 0 ? errno : EIO;
	}
	for (i = 0; i < c->nitems; i++) {
		it = &c->items[i];
		if (it->kind == RS_IT_COPY)
			rs_commit_copy(c, it);
		else
			rs_commit_link(c, it);
		rs_item_clear(it);
	}
	for (i = 0; i < c->nbdirs; i++) {
		d = &c->bdirs[i];
		if (d->touched && fsync(d->fd) == -1 && errno != EINVAL) {
			e = errno;
			disp = rs_disp(c->units[d->unit].troot, d->trel, NULL);
			rs_fail(c, "%s: cannot flush the folder: %s (what was "
			    "restored into it may not survive a crash)", disp,
			    strerror(e));
			free(disp);
		}
		close(d->fd);
		free(d->trel);
	}
	c->nitems = 0;
	c->nbdirs = 0;
	c->bbytes = 0;
}

static const char *
rs_typename(mode_t m)
{
	if (S_ISDIR(m))
		return "a folder";
	if (S_ISLNK(m))
		return "a symlink";
	if (S_ISREG(m))
		return "a file";
	return "a special file";
}

static bool
rs_same_type(mode_t a, mode_t b)
{
	return (a & S_IFMT) == (b & S_IFMT);
}

static int
rs_tscmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	if (a->tv_nsec != b->tv_nsec)
		return a->tv_nsec < b->tv_nsec ? -1 : 1;
	return 0;
}

/*
 * Is the target (tname in tpfd, stat tst, same type) already what the
 * backup entry (in / sname in spfd, stat sst) would make it?  The rule is
 * in the header comment: size, mtime, content, mode, owner, xattrs, and
 * for a link group member, the group's inode.
 */
static bool
rs_unchanged(struct rs_ctx *c, size_t gi, int in, int spfd,
    const char *sname, const struct stat *sst, int tpfd, const char *tname,
    const struct stat *tst)
{
	const struct rs_group *g;
	struct stat st;
	int tfd = -1;
	bool same = false;

	if (gi != SIZE_MAX) {
		g = &c->groups[gi];
		if (g->state != RS_G_NONE)
			return g->tdev == tst->st_dev && g->tino == tst->st_ino;
	}
	if (tst->st_size != sst->st_size ||
	    rs_tscmp(&tst->st_mtim, &sst->st_mtim) != 0)
		return false;
	if (S_ISLNK(sst->st_mode))
		return rs_same_link(c, spfd, sname, tpfd, tname);
	if ((tst->st_mode & 07777) != rs_mode(c, sst->st_mode) ||
	    (c->chown && (tst->st_uid != sst->st_uid ||
	    tst->st_gid != sst->st_gid)))
		return false;
	if ((tfd = openat(tpfd, tname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC)) == -1 || fstat(tfd, &st) == -1 ||
	    st.st_dev != tst->st_dev || st.st_ino != tst->st_ino)
		goto out;
	same = rs_same_content(c, in, tfd, sst->st_size) == 1 &&
	    rs_xattrs_same(c, in, tfd);
out:
	if (tfd != -1)
		close(tfd);
	return same;
}

static int
rs_addfix(struct rs_ctx *c, size_t unit, const char *trel, int place,
    const char *src, const struct stat *sst)
{
	struct rs_dirfix *nv, *f;

	if ((nv = reallocarray(c->fix, c->nfix + 1, sizeof *nv)) == NULL)
		return -1;
	c->fix = nv;
	f = &c->fix[c->nfix];
	memset(f, 0, sizeof *f);
	if ((f->trel = strdup(trel)) == NULL ||
	    (f->src = strdup(src)) == NULL) {
		free(f->trel);
		return -1;
	}
	f->unit = unit;
	f->place = place;
	f->mode = sst->st_mode;
	f->mtime = sst->st_mtim;
	f->uid = sst->st_uid;
	f->gid = sst->st_gid;
	c->nfix++;
	return 0;
}

/*
 * Restore one candidate p (dest-relative) of unit u, from the current
 * destination or from stamp ev[stamp]: checked here, written to a temp (or
 * planned as a hard link) and queued in the batch.  Per-file problems go
 * to messages; returns -1 only on ENOMEM.
 */
static int
rs_one(struct rs_ctx *c, size_t u, const char *p, enum rs_kind kind,
    size_t stamp)
{
	struct rs_unit *un = &c->units[u];
	struct rs_item it;
	const struct rs_group *g = NULL;
	const char *trel, *sname, *tname, *what;
	char *vroot = NULL, *dsrc = NULL, *dtgt = NULL, *dlead = NULL;
	struct stat sst, tst, fst;
	size_t plen = strlen(un->dprefix), sdl, tdl, faillen, gi = SIZE_MAX;
	size_t di;
	int place = kind == RS_VERSION ? (int)stamp : RS_PLACE_DEST;
	int basefd = -1, spfd = -1, tpfd = -1, in = -1, r, ferr, rc = -1;
	bool texists = false, rmdir_first = false, link = false;

	memset(&it, 0, sizeof it);
	if (plen == 0)
		trel = p;
	else
		trel = p[plen] == '/' ? p + plen + 1 : p + plen;
	if (kind == RS_VERSION && asprintf(&vroot, "%s/.vigil/versions/%s",
	    c->dest, c->ev[stamp].name) == -1) {
		vroot = NULL;
		goto out;
	}
	basefd = rs_open_place(c, place);
	dsrc = rs_disp(vroot != NULL ? vroot : c->dest, p, NULL);
	dtgt = rs_disp(un->troot, trel, NULL);
	if (basefd == -1) {
		rs_fail(c, "%s: cannot open: %s", dsrc, strerror(errno));
		rc = 0;
		goto out;
	}

	/* the backup copy */
	sname = rs_split(p, &sdl);
	r = rs_walk(basefd, p, sdl, false, &spfd, &faillen, &ferr);
	if (r == 1 || (r == 0 && fstatat(spfd, sname, &sst,
	    AT_SYMLINK_NOFOLLOW) == -1 && errno == ENOENT)) {
		rc = 0;		/* vanished since it was listed */
		goto out;
	}
	if (r == -1 || (r == 0 && fstatat(spfd, sname, &sst,
	    AT_SYMLINK_NOFOLLOW) == -1)) {
		rs_fail(c, "%s: cannot read the backup copy: %s", dsrc,
		    strerror(r == -1 ? ferr : errno));
		rc = 0;
		goto out;
	}
	/* rs_walk returns only -1, 0 or 1, so sst is filled here:
	 * NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
	if (!S_ISREG(sst.st_mode) && !S_ISLNK(sst.st_mode) &&
	    !S_ISDIR(sst.st_mode)) {
		rs_fail(c, "%s: %s in the backup is not restored", dsrc,
		    rs_typename(sst.st_mode));
		rc = 0;
		goto out;
	}
	if (*trel == '\0') {
		if (!S_ISDIR(sst.st_mode))
			rs_fail(c, "%s: the backup has %s where the source "
			    "folder %s belongs (hint: restore it with --to DIR)",
			    dsrc, rs_typename(sst.st_mode), dtgt);
		rc = 0;
		goto out;
	}
	if (S_ISREG(sst.st_mode)) {
		/* read once, through this fd, from here on */
		if ((in = openat(spfd, sname, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1 ||
		    fstat(in, &sst) == -1) {
			rs_fail(c, "%s: cannot open the backup copy: %s", dsrc,
			    strerror(errno));
			rc = 0;
			goto out;
		}
		if (!S_ISREG(sst.st_mode)) {
			rs_fail(c, "%s: the backup copy changed while restore "
			    "read it (hint: wait for the job's run to end and "
			    "restore again)", dsrc);
			rc = 0;
			goto out;
		}
		if (sst.st_nlink > 1) {
			if (rs_group_get(c, place, &sst, &gi) == -1)
				goto out;
			g = &c->groups[gi];
		}
	}

	/* the target's folder */
	tname = rs_split(trel, &tdl);
	r = rs_walk(un->tfd, trel, tdl, !c->o->dry_run, &tpfd, &faillen,
	    &ferr);
	if (r == -1) {
		rs_walk_fail(c, un->troot, trel, faillen, ferr, "create");
		rc = 0;
		goto out;
	}
	if (r == 0) {
		if (fstatat(tpfd, tname, &tst, AT_SYMLINK_NOFOLLOW) == 0)
			texists = true;
		else if (errno != ENOENT) {
			rs_fail(c, "%s: %s", dtgt, strerror(errno));
			rc = 0;
			goto out;
		}
	}

	if (S_ISDIR(sst.st_mode)) {
		if (texists && S_ISDIR(tst.st_mode)) {
			rc = 0;
			goto out;
		}
		if (texists && !c->o->overwrite) {
			rs_fail(c, "%s: %s is where the backup has a folder "
			    "(hint: move it away, or use --overwrite to "
			    "replace it)", dtgt, rs_typename(tst.st_mode));
			rc = 0;
			goto out;
		}
		rs_line(c, "restore %s -> %s", dsrc, dtgt);
		if (c->o->dry_run) {
			rc = 0;
			goto out;
		}
		if (texists && unlinkat(tpfd, tname, 0) == -1) {
			rs_fail(c, "%s: cannot remove %s in the way: %s", dtgt,
			    rs_typename(tst.st_mode), strerror(errno));
			rc = 0;
			goto out;
		}
		if (mkdirat(tpfd, tname, 0700) == -1) {
			rs_fail(c, "%s: cannot create the folder: %s", dtgt,
			    strerror(errno));
			rc = 0;
			goto out;
		}
		rc = rs_addfix(c, u, trel, place, p, &sst);
		goto out;
	}

	if (texists && S_ISDIR(tst.st_mode)) {
		if (!c->o->overwrite) {
			rs_fail(c, "%s: a folder is where the backup has %s "
			    "(hint: move the folder away, or use --overwrite "
			    "to replace it if it is empty)", dtgt,
			    rs_typename(sst.st_mode));
			rc = 0;
			goto out;
		}
		rmdir_first = true;
	} else if (texists && !rs_same_type(sst.st_mode, tst.st_mode)) {
		if (!c->o->overwrite) {
			rs_fail(c, "%s: %s is where the backup has %s (hint: "
			    "use --overwrite to replace it)", dtgt,
			    rs_typename(tst.st_mode), rs_typename(sst.st_mode));
			rc = 0;
			goto out;
		}
	} else if (texists) {
		if (rs_unchanged(c, gi, in, spfd, sname, &sst, tpfd, tname,
		    &tst)) {
			c->res->files_unchanged++;
			rs_line(c, "unchanged %s", dtgt);
			if (g != NULL && g->state == RS_G_NONE &&
			    rs_group_lead(c, gi, RS_G_READY, u, trel,
			    tst.st_dev, tst.st_ino) == -1)
				goto out;
			rc = 0;
			goto out;
		}
		if (!c->o->overwrite &&
		    rs_tscmp(&tst.st_mtim, &sst.st_mtim) > 0) {
			c->res->files_skipped_newer++;
			rs_note(c, "skip %s: newer than the backup copy (hint: "
			    "use --overwrite to replace it, or --to DIR to "
			    "restore beside it)", dtgt);
			rc = 0;
			goto out;
		}
	}

	/* a later name of a link group: linked if on the same filesystem */
	link = g != NULL && g->state != RS_G_NONE;
	if (link && tpfd != -1 && g->tdev != 0 && fstat(tpfd, &fst) == 0 &&
	    fst.st_dev != g->tdev)
		link = false;
	if (link) {
		dlead = rs_disp(c->units[g->unit].troot, g->trel, NULL);
		rs_line(c, "restore %s -> %s (hard link to %s)", dsrc, dtgt,
		    dlead);
	} else
		rs_line(c, "restore %s -> %s", dsrc, dtgt);
	if (c->o->dry_run) {
		c->res->files_restored++;
		if (S_ISREG(sst.st_mode) && !link)
			c->res->bytes += (uint64_t)sst.st_size;
		if (g != NULL && g->state == RS_G_NONE &&
		    rs_group_lead(c, gi, RS_G_READY, u, trel, 0, 0) == -1)
			goto out;
		rc = 0;
		goto out;
	}

	/* into the batch */
	r = rs_batch_dir(c, tpfd, u, trel, tdl, &di);
	tpfd = -1;
	if (r == -1) {
		rs_fail(c, "%s: %s", dtgt, strerror(errno));
		rc = 0;
		goto out;
	}
	it.dir = di;
	it.group = gi;
	it.unit = u;
	it.rmdir_first = rmdir_first;
	it.isfile = S_ISREG(sst.st_mode);
	it.place = place;
	if ((it.tname = strdup(tname)) == NULL ||
	    (it.trel = strdup(trel)) == NULL)
		goto out;
	it.dtgt = dtgt;
	dtgt = NULL;
	if (link) {
		it.kind = RS_IT_LINK;
		if ((it.src = strdup(p)) == NULL)
			goto out;
	} else {
		it.kind = RS_IT_COPY;
		if (rs_fill(c, in, spfd, sname, &sst, c->bdirs[di].fd, it.tmp,
		    sizeof it.tmp, it.dtgt, &fst, NULL, &what) == -1) {
			rs_fail_write(c, it.dtgt, what, errno);
			rc = 0;
			goto out;
		}
		if (it.isfile)
			c->bbytes += (uint64_t)sst.st_size;
		if (g != NULL && g->state == RS_G_NONE) {
			it.leader = true;
			if (rs_group_lead(c, gi, RS_G_PENDING, u, trel,
			    fst.st_dev, fst.st_ino) == -1) {
				unlinkat(c->bdirs[di].fd, it.tmp, 0);
				goto out;
			}
		}
	}
	if (rs_batch_push(c, &it) == -1) {
		if (it.kind == RS_IT_COPY)
			unlinkat(c->bdirs[di].fd, it.tmp, 0);
		if (it.leader)
			c->groups[gi].state = RS_G_NONE;
		goto out;
	}
	memset(&it, 0, sizeof it);	/* the batch holds it now */
	if (c->nitems >= RS_BATCH_FILES || c->bbytes >= RS_BATCH_BYTES)
		rs_flush(c);
	rc = 0;
out:
	rs_item_clear(&it);
	if (in != -1)
		close(in);
	if (basefd != -1)
		close(basefd);
	if (spfd != -1)
		close(spfd);
	if (tpfd != -1)
		close(tpfd);
	free(vroot);
	free(dsrc);
	free(dtgt);
	free(dlead);
	return rc;
}

/* Folders the restore made: owner, xattrs, mode, mtime, deepest first. */
static void
rs_fix_dirs(struct rs_ctx *c)
{
	struct rs_dirfix *f;
	struct timespec ts[2];
	size_t i, faillen;
	int fd, base, sfd, ferr;
	char *d;

	for (i = c->nfix; i-- > 0;) {
		f = &c->fix[i];
		if (rs_walk(c->units[f->unit].tfd, f->trel, strlen(f->trel),
		    false, &fd, &faillen, &ferr) != 0)
			continue;
		d = rs_disp(c->units[f->unit].troot, f->trel, NULL);
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1] = f->mtime;
		if (c->chown && fchown(fd, f->uid, f->gid) == -1)
			rs_fail(c, "%s: cannot set the folder's owner: %s", d,
			    strerror(errno));
		sfd = -1;
		if ((base = rs_open_place(c, f->place)) != -1) {
			if (rs_walk(base, f->src, strlen(f->src), false, &sfd,
			    &faillen, &ferr) != 0)
				sfd = -1;
			close(base);
		}
		if (sfd != -1) {
			rs_copy_xattrs(c, sfd, fd, d);
			close(sfd);
		} else
			rs_fail(c, "%s: cannot read the backup folder's "
			    "extended attributes (it changed during the "
			    "restore?)", d);
		if (fchmod(fd, rs_mode(c, f->mode)) == -1 ||
		    futimens(fd, ts) == -1)
			rs_fail(c, "%s: cannot set the folder's mode or "
			    "mtime: %s", d, strerror(errno));
		free(d);
		close(fd);
	}
}

/* Plan and restore one request. */
static int
rs_request(struct rs_ctx *c, const struct rs_req *rq)
{
	struct rs_strv cand = { 0 };
	const struct rs_stamp *s;
	enum rs_kind kind;
	size_t i, j, stamp = 0, rlen = strlen(rq->rel), faillen;
	int fd = -1, r, ferr, rc = -1;
	bool found = false;
	char *dup, *d;

	/* the current tree under it */
	r = rs_walk(c->destfd, rq->rel, rlen, false, &fd, &faillen, &ferr);
	if (r == 0 && rs_collect(c, fd, rq->rel, RS_COLLECT_DIRS |
	    RS_COLLECT_SKIPVIGIL, c->dest, &cand) == -1)
		goto out;
	if (*rq->rel != '\0') {
		if ((dup = strdup(rq->rel)) == NULL ||
		    rs_strv_push(&cand, dup) == -1) {
			free(dup);
			goto out;
		}
	}
	/* files the versions area holds under it */
	for (i = 0; i < c->nev; i++) {
		s = &c->ev[i];
		for (j = 0; j < s->versions.n; j++) {
			if (rlen > 0 && (strncmp(s->versions.v[j], rq->rel,
			    rlen) != 0 || (s->versions.v[j][rlen] != '/' &&
			    s->versions.v[j][rlen] != '\0')))
				continue;
			if ((dup = strdup(s->versions.v[j])) == NULL ||
			    rs_strv_push(&cand, dup) == -1) {
				free(dup);
				goto out;
			}
		}
	}
	rs_strv_sort(&cand);

	for (i = 0; i < cand.n; i++) {
		if (rs_resolve(c, cand.v[i], &kind, &stamp) == -1)
			goto out;
		if (kind == RS_ABSENT)
			continue;
		if (kind == RS_CURRENT && strcmp(cand.v[i], rq->rel) == 0) {
			/* the path itself: only if it is there */
			struct stat st;
			size_t dl;
			const char *nm = rs_split(rq->rel, &dl);
			int pfd;

			if (rs_walk(c->destfd, rq->rel, dl, false, &pfd,
			    &faillen, &ferr) != 0)
				continue;
			ferr = fstatat(pfd, nm, &st, AT_SYMLINK_NOFOLLOW);
			close(pfd);
			if (ferr == -1)
				continue;
		}
		found = true;
		if (rs_one(c, rq->unit, cand.v[i], kind, stamp) == -1)
			goto out;
	}
	if (!found && *rq->rel != '\0') {
		d = log_escape(rq->arg);
		rs_fail(c, "%s: not in the backup of job %s%s (hint: %s)",
		    d != NULL ? d : "?", c->o->job->name, c->asof,
		    c->nev > 0 || c->o->as_of_run > 0 || c->o->as_of_ms > 0 ?
		    "vigil history lists the runs; pick an earlier --as-of" :
		    "if it was deleted or replaced, an earlier --as-of "
		    "point may still have it");
		free(d);
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	rs_strv_free(&cand);
	return rc;
}

/* mkdir -p for a target root the user named (text path). */
static int
rs_mkdirs(const char *path)
{
	char *p, *s;
	int rc = -1;

	if ((p = strdup(path)) == NULL)
		return -1;
	for (s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char ch = *s;

			*s = '\0';
			if (mkdir(p, 0777) == -1 && errno != EEXIST)
				goto out;
			*s = ch;
			if (ch == '\0')
				break;
		}
	}
	rc = 0;
out:
	free(p);
	return rc;
}

/* Is the folder fd the destination or inside it? */
static bool
rs_inside(int fd, const struct stat *dst)
{
	struct stat st, up;
	int cur, nxt, i;
	bool inside = false;

	if ((cur = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1)
		return false;
	for (i = 0; i < 4096; i++) {
		if (fstat(cur, &st) == -1)
			break;
		if (st.st_dev == dst->st_dev && st.st_ino == dst->st_ino) {
			inside = true;
			break;
		}
		if (fstatat(cur, "..", &up, 0) == -1 ||
		    (up.st_dev == st.st_dev && up.st_ino == st.st_ino))
			break;
		if ((nxt = openat(cur, "..", O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) == -1)
			break;
		close(cur);
		cur = nxt;
	}
	close(cur);
	return inside;
}

/*
 * Open a target root as root: through plat_open_dir_safe, so that a folder
 * of the path that a user owns cannot send the restore (which has every
 * privilege) into root's or another user's folders, by a symlink planted
 * or swapped in at any time.  Below the root every folder is opened with
 * O_NOFOLLOW from its parent (rs_walk).  Missing folders are made by the
 * same walk.  Same contract as rs_open_unit.
 */
static int
rs_open_unit_safe(struct rs_ctx *c, struct rs_unit *un,
    const struct stat *dst, struct vg_err *err)
{
	struct vg_err perr;
	char *d, *up = NULL, *s;
	int fd = -1, rc = -1;

	vg_err_clear(&perr);
	un->tfd = plat_open_dir_safe(un->troot, 0, &perr);
	if (un->tfd == -1 && errno == ENOENT) {
		/* the nearest folder that exists, reached the same way */
		if ((up = strdup(un->troot)) == NULL) {
			vg_err_set(err, VG_ERR_SYS, "restore: out of memory");
			goto out;
		}
		while (fd == -1 && (s = strrchr(up, '/')) != NULL) {
			*s = '\0';
			fd = plat_open_dir_safe(*up != '\0' ? up : "/", 0,
			    &perr);
			if (fd == -1 && errno != ENOENT)
				break;
		}
		if (fd == -1 && errno != ENOENT)
			goto fail;
		if (fd != -1 && rs_inside(fd, dst))
			goto inside;
		if (c->o->dry_run) {
			rc = 0;
			goto out;
		}
		vg_err_clear(&perr);
		un->tfd = plat_open_dir_safe(un->troot, PLAT_DIR_MKDIR, &perr);
	}
	if (un->tfd == -1)
		goto fail;
	if (rs_inside(un->tfd, dst))
		goto inside;
	rc = 0;
	goto out;
fail:
	/* perr names the path and the component */
	vg_err_set_at(err, perr.code, perr.sys_errno, __func__, "restore "
	    "target %s", perr.msg);
	goto out;
inside:
	d = log_escape(un->troot);
	vg_err_set(err, VG_ERR_INVALID, "restore target %s is inside the "
	    "destination of job %s; restoring there would mix files into the "
	    "backup (hint: choose a folder outside %s)", d != NULL ? d : "?",
	    c->o->job->name, c->dest);
	free(d);
out:
	if (fd != -1)
		close(fd);
	free(up);
	return rc;
}

/*
 * Open a target root, creating it (mkdir -p) unless dry run; refuse one
 * that is the destination or inside it, checked on the nearest existing
 * folder before anything is created.  A user's restore opens it by path:
 * whatever a symlink there leads to, the user could write herself.
 */
static int
rs_open_unit(struct rs_ctx *c, struct rs_unit *un, struct vg_err *err)
{
	struct stat dst;
	char *d, *up = NULL, *s;
	int fd = -1, rc = -1;

	if (fstat(c->destfd, &dst) == -1) {
		vg_err_sys(err, "destination %s", c->dest);
		return -1;
	}
	if (c->root)
		return rs_open_unit_safe(c, un, &dst, err);
	un->tfd = open(un->troot, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (un->tfd == -1 && errno == ENOENT) {
		/* the nearest folder that exists */
		if ((up = strdup(un->troot)) == NULL)
			goto out;
		while (fd == -1 && (s = strrchr(up, '/')) != NULL) {
			*s = '\0';
			fd = open(*up != '\0' ? up : "/", O_RDONLY |
			    O_DIRECTORY | O_CLOEXEC);
		}
		if (fd == -1)
			fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd != -1 && rs_inside(fd, &dst))
			goto inside;
		if (c->o->dry_run) {
			rc = 0;
			goto out;
		}
		if (rs_mkdirs(un->troot) == 0)
			un->tfd = open(un->troot, O_RDONLY | O_DIRECTORY |
			    O_CLOEXEC);
	}
	if (un->tfd == -1) {
		d = log_escape(un->troot);
		vg_err_sys(err, "restore target %s", d != NULL ? d : "?");
		free(d);
		goto out;
	}
	if (rs_inside(un->tfd, &dst))
		goto inside;
	rc = 0;
	goto out;
inside:
	d = log_escape(un->troot);
	vg_err_set(err, VG_ERR_INVALID, "restore target %s is inside the "
	    "destination of job %s; restoring there would mix files into the "
	    "backup (hint: choose a folder outside %s)", d != NULL ? d : "?",
	    c->o->job->name, c->dest);
	free(d);
out:
	if (fd != -1)
		close(fd);
	free(up);
	return rc;
}

static char *
rs_sources_list(const struct vg_job_def *job)
{
	char *s = NULL, *n, *e;
	size_t i;

	for (i = 0; i < job->sources.n; i++) {
		e = log_escape(job->sources.v[i]);
		if (asprintf(&n, "%s%s%s", s != NULL ? s : "",
		    s != NULL ? ", " : "", e != NULL ? e : "?") == -1)
			n = NULL;
		free(e);
		free(s);
		if ((s = n) == NULL)
			return NULL;
	}
	return s;
}

/* Turn the user's paths into requests; any bad path stops everything. */
static int
rs_map_paths(struct rs_ctx *c, char **srcs, struct vg_err *err)
{
	const struct restore_opts *o = c->o;
	const struct vg_job_def *job = o->job;
	struct rs_req *rq;
	const char *why, *rest;
	char *clean = NULL, *d = NULL, *list = NULL;
	size_t i, k, best, blen, sl, ul;
	bool multi = job->sources.n > 1;
	int rc = -1;

	for (i = 0; i < o->npaths; i++) {
		rq = &c->reqs[c->nreqs];
		rq->arg = o->paths[i] != NULL ? o->paths[i] : "";
		d = log_escape(rq->arg);
		if (*rq->arg == '\0') {
			vg_err_set(err, VG_ERR_INVALID, "restore: an empty path "
			    "was given (hint: name a file by its absolute path "
			    "under a source of job %s, or relative to the "
			    "backup's root)", job->name);
			goto out;
		}
		if (rs_clean(rq->arg, &clean, &why) == -1) {
			vg_err_set(err, VG_ERR_INVALID, "%s: %s (hint: name "
			    "the file by its absolute path under a source of "
			    "job %s, or relative to the backup's root)",
			    d != NULL ? d : "?", why, job->name);
			goto out;
		}
		if (*rq->arg == '/') {
			best = SIZE_MAX;
			blen = 0;
			for (k = 0; k < job->sources.n; k++) {
				sl = strlen(srcs[k]);
				if (strncmp(clean, srcs[k], sl) != 0 ||
				    (sl > 0 && clean[sl] != '/' &&
				    clean[sl] != '\0'))
					continue;
				if (best == SIZE_MAX || sl > blen) {
					best = k;
					blen = sl;
				}
			}
			if (best == SIZE_MAX) {
				list = rs_sources_list(job);
				vg_err_set(err, VG_ERR_INVALID, "%s: not under "
				    "any source of job %s (hint: give a path "
				    "under %s, or one relative to the backup's "
				    "root)", d != NULL ? d : "?", job->name,
				    list != NULL ? list : "its sources");
				goto out;
			}
			rest = clean + blen;
			while (*rest == '/')
				rest++;
			if (multi) {
				if (asprintf(&rq->rel, "%s%s%s",
				    rs_base(srcs[best]), *rest ? "/" : "",
				    rest) == -1) {
					rq->rel = NULL;
					goto nomem;
				}
			} else if ((rq->rel = strdup(rest)) == NULL)
				goto nomem;
			free(clean);
			clean = NULL;
		} else {
			rq->rel = clean;
			clean = NULL;
		}
		c->nreqs++;
		if (strcmp(rq->rel, ".vigil") == 0 ||
		    strncmp(rq->rel, ".vigil/", 7) == 0) {
			vg_err_set(err, VG_ERR_INVALID, "%s: .vigil holds "
			    "vigil's own files and is not restored (hint: name "
			    "a file of the backup; --as-of reaches older "
			    "versions)", d != NULL ? d : "?");
			goto out;
		}
		/* which unit writes it */
		rq->unit = 0;
		if (o->to == NULL && multi) {
			for (k = 0; k < c->nunits; k++) {
				ul = strlen(c->units[k].dprefix);
				if (strncmp(rq->rel, c->units[k].dprefix,
				    ul) == 0 && (rq->rel[ul] == '/' ||
				    rq->rel[ul] == '\0'))
					break;
			}
			if (k == c->nunits) {
				list = rs_sources_list(job);
				vg_err_set(err, VG_ERR_INVALID, "%s: not inside "
				    "any source's folder of job %s's backup "
				    "(hint: start it with the last component of "
				    "one of %s, or restore with --to DIR)",
				    d != NULL ? d : "?", job->name,
				    list != NULL ? list : "its sources");
				goto out;
			}
			rq->unit = k;
		}
		c->units[rq->unit].used = true;
		free(d);
		d = NULL;
	}
	rc = 0;
	goto out;
nomem:
	vg_err_set(err, VG_ERR_SYS, "out of memory");
out:
	free(clean);
	free(d);
	free(list);
	return rc;
}

int
restore_run(const struct restore_opts *o, struct restore_result *res,
    struct vg_err *err)
{
	struct rs_ctx c;
	const struct vg_job_def *job;
	char **srcs = NULL, *d;
	const char *why;
	struct tm tm;
	time_t t;
	size_t i, n;
	int rc = -1;

	memset(&c, 0, sizeof c);
	c.destfd = c.versfd = -1;
	if (res == NULL || o == NULL || o->job == NULL ||
	    o->job->name == NULL || o->job->destination == NULL ||
	    o->job->sources.n == 0 || (o->npaths > 0 && o->paths == NULL)) {
		vg_err_set(err, VG_ERR_INTERNAL, "restore: incomplete options");
		if (res != NULL)
			memset(res, 0, sizeof *res);
		return -1;
	}
	memset(res, 0, sizeof *res);
	job = o->job;
	if (job->mode == VG_MODE_ARCHIVE)	/* archive.h */
		return archive_restore(o, res, err);
	c.o = o;
	c.res = res;

	if ((o->as_of_run > 0 || o->as_of_ms > 0) && job->keep_versions == 0 &&
	    job->keep_days == 0) {
		vg_err_set(err, VG_ERR_INVALID, "job %s keeps no versions; "
		    "only the latest backup can be restored (hint: drop "
		    "--as-of, and set keep-versions or keep-days in the job "
		    "to restore older states in future)", job->name);
		goto out;
	}
	if (o->keep_owner && geteuid() != 0) {
		vg_err_set(err, VG_ERR_PERM, "restore: keeping the backed-up "
		    "owners needs root (hint: drop --keep-owner; files are "
		    "restored as owned by you)");
		goto out;
	}
	c.chown = o->keep_owner;
	c.root = geteuid() == 0;
	if ((c.buf = malloc(RS_COPY_BUF)) == NULL ||
	    (c.buf2 = malloc(RS_COPY_BUF)) == NULL)
		goto nomem;
	if (o->as_of_run > 0)
		snprintf(c.asof, sizeof c.asof, " as of run %lld",
		    (long long)o->as_of_run);
	else if (o->as_of_ms > 0) {
		t = (time_t)(o->as_of_ms / 1000);
		if (gmtime_r(&t, &tm) != NULL)
			strftime(c.asof, sizeof c.asof,
			    " as of %Y-%m-%d %H:%M:%S UTC", &tm);
	}

	/* the destination */
	if ((c.dest = strdup(job->destination)) == NULL)
		goto nomem;
	for (n = strlen(c.dest); n > 1 && c.dest[n - 1] == '/'; n--)
		c.dest[n - 1] = '\0';
	if ((c.destfd = open(c.dest, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		d = log_escape(c.dest);
		vg_err_sys(err, "destination %s of job %s",
		    d != NULL ? d : "?", job->name);
		free(d);
		goto out;
	}

	/* the sources, cleaned, and where each part of the backup goes */
	if ((srcs = calloc(job->sources.n, sizeof *srcs)) == NULL)
		goto nomem;
	for (i = 0; i < job->sources.n; i++) {
		if (job->sources.v[i] == NULL || job->sources.v[i][0] != '/' ||
		    rs_clean(job->sources.v[i], &srcs[i], &why) == -1) {
			d = log_escape(job->sources.v[i] != NULL ?
			    job->sources.v[i] : "");
			vg_err_set(err, VG_ERR_INVALID, "job %s: source %s is "
			    "not a clean absolute path (hint: fix the job "
			    "with vigil jobs edit)", job->name,
			    d != NULL ? d : "?");
			free(d);
			goto out;
		}
	}
	c.nunits = (o->to == NULL && job->sources.n > 1) ? job->sources.n : 1;
	if ((c.units = calloc(c.nunits, sizeof *c.units)) == NULL)
		goto nomem;
	for (i = 0; i < c.nunits; i++) {
		c.units[i].tfd = -1;
		if (o->to != NULL) {
			c.units[i].dprefix = "";
			c.units[i].troot = strdup(o->to);
		} else {
			c.units[i].dprefix = c.nunits > 1 ?
			    rs_base(srcs[i]) : "";
			c.units[i].troot = strdup(job->sources.v[i]);
		}
		if (c.units[i].troot == NULL)
			goto nomem;
		for (n = strlen(c.units[i].troot); n > 1 &&
		    c.units[i].troot[n - 1] == '/'; n--)
			c.units[i].troot[n - 1] = '\0';
	}

	/* what to restore */
	n = o->npaths > 0 ? o->npaths : c.nunits;
	if ((c.reqs = calloc(n, sizeof *c.reqs)) == NULL)
		goto nomem;
	if (o->npaths > 0) {
		if (rs_map_paths(&c, srcs, err) == -1)
			goto out;
	} else {
		for (i = 0; i < c.nunits; i++) {
			c.reqs[i].arg = "";
			c.reqs[i].unit = i;
			c.units[i].used = true;
			if ((c.reqs[i].rel = strdup(c.units[i].dprefix)) ==
			    NULL)
				goto nomem;
			c.nreqs++;
		}
	}

	if ((o->as_of_run > 0 || o->as_of_ms > 0) &&
	    rs_load_events(&c, err) == -1)
		goto out;
	for (i = 0; i < c.nunits; i++)
		if (c.units[i].used && rs_open_unit(&c, &c.units[i], err) == -1)
			goto out;

	for (i = 0; i < c.nreqs; i++)
		if (rs_request(&c, &c.reqs[i]) == -1)
			goto nomem;
	rs_flush(&c);
	rs_fix_dirs(&c);
	/* folders made and fixed, in the last batch's parents too */
	for (i = 0; i < c.nunits && !o->dry_run; i++) {
		if (c.units[i].tfd != -1 && plat_syncfs(c.units[i].tfd) == -1) {
			d = log_escape(c.units[i].troot);
			rs_fail(&c, "%s: cannot flush the restored folders: %s",
			    d != NULL ? d : "?", strerror(errno));
			free(d);
		}
	}

	if (res->errors > 0) {
		vg_err_set(err, VG_ERR_INVALID, "restore of job %s: %llu "
		    "problem(s); the other files were restored", job->name,
		    (unsigned long long)res->errors);
		goto out;
	}
	rc = 0;
	goto out;
nomem:
	vg_err_set(err, VG_ERR_SYS, "restore: out of memory");
out:
	rs_flush(&c);	/* what is complete goes into place */
	if (srcs != NULL)
		for (i = 0; i < job->sources.n; i++)
			free(srcs[i]);
	free(srcs);
	for (i = 0; i < c.nunits; i++) {
		if (c.units[i].tfd != -1)
			close(c.units[i].tfd);
		free(c.units[i].troot);
	}
	free(c.units);
	for (i = 0; i < c.nreqs; i++)
		free(c.reqs[i].rel);
	free(c.reqs);
	for (i = 0; i < c.nev; i++) {
		free(c.ev[i].name);
		rs_strv_free(&c.ev[i].added);
		rs_strv_free(&c.ev[i].versions);
	}
	free(c.ev);
	for (i = 0; i < c.nfix; i++) {
		free(c.fix[i].trel);
		free(c.fix[i].src);
	}
	free(c.fix);
	for (i = 0; i < c.ngroups; i++)
		free(c.groups[i].trel);
	free(c.groups);
	free(c.gtab);
	free(c.items);
	free(c.bdirs);
	free(c.buf);
	free(c.buf2);
	if (c.versfd != -1)
		close(c.versfd);
	if (c.destfd != -1)
		close(c.destfd);
	free(c.dest);
	return rc;
}

void
restore_result_free(struct restore_result *res)
{
	size_t i;

	if (res == NULL)
		return;
	for (i = 0; i < res->nmessages; i++)
		free(res->messages[i]);
	free(res->messages);
	res->messages = NULL;
	res->nmessages = 0;
}
