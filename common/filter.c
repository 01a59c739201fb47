/*
 * filter.c: include/exclude globs of a job (semantics in filter.h).
 *
 * Patterns are compiled once into components; filter_match() walks the
 * relative path once per pattern without allocating.  Anchored patterns run
 * as a small NFA over path components ("**" is a state that loops), so no
 * pattern can make matching exponential.  A pattern that matches a parent
 * directory of the path counts as matching the path: an excluded directory
 * excludes everything below it, and an included directory includes
 * everything below it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/filter.h"

/* Components in one anchored pattern. */
#define FILTER_MAX_COMPONENTS	128

enum comp_kind {
	COMP_LITERAL,	/* no metacharacters: memcmp */
	COMP_SUFFIX,	/* "*" followed by a literal: "*.tmp" */
	COMP_STAR,	/* "*": any one component */
	COMP_GLOB,	/* anything else */
	COMP_ANY,	/* "**": zero or more components */
};

struct filter_comp {
	enum comp_kind	 kind;
	const char	*s;	/* points into filter_pat.text */
	size_t		 len;
};

struct filter_pat {
	char			*text;
	int			 anchored;
	int			 dir_only;
	int			 below_only;	/* ended in a "**" component:
						   only what is below matches */
	struct filter_comp	*comps;
	size_t			 ncomps;
};

struct vg_filter {
	struct filter_pat	*inc, *exc;
	size_t			 ninc, nexc;
};

static char * __attribute__((format(printf, 1, 2)))
filter_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	return s;
}

/* Length of a [...] class starting at p[0] == '[', or 0 if unterminated. */
static size_t
filter_class_len(const char *p, size_t len)
{
	size_t i = 1;

	if (i < len && (p[i] == '!' || p[i] == '^'))
		i++;
	if (i < len && p[i] == ']')
		i++;
	for (; i < len; i++) {
		if (p[i] == '[' && i + 1 < len && p[i + 1] == ':') {
			const char *e = memchr(p + i + 2, ']', len - i - 2);

			if (e != NULL && e[-1] == ':') {
				i = (size_t)(e - p);
				continue;
			}
		}
		if (p[i] == '\\' && i + 1 < len) {
			i++;
			continue;
		}
		if (p[i] == ']')
			return i + 1;
	}
	return 0;
}

static int
filter_named_class(const char *name, size_t len, unsigned char c)
{
#define NC(n, f) if (len == sizeof(n) - 1 && memcmp(name, n, len) == 0) \
		return f(c) != 0
	NC("alpha", isalpha);
	NC("digit", isdigit);
	NC("alnum", isalnum);
	NC("upper", isupper);
	NC("lower", islower);
	NC("space", isspace);
	NC("punct", ispunct);
	NC("xdigit", isxdigit);
	NC("blank", isblank);
	NC("cntrl", iscntrl);
	NC("print", isprint);
	NC("graph", isgraph);
#undef NC
	return -1;
}

/* Does class p[0..clen) (with brackets) match byte c? */
static int
filter_class_match(const char *p, size_t clen, unsigned char c)
{
	size_t i = 1, end = clen - 1;
	int neg = 0, hit = 0;
	unsigned char lo, hi;

	if (p[i] == '!' || p[i] == '^') {
		neg = 1;
		i++;
	}
	if (p[i] == ']') {
		hit |= (c == ']');
		i++;
	}
	while (i < end) {
		if (p[i] == '[' && p[i + 1] == ':') {
			const char *e = memchr(p + i + 2, ']', end - i - 1);

			if (e != NULL && e[-1] == ':') {
				if (filter_named_class(p + i + 2,
				    (size_t)(e - 1 - (p + i + 2)), c) == 1)
					hit = 1;
				i = (size_t)(e - p) + 1;
				continue;
			}
		}
		if (p[i] == '\\' && i + 1 < end)
			i++;
		lo = (unsigned char)p[i++];
		hi = lo;
		if (i + 1 < end && p[i] == '-') {
			i++;
			if (p[i] == '\\' && i + 1 < end)
				i++;
			hi = (unsigned char)p[i++];
		}
		if (c >= lo && c <= hi)
			hit = 1;
	}
	return hit != neg;
}

/* Glob match of one component: '*', '?', '[...]', '\\' escapes.  One star
 * backtrack point suffices because nothing here crosses '/'. */
