/*
 * test_capture.c: the per-file capture methods (scheduler/capture.h) on real
 * files in a temp folder, with real writer processes: a sqlite3 process that
 * commits WAL transactions during the backup, and child processes that
 * rewrite a file while it is copied.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/snapshot.h"
#include "scheduler/capture.h"

#define BLK	4096
#define NBLK	64		/* 256 KiB test files */

struct fx {
	char	 dir[PATH_MAX];
	int	 dfd;
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));
	const char	*tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof(f->dir), "%s/vigil-capture-XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	f->dfd = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(f->dfd >= 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	char		 cmd[PATH_MAX + 16];

	close(f->dfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- sequence-stamped files ---- */

/* Fill buf (NBLK blocks) with "seq=N" stamps. */
static void
stamp(char *buf, unsigned seq)
{
	size_t	 i;
	int	 n;

	for (i = 0; i < NBLK * BLK; i += 16) {
		n = snprintf(buf + i, 17, "seq=%010u\n", seq);
		assert_int_equal(n, 15);
		buf[i + 15] = '\n';
	}
}

static void
write_stamped(int fd, unsigned seq)
{
	static char	 buf[NBLK * BLK];

	stamp(buf, seq);
	if (pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		_exit(3);
}

/* The seq every stamp in the copy carries, or -1 when they differ (a torn
 * copy) or the size is wrong. */
static long
copy_seq(int fd)
{
	static char	 buf[NBLK * BLK + 1];
	ssize_t		 n;
	unsigned	 first = 0, s;
	size_t		 i;

	n = pread(fd, buf, sizeof(buf), 0);
	if (n != NBLK * BLK)
		return -1;
	for (i = 0; i < NBLK * BLK; i += 16) {
		if (sscanf(buf + i, "seq=%10u", &s) != 1)
			return -1;
		if (i == 0)
			first = s;
		else if (s != first)
			return -1;
	}
	return first;
}

/* ---- the engine's side: a copy_fn ---- */

struct copier {
	int	 dst;
	int	 calls;
	long	 chunk_sleep_us;	/* slow reads */
	int	 go_fd, ack_fd;		/* first call: ask the writer to
					   rewrite halfway through */
	bool	 fail;
};

static int
copier_fn(void *arg, int src, const struct stat *st)
{
	struct copier	*c = arg;
	char		 buf[BLK], b = 'g';
	off_t		 off = 0;
	ssize_t		 n;

	(void)st;
	c->calls++;
	if (c->fail) {
		errno = EIO;
		return -1;
	}
	if (ftruncate(c->dst, 0) == -1)
		return -1;
	for (;;) {
		if (c->calls == 1 && c->go_fd != -1 && off == NBLK * BLK / 2) {
			if (write(c->go_fd, &b, 1) != 1 ||
			    read(c->ack_fd, &b, 1) != 1)
				return -1;
		}
		n = pread(src, buf, sizeof(buf), off);
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		if (pwrite(c->dst, buf, (size_t)n, off) != n)
			return -1;
		off += n;
		if (c->chunk_sleep_us > 0)
			usleep((useconds_t)c->chunk_sleep_us);
	}
	return 0;
}

static int
make_file(struct fx *f, const char *name, unsigned seq)
{
	int	 fd;

	fd = openat(f->dfd, name, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	write_stamped(fd, seq);
	/* let the coarse clock tick, so the next write moves mtime */
	sleep_ms(20);
	return fd;
}

static int
make_dst(struct fx *f, const char *name)
{
	int	 fd;

	fd = openat(f->dfd, name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	return fd;
}

/* ---- verified copy ---- */

static void
test_verified_quiet_file_copied_once(void **state)
{
	struct fx		*f = *state;
	struct capture_outcome	 out;
	struct copier		 c = { .go_fd = -1, .ack_fd = -1 };
	struct vg_err		 err;
	int			 src;

	src = make_file(f, "quiet", 7);
	c.dst = make_dst(f, "quiet.copy");
	assert_int_equal(capture_verified(src, NULL, 3, copier_fn, &c, &out, &err),
	    0);
	assert_int_equal(out.copies, 1);
	assert_int_equal(c.calls, 1);
	assert_true(out.consistent);
	assert_int_equal(copy_seq(c.dst), 7);
	assert_int_equal(out.st.st_size, NBLK * BLK);
	close(src);
	close(c.dst);
}

static void
test_verified_rewrite_copied_after_retry(void **state)
{
	struct fx		*f = *state;
	struct capture_outcome	 out;
	struct copier		 c = { 0 };
	struct vg_err		 err;
	int			 src, go[2], ack[2], status;
	pid_t			 pid;
	char			 b;

	src = make_file(f, "now-and-then", 1);
	c.dst = make_dst(f, "now-and-then.copy");
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ack), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the writer: one rewrite when asked */
		int wfd = openat(f->dfd, "now-and-then", O_WRONLY);

		if (wfd == -1 || read(go[0], &b, 1) != 1)
			_exit(2);
		write_stamped(wfd, 2);
		if (write(ack[1], &b, 1) != 1)
			_exit(2);
		_exit(0);
	}
	c.go_fd = go[1];
	c.ack_fd = ack[0];
	assert_int_equal(capture_verified(src, NULL, 3, copier_fn, &c, &out, &err),
	    0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the first copy was torn and seen to be; the second is whole */
	assert_int_equal(out.copies, 2);
	assert_true(out.consistent);
	assert_int_equal(copy_seq(c.dst), 2);
	close(go[0]);
	close(go[1]);
	close(ack[0]);
	close(ack[1]);
	close(src);
	close(c.dst);
}

static void
test_verified_busy_file_ends_inconsistent(void **state)
{
	struct fx		*f = *state;
	struct capture_outcome	 out;
	struct copier		 c = { .go_fd = -1, .ack_fd = -1,
				    .chunk_sleep_us = 300 };
	struct vg_err		 err;
	volatile unsigned	*writes;
	unsigned		 before;
	int			 src, status;
	pid_t			 pid;

	writes = mmap(NULL, sizeof(*writes), PROT_READ | PROT_WRITE,
	    /* cppcheck-suppress invalidFunctionArg ; -1 is right: anonymous */
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(writes != MAP_FAILED);
	*writes = 0;
	src = make_file(f, "busy", 1);
	c.dst = make_dst(f, "busy.copy");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the writer: rewrites without pause until killed */
		int wfd = openat(f->dfd, "busy", O_WRONLY);
		unsigned seq = 2;

		if (wfd == -1)
			_exit(2);
		for (;;) {
			write_stamped(wfd, seq++);
			(*writes)++;
		}
	}
	while (*writes < 2)
		sleep_ms(1);
	before = *writes;
	assert_int_equal(capture_verified(src, NULL, 2, copier_fn, &c, &out, &err),
	    0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(*writes > before);
	assert_false(out.consistent);
	assert_int_equal(out.copies, 3);	/* one copy + 2 retries */
	assert_int_equal(c.calls, 3);
	/* the last copy is kept: it is there, whole in size */
	assert_int_equal(lseek(c.dst, 0, SEEK_END), NBLK * BLK);
	munmap((void *)writes, sizeof(*writes));
	close(src);
	close(c.dst);
}

static void
test_verified_copy_failure_is_an_error(void **state)
{
	struct fx		*f = *state;
	struct capture_outcome	 out;
	struct copier		 c = { .go_fd = -1, .ack_fd = -1,
				    .fail = true };
	struct vg_err		 err;
	int			 src;

	src = make_file(f, "fails", 1);
	c.dst = make_dst(f, "fails.copy");
	vg_err_clear(&err);
	assert_int_equal(capture_verified(src, NULL, 3, copier_fn, &c, &out, &err),
	    -1);
	assert_int_equal(err.sys_errno, EIO);
	assert_non_null(strstr(err.msg, "copy 1"));
	assert_int_equal(c.calls, 1);
	close(src);
	close(c.dst);
}

/* ---- reflink ---- */

static void
test_reflink_matches_probe(void **state)
{
	struct fx		*f = *state;
	struct capture_outcome	 out;
	struct copier		 c = { .go_fd = -1, .ack_fd = -1 };
	struct vg_err		 err;
	int			 src, probe, r, n = -1;
	char			 cmd[PATH_MAX + 64];
	FILE			*p;

	probe = snap_reflink_probe(f->dfd);
	src = make_file(f, "clone-me", 5);
	c.dst = make_dst(f, "clone-me.copy");
	vg_err_clear(&err);
	r = capture_reflink(f->dfd, src, copier_fn, &c, &out, &err);
	if (probe == 0) {
		assert_int_equal(r, 0);
		assert_int_equal(copy_seq(c.dst), 5);
		assert_int_equal(out.copies, 1);
	} else {
		/* this filesystem cannot clone: fall through, clearly */
		assert_int_equal(r, CAPTURE_FALLTHROUGH);
		assert_int_equal(c.calls, 0);
		assert_non_null(strstr(err.msg, "cannot clone"));
	}
	/* the clone left no file behind in the folder */
	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", f->dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	assert_int_equal(n, 2);	/* clone-me, clone-me.copy */
	close(src);
	close(c.dst);
}

/* ---- SQLite ---- */

/* Run sqlite3 on db with sql; the first line of output in out. */
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

/* Rows committed after transaction i: sum of (k % 7) + 1 for k <= i. */
static long
rows_after(long txn)
{
	long	 k, n = 0;

	for (k = 1; k <= txn; k++)
		n += k % 7 + 1;
	return n;
}

/*
 * A sqlite3 process that commits transactions in WAL mode until killed:
 * transaction i inserts (i % 7) + 1 rows stamped i and sets state.txn = i,
 * state.n = the row count.
 */
static pid_t
start_writer(const char *db, pid_t *feeder)
{
	int	 p[2];
	pid_t	 pid, fpid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(p[0], 0);
		dup2(null, 1);
		close(p[0]);
		close(p[1]);
		execlp("sqlite3", "sqlite3", "-batch", db, (char *)NULL);
		_exit(127);
	}
	fpid = fork();
	assert_true(fpid >= 0);
	if (fpid == 0) {
		FILE	*w;
		long	 i;

		close(p[0]);
		if ((w = fdopen(p[1], "w")) == NULL)
			_exit(2);
		fprintf(w, "PRAGMA journal_mode = WAL;\n"
		    "PRAGMA busy_timeout = 10000;\n");
		for (i = 1;; i++) {
			fprintf(w, "BEGIN IMMEDIATE;"
			    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
			    "SELECT x + 1 FROM c WHERE x < %ld) "
			    "INSERT INTO t (seq, pad) SELECT %ld, "
			    "randomblob(700) FROM c;"
			    "UPDATE state SET txn = %ld, n = n + %ld;"
			    "COMMIT;\n", i % 7 + 1, i, i, i % 7 + 1);
			if (fflush(w) != 0)
				_exit(0);
		}
	}
	close(p[0]);
	close(p[1]);
	*feeder = fpid;
	return pid;
}

static void
stop_writer(pid_t pid, pid_t feeder)
{
	int	 status;

	kill(feeder, SIGKILL);
	waitpid(feeder, &status, 0);
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
}

static void
make_db(struct fx *f, const char *name, char *path, size_t len)
{
	char	 out[256];

	assert_true((size_t)snprintf(path, len, "%s/%s", f->dir, name) < len);
	/* about 24 MiB, so the backup takes a while */
	assert_int_equal(sql1(path, "PRAGMA journal_mode = WAL;"
	    "CREATE TABLE t (seq INTEGER, pad BLOB);"
	    "CREATE TABLE state (txn INTEGER, n INTEGER);"
	    "CREATE TABLE bulk (b BLOB);"
	    "INSERT INTO state VALUES (0, 0);"
	    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
	    "WHERE x < 6000) INSERT INTO bulk SELECT randomblob(4000) FROM c;",
	    out, sizeof(out)), 0);
	assert_string_equal(out, "wal");
}

static void
test_sqlite_live_wal_backup_is_consistent(void **state)
{
	struct fx		*f = *state;
	struct capture_outcome	 out;
	struct vg_err		 err;
	char			 db[PATH_MAX], copy[PATH_MAX + 16], res[256];
	long			 t0, t1, txn, n, cnt, dist, maxs;
	pid_t			 w, feeder;
	int			 src, dst, r;

	make_db(f, "live.db", db, sizeof(db));
	w = start_writer(db, &feeder);
	do {
		sleep_ms(20);
		assert_int_equal(sql1(db, "SELECT txn FROM state", res,
		    sizeof(res)), 0);
	} while (atol(res) < 20);
	t0 = atol(res);

	src = openat(f->dfd, "live.db", O_RDONLY);
	assert_true(src >= 0);
	assert_true(capture_is_sqlite(src));
	dst = make_dst(f, "live.copy");
	vg_err_clear(&err);
	r = capture_sqlite(f->dfd, "live.db", src, f->dfd, "live.copy",
	    CAPTURE_SQLITE_DEADLINE_MS, &out, &err);
	assert_int_equal(sql1(db, "SELECT txn FROM state", res, sizeof(res)),
	    0);
	t1 = atol(res);
	stop_writer(w, feeder);
	if (r != 0)
		fail_msg("capture_sqlite: %s", err.msg);
	assert_int_equal(out.copies, 1);
	assert_true(out.consistent);
	/* the writer committed during the backup */
	assert_true(t1 > t0);

	snprintf(copy, sizeof(copy), "%s/live.copy", f->dir);
	assert_int_equal(sql1(copy, "PRAGMA integrity_check", res,
	    sizeof(res)), 0);
	assert_string_equal(res, "ok");
	assert_int_equal(sql1(copy, "SELECT s.txn, s.n, (SELECT count(*) FROM "
	    "t), (SELECT count(DISTINCT seq) FROM t), (SELECT "
	    "coalesce(max(seq), 0) FROM t) FROM state s", res, sizeof(res)), 0);
	assert_int_equal(sscanf(res, "%ld|%ld|%ld|%ld|%ld", &txn, &n, &cnt,
	    &dist, &maxs), 5);
	/* one moment of the writer: transactions 1..txn, all of them */
	assert_true(txn >= t0 && txn <= t1);
	assert_int_equal(cnt, rows_after(txn));
	assert_int_equal(n, cnt);
	assert_int_equal(dist, txn);
	assert_int_equal(maxs, txn);
	/* the bulk table came whole */
	assert_int_equal(sql1(copy, "SELECT count(*) FROM bulk", res,
	    sizeof(res)), 0);
	assert_string_equal(res, "6000");
	close(src);
	close(dst);
}

static void
test_sqlite_exclusive_writer_falls_through(void **state)
{
	struct fx		*f = *state;
	struct capture_outcome	 out;
	struct vg_err		 err;
	struct timespec		 a, b;
	char			 db[PATH_MAX], line[256];
	int			 p[2], q[2], src, dst, r, status;
	long			 ms;
	pid_t			 pid;
	FILE			*w, *rd;

	make_db(f, "excl.db", db, sizeof(db));
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[0], 0);
		dup2(q[1], 1);
		close(p[1]);
		close(q[0]);
		execlp("sqlite3", "sqlite3", "-batch", db, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	close(q[1]);
	w = fdopen(p[1], "w");
	rd = fdopen(q[0], "r");
	assert_non_null(w);
	assert_non_null(rd);
	/* a writer in exclusive locking mode keeps its lock after commit */
	fprintf(w, "PRAGMA locking_mode = EXCLUSIVE;\n"
	    "BEGIN EXCLUSIVE; UPDATE state SET txn = 1; COMMIT;\n"
	    "SELECT 'held';\n");
	fflush(w);
	assert_non_null(fgets(line, sizeof(line), rd));
	assert_non_null(fgets(line, sizeof(line), rd));
	assert_string_equal(line, "held\n");

	src = openat(f->dfd, "excl.db", O_RDONLY);
	dst = make_dst(f, "excl.copy");
	vg_err_clear(&err);
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = capture_sqlite(f->dfd, "excl.db", src, f->dfd, "excl.copy", 300,
	    &out, &err);
	clock_gettime(CLOCK_MONOTONIC, &b);
	fclose(w);
	fclose(rd);
	waitpid(pid, &status, 0);
	assert_int_equal(r, CAPTURE_FALLTHROUGH);
	assert_non_null(strstr(err.msg, "locked"));
	assert_non_null(strstr(err.msg, "excl.db"));
	/* it waited for its deadline, not for ever */
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms >= 250 && ms < 5000);
	close(src);
	close(dst);
}

static void
test_sqlite_damaged_falls_through(void **state)
{
	struct fx		*f = *state;
	struct capture_outcome	 out;
	struct vg_err		 err;
	char			 junk[8192];
	int			 fd, dst, r;

	memset(junk, 0xa5, sizeof(junk));
	memcpy(junk, "SQLite format 3", 16);
	fd = openat(f->dfd, "fake.db", O_RDWR | O_CREAT, 0644);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	assert_true(capture_is_sqlite(fd));
	dst = make_dst(f, "fake.copy");
	vg_err_clear(&err);
	r = capture_sqlite(f->dfd, "fake.db", fd, f->dfd, "fake.copy", 300,
	    &out, &err);
	assert_int_equal(r, CAPTURE_FALLTHROUGH);
	assert_non_null(strstr(err.msg, "fake.db"));
	assert_non_null(strstr(err.msg, "next method"));
	close(fd);
	close(dst);
}

static void
test_sqlite_replaced_file_falls_through(void **state)
{
	struct fx		*f = *state;
	struct capture_outcome	 out;
	struct vg_err		 err;
	char			 db[PATH_MAX];
	int			 src, dst;

	make_db(f, "a.db", db, sizeof(db));
	src = openat(f->dfd, "a.db", O_RDONLY);
	assert_true(src >= 0);
	/* the name now leads to another file than the one opened */
	assert_int_equal(renameat(f->dfd, "a.db", f->dfd, "b.db"), 0);
	assert_int_equal(symlinkat("b.db", f->dfd, "a.db"), 0);
	dst = make_dst(f, "a.copy");
	vg_err_clear(&err);
	assert_int_equal(capture_sqlite(f->dfd, "a.db", src, f->dfd, "a.copy",
	    300, &out, &err), CAPTURE_FALLTHROUGH);
	assert_non_null(strstr(err.msg, "replaced"));
	close(src);
	close(dst);
}

static void
test_sqlite_header_detection(void **state)
{
	struct fx	*f = *state;
	int		 fd;

	fd = openat(f->dfd, "short", O_RDWR | O_CREAT, 0644);
	assert_int_equal(write(fd, "SQLite format", 13), 13);
	assert_false(capture_is_sqlite(fd));	/* too short */
	close(fd);
	fd = openat(f->dfd, "text", O_RDWR | O_CREAT, 0644);
	assert_int_equal(write(fd, "SQLite format 3 is a file format\n", 33),
	    33);
	assert_false(capture_is_sqlite(fd));	/* no NUL at byte 15 */
	close(fd);
}

static void
test_sqlite_companions(void **state)
{
	struct fx	*f = *state;
	char		 db[PATH_MAX];
	int		 fd;

	make_db(f, "mail.db", db, sizeof(db));
	close(openat(f->dfd, "mail.db-wal", O_RDWR | O_CREAT, 0644));
	close(openat(f->dfd, "mail.db-shm", O_RDWR | O_CREAT, 0644));
	close(openat(f->dfd, "mail.db-journal", O_RDWR | O_CREAT, 0644));
	assert_true(capture_is_sqlite_companion(f->dfd, "mail.db-wal"));
	assert_true(capture_is_sqlite_companion(f->dfd, "mail.db-shm"));
	assert_true(capture_is_sqlite_companion(f->dfd, "mail.db-journal"));
	assert_false(capture_is_sqlite_companion(f->dfd, "mail.db"));
	/* no database next to it, or not a database */
	assert_false(capture_is_sqlite_companion(f->dfd, "notes-wal"));
	fd = openat(f->dfd, "plain", O_RDWR | O_CREAT, 0644);
	assert_int_equal(write(fd, "hello, not a database", 21), 21);
	close(fd);
	assert_false(capture_is_sqlite_companion(f->dfd, "plain-wal"));
	assert_false(capture_is_sqlite_companion(f->dfd, "-wal"));
	/* a symlink to a database is not followed */
	assert_int_equal(symlinkat("mail.db", f->dfd, "link"), 0);
	assert_false(capture_is_sqlite_companion(f->dfd, "link-wal"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_verified_quiet_file_copied_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_verified_rewrite_copied_after_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_verified_busy_file_ends_inconsistent, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_verified_copy_failure_is_an_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reflink_matches_probe,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sqlite_live_wal_backup_is_consistent, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sqlite_exclusive_writer_falls_through, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_sqlite_damaged_falls_through, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sqlite_replaced_file_falls_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sqlite_header_detection,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_sqlite_companions, setup,
		    teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
