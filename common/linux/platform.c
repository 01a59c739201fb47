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
#include <limits.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
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
plat_hold_file(int dirfd, const char *name)
{
	/* an O_PATH fd holds a reference to the inode, nothing more */
	return openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

void
plat_start_writeback(int fd)
{
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
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

/* ---- resolving a path safely ---- */

#define PLAT_SAFE_MAXLINKS	40

/* The walk of plat_open_dir_safe: what it has resolved so far, as text
 * (for messages only; cut when too long). */
struct plat_chase {
	const char	*path;		/* as the caller gave it */
	struct vg_err	*err;
	char		 done[PATH_MAX];
	size_t		 dlen;
};

/*
 * Going from a (the folder the walk is in, or a symlink it follows) to b:
 * unsafe when a belongs to a user and b to another uid.  From root's
 * folders everything is allowed (root put it there).
 */
static bool
plat_unsafe_step(const struct stat *a, const struct stat *b)
{
	return a->st_uid != 0 && a->st_uid != b->st_uid;
}

static const char *
plat_kind(mode_t m)
{
	return S_ISLNK(m) ? "a symlink" : S_ISDIR(m) ? "a folder" :
	    "an entry";
}

static void
plat_chase_push(struct plat_chase *ch, const char *name)
{
	size_t n = strlen(name);

	if (ch->dlen + 1 + n + 1 > sizeof ch->done)
		return;
	ch->done[ch->dlen++] = '/';
	memcpy(ch->done + ch->dlen, name, n + 1);
	ch->dlen += n;
}

static void
plat_chase_pop(struct plat_chase *ch)
{
	while (ch->dlen > 0 && ch->done[ch->dlen - 1] != '/')
		ch->dlen--;
	if (ch->dlen > 0)
		ch->dlen--;
	ch->done[ch->dlen] = '\0';
}

/* Fill err for a failure at component name (e: errno, 0 for unsafe). */
static void
plat_chase_fail(struct plat_chase *ch, const char *name, int e,
    const struct stat *from, const struct stat *to, const char *to_what,
    const char *link)
{
	char *dp = log_escape(ch->path), *dn = log_escape(name);
	char *dd = log_escape(ch->dlen > 0 ? ch->done : "/");
	char *dl = link != NULL ? log_escape(link) : NULL;

	if (e == 0)
		vg_err_set(ch->err, VG_ERR_PERM, "%s: refused at %s in %s: "
		    "%s owned by uid %lu%s%s leads to %s owned by uid %lu; "
		    "as root, a path is not followed out of one user's "
		    "folder into what another uid owns (hint: name the real "
		    "folder, or remove the link)", dp ? dp : "?",
		    dn ? dn : "?", dd ? dd : "?", plat_kind(from->st_mode),
		    (unsigned long)from->st_uid, dl ? " pointing to " : "",
		    dl ? dl : "", to_what, (unsigned long)to->st_uid);
	else if (e == ELOOP)
		vg_err_set_at(ch->err, VG_ERR_SYS, e, __func__, "%s: more "
		    "than %d symlinks met at %s in %s", dp ? dp : "?",
		    PLAT_SAFE_MAXLINKS, dn ? dn : "?", dd ? dd : "?");
	else
		vg_err_sys_at(ch->err, e, __func__, "%s: at %s in %s",
		    dp ? dp : "?", dn ? dn : "?", dd ? dd : "?");
	free(dp);
	free(dn);
	free(dd);
	free(dl);
}

static void
plat_chase_errno(struct plat_chase *ch, const char *name, int e)
{
	/* e == 0 would mean "unsafe", which needs the two stats */
	plat_chase_fail(ch, name, e != 0 ? e : EIO, NULL, NULL, NULL, NULL);
}

int
plat_open_dir_safe(const char *path, int flags, struct vg_err *err)
{
	struct plat_chase ch;
	struct stat cur, nst, rst;
	char name[NAME_MAX + 1], *rest = NULL, *nt, *cwd = NULL, *link = NULL;
	const char *p, *slash;
	size_t n;
	ssize_t ll;
	mode_t mkmode = (flags & PLAT_DIR_PRIVATE) ? 0700 : 0777;
	int fd = -1, nfd = -1, links = 0, e = 0, ret = -1;
	bool made;

	memset(&ch, 0, sizeof ch);
	ch.path = path != NULL ? path : "";
	ch.err = err;
	if (path == NULL || *path == '\0') {
		e = EINVAL;
		vg_err_set_at(err, VG_ERR_INVALID, e, __func__, "an empty "
		    "path cannot be opened");
		goto out;
	}
	if (path[0] != '/') {
		if ((cwd = getcwd(NULL, 0)) == NULL) {
			e = errno;
			vg_err_sys_at(err, e, __func__, "%s: the working "
			    "folder is unknown", "relative path");
			goto out;
		}
		if (asprintf(&rest, "%s/%s", cwd, path) == -1)
			rest = NULL;
	} else
		rest = strdup(path);
	if (rest == NULL || (link = malloc(PATH_MAX)) == NULL) {
		e = ENOMEM;
		vg_err_sys_at(err, e, __func__, "resolving a path");
		goto out;
	}
	if ((fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &cur) == -1) {
		e = errno;
		plat_chase_errno(&ch, "/", e);
		goto out;
	}
	p = rest;
	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (n > NAME_MAX) {
			e = ENAMETOOLONG;
			plat_chase_errno(&ch, "a component", e);
			goto out;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		p += n;
		if (strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			if ((nfd = openat(fd, "..", O_PATH | O_DIRECTORY |
			    O_CLOEXEC)) == -1 || fstat(nfd, &nst) == -1) {
				e = errno;
				plat_chase_errno(&ch, name, e);
				goto out;
			}
			if (plat_unsafe_step(&cur, &nst)) {
				plat_chase_fail(&ch, name, 0, &cur, &nst,
				    "its parent folder", NULL);
				e = EPERM;
				goto out;
			}
			close(fd);
			fd = nfd;
			nfd = -1;
			cur = nst;
			plat_chase_pop(&ch);
			continue;
		}
		made = false;
		nfd = openat(fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (nfd == -1 && errno == ENOENT && (flags & PLAT_DIR_MKDIR)) {
			if (mkdirat(fd, name, mkmode) == 0)
				made = true;
			else if (errno != EEXIST) {
				e = errno;
				plat_chase_errno(&ch, name, e);
				goto out;
			}
			nfd = openat(fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		}
		if (nfd == -1 || fstat(nfd, &nst) == -1) {
			e = errno;
			plat_chase_errno(&ch, name, e);
			goto out;
		}
		if (S_ISLNK(nst.st_mode)) {
			if (plat_unsafe_step(&cur, &nst)) {
				plat_chase_fail(&ch, name, 0, &cur, &nst,
				    "a symlink", NULL);
				e = EPERM;
				goto out;
			}
			if (++links > PLAT_SAFE_MAXLINKS) {
				e = ELOOP;
				plat_chase_errno(&ch, name, e);
				goto out;
			}
			if ((ll = readlinkat(nfd, "", link, PATH_MAX)) == -1 ||
			    ll >= PATH_MAX || ll == 0) {
				e = ll == -1 ? errno : ll == 0 ? ENOENT :
				    ENAMETOOLONG;
				plat_chase_errno(&ch, name, e);
				goto out;
			}
			link[ll] = '\0';
			if (asprintf(&nt, "%s%s", link, p) == -1) {
				e = ENOMEM;
				plat_chase_errno(&ch, name, e);
				goto out;
			}
			if (link[0] == '/') {
				close(fd);
				if ((fd = open("/", O_PATH | O_DIRECTORY |
				    O_CLOEXEC)) == -1 || fstat(fd, &rst) == -1) {
					e = errno;
					free(nt);
					plat_chase_errno(&ch, "/", e);
					goto out;
				}
				if (plat_unsafe_step(&nst, &rst)) {
					free(nt);
					plat_chase_fail(&ch, name, 0, &nst,
					    &rst, "/", link);
					e = EPERM;
					goto out;
				}
				cur = rst;
				ch.dlen = 0;
				ch.done[0] = '\0';
			}
			close(nfd);
			nfd = -1;
			free(rest);
			rest = nt;
			p = rest;
			continue;
		}
		if (!S_ISDIR(nst.st_mode)) {
			e = ENOTDIR;
			plat_chase_errno(&ch, name, e);
			goto out;
		}
		if (!made && plat_unsafe_step(&cur, &nst)) {
			plat_chase_fail(&ch, name, 0, &cur, &nst, "a folder",
			    NULL);
			e = EPERM;
			goto out;
		}
		close(fd);
		fd = nfd;
		nfd = -1;
		cur = nst;
		plat_chase_push(&ch, name);
	}
	if ((ret = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1) {
		e = errno;
		plat_chase_errno(&ch, ".", e);
	}
out:
	if (nfd != -1)
		close(nfd);
	if (fd != -1)
		close(fd);
	free(rest);
	free(link);
	free(cwd);
	if (ret == -1)
		errno = e != 0 ? e : EIO;
	return ret;
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
		if (n <= 0) {
			/* a later round (after ERANGE) still owns buf */
			free(buf);
			return n == 0 ? 0 : -1;
		}
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
		if (n == -1) {
			free(buf);	/* a later round (after ERANGE) owns it */
			return -1;
		}
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

bool
plat_dir_inherits_mode(int fd)
{
	if (fgetxattr(fd, "system.posix_acl_default", NULL, 0) >= 0)
		return true;
	return errno != ENODATA && errno != ENOTSUP;
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
		/* mountinfo is the kernel's: maj:min fit an unsigned:
		 * NOLINTNEXTLINE(cert-err34-c) */
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

/* ---- folder listings ---- */

/* What getdents64 fills in (the kernel's struct linux_dirent64). */
struct plat_dirent64 {
	uint64_t	 d_ino;
	int64_t		 d_off;
	unsigned short	 d_reclen;
	unsigned char	 d_type;
	char		 d_name[];
};

int
plat_dir_each(int fd, plat_dir_fn fn, void *arg)
{
	union {
		char			 b[65536];
		struct plat_dirent64	 align;
	} buf;
	struct plat_dirent64 *d;
	long n, off;
	const char *name;
	size_t len;

	if (lseek(fd, 0, SEEK_SET) == -1)
		return -1;
	for (;;) {
		n = syscall(SYS_getdents64, fd, buf.b, sizeof(buf.b));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		for (off = 0; off < n; off += d->d_reclen) {
			d = (struct plat_dirent64 *)(void *)(buf.b + off);
			name = d->d_name;
			if (name[0] == '.' && (name[1] == '\0' ||
			    (name[1] == '.' && name[2] == '\0')))
				continue;
			len = strlen(name);
			if (fn(name, len, d->d_type, arg) == -1)
				return -1;
		}
	}
}
