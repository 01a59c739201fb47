/*
 * faultshim.c: an LD_PRELOAD library that fails the N-th call of a chosen
 * kind with a chosen errno, the way SQLite's tests fail the N-th system
 * call.  Used by tests/faults/test_nth.py.
 *
 * Environment (read once, when the library is loaded):
 *   VIGIL_FAULT_CALL=KIND[,KIND...]  the calls counted: write, pwrite, read,
 *                           pread, fsync, fdatasync, syncfs, rename,
 *                           renameat, renameat2, copy_file_range,
 *                           sqlite3_step (a step on a database whose
 *                           file is under the prefix returns
 *                           SQLITE_IOERR, as after a failed write)
 *                           (pwrite covers pwrite and pwrite64, pread
 *                           pread and pread64; several kinds share one
 *                           count)
 *   VIGIL_FAULT_N=N         fail the N-th counted call (1 = the first);
 *                           0 or unset: count only, fail nothing
 *   VIGIL_FAULT_ERRNO=E     EIO (default), ENOSPC, EDQUOT, EROFS, ... or
 *                           a number
 *   VIGIL_FAULT_REPEAT=1    fail every counted call from the N-th on (a
 *                           device that stays broken), not only the N-th
 *   VIGIL_FAULT_PATH_PREFIX=P  count only calls on files whose path starts
 *                           with P: for fd calls the /proc/self/fd link,
 *                           for renames the new name (or the old one)
 *                           made absolute through the folder fd
 *   VIGIL_FAULT_ALWAYS=KIND=E[,KIND=E...]  calls of KIND under the prefix
 *                           always fail with E, uncounted (e.g.
 *                           copy_file_range=EXDEV forces the read/write
 *                           copy)
 *   VIGIL_FAULT_INHERIT=1   children count too (one count shared through
 *                           fork; a child that execs starts its own);
 *                           without it only the process that loaded the
 *                           library first counts, its children and the
 *                           programs they run do not
 *   VIGIL_FAULT_LOG=FILE    append "inject KIND N ERRNO PATH" for each
 *                           failure and, at exit, "count KINDS TOTAL PID":
 *                           the driver learns whether anything was hit
 *
 * The shim calls the real functions through dlsym(RTLD_NEXT).  Writes that
 * glibc makes internally (stdio's fwrite/fflush) do not pass through it.
 */
/* Define pwrite and pwrite64 (pread, pread64) as the two symbols they are:
 * the build's -D_FILE_OFFSET_BITS=64 would turn pwrite into pwrite64. */
#undef _FILE_OFFSET_BITS

#include <sys/mman.h>
#include <sys/types.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum fs_kind {
	FS_WRITE, FS_PWRITE, FS_READ, FS_PREAD, FS_FSYNC, FS_FDATASYNC,
	FS_SYNCFS, FS_RENAME, FS_RENAMEAT, FS_RENAMEAT2, FS_COPY_FILE_RANGE,
	FS_SQLITE3_STEP,
	FS_NKINDS
};

static const char *const fs_kind_names[FS_NKINDS] = {
	"write", "pwrite", "read", "pread", "fsync", "fdatasync", "syncfs",
	"rename", "renameat", "renameat2", "copy_file_range", "sqlite3_step",
};

