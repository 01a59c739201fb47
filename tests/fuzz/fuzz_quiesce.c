/*
 * fuzz_quiesce.c: libFuzzer target for what a session agent can send
 * (scheduler/quiesce.h): agent.register and the answers to quiesce rounds,
 * in any order, against a fake session source (common/sessions.h).
 *
 * The input is lines "OCU JSON": O the operation, C a connection digit,
 * U a uid digit (0: root, 1: 1000, 2: 1001, else 1002), JSON the params
 * (anything that does not parse is passed as NULL):
 *   R  agent.register from connection C with peer uid U
 *   P, C, O, S, X  agent.progress, agent.closed, agent.postpone,
 *      agent.resumed, and an unknown method, from connection C
 *   G  connection C closes
 *   Q  plan a round (C picks the job: alice's, root's, bob's with
 *      logged-off = skip and no postponing, a dry run, one closing no apps)
 *   T  the clock moves C * 10 s + U * 100 s; deadlines pass
 *   I  the newest round is interrupted;  F  sending to C failed
 *   L  session C is removed if present, else added (for uid U)
 *   K  claims checking on or off
 * After each line, every round is driven as the service drives it: when
 * decided, resumed (and its record built); when settled, freed.
 * Invariants: an agent is kept under the peer's uid, and (when claims are
 * checked) only for a session that uid owns; an outcome exists exactly
 * when a round is decided; every record and event is a JSON object (the
 * session list an array), and every refusal has a message.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/err.h"
#include "common/sessions.h"
#include "scheduler/quiesce.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ROUNDS	8

static const char *const fuzz_job_texts[] = {
	"[job docs]\nsource = /home/alice/Documents\n"
	"destination = /srv/b/docs\nclose-apps = auto\nwarn = 5s\n"
	"close-timeout = 5s\n",
	"[job sys]\nsource = /home\nsource = /etc\ndestination = /srv/b/sys\n"
	"close-apps = thunderbird, soffice\nmax-postpone = 3\n",
	"[job bob]\nsource = /home/bob\ndestination = /srv/b/bob\n"
	"close-apps = auto\nlogged-off = skip\nmax-postpone = 0\n",
	"[job dry]\nsource = /home/alice\ndestination = /srv/b/dry\n"
	"close-apps = auto\n",
	"[job none]\nsource = /home/alice\ndestination = /srv/b/none\n",
};
#define FUZZ_NJOBS	(sizeof fuzz_job_texts / sizeof fuzz_job_texts[0])

static struct vg_job_def *fuzz_jobs[FUZZ_NJOBS];

static uid_t
fuzz_uid(int c)
{
	switch (c) {
	case '0':
		return 0;
	case '1':
		return 1000;
	case '2':
		return 1001;
	default:
		return 1002;
	}
}

static void
fuzz_init(void)
{
	struct vg_diags d;
	size_t i;

	if (fuzz_jobs[0] != NULL)
		return;
	for (i = 0; i < FUZZ_NJOBS; i++) {
		memset(&d, 0, sizeof d);
		if ((fuzz_jobs[i] = config_parse_job(fuzz_job_texts[i],
		    &d)) == NULL) {
			diags_print(&d, stderr);
			abort();
		}
		diags_free(&d);
	}
}

static void
fuzz_session(struct vg_sessions *src, int c, uid_t uid)
{
	struct vg_session ss;
	char id[8];

	snprintf(id, sizeof id, "%c", c);
	/* the real sources only make valid ids (utmp filters its lines) */
	if (!sessions_valid_id(id))
		return;
	if (sessions_fake_remove(src, id) == 0) {
		/* as logind: a display session that ends is nobody's */
		if (c == '1')
			sessions_fake_set_display(src, 1000, NULL);
		return;
	}
	memset(&ss, 0, sizeof ss);
	snprintf(ss.id, sizeof ss.id, "%s", id);
	ss.uid = uid;
	snprintf(ss.user, sizeof ss.user, "u%u", (unsigned)uid);
	ss.klass = c == '9' ? VG_SESSION_CLASS_GREETER :
	    VG_SESSION_CLASS_USER;
	ss.type = c == '1' ? VG_SESSION_TYPE_X11 : VG_SESSION_TYPE_TTY;
	ss.state = VG_SESSION_ACTIVE;
	if (sessions_fake_add(src, &ss) == -1)
		abort();
	if (c == '1' && uid == 1000)
		sessions_fake_set_display(src, 1000, "1");
}

