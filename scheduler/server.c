/* server.c: vigild's control socket (see server.h). */
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/ipc.h"
#include "common/log.h"
#include "scheduler/server.h"

#define SERVER_BACKLOG		128
#define SERVER_EVENTS		64	/* epoll events per server_process() */
#define SERVER_ACCEPT_BURST	64	/* accepts per wake-up */
#define SERVER_READ_BURST	32	/* messages per connection per wake-up */
#define SERVER_LINGER_MS	1000	/* to deliver a last error, then close */
#define SERVER_ACCEPT_PAUSE_MS	1000	/* out of file descriptors */

static const char *const server_topic_names[] = {
	"progress", "run-started", "run-finished", "job-changed", "alert",
	"session",
};
#define SERVER_NTOPICS \
	(sizeof server_topic_names / sizeof server_topic_names[0])

enum server_drop_why {
	SERVER_DROP_QUIET = 0,	/* the peer left */
	SERVER_DROP_WARN,	/* the peer broke a rule: log it */
};

struct server_conn {
	TAILQ_ENTRY(server_conn) entry;
	uint64_t		 id;
	struct ipc_conn		 io;
	struct control_peer	 peer;
	enum server_role	 role;
	uint32_t		 topics;	/* bit per server_topic_names */
	int			 deferred;	/* requests awaiting server_reply */
	uint32_t		 events;	/* epoll mask registered */
	int			 hello;		/* handshake done */
	int			 closing;	/* send what is queued, then close */
	int			 dead;		/* fd closed; freed by the reaper */
	int64_t			 hello_by;	/* deadline for hello, 0 after */
	int64_t			 frame_since;	/* a frame began arriving */
	int64_t			 write_since;	/* output pending, no progress */
	int64_t			 close_by;	/* closing: deadline */
};
TAILQ_HEAD(server_conns, server_conn);

struct vg_server {
	struct server_opts	 opts;
	char			*path;
	dev_t			 sock_dev;	/* the socket we bound, so that */
	ino_t			 sock_ino;	/* free() unlinks only ours */
	int			 listen_fd;
	int			 ep;		/* the fd the service watches */
	int			 timer_fd;
	int64_t			 timer_at;	/* armed deadline, 0 disarmed */
	int64_t			 accept_resume;	/* paused accepting until */
	gid_t			 admin_gid;
	int			 have_admin_gid;
	uint64_t		 next_id;
	int			 nconns;	/* live (not dead) */
	int			 reap;		/* some connection is dead */
	int64_t			 refused_logged;	/* rate limit of the */
	unsigned		 refused_quiet;		/* refusal log */
	struct server_conns	 conns;
};

static int64_t
server_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
server_opts_init(struct server_opts *o)
{
	memset(o, 0, sizeof *o);
	o->mode = 0666;
	o->admin_group = "vigil";
	o->max_per_uid = 32;
	o->max_conns = 1024;
	o->max_deferred = 64;
	o->hello_timeout_ms = 5000;
	o->frame_timeout_ms = 10000;
	o->write_timeout_ms = 60000;
	o->out_max = 2 * 1024 * 1024;
}

/* ---- shape of messages ---- */

int
server_check_request(json_t *msg, const char **method, json_t **id,
    struct vg_err *err)
{
	json_t *m, *i, *p;

	*method = NULL;
	*id = NULL;
	if (!json_is_object(msg)) {
		vg_err_set(err, VG_ERR_PARSE, "a message must be a JSON "
		    "object");
		return -1;
	}
	i = json_object_get(msg, "id");
	if (i != NULL && !json_is_null(i) && !json_is_integer(i) &&
	    !json_is_string(i)) {
		vg_err_set(err, VG_ERR_PARSE, "\"id\" must be an integer or "
		    "a string");
		return -1;
	}
	*id = i;
	m = json_object_get(msg, "method");
	if (!json_is_string(m) || json_string_length(m) == 0) {
		vg_err_set(err, VG_ERR_PARSE, "a request needs \"method\", "
		    "a string");
		return -1;
	}
	if (strlen(json_string_value(m)) != json_string_length(m)) {
		vg_err_set(err, VG_ERR_PARSE, "\"method\" holds a NUL byte");
		return -1;
	}
	p = json_object_get(msg, "params");
	if (p != NULL && !json_is_object(p)) {
		vg_err_set(err, VG_ERR_PARSE, "\"params\" must be an object");
		return -1;
	}
	*method = json_string_value(m);
	return 0;
}

static json_t *
server_error_json(json_t *id, int code, const char *msg)
{
	json_t *o, *e;

	o = json_object();
	json_object_set(o, "id", id != NULL ? id : json_null());
	json_object_set_new(o, "ok", json_false());
	e = json_object();
	json_object_set_new(e, "code", json_string(vg_err_codename(code)));
	json_object_set_new(e, "message", json_string(msg));
	json_object_set_new(o, "error", e);
	return o;
}

