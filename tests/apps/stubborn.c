/*
 * stubborn: a test app that holds a file open and ignores SIGTERM, like an
 * app that will not close.  Only SIGKILL ends it.
 *
 * usage: stubborn FILE
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	char buf[64];
	int fd, n;

	if (argc != 2) {
		fprintf(stderr, "usage: stubborn FILE\n");
		return 2;
	}
	signal(SIGTERM, SIG_IGN);
	if ((fd = open(argv[1], O_RDWR | O_CREAT | O_APPEND, 0644)) == -1) {
		fprintf(stderr, "stubborn: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	n = snprintf(buf, sizeof buf, "opened by %d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n)
		return 1;	/* cppcheck-suppress resourceLeak ; exits */
	for (;;)
		pause();
}
