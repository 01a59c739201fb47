/* service.c: vigild's main loop (see service.h). */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/platform.h"
#include "db/store.h"
#include "common/sessions.h"
#include "scheduler/control.h"
#include "scheduler/quiesce.h"
#include "scheduler/runner.h"
#include "scheduler/sched.h"
#include "scheduler/server.h"
#include "scheduler/service.h"
#include "scheduler/worker.h"

/* How long running workers get to stop after SIGTERM before SIGKILL. */
#define SVC_STOP_GRACE_MS	20000
/* After max-runtime's SIGTERM, how long before SIGKILL. */
#define SVC_KILL_GRACE_MS	30000
/* A run whose record could not be written (vigil.db held by another
 * process past the busy timeout) is retried this often, and stays
 * "running" for status and run --wait until it is written. */
#define SVC_RECORD_RETRY_MS	2000

enum svc_kind {
	SVC_SRC_SERVER = 1,
	SVC_SRC_TIMER,
	SVC_SRC_WAKE,
	SVC_SRC_DEADLINE,
	SVC_SRC_SIGNAL,
	SVC_SRC_WORKER,
	SVC_SRC_QUIESCE,	/* agent deadlines */
	SVC_SRC_SESSIONS,	/* logins and logouts */
};

struct svc_src {
	enum svc_kind	 kind;
	void		*obj;
};

struct svc_waiter {
	uint64_t	 conn;
	json_t		*id;
};

struct svc_job {
	int64_t			 id;
	uid_t			 owner;
	char			*name;
	char			*definition;
	struct sched_job	*sj;
	bool			 catchup;	/* next start is a missed run */
	unsigned		 postponed;	/* postponed in a row */
	bool			 rescan;	/* asked with the manual run */
	struct svc_waiter	*waiters;	/* run --wait */
	size_t			 nwaiters;
	int64_t			 done_run;	/* a run that ended at once
						   (pre-run check) */
	enum vg_run_status	 done_status;
	char			*start_error;	/* why the last start failed
						   (NULL: it did not) */
	int			 start_code;
};

struct svc_run {
	struct svc_src		 src;
	struct worker		*w;		/* NULL while agents are asked */
	struct runner_plan	 plan;		/* until the worker takes it */
	struct quiesce_round	*round;		/* NULL: no agents involved */
	bool			 resumed;	/* resume sent after the copy */
	int64_t			 run_id;	/* 0 for a dry run */
	char			*job_name;
	int64_t			 job_id;
	uid_t			 owner;
	bool			 dry;
	bool			 rescan;
	struct svc_waiter	 dry_waiter;	/* who asked for the dry run */
	int64_t			 deadline_ms;	/* max-runtime, 0 = none */
	int64_t			 kill_ms;	/* SIGKILL after this, 0 = not
						   yet stopping */
	int64_t			 record_ms;	/* the worker is done but its
						   record failed: retry at
						   this time, 0 = no */
	unsigned		 record_tries;
	struct svc_run		*next;
};

/* A recorded run whose agents still owe a resume confirmation. */
struct svc_settle {
	struct quiesce_round	*round;
	int64_t			 run_id;
	struct svc_settle	*next;
};

struct svc {
	const struct service_opts *opts;
	struct vg_store		*st;
	struct vg_server	*srv;
	struct vg_clock		*clk;
	struct vg_clock_timer	*tmr, *wake, *deadline, *qtimer;
	int			 epfd, sigfd;
	struct svc_src		 src_server, src_tmr, src_wake, src_deadline,
				 src_sig, src_quiesce, src_sessions;
	struct vg_sessions	*sessions;
	struct vg_quiesce	*quiesce;
	struct svc_settle	*settling;
	struct svc_job		**jobs;
	size_t			 njobs;
	struct svc_run		*runs;
	unsigned		 nrunning;	/* real runs (not dry) */
	unsigned		 concurrency;
	int			 inhibit_fd;
	bool			 inhibit_warned;
	bool			 stopping;
	int64_t			 stop_deadline;
	int64_t			 slept_ms;
	time_t			 started;
	struct control_ctx	 ctl;
};

static void	svc_tick(struct svc *s);
static void	svc_reply_waiters(struct svc *s, struct svc_job *j,
		    json_t *answer);
static json_t	*svc_sessions_json(struct svc *s,
		    const struct control_peer *peer);

/* ---- jobs ---- */

static void
svc_job_free(struct svc_job *j)
{
	size_t i;

	if (j == NULL)
		return;
	for (i = 0; i < j->nwaiters; i++)
		json_decref(j->waiters[i].id);
	free(j->waiters);
	sched_job_free(j->sj);
	free(j->start_error);
	free(j->name);
	free(j->definition);
	free(j);
}

static struct svc_job *
svc_find_job(struct svc *s, int64_t id)
{
	size_t i;

	/* Entries are NULL while svc_load_jobs() moves them to a new set. */
	for (i = 0; i < s->njobs; i++)
		if (s->jobs[i] != NULL && s->jobs[i]->id == id)
			return s->jobs[i];
	return NULL;
}

static struct svc_run *
svc_find_run_of_job(struct svc *s, int64_t job_id)
{
	struct svc_run *r;

	for (r = s->runs; r != NULL; r = r->next)
		if (!r->dry && r->job_id == job_id)
			return r;
	return NULL;
}

static void
svc_persist_times(struct svc *s, struct svc_job *j)
{
	struct vg_err err;

	if (store_job_set_times(s->st, j->id, (int64_t)j->sj->last_run,
	    (int64_t)j->sj->next_run, &err) == -1)
		log_warnx("job %s: cannot save its next run: %s", j->name,
		    err.msg);
}

/* The latest successful run's end, from the history. */
static time_t
svc_last_success(struct svc *s, int64_t job_id, bool *last_running)
{
	struct vg_run_row *runs = NULL;
	size_t n = 0, i;
	time_t t = 0;

	*last_running = false;
	if (store_runs_list(s->st, job_id, true, 0, 100, &runs, &n, NULL) == -1)
		return 0;
	if (n > 0 && runs[0].status == VG_RUN_RUNNING)
		*last_running = true;
	for (i = 0; i < n; i++)
		if (runs[i].status == VG_RUN_OK) {
			t = (time_t)(runs[i].ended / 1000);
			break;
		}
	run_rows_free(runs, n);
	return t;
}

/* Record a run that never started (missed and skipped). */
static void
svc_record_skip(struct svc *s, struct svc_job *j, const char *trigger,
    enum vg_run_status status, const char *reason)
{
	struct vg_run_row row;
	struct vg_err err;
	int64_t run_id;

	if (store_run_begin(s->st, j->id, trigger, false, &run_id, &err) == -1) {
		log_warnx("job %s: %s", j->name, err.msg);
		return;
	}
	memset(&row, 0, sizeof row);
	row.id = run_id;
	row.job_id = j->id;
	row.status = status;
	row.path = "skip";
	row.path_reason = (char *)reason;
	row.message = (char *)reason;
	if (store_run_finish(s->st, &row, NULL, 0, &err) == -1)
		log_warnx("job %s: %s", j->name, err.msg);
	log_set_context(j->name, run_id);
	log_info("run skipped: %s", reason);
	log_set_context(NULL, 0);
}

static void
svc_missed(struct svc *s, struct svc_job *j, time_t now)
{
	struct sched_missed_result mr;

	sched_missed(j->sj, now, &mr);
	switch (mr.action) {
	case SCHED_MISSED_RUN:
		j->catchup = true;
		log_set_context(j->name, 0);
		log_info("a run was missed (due %lld): one catch-up run now",
		    (long long)mr.slot);
		log_set_context(NULL, 0);
		break;
	case SCHED_MISSED_SKIP:
		svc_record_skip(s, j, "missed", VG_RUN_SKIPPED, mr.reason);
		break;
	case SCHED_MISSED_NONE:
		break;
	}
	svc_persist_times(s, j);
}

/*
 * (Re)load the jobs from the store.  Jobs whose definition did not change
 * keep their scheduling state; new or changed ones start from the store's
 * last and next run.  at_start: apply the missed-run policy to all.
 */
