/* test_schedule.c: schedule expressions and next run times, DST included. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/schedule.h"

static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/* A local wall time that exists once. */
static time_t
local(int y, int mo, int d, int h, int mi)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

/* "2024-03-31 03:00 CEST" */
static const char *
show(time_t t)
{
	static char buf[64];
	struct tm tm;

	if (t == 0)
		return "never";
	localtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%d %H:%M %Z", &tm);
	return buf;
}

static struct vg_schedule *
parse_ok(const char *text)
{
	struct vg_schedule *s;
	char *msg = NULL;
	const char *hint = NULL;

	s = schedule_parse(text, &msg, &hint);
	if (s == NULL)
		fail_msg("'%s' did not parse: %s", text, msg);
	free(msg);
	return s;
}

/* Expect a parse error whose message and hint contain the given words. */
static void
parse_bad(const char *text, const char *in_msg, const char *in_hint)
{
	struct vg_schedule *s;
	char *msg = NULL;
	const char *hint = NULL;

	s = schedule_parse(text, &msg, &hint);
	if (s != NULL)
		fail_msg("'%s' parsed but should not", text);
	assert_non_null(msg);
	if (strstr(msg, in_msg) == NULL)
		fail_msg("'%s': message '%s' lacks '%s'", text, msg, in_msg);
	assert_non_null(hint);
	if (strstr(hint, in_hint) == NULL)
		fail_msg("'%s': hint '%s' lacks '%s'", text, hint, in_hint);
	free(msg);
}

/* Chain of next runs from `after`, each one after the previous. */
static void
expect_chain(const char *expr, time_t after, const char **want, int n)
{
	struct vg_schedule *s = parse_ok(expr);
	time_t t = after;
	int i;

	for (i = 0; i < n; i++) {
		t = schedule_next(s, t, 0);
		assert_string_equal(show(t), want[i]);
	}
	schedule_free(s);
}

static void
test_manual_never_runs(void **state)
{
	struct vg_schedule *s = parse_ok("manual");

	assert_true(schedule_is_manual(s));
	assert_int_equal(schedule_next(s, time(NULL), 0), 0);
	schedule_free(s);
}

static void
test_daily_later_today_then_tomorrow(void **state)
{
	const char *want[] = { "2024-05-10 14:05 CEST", "2024-05-11 14:05 CEST" };

	set_tz("Europe/Berlin");
	expect_chain("daily 14:05", local(2024, 5, 10, 9, 0), want, 2);
}

static void
test_daily_exactly_at_time_is_next_day(void **state)
{
	struct vg_schedule *s;

	set_tz("Europe/Berlin");
	s = parse_ok("daily 02:00");
	assert_string_equal(show(schedule_next(s, local(2024, 5, 10, 2, 0), 0)),
	    "2024-05-11 02:00 CEST");
	schedule_free(s);
}

static void
test_berlin_spring_forward_runs_at_first_valid_minute(void **state)
{
	const char *want[] = { "2024-03-31 03:00 CEST", "2024-04-01 02:30 CEST" };

	set_tz("Europe/Berlin");
	expect_chain("daily 02:30", local(2024, 3, 30, 12, 0), want, 2);
}

static void
test_berlin_fall_back_runs_once_first_occurrence(void **state)
{
	struct vg_schedule *s;
	time_t t;

	set_tz("Europe/Berlin");
	s = parse_ok("daily 02:30");
	t = schedule_next(s, local(2024, 10, 26, 12, 0), 0);
	assert_string_equal(show(t), "2024-10-27 02:30 CEST");
	assert_int_equal(t, 1729989000);	/* 00:30 UTC: the first one */
	t = schedule_next(s, t, 0);
	assert_string_equal(show(t), "2024-10-28 02:30 CET");
	schedule_free(s);
}

static void
test_berlin_fall_back_cron_skips_repeated_hour(void **state)
{
	/* From 02:30 CEST the repeated 02:00 and 02:30 CET never run. */
	const char *want[] = { "2024-10-27 02:30 CEST", "2024-10-27 03:00 CET",
	    "2024-10-27 03:30 CET" };

	set_tz("Europe/Berlin");
	/* 02:10 CEST is 00:10 UTC. */
	expect_chain("*/30 * * * *", 1729987800, want, 3);
}

static void
test_berlin_spring_gap_cron_runs_once(void **state)
{
	/* 02:00, 02:15, 02:30, 02:45 do not exist: one run at 03:00. */
	const char *want[] = { "2024-03-31 01:45 CET", "2024-03-31 03:00 CEST",
	    "2024-03-31 03:15 CEST" };

	set_tz("Europe/Berlin");
	expect_chain("*/15 * * * *", local(2024, 3, 31, 1, 40), want, 3);
}

static void
test_new_york_spring_forward(void **state)
{
	const char *want[] = { "2024-03-10 03:00 EDT", "2024-03-11 02:15 EDT" };

	set_tz("America/New_York");
	expect_chain("daily 02:15", local(2024, 3, 9, 12, 0), want, 2);
}

