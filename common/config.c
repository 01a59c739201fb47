/*
 * config.c: the jobs file (INI), our own parser.
 *
 * Two passes over the text.  The first splits it into lines (any length,
 * "\n" or "\r\n") and classifies each one, so that every section's text can
 * be cut out exactly as written: a section owns the comment lines directly
 * above its header (no blank line between) and every line after the header
 * up to the next section's comments.  What comes before the first section's
 * comments is the file's preamble.  Concatenating the preamble and the
 * sections gives back the file byte for byte.
 *
 * The second pass reads keys and values, checks each value, and records a
 * diagnostic for each problem without stopping.  A job with any error is not
 * returned.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/config.h"
#include "common/filter.h"
#include "common/log.h"
#include "common/schedule.h"

enum cfg_key {
	K_SOURCE, K_DESTINATION, K_MODE, K_SCHEDULE, K_INCLUDE, K_EXCLUDE,
	K_KEEP_VERSIONS, K_KEEP_DAYS, K_MAX_DELETE, K_VERIFY, K_FORMAT,
	K_COMPRESSION, K_ARCHIVE, K_CLOSE_APPS, K_CLOSE_METHOD, K_WARN,
	K_CLOSE_TIMEOUT, K_POSTPONE, K_MAX_POSTPONE, K_FORCE_CLOSE,
	K_LOGGED_OFF, K_SNAPSHOT, K_RETRIES, K_MISSED, K_GRACE, K_WINDOW,
	K_MAX_RUNTIME, K_WAKE, K_WARN_AFTER, K_PRE, K_POST, K_OWNER,
	K_ONE_FILE_SYSTEM, K_REQUIRE_MOUNT, K_PRIORITY, K_NOTIFY,
	K_COUNT
};

static const char *cfg_keys[K_COUNT] = {
	"source", "destination", "mode", "schedule", "include", "exclude",
	"keep-versions", "keep-days", "max-delete", "verify", "format",
	"compression", "archive", "close-apps", "close-method", "warn",
	"close-timeout", "postpone", "max-postpone", "force-close",
	"logged-off", "snapshot", "retries", "missed", "grace", "window",
	"max-runtime", "wake", "warn-after", "pre", "post", "owner",
	"one-file-system", "require-mount", "priority", "notify",
};

struct cfg_enum {
	const char	*name;
	int		 value;
};

static const struct cfg_enum cfg_modes[] = {
	{ "backup", VG_MODE_BACKUP }, { "mirror", VG_MODE_MIRROR },
	{ "archive", VG_MODE_ARCHIVE }, { NULL, 0 }
};
static const struct cfg_enum cfg_formats[] = {
	{ "zip", VG_FMT_ZIP }, { "tar.gz", VG_FMT_TAR_GZ },
	{ "tar.zst", VG_FMT_TAR_ZST }, { NULL, 0 }
};
static const struct cfg_enum cfg_archive_kinds[] = {
	{ "full", VG_ARCHIVE_FULL }, { "incremental", VG_ARCHIVE_INCREMENTAL },
	{ NULL, 0 }
};
static const struct cfg_enum cfg_close_methods[] = {
	{ "window", VG_CLOSE_WINDOW }, { "term", VG_CLOSE_TERM }, { NULL, 0 }
};
static const struct cfg_enum cfg_logged_offs[] = {
	{ "snapshot", VG_LOGGEDOFF_SNAPSHOT }, { "copy", VG_LOGGEDOFF_COPY },
	{ "skip", VG_LOGGEDOFF_SKIP }, { NULL, 0 }
};
static const struct cfg_enum cfg_snapshots[] = {
	{ "auto", VG_SNAP_AUTO }, { "btrfs", VG_SNAP_BTRFS },
	{ "lvm", VG_SNAP_LVM }, { "reflink", VG_SNAP_REFLINK },
	{ "verify", VG_SNAP_VERIFY }, { NULL, 0 }
};
static const struct cfg_enum cfg_misseds[] = {
	{ "run-once", VG_MISSED_RUN_ONCE }, { "skip", VG_MISSED_SKIP },
	{ NULL, 0 }
};
static const struct cfg_enum cfg_priorities[] = {
	{ "normal", VG_PRIO_NORMAL }, { "low", VG_PRIO_LOW }, { NULL, 0 }
};
static const struct cfg_enum cfg_bools[] = {
	{ "yes", 1 }, { "no", 0 }, { NULL, 0 }
};

#define HINT_DURATION	"write a number with a unit: 90s, 5m, 2h or 3d " \
			"(or combined, like 1h30m)"
#define HINT_LIST	"separate items with commas; write a comma inside " \
			"an item as \\,"
#define HINT_KEYS	"see docs/config.md for the list of keys"
#define HINT_CMD	"write the program's full path, e.g. " \
			"/usr/local/bin/prepare --quiet; no shell is used"

/* Line kinds of the first pass. */
enum cfg_kind { L_BLANK, L_COMMENT, L_HEADER, L_KEY, L_OTHER, L_NUL };

struct cfg_line {
	size_t		 off;	/* offset of the line in the text */
	size_t		 len;	/* content length, without "\n" / "\r\n" */
	size_t		 next;	/* offset of the next line */
	enum cfg_kind	 kind;
};

/* Escaped copies of untrusted strings for messages; a small ring. */
#define CFG_SHOW_RING	4
#define CFG_SHOW_MAX	80
struct cfg_show {
	char	*buf[CFG_SHOW_RING];
	int	 i;
};

struct cfg_parser {
	const char		*file;
	struct vg_diags		*diags;
	struct vg_jobfile	*jf;
	const char		*text;
	struct cfg_show		 show;

	struct vg_job_def	*job;		/* section being read */
	char			*jobdisp;	/* its name, escaped */
	int			 job_ok;	/* header good, not a duplicate */
	size_t			 nerr_at_start;
	unsigned		 seen[K_COUNT];	/* line each key first came */
	int			 mode_failed;	/* mode's value was refused */
	int			 val_comment;	/* value holds " ;" or " #" */

	/* Every section name met, with its line, to find duplicates. */
	char			**names;
	unsigned		 *name_lines;
	size_t			  nnames;
};

/* Text growing at its end. */
struct cfg_buf {
	char	*s;
	size_t	 len, cap;
	int	 failed;
};

static void
cfg_buf_add(struct cfg_buf *b, const char *s, size_t len)
{
	char *n;
	size_t cap;

	if (b->failed)
		return;
	if (b->len + len + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + len + 1)
			cap *= 2;
		if ((n = realloc(b->s, cap)) == NULL) {
			b->failed = 1;
			return;
		}
		b->s = n;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, len);
	b->len += len;
	b->s[b->len] = '\0';
}

static const char *
cfg_show_len(struct cfg_show *sh, const char *s, size_t len)
{
	char *e;
	size_t n;

	if (s == NULL)
		return "(null)";
	if (len > CFG_SHOW_MAX)
		len = CFG_SHOW_MAX;
	if ((e = log_escape_len(s, len)) == NULL)
		return "?";
	n = strlen(e);
	if (len == CFG_SHOW_MAX && n + 4 < SIZE_MAX) {
		char *t = realloc(e, n + 4);

		if (t != NULL) {
			memcpy(t + n, "...", 4);
			e = t;
		}
	}
	free(sh->buf[sh->i]);
	sh->buf[sh->i] = e;
	sh->i = (sh->i + 1) % CFG_SHOW_RING;
	return e;
}

static const char *
cfg_show(struct cfg_show *sh, const char *s)
{
	return cfg_show_len(sh, s, s ? strlen(s) : 0);
}

static void
cfg_show_free(struct cfg_show *sh)
{
	int i;

	for (i = 0; i < CFG_SHOW_RING; i++) {
		free(sh->buf[i]);
		sh->buf[i] = NULL;
	}
}

/* --- small helpers shared with others ----------------------------------- */

