/*
 * vigild: the vigil service.
 *
 * Modes:
 *   vigild --user                 private state and socket for this uid
 *   vigild --state-dir DIR ...    system mode in the foreground (as systemd
 *                                 starts it)
 *   vigild ... --run-once JOB     run one job now, print its record, exit
 *                                 with the CLI contract's run exit codes
 *   vigild --user --demo          set up a sample folder and job under the
 *                                 state folder, run it, print the record
 *
 * Without --run-once or --demo it runs the service loop (service.h): the
 * control socket, the scheduler and one worker per run.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "db/store.h"
#include "scheduler/control.h"
#include "scheduler/report.h"
#include "scheduler/service.h"

#define VIGILD_SYSTEM_STATE	"/var/lib/vigil"

static volatile sig_atomic_t vigild_cancel;

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: vigild [--user] [--state-dir DIR] [--socket PATH] [--concurrency N] [-v]\n"
"              [--run-once JOB [--dry-run] [--rescan] [--json]] [--demo]\n"
"\n"
"  --user            private state ($XDG_STATE_HOME/vigil) and socket\n"
"                    ($XDG_RUNTIME_DIR/vigil/vigil.sock) for this user\n"
"  --state-dir DIR   state folder (system mode default /var/lib/vigil)\n"
"  --socket PATH     control socket path (system mode default\n"
"                    /run/vigil/vigil.sock)\n"
"  --concurrency N   runs at once across jobs (default: the setting, or 1)\n"
"  --run-once JOB    run one job in the foreground and print its record\n"
"  --dry-run         with --run-once: print the plan, change nothing\n"
"  --rescan          with --run-once: compare against the destination\n"
"  --demo            back up a sample folder with a built-in job (user mode)\n"
"  -v, --verbose     debug messages\n"
"  -h, --help        this help\n");
}

static void
vigild_on_signal(int sig)
{
	(void)sig;
	vigild_cancel = 1;
}

static char *
vigild_user_state_dir(void)
{
	const char *e, *home;
	struct passwd *pw;
	char *s = NULL;

	if ((e = getenv("XDG_STATE_HOME")) != NULL && e[0] == '/') {
		if (asprintf(&s, "%s/vigil", e) == -1)
			return NULL;
		return s;
	}
	if ((home = getenv("HOME")) == NULL || home[0] != '/') {
		if ((pw = getpwuid(getuid())) == NULL)
			return NULL;
		home = pw->pw_dir;
	}
	if (asprintf(&s, "%s/.local/state/vigil", home) == -1)
		return NULL;
	return s;
}

static int
vigild_mkdirs(const char *path, mode_t mode)
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
		if (mkdir(buf, mode) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

static int
vigild_write(const char *path, const char *text)
{
	FILE *fp;

	if ((fp = fopen(path, "we")) == NULL)
		return -1;
	fputs(text, fp);
	return fclose(fp);
}

/* Request through the same control layer the CLI and socket use. */
static json_t *
vigild_call(struct control_ctx *ctx, const char *method, json_t *params)
{
	struct control_peer peer;
	json_t *req, *resp, *result = NULL;

	memset(&peer, 0, sizeof peer);
	peer.uid = getuid();
	peer.gid = getgid();
	peer.pid = getpid();
	peer.admin = getuid() == 0;
	req = json_object();
	json_object_set_new(req, "id", json_integer(1));
	json_object_set_new(req, "method", json_string(method));
	json_object_set_new(req, "params", params);
	resp = control_handle(ctx, &peer, req);
	json_decref(req);
	if (json_is_true(json_object_get(resp, "ok"))) {
		result = json_object_get(resp, "result");
		json_incref(result);
	} else
		log_warnx("%s: %s", method, report_jstr(json_object_get(resp,
		    "error"), "message"));
	json_decref(resp);
	return result;
}

