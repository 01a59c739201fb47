/*
 * quiesce.c: agents and the per-run decision between the agent path and the
 * fallback (quiesce.h).  No I/O: times come in, JSON goes out.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "scheduler/quiesce.h"

enum quiesce_mstate {
	QM_ASKED = 0,		/* sent, nothing heard yet */
	QM_WARNING,		/* the user is being warned */
	QM_CLOSING,		/* apps are being closed */
	QM_CLOSED,		/* answered agent.closed */
	QM_POSTPONED,		/* answered agent.postpone */
	QM_LATE,		/* missed its deadline */
	QM_GONE,		/* disconnected (or unreachable) first */
	QM_INVALID,		/* sent an answer we could not use */
};

static const char *const quiesce_mstate_names[] = {
	[QM_ASKED] = "asked",
	[QM_WARNING] = "warning",
	[QM_CLOSING] = "closing",
	[QM_CLOSED] = "closed",
	[QM_POSTPONED] = "postponed",
	[QM_LATE] = "late",
	[QM_GONE] = "gone",
	[QM_INVALID] = "invalid",
};

enum quiesce_rstate {
	QR_NONE = 0,		/* no resume sent */
	QR_SENT,		/* waiting for agent.resumed */
	QR_DONE,		/* confirmed */
	QR_LATE,		/* not confirmed in time */
	QR_GONE,		/* disconnected before confirming */
};

static const char *const quiesce_rstate_names[] = {
	[QR_NONE] = "none",
	[QR_SENT] = "sent",
	[QR_DONE] = "confirmed",
	[QR_LATE] = "unconfirmed",
	[QR_GONE] = "gone",
};

struct quiesce_member {
	uint64_t		 conn;
	uid_t			 uid;
	char			 user[VG_SESSION_USER_MAX];
	char			 session[VG_SESSION_ID_MAX];
	enum quiesce_mstate	 state;
	enum quiesce_rstate	 resume;
	bool			 connected;
	bool			 answered;	/* agent.closed taken */
	int64_t			 last_ms;	/* its last message (or ask) */
	char			 note[QUIESCE_REASON_MAX];
};

struct quiesce_round {
	struct quiesce_round	*next;
	uint64_t		 id;
	int64_t			 run_id;
	char			 job[VG_JOB_NAME_MAX + 1];
	uid_t			 owner_uid;
	char			 owner[VG_SESSION_USER_MAX];
	struct vg_strlist	 sources;
	uint64_t		 answer_ms;	/* warn + close + margin */
	bool			 may_postpone;
	bool			 dry_run;
	uint64_t		 postpone_s;
	unsigned		 postponed;	/* before this round */
	unsigned		 max_postpone;

	enum quiesce_phase	 phase;
	struct quiesce_member	*m;
	size_t			 nm;

	/* Known at plan: logged-on users without an agent. */
	char			 plan_reason[QUIESCE_REASON_MAX];

	/* The outcome (valid from DECIDED on). */
	enum quiesce_path	 path;
	char			*reason;
	bool			 fallback_all;
	struct vg_strlist	 fallback_files;
	bool			 interrupted;
	char			*interrupt_reason;

	json_t			*event;		/* the quiesce event data */
	json_t			*sessions;	/* sessions seen at plan */
	json_t			*closed, *refused, *killed;
	json_t			*reopened, *reopen_failed;
};

