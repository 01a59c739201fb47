/*
 * tray_model.h: what vigil-tray knows about the service, without GTK.
 *
 * The tray is a thin client of vigild's socket: it keeps only what the
 * service told it (the `status` answer and the events since), and derives
 * from that the icon's state, the tooltip, the notifications, and the
 * progress figures (rate, ETA).  Nothing here talks to the socket or draws:
 * tray.c feeds answers and events in and reads the results out, so that
 * the decisions can be tested on their own.
 *
 * Ownership: tray_model_new() returns a model the caller frees with
 * tray_model_free().  JSON passed in is borrowed.  Strings returned by
 * *_text() functions are malloc'd and the caller frees them; pointers into
 * the model (jobs, runs) stay valid until the next call that changes it.
 */
#ifndef VIGIL_TRAY_MODEL_H
#define VIGIL_TRAY_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"

/* In order of precedence: the icon shows the highest that applies. */
enum tray_state {
	TRAY_IDLE,		/* connected, nothing to report */
	TRAY_PARTIAL,		/* a job's last run was partial */
	TRAY_FAILED,		/* a job's last run failed or was interrupted */
	TRAY_OVERDUE,		/* a job had no successful run in warn-after */
	TRAY_RUNNING,		/* a run is in progress */
	TRAY_DISCONNECTED,	/* the service does not answer; retrying */
};

struct tray_job {
	int64_t	 id;
	char	*name;
	char	*owner;
	char	*run_name;	/* what `run` takes: NAME, or OWNER:NAME */
	char	*last_status;	/* NULL: never ran */
	char	*last_run;	/* ISO time or NULL */
	char	*next_run;	/* ISO time or NULL */
	bool	 running;
	bool	 overdue;
};

struct tray_run {
	int64_t	 run;
	int64_t	 job_id;
	char	*job;
	char	 phase[24];
	int64_t	 files, copied, bytes, bytes_todo;
	char	*current;	/* escaped by the service; may be NULL */
	/* For the rate: the first progress seen and when. */
	int64_t	 t0_ms, bytes0, t_ms;
};

/* A notification the tray should show. */
struct tray_notice {
	char	id[64];		/* replaces an earlier notice with this id */
	char	title[128];
	char	body[512];
	bool	urgent;
};

struct tray_model {
	bool		 connected;
	char		*user;		/* our user name, for OWNER:NAME */
	bool		 admin;
	struct tray_job	*jobs;
	size_t		 njobs;
	struct tray_run	*runs;
	size_t		 nruns;
	int		 retry_ms;	/* the backoff while disconnected */
	char		*why;		/* last connection error, or NULL */
};

struct tray_model *tray_model_new(const char *user);
void	tray_model_free(struct tray_model *m);

/* Connected (hello done) or not; why may be NULL.  Going offline forgets
 * the runs in progress (their end is not known). */
void	tray_model_set_connected(struct tray_model *m, bool connected,
	    bool admin, const char *why);
/* The answer to `status` replaces what is known of jobs and runs. */
int	tray_model_set_status(struct tray_model *m, json_t *status,
	    int64_t now_ms);

/*
 * An event (topic, data).  Returns 1 and fills *notice when the user
 * should be told (run finished, failed, partial; a job overdue), 0 when
 * not, and sets *refresh when the jobs changed in a way that needs a new
 * `status` (a run ended, the job set changed).
 */
int	tray_model_event(struct tray_model *m, const char *topic,
	    json_t *data, int64_t now_ms, struct tray_notice *notice,
	    bool *refresh);

enum tray_state tray_model_state(const struct tray_model *m);
/* The themed icon name of a state: "vigil-idle", "vigil-running", ... */
const char *tray_state_icon(enum tray_state s);
const char *tray_state_name(enum tray_state s);

const struct tray_job *tray_model_job(const struct tray_model *m,
	    int64_t job_id);
const struct tray_run *tray_model_run_of_job(const struct tray_model *m,
	    int64_t job_id);

/* Percent done of a run, or -1 when the total is not known yet. */
int	tray_run_percent(const struct tray_run *r);
/* Bytes per second since the first progress seen, or 0. */
double	tray_run_rate(const struct tray_run *r);
/* Seconds left at the current rate, or -1 when not known. */
int64_t	tray_run_eta(const struct tray_run *r);

/* The tooltip, e.g. "vigil: documents 42% (copy)". */
char	*tray_model_tooltip_text(const struct tray_model *m);
/* The first line of the menu, e.g. "Backups: all good". */
char	*tray_model_headline_text(const struct tray_model *m);

/* "1.5 MB", "320 B" (decimal units, as the CLI). */
void	tray_format_bytes(double bytes, char *buf, size_t len);
/* "1:05:03", "4:07", "0:09"; "--" when s < 0. */
void	tray_format_duration(int64_t s, char *buf, size_t len);
/* An ISO time from the service ("2026-11-21T22:10:03.120Z") as local time
 * ("Sat 21 Nov 23:10"); "never" for NULL, the text itself when it does not
 * parse. */
void	tray_format_time(const char *iso, char *buf, size_t len);

/* A run's record (the `log` answer) as text for the log window. */
char	*tray_log_text(json_t *log);

/* The next wait before reconnecting: 1 s, doubling up to 30 s. */
int	tray_backoff_next(int prev_ms);

/*
 * Validate a jobs file as `vigil jobs validate` does (config_parse, then
 * config_check as caller_uid with the paths checked).  Diagnostics go to
 * diags (caller frees with diags_free); returns the number of errors.
 */
size_t	tray_validate_jobs(const char *filename, const char *text,
	    size_t len, uid_t caller_uid, struct vg_diags *diags);
/* The service's `error.detail.diagnostics` added to diags.  0 or -1. */
int	tray_diags_from_json(json_t *diagnostics, struct vg_diags *diags);
/* One diagnostic as a line for the error list: "line 4: job docs: key
 * schedule: message (hint: ...)".  Caller frees. */
char	*tray_diag_text(const struct vg_diag *d);

#endif
