/*
 * engine.c: the copy engine's run and walk (engine.h).
 *
 * The walk holds one open folder per level, on both sides, and never builds
 * a path string for a system call: every call is relative to a folder fd
 * (openat/fstatat with O_NOFOLLOW), so depth is limited by open files, not
 * by PATH_MAX.  Each folder's source entries are read, sorted by name
 * (memcmp) and merged with either the catalogue's rows for that folder (the
 * fast path) or a sorted listing of the destination folder (rescan).
 *
 * A mirror run walks twice: a counting pass that touches nothing and checks
 * max-delete, then the real pass.  See docs/architecture.md for the
 * destination layout and the durability protocol (engine_copy.c).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/filter.h"
#include "common/log.h"
#include "common/platform.h"
#include "common/snapshot.h"
#include "db/catalogue.h"
#include "scheduler/capture.h"
#include "scheduler/engine.h"
#include "scheduler/engine_int.h"
#include "scheduler/versions.h"

/* One entry of a folder listing. */
struct eng_ent {
	char		*name;
	size_t		 len;
	unsigned char	 dtype;		/* DT_* from readdir */
	int		 serr;		/* fstatat errno (source), 0 ok */
	struct stat	 st;		/* source only */
	int		 fd;		/* several sources: the source root */
	const struct engine_source *src; /* several sources: its source */
	bool		 live_db;	/* a non-empty -wal or -journal is next
					   to it: if it is a SQLite database,
					   its content may have changed with
					   its own stat unchanged */
};

/* How the last SQLite database of a folder was copied in this run. */
enum eng_db_how { ENG_DB_BACKUP, ENG_DB_PLAIN };

/* What happened inside a folder, for its post-order metadata. */
struct eng_dstate {
	bool	 modified;	/* entries created, replaced or removed */
	bool	 fs_root;	/* the folder is the root of a filesystem or
				   subvolume */
	const char *db;		/* the last database copied in it (a name in
				   the folder's listing), or NULL */
	size_t	 db_len;
	enum eng_db_how db_how;
};

struct eng_lazy;
static void eng_merge(struct eng_ctx *, int, struct eng_ent *, size_t,
    struct eng_lazy *, bool, struct eng_dstate *, dev_t);

const char *
engine_phase_name(enum engine_phase p)
{
	switch (p) {
	case ENGINE_PHASE_SCAN:		return "scan";
	case ENGINE_PHASE_COPY:		return "copy";
	case ENGINE_PHASE_DELETE:	return "delete";
	case ENGINE_PHASE_VERIFY:	return "verify";
	case ENGINE_PHASE_RETENTION:	return "retention";
	case ENGINE_PHASE_DONE:		return "done";
	}
	return "?";
}

int64_t
eng_ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

void
eng_next_tmp(struct eng_ctx *c, char *buf, size_t len)
{
	snprintf(buf, len, ENG_TMP_PREFIX "%" PRId64 "-%" PRIu64,
	    c->o->run_id, ++c->tmp_seq);
}

/* ---- results ---- */

static char *eng_vfmt(const char *, va_list)
    __attribute__((format(printf, 1, 0)));

static char *
eng_vfmt(const char *fmt, va_list ap)
{
	char	*s = NULL;

	if (vasprintf(&s, fmt, ap) == -1)
		return NULL;
	return s;
}

/* A new row of the run's problem list for rel (takes detail), or NULL
 * without memory (detail is freed). */
static struct engine_problem *
eng_add_row(struct eng_ctx *c, const char *rel, size_t rel_len,
    const char *tag, char *detail)
{
	struct vg_engine_result	*r = c->res;
	struct engine_problem	*np, *p;

	np = realloc(r->problems, (r->nproblems + 1) * sizeof(*np));
	if (np == NULL)
		goto fail;
	r->problems = np;
	p = &np[r->nproblems];
	memset(p, 0, sizeof(*p));
	if ((p->path = malloc(rel_len + 1)) == NULL)
		goto fail;
	memcpy(p->path, rel, rel_len);
	p->path[rel_len] = '\0';
	p->path_len = rel_len;
	p->problem = strdup(tag);
	p->detail = detail;
	r->nproblems++;
	return p;
fail:
	free(detail);
	return NULL;
}

void
eng_problem(struct eng_ctx *c, const char *rel, size_t rel_len,
    const char *problem, bool captured, const char *fmt, ...)
{
	struct vg_engine_result	*r = c->res;
	struct engine_problem	*p;
	va_list			 ap;
	char			*text, *esc;

	if (c->pass == ENG_PASS_COUNT)
		return;
	va_start(ap, fmt);
	text = eng_vfmt(fmt, ap);
	va_end(ap);
	if (eng_pool_recording()) {
		eng_pool_record(ENG_REC_PROBLEM, rel, rel_len, problem,
		    captured, 0, 0, text);
		free(text);
		return;
	}
	if (r->status == VG_RUN_OK)
		r->status = VG_RUN_PARTIAL;
	if ((p = eng_add_row(c, rel, rel_len, problem, text)) == NULL)
		return;
	p->has_capture = captured;
	p->capture = captured && c->src ? c->src->capture : (enum vg_capture)-1;
	if (captured && strcmp(problem, "inconsistent") == 0)
		p->capture = VG_CAP_INCONSISTENT;
	r->files_failed += captured ? 0 : 1;
	esc = log_escape_len(rel, rel_len);
	log_warnx("%s: %s: %s", esc ? esc : "?", problem,
	    p->detail ? p->detail : "");
	free(esc);
}

void
eng_note(struct eng_ctx *c, const char *rel, size_t rel_len,
    const char *what, enum vg_capture captured, const char *fmt, ...)
{
	struct engine_problem	*p;
	va_list			 ap;
	char			*text;

	if (c->pass != ENG_PASS_RUN)
		return;
	va_start(ap, fmt);
	text = eng_vfmt(fmt, ap);
	va_end(ap);
	if (eng_pool_recording()) {
		eng_pool_record(ENG_REC_NOTE, rel, rel_len, what, true,
		    (int)captured, 0, text);
		free(text);
		return;
	}
	if ((p = eng_add_row(c, rel, rel_len, what, text)) == NULL)
		return;
	p->has_capture = true;
	p->capture = captured;
	c->nnotes++;
}

void
eng_warn(struct eng_ctx *c, const char *fmt, ...)
{
	struct vg_engine_result	*r = c->res;
	char			**nw, *s;
	va_list			 ap;

	if (c->pass == ENG_PASS_COUNT)
		return;
	va_start(ap, fmt);
	s = eng_vfmt(fmt, ap);
	va_end(ap);
	if (s == NULL)
		return;
	if (eng_pool_recording()) {
		eng_pool_record(ENG_REC_WARN, NULL, 0, NULL, false, 0, 0, s);
		free(s);
		return;
	}
	log_warnx("%s", s);
	if ((nw = realloc(r->warnings, (r->nwarnings + 1) * sizeof(*nw))) ==
	    NULL) {
		free(s);
		return;
	}
	r->warnings = nw;
	nw[r->nwarnings++] = s;
}

void
eng_fatal(struct eng_ctx *c, int e, const char *fmt, ...)
{
	va_list	 ap;
	char	*s, *m = NULL;

	if (eng_pool_recording()) {
		va_start(ap, fmt);
		s = eng_vfmt(fmt, ap);
		va_end(ap);
		eng_pool_record(ENG_REC_FATAL, NULL, 0, NULL, false, 0, e, s);
		free(s);
		return;
	}
	if (c->stop == ENG_STOP_FATAL)
		return;
	c->stop = ENG_STOP_FATAL;
	c->res->status = VG_RUN_FAILED;
	va_start(ap, fmt);
	s = eng_vfmt(fmt, ap);
	va_end(ap);
	if (s != NULL && e != 0 && asprintf(&m, "%s: %s", s, strerror(e)) !=
	    -1) {
		free(s);
		s = m;
	}
	free(c->res->message);
	c->res->message = s;
	log_warnx("%s", s ? s : "run failed");
}

int
eng_dest_error(struct eng_ctx *c, int e, const char *rel, size_t rel_len,
    const char *what)
{
	char	*esc, *dest;

	if (eng_pool_recording()) {
		eng_pool_record(ENG_REC_DESTERR, rel, rel_len, what, false, 0,
		    e, NULL);
		return e == ENOSPC || e == EDQUOT || e == EROFS || e == EIO ?
		    -1 : 0;
	}
	esc = log_escape_len(rel, rel_len);
	dest = log_escape(c->dest);
	if (e == ENOSPC || e == EDQUOT) {
		eng_fatal(c, e, "destination %s is full (while %s %s); "
		    "nothing already in place was changed; free space or "
		    "choose a larger destination", dest ? dest : "?", what,
		    esc ? esc : "?");
	} else if (e == EROFS || e == EIO) {
		eng_fatal(c, e, "destination %s cannot be written (while %s "
		    "%s)", dest ? dest : "?", what, esc ? esc : "?");
	} else
		eng_problem(c, rel, rel_len, "dest-error", false,
		    "%s at the destination: %s", what, strerror(e));
	free(esc);
	free(dest);
	return c->stop == ENG_STOP_FATAL ? -1 : 0;
}

void
eng_plan(struct eng_ctx *c, const char *verb, const char *rel,
    size_t rel_len, int64_t bytes)
{
	struct vg_engine_result	*r = c->res;
	char			*esc;

	if (strcmp(verb, "copy") == 0 || strcmp(verb, "link") == 0) {
		r->plan_copies++;
		r->plan_bytes += bytes > 0 ? (uint64_t)bytes : 0;
	} else if (strcmp(verb, "delete") == 0)
		r->plan_deletes++;
	else if (strcmp(verb, "version") == 0)
		r->plan_versions++;
	if (c->pass != ENG_PASS_DRY || c->o->plan_out == NULL)
		return;
	esc = log_escape_len(rel, rel_len);
	if (bytes >= 0)
		fprintf(c->o->plan_out, "%s %s (%" PRId64 " bytes)\n", verb,
		    esc ? esc : "?", bytes);
	else
		fprintf(c->o->plan_out, "%s %s\n", verb, esc ? esc : "?");
	free(esc);
}

