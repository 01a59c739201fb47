/*
 * filter.h: include/exclude globs of a job.
 *
 * Patterns are matched against the path relative to the source root, '/'
 * separated, without a leading '/'.
 *   - A pattern without '/' (other than a trailing one) matches the last
 *     component at any depth: "*.tmp", ".cache/".
 *   - A pattern with an inner '/' is anchored at the source root:
 *     "build/out", "/build/out" (leading '/' optional), "src/ ** /gen" style
 *     patterns may use "**" to match any number of components.
 *   - A trailing '/' matches directories only.
 *   - "*" and "?" never match '/'; "[...]" classes as in fnmatch(3).
 * A directory that is excluded is not descended into.  With include patterns,
 * a file must match one of them to be taken; directories are always
 * descended (unless excluded) so that deeper includes can match.  Exclude
 * wins over include.
 *
 * Ownership: filter_compile() returns a filter freed with filter_free().
 */
#ifndef VIGIL_FILTER_H
#define VIGIL_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

struct vg_filter;

/* Returns NULL and sets *errmsg (malloc'd, caller frees) naming the bad
 * pattern on error. */
struct vg_filter *filter_compile(const struct vg_strlist *include,
	    const struct vg_strlist *exclude, char **errmsg);
void	filter_free(struct vg_filter *f);

/* Check one glob (used by config validation).  0 ok, -1 with *errmsg. */
int	filter_check_pattern(const char *pattern, char **errmsg);

enum filter_verdict { FILTER_TAKE, FILTER_SKIP };

/* relpath: bytes, no leading '/', len bytes.  is_dir: the entry is a
 * directory.  A NULL filter takes everything. */
enum filter_verdict filter_match(const struct vg_filter *f, const char *relpath,
	    size_t len, bool is_dir);

#endif
