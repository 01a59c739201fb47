/*
 * test_restore.c: restore from a destination laid out by hand exactly as
 * docs/architecture.md describes it (tree at the root, .vigil/versions/
 * <stamp>/<relpath> and <stamp>.added manifests), into real temp folders.
 */
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/err.h"
#include "scheduler/restore.h"

struct fx {
	char			 root[256];
	char			 dest[300], src[300], out[300], outside[300];
	char			 mnt[PATH_MAX];	/* mounted by a test, or "" */
	char			*srcv[2];
	struct vg_job_def	 job;
	struct restore_opts	 o;
	struct restore_result	 res;
	struct vg_err		 err;
	char			*outbuf;
	size_t			 outlen;
	FILE			*outfp;
};

#define T0	1700000000	/* mtimes of backup copies */

/* ---- helpers ------------------------------------------------------- */

static void
rmtree_at(int dfd, const char *name)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlinkat(dfd, name, 0);
		return;
	}
	fchmodat(dfd, name, 0700, 0);
	if ((fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) ==
	    -1)
		return;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			rmtree_at(dirfd(d), de->d_name);
	closedir(d);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

static void
mkdirs(const char *path)
{
	char buf[PATH_MAX], *s;

	snprintf(buf, sizeof buf, "%s", path);
	for (s = buf + 1; *s != '\0'; s++) {
		if (*s == '/') {
			*s = '\0';
			mkdir(buf, 0755);
			*s = '/';
		}
	}
	mkdir(buf, 0755);
}

static void
set_mtime(const char *path, time_t sec, long nsec)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { sec, nsec } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Write root/rel (parents made) with content, mode 0644, mtime sec. */
static void
put(const char *root, const char *rel, const char *content, time_t sec)
{
	char path[PATH_MAX], dir[PATH_MAX], *s;
	int fd;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	snprintf(dir, sizeof dir, "%s", path);
	if ((s = strrchr(dir, '/')) != NULL) {
		*s = '\0';
		mkdirs(dir);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)),
	    (ssize_t)strlen(content));
	close(fd);
	set_mtime(path, sec, 123456789);
}

/* Content of root/rel, or NULL if it is not there.  Caller frees. */
static char *
slurp(const char *root, const char *rel)
{
	char path[PATH_MAX], *buf;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW)) == -1)
		return NULL;
	buf = calloc(1, 65536);
	assert_non_null(buf);
	n = read(fd, buf, 65535);
	close(fd);
	assert_true(n >= 0);
	return buf;
}

/* buf = a/b; a test fails rather than use a cut path. */
static void
pjoin(char *buf, size_t sz, const char *a, const char *b)
{
	int n;

	n = snprintf(buf, sz, "%s/%s", a, b);
	assert_true(n > 0 && (size_t)n < sz);
}

static bool
exists(const char *root, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;

	pjoin(path, sizeof path, root, rel);
	return lstat(path, &st) == 0;
}

static void
lst(const char *root, const char *rel, struct stat *st)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/%s", root, rel);
	assert_int_equal(lstat(path, st), 0);
}

static int
count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* A stamp for run id, its time a minute per run after a fixed day. */
static void
stamp(char *buf, size_t sz, int run)
{
	snprintf(buf, sz, "20240301T10%02d00Z-r%d", run, run);
}

/* Keep a version: dest/.vigil/versions/<stamp>/rel holds content. */
static void
put_version(struct fx *f, int run, const char *rel, const char *content,
    time_t sec)
{
	char root[PATH_MAX], st[64];

	stamp(st, sizeof st, run);
	snprintf(root, sizeof root, "%s/.vigil/versions/%s", f->dest, st);
	put(root, rel, content, sec);
}

/* dest/.vigil/versions/<stamp>.added: NUL-terminated paths. */
static void
put_added(struct fx *f, int run, const char *const *rels, size_t n)
{
	char path[PATH_MAX], st[64];
	size_t i;
	int fd;

	stamp(st, sizeof st, run);
	snprintf(path, sizeof path, "%s/.vigil/versions", f->dest);
	mkdirs(path);
	snprintf(path, sizeof path, "%s/.vigil/versions/%s.added", f->dest,
	    st);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	for (i = 0; i < n; i++)
		assert_int_equal(write(fd, rels[i], strlen(rels[i]) + 1),
		    (ssize_t)strlen(rels[i]) + 1);
	close(fd);
}

static int
setup(void **state)
{
	struct fx *f;
	const char *tmp;

	f = calloc(1, sizeof *f);
	assert_non_null(f);
	tmp = getenv("TMPDIR");
	snprintf(f->root, sizeof f->root, "%s/vigil-restore-XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dest, sizeof f->dest, "%s/dest", f->root);
	snprintf(f->src, sizeof f->src, "%s/src", f->root);
	snprintf(f->out, sizeof f->out, "%s/out", f->root);
	snprintf(f->outside, sizeof f->outside, "%s/outside", f->root);
	mkdirs(f->dest);
	mkdirs(f->src);
	mkdirs(f->outside);
	put(f->dest, ".vigil/job.ini", "[job docs]\n", T0);
	f->srcv[0] = f->src;
	f->job.name = "docs";
	f->job.sources.v = f->srcv;
	f->job.sources.n = 1;
	f->job.destination = f->dest;
	f->job.keep_versions = 5;
	f->outfp = open_memstream(&f->outbuf, &f->outlen);
	assert_non_null(f->outfp);
	f->o.job = &f->job;
	f->o.out = f->outfp;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	restore_result_free(&f->res);
	if (f->mnt[0] != '\0')
		umount2(f->mnt, MNT_DETACH);
	fclose(f->outfp);
	free(f->outbuf);
	rmtree_at(AT_FDCWD, f->root);
	free(f);
	return 0;
}

static int
run(struct fx *f)
{
	restore_result_free(&f->res);
	memset(&f->err, 0, sizeof f->err);
	fflush(f->outfp);
	return restore_run(&f->o, &f->res, &f->err);
}

static bool
has_message(const struct fx *f, const char *needle)
{
	size_t i;

	for (i = 0; i < f->res.nmessages; i++)
		if (strstr(f->res.messages[i], needle) != NULL)
			return true;
	return false;
}

static const char *
outtext(struct fx *f)
{
	fflush(f->outfp);
	return f->outbuf != NULL ? f->outbuf : "";
}

#define ASSERT_CONTENT(root, rel, want) do {				\
	char *got_ = slurp((root), (rel));				\
	assert_non_null(got_);						\
	assert_string_equal(got_, (want));				\
	free(got_);							\
} while (0)

/* ---- latest ----------------------------------------------------------- */

