/*
 * fuzz_filter.c: libFuzzer target for include/exclude globs
 * (common/filter.h): the patterns of a job and the paths of a hostile tree.
 *
 * The input is lines.  Up to a line "--": patterns, "+PAT" an include,
 * "-PAT" an exclude (other lines are excludes as written).  After it:
 * relative paths to match, each as raw bytes (NUL and all); a path ending
 * in '/' is a directory (the '/' is dropped).  Checked: filter_check_pattern()
 * and filter_compile() end and agree (compile fails iff a pattern is
 * refused) with a message; filter_match() ends and gives the same verdict
 * twice; a filter with no patterns takes everything.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/filter.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_strlist inc = { NULL, 0 }, exc = { NULL, 0 };
	struct vg_filter *f = NULL;
	const uint8_t *p = data, *end = data + size, *nl;
	char *line = NULL, *errmsg = NULL, *path;
	size_t len, plen;
	int refused = 0, in_paths = 0;
	enum filter_verdict v1, v2;
	bool is_dir;

	if (size > 64 * 1024)
		return 0;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (!in_paths) {
			if (len == 2 && memcmp(p, "--", 2) == 0) {
				in_paths = 1;
				errmsg = NULL;
				f = filter_compile(&inc, &exc, &errmsg);
				if ((f == NULL) != (refused != 0) ||
				    (f == NULL && errmsg == NULL))
					abort();
				free(errmsg);
				errmsg = NULL;
				if (f == NULL)
					goto out;
			} else if (memchr(p, '\0', len) == NULL) {
				/* a pattern is a C string: no NUL */
				if ((line = strndup((const char *)p, len)) ==
				    NULL)
					goto out;
				path = line;
				if (line[0] == '+' || line[0] == '-')
					path++;
				if (filter_check_pattern(path, &errmsg) == -1) {
					if (errmsg == NULL)
						abort();
					refused++;
				}
				free(errmsg);
				errmsg = NULL;
				if (strlist_push(line[0] == '+' ? &inc : &exc,
				    path) == -1) {
					free(line);
					goto out;
				}
				free(line);
				line = NULL;
			}
		} else {
			plen = len;
			is_dir = plen > 0 && p[plen - 1] == '/';
			if (is_dir)
				plen--;
			/* an exact-size copy, so a read past the end shows */
			if ((path = malloc(plen ? plen : 1)) == NULL)
				goto out;
			memcpy(path, p, plen);
			v1 = filter_match(f, path, plen, is_dir);
			v2 = filter_match(f, path, plen, is_dir);
			if (v1 != v2)
				abort();
			if (inc.n == 0 && exc.n == 0 && v1 != FILTER_TAKE)
				abort();
			free(path);
		}
		p += len + (nl != NULL);
	}
	if (!in_paths) {
		f = filter_compile(&inc, &exc, &errmsg);
		if ((f == NULL) != (refused != 0) || (f == NULL &&
		    errmsg == NULL))
			abort();
		free(errmsg);
	}
out:
	filter_free(f);
	strlist_free(&inc);
	strlist_free(&exc);
	return 0;
}