int
strlist_push(struct vg_strlist *l, const char *s)
{
	char **v, *c;

	if ((c = strdup(s)) == NULL)
		return -1;
	if ((v = realloc(l->v, (l->n + 2) * sizeof *v)) == NULL) {
		free(c);
		return -1;
	}
	l->v = v;
	l->v[l->n++] = c;
	l->v[l->n] = NULL;	/* ready for execv() */
	return 0;
}

void
strlist_free(struct vg_strlist *l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void
job_def_free(struct vg_job_def *job)
{
	if (job == NULL)
		return;
	free(job->name);
	free(job->source_lines);
	strlist_free(&job->sources);
	free(job->destination);
	free(job->schedule);
	strlist_free(&job->include);
	strlist_free(&job->exclude);
	strlist_free(&job->close_app_names);
	strlist_free(&job->pre);
	strlist_free(&job->post);
	free(job->owner);
	free(job->require_mount);
	strlist_free(&job->notify);
	free(job->text);
	free(job);
}

void
jobfile_free(struct vg_jobfile *jf)
{
	size_t i;

	if (jf == NULL)
		return;
	for (i = 0; i < jf->njobs; i++)
		job_def_free(jf->jobs[i]);
	free(jf->jobs);
	free(jf->preamble);
	free(jf);
}

void
diags_free(struct vg_diags *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].job);
		free(d->v[i].key);
		free(d->v[i].msg);
		free(d->v[i].hint);
	}
	free(d->v);
	memset(d, 0, sizeof *d);
}

static char *
cfg_strdup0(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

int
diags_add(struct vg_diags *d, enum vg_diag_level level, const char *file,
    unsigned line, const char *job, const char *key, const char *hint,
    const char *fmt, ...)
{
	struct vg_diag *v, *g;
	va_list ap;
	char *msg = NULL;
	int r;

	if (level == VG_DIAG_ERROR)
		d->nerrors++;
	va_start(ap, fmt);
	r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r == -1)
		return -1;
	if ((v = realloc(d->v, (d->n + 1) * sizeof *v)) == NULL) {
		free(msg);
		return -1;
	}
	d->v = v;
	g = &d->v[d->n];
	memset(g, 0, sizeof *g);
	g->level = level;
	g->line = line;
	g->msg = msg;
	g->file = cfg_strdup0(file);
	g->job = cfg_strdup0(job);
	g->key = cfg_strdup0(key);
	g->hint = cfg_strdup0(hint);
	d->n++;
	if ((file && !g->file) || (job && !g->job) || (key && !g->key) ||
	    (hint && !g->hint))
		return -1;
	return 0;
}

void
diags_print(const struct vg_diags *d, FILE *fp)
{
	struct cfg_show sh;
	const struct vg_diag *g;
	size_t i;

	memset(&sh, 0, sizeof sh);
	for (i = 0; i < d->n; i++) {
		g = &d->v[i];
		if (g->file != NULL && g->line > 0)
			fprintf(fp, "%s:%u: ", cfg_show(&sh, g->file), g->line);
		else if (g->file != NULL)
			fprintf(fp, "%s: ", cfg_show(&sh, g->file));
		else if (g->line > 0)
			fprintf(fp, "line %u: ", g->line);
		if (g->job != NULL)
			fprintf(fp, "job %s: ", g->job);
		if (g->key != NULL)
			fprintf(fp, "key %s: ", g->key);
		fprintf(fp, "%s%s\n", g->level == VG_DIAG_NOTE ? "note: " : "",
		    g->msg);
		if (g->hint != NULL)
			fprintf(fp, "  hint: %s\n", g->hint);
	}
	cfg_show_free(&sh);
}

const char *
config_mode_name(enum vg_mode m)
{
	switch (m) {
	case VG_MODE_BACKUP:
		return "backup";
	case VG_MODE_MIRROR:
		return "mirror";
	case VG_MODE_SYNC:
		return "sync";
	case VG_MODE_ARCHIVE:
		return "archive";
	}
	return "?";
}

int
config_valid_job_name(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++) {
		if (i >= VG_JOB_NAME_MAX)
			return 0;
		if (!isalnum((unsigned char)name[i]) && name[i] != '.' &&
		    name[i] != '_' && name[i] != '-')
			return 0;
		if ((unsigned char)name[i] >= 0x80)
			return 0;
	}
	if (i == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	return 1;
}

int
config_parse_duration(const char *s, uint64_t *seconds)
{
	uint64_t total = 0, v, unit;
	const char *p = s;
	int digits;

	if (*p == '\0')
		return -1;
	while (*p != '\0') {
		v = 0;
		digits = 0;
		while (isdigit((unsigned char)*p)) {
			if (++digits > 12)
				return -1;
			v = v * 10 + (uint64_t)(*p++ - '0');
		}
		if (digits == 0)
			return -1;
		switch (*p++) {
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		default:
			return -1;
		}
		total += v * unit;
		if (total > (uint64_t)100 * 366 * 86400)
			return -1;
	}
	*seconds = total;
	return 0;
}

int
config_split_argv(const char *s, struct vg_strlist *out, char **errmsg)
{
	struct cfg_buf w;
	const char *p = s;
	char quote, c;
	int inword;

	*errmsg = NULL;
	memset(&w, 0, sizeof w);
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		w.len = 0;
		cfg_buf_add(&w, "", 0);
		quote = 0;
		inword = 1;
		while (inword && *p != '\0') {
			c = *p++;
			if (c == '\\') {
				if (*p == '\0') {
					*errmsg = strdup("the command ends in "
					    "a lone backslash");
					goto fail;
				}
				c = *p++;
				if (c == 'n')
					c = '\n';
				else if (c == 't')
					c = '\t';
				cfg_buf_add(&w, &c, 1);
			} else if (quote != 0 && c == quote) {
				quote = 0;
			} else if (quote == 0 && (c == '"' || c == '\'')) {
				quote = c;
			} else if (quote == 0 && (c == ' ' || c == '\t')) {
				inword = 0;
			} else
				cfg_buf_add(&w, &c, 1);
		}
		if (quote != 0) {
			if (asprintf(errmsg, "the command has a %s quote that "
			    "is never closed", quote == '"' ? "double" :
			    "single") == -1)
				*errmsg = NULL;
			goto fail;
		}
		if (w.failed || strlist_push(out, w.s) == -1) {
			*errmsg = strdup("out of memory");
			goto fail;
		}
	}
	free(w.s);
	return 0;
fail:
	free(w.s);
	if (*errmsg == NULL)
		*errmsg = strdup("cannot split the command");
	return -1;
}

