/* test_catalogue.c: the per-job state database on real files. */
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "db/catalogue.h"
#include "db/db_test.h"

#define KEY	"/srv/backup|2049|131|1"

struct fx {
	char	 dir[256];
	char	 path[300];
	struct vg_catalogue *cat;
};

static int
setup(void **state)
{
	struct fx *fx;
	const char *tmp = getenv("TMPDIR");

	fx = calloc(1, sizeof *fx);
	assert_non_null(fx);
	snprintf(fx->dir, sizeof fx->dir, "%s/vigil-cat-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof fx->path, "%s/12.db", fx->dir);
	*state = fx;
	return 0;
}

static int
setup_open(void **state)
{
	struct fx *fx;
	struct vg_err err = { 0 };
	bool fresh = false;

	setup(state);
	fx = *state;
	if (catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err) == -1)
		fail_msg("catalogue_open: %s", err.msg);
	assert_true(fresh);
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	DIR *d;
	struct dirent *de;
	char p[600];

	catalogue_close(fx->cat);
	if ((d = opendir(fx->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof p, "%s/%s", fx->dir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static void
reopen(struct fx *fx, const char *key, bool *fresh)
{
	struct vg_err err = { 0 };

	catalogue_close(fx->cat);
	fx->cat = NULL;
	if (catalogue_open(fx->path, key, &fx->cat, fresh, &err) == -1)
		fail_msg("catalogue_open: %s", err.msg);
}

static struct catalogue_entry
mk(const char *name, size_t len, uint64_t size)
{
	struct catalogue_entry e;

	memset(&e, 0, sizeof e);
	e.name = (char *)name;
	e.name_len = len;
	e.type = CAT_FILE;
	e.size = size;
	e.mtime_ns = 1700000000123456789LL + (int64_t)size;
	e.ctime_ns = 1700000001987654321LL;
	e.ino = 0xfedcba9876543210ULL;
	e.dev = 2049;
	e.mode = 0100644;
	e.uid = 1000;
	e.gid = 4000000000U;
	return e;
}

static void
put(struct vg_catalogue *cat, const char *dir, const char *name,
    uint64_t size)
{
	struct catalogue_entry e = mk(name, strlen(name), size);
	struct vg_err err = { 0 };

	if (catalogue_put(cat, dir, strlen(dir), &e, &err) == -1)
		fail_msg("put %s/%s: %s", dir, name, err.msg);
}

/* The names in dir, joined with ',' */
static char *
names(struct vg_catalogue *cat, const char *dir)
{
	struct catalogue_entry *v = NULL;
	struct vg_err err = { 0 };
	static char buf[1024];
	size_t n, i, off = 0;

	if (catalogue_dir_load(cat, dir, strlen(dir), &v, &n, &err) == -1)
		fail_msg("load %s: %s", dir, err.msg);
	buf[0] = '\0';
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s",
		    i > 0 ? "," : "", v[i].name);
	catalogue_entries_free(v, n);
	return buf;
}

static int
file_count(const char *dir, const char *suffix)
{
	DIR *d;
	struct dirent *de;
	size_t sl = strlen(suffix), l;
	int n = 0;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		l = strlen(de->d_name);
		if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void
test_create_mode_0600(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct stat sb;
	char wal[320];
	bool fresh = false;
	mode_t old;

	old = umask(0);
	assert_int_equal(catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err),
	    0);
	put(fx->cat, "", "a", 1);
	umask(old);
	assert_true(fresh);
	assert_false(catalogue_was_dirty(fx->cat));
	assert_int_equal(stat(fx->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	snprintf(wal, sizeof wal, "%s-wal", fx->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
}

static void
test_load_sorted_odd_bytes(void **state)
{
	struct fx *fx = *state;
	static const char *const in[] = {
		"b", "\xff", "a\n", "\xc3\xa9", "A", "\x01x", "ab", "a",
		"a b", "\x7f",
	};
	static const char *const want[] = {
		"\x01x", "A", "a", "a\n", "a b", "ab", "b", "\x7f",
		"\xc3\xa9", "\xff",
	};
	struct catalogue_entry *v = NULL, e;
	struct vg_err err = { 0 };
	size_t n, i;

	assert_int_equal(catalogue_begin(fx->cat, &err), 0);
	for (i = 0; i < sizeof in / sizeof in[0]; i++)
		put(fx->cat, "d\xfe", in[i], i);
	assert_int_equal(catalogue_commit(fx->cat, &err), 0);

	assert_int_equal(catalogue_dir_load(fx->cat, "d\xfe", 2, &v, &n, &err),
	    0);
	assert_int_equal(n, sizeof want / sizeof want[0]);
	for (i = 0; i < n; i++) {
		assert_int_equal(v[i].name_len, strlen(want[i]));
		assert_memory_equal(v[i].name, want[i], v[i].name_len);
		assert_int_equal(v[i].name[v[i].name_len], '\0');
	}
	/* every field round-trips; "a" went in as entry 7 */
	e = mk("a", 1, 7);
	assert_int_equal(v[2].type, CAT_FILE);
	assert_int_equal(v[2].size, 7);
	assert_int_equal(v[2].mtime_ns, e.mtime_ns);
	assert_int_equal(v[2].ctime_ns, e.ctime_ns);
	assert_true(v[2].ino == e.ino);
	assert_int_equal(v[2].dev, 2049);
	assert_int_equal(v[2].mode, 0100644);
	assert_int_equal(v[2].uid, 1000);
	assert_true(v[2].gid == 4000000000U);
	assert_false(v[2].has_sum);
	catalogue_entries_free(v, n);
}

static void
test_checksum_roundtrip(void **state)
{
	struct fx *fx = *state;
	struct catalogue_entry e = mk("f", 1, 3), *v = NULL;
	struct vg_err err = { 0 };
	size_t n, i;

	e.has_sum = true;
	for (i = 0; i < sizeof e.sum; i++)
		e.sum[i] = (uint8_t)(0xf0 ^ i);
	e.type = CAT_SYMLINK;
	assert_int_equal(catalogue_put(fx->cat, "", 0, &e, &err), 0);
	assert_int_equal(catalogue_dir_load(fx->cat, "", 0, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_true(v[0].has_sum);
	assert_memory_equal(v[0].sum, e.sum, sizeof e.sum);
	assert_int_equal(v[0].type, CAT_SYMLINK);
	catalogue_entries_free(v, n);
}

static void
test_dirs_are_separate(void **state)
{
	struct fx *fx = *state;

	put(fx->cat, "", "top", 1);
	put(fx->cat, "x", "inner", 1);
	put(fx->cat, "x/y", "deep", 1);
	put(fx->cat, "", "x", 1);
	assert_string_equal(names(fx->cat, ""), "top,x");
	assert_string_equal(names(fx->cat, "x"), "inner");
	assert_string_equal(names(fx->cat, "x/y"), "deep");
	assert_string_equal(names(fx->cat, "nothere"), "");
}

static void
test_put_replaces(void **state)
{
	struct fx *fx = *state;
	struct catalogue_entry *v = NULL;
	struct vg_err err = { 0 };
	size_t n;

	put(fx->cat, "d", "f", 1);
	put(fx->cat, "d", "f", 99);
	assert_int_equal(catalogue_dir_load(fx->cat, "d", 1, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].size, 99);
	catalogue_entries_free(v, n);
}

static void
test_del(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };

	put(fx->cat, "d", "a", 1);
	put(fx->cat, "d", "b", 1);
	put(fx->cat, "e", "a", 1);
	assert_int_equal(catalogue_del(fx->cat, "d", 1, "a", 1, &err), 0);
	assert_string_equal(names(fx->cat, "d"), "b");
	assert_string_equal(names(fx->cat, "e"), "a");
	/* deleting what is not there is fine */
	assert_int_equal(catalogue_del(fx->cat, "d", 1, "zz", 2, &err), 0);
}

static void
test_del_tree_prefix_safe(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };

	put(fx->cat, "", "a", 1);
	put(fx->cat, "", "ab", 1);
	put(fx->cat, "a", "b", 1);
	put(fx->cat, "a", "bc", 1);
	put(fx->cat, "a", "b!", 1);
	put(fx->cat, "a", "c", 1);
	put(fx->cat, "a/b", "f", 1);
	put(fx->cat, "a/b/c", "g", 1);
	put(fx->cat, "a/b/c/d", "h", 1);
	put(fx->cat, "a/bc", "i", 1);
	put(fx->cat, "a/b!", "j", 1);
	put(fx->cat, "a/b.", "k", 1);
	put(fx->cat, "ab", "l", 1);

	assert_int_equal(catalogue_del_tree(fx->cat, "a", 1, "b", 1, &err), 0);
	assert_string_equal(names(fx->cat, "a"), "b!,bc,c");
	assert_string_equal(names(fx->cat, "a/b"), "");
	assert_string_equal(names(fx->cat, "a/b/c"), "");
	assert_string_equal(names(fx->cat, "a/b/c/d"), "");
	assert_string_equal(names(fx->cat, "a/bc"), "i");
	assert_string_equal(names(fx->cat, "a/b!"), "j");
	assert_string_equal(names(fx->cat, "a/b."), "k");

	/* at the root: "a" goes, "ab" stays */
	assert_int_equal(catalogue_del_tree(fx->cat, "", 0, "a", 1, &err), 0);
	assert_string_equal(names(fx->cat, ""), "ab");
	assert_string_equal(names(fx->cat, "a"), "");
	assert_string_equal(names(fx->cat, "a/bc"), "");
	assert_string_equal(names(fx->cat, "ab"), "l");

	/* a directory re-created after del_tree works */
	put(fx->cat, "a/b", "new", 1);
	assert_string_equal(names(fx->cat, "a/b"), "new");
}

static void
test_bad_names_refused(void **state)
{
	struct fx *fx = *state;
	struct catalogue_entry e = mk("a/b", 3, 1);
	struct vg_err err = { 0 };

	assert_int_equal(catalogue_put(fx->cat, "", 0, &e, &err), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	e.name_len = 0;
	assert_int_equal(catalogue_put(fx->cat, "", 0, &e, &err), -1);
	assert_int_equal(catalogue_del_tree(fx->cat, "", 0, "", 0, &err), -1);
	assert_string_equal(names(fx->cat, ""), "");
}

static void
test_reopen_persists(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = true;

	assert_int_equal(catalogue_begin(fx->cat, &err), 0);
	put(fx->cat, "src", "one", 1);
	put(fx->cat, "src", "two", 2);
	assert_int_equal(catalogue_commit(fx->cat, &err), 0);
	reopen(fx, KEY, &fresh);
	assert_false(fresh);
	assert_string_equal(names(fx->cat, "src"), "one,two");
}

static void
test_uncommitted_batch_lost(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = true;

	put(fx->cat, "src", "kept", 1);
	assert_int_equal(catalogue_begin(fx->cat, &err), 0);
	put(fx->cat, "src", "pending", 1);
	assert_int_equal(catalogue_del(fx->cat, "src", 3, "kept", 4, &err), 0);
	reopen(fx, KEY, &fresh);	/* closed without commit */
	assert_false(fresh);
	assert_string_equal(names(fx->cat, "src"), "kept");
}

/* A worker killed after a commit: the commit survives, the open batch does
 * not, and the catalogue opens clean (the WAL is recovered). */
static void
test_killed_writer(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = true;
	pid_t pid;
	int status;

	catalogue_close(fx->cat);
	fx->cat = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err) ==
		    -1 || catalogue_set_dirty(fx->cat, true, &err) == -1 ||
		    catalogue_begin(fx->cat, &err) == -1)
			_exit(1);
		put(fx->cat, "src", "durable", 1);
		if (catalogue_commit(fx->cat, &err) == -1 ||
		    catalogue_begin(fx->cat, &err) == -1)
			_exit(1);
		put(fx->cat, "src", "pending", 1);
		_exit(0);	/* no close, no commit */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err) == -1)
		fail_msg("catalogue_open: %s", err.msg);
	assert_false(fresh);
	assert_true(catalogue_was_dirty(fx->cat));
	assert_string_equal(names(fx->cat, "src"), "durable");
	assert_int_equal(file_count(fx->dir, ".corrupt"), 0);
}

/* Another process (a second run of the job) holds it: a clear error, and
 * the file is left alone. */
static void
test_held_by_another_process(void **state)
{
	struct fx *fx = *state;
	struct vg_catalogue *second = NULL;
	struct vg_err err = { 0 };
	bool fresh = false;
	pid_t pid;
	int p[2], status;
	char c;

	put(fx->cat, "", "f", 1);
	catalogue_close(fx->cat);
	fx->cat = NULL;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		if (catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err) ==
		    -1)
			_exit(1);
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		sleep(5);
		_exit(0);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(catalogue_open(fx->path, KEY, &second, &fresh, &err),
	    -1);
	assert_null(second);
	assert_non_null(strstr(err.msg, "another process"));
	assert_non_null(strstr(err.msg, fx->path));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(p[0]);
	assert_int_equal(file_count(fx->dir, ".corrupt"), 0);
	if (catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err) == -1)
		fail_msg("catalogue_open: %s", err.msg);
	assert_false(fresh);
	assert_string_equal(names(fx->cat, ""), "f");
}

static void
test_batch_misuse(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };

	assert_int_equal(catalogue_commit(fx->cat, &err), -1);
	assert_int_equal(catalogue_begin(fx->cat, &err), 0);
	assert_int_equal(catalogue_begin(fx->cat, &err), -1);
	assert_int_equal(catalogue_commit(fx->cat, &err), 0);
}