static int
svc_load_jobs(struct svc *s, bool at_start)
{
	struct vg_job_row *rows = NULL;
	struct svc_job **jobs = NULL, *old, *j;
	struct vg_job_def *def;
	struct vg_diags diags = { 0 };
	struct vg_err err;
	size_t n = 0, i, k, nj = 0;
	time_t now = clock_now(s->clk);
	bool last_running;

	if (store_jobs_list(s->st, true, 0, &rows, &n, &err) == -1) {
		log_warnx("cannot list jobs: %s", err.msg);
		return -1;
	}
	if ((jobs = calloc(n + 1, sizeof *jobs)) == NULL) {
		job_rows_free(rows, n);
		return -1;
	}
	for (i = 0; i < n; i++) {
		old = svc_find_job(s, rows[i].id);
		if (old != NULL && strcmp(old->definition,
		    rows[i].definition) == 0) {
			/* Unchanged: move it over. */
			for (k = 0; k < s->njobs; k++)
				if (s->jobs[k] == old)
					s->jobs[k] = NULL;
			jobs[nj++] = old;
			continue;
		}
		if ((def = config_parse_job(rows[i].definition,
		    &diags)) == NULL) {
			log_warnx("job %s: stored definition does not parse; "
			    "it will not be scheduled", rows[i].name);
			diags_free(&diags);
			continue;
		}
		if ((j = calloc(1, sizeof *j)) == NULL ||
		    (j->sj = sched_job_new(rows[i].id, def, &err)) == NULL) {
			log_warnx("job %s: %s", rows[i].name, j != NULL ?
			    err.msg : "out of memory");
			free(j);
			job_def_free(def);
			continue;
		}
		job_def_free(def);
		j->id = rows[i].id;
		j->owner = rows[i].owner_uid;
		j->name = strdup(rows[i].name);
		j->definition = strdup(rows[i].definition);
		j->sj->created = (time_t)rows[i].created;
		j->sj->last_run = (time_t)rows[i].last_run;
		j->sj->next_run = (time_t)rows[i].next_run;
		j->sj->last_success = svc_last_success(s, j->id, &last_running);
		if (old != NULL) {
			/* Changed definition: keep what is going on. */
			j->sj->running = old->sj->running;
			j->sj->requested = old->sj->requested;
			j->waiters = old->waiters;
			j->nwaiters = old->nwaiters;
			old->waiters = NULL;
			old->nwaiters = 0;
			j->sj->next_run = sched_next_due(j->sj, now);
		} else if (at_start)
			j->sj->interrupted = last_running;
		else
			j->sj->next_run = sched_next_due(j->sj, now);
		if (svc_find_run_of_job(s, j->id) != NULL)
			j->sj->running = true;
		jobs[nj++] = j;
		if (at_start)
			svc_missed(s, j, now);
		else
			svc_persist_times(s, j);
	}
	/* What is left of the old set was removed (or failed to parse). */
	for (k = 0; k < s->njobs; k++) {
		json_t *gone;

		if (s->jobs[k] == NULL)
			continue;
		gone = control_error(NULL, VG_ERR_NOTFOUND,
		    "the job was removed");
		svc_reply_waiters(s, s->jobs[k], gone);
		json_decref(gone);
		svc_job_free(s->jobs[k]);
	}
	free(s->jobs);
	s->jobs = jobs;
	s->njobs = nj;
	job_rows_free(rows, n);
	return 0;
}

/* ---- power ---- */

static void
svc_inhibit(struct svc *s, bool on)
{
	if (on && s->inhibit_fd == -1) {
		s->inhibit_fd = plat_inhibit_sleep("vigil",
		    "a backup run is in progress");
		if (s->inhibit_fd == -1 && !s->inhibit_warned) {
			log_info("no sleep inhibitor (logind not reachable: %s); "
			    "runs go on without one", strerror(errno));
			s->inhibit_warned = true;
		}
	} else if (!on && s->inhibit_fd != -1) {
		close(s->inhibit_fd);
		s->inhibit_fd = -1;
	}
}

/* ---- runs ---- */

static void
svc_status_notify(struct svc *s)
{
	struct svc_run *r;
	json_t *p;
	char buf[256];
	size_t off = 0;

	if (s->nrunning == 0) {
		(void)sd_notifyf(0, "STATUS=idle, %zu job%s", s->njobs,
		    s->njobs == 1 ? "" : "s");
		return;
	}
	off = (size_t)snprintf(buf, sizeof buf, "running:");
	for (r = s->runs; r != NULL && off < sizeof buf - 64; r = r->next) {
		if (r->dry)
			continue;
		p = r->w != NULL ? worker_progress(r->w) : NULL;
		off += (size_t)snprintf(buf + off, sizeof buf - off,
		    " %s (%s)", r->job_name, r->w == NULL ? "asking agents" :
		    p != NULL ? json_string_value(json_object_get(p, "phase")) :
		    "starting");
	}
	(void)sd_notifyf(0, "STATUS=%s", buf);
}

static void
svc_arm_deadline(struct svc *s)
{
	struct svc_run *r;
	int64_t at = 0, t;
	struct vg_err err;

	for (r = s->runs; r != NULL; r = r->next) {
		t = r->record_ms != 0 ? r->record_ms : r->kill_ms != 0 ?
		    r->kill_ms : r->deadline_ms;
		if (t != 0 && (at == 0 || t < at))
			at = t;
	}
	if (s->stopping && (at == 0 || s->stop_deadline < at))
		at = s->stop_deadline;
	if (at == 0)
		(void)clock_timer_disarm(s->deadline, &err);
	else if (clock_timer_arm_mono(s->deadline, at, &err) == -1)
		log_warnx("cannot arm the deadline timer: %s", err.msg);
}

static void
svc_arm_quiesce(struct svc *s)
{
	int64_t at = quiesce_next_deadline(s->quiesce);
	struct vg_err err;

	if (at < 0)
		(void)clock_timer_disarm(s->qtimer, &err);
	else if (clock_timer_arm_mono(s->qtimer, at, &err) == -1)
		log_warnx("cannot arm the agent deadline timer: %s", err.msg);
}

static json_t *
svc_event(int64_t run_id, const char *job, int64_t job_id, uid_t owner,
    const char *status)
{
	json_t *o = json_object();
	struct passwd *pw = getpwuid(owner);

	json_object_set_new(o, "run", json_integer(run_id));
	json_object_set_new(o, "job", json_string(job));
	json_object_set_new(o, "job_id", json_integer(job_id));
	json_object_set_new(o, "owner", pw != NULL ?
	    json_string(pw->pw_name) : json_integer(owner));
	if (status != NULL)
		json_object_set_new(o, "status", json_string(status));
	return o;
}

static json_t *
svc_run_event(struct svc_run *r, const char *status)
{
	return svc_event(r->run_id, r->job_name, r->job_id, r->owner, status);
}

static void
svc_reply_waiters(struct svc *s, struct svc_job *j, json_t *answer)
{
	size_t i;

	for (i = 0; i < j->nwaiters; i++) {
		(void)server_reply(s->srv, j->waiters[i].conn, j->waiters[i].id,
		    answer, NULL);
		json_decref(j->waiters[i].id);
	}
	free(j->waiters);
	j->waiters = NULL;
	j->nwaiters = 0;
}

/* Send resume to the agents that need it now (after the copy, or when the
 * run ends any other way). */
static void
svc_resume(struct svc *s, struct svc_run *r)
{
	uint64_t *conns = NULL;
	size_t n = 0, i;
	json_t *ev;
	int64_t now = clock_mono_ms(s->clk);

	if (r->round == NULL || !quiesce_round_decided(r->round))
		return;
	if (quiesce_round_resume(s->quiesce, r->round, now, &conns, &n) == -1)
		return;
	r->resumed = true;
	if (n > 0) {
		ev = quiesce_round_resume_event(r->round);
		for (i = 0; i < n; i++)
			if (server_send_event(s->srv, conns[i], "resume", ev,
			    NULL) == -1)
				quiesce_round_send_failed(s->quiesce, r->round,
				    conns[i], now);
		json_decref(ev);
	}
	free(conns);
	svc_arm_quiesce(s);
}