char *
config_export(const char *preamble, struct vg_job_def *const *jobs,
    size_t njobs)
{
	struct cfg_buf b;
	const char *t;
	size_t i, l;

	memset(&b, 0, sizeof b);
	cfg_buf_add(&b, "", 0);
	if (preamble != NULL && *preamble != '\0') {
		l = strlen(preamble);
		cfg_buf_add(&b, preamble, l);
		if (njobs > 0 && preamble[l - 1] != '\n')
			cfg_buf_add(&b, "\n", 1);
	}
	for (i = 0; i < njobs; i++) {
		t = jobs[i]->text;
		if (t == NULL || *t == '\0')
			continue;
		l = strlen(t);
		cfg_buf_add(&b, t, l);
		/* A section that ended a file may lack its last newline. */
		if (i + 1 < njobs && t[l - 1] != '\n')
			cfg_buf_add(&b, "\n", 1);
	}
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* --- text helpers -------------------------------------------------------- */

static int
cfg_isblank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static void
cfg_trim(const char **p, size_t *len)
{
	while (*len > 0 && cfg_isblank(**p)) {
		(*p)++;
		(*len)--;
	}
	while (*len > 0 && cfg_isblank((*p)[*len - 1]))
		(*len)--;
}

static int
cfg_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	uint32_t cp;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = s[i] & 0x07;
		} else
			return 0;
		if (i + n >= len)
			return 0;
		for (k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

static enum cfg_kind
cfg_classify(const char *p, size_t len)
{
	if (memchr(p, '\0', len) != NULL)
		return L_NUL;
	cfg_trim(&p, &len);
	if (len == 0)
		return L_BLANK;
	if (*p == '#' || *p == ';')
		return L_COMMENT;
	if (*p == '[')
		return L_HEADER;
	if (memchr(p, '=', len) != NULL)
		return L_KEY;
	return L_OTHER;
}

/* Split text into lines.  Returns the array (caller frees) or NULL. */
static struct cfg_line *
cfg_split_lines(const char *text, size_t len, size_t *nlines)
{
	struct cfg_line *v = NULL, *nv;
	size_t n = 0, cap = 0, off = 0, skip;
	const char *nl;

	while (off < len) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(v, cap * sizeof *v)) == NULL) {
				free(v);
				return NULL;
			}
			v = nv;
		}
		nl = memchr(text + off, '\n', len - off);
		v[n].off = off;
		v[n].next = nl ? (size_t)(nl - text) + 1 : len;
		v[n].len = (nl ? (size_t)(nl - text) : len) - off;
		if (v[n].len > 0 && text[off + v[n].len - 1] == '\r')
			v[n].len--;
		/* A UTF-8 byte order mark at the very start is not content. */
		skip = 0;
		if (off == 0 && v[n].len >= 3 &&
		    memcmp(text, "\xef\xbb\xbf", 3) == 0)
			skip = 3;
		v[n].kind = cfg_classify(text + off + skip, v[n].len - skip);
		if (skip) {
			v[n].off += skip;
			v[n].len -= skip;
		}
		off = v[n].next;
		n++;
	}
	*nlines = n;
	return v ? v : calloc(1, sizeof *v);
}

/* --- diagnostics while parsing ------------------------------------------ */

static void cfg_err(struct cfg_parser *, unsigned, const char *, const char *,
    const char *, ...) __attribute__((format(printf, 5, 6)));

#define HINT_INLINE	"a ';' or '#' inside a value is part of the value; " \
			"put comments on a line of their own"

static void
cfg_err(struct cfg_parser *ps, unsigned line, const char *key,
    const char *hint, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	/* A value that holds " ;" most likely meant an inline comment. */
	if (ps->val_comment && key != NULL)
		hint = HINT_INLINE;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	(void)diags_add(ps->diags, VG_DIAG_ERROR, ps->file, line,
	    ps->job ? ps->jobdisp : NULL, key, hint, "%s",
	    msg ? msg : "out of memory");
	free(msg);
}

static void
cfg_oom(struct cfg_parser *ps, unsigned line)
{
	cfg_err(ps, line, NULL, NULL, "out of memory");
}

/* Edit distance, for "did you mean". */
static size_t
cfg_distance(const char *a, size_t la, const char *b)
{
	size_t lb = strlen(b), i, j, prev, cur, tmp;
	size_t row[64];

	if (la >= 63 || lb >= 63)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			cur = prev + (tolower((unsigned char)a[i - 1]) !=
			    b[j - 1]);
			if (row[j] + 1 < cur)
				cur = row[j] + 1;
			if (row[j - 1] + 1 < cur)
				cur = row[j - 1] + 1;
			tmp = row[j];
			row[j] = cur;
			prev = tmp;
		}
	}
	return row[lb];
}

static int
cfg_key_lookup(const char *k, size_t len)
{
	int i;

	for (i = 0; i < K_COUNT; i++)
		if (strlen(cfg_keys[i]) == len && memcmp(cfg_keys[i], k,
		    len) == 0)
			return i;
	return -1;
}

/* The closest real key, or NULL. */
static const char *
cfg_key_suggest(const char *k, size_t len)
{
	size_t d, best = SIZE_MAX;
	const char *b = NULL;
	int i;

	for (i = 0; i < K_COUNT; i++) {
		d = cfg_distance(k, len, cfg_keys[i]);
		/* "dest" for "destination": a prefix of 3+ characters. */
		if (len >= 3 && len < strlen(cfg_keys[i]) &&
		    strncasecmp(cfg_keys[i], k, len) == 0)
			d = 1;
		if (d < best) {
			best = d;
			b = cfg_keys[i];
		}
	}
	if (best <= 2 || (best <= 3 && len >= 8))
		return b;
	return NULL;
}

static int
cfg_enum_parse(struct cfg_parser *ps, unsigned line, const char *key,
    const struct cfg_enum *tab, const char *val, int *out)
{
	struct cfg_buf b;
	int i;

	for (i = 0; tab[i].name != NULL; i++)
		if (strcmp(tab[i].name, val) == 0) {
			*out = tab[i].value;
			return 0;
		}
	memset(&b, 0, sizeof b);
	cfg_buf_add(&b, "use one of: ", 12);
	for (i = 0; tab[i].name != NULL; i++) {
		if (i > 0)
			cfg_buf_add(&b, ", ", 2);
		cfg_buf_add(&b, tab[i].name, strlen(tab[i].name));
	}
	cfg_err(ps, line, key, b.failed ? NULL : b.s, "'%s' is not a value "
	    "of %s", cfg_show(&ps->show, val), key);
	free(b.s);
	return -1;
}

static int
cfg_count(struct cfg_parser *ps, unsigned line, const char *key,
    const char *val, unsigned max, unsigned *out)
{
	unsigned long v = 0;
	const char *p;
	char hint[96];

	for (p = val; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p)) {
			snprintf(hint, sizeof hint, "write a whole number, "
			    "e.g. %s = 3", key);
			cfg_err(ps, line, key, hint, "'%s' is not a whole "
			    "number", cfg_show(&ps->show, val));
			return -1;
		}
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max) {
			snprintf(hint, sizeof hint, "use a number from 0 to %u",
			    max);
			cfg_err(ps, line, key, hint, "%s is too large",
			    cfg_show(&ps->show, val));
			return -1;
		}
	}
	*out = (unsigned)v;
	return 0;
}

static int
cfg_duration(struct cfg_parser *ps, unsigned line, const char *key,
    const char *val, uint64_t *out)
{
	if (config_parse_duration(val, out) == -1) {
		cfg_err(ps, line, key, HINT_DURATION, "cannot read the "
		    "duration '%s'", cfg_show(&ps->show, val));
		return -1;
	}
	return 0;
}

/*
 * An absolute path, returned normalised (no "//", no "/./", no trailing
 * '/'), malloc'd.  Paths may hold any bytes but NUL.
 */
static char *
cfg_path(struct cfg_parser *ps, unsigned line, const char *key,
    const char *val)
{
	char *out = NULL, *o;
	const char *p, *e;
	size_t clen;

	if (val[0] != '/') {
		cfg_err(ps, line, key, val[0] == '"' || val[0] == '\'' ?
		    "values are not quoted: write the path as it is, spaces "
		    "included" : val[0] == '~' ? "'~' is not expanded; write "
		    "the full path, e.g. /home/alice/Documents" :
		    "write the full path, starting with '/'",
		    "'%s' is not an absolute path", cfg_show(&ps->show, val));
		return NULL;
	}
	if ((out = malloc(strlen(val) + 2)) == NULL) {
		cfg_oom(ps, line);
		return NULL;
	}
	o = out;
	for (p = val; *p != '\0'; p = e) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		e = strchr(p, '/');
		if (e == NULL)
			e = p + strlen(p);
		clen = (size_t)(e - p);
		if (clen == 1 && p[0] == '.')
			continue;
		if (clen == 2 && p[0] == '.' && p[1] == '.') {
			cfg_err(ps, line, key, "write the path without '..' "
			    "components", "'%s' goes up with '..'",
			    cfg_show(&ps->show, val));
			free(out);
			return NULL;
		}
		*o++ = '/';
		memcpy(o, p, clen);
		o += clen;
	}
	if (o == out)
		*o++ = '/';
	*o = '\0';
	return out;
}

/*
 * Split a comma list; "\," is a comma inside an item, other backslashes stay
 * (globs use them).  Items are trimmed; an empty item is an error.
 */
