/* err.c: filling struct vg_err. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

void
vg_err_set_at(struct vg_err *err, int code, int sys_errno, const char *func,
    const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->code = code;
	err->sys_errno = sys_errno;
	snprintf(err->func, sizeof err->func, "%s", func);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
}

void
vg_err_sys_at(struct vg_err *err, int e, const char *func, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	if (err == NULL)
		return;
	err->code = (e == ENOSPC || e == EDQUOT) ? VG_ERR_NOSPACE :
	    (e == EACCES || e == EPERM) ? VG_ERR_PERM :
	    (e == ENOENT) ? VG_ERR_NOTFOUND : VG_ERR_SYS;
	err->sys_errno = e;
	snprintf(err->func, sizeof err->func, "%s", func);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	len = strlen(err->msg);
	snprintf(err->msg + len, sizeof err->msg - len, ": %s", strerror(e));
}

void
vg_err_clear(struct vg_err *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof *err);
}

void
vg_err_prefix(struct vg_err *err, const char *fmt, ...)
{
	char pre[512], old[sizeof err->msg];
	va_list ap;
	size_t len;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	len = strlen(pre);
	if (len > sizeof err->msg - 3)
		len = sizeof err->msg - 3;
	memcpy(err->msg, pre, len);
	memcpy(err->msg + len, ": ", 2);
	/* keep as much of the old message as fits */
	memcpy(err->msg + len + 2, old, sizeof err->msg - len - 3);
	err->msg[sizeof err->msg - 1] = '\0';
}

const char *
vg_err_codename(int code)
{
	static const char *names[] = {
		"ok", "system", "parse", "invalid", "not-found", "exists",
		"permission", "database", "archive", "no-space", "aborted",
		"cancelled", "internal",
	};

	if (code < 0 || (size_t)code >= sizeof names / sizeof names[0])
		return "unknown";
	return names[code];
}
