/*
 * versions.c: stamps and retention of the versions area (versions.h).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "common/platform.h"
#include "scheduler/versions.h"

void
versions_stamp(int64_t now_ms, int64_t run_id, char *buf, size_t len)
{
	time_t		 t = (time_t)(now_ms / 1000);
	struct tm	 tm;

	if (now_ms < 0 && now_ms % 1000)
		t--;
	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d%02d%02dT%02d%02d%02dZ-r%" PRId64,
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, run_id);
}

int
versions_stamp_parse(const char *name, int64_t *t_s, int64_t *run_id)
{
	struct tm	 tm;
	const char	*p;
	char		*end;
	long long	 id;
	int		 i;

	/* YYYYMMDDTHHMMSSZ-r<digits> */
	for (i = 0; i < 16; i++) {
		if (i == 8) {
			if (name[i] != 'T')
				return -1;
		} else if (i == 15) {
			if (name[i] != 'Z')
				return -1;
		} else if (name[i] < '0' || name[i] > '9')
			return -1;
	}
	if (name[16] != '-' || name[17] != 'r')
		return -1;
	p = name + 18;
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	id = strtoll(p, &end, 10);
	if (errno || *end != '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
#define D2(o) ((name[o] - '0') * 10 + (name[(o) + 1] - '0'))
	tm.tm_year = D2(0) * 100 + D2(2) - 1900;
	tm.tm_mon = D2(4) - 1;
	tm.tm_mday = D2(6);
	tm.tm_hour = D2(9);
	tm.tm_min = D2(11);
	tm.tm_sec = D2(13);
#undef D2
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	*t_s = (int64_t)timegm(&tm);
	*run_id = id;
	return 0;
}

/* A set of relpaths with a count each. */
struct vs_set {
	struct vs_slot {
		char		*path;
		size_t		 len;
		uint64_t	 hash;
		unsigned	 count;
	}		*v;
	size_t		 cap, used;
};

