/* process.c: Linux process calls for workers and power (see platform.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "common/platform.h"

int
plat_die_with_parent(void)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
		return -1;
	/* The parent may already be gone: then we were re-parented. */
	if (getppid() == 1)
		raise(SIGKILL);
	return 0;
}

void
plat_close_fds_from(int lowfd)
{
	DIR *d;
	struct dirent *de;
	int fd, dfd;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0U) == 0)
		return;
#endif
	if ((d = opendir("/proc/self/fd")) == NULL) {
		for (fd = lowfd; fd < 65536; fd++)
			(void)close(fd);
		return;
	}
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		/* /proc/self/fd names are fd numbers; "." and ".." give 0:
		 * NOLINTNEXTLINE(cert-err34-c) */
		fd = atoi(de->d_name);
		if (fd >= lowfd && fd != dfd)
			(void)close(fd);
	}
	closedir(d);
}

int
plat_drop_to_user(uid_t uid)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return uid == geteuid() ? 0 : (errno = EPERM, -1);
	if (uid == 0)
		return 0;
	if ((pw = getpwuid(uid)) == NULL) {
		errno = ENOENT;
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) == -1)
		return -1;
	if (setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1)
		return -1;
	if (setresuid(uid, uid, uid) == -1)
		return -1;
	/* Paranoia: root must be gone for good. */
	if (setuid(0) != -1 || geteuid() != uid || getuid() != uid) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

int
plat_inhibit_sleep(const char *who, const char *why)
{
	sd_bus *bus = NULL;
	sd_bus_message *reply = NULL;
	sd_bus_error error = SD_BUS_ERROR_NULL;
	int fd = -1, r;

	if ((r = sd_bus_open_system(&bus)) < 0) {
		errno = -r;
		return -1;
	}
	r = sd_bus_call_method(bus, "org.freedesktop.login1",
	    "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
	    "Inhibit", &error, &reply, "ssss", "sleep", who, why, "block");
	if (r < 0) {
		errno = -r;
		goto out;
	}
	if ((r = sd_bus_message_read(reply, "h", &fd)) < 0) {
		errno = -r;
		fd = -1;
		goto out;
	}
	/* The reply owns fd: keep our own copy. */
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
out:
	sd_bus_error_free(&error);
	sd_bus_message_unref(reply);
	sd_bus_flush_close_unref(bus);
	return fd;
}
