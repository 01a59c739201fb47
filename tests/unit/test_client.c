/* test_client.c: the client side of the control socket (agent/client.c),
 * against a real server on a temp socket. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/time.h>
#include <sys/wait.h>

#include <grp.h>

#include "agent/client.h"
#include "tests/unit/server_harness.h"

static void
clear_env(void)
{
	unsetenv("VIGIL_SOCKET");
	unsetenv("XDG_RUNTIME_DIR");
}

/* True when a system service answers on the system socket here. */
static int
system_service_runs(void)
{
	struct vg_client *c;
	struct vg_err err;

	clear_env();
	if ((c = client_connect(CLIENT_SYSTEM_SOCKET, &err)) == NULL)
		return 0;
	client_free(c);
	return 1;
}

static void
test_no_service_says_how_to_start_it(void **state)
{
	struct harness h;
	struct vg_err err;

	h_init(&h);
	clear_env();
	vg_err_clear(&err);
	assert_null(client_connect(h.path, &err));
	assert_non_null(strstr(err.msg, h.path));
	assert_non_null(strstr(err.msg, "no such socket"));
	assert_non_null(strstr(err.msg, "systemctl start vigild"));
	assert_non_null(strstr(err.msg, "vigild --user &"));
	h_stop(&h);
}

static void
test_stale_socket_reported_as_not_listening(void **state)
{
	struct harness h;
	struct sockaddr_un sun;
	struct vg_err err;
	int fd;

	h_init(&h);
	h_sun(h.path, &sun);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	close(fd);
	assert_null(client_connect(h.path, &err));
	assert_non_null(strstr(err.msg, "no service listens"));
	assert_non_null(strstr(err.msg, "systemctl start vigild"));
	h_stop(&h);
}

static void
test_env_socket_used_and_explicit_path_wins(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	clear_env();
	setenv("VIGIL_SOCKET", h.path, 1);
	c = client_connect(NULL, &err);
	assert_non_null(c);
	assert_string_equal(client_path(c), h.path);
	client_free(c);
	/* --socket beats VIGIL_SOCKET. */
	setenv("VIGIL_SOCKET", "/nonexistent/vigil.sock", 1);
	c = client_connect(h.path, &err);
	assert_non_null(c);
	assert_string_equal(client_path(c), h.path);
	client_free(c);
	/* And VIGIL_SOCKET, when set, is the only one tried. */
	setenv("XDG_RUNTIME_DIR", h.dir, 1);
	assert_null(client_connect(NULL, &err));
	assert_non_null(strstr(err.msg, "/nonexistent/vigil.sock"));
	assert_null(strstr(err.msg, CLIENT_SYSTEM_SOCKET));
	clear_env();
	h_stop(&h);
}

static void
test_user_socket_found_through_runtime_dir(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;
	char want[192];

	h_init(&h);
	snprintf(h.path, sizeof h.path, "%s/vigil/vigil.sock", h.dir);
	h_opts(&h, &o);
	o.make_parent = true;
	o.mode = 0600;
	h_start(&h, &o);
	clear_env();
	setenv("XDG_RUNTIME_DIR", h.dir, 1);
	vg_err_clear(&err);
	c = client_connect(NULL, &err);
	if (c == NULL)
		fail_msg("client_connect: %s", err.msg);
	snprintf(want, sizeof want, "%s/vigil/vigil.sock", h.dir);
	assert_string_equal(client_path(c), want);
	client_free(c);
	clear_env();
	h_stop(&h);
	snprintf(want, sizeof want, "%s/vigil", h.dir);
	rmdir(want);
	rmdir(h.dir);
}

static void
test_without_user_service_both_paths_named(void **state)
{
	struct harness h;
	struct vg_err err;

	if (system_service_runs())
		skip();
	h_init(&h);
	setenv("XDG_RUNTIME_DIR", h.dir, 1);
	assert_null(client_connect(NULL, &err));
	assert_non_null(strstr(err.msg, h.dir));
	assert_non_null(strstr(err.msg, CLIENT_SYSTEM_SOCKET));
	assert_non_null(strstr(err.msg, "systemctl start vigild"));
	clear_env();
	h_stop(&h);
}

