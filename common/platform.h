/*
 * platform.h: the operating-system interface of vigil.  Everything that is
 * specific to one OS lives behind these plat_* calls, implemented once per OS
 * (common/linux/ for Linux).  Nothing outside those folders uses
 * #ifdef __linux__.
 *
 * Conventions: calls return 0 (or a count) on success and -1 with errno set
 * on failure, like the system calls they wrap, unless said otherwise.  They
 * never log.  Memory returned through an out-pointer is malloc'd and the
 * caller frees it with free().
 *
 * This part covers the file-system calls the copy engine needs.  Sessions,
 * credentials, snapshots, timers and service lifecycle join it as their
 * issues land.
 */
#ifndef VIGIL_PLATFORM_H
#define VIGIL_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- copying file content ---- */

/*
 * Make dst_fd (empty, opened for writing) share src_fd's content (a reflink:
 * FICLONE on btrfs and XFS).  0 on success: dst then has src's size and
 * content and no data was copied.  -1 with errno (EOPNOTSUPP, EXDEV, EINVAL,
 * ...) when the filesystems cannot clone; dst is left empty.
 */
int	plat_clone_file(int dst_fd, int src_fd);

/*
 * Copy len bytes from src_fd at *src_off to dst_fd at *dst_off inside the
 * kernel (copy_file_range), advancing both offsets.  Returns the bytes
 * copied (0 at end of file) or -1 with errno.  errno EXDEV, EINVAL, ENOSYS,
 * EOPNOTSUPP or EBADF means "not possible here": fall back to read/write.
 */
ssize_t	plat_copy_range(int src_fd, off_t *src_off, int dst_fd, off_t *dst_off,
	    size_t len);

/*
 * Sparse files.  plat_next_data() sets *data to the first data byte at or
 * after off and *hole to the end of that data run (the next hole, or the
 * file size).  Returns 1 when a data run was found, 0 when only a hole
 * remains up to the end of the file, -1 with errno on error.  When the
 * filesystem cannot report holes it reports the whole file as data, which
 * is always correct.
 */
int	plat_next_data(int fd, off_t off, off_t size, off_t *data, off_t *hole);

/* Drop the cached pages of fd (after it is durable) so that a re-read comes
 * from the device.  Advisory: errors are ignored. */
void	plat_drop_cache(int fd);

/* ---- durability ---- */

/* Flush every dirty file of the filesystem that holds fd (syncfs). */
int	plat_syncfs(int fd);

/*
 * Start writing fd's dirty pages to the device and return without waiting
 * (sync_file_range with SYNC_FILE_RANGE_WRITE).  Durability still comes
 * from plat_syncfs() or fsync(); this only lets the device work while the
 * caller goes on, so that the flush has less left to wait for.  Advisory:
 * errors are ignored.
 */
void	plat_start_writeback(int fd);

/*
 * Hold the file that name (under dirfd, not followed if a symlink) is now,
 * so that when a rename or unlink removes its last name its blocks are
 * freed only when the returned fd is closed, not inside that call.  Where
 * freeing is slow (a filesystem that discards freed blocks at once) the
 * caller closes the fd off its critical path.  Returns an fd (close it
 * with close()) or -1 with errno (ENOENT: nothing there).
 */
int	plat_hold_file(int dirfd, const char *name);

/* ---- opening files safely ---- */

/*
 * Open name under dirfd for reading with O_RDONLY|O_NOFOLLOW|O_NONBLOCK|
 * O_CLOEXEC|O_NOCTTY, plus O_NOATIME where the caller may use it.  Never follows a
 * symlink in name, never blocks on a FIFO, never becomes a controlling
 * terminal.  The caller must still fstat() the result and check the type.
 */
int	plat_open_read(int dirfd, const char *name);

/*
 * Open path (relative, may have several components) beneath dirfd, never
 * leaving it and never following symlinks (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS, or a component-by-component openat walk where openat2
 * is missing).  flags as for openat; O_CLOEXEC is added.
 */
int	plat_open_beneath(int dirfd, const char *path, int flags, mode_t mode);

/*
 * Open the folder at path the way root must open a path that users may
 * have a hand in (after systemd's chase() with CHASE_SAFE): from "/", one
 * component at a time with openat(O_PATH|O_NOFOLLOW), following symlinks
 * itself (at most 40), "." and ".." handled as it goes.  A relative path is
 * taken from the working folder (getcwd, then resolved the same way).
 *
 * An unsafe transition is refused: going from a folder whose owner is not
 * root into a folder, or through a symlink, that another uid owns (and from
 * such a symlink to what it points at, when their owners differ).  So a
 * user can redirect the walk only to what she owns herself, never into
 * root's or another user's folders; from a root-owned folder anything goes.
 * A folder the call made itself (PLAT_DIR_MKDIR) is entered even though it
 * is owned by the caller.
 *
 * Returns an O_RDONLY|O_DIRECTORY|O_CLOEXEC fd of the final folder, or -1
 * with errno (ENOENT: a component is missing and PLAT_DIR_MKDIR was not
 * given; ENOTDIR; ELOOP: too many symlinks; EPERM: an unsafe transition;
 * EINVAL: an empty path) and err (if not NULL) naming the path and the
 * component.
 */