static int
cfg_list(struct cfg_parser *ps, unsigned line, const char *key,
    const char *val, struct vg_strlist *out)
{
	struct cfg_buf b;
	const char *p = val, *t;
	size_t tl;
	int ret = -1;

	memset(&b, 0, sizeof b);
	for (;;) {
		b.len = 0;
		cfg_buf_add(&b, "", 0);
		while (*p != '\0' && *p != ',') {
			if (p[0] == '\\' && p[1] == ',') {
				cfg_buf_add(&b, ",", 1);
				p += 2;
			} else
				cfg_buf_add(&b, p++, 1);
		}
		if (b.failed) {
			cfg_oom(ps, line);
			goto out;
		}
		t = b.s;
		tl = b.len;
		cfg_trim(&t, &tl);
		if (tl == 0) {
			cfg_err(ps, line, key, HINT_LIST, "the list '%s' has "
			    "an empty item", cfg_show(&ps->show, val));
			goto out;
		}
		memmove(b.s, t, tl);
		b.s[tl] = '\0';
		if (strlist_push(out, b.s) == -1) {
			cfg_oom(ps, line);
			goto out;
		}
		if (*p == '\0')
			break;
		p++;
	}
	ret = 0;
out:
	free(b.s);
	return ret;
}

static int
cfg_command(struct cfg_parser *ps, unsigned line, const char *key,
    const char *val, struct vg_strlist *out)
{
	char *msg = NULL;

	if (config_split_argv(val, out, &msg) == -1) {
		cfg_err(ps, line, key, "close the quote, or escape it as \\\"",
		    "%s", msg ? msg : "cannot split the command");
		free(msg);
		return -1;
	}
	if (out->n == 0) {
		cfg_err(ps, line, key, HINT_CMD, "the command is empty");
		return -1;
	}
	if (out->v[0][0] != '/') {
		cfg_err(ps, line, key, HINT_CMD, "the program '%s' is not an "
		    "absolute path", cfg_show(&ps->show, out->v[0]));
		return -1;
	}
	return 0;
}

static int
cfg_window(struct cfg_parser *ps, unsigned line, const char *val,
    struct vg_job_def *job)
{
	unsigned h1, m1, h2, m2;
	int n = -1;

	/* at most 2 digits each cannot overflow; ranges checked below:
	 * NOLINTNEXTLINE(cert-err34-c) */
	if (sscanf(val, "%2u:%2u-%2u:%2u%n", &h1, &m1, &h2, &m2, &n) != 4 ||
	    n < 0 || val[n] != '\0' || !isdigit((unsigned char)val[0]) ||
	    h1 > 23 || h2 > 23 || m1 > 59 || m2 > 59 ||
	    strchr(val, ' ') != NULL || strchr(val, '+') != NULL) {
		cfg_err(ps, line, "window", "write HH:MM-HH:MM on a 24-hour "
		    "clock, e.g. 22:00-06:00 (a window may span midnight)",
		    "cannot read the window '%s'", cfg_show(&ps->show, val));
		return -1;
	}
	if (h1 * 60 + m1 == h2 * 60 + m2) {
		cfg_err(ps, line, "window", "a window's end must differ from "
		    "its start; remove window to allow any time",
		    "the window '%s' is empty", cfg_show(&ps->show, val));
		return -1;
	}
	job->has_window = true;
	job->window_start = h1 * 60 + m1;
	job->window_end = h2 * 60 + m2;
	return 0;
}

static int
cfg_notify(struct cfg_parser *ps, unsigned line, const char *val,
    struct vg_job_def *job)
{
	struct vg_strlist argv;
	const char *a;
	size_t i;
	int ret = 0;

	if (cfg_list(ps, line, "notify", val, &job->notify) == -1)
		return -1;
	for (i = 0; i < job->notify.n; i++) {
		a = job->notify.v[i];
		if (strncmp(a, "mailto:", 7) == 0) {
			a += 7;
			if (*a == '\0' || strchr(a, '@') == NULL ||
			    a[strcspn(a, " \t\"<>()")] != '\0' ||
			    a[0] == '-') {
				cfg_err(ps, line, "notify", "e.g. "
				    "mailto:admin@example.org",
				    "'%s' is not a mail address",
				    cfg_show(&ps->show, job->notify.v[i]));
				ret = -1;
			}
		} else if (strncmp(a, "exec:", 5) == 0) {
			memset(&argv, 0, sizeof argv);
			if (cfg_command(ps, line, "notify", a + 5, &argv) == -1)
				ret = -1;
			strlist_free(&argv);
		} else {
			cfg_err(ps, line, "notify", "e.g. notify = "
			    "mailto:admin@example.org, exec:/usr/local/bin/alert",
			    "'%s' must start with mailto: or exec:",
			    cfg_show(&ps->show, job->notify.v[i]));
			ret = -1;
		}
	}
	return ret;
}

static int
cfg_user_name(const char *s)
{
	size_t i;

	if (s[0] == '\0' || s[0] == '-' || strlen(s) > 32)
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-' && s[i] != '.' && !(s[i] == '$' && !s[i + 1]))
			return 0;
	return 1;
}