static json_t *
server_ok_json(json_t *id, json_t *result)
{
	json_t *o;

	o = json_object();
	json_object_set(o, "id", id != NULL ? id : json_null());
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "result", result);
	return o;
}

/* ---- connections ---- */

static void
server_log_drop(const struct server_conn *c, const char *why)
{
	char *e;

	e = log_escape(why);
	log_warnx("control socket: dropped peer uid %u pid %d (connection "
	    "%llu): %s", (unsigned)c->peer.uid, (int)c->peer.pid,
	    (unsigned long long)c->id, e != NULL ? e : "?");
	free(e);
}

/* Arm the timerfd so that the next server_process() runs now. */
static void
server_wake(struct vg_server *srv)
{
	struct itimerspec its;

	memset(&its, 0, sizeof its);
	its.it_value.tv_nsec = 1;	/* relative: fire at once */
	if (timerfd_settime(srv->timer_fd, 0, &its, NULL) == 0)
		srv->timer_at = 1;
}

/* Close c now; its memory goes at the next reap. */
static void
server_drop(struct vg_server *srv, struct server_conn *c,
    enum server_drop_why why, const char *msg)
{
	if (c->dead)
		return;
	if (why == SERVER_DROP_WARN)
		server_log_drop(c, msg);
	else
		log_debug("control socket: peer uid %u pid %d left",
		    (unsigned)c->peer.uid, (int)c->peer.pid);
	epoll_ctl(srv->ep, EPOLL_CTL_DEL, c->io.fd, NULL);
	close(c->io.fd);
	c->io.fd = -1;
	ipc_conn_reset(&c->io);
	c->dead = 1;
	srv->nconns--;
	srv->reap = 1;
	server_wake(srv);
}

static void
server_set_events(struct vg_server *srv, struct server_conn *c)
{
	struct epoll_event ev;
	uint32_t want;

	want = c->closing ? 0 : EPOLLIN;
	if (ipc_pending(&c->io) > 0)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	memset(&ev, 0, sizeof ev);
	ev.events = want;
	ev.data.ptr = c;
	if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, c->io.fd, &ev) == -1) {
		server_drop(srv, c, SERVER_DROP_WARN, "cannot watch the "
		    "connection");
		return;
	}
	c->events = want;
}

/* Write what is queued; keep deadlines and the epoll mask current. */
static void
server_flush(struct vg_server *srv, struct server_conn *c)
{
	struct vg_err err;
	size_t before;
	int rc;

	if (c->dead)
		return;
	vg_err_clear(&err);
	before = ipc_pending(&c->io);
	rc = ipc_flush(&c->io, &err);
	if (rc == -1) {
		server_drop(srv, c, SERVER_DROP_QUIET, NULL);
		return;
	}
	if (rc == 1) {
		c->write_since = 0;
		if (c->closing) {
			server_drop(srv, c, SERVER_DROP_QUIET, NULL);
			return;
		}
	} else if (c->write_since == 0 || ipc_pending(&c->io) < before)
		c->write_since = server_now();
	server_set_events(srv, c);
}

/* Queue an encoded body for c and try to send it at once. */
static int
server_queue_body(struct vg_server *srv, struct server_conn *c,
    const char *body, size_t len, struct vg_err *err)
{
	if (c->dead) {
		vg_err_set(err, VG_ERR_NOTFOUND, "connection %llu is gone",
		    (unsigned long long)c->id);
		return -1;
	}
	if (ipc_queue_body(&c->io, body, len, err) == -1) {
		server_drop(srv, c, SERVER_DROP_WARN, err != NULL ?
		    err->msg : "cannot queue a message");
		return -1;
	}
	server_flush(srv, c);
	if (c->dead) {
		vg_err_set(err, VG_ERR_NOTFOUND, "connection %llu is gone",
		    (unsigned long long)c->id);
		return -1;
	}
	return 0;
}

static int
server_queue(struct vg_server *srv, struct server_conn *c, json_t *msg,
    struct vg_err *err)
{
	char *body;
	int rc;

	if ((body = json_dumps(msg, JSON_COMPACT)) == NULL) {
		vg_err_set(err, VG_ERR_INTERNAL, "cannot encode a message");
		return -1;
	}
	rc = server_queue_body(srv, c, body, strlen(body), err);
	free(body);
	return rc;
}

/* Answer with an error and, when fatal, close after it is delivered. */
static void
server_fail(struct vg_server *srv, struct server_conn *c, json_t *id,
    int code, const char *msg, int fatal)
{
	struct vg_err err;
	json_t *o;

	o = server_error_json(id, code, msg);
	vg_err_clear(&err);
	(void)server_queue(srv, c, o, &err);
	json_decref(o);
	if (!fatal || c->dead)
		return;
	server_log_drop(c, msg);
	c->closing = 1;
	c->close_by = server_now() + SERVER_LINGER_MS;
	if (ipc_pending(&c->io) == 0)
		server_drop(srv, c, SERVER_DROP_QUIET, NULL);
	else
		server_set_events(srv, c);
}

