/*
 * vigil: the command-line client.
 *
 * Every command builds a request (docs/protocol.md) and prints its answer,
 * as text or, with --json, as JSON.  Requests go to vigild over its socket
 * (agent/client.h finds it).  With --state-dir the CLI works without a
 * service instead ("local mode"): the same requests are handled in-process
 * against that state folder, which must be the caller's own.  Local mode is
 * for tests, for recovery while the service is down, and for single-user
 * setups without one.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "db/store.h"
#include "scheduler/control.h"
#include "scheduler/engine.h"
#include "scheduler/report.h"
#include "scheduler/restore.h"
#include "scheduler/snapshot.h"
#include "common/platform.h"
#include "agent/client.h"

/* Exit codes (DESIGN.md, "CLI contract"). */
#define EXIT_OK		0
#define EXIT_ERROR	1
#define EXIT_USAGE	2
#define EXIT_PARTIAL	3
#define EXIT_FAILED	4
#define EXIT_CANCELLED	5
#define EXIT_SKIPPED	6

struct cli {
	const char		*socket_path;
	struct vg_client	*client;
	const char		*state_dir;
	char			*state_dir_buf;
	bool			 json;
	struct vg_store		*store;
	struct control_ctx	 ctx;
	struct control_peer	 peer;
	int64_t			 next_id;
};

static volatile sig_atomic_t cli_cancel;

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: vigil [--socket PATH | --state-dir DIR] [--json] COMMAND [ARGS]\n"
"\n"
"commands:\n"
"  status                                    the service, jobs and running runs\n"
"  cancel RUN                                stop a running run\n"
"  sessions                                  logged-on users and their agents\n"
"  doctor [JOB]                              what would stop tonight's runs\n"
"  run JOB [--wait] [--dry-run] [--rescan]   run a job now and print its record\n"
"  history [JOB] [--limit N]                 past runs, newest first\n"
"  log RUN                                   one run's record and its problem files\n"
"  restore JOB [PATH...] [--as-of RUN|TIME] [--to DIR] [--overwrite] [--dry-run]\n"
"                                            bring files back from a backup\n"
"          [--allow-special]                 (root, archive jobs: setuid files,\n"
"                                            device nodes)\n"
"  jobs list | show JOB                      the jobs you may see\n"
"  jobs validate FILE                        check a jobs file, change nothing\n"
"  jobs import [--replace] FILE              add or replace the jobs a file names\n"
"  jobs export [-o FILE]                     write your jobs as a jobs file\n"
"  jobs edit                                 edit your jobs in $VISUAL/$EDITOR\n"
"\n"
"options:\n"
"  --socket PATH     the service's socket (default: $VIGIL_SOCKET, the\n"
"                    user-mode socket if one listens, /run/vigil/vigil.sock)\n"
"  --state-dir DIR   local mode: work on this state folder without a service\n"
"                    (also $VIGIL_STATE_DIR)\n"
"  --json            machine-readable output for read commands\n"
"  -h, --help        this help;  --version  the version\n"
"\n"
"exit codes of run: 0 ok, 3 partial, 4 failed, 5 cancelled or interrupted,\n"
"6 postponed or skipped; other commands: 0 success, 1 error, 2 usage.\n");
}

static void cli_die_usage(const char *fmt, const char *arg)
    __attribute__((format(printf, 1, 0), noreturn));

static void
cli_die_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "vigil: ");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	fprintf(stderr, fmt, arg);
#pragma GCC diagnostic pop
	fprintf(stderr, "\nTry 'vigil --help'.\n");
	exit(EXIT_USAGE);
}

/* mkdir -p with mode 0700 for the levels we create. */
static int
cli_mkdirs(const char *path)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

static int
cli_open(struct cli *c)
{
	struct vg_err err;
	char *dbpath = NULL;

	vg_err_clear(&err);
	if (cli_mkdirs(c->state_dir) == -1) {
		fprintf(stderr, "vigil: cannot create state folder %s: %s\n",
		    c->state_dir, strerror(errno));
		return -1;
	}
	if (asprintf(&dbpath, "%s/vigil.db", c->state_dir) == -1)
		return -1;
	if (store_open(dbpath, &c->store, &err) == -1) {
		fprintf(stderr, "vigil: %s\n", err.msg);
		free(dbpath);
		return -1;
	}
	free(dbpath);
	c->ctx.store = c->store;
	c->ctx.state_dir = c->state_dir;
	c->peer.uid = getuid();
	c->peer.gid = getgid();
	c->peer.pid = getpid();
	/* Local mode: the caller only ever reaches its own state folder. */
	c->peer.admin = (getuid() == 0);
	return 0;
}

static bool
cli_local(const struct cli *c)
{
	return c->state_dir != NULL;
}

static int
cli_connect(struct cli *c)
{
	struct vg_err err;

	vg_err_clear(&err);
	if ((c->client = client_connect(c->socket_path, &err)) == NULL) {
		fprintf(stderr, "vigil: %s\n", err.msg);
		return -1;
	}
	return 0;
}

/*
 * Make a request and return its result (a new reference), or NULL after
 * printing the error (or handing the error object to *errobj).
 */
static json_t *
cli_call(struct cli *c, const char *method, json_t *params, json_t **errobj)
{
	json_t *req, *resp, *result = NULL, *e = NULL;
	struct vg_err err;
	int rc;

	if (!cli_local(c)) {
		if (c->client == NULL && cli_connect(c) == -1) {
			json_decref(params);
			return NULL;
		}
		vg_err_clear(&err);
		rc = client_call(c->client, method, params, &result, &e, -1,
		    &err);
		json_decref(params);
		if (rc == 0)
			return result;
		if (rc == 1 && errobj != NULL) {
			*errobj = e;
			return NULL;
		}
		fprintf(stderr, "vigil: %s\n", rc == 1 ? json_string_value(
		    json_object_get(e, "message")) : err.msg);
		json_decref(e);
		return NULL;
	}
	if (c->store == NULL && cli_open(c) == -1) {
		json_decref(params);
		return NULL;
	}
	req = json_object();
	json_object_set_new(req, "id", json_integer(++c->next_id));
	json_object_set_new(req, "method", json_string(method));
	json_object_set_new(req, "params", params != NULL ? params :
	    json_object());
	resp = control_handle(&c->ctx, &c->peer, req);
	json_decref(req);
	if (json_is_true(json_object_get(resp, "ok"))) {
		result = json_object_get(resp, "result");
		json_incref(result);
	} else {
		e = json_object_get(resp, "error");
		if (errobj != NULL) {
			*errobj = e;
			json_incref(e);
		} else
			fprintf(stderr, "vigil: %s\n", json_string_value(
			    json_object_get(e, "message")));
	}
	json_decref(resp);
	return result;
}