static void
test_latest_single_file_to_dir(void **state)
{
	struct fx *f = *state;
	const char *paths[] = { "notes/a.txt" };
	struct stat a, b;

	put(f->dest, "notes/a.txt", "hello", T0);
	put(f->dest, "notes/b.txt", "other", T0);
	chmod(f->dest, 0755);
	{
		char p[PATH_MAX];

		snprintf(p, sizeof p, "%s/notes/a.txt", f->dest);
		chmod(p, 0640);
		set_mtime(p, T0, 123456789);
	}
	f->o.paths = paths;
	f->o.npaths = 1;
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "notes/a.txt", "hello");
	assert_false(exists(f->out, "notes/b.txt"));
	lst(f->dest, "notes/a.txt", &a);
	lst(f->out, "notes/a.txt", &b);
	assert_int_equal(b.st_mode & 07777, 0640);
	assert_int_equal(b.st_mtim.tv_sec, a.st_mtim.tv_sec);
	assert_int_equal(b.st_mtim.tv_nsec, a.st_mtim.tv_nsec);
	assert_int_equal(f->res.files_restored, 1);
	assert_int_equal(f->res.bytes, 5);
	assert_int_equal(f->res.errors, 0);
	assert_non_null(strstr(outtext(f), "restore "));
	/* no temp file left behind */
	{
		char p[PATH_MAX];

		snprintf(p, sizeof p, "%s/notes", f->out);
		assert_int_equal(count_entries(p), 1);
	}
}

static void
test_latest_whole_tree_to_dir(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX], link[64];
	struct stat st;
	ssize_t n;

	put(f->dest, "a.txt", "A", T0);
	put(f->dest, "d1/d2/deep.txt", "deep", T0);
	snprintf(p, sizeof p, "%s/empty", f->dest);
	mkdir(p, 0750);
	set_mtime(p, T0 + 5, 0);
	snprintf(p, sizeof p, "%s/lnk", f->dest);
	assert_int_equal(symlink("a.txt", p), 0);
	snprintf(p, sizeof p, "%s/d1", f->dest);
	chmod(p, 0711);
	set_mtime(p, T0 + 7, 42);
	put_version(f, 3, "a.txt", "old", T0 - 100);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "a.txt", "A");
	ASSERT_CONTENT(f->out, "d1/d2/deep.txt", "deep");
	lst(f->out, "empty", &st);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_mtim.tv_sec, T0 + 5);
	lst(f->out, "d1", &st);
	assert_int_equal(st.st_mode & 07777, 0711);
	assert_int_equal(st.st_mtim.tv_sec, T0 + 7);
	assert_int_equal(st.st_mtim.tv_nsec, 42);
	lst(f->out, "lnk", &st);
	assert_true(S_ISLNK(st.st_mode));
	snprintf(p, sizeof p, "%s/lnk", f->out);
	n = readlink(p, link, sizeof link - 1);
	assert_int_equal(n, 5);
	link[n] = '\0';
	assert_string_equal(link, "a.txt");
	assert_false(exists(f->out, ".vigil"));
	assert_int_equal(f->res.files_restored, 3);
	assert_int_equal(count_entries(f->out), 4);
}

static void
test_latest_to_original_location(void **state)
{
	struct fx *f = *state;
	char abs[PATH_MAX];
	const char *paths[] = { abs };

	put(f->dest, "docs/report.txt", "backed up", T0);
	put(f->dest, "docs/keep.txt", "backup of keep", T0);
	put(f->src, "docs/keep.txt", "live keep", T0 + 1000);
	snprintf(abs, sizeof abs, "%s/docs", f->src);
	f->o.paths = paths;
	f->o.npaths = 1;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->src, "docs/report.txt", "backed up");
	/* the live file is newer: left alone */
	ASSERT_CONTENT(f->src, "docs/keep.txt", "live keep");
	assert_int_equal(f->res.files_restored, 1);
	assert_int_equal(f->res.files_skipped_newer, 1);
	assert_false(exists(f->root, "out"));
}

static void
test_whole_job_to_original_location(void **state)
{
	struct fx *f = *state;

	put(f->dest, "x/y.txt", "y", T0);
	rmtree_at(AT_FDCWD, f->src);	/* the whole source is gone */
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->src, "x/y.txt", "y");
	assert_false(exists(f->src, ".vigil"));
}

static void
test_multi_source_mapping(void **state)
{
	struct fx *f = *state;
	char s1[PATH_MAX], s2[PATH_MAX], abs[PATH_MAX];
	const char *paths[] = { abs };

	snprintf(s1, sizeof s1, "%s/home/docs", f->root);
	snprintf(s2, sizeof s2, "%s/srv/pics/", f->root);	/* trailing / */
	mkdirs(s1);
	mkdirs(s2);
	f->srcv[0] = s1;
	f->srcv[1] = s2;
	f->job.sources.n = 2;
	put(f->dest, "docs/a.txt", "doc a", T0);
	put(f->dest, "pics/sub/b.jpg", "pic b", T0);

	/* everything, back to where each came from */
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(s1, "a.txt", "doc a");
	ASSERT_CONTENT(s2, "sub/b.jpg", "pic b");
	assert_false(exists(s1, "docs"));
	assert_false(exists(s2, "pics"));
	assert_int_equal(f->res.files_restored, 2);

	/* an absolute path under the second source, into --to */
	snprintf(abs, sizeof abs, "%s/srv/pics/sub/b.jpg", f->root);
	f->o.paths = paths;
	f->o.npaths = 1;
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "pics/sub/b.jpg", "pic b");
	assert_false(exists(f->out, "docs"));
}

static void
test_multi_source_relative_path_outside_bases(void **state)
{
	struct fx *f = *state;
	char s1[PATH_MAX], s2[PATH_MAX];
	const char *paths[] = { "music/x" };

	snprintf(s1, sizeof s1, "%s/home/docs", f->root);
	snprintf(s2, sizeof s2, "%s/srv/pics", f->root);
	f->srcv[0] = s1;
	f->srcv[1] = s2;
	f->job.sources.n = 2;
	put(f->dest, "music/x", "x", T0);
	f->o.paths = paths;
	f->o.npaths = 1;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->err.code, VG_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "music/x"));
	assert_non_null(strstr(f->err.msg, "hint"));
}

/* ---- as of ------------------------------------------------------------ */

static void
test_as_of_run_picks_version(void **state)
{
	struct fx *f = *state;
	const char *paths[] = { "f.txt" };
	const char *want[] = { "v1", "v2", "v3", "v4" };
	struct stat st;
	int asof;

	/* run 2 replaced v1, run 3 replaced v2, run 4 replaced v3 */
	put(f->dest, "f.txt", "v4", T0 + 400);
	put_version(f, 2, "f.txt", "v1", T0 + 100);
	put_version(f, 3, "f.txt", "v2", T0 + 200);
	put_version(f, 4, "f.txt", "v3", T0 + 300);
	f->o.paths = paths;
	f->o.npaths = 1;
	f->o.to = f->out;
	f->o.overwrite = true;
	for (asof = 1; asof <= 4; asof++) {
		f->o.as_of_run = asof;
		assert_int_equal(run(f), 0);
		ASSERT_CONTENT(f->out, "f.txt", want[asof - 1]);
		lst(f->out, "f.txt", &st);
		assert_int_equal(st.st_mtim.tv_sec, T0 + 100 * asof);
		assert_int_equal(f->res.files_restored, 1);
	}
}

