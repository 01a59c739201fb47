/*
 * sessions.c: the session sources' shared part: dispatch to the
 * implementation, names of classes, types and states, small helpers.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/sessions.h"
#include "common/sessions_int.h"

static const char *const sessions_class_names[] = {
	[VG_SESSION_CLASS_USER] = "user",
	[VG_SESSION_CLASS_GREETER] = "greeter",
	[VG_SESSION_CLASS_LOCK_SCREEN] = "lock-screen",
	[VG_SESSION_CLASS_BACKGROUND] = "background",
	[VG_SESSION_CLASS_MANAGER] = "manager",
	[VG_SESSION_CLASS_OTHER] = "other",
};

static const char *const sessions_type_names[] = {
	[VG_SESSION_TYPE_TTY] = "tty",
	[VG_SESSION_TYPE_X11] = "x11",
	[VG_SESSION_TYPE_WAYLAND] = "wayland",
	[VG_SESSION_TYPE_MIR] = "mir",
	[VG_SESSION_TYPE_UNSPECIFIED] = "unspecified",
};

static const char *const sessions_state_names[] = {
	[VG_SESSION_ACTIVE] = "active",
	[VG_SESSION_ONLINE] = "online",
	[VG_SESSION_CLOSING] = "closing",
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

void
sessions_free(struct vg_sessions *s)
{
	if (s == NULL)
		return;
	s->ops->free(s);
	if (s->monitor_fd != -1)
		close(s->monitor_fd);
	free(s);
}

enum vg_sessions_backend
sessions_backend(const struct vg_sessions *s)
{
	return s->ops->backend;
}

const char *
sessions_backend_name(const struct vg_sessions *s)
{
	return s->ops->name;
}

bool
sessions_checks_claims(const struct vg_sessions *s)
{
	return s->checks_claims;
}

int
sessions_list(struct vg_sessions *s, struct vg_session **out, size_t *n,
    struct vg_err *err)
{
	*out = NULL;
	*n = 0;
	return s->ops->list(s, out, n, err);
}

int
sessions_monitor_fd(const struct vg_sessions *s)
{
	return s->monitor_fd;
}

int
sessions_monitor_flush(struct vg_sessions *s, struct vg_err *err)
{
	if (s->monitor_fd == -1)
		return 0;
	return s->ops->flush(s, err);
}

int
sessions_session_uid(struct vg_sessions *s, const char *id, uid_t *uid,
    struct vg_err *err)
{
	if (id == NULL || !sessions_valid_id(id)) {
		vg_err_set(err, VG_ERR_NOTFOUND, "\"%s\" is not a session id",
		    id == NULL ? "(null)" : "(invalid)");
		return -1;
	}
	return s->ops->session_uid(s, id, uid, err);
}

int
sessions_uid_display(struct vg_sessions *s, uid_t uid, char *id,
    size_t idlen, struct vg_err *err)
{
	if (idlen > 0)
		id[0] = '\0';
	return s->ops->uid_display(s, uid, id, idlen, err);
}

bool
sessions_is_login(const struct vg_session *ss)
{
	if (ss->state == VG_SESSION_CLOSING)
		return false;
	return ss->klass == VG_SESSION_CLASS_USER ||
	    ss->klass == VG_SESSION_CLASS_OTHER;
}

const char *
sessions_class_name(enum vg_session_class c)
{
	if ((size_t)c >= NELEM(sessions_class_names))
		return "unknown";
	return sessions_class_names[c];
}

const char *
sessions_type_name(enum vg_session_type t)
{
	if ((size_t)t >= NELEM(sessions_type_names))
		return "unknown";
	return sessions_type_names[t];
}

const char *
sessions_state_name(enum vg_session_state st)
{
	if ((size_t)st >= NELEM(sessions_state_names))
		return "unknown";
	return sessions_state_names[st];
}

enum vg_session_class
sessions_class_parse(const char *s)
{
	if (s == NULL)
		return VG_SESSION_CLASS_OTHER;
	/* Newer logind adds "user-early", "user-incomplete",
	 * "manager-early", "background-light": the same kinds. */
	if (strncmp(s, "user", 4) == 0 && (s[4] == '\0' || s[4] == '-'))
		return VG_SESSION_CLASS_USER;
	if (strcmp(s, "greeter") == 0)
		return VG_SESSION_CLASS_GREETER;
	if (strcmp(s, "lock-screen") == 0)
		return VG_SESSION_CLASS_LOCK_SCREEN;
	if (strncmp(s, "background", 10) == 0 &&
	    (s[10] == '\0' || s[10] == '-'))
		return VG_SESSION_CLASS_BACKGROUND;
	if (strncmp(s, "manager", 7) == 0 && (s[7] == '\0' || s[7] == '-'))
		return VG_SESSION_CLASS_MANAGER;
	return VG_SESSION_CLASS_OTHER;
}

enum vg_session_type
sessions_type_parse(const char *s)
{
	size_t i;

	if (s == NULL)
		return VG_SESSION_TYPE_UNSPECIFIED;
	for (i = 0; i < NELEM(sessions_type_names); i++)
		if (strcmp(s, sessions_type_names[i]) == 0)
			return (enum vg_session_type)i;
	return VG_SESSION_TYPE_UNSPECIFIED;
}

enum vg_session_state
sessions_state_parse(const char *s)
{
	if (s != NULL && strcmp(s, "active") == 0)
		return VG_SESSION_ACTIVE;
	if (s != NULL && strcmp(s, "closing") == 0)
		return VG_SESSION_CLOSING;
	return VG_SESSION_ONLINE;
}

void
sessions_copy(char *dst, size_t dstlen, const char *src)
{
	size_t len;

	if (dstlen == 0)
		return;
	if (src == NULL)
		src = "";
	len = strnlen(src, dstlen - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

struct vg_session *
sessions_grow(struct vg_session **v, size_t *n, size_t *cap)
{
	struct vg_session *nv;
	size_t ncap;

	if (*n == *cap) {
		ncap = *cap == 0 ? 8 : *cap * 2;
		if ((nv = reallocarray(*v, ncap, sizeof *nv)) == NULL)
			return NULL;
		*v = nv;
		*cap = ncap;
	}
	memset(&(*v)[*n], 0, sizeof (*v)[*n]);
	return &(*v)[(*n)++];
}

bool
sessions_valid_id(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++) {
		if (i >= VG_SESSION_ID_MAX - 1)
			return false;
		if (!((id[i] >= 'a' && id[i] <= 'z') ||
		    (id[i] >= 'A' && id[i] <= 'Z') ||
		    (id[i] >= '0' && id[i] <= '9') || id[i] == '.' ||
		    id[i] == '_' || id[i] == ':' || id[i] == '/' ||
		    id[i] == '-'))
			return false;
	}
	/* Never anything that reads as a path outside its folder. */
	return i > 0 && id[0] != '.' && id[0] != '/' &&
	    strstr(id, "..") == NULL;
}
