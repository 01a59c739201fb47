/*
 * test_quiesce.c: the agent registry and the decision of each run between
 * the agent path and the fallback, driven with the fake session source and
 * times passed by hand: nobody logged on, a session without an agent,
 * agents that answer, refuse, postpone, run late, go away or lie, root's
 * job asking everyone, claims of other users' sessions, and a run
 * interrupted with apps closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/err.h"
#include "common/sessions.h"
#include "scheduler/quiesce.h"

#define ALICE	1000
#define BOB	1001
#define T0	1000000		/* monotonic ms at the start of each test */

/* The last details_get() result, freed by the next call or teardown. */
static json_t *details_keep;

struct fx {
	struct vg_quiesce	*q;
	struct vg_sessions	*src;
	struct vg_job_def	*def;
	struct vg_session	*ss;
	size_t			 nss;
};

static struct vg_job_def *
job(const char *extra)
{
	struct vg_diags diags;
	struct vg_job_def *def;
	char text[2048];

	memset(&diags, 0, sizeof diags);
	snprintf(text, sizeof text, "[job documents]\n"
	    "source = /home/alice/Documents\n"
	    "source = /home/alice/Mail/\n"
	    "destination = /srv/backup/alice\n"
	    "%s", extra);
	def = config_parse_job(text, &diags);
	if (def == NULL)
		diags_print(&diags, stderr);
	assert_non_null(def);
	diags_free(&diags);
	return def;
}

static struct vg_session
session(const char *id, uid_t uid, const char *user,
    enum vg_session_class klass)
{
	struct vg_session s;

	memset(&s, 0, sizeof s);
	snprintf(s.id, sizeof s.id, "%s", id);
	s.uid = uid;
	snprintf(s.user, sizeof s.user, "%s", user);
	s.klass = klass;
	s.type = VG_SESSION_TYPE_X11;
	s.state = VG_SESSION_ACTIVE;
	return s;
}

static void
login(struct fx *f, const char *id, uid_t uid, const char *user)
{
	struct vg_session s = session(id, uid, user, VG_SESSION_CLASS_USER);

	assert_int_equal(sessions_fake_add(f->src, &s), 0);
}

/* The source's sessions now, as the service would list them. */
static void
refresh(struct fx *f)
{
	struct vg_err err;

	free(f->ss);
	f->ss = NULL;
	assert_int_equal(sessions_list(f->src, &f->ss, &f->nss, &err), 0);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_non_null(f->q = quiesce_new());
	assert_non_null(f->src = sessions_fake_new());
	f->def = job("close-apps = auto\n");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	json_decref(details_keep);
	details_keep = NULL;
	quiesce_free(f->q);
	sessions_free(f->src);
	job_def_free(f->def);
	free(f->ss);
	free(f);
	return 0;
}

/* Register an agent claiming session (NULL: null claim); must succeed. */
static void
agent(struct fx *f, uint64_t conn, uid_t uid, const char *user,
    const char *claim)
{
	struct vg_err err;
	json_t *params, *result = NULL;
	int rc;

	params = json_pack("{s:s?, s:s, s:b, s:s}", "session", claim,
	    "display", ":0", "wayland", 0, "agent_version", "0.1");
	vg_err_clear(&err);
	rc = quiesce_agent_register(f->q, f->src, conn, uid, user, params, T0,
	    &result, &err);
	if (rc != 0)
		fprintf(stderr, "register: %s\n", err.msg);
	assert_int_equal(rc, 0);
	assert_true(json_is_true(json_object_get(result, "accepted")));
	json_decref(params);
	json_decref(result);
}

static struct quiesce_round *
plan_as(struct fx *f, uid_t owner, const char *owner_name, unsigned postponed,
    bool dry_run)
{
	struct quiesce_request req;
	struct quiesce_round *r;
	struct vg_err err;

	refresh(f);
	memset(&req, 0, sizeof req);
	req.run_id = 42;
	req.job = "documents";
	req.owner_uid = owner;
	req.owner = owner_name;
	req.def = f->def;
	req.postponed = postponed;
	req.dry_run = dry_run;
	r = quiesce_plan(f->q, &req, f->ss, f->nss, T0, &err);
	assert_non_null(r);
	return r;
}

static struct quiesce_round *
plan(struct fx *f)
{
	return plan_as(f, ALICE, "alice", 0, false);
}

/* Send an agent message built from a JSON text with %llu for the quiesce
 * id; returns its rc and fills err. */
static int
say(struct fx *f, uint64_t conn, const char *method, int64_t now,
    struct quiesce_round *r, struct vg_err *err, const char *fmt)
{
	char text[4096];
	json_error_t jerr;
	json_t *params;
	int rc;
	/* fmt holds "%llu" where the quiesce id goes (no printf: the
	 * templates are data) */
	const char *at = strstr(fmt, "%llu");

	if (at == NULL)
		fail_msg("test JSON without %%llu: %s", fmt);
	snprintf(text, sizeof text, "%.*s%llu%s", (int)(at - fmt), fmt,
	    (unsigned long long)quiesce_round_id(r), at + 4);
	params = json_loads(text, JSON_ALLOW_NUL, &jerr);
	if (params == NULL)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	vg_err_clear(err);
	rc = quiesce_agent_message(f->q, conn, method, params, now, NULL, err);
	json_decref(params);
	return rc;
}

static void
say_ok(struct fx *f, uint64_t conn, const char *method, int64_t now,
    struct quiesce_round *r, const char *fmt)
{
	struct vg_err err;

	if (say(f, conn, method, now, r, &err, fmt) != 0)
		fail_msg("%s: %s", method, err.msg);
}

