/*
 * err.h: the error record every vigil function fills when it fails.
 *
 * Functions return 0 on success and -1 on failure (or a pointer / NULL) and,
 * when the caller passes a non-NULL struct vg_err, describe the failure there:
 * a code, the errno if a system call failed, the function that set it, and a
 * message that names the path, job or key involved and, where we can, what to
 * do about it.  A struct vg_err owns no heap memory; it lives on the caller's
 * stack and needs no freeing.
 */
#ifndef VIGIL_ERR_H
#define VIGIL_ERR_H

#include <stddef.h>

enum vg_errcode {
	VG_OK = 0,
	VG_ERR_SYS,		/* a system call failed; sys_errno says which */
	VG_ERR_PARSE,		/* malformed input (jobs file, JSON, schedule) */
	VG_ERR_INVALID,		/* well-formed but not acceptable */
	VG_ERR_NOTFOUND,	/* no such job, run, path */
	VG_ERR_EXISTS,
	VG_ERR_PERM,		/* not allowed for this caller */
	VG_ERR_DB,		/* SQLite said no */
	VG_ERR_ARCHIVE,		/* libarchive said no */
	VG_ERR_NOSPACE,		/* destination or state filesystem is full */
	VG_ERR_ABORT,		/* a safety limit stopped the run (max-delete) */
	VG_ERR_CANCELLED,
	VG_ERR_INTERNAL,
};

struct vg_err {
	int	code;		/* enum vg_errcode */
	int	sys_errno;	/* errno when code == VG_ERR_SYS/NOSPACE, else 0 */
	char	func[48];	/* function that set the error */
	char	msg[1024];
};

void	vg_err_set_at(struct vg_err *err, int code, int sys_errno,
	    const char *func, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

/* Set err (if not NULL) with a formatted message. */
#define vg_err_set(err, code, ...) \
	vg_err_set_at((err), (code), 0, __func__, __VA_ARGS__)
/* Set err from errno: the message gets ": strerror(errno)" appended and
 * ENOSPC/EDQUOT map to VG_ERR_NOSPACE. */
#define vg_err_sys(err, ...) \
	vg_err_sys_at((err), errno, __func__, __VA_ARGS__)
void	vg_err_sys_at(struct vg_err *err, int e, const char *func,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void	vg_err_clear(struct vg_err *err);
/* Prefix an existing message with more context ("job documents: ..."). */
void	vg_err_prefix(struct vg_err *err, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
const char *vg_err_codename(int code);

#endif
