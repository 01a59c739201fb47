/*
 * server_harness.h: a real control-socket server on a temp socket, run in a
 * thread of the test with a fake dispatcher, for test_server.c and
 * test_client.c.  All server calls happen in that thread: the tests ask for
 * broadcasts and late answers through requests to the fake dispatcher.
 *
 * Fake methods: "echo" (answers its params), "whoami" (the peer as the
 * server saw it), "defer" (keeps the request for later), "release"
 * (answers every kept request: {"sent": N, "gone": M}), "emit" (params
 * {topic, owner, data}: server_broadcast; answers the count).
 */
#ifndef VIGIL_SERVER_HARNESS_H
#define VIGIL_SERVER_HARNESS_H

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/ipc.h"
#include "scheduler/server.h"

#define H_MAX_KEPT	256
/* Each test file uses some of these helpers. */
#define H_FN	static __attribute__((unused))

struct h_kept {
	uint64_t	 conn;
	json_t		*id;
};

struct harness {
	char			 dir[64];
	char			 path[128];
	struct vg_server	*srv;
	pthread_t		 thread;
	int			 stop[2];
	int			 running;
	pthread_mutex_t		 lock;
	struct h_kept		 kept[H_MAX_KEPT];
	int			 nkept;
	int			 closed;	/* closed() calls */
};

H_FN json_t *
h_dispatch(void *arg, struct vg_server *srv, const struct server_req *req)
{
	struct harness *h = arg;
	json_t *p, *res, *a;
	struct vg_err err;
	int i, sent = 0, gone = 0;

	p = json_object_get(req->msg, "params");
	if (strcmp(req->method, "echo") == 0)
		return json_pack("{s:b, s:O}", "ok", 1, "result",
		    p != NULL ? p : json_null());
	if (strcmp(req->method, "whoami") == 0)
		return json_pack("{s:b, s:{s:i, s:i, s:b, s:s, s:I}}", "ok", 1,
		    "result", "uid", (int)req->peer->uid, "pid",
		    (int)req->peer->pid, "admin", req->peer->admin, "role",
		    req->role == SERVER_ROLE_AGENT ? "agent" : "client",
		    "conn", (json_int_t)req->conn);
	if (strcmp(req->method, "defer") == 0) {
		pthread_mutex_lock(&h->lock);
		if (h->nkept < H_MAX_KEPT) {
			h->kept[h->nkept].conn = req->conn;
			h->kept[h->nkept].id = json_incref(req->id);
			h->nkept++;
		}
		pthread_mutex_unlock(&h->lock);
		return NULL;
	}
	if (strcmp(req->method, "release") == 0) {
		a = json_pack("{s:b, s:s}", "ok", 1, "result", "late");
		pthread_mutex_lock(&h->lock);
		for (i = 0; i < h->nkept; i++) {
			vg_err_clear(&err);
			if (server_reply(srv, h->kept[i].conn, h->kept[i].id,
			    a, &err) == 0)
				sent++;
			else if (err.code == VG_ERR_NOTFOUND)
				gone++;
			json_decref(h->kept[i].id);
		}
		h->nkept = 0;
		pthread_mutex_unlock(&h->lock);
		json_decref(a);
		return json_pack("{s:b, s:{s:i, s:i}}", "ok", 1, "result",
		    "sent", sent, "gone", gone);
	}
	if (strcmp(req->method, "emit") == 0) {
		res = json_object_get(p, "owner");
		i = server_broadcast(srv, json_string_value(json_object_get(p,
		    "topic")), json_object_get(p, "data"),
		    json_is_integer(res) ? (uid_t)json_integer_value(res) :
		    SERVER_ANY_UID);
		return json_pack("{s:b, s:i}", "ok", 1, "result", i);
	}
	return json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code",
	    "invalid", "message", "unknown method");
}

H_FN void
h_closed(void *arg, struct vg_server *srv, uint64_t conn,
    const struct control_peer *peer, enum server_role role)
{
	struct harness *h = arg;

	pthread_mutex_lock(&h->lock);
	h->closed++;
	pthread_mutex_unlock(&h->lock);
}

H_FN void *
h_loop(void *arg)
{
	struct harness *h = arg;
	struct pollfd pfd[2];
	sigset_t set;

	/* Signals the tests send are for the main thread. */
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (;;) {
		pfd[0].fd = server_fd(h->srv);
		pfd[0].events = POLLIN;
		pfd[1].fd = h->stop[0];
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) == -1 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (pfd[0].revents)
			server_process(h->srv);
	}
	return NULL;
}