/* A recorded run's round is settled: store its final record. */
static void
svc_settle_check(struct svc *s)
{
	struct svc_settle **pp, *st;
	json_t *d, *old;
	struct vg_run_row row;
	char *text;

	for (pp = &s->settling; (st = *pp) != NULL;) {
		if (!quiesce_round_settled(st->round)) {
			pp = &st->next;
			continue;
		}
		memset(&row, 0, sizeof row);
		if (store_run_get(s->st, st->run_id, &row, NULL) == 0) {
			old = row.details_json != NULL ?
			    json_loads(row.details_json, 0, NULL) : NULL;
			if (!json_is_object(old)) {
				json_decref(old);
				old = json_object();
			}
			d = quiesce_round_details(st->round);
			json_object_update(old, d);
			json_decref(d);
			if ((text = json_dumps(old, JSON_COMPACT)) != NULL)
				(void)store_run_set_details(s->st, st->run_id,
				    text, NULL);
			free(text);
			json_decref(old);
			run_row_free(&row);
		}
		quiesce_round_free(s->quiesce, st->round);
		*pp = st->next;
		free(st);
	}
}

static void
svc_run_remove(struct svc *s, struct svc_run *r)
{
	struct svc_run **pp;
	struct svc_settle *st;

	for (pp = &s->runs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	if (r->w != NULL)
		(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, worker_fd(r->w), NULL);
	if (!r->dry && s->nrunning > 0)
		s->nrunning--;
	if (r->round != NULL) {
		if (quiesce_round_settled(r->round) || r->dry)
			/* the same as the out-of-memory fallback below, on
			 * purpose: NOLINTNEXTLINE(bugprone-branch-clone) */
			quiesce_round_free(s->quiesce, r->round);
		else if ((st = calloc(1, sizeof *st)) != NULL) {
			st->round = r->round;
			st->run_id = r->run_id;
			st->next = s->settling;
			s->settling = st;
		} else
			quiesce_round_free(s->quiesce, r->round);
	}
	/* at the latest when the run is over */
	if (r->w != NULL)
		runner_release_set(s->st, worker_take_snapshots(r->w),
		    r->run_id);
	runner_release(s->st, &r->plan);
	worker_free(r->w);
	runner_plan_free(&r->plan);
	json_decref(r->dry_waiter.id);
	free(r->job_name);
	free(r);
	if (s->nrunning == 0)
		svc_inhibit(s, false);
	svc_arm_deadline(s);
	svc_arm_quiesce(s);
}

/* The run is over and recorded as status: tell everyone. */
static void
svc_run_done(struct svc *s, struct svc_run *r, enum vg_run_status status)
{
	struct svc_job *j;
	json_t *ev, *ans;
	time_t passed;

	ev = svc_run_event(r, store_run_status_name(status));
	(void)server_broadcast(s->srv, "run-finished", ev, r->owner);
	json_decref(ev);
	if ((j = svc_find_job(s, r->job_id)) != NULL) {
		passed = sched_run_finished(j->sj, clock_now(s->clk),
		    status == VG_RUN_OK);
		if (passed != 0)
			log_info("job %s: the slot at %lld passed while it ran; "
			    "skipped", j->name, (long long)passed);
		svc_persist_times(s, j);
		ans = json_object();
		json_object_set_new(ans, "run", json_integer(r->run_id));
		json_object_set_new(ans, "status",
		    json_string(store_run_status_name(status)));
		ans = control_ok(NULL, ans);	/* takes ans */
		svc_reply_waiters(s, j, ans);
		json_decref(ans);
	}
	svc_run_remove(s, r);
	svc_status_notify(s);
}

static void
svc_dry_answer(struct svc *s, struct svc_run *r, enum vg_run_status status,
    const char *plan)
{
	json_t *ans;

	ans = json_object();
	json_object_set_new(ans, "run", json_integer(0));
	json_object_set_new(ans, "status",
	    json_string(store_run_status_name(status)));
	json_object_set_new(ans, "plan", json_string(plan != NULL ? plan : ""));
	ans = control_ok(NULL, ans);	/* takes ans */
	if (r->dry_waiter.conn != 0)
		(void)server_reply(s->srv, r->dry_waiter.conn, r->dry_waiter.id,
		    ans, NULL);
	json_decref(ans);
}

/* The quiesce part of a dry run's plan: what the agents would close. */
static char *
svc_dry_quiesce_text(struct svc_run *r, const struct quiesce_outcome *o)
{
	json_t *d, *apps, *a;
	char *text = NULL;
	size_t len = 0, i;
	FILE *fp;
	const char *k;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;
	fprintf(fp, "path: %s (%s)\n", quiesce_path_name(o->path),
	    o->reason != NULL ? o->reason : "");
	if (r->round != NULL) {
		d = quiesce_round_details(r->round);
		apps = json_object_get(d, "apps");
		json_array_foreach(json_object_get(apps, "closed"), i, a)
			fprintf(fp, "would close %s (pid %lld, user %s), then "
			    "reopen it\n", json_string_value(json_object_get(a,
			    "name")), (long long)json_integer_value(
			    json_object_get(a, "pid")), json_string_value(
			    json_object_get(a, "user")));
		json_array_foreach(json_object_get(apps, "refused"), i, a) {
			k = json_string_value(json_object_get(a, "reason"));
			fprintf(fp, "could not close %s (pid %lld): %s; its "
			    "files would be captured by the fallback\n",
			    json_string_value(json_object_get(a, "name")),
			    (long long)json_integer_value(json_object_get(a,
			    "pid")), k != NULL ? k : "");
		}
		json_decref(d);
	}
	fclose(fp);
	return text;
}

static void
svc_on_progress(struct worker *w, json_t *progress, void *arg)
{
	struct svc_run *r = arg;
	struct svc *s;
	const char *phase;
	json_t *ev;

	s = r->src.obj;
	if (r->dry)
		return;
	/* The copy is over: reopen the apps before verify and retention. */
	phase = json_string_value(json_object_get(progress, "phase"));
	if (r->round != NULL && !r->resumed && phase != NULL &&
	    (strcmp(phase, "verify") == 0 || strcmp(phase, "retention") == 0 ||
	    strcmp(phase, "done") == 0))
		svc_resume(s, r);
	/* ... and remove its snapshots: the sources are no longer read. */
	if (phase != NULL && (strcmp(phase, "verify") == 0 ||
	    strcmp(phase, "retention") == 0 || strcmp(phase, "done") == 0))
		runner_release_set(s->st, worker_take_snapshots(w), r->run_id);
	ev = svc_run_event(r, NULL);
	json_object_update(ev, progress);
	json_object_del(ev, "type");
	(void)server_broadcast(s->srv, "progress", ev, r->owner);
	json_decref(ev);
}

/*
 * The worker is done but vigil.db refused its record (another process held
 * it past the busy timeout): keep the run, "running" to status and run
 * --wait, and write the record again every SVC_RECORD_RETRY_MS from
 * svc_deadlines().  False when the run cannot wait (vigild stopping).
 */
static bool
svc_record_later(struct svc *s, struct svc_run *r, const char *why)
{
	if (s->stopping)
		return false;
	if (r->record_ms == 0) {
		log_set_context(r->job_name, r->run_id);
		log_warnx("cannot record the run yet (%s); trying again every "
		    "%d s", why, SVC_RECORD_RETRY_MS / 1000);
		log_set_context(NULL, 0);
		(void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, worker_fd(r->w), NULL);
	}
	r->record_tries++;
	r->deadline_ms = 0;
	r->kill_ms = 0;
	r->record_ms = clock_mono_ms(s->clk) + SVC_RECORD_RETRY_MS;
	svc_arm_deadline(s);
	return true;
}

static bool
svc_record_pending(struct svc *s, int64_t run_id)
{
	struct svc_run *r;

	for (r = s->runs; r != NULL; r = r->next)
		if (r->run_id == run_id && r->record_ms != 0)
			return true;
	return false;
}

static void
svc_run_finished(struct svc *s, struct svc_run *r)
{
	enum vg_run_status status = VG_RUN_FAILED;
	struct vg_err err;
	json_t *extra = NULL;

	vg_err_clear(&err);
	if (r->round != NULL && !r->resumed) {
		/* Ended before the copy was over (cancelled, killed, the
		 * service stopping): reopen what was closed. */
		quiesce_round_interrupt(r->round, "the run ended before its "
		    "copy was over");
		svc_resume(s, r);
	}
	if (r->round != NULL)
		extra = quiesce_round_details(r->round);
	if (worker_finish(r->w, s->st, extra, &status, &err) == -1) {
		json_decref(extra);
		if (!r->dry && svc_record_later(s, r, err.msg))
			return;
		log_warnx("run %lld: cannot record it: %s",
		    (long long)r->run_id, err.msg);
		extra = NULL;
	}
	json_decref(extra);
	if (r->dry) {
		const char *plan = worker_plan_text(r->w);
		struct quiesce_outcome o;
		char *q = NULL, *all = NULL;

		if (r->round != NULL &&
		    quiesce_round_outcome(r->round, &o) == 0)
			q = svc_dry_quiesce_text(r, &o);
		if (asprintf(&all, "%s%s", q != NULL ? q : "", plan != NULL ?
		    plan : "") == -1)
			all = NULL;
		svc_dry_answer(s, r, status, all);
		free(all);
		free(q);
		svc_run_remove(s, r);
		return;
	}
	svc_run_done(s, r, status);
}

/* Record a run that ends without a worker (skipped, postponed, cancelled
 * while its agents were asked, or a worker that could not start). */
static void
svc_record_now(struct svc *s, struct svc_run *r, enum vg_run_status status,
    const char *path, const char *message)
{
	struct vg_engine_result res;
	struct vg_err err;
	json_t *extra = NULL;

	memset(&res, 0, sizeof res);
	res.status = status;
	res.message = message != NULL ? strdup(message) : NULL;
	if (path != NULL) {
		free(r->plan.path);
		r->plan.path = strdup(path);
		free(r->plan.path_reason);
		r->plan.path_reason = message != NULL ? strdup(message) : NULL;
	}
	if (r->round != NULL)
		extra = quiesce_round_details(r->round);
	vg_err_clear(&err);
	if (runner_record(s->st, &r->plan, &res, NULL, extra, &err) == -1)
		log_warnx("run %lld: cannot record it: %s",
		    (long long)r->run_id, err.msg);
	json_decref(extra);
	engine_result_free(&res);
}

/* The agents have answered (or nobody had to be asked): go on. */
static void
svc_run_go(struct svc *s, struct svc_run *r)
{
	struct quiesce_outcome o;
	struct svc_job *j = svc_find_job(s, r->job_id);
	struct epoll_event ev;
	struct vg_err err;
	struct worker *w;
	size_t i;
	time_t now = clock_now(s->clk);

	memset(&o, 0, sizeof o);
	o.path = QUIESCE_PATH_FALLBACK;
	o.reason = "no session agent consulted";
	o.fallback_all = true;
	if (r->round != NULL && quiesce_round_outcome(r->round, &o) == -1)
		return;		/* still asking */
	if (o.path == QUIESCE_PATH_SKIP || o.path == QUIESCE_PATH_POSTPONE) {
		svc_resume(s, r);
		if (r->dry) {
			char *q = svc_dry_quiesce_text(r, &o);

			svc_dry_answer(s, r, VG_RUN_SKIPPED, q);
			free(q);
			svc_run_remove(s, r);
			return;
		}
		svc_record_now(s, r, o.path == QUIESCE_PATH_POSTPONE ?
		    VG_RUN_POSTPONED : VG_RUN_SKIPPED, "skip", o.reason);
		log_set_context(r->job_name, r->run_id);
		log_info("run %s: %s", o.path == QUIESCE_PATH_POSTPONE ?
		    "postponed" : "skipped", o.reason);
		log_set_context(NULL, 0);
		if (o.path == QUIESCE_PATH_POSTPONE && j != NULL) {
			enum vg_run_status st = VG_RUN_POSTPONED;
			time_t when = now + (time_t)o.postpone_s;

			j->postponed = o.postponed;
			svc_run_done(s, r, st);
			/* After sched_run_finished(), which moved next_run to
			 * the next slot: the postponed run comes first. */
			if (j->sj->next_run == 0 || when < j->sj->next_run)
				j->sj->next_run = when;
			svc_persist_times(s, j);
			return;
		}
		svc_run_done(s, r, VG_RUN_SKIPPED);
		return;
	}
	if (j != NULL && !r->dry)
		j->postponed = 0;
	free(r->plan.path);
	free(r->plan.path_reason);
	r->plan.path = strdup(quiesce_path_name(o.path));
	r->plan.path_reason = strdup(o.reason != NULL ? o.reason : "");
	/* How each file is captured: closed-app where the agents closed
	 * what held it, the fallback (snapshot, reflink, verified copy) for
	 * the rest; the parent takes the snapshots now (runner_capture). */
	for (i = 0; i < r->plan.job->sources.n; i++)
		r->plan.sources[i].capture = o.path == QUIESCE_PATH_AGENT ||
		    !o.fallback_all ? VG_CAP_CLOSED_APP : VG_CAP_LIVE;
	r->plan.fallback_capture = VG_CAP_LIVE;
	if (!o.fallback_all && o.fallback_files != NULL)
		for (i = 0; i < o.fallback_files->n; i++)
			(void)strlist_push(&r->plan.fallback_files,
			    o.fallback_files->v[i]);
	vg_err_clear(&err);
	if (!r->dry && runner_capture(s->st, &r->plan, o.path !=
	    QUIESCE_PATH_AGENT && o.fallback_all, &err) == -1) {
		if (r->round != NULL) {
			quiesce_round_interrupt(r->round, err.msg);
			svc_resume(s, r);
		}
		svc_record_now(s, r, VG_RUN_FAILED, NULL, err.msg);
		svc_run_done(s, r, VG_RUN_FAILED);
		return;
	}
	if (!r->dry) {
		log_set_context(r->job_name, r->run_id);
		log_info("copying: path %s (%s)", r->plan.path,
		    r->plan.path_reason);
		log_set_context(NULL, 0);
	}
	vg_err_clear(&err);
	if ((w = worker_spawn(&r->plan, r->rescan, r->dry, &err)) == NULL) {
		log_warnx("run %lld: cannot start its worker: %s",
		    (long long)r->run_id, err.msg);
		if (r->round != NULL) {
			quiesce_round_interrupt(r->round, err.msg);
			svc_resume(s, r);
		}
		if (r->dry) {
			svc_dry_answer(s, r, VG_RUN_FAILED, err.msg);
			svc_run_remove(s, r);
			return;
		}
		svc_record_now(s, r, VG_RUN_FAILED, NULL, err.msg);
		svc_run_done(s, r, VG_RUN_FAILED);
		return;
	}
	r->w = w;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = r;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, worker_fd(w), &ev) == -1) {
		log_warn("epoll for the worker of run %lld",
		    (long long)r->run_id);
		worker_kill(w);
		svc_run_finished(s, r);
		return;
	}
	if (!r->dry && j != NULL && j->sj->max_runtime_s > 0)
		r->deadline_ms = clock_mono_ms(s->clk) +
		    (int64_t)j->sj->max_runtime_s * 1000;
	svc_arm_deadline(s);
	svc_status_notify(s);
}