static struct server_conn *
server_find(const struct vg_server *srv, uint64_t id)
{
	struct server_conn *c;

	TAILQ_FOREACH(c, &srv->conns, entry)
		if (c->id == id)
			return c->dead ? NULL : c;
	return NULL;
}

static int
server_uid_count(const struct vg_server *srv, uid_t uid)
{
	const struct server_conn *c;
	int n = 0;

	TAILQ_FOREACH(c, &srv->conns, entry)
		if (!c->dead && c->peer.uid == uid)
			n++;
	return n;
}

/* The peer's groups as the kernel recorded them at connect. */
static int
server_peer_in_group(int fd, const struct control_peer *p, gid_t gid)
{
	gid_t buf[64], *g = buf;
	socklen_t len = sizeof buf;
	struct passwd *pw;
	int i, n, found = 0;

	if (p->gid == gid)
		return 1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == -1) {
		if (errno == ERANGE && len > sizeof buf &&
		    (g = malloc(len)) != NULL &&
		    getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0)
			goto have;
		if (g != buf)
			free(g);
		g = NULL;
		/* No SO_PEERGROUPS: the user database decides. */
		if ((pw = getpwuid(p->uid)) == NULL)
			return 0;
		n = 64;
		if ((g = calloc((size_t)n, sizeof *g)) == NULL)
			return 0;
		if (getgrouplist(pw->pw_name, pw->pw_gid, g, &n) == -1) {
			free(g);
			if (n <= 0 || (g = calloc((size_t)n, sizeof *g)) ==
			    NULL)
				return 0;
			if (getgrouplist(pw->pw_name, pw->pw_gid, g, &n) ==
			    -1)
				n = 0;
		}
		for (i = 0; i < n; i++)
			if (g[i] == gid)
				found = 1;
		free(g);
		return found;
	}
have:
	n = (int)(len / sizeof(gid_t));
	for (i = 0; i < n; i++)
		if (g[i] == gid)
			found = 1;
	if (g != buf)
		free(g);
	return found;
}

/* Tell a peer we will not serve why, best effort, and close it.  The log
 * says so at most once a second: a flood must not flood the journal. */
static void
server_refuse(struct vg_server *srv, int fd, const struct ucred *cred,
    const char *msg)
{
	struct ipc_conn io;
	int64_t now = server_now();
	json_t *o;

	if (now - srv->refused_logged >= 1000) {
		log_warnx("control socket: refused uid %u pid %d: %s%s",
		    (unsigned)cred->uid, (int)cred->pid, msg,
		    srv->refused_quiet > 0 ? " (and more refusals not "
		    "logged)" : "");
		srv->refused_logged = now;
		srv->refused_quiet = 0;
	} else
		srv->refused_quiet++;

	ipc_conn_init(&io, fd);
	o = server_error_json(NULL, VG_ERR_PERM, msg);
	if (ipc_queue(&io, o, NULL) == 0)
		(void)ipc_flush(&io, NULL);
	json_decref(o);
	ipc_conn_reset(&io);
	close(fd);
}

static void
server_pause_accept(struct vg_server *srv)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.data.ptr = &srv->listen_fd;
	ev.events = 0;
	if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, srv->listen_fd, &ev) == 0)
		srv->accept_resume = server_now() + SERVER_ACCEPT_PAUSE_MS;
}

static void
server_resume_accept(struct vg_server *srv)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.data.ptr = &srv->listen_fd;
	ev.events = EPOLLIN;
	if (epoll_ctl(srv->ep, EPOLL_CTL_MOD, srv->listen_fd, &ev) == 0)
		srv->accept_resume = 0;
}

static void
server_accept(struct vg_server *srv)
{
	struct server_conn *c;
	struct epoll_event ev;
	struct ucred cred;
	socklen_t len;
	char msg[256];
	int fd, i, n;

	for (i = 0; i < SERVER_ACCEPT_BURST; i++) {
		fd = accept4(srv->listen_fd, NULL, NULL,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the queue stays
			 * readable, so stop watching it for a moment. */
			log_warn("control socket: accept");
			server_pause_accept(srv);
			return;
		}
		len = sizeof cred;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ==
		    -1 || len != sizeof cred) {
			log_warn("control socket: SO_PEERCRED");
			close(fd);
			continue;
		}
		if (srv->nconns >= srv->opts.max_conns) {
			snprintf(msg, sizeof msg, "vigild has too many "
			    "connections open (%d, the limit); try again "
			    "later", srv->nconns);
			server_refuse(srv, fd, &cred, msg);
			continue;
		}
		if ((n = server_uid_count(srv, cred.uid)) >=
		    srv->opts.max_per_uid) {
			snprintf(msg, sizeof msg, "uid %u already has %d "
			    "connections to vigild, the limit per user; close "
			    "some (other vigil commands, agents, trays) and "
			    "try again", (unsigned)cred.uid, n);
			server_refuse(srv, fd, &cred, msg);
			continue;
		}
		if ((c = calloc(1, sizeof *c)) == NULL) {
			log_warn("control socket: connection");
			close(fd);
			continue;
		}
		ipc_conn_init(&c->io, fd);
		c->io.out_max = srv->opts.out_max;
		c->id = ++srv->next_id;
		c->peer.uid = cred.uid;
		c->peer.gid = cred.gid;
		c->peer.pid = cred.pid;
		c->peer.admin = cred.uid == 0 || (srv->have_admin_gid &&
		    server_peer_in_group(fd, &c->peer, srv->admin_gid));
		c->hello_by = server_now() + srv->opts.hello_timeout_ms;
		memset(&ev, 0, sizeof ev);
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
			log_warn("control socket: epoll");
			close(fd);
			free(c);
			continue;
		}
		c->events = EPOLLIN;
		TAILQ_INSERT_TAIL(&srv->conns, c, entry);
		srv->nconns++;
		log_debug("control socket: connection %llu from uid %u pid "
		    "%d%s", (unsigned long long)c->id, (unsigned)cred.uid,
		    (int)cred.pid, c->peer.admin ? " (admin)" : "");
	}
}