static void
test_new_york_fall_back(void **state)
{
	struct vg_schedule *s;
	time_t t;

	set_tz("America/New_York");
	s = parse_ok("daily 01:30");
	t = schedule_next(s, local(2024, 11, 2, 12, 0), 0);
	assert_string_equal(show(t), "2024-11-03 01:30 EDT");
	assert_int_equal(t, 1730611800);	/* 05:30 UTC */
	t = schedule_next(s, t, 0);
	assert_string_equal(show(t), "2024-11-04 01:30 EST");
	schedule_free(s);
}

static void
test_new_york_fall_back_from_second_occurrence(void **state)
{
	struct vg_schedule *s;

	/* 01:10 EST (06:10 UTC), after the first 01:30 EDT has passed. */
	set_tz("America/New_York");
	s = parse_ok("daily 01:30");
	assert_string_equal(show(schedule_next(s, 1730614200, 0)),
	    "2024-11-04 01:30 EST");
	schedule_free(s);
}

static void
test_weekly_days(void **state)
{
	/* 2024-05-01 is a Wednesday. */
	const char *want[] = { "2024-05-02 03:30 CEST", "2024-05-06 03:30 CEST",
	    "2024-05-09 03:30 CEST" };

	set_tz("Europe/Berlin");
	expect_chain("weekly Mon,Thu 03:30", local(2024, 5, 1, 12, 0), want, 3);
}

static void
test_weekly_range_and_case(void **state)
{
	const char *want[] = { "2024-05-03 07:00 CEST", "2024-05-06 07:00 CEST" };

	set_tz("Europe/Berlin");
	expect_chain("WEEKLY mon-FRI 07:00", local(2024, 5, 2, 8, 0), want, 2);
}

static void
test_monthly_31_skips_short_months(void **state)
{
	const char *want[] = { "2024-03-31 04:00 CEST", "2024-05-31 04:00 CEST",
	    "2024-07-31 04:00 CEST" };

	set_tz("Europe/Berlin");
	expect_chain("monthly 31 04:00", local(2024, 1, 31, 5, 0), want, 3);
}

static void
test_monthly_list(void **state)
{
	const char *want[] = { "2024-02-15 04:00 CET", "2024-03-01 04:00 CET" };

	set_tz("Europe/Berlin");
	expect_chain("monthly 1,15 04:00", local(2024, 2, 1, 5, 0), want, 2);
}

static void
test_monthly_29_in_non_leap_year(void **state)
{
	const char *want[] = { "2023-03-29 04:00 CEST" };

	set_tz("Europe/Berlin");
	expect_chain("monthly 29 04:00", local(2023, 1, 30, 0, 0), want, 1);
}

static void
test_cron_feb_29_waits_for_leap_year(void **state)
{
	const char *want[] = { "2028-02-29 04:00 CET", "2032-02-29 04:00 CET" };

	set_tz("Europe/Berlin");
	expect_chain("0 4 29 2 *", local(2024, 3, 1, 0, 0), want, 2);
}

static void
test_cron_dom_dow_or(void **state)
{
	/* Both restricted: the 13th OR any Friday.  2024-09-06 is a Friday,
	 * 2024-09-13 is a Friday and the 13th, 2024-10-13 a Sunday. */
	const char *want[] = { "2024-09-06 12:00 CEST", "2024-09-13 12:00 CEST",
	    "2024-09-20 12:00 CEST" };
	const char *dom_only[] = { "2024-09-13 12:00 CEST",
	    "2024-10-13 12:00 CEST" };

	set_tz("Europe/Berlin");
	expect_chain("0 12 13 * Fri", local(2024, 9, 1, 0, 0), want, 3);
	expect_chain("0 12 13 * *", local(2024, 9, 1, 0, 0), dom_only, 2);
}

static void
test_cron_star_step_dow_is_and(void **state)
{
	/* A day-of-week of the form "*" + step counts as '*' (Vixie cron):
	 * the day-of-month decides alone.  Sundays are 0 and 7. */
	const char *want[] = { "2024-09-13 12:00 CEST" };
	const char *sun[] = { "2024-09-01 12:00 CEST", "2024-09-08 12:00 CEST" };

	set_tz("Europe/Berlin");
	expect_chain("0 12 13 * */1", local(2024, 9, 1, 0, 0), want, 1);
	expect_chain("0 12 * * 7", local(2024, 8, 31, 13, 0), sun, 2);
}

static void
test_cron_lists_ranges_steps_names(void **state)
{
	/* 2024-05-04 is a Saturday. */
	const char *want[] = { "2024-05-06 09:15 CEST", "2024-05-06 09:45 CEST",
	    "2024-05-06 13:15 CEST", "2024-05-06 13:45 CEST",
	    "2024-05-06 17:15 CEST", "2024-05-06 17:45 CEST",
	    "2024-05-07 09:15 CEST" };
	const char *jan[] = { "2025-01-01 00:00 CET" };

	set_tz("Europe/Berlin");
	expect_chain("15,45 9-17/4 * * MON-FRI", local(2024, 5, 4, 0, 0), want,
	    7);
	expect_chain("0 0 1 JAN *", local(2024, 5, 4, 0, 0), jan, 1);
}