static void
cli_print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	fputc('\n', stdout);
}

/* ---- progress bar ---- */

struct cli_progress {
	struct timespec	start, last;
	bool		shown;
};

static double
cli_elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void
cli_progress_cb(const struct engine_progress *p, void *arg)
{
	struct cli_progress *cp = arg;
	struct timespec now;
	double el, rate, pct = -1, eta = -1;
	char done[32], rt[32], *cur = NULL;
	int width = 24, fill, i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (p->phase != ENGINE_PHASE_DONE && cp->shown &&
	    cli_elapsed(&cp->last, &now) < 0.1)
		return;
	cp->last = now;
	cp->shown = true;
	el = cli_elapsed(&cp->start, &now);
	rate = el > 0 ? (double)p->bytes_done / el : 0;
	if (p->bytes_todo > 0) {
		pct = 100.0 * (double)p->bytes_done / (double)p->bytes_todo;
		if (pct > 100)
			pct = 100;
		if (rate > 0)
			eta = (double)(p->bytes_todo - (p->bytes_done <
			    p->bytes_todo ? p->bytes_done : p->bytes_todo)) /
			    rate;
	}
	report_human_bytes((double)p->bytes_done, done, sizeof done);
	report_human_bytes(rate, rt, sizeof rt);
	fprintf(stderr, "\r\033[K%-9s [", engine_phase_name(p->phase));
	fill = pct >= 0 ? (int)(pct * width / 100) : 0;
	for (i = 0; i < width; i++)
		fputc(pct < 0 ? (i == (int)(el * 8) % width ? '#' : '.') :
		    (i < fill ? '#' : '.'), stderr);
	fprintf(stderr, "] ");
	if (pct >= 0)
		fprintf(stderr, "%3.0f%% ", pct);
	fprintf(stderr, "%s %llu files %s/s", done,
	    (unsigned long long)p->files_done, rt);
	if (eta >= 0)
		fprintf(stderr, " ETA %d:%02d", (int)eta / 60, (int)eta % 60);
	if (p->current != NULL && (cur = log_escape(p->current)) != NULL) {
		size_t l = strlen(cur);

		fprintf(stderr, " %s", l > 30 ? cur + l - 30 : cur);
		free(cur);
	}
	if (p->phase == ENGINE_PHASE_DONE)
		fprintf(stderr, "\r\033[K");
	fflush(stderr);
}

static void
cli_on_sigint(int sig)
{
	(void)sig;
	cli_cancel = 1;
}

/* ---- commands ---- */

/* Print a run's record (as `vigil log`) and return the run exit code. */
static int
cli_print_run_record(struct cli *c, int64_t run_id)
{
	json_t *logp, *log;
	int rc;

	logp = json_object();
	json_object_set_new(logp, "run", json_integer(run_id));
	if ((log = cli_call(c, "log", logp, NULL)) == NULL)
		return EXIT_ERROR;
	if (c->json)
		cli_print_json(log);
	else
		report_print_run(stdout, log, true);
	rc = report_status_exit(json_string_value(json_object_get(log,
	    "status")));
	json_decref(log);
	return rc;
}

/* Ctrl-C while waiting: cancel the run, or detach and let it go on. */
static bool
cli_ask_cancel(void)
{
	FILE *tty;
	int ch;

	if (!isatty(STDIN_FILENO) || (tty = fopen("/dev/tty", "r+e")) == NULL)
		return true;	/* a script's SIGINT means stop */
	fprintf(tty, "\r\033[K\nCancel the run (c) or detach and let it go on "
	    "(d)? [c/d] ");
	fflush(tty);
	ch = fgetc(tty);
	fclose(tty);
	return ch != 'd' && ch != 'D';
}

static void
cli_event_progress(struct cli_progress *cp, json_t *d)
{
	struct engine_progress p;
	const char *phase = report_jstr(d, "phase");
	static const char *const phases[] = { "scan", "copy", "delete",
	    "verify", "retention", "done" };
	size_t i;

	memset(&p, 0, sizeof p);
	for (i = 0; i < sizeof phases / sizeof phases[0]; i++)
		if (strcmp(phase, phases[i]) == 0)
			p.phase = (enum engine_phase)i;
	p.files_done = (uint64_t)report_jint(d, "files");
	p.files_copied = (uint64_t)report_jint(d, "copied");
	p.bytes_done = (uint64_t)report_jint(d, "bytes");
	p.bytes_todo = (uint64_t)report_jint(d, "bytes_todo");
	/* Already escaped by the service. */
	p.current = json_string_value(json_object_get(d, "current"));
	cli_progress_cb(&p, cp);
}

/* Whether an event is about JOB as the user named it: NAME, or
 * OWNER:NAME as root names another user's job. */
static bool
cli_event_is_job(json_t *d, const char *job)
{
	const char *name = report_jstr(d, "job");
	const char *owner = report_jstr(d, "owner");
	size_t ol = strlen(owner);

	if (strcmp(name, job) == 0)
		return true;
	return ol > 0 && strncmp(job, owner, ol) == 0 && job[ol] == ':' &&
	    strcmp(job + ol + 1, name) == 0;
}

