/*
 * test_engine.c: the copy engine against real folders in a temp dir.
 */
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/snapshot.h"
#include "db/catalogue.h"
#include "scheduler/engine.h"
#include "scheduler/engine_int.h"
#include "scheduler/versions.h"

/* ---- fixture ---- */

struct fx {
	char			 base[1024];
	char			 src[1100];
	char			 dst[PATH_MAX];
	struct vg_job_def	 job;
	char			*srcv[4];
	struct engine_source	 sources[4];
	struct engine_opts	 o;
	struct vg_engine_result	 res;
	int64_t			 run;
};

static void
xwrite(const char *path, const char *data)
{
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static char *
xread(const char *path)
{
	static char	 buf[65536];
	ssize_t		 n;
	int		 fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static char *
P(const char *dir, const char *rel)
{
	static char	 bufs[8][PATH_MAX];
	static int	 k;
	char		*b = bufs[k++ & 7];
	int		 n;

	n = snprintf(b, PATH_MAX, "%s/%s", dir, rel);
	if (n < 0 || n >= PATH_MAX)
		fail_msg("path too long: %s/%s", dir, rel);
	return b;
}

static bool
exists(const char *path)
{
	struct stat	 st;

	return lstat(path, &st) == 0;
}

static int
setup(void **state)
{
	struct fx	*f;
	const char	*tmp = getenv("TMPDIR");

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->base, sizeof(f->base), "%s/vigil-engine-XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->base));
	snprintf(f->src, sizeof(f->src), "%s/src", f->base);
	snprintf(f->dst, sizeof(f->dst), "%s/dst", f->base);
	assert_int_equal(mkdir(f->src, 0755), 0);
	f->job.name = "t";
	f->job.destination = f->dst;
	f->job.mode = VG_MODE_BACKUP;
	f->job.max_delete = 50;
	f->job.retries = 3;
	f->srcv[0] = f->src;
	f->job.sources.v = f->srcv;
	f->job.sources.n = 1;
	f->sources[0].path = f->src;
	f->sources[0].capture = VG_CAP_LIVE;
	f->o.job = &f->job;
	f->o.sources = f->sources;
	f->o.nsources = 1;
	f->o.now_ms = 1700000000000LL;
	f->run = 1;
	*state = f;
	return 0;
}

static void
rm_rf_at(int dfd, const char *name)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*dp;
	int		 fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return;
	if (S_ISDIR(st.st_mode)) {
		(void)fchmodat(dfd, name, 0700, 0);
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		if (fd >= 0 && (dp = fdopendir(fd)) != NULL) {
			while ((de = readdir(dp)) != NULL) {
				if (strcmp(de->d_name, ".") != 0 &&
				    strcmp(de->d_name, "..") != 0)
					rm_rf_at(dirfd(dp), de->d_name);
			}
			closedir(dp);
		}
		(void)unlinkat(dfd, name, AT_REMOVEDIR);
	} else
		(void)unlinkat(dfd, name, 0);
}

static int
teardown(void **state)
{
	struct fx	*f = *state;

	engine_result_free(&f->res);
	(void)umount2(f->dst, MNT_DETACH);
	rm_rf_at(AT_FDCWD, f->base);
	free(f);
	return 0;
}

/* Run the engine once with the fixture's options. */
static int
run(struct fx *f)
{
	struct vg_err	 err;
	int		 rc;

	engine_result_free(&f->res);
	f->o.run_id = f->run++;
	f->o.now_ms += 3600 * 1000;
	rc = engine_run(&f->o, &f->res, &err);
	return rc;
}

static void
set_mtime(const char *path, time_t s, long ns)
{
	struct timespec	 ts[2] = { { s, ns }, { s, ns } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW),
	    0);
}

/* ---- snapshot of a tree: one line per entry with its metadata ---- */

struct snap {
	char	*buf;
	size_t	 len, cap;
};

static void __attribute__((format(printf, 2, 3)))
snap_add(struct snap *s, const char *fmt, ...)
{
	va_list	 ap;
	char	 line[8192];
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->len + (size_t)n + 1 > s->cap) {
		s->cap = (s->len + (size_t)n + 1) * 2;
		s->buf = realloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, line, (size_t)n + 1);
	s->len += (size_t)n;
}

static int
name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void
snap_dir(struct snap *s, const char *path, bool with_times)
{
	struct dirent	**ents;
	struct stat	 st;
	char		 child[PATH_MAX], target[PATH_MAX], *data;
	ssize_t		 n;
	int		 i, cnt;

	cnt = scandir(path, &ents, NULL, name_cmp);
	if (cnt < 0)
		return;
	for (i = 0; i < cnt; i++) {
		if (strcmp(ents[i]->d_name, ".") == 0 ||
		    strcmp(ents[i]->d_name, "..") == 0) {
			free(ents[i]);
			continue;
		}
		snprintf(child, sizeof(child), "%s/%s", path, ents[i]->d_name);
		assert_int_equal(lstat(child, &st), 0);
		snap_add(s, "%s %o %lld", child, st.st_mode,
		    (long long)st.st_size);
		if (with_times)
			snap_add(s, " %lld.%09ld", (long long)st.st_mtim.tv_sec,
			    st.st_mtim.tv_nsec);
		if (S_ISLNK(st.st_mode)) {
			n = readlink(child, target, sizeof(target) - 1);
			target[n < 0 ? 0 : n] = '\0';
			snap_add(s, " -> %s", target);
		} else if (S_ISREG(st.st_mode) && st.st_size < 60000) {
			data = xread(child);
			snap_add(s, " [%s]", data ? data : "?");
		}
		snap_add(s, "\n");
		if (S_ISDIR(st.st_mode))
			snap_dir(s, child, with_times);
		free(ents[i]);
	}
	free(ents);
}

static char *
snapshot(const char *path)
{
	struct snap	 s = { NULL, 0, 0 };

	snap_add(&s, "%s", "");	/* allocates the empty buffer */
	snap_dir(&s, path, true);
	return s.buf;
}

/* ---- tests ---- */

static void
test_copy_regular_mode_mtime(void **state)
{
	struct fx	*f = *state;
	struct stat	 a, b;

	xwrite(P(f->src, "file"), "hello world");
	assert_int_equal(chmod(P(f->src, "file"), 0640), 0);
	set_mtime(P(f->src, "file"), 1600000000, 123456789);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_string_equal(xread(P(f->dst, "file")), "hello world");
	assert_int_equal(stat(P(f->src, "file"), &a), 0);
	assert_int_equal(stat(P(f->dst, "file"), &b), 0);
	assert_int_equal(b.st_mode & 07777, 0640);
	assert_int_equal(b.st_mtim.tv_sec, 1600000000);
	assert_int_equal(b.st_mtim.tv_nsec, 123456789);
	assert_int_equal(f->res.files_copied, 1);
	assert_int_equal(f->res.bytes_copied, 11);
	assert_int_equal(f->res.capture[VG_CAP_LIVE], 1);
}

static void
test_no_temp_files_left(void **state)
{
	struct fx	*f = *state;
	char		*snap;

	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	xwrite(P(f->src, "d/a"), "a");
	xwrite(P(f->src, "b"), "b");
	assert_int_equal(run(f), 0);
	snap = snapshot(f->dst);
	assert_null(strstr(snap, ".vigil-tmp-"));
	free(snap);
}

static int
count_fds(void)
{
	struct dirent	**ents;
	int		 i, n;

	n = scandir("/proc/self/fd", &ents, NULL, alphasort);
	assert_true(n > 0);
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return n;
}

/* More replaced files than ENG_RELEASE_MIN: the old ones are held across
   their renames and closed on the release threads.  Every file is new
   afterwards, no temp file is left, and no descriptor stays open. */
static void
test_many_replaced_released(void **state)
{
	struct fx	*f = *state;
	char		 name[32], want[64], *snap, *got;
	int		 i, fds;

	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "d/f%03d", i);
		xwrite(P(f->src, name), "old content");
	}
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_copied, 100);
	fds = count_fds();
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "d/f%03d", i);
		snprintf(want, sizeof(want), "new content %d", i);
		xwrite(P(f->src, name), want);
		set_mtime(P(f->src, name), 1700000000 + i, 0);
	}
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.files_copied, 100);
	assert_int_equal(count_fds(), fds);
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "d/f%03d", i);
		snprintf(want, sizeof(want), "new content %d", i);
		got = xread(P(f->dst, name));
		assert_string_equal(got, want);
	}
	snap = snapshot(f->dst);
	assert_null(strstr(snap, ".vigil-tmp-"));
	free(snap);
}

