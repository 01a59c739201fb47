/*
 * snapdriver.c: a test driver for the snapshot providers on real
 * filesystems (tests/integration/test_snapshots.sh).  It does what the
 * runner and the engine will do around a run: take the run's snapshots
 * (scheduler/snapshot.h), copy each file of a source with the capture
 * methods (scheduler/capture.h), release the snapshots; and it holds a
 * writer that embeds sequence numbers, and a checker for them.
 *
 *   snapdriver writer DIR [--sync]      rewrite DIR/rewrite.dat block by
 *                                        block with seq N, then append "N"
 *                                        to DIR/append.log, N = 1, 2, ...
 *                                        (--sync: fdatasync after each)
 *   snapdriver check DIR [--per-file|--ordered]
 *                                        are DIR's two files one moment?
 *   snapdriver slowcopy SRC DST          copy a file slowly, no capture
 *   snapdriver run DB SRC DEST MODE [UID GID]
 *                                        take, copy (as UID:GID if given),
 *                                        release; prints what it did
 *   snapdriver hold DB SRC MODE          take, print, wait to be killed
 *   snapdriver cleanup DB                what vigild does at start
 *   snapdriver bench SUBVOL N DB         median ms of take + remove
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/snapshot.h"
#include "db/snapshots.h"
#include "db/store.h"
#include "scheduler/capture.h"
#include "scheduler/snapshot.h"

#define BLK	4096
#define NBLK	64

static void __attribute__((noreturn))
die(const char *what, const struct vg_err *err)
{
	fprintf(stderr, "snapdriver: %s: %s\n", what, err ? err->msg :
	    strerror(errno));
	exit(2);
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* ---- writer and checker ---- */

