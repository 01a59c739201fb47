/*
 * test_versions.c: stamps and retention of the versions area, on real
 * folders in a temp dir.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
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

#include "scheduler/versions.h"

#define DAY_MS	(86400LL * 1000)
#define NOW_MS	1700000000000LL	/* 2023-11-14T22:13:20Z */

struct vfx {
	char	 dir[1024];
	int	 fd;
};

static int
setup(void **state)
{
	struct vfx	*f = calloc(1, sizeof(*f));
	const char	*tmp = getenv("TMPDIR");
	char		 p[PATH_MAX];

	snprintf(f->dir, sizeof(f->dir), "%s/vigil-versions-XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(p, sizeof(p), "%s/.vigil", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/.vigil/versions", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	f->fd = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(f->fd >= 0);
	*state = f;
	return 0;
}

static void
rm_rf(const char *path)
{
	struct dirent	**ents;
	struct stat	 st;
	char		 c[PATH_MAX];
	int		 i, n;

	if (lstat(path, &st) == -1)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	n = scandir(path, &ents, NULL, alphasort);
	for (i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") != 0 &&
		    strcmp(ents[i]->d_name, "..") != 0) {
			snprintf(c, sizeof(c), "%s/%s", path, ents[i]->d_name);
			rm_rf(c);
		}
		free(ents[i]);
	}
	if (n >= 0)
		free(ents);
	rmdir(path);
}

