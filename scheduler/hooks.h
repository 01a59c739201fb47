/*
 * hooks.h: a job's pre and post commands.
 *
 * A command is an argv (split like systemd's ExecStart= by the jobs-file
 * parser; never a shell).  It runs in the worker, so as the job's owner,
 * with stdin from /dev/null, stdout and stderr captured (the first
 * HOOKS_OUTPUT_MAX bytes are kept for the run record), a small environment
 * (PATH, HOME, USER, LANG plus VIGIL_JOB, VIGIL_RUN, VIGIL_PHASE and, for
 * post, VIGIL_STATUS) and a timeout: SIGTERM at the deadline, SIGKILL
 * 5 s later.
 *
 * Ownership: *output is malloc'd (may be NULL) and freed by the caller.
 */
#ifndef VIGIL_HOOKS_H
#define VIGIL_HOOKS_H

#include <stdint.h>

#include "common/config.h"
#include <signal.h>

#include "common/err.h"

#define HOOKS_TIMEOUT_S		1800	/* 30 min */
#define HOOKS_OUTPUT_MAX	4096

/*
 * Run argv.  phase is "pre" or "post"; status (post only, else NULL) is the
 * run's status so far.  cancel (NULL: none) is the run's cancel flag: once
 * it is set the command is stopped like one past its timeout (TERM to its
 * process group, KILL 5 s later) and err's code is VG_ERR_CANCELLED.
 * Returns 0 when the command exited 0; -1 with err saying why otherwise
 * (exit status, signal, timeout, cancel, cannot start).
 */
int	hooks_run(const struct vg_strlist *argv, const char *phase,
	    const char *job, int64_t run_id, const char *status,
	    unsigned timeout_s, const volatile sig_atomic_t *cancel,
	    char **output, struct vg_err *err);

#endif