static void
test_as_of_time(void **state)
{
	struct fx *f = *state;
	const char *paths[] = { "f.txt" };
	struct tm tm = { 0 };
	time_t t;

	put(f->dest, "f.txt", "now", T0 + 400);
	put_version(f, 2, "f.txt", "before run 2", T0 + 100);
	put_version(f, 3, "f.txt", "before run 3", T0 + 200);
	/* between run 2 (10:02) and run 3 (10:03) */
	tm.tm_year = 124;
	tm.tm_mon = 2;
	tm.tm_mday = 1;
	tm.tm_hour = 10;
	tm.tm_min = 2;
	tm.tm_sec = 30;
	t = timegm(&tm);
	f->o.paths = paths;
	f->o.npaths = 1;
	f->o.to = f->out;
	f->o.as_of_ms = (int64_t)t * 1000;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "f.txt", "before run 3");
}

static void
test_as_of_excludes_added_later(void **state)
{
	struct fx *f = *state;
	const char *added[] = { "new.txt", "newdir" };

	put(f->dest, "old.txt", "old", T0);
	put(f->dest, "new.txt", "new", T0);
	put(f->dest, "newdir/inner.txt", "inner", T0);
	put_added(f, 3, added, 2);
	f->o.to = f->out;
	f->o.as_of_run = 2;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "old.txt", "old");
	assert_false(exists(f->out, "new.txt"));
	/* a file inside a folder that run 3 created did not exist either */
	assert_false(exists(f->out, "newdir"));
	assert_int_equal(f->res.files_restored, 1);

	/* as of run 3 it is there */
	f->o.as_of_run = 3;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "new.txt", "new");
	ASSERT_CONTENT(f->out, "newdir/inner.txt", "inner");
}

static void
test_as_of_added_path_asked_for_is_an_error(void **state)
{
	struct fx *f = *state;
	const char *added[] = { "new.txt" };
	const char *paths[] = { "new.txt" };

	put(f->dest, "new.txt", "new", T0);
	put_added(f, 3, added, 1);
	f->o.paths = paths;
	f->o.npaths = 1;
	f->o.to = f->out;
	f->o.as_of_run = 2;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->res.errors, 1);
	assert_true(has_message(f, "new.txt: not in the backup of job docs "
	    "as of run 2"));
	assert_false(exists(f->out, "new.txt"));
}

static void
test_deleted_file_restored_from_versions(void **state)
{
	struct fx *f = *state;

	/* run 3 deleted gone.txt and the folder olddir */
	put(f->dest, "stay.txt", "stay", T0);
	put_version(f, 3, "gone.txt", "gone", T0 + 1);
	put_version(f, 3, "olddir/sub/x.txt", "x", T0 + 2);
	f->o.to = f->out;

	/* latest: the deleted files are not part of it */
	assert_int_equal(run(f), 0);
	assert_false(exists(f->out, "gone.txt"));
	assert_false(exists(f->out, "olddir"));

	f->o.as_of_run = 2;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "gone.txt", "gone");
	ASSERT_CONTENT(f->out, "olddir/sub/x.txt", "x");
	assert_int_equal(f->res.files_restored, 2);
	assert_int_equal(f->res.files_unchanged, 1);	/* stay.txt */
}

static void
test_deleted_file_asked_by_path(void **state)
{
	struct fx *f = *state;
	const char *paths[] = { "olddir" };

	put_version(f, 3, "olddir/x.txt", "x", T0 + 2);
	put_version(f, 3, "other.txt", "o", T0 + 2);
	f->o.paths = paths;
	f->o.npaths = 1;
	f->o.to = f->out;
	f->o.as_of_run = 1;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "olddir/x.txt", "x");
	assert_false(exists(f->out, "other.txt"));
}

static void
test_as_of_file_later_replaced_by_folder(void **state)
{
	struct fx *f = *state;
	struct stat st;

	/* run 2 replaced the file p by a folder p/ (no manifest entry) */
	put(f->dest, "p/x.txt", "in the new folder", T0);
	put_version(f, 2, "p", "old file", T0 - 50);
	f->o.to = f->out;
	f->o.as_of_run = 1;
	assert_int_equal(run(f), 0);
	lst(f->out, "p", &st);
	assert_true(S_ISREG(st.st_mode));
	ASSERT_CONTENT(f->out, "p", "old file");
	assert_int_equal(f->res.errors, 0);
	assert_int_equal(f->res.files_restored, 1);
}

static void
test_no_versions_as_of_is_an_error(void **state)
{
	struct fx *f = *state;

	put(f->dest, "a.txt", "A", T0);
	f->job.keep_versions = 0;
	f->job.keep_days = 0;
	f->o.to = f->out;
	f->o.as_of_run = 1;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->err.code, VG_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "job docs keeps no versions; "
	    "only the latest backup can be restored"));
	assert_non_null(strstr(f->err.msg, "hint"));
	assert_false(exists(f->root, "out"));

	/* keep-days alone is enough */
	f->job.keep_days = 7;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "a.txt", "A");
}

/* ---- newer, unchanged, type clashes ---------------------------------- */

static void
test_newer_target_skipped_then_overwritten(void **state)
{
	struct fx *f = *state;
	const char *paths[] = { "a.txt" };
	struct stat st;

	put(f->dest, "a.txt", "backup", T0);
	put(f->out, "a.txt", "edited later", T0 + 60);
	f->o.paths = paths;
	f->o.npaths = 1;
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "a.txt", "edited later");
	assert_int_equal(f->res.files_skipped_newer, 1);
	assert_int_equal(f->res.files_restored, 0);
	assert_true(has_message(f, "newer than the backup copy"));

	f->o.overwrite = true;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "a.txt", "backup");
	lst(f->out, "a.txt", &st);
	assert_int_equal(st.st_mtim.tv_sec, T0);
	assert_int_equal(f->res.files_restored, 1);
}

static void
test_older_target_replaced(void **state)
{
	struct fx *f = *state;

	put(f->dest, "a.txt", "backup", T0);
	put(f->out, "a.txt", "older junk", T0 - 60);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "a.txt", "backup");
	assert_int_equal(f->res.files_restored, 1);
}

