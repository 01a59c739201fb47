/*
 * platform.c: the Linux implementation of common/platform.h (file-system
 * part).
 */
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/platform.h"

#ifndef FICLONE
#define FICLONE		_IOW(0x94, 9, int)
#endif

int
plat_clone_file(int dst_fd, int src_fd)
{
	return ioctl(dst_fd, FICLONE, src_fd);
}

ssize_t
plat_copy_range(int src_fd, off_t *src_off, int dst_fd, off_t *dst_off,
    size_t len)
{
	loff_t	 so = *src_off, dof = *dst_off;
	ssize_t	 n;

	n = copy_file_range(src_fd, &so, dst_fd, &dof, len, 0);
	if (n > 0) {
		*src_off = so;
		*dst_off = dof;
	}
	return n;
}

int
plat_next_data(int fd, off_t off, off_t size, off_t *data, off_t *hole)
{
	off_t	 d, h;

	if (off >= size)
		return 0;
	d = lseek(fd, off, SEEK_DATA);
	if (d == -1) {
		if (errno == ENXIO)
			return 0;
		if (errno == EINVAL || errno == EOPNOTSUPP) {
			/* No hole reporting: all data. */
			*data = off;
			*hole = size;
			return 1;
		}
		return -1;
	}
	if (d >= size)
		return 0;
	h = lseek(fd, d, SEEK_HOLE);
	if (h == -1)
		return -1;
	if (h > size)
		h = size;
	*data = d;
	*hole = h;
	return 1;
}

void
plat_drop_cache(int fd)
{
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

int
plat_syncfs(int fd)
{
	return syncfs(fd);
}

int
plat_open_read(int dirfd, const char *name)
{
	static int	 noatime_ok = 1;
	int		 flags, fd;

	flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
	if (noatime_ok) {
		fd = openat(dirfd, name, flags | O_NOATIME);
		if (fd != -1 || errno != EPERM)
			return fd;
		/* Not the owner and not privileged: plain open. */
		noatime_ok = 0;
		fd = openat(dirfd, name, flags);
		if (fd != -1)
			return fd;
		noatime_ok = 1;
		errno = EPERM;
		return -1;
	}
	return openat(dirfd, name, flags);
}

static int
plat_open_walk(int dirfd, const char *path, int flags, mode_t mode)
{
	char		*copy, *p, *slash;
	int		 fd, next, saved = 0;

	if ((copy = strdup(path)) == NULL)
		return -1;
	fd = dirfd;
	p = copy;
	for (;;) {
		while (*p == '/')
			p++;
		slash = strchr(p, '/');
		if (slash != NULL)
			*slash = '\0';
		if (strcmp(p, "..") == 0) {
			next = -1;
			errno = EXDEV;
		} else if (slash == NULL || slash[1] == '\0')
			next = openat(fd, *p ? p : ".", flags | O_NOFOLLOW |
			    O_CLOEXEC, mode);
		else
			next = openat(fd, p, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
		saved = errno;
		if (fd != dirfd)
			close(fd);
		fd = next;
		if (fd == -1 || slash == NULL || slash[1] == '\0')
			break;
		p = slash + 1;
	}
	free(copy);
	errno = saved;
	return fd;
}

int
plat_open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
	static int	 have_openat2 = 1;
	struct open_how	 how;
	long		 fd;

	if (have_openat2) {
		memset(&how, 0, sizeof(how));
		how.flags = (uint64_t)(flags | O_CLOEXEC);
		if (flags & O_CREAT)
			how.mode = mode;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		    RESOLVE_NO_MAGICLINKS;
		fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd != -1 || errno != ENOSYS)
			return (int)fd;
		have_openat2 = 0;
	}
	return plat_open_walk(dirfd, path, flags, mode);
}

/*
 * The xattr calls work on an open file (fd, path NULL) or on a path that
 * is looked up (path; the calls follow a last symlink, which for the
 * /proc/self/fd/N of an O_PATH handle lands on the entry the handle holds,
 * a symlink included).
 */
static ssize_t
plat_x_list(int fd, const char *path, char *buf, size_t len)
{
	return path ? listxattr(path, buf, len) : flistxattr(fd, buf, len);
}

