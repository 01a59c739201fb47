/*
 * archive_manifest.c: the manifest format, path escaping and naming helpers
 * of archive mode (archive_int.h).  A manifest is read from the destination,
 * which is hostile input: every line is checked, and any problem refuses
 * the whole manifest with a message that names it and its line.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "scheduler/archive_int.h"

#define ARC_MANIFEST_MAX	(1ULL << 34)	/* 16 GiB: absurd beyond */

const char *
arc_format_ext(enum vg_format f)
{
	switch (f) {
	case VG_FMT_TAR_GZ:
		return "tar.gz";
	case VG_FMT_ZIP:
		return "zip";
	case VG_FMT_TAR_ZST:
	default:
		return "tar.zst";
	}
}

int
arc_zstd_level(int c)
{
	static const int map[10] = { 1, 1, 1, 2, 2, 3, 3, 5, 7, 9 };

	if (c < 0)
		c = 0;
	if (c > 9)
		c = 9;
	return map[c];
}

bool
arc_path_safe(const char *p, size_t len)
{
	size_t i, start;

	if (len == 0 || p[0] == '/')
		return false;
	if (memchr(p, '\0', len) != NULL)
		return false;
	for (start = 0, i = 0; i <= len; i++) {
		if (i < len && p[i] != '/')
			continue;
		if (i == start)
			return false;		/* empty component */
		if (i - start == 1 && p[start] == '.')
			return false;
		if (i - start == 2 && p[start] == '.' && p[start + 1] == '.')
			return false;
		start = i + 1;
	}
	return true;
}

char *
arc_path_escape(const char *p, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char c;
	char *s, *o;
	size_t i;

	if ((s = malloc(len * 3 + 1)) == NULL)
		return NULL;
	for (o = s, i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f || c == '%') {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else
			*o++ = (char)c;
	}
	*o = '\0';
	return s;
}

static int
arc_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
arc_path_unescape(const char *s, char **out, size_t *len)
{
	size_t n = strlen(s), i;
	char *r, *o;
	int h, l;

	*out = NULL;
	if (n == 0 || (r = malloc(n + 1)) == NULL)
		return -1;
	for (o = r, i = 0; i < n; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			goto bad;
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 >= n || (h = arc_hexval(s[i + 1])) < 0 ||
		    (l = arc_hexval(s[i + 2])) < 0)
			goto bad;
		if (h == 0 && l == 0)
			goto bad;
		*o++ = (char)(h << 4 | l);
		i += 2;
	}
	*o = '\0';
	*out = r;
	*len = (size_t)(o - r);
	return 0;
bad:
	free(r);
	return -1;
}

void
arc_manifest_free(struct arc_manifest *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	free(m->stamp);
	free(m->archive);
	free(m->parent);
	memset(m, 0, sizeof *m);
}