static void
test_identical_target_unchanged(void **state)
{
	struct fx *f = *state;
	struct stat before, after;

	put(f->dest, "a.txt", "same", T0);
	put(f->out, "a.txt", "same", T0);
	lst(f->out, "a.txt", &before);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	lst(f->out, "a.txt", &after);
	assert_int_equal(f->res.files_unchanged, 1);
	assert_int_equal(f->res.files_restored, 0);
	assert_int_equal(before.st_ino, after.st_ino);	/* not rewritten */
}

static void
test_folder_at_file_place_refused(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	put(f->dest, "a.txt", "file", T0);
	snprintf(p, sizeof p, "%s/a.txt", f->out);
	mkdirs(p);
	f->o.to = f->out;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->res.errors, 1);
	assert_true(has_message(f, "a folder is where the backup has a file"));
	/* with --overwrite an empty folder gives way */
	f->o.overwrite = true;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "a.txt", "file");
}

static void
test_file_at_folder_place_refused(void **state)
{
	struct fx *f = *state;

	put(f->dest, "d/x.txt", "x", T0);
	put(f->out, "d", "I am a file", T0 + 999);
	f->o.to = f->out;
	assert_int_equal(run(f), -1);
	assert_true(has_message(f, "a file is where the backup has a folder"));
	ASSERT_CONTENT(f->out, "d", "I am a file");
}

/* ---- hostile targets --------------------------------------------------- */

static void
test_symlink_at_target_file_not_followed(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX], victim[PATH_MAX];
	struct stat st;

	put(f->dest, "a.txt", "restored", T0);
	put(f->outside, "victim.txt", "precious", T0 + 9999);
	mkdirs(f->out);
	snprintf(p, sizeof p, "%s/a.txt", f->out);
	snprintf(victim, sizeof victim, "%s/victim.txt", f->outside);
	assert_int_equal(symlink(victim, p), 0);
	f->o.to = f->out;

	assert_int_equal(run(f), -1);
	assert_true(has_message(f, "a symlink is where the backup has a "
	    "file"));
	ASSERT_CONTENT(f->outside, "victim.txt", "precious");

	/* --overwrite replaces the link itself, never what it points at */
	f->o.overwrite = true;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->outside, "victim.txt", "precious");
	lst(f->out, "a.txt", &st);
	assert_true(S_ISREG(st.st_mode));
	ASSERT_CONTENT(f->out, "a.txt", "restored");
	assert_int_equal(count_entries(f->outside), 1);
}

static void
test_symlink_at_target_parent_not_followed(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	const char *paths[] = { "dir/sub/f.txt", "ok.txt" };

	put(f->dest, "dir/sub/f.txt", "data", T0);
	put(f->dest, "ok.txt", "ok", T0);
	mkdirs(f->out);
	snprintf(p, sizeof p, "%s/dir", f->out);
	assert_int_equal(symlink(f->outside, p), 0);
	f->o.paths = paths;
	f->o.npaths = 2;
	f->o.to = f->out;
	f->o.overwrite = true;	/* even so */
	assert_int_equal(run(f), -1);
	assert_true(f->res.errors >= 1);
	assert_true(has_message(f, "is a symlink; restore never writes "
	    "through one"));
	assert_int_equal(count_entries(f->outside), 0);
	/* the other files still came back */
	ASSERT_CONTENT(f->out, "ok.txt", "ok");
	assert_int_equal(f->res.files_restored, 1);
}

static void
test_symlink_at_source_parent_original_location(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	const char *paths[] = { "sub/f.txt" };

	put(f->dest, "sub/f.txt", "data", T0);
	snprintf(p, sizeof p, "%s/sub", f->src);
	assert_int_equal(symlink(f->outside, p), 0);
	f->o.paths = paths;
	f->o.npaths = 1;
	assert_int_equal(run(f), -1);
	assert_true(has_message(f, "is a symlink"));
	assert_int_equal(count_entries(f->outside), 0);
}

static void
test_target_inside_destination_refused(void **state)
{
	struct fx *f = *state;
	char to[PATH_MAX];

	put(f->dest, "a.txt", "A", T0);
	snprintf(to, sizeof to, "%s/restored", f->dest);
	f->o.to = to;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->err.code, VG_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "inside the destination"));
	assert_false(exists(to, "a.txt"));
}

/* ---- bad paths ----------------------------------------------------------- */

static void
check_bad_path(struct fx *f, const char *path, const char *why)
{
	const char *paths[] = { path };

	put(f->dest, "a.txt", "A", T0);
	f->o.paths = paths;
	f->o.npaths = 1;
	f->o.to = f->out;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->err.code, VG_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, why));
	assert_non_null(strstr(f->err.msg, "hint"));
	assert_int_equal(f->res.files_restored, 0);
	assert_false(exists(f->root, "out"));
}

static void
test_dotdot_rejected(void **state)
{
	struct fx *f = *state;

	check_bad_path(f, "x/../../etc/passwd", "'..' is not allowed");
	assert_non_null(strstr(f->err.msg, "x/../../etc/passwd"));
}

static void
test_absolute_dotdot_rejected(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	snprintf(p, sizeof p, "%s/../outside/x", f->src);
	check_bad_path(f, p, "'..' is not allowed");
}

static void
test_outside_sources_rejected(void **state)
{
	struct fx *f = *state;

	check_bad_path(f, "/etc/passwd", "not under any source of job docs");
	assert_non_null(strstr(f->err.msg, "/etc/passwd"));
	assert_non_null(strstr(f->err.msg, f->src));
}

static void
test_source_prefix_sibling_rejected(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	/* "<src>x/..." shares a prefix with the source but is outside it */
	snprintf(p, sizeof p, "%sx/a.txt", f->src);
	check_bad_path(f, p, "not under any source");
}

static void
test_empty_path_rejected(void **state)
{
	struct fx *f = *state;

	check_bad_path(f, "", "empty path");
}

static void
test_vigil_area_rejected(void **state)
{
	struct fx *f = *state;

	check_bad_path(f, "./.vigil/job.ini", ".vigil holds vigil's own");
}

static void
test_missing_path_is_an_error(void **state)
{
	struct fx *f = *state;
	const char *paths[] = { "nope.txt", "a.txt" };

	put(f->dest, "a.txt", "A", T0);
	f->o.paths = paths;
	f->o.npaths = 2;
	f->o.to = f->out;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->res.errors, 1);
	assert_true(has_message(f, "nope.txt: not in the backup of job docs"));
	ASSERT_CONTENT(f->out, "a.txt", "A");
}

static void
test_missing_destination_is_an_error(void **state)
{
	struct fx *f = *state;

	rmtree_at(AT_FDCWD, f->dest);
	f->o.to = f->out;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->err.code, VG_ERR_NOTFOUND);
	assert_non_null(strstr(f->err.msg, f->dest));
}

