/* ipc.c: length-prefixed JSON frames (see ipc.h). */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/ipc.h"

void
ipc_conn_init(struct ipc_conn *c, int fd)
{
	memset(c, 0, sizeof *c);
	c->fd = fd;
}

void
ipc_conn_reset(struct ipc_conn *c)
{
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	c->in_len = c->in_got = c->hdr_got = 0;
	c->out_len = c->out_off = c->out_cap = 0;
}

json_t *
ipc_decode(const char *body, size_t len, struct vg_err *err)
{
	json_error_t je;
	json_t *j;

	j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &je);
	if (j == NULL) {
		vg_err_set(err, VG_ERR_PARSE, "bad JSON in frame at byte %d: "
		    "%s", je.position, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		vg_err_set(err, VG_ERR_PARSE, "a frame must hold a JSON "
		    "object");
		return NULL;
	}
	return j;
}

enum ipc_read_result
ipc_read_frame(struct ipc_conn *c, json_t **msg, struct vg_err *err)
{
	ssize_t n;
	uint32_t len;
	json_t *j;

	*msg = NULL;
	while (c->hdr_got < sizeof c->hdr) {
		n = read(c->fd, c->hdr + c->hdr_got, sizeof c->hdr - c->hdr_got);
		if (n == 0) {
			if (c->hdr_got == 0)
				return IPC_READ_EOF;
			vg_err_set(err, VG_ERR_PARSE, "peer closed inside a "
			    "frame header");
			return IPC_READ_ERROR;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return IPC_READ_AGAIN;
			vg_err_sys(err, "read from peer");
			return IPC_READ_ERROR;
		}
		c->hdr_got += (size_t)n;
	}
	if (c->in == NULL) {
		len = (uint32_t)c->hdr[0] << 24 | (uint32_t)c->hdr[1] << 16 |
		    (uint32_t)c->hdr[2] << 8 | (uint32_t)c->hdr[3];
		/* Checked before any allocation. */
		if (len == 0 || len > IPC_FRAME_MAX) {
			vg_err_set(err, VG_ERR_PARSE, "frame length %u is "
			    "outside 1..%u", len, (unsigned)IPC_FRAME_MAX);
			return IPC_READ_ERROR;
		}
		if ((c->in = malloc(len)) == NULL) {
			vg_err_sys(err, "frame buffer");
			return IPC_READ_ERROR;
		}
		c->in_len = len;
		c->in_got = 0;
	}
	while (c->in_got < c->in_len) {
		n = read(c->fd, c->in + c->in_got, c->in_len - c->in_got);
		if (n == 0) {
			vg_err_set(err, VG_ERR_PARSE, "peer closed inside a "
			    "frame");
			return IPC_READ_ERROR;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return IPC_READ_AGAIN;
			vg_err_sys(err, "read from peer");
			return IPC_READ_ERROR;
		}
		c->in_got += (size_t)n;
	}
	j = ipc_decode(c->in, c->in_len, err);
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_got = c->hdr_got = 0;
	if (j == NULL)
		return IPC_READ_ERROR;
	*msg = j;
	return IPC_READ_MSG;
}

int
ipc_queue(struct ipc_conn *c, json_t *msg, struct vg_err *err)
{
	char *body;
	int rc;

	if ((body = json_dumps(msg, JSON_COMPACT)) == NULL) {
		vg_err_set(err, VG_ERR_INTERNAL, "cannot encode a message");
		return -1;
	}
	rc = ipc_queue_body(c, body, strlen(body), err);
	free(body);
	return rc;
}

int
ipc_queue_body(struct ipc_conn *c, const char *body, size_t len,
    struct vg_err *err)
{
	char *nb;
	size_t pending, max, cap;