/* A round changed: act on it. */
static void
svc_round_changed(struct svc *s, struct quiesce_round *q)
{
	struct svc_run *r;

	for (r = s->runs; r != NULL; r = r->next) {
		if (r->round != q)
			continue;
		if (r->w == NULL && quiesce_round_decided(q))
			svc_run_go(s, r);
		else if (r->resumed)
			svc_resume(s, r);	/* late closers need a resume */
		break;
	}
	svc_settle_check(s);
	svc_arm_quiesce(s);
}

static int
svc_start(struct svc *s, struct svc_job *j, bool dry, uint64_t conn,
    json_t *id, bool rescan, struct vg_err *err)
{
	struct runner_request req;
	struct runner_plan plan;
	struct quiesce_request qr;
	struct vg_session *ss = NULL;
	struct svc_run *r = NULL;
	struct vg_err serr;
	struct passwd *pw;
	uint64_t *conns = NULL;
	size_t nss = 0, nconns = 0, i;
	time_t now = clock_now(s->clk);
	int64_t mono = clock_mono_ms(s->clk);
	const char *trigger;
	json_t *e, *ans;

	memset(&req, 0, sizeof req);
	req.job_id = j->id;
	req.dry_run = dry;
	trigger = j->sj->requested != 0 ? "manual" : j->catchup ? "missed" :
	    "schedule";
	req.trigger = trigger;
	if (runner_prepare(s->st, s->ctl.state_dir, &req, &plan, err) == -1)
		return -1;
	if (!dry) {
		j->catchup = false;
		sched_run_started(j->sj, now);
		svc_persist_times(s, j);
	}
	if (plan.done) {
		/* A pre-run check failed; the run is recorded already.  Its
		 * subscribers (run --wait) hear of it as of any other run. */
		(void)sched_run_finished(j->sj, now, false);
		svc_persist_times(s, j);
		j->done_run = plan.run_id;
		j->done_status = plan.status;
		e = svc_event(plan.run_id, j->name, j->id, j->owner, "running");
		json_object_set_new(e, "trigger", json_string(trigger));
		(void)server_broadcast(s->srv, "run-started", e, j->owner);
		json_decref(e);
		e = svc_event(plan.run_id, j->name, j->id, j->owner,
		    store_run_status_name(plan.status));
		(void)server_broadcast(s->srv, "run-finished", e, j->owner);
		json_decref(e);
		ans = json_object();
		json_object_set_new(ans, "run", json_integer(plan.run_id));
		json_object_set_new(ans, "status",
		    json_string(store_run_status_name(plan.status)));
		e = control_ok(NULL, ans);	/* takes ans */
		svc_reply_waiters(s, j, e);
		json_decref(e);
		runner_plan_free(&plan);
		return 0;
	}
	if ((r = calloc(1, sizeof *r)) == NULL ||
	    (r->job_name = strdup(j->name)) == NULL) {
		free(r);
		runner_plan_free(&plan);
		vg_err_sys(err, "out of memory");
		return -1;
	}
	r->src.kind = SVC_SRC_WORKER;
	r->src.obj = s;
	r->plan = plan;
	r->run_id = plan.run_id;
	r->job_id = j->id;
	r->owner = j->owner;
	r->dry = dry;
	r->rescan = rescan;
	if (dry) {
		r->dry_waiter.conn = conn;
		r->dry_waiter.id = json_incref(id);
	}
	r->next = s->runs;
	s->runs = r;

	/* Who is there, and whose apps hold the files. */
	vg_err_clear(&serr);
	if (sessions_list(s->sessions, &ss, &nss, &serr) == -1) {
		log_warnx("cannot list sessions (%s); deciding from the "
		    "connected agents only", serr.msg);
		nss = 0;
	}
	memset(&qr, 0, sizeof qr);
	qr.run_id = r->run_id;
	qr.job = j->name;
	qr.owner_uid = j->owner;
	pw = getpwuid(j->owner);
	qr.owner = pw != NULL ? pw->pw_name : NULL;
	qr.def = r->plan.job;
	qr.postponed = j->postponed;
	qr.dry_run = dry;
	if ((r->round = quiesce_plan(s->quiesce, &qr, ss, nss, mono,
	    &serr)) == NULL)
		log_warnx("job %s: cannot plan the agents' part (%s); using "
		    "the fallback", j->name, serr.msg);
	free(ss);

	if (!dry) {
		s->nrunning++;
		svc_inhibit(s, true);
		e = svc_run_event(r, "running");
		json_object_set_new(e, "trigger", json_string(trigger));
		(void)server_broadcast(s->srv, "run-started", e, r->owner);
		json_decref(e);
		log_set_context(j->name, r->run_id);
		log_info("run started (%s)", trigger);
		log_set_context(NULL, 0);
	}
	if (r->round != NULL && !quiesce_round_decided(r->round) &&
	    quiesce_round_targets(r->round, &conns, &nconns) == 0 &&
	    nconns > 0) {
		e = quiesce_round_event(r->round);
		for (i = 0; i < nconns; i++)
			if (server_send_event(s->srv, conns[i], "quiesce", e,
			    NULL) == -1)
				quiesce_round_send_failed(s->quiesce, r->round,
				    conns[i], mono);
		json_decref(e);
		free(conns);
		log_set_context(j->name, r->run_id);
		log_info("asked %zu session agent%s to close apps", nconns,
		    nconns == 1 ? "" : "s");
		log_set_context(NULL, 0);
		svc_arm_quiesce(s);
		svc_status_notify(s);
		if (!quiesce_round_decided(r->round))
			return 0;
	}
	svc_run_go(s, r);
	return 0;
}