/* ---- the messages the server answers itself ---- */

static void
server_hello(struct vg_server *srv, struct server_conn *c, const char *method,
    json_t *id, json_t *msg)
{
	json_t *params, *v, *role, *res, *o;
	const char *r;
	char buf[256];
	struct vg_err err;

	if (strcmp(method, "hello") != 0) {
		server_fail(srv, c, id, VG_ERR_INVALID, "the first message "
		    "must be hello, with the protocol version and the role",
		    1);
		return;
	}
	params = json_object_get(msg, "params");
	v = json_object_get(params, "version");
	role = json_object_get(params, "role");
	if (!json_is_integer(v)) {
		server_fail(srv, c, id, VG_ERR_INVALID, "hello needs "
		    "params.version, the protocol version (an integer)", 1);
		return;
	}
	if (json_integer_value(v) != IPC_PROTOCOL_VERSION) {
		snprintf(buf, sizeof buf, "protocol version %lld is not "
		    "supported: this vigild speaks version %d; use the vigil "
		    "programs of the same release", (long long)
		    json_integer_value(v), IPC_PROTOCOL_VERSION);
		server_fail(srv, c, id, VG_ERR_INVALID, buf, 1);
		return;
	}
	r = json_string_value(role);
	if (r != NULL && strcmp(r, "client") == 0)
		c->role = SERVER_ROLE_CLIENT;
	else if (r != NULL && strcmp(r, "agent") == 0)
		c->role = SERVER_ROLE_AGENT;
	else {
		server_fail(srv, c, id, VG_ERR_INVALID, "hello needs "
		    "params.role, \"client\" or \"agent\"", 1);
		return;
	}
	c->hello = 1;
	c->hello_by = 0;
	res = json_object();
	json_object_set_new(res, "version", json_integer(IPC_PROTOCOL_VERSION));
	json_object_set_new(res, "server", json_string("vigild "
	    VIGIL_VERSION));
	json_object_set_new(res, "connection", json_integer((json_int_t)
	    c->id));
	json_object_set_new(res, "uid", json_integer(c->peer.uid));
	json_object_set_new(res, "admin", json_boolean(c->peer.admin));
	o = server_ok_json(id, res);
	vg_err_clear(&err);
	(void)server_queue(srv, c, o, &err);
	json_decref(o);
}

static int
server_topic(const char *name)
{
	size_t i;

	for (i = 0; i < SERVER_NTOPICS; i++)
		if (strcmp(server_topic_names[i], name) == 0)
			return (int)i;
	return -1;
}

static json_t *
server_topics_json(uint32_t bits)
{
	json_t *a;
	size_t i;

	a = json_array();
	for (i = 0; i < SERVER_NTOPICS; i++)
		if (bits & (1u << i))
			json_array_append_new(a,
			    json_string(server_topic_names[i]));
	return a;
}

static void
server_subscribe(struct vg_server *srv, struct server_conn *c, json_t *id,
    json_t *msg, int on)
{
	json_t *topics, *t, *res, *o;
	uint32_t bits = 0;
	size_t i;
	int k;
	char buf[256];
	char *e;
	struct vg_err err;

	topics = json_object_get(json_object_get(msg, "params"), "topics");
	if (!json_is_array(topics)) {
		server_fail(srv, c, id, VG_ERR_INVALID, "subscribe needs "
		    "params.topics, a list of: " SERVER_TOPICS, 0);
		return;
	}
	json_array_foreach(topics, i, t) {
		if (!json_is_string(t) ||
		    (k = server_topic(json_string_value(t))) == -1) {
			e = json_is_string(t) ? log_escape_len(
			    json_string_value(t), json_string_length(t)) :
			    NULL;
			snprintf(buf, sizeof buf, "unknown topic %.64s; "
			    "topics are: %s", e != NULL ? e : "(not a string)",
			    SERVER_TOPICS);
			free(e);
			server_fail(srv, c, id, VG_ERR_INVALID, buf, 0);
			return;
		}
		bits |= 1u << k;
	}
	if (on)
		c->topics |= bits;
	else
		c->topics &= ~bits;
	res = json_object();
	json_object_set_new(res, "topics", server_topics_json(c->topics));
	o = server_ok_json(id, res);
	vg_err_clear(&err);
	(void)server_queue(srv, c, o, &err);
	json_decref(o);
}

