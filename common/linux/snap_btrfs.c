/*
 * snap_btrfs.c: read-only btrfs snapshots (common/snapshot.h).
 *
 * A subvolume's root directory is the only inode numbered 256
 * (BTRFS_FIRST_FREE_OBJECTID) in it, and every subvolume has its own st_dev,
 * so the subvolume holding a path is found by walking up until the inode is
 * 256.  Snapshots are made with BTRFS_IOC_SNAP_CREATE_V2 and the read-only
 * flag inside a root-owned folder SNAP_DIR_NAME, and removed with
 * BTRFS_IOC_SNAP_DESTROY_V2 (SNAP_DESTROY on old kernels), only after
 * checking that the target is a read-only subvolume.
 */
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/platform.h"
#include "common/snapshot.h"

#define SNAP_BTRFS_ROOT_INO	256	/* BTRFS_FIRST_FREE_OBJECTID */

static bool
snap_btrfs_name_ok(const char *name)
{
	return name[0] != '\0' && strchr(name, '/') == NULL &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	    strlen(name) < BTRFS_SUBVOL_NAME_MAX;
}

/* Split path at its last '/': *dir malloc'd ("/" for a top entry), *base
 * points into path. */
static int
snap_btrfs_split(const char *path, char **dir, const char **base)
{
	const char	*slash;

	if (path[0] != '/' || (slash = strrchr(path, '/')) == NULL ||
	    slash[1] == '\0') {
		errno = EINVAL;
		return -1;
	}
	*base = slash + 1;
	if (slash == path)
		*dir = strdup("/");
	else
		*dir = strndup(path, (size_t)(slash - path));
	return *dir == NULL ? -1 : 0;
}