/* One "key = value" inside a section. */
static void
cfg_value(struct cfg_parser *ps, unsigned line, int k, const char *val)
{
	struct vg_job_def *j = ps->job;
	const char *key = cfg_keys[k];
	struct vg_strlist tmp;
	char *msg = NULL, *path;
	const char *hint;
	struct vg_schedule *sch;
	unsigned *sl;
	int e;
	size_t i;

	memset(&tmp, 0, sizeof tmp);
	switch (k) {
	case K_SOURCE:
		if ((path = cfg_path(ps, line, key, val)) == NULL)
			break;
		for (i = 0; i < j->sources.n; i++)
			if (strcmp(j->sources.v[i], path) == 0)
				break;
		if (i < j->sources.n) {
			cfg_err(ps, line, key, "remove one of them",
			    "source '%s' is given twice (first at line %u)",
			    cfg_show(&ps->show, path), j->source_lines[i]);
			free(path);
			break;
		}
		sl = realloc(j->source_lines, (j->sources.n + 1) * sizeof *sl);
		if (sl == NULL || strlist_push(&j->sources, path) == -1) {
			if (sl != NULL)
				j->source_lines = sl;
			cfg_oom(ps, line);
			free(path);
			break;
		}
		j->source_lines = sl;
		j->source_lines[j->sources.n - 1] = line;
		free(path);
		break;
	case K_DESTINATION:
		j->destination = cfg_path(ps, line, key, val);
		j->destination_line = line;
		break;
	case K_REQUIRE_MOUNT:
		j->require_mount = cfg_path(ps, line, key, val);
		j->require_mount_line = line;
		break;
	case K_MODE:
		if (strcmp(val, "sync") == 0) {
			cfg_err(ps, line, key, "use mode = mirror for a one-way "
			    "copy that also deletes, or mode = backup, which "
			    "never deletes", "two-way sync is not available "
			    "yet");
			ps->mode_failed = 1;
			break;
		}
		if (cfg_enum_parse(ps, line, key, cfg_modes, val, &e) == 0)
			j->mode = (enum vg_mode)e;
		else
			ps->mode_failed = 1;
		break;
	case K_SCHEDULE:
		if ((sch = schedule_parse(val, &msg, &hint)) == NULL) {
			cfg_err(ps, line, key, hint, "bad schedule '%s': %s",
			    cfg_show(&ps->show, val), msg ? msg : "?");
			free(msg);
			break;
		}
		schedule_free(sch);
		free(j->schedule);
		if ((j->schedule = strdup(val)) == NULL)
			cfg_oom(ps, line);
		break;
	case K_INCLUDE:
	case K_EXCLUDE:
		if (cfg_list(ps, line, key, val, &tmp) == -1)
			break;
		for (i = 0; i < tmp.n; i++) {
			if (filter_check_pattern(tmp.v[i], &msg) == -1) {
				cfg_err(ps, line, key, "patterns use *, ?, "
				    "[...] and **; a trailing / matches "
				    "folders only (docs/config.md)", "%s",
				    msg ? cfg_show(&ps->show, msg) :
				    "bad pattern");
				free(msg);
				msg = NULL;
			}
		}
		strlist_free(k == K_INCLUDE ? &j->include : &j->exclude);
		*(k == K_INCLUDE ? &j->include : &j->exclude) = tmp;
		memset(&tmp, 0, sizeof tmp);
		break;
	case K_KEEP_VERSIONS:
		(void)cfg_count(ps, line, key, val, 100000, &j->keep_versions);
		break;
	case K_KEEP_DAYS:
		(void)cfg_count(ps, line, key, val, 100000, &j->keep_days);
		break;
	case K_MAX_DELETE:
		{
			char buf[8];
			size_t l = strlen(val);

			if (l > 0 && l < sizeof buf && val[l - 1] == '%') {
				memcpy(buf, val, l - 1);
				buf[l - 1] = '\0';
				val = buf;
			}
			if (val[0] == '\0' || strspn(val, "0123456789") !=
			    strlen(val)) {
				cfg_err(ps, line, key, "a percent from 0 to "
				    "100, e.g. max-delete = 50", "'%s' is not "
				    "a percent", cfg_show(&ps->show, val));
				break;
			}
			(void)cfg_count(ps, line, key, val, 100, &j->max_delete);
		}
		break;
	case K_VERIFY:
	case K_FORCE_CLOSE:
	case K_WAKE:
	case K_ONE_FILE_SYSTEM:
		if (cfg_enum_parse(ps, line, key, cfg_bools, val, &e) == 0)
			*(k == K_VERIFY ? &j->verify : k == K_FORCE_CLOSE ?
			    &j->force_close : k == K_WAKE ? &j->wake :
			    &j->one_file_system) = e;
		break;
	case K_FORMAT:
		if (cfg_enum_parse(ps, line, key, cfg_formats, val, &e) == 0)
			j->format = (enum vg_format)e;
		break;
	case K_COMPRESSION:
		if (strlen(val) != 1 || !isdigit((unsigned char)val[0])) {
			cfg_err(ps, line, key, "use 0 (store only) to 9 "
			    "(smallest, slowest); the default is 6",
			    "compression '%s' is not a level from 0 to 9",
			    cfg_show(&ps->show, val));
			break;
		}
		j->compression = val[0] - '0';
		break;
	case K_ARCHIVE:
		if (cfg_enum_parse(ps, line, key, cfg_archive_kinds, val,
		    &e) == 0)
			j->archive = (enum vg_archive_kind)e;
		break;
	case K_CLOSE_APPS:
		if (strcmp(val, "auto") == 0) {
			j->close_apps = VG_CLOSE_AUTO;
			break;
		}
		if (strcmp(val, "none") == 0) {
			j->close_apps = VG_CLOSE_NONE;
			break;
		}
		if (cfg_list(ps, line, key, val, &tmp) == -1)
			break;
		for (i = 0; i < tmp.n; i++) {
			if (strcmp(tmp.v[i], "auto") == 0 ||
			    strcmp(tmp.v[i], "none") == 0) {
				cfg_err(ps, line, key, "write close-apps = "
				    "auto, close-apps = none, or a list of "
				    "program names", "'%s' cannot be mixed "
				    "with program names", tmp.v[i]);
				break;
			}
			if (tmp.v[i][strcspn(tmp.v[i], " \t;#")] != '\0') {
				cfg_err(ps, line, key, "give program names as "
				    "ps shows them, e.g. thunderbird",
				    "'%s' is not a program name",
				    cfg_show(&ps->show, tmp.v[i]));
				break;
			}
			if (strchr(tmp.v[i], '/') != NULL) {
				cfg_err(ps, line, key, "give the program's "
				    "name as ps shows it, e.g. thunderbird",
				    "'%s' is a path, not a program name",
				    cfg_show(&ps->show, tmp.v[i]));
				break;
			}
		}
		strlist_free(&j->close_app_names);
		j->close_app_names = tmp;
		memset(&tmp, 0, sizeof tmp);
		j->close_apps = VG_CLOSE_LIST;
		break;
	case K_CLOSE_METHOD:
		if (cfg_enum_parse(ps, line, key, cfg_close_methods, val,
		    &e) == 0)
			j->close_method = (enum vg_close_method)e;
		break;
	case K_WARN:
		(void)cfg_duration(ps, line, key, val, &j->warn_s);
		break;
	case K_CLOSE_TIMEOUT:
		(void)cfg_duration(ps, line, key, val, &j->close_timeout_s);
		break;
	case K_POSTPONE:
		(void)cfg_duration(ps, line, key, val, &j->postpone_s);
		break;
	case K_GRACE:
		(void)cfg_duration(ps, line, key, val, &j->grace_s);
		break;
	case K_MAX_RUNTIME:
		(void)cfg_duration(ps, line, key, val, &j->max_runtime_s);
		break;
	case K_WARN_AFTER:
		(void)cfg_duration(ps, line, key, val, &j->warn_after_s);
		break;
	case K_MAX_POSTPONE:
		(void)cfg_count(ps, line, key, val, 100, &j->max_postpone);
		break;
	case K_RETRIES:
		(void)cfg_count(ps, line, key, val, 100, &j->retries);
		break;
	case K_LOGGED_OFF:
		if (cfg_enum_parse(ps, line, key, cfg_logged_offs, val, &e) == 0)
			j->logged_off = (enum vg_logged_off)e;
		break;
	case K_SNAPSHOT:
		if (cfg_enum_parse(ps, line, key, cfg_snapshots, val, &e) == 0)
			j->snapshot = (enum vg_snapshot)e;
		break;
	case K_MISSED:
		if (cfg_enum_parse(ps, line, key, cfg_misseds, val, &e) == 0)
			j->missed = (enum vg_missed)e;
		break;
	case K_PRIORITY:
		if (cfg_enum_parse(ps, line, key, cfg_priorities, val, &e) == 0)
			j->priority = (enum vg_priority)e;
		break;
	case K_WINDOW:
		(void)cfg_window(ps, line, val, j);
		break;
	case K_PRE:
	case K_POST:
		(void)cfg_command(ps, line, key, val, k == K_PRE ? &j->pre :
		    &j->post);
		break;
	case K_OWNER:
		if (!cfg_user_name(val)) {
			cfg_err(ps, line, key, "give a user name as in "
			    "/etc/passwd, e.g. owner = alice",
			    "'%s' is not a user name", cfg_show(&ps->show, val));
			break;
		}
		if ((j->owner = strdup(val)) == NULL)
			cfg_oom(ps, line);
		j->owner_line = line;
		break;
	case K_NOTIFY:
		(void)cfg_notify(ps, line, val, j);
		break;
	}
	strlist_free(&tmp);
}

/* Where a value holds a blank followed by ';' or '#', or NULL. */
static const char *
cfg_inline_comment(const char *v)
{
	for (; *v != '\0'; v++)
		if ((v[0] == ' ' || v[0] == '\t') && (v[1] == ';' ||
		    v[1] == '#'))
			return v + 1;
	return NULL;
}

