/*
 * sessions_fake.c: a session source that unit tests fill by hand
 * (sessions.h).  Its monitor fd is an eventfd: every change makes it
 * readable, as a login or logout does for the real sources.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/err.h"
#include "common/sessions.h"
#include "common/sessions_int.h"

struct sessions_fake_display {
	uid_t	uid;
	char	id[VG_SESSION_ID_MAX];
};

struct sessions_fake {
	struct vg_session		*v;
	size_t				 n, cap;
	struct sessions_fake_display	*displays;
	size_t				 ndisplays;
	bool				 fail_next;
};

static void
sessions_fake_poke(struct vg_sessions *s)
{
	uint64_t one = 1;

	if (s->monitor_fd != -1)
		(void)write(s->monitor_fd, &one, sizeof one);
}

static int
sessions_fake_list(struct vg_sessions *s, struct vg_session **out, size_t *n,
    struct vg_err *err)
{
	struct sessions_fake *f = s->impl;

	if (f->fail_next) {
		f->fail_next = false;
		vg_err_set(err, VG_ERR_SYS, "fake session source: listing "
		    "failed as the test asked");
		return -1;
	}
	if (f->n == 0)
		return 0;
	if ((*out = calloc(f->n, sizeof **out)) == NULL) {
		vg_err_sys(err, "listing sessions");
		return -1;
	}
	memcpy(*out, f->v, f->n * sizeof **out);
	*n = f->n;
	return 0;
}

static int
sessions_fake_flush(struct vg_sessions *s, struct vg_err *err)
{
	uint64_t v;

	(void)err;
	if (read(s->monitor_fd, &v, sizeof v) == -1 && errno != EAGAIN) {
		vg_err_sys(err, "reading the fake session monitor");
		return -1;
	}
	return 1;
}

static int
sessions_fake_session_uid(struct vg_sessions *s, const char *id, uid_t *uid,
    struct vg_err *err)
{
	struct sessions_fake *f = s->impl;
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->v[i].id, id) == 0) {
			*uid = f->v[i].uid;
			return 0;
		}
	vg_err_set(err, VG_ERR_NOTFOUND, "no session %s", id);
	return -1;
}

static int
sessions_fake_uid_display(struct vg_sessions *s, uid_t uid, char *id,
    size_t idlen, struct vg_err *err)
{
	struct sessions_fake *f = s->impl;
	size_t i;

	for (i = 0; i < f->ndisplays; i++)
		if (f->displays[i].uid == uid) {
			sessions_copy(id, idlen, f->displays[i].id);
			return 0;
		}
	vg_err_set(err, VG_ERR_NOTFOUND, "uid %lu has no display session",
	    (unsigned long)uid);
	return -1;
}

static void
sessions_fake_free_impl(struct vg_sessions *s)
{
	struct sessions_fake *f = s->impl;

	if (f == NULL)
		return;
	free(f->v);
	free(f->displays);
	free(f);
}

static const struct sessions_ops sessions_fake_ops = {
	.backend = VG_SESSIONS_FAKE,
	.name = "fake",
	.list = sessions_fake_list,
	.flush = sessions_fake_flush,
	.session_uid = sessions_fake_session_uid,
	.uid_display = sessions_fake_uid_display,
	.free = sessions_fake_free_impl,
};

struct vg_sessions *
sessions_fake_new(void)
{
	struct vg_sessions *s;

	if ((s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->ops = &sessions_fake_ops;
	s->checks_claims = true;
	s->monitor_fd = -1;
	if ((s->impl = calloc(1, sizeof(struct sessions_fake))) == NULL ||
	    (s->monitor_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		sessions_free(s);
		return NULL;
	}
	return s;
}

int
sessions_fake_add(struct vg_sessions *s, const struct vg_session *ss)
{
	struct sessions_fake *f = s->impl;
	struct vg_session *slot;
	size_t i;

	if (s->ops != &sessions_fake_ops)
		return -1;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->v[i].id, ss->id) == 0) {
			f->v[i] = *ss;
			sessions_fake_poke(s);
			return 0;
		}
	if ((slot = sessions_grow(&f->v, &f->n, &f->cap)) == NULL)
		return -1;
	*slot = *ss;
	sessions_fake_poke(s);
	return 0;
}

int
sessions_fake_remove(struct vg_sessions *s, const char *id)
{
	struct sessions_fake *f = s->impl;
	size_t i;

	if (s->ops != &sessions_fake_ops)
		return -1;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->v[i].id, id) == 0) {
			memmove(&f->v[i], &f->v[i + 1],
			    (f->n - i - 1) * sizeof f->v[0]);
			f->n--;
			sessions_fake_poke(s);
			return 0;
		}
	return -1;
}

int
sessions_fake_set_display(struct vg_sessions *s, uid_t uid, const char *id)
{
	struct sessions_fake *f = s->impl;
	struct sessions_fake_display *nd;
	size_t i;

	if (s->ops != &sessions_fake_ops)
		return -1;

	for (i = 0; i < f->ndisplays; i++)
		if (f->displays[i].uid == uid) {
			if (id == NULL) {
				f->displays[i] = f->displays[--f->ndisplays];
				return 0;
			}
			sessions_copy(f->displays[i].id,
			    sizeof f->displays[i].id, id);
			return 0;
		}
	if (id == NULL)
		return 0;
	if ((nd = reallocarray(f->displays, f->ndisplays + 1,
	    sizeof *nd)) == NULL)
		return -1;
	f->displays = nd;
	nd[f->ndisplays].uid = uid;
	sessions_copy(nd[f->ndisplays].id, sizeof nd[f->ndisplays].id, id);
	f->ndisplays++;
	return 0;
}

void
sessions_fake_set_checks_claims(struct vg_sessions *s, bool on)
{
	if (s->ops == &sessions_fake_ops)
		s->checks_claims = on;
}

void
sessions_fake_fail_next_list(struct vg_sessions *s)
{
	struct sessions_fake *f = s->impl;

	if (s->ops == &sessions_fake_ops)
		f->fail_next = true;
}
