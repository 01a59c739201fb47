/* control.c: one handler per client request (see control.h). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "db/store.h"
#include "scheduler/control.h"
#include "scheduler/runner.h"

#define CONTROL_HISTORY_DEFAULT	50

char *
control_iso_time(int64_t ms)
{
	struct tm tm;
	time_t t = (time_t)(ms / 1000);
	char buf[64];
	char *s;

	if (ms <= 0)
		return NULL;
	gmtime_r(&t, &tm);
	snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	s = strdup(buf);
	return s;
}

static json_t *
control_time_json(int64_t ms)
{
	char *s;
	json_t *j;

	if ((s = control_iso_time(ms)) == NULL)
		return json_null();
	j = json_string(s);
	free(s);
	return j;
}

/* A string that may hold any bytes, escaped for display. */
static json_t *
control_str_json(const char *s, size_t len)
{
	char *e;
	json_t *j;

	if (s == NULL)
		return json_null();
	if ((e = log_escape_len(s, len)) == NULL)
		return json_null();
	j = json_string(e);
	free(e);
	return j != NULL ? j : json_null();
}

static json_t *
control_cstr_json(const char *s)
{
	return s == NULL ? json_null() : control_str_json(s, strlen(s));
}

static json_t *
control_user_json(uid_t uid)
{
	struct passwd *pw;

	if ((pw = getpwuid(uid)) != NULL)
		return control_cstr_json(pw->pw_name);
	return json_integer(uid);
}

json_t *
control_run_json(const struct vg_run_row *r)
{
	json_t *o, *cap, *counts, *details;
	int i;

	o = json_object();
	json_object_set_new(o, "id", json_integer(r->id));
	json_object_set_new(o, "job", control_cstr_json(r->job_name));
	json_object_set_new(o, "job_id", json_integer(r->job_id));
	json_object_set_new(o, "owner", control_user_json(r->owner_uid));
	json_object_set_new(o, "status",
	    json_string(store_run_status_name(r->status)));
	json_object_set_new(o, "path", control_cstr_json(r->path));
	json_object_set_new(o, "path_reason",
	    control_cstr_json(r->path_reason));
	json_object_set_new(o, "trigger", control_cstr_json(r->trigger));
	json_object_set_new(o, "started", control_time_json(r->started));
	json_object_set_new(o, "ended", control_time_json(r->ended));
	json_object_set_new(o, "duration_ms", r->ended > 0 ?
	    json_integer(r->ended - r->started) : json_null());
	json_object_set_new(o, "files", json_integer((json_int_t)r->files));
	json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
	json_object_set_new(o, "bytes_total",
	    json_integer((json_int_t)r->bytes_total));
	cap = json_object();
	for (i = 0; i < VG_CAP_COUNT; i++)
		if (r->capture[i] > 0)
			json_object_set_new(cap, store_capture_name(i),
			    json_integer((json_int_t)r->capture[i]));
	json_object_set_new(o, "capture", cap);
	counts = json_object();
	json_object_set_new(counts, "copied",
	    json_integer((json_int_t)r->files_copied));
	json_object_set_new(counts, "unchanged",
	    json_integer((json_int_t)r->files_unchanged));
	json_object_set_new(counts, "deleted",
	    json_integer((json_int_t)r->files_deleted));
	json_object_set_new(counts, "versioned",
	    json_integer((json_int_t)r->files_versioned));
	json_object_set_new(counts, "failed",
	    json_integer((json_int_t)r->files_failed));
	json_object_set_new(o, "counts", counts);
	json_object_set_new(o, "message", control_cstr_json(r->message));
	if (r->details_json != NULL &&
	    (details = json_loads(r->details_json, 0, NULL)) != NULL)
		json_object_set_new(o, "details", details);
	return o;
}

json_t *
control_error(json_t *id, int code, const char *msg)
{
	json_t *o, *e;

	o = json_object();
	json_object_set(o, "id", id != NULL ? id : json_null());
	json_object_set_new(o, "ok", json_false());
	e = json_object();
	json_object_set_new(e, "code", json_string(vg_err_codename(code)));
	json_object_set_new(e, "message", control_cstr_json(msg));
	json_object_set_new(o, "error", e);
	return o;
}

