/*
 * test_migrations.c: vigil.db built at every older schema version, filled
 * with data, then opened by this build: the data survives and a
 * "<path>.pre-v<N>" copy exists for every step.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "db/db_test.h"
#include "db/store.h"

/*
 * Data written with the v1 schema.  Later migrations only add columns and
 * indexes, so it is valid at every version; a migration that reshapes a
 * table must add the data its old shape needs here.
 */
static const char v1_data[] =
	"INSERT INTO jobs (id, owner_uid, name, definition, created, updated, "
	"  last_run) VALUES (7, 1000, 'docs', '[job docs]\nsource = /a\n', "
	"  1600000000, 1600000001, 1600000100);"
	"INSERT INTO jobs (id, owner_uid, name, definition, created, updated, "
	"  deleted) VALUES (8, 1000, 'old', 'x', 1, 2, 3);"
	"INSERT INTO runs (id, job_id, status, path, trigger, started, ended, "
	"  files, bytes, cap_live, message) VALUES (42, 7, 'partial', "
	"  'fallback', 'schedule', 1600000100000, 1600000200000, 12, 3456, 12, "
	"  '1 file unreadable');"
	"INSERT INTO run_files (run_id, seq, path, problem) VALUES "
	"  (42, 0, X'6261649F0A6E616D65', 'unreadable');"
	"INSERT INTO settings VALUES ('preamble:1000', '# my jobs');";

static const char v1_path[] = "bad\x9f\nname";

struct fx {
	char	dir[256];
	char	path[300];
};

static int
setup(void **state)
{
	struct fx *fx;
	const char *tmp = getenv("TMPDIR");

	fx = calloc(1, sizeof *fx);
	assert_non_null(fx);
	snprintf(fx->dir, sizeof fx->dir, "%s/vigil-migr-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof fx->path, "%s/vigil.db", fx->dir);
	*state = fx;
	return 0;
}

static void
rm_files(const char *dir)
{
	DIR *d;
	struct dirent *de;
	char p[512];

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	rm_files(fx->dir);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* How many "vigil.db.pre-v<N>" files the folder holds. */
static int
count_copies(const char *dir)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "vigil.db.pre-v", 14) == 0)
			n++;
	closedir(d);
	return n;
}

/* Build a database at schema version v holding v1_data. */
static void
make_old(const char *path, int v)
{
	struct vg_store *st = NULL;
	struct vg_err err = { 0 };

	if (store_open_ex(path, v, 0, &st, &err) == -1)
		fail_msg("open at v%d: %s", v, err.msg);
	assert_int_equal(store_user_version(st), v);
	if (store_test_exec(st, v1_data, &err) == -1)
		fail_msg("data at v%d: %s", v, err.msg);
	store_close(st);
}

/* The data of v1_data; runs_api false for a store below the current
 * schema (the copies), whose runs only raw SQL can read. */
