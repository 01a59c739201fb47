/*
 * service.h: vigild's main loop.
 *
 * One epoll set waits on: the control socket (server.h), the schedule timer
 * (a wall-clock timerfd that also reports clock jumps), the wake-up timer
 * (CLOCK_REALTIME_ALARM, for jobs with wake = yes), the max-runtime deadline
 * timer, a signalfd (SIGTERM, SIGINT, SIGHUP) and one socket per running
 * worker.  Nothing polls: with no run going and nothing due the process
 * sleeps until a client connects or a timer fires.
 *
 * The loop asks sched.h what to start, starts each run as a worker
 * (runner_prepare in the service, runner_execute in the worker as the job's
 * owner, runner_record back in the service), fans progress out to
 * subscribers, and answers the requests that need the loop (run, cancel,
 * status); everything else goes to control_handle().
 */
#ifndef VIGIL_SERVICE_H
#define VIGIL_SERVICE_H

#include <stdbool.h>
#include <sys/types.h>

struct service_opts {
	const char	*state_dir;
	const char	*socket_path;
	mode_t		 socket_mode;	/* 0666 system, 0600 user mode */
	bool		 user_mode;
	unsigned	 concurrency;	/* runs at once across jobs; 0 = from
					   the "concurrency" setting, default
					   1 */
};

/* Runs until SIGTERM/SIGINT; returns the process exit code. */
int	service_run(const struct service_opts *opts);

#endif
