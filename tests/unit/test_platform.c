/*
 * test_platform.c: the file-system calls of common/platform.h on real files.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/platform.h"

struct pfx {
	char	 dir[1024];
	int	 fd;
};

static int
setup(void **state)
{
	struct pfx	*f = calloc(1, sizeof(*f));
	const char	*tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof(f->dir), "%s/vigil-plat-XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	f->fd = open(f->dir, O_RDONLY | O_DIRECTORY);
	assert_true(f->fd >= 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct pfx	*f = *state;
	char		 cmd[PATH_MAX + 16];

	close(f->fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
test_next_data_finds_extents(void **state)
{
	struct pfx	*f = *state;
	off_t		 d, h, size = 16 << 20;
	int		 fd, r;

	fd = openat(f->fd, "sparse", O_RDWR | O_CREAT, 0600);
	assert_int_equal(pwrite(fd, "x", 1, 8 << 20), 1);
	assert_int_equal(ftruncate(fd, size), 0);
	r = plat_next_data(fd, 0, size, &d, &h);
	assert_int_equal(r, 1);
	/* the data run holds offset 8 MiB and not the file's start, where
	 * holes are reported; filesystems without holes report it all */
	assert_true(d <= (8 << 20) && h > (8 << 20));
	if (d > 0) {
		r = plat_next_data(fd, h, size, &d, &h);
		assert_int_equal(r, 0);
	}
	assert_int_equal(plat_next_data(fd, size, size, &d, &h), 0);
	close(fd);
}

static void
test_copy_range_copies(void **state)
{
	struct pfx	*f = *state;
	off_t		 so = 0, dof = 0;
	char		 buf[16] = { 0 };
	ssize_t		 n;
	int		 s, d;

	s = openat(f->fd, "a", O_RDWR | O_CREAT, 0600);
	d = openat(f->fd, "b", O_RDWR | O_CREAT, 0600);
	assert_int_equal(write(s, "0123456789", 10), 10);
	n = plat_copy_range(s, &so, d, &dof, 10);
	if (n == -1)
		skip();
	assert_int_equal(n, 10);
	assert_int_equal(so, 10);
	assert_int_equal(dof, 10);
	assert_int_equal(pread(d, buf, 10, 0), 10);
	assert_string_equal(buf, "0123456789");
	close(s);
	close(d);
}

static void
test_open_read_fifo_does_not_block(void **state)
{
	struct pfx	*f = *state;
	struct stat	 st;
	int		 fd;

	assert_int_equal(mkfifoat(f->fd, "fifo", 0600), 0);
	fd = plat_open_read(f->fd, "fifo");
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	close(fd);
}

static void
test_open_read_refuses_symlink(void **state)
{
	struct pfx	*f = *state;

	assert_int_equal(symlinkat("/etc/passwd", f->fd, "ln"), 0);
	assert_int_equal(plat_open_read(f->fd, "ln"), -1);
	assert_int_equal(errno, ELOOP);
}

static void
test_open_beneath_stays_inside(void **state)
{
	struct pfx	*f = *state;
	int		 fd;

	assert_int_equal(mkdirat(f->fd, "in", 0700), 0);
	fd = openat(f->fd, "in/file", O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlinkat("..", f->fd, "in/up"), 0);
	assert_int_equal(symlinkat("/", f->fd, "in/root"), 0);
	fd = plat_open_beneath(f->fd, "in/file", O_RDONLY, 0);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(plat_open_beneath(f->fd, "in/../../etc/passwd",
	    O_RDONLY, 0), -1);
	assert_int_equal(plat_open_beneath(f->fd, "in/up/in/file", O_RDONLY,
	    0), -1);
	assert_int_equal(plat_open_beneath(f->fd, "in/root/etc/passwd",
	    O_RDONLY, 0), -1);
	assert_int_equal(plat_open_beneath(f->fd, "/etc/passwd", O_RDONLY, 0),
	    -1);
}

