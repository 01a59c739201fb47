/* client.c: the client side of vigild's control socket (see client.h). */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "common/err.h"
#include "common/ipc.h"

/*
 * How long hello may take.  Longer than the longest time vigild's loop can
 * stall: a write to vigil.db waits up to STORE_BUSY_MS (10 s, db/store.h)
 * while another program holds the database, and requests queue meanwhile.
 */
#define CLIENT_HELLO_TIMEOUT_MS	15000

struct vg_client {
	char		*path;
	struct ipc_conn	 io;
	json_t		*hello;
	int64_t		 next_id;
	int		 broken;
	client_event_fn	 ev_fn;
	void		*ev_arg;
	json_t		*events[CLIENT_EVENT_QUEUE];
	size_t		 ev_head, ev_count;
};

static int64_t
client_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
client_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : client_now() + timeout_ms;
}

const char *
client_path(const struct vg_client *c)
{
	return c->path;
}

json_t *
client_hello_result(const struct vg_client *c)
{
	return c->hello;
}

int
client_fd(const struct vg_client *c)
{
	return c->io.fd;
}

void
client_set_event_cb(struct vg_client *c, client_event_fn fn, void *arg)
{
	c->ev_fn = fn;
	c->ev_arg = arg;
}

void
client_free(struct vg_client *c)
{
	if (c == NULL)
		return;
	while (c->ev_count > 0) {
		json_decref(c->events[c->ev_head]);
		c->ev_head = (c->ev_head + 1) % CLIENT_EVENT_QUEUE;
		c->ev_count--;
	}
	if (c->io.fd != -1)
		close(c->io.fd);
	ipc_conn_reset(&c->io);
	json_decref(c->hello);
	free(c->path);
	free(c);
}

/* ---- moving messages ---- */

static int
client_send(struct vg_client *c, json_t *msg, int64_t deadline,
    struct vg_err *err)
{
	struct pollfd pfd;
	int rc, wait;

	if (ipc_queue(&c->io, msg, err) == -1)
		return -1;
	while ((rc = ipc_flush(&c->io, err)) == 0) {
		pfd.fd = c->io.fd;
		pfd.events = POLLOUT;
		wait = deadline < 0 ? -1 : (int)(deadline > client_now() ?
		    deadline - client_now() : 0);
		rc = poll(&pfd, 1, wait);
		if (rc == -1) {
			if (errno == EINTR) {
				/* What is queued goes out with the next
				 * call, so the stream stays whole. */
				vg_err_set(err, VG_ERR_CANCELLED,
				    "interrupted");
				return -1;
			}
			vg_err_sys(err, "poll");
			c->broken = 1;
			return -1;
		}
		if (rc == 0) {
			vg_err_set(err, VG_ERR_SYS, "vigild at %s takes no "
			    "more input", c->path);
			c->broken = 1;
			return -1;
		}
	}
	if (rc == -1) {
		c->broken = 1;
		if (errno == EPIPE || errno == ECONNRESET)
			vg_err_set(err, VG_ERR_SYS, "vigild at %s closed the "
			    "connection", c->path);
		else
			vg_err_prefix(err, "vigild at %s", c->path);
		return -1;
	}
	return 0;
}

/* One message: 1 with *msg, 0 on timeout, -1 on error or signal. */
static int
client_read(struct vg_client *c, int64_t deadline, json_t **msg,
    struct vg_err *err)
{
	enum ipc_read_result r;
	struct pollfd pfd;
	int wait, pr;

	*msg = NULL;
	if (c->broken) {
		vg_err_set(err, VG_ERR_SYS, "the connection to vigild at %s "
		    "is closed", c->path);
		return -1;
	}
	for (;;) {
		r = ipc_read_frame(&c->io, msg, err);
		if (r == IPC_READ_MSG)
			return 1;
		if (r == IPC_READ_EOF) {
			c->broken = 1;
			vg_err_set(err, VG_ERR_SYS, "vigild at %s closed the "
			    "connection", c->path);
			return -1;
		}
		if (r == IPC_READ_ERROR) {
			c->broken = 1;
			vg_err_prefix(err, "vigild at %s", c->path);
			return -1;
		}
		pfd.fd = c->io.fd;
		pfd.events = POLLIN;
		wait = deadline < 0 ? -1 : (int)(deadline > client_now() ?
		    deadline - client_now() : 0);
		pr = poll(&pfd, 1, wait);
		if (pr == -1) {
			if (errno == EINTR) {
				vg_err_set(err, VG_ERR_CANCELLED,
				    "interrupted");
				return -1;
			}
			c->broken = 1;
			vg_err_sys(err, "poll");
			return -1;
		}
		if (pr == 0)
			return 0;
	}
}

