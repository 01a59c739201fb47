/* test_ipc.c: frames of the control socket (common/ipc.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"

/*
 * The test links with -Wl,--wrap=malloc: every malloc() made by vigil's own
 * code (not by jansson or libc inside) passes here, so a test can see the
 * largest block the frame reader asked for.
 */
void	*__real_malloc(size_t);
void	*__wrap_malloc(size_t);
static size_t malloc_largest;

void *
__wrap_malloc(size_t n)
{
	if (n > malloc_largest)
		malloc_largest = n;
	return __real_malloc(n);
}

/* A socketpair: sv[0] the writer (blocking), sv[1] the reader
 * (non-blocking). */
static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
}

static void
put_raw(int fd, const void *buf, size_t len)
{
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* Write a frame whose header says len and whose body is body. */
static void
put_frame(int fd, uint32_t len, const char *body)
{
	unsigned char h[4] = { len >> 24, len >> 16, len >> 8, len };

	put_raw(fd, h, 4);
	if (body != NULL)
		put_raw(fd, body, strlen(body));
}

static enum ipc_read_result
read_one(struct ipc_conn *c, json_t **msg, struct vg_err *err)
{
	vg_err_clear(err);
	return ipc_read_frame(c, msg, err);
}

static void
test_frame_round_trip(void **state)
{
	int sv[2];
	struct ipc_conn c;
	struct vg_err err;
	json_t *m, *got = NULL;

	pair(sv);
	m = json_pack("{s:i, s:s, s:{s:s, s:b}}", "id", 7, "method",
	    "history", "params", "job", "caf\xc3\xa9 docs", "all", 1);
	assert_int_equal(ipc_send(sv[0], m, &err), 0);
	assert_int_equal(ipc_send(sv[0], m, &err), 0);
	ipc_conn_init(&c, sv[1]);
	assert_int_equal(read_one(&c, &got, &err), IPC_READ_MSG);
	assert_true(json_equal(m, got));
	json_decref(got);
	/* Two frames back to back come out one per call. */
	assert_int_equal(read_one(&c, &got, &err), IPC_READ_MSG);
	assert_true(json_equal(m, got));
	json_decref(got);
	assert_int_equal(read_one(&c, &got, &err), IPC_READ_AGAIN);
	assert_null(got);
	close(sv[0]);
	assert_int_equal(read_one(&c, &got, &err), IPC_READ_EOF);
	ipc_conn_reset(&c);
	close(sv[1]);
	json_decref(m);
}

static void
test_split_reads_one_byte_at_a_time(void **state)
{
	int sv[2];
	struct ipc_conn out, in;
	struct vg_err err;
	json_t *m, *got = NULL;
	size_t i, total;

	pair(sv);
	m = json_pack("{s:i, s:s, s:[i,i,i]}", "id", 1, "method", "x",
	    "params", 1, 2, 3);
	/* Encode two frames with the queue, then trickle the bytes. */
	ipc_conn_init(&out, -1);
	assert_int_equal(ipc_queue(&out, m, &err), 0);
	assert_int_equal(ipc_queue(&out, m, &err), 0);
	total = ipc_pending(&out);
	ipc_conn_init(&in, sv[1]);
	for (i = 0; i < total; i++) {
		put_raw(sv[0], out.out + i, 1);
		if (i == total / 2 - 1 || i == total - 1) {
			assert_int_equal(read_one(&in, &got, &err),
			    IPC_READ_MSG);
			assert_true(json_equal(m, got));
			json_decref(got);
			got = NULL;
			assert_false(ipc_mid_frame(&in));
		} else {
			assert_int_equal(read_one(&in, &got, &err),
			    IPC_READ_AGAIN);
			assert_null(got);
			assert_true(ipc_mid_frame(&in));
		}
	}
	ipc_conn_reset(&out);
	ipc_conn_reset(&in);
	close(sv[0]);
	close(sv[1]);
	json_decref(m);
}

static void
test_length_zero_rejected(void **state)
{
	int sv[2];
	struct ipc_conn c;
	struct vg_err err;
	json_t *got = NULL;

	pair(sv);
	put_frame(sv[0], 0, NULL);
	ipc_conn_init(&c, sv[1]);
	assert_int_equal(read_one(&c, &got, &err), IPC_READ_ERROR);
	assert_null(got);
	assert_int_equal(err.code, VG_ERR_PARSE);
	assert_non_null(strstr(err.msg, "frame length 0"));
	ipc_conn_reset(&c);
	close(sv[0]);
	close(sv[1]);
}

static void
test_huge_length_rejected_before_allocation(void **state)
{
	const uint32_t lens[] = { 0xFFFFFFFFu, IPC_FRAME_MAX + 1u };
	int sv[2];
	size_t i;
	struct ipc_conn c;
	struct vg_err err;
	json_t *got = NULL;

	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		pair(sv);
		put_frame(sv[0], lens[i], "{\"a\":1}");
		ipc_conn_init(&c, sv[1]);
		malloc_largest = 0;
		assert_int_equal(read_one(&c, &got, &err), IPC_READ_ERROR);
		assert_null(got);
		assert_null(c.in);
		assert_true(malloc_largest < 4096);
		assert_non_null(strstr(err.msg, "outside 1..1048576"));
		ipc_conn_reset(&c);
		close(sv[0]);
		close(sv[1]);
	}
}