static int
vigild_run_once(struct control_ctx *ctx, const char *job, bool dry,
    bool rescan, bool json)
{
	json_t *p, *res, *log;
	int rc;

	p = json_object();
	json_object_set_new(p, "job", json_string(job));
	json_object_set_new(p, "dry_run", json_boolean(dry));
	json_object_set_new(p, "rescan", json_boolean(rescan));
	if ((res = vigild_call(ctx, "run", p)) == NULL)
		return 1;
	if (dry) {
		fputs(report_jstr(res, "plan"), stdout);
		json_decref(res);
		return 0;
	}
	p = json_object();
	json_object_set_new(p, "run", json_integer(report_jint(res, "run")));
	json_decref(res);
	if ((log = vigild_call(ctx, "log", p)) == NULL)
		return 1;
	if (json)
		json_dumpf(log, stdout, JSON_INDENT(2));
	else
		report_print_run(stdout, log, true);
	if (json)
		fputc('\n', stdout);
	rc = report_status_exit(report_jstr(log, "status"));
	json_decref(log);
	return rc;
}

/* The built-in sample: a folder of a few files and a mirror job for it. */
static int
vigild_demo(struct control_ctx *ctx, const char *state_dir)
{
	char src[PATH_MAX], dst[PATH_MAX], path[PATH_MAX + 64];
	char *jobs = NULL;
	json_t *p, *res;
	int i;

	if (strlen(state_dir) > PATH_MAX - 64) {
		log_warnx("state folder path too long: %s", state_dir);
		return 1;
	}
	snprintf(src, sizeof src, "%s/demo/sample", state_dir);
	snprintf(dst, sizeof dst, "%s/demo/backup", state_dir);
	snprintf(path, sizeof path, "%s/notes", src);
	if (vigild_mkdirs(path, 0700) == -1 || vigild_mkdirs(dst, 0700) == -1) {
		log_warn("cannot create the demo folders under %s", state_dir);
		return 1;
	}
	for (i = 1; i <= 5; i++) {
		snprintf(path, sizeof path, "%s/notes/note-%d.txt", src, i);
		if (access(path, F_OK) == 0)
			continue;
		FILE *fp = fopen(path, "we");
		if (fp == NULL) {
			log_warn("%s", path);
			return 1;
		}
		fprintf(fp, "Sample note %d, written by vigild --demo.\n", i);
		fclose(fp);
	}
	snprintf(path, sizeof path, "%s/README.txt", src);
	if (access(path, F_OK) != 0)
		(void)vigild_write(path, "Edit or add files here and run "
		    "`vigild --user --demo` again:\nonly what changed is "
		    "copied, and replaced files are kept as versions.\n");
	if (asprintf(&jobs,
	    "# The built-in demo job of vigild --demo.\n"
	    "[job demo]\n"
	    "source        = %s\n"
	    "destination   = %s\n"
	    "mode          = mirror\n"
	    "exclude       = *.tmp\n"
	    "keep-versions = 3\n"
	    "verify        = yes\n", src, dst) == -1)
		return 1;
	p = json_object();
	json_object_set_new(p, "text", json_string(jobs));
	json_object_set_new(p, "filename", json_string("(built-in demo job)"));
	free(jobs);
	if ((res = vigild_call(ctx, "jobs.import", p)) == NULL)
		return 1;
	json_decref(res);
	printf("demo: backing up %s to %s\n\n", src, dst);
	return vigild_run_once(ctx, "demo", false, false, false);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "user", no_argument, NULL, 'u' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "run-once", required_argument, NULL, 'r' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "rescan", no_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "demo", no_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct control_ctx ctx;
	struct vg_store *st = NULL;
	struct vg_err err;
	struct sigaction sa;
	const char *state_dir = NULL, *run_once = NULL, *socket_path = NULL;
	char *buf = NULL, *dbpath = NULL, *sockbuf = NULL, *end;
	struct service_opts so;
	long conc = 0;
	bool user = false, dry = false, rescan = false, json = false;
	bool demo = false;
	int ch, rc = 1, verbose = 0;
	size_t ninterrupted = 0;

	while ((ch = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			user = true;
			break;
		case 's':
			state_dir = optarg;
			break;
		case 'S':
			if (optarg[0] != '/') {
				fprintf(stderr, "vigild: --socket needs an "
				    "absolute path\n");
				return 2;
			}
			socket_path = optarg;
			break;
		case 'c':
			errno = 0;
			conc = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || conc < 1 ||
			    conc > 64) {
				fprintf(stderr, "vigild: --concurrency wants "
				    "1..64, not %s\n", optarg);
				return 2;
			}
			break;
		case 'r':
			run_once = optarg;
			break;
		case 'n':
			dry = true;
			break;
		case 'R':
			rescan = true;
			break;
		case 'j':
			json = true;
			break;
		case 'd':
			demo = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vigild %s\n", VIGIL_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vigild: unexpected argument %s\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if ((dry || rescan || json) && run_once == NULL) {
		fprintf(stderr, "vigild: --dry-run, --rescan and --json go with "
		    "--run-once\n");
		return 2;
	}
	if (demo && run_once != NULL) {
		fprintf(stderr, "vigild: --demo and --run-once exclude each "
		    "other\n");
		return 2;
	}
	/* Under systemd the journal takes structured fields. */
	log_init("vigild", getenv("JOURNAL_STREAM") != NULL &&
	    run_once == NULL && !demo ? LOG_TARGET_JOURNAL : LOG_TARGET_STDERR,
	    verbose);

	if (state_dir == NULL) {
		if (user || demo) {
			if ((buf = vigild_user_state_dir()) == NULL)
				fatalx("cannot find a state folder: set "
				    "--state-dir or XDG_STATE_HOME");
			state_dir = buf;
		} else
			state_dir = VIGILD_SYSTEM_STATE;
	}
	if (vigild_mkdirs(state_dir, 0700) == -1)
		fatal("cannot create state folder %s", state_dir);
	if (run_once == NULL && !demo) {
		if (socket_path == NULL) {
			const char *rt = getenv("XDG_RUNTIME_DIR");

			if (!user)
				socket_path = "/run/vigil/vigil.sock";
			else if (rt != NULL && rt[0] == '/') {
				if (asprintf(&sockbuf, "%s/vigil/vigil.sock",
				    rt) == -1)
					fatalx("out of memory");
				socket_path = sockbuf;
			} else {
				if (asprintf(&sockbuf, "%s/vigil.sock",
				    state_dir) == -1)
					fatalx("out of memory");
				socket_path = sockbuf;
			}
		}
		memset(&so, 0, sizeof so);
		so.state_dir = state_dir;
		so.socket_path = socket_path;
		so.socket_mode = user ? 0600 : 0666;
		so.user_mode = user;
		so.concurrency = (unsigned)conc;
		rc = service_run(&so);
		free(sockbuf);
		free(buf);
		return rc;
	}
	if (asprintf(&dbpath, "%s/vigil.db", state_dir) == -1)
		fatalx("out of memory");
	vg_err_clear(&err);
	if (store_open(dbpath, &st, &err) == -1)
		fatalx("%s", err.msg);
	if (store_runs_mark_interrupted(st, &ninterrupted, &err) == -1)
		log_warnx("%s", err.msg);
	else if (ninterrupted > 0)
		log_warnx("%zu run%s left running by a stopped process marked "
		    "interrupted", ninterrupted, ninterrupted == 1 ? "" : "s");

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = vigild_on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	memset(&ctx, 0, sizeof ctx);
	ctx.store = st;
	ctx.state_dir = state_dir;
	ctx.cancel = &vigild_cancel;

	if (demo)
		rc = vigild_demo(&ctx, state_dir);
	else
		rc = vigild_run_once(&ctx, run_once, dry, rescan, json);
	store_close(st);
	free(dbpath);
	free(buf);
	return rc;
}