/* `vigil run` against the service. */
static int
cli_run_remote(struct cli *c, const char *job, json_t *params, bool dry,
    bool wait, struct cli_progress *cp)
{
	static const char *const topics[] = { "progress", "run-started",
	    "run-finished", NULL };
	struct vg_err err;
	json_t *res, *ev, *d, *cparams, *cres;
	int64_t run_id;
	const char *topic;
	bool bar = !c->json && isatty(STDERR_FILENO);

	if (c->client == NULL && cli_connect(c) == -1) {
		json_decref(params);
		return EXIT_ERROR;
	}
	vg_err_clear(&err);
	if (dry) {
		if ((res = cli_call(c, "run", params, NULL)) == NULL)
			return EXIT_ERROR;
		if (c->json)
			cli_print_json(res);
		else
			fputs(report_jstr(res, "plan"), stdout);
		json_decref(res);
		return EXIT_OK;
	}
	/* No deadline, as for every request after hello: the service may
	 * be waiting for its database (up to its busy timeout) meanwhile. */
	if (wait && client_subscribe(c->client, topics, -1, &err) == -1) {
		fprintf(stderr, "vigil: %s\n", err.msg);
		json_decref(params);
		return EXIT_ERROR;
	}
	if ((res = cli_call(c, "run", params, NULL)) == NULL)
		return EXIT_ERROR;
	run_id = report_jint(res, "run");
	if (!wait) {
		if (c->json)
			cli_print_json(res);
		else if (run_id > 0 && strcmp(report_jstr(res, "status"),
		    "running") != 0)
			printf("run %lld ended at once: %s; `vigil log %lld` "
			    "says why\n", (long long)run_id,
			    report_jstr(res, "status"), (long long)run_id);
		else if (run_id > 0)
			printf("run %lld started; `vigil log %lld` shows it\n",
			    (long long)run_id, (long long)run_id);
		else
			printf("queued: it starts when a running job ends\n");
		json_decref(res);
		return EXIT_OK;
	}
	json_decref(res);
	for (;;) {
		ev = client_next_event(c->client, -1, &err);
		if (ev == NULL) {
			if (err.code == VG_ERR_CANCELLED || cli_cancel) {
				cli_cancel = 0;
				if (run_id <= 0 || !cli_ask_cancel()) {
					fprintf(stderr, "vigil: detached; the "
					    "run goes on (`vigil status`)\n");
					return EXIT_OK;
				}
				cparams = json_object();
				json_object_set_new(cparams, "run",
				    json_integer(run_id));
				if ((cres = cli_call(c, "cancel", cparams,
				    NULL)) != NULL)
					json_decref(cres);
				continue;	/* wait for run-finished */
			}
			fprintf(stderr, "vigil: %s\n", err.msg);
			return EXIT_ERROR;
		}
		topic = report_jstr(ev, "event");
		d = json_object_get(ev, "data");
		/* A queued run: its number comes with run-started. */
		if (run_id <= 0 && strcmp(topic, "run-started") == 0 &&
		    cli_event_is_job(d, job))
			run_id = report_jint(d, "run");
		if (report_jint(d, "run") != run_id) {
			json_decref(ev);
			continue;
		}
		if (strcmp(topic, "progress") == 0 && bar)
			cli_event_progress(cp, d);
		if (strcmp(topic, "run-finished") == 0) {
			if (bar)
				fprintf(stderr, "\r\033[K");
			json_decref(ev);
			return cli_print_run_record(c, run_id);
		}
		json_decref(ev);
	}
}

static int
cmd_run(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "rescan", no_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_progress cp;
	struct sigaction sa;
	json_t *params, *res;
	bool dry = false, rescan = false, wait = false;
	int ch;
	int64_t run_id;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "nh", opts, NULL)) != -1) {
		switch (ch) {
		case 'w':
			wait = true;
			break;
		case 'n':
			dry = true;
			break;
		case 'r':
			rescan = true;
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			cli_die_usage("%s", "bad option for run");
		}
	}
	if (optind != argc - 1)
		cli_die_usage("%s", "run needs exactly one JOB");
	params = json_object();
	json_object_set_new(params, "job", json_string(argv[optind]));
	json_object_set_new(params, "dry_run", json_boolean(dry));
	json_object_set_new(params, "rescan", json_boolean(rescan));

	memset(&cp, 0, sizeof cp);
	clock_gettime(CLOCK_MONOTONIC, &cp.start);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = cli_on_sigint;
	sigaction(SIGINT, &sa, NULL);
	if (!cli_local(c))
		return cli_run_remote(c, argv[optind], params, dry, wait, &cp);
	if (!c->json && isatty(STDERR_FILENO)) {
		c->ctx.progress = cli_progress_cb;
		c->ctx.progress_arg = &cp;
	}
	c->ctx.cancel = &cli_cancel;

	if ((res = cli_call(c, "run", params, NULL)) == NULL)
		return EXIT_ERROR;
	if (dry) {
		if (c->json)
			cli_print_json(res);
		else
			fputs(report_jstr(res, "plan"), stdout);
		json_decref(res);
		return EXIT_OK;
	}
	run_id = report_jint(res, "run");
	json_decref(res);
	return cli_print_run_record(c, run_id);
}

static int
cmd_history(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *params, *res, *r;
	char *end;
	long limit = 50;
	size_t i;
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			errno = 0;
			limit = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || limit < 0)
				cli_die_usage("--limit wants a count, not %s",
				    optarg);
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			cli_die_usage("%s", "bad option for history");
		}
	}
	if (argc - optind > 1)
		cli_die_usage("%s", "history takes at most one JOB");
	params = json_object();
	if (optind < argc)
		json_object_set_new(params, "job", json_string(argv[optind]));
	json_object_set_new(params, "limit", json_integer(limit));
	if ((res = cli_call(c, "history", params, NULL)) == NULL)
		return EXIT_ERROR;
	if (c->json)
		cli_print_json(res);
	else {
		if (json_array_size(res) == 0)
			printf("no runs yet\n");
		else
			printf("%-6s %-20s %-11s %-9s %-24s %8s %10s\n", "RUN",
			    "JOB", "STATUS", "PATH", "STARTED", "FILES",
			    "BYTES");
		json_array_foreach(res, i, r) {
			char b[32];

			report_human_bytes((double)report_jint(r, "bytes"), b, sizeof b);
			printf("%-6lld %-20s %-11s %-9s %-24s %8lld %10s\n",
			    report_jint(r, "id"), report_jstr(r, "job"), report_jstr(r, "status"),
			    report_jstr(r, "path"), report_jstr(r, "started"),
			    report_jint(r, "files"), b);
		}
	}
	json_decref(res);
	return EXIT_OK;
}

static int
cli_parse_run_id(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v <= 0 || s[0] == '\0')
		return -1;
	*out = v;
	return 0;
}

static int
cmd_log(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *params, *res;
	int64_t id;
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			cli_die_usage("%s", "bad option for log");
		}
	}
	if (optind != argc - 1)
		cli_die_usage("%s", "log needs exactly one RUN number");
	if (cli_parse_run_id(argv[optind], &id) == -1)
		cli_die_usage("RUN must be a run number (see `vigil history`), "
		    "not %s", argv[optind]);
	params = json_object();
	json_object_set_new(params, "run", json_integer(id));
	if ((res = cli_call(c, "log", params, NULL)) == NULL)
		return EXIT_ERROR;
	if (c->json)
		cli_print_json(res);
	else
		report_print_run(stdout, res, true);
	json_decref(res);
	return EXIT_OK;
}