/* What sched says to start, then the timers. */
static void
svc_tick(struct svc *s)
{
	struct sched_pick pick;
	struct sched_wakeup wu;
	struct sched_job **sjs = NULL;
	struct svc_job *j;
	struct vg_err err;
	time_t now;
	size_t i;
	json_t *ev;

	if (s->stopping)
		return;
	now = clock_now(s->clk);
	if ((sjs = calloc(s->njobs + 1, sizeof *sjs)) == NULL)
		return;
	for (i = 0; i < s->njobs; i++)
		sjs[i] = s->jobs[i]->sj;
	memset(&pick, 0, sizeof pick);
	if (sched_pick(sjs, s->njobs, now, s->concurrency, s->nrunning, &pick,
	    &err) == 0) {
		for (i = 0; i < pick.nstart; i++) {
			if ((j = svc_find_job(s, pick.start[i]->id)) == NULL)
				continue;
			vg_err_clear(&err);
			if (svc_start(s, j, false, 0, NULL, j->rescan,
			    &err) == -1) {
				json_t *e;

				log_warnx("job %s: cannot start a run: %s",
				    j->name, err.msg);
				j->sj->requested = 0;
				free(j->start_error);
				j->start_error = strdup(err.msg);
				j->start_code = err.code != 0 ? err.code :
				    VG_ERR_INTERNAL;
				e = control_error(NULL, err.code != 0 ?
				    err.code : VG_ERR_INTERNAL, err.msg);
				svc_reply_waiters(s, j, e);
				json_decref(e);
			}
			j->rescan = false;
		}
		for (i = 0; i < pick.ndeferred; i++)
			if ((j = svc_find_job(s, pick.deferred[i]->id)) != NULL)
				svc_persist_times(s, j);
		sched_pick_release(&pick);
	}
	/* The dead-man's switch. */
	for (i = 0; i < s->njobs; i++) {
		j = s->jobs[i];
		if (!sched_overdue(j->sj, now) || j->sj->overdue_alerted)
			continue;
		j->sj->overdue_alerted = true;
		log_set_context(j->name, 0);
		log_warnx("ALERT: no successful run for more than %llu s "
		    "(warn-after)", (unsigned long long)j->sj->warn_after_s);
		log_set_context(NULL, 0);
		ev = json_object();
		json_object_set_new(ev, "kind", json_string("overdue"));
		json_object_set_new(ev, "job", json_string(j->name));
		json_object_set_new(ev, "job_id", json_integer(j->id));
		(void)server_broadcast(s->srv, "alert", ev, j->owner);
		json_decref(ev);
	}
	sched_next_wakeup(sjs, s->njobs, now, &wu);
	free(sjs);
	if (clock_timer_arm_at(s->tmr, wu.at, &err) == -1)
		log_warnx("cannot arm the schedule timer: %s", err.msg);
	if (s->wake != NULL) {
		if (wu.wake_at != 0)
			(void)clock_timer_arm_at(s->wake, wu.wake_at, &err);
		else
			(void)clock_timer_disarm(s->wake, &err);
	}
}

static void
svc_clock_changed(struct svc *s, const char *why)
{
	time_t now = clock_now(s->clk);
	size_t i;

	log_info("%s: recomputing the schedule", why);
	for (i = 0; i < s->njobs; i++)
		svc_missed(s, s->jobs[i], now);
}

/* ---- requests that need the loop ---- */