	if (len == 0 || len > IPC_FRAME_MAX) {
		vg_err_set(err, VG_ERR_INVALID, "message of %zu bytes does "
		    "not fit a frame (1..%u bytes)", len,
		    (unsigned)IPC_FRAME_MAX);
		return -1;
	}
	max = c->out_max != 0 ? c->out_max : IPC_OUT_MAX;
	pending = c->out_len - c->out_off;
	if (pending + len + 4 > max) {
		vg_err_set(err, VG_ERR_INVALID, "peer does not read its "
		    "messages (%zu bytes waiting)", pending);
		return -1;
	}
	/* Out of room: first drop what was already sent. */
	if (c->out_len + len + 4 > c->out_cap && c->out_off > 0) {
		memmove(c->out, c->out + c->out_off, pending);
		c->out_len = pending;
		c->out_off = 0;
	}
	if (c->out_len + len + 4 > c->out_cap) {
		/* Grow by doubling (up to the limit): a peer that reads
		 * slowly must not cost a copy of the queue per message. */
		cap = c->out_cap > 0 ? c->out_cap : 4096;
		while (cap < c->out_len + len + 4)
			cap *= 2;
		if (cap > max)
			cap = max;
		if ((nb = realloc(c->out, cap)) == NULL) {
			vg_err_sys(err, "out of memory");
			return -1;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	nb = c->out + c->out_len;
	nb[0] = (char)((len >> 24) & 0xff);
	nb[1] = (char)((len >> 16) & 0xff);
	nb[2] = (char)((len >> 8) & 0xff);
	nb[3] = (char)(len & 0xff);
	memcpy(nb + 4, body, len);
	c->out_len += len + 4;
	return 0;
}

int
ipc_flush(struct ipc_conn *c, struct vg_err *err)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			vg_err_sys(err, "write to peer");
			return -1;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	/* An idle connection keeps no large buffer. */
	if (c->out_cap > 65536) {
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	return 1;
}

size_t
ipc_pending(const struct ipc_conn *c)
{
	return c->out_len - c->out_off;
}

int
ipc_mid_frame(const struct ipc_conn *c)
{
	return c->hdr_got > 0 || c->in != NULL;
}

int
ipc_send(int fd, json_t *msg, struct vg_err *err)
{
	struct ipc_conn c;
	struct pollfd pfd;
	int rc;

	ipc_conn_init(&c, fd);
	if (ipc_queue(&c, msg, err) == -1) {
		ipc_conn_reset(&c);
		return -1;
	}
	while ((rc = ipc_flush(&c, err)) == 0) {
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, -1) == -1 && errno != EINTR) {
			vg_err_sys(err, "poll");
			rc = -1;
			break;
		}
	}
	ipc_conn_reset(&c);
	return rc == 1 ? 0 : -1;
}

static int64_t
ipc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

json_t *
ipc_recv(int fd, int timeout_ms, struct vg_err *err)
{
	struct ipc_conn c;
	struct pollfd pfd;
	enum ipc_read_result r;
	json_t *msg = NULL;
	int64_t deadline = timeout_ms >= 0 ? ipc_now_ms() + timeout_ms : -1;
	int wait, pr;

	ipc_conn_init(&c, fd);
	for (;;) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		wait = -1;
		if (deadline >= 0) {
			wait = (int)(deadline - ipc_now_ms());
			if (wait < 0)
				wait = 0;
		}
		pr = poll(&pfd, 1, wait);
		if (pr == -1) {
			if (errno == EINTR) {
				vg_err_set(err, VG_ERR_CANCELLED,
				    "interrupted");
				break;
			}
			vg_err_sys(err, "poll");
			break;
		}
		if (pr == 0) {
			vg_err_set(err, VG_ERR_SYS, "no answer within %d ms",
			    timeout_ms);
			break;
		}
		r = ipc_read_frame(&c, &msg, err);
		if (r == IPC_READ_MSG)
			break;
		if (r == IPC_READ_EOF) {
			vg_err_set(err, VG_ERR_SYS, "the service closed the "
			    "connection");
			break;
		}
		if (r == IPC_READ_ERROR)
			break;
	}
	ipc_conn_reset(&c);
	return msg;
}
