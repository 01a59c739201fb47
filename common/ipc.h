/*
 * ipc.h: framing of vigil's control socket.
 *
 * A frame is a 4-byte big-endian length, then that many bytes of one UTF-8
 * JSON object.  A length of 0 or above IPC_FRAME_MAX is rejected before any
 * allocation, and the peer that sent it is dropped.  The first message on a
 * connection is "hello" with the protocol version and the role.
 *
 * Bump IPC_PROTOCOL_VERSION when a message changes incompatibly (a field
 * removed or its meaning changed); adding fields or methods does not need a
 * bump.  docs/protocol.md changes together with this file.
 *
 * Ownership: struct ipc_conn owns its buffers (ipc_conn_reset() frees them,
 * not the fd).  ipc_read_frame() hands back a new json_t reference the caller
 * decrefs.  ipc_queue() does not steal the message.
 */
#ifndef VIGIL_IPC_H
#define VIGIL_IPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define IPC_PROTOCOL_VERSION	1
#define IPC_FRAME_MAX		(1024 * 1024)
/* Bytes queued for a peer that does not read before it is dropped. */
#define IPC_OUT_MAX		(8 * 1024 * 1024)

struct ipc_conn {
	int		 fd;
	unsigned char	 hdr[4];
	size_t		 hdr_got;
	char		*in;		/* frame body being read */
	size_t		 in_len, in_got;
	char		*out;		/* queued bytes not yet written */
	size_t		 out_len, out_off, out_cap;
	size_t		 out_max;	/* queue limit; 0 means IPC_OUT_MAX */
};

void	ipc_conn_init(struct ipc_conn *c, int fd);
/* Free buffers; does not close fd. */
void	ipc_conn_reset(struct ipc_conn *c);

enum ipc_read_result {
	IPC_READ_MSG = 1,	/* *msg holds one object */
	IPC_READ_AGAIN = 0,	/* need more bytes (EAGAIN) */
	IPC_READ_EOF = -1,	/* peer closed cleanly between frames */
	IPC_READ_ERROR = -2,	/* bad frame or I/O error: drop the peer */
};

/* Read from a (usually non-blocking) fd; one frame at most per call. */
enum ipc_read_result ipc_read_frame(struct ipc_conn *c, json_t **msg,
	    struct vg_err *err);

/* Decode one complete frame body (used by the reader and the fuzz target). */
json_t	*ipc_decode(const char *body, size_t len, struct vg_err *err);

/* Queue msg for sending.  -1 when the queue would pass its limit (out_max,
 * or IPC_OUT_MAX) or the message is larger than IPC_FRAME_MAX; the queue is
 * then unchanged. */
int	ipc_queue(struct ipc_conn *c, json_t *msg, struct vg_err *err);
/* The same for an encoded body (one JSON object of len bytes), so that an
 * event sent to many peers is encoded once. */
int	ipc_queue_body(struct ipc_conn *c, const char *body, size_t len,
	    struct vg_err *err);
/* Write what is queued: 1 all sent, 0 some left (EAGAIN), -1 error. */
int	ipc_flush(struct ipc_conn *c, struct vg_err *err);
/* Bytes queued and not yet written. */
size_t	ipc_pending(const struct ipc_conn *c);
/* True while part of a frame (header or body) has been read. */
int	ipc_mid_frame(const struct ipc_conn *c);

/* Blocking helpers for simple clients: send one message; receive one
 * message waiting at most timeout_ms (-1 = no limit).  ipc_recv() keeps no
 * state between calls: after a timeout or an error the stream may stand
 * inside a frame, so close the connection.  Long-lived clients use
 * agent/client.h, which keeps a struct ipc_conn per connection. */
int	ipc_send(int fd, json_t *msg, struct vg_err *err);
json_t	*ipc_recv(int fd, int timeout_ms, struct vg_err *err);

#endif