static struct quiesce_outcome
outcome(const struct quiesce_round *r)
{
	struct quiesce_outcome o;

	assert_true(quiesce_round_decided(r));
	assert_int_equal(quiesce_round_outcome(r, &o), 0);
	return o;
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (hay == NULL || strstr(hay, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"",
		    hay ? hay : "(null)", needle);
}

static void
assert_targets(const struct quiesce_round *r, size_t n, ...)
{
	uint64_t *conns;
	size_t got, i;
	va_list ap;

	assert_int_equal(quiesce_round_targets(r, &conns, &got), 0);
	assert_int_equal(got, n);
	va_start(ap, n);
	for (i = 0; i < n; i++)
		assert_int_equal(conns[i], va_arg(ap, uint64_t));
	va_end(ap);
	free(conns);
}

/* Resume now; returns how many agents are to be sent a resume, the first
 * in *first. */
static size_t
resume(struct fx *f, struct quiesce_round *r, int64_t now, uint64_t *first)
{
	uint64_t *conns;
	size_t n;

	assert_int_equal(quiesce_round_resume(f->q, r, now, &conns, &n), 0);
	if (n > 0 && first != NULL)
		*first = conns[0];
	free(conns);
	return n;
}

static json_t *
details_get(const struct quiesce_round *r, const char *a, const char *b)
{
	json_t *d;

	json_decref(details_keep);
	details_keep = d = quiesce_round_details(r);
	assert_non_null(d);
	d = json_object_get(d, a);
	return b != NULL ? json_object_get(d, b) : d;
}

/* ---- nobody there ---- */

static void
test_nobody_logged_on_falls_back_at_once(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r = plan(f);
	struct quiesce_outcome o = outcome(r);

	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_string_equal(o.reason, "nobody is logged on");
	assert_true(o.fallback_all);
	assert_targets(r, 0);
	assert_int_equal(quiesce_next_deadline(f->q), -1);
	assert_true(quiesce_round_settled(r));
	assert_string_equal(quiesce_path_name(o.path), "fallback");
}

static void
test_nobody_logged_on_with_skip_skips(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	job_def_free(f->def);
	f->def = job("close-apps = auto\nlogged-off = skip\n");
	r = plan(f);
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_SKIP);
	assert_string_equal(quiesce_path_name(o.path), "skip");
	assert_contains(o.reason, "nobody is logged on");
	assert_contains(o.reason, "logged-off = skip");
	assert_int_equal(quiesce_next_deadline(f->q), -1);
}

static void
test_owner_not_logged_on_while_another_user_is(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	login(f, "7", BOB, "bob");
	agent(f, 9, BOB, "bob", "7");
	r = plan(f);
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_string_equal(o.reason, "alice is not logged on");
	/* bob's agent is not asked about alice's job */
	assert_targets(r, 0);
}

static void
test_greeter_background_and_closing_sessions_do_not_count(void **state)
{
	struct fx *f = *state;
	struct vg_session g = session("c1", 115, "gdm",
	    VG_SESSION_CLASS_GREETER);
	struct vg_session b = session("c2", ALICE, "alice",
	    VG_SESSION_CLASS_BACKGROUND);
	struct vg_session c = session("4", ALICE, "alice",
	    VG_SESSION_CLASS_USER);
	struct quiesce_outcome o;

	c.state = VG_SESSION_CLOSING;
	assert_int_equal(sessions_fake_add(f->src, &g), 0);
	assert_int_equal(sessions_fake_add(f->src, &b), 0);
	assert_int_equal(sessions_fake_add(f->src, &c), 0);
	o = outcome(plan(f));
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_string_equal(o.reason, "nobody is logged on");
}

static void
test_session_without_agent_falls_back_at_once(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;
	json_t *s;

	login(f, "3", ALICE, "alice");
	r = plan(f);
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_string_equal(o.reason,
	    "alice is logged on (session 3) but has no agent");
	assert_true(o.fallback_all);
	assert_targets(r, 0);
	assert_int_equal(quiesce_next_deadline(f->q), -1);
	/* the record has the session it saw */
	s = json_array_get(details_get(r, "sessions", NULL), 0);
	assert_string_equal(json_string_value(json_object_get(s, "id")), "3");
	assert_true(json_is_false(json_object_get(s, "has_agent")));
}

static void
test_close_apps_none_asks_nobody(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	job_def_free(f->def);
	f->def = job("close-apps = none\n");
	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_contains(o.reason, "close-apps = none");
	assert_targets(r, 0);
}

/* ---- the agent path ---- */