static int
filter_glob(const char *p, size_t plen, const char *s, size_t slen)
{
	size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0, cl;

	while (si < slen) {
		if (pi < plen) {
			switch (p[pi]) {
			case '*':
				while (pi < plen && p[pi] == '*')
					pi++;
				if (pi == plen)
					return 1;
				star_p = pi;
				star_s = si;
				continue;
			case '?':
				pi++;
				si++;
				continue;
			case '[':
				cl = filter_class_len(p + pi, plen - pi);
				if (cl != 0) {
					if (!filter_class_match(p + pi, cl,
					    (unsigned char)s[si]))
						goto mismatch;
					pi += cl;
					si++;
					continue;
				}
				break;
			case '\\':
				if (pi + 1 < plen)
					pi++;
				break;
			}
			if (p[pi] == s[si]) {
				pi++;
				si++;
				continue;
			}
		}
mismatch:
		if (star_p == SIZE_MAX)
			return 0;
		pi = star_p;
		si = ++star_s;
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}

static int
filter_comp_match(const struct filter_comp *c, const char *s, size_t len)
{
	switch (c->kind) {
	case COMP_LITERAL:
		return len == c->len && memcmp(s, c->s, len) == 0;
	case COMP_SUFFIX:
		return len >= c->len &&
		    memcmp(s + len - c->len, c->s, c->len) == 0;
	case COMP_STAR:
		return 1;
	case COMP_GLOB:
		return filter_glob(c->s, c->len, s, len);
	case COMP_ANY:
		return 1;
	}
	return 0;
}

static int
filter_has_meta(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] == '*' || s[i] == '?' || s[i] == '[' || s[i] == '\\')
			return 1;
	return 0;
}

static void
filter_pat_clear(struct filter_pat *p)
{
	free(p->text);
	free(p->comps);
	memset(p, 0, sizeof *p);
}

/* Compile (or only check, when out is NULL) one pattern. */
static int
filter_pat_compile(const char *pattern, struct filter_pat *out, char **errmsg)
{
	struct filter_pat p;
	struct filter_comp *c;
	const char *s, *e;
	size_t len, i, n, clen;
	int ret = -1;

	memset(&p, 0, sizeof p);
	*errmsg = NULL;
	len = strlen(pattern);
	if (len == 0) {
		*errmsg = filter_fmt("empty pattern");
		goto out;
	}
	if ((p.text = strdup(pattern)) == NULL) {
		*errmsg = filter_fmt("out of memory");
		goto out;
	}
	s = p.text;
	if (len > 1 && s[len - 1] == '/') {
		p.dir_only = 1;
		len--;
	}
	if (s[0] == '/') {
		p.anchored = 1;
		s++;
		len--;
	}
	if (len == 0) {
		*errmsg = filter_fmt("pattern '%s' names no file", pattern);
		goto out;
	}
	if (memchr(s, '/', len) != NULL)
		p.anchored = 1;
	for (i = 0; i < len; i++) {
		if (s[i] == '\\' && i + 1 == len) {
			*errmsg = filter_fmt("pattern '%s' ends in a lone "
			    "backslash", pattern);
			goto out;
		}
		if (s[i] == '\\')
			i++;
		else if (s[i] == '[' && filter_class_len(s + i, len - i) == 0) {
			*errmsg = filter_fmt("pattern '%s' has a '[' without "
			    "its ']'", pattern);
			goto out;
		}
	}
	n = 1;
	for (i = 0; i < len; i++)
		n += (s[i] == '/');
	if (n > FILTER_MAX_COMPONENTS) {
		*errmsg = filter_fmt("pattern '%s' has more than %d components",
		    pattern, FILTER_MAX_COMPONENTS);
		goto out;
	}
	if ((p.comps = calloc(n, sizeof *p.comps)) == NULL) {
		*errmsg = filter_fmt("out of memory");
		goto out;
	}
	while (len > 0 || p.ncomps == 0) {
		e = memchr(s, '/', len);
		clen = e ? (size_t)(e - s) : len;
		if (clen == 0) {
			*errmsg = filter_fmt("pattern '%s' has an empty "
			    "component ('//')", pattern);
			goto out;
		}
		if ((clen == 1 && s[0] == '.') ||
		    (clen == 2 && s[0] == '.' && s[1] == '.')) {
			*errmsg = filter_fmt("pattern '%s' has a '.' or '..' "
			    "component, which never matches", pattern);
			goto out;
		}
		c = &p.comps[p.ncomps];
		c->s = s;
		c->len = clen;
		if (clen == 2 && s[0] == '*' && s[1] == '*' && p.anchored)
			c->kind = COMP_ANY;
		else if (clen == 1 && s[0] == '*')
			c->kind = COMP_STAR;
		else if (!filter_has_meta(s, clen))
			c->kind = COMP_LITERAL;
		else if (s[0] == '*' && !filter_has_meta(s + 1, clen - 1)) {
			c->kind = COMP_SUFFIX;
			c->s = s + 1;
			c->len = clen - 1;
		} else
			c->kind = COMP_GLOB;
		/* "**" twice in a row is "**" once. */
		if (!(c->kind == COMP_ANY && p.ncomps > 0 &&
		    p.comps[p.ncomps - 1].kind == COMP_ANY))
			p.ncomps++;
		if (e == NULL)
			break;
		s = e + 1;
		len -= clen + 1;
		if (len == 0) {
			*errmsg = filter_fmt("pattern '%s' has an empty "
			    "component ('//')", pattern);
			goto out;
		}
	}
	/* A trailing "**" means "everything below": drop it and match
	 * parents only. */
	if (p.ncomps > 1 && p.comps[p.ncomps - 1].kind == COMP_ANY) {
		p.ncomps--;
		p.below_only = 1;
	}
	ret = 0;
	if (out != NULL) {
		*out = p;
		memset(&p, 0, sizeof p);
	}
out:
	filter_pat_clear(&p);
	return ret;
}