json_t *
control_ok(json_t *id, json_t *result)
{
	json_t *o;

	o = json_object();
	json_object_set(o, "id", id != NULL ? id : json_null());
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "result", result != NULL ? result : json_null());
	return o;
}

/*
 * Find a job the peer may act on.  "NAME" is the peer's own job; an admin
 * may also name "OWNER:NAME", or a NAME that only one owner has.
 */
int
control_find_job(struct control_ctx *ctx, const struct control_peer *peer,
    const char *spec, struct vg_job_row *row, struct vg_err *err)
{
	struct vg_job_row *rows = NULL;
	const char *colon;
	struct passwd *pw;
	size_t n = 0, i, hit = 0, nhits = 0;
	char owner[256];

	memset(row, 0, sizeof *row);
	if ((colon = strchr(spec, ':')) != NULL) {
		if (!peer->admin) {
			vg_err_set(err, VG_ERR_PERM, "only root or the vigil "
			    "group may name another owner's job (%s)", spec);
			return -1;
		}
		snprintf(owner, sizeof owner, "%.*s", (int)(colon - spec),
		    spec);
		if ((pw = getpwnam(owner)) == NULL) {
			vg_err_set(err, VG_ERR_NOTFOUND, "no user %s", owner);
			return -1;
		}
		return store_job_get(ctx->store, pw->pw_uid, colon + 1, row,
		    err);
	}
	if (store_job_get(ctx->store, peer->uid, spec, row, err) == 0)
		return 0;
	/* a database error is that error, not "no such job" */
	if (err != NULL && err->code != VG_ERR_NOTFOUND)
		return -1;
	if (!peer->admin)
		goto notfound;
	if (store_jobs_list(ctx->store, true, 0, &rows, &n, err) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (strcmp(rows[i].name, spec) == 0) {
			hit = i;
			nhits++;
		}
	if (nhits == 1) {
		*row = rows[hit];
		memset(&rows[hit], 0, sizeof rows[hit]);
		job_rows_free(rows, n);
		return 0;
	}
	job_rows_free(rows, n);
	if (nhits > 1) {
		vg_err_set(err, VG_ERR_INVALID, "several users have a job "
		    "named %s; name it as OWNER:%s", spec, spec);
		return -1;
	}
notfound:
	vg_err_set(err, VG_ERR_NOTFOUND, "no job named %s; `vigil jobs list` "
	    "shows your jobs", spec);
	return -1;
}

bool
control_may_see(const struct control_peer *peer, uid_t owner)
{
	return peer->admin || peer->uid == owner;
}

static const char *
control_param_str(json_t *params, const char *key)
{
	json_t *v = json_object_get(params, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool
control_param_bool(json_t *params, const char *key)
{
	return json_is_true(json_object_get(params, key));
}

/* --- jobs --- */

static json_t *
control_diags_json(const struct vg_diags *d)
{
	json_t *a, *o;
	size_t i;

	a = json_array();
	for (i = 0; i < d->n; i++) {
		o = json_object();
		json_object_set_new(o, "level", json_string(
		    d->v[i].level == VG_DIAG_ERROR ? "error" : "note"));
		json_object_set_new(o, "file", control_cstr_json(d->v[i].file));
		json_object_set_new(o, "line", json_integer(d->v[i].line));
		json_object_set_new(o, "job", control_cstr_json(d->v[i].job));
		json_object_set_new(o, "key", control_cstr_json(d->v[i].key));
		json_object_set_new(o, "message",
		    control_cstr_json(d->v[i].msg));
		json_object_set_new(o, "hint", control_cstr_json(d->v[i].hint));
		json_array_append_new(a, o);
	}
	return a;
}

static void control_save_file_order(struct control_ctx *, uid_t,
    const struct vg_jobfile *, bool);

static int
control_jobs_import(struct control_ctx *ctx, const struct control_peer *peer,
    json_t *params, json_t **result, struct vg_err *err)
{
	const char *text, *filename;
	struct vg_jobfile *jf = NULL;
	struct vg_diags diags = { 0 };
	struct vg_check_ctx cc;
	struct vg_job_put *puts = NULL;
	uid_t *scope = NULL;
	size_t nscope = 0, i, k;
	struct passwd *pw;
	bool replace;
	int rc = -1;
	json_t *res;

	text = control_param_str(params, "text");
	filename = control_param_str(params, "filename");
	replace = control_param_bool(params, "replace");
	if (text == NULL) {
		vg_err_set(err, VG_ERR_INVALID, "jobs.import needs \"text\"");
		return -1;
	}
	if (filename == NULL)
		filename = "(jobs file)";
	(void)config_parse(filename, text, strlen(text), &jf, &diags);
	memset(&cc, 0, sizeof cc);
	cc.caller_uid = peer->admin ? 0 : peer->uid;
	cc.check_paths = true;
	if (jf != NULL)
		(void)config_check(jf, filename, &cc, &diags);
	if (jf == NULL || diags.nerrors > 0) {
		res = json_object();
		json_object_set_new(res, "diagnostics",
		    control_diags_json(&diags));
		*result = res;
		vg_err_set(err, VG_ERR_PARSE, "%s: %zu error%s; nothing was "
		    "imported", filename, diags.nerrors,
		    diags.nerrors == 1 ? "" : "s");
		goto out;
	}
	puts = calloc(jf->njobs + 1, sizeof *puts);
	scope = calloc(jf->njobs + 1, sizeof *scope);
	if (puts == NULL || scope == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	scope[nscope++] = peer->uid;
	for (i = 0; i < jf->njobs; i++) {
		uid_t owner = peer->uid;

		if (jf->jobs[i]->owner != NULL) {
			if ((pw = getpwnam(jf->jobs[i]->owner)) == NULL) {
				vg_err_set(err, VG_ERR_INVALID, "%s:%u: job %s: "
				    "owner %s: no such user", filename,
				    jf->jobs[i]->line, jf->jobs[i]->name,
				    jf->jobs[i]->owner);
				goto out;
			}
			if (pw->pw_uid != peer->uid && !peer->admin) {
				vg_err_set(err, VG_ERR_PERM, "%s:%u: job %s: "
				    "only root may set owner = %s", filename,
				    jf->jobs[i]->line, jf->jobs[i]->name,
				    jf->jobs[i]->owner);
				goto out;
			}
			owner = pw->pw_uid;
		}
		puts[i].owner_uid = owner;
		puts[i].name = jf->jobs[i]->name;
		puts[i].definition = jf->jobs[i]->text;
		for (k = 0; k < nscope && scope[k] != owner; k++)
			;
		if (k == nscope)
			scope[nscope++] = owner;
	}
	if (store_jobs_import(ctx->store, replace ? STORE_IMPORT_REPLACE :
	    STORE_IMPORT_MERGE, puts, jf->njobs, scope, nscope, peer->uid,
	    jf->preamble, err) == -1)
		goto out;
	control_save_file_order(ctx, peer->uid, jf, replace);
	res = json_object();
	json_object_set_new(res, "jobs", json_integer((json_int_t)jf->njobs));
	json_object_set_new(res, "replace", json_boolean(replace));
	json_object_set_new(res, "diagnostics", control_diags_json(&diags));
	*result = res;
	rc = 0;
out:
	free(puts);
	free(scope);
	jobfile_free(jf);
	diags_free(&diags);
	return rc;
}

/* The order of the jobs in the caller's last imported file, kept as the
 * setting "order:<uid>" (a JSON array of names). */
static void
control_save_file_order(struct control_ctx *ctx, uid_t uid,
    const struct vg_jobfile *jf, bool replace)
{
	char key[64], *old = NULL, *text;
	json_t *a = NULL, *v;
	size_t i, k;
	bool seen;

	snprintf(key, sizeof key, "order:%u", (unsigned)uid);
	if (!replace && store_setting_get(ctx->store, key, &old, NULL) == 0 &&
	    old != NULL)
		a = json_loads(old, 0, NULL);
	free(old);
	if (!json_is_array(a)) {
		json_decref(a);
		a = json_array();
	}
	for (i = 0; i < jf->njobs; i++) {
		seen = false;
		json_array_foreach(a, k, v)
			if (json_is_string(v) && strcmp(json_string_value(v),
			    jf->jobs[i]->name) == 0)
				seen = true;
		if (!seen)
			json_array_append_new(a, json_string(jf->jobs[i]->name));
	}
	if ((text = json_dumps(a, JSON_COMPACT)) != NULL)
		(void)store_setting_set(ctx->store, key, text, NULL);
	free(text);
	json_decref(a);
}

static size_t
control_order_index(json_t *order, const char *name)
{
	json_t *v;
	size_t k;

	json_array_foreach(order, k, v)
		if (json_is_string(v) && strcmp(json_string_value(v), name) ==
		    0)
			return k;
	return (size_t)-1;
}

static void
control_sort_by_file_order(struct control_ctx *ctx, uid_t uid,
    struct vg_job_row *rows, size_t n)
{
	char key[64], *text = NULL;
	json_t *order;
	struct vg_job_row tmp;
	size_t i, j, a, b;

	snprintf(key, sizeof key, "order:%u", (unsigned)uid);
	if (store_setting_get(ctx->store, key, &text, NULL) == -1 ||
	    text == NULL)
		return;
	order = json_loads(text, 0, NULL);
	free(text);
	if (!json_is_array(order)) {
		json_decref(order);
		return;
	}
	/* Insertion sort: job sets are small.  Jobs not in the list keep
	 * their relative order after the listed ones. */
	for (i = 1; i < n; i++) {
		tmp = rows[i];
		a = control_order_index(order, tmp.name);
		for (j = i; j > 0; j--) {
			b = control_order_index(order, rows[j - 1].name);
			if (b <= a)
				break;
			rows[j] = rows[j - 1];
		}
		rows[j] = tmp;
	}
	json_decref(order);
}

static int
control_jobs_export(struct control_ctx *ctx, const struct control_peer *peer,
    json_t *params, json_t **result, struct vg_err *err)
{
	struct vg_job_row *rows = NULL;
	struct vg_job_def **defs = NULL;
	struct vg_diags diags = { 0 };
	char *preamble = NULL, *text = NULL;
	size_t n = 0, i, nd = 0;
	int rc = -1;
	json_t *t;

	if (store_jobs_list(ctx->store, false, peer->uid, &rows, &n, err) == -1)
		return -1;
	if (store_preamble_get(ctx->store, peer->uid, &preamble, err) == -1)
		goto out;
	control_sort_by_file_order(ctx, peer->uid, rows, n);
	if ((defs = calloc(n + 1, sizeof *defs)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((defs[nd] = config_parse_job(rows[i].definition,
		    &diags)) == NULL) {
			vg_err_set(err, VG_ERR_PARSE, "stored job %s no longer "
			    "parses", rows[i].name);
			goto out;
		}
		nd++;
	}
	if ((text = config_export(preamble, defs, nd)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	if ((t = json_string(text)) == NULL) {
		vg_err_set(err, VG_ERR_INVALID, "the jobs hold text that is "
		    "not UTF-8 and cannot be exported");
		goto out;
	}
	*result = json_object();
	json_object_set_new(*result, "text", t);
	rc = 0;
out:
	for (i = 0; i < nd; i++)
		job_def_free(defs[i]);
	free(defs);
	free(text);
	free(preamble);
	diags_free(&diags);
	job_rows_free(rows, n);
	return rc;
}

json_t *
control_job_json(struct control_ctx *ctx, const struct vg_job_row *row,
    bool full)
{
	struct vg_job_def *def;
	struct vg_diags diags = { 0 };
	struct vg_run_row *runs = NULL;
	size_t nruns = 0, i;
	json_t *o, *a;

	o = json_object();
	json_object_set_new(o, "id", json_integer(row->id));
	json_object_set_new(o, "name", control_cstr_json(row->name));
	json_object_set_new(o, "owner", control_user_json(row->owner_uid));
	json_object_set_new(o, "owner_uid", json_integer(row->owner_uid));
	if ((def = config_parse_job(row->definition, &diags)) != NULL) {
		json_object_set_new(o, "mode",
		    json_string(config_mode_name(def->mode)));
		json_object_set_new(o, "schedule",
		    control_cstr_json(def->schedule));
		a = json_array();
		for (i = 0; i < def->sources.n; i++)
			json_array_append_new(a,
			    control_cstr_json(def->sources.v[i]));
		json_object_set_new(o, "sources", a);
		json_object_set_new(o, "destination",
		    control_cstr_json(def->destination));
		job_def_free(def);
	}
	diags_free(&diags);
	json_object_set_new(o, "last_run", control_time_json(row->last_run *
	    1000));
	json_object_set_new(o, "next_run", control_time_json(row->next_run *
	    1000));
	if (store_runs_list(ctx->store, row->id, true, 0, 1, &runs, &nruns,
	    NULL) == 0 && nruns > 0)
		json_object_set_new(o, "last_status", json_string(
		    store_run_status_name(runs[0].status)));
	else
		json_object_set_new(o, "last_status", json_null());
	run_rows_free(runs, nruns);
	if (full) {
		/* Raw when it is UTF-8 (restore and edit parse it back);
		 * escaped for display otherwise. */
		json_t *d = json_string(row->definition);

		json_object_set_new(o, "definition_escaped",
		    json_boolean(d == NULL));
		json_object_set_new(o, "definition", d != NULL ? d :
		    control_cstr_json(row->definition));
	}
	return o;
}

static int
control_jobs_list(struct control_ctx *ctx, const struct control_peer *peer,
    json_t *params, json_t **result, struct vg_err *err)
{
	struct vg_job_row *rows = NULL;
	size_t n = 0, i;
	json_t *a;

	if (store_jobs_list(ctx->store, peer->admin, peer->uid, &rows, &n,
	    err) == -1)
		return -1;
	a = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(a, control_job_json(ctx, &rows[i], false));
	job_rows_free(rows, n);
	*result = a;
	return 0;
}

static int
control_jobs_show(struct control_ctx *ctx, const struct control_peer *peer,
    json_t *params, json_t **result, struct vg_err *err)
{
	struct vg_job_row row;
	const char *name = control_param_str(params, "job");

	if (name == NULL) {
		vg_err_set(err, VG_ERR_INVALID, "jobs.show needs \"job\"");
		return -1;
	}
	if (control_find_job(ctx, peer, name, &row, err) == -1)
		return -1;
	*result = control_job_json(ctx, &row, true);
	job_row_free(&row);
	return 0;
}

/* --- runs --- */

static int
control_run(struct control_ctx *ctx, const struct control_peer *peer,
    json_t *params, json_t **result, struct vg_err *err)
{
	struct vg_job_row row;
	struct runner_request req;
	const char *name = control_param_str(params, "job");
	enum vg_run_status status;
	int64_t run_id = 0;
	char *plan = NULL;
	size_t planlen = 0;
	FILE *planfp = NULL;
	int rc = -1;

	if (name == NULL) {
		vg_err_set(err, VG_ERR_INVALID, "run needs \"job\"");
		return -1;
	}
	if (control_find_job(ctx, peer, name, &row, err) == -1)
		return -1;
	memset(&req, 0, sizeof req);
	req.job_id = row.id;
	req.trigger = "manual";
	req.dry_run = control_param_bool(params, "dry_run");
	req.rescan = control_param_bool(params, "rescan");
	req.progress = ctx->progress;
	req.progress_arg = ctx->progress_arg;
	req.cancel = ctx->cancel;
	if (req.dry_run) {
		if ((planfp = open_memstream(&plan, &planlen)) == NULL) {
			vg_err_sys(err, "out of memory");
			goto out;
		}
		req.plan_out = planfp;
	}
	if (runner_run(ctx->store, ctx->state_dir, &req, &run_id, &status,
	    err) == -1)
		goto out;
	*result = json_object();
	json_object_set_new(*result, "run", json_integer(run_id));
	json_object_set_new(*result, "status",
	    json_string(store_run_status_name(status)));
	if (planfp != NULL) {
		fclose(planfp);
		planfp = NULL;
		json_object_set_new(*result, "plan", json_stringn_nocheck(
		    plan, planlen));
	}
	rc = 0;
out:
	if (planfp != NULL)
		fclose(planfp);
	free(plan);
	job_row_free(&row);
	return rc;
}

static int
control_history(struct control_ctx *ctx, const struct control_peer *peer,
    json_t *params, json_t **result, struct vg_err *err)
{
	struct vg_job_row row;
	struct vg_run_row *runs = NULL;
	const char *name = control_param_str(params, "job");
	json_t *lim = json_object_get(params, "limit");
	size_t n = 0, i, limit = CONTROL_HISTORY_DEFAULT;
	int64_t job_id = 0;
	json_t *a;

	if (json_is_integer(lim) && json_integer_value(lim) >= 0)
		limit = (size_t)json_integer_value(lim);
	if (name != NULL) {
		if (control_find_job(ctx, peer, name, &row, err) == -1)
			return -1;
		job_id = row.id;
		job_row_free(&row);
	}
	if (store_runs_list(ctx->store, job_id, peer->admin, peer->uid, limit,
	    &runs, &n, err) == -1)
		return -1;
	a = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(a, control_run_json(&runs[i]));
	run_rows_free(runs, n);
	*result = a;
	return 0;
}

static int
control_log(struct control_ctx *ctx, const struct control_peer *peer,
    json_t *params, json_t **result, struct vg_err *err)
{
	struct vg_run_row run;
	struct vg_run_file *files = NULL;
	json_t *idv = json_object_get(params, "run"), *o, *a, *f;
	size_t n = 0, i;

	if (!json_is_integer(idv)) {
		vg_err_set(err, VG_ERR_INVALID, "log needs \"run\" (a number)");
		return -1;
	}
	memset(&run, 0, sizeof run);
	if (store_run_get(ctx->store, json_integer_value(idv), &run,
	    err) == -1)
		return -1;
	if (!control_may_see(peer, run.owner_uid)) {
		run_row_free(&run);
		/* Same answer as a missing run: don't confirm it exists. */
		vg_err_set(err, VG_ERR_NOTFOUND, "no run %lld",
		    (long long)json_integer_value(idv));
		return -1;
	}
	if (store_run_files(ctx->store, run.id, &files, &n, err) == -1) {
		run_row_free(&run);
		return -1;
	}
	o = control_run_json(&run);
	a = json_array();
	for (i = 0; i < n; i++) {
		f = json_object();
		json_object_set_new(f, "path", control_str_json(files[i].path,
		    files[i].path_len));
		json_object_set_new(f, "capture",
		    control_cstr_json(files[i].capture));
		json_object_set_new(f, "problem",
		    control_cstr_json(files[i].problem));
		json_object_set_new(f, "detail",
		    control_cstr_json(files[i].detail));
		json_array_append_new(a, f);
	}
	json_object_set_new(o, "problems", a);
	run_files_free(files, n);
	run_row_free(&run);
	*result = o;
	return 0;
}

struct control_method {
	const char	*name;
	int		(*fn)(struct control_ctx *, const struct control_peer *,
			    json_t *, json_t **, struct vg_err *);
};

static const struct control_method control_methods[] = {
	{ "jobs.import", control_jobs_import },
	{ "jobs.export", control_jobs_export },
	{ "jobs.list", control_jobs_list },
	{ "jobs.show", control_jobs_show },
	{ "run", control_run },
	{ "history", control_history },
	{ "log", control_log },
};

json_t *
control_handle(struct control_ctx *ctx, const struct control_peer *peer,
    json_t *request)
{
	json_t *id, *params, *result = NULL, *resp;
	const char *method;
	struct vg_err err;
	size_t i;

	vg_err_clear(&err);
	if (!json_is_object(request))
		return control_error(NULL, VG_ERR_PARSE,
		    "a request must be a JSON object");
	id = json_object_get(request, "id");
	method = control_param_str(request, "method");
	params = json_object_get(request, "params");
	if (method == NULL)
		return control_error(id, VG_ERR_PARSE,
		    "a request needs \"method\"");
	if (params != NULL && !json_is_object(params))
		return control_error(id, VG_ERR_PARSE,
		    "\"params\" must be an object");
	for (i = 0; i < sizeof control_methods / sizeof control_methods[0];
	    i++) {
		if (strcmp(control_methods[i].name, method) != 0)
			continue;
		if (control_methods[i].fn(ctx, peer, params, &result,
		    &err) == -1) {
			resp = control_error(id, err.code != 0 ? err.code :
			    VG_ERR_INTERNAL, err.msg[0] != '\0' ? err.msg :
			    "request failed");
			if (result != NULL)
				json_object_set_new(json_object_get(resp,
				    "error"), "detail", result);
			return resp;
		}
		return control_ok(id, result);
	}
	return control_error(id, VG_ERR_INVALID, "unknown method");
}