static json_t *
svc_req_run(struct svc *s, const struct server_req *req)
{
	json_t *params = json_object_get(req->msg, "params");
	const char *name = json_string_value(json_object_get(params, "job"));
	bool dry = json_is_true(json_object_get(params, "dry_run"));
	bool wait = json_is_true(json_object_get(params, "wait"));
	bool rescan = json_is_true(json_object_get(params, "rescan"));
	struct vg_job_row row;
	struct svc_job *j;
	struct svc_run *r;
	struct svc_waiter *nw;
	struct vg_err err;
	json_t *ans;
	char msg[256];

	vg_err_clear(&err);
	if (name == NULL)
		return control_error(NULL, VG_ERR_INVALID, "run needs \"job\"");
	if (control_find_job(&s->ctl, req->peer, name, &row, &err) == -1)
		return control_error(NULL, err.code, err.msg);
	j = svc_find_job(s, row.id);
	job_row_free(&row);
	if (j == NULL)
		return control_error(NULL, VG_ERR_INVALID, "the job cannot be "
		    "scheduled: its definition does not parse; re-import it");
	if (s->stopping)
		return control_error(NULL, VG_ERR_CANCELLED, "vigild is "
		    "stopping");
	if (dry) {
		if (svc_start(s, j, true, req->conn, req->id, rescan,
		    &err) == -1)
			return control_error(NULL, err.code != 0 ? err.code :
			    VG_ERR_INTERNAL, err.msg);
		return NULL;	/* answered when the plan is ready */
	}
	if ((r = svc_find_run_of_job(s, j->id)) != NULL) {
		snprintf(msg, sizeof msg, "job %s is already running (run "
		    "%lld); `vigil cancel %lld` stops it", j->name,
		    (long long)r->run_id,
		    (long long)r->run_id);
		return control_error(NULL, VG_ERR_EXISTS, msg);
	}
	if (wait) {
		if ((nw = realloc(j->waiters, (j->nwaiters + 1) *
		    sizeof *nw)) == NULL)
			return control_error(NULL, VG_ERR_INTERNAL,
			    "out of memory");
		j->waiters = nw;
		j->waiters[j->nwaiters].conn = req->conn;
		j->waiters[j->nwaiters].id = json_incref(req->id);
		j->nwaiters++;
	}
	if (j->sj->requested == 0)
		j->sj->requested = clock_now(s->clk);
	j->rescan = j->rescan || rescan;
	j->done_run = 0;
	free(j->start_error);
	j->start_error = NULL;
	svc_tick(s);
	if (wait)
		return NULL;	/* answered when the run ends */
	if (j->start_error != NULL && j->sj->requested == 0 &&
	    svc_find_run_of_job(s, j->id) == NULL)
		/* It could not start (vigil.db held by another process):
		 * the request is dropped; say why rather than "queued". */
		return control_error(NULL, j->start_code, j->start_error);
	ans = json_object();
	if ((r = svc_find_run_of_job(s, j->id)) != NULL) {
		json_object_set_new(ans, "run", json_integer(r->run_id));
		json_object_set_new(ans, "status", json_string("running"));
	} else if (j->done_run != 0) {
		json_object_set_new(ans, "run", json_integer(j->done_run));
		json_object_set_new(ans, "status", json_string(
		    store_run_status_name(j->done_status)));
	} else {
		json_object_set_new(ans, "run", json_integer(0));
		json_object_set_new(ans, "status", json_string("queued"));
	}
	return control_ok(NULL, ans);
}

static json_t *
svc_req_cancel(struct svc *s, const struct server_req *req)
{
	json_t *params = json_object_get(req->msg, "params");
	json_t *idv = json_object_get(params, "run");
	struct svc_run *r;
	struct passwd *pw;
	char msg[256];
	json_t *ans;

	if (!json_is_integer(idv))
		return control_error(NULL, VG_ERR_INVALID, "cancel needs "
		    "\"run\" (a number)");
	for (r = s->runs; r != NULL; r = r->next)
		if (!r->dry && r->run_id == json_integer_value(idv))
			break;
	if (r == NULL || !control_may_see(req->peer, r->owner)) {
		snprintf(msg, sizeof msg, "run %lld is not running",
		    (long long)json_integer_value(idv));
		return control_error(NULL, VG_ERR_NOTFOUND, msg);
	}
	if (r->record_ms != 0) {
		snprintf(msg, sizeof msg, "run %lld has ended; its record "
		    "waits for the database (another process holds it)",
		    (long long)r->run_id);
		return control_error(NULL, VG_ERR_EXISTS, msg);
	}
	pw = getpwuid(req->peer->uid);
	if (pw != NULL)
		snprintf(msg, sizeof msg, "cancelled by %s", pw->pw_name);
	else
		snprintf(msg, sizeof msg, "cancelled by uid %u",
		    (unsigned)req->peer->uid);
	if (r->w == NULL) {
		/* Still asking the agents: nothing was copied. */
		quiesce_round_interrupt(r->round, msg);
		svc_resume(s, r);
		svc_record_now(s, r, VG_RUN_CANCELLED, NULL, msg);
		ans = json_object();
		json_object_set_new(ans, "run", json_integer(r->run_id));
		json_object_set_new(ans, "status", json_string("cancelled"));
		svc_run_done(s, r, VG_RUN_CANCELLED);
		return control_ok(NULL, ans);
	}
	worker_stop(r->w, VG_RUN_CANCELLED, msg);
	if (r->kill_ms == 0)
		r->kill_ms = clock_mono_ms(s->clk) + SVC_KILL_GRACE_MS;
	svc_arm_deadline(s);
	ans = json_object();
	json_object_set_new(ans, "run", json_integer(r->run_id));
	json_object_set_new(ans, "status", json_string("cancelling"));
	return control_ok(NULL, ans);
}

static json_t *
svc_time_json(time_t t)
{
	char *s;
	json_t *j;

	if (t <= 0 || (s = control_iso_time((int64_t)t * 1000)) == NULL)
		return json_null();
	j = json_string(s);
	free(s);
	return j;
}

static json_t *
svc_req_status(struct svc *s, const struct server_req *req)
{
	struct vg_job_row row;
	struct svc_run *r;
	json_t *o, *svc, *jobs, *running, *jo, *ro;
	size_t i;

	o = json_object();
	svc = json_object();
	json_object_set_new(svc, "version", json_string(VIGIL_VERSION));
	json_object_set_new(svc, "pid", json_integer(getpid()));
	json_object_set_new(svc, "mode", json_string(s->opts->user_mode ?
	    "user" : "system"));
	json_object_set_new(svc, "state_dir", json_string(s->opts->state_dir));
	json_object_set_new(svc, "socket", json_string(s->opts->socket_path));
	json_object_set_new(svc, "started", svc_time_json(s->started));
	json_object_set_new(svc, "concurrency", json_integer(s->concurrency));
	json_object_set_new(svc, "running", json_integer(s->nrunning));
	json_object_set_new(o, "service", svc);
	json_object_set_new(o, "sessions", svc_sessions_json(s, req->peer));
	jobs = json_array();
	for (i = 0; i < s->njobs; i++) {
		struct svc_job *j = s->jobs[i];

		if (!control_may_see(req->peer, j->owner))
			continue;
		if (store_job_get_id(s->st, j->id, &row, NULL) == -1)
			continue;
		jo = control_job_json(&s->ctl, &row, false);
		job_row_free(&row);
		json_object_set_new(jo, "next_run",
		    svc_time_json(j->sj->next_run));
		json_object_set_new(jo, "running",
		    json_boolean(svc_find_run_of_job(s, j->id) != NULL));
		json_object_set_new(jo, "overdue", json_boolean(sched_overdue(
		    j->sj, clock_now(s->clk))));
		json_array_append_new(jobs, jo);
	}
	json_object_set_new(o, "jobs", jobs);
	running = json_array();
	for (r = s->runs; r != NULL; r = r->next) {
		if (r->dry || !control_may_see(req->peer, r->owner))
			continue;
		ro = svc_run_event(r, "running");
		if (r->w == NULL)
			json_object_set_new(ro, "phase",
			    json_string("asking agents"));
		else if (worker_progress(r->w) != NULL) {
			json_object_set(ro, "progress", worker_progress(r->w));
			json_object_del(json_object_get(ro, "progress"),
			    "type");
		}
		json_array_append_new(running, ro);
	}
	json_object_set_new(o, "running", running);
	return control_ok(NULL, o);
}

/* Every session with its agent: `vigil sessions`, status. */
static json_t *
svc_sessions_json(struct svc *s, const struct control_peer *peer)
{
	struct vg_session *ss = NULL;
	struct vg_err err;
	size_t n = 0, i, k;
	json_t *all, *out, *it;

	if (sessions_list(s->sessions, &ss, &n, &err) == -1)
		n = 0;
	all = quiesce_sessions_json(s->quiesce,
	    sessions_backend_name(s->sessions), ss, n, clock_mono_ms(s->clk));
	free(ss);
	if (peer->admin)
		return all;
	out = json_array();
	json_array_foreach(all, i, it) {
		k = (size_t)json_integer_value(json_object_get(it, "uid"));
		if ((uid_t)k == peer->uid)
			json_array_append(out, it);
	}
	json_decref(all);
	return out;
}