static const struct {
	const char	*name;
	int		 value;
} fs_errnos[] = {
	{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EDQUOT", EDQUOT },
	{ "EROFS", EROFS }, { "EPERM", EPERM }, { "EACCES", EACCES },
	{ "EINTR", EINTR }, { "EAGAIN", EAGAIN }, { "EFBIG", EFBIG },
	{ "EXDEV", EXDEV }, { "ENOMEM", ENOMEM }, { "EBADF", EBADF },
	{ "EINVAL", EINVAL }, { "ENOSYS", ENOSYS },
	{ "EOPNOTSUPP", EOPNOTSUPP }, { "ENOENT", ENOENT },
	{ "EEXIST", EEXIST }, { "EMLINK", EMLINK }, { "ENOTDIR", ENOTDIR },
};

static int	 fs_ready;
static int	 fs_active;		/* this process counts */
static int	 fs_counted[FS_NKINDS];
static int	 fs_always[FS_NKINDS];	/* errno, 0 = none */
static unsigned long fs_n;
static int	 fs_errno = EIO;
static int	 fs_repeat;
static int	 fs_inherit;
static char	 fs_prefix[PATH_MAX];
static size_t	 fs_prefix_len;
static char	 fs_log[PATH_MAX];
static char	 fs_kinds_text[256];
static unsigned long *fs_count;		/* shared with forked children */
static unsigned long fs_count_private;
static pid_t	 fs_pid;

static ssize_t	(*real_write)(int, const void *, size_t);
static ssize_t	(*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t	(*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t	(*real_read)(int, void *, size_t);
static ssize_t	(*real_pread)(int, void *, size_t, off_t);
static ssize_t	(*real_pread64)(int, void *, size_t, off_t);
static int	(*real_fsync)(int);
static int	(*real_fdatasync)(int);
static int	(*real_syncfs)(int);
static int	(*real_rename)(const char *, const char *);
static int	(*real_renameat)(int, const char *, int, const char *);
static int	(*real_renameat2)(int, const char *, int, const char *,
		    unsigned int);
static ssize_t	(*real_copy_file_range)(int, off_t *, int, off_t *, size_t,
		    unsigned int);
/* SQLite's, looked up when first needed (not every process has it) */
static int	(*real_sqlite3_step)(void *);
static void	*(*real_sqlite3_db_handle)(void *);
static const char *(*real_sqlite3_db_filename)(void *, const char *);

static void
fs_resolve(void)
{
	real_write = dlsym(RTLD_NEXT, "write");
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
	real_read = dlsym(RTLD_NEXT, "read");
	real_pread = dlsym(RTLD_NEXT, "pread");
	real_pread64 = dlsym(RTLD_NEXT, "pread64");
	real_fsync = dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real_syncfs = dlsym(RTLD_NEXT, "syncfs");
	real_rename = dlsym(RTLD_NEXT, "rename");
	real_renameat = dlsym(RTLD_NEXT, "renameat");
	real_renameat2 = dlsym(RTLD_NEXT, "renameat2");
	real_copy_file_range = dlsym(RTLD_NEXT, "copy_file_range");
}

static int
fs_parse_errno(const char *s)
{
	size_t i;
	char *end;
	long v;

	for (i = 0; i < sizeof fs_errnos / sizeof fs_errnos[0]; i++)
		if (strcmp(s, fs_errnos[i].name) == 0)
			return fs_errnos[i].value;
	v = strtol(s, &end, 10);
	if (*s != '\0' && *end == '\0' && v > 0 && v < 4096)
		return (int)v;
	return -1;
}

static int
fs_parse_kind(const char *s, size_t len)
{
	int k;

	for (k = 0; k < FS_NKINDS; k++)
		if (strlen(fs_kind_names[k]) == len &&
		    strncmp(s, fs_kind_names[k], len) == 0)
			return k;
	return -1;
}

/* A bad setting: say which and stop (the test must not run unfaulted). */
static void
fs_die(const char *msg, const char *what)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof buf, "faultshim: %s \"%s\"\n", msg, what);
	if (n > 0 && real_write != NULL)
		(void)real_write(2, buf, (size_t)n < sizeof buf ? (size_t)n :
		    sizeof buf - 1);
	_exit(98);
}

static void __attribute__((format(printf, 1, 2)))
fs_logf(const char *fmt, ...)
{
	char buf[PATH_MAX + 256];
	va_list ap;
	int fd, n;

	if (fs_log[0] == '\0')
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	if ((fd = open(fs_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0644)) == -1)
		return;
	(void)real_write(fd, buf, (size_t)n);
	close(fd);
}

__attribute__((constructor)) static void
fs_init(void)
{
	const char *calls, *s, *e, *owner;
	char tmp[64];
	int k, inherit;

	if (fs_ready)
		return;
	fs_resolve();
	fs_ready = 1;
	fs_pid = getpid();
	calls = getenv("VIGIL_FAULT_CALL");
	inherit = (s = getenv("VIGIL_FAULT_INHERIT")) != NULL &&
	    strcmp(s, "1") == 0;
	fs_inherit = inherit;
	/* The first process to load us owns the count; programs it (or its
	 * children) run later load us again and stay passive. */
	owner = getenv("VIGIL_FAULT_OWNER");
	if (owner != NULL && !inherit)
		return;
	snprintf(tmp, sizeof tmp, "%ld", (long)fs_pid);
	setenv("VIGIL_FAULT_OWNER", tmp, 0);

	if (calls != NULL) {
		for (s = calls; *s != '\0'; s = *e ? e + 1 : e) {
			e = s + strcspn(s, ",");
			if (e == s)
				continue;
			if ((k = fs_parse_kind(s, (size_t)(e - s))) == -1)
				fs_die("VIGIL_FAULT_CALL: unknown call in",
				    calls);
			fs_counted[k] = 1;
		}
		snprintf(fs_kinds_text, sizeof fs_kinds_text, "%s", calls);
	}
	if ((s = getenv("VIGIL_FAULT_N")) != NULL && *s != '\0')
		fs_n = strtoul(s, NULL, 10);
	if ((s = getenv("VIGIL_FAULT_ERRNO")) != NULL && *s != '\0' &&
	    (fs_errno = fs_parse_errno(s)) == -1)
		fs_die("VIGIL_FAULT_ERRNO: unknown errno", s);
	fs_repeat = (s = getenv("VIGIL_FAULT_REPEAT")) != NULL &&
	    strcmp(s, "1") == 0;
	if ((s = getenv("VIGIL_FAULT_PATH_PREFIX")) != NULL) {
		snprintf(fs_prefix, sizeof fs_prefix, "%s", s);
		fs_prefix_len = strlen(fs_prefix);
	}
	if ((s = getenv("VIGIL_FAULT_LOG")) != NULL)
		snprintf(fs_log, sizeof fs_log, "%s", s);
	if ((s = getenv("VIGIL_FAULT_ALWAYS")) != NULL) {
		const char *eq;
		char en[32];
		int v;

		for (; *s != '\0'; s = *e ? e + 1 : e) {
			e = s + strcspn(s, ",");
			eq = memchr(s, '=', (size_t)(e - s));
			if (eq == NULL || (k = fs_parse_kind(s,
			    (size_t)(eq - s))) == -1 ||
			    (size_t)(e - eq - 1) >= sizeof en)
				fs_die("VIGIL_FAULT_ALWAYS: bad item in",
				    getenv("VIGIL_FAULT_ALWAYS"));
			memcpy(en, eq + 1, (size_t)(e - eq - 1));
			en[e - eq - 1] = '\0';
			if ((v = fs_parse_errno(en)) == -1)
				fs_die("VIGIL_FAULT_ALWAYS: unknown errno",
				    en);
			fs_always[k] = v;
		}
	}
	fs_count = mmap(NULL, sizeof *fs_count, PROT_READ | PROT_WRITE,
	    inherit ? MAP_SHARED | MAP_ANONYMOUS : MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);	/* cppcheck-suppress invalidFunctionArg ; anonymous: fd -1 */
	if (fs_count == MAP_FAILED)
		fs_count = &fs_count_private;
	*fs_count = 0;
	fs_active = 1;
}

__attribute__((destructor)) static void
fs_fini(void)
{
	if (!fs_active || fs_kinds_text[0] == '\0' || getpid() != fs_pid)
		return;
	fs_logf("count %s %lu %ld\n", fs_kinds_text,
	    __atomic_load_n(fs_count, __ATOMIC_SEQ_CST), (long)fs_pid);
}

/* Only the loading process counts, unless VIGIL_FAULT_INHERIT=1. */
static int
fs_here(void)
{
	if (!fs_ready)
		fs_init();
	if (!fs_active)
		return 0;
	return fs_inherit || getpid() == fs_pid;
}

static int
fs_fd_path(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	if ((n = readlink(link, buf, len - 1)) < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static int
fs_path_at(int dirfd, const char *name, char *buf, size_t len)
{
	size_t l;

	if (name == NULL)
		return -1;
	if (name[0] == '/' || dirfd == AT_FDCWD) {
		if (name[0] == '/') {
			snprintf(buf, len, "%s", name);
			return 0;
		}
		if (getcwd(buf, len) == NULL)
			return -1;
	} else if (fs_fd_path(dirfd, buf, len) == -1)
		return -1;
	l = strlen(buf);
	snprintf(buf + l, len - l, "/%s", name);
	return 0;
}

static int
fs_prefix_ok(const char *path)
{
	if (fs_prefix_len == 0)
		return 1;
	return strncmp(path, fs_prefix, fs_prefix_len) == 0;
}

/*
 * Decide for one call of kind k on path (NULL: could not tell; counted only
 * without a prefix).  Returns 0 to go on, or the errno to fail with.
 */
static int
fs_decide(int k, const char *path)
{
	unsigned long n;

	if (path != NULL ? !fs_prefix_ok(path) : fs_prefix_len != 0)
		return 0;
	if (fs_always[k] != 0)
		return fs_always[k];
	if (!fs_counted[k])
		return 0;
	n = __atomic_add_fetch(fs_count, 1, __ATOMIC_SEQ_CST);
	if (fs_n == 0 || n < fs_n || (n > fs_n && !fs_repeat))
		return 0;
	fs_logf("inject %s %lu %d %s\n", fs_kind_names[k], n, fs_errno,
	    path != NULL ? path : "?");
	return fs_errno;
}

static int
fs_check_fd(int k, int fd)
{
	char path[PATH_MAX];

	if (!fs_here() || (!fs_counted[k] && fs_always[k] == 0))
		return 0;
	return fs_decide(k, fs_fd_path(fd, path, sizeof path) == 0 ? path :
	    NULL);
}

/* copy_file_range: counted when either end is under the prefix (the
 * destination is written, the source read). */
static int
fs_check_fd2(int k, int in, int out)
{
	char path[PATH_MAX];

	if (!fs_here() || (!fs_counted[k] && fs_always[k] == 0))
		return 0;
	if (fs_fd_path(out, path, sizeof path) == 0 && fs_prefix_ok(path))
		return fs_decide(k, path);
	if (fs_fd_path(in, path, sizeof path) == 0 && fs_prefix_ok(path))
		return fs_decide(k, path);
	return fs_prefix_len == 0 ? fs_decide(k, NULL) : 0;
}

static int
fs_check_rename(int k, int olddirfd, const char *old, int newdirfd,
    const char *new)
{
	char path[PATH_MAX];

	if (!fs_here() || (!fs_counted[k] && fs_always[k] == 0))
		return 0;
	/* Either name under the prefix counts: renames into a folder and
	 * out of it both touch it. */
	if (fs_prefix_len != 0 && fs_path_at(newdirfd, new, path,
	    sizeof path) == 0 && !fs_prefix_ok(path) &&
	    fs_path_at(olddirfd, old, path, sizeof path) == 0 &&
	    !fs_prefix_ok(path))
		return 0;
	if (fs_prefix_len == 0 && fs_path_at(newdirfd, new, path,
	    sizeof path) == -1)
		snprintf(path, sizeof path, "?");
	return fs_decide(k, path);
}

#define FS_FAIL(e)	do { errno = (e); return -1; } while (0)

ssize_t
write(int fd, const void *buf, size_t len)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd(FS_WRITE, fd)) != 0)
		FS_FAIL(e);
	return real_write(fd, buf, len);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd(FS_PWRITE, fd)) != 0)
		FS_FAIL(e);
	return real_pwrite(fd, buf, len, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd(FS_PWRITE, fd)) != 0)
		FS_FAIL(e);
	return real_pwrite64(fd, buf, len, off);
}