static int
cmd_cancel(struct cli *c, int argc, char **argv)
{
	json_t *params, *res;
	int64_t id;

	if (argc != 2)
		cli_die_usage("%s", "cancel needs exactly one RUN number");
	if (cli_parse_run_id(argv[1], &id) == -1)
		cli_die_usage("RUN must be a run number (see `vigil status`), "
		    "not %s", argv[1]);
	if (cli_local(c)) {
		fprintf(stderr, "vigil: cancel needs the service; in local mode "
		    "a run stops with Ctrl-C in the vigil that runs it\n");
		return EXIT_ERROR;
	}
	params = json_object();
	json_object_set_new(params, "run", json_integer(id));
	if ((res = cli_call(c, "cancel", params, NULL)) == NULL)
		return EXIT_ERROR;
	if (c->json)
		cli_print_json(res);
	else
		printf("run %lld: cancelling\n", (long long)id);
	json_decref(res);
	return EXIT_OK;
}

static int
cmd_status(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *res, *svc, *j, *p;
	size_t i;
	int ch;
	char b[32], t[32];

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			cli_die_usage("%s", "bad option for status");
		}
	}
	if (optind != argc)
		cli_die_usage("%s", "status takes no arguments");
	if (cli_local(c)) {
		fprintf(stderr, "vigil: status needs the service (drop "
		    "--state-dir)\n");
		return EXIT_ERROR;
	}
	if ((res = cli_call(c, "status", NULL, NULL)) == NULL)
		return EXIT_ERROR;
	if (c->json) {
		cli_print_json(res);
		json_decref(res);
		return EXIT_OK;
	}
	svc = json_object_get(res, "service");
	printf("service   vigild %s, %s mode, pid %lld, since %s\n",
	    report_jstr(svc, "version"), report_jstr(svc, "mode"),
	    report_jint(svc, "pid"), report_jstr(svc, "started"));
	printf("sessions  %zu\n", json_array_size(json_object_get(res,
	    "sessions")));
	printf("\n%-20s %-8s %-10s %-24s %-24s\n", "JOB", "OWNER", "LAST",
	    "LAST RUN", "NEXT RUN");
	json_array_foreach(json_object_get(res, "jobs"), i, j)
		printf("%-20s %-8s %-10s %-24s %-24s%s%s\n",
		    report_jstr(j, "name"), report_jstr(j, "owner"),
		    report_jstr(j, "last_status"), report_jstr(j, "last_run"),
		    report_jstr(j, "next_run"),
		    json_is_true(json_object_get(j, "running")) ?
		    "  running" : "",
		    json_is_true(json_object_get(j, "overdue")) ?
		    "  OVERDUE" : "");
	if (json_array_size(json_object_get(res, "running")) > 0)
		printf("\nrunning:\n");
	json_array_foreach(json_object_get(res, "running"), i, j) {
		p = json_object_get(j, "progress");
		report_human_bytes((double)report_jint(p, "bytes"), b, sizeof b);
		report_human_bytes((double)report_jint(p, "bytes_todo"), t,
		    sizeof t);
		printf("  run %lld  %s  %s  %lld files, %s of %s  %s\n",
		    report_jint(j, "run"), report_jstr(j, "job"),
		    report_jstr(p, "phase"), report_jint(p, "files"), b, t,
		    report_jstr(p, "current"));
	}
	json_decref(res);
	return EXIT_OK;
}

static int
cmd_sessions(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *res, *it, *ag;
	size_t i;
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			cli_die_usage("%s", "bad option for sessions");
		}
	}
	if (optind != argc)
		cli_die_usage("%s", "sessions takes no arguments");
	if (cli_local(c)) {
		fprintf(stderr, "vigil: sessions needs the service (drop "
		    "--state-dir)\n");
		return EXIT_ERROR;
	}
	if ((res = cli_call(c, "sessions", NULL, NULL)) == NULL)
		return EXIT_ERROR;
	if (c->json) {
		cli_print_json(res);
		json_decref(res);
		return EXIT_OK;
	}
	if (json_array_size(res) == 0)
		printf("nobody is logged on (that vigild can see)\n");
	else
		printf("%-10s %-10s %-8s %-8s %-8s %-8s %s\n", "SESSION",
		    "USER", "CLASS", "TYPE", "STATE", "FROM", "AGENT");
	json_array_foreach(res, i, it) {
		ag = json_object_get(it, "agent");
		printf("%-10s %-10s %-8s %-8s %-8s %-8s ", report_jstr(it, "id"),
		    report_jstr(it, "user"), report_jstr(it, "class"),
		    report_jstr(it, "type"), report_jstr(it, "state"),
		    report_jstr(it, "tracked_by"));
		if (json_is_object(ag))
			printf("connected, last heard %.1f s ago\n",
			    (double)report_jint(ag, "last_heard_ago_ms") /
			    1000.0);
		else
			printf("none (runs fall back to snapshot-safe "
			    "copying)\n");
	}
	json_decref(res);
	return EXIT_OK;
}

