/* report.c: the human form of a run record (see report.h). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "scheduler/report.h"

const char *
report_jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "-";
}

long long
report_jint(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

void
report_human_bytes(double b, char *buf, size_t len)
{
	const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", b);
	else
		snprintf(buf, len, "%.1f %s", b, units[u]);
}

/* The run summary, shared by `run --wait` and `log`. */
void
report_print_run(FILE *fp, json_t *r, bool with_files)
{
	json_t *counts = json_object_get(r, "counts");
	json_t *cap = json_object_get(r, "capture");
	json_t *files = json_object_get(r, "problems");
	json_t *details = json_object_get(r, "details");
	json_t *v, *f;
	const char *k;
	char b1[32], b2[32];
	size_t i;

	fprintf(fp, "run %lld  job %s  status %s\n", report_jint(r, "id"), report_jstr(r, "job"),
	    report_jstr(r, "status"));
	fprintf(fp, "  path      %s (%s)\n", report_jstr(r, "path"),
	    report_jstr(r, "path_reason"));
	fprintf(fp, "  started   %s\n  ended     %s\n", report_jstr(r, "started"),
	    report_jstr(r, "ended"));
	if (json_is_integer(json_object_get(r, "duration_ms")))
		fprintf(fp, "  duration  %.3f s\n",
		    (double)report_jint(r, "duration_ms") / 1000.0);
	fprintf(fp, "  files     %lld (copied %lld, unchanged %lld, deleted %lld, "
	    "versioned %lld, failed %lld)\n", report_jint(r, "files"),
	    report_jint(counts, "copied"), report_jint(counts, "unchanged"),
	    report_jint(counts, "deleted"), report_jint(counts, "versioned"),
	    report_jint(counts, "failed"));
	report_human_bytes((double)report_jint(r, "bytes"), b1, sizeof b1);
	report_human_bytes((double)report_jint(r, "bytes_total"), b2, sizeof b2);
	fprintf(fp, "  bytes     %s written, %s in the source\n", b1, b2);
	fprintf(fp, "  capture  ");
	if (json_object_size(cap) == 0)
		fprintf(fp, " (nothing copied)");
	json_object_foreach(cap, k, v)
		fprintf(fp, " %s %lld", k, (long long)json_integer_value(v));
	fprintf(fp, "\n");
	if (json_is_string(json_object_get(r, "message")))
		fprintf(fp, "  message   %s\n", report_jstr(r, "message"));
	v = json_object_get(details, "warnings");
	for (i = 0; i < json_array_size(v); i++)
		fprintf(fp, "  warning   %s\n",
		    json_string_value(json_array_get(v, i)));
	if (!with_files)
		return;
	if (json_array_size(files) > 0)
		fprintf(fp, "  files not captured the primary way, or with a "
		    "problem:\n");
	json_array_foreach(files, i, f) {
		fprintf(fp, "    %-14s %s", report_jstr(f, "problem"), report_jstr(f, "path"));
		if (json_is_string(json_object_get(f, "capture")))
			fprintf(fp, "  [%s]", report_jstr(f, "capture"));
		if (json_is_string(json_object_get(f, "detail")))
			fprintf(fp, "  (%s)", report_jstr(f, "detail"));
		fprintf(fp, "\n");
	}
}


int
report_status_exit(const char *status)
{
	if (status == NULL)
		return 1;
	if (strcmp(status, "ok") == 0)
		return 0;
	if (strcmp(status, "partial") == 0)
		return 3;
	if (strcmp(status, "failed") == 0)
		return 4;
	if (strcmp(status, "cancelled") == 0 ||
	    strcmp(status, "interrupted") == 0)
		return 5;
	if (strcmp(status, "skipped") == 0 || strcmp(status, "postponed") == 0)
		return 6;
	return 1;
}