struct vg_err;
#define PLAT_DIR_MKDIR		0x1	/* make missing folders, 0777 & ~umask */
#define PLAT_DIR_PRIVATE	0x2	/* with PLAT_DIR_MKDIR: make them 0700 */
int	plat_open_dir_safe(const char *path, int flags, struct vg_err *err);

/* ---- extended attributes (ACLs are the system.posix_acl_* ones) ---- */

/*
 * List the xattr names of fd.  *names gets a malloc'd buffer of
 * NUL-terminated names back to back (*len bytes in all; NULL and 0 when the
 * file has none).  -1 with errno ENOTSUP when the filesystem has no xattrs.
 */
int	plat_xattr_list(int fd, char **names, size_t *len);
/* Read one xattr's value into a malloc'd *value (*len bytes). */
int	plat_xattr_get(int fd, const char *name, void **value, size_t *len);
int	plat_xattr_set(int fd, const char *name, const void *value, size_t len);
/*
 * The same for the entry name under dirfd itself, never following it: the
 * xattrs of a symlink (Linux allows only trusted.* and security.* there,
 * and setting them needs privilege; user.* is refused with EPERM).  -1 with
 * errno ENOTSUP where the OS offers no way to reach a symlink's xattrs.
 */
int	plat_lxattr_list(int dirfd, const char *name, char **names,
	    size_t *len);
int	plat_lxattr_get(int dirfd, const char *name, const char *xname,
	    void **value, size_t *len);
int	plat_lxattr_set(int dirfd, const char *name, const char *xname,
	    const void *value, size_t len);
/*
 * True when a file made in folder fd gets its permission bits from the
 * folder (an inherited default ACL) rather than from the mode asked for
 * less the umask; true too when it cannot be told.
 */
bool	plat_dir_inherits_mode(int fd);

/* ---- renaming ---- */

/*
 * Rename like renameat(), but fail with EEXIST instead of replacing an
 * existing newname (RENAME_NOREPLACE; where the filesystem lacks it, a
 * check then a rename, which a concurrent writer could race).
 */
int	plat_rename_noreplace(int olddirfd, const char *oldname, int newdirfd,
	    const char *newname);

/* ---- what a directory is ---- */

struct plat_fsinfo {
	bool	 pseudo;	/* never walk it (proc, sysfs, devtmpfs, ...,
				   or a fuse mount another uid owns) */
	char	 type[32];	/* short name: "proc", "fuse", "ext4", ... or
				   "0x<magic>" */
};
/* Describe the filesystem that holds the directory dirfd.  uid is the user
 * the run reads as: fuse mounts it does not own count as pseudo. */
int	plat_fs_info(int dirfd, uid_t uid, struct plat_fsinfo *out);

/*
 * Set *is_root true when name under dirfd (or dirfd itself when name is "")
 * is the root of a mounted filesystem (statx STATX_ATTR_MOUNT_ROOT, or a
 * device/inode comparison with the parent).  Does not follow a symlink in
 * name.
 */
int	plat_is_mount_root(int dirfd, const char *name, bool *is_root);

/* ---- process ---- */

/* Idle I/O scheduling class and nice 10 for the calling process.  On
 * failure of either part, -1 with errno (the other part may be applied). */
int	plat_set_low_priority(void);

/* Raise the soft limit on open files to the hard limit (deep trees keep one
 * directory open per level).  Returns the new soft limit, or -1. */
long	plat_raise_fd_limit(void);

/* ---- workers (common/linux/process.c) ---- */

/* The calling process gets SIGKILL when its parent dies, so a worker never
 * outlives the service that would record its run. */
int	plat_die_with_parent(void);

/* Close every descriptor >= lowfd. */
void	plat_close_fds_from(int lowfd);

/*
 * Become uid for good: supplementary groups of that user (initgroups), its
 * primary gid, then the uid, real, effective and saved.  Checks afterwards
 * that root cannot be regained.  A no-op when uid is the current uid and we
 * are not root.  -1 with errno on failure (the caller must exit).
 */
int	plat_drop_to_user(uid_t uid);

/*
 * Ask logind for a "sleep" inhibitor lock (mode block) while a run is
 * active.  Returns the lock's fd (close it to release) or -1 with errno when
 * logind is not reachable (containers, tests).
 */
int	plat_inhibit_sleep(const char *who, const char *why);

/*
 * Call fn for every entry of the folder open at fd (from its start; "." and
 * ".." skipped) with its name (NUL-terminated, valid during the call), the
 * name's length and its DT_* type.  One buffer, no allocation, no second
 * descriptor.  fn returns 0, or -1 to stop (errno kept).  Returns 0, or -1
 * with errno.
 */
typedef int (*plat_dir_fn)(const char *name, size_t len, unsigned char type,
	    void *arg);
int	plat_dir_each(int fd, plat_dir_fn fn, void *arg);

#endif