/* One finding of `vigil doctor`. */
static void
cli_doctor_say(json_t *findings, bool *bad, const char *level,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
cli_doctor_say(json_t *findings, bool *bad, const char *level,
    const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	o = json_object();
	json_object_set_new(o, "level", json_string(level));
	json_object_set_new(o, "message", json_string(msg != NULL ? msg : ""));
	json_array_append_new(findings, o);
	if (strcmp(level, "problem") == 0)
		*bad = true;
	free(msg);
}

/* What would stop tonight's run of one job, checked as the caller. */
static json_t *
cli_doctor_job(struct cli *c, json_t *jobj, bool privileged, bool *bad)
{
	struct vg_job_def *job = NULL;
	struct vg_diags diags = { 0 };
	struct snapshot_choice ch;
	struct statvfs vfs;
	struct stat sb;
	struct vg_err err;
	json_t *o, *f, *hist, *hp;
	char *esc, parent[PATH_MAX], *slash;
	double need = 0, avail;
	size_t i;
	bool is_mnt;
	int fd;

	o = json_object();
	json_object_set_new(o, "job", json_string(report_jstr(jobj, "name")));
	f = json_array();
	json_object_set_new(o, "findings", f);
	if ((job = config_parse_job(report_jstr(jobj, "definition"),
	    &diags)) == NULL) {
		cli_doctor_say(f, bad, "problem", "the stored definition does "
		    "not parse; re-import the jobs file");
		diags_free(&diags);
		return o;
	}
	if (job->require_mount != NULL) {
		is_mnt = false;
		if ((fd = open(job->require_mount, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) != -1) {
			(void)plat_is_mount_root(fd, "", &is_mnt);
			close(fd);
		}
		if (!is_mnt)
			cli_doctor_say(f, bad, "problem", "require-mount %s is "
			    "not mounted: the run will refuse to start (plug "
			    "in and mount the disk)", job->require_mount);
	}
	for (i = 0; i < job->sources.n; i++) {
		esc = log_escape(job->sources.v[i]);
		if (stat(job->sources.v[i], &sb) == -1)
			cli_doctor_say(f, bad, "problem", "source %s: %s", esc,
			    strerror(errno));
		else if (!S_ISDIR(sb.st_mode))
			cli_doctor_say(f, bad, "problem", "source %s is not a "
			    "folder", esc);
		else if (access(job->sources.v[i], R_OK | X_OK) == -1)
			cli_doctor_say(f, bad, "problem", "source %s is not "
			    "readable by you", esc);
		else if (snapshot_choose(job->sources.v[i], job->snapshot,
		    privileged, &ch, &err) == 0)
			cli_doctor_say(f, bad, "info", "source %s: when its "
			    "apps cannot be closed: %s", esc, ch.reason);
		else
			cli_doctor_say(f, bad, "problem", "source %s: snapshot "
			    "= %s cannot work: %s", esc, "as configured",
			    err.msg);
		free(esc);
	}
	esc = log_escape(job->destination);
	snprintf(parent, sizeof parent, "%s", job->destination);
	if (stat(job->destination, &sb) == -1) {
		if ((slash = strrchr(parent, '/')) != NULL && slash != parent)
			*slash = '\0';
		else
			snprintf(parent, sizeof parent, "/");
		if (stat(parent, &sb) == -1 || access(parent, W_OK) == -1)
			cli_doctor_say(f, bad, "problem", "destination %s does "
			    "not exist and cannot be created (%s)", esc,
			    strerror(errno));
	} else if (access(job->destination, W_OK | X_OK) == -1)
		cli_doctor_say(f, bad, "problem", "destination %s is not "
		    "writable by you", esc);
	/* Space: what the last run saw of the source, against what is free. */
	hp = json_object();
	json_object_set_new(hp, "job", json_string(report_jstr(jobj, "name")));
	json_object_set_new(hp, "limit", json_integer(1));
	if ((hist = cli_call(c, "history", hp, NULL)) != NULL &&
	    json_array_size(hist) > 0)
		need = (double)report_jint(json_array_get(hist, 0),
		    "bytes_total");
	json_decref(hist);
	if (statvfs(parent, &vfs) == 0) {
		char a[32], b[32];

		avail = (double)vfs.f_bavail * (double)vfs.f_frsize;
		report_human_bytes(avail, a, sizeof a);
		report_human_bytes(need, b, sizeof b);
		if (need > 0 && avail < need * 0.1)
			cli_doctor_say(f, bad, "problem", "destination %s has "
			    "%s free; the source was %s at the last run", esc,
			    a, b);
		else
			cli_doctor_say(f, bad, "info", "destination %s: %s "
			    "free%s%s", esc, a, need > 0 ? ", source " : "",
			    need > 0 ? b : "");
	}
	free(esc);
	if (json_is_string(json_object_get(jobj, "next_run")))
		cli_doctor_say(f, bad, "info", "next run %s",
		    report_jstr(jobj, "next_run"));
	if (json_is_true(json_object_get(jobj, "overdue")))
		cli_doctor_say(f, bad, "problem", "overdue: no successful run "
		    "within warn-after");
	job_def_free(job);
	diags_free(&diags);
	return o;
}

static int
cmd_doctor(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *list, *out, *it, *p, *show, *st = NULL, *r, *f;
	bool bad = false, privileged = false;
	size_t i, k;
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			cli_die_usage("%s", "bad option for doctor");
		}
	}
	if (argc - optind > 1)
		cli_die_usage("%s", "doctor takes at most one JOB");
	if (!cli_local(c) && (st = cli_call(c, "status", NULL, NULL)) != NULL)
		privileged = strcmp(report_jstr(json_object_get(st, "service"),
		    "mode"), "system") == 0;
	json_decref(st);
	if ((list = cli_call(c, "jobs.list", NULL, NULL)) == NULL)
		return EXIT_ERROR;
	out = json_array();
	json_array_foreach(list, i, it) {
		if (optind < argc && strcmp(report_jstr(it, "name"),
		    argv[optind]) != 0)
			continue;
		p = json_object();
		json_object_set_new(p, "job", json_string(report_jstr(it,
		    "name")));
		if ((show = cli_call(c, "jobs.show", p, NULL)) == NULL)
			continue;
		json_object_set(show, "next_run", json_object_get(it,
		    "next_run"));
		json_array_append_new(out, cli_doctor_job(c, show, privileged,
		    &bad));
		json_decref(show);
	}
	json_decref(list);
	if (optind < argc && json_array_size(out) == 0) {
		fprintf(stderr, "vigil: no job named %s\n", argv[optind]);
		json_decref(out);
		return EXIT_ERROR;
	}
	if (c->json)
		cli_print_json(out);
	else {
		json_array_foreach(out, i, r) {
			printf("%s\n", report_jstr(r, "job"));
			json_array_foreach(json_object_get(r, "findings"), k,
			    f)
				printf("  %-7s %s\n", report_jstr(f, "level"),
				    report_jstr(f, "message"));
		}
		printf(bad ? "\nsomething would stop a run: see the problems "
		    "above\n" : "\nnothing found that would stop tonight's "
		    "runs\n");
	}
	json_decref(out);
	return bad ? EXIT_ERROR : EXIT_OK;
}

/* ---- jobs ---- */

static char *
cli_read_file(const char *path, size_t *lenp)
{
	FILE *fp;
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (strcmp(path, "-") == 0)
		fp = stdin;
	else if ((fp = fopen(path, "re")) == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			char *nb = realloc(buf, cap + 65536 + 1);

			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0) {
			if (ferror(fp)) {
				free(buf);
				buf = NULL;
			}
			break;
		}
	}
	if (fp != stdin)
		fclose(fp);
	if (buf != NULL) {
		buf[len] = '\0';
		*lenp = len;
	}
	return buf;
}

/* Validate text as the caller; prints diagnostics; returns error count. */
static size_t
cli_validate_text(const char *filename, const char *text, size_t len,
    FILE *out)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags diags = { 0 };
	struct vg_check_ctx cc;
	size_t nerr;

	(void)config_parse(filename, text, len, &jf, &diags);
	memset(&cc, 0, sizeof cc);
	cc.caller_uid = getuid();
	cc.check_paths = true;
	if (jf != NULL)
		(void)config_check(jf, filename, &cc, &diags);
	diags_print(&diags, out);
	nerr = diags.nerrors;
	if (jf == NULL && nerr == 0)
		nerr = 1;
	jobfile_free(jf);
	diags_free(&diags);
	return nerr;
}