static void
test_agent_closes_apps_and_reopens_them(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;
	uint64_t to = 0;
	json_t *ev, *apps, *a;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	assert_false(quiesce_round_decided(r));
	assert_int_equal(quiesce_round_outcome(r, &o), -1);
	assert_targets(r, 1, (uint64_t)5);

	ev = quiesce_round_event(r);
	assert_int_equal(json_integer_value(json_object_get(ev, "quiesce")),
	    quiesce_round_id(r));
	assert_int_equal(json_integer_value(json_object_get(ev, "run")), 42);
	assert_string_equal(json_string_value(json_object_get(ev, "job")),
	    "documents");
	assert_string_equal(json_string_value(json_array_get(
	    json_object_get(ev, "sources"), 0)), "/home/alice/Documents");
	assert_string_equal(json_string_value(json_object_get(ev,
	    "close_apps")), "auto");
	assert_int_equal(json_integer_value(json_object_get(ev, "warn_s")), 60);
	assert_int_equal(json_integer_value(json_object_get(ev,
	    "close_timeout_s")), 60);
	assert_true(json_is_true(json_object_get(ev, "may_postpone")));
	assert_true(json_is_false(json_object_get(ev, "dry_run")));
	json_decref(ev);

	say_ok(f, 5, "agent.progress", T0 + 1000, r,
	    "{\"quiesce\": %llu, \"state\": \"warning\"}");
	assert_false(quiesce_round_decided(r));
	say_ok(f, 5, "agent.closed", T0 + 61000, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"thunderbird\", "
	    "\"pid\": 4242}], \"refused\": [], \"killed\": []}");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_AGENT);
	assert_false(o.fallback_all);
	assert_int_equal(o.fallback_files->n, 0);
	assert_contains(o.reason, "1 app closed");
	assert_string_equal(quiesce_path_name(o.path), "agent");
	assert_false(quiesce_round_settled(r));	/* apps wait to reopen */
	assert_int_equal(quiesce_next_deadline(f->q), -1);

	assert_int_equal(resume(f, r, T0 + 90000, &to), 1);
	assert_int_equal(to, 5);
	assert_int_equal(resume(f, r, T0 + 90001, NULL), 0);	/* once */
	ev = quiesce_round_resume_event(r);
	assert_int_equal(json_integer_value(json_object_get(ev, "quiesce")),
	    quiesce_round_id(r));
	json_decref(ev);
	assert_int_equal(quiesce_next_deadline(f->q),
	    T0 + 90000 + QUIESCE_RESUME_TIMEOUT_S * 1000);
	say_ok(f, 5, "agent.resumed", T0 + 92000, r,
	    "{\"quiesce\": %llu, \"reopened\": [{\"name\": \"thunderbird\", "
	    "\"pid\": 5001}], \"failed\": []}");
	assert_true(quiesce_round_settled(r));
	assert_int_equal(quiesce_round_phase(r), QUIESCE_DONE);

	apps = details_get(r, "apps", NULL);
	a = json_array_get(json_object_get(apps, "closed"), 0);
	assert_string_equal(json_string_value(json_object_get(a, "name")),
	    "thunderbird");
	assert_int_equal(json_integer_value(json_object_get(a, "pid")), 4242);
	assert_string_equal(json_string_value(json_object_get(a, "user")),
	    "alice");
	a = json_array_get(json_object_get(apps, "reopened"), 0);
	assert_int_equal(json_integer_value(json_object_get(a, "pid")), 5001);
	assert_string_equal(json_string_value(details_get(r, "quiesce",
	    "path")), "agent");
}

static void
test_agent_with_nothing_open_takes_agent_path(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	/* every list missing: an empty answer */
	say_ok(f, 5, "agent.closed", T0 + 500, r, "{\"quiesce\": %llu}");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_AGENT);
	assert_contains(o.reason, "no app held the job's files");
}

static void
test_user_job_asks_only_its_owners_agents(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;

	login(f, "3", ALICE, "alice");
	login(f, "4", BOB, "bob");
	agent(f, 5, ALICE, "alice", "3");
	agent(f, 6, BOB, "bob", "4");
	login(f, "8", ALICE, "alice");
	agent(f, 7, ALICE, "alice", "8");
	r = plan(f);
	assert_targets(r, 2, (uint64_t)5, (uint64_t)7);
}

/* ---- deadlines ---- */

static void
test_deadline_counts_from_last_message(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;
	const int64_t trip = (60 + 60 + QUIESCE_MARGIN_S) * 1000;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	assert_int_equal(quiesce_next_deadline(f->q), T0 + trip);
	say_ok(f, 5, "agent.progress", T0 + 100000, r,
	    "{\"quiesce\": %llu, \"state\": \"closing\"}");
	assert_int_equal(quiesce_next_deadline(f->q), T0 + 100000 + trip);
	/* past the first deadline, inside the second: not late */
	assert_int_equal(quiesce_on_timeout(f->q, T0 + trip + 1), 0);
	assert_false(quiesce_round_decided(r));
	assert_int_equal(quiesce_on_timeout(f->q, T0 + 100000 + trip - 1), 0);
	assert_false(quiesce_round_decided(r));
	assert_int_equal(quiesce_on_timeout(f->q, T0 + 100000 + trip), 1);
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_true(o.fallback_all);
	assert_contains(o.reason, "alice's agent (session 3) did not answer "
	    "within 130 s");
	assert_int_equal(quiesce_next_deadline(f->q), -1);
}

static void
test_late_answer_is_recorded_and_resumed(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;
	uint64_t to = 0;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	assert_int_equal(quiesce_on_timeout(f->q, T0 + 200000), 1);
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	/* it closed an app after all: the app must come back */
	say_ok(f, 5, "agent.closed", T0 + 201000, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"gedit\", "
	    "\"pid\": 77}]}");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);	/* unchanged */
	assert_int_equal(json_array_size(details_get(r, "apps", "closed")), 1);
	assert_int_equal(resume(f, r, T0 + 300000, &to), 1);
	assert_int_equal(to, 5);
}

static void
test_unconfirmed_resume_and_one_answer_per_agent(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct vg_err err;
	uint64_t to = 0;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	assert_int_equal(quiesce_on_timeout(f->q, T0 + 200000), 1);
	assert_int_equal(resume(f, r, T0 + 200001, &to), 1);
	assert_int_equal(quiesce_on_timeout(f->q, T0 + 400000), 0);
	assert_true(quiesce_round_settled(r));	/* resume unconfirmed */
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    details_get(r, "agents", NULL), 0), "resume")), "unconfirmed");
	/* a second closed answer is refused */
	say_ok(f, 5, "agent.closed", T0 + 400100, r,
	    "{\"quiesce\": %llu, \"closed\": []}");
	assert_int_equal(say(f, 5, "agent.closed", T0 + 400200, r, &err,
	    "{\"quiesce\": %llu, \"closed\": []}"), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
}

static void
test_agent_disconnecting_before_answer_falls_back(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	assert_int_equal(quiesce_agent_gone(f->q, 5, T0 + 3000), 1);
	assert_null(quiesce_agent_find(f->q, 5));
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_contains(o.reason, "disconnected before it answered");
	assert_int_equal(resume(f, r, T0 + 4000, NULL), 0);
	assert_true(quiesce_round_settled(r));
}

