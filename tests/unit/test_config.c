/* test_config.c: the jobs file parser, its checks and its round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"

#define FILE_NAME	"jobs.ini"
#define GOOD_KEYS	"source = /home/a\ndestination = /srv/b\n"

static int
parse_len(const char *text, size_t len, struct vg_jobfile **jf,
    struct vg_diags *d)
{
	memset(d, 0, sizeof *d);
	return config_parse(FILE_NAME, text, len, jf, d);
}

static int
parse(const char *text, struct vg_jobfile **jf, struct vg_diags *d)
{
	return parse_len(text, strlen(text), jf, d);
}

static void
dump(const struct vg_diags *d)
{
	diags_print(d, stderr);
}

/* The diagnostic on `line` (0: any) for `key` (NULL: any) whose message
 * holds `msg`, or NULL. */
static const struct vg_diag *
find(const struct vg_diags *d, enum vg_diag_level level, unsigned line,
    const char *key, const char *msg)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const struct vg_diag *g = &d->v[i];

		if (g->level != level)
			continue;
		if (line != 0 && g->line != line)
			continue;
		if (key != NULL && (g->key == NULL || strcmp(g->key, key) != 0))
			continue;
		if (strstr(g->msg, msg) == NULL)
			continue;
		return g;
	}
	return NULL;
}

/* Parse text, expect it to fail with this error (and hint). */
static void
expect_error(const char *text, unsigned line, const char *key,
    const char *msg, const char *hint)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	const struct vg_diag *g;

	assert_int_equal(parse(text, &jf, &d), -1);
	assert_true(d.nerrors >= 1);
	g = find(&d, VG_DIAG_ERROR, line, key, msg);
	if (g == NULL) {
		dump(&d);
		fail_msg("no error '%s' on line %u", msg, line);
	}
	assert_string_equal(g->file, FILE_NAME);
	if (hint != NULL) {
		assert_non_null(g->hint);
		if (strstr(g->hint, hint) == NULL)
			fail_msg("hint '%s' lacks '%s'", g->hint, hint);
	}
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_unknown_key_suggests_closest(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "exlude = *.tmp\n", 4, NULL,
	    "unknown key 'exlude'", "did you mean 'exclude'?");
	expect_error("[job docs]\n" GOOD_KEYS "keep-version = 3\n", 4, NULL,
	    "unknown key", "did you mean 'keep-versions'?");
	expect_error("[job docs]\nsource = /a\ndest = /b\n", 3, NULL,
	    "unknown key 'dest'", "did you mean 'destination'?");
	expect_error("[job docs]\n" GOOD_KEYS "frobnicate = 1\n", 4, NULL,
	    "unknown key 'frobnicate'", "docs/config.md");
}

static void
test_duplicate_key(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "mode = mirror\nmode = backup\n",
	    5, "mode", "given twice (first at line 4)", "only source may repeat");
}

static void
test_source_repeats_but_not_twice_the_same(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;

	assert_int_equal(parse("[job j]\nsource = /a/x\nsource = /b/y\n"
	    "destination = /c\n", &jf, &d), 0);
	assert_int_equal(jf->njobs, 1);
	assert_int_equal(jf->jobs[0]->sources.n, 2);
	assert_string_equal(jf->jobs[0]->sources.v[1], "/b/y");
	assert_int_equal(jf->jobs[0]->source_lines[1], 3);
	jobfile_free(jf);
	diags_free(&d);
	expect_error("[job j]\nsource = /a/x\nsource = /a/x/\ndestination = /c\n",
	    3, "source", "given twice (first at line 2)", NULL);
}

static void
test_duplicate_job(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "\n[job docs]\n" GOOD_KEYS, 5,
	    NULL, "job docs is defined twice (first at line 1)", "rename");
}

static void
test_bad_job_name(void **state)
{
	char text[256];

	expect_error("[job my docs]\n" GOOD_KEYS, 1, NULL,
	    "'my docs' is not a valid job name", "1 to 64 letters");
	expect_error("[job d\xc3\xa9j\xc3\xa0]\n" GOOD_KEYS, 1, NULL,
	    "not a valid job name", NULL);
	expect_error("[job ..]\n" GOOD_KEYS, 1, NULL, "not a valid job name",
	    NULL);
	snprintf(text, sizeof text, "[job %065d]\n" GOOD_KEYS, 7);
	expect_error(text, 1, NULL, "not a valid job name", NULL);
	/* 64 characters is fine. */
	snprintf(text, sizeof text, "[job %064d]\n" GOOD_KEYS, 7);
	{
		struct vg_jobfile *jf = NULL;
		struct vg_diags d;

		assert_int_equal(parse(text, &jf, &d), 0);
		jobfile_free(jf);
		diags_free(&d);
	}
}

