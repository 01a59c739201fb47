/*
 * snapshot.c: which snapshot provider a source gets, and the run's
 * snapshots from record to removal (see snapshot.h).  The providers are
 * common/snapshot.h's; the records are db/snapshots.h's.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/snapshot.h"
#include "db/snapshots.h"
#include "scheduler/snapshot.h"

/* What a run made: removed in snapshot_release(). */
struct snapshot_made {
	int64_t		 row;
	bool		 btrfs;		/* else a staging folder */
	char		*path;
	char		*origin;	/* subvolume / staging path key */
};

struct snapshot_entry {
	struct snapshot_source pub;
	char		*read_from;
	char		*staging;
	char		*reason;
};

struct snapshot_set {
	int64_t			 run_id;
	struct snapshot_entry	*v;
	size_t			 n;
	struct snapshot_made	*m;
	size_t			 nm;
};

/* Methods a decision may not use (a failed attempt). */
#define SNAPSHOT_NO_BTRFS	0x1
#define SNAPSHOT_NO_REFLINK	0x2

static const char *
snapshot_method_name(enum vg_snapshot m)
{
	switch (m) {
	case VG_SNAP_AUTO:	return "auto";
	case VG_SNAP_BTRFS:	return "btrfs";
	case VG_SNAP_LVM:	return "lvm";
	case VG_SNAP_REFLINK:	return "reflink";
	case VG_SNAP_VERIFY:	return "verify";
	}
	return "?";
}

/* The folder of source (itself when it is one): where the reflink probe
 * makes its unnamed file. */
