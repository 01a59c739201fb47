/*
 * tray_model.c: the tray's view of the service (see tray_model.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/tray/tray_model.h"

static const char *
tray_jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static char *
tray_jdup(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? strdup(s) : NULL;
}

static int64_t
tray_jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	return 0;
}

struct tray_model *
tray_model_new(const char *user)
{
	struct tray_model *m;

	if ((m = calloc(1, sizeof *m)) == NULL)
		return NULL;
	if ((m->user = strdup(user != NULL ? user : "")) == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

static void
tray_model_clear_jobs(struct tray_model *m)
{
	size_t i;

	for (i = 0; i < m->njobs; i++) {
		free(m->jobs[i].name);
		free(m->jobs[i].owner);
		free(m->jobs[i].run_name);
		free(m->jobs[i].last_status);
		free(m->jobs[i].last_run);
		free(m->jobs[i].next_run);
	}
	free(m->jobs);
	m->jobs = NULL;
	m->njobs = 0;
}

static void
tray_model_clear_runs(struct tray_model *m)
{
	size_t i;

	for (i = 0; i < m->nruns; i++) {
		free(m->runs[i].job);
		free(m->runs[i].current);
	}
	free(m->runs);
	m->runs = NULL;
	m->nruns = 0;
}

void
tray_model_free(struct tray_model *m)
{
	if (m == NULL)
		return;
	tray_model_clear_jobs(m);
	tray_model_clear_runs(m);
	free(m->user);
	free(m->why);
	free(m);
}

void
tray_model_set_connected(struct tray_model *m, bool connected, bool admin,
    const char *why)
{
	m->connected = connected;
	m->admin = admin;
	free(m->why);
	m->why = why != NULL ? strdup(why) : NULL;
	if (!connected)
		tray_model_clear_runs(m);
	if (connected)
		m->retry_ms = 0;
}

static struct tray_run *
tray_model_find_run(struct tray_model *m, int64_t run)
{
	size_t i;

	for (i = 0; i < m->nruns; i++)
		if (m->runs[i].run == run)
			return &m->runs[i];
	return NULL;
}

static struct tray_job *
tray_model_find_job(struct tray_model *m, int64_t job_id)
{
	size_t i;

	for (i = 0; i < m->njobs; i++)
		if (m->jobs[i].id == job_id)
			return &m->jobs[i];
	return NULL;
}

const struct tray_job *
tray_model_job(const struct tray_model *m, int64_t job_id)
{
	return tray_model_find_job((struct tray_model *)m, job_id);
}

const struct tray_run *
tray_model_run_of_job(const struct tray_model *m, int64_t job_id)
{
	size_t i;

	for (i = 0; i < m->nruns; i++)
		if (m->runs[i].job_id == job_id)
			return &m->runs[i];
	return NULL;
}

static struct tray_run *
tray_model_add_run(struct tray_model *m, int64_t run, int64_t job_id,
    const char *job)
{
	struct tray_run *nr, *r;

	if ((r = tray_model_find_run(m, run)) != NULL)
		return r;
	if ((nr = reallocarray(m->runs, m->nruns + 1, sizeof *nr)) == NULL)
		return NULL;
	m->runs = nr;
	r = &m->runs[m->nruns];
	memset(r, 0, sizeof *r);
	r->run = run;
	r->job_id = job_id;
	if ((r->job = strdup(job != NULL ? job : "")) == NULL)
		return NULL;
	snprintf(r->phase, sizeof r->phase, "starting");
	r->t0_ms = -1;
	m->nruns++;
	return r;
}

static void
tray_model_remove_run(struct tray_model *m, int64_t run)
{
	size_t i;

	for (i = 0; i < m->nruns; i++) {
		if (m->runs[i].run != run)
			continue;
		free(m->runs[i].job);
		free(m->runs[i].current);
		memmove(&m->runs[i], &m->runs[i + 1],
		    (m->nruns - i - 1) * sizeof m->runs[0]);
		m->nruns--;
		return;
	}
}

/* Progress figures from an event's data or a status entry's "progress". */
static void
tray_run_update(struct tray_run *r, json_t *p, int64_t now_ms)
{
	const char *phase = json_string_value(json_object_get(p, "phase"));
	const char *cur = json_string_value(json_object_get(p, "current"));

	if (phase != NULL)
		snprintf(r->phase, sizeof r->phase, "%s", phase);
	r->files = tray_jint(p, "files");
	r->copied = tray_jint(p, "copied");
	r->bytes = tray_jint(p, "bytes");
	r->bytes_todo = tray_jint(p, "bytes_todo");
	if (r->bytes_todo == 0)
		r->bytes_todo = tray_jint(p, "bytes_total");
	if (cur != NULL) {
		free(r->current);
		r->current = strdup(cur);
	}
	if (r->t0_ms < 0) {
		r->t0_ms = now_ms;
		r->bytes0 = r->bytes;
	}
	r->t_ms = now_ms;
}

