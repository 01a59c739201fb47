/* test_server.c: vigild's control socket (scheduler/server.c), a real
 * server on a temp socket with a fake dispatcher. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/wait.h>

#include <fcntl.h>
#include <grp.h>

#include "agent/client.h"
#include "tests/unit/server_harness.h"

#define NOBODY	65534

/* ---- helpers ---- */

static struct vg_client *
must_connect(struct harness *h)
{
	struct vg_client *c;
	struct vg_err err;

	vg_err_clear(&err);
	if ((c = client_connect(h->path, &err)) == NULL)
		fail_msg("client_connect: %s", err.msg);
	return c;
}

/* Call echo on c and check the answer. */
static void
must_echo(struct vg_client *c, int n)
{
	json_t *p, *res = NULL, *eo = NULL;
	struct vg_err err;

	p = json_pack("{s:i}", "n", n);
	vg_err_clear(&err);
	if (client_call(c, "echo", p, &res, &eo, 2000, &err) != 0)
		fail_msg("echo: %s", err.msg);
	assert_true(json_equal(p, res));
	json_decref(p);
	json_decref(res);
}

static json_t *
must_call(struct vg_client *c, const char *method, json_t *params)
{
	json_t *res = NULL;
	struct vg_err err;

	vg_err_clear(&err);
	if (client_call(c, method, params, &res, NULL, 2000, &err) != 0)
		fail_msg("%s: %s", method, err.msg);
	json_decref(params);
	return res;
}

static void
wait_closed(struct harness *h, int n)
{
	int64_t end = h_now_ms() + 3000;

	while (h_closed_count(h) < n && h_now_ms() < end)
		usleep(5000);
	assert_int_equal(h_closed_count(h), n);
}