static void
cfg_key_line(struct cfg_parser *ps, unsigned line, const char *p, size_t len)
{
	const char *eq, *k, *v, *sugg;
	size_t kl, vl;
	char *val = NULL, hint[128];
	size_t nerr;
	int key;

	eq = memchr(p, '=', len);
	k = p;
	kl = (size_t)(eq - p);
	v = eq + 1;
	vl = len - kl - 1;
	cfg_trim(&k, &kl);
	cfg_trim(&v, &vl);
	if (kl == 0) {
		cfg_err(ps, line, NULL, "write KEY = VALUE", "the line has "
		    "no key before '='");
		return;
	}
	if (!cfg_utf8_valid((const unsigned char *)k, kl)) {
		cfg_err(ps, line, NULL, HINT_KEYS, "the key '%s' is not valid "
		    "UTF-8", cfg_show_len(&ps->show, k, kl));
		return;
	}
	if ((key = cfg_key_lookup(k, kl)) == -1) {
		if ((sugg = cfg_key_suggest(k, kl)) != NULL) {
			snprintf(hint, sizeof hint, "did you mean '%s'?", sugg);
			cfg_err(ps, line, NULL, hint, "unknown key '%s'",
			    cfg_show_len(&ps->show, k, kl));
		} else
			cfg_err(ps, line, NULL, HINT_KEYS, "unknown key '%s'",
			    cfg_show_len(&ps->show, k, kl));
		return;
	}
	if (ps->job == NULL) {
		cfg_err(ps, line, cfg_keys[key], "put keys under a section "
		    "header such as [job documents]", "key outside a "
		    "[job NAME] section");
		return;
	}
	if (ps->seen[key] != 0 && key != K_SOURCE) {
		cfg_err(ps, line, cfg_keys[key], "keep only one; of all keys "
		    "only source may repeat", "%s is given twice (first at "
		    "line %u)", cfg_keys[key], ps->seen[key]);
		return;
	}
	if (ps->seen[key] == 0)
		ps->seen[key] = line;
	if (vl == 0) {
		cfg_err(ps, line, cfg_keys[key], "give a value, or remove the "
		    "line to use the default", "%s has no value",
		    cfg_keys[key]);
		return;
	}
	if ((val = strndup(v, vl)) == NULL) {
		cfg_oom(ps, line);
		return;
	}
	ps->val_comment = cfg_inline_comment(val) != NULL;
	nerr = ps->diags->nerrors;
	cfg_value(ps, line, key, val);
	if (ps->val_comment && ps->diags->nerrors == nerr)
		(void)diags_add(ps->diags, VG_DIAG_NOTE, ps->file, line,
		    ps->jobdisp, cfg_keys[key], HINT_INLINE, "the value of %s "
		    "holds '%s', which is taken as part of the value",
		    cfg_keys[key], cfg_show(&ps->show, cfg_inline_comment(val)));
	ps->val_comment = 0;
	free(val);
}

static void
cfg_job_defaults(struct vg_job_def *j)
{
	j->mode = VG_MODE_BACKUP;
	j->max_delete = 50;
	j->format = VG_FMT_TAR_ZST;
	j->compression = 6;
	j->archive = VG_ARCHIVE_FULL;
	j->close_apps = VG_CLOSE_NONE;
	j->close_method = VG_CLOSE_WINDOW;
	j->warn_s = 60;
	j->close_timeout_s = 60;
	j->postpone_s = 3600;
	j->max_postpone = 2;
	j->logged_off = VG_LOGGEDOFF_SNAPSHOT;
	j->snapshot = VG_SNAP_AUTO;
	j->retries = 3;
	j->missed = VG_MISSED_RUN_ONCE;
	j->grace_s = 12 * 3600;
	j->priority = VG_PRIO_NORMAL;
}

/* Keys that other keys make meaningless; checked when a section ends. */
static void
cfg_contradictions(struct cfg_parser *ps)
{
	static const int archive_only[] = { K_FORMAT, K_COMPRESSION,
	    K_ARCHIVE };
	static const int versions[] = { K_KEEP_VERSIONS, K_KEEP_DAYS };
	static const int closing[] = { K_FORCE_CLOSE, K_CLOSE_METHOD,
	    K_CLOSE_TIMEOUT };
	struct vg_job_def *j = ps->job;
	const char *mode = config_mode_name(j->mode);
	char hint[160];
	size_t i;
	int k;

	if (ps->mode_failed)
		return;	/* a refused mode (sync): don't pile on */
	for (i = 0; i < sizeof archive_only / sizeof *archive_only; i++) {
		k = archive_only[i];
		if (ps->seen[k] == 0 || j->mode == VG_MODE_ARCHIVE)
			continue;
		snprintf(hint, sizeof hint, "set mode = archive, or remove %s",
		    cfg_keys[k]);
		cfg_err(ps, ps->seen[k], cfg_keys[k], hint, "%s only applies "
		    "to mode = archive, and this job's mode is %s",
		    cfg_keys[k], mode);
	}
	if (ps->seen[K_MAX_DELETE] != 0 && j->mode != VG_MODE_MIRROR)
		cfg_err(ps, ps->seen[K_MAX_DELETE], "max-delete", "remove "
		    "max-delete, or set mode = mirror", "max-delete only "
		    "applies to mode = mirror, and this job's mode is %s",
		    mode);
	for (i = 0; i < sizeof versions / sizeof *versions; i++) {
		k = versions[i];
		if (ps->seen[k] == 0 || j->mode != VG_MODE_ARCHIVE)
			continue;
		cfg_err(ps, ps->seen[k], cfg_keys[k], "versions are kept by "
		    "backup and mirror jobs; an archive job keeps every "
		    "archive it writes", "%s does not apply to mode = archive",
		    cfg_keys[k]);
	}
	if (j->close_apps == VG_CLOSE_NONE) {
		for (i = 0; i < sizeof closing / sizeof *closing; i++) {
			k = closing[i];
			if (ps->seen[k] == 0)
				continue;
			snprintf(hint, sizeof hint, "set close-apps = auto or "
			    "name the programs, or remove %s", cfg_keys[k]);
			cfg_err(ps, ps->seen[k], cfg_keys[k], hint, "%s has "
			    "no effect when the job closes no apps",
			    cfg_keys[k]);
		}
	}
}

/* The section being read ends: keep the job if it is good. */
static void
cfg_end_section(struct cfg_parser *ps)
{
	struct vg_job_def *j = ps->job, **nv;
	struct vg_jobfile *jf = ps->jf;

	if (j == NULL)
		return;
	if (ps->job_ok) {
		if (j->sources.n == 0 && ps->seen[K_SOURCE] == 0)
			cfg_err(ps, j->line, "source", "add a line such as "
			    "source = /home/alice/Documents", "the job has "
			    "no source");
		if (j->destination == NULL && ps->seen[K_DESTINATION] == 0)
			cfg_err(ps, j->line, "destination", "add a line such "
			    "as destination = /srv/backup/documents", "the job "
			    "has no destination");
		cfg_contradictions(ps);
	}
	if (j->schedule == NULL && (j->schedule = strdup("manual")) == NULL)
		cfg_oom(ps, j->line);
	if (ps->job_ok && ps->diags->nerrors == ps->nerr_at_start) {
		nv = realloc(jf->jobs, (jf->njobs + 1) * sizeof *nv);
		if (nv == NULL) {
			cfg_oom(ps, j->line);
			job_def_free(j);
		} else {
			jf->jobs = nv;
			jf->jobs[jf->njobs++] = j;
		}
	} else
		job_def_free(j);
	ps->job = NULL;
	free(ps->jobdisp);
	ps->jobdisp = NULL;
}

