/*
 * quiesce.h: the session agents vigild knows, and the decision of each run
 * between closing apps through the agents and the fallback (DESIGN.md,
 * "The job run"; docs/sessions.md has the decision table).
 *
 * Pure logic: nothing here reads a clock, sends a message or logs.  Times
 * are monotonic milliseconds (clock_mono_ms()) passed in by the caller; the
 * messages to send are returned as JSON for the caller to push with
 * server_send_event(); agents' messages come in as the parsed params.  The
 * one outside call is the claim check at registration, made through the
 * session source (sessions.h), which tests replace with the fake.
 *
 * The registry.  An agent connection becomes an agent with
 * quiesce_agent_register() (its agent.register request).  Its uid is the
 * connection's SO_PEERCRED uid; the session it claims is accepted only when
 * the session source says that session belongs to that uid.  Where the
 * source cannot check claims (utmp: no logind), the connection itself is the
 * agent's session, "agent:<conn>".  quiesce_agent_gone() when the
 * connection closes.
 *
 * A round.  quiesce_plan() makes one round per run, from the job and the
 * sessions now.  It is either decided at once (nobody logged on, the job
 * closes no apps, nobody of the job's users has an agent) or waits for the
 * agents it asks: for a user's job, the agents of its owner; for root's job,
 * every agent, each answering for its own user.  Each asked agent is a
 * member with a deadline of warn + close-timeout + QUIESCE_MARGIN_S,
 * counted from its last message; agent.progress restarts it.  The round is
 * decided (quiesce_round_decided()) when every member answered, missed its
 * deadline, went away or sent an answer we could not use, or at once when
 * one member postpones (and may).
 *
 * The outcome: path "agent" when every asked agent answered closed with no
 * refusal and every logged-on user of the job has an agent; "skip" when
 * nobody is logged on and the job says logged-off = skip; "postpone" (a
 * skip in the record) when a user chose Postpone; else "fallback" with the
 * reason.  With fallback, fallback_all says every file is captured by the
 * fallback; otherwise only the files of refused apps are.
 *
 * After the copy (or when the run ends in any other way, postponed,
 * cancelled or failed): quiesce_round_resume() gives the agents to send
 * resume to, once each; their agent.resumed answers are recorded, with a
 * deadline of QUIESCE_RESUME_TIMEOUT_S.  quiesce_round_settled() says when
 * nothing more is awaited; quiesce_round_details() is the record, at any
 * time (also mid-round, for a run the service may not live to finish).
 *
 * Hostile input: agents' params may miss any field or hold any type.  A bad
 * message is answered with an error (err) and changes nothing, except an
 * unusable answer to a quiesce (agent.closed, agent.postpone), which ends
 * that agent's part as "invalid": its files go to the fallback.  Nothing an
 * agent sends can end the service or speak for another uid.
 *
 * Ownership: quiesce_new() returns a registry freed with quiesce_free(),
 * which frees its rounds too.  Rounds belong to the registry; the caller
 * holds a pointer until quiesce_round_free().  JSON returned by *_json() and
 * *_event() and quiesce_round_details() are new references the caller
 * decrefs.  Arrays of conns are malloc'd, freed by the caller.  Strings in a
 * struct quiesce_outcome belong to the round.
 */
#ifndef VIGIL_QUIESCE_H
#define VIGIL_QUIESCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/sessions.h"

struct vg_err;
struct vg_quiesce;
struct quiesce_round;

/* Added to warn + close-timeout for every agent round trip. */
#define QUIESCE_MARGIN_S		10
/* How long an agent has to confirm a resume, from its last message. */
#define QUIESCE_RESUME_TIMEOUT_S	30
/* Limits on what an agent may send. */
#define QUIESCE_NAME_MAX		256	/* app names, with the NUL */
#define QUIESCE_REASON_MAX		512
#define QUIESCE_APPS_MAX		1024	/* entries per list */
#define QUIESCE_FILES_MAX		16384	/* files in one answer */

struct quiesce_agent {
	uint64_t	 conn;
	uid_t		 uid;
	char		 user[VG_SESSION_USER_MAX];
	char		 session[VG_SESSION_ID_MAX];	/* accepted */
	char		 claimed[VG_SESSION_ID_MAX];	/* "" none */
	char		 display[VG_SESSION_DISPLAY_MAX];
	bool		 wayland;
	char		 version[32];
	const char	*tracked_by;	/* static: "logind", "utmp", ... */
	int64_t		 registered_ms;
	int64_t		 last_heard_ms;
};