/* Error answer expected: its message must hold want. */
static void
expect_error(json_t *a, const char *want)
{
	const char *m;

	if (a == NULL)
		fail_msg("no answer; expected an error with \"%s\"", want);
	assert_true(json_is_false(json_object_get(a, "ok")));
	m = json_string_value(json_object_get(json_object_get(a, "error"),
	    "message"));
	assert_non_null(m);
	if (strstr(m, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", m, want);
}

static int
is_root(void)
{
	return geteuid() == 0;
}

/*
 * Run fn in a child that becomes uid (with primary gid and supplementary
 * groups as given).  fn returns an exit code; 0 is success.
 */
static int
as_user(uid_t uid, gid_t gid, const gid_t *groups, int ngroups,
    int (*fn)(void *), void *arg)
{
	pid_t pid;
	int st;

	pid = fork();
	assert_int_not_equal(pid, -1);
	if (pid == 0) {
		if (setgroups((size_t)ngroups, groups) == -1 ||
		    setresgid(gid, gid, gid) == -1 ||
		    setresuid(uid, uid, uid) == -1)
			_exit(100);
		_exit(fn(arg));
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* ---- the handshake ---- */

static void
test_hello_answers_version_and_identity(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	json_t *hr, *w;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = must_connect(&h);
	hr = client_hello_result(c);
	assert_int_equal(json_integer_value(json_object_get(hr, "version")),
	    IPC_PROTOCOL_VERSION);
	assert_int_equal(json_integer_value(json_object_get(hr, "uid")),
	    geteuid());
	w = must_call(c, "whoami", NULL);
	assert_int_equal(json_integer_value(json_object_get(w, "uid")),
	    geteuid());
	assert_int_equal(json_integer_value(json_object_get(w, "pid")),
	    getpid());
	assert_string_equal(json_string_value(json_object_get(w, "role")),
	    "client");
	assert_int_equal(json_integer_value(json_object_get(w, "conn")),
	    json_integer_value(json_object_get(hr, "connection")));
	json_decref(w);
	must_echo(c, 1);
	client_free(c);
	h_stop(&h);
}

static void
test_hello_required_first(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_err err;
	json_t *m, *a;
	int fd;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	fd = raw_connect(h.path);
	m = json_pack("{s:i, s:s}", "id", 1, "method", "echo");
	raw_send(fd, m);
	json_decref(m);
	a = raw_recv(fd, 2000, &err);
	expect_error(a, "first message must be hello");
	assert_int_equal(json_integer_value(json_object_get(a, "id")), 1);
	json_decref(a);
	assert_true(raw_closed_within(fd, 2000));
	close(fd);
	h_stop(&h);
}

static void
test_hello_version_mismatch_closes(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_err err;
	json_t *m, *a;
	int fd;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	fd = raw_connect(h.path);
	m = json_pack("{s:i, s:s, s:{s:i, s:s}}", "id", 0, "method", "hello",
	    "params", "version", 99, "role", "client");
	raw_send(fd, m);
	json_decref(m);
	a = raw_recv(fd, 2000, &err);
	expect_error(a, "protocol version 99 is not supported");
	expect_error(a, "speaks version 1");
	json_decref(a);
	assert_true(raw_closed_within(fd, 2000));
	close(fd);
	h_stop(&h);
}

static void
test_hello_bad_role_closes(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_err err;
	json_t *m, *a;
	int fd;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	fd = raw_connect(h.path);
	m = json_pack("{s:s, s:{s:i, s:s}}", "method", "hello", "params",
	    "version", IPC_PROTOCOL_VERSION, "role", "root");
	raw_send(fd, m);
	json_decref(m);
	a = raw_recv(fd, 2000, &err);
	expect_error(a, "\"client\" or \"agent\"");
	json_decref(a);
	assert_true(raw_closed_within(fd, 2000));
	close(fd);
	h_stop(&h);
}

static void
test_agent_role_reaches_dispatcher(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;
	json_t *w;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = client_connect_role(h.path, "agent", &err);
	assert_non_null(c);
	w = must_call(c, "whoami", NULL);
	assert_string_equal(json_string_value(json_object_get(w, "role")),
	    "agent");
	json_decref(w);
	client_free(c);
	h_stop(&h);
}

/* ---- requests ---- */

static void
test_request_without_id_answered_connection_kept(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_err err;
	json_t *m, *a;
	int fd;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	fd = raw_connect(h.path);
	raw_hello(fd, "client");
	m = json_pack("{s:s}", "method", "echo");
	raw_send(fd, m);
	json_decref(m);
	a = raw_recv(fd, 2000, &err);
	expect_error(a, "needs \"id\"");
	json_decref(a);
	/* A request with a bad params shape: answered too. */
	raw_send_str(fd, "{\"id\":2,\"method\":\"echo\",\"params\":[1]}");
	a = raw_recv(fd, 2000, &err);
	expect_error(a, "\"params\" must be an object");
	json_decref(a);
	m = json_pack("{s:s, s:s, s:{s:i}}", "id", "x", "method", "echo",
	    "params", "n", 3);
	raw_send(fd, m);
	json_decref(m);
	a = raw_recv(fd, 2000, &err);
	assert_non_null(a);
	assert_string_equal(json_string_value(json_object_get(a, "id")), "x");
	assert_true(json_is_true(json_object_get(a, "ok")));
	json_decref(a);
	close(fd);
	h_stop(&h);
}

static void
test_second_hello_refused_connection_kept(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;
	json_t *res = NULL;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = must_connect(&h);
	assert_int_equal(client_call(c, "hello", NULL, &res, NULL, 2000,
	    &err), 1);
	assert_non_null(strstr(err.msg, "already"));
	must_echo(c, 4);
	client_free(c);
	h_stop(&h);
}

static void
test_async_reply_reaches_its_request(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *b;
	struct vg_err err;
	json_t *m, *a, *r;
	int fd;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	fd = raw_connect(h.path);
	raw_hello(fd, "client");
	m = json_pack("{s:s, s:s}", "id", "wait-12", "method", "defer");
	raw_send(fd, m);
	json_decref(m);
	/* Nothing yet: the answer waits for the run. */
	a = raw_recv(fd, 150, &err);
	assert_null(a);
	b = must_connect(&h);
	r = must_call(b, "release", NULL);
	assert_int_equal(json_integer_value(json_object_get(r, "sent")), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "gone")), 0);
	json_decref(r);
	a = raw_recv(fd, 2000, &err);
	assert_non_null(a);
	assert_string_equal(json_string_value(json_object_get(a, "id")),
	    "wait-12");
	assert_string_equal(json_string_value(json_object_get(a, "result")),
	    "late");
	json_decref(a);
	close(fd);
	client_free(b);
	h_stop(&h);
}

static void
test_async_reply_to_gone_connection_detected(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *b;
	json_t *m, *r;
	int fd;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	b = must_connect(&h);
	fd = raw_connect(h.path);
	raw_hello(fd, "client");
	m = json_pack("{s:i, s:s}", "id", 5, "method", "defer");
	raw_send(fd, m);
	json_decref(m);
	/* Make sure the request was taken before leaving. */
	r = must_call(b, "echo", NULL);
	json_decref(r);
	close(fd);
	wait_closed(&h, 1);
	r = must_call(b, "release", NULL);
	assert_int_equal(json_integer_value(json_object_get(r, "sent")), 0);
	assert_int_equal(json_integer_value(json_object_get(r, "gone")), 1);
	json_decref(r);
	client_free(b);
	h_stop(&h);
}

static void
test_deferred_requests_capped_per_connection(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c, *b;
	struct vg_err err;
	json_t *res = NULL, *r;
	int i;

	h_init(&h);
	h_opts(&h, &o);
	o.max_deferred = 2;
	h_start(&h, &o);
	c = must_connect(&h);
	for (i = 0; i < 2; i++)
		assert_int_equal(client_call(c, "defer", NULL, &res, NULL, 50,
		    &err), -1);
	assert_int_equal(client_call(c, "defer", NULL, &res, NULL, 2000,
	    &err), 1);
	assert_non_null(strstr(err.msg, "2 requests waiting"));
	b = must_connect(&h);
	r = must_call(b, "release", NULL);
	assert_int_equal(json_integer_value(json_object_get(r, "sent")), 2);
	json_decref(r);
	/* Answered: room again. */
	assert_int_equal(client_call(c, "defer", NULL, &res, NULL, 50, &err),
	    -1);
	assert_non_null(strstr(err.msg, "did not answer"));
	client_free(c);
	client_free(b);
	h_stop(&h);
}

/* ---- limits ---- */

static void
test_per_uid_cap(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c[3], *x;
	struct vg_err err;
	int i;

	h_init(&h);
	h_opts(&h, &o);
	o.max_per_uid = 3;
	h_start(&h, &o);
	for (i = 0; i < 3; i++)
		c[i] = must_connect(&h);
	vg_err_clear(&err);
	x = client_connect(h.path, &err);
	assert_null(x);
	assert_non_null(strstr(err.msg, "3 connections to vigild, the limit "
	    "per user"));
	/* The others keep working. */
	must_echo(c[0], 1);
	/* One leaves: room for one more. */
	client_free(c[2]);
	wait_closed(&h, 1);
	c[2] = must_connect(&h);
	must_echo(c[2], 2);
	for (i = 0; i < 3; i++)
		client_free(c[i]);
	h_stop(&h);
}

static void
test_global_cap(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c[2], *x;
	struct vg_err err;

	h_init(&h);
	h_opts(&h, &o);
	o.max_conns = 2;
	h_start(&h, &o);
	c[0] = must_connect(&h);
	c[1] = must_connect(&h);
	x = client_connect(h.path, &err);
	assert_null(x);
	assert_non_null(strstr(err.msg, "too many connections"));
	must_echo(c[1], 1);
	client_free(c[0]);
	client_free(c[1]);
	h_stop(&h);
}

static int
child_connect_echo(void *arg)
{
	struct harness *h = arg;
	struct vg_client *c;
	struct vg_err err;
	json_t *res = NULL;
	int rc;

	if ((c = client_connect(h->path, &err)) == NULL) {
		fprintf(stderr, "child: %s\n", err.msg);
		return 1;
	}
	rc = client_call(c, "whoami", NULL, &res, NULL, 2000, &err);
	if (rc != 0 || json_integer_value(json_object_get(res, "uid")) !=
	    NOBODY || json_is_true(json_object_get(res, "admin")))
		rc = 2;
	json_decref(res);
	client_free(c);
	return rc;
}

static void
test_per_uid_cap_counts_each_uid_apart(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c[2];
	struct vg_err err;

	if (!is_root())
		skip();
	h_init(&h);
	assert_int_equal(chmod(h.dir, 0755), 0);
	h_opts(&h, &o);
	o.max_per_uid = 2;
	h_start(&h, &o);
	c[0] = must_connect(&h);
	c[1] = must_connect(&h);
	assert_null(client_connect(h.path, &err));
	/* Root is at its cap; nobody is not. */
	assert_int_equal(as_user(NOBODY, NOBODY, NULL, 0, child_connect_echo,
	    &h), 0);
	client_free(c[0]);
	client_free(c[1]);
	h_stop(&h);
}

static void
test_hello_timeout_drops_silent_peer(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_err err;
	json_t *a;
	int64_t t0, dt;
	int fd;

	h_init(&h);
	h_opts(&h, &o);
	o.hello_timeout_ms = 200;
	h_start(&h, &o);
	t0 = h_now_ms();
	fd = raw_connect(h.path);
	a = raw_recv(fd, 3000, &err);
	dt = h_now_ms() - t0;
	expect_error(a, "no hello within 200 ms");
	json_decref(a);
	assert_true(raw_closed_within(fd, 2000));
	assert_true(dt >= 180);
	assert_true(dt < 2000);
	close(fd);
	/* It never said hello: the service was not told of it. */
	assert_int_equal(h_closed_count(&h), 0);
	h_stop(&h);
}

static void
test_frame_timeout_drops_slow_peer_only(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *idle;
	int64_t t0, dt;
	int fd;

	h_init(&h);
	h_opts(&h, &o);
	o.frame_timeout_ms = 300;
	o.hello_timeout_ms = 300;
	h_start(&h, &o);
	idle = must_connect(&h);
	fd = raw_connect(h.path);
	raw_hello(fd, "client");
	t0 = h_now_ms();
	assert_int_equal(write(fd, "\0\0\0", 3), 3);	/* a frame begins */
	assert_true(raw_closed_within(fd, 3000));
	dt = h_now_ms() - t0;
	assert_true(dt >= 280);
	close(fd);
	/* An idle peer past every timeout is still served. */
	usleep(400 * 1000);
	must_echo(idle, 1);
	client_free(idle);
	h_stop(&h);
}

static void
test_bad_frame_drops_only_that_peer(void **state)
{
	static const struct {
		const char	*what;
		unsigned char	 hdr[4];
		const char	*body;
	} bad[] = {
		{ "length 0", { 0, 0, 0, 0 }, NULL },
		{ "length 4 GiB", { 0xff, 0xff, 0xff, 0xff }, NULL },
		{ "length 1 MiB + 1", { 0, 0x10, 0, 1 }, NULL },
		{ "bad JSON", { 0, 0, 0, 5 }, "{\"a\":" },
		{ "not an object", { 0, 0, 0, 5 }, "[1,2]" },
	};
	struct harness h;
	struct server_opts o;
	struct vg_client *good;
	size_t i;
	int fd, before;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	good = must_connect(&h);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		before = h_closed_count(&h);
		fd = raw_connect(h.path);
		raw_hello(fd, "client");
		assert_int_equal(write(fd, bad[i].hdr, 4), 4);
		if (bad[i].body != NULL)
			assert_int_equal(write(fd, bad[i].body,
			    strlen(bad[i].body)), (ssize_t)strlen(bad[i].body));
		if (!raw_closed_within(fd, 2000))
			fail_msg("%s: the peer was not dropped", bad[i].what);
		close(fd);
		wait_closed(&h, before + 1);
		must_echo(good, (int)i);
	}
	/* Before hello too. */
	fd = raw_connect(h.path);
	assert_int_equal(write(fd, "\0\0\0\0", 4), 4);
	assert_true(raw_closed_within(fd, 2000));
	close(fd);
	must_echo(good, 99);
	client_free(good);
	h_stop(&h);
}

static void
test_peer_that_does_not_read_is_dropped(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *e;
	json_t *m, *a, *p;
	struct vg_err err;
	char *big;
	int fd, i;

	h_init(&h);
	h_opts(&h, &o);
	o.out_max = 256 * 1024;
	h_start(&h, &o);
	fd = raw_connect(h.path);
	raw_hello(fd, "client");
	m = json_pack("{s:i, s:s, s:{s:[s]}}", "id", 1, "method", "subscribe",
	    "params", "topics", "progress");
	raw_send(fd, m);
	json_decref(m);
	a = raw_recv(fd, 2000, &err);
	assert_true(json_is_true(json_object_get(a, "ok")));
	json_decref(a);
	/* fd reads no more.  Fill its socket buffer and then its queue. */
	big = malloc(64 * 1024);
	memset(big, 'p', 64 * 1024 - 1);
	big[64 * 1024 - 1] = '\0';
	e = must_connect(&h);
	for (i = 0; i < 40 && h_closed_count(&h) == 0; i++) {
		p = json_pack("{s:s, s:{s:s}}", "topic", "progress", "data",
		    "path", big);
		json_decref(must_call(e, "emit", p));
	}
	wait_closed(&h, 1);
	/* The service and the emitter go on. */
	must_echo(e, 1);
	client_free(e);
	free(big);
	close(fd);
	h_stop(&h);
}

static void
test_write_timeout_drops_stalled_reader(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *e;
	json_t *m, *a, *p;
	struct vg_err err;
	char *big;
	int fd, i;
	int64_t t0;

	h_init(&h);
	h_opts(&h, &o);
	o.write_timeout_ms = 800;
	h_start(&h, &o);
	fd = raw_connect(h.path);
	raw_hello(fd, "client");
	m = json_pack("{s:i, s:s, s:{s:[s]}}", "id", 1, "method", "subscribe",
	    "params", "topics", "progress");
	raw_send(fd, m);
	json_decref(m);
	a = raw_recv(fd, 2000, &err);
	json_decref(a);
	big = malloc(64 * 1024);
	memset(big, 'p', 64 * 1024 - 1);
	big[64 * 1024 - 1] = '\0';
	e = must_connect(&h);
	/* 1.5 MiB: more than the socket holds, less than the queue. */
	for (i = 0; i < 24; i++) {
		p = json_pack("{s:s, s:{s:s}}", "topic", "progress", "data",
		    "path", big);
		json_decref(must_call(e, "emit", p));
	}
	t0 = h_now_ms();
	assert_int_equal(h_closed_count(&h), 0);
	wait_closed(&h, 1);
	assert_true(h_now_ms() - t0 < 3000);
	must_echo(e, 1);
	client_free(e);
	free(big);
	close(fd);
	h_stop(&h);
}

/* ---- events ---- */

struct sub_child {
	struct harness	*h;
	int		 ready;		/* write end: "R" when subscribed */
	int		 result;	/* write end: the n values seen */
};

static int
child_subscribe(void *arg)
{
	struct sub_child *s = arg;
	const char *topics[] = { "progress", NULL };
	struct vg_client *c;
	struct vg_err err;
	json_t *ev;
	char buf[64];
	size_t off = 0;

	if ((c = client_connect(s->h->path, &err)) == NULL) {
		fprintf(stderr, "child: %s\n", err.msg);
		return 1;
	}
	if (client_subscribe(c, topics, 2000, &err) == -1)
		return 2;
	if (write(s->ready, "R", 1) != 1)
		return 3;
	while ((ev = client_next_event(c, 700, &err)) != NULL) {
		off += (size_t)snprintf(buf + off, sizeof buf - off, "%lld,",
		    (long long)json_integer_value(json_object_get(
		    json_object_get(ev, "data"), "n")));
		json_decref(ev);
	}
	if (write(s->result, buf, off) != (ssize_t)off)
		return 4;
	client_free(c);
	return 0;
}

static char *
events_seen(struct vg_client *c)
{
	struct vg_err err;
	json_t *ev;
	char *buf = calloc(1, 64);
	size_t off = 0;

	while ((ev = client_next_event(c, 300, &err)) != NULL) {
		off += (size_t)snprintf(buf + off, 64 - off, "%lld,",
		    (long long)json_integer_value(json_object_get(
		    json_object_get(ev, "data"), "n")));
		json_decref(ev);
	}
	return buf;
}

static void
emit(struct vg_client *c, const char *topic, int owner, int n)
{
	json_t *p;

	p = owner >= 0 ?
	    json_pack("{s:s, s:i, s:{s:i}}", "topic", topic, "owner", owner,
	    "data", "n", n) :
	    json_pack("{s:s, s:{s:i}}", "topic", topic, "data", "n", n);
	json_decref(must_call(c, "emit", p));
}

static void
test_broadcast_reaches_owner_and_admin_only(void **state)
{
	const char *progress[] = { "progress", NULL };
	const char *alert[] = { "alert", NULL };
	struct harness h;
	struct server_opts o;
	struct sub_child s;
	struct vg_client *admin, *other_topic, *unsubscribed;
	struct vg_err err;
	int ready[2], result[2], st;
	char buf[64], *seen;
	ssize_t n;
	pid_t pid;

	if (!is_root())
		skip();
	h_init(&h);
	assert_int_equal(chmod(h.dir, 0755), 0);
	h_opts(&h, &o);
	h_start(&h, &o);
	admin = must_connect(&h);
	assert_int_equal(client_subscribe(admin, progress, 2000, &err), 0);
	other_topic = must_connect(&h);
	assert_int_equal(client_subscribe(other_topic, alert, 2000, &err), 0);
	unsubscribed = must_connect(&h);
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(result), 0);
	s.h = &h;
	s.ready = ready[1];
	s.result = result[1];
	pid = fork();
	assert_int_not_equal(pid, -1);
	if (pid == 0) {
		if (setgroups(0, NULL) == -1 ||
		    setresgid(NOBODY, NOBODY, NOBODY) == -1 ||
		    setresuid(NOBODY, NOBODY, NOBODY) == -1)
			_exit(100);
		_exit(child_subscribe(&s));
	}
	close(ready[1]);
	close(result[1]);
	assert_int_equal(read(ready[0], buf, 1), 1);
	emit(unsubscribed, "progress", NOBODY, 1);	/* nobody's run */
	emit(unsubscribed, "progress", 4242, 2);	/* someone else's */
	emit(unsubscribed, "progress", -1, 3);		/* everyone's */
	emit(unsubscribed, "alert", NOBODY, 4);		/* another topic */
	n = read(result[0], buf, sizeof buf - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* The owner sees its own and the general one, not 4242's. */
	assert_string_equal(buf, "1,3,");
	/* Root (admin) sees every progress event. */
	seen = events_seen(admin);
	assert_string_equal(seen, "1,2,3,");
	free(seen);
	seen = events_seen(other_topic);
	assert_string_equal(seen, "4,");
	free(seen);
	seen = events_seen(unsubscribed);
	assert_string_equal(seen, "");
	free(seen);
	close(ready[0]);
	close(result[0]);
	client_free(admin);
	client_free(other_topic);
	client_free(unsubscribed);
	h_stop(&h);
}

static void
test_subscribe_unknown_topic_refused(void **state)
{
	const char *bad[] = { "progress", "secrets", NULL };
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = must_connect(&h);
	vg_err_clear(&err);
	assert_int_equal(client_subscribe(c, bad, 2000, &err), -1);
	assert_non_null(strstr(err.msg, "unknown topic secrets"));
	assert_non_null(strstr(err.msg, "run-finished"));
	must_echo(c, 1);
	client_free(c);
	h_stop(&h);
}

/* ---- admin ---- */

struct admin_child {
	struct harness	*h;
	int		 want_admin;
};

static int
child_whoami_admin(void *arg)
{
	struct admin_child *a = arg;
	struct vg_client *c;
	struct vg_err err;
	json_t *res = NULL;
	int admin;

	if ((c = client_connect(a->h->path, &err)) == NULL)
		return 1;
	if (client_call(c, "whoami", NULL, &res, NULL, 2000, &err) != 0)
		return 2;
	admin = json_is_true(json_object_get(res, "admin"));
	json_decref(res);
	client_free(c);
	return admin == a->want_admin ? 0 : 3;
}

static void
test_admin_by_group_from_kernel(void **state)
{
	struct harness h;
	struct server_opts o;
	struct admin_child a;
	struct group *gr;
	gid_t admin_gid, other = 1, sup[1];

	if (!is_root() || (gr = getgrnam("nogroup")) == NULL) {
		skip();
		return;	/* skip() jumps out, but is not noreturn */
	}
	admin_gid = gr->gr_gid;
	h_init(&h);
	assert_int_equal(chmod(h.dir, 0755), 0);
	h_opts(&h, &o);
	o.admin_group = "nogroup";
	h_start(&h, &o);
	a.h = &h;
	/* Primary group. */
	a.want_admin = 1;
	assert_int_equal(as_user(NOBODY, admin_gid, NULL, 0,
	    child_whoami_admin, &a), 0);
	/* Supplementary group (SO_PEERGROUPS). */
	sup[0] = admin_gid;
	assert_int_equal(as_user(NOBODY, other, sup, 1, child_whoami_admin,
	    &a), 0);
	/* Neither. */
	a.want_admin = 0;
	assert_int_equal(as_user(NOBODY, other, NULL, 0, child_whoami_admin,
	    &a), 0);
	h_stop(&h);
}

/* ---- the socket file ---- */

static void
test_socket_mode_applied(void **state)
{
	const mode_t modes[] = { 0600, 0666 };
	struct harness h;
	struct server_opts o;
	struct stat st;
	size_t i;

	for (i = 0; i < 2; i++) {
		h_init(&h);
		h_opts(&h, &o);
		o.mode = modes[i];
		h_start(&h, &o);
		assert_int_equal(lstat(h.path, &st), 0);
		assert_true(S_ISSOCK(st.st_mode));
		assert_int_equal(st.st_mode & 07777, modes[i]);
		h_stop(&h);
	}
}

static void
test_stale_socket_replaced(void **state)
{
	struct harness h;
	struct server_opts o;
	struct sockaddr_un sun;
	struct vg_client *c;
	int fd;

	h_init(&h);
	/* A socket left by a service that died: bound, nobody listens. */
	h_sun(h.path, &sun);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	close(fd);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = must_connect(&h);
	must_echo(c, 1);
	client_free(c);
	h_stop(&h);
}

static void
test_live_socket_not_taken_over(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_server *second;
	struct vg_client *c;
	struct vg_err err;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	vg_err_clear(&err);
	second = server_new(h.path, &o, &err);
	assert_null(second);
	assert_int_equal(err.code, VG_ERR_EXISTS);
	assert_non_null(strstr(err.msg, "another vigild already listens"));
	c = must_connect(&h);
	must_echo(c, 1);
	client_free(c);
	h_stop(&h);
}

static void
test_symlink_at_socket_path_refused(void **state)
{
	struct harness h;
	struct server_opts o;
	struct stat st;
	struct vg_err err;
	char target[192];

	h_init(&h);
	snprintf(target, sizeof target, "%s/elsewhere", h.dir);
	assert_int_equal(symlink(target, h.path), 0);
	h_opts(&h, &o);
	vg_err_clear(&err);
	assert_null(server_new(h.path, &o, &err));
	assert_non_null(strstr(err.msg, "is a symbolic link"));
	assert_non_null(strstr(err.msg, h.path));
	/* Nothing was created through it, and the link is left alone. */
	assert_int_equal(lstat(target, &st), -1);
	assert_int_equal(lstat(h.path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	unlink(h.path);
	h_stop(&h);
}

static void
test_regular_file_at_socket_path_refused(void **state)
{
	struct harness h;
	struct server_opts o;
	struct stat st;
	struct vg_err err;
	int fd;

	h_init(&h);
	fd = open(h.path, O_CREAT | O_WRONLY, 0600);
	assert_int_not_equal(fd, -1);
	assert_int_equal(write(fd, "data", 4), 4);
	close(fd);
	h_opts(&h, &o);
	assert_null(server_new(h.path, &o, &err));
	assert_non_null(strstr(err.msg, "is not a socket"));
	assert_int_equal(stat(h.path, &st), 0);
	assert_int_equal(st.st_size, 4);
	unlink(h.path);
	h_stop(&h);
}

static void
test_parent_folder_created_or_required(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_server *srv;
	struct vg_err err;
	struct stat st;
	char sub[160], path[192];
	mode_t old;

	h_init(&h);
	snprintf(sub, sizeof sub, "%s/run", h.dir);
	snprintf(path, sizeof path, "%s/vigil.sock", sub);
	h_opts(&h, &o);
	assert_null(server_new(path, &o, &err));
	assert_non_null(strstr(err.msg, sub));
	o.make_parent = true;
	old = umask(077);
	srv = server_new(path, &o, &err);
	umask(old);
	assert_non_null(srv);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	server_free(srv);
	/* server_free removed its socket. */
	assert_int_equal(lstat(path, &st), -1);
	rmdir(sub);
	h_stop(&h);
}

static void
test_parent_writable_by_others_refused(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_server *srv;
	struct vg_err err;

	h_init(&h);
	assert_int_equal(chmod(h.dir, 0777), 0);
	h_opts(&h, &o);
	assert_null(server_new(h.path, &o, &err));
	assert_non_null(strstr(err.msg, "writable by others"));
	/* Sticky, as /tmp: others cannot remove our socket. */
	assert_int_equal(chmod(h.dir, 01777), 0);
	srv = server_new(h.path, &o, &err);
	assert_non_null(srv);
	server_free(srv);
	h_stop(&h);
}

/* ---- memory ---- */

static long
rss_kib(void)
{
	FILE *fp;
	long pages = 0, rss = 0;

	if ((fp = fopen("/proc/self/statm", "r")) == NULL)
		return -1;
	if (fscanf(fp, "%ld %ld", &pages, &rss) != 2)
		rss = -1;
	fclose(fp);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void
test_ten_thousand_connections_keep_memory_bounded(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	int fds[64], round, i;
	long before = 0, after;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	for (round = 0; round < 160; round++) {
		/* 64 at once: 32 accepted (the cap), 32 refused. */
		for (i = 0; i < 64; i++) {
			fds[i] = raw_connect(h.path);
			if (i % 2 == 0)
				/* half a frame, then gone; the refused
				 * ones are closed already */
				(void)send(fds[i], "\0\0\0\x08{\"a\":", 9,
				    MSG_NOSIGNAL);
		}
		for (i = 0; i < 64; i++)
			close(fds[i]);
		if (round == 20)
			before = rss_kib();
	}
	/* Every connection is let go (the last closes may still be on
	 * their way), and the service still answers. */
	c = NULL;
	for (i = 0; i < 300 && c == NULL; i++) {
		struct vg_err err;

		if ((c = client_connect(h.path, &err)) == NULL)
			usleep(10 * 1000);
	}
	assert_non_null(c);
	must_echo(c, 1);
	client_free(c);
	after = rss_kib();
#if defined(__SANITIZE_ADDRESS__)
	(void)before;
	(void)after;	/* ASan keeps freed memory in quarantine. */
#else
	print_message("RSS after 1,344 connections %ld KiB, after 10,240 "
	    "%ld KiB\n", before, after);
	assert_true(after - before < 4096);
#endif
	h_stop(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_answers_version_and_identity),
		cmocka_unit_test(test_hello_required_first),
		cmocka_unit_test(test_hello_version_mismatch_closes),
		cmocka_unit_test(test_hello_bad_role_closes),
		cmocka_unit_test(test_agent_role_reaches_dispatcher),
		cmocka_unit_test(
		    test_request_without_id_answered_connection_kept),
		cmocka_unit_test(test_second_hello_refused_connection_kept),
		cmocka_unit_test(test_async_reply_reaches_its_request),
		cmocka_unit_test(test_async_reply_to_gone_connection_detected),
		cmocka_unit_test(test_deferred_requests_capped_per_connection),
		cmocka_unit_test(test_per_uid_cap),
		cmocka_unit_test(test_global_cap),
		cmocka_unit_test(test_per_uid_cap_counts_each_uid_apart),
		cmocka_unit_test(test_hello_timeout_drops_silent_peer),
		cmocka_unit_test(test_frame_timeout_drops_slow_peer_only),
		cmocka_unit_test(test_bad_frame_drops_only_that_peer),
		cmocka_unit_test(test_peer_that_does_not_read_is_dropped),
		cmocka_unit_test(test_write_timeout_drops_stalled_reader),
		cmocka_unit_test(test_broadcast_reaches_owner_and_admin_only),
		cmocka_unit_test(test_subscribe_unknown_topic_refused),
		cmocka_unit_test(test_admin_by_group_from_kernel),
		cmocka_unit_test(test_socket_mode_applied),
		cmocka_unit_test(test_stale_socket_replaced),
		cmocka_unit_test(test_live_socket_not_taken_over),
		cmocka_unit_test(test_symlink_at_socket_path_refused),
		cmocka_unit_test(test_regular_file_at_socket_path_refused),
		cmocka_unit_test(test_parent_folder_created_or_required),
		cmocka_unit_test(test_parent_writable_by_others_refused),
		cmocka_unit_test(
		    test_ten_thousand_connections_keep_memory_bounded),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