static ssize_t
plat_x_get(int fd, const char *path, const char *name, void *buf,
    size_t len)
{
	return path ? getxattr(path, name, buf, len) :
	    fgetxattr(fd, name, buf, len);
}

static int
plat_x_list_all(int fd, const char *path, char **names, size_t *len)
{
	ssize_t	 n;
	char	*buf = NULL, *nb;

	*names = NULL;
	*len = 0;
	for (;;) {
		n = plat_x_list(fd, path, NULL, 0);
		if (n == -1)
			return -1;
		if (n == 0)
			return 0;
		if ((nb = realloc(buf, (size_t)n)) == NULL) {
			free(buf);
			return -1;
		}
		buf = nb;
		n = plat_x_list(fd, path, buf, (size_t)n);
		if (n == -1 && errno == ERANGE)
			continue;	/* grew meanwhile */
		if (n == -1) {
			free(buf);
			return -1;
		}
		break;
	}
	if (n == 0) {
		free(buf);
		return 0;
	}
	*names = buf;
	*len = (size_t)n;
	return 0;
}

static int
plat_x_get_all(int fd, const char *path, const char *name, void **value,
    size_t *len)
{
	ssize_t	 n;
	char	*buf = NULL, *nb;

	*value = NULL;
	*len = 0;
	for (;;) {
		n = plat_x_get(fd, path, name, NULL, 0);
		if (n == -1)
			return -1;
		if ((nb = realloc(buf, n ? (size_t)n : 1)) == NULL) {
			free(buf);
			return -1;
		}
		buf = nb;
		n = plat_x_get(fd, path, name, buf, (size_t)n);
		if (n == -1 && errno == ERANGE)
			continue;
		if (n == -1) {
			free(buf);
			return -1;
		}
		break;
	}
	*value = buf;
	*len = (size_t)n;
	return 0;
}

int
plat_xattr_list(int fd, char **names, size_t *len)
{
	return plat_x_list_all(fd, NULL, names, len);
}

int
plat_xattr_get(int fd, const char *name, void **value, size_t *len)
{
	return plat_x_get_all(fd, NULL, name, value, len);
}

int
plat_xattr_set(int fd, const char *name, const void *value, size_t len)
{
	return fsetxattr(fd, name, value, len, 0);
}

/*
 * Entries that cannot be opened for reading (symlinks): an O_PATH handle
 * that never follows name, reached again through /proc/self/fd.  Without
 * /proc the calls fail with ENOTSUP (treated as "no xattrs here").
 */
struct plat_node {
	int	 fd;
	char	 path[32];
};

