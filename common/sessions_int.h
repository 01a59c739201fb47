/*
 * sessions_int.h: what each session source implements (sessions.h).  Only
 * sessions.c and the implementations include it.
 */
#ifndef VIGIL_SESSIONS_INT_H
#define VIGIL_SESSIONS_INT_H

#include "common/sessions.h"

struct sessions_ops {
	enum vg_sessions_backend backend;
	const char	*name;
	int	(*list)(struct vg_sessions *, struct vg_session **, size_t *,
		    struct vg_err *);
	int	(*flush)(struct vg_sessions *, struct vg_err *);
	int	(*session_uid)(struct vg_sessions *, const char *, uid_t *,
		    struct vg_err *);
	int	(*uid_display)(struct vg_sessions *, uid_t, char *, size_t,
		    struct vg_err *);
	void	(*free)(struct vg_sessions *);
};

/* Every source starts with this; the implementation's own state follows. */
struct vg_sessions {
	const struct sessions_ops *ops;
	int			 monitor_fd;	/* -1: none */
	bool			 checks_claims;
	void			*impl;		/* owned by the implementation */
};

/* Copy src into dst (size dstlen), cut at dstlen - 1; NULL gives "". */
void	sessions_copy(char *dst, size_t dstlen, const char *src);
/* Grow *v (*n used, *cap allocated) by one slot; the new slot (zeroed) or
 * NULL when memory runs out. */
struct vg_session *sessions_grow(struct vg_session **v, size_t *n,
	    size_t *cap);

#endif