/* The counterpart that shows the wrap sees the reader's buffer: a frame
 * at the limit is read, into one buffer of its size. */
static void
test_frame_at_the_limit_accepted(void **state)
{
	int sv[2];
	struct ipc_conn c;
	struct vg_err err;
	json_t *got = NULL;
	char *body;
	size_t len = IPC_FRAME_MAX;
	enum ipc_read_result r;

	pair(sv);
	body = calloc(1, len + 1);
	assert_non_null(body);
	memcpy(body, "{\"s\":\"", 6);
	memset(body + 6, 'x', len - 8);
	/* body has len + 1 zeroed bytes, so it stays a string:
	 * NOLINTNEXTLINE(bugprone-not-null-terminated-result) */
	memcpy(body + len - 2, "\"}", 2);
	ipc_conn_init(&c, sv[1]);
	malloc_largest = 0;
	put_frame(sv[0], (uint32_t)len, NULL);
	/* The socket buffer is smaller than a frame: feed and read. */
	{
		size_t off = 0;
		ssize_t n;

		assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
		r = IPC_READ_AGAIN;
		while (r == IPC_READ_AGAIN) {
			if (off < len) {
				n = write(sv[0], body + off, len - off);
				if (n > 0)
					off += (size_t)n;
				else
					assert_int_equal(errno, EAGAIN);
			}
			r = read_one(&c, &got, &err);
		}
	}
	assert_int_equal(r, IPC_READ_MSG);
	assert_int_equal(json_string_length(json_object_get(got, "s")),
	    len - 8);
	assert_true(malloc_largest >= len);
	json_decref(got);
	ipc_conn_reset(&c);
	close(sv[0]);
	close(sv[1]);
	free(body);
}

static void
test_bad_json_rejected(void **state)
{
	const char *bodies[] = {
		"{\"a\":",			/* cut short */
		"{\"a\":1,\"a\":2}",		/* duplicate key */
		"{\"a\":\"x\\u0000y\"}",	/* NUL inside a string */
		"{\"a\":1} trailing",
		"\xff\xfe{}",
	};
	int sv[2];
	size_t i;
	struct ipc_conn c;
	struct vg_err err;
	json_t *got = NULL;

	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		pair(sv);
		put_frame(sv[0], (uint32_t)strlen(bodies[i]), bodies[i]);
		ipc_conn_init(&c, sv[1]);
		assert_int_equal(read_one(&c, &got, &err), IPC_READ_ERROR);
		assert_null(got);
		assert_int_equal(err.code, VG_ERR_PARSE);
		assert_non_null(strstr(err.msg, "bad JSON in frame"));
		assert_null(c.in);
		ipc_conn_reset(&c);
		close(sv[0]);
		close(sv[1]);
	}
}

static void
test_non_object_rejected(void **state)
{
	const char *bodies[] = { "[1,2]", "\"hello\"", "42", "null", "true" };
	int sv[2];
	size_t i;
	struct ipc_conn c;
	struct vg_err err;
	json_t *got = NULL;

	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		pair(sv);
		put_frame(sv[0], (uint32_t)strlen(bodies[i]), bodies[i]);
		ipc_conn_init(&c, sv[1]);
		assert_int_equal(read_one(&c, &got, &err), IPC_READ_ERROR);
		assert_null(got);
		assert_non_null(strstr(err.msg, "must hold a JSON object"));
		ipc_conn_reset(&c);
		close(sv[0]);
		close(sv[1]);
	}
}

