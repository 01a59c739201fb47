/* test_filter.c: include/exclude globs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/filter.h"

/* Build a filter from NULL-terminated arrays of patterns. */
static struct vg_filter *
mk(const char **inc, const char **exc)
{
	struct vg_strlist i = { 0 }, e = { 0 };
	struct vg_filter *f;
	char *msg = NULL;

	for (; inc && *inc; inc++)
		assert_int_equal(strlist_push(&i, *inc), 0);
	for (; exc && *exc; exc++)
		assert_int_equal(strlist_push(&e, *exc), 0);
	f = filter_compile(&i, &e, &msg);
	if (f == NULL)
		fail_msg("filter did not compile: %s", msg);
	strlist_free(&i);
	strlist_free(&e);
	return f;
}

static int
skips(const struct vg_filter *f, const char *path, bool is_dir)
{
	return filter_match(f, path, strlen(path), is_dir) == FILTER_SKIP;
}

static void
test_basename_pattern_at_any_depth(void **state)
{
	const char *exc[] = { "*.tmp", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, "a.tmp", false));
	assert_true(skips(f, "x/y/z/a.tmp", false));
	assert_false(skips(f, "a.tmpx", false));
	assert_false(skips(f, "a.tmp.txt", false));
	assert_false(skips(f, "tmp", false));
	filter_free(f);
}

static void
test_excluded_directory_excludes_below(void **state)
{
	const char *exc[] = { "node_modules", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, "web/node_modules", true));
	assert_true(skips(f, "web/node_modules/x/index.js", false));
	assert_false(skips(f, "web/node_modules_old/a", false));
	filter_free(f);
}

static void
test_trailing_slash_matches_directories_only(void **state)
{
	const char *exc[] = { ".cache/", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, ".cache", true));
	assert_true(skips(f, "home/.cache", true));
	assert_true(skips(f, "home/.cache/fontconfig/x", false));
	assert_false(skips(f, ".cache", false));	/* a file */
	assert_false(skips(f, "a/.cache", false));
	filter_free(f);
}

static void
test_inner_slash_anchors_at_root(void **state)
{
	const char *exc[] = { "build/out", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, "build/out", true));
	assert_true(skips(f, "build/out/x.o", false));
	assert_false(skips(f, "src/build/out", true));
	assert_false(skips(f, "build/outer", true));
	assert_false(skips(f, "build", true));
	filter_free(f);
}

static void
test_leading_slash_anchors_single_component(void **state)
{
	const char *exc[] = { "/top.txt", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, "top.txt", false));
	assert_false(skips(f, "a/top.txt", false));
	filter_free(f);
}

static void
test_star_and_question_stay_in_component(void **state)
{
	const char *exc[] = { "a/*.c", "x?y", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, "a/m.c", false));
	assert_true(skips(f, "a/.c", false));
	assert_false(skips(f, "a/b/m.c", false));
	assert_true(skips(f, "q/xzy", false));
	assert_false(skips(f, "x/y", false));
	assert_false(skips(f, "xy", false));
	filter_free(f);
}

static void
test_double_star_any_depth(void **state)
{
	const char *exc[] = { "src/**/gen", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, "src/gen", true));
	assert_true(skips(f, "src/a/gen", true));
	assert_true(skips(f, "src/a/b/c/gen", true));
	assert_true(skips(f, "src/a/gen/x.c", false));
	assert_false(skips(f, "other/src/gen", true));
	assert_false(skips(f, "src/a/generated", true));
	filter_free(f);
}

static void
test_leading_double_star_matches_anywhere(void **state)
{
	const char *exc[] = { "**/logs/*.log", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, "logs/a.log", false));
	assert_true(skips(f, "x/y/logs/a.log", false));
	assert_false(skips(f, "x/y/logs/sub/a.log", false));
	filter_free(f);
}

static void
test_trailing_double_star_only_below(void **state)
{
	const char *exc[] = { "tmp/**", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_false(skips(f, "tmp", true));
	assert_true(skips(f, "tmp/a", false));
	assert_true(skips(f, "tmp/a/b", true));
	filter_free(f);
}

static void
test_classes_and_escapes(void **state)
{
	const char *exc[] = { "[abc].txt", "[!x]y", "v[0-9][[:digit:]]",
	    "\\*.lit", "[]]z", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, "b.txt", false));
	assert_false(skips(f, "d.txt", false));
	assert_true(skips(f, "ay", false));
	assert_false(skips(f, "xy", false));
	assert_true(skips(f, "v42", false));
	assert_false(skips(f, "v4x", false));
	assert_true(skips(f, "*.lit", false));
	assert_false(skips(f, "a.lit", false));
	assert_true(skips(f, "]z", false));
	filter_free(f);
}

static void
test_non_utf8_names(void **state)
{
	const char *exc[] = { "*.bak", NULL };
	struct vg_filter *f = mk(NULL, exc);

	assert_true(skips(f, "d\xff\xfe/n\x80me.bak", false));
	assert_false(skips(f, "d\xff\xfe/n\x80me.ba", false));
	filter_free(f);
}

static void
test_include_takes_only_matches(void **state)
{
	const char *inc[] = { "*.c", "docs/", NULL };
	struct vg_filter *f = mk(inc, NULL);

	assert_false(skips(f, "src/main.c", false));
	assert_true(skips(f, "src/main.h", false));
	assert_false(skips(f, "src", true));	/* directories descend */
	assert_false(skips(f, "docs/a/b.txt", false));	/* under docs/ */
	assert_true(skips(f, "notes.txt", false));
	filter_free(f);
}