/* A "[...]" line: start a new section.  text/tlen: the section's text. */
static void
cfg_header(struct cfg_parser *ps, unsigned line, const char *p, size_t len,
    const char *text, size_t tlen)
{
	const char *in, *name, *close;
	size_t inl, nl, i;
	char *nm = NULL, **nv;
	unsigned *lv;
	int ok = 1;

	cfg_end_section(ps);
	cfg_trim(&p, &len);
	if ((ps->job = calloc(1, sizeof *ps->job)) == NULL) {
		cfg_oom(ps, line);
		return;
	}
	cfg_job_defaults(ps->job);
	ps->job->line = line;
	memset(ps->seen, 0, sizeof ps->seen);
	ps->mode_failed = 0;
	ps->nerr_at_start = ps->diags->nerrors;
	if ((ps->job->text = strndup(text, tlen)) == NULL)
		cfg_oom(ps, line);

	close = memchr(p, ']', len);
	if (close == NULL) {
		cfg_err(ps, line, NULL, "write the header as [job NAME]",
		    "the section header has no closing ']'");
		ok = 0;
		goto out;
	}
	if (close != p + len - 1) {
		cfg_err(ps, line, NULL, "comments go on a line of their own, "
		    "starting with # or ;", "text after the section header's "
		    "']'");
		ok = 0;
		goto out;
	}
	in = p + 1;
	inl = len - 2;
	cfg_trim(&in, &inl);
	if (!cfg_utf8_valid((const unsigned char *)in, inl)) {
		cfg_err(ps, line, NULL, "write the header as [job NAME]",
		    "the section header is not valid UTF-8");
		ok = 0;
		goto out;
	}
	if (inl < 3 || memcmp(in, "job", 3) != 0 ||
	    (inl > 3 && in[3] != ' ' && in[3] != '\t')) {
		cfg_err(ps, line, NULL, "each job is a section written "
		    "[job NAME], e.g. [job documents]", "unknown section "
		    "'[%s]'", cfg_show_len(&ps->show, in, inl));
		ok = 0;
		goto out;
	}
	name = in + 3;
	nl = inl - 3;
	cfg_trim(&name, &nl);
	if (nl == 0) {
		cfg_err(ps, line, NULL, "name the job: [job NAME], e.g. "
		    "[job documents]", "the section [job] has no name");
		ok = 0;
		goto out;
	}
	if ((nm = strndup(name, nl)) == NULL) {
		cfg_oom(ps, line);
		ok = 0;
		goto out;
	}
	free(ps->jobdisp);
	ps->jobdisp = strdup(cfg_show(&ps->show, nm));
	if (!config_valid_job_name(nm)) {
		cfg_err(ps, line, NULL, "use 1 to 64 letters, digits, '.', "
		    "'_' or '-' (no spaces), e.g. [job home-alice]",
		    "'%s' is not a valid job name", cfg_show(&ps->show, nm));
		ok = 0;
		goto out;
	}
	for (i = 0; i < ps->nnames; i++) {
		if (strcmp(ps->names[i], nm) == 0) {
			cfg_err(ps, line, NULL, "rename one of them; job names "
			    "are unique", "job %s is defined twice (first at "
			    "line %u)", nm, ps->name_lines[i]);
			ok = 0;
			goto out;
		}
	}
	nv = realloc(ps->names, (ps->nnames + 1) * sizeof *nv);
	if (nv != NULL)
		ps->names = nv;
	lv = realloc(ps->name_lines, (ps->nnames + 1) * sizeof *lv);
	if (lv != NULL)
		ps->name_lines = lv;
	if (nv == NULL || lv == NULL) {
		cfg_oom(ps, line);
		ok = 0;
		goto out;
	}
	ps->names[ps->nnames] = nm;
	ps->name_lines[ps->nnames++] = line;
	if ((ps->job->name = strdup(nm)) == NULL) {
		cfg_oom(ps, line);
		ok = 0;
	}
	nm = NULL;
out:
	free(nm);
	if (ps->job != NULL && ps->job->name == NULL)
		ps->job->name = strdup("");
	ps->job_ok = ok;
}

int
config_parse(const char *filename, const char *text, size_t len,
    struct vg_jobfile **out, struct vg_diags *diags)
{
	struct cfg_parser ps;
	struct cfg_line *lines = NULL;
	size_t nlines = 0, i, h, nh = 0, *attach = NULL, start, end;
	unsigned lineno;
	size_t nerr0 = diags->nerrors;

	*out = NULL;
	memset(&ps, 0, sizeof ps);
	ps.file = filename;
	ps.diags = diags;
	ps.text = text;
	if ((ps.jf = calloc(1, sizeof *ps.jf)) == NULL ||
	    (lines = cfg_split_lines(text, len, &nlines)) == NULL) {
		diags_add(diags, VG_DIAG_ERROR, filename, 0, NULL, NULL, NULL,
		    "out of memory");
		goto out;
	}
	/* Where each section's text starts: its own comments above it. */
	for (i = 0; i < nlines; i++)
		nh += lines[i].kind == L_HEADER;
	if ((attach = calloc(nh + 1, sizeof *attach)) == NULL) {
		diags_add(diags, VG_DIAG_ERROR, filename, 0, NULL, NULL, NULL,
		    "out of memory");
		goto out;
	}
	for (i = 0, h = 0; i < nlines; i++) {
		if (lines[i].kind != L_HEADER)
			continue;
		start = i;
		while (start > 0 && lines[start - 1].kind == L_COMMENT)
			start--;
		attach[h++] = start;
	}
	attach[nh] = nlines;
	start = nh > 0 ? (attach[0] < nlines ? lines[attach[0]].off : len) : len;
	/* The preamble keeps a byte order mark, if there is one. */
	if (nh > 0 && attach[0] == 0)
		start = 0;
	if ((ps.jf->preamble = strndup(text, start)) == NULL) {
		diags_add(diags, VG_DIAG_ERROR, filename, 0, NULL, NULL, NULL,
		    "out of memory");
		goto out;
	}

	for (i = 0, h = 0; i < nlines; i++) {
		const char *p = text + lines[i].off;
		size_t l = lines[i].len;

		lineno = (unsigned)(i + 1);
		switch (lines[i].kind) {
		case L_BLANK:
		case L_COMMENT:
			break;
		case L_NUL:
			cfg_err(&ps, lineno, NULL, "the jobs file must be text; "
			    "remove the NUL byte", "the line holds a NUL byte");
			break;
		case L_HEADER:
			start = attach[h] == 0 ? 0 : lines[attach[h]].off;
			end = attach[h + 1] < nlines ?
			    lines[attach[h + 1]].off : len;
			h++;
			cfg_header(&ps, lineno, p, l, text + start,
			    end - start);
			break;
		case L_KEY:
			cfg_key_line(&ps, lineno, p, l);
			break;
		case L_OTHER:
			cfg_err(&ps, lineno, NULL, "expected KEY = VALUE, a "
			    "[job NAME] header, or a comment starting with # "
			    "or ;", "cannot read the line '%s'",
			    cfg_show_len(&ps.show, p, l));
			break;
		}
	}
	cfg_end_section(&ps);
	*out = ps.jf;
	ps.jf = NULL;
out:
	for (i = 0; i < ps.nnames; i++)
		free(ps.names[i]);
	free(ps.names);
	free(ps.name_lines);
	free(ps.jobdisp);
	cfg_show_free(&ps.show);
	jobfile_free(ps.jf);
	free(attach);
	free(lines);
	return diags->nerrors > nerr0 ? -1 : 0;
}

struct vg_job_def *
config_parse_job(const char *text, struct vg_diags *diags)
{
	struct vg_jobfile *jf = NULL;
	struct vg_job_def *job = NULL;
	size_t nerr0 = diags->nerrors;

	if (text == NULL) {
		diags_add(diags, VG_DIAG_ERROR, NULL, 0, NULL, NULL, NULL,
		    "no job text");
		return NULL;
	}
	if (config_parse(NULL, text, strlen(text), &jf, diags) == -1 ||
	    jf == NULL)
		goto out;
	if (jf->njobs != 1) {
		diags_add(diags, VG_DIAG_ERROR, NULL, 0, NULL, NULL,
		    "a stored job is one [job NAME] section", "the job text "
		    "holds %zu sections", jf->njobs);
		goto out;
	}
	job = jf->jobs[0];
	jf->njobs = 0;
	free(job->text);
	if ((job->text = strdup(text)) == NULL) {
		job_def_free(job);
		job = NULL;
		diags_add(diags, VG_DIAG_ERROR, NULL, 0, NULL, NULL, NULL,
		    "out of memory");
	}
out:
	jobfile_free(jf);
	if (job == NULL && diags->nerrors == nerr0)
		diags_add(diags, VG_DIAG_ERROR, NULL, 0, NULL, NULL, NULL,
		    "the job text does not parse");
	return job;
}

/* --- checks outside the text -------------------------------------------- */

/*
 * The canonical form of path for comparisons: realpath() of its longest
 * existing ancestor plus the rest, when look is set; else path itself.
 */
