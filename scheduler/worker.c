/* worker.c: one child process per run (see worker.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "common/platform.h"
#include "scheduler/runner.h"
#include "scheduler/worker.h"

/* The channel's descriptor in the child. */
#define WORKER_CHANNEL_FD	3

struct worker {
	pid_t			 pid;
	struct ipc_conn		 conn;
	struct runner_plan	 plan;
	json_t			*progress;
	struct vg_engine_result	 res;
	bool			 have_result;
	bool			 stopping;
	bool			 dry_run;
	char			*plan_text;
	enum vg_run_status	 stop_status;
	char			*stop_message;
	int			 signals_sent;
	bool			 reaped;	/* waited for: never signal
						   the pid again */
	int			 wstatus;
};

static volatile sig_atomic_t worker_cancel;

static void
worker_on_term(int sig)
{
	(void)sig;
	worker_cancel = 1;
}

/* ---- child side ---- */

struct worker_child {
	int			fd;
	struct timespec		last;
	enum engine_phase	phase;
};

static void
worker_send(int fd, json_t *msg)
{
	struct vg_err err;

	if (ipc_send(fd, msg, &err) == -1)
		_exit(70);	/* the parent is gone or broken */
}

static void
worker_child_progress(const struct engine_progress *p, void *arg)
{
	struct worker_child *wc = arg;
	struct timespec now;
	json_t *m;
	char *cur;

	clock_gettime(CLOCK_MONOTONIC, &now);
	/* A phase change goes out at once: the service resumes the apps it
	 * closed as soon as the copy is over. */
	if (p->phase == wc->phase && p->phase != ENGINE_PHASE_DONE &&
	    (now.tv_sec - wc->last.tv_sec) * 1000 +
	    (now.tv_nsec - wc->last.tv_nsec) / 1000000 < 200)
		return;
	wc->last = now;
	wc->phase = p->phase;
	m = json_object();
	json_object_set_new(m, "type", json_string("progress"));
	json_object_set_new(m, "phase",
	    json_string(engine_phase_name(p->phase)));
	json_object_set_new(m, "files", json_integer((json_int_t)p->files_done));
	json_object_set_new(m, "copied",
	    json_integer((json_int_t)p->files_copied));
	json_object_set_new(m, "bytes", json_integer((json_int_t)p->bytes_done));
	json_object_set_new(m, "bytes_todo",
	    json_integer((json_int_t)p->bytes_todo));
	if (p->current != NULL && (cur = log_escape(p->current)) != NULL) {
		json_object_set_new(m, "current", json_string(cur));
		free(cur);
	}
	worker_send(wc->fd, m);
	json_decref(m);
}

static void __attribute__((noreturn))
worker_child(struct runner_plan *plan, bool rescan, bool dry_run, int chan)
{
	char *plantext = NULL;
	size_t planlen = 0;
	FILE *planfp = NULL;
	struct runner_request req;
	struct worker_child wc;
	struct vg_engine_result res;
	struct sigaction sa;
	struct vg_err err;
	sigset_t mask;
	json_t *m;

	(void)plat_die_with_parent();
	/* Descriptors: 0-2 stay (stderr is the service's log), the channel
	 * becomes 3, nothing else is kept. */
	if (chan != WORKER_CHANNEL_FD &&
	    dup2(chan, WORKER_CHANNEL_FD) == -1)
		_exit(71);
	plat_close_fds_from(WORKER_CHANNEL_FD + 1);

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = worker_on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The service blocks SIGTERM, SIGINT and SIGHUP for its signalfd and
	 * the mask is inherited: unblock them, or stop requests (cancel,
	 * max-runtime, vigild stopping) never reach the engine. */
	sigemptyset(&mask);
	(void)sigprocmask(SIG_SETMASK, &mask, NULL);

	if (plat_drop_to_user(plan->row.owner_uid) == -1) {
		log_warn("worker: cannot become uid %u",
		    (unsigned)plan->row.owner_uid);
		_exit(72);
	}
	memset(&wc, 0, sizeof wc);
	wc.fd = WORKER_CHANNEL_FD;
	memset(&req, 0, sizeof req);
	req.job_id = plan->row.id;
	req.rescan = rescan;
	req.progress = worker_child_progress;
	req.progress_arg = &wc;
	req.cancel = &worker_cancel;
	req.dry_run = dry_run;
	if (dry_run) {
		if ((planfp = open_memstream(&plantext, &planlen)) == NULL)
			_exit(73);
		req.plan_out = planfp;
	}
	vg_err_clear(&err);
	memset(&res, 0, sizeof res);
	if (runner_execute(plan, &req, &res, &err) == -1 &&
	    res.message == NULL && err.msg[0] != '\0')
		res.message = strdup(err.msg);
	if (planfp != NULL) {
		fclose(planfp);
		m = json_object();
		json_object_set_new(m, "type", json_string("plan"));
		/* The plan's paths are escaped: it is UTF-8 text. */
		json_object_set_new(m, "text", json_stringn_nocheck(plantext,
		    planlen));
		worker_send(WORKER_CHANNEL_FD, m);
		json_decref(m);
		free(plantext);
	}
	m = json_object();
	json_object_set_new(m, "type", json_string("result"));
	json_object_set_new(m, "result", runner_result_to_json(&res));
	worker_send(WORKER_CHANNEL_FD, m);
	json_decref(m);
	_exit(0);
}

