/*
 * server.h: vigild's control socket: the listening Unix socket, its
 * connections, the hello handshake, limits, and events to subscribers.
 *
 * The server does no blocking I/O and owns no thread.  It keeps its own
 * epoll set (the socket, every connection, and a timerfd armed at the
 * earliest connection deadline) and shows the service one file descriptor,
 * server_fd(): add it to the service's epoll loop for EPOLLIN and call
 * server_process() whenever it is readable.  Nothing needs polling: slow
 * clients are dropped when the timerfd fires.
 *
 *	srv = server_new(path, &opts, &err);
 *	epoll_ctl(ep, EPOLL_CTL_ADD, server_fd(srv), {EPOLLIN, ...});
 *	... when it is ready: server_process(srv);
 *
 * Every connection is identified by the kernel (SO_PEERCRED uid, gid, pid,
 * taken at accept) and by a connection id: a number never reused while the
 * server lives, so a request kept for a later answer (server_reply()) either
 * reaches its connection or is told that the connection is gone.
 *
 * Admin: uid 0, or a peer whose gid or supplementary groups (SO_PEERGROUPS,
 * the kernel's record of the connecting process; the user database through
 * getgrouplist() only where the kernel cannot say) hold the admin group
 * ("vigil").  As with file access, a user added to the group is an admin
 * from their next login on.
 *
 * Limits (struct server_opts): connections per uid and in all, the hello
 * deadline, the time a started frame may take to arrive, the time queued
 * output may sit unread, the bytes queued per connection, and the requests
 * one connection may leave waiting for a later answer.  A peer that breaks
 * a limit or sends a bad frame is told why when possible, logged with its
 * uid and pid, and dropped; the service goes on.
 *
 * Ownership: server_free() closes everything.  The dispatch callback
 * borrows the request; the answer it returns is a new reference the server
 * decrefs.  server_reply(), server_send_event() and server_broadcast() do
 * not steal their JSON.
 */
#ifndef VIGIL_SERVER_H
#define VIGIL_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "scheduler/control.h"

struct vg_server;

enum server_role {
	SERVER_ROLE_CLIENT = 1,		/* the CLI, the tray */
	SERVER_ROLE_AGENT,		/* a session agent */
};

/* One request that passed the handshake and the shape checks. */
struct server_req {
	uint64_t			 conn;	/* for server_reply() */
	const struct control_peer	*peer;
	enum server_role		 role;
	const char			*method;
	json_t				*id;	/* borrowed; may be null */
	json_t				*msg;	/* the whole request, borrowed */
};

/*
 * Answer req: return the answer (a new reference; the server sets its "id"
 * to the request's, sends it and decrefs it), or NULL to answer later with
 * server_reply(srv, req->conn, req->id, answer).  A deferred request must be
 * answered once, or forgotten when closed() reports its connection gone.
 */
typedef json_t	*(*server_dispatch_fn)(void *arg, struct vg_server *srv,
		    const struct server_req *req);
/* A connection went away (after hello only). */
typedef void	 (*server_closed_fn)(void *arg, struct vg_server *srv,
		    uint64_t conn, const struct control_peer *peer,
		    enum server_role role);

struct server_opts {
	mode_t			 mode;		/* socket mode: 0666 system
						   (auth is SO_PEERCRED),
						   0600 user mode */
	bool			 make_parent;	/* create a missing parent
						   folder, 0755 */
	const char		*admin_group;	/* "vigil"; NULL: only root */
	int			 max_per_uid;	/* 32 */
	int			 max_conns;	/* 1024 */
	int			 max_deferred;	/* 64 requests waiting per
						   connection */
	int			 hello_timeout_ms;	/* 5000 */
	int			 frame_timeout_ms;	/* 10000 */
	int			 write_timeout_ms;	/* 60000 */
	size_t			 out_max;	/* bytes queued per connection,
						   2 MiB */
	server_dispatch_fn	 dispatch;	/* required */
	server_closed_fn	 closed;	/* may be NULL */
	void			*arg;
};

/* Event topics a connection may subscribe to. */
#define SERVER_TOPICS	"progress, run-started, run-finished, job-changed, " \
			"alert, session"
/* server_broadcast() owner meaning "every subscriber". */
#define SERVER_ANY_UID	((uid_t)-1)

/* Fill opts with the defaults above (mode 0666, no dispatcher). */
void	server_opts_init(struct server_opts *opts);

/*
 * Create the socket at path and listen.  The parent folder must exist
 * (or is created 0755 with make_parent).  A symlink or any non-socket at
 * path is refused; a socket nobody listens on (a stale one) is replaced;
 * a socket someone listens on is an error (another vigild runs).  NULL on
 * failure with err saying which path and what to do.
 */
struct vg_server *server_new(const char *path, const struct server_opts *opts,
	    struct vg_err *err);
/* Close every connection and the socket, and unlink the socket. */
void	server_free(struct vg_server *srv);

/* The one fd to watch for EPOLLIN (an epoll fd; close-on-exec). */
int	server_fd(const struct vg_server *srv);
/*
 * Accept, read, dispatch, write and expire without blocking.  Returns 0;
 * -1 only when the server itself fails (its epoll fd), never for a peer.
 */
int	server_process(struct vg_server *srv);
/* Milliseconds to the next connection deadline, -1 if none.  The timerfd
 * behind server_fd() already wakes the loop then; this is informational. */
int	server_next_timeout_ms(const struct vg_server *srv);

/*
 * Answer a deferred request.  answer is copied and its "id" set to id.
 * -1 with VG_ERR_NOTFOUND when the connection is gone, VG_ERR_INVALID when
 * it could not take the answer (and was dropped).
 */
int	server_reply(struct vg_server *srv, uint64_t conn, json_t *id,
	    json_t *answer, struct vg_err *err);
/* Push {"event": topic, "data": data} to one connection, subscribed or
 * not (quiesce and resume to an agent).  Errors as server_reply(). */
int	server_send_event(struct vg_server *srv, uint64_t conn,
	    const char *topic, json_t *data, struct vg_err *err);
/*
 * Push {"event": topic, "data": data} to every connection subscribed to
 * topic that may see owner's business: the owner itself or an admin
 * (SERVER_ANY_UID: every subscriber).  A subscriber whose queue is full is
 * dropped.  Returns how many connections it was queued for.
 */
int	server_broadcast(struct vg_server *srv, const char *topic,
	    json_t *data, uid_t owner);

/* The peer of a live connection, or NULL when it is gone. */
const struct control_peer *server_peer(const struct vg_server *srv,
	    uint64_t conn);
/* Live connections (after accept, hello or not). */
int	server_conn_count(const struct vg_server *srv);

/*
 * Check the shape of a message: an object with a non-empty string "method",
 * an "id" that is absent, null, an integer or a string, and "params", when
 * present, an object.  Sets *method and *id (borrowed; *id NULL when
 * absent).  Requests other than hello must also carry a non-null id; the
 * server checks that itself.  Used by the server and its fuzz target.
 */
int	server_check_request(json_t *msg, const char **method, json_t **id,
	    struct vg_err *err);

#endif
