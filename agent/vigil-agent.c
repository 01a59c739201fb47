/*
 * vigil-agent: the session agent.  It runs as the user, in their session,
 * registers that session with vigild, and on vigild's "quiesce" finds the
 * user's apps that hold a job's files, warns the user, closes the apps
 * gracefully and, on "resume", reopens exactly those it closed
 * (docs/protocol.md, "Session agents").
 *
 * It never exits because vigild is away: it reconnects with a backoff from
 * 1 s to 60 s.  Its own safety rules:
 *   - apps it closed are reopened by itself when vigild says nothing for
 *     max-runtime (the quiesce's max_runtime_s, else 6 h) after closing;
 *   - apps it closed are reopened at once when the connection to vigild
 *     drops (vigild then records the resume as failed): an agent that can
 *     no longer hear "resume" must not keep them closed;
 *   - apps it closed are reopened when the agent is told to stop, unless
 *     the session itself is closing.
 * The relaunch details (argv, working folder, environment) never leave the
 * agent and are never logged.
 *
 * One agent per user: a lock on $XDG_RUNTIME_DIR/vigil-agent.lock makes a
 * second instance (the XDG autostart entry where the systemd user unit
 * already runs one) exit 0 quietly.
 *
 * --simulate FILE runs one quiesce/resume cycle from a JSON file (the
 * quiesce event or its data) without vigild, printing each message it
 * would send as a JSON line on stdout.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-login.h>

#include "agent/apps.h"
#include "agent/client.h"
#include "agent/closer.h"
#include "agent/warn.h"
#include "common/err.h"
#include "common/log.h"

#define AGENT_VERSION		VIGIL_VERSION
#define AGENT_CALL_MS		10000
#define AGENT_BACKOFF_MAX_S	60
#define AGENT_PROGRESS_S	10
#define AGENT_MAX_RUNTIME_S	(6 * 3600)
#define AGENT_SETTLE_MS		300
#define AGENT_KEEP_DONE_MS	(3600 * 1000)	/* answer a late resume */
#define AGENT_DURATION_MAX	(7 * 86400)
#define AGENT_LIST_MAX		4096		/* sources, names */
#define AGENT_FILES_SENT	64		/* per refused app */

enum agent_qstate {
	Q_WARNING = 0,		/* counting down */
	Q_CLOSED,		/* apps closed, waiting for resume */
	Q_REOPENED,		/* reopened by ourselves; keeps the answer */
};

/* One quiesce request in progress. */
struct agent_q {
	struct agent_q	*next;
	int64_t		 id, run;
	char		*job;		/* escaped for display */
	char	       **sources;
	size_t		 nsources;
	char	       **names;
	size_t		 nnames;
	bool		 close_none;
	enum closer_method method;
	int		 warn_s, timeout_s;
	bool		 force, may_postpone, dry_run;
	int64_t		 max_runtime_s;
	enum agent_qstate state;
	struct vg_applist *apps;	/* found (warning), then closed */
	int64_t		 warn_deadline, next_progress, max_deadline;
	int64_t		 sim_resume_at, drop_at;
	json_t		*resumed;	/* the answer, once reopened */
};

struct agent {
	const char	*socket_path;
	bool		 once;
	const char	*simulate;
	int		 hold_s;
	int64_t		 max_runtime_s;
	struct vg_client *c;
	bool		 broken;
	bool		 ever_connected;
	int		 backoff_s;
	int64_t		 next_connect;
	char		 last_fail[256];
	char		*session;
	struct vg_warn	*warn;
	struct agent_q	*qs;
};

static volatile sig_atomic_t agent_stop;

static void
agent_on_signal(int sig)
{
	agent_stop = sig;
}

static int64_t
agent_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A JSON string of untrusted bytes, escaped for display. */
static json_t *
agent_jstr(const char *s)
{
	json_t *j;
	char *e;

	if (s == NULL)
		return json_null();
	if ((e = log_escape(s)) == NULL)
		return json_string("?");
	j = json_string(e);
	free(e);
	return j != NULL ? j : json_string("?");
}

static void
agent_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

static void
agent_q_free(struct agent_q *q)
{
	if (q == NULL)
		return;
	free(q->job);
	agent_strv_free(q->sources, q->nsources);
	agent_strv_free(q->names, q->nnames);
	apps_list_free(q->apps);
	json_decref(q->resumed);
	free(q);
}