struct vg_quiesce {
	struct quiesce_agent	*agents;
	size_t			 nagents, cap;
	struct quiesce_round	*rounds;
	uint64_t		 next_id;
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
quiesce_copy(char *dst, size_t dstlen, const char *src)
{
	size_t len;

	if (src == NULL)
		src = "";
	len = strnlen(src, dstlen - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void
quiesce_user_name(char *dst, size_t dstlen, const char *user, uid_t uid)
{
	if (user != NULL && user[0] != '\0')
		quiesce_copy(dst, dstlen, user);
	else
		snprintf(dst, dstlen, "uid %lu", (unsigned long)uid);
}

struct vg_quiesce *
quiesce_new(void)
{
	struct vg_quiesce *q;

	if ((q = calloc(1, sizeof *q)) == NULL)
		return NULL;
	q->next_id = 1;
	return q;
}

static void
quiesce_round_destroy(struct quiesce_round *r)
{
	if (r == NULL)
		return;
	strlist_free(&r->sources);
	strlist_free(&r->fallback_files);
	free(r->m);
	free(r->reason);
	free(r->interrupt_reason);
	json_decref(r->event);
	json_decref(r->sessions);
	json_decref(r->closed);
	json_decref(r->refused);
	json_decref(r->killed);
	json_decref(r->reopened);
	json_decref(r->reopen_failed);
	free(r);
}

void
quiesce_free(struct vg_quiesce *q)
{
	struct quiesce_round *r, *next;

	if (q == NULL)
		return;
	for (r = q->rounds; r != NULL; r = next) {
		next = r->next;
		quiesce_round_destroy(r);
	}
	free(q->agents);
	free(q);
}

/* ---- the registry ---- */

static struct quiesce_agent *
quiesce_agent_get(const struct vg_quiesce *q, uint64_t conn)
{
	size_t i;

	for (i = 0; i < q->nagents; i++)
		if (q->agents[i].conn == conn)
			return &q->agents[i];
	return NULL;
}

const struct quiesce_agent *
quiesce_agent_find(const struct vg_quiesce *q, uint64_t conn)
{
	return quiesce_agent_get(q, conn);
}

size_t
quiesce_agent_count(const struct vg_quiesce *q)
{
	return q->nagents;
}

const struct quiesce_agent *
quiesce_agent_at(const struct vg_quiesce *q, size_t i)
{
	return i < q->nagents ? &q->agents[i] : NULL;
}

/*
 * An optional string param: absent or null gives "" (*present false), a
 * string of 1 .. max - 1 bytes without NUL is copied, anything else is an
 * error naming the field.
 */
static int
quiesce_opt_string(json_t *params, const char *method, const char *key,
    char *dst, size_t max, struct vg_err *err)
{
	json_t *v;
	const char *s;

	dst[0] = '\0';
	if (params == NULL || (v = json_object_get(params, key)) == NULL ||
	    json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		vg_err_set(err, VG_ERR_PARSE, "%s: \"%s\" must be a string or "
		    "null", method, key);
		return -1;
	}
	s = json_string_value(v);
	if (json_string_length(v) != strlen(s) || strlen(s) >= max) {
		vg_err_set(err, VG_ERR_PARSE, "%s: \"%s\" holds a NUL byte or "
		    "is longer than %zu bytes", method, key, max - 1);
		return -1;
	}
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

/* The first login session of uid among the source's sessions. */
static int
quiesce_first_login(struct vg_sessions *src, uid_t uid, char *id,
    size_t idlen, struct vg_err *err)
{
	struct vg_session *v = NULL;
	size_t n = 0, i;
	int rc = -1;

	if (sessions_list(src, &v, &n, err) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (v[i].uid == uid && sessions_is_login(&v[i])) {
			quiesce_copy(id, idlen, v[i].id);
			rc = 0;
			break;
		}
	free(v);
	if (rc == -1)
		vg_err_set(err, VG_ERR_NOTFOUND, "no login session");
	return rc;
}

int
quiesce_agent_register(struct vg_quiesce *q, struct vg_sessions *src,
    uint64_t conn, uid_t uid, const char *user, json_t *params,
    int64_t now_ms, json_t **result, struct vg_err *err)
{
	struct quiesce_agent a, *na;
	struct vg_err e;
	json_t *v;
	uid_t owner;
	size_t ncap;

	if (result != NULL)
		*result = NULL;
	if (quiesce_agent_get(q, conn) != NULL) {
		vg_err_set(err, VG_ERR_EXISTS, "agent.register: this "
		    "connection is registered already");
		return -1;
	}
	if (params != NULL && !json_is_object(params)) {
		vg_err_set(err, VG_ERR_PARSE, "agent.register: params must be "
		    "an object");
		return -1;
	}
	memset(&a, 0, sizeof a);
	a.conn = conn;
	a.uid = uid;
	quiesce_user_name(a.user, sizeof a.user, user, uid);
	if (quiesce_opt_string(params, "agent.register", "session", a.claimed,
	    sizeof a.claimed, err) == -1 ||
	    quiesce_opt_string(params, "agent.register", "display", a.display,
	    sizeof a.display, err) == -1 ||
	    quiesce_opt_string(params, "agent.register", "agent_version",
	    a.version, sizeof a.version, err) == -1)
		return -1;
	if (params != NULL && (v = json_object_get(params, "wayland")) !=
	    NULL && !json_is_null(v)) {
		if (!json_is_boolean(v)) {
			vg_err_set(err, VG_ERR_PARSE, "agent.register: "
			    "\"wayland\" must be true or false");
			return -1;
		}
		a.wayland = json_is_true(v);
	}
	a.tracked_by = sessions_backend_name(src);

	if (!sessions_checks_claims(src)) {
		/* Nothing to check a claim against: the connection is the
		 * session (DESIGN.md, IPC). */
		snprintf(a.session, sizeof a.session, "agent:%llu",
		    (unsigned long long)conn);
	} else if (a.claimed[0] != '\0') {
		vg_err_clear(&e);
		if (sessions_session_uid(src, a.claimed, &owner, &e) == -1) {
			if (e.code == VG_ERR_NOTFOUND)
				vg_err_set(err, VG_ERR_PERM, "agent.register: "
				    "there is no session \"%s\" (%s tracks "
				    "sessions); claim the session the agent "
				    "runs in (XDG_SESSION_ID)",
				    sessions_valid_id(a.claimed) ? a.claimed :
				    "(invalid id)", a.tracked_by);
			else
				vg_err_set(err, e.code == VG_OK ?
				    VG_ERR_SYS : e.code, "agent.register: %s",
				    e.msg);
			return -1;
		}
		if (owner != uid) {
			vg_err_set(err, VG_ERR_PERM, "agent.register: session "
			    "%s belongs to uid %lu, not to this agent's uid "
			    "%lu: an agent speaks only for its own sessions",
			    a.claimed, (unsigned long)owner,
			    (unsigned long)uid);
			return -1;
		}
		quiesce_copy(a.session, sizeof a.session, a.claimed);
	} else {
		vg_err_clear(&e);
		if (sessions_uid_display(src, uid, a.session,
		    sizeof a.session, &e) == -1) {
			if (e.code != VG_ERR_NOTFOUND) {
				vg_err_set(err, e.code, "agent.register: %s",
				    e.msg);
				return -1;
			}
			vg_err_clear(&e);
			if (quiesce_first_login(src, uid, a.session,
			    sizeof a.session, &e) == -1) {
				if (e.code != VG_ERR_NOTFOUND)
					vg_err_set(err, e.code,
					    "agent.register: %s", e.msg);
				else
					vg_err_set(err, VG_ERR_PERM,
					    "agent.register: %s (uid %lu) has "
					    "no login session; the agent is "
					    "used once its user logs in and "
					    "it registers again", a.user,
					    (unsigned long)uid);
				return -1;
			}
		}
	}

	if (result != NULL && (*result = json_pack("{s:s, s:b, s:s}",
	    "session", a.session, "accepted", 1, "tracked_by",
	    a.tracked_by)) == NULL) {
		vg_err_set(err, VG_ERR_SYS, "agent.register: out of memory");
		return -1;
	}
	if (q->nagents == q->cap) {
		ncap = q->cap == 0 ? 8 : q->cap * 2;
		if ((na = reallocarray(q->agents, ncap, sizeof *na)) == NULL) {
			if (result != NULL) {
				json_decref(*result);
				*result = NULL;
			}
			vg_err_sys(err, "agent.register");
			return -1;
		}
		q->agents = na;
		q->cap = ncap;
	}
	a.registered_ms = a.last_heard_ms = now_ms;
	q->agents[q->nagents++] = a;
	return 0;
}

/* ---- rounds: the outcome ---- */

static bool
quiesce_waiting(enum quiesce_mstate st)
{
	return st == QM_ASKED || st == QM_WARNING || st == QM_CLOSING;
}

static int64_t
quiesce_member_deadline(const struct quiesce_round *r,
    const struct quiesce_member *m)
{
	if (quiesce_waiting(m->state) && r->phase == QUIESCE_ASKING)
		return m->last_ms + (int64_t)r->answer_ms;
	if (m->resume == QR_SENT)
		return m->last_ms + QUIESCE_RESUME_TIMEOUT_S * 1000;
	return -1;
}

/* Append "; " and s to the reason being built in buf. */
static void
quiesce_add_reason(char *buf, size_t len, unsigned *nreasons, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));

static void
quiesce_add_reason(char *buf, size_t len, unsigned *nreasons, const char *fmt,
    ...)
{
	va_list ap;
	size_t used = strlen(buf);

	(*nreasons)++;
	if (*nreasons > 3)
		return;		/* the record lists the rest */
	if (used > 0 && used + 2 < len) {
		memcpy(buf + used, "; ", 3);
		used += 2;
	}
	if (used + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

static int
quiesce_set_reason(struct quiesce_round *r, const char *s)
{
	char *dup;

	if ((dup = strdup(s)) == NULL)
		return -1;
	free(r->reason);
	r->reason = dup;
	return 0;
}

/* Decide a round whose members are all done (or one postponed). */
static void
quiesce_decide(struct quiesce_round *r)
{
	char buf[QUIESCE_REASON_MAX * 2] = "";
	struct quiesce_member *m;
	unsigned nreasons = 0;
	size_t i, napps;

	if (r->phase != QUIESCE_ASKING)
		return;
	for (i = 0; i < r->nm; i++) {
		m = &r->m[i];
		if (m->state != QM_POSTPONED)
			continue;
		r->path = QUIESCE_PATH_POSTPONE;
		r->fallback_all = false;
		snprintf(buf, sizeof buf, "%s postponed the run (%u of at "
		    "most %u times); it runs again in %llu s", m->user,
		    r->postponed + 1, r->max_postpone,
		    (unsigned long long)r->postpone_s);
		goto done;
	}
	if (r->plan_reason[0] != '\0') {
		quiesce_add_reason(buf, sizeof buf, &nreasons, "%s",
		    r->plan_reason);
		r->fallback_all = true;
	}
	for (i = 0; i < r->nm; i++) {
		m = &r->m[i];
		switch (m->state) {
		case QM_LATE:
			quiesce_add_reason(buf, sizeof buf, &nreasons,
			    "%s's agent (session %s) did not answer within "
			    "%llu s of its last message", m->user, m->session,
			    (unsigned long long)(r->answer_ms / 1000));
			r->fallback_all = true;
			break;
		case QM_GONE:
			quiesce_add_reason(buf, sizeof buf, &nreasons,
			    "%s's agent (session %s) %s", m->user, m->session,
			    m->note[0] != '\0' ? m->note :
			    "went away before it answered");
			r->fallback_all = true;
			break;
		case QM_INVALID:
			quiesce_add_reason(buf, sizeof buf, &nreasons,
			    "%s's agent (session %s) sent an answer that was "
			    "ignored: %s", m->user, m->session, m->note);
			r->fallback_all = true;
			break;
		default:
			break;
		}
	}
	for (i = 0; i < json_array_size(r->refused); i++) {
		json_t *a = json_array_get(r->refused, i);

		quiesce_add_reason(buf, sizeof buf, &nreasons,
		    "%s (%s, pid %lld) refused to close: %s",
		    json_string_value(json_object_get(a, "name")),
		    json_string_value(json_object_get(a, "user")),
		    (long long)json_integer_value(json_object_get(a, "pid")),
		    json_string_value(json_object_get(a, "reason")));
	}
	if (nreasons > 3) {
		size_t used = strlen(buf);

		snprintf(buf + used, sizeof buf - used, "; and %u more (see "
		    "the agents and apps of this run)", nreasons - 3);
	}
	if (nreasons > 0) {
		r->path = QUIESCE_PATH_FALLBACK;
		goto done;
	}
	r->path = QUIESCE_PATH_AGENT;
	napps = json_array_size(r->closed);
	if (napps == 0)
		snprintf(buf, sizeof buf, "%s: no app held the job's files",
		    r->nm == 1 ? "the agent answered" : "every agent answered");
	else
		snprintf(buf, sizeof buf, "%zu app%s closed by the agent%s "
		    "before the copy%s", napps, napps == 1 ? "" : "s",
		    r->nm == 1 ? "" : "s",
		    r->dry_run ? " (dry run: would be closed)" : "");
done:
	if (quiesce_set_reason(r, buf) == -1)
		r->reason = NULL;	/* quiesce_round_outcome() copes */
	r->phase = QUIESCE_DECIDED;
}

/* Decide once no member is still waiting. */
static void
quiesce_check(struct quiesce_round *r)
{
	size_t i;

	if (r->phase != QUIESCE_ASKING)
		return;
	for (i = 0; i < r->nm; i++) {
		if (r->m[i].state == QM_POSTPONED) {
			quiesce_decide(r);
			return;
		}
	}
	for (i = 0; i < r->nm; i++)
		if (quiesce_waiting(r->m[i].state))
			return;
	quiesce_decide(r);
}

/* RESUMING rounds become DONE when no confirmation is awaited. */
static void
quiesce_check_resume(struct quiesce_round *r)
{
	size_t i;

	if (r->phase != QUIESCE_RESUMING)
		return;
	for (i = 0; i < r->nm; i++)
		if (r->m[i].resume == QR_SENT)
			return;
	/* A member still owed a resume (closed late, still connected)? */
	for (i = 0; i < r->nm; i++)
		if (r->m[i].connected && r->m[i].resume == QR_NONE &&
		    r->m[i].state != QM_POSTPONED && !r->dry_run)
			return;
	r->phase = QUIESCE_DONE;
}

/* ---- planning ---- */

struct quiesce_seen {
	uid_t		 uid;
	const char	*user;
	const char	*id;
};

static bool
quiesce_relevant(const struct quiesce_request *req, uid_t uid)
{
	return req->owner_uid == 0 || uid == req->owner_uid;
}

static bool
quiesce_has_agent(const struct vg_quiesce *q, uid_t uid)
{
	size_t i;

	for (i = 0; i < q->nagents; i++)
		if (q->agents[i].uid == uid)
			return true;
	return false;
}

static json_t *
quiesce_session_json(const struct vg_session *ss, bool has_agent)
{
	return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:b, s:b}",
	    "id", ss->id, "user", ss->user, "uid", (json_int_t)ss->uid,
	    "class", sessions_class_name(ss->klass),
	    "type", sessions_type_name(ss->type),
	    "state", sessions_state_name(ss->state),
	    "remote", ss->remote, "has_agent", has_agent);
}

static json_t *
quiesce_event_build(const struct quiesce_round *r,
    const struct quiesce_request *req)
{
	const struct vg_job_def *def = req->def;
	json_t *ev, *sources, *apps = NULL;
	size_t i;

	if ((sources = json_array()) == NULL)
		return NULL;
	for (i = 0; i < def->sources.n; i++)
		json_array_append_new(sources, json_string(def->sources.v[i]));
	switch (def->close_apps) {
	case VG_CLOSE_AUTO:
		apps = json_string("auto");
		break;
	case VG_CLOSE_LIST:
		if ((apps = json_array()) != NULL)
			for (i = 0; i < def->close_app_names.n; i++)
				json_array_append_new(apps,
				    json_string(def->close_app_names.v[i]));
		break;
	default:
		apps = json_string("none");
		break;
	}
	ev = json_pack("{s:I, s:I, s:s, s:o, s:o, s:s, s:I, s:I, s:b, s:I, "
	    "s:b, s:b}",
	    "quiesce", (json_int_t)r->id, "run", (json_int_t)r->run_id,
	    "job", r->job, "sources", sources, "close_apps", apps,
	    "close_method", def->close_method == VG_CLOSE_TERM ? "term" :
	    "window",
	    "warn_s", (json_int_t)def->warn_s,
	    "close_timeout_s", (json_int_t)def->close_timeout_s,
	    "force", def->force_close,
	    "postpone_s", (json_int_t)def->postpone_s,
	    "may_postpone", r->may_postpone, "dry_run", r->dry_run);
	return ev;
}

struct quiesce_round *
quiesce_plan(struct vg_quiesce *q, const struct quiesce_request *req,
    const struct vg_session *sessions, size_t n, int64_t now_ms,
    struct vg_err *err)
{
	const struct vg_job_def *def;
	struct quiesce_round *r = NULL;
	struct quiesce_seen *seen = NULL;
	struct quiesce_member *mm;
	const struct quiesce_agent *a;
	unsigned nreasons = 0;
	size_t nseen = 0, i, j;
	bool dup;
	char owner[VG_SESSION_USER_MAX];
	json_t *sj;

	if (req == NULL || (def = req->def) == NULL || req->job == NULL) {
		vg_err_set(err, VG_ERR_INTERNAL, "quiesce_plan: no job");
		return NULL;
	}
	if ((r = calloc(1, sizeof *r)) == NULL ||
	    (seen = calloc(n + q->nagents + 1, sizeof *seen)) == NULL ||
	    (r->m = calloc(q->nagents + 1, sizeof *r->m)) == NULL)
		goto nomem;
	r->id = q->next_id++;
	r->run_id = req->run_id;
	quiesce_copy(r->job, sizeof r->job, req->job);
	r->owner_uid = req->owner_uid;
	quiesce_user_name(owner, sizeof owner, req->owner, req->owner_uid);
	quiesce_copy(r->owner, sizeof r->owner, owner);
	for (i = 0; i < def->sources.n; i++)
		if (strlist_push(&r->sources, def->sources.v[i]) == -1)
			goto nomem;
	r->answer_ms = (def->warn_s + def->close_timeout_s +
	    QUIESCE_MARGIN_S) * 1000;
	r->dry_run = req->dry_run;
	r->postponed = req->postponed;
	r->postpone_s = def->postpone_s;
	r->max_postpone = def->max_postpone;
	r->may_postpone = !req->dry_run && req->postponed < def->max_postpone;
	r->phase = QUIESCE_ASKING;
	if ((r->sessions = json_array()) == NULL ||
	    (r->closed = json_array()) == NULL ||
	    (r->refused = json_array()) == NULL ||
	    (r->killed = json_array()) == NULL ||
	    (r->reopened = json_array()) == NULL ||
	    (r->reopen_failed = json_array()) == NULL)
		goto nomem;

	/* 1. The sessions of the job's users: login sessions, and every
	 * connected agent's session (a live agent proves one). */
	for (i = 0; i < n; i++) {
		if (!sessions_is_login(&sessions[i]) ||
		    !quiesce_relevant(req, sessions[i].uid))
			continue;
		seen[nseen].uid = sessions[i].uid;
		seen[nseen].user = sessions[i].user;
		seen[nseen].id = sessions[i].id;
		nseen++;
		sj = quiesce_session_json(&sessions[i],
		    quiesce_has_agent(q, sessions[i].uid));
		if (sj == NULL || json_array_append_new(r->sessions, sj) == -1)
			goto nomem;
	}
	for (i = 0; i < q->nagents; i++) {
		struct vg_session ps;

		a = &q->agents[i];
		if (!quiesce_relevant(req, a->uid))
			continue;
		dup = false;
		for (j = 0; j < nseen && !dup; j++)
			dup = strcmp(seen[j].id, a->session) == 0;
		if (dup)
			continue;
		seen[nseen].uid = a->uid;
		seen[nseen].user = a->user;
		seen[nseen].id = a->session;
		nseen++;
		memset(&ps, 0, sizeof ps);
		quiesce_copy(ps.id, sizeof ps.id, a->session);
		ps.uid = a->uid;
		quiesce_copy(ps.user, sizeof ps.user, a->user);
		ps.klass = VG_SESSION_CLASS_USER;
		ps.type = a->display[0] != '\0' ? (a->wayland ?
		    VG_SESSION_TYPE_WAYLAND : VG_SESSION_TYPE_X11) :
		    VG_SESSION_TYPE_UNSPECIFIED;
		ps.state = VG_SESSION_ONLINE;
		if ((sj = quiesce_session_json(&ps, true)) == NULL ||
		    json_array_append_new(r->sessions, sj) == -1)
			goto nomem;
	}

	/* 2. Nobody there: no wait at all. */
	if (nseen == 0) {
		char who[QUIESCE_REASON_MAX];

		bool anyone = q->nagents > 0;

		for (i = 0; i < n && !anyone; i++)
			anyone = sessions_is_login(&sessions[i]);
		if (req->owner_uid == 0 || !anyone)
			snprintf(who, sizeof who, "nobody is logged on");
		else
			snprintf(who, sizeof who, "%s is not logged on",
			    owner);
		r->fallback_all = true;
		if (def->logged_off == VG_LOGGEDOFF_SKIP) {
			char buf[QUIESCE_REASON_MAX + 64];

			r->path = QUIESCE_PATH_SKIP;
			snprintf(buf, sizeof buf, "%s and the job says "
			    "logged-off = skip", who);
			if (quiesce_set_reason(r, buf) == -1)
				goto nomem;
		} else {
			r->path = QUIESCE_PATH_FALLBACK;
			if (quiesce_set_reason(r, who) == -1)
				goto nomem;
		}
		r->phase = QUIESCE_DECIDED;
		goto link;
	}

	/* 3. The job closes nothing. */
	if (def->close_apps == VG_CLOSE_NONE) {
		r->path = QUIESCE_PATH_FALLBACK;
		r->fallback_all = true;
		if (quiesce_set_reason(r, "the job closes no apps "
		    "(close-apps = none)") == -1)
			goto nomem;
		r->phase = QUIESCE_DECIDED;
		goto link;
	}

	/* 4. Users logged on without any agent: their files fall back. */
	for (i = 0; i < nseen; i++) {
		dup = false;
		for (j = 0; j < i && !dup; j++)
			dup = seen[j].uid == seen[i].uid;
		if (dup || quiesce_has_agent(q, seen[i].uid))
			continue;
		quiesce_add_reason(r->plan_reason, sizeof r->plan_reason,
		    &nreasons, "%s is logged on (session %s) but has no agent",
		    seen[i].user, seen[i].id);
	}

	/* 5. Ask the agents. */
	for (i = 0; i < q->nagents; i++) {
		a = &q->agents[i];
		if (!quiesce_relevant(req, a->uid))
			continue;
		mm = &r->m[r->nm++];
		mm->conn = a->conn;
		mm->uid = a->uid;
		quiesce_copy(mm->user, sizeof mm->user, a->user);
		quiesce_copy(mm->session, sizeof mm->session, a->session);
		mm->state = QM_ASKED;
		mm->connected = true;
		mm->last_ms = now_ms;
	}
	if ((r->event = quiesce_event_build(r, req)) == NULL)
		goto nomem;
	if (r->nm == 0)
		quiesce_decide(r);
link:
	r->next = q->rounds;
	q->rounds = r;
	free(seen);
	return r;
nomem:
	vg_err_set(err, VG_ERR_SYS, "planning the quiesce of job %s: out of "
	    "memory", req->job);
	free(seen);
	quiesce_round_destroy(r);
	return NULL;
}

void
quiesce_round_free(struct vg_quiesce *q, struct quiesce_round *r)
{
	struct quiesce_round **pp;

	if (r == NULL)
		return;
	for (pp = &q->rounds; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	quiesce_round_destroy(r);
}

uint64_t
quiesce_round_id(const struct quiesce_round *r)
{
	return r->id;
}

int64_t
quiesce_round_run(const struct quiesce_round *r)
{
	return r->run_id;
}

enum quiesce_phase
quiesce_round_phase(const struct quiesce_round *r)
{
	return r->phase;
}

struct quiesce_round *
quiesce_round_find(struct vg_quiesce *q, uint64_t id)
{
	struct quiesce_round *r;

	for (r = q->rounds; r != NULL; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

int
quiesce_round_targets(const struct quiesce_round *r, uint64_t **conns,
    size_t *n)
{
	size_t i;

	*conns = NULL;
	*n = 0;
	if (r->phase != QUIESCE_ASKING || r->nm == 0)
		return 0;
	if ((*conns = calloc(r->nm, sizeof **conns)) == NULL)
		return -1;
	for (i = 0; i < r->nm; i++)
		if (quiesce_waiting(r->m[i].state))
			(*conns)[(*n)++] = r->m[i].conn;
	return 0;
}

json_t *
quiesce_round_event(const struct quiesce_round *r)
{
	return r->event != NULL ? json_deep_copy(r->event) : NULL;
}

static struct quiesce_member *
quiesce_member_get(struct quiesce_round *r, uint64_t conn)
{
	size_t i;

	for (i = 0; i < r->nm; i++)
		if (r->m[i].conn == conn)
			return &r->m[i];
	return NULL;
}

void
quiesce_round_send_failed(struct vg_quiesce *q, struct quiesce_round *r,
    uint64_t conn, int64_t now_ms)
{
	struct quiesce_member *m;

	(void)q;
	if ((m = quiesce_member_get(r, conn)) == NULL)
		return;
	m->last_ms = now_ms;
	if (quiesce_waiting(m->state)) {
		m->state = QM_GONE;
		quiesce_copy(m->note, sizeof m->note, "could not be reached");
	}
	if (m->resume == QR_SENT)
		m->resume = QR_GONE;
	m->connected = false;
	quiesce_check(r);
	quiesce_check_resume(r);
}

int
quiesce_agent_gone(struct vg_quiesce *q, uint64_t conn, int64_t now_ms)
{
	struct quiesce_round *r;
	struct quiesce_member *m;
	size_t i;
	int changed = 0;

	for (i = 0; i < q->nagents; i++)
		if (q->agents[i].conn == conn) {
			memmove(&q->agents[i], &q->agents[i + 1],
			    (q->nagents - i - 1) * sizeof q->agents[0]);
			q->nagents--;
			break;
		}
	for (r = q->rounds; r != NULL; r = r->next) {
		if ((m = quiesce_member_get(r, conn)) == NULL ||
		    !m->connected)
			continue;
		m->connected = false;
		m->last_ms = now_ms;
		changed++;
		if (quiesce_waiting(m->state)) {
			m->state = QM_GONE;
			quiesce_copy(m->note, sizeof m->note,
			    "disconnected before it answered");
		} else if (m->resume == QR_SENT) {
			m->resume = QR_GONE;
			quiesce_copy(m->note, sizeof m->note,
			    "disconnected before it confirmed the reopen");
		} else if (m->resume == QR_NONE &&
		    json_array_size(r->closed) > 0 &&
		    (m->state == QM_CLOSED || m->state == QM_LATE)) {
			quiesce_copy(m->note, sizeof m->note,
			    "disconnected while its apps were closed; the "
			    "agent reopens them itself");
		}
		quiesce_check(r);
		quiesce_check_resume(r);
	}
	return changed;
}

int64_t
quiesce_next_deadline(const struct vg_quiesce *q)
{
	const struct quiesce_round *r;
	int64_t best = -1, d;
	size_t i;

	for (r = q->rounds; r != NULL; r = r->next)
		for (i = 0; i < r->nm; i++) {
			if (!r->m[i].connected)
				continue;
			d = quiesce_member_deadline(r, &r->m[i]);
			if (d != -1 && (best == -1 || d < best))
				best = d;
		}
	return best;
}

int
quiesce_on_timeout(struct vg_quiesce *q, int64_t now_ms)
{
	struct quiesce_round *r;
	struct quiesce_member *m;
	int64_t d;
	size_t i;
	int late = 0;

	for (r = q->rounds; r != NULL; r = r->next) {
		for (i = 0; i < r->nm; i++) {
			m = &r->m[i];
			if (!m->connected ||
			    (d = quiesce_member_deadline(r, m)) == -1 ||
			    d > now_ms)
				continue;
			if (quiesce_waiting(m->state)) {
				m->state = QM_LATE;
				late++;
			} else if (m->resume == QR_SENT) {
				m->resume = QR_LATE;
				quiesce_copy(m->note, sizeof m->note,
				    "did not confirm the reopen in time");
			}
		}
		quiesce_check(r);
		quiesce_check_resume(r);
	}
	return late;
}

bool
quiesce_round_decided(const struct quiesce_round *r)
{
	return r->phase != QUIESCE_ASKING;
}

int
quiesce_round_outcome(const struct quiesce_round *r,
    struct quiesce_outcome *out)
{
	memset(out, 0, sizeof *out);
	if (r->phase == QUIESCE_ASKING)
		return -1;
	out->path = r->path;
	out->reason = r->reason != NULL ? r->reason :
	    "(out of memory for the reason)";
	out->fallback_all = r->fallback_all;
	out->fallback_files = &r->fallback_files;
	if (r->path == QUIESCE_PATH_POSTPONE) {
		out->postpone_s = r->postpone_s;
		out->postponed = r->postponed + 1;
	}
	return 0;
}

void
quiesce_round_interrupt(struct quiesce_round *r, const char *reason)
{
	char buf[QUIESCE_REASON_MAX];
	size_t i;

	if (reason == NULL)
		reason = "the run was interrupted";
	r->interrupted = true;
	free(r->interrupt_reason);
	r->interrupt_reason = strdup(reason);
	if (r->phase != QUIESCE_ASKING)
		return;
	/* Decide now, without the answers still out. */
	for (i = 0; i < r->nm; i++)
		if (quiesce_waiting(r->m[i].state)) {
			r->m[i].state = QM_LATE;
			quiesce_copy(r->m[i].note, sizeof r->m[i].note,
			    "had not answered when the run was interrupted");
		}
	quiesce_decide(r);
	snprintf(buf, sizeof buf, "interrupted before the agents answered: "
	    "%s", reason);
	r->path = QUIESCE_PATH_FALLBACK;
	r->fallback_all = true;
	(void)quiesce_set_reason(r, buf);
}

int
quiesce_round_resume(struct vg_quiesce *q, struct quiesce_round *r,
    int64_t now_ms, uint64_t **conns, size_t *n)
{
	struct quiesce_member *m;
	size_t i;

	*conns = NULL;
	*n = 0;
	if (r->phase == QUIESCE_ASKING)
		return -1;
	if (r->phase == QUIESCE_DECIDED)
		r->phase = QUIESCE_RESUMING;
	if (r->dry_run || r->nm == 0) {
		quiesce_check_resume(r);
		return 0;
	}
	if ((*conns = calloc(r->nm, sizeof **conns)) == NULL)
		return -1;
	for (i = 0; i < r->nm; i++) {
		m = &r->m[i];
		if (!m->connected || m->resume != QR_NONE ||
		    m->state == QM_POSTPONED || m->state == QM_GONE ||
		    quiesce_agent_get(q, m->conn) == NULL)
			continue;
		m->resume = QR_SENT;
		m->last_ms = now_ms;
		(*conns)[(*n)++] = m->conn;
	}
	if (*n == 0) {
		free(*conns);
		*conns = NULL;
	}
	quiesce_check_resume(r);
	return 0;
}

json_t *
quiesce_round_resume_event(const struct quiesce_round *r)
{
	return json_pack("{s:I, s:I}", "quiesce", (json_int_t)r->id, "run",
	    (json_int_t)r->run_id);
}

bool
quiesce_round_settled(const struct quiesce_round *r)
{
	size_t i;

	if (r->phase == QUIESCE_DONE)
		return true;
	if (r->phase == QUIESCE_DECIDED) {
		/* Nobody to resume at all? */
		if (r->dry_run)
			return true;
		for (i = 0; i < r->nm; i++)
			if (r->m[i].connected && r->m[i].state != QM_POSTPONED)
				return false;
		return true;
	}
	return false;
}

/* ---- agents' messages ---- */

/* A string field: required (or not), 1 .. max - 1 bytes, no NUL; control
 * bytes become '?'.  Returns 1 copied, 0 absent, -1 bad. */
static int
quiesce_field_string(json_t *obj, const char *key, bool required, size_t max,
    char *dst, const char *what, struct vg_err *err)
{
	json_t *v = json_object_get(obj, key);
	const char *s;
	size_t len, i;

	dst[0] = '\0';
	if (v == NULL || json_is_null(v)) {
		if (!required)
			return 0;
		vg_err_set(err, VG_ERR_PARSE, "%s: \"%s\" is missing", what,
		    key);
		return -1;
	}
	if (!json_is_string(v)) {
		vg_err_set(err, VG_ERR_PARSE, "%s: \"%s\" must be a string",
		    what, key);
		return -1;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (len != strlen(s) || len == 0 || len >= max) {
		vg_err_set(err, VG_ERR_PARSE, "%s: \"%s\" must be 1 to %zu "
		    "bytes without NUL", what, key, max - 1);
		return -1;
	}
	for (i = 0; i < len; i++)
		dst[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' :
		    s[i];
	dst[len] = '\0';
	return 1;
}

static int
quiesce_field_pid(json_t *obj, bool required, json_int_t *pid,
    const char *what, struct vg_err *err)
{
	json_t *v = json_object_get(obj, "pid");

	*pid = 0;
	if (v == NULL || json_is_null(v)) {
		if (!required)
			return 0;
		vg_err_set(err, VG_ERR_PARSE, "%s: \"pid\" is missing", what);
		return -1;
	}
	if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
	    json_integer_value(v) > INT_MAX) {
		vg_err_set(err, VG_ERR_PARSE, "%s: \"pid\" must be a process "
		    "id (a positive integer)", what);
		return -1;
	}
	*pid = json_integer_value(v);
	return 1;
}

/* The params' array key: absent or null gives an empty one; anything but
 * an array (or too long) is an error. */
static int
quiesce_field_array(json_t *params, const char *method, const char *key,
    json_t **arr, struct vg_err *err)
{
	json_t *v = json_object_get(params, key);

	*arr = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		vg_err_set(err, VG_ERR_PARSE, "%s: \"%s\" must be an array",
		    method, key);
		return -1;
	}
	if (json_array_size(v) > QUIESCE_APPS_MAX) {
		vg_err_set(err, VG_ERR_PARSE, "%s: \"%s\" lists more than %d "
		    "apps", method, key, QUIESCE_APPS_MAX);
		return -1;
	}
	*arr = v;
	return 0;
}

/* path is an absolute, clean path at or under one of the sources. */
static bool
quiesce_under_sources(const struct quiesce_round *r, const char *path)
{
	const char *p;
	size_t i, len;

	if (path[0] != '/')
		return false;
	for (p = path; *p != '\0'; p++) {
		if (p[0] != '/')
			continue;
		if (p[1] == '/' || (p[1] == '.' && (p[2] == '/' ||
		    p[2] == '\0')) || (p[1] == '.' && p[2] == '.' &&
		    (p[3] == '/' || p[3] == '\0')))
			return false;
	}
	for (i = 0; i < r->sources.n; i++) {
		len = strlen(r->sources.v[i]);
		while (len > 1 && r->sources.v[i][len - 1] == '/')
			len--;
		if (strncmp(path, r->sources.v[i], len) != 0)
			continue;
		if (path[len] == '\0' || path[len] == '/' || len == 1)
			return true;
	}
	return false;
}

/* One app entry as we keep it: {"name", "pid", "user", "uid", ...}. */
static json_t *
quiesce_app(const struct quiesce_member *m, const char *name, json_int_t pid)
{
	json_t *o;

	if ((o = json_pack("{s:s, s:s, s:I}", "name", name, "user", m->user,
	    "uid", (json_int_t)m->uid)) == NULL)
		return NULL;
	if (pid > 0)
		json_object_set_new(o, "pid", json_integer(pid));
	return o;
}

struct quiesce_parsed {
	json_t			*closed, *refused, *killed;
	struct vg_strlist	 files;
	bool			 files_outside;	/* some could not be placed */
};

static void
quiesce_parsed_free(struct quiesce_parsed *p)
{
	json_decref(p->closed);
	json_decref(p->refused);
	json_decref(p->killed);
	strlist_free(&p->files);
}

static int
quiesce_parse_closed(struct quiesce_round *r, const struct quiesce_member *m,
    json_t *params, struct quiesce_parsed *p, struct vg_err *err)
{
	static const char *what = "agent.closed";
	char name[QUIESCE_NAME_MAX], reason[QUIESCE_REASON_MAX];
	char path[PATH_MAX];
	json_t *arr, *e, *files, *f, *o;
	json_int_t pid;
	size_t i, k, nfiles = 0;
	int got;

	memset(p, 0, sizeof *p);
	if ((p->closed = json_array()) == NULL ||
	    (p->refused = json_array()) == NULL ||
	    (p->killed = json_array()) == NULL)
		goto nomem;

	if (quiesce_field_array(params, what, "closed", &arr, err) == -1)
		return -1;
	json_array_foreach(arr, i, e) {
		if (!json_is_object(e)) {
			vg_err_set(err, VG_ERR_PARSE, "%s: closed[%zu] must "
			    "be an object {name, pid}", what, i);
			return -1;
		}
		if (quiesce_field_string(e, "name", true, sizeof name, name,
		    what, err) == -1 ||
		    quiesce_field_pid(e, true, &pid, what, err) == -1)
			return -1;
		if ((o = quiesce_app(m, name, pid)) == NULL ||
		    json_array_append_new(p->closed, o) == -1)
			goto nomem;
	}

	if (quiesce_field_array(params, what, "refused", &arr, err) == -1)
		return -1;
	json_array_foreach(arr, i, e) {
		if (!json_is_object(e)) {
			vg_err_set(err, VG_ERR_PARSE, "%s: refused[%zu] must "
			    "be an object {name, pid, reason, files}", what, i);
			return -1;
		}
		if (quiesce_field_string(e, "name", true, sizeof name, name,
		    what, err) == -1 ||
		    quiesce_field_pid(e, true, &pid, what, err) == -1 ||
		    quiesce_field_string(e, "reason", false, sizeof reason,
		    reason, what, err) == -1)
			return -1;
		if (reason[0] == '\0')
			quiesce_copy(reason, sizeof reason,
			    "no reason given");
		if ((o = quiesce_app(m, name, pid)) == NULL ||
		    json_object_set_new(o, "reason", json_string(reason)) ==
		    -1 || json_object_set_new(o, "files", json_array()) == -1 ||
		    json_array_append_new(p->refused, o) == -1)
			goto nomem;
		files = json_object_get(e, "files");
		if (files == NULL || json_is_null(files))
			continue;
		if (!json_is_array(files)) {
			vg_err_set(err, VG_ERR_PARSE, "%s: refused[%zu].files "
			    "must be an array of paths", what, i);
			return -1;
		}
		json_array_foreach(files, k, f) {
			if (++nfiles > QUIESCE_FILES_MAX) {
				vg_err_set(err, VG_ERR_PARSE, "%s: more than "
				    "%d files", what, QUIESCE_FILES_MAX);
				return -1;
			}
			if (!json_is_string(f) || json_string_length(f) !=
			    strlen(json_string_value(f)) ||
			    json_string_length(f) >= sizeof path) {
				vg_err_set(err, VG_ERR_PARSE, "%s: "
				    "refused[%zu].files[%zu] must be a path "
				    "(a string without NUL, shorter than %zu "
				    "bytes)", what, i, k, sizeof path);
				return -1;
			}
			quiesce_copy(path, sizeof path, json_string_value(f));
			if (!quiesce_under_sources(r, path)) {
				p->files_outside = true;
				continue;
			}
			if (strlist_push(&p->files, path) == -1 ||
			    json_array_append_new(json_object_get(o, "files"),
			    json_string(path)) == -1)
				goto nomem;
		}
	}

	if (quiesce_field_array(params, what, "killed", &arr, err) == -1)
		return -1;
	json_array_foreach(arr, i, e) {
		pid = 0;
		if (json_is_string(e)) {
			json_t *wrap = json_pack("{s:O}", "name", e);

			if (wrap == NULL)
				goto nomem;
			got = quiesce_field_string(wrap, "name", true,
			    sizeof name, name, what, err);
			json_decref(wrap);
			if (got == -1)
				return -1;
		} else if (!json_is_object(e) ||
		    quiesce_field_string(e, "name", true, sizeof name, name,
		    what, err) == -1 ||
		    quiesce_field_pid(e, false, &pid, what, err) == -1) {
			if (!json_is_object(e))
				vg_err_set(err, VG_ERR_PARSE, "%s: killed[%zu] "
				    "must be a name", what, i);
			return -1;
		}
		if ((o = quiesce_app(m, name, pid)) == NULL ||
		    json_array_append_new(p->killed, o) == -1)
			goto nomem;
	}
	return 0;
nomem:
	vg_err_set(err, VG_ERR_SYS, "%s: out of memory", what);
	return -1;
}

static void
quiesce_member_invalid(struct quiesce_round *r, struct quiesce_member *m,
    const struct vg_err *e)
{
	if (!quiesce_waiting(m->state))
		return;
	m->state = QM_INVALID;
	quiesce_copy(m->note, sizeof m->note, e->msg);
	quiesce_check(r);
}

static int
quiesce_take_closed(struct quiesce_round *r, struct quiesce_member *m,
    json_t *params, struct vg_err *err)
{
	struct quiesce_parsed p;
	size_t i;
	bool was_waiting = quiesce_waiting(m->state);

	if (m->answered || (!was_waiting && m->state != QM_LATE)) {
		vg_err_set(err, VG_ERR_INVALID, "agent.closed: quiesce %llu "
		    "was answered already (%s)", (unsigned long long)r->id,
		    quiesce_mstate_names[m->state]);
		return -1;
	}
	if (quiesce_parse_closed(r, m, params, &p, err) == -1) {
		quiesce_parsed_free(&p);
		quiesce_member_invalid(r, m, err);
		return -1;
	}
	/* Late answers are recorded too: apps it closed must reopen. */
	m->answered = true;
	json_array_extend(r->closed, p.closed);
	json_array_extend(r->refused, p.refused);
	json_array_extend(r->killed, p.killed);
	if (r->phase == QUIESCE_ASKING) {
		for (i = 0; i < p.files.n; i++)
			if (strlist_push(&r->fallback_files, p.files.v[i]) ==
			    -1)
				r->fallback_all = true;
		if (p.files_outside)
			r->fallback_all = true;
	}
	if (was_waiting) {
		m->state = QM_CLOSED;
		if (p.files_outside)
			quiesce_copy(m->note, sizeof m->note, "a refused app "
			    "holds files outside the job's sources: every "
			    "file goes to the fallback");
	} else {
		quiesce_copy(m->note, sizeof m->note, "answered after its "
		    "deadline; the run went ahead without it");
	}
	quiesce_parsed_free(&p);
	quiesce_check(r);
	return 0;
}

static int
quiesce_take_resumed(struct quiesce_round *r, struct quiesce_member *m,
    json_t *params, struct vg_err *err)
{
	static const char *what = "agent.resumed";
	char name[QUIESCE_NAME_MAX], reason[QUIESCE_REASON_MAX];
	json_t *reopened = NULL, *failed = NULL, *arr, *e, *o;
	json_int_t pid;
	size_t i;
	int rc = -1;

	if (m->resume == QR_NONE) {
		vg_err_set(err, VG_ERR_INVALID, "%s: no resume was sent for "
		    "quiesce %llu", what, (unsigned long long)r->id);
		return -1;
	}
	if (m->resume == QR_DONE) {
		vg_err_set(err, VG_ERR_INVALID, "%s: quiesce %llu was "
		    "confirmed already", what, (unsigned long long)r->id);
		return -1;
	}
	if ((reopened = json_array()) == NULL ||
	    (failed = json_array()) == NULL)
		goto nomem;
	if (quiesce_field_array(params, what, "reopened", &arr, err) == -1)
		goto out;
	json_array_foreach(arr, i, e) {
		if (!json_is_object(e)) {
			vg_err_set(err, VG_ERR_PARSE, "%s: reopened[%zu] must "
			    "be an object {name, pid}", what, i);
			goto out;
		}
		if (quiesce_field_string(e, "name", true, sizeof name, name,
		    what, err) == -1 ||
		    quiesce_field_pid(e, false, &pid, what, err) == -1)
			goto out;
		if ((o = quiesce_app(m, name, pid)) == NULL ||
		    json_array_append_new(reopened, o) == -1)
			goto nomem;
	}
	if (quiesce_field_array(params, what, "failed", &arr, err) == -1)
		goto out;
	json_array_foreach(arr, i, e) {
		if (!json_is_object(e)) {
			vg_err_set(err, VG_ERR_PARSE, "%s: failed[%zu] must "
			    "be an object {name, reason}", what, i);
			goto out;
		}
		if (quiesce_field_string(e, "name", true, sizeof name, name,
		    what, err) == -1 ||
		    quiesce_field_string(e, "reason", false, sizeof reason,
		    reason, what, err) == -1)
			goto out;
		if ((o = quiesce_app(m, name, 0)) == NULL ||
		    json_object_set_new(o, "reason", json_string(reason[0] ?
		    reason : "no reason given")) == -1 ||
		    json_array_append_new(failed, o) == -1)
			goto nomem;
	}
	json_array_extend(r->reopened, reopened);
	json_array_extend(r->reopen_failed, failed);
	m->resume = QR_DONE;
	quiesce_check_resume(r);
	rc = 0;
	goto out;
nomem:
	vg_err_set(err, VG_ERR_SYS, "%s: out of memory", what);
out:
	json_decref(reopened);
	json_decref(failed);
	return rc;
}

int
quiesce_agent_message(struct vg_quiesce *q, uint64_t conn,
    const char *method, json_t *params, int64_t now_ms,
    struct quiesce_round **changed, struct vg_err *err)
{
	struct quiesce_agent *a;
	struct quiesce_round *r;
	struct quiesce_member *m;
	enum quiesce_phase before;
	json_t *v;
	const char *st;
	uint64_t id;
	int rc = -1;

	if (changed != NULL)
		*changed = NULL;
	if ((a = quiesce_agent_get(q, conn)) == NULL) {
		vg_err_set(err, VG_ERR_PERM, "%s: this connection is not a "
		    "registered agent; send agent.register first",
		    method != NULL ? method : "(no method)");
		return -1;
	}
	a->last_heard_ms = now_ms;
	if (method == NULL || (strcmp(method, "agent.progress") != 0 &&
	    strcmp(method, "agent.closed") != 0 &&
	    strcmp(method, "agent.postpone") != 0 &&
	    strcmp(method, "agent.resumed") != 0)) {
		vg_err_set(err, VG_ERR_INVALID, "unknown agent method; expected "
		    "agent.progress, agent.closed, agent.postpone or "
		    "agent.resumed");
		return -1;
	}
	if (!json_is_object(params)) {
		vg_err_set(err, VG_ERR_PARSE, "%s: params must be an object",
		    method);
		return -1;
	}
	v = json_object_get(params, "quiesce");
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		vg_err_set(err, VG_ERR_PARSE, "%s: \"quiesce\" must be the "
		    "positive integer of the quiesce event", method);
		return -1;
	}
	id = (uint64_t)json_integer_value(v);
	if ((r = quiesce_round_find(q, id)) == NULL ||
	    (m = quiesce_member_get(r, conn)) == NULL || !m->connected) {
		vg_err_set(err, VG_ERR_NOTFOUND, "%s: this agent was not asked "
		    "in quiesce %llu (or it is over)", method,
		    (unsigned long long)id);
		return -1;
	}
	before = r->phase;

	if (strcmp(method, "agent.progress") == 0) {
		v = json_object_get(params, "state");
		st = json_string_value(v);
		if (st == NULL || (strcmp(st, "warning") != 0 &&
		    strcmp(st, "closing") != 0)) {
			vg_err_set(err, VG_ERR_PARSE, "%s: \"state\" must be "
			    "\"warning\" or \"closing\"", method);
			return -1;
		}
		if (!quiesce_waiting(m->state) || r->phase != QUIESCE_ASKING) {
			vg_err_set(err, VG_ERR_INVALID, "%s: quiesce %llu is "
			    "no longer waiting on this agent (%s)", method,
			    (unsigned long long)id,
			    quiesce_mstate_names[m->state]);
			return -1;
		}
		m->state = strcmp(st, "warning") == 0 ? QM_WARNING :
		    QM_CLOSING;
		m->last_ms = now_ms;
		rc = 0;
	} else if (strcmp(method, "agent.closed") == 0) {
		if (quiesce_waiting(m->state))
			m->last_ms = now_ms;
		rc = quiesce_take_closed(r, m, params, err);
		if (changed != NULL)
			*changed = r;
		/* A late closed answer in a resuming round needs a resume. */
		if (rc == 0 && r->phase == QUIESCE_DONE && m->connected &&
		    m->resume == QR_NONE && !r->dry_run)
			r->phase = QUIESCE_RESUMING;
		return rc;
	} else if (strcmp(method, "agent.postpone") == 0) {
		if (!quiesce_waiting(m->state) || r->phase != QUIESCE_ASKING) {
			vg_err_set(err, VG_ERR_INVALID, "%s: quiesce %llu went "
			    "ahead already; too late to postpone", method,
			    (unsigned long long)id);
			return -1;
		}
		if (!r->may_postpone) {
			vg_err_set(err, VG_ERR_INVALID, "%s: this run may not "
			    "be postponed (it was postponed %u times; "
			    "max-postpone allows no more, or it is a dry run)",
			    method, r->postponed);
			quiesce_member_invalid(r, m, err);
			if (changed != NULL)
				*changed = r;
			return -1;
		}
		m->state = QM_POSTPONED;
		m->last_ms = now_ms;
		quiesce_check(r);
		rc = 0;
	} else {
		m->last_ms = now_ms;
		rc = quiesce_take_resumed(r, m, params, err);
	}
	if (changed != NULL && (rc == 0 || r->phase != before))
		*changed = r;
	return rc;
}

/* ---- the record ---- */

const char *
quiesce_path_name(enum quiesce_path p)
{
	switch (p) {
	case QUIESCE_PATH_AGENT:
		return "agent";
	case QUIESCE_PATH_FALLBACK:
		return "fallback";
	case QUIESCE_PATH_SKIP:
	case QUIESCE_PATH_POSTPONE:
		return "skip";
	}
	return "fallback";
}

const char *
quiesce_phase_name(enum quiesce_phase p)
{
	switch (p) {
	case QUIESCE_ASKING:
		return "asking";
	case QUIESCE_DECIDED:
		return "decided";
	case QUIESCE_RESUMING:
		return "resuming";
	case QUIESCE_DONE:
		return "done";
	}
	return "unknown";
}

json_t *
quiesce_round_details(const struct quiesce_round *r)
{
	json_t *d = NULL, *qo, *files, *agents, *apps;
	const struct quiesce_member *m;
	size_t i;

	if ((files = json_array()) == NULL)
		return NULL;
	for (i = 0; i < r->fallback_files.n; i++)
		json_array_append_new(files,
		    json_string(r->fallback_files.v[i]));
	qo = json_pack("{s:I, s:s, s:s?, s:s?, s:b, s:o, s:b, s:b, s:b, "
	    "s:s?}",
	    "id", (json_int_t)r->id, "phase", quiesce_phase_name(r->phase),
	    "path", r->phase == QUIESCE_ASKING ? NULL :
	    quiesce_path_name(r->path),
	    "reason", r->phase == QUIESCE_ASKING ? NULL : r->reason,
	    "fallback_all", r->fallback_all, "fallback_files", files,
	    "dry_run", r->dry_run,
	    "postponed", r->phase != QUIESCE_ASKING &&
	    r->path == QUIESCE_PATH_POSTPONE,
	    "interrupted", r->interrupted,
	    "interrupt_reason", r->interrupt_reason);
	if (qo == NULL)
		return NULL;
	if ((agents = json_array()) == NULL) {
		json_decref(qo);
		return NULL;
	}
	for (i = 0; i < r->nm; i++) {
		m = &r->m[i];
		json_array_append_new(agents, json_pack("{s:I, s:s, s:I, s:s, "
		    "s:s, s:s?, s:s}", "conn", (json_int_t)m->conn,
		    "user", m->user, "uid", (json_int_t)m->uid,
		    "session", m->session,
		    "state", quiesce_mstate_names[m->state],
		    "note", m->note[0] != '\0' ? m->note : NULL,
		    "resume", quiesce_rstate_names[m->resume]));
	}
	apps = json_pack("{s:O, s:O, s:O, s:O, s:O}", "closed", r->closed,
	    "refused", r->refused, "killed", r->killed,
	    "reopened", r->reopened, "reopen_failed", r->reopen_failed);
	if (apps == NULL) {
		json_decref(qo);
		json_decref(agents);
		return NULL;
	}
	d = json_pack("{s:o, s:O, s:o, s:o}", "quiesce", qo,
	    "sessions", r->sessions, "agents", agents, "apps", apps);
	return d;
}

static json_t *
quiesce_agent_json(const struct quiesce_agent *a, int64_t now_ms)
{
	return json_pack("{s:I, s:s?, s:b, s:s?, s:I, s:I}",
	    "conn", (json_int_t)a->conn,
	    "display", a->display[0] != '\0' ? a->display : NULL,
	    "wayland", a->wayland,
	    "version", a->version[0] != '\0' ? a->version : NULL,
	    "connected_ms", (json_int_t)(now_ms - a->registered_ms),
	    "last_heard_ago_ms", (json_int_t)(now_ms - a->last_heard_ms));
}

json_t *
quiesce_sessions_json(const struct vg_quiesce *q, const char *source,
    const struct vg_session *sessions, size_t n, int64_t now_ms)
{
	const struct quiesce_agent *a, *found;
	json_t *arr, *o;
	size_t i, j;
	bool listed;

	if ((arr = json_array()) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		found = NULL;
		for (j = 0; j < q->nagents && found == NULL; j++)
			if (strcmp(q->agents[j].session, sessions[i].id) == 0 &&
			    q->agents[j].uid == sessions[i].uid)
				found = &q->agents[j];
		o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:b, s:s?, s:s?, "
		    "s:s?, s:s, s:o}", "id", sessions[i].id,
		    "user", sessions[i].user, "uid", (json_int_t)sessions[i].uid,
		    "class", sessions_class_name(sessions[i].klass),
		    "type", sessions_type_name(sessions[i].type),
		    "state", sessions_state_name(sessions[i].state),
		    "remote", sessions[i].remote,
		    "seat", sessions[i].seat[0] ? sessions[i].seat : NULL,
		    "display", sessions[i].display[0] ? sessions[i].display :
		    NULL, "tty", sessions[i].tty[0] ? sessions[i].tty : NULL,
		    "tracked_by", source != NULL ? source : "unknown",
		    "agent", found != NULL ? quiesce_agent_json(found, now_ms) :
		    json_null());
		if (o != NULL)
			json_array_append_new(arr, o);
	}
	for (j = 0; j < q->nagents; j++) {
		a = &q->agents[j];
		listed = false;
		for (i = 0; i < n && !listed; i++)
			listed = strcmp(a->session, sessions[i].id) == 0 &&
			    a->uid == sessions[i].uid;
		if (listed)
			continue;
		o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:b, s:n, s:s?, "
		    "s:n, s:s, s:o}", "id", a->session, "user", a->user,
		    "uid", (json_int_t)a->uid, "class", "user",
		    "type", a->display[0] == '\0' ? "unspecified" :
		    a->wayland ? "wayland" : "x11",
		    "state", "online", "remote", 0, "seat",
		    "display", a->display[0] ? a->display : NULL, "tty",
		    "tracked_by", "agent",
		    "agent", quiesce_agent_json(a, now_ms));
		if (o != NULL)
			json_array_append_new(arr, o);
	}
	return arr;
}
