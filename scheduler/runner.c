/* runner.c: one recorded run of one job (see runner.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
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
#include "scheduler/engine.h"
#include "scheduler/runner.h"

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

	snprintf(path, sizeof path, "%s/catalogue", state_dir);
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		vg_err_sys(err, "cannot create %s", path);
		return -1;
	}
	snprintf(path, sizeof path, "%s/catalogue/%u", state_dir,
	    (unsigned)owner);
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		vg_err_sys(err, "cannot create %s", path);
		return -1;
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
	snprintf(tmp, sizeof tmp, ".vigil-tmp-job-%ld", (long)getpid());
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

static char *
runner_details(const struct vg_engine_result *res)
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
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int
runner_run(struct vg_store *st, const char *state_dir,
    const struct runner_request *req, int64_t *run_id,
    enum vg_run_status *status, struct vg_err *err)
{
	struct vg_job_row row;
	struct vg_job_def *job = NULL;
	struct vg_diags diags = { 0 };
	struct vg_catalogue *cat = NULL;
	struct engine_source *srcs = NULL;
	struct engine_opts eo;
	struct vg_engine_result res;
	struct vg_run_row rr;
	struct vg_run_file *files = NULL;
	struct vg_err cerr;
	char *catpath = NULL, *dest_key = NULL, *details = NULL;
	char msg[1024];
	const char *reason;
	bool fresh = false, is_mnt = false;
	size_t i;
	int rc = -1;
	struct stat sb;

	memset(&row, 0, sizeof row);
	memset(&res, 0, sizeof res);
	*run_id = 0;
	*status = VG_RUN_FAILED;

	if (store_job_get_id(st, req->job_id, &row, err) == -1)
		return -1;
	if ((job = config_parse_job(row.definition, &diags)) == NULL) {
		vg_err_set(err, VG_ERR_PARSE, "job %s: its stored definition "
		    "no longer parses (%s); re-import the jobs file", row.name,
		    diags.n > 0 ? diags.v[0].msg : "unknown error");
		goto out;
	}
	log_set_context(job->name, 0);

	if (!req->dry_run) {
		if (store_run_begin(st, row.id, req->trigger, false, run_id,
		    err) == -1)
			goto out;
		log_set_context(job->name, *run_id);
	}

	/* Checks that stop a run before it touches anything. */
	msg[0] = '\0';
	if (job->require_mount != NULL) {
		int mfd = open(job->require_mount, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);

		if (mfd == -1 || plat_is_mount_root(mfd, "", &is_mnt) == -1)
			is_mnt = false;
		if (mfd != -1)
			close(mfd);
		if (!is_mnt)
			snprintf(msg, sizeof msg, "require-mount %s is not a "
			    "mount point: is the disk plugged in and mounted? "
			    "Nothing was copied", job->require_mount);
	}
	for (i = 0; msg[0] == '\0' && i < job->sources.n; i++) {
		if (stat(job->sources.v[i], &sb) == -1)
			snprintf(msg, sizeof msg, "source %s: %s; nothing was "
			    "copied", job->sources.v[i], strerror(errno));
		else if (!S_ISDIR(sb.st_mode))
			snprintf(msg, sizeof msg, "source %s is not a folder; "
			    "nothing was copied", job->sources.v[i]);
	}
	if (msg[0] == '\0' && job->mode != VG_MODE_BACKUP &&
	    job->mode != VG_MODE_MIRROR)
		snprintf(msg, sizeof msg, "mode %s is not available in this "
		    "version; use backup or mirror", config_mode_name(job->mode));
	if (msg[0] != '\0') {
		log_warnx("%s", msg);
		if (req->dry_run) {
			vg_err_set(err, VG_ERR_INVALID, "job %s: %s", job->name,
			    msg);
			goto out;
		}
		if (runner_record_early(st, *run_id, row.id, VG_RUN_FAILED,
		    "skip", "pre-run check failed", msg, err) == -1)
			goto out;
		*status = VG_RUN_FAILED;
		rc = 0;
		goto out;
	}

	if (!req->dry_run && (stat(job->destination, &sb) == -1)) {
		/* Create the destination root if its parent exists. */
		if (mkdir(job->destination, 0700) == -1 && errno != EEXIST) {
			snprintf(msg, sizeof msg, "destination %s: %s; nothing "
			    "was copied", job->destination, strerror(errno));
			log_warnx("%s", msg);
			if (runner_record_early(st, *run_id, row.id,
			    VG_RUN_FAILED, "skip", "pre-run check failed", msg,
			    err) == -1)
				goto out;
			rc = 0;
			goto out;
		}
	}

	/* The catalogue: losing it only costs a full rescan. */
	if (runner_catalogue_dir(state_dir, row.owner_uid, &cerr) == 0 &&
	    (catpath = runner_catalogue_path(state_dir, row.owner_uid,
	    row.id)) != NULL) {
		if (stat(job->destination, &sb) == 0)
			(void)asprintf(&dest_key, "%s|%llu|%llu|%d",
			    job->destination, (unsigned long long)sb.st_dev,
			    (unsigned long long)sb.st_ino, (int)job->mode);
		else
			(void)asprintf(&dest_key, "%s|new|%d", job->destination,
			    (int)job->mode);
		if (dest_key == NULL || catalogue_open(catpath, dest_key, &cat,
		    &fresh, &cerr) == -1) {
			log_warnx("catalogue %s unusable (%s); doing a full "
			    "rescan", catpath, cerr.msg);
			cat = NULL;
			fresh = true;
		}
	} else
		log_warnx("no catalogue (%s); doing a full rescan", cerr.msg);

	if (job->priority == VG_PRIO_LOW && plat_set_low_priority() == -1)
		log_warn("cannot lower the run's priority");

	if ((srcs = calloc(job->sources.n, sizeof *srcs)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	for (i = 0; i < job->sources.n; i++) {
		srcs[i].path = job->sources.v[i];
		srcs[i].read_from = NULL;
		srcs[i].capture = VG_CAP_LIVE;
	}
	memset(&eo, 0, sizeof eo);
	eo.job = job;
	eo.sources = srcs;
	eo.nsources = job->sources.n;
	eo.catalogue = cat;
	eo.catalogue_fresh = fresh;
	eo.run_id = *run_id;
	eo.now_ms = runner_now_ms();
	eo.dry_run = req->dry_run;
	eo.plan_out = req->plan_out != NULL ? req->plan_out : stdout;
	eo.rescan = req->rescan;
	eo.as_root = geteuid() == 0;
	eo.progress = req->progress;
	eo.progress_arg = req->progress_arg;
	eo.cancel = req->cancel;

	if (engine_run(&eo, &res, err) == -1 && req->dry_run)
		goto out;
	*status = res.status;
	if (req->dry_run) {
		rc = 0;
		goto out;
	}

	if (res.status != VG_RUN_FAILED &&
	    runner_write_definition(job->destination, row.definition,
	    &cerr) == -1)
		log_warnx("%s", cerr.msg);

	/* The record. */
	memset(&rr, 0, sizeof rr);
	rr.id = *run_id;
	rr.job_id = row.id;
	rr.status = res.status;
	rr.path = "fallback";
	reason = "no session agent consulted: files were read live";
	rr.path_reason = (char *)reason;
	rr.ended = runner_now_ms();
	rr.files = res.files;
	rr.files_copied = res.files_copied;
	rr.files_unchanged = res.files_unchanged;
	rr.files_deleted = res.files_deleted;
	rr.files_versioned = res.files_versioned;
	rr.files_failed = res.files_failed;
	rr.bytes = res.bytes_copied;
	rr.bytes_total = res.bytes_total;
	memcpy(rr.capture, res.capture, sizeof rr.capture);
	if (res.message != NULL)
		rr.message = res.message;
	else if (res.status == VG_RUN_FAILED && err != NULL &&
	    err->msg[0] != '\0')
		rr.message = err->msg;
	details = runner_details(&res);
	rr.details_json = details;
	if (res.nproblems > 0 &&
	    (files = calloc(res.nproblems, sizeof *files)) == NULL) {
		vg_err_sys(err, "out of memory");
		goto out;
	}
	for (i = 0; i < res.nproblems; i++) {
		files[i].path = res.problems[i].path;
		files[i].path_len = res.problems[i].path_len;
		files[i].capture = res.problems[i].has_capture ? (char *)
		    store_capture_name(res.problems[i].capture) : NULL;
		files[i].problem = res.problems[i].problem;
		files[i].detail = res.problems[i].detail;
	}
	if (store_run_finish(st, &rr, files, res.nproblems, err) == -1)
		goto out;
	(void)store_job_set_times(st, row.id, rr.ended / 1000 -
	    (rr.ended - eo.now_ms) / 1000, row.next_run, NULL);
	if (res.status == VG_RUN_OK)
		log_info("run finished ok: %llu copied, %llu unchanged, "
		    "%llu deleted", (unsigned long long)res.files_copied,
		    (unsigned long long)res.files_unchanged,
		    (unsigned long long)res.files_deleted);
	else
		log_warnx("run finished %s%s%s",
		    store_run_status_name(res.status),
		    res.message != NULL ? ": " : "",
		    res.message != NULL ? res.message : "");
	rc = 0;
out:
	log_set_context(NULL, 0);
	free(files);
	free(details);
	engine_result_free(&res);
	if (cat != NULL)
		catalogue_close(cat);
	free(srcs);
	free(catpath);
	free(dest_key);
	job_def_free(job);
	diags_free(&diags);
	job_row_free(&row);
	return rc;
}