static void
test_dirty_across_reopen(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = true;

	assert_false(catalogue_was_dirty(fx->cat));
	assert_int_equal(catalogue_set_dirty(fx->cat, true, &err), 0);
	put(fx->cat, "", "f", 1);
	/* the flag as found at open, not as set since */
	assert_false(catalogue_was_dirty(fx->cat));
	reopen(fx, KEY, &fresh);
	assert_false(fresh);
	assert_true(catalogue_was_dirty(fx->cat));
	assert_string_equal(names(fx->cat, ""), "f");
	assert_int_equal(catalogue_set_dirty(fx->cat, false, &err), 0);
	reopen(fx, KEY, &fresh);
	assert_false(catalogue_was_dirty(fx->cat));
}

static void
test_clear(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = true;

	put(fx->cat, "", "f", 1);
	put(fx->cat, "d", "g", 1);
	assert_int_equal(catalogue_clear(fx->cat, &err), 0);
	assert_string_equal(names(fx->cat, ""), "");
	assert_string_equal(names(fx->cat, "d"), "");
	put(fx->cat, "d", "h", 1);
	reopen(fx, KEY, &fresh);
	assert_false(fresh);
	assert_string_equal(names(fx->cat, "d"), "h");
}

static void
test_dest_key_mismatch_fresh(void **state)
{
	struct fx *fx = *state;
	bool fresh = false;

	put(fx->cat, "", "f", 1);
	reopen(fx, "/mnt/other|2050|2|1", &fresh);
	assert_true(fresh);
	assert_string_equal(names(fx->cat, ""), "");
	put(fx->cat, "", "g", 1);
	/* the new key sticks */
	reopen(fx, "/mnt/other|2050|2|1", &fresh);
	assert_false(fresh);
	assert_string_equal(names(fx->cat, ""), "g");
}

