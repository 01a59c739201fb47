/*
 * config.h: the jobs file (INI), parsed with line numbers and comments kept.
 *
 * The text form of a job set is an INI file (docs/config.md, DESIGN.md "Jobs
 * file").  config_parse() turns text into a struct vg_jobfile; every problem
 * becomes a struct vg_diag with file, line, key, message and hint, and parsing
 * goes on so that one pass reports every error (duplicate job names are found
 * here too).  config_check() adds the checks that need the filesystem or the
 * user database (a missing source, a destination inside a source, an unknown
 * owner).  config_export() writes jobs
 * back, comments included, so a round trip loses nothing.
 *
 * Ownership: config_parse() returns a jobfile the caller frees with
 * jobfile_free(); every string inside belongs to it.  Diagnostics belong to
 * the struct vg_diags the caller passed and are freed with diags_free().
 */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define VG_JOB_NAME_MAX	64

enum vg_mode { VG_MODE_BACKUP, VG_MODE_MIRROR, VG_MODE_SYNC, VG_MODE_ARCHIVE };
enum vg_format { VG_FMT_TAR_ZST, VG_FMT_TAR_GZ, VG_FMT_ZIP };
enum vg_archive_kind { VG_ARCHIVE_FULL, VG_ARCHIVE_INCREMENTAL };
enum vg_close_apps { VG_CLOSE_NONE, VG_CLOSE_AUTO, VG_CLOSE_LIST };
enum vg_close_method { VG_CLOSE_WINDOW, VG_CLOSE_TERM };
enum vg_logged_off { VG_LOGGEDOFF_SNAPSHOT, VG_LOGGEDOFF_COPY, VG_LOGGEDOFF_SKIP };
enum vg_snapshot { VG_SNAP_AUTO, VG_SNAP_BTRFS, VG_SNAP_LVM, VG_SNAP_REFLINK,
	VG_SNAP_VERIFY };
enum vg_missed { VG_MISSED_RUN_ONCE, VG_MISSED_SKIP };
enum vg_priority { VG_PRIO_NORMAL, VG_PRIO_LOW };

struct vg_strlist {
	char	**v;
	size_t	  n;
};

/* One [job NAME] section, every key of DESIGN.md's table. */
struct vg_job_def {
	char			*name;
	unsigned		 line;		/* line of the [job] header */
	/* Lines of some keys, for config_check()'s diagnostics (0 or NULL
	 * when unknown, e.g. for a job built by hand). */
	unsigned		*source_lines;	/* parallel to sources.v */
	unsigned		 destination_line, require_mount_line,
				 owner_line;
	struct vg_strlist	 sources;	/* absolute paths, >= 1 */
	char			*destination;
	enum vg_mode		 mode;
	char			*schedule;	/* text as written; "manual" default */
	struct vg_strlist	 include, exclude;
	unsigned		 keep_versions, keep_days;
	unsigned		 max_delete;	/* percent, default 50 */
	bool			 verify;
	enum vg_format		 format;
	int			 compression;	/* 0-9, default 6 */
	enum vg_archive_kind	 archive;
	enum vg_close_apps	 close_apps;
	struct vg_strlist	 close_app_names; /* with VG_CLOSE_LIST */
	enum vg_close_method	 close_method;
	uint64_t		 warn_s, close_timeout_s, postpone_s; /* seconds */
	unsigned		 max_postpone;
	bool			 force_close;
	enum vg_logged_off	 logged_off;
	enum vg_snapshot	 snapshot;
	unsigned		 retries;	/* default 3 */
	enum vg_missed		 missed;
	uint64_t		 grace_s;	/* default 12h */
	bool			 has_window;
	unsigned		 window_start, window_end; /* minutes after 00:00 */
	uint64_t		 max_runtime_s;	/* 0 = none */
	bool			 wake;
	uint64_t		 warn_after_s;	/* 0 = none */
	struct vg_strlist	 pre, post;	/* argv, split like ExecStart= */
	char			*owner;		/* user name, NULL = importer */
	bool			 one_file_system;
	char			*require_mount;
	enum vg_priority	 priority;
	struct vg_strlist	 notify;	/* "mailto:..." / "exec:..." items */