int
tray_model_set_status(struct tray_model *m, json_t *status, int64_t now_ms)
{
	struct tray_job *jobs = NULL, *j;
	json_t *jo, *ro, *p, *prev_runs;
	struct tray_run *r;
	size_t i, n;
	const char *owner;

	n = json_array_size(json_object_get(status, "jobs"));
	if (n > 0 && (jobs = calloc(n, sizeof *jobs)) == NULL)
		return -1;
	json_array_foreach(json_object_get(status, "jobs"), i, jo) {
		j = &jobs[i];
		/* the loop runs only when the array has n > 0 entries, so jobs
		 * is set: NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
		j->id = tray_jint(jo, "id");
		j->name = strdup(tray_jstr(jo, "name"));
		owner = tray_jstr(jo, "owner");
		j->owner = strdup(owner);
		/* Root sees every user's jobs and names another's OWNER:NAME. */
		if (m->admin && *owner != '\0' && strcmp(owner, m->user) != 0) {
			if (asprintf(&j->run_name, "%s:%s", owner,
			    tray_jstr(jo, "name")) == -1)
				j->run_name = NULL;
		} else
			j->run_name = strdup(tray_jstr(jo, "name"));
		j->last_status = tray_jdup(jo, "last_status");
		j->last_run = tray_jdup(jo, "last_run");
		j->next_run = tray_jdup(jo, "next_run");
		j->running = json_is_true(json_object_get(jo, "running"));
		j->overdue = json_is_true(json_object_get(jo, "overdue"));
	}
	tray_model_clear_jobs(m);
	m->jobs = jobs;
	m->njobs = n;
	for (i = 0; i < n; i++)
		if (jobs[i].name == NULL || jobs[i].owner == NULL ||
		    jobs[i].run_name == NULL)
			return -1;

	/* Runs: keep the rate's origin of runs we already follow. */
	prev_runs = json_array();
	for (i = 0; i < m->nruns; i++) {
		json_t *o = json_pack("{sI sI sI}", "run",
		    (json_int_t)m->runs[i].run, "t0", (json_int_t)
		    m->runs[i].t0_ms, "b0", (json_int_t)m->runs[i].bytes0);

		if (o != NULL)
			json_array_append_new(prev_runs, o);
	}
	tray_model_clear_runs(m);
	json_array_foreach(json_object_get(status, "running"), i, ro) {
		size_t k;
		json_t *o;

		r = tray_model_add_run(m, tray_jint(ro, "run"),
		    tray_jint(ro, "job_id"), tray_jstr(ro, "job"));
		if (r == NULL)
			break;
		json_array_foreach(prev_runs, k, o)
			if (tray_jint(o, "run") == r->run) {
				r->t0_ms = tray_jint(o, "t0");
				r->bytes0 = tray_jint(o, "b0");
			}
		if (json_is_string(json_object_get(ro, "phase")))
			snprintf(r->phase, sizeof r->phase, "%s",
			    tray_jstr(ro, "phase"));
		if ((p = json_object_get(ro, "progress")) != NULL)
			tray_run_update(r, p, now_ms);
	}
	json_decref(prev_runs);
	return 0;
}

