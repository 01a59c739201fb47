/* runner.c: one recorded run of one job (see runner.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/platform.h"
#include "db/catalogue.h"
#include "db/store.h"
#include "scheduler/archive.h"
#include "scheduler/engine.h"
#include "scheduler/hooks.h"
#include "scheduler/runner.h"
#include "scheduler/snapshot.h"

static int64_t
runner_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
runner_catalogue_path(const char *state_dir, uid_t owner, int64_t job_id)
{
	char *p = NULL;

	if (asprintf(&p, "%s/catalogue/%u/%lld.db", state_dir, (unsigned)owner,
	    (long long)job_id) == -1)
		return NULL;
	return p;
}

/* mkdir -p of state_dir/catalogue/<uid>, each level 0700. */
static int
runner_catalogue_dir(const char *state_dir, uid_t owner, struct vg_err *err)
{
	char path[PATH_MAX];

	/*
	 * As root, the state folder and catalogue/ are 0711: each owner's
	 * worker can reach its own catalogue/<uid> (0700, theirs) but list
	 * nothing; vigil.db stays 0600 root.
	 */
	snprintf(path, sizeof path, "%s/catalogue", state_dir);
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		vg_err_sys(err, "cannot create %s", path);
		return -1;
	}
	if (geteuid() == 0 && owner != 0 &&
	    (chmod(state_dir, 0711) == -1 || chmod(path, 0711) == -1)) {
		vg_err_sys(err, "cannot open %s to job owners", path);
		return -1;
	}
	snprintf(path, sizeof path, "%s/catalogue/%u", state_dir,
	    (unsigned)owner);
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		vg_err_sys(err, "cannot create %s", path);
		return -1;
	}
	/* The owner's worker writes its catalogue there: the folder is
	 * theirs, mode 0700 (DESIGN.md, "Storage"). */
	if (geteuid() == 0 && owner != 0) {
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);

		if (fd == -1 || fchown(fd, owner, (gid_t)-1) == -1 ||
		    fchmod(fd, 0700) == -1) {
			vg_err_sys(err, "cannot hand %s to uid %u", path,
			    (unsigned)owner);
			if (fd != -1)
				close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/*
 * Write the job's definition to <dest>/.vigil/job.ini: temp file, fsync,
 * rename, fsync of the folder.  Failure is a warning, not a failed run.
 */
static int
runner_write_definition(const char *dest, const char *text, struct vg_err *err)
{
	int dfd = -1, vfd = -1, fd = -1, rc = -1;
	char tmp[64];
	size_t len = strlen(text), off = 0;
	ssize_t w;

	if ((dfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		vg_err_sys(err, "cannot open destination %s", dest);
		goto out;
	}
	if (mkdirat(dfd, ".vigil", 0700) == -1 && errno != EEXIST) {
		vg_err_sys(err, "cannot create %s/.vigil", dest);
		goto out;
	}
	if ((vfd = openat(dfd, ".vigil", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		vg_err_sys(err, "cannot open %s/.vigil", dest);
		goto out;
	}
	snprintf(tmp, sizeof tmp, ".vigil-tmp-job.ini");
	(void)unlinkat(vfd, tmp, 0);
	if ((fd = openat(vfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		vg_err_sys(err, "cannot create %s/.vigil/%s", dest, tmp);
		goto out;
	}
	while (off < len) {
		if ((w = write(fd, text + off, len - off)) == -1) {
			if (errno == EINTR)
				continue;
			vg_err_sys(err, "cannot write %s/.vigil/job.ini", dest);
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) == -1) {
		vg_err_sys(err, "cannot flush %s/.vigil/job.ini", dest);
		goto out;
	}
	if (renameat(vfd, tmp, vfd, "job.ini") == -1) {
		vg_err_sys(err, "cannot rename into %s/.vigil/job.ini", dest);
		goto out;
	}
	(void)fsync(vfd);
	rc = 0;
out:
	if (fd != -1) {
		close(fd);
		if (rc == -1)
			(void)unlinkat(vfd, tmp, 0);
	}
	if (vfd != -1)
		close(vfd);
	if (dfd != -1)
		close(dfd);
	return rc;
}

/* Record a run that ended before the engine started. */
static int
runner_record_early(struct vg_store *st, int64_t run_id, int64_t job_id,
    enum vg_run_status status, const char *path, const char *reason,
    const char *message, struct vg_err *err)
{
	struct vg_run_row row;

	memset(&row, 0, sizeof row);
	row.id = run_id;
	row.job_id = job_id;
	row.status = status;
	row.path = (char *)path;
	row.path_reason = (char *)reason;
	row.ended = runner_now_ms();
	row.message = (char *)message;
	return store_run_finish(st, &row, NULL, 0, err);
}

void
runner_plan_free(struct runner_plan *plan)
{
	if (plan == NULL)
		return;
	job_row_free(&plan->row);
	job_def_free(plan->job);
	free(plan->catalogue_path);
	free(plan->path);
	free(plan->path_reason);
	free(plan->sources);
	strlist_free(&plan->fallback_files);
	memset(plan, 0, sizeof *plan);
}

/* What stops a run before it touches anything; msg empty when nothing. */
static void
runner_check(const struct vg_job_def *job, char *msg, size_t len)
{
	struct stat sb;
	bool is_mnt = false;
	size_t i;
	int mfd;

	msg[0] = '\0';
	if (job->require_mount != NULL) {
		mfd = open(job->require_mount, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);
		if (mfd == -1 || plat_is_mount_root(mfd, "", &is_mnt) == -1)
			is_mnt = false;
		if (mfd != -1)
			close(mfd);
		if (!is_mnt) {
			snprintf(msg, len, "require-mount %s is not a mount "
			    "point: is the disk plugged in and mounted? "
			    "Nothing was copied", job->require_mount);
			return;
		}
	}
	for (i = 0; i < job->sources.n; i++) {
		if (stat(job->sources.v[i], &sb) == -1) {
			snprintf(msg, len, "source %s: %s; nothing was copied",
			    job->sources.v[i], strerror(errno));
			return;
		}
		if (!S_ISDIR(sb.st_mode)) {
			snprintf(msg, len, "source %s is not a folder; nothing "
			    "was copied", job->sources.v[i]);
			return;
		}
	}
	if (job->mode == VG_MODE_SYNC)
		snprintf(msg, len, "mode %s is not available in this version; "
		    "use backup, mirror or archive",
		    config_mode_name(job->mode));
}

int
runner_prepare(struct vg_store *st, const char *state_dir,
    const struct runner_request *req, struct runner_plan *plan,
    struct vg_err *err)
{
	struct vg_diags diags = { 0 };
	struct vg_err cerr;
	char msg[1024];
	size_t i, nint = 0;

	memset(plan, 0, sizeof *plan);
	plan->status = VG_RUN_FAILED;
	if (store_job_get_id(st, req->job_id, &plan->row, err) == -1)
		return -1;
	if (plan->row.deleted != 0) {
		vg_err_set(err, VG_ERR_NOTFOUND, "job %s was removed",
		    plan->row.name);
		goto fail;
	}
	if ((plan->job = config_parse_job(plan->row.definition,
	    &diags)) == NULL) {
		vg_err_set(err, VG_ERR_PARSE, "job %s: its stored definition "
		    "no longer parses (%s); re-import the jobs file",
		    plan->row.name, diags.n > 0 ? diags.v[0].msg : "unknown");
		goto fail;
	}
	diags_free(&diags);
	if ((plan->path = strdup("fallback")) == NULL ||
	    (plan->path_reason = strdup("no session agent consulted (a run "
	    "without the service)")) == NULL ||
	    (plan->sources = calloc(plan->job->sources.n + 1,
	    sizeof *plan->sources)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto fail;
	}
	for (i = 0; i < plan->job->sources.n; i++) {
		plan->sources[i].path = plan->job->sources.v[i];
		plan->sources[i].read_from = NULL;
		plan->sources[i].capture = VG_CAP_LIVE;
	}
	plan->fallback_capture = VG_CAP_LIVE;
	plan->started_ms = runner_now_ms();

	runner_check(plan->job, msg, sizeof msg);
	if (req->dry_run) {
		if (msg[0] != '\0') {
			vg_err_set(err, VG_ERR_INVALID, "job %s: %s",
			    plan->job->name, msg);
			goto fail;
		}
		return 0;
	}
	/* A job has one run at a time: a run of it still marked running was
	 * left by a process that died. */
	if (store_job_runs_mark_interrupted(st, plan->row.id, &nint,
	    err) == -1)
		goto fail;
	if (nint > 0)
		log_warnx("job %s: %zu earlier run%s left running by a stopped "
		    "process marked interrupted", plan->row.name, nint,
		    nint == 1 ? "" : "s");
	if (store_run_begin(st, plan->row.id, req->trigger, false,
	    &plan->run_id, err) == -1)
		goto fail;
	log_set_context(plan->job->name, plan->run_id);
	if (msg[0] != '\0') {
		log_warnx("%s", msg);
		plan->done = true;
		plan->status = VG_RUN_FAILED;
		if (runner_record_early(st, plan->run_id, plan->row.id,
		    VG_RUN_FAILED, "skip", "pre-run check failed", msg,
		    err) == -1)
			goto fail;
		log_set_context(NULL, 0);
		return 0;
	}
	vg_err_clear(&cerr);
	if (runner_catalogue_dir(state_dir, plan->row.owner_uid, &cerr) == 0)
		plan->catalogue_path = runner_catalogue_path(state_dir,
		    plan->row.owner_uid, plan->row.id);
	else
		log_warnx("no catalogue (%s); the run does a full rescan",
		    cerr.msg);
	log_set_context(NULL, 0);
	return 0;
fail:
	diags_free(&diags);
	log_set_context(NULL, 0);
	runner_plan_free(plan);
	return -1;
}

/* Add "; what" to the plan's path reason (for `vigil log`). */
static void
runner_reason_add(struct runner_plan *plan, const char *what)
{
	char *n = NULL;

	if (asprintf(&n, "%s; %s", plan->path_reason != NULL ?
	    plan->path_reason : "", what) == -1)
		return;
	free(plan->path_reason);
	plan->path_reason = n;
}

int
runner_capture(struct vg_store *st, struct runner_plan *plan,
    bool fallback_all, struct vg_err *err)
{
	const struct vg_job_def *job = plan->job;
	const struct snapshot_source *ss;
	struct snapshot_set *set = NULL;
	struct passwd *pw;
	char *line = NULL;
	uid_t uid;
	gid_t gid;
	size_t i;

	plan->fallback_capture = VG_CAP_VERIFIED;
	for (i = 0; i < job->sources.n; i++) {
		plan->sources[i].read_from = NULL;
		plan->sources[i].staging = NULL;
		plan->sources[i].capture = fallback_all ? VG_CAP_VERIFIED :
		    VG_CAP_CLOSED_APP;
		plan->sources[i].fallback = VG_CAP_VERIFIED;
	}
	if (!fallback_all && plan->fallback_files.n == 0)
		return 0;	/* the apps are closed: nothing to protect */
	log_set_context(job->name, plan->run_id);
	if (job->logged_off == VG_LOGGEDOFF_COPY) {
		log_info("logged-off = copy: no snapshot, each file is copied "
		    "and checked");
		runner_reason_add(plan, "logged-off = copy: verified copy");
		log_set_context(NULL, 0);
		return 0;
	}
	/* The staging folder goes to the worker's user. */
	if (geteuid() == 0) {
		uid = plan->row.owner_uid;
		gid = (pw = getpwuid(uid)) != NULL ? pw->pw_gid : (gid_t)-1;
	} else {
		uid = geteuid();
		gid = getegid();
	}
	if (snapshot_take(st, plan->run_id, job, uid, gid, geteuid() == 0,
	    &set, err) == -1) {
		log_warnx("%s", err->msg);
		log_set_context(NULL, 0);
		return -1;
	}
	for (i = 0; i < job->sources.n && i < snapshot_count(set); i++) {
		ss = snapshot_source(set, i);
		plan->sources[i].read_from = ss->read_from;
		plan->sources[i].staging = ss->staging;
		if (fallback_all)
			plan->sources[i].capture = ss->capture;
		else
			plan->sources[i].fallback = ss->capture;
		log_info("source %s: %s", ss->source, ss->reason);
		if (asprintf(&line, "%s: %s", ss->source, ss->reason) != -1) {
			runner_reason_add(plan, line);
			free(line);
			line = NULL;
		}
	}
	plan->snapshots = set;
	log_set_context(NULL, 0);
	return 0;
}

void
runner_release_set(struct vg_store *st, struct snapshot_set *set,
    int64_t run_id)
{
	struct vg_err err;

	if (set == NULL)
		return;
	vg_err_clear(&err);
	if (snapshot_release(st, set, &err) == -1)
		log_warnx("run %lld: %s", (long long)run_id, err.msg);
	snapshot_set_free(set);
}

void
runner_release(struct vg_store *st, struct runner_plan *plan)
{
	size_t i;

	if (plan->snapshots == NULL)
		return;
	runner_release_set(st, plan->snapshots, plan->run_id);
	plan->snapshots = NULL;
	/* what pointed into the set is gone with it */
	for (i = 0; plan->sources != NULL && plan->job != NULL &&
	    i < plan->job->sources.n; i++) {
		plan->sources[i].read_from = NULL;
		plan->sources[i].staging = NULL;
	}
}

void
runner_cleanup_snapshots(struct vg_store *st)
{
	struct vg_err err;
	size_t removed = 0, failed = 0;

	vg_err_clear(&err);
	if (snapshot_cleanup(st, &removed, &failed, &err) == -1) {
		log_warnx("cannot look for snapshots left by earlier runs: %s",
		    err.msg);
		return;
	}
	if (removed > 0)
		log_info("removed %zu snapshot%s or staging folder%s left by "
		    "earlier runs", removed, removed == 1 ? "" : "s",
		    removed == 1 ? "" : "s");
	if (failed > 0)
		log_warnx("%zu snapshot%s or staging folder%s left by earlier "
		    "runs could not be removed: %s", failed,
		    failed == 1 ? "" : "s", failed == 1 ? "" : "s", err.msg);
}

/* Add a warning to an engine result (the run record shows them). */
static void
runner_warn(struct vg_engine_result *res, const char *msg)
{
	char **w;

	if ((w = realloc(res->warnings, (res->nwarnings + 1) *
	    sizeof *w)) == NULL)
		return;
	res->warnings = w;
	if ((w[res->nwarnings] = strdup(msg)) != NULL)
		res->nwarnings++;
}

/*
 * Run the job's pre or post command (hooks.h), as whoever runs this: the
 * worker has already become the job's owner.  A dry run only says what it
 * would run.  -1 with err when the command failed.
 */
static int
runner_hook(const struct vg_job_def *job, const char *phase, int64_t run_id,
    const char *status, bool dry_run, FILE *plan_out,
    const volatile sig_atomic_t *cancel, struct vg_engine_result *res,
    struct vg_err *err)
{
	const struct vg_strlist *argv = strcmp(phase, "pre") == 0 ? &job->pre :
	    &job->post;
	char *out = NULL, *esc, msg[HOOKS_OUTPUT_MAX + 1200];
	size_t i;
	int rc;

	if (argv->n == 0)
		return 0;
	if (dry_run) {
		fprintf(plan_out, "would run %s command:", phase);
		for (i = 0; i < argv->n; i++) {
			esc = log_escape(argv->v[i]);
			fprintf(plan_out, " %s", esc != NULL ? esc : "?");
			free(esc);
		}
		fprintf(plan_out, "\n");
		return 0;
	}
	rc = hooks_run(argv, phase, job->name, run_id, status, HOOKS_TIMEOUT_S,
	    cancel, &out, err);
	if (rc == -1) {
		snprintf(msg, sizeof msg, "%s%s%s", err->msg,
		    out != NULL ? "; its output: " : "", out != NULL ? out : "");
		runner_warn(res, msg);
		log_warnx("%s", err->msg);
		/* The message a failed run records starts "pre command". */
	} else
		log_info("%s command done", phase);
	free(out);
	return rc;
}

int
runner_execute(const struct runner_plan *plan,
    const struct runner_request *req, struct vg_engine_result *res,
    struct vg_err *err)
{
	const struct vg_job_def *job = plan->job;
	struct vg_catalogue *cat = NULL;
	struct engine_opts eo;
	struct vg_err cerr;
	struct stat sb;
	char *dest_key = NULL;
	bool fresh = true;
	int rc;

	memset(res, 0, sizeof *res);
	log_set_context(job->name, plan->run_id);
	if (!req->dry_run && stat(job->destination, &sb) == -1 &&
	    mkdir(job->destination, 0700) == -1 && errno != EEXIST) {
		vg_err_sys(err, "cannot create destination %s",
		    job->destination);
		res->status = VG_RUN_FAILED;
		log_set_context(NULL, 0);
		return -1;
	}
	/* The catalogue: losing it only costs a full rescan. */
	vg_err_clear(&cerr);
	if (plan->catalogue_path != NULL) {
		if (stat(job->destination, &sb) == 0)
			rc = asprintf(&dest_key, "%s|%llu|%llu|%d",
			    job->destination, (unsigned long long)sb.st_dev,
			    (unsigned long long)sb.st_ino, (int)job->mode);
		else
			rc = asprintf(&dest_key, "%s|new|%d", job->destination,
			    (int)job->mode);
		if (rc == -1)
			dest_key = NULL;
		if (dest_key == NULL || catalogue_open(plan->catalogue_path,
		    dest_key, &cat, &fresh, &cerr) == -1) {
			log_warnx("catalogue %s unusable (%s); doing a full "
			    "rescan", plan->catalogue_path, cerr.msg);
			cat = NULL;
			fresh = true;
		}
	}
	if (job->priority == VG_PRIO_LOW && plat_set_low_priority() == -1)
		log_warn("cannot lower the run's priority");

	memset(&eo, 0, sizeof eo);
	eo.job = job;
	eo.sources = plan->sources;
	eo.nsources = job->sources.n;
	eo.catalogue = cat;
	eo.catalogue_fresh = fresh;
	eo.run_id = plan->run_id;
	eo.now_ms = plan->started_ms;
	eo.dry_run = req->dry_run;
	eo.plan_out = req->plan_out != NULL ? req->plan_out : stdout;
	eo.rescan = req->rescan;
	eo.as_root = geteuid() == 0;
	eo.progress = req->progress;
	eo.progress_arg = req->progress_arg;
	eo.cancel = req->cancel;
	eo.fallback_files = &plan->fallback_files;
	eo.fallback_capture = plan->fallback_capture;
	vg_err_clear(&cerr);
	if (runner_hook(job, "pre", plan->run_id, NULL, req->dry_run,
	    eo.plan_out, req->cancel, res, &cerr) == -1) {
		/* A failed pre command stops the run before any copy; a
		 * cancel stops the pre command. */
		res->status = cerr.code == VG_ERR_CANCELLED ?
		    VG_RUN_CANCELLED : VG_RUN_FAILED;
		if (res->message == NULL)
			res->message = strdup(cerr.msg);
		rc = 0;
	} else if (job->mode == VG_MODE_ARCHIVE)
		rc = archive_run(&eo, res, err);
	else
		rc = engine_run(&eo, res, err);
	if (cat != NULL)
		catalogue_close(cat);
	free(dest_key);
	if (job->post.n > 0 && !(res->status == VG_RUN_FAILED &&
	    res->message != NULL && strncmp(res->message, "pre command", 11) ==
	    0)) {
		vg_err_clear(&cerr);
		/* A failed post command is a warning; it makes an ok run
		 * partial, as the copy itself is complete. */
		/* not cancelled: it may undo what the pre command did; its
		 * timeout bounds it */
		if (runner_hook(job, "post", plan->run_id,
		    store_run_status_name(res->status), req->dry_run,
		    eo.plan_out, NULL, res, &cerr) == -1 &&
		    res->status == VG_RUN_OK)
			res->status = VG_RUN_PARTIAL;
	}

	if (!req->dry_run && res->status != VG_RUN_FAILED &&
	    runner_write_definition(job->destination, plan->row.definition,
	    &cerr) == -1)
		log_warnx("%s", cerr.msg);
	log_set_context(NULL, 0);
	return rc;
}

static char *
runner_details(const struct vg_engine_result *res, json_t *extra)
{
	json_t *o, *w;
	char *s;
	size_t i;

	if ((o = json_object()) == NULL)
		return NULL;
	w = json_array();
	for (i = 0; i < res->nwarnings; i++)
		json_array_append_new(w, json_string(res->warnings[i]));
	json_object_set_new(o, "warnings", w);
	json_object_set_new(o, "dirs", json_integer((json_int_t)res->dirs));
	json_object_set_new(o, "versions_pruned",
	    json_integer((json_int_t)res->versions_pruned));
	if (json_is_object(extra))
		json_object_update(o, extra);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int
runner_record(struct vg_store *st, const struct runner_plan *plan,
    const struct vg_engine_result *res, const struct vg_err *run_err,
    json_t *extra, struct vg_err *err)
{
	struct vg_run_row rr;
	struct vg_run_file *files = NULL;
	char *details = NULL;
	size_t i;
	int rc = -1;

	memset(&rr, 0, sizeof rr);
	rr.id = plan->run_id;
	rr.job_id = plan->row.id;
	rr.status = res->status;
	rr.path = plan->path;
	rr.path_reason = plan->path_reason;
	rr.ended = runner_now_ms();
	rr.files = res->files;
	rr.files_copied = res->files_copied;
	rr.files_unchanged = res->files_unchanged;
	rr.files_deleted = res->files_deleted;
	rr.files_versioned = res->files_versioned;
	rr.files_failed = res->files_failed;
	rr.bytes = res->bytes_copied;
	rr.bytes_total = res->bytes_total;
	memcpy(rr.capture, res->capture, sizeof rr.capture);
	if (res->message != NULL)
		rr.message = res->message;
	else if (res->status == VG_RUN_FAILED && run_err != NULL &&
	    run_err->msg[0] != '\0')
		rr.message = (char *)run_err->msg;
	details = runner_details(res, extra);
	rr.details_json = details;
	if (res->nproblems > 0 &&
	    (files = calloc(res->nproblems, sizeof *files)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	for (i = 0; i < res->nproblems; i++) {
		files[i].path = res->problems[i].path;
		files[i].path_len = res->problems[i].path_len;
		files[i].capture = res->problems[i].has_capture ? (char *)
		    store_capture_name(res->problems[i].capture) : NULL;
		files[i].problem = res->problems[i].problem;
		files[i].detail = res->problems[i].detail;
	}
	if (store_run_finish(st, &rr, files, res->nproblems, err) == -1)
		goto out;
	(void)store_job_set_times(st, plan->row.id, plan->started_ms / 1000,
	    plan->row.next_run, NULL);
	log_set_context(plan->job->name, plan->run_id);
	if (res->status == VG_RUN_OK)
		log_info("run finished ok: %llu copied, %llu unchanged, "
		    "%llu deleted", (unsigned long long)res->files_copied,
		    (unsigned long long)res->files_unchanged,
		    (unsigned long long)res->files_deleted);
	else
		log_warnx("run finished %s%s%s",
		    store_run_status_name(res->status),
		    rr.message != NULL ? ": " : "",
		    rr.message != NULL ? rr.message : "");
	log_set_context(NULL, 0);
	rc = 0;
out:
	free(files);
	free(details);
	return rc;
}

int
runner_run(struct vg_store *st, const char *state_dir,
    const struct runner_request *req, int64_t *run_id,
    enum vg_run_status *status, struct vg_err *err)
{
	struct runner_plan plan;
	struct vg_engine_result res;
	struct vg_err rerr;
	int rc = -1;

	*run_id = 0;
	*status = VG_RUN_FAILED;
	memset(&res, 0, sizeof res);
	if (runner_prepare(st, state_dir, req, &plan, err) == -1)
		return -1;
	*run_id = plan.run_id;
	if (plan.done) {
		*status = plan.status;
		rc = 0;
		goto out;
	}
	vg_err_clear(&rerr);
	if (!req->dry_run) {
		/* what a killed run left, then this run's snapshots */
		runner_cleanup_snapshots(st);
		if (runner_capture(st, &plan, true, &rerr) == -1) {
			res.status = VG_RUN_FAILED;
			res.message = strdup(rerr.msg);
			*status = VG_RUN_FAILED;
			rc = runner_record(st, &plan, &res, &rerr, NULL, err);
			goto out;
		}
	}
	if (runner_execute(&plan, req, &res, &rerr) == -1 && req->dry_run) {
		if (err != NULL)
			*err = rerr;
		goto out;
	}
	runner_release(st, &plan);
	*status = res.status;
	if (req->dry_run) {
		rc = 0;
		goto out;
	}
	rc = runner_record(st, &plan, &res, &rerr, NULL, err);
out:
	runner_release(st, &plan);
	engine_result_free(&res);
	runner_plan_free(&plan);
	return rc;
}

/* ---- the engine result between processes ---- */

static json_t *
runner_bytes_json(const char *s, size_t len)
{
	/* Raw bytes (paths may be any bytes): hex keeps them exact. */
	static const char hex[] = "0123456789abcdef";
	char *b;
	json_t *j;
	size_t i;

	if ((b = malloc(len * 2 + 1)) == NULL)
		return json_null();
	for (i = 0; i < len; i++) {
		b[2 * i] = hex[(unsigned char)s[i] >> 4];
		b[2 * i + 1] = hex[(unsigned char)s[i] & 15];
	}
	j = json_stringn(b, len * 2);
	free(b);
	return j;
}

static char *
runner_bytes_from_json(json_t *j, size_t *lenp)
{
	const char *h = json_string_value(j);
	size_t n, i;
	char *b;
	int hi, lo;

	if (h == NULL || (n = json_string_length(j)) % 2 != 0)
		return NULL;
	if ((b = malloc(n / 2 + 1)) == NULL)
		return NULL;
	for (i = 0; i < n / 2; i++) {
		hi = h[2 * i] <= '9' ? h[2 * i] - '0' : h[2 * i] - 'a' + 10;
		lo = h[2 * i + 1] <= '9' ? h[2 * i + 1] - '0' :
		    h[2 * i + 1] - 'a' + 10;
		if (hi < 0 || hi > 15 || lo < 0 || lo > 15) {
			free(b);
			return NULL;
		}
		b[i] = (char)(hi << 4 | lo);
	}
	b[n / 2] = '\0';
	*lenp = n / 2;
	return b;
}

static json_t *
runner_opt_str(const char *s)
{
	json_t *j;

	if (s == NULL)
		return json_null();
	j = runner_bytes_json(s, strlen(s));
	return j;
}

static char *
runner_opt_str_from(json_t *j)
{
	size_t len;

	if (json_is_null(j) || j == NULL)
		return NULL;
	return runner_bytes_from_json(j, &len);
}

#define RUNNER_COUNTERS(X)						\
	X(files) X(dirs) X(files_copied) X(files_unchanged)		\
	X(files_deleted) X(files_versioned) X(files_failed)		\
	X(bytes_copied) X(bytes_total) X(versions_pruned)		\
	X(plan_copies) X(plan_deletes) X(plan_versions) X(plan_bytes)

json_t *
runner_result_to_json(const struct vg_engine_result *res)
{
	json_t *o, *a, *p;
	size_t i;

	o = json_object();
	json_object_set_new(o, "status", json_integer(res->status));
	json_object_set_new(o, "message", runner_opt_str(res->message));
#define X(f) json_object_set_new(o, #f, json_integer((json_int_t)res->f));
	RUNNER_COUNTERS(X)
#undef X
	a = json_array();
	for (i = 0; i < VG_CAP_COUNT; i++)
		json_array_append_new(a, json_integer((json_int_t)
		    res->capture[i]));
	json_object_set_new(o, "capture", a);
	a = json_array();
	for (i = 0; i < res->nproblems; i++) {
		p = json_object();
		json_object_set_new(p, "path", runner_bytes_json(
		    res->problems[i].path, res->problems[i].path_len));
		json_object_set_new(p, "capture", res->problems[i].has_capture ?
		    json_integer(res->problems[i].capture) : json_null());
		json_object_set_new(p, "problem",
		    runner_opt_str(res->problems[i].problem));
		json_object_set_new(p, "detail",
		    runner_opt_str(res->problems[i].detail));
		json_array_append_new(a, p);
	}
	json_object_set_new(o, "problems", a);
	a = json_array();
	for (i = 0; i < res->nwarnings; i++)
		json_array_append_new(a, runner_opt_str(res->warnings[i]));
	json_object_set_new(o, "warnings", a);
	return o;
}

int
runner_result_from_json(json_t *o, struct vg_engine_result *res)
{
	json_t *a, *p, *c;
	json_int_t st;
	size_t i, n;

	memset(res, 0, sizeof *res);
	res->status = VG_RUN_FAILED;
	if (!json_is_object(o))
		return -1;
	st = json_integer_value(json_object_get(o, "status"));
	if (st < VG_RUN_RUNNING || st > VG_RUN_POSTPONED)
		return -1;
	res->status = (enum vg_run_status)st;
	res->message = runner_opt_str_from(json_object_get(o, "message"));
#define X(f) res->f = (uint64_t)json_integer_value(json_object_get(o, #f));
	RUNNER_COUNTERS(X)
#undef X
	a = json_object_get(o, "capture");
	for (i = 0; i < VG_CAP_COUNT && i < json_array_size(a); i++)
		res->capture[i] = (uint64_t)json_integer_value(
		    json_array_get(a, i));
	a = json_object_get(o, "problems");
	n = json_array_size(a);
	if (n > 0 && (res->problems = calloc(n, sizeof *res->problems)) ==
	    NULL)
		return -1;
	for (i = 0; i < n; i++) {
		p = json_array_get(a, i);
		res->problems[i].path = runner_bytes_from_json(
		    json_object_get(p, "path"), &res->problems[i].path_len);
		if (res->problems[i].path == NULL)
			return -1;
		c = json_object_get(p, "capture");
		if (json_is_integer(c) && json_integer_value(c) >= 0 &&
		    json_integer_value(c) < VG_CAP_COUNT) {
			res->problems[i].has_capture = true;
			res->problems[i].capture = (enum vg_capture)
			    json_integer_value(c);
		}
		res->problems[i].problem = runner_opt_str_from(
		    json_object_get(p, "problem"));
		res->problems[i].detail = runner_opt_str_from(
		    json_object_get(p, "detail"));
		res->nproblems++;
	}
	a = json_object_get(o, "warnings");
	n = json_array_size(a);
	if (n > 0 && (res->warnings = calloc(n, sizeof *res->warnings)) ==
	    NULL)
		return -1;
	for (i = 0; i < n; i++)
		if ((res->warnings[res->nwarnings] = runner_opt_str_from(
		    json_array_get(a, i))) != NULL)
			res->nwarnings++;
	return 0;
}
