/* test_tray_model.c: what vigil-tray derives from the service's answers and
 * events (agent/tray/tray_model.c): the icon's state, notices, progress
 * figures, formats, and the local validation of the jobs editor. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/tray/tray_model.h"

static json_t *
status_json(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);

	assert_non_null(j);
	return j;
}

static struct tray_model *
model_with(const char *status)
{
	struct tray_model *m = tray_model_new("alice");
	json_t *s;

	assert_non_null(m);
	tray_model_set_connected(m, true, false, NULL);
	s = status_json(status);
	assert_int_equal(tray_model_set_status(m, s, 1000), 0);
	json_decref(s);
	return m;
}

#define TWO_JOBS "{\"jobs\": [" \
	"{\"id\": 1, \"name\": \"docs\", \"owner\": \"alice\", \"last_status\": \"ok\", \"next_run\": \"2026-11-22T02:00:00.000Z\"}," \
	"{\"id\": 2, \"name\": \"photos\", \"owner\": \"alice\", \"last_status\": null}]," \
	"\"running\": []}"

static void
test_idle_when_all_good(void **state)
{
	struct tray_model *m = model_with(TWO_JOBS);
	char *tip;

	(void)state;
	assert_int_equal(tray_model_state(m), TRAY_IDLE);
	assert_string_equal(tray_state_icon(TRAY_IDLE), "vigil-idle");
	tip = tray_model_tooltip_text(m);
	assert_string_equal(tip, "vigil: all good");
	free(tip);
	tray_model_free(m);
}

static void
test_disconnected_wins_and_forgets_runs(void **state)
{
	struct tray_model *m = model_with("{\"jobs\": [{\"id\": 1, \"name\": "
	    "\"docs\", \"owner\": \"alice\", \"running\": true}], \"running\": "
	    "[{\"run\": 5, \"job\": \"docs\", \"job_id\": 1}]}");
	char *tip;

	(void)state;
	assert_int_equal(tray_model_state(m), TRAY_RUNNING);
	m->retry_ms = 2000;
	tray_model_set_connected(m, false, false, "connection refused");
	assert_int_equal(tray_model_state(m), TRAY_DISCONNECTED);
	assert_int_equal(m->nruns, 0);
	tip = tray_model_tooltip_text(m);
	assert_non_null(strstr(tip, "disconnected"));
	assert_non_null(strstr(tip, "retrying"));
	free(tip);
	tray_model_free(m);
}

static void
test_failed_outranks_partial(void **state)
{
	struct tray_model *m = model_with("{\"jobs\": ["
	    "{\"id\": 1, \"name\": \"a\", \"owner\": \"alice\", \"last_status\": \"partial\"},"
	    "{\"id\": 2, \"name\": \"b\", \"owner\": \"alice\", \"last_status\": \"failed\"}],"
	    "\"running\": []}");
	char *head;

	(void)state;
	assert_int_equal(tray_model_state(m), TRAY_FAILED);
	head = tray_model_headline_text(m);
	assert_string_equal(head, "B: last run failed");
	free(head);
	tray_model_free(m);
}

static void
test_partial_alone_is_partial(void **state)
{
	struct tray_model *m = model_with("{\"jobs\": [{\"id\": 1, \"name\": "
	    "\"a\", \"owner\": \"alice\", \"last_status\": \"partial\"}], "
	    "\"running\": []}");

	(void)state;
	assert_int_equal(tray_model_state(m), TRAY_PARTIAL);
	tray_model_free(m);
}

static void
test_progress_event_sets_running_with_percent(void **state)
{
	struct tray_model *m = model_with(TWO_JOBS);
	struct tray_notice n;
	json_t *d;
	bool refresh;
	char *tip;

	(void)state;
	d = status_json("{\"run\": 9, \"job\": \"docs\", \"job_id\": 1, "
	    "\"phase\": \"copy\", \"files\": 10, \"bytes\": 250, "
	    "\"bytes_todo\": 1000}");
	assert_int_equal(tray_model_event(m, "progress", d, 2000, &n,
	    &refresh), 0);
	json_decref(d);
	assert_int_equal(tray_model_state(m), TRAY_RUNNING);
	assert_int_equal(tray_run_percent(&m->runs[0]), 25);
	tip = tray_model_tooltip_text(m);
	assert_string_equal(tip, "vigil: docs 25% (copy)");
	free(tip);
	tray_model_free(m);
}

static void
test_rate_and_eta_from_two_progress_events(void **state)
{
	struct tray_model *m = model_with(TWO_JOBS);
	struct tray_notice n;
	json_t *d;
	bool refresh;

	(void)state;
	d = status_json("{\"run\": 9, \"job\": \"docs\", \"job_id\": 1, "
	    "\"phase\": \"copy\", \"bytes\": 1000, \"bytes_todo\": 11000}");
	tray_model_event(m, "progress", d, 10000, &n, &refresh);
	json_decref(d);
	assert_int_equal(tray_run_eta(&m->runs[0]), -1);	/* no rate yet */
	d = status_json("{\"run\": 9, \"job\": \"docs\", \"job_id\": 1, "
	    "\"phase\": \"copy\", \"bytes\": 3000, \"bytes_todo\": 11000}");
	tray_model_event(m, "progress", d, 12000, &n, &refresh);
	json_decref(d);
	/* 2000 bytes in 2 s: 1000 B/s; 8000 bytes left: 8 s. */
	assert_true(tray_run_rate(&m->runs[0]) > 999.0 &&
	    tray_run_rate(&m->runs[0]) < 1001.0);
	assert_int_equal(tray_run_eta(&m->runs[0]), 8);
	tray_model_free(m);
}