static json_t *
svc_req_agent(struct svc *s, const struct server_req *req)
{
	json_t *params = json_object_get(req->msg, "params");
	struct quiesce_round *changed = NULL;
	struct passwd *pw;
	struct vg_err err;
	json_t *result = NULL;
	char *who;

	vg_err_clear(&err);
	if (req->role != SERVER_ROLE_AGENT)
		return control_error(NULL, VG_ERR_PERM, "agent requests need a "
		    "connection that said hello as an agent");
	if (strcmp(req->method, "agent.register") == 0) {
		pw = getpwuid(req->peer->uid);
		if (quiesce_agent_register(s->quiesce, s->sessions, req->conn,
		    req->peer->uid, pw != NULL ? pw->pw_name : NULL, params,
		    clock_mono_ms(s->clk), &result, &err) == -1) {
			who = log_escape(err.msg);
			log_warnx("agent of uid %u (pid %ld) refused: %s",
			    (unsigned)req->peer->uid, (long)req->peer->pid,
			    who != NULL ? who : "?");
			free(who);
			return control_error(NULL, err.code, err.msg);
		}
		log_info("agent of uid %u (pid %ld) registered",
		    (unsigned)req->peer->uid, (long)req->peer->pid);
		(void)server_broadcast(s->srv, "session", result,
		    req->peer->uid);
		return control_ok(NULL, result != NULL ? result :
		    json_object());
	}
	if (quiesce_agent_message(s->quiesce, req->conn, req->method, params,
	    clock_mono_ms(s->clk), &changed, &err) == -1) {
		if (changed != NULL)
			svc_round_changed(s, changed);
		return control_error(NULL, err.code, err.msg);
	}
	if (changed != NULL)
		svc_round_changed(s, changed);
	return control_ok(NULL, json_object());
}

static json_t *
svc_dispatch(void *arg, struct vg_server *srv, const struct server_req *req)
{
	struct svc *s = arg;
	json_t *ans;

	(void)srv;
	if (strncmp(req->method, "agent.", 6) == 0)
		return svc_req_agent(s, req);
	if (strcmp(req->method, "sessions") == 0)
		return control_ok(NULL, svc_sessions_json(s, req->peer));
	if (strcmp(req->method, "run") == 0)
		return svc_req_run(s, req);
	if (strcmp(req->method, "cancel") == 0)
		return svc_req_cancel(s, req);
	if (strcmp(req->method, "status") == 0)
		return svc_req_status(s, req);
	ans = control_handle(&s->ctl, req->peer, req->msg);
	if (strncmp(req->method, "jobs.import", 11) == 0 &&
	    json_is_true(json_object_get(ans, "ok"))) {
		(void)svc_load_jobs(s, false);
		svc_tick(s);
	}
	return ans;
}

static void
svc_conn_closed(void *arg, struct vg_server *srv, uint64_t conn,
    const struct control_peer *peer, enum server_role role)
{
	struct svc *s = arg;
	size_t i, k, w;
	struct svc_run *r;

	(void)srv;
	(void)peer;
	if (role == SERVER_ROLE_AGENT &&
	    quiesce_agent_find(s->quiesce, conn) != NULL) {
		log_info("agent of uid %u left", (unsigned)peer->uid);
		if (quiesce_agent_gone(s->quiesce, conn,
		    clock_mono_ms(s->clk)) > 0)
			for (r = s->runs; r != NULL; r = r->next)
				if (r->round != NULL) {
					svc_round_changed(s, r->round);
					break;	/* the list may have changed */
				}
		svc_settle_check(s);
		svc_arm_quiesce(s);
	}
	/* Forget deferred answers to that connection; the runs go on. */
	for (i = 0; i < s->njobs; i++) {
		struct svc_job *j = s->jobs[i];

		for (k = 0, w = 0; k < j->nwaiters; k++) {
			if (j->waiters[k].conn == conn)
				json_decref(j->waiters[k].id);
			else
				j->waiters[w++] = j->waiters[k];
		}
		j->nwaiters = w;
	}
	for (r = s->runs; r != NULL; r = r->next)
		if (r->dry && r->dry_waiter.conn == conn)
			r->dry_waiter.conn = 0;
}

/* ---- signals and timers ---- */

static void
svc_stop(struct svc *s, const char *why)
{
	struct svc_run *r, *next;

	if (s->stopping)
		return;
	s->stopping = true;
	log_info("%s: stopping%s", why, s->runs != NULL ?
	    "; running runs are checkpointed and marked interrupted" : "");
	(void)sd_notify(0, "STOPPING=1");
	s->stop_deadline = clock_mono_ms(s->clk) + SVC_STOP_GRACE_MS;
	for (r = s->runs; r != NULL; r = next) {
		next = r->next;
		if (r->w != NULL) {
			worker_stop(r->w, VG_RUN_INTERRUPTED, "vigild stopped "
			    "while the run was in progress; the next run "
			    "completes it");
			continue;
		}
		/* Still asking agents: nothing copied; reopen what closed. */
		if (r->round != NULL) {
			quiesce_round_interrupt(r->round, "vigild stopped");
			svc_resume(s, r);
		}
		if (r->dry) {
			svc_run_remove(s, r);
			continue;
		}
		svc_record_now(s, r, VG_RUN_INTERRUPTED, NULL, "vigild "
		    "stopped before the run started copying");
		svc_run_done(s, r, VG_RUN_INTERRUPTED);
	}
	svc_arm_deadline(s);
}

static void
svc_deadlines(struct svc *s)
{
	struct svc_run *r, *next;
	struct svc_job *j;
	int64_t now = clock_mono_ms(s->clk), id;
	unsigned tries;
	char msg[256];

	for (r = s->runs; r != NULL; r = next) {
		next = r->next;
		if (r->record_ms != 0) {
			if (now >= r->record_ms) {
				id = r->run_id;
				tries = r->record_tries;
				svc_run_finished(s, r);	/* frees r once
							   recorded */
				if (!svc_record_pending(s, id))
					log_info("run %lld: recorded after %u "
					    "failed tries", (long long)id,
					    tries);
			}
			continue;
		}
		if (r->kill_ms != 0 && now >= r->kill_ms) {
			log_warnx("run %lld did not stop: killing its worker",
			    (long long)r->run_id);
			worker_kill(r->w);
			r->kill_ms = now + SVC_KILL_GRACE_MS;
			continue;
		}
		if (r->deadline_ms != 0 && now >= r->deadline_ms &&
		    r->kill_ms == 0) {
			j = svc_find_job(s, r->job_id);
			snprintf(msg, sizeof msg, "stopped at max-runtime (%llu "
			    "s); files already in place are complete, the next "
			    "run completes the rest", j != NULL ?
			    (unsigned long long)j->sj->max_runtime_s : 0ULL);
			log_warnx("run %lld: %s", (long long)r->run_id,
			    msg);
			worker_stop(r->w, VG_RUN_FAILED, msg);
			r->kill_ms = now + SVC_KILL_GRACE_MS;
		}
	}
	if (s->stopping && now >= s->stop_deadline)
		for (r = s->runs; r != NULL; r = r->next)
			if (r->w != NULL)
				worker_kill(r->w);
	svc_arm_deadline(s);
}

static void
svc_quiesce_timeout(struct svc *s)
{
	struct svc_run *r, *next;
	int late;

	late = quiesce_on_timeout(s->quiesce, clock_mono_ms(s->clk));
	if (late > 0)
		log_warnx("%d session agent%s did not answer in time; their "
		    "files go to the fallback", late, late == 1 ? "" : "s");
	for (r = s->runs; r != NULL; r = next) {
		next = r->next;
		if (r->round == NULL)
			continue;
		if (r->w == NULL && quiesce_round_decided(r->round))
			svc_run_go(s, r);
	}
	svc_settle_check(s);
	svc_arm_quiesce(s);
}

static void
svc_sessions_changed(struct svc *s)
{
	struct vg_err err;
	json_t *all, *it;
	size_t i;

	if (sessions_monitor_flush(s->sessions, &err) != 1)
		return;
	all = svc_sessions_json(s, &(struct control_peer){ .admin = true });
	log_debug("sessions changed: %zu now", json_array_size(all));
	json_array_foreach(all, i, it)
		(void)server_broadcast(s->srv, "session", it, (uid_t)
		    json_integer_value(json_object_get(it, "uid")));
	json_decref(all);
}

