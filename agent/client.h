/*
 * client.h: the client side of vigild's control socket, for the vigil CLI,
 * the session agent and the tray.
 *
 * client_connect() finds the service, connects and says hello:
 *   1. the explicit path (--socket), when given: only that one;
 *   2. else $VIGIL_SOCKET, when set: only that one;
 *   3. else the user-mode socket $XDG_RUNTIME_DIR/vigil/vigil.sock, when a
 *      service listens there;
 *   4. else the system socket /run/vigil/vigil.sock.
 * When none answers, the error names every path tried, why each failed,
 * and how to start the service.  The service at the other end must run as
 * root or as the caller (SO_PEERCRED); any other uid is refused, so that
 * no user can pose as vigild.
 *
 * Requests carry ids the client numbers; a late answer to a call that timed
 * out is recognised and dropped.  Events ({"event": topic, "data": ...})
 * that arrive while a call waits go to the event callback when one is set,
 * else into a bounded queue that client_next_event() drains.
 *
 * Ownership: client_free() closes the connection.  Results, error objects
 * and events handed back are new references the caller decrefs.  Params
 * are borrowed, never stolen.
 */
#ifndef VIGIL_CLIENT_H
#define VIGIL_CLIENT_H

#include <jansson.h>

#include "common/err.h"

#define CLIENT_SYSTEM_SOCKET	"/run/vigil/vigil.sock"
/* Events kept for client_next_event(); beyond it the oldest are dropped. */
#define CLIENT_EVENT_QUEUE	256
/* connect() must be done within this (hello: 15 s, see client.c). */
#define CLIENT_CONNECT_TIMEOUT_MS	5000

struct vg_client;

/* Called for each event while client_call() waits: topic and data are
 * borrowed for the call. */
typedef void	(*client_event_fn)(void *arg, const char *topic, json_t *data);

/* Connect as role "client".  NULL on failure (err says what to do). */
struct vg_client *client_connect(const char *explicit_path, struct vg_err *err);
/* Connect as "client" or "agent". */
struct vg_client *client_connect_role(const char *explicit_path,
	    const char *role, struct vg_err *err);
void	client_free(struct vg_client *c);

/* The socket path connected to (owned by c). */
const char *client_path(const struct vg_client *c);
/* The result of hello ({"version", "server", "connection", "uid",
 * "admin"}), borrowed from c. */
json_t	*client_hello_result(const struct vg_client *c);
/* The socket, to poll for POLLIN while waiting on something else. */
int	client_fd(const struct vg_client *c);

void	client_set_event_cb(struct vg_client *c, client_event_fn fn, void *arg);

/*
 * Call method with params (may be NULL) and wait up to timeout_ms (-1: no
 * limit) for its answer.
 *   0: the service answered ok; *result holds the result.
 *   1: the service answered an error; *errobj holds {"code", "message",
 *      ["detail"]} when errobj is not NULL, and err has its message.
 *  -1: no answer (timeout: VG_ERR_SYS; a signal: VG_ERR_CANCELLED; the
 *      connection broke or the peer spoke nonsense: VG_ERR_SYS/PARSE).
 *      After a break every later call fails too; reconnect.
 */
int	client_call(struct vg_client *c, const char *method, json_t *params,
	    json_t **result, json_t **errobj, int timeout_ms,
	    struct vg_err *err);

/* Subscribe to topics (a NULL-terminated list).  0 or -1. */
int	client_subscribe(struct vg_client *c, const char *const *topics,
	    int timeout_ms, struct vg_err *err);

/*
 * The next event, queued or arriving within timeout_ms (-1: no limit;
 * 0: only what is already there).  Returns the whole event object
 * ({"event": topic, "data": ...}, a new reference), or NULL: on timeout
 * with err->code VG_OK, on a signal with VG_ERR_CANCELLED (so that a SIGINT
 * handler can ask what to do), on a broken connection with VG_ERR_SYS.
 * Answers to calls that already gave up are dropped on the way.
 */
json_t	*client_next_event(struct vg_client *c, int timeout_ms,
	    struct vg_err *err);

#endif