static void
test_unreachable_agent_falls_back(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	quiesce_round_send_failed(f->q, r, 5, T0);
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_contains(o.reason, "could not be reached");
}

/* ---- refusals ---- */

static void
test_refused_app_files_go_to_fallback(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;
	json_t *a;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	say_ok(f, 5, "agent.closed", T0 + 5000, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"thunderbird\", "
	    "\"pid\": 4242}], \"refused\": [{\"name\": \"soffice\", "
	    "\"pid\": 4301, \"reason\": \"did not close within 60 s\", "
	    "\"files\": [\"/home/alice/Documents/q3.ods\", "
	    "\"/home/alice/Mail/inbox\"]}]}");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_false(o.fallback_all);
	assert_int_equal(o.fallback_files->n, 2);
	assert_string_equal(o.fallback_files->v[0],
	    "/home/alice/Documents/q3.ods");
	assert_string_equal(o.fallback_files->v[1], "/home/alice/Mail/inbox");
	assert_contains(o.reason, "soffice (alice, pid 4301) refused to "
	    "close: did not close within 60 s");
	a = json_array_get(details_get(r, "apps", "refused"), 0);
	assert_string_equal(json_string_value(json_object_get(a, "reason")),
	    "did not close within 60 s");
	assert_int_equal(json_array_size(json_object_get(a, "files")), 2);
	/* the app that closed is still reopened */
	assert_int_equal(resume(f, r, T0 + 9000, NULL), 1);
}

static void
test_refused_file_outside_sources_falls_back_entirely(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	say_ok(f, 5, "agent.closed", T0 + 5000, r,
	    "{\"quiesce\": %llu, \"refused\": [{\"name\": \"vim\", "
	    "\"pid\": 9, \"files\": [\"/home/alice/Documents/../.ssh/id\", "
	    "\"/home/alice/Documentsx/a\", \"/home/alice/Documents/ok\"]}]}");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_true(o.fallback_all);
	assert_int_equal(o.fallback_files->n, 1);
	assert_string_equal(o.fallback_files->v[0], "/home/alice/Documents/ok");
	assert_contains(o.reason, "no reason given");
}

/* ---- postpone ---- */

static void
test_user_postpones(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan_as(f, ALICE, "alice", 1, false);
	say_ok(f, 5, "agent.postpone", T0 + 2000, r, "{\"quiesce\": %llu}");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_POSTPONE);
	assert_string_equal(quiesce_path_name(o.path), "skip");
	assert_int_equal(o.postpone_s, 3600);
	assert_int_equal(o.postponed, 2);
	assert_contains(o.reason, "alice postponed the run (2 of at most 2 "
	    "times)");
	assert_true(json_is_true(details_get(r, "quiesce", "postponed")));
	/* the postponing agent closed nothing: nothing to resume */
	assert_int_equal(resume(f, r, T0 + 2001, NULL), 0);
	assert_true(quiesce_round_settled(r));
}

static void
test_postpone_over_the_limit_is_refused(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;
	struct vg_err err;
	json_t *ev;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan_as(f, ALICE, "alice", 2, false);	/* max-postpone 2 */
	ev = quiesce_round_event(r);
	assert_true(json_is_false(json_object_get(ev, "may_postpone")));
	json_decref(ev);
	assert_int_equal(say(f, 5, "agent.postpone", T0 + 2000, r, &err,
	    "{\"quiesce\": %llu}"), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_contains(err.msg, "may not be postponed");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_true(o.fallback_all);
	assert_contains(o.reason, "sent an answer that was ignored");
}

static void
test_postpone_cancels_the_other_agents(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;
	uint64_t to = 0;

	login(f, "3", ALICE, "alice");
	login(f, "4", BOB, "bob");
	agent(f, 5, ALICE, "alice", "3");
	agent(f, 6, BOB, "bob", "4");
	r = plan_as(f, 0, "root", 0, false);
	say_ok(f, 6, "agent.progress", T0 + 100, r,
	    "{\"quiesce\": %llu, \"state\": \"warning\"}");
	say_ok(f, 5, "agent.postpone", T0 + 200, r, "{\"quiesce\": %llu}");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_POSTPONE);
	assert_int_equal(quiesce_next_deadline(f->q), -1);
	assert_int_equal(resume(f, r, T0 + 300, &to), 1);
	assert_int_equal(to, 6);
}

static void
test_dry_run_never_postpones_nor_resumes(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;
	json_t *ev;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan_as(f, ALICE, "alice", 0, true);
	ev = quiesce_round_event(r);
	assert_true(json_is_true(json_object_get(ev, "dry_run")));
	assert_true(json_is_false(json_object_get(ev, "may_postpone")));
	json_decref(ev);
	say_ok(f, 5, "agent.closed", T0 + 100, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"thunderbird\", "
	    "\"pid\": 4242}]}");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_AGENT);
	assert_contains(o.reason, "dry run");
	assert_true(quiesce_round_settled(r));
	assert_int_equal(resume(f, r, T0 + 200, NULL), 0);
}

static void
test_named_apps_and_term_method_reach_the_agent(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	json_t *ev, *apps;

	job_def_free(f->def);
	f->def = job("close-apps = thunderbird, soffice\n"
	    "close-method = term\nwarn = 5s\nclose-timeout = 2m\n"
	    "force-close = yes\npostpone = 30m\n");
	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	ev = quiesce_round_event(r);
	apps = json_object_get(ev, "close_apps");
	assert_int_equal(json_array_size(apps), 2);
	assert_string_equal(json_string_value(json_array_get(apps, 0)),
	    "thunderbird");
	assert_string_equal(json_string_value(json_array_get(apps, 1)),
	    "soffice");
	assert_string_equal(json_string_value(json_object_get(ev,
	    "close_method")), "term");
	assert_int_equal(json_integer_value(json_object_get(ev, "warn_s")), 5);
	assert_int_equal(json_integer_value(json_object_get(ev,
	    "close_timeout_s")), 120);
	assert_true(json_is_true(json_object_get(ev, "force")));
	assert_int_equal(json_integer_value(json_object_get(ev,
	    "postpone_s")), 1800);
	json_decref(ev);
	/* warn + close-timeout + margin */
	assert_int_equal(quiesce_next_deadline(f->q),
	    T0 + (5 + 120 + QUIESCE_MARGIN_S) * 1000);
}

