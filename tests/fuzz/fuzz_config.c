/*
 * fuzz_config.c: libFuzzer target for the jobs file parser (common/config.h),
 * the text every user hands to `vigil jobs import` and `jobs edit`.
 *
 * The input is a jobs file.  Checked for every input:
 *   - config_parse() ends, and frees cleanly (leaks are reported);
 *   - the diagnostics print (their escaping of hostile bytes runs);
 *   - config_check() without touching the filesystem;
 * and for a file that parses without error:
 *   - config_export() of what was parsed gives the input back byte for
 *     byte (docs/config.md: comments and all);
 *   - config_parse_job() of each job's own text (what the store keeps)
 *     parses again, to a job of the same name and the same sources.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE	*fuzz_null;

static void
fuzz_job_again(const struct vg_job_def *job)
{
	struct vg_diags d;
	struct vg_job_def *again;
	size_t i;

	memset(&d, 0, sizeof d);
	if ((again = config_parse_job(job->text, &d)) == NULL) {
		fprintf(stderr, "config_parse_job failed on the text of job "
		    "\"%s\" that parsed in its file\n", job->name);
		diags_print(&d, stderr);
		abort();
	}
	if (strcmp(again->name, job->name) != 0 ||
	    again->sources.n != job->sources.n)
		abort();
	for (i = 0; i < job->sources.n; i++)
		if (strcmp(again->sources.v[i], job->sources.v[i]) != 0)
			abort();
	if (strcmp(again->destination, job->destination) != 0 ||
	    again->mode != job->mode)
		abort();
	job_def_free(again);
	diags_free(&d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags diags;
	struct vg_check_ctx ctx;
	char *text = NULL, *exp = NULL;
	size_t i;
	int rc;

	if (size > 256 * 1024)
		return 0;
	if (fuzz_null == NULL && (fuzz_null = fopen("/dev/null", "w")) == NULL)
		abort();
	/* An exact-size copy, so that a read past the end is caught. */
	if ((text = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	memset(&diags, 0, sizeof diags);
	rc = config_parse("fuzz.ini", text, size, &jf, &diags);
	diags_print(&diags, fuzz_null);
	if (jf == NULL)
		goto out;
	memset(&ctx, 0, sizeof ctx);
	ctx.caller_uid = 1000;
	ctx.check_paths = false;
	(void)config_check(jf, "fuzz.ini", &ctx, &diags);
	diags_print(&diags, fuzz_null);
	if (rc != 0 || diags.nerrors != 0)
		goto out;

	if ((exp = config_export(jf->preamble, jf->jobs, jf->njobs)) == NULL)
		abort();
	if (strlen(exp) != size || memcmp(exp, text, size) != 0) {
		fprintf(stderr, "export differs from the input: %zu bytes in, "
		    "%zu out\n", size, strlen(exp));
		abort();
	}
	for (i = 0; i < jf->njobs; i++)
		fuzz_job_again(jf->jobs[i]);
out:
	free(exp);
	jobfile_free(jf);
	diags_free(&diags);
	free(text);
	return 0;
}