static void
fuzz_check_json(json_t *j)
{
	char *s;

	if (!json_is_object(j) && !json_is_array(j))
		abort();
	if ((s = json_dumps(j, JSON_COMPACT)) == NULL)
		abort();
	free(s);
	json_decref(j);
}

/* Drive every round as the service would, after each message. */
static void
fuzz_drive(struct vg_quiesce *q, struct quiesce_round **rounds, int64_t now)
{
	struct quiesce_outcome o;
	uint64_t *conns;
	size_t i, n;
	int rc;

	for (i = 0; i < FUZZ_ROUNDS; i++) {
		if (rounds[i] == NULL)
			continue;
		rc = quiesce_round_outcome(rounds[i], &o);
		if ((rc == 0) != quiesce_round_decided(rounds[i]))
			abort();
		fuzz_check_json(quiesce_round_details(rounds[i]));
		if (!quiesce_round_decided(rounds[i]))
			continue;
		if (o.reason == NULL && o.path == QUIESCE_PATH_FALLBACK)
			abort();
		conns = NULL;
		n = 0;
		if (quiesce_round_resume(q, rounds[i], now, &conns, &n) == -1)
			abort();
		if (n > 0)
			fuzz_check_json(quiesce_round_resume_event(rounds[i]));
		free(conns);
		if (quiesce_round_settled(rounds[i])) {
			quiesce_round_free(q, rounds[i]);
			rounds[i] = NULL;
		}
	}
}

static void
fuzz_plan(struct vg_quiesce *q, struct vg_sessions *src,
    struct quiesce_round **rounds, int c, int64_t now)
{
	struct quiesce_request req;
	struct quiesce_round *r;
	struct vg_session *ss = NULL;
	struct vg_err err;
	uint64_t *conns = NULL;
	size_t i, n = 0, nc = 0;
	unsigned k = (unsigned)(c - '0') % FUZZ_NJOBS;
	static int64_t run_id;

	for (i = 0; i < FUZZ_ROUNDS && rounds[i] != NULL; i++)
		;
	if (i == FUZZ_ROUNDS)
		return;
	if (sessions_list(src, &ss, &n, &err) == -1)
		return;
	memset(&req, 0, sizeof req);
	req.run_id = ++run_id;
	req.job = fuzz_jobs[k]->name;
	req.owner_uid = k == 1 ? 0 : k == 2 ? 1001 : 1000;
	req.owner = k == 1 ? "root" : NULL;
	req.def = fuzz_jobs[k];
	req.postponed = (unsigned)(run_id % 3);
	req.dry_run = k == 3;
	if ((r = quiesce_plan(q, &req, ss, n, now, &err)) == NULL) {
		fprintf(stderr, "quiesce_plan: %s\n", err.msg);
		abort();
	}
	rounds[i] = r;
	if (quiesce_round_targets(r, &conns, &nc) == 0 && nc > 0)
		fuzz_check_json(quiesce_round_event(r));
	free(conns);
	free(ss);
}