static int
plat_node_open(struct plat_node *n, int dirfd, const char *name)
{
	if ((n->fd = openat(dirfd, name, O_PATH | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	snprintf(n->path, sizeof(n->path), "/proc/self/fd/%d", n->fd);
	return 0;
}

static int
plat_node_close(struct plat_node *n, int rc)
{
	int	 saved = errno;

	close(n->fd);
	/* no /proc: the handle cannot be reached by path */
	if (rc == -1 && saved == ENOENT)
		saved = ENOTSUP;
	errno = saved;
	return rc;
}

int
plat_lxattr_list(int dirfd, const char *name, char **names, size_t *len)
{
	struct plat_node n;

	*names = NULL;
	*len = 0;
	if (plat_node_open(&n, dirfd, name) == -1)
		return -1;
	return plat_node_close(&n, plat_x_list_all(-1, n.path, names, len));
}

int
plat_lxattr_get(int dirfd, const char *name, const char *xname,
    void **value, size_t *len)
{
	struct plat_node n;

	*value = NULL;
	*len = 0;
	if (plat_node_open(&n, dirfd, name) == -1)
		return -1;
	return plat_node_close(&n, plat_x_get_all(-1, n.path, xname, value,
	    len));
}

int
plat_lxattr_set(int dirfd, const char *name, const char *xname,
    const void *value, size_t len)
{
	struct plat_node n;

	if (plat_node_open(&n, dirfd, name) == -1)
		return -1;
	return plat_node_close(&n, setxattr(n.path, xname, value, len, 0));
}

int
plat_rename_noreplace(int olddirfd, const char *oldname, int newdirfd,
    const char *newname)
{
	struct stat	 st;

	if (renameat2(olddirfd, oldname, newdirfd, newname,
	    RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* the filesystem has no RENAME_NOREPLACE: check, then rename */
	if (fstatat(newdirfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	if (errno != ENOENT)
		return -1;
	return renameat(olddirfd, oldname, newdirfd, newname);
}

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC	0x63677270
#endif
#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC	0x65735546
#endif
#ifndef FUSECTL_SUPER_MAGIC
#define FUSECTL_SUPER_MAGIC	0x65735543
#endif
#ifndef CONFIGFS_MAGIC
#define CONFIGFS_MAGIC		0x62656570
#endif
#ifndef MQUEUE_MAGIC
#define MQUEUE_MAGIC		0x19800202
#endif
#ifndef AUTOFS_SUPER_MAGIC
#define AUTOFS_SUPER_MAGIC	0x0187
#endif
#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC		0xcafe4a11
#endif
#ifndef TRACEFS_MAGIC
#define TRACEFS_MAGIC		0x74726163
#endif
#ifndef PSTOREFS_MAGIC
#define PSTOREFS_MAGIC		0x6165676C
#endif
#ifndef SECURITYFS_MAGIC
#define SECURITYFS_MAGIC	0x73636673
#endif
#ifndef BINFMTFS_MAGIC
#define BINFMTFS_MAGIC		0x42494e4d
#endif
#ifndef NSFS_MAGIC
#define NSFS_MAGIC		0x6e736673
#endif
#ifndef EFIVARFS_MAGIC
#define EFIVARFS_MAGIC		0xde5e81e4
#endif

static const struct {
	unsigned long	 magic;
	const char	*name;
	bool		 pseudo;
} plat_fstypes[] = {
	{ PROC_SUPER_MAGIC,	"proc",		true },
	{ SYSFS_MAGIC,		"sysfs",	true },
	/* devtmpfs reports the tmpfs magic; told apart below. */
	{ DEVPTS_SUPER_MAGIC,	"devpts",	true },
	{ CGROUP_SUPER_MAGIC,	"cgroup",	true },
	{ CGROUP2_SUPER_MAGIC,	"cgroup2",	true },
	{ DEBUGFS_MAGIC,	"debugfs",	true },
	{ TRACEFS_MAGIC,	"tracefs",	true },
	{ SECURITYFS_MAGIC,	"securityfs",	true },
	{ PSTOREFS_MAGIC,	"pstore",	true },
	{ BPF_FS_MAGIC,		"bpf",		true },
	{ CONFIGFS_MAGIC,	"configfs",	true },
	{ FUSECTL_SUPER_MAGIC,	"fusectl",	true },
	{ MQUEUE_MAGIC,		"mqueue",	true },
	{ HUGETLBFS_MAGIC,	"hugetlbfs",	true },
	{ AUTOFS_SUPER_MAGIC,	"autofs",	true },
	{ BINFMTFS_MAGIC,	"binfmt_misc",	true },
	{ NSFS_MAGIC,		"nsfs",		true },
	{ EFIVARFS_MAGIC,	"efivarfs",	true },
	{ FUSE_SUPER_MAGIC,	"fuse",		false },
	{ TMPFS_MAGIC,		"tmpfs",	false },
	{ EXT4_SUPER_MAGIC,	"ext4",		false },
	{ BTRFS_SUPER_MAGIC,	"btrfs",	false },
	{ XFS_SUPER_MAGIC,	"xfs",		false },
	{ NFS_SUPER_MAGIC,	"nfs",		false },
	{ OVERLAYFS_SUPER_MAGIC, "overlay",	false },
};

/*
 * Find the mount of device dev in /proc/self/mountinfo and return its
 * filesystem type (field after " - ") and super options.  Returns 0 when
 * found.
 */
static int
plat_mountinfo(dev_t dev, char *fstype, size_t typelen, char *opts,
    size_t optslen)
{
	FILE		*fp;
	char		*line = NULL, *sep, *p;
	size_t		 cap = 0;
	unsigned	 maj, min;
	int		 found = -1;

	if ((fp = fopen("/proc/self/mountinfo", "re")) == NULL)
		return -1;
	while (getline(&line, &cap, fp) != -1) {
		/* id parent maj:min root mountpoint opts [tags] - type src sopts */
		if (sscanf(line, "%*u %*u %u:%u", &maj, &min) != 2)
			continue;
		if (makedev(maj, min) != dev)
			continue;
		if ((sep = strstr(line, " - ")) == NULL)
			continue;
		sep += 3;
		p = strchr(sep, ' ');
		if (p == NULL)
			continue;
		snprintf(fstype, typelen, "%.*s", (int)(p - sep), sep);
		/* skip the source field */
		p = strchr(p + 1, ' ');
		snprintf(opts, optslen, "%s", p ? p + 1 : "");
		opts[strcspn(opts, "\n")] = '\0';
		found = 0;
		break;
	}
	free(line);
	fclose(fp);
	return found;
}

int
plat_fs_info(int dirfd, uid_t uid, struct plat_fsinfo *out)
{
	struct statfs	 sfs;
	struct stat	 st;
	char		 type[64], opts[1024], *p;
	size_t		 i;
	unsigned long	 owner;

	memset(out, 0, sizeof(*out));
	if (fstatfs(dirfd, &sfs) == -1 || fstat(dirfd, &st) == -1)
		return -1;
	snprintf(out->type, sizeof(out->type), "0x%lx",
	    (unsigned long)sfs.f_type);
	for (i = 0; i < sizeof(plat_fstypes) / sizeof(plat_fstypes[0]); i++) {
		if ((unsigned long)sfs.f_type != plat_fstypes[i].magic)
			continue;
		snprintf(out->type, sizeof(out->type), "%s",
		    plat_fstypes[i].name);
		out->pseudo = plat_fstypes[i].pseudo;
		break;
	}
	if ((unsigned long)sfs.f_type == TMPFS_MAGIC &&
	    plat_mountinfo(st.st_dev, type, sizeof(type), opts,
	    sizeof(opts)) == 0 && strcmp(type, "devtmpfs") == 0) {
		snprintf(out->type, sizeof(out->type), "devtmpfs");
		out->pseudo = true;
	}
	if ((unsigned long)sfs.f_type == FUSE_SUPER_MAGIC) {
		/* A fuse mount belongs to the uid in its user_id= option. */
		out->pseudo = true;
		if (plat_mountinfo(st.st_dev, type, sizeof(type), opts,
		    sizeof(opts)) == 0) {
			snprintf(out->type, sizeof(out->type), "%.31s", type);
			if ((p = strstr(opts, "user_id=")) != NULL) {
				owner = strtoul(p + 8, NULL, 10);
				if (owner == (unsigned long)uid)
					out->pseudo = false;
			}
		}
	}
	return 0;
}

int
plat_is_mount_root(int dirfd, const char *name, bool *is_root)
{
	struct statx	 sx;
	struct stat	 st, pst;
	int		 fd;

	*is_root = false;
	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH |
	    AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &sx) == 0 &&
	    (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) {
		*is_root = (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
		return 0;
	}
	/* Older kernels: compare with the parent. */
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) ==
	    -1)
		return -1;
	if (!S_ISDIR(st.st_mode))
		return 0;
	if (*name == '\0')
		fd = openat(dirfd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	else {
		int d = openat(dirfd, name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (d == -1)
			return -1;
		fd = openat(d, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(d);
	}
	if (fd == -1)
		return -1;
	if (fstat(fd, &pst) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	*is_root = st.st_dev != pst.st_dev || st.st_ino == pst.st_ino;
	return 0;
}

#define PLAT_IOPRIO_CLASS_SHIFT	13
#define PLAT_IOPRIO_CLASS_IDLE	3
#define PLAT_IOPRIO_WHO_PROCESS	1

int
plat_set_low_priority(void)
{
	int	 rc = 0, saved = 0;

	if (syscall(SYS_ioprio_set, PLAT_IOPRIO_WHO_PROCESS, 0,
	    PLAT_IOPRIO_CLASS_IDLE << PLAT_IOPRIO_CLASS_SHIFT) == -1) {
		saved = errno;
		rc = -1;
	}
	if (setpriority(PRIO_PROCESS, 0, 10) == -1) {
		saved = errno;
		rc = -1;
	}
	if (rc == -1)
		errno = saved;
	return rc;
}

long
plat_raise_fd_limit(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			return -1;
	}
	return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}