/* ---- root's job ---- */

static void
test_root_job_asks_every_agent_each_for_its_user(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;
	struct vg_err err;
	json_t *closed;

	login(f, "3", ALICE, "alice");
	login(f, "4", BOB, "bob");
	agent(f, 5, ALICE, "alice", "3");
	agent(f, 6, BOB, "bob", "4");
	r = plan_as(f, 0, "root", 0, false);
	assert_targets(r, 2, (uint64_t)5, (uint64_t)6);
	say_ok(f, 5, "agent.closed", T0 + 100, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"firefox\", "
	    "\"pid\": 100}]}");
	assert_false(quiesce_round_decided(r));
	/* bob cannot answer twice, nor for alice */
	say_ok(f, 6, "agent.closed", T0 + 200, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"emacs\", "
	    "\"pid\": 200}]}");
	assert_int_equal(say(f, 6, "agent.closed", T0 + 300, r, &err,
	    "{\"quiesce\": %llu, \"closed\": []}"), -1);
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_AGENT);
	closed = details_get(r, "apps", "closed");
	assert_int_equal(json_array_size(closed), 2);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(closed, 0), "user")), "alice");
	assert_int_equal(json_integer_value(json_object_get(
	    json_array_get(closed, 0), "uid")), ALICE);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(closed, 1), "user")), "bob");
	assert_int_equal(json_integer_value(json_object_get(
	    json_array_get(closed, 1), "uid")), BOB);
	assert_int_equal(resume(f, r, T0 + 400, NULL), 2);
}

static void
test_root_job_with_an_agentless_user_falls_back(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	login(f, "3", ALICE, "alice");
	login(f, "4", BOB, "bob");
	agent(f, 5, ALICE, "alice", "3");
	r = plan_as(f, 0, "root", 0, false);
	/* alice's agent is still asked: her apps close all the same */
	assert_targets(r, 1, (uint64_t)5);
	say_ok(f, 5, "agent.closed", T0 + 100, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"firefox\", "
	    "\"pid\": 100}]}");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_true(o.fallback_all);
	assert_string_equal(o.reason,
	    "bob is logged on (session 4) but has no agent");
}

/* ---- the registry and claims ---- */

static void
test_claim_of_another_uids_session_is_refused(void **state)
{
	struct fx *f = *state;
	struct vg_err err;
	json_t *params = json_pack("{s:s}", "session", "4");

	login(f, "4", BOB, "bob");
	vg_err_clear(&err);
	assert_int_equal(quiesce_agent_register(f->q, f->src, 5, ALICE,
	    "alice", params, T0, NULL, &err), -1);
	assert_int_equal(err.code, VG_ERR_PERM);
	assert_contains(err.msg, "session 4 belongs to uid 1001, not to this "
	    "agent's uid 1000");
	assert_int_equal(quiesce_agent_count(f->q), 0);
	json_decref(params);
}

static void
test_claim_of_unknown_session_is_refused(void **state)
{
	struct fx *f = *state;
	struct vg_err err;
	json_t *params = json_pack("{s:s}", "session", "99");

	vg_err_clear(&err);
	assert_int_equal(quiesce_agent_register(f->q, f->src, 5, ALICE,
	    "alice", params, T0, NULL, &err), -1);
	assert_int_equal(err.code, VG_ERR_PERM);
	assert_contains(err.msg, "no session \"99\"");
	json_decref(params);
}

static void
test_null_claim_takes_display_then_login_session(void **state)
{
	struct fx *f = *state;
	const struct quiesce_agent *a;
	struct vg_err err;

	login(f, "2", ALICE, "alice");
	login(f, "3", ALICE, "alice");
	assert_int_equal(sessions_fake_set_display(f->src, ALICE, "3"), 0);
	agent(f, 5, ALICE, "alice", NULL);
	assert_non_null(a = quiesce_agent_find(f->q, 5));
	assert_string_equal(a->session, "3");
	assert_string_equal(a->claimed, "");

	assert_int_equal(sessions_fake_set_display(f->src, ALICE, NULL), 0);
	agent(f, 6, ALICE, "alice", NULL);
	assert_string_equal(quiesce_agent_find(f->q, 6)->session, "2");

	/* bob has no session at all */
	vg_err_clear(&err);
	assert_int_equal(quiesce_agent_register(f->q, f->src, 7, BOB, "bob",
	    NULL, T0, NULL, &err), -1);
	assert_int_equal(err.code, VG_ERR_PERM);
	assert_contains(err.msg, "bob (uid 1001) has no login session");
}

static void
test_without_logind_the_connection_is_the_session(void **state)
{
	struct fx *f = *state;
	const struct quiesce_agent *a;
	struct quiesce_round *r;
	struct vg_err err;
	json_t *params = json_pack("{s:s}", "session", "4"), *res = NULL;
	json_t *list;

	sessions_fake_set_checks_claims(f->src, false);
	/* a claim means nothing here, even of a session nobody has */
	vg_err_clear(&err);
	assert_int_equal(quiesce_agent_register(f->q, f->src, 7, ALICE,
	    "alice", params, T0, &res, &err), 0);
	assert_string_equal(json_string_value(json_object_get(res, "session")),
	    "agent:7");
	assert_string_equal(json_string_value(json_object_get(res,
	    "tracked_by")), "fake");
	assert_non_null(a = quiesce_agent_find(f->q, 7));
	assert_string_equal(a->claimed, "4");
	/* no session listed, but the agent counts as one: it is asked */
	r = plan(f);
	assert_false(quiesce_round_decided(r));
	assert_targets(r, 1, (uint64_t)7);
	list = quiesce_sessions_json(f->q, "fake", NULL, 0, T0 + 5000);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(list, 0), "tracked_by")), "agent");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    json_array_get(list, 0), "agent"), "last_heard_ago_ms")), 5000);
	json_decref(list);
	json_decref(params);
	json_decref(res);
}

