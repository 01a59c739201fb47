/*
 * snap_reflink.c: per-file clones (FICLONE) into a staging folder on the
 * source's mount (common/snapshot.h), and the small path helpers the
 * providers share.
 *
 * A clone shares the source's extents, so it costs almost nothing, and the
 * kernel takes it under the inode lock: it is one point in time of that
 * file.  Clones are unnamed (O_TMPFILE), so a killed worker leaves no file;
 * the staging folder itself is recorded in the DB by the caller and removed
 * at the end of the run or at the next start.
 */
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/platform.h"
#include "common/snapshot.h"

#define SNAP_REFLINK_MAXDEPTH	64

/* ---- helpers ---- */

int
snap_fs_type(const char *path, char *buf, size_t len)
{
	struct plat_fsinfo info;
	int	 fd, r;

	if ((fd = open(path, O_PATH | O_CLOEXEC)) == -1)
		return -1;
	r = plat_fs_info(fd, geteuid(), &info);
	close(fd);
	if (r == -1)
		return -1;
	snprintf(buf, len, "%s", info.type);
	return 0;
}

int
snap_fd_path(int dirfd, const char *name, char *buf, size_t len)
{
	char	 link[64], dir[PATH_MAX];
	ssize_t	 n;
	int	 r;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	if ((n = readlink(link, dir, sizeof(dir) - 1)) == -1)
		return -1;
	dir[n] = '\0';
	if (dir[0] != '/') {
		/* "anon_inode:..." or a deleted folder */
		errno = ENOENT;
		return -1;
	}
	r = snprintf(buf, len, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" :
	    "/", name);
	if (r < 0 || (size_t)r >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* The mount id of path (statx), or its st_dev where the kernel has none. */
static int
snap_mount_id(const char *path, uint64_t *id)
{
	struct statx	 sx;

	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_MNT_ID |
	    STATX_BASIC_STATS, &sx) == -1)
		return -1;
	if (sx.stx_mask & STATX_MNT_ID)
		*id = sx.stx_mnt_id;
	else
		*id = ((uint64_t)sx.stx_dev_major << 32) | sx.stx_dev_minor;
	return 0;
}

/* ---- staging ---- */

int
snap_reflink_plan(const char *source, const char *name, char **path)
{
	char		*cur = NULL, *slash, *up = NULL;
	uint64_t	 id, pid;
	int		 ret = -1, e = 0;

	*path = NULL;
	if (name[0] == '\0' || strchr(name, '/') != NULL ||
	    strlen(name) > NAME_MAX - sizeof(SNAP_STAGING_PREFIX)) {
		errno = EINVAL;
		return -1;
	}
	if ((cur = realpath(source, NULL)) == NULL)
		return -1;
	if (snap_mount_id(cur, &id) == -1)
		goto out;
	/* a file source: start from its folder */
	for (;;) {
		struct stat st;

		if (stat(cur, &st) == -1)
			goto out;
		if (S_ISDIR(st.st_mode))
			break;
		slash = strrchr(cur, '/');
		if (slash == cur)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	while (strcmp(cur, "/") != 0) {
		free(up);
		if ((up = strdup(cur)) == NULL)
			goto out;
		slash = strrchr(up, '/');
		if (slash == up)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (snap_mount_id(up, &pid) == -1)
			goto out;
		if (pid != id)
			break;
		free(cur);
		cur = up;
		up = NULL;
	}
	if (asprintf(path, "%s%s%s%s", cur, strcmp(cur, "/") == 0 ? "" : "/",
	    SNAP_STAGING_PREFIX, name) == -1) {
		*path = NULL;
		goto out;
	}
	ret = 0;
out:
	if (ret == -1)
		e = errno;
	free(cur);
	free(up);
	if (ret == -1)
		errno = e;
	return ret;
}

/* Remove everything inside the folder dfd (closed here), never following a
 * symlink: every step is relative to an open folder. */
static int
snap_empty_dir(int dfd, int depth)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	int		 sub, ret = 0, e = 0;

	if ((d = fdopendir(dfd)) == NULL) {
		e = errno;
		close(dfd);
		errno = e;
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") ==
		    0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
		    -1) {
			if (errno != ENOENT && e == 0)
				e = errno;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (depth >= SNAP_REFLINK_MAXDEPTH) {
				if (e == 0)
					e = ELOOP;
				continue;
			}
			sub = openat(dirfd(d), de->d_name, O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub == -1 || snap_empty_dir(sub, depth + 1) == -1 ||
			    unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) == -1) {
				if (errno != ENOENT && e == 0)
					e = errno;
			}
			continue;
		}
		if (unlinkat(dirfd(d), de->d_name, 0) == -1 &&
		    errno != ENOENT && e == 0)
			e = errno;
	}
	if (errno != 0 && e == 0)
		e = errno;
	closedir(d);
	if (e != 0) {
		errno = e;
		ret = -1;
	}
	return ret;
}