static void
test_run_finished_failed_notifies_and_refreshes(void **state)
{
	struct tray_model *m = model_with(TWO_JOBS);
	struct tray_notice n;
	json_t *d;
	bool refresh;

	(void)state;
	d = status_json("{\"run\": 9, \"job\": \"docs\", \"job_id\": 1}");
	tray_model_event(m, "run-started", d, 1000, &n, &refresh);
	json_decref(d);
	assert_int_equal(tray_model_state(m), TRAY_RUNNING);
	d = status_json("{\"run\": 9, \"job\": \"docs\", \"job_id\": 1, "
	    "\"status\": \"failed\"}");
	assert_int_equal(tray_model_event(m, "run-finished", d, 2000, &n,
	    &refresh), 1);
	json_decref(d);
	assert_true(refresh);
	assert_true(n.urgent);
	assert_string_equal(n.title, "Backup docs failed");
	assert_string_equal(n.id, "run-9");
	assert_int_equal(m->nruns, 0);
	assert_int_equal(tray_model_state(m), TRAY_FAILED);
	tray_model_free(m);
}

static void
test_run_finished_cancelled_is_quiet(void **state)
{
	struct tray_model *m = model_with(TWO_JOBS);
	struct tray_notice n;
	json_t *d;
	bool refresh;

	(void)state;
	d = status_json("{\"run\": 9, \"job\": \"docs\", \"job_id\": 1, "
	    "\"status\": \"cancelled\"}");
	assert_int_equal(tray_model_event(m, "run-finished", d, 2000, &n,
	    &refresh), 0);
	json_decref(d);
	assert_true(refresh);
	tray_model_free(m);
}

static void
test_overdue_alert_notifies_and_shows(void **state)
{
	struct tray_model *m = model_with(TWO_JOBS);
	struct tray_notice n;
	json_t *d;
	bool refresh;

	(void)state;
	d = status_json("{\"kind\": \"overdue\", \"job\": \"photos\", "
	    "\"job_id\": 2}");
	assert_int_equal(tray_model_event(m, "alert", d, 2000, &n, &refresh),
	    1);
	json_decref(d);
	assert_int_equal(tray_model_state(m), TRAY_OVERDUE);
	assert_string_equal(n.title, "Backup photos is overdue");
	/* A successful run clears it. */
	d = status_json("{\"run\": 3, \"job\": \"photos\", \"job_id\": 2, "
	    "\"status\": \"ok\"}");
	tray_model_event(m, "run-finished", d, 3000, &n, &refresh);
	json_decref(d);
	assert_int_equal(tray_model_state(m), TRAY_IDLE);
	tray_model_free(m);
}

static void
test_admin_names_other_users_jobs_owner_colon_name(void **state)
{
	struct tray_model *m = tray_model_new("root");
	json_t *s;

	(void)state;
	tray_model_set_connected(m, true, true, NULL);
	s = status_json("{\"jobs\": [{\"id\": 1, \"name\": \"docs\", "
	    "\"owner\": \"alice\"}, {\"id\": 2, \"name\": \"etc\", \"owner\": "
	    "\"root\"}], \"running\": []}");
	assert_int_equal(tray_model_set_status(m, s, 0), 0);
	json_decref(s);
	assert_string_equal(m->jobs[0].run_name, "alice:docs");
	assert_string_equal(m->jobs[1].run_name, "etc");
	tray_model_free(m);
}

static void
test_formats(void **state)
{
	char b[64];

	(void)state;
	tray_format_bytes(320, b, sizeof b);
	assert_string_equal(b, "320 B");
	tray_format_bytes(1500000, b, sizeof b);
	assert_string_equal(b, "1.5 MB");
	tray_format_duration(3903, b, sizeof b);
	assert_string_equal(b, "1:05:03");
	tray_format_duration(9, b, sizeof b);
	assert_string_equal(b, "0:09");
	tray_format_duration(-1, b, sizeof b);
	assert_string_equal(b, "--");
	setenv("TZ", "UTC", 1);
	tzset();
	tray_format_time("2026-11-21T22:10:03.120Z", b, sizeof b);
	assert_string_equal(b, "Sat 21 Nov 22:10");
	tray_format_time(NULL, b, sizeof b);
	assert_string_equal(b, "never");
	tray_format_time("garbage", b, sizeof b);
	assert_string_equal(b, "garbage");
}