/* ---- parent side ---- */

struct worker *
worker_spawn(struct runner_plan *plan, bool rescan, bool dry_run,
    struct vg_err *err)
{
	struct worker *w;
	int sv[2] = { -1, -1 };
	pid_t pid;

	if ((w = calloc(1, sizeof *w)) == NULL) {
		vg_err_sys(err, "out of memory");
		return NULL;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		vg_err_sys(err, "socketpair for the worker");
		free(w);
		return NULL;
	}
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		vg_err_sys(err, "fork of the worker");
		close(sv[0]);
		close(sv[1]);
		free(w);
		return NULL;
	}
	if (pid == 0) {
		close(sv[0]);
		worker_child(plan, rescan, dry_run, sv[1]);
	}
	close(sv[1]);
	(void)fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	w->pid = pid;
	w->dry_run = dry_run;
	ipc_conn_init(&w->conn, sv[0]);
	w->plan = *plan;		/* the worker owns the plan now */
	memset(plan, 0, sizeof *plan);
	return w;
}

int
worker_fd(const struct worker *w)
{
	return w->conn.fd;
}

pid_t
worker_pid(const struct worker *w)
{
	return w->pid;
}

int64_t
worker_run_id(const struct worker *w)
{
	return w->plan.run_id;
}

int64_t
worker_job_id(const struct worker *w)
{
	return w->plan.row.id;
}

uid_t
worker_owner(const struct worker *w)
{
	return w->plan.row.owner_uid;
}

const char *
worker_job_name(const struct worker *w)
{
	return w->plan.row.name;
}

json_t *
worker_progress(const struct worker *w)
{
	return w->progress;
}

int
worker_handle(struct worker *w,
    void (*on_progress)(struct worker *, json_t *, void *), void *arg)
{
	struct vg_err err;
	json_t *msg;
	const char *type;
	enum ipc_read_result r;

	for (;;) {
		vg_err_clear(&err);
		r = ipc_read_frame(&w->conn, &msg, &err);
		if (r == IPC_READ_AGAIN)
			return 0;
		if (r == IPC_READ_EOF)
			return 1;
		if (r == IPC_READ_ERROR) {
			log_warnx("worker %ld of run %lld: %s", (long)w->pid,
			    (long long)w->plan.run_id, err.msg);
			return 1;
		}
		type = json_string_value(json_object_get(msg, "type"));
		if (type != NULL && strcmp(type, "progress") == 0) {
			json_decref(w->progress);
			w->progress = msg;
			if (on_progress != NULL)
				on_progress(w, msg, arg);
			continue;
		}
		if (type != NULL && strcmp(type, "plan") == 0 &&
		    w->plan_text == NULL &&
		    json_is_string(json_object_get(msg, "text"))) {
			w->plan_text = strdup(json_string_value(
			    json_object_get(msg, "text")));
			json_decref(msg);
			continue;
		}
		if (type != NULL && strcmp(type, "result") == 0 &&
		    !w->have_result) {
			if (runner_result_from_json(json_object_get(msg,
			    "result"), &w->res) == 0)
				w->have_result = true;
			else {
				engine_result_free(&w->res);
				log_warnx("worker of run %lld sent a bad result",
				    (long long)w->plan.run_id);
			}
		}
		json_decref(msg);
	}
}