static void
test_bad_schedule(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "schedule = daily 25:00\n", 4,
	    "schedule", "bad schedule 'daily 25:00'", "HH:MM");
	expect_error("[job docs]\n" GOOD_KEYS "schedule = hourly\n", 4,
	    "schedule", "unknown schedule", "every N");
}

static void
test_bad_duration(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "warn = 10\n", 4, "warn",
	    "cannot read the duration '10'", "90s, 5m, 2h or 3d");
	expect_error("[job docs]\n" GOOD_KEYS "grace = 2 hours\n", 4, "grace",
	    "cannot read the duration", NULL);
	expect_error("[job docs]\n" GOOD_KEYS "max-runtime = 5x\n", 4,
	    "max-runtime", "cannot read the duration", NULL);
}

static void
test_bad_counts_and_percent(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "keep-versions = -1\n", 4,
	    "keep-versions", "not a whole number", "keep-versions = 3");
	expect_error("[job docs]\n" GOOD_KEYS "mode = mirror\n"
	    "max-delete = 120\n", 5, "max-delete", "too large", "0 to 100");
	expect_error("[job docs]\n" GOOD_KEYS "mode = archive\n"
	    "compression = 10\n", 5, "compression", "not a level from 0 to 9",
	    NULL);
	expect_error("[job docs]\n" GOOD_KEYS "verify = true\n", 4, "verify",
	    "'true' is not a value of verify", "yes, no");
}

static void
test_sync_refused_by_name(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;

	expect_error("[job docs]\n" GOOD_KEYS "mode = sync\n", 4, "mode",
	    "two-way sync is not available yet", "mode = mirror");
	/* And nothing else piles on. */
	assert_int_equal(parse("[job docs]\n" GOOD_KEYS "mode = sync\n"
	    "max-delete = 10\n", &jf, &d), -1);
	assert_int_equal(d.nerrors, 1);
	jobfile_free(jf);
	diags_free(&d);
	expect_error("[job docs]\n" GOOD_KEYS "mode = copy\n", 4, "mode",
	    "not a value of mode", "backup, mirror, archive");
}

static void
test_contradicting_keys(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "format = zip\n", 4, "format",
	    "only applies to mode = archive, and this job's mode is backup",
	    "set mode = archive");
	expect_error("[job docs]\n" GOOD_KEYS "compression = 3\n", 4,
	    "compression", "only applies to mode = archive", NULL);
	expect_error("[job docs]\n" GOOD_KEYS "max-delete = 10\n", 4,
	    "max-delete", "only applies to mode = mirror", NULL);
	expect_error("[job docs]\n" GOOD_KEYS "mode = archive\n"
	    "keep-versions = 3\n", 5, "keep-versions",
	    "does not apply to mode = archive", "keeps every archive");
	expect_error("[job docs]\n" GOOD_KEYS "force-close = yes\n", 4,
	    "force-close", "closes no apps", "close-apps = auto");
}

static void
test_relative_path(void **state)
{
	expect_error("[job docs]\nsource = home/a\ndestination = /b\n", 2,
	    "source", "'home/a' is not an absolute path", "starting with '/'");
	expect_error("[job docs]\nsource = ~/Documents\ndestination = /b\n", 2,
	    "source", "not an absolute path", "'~' is not expanded");
	expect_error("[job docs]\nsource = \"/a b\"\ndestination = /b\n", 2,
	    "source", "not an absolute path", "not quoted");
	expect_error("[job docs]\nsource = /a/../etc\ndestination = /b\n", 2,
	    "source", "'..'", NULL);
	expect_error("[job docs]\n" GOOD_KEYS "require-mount = mnt/usb\n", 4,
	    "require-mount", "not an absolute path", NULL);
}

static void
test_missing_required_keys(void **state)
{
	expect_error("\n[job docs]\ndestination = /b\n", 2, "source",
	    "the job has no source", "source = /home");
	expect_error("[job docs]\nsource = /a\n", 1, "destination",
	    "the job has no destination", "destination = /");
}

static void
test_empty_value(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "exclude =\n", 4, "exclude",
	    "exclude has no value", "remove the line");
}

static void
test_garbage_line(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "just some words\n", 4, NULL,
	    "cannot read the line 'just some words'", "KEY = VALUE");
	expect_error("[job docs]\n" GOOD_KEYS " = value\n", 4, NULL,
	    "no key before '='", NULL);
}

static void
test_key_outside_section(void **state)
{
	expect_error("mode = backup\n[job docs]\n" GOOD_KEYS, 1, "mode",
	    "outside a [job NAME] section", "[job documents]");
}

