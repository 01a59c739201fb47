/*
 * test_snapshot.c: choosing a snapshot provider, the snapshots table and
 * the cleanup of leftovers (scheduler/snapshot.h, db/snapshots.h), and the
 * refusals of the providers (common/snapshot.h), on the normal temp
 * filesystem.  btrfs and XFS themselves are exercised by
 * tests/integration/test_snapshots.sh.
 */
#include <sys/stat.h>
#include <sys/types.h>

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
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/err.h"
#include "common/platform.h"
#include "common/snapshot.h"
#include "db/snapshots.h"
#include "db/store.h"
#include "scheduler/snapshot.h"

struct fx {
	char		 dir[PATH_MAX - 64];
	char		 src[PATH_MAX];
	char		 fstype[32];
	bool		 can_clone;
	struct vg_store	*st;
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));
	const char	*tmp = getenv("TMPDIR");
	char		 db[PATH_MAX + 16];
	struct vg_err	 err;
	int		 fd;

	snprintf(f->dir, sizeof(f->dir), "%s/vigil-snap-XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->src, sizeof(f->src), "%s/source", f->dir);
	assert_int_equal(mkdir(f->src, 0755), 0);
	snprintf(db, sizeof(db), "%s/vigil.db", f->dir);
	if (store_open(db, &f->st, &err) == -1)
		fail_msg("store_open: %s", err.msg);
	assert_int_equal(snap_fs_type(f->src, f->fstype, sizeof(f->fstype)),
	    0);
	fd = open(f->src, O_RDONLY | O_DIRECTORY);
	f->can_clone = snap_reflink_probe(fd) == 0;
	close(fd);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	char		 cmd[PATH_MAX + 16];

	store_close(f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static struct vg_job_def *
job_new(const char *source, enum vg_snapshot mode)
{
	struct vg_job_def *job = calloc(1, sizeof(*job));

	assert_non_null(job);
	job->name = strdup("docs");
	assert_int_equal(strlist_push(&job->sources, source), 0);
	job->snapshot = mode;
	job->retries = 3;
	return job;
}

static void
job_del(struct vg_job_def *job)
{
	strlist_free(&job->sources);
	free(job->name);
	free(job);
}

static int64_t
count_rows(struct fx *f, bool stale)
{
	struct vg_snapshot_row *rows;
	struct vg_err	 err;
	size_t		 n;

	if (snapshots_list(f->st, stale, 0, &rows, &n, &err) == -1)
		fail_msg("snapshots_list: %s", err.msg);
	snapshot_rows_free(rows, n);
	return (int64_t)n;
}

/* ---- choosing ---- */

static void
test_choose_auto_off_btrfs(void **state)
{
	struct fx		*f = *state;
	struct snapshot_choice	 ch;
	struct vg_err		 err;
	char			 want[64];

	if (strcmp(f->fstype, "btrfs") == 0)
		skip();		/* the temp folder is on btrfs */
	assert_int_equal(snapshot_choose(f->src, VG_SNAP_AUTO, true, &ch,
	    &err), 0);
	snprintf(want, sizeof(want), "no btrfs snapshot: not btrfs (%s)",
	    f->fstype);
	assert_non_null(strstr(ch.reason, want));
	if (f->can_clone) {
		assert_int_equal(ch.method, VG_SNAP_REFLINK);
		assert_int_equal(ch.capture, VG_CAP_REFLINK);
	} else {
		assert_int_equal(ch.method, VG_SNAP_VERIFY);
		assert_int_equal(ch.capture, VG_CAP_VERIFIED);
		snprintf(want, sizeof(want), "no reflink: %s cannot clone",
		    f->fstype);
		assert_non_null(strstr(ch.reason, want));
	}
}

static void
test_choose_btrfs_refused_off_btrfs(void **state)
{
	struct fx		*f = *state;
	struct snapshot_choice	 ch;
	struct vg_err		 err;

	if (strcmp(f->fstype, "btrfs") == 0)
		skip();
	vg_err_clear(&err);
	assert_int_equal(snapshot_choose(f->src, VG_SNAP_BTRFS, true, &ch,
	    &err), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_non_null(strstr(err.msg, "snapshot = btrfs, but not btrfs"));
	assert_non_null(strstr(err.msg, f->src));
	assert_non_null(strstr(err.msg, "snapshot = auto"));
}

static void
test_choose_lvm_refused(void **state)
{
	struct fx		*f = *state;
	struct snapshot_choice	 ch;
	struct vg_err		 err;

	vg_err_clear(&err);
	assert_int_equal(snapshot_choose(f->src, VG_SNAP_LVM, true, &ch,
	    &err), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_non_null(strstr(err.msg, "snapshot = lvm"));
	assert_non_null(strstr(err.msg, "not supported"));
}

static void
test_choose_verify_and_reflink(void **state)
{
	struct fx		*f = *state;
	struct snapshot_choice	 ch;
	struct vg_err		 err;
	int			 r;

	assert_int_equal(snapshot_choose(f->src, VG_SNAP_VERIFY, true, &ch,
	    &err), 0);
	assert_int_equal(ch.method, VG_SNAP_VERIFY);
	assert_non_null(strstr(ch.reason, "snapshot = verify"));
	vg_err_clear(&err);
	r = snapshot_choose(f->src, VG_SNAP_REFLINK, true, &ch, &err);
	if (f->can_clone) {
		assert_int_equal(r, 0);
		assert_int_equal(ch.method, VG_SNAP_REFLINK);
	} else {
		assert_int_equal(r, -1);
		assert_non_null(strstr(err.msg, "snapshot = reflink, but"));
		assert_non_null(strstr(err.msg, "cannot clone files"));
	}
}

static void
test_choose_missing_source(void **state)
{
	struct fx		*f = *state;
	struct snapshot_choice	 ch;
	struct vg_err		 err;
	char			 p[PATH_MAX + 16];

	snprintf(p, sizeof(p), "%s/nothing", f->dir);
	vg_err_clear(&err);
	assert_int_equal(snapshot_choose(p, VG_SNAP_AUTO, true, &ch, &err),
	    -1);
	assert_int_equal(err.sys_errno, ENOENT);
	assert_non_null(strstr(err.msg, p));
}

static void
test_btrfs_subvol_off_btrfs(void **state)
{
	struct fx	*f = *state;
	char		*sv = NULL, *rel = NULL, *type = NULL;

	if (strcmp(f->fstype, "btrfs") == 0)
		skip();
	assert_int_equal(snap_btrfs_subvol(f->src, &sv, &rel, &type), -1);
	assert_int_equal(errno, ENOTSUP);
	assert_null(sv);
	assert_string_equal(type, f->fstype);
	free(type);
}

/* ---- refusals of the providers ---- */

static void
test_btrfs_delete_refuses_plain_folder(void **state)
{
	struct fx	*f = *state;
	char		 d[PATH_MAX + 64], s[PATH_MAX + 80];
	struct stat	 st;

	snprintf(d, sizeof(d), "%s/%s", f->dir, SNAP_DIR_NAME);
	assert_int_equal(mkdir(d, 0755), 0);
	snprintf(s, sizeof(s), "%s/r1-0", d);
	assert_int_equal(mkdir(s, 0755), 0);
	assert_false(snap_btrfs_is_snapshot(s));
	assert_int_equal(snap_btrfs_delete(s), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(stat(s, &st), 0);
	/* a name outside a snapshot folder is refused before anything */
	assert_int_equal(snap_btrfs_delete(f->src), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(stat(f->src, &st), 0);
}

static void
test_staging_refuses_symlink(void **state)
{
	struct fx	*f = *state;
	char		 p[PATH_MAX + 64];
	struct stat	 st;

	snprintf(p, sizeof(p), "%s/%sr9", f->dir, SNAP_STAGING_PREFIX);
	assert_int_equal(symlink(f->src, p), 0);
	assert_int_equal(snap_reflink_staging_create(p, getuid(), getgid()),
	    -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(snap_reflink_staging_remove(p), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(stat(f->src, &st), 0);
	/* a path that is not a staging folder is refused */
	assert_int_equal(snap_reflink_staging_remove(f->src), -1);
	assert_int_equal(errno, EINVAL);
}

static void
test_staging_plan_is_on_the_mount_root(void **state)
{
	struct fx	*f = *state;
	char		*p = NULL, *slash;
	bool		 root;

	assert_int_equal(snap_reflink_plan(f->src, "r5", &p), 0);
	assert_non_null(strstr(p, "/" SNAP_STAGING_PREFIX "r5"));
	slash = strrchr(p, '/');
	*(slash == p ? slash + 1 : slash) = '\0';
	assert_int_equal(plat_is_mount_root(AT_FDCWD, p, &root), 0);
	assert_true(root);
	free(p);
	assert_int_equal(snap_reflink_plan(f->src, "a/b", &p), -1);
	assert_int_equal(errno, EINVAL);
}

/* ---- the table ---- */

static void
test_rows_stale_only_when_run_is_over(void **state)
{
	struct fx		*f = *state;
	struct vg_job_put	 put = { 0, "docs", "source = /x\n" };
	struct vg_job_row	 job;
	struct vg_run_row	 row;
	struct vg_err		 err;
	int64_t			 run, a, b;

	assert_int_equal(store_jobs_import(f->st, STORE_IMPORT_MERGE, &put, 1,
	    NULL, 0, 0, NULL, &err), 0);
	assert_int_equal(store_job_get(f->st, 0, "docs", &job, &err), 0);
	assert_int_equal(store_run_begin(f->st, job.id, "manual", false,
	    &run, &err), 0);
	assert_int_equal(snapshots_add(f->st, run, SNAPSHOTS_KIND_BTRFS,
	    "/a/.vigil-snapshots/r1-0", "/a/sv", &a, &err), 0);
	/* a run the DB does not know is over too */
	assert_int_equal(snapshots_add(f->st, run + 100,
	    SNAPSHOTS_KIND_STAGING, "/b/.vigil-staging-r9", NULL, &b, &err),
	    0);
	assert_int_equal(count_rows(f, false), 2);
	assert_int_equal(count_rows(f, true), 1);

	memset(&row, 0, sizeof(row));
	row.id = run;
	row.status = VG_RUN_OK;
	assert_int_equal(store_run_finish(f->st, &row, NULL, 0, &err), 0);
	assert_int_equal(count_rows(f, true), 2);
	assert_int_equal(snapshots_remove(f->st, a, &err), 0);
	assert_int_equal(snapshots_remove(f->st, a, &err), 0);
	assert_int_equal(count_rows(f, false), 1);
	job_row_free(&job);
}

static void
test_cleanup_removes_staging_and_spares_the_rest(void **state)
{
	struct fx	*f = *state;
	char		 stg[PATH_MAX + 64], p[PATH_MAX + 128], fake[PATH_MAX + 64];
	char		 keep[PATH_MAX + 16];
	struct vg_err	 err;
	struct stat	 st;
	size_t		 removed, failed;
	int		 fd;

	/* a leftover staging folder with files, a folder and a symlink out */
	snprintf(stg, sizeof(stg), "%s/%sr3", f->dir, SNAP_STAGING_PREFIX);
	assert_int_equal(snap_reflink_staging_create(stg, getuid(), getgid()),
	    0);
	snprintf(p, sizeof(p), "%s/clone", stg);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/sub", stg);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(keep, sizeof(keep), "%s/keep", f->src);
	fd = open(keep, O_WRONLY | O_CREAT, 0600);
	close(fd);
	snprintf(p, sizeof(p), "%s/sub/out", stg);
	assert_int_equal(symlink(f->src, p), 0);
	assert_int_equal(snapshots_add(f->st, 3, SNAPSHOTS_KIND_STAGING, stg,
	    stg, NULL, &err), 0);
	/* a record naming an ordinary folder: never removed */
	snprintf(fake, sizeof(fake), "%s/%s", f->dir, SNAP_DIR_NAME);
	assert_int_equal(mkdir(fake, 0755), 0);
	strcat(fake, "/r3-0");
	assert_int_equal(mkdir(fake, 0755), 0);
	assert_int_equal(snapshots_add(f->st, 3, SNAPSHOTS_KIND_BTRFS, fake,
	    "/x", NULL, &err), 0);

	vg_err_clear(&err);
	assert_int_equal(snapshot_cleanup(f->st, &removed, &failed, &err), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(failed, 1);
	assert_non_null(strstr(err.msg, "left alone"));
	assert_int_equal(lstat(stg, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(stat(keep, &st), 0);
	assert_int_equal(stat(fake, &st), 0);
	assert_int_equal(count_rows(f, false), 0);
}

static void
test_take_auto_off_btrfs_records_nothing_for_verify(void **state)
{
	struct fx			*f = *state;
	struct vg_job_def		*job = job_new(f->src, VG_SNAP_AUTO);
	struct snapshot_set		*set = NULL;
	const struct snapshot_source	*s;
	struct vg_err			 err;
	struct stat			 st;

	if (strcmp(f->fstype, "btrfs") == 0)
		skip();
	if (snapshot_take(f->st, 12, job, getuid(), getgid(), true, &set,
	    &err) == -1)
		fail_msg("snapshot_take: %s", err.msg);
	assert_int_equal(snapshot_count(set), 1);
	s = snapshot_source(set, 0);
	assert_null(s->read_from);
	assert_string_equal(s->source, f->src);
	if (f->can_clone) {
		assert_int_equal(s->capture, VG_CAP_REFLINK);
		assert_non_null(s->staging);
		assert_int_equal(stat(s->staging, &st), 0);
		assert_int_equal(count_rows(f, false), 1);
	} else {
		assert_int_equal(s->capture, VG_CAP_VERIFIED);
		assert_null(s->staging);
		assert_int_equal(count_rows(f, false), 0);
	}
	assert_int_equal(snapshot_release(f->st, set, &err), 0);
	assert_int_equal(count_rows(f, false), 0);
	snapshot_set_free(set);
	job_del(job);
}

static void
test_take_explicit_btrfs_off_btrfs_fails_clean(void **state)
{
	struct fx		*f = *state;
	struct vg_job_def	*job = job_new(f->src, VG_SNAP_BTRFS);
	struct snapshot_set	*set = NULL;
	struct vg_err		 err;

	if (strcmp(f->fstype, "btrfs") == 0)
		skip();
	vg_err_clear(&err);
	assert_int_equal(snapshot_take(f->st, 13, job, getuid(), getgid(),
	    true, &set, &err), -1);
	assert_null(set);
	assert_non_null(strstr(err.msg, "job docs"));
	assert_non_null(strstr(err.msg, "not btrfs"));
	assert_int_equal(count_rows(f, false), 0);
	job_del(job);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_choose_auto_off_btrfs,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_choose_btrfs_refused_off_btrfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_choose_lvm_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_choose_verify_and_reflink,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_choose_missing_source,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_btrfs_subvol_off_btrfs,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_btrfs_delete_refuses_plain_folder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_staging_refuses_symlink,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_staging_plan_is_on_the_mount_root, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_rows_stale_only_when_run_is_over, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_cleanup_removes_staging_and_spares_the_rest, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_take_auto_off_btrfs_records_nothing_for_verify, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_take_explicit_btrfs_off_btrfs_fails_clean, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