static void
server_message(struct vg_server *srv, struct server_conn *c, json_t *msg)
{
	struct server_req req;
	struct vg_err err;
	const char *method;
	json_t *id, *ans;
	char buf[160];

	vg_err_clear(&err);
	if (server_check_request(msg, &method, &id, &err) == -1) {
		/* A well-formed frame with a bad shape: answer; before
		 * hello it also ends the connection. */
		id = json_object_get(msg, "id");
		if (!json_is_integer(id) && !json_is_string(id))
			id = NULL;
		server_fail(srv, c, id, VG_ERR_INVALID, err.msg, !c->hello);
		return;
	}
	if (!c->hello) {
		server_hello(srv, c, method, id, msg);
		return;
	}
	if (strcmp(method, "hello") == 0) {
		server_fail(srv, c, id, VG_ERR_INVALID, "hello was already "
		    "said on this connection", 0);
		return;
	}
	if (strcmp(method, "subscribe") == 0 ||
	    strcmp(method, "unsubscribe") == 0) {
		server_subscribe(srv, c, id, msg, method[0] == 's');
		return;
	}
	if (id == NULL || json_is_null(id)) {
		server_fail(srv, c, NULL, VG_ERR_INVALID, "a request needs "
		    "\"id\", an integer or a string, to match its answer", 0);
		return;
	}
	if (c->deferred >= srv->opts.max_deferred) {
		snprintf(buf, sizeof buf, "this connection already has %d "
		    "requests waiting for an answer, the limit", c->deferred);
		server_fail(srv, c, id, VG_ERR_INVALID, buf, 0);
		return;
	}
	memset(&req, 0, sizeof req);
	req.conn = c->id;
	req.peer = &c->peer;
	req.role = c->role;
	req.method = method;
	req.id = id;
	req.msg = msg;
	ans = srv->opts.dispatch(srv->opts.arg, srv, &req);
	if (ans == NULL) {
		c->deferred++;
		return;
	}
	if (!json_is_object(ans))
		server_fail(srv, c, id, VG_ERR_INTERNAL, "the service made "
		    "an answer that is not an object", 0);
	else if (!c->dead) {
		json_object_set(ans, "id", id);
		(void)server_queue(srv, c, ans, &err);
	}
	json_decref(ans);
}

static void
server_read(struct vg_server *srv, struct server_conn *c)
{
	enum ipc_read_result r;
	struct vg_err err;
	json_t *msg;
	int i;

	for (i = 0; i < SERVER_READ_BURST && !c->dead && !c->closing; i++) {
		vg_err_clear(&err);
		r = ipc_read_frame(&c->io, &msg, &err);
		if (r == IPC_READ_AGAIN) {
			if (!ipc_mid_frame(&c->io))
				c->frame_since = 0;
			else if (c->frame_since == 0)
				c->frame_since = server_now();
			return;
		}
		if (r == IPC_READ_EOF) {
			/* Deliver what is queued, then close. */
			c->closing = 1;
			c->close_by = server_now() + SERVER_LINGER_MS;
			if (ipc_pending(&c->io) == 0)
				server_drop(srv, c, SERVER_DROP_QUIET, NULL);
			else
				server_set_events(srv, c);
			return;
		}
		if (r == IPC_READ_ERROR) {
			server_drop(srv, c, SERVER_DROP_WARN, err.msg);
			return;
		}
		c->frame_since = 0;
		server_message(srv, c, msg);
		json_decref(msg);
	}
}

/* ---- deadlines ---- */

static int64_t
server_conn_deadline(const struct vg_server *srv, const struct server_conn *c)
{
	int64_t d = 0, t;

	if (c->dead)
		return 0;
	if (c->closing)
		return c->close_by;
	if (c->hello_by != 0)
		d = c->hello_by;
	if (c->frame_since != 0) {
		t = c->frame_since + srv->opts.frame_timeout_ms;
		if (d == 0 || t < d)
			d = t;
	}
	if (c->write_since != 0) {
		t = c->write_since + srv->opts.write_timeout_ms;
		if (d == 0 || t < d)
			d = t;
	}
	return d;
}

static int64_t
server_deadline(const struct vg_server *srv)
{
	const struct server_conn *c;
	int64_t d = srv->accept_resume, t;

	TAILQ_FOREACH(c, &srv->conns, entry) {
		t = server_conn_deadline(srv, c);
		if (t != 0 && (d == 0 || t < d))
			d = t;
	}
	return d;
}

