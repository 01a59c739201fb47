/*
 * snapshot.h: the snapshot providers, the part of the platform layer that
 * gives the engine a point in time to read from (DESIGN.md, "Nobody is
 * logged on").  One file per provider under common/linux/: snap_btrfs.c,
 * snap_reflink.c, snap_lvm.c.
 *
 * Who calls what: the root parent (vigild) takes and removes btrfs
 * snapshots and creates and removes the reflink staging folders; the worker,
 * running as the job's owner, only reads from a snapshot and clones into its
 * own staging folder (snap_reflink_clone).  The bookkeeping that makes this
 * crash-safe (a DB row before each create) is scheduler/snapshot.c's.
 *
 * Conventions as in platform.h: 0 on success, -1 with errno set, no logging;
 * strings returned through out-pointers are malloc'd and freed by the caller
 * with free().
 */
#ifndef VIGIL_SNAPSHOT_H
#define VIGIL_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Folder that holds vigil's btrfs snapshots: next to the snapshotted
 * subvolume (or inside it when the subvolume is a mount root).  Owned by
 * root, mode 0755. */
#define SNAP_DIR_NAME		".vigil-snapshots"
/* Reflink staging folders are "<mount root>/.vigil-staging-<name>". */
#define SNAP_STAGING_PREFIX	".vigil-staging-"

/* ---- btrfs ---- */

/*
 * Find the btrfs subvolume that holds path (which must exist).  *subvol gets
 * the absolute, symlink-free path of the subvolume's root, *rel the path of
 * path inside it ("" when path is the root itself).  -1 with errno ENOTSUP
 * when path is not on btrfs; *fstype (may be NULL) then gets the name of the
 * filesystem it is on ("ext4", ...), malloc'd.
 */
int	snap_btrfs_subvol(const char *path, char **subvol, char **rel,
	    char **fstype);

/*
 * The path a snapshot of subvol named name will have (name: one component,
 * no '/', not "." or "..").  Nothing is created, so the caller can record
 * the path before snap_btrfs_create().  *path is malloc'd.
 */
int	snap_btrfs_plan(const char *subvol, const char *name, char **path);

/*
 * Take a read-only snapshot of subvol at path (from snap_btrfs_plan).  The
 * snapshot folder is created (root-owned, 0755) when missing and refused
 * (EPERM) when it is a symlink, not a directory, not owned by the caller, or
 * writable by group or others.  EEXIST when path exists.  Needs CAP_SYS_ADMIN
 * or ownership of subvol.
 */
int	snap_btrfs_create(const char *subvol, const char *path);

/*
 * Delete the snapshot at path.  Refuses (EINVAL) anything that is not a
 * read-only btrfs subvolume, so a stale or tampered record can never delete
 * ordinary files.  ENOENT when it is already gone.  Removes the snapshot
 * folder too when it is left empty.  Needs CAP_SYS_ADMIN unless the
 * filesystem is mounted with user_subvol_rm_allowed.
 */
int	snap_btrfs_delete(const char *path);

/* True when path is a btrfs subvolume root that is read-only. */
bool	snap_btrfs_is_snapshot(const char *path);

/* ---- reflink ---- */

/*
 * The staging folder for a source: "<root of the mount that holds
 * source>/.vigil-staging-<name>" (a clone must stay on one mount).  Nothing
 * is created.  *path is malloc'd.
 */
int	snap_reflink_plan(const char *source, const char *name, char **path);

/*
 * Create the staging folder path (mode 0700, then chown to uid:gid so the
 * worker can clone into it).  A leftover folder of the same name that is a
 * real directory is emptied and reused; a symlink or other file is refused
 * (EEXIST).
 */
int	snap_reflink_staging_create(const char *path, uid_t uid, gid_t gid);

/* Remove a staging folder and everything in it, never following a symlink
 * (the worker owns the folder, so its content is not trusted).  0 when it is
 * already gone; EINVAL when path is a symlink or not a folder. */
int	snap_reflink_staging_remove(const char *path);

/*
 * Check that files can be cloned into the staging folder staging_fd: a small
 * file is written and cloned there (nothing is left).  0 when FICLONE works;
 * -1 with errno EOPNOTSUPP, EINVAL, EXDEV ... when it does not.
 */
int	snap_reflink_probe(int staging_fd);

/*
 * Clone src_fd into an unnamed file in staging_fd (O_TMPFILE, or a name
 * removed at once where O_TMPFILE is missing), so that nothing stays behind
 * even if the process dies.  Returns the clone's fd, opened read-write and
 * positioned at 0; the caller closes it.  -1 with errno (EOPNOTSUPP, EXDEV:
 * no reflinks here).
 */
int	snap_reflink_clone(int staging_fd, int src_fd);

/* ---- LVM ---- */

/*
 * Whether an LVM snapshot could be taken of the volume holding path.  This
 * build has no LVM provider: it always returns -1 with errno ENOTSUP and a
 * reason in why ("LVM snapshots are not supported by this build").
 */
int	snap_lvm_check(const char *path, char *why, size_t whylen);

/* ---- helpers ---- */

/* The name of the filesystem holding path ("btrfs", "xfs", "ext4", ...,
 * "0x<magic>") in buf. */
int	snap_fs_type(const char *path, char *buf, size_t len);

/*
 * A path that names name under dirfd, for libraries that only open by path
 * (SQLite): the directory's current absolute path (from the kernel) plus
 * "/" plus name.  ENAMETOOLONG when it does not fit in len.
 */
int	snap_fd_path(int dirfd, const char *name, char *buf, size_t len);

#endif