/* ---- dry run ----------------------------------------------------------- */

static void
test_dry_run_writes_nothing(void **state)
{
	struct fx *f = *state;
	const char *t;

	put(f->dest, "a.txt", "A", T0);
	put(f->dest, "d/b.txt", "B", T0);
	f->o.to = f->out;
	f->o.dry_run = true;
	assert_int_equal(run(f), 0);
	assert_false(exists(f->root, "out"));
	assert_int_equal(f->res.files_restored, 2);
	t = outtext(f);
	assert_non_null(strstr(t, "/dest/a.txt -> "));
	assert_non_null(strstr(t, "/out/d/b.txt\n"));

	/* to the original location too */
	f->o.to = NULL;
	assert_int_equal(run(f), 0);
	assert_int_equal(count_entries(f->src), 0);
}

static void
test_dry_run_as_of_lists_version(void **state)
{
	struct fx *f = *state;
	char want[PATH_MAX], st[64];

	put(f->dest, "f.txt", "new", T0 + 10);
	put_version(f, 2, "f.txt", "old", T0);
	f->o.to = f->out;
	f->o.dry_run = true;
	f->o.as_of_run = 1;
	assert_int_equal(run(f), 0);
	stamp(st, sizeof st, 2);
	snprintf(want, sizeof want, "restore %s/.vigil/versions/%s/f.txt -> "
	    "%s/f.txt\n", f->dest, st, f->out);
	assert_non_null(strstr(outtext(f), want));
	assert_false(exists(f->root, "out"));
}

/* ---- odd names, modes, sizes ------------------------------------------- */

static void
test_invalid_utf8_and_newline_names(void **state)
{
	struct fx *f = *state;
	const char *name = "bad\xff\xfe name\nwith newline";
	const char *paths[] = { name };
	const char *t, *nl;

	put(f->dest, name, "odd", T0);
	f->o.paths = paths;
	f->o.npaths = 1;
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, name, "odd");
	t = outtext(f);
	/* one line, escaped */
	nl = strchr(t, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
	assert_non_null(strstr(t, "\\xff\\xfe name\\x0awith newline"));
}

static void
test_setuid_dropped(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	struct stat st;

	put(f->dest, "tool", "#!/bin/sh\n", T0);
	snprintf(p, sizeof p, "%s/tool", f->dest);
	assert_int_equal(chmod(p, 06755), 0);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	lst(f->out, "tool", &st);
	assert_int_equal(st.st_mode & 07777, 0755);
}

static void
test_keep_owner(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	struct stat st;

	put(f->dest, "owned", "x", T0);
	f->o.to = f->out;
	f->o.keep_owner = true;
	if (geteuid() != 0) {
		assert_int_equal(run(f), -1);
		assert_int_equal(f->err.code, VG_ERR_PERM);
		assert_non_null(strstr(f->err.msg, "needs root"));
		assert_false(exists(f->root, "out"));
		return;
	}
	snprintf(p, sizeof p, "%s/owned", f->dest);
	assert_int_equal(chown(p, 4321, 4322), 0);
	assert_int_equal(chmod(p, 04750), 0);
	assert_int_equal(run(f), 0);
	lst(f->out, "owned", &st);
	assert_int_equal(st.st_uid, 4321);
	assert_int_equal(st.st_gid, 4322);
	assert_int_equal(st.st_mode & 07777, 04750);
}

static void
test_sparse_file_stays_sparse(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	struct stat st;
	int fd;

	snprintf(p, sizeof p, "%s/sparse", f->dest);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "head", 4, 0), 4);
	assert_int_equal(pwrite(fd, "tail", 4, 64 * 1024 * 1024), 4);
	close(fd);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	lst(f->out, "sparse", &st);
	assert_int_equal(st.st_size, 64 * 1024 * 1024 + 4);
	assert_true(st.st_blocks * 512 < 1024 * 1024);
	snprintf(p, sizeof p, "%s/sparse", f->out);
	fd = open(p, O_RDONLY);
	{
		char buf[4];

		assert_int_equal(pread(fd, buf, 4, 64 * 1024 * 1024), 4);
		assert_memory_equal(buf, "tail", 4);
		assert_int_equal(pread(fd, buf, 4, 0), 4);
		assert_memory_equal(buf, "head", 4);
	}
	close(fd);
}

/* Make a chain of folders of 200-byte names under root, > PATH_MAX deep,
 * with a file at the bottom.  Returns the depth. */
#define DEEP_LEVELS	30	/* 30 * 201 > 4096 */

static void
deep_name(char *buf, int level)
{
	memset(buf, 'a' + level % 26, 200);
	buf[200] = '\0';
}

static void
test_path_deeper_than_path_max(void **state)
{
	struct fx *f = *state;
	char name[256];
	struct stat st;
	int fd, nfd, i;
	ssize_t n;
	char buf[16];

	fd = open(f->dest, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	for (i = 0; i < DEEP_LEVELS; i++) {
		deep_name(name, i);
		assert_int_equal(mkdirat(fd, name, 0755), 0);
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY);
		assert_true(nfd >= 0);
		close(fd);
		fd = nfd;
	}
	nfd = openat(fd, "bottom.txt", O_WRONLY | O_CREAT, 0644);
	assert_true(nfd >= 0);
	assert_int_equal(write(nfd, "deep", 4), 4);
	close(nfd);
	close(fd);

	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_restored, 1);
	assert_int_equal(f->res.errors, 0);

	fd = open(f->out, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	for (i = 0; i < DEEP_LEVELS; i++) {
		deep_name(name, i);
		nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		assert_true(nfd >= 0);
		close(fd);
		fd = nfd;
	}
	assert_int_equal(fstatat(fd, "bottom.txt", &st, 0), 0);
	nfd = openat(fd, "bottom.txt", O_RDONLY);
	assert_true(nfd >= 0);
	n = read(nfd, buf, sizeof buf);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "deep", 4);
	close(nfd);
	close(fd);
}

/* ---- hard links ----------------------------------------------------------- */

/* dest/rel2 becomes another name of dest/rel1. */
static void
hardlink(const char *root, const char *rel1, const char *rel2)
{
	char a[PATH_MAX], b[PATH_MAX];

	pjoin(a, sizeof a, root, rel1);
	pjoin(b, sizeof b, root, rel2);
	assert_int_equal(link(a, b), 0);
}