int
server_next_timeout_ms(const struct vg_server *srv)
{
	int64_t d, now;

	if ((d = server_deadline(srv)) == 0)
		return -1;
	now = server_now();
	if (d <= now)
		return 0;
	return d - now > INT_MAX ? INT_MAX : (int)(d - now);
}

/*
 * Whether bytes from the peer wait unread in the socket.  Then a hello or
 * frame deadline that passed is ours: the service's loop was busy (a
 * request waiting for vigil.db, up to the store's busy timeout), and the
 * next read takes them; the peer is not late.
 */
static bool
server_input_waits(const struct server_conn *c)
{
	int n = 0;

	return ioctl(c->io.fd, FIONREAD, &n) == 0 && n > 0;
}

static void
server_expire(struct vg_server *srv)
{
	struct server_conn *c;
	int64_t now = server_now();
	char buf[128];

	if (srv->accept_resume != 0 && srv->accept_resume <= now)
		server_resume_accept(srv);
	TAILQ_FOREACH(c, &srv->conns, entry) {
		if (c->dead)
			continue;
		if (c->closing) {
			if (c->close_by <= now)
				server_drop(srv, c, SERVER_DROP_QUIET, NULL);
			continue;
		}
		if (((c->hello_by != 0 && c->hello_by <= now) ||
		    (c->frame_since != 0 && c->frame_since +
		    srv->opts.frame_timeout_ms <= now)) &&
		    server_input_waits(c))
			continue;
		if (c->hello_by != 0 && c->hello_by <= now) {
			snprintf(buf, sizeof buf, "no hello within %d ms of "
			    "connecting", srv->opts.hello_timeout_ms);
			server_fail(srv, c, NULL, VG_ERR_INVALID, buf, 1);
			if (!c->dead)
				server_drop(srv, c, SERVER_DROP_QUIET, NULL);
		} else if (c->frame_since != 0 &&
		    c->frame_since + srv->opts.frame_timeout_ms <= now) {
			snprintf(buf, sizeof buf, "a frame took more than %d "
			    "ms to arrive", srv->opts.frame_timeout_ms);
			server_drop(srv, c, SERVER_DROP_WARN, buf);
		} else if (c->write_since != 0 &&
		    c->write_since + srv->opts.write_timeout_ms <= now) {
			snprintf(buf, sizeof buf, "it read nothing of its %zu "
			    "queued bytes for %d ms", ipc_pending(&c->io),
			    srv->opts.write_timeout_ms);
			server_drop(srv, c, SERVER_DROP_WARN, buf);
		}
	}
}

static void
server_rearm(struct vg_server *srv)
{
	struct itimerspec its;
	int64_t d;

	d = srv->reap ? server_now() : server_deadline(srv);
	if (d == srv->timer_at)
		return;
	memset(&its, 0, sizeof its);
	if (d != 0) {
		its.it_value.tv_sec = d / 1000;
		its.it_value.tv_nsec = (d % 1000) * 1000000;
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
	}
	if (timerfd_settime(srv->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) ==
	    0)
		srv->timer_at = d;
}

static void
server_reap(struct vg_server *srv)
{
	struct server_conn *c, *next;

	while (srv->reap) {
		srv->reap = 0;
		for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
			next = TAILQ_NEXT(c, entry);
			if (!c->dead)
				continue;
			TAILQ_REMOVE(&srv->conns, c, entry);
			/* The callback may drop others: loop again. */
			if (c->hello && srv->opts.closed != NULL)
				srv->opts.closed(srv->opts.arg, srv, c->id,
				    &c->peer, c->role);
			free(c);
			next = TAILQ_FIRST(&srv->conns);
		}
	}
}