static void
tray_notice_set(struct tray_notice *n, const char *id, bool urgent,
    const char *title, const char *body)
{
	snprintf(n->id, sizeof n->id, "%s", id);
	snprintf(n->title, sizeof n->title, "%s", title);
	snprintf(n->body, sizeof n->body, "%s", body);
	n->urgent = urgent;
}

int
tray_model_event(struct tray_model *m, const char *topic, json_t *data,
    int64_t now_ms, struct tray_notice *notice, bool *refresh)
{
	struct tray_run *r;
	struct tray_job *j;
	const char *status, *job = tray_jstr(data, "job");
	int64_t run = tray_jint(data, "run"), job_id = tray_jint(data,
	    "job_id");
	char title[128], body[512], id[64];

	*refresh = false;
	memset(notice, 0, sizeof *notice);
	if (strcmp(topic, "run-started") == 0) {
		(void)tray_model_add_run(m, run, job_id, job);
		if ((j = tray_model_find_job(m, job_id)) != NULL)
			j->running = true;
		return 0;
	}
	if (strcmp(topic, "progress") == 0) {
		if ((r = tray_model_add_run(m, run, job_id, job)) != NULL)
			tray_run_update(r, data, now_ms);
		if ((j = tray_model_find_job(m, job_id)) != NULL)
			j->running = true;
		return 0;
	}
	if (strcmp(topic, "run-finished") == 0) {
		tray_model_remove_run(m, run);
		status = tray_jstr(data, "status");
		if ((j = tray_model_find_job(m, job_id)) != NULL) {
			j->running = false;
			free(j->last_status);
			j->last_status = strdup(status);
			if (strcmp(status, "ok") == 0)
				j->overdue = false;
		}
		*refresh = true;
		snprintf(id, sizeof id, "run-%lld", (long long)run);
		if (strcmp(status, "ok") == 0) {
			snprintf(title, sizeof title, "Backup %s finished", job);
			snprintf(body, sizeof body, "Run %lld ended well.",
			    (long long)run);
		} else if (strcmp(status, "partial") == 0) {
			snprintf(title, sizeof title, "Backup %s is partial",
			    job);
			snprintf(body, sizeof body, "Run %lld could not copy "
			    "every file. History shows which and why.",
			    (long long)run);
		} else if (strcmp(status, "failed") == 0 ||
		    strcmp(status, "interrupted") == 0) {
			snprintf(title, sizeof title, "Backup %s %s", job,
			    status);
			snprintf(body, sizeof body, "Run %lld %s. History "
			    "shows its log.", (long long)run, status);
		} else
			return 0;	/* cancelled, skipped, postponed */
		tray_notice_set(notice, id, strcmp(status, "ok") != 0, title,
		    body);
		return 1;
	}
	if (strcmp(topic, "alert") == 0) {
		if (strcmp(tray_jstr(data, "kind"), "overdue") != 0)
			return 0;
		if ((j = tray_model_find_job(m, job_id)) != NULL)
			j->overdue = true;
		snprintf(id, sizeof id, "overdue-%lld", (long long)job_id);
		snprintf(title, sizeof title, "Backup %s is overdue", job);
		snprintf(body, sizeof body, "No successful run of %s within "
		    "its warn-after time. Run it now from the tray menu.",
		    job);
		tray_notice_set(notice, id, true, title, body);
		return 1;
	}
	if (strcmp(topic, "job-changed") == 0)
		*refresh = true;
	return 0;
}

enum tray_state
tray_model_state(const struct tray_model *m)
{
	enum tray_state s = TRAY_IDLE;
	const char *st;
	size_t i;

	if (!m->connected)
		return TRAY_DISCONNECTED;
	if (m->nruns > 0)
		return TRAY_RUNNING;
	for (i = 0; i < m->njobs; i++) {
		if (m->jobs[i].running)
			return TRAY_RUNNING;
		st = m->jobs[i].last_status;
		if (m->jobs[i].overdue)
			s = TRAY_OVERDUE;
		else if (st != NULL && (strcmp(st, "failed") == 0 ||
		    strcmp(st, "interrupted") == 0) && s < TRAY_FAILED)
			s = TRAY_FAILED;
		else if (st != NULL && strcmp(st, "partial") == 0 &&
		    s < TRAY_PARTIAL)
			s = TRAY_PARTIAL;
	}
	return s;
}