int
snap_reflink_staging_create(const char *path, uid_t uid, gid_t gid)
{
	struct stat	 st;
	int		 fd = -1, ret = -1, e = 0;

	if (path[0] != '/' || strstr(path, "/" SNAP_STAGING_PREFIX) == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ELOOP || errno == ENOTDIR)
			errno = EEXIST;
		return -1;
	}
	if (fstat(fd, &st) == -1)
		goto out;
	if (st.st_uid != geteuid() && st.st_uid != uid) {
		e = EEXIST;	/* someone else's folder of that name */
		goto out;
	}
	if (fchmod(fd, 0700) == -1 || fchown(fd, uid, gid) == -1)
		goto out;
	/* a leftover of the same name: empty it */
	if (snap_empty_dir(dup(fd), 0) == -1)
		goto out;
	ret = 0;
out:
	if (ret == -1 && e == 0)
		e = errno;
	close(fd);
	if (ret == -1)
		errno = e;
	return ret;
}

int
snap_reflink_staging_remove(const char *path)
{
	int	 fd;

	if (path[0] != '/' || strstr(path, "/" SNAP_STAGING_PREFIX) == NULL) {
		errno = EINVAL;
		return -1;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP || errno == ENOTDIR)
			errno = EINVAL;	/* not ours: never touch it */
		return -1;
	}
	if (snap_empty_dir(fd, 0) == -1)
		return -1;
	if (rmdir(path) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

/* ---- clones ---- */

/* An unnamed read-write file in dirfd. */
static int
snap_anon_file(int dirfd)
{
	char		 name[64];
	struct timespec	 ts;
	int		 fd, i;

	fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd != -1 || (errno != EOPNOTSUPP && errno != EISDIR &&
	    errno != EINVAL))
		return fd;
	/* no O_TMPFILE here: a name removed at once */
	for (i = 0; i < 100; i++) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(name, sizeof(name), ".clone-%ld-%ld-%d",
		    (long)getpid(), (long)ts.tv_nsec, i);
		fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1 && errno == EEXIST)
			continue;
		if (fd != -1)
			(void)unlinkat(dirfd, name, 0);
		return fd;
	}
	errno = EEXIST;
	return -1;
}

int
snap_reflink_clone(int staging_fd, int src_fd)
{
	int	 fd, e;

	if ((fd = snap_anon_file(staging_fd)) == -1)
		return -1;
	if (plat_clone_file(fd, src_fd) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
snap_reflink_probe(int staging_fd)
{
	char	 buf[4096];
	int	 a = -1, b = -1, ret = -1, e = 0;

	memset(buf, 'v', sizeof(buf));
	if ((a = snap_anon_file(staging_fd)) == -1)
		goto out;
	if (pwrite(a, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
		if (errno == 0)
			errno = EIO;
		goto out;
	}
	if ((b = snap_reflink_clone(staging_fd, a)) == -1)
		goto out;
	ret = 0;
out:
	if (ret == -1)
		e = errno;
	if (a != -1)
		close(a);
	if (b != -1)
		close(b);
	if (ret == -1)
		errno = e;
	return ret;
}