/* Deliver or keep an event; takes msg. */
static void
client_event(struct vg_client *c, json_t *msg)
{
	const char *topic;
	size_t tail;

	if (c->ev_fn != NULL) {
		topic = json_string_value(json_object_get(msg, "event"));
		c->ev_fn(c->ev_arg, topic != NULL ? topic : "",
		    json_object_get(msg, "data"));
		json_decref(msg);
		return;
	}
	if (c->ev_count == CLIENT_EVENT_QUEUE) {
		/* Keep the newest: progress is only worth its latest. */
		json_decref(c->events[c->ev_head]);
		c->ev_head = (c->ev_head + 1) % CLIENT_EVENT_QUEUE;
		c->ev_count--;
	}
	tail = (c->ev_head + c->ev_count) % CLIENT_EVENT_QUEUE;
	c->events[tail] = msg;
	c->ev_count++;
}

static int
client_code(const char *name)
{
	int i;

	if (name == NULL)
		return VG_ERR_INTERNAL;
	for (i = VG_ERR_SYS; i <= VG_ERR_INTERNAL; i++)
		if (strcmp(vg_err_codename(i), name) == 0)
			return i;
	return VG_ERR_INTERNAL;
}

/* After a failed write: an error answer without id that the service sent
 * before it closed, or NULL. */
static json_t *
client_refusal(struct vg_client *c)
{
	json_t *msg;
	int i;

	for (i = 0; i < 16; i++) {
		if (ipc_read_frame(&c->io, &msg, NULL) != IPC_READ_MSG)
			return NULL;
		if (json_is_null(json_object_get(msg, "id")) &&
		    json_is_false(json_object_get(msg, "ok")))
			return msg;
		json_decref(msg);
	}
	return NULL;
}

int
client_call(struct vg_client *c, const char *method, json_t *params,
    json_t **result, json_t **errobj, int timeout_ms, struct vg_err *err)
{
	json_t *req, *msg, *id, *e;
	int64_t deadline, myid;
	const char *m;
	int rc;

	*result = NULL;
	if (errobj != NULL)
		*errobj = NULL;
	if (c->broken) {
		vg_err_set(err, VG_ERR_SYS, "the connection to vigild at %s "
		    "is closed", c->path);
		return -1;
	}
	deadline = client_deadline(timeout_ms);
	myid = ++c->next_id;
	req = json_object();
	json_object_set_new(req, "id", json_integer(myid));
	json_object_set_new(req, "method", json_string(method));
	json_object_set_new(req, "params", params != NULL ?
	    json_incref(params) : json_object());
	rc = client_send(c, req, deadline, err);
	json_decref(req);
	if (rc == -1) {
		/* A service that refused us closed the socket, and our
		 * write failed; its reason may wait unread. */
		if (!c->broken || (msg = client_refusal(c)) == NULL)
			return -1;
		goto answer;
	}
	for (;;) {
		rc = client_read(c, deadline, &msg, err);
		if (rc == 0) {
			vg_err_set(err, VG_ERR_SYS, "vigild at %s did not "
			    "answer %s within %d ms; it may be waiting for "
			    "its database (another program holding vigil.db) "
			    "or be stuck: see its log, and try again",
			    c->path, method, timeout_ms);
			return -1;
		}
		if (rc == -1)
			return -1;
		if (json_object_get(msg, "event") != NULL) {
			client_event(c, msg);
			continue;
		}
		id = json_object_get(msg, "id");
		/* An answer without an id is the service refusing the
		 * connection itself: it belongs to this call. */
		if (!(json_is_integer(id) && json_integer_value(id) == myid) &&
		    !(json_is_null(id) && json_is_false(json_object_get(msg,
		    "ok")))) {
			json_decref(msg);	/* late answer to a call that
						   gave up */
			continue;
		}
		break;
	}
answer:
	if (json_is_true(json_object_get(msg, "ok"))) {
		*result = json_object_get(msg, "result");
		if (*result == NULL)
			*result = json_null();
		json_incref(*result);
		json_decref(msg);
		return 0;
	}
	e = json_object_get(msg, "error");
	m = json_string_value(json_object_get(e, "message"));
	vg_err_set(err, client_code(json_string_value(json_object_get(e,
	    "code"))), "%s", m != NULL ? m : "vigild refused the request "
	    "without saying why");
	if (errobj != NULL) {
		*errobj = json_is_object(e) ? e : NULL;
		json_incref(*errobj);
	}
	json_decref(msg);
	return 1;
}

int
client_subscribe(struct vg_client *c, const char *const *topics,
    int timeout_ms, struct vg_err *err)
{
	json_t *params, *a, *res = NULL;
	int rc;

	a = json_array();
	for (; *topics != NULL; topics++)
		json_array_append_new(a, json_string(*topics));
	params = json_object();
	json_object_set_new(params, "topics", a);
	rc = client_call(c, "subscribe", params, &res, NULL, timeout_ms, err);
	json_decref(params);
	json_decref(res);
	return rc == 0 ? 0 : -1;
}

json_t *
client_next_event(struct vg_client *c, int timeout_ms, struct vg_err *err)
{
	json_t *msg;
	int64_t deadline;
	int rc;

	vg_err_clear(err);
	if (c->ev_count > 0) {
		msg = c->events[c->ev_head];
		c->ev_head = (c->ev_head + 1) % CLIENT_EVENT_QUEUE;
		c->ev_count--;
		return msg;
	}
	deadline = client_deadline(timeout_ms);
	for (;;) {
		rc = client_read(c, deadline, &msg, err);
		if (rc <= 0)
			return NULL;
		if (json_object_get(msg, "event") != NULL)
			return msg;
		json_decref(msg);	/* a late answer */
	}
}