static int
teardown(void **state)
{
	struct vfx	*f = *state;

	close(f->fd);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* Put a versioned file rel (may have folders) into the stamp of run id
 * taken at ms. */
static void
put(struct vfx *f, int64_t ms, int64_t id, const char *rel, const char *data)
{
	char	 stamp[VERSIONS_STAMP_MAX], p[PATH_MAX], *s;
	FILE	*fp;

	versions_stamp(ms, id, stamp, sizeof(stamp));
	snprintf(p, sizeof(p), "%s/.vigil/versions/%s/%s", f->dir, stamp, rel);
	for (s = strchr(p + strlen(f->dir) + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		(void)mkdir(p, 0700);
		*s = '/';
	}
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(data, fp);
	fclose(fp);
}

static bool
has(struct vfx *f, int64_t ms, int64_t id, const char *rel)
{
	char		 stamp[VERSIONS_STAMP_MAX], p[PATH_MAX];
	struct stat	 st;

	versions_stamp(ms, id, stamp, sizeof(stamp));
	snprintf(p, sizeof(p), "%s/.vigil/versions/%s%s%s", f->dir, stamp,
	    *rel ? "/" : "", rel);
	return lstat(p, &st) == 0;
}

static void
test_stamp_format(void **state)
{
	char	 buf[VERSIONS_STAMP_MAX];

	(void)state;
	versions_stamp(NOW_MS + 999, 42, buf, sizeof(buf));
	assert_string_equal(buf, "20231114T221320Z-r42");
}

static void
test_stamp_roundtrip(void **state)
{
	char	 buf[VERSIONS_STAMP_MAX];
	int64_t	 t, id;

	(void)state;
	versions_stamp(NOW_MS, 9876543210LL, buf, sizeof(buf));
	assert_int_equal(versions_stamp_parse(buf, &t, &id), 0);
	assert_int_equal(t, NOW_MS / 1000);
	assert_int_equal(id, 9876543210LL);
}

static void
test_stamp_parse_rejects(void **state)
{
	const char	*bad[] = { "", "20231114T221320Z", "20231114T221320Z-r",
	    "20231114T221320Z-rx", "20231114T221320Z-r1.added",
	    "20231314T221320Z-r1", "2023111AT221320Z-r1", "job.ini",
	    "20231114X221320Z-r1", "20231114T221320Z-r-1" };
	int64_t		 t, id;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(versions_stamp_parse(bad[i], &t, &id), -1);
}

static void
test_keep_days_removes_old_stamps(void **state)
{
	struct vfx		*f = *state;
	struct versions_policy	 p = { 0, 7, NOW_MS };
	struct vg_err		 err;
	uint64_t		 pruned;
	char			 stamp[VERSIONS_STAMP_MAX], a[PATH_MAX];
	FILE			*fp;

	put(f, NOW_MS - 10 * DAY_MS, 1, "d/old", "old");
	put(f, NOW_MS - 10 * DAY_MS, 1, "other", "old2");
	put(f, NOW_MS - 6 * DAY_MS, 2, "d/old", "recent");
	versions_stamp(NOW_MS - 10 * DAY_MS, 1, stamp, sizeof(stamp));
	snprintf(a, sizeof(a), "%s/.vigil/versions/%s.added", f->dir, stamp);
	fp = fopen(a, "w");
	fputs("x", fp);
	fclose(fp);
	assert_int_equal(versions_prune(f->fd, &p, &pruned, &err), 0);
	assert_int_equal(pruned, 2);
	assert_false(has(f, NOW_MS - 10 * DAY_MS, 1, ""));
	assert_true(access(a, F_OK) == -1);
	assert_true(has(f, NOW_MS - 6 * DAY_MS, 2, "d/old"));
}

static void
test_keep_versions_per_path(void **state)
{
	struct vfx		*f = *state;
	struct versions_policy	 p = { 2, 0, NOW_MS };
	struct vg_err		 err;
	uint64_t		 pruned;
	int			 i;

	/* a/doc versioned by 4 runs, b only by the oldest */
	for (i = 1; i <= 4; i++)
		put(f, NOW_MS - (10 - i) * DAY_MS, i, "a/doc", "v");
	put(f, NOW_MS - 9 * DAY_MS, 1, "b", "only");
	assert_int_equal(versions_prune(f->fd, &p, &pruned, &err), 0);
	assert_int_equal(pruned, 2);
	assert_true(has(f, NOW_MS - 6 * DAY_MS, 4, "a/doc"));
	assert_true(has(f, NOW_MS - 7 * DAY_MS, 3, "a/doc"));
	assert_false(has(f, NOW_MS - 8 * DAY_MS, 2, "a/doc"));
	assert_false(has(f, NOW_MS - 9 * DAY_MS, 1, "a/doc"));
	/* the empty stamp 2 went away; stamp 1 still holds b */
	assert_false(has(f, NOW_MS - 8 * DAY_MS, 2, ""));
	assert_true(has(f, NOW_MS - 9 * DAY_MS, 1, "b"));
	assert_false(has(f, NOW_MS - 9 * DAY_MS, 1, "a"));
}

static void
test_newest_by_time_not_by_run_id(void **state)
{
	struct vfx		*f = *state;
	struct versions_policy	 p = { 1, 0, NOW_MS };
	struct vg_err		 err;

	/* run ids need not grow with time (a restored DB): time wins */
	put(f, NOW_MS - 1 * DAY_MS, 5, "x", "newer");
	put(f, NOW_MS - 2 * DAY_MS, 9, "x", "older");
	assert_int_equal(versions_prune(f->fd, &p, NULL, &err), 0);
	assert_true(has(f, NOW_MS - 1 * DAY_MS, 5, "x"));
	assert_false(has(f, NOW_MS - 2 * DAY_MS, 9, "x"));
}

static void
test_leaves_foreign_names_removes_temp(void **state)
{
	struct vfx		*f = *state;
	struct versions_policy	 p = { 1, 1, NOW_MS };
	struct vg_err		 err;
	char			 a[PATH_MAX], b[PATH_MAX];
	FILE			*fp;

	snprintf(a, sizeof(a), "%s/.vigil/versions/README", f->dir);
	snprintf(b, sizeof(b), "%s/.vigil/versions/.vigil-tmp-3-added",
	    f->dir);
	fp = fopen(a, "w");
	fclose(fp);
	fp = fopen(b, "w");
	fclose(fp);
	assert_int_equal(versions_prune(f->fd, &p, NULL, &err), 0);
	assert_int_equal(access(a, F_OK), 0);
	assert_int_equal(access(b, F_OK), -1);
}

static void
test_missing_area_is_fine(void **state)
{
	struct vfx		*f = *state;
	struct versions_policy	 p = { 1, 1, NOW_MS };
	struct vg_err		 err;
	char			 v[PATH_MAX];
	uint64_t		 pruned = 99;

	snprintf(v, sizeof(v), "%s/.vigil/versions", f->dir);
	rm_rf(v);
	assert_int_equal(versions_prune(f->fd, &p, &pruned, &err), 0);
	assert_int_equal(pruned, 0);
}

static void
test_symlinked_area_is_refused(void **state)
{
	struct vfx		*f = *state;
	struct versions_policy	 p = { 0, 1, NOW_MS };
	struct vg_err		 err;
	char			 v[PATH_MAX], other[PATH_MAX];

	/* .vigil/versions planted as a symlink to elsewhere: never followed */
	snprintf(v, sizeof(v), "%s/.vigil/versions", f->dir);
	rm_rf(v);
	snprintf(other, sizeof(other), "%s/elsewhere", f->dir);
	assert_int_equal(mkdir(other, 0700), 0);
	snprintf(other, sizeof(other), "%s/elsewhere/20000101T000000Z-r1",
	    f->dir);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(symlink("../elsewhere", v), 0);
	assert_int_equal(versions_prune(f->fd, &p, NULL, &err), -1);
	assert_int_equal(access(other, F_OK), 0);
}

/* Write the .added list of the run id taken at ms. */
static void
put_added(struct vfx *f, int64_t ms, int64_t id)
{
	char	 stamp[VERSIONS_STAMP_MAX], p[PATH_MAX];
	FILE	*fp;

	versions_stamp(ms, id, stamp, sizeof(stamp));
	snprintf(p, sizeof(p), "%s/.vigil/versions/%s.added", f->dir, stamp);
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs("new", fp);
	fputc('\0', fp);
	fclose(fp);
}

static bool
has_added(struct vfx *f, int64_t ms, int64_t id)
{
	char	 stamp[VERSIONS_STAMP_MAX], p[PATH_MAX];

	versions_stamp(ms, id, stamp, sizeof(stamp));
	snprintf(p, sizeof(p), "%s/.vigil/versions/%s.added", f->dir, stamp);
	return access(p, F_OK) == 0;
}

static void
test_keep_versions_prunes_added_lists(void **state)
{
	struct vfx		*f = *state;
	struct versions_policy	 p = { 1, 0, NOW_MS };
	struct vg_err		 err;

	/* run 1 only added; runs 2 and 3 replaced x (and added); run 4
	   only added */
	put_added(f, NOW_MS - 4 * DAY_MS, 1);
	put(f, NOW_MS - 3 * DAY_MS, 2, "x", "x1");
	put_added(f, NOW_MS - 3 * DAY_MS, 2);
	put(f, NOW_MS - 2 * DAY_MS, 3, "x", "x2");
	put_added(f, NOW_MS - 2 * DAY_MS, 3);
	put_added(f, NOW_MS - 1 * DAY_MS, 4);
	assert_int_equal(versions_prune(f->fd, &p, NULL, &err), 0);
	/* run 2 lost its last version: its list goes with it */
	assert_false(has(f, NOW_MS - 3 * DAY_MS, 2, ""));
	assert_false(has_added(f, NOW_MS - 3 * DAY_MS, 2));
	/* run 1 is older than every kept version */
	assert_false(has_added(f, NOW_MS - 4 * DAY_MS, 1));
	/* run 3 holds the kept version; run 4 is newer than it */
	assert_true(has(f, NOW_MS - 2 * DAY_MS, 3, "x"));
	assert_true(has_added(f, NOW_MS - 2 * DAY_MS, 3));
	assert_true(has_added(f, NOW_MS - 1 * DAY_MS, 4));
}

static void
test_added_lists_stay_without_versions(void **state)
{
	struct vfx		*f = *state;
	struct versions_policy	 p = { 2, 0, NOW_MS };
	struct vg_err		 err;

	/* a job that only ever added files: the lists are all restores
	   "as of" an earlier run have */
	put_added(f, NOW_MS - 3 * DAY_MS, 1);
	put_added(f, NOW_MS - 2 * DAY_MS, 2);
	assert_int_equal(versions_prune(f->fd, &p, NULL, &err), 0);
	assert_true(has_added(f, NOW_MS - 3 * DAY_MS, 1));
	assert_true(has_added(f, NOW_MS - 2 * DAY_MS, 2));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stamp_format),
		cmocka_unit_test(test_stamp_roundtrip),
		cmocka_unit_test(test_stamp_parse_rejects),
		T(test_keep_days_removes_old_stamps),
		T(test_keep_versions_per_path),
		T(test_newest_by_time_not_by_run_id),
		T(test_leaves_foreign_names_removes_temp),
		T(test_missing_area_is_fine),
		T(test_symlinked_area_is_refused),
		T(test_keep_versions_prunes_added_lists),
		T(test_added_lists_stay_without_versions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