const char *
tray_state_icon(enum tray_state s)
{
	switch (s) {
	case TRAY_IDLE:
		return "vigil-idle";
	case TRAY_PARTIAL:
		return "vigil-partial";
	case TRAY_FAILED:
		return "vigil-failed";
	case TRAY_OVERDUE:
		return "vigil-overdue";
	case TRAY_RUNNING:
		return "vigil-running";
	case TRAY_DISCONNECTED:
		return "vigil-disconnected";
	}
	return "vigil-idle";
}

const char *
tray_state_name(enum tray_state s)
{
	switch (s) {
	case TRAY_IDLE:
		return "idle";
	case TRAY_PARTIAL:
		return "partial";
	case TRAY_FAILED:
		return "failed";
	case TRAY_OVERDUE:
		return "overdue";
	case TRAY_RUNNING:
		return "running";
	case TRAY_DISCONNECTED:
		return "disconnected";
	}
	return "idle";
}

int
tray_run_percent(const struct tray_run *r)
{
	int64_t pct;

	if (r->bytes_todo <= 0)
		return -1;
	pct = r->bytes * 100 / r->bytes_todo;
	return pct > 100 ? 100 : (int)(pct < 0 ? 0 : pct);
}

double
tray_run_rate(const struct tray_run *r)
{
	if (r->t0_ms < 0 || r->t_ms <= r->t0_ms || r->bytes <= r->bytes0)
		return 0;
	return (double)(r->bytes - r->bytes0) * 1000.0 /
	    (double)(r->t_ms - r->t0_ms);
}

int64_t
tray_run_eta(const struct tray_run *r)
{
	double rate = tray_run_rate(r);

	if (r->bytes_todo <= 0 || rate <= 0)
		return -1;
	if (r->bytes >= r->bytes_todo)
		return 0;
	return (int64_t)((double)(r->bytes_todo - r->bytes) / rate + 0.5);
}

/* The worst state's reason, for the tooltip and the headline. */
static void
tray_model_reason(const struct tray_model *m, enum tray_state s, char *buf,
    size_t len)
{
	const struct tray_run *r;
	const char *st;
	size_t i;
	int pct;

	buf[0] = '\0';
	switch (s) {
	case TRAY_DISCONNECTED:
		snprintf(buf, len, "disconnected: cannot reach the backup "
		    "service%s", m->retry_ms > 0 ? "; retrying" : "");
		return;
	case TRAY_RUNNING:
		if (m->nruns == 0) {
			snprintf(buf, len, "a backup is running");
			return;
		}
		r = &m->runs[0];
		pct = tray_run_percent(r);
		if (pct >= 0)
			snprintf(buf, len, "%s %d%% (%s)", r->job, pct,
			    r->phase);
		else
			snprintf(buf, len, "%s running (%s)", r->job,
			    r->phase);
		if (m->nruns > 1) {
			size_t l = strlen(buf);

			snprintf(buf + l, len - l, ", and %zu more",
			    m->nruns - 1);
		}
		return;
	default:
		break;
	}
	for (i = 0; i < m->njobs; i++) {
		st = m->jobs[i].last_status;
		if (s == TRAY_OVERDUE && m->jobs[i].overdue) {
			snprintf(buf, len, "%s is overdue", m->jobs[i].name);
			return;
		}
		if (s == TRAY_FAILED && st != NULL && (strcmp(st, "failed") ==
		    0 || strcmp(st, "interrupted") == 0)) {
			snprintf(buf, len, "%s: last run %s", m->jobs[i].name,
			    st);
			return;
		}
		if (s == TRAY_PARTIAL && st != NULL && strcmp(st, "partial") ==
		    0) {
			snprintf(buf, len, "%s: last run partial",
			    m->jobs[i].name);
			return;
		}
	}
	if (m->njobs == 0)
		snprintf(buf, len, "no jobs yet");
	else
		snprintf(buf, len, "all good");
}