static void
fuzz_register(struct vg_quiesce *q, struct vg_sessions *src, uint64_t conn,
    uid_t uid, json_t *params, int64_t now)
{
	const struct quiesce_agent *a;
	struct vg_err err;
	json_t *result = NULL;
	uid_t owner;

	memset(&err, 0, sizeof err);
	if (quiesce_agent_register(q, src, conn, uid, NULL, params, now,
	    &result, &err) == -1) {
		if (err.msg[0] == '\0')
			abort();
		return;
	}
	if (result != NULL)
		fuzz_check_json(result);
	if ((a = quiesce_agent_find(q, conn)) == NULL || a->uid != uid)
		abort();
	if (sessions_checks_claims(src)) {
		/* the session it speaks for is one its own uid owns */
		if (sessions_session_uid(src, a->session, &owner, &err) == -1 ||
		    owner != uid)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct quiesce_round *rounds[FUZZ_ROUNDS] = { NULL };
	struct quiesce_round *changed;
	struct vg_sessions *src;
	struct vg_quiesce *q;
	struct vg_session *ss;
	struct vg_err err;
	const uint8_t *p = data, *end = data + size, *nl;
	const char *method;
	json_t *params;
	json_error_t jerr;
	int64_t now = 1000000;
	uint64_t conn;
	uid_t uid;
	size_t len, i, n;
	bool claims = true;

	if (size > 256 * 1024)
		return 0;
	fuzz_init();
	if ((src = sessions_fake_new()) == NULL || (q = quiesce_new()) == NULL)
		abort();
	fuzz_session(src, '1', 1000);	/* also alice's display session */
	fuzz_session(src, '2', 1001);

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		now += 1;
		if (len < 3)
			goto next;
		conn = (uint64_t)p[1];
		uid = fuzz_uid(p[2]);
		params = len > 3 ? json_loadb((const char *)p + 3, len - 3,
		    0, &jerr) : NULL;
		method = NULL;
		switch (p[0]) {
		case 'R':
			fuzz_register(q, src, conn, uid, params, now);
			break;
		case 'P':
			method = "agent.progress";
			break;
		case 'C':
			method = "agent.closed";
			break;
		case 'O':
			method = "agent.postpone";
			break;
		case 'S':
			method = "agent.resumed";
			break;
		case 'X':
			method = "agent.bogus";
			break;
		case 'G':
			(void)quiesce_agent_gone(q, conn, now);
			if (quiesce_agent_find(q, conn) != NULL)
				abort();
			break;
		case 'Q':
			fuzz_plan(q, src, rounds, p[1], now);
			break;
		case 'T':
			now += (int64_t)(p[1] % 10) * 10000 +
			    (int64_t)(p[2] % 10) * 100000;
			(void)quiesce_on_timeout(q, now);
			break;
		case 'I':
			for (i = FUZZ_ROUNDS; i-- > 0;)
				if (rounds[i] != NULL) {
					quiesce_round_interrupt(rounds[i],
					    "fuzz: interrupted");
					break;
				}
			break;
		case 'F':
			for (i = 0; i < FUZZ_ROUNDS; i++)
				if (rounds[i] != NULL)
					quiesce_round_send_failed(q, rounds[i],
					    conn, now);
			break;
		case 'L':
			fuzz_session(src, p[1], uid);
			break;
		case 'K':
			claims = !claims;
			sessions_fake_set_checks_claims(src, claims);
			break;
		default:
			break;
		}
		if (method != NULL) {
			changed = NULL;
			memset(&err, 0, sizeof err);
			if (quiesce_agent_message(q, conn, method, params, now,
			    &changed, &err) == -1 && err.msg[0] == '\0')
				abort();
		}
		json_decref(params);
		fuzz_drive(q, rounds, now);
		(void)quiesce_next_deadline(q);
		ss = NULL;
		n = 0;
		if (sessions_list(src, &ss, &n, &err) == 0) {
			fuzz_check_json(quiesce_sessions_json(q, "fake", ss, n,
			    now));
			free(ss);
		}
next:
		p += len + (nl != NULL);
	}
	for (i = 0; i < FUZZ_ROUNDS; i++)
		if (rounds[i] != NULL)
			quiesce_round_free(q, rounds[i]);
	quiesce_free(q);
	sessions_free(src);
	return 0;
}