void
eng_progress(struct eng_ctx *c, bool force)
{
	struct timespec	 now;
	int64_t		 ms;

	if (c->o->progress == NULL || eng_pool_recording())
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (now.tv_sec - c->last_prog.tv_sec) * 1000 +
	    (now.tv_nsec - c->last_prog.tv_nsec) / 1000000;
	if (!force && ms < 100)
		return;
	c->last_prog = now;
	c->prog.files_done = c->res->files + c->res->dirs;
	c->prog.files_copied = c->res->files_copied;
	c->prog.bytes_done = __atomic_load_n(&c->bytes_done,
	    __ATOMIC_RELAXED);
	c->prog.current = c->rel;
	c->o->progress(&c->prog, c->o->progress_arg);
	c->prog.current = NULL;
}

static void
eng_set_phase(struct eng_ctx *c, enum engine_phase p)
{
	c->prog.phase = p;
	eng_progress(c, true);
}

/* ---- relative path ---- */

static size_t
eng_push(struct eng_ctx *c, const char *name, size_t len)
{
	size_t	 old = c->rel_len, need = old + len + 2;
	char	*n;

	if (need > c->rel_cap) {
		if ((n = realloc(c->rel, need * 2)) == NULL)
			fatal("out of memory");
		c->rel = n;
		c->rel_cap = need * 2;
	}
	if (old)
		c->rel[c->rel_len++] = '/';
	memcpy(c->rel + c->rel_len, name, len);
	c->rel_len += len;
	c->rel[c->rel_len] = '\0';
	return old;
}

static void
eng_pop(struct eng_ctx *c, size_t old)
{
	c->rel_len = old;
	c->rel[old] = '\0';
}

/* The path relative to the current source root, for filters. */
static const char *
eng_src_rel(struct eng_ctx *c, size_t *len)
{
	size_t	 off = c->src_root_len ? c->src_root_len + 1 : 0;

	if (c->rel_len < off) {
		*len = 0;
		return "";
	}
	*len = c->rel_len - off;
	return c->rel + off;
}

static bool
eng_excluded(struct eng_ctx *c, bool is_dir)
{
	const char	*p;
	size_t		 len;

	if (c->src == NULL)	/* several sources: their parent folder */
		return false;
	p = eng_src_rel(c, &len);
	if (len == 0)
		return false;
	return filter_match(c->filter, p, len, is_dir) == FILTER_SKIP;
}

/* ---- listings ---- */

static int
eng_namecmp(const char *a, size_t al, const char *b, size_t bl)
{
	int	 r = memcmp(a, b, al < bl ? al : bl);

	if (r != 0)
		return r;
	return al < bl ? -1 : al > bl;
}

static int
eng_ent_cmp(const void *x, const void *y)
{
	const struct eng_ent *a = x, *b = y;

	return eng_namecmp(a->name, a->len, b->name, b->len);
}

static void
eng_ents_free(struct eng_ent *v, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		if (v[i].fd != -1)
			close(v[i].fd);
	}
	free(v);
}

/* The listing eng_list() builds, entry by entry (plat_dir_fn). */
struct eng_listbuf {
	struct eng_ent	*v;
	size_t		 n, cap;
};

static int
eng_list_one(const char *name, size_t len, unsigned char type, void *arg)
{
	struct eng_listbuf *b = arg;
	struct eng_ent	*nv;
	size_t		 cap;

	if (b->n == b->cap) {
		cap = b->cap ? b->cap * 2 : 64;
		if ((nv = realloc(b->v, cap * sizeof(*nv))) == NULL)
			return -1;
		b->v = nv;
		b->cap = cap;
	}
	memset(&b->v[b->n], 0, sizeof(b->v[b->n]));
	b->v[b->n].fd = -1;
	b->v[b->n].len = len;
	b->v[b->n].dtype = type;
	if ((b->v[b->n].name = malloc(len + 1)) == NULL)
		return -1;
	memcpy(b->v[b->n].name, name, len + 1);
	b->n++;
	return 0;
}

/*
 * List folder fd sorted by name; with stat, fstatat() each entry.  Returns
 * -1 with errno when the folder could not be read completely (the caller
 * must then not act on what is missing from it).
 */
static int
eng_list(int fd, bool do_stat, struct eng_ent **out, size_t *nout)
{
	struct eng_listbuf b = { NULL, 0, 0 };
	size_t		 i;
	int		 saved;

	*out = NULL;
	*nout = 0;
	if (plat_dir_each(fd, eng_list_one, &b) == -1) {
		saved = errno ? errno : ENOMEM;
		eng_ents_free(b.v, b.n);
		errno = saved;
		return -1;
	}
	if (b.n > 1)
		qsort(b.v, b.n, sizeof(*b.v), eng_ent_cmp);
	if (do_stat) {
		for (i = 0; i < b.n; i++)
			if (fstatat(fd, b.v[i].name, &b.v[i].st,
			    AT_SYMLINK_NOFOLLOW) == -1)
				b.v[i].serr = errno;
	}
	*out = b.v;
	*nout = b.n;
	return 0;
}

/* ---- SQLite companions ---- */

static const char *const eng_db_sfx[] = { "-wal", "-shm", "-journal" };

/* The length of the database name name is a companion of ("x" for
 * "x-wal"), or 0. */
static size_t
eng_companion_base(const char *name, size_t len)
{
	size_t	 i, sl;

	for (i = 0; i < sizeof(eng_db_sfx) / sizeof(eng_db_sfx[0]); i++) {
		sl = strlen(eng_db_sfx[i]);
		if (len > sl && memcmp(name + len - sl, eng_db_sfx[i], sl) == 0)
			return len - sl;
	}
	return 0;
}

/*
 * Mark the entries of a sorted source listing that have a non-empty -wal
 * or -journal next to them: a database's commits may sit there while the
 * database file's own size and times stay the same, so such a database is
 * never taken as unchanged.
 */
static void
eng_mark_dbs(struct eng_ent *v, size_t n)
{
	struct eng_ent	 key, *e;
	size_t		 i, blen;

	for (i = 0; i < n; i++) {
		if (v[i].serr != 0 || !S_ISREG(v[i].st.st_mode) ||
		    v[i].st.st_size == 0 || (blen = eng_companion_base(
		    v[i].name, v[i].len)) == 0 || (v[i].len - blen == 4 &&
		    memcmp(v[i].name + blen, "-shm", 4) == 0))
			continue;
		memset(&key, 0, sizeof(key));
		key.name = v[i].name;
		key.len = blen;
		if ((e = bsearch(&key, v, n, sizeof(*v), eng_ent_cmp)) != NULL)
			e->live_db = true;
	}
}

/* ---- destination folders, opened when first needed ---- */

struct eng_lazy {
	struct eng_dir	*dir;		/* open, or NULL until needed */
	struct eng_lazy	*parent;	/* NULL at the destination root */
	const char	*name;
	size_t		 rel_len;	/* c->rel length while inside it */
	bool		 recreated;
};

/*
 * mkdirat() said EEXIST in a folder this run made (d->fresh), where no
 * name was looked up first: a destination that folds case ("A" and "a")
 * already has the folder from an earlier name.  True, with *st, when that
 * is a folder; else false with errno EEXIST.
 */
static bool
eng_fresh_exists(struct eng_dir *d, const char *name, struct stat *st)
{
	if (errno != EEXIST || !d->fresh)
		return false;
	if (fstatat(d->fd, name, st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st->st_mode))
		return true;
	memset(st, 0, sizeof(*st));
	errno = EEXIST;
	return false;
}

/*
 * The fd of a destination folder, opened on first use (the catalogue says
 * it exists, so a no-change run never opens it).  In the real pass a folder
 * that went missing or became something else is put back (the run then
 * rewrites its metadata).  -1 with errno when it does not exist (plan
 * passes) or cannot be opened.
 */