static void
test_hard_links_restored_as_links(void **state)
{
	struct fx *f = *state;
	struct stat s1, s2, s3, s4, s5;

	put(f->dest, "one", "shared", T0);
	put(f->dest, "sub/deeper/three", "x", T0);	/* the folders */
	hardlink(f->dest, "one", "two");
	hardlink(f->dest, "one", "sub/deeper/four");
	put(f->dest, "other/p", "pair", T0);
	hardlink(f->dest, "other/p", "q");
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.errors, 0);
	ASSERT_CONTENT(f->out, "one", "shared");
	ASSERT_CONTENT(f->out, "two", "shared");
	ASSERT_CONTENT(f->out, "sub/deeper/four", "shared");
	ASSERT_CONTENT(f->out, "q", "pair");
	lst(f->out, "one", &s1);
	lst(f->out, "two", &s2);
	lst(f->out, "sub/deeper/four", &s3);
	lst(f->out, "other/p", &s4);
	lst(f->out, "q", &s5);
	assert_int_equal(s1.st_ino, s2.st_ino);
	assert_int_equal(s1.st_ino, s3.st_ino);
	assert_int_equal(s1.st_nlink, 3);
	assert_int_equal(s4.st_ino, s5.st_ino);
	assert_int_equal(s4.st_nlink, 2);
	assert_int_not_equal(s1.st_ino, s4.st_ino);
	/* a link counts as restored, its bytes once */
	assert_int_equal(f->res.files_restored, 6);
	assert_int_equal(f->res.bytes, strlen("shared") + 1 + 4);
	assert_int_equal(s1.st_mtim.tv_sec, T0);
	assert_int_equal(s1.st_mode & 07777, 0644);
}

static void
test_hard_links_second_restore_unchanged(void **state)
{
	struct fx *f = *state;
	struct stat before, after;

	put(f->dest, "one", "shared", T0);
	hardlink(f->dest, "one", "two");
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	lst(f->out, "two", &before);
	assert_int_equal(run(f), 0);
	lst(f->out, "two", &after);
	assert_int_equal(f->res.files_unchanged, 2);
	assert_int_equal(f->res.files_restored, 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(after.st_nlink, 2);
}

static void
test_hard_links_in_versions_restored_as_links(void **state)
{
	struct fx *f = *state;
	char vroot[PATH_MAX], st[64];
	struct stat s1, s2;

	/* run 2 replaced both names of a linked pair */
	put(f->dest, "a", "new a", T0 + 10);
	put(f->dest, "b", "new b", T0 + 10);
	put_version(f, 2, "a", "old pair", T0);
	stamp(st, sizeof st, 2);
	snprintf(vroot, sizeof vroot, "%s/.vigil/versions/%s", f->dest, st);
	hardlink(vroot, "a", "b");
	f->o.to = f->out;
	f->o.as_of_run = 1;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "a", "old pair");
	ASSERT_CONTENT(f->out, "b", "old pair");
	lst(f->out, "a", &s1);
	lst(f->out, "b", &s2);
	assert_int_equal(s1.st_ino, s2.st_ino);
}

static void
test_hard_links_not_joined_across_places(void **state)
{
	struct fx *f = *state;
	char vroot[PATH_MAX], st[64], a[PATH_MAX], b[PATH_MAX];
	struct stat s1, s2;

	/*
	 * A version file that shares an inode with a current file (the
	 * engine links the replaced copy into the versions area) is another
	 * place: the two are not one link group.
	 */
	put(f->dest, "cur", "same bytes", T0);
	put(f->dest, "other", "x", T0);
	stamp(st, sizeof st, 2);
	snprintf(vroot, sizeof vroot, "%s/.vigil/versions/%s", f->dest, st);
	mkdirs(vroot);
	pjoin(a, sizeof a, f->dest, "cur");
	pjoin(b, sizeof b, vroot, "gone");
	assert_int_equal(link(a, b), 0);
	f->o.to = f->out;
	f->o.as_of_run = 1;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "cur", "same bytes");
	ASSERT_CONTENT(f->out, "gone", "same bytes");
	lst(f->out, "cur", &s1);
	lst(f->out, "gone", &s2);
	assert_int_not_equal(s1.st_ino, s2.st_ino);
	assert_int_equal(s1.st_nlink, 1);
}

static void
test_hard_link_first_name_newer_not_joined(void **state)
{
	struct fx *f = *state;
	struct stat s1, s2;

	/* the user edited "one" since: "two" must not become a link to it */
	put(f->dest, "one", "shared", T0);
	hardlink(f->dest, "one", "two");
	put(f->out, "one", "edited later", T0 + 60);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_skipped_newer, 1);
	ASSERT_CONTENT(f->out, "one", "edited later");
	ASSERT_CONTENT(f->out, "two", "shared");
	lst(f->out, "one", &s1);
	lst(f->out, "two", &s2);
	assert_int_not_equal(s1.st_ino, s2.st_ino);
}

static void
test_hard_link_first_name_failed_member_copied(void **state)
{
	struct fx *f = *state;
	struct stat st;

	/* "one" cannot go into place (a full folder is there): "two" gets
	 * its own copy instead of a link to nothing */
	put(f->dest, "one", "shared", T0);
	hardlink(f->dest, "one", "two");
	put(f->out, "one/inside", "keep me", T0);
	f->o.to = f->out;
	f->o.overwrite = true;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->res.errors, 1);
	assert_true(has_message(f, "/one: cannot remove the folder in the "
	    "way"));
	ASSERT_CONTENT(f->out, "one/inside", "keep me");
	ASSERT_CONTENT(f->out, "two", "shared");
	lst(f->out, "two", &st);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(st.st_mtim.tv_sec, T0);
	assert_int_equal(f->res.files_restored, 1);
	assert_non_null(strstr(outtext(f), "/two: no hard link possible (its "
	    "first name was not restored)"));
	assert_int_equal(count_entries(f->out), 2);	/* no temp left */
}

static void
test_hard_link_across_filesystems_copied(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	struct stat s1, s2, s3;

	put(f->dest, "a", "shared", T0);
	put(f->dest, "mnt/x", "x", T0);
	hardlink(f->dest, "a", "mnt/b");
	hardlink(f->dest, "a", "c");
	pjoin(p, sizeof p, f->out, "mnt");
	mkdirs(p);
	if (mount("tmpfs", p, "tmpfs", 0, "size=1m") == -1)
		skip();		/* needs privileges to mount a tmpfs */
	snprintf(f->mnt, sizeof f->mnt, "%s", p);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.errors, 0);
	ASSERT_CONTENT(f->out, "mnt/b", "shared");
	lst(f->out, "a", &s1);
	lst(f->out, "mnt/b", &s2);
	lst(f->out, "c", &s3);
	assert_int_not_equal(s1.st_dev, s2.st_dev);
	assert_int_equal(s2.st_nlink, 1);
	assert_int_equal(s2.st_mtim.tv_sec, T0);
	assert_int_equal(s1.st_ino, s3.st_ino);	/* same filesystem: linked */
}

