/* hooks.c: a job's pre and post commands (see hooks.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "scheduler/hooks.h"

static int64_t
hooks_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void __attribute__((noreturn))
hooks_child(const struct vg_strlist *argv, const char *phase, const char *job,
    int64_t run_id, const char *status, int out)
{
	char **av, *env[10], buf[7][512];
	struct passwd *pw;
	sigset_t mask;
	size_t i;
	int fd, k = 0;

	sigemptyset(&mask);
	(void)sigprocmask(SIG_SETMASK, &mask, NULL);
	signal(SIGPIPE, SIG_DFL);
	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1 ||
	    dup2(fd, STDIN_FILENO) == -1 || dup2(out, STDOUT_FILENO) == -1 ||
	    dup2(out, STDERR_FILENO) == -1)
		_exit(126);
	/* Our own process group, so that a timeout reaches its children. */
	(void)setpgid(0, 0);
	pw = getpwuid(geteuid());
	snprintf(buf[0], sizeof buf[0], "PATH=/usr/local/sbin:/usr/local/bin:"
	    "/usr/sbin:/usr/bin:/sbin:/bin");
	snprintf(buf[1], sizeof buf[1], "HOME=%s", pw != NULL ? pw->pw_dir :
	    "/");
	snprintf(buf[2], sizeof buf[2], "USER=%s", pw != NULL ? pw->pw_name :
	    "");
	snprintf(buf[3], sizeof buf[3], "VIGIL_JOB=%s", job);
	snprintf(buf[4], sizeof buf[4], "VIGIL_RUN=%lld", (long long)run_id);
	snprintf(buf[5], sizeof buf[5], "VIGIL_PHASE=%s", phase);
	snprintf(buf[6], sizeof buf[6], "VIGIL_STATUS=%s", status != NULL ?
	    status : "");
	for (i = 0; i < 6; i++)
		env[k++] = buf[i];
	if (status != NULL)
		env[k++] = buf[6];
	env[k++] = "LANG=C.UTF-8";
	env[k] = NULL;
	if ((av = calloc(argv->n + 1, sizeof *av)) == NULL)
		_exit(126);
	for (i = 0; i < argv->n; i++)
		av[i] = argv->v[i];
	execve(av[0], av, env);
	fprintf(stderr, "cannot run %s: %s\n", av[0], strerror(errno));
	_exit(127);
}

int
hooks_run(const struct vg_strlist *argv, const char *phase, const char *job,
    int64_t run_id, const char *status, unsigned timeout_s,
    const volatile sig_atomic_t *cancel, char **output, struct vg_err *err)
{
	char buf[HOOKS_OUTPUT_MAX + 1], *prog = NULL;
	size_t got = 0;
	int p[2], st = 0, rc = -1, wait;
	int64_t deadline, kill_at = 0;
	bool timed_out = false, cancelled = false;
	struct pollfd pfd;
	pid_t pid, r;
	ssize_t n;

	*output = NULL;
	if (argv->n == 0 || argv->v[0][0] != '/') {
		vg_err_set(err, VG_ERR_INVALID, "%s command needs an absolute "
		    "program path", phase);
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) == -1) {
		vg_err_sys(err, "%s command: pipe", phase);
		return -1;
	}
	if ((pid = fork()) == -1) {
		vg_err_sys(err, "%s command: fork", phase);
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		hooks_child(argv, phase, job, run_id, status, p[1]);
	}
	close(p[1]);
	deadline = hooks_now_ms() + (int64_t)timeout_s * 1000;
	pfd.fd = p[0];
	pfd.events = POLLIN;
	for (;;) {
		int64_t until = kill_at != 0 ? kill_at : deadline;

		wait = (int)(until - hooks_now_ms());
		if (wait < 0)
			wait = 0;
		if (cancel != NULL && wait > 200)
			wait = 200;	/* the flag is looked at this often */
		if (cancel != NULL && *cancel && kill_at == 0) {
			cancelled = true;
			(void)kill(-pid, SIGTERM);
			(void)kill(pid, SIGTERM);
			kill_at = hooks_now_ms() + 5000;
			continue;
		}
		if (poll(&pfd, 1, wait) > 0) {
			char tmp[4096];

			n = read(p[0], tmp, sizeof tmp);
			if (n > 0 && got < HOOKS_OUTPUT_MAX) {
				size_t take = (size_t)n;

				if (take > HOOKS_OUTPUT_MAX - got)
					take = HOOKS_OUTPUT_MAX - got;
				memcpy(buf + got, tmp, take);
				got += take;
			}
			if (n == 0)
				break;	/* every writer closed: the end */
			if (n > 0)
				continue;
			if (errno == EINTR)
				continue;
			break;
		}
		if (hooks_now_ms() >= until) {
			if (kill_at == 0) {
				timed_out = true;
				(void)kill(-pid, SIGTERM);
				(void)kill(pid, SIGTERM);
				kill_at = hooks_now_ms() + 5000;
			} else {
				(void)kill(-pid, SIGKILL);
				(void)kill(pid, SIGKILL);
				break;
			}
		}
	}
	close(p[0]);
	while ((r = waitpid(pid, &st, 0)) == -1 && errno == EINTR)
		;
	buf[got] = '\0';
	if (got > 0)
		*output = log_escape_len(buf, got);
	prog = log_escape(argv->v[0]);
	if (r == -1)
		vg_err_sys(err, "%s command %s", phase, prog);
	else if (cancelled)
		vg_err_set(err, VG_ERR_CANCELLED, "%s command %s was stopped: "
		    "the run was cancelled", phase, prog);
	else if (timed_out)
		vg_err_set(err, VG_ERR_ABORT, "%s command %s did not finish "
		    "within %u s and was stopped", phase, prog, timeout_s);
	else if (WIFSIGNALED(st))
		vg_err_set(err, VG_ERR_ABORT, "%s command %s was killed by "
		    "signal %d", phase, prog, WTERMSIG(st));
	else if (WEXITSTATUS(st) == 127)
		vg_err_set(err, VG_ERR_NOTFOUND, "%s command %s could not be "
		    "started (missing or not executable)", phase, prog);
	else if (WEXITSTATUS(st) != 0)
		vg_err_set(err, VG_ERR_ABORT, "%s command %s exited with status "
		    "%d", phase, prog, WEXITSTATUS(st));
	else
		rc = 0;
	free(prog);
	return rc;
}