static char *
cfg_canon(const char *path, bool look)
{
	char *copy = NULL, *res = NULL, *cut, *rp, *rest;

	if (!look)
		return strdup(path);
	if ((rp = realpath(path, NULL)) != NULL)
		return rp;
	if ((copy = strdup(path)) == NULL)
		return NULL;
	while ((cut = strrchr(copy, '/')) != NULL && cut != copy) {
		*cut = '\0';
		if ((rp = realpath(copy, NULL)) != NULL) {
			rest = (char *)path + (cut - copy);
			if (asprintf(&res, "%s%s", strcmp(rp, "/") == 0 ? "" :
			    rp, rest) == -1)
				res = NULL;
			free(rp);
			break;
		}
	}
	free(copy);
	return res ? res : strdup(path);
}

/* Is a the same as, or inside, b? */
static int
cfg_inside(const char *a, const char *b)
{
	size_t bl = strlen(b);

	if (strcmp(b, "/") == 0)
		return 1;
	return strncmp(a, b, bl) == 0 && (a[bl] == '\0' || a[bl] == '/');
}

static const char *
cfg_basename(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

int
config_check(const struct vg_jobfile *jf, const char *filename,
    const struct vg_check_ctx *ctx, struct vg_diags *diags)
{
	const struct vg_job_def *j;
	struct cfg_show sh;
	struct stat st;
	struct passwd *pw;
	char **canon = NULL, *dcanon = NULL;
	size_t nerr0 = diags->nerrors, ji, i, k, n;
	unsigned sl, dl;
	bool look = ctx->check_paths;

	memset(&sh, 0, sizeof sh);
	for (ji = 0; ji < jf->njobs; ji++) {
		j = jf->jobs[ji];
		n = j->sources.n;
		dl = j->destination_line ? j->destination_line : j->line;
		if ((canon = calloc(n + 1, sizeof *canon)) == NULL)
			goto oom;
		for (i = 0; i < n; i++)
			if ((canon[i] = cfg_canon(j->sources.v[i], look)) ==
			    NULL)
				goto oom;
		if (j->destination != NULL &&
		    (dcanon = cfg_canon(j->destination, look)) == NULL)
			goto oom;

		for (i = 0; i < n; i++) {
			const char *src = j->sources.v[i];

			sl = j->source_lines && j->source_lines[i] ?
			    j->source_lines[i] : j->line;
			if (look && stat(src, &st) == -1) {
				if (errno == ENOENT)
					diags_add(diags, VG_DIAG_ERROR, filename,
					    sl, j->name, "source", "create the "
					    "folder, or correct the path",
					    "source %s does not exist",
					    cfg_show(&sh, src));
				else
					diags_add(diags, VG_DIAG_ERROR, filename,
					    sl, j->name, "source", "check the "
					    "permissions of its parent folders",
					    "cannot look at source %s: %s",
					    cfg_show(&sh, src), strerror(errno));
			} else if (look && !S_ISDIR(st.st_mode))
				diags_add(diags, VG_DIAG_ERROR, filename, sl,
				    j->name, "source", "a source is a folder; "
				    "to back up one file, give its folder and "
				    "include = NAME", "source %s is not a "
				    "folder", cfg_show(&sh, src));
			if (n > 1 && strcmp(src, "/") == 0)
				diags_add(diags, VG_DIAG_ERROR, filename, sl,
				    j->name, "source", "back up / in a job of "
				    "its own", "'/' cannot be one of several "
				    "sources: with several sources each goes "
				    "into a folder named after its last "
				    "component");
			for (k = 0; k < i; k++) {
				if (cfg_inside(canon[i], canon[k]) ||
				    cfg_inside(canon[k], canon[i])) {
					diags_add(diags, VG_DIAG_ERROR,
					    filename, sl, j->name, "source",
					    "give only the outer folder",
					    "sources %s and %s overlap",
					    cfg_show(&sh, j->sources.v[k]),
					    cfg_show(&sh, src));
				} else if (strcmp(cfg_basename(src),
				    cfg_basename(j->sources.v[k])) == 0)
					diags_add(diags, VG_DIAG_ERROR,
					    filename, sl, j->name, "source",
					    "split them into two jobs, or back "
					    "up a common parent folder",
					    "sources %s and %s both end in '%s', "
					    "but each source goes into a folder "
					    "named after its last component",
					    cfg_show(&sh, j->sources.v[k]),
					    cfg_show(&sh, src),
					    cfg_show(&sh, cfg_basename(src)));
			}
			if (dcanon == NULL)
				continue;
			if (strcmp(dcanon, canon[i]) == 0)
				diags_add(diags, VG_DIAG_ERROR, filename, dl,
				    j->name, "destination", "back up to "
				    "another folder", "the destination is the "
				    "source %s itself", cfg_show(&sh, src));
			else if (cfg_inside(dcanon, canon[i]))
				diags_add(diags, VG_DIAG_NOTE, filename, dl,
				    j->name, "destination", NULL, "the "
				    "destination is inside source %s; it is "
				    "excluded from the walk automatically",
				    cfg_show(&sh, src));
			else if (cfg_inside(canon[i], dcanon))
				diags_add(diags, VG_DIAG_ERROR, filename, sl,
				    j->name, "source", "choose a destination "
				    "outside every source (a destination "
				    "inside a source is fine)", "source %s is "
				    "inside the destination %s",
				    cfg_show(&sh, src),
				    cfg_show(&sh, j->destination));
		}
		if (look && j->destination != NULL) {
			if (stat(j->destination, &st) == 0 &&
			    !S_ISDIR(st.st_mode))
				diags_add(diags, VG_DIAG_ERROR, filename, dl,
				    j->name, "destination", "give a folder; "
				    "it is created if it does not exist",
				    "destination %s is not a folder",
				    cfg_show(&sh, j->destination));
		}
		if (look && j->require_mount != NULL) {
			k = j->require_mount_line ? j->require_mount_line :
			    j->line;
			if (stat(j->require_mount, &st) == -1)
				diags_add(diags, VG_DIAG_ERROR, filename,
				    (unsigned)k, j->name, "require-mount",
				    "create the mount point, or correct the "
				    "path", "require-mount %s: %s",
				    cfg_show(&sh, j->require_mount),
				    strerror(errno));
			else if (!S_ISDIR(st.st_mode))
				diags_add(diags, VG_DIAG_ERROR, filename,
				    (unsigned)k, j->name, "require-mount",
				    "give the folder the disk is mounted on",
				    "require-mount %s is not a folder",
				    cfg_show(&sh, j->require_mount));
		}
		if (j->owner != NULL) {
			k = j->owner_line ? j->owner_line : j->line;
			errno = 0;
			if ((pw = getpwnam(j->owner)) == NULL)
				diags_add(diags, VG_DIAG_ERROR, filename,
				    (unsigned)k, j->name, "owner", "check the "
				    "name with: getent passwd NAME",
				    "owner '%s' is not a user on this system",
				    cfg_show(&sh, j->owner));
			else if (ctx->caller_uid != 0 &&
			    pw->pw_uid != ctx->caller_uid)
				diags_add(diags, VG_DIAG_ERROR, filename,
				    (unsigned)k, j->name, "owner", "remove "
				    "owner: the jobs you import are yours",
				    "only root may make a job for another "
				    "user (owner = %s)", cfg_show(&sh,
				    j->owner));
		}
		for (i = 0; i < n; i++)
			free(canon[i]);
		free(canon);
		canon = NULL;
		free(dcanon);
		dcanon = NULL;
	}
	cfg_show_free(&sh);
	return diags->nerrors > nerr0 ? -1 : 0;
oom:
	if (canon != NULL)
		for (i = 0; i < n; i++)
			free(canon[i]);
	free(canon);
	free(dcanon);
	cfg_show_free(&sh);
	diags_add(diags, VG_DIAG_ERROR, filename, 0, NULL, NULL, NULL,
	    "out of memory");
	return -1;
}