	/*
	 * The section exactly as written: the comment lines directly above
	 * the header, the header, and every line up to the next section.
	 * This is what the store keeps and what export writes back.
	 */
	char			*text;
};

struct vg_jobfile {
	char			 *preamble;	/* comments before the first job
						   that are not attached to it;
						   "" when there are none */
	struct vg_job_def	**jobs;
	size_t			  njobs;
};

enum vg_diag_level { VG_DIAG_ERROR, VG_DIAG_NOTE };

struct vg_diag {
	enum vg_diag_level	 level;
	char			*file;		/* as given to config_parse */
	unsigned		 line;		/* 0 when not tied to a line */
	char			*job;		/* NULL outside a section */
	char			*key;		/* NULL when not tied to a key */
	char			*msg;
	char			*hint;		/* what to do; may be NULL */
};

struct vg_diags {
	struct vg_diag	*v;
	size_t		 n;
	size_t		 nerrors;
};

/*
 * Parse text (len bytes, need not be NUL-terminated, may hold NUL bytes which
 * are an error).  filename is used in diagnostics only.  Returns 0 if no
 * error diagnostics were added, -1 otherwise; *out is set in both cases
 * (holding the jobs that parsed) unless memory ran out.
 */
int	config_parse(const char *filename, const char *text, size_t len,
	    struct vg_jobfile **out, struct vg_diags *diags);

/* Checks that look outside the text. */
struct vg_check_ctx {
	uid_t	 caller_uid;	/* who imports; non-root may not name another
				   owner */
	bool	 check_paths;	/* stat sources, destination, require-mount */
};
int	config_check(const struct vg_jobfile *jf, const char *filename,
	    const struct vg_check_ctx *ctx, struct vg_diags *diags);

/*
 * Parse one stored section (as kept in vg_job_def.text) back into a job.
 * Returns NULL and fills diags on error.  Caller frees with job_def_free().
 */
struct vg_job_def *config_parse_job(const char *text, struct vg_diags *diags);

/*
 * Write a job set back: preamble (may be NULL), then each job's text, as
 * they are; a newline is added only where a text that does not end in one is
 * followed by another.  config_export(jf->preamble, jf->jobs, jf->njobs) of a
 * parsed file gives the file back byte for byte.  Returns a malloc'd string
 * the caller frees, or NULL when memory runs out.
 */
char	*config_export(const char *preamble, struct vg_job_def *const *jobs,
	    size_t njobs);

/* Values, shared with the scheduler and the CLI. */
/* "90s", "5m", "2h", "3d", or combined "1h30m": 0 or -1. */
int	config_parse_duration(const char *s, uint64_t *seconds);
/* 1 if name is a valid job name ([A-Za-z0-9._-]{1,64}, not "." or ".."),
 * else 0. */
int	config_valid_job_name(const char *name);
/*
 * Split a pre/post/exec: command like systemd's ExecStart=: words separated
 * by blanks, double (or single) quotes group, a backslash escapes the next
 * character (\n, \t also understood).  Words are appended to out.  Returns
 * 0, or -1 with *errmsg (malloc'd, caller frees) for an unterminated quote or
 * a trailing backslash.
 */
int	config_split_argv(const char *s, struct vg_strlist *out, char **errmsg);
const char *config_mode_name(enum vg_mode m);

void	jobfile_free(struct vg_jobfile *jf);
void	job_def_free(struct vg_job_def *job);
void	strlist_free(struct vg_strlist *l);
int	strlist_push(struct vg_strlist *l, const char *s);
void	diags_free(struct vg_diags *d);
/* Add one diagnostic (strings are copied; file, job, key, hint may be
 * NULL).  Counts errors in d->nerrors even if memory runs out.  0 or -1. */
int	diags_add(struct vg_diags *d, enum vg_diag_level level,
	    const char *file, unsigned line, const char *job, const char *key,
	    const char *hint, const char *fmt, ...)
	    __attribute__((format(printf, 8, 9)));
/* Print "FILE:LINE: job NAME: key KEY: message" lines, each followed by
 * "  hint: ..." when there is a hint; notes say "note: " before the
 * message.  Untrusted bytes are escaped. */
void	diags_print(const struct vg_diags *d, FILE *fp);

#endif
