/* test_store.c: vigil.db on real SQLite files in a temp folder. */
#include <sys/stat.h>
#include <sys/time.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "common/err.h"
#include "db/db_test.h"
#include "db/store.h"

struct fx {
	char	 dir[256];
	char	 path[300];
	struct vg_store *st;
};

static void
rm_dir(const char *dir)
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
	rmdir(dir);
}

static int
setup(void **state)
{
	struct fx *fx;
	const char *tmp = getenv("TMPDIR");

	fx = calloc(1, sizeof *fx);
	assert_non_null(fx);
	snprintf(fx->dir, sizeof fx->dir, "%s/vigil-store-XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof fx->path, "%s/vigil.db", fx->dir);
	*state = fx;
	return 0;
}

/* setup, then open the store. */
static int
setup_open(void **state)
{
	struct fx *fx;
	struct vg_err err = { 0 };

	setup(state);
	fx = *state;
	if (store_open(fx->path, &fx->st, &err) == -1)
		fail_msg("store_open: %s", err.msg);
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	store_close(fx->st);
	rm_dir(fx->dir);
	free(fx);
	return 0;
}

static mode_t
file_mode(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) == -1)
		fail_msg("stat %s: %s", path, strerror(errno));
	return sb.st_mode & 07777;
}

static int64_t
import_one(struct vg_store *st, uid_t uid, const char *name, const char *def)
{
	struct vg_job_put p = { uid, name, def };
	struct vg_job_row row;
	struct vg_err err = { 0 };
	int64_t id;

	if (store_jobs_import(st, STORE_IMPORT_MERGE, &p, 1, NULL, 0, uid,
	    NULL, &err) == -1)
		fail_msg("import: %s", err.msg);
	if (store_job_get(st, uid, name, &row, &err) == -1)
		fail_msg("job_get: %s", err.msg);
	id = row.id;
	job_row_free(&row);
	return id;
}

static void
test_open_creates_0600(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	char wal[320];
	mode_t old;

	old = umask(0);
	if (store_open(fx->path, &fx->st, &err) == -1)
		fail_msg("store_open: %s", err.msg);
	assert_int_equal(store_setting_set(fx->st, "k", "v", &err), 0);
	umask(old);
	assert_int_equal(file_mode(fx->path), 0600);
	snprintf(wal, sizeof wal, "%s-wal", fx->path);
	assert_int_equal(file_mode(wal), 0600);
}

static void
test_open_tightens_mode(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	int fd;

	fd = open(fx->path, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	close(fd);
	if (store_open(fx->path, &fx->st, &err) == -1)
		fail_msg("store_open: %s", err.msg);
	assert_int_equal(file_mode(fx->path), 0600);
}

static void
test_open_pragmas(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	int64_t v;

	assert_int_equal(store_test_int(fx->st, "SELECT journal_mode = 'wal' "
	    "FROM pragma_journal_mode", &v, &err), 0);
	assert_int_equal(v, 1);
	assert_int_equal(store_test_int(fx->st, "PRAGMA foreign_keys", &v,
	    &err), 0);
	assert_int_equal(v, 1);
	assert_int_equal(store_test_int(fx->st, "PRAGMA synchronous", &v,
	    &err), 0);
	assert_int_equal(v, 1);	/* NORMAL */
	assert_int_equal(store_user_version(fx->st), STORE_SCHEMA_VERSION);
}

static void
test_open_not_a_file(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };

	assert_int_equal(mkdir(fx->path, 0700), 0);
	assert_int_equal(store_open(fx->path, &fx->st, &err), -1);
	assert_null(fx->st);
	assert_non_null(strstr(err.msg, fx->path));
	rmdir(fx->path);
}