static void
test_section_syntax(void **state)
{
	expect_error("[job docs\n" GOOD_KEYS, 1, NULL, "no closing ']'",
	    "[job NAME]");
	expect_error("[docs]\n" GOOD_KEYS, 1, NULL, "unknown section '[docs]'",
	    "[job NAME]");
	expect_error("[jobs docs]\n" GOOD_KEYS, 1, NULL, "unknown section",
	    NULL);
	expect_error("[job]\n" GOOD_KEYS, 1, NULL, "has no name", NULL);
	expect_error("[job docs] ; main\n" GOOD_KEYS, 1, NULL,
	    "text after the section header", "line of their own");
}

static void
test_nul_byte(void **state)
{
	static const char text[] = "[job docs]\nsource = /a\0b\n"
	    "destination = /b\n";
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;

	assert_int_equal(parse_len(text, sizeof text - 1, &jf, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 2, NULL, "NUL byte"));
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_invalid_utf8_key_but_not_value(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;

	expect_error("[job docs]\n" GOOD_KEYS "mo\xff" "de = backup\n", 4, NULL,
	    "not valid UTF-8", NULL);
	/* Paths may hold any bytes. */
	assert_int_equal(parse("[job docs]\nsource = /home/a/\xff\xfe\n"
	    "destination = /b\n", &jf, &d), 0);
	assert_string_equal(jf->jobs[0]->sources.v[0], "/home/a/\xff\xfe");
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_unterminated_quote_in_pre(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "pre = /bin/echo \"hello\n", 4,
	    "pre", "double quote that is never closed", "close the quote");
	expect_error("[job docs]\n" GOOD_KEYS "post = echo done\n", 4, "post",
	    "'echo' is not an absolute path", "full path");
}

static void
test_bad_list_and_notify_and_window(void **state)
{
	expect_error("[job docs]\n" GOOD_KEYS "exclude = *.tmp,,*.bak\n", 4,
	    "exclude", "empty item", "\\,");
	expect_error("[job docs]\n" GOOD_KEYS "exclude = [abc\n", 4, "exclude",
	    "'['", NULL);
	expect_error("[job docs]\n" GOOD_KEYS "notify = admin@example.org\n", 4,
	    "notify", "must start with mailto: or exec:", "mailto:admin");
	expect_error("[job docs]\n" GOOD_KEYS "notify = mailto:nobody\n", 4,
	    "notify", "not a mail address", NULL);
	expect_error("[job docs]\n" GOOD_KEYS "window = 22:00-6\n", 4, "window",
	    "cannot read the window", "22:00-06:00");
	expect_error("[job docs]\n" GOOD_KEYS "window = 25:00-06:00\n", 4,
	    "window", "cannot read the window", NULL);
	expect_error("[job docs]\n" GOOD_KEYS "window = 06:00-06:00\n", 4,
	    "window", "empty", NULL);
	expect_error("[job docs]\n" GOOD_KEYS "close-apps = auto, firefox\n", 4,
	    "close-apps", "cannot be mixed", NULL);
	expect_error("[job docs]\n" GOOD_KEYS "owner = -rf\n", 4, "owner",
	    "not a user name", NULL);
}

static void
test_inline_comment_is_part_of_value(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;

	/* The example of DESIGN.md's older text: refused, with the reason. */
	expect_error("[job docs]\n" GOOD_KEYS "close-apps  = auto            "
	    "; or: libreoffice, thunderbird\n", 4, "close-apps",
	    "not a program name", "part of the value");
	/* A ';' in a value is kept; a " ;" that still makes a valid value
	 * gets a note, not an error. */
	assert_int_equal(parse("[job docs]\n" GOOD_KEYS
	    "exclude = a;b, c ;d\n", &jf, &d), 0);
	assert_int_equal(jf->jobs[0]->exclude.n, 2);
	assert_string_equal(jf->jobs[0]->exclude.v[0], "a;b");
	assert_string_equal(jf->jobs[0]->exclude.v[1], "c ;d");
	assert_non_null(find(&d, VG_DIAG_NOTE, 4, "exclude",
	    "part of the value"));
	assert_int_equal(d.nerrors, 0);
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_every_error_in_one_pass(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;

	assert_int_equal(parse("[job a]\n" GOOD_KEYS "mode = sync\n\n"
	    "[job b]\n" GOOD_KEYS "\n"
	    "[job c]\n" GOOD_KEYS "warn = soon\nretries = x\n", &jf, &d), -1);
	assert_int_equal(d.nerrors, 3);
	assert_non_null(find(&d, VG_DIAG_ERROR, 4, "mode", "sync"));
	assert_non_null(find(&d, VG_DIAG_ERROR, 13, "warn", "duration"));
	assert_non_null(find(&d, VG_DIAG_ERROR, 14, "retries", "whole number"));
	assert_string_equal(d.v[1].job, "c");
	/* The good job is still there. */
	assert_int_equal(jf->njobs, 1);
	assert_string_equal(jf->jobs[0]->name, "b");
	jobfile_free(jf);
	diags_free(&d);
}

static const char every_key[] =
    "[job full]\n"
    "source = /home/alice/Documents/\n"
    "source = /home/alice//Pictures\n"
    "destination = /srv/backup/alice\n"
    "mode = mirror\n"
    "schedule = weekly Mon,Thu 03:30\n"
    "include = *.odt, *.jpg, a\\,b\n"
    "exclude = *.tmp, .cache/\n"
    "keep-versions = 5\n"
    "keep-days = 30\n"
    "max-delete = 25%\n"
    "verify = yes\n"
    "close-apps = libreoffice, thunderbird\n"
    "close-method = term\n"
    "warn = 90s\n"
    "close-timeout = 2m\n"
    "postpone = 1h30m\n"
    "max-postpone = 4\n"
    "force-close = yes\n"
    "logged-off = copy\n"
    "snapshot = reflink\n"
    "retries = 7\n"
    "missed = skip\n"
    "grace = 3d\n"
    "window = 22:00-06:30\n"
    "max-runtime = 6h\n"
    "wake = yes\n"
    "warn-after = 3d\n"
    "pre = /usr/bin/env \"A B=1\" /bin/echo 'it\\'s' x\\ y\n"
    "post = /bin/true\n"
    "owner = alice\n"
    "one-file-system = yes\n"
    "require-mount = /srv/backup\n"
    "priority = low\n"
    "notify = mailto:admin@example.org, exec:/usr/local/bin/alert --job full\n"
    "\n"
    "[job arch]\n"
    "source = /etc\n"
    "destination = /srv/arch\n"
    "mode = archive\n"
    "format = zip\n"
    "compression = 9\n"
    "archive = incremental\n"
    "close-apps = auto\n";

static void
test_good_file_every_key(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	struct vg_job_def *j, *a;

	if (parse(every_key, &jf, &d) != 0) {
		dump(&d);
		fail();
	}
	assert_int_equal(jf->njobs, 2);
	j = jf->jobs[0];
	assert_string_equal(j->name, "full");
	assert_int_equal(j->line, 1);
	assert_int_equal(j->sources.n, 2);
	assert_string_equal(j->sources.v[0], "/home/alice/Documents");
	assert_string_equal(j->sources.v[1], "/home/alice/Pictures");
	assert_string_equal(j->destination, "/srv/backup/alice");
	assert_int_equal(j->mode, VG_MODE_MIRROR);
	assert_string_equal(j->schedule, "weekly Mon,Thu 03:30");
	assert_int_equal(j->include.n, 3);
	assert_string_equal(j->include.v[2], "a,b");
	assert_int_equal(j->exclude.n, 2);
	assert_string_equal(j->exclude.v[1], ".cache/");
	assert_int_equal(j->keep_versions, 5);
	assert_int_equal(j->keep_days, 30);
	assert_int_equal(j->max_delete, 25);
	assert_true(j->verify);
	assert_int_equal(j->close_apps, VG_CLOSE_LIST);
	assert_int_equal(j->close_app_names.n, 2);
	assert_string_equal(j->close_app_names.v[1], "thunderbird");
	assert_int_equal(j->close_method, VG_CLOSE_TERM);
	assert_int_equal(j->warn_s, 90);
	assert_int_equal(j->close_timeout_s, 120);
	assert_int_equal(j->postpone_s, 5400);
	assert_int_equal(j->max_postpone, 4);
	assert_true(j->force_close);
	assert_int_equal(j->logged_off, VG_LOGGEDOFF_COPY);
	assert_int_equal(j->snapshot, VG_SNAP_REFLINK);
	assert_int_equal(j->retries, 7);
	assert_int_equal(j->missed, VG_MISSED_SKIP);
	assert_int_equal(j->grace_s, 3 * 86400);
	assert_true(j->has_window);
	assert_int_equal(j->window_start, 22 * 60);
	assert_int_equal(j->window_end, 6 * 60 + 30);
	assert_int_equal(j->max_runtime_s, 6 * 3600);
	assert_true(j->wake);
	assert_int_equal(j->warn_after_s, 3 * 86400);
	assert_int_equal(j->pre.n, 5);
	assert_string_equal(j->pre.v[0], "/usr/bin/env");
	assert_string_equal(j->pre.v[1], "A B=1");
	assert_string_equal(j->pre.v[3], "it's");
	assert_string_equal(j->pre.v[4], "x y");
	assert_null(j->pre.v[5]);
	assert_int_equal(j->post.n, 1);
	assert_string_equal(j->owner, "alice");
	assert_true(j->one_file_system);
	assert_string_equal(j->require_mount, "/srv/backup");
	assert_int_equal(j->priority, VG_PRIO_LOW);
	assert_int_equal(j->notify.n, 2);
	assert_string_equal(j->notify.v[1], "exec:/usr/local/bin/alert --job full");

	a = jf->jobs[1];
	assert_int_equal(a->mode, VG_MODE_ARCHIVE);
	assert_int_equal(a->format, VG_FMT_ZIP);
	assert_int_equal(a->compression, 9);
	assert_int_equal(a->archive, VG_ARCHIVE_INCREMENTAL);
	assert_int_equal(a->close_apps, VG_CLOSE_AUTO);
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_defaults(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	struct vg_job_def *j;

	assert_int_equal(parse("[job d]\n" GOOD_KEYS, &jf, &d), 0);
	j = jf->jobs[0];
	assert_int_equal(j->mode, VG_MODE_BACKUP);
	assert_string_equal(j->schedule, "manual");
	assert_int_equal(j->max_delete, 50);
	assert_int_equal(j->format, VG_FMT_TAR_ZST);
	assert_int_equal(j->compression, 6);
	assert_int_equal(j->warn_s, 60);
	assert_int_equal(j->close_timeout_s, 60);
	assert_int_equal(j->postpone_s, 3600);
	assert_int_equal(j->max_postpone, 2);
	assert_int_equal(j->retries, 3);
	assert_int_equal(j->grace_s, 12 * 3600);
	assert_int_equal(j->close_apps, VG_CLOSE_NONE);
	assert_int_equal(j->logged_off, VG_LOGGEDOFF_SNAPSHOT);
	assert_false(j->has_window);
	assert_null(j->owner);
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_long_line_accepted(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	char *text, *p;
	size_t i, n = 10000;

	text = malloc(n * 12 + 256);
	assert_non_null(text);
	p = text + sprintf(text, "[job big]\n" GOOD_KEYS "exclude = ");
	for (i = 0; i < n; i++)
		p += sprintf(p, "%sf%06zu.x", i ? ", " : "", i);
	strcpy(p, "\n");
	assert_true(strlen(text) > 100000);
	assert_int_equal(parse(text, &jf, &d), 0);
	assert_int_equal(jf->jobs[0]->exclude.n, n);
	assert_string_equal(jf->jobs[0]->exclude.v[n - 1], "f009999.x");
	jobfile_free(jf);
	diags_free(&d);
	free(text);
}

static void
test_crlf(void **state)
{
	const char *text = "# jobs\r\n\r\n[job docs]\r\nsource = /home/a\r\n"
	    "destination = /srv/b\r\nschedule = daily 02:00\r\n";
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	char *out;

	assert_int_equal(parse(text, &jf, &d), 0);
	assert_string_equal(jf->jobs[0]->destination, "/srv/b");
	assert_string_equal(jf->jobs[0]->schedule, "daily 02:00");
	out = config_export(jf->preamble, jf->jobs, jf->njobs);
	assert_string_equal(out, text);
	free(out);
	jobfile_free(jf);
	diags_free(&d);
}

static const char round_trip[] =
    "# Alice's jobs.  Kept in git.\n"
    "; second preamble line\n"
    "\n"
    "# Documents, every night.\n"
    "# Mirror: deletions follow the source.\n"
    "[job documents]\n"
    "source      = /home/alice/Documents\n"
    "destination = /srv/backup/alice/documents\n"
    "mode        = mirror\n"
    "schedule    = daily 02:00\n"
    "exclude     = *.tmp, .cache/\n"
    "  # keep-days = 30   (commented out for now)\n"
    "keep-versions = 5\n"
    "\n"
    "\n"
    "; Pictures, weekly\n"
    "[job pictures]\n"
    "source = /home/alice/Pictures\n"
    "destination = /srv/backup/alice/pictures\n"
    "schedule = weekly Sun 04:00\n"
    "\n"
    "# trailing comment at the end of the file\n";

static void
test_round_trip_byte_exact(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	char *out;

	assert_int_equal(parse(round_trip, &jf, &d), 0);
	assert_int_equal(jf->njobs, 2);
	assert_string_equal(jf->preamble,
	    "# Alice's jobs.  Kept in git.\n; second preamble line\n\n");
	/* The comments directly above a header belong to its job. */
	assert_true(strncmp(jf->jobs[0]->text, "# Documents, every night.\n",
	    26) == 0);
	assert_true(strncmp(jf->jobs[1]->text, "; Pictures, weekly\n[job pic",
	    27) == 0);
	assert_int_equal(jf->jobs[1]->line, 17);
	out = config_export(jf->preamble, jf->jobs, jf->njobs);
	assert_non_null(out);
	assert_string_equal(out, round_trip);
	free(out);
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_parse_job_reads_stored_text(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	struct vg_job_def *j;
	char *out;

	assert_int_equal(parse(round_trip, &jf, &d), 0);
	j = config_parse_job(jf->jobs[0]->text, &d);
	assert_non_null(j);
	assert_string_equal(j->name, "documents");
	assert_int_equal(j->mode, VG_MODE_MIRROR);
	assert_int_equal(j->keep_versions, 5);
	assert_string_equal(j->text, jf->jobs[0]->text);
	/* Export of stored jobs, last job first: still a valid file. */
	{
		struct vg_job_def *v[2] = { jf->jobs[1], j };
		struct vg_jobfile *jf2 = NULL;
		struct vg_diags d2;

		out = config_export(NULL, v, 2);
		assert_int_equal(parse(out, &jf2, &d2), 0);
		assert_int_equal(jf2->njobs, 2);
		assert_string_equal(jf2->jobs[1]->name, "documents");
		jobfile_free(jf2);
		diags_free(&d2);
		free(out);
	}
	job_def_free(j);
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_parse_job_refuses_two_sections(void **state)
{
	struct vg_diags d = { 0 };

	assert_null(config_parse_job("[job a]\n" GOOD_KEYS "[job b]\n"
	    GOOD_KEYS, &d));
	assert_true(d.nerrors >= 1);
	diags_free(&d);
	assert_null(config_parse_job("[job a]\nsource = rel\n", &d));
	assert_true(d.nerrors >= 1);
	diags_free(&d);
}

static void
test_export_adds_missing_newline_between_jobs(void **state)
{
	struct vg_job_def a = { 0 }, b = { 0 };
	struct vg_job_def *v[2] = { &a, &b };
	char *out;

	a.text = "[job a]\nsource = /x";
	b.text = "[job b]\n";
	out = config_export("# top\n", v, 2);
	assert_string_equal(out, "# top\n[job a]\nsource = /x\n[job b]\n");
	free(out);
}

static void
test_byte_order_mark(void **state)
{
	const char *text = "\xef\xbb\xbf[job docs]\n" GOOD_KEYS;
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	char *out;

	assert_int_equal(parse(text, &jf, &d), 0);
	assert_string_equal(jf->jobs[0]->name, "docs");
	out = config_export(jf->preamble, jf->jobs, jf->njobs);
	assert_string_equal(out, text);
	free(out);
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_split_argv(void **state)
{
	struct vg_strlist l = { 0 };
	char *msg = NULL;

	assert_int_equal(config_split_argv("  /bin/a  \"b c\" '' d\\\"e "
	    "x\"y z\"w\tq\\n", &l, &msg), 0);
	assert_int_equal(l.n, 6);
	assert_string_equal(l.v[0], "/bin/a");
	assert_string_equal(l.v[1], "b c");
	assert_string_equal(l.v[2], "");
	assert_string_equal(l.v[3], "d\"e");
	assert_string_equal(l.v[4], "xy zw");
	assert_string_equal(l.v[5], "q\n");
	strlist_free(&l);
	assert_int_equal(config_split_argv("/bin/a 'b", &l, &msg), -1);
	assert_non_null(strstr(msg, "single quote"));
	free(msg);
	strlist_free(&l);
	assert_int_equal(config_split_argv("/bin/a b\\", &l, &msg), -1);
	assert_non_null(strstr(msg, "backslash"));
	free(msg);
	strlist_free(&l);
}

static void
test_durations(void **state)
{
	uint64_t s;

	assert_int_equal(config_parse_duration("90s", &s), 0);
	assert_int_equal(s, 90);
	assert_int_equal(config_parse_duration("5m", &s), 0);
	assert_int_equal(s, 300);
	assert_int_equal(config_parse_duration("2h", &s), 0);
	assert_int_equal(s, 7200);
	assert_int_equal(config_parse_duration("3d", &s), 0);
	assert_int_equal(s, 259200);
	assert_int_equal(config_parse_duration("1h30m", &s), 0);
	assert_int_equal(s, 5400);
	assert_int_equal(config_parse_duration("0s", &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(config_parse_duration("10", &s), -1);
	assert_int_equal(config_parse_duration("", &s), -1);
	assert_int_equal(config_parse_duration("h", &s), -1);
	assert_int_equal(config_parse_duration("5w", &s), -1);
	assert_int_equal(config_parse_duration("99999999999999d", &s), -1);
}

static void
test_diags_print_format(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;

	assert_int_equal(parse("[job docs]\n" GOOD_KEYS "mode = sync\n", &jf,
	    &d), -1);
	fp = open_memstream(&buf, &len);
	assert_non_null(fp);
	diags_print(&d, fp);
	fclose(fp);
	assert_string_equal(buf, "jobs.ini:4: job docs: key mode: two-way "
	    "sync is not available yet\n  hint: use mode = mirror for a "
	    "one-way copy that also deletes, or mode = backup, which never "
	    "deletes\n");
	free(buf);
	jobfile_free(jf);
	diags_free(&d);
}

/* --- config_check on real folders -------------------------------------- */

struct tmp {
	char	root[200];
};

static int
setup_tmp(void **state)
{
	struct tmp *t = calloc(1, sizeof *t);
	const char *dir = getenv("TMPDIR");

	if (t == NULL)
		return -1;
	snprintf(t->root, sizeof t->root, "%s/vigil-test-config.XXXXXX",
	    dir != NULL && *dir != '\0' ? dir : "/tmp");
	if (mkdtemp(t->root) == NULL) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
teardown_tmp(void **state)
{
	struct tmp *t = *state;
	int r;

	r = nftw(t->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(t);
	return r;
}

static void
mkd(const struct tmp *t, const char *rel)
{
	char p[256];

	snprintf(p, sizeof p, "%s/%s", t->root, rel);
	assert_int_equal(mkdir(p, 0700), 0);
}

/* Parse (must succeed) and check; returns config_check's result. */
static int
check(const char *text, uid_t uid, struct vg_diags *d)
{
	struct vg_jobfile *jf = NULL;
	struct vg_check_ctx cc = { .caller_uid = uid, .check_paths = true };
	int r;

	if (parse(text, &jf, d) != 0) {
		dump(d);
		fail();
	}
	r = config_check(jf, FILE_NAME, &cc, d);
	jobfile_free(jf);
	return r;
}

static void
test_check_missing_source(void **state)
{
	struct tmp *t = *state;
	struct vg_diags d;
	char text[1024];

	snprintf(text, sizeof text, "[job j]\nsource = %s/nope\n"
	    "destination = %s/dst\n", t->root, t->root);
	assert_int_equal(check(text, 0, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 2, "source", "does not exist"));
	diags_free(&d);
}

static void
test_check_source_must_be_folder(void **state)
{
	struct tmp *t = *state;
	struct vg_diags d;
	char text[1024], p[256];
	int fd;

	snprintf(p, sizeof p, "%s/file", t->root);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(text, sizeof text, "[job j]\nsource = %s\n"
	    "destination = %s/dst\n", p, t->root);
	assert_int_equal(check(text, 0, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 2, "source", "not a folder"));
	diags_free(&d);
}

static void
test_check_destination_inside_source_is_a_note(void **state)
{
	struct tmp *t = *state;
	struct vg_diags d;
	char text[1024];

	mkd(t, "src");
	snprintf(text, sizeof text, "[job j]\nsource = %s/src\n"
	    "destination = %s/src/backup\n", t->root, t->root);
	assert_int_equal(check(text, 0, &d), 0);
	assert_int_equal(d.nerrors, 0);
	assert_non_null(find(&d, VG_DIAG_NOTE, 3, "destination",
	    "excluded from the walk automatically"));
	diags_free(&d);
}

static void
test_check_source_inside_destination(void **state)
{
	struct tmp *t = *state;
	struct vg_diags d;
	char text[1024];

	mkd(t, "dst");
	mkd(t, "dst/src");
	snprintf(text, sizeof text, "[job j]\nsource = %s/dst/src\n"
	    "destination = %s/dst\n", t->root, t->root);
	assert_int_equal(check(text, 0, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 2, "source",
	    "inside the destination"));
	diags_free(&d);
}

static void
test_check_source_inside_destination_through_symlink(void **state)
{
	struct tmp *t = *state;
	struct vg_diags d;
	char text[1024], a[256], b[256];

	mkd(t, "real");
	mkd(t, "real/src");
	snprintf(a, sizeof a, "%s/real", t->root);
	snprintf(b, sizeof b, "%s/link", t->root);
	assert_int_equal(symlink(a, b), 0);
	snprintf(text, sizeof text, "[job j]\nsource = %s/link/src\n"
	    "destination = %s/real\n", t->root, t->root);
	assert_int_equal(check(text, 0, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 2, "source",
	    "inside the destination"));
	diags_free(&d);
}

static void
test_check_same_basename(void **state)
{
	struct tmp *t = *state;
	struct vg_diags d;
	char text[1024];

	mkd(t, "a");
	mkd(t, "a/docs");
	mkd(t, "b");
	mkd(t, "b/docs");
	snprintf(text, sizeof text, "[job j]\nsource = %s/a/docs\n"
	    "source = %s/b/docs\ndestination = /srv/nowhere\n", t->root,
	    t->root);
	assert_int_equal(check(text, 0, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 3, "source",
	    "both end in 'docs'"));
	diags_free(&d);
}

static void
test_check_overlapping_sources(void **state)
{
	struct tmp *t = *state;
	struct vg_diags d;
	char text[1024];

	mkd(t, "a");
	mkd(t, "a/b");
	snprintf(text, sizeof text, "[job j]\nsource = %s/a\n"
	    "source = %s/a/b\ndestination = /srv/nowhere\n", t->root, t->root);
	assert_int_equal(check(text, 0, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 3, "source", "overlap"));
	diags_free(&d);
}

static void
test_check_require_mount_and_owner(void **state)
{
	struct tmp *t = *state;
	struct vg_diags d;
	char text[1024];

	mkd(t, "s");
	snprintf(text, sizeof text, "[job j]\nsource = %s/s\n"
	    "destination = %s/d\nrequire-mount = %s/usb\n"
	    "owner = no-such-user-vigil\n", t->root, t->root, t->root);
	assert_int_equal(check(text, 0, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 4, "require-mount",
	    "No such file"));
	assert_non_null(find(&d, VG_DIAG_ERROR, 5, "owner",
	    "not a user on this system"));
	diags_free(&d);

	/* A user may not make a job for root; root may. */
	snprintf(text, sizeof text, "[job j]\nsource = %s/s\n"
	    "destination = %s/d\nowner = root\n", t->root, t->root);
	assert_int_equal(check(text, 4242, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 4, "owner", "only root"));
	diags_free(&d);
	assert_int_equal(check(text, 0, &d), 0);
	diags_free(&d);
}

static void
test_check_without_paths_is_lexical(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	struct vg_check_ctx cc = { .caller_uid = 0, .check_paths = false };

	assert_int_equal(parse("[job j]\nsource = /no/such/src\n"
	    "destination = /no/such\n", &jf, &d), 0);
	assert_int_equal(config_check(jf, FILE_NAME, &cc, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 2, "source",
	    "inside the destination"));
	assert_null(find(&d, VG_DIAG_ERROR, 0, NULL, "does not exist"));
	jobfile_free(jf);
	diags_free(&d);
}

static void
test_check_destination_is_source(void **state)
{
	struct vg_jobfile *jf = NULL;
	struct vg_diags d;
	struct vg_check_ctx cc = { .caller_uid = 0, .check_paths = false };

	assert_int_equal(parse("[job j]\nsource = /data/\n"
	    "destination = /data\n", &jf, &d), 0);
	assert_int_equal(config_check(jf, FILE_NAME, &cc, &d), -1);
	assert_non_null(find(&d, VG_DIAG_ERROR, 3, "destination",
	    "is the source /data itself"));
	jobfile_free(jf);
	diags_free(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_key_suggests_closest),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_source_repeats_but_not_twice_the_same),
		cmocka_unit_test(test_duplicate_job),
		cmocka_unit_test(test_bad_job_name),
		cmocka_unit_test(test_bad_schedule),
		cmocka_unit_test(test_bad_duration),
		cmocka_unit_test(test_bad_counts_and_percent),
		cmocka_unit_test(test_sync_refused_by_name),
		cmocka_unit_test(test_contradicting_keys),
		cmocka_unit_test(test_relative_path),
		cmocka_unit_test(test_missing_required_keys),
		cmocka_unit_test(test_empty_value),
		cmocka_unit_test(test_garbage_line),
		cmocka_unit_test(test_key_outside_section),
		cmocka_unit_test(test_section_syntax),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_invalid_utf8_key_but_not_value),
		cmocka_unit_test(test_unterminated_quote_in_pre),
		cmocka_unit_test(test_bad_list_and_notify_and_window),
		cmocka_unit_test(test_inline_comment_is_part_of_value),
		cmocka_unit_test(test_every_error_in_one_pass),
		cmocka_unit_test(test_good_file_every_key),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_long_line_accepted),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_round_trip_byte_exact),
		cmocka_unit_test(test_parse_job_reads_stored_text),
		cmocka_unit_test(test_parse_job_refuses_two_sections),
		cmocka_unit_test(test_export_adds_missing_newline_between_jobs),
		cmocka_unit_test(test_byte_order_mark),
		cmocka_unit_test(test_split_argv),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_diags_print_format),
		cmocka_unit_test_setup_teardown(test_check_missing_source,
		    setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_check_source_must_be_folder,
		    setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(
		    test_check_destination_inside_source_is_a_note, setup_tmp,
		    teardown_tmp),
		cmocka_unit_test_setup_teardown(
		    test_check_source_inside_destination, setup_tmp,
		    teardown_tmp),
		cmocka_unit_test_setup_teardown(
		    test_check_source_inside_destination_through_symlink,
		    setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_check_same_basename,
		    setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(test_check_overlapping_sources,
		    setup_tmp, teardown_tmp),
		cmocka_unit_test_setup_teardown(
		    test_check_require_mount_and_owner, setup_tmp, teardown_tmp),
		cmocka_unit_test(test_check_without_paths_is_lexical),
		cmocka_unit_test(test_check_destination_is_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