static void
test_garbage_file_fresh(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	char junk[10000];
	bool fresh = false;
	int fd;

	memset(junk, 'Z', sizeof junk);
	fd = open(fx->path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
	close(fd);
	if (catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err) == -1)
		fail_msg("catalogue_open: %s", err.msg);
	assert_true(fresh);
	assert_true(catalogue_was_dirty(fx->cat));
	assert_int_equal(file_count(fx->dir, ".corrupt"), 1);
	put(fx->cat, "", "f", 1);
	reopen(fx, KEY, &fresh);
	assert_false(fresh);
	assert_string_equal(names(fx->cat, ""), "f");
}

static void
test_empty_file_fresh(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = false;
	int fd;

	/* created but never initialised (a crash right after creating) */
	fd = open(fx->path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err),
	    0);
	assert_true(fresh);
	assert_false(catalogue_was_dirty(fx->cat));
	assert_int_equal(file_count(fx->dir, ".corrupt"), 0);
}

static void
test_corrupt_pages_fresh(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct stat sb;
	char name[32], buf[4096];
	bool fresh = false;
	int i, fd;

	assert_int_equal(catalogue_begin(fx->cat, &err), 0);
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof name, "file-%05d-padding-padding", i);
		put(fx->cat, i % 2 ? "dir/one" : "dir/two", name, (uint64_t)i);
	}
	assert_int_equal(catalogue_commit(fx->cat, &err), 0);
	catalogue_close(fx->cat);	/* checkpoints into the main file */
	fx->cat = NULL;
	assert_int_equal(stat(fx->path, &sb), 0);
	assert_true(sb.st_size > 20 * 4096);

	memset(buf, 0x5a, sizeof buf);
	fd = open(fx->path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, sizeof buf, 10 * 4096), 4096);
	assert_int_equal(pwrite(fd, buf, sizeof buf, 15 * 4096), 4096);
	close(fd);

	if (catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err) == -1)
		fail_msg("catalogue_open: %s", err.msg);
	assert_true(fresh);
	assert_true(catalogue_was_dirty(fx->cat));
	assert_string_equal(names(fx->cat, "dir/one"), "");
	assert_int_equal(file_count(fx->dir, ".corrupt"), 1);
}