static void
test_register_twice_is_refused(void **state)
{
	struct fx *f = *state;
	struct vg_err err;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	vg_err_clear(&err);
	assert_int_equal(quiesce_agent_register(f->q, f->src, 5, ALICE,
	    "alice", NULL, T0, NULL, &err), -1);
	assert_int_equal(err.code, VG_ERR_EXISTS);
	assert_int_equal(quiesce_agent_count(f->q), 1);
}

static void
test_register_rejects_bad_params(void **state)
{
	static const char *bad[] = {
		"[1, 2]",
		"{\"session\": 3}",
		"{\"session\": \"a\\u0000b\"}",
		"{\"session\": [\"3\"]}",
		"{\"display\": false}",
		"{\"wayland\": \"yes\"}",
		"{\"agent_version\": {}}",
	};
	struct fx *f = *state;
	struct vg_err err;
	json_t *params;
	size_t i;

	login(f, "3", ALICE, "alice");
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		params = json_loads(bad[i], JSON_ALLOW_NUL | JSON_DECODE_ANY,
		    NULL);
		assert_non_null(params);
		vg_err_clear(&err);
		assert_int_equal(quiesce_agent_register(f->q, f->src, 5, ALICE,
		    "alice", params, T0, NULL, &err), -1);
		assert_int_equal(err.code, VG_ERR_PARSE);
		assert_contains(err.msg, "agent.register");
		json_decref(params);
	}
	assert_int_equal(quiesce_agent_count(f->q), 0);
}

static void
test_session_source_failure_is_reported(void **state)
{
	struct fx *f = *state;
	struct vg_err err;

	sessions_fake_fail_next_list(f->src);
	vg_err_clear(&err);
	assert_int_equal(quiesce_agent_register(f->q, f->src, 5, ALICE,
	    "alice", NULL, T0, NULL, &err), -1);
	assert_int_equal(err.code, VG_ERR_SYS);
	assert_contains(err.msg, "failed");
}

/* ---- hostile agents ---- */

static void
test_messages_from_unregistered_or_unknown_are_refused(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct vg_err err;

	login(f, "3", ALICE, "alice");
	login(f, "4", BOB, "bob");
	agent(f, 5, ALICE, "alice", "3");
	agent(f, 6, BOB, "bob", "4");
	r = plan(f);
	assert_int_equal(say(f, 99, "agent.closed", T0, r, &err,
	    "{\"quiesce\": %llu}"), -1);
	assert_int_equal(err.code, VG_ERR_PERM);
	assert_int_equal(say(f, 5, "agent.shutdown", T0, r, &err,
	    "{\"quiesce\": %llu}"), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	/* bob was not asked about alice's job */
	assert_int_equal(say(f, 6, "agent.closed", T0, r, &err,
	    "{\"quiesce\": %llu}"), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	assert_int_equal(say(f, 5, "agent.closed", T0, r, &err,
	    "{\"quiesce\": 12345, \"x\": %llu}"), -1);
	assert_int_equal(err.code, VG_ERR_NOTFOUND);
	assert_false(quiesce_round_decided(r));
}

static void
test_bad_progress_changes_nothing(void **state)
{
	static const char *bad[] = {
		"{\"quiesce\": %llu}",
		"{\"quiesce\": %llu, \"state\": 1}",
		"{\"quiesce\": %llu, \"state\": \"done\"}",
		"{\"quiesce\": \"%llu\", \"state\": \"warning\"}",
		"{\"quiesce\": -1, \"state\": \"warning\", \"x\": %llu}",
		"[%llu]",
	};
	struct fx *f = *state;
	struct quiesce_round *r;
	struct vg_err err;
	size_t i;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(say(f, 5, "agent.progress", T0 + 50000, r,
		    &err, bad[i]), -1);
		assert_int_equal(err.code, VG_ERR_PARSE);
		assert_contains(err.msg, "agent.progress");
	}
	/* the deadline still counts from the ask */
	assert_int_equal(quiesce_next_deadline(f->q),
	    T0 + (60 + 60 + QUIESCE_MARGIN_S) * 1000);
	assert_false(quiesce_round_decided(r));
}

static void
test_bad_closed_answers_are_ignored_and_fall_back(void **state)
{
	static const struct {
		const char	*json;
		const char	*field;
	} bad[] = {
		{ "{\"quiesce\": %llu, \"closed\": {}}", "\"closed\"" },
		{ "{\"quiesce\": %llu, \"closed\": [1]}", "closed[0]" },
		{ "{\"quiesce\": %llu, \"closed\": [{\"pid\": 1}]}", "\"name\"" },
		{ "{\"quiesce\": %llu, \"closed\": [{\"name\": 7, \"pid\": 1}]}",
		    "\"name\"" },
		{ "{\"quiesce\": %llu, \"closed\": [{\"name\": \"a\\u0000b\", "
		    "\"pid\": 1}]}", "\"name\"" },
		{ "{\"quiesce\": %llu, \"closed\": [{\"name\": \"\", "
		    "\"pid\": 1}]}", "\"name\"" },
		{ "{\"quiesce\": %llu, \"closed\": [{\"name\": \"a\", "
		    "\"pid\": \"1\"}]}", "\"pid\"" },
		{ "{\"quiesce\": %llu, \"closed\": [{\"name\": \"a\", "
		    "\"pid\": -4}]}", "\"pid\"" },
		{ "{\"quiesce\": %llu, \"closed\": [{\"name\": \"a\", "
		    "\"pid\": 99999999999}]}", "\"pid\"" },
		{ "{\"quiesce\": %llu, \"closed\": [{\"name\": \"a\"}]}",
		    "\"pid\"" },
		{ "{\"quiesce\": %llu, \"refused\": 3}", "\"refused\"" },
		{ "{\"quiesce\": %llu, \"refused\": [{\"name\": \"a\", "
		    "\"pid\": 2, \"files\": \"/home\"}]}", "files" },
		{ "{\"quiesce\": %llu, \"refused\": [{\"name\": \"a\", "
		    "\"pid\": 2, \"files\": [5]}]}", "files[0]" },
		{ "{\"quiesce\": %llu, \"refused\": [{\"name\": \"a\", "
		    "\"pid\": 2, \"reason\": 5}]}", "\"reason\"" },
		{ "{\"quiesce\": %llu, \"killed\": [5]}", "killed[0]" },
		{ "{\"quiesce\": %llu, \"killed\": \"x\"}", "\"killed\"" },
	};
	struct vg_err err;
	struct quiesce_outcome o;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct fx *f;
		struct quiesce_round *r;

		setup((void **)&f);
		login(f, "3", ALICE, "alice");
		agent(f, 5, ALICE, "alice", "3");
		r = plan(f);
		if (say(f, 5, "agent.closed", T0 + 10, r, &err,
		    bad[i].json) != -1)
			fail_msg("accepted: %s", bad[i].json);
		assert_int_equal(err.code, VG_ERR_PARSE);
		assert_contains(err.msg, "agent.closed");
		assert_contains(err.msg, bad[i].field);
		o = outcome(r);
		assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
		assert_true(o.fallback_all);
		assert_contains(o.reason, "ignored");
		/* nothing of the bad answer reached the record */
		assert_int_equal(json_array_size(details_get(r, "apps",
		    "closed")), 0);
		assert_int_equal(json_array_size(details_get(r, "apps",
		    "refused")), 0);
		teardown((void **)&f);
	}
}