static void
test_every_from_last_run(void **state)
{
	struct vg_schedule *s = parse_ok("every 4h");
	time_t last = 1700000000;

	assert_int_equal(schedule_next(s, last + 3600, last), last + 4 * 3600);
	/* Long ago: the next point of the same grid after `after`. */
	assert_int_equal(schedule_next(s, last + 9 * 3600, last),
	    last + 12 * 3600);
	assert_int_equal(schedule_next(s, last + 8 * 3600, last),
	    last + 12 * 3600);
	schedule_free(s);
}

static void
test_every_never_run_counts_from_after(void **state)
{
	struct vg_schedule *s = parse_ok("every 30m");

	assert_int_equal(schedule_next(s, 1700000000, 0), 1700000000 + 1800);
	schedule_free(s);
}

static void
test_every_units_and_combination(void **state)
{
	struct vg_schedule *s;

	s = parse_ok("every 2d");
	assert_int_equal(schedule_next(s, 1000, 1000), 1000 + 2 * 86400);
	schedule_free(s);
	s = parse_ok("every 1h30m");
	assert_int_equal(schedule_next(s, 1000, 1000), 1000 + 5400);
	schedule_free(s);
}

static void
test_every_is_elapsed_time_across_dst(void **state)
{
	struct vg_schedule *s = parse_ok("every 1d");
	time_t last;

	set_tz("Europe/Berlin");
	last = local(2024, 3, 30, 12, 0);
	/* 24 hours later is 13:00 by the clock after spring forward. */
	assert_string_equal(show(schedule_next(s, last, last)),
	    "2024-03-31 13:00 CEST");
	schedule_free(s);
}

static void
test_bad_time(void **state)
{
	parse_bad("daily 25:00", "25:00", "HH:MM");
	parse_bad("daily 2:5", "2:5", "e.g. daily 02:00");
	parse_bad("daily", "one time", "HH:MM");
	parse_bad("daily 02:00 03:00", "one time", "HH:MM");
}

static void
test_bad_weekly_and_monthly(void **state)
{
	parse_bad("weekly Funday 03:00", "Funday", "Mon Tue");
	parse_bad("weekly Mon", "days and a time", "weekly Mon,Thu");
	parse_bad("monthly 32 04:00", "32", "monthly 1,15");
	parse_bad("monthly 0 04:00", "out of range", "1-31");
}

static void
test_bad_every(void **state)
{
	parse_bad("every 4", "no unit", "every 4h");
	parse_bad("every 0h", "zero", "every 4h");
	parse_bad("every 5s", "unknown unit", "units m, h, d");
	parse_bad("every 400d", "longer than a year", "every");
}

static void
test_bad_cron(void **state)
{
	parse_bad("1 2 3 4", "5 fields", "minute hour");
	parse_bad("61 * * * *", "out of range 0-59", "minute hour");
	parse_bad("* * * * Xyz", "day-of-week", "minute hour");
	parse_bad("5-1 * * * *", "backwards", "minute hour");
	parse_bad("*/0 * * * *", "bad step", "minute hour");
	parse_bad("0 0 30 2 *", "never runs", "day-of-month");
}

static void
test_bad_unknown_and_empty(void **state)
{
	parse_bad("hourly", "unknown schedule", "daily HH:MM");
	parse_bad("", "empty", "manual");
	parse_bad("manual please", "nothing after", "manual");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manual_never_runs),
		cmocka_unit_test(test_daily_later_today_then_tomorrow),
		cmocka_unit_test(test_daily_exactly_at_time_is_next_day),
		cmocka_unit_test(test_berlin_spring_forward_runs_at_first_valid_minute),
		cmocka_unit_test(test_berlin_fall_back_runs_once_first_occurrence),
		cmocka_unit_test(test_berlin_fall_back_cron_skips_repeated_hour),
		cmocka_unit_test(test_berlin_spring_gap_cron_runs_once),
		cmocka_unit_test(test_new_york_spring_forward),
		cmocka_unit_test(test_new_york_fall_back),
		cmocka_unit_test(test_new_york_fall_back_from_second_occurrence),
		cmocka_unit_test(test_weekly_days),
		cmocka_unit_test(test_weekly_range_and_case),
		cmocka_unit_test(test_monthly_31_skips_short_months),
		cmocka_unit_test(test_monthly_list),
		cmocka_unit_test(test_monthly_29_in_non_leap_year),
		cmocka_unit_test(test_cron_feb_29_waits_for_leap_year),
		cmocka_unit_test(test_cron_dom_dow_or),
		cmocka_unit_test(test_cron_star_step_dow_is_and),
		cmocka_unit_test(test_cron_lists_ranges_steps_names),
		cmocka_unit_test(test_every_from_last_run),
		cmocka_unit_test(test_every_never_run_counts_from_after),
		cmocka_unit_test(test_every_units_and_combination),
		cmocka_unit_test(test_every_is_elapsed_time_across_dst),
		cmocka_unit_test(test_bad_time),
		cmocka_unit_test(test_bad_weekly_and_monthly),
		cmocka_unit_test(test_bad_every),
		cmocka_unit_test(test_bad_cron),
		cmocka_unit_test(test_bad_unknown_and_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