static void
cli_print_remote_diags(json_t *e)
{
	json_t *d, *diags = json_object_get(json_object_get(e, "detail"),
	    "diagnostics");
	size_t i;

	json_array_foreach(diags, i, d) {
		fprintf(stderr, "%s:%lld: ", report_jstr(d, "file"), report_jint(d, "line"));
		if (json_is_string(json_object_get(d, "job")))
			fprintf(stderr, "job %s: ", report_jstr(d, "job"));
		if (json_is_string(json_object_get(d, "key")))
			fprintf(stderr, "key %s: ", report_jstr(d, "key"));
		fprintf(stderr, "%s%s\n", strcmp(report_jstr(d, "level"), "note") ==
		    0 ? "note: " : "", report_jstr(d, "message"));
		if (json_is_string(json_object_get(d, "hint")))
			fprintf(stderr, "  hint: %s\n", report_jstr(d, "hint"));
	}
}

static int
cli_import_text(struct cli *c, const char *filename, const char *text,
    bool replace)
{
	json_t *params, *res, *e = NULL;

	params = json_object();
	if (json_object_set_new(params, "text", json_string(text)) == -1) {
		fprintf(stderr, "vigil: %s: the jobs file must be UTF-8 text\n",
		    filename);
		json_decref(params);
		return EXIT_ERROR;
	}
	json_object_set_new(params, "filename", json_string(filename));
	json_object_set_new(params, "replace", json_boolean(replace));
	if ((res = cli_call(c, "jobs.import", params, &e)) == NULL) {
		if (e != NULL) {
			cli_print_remote_diags(e);
			fprintf(stderr, "vigil: %s\n", report_jstr(e, "message"));
			json_decref(e);
		}
		return EXIT_ERROR;
	}
	if (!c->json)
		printf("imported %lld job%s from %s%s\n", report_jint(res, "jobs"),
		    report_jint(res, "jobs") == 1 ? "" : "s", filename,
		    replace ? " (replacing your job set)" : "");
	else
		cli_print_json(res);
	json_decref(res);
	return EXIT_OK;
}

