/* log.c: stderr or journal logging with vigil's structured fields. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include "common/log.h"

static const char	*log_ident = "vigil";
static enum log_target	 log_target = LOG_TARGET_STDERR;
static int		 log_verbose;
static char		 log_job[128];
static int64_t		 log_run;

void
log_init(const char *ident, enum log_target target, int verbose)
{
	log_ident = ident;
	log_target = target;
	log_verbose = verbose;
}

void
log_set_verbose(int verbose)
{
	log_verbose = verbose;
}

void
log_reopen(void)
{
	/* stderr and the journal need no re-opening; kept for SIGHUP. */
}

void
log_set_context(const char *job, int64_t run)
{
	char *e;

	log_job[0] = '\0';
	if (job != NULL && (e = log_escape(job)) != NULL) {
		snprintf(log_job, sizeof log_job, "%s", e);
		free(e);
	}
	log_run = run;
}

static void __attribute__((format(printf, 4, 0)))
log_vemit(int prio, int with_errno, int saved_errno, const char *fmt,
    va_list ap)
{
	char msg[4096];
	size_t len;

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (with_errno) {
		len = strlen(msg);
		snprintf(msg + len, sizeof msg - len, ": %s",
		    strerror(saved_errno));
	}
	if (log_target == LOG_TARGET_JOURNAL) {
		char jf[160], rf[64];

		snprintf(jf, sizeof jf, "VIGIL_JOB=%s", log_job);
		snprintf(rf, sizeof rf, "VIGIL_RUN=%lld", (long long)log_run);
		if (log_job[0] != '\0' && log_run != 0)
			sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio,
			    "SYSLOG_IDENTIFIER=%s", log_ident, "%s", jf,
			    "%s", rf, NULL);
		else if (log_job[0] != '\0')
			sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio,
			    "SYSLOG_IDENTIFIER=%s", log_ident, "%s", jf, NULL);
		else
			sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio,
			    "SYSLOG_IDENTIFIER=%s", log_ident, NULL);
		return;
	}
	if (log_job[0] != '\0' && log_run != 0)
		fprintf(stderr, "%s: [%s #%lld] %s\n", log_ident, log_job,
		    (long long)log_run, msg);
	else if (log_job[0] != '\0')
		fprintf(stderr, "%s: [%s] %s\n", log_ident, log_job, msg);
	else
		fprintf(stderr, "%s: %s\n", log_ident, msg);
}

#define LOG_FN(name, prio, with_errno, gate)				\
void									\
name(const char *fmt, ...)						\
{									\
	int saved = errno;						\
	va_list ap;							\
									\
	if (!(gate))							\
		return;							\
	va_start(ap, fmt);						\
	log_vemit(prio, with_errno, saved, fmt, ap);			\
	va_end(ap);							\
	errno = saved;							\
}

LOG_FN(log_warn, LOG_WARNING, 1, 1)
LOG_FN(log_warnx, LOG_WARNING, 0, 1)
LOG_FN(log_info, LOG_INFO, 0, 1)
LOG_FN(log_debug, LOG_DEBUG, 0, log_verbose > 0)

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, 1, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, 0, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

/* Length of a valid UTF-8 sequence at s (max n bytes), or 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* C1 controls are escaped too. */
	if (cp >= 0x80 && cp < 0xa0)
		return 0;
	return len;
}

char *
log_escape_len(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	char *out, *o;
	size_t i, k;

	if ((out = malloc(n * 4 + 1)) == NULL)
		return NULL;
	o = out;
	for (i = 0; i < n;) {
		if (u[i] == '\\') {
			*o++ = '\\';
			*o++ = '\\';
			i++;
		} else if (u[i] >= 0x20 && u[i] < 0x7f) {
			*o++ = (char)u[i++];
		} else if (u[i] >= 0x80 && (k = utf8_seq(u + i, n - i)) > 0) {
			memcpy(o, u + i, k);
			o += k;
			i += k;
		} else {
			o += sprintf(o, "\\x%02x", u[i]);
			i++;
		}
	}
	*o = '\0';
	return out;
}

char *
log_escape(const char *s)
{
	return log_escape_len(s, strlen(s));
}