int
server_process(struct vg_server *srv)
{
	struct epoll_event evs[SERVER_EVENTS];
	struct server_conn *c;
	uint64_t ticks;
	int i, n;

	n = epoll_wait(srv->ep, evs, SERVER_EVENTS, 0);
	if (n == -1) {
		if (errno == EINTR)
			return 0;
		log_warn("control socket: epoll_wait");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (evs[i].data.ptr == &srv->listen_fd) {
			server_accept(srv);
			continue;
		}
		if (evs[i].data.ptr == &srv->timer_fd) {
			(void)read(srv->timer_fd, &ticks, sizeof ticks);
			srv->timer_at = 0;
			continue;
		}
		c = evs[i].data.ptr;
		if (c->dead)
			continue;
		if (evs[i].events & EPOLLOUT)
			server_flush(srv, c);
		if (!c->dead && !c->closing &&
		    (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			server_read(srv, c);
		else if (!c->dead && c->closing &&
		    (evs[i].events & (EPOLLHUP | EPOLLERR)))
			server_drop(srv, c, SERVER_DROP_QUIET, NULL);
	}
	server_expire(srv);
	server_reap(srv);
	server_rearm(srv);
	return 0;
}

/* ---- answers and events from the service ---- */

int
server_reply(struct vg_server *srv, uint64_t conn, json_t *id,
    json_t *answer, struct vg_err *err)
{
	struct server_conn *c;
	json_t *o;
	int rc;

	if ((c = server_find(srv, conn)) == NULL) {
		vg_err_set(err, VG_ERR_NOTFOUND, "connection %llu is gone",
		    (unsigned long long)conn);
		return -1;
	}
	if (c->deferred > 0)
		c->deferred--;
	if ((o = json_copy(answer)) == NULL || !json_is_object(o)) {
		json_decref(o);
		vg_err_set(err, VG_ERR_INVALID, "an answer must be a JSON "
		    "object");
		return -1;
	}
	json_object_set(o, "id", id != NULL ? id : json_null());
	rc = server_queue(srv, c, o, err);
	json_decref(o);
	return rc;
}

static json_t *
server_event_json(const char *topic, json_t *data)
{
	json_t *o;

	o = json_object();
	json_object_set_new(o, "event", json_string(topic));
	json_object_set(o, "data", data != NULL ? data : json_null());
	return o;
}

int
server_send_event(struct vg_server *srv, uint64_t conn, const char *topic,
    json_t *data, struct vg_err *err)
{
	struct server_conn *c;
	json_t *o;
	int rc;

	if ((c = server_find(srv, conn)) == NULL) {
		vg_err_set(err, VG_ERR_NOTFOUND, "connection %llu is gone",
		    (unsigned long long)conn);
		return -1;
	}
	o = server_event_json(topic, data);
	rc = server_queue(srv, c, o, err);
	json_decref(o);
	return rc;
}

int
server_broadcast(struct vg_server *srv, const char *topic, json_t *data,
    uid_t owner)
{
	struct server_conn *c;
	struct vg_err err;
	json_t *o;
	char *body;
	size_t len;
	int k, n = 0;

	if (topic == NULL || (k = server_topic(topic)) == -1) {
		log_warnx("control socket: broadcast on unknown topic %s",
		    topic != NULL ? topic : "(null)");
		return 0;
	}
	o = server_event_json(topic, data);
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (body == NULL)
		return 0;
	len = strlen(body);
	TAILQ_FOREACH(c, &srv->conns, entry) {
		if (c->dead || c->closing || !c->hello ||
		    !(c->topics & (1u << k)))
			continue;
		if (owner != SERVER_ANY_UID && c->peer.uid != owner &&
		    !c->peer.admin)
			continue;
		vg_err_clear(&err);
		if (server_queue_body(srv, c, body, len, &err) == 0)
			n++;
	}
	free(body);
	return n;
}

const struct control_peer *
server_peer(const struct vg_server *srv, uint64_t conn)
{
	const struct server_conn *c;

	c = server_find(srv, conn);
	return c != NULL ? &c->peer : NULL;
}

int
server_conn_count(const struct vg_server *srv)
{
	return srv->nconns;
}

int
server_fd(const struct vg_server *srv)
{
	return srv->ep;
}

/* ---- the socket ---- */

/*
 * The folder that holds the socket: it must be a folder, owned by us or
 * root, and not writable by others unless sticky (else another user could
 * swap the socket).
 */
static int
server_check_parent(const char *path, int make, struct vg_err *err)
{
	char *dir = NULL, *slash;
	struct stat st;
	int rc = -1;

	if ((dir = strdup(path)) == NULL) {
		vg_err_sys(err, "socket path");
		goto out;
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) == -1) {
		if (errno != ENOENT || !make) {
			vg_err_sys(err, "socket folder %s", dir);
			goto out;
		}
		if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
			vg_err_sys(err, "cannot create the socket folder %s",
			    dir);
			goto out;
		}
		/* 0755 whatever the umask: clients must reach the socket. */
		if (chmod(dir, 0755) == -1) {
			vg_err_sys(err, "chmod 0755 %s", dir);
			goto out;
		}
		if (stat(dir, &st) == -1) {
			vg_err_sys(err, "socket folder %s", dir);
			goto out;
		}
	}
	if (!S_ISDIR(st.st_mode)) {
		vg_err_set(err, VG_ERR_INVALID, "socket folder %s is not a "
		    "folder", dir);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		vg_err_set(err, VG_ERR_PERM, "socket folder %s belongs to "
		    "uid %u, not to this service or root; use a folder of "
		    "your own", dir, (unsigned)st.st_uid);
		goto out;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		vg_err_set(err, VG_ERR_PERM, "socket folder %s is writable "
		    "by others (mode %04o), who could replace the socket; "
		    "use a folder only this service may write",
		    dir, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	rc = 0;
out:
	free(dir);
	return rc;
}

/* A socket at path: -1 if someone listens (or we cannot tell), 0 if it is
 * stale and was removed. */
static int
server_clear_stale(const char *path, const struct sockaddr_un *sun,
    struct vg_err *err)
{
	struct stat st;
	int fd, rc = -1;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		vg_err_sys(err, "socket %s", path);
		return -1;
	}
	if (S_ISLNK(st.st_mode)) {
		vg_err_set(err, VG_ERR_PERM, "socket path %s is a symbolic "
		    "link; vigild does not follow it.  Remove it, or give "
		    "another --socket", path);
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		vg_err_set(err, VG_ERR_EXISTS, "socket path %s exists and is "
		    "not a socket; remove it, or give another --socket", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		vg_err_sys(err, "socket");
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0) {
		vg_err_set(err, VG_ERR_EXISTS, "another vigild already "
		    "listens on %s; stop it first, or give another --socket",
		    path);
		goto out;
	}
	if (errno != ECONNREFUSED) {
		vg_err_sys(err, "cannot tell whether a service listens on %s",
		    path);
		goto out;
	}
	/* Nobody listens: a socket left by a service that died. */
	if (unlink(path) == -1 && errno != ENOENT) {
		vg_err_sys(err, "cannot remove the stale socket %s", path);
		goto out;
	}
	log_info("removed stale socket %s", path);
	rc = 0;
out:
	close(fd);
	return rc;
}

static int
server_ep_add(int ep, int fd, void *tag, struct vg_err *err)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = tag;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
		vg_err_sys(err, "epoll_ctl");
		return -1;
	}
	return 0;
}