static void __attribute__((noreturn))
cmd_writer(const char *dir, int sync)
{
	char	 path[PATH_MAX], blk[BLK], line[32];
	unsigned n, i, k;
	int	 rfd, afd = -1;

	snprintf(path, sizeof(path), "%s/rewrite.dat", dir);
	if ((rfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1)
		die(path, NULL);
	for (n = 0;; n++) {
		for (i = 0; i < NBLK; i++) {
			for (k = 0; k < BLK; k += 16)
				snprintf(blk + k, 17, "seq=%010u\n", n);
			if (pwrite(rfd, blk, BLK, (off_t)i * BLK) != BLK)
				die("rewrite", NULL);
		}
		if (sync && fdatasync(rfd) == -1)
			die("fdatasync", NULL);
		if (n == 0) {
			snprintf(path, sizeof(path), "%s/append.log", dir);
			afd = open(path, O_WRONLY | O_CREAT | O_TRUNC |
			    O_APPEND, 0644);
			if (afd == -1)
				die(path, NULL);
			/* ready: the files exist */
			printf("ready\n");
			fflush(stdout);
			continue;
		}
		k = (unsigned)snprintf(line, sizeof(line), "%u\n", n);
		if (write(afd, line, k) != (ssize_t)k)
			die("append", NULL);
		if (sync && fdatasync(afd) == -1)
			die("fdatasync", NULL);
	}
}

/* mode 0: one moment of the writer across both files; 1: each file is one
 * moment; 2: each file is one moment and the log is never ahead of the
 * rewritten file (what a snapshot keeps of a writer that syncs). */
static int
cmd_check(const char *dir, int mode)
{
	static char	 rbuf[NBLK * BLK + 1], lbuf[16 << 20];
	char		 path[PATH_MAX], *buf, *p, *end;
	unsigned	 seq[NBLK], s, hi, lo;
	unsigned long	 k = 0, v;
	ssize_t		 n;
	size_t		 i, j;
	int		 fd;

	snprintf(path, sizeof(path), "%s/rewrite.dat", dir);
	buf = rbuf;
	if ((fd = open(path, O_RDONLY)) == -1)
		die(path, NULL);
	n = read(fd, buf, NBLK * BLK + 1);
	close(fd);
	if (n != NBLK * BLK) {
		printf("torn: rewrite.dat has %zd bytes\n", n);
		return 1;
	}
	for (i = 0; i < NBLK; i++) {
		for (j = 0; j < BLK; j += 16) {
			if (sscanf(buf + i * BLK + j, "seq=%10u", &s) != 1) {
				printf("torn: rewrite.dat block %zu unreadable\n",
				    i);
				return 1;
			}
			if (j == 0)
				seq[i] = s;
			else if (s != seq[i]) {
				printf("torn: rewrite.dat block %zu mixes %u "
				    "and %u\n", i, seq[i], s);
				return 1;
			}
		}
		if (i > 0 && (seq[i] > seq[i - 1] || seq[0] - seq[i] > 1)) {
			printf("torn: rewrite.dat blocks 0 and %zu hold %u and "
			    "%u: no single moment\n", i, seq[0], seq[i]);
			return 1;
		}
	}
	hi = seq[0];
	lo = seq[NBLK - 1];

	snprintf(path, sizeof(path), "%s/append.log", dir);
	if ((fd = open(path, O_RDONLY)) == -1)
		die(path, NULL);
	buf = lbuf;
	n = read(fd, buf, sizeof(lbuf) - 1);
	close(fd);
	if (n < 0)
		die("read", NULL);
	buf[n] = '\0';
	for (p = buf; *p != '\0'; p = end + 1) {
		v = strtoul(p, &end, 10);
		if (*end != '\n' || v != k + 1) {
			printf("torn: append.log line %lu is not %lu\n", k + 1,
			    k + 1);
			return 1;
		}
		k = v;
	}
	if (mode == 2 && k > lo) {
		printf("torn: append.log ends at %lu, ahead of rewrite.dat %u/%u "
		    "which was synced before\n", k, hi, lo);
		return 1;
	}
	if (mode == 0) {
		/* one moment of the writer's program order */
		if ((hi == lo && k != hi && k + 1 != hi) ||
		    (hi != lo && k != lo)) {
			printf("torn: rewrite.dat %u/%u but append.log ends at "
			    "%lu: the files are from different moments\n", hi,
			    lo, k);
			return 1;
		}
	}
	printf("consistent: rewrite.dat %u/%u append.log %lu\n", hi, lo, k);
	return 0;
}

/* ---- copying the way the engine will ---- */

struct copier {
	int	 dst;
	long	 sleep_us;
};

static int
copier_fn(void *arg, int src, const struct stat *st)
{
	struct copier	*c = arg;
	char		 buf[BLK];
	off_t		 off = 0;
	ssize_t		 n;

	(void)st;
	if (ftruncate(c->dst, 0) == -1)
		return -1;
	while ((n = pread(src, buf, sizeof(buf), off)) > 0) {
		if (pwrite(c->dst, buf, (size_t)n, off) != n)
			return -1;
		off += n;
		if (c->sleep_us > 0)
			usleep((useconds_t)c->sleep_us);
	}
	return n == 0 ? 0 : -1;
}

static int
cmd_slowcopy(const char *src, const char *dst)
{
	struct copier	 c = { .sleep_us = 5000 };
	int		 s;

	if ((s = open(src, O_RDONLY)) == -1 ||
	    (c.dst = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1)
		die(src, NULL);
	return copier_fn(&c, s, NULL) == 0 ? 0 : 2;
}

/* Copy every regular file at the top of from into dest with the capture
 * methods; one line per file.  Returns the number of files that failed. */
static int
copy_tree(const char *from, const char *dest, const char *staging,
    enum vg_capture cap)
{
	struct capture_outcome	 out;
	struct copier		 c = { .sleep_us = 2000 };
	struct vg_err		 err;
	struct dirent		*de;
	struct stat		 st;
	DIR			*d;
	const char		*how;
	int			 sfd, dfd, stfd = -1, fd, r, bad = 0;

	if ((d = opendir(from)) == NULL || (dfd = open(dest, O_RDONLY |
	    O_DIRECTORY)) == -1)
		die(from, NULL);
	sfd = dirfd(d);
	if (staging != NULL && (stfd = open(staging, O_RDONLY |
	    O_DIRECTORY)) == -1)
		die(staging, NULL);
	while ((de = readdir(d)) != NULL) {
		if (fstatat(sfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (capture_is_sqlite_companion(sfd, de->d_name)) {
			printf("file %s skipped companion\n", de->d_name);
			continue;
		}
		if ((fd = openat(sfd, de->d_name, O_RDONLY | O_NOFOLLOW)) ==
		    -1) {
			printf("file %s unreadable %s\n", de->d_name,
			    strerror(errno));
			bad++;
			continue;
		}
		c.dst = openat(dfd, de->d_name, O_RDWR | O_CREAT | O_TRUNC,
		    0600);
		if (c.dst == -1)
			die(de->d_name, NULL);
		r = CAPTURE_FALLTHROUGH;
		how = store_capture_name(cap);
		if (capture_is_sqlite(fd)) {
			r = capture_sqlite(sfd, de->d_name, fd, dfd, de->d_name,
			    CAPTURE_SQLITE_DEADLINE_MS, &out, &err);
			how = "sqlite-backup";
			if (r == CAPTURE_FALLTHROUGH)
				printf("note %s: %s\n", de->d_name, err.msg);
		}
		if (r == CAPTURE_FALLTHROUGH && cap == VG_CAP_REFLINK) {
			r = capture_reflink(stfd, fd, copier_fn, &c, &out,
			    &err);
			how = "reflink";
		}
		if (r == CAPTURE_FALLTHROUGH) {
			r = capture_verified(fd, NULL, cap == VG_CAP_VERIFIED ? 3 :
			    0, copier_fn, &c, &out, &err);
			how = cap == VG_CAP_SNAPSHOT_BTRFS ? "snapshot-btrfs" :
			    "verified";
		}
		if (r == 0 && !out.consistent)
			how = "inconsistent";
		if (r != 0) {
			printf("file %s failed %s\n", de->d_name, err.msg);
			bad++;
		} else
			printf("file %s %s copies=%u\n", de->d_name, how,
			    out.copies);
		close(c.dst);
		close(fd);
	}
	closedir(d);
	close(dfd);
	if (stfd != -1)
		close(stfd);
	return bad;
}

/* ---- runs ---- */

static struct vg_store *
open_store(const char *db)
{
	struct vg_store	*st;
	struct vg_err	 err;

	if (store_open(db, &st, &err) == -1)
		die("store_open", &err);
	return st;
}

static int64_t
begin_run(struct vg_store *st, const char *src)
{
	struct vg_job_put put = { 0, "snapdrv", NULL };
	struct vg_job_row job;
	struct vg_err	 err;
	char		 def[PATH_MAX + 32];
	int64_t		 run;

	snprintf(def, sizeof(def), "source = %s\n", src);
	put.definition = def;
	if (store_jobs_import(st, STORE_IMPORT_MERGE, &put, 1, NULL, 0, 0,
	    NULL, &err) == -1 || store_job_get(st, 0, "snapdrv", &job,
	    &err) == -1 || store_run_begin(st, job.id, "manual", false, &run,
	    &err) == -1)
		die("run", &err);
	job_row_free(&job);
	return run;
}

static enum vg_snapshot
parse_mode(const char *s)
{
	static const char *names[] = { "auto", "btrfs", "lvm", "reflink",
	    "verify" };
	int	 i;

	for (i = 0; i < 5; i++)
		if (strcmp(s, names[i]) == 0)
			return (enum vg_snapshot)i;
	fprintf(stderr, "snapdriver: bad mode %s\n", s);
	exit(2);
}

static struct snapshot_set *
take(struct vg_store *st, int64_t run, const char *src, const char *mode,
    uid_t uid, gid_t gid)
{
	struct vg_job_def		 job;
	struct snapshot_set		*set;
	const struct snapshot_source	*s;
	struct vg_err			 err;
	char				*v[1];

	memset(&job, 0, sizeof(job));
	job.name = "snapdrv";
	v[0] = (char *)src;
	job.sources.v = v;
	job.sources.n = 1;
	job.snapshot = parse_mode(mode);
	if (snapshot_take(st, run, &job, uid, gid, geteuid() == 0, &set,
	    &err) == -1)
		die("snapshot_take", &err);
	s = snapshot_source(set, 0);
	printf("run %lld\ncapture %s\nread_from %s\nstaging %s\nreason %s\n",
	    (long long)run, store_capture_name(s->capture),
	    s->read_from ? s->read_from : "-",
	    s->staging ? s->staging : "-", s->reason);
	fflush(stdout);
	return set;
}

static int
cmd_run(const char *db, const char *src, const char *dest, const char *mode,
    const char *uidstr, const char *gidstr)
{
	struct vg_store			*st = open_store(db);
	struct snapshot_set		*set;
	const struct snapshot_source	*s;
	struct vg_run_row		 row;
	struct vg_err			 err;
	uid_t				 uid = 0;
	gid_t				 gid = 0;
	int64_t				 run;
	int				 bad, status;
	pid_t				 pid;

	if (uidstr != NULL) {
		uid = (uid_t)strtoul(uidstr, NULL, 10);
		gid = (gid_t)strtoul(gidstr, NULL, 10);
	}
	run = begin_run(st, src);
	set = take(st, run, src, mode, uid, gid);
	s = snapshot_source(set, 0);
	usleep(300000);		/* the writer goes on meanwhile */
	pid = fork();
	if (pid == -1)
		die("fork", NULL);
	if (pid == 0) {
		/* the worker: reads as the job's owner */
		if (uidstr != NULL && (setgroups(0, NULL) == -1 ||
		    setgid(gid) == -1 || setuid(uid) == -1))
			die("dropping privileges", NULL);
		bad = copy_tree(s->read_from ? s->read_from : src, dest,
		    s->staging, s->capture);
		fflush(stdout);
		_exit(bad > 0 ? 1 : 0);
	}
	waitpid(pid, &status, 0);
	if (snapshot_release(st, set, &err) == -1)
		die("snapshot_release", &err);
	memset(&row, 0, sizeof(row));
	row.id = run;
	row.status = WIFEXITED(status) && WEXITSTATUS(status) == 0 ?
	    VG_RUN_OK : VG_RUN_PARTIAL;
	if (store_run_finish(st, &row, NULL, 0, &err) == -1)
		die("store_run_finish", &err);
	snapshot_set_free(set);
	store_close(st);
	printf("released\n");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}

static void __attribute__((noreturn))
cmd_hold(const char *db, const char *src, const char *mode)
{
	struct vg_store	*st = open_store(db);

	(void)take(st, begin_run(st, src), src, mode, 0, 0);
	printf("holding\n");
	fflush(stdout);
	for (;;)
		pause();
}

static int
cmd_cleanup(const char *db)
{
	struct vg_store	*st = open_store(db);
	struct vg_err	 err;
	size_t		 n, removed, failed;

	vg_err_clear(&err);
	if (store_runs_mark_interrupted(st, &n, &err) == -1 ||
	    snapshot_cleanup(st, &removed, &failed, &err) == -1)
		die("cleanup", &err);
	printf("interrupted %zu removed %zu failed %zu%s%s\n", n, removed,
	    failed, failed ? " " : "", failed ? err.msg : "");
	store_close(st);
	return failed ? 1 : 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
cmd_bench(const char *subvol, int n, const char *db)
{
	struct vg_store	*st = open_store(db);
	struct snapshot_set *set;
	struct vg_err	 err;
	double		 raw[64], full[64], take_ms[64], t0, t1;
	char		*path, name[32];
	int		 i;
	int64_t		 run;

	if (n < 1 || n > 64)
		n = 5;
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "bench-%d", i);
		if (snap_btrfs_plan(subvol, name, &path) == -1)
			die("plan", NULL);
		t0 = now_ms();
		if (snap_btrfs_create(subvol, path) == -1)
			die("create", NULL);
		t1 = now_ms();
		if (snap_btrfs_delete(path) == -1)
			die("delete", NULL);
		raw[i] = now_ms() - t0;
		take_ms[i] = t1 - t0;
		free(path);
	}
	for (i = 0; i < n; i++) {
		run = begin_run(st, subvol);
		t0 = now_ms();
		set = take(st, run, subvol, "btrfs", 0, 0);
		if (snapshot_release(st, set, &err) == -1)
			die("release", &err);
		full[i] = now_ms() - t0;
		snapshot_set_free(set);
	}
	/* cppcheck-suppress uninitvar ; the loops above fill [0, n) */
	qsort(raw, (size_t)n, sizeof(double), cmp_double);
	qsort(full, (size_t)n, sizeof(double), cmp_double);
	/* cppcheck-suppress uninitvar ; the loops above fill [0, n) */
	qsort(take_ms, (size_t)n, sizeof(double), cmp_double);
	printf("bench n=%d create median %.1f ms; create+delete median %.1f "
	    "ms (min %.1f max %.1f); with DB records %.1f ms\n", n,
	    take_ms[n / 2], raw[n / 2], raw[0], raw[n - 1], full[n / 2]);
	store_close(st);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "writer") == 0)
		cmd_writer(argv[2], argc == 4 && strcmp(argv[3], "--sync") == 0);
	if (argc >= 3 && strcmp(argv[1], "check") == 0)
		return cmd_check(argv[2], argc < 4 ? 0 :
		    strcmp(argv[3], "--per-file") == 0 ? 1 :
		    strcmp(argv[3], "--ordered") == 0 ? 2 : 0);
	if (argc == 4 && strcmp(argv[1], "slowcopy") == 0)
		return cmd_slowcopy(argv[2], argv[3]);
	if ((argc == 6 || argc == 8) && strcmp(argv[1], "run") == 0)
		return cmd_run(argv[2], argv[3], argv[4], argv[5],
		    argc == 8 ? argv[6] : NULL, argc == 8 ? argv[7] : NULL);
	if (argc == 5 && strcmp(argv[1], "hold") == 0)
		cmd_hold(argv[2], argv[3], argv[4]);
	if (argc == 3 && strcmp(argv[1], "cleanup") == 0)
		return cmd_cleanup(argv[2]);
	if (argc == 5 && strcmp(argv[1], "bench") == 0)
		return cmd_bench(argv[2], atoi(argv[3]), argv[4]);
	fprintf(stderr, "usage: snapdriver writer|check|slowcopy|run|hold|"
	    "cleanup|bench ...\n");
	return 2;
}