static void
test_backoff_doubles_to_thirty_seconds(void **state)
{
	int ms = 0, i;

	(void)state;
	ms = tray_backoff_next(ms);
	assert_int_equal(ms, 1000);
	ms = tray_backoff_next(ms);
	assert_int_equal(ms, 2000);
	for (i = 0; i < 10; i++)
		ms = tray_backoff_next(ms);
	assert_int_equal(ms, 30000);
}

static void
test_validate_reports_the_bad_line(void **state)
{
	struct vg_diags d = { 0 };
	const char *text = "[job docs]\nsource = /\ndestination = /tmp\n"
	    "this is not a key\n";
	char *line;

	(void)state;
	assert_true(tray_validate_jobs("jobs", text, strlen(text), getuid(),
	    &d) >= 1);
	assert_int_equal(d.v[0].level, VG_DIAG_ERROR);
	assert_int_equal(d.v[0].line, 4);
	line = tray_diag_text(&d.v[0]);
	assert_non_null(strstr(line, "line 4: "));
	free(line);
	diags_free(&d);
}

static void
test_validate_accepts_a_valid_file(void **state)
{
	struct vg_diags d = { 0 };
	const char *text = "# mine\n\n[job docs]\nsource = /usr\n"
	    "destination = /tmp\n";

	(void)state;
	assert_int_equal(tray_validate_jobs("jobs", text, strlen(text),
	    getuid(), &d), 0);
	diags_free(&d);
}

static void
test_service_diagnostics_become_diags(void **state)
{
	struct vg_diags d = { 0 };
	json_t *j;
	char *line;

	(void)state;
	j = status_json("[{\"level\": \"error\", \"file\": \"jobs\", \"line\": 4, "
	    "\"job\": \"docs\", \"key\": \"schedule\", \"message\": \"unknown "
	    "schedule form\", \"hint\": \"expected e.g. daily 02:00\"}, "
	    "{\"level\": \"note\", \"line\": -3, \"message\": \"m\"}]");
	assert_int_equal(tray_diags_from_json(j, &d), 0);
	json_decref(j);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.nerrors, 1);
	line = tray_diag_text(&d.v[0]);
	assert_string_equal(line, "line 4: job docs: key schedule: unknown "
	    "schedule form (hint: expected e.g. daily 02:00)");
	free(line);
	assert_int_equal(d.v[1].line, 0);	/* a hostile line number */
	diags_free(&d);
}

static void
test_log_text_lists_problems(void **state)
{
	json_t *j;
	char *text;

	(void)state;
	j = status_json("{\"id\": 12, \"job\": \"docs\", \"status\": "
	    "\"partial\", \"trigger\": \"manual\", \"duration_ms\": 1412, "
	    "\"files\": 3, \"bytes\": 2000, \"counts\": {\"copied\": 2, "
	    "\"failed\": 1}, \"problems\": [{\"path\": \"q3.ods\", \"capture\": "
	    "\"live\", \"problem\": \"unreadable\", \"detail\": \"Permission "
	    "denied\"}]}");
	text = tray_log_text(j);
	json_decref(j);
	assert_non_null(strstr(text, "Run 12 of docs: partial\n"));
	assert_non_null(strstr(text, "2 copied"));
	assert_non_null(strstr(text, "  q3.ods: unreadable (captured live): "
	    "Permission denied\n"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_when_all_good),
		cmocka_unit_test(test_disconnected_wins_and_forgets_runs),
		cmocka_unit_test(test_failed_outranks_partial),
		cmocka_unit_test(test_partial_alone_is_partial),
		cmocka_unit_test(test_progress_event_sets_running_with_percent),
		cmocka_unit_test(test_rate_and_eta_from_two_progress_events),
		cmocka_unit_test(test_run_finished_failed_notifies_and_refreshes),
		cmocka_unit_test(test_run_finished_cancelled_is_quiet),
		cmocka_unit_test(test_overdue_alert_notifies_and_shows),
		cmocka_unit_test(test_admin_names_other_users_jobs_owner_colon_name),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_backoff_doubles_to_thirty_seconds),
		cmocka_unit_test(test_validate_reports_the_bad_line),
		cmocka_unit_test(test_validate_accepts_a_valid_file),
		cmocka_unit_test(test_service_diagnostics_become_diags),
		cmocka_unit_test(test_log_text_lists_problems),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