struct vg_server *
server_new(const char *path, const struct server_opts *opts,
    struct vg_err *err)
{
	struct vg_server *srv = NULL;
	struct sockaddr_un sun;
	struct stat st;
	struct group *gr;
	int ok = 0;

	if (opts == NULL || opts->dispatch == NULL) {
		vg_err_set(err, VG_ERR_INVALID, "server_new needs a "
		    "dispatcher");
		return NULL;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (path == NULL || path[0] == '\0' ||
	    strlen(path) >= sizeof sun.sun_path) {
		vg_err_set(err, VG_ERR_INVALID, "socket path %s is empty or "
		    "longer than %zu bytes; choose a shorter --socket",
		    path != NULL ? path : "", sizeof sun.sun_path - 1);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	if ((srv = calloc(1, sizeof *srv)) == NULL) {
		vg_err_sys(err, "server");
		return NULL;
	}
	srv->opts = *opts;
	srv->listen_fd = srv->ep = srv->timer_fd = -1;
	TAILQ_INIT(&srv->conns);
	if ((srv->path = strdup(path)) == NULL) {
		vg_err_sys(err, "server");
		goto out;
	}
	if (opts->admin_group != NULL &&
	    (gr = getgrnam(opts->admin_group)) != NULL) {
		srv->admin_gid = gr->gr_gid;
		srv->have_admin_gid = 1;
	}
	if (server_check_parent(path, opts->make_parent, err) == -1 ||
	    server_clear_stale(path, &sun, err) == -1)
		goto out;
	srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (srv->listen_fd == -1) {
		vg_err_sys(err, "socket");
		goto out;
	}
	/* bind() creates the node and never follows a symlink there. */
	if (bind(srv->listen_fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		vg_err_sys(err, "cannot bind the socket %s", path);
		goto out;
	}
	if (lstat(path, &st) == -1 || !S_ISSOCK(st.st_mode)) {
		vg_err_set(err, VG_ERR_SYS, "socket %s vanished after bind",
		    path);
		goto out;
	}
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;
	if (chmod(path, opts->mode) == -1) {
		vg_err_sys(err, "chmod %04o %s", (unsigned)opts->mode, path);
		goto out;
	}
	if (listen(srv->listen_fd, SERVER_BACKLOG) == -1) {
		vg_err_sys(err, "listen on %s", path);
		goto out;
	}
	if ((srv->ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (srv->timer_fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) == -1) {
		vg_err_sys(err, "epoll or timerfd");
		goto out;
	}
	if (server_ep_add(srv->ep, srv->listen_fd, &srv->listen_fd, err) ==
	    -1 || server_ep_add(srv->ep, srv->timer_fd, &srv->timer_fd,
	    err) == -1)
		goto out;
	ok = 1;
out:
	if (!ok) {
		server_free(srv);
		return NULL;
	}
	return srv;
}

void
server_free(struct vg_server *srv)
{
	struct server_conn *c;
	struct stat st;

	if (srv == NULL)
		return;
	while ((c = TAILQ_FIRST(&srv->conns)) != NULL) {
		TAILQ_REMOVE(&srv->conns, c, entry);
		if (!c->dead) {
			close(c->io.fd);
			ipc_conn_reset(&c->io);
		}
		free(c);
	}
	if (srv->listen_fd != -1) {
		/* Unlink only the socket we made, not a successor's. */
		if (srv->sock_ino != 0 && lstat(srv->path, &st) == 0 &&
		    st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
			unlink(srv->path);
		close(srv->listen_fd);
	}
	if (srv->ep != -1)
		close(srv->ep);
	if (srv->timer_fd != -1)
		close(srv->timer_fd);
	free(srv->path);
	free(srv);
}