/* ---- finding the service ---- */

enum client_try {
	CLIENT_OK = 0,
	CLIENT_ABSENT,		/* nothing listens there: try the next */
	CLIENT_FAILED,		/* something is there and failed */
};

static enum client_try
client_try(const char *path, const char *role, struct vg_client **out,
    char *why, size_t whylen)
{
	struct vg_client *c = NULL;
	struct sockaddr_un sun;
	struct timeval tv;
	struct ucred cred;
	struct vg_err err;
	socklen_t len;
	json_t *params = NULL, *res = NULL;
	enum client_try rc = CLIENT_FAILED;
	int fd = -1, fl;

	*out = NULL;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(why, whylen, "the path is longer than %zu bytes",
		    sizeof sun.sun_path - 1);
		goto out;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		goto out;
	}
	/* A full listen queue makes connect wait; not for ever. */
	tv.tv_sec = CLIENT_CONNECT_TIMEOUT_MS / 1000;
	tv.tv_usec = 0;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		if (errno == ENOENT || errno == ECONNREFUSED ||
		    errno == ENOTDIR)
			rc = CLIENT_ABSENT;
		snprintf(why, whylen, "%s", errno == ENOENT ? "no such "
		    "socket" : errno == ECONNREFUSED ? "no service listens "
		    "(connection refused)" : errno == EAGAIN ? "the service "
		    "is too busy to accept" : strerror(errno));
		goto out;
	}
	len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		snprintf(why, whylen, "SO_PEERCRED: %s", strerror(errno));
		goto out;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		snprintf(why, whylen, "the service there runs as uid %u, not "
		    "root or you; vigil does not talk to it", (unsigned)
		    cred.uid);
		goto out;
	}
	tv.tv_sec = 0;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
		snprintf(why, whylen, "fcntl: %s", strerror(errno));
		goto out;
	}
	if ((c = calloc(1, sizeof *c)) == NULL ||
	    (c->path = strdup(path)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	ipc_conn_init(&c->io, fd);
	fd = -1;
	params = json_object();
	json_object_set_new(params, "version",
	    json_integer(IPC_PROTOCOL_VERSION));
	json_object_set_new(params, "role", json_string(role));
	vg_err_clear(&err);
	if (client_call(c, "hello", params, &res, NULL,
	    CLIENT_HELLO_TIMEOUT_MS, &err) != 0) {
		snprintf(why, whylen, "hello failed: %.300s", err.msg);
		goto out;
	}
	c->hello = res;
	res = NULL;
	*out = c;
	c = NULL;
	rc = CLIENT_OK;
out:
	json_decref(params);
	json_decref(res);
	client_free(c);
	if (fd != -1)
		close(fd);
	return rc;
}

struct vg_client *
client_connect_role(const char *explicit_path, const char *role,
    struct vg_err *err)
{
	struct vg_client *c = NULL;
	const char *env, *paths[2];
	char *user = NULL, tried[800], why[320];
	size_t off = 0, n = 0, i;
	enum client_try rc = CLIENT_ABSENT;
	int absent_ok[2] = { 0, 0 };

	env = getenv("VIGIL_SOCKET");
	if (explicit_path != NULL && explicit_path[0] != '\0')
		paths[n++] = explicit_path;
	else if (env != NULL && env[0] != '\0')
		paths[n++] = env;
	else {
		env = getenv("XDG_RUNTIME_DIR");
		if (env != NULL && env[0] == '/' &&
		    asprintf(&user, "%s/vigil/vigil.sock", env) != -1) {
			absent_ok[n] = 1;
			paths[n++] = user;
		}
		paths[n++] = CLIENT_SYSTEM_SOCKET;
	}
	tried[0] = '\0';
	for (i = 0; i < n; i++) {
		why[0] = '\0';
		rc = client_try(paths[i], role, &c, why, sizeof why);
		if (rc == CLIENT_OK)
			goto out;
		if (off < sizeof tried)
			off += (size_t)snprintf(tried + off, sizeof tried - off,
			    "%s%s: %s", off > 0 ? "; " : "", paths[i], why);
		if (rc == CLIENT_FAILED || !absent_ok[i])
			break;
	}
	if (rc == CLIENT_ABSENT)
		vg_err_set(err, VG_ERR_SYS, "cannot reach vigild (%s).  Start "
		    "it with `systemctl start vigild` (the system service) "
		    "or `vigild --user &` (your own), or point --socket or "
		    "VIGIL_SOCKET at a running one", tried);
	else
		vg_err_set(err, VG_ERR_SYS, "cannot talk to vigild (%s)",
		    tried);
out:
	free(user);
	return c;
}

struct vg_client *
client_connect(const char *explicit_path, struct vg_err *err)
{
	return client_connect_role(explicit_path, "client", err);
}