static void
agent_q_unlink(struct agent *a, struct agent_q *q)
{
	struct agent_q **pp;

	for (pp = &a->qs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	agent_q_free(q);
}

static struct agent_q *
agent_q_find(struct agent *a, int64_t id)
{
	struct agent_q *q;

	for (q = a->qs; q != NULL; q = q->next)
		if (q->id == id)
			return q;
	return NULL;
}

/* ---- talking to vigild ---- */

/*
 * Send a message (takes params).  In simulate mode, print it.  1 when
 * vigild refused it (and said why: logged), 0 otherwise: sent, printed, or
 * not sent for want of a connection (-1 would tell the caller nothing it
 * can act on: the connection is marked broken and reconnected).
 */
static int
agent_send(struct agent *a, const char *method, json_t *params)
{
	struct vg_err err;
	json_t *res = NULL, *o;
	char *s;
	int rc;

	if (a->simulate != NULL) {
		o = json_pack("{s:s, s:O}", "method", method, "params",
		    params);
		if (o != NULL && (s = json_dumps(o, JSON_COMPACT |
		    JSON_SORT_KEYS)) != NULL) {
			printf("%s\n", s);
			fflush(stdout);
			free(s);
		}
		json_decref(o);
		json_decref(params);
		return 0;
	}
	if (a->c == NULL || a->broken) {
		log_debug("not connected to vigild: %s not sent", method);
		json_decref(params);
		return 0;
	}
	vg_err_clear(&err);
	rc = client_call(a->c, method, params, &res, NULL, AGENT_CALL_MS,
	    &err);
	if (rc == 1)
		log_warnx("vigild refused %s: %s", method, err.msg);
	else if (rc == -1 && err.code != VG_ERR_CANCELLED) {
		log_warnx("%s: %s", method, err.msg);
		a->broken = true;
	}
	json_decref(res);
	json_decref(params);
	return rc == 1;
}

/* 1 when vigild refused it: it no longer waits on this agent. */
static int
agent_progress(struct agent *a, struct agent_q *q, const char *state)
{
	return agent_send(a, "agent.progress", json_pack("{s:I, s:s}",
	    "quiesce",
	    (json_int_t)q->id, "state", state));
}

struct agent_progress_arg {
	struct agent	*a;
	struct agent_q	*q;
};

static void
agent_progress_cb(void *arg)
{
	struct agent_progress_arg *p = arg;

	(void)agent_progress(p->a, p->q, "closing");
}

/* Answer CLOSED with nothing closed (and why, when something failed). */
static void
agent_closed_empty(struct agent *a, int64_t id, const char *error)
{
	json_t *p;

	p = json_pack("{s:I, s:[], s:[], s:[]}", "quiesce", (json_int_t)id,
	    "closed", "refused", "killed");
	if (p != NULL && error != NULL)
		json_object_set_new(p, "error", agent_jstr(error));
	agent_send(a, "agent.closed", p);
}

/* ---- parsing a quiesce ---- */

static int
agent_int(json_t *data, const char *key, int64_t lo, int64_t hi,
    int64_t dflt, int64_t *out, char *why, size_t whylen)
{
	json_t *v = json_object_get(data, key);

	if (v == NULL || json_is_null(v)) {
		if (dflt < lo) {
			snprintf(why, whylen, "quiesce needs %s", key);
			return -1;
		}
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi) {
		snprintf(why, whylen, "quiesce: %s must be an integer from "
		    "%lld to %lld", key, (long long)lo, (long long)hi);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

static int
agent_bool(json_t *data, const char *key, bool dflt, bool *out, char *why,
    size_t whylen)
{
	json_t *v = json_object_get(data, key);

	if (v == NULL || json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_boolean(v)) {
		snprintf(why, whylen, "quiesce: %s must be true or false",
		    key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

/* A string list; each item checked by kind: 's' absolute path, 'n'
 * executable name. */
static int
agent_strlist(json_t *arr, const char *key, int kind, char ***out,
    size_t *n, char *why, size_t whylen)
{
	const char *s;
	size_t i, len;
	json_t *v;

	*out = NULL;
	*n = 0;
	if (!json_is_array(arr) || json_array_size(arr) > AGENT_LIST_MAX) {
		snprintf(why, whylen, "quiesce: %s must be a list of at most "
		    "%d strings", key, AGENT_LIST_MAX);
		return -1;
	}
	if ((*out = calloc(json_array_size(arr) + 1, sizeof **out)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	json_array_foreach(arr, i, v) {
		s = json_string_value(v);
		len = json_string_length(v);
		if (s == NULL || len == 0 || strlen(s) != len || len >
		    PATH_MAX || (kind == 's' && s[0] != '/') ||
		    (kind == 'n' && (strchr(s, '/') != NULL || len > 255))) {
			snprintf(why, whylen, "quiesce: %s item %zu must be "
			    "%s", key, i, kind == 's' ? "an absolute path" :
			    "an executable name (no '/', at most 255 bytes)");
			return -1;
		}
		if (((*out)[i] = strdup(s)) == NULL) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
		(*n)++;
	}
	return 0;
}

static struct agent_q *
agent_q_parse(struct agent *a, json_t *data, int64_t *id, char *why,
    size_t whylen)
{
	struct agent_q *q = NULL;
	const char *s;
	json_t *ca;
	int64_t v;

	*id = 0;
	if (!json_is_object(data)) {
		snprintf(why, whylen, "quiesce without data");
		return NULL;
	}
	if (agent_int(data, "quiesce", 1, INT64_MAX, 0, id, why, whylen) ==
	    -1)
		return NULL;
	if ((q = calloc(1, sizeof *q)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	q->id = *id;
	if (agent_int(data, "run", 0, INT64_MAX, 0, &q->run, why, whylen) ==
	    -1)
		goto fail;
	s = json_string_value(json_object_get(data, "job"));
	if ((q->job = log_escape(s != NULL ? s : "?")) == NULL)
		goto fail;
	if (json_object_get(data, "sources") == NULL) {
		if ((q->sources = calloc(1, sizeof *q->sources)) == NULL)
			goto fail;
	} else if (agent_strlist(json_object_get(data, "sources"), "sources",
	    's', &q->sources, &q->nsources, why, whylen) == -1)
		goto fail;
	ca = json_object_get(data, "close_apps");
	if (ca == NULL || (json_is_string(ca) && strcmp(json_string_value(ca),
	    "auto") == 0))
		;
	else if (json_is_string(ca) && strcmp(json_string_value(ca),
	    "none") == 0)
		q->close_none = true;
	else if (json_is_array(ca)) {
		if (agent_strlist(ca, "close_apps", 'n', &q->names,
		    &q->nnames, why, whylen) == -1)
			goto fail;
	} else {
		snprintf(why, whylen, "quiesce: close_apps must be \"auto\", "
		    "\"none\" or a list of executable names");
		goto fail;
	}
	s = json_string_value(json_object_get(data, "close_method"));
	if (s == NULL || strcmp(s, "window") == 0)
		q->method = CLOSER_METHOD_WINDOW;
	else if (strcmp(s, "term") == 0)
		q->method = CLOSER_METHOD_TERM;
	else {
		snprintf(why, whylen, "quiesce: close_method must be "
		    "\"window\" or \"term\"");
		goto fail;
	}
	if (agent_int(data, "warn_s", 0, AGENT_DURATION_MAX, 60, &v, why,
	    whylen) == -1)
		goto fail;
	q->warn_s = (int)v;
	if (agent_int(data, "close_timeout_s", 0, AGENT_DURATION_MAX, 60, &v,
	    why, whylen) == -1)
		goto fail;
	q->timeout_s = (int)v;
	if (agent_int(data, "max_runtime_s", 1, AGENT_DURATION_MAX,
	    a->max_runtime_s, &q->max_runtime_s, why, whylen) == -1)
		goto fail;
	if (agent_bool(data, "force", false, &q->force, why, whylen) == -1 ||
	    agent_bool(data, "may_postpone", false, &q->may_postpone, why,
	    whylen) == -1 ||
	    agent_bool(data, "dry_run", false, &q->dry_run, why, whylen) ==
	    -1)
		goto fail;
	return q;
fail:
	agent_q_free(q);
	return NULL;
}

/* ---- the steps ---- */

static int
agent_find(struct agent_q *q, struct vg_applist **out, struct vg_err *err)
{
	struct apps_query aq;

	memset(&aq, 0, sizeof aq);
	aq.sources = (const char *const *)q->sources;
	aq.nsources = q->nsources;
	aq.names = (const char *const *)q->names;
	aq.nnames = q->nnames;
	aq.uid = getuid();
	aq.self = getpid();
	return apps_find(&aq, out, err);
}

static json_t *
agent_files_json(const struct vg_app *app)
{
	json_t *f = json_array();
	size_t i;

	for (i = 0; app->files != NULL && app->files[i] != NULL &&
	    i < AGENT_FILES_SENT; i++)
		json_array_append_new(f, agent_jstr(app->files[i]));
	return f;
}

static void
agent_dry_run(struct agent *a, struct agent_q *q)
{
	json_t *closed, *refused, *o, *p;
	const char *how;
	char why[256];
	size_t i;

	closed = json_array();
	refused = json_array();
	for (i = 0; i < q->apps->n; i++) {
		const struct vg_app *app = &q->apps->v[i];

		how = closer_plan(app, q->method, why, sizeof why);
		o = json_pack("{s:o, s:i, s:o, s:I}", "name",
		    agent_jstr(app->name), "pid", (int)app->pid, "files",
		    agent_files_json(app), "nfiles", (json_int_t)app->nfiles);
		if (how != NULL) {
			json_object_set_new(o, "method", json_string(how));
			json_array_append_new(closed, o);
		} else {
			json_object_set_new(o, "reason", json_string(why));
			json_array_append_new(refused, o);
		}
	}
	p = json_pack("{s:I, s:o, s:o, s:[], s:b}", "quiesce",
	    (json_int_t)q->id, "closed", closed, "refused", refused,
	    "killed", "dry_run", 1);
	agent_send(a, "agent.closed", p);
}

/* Unique display names of the apps, joined for a message. */
static char *
agent_app_names(const struct vg_applist *l)
{
	const char **v;
	char *s = NULL, **esc;
	size_t i, j, n = 0;
	bool dup;

	if ((v = calloc(l->n + 1, sizeof *v)) == NULL ||
	    (esc = calloc(l->n + 1, sizeof *esc)) == NULL) {
		free(v);
		return NULL;
	}
	for (i = 0; i < l->n; i++) {
		if ((esc[i] = log_escape(l->v[i].name)) == NULL)
			goto out;
		for (j = 0, dup = false; j < n && !dup; j++)
			dup = strcmp(v[j], esc[i]) == 0;
		if (!dup)
			v[n++] = esc[i];
	}
	s = warn_join_names(v, n);
out:
	for (i = 0; i < l->n; i++)
		free(esc[i]);
	free(esc);
	free(v);
	return s;
}

static void
agent_warn(struct agent *a, struct agent_q *q)
{
	char summary[512], *names, *body = NULL;

	names = agent_app_names(q->apps);
	snprintf(summary, sizeof summary, "Backup '%s' starts in %d s",
	    q->job, q->warn_s);
	if (asprintf(&body, "%s will be closed and reopened afterwards.%s",
	    names != NULL ? names : "Some programs", q->may_postpone ?
	    " Save your work, or choose Postpone." : " Save your work.") ==
	    -1)
		body = NULL;
	log_info("job %s: warning the user for %d s before closing %s",
	    q->job, q->warn_s, names != NULL ? names : "apps");
	if (body != NULL)
		(void)warn_show(a->warn, summary, body, q->warn_s,
		    q->may_postpone);
	free(body);
	free(names);
}

/* Close the apps of q now and answer CLOSED. */
static void
agent_close(struct agent *a, struct agent_q *q)
{
	struct agent_progress_arg pa;
	struct closer_result *res = NULL;
	struct closer_opts o;
	struct vg_applist *l = NULL, *kept = NULL;
	struct vg_err err;
	json_t *closed, *refused, *killed, *e;
	size_t i;

	/* A late agent (asleep through the countdown, or slow) is refused:
	 * vigild has given up on it and may have copied already.  Closing now
	 * would close the user's apps for nothing; answer nothing more. */
	if (agent_progress(a, q, "closing") == 1) {
		log_warnx("job %s: vigild no longer waits on quiesce %lld: "
		    "closing nothing", q->job, (long long)q->id);
		agent_q_unlink(a, q);
		return;
	}
	/* Look again: in the countdown the user may have opened or closed
	 * something. */
	vg_err_clear(&err);
	if (agent_find(q, &l, &err) == 0) {
		apps_list_free(q->apps);
		q->apps = l;
		l = NULL;
	} else
		log_warnx("job %s: %s; closing the apps found before",
		    q->job, err.msg);
	memset(&o, 0, sizeof o);
	o.method = q->method;
	o.timeout_s = q->timeout_s;
	o.force = q->force;
	pa.a = a;
	pa.q = q;
	o.progress = agent_progress_cb;
	o.arg = &pa;
	o.progress_s = AGENT_PROGRESS_S;
	closed = json_array();
	refused = json_array();
	killed = json_array();
	if ((kept = calloc(1, sizeof *kept)) == NULL ||
	    (q->apps->n > 0 && (res = calloc(q->apps->n, sizeof *res)) ==
	    NULL) || closer_close(q->apps, &o, res, &err) == -1) {
		if (kept == NULL || res == NULL)
			vg_err_sys(&err, "closing apps");
		log_warnx("job %s: %s", q->job, err.msg);
		json_decref(closed);
		json_decref(refused);
		json_decref(killed);
		agent_closed_empty(a, q->id, err.msg);
		apps_list_free(kept);
		free(res);
		agent_q_unlink(a, q);
		return;
	}
	for (i = 0; i < q->apps->n; i++) {
		struct vg_app *app = &q->apps->v[i];

		switch (res[i].outcome) {
		case CLOSER_CLOSED:
		case CLOSER_KILLED:
			if (strcmp(res[i].how, "gone") == 0) {
				log_debug("job %s: pid %d exited by itself",
				    q->job, (int)app->pid);
				break;
			}
			log_info("job %s: closed %s (pid %d) by %s", q->job,
			    app->name, (int)app->pid, res[i].how);
			e = json_pack("{s:o, s:i, s:s}", "name",
			    agent_jstr(app->name), "pid", (int)app->pid,
			    "how", res[i].how);
			json_array_append_new(closed, e);
			if (res[i].outcome == CLOSER_KILLED)
				json_array_append_new(killed,
				    agent_jstr(app->name));
			if (apps_list_take(kept, app) == -1)
				log_warnx("job %s: out of memory: %s will "
				    "not be reopened", q->job, app->name);
			break;
		case CLOSER_REFUSED:
			log_info("job %s: %s (pid %d) refused: %s", q->job,
			    app->name, (int)app->pid, res[i].reason);
			e = json_pack("{s:o, s:i, s:s, s:o, s:I}", "name",
			    agent_jstr(app->name), "pid", (int)app->pid,
			    "reason", res[i].reason, "files",
			    agent_files_json(app), "nfiles",
			    (json_int_t)app->nfiles);
			json_array_append_new(refused, e);
			break;
		}
	}
	free(res);
	apps_list_free(q->apps);
	q->apps = kept;
	agent_send(a, "agent.closed", json_pack("{s:I, s:o, s:o, s:o}",
	    "quiesce", (json_int_t)q->id, "closed", closed, "refused",
	    refused, "killed", killed));
	if (q->apps->n == 0) {
		agent_q_unlink(a, q);
		return;
	}
	q->state = Q_CLOSED;
	q->max_deadline = agent_now() + q->max_runtime_s * 1000;
	q->sim_resume_at = agent_now() + (int64_t)a->hold_s * 1000;
}

/* Reopen the apps of q; the agent.resumed params (new reference). */
static json_t *
agent_reopen(struct agent_q *q)
{
	json_t *reopened, *failed;
	struct vg_err err;
	size_t i;
	pid_t pid;

	reopened = json_array();
	failed = json_array();
	for (i = 0; q->apps != NULL && i < q->apps->n; i++) {
		const struct vg_app *app = &q->apps->v[i];

		vg_err_clear(&err);
		if (closer_relaunch(app, AGENT_SETTLE_MS, &pid, &err) == 0) {
			log_info("job %s: reopened %s (pid %d)", q->job,
			    app->name, (int)pid);
			json_array_append_new(reopened, json_pack("{s:o, "
			    "s:i}", "name", agent_jstr(app->name), "pid",
			    (int)pid));
		} else {
			log_warnx("job %s: %s", q->job, err.msg);
			json_array_append_new(failed, json_pack("{s:o, s:o}",
			    "name", agent_jstr(app->name), "reason",
			    agent_jstr(err.msg)));
		}
	}
	apps_list_free(q->apps);
	q->apps = NULL;
	return json_pack("{s:I, s:o, s:o}", "quiesce", (json_int_t)q->id,
	    "reopened", reopened, "failed", failed);
}

static void
agent_on_quiesce(struct agent *a, json_t *data)
{
	struct agent_q *q;
	struct vg_err err;
	char why[512];
	int64_t id;

	if ((q = agent_q_parse(a, data, &id, why, sizeof why)) == NULL) {
		log_warnx("%s", why);
		if (id > 0)
			agent_closed_empty(a, id, why);
		return;
	}
	if (agent_q_find(a, id) != NULL) {
		log_debug("quiesce %lld again: ignored", (long long)id);
		agent_q_free(q);
		return;
	}
	log_set_context(q->job, q->run);
	if (q->close_none) {
		agent_closed_empty(a, q->id, NULL);
		goto done;
	}
	vg_err_clear(&err);
	if (agent_find(q, &q->apps, &err) == -1) {
		log_warnx("job %s: %s", q->job, err.msg);
		agent_closed_empty(a, q->id, err.msg);
		goto done;
	}
	if (q->apps->n == 0) {
		log_info("job %s: no app of ours holds its files", q->job);
		agent_closed_empty(a, q->id, NULL);
		goto done;
	}
	if (q->dry_run) {
		agent_dry_run(a, q);
		goto done;
	}
	q->next = a->qs;
	a->qs = q;
	q->state = Q_WARNING;
	if (q->warn_s > 0) {
		agent_warn(a, q);
		agent_progress(a, q, "warning");
		q->warn_deadline = agent_now() + (int64_t)q->warn_s * 1000;
		q->next_progress = agent_now() + AGENT_PROGRESS_S * 1000;
	} else
		agent_close(a, q);
	log_set_context(NULL, 0);
	return;
done:
	log_set_context(NULL, 0);
	agent_q_free(q);
}

static void
agent_on_resume(struct agent *a, json_t *data)
{
	struct agent_q *q;
	json_t *p, *idv;
	int64_t id;

	idv = json_object_get(data, "quiesce");
	if (!json_is_integer(idv) || (id = json_integer_value(idv)) <= 0) {
		log_warnx("resume without a quiesce id: ignored");
		return;
	}
	if ((q = agent_q_find(a, id)) == NULL) {
		/* Nothing closed for it (none found, all refused, a dry
		 * run): nothing to reopen. */
		agent_send(a, "agent.resumed", json_pack("{s:I, s:[], s:[]}",
		    "quiesce", (json_int_t)id, "reopened", "failed"));
		return;
	}
	log_set_context(q->job, q->run);
	if (q->state == Q_WARNING) {
		warn_close(a->warn);
		p = json_pack("{s:I, s:[], s:[]}", "quiesce", (json_int_t)id,
		    "reopened", "failed");
	} else if (q->state == Q_CLOSED)
		p = agent_reopen(q);
	else
		p = json_incref(q->resumed);
	log_set_context(NULL, 0);
	agent_q_unlink(a, q);
	agent_send(a, "agent.resumed", p);
}

static void
agent_on_event(struct agent *a, json_t *ev)
{
	const char *topic = json_string_value(json_object_get(ev, "event"));
	json_t *data = json_object_get(ev, "data");

	if (topic == NULL)
		return;
	if (strcmp(topic, "quiesce") == 0)
		agent_on_quiesce(a, data);
	else if (strcmp(topic, "resume") == 0)
		agent_on_resume(a, data);
	else
		log_debug("event %.32s ignored", topic);
}

/* Reopen what is closed (the connection dropped, or we stop). */
static void
agent_reopen_all(struct agent *a, const char *why)
{
	struct agent_q *q, *next;
	json_t *p;

	for (q = a->qs; q != NULL; q = next) {
		next = q->next;
		if (q->state == Q_WARNING)
			warn_close(a->warn);
		else if (q->state == Q_CLOSED) {
			log_warnx("job %s: %s while its apps were closed: "
			    "reopening them now", q->job, why);
			p = agent_reopen(q);
			json_decref(p);
		}
		agent_q_unlink(a, q);
	}
}

/* The timers of the quiesces in progress. */
static void
agent_tick(struct agent *a)
{
	struct agent_q *q, *next;
	enum warn_answer ans;
	int64_t now;

	ans = warn_process(a->warn);
	for (q = a->qs; q != NULL; q = next) {
		next = q->next;
		now = agent_now();
		log_set_context(q->job, q->run);
		switch (q->state) {
		case Q_WARNING:
			if (ans == WARN_POSTPONE && q->may_postpone) {
				log_info("job %s: the user chose Postpone",
				    q->job);
				warn_close(a->warn);
				agent_send(a, "agent.postpone", json_pack(
				    "{s:I}", "quiesce", (json_int_t)q->id));
				agent_q_unlink(a, q);
			} else if (ans == WARN_START_NOW ||
			    now >= q->warn_deadline) {
				if (ans == WARN_START_NOW)
					log_info("job %s: the user chose Start "
					    "now", q->job);
				warn_close(a->warn);
				agent_close(a, q);
			} else if (now >= q->next_progress) {
				agent_progress(a, q, "warning");
				q->next_progress = now + AGENT_PROGRESS_S *
				    1000;
			}
			break;
		case Q_CLOSED:
			if (a->simulate != NULL && now >= q->sim_resume_at) {
				json_t *d = json_pack("{s:I, s:I}",
				    "quiesce", (json_int_t)q->id, "run",
				    (json_int_t)q->run);

				agent_on_resume(a, d);
				json_decref(d);
			} else if (now >= q->max_deadline) {
				log_warnx("job %s: no word from vigild for "
				    "%lld s after closing apps: reopening "
				    "them", q->job,
				    (long long)q->max_runtime_s);
				q->resumed = agent_reopen(q);
				q->state = Q_REOPENED;
				q->drop_at = now + AGENT_KEEP_DONE_MS;
			}
			break;
		case Q_REOPENED:
			if (now >= q->drop_at)
				agent_q_unlink(a, q);
			break;
		}
		log_set_context(NULL, 0);
	}
}

static int64_t
agent_next_timer(struct agent *a)
{
	struct agent_q *q;
	int64_t t = agent_now() + 1000;

	for (q = a->qs; q != NULL; q = q->next) {
		if (q->state == Q_WARNING) {
			if (q->warn_deadline < t)
				t = q->warn_deadline;
			if (q->next_progress < t)
				t = q->next_progress;
		} else if (q->state == Q_CLOSED) {
			if (q->max_deadline < t)
				t = q->max_deadline;
			if (a->simulate != NULL && q->sim_resume_at < t)
				t = q->sim_resume_at;
		}
	}
	if (a->c == NULL && a->simulate == NULL && a->next_connect < t)
		t = a->next_connect;
	return t;
}

/* ---- the connection ---- */

static void
agent_disconnect(struct agent *a)
{
	agent_reopen_all(a, "the connection to vigild was lost");
	client_free(a->c);
	a->c = NULL;
	a->broken = false;
	a->backoff_s = 1;
	a->next_connect = agent_now() + 1000;
}

static void
agent_failed(struct agent *a, const char *msg)
{
	if (strcmp(a->last_fail, msg) != 0) {
		log_warnx("%s; trying again in %d s (and then less often, "
		    "up to every %d s)", msg, a->backoff_s,
		    AGENT_BACKOFF_MAX_S);
		snprintf(a->last_fail, sizeof a->last_fail, "%s", msg);
	} else
		log_debug("%s; next try in %d s", msg, a->backoff_s);
	a->next_connect = agent_now() + (int64_t)a->backoff_s * 1000;
	a->backoff_s = a->backoff_s * 2 > AGENT_BACKOFF_MAX_S ?
	    AGENT_BACKOFF_MAX_S : a->backoff_s * 2;
}

static int
agent_connect(struct agent *a)
{
	struct vg_err err;
	json_t *params, *res = NULL;
	const char *disp, *sess, *by;
	int rc;

	vg_err_clear(&err);
	if ((a->c = client_connect_role(a->socket_path, "agent", &err)) ==
	    NULL) {
		agent_failed(a, err.msg);
		return -1;
	}
	disp = getenv("DISPLAY");
	params = json_pack("{s:o, s:o, s:b, s:s}", "session", a->session !=
	    NULL ? json_string(a->session) : json_null(), "display",
	    disp != NULL && *disp != '\0' ? agent_jstr(disp) : json_null(),
	    "wayland", getenv("WAYLAND_DISPLAY") != NULL, "agent_version",
	    AGENT_VERSION);
	rc = client_call(a->c, "agent.register", params, &res, NULL,
	    AGENT_CALL_MS, &err);
	json_decref(params);
	if (rc != 0) {
		client_free(a->c);
		a->c = NULL;
		json_decref(res);
		if (rc == 1)
			vg_err_prefix(&err, "vigild refused this agent");
		agent_failed(a, err.msg);
		return -1;
	}
	sess = json_string_value(json_object_get(res, "session"));
	by = json_string_value(json_object_get(res, "tracked_by"));
	log_info("registered with vigild at %s: session %s, tracked by %s",
	    client_path(a->c), sess != NULL ? sess : "?", by != NULL ? by :
	    "?");
	json_decref(res);
	a->last_fail[0] = '\0';
	a->backoff_s = 1;
	a->ever_connected = true;
	return 0;
}

/* Events queued or arrived; false when the connection broke. */
static void
agent_drain(struct agent *a)
{
	struct vg_err err;
	json_t *ev;

	while (a->c != NULL && !a->broken) {
		ev = client_next_event(a->c, 0, &err);
		if (ev == NULL) {
			if (err.code != VG_OK && err.code !=
			    VG_ERR_CANCELLED) {
				log_warnx("%s", err.msg);
				a->broken = true;
			}
			break;
		}
		agent_on_event(a, ev);
		json_decref(ev);
	}
}

/* ---- start-up ---- */

/* 0: we are the one; 1: another agent holds the lock. */
static int
agent_lock(void)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char path[PATH_MAX];
	int fd;

	if (rt == NULL || *rt != '/') {
		log_debug("no XDG_RUNTIME_DIR: running without the "
		    "one-agent lock");
		return 0;
	}
	if ((size_t)snprintf(path, sizeof path, "%s/vigil-agent.lock", rt) >=
	    sizeof path)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		log_warn("%s", path);
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		close(fd);
		return errno == EWOULDBLOCK ? 1 : 0;
	}
	/* cppcheck-suppress resourceLeak ; fd stays open: the lock lives
	 * with us */
	return 0;
}

static char *
agent_session_claim(void)
{
	const char *s = getenv("XDG_SESSION_ID");
	char *d = NULL;

	if (s != NULL && *s != '\0')
		return strdup(s);
	if (sd_uid_get_display(getuid(), &d) >= 0 && d != NULL)
		return d;
	free(d);
	return NULL;
}

static bool
agent_session_closing(const char *session)
{
	char *st = NULL;
	bool closing;

	if (session == NULL || sd_session_get_state(session, &st) < 0)
		return false;
	closing = st != NULL && strcmp(st, "closing") == 0;
	free(st);
	return closing;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: vigil-agent [-v] [--socket PATH] [--once] [--max-runtime SECONDS]\n"
"       vigil-agent [-v] --simulate FILE [--hold SECONDS]\n"
"\n"
"The vigil session agent: it registers this session with vigild, and\n"
"before a backup closes the apps that hold its files, then reopens them.\n"
"\n"
"  --socket PATH          vigild's socket (default: $VIGIL_SOCKET, the\n"
"                         user service's, then /run/vigil/vigil.sock)\n"
"  --once                 do not reconnect: exit when vigild goes away\n"
"  --max-runtime SECONDS  reopen closed apps by ourselves after this\n"
"                         long without word from vigild (default 21600)\n"
"  --simulate FILE        run one quiesce (JSON, as vigild sends it) and\n"
"                         its resume here, printing each answer as JSON\n"
"  --hold SECONDS         with --simulate: keep apps closed this long\n"
"  -v, --verbose          debug messages\n"
"  -h, --help             this help\n");
}

static long
agent_seconds(const char *s, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 ||
	    v > AGENT_DURATION_MAX) {
		fprintf(stderr, "vigil-agent: %s must be a number of seconds "
		    "from 0 to %d, not \"%s\"\n", what, AGENT_DURATION_MAX,
		    s);
		exit(2);
	}
	return v;
}

static json_t *
agent_load_sim(const char *path)
{
	json_error_t je;
	json_t *j, *d;

	if ((j = json_load_file(path, 0, &je)) == NULL) {
		fprintf(stderr, "vigil-agent: %s:%d: %s\n", path, je.line,
		    je.text);
		return NULL;
	}
	if ((d = json_object_get(j, "data")) != NULL && json_is_string(
	    json_object_get(j, "event"))) {
		json_incref(d);
		json_decref(j);
		return d;
	}
	return j;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "once", no_argument, NULL, 'o' },
		{ "simulate", required_argument, NULL, 'S' },
		{ "hold", required_argument, NULL, 'H' },
		{ "max-runtime", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct agent a;
	struct sigaction sa;
	struct pollfd pfd[2];
	json_t *sim = NULL;
	int64_t t;
	int ch, n, wfd, verbose = 0, rc = 0, st;

	memset(&a, 0, sizeof a);
	a.max_runtime_s = AGENT_MAX_RUNTIME_S;
	while ((ch = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			a.socket_path = optarg;
			break;
		case 'o':
			a.once = true;
			break;
		case 'S':
			a.simulate = optarg;
			break;
		case 'H':
			a.hold_s = (int)agent_seconds(optarg, "--hold");
			break;
		case 'm':
			a.max_runtime_s = agent_seconds(optarg,
			    "--max-runtime");
			if (a.max_runtime_s < 1)
				a.max_runtime_s = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("vigil-agent", LOG_TARGET_STDERR, verbose);
	if (a.simulate != NULL && (sim = agent_load_sim(a.simulate)) == NULL)
		return 1;
	if (a.simulate == NULL && agent_lock() == 1) {
		log_debug("another vigil-agent runs for this user: exiting");
		return 0;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = agent_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	a.session = agent_session_claim();
	if ((a.warn = warn_new(a.session)) == NULL)
		fatal("out of memory");
	a.backoff_s = 1;
	a.next_connect = agent_now();
	if (sim != NULL) {
		agent_on_quiesce(&a, sim);
		json_decref(sim);
	}
	for (;;) {
		while (waitpid(-1, &st, WNOHANG) > 0)
			;	/* apps we reopened directly, when they end */
		if (agent_stop)
			break;
		if (a.simulate != NULL && a.qs == NULL)
			break;
		if (a.simulate == NULL && a.c == NULL && agent_now() >=
		    a.next_connect) {
			if (agent_connect(&a) == -1 && a.once &&
			    !a.ever_connected) {
				rc = 1;
				break;
			}
		}
		agent_drain(&a);
		agent_tick(&a);
		if (a.broken) {
			agent_disconnect(&a);
			if (a.once)
				break;
			continue;
		}
		n = 0;
		if (a.c != NULL) {
			pfd[n].fd = client_fd(a.c);
			pfd[n].events = POLLIN;
			n++;
		}
		if ((wfd = warn_fd(a.warn)) >= 0) {
			pfd[n].fd = wfd;
			pfd[n].events = warn_events(a.warn);
			n++;
		}
		t = agent_next_timer(&a) - agent_now();
		if (t < 0)
			t = 0;
		if (poll(pfd, (nfds_t)n, (int)t) == -1 && errno != EINTR)
			fatal("poll");
		if (n > 0 && a.c != NULL && (pfd[0].revents & (POLLHUP |
		    POLLERR)) && !(pfd[0].revents & POLLIN)) {
			log_warnx("vigild at %s closed the connection",
			    client_path(a.c));
			a.broken = true;
		}
		if (a.broken) {
			agent_disconnect(&a);
			if (a.once)
				break;
		}
	}
	if (agent_stop)
		log_info("stopping (signal %d)", (int)agent_stop);
	if (agent_session_closing(a.session)) {
		struct agent_q *q;

		while ((q = a.qs) != NULL)	/* the session ends anyway */
			agent_q_unlink(&a, q);
	} else
		agent_reopen_all(&a, "the agent is stopping");
	client_free(a.c);
	warn_free(a.warn);
	free(a.session);
	return rc;
}