static void
test_error_answer_gives_code_and_object(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;
	json_t *res = NULL, *eo = NULL;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = client_connect(h.path, &err);
	assert_non_null(c);
	vg_err_clear(&err);
	assert_int_equal(client_call(c, "no.such.method", NULL, &res, &eo,
	    2000, &err), 1);
	assert_null(res);
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_string_equal(err.msg, "unknown method");
	assert_string_equal(json_string_value(json_object_get(eo, "code")),
	    "invalid");
	json_decref(eo);
	client_free(c);
	h_stop(&h);
}

static void
test_late_answer_not_taken_for_the_next(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c, *b;
	struct vg_err err;
	json_t *res = NULL, *p;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = client_connect(h.path, &err);
	b = client_connect(h.path, &err);
	assert_non_null(c);
	assert_non_null(b);
	vg_err_clear(&err);
	assert_int_equal(client_call(c, "defer", NULL, &res, NULL, 100, &err),
	    -1);
	assert_non_null(strstr(err.msg, "did not answer defer within 100 "
	    "ms"));
	assert_int_equal(client_call(b, "release", NULL, &res, NULL, 2000,
	    &err), 0);
	json_decref(res);
	/* The late "late" arrives first; echo must get its own answer. */
	p = json_pack("{s:i}", "n", 42);
	assert_int_equal(client_call(c, "echo", p, &res, NULL, 2000, &err),
	    0);
	assert_true(json_equal(res, p));
	json_decref(res);
	json_decref(p);
	client_free(c);
	client_free(b);
	h_stop(&h);
}

struct seen {
	int	n;
	char	topic[32];
	int	last;
};

static void
on_event(void *arg, const char *topic, json_t *data)
{
	struct seen *s = arg;

	s->n++;
	snprintf(s->topic, sizeof s->topic, "%s", topic);
	s->last = (int)json_integer_value(json_object_get(data, "n"));
}

static void
emit(struct vg_client *c, int n)
{
	struct vg_err err;
	json_t *p, *res = NULL;

	p = json_pack("{s:s, s:{s:i}}", "topic", "progress", "data", "n", n);
	assert_int_equal(client_call(c, "emit", p, &res, NULL, 2000, &err),
	    0);
	json_decref(res);
	json_decref(p);
}

static void
test_events_during_a_call_go_to_the_callback(void **state)
{
	const char *topics[] = { "progress", NULL };
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;
	struct seen s;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = client_connect(h.path, &err);
	assert_non_null(c);
	assert_int_equal(client_subscribe(c, topics, 2000, &err), 0);
	memset(&s, 0, sizeof s);
	client_set_event_cb(c, on_event, &s);
	/* The event for c is pushed before emit's answer. */
	emit(c, 7);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.topic, "progress");
	assert_int_equal(s.last, 7);
	client_free(c);
	h_stop(&h);
}

static void
test_events_queued_for_next_event(void **state)
{
	const char *topics[] = { "progress", NULL };
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;
	json_t *ev;
	int i;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = client_connect(h.path, &err);
	assert_non_null(c);
	assert_int_equal(client_subscribe(c, topics, 2000, &err), 0);
	for (i = 1; i <= 3; i++)
		emit(c, i);
	for (i = 1; i <= 3; i++) {
		ev = client_next_event(c, 0, &err);
		assert_non_null(ev);
		assert_string_equal(json_string_value(json_object_get(ev,
		    "event")), "progress");
		assert_int_equal(json_integer_value(json_object_get(
		    json_object_get(ev, "data"), "n")), i);
		json_decref(ev);
	}
	/* Nothing more: a timeout, not an error. */
	assert_null(client_next_event(c, 50, &err));
	assert_int_equal(err.code, VG_OK);
	client_free(c);
	h_stop(&h);
}

