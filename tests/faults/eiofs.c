/*
 * eiofs.c: a tiny FUSE filesystem (libfuse3) that passes a backing folder
 * through, read-only, but fails with EIO the read() of every file whose
 * name matches a glob, and optionally the listing (getdents) of every
 * folder whose name matches another.  Used by test_eio.py to show that a
 * source that fails under the engine's feet is recorded, file by file, and
 * that the run goes on.
 *
 *   eiofs BACKING MOUNTPOINT [--eio-read GLOB] [--eio-dir GLOB]
 *         [--log FILE]
 *
 * It stays in the foreground, single-threaded; unmount it (umount or
 * fusermount3 -u) to end it.  --log appends "eio read PATH" and "eio
 * readdir PATH" for each failure it injects, so the driver can count them.
 */
#define FUSE_USE_VERSION 31

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <fuse.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int eio_root = -1;		/* the backing folder */
static const char *eio_read_glob;	/* NULL: no read fails */
static const char *eio_dir_glob;	/* NULL: no listing fails */
static FILE *eio_log;

/* The path relative to the backing folder ("." for the root). */
static const char *
eio_rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path == '\0' ? "." : path;
}

static bool
eio_match(const char *glob, const char *path)
{
	const char *base = strrchr(path, '/');

	base = base != NULL ? base + 1 : path;
	return glob != NULL && fnmatch(glob, base, 0) == 0;
}

static void
eio_note(const char *what, const char *path)
{
	if (eio_log != NULL) {
		fprintf(eio_log, "eio %s %s\n", what, path);
		fflush(eio_log);
	}
}

static int
eio_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	if (fstatat(eio_root, eio_rel(path), st, AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	return 0;
}

static int
eio_readlink(const char *path, char *buf, size_t len)
{
	ssize_t n;

	if (len == 0)
		return -EINVAL;
	if ((n = readlinkat(eio_root, eio_rel(path), buf, len - 1)) == -1)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int
eio_open(const char *path, struct fuse_file_info *fi)
{
	int fd;

	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	if ((fd = openat(eio_root, eio_rel(path), O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -errno;
	fi->fh = (uint64_t)fd;
	fi->direct_io = 1;	/* every read() reaches eio_read */
	return 0;
}

static int
eio_read(const char *path, char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	ssize_t n;

	if (eio_match(eio_read_glob, path)) {
		eio_note("read", path);
		return -EIO;
	}
	if ((n = pread((int)fi->fh, buf, size, off)) == -1)
		return -errno;
	return (int)n;
}

static int
eio_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int
eio_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
    struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd;

	(void)off;
	(void)fi;
	(void)flags;
	if (strcmp(path, "/") != 0 && eio_match(eio_dir_glob, path)) {
		eio_note("readdir", path);
		return -EIO;
	}
	if ((fd = openat(eio_root, eio_rel(path), O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		memset(&st, 0, sizeof st);
		st.st_ino = de->d_ino;
		st.st_mode = (mode_t)DTTOIF(de->d_type);
		if (fill(buf, de->d_name, &st, 0, 0) != 0)
			break;
	}
	closedir(d);
	return 0;
}

static int
eio_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	if (fstatvfs(eio_root, sv) == -1)
		return -errno;
	return 0;
}

/* No extended attributes: an empty list, none found. */
static int
eio_listxattr(const char *path, char *list, size_t size)
{
	(void)path;
	(void)list;
	(void)size;
	return 0;
}

static int
eio_getxattr(const char *path, const char *name, char *value, size_t size)
{
	(void)path;
	(void)name;
	(void)value;
	(void)size;
	return -ENODATA;
}

static void *
eio_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 1;	/* the backing inodes: hard links stay links */
	cfg->attr_timeout = 0;
	cfg->entry_timeout = 0;
	cfg->negative_timeout = 0;
	return NULL;
}

static const struct fuse_operations eio_ops = {
	.init		= eio_init,
	.getattr	= eio_getattr,
	.readlink	= eio_readlink,
	.open		= eio_open,
	.read		= eio_read,
	.release	= eio_release,
	.readdir	= eio_readdir,
	.statfs		= eio_statfs,
	.listxattr	= eio_listxattr,
	.getxattr	= eio_getxattr,
};

static void
eio_usage(void)
{
	fprintf(stderr, "usage: eiofs BACKING MOUNTPOINT [--eio-read GLOB] "
	    "[--eio-dir GLOB] [--log FILE]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *backing = NULL, *mnt = NULL, *logpath = NULL;
	char *fargv[8];
	int i, fargc = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--eio-read") == 0 && i + 1 < argc)
			eio_read_glob = argv[++i];
		else if (strcmp(argv[i], "--eio-dir") == 0 && i + 1 < argc)
			eio_dir_glob = argv[++i];
		else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
			logpath = argv[++i];
		else if (argv[i][0] == '-')
			eio_usage();	/* NOLINT(bugprone-branch-clone): misuse */
		else if (backing == NULL)
			backing = argv[i];
		else if (mnt == NULL)
			mnt = argv[i];
		else
			eio_usage();
	}
	if (backing == NULL || mnt == NULL)
		eio_usage();
	if ((eio_root = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
	    -1) {
		perror(backing);
		return 1;
	}
	if (logpath != NULL && (eio_log = fopen(logpath, "a")) == NULL) {
		perror(logpath);
		return 1;
	}
	fargv[fargc++] = argv[0];
	fargv[fargc++] = (char *)"-f";		/* foreground */
	fargv[fargc++] = (char *)"-s";		/* one thread */
	fargv[fargc++] = (char *)"-o";
	fargv[fargc++] = (char *)"ro,default_permissions,fsname=eiofs";
	fargv[fargc++] = (char *)mnt;
	fargv[fargc] = NULL;
	return fuse_main(fargc, fargv, &eio_ops, NULL);
}