static void
test_xattr_roundtrip(void **state)
{
	struct pfx	*f = *state;
	char		*names;
	void		*val;
	size_t		 len, vlen;
	int		 fd;

	fd = openat(f->fd, "x", O_RDWR | O_CREAT, 0600);
	if (plat_xattr_set(fd, "user.one", "\0\1\2", 3) == -1)
		skip();
	assert_int_equal(plat_xattr_set(fd, "user.two", "", 0), 0);
	assert_int_equal(plat_xattr_list(fd, &names, &len), 0);
	assert_non_null(names);
	assert_non_null(memmem(names, len, "user.one\0", 9));
	assert_non_null(memmem(names, len, "user.two\0", 9));
	free(names);
	assert_int_equal(plat_xattr_get(fd, "user.one", &val, &vlen), 0);
	assert_int_equal(vlen, 3);
	assert_memory_equal(val, "\0\1\2", 3);
	free(val);
	assert_int_equal(plat_xattr_get(fd, "user.two", &val, &vlen), 0);
	assert_int_equal(vlen, 0);
	free(val);
	assert_int_equal(plat_xattr_get(fd, "user.none", &val, &vlen), -1);
	assert_int_equal(errno, ENODATA);
	close(fd);
}

static void
test_xattr_list_empty(void **state)
{
	struct pfx	*f = *state;
	char		*names = (char *)1;
	size_t		 len = 7;
	int		 fd;

	fd = openat(f->fd, "plain", O_RDWR | O_CREAT, 0600);
	if (plat_xattr_list(fd, &names, &len) == -1)
		skip();
	/* may hold security.* labels on some systems; never user.* */
	if (len == 0)
		assert_null(names);
	else
		assert_null(memmem(names, len, "user.", 5));
	free(names);
	close(fd);
}

static void
test_lxattr_on_symlink_itself(void **state)
{
	struct pfx	*f = *state;
	char		*names;
	void		*val;
	size_t		 len, vlen;
	char		 buf[16];
	int		 fd;

	fd = openat(f->fd, "tgt", O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(symlinkat("tgt", f->fd, "sl"), 0);
	/* trusted.* is the family a symlink can hold; it needs root */
	if (plat_lxattr_set(f->fd, "sl", "trusted.v", "on link", 7) == -1)
		skip();
	assert_int_equal(plat_lxattr_list(f->fd, "sl", &names, &len), 0);
	assert_non_null(memmem(names, len, "trusted.v\0", 10));
	free(names);
	assert_int_equal(plat_lxattr_get(f->fd, "sl", "trusted.v", &val,
	    &vlen), 0);
	assert_int_equal(vlen, 7);
	assert_memory_equal(val, "on link", 7);
	free(val);
	/* never the target's */
	assert_int_equal(fgetxattr(fd, "trusted.v", buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENODATA);
	assert_int_equal(plat_lxattr_get(f->fd, "sl", "trusted.none", &val,
	    &vlen), -1);
	assert_int_equal(errno, ENODATA);
	assert_int_equal(plat_lxattr_list(f->fd, "missing", &names, &len), -1);
	assert_int_equal(errno, ENOENT);
	close(fd);
}

static void
test_rename_noreplace(void **state)
{
	struct pfx	*f = *state;
	char		 buf[8];
	int		 fd;

	fd = openat(f->fd, "first", O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "1", 1), 1);
	close(fd);
	fd = openat(f->fd, "second", O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(fd, "2", 1), 1);
	close(fd);
	assert_int_equal(plat_rename_noreplace(f->fd, "second", f->fd,
	    "first"), -1);
	assert_int_equal(errno, EEXIST);
	fd = openat(f->fd, "first", O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], '1');
	close(fd);
	assert_int_equal(plat_rename_noreplace(f->fd, "second", f->fd,
	    "third"), 0);
	assert_int_equal(faccessat(f->fd, "second", F_OK, 0), -1);
	assert_int_equal(faccessat(f->fd, "third", F_OK, 0), 0);
}

