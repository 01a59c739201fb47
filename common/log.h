/*
 * log.h: vigil's log.  In the foreground (and in every client) messages go to
 * stderr; as a service they go to the journal with structured fields
 * (PRIORITY, VIGIL_JOB=, VIGIL_RUN=).  Strings that came from outside (paths,
 * job names, peer data) must be passed through log_escape() or printed with
 * "%s" of an escaped copy: the log never carries raw control bytes.
 */
#ifndef VIGIL_LOG_H
#define VIGIL_LOG_H

#include <stdint.h>

enum log_target {
	LOG_TARGET_STDERR = 0,
	LOG_TARGET_JOURNAL,
};

/* ident: program name shown in messages.  verbose: 0 info, 1 debug. */
void	log_init(const char *ident, enum log_target target, int verbose);
void	log_set_verbose(int verbose);
/* SIGHUP: re-open whatever the target needs (stderr: nothing). */
void	log_reopen(void);

/* Context attached to every message until cleared (job NULL / run 0 clears). */
void	log_set_context(const char *job, int64_t run);

void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Start-up failures and broken invariants only; never for peer input. */
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * Escape an untrusted byte string for display: printable ASCII and valid
 * UTF-8 pass; '\\' becomes "\\\\", control bytes and invalid UTF-8 become
 * "\xNN".  Returns a malloc'd string the caller frees (NULL only on ENOMEM).
 */
char	*log_escape(const char *s);
char	*log_escape_len(const char *s, size_t len);

#endif