static void
test_hard_link_dry_run_lists_link(void **state)
{
	struct fx *f = *state;
	char want[PATH_MAX * 2];

	put(f->dest, "one", "shared", T0);
	hardlink(f->dest, "one", "two");
	f->o.to = f->out;
	f->o.dry_run = true;
	assert_int_equal(run(f), 0);
	snprintf(want, sizeof want, "%s/two (hard link to %s/one)\n", f->out,
	    f->out);
	assert_non_null(strstr(outtext(f), want));
	assert_int_equal(f->res.bytes, 6);
	assert_false(exists(f->root, "out"));
}

/* ---- extended attributes ---------------------------------------------- */

/* The value of xattr name of root/rel; length, or -1. */
static ssize_t
xget(const char *root, const char *rel, const char *name, char *buf,
    size_t sz)
{
	char p[PATH_MAX];

	pjoin(p, sizeof p, root, rel);
	return lgetxattr(p, name, buf, sz);
}

static void
xset(const char *root, const char *rel, const char *name, const void *val,
    size_t len)
{
	char p[PATH_MAX];

	pjoin(p, sizeof p, root, rel);
	if (lsetxattr(p, name, val, len, 0) == -1) {
		if (errno == ENOTSUP || errno == EOPNOTSUPP)
			skip();	/* not on this filesystem */
		fail_msg("setxattr %s %s: %s", p, name, strerror(errno));
	}
}

static void
test_xattrs_restored_file_and_folder(void **state)
{
	struct fx *f = *state;
	char buf[64];
	ssize_t n;

	put(f->dest, "d/a.txt", "A", T0);
	xset(f->dest, "d/a.txt", "user.one", "v\0al", 4);
	xset(f->dest, "d/a.txt", "user.empty", "", 0);
	xset(f->dest, "d", "user.dir", "folder", 6);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.errors, 0);
	n = xget(f->out, "d/a.txt", "user.one", buf, sizeof buf);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "v\0al", 4);
	assert_int_equal(xget(f->out, "d/a.txt", "user.empty", buf,
	    sizeof buf), 0);
	n = xget(f->out, "d", "user.dir", buf, sizeof buf);
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "folder", 6);
}

static void
test_acl_restored(void **state)
{
	struct fx *f = *state;
	/* version 2; user::rw- user:1234:r-- group::r-- mask::r-- other::r-- */
	static const unsigned char acl[] = {
		2, 0, 0, 0,
		0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		0x02, 0, 4, 0, 0xd2, 0x04, 0, 0,
		0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
	};
	char want[128], got[128];
	ssize_t nw, ng;

	put(f->dest, "acl.txt", "A", T0);
	xset(f->dest, "acl.txt", "system.posix_acl_access", acl, sizeof acl);
	nw = xget(f->dest, "acl.txt", "system.posix_acl_access", want,
	    sizeof want);
	assert_true(nw > 0);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.errors, 0);
	ng = xget(f->out, "acl.txt", "system.posix_acl_access", got,
	    sizeof got);
	assert_int_equal(ng, nw);
	assert_memory_equal(got, want, (size_t)nw);
}

static void
test_trusted_xattr_restored_as_root(void **state)
{
	struct fx *f = *state;
	char buf[16];

	if (geteuid() != 0)
		skip();		/* only root may set trusted.* */
	put(f->dest, "t.txt", "T", T0);
	xset(f->dest, "t.txt", "trusted.vigil", "tv", 2);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(xget(f->out, "t.txt", "trusted.vigil", buf,
	    sizeof buf), 2);
	assert_memory_equal(buf, "tv", 2);
}

static void
test_xattr_unsupported_target_is_a_message(void **state)
{
	struct fx *f = *state;

	put(f->dest, "a.txt", "A", T0);
	put(f->dest, "b.txt", "B", T0);
	xset(f->dest, "a.txt", "user.one", "1", 1);
	xset(f->dest, "b.txt", "user.two", "2", 1);
	mkdirs(f->out);
	if (mount("none", f->out, "ramfs", 0, NULL) == -1)
		skip();		/* needs privileges to mount a ramfs */
	snprintf(f->mnt, sizeof f->mnt, "%s", f->out);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.errors, 0);
	assert_int_equal(f->res.files_restored, 2);
	ASSERT_CONTENT(f->out, "a.txt", "A");
	ASSERT_CONTENT(f->out, "b.txt", "B");
	assert_true(has_message(f, "does not support extended attribute "
	    "user.one"));
	assert_int_equal(f->res.nmessages, 1);	/* once, not per file */
}

/* ---- what "unchanged" means ------------------------------------------- */

static void
test_same_size_mtime_other_content_restored(void **state)
{
	struct fx *f = *state;
	struct stat a, b;

	put(f->dest, "a.txt", "backup", T0);
	put(f->out, "a.txt", "BACKUP", T0);	/* same size, same mtime */
	lst(f->dest, "a.txt", &a);
	lst(f->out, "a.txt", &b);
	assert_int_equal(a.st_size, b.st_size);
	assert_int_equal(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "a.txt", "backup");
	assert_int_equal(f->res.files_restored, 1);
	assert_int_equal(f->res.files_unchanged, 0);
}

static void
test_same_size_mtime_other_symlink_target_restored(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX], buf[16];
	ssize_t n;

	mkdirs(f->out);
	pjoin(p, sizeof p, f->dest, "lnk");
	assert_int_equal(symlink("aaaa", p), 0);
	set_mtime(p, T0, 5);
	pjoin(p, sizeof p, f->out, "lnk");
	assert_int_equal(symlink("bbbb", p), 0);
	set_mtime(p, T0, 5);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	n = readlink(p, buf, sizeof buf);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "aaaa", 4);
	assert_int_equal(f->res.files_restored, 1);
}

static void
test_same_content_other_mode_restored(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	struct stat st;

	put(f->dest, "a.txt", "same", T0);
	put(f->out, "a.txt", "same", T0);
	pjoin(p, sizeof p, f->out, "a.txt");
	assert_int_equal(chmod(p, 0600), 0);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	lst(f->out, "a.txt", &st);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(f->res.files_restored, 1);
}

static void
test_same_content_other_xattr_restored(void **state)
{
	struct fx *f = *state;
	char buf[16];

	put(f->dest, "a.txt", "same", T0);
	put(f->out, "a.txt", "same", T0);
	xset(f->dest, "a.txt", "user.tag", "new", 3);
	xset(f->out, "a.txt", "user.tag", "old", 3);
	xset(f->out, "a.txt", "user.extra", "x", 1);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_restored, 1);
	assert_int_equal(xget(f->out, "a.txt", "user.tag", buf, sizeof buf),
	    3);
	assert_memory_equal(buf, "new", 3);
	assert_int_equal(xget(f->out, "a.txt", "user.extra", buf, sizeof buf),
	    -1);
	/* now the same: left alone */
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_unchanged, 1);
	assert_int_equal(f->res.files_restored, 0);
}