static void
test_exclude_wins_over_include(void **state)
{
	const char *inc[] = { "*.c", NULL };
	const char *exc[] = { "gen/", "*_test.c", NULL };
	struct vg_filter *f = mk(inc, exc);

	assert_false(skips(f, "a.c", false));
	assert_true(skips(f, "a_test.c", false));
	assert_true(skips(f, "gen", true));
	assert_true(skips(f, "gen/a.c", false));
	filter_free(f);
}

static void
test_no_filter_takes_everything(void **state)
{
	struct vg_filter *f = mk(NULL, NULL);

	assert_int_equal(filter_match(NULL, "x", 1, false), FILTER_TAKE);
	assert_false(skips(f, "a/b/c", false));
	assert_false(skips(f, "", true));
	filter_free(f);
	filter_free(NULL);
}

static void
test_relpath_length_is_respected(void **state)
{
	const char *exc[] = { "*.tmp", NULL };
	struct vg_filter *f = mk(NULL, exc);
	const char *p = "a.tmp/rest";

	/* Only the first 5 bytes are the path. */
	assert_int_equal(filter_match(f, p, 5, false), FILTER_SKIP);
	assert_int_equal(filter_match(f, "a.tm", 4, false), FILTER_TAKE);
	filter_free(f);
}

static void
expect_bad(const char *pattern, const char *in_msg)
{
	char *msg = NULL;

	if (filter_check_pattern(pattern, &msg) == 0)
		fail_msg("pattern '%s' accepted", pattern);
	assert_non_null(msg);
	if (strstr(msg, in_msg) == NULL)
		fail_msg("'%s': message '%s' lacks '%s'", pattern, msg, in_msg);
	free(msg);
}

static void
test_bad_patterns(void **state)
{
	expect_bad("", "empty");
	expect_bad("[abc", "'['");
	expect_bad("a//b", "empty component");
	expect_bad("foo\\", "backslash");
	expect_bad("../x", "'..'");
	expect_bad("/", "names no file");
}

static void
test_compile_names_bad_pattern(void **state)
{
	struct vg_strlist e = { 0 };
	char *msg = NULL;

	assert_int_equal(strlist_push(&e, "*.ok"), 0);
	assert_int_equal(strlist_push(&e, "bro[ken"), 0);
	assert_null(filter_compile(NULL, &e, &msg));
	assert_non_null(msg);
	assert_non_null(strstr(msg, "bro[ken"));
	free(msg);
	strlist_free(&e);
}

static void
test_many_double_stars_stay_fast(void **state)
{
	const char *exc[] = { "**/a/**/a/**/a/**/a/**/a/**/b", NULL };
	struct vg_filter *f = mk(NULL, exc);
	char path[4096];
	size_t i, n = 0;

	for (i = 0; i < 1000; i++) {
		path[n++] = 'a';
		path[n++] = '/';
	}
	path[n++] = 'c';
	path[n] = '\0';
	assert_false(skips(f, path, false));
	path[n - 1] = 'b';
	assert_true(skips(f, path, false));
	filter_free(f);
}

static void
test_speed_per_entry(void **state)
{
	const char *inc[] = { "*.c", "*.h", "docs/", NULL };
	const char *exc[] = { "*.tmp", ".cache/", "node_modules", "build/out",
	    "src/**/gen", NULL };
	struct vg_filter *f = mk(inc, exc);
	const char *paths[] = { "home/alice/src/project/lib/module/file.c",
	    "home/alice/.cache/x", "a/b/c/d/e/f/g/h/readme.txt",
	    "src/x/y/gen/z.c" };
	struct timespec a, b;
	size_t i, took = 0;
	double ns;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < 400000; i++)
		took += !skips(f, paths[i % 4], false);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 400000;
	print_message("filter_match: %.0f ns per entry (8 patterns)\n", ns);
	assert_int_equal(took, 100000);	/* only file.c is taken */
	filter_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basename_pattern_at_any_depth),
		cmocka_unit_test(test_excluded_directory_excludes_below),
		cmocka_unit_test(test_trailing_slash_matches_directories_only),
		cmocka_unit_test(test_inner_slash_anchors_at_root),
		cmocka_unit_test(test_leading_slash_anchors_single_component),
		cmocka_unit_test(test_star_and_question_stay_in_component),
		cmocka_unit_test(test_double_star_any_depth),
		cmocka_unit_test(test_leading_double_star_matches_anywhere),
		cmocka_unit_test(test_trailing_double_star_only_below),
		cmocka_unit_test(test_classes_and_escapes),
		cmocka_unit_test(test_non_utf8_names),
		cmocka_unit_test(test_include_takes_only_matches),
		cmocka_unit_test(test_exclude_wins_over_include),
		cmocka_unit_test(test_no_filter_takes_everything),
		cmocka_unit_test(test_relpath_length_is_respected),
		cmocka_unit_test(test_bad_patterns),
		cmocka_unit_test(test_compile_names_bad_pattern),
		cmocka_unit_test(test_many_double_stars_stay_fast),
		cmocka_unit_test(test_speed_per_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