static void
test_import_merge_keeps_ids(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_job_put p1[] = {
		{ 1000, "docs", "[job docs]\nsource = /a\n" },
		{ 1000, "mail", "[job mail]\nsource = /m\n" },
	};
	struct vg_job_put p2[] = {
		{ 1000, "mail", "[job mail]\nsource = /m2\n" },
		{ 1000, "pics", "[job pics]\nsource = /p\n" },
	};
	struct vg_job_row *rows = NULL, r;
	size_t n;
	int64_t docs, mail;

	assert_int_equal(store_jobs_import(fx->st, STORE_IMPORT_MERGE, p1, 2,
	    NULL, 0, 1000, NULL, &err), 0);
	assert_int_equal(store_job_get(fx->st, 1000, "docs", &r, &err), 0);
	docs = r.id;
	job_row_free(&r);
	assert_int_equal(store_job_get(fx->st, 1000, "mail", &r, &err), 0);
	mail = r.id;
	job_row_free(&r);

	assert_int_equal(store_jobs_import(fx->st, STORE_IMPORT_MERGE, p2, 2,
	    NULL, 0, 1000, NULL, &err), 0);
	assert_int_equal(store_jobs_list(fx->st, false, 1000, &rows, &n, &err),
	    0);
	assert_int_equal(n, 3);
	assert_string_equal(rows[0].name, "docs");
	assert_int_equal(rows[0].id, docs);
	assert_string_equal(rows[1].name, "mail");
	assert_int_equal(rows[1].id, mail);
	assert_string_equal(rows[1].definition, "[job mail]\nsource = /m2\n");
	assert_string_equal(rows[2].name, "pics");
	assert_true(rows[2].id != docs && rows[2].id != mail);
	assert_true(rows[2].created > 0);
	job_rows_free(rows, n);
}