void
worker_stop(struct worker *w, enum vg_run_status status, const char *message)
{
	if (!w->stopping) {
		w->stopping = true;
		w->stop_status = status;
		free(w->stop_message);
		w->stop_message = message != NULL ? strdup(message) : NULL;
	}
	if (w->reaped)
		return;
	if (w->signals_sent++ == 0)
		(void)kill(w->pid, SIGTERM);
	else
		(void)kill(w->pid, SIGKILL);
}

void
worker_kill(struct worker *w)
{
	if (w->reaped)
		return;
	(void)kill(w->pid, SIGKILL);
	w->signals_sent++;
}

static int
worker_reap(struct worker *w, int *wstatus)
{
	pid_t r;

	if (w->reaped) {	/* worker_finish() again: a record retried */
		*wstatus = w->wstatus;
		return 0;
	}
	for (;;) {
		r = waitpid(w->pid, wstatus, 0);
		if (r == w->pid) {
			w->reaped = true;
			w->wstatus = *wstatus;
			return 0;
		}
		if (r == -1 && errno == EINTR)
			continue;
		return -1;
	}
}

int
worker_finish(struct worker *w, struct vg_store *st, json_t *extra,
    enum vg_run_status *status, struct vg_err *err)
{
	struct vg_engine_result crash;
	struct vg_engine_result *res;
	char msg[256];
	int ws = 0;

	(void)worker_reap(w, &ws);
	memset(&crash, 0, sizeof crash);
	if (w->have_result) {
		res = &w->res;
		if (w->stopping && (res->status == VG_RUN_CANCELLED ||
		    res->status == VG_RUN_FAILED)) {
			res->status = w->stop_status;
			if (w->stop_message != NULL) {
				free(res->message);
				res->message = strdup(w->stop_message);
			}
		}
	} else {
		res = &crash;
		crash.status = w->stopping ? w->stop_status : VG_RUN_FAILED;
		if (w->stopping && w->stop_message != NULL)
			snprintf(msg, sizeof msg, "%s", w->stop_message);
		else if (WIFSIGNALED(ws))
			snprintf(msg, sizeof msg, "the worker was killed by "
			    "signal %d (%s) before it finished; files already "
			    "in place are complete, the next run completes the "
			    "rest", WTERMSIG(ws), strsignal(WTERMSIG(ws)));
		else if (WIFEXITED(ws) && WEXITSTATUS(ws) == 72)
			snprintf(msg, sizeof msg, "the worker could not become "
			    "the job's owner (uid %u)",
			    (unsigned)w->plan.row.owner_uid);
		else
			snprintf(msg, sizeof msg, "the worker exited with status "
			    "%d before it finished", WIFEXITED(ws) ?
			    WEXITSTATUS(ws) : -1);
		crash.message = strdup(msg);
	}
	*status = res->status;
	if (w->dry_run) {
		engine_result_free(&crash);
		return 0;
	}
	if (runner_record(st, &w->plan, res, NULL, extra, err) == -1) {
		engine_result_free(&crash);
		return -1;
	}
	engine_result_free(&crash);
	return 0;
}

void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	if (w->conn.fd != -1)
		close(w->conn.fd);
	ipc_conn_reset(&w->conn);
	json_decref(w->progress);
	engine_result_free(&w->res);
	runner_plan_free(&w->plan);
	free(w->stop_message);
	free(w->plan_text);
	free(w);
}

struct snapshot_set *
worker_take_snapshots(struct worker *w)
{
	struct snapshot_set *set = w->plan.snapshots;
	size_t i;

	w->plan.snapshots = NULL;
	for (i = 0; set != NULL && w->plan.sources != NULL &&
	    w->plan.job != NULL && i < w->plan.job->sources.n; i++) {
		w->plan.sources[i].read_from = NULL;
		w->plan.sources[i].staging = NULL;
	}
	return set;
}

const char *
worker_plan_text(const struct worker *w)
{
	return w->plan_text;
}

bool
worker_is_dry_run(const struct worker *w)
{
	return w->dry_run;
}