static void
test_control_bytes_in_names_are_replaced(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	json_t *a;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	say_ok(f, 5, "agent.closed", T0 + 10, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"evil\\u001b[2J\", "
	    "\"pid\": 3}], \"killed\": [\"zap\"]}");
	a = json_array_get(details_get(r, "apps", "closed"), 0);
	assert_string_equal(json_string_value(json_object_get(a, "name")),
	    "evil?[2J");
	a = json_array_get(details_get(r, "apps", "killed"), 0);
	assert_string_equal(json_string_value(json_object_get(a, "name")),
	    "zap");
}

static void
test_resume_answers_are_checked(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct vg_err err;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	/* too early: no resume was sent */
	assert_int_equal(say(f, 5, "agent.resumed", T0 + 1, r, &err,
	    "{\"quiesce\": %llu}"), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	say_ok(f, 5, "agent.closed", T0 + 2, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"a\", \"pid\": 3}]}");
	assert_int_equal(resume(f, r, T0 + 3, NULL), 1);
	assert_int_equal(say(f, 5, "agent.resumed", T0 + 4, r, &err,
	    "{\"quiesce\": %llu, \"reopened\": [{\"name\": 1}]}"), -1);
	assert_int_equal(err.code, VG_ERR_PARSE);
	assert_int_equal(say(f, 5, "agent.resumed", T0 + 4, r, &err,
	    "{\"quiesce\": %llu, \"failed\": [{\"name\": \"a\", "
	    "\"reason\": []}]}"), -1);
	assert_int_equal(err.code, VG_ERR_PARSE);
	assert_false(quiesce_round_settled(r));
	say_ok(f, 5, "agent.resumed", T0 + 5, r,
	    "{\"quiesce\": %llu, \"failed\": [{\"name\": \"a\", "
	    "\"reason\": \"exec failed\"}]}");
	assert_true(quiesce_round_settled(r));
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    details_get(r, "apps", "reopen_failed"), 0), "reason")),
	    "exec failed");
}