static void
test_wrong_format_fresh(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = false;

	put(fx->cat, "", "f", 1);
	assert_int_equal(catalogue_test_exec(fx->cat, "UPDATE meta SET value "
	    "= '99' WHERE key = 'format'", &err), 0);
	reopen(fx, KEY, &fresh);
	assert_true(fresh);
	assert_string_equal(names(fx->cat, ""), "");
}

static void
test_old_format_rebuilt(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = false;

	/* format 1: one column per field */
	put(fx->cat, "", "f", 1);
	assert_int_equal(catalogue_test_exec(fx->cat, "DROP TABLE entries; "
	    "CREATE TABLE entries (dir INTEGER NOT NULL, name BLOB NOT NULL, "
	    "type INTEGER NOT NULL, size INTEGER NOT NULL, mtime INTEGER NOT "
	    "NULL, ctime INTEGER NOT NULL, ino INTEGER NOT NULL, dev INTEGER "
	    "NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid "
	    "INTEGER NOT NULL, sum BLOB, PRIMARY KEY (dir, name)) WITHOUT "
	    "ROWID; INSERT INTO entries VALUES (1, 'f', 1, 1, 0, 0, 0, 0, 0, "
	    "0, 0, NULL); UPDATE meta SET value = '1' WHERE key = 'format'",
	    &err), 0);
	reopen(fx, KEY, &fresh);
	assert_true(fresh);
	assert_false(catalogue_was_dirty(fx->cat));
	assert_string_equal(names(fx->cat, ""), "");
	/* rebuilt in place, not moved aside as damaged */
	assert_int_equal(file_count(fx->dir, ".corrupt"), 0);
	put(fx->cat, "", "g", 2);
	assert_string_equal(names(fx->cat, ""), "g");
	reopen(fx, KEY, &fresh);
	assert_false(fresh);
	assert_string_equal(names(fx->cat, ""), "g");
}