int
filter_check_pattern(const char *pattern, char **errmsg)
{
	return filter_pat_compile(pattern, NULL, errmsg);
}

static int
filter_compile_list(const struct vg_strlist *l, struct filter_pat **out,
    size_t *nout, char **errmsg)
{
	size_t i;

	*out = NULL;
	*nout = 0;
	if (l == NULL || l->n == 0)
		return 0;
	if ((*out = calloc(l->n, sizeof **out)) == NULL) {
		*errmsg = filter_fmt("out of memory");
		return -1;
	}
	for (i = 0; i < l->n; i++) {
		if (filter_pat_compile(l->v[i], &(*out)[i], errmsg) == -1)
			return -1;
		(*nout)++;
	}
	return 0;
}

struct vg_filter *
filter_compile(const struct vg_strlist *include,
    const struct vg_strlist *exclude, char **errmsg)
{
	struct vg_filter *f;

	*errmsg = NULL;
	if ((f = calloc(1, sizeof *f)) == NULL) {
		*errmsg = filter_fmt("out of memory");
		return NULL;
	}
	if (filter_compile_list(include, &f->inc, &f->ninc, errmsg) == -1 ||
	    filter_compile_list(exclude, &f->exc, &f->nexc, errmsg) == -1) {
		filter_free(f);
		return NULL;
	}
	return f;
}

void
filter_free(struct vg_filter *f)
{
	size_t i;

	if (f == NULL)
		return;
	for (i = 0; i < f->ninc; i++)
		filter_pat_clear(&f->inc[i]);
	for (i = 0; i < f->nexc; i++)
		filter_pat_clear(&f->exc[i]);
	free(f->inc);
	free(f->exc);
	free(f);
}

/* Next component of path[*pos..len), skipping empty ones; 0 at the end. */
static int
filter_next_comp(const char *path, size_t len, size_t *pos, const char **c,
    size_t *clen)
{
	const char *e;

	while (*pos < len && path[*pos] == '/')
		(*pos)++;
	if (*pos >= len)
		return 0;
	*c = path + *pos;
	e = memchr(*c, '/', len - *pos);
	*clen = e ? (size_t)(e - *c) : len - *pos;
	*pos += *clen;
	return 1;
}

/* Is there more than empty components left after pos? */
static int
filter_at_end(const char *path, size_t len, size_t pos)
{
	while (pos < len && path[pos] == '/')
		pos++;
	return pos >= len;
}

/*
 * Does p match the path or one of its parent directories?  Parents are
 * directories; the path itself is a directory when is_dir.
 */
static int
filter_pat_match(const struct filter_pat *p, const char *path, size_t len,
    bool is_dir)
{
	uint8_t cur[FILTER_MAX_COMPONENTS + 1], nxt[FILTER_MAX_COMPONENTS + 1];
	const char *c;
	size_t pos = 0, clen, i, n = p->ncomps;
	int last, any;

	if (!p->anchored) {
		while (filter_next_comp(path, len, &pos, &c, &clen)) {
			last = filter_at_end(path, len, pos);
			if (p->dir_only && last && !is_dir)
				return 0;
			if (filter_comp_match(&p->comps[0], c, clen))
				return 1;
		}
		return 0;
	}
	/* NFA: cur[i] = the first i components have matched. */
	memset(cur, 0, n + 1);
	cur[0] = 1;
	for (i = 0; i < n; i++)		/* "**" may match nothing */
		if (cur[i] && p->comps[i].kind == COMP_ANY)
			cur[i + 1] = 1;
	while (filter_next_comp(path, len, &pos, &c, &clen)) {
		memset(nxt, 0, n + 1);
		any = 0;
		for (i = 0; i < n; i++) {
			if (!cur[i])
				continue;
			if (p->comps[i].kind == COMP_ANY) {
				nxt[i] = 1;
				nxt[i + 1] = 1;
				any = 1;
			} else if (filter_comp_match(&p->comps[i], c, clen)) {
				nxt[i + 1] = 1;
				any = 1;
			}
		}
		if (!any)
			return 0;
		for (i = 0; i < n; i++)
			if (nxt[i] && p->comps[i].kind == COMP_ANY)
				nxt[i + 1] = 1;
		memcpy(cur, nxt, n + 1);
		if (!cur[n])
			continue;
		if (!filter_at_end(path, len, pos))
			return 1;	/* a parent directory matched */
		if (!p->below_only && !(p->dir_only && !is_dir))
			return 1;
	}
	return 0;
}

enum filter_verdict
filter_match(const struct vg_filter *f, const char *relpath, size_t len,
    bool is_dir)
{
	size_t i;

	if (f == NULL)
		return FILTER_TAKE;
	for (i = 0; i < f->nexc; i++)
		if (filter_pat_match(&f->exc[i], relpath, len, is_dir))
			return FILTER_SKIP;
	if (f->ninc == 0 || is_dir)
		return FILTER_TAKE;
	for (i = 0; i < f->ninc; i++)
		if (filter_pat_match(&f->inc[i], relpath, len, is_dir))
			return FILTER_TAKE;
	return FILTER_SKIP;
}