static void
test_fs_info_pseudo(void **state)
{
	struct pfx		*f = *state;
	struct plat_fsinfo	 fi;
	int			 fd;

	assert_int_equal(plat_fs_info(f->fd, getuid(), &fi), 0);
	assert_false(fi.pseudo);
	fd = open("/proc", O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		skip();
	assert_int_equal(plat_fs_info(fd, getuid(), &fi), 0);
	assert_true(fi.pseudo);
	assert_string_equal(fi.type, "proc");
	close(fd);
	fd = open("/sys", O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		assert_int_equal(plat_fs_info(fd, getuid(), &fi), 0);
		assert_true(fi.pseudo);
		close(fd);
	}
}

static void
test_is_mount_root(void **state)
{
	struct pfx	*f = *state;
	bool		 root;
	int		 fd;

	assert_int_equal(mkdirat(f->fd, "sub", 0700), 0);
	assert_int_equal(plat_is_mount_root(f->fd, "sub", &root), 0);
	assert_false(root);
	fd = open("/", O_RDONLY | O_DIRECTORY);
	assert_int_equal(plat_is_mount_root(fd, "", &root), 0);
	assert_true(root);
	close(fd);
	fd = open("/proc", O_RDONLY | O_DIRECTORY);
	if (fd >= 0) {
		assert_int_equal(plat_is_mount_root(fd, "", &root), 0);
		assert_true(root);
		close(fd);
	}
}

static void
test_clone_refused_or_done(void **state)
{
	struct pfx	*f = *state;
	char		 buf[8] = { 0 };
	int		 s, d;

	s = openat(f->fd, "cs", O_RDWR | O_CREAT, 0600);
	d = openat(f->fd, "cd", O_RDWR | O_CREAT, 0600);
	assert_int_equal(write(s, "clone", 5), 5);
	if (plat_clone_file(d, s) == 0) {
		assert_int_equal(pread(d, buf, 5, 0), 5);
		assert_string_equal(buf, "clone");
	} else {
		/* ext4 and friends: refused, destination left empty */
		assert_true(errno == EOPNOTSUPP || errno == EXDEV ||
		    errno == EINVAL || errno == ENOTTY);
		assert_int_equal(lseek(d, 0, SEEK_END), 0);
	}
	close(s);
	close(d);
}

static void
test_raise_fd_limit(void **state)
{
	(void)state;
	assert_true(plat_raise_fd_limit() >= 64);
}

static void
test_low_priority_in_child(void **state)
{
	pid_t	 pid;
	int	 status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		errno = 0;
		if (plat_set_low_priority() == -1)
			_exit(2);
		_exit(getpriority(PRIO_PROCESS, 0) == 10 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_syncfs(void **state)
{
	struct pfx	*f = *state;

	assert_int_equal(plat_syncfs(f->fd), 0);
	assert_int_equal(plat_syncfs(-1), -1);
}

/* ---- plat_open_dir_safe ---- */

#define OTHER_UID	4242	/* "alice": owns folders, plants links */
#define THIRD_UID	4243	/* "bob" */

static const char *
pj(struct pfx *f, const char *rel)
{
	static char	 buf[4][2048];
	static int	 k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", f->dir, rel);
	return buf[k];
}

static void
mk(struct pfx *f, const char *rel, uid_t uid)
{
	assert_int_equal(mkdir(pj(f, rel), 0755), 0);
	assert_int_equal(chmod(pj(f, rel), 0755), 0);
	if (uid != (uid_t)-1)
		assert_int_equal(chown(pj(f, rel), uid, uid), 0);
}

static void
ln(struct pfx *f, const char *target, const char *rel, uid_t uid)
{
	assert_int_equal(symlink(target, pj(f, rel)), 0);
	if (uid != (uid_t)-1)
		assert_int_equal(lchown(pj(f, rel), uid, uid), 0);
}

/* fd is the folder rel (under the test folder; "/..." as it is) names (stat
 * follows links, as a plain open would) */
static void
is_dir(int fd, struct pfx *f, const char *rel)
{
	struct stat	 a, b;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(stat(rel[0] == '/' ? rel : pj(f, rel), &b), 0);
	assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
	/* a real folder fd: listing and syncfs work on it */
	assert_int_equal(plat_syncfs(fd), 0);
	close(fd);
}

/* Opening path fails with errno e and a message holding each of the
 * words given (a NULL-terminated list). */
static void
refused_words(const char *path, int flags, int e, const char *const *words)
{
	struct vg_err	 err;
	int		 fd;

	vg_err_clear(&err);
	errno = 0;
	fd = plat_open_dir_safe(path, flags, &err);
	if (fd != -1)
		close(fd);
	assert_int_equal(fd, -1);
	assert_int_equal(errno, e);
	for (; *words != NULL; words++)
		if (strstr(err.msg, *words) == NULL)
			fail_msg("\"%s\" not in: %s", *words, err.msg);
}
#define refused(path, flags, e, ...) refused_words((path), (flags), (e), \
	(const char *const[]){ __VA_ARGS__, NULL })

static void
test_open_dir_safe_walks_and_follows(void **state)
{
	struct pfx	*f = *state;
	struct vg_err	 err;
	int		 fd, cwd;

	mk(f, "a", -1);
	mk(f, "a/b", -1);
	mk(f, "a/c", -1);
	ln(f, "b", "a/lb", -1);
	ln(f, "lb", "a/llb", -1);
	ln(f, pj(f, "a/c"), "a/lc", -1);
	is_dir(plat_open_dir_safe(pj(f, "a/b"), 0, &err), f, "a/b");
	is_dir(plat_open_dir_safe(pj(f, "a//./b/"), 0, &err), f, "a/b");
	is_dir(plat_open_dir_safe(pj(f, "a/b/../c"), 0, &err), f, "a/c");
	is_dir(plat_open_dir_safe(pj(f, "a/lb"), 0, &err), f, "a/b");
	is_dir(plat_open_dir_safe(pj(f, "a/llb/../c"), 0, &err), f, "a/c");
	is_dir(plat_open_dir_safe("/", 0, &err), f, "/");
	/* an absolute link: from root's folders (root runs the tests in CI)
	 * it is followed; from a folder of a user, it leads to / (root's) */
	if (geteuid() == 0)
		is_dir(plat_open_dir_safe(pj(f, "a/lc"), 0, &err), f, "a/c");
	else
		refused(pj(f, "a/lc"), 0, EPERM, "lc");
	/* relative: from the working folder */
	cwd = open(".", O_RDONLY | O_DIRECTORY);
	assert_true(cwd >= 0);
	assert_int_equal(chdir(f->dir), 0);
	fd = plat_open_dir_safe("a/lb", 0, &err);
	assert_int_equal(fchdir(cwd), 0);
	close(cwd);
	is_dir(fd, f, "a/b");
}

static void
test_open_dir_safe_errors_name_the_component(void **state)
{
	struct pfx	*f = *state;
	char		 longname[NAME_MAX + 10];
	int		 fd;

	mk(f, "a", -1);
	fd = open(pj(f, "a/file"), O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	ln(f, "l2", "a/l1", -1);
	ln(f, "l1", "a/l2", -1);
	ln(f, "nowhere", "a/dangling", -1);
	refused(pj(f, "a/nothere/x"), 0, ENOENT, pj(f, "a/nothere/x"),
	    "nothere");
	refused(pj(f, "a/file/x"), 0, ENOTDIR, "file");
	refused(pj(f, "a/file"), PLAT_DIR_MKDIR, ENOTDIR, "file");
	refused(pj(f, "a/l1"), 0, ELOOP, "symlinks");
	refused(pj(f, "a/dangling"), 0, ENOENT, "nowhere");
	refused("", 0, EINVAL, "empty");
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	refused(pj(f, longname), 0, ENAMETOOLONG, "component");
	assert_int_equal(plat_open_dir_safe(pj(f, "a/nothere"), 0, NULL), -1);
}

static void
test_open_dir_safe_mkdir(void **state)
{
	struct pfx	*f = *state;
	struct vg_err	 err;
	struct stat	 st;
	mode_t		 um;

	um = umask(022);
	mk(f, "a", -1);
	is_dir(plat_open_dir_safe(pj(f, "a/n1/n2"), PLAT_DIR_MKDIR, &err), f,
	    "a/n1/n2");
	assert_int_equal(stat(pj(f, "a/n1"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	is_dir(plat_open_dir_safe(pj(f, "a/p1/p2"), PLAT_DIR_MKDIR |
	    PLAT_DIR_PRIVATE, &err), f, "a/p1/p2");
	assert_int_equal(stat(pj(f, "a/p1/p2"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* made through a link too, never in place of it */
	ln(f, "n1", "a/ln", -1);
	is_dir(plat_open_dir_safe(pj(f, "a/ln/n3"), PLAT_DIR_MKDIR, &err), f,
	    "a/n1/n3");
	umask(um);
}

/*
 * The unsafe transitions, with folders and links of two other uids: a
 * user's folder U (alice) in root's test folder, root's folder R.
 */
static void
test_open_dir_safe_refuses_unsafe_transitions(void **state)
{
	struct pfx	*f = *state;
	struct vg_err	 err;

	if (geteuid() != 0) {
		/* chown to another uid needs root */
		skip();
	}
	mk(f, "u", OTHER_UID);
	mk(f, "u/own", OTHER_UID);
	mk(f, "u/own/deeper", OTHER_UID);
	mk(f, "u/bobs", THIRD_UID);
	mk(f, "u/roots", 0);
	mk(f, "r", 0);
	mk(f, "r/bobs", THIRD_UID);
	mk(f, "r/bobs/alices", OTHER_UID);
	ln(f, pj(f, "r"), "u/abs", OTHER_UID);	/* -> / (root's) */
	ln(f, "own", "u/rel", OTHER_UID);	/* stays in her folder */
	ln(f, "own", "u/bobslink", THIRD_UID);	/* bob's link in hers */
	ln(f, "../r", "u/up", OTHER_UID);	/* .. out of her folder */
	ln(f, pj(f, "u/own"), "r/toalice", 0);	/* root's link: fine */

	/* allowed: within one uid, and anything from root's folders */
	is_dir(plat_open_dir_safe(pj(f, "u/own/deeper"), 0, &err), f,
	    "u/own/deeper");
	is_dir(plat_open_dir_safe(pj(f, "u/rel"), 0, &err), f, "u/own");
	is_dir(plat_open_dir_safe(pj(f, "u/own/../own"), 0, &err), f,
	    "u/own");
	is_dir(plat_open_dir_safe(pj(f, "r/bobs"), 0, &err), f, "r/bobs");
	is_dir(plat_open_dir_safe(pj(f, "r/toalice/deeper"), 0, &err), f,
	    "u/own/deeper");
	/* refused: into another uid's folder or link from hers, and out */
	refused(pj(f, "u/bobs"), 0, EPERM, pj(f, "u/bobs"), "bobs",
	    "uid 4243", "uid 4242");
	refused(pj(f, "u/roots"), 0, EPERM, "roots", "uid 0");
	refused(pj(f, "r/bobs/alices"), 0, EPERM, "alices");
	refused(pj(f, "u/abs"), 0, EPERM, "abs", pj(f, "r"));
	refused(pj(f, "u/abs/bobs"), PLAT_DIR_MKDIR, EPERM, "abs");
	refused(pj(f, "u/bobslink"), 0, EPERM, "bobslink");
	refused(pj(f, "u/up"), 0, EPERM, "..");
	refused(pj(f, "u/.."), 0, EPERM, "..");
	refused(pj(f, "u/own/../../r"), 0, EPERM, "..");
	/* folders it makes itself (root's) in her folder are entered... */
	is_dir(plat_open_dir_safe(pj(f, "u/made/deeper"), PLAT_DIR_MKDIR,
	    &err), f, "u/made/deeper");
	/* ...but met again, root's folder in hers is like any other */
	refused(pj(f, "u/made"), 0, EPERM, "made");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_next_data_finds_extents),
		T(test_copy_range_copies),
		T(test_open_read_fifo_does_not_block),
		T(test_open_read_refuses_symlink),
		T(test_open_beneath_stays_inside),
		T(test_xattr_roundtrip),
		T(test_xattr_list_empty),
		T(test_lxattr_on_symlink_itself),
		T(test_rename_noreplace),
		T(test_fs_info_pseudo),
		T(test_is_mount_root),
		T(test_clone_refused_or_done),
		T(test_raise_fd_limit),
		T(test_low_priority_in_child),
		T(test_syncfs),
		T(test_open_dir_safe_walks_and_follows),
		T(test_open_dir_safe_errors_name_the_component),
		T(test_open_dir_safe_mkdir),
		T(test_open_dir_safe_refuses_unsafe_transitions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