static int
eng_lazy_fd(struct eng_ctx *c, struct eng_lazy *z)
{
	struct stat	 st;
	size_t		 saved;
	char		 ch;
	int		 fd, pfd, rc = -1;

	if (z->dir != NULL)
		return z->dir->fd;
	if (z->parent == NULL || (pfd = eng_lazy_fd(c, z->parent)) == -1) {
		if (z->parent == NULL)
			errno = ENOENT;
		return -1;
	}
	fd = openat(pfd, z->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 && c->pass == ENG_PASS_RUN && (errno == ENOENT ||
	    errno == ENOTDIR || errno == ELOOP)) {
		/* work on the folder's own path, then put c->rel back */
		saved = c->rel_len;
		ch = c->rel[z->rel_len];
		c->rel_len = z->rel_len;
		c->rel[z->rel_len] = '\0';
		if (fstatat(pfd, z->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !S_ISDIR(st.st_mode) &&
		    eng_remove(c, z->parent->dir, z->name, false) == -1)
			goto restore;
		if (mkdirat(pfd, z->name, 0700) == -1 && errno != EEXIST) {
			eng_dest_error(c, errno, c->rel, c->rel_len,
			    "creating the folder");
			goto restore;
		}
		z->parent->dir->touched = true;
		z->recreated = true;
		rc = 0;
restore:
		c->rel[z->rel_len] = ch;
		c->rel_len = saved;
		if (rc == -1) {
			errno = EIO;
			return -1;
		}
		fd = openat(pfd, z->name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd == -1)
		return -1;
	if ((z->dir = eng_dir_new(fd)) == NULL) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	return fd;
}

/* ---- comparisons ---- */

static bool
eng_cat_same(const struct catalogue_entry *ce, const struct stat *st,
    int type)
{
	return ce->type == type &&
	    (type == CAT_DIR || ce->size == (uint64_t)st->st_size) &&
	    ce->mtime_ns == eng_ts_ns(&st->st_mtim) &&
	    ce->ctime_ns == eng_ts_ns(&st->st_ctim) &&
	    ce->ino == (uint64_t)st->st_ino &&
	    ce->mode == (uint32_t)st->st_mode;
}

static bool
eng_meta_same(struct eng_ctx *c, const struct stat *a, const struct stat *b)
{
	if ((a->st_mode & 07777) != (b->st_mode & 07777))
		return false;
	if (c->o->as_root && (a->st_uid != b->st_uid ||
	    a->st_gid != b->st_gid))
		return false;
	return true;
}

static int
eng_put_item(struct eng_ctx *c, struct eng_dir *d, int type,
    const struct stat *st)
{
	struct eng_item	 it;

	if (c->cat == NULL || c->pass != ENG_PASS_RUN)
		return 0;
	memset(&it, 0, sizeof(it));
	it.kind = ENG_ITEM_PUT;
	it.fd = -1;
	it.dir = d ? eng_dir_ref(d) : NULL;
	if ((it.rel = malloc(c->rel_len + 1)) == NULL) {
		eng_dir_unref(it.dir);
		return 0;
	}
	memcpy(it.rel, c->rel, c->rel_len + 1);
	it.rel_len = c->rel_len;
	it.name_off = strrchr(c->rel, '/') ? (size_t)(strrchr(c->rel, '/') -
	    c->rel) + 1 : 0;
	it.has_cat = true;
	eng_fill_entry(&it.ce, st);
	it.ce.type = type;
	return eng_batch_add(c, &it);
}

static bool
eng_check_cancel(struct eng_ctx *c)
{
	if (c->stop != ENG_GO)
		return true;
	if (c->o->cancel != NULL && *c->o->cancel) {
		c->stop = ENG_STOP_CANCEL;
		return true;
	}
	return false;
}

/* ---- regular files ---- */

/* Hard link name (under d) to the first copy l.  0 done, 1 copy instead,
 * -1 stop. */
static int
eng_hardlink(struct eng_ctx *c, struct eng_dir *d, const char *name,
    const struct stat *st, struct eng_link *l, bool present,
    const struct stat *dst, struct eng_dstate *ds)
{
	struct stat	 tst;
	char		 tmp[64];
	const char	*slash;
	int		 ffd = -1;
	size_t		 dlen;

	if (c->pass != ENG_PASS_RUN) {
		if (present && c->keep && !S_ISDIR(dst->st_mode))
			eng_plan(c, "version", c->rel, c->rel_len, -1);
		eng_plan(c, "link", c->rel, c->rel_len, -1);
		return 0;
	}
	if (l->gen == c->gen && c->nitems > 0) {
		if (eng_batch_flush(c) == -1)
			return -1;
	}
	l->gen = 0;
	slash = memrchr(l->rel, '/', l->rel_len);
	dlen = slash ? (size_t)(slash - l->rel) : 0;
	ffd = dlen ? eng_open_chain(c->dest_fd, l->rel, dlen, false) :
	    dup(c->dest_fd);
	if (ffd == -1)
		return 1;
	eng_next_tmp(c, tmp, sizeof(tmp));
	if (linkat(ffd, slash ? slash + 1 : l->rel, d->fd, tmp, 0) == -1) {
		close(ffd);
		return 1;	/* EXDEV, EPERM, EMLINK, ...: copy it */
	}
	close(ffd);
	/* the first name's copy may not have been placed (its batch item
	   failed): never link to whatever else holds that name */
	if (fstatat(d->fd, tmp, &tst, AT_SYMLINK_NOFOLLOW) == -1 ||
	    (l->has_dino && (tst.st_dev != l->ddev ||
	    tst.st_ino != l->dino))) {
		(void)unlinkat(d->fd, tmp, 0);
		return 1;
	}
	if (present && dst->st_dev == tst.st_dev && dst->st_ino == tst.st_ino) {
		/* name is that file already (a rename would do nothing) */
		(void)unlinkat(d->fd, tmp, 0);
		c->res->files_unchanged++;
		return eng_put_item(c, d, CAT_FILE, st) == -1 ? -1 : 0;
	}
	if (present && S_ISDIR(dst->st_mode)) {
		if (eng_remove(c, d, name, false) == -1) {
			(void)unlinkat(d->fd, tmp, 0);
			return -1;
		}
	} else if (present && c->keep) {
		if (eng_version(c, d, name, c->rel, c->rel_len, true) == -1 &&
		    errno != ENOENT) {
			eng_problem(c, c->rel, c->rel_len, "version", false,
			    "the old file could not be kept in the versions "
			    "area, so it was not replaced: %s",
			    strerror(errno));
			(void)unlinkat(d->fd, tmp, 0);
			return 0;
		}
	}
	if (renameat(d->fd, tmp, d->fd, name) == -1) {
		int e = errno;
		(void)unlinkat(d->fd, tmp, 0);
		return eng_dest_error(c, e, c->rel, c->rel_len, "linking");
	}
	d->touched = true;
	ds->modified = true;
	if (!present)
		eng_added(c, c->rel, c->rel_len);
	c->res->files_copied++;
	if (c->src)
		c->res->capture[c->src->capture]++;
	return eng_put_item(c, d, CAT_FILE, st) == -1 ? -1 : 0;
}

/*
 * Is the destination file dst (just examined) the file the link group's
 * first name l points to?  Looks the first name's destination up once when
 * the walk did not learn it.  A first name that cannot be examined counts
 * as different (linking to it then fails, and the caller keeps what it
 * has).
 */
static bool
eng_link_same(struct eng_ctx *c, struct eng_link *l, const struct stat *dst)
{
	struct stat	 st;
	const char	*slash;
	size_t		 dlen;
	int		 fd;

	if (l->rel_len == c->rel_len && memcmp(l->rel, c->rel, c->rel_len) ==
	    0)
		return true;
	if (!l->has_dino) {
		if (c->dest_fd == -1)
			return false;
		slash = memrchr(l->rel, '/', l->rel_len);
		dlen = slash ? (size_t)(slash - l->rel) : 0;
		fd = dlen ? eng_open_chain(c->dest_fd, l->rel, dlen, false) :
		    dup(c->dest_fd);
		if (fd == -1)
			return false;
		if (fstatat(fd, slash ? slash + 1 : l->rel, &st,
		    AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode)) {
			close(fd);
			return false;
		}
		close(fd);
		l->ddev = st.st_dev;
		l->dino = st.st_ino;
		l->has_dino = true;
	}
	return l->ddev == dst->st_dev && l->dino == dst->st_ino;
}

/* Register the current entry as the first name of its link group. */
static void
eng_link_first(struct eng_ctx *c, const struct stat *st, uint64_t gen,
    bool placed, const struct stat *dst)
{
	struct eng_link	*l;

	if ((l = eng_link_add(c, st->st_dev, st->st_ino, c->rel, c->rel_len,
	    gen)) == NULL)
		return;		/* no memory: the names become copies */
	l->placed = placed;
	if (dst != NULL) {
		l->ddev = dst->st_dev;
		l->dino = dst->st_ino;
		l->has_dino = true;
	}
}

/* Does name under sfd start with the SQLite header? */
static bool
eng_is_db(int sfd, const char *name)
{
	bool	 r;
	int	 fd;

	if ((fd = plat_open_read(sfd, name)) == -1)
		return false;
	r = capture_is_sqlite(fd);
	close(fd);
	return r;
}

/* ---- files apps refused to close ---- */

static int
eng_fb_cmp(const void *x, const void *y)
{
	const struct eng_fallback *a = x, *b = y;

	if (a->src != b->src)
		return a->src < b->src ? -1 : 1;
	return eng_namecmp(a->rel, a->len, b->rel, b->len);
}

/* Sort engine_opts.fallback_files by source.  Paths under no source are
 * ignored (the service only names files under the job's sources). */
static int
eng_fb_load(struct eng_ctx *c)
{
	const struct vg_strlist *l = c->o->fallback_files;
	const char	*f, *p;
	size_t		 i, k, plen, flen;

	if (l == NULL || l->n == 0)
		return 0;
	if ((c->fb = calloc(l->n, sizeof(*c->fb))) == NULL)
		return -1;
	for (i = 0; i < l->n; i++) {
		f = l->v[i];
		flen = strlen(f);
		while (flen > 1 && f[flen - 1] == '/')
			flen--;
		for (k = 0; k < c->o->nsources; k++) {
			p = c->o->sources[k].path;
			plen = strlen(p);
			while (plen > 1 && p[plen - 1] == '/')
				plen--;
			if (flen > plen + 1 && memcmp(f, p, plen) == 0 &&
			    f[plen] == '/')
				break;
		}
		if (k == c->o->nsources)
			continue;
		if ((c->fb[c->nfb].rel = strndup(f + plen + 1,
		    flen - plen - 1)) == NULL)
			return -1;
		c->fb[c->nfb].len = flen - plen - 1;
		c->fb[c->nfb].src = k;
		c->nfb++;
	}
	if (c->nfb > 1)
		qsort(c->fb, c->nfb, sizeof(*c->fb), eng_fb_cmp);
	return 0;
}

static void
eng_fb_free(struct eng_ctx *c)
{
	size_t	 i;

	for (i = 0; i < c->nfb; i++)
		free(c->fb[i].rel);
	free(c->fb);
	c->fb = NULL;
	c->nfb = 0;
}

/* Is the current entry (or a folder above it in its source) one that an
 * app refused to close? */
static bool
eng_is_fallback(struct eng_ctx *c)
{
	struct eng_fallback key;
	const char	*rel;
	size_t		 len;

	if (c->nfb == 0 || c->src == NULL ||
	    c->src->capture != VG_CAP_CLOSED_APP)
		return false;
	rel = eng_src_rel(c, &len);
	key.src = (size_t)(c->src - c->o->sources);
	key.rel = (char *)rel;
	for (key.len = len; key.len > 0; ) {
		if (bsearch(&key, c->fb, c->nfb, sizeof(*c->fb),
		    eng_fb_cmp) != NULL)
			return true;
		while (key.len > 0 && rel[key.len - 1] != '/')
			key.len--;
		if (key.len > 0)
			key.len--;	/* the folder above */
	}
	return false;
}

/*
 * A -wal, -shm or -journal of a SQLite database: skipped when the database
 * was (or, not copied this run, would be) captured through the backup API,
 * whose copy is complete without them and would be damaged by a stale
 * journal restored next to it.  The warning names each skipped file.
 */
static bool
eng_skip_companion(struct eng_ctx *c, int sfd, struct eng_ent *s,
    const struct catalogue_entry *cn, struct eng_dstate *ds, bool fallback)
{
	struct eng_item	 it;
	enum vg_capture	 m;
	size_t		 blen;
	char		*esc;

	if ((blen = eng_companion_base(s->name, s->len)) == 0)
		return false;
	if (ds->db != NULL && ds->db_len == blen &&
	    memcmp(ds->db, s->name, blen) == 0) {
		if (ds->db_how == ENG_DB_PLAIN)
			return false;
		/* captured through the backup API in this run: the
		   destination's copy of it went when the database was
		   copied; its catalogue row goes now */
		if (c->pass == ENG_PASS_RUN) {
			esc = log_escape_len(c->rel, c->rel_len);
			eng_warn(c, "%s: skipped: a companion of the SQLite "
			    "database next to it, which was copied whole "
			    "through the SQLite backup API", esc ? esc : "?");
			free(esc);
		}
		if (cn != NULL && c->cat != NULL && c->pass == ENG_PASS_RUN) {
			memset(&it, 0, sizeof(it));
			it.kind = ENG_ITEM_DEL;
			it.fd = -1;
			if ((it.rel = malloc(c->rel_len + 1)) != NULL) {
				memcpy(it.rel, c->rel, c->rel_len + 1);
				it.rel_len = c->rel_len;
				it.name_off = c->rel_len - s->len;
				it.ce.type = CAT_FILE;
				it.has_cat = true;
				(void)eng_batch_add(c, &it);
			}
		}
		return true;
	}
	m = eng_method(c, c->src, fallback);
	if (m == VG_CAP_SNAPSHOT_BTRFS || m == VG_CAP_SNAPSHOT_LVM)
		return false;
	/* its database was not copied in this run (unchanged, or it had a
	   problem): what the destination holds stays as it is */
	if (!capture_is_sqlite_companion(sfd, s->name))
		return false;
	if (cn != NULL)
		c->n_dest++;
	return true;
}

/*
 * A database captured through the backup API: remove the destination's
 * -wal, -shm and -journal of it (kept as versions when versions are kept)
 * before the new copy is renamed into place.
 */
static int
eng_drop_companions(struct eng_ctx *c, struct eng_dir *d, const char *name,
    size_t len)
{
	struct eng_item	 it;
	struct stat	 st;
	size_t		 old, i, sl;
	char		 cname[NAME_MAX + 1], *n;
	int		 rc = 0;

	for (i = 0; i < sizeof(eng_db_sfx) / sizeof(eng_db_sfx[0]) &&
	    rc == 0; i++) {
		sl = strlen(eng_db_sfx[i]);
		if (len + sl > NAME_MAX)
			continue;
		memcpy(cname, name, len);
		memcpy(cname + len, eng_db_sfx[i], sl + 1);
		if (fstatat(d->fd, cname, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		/* c->rel ends with name: make it the companion's */
		old = c->rel_len;
		if (old + sl + 1 > c->rel_cap) {
			if ((n = realloc(c->rel, (old + sl + 1) * 2)) == NULL)
				fatal("out of memory");
			c->rel = n;
			c->rel_cap = (old + sl + 1) * 2;
		}
		memcpy(c->rel + old, eng_db_sfx[i], sl + 1);
		c->rel_len += sl;
		rc = eng_remove(c, d, cname, false);
		if (rc == 0 && c->cat != NULL) {
			memset(&it, 0, sizeof(it));
			it.kind = ENG_ITEM_DEL;
			it.fd = -1;
			if ((it.rel = malloc(c->rel_len + 1)) != NULL) {
				memcpy(it.rel, c->rel, c->rel_len + 1);
				it.rel_len = c->rel_len;
				it.name_off = c->rel_len - len - sl;
				it.ce.type = CAT_FILE;
				it.has_cat = true;
				rc = eng_batch_add(c, &it);
			}
		}
		eng_pop(c, old);
	}
	return rc;
}

/*
 * A regular file.  Unchanged, as the catalogue tells (size, mtime, ctime,
 * inode and mode as at the last run): nothing is touched.  A catalogue row
 * that differs in any of them means the file may have changed (content
 * rewritten with its mtime put back, an xattr, a name replaced by another
 * file), so it is copied again.  Without a catalogue row (rescan, a fresh
 * or dirty catalogue, a new name) the destination file is compared as
 * rsync does: same size and mtime is unchanged.
 */
static void
eng_file(struct eng_ctx *c, int sfd, struct eng_ent *s, struct eng_lazy *z,
    const struct catalogue_entry *cn, struct eng_dstate *ds)
{
	struct stat	 dst, tst;
	struct eng_link	*l = NULL;
	struct eng_item	 it;
	struct eng_copy_job j;
	bool		 present = false, cat_same = false, fallback, force;
	int		 dfd, rc;

	c->res->files++;
	c->res->bytes_total += (uint64_t)s->st.st_size;
	fallback = eng_is_fallback(c);
	if (eng_skip_companion(c, sfd, s, cn, ds, fallback))
		return;
	/* a database whose commits may sit in its -wal or -journal */
	force = s->live_db && eng_is_db(sfd, s->name);
	if (s->st.st_nlink > 1)
		l = eng_link_find(c, s->st.st_dev, s->st.st_ino);
	if (cn != NULL)
		cat_same = !force && eng_cat_same(cn, &s->st, CAT_FILE);
	/* the fast path, unless an earlier name of its link group was
	   (re)placed by this run: then this name may have to join it */
	if (cat_same && (l == NULL || !l->placed)) {
		c->res->files_unchanged++;
		c->n_dest++;
		if (s->st.st_nlink > 1 && l == NULL)
			eng_link_first(c, &s->st, 0, false, NULL);
		return;
	}
	dfd = eng_lazy_fd(c, z);
	if (dfd == -1 && c->pass == ENG_PASS_RUN) {
		if (c->stop == ENG_GO)
			eng_dest_error(c, errno, c->rel, c->rel_len,
			    "opening the folder of");
		return;
	}
	if (dfd != -1 && !z->dir->fresh) {
		if (fstatat(dfd, s->name, &dst, AT_SYMLINK_NOFOLLOW) == 0)
			present = true;
		else if (errno != ENOENT) {
			eng_dest_error(c, errno, c->rel, c->rel_len,
			    "examining");
			return;
		}
	}
	if (present)
		c->n_dest++;
	if (!force && present && S_ISREG(dst.st_mode) &&
	    (cn == NULL || cat_same) && dst.st_size == s->st.st_size &&
	    eng_ts_ns(&dst.st_mtim) == eng_ts_ns(&s->st.st_mtim)) {
		/* unchanged; a name of a link group joins its first name */
		if (l != NULL && !eng_link_same(c, l, &dst)) {
			rc = eng_hardlink(c, z->dir, s->name, &s->st, l, true,
			    &dst, ds);
			if (rc != 1)
				return;
			/* cannot link: keep this name's own copy */
		}
		c->res->files_unchanged++;
		if (c->pass == ENG_PASS_RUN && !eng_meta_same(c, &dst,
		    &s->st)) {
			if (c->o->as_root)
				(void)fchownat(dfd, s->name, s->st.st_uid,
				    s->st.st_gid, AT_SYMLINK_NOFOLLOW);
			if (fchmodat(dfd, s->name, s->st.st_mode & 07777, 0) ==
			    -1)
				eng_problem(c, c->rel, c->rel_len, "metadata",
				    false, "cannot set the mode: %s",
				    strerror(errno));
		}
		if (s->st.st_nlink > 1 && l == NULL)
			eng_link_first(c, &s->st, 0, false, &dst);
		(void)eng_put_item(c, z->dir, CAT_FILE, &s->st);
		return;
	}
	if (l != NULL && (c->pass != ENG_PASS_RUN || dfd != -1)) {
		rc = eng_hardlink(c, z->dir, s->name, &s->st, l, present,
		    &dst, ds);
		if (rc != 1)
			return;
	}
	if (c->pass != ENG_PASS_RUN) {
		if (present && S_ISDIR(dst.st_mode)) {
			if (dfd != -1 && z->dir != NULL)
				(void)eng_remove(c, z->dir, s->name, false);
		} else if (present && c->keep)
			eng_plan(c, "version", c->rel, c->rel_len, -1);
		eng_plan(c, "copy", c->rel, c->rel_len, s->st.st_size);
		if (s->st.st_nlink > 1 && l == NULL)
			eng_link_first(c, &s->st, 0, true, NULL);
		return;
	}
	if (present && S_ISDIR(dst.st_mode)) {
		if (eng_remove(c, z->dir, s->name, false) == -1)
			return;
		present = false;
		ds->modified = true;
	}
	memset(&it, 0, sizeof(it));
	it.fd = -1;
	if (eng_pool_takes(c, &s->st, fallback, s->live_db)) {
		memset(&j, 0, sizeof(j));
		j.sfd = sfd;
		j.name = s->name;
		j.st = s->st;
		j.src = c->src;
		j.rel = c->rel;
		j.rel_len = c->rel_len;
		j.buf = c->buf;
		if (eng_copy_open(c, &j) != 0)
			return;
		if (!j.is_db) {
			/* a copier thread does the rest (engine_pool.c) */
			ds->modified = true;
			(void)eng_pool_submit(c, &j, z->dir, present);
			return;
		}
		/* a database: copied here, its companions follow it */
		eng_next_tmp(c, it.tmp, sizeof(it.tmp));
		it.dir = eng_dir_ref(z->dir);
		if ((rc = eng_copy_body(c, &j, &it)) != 0) {
			eng_dir_unref(it.dir);
			it.dir = NULL;
		}
	} else
		rc = eng_copy_file(c, sfd, s->name, &s->st, z->dir, fallback,
		    &it);
	if (rc != 0)
		return;
	if (it.sqlite_db) {
		/* its companions, later in this folder, follow its capture */
		ds->db = s->name;
		ds->db_len = s->len;
		ds->db_how = it.captured == VG_CAP_SQLITE_BACKUP ?
		    ENG_DB_BACKUP : ENG_DB_PLAIN;
		if (ds->db_how == ENG_DB_BACKUP && eng_drop_companions(c,
		    z->dir, s->name, s->len) == -1) {
			(void)unlinkat(z->dir->fd, it.tmp, 0);
			eng_item_free(&it);
			return;
		}
	}
	it.version = present && c->keep;
	if ((it.rel = malloc(c->rel_len + 1)) == NULL) {
		eng_item_free(&it);
		eng_fatal(c, ENOMEM, "copying");
		return;
	}
	memcpy(it.rel, c->rel, c->rel_len + 1);
	it.rel_len = c->rel_len;
	it.name_off = c->rel_len - s->len;
	it.ce.name = it.rel + it.name_off;
	it.ce.name_len = s->len;
	if (!present)
		eng_added(c, c->rel, c->rel_len);
	/* the temp file keeps its inode when it is renamed into place */
	if (s->st.st_nlink > 1 && l == NULL)
		eng_link_first(c, &s->st, c->gen, true, fstat(it.fd, &tst) ==
		    0 ? &tst : NULL);
	ds->modified = true;
	(void)eng_batch_add(c, &it);
}

/* ---- symlinks ---- */

static char *
eng_readlink(int dirfd, const char *name, size_t hint, size_t *len)
{
	size_t	 cap = hint ? hint + 1 : 256;
	char	*buf = NULL, *nb;
	ssize_t	 n;

	for (;;) {
		if ((nb = realloc(buf, cap)) == NULL) {
			free(buf);
			return NULL;
		}
		buf = nb;
		n = readlinkat(dirfd, name, buf, cap);
		if (n == -1) {
			free(buf);
			return NULL;
		}
		if ((size_t)n < cap) {
			buf[n] = '\0';
			*len = (size_t)n;
			return buf;
		}
		cap *= 2;
	}
}

static void
eng_symlink(struct eng_ctx *c, int sfd, struct eng_ent *s,
    struct eng_lazy *z, const struct catalogue_entry *cn,
    struct eng_dstate *ds)
{
	struct stat	 dst;
	struct timespec	 ts[2];
	char		*target = NULL, *dtarget = NULL, tmp[64];
	size_t		 tlen = 0, dlen = 0;
	bool		 present = false, same_target = false;
	int		 dfd, e;

	c->res->files++;
	if (cn != NULL && eng_cat_same(cn, &s->st, CAT_SYMLINK)) {
		c->res->files_unchanged++;
		c->n_dest++;
		return;
	}
	if ((target = eng_readlink(sfd, s->name, (size_t)s->st.st_size,
	    &tlen)) == NULL) {
		eng_problem(c, c->rel, c->rel_len, errno == ENOENT ?
		    "vanished" : "unreadable", false, "cannot read the "
		    "symlink: %s", strerror(errno));
		return;
	}
	dfd = eng_lazy_fd(c, z);
	if (dfd == -1 && c->pass == ENG_PASS_RUN) {
		if (c->stop == ENG_GO)
			eng_dest_error(c, errno, c->rel, c->rel_len,
			    "opening the folder of");
		goto out;
	}
	if (dfd != -1 && !z->dir->fresh) {
		if (fstatat(dfd, s->name, &dst, AT_SYMLINK_NOFOLLOW) == 0)
			present = true;
		else if (errno != ENOENT) {
			eng_dest_error(c, errno, c->rel, c->rel_len,
			    "examining");
			goto out;
		}
	}
	if (present) {
		c->n_dest++;
		same_target = S_ISLNK(dst.st_mode) && (dtarget =
		    eng_readlink(dfd, s->name, (size_t)dst.st_size, &dlen)) !=
		    NULL && dlen == tlen && memcmp(dtarget, target, tlen) == 0;
		/* a catalogue row that differs (ctime: owner, mtime or
		   xattrs changed) makes the link again, target and all */
		if (same_target && cn == NULL) {
			c->res->files_unchanged++;
			(void)eng_put_item(c, z->dir, CAT_SYMLINK, &s->st);
			goto out;
		}
	}
	if (c->pass != ENG_PASS_RUN) {
		if (present && S_ISDIR(dst.st_mode)) {
			if (z->dir != NULL)
				(void)eng_remove(c, z->dir, s->name, false);
		} else if (present && c->keep && !same_target)
			eng_plan(c, "version", c->rel, c->rel_len, -1);
		eng_plan(c, "copy", c->rel, c->rel_len, (int64_t)tlen);
		goto out;
	}
	if (present && S_ISDIR(dst.st_mode)) {
		if (eng_remove(c, z->dir, s->name, false) == -1)
			goto out;
		present = false;
	}
	eng_next_tmp(c, tmp, sizeof(tmp));
	if (symlinkat(target, dfd, tmp) == -1) {
		eng_dest_error(c, errno, c->rel, c->rel_len,
		    "creating the symlink");
		goto out;
	}
	if (c->o->as_root)
		(void)fchownat(dfd, tmp, s->st.st_uid, s->st.st_gid,
		    AT_SYMLINK_NOFOLLOW);
	eng_copy_link_xattrs(c, sfd, s->name, dfd, tmp);
	ts[0] = s->st.st_atim;
	ts[1] = s->st.st_mtim;
	(void)utimensat(dfd, tmp, ts, AT_SYMLINK_NOFOLLOW);
	/* the same target is not a new version: only its metadata changed */
	if (present && c->keep && !same_target && eng_version(c, z->dir,
	    s->name, c->rel, c->rel_len, true) == -1 && errno != ENOENT) {
		eng_problem(c, c->rel, c->rel_len, "version", false,
		    "the old entry could not be kept in the versions area, "
		    "so it was not replaced: %s", strerror(errno));
		(void)unlinkat(dfd, tmp, 0);
		goto out;
	}
	if (renameat(dfd, tmp, dfd, s->name) == -1) {
		e = errno;
		(void)unlinkat(dfd, tmp, 0);
		eng_dest_error(c, e, c->rel, c->rel_len, "placing the symlink");
		goto out;
	}
	z->dir->touched = true;
	ds->modified = true;
	if (!present)
		eng_added(c, c->rel, c->rel_len);
	c->res->files_copied++;
	if (c->src)
		c->res->capture[c->src->capture]++;
	(void)eng_put_item(c, z->dir, CAT_SYMLINK, &s->st);
out:
	free(target);
	free(dtarget);
}

/* ---- folders ---- */

static void
eng_folder(struct eng_ctx *c, int sfd, struct eng_ent *s, struct eng_lazy *z,
    const struct catalogue_entry *cn, struct eng_dstate *ds, dev_t pdev)
{
	const struct engine_source *saved_src = c->src;
	size_t		 saved_root = c->src_root_len;
	dev_t		 saved_dev = c->src_dev;
	struct plat_fsinfo fi;
	struct eng_lazy	 cz;
	struct eng_dstate cs;
	struct eng_ent	*kids = NULL;
	struct eng_item	 it;
	struct stat	 cst, dst;
	size_t		 nkids = 0;
	bool		 descend = true, child_cat, present = false;
	bool		 created = false, meta;
	int		 cfd = -1, dfd, fd;
	char		*esc;

	c->res->dirs++;
	memset(&cz, 0, sizeof(cz));
	memset(&cs, 0, sizeof(cs));
	if (c->dest_fd != -1 && s->st.st_dev == c->dest_st.st_dev &&
	    s->st.st_ino == c->dest_st.st_ino) {
		c->res->dirs--;
		return;		/* the destination, inside the source */
	}
	if (s->fd != -1) {
		cfd = s->fd;
		s->fd = -1;
	} else
		cfd = openat(sfd, s->name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
	if (cfd == -1) {
		eng_problem(c, c->rel, c->rel_len, errno == ENOENT ?
		    "vanished" : "unreadable", false,
		    "cannot open the folder: %s", strerror(errno));
		return;
	}
	if (fstat(cfd, &cst) == -1 ||
	    cst.st_dev != s->st.st_dev || cst.st_ino != s->st.st_ino) {
		eng_problem(c, c->rel, c->rel_len, "vanished", false,
		    "the folder was replaced while it was read");
		close(cfd);
		return;
	}
	if (s->src != NULL) {
		c->src = s->src;
		c->src_root_len = c->rel_len;
		c->src_dev = s->st.st_dev;
	} else if (s->st.st_dev != pdev) {
		esc = log_escape(c->rel);
		if (c->job->one_file_system && s->st.st_dev != c->src_dev) {
			descend = false;
			log_debug("%s: other filesystem, not walked", esc);
		} else if (plat_fs_info(cfd, c->uid, &fi) == 0 && fi.pseudo) {
			descend = false;
			eng_warn(c, "%s: %s is a pseudo filesystem or a fuse "
			    "mount of another user; not walked",
			    esc ? esc : "?", fi.type);
		}
		free(esc);
	}

	/* the destination side */
	child_cat = cn != NULL && cn->type == CAT_DIR && c->use_cat;
	cz.name = s->name;
	cz.rel_len = c->rel_len;
	memset(&dst, 0, sizeof(dst));
	if (child_cat) {
		cz.parent = z;
		c->n_dest++;
	} else {
		dfd = eng_lazy_fd(c, z);
		if (dfd == -1 && c->pass == ENG_PASS_RUN) {
			if (c->stop == ENG_GO)
				eng_dest_error(c, errno, c->rel, c->rel_len,
				    "opening the folder of");
			goto out;
		}
		if (dfd != -1 && !z->dir->fresh) {
			if (fstatat(dfd, s->name, &dst,
			    AT_SYMLINK_NOFOLLOW) == 0)
				present = true;
			else if (errno != ENOENT) {
				eng_dest_error(c, errno, c->rel, c->rel_len,
				    "examining");
				goto out;
			}
		}
		if (present)
			c->n_dest++;
		if (present && !S_ISDIR(dst.st_mode)) {
			if (c->pass == ENG_PASS_RUN) {
				if (eng_remove(c, z->dir, s->name, false) ==
				    -1)
					goto out;
			} else
				(void)eng_remove(c, z->dir, s->name, false);
			present = false;
			ds->modified = true;
		}
		if (!present) {
			eng_plan(c, "mkdir", c->rel, c->rel_len, -1);
			if (c->pass == ENG_PASS_RUN) {
				if (mkdirat(dfd, s->name, 0700) == 0)
					;
				else if (eng_fresh_exists(z->dir, s->name,
				    &dst))
					present = true;
				else {
					eng_dest_error(c, errno, c->rel,
					    c->rel_len, "creating the folder");
					goto out;
				}
			}
			if (c->pass == ENG_PASS_RUN && !present) {
				z->dir->touched = true;
				ds->modified = true;
				created = true;
				eng_added(c, c->rel, c->rel_len);
			}
		}
		if (present || c->pass == ENG_PASS_RUN) {
			fd = openat(dfd, s->name, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (fd == -1) {
				eng_dest_error(c, errno, c->rel, c->rel_len,
				    "opening the folder");
				goto out;
			}
			if ((cz.dir = eng_dir_new(fd)) == NULL) {
				close(fd);
				goto out;
			}
			cz.dir->fresh = created;
		}
	}

	if (descend && c->depth >= ENGINE_MAX_DEPTH) {
		eng_problem(c, c->rel, c->rel_len, "too-deep", false,
		    "folders nest more than %d levels deep here; nothing "
		    "below this folder is copied", ENGINE_MAX_DEPTH);
		descend = false;
	}
	if (descend) {
		if (eng_list(cfd, true, &kids, &nkids) == -1) {
			eng_problem(c, c->rel, c->rel_len, "unreadable", false,
			    "cannot list the folder: %s", strerror(errno));
			kids = NULL;
			nkids = 0;
			descend = false;
		}
	}
	if (descend) {
		eng_mark_dbs(kids, nkids);
		cs.fs_root = s->src != NULL || s->st.st_dev != pdev;
		c->depth++;
		eng_merge(c, cfd, kids, nkids, &cz, child_cat, &cs,
		    cst.st_dev);
		c->depth--;
	}
	if (c->stop != ENG_GO || c->pass != ENG_PASS_RUN)
		goto out;

	/* post-order: the folder's own metadata, after its children */
	if (created || cs.modified || cz.recreated)
		meta = true;
	else if (child_cat)
		meta = !eng_cat_same(cn, &s->st, CAT_DIR);
	else
		meta = !eng_meta_same(c, &dst, &s->st) ||
		    eng_ts_ns(&dst.st_mtim) != eng_ts_ns(&s->st.st_mtim);
	if (meta) {
		if (eng_lazy_fd(c, &cz) == -1) {
			if (c->stop == ENG_GO)
				eng_dest_error(c, errno, c->rel, c->rel_len,
				    "opening the folder");
			goto out;
		}
		if (created || (child_cat && !eng_cat_same(cn, &s->st,
		    CAT_DIR)) || !child_cat)
			eng_copy_xattrs(c, c->rel, c->rel_len, cfd,
			    cz.dir->fd);
		memset(&it, 0, sizeof(it));
		it.kind = ENG_ITEM_DIR_META;
		it.fd = -1;
		it.self = eng_dir_ref(cz.dir);
		it.dir = z->dir ? eng_dir_ref(z->dir) : NULL;
		it.st = s->st;
		if ((it.rel = malloc(c->rel_len + 1)) == NULL) {
			eng_item_free(&it);
			goto out;
		}
		memcpy(it.rel, c->rel, c->rel_len + 1);
		it.rel_len = c->rel_len;
		it.name_off = c->rel_len - s->len;
		it.has_cat = c->cat != NULL;
		eng_fill_entry(&it.ce, &s->st);
		it.ce.type = CAT_DIR;
		(void)eng_pool_dir_meta(c, &it);
	} else if (!child_cat)
		(void)eng_put_item(c, z->dir, CAT_DIR, &s->st);
out:
	eng_ents_free(kids, nkids);
	if (cfd != -1)
		close(cfd);
	eng_dir_unref(cz.dir);
	c->src = saved_src;
	c->src_root_len = saved_root;
	c->src_dev = saved_dev;
}

/* ---- entries only the destination (or the catalogue) has ---- */

static void
eng_orphan(struct eng_ctx *c, struct eng_lazy *z, const char *name,
    size_t len, unsigned char dtype, const struct catalogue_entry *cn,
    struct eng_dstate *ds)
{
	struct eng_item	 it;
	struct stat	 st;
	bool		 is_dir;
	int		 dfd;

	if (cn == NULL && len > strlen(ENG_TMP_PREFIX) &&
	    memcmp(name, ENG_TMP_PREFIX, strlen(ENG_TMP_PREFIX)) == 0) {
		/* a temp file left by a killed run */
		if (c->pass == ENG_PASS_RUN && dtype != DT_DIR &&
		    unlinkat(z->dir->fd, name, 0) == 0)
			z->dir->touched = true;
		return;
	}
	if (cn != NULL)
		is_dir = cn->type == CAT_DIR;
	else if (dtype == DT_UNKNOWN)
		is_dir = z->dir != NULL && fstatat(z->dir->fd, name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
	else
		is_dir = dtype == DT_DIR;
	if (eng_excluded(c, is_dir))
		return;
	if (!c->mirror) {
		c->n_dest++;
		return;
	}
	dfd = eng_lazy_fd(c, z);
	if (dfd == -1) {
		if (c->pass == ENG_PASS_RUN && c->stop == ENG_GO &&
		    errno != ENOENT)
			eng_dest_error(c, errno, c->rel, c->rel_len,
			    "opening the folder of");
		if (cn != NULL)
			c->n_dest++, c->n_del++;
		return;
	}
	if (eng_remove(c, z->dir, name, true) == -1)
		return;
	ds->modified = true;
	if (c->pass == ENG_PASS_RUN && c->cat != NULL) {
		memset(&it, 0, sizeof(it));
		it.kind = ENG_ITEM_DEL;
		it.fd = -1;
		it.dir = eng_dir_ref(z->dir);
		if ((it.rel = malloc(c->rel_len + 1)) == NULL) {
			eng_item_free(&it);
			return;
		}
		memcpy(it.rel, c->rel, c->rel_len + 1);
		it.rel_len = c->rel_len;
		it.name_off = c->rel_len - len;
		it.ce.type = is_dir ? CAT_DIR : CAT_FILE;
		it.has_cat = true;
		(void)eng_batch_add(c, &it);
	}
}

/* ---- one folder ---- */

static void
eng_entry(struct eng_ctx *c, int sfd, struct eng_ent *s, struct eng_lazy *z,
    const struct catalogue_entry *cn, struct eng_dstate *ds, dev_t pdev,
    bool at_src_root)
{
	const char	*kind;
	char		*esc;
	bool		 is_dir;

	if (s->src == NULL && at_src_root && s->len == 6 &&
	    memcmp(s->name, ENG_META_DIR, 6) == 0) {
		esc = log_escape(c->src ? c->src->path : "?");
		eng_warn(c, "source %s: its .vigil folder is vigil's own and "
		    "is not copied", esc ? esc : "?");
		free(esc);
		return;
	}
	/* vigil's btrfs snapshots and reflink staging folders, made at the
	   root of a source's filesystem or next to its subvolume */
	if (s->src == NULL && (at_src_root || ds->fs_root) &&
	    s->serr == 0 && S_ISDIR(s->st.st_mode) &&
	    ((s->len == strlen(SNAP_DIR_NAME) && memcmp(s->name,
	    SNAP_DIR_NAME, s->len) == 0) || (s->len >
	    strlen(SNAP_STAGING_PREFIX) && memcmp(s->name,
	    SNAP_STAGING_PREFIX, strlen(SNAP_STAGING_PREFIX)) == 0))) {
		return;
	}
	if (s->serr != 0) {
		eng_problem(c, c->rel, c->rel_len, s->serr == ENOENT ?
		    "vanished" : "unreadable", false, "%s",
		    strerror(s->serr));
		return;
	}
	is_dir = S_ISDIR(s->st.st_mode);
	if (s->src == NULL && eng_excluded(c, is_dir))
		return;
	if (is_dir)
		eng_folder(c, sfd, s, z, cn, ds, pdev);
	else if (S_ISREG(s->st.st_mode))
		eng_file(c, sfd, s, z, cn, ds);
	else if (S_ISLNK(s->st.st_mode))
		eng_symlink(c, sfd, s, z, cn, ds);
	else {
		if (S_ISFIFO(s->st.st_mode))
			kind = "a FIFO";
		else if (S_ISSOCK(s->st.st_mode))
			kind = "a socket";
		else
			kind = "a device";
		eng_problem(c, c->rel, c->rel_len, "special-file", false,
		    "%s is not copied", kind);
	}
}

/*
 * Merge the sorted source entries S of one folder with the catalogue's rows
 * for it (cat_mode) or with the destination folder's listing.  z is the
 * destination folder; z->dir stays NULL while it is not needed (fast path)
 * or when it does not exist (plan passes).
 */
static void
eng_merge(struct eng_ctx *c, int sfd, struct eng_ent *S, size_t ns,
    struct eng_lazy *z, bool cat_mode, struct eng_dstate *ds, dev_t pdev)
{
	struct catalogue_entry	*C = NULL;
	struct eng_ent		*D = NULL;
	struct vg_err		 err;
	size_t			 nc = 0, nd = 0, i = 0, j = 0, old, olen;
	const char		*oname;
	bool			 at_src_root, at_dest_root;
	int			 cmp, dfd;

	at_dest_root = c->rel_len == 0;
	at_src_root = c->src != NULL && c->rel_len == c->src_root_len;
	if (cat_mode) {
		if (catalogue_dir_load(c->cat, c->rel, c->rel_len, &C, &nc,
		    &err) == -1) {
			eng_warn(c, "catalogue: %s; comparing with the "
			    "destination instead", err.msg);
			cat_mode = false;
			C = NULL;
			nc = 0;
		}
	}
	if (!cat_mode) {
		dfd = eng_lazy_fd(c, z);
		if (dfd != -1 && eng_list(dfd, false, &D, &nd) == -1) {
			eng_problem(c, c->rel, c->rel_len, "dest-error", false,
			    "cannot list the destination folder: %s; nothing "
			    "in it was changed", strerror(errno));
			return;
		}
	}
	while (i < ns || j < (cat_mode ? nc : nd)) {
		if (eng_check_cancel(c))
			break;
		if (j < (cat_mode ? nc : nd)) {
			oname = cat_mode ? C[j].name : D[j].name;
			olen = cat_mode ? C[j].name_len : D[j].len;
		} else {
			oname = NULL;
			olen = 0;
		}
		if (i >= ns)
			cmp = 1;
		else if (oname == NULL)
			cmp = -1;
		else
			cmp = eng_namecmp(S[i].name, S[i].len, oname, olen);
		if (cmp <= 0) {
			old = eng_push(c, S[i].name, S[i].len);
			if (!(at_dest_root && S[i].len == 6 &&
			    memcmp(S[i].name, ENG_META_DIR, 6) == 0 &&
			    S[i].src != NULL))
				eng_entry(c, sfd, &S[i], z, cmp == 0 &&
				    cat_mode ? &C[j] : NULL, ds, pdev,
				    at_src_root);
			eng_pop(c, old);
			i++;
			if (cmp == 0)
				j++;
		} else {
			old = eng_push(c, oname, olen);
			if (!(at_dest_root && olen == 6 &&
			    memcmp(oname, ENG_META_DIR, 6) == 0))
				eng_orphan(c, z, oname, olen, cat_mode ?
				    DT_UNKNOWN : D[j].dtype, cat_mode ? &C[j] :
				    NULL, ds);
			eng_pop(c, old);
			j++;
		}
		eng_pool_collect(c, ENG_COLLECT_READY);
		eng_progress(c, false);
	}
	catalogue_entries_free(C, nc);
	eng_ents_free(D, nd);
}

/* ---- the run ---- */

static const char *
eng_basename(const char *path, size_t *len)
{
	size_t	 n = strlen(path);
	const char *b;

	while (n > 1 && path[n - 1] == '/')
		n--;
	b = memrchr(path, '/', n);
	b = b ? b + 1 : path;
	*len = (size_t)(path + n - b);
	return b;
}

/* One walk over every source (a pass). */
static void
eng_walk(struct eng_ctx *c, int *sfds, struct stat *sst)
{
	const struct engine_opts *o = c->o;
	struct eng_lazy	 root;
	struct eng_ent	*S = NULL;
	struct eng_dstate ds;
	struct eng_item	 it;
	struct stat	 dst;
	const char	*b;
	size_t		 ns = 0, i, blen;
	int		 fd;

	memset(&root, 0, sizeof(root));
	memset(&ds, 0, sizeof(ds));
	c->rel_len = 0;
	c->rel[0] = '\0';
	if (c->dest_fd != -1) {
		if ((fd = dup(c->dest_fd)) == -1 ||
		    (root.dir = eng_dir_new(fd)) == NULL) {
			eng_fatal(c, errno, "cannot open the destination");
			return;
		}
	}
	if (o->nsources == 1) {
		c->src = &o->sources[0];
		c->src_root_len = 0;
		c->src_dev = sst[0].st_dev;
		if (eng_list(sfds[0], true, &S, &ns) == -1) {
			eng_fatal(c, errno, "cannot list source %s",
			    o->sources[0].path);
			goto out;
		}
		eng_mark_dbs(S, ns);
		ds.fs_root = true;
		eng_merge(c, sfds[0], S, ns, &root, c->use_cat &&
		    root.dir != NULL, &ds, sst[0].st_dev);
		/* the root has no catalogue row: always compare it (one
		   fstat), so a change of the source root's own mode or mtime
		   reaches the destination on the fast path too */
		if (c->pass == ENG_PASS_RUN && c->stop == ENG_GO &&
		    (ds.modified || fstat(c->dest_fd, &dst) == -1 ||
		    !eng_meta_same(c, &dst, &sst[0]) ||
		    eng_ts_ns(&dst.st_mtim) != eng_ts_ns(&sst[0].st_mtim))) {
			memset(&it, 0, sizeof(it));
			it.kind = ENG_ITEM_DIR_META;
			it.fd = -1;
			it.self = eng_dir_ref(root.dir);
			it.st = sst[0];
			it.rel = strdup("");
			(void)eng_pool_dir_meta(c, &it);
		}
	} else {
		if ((S = calloc(o->nsources, sizeof(*S))) == NULL) {
			eng_fatal(c, ENOMEM, "starting the walk");
			goto out;
		}
		for (i = 0; i < o->nsources; i++) {
			b = eng_basename(o->sources[i].path, &blen);
			S[i].fd = -1;
			if ((S[i].name = strndup(b, blen)) == NULL ||
			    (S[i].fd = dup(sfds[i])) == -1) {
				eng_fatal(c, errno, "starting the walk");
				ns = i + 1;
				goto out;
			}
			S[i].len = blen;
			S[i].st = sst[i];
			S[i].src = &o->sources[i];
			ns = i + 1;
		}
		qsort(S, ns, sizeof(*S), eng_ent_cmp);
		c->src = NULL;
		c->src_root_len = 0;
		eng_merge(c, -1, S, ns, &root, c->use_cat && root.dir != NULL,
		    &ds, 0);
	}
out:
	eng_ents_free(S, ns);
	eng_dir_unref(root.dir);
}

static void
eng_reset_counts(struct vg_engine_result *r)
{
	r->files = r->dirs = 0;
	r->files_copied = r->files_unchanged = r->files_deleted = 0;
	r->files_versioned = r->files_failed = 0;
	r->bytes_copied = r->bytes_total = 0;
	r->plan_copies = r->plan_deletes = r->plan_versions = 0;
	r->plan_bytes = 0;
	memset(r->capture, 0, sizeof(r->capture));
}

/* mkdir -p for the destination root; new folders get 0700. */
static int
eng_make_dest(const char *dest)
{
	char	*p, *s;
	int	 rc = 0;

	if ((p = strdup(dest)) == NULL)
		return -1;
	for (s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char ch = *s;
			*s = '\0';
			if (mkdir(p, 0700) == -1 && errno != EEXIST) {
				rc = -1;
				break;
			}
			*s = ch;
			if (ch == '\0')
				break;
		}
	}
	free(p);
	return rc;
}

static int
eng_open_sources(struct eng_ctx *c, int *sfds, struct stat *sst,
    struct vg_err *err)
{
	const struct engine_opts *o = c->o;
	struct plat_fsinfo fi;
	const char	*path;
	size_t		 i;

	for (i = 0; i < o->nsources; i++) {
		path = o->sources[i].read_from ? o->sources[i].read_from :
		    o->sources[i].path;
		sfds[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sfds[i] == -1 || fstat(sfds[i], &sst[i]) == -1) {
			vg_err_sys(err, "cannot read source %s (nothing was "
			    "copied or deleted; check that it exists and is "
			    "mounted)", path);
			return -1;
		}
		if (plat_fs_info(sfds[i], c->uid, &fi) == 0 && fi.pseudo) {
			vg_err_set(err, VG_ERR_INVALID, "source %s is on a "
			    "pseudo filesystem (%s), which is never backed "
			    "up", path, fi.type);
			return -1;
		}
		if (c->dest_fd != -1 && sst[i].st_dev == c->dest_st.st_dev &&
		    sst[i].st_ino == c->dest_st.st_ino) {
			vg_err_set(err, VG_ERR_INVALID, "source %s is the "
			    "destination itself", path);
			return -1;
		}
	}
	return 0;
}

/* Open each source's reflink staging folder (the clones go there). */
static int
eng_open_staging(struct eng_ctx *c, struct vg_err *err)
{
	const struct engine_opts *o = c->o;
	size_t		 i;

	if ((c->stg_fds = calloc(o->nsources, sizeof(*c->stg_fds))) == NULL)
		return -1;
	for (i = 0; i < o->nsources; i++)
		c->stg_fds[i] = -1;
	if (o->dry_run)
		return 0;
	for (i = 0; i < o->nsources; i++) {
		if (o->sources[i].staging == NULL)
			continue;
		c->stg_fds[i] = open(o->sources[i].staging, O_RDONLY |
		    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (c->stg_fds[i] == -1) {
			vg_err_sys(err, "cannot open the reflink staging folder "
			    "%s of source %s", o->sources[i].staging,
			    o->sources[i].path);
			return -1;
		}
	}
	return 0;
}

/* Close the sources and staging folders (a snapshot holds no open file of
 * ours once the walk is over). */
static void
eng_close_sources(struct eng_ctx *c, int *sfds)
{
	size_t	 i;

	for (i = 0; i < c->o->nsources; i++) {
		if (sfds != NULL && sfds[i] != -1) {
			close(sfds[i]);
			sfds[i] = -1;
		}
		if (c->stg_fds != NULL && c->stg_fds[i] != -1) {
			close(c->stg_fds[i]);
			c->stg_fds[i] = -1;
		}
	}
}

/*
 * Remove temp files a killed run left directly in <dest>/.vigil (job.ini
 * is written there after the engine, so a kill then leaves the catalogue
 * clean and the walk never looks inside .vigil).  One small listing per
 * run; nothing else writes there while this run's engine works.
 */
static void
eng_clean_meta(struct eng_ctx *c)
{
	struct eng_ent	*v = NULL;
	size_t		 n = 0, i, plen = strlen(ENG_TMP_PREFIX);
	int		 fd;

	fd = openat(c->dest_fd, ENG_META_DIR, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return;
	if (eng_list(fd, false, &v, &n) == 0) {
		for (i = 0; i < n; i++)
			if (v[i].len > plen && memcmp(v[i].name,
			    ENG_TMP_PREFIX, plen) == 0 && v[i].dtype != DT_DIR)
				(void)unlinkat(fd, v[i].name, 0);
	}
	eng_ents_free(v, n);
	close(fd);
}

static void
eng_summary(struct eng_ctx *c)
{
	struct vg_engine_result *r = c->res;

	if (c->pass == ENG_PASS_DRY && c->o->plan_out != NULL)
		fprintf(c->o->plan_out, "summary: %" PRIu64 " copies, %" PRIu64
		    " deletes, %" PRIu64 " versions, %" PRIu64 " bytes\n",
		    r->plan_copies, r->plan_deletes, r->plan_versions,
		    r->plan_bytes);
}

/* The max-delete check after a plan pass.  Returns -1 when over. */
static int
eng_check_delete(struct eng_ctx *c)
{
	char	*dest;
	unsigned pct;

	if (!c->mirror || c->n_del == 0)
		return 0;
	pct = c->n_dest ? (unsigned)(c->n_del * 100 / c->n_dest) : 100;
	if (c->n_dest > 0 &&
	    c->n_del * 100 <= (uint64_t)c->job->max_delete * c->n_dest)
		return 0;
	dest = log_escape(c->dest);
	free(c->res->message);
	c->res->message = NULL;
	if (asprintf(&c->res->message, "mirror stopped before changing "
	    "anything: it would delete %" PRIu64 " of the %" PRIu64
	    " entries at %s (%u%%), more than max-delete = %u%%; check that "
	    "the source is complete (a missing mount?), or raise max-delete",
	    c->n_del, c->n_dest, dest ? dest : "?", pct,
	    c->job->max_delete) == -1)
		c->res->message = NULL;
	free(dest);
	c->res->status = VG_RUN_FAILED;
	if (c->pass == ENG_PASS_DRY && c->o->plan_out != NULL)
		fprintf(c->o->plan_out, "abort: %s\n", c->res->message ?
		    c->res->message : "max-delete");
	return -1;
}

int
engine_run(const struct engine_opts *o, struct vg_engine_result *res,
    struct vg_err *err)
{
	struct eng_ctx		 c;
	struct versions_policy	 vp;
	struct vg_err		 e2;
	int			*sfds = NULL, rc = -1;
	struct stat		*sst = NULL;
	char			*errmsg = NULL;
	size_t			 i;
	bool			 cat_dirty = false, added_lost = false;
	struct vg_err		 lerr;

	if (err == NULL)
		err = &lerr;
	vg_err_clear(err);
	memset(res, 0, sizeof(*res));
	res->status = VG_RUN_FAILED;
	memset(&c, 0, sizeof(c));
	c.dest_fd = -1;
	c.o = o;
	c.job = o->job;
	c.res = res;
	c.gen = 1;
	if (o->job == NULL || o->job->destination == NULL ||
	    o->nsources == 0 || o->sources == NULL) {
		vg_err_set(err, VG_ERR_INVALID, "the job has no source or no "
		    "destination");
		goto fail;
	}
	if (o->job->mode != VG_MODE_BACKUP && o->job->mode != VG_MODE_MIRROR) {
		vg_err_set(err, VG_ERR_INVALID, "job %s: mode %s is not "
		    "supported by the copy engine", o->job->name ?
		    o->job->name : "?", config_mode_name(o->job->mode));
		goto fail;
	}
	c.mirror = o->job->mode == VG_MODE_MIRROR;
	c.keep = o->job->keep_versions > 0 || o->job->keep_days > 0;
	c.dest = o->job->destination;
	c.uid = geteuid();
	versions_stamp(o->now_ms, o->run_id, c.stamp, sizeof(c.stamp));
	c.filter = filter_compile(&o->job->include, &o->job->exclude, &errmsg);
	if (c.filter == NULL && (o->job->include.n || o->job->exclude.n)) {
		vg_err_set(err, VG_ERR_INVALID, "job %s: bad filter: %s",
		    o->job->name ? o->job->name : "?",
		    errmsg ? errmsg : "?");
		goto fail;
	}
	if ((c.buf = malloc(ENG_BUF)) == NULL ||
	    (c.rel = malloc(256)) == NULL ||
	    (sfds = calloc(o->nsources, sizeof(*sfds))) == NULL ||
	    (sst = calloc(o->nsources, sizeof(*sst))) == NULL) {
		vg_err_set(err, VG_ERR_SYS, "out of memory");
		goto fail;
	}
	c.rel_cap = 256;
	c.rel[0] = '\0';
	for (i = 0; i < o->nsources; i++)
		sfds[i] = -1;
	(void)plat_raise_fd_limit();

	c.dest_fd = open(c.dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.dest_fd == -1 && errno == ENOENT && !o->dry_run) {
		if (eng_make_dest(c.dest) == -1) {
			vg_err_sys(err, "cannot create destination %s",
			    c.dest);
			goto fail;
		}
		c.dest_fd = open(c.dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (c.dest_fd == -1 && !(errno == ENOENT && o->dry_run)) {
		vg_err_sys(err, "cannot open destination %s", c.dest);
		goto fail;
	}
	if (c.dest_fd != -1 && fstat(c.dest_fd, &c.dest_st) == -1) {
		vg_err_sys(err, "cannot open destination %s", c.dest);
		goto fail;
	}
	if (eng_open_sources(&c, sfds, sst, err) == -1)
		goto fail;
	if (eng_open_staging(&c, err) == -1 || eng_fb_load(&c) == -1) {
		if (err->code == VG_OK)
			vg_err_set(err, VG_ERR_SYS, "out of memory");
		goto fail;
	}

	if (o->catalogue != NULL) {
		c.cat = o->catalogue;
		cat_dirty = catalogue_was_dirty(c.cat);
		c.use_cat = !o->catalogue_fresh && !o->rescan && !cat_dirty;
		if (cat_dirty)
			eng_warn(&c, "the last run did not finish; comparing "
			    "with the destination and removing its temp "
			    "files");
	}
	res->status = VG_RUN_OK;
	/* read it back at once: no thread yet that makes files */
	c.umask = umask(077);
	(void)umask(c.umask);
	eng_set_phase(&c, ENGINE_PHASE_SCAN);
	if (eng_pool_start(&c, eng_pool_threads()) == -1)
		log_warnx("cannot start the copier threads (%s); the run goes "
		    "on with one thread", strerror(errno));

	/* mirror: count first, change nothing if too much would go */
	if (c.mirror && !o->dry_run) {
		c.pass = ENG_PASS_COUNT;
		eng_walk(&c, sfds, sst);
		eng_links_free(&c);
		if (c.stop == ENG_STOP_CANCEL) {
			res->status = VG_RUN_CANCELLED;
			goto done;
		}
		if (c.stop == ENG_STOP_FATAL)
			goto done;
		if (eng_check_delete(&c) == -1)
			goto done;
		c.prog.bytes_todo = res->plan_bytes;
		eng_reset_counts(res);
		c.n_del = c.n_dest = 0;
	}
	if (o->dry_run) {
		c.pass = ENG_PASS_DRY;
		eng_walk(&c, sfds, sst);
		eng_summary(&c);
		if (c.stop == ENG_STOP_CANCEL)
			res->status = VG_RUN_CANCELLED;
		else if (c.stop == ENG_GO)
			(void)eng_check_delete(&c);
		goto done;
	}

	c.pass = ENG_PASS_RUN;
	if (c.cat != NULL) {
		if ((!c.use_cat && catalogue_clear(c.cat, &e2) == -1) ||
		    catalogue_set_dirty(c.cat, true, &e2) == -1) {
			eng_warn(&c, "catalogue: %s; this run goes on without "
			    "it and the next one compares with the "
			    "destination", e2.msg);
			c.cat = NULL;
			c.use_cat = false;
		}
	}
	/*
	 * <dest>/.vigil is made before the walk, versions kept or not (the
	 * caller writes job.ini into it after the run): made later, it would
	 * change the destination root's mtime after the walk set it.
	 */
	if (mkdirat(c.dest_fd, ENG_META_DIR, 0700) == -1 && errno != EEXIST) {
		eng_dest_error(&c, errno, ENG_META_DIR, strlen(ENG_META_DIR),
		    "creating");
	} else
		eng_clean_meta(&c);
	eng_set_phase(&c, ENGINE_PHASE_COPY);
	if (c.stop == ENG_GO)
		eng_walk(&c, sfds, sst);
	eng_pool_stop(&c);	/* every copy is back */
	/* The sources are no longer read: the phases after this one tell
	   the service it may release the snapshot and reopen the apps. */
	c.walk_done = true;
	eng_close_sources(&c, sfds);
	if (c.stop == ENG_STOP_FATAL)
		eng_batch_abort(&c);
	else
		(void)eng_batch_flush(&c);
	if (c.stop == ENG_STOP_FATAL)
		eng_batch_abort(&c);
	if (eng_added_finish(&c) == -1) {
		int e = errno;

		/* Without the list a restore "as of" an earlier run would
		 * bring back what this run created: say so, and do not call
		 * the run ok. */
		eng_warn(&c, "the list of entries this run created "
		    "(.vigil/versions/<stamp>.added) could not be written (%s): "
		    "restores as of earlier runs may include them",
		    strerror(e));
		added_lost = true;
	}
	eng_versions_close(&c);
	if (c.stop == ENG_GO && c.keep) {
		eng_set_phase(&c, ENGINE_PHASE_RETENTION);
		vp.keep_versions = o->job->keep_versions;
		vp.keep_days = o->job->keep_days;
		vp.now_ms = o->now_ms;
		if (versions_prune(c.dest_fd, &vp, &res->versions_pruned,
		    &e2) == -1)
			eng_warn(&c, "retention: %s", e2.msg);
	}
	if (c.stop == ENG_STOP_CANCEL)
		res->status = VG_RUN_CANCELLED;
	if (c.stop == ENG_GO && c.cat != NULL &&
	    catalogue_set_dirty(c.cat, false, &e2) == -1)
		eng_warn(&c, "catalogue: %s", e2.msg);
done:
	if (res->status == VG_RUN_OK && (res->nproblems > c.nnotes ||
	    added_lost))
		res->status = VG_RUN_PARTIAL;
	if (res->message == NULL && res->status != VG_RUN_FAILED &&
	    asprintf(&res->message, "%" PRIu64 " files, %" PRIu64
	    " copied, %" PRIu64 " deleted, %" PRIu64 " bytes written, %zu "
	    "problems", res->files, res->files_copied, res->files_deleted,
	    res->bytes_copied, res->nproblems) == -1)
		res->message = NULL;
	eng_set_phase(&c, ENGINE_PHASE_DONE);
	rc = 0;
	goto out;
fail:
	res->status = VG_RUN_FAILED;
	free(res->message);
	res->message = strdup(err && err->msg[0] ? err->msg :
	    "the run could not start");
out:
	eng_pool_stop(&c);
	eng_release_wait(&c);
	free(c.held);
	eng_links_free(&c);
	eng_versions_close(&c);
	eng_close_sources(&c, sfds);
	eng_fb_free(&c);
	free(c.stg_fds);
	free(sfds);
	free(sst);
	if (c.dest_fd != -1)
		close(c.dest_fd);
	filter_free(c.filter);
	free(errmsg);
	free(c.buf);
	free(c.rel);
	free(c.items);
	return rc;
}

void
engine_result_free(struct vg_engine_result *res)
{
	size_t	 i;

	if (res == NULL)
		return;
	for (i = 0; i < res->nproblems; i++) {
		free(res->problems[i].path);
		free(res->problems[i].problem);
		free(res->problems[i].detail);
	}
	free(res->problems);
	for (i = 0; i < res->nwarnings; i++)
		free(res->warnings[i]);
	free(res->warnings);
	free(res->message);
	res->problems = NULL;
	res->warnings = NULL;
	res->message = NULL;
	res->nproblems = res->nwarnings = 0;
}
