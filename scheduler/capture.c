/*
 * capture.c: the per-file capture methods (see capture.h).  The SQLite part
 * is db/sqlite_capture.c (only db/ includes sqlite3.h); the clone is
 * common/snapshot.h's.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/snapshot.h"
#include "db/sqlite_capture.h"
#include "scheduler/capture.h"

static int64_t
capture_ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* The file is in the same state: nothing wrote to it in between. */
static bool
capture_same(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino &&
	    a->st_dev == b->st_dev &&
	    capture_ts_ns(&a->st_mtim) == capture_ts_ns(&b->st_mtim) &&
	    capture_ts_ns(&a->st_ctim) == capture_ts_ns(&b->st_ctim);
}

static void
capture_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int
capture_verified(int src_fd, const struct stat *known, unsigned retries,
    capture_copy_fn fn, void *arg, struct capture_outcome *out,
    struct vg_err *err)
{
	struct stat	 before, after;
	unsigned	 backoff = CAPTURE_BACKOFF_MS;

	memset(out, 0, sizeof(*out));
	if (known != NULL)
		before = *known;
	else if (fstat(src_fd, &before) == -1) {
		vg_err_sys(err, "cannot read the state of the file");
		return -1;
	}
	for (;;) {
		out->st = before;
		out->copies++;
		if (fn(arg, src_fd, &before) == -1) {
			vg_err_sys(err, "copy %u of the file failed",
			    out->copies);
			return -1;
		}
		if (fstat(src_fd, &after) == -1) {
			vg_err_sys(err, "cannot read the state of the file");
			return -1;
		}
		if (capture_same(&before, &after)) {
			out->consistent = true;
			return 0;
		}
		if (out->copies > retries) {
			out->consistent = false;
			return 0;
		}
		/* it moved while we read it: let the writer finish */
		capture_sleep_ms(backoff);
		if (backoff < CAPTURE_BACKOFF_MAX_MS)
			backoff *= 2;
		if (fstat(src_fd, &before) == -1) {
			vg_err_sys(err, "cannot read the state of the file");
			return -1;
		}
	}
}

int
capture_reflink(int staging_fd, int src_fd, capture_copy_fn fn, void *arg,
    struct capture_outcome *out, struct vg_err *err)
{
	int	 cfd, r, e;

	memset(out, 0, sizeof(*out));
	if (fstat(src_fd, &out->st) == -1) {
		vg_err_sys(err, "cannot read the state of the file");
		return -1;
	}
	if ((cfd = snap_reflink_clone(staging_fd, src_fd)) == -1) {
		vg_err_sys(err, "cannot clone the file into the staging folder "
		    "(it is copied and checked instead)");
		return CAPTURE_FALLTHROUGH;
	}
	out->copies = 1;
	r = fn(arg, cfd, NULL);
	e = errno;
	close(cfd);
	if (r == -1) {
		errno = e;
		vg_err_sys(err, "copying the clone of the file failed");
		return -1;
	}
	out->consistent = true;
	return 0;
}

bool
capture_is_sqlite(int src_fd)
{
	char	 buf[SQLCAP_MAGIC_LEN];
	ssize_t	 n;

	n = pread(src_fd, buf, sizeof(buf), 0);
	return n == (ssize_t)sizeof(buf) && sqlcap_is_header(buf, sizeof(buf));
}

/* The path src_name in src_dirfd still names the file src_fd has open. */
static bool
capture_same_file(int src_dirfd, const char *src_name, int src_fd,
    struct stat *st)
{
	struct stat	 ls;

	if (fstat(src_fd, st) == -1 || fstatat(src_dirfd, src_name, &ls,
	    AT_SYMLINK_NOFOLLOW) == -1)
		return false;
	return S_ISREG(ls.st_mode) && ls.st_dev == st->st_dev &&
	    ls.st_ino == st->st_ino;
}

int
capture_sqlite(int src_dirfd, const char *src_name, int src_fd,
    int dst_dirfd, const char *dst_name, int deadline_ms,
    struct capture_outcome *out, struct vg_err *err)
{
	char		 src[PATH_MAX], dst[PATH_MAX];
	struct stat	 st, dirst, pathst, end;
	long		 pages;
	int		 r;

	memset(out, 0, sizeof(*out));
	if (strchr(src_name, '/') != NULL || strchr(dst_name, '/') != NULL) {
		vg_err_set(err, VG_ERR_INVALID, "%s: a file name, not a path, "
		    "is expected", src_name);
		return -1;
	}
	if (snap_fd_path(src_dirfd, src_name, src, sizeof(src)) == -1 ||
	    snap_fd_path(dst_dirfd, dst_name, dst, sizeof(dst)) == -1) {
		vg_err_sys(err, "%s: cannot name the file for SQLite "
		    "(it is copied by the next method)", src_name);
		return CAPTURE_FALLTHROUGH;
	}
	/* The folder's path must still lead to the folder we walk, and the
	 * name to the file the engine opened: SQLite opens by path. */
	*strrchr(src, '/') = '\0';
	if (fstat(src_dirfd, &dirst) == -1 || stat(src[0] ? src : "/",
	    &pathst) == -1 || dirst.st_dev != pathst.st_dev ||
	    dirst.st_ino != pathst.st_ino ||
	    !capture_same_file(src_dirfd, src_name, src_fd, &st)) {
		vg_err_set(err, VG_ERR_INVALID, "%s: the file or its folder "
		    "was moved or replaced; it is copied by the next method",
		    src_name);
		return CAPTURE_FALLTHROUGH;
	}
	src[strlen(src)] = '/';
	r = sqlcap_backup(src, dst, deadline_ms, &pages, err);
	if (r == SQLCAP_FAILED)
		return -1;
	if (r != SQLCAP_OK)
		return CAPTURE_FALLTHROUGH;
	if (!capture_same_file(src_dirfd, src_name, src_fd, &end) ||
	    end.st_ino != st.st_ino) {
		vg_err_set(err, VG_ERR_INVALID, "%s: the file was replaced "
		    "during its backup; it is copied by the next method", src);
		return CAPTURE_FALLTHROUGH;
	}
	out->st = st;
	out->copies = 1;
	out->consistent = true;
	return 0;
}

bool
capture_is_sqlite_companion(int dirfd, const char *name)
{
	static const char *const sfx[] = { "-wal", "-shm", "-journal" };
	char		 main[NAME_MAX + 1];
	struct stat	 st;
	size_t		 len = strlen(name), sl, i;
	bool		 r;
	int		 fd;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		sl = strlen(sfx[i]);
		if (len > sl && len - sl <= NAME_MAX &&
		    strcmp(name + len - sl, sfx[i]) == 0)
			break;
	}
	if (i == sizeof(sfx) / sizeof(sfx[0]))
		return false;
	memcpy(main, name, len - sl);
	main[len - sl] = '\0';
	fd = openat(dirfd, main, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC | O_NOCTTY);
	if (fd == -1)
		return false;
	r = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && capture_is_sqlite(fd);
	close(fd);
	return r;
}
