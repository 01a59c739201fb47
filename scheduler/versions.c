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
	return 0;
}

static void
vs_remove_stamp(struct vs_walk *w, int vfd, const char *name, bool all)
{
	int	 fd;
	char	 added[VERSIONS_STAMP_MAX + 8];

	fd = openat(vfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		vg_err_sys(w->err, "versions: cannot open %s", name);
		w->failed = 1;
		return;
	}
	vs_pop(w, 0);
	if (vs_walk_dir(w, fd, all))
		(void)unlinkat(vfd, name, AT_REMOVEDIR);
	close(fd);
	if (all) {
		snprintf(added, sizeof(added), "%s.added", name);
		if (unlinkat(vfd, added, 0) == -1 && errno != ENOENT) {
			vg_err_sys(w->err, "versions: cannot remove %s",
			    added);
			w->failed = 1;
		}
	}
}

int
versions_prune(int dest_fd, const struct versions_policy *p,
    uint64_t *pruned, struct vg_err *err)
{
	struct vs_walk	 w;
	struct vs_stamp	*stamps = NULL, *ns;
	size_t		 n = 0, cap = 0, i;
	DIR		*dp = NULL;
	struct dirent	*de;
	int		 vfd = -1, dfd, rc = -1;
	int64_t		 t, id, now_s;

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
		if (versions_stamp_parse(de->d_name, &t, &id) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			if ((ns = realloc(stamps, cap * sizeof(*ns))) == NULL) {
				vg_err_set(err, VG_ERR_SYS, "out of memory");
				goto out;
			}
			stamps = ns;
		}
		if ((stamps[n].name = strdup(de->d_name)) == NULL) {
			vg_err_set(err, VG_ERR_SYS, "out of memory");
			goto out;
		}
		stamps[n].t = t;
		stamps[n].id = id;
		n++;
	}
	if (n > 1)
		qsort(stamps, n, sizeof(*stamps), vs_stamp_cmp);

	now_s = p->now_ms / 1000;
	for (i = 0; i < n; i++) {
		if (p->keep_days > 0 &&
		    now_s - stamps[i].t > (int64_t)p->keep_days * 86400)
			vs_remove_stamp(&w, vfd, stamps[i].name, true);
		else if (p->keep_versions > 0)
			vs_remove_stamp(&w, vfd, stamps[i].name, false);
	}
	/* Stamps with only a .added list left are kept (see versions.h). */
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