static void
test_copy_sparse(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;
	int		 fd;
	char		 buf[8];

	fd = open(P(f->src, "sparse"), O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "head", 4, 0), 4);
	assert_int_equal(pwrite(fd, "mid", 3, 32 << 20), 3);
	assert_int_equal(ftruncate(fd, 64 << 20), 0);
	close(fd);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(stat(P(f->dst, "sparse"), &st), 0);
	assert_int_equal(st.st_size, 64 << 20);
	/* a dense copy would take 64 MiB = 131072 blocks */
	assert_true(st.st_blocks < 2048);
	fd = open(P(f->dst, "sparse"), O_RDONLY);
	assert_int_equal(pread(fd, buf, 3, 32 << 20), 3);
	assert_memory_equal(buf, "mid", 3);
	assert_int_equal(pread(fd, buf, 4, 0), 4);
	assert_memory_equal(buf, "head", 4);
	assert_int_equal(pread(fd, buf, 4, 1 << 20), 4);
	assert_memory_equal(buf, "\0\0\0\0", 4);
	close(fd);
}

static void
test_copy_symlink_exact(void **state)
{
	struct fx	*f = *state;
	const char	*target = "../no such\ntarget\xff/x";
	char		 got[256];
	ssize_t		 n;
	struct stat	 st;

	assert_int_equal(symlink(target, P(f->src, "link")), 0);
	set_mtime(P(f->src, "link"), 1500000000, 42);
	/* a link to a folder outside must not be followed */
	assert_int_equal(symlink("/", P(f->src, "root")), 0);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	n = readlink(P(f->dst, "link"), got, sizeof(got));
	assert_int_equal(n, (ssize_t)strlen(target));
	assert_memory_equal(got, target, (size_t)n);
	assert_int_equal(lstat(P(f->dst, "link"), &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1500000000);
	assert_int_equal(st.st_mtim.tv_nsec, 42);
	assert_int_equal(lstat(P(f->dst, "root"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

static void
test_copy_hardlinks(void **state)
{
	struct fx	*f = *state;
	struct stat	 a, b, c;

	xwrite(P(f->src, "a"), "shared");
	assert_int_equal(mkdir(P(f->src, "sub"), 0755), 0);
	assert_int_equal(link(P(f->src, "a"), P(f->src, "sub/b")), 0);
	xwrite(P(f->src, "c"), "alone");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(stat(P(f->dst, "a"), &a), 0);
	assert_int_equal(stat(P(f->dst, "sub/b"), &b), 0);
	assert_int_equal(stat(P(f->dst, "c"), &c), 0);
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_nlink, 2);
	assert_int_not_equal(a.st_ino, c.st_ino);
}

static void
test_copy_empty_dir_mode_mtime(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;

	assert_int_equal(mkdir(P(f->src, "empty"), 0750), 0);
	assert_int_equal(mkdir(P(f->src, "full"), 0705), 0);
	xwrite(P(f->src, "full/x"), "x");
	set_mtime(P(f->src, "empty"), 1400000000, 5);
	set_mtime(P(f->src, "full"), 1400000001, 7);
	assert_int_equal(run(f), 0);
	assert_int_equal(stat(P(f->dst, "empty"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_mtim.tv_sec, 1400000000);
	assert_int_equal(st.st_mtim.tv_nsec, 5);
	/* set after its child was placed */
	assert_int_equal(stat(P(f->dst, "full"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0705);
	assert_int_equal(st.st_mtim.tv_sec, 1400000001);
	assert_int_equal(st.st_mtim.tv_nsec, 7);
}

static void
test_copy_xattr(void **state)
{
	struct fx	*f = *state;
	char		 val[64];
	ssize_t		 n;

	xwrite(P(f->src, "x"), "data");
	if (setxattr(P(f->src, "x"), "user.vigil", "v\0al", 4, 0) == -1)
		skip();		/* no user xattrs on this filesystem */
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	n = getxattr(P(f->dst, "x"), "user.vigil", val, sizeof(val));
	assert_int_equal(n, 4);
	assert_memory_equal(val, "v\0al", 4);
}

static void
test_odd_names(void **state)
{
	struct fx	*f = *state;
	const char	*names[] = { "with space", "new\nline", "bad\xff\xfeutf8",
	    "-dash", "back\\slash" };
	size_t		 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		xwrite(P(f->src, names[i]), names[i]);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_string_equal(xread(P(f->dst, names[i])), names[i]);
}

/* Build a chain of folders whose path is longer than PATH_MAX. */
static int
deep_chain(const char *root, int levels, bool create)
{
	char	 name[201];
	int	 fd, next, i;

	memset(name, 'd', 200);
	name[200] = '\0';
	fd = open(root, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	for (i = 0; i < levels; i++) {
		if (create)
			assert_int_equal(mkdirat(fd, name, 0755), 0);
		next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		close(fd);
		if (next < 0)
			return -1;
		fd = next;
	}
	return fd;
}

static void
test_path_deeper_than_path_max(void **state)
{
	struct fx	*f = *state;
	char		 buf[16];
	int		 fd, ffd;

	/* 30 levels of 200 bytes: about 6000 bytes of path */
	fd = deep_chain(f->src, 30, true);
	ffd = openat(fd, "leaf", O_WRONLY | O_CREAT, 0644);
	assert_true(ffd >= 0);
	assert_int_equal(write(ffd, "deep", 4), 4);
	close(ffd);
	close(fd);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.files_copied, 1);
	fd = deep_chain(f->dst, 30, false);
	assert_true(fd >= 0);
	ffd = openat(fd, "leaf", O_RDONLY);
	assert_true(ffd >= 0);
	assert_int_equal(read(ffd, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "deep", 4);
	close(ffd);
	close(fd);
	/* and mirror deletes it again past PATH_MAX */
	f->job.mode = VG_MODE_MIRROR;
	f->job.max_delete = 100;
	fd = deep_chain(f->src, 30, false);
	assert_int_equal(unlinkat(fd, "leaf", 0), 0);
	close(fd);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	fd = deep_chain(f->dst, 30, false);
	assert_true(fd >= 0);
	assert_int_equal(faccessat(fd, "leaf", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	close(fd);
}

static void
test_backup_never_deletes(void **state)
{
	struct fx	*f = *state;

	xwrite(P(f->src, "a"), "a");
	xwrite(P(f->src, "b"), "b");
	assert_int_equal(run(f), 0);
	assert_int_equal(unlink(P(f->src, "b")), 0);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_true(exists(P(f->dst, "b")));
	assert_int_equal(f->res.files_deleted, 0);
}

static void
test_mirror_deletes_strays(void **state)
{
	struct fx	*f = *state;

	f->job.mode = VG_MODE_MIRROR;
	f->job.max_delete = 100;
	xwrite(P(f->src, "keep"), "k");
	assert_int_equal(mkdir(f->dst, 0755), 0);
	xwrite(P(f->dst, "stray"), "s");
	assert_int_equal(mkdir(P(f->dst, "straydir"), 0755), 0);
	xwrite(P(f->dst, "straydir/inner"), "i");
	assert_int_equal(mkdir(P(f->dst, ".vigil"), 0700), 0);
	xwrite(P(f->dst, ".vigil/job.ini"), "[job t]");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_true(exists(P(f->dst, "keep")));
	assert_false(exists(P(f->dst, "stray")));
	assert_false(exists(P(f->dst, "straydir")));
	assert_true(exists(P(f->dst, ".vigil/job.ini")));
	assert_int_equal(f->res.files_deleted, 3);
}

static void
test_max_delete_aborts_untouched(void **state)
{
	struct fx	*f = *state;
	char		 name[16], *before, *after;
	int		 i;

	f->job.mode = VG_MODE_MIRROR;
	for (i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		xwrite(P(f->src, name), name);
	}
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	for (i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		assert_int_equal(unlink(P(f->src, name)), 0);
	}
	xwrite(P(f->src, "new"), "new");
	xwrite(P(f->src, "f9"), "changed content");
	before = snapshot(f->dst);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_FAILED);
	assert_non_null(f->res.message);
	assert_non_null(strstr(f->res.message, "max-delete"));
	after = snapshot(f->dst);
	assert_string_equal(before, after);
	free(before);
	free(after);
	/* within the limit it goes through */
	f->job.max_delete = 60;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_false(exists(P(f->dst, "f0")));
	assert_string_equal(xread(P(f->dst, "f9")), "changed content");
}

static void
test_mirror_keeps_excluded(void **state)
{
	struct fx	*f = *state;
	char		*ex[] = { "*.log", "cache/" };

	f->job.mode = VG_MODE_MIRROR;
	f->job.max_delete = 100;
	f->job.exclude.v = ex;
	f->job.exclude.n = 2;
	xwrite(P(f->src, "a.txt"), "a");
	xwrite(P(f->src, "new.log"), "not copied");
	assert_int_equal(mkdir(P(f->src, "cache"), 0755), 0);
	xwrite(P(f->src, "cache/c"), "c");
	assert_int_equal(mkdir(f->dst, 0755), 0);
	xwrite(P(f->dst, "old.log"), "excluded, kept");
	assert_int_equal(mkdir(P(f->dst, "cache"), 0755), 0);
	xwrite(P(f->dst, "cache/mine"), "kept");
	xwrite(P(f->dst, "gone.txt"), "deleted");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_true(exists(P(f->dst, "a.txt")));
	assert_false(exists(P(f->dst, "new.log")));
	assert_true(exists(P(f->dst, "old.log")));
	assert_true(exists(P(f->dst, "cache/mine")));
	assert_false(exists(P(f->dst, "cache/c")));
	assert_false(exists(P(f->dst, "gone.txt")));
}

static void
stamp_of(struct fx *f, int64_t run_id, int64_t now_ms, char *buf)
{
	(void)f;
	versions_stamp(now_ms, run_id, buf, VERSIONS_STAMP_MAX);
}

static void
test_versions_keep_replaced_and_deleted(void **state)
{
	struct fx	*f = *state;
	char		 st1[VERSIONS_STAMP_MAX], st2[VERSIONS_STAMP_MAX];
	char		 rel[PATH_MAX];
	int64_t		 t1, t2;

	f->job.mode = VG_MODE_MIRROR;
	f->job.max_delete = 100;
	f->job.keep_versions = 3;
	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	xwrite(P(f->src, "d/doc"), "version one");
	xwrite(P(f->src, "old"), "to be deleted");
	t1 = f->o.now_ms + 3600 * 1000;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	stamp_of(f, 1, t1, st1);
	/* the first run created everything: listed in its .added */
	snprintf(rel, sizeof(rel), ".vigil/versions/%s.added", st1);
	assert_true(exists(P(f->dst, rel)));

	xwrite(P(f->src, "d/doc"), "version two, longer");
	assert_int_equal(unlink(P(f->src, "old")), 0);
	t2 = f->o.now_ms + 3600 * 1000;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	stamp_of(f, 2, t2, st2);
	assert_string_equal(xread(P(f->dst, "d/doc")), "version two, longer");
	snprintf(rel, sizeof(rel), ".vigil/versions/%s/d/doc", st2);
	assert_string_equal(xread(P(f->dst, rel)), "version one");
	snprintf(rel, sizeof(rel), ".vigil/versions/%s/old", st2);
	assert_string_equal(xread(P(f->dst, rel)), "to be deleted");
	assert_false(exists(P(f->dst, "old")));
	assert_int_equal(f->res.files_versioned, 2);
	/* nothing was added by run 2 */
	snprintf(rel, sizeof(rel), ".vigil/versions/%s.added", st2);
	assert_false(exists(P(f->dst, rel)));
}

static void
test_versions_retention_at_run_end(void **state)
{
	struct fx	*f = *state;
	char		*snap;
	const char	*p;
	int		 i, n = 0;
	char		 content[32];

	f->job.keep_versions = 2;
	for (i = 0; i < 5; i++) {
		snprintf(content, sizeof(content), "content %d%.*s", i, i,
		    "xxxxx");
		xwrite(P(f->src, "f"), content);
		assert_int_equal(run(f), 0);
		assert_int_equal(f->res.status, VG_RUN_OK);
	}
	/* 4 replacements happened; only the newest 2 are kept */
	snap = snapshot(P(f->dst, ".vigil/versions"));
	for (p = snap; (p = strstr(p, "/f ")) != NULL; p++)
		n++;
	assert_int_equal(n, 2);
	assert_non_null(strstr(snap, "[content 3xxx]"));
	assert_non_null(strstr(snap, "[content 2xx]"));
	assert_null(strstr(snap, "[content 1x]"));
	free(snap);
}

static void
test_dry_run_changes_nothing(void **state)
{
	struct fx	*f = *state;
	char		*before, *after, *plan = NULL;
	size_t		 plen = 0;
	FILE		*fp;

	f->job.mode = VG_MODE_MIRROR;
	f->job.max_delete = 100;
	f->job.keep_versions = 1;
	xwrite(P(f->src, "same"), "same");
	xwrite(P(f->src, "changed"), "v1");
	assert_int_equal(run(f), 0);
	xwrite(P(f->src, "changed"), "v2 longer");
	xwrite(P(f->src, "new\nname"), "new");
	assert_int_equal(mkdir(P(f->src, "newdir"), 0755), 0);
	xwrite(P(f->src, "newdir/x"), "x");
	xwrite(P(f->dst, "stray"), "stray");
	before = snapshot(f->base);
	fp = open_memstream(&plan, &plen);
	f->o.dry_run = true;
	f->o.plan_out = fp;
	assert_int_equal(run(f), 0);
	fclose(fp);
	after = snapshot(f->base);
	assert_string_equal(before, after);
	assert_int_not_equal(f->res.status, VG_RUN_FAILED);
	assert_non_null(strstr(plan, "copy changed (9 bytes)\n"));
	assert_non_null(strstr(plan, "version changed\n"));
	assert_non_null(strstr(plan, "copy new\\x0aname (3 bytes)\n"));
	assert_non_null(strstr(plan, "mkdir newdir\n"));
	assert_non_null(strstr(plan, "copy newdir/x (1 bytes)\n"));
	assert_non_null(strstr(plan, "delete stray\n"));
	assert_null(strstr(plan, "copy same"));
	assert_non_null(strstr(plan, "summary: 3 copies, 1 deletes, 2 "
	    "versions, 13 bytes\n"));
	assert_int_equal(f->res.plan_copies, 3);
	assert_int_equal(f->res.plan_deletes, 1);
	assert_int_equal(f->res.plan_bytes, 13);
	free(before);
	free(after);
	free(plan);
}

static void
test_dry_run_without_destination(void **state)
{
	struct fx	*f = *state;
	FILE		*fp;
	char		*plan = NULL;
	size_t		 plen = 0;

	xwrite(P(f->src, "a"), "abc");
	fp = open_memstream(&plan, &plen);
	f->o.dry_run = true;
	f->o.plan_out = fp;
	assert_int_equal(run(f), 0);
	fclose(fp);
	assert_false(exists(f->dst));
	assert_non_null(strstr(plan, "copy a (3 bytes)\n"));
	free(plan);
}

static void
test_fifo_gives_partial(void **state)
{
	struct fx	*f = *state;
	size_t		 i;
	bool		 found = false;

	assert_int_equal(mkfifo(P(f->src, "pipe"), 0644), 0);
	xwrite(P(f->src, "ok"), "fine");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_PARTIAL);
	assert_string_equal(xread(P(f->dst, "ok")), "fine");
	assert_false(exists(P(f->dst, "pipe")));
	for (i = 0; i < f->res.nproblems; i++)
		if (strcmp(f->res.problems[i].path, "pipe") == 0 &&
		    strcmp(f->res.problems[i].problem, "special-file") == 0)
			found = true;
	assert_true(found);
}

static void
test_unreadable_file_partial(void **state)
{
	struct fx	*f = *state;

	if (geteuid() == 0)
		skip();		/* root reads mode 000 files */
	xwrite(P(f->src, "secret"), "s");
	assert_int_equal(chmod(P(f->src, "secret"), 0), 0);
	xwrite(P(f->src, "ok"), "ok");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_PARTIAL);
	assert_int_equal(f->res.nproblems, 1);
	assert_string_equal(f->res.problems[0].problem, "unreadable");
	assert_true(exists(P(f->dst, "ok")));
}

static struct vg_catalogue *
open_cat(struct fx *f, bool *fresh)
{
	struct vg_catalogue	*cat = NULL;
	struct vg_err		 err;
	char			 path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/cat.db", f->base);
	if (catalogue_open(path, f->dst, &cat, fresh, &err) == -1)
		fail_msg("catalogue_open: %s", err.msg);
	return cat;
}

static void
test_catalogue_fast_path_and_rescan(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;
	struct timespec		 ts[2];
	bool			 fresh;

	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	xwrite(P(f->src, "d/a"), "alpha");
	xwrite(P(f->src, "b"), "beta");
	assert_int_equal(symlink("b", P(f->src, "l")), 0);
	cat = open_cat(f, &fresh);
	f->o.catalogue = cat;
	f->o.catalogue_fresh = fresh;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.files_copied, 3);
	catalogue_close(cat);

	/* second run: nothing copied */
	cat = open_cat(f, &fresh);
	assert_false(fresh);
	f->o.catalogue = cat;
	f->o.catalogue_fresh = fresh;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.files_copied, 0);
	assert_int_equal(f->res.files_unchanged, 3);

	/* a destination file changed behind vigil's back is not noticed */
	xwrite(P(f->dst, "d/a"), "tampered!");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_copied, 0);
	assert_string_equal(xread(P(f->dst, "d/a")), "tampered!");

	/* ... until a rescan compares with the destination */
	f->o.rescan = true;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.files_copied, 1);
	assert_string_equal(xread(P(f->dst, "d/a")), "alpha");

	/* a source change is seen through the catalogue */
	f->o.rescan = false;
	xwrite(P(f->src, "b"), "beta2");
	ts[0].tv_sec = ts[1].tv_sec = 1000;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	assert_int_equal(utimensat(AT_FDCWD, P(f->src, "d/a"), ts, 0), 0);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_copied, 2);
	assert_string_equal(xread(P(f->dst, "b")), "beta2");
	catalogue_close(cat);
}

static void
test_catalogue_mirror_deletes(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;
	bool			 fresh;

	f->job.mode = VG_MODE_MIRROR;
	f->job.max_delete = 100;
	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	xwrite(P(f->src, "d/a"), "a");
	xwrite(P(f->src, "b"), "b");
	cat = open_cat(f, &fresh);
	f->o.catalogue = cat;
	f->o.catalogue_fresh = fresh;
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	assert_int_equal(unlink(P(f->src, "d/a")), 0);
	assert_int_equal(rmdir(P(f->src, "d")), 0);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_false(exists(P(f->dst, "d")));
	assert_true(exists(P(f->dst, "b")));
	/* and the catalogue forgot them: a third run changes nothing */
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_deleted, 0);
	assert_int_equal(f->res.files_copied, 0);
	catalogue_close(cat);
}

static void
test_dirty_catalogue_cleans_temp_files(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;
	struct vg_err		 err;
	bool			 fresh;

	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	xwrite(P(f->src, "d/a"), "a");
	cat = open_cat(f, &fresh);
	f->o.catalogue = cat;
	f->o.catalogue_fresh = fresh;
	assert_int_equal(run(f), 0);
	/* a killed run: dirty flag set, temp files left behind */
	assert_int_equal(catalogue_set_dirty(cat, true, &err), 0);
	catalogue_close(cat);
	xwrite(P(f->dst, "d/.vigil-tmp-7-1"), "half");
	xwrite(P(f->dst, ".vigil-tmp-7-2"), "half");
	cat = open_cat(f, &fresh);
	assert_true(catalogue_was_dirty(cat));
	f->o.catalogue = cat;
	f->o.catalogue_fresh = fresh;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_false(exists(P(f->dst, "d/.vigil-tmp-7-1")));
	assert_false(exists(P(f->dst, ".vigil-tmp-7-2")));
	assert_true(exists(P(f->dst, "d/a")));
	catalogue_close(cat);
	/* the run completed: the flag is clear again */
	cat = open_cat(f, &fresh);
	assert_false(catalogue_was_dirty(cat));
	catalogue_close(cat);
}

static void
test_type_changes(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;

	f->job.mode = VG_MODE_MIRROR;
	f->job.max_delete = 100;
	xwrite(P(f->src, "was_file"), "f");
	assert_int_equal(mkdir(P(f->src, "was_dir"), 0755), 0);
	xwrite(P(f->src, "was_dir/in"), "in");
	assert_int_equal(symlink("x", P(f->src, "was_link")), 0);
	assert_int_equal(run(f), 0);
	assert_int_equal(unlink(P(f->src, "was_file")), 0);
	assert_int_equal(mkdir(P(f->src, "was_file"), 0755), 0);
	xwrite(P(f->src, "was_file/now"), "now");
	assert_int_equal(unlink(P(f->src, "was_dir/in")), 0);
	assert_int_equal(rmdir(P(f->src, "was_dir")), 0);
	assert_int_equal(symlink("target", P(f->src, "was_dir")), 0);
	assert_int_equal(unlink(P(f->src, "was_link")), 0);
	xwrite(P(f->src, "was_link"), "file now");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_string_equal(xread(P(f->dst, "was_file/now")), "now");
	assert_int_equal(lstat(P(f->dst, "was_dir"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_string_equal(xread(P(f->dst, "was_link")), "file now");
}

static void
test_planted_symlink_not_followed(void **state)
{
	struct fx	*f = *state;
	char		 outside[PATH_MAX];
	struct stat	 st;

	snprintf(outside, sizeof(outside), "%s/outside", f->base);
	assert_int_equal(mkdir(outside, 0755), 0);
	assert_int_equal(mkdir(P(f->src, "sub"), 0755), 0);
	xwrite(P(f->src, "sub/file"), "inside");
	xwrite(P(f->src, "top"), "top");
	assert_int_equal(mkdir(f->dst, 0755), 0);
	/* the destination has symlinks where a folder and a file go */
	assert_int_equal(symlink(outside, P(f->dst, "sub")), 0);
	assert_int_equal(symlink(P(outside, "victim"), P(f->dst, "top")), 0);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(lstat(P(f->dst, "sub"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_string_equal(xread(P(f->dst, "sub/file")), "inside");
	assert_int_equal(lstat(P(f->dst, "top"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_false(exists(P(outside, "file")));
	assert_false(exists(P(outside, "victim")));
}

static void
test_unsupported_mode_fails_cleanly(void **state)
{
	struct fx	*f = *state;

	f->job.mode = VG_MODE_ARCHIVE;
	xwrite(P(f->src, "a"), "a");
	assert_int_equal(run(f), -1);
	assert_int_equal(f->res.status, VG_RUN_FAILED);
	assert_non_null(strstr(f->res.message, "not supported by the copy "
	    "engine"));
	assert_false(exists(f->dst));
}

static void
test_missing_source_fails_before_touching(void **state)
{
	struct fx	*f = *state;

	f->job.mode = VG_MODE_MIRROR;
	xwrite(P(f->src, "a"), "a");
	assert_int_equal(run(f), 0);
	rm_rf_at(AT_FDCWD, f->src);
	assert_int_equal(run(f), -1);
	assert_int_equal(f->res.status, VG_RUN_FAILED);
	assert_non_null(strstr(f->res.message, "cannot read source"));
	assert_true(exists(P(f->dst, "a")));
}

static void
test_several_sources(void **state)
{
	struct fx	*f = *state;
	char		 s2[PATH_MAX];

	snprintf(s2, sizeof(s2), "%s/second", f->base);
	assert_int_equal(mkdir(s2, 0755), 0);
	xwrite(P(f->src, "one"), "1");
	xwrite(P(s2, "two"), "2");
	f->sources[1].path = s2;
	f->sources[1].capture = VG_CAP_VERIFIED;
	f->o.nsources = 2;
	f->srcv[1] = s2;
	f->job.sources.n = 2;
	f->job.mode = VG_MODE_MIRROR;
	f->job.max_delete = 100;
	assert_int_equal(mkdir(f->dst, 0755), 0);
	xwrite(P(f->dst, "stray"), "x");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_string_equal(xread(P(f->dst, "src/one")), "1");
	assert_string_equal(xread(P(f->dst, "second/two")), "2");
	assert_false(exists(P(f->dst, "stray")));
	assert_int_equal(f->res.capture[VG_CAP_LIVE], 1);
	assert_int_equal(f->res.capture[VG_CAP_VERIFIED], 1);
}

static void
test_read_from_snapshot_path(void **state)
{
	struct fx	*f = *state;
	char		 snap[PATH_MAX];

	snprintf(snap, sizeof(snap), "%s/snap", f->base);
	assert_int_equal(mkdir(snap, 0755), 0);
	xwrite(P(snap, "frozen"), "from the snapshot");
	xwrite(P(f->src, "live"), "live");
	f->sources[0].read_from = snap;
	f->sources[0].capture = VG_CAP_SNAPSHOT_BTRFS;
	assert_int_equal(run(f), 0);
	assert_string_equal(xread(P(f->dst, "frozen")), "from the snapshot");
	assert_false(exists(P(f->dst, "live")));
	assert_int_equal(f->res.capture[VG_CAP_SNAPSHOT_BTRFS], 1);
}

static void
test_destination_inside_source(void **state)
{
	struct fx	*f = *state;

	snprintf(f->dst, sizeof(f->dst), "%s/backup", f->src);
	f->job.destination = f->dst;
	xwrite(P(f->src, "a"), "a");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_true(exists(P(f->dst, "a")));
	assert_false(exists(P(f->dst, "backup")));
	/* a second run does not copy the backup into itself either */
	assert_int_equal(run(f), 0);
	assert_false(exists(P(f->dst, "backup")));
}

static void
test_vigil_at_source_root_skipped(void **state)
{
	struct fx	*f = *state;

	assert_int_equal(mkdir(P(f->src, ".vigil"), 0755), 0);
	xwrite(P(f->src, ".vigil/x"), "x");
	xwrite(P(f->src, "a"), "a");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_false(exists(P(f->dst, ".vigil/x")));
	assert_int_equal(f->res.nwarnings, 1);
}

static void
test_verify_stores_checksum(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;
	struct catalogue_entry	*v = NULL;
	struct vg_err		 err;
	size_t			 n = 0;
	bool			 fresh;

	f->job.verify = true;
	xwrite(P(f->src, "a"), "checked content");
	cat = open_cat(f, &fresh);
	f->o.catalogue = cat;
	f->o.catalogue_fresh = fresh;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(catalogue_dir_load(cat, "", 0, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_true(v[0].has_sum);
	catalogue_entries_free(v, n);
	catalogue_close(cat);
}

static void
test_cancel_before_start(void **state)
{
	struct fx		*f = *state;
	volatile sig_atomic_t	 cancel = 1;

	xwrite(P(f->src, "a"), "a");
	f->o.cancel = &cancel;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_CANCELLED);
	assert_false(exists(P(f->dst, "a")));
}

static void
test_disk_full_fails_cleanly(void **state)
{
	struct fx	*f = *state;
	char		*big;
	int		 fd;
	char		*snap;

	assert_int_equal(mkdir(f->dst, 0755), 0);
	if (mount("tmpfs", f->dst, "tmpfs", 0, "size=1m") == -1)
		skip();		/* needs privileges to mount a small tmpfs */
	xwrite(P(f->dst, "kept"), "old contents");
	xwrite(P(f->src, "kept"), "new contents that will not fit after big");
	big = calloc(1, 4 << 20);
	memset(big, 'b', 4 << 20);
	fd = open(P(f->src, "aaa-big"), O_WRONLY | O_CREAT, 0644);
	assert_int_equal(write(fd, big, 4 << 20), 4 << 20);
	close(fd);
	free(big);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_FAILED);
	assert_non_null(strstr(f->res.message, "is full"));
	assert_non_null(strstr(f->res.message, f->dst));
	assert_string_equal(xread(P(f->dst, "kept")), "old contents");
	snap = snapshot(f->dst);
	assert_null(strstr(snap, ".vigil-tmp-"));
	assert_null(strstr(snap, "aaa-big"));
	free(snap);
	assert_int_equal(umount2(f->dst, MNT_DETACH), 0);
}

static void
test_fsync_flush_mode(void **state)
{
	struct fx	*f = *state;

	engine_flush_mode = ENGINE_FLUSH_FSYNC;
	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	xwrite(P(f->src, "d/a"), "a");
	xwrite(P(f->src, "b"), "b");
	assert_int_equal(run(f), 0);
	engine_flush_mode = ENGINE_FLUSH_SYNCFS;
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_string_equal(xread(P(f->dst, "d/a")), "a");
	assert_string_equal(xread(P(f->dst, "b")), "b");
}

static void
test_many_files_several_batches(void **state)
{
	struct fx	*f = *state;
	char		 name[32];
	int		 i;

	for (i = 0; i < 700; i++) {
		snprintf(name, sizeof(name), "f%04d", i);
		xwrite(P(f->src, name), name);
	}
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.files_copied, 700);
	assert_string_equal(xread(P(f->dst, "f0699")), "f0699");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_copied, 0);
	assert_int_equal(f->res.files_unchanged, 700);
}

static void
test_catalogue_folder_mode_change(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;
	struct stat		 st;
	bool			 fresh;

	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	xwrite(P(f->src, "d/a"), "a");
	cat = open_cat(f, &fresh);
	f->o.catalogue = cat;
	f->o.catalogue_fresh = fresh;
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	/* only the folder's mode changes: its ctime tells the catalogue */
	assert_int_equal(chmod(P(f->src, "d"), 0711), 0);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.files_copied, 0);
	assert_int_equal(stat(P(f->dst, "d"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
	catalogue_close(cat);
}

struct prog_seen {
	int	 calls;
	bool	 done;
	uint64_t copied;
};

static void
on_progress(const struct engine_progress *p, void *arg)
{
	struct prog_seen *ps = arg;

	ps->calls++;
	if (p->phase == ENGINE_PHASE_DONE) {
		ps->done = true;
		ps->copied = p->files_copied;
	}
}

static void
test_progress_reports_to_done(void **state)
{
	struct fx		*f = *state;
	struct prog_seen	 ps = { 0, false, 0 };

	xwrite(P(f->src, "a"), "a");
	xwrite(P(f->src, "b"), "b");
	f->o.progress = on_progress;
	f->o.progress_arg = &ps;
	assert_int_equal(run(f), 0);
	assert_true(ps.calls >= 2);
	assert_true(ps.done);
	assert_int_equal(ps.copied, 2);
}

/* ---- change detection, hard links, root metadata, versions ---- */

/* Open the catalogue and point the fixture at it. */
static struct vg_catalogue *
use_cat(struct fx *f)
{
	struct vg_catalogue	*cat;
	bool			 fresh;

	cat = open_cat(f, &fresh);
	f->o.catalogue = cat;
	f->o.catalogue_fresh = fresh;
	return cat;
}

static void
copy_mtime(const char *from, const char *to)
{
	struct stat	 st;
	struct timespec	 ts[2];

	assert_int_equal(lstat(from, &st), 0);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	assert_int_equal(utimensat(AT_FDCWD, to, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static ino_t
ino_of(const char *path)
{
	struct stat	 st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_ino;
}

static void
test_catalogue_sees_rewrite_keeping_mtime(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;

	xwrite(P(f->src, "f"), "aaaa");
	xwrite(P(f->base, "ref"), "");
	copy_mtime(P(f->src, "f"), P(f->base, "ref"));
	cat = use_cat(f);
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	/* same size, mtime put back: only ctime tells */
	xwrite(P(f->src, "f"), "bbbb");
	copy_mtime(P(f->base, "ref"), P(f->src, "f"));
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_string_equal(xread(P(f->dst, "f")), "bbbb");
	assert_int_equal(f->res.files_copied, 1);
	catalogue_close(cat);
}

static void
test_catalogue_sees_new_xattr(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;
	char			 val[16];

	xwrite(P(f->src, "f"), "data");
	cat = use_cat(f);
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	if (setxattr(P(f->src, "f"), "user.vigil", "new", 3, 0) == -1) {
		catalogue_close(cat);
		skip();		/* no user xattrs on this filesystem */
	}
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(getxattr(P(f->dst, "f"), "user.vigil", val,
	    sizeof(val)), 3);
	assert_memory_equal(val, "new", 3);
	catalogue_close(cat);
}

static void
test_catalogue_sees_link_replaced_by_copy(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;

	xwrite(P(f->src, "m"), "shared");
	assert_int_equal(link(P(f->src, "m"), P(f->src, "z")), 0);
	cat = use_cat(f);
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	assert_int_equal(ino_of(P(f->dst, "m")), ino_of(P(f->dst, "z")));
	/* z becomes a copy of its own with the same size and mtime */
	assert_int_equal(unlink(P(f->src, "z")), 0);
	xwrite(P(f->src, "z"), "zzzzzz");
	copy_mtime(P(f->src, "m"), P(f->src, "z"));
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_string_equal(xread(P(f->dst, "z")), "zzzzzz");
	assert_string_equal(xread(P(f->dst, "m")), "shared");
	assert_int_not_equal(ino_of(P(f->dst, "m")), ino_of(P(f->dst, "z")));
	catalogue_close(cat);
}

static void
test_rescan_without_catalogue_compares_size_mtime(void **state)
{
	struct fx	*f = *state;

	/* documented: without a catalogue, same size and mtime = same */
	xwrite(P(f->src, "f"), "aaaa");
	xwrite(P(f->base, "ref"), "");
	copy_mtime(P(f->src, "f"), P(f->base, "ref"));
	assert_int_equal(run(f), 0);
	xwrite(P(f->src, "f"), "bbbb");
	copy_mtime(P(f->base, "ref"), P(f->src, "f"));
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_copied, 0);
	assert_string_equal(xread(P(f->dst, "f")), "aaaa");
}

static void
new_links_to_unchanged(struct fx *f)
{
	xwrite(P(f->src, "m"), "linked");
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	/* a sorts before m, z after it */
	assert_int_equal(link(P(f->src, "m"), P(f->src, "a")), 0);
	assert_int_equal(link(P(f->src, "m"), P(f->src, "z")), 0);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(ino_of(P(f->dst, "a")), ino_of(P(f->dst, "m")));
	assert_int_equal(ino_of(P(f->dst, "z")), ino_of(P(f->dst, "m")));
	assert_string_equal(xread(P(f->dst, "a")), "linked");
}

static void
test_new_links_to_unchanged_file_catalogue(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;

	cat = use_cat(f);
	new_links_to_unchanged(f);
	/* and the next run leaves the group alone */
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_copied, 0);
	catalogue_close(cat);
}

static void
test_new_links_to_unchanged_file_rescan(void **state)
{
	struct fx	*f = *state;

	new_links_to_unchanged(f);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files_copied, 0);
}

static void
test_changed_link_group_stays_linked(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;

	f->job.keep_versions = 2;
	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	xwrite(P(f->src, "a"), "one");
	assert_int_equal(link(P(f->src, "a"), P(f->src, "d/b")), 0);
	assert_int_equal(link(P(f->src, "a"), P(f->src, "z")), 0);
	cat = use_cat(f);
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	xwrite(P(f->src, "a"), "two, longer");	/* every name changes */
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_string_equal(xread(P(f->dst, "d/b")), "two, longer");
	assert_int_equal(ino_of(P(f->dst, "a")), ino_of(P(f->dst, "d/b")));
	assert_int_equal(ino_of(P(f->dst, "a")), ino_of(P(f->dst, "z")));
	catalogue_close(cat);
}

static void
test_dest_root_times_survive_job_ini(void **state)
{
	struct fx	*f = *state;
	struct stat	 st;

	xwrite(P(f->src, "a"), "a");
	assert_int_equal(chmod(f->src, 0751), 0);
	set_mtime(f->src, 1577836800, 0);	/* 2020-01-01 */
	assert_int_equal(run(f), 0);		/* keep-versions 0 */
	assert_int_equal(f->res.status, VG_RUN_OK);
	/* what the caller does next: job.ini into <dest>/.vigil */
	if (mkdir(P(f->dst, ".vigil"), 0700) == -1)
		assert_int_equal(errno, EEXIST);
	xwrite(P(f->dst, ".vigil/job.ini"), "[job t]");
	assert_int_equal(stat(f->dst, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1577836800);
	assert_int_equal(st.st_mode & 07777, 0751);
}

static void
test_dest_root_times_on_fast_path(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;
	struct stat		 st;

	xwrite(P(f->src, "a"), "a");
	cat = use_cat(f);
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	set_mtime(f->src, 1577836800, 5);	/* only the root changes */
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.files_copied, 0);
	assert_int_equal(stat(f->dst, &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1577836800);
	assert_int_equal(st.st_mtim.tv_nsec, 5);
	catalogue_close(cat);
}

static void
test_symlink_xattrs_copied(void **state)
{
	struct fx	*f = *state;
	char		 val[16];

	xwrite(P(f->src, "target"), "t");
	assert_int_equal(symlink("target", P(f->src, "link")), 0);
	/* only trusted.* / security.* exist on symlinks; root only */
	if (lsetxattr(P(f->src, "link"), "trusted.vigil", "lnk", 3, 0) == -1)
		skip();
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(lgetxattr(P(f->dst, "link"), "trusted.vigil", val,
	    sizeof(val)), 3);
	assert_memory_equal(val, "lnk", 3);
	/* the target did not get it */
	assert_int_equal(getxattr(P(f->dst, "target"), "trusted.vigil", val,
	    sizeof(val)), -1);
}

static void
test_symlink_metadata_change_via_catalogue(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;
	struct stat		 st;
	char			*snap;

	f->job.keep_versions = 2;
	assert_int_equal(symlink("somewhere", P(f->src, "link")), 0);
	set_mtime(P(f->src, "link"), 1500000000, 1);
	cat = use_cat(f);
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	set_mtime(P(f->src, "link"), 1600000000, 2);	/* same target */
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(lstat(P(f->dst, "link"), &st), 0);
	assert_int_equal(st.st_mtim.tv_sec, 1600000000);
	assert_int_equal(st.st_mtim.tv_nsec, 2);
	/* the target did not change: no version of it */
	assert_int_equal(f->res.files_versioned, 0);
	snap = snapshot(P(f->dst, ".vigil/versions"));
	assert_null(strstr(snap, "/link "));
	free(snap);
	catalogue_close(cat);
}

static void
test_version_same_path_twice_keeps_first(void **state)
{
	struct fx		*f = *state;
	struct vg_engine_result	 res;
	struct eng_ctx		 c;
	struct eng_dir		*d;
	char			 rel[PATH_MAX];
	int			 fd;

	memset(&res, 0, sizeof(res));
	memset(&c, 0, sizeof(c));
	assert_int_equal(mkdir(f->dst, 0755), 0);
	xwrite(P(f->dst, "f"), "before the run");
	fd = open(f->dst, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	c.o = &f->o;
	c.job = &f->job;
	c.res = &res;
	c.pass = ENG_PASS_RUN;
	c.keep = true;
	c.dest = f->dst;
	c.dest_fd = fd;
	versions_stamp(f->o.now_ms, 9, c.stamp, sizeof(c.stamp));
	assert_non_null(d = eng_dir_new(dup(fd)));
	/* replaced: the old file is linked into the stamp */
	assert_int_equal(eng_version(&c, d, "f", "f", 1, true), 0);
	xwrite(P(f->dst, "f.new"), "placed by the run");
	assert_int_equal(rename(P(f->dst, "f.new"), P(f->dst, "f")), 0);
	/* then removed in the same run: moved, never over the first */
	assert_int_equal(eng_version(&c, d, "f", "f", 1, false), 0);
	eng_versions_close(&c);
	eng_dir_unref(d);
	close(fd);
	snprintf(rel, sizeof(rel), ".vigil/versions/%s/f", c.stamp);
	assert_string_equal(xread(P(f->dst, rel)), "before the run");
	assert_false(exists(P(f->dst, "f")));
	assert_int_equal(res.files_versioned, 1);
	engine_result_free(&res);
}

static void
test_meta_temp_files_cleaned(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;

	xwrite(P(f->src, "a"), "a");
	cat = use_cat(f);
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	/* a run killed while its caller wrote job.ini: the catalogue is
	   clean, the next run takes the fast path */
	xwrite(P(f->dst, ".vigil/job.ini"), "[job t]");
	xwrite(P(f->dst, ".vigil/.vigil-tmp-job-4242"), "[job");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_false(exists(P(f->dst, ".vigil/.vigil-tmp-job-4242")));
	assert_string_equal(xread(P(f->dst, ".vigil/job.ini")), "[job t]");
	catalogue_close(cat);
}

static void
test_files_counts_files_and_symlinks(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;

	f->job.mode = VG_MODE_MIRROR;
	f->job.max_delete = 100;
	assert_int_equal(mkdir(P(f->src, "d"), 0755), 0);
	xwrite(P(f->src, "a"), "a");
	xwrite(P(f->src, "d/b"), "b");
	assert_int_equal(symlink("a", P(f->src, "l")), 0);
	assert_int_equal(mkfifo(P(f->src, "fifo"), 0644), 0);
	cat = use_cat(f);
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.files, 3);	/* not folders nor the FIFO */
	assert_int_equal(f->res.dirs, 1);
	f->o.catalogue_fresh = false;
	assert_int_equal(run(f), 0);		/* the fast path */
	assert_int_equal(f->res.files, 3);
	assert_int_equal(f->res.files_unchanged, 3);
	catalogue_close(cat);
}

/* ---- capture: SQLite, reflink, verified, closed-app, fallback ---- */

/* Run sqlite3 on db; the first line of output in out. */
static int
sql1(const char *db, const char *sql, char *out, size_t len)
{
	char	 cmd[PATH_MAX * 2];
	FILE	*p;
	int	 ok;

	snprintf(cmd, sizeof(cmd), "sqlite3 -batch '%s' \"%s\" 2>&1", db, sql);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	ok = fgets(out, (int)len, p) != NULL;
	if (pclose(p) != 0 || !ok)
		return -1;
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

/* A small database (rollback journal, so a -wal beside it is not read). */
static void
make_db(const char *path)
{
	char	 out[256];

	if (system("command -v sqlite3 >/dev/null 2>&1") != 0)
		skip();
	assert_int_equal(sql1(path, "CREATE TABLE t (x); INSERT INTO t "
	    "VALUES (42); SELECT count(*) FROM t;", out, sizeof(out)), 0);
	assert_string_equal(out, "1");
}

static const struct engine_problem *
problem_of(struct fx *f, const char *path, const char *what)
{
	size_t	 i;

	for (i = 0; i < f->res.nproblems; i++)
		if (strcmp(f->res.problems[i].path, path) == 0 &&
		    strcmp(f->res.problems[i].problem, what) == 0)
			return &f->res.problems[i];
	return NULL;
}

static bool
warned_about(struct fx *f, const char *needle)
{
	size_t	 i;

	for (i = 0; i < f->res.nwarnings; i++)
		if (strstr(f->res.warnings[i], needle) != NULL)
			return true;
	return false;
}

static void
test_sqlite_backup_skips_companions(void **state)
{
	struct fx	*f = *state;
	char		 out[256];

	make_db(P(f->src, "a.db"));
	xwrite(P(f->src, "a.db-wal"), "not a wal");
	xwrite(P(f->src, "a.db-shm"), "not a shm");
	xwrite(P(f->src, "b.txt"), "b");
	/* a stale companion at the destination would be replayed into the
	   new copy: it goes */
	assert_int_equal(mkdir(f->dst, 0700), 0);
	xwrite(P(f->dst, "a.db-journal"), "stale journal");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.capture[VG_CAP_SQLITE_BACKUP], 1);
	assert_int_equal(f->res.capture[VG_CAP_LIVE], 1);
	assert_false(exists(P(f->dst, "a.db-wal")));
	assert_false(exists(P(f->dst, "a.db-shm")));
	assert_false(exists(P(f->dst, "a.db-journal")));
	assert_true(warned_about(f, "a.db-wal: skipped"));
	assert_true(warned_about(f, "a.db-shm: skipped"));
	assert_int_equal(sql1(P(f->dst, "a.db"), "PRAGMA integrity_check",
	    out, sizeof(out)), 0);
	assert_string_equal(out, "ok");
	assert_int_equal(sql1(P(f->dst, "a.db"), "SELECT x FROM t", out,
	    sizeof(out)), 0);
	assert_string_equal(out, "42");
}

static void
test_sqlite_backup_with_verify_checksums_copy(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;
	bool			 fresh;

	f->job.verify = true;
	make_db(P(f->src, "a.db"));
	cat = open_cat(f, &fresh);
	f->o.catalogue = cat;
	f->o.catalogue_fresh = fresh;
	assert_int_equal(run(f), 0);
	/* the sum is the copy's (what SQLite wrote), re-read after flush */
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_null(problem_of(f, "a.db", "verify-mismatch"));
	assert_int_equal(f->res.capture[VG_CAP_SQLITE_BACKUP], 1);
	catalogue_close(cat);
}

static void
test_sqlite_with_wal_never_unchanged(void **state)
{
	struct fx		*f = *state;
	struct vg_catalogue	*cat;

	make_db(P(f->src, "a.db"));
	xwrite(P(f->src, "a.db-wal"), "commits may sit here");
	xwrite(P(f->src, "plain"), "p");
	xwrite(P(f->src, "plain-wal"), "not a database's");
	cat = use_cat(f);
	assert_int_equal(run(f), 0);
	f->o.catalogue_fresh = false;
	assert_int_equal(run(f), 0);
	/* a.db's own stat is the same, but its WAL holds data: again */
	assert_int_equal(f->res.capture[VG_CAP_SQLITE_BACKUP], 1);
	assert_int_equal(f->res.files_copied, 1);
	assert_int_equal(f->res.files_unchanged, 2);	/* plain, plain-wal */
	catalogue_close(cat);
}

static void
test_sqlite_fallthrough_copies_companions(void **state)
{
	struct fx	*f = *state;
	char		 junk[4096];
	int		 fd;

	/* the header, then nothing SQLite can read */
	memset(junk, 0x5a, sizeof(junk));
	memcpy(junk, "SQLite format 3", 16);
	fd = open(P(f->src, "bad.db"), O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	xwrite(P(f->src, "bad.db-wal"), "wal");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.capture[VG_CAP_SQLITE_BACKUP], 0);
	assert_int_equal(f->res.capture[VG_CAP_LIVE], 2);
	assert_true(exists(P(f->dst, "bad.db")));
	assert_string_equal(xread(P(f->dst, "bad.db-wal")), "wal");
	assert_true(warned_about(f, "bad.db: not captured through the "
	    "SQLite backup API"));
}

static void
test_snapshot_btrfs_copies_db_plainly(void **state)
{
	struct fx	*f = *state;

	make_db(P(f->src, "a.db"));
	xwrite(P(f->src, "a.db-wal"), "wal");
	f->sources[0].capture = VG_CAP_SNAPSHOT_BTRFS;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.capture[VG_CAP_SNAPSHOT_BTRFS], 2);
	assert_int_equal(f->res.capture[VG_CAP_SQLITE_BACKUP], 0);
	assert_string_equal(xread(P(f->dst, "a.db-wal")), "wal");
}

static void
test_closed_app_counts_closed_app(void **state)
{
	struct fx	*f = *state;

	xwrite(P(f->src, "a"), "a");
	xwrite(P(f->src, "b"), "b");
	f->sources[0].capture = VG_CAP_CLOSED_APP;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.capture[VG_CAP_CLOSED_APP], 2);
	assert_int_equal(f->res.nproblems, 0);
}

static void
test_fallback_files_by_fallback_and_listed(void **state)
{
	struct fx		*f = *state;
	struct vg_strlist	 fb = { NULL, 0 };
	const struct engine_problem *p;
	char			*v[2];

	assert_int_equal(mkdir(P(f->src, "mail"), 0755), 0);
	xwrite(P(f->src, "held"), "h");
	xwrite(P(f->src, "free"), "f");
	xwrite(P(f->src, "mail/inbox"), "i");
	xwrite(P(f->src, "mail/sent"), "s");
	v[0] = P(f->src, "held");
	v[1] = P(f->src, "mail/");	/* a folder covers what is in it */
	fb.v = v;
	fb.n = 2;
	f->sources[0].capture = VG_CAP_CLOSED_APP;
	f->sources[0].fallback = VG_CAP_VERIFIED;
	f->o.fallback_files = &fb;
	f->o.fallback_capture = VG_CAP_LIVE;	/* the source's wins */
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_int_equal(f->res.capture[VG_CAP_CLOSED_APP], 1);
	assert_int_equal(f->res.capture[VG_CAP_VERIFIED], 3);
	assert_int_equal(f->res.nproblems, 3);
	p = problem_of(f, "held", "fallback");
	assert_non_null(p);
	assert_true(p->has_capture);
	assert_int_equal(p->capture, VG_CAP_VERIFIED);
	assert_string_equal(p->detail, "held by an app that refused to close");
	assert_non_null(problem_of(f, "mail/inbox", "fallback"));
	assert_null(problem_of(f, "free", "fallback"));
}

static void
test_fallback_files_default_method(void **state)
{
	struct fx		*f = *state;
	struct vg_strlist	 fb = { NULL, 0 };
	char			*v[1];

	xwrite(P(f->src, "held"), "h");
	v[0] = P(f->src, "held");
	fb.v = v;
	fb.n = 1;
	f->sources[0].capture = VG_CAP_CLOSED_APP;
	f->o.fallback_files = &fb;
	f->o.fallback_capture = VG_CAP_VERIFIED;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.capture[VG_CAP_VERIFIED], 1);
	/* a source that is not closed-app has no separate fallback */
	f->sources[0].capture = VG_CAP_SNAPSHOT_BTRFS;
	xwrite(P(f->src, "held"), "h2");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.capture[VG_CAP_SNAPSHOT_BTRFS], 1);
	assert_null(problem_of(f, "held", "fallback"));
}

static void
test_reflink_clone_or_verified(void **state)
{
	struct fx	*f = *state;
	char		 stg[PATH_MAX];
	bool		 can;
	int		 fd;

	snprintf(stg, sizeof(stg), "%s/.vigil-staging-t", f->src);
	assert_int_equal(mkdir(stg, 0700), 0);
	fd = open(stg, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	can = snap_reflink_probe(fd) == 0;
	close(fd);
	xwrite(P(f->src, "a"), "content");
	f->sources[0].capture = VG_CAP_REFLINK;
	f->sources[0].staging = stg;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_string_equal(xread(P(f->dst, "a")), "content");
	/* where the filesystem cannot clone, the file is copied and
	   checked, and counted as such; the staging folder is not copied */
	assert_int_equal(f->res.capture[can ? VG_CAP_REFLINK :
	    VG_CAP_VERIFIED], 1);
	assert_int_equal(f->res.files_copied, 1);
	if (!can)
		assert_true(warned_about(f, "cannot clone"));
	assert_false(exists(P(f->dst, ".vigil-staging-t")));
}

static void
test_snapshot_folders_at_root_skipped(void **state)
{
	struct fx	*f = *state;

	assert_int_equal(mkdir(P(f->src, SNAP_DIR_NAME), 0755), 0);
	xwrite(P(f->src, SNAP_DIR_NAME "/x"), "x");
	assert_int_equal(mkdir(P(f->src, SNAP_STAGING_PREFIX "r9"), 0700), 0);
	xwrite(P(f->src, SNAP_STAGING_PREFIX "r9/y"), "y");
	assert_int_equal(mkdir(P(f->src, "sub"), 0755), 0);
	assert_int_equal(mkdir(P(f->src, "sub/" SNAP_STAGING_PREFIX "r9"),
	    0755), 0);
	xwrite(P(f->src, "sub/" SNAP_STAGING_PREFIX "r9/z"), "z");
	xwrite(P(f->src, SNAP_STAGING_PREFIX "file"), "a file, copied");
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	assert_false(exists(P(f->dst, SNAP_DIR_NAME)));
	assert_false(exists(P(f->dst, SNAP_STAGING_PREFIX "r9")));
	/* only at the root of a source or filesystem */
	assert_true(exists(P(f->dst, "sub/" SNAP_STAGING_PREFIX "r9/z")));
	assert_true(exists(P(f->dst, SNAP_STAGING_PREFIX "file")));
}

/*
 * A child that writes to path without pause until killed: it rewrites the
 * start and appends (file times are as coarse as the kernel's clock tick,
 * so a rewrite alone within one tick can look like no change; the growing
 * size cannot).
 */
static pid_t
start_rewriter(const char *path)
{
	static char	 buf[1 << 16];
	pid_t		 pid;
	int		 fd, afd;
	unsigned	 n = 0;

	pid = fork();
	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	if ((fd = open(path, O_WRONLY)) == -1 ||
	    (afd = open(path, O_WRONLY | O_APPEND)) == -1)
		_exit(2);
	for (;;) {
		memset(buf, 'a' + (int)(n++ % 26), sizeof(buf));
		if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf) ||
		    write(afd, "0123456789abcdef", 16) != 16)
			_exit(3);
	}
}

static void
test_changing_file_inconsistent_partial(void **state)
{
	struct fx	*f = *state;
	const struct engine_problem *p;
	struct stat	 st0, st1;
	char		 big[1 << 16];
	pid_t		 w;
	int		 fd, i;

	memset(big, 'x', sizeof(big));
	fd = open(P(f->src, "busy"), O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	for (i = 0; i < 512; i++)	/* 32 MiB: each copy takes a while */
		assert_int_equal(write(fd, big, sizeof(big)),
		    (ssize_t)sizeof(big));
	close(fd);
	xwrite(P(f->src, "quiet"), "q");
	f->job.retries = 2;
	f->sources[0].capture = VG_CAP_CLOSED_APP;
	assert_int_equal(stat(P(f->src, "busy"), &st0), 0);
	w = start_rewriter(P(f->src, "busy"));
	do {	/* until it writes */
		usleep(1000);
		assert_int_equal(stat(P(f->src, "busy"), &st1), 0);
	} while (st1.st_mtim.tv_sec == st0.st_mtim.tv_sec &&
	    st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec);
	assert_int_equal(run(f), 0);
	kill(w, SIGKILL);
	waitpid(w, NULL, 0);
	assert_int_equal(f->res.status, VG_RUN_PARTIAL);
	assert_int_equal(f->res.capture[VG_CAP_INCONSISTENT], 1);
	assert_int_equal(f->res.capture[VG_CAP_CLOSED_APP], 1);
	p = problem_of(f, "busy", "inconsistent");
	assert_non_null(p);
	assert_int_equal(p->capture, VG_CAP_INCONSISTENT);
	assert_true(exists(P(f->dst, "busy")));	/* the last copy is kept */
}

struct phases {
	enum engine_phase seq[64];
	size_t		 n;
};

static void
on_phase(const struct engine_progress *p, void *arg)
{
	struct phases	*ph = arg;

	if (ph->n == 0 || ph->seq[ph->n - 1] != p->phase) {
		if (ph->n < 64)
			ph->seq[ph->n++] = p->phase;
	}
}

static void
test_verify_phase_only_after_the_walk(void **state)
{
	struct fx	*f = *state;
	struct phases	 ph;
	char		 name[32];
	size_t		 i;
	int		 k;

	/* several batches, each verified while the walk goes on */
	for (k = 0; k < ENG_BATCH_FILES * 2 + 10; k++) {
		snprintf(name, sizeof(name), "f%04d", k);
		xwrite(P(f->src, name), name);
	}
	memset(&ph, 0, sizeof(ph));
	f->job.verify = true;
	f->o.progress = on_phase;
	f->o.progress_arg = &ph;
	assert_int_equal(run(f), 0);
	assert_int_equal(f->res.status, VG_RUN_OK);
	/* scan, copy, then verify, done: once verify (or later) is said,
	   the sources are read no more */
	for (i = 1; i < ph.n; i++)
		if (ph.seq[i - 1] == ENGINE_PHASE_VERIFY)
			assert_int_not_equal(ph.seq[i], ENGINE_PHASE_COPY);
	assert_int_equal(ph.seq[ph.n - 1], ENGINE_PHASE_DONE);
	assert_true(ph.n >= 4);
	assert_int_equal(ph.seq[ph.n - 2], ENGINE_PHASE_VERIFY);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_copy_regular_mode_mtime),
		T(test_no_temp_files_left),
		T(test_many_replaced_released),
		T(test_copy_sparse),
		T(test_copy_symlink_exact),
		T(test_copy_hardlinks),
		T(test_copy_empty_dir_mode_mtime),
		T(test_copy_xattr),
		T(test_odd_names),
		T(test_path_deeper_than_path_max),
		T(test_backup_never_deletes),
		T(test_mirror_deletes_strays),
		T(test_max_delete_aborts_untouched),
		T(test_mirror_keeps_excluded),
		T(test_versions_keep_replaced_and_deleted),
		T(test_versions_retention_at_run_end),
		T(test_dry_run_changes_nothing),
		T(test_dry_run_without_destination),
		T(test_fifo_gives_partial),
		T(test_unreadable_file_partial),
		T(test_catalogue_fast_path_and_rescan),
		T(test_catalogue_mirror_deletes),
		T(test_dirty_catalogue_cleans_temp_files),
		T(test_type_changes),
		T(test_planted_symlink_not_followed),
		T(test_unsupported_mode_fails_cleanly),
		T(test_missing_source_fails_before_touching),
		T(test_several_sources),
		T(test_read_from_snapshot_path),
		T(test_destination_inside_source),
		T(test_vigil_at_source_root_skipped),
		T(test_verify_stores_checksum),
		T(test_cancel_before_start),
		T(test_disk_full_fails_cleanly),
		T(test_fsync_flush_mode),
		T(test_many_files_several_batches),
		T(test_catalogue_folder_mode_change),
		T(test_progress_reports_to_done),
		T(test_catalogue_sees_rewrite_keeping_mtime),
		T(test_catalogue_sees_new_xattr),
		T(test_catalogue_sees_link_replaced_by_copy),
		T(test_rescan_without_catalogue_compares_size_mtime),
		T(test_new_links_to_unchanged_file_catalogue),
		T(test_new_links_to_unchanged_file_rescan),
		T(test_changed_link_group_stays_linked),
		T(test_dest_root_times_survive_job_ini),
		T(test_dest_root_times_on_fast_path),
		T(test_symlink_xattrs_copied),
		T(test_symlink_metadata_change_via_catalogue),
		T(test_version_same_path_twice_keeps_first),
		T(test_meta_temp_files_cleaned),
		T(test_files_counts_files_and_symlinks),
		T(test_sqlite_backup_skips_companions),
		T(test_sqlite_backup_with_verify_checksums_copy),
		T(test_sqlite_with_wal_never_unchanged),
		T(test_sqlite_fallthrough_copies_companions),
		T(test_snapshot_btrfs_copies_db_plainly),
		T(test_closed_app_counts_closed_app),
		T(test_fallback_files_by_fallback_and_listed),
		T(test_fallback_files_default_method),
		T(test_reflink_clone_or_verified),
		T(test_snapshot_folders_at_root_skipped),
		T(test_changing_file_inconsistent_partial),
		T(test_verify_phase_only_after_the_walk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