static unsigned *
vs_set_get(struct vs_set *s, const char *path, size_t len)
{
	struct vs_slot	*nv;
	size_t		 i, j, ncap;
	uint64_t	 h;

	if (s->used * 2 >= s->cap) {
		ncap = s->cap ? s->cap * 2 : 256;
		if ((nv = calloc(ncap, sizeof(*nv))) == NULL)
			return NULL;
		for (i = 0; i < s->cap; i++) {
			if (s->v[i].path == NULL)
				continue;
			for (j = s->v[i].hash & (ncap - 1); nv[j].path != NULL;
			    j = (j + 1) & (ncap - 1))
				;
			nv[j] = s->v[i];
		}
		free(s->v);
		s->v = nv;
		s->cap = ncap;
	}
	h = XXH3_64bits(path, len);
	for (i = h & (s->cap - 1); s->v[i].path != NULL;
	    i = (i + 1) & (s->cap - 1)) {
		if (s->v[i].hash == h && s->v[i].len == len &&
		    memcmp(s->v[i].path, path, len) == 0)
			return &s->v[i].count;
	}
	if ((s->v[i].path = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(s->v[i].path, path, len);
	s->v[i].path[len] = '\0';
	s->v[i].len = len;
	s->v[i].hash = h;
	s->v[i].count = 0;
	s->used++;
	return &s->v[i].count;
}

static void
vs_set_free(struct vs_set *s)
{
	size_t	 i;

	for (i = 0; i < s->cap; i++)
		free(s->v[i].path);
	free(s->v);
}

struct vs_walk {
	const struct versions_policy *p;
	struct vs_set	 seen;
	char		*path;
	size_t		 len, cap;
	uint64_t	 pruned;
	struct vg_err	*err;
	int		 failed;
};

static int
vs_push(struct vs_walk *w, const char *name)
{
	size_t	 n = strlen(name), need = w->len + n + 2;
	char	*np;

	if (need > w->cap) {
		if ((np = realloc(w->path, need * 2)) == NULL)
			return -1;
		w->path = np;
		w->cap = need * 2;
	}
	if (w->len)
		w->path[w->len++] = '/';
	memcpy(w->path + w->len, name, n + 1);
	w->len += n;
	return 0;
}

static void
vs_pop(struct vs_walk *w, size_t len)
{
	w->len = len;
	if (w->path)
		w->path[len] = '\0';
}

/*
 * Walk folder fd (relpath in w->path).  remove_all: delete everything;
 * else delete files seen more than keep_versions times (newer stamps were
 * walked first).  Empty folders below are removed.  Returns 1 when fd ended
 * up empty.
 */
static int
vs_walk_dir(struct vs_walk *w, int fd, bool remove_all)
{
	DIR		*dp;
	struct dirent	*de;
	struct stat	 st;
	size_t		 saved;
	unsigned	*cnt;
	int		 cfd, dfd, left = 0, empty;
	bool		 isdir;

	if ((dfd = dup(fd)) == -1 || (dp = fdopendir(dfd)) == NULL) {
		if (dfd != -1)
			close(dfd);
		vg_err_sys(w->err, "versions: cannot list %s", w->path);
		w->failed = 1;
		return 0;
	}
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_UNKNOWN) {
			if (fstatat(fd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == -1) {
				left++;
				continue;
			}
			isdir = S_ISDIR(st.st_mode);
		} else
			isdir = de->d_type == DT_DIR;
		saved = w->len;
		if (vs_push(w, de->d_name) == -1) {
			vg_err_set(w->err, VG_ERR_SYS, "out of memory");
			w->failed = 1;
			left++;
			continue;
		}
		if (isdir) {
			cfd = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (cfd == -1) {
				vg_err_sys(w->err, "versions: cannot open %s",
				    w->path);
				w->failed = 1;
				left++;
			} else {
				empty = vs_walk_dir(w, cfd, remove_all);
				close(cfd);
				if (!empty || unlinkat(fd, de->d_name,
				    AT_REMOVEDIR) == -1)
					left++;
			}
		} else {
			if (!remove_all) {
				/* w->path stays w's (freed at versions_prune's out):
				 * NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
				cnt = vs_set_get(&w->seen, w->path, w->len);
				if (cnt == NULL) {
					vg_err_set(w->err, VG_ERR_SYS,
					    "out of memory");
					w->failed = 1;
					left++;
					vs_pop(w, saved);
					continue;
				}
				(*cnt)++;
			}
			if (remove_all || *cnt > w->p->keep_versions) {
				if (unlinkat(fd, de->d_name, 0) == -1) {
					vg_err_sys(w->err, "versions: cannot "
					    "remove %s", w->path);
					w->failed = 1;
					left++;
				} else
					w->pruned++;
			} else
				left++;
		}
		vs_pop(w, saved);
	}
	closedir(dp);
	return left == 0;
}

struct vs_stamp {
	char	*name;
	int64_t	 t, id;
	bool	 has_dir;	/* <stamp>/ is in the area */
	bool	 has_added;	/* <stamp>.added is */
	bool	 gone;		/* removed by keep_days */
	bool	 kept;		/* its folder still holds versions */
};

static int
vs_stamp_cmp(const void *a, const void *b)
{
	const struct vs_stamp *x = a, *y = b;

	/* newest first */
	if (x->t != y->t)
		return x->t < y->t ? 1 : -1;
	if (x->id != y->id)
		return x->id < y->id ? 1 : -1;
	return strcmp(x->name, y->name);
}

static void
vs_remove_added(struct vs_walk *w, int vfd, const char *name)
{
	char	 added[VERSIONS_STAMP_MAX + 8];

	snprintf(added, sizeof(added), "%s.added", name);
	if (unlinkat(vfd, added, 0) == -1 && errno != ENOENT) {
		vg_err_sys(w->err, "versions: cannot remove %s", added);
		w->failed = 1;
	}
}

/* Walk stamp folder s; all: remove everything.  Sets s->kept. */
static void
vs_remove_stamp(struct vs_walk *w, int vfd, struct vs_stamp *s, bool all)
{
	int	 fd;

	s->kept = false;
	if (s->has_dir) {
		fd = openat(vfd, s->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (fd == -1) {
			vg_err_sys(w->err, "versions: cannot open %s",
			    s->name);
			w->failed = 1;
			s->kept = true;
		} else {
			vs_pop(w, 0);
			if (vs_walk_dir(w, fd, all))
				(void)unlinkat(vfd, s->name, AT_REMOVEDIR);
			else
				s->kept = true;
			close(fd);
		}
	}
	if (all) {
		vs_remove_added(w, vfd, s->name);
		s->gone = true;
	}
}

/* The stamp entry for name (a stamp, or a stamp's .added), added when new.
 * NULL without memory. */
static struct vs_stamp *
vs_stamp_get(struct vs_stamp **v, size_t *n, size_t *cap, const char *name,
    size_t len, int64_t t, int64_t id)
{
	struct vs_stamp	*nv;
	size_t		 i;

	for (i = 0; i < *n; i++)
		if (strlen((*v)[i].name) == len &&
		    memcmp((*v)[i].name, name, len) == 0)
			return &(*v)[i];
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		if ((nv = realloc(*v, *cap * sizeof(*nv))) == NULL)
			return NULL;
		*v = nv;
	}
	memset(&(*v)[*n], 0, sizeof((*v)[*n]));
	if (((*v)[*n].name = strndup(name, len)) == NULL)
		return NULL;
	(*v)[*n].t = t;
	(*v)[*n].id = id;
	return &(*v)[(*n)++];
}

int
versions_prune(int dest_fd, const struct versions_policy *p,
    uint64_t *pruned, struct vg_err *err)
{
	struct vs_walk	 w;
	struct vs_stamp	*stamps = NULL, *sp;
	size_t		 n = 0, cap = 0, i, len, oldest;
	DIR		*dp = NULL;
	struct dirent	*de;
	int		 vfd = -1, dfd, rc = -1;
	int64_t		 t, id, now_s;
	char		 name[VERSIONS_STAMP_MAX];
	bool		 added, any_kept;

	memset(&w, 0, sizeof(w));
	w.p = p;
	w.err = err;
	if (pruned)
		*pruned = 0;
	vfd = plat_open_beneath(dest_fd, VERSIONS_DIR, O_RDONLY | O_DIRECTORY,
	    0);
	if (vfd == -1) {
		if (errno == ENOENT) {
			rc = 0;
			goto out;
		}
		vg_err_sys(err, "cannot open the versions area %s",
		    VERSIONS_DIR);
		goto out;
	}
	if ((dfd = dup(vfd)) == -1 || (dp = fdopendir(dfd)) == NULL) {
		if (dfd != -1)
			close(dfd);
		vg_err_sys(err, "cannot list the versions area");
		goto out;
	}
	while ((de = readdir(dp)) != NULL) {
		if (strncmp(de->d_name, ".vigil-tmp-", 11) == 0) {
			(void)unlinkat(vfd, de->d_name, 0);
			continue;
		}
		len = strlen(de->d_name);
		added = len > 6 && strcmp(de->d_name + len - 6, ".added") == 0;
		if (added)
			len -= 6;
		if (len >= sizeof(name))
			continue;
		memcpy(name, de->d_name, len);
		name[len] = '\0';
		if (versions_stamp_parse(name, &t, &id) == -1)
			continue;
		if ((sp = vs_stamp_get(&stamps, &n, &cap, name, len, t,
		    id)) == NULL) {
			vg_err_set(err, VG_ERR_SYS, "out of memory");
			goto out;
		}
		if (added)
			sp->has_added = true;
		else
			sp->has_dir = true;
	}
	if (n > 1)
		qsort(stamps, n, sizeof(*stamps), vs_stamp_cmp);

	now_s = p->now_ms / 1000;
	for (i = 0; i < n; i++) {
		if (p->keep_days > 0 &&
		    now_s - stamps[i].t > (int64_t)p->keep_days * 86400)
			vs_remove_stamp(&w, vfd, &stamps[i], true);
		else if (p->keep_versions > 0)
			vs_remove_stamp(&w, vfd, &stamps[i], false);
		else
			stamps[i].kept = stamps[i].has_dir;
	}
	/*
	 * keep_versions: a stamp's .added list goes with its versions.  It
	 * is removed when its folder was emptied, or when the stamp is older
	 * than every stamp that still holds a version (a restore "as of" a
	 * run that old lacks the versions it would need anyway).  While no
	 * stamp holds any version (a job that only ever added files), the
	 * lists stay: they are all a restore "as of" has; keep_days bounds
	 * them.
	 */
	if (p->keep_versions > 0) {
		any_kept = false;
		oldest = 0;
		for (i = 0; i < n; i++) {
			if (!stamps[i].gone && stamps[i].kept) {
				any_kept = true;
				oldest = i;	/* newest first: the last wins */
			}
		}
		for (i = 0; i < n; i++) {
			if (stamps[i].gone || !stamps[i].has_added)
				continue;
			if ((stamps[i].has_dir && !stamps[i].kept) ||
			    (any_kept && i > oldest))
				vs_remove_added(&w, vfd, stamps[i].name);
		}
	}
	rc = w.failed ? -1 : 0;
out:
	if (pruned)
		*pruned = w.pruned;
	for (i = 0; i < n; i++)
		free(stamps[i].name);
	free(stamps);
	if (dp)
		closedir(dp);
	if (vfd != -1)
		close(vfd);
	vs_set_free(&w.seen);
	free(w.path);
	return rc;
}