static void
svc_signal(struct svc *s)
{
	struct signalfd_siginfo si;

	while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			svc_stop(s, si.ssi_signo == SIGTERM ? "SIGTERM" :
			    "SIGINT");
			break;
		case SIGHUP:
			log_reopen();
			log_info("SIGHUP: logs reopened, jobs reloaded");
			(void)svc_load_jobs(s, false);
			break;
		}
	}
}

static int
svc_add(struct svc *s, int fd, struct svc_src *src, enum svc_kind kind)
{
	struct epoll_event ev;

	src->kind = kind;
	src->obj = s;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = src;
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static unsigned
svc_concurrency(struct svc *s)
{
	char *v = NULL;
	long n;

	if (s->opts->concurrency > 0)
		return s->opts->concurrency;
	if (store_setting_get(s->st, "concurrency", &v, NULL) == 0 &&
	    v != NULL) {
		n = strtol(v, NULL, 10);
		free(v);
		if (n > 0 && n < 64)
			return (unsigned)n;
	}
	return 1;
}

int
service_run(const struct service_opts *opts)
{
	struct svc s;
	struct server_opts so;
	struct vg_err err;
	struct epoll_event evs[32];
	struct svc_src *src;
	struct svc_run *r, *next;
	sigset_t mask;
	char *dbpath = NULL;
	int n, i, rc = 1, timeout, ev;
	int64_t slept;
	size_t k;

	memset(&s, 0, sizeof s);
	s.opts = opts;
	s.epfd = s.sigfd = s.inhibit_fd = -1;
	vg_err_clear(&err);
	signal(SIGPIPE, SIG_IGN);

	if (asprintf(&dbpath, "%s/vigil.db", opts->state_dir) == -1)
		fatalx("out of memory");
	if (store_open(dbpath, &s.st, &err) == -1) {
		log_warnx("%s", err.msg);
		goto out;
	}
	s.ctl.store = s.st;
	s.ctl.state_dir = opts->state_dir;
	s.concurrency = svc_concurrency(&s);
	if ((s.clk = clock_real_new()) == NULL)
		fatalx("cannot create the clock");
	s.started = clock_now(s.clk);
	s.slept_ms = clock_slept_ms(s.clk);

	/* Runs a killed service left behind; the missed-run policy decides
	 * about them once the jobs are loaded. */
	if (svc_load_jobs(&s, true) == -1)
		goto out;
	if (store_runs_mark_interrupted(s.st, &k, &err) == -1)
		log_warnx("%s", err.msg);
	else if (k > 0)
		log_warnx("%zu run%s left running by a stopped vigild marked "
		    "interrupted", k, k == 1 ? "" : "s");
	/* the snapshots of those runs, and of any run that is over */
	runner_cleanup_snapshots(s.st);

	if ((s.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1");
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1 ||
	    (s.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	if ((s.tmr = clock_timer_new(s.clk, false, &err)) == NULL ||
	    (s.deadline = clock_deadline_new(s.clk, &err)) == NULL)
		fatalx("timers: %s", err.msg);
	if ((s.qtimer = clock_deadline_new(s.clk, &err)) == NULL)
		fatalx("timers: %s", err.msg);
	s.wake = clock_timer_new(s.clk, true, &err);
	if (s.wake != NULL && !clock_timer_wakes(s.wake))
		log_info("wake = yes cannot wake this machine (no "
		    "CAP_WAKE_ALARM or no RTC alarm); runs start when it is "
		    "awake");

	if ((s.quiesce = quiesce_new()) == NULL)
		fatalx("out of memory");
	if ((s.sessions = sessions_source_new(&err)) == NULL)
		fatalx("sessions: %s", err.msg);
	log_info("sessions come from %s", sessions_backend_name(s.sessions));

	server_opts_init(&so);
	so.mode = opts->socket_mode;
	so.make_parent = true;
	so.admin_group = opts->user_mode ? NULL : "vigil";
	so.dispatch = svc_dispatch;
	so.closed = svc_conn_closed;
	so.arg = &s;
	if ((s.srv = server_new(opts->socket_path, &so, &err)) == NULL) {
		log_warnx("%s", err.msg);
		goto out;
	}
	if (svc_add(&s, server_fd(s.srv), &s.src_server, SVC_SRC_SERVER) ==
	    -1 ||
	    svc_add(&s, clock_timer_fd(s.tmr), &s.src_tmr, SVC_SRC_TIMER) ==
	    -1 ||
	    svc_add(&s, clock_timer_fd(s.deadline), &s.src_deadline,
	    SVC_SRC_DEADLINE) == -1 ||
	    (s.wake != NULL && svc_add(&s, clock_timer_fd(s.wake), &s.src_wake,
	    SVC_SRC_WAKE) == -1) ||
	    svc_add(&s, clock_timer_fd(s.qtimer), &s.src_quiesce,
	    SVC_SRC_QUIESCE) == -1 ||
	    (sessions_monitor_fd(s.sessions) != -1 &&
	    svc_add(&s, sessions_monitor_fd(s.sessions), &s.src_sessions,
	    SVC_SRC_SESSIONS) == -1) ||
	    svc_add(&s, s.sigfd, &s.src_sig, SVC_SRC_SIGNAL) == -1)
		fatal("epoll_ctl");

	log_info("vigild %s ready: %s mode, state %s, socket %s, %zu job%s, "
	    "concurrency %u", VIGIL_VERSION, opts->user_mode ? "user" :
	    "system", opts->state_dir, opts->socket_path, s.njobs,
	    s.njobs == 1 ? "" : "s", s.concurrency);
	(void)sd_notify(0, "READY=1");
	svc_tick(&s);
	svc_status_notify(&s);

	for (;;) {
		if (s.stopping && s.runs == NULL)
			break;
		timeout = -1;
		n = epoll_wait(s.epfd, evs, 32, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_warn("epoll_wait");
			break;
		}
		for (i = 0; i < n; i++) {
			src = evs[i].data.ptr;
			switch (src->kind) {
			case SVC_SRC_SERVER:
				if (server_process(s.srv) == -1)
					log_warnx("the control socket failed");
				break;
			case SVC_SRC_TIMER:
			case SVC_SRC_WAKE:
				ev = clock_timer_read(src->kind ==
				    SVC_SRC_TIMER ? s.tmr : s.wake, &err);
				if (ev == CLOCK_TIMER_JUMPED)
					svc_clock_changed(&s, "the clock was "
					    "set");
				break;
			case SVC_SRC_DEADLINE:
				(void)clock_timer_read(s.deadline, &err);
				svc_deadlines(&s);
				break;
			case SVC_SRC_SIGNAL:
				svc_signal(&s);
				break;
			case SVC_SRC_QUIESCE:
				(void)clock_timer_read(s.qtimer, &err);
				svc_quiesce_timeout(&s);
				break;
			case SVC_SRC_SESSIONS:
				svc_sessions_changed(&s);
				break;
			case SVC_SRC_WORKER:
				r = (struct svc_run *)src;
				if (worker_handle(r->w, svc_on_progress, r) == 1)
					svc_run_finished(&s, r);
				break;
			}
		}
		slept = clock_slept_ms(s.clk);
		if (slept - s.slept_ms > 1000)
			svc_clock_changed(&s, "the machine slept");
		s.slept_ms = slept;
		svc_tick(&s);
	}
	rc = 0;
out:
	for (r = s.runs; r != NULL; r = next) {
		next = r->next;
		if (r->w != NULL) {
			worker_kill(r->w);
			svc_run_finished(&s, r);
		} else
			svc_run_remove(&s, r);
	}
	while (s.settling != NULL) {
		struct svc_settle *st = s.settling;

		s.settling = st->next;
		quiesce_round_free(s.quiesce, st->round);
		free(st);
	}
	quiesce_free(s.quiesce);
	sessions_free(s.sessions);
	clock_timer_free(s.qtimer);
	for (k = 0; k < s.njobs; k++)
		svc_job_free(s.jobs[k]);
	free(s.jobs);
	server_free(s.srv);
	clock_timer_free(s.tmr);
	clock_timer_free(s.wake);
	clock_timer_free(s.deadline);
	clock_free(s.clk);
	if (s.sigfd != -1)
		close(s.sigfd);
	if (s.epfd != -1)
		close(s.epfd);
	svc_inhibit(&s, false);
	store_close(s.st);
	free(dbpath);
	log_info("vigild stopped");
	return rc;
}