static void
check_data(struct vg_store *st, bool runs_api)
{
	struct vg_err err = { 0 };
	struct vg_job_row job;
	struct vg_run_row run;
	struct vg_run_file *files = NULL;
	char *pre = NULL;
	int64_t v;
	size_t n;

	assert_int_equal(store_job_get(st, 1000, "docs", &job, &err), 0);
	assert_int_equal(job.id, 7);
	assert_string_equal(job.definition, "[job docs]\nsource = /a\n");
	assert_int_equal(job.created, 1600000000);
	assert_int_equal(job.last_run, 1600000100);
	job_row_free(&job);
	assert_int_equal(store_job_get_id(st, 8, &job, &err), 0);
	assert_int_equal(job.deleted, 3);
	job_row_free(&job);

	if (!runs_api) {
		assert_int_equal(store_test_int(st, "SELECT files FROM runs "
		    "WHERE id = 42 AND job_id = 7 AND status = 'partial'", &v,
		    &err), 0);
		assert_int_equal(v, 12);
		goto files;
	}
	assert_int_equal(store_run_get(st, 42, &run, &err), 0);
	assert_int_equal(run.job_id, 7);
	assert_string_equal(run.job_name, "docs");
	assert_int_equal(run.status, VG_RUN_PARTIAL);
	assert_int_equal(run.started, 1600000100000LL);
	assert_int_equal(run.files, 12);
	assert_int_equal(run.bytes, 3456);
	assert_int_equal(run.capture[VG_CAP_LIVE], 12);
	assert_string_equal(run.message, "1 file unreadable");
	run_row_free(&run);
files:
	assert_int_equal(store_run_files(st, 42, &files, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(files[0].path_len, sizeof v1_path - 1);
	assert_memory_equal(files[0].path, v1_path, sizeof v1_path - 1);
	run_files_free(files, n);

	assert_int_equal(store_preamble_get(st, 1000, &pre, &err), 0);
	assert_string_equal(pre, "# my jobs");
	free(pre);
}

static void
test_fresh_is_current_without_copies(void **state)
{
	struct fx *fx = *state;
	struct vg_store *st = NULL;
	struct vg_err err = { 0 };

	assert_int_equal(store_open(fx->path, &st, &err), 0);
	assert_int_equal(store_user_version(st), STORE_SCHEMA_VERSION);
	store_close(st);
	assert_int_equal(count_copies(fx->dir), 0);
}

static void
test_from_every_older_version(void **state)
{
	struct fx *fx = *state;
	struct vg_store *st = NULL, *old = NULL;
	struct vg_err err = { 0 };
	struct vg_run_row run;
	struct stat sb;
	char copy[320];
	int v, k;

	for (v = 1; v < STORE_SCHEMA_VERSION; v++) {
		rm_files(fx->dir);
		make_old(fx->path, v);
		assert_int_equal(count_copies(fx->dir), 0);

		if (store_open(fx->path, &st, &err) == -1)
			fail_msg("upgrade from v%d: %s", v, err.msg);
		assert_int_equal(store_user_version(st), STORE_SCHEMA_VERSION);
		check_data(st, true);
		store_close(st);

		/* one copy per step, each at the version before that step */
		assert_int_equal(count_copies(fx->dir),
		    STORE_SCHEMA_VERSION - v);
		for (k = v + 1; k <= STORE_SCHEMA_VERSION; k++) {
			snprintf(copy, sizeof copy, "%s.pre-v%d", fx->path, k);
			assert_int_equal(stat(copy, &sb), 0);
			assert_int_equal(sb.st_mode & 07777, 0600);
			if (store_open_ex(copy, k - 1, 0, &old, &err) == -1)
				fail_msg("copy %s: %s", copy, err.msg);
			assert_int_equal(store_user_version(old), k - 1);
			check_data(old, k - 1 == STORE_SCHEMA_VERSION);
			store_close(old);
			old = NULL;
		}
	}
	/* the upgraded store takes the newer columns */
	assert_int_equal(store_open(fx->path, &st, &err), 0);
	memset(&run, 0, sizeof run);
	run.id = 42;
	run.status = VG_RUN_OK;
	run.details_json = "{\"dirs\":1}";
	assert_int_equal(store_run_finish(st, &run, NULL, 0, &err), 0);
	assert_int_equal(store_run_get(st, 42, &run, &err), 0);
	assert_string_equal(run.details_json, "{\"dirs\":1}");
	run_row_free(&run);
	store_close(st);
}

static void
test_reopen_makes_no_new_copy(void **state)
{
	struct fx *fx = *state;
	struct vg_store *st = NULL;
	struct vg_err err = { 0 };
	struct stat before, after;
	char copy[320];

	make_old(fx->path, 1);
	assert_int_equal(store_open(fx->path, &st, &err), 0);
	store_close(st);
	snprintf(copy, sizeof copy, "%s.pre-v2", fx->path);
	assert_int_equal(stat(copy, &before), 0);
	assert_int_equal(store_open(fx->path, &st, &err), 0);
	store_close(st);
	assert_int_equal(stat(copy, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(count_copies(fx->dir), STORE_SCHEMA_VERSION - 1);
}

static void
test_stale_copy_replaced(void **state)
{
	struct fx *fx = *state;
	struct vg_store *st = NULL, *old = NULL;
	struct vg_err err = { 0 };
	char copy[320], tmp[330];
	int fd;

	make_old(fx->path, 1);
	snprintf(copy, sizeof copy, "%s.pre-v2", fx->path);
	snprintf(tmp, sizeof tmp, "%s.tmp", copy);
	fd = open(copy, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "stale", 5), 5);
	close(fd);
	fd = open(tmp, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "half", 4), 4);
	close(fd);

	if (store_open(fx->path, &st, &err) == -1)
		fail_msg("upgrade: %s", err.msg);
	store_close(st);
	assert_int_equal(access(tmp, F_OK), -1);
	if (store_open_ex(copy, 1, 0, &old, &err) == -1)
		fail_msg("copy: %s", err.msg);
	assert_int_equal(store_user_version(old), 1);
	check_data(old, false);
	store_close(old);
}

static void
test_failed_migration_leaves_old_version(void **state)
{
	struct fx *fx = *state;
	struct vg_store *st = NULL;
	struct vg_err err = { 0 };
	int64_t cols;

	make_old(fx->path, 1);
	/* an object in the way of the v2 migration */
	assert_int_equal(store_open_ex(fx->path, 1, 0, &st, &err), 0);
	assert_int_equal(store_test_exec(st, "CREATE INDEX runs_started ON "
	    "runs (ended)", &err), 0);
	store_close(st);
	st = NULL;

	assert_int_equal(store_open(fx->path, &st, &err), -1);
	assert_null(st);
	assert_int_equal(err.code, VG_ERR_DB);
	assert_non_null(strstr(err.msg, "migration to schema v2"));
	assert_non_null(strstr(err.msg, fx->path));

	assert_int_equal(store_open_ex(fx->path, 1, 0, &st, &err), 0);
	assert_int_equal(store_user_version(st), 1);
	assert_int_equal(store_test_int(st, "SELECT count(*) FROM "
	    "pragma_table_info('runs') WHERE name = 'details_json'", &cols,
	    &err), 0);
	assert_int_equal(cols, 0);
	store_close(st);
	assert_int_equal(count_copies(fx->dir), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_fresh_is_current_without_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_from_every_older_version,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_makes_no_new_copy,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_copy_replaced,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_failed_migration_leaves_old_version, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