char *
tray_model_tooltip_text(const struct tray_model *m)
{
	char reason[256], *s = NULL;

	tray_model_reason(m, tray_model_state(m), reason, sizeof reason);
	if (asprintf(&s, "vigil: %s", reason) == -1)
		return NULL;
	return s;
}

char *
tray_model_headline_text(const struct tray_model *m)
{
	char reason[256], *s = NULL;

	tray_model_reason(m, tray_model_state(m), reason, sizeof reason);
	if (reason[0] >= 'a' && reason[0] <= 'z')
		reason[0] = (char)(reason[0] - 'a' + 'A');
	if (asprintf(&s, "%s", reason) == -1)
		return NULL;
	return s;
}

void
tray_format_bytes(double bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB",
	    "PB" };
	size_t u = 0;

	if (bytes < 0)
		bytes = 0;
	while (bytes >= 1000 && u < sizeof units / sizeof units[0] - 1) {
		bytes /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f %s", bytes, units[u]);
	else
		snprintf(buf, len, "%.1f %s", bytes, units[u]);
}

void
tray_format_duration(int64_t s, char *buf, size_t len)
{
	if (s < 0)
		snprintf(buf, len, "--");
	else if (s >= 3600)
		snprintf(buf, len, "%lld:%02lld:%02lld", (long long)(s / 3600),
		    (long long)(s / 60 % 60), (long long)(s % 60));
	else
		snprintf(buf, len, "%lld:%02lld", (long long)(s / 60),
		    (long long)(s % 60));
}

void
tray_format_time(const char *iso, char *buf, size_t len)
{
	struct tm tm, lt;
	const char *rest;
	time_t t;

	if (iso == NULL || *iso == '\0') {
		snprintf(buf, len, "never");
		return;
	}
	memset(&tm, 0, sizeof tm);
	rest = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
	if (rest == NULL || (*rest != 'Z' && *rest != '.') ||
	    (t = timegm(&tm)) == (time_t)-1 || localtime_r(&t, &lt) == NULL ||
	    strftime(buf, len, "%a %d %b %H:%M", &lt) == 0)
		snprintf(buf, len, "%s", iso);
}

char *
tray_log_text(json_t *log)
{
	json_t *counts, *p, *w;
	char *text = NULL, b[32], d[32], t1[48], t2[48];
	size_t len = 0, i;
	FILE *fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;
	tray_format_time(json_string_value(json_object_get(log, "started")),
	    t1, sizeof t1);
	tray_format_time(json_string_value(json_object_get(log, "ended")),
	    t2, sizeof t2);
	fprintf(fp, "Run %lld of %s: %s\n", (long long)tray_jint(log, "id"),
	    tray_jstr(log, "job"), tray_jstr(log, "status"));
	fprintf(fp, "Started   %s (%s)\n", t1, tray_jstr(log, "trigger"));
	fprintf(fp, "Ended     %s\n", t2);
	tray_format_duration(tray_jint(log, "duration_ms") / 1000, d, sizeof d);
	tray_format_bytes((double)tray_jint(log, "bytes"), b, sizeof b);
	fprintf(fp, "Took      %s\n", d);
	fprintf(fp, "Files     %lld, %s\n", (long long)tray_jint(log, "files"),
	    b);
	if ((counts = json_object_get(log, "counts")) != NULL)
		fprintf(fp, "Changes   %lld copied, %lld unchanged, %lld "
		    "deleted, %lld versioned, %lld failed\n",
		    (long long)tray_jint(counts, "copied"),
		    (long long)tray_jint(counts, "unchanged"),
		    (long long)tray_jint(counts, "deleted"),
		    (long long)tray_jint(counts, "versioned"),
		    (long long)tray_jint(counts, "failed"));
	if (json_is_string(json_object_get(log, "path")))
		fprintf(fp, "Capture   %s: %s\n", tray_jstr(log, "path"),
		    tray_jstr(log, "path_reason"));
	if (json_is_string(json_object_get(log, "message")))
		fprintf(fp, "Message   %s\n", tray_jstr(log, "message"));
	json_array_foreach(json_object_get(json_object_get(log, "details"),
	    "warnings"), i, w)
		fprintf(fp, "Warning   %s\n", json_is_string(w) ?
		    json_string_value(w) : tray_jstr(w, "message"));
	if (json_array_size(json_object_get(log, "problems")) > 0)
		fprintf(fp, "\nProblems (%zu):\n", json_array_size(
		    json_object_get(log, "problems")));
	json_array_foreach(json_object_get(log, "problems"), i, p) {
		fprintf(fp, "  %s: %s", tray_jstr(p, "path"),
		    tray_jstr(p, "problem"));
		if (json_is_string(json_object_get(p, "capture")))
			fprintf(fp, " (captured %s)", tray_jstr(p, "capture"));
		if (json_is_string(json_object_get(p, "detail")))
			fprintf(fp, ": %s", tray_jstr(p, "detail"));
		fputc('\n', fp);
	}
	if (fclose(fp) == EOF) {
		free(text);
		return NULL;
	}
	return text;
}