/* ---- batches ---------------------------------------------------------- */

#define MANY	700	/* more than two batches */

static void
test_many_files_several_batches(void **state)
{
	struct fx *f = *state;
	char rel[64], want[64], p[PATH_MAX];
	int i;

	for (i = 0; i < MANY; i++) {
		snprintf(rel, sizeof rel, "d%d/f%04d", i % 3, i);
		put(f->dest, rel, rel, T0 + i);
	}
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_restored, MANY);
	assert_int_equal(f->res.errors, 0);
	for (i = 0; i < MANY; i++) {
		snprintf(rel, sizeof rel, "d%d/f%04d", i % 3, i);
		snprintf(want, sizeof want, "%s", rel);
		ASSERT_CONTENT(f->out, rel, want);
	}
	/* every temp renamed: nothing else in the folders */
	for (i = 0; i < 3; i++) {
		snprintf(rel, sizeof rel, "d%d", i);
		pjoin(p, sizeof p, f->out, rel);
		assert_int_equal(count_entries(p), MANY / 3 + (i < MANY % 3));
	}
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_unchanged, MANY);
}

static void
test_engine_temp_files_not_restored(void **state)
{
	struct fx *f = *state;

	put(f->dest, "a.txt", "A", T0);
	put(f->dest, ".vigil-tmp-7-3", "half written", T0);
	put(f->dest, ".vigil-tmp-notes", "a user file", T0);
	f->o.to = f->out;
	assert_int_equal(run(f), 0);
	assert_false(exists(f->out, ".vigil-tmp-7-3"));
	ASSERT_CONTENT(f->out, ".vigil-tmp-notes", "a user file");
}

static void
test_symlink_tree_in_folder_not_followed(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	/* a whole-tree restore meets a link where the backup has a folder */
	put(f->dest, "dir/sub/f.txt", "data", T0);
	mkdirs(f->out);
	snprintf(p, sizeof p, "%s/dir", f->out);
	assert_int_equal(symlink(f->outside, p), 0);
	f->o.to = f->out;
	assert_int_equal(run(f), -1);
	assert_true(has_message(f, "a symlink is where the backup has a "
	    "folder"));
	assert_true(has_message(f, "is a symlink; restore never writes "
	    "through one"));
	assert_int_equal(count_entries(f->outside), 0);
}

static void
test_unrelated_entries_in_versions_ignored(void **state)
{
	struct fx *f = *state;
	char root[PATH_MAX];

	put(f->dest, "f.txt", "current", T0);
	snprintf(root, sizeof root, "%s/.vigil/versions/notastamp", f->dest);
	put(root, "f.txt", "junk 1", T0);
	snprintf(root, sizeof root, "%s/.vigil/versions/20240301T1000Z-r5",
	    f->dest);
	put(root, "f.txt", "junk 2", T0);
	snprintf(root, sizeof root, "%s/.vigil/versions/20240301T100000Z-r",
	    f->dest);
	put(root, "f.txt", "junk 3", T0);
	snprintf(root, sizeof root, "%s/.vigil/versions/20241301T100000Z-r6",
	    f->dest);
	put(root, "f.txt", "junk 4", T0);
	f->o.to = f->out;
	f->o.as_of_run = 1;
	assert_int_equal(run(f), 0);
	ASSERT_CONTENT(f->out, "f.txt", "current");
}

static void
test_versions_area_symlink_refused(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];

	put(f->dest, "f.txt", "current", T0);
	put_version(f, 3, "f.txt", "old", T0);
	snprintf(p, sizeof p, "%s/.vigil/versions", f->dest);
	rmtree_at(AT_FDCWD, p);
	assert_int_equal(symlink(f->outside, p), 0);
	f->o.to = f->out;
	f->o.as_of_run = 1;
	assert_int_equal(run(f), -1);
	assert_int_equal(f->err.code, VG_ERR_INVALID);
	assert_non_null(strstr(f->err.msg, "versions area is damaged"));
	assert_false(exists(f->root, "out"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
		T(test_latest_single_file_to_dir),
		T(test_latest_whole_tree_to_dir),
		T(test_latest_to_original_location),
		T(test_whole_job_to_original_location),
		T(test_multi_source_mapping),
		T(test_multi_source_relative_path_outside_bases),
		T(test_as_of_run_picks_version),
		T(test_as_of_time),
		T(test_as_of_excludes_added_later),
		T(test_as_of_added_path_asked_for_is_an_error),
		T(test_deleted_file_restored_from_versions),
		T(test_deleted_file_asked_by_path),
		T(test_as_of_file_later_replaced_by_folder),
		T(test_no_versions_as_of_is_an_error),
		T(test_newer_target_skipped_then_overwritten),
		T(test_older_target_replaced),
		T(test_identical_target_unchanged),
		T(test_folder_at_file_place_refused),
		T(test_file_at_folder_place_refused),
		T(test_symlink_at_target_file_not_followed),
		T(test_symlink_at_target_parent_not_followed),
		T(test_symlink_at_source_parent_original_location),
		T(test_target_inside_destination_refused),
		T(test_dotdot_rejected),
		T(test_absolute_dotdot_rejected),
		T(test_outside_sources_rejected),
		T(test_source_prefix_sibling_rejected),
		T(test_empty_path_rejected),
		T(test_vigil_area_rejected),
		T(test_missing_path_is_an_error),
		T(test_missing_destination_is_an_error),
		T(test_dry_run_writes_nothing),
		T(test_dry_run_as_of_lists_version),
		T(test_invalid_utf8_and_newline_names),
		T(test_setuid_dropped),
		T(test_keep_owner),
		T(test_sparse_file_stays_sparse),
		T(test_path_deeper_than_path_max),
		T(test_hard_links_restored_as_links),
		T(test_hard_links_second_restore_unchanged),
		T(test_hard_links_in_versions_restored_as_links),
		T(test_hard_links_not_joined_across_places),
		T(test_hard_link_first_name_newer_not_joined),
		T(test_hard_link_first_name_failed_member_copied),
		T(test_hard_link_across_filesystems_copied),
		T(test_hard_link_dry_run_lists_link),
		T(test_xattrs_restored_file_and_folder),
		T(test_acl_restored),
		T(test_trusted_xattr_restored_as_root),
		T(test_xattr_unsupported_target_is_a_message),
		T(test_same_size_mtime_other_content_restored),
		T(test_same_size_mtime_other_symlink_target_restored),
		T(test_same_content_other_mode_restored),
		T(test_same_content_other_xattr_restored),
		T(test_many_files_several_batches),
		T(test_engine_temp_files_not_restored),
		T(test_symlink_tree_in_folder_not_followed),
		T(test_unrelated_entries_in_versions_ignored),
		T(test_versions_area_symlink_refused),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