static int
arc_parse_i64(const char *s, int64_t *v)
{
	char *end;

	if (*s == '\0' || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

static int
arc_parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

/* A name from the manifest that must be one plain file name. */
static bool
arc_plain_name(const char *s)
{
	return s[0] != '\0' && s[0] != '.' && strchr(s, '/') == NULL &&
	    strlen(s) < 256;
}

/* Split line into at most max space-separated fields (in place). */
static size_t
arc_fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (n < max) {
		f[n++] = p;
		if ((p = strchr(p, ' ')) == NULL)
			break;
		*p++ = '\0';
	}
	return n;
}

static int
arc_parse_entry(char **f, size_t nf, struct arc_mentry *e)
{
	int64_t v;
	size_t i;
	int h, l;

	memset(e, 0, sizeof *e);
	if (f[0][0] == 'D' && f[0][1] == '\0') {
		if (nf != 2)
			return -1;
		e->type = 'D';
		if (arc_path_unescape(f[1], &e->path, &e->len) == -1)
			return -1;
		if (!arc_path_safe(e->path, e->len)) {
			free(e->path);
			e->path = NULL;
			return -1;
		}
		return 0;
	}
	if (nf != 7 || strlen(f[1]) != 1 || strchr("fdlh", f[1][0]) == NULL)
		return -1;
	e->type = f[1][0];
	if (strcmp(f[2], "ok") == 0)
		e->ok = true;
	else if (strcmp(f[2], "bad") != 0)
		return -1;
	if (arc_parse_u64(f[3], &e->size) == -1 || arc_parse_i64(f[4],
	    &v) == -1)
		return -1;
	e->mtime_ns = v;
	if (strcmp(f[5], "-") != 0) {
		if (strlen(f[5]) != 32)
			return -1;
		for (i = 0; i < 16; i++) {
			if ((h = arc_hexval(f[5][2 * i])) < 0 ||
			    (l = arc_hexval(f[5][2 * i + 1])) < 0)
				return -1;
			e->sum[i] = (uint8_t)(h << 4 | l);
		}
		e->has_sum = true;
	}
	if (arc_path_unescape(f[6], &e->path, &e->len) == -1 ||
	    !arc_path_safe(e->path, e->len)) {
		free(e->path);
		e->path = NULL;
		return -1;
	}
	return 0;
}

int
arc_manifest_read(int dirfd, const char *name, bool header_only,
    struct arc_manifest *m, struct vg_err *err)
{
	struct stat sb;
	struct arc_mentry e, *nv;
	char *buf = NULL, *line, *nl, *f[8], *esc = NULL;
	size_t nf, lineno = 0, cap = 0, ne = 0, nd = 0, nlen;
	uint64_t u1, u2;
	bool ended = false;
	ssize_t r;
	size_t got = 0;
	int fd = -1, rc = -1, hdr = 0;

	memset(m, 0, sizeof *m);
	esc = log_escape(name);
	nlen = strlen(name);
	if (nlen <= 9 || strcmp(name + nlen - 9, ".manifest") != 0) {
		vg_err_set(err, VG_ERR_INVALID, "%s is not a manifest name",
		    esc ? esc : "?");
		goto out;
	}
	if ((m->stamp = strndup(name, nlen - 9)) == NULL)
		goto nomem;
	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK)) == -1 || fstat(fd, &sb) == -1) {
		vg_err_sys(err, "archive manifest %s", esc ? esc : "?");
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > ARC_MANIFEST_MAX) {
		vg_err_set(err, VG_ERR_INVALID, "archive manifest %s is not a "
		    "regular file of sane size", esc ? esc : "?");
		goto out;
	}
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL)
		goto nomem;
	while (got < (size_t)sb.st_size) {
		r = read(fd, buf + got, (size_t)sb.st_size - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			vg_err_sys(err, "reading archive manifest %s",
			    esc ? esc : "?");
			goto out;
		}
		got += (size_t)r;
	}
	buf[got] = '\0';
	if (memchr(buf, '\0', got) != NULL)
		goto bad;
	for (line = buf; *line != '\0'; line = nl + 1) {
		lineno++;
		if ((nl = strchr(line, '\n')) == NULL)
			goto bad;	/* a cut last line */
		*nl = '\0';
		if (ended)
			goto bad;
		if (hdr == 0) {
			if (strcmp(line, ARC_MANIFEST_MAGIC) != 0)
				goto bad;
			hdr++;
			continue;
		}
		nf = arc_fields(line, f, 8);
		if (hdr == 1 && nf == 2 && strcmp(f[0], "run") == 0) {
			if (arc_parse_i64(f[1], &m->run) == -1 || m->run <= 0)
				goto bad;
			hdr++;
		} else if (hdr == 2 && nf == 2 && strcmp(f[0], "time") == 0) {
			if (arc_parse_i64(f[1], &m->time_ms) == -1)
				goto bad;
			hdr++;
		} else if (hdr == 3 && nf == 2 && strcmp(f[0], "kind") == 0) {
			if (strcmp(f[1], "full") == 0)
				m->full = true;
			else if (strcmp(f[1], "incremental") != 0)
				goto bad;
			hdr++;
		} else if (hdr == 4 && nf == 2 &&
		    strcmp(f[0], "format") == 0) {
			if (strcmp(f[1], "tar.zst") == 0)
				m->format = VG_FMT_TAR_ZST;
			else if (strcmp(f[1], "tar.gz") == 0)
				m->format = VG_FMT_TAR_GZ;
			else if (strcmp(f[1], "zip") == 0)
				m->format = VG_FMT_ZIP;
			else
				goto bad;
			hdr++;
		} else if (hdr == 5 && nf == 2 &&
		    strcmp(f[0], "archive") == 0) {
			if (!arc_plain_name(f[1]) ||
			    (m->archive = strdup(f[1])) == NULL)
				goto bad;
			hdr++;
		} else if (hdr == 6 && nf == 2 &&
		    strcmp(f[0], "parent") == 0) {
			if (strcmp(f[1], "-") != 0 && (!arc_plain_name(f[1]) ||
			    (m->parent = strdup(f[1])) == NULL))
				goto bad;
			if (m->full != (m->parent == NULL))
				goto bad;
			hdr++;
		} else if (hdr == 7 && nf == 3 && strcmp(f[0], "end") == 0) {
			if (arc_parse_u64(f[1], &u1) == -1 ||
			    arc_parse_u64(f[2], &u2) == -1 || u1 != ne ||
			    u2 != nd)
				goto bad;
			ended = true;
		} else if (hdr == 7 && (strcmp(f[0], "E") == 0 ||
		    strcmp(f[0], "D") == 0)) {
			if (arc_parse_entry(f, nf, &e) == -1)
				goto bad;
			if (e.type == 'D')
				nd++;
			else
				ne++;
			if (header_only) {
				free(e.path);
				continue;
			}
			if (m->n == cap) {
				cap = cap ? cap * 2 : 256;
				if ((nv = realloc(m->v, cap *
				    sizeof *m->v)) == NULL) {
					free(e.path);
					goto nomem;
				}
				m->v = nv;
			}
			m->v[m->n++] = e;
		} else
			goto bad;
	}
	if (!ended)
		goto bad;
	m->nentries = ne;
	m->ndeleted = nd;
	rc = 0;
	goto out;
bad:
	vg_err_set(err, VG_ERR_PARSE, "archive manifest %s, line %zu: not a "
	    "valid manifest (cut short or altered); the archives that depend "
	    "on it cannot be restored with it (hint: restore as of an earlier "
	    "run)", esc ? esc : "?", lineno);
	goto out;
nomem:
	vg_err_sys(err, "out of memory reading archive manifest");
out:
	if (rc == -1)
		arc_manifest_free(m);
	if (fd != -1)
		close(fd);
	free(buf);
	free(esc);
	return rc;
}