static void
test_progress_after_the_decision_is_refused(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct vg_err err;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	assert_int_equal(quiesce_on_timeout(f->q, T0 + 500000), 1);
	assert_int_equal(say(f, 5, "agent.progress", T0 + 500001, r, &err,
	    "{\"quiesce\": %llu, \"state\": \"warning\"}"), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_int_equal(say(f, 5, "agent.postpone", T0 + 500002, r, &err,
	    "{\"quiesce\": %llu}"), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_contains(err.msg, "too late to postpone");
}

/* ---- the service dies, or the run ends early ---- */

static void
test_run_interrupted_with_apps_closed_is_recorded(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	uint64_t to = 0;
	json_t *q;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	say_ok(f, 5, "agent.closed", T0 + 10, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"soffice\", "
	    "\"pid\": 31}]}");
	/* mid-copy: what a record written now would say */
	q = details_get(r, "quiesce", NULL);
	assert_string_equal(json_string_value(json_object_get(q, "phase")),
	    "decided");
	assert_true(json_is_false(json_object_get(q, "interrupted")));
	assert_int_equal(json_array_size(details_get(r, "apps", "closed")), 1);
	assert_int_equal(json_array_size(details_get(r, "apps", "reopened")),
	    0);

	quiesce_round_interrupt(r, "the service is stopping");
	q = details_get(r, "quiesce", NULL);
	assert_true(json_is_true(json_object_get(q, "interrupted")));
	assert_string_equal(json_string_value(json_object_get(q,
	    "interrupt_reason")), "the service is stopping");
	/* the decision stands; the closed app still gets its resume */
	assert_string_equal(json_string_value(json_object_get(q, "path")),
	    "agent");
	assert_int_equal(resume(f, r, T0 + 20, &to), 1);
	assert_int_equal(to, 5);
}

static void
test_run_interrupted_while_asking_falls_back(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	struct quiesce_outcome o;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	quiesce_round_interrupt(r, "cancelled by alice");
	o = outcome(r);
	assert_int_equal(o.path, QUIESCE_PATH_FALLBACK);
	assert_contains(o.reason, "interrupted before the agents answered: "
	    "cancelled by alice");
	assert_int_equal(quiesce_next_deadline(f->q), -1);
	/* the agent may be mid-close: it is told to reopen */
	assert_int_equal(resume(f, r, T0 + 20, NULL), 1);
}

static void
test_agent_gone_after_closing_is_noted(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	json_t *a;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	say_ok(f, 5, "agent.closed", T0 + 10, r,
	    "{\"quiesce\": %llu, \"closed\": [{\"name\": \"x\", \"pid\": 3}]}");
	assert_int_equal(quiesce_agent_gone(f->q, 5, T0 + 20), 1);
	a = json_array_get(details_get(r, "agents", NULL), 0);
	assert_contains(json_string_value(json_object_get(a, "note")),
	    "reopens them itself");
	assert_int_equal(resume(f, r, T0 + 30, NULL), 0);
	assert_true(quiesce_round_settled(r));
}

static void
test_next_deadline_is_the_earliest_of_all_rounds(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r1, *r2;
	const int64_t trip = (60 + 60 + QUIESCE_MARGIN_S) * 1000;

	login(f, "3", ALICE, "alice");
	agent(f, 5, ALICE, "alice", "3");
	r1 = plan(f);
	r2 = plan(f);
	assert_int_not_equal(quiesce_round_id(r1), quiesce_round_id(r2));
	say_ok(f, 5, "agent.progress", T0 + 7000, r1,
	    "{\"quiesce\": %llu, \"state\": \"warning\"}");
	assert_int_equal(quiesce_next_deadline(f->q), T0 + trip);
	assert_ptr_equal(quiesce_round_find(f->q, quiesce_round_id(r2)), r2);
	quiesce_round_free(f->q, r2);
	assert_null(quiesce_round_find(f->q, quiesce_round_id(r1) + 1));
	assert_int_equal(quiesce_next_deadline(f->q), T0 + 7000 + trip);
}

static void
test_sessions_json_shows_agents_and_when_heard(void **state)
{
	struct fx *f = *state;
	struct quiesce_round *r;
	json_t *list, *s0, *s1;

	login(f, "3", ALICE, "alice");
	login(f, "4", BOB, "bob");
	agent(f, 5, ALICE, "alice", "3");
	r = plan(f);
	say_ok(f, 5, "agent.progress", T0 + 2000, r,
	    "{\"quiesce\": %llu, \"state\": \"warning\"}");
	list = quiesce_sessions_json(f->q, "fake", f->ss, f->nss, T0 + 9000);
	assert_int_equal(json_array_size(list), 2);
	s0 = json_array_get(list, 0);
	s1 = json_array_get(list, 1);
	assert_string_equal(json_string_value(json_object_get(s0, "user")),
	    "alice");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    s0, "agent"), "last_heard_ago_ms")), 7000);
	assert_string_equal(json_string_value(json_object_get(s0,
	    "tracked_by")), "fake");
	assert_true(json_is_null(json_object_get(s1, "agent")));
	json_decref(list);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_nobody_logged_on_falls_back_at_once),
		T(test_nobody_logged_on_with_skip_skips),
		T(test_owner_not_logged_on_while_another_user_is),
		T(test_greeter_background_and_closing_sessions_do_not_count),
		T(test_session_without_agent_falls_back_at_once),
		T(test_close_apps_none_asks_nobody),
		T(test_agent_closes_apps_and_reopens_them),
		T(test_agent_with_nothing_open_takes_agent_path),
		T(test_user_job_asks_only_its_owners_agents),
		T(test_deadline_counts_from_last_message),
		T(test_late_answer_is_recorded_and_resumed),
		T(test_unconfirmed_resume_and_one_answer_per_agent),
		T(test_agent_disconnecting_before_answer_falls_back),
		T(test_unreachable_agent_falls_back),
		T(test_refused_app_files_go_to_fallback),
		T(test_refused_file_outside_sources_falls_back_entirely),
		T(test_user_postpones),
		T(test_postpone_over_the_limit_is_refused),
		T(test_postpone_cancels_the_other_agents),
		T(test_dry_run_never_postpones_nor_resumes),
		T(test_named_apps_and_term_method_reach_the_agent),
		T(test_root_job_asks_every_agent_each_for_its_user),
		T(test_root_job_with_an_agentless_user_falls_back),
		T(test_claim_of_another_uids_session_is_refused),
		T(test_claim_of_unknown_session_is_refused),
		T(test_null_claim_takes_display_then_login_session),
		T(test_without_logind_the_connection_is_the_session),
		T(test_register_twice_is_refused),
		T(test_register_rejects_bad_params),
		T(test_session_source_failure_is_reported),
		T(test_messages_from_unregistered_or_unknown_are_refused),
		T(test_bad_progress_changes_nothing),
		T(test_bad_closed_answers_are_ignored_and_fall_back),
		T(test_control_bytes_in_names_are_replaced),
		T(test_resume_answers_are_checked),
		T(test_progress_after_the_decision_is_refused),
		T(test_run_interrupted_with_apps_closed_is_recorded),
		T(test_run_interrupted_while_asking_falls_back),
		T(test_agent_gone_after_closing_is_noted),
		T(test_next_deadline_is_the_earliest_of_all_rounds),
		T(test_sessions_json_shows_agents_and_when_heard),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