H_FN void
h_opts(struct harness *h, struct server_opts *o)
{
	server_opts_init(o);
	o->dispatch = h_dispatch;
	o->closed = h_closed;
	o->arg = h;
	o->admin_group = NULL;
}

/* A temp folder with a socket path in it; no server yet. */
H_FN void
h_init(struct harness *h)
{
	memset(h, 0, sizeof *h);
	snprintf(h->dir, sizeof h->dir, "/tmp/vigil-srv-XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	snprintf(h->path, sizeof h->path, "%s/vigil.sock", h->dir);
	pthread_mutex_init(&h->lock, NULL);
	h->stop[0] = h->stop[1] = -1;
}

H_FN void
h_start(struct harness *h, const struct server_opts *o)
{
	struct vg_err err;

	vg_err_clear(&err);
	h->srv = server_new(h->path, o, &err);
	if (h->srv == NULL)
		fail_msg("server_new: %s", err.msg);
	assert_int_equal(pipe(h->stop), 0);
	assert_int_equal(pthread_create(&h->thread, NULL, h_loop, h), 0);
	h->running = 1;
}

H_FN void
h_stop(struct harness *h)
{
	int i;

	if (h->running) {
		assert_int_equal(write(h->stop[1], "x", 1), 1);
		pthread_join(h->thread, NULL);
		h->running = 0;
	}
	server_free(h->srv);
	h->srv = NULL;
	if (h->stop[0] != -1) {
		close(h->stop[0]);
		close(h->stop[1]);
	}
	for (i = 0; i < h->nkept; i++)
		json_decref(h->kept[i].id);
	h->nkept = 0;
	unlink(h->path);
	rmdir(h->dir);
	pthread_mutex_destroy(&h->lock);
}

H_FN int
h_closed_count(struct harness *h)
{
	int n;

	pthread_mutex_lock(&h->lock);
	n = h->closed;
	pthread_mutex_unlock(&h->lock);
	return n;
}

H_FN int64_t
h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- raw peers, for what the client library would never send ---- */

H_FN void
h_sun(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	assert_true(strlen(path) < sizeof sun->sun_path);
	memcpy(sun->sun_path, path, strlen(path) + 1);
}

H_FN int
raw_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	h_sun(path, &sun);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_not_equal(fd, -1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	return fd;
}

H_FN void
raw_send(int fd, json_t *m)
{
	struct vg_err err;

	assert_int_equal(ipc_send(fd, m, &err), 0);
}

H_FN void
raw_send_str(int fd, const char *body)
{
	size_t len = strlen(body);
	unsigned char h[4] = { len >> 24, len >> 16, len >> 8, len };

	assert_int_equal(write(fd, h, 4), 4);
	assert_int_equal(write(fd, body, len), (ssize_t)len);
}

/* The next message within ms, or NULL (err says why). */
H_FN json_t *
raw_recv(int fd, int ms, struct vg_err *err)
{
	vg_err_clear(err);
	return ipc_recv(fd, ms, err);
}

/* True when the server closed fd within ms (reading what comes first). */
H_FN int
raw_closed_within(int fd, int ms)
{
	struct pollfd pfd;
	char buf[4096];
	int64_t end = h_now_ms() + ms;
	ssize_t n;

	for (;;) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, (int)(end - h_now_ms() > 0 ?
		    end - h_now_ms() : 0)) <= 0)
			return 0;
		n = read(fd, buf, sizeof buf);
		if (n == 0 || (n == -1 && errno == ECONNRESET))
			return 1;
		if (n == -1)
			return 0;
	}
}

H_FN void
raw_hello(int fd, const char *role)
{
	struct vg_err err;
	json_t *m, *a;

	m = json_pack("{s:i, s:s, s:{s:i, s:s}}", "id", 0, "method", "hello",
	    "params", "version", IPC_PROTOCOL_VERSION, "role", role);
	raw_send(fd, m);
	json_decref(m);
	a = raw_recv(fd, 2000, &err);
	if (a == NULL)
		fail_msg("no answer to hello: %s", err.msg);
	assert_true(json_is_true(json_object_get(a, "ok")));
	json_decref(a);
}

#endif
