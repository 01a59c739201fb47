/*
 * fuzz_ipc.c: libFuzzer target for what a peer of the control socket can
 * send: the frame reader, the JSON decoder, the request shape check and the
 * control dispatch behind it.
 *
 * The first byte picks the path:
 *   even: the rest is a byte stream from a peer, read as frames
 *         (ipc_read_frame) through a socketpair until the end or an error;
 *   odd:  the rest is one frame body: ipc_decode, server_check_request, and
 *         for the methods that only read or validate, control_handle()
 *         against a real, empty state folder (bit 1 picks an admin peer).
 * Every answer must be a JSON object that fits a frame.
 *
 * Built with libFuzzer under clang (-DVIGIL_FUZZ=ON).  Without it the same
 * file links with fuzz_replay.c, which replays the seed corpus as a test.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"
#include "common/log.h"
#include "db/store.h"
#include "scheduler/control.h"
#include "scheduler/server.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Methods that write nothing but the state database.  "run" is left out:
 * it would copy whatever an imported job names. */
static const char *const fuzz_methods[] = {
	"jobs.import", "jobs.export", "jobs.list", "jobs.show", "history",
	"log",
};

static char		 fuzz_dir[256];
static struct vg_store	*fuzz_store;

static void
fuzz_cleanup(void)
{
	char p[300];

	store_close(fuzz_store);
	snprintf(p, sizeof p, "%s/vigil.db", fuzz_dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/vigil.db-wal", fuzz_dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/vigil.db-shm", fuzz_dir);
	unlink(p);
	rmdir(fuzz_dir);
}

static void
fuzz_init(void)
{
	struct vg_err err;
	const char *tmp;
	char p[300];

	if (fuzz_store != NULL)
		return;
	log_init("fuzz_ipc", LOG_TARGET_STDERR, 0);
	if ((tmp = getenv("TMPDIR")) == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	snprintf(fuzz_dir, sizeof fuzz_dir, "%s/vigil-fuzz-XXXXXX", tmp);
	if (mkdtemp(fuzz_dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(p, sizeof p, "%s/vigil.db", fuzz_dir);
	if (store_open(p, &fuzz_store, &err) == -1) {
		fprintf(stderr, "store_open: %s\n", err.msg);
		abort();
	}
	atexit(fuzz_cleanup);
}

static void
fuzz_check_answer(json_t *resp)
{
	char *s;

	if (!json_is_object(resp))
		abort();
	if ((s = json_dumps(resp, JSON_COMPACT)) == NULL)
		abort();
	if (strlen(s) > IPC_FRAME_MAX)
		abort();
	free(s);
}

static void
fuzz_stream(const uint8_t *data, size_t size)
{
	struct ipc_conn c;
	struct vg_err err;
	json_t *msg;
	enum ipc_read_result r;
	int sv[2];

	if (size > 64 * 1024)
		return;		/* more than a socket holds unread */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1)
		abort();
	if (size > 0 && write(sv[0], data, size) != (ssize_t)size)
		abort();
	close(sv[0]);
	ipc_conn_init(&c, sv[1]);
	for (;;) {
		r = ipc_read_frame(&c, &msg, &err);
		if (r != IPC_READ_MSG)
			break;
		if (!json_is_object(msg))
			abort();
		json_decref(msg);
	}
	/* A blocking socket with its writer gone never says "again". */
	if (r == IPC_READ_AGAIN)
		abort();
	ipc_conn_reset(&c);
	close(sv[1]);
}

static void
fuzz_request(const uint8_t *data, size_t size, int admin)
{
	struct control_ctx ctx;
	struct control_peer peer;
	struct vg_err err;
	const char *method;
	json_t *msg, *id, *resp;
	size_t i;

	if ((msg = ipc_decode((const char *)data, size, &err)) == NULL)
		return;
	if (server_check_request(msg, &method, &id, &err) == -1)
		goto out;
	for (i = 0; i < sizeof fuzz_methods / sizeof fuzz_methods[0]; i++)
		if (strcmp(method, fuzz_methods[i]) == 0)
			break;
	if (i == sizeof fuzz_methods / sizeof fuzz_methods[0])
		goto out;
	memset(&ctx, 0, sizeof ctx);
	ctx.store = fuzz_store;
	ctx.state_dir = fuzz_dir;
	memset(&peer, 0, sizeof peer);
	peer.uid = admin ? 0 : 1000;
	peer.gid = peer.uid;
	peer.pid = 1;
	peer.admin = admin;
	resp = control_handle(&ctx, &peer, msg);
	fuzz_check_answer(resp);
	json_decref(resp);
out:
	json_decref(msg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	fuzz_init();
	if ((data[0] & 1) == 0)
		fuzz_stream(data + 1, size - 1);
	else
		fuzz_request(data + 1, size - 1, (data[0] & 2) != 0);
	return 0;
}