ssize_t
read(int fd, void *buf, size_t len)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd(FS_READ, fd)) != 0)
		FS_FAIL(e);
	return real_read(fd, buf, len);
}

ssize_t
pread(int fd, void *buf, size_t len, off_t off)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd(FS_PREAD, fd)) != 0)
		FS_FAIL(e);
	return real_pread(fd, buf, len, off);
}

ssize_t
pread64(int fd, void *buf, size_t len, off_t off)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd(FS_PREAD, fd)) != 0)
		FS_FAIL(e);
	return real_pread64(fd, buf, len, off);
}

int
fsync(int fd)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd(FS_FSYNC, fd)) != 0)
		FS_FAIL(e);
	return real_fsync(fd);
}

int
fdatasync(int fd)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd(FS_FDATASYNC, fd)) != 0)
		FS_FAIL(e);
	return real_fdatasync(fd);
}

int
syncfs(int fd)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd(FS_SYNCFS, fd)) != 0)
		FS_FAIL(e);
	return real_syncfs(fd);
}

int
rename(const char *old, const char *new)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_rename(FS_RENAME, AT_FDCWD, old, AT_FDCWD,
	    new)) != 0)
		FS_FAIL(e);
	return real_rename(old, new);
}

int
renameat(int olddirfd, const char *old, int newdirfd, const char *new)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_rename(FS_RENAMEAT, olddirfd, old, newdirfd,
	    new)) != 0)
		FS_FAIL(e);
	return real_renameat(olddirfd, old, newdirfd, new);
}