static void
test_import_replace_soft_deletes(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_job_put keep = { 1000, "mail", "[job mail]\n" };
	uid_t scope[] = { 1000 };
	struct vg_job_row *rows = NULL, r;
	struct vg_run_row run, *runs = NULL;
	size_t n;
	int64_t docs, mail, other, run_id, docs2;

	docs = import_one(fx->st, 1000, "docs", "[job docs]\n");
	mail = import_one(fx->st, 1000, "mail", "[job mail]\n");
	other = import_one(fx->st, 1001, "docs", "[job docs]\n");
	assert_int_equal(store_run_begin(fx->st, docs, "manual", false,
	    &run_id, &err), 0);

	assert_int_equal(store_jobs_import(fx->st, STORE_IMPORT_REPLACE, &keep,
	    1, scope, 1, 1000, NULL, &err), 0);
	assert_int_equal(store_jobs_list(fx->st, false, 1000, &rows, &n, &err),
	    0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].id, mail);
	job_rows_free(rows, n);
	/* another uid is out of scope */
	assert_int_equal(store_job_get(fx->st, 1001, "docs", &r, &err), 0);
	assert_int_equal(r.id, other);
	job_row_free(&r);
	/* the removed job: gone by name, kept by id, its run kept */
	assert_int_equal(store_job_get(fx->st, 1000, "docs", &r, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	assert_int_equal(store_job_get_id(fx->st, docs, &r, &err), 0);
	assert_true(r.deleted > 0);
	assert_string_equal(r.name, "docs");
	job_row_free(&r);
	assert_int_equal(store_run_get(fx->st, run_id, &run, &err), 0);
	assert_int_equal(run.job_id, docs);
	assert_string_equal(run.job_name, "docs");
	run_row_free(&run);
	/* a removed job cannot start a run */
	assert_int_equal(store_run_begin(fx->st, docs, "manual", false,
	    &run_id, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);

	/* imported again: a new job, the old history stays with the old id */
	docs2 = import_one(fx->st, 1000, "docs", "[job docs]\n");
	assert_true(docs2 != docs);
	assert_int_equal(store_runs_list(fx->st, docs2, true, 0, 0, &runs, &n,
	    &err), 0);
	assert_int_equal(n, 0);
	run_rows_free(runs, n);
	assert_int_equal(store_runs_list(fx->st, docs, true, 0, 0, &runs, &n,
	    &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(runs[0].job_name, "docs");
	run_rows_free(runs, n);
}

static void
test_import_atomic(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_job_put bad[] = {
		{ 1000, "mail", "[job mail]\nchanged\n" },
		{ 1000, "new", "[job new]\n" },
		{ 1000, "", "[job ]\n" },	/* fails the name CHECK */
	};
	uid_t scope[] = { 1000 };
	struct vg_job_row *rows = NULL;
	char *pre = NULL;
	size_t n;

	import_one(fx->st, 1000, "docs", "[job docs]\n");
	import_one(fx->st, 1000, "mail", "[job mail]\n");
	assert_int_equal(store_jobs_import(fx->st, STORE_IMPORT_REPLACE, bad, 3,
	    scope, 1, 1000, "# preamble\n", &err), -1);
	assert_int_equal(err.code, VG_ERR_DB);
	assert_non_null(strstr(err.msg, "nothing was imported"));
	assert_non_null(strstr(err.msg, fx->path));

	assert_int_equal(store_jobs_list(fx->st, true, 0, &rows, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].name, "docs");
	assert_int_equal(rows[0].deleted, 0);
	assert_string_equal(rows[1].name, "mail");
	assert_string_equal(rows[1].definition, "[job mail]\n");
	job_rows_free(rows, n);
	assert_int_equal(store_preamble_get(fx->st, 1000, &pre, &err), 0);
	assert_null(pre);
	/* and the store still takes writes */
	assert_int_equal(store_setting_set(fx->st, "k", "v", &err), 0);
}

static void
test_import_duplicate_refused(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_job_put dup[] = {
		{ 1000, "docs", "a" },
		{ 1001, "docs", "b" },
		{ 1000, "docs", "c" },
	};
	struct vg_job_row *rows = NULL;
	size_t n;

	assert_int_equal(store_jobs_import(fx->st, STORE_IMPORT_MERGE, dup, 3,
	    NULL, 0, 1000, NULL, &err), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_non_null(strstr(err.msg, "docs"));
	assert_int_equal(store_jobs_list(fx->st, true, 0, &rows, &n, &err), 0);
	assert_int_equal(n, 0);
	free(rows);
}

static void
test_import_preamble(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_job_put p = { 1000, "docs", "[job docs]\n" };
	char *pre = NULL;

	assert_int_equal(store_jobs_import(fx->st, STORE_IMPORT_MERGE, &p, 1,
	    NULL, 0, 1000, "# my jobs\n\n", &err), 0);
	assert_int_equal(store_preamble_get(fx->st, 1000, &pre, &err), 0);
	assert_string_equal(pre, "# my jobs\n\n");
	free(pre);
	/* NULL leaves it; another uid has none */
	assert_int_equal(store_jobs_import(fx->st, STORE_IMPORT_MERGE, &p, 1,
	    NULL, 0, 1000, NULL, &err), 0);
	assert_int_equal(store_preamble_get(fx->st, 1000, &pre, &err), 0);
	assert_string_equal(pre, "# my jobs\n\n");
	free(pre);
	assert_int_equal(store_preamble_get(fx->st, 1001, &pre, &err), 0);
	assert_null(pre);
}

static void
test_jobs_list_owner_filter(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_job_row *rows = NULL;
	size_t n;

	import_one(fx->st, 1001, "b", "x");
	import_one(fx->st, 0, "z", "x");
	import_one(fx->st, 1001, "a", "x");
	assert_int_equal(store_jobs_list(fx->st, false, 1001, &rows, &n, &err),
	    0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].name, "a");
	assert_string_equal(rows[1].name, "b");
	job_rows_free(rows, n);
	assert_int_equal(store_jobs_list(fx->st, true, 1001, &rows, &n, &err),
	    0);
	assert_int_equal(n, 3);
	assert_int_equal(rows[0].owner_uid, 0);
	assert_string_equal(rows[0].name, "z");
	job_rows_free(rows, n);
}

static void
test_job_set_times(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_job_row r;
	int64_t id;

	id = import_one(fx->st, 1000, "docs", "x");
	assert_int_equal(store_job_set_times(fx->st, id, 1700000000,
	    1700086400, &err), 0);
	assert_int_equal(store_job_get_id(fx->st, id, &r, &err), 0);
	assert_int_equal(r.last_run, 1700000000);
	assert_int_equal(r.next_run, 1700086400);
	job_row_free(&r);
	assert_int_equal(store_job_set_times(fx->st, id + 100, 1, 1, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	assert_int_equal(store_job_get_id(fx->st, id + 100, &r, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
}

static void
test_run_roundtrip(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_run_row in, out;
	int64_t job, run;
	int i;

	job = import_one(fx->st, 1000, "docs", "x");
	assert_int_equal(store_run_begin(fx->st, job, "schedule", true, &run,
	    &err), 0);
	assert_true(run > 0);
	assert_int_equal(store_run_get(fx->st, run, &out, &err), 0);
	assert_int_equal(out.status, VG_RUN_RUNNING);
	assert_int_equal(out.ended, 0);
	assert_true(out.started > 1600000000000LL);	/* ms */
	run_row_free(&out);

	memset(&in, 0, sizeof in);
	in.id = run;
	in.status = VG_RUN_PARTIAL;
	in.path = "fallback";
	in.path_reason = "nobody logged on";
	in.ended = 1700000000123LL;
	in.files = 10;
	in.files_copied = 4;
	in.files_unchanged = 3;
	in.files_deleted = 2;
	in.files_versioned = 1;
	in.files_failed = 5;
	in.bytes = 1ULL << 40;
	in.bytes_total = UINT64_MAX;
	for (i = 0; i < VG_CAP_COUNT; i++)
		in.capture[i] = 100 + (uint64_t)i;
	in.message = "2 files unreadable";
	in.details_json = "{\"warnings\":[]}";
	assert_int_equal(store_run_finish(fx->st, &in, NULL, 0, &err), 0);

	assert_int_equal(store_run_get(fx->st, run, &out, &err), 0);
	assert_int_equal(out.id, run);
	assert_int_equal(out.job_id, job);
	assert_string_equal(out.job_name, "docs");
	assert_int_equal(out.owner_uid, 1000);
	assert_int_equal(out.status, VG_RUN_PARTIAL);
	assert_string_equal(out.path, "fallback");
	assert_string_equal(out.path_reason, "nobody logged on");
	assert_string_equal(out.trigger, "schedule");
	assert_true(out.dry_run);
	assert_int_equal(out.ended, 1700000000123LL);
	assert_int_equal(out.files, 10);
	assert_int_equal(out.files_copied, 4);
	assert_int_equal(out.files_unchanged, 3);
	assert_int_equal(out.files_deleted, 2);
	assert_int_equal(out.files_versioned, 1);
	assert_int_equal(out.files_failed, 5);
	assert_true(out.bytes == 1ULL << 40);
	assert_true(out.bytes_total == UINT64_MAX);
	for (i = 0; i < VG_CAP_COUNT; i++)
		assert_int_equal(out.capture[i], 100 + i);
	assert_string_equal(out.message, "2 files unreadable");
	assert_string_equal(out.details_json, "{\"warnings\":[]}");
	run_row_free(&out);
}

static void
test_run_finish_refused(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_run_row in;
	int64_t job, run;

	job = import_one(fx->st, 1000, "docs", "x");
	assert_int_equal(store_run_begin(fx->st, job, "manual", false, &run,
	    &err), 0);
	memset(&in, 0, sizeof in);
	in.id = run;
	in.status = VG_RUN_RUNNING;
	assert_int_equal(store_run_finish(fx->st, &in, NULL, 0, &err), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	in.id = run + 1;
	in.status = VG_RUN_OK;
	assert_int_equal(store_run_finish(fx->st, &in, NULL, 0, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	assert_int_equal(store_run_begin(fx->st, job + 5, "manual", false,
	    &run, &err), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
}

static void
test_run_files_bytes_exact(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_run_row in;
	static const char p0[] = "docs/bad\xff\xfe name";
	static const char p1[] = "docs/line\nbreak\r";
	static const char p2[] = "caf\xc3\xa9/\x01\x7f";
	struct vg_run_file f[] = {
		{ (char *)p0, sizeof p0 - 1, NULL, "unreadable",
		  "Permission denied" },
		{ (char *)p1, sizeof p1 - 1, "verified", NULL, NULL },
		{ (char *)p2, sizeof p2 - 1, "inconsistent", "inconsistent",
		  "changed during 3 copies" },
	};
	struct vg_run_file *out = NULL;
	size_t n, i;
	int64_t job, run;

	job = import_one(fx->st, 1000, "docs", "x");
	assert_int_equal(store_run_begin(fx->st, job, "manual", false, &run,
	    &err), 0);
	memset(&in, 0, sizeof in);
	in.id = run;
	in.status = VG_RUN_PARTIAL;
	assert_int_equal(store_run_finish(fx->st, &in, f, 3, &err), 0);
	assert_int_equal(store_run_files(fx->st, run, &out, &n, &err), 0);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++) {
		assert_int_equal(out[i].path_len, f[i].path_len);
		assert_memory_equal(out[i].path, f[i].path, f[i].path_len);
		assert_int_equal(out[i].path[out[i].path_len], '\0');
	}
	assert_null(out[0].capture);
	assert_string_equal(out[0].problem, "unreadable");
	assert_string_equal(out[0].detail, "Permission denied");
	assert_string_equal(out[1].capture, "verified");
	assert_null(out[1].problem);
	assert_null(out[1].detail);
	assert_string_equal(out[2].detail, "changed during 3 copies");
	run_files_free(out, n);
}

static void
test_runs_list_order_and_filters(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_run_row *rows = NULL;
	int64_t a, b, c, r1, r2, r3, r4;
	size_t n;

	a = import_one(fx->st, 1000, "docs", "x");
	b = import_one(fx->st, 1000, "mail", "x");
	c = import_one(fx->st, 1001, "pics", "x");
	assert_int_equal(store_run_begin(fx->st, a, "manual", false, &r1,
	    &err), 0);
	assert_int_equal(store_run_begin(fx->st, b, "manual", false, &r2,
	    &err), 0);
	assert_int_equal(store_run_begin(fx->st, c, "manual", false, &r3,
	    &err), 0);
	assert_int_equal(store_run_begin(fx->st, a, "manual", false, &r4,
	    &err), 0);
	/* r2 started last, r1 first: ordering follows started, not ids */
	assert_int_equal(store_test_exec(fx->st,
	    "UPDATE runs SET started = 1000 WHERE id = 1;"
	    "UPDATE runs SET started = 4000 WHERE id = 2;"
	    "UPDATE runs SET started = 2000 WHERE id = 3;"
	    "UPDATE runs SET started = 3000 WHERE id = 4;", &err), 0);
	assert_int_equal(r1, 1);
	assert_int_equal(r4, 4);

	assert_int_equal(store_runs_list(fx->st, 0, true, 0, 0, &rows, &n,
	    &err), 0);
	assert_int_equal(n, 4);
	assert_int_equal(rows[0].id, r2);
	assert_int_equal(rows[1].id, r4);
	assert_int_equal(rows[2].id, r3);
	assert_int_equal(rows[3].id, r1);
	assert_string_equal(rows[2].job_name, "pics");
	assert_int_equal(rows[2].owner_uid, 1001);
	run_rows_free(rows, n);

	assert_int_equal(store_runs_list(fx->st, 0, false, 1000, 0, &rows, &n,
	    &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(rows[0].id, r2);
	assert_int_equal(rows[1].id, r4);
	assert_int_equal(rows[2].id, r1);
	run_rows_free(rows, n);

	assert_int_equal(store_runs_list(fx->st, a, false, 1000, 1, &rows, &n,
	    &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].id, r4);
	run_rows_free(rows, n);

	/* another owner's job through the owner filter: nothing */
	assert_int_equal(store_runs_list(fx->st, c, false, 1000, 0, &rows, &n,
	    &err), 0);
	assert_int_equal(n, 0);
	run_rows_free(rows, n);
}

static void
test_mark_interrupted(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	struct vg_run_row in, out;
	int64_t job, r1, r2, r3;
	size_t n;

	job = import_one(fx->st, 1000, "docs", "x");
	assert_int_equal(store_run_begin(fx->st, job, "manual", false, &r1,
	    &err), 0);
	assert_int_equal(store_run_begin(fx->st, job, "manual", false, &r2,
	    &err), 0);
	assert_int_equal(store_run_begin(fx->st, job, "manual", false, &r3,
	    &err), 0);
	memset(&in, 0, sizeof in);
	in.id = r2;
	in.status = VG_RUN_OK;
	assert_int_equal(store_run_finish(fx->st, &in, NULL, 0, &err), 0);

	assert_int_equal(store_runs_mark_interrupted(fx->st, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(store_run_get(fx->st, r1, &out, &err), 0);
	assert_int_equal(out.status, VG_RUN_INTERRUPTED);
	assert_true(out.ended >= out.started);
	assert_non_null(out.message);
	run_row_free(&out);
	assert_int_equal(store_run_get(fx->st, r2, &out, &err), 0);
	assert_int_equal(out.status, VG_RUN_OK);
	run_row_free(&out);
	assert_int_equal(store_runs_mark_interrupted(fx->st, &n, &err), 0);
	assert_int_equal(n, 0);
}

static void
test_settings(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	char *v = NULL;

	assert_int_equal(store_setting_get(fx->st, "alert", &v, &err), 0);
	assert_null(v);
	assert_int_equal(store_setting_set(fx->st, "alert", "mail", &err), 0);
	assert_int_equal(store_setting_set(fx->st, "alert", "journal", &err),
	    0);
	assert_int_equal(store_setting_get(fx->st, "alert", &v, &err), 0);
	assert_string_equal(v, "journal");
	free(v);
	assert_int_equal(store_setting_set(fx->st, "alert", NULL, &err), 0);
	assert_int_equal(store_setting_get(fx->st, "alert", &v, &err), 0);
	assert_null(v);
}

static void
test_settings_persist(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	char *v = NULL;

	assert_int_equal(store_setting_set(fx->st, "k", "v", &err), 0);
	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(store_open(fx->path, &fx->st, &err), 0);
	assert_int_equal(store_setting_get(fx->st, "k", &v, &err), 0);
	assert_string_equal(v, "v");
	free(v);
}

/* Overwrite len bytes at off with a pattern. */
static void
scribble(const char *path, off_t off, size_t len)
{
	char buf[4096];
	int fd;

	assert_true(len <= sizeof buf);
	memset(buf, 0xa5, len);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void
test_corrupt_file_clear_error(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	char key[32], val[600];
	struct stat sb;
	int i;

	memset(val, 'x', sizeof val - 1);
	val[sizeof val - 1] = '\0';
	for (i = 0; i < 200; i++) {
		snprintf(key, sizeof key, "key%03d", i);
		assert_int_equal(store_setting_set(fx->st, key, val, &err), 0);
	}
	store_close(fx->st);	/* checkpoints the WAL into the file */
	fx->st = NULL;
	assert_int_equal(stat(fx->path, &sb), 0);
	assert_true(sb.st_size > 16 * 4096);
	/* wreck b-tree pages in the middle of the file */
	scribble(fx->path, 8 * 4096, 4096);
	scribble(fx->path, 12 * 4096, 4096);

	assert_int_equal(store_open(fx->path, &fx->st, &err), -1);
	assert_null(fx->st);
	assert_int_equal(err.code, VG_ERR_DB);
	assert_non_null(strstr(err.msg, fx->path));
	assert_non_null(strstr(err.msg, "damaged"));
	assert_non_null(strstr(err.msg, "move it aside"));
}

static void
test_not_a_database(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };
	char junk[8192];
	int fd;

	memset(junk, 'J', sizeof junk);
	fd = open(fx->path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
	close(fd);
	assert_int_equal(store_open(fx->path, &fx->st, &err), -1);
	assert_int_equal(err.code, VG_ERR_DB);
	assert_non_null(strstr(err.msg, fx->path));
	assert_non_null(strstr(err.msg, "damaged"));
}

static void
test_busy_clear_error(void **state)
{
	struct fx *fx = *state;
	struct vg_store *other = NULL;
	struct vg_err err = { 0 };
	struct timespec t0, t1;
	int64_t ms;

	if (store_open_ex(fx->path, 0, 300, &other, &err) == -1)
		fail_msg("second open: %s", err.msg);
	assert_int_equal(store_test_exec(fx->st, "BEGIN EXCLUSIVE", &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(store_setting_set(other, "k", "v", &err), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) /
	    1000000;
	assert_true(ms >= 250);
	assert_int_equal(err.code, VG_ERR_DB);
	assert_non_null(strstr(err.msg, "another process holds the database"));
	assert_non_null(strstr(err.msg, fx->path));
	/* once released, the write goes through */
	assert_int_equal(store_test_exec(fx->st, "ROLLBACK", &err), 0);
	assert_int_equal(store_setting_set(other, "k", "v", &err), 0);
	store_close(other);
}

static void
test_newer_schema_refused(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };

	assert_int_equal(store_test_exec(fx->st, "PRAGMA user_version = 99",
	    &err), 0);
	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(store_open(fx->path, &fx->st, &err), -1);
	assert_int_equal(err.code, VG_ERR_DB);
	assert_non_null(strstr(err.msg, "newer vigil"));
	assert_non_null(strstr(err.msg, fx->path));
}

static void
test_foreign_database_refused(void **state)
{
	struct fx *fx = *state;
	struct vg_err err = { 0 };

	/* tables but no vigil schema version: somebody else's database */
	assert_int_equal(store_test_exec(fx->st, "PRAGMA user_version = 0",
	    &err), 0);
	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(store_open(fx->path, &fx->st, &err), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_non_null(strstr(err.msg, "not a vigil database"));
}

static void
test_names(void **state)
{
	enum vg_run_status s;
	int i;

	(void)state;
	for (i = VG_RUN_RUNNING; i <= VG_RUN_POSTPONED; i++) {
		assert_int_equal(store_run_status_parse(
		    store_run_status_name((enum vg_run_status)i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(store_run_status_parse("bogus", &s), -1);
	assert_string_equal(store_capture_name(VG_CAP_CLOSED_APP),
	    "closed-app");
	assert_string_equal(store_capture_name(VG_CAP_LIVE), "live");
	assert_string_equal(store_run_status_name(VG_RUN_PARTIAL), "partial");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_0600, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_tightens_mode, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_pragmas, setup_open,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_not_a_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_import_merge_keeps_ids,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(
		    test_import_replace_soft_deletes, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_import_atomic, setup_open,
		    teardown),
		cmocka_unit_test_setup_teardown(test_import_duplicate_refused,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_import_preamble,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_jobs_list_owner_filter,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_job_set_times, setup_open,
		    teardown),
		cmocka_unit_test_setup_teardown(test_run_roundtrip, setup_open,
		    teardown),
		cmocka_unit_test_setup_teardown(test_run_finish_refused,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_run_files_bytes_exact,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(
		    test_runs_list_order_and_filters, setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_mark_interrupted,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_settings, setup_open,
		    teardown),
		cmocka_unit_test_setup_teardown(test_settings_persist,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file_clear_error,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_busy_clear_error,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused,
		    setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_database_refused,
		    setup_open, teardown),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