static int
snapshot_open_dir(const char *source)
{
	struct stat	 st;
	char		*copy, *slash;
	int		 fd;

	if (stat(source, &st) == -1)
		return -1;
	if (S_ISDIR(st.st_mode))
		return open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if ((copy = strdup(source)) == NULL)
		return -1;
	slash = strrchr(copy, '/');
	if (slash == NULL || slash == copy)
		fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else {
		*slash = '\0';
		fd = open(copy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	free(copy);
	return fd;
}

/* Can source's files be cloned into a staging folder we may make?  why
 * says why not. */
static bool
snapshot_reflink_ok(const char *source, const char *fstype, bool privileged,
    char *why, size_t len)
{
	char	*staging = NULL, *slash;
	int	 fd, e;
	bool	 ok = false;

	if ((fd = snapshot_open_dir(source)) == -1) {
		snprintf(why, len, "cannot open the source (%s)",
		    strerror(errno));
		return false;
	}
	if (snap_reflink_probe(fd) == -1) {
		e = errno;
		if (e == EOPNOTSUPP || e == ENOTTY || e == EINVAL ||
		    e == EXDEV || e == ENOSYS)
			snprintf(why, len, "%s cannot clone files", fstype);
		else if (e == EROFS)
			snprintf(why, len, "the source is on a read-only "
			    "filesystem");
		else
			snprintf(why, len, "cloning a test file failed (%s)",
			    strerror(e));
		goto out;
	}
	if (snap_reflink_plan(source, "probe", &staging) == -1) {
		snprintf(why, len, "cannot find the root of the source's mount "
		    "(%s)", strerror(errno));
		goto out;
	}
	slash = strrchr(staging, '/');
	*(slash == staging ? slash + 1 : slash) = '\0';
	if (!privileged && access(staging, W_OK) == -1) {
		snprintf(why, len, "the staging folder goes in %s, which only "
		    "root may write (the service is not root)", staging);
		goto out;
	}
	ok = true;
out:
	free(staging);
	close(fd);
	return ok;
}

static int
snapshot_decide(const char *source, enum vg_snapshot want, bool privileged,
    int skip, const char *note, struct snapshot_choice *out,
    struct vg_err *err)
{
	char	*subvol = NULL, *rel = NULL, *fstype = NULL;
	char	 type[32], nob[200], nor[200];
	bool	 on_btrfs, btrfs_ok, reflink_ok;
	int	 ret = -1, r;

	memset(out, 0, sizeof(*out));
	nob[0] = nor[0] = '\0';
	if (want == VG_SNAP_LVM) {
		(void)snap_lvm_check(source, nor, sizeof(nor));
		vg_err_set(err, VG_ERR_INVALID, "%s: snapshot = lvm: %s", source,
		    nor);
		goto out;
	}
	r = snap_btrfs_subvol(source, &subvol, &rel, &fstype);
	if (r == -1 && errno != ENOTSUP) {
		vg_err_sys(err, "%s: cannot examine the source", source);
		goto out;
	}
	on_btrfs = r == 0;
	snprintf(type, sizeof(type), "%s", on_btrfs ? "btrfs" :
	    fstype != NULL ? fstype : "unknown filesystem");
	btrfs_ok = on_btrfs && privileged && !(skip & SNAPSHOT_NO_BTRFS);
	if (!on_btrfs)
		snprintf(nob, sizeof(nob), "not btrfs (%s)", type);
	else if (!privileged)
		snprintf(nob, sizeof(nob), "btrfs snapshots need root (the "
		    "service runs as uid %u)", (unsigned)geteuid());
	else if (skip & SNAPSHOT_NO_BTRFS)
		snprintf(nob, sizeof(nob), "the btrfs snapshot failed");

	if (want == VG_SNAP_BTRFS && !btrfs_ok) {
		vg_err_set(err, VG_ERR_INVALID, "%s: snapshot = btrfs, but %s; "
		    "set snapshot = auto to use the best method available",
		    source, nob);
		goto out;
	}
	if (want == VG_SNAP_BTRFS || (want == VG_SNAP_AUTO && btrfs_ok)) {
		out->method = VG_SNAP_BTRFS;
		out->capture = VG_CAP_SNAPSHOT_BTRFS;
		snprintf(out->reason, sizeof(out->reason), "%sbtrfs snapshot "
		    "of subvolume %s", note, subvol);
		ret = 0;
		goto out;
	}
	if (want == VG_SNAP_VERIFY) {
		out->method = VG_SNAP_VERIFY;
		out->capture = VG_CAP_VERIFIED;
		snprintf(out->reason, sizeof(out->reason), "%sverified copy "
		    "(snapshot = verify)", note);
		ret = 0;
		goto out;
	}
	/* auto without btrfs, or reflink */
	reflink_ok = !(skip & SNAPSHOT_NO_REFLINK) &&
	    snapshot_reflink_ok(source, type, privileged, nor, sizeof(nor));
	if ((skip & SNAPSHOT_NO_REFLINK))
		snprintf(nor, sizeof(nor), "making the staging folder failed");
	if (want == VG_SNAP_REFLINK && !reflink_ok) {
		vg_err_set(err, VG_ERR_INVALID, "%s: snapshot = reflink, but "
		    "%s; set snapshot = auto to use the best method available",
		    source, nor);
		goto out;
	}
	if (reflink_ok) {
		out->method = VG_SNAP_REFLINK;
		out->capture = VG_CAP_REFLINK;
		snprintf(out->reason, sizeof(out->reason), "%sreflink clones "
		    "(%s)%s%s", note, type, want == VG_SNAP_AUTO ?
		    "; no btrfs snapshot: " : "", want == VG_SNAP_AUTO ? nob :
		    "");
	} else {
		out->method = VG_SNAP_VERIFY;
		out->capture = VG_CAP_VERIFIED;
		snprintf(out->reason, sizeof(out->reason), "%sverified copy; "
		    "no btrfs snapshot: %s; no reflink: %s", note, nob, nor);
	}
	ret = 0;
out:
	free(subvol);
	free(rel);
	free(fstype);
	return ret;
}

int
snapshot_choose(const char *source, enum vg_snapshot want, bool privileged,
    struct snapshot_choice *out, struct vg_err *err)
{
	return snapshot_decide(source, want, privileged, 0, "", out, err);
}

/* ---- a run's snapshots ---- */

size_t
snapshot_count(const struct snapshot_set *set)
{
	return set->n;
}

const struct snapshot_source *
snapshot_source(const struct snapshot_set *set, size_t i)
{
	return i < set->n ? &set->v[i].pub : NULL;
}

void
snapshot_set_free(struct snapshot_set *set)
{
	size_t	 i;

	if (set == NULL)
		return;
	for (i = 0; i < set->n; i++) {
		free(set->v[i].read_from);
		free(set->v[i].staging);
		free(set->v[i].reason);
	}
	for (i = 0; i < set->nm; i++) {
		free(set->m[i].path);
		free(set->m[i].origin);
	}
	free(set->v);
	free(set->m);
	free(set);
}

/* Remove one made snapshot or staging folder.  0 also when it is gone. */
static int
snapshot_remove_one(bool btrfs, const char *path)
{
	if (btrfs) {
		if (snap_btrfs_delete(path) == -1 && errno != ENOENT)
			return -1;
		return 0;
	}
	return snap_reflink_staging_remove(path);
}

int
snapshot_release(struct vg_store *st, struct snapshot_set *set,
    struct vg_err *err)
{
	struct vg_err	 e1;
	struct snapshot_made *m;
	size_t		 i;
	int		 ret = 0;

	for (i = set->nm; i-- > 0;) {
		m = &set->m[i];
		if (m->path == NULL)
			continue;
		if (snapshot_remove_one(m->btrfs, m->path) == -1) {
			if (ret == 0)
				vg_err_sys(err, "cannot remove the %s %s (the "
				    "next start tries again)", m->btrfs ?
				    "snapshot" : "staging folder", m->path);
			ret = -1;
			continue;
		}
		if (snapshots_remove(st, m->row, &e1) == -1) {
			if (ret == 0 && err != NULL)
				*err = e1;
			ret = -1;
			continue;
		}
		free(m->path);
		m->path = NULL;
	}
	return ret;
}

/* Record path, then make it; on failure forget it again.  *idx gets the
 * made entry. */
static int
snapshot_make(struct vg_store *st, struct snapshot_set *set, bool btrfs,
    const char *origin, const char *path, uid_t uid, gid_t gid, size_t *idx,
    struct vg_err *err)
{
	struct snapshot_made *nm, *m;
	struct vg_err	 ignore;
	int		 r, e;

	nm = reallocarray(set->m, set->nm + 1, sizeof(*set->m));
	if (nm == NULL) {
		vg_err_sys(err, "out of memory");
		return -1;
	}
	set->m = nm;
	m = &set->m[set->nm];
	memset(m, 0, sizeof(*m));
	m->btrfs = btrfs;
	if ((m->origin = strdup(origin)) == NULL) {
		vg_err_sys(err, "out of memory");
		return -1;
	}
	set->nm++;
	if (snapshots_add(st, set->run_id, btrfs ? SNAPSHOTS_KIND_BTRFS :
	    SNAPSHOTS_KIND_STAGING, path, origin, &m->row, err) == -1)
		return -1;
	r = btrfs ? snap_btrfs_create(origin, path) :
	    snap_reflink_staging_create(path, uid, gid);
	if (r == -1) {
		e = errno;
		(void)snapshots_remove(st, m->row, &ignore);
		errno = e;
		if (btrfs)
			vg_err_sys(err, "cannot take a btrfs snapshot of %s at "
			    "%s", origin, path);
		else
			vg_err_sys(err, "cannot make the reflink staging "
			    "folder %s", path);
		return -1;
	}
	if ((m->path = strdup(path)) == NULL) {
		/* made but unnamed: the row stays for the next start */
		vg_err_sys(err, "out of memory");
		return -1;
	}
	*idx = set->nm - 1;
	return 0;
}

/* The made entry for origin (btrfs subvolume or staging path), if any. */
static struct snapshot_made *
snapshot_find(struct snapshot_set *set, bool btrfs, const char *origin)
{
	size_t	 i;

	for (i = 0; i < set->nm; i++)
		if (set->m[i].path != NULL && set->m[i].btrfs == btrfs &&
		    strcmp(set->m[i].origin, origin) == 0)
			return &set->m[i];
	return NULL;
}

static int
snapshot_take_one(struct vg_store *st, struct snapshot_set *set,
    struct snapshot_entry *ent, enum vg_snapshot want, uid_t uid, gid_t gid,
    bool privileged, struct vg_err *err)
{
	struct snapshot_choice ch;
	struct snapshot_made *m;
	struct vg_err	 e1;
	char		*subvol = NULL, *rel = NULL, *path = NULL, name[64];
	char		 note[600];
	size_t		 idx;
	int		 skip = 0, ret = -1;

	note[0] = '\0';
	for (;;) {
		if (snapshot_decide(ent->pub.source, want, privileged, skip,
		    note, &ch, err) == -1)
			goto out;
		if (ch.method == VG_SNAP_BTRFS) {
			if (snap_btrfs_subvol(ent->pub.source, &subvol, &rel,
			    NULL) == -1) {
				vg_err_sys(err, "%s: cannot find its btrfs "
				    "subvolume", ent->pub.source);
				goto out;
			}
			if ((m = snapshot_find(set, true, subvol)) == NULL) {
				snprintf(name, sizeof(name), "r%lld-%zu",
				    (long long)set->run_id, set->nm);
				if (snap_btrfs_plan(subvol, name, &path) == -1) {
					vg_err_sys(err, "%s: cannot place a "
					    "snapshot of %s", ent->pub.source,
					    subvol);
					goto out;
				}
				if (snapshot_make(st, set, true, subvol, path,
				    uid, gid, &idx, &e1) == -1) {
					if (want != VG_SNAP_AUTO) {
						if (err != NULL)
							*err = e1;
						goto out;
					}
					snprintf(note, sizeof(note), "%.400s; "
					    "instead: ", e1.msg);
					skip |= SNAPSHOT_NO_BTRFS;
					free(subvol);
					free(rel);
					free(path);
					subvol = rel = path = NULL;
					continue;
				}
				m = &set->m[idx];
			}
			/* cppcheck-suppress nullPointerRedundantCheck ; m is
			 * set just above when the find failed */
			if (asprintf(&ent->read_from, "%s%s%s", m->path,
			    rel[0] ? "/" : "", rel) == -1) {
				ent->read_from = NULL;
				vg_err_sys(err, "out of memory");
				goto out;
			}
		} else if (ch.method == VG_SNAP_REFLINK) {
			snprintf(name, sizeof(name), "r%lld",
			    (long long)set->run_id);
			if (snap_reflink_plan(ent->pub.source, name, &path) ==
			    -1) {
				vg_err_sys(err, "%s: cannot place the reflink "
				    "staging folder", ent->pub.source);
				goto out;
			}
			if (snapshot_find(set, false, path) == NULL &&
			    snapshot_make(st, set, false, path, path, uid, gid,
			    &idx, &e1) == -1) {
				if (want != VG_SNAP_AUTO) {
					if (err != NULL)
						*err = e1;
					goto out;
				}
				snprintf(note, sizeof(note), "%.400s; instead: ",
				    e1.msg);
				skip |= SNAPSHOT_NO_BTRFS | SNAPSHOT_NO_REFLINK;
				free(path);
				path = NULL;
				continue;
			}
			ent->staging = path;
			path = NULL;
		}
		break;
	}
	if ((ent->reason = strdup(ch.reason)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	ent->pub.method = ch.method;
	ent->pub.capture = ch.capture;
	ent->pub.read_from = ent->read_from;
	ent->pub.staging = ent->staging;
	ent->pub.reason = ent->reason;
	ret = 0;
out:
	free(subvol);
	free(rel);
	free(path);
	return ret;
}

int
snapshot_take(struct vg_store *st, int64_t run_id,
    const struct vg_job_def *job, uid_t uid, gid_t gid, bool privileged,
    struct snapshot_set **out, struct vg_err *err)
{
	struct snapshot_set *set = NULL;
	struct vg_err	 ignore;
	size_t		 i;
	int		 ret = -1;

	*out = NULL;
	if ((set = calloc(1, sizeof(*set))) == NULL ||
	    (job->sources.n > 0 && (set->v = calloc(job->sources.n,
	    sizeof(*set->v))) == NULL)) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	set->run_id = run_id;
	set->n = job->sources.n;
	for (i = 0; i < set->n; i++) {
		set->v[i].pub.source = job->sources.v[i];
		if (snapshot_take_one(st, set, &set->v[i], job->snapshot, uid,
		    gid, privileged, err) == -1) {
			vg_err_prefix(err, "job %s: snapshot = %s",
			    job->name, snapshot_method_name(job->snapshot));
			goto out;
		}
	}
	*out = set;
	set = NULL;
	ret = 0;
out:
	if (set != NULL) {
		(void)snapshot_release(st, set, &ignore);
		snapshot_set_free(set);
	}
	return ret;
}

int
snapshot_cleanup(struct vg_store *st, size_t *removed, size_t *failed,
    struct vg_err *err)
{
	struct vg_snapshot_row *rows = NULL;
	struct vg_err	 e1;
	size_t		 n = 0, i;
	bool		 btrfs, first = true;
	int		 r;

	*removed = *failed = 0;
	if (snapshots_list(st, true, 0, &rows, &n, err) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		btrfs = strcmp(rows[i].kind, SNAPSHOTS_KIND_BTRFS) == 0;
		if (!btrfs && strcmp(rows[i].kind, SNAPSHOTS_KIND_STAGING) !=
		    0) {
			errno = EINVAL;
			r = -1;
		} else
			r = snapshot_remove_one(btrfs, rows[i].path);
		if (r == -1 && errno != EINVAL) {
			if (first)
				vg_err_sys(err, "run %lld: cannot remove the "
				    "%s %s (the next start tries again)",
				    (long long)rows[i].run_id, rows[i].kind,
				    rows[i].path);
			first = false;
			(*failed)++;
			continue;
		}
		if (r == -1) {
			/* not something vigil made: leave it, drop the row */
			if (first)
				vg_err_set(err, VG_ERR_INVALID, "run %lld: %s is "
				    "not a %s vigil made; it was left alone "
				    "and its record dropped",
				    (long long)rows[i].run_id, rows[i].path,
				    rows[i].kind);
			first = false;
			(*failed)++;
		} else
			(*removed)++;
		if (snapshots_remove(st, rows[i].id, &e1) == -1) {
			if (first && err != NULL)
				*err = e1;
			first = false;
		}
	}
	snapshot_rows_free(rows, n);
	return 0;
}