int
tray_backoff_next(int prev_ms)
{
	if (prev_ms <= 0)
		return 1000;
	if (prev_ms >= 15000)
		return 30000;
	return prev_ms * 2;
}

size_t
tray_validate_jobs(const char *filename, const char *text, size_t len,
    uid_t caller_uid, struct vg_diags *diags)
{
	struct vg_jobfile *jf = NULL;
	struct vg_check_ctx cc;
	size_t nerr;

	(void)config_parse(filename, text, len, &jf, diags);
	memset(&cc, 0, sizeof cc);
	cc.caller_uid = caller_uid;
	cc.check_paths = true;
	if (jf != NULL)
		(void)config_check(jf, filename, &cc, diags);
	nerr = diags->nerrors;
	if (jf == NULL && nerr == 0) {
		(void)diags_add(diags, VG_DIAG_ERROR, filename, 0, NULL, NULL,
		    NULL, "out of memory while reading the jobs file");
		nerr = diags->nerrors;
	}
	jobfile_free(jf);
	return nerr;
}

int
tray_diags_from_json(json_t *diagnostics, struct vg_diags *diags)
{
	json_t *d;
	size_t i;
	int64_t line;
	int rc = 0;

	json_array_foreach(diagnostics, i, d) {
		line = tray_jint(d, "line");
		if (line < 0 || line > (int64_t)0x7fffffff)
			line = 0;
		if (diags_add(diags, strcmp(tray_jstr(d, "level"), "note") ==
		    0 ? VG_DIAG_NOTE : VG_DIAG_ERROR,
		    json_string_value(json_object_get(d, "file")),
		    (unsigned)line, json_string_value(json_object_get(d,
		    "job")), json_string_value(json_object_get(d, "key")),
		    json_string_value(json_object_get(d, "hint")), "%s",
		    tray_jstr(d, "message")) == -1)
			rc = -1;
	}
	return rc;
}

char *
tray_diag_text(const struct vg_diag *d)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;
	if (d->line > 0)
		fprintf(fp, "line %u: ", d->line);
	if (d->job != NULL)
		fprintf(fp, "job %s: ", d->job);
	if (d->key != NULL)
		fprintf(fp, "key %s: ", d->key);
	if (d->level == VG_DIAG_NOTE)
		fprintf(fp, "note: ");
	fputs(d->msg != NULL ? d->msg : "", fp);
	if (d->hint != NULL)
		fprintf(fp, " (hint: %s)", d->hint);
	if (fclose(fp) == EOF) {
		free(text);
		return NULL;
	}
	return text;
}