int
renameat2(int olddirfd, const char *old, int newdirfd, const char *new,
    unsigned int flags)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_rename(FS_RENAMEAT2, olddirfd, old, newdirfd,
	    new)) != 0)
		FS_FAIL(e);
	return real_renameat2(olddirfd, old, newdirfd, new, flags);
}

ssize_t
copy_file_range(int in, off_t *inoff, int out, off_t *outoff, size_t len,
    unsigned int flags)
{
	int e;

	if (!fs_ready)
		fs_init();
	if ((e = fs_check_fd2(FS_COPY_FILE_RANGE, in, out)) != 0)
		FS_FAIL(e);
	return real_copy_file_range(in, inoff, out, outoff, len, flags);
}

/* True when the code at pc is in SQLite's own library. */
static int
fs_from_sqlite(void *pc)
{
	Dl_info info;

	return dladdr(pc, &info) != 0 && info.dli_fname != NULL &&
	    strstr(info.dli_fname, "libsqlite3") != NULL;
}

/* SQLite: the N-th step of a statement on a database under the prefix
 * returns SQLITE_IOERR (10), what a step returns when a write under it
 * failed.  The caller sees the error code; the connection's own message
 * stays what it was. */
int
sqlite3_step(void *stmt)
{
	const char *file = NULL;
	void *db;

	if (real_sqlite3_step == NULL) {
		real_sqlite3_step = dlsym(RTLD_NEXT, "sqlite3_step");
		real_sqlite3_db_handle = dlsym(RTLD_NEXT, "sqlite3_db_handle");
		real_sqlite3_db_filename = dlsym(RTLD_NEXT,
		    "sqlite3_db_filename");
		if (real_sqlite3_step == NULL)
			fs_die("cannot find", "sqlite3_step");
	}
	/* only the application's steps: SQLite's own (sqlite3_exec, VACUUM,
	   schema loads) call it too, and expect a real failure's rollback */
	if (fs_here() && (fs_counted[FS_SQLITE3_STEP] ||
	    fs_always[FS_SQLITE3_STEP] != 0) &&
	    !fs_from_sqlite(__builtin_return_address(0))) {
		if (real_sqlite3_db_handle != NULL &&
		    real_sqlite3_db_filename != NULL &&
		    (db = real_sqlite3_db_handle(stmt)) != NULL)
			file = real_sqlite3_db_filename(db, "main");
		if (fs_decide(FS_SQLITE3_STEP, file != NULL && *file != '\0' ?
		    file : NULL) != 0)
			return 10;	/* SQLITE_IOERR */
	}
	return real_sqlite3_step(stmt);
}