static int
cli_write_file_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	FILE *fp;
	int fd;

	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) ==
	    -1)
		return -1;
	if ((fp = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (fputs(text, fp) == EOF || fflush(fp) == EOF ||
	    fsync(fileno(fp)) == -1) {
		fclose(fp);
		unlink(tmp);
		return -1;
	}
	if (fclose(fp) == EOF || rename(tmp, path) == -1) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int
cli_run_editor(const char *path)
{
	const char *ed;
	char *cmd = NULL;
	pid_t pid;
	int st;

	if ((ed = getenv("VISUAL")) == NULL || *ed == '\0')
		if ((ed = getenv("EDITOR")) == NULL || *ed == '\0')
			ed = "vi";
	/* $EDITOR may hold arguments ("code -w"): let sh split it, passing the
	 * file as a separate argument so its name is never re-parsed. */
	if (asprintf(&cmd, "%s \"$1\"", ed) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		free(cmd);
		return -1;
	}
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, "sh", path, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	while (waitpid(pid, &st, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int
cmd_jobs_edit(struct cli *c)
{
	json_t *res;
	char path[] = "/tmp/vigil-jobs-XXXXXX.ini";
	char *text = NULL, *errs = NULL;
	size_t len, errlen = 0;
	FILE *ef;
	int fd, rc = EXIT_ERROR, ch, tty = isatty(STDIN_FILENO);
	bool keep = false;	/* leave the user's text in place */

	if ((res = cli_call(c, "jobs.export", NULL, NULL)) == NULL)
		return EXIT_ERROR;
	if ((fd = mkstemps(path, 4)) == -1) {
		fprintf(stderr, "vigil: cannot create a temp file: %s\n",
		    strerror(errno));
		json_decref(res);
		return EXIT_ERROR;
	}
	if (write(fd, report_jstr(res, "text"), strlen(report_jstr(res, "text"))) == -1) {
		fprintf(stderr, "vigil: %s: %s\n", path, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	for (;;) {
		if (cli_run_editor(path) == -1) {
			fprintf(stderr, "vigil: the editor failed; your jobs "
			    "are unchanged (your text is kept in %s)\n", path);
			keep = true;
			goto out;
		}
		free(text);
		if ((text = cli_read_file(path, &len)) == NULL) {
			fprintf(stderr, "vigil: %s: %s\n", path,
			    strerror(errno));
			goto out;
		}
		free(errs);
		errs = NULL;
		if ((ef = open_memstream(&errs, &errlen)) == NULL)
			goto out;
		if (cli_validate_text(path, text, len, ef) == 0) {
			fclose(ef);
			if (errs != NULL && errlen > 0)
				fputs(errs, stderr);
			rc = cli_import_text(c, path, text, true);
			break;
		}
		fclose(ef);
		fputs(errs, stderr);
		if (!tty) {
			fprintf(stderr, "vigil: the jobs file has errors; "
			    "nothing was changed (your text is kept in %s)\n",
			    path);
			keep = true;
			goto out;
		}
		fprintf(stderr, "vigil: errors in your jobs; edit again? "
		    "[Y/n] ");
		ch = getchar();
		while (ch != '\n' && ch != EOF && getchar() != '\n')
			;
		if (ch == 'n' || ch == 'N' || ch == EOF) {
			fprintf(stderr, "vigil: nothing was changed (your text "
			    "is kept in %s)\n", path);
			keep = true;
			goto out;
		}
	}
out:
	if (fd != -1)
		close(fd);
	if (!keep)
		unlink(path);
	free(text);
	free(errs);
	json_decref(res);
	return rc;
}

static int
cmd_jobs(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "replace", no_argument, NULL, 'r' },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *out = NULL;
	bool replace = false;
	json_t *res, *params, *j;
	char *text;
	size_t len, i, nerr;
	int ch;

	if (argc < 2)
		cli_die_usage("%s", "jobs needs a subcommand: list, show, "
		    "validate, import, export, edit");
	sub = argv[1];
	argc--;
	argv++;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			replace = true;
			break;
		case 'o':
			out = optarg;
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			cli_die_usage("bad option for jobs %s", sub);
		}
	}
	if (replace && strcmp(sub, "import") != 0)
		cli_die_usage("%s", "--replace is an option of jobs import");
	if (out != NULL && strcmp(sub, "export") != 0)
		cli_die_usage("%s", "-o is an option of jobs export");

	if (strcmp(sub, "validate") == 0 || strcmp(sub, "import") == 0) {
		if (optind != argc - 1)
			cli_die_usage("jobs %s needs exactly one FILE", sub);
		if ((text = cli_read_file(argv[optind], &len)) == NULL) {
			fprintf(stderr, "vigil: cannot read %s: %s\n",
			    argv[optind], strerror(errno));
			return EXIT_ERROR;
		}
		nerr = cli_validate_text(argv[optind], text, len, stderr);
		if (nerr > 0) {
			fprintf(stderr, "vigil: %s: %zu error%s%s\n",
			    argv[optind], nerr, nerr == 1 ? "" : "s",
			    strcmp(sub, "import") == 0 ?
			    "; nothing was imported" : "");
			free(text);
			return EXIT_ERROR;
		}
		if (strcmp(sub, "validate") == 0) {
			printf("%s: valid\n", argv[optind]);
			free(text);
			return EXIT_OK;
		}
		if (memchr(text, '\0', len) != NULL) {
			free(text);
			return EXIT_ERROR;
		}
		ch = cli_import_text(c, argv[optind], text, replace);
		free(text);
		return ch;
	}
	if (strcmp(sub, "export") == 0) {
		if (optind != argc)
			cli_die_usage("%s", "jobs export takes no arguments "
			    "(use -o FILE)");
		if ((res = cli_call(c, "jobs.export", NULL, NULL)) == NULL)
			return EXIT_ERROR;
		if (out != NULL && strcmp(out, "-") != 0) {
			if (cli_write_file_atomic(out, report_jstr(res, "text")) ==
			    -1) {
				fprintf(stderr, "vigil: cannot write %s: %s\n",
				    out, strerror(errno));
				json_decref(res);
				return EXIT_ERROR;
			}
		} else
			fputs(report_jstr(res, "text"), stdout);
		json_decref(res);
		return EXIT_OK;
	}
	if (strcmp(sub, "list") == 0) {
		if (optind != argc)
			cli_die_usage("%s", "jobs list takes no arguments");
		if ((res = cli_call(c, "jobs.list", NULL, NULL)) == NULL)
			return EXIT_ERROR;
		if (c->json)
			cli_print_json(res);
		else {
			if (json_array_size(res) == 0)
				printf("no jobs; `vigil jobs import FILE` adds "
				    "some\n");
			else
				printf("%-20s %-8s %-7s %-18s %-10s %s\n",
				    "JOB", "OWNER", "MODE", "SCHEDULE", "LAST",
				    "DESTINATION");
			json_array_foreach(res, i, j)
				printf("%-20s %-8s %-7s %-18s %-10s %s\n",
				    report_jstr(j, "name"), report_jstr(j, "owner"),
				    report_jstr(j, "mode"), report_jstr(j, "schedule"),
				    report_jstr(j, "last_status"),
				    report_jstr(j, "destination"));
		}
		json_decref(res);
		return EXIT_OK;
	}
	if (strcmp(sub, "show") == 0) {
		if (optind != argc - 1)
			cli_die_usage("%s", "jobs show needs exactly one JOB");
		params = json_object();
		json_object_set_new(params, "job", json_string(argv[optind]));
		if ((res = cli_call(c, "jobs.show", params, NULL)) == NULL)
			return EXIT_ERROR;
		if (c->json)
			cli_print_json(res);
		else {
			printf("# job %s (id %lld, owner %s, last %s)\n",
			    report_jstr(res, "name"), report_jint(res, "id"),
			    report_jstr(res, "owner"), report_jstr(res, "last_status"));
			fputs(report_jstr(res, "definition"), stdout);
		}
		json_decref(res);
		return EXIT_OK;
	}
	if (strcmp(sub, "edit") == 0) {
		if (optind != argc)
			cli_die_usage("%s", "jobs edit takes no arguments");
		return cmd_jobs_edit(c);
	}
	cli_die_usage("unknown jobs subcommand: %s", sub);
	return EXIT_USAGE;
}

/* ---- restore ---- */

static int
cli_parse_time(const char *s, int64_t *ms)
{
	struct tm utc;
	const char *rest;
	int frac = 0;

	/* The form history and log print: 2026-11-21T22:14:41.495Z (UTC). */
	memset(&utc, 0, sizeof utc);
	if ((rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &utc)) != NULL &&
	    (rest[0] == 'Z' || rest[0] == '.')) {
		if (rest[0] == '.') {
			/* .d, .dd or .ddd then Z: tenths, hundredths or
			 * milliseconds; nothing else */
			int scale = 100, n;

			for (n = 1; rest[n] >= '0' && rest[n] <= '9' && n <= 3;
			    n++) {
				frac += (rest[n] - '0') * scale;
				scale /= 10;
			}
			if (n == 1 || rest[n] != 'Z' || rest[n + 1] != '\0')
				return -1;
		} else if (rest[1] != '\0')
			return -1;
		*ms = (int64_t)timegm(&utc) * 1000 + frac;
		return 0;
	}

	struct tm tm;
	const char *fmts[] = { "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
	    "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d" };
	const char *end;
	size_t i;
	time_t t;

	for (i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
		memset(&tm, 0, sizeof tm);
		end = strptime(s, fmts[i], &tm);
		if (end == NULL || *end != '\0')
			continue;
		tm.tm_isdst = -1;
		if ((t = mktime(&tm)) == (time_t)-1)
			return -1;
		*ms = (int64_t)t * 1000;
		return 0;
	}
	return -1;
}

static int
cmd_restore(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "as-of", required_argument, NULL, 'a' },
		{ "to", required_argument, NULL, 't' },
		{ "overwrite", no_argument, NULL, 'o' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "allow-special", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct restore_opts ro;
	struct restore_result rr;
	struct vg_job_def *job = NULL;
	struct vg_diags diags = { 0 };
	struct vg_err err;
	json_t *params, *res;
	const char *as_of = NULL;
	size_t i;
	int ch, rc = EXIT_ERROR;

	memset(&ro, 0, sizeof ro);
	memset(&rr, 0, sizeof rr);
	vg_err_clear(&err);
	optind = 0;
	while ((ch = getopt_long(argc, argv, "nh", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			as_of = optarg;
			break;
		case 't':
			ro.to = optarg;
			break;
		case 'o':
			ro.overwrite = true;
			break;
		case 'n':
			ro.dry_run = true;
			break;
		case 'S':
			ro.allow_special = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			cli_die_usage("%s", "bad option for restore");
		}
	}
	if (optind >= argc)
		cli_die_usage("%s", "restore needs a JOB");
	if (as_of != NULL && cli_parse_run_id(as_of, &ro.as_of_run) == -1 &&
	    cli_parse_time(as_of, &ro.as_of_ms) == -1)
		cli_die_usage("--as-of wants a run number or a time such as "
		    "2026-11-20 or \"2026-11-20 14:30\", not %s", as_of);
	if (ro.to != NULL && ro.to[0] == '\0')
		cli_die_usage("%s", "--to needs a folder");
	params = json_object();
	json_object_set_new(params, "job", json_string(argv[optind]));
	if ((res = cli_call(c, "jobs.show", params, NULL)) == NULL)
		return EXIT_ERROR;
	if ((job = config_parse_job(report_jstr(res, "definition"), &diags)) == NULL) {
		fprintf(stderr, "vigil: job %s: its definition does not parse\n",
		    argv[optind]);
		goto out;
	}
	if (ro.as_of_run > 0) {
		json_t *lp = json_object(), *run, *e = NULL;

		json_object_set_new(lp, "run", json_integer(ro.as_of_run));
		if ((run = cli_call(c, "log", lp, &e)) == NULL) {
			fprintf(stderr, "vigil: --as-of %lld: %s\n",
			    (long long)ro.as_of_run, report_jstr(e, "message"));
			json_decref(e);
			goto out;
		}
		if (report_jint(run, "job_id") != report_jint(res, "id")) {
			fprintf(stderr, "vigil: --as-of %lld: that run belongs "
			    "to job %s, not %s\n", (long long)ro.as_of_run,
			    report_jstr(run, "job"), argv[optind]);
			json_decref(run);
			goto out;
		}
		json_decref(run);
	}
	/*
	 * Root restoring another user's job runs as that user (DESIGN.md:
	 * restores run as the target user).  The job's paths and the
	 * backup's contents are that user's to choose, and a root restore
	 * would follow whatever they plant: a source folder swapped for a
	 * symlink, a parent swapped mid-restore under an archive extraction.
	 */
	if (geteuid() == 0 && json_object_get(res, "owner") != NULL) {
		json_t *ow = json_object_get(res, "owner");
		const char *owner = json_string_value(ow);
		struct passwd *pw = owner != NULL ? getpwnam(owner) :
		    json_is_integer(ow) ? getpwuid((uid_t)
		    json_integer_value(ow)) : NULL;
		uid_t ouid = pw != NULL ? pw->pw_uid : json_is_integer(ow) ?
		    (uid_t)json_integer_value(ow) : 0;

		if (pw == NULL && !json_is_integer(ow)) {
			fprintf(stderr, "vigil: job %s: its owner is not a "
			    "user here\n", argv[optind]);
			goto out;
		}
		if (owner == NULL)
			owner = "its owner";
		if (ouid != 0) {
			if (ro.allow_special) {
				fprintf(stderr, "vigil: --allow-special is for "
				    "root's own jobs, and %s's job is restored "
				    "as %s\n", owner, owner);
				goto out;
			}
			if (pw == NULL || plat_drop_to_user(ouid) == -1) {
				fprintf(stderr, "vigil: cannot run the restore "
				    "as %s: %s\n", owner, pw == NULL ?
				    "no such user" : strerror(errno));
				goto out;
			}
			fprintf(stderr, "vigil: restoring as %s, the job's "
			    "owner: the target must be writable by %s\n",
			    owner, owner);
		}
	}
	ro.job = job;
	ro.paths = (const char *const *)(argv + optind + 1);
	ro.npaths = (size_t)(argc - optind - 1);
	ro.out = stdout;
	ro.keep_owner = false;
	if (restore_run(&ro, &rr, &err) == -1) {
		if (err.msg[0] != '\0')
			fprintf(stderr, "vigil: %s\n", err.msg);
		for (i = 0; i < rr.nmessages; i++)
			fprintf(stderr, "vigil: %s\n", rr.messages[i]);
		rc = EXIT_ERROR;
	} else
		rc = EXIT_OK;
	printf("restored %llu, unchanged %llu, skipped as newer %llu, "
	    "errors %llu\n", (unsigned long long)rr.files_restored,
	    (unsigned long long)rr.files_unchanged,
	    (unsigned long long)rr.files_skipped_newer,
	    (unsigned long long)rr.errors);
	if (rr.files_skipped_newer > 0)
		printf("files newer than the backup were left alone; "
		    "--overwrite replaces them\n");
out:
	restore_result_free(&rr);
	job_def_free(job);
	diags_free(&diags);
	json_decref(res);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state-dir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli c;
	int ch, rc;

	memset(&c, 0, sizeof c);
	log_init("vigil", LOG_TARGET_STDERR, 0);
	/* '+': stop at the command so its own options reach it. */
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (optarg[0] == '\0')
				cli_die_usage("%s", "--state-dir needs a folder");
			c.state_dir = optarg;
			break;
		case 'S':
			if (optarg[0] == '\0')
				cli_die_usage("%s", "--socket needs a path");
			c.socket_path = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("vigil %s\n", VIGIL_VERSION);
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'vigil --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (c.state_dir != NULL && c.socket_path != NULL)
		cli_die_usage("%s", "--state-dir (local mode) and --socket "
		    "exclude each other");
	if (c.state_dir == NULL && c.socket_path == NULL &&
	    getenv("VIGIL_STATE_DIR") != NULL &&
	    /* the same getenv as the line above, checked there:
	     * NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
	    getenv("VIGIL_STATE_DIR")[0] != '\0')
		c.state_dir = getenv("VIGIL_STATE_DIR");
	argc -= optind;
	argv += optind;
	if (strcmp(argv[0], "run") == 0)
		rc = cmd_run(&c, argc, argv);
	else if (strcmp(argv[0], "history") == 0)
		rc = cmd_history(&c, argc, argv);
	else if (strcmp(argv[0], "log") == 0)
		rc = cmd_log(&c, argc, argv);
	else if (strcmp(argv[0], "jobs") == 0)
		rc = cmd_jobs(&c, argc, argv);
	else if (strcmp(argv[0], "restore") == 0)
		rc = cmd_restore(&c, argc, argv);
	else if (strcmp(argv[0], "cancel") == 0)
		rc = cmd_cancel(&c, argc, argv);
	else if (strcmp(argv[0], "status") == 0)
		rc = cmd_status(&c, argc, argv);
	else if (strcmp(argv[0], "sessions") == 0)
		rc = cmd_sessions(&c, argc, argv);
	else if (strcmp(argv[0], "doctor") == 0)
		rc = cmd_doctor(&c, argc, argv);
	else {
		fprintf(stderr, "vigil: unknown command %s\n", argv[0]);
		fprintf(stderr, "Try 'vigil --help'.\n");
		rc = EXIT_USAGE;
	}
	if (c.store != NULL)
		store_close(c.store);
	client_free(c.client);
	free(c.state_dir_buf);
	return rc;
}