int
snap_btrfs_subvol(const char *path, char **subvol, char **rel,
    char **fstype)
{
	struct statfs	 sfs;
	struct stat	 st;
	char		*rp = NULL, *cur = NULL, *slash, type[32];
	dev_t		 dev;
	size_t		 n;
	int		 ret = -1, e = 0;

	*subvol = *rel = NULL;
	if (fstype != NULL)
		*fstype = NULL;
	if ((rp = realpath(path, NULL)) == NULL)
		goto out;
	if (statfs(rp, &sfs) == -1 || stat(rp, &st) == -1)
		goto out;
	if ((unsigned long)sfs.f_type != BTRFS_SUPER_MAGIC) {
		if (fstype != NULL && snap_fs_type(rp, type, sizeof(type)) ==
		    0 && (*fstype = strdup(type)) == NULL)
			goto out;
		e = ENOTSUP;
		goto out;
	}
	dev = st.st_dev;
	if ((cur = strdup(rp)) == NULL)
		goto out;
	for (;;) {
		if (stat(cur, &st) == -1)
			goto out;
		if (st.st_dev != dev) {
			/* left the subvolume without seeing its root:
			 * should not happen on btrfs */
			e = ENOTSUP;
			goto out;
		}
		if (S_ISDIR(st.st_mode) && st.st_ino == SNAP_BTRFS_ROOT_INO)
			break;
		if (strcmp(cur, "/") == 0) {
			e = ENOTSUP;
			goto out;
		}
		slash = strrchr(cur, '/');
		if (slash == cur)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	n = strlen(cur);
	if (strcmp(cur, "/") == 0)
		n = 0;
	*rel = strdup(rp[n] == '/' ? rp + n + 1 : rp + n);
	if (*rel == NULL)
		goto out;
	*subvol = cur;
	cur = NULL;
	ret = 0;
out:
	if (ret == -1 && e == 0)
		e = errno;
	free(rp);
	free(cur);
	if (ret == -1) {
		errno = e;
		free(*rel);
		*rel = NULL;
	}
	return ret;
}

int
snap_btrfs_plan(const char *subvol, const char *name, char **path)
{
	char	*dir = NULL;
	const char *base;
	bool	 mroot;
	int	 ret = -1, r;

	*path = NULL;
	if (!snap_btrfs_name_ok(name) || subvol[0] != '/') {
		errno = EINVAL;
		return -1;
	}
	if (plat_is_mount_root(AT_FDCWD, subvol, &mroot) == -1)
		return -1;
	if (mroot || strcmp(subvol, "/") == 0)
		r = asprintf(path, "%s%s%s/%s", subvol,
		    strcmp(subvol, "/") == 0 ? "" : "/", SNAP_DIR_NAME, name);
	else {
		if (snap_btrfs_split(subvol, &dir, &base) == -1)
			return -1;
		r = asprintf(path, "%s%s%s/%s", dir,
		    strcmp(dir, "/") == 0 ? "" : "/", SNAP_DIR_NAME, name);
	}
	if (r == -1) {
		*path = NULL;
		goto out;
	}
	ret = 0;
out:
	free(dir);
	return ret;
}

/* Open (creating when missing) the snapshot folder dir: it must be a real
 * directory owned by us and not writable by others. */
static int
snap_btrfs_open_dir(const char *dir, bool create)
{
	struct stat	 st;
	const char	*base;
	int		 fd;

	base = strrchr(dir, '/');
	if (base == NULL || strcmp(base + 1, SNAP_DIR_NAME) != 0) {
		errno = EINVAL;
		return -1;
	}
	if (create && mkdir(dir, 0755) == -1 && errno != EEXIST)
		return -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ELOOP || errno == ENOTDIR)
			errno = EPERM;
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		close(fd);
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

int
snap_btrfs_create(const char *subvol, const char *path)
{
	struct btrfs_ioctl_vol_args_v2 args;
	struct stat	 st;
	char		*dir = NULL;
	const char	*name;
	int		 dfd = -1, sfd = -1, ret = -1, e = 0;

	if (snap_btrfs_split(path, &dir, &name) == -1)
		return -1;
	if (!snap_btrfs_name_ok(name)) {
		e = EINVAL;
		goto out;
	}
	if ((sfd = open(subvol, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto out;
	if (fstat(sfd, &st) == -1)
		goto out;
	if (st.st_ino != SNAP_BTRFS_ROOT_INO) {
		e = EINVAL;	/* not a subvolume root */
		goto out;
	}
	if ((dfd = snap_btrfs_open_dir(dir, true)) == -1)
		goto out;
	memset(&args, 0, sizeof(args));
	args.fd = sfd;
	args.flags = BTRFS_SUBVOL_RDONLY;
	memcpy(args.name, name, strlen(name) + 1);
	if (ioctl(dfd, BTRFS_IOC_SNAP_CREATE_V2, &args) == -1)
		goto out;
	ret = 0;
out:
	if (ret == -1 && e == 0)
		e = errno;
	if (sfd != -1)
		close(sfd);
	if (dfd != -1)
		close(dfd);
	free(dir);
	if (ret == -1)
		errno = e;
	return ret;
}

/* fd is a read-only subvolume root on btrfs. */
static bool
snap_btrfs_fd_is_snapshot(int fd)
{
	struct statfs	 sfs;
	struct stat	 st;
	uint64_t	 flags = 0;

	if (fstatfs(fd, &sfs) == -1 ||
	    (unsigned long)sfs.f_type != BTRFS_SUPER_MAGIC)
		return false;
	if (fstat(fd, &st) == -1 || !S_ISDIR(st.st_mode) ||
	    st.st_ino != SNAP_BTRFS_ROOT_INO)
		return false;
	if (ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) == -1)
		return false;
	return (flags & BTRFS_SUBVOL_RDONLY) != 0;
}

bool
snap_btrfs_is_snapshot(const char *path)
{
	int	 fd;
	bool	 r;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return false;
	r = snap_btrfs_fd_is_snapshot(fd);
	close(fd);
	return r;
}

int
snap_btrfs_delete(const char *path)
{
	struct btrfs_ioctl_vol_args_v2 a2;
	struct btrfs_ioctl_vol_args a1;
	char		*dir = NULL;
	const char	*name;
	int		 dfd = -1, fd = -1, ret = -1, e = 0;

	if (snap_btrfs_split(path, &dir, &name) == -1)
		return -1;
	if (!snap_btrfs_name_ok(name)) {
		e = EINVAL;
		goto out;
	}
	if ((dfd = snap_btrfs_open_dir(dir, false)) == -1)
		goto out;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		if (errno == ELOOP || errno == ENOTDIR)
			e = EINVAL;
		goto out;
	}
	if (!snap_btrfs_fd_is_snapshot(fd)) {
		e = EINVAL;
		goto out;
	}
	close(fd);
	fd = -1;
	memset(&a2, 0, sizeof(a2));
	memcpy(a2.name, name, strlen(name) + 1);
	if (ioctl(dfd, BTRFS_IOC_SNAP_DESTROY_V2, &a2) == -1) {
		if (errno != ENOTTY && errno != EOPNOTSUPP)
			goto out;
		memset(&a1, 0, sizeof(a1));
		memcpy(a1.name, name, strlen(name) + 1);
		if (ioctl(dfd, BTRFS_IOC_SNAP_DESTROY, &a1) == -1)
			goto out;
	}
	/* the folder goes when it is empty; others may still be in it */
	(void)rmdir(dir);
	ret = 0;
out:
	if (ret == -1 && e == 0)
		e = errno;
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	free(dir);
	if (ret == -1)
		errno = e;
	return ret;
}
