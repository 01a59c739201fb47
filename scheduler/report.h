/*
 * report.h: the human form of a run record, shared by `vigil run --wait`,
 * `vigil log` and `vigild --run-once` so that they print the same summary.
 * The record is the JSON object of control_run_json() plus "files".
 */
#ifndef VIGIL_REPORT_H
#define VIGIL_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* Print status, path, counts, capture counts, warnings and (with_files)
 * every file not captured the primary way or with a problem. */
void		 report_print_run(FILE *fp, json_t *run, bool with_files);
void		 report_human_bytes(double bytes, char *buf, size_t len);
/* The exit code of `vigil run --wait` for a run status name (DESIGN.md,
 * "CLI contract"): 0 ok, 3 partial, 4 failed, 5 cancelled or interrupted,
 * 6 postponed or skipped, 1 for anything else. */
int		 report_status_exit(const char *status);
/* Convenience getters: "-" / 0 when the key is missing. */
const char	*report_jstr(json_t *o, const char *key);
long long	 report_jint(json_t *o, const char *key);

#endif
