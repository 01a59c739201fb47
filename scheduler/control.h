/*
 * control.h: the requests clients make of vigil, one handler per method.
 *
 * A request is a JSON object {"id": N, "method": "...", "params": {...}};
 * the answer is {"id": N, "ok": true, "result": ...} or
 * {"id": N, "ok": false, "error": {"code": "...", "message": "..."}}.
 * docs/protocol.md lists every method with an example.
 *
 * The caller's identity (struct control_peer) comes from the kernel
 * (SO_PEERCRED) or, in the CLI's local mode, from the process itself; a uid
 * inside a message means nothing.  Every handler authorises: a user sees and
 * runs only their own jobs; root and members of the admin group see all.
 *
 * Ownership: control_handle() returns a new reference the caller decrefs;
 * it never steals the request.
 */
#ifndef VIGIL_CONTROL_H
#define VIGIL_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "db/store.h"
#include "scheduler/engine.h"

struct control_peer {
	uid_t	uid;
	gid_t	gid;
	pid_t	pid;
	bool	admin;		/* root or member of the vigil group */
};

struct control_ctx {
	struct vg_store		*store;
	const char		*state_dir;
	/* In-process callers (the CLI's local mode) may watch a run. */
	engine_progress_fn	 progress;
	void			*progress_arg;
	volatile sig_atomic_t	*cancel;
};

json_t	*control_handle(struct control_ctx *ctx, const struct control_peer *peer,
	    json_t *request);

/*
 * Find a job the peer may act on: "NAME" is the peer's own job; an admin
 * may also name "OWNER:NAME", or a NAME only one owner has.  Fills *row
 * (free with job_row_free()).
 */
int	control_find_job(struct control_ctx *ctx, const struct control_peer *peer,
	    const char *spec, struct vg_job_row *row, struct vg_err *err);
bool	control_may_see(const struct control_peer *peer, uid_t owner);
/* Answers: new references. */
json_t	*control_ok(json_t *id, json_t *result);
json_t	*control_error(json_t *id, int code, const char *msg);
/* A job as jobs.list shows it (full: with its definition). */
json_t	*control_job_json(struct control_ctx *ctx, const struct vg_job_row *row,
	    bool full);

/* Shared JSON shapes (history items, the log of a run). */
json_t	*control_run_json(const struct vg_run_row *row);
char	*control_iso_time(int64_t unix_ms);	/* malloc'd, UTC */

#endif