static void
test_peer_closing_inside_a_frame_is_an_error(void **state)
{
	int sv[2];
	struct ipc_conn c;
	struct vg_err err;
	json_t *got = NULL;

	/* Inside the header. */
	pair(sv);
	put_raw(sv[0], "\0\0", 2);
	close(sv[0]);
	ipc_conn_init(&c, sv[1]);
	assert_int_equal(read_one(&c, &got, &err), IPC_READ_ERROR);
	assert_non_null(strstr(err.msg, "header"));
	ipc_conn_reset(&c);
	close(sv[1]);
	/* Inside the body. */
	pair(sv);
	put_frame(sv[0], 10, "{\"a\"");
	close(sv[0]);
	ipc_conn_init(&c, sv[1]);
	assert_int_equal(read_one(&c, &got, &err), IPC_READ_ERROR);
	assert_non_null(strstr(err.msg, "inside a frame"));
	ipc_conn_reset(&c);
	close(sv[1]);
}

static void
test_output_queue_limit(void **state)
{
	struct ipc_conn c;
	struct vg_err err;
	json_t *m;
	size_t one, before;
	int n = 0;

	m = json_pack("{s:s}", "event", "progress");
	ipc_conn_init(&c, -1);
	assert_int_equal(ipc_queue(&c, m, &err), 0);
	one = ipc_pending(&c);
	assert_int_equal(one, strlen("{\"event\":\"progress\"}") + 4);
	ipc_conn_reset(&c);

	/* A small limit: exactly three frames fit. */
	ipc_conn_init(&c, -1);
	c.out_max = 3 * one;
	while (ipc_queue(&c, m, &err) == 0)
		n++;
	assert_int_equal(n, 3);
	assert_int_equal(ipc_pending(&c), 3 * one);
	assert_non_null(strstr(err.msg, "does not read"));
	ipc_conn_reset(&c);

	/* The default limit is IPC_OUT_MAX. */
	ipc_conn_init(&c, -1);
	n = 0;
	while (ipc_queue(&c, m, &err) == 0)
		n++;
	assert_int_equal((size_t)n, IPC_OUT_MAX / one);
	before = ipc_pending(&c);
	assert_int_equal(ipc_queue(&c, m, &err), -1);
	assert_int_equal(ipc_pending(&c), before);
	ipc_conn_reset(&c);
	json_decref(m);
}

static void
test_message_larger_than_a_frame_not_queued(void **state)
{
	struct ipc_conn c;
	struct vg_err err;
	json_t *m;
	char *big;

	big = malloc(IPC_FRAME_MAX + 1);
	assert_non_null(big);
	memset(big, 'a', IPC_FRAME_MAX);
	big[IPC_FRAME_MAX] = '\0';
	m = json_pack("{s:s}", "s", big);
	ipc_conn_init(&c, -1);
	assert_int_equal(ipc_queue(&c, m, &err), -1);
	assert_int_equal(err.code, VG_ERR_INVALID);
	assert_int_equal(ipc_pending(&c), 0);
	ipc_conn_reset(&c);
	json_decref(m);
	free(big);
}

static void
test_recv_times_out(void **state)
{
	int sv[2];
	struct vg_err err;
	json_t *got;

	pair(sv);
	vg_err_clear(&err);
	got = ipc_recv(sv[1], 50, &err);
	assert_null(got);
	assert_non_null(strstr(err.msg, "no answer within 50 ms"));
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_round_trip),
		cmocka_unit_test(test_split_reads_one_byte_at_a_time),
		cmocka_unit_test(test_length_zero_rejected),
		cmocka_unit_test(test_huge_length_rejected_before_allocation),
		cmocka_unit_test(test_frame_at_the_limit_accepted),
		cmocka_unit_test(test_bad_json_rejected),
		cmocka_unit_test(test_non_object_rejected),
		cmocka_unit_test(test_peer_closing_inside_a_frame_is_an_error),
		cmocka_unit_test(test_output_queue_limit),
		cmocka_unit_test(test_message_larger_than_a_frame_not_queued),
		cmocka_unit_test(test_recv_times_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