enum quiesce_path {
	QUIESCE_PATH_AGENT = 0,
	QUIESCE_PATH_FALLBACK,
	QUIESCE_PATH_SKIP,
	QUIESCE_PATH_POSTPONE,
};

enum quiesce_phase {
	QUIESCE_ASKING = 0,	/* waiting on agents */
	QUIESCE_DECIDED,	/* the outcome is known */
	QUIESCE_RESUMING,	/* resume sent, confirmations awaited */
	QUIESCE_DONE,		/* nothing more awaited */
};

struct quiesce_outcome {
	enum quiesce_path	 path;
	const char		*reason;
	bool			 fallback_all;	/* every file by the fallback */
	/* Absolute paths under the job's sources, held by apps that refused
	 * to close: capture these by the fallback (meaningful when
	 * fallback_all is false). */
	const struct vg_strlist	*fallback_files;
	/* POSTPONE: run again postpone_s later; the job has now been
	 * postponed this many times in a row. */
	uint64_t		 postpone_s;
	unsigned		 postponed;
};

/* What quiesce_plan() needs to know about the run. */
struct quiesce_request {
	int64_t			 run_id;
	const char		*job;		/* name */
	uid_t			 owner_uid;	/* 0: root's job */
	const char		*owner;		/* name; NULL: "uid N" */
	const struct vg_job_def	*def;		/* sources, close-apps, ... */
	unsigned		 postponed;	/* times this job's run was
						   postponed in a row */
	bool			 dry_run;
};

struct vg_quiesce *quiesce_new(void);
void	quiesce_free(struct vg_quiesce *q);

/* ---- the registry ---- */

/*
 * agent.register from connection conn of peer uid (user: its name, NULL
 * gives "uid N").  params as the agent sent them (may be NULL or anything).
 * With a source that checks claims: the claimed "session" must belong to
 * uid; a null claim takes uid's display session, else uid's first login
 * session.  On success, *result (may be NULL) gets the answer's result
 * object and the agent is kept.  -1 with err: VG_ERR_PARSE for bad params,
 * VG_ERR_PERM for a refused claim (the agent is not used), VG_ERR_EXISTS
 * when conn is registered already, VG_ERR_SYS when the source failed.
 */
int	quiesce_agent_register(struct vg_quiesce *q, struct vg_sessions *src,
	    uint64_t conn, uid_t uid, const char *user, json_t *params,
	    int64_t now_ms, json_t **result, struct vg_err *err);
/* The agent on conn, or NULL. */
const struct quiesce_agent *quiesce_agent_find(const struct vg_quiesce *q,
	    uint64_t conn);
/* Agents in registration order: index 0 .. quiesce_agent_count() - 1. */
size_t	quiesce_agent_count(const struct vg_quiesce *q);
const struct quiesce_agent *quiesce_agent_at(const struct vg_quiesce *q,
	    size_t i);
/*
 * Connection conn closed.  The agent leaves the registry; in every round it
 * was asked in and had not answered, its part ends as "gone" (its files go
 * to the fallback); a resume it was sent is no longer awaited.  Returns how
 * many rounds changed: check quiesce_round_decided()/settled() on yours.
 */
int	quiesce_agent_gone(struct vg_quiesce *q, uint64_t conn, int64_t now_ms);

/*
 * A message from an agent: agent.progress, agent.closed, agent.postpone or
 * agent.resumed.  Any message from a registered agent counts as heard.
 * *changed (may be NULL) gets the round it changed, or NULL.  0 when the
 * message was taken; -1 with err for an unregistered connection
 * (VG_ERR_PERM), an unknown method (VG_ERR_INVALID), bad params
 * (VG_ERR_PARSE), a quiesce this agent was not asked in (VG_ERR_NOTFOUND),
 * or an answer that comes when it cannot be taken (VG_ERR_INVALID).  An
 * unusable agent.closed or agent.postpone also ends the agent's part as
 * "invalid" and sets *changed.
 */
int	quiesce_agent_message(struct vg_quiesce *q, uint64_t conn,
	    const char *method, json_t *params, int64_t now_ms,
	    struct quiesce_round **changed, struct vg_err *err);

/* ---- rounds ---- */

/*
 * Plan the quiesce of one run.  sessions: the source's sessions now (n of
 * them; only login sessions count, sessions_is_login()); connected agents
 * count as sessions of their uid too.  Returns a round owned by q; NULL
 * with err for a request without job definition or when memory runs out.
 */