static void
test_damaged_row_is_an_error(void **state)
{
	struct fx *fx = *state;
	struct catalogue_entry *v = NULL;
	struct vg_err err = { 0 };
	size_t n = 0;

	put(fx->cat, "d", "f", 1);
	assert_int_equal(catalogue_test_exec(fx->cat, "UPDATE entries SET "
	    "st = x'0102'", &err), 0);
	assert_int_equal(catalogue_dir_load(fx->cat, "d", 1, &v, &n, &err),
	    -1);
	assert_null(v);
	assert_non_null(strstr(err.msg, "damaged"));
	assert_non_null(strstr(err.msg, "\"d\""));
}

static void
test_not_ours_fresh(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = false;

	/* a valid SQLite file with other tables */
	assert_int_equal(catalogue_test_exec(fx->cat, "DROP TABLE entries; "
	    "CREATE TABLE t (x)", &err), 0);
	reopen(fx, KEY, &fresh);
	assert_true(fresh);
	put(fx->cat, "", "f", 1);
	assert_string_equal(names(fx->cat, ""), "f");
}

static void
test_directory_in_the_way(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	bool fresh = false;

	assert_int_equal(mkdir(fx->path, 0700), 0);
	assert_int_equal(catalogue_open(fx->path, KEY, &fx->cat, &fresh, &err),
	    -1);
	assert_null(fx->cat);
	assert_non_null(strstr(err.msg, fx->path));
	rmdir(fx->path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_mode_0600, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_load_sorted_odd_bytes,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_checksum_roundtrip,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_dirs_are_separate,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_put_replaces, setup_open,
		    teardown),
		cmocka_unit_test_setup_teardown(test_del, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_del_tree_prefix_safe,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names_refused,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_persists,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_uncommitted_batch_lost,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_killed_writer, setup_open,
		    teardown),
		cmocka_unit_test_setup_teardown(test_held_by_another_process,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_batch_misuse, setup_open,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dirty_across_reopen,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_clear, setup_open,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dest_key_mismatch_fresh,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_file_fresh, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_empty_file_fresh, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_pages_fresh,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_old_format_rebuilt,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_row_is_an_error,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_format_fresh,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_not_ours_fresh,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_directory_in_the_way,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
