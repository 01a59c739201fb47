/*
 * holdfile: a test app that holds a file open, like an editor with a
 * document.  On SIGTERM it saves (appends "saved by PID" to the file,
 * fsync), writes "sigterm PID" to the marker file and exits 0.
 *
 * usage: holdfile FILE [MARKER [ARGS...]]   (ARGS are ignored: they let
 * tests check that a relaunch keeps the whole command line)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t term;

static void
on_term(int sig)
{
	(void)sig;
	term = 1;
}

static int
put(int fd, const char *s)
{
	size_t len = strlen(s);

	return write(fd, s, len) == (ssize_t)len ? 0 : -1;
}

int
main(int argc, char *argv[])
{
	struct sigaction sa;
	char buf[64];
	int fd, mfd;

	if (argc < 2) {
		fprintf(stderr, "usage: holdfile FILE [MARKER [ARGS...]]\n");
		return 2;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	if ((fd = open(argv[1], O_RDWR | O_CREAT | O_APPEND, 0644)) == -1) {
		fprintf(stderr, "holdfile: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	snprintf(buf, sizeof buf, "opened by %d\n", (int)getpid());
	if (put(fd, buf) == -1 || fsync(fd) == -1)
		return 1;
	while (!term)
		pause();
	snprintf(buf, sizeof buf, "saved by %d\n", (int)getpid());
	if (put(fd, buf) == -1 || fsync(fd) == -1 || close(fd) == -1)
		return 1;
	if (argc > 2) {
		mfd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
		snprintf(buf, sizeof buf, "sigterm %d\n", (int)getpid());
		if (mfd == -1 || put(mfd, buf) == -1 || close(mfd) == -1)
			return 1;
	}
	return 0;
}