static void
on_alarm(int sig)
{
	(void)sig;
}

static void
test_signal_interrupts_waiting(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;
	struct sigaction sa, old;
	struct itimerval it;
	int64_t t0;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = client_connect(h.path, &err);
	assert_non_null(c);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;	/* no SA_RESTART, as the CLI */
	sigaction(SIGALRM, &sa, &old);
	memset(&it, 0, sizeof it);
	it.it_value.tv_usec = 100 * 1000;
	t0 = h_now_ms();
	setitimer(ITIMER_REAL, &it, NULL);
	assert_null(client_next_event(c, 5000, &err));
	assert_int_equal(err.code, VG_ERR_CANCELLED);
	assert_true(h_now_ms() - t0 < 2000);
	sigaction(SIGALRM, &old, NULL);
	/* The connection is still good. */
	emit(c, 1);
	client_free(c);
	h_stop(&h);
}

static void
test_service_gone_breaks_calls(void **state)
{
	struct harness h;
	struct server_opts o;
	struct vg_client *c;
	struct vg_err err;
	json_t *res = NULL;

	h_init(&h);
	h_opts(&h, &o);
	h_start(&h, &o);
	c = client_connect(h.path, &err);
	assert_non_null(c);
	h_stop(&h);
	assert_int_equal(client_call(c, "echo", NULL, &res, NULL, 2000, &err),
	    -1);
	assert_non_null(strstr(err.msg, "closed the connection"));
	assert_int_equal(client_call(c, "echo", NULL, &res, NULL, 2000, &err),
	    -1);
	assert_non_null(strstr(err.msg, "is closed"));
	client_free(c);
}

static int
child_serve(void *arg)
{
	struct harness *h = arg;
	struct server_opts o;
	struct vg_err err;
	struct pollfd pfd;

	h_opts(h, &o);
	if ((h->srv = server_new(h->path, &o, &err)) == NULL) {
		fprintf(stderr, "child: %s\n", err.msg);
		return 1;
	}
	if (write(h->stop[1], "R", 1) != 1)
		return 2;
	for (;;) {
		pfd.fd = server_fd(h->srv);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, -1) > 0)
			server_process(h->srv);
	}
}

static void
test_service_of_another_user_refused(void **state)
{
	struct harness h;
	struct vg_err err;
	char c;
	pid_t pid;
	int st;

	if (geteuid() != 0)
		skip();
	h_init(&h);
	assert_int_equal(chown(h.dir, 65534, 65534), 0);
	assert_int_equal(pipe(h.stop), 0);
	pid = fork();
	assert_int_not_equal(pid, -1);
	if (pid == 0) {
		if (setgroups(0, NULL) == -1 ||
		    setresgid(65534, 65534, 65534) == -1 ||
		    setresuid(65534, 65534, 65534) == -1)
			_exit(100);
		_exit(child_serve(&h));
	}
	assert_int_equal(read(h.stop[0], &c, 1), 1);
	vg_err_clear(&err);
	assert_null(client_connect(h.path, &err));
	assert_non_null(strstr(err.msg, "runs as uid 65534, not root or "
	    "you"));
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	h_stop(&h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_service_says_how_to_start_it),
		cmocka_unit_test(test_stale_socket_reported_as_not_listening),
		cmocka_unit_test(test_env_socket_used_and_explicit_path_wins),
		cmocka_unit_test(test_user_socket_found_through_runtime_dir),
		cmocka_unit_test(test_without_user_service_both_paths_named),
		cmocka_unit_test(test_error_answer_gives_code_and_object),
		cmocka_unit_test(test_late_answer_not_taken_for_the_next),
		cmocka_unit_test(test_events_during_a_call_go_to_the_callback),
		cmocka_unit_test(test_events_queued_for_next_event),
		cmocka_unit_test(test_signal_interrupts_waiting),
		cmocka_unit_test(test_service_gone_breaks_calls),
		cmocka_unit_test(test_service_of_another_user_refused),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