struct quiesce_round *quiesce_plan(struct vg_quiesce *q,
	    const struct quiesce_request *req, const struct vg_session *sessions,
	    size_t n, int64_t now_ms, struct vg_err *err);
void	quiesce_round_free(struct vg_quiesce *q, struct quiesce_round *r);

uint64_t quiesce_round_id(const struct quiesce_round *r);
int64_t	 quiesce_round_run(const struct quiesce_round *r);
enum quiesce_phase quiesce_round_phase(const struct quiesce_round *r);
/* The round of a quiesce id, or NULL. */
struct quiesce_round *quiesce_round_find(struct vg_quiesce *q, uint64_t id);

/*
 * Agents to send the quiesce event to (phase ASKING right after
 * quiesce_plan(); none when the round was decided at once), and the event's
 * data (the same for each).
 */
int	quiesce_round_targets(const struct quiesce_round *r, uint64_t **conns,
	    size_t *n);
json_t	*quiesce_round_event(const struct quiesce_round *r);
/* server_send_event() to conn failed: its part ends as "gone". */
void	quiesce_round_send_failed(struct vg_quiesce *q, struct quiesce_round *r,
	    uint64_t conn, int64_t now_ms);

/* The earliest deadline of any round (monotonic ms), or -1 if none. */
int64_t	quiesce_next_deadline(const struct vg_quiesce *q);
/* Mark every member past its deadline at now_ms late (its files go to the
 * fallback) and every resume not confirmed in time unconfirmed.  Returns
 * how many members became late. */
int	quiesce_on_timeout(struct vg_quiesce *q, int64_t now_ms);

/* True once the outcome is known (phase DECIDED or later). */
bool	quiesce_round_decided(const struct quiesce_round *r);
/* The outcome: 0, or -1 while the round is still asking. */
int	quiesce_round_outcome(const struct quiesce_round *r,
	    struct quiesce_outcome *out);

/*
 * The run will not copy (cancelled, failed, service stopping): the round is
 * decided if it was not (fallback, with reason), and marked interrupted in
 * the record.  Call quiesce_round_resume() after it so that apps closed
 * already are reopened.
 */
void	quiesce_round_interrupt(struct quiesce_round *r, const char *reason);

/*
 * Resume: the agents that need a resume event now, each returned once (a
 * member that answers closed after its deadline is returned by a later
 * call: call this again after every message that changed a resuming
 * round).  Moves a decided round to RESUMING.  Dry runs and rounds that
 * asked nobody need none.  -1 while the round is still asking.
 */
int	quiesce_round_resume(struct vg_quiesce *q, struct quiesce_round *r,
	    int64_t now_ms, uint64_t **conns, size_t *n);
json_t	*quiesce_round_resume_event(const struct quiesce_round *r);
/* Decided, resumed where needed, and no confirmation awaited. */
bool	quiesce_round_settled(const struct quiesce_round *r);

/*
 * The round for the run record (details_json), at any time:
 *   {"quiesce": {"id", "phase", "path", "reason", "fallback_all",
 *                "fallback_files": [...], "dry_run", "postponed",
 *                "interrupted", "interrupt_reason"},
 *    "sessions": [{"id", "user", "uid", "class", "type", "state",
 *                  "remote", "has_agent"}],
 *    "agents": [{"conn", "user", "uid", "session", "state", "note",
 *                "resume"}],
 *    "apps": {"closed": [{"name", "pid", "user", "uid"}],
 *             "refused": [{"name", "pid", "user", "uid", "reason",
 *                          "files"}],
 *             "killed": [...], "reopened": [...], "reopen_failed": [...]}}
 */
json_t	*quiesce_round_details(const struct quiesce_round *r);

/* "agent", "fallback", "skip"; POSTPONE is recorded as "skip". */
const char *quiesce_path_name(enum quiesce_path p);
const char *quiesce_phase_name(enum quiesce_phase p);

/*
 * Every session with its agent, for `vigil sessions` and status: the
 * sessions given (from the source named source: sessions_backend_name())
 * plus each agent whose session is not among them (where logind is absent;
 * "tracked_by": "agent").  Each item: {"id", "user", "uid", "class",
 * "type", "state", "remote", "seat", "display", "tty", "tracked_by",
 * "agent": null or {"conn", "display", "wayland", "version",
 * "connected_ms", "last_heard_ago_ms"}}.
 */
json_t	*quiesce_sessions_json(const struct vg_quiesce *q, const char *source,
	    const struct vg_session *sessions, size_t n, int64_t now_ms);

#endif
