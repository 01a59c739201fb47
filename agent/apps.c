/* apps.c: finding the user's apps that hold a job's files (see apps.h). */
#include <sys/socket.h>
#include <sys/stat.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/apps.h"
#include "common/err.h"
#include "common/log.h"

#define APPS_PF_KTHREAD	0x00200000	/* task flag: a kernel thread */
#define APPS_READ_MAX	(1024 * 1024)	/* cmdline, environ, cgroup */

/* One process of the agent's uid, as /proc shows it. */
struct apps_proc {
	pid_t		 pid, ppid, pgid, sid;
	uint64_t	 start;
	char		 comm[32];
	char		*cgroup;	/* the v2 path ("0::" line), or NULL */
	bool		 excluded;	/* the agent or one of its ancestors */
	bool		 matched;	/* holds a file or is named */
	bool		 named;
	char	       **files;		/* held files (NULL-terminated) */
	size_t		 nfiles, nkept;
	pid_t		 top;		/* the app it lifts to */
};

struct apps_table {
	struct apps_proc *v;
	size_t		 n, cap;
};

/* A Unix socket as the kernel's sock_diag reports it. */
struct apps_sock {
	uint64_t	 ino, peer;
	int		 kind;		/* 0, APPS_SOCK_X11, APPS_SOCK_WAYLAND */
};
#define APPS_SOCK_X11		1
#define APPS_SOCK_WAYLAND	2

struct apps_socks {
	struct apps_sock *v;
	size_t		 n, cap;
	bool		 ok;		/* the dump worked */
};

/* ---- small helpers ---- */

bool
apps_path_under(const char *path, const char *src)
{
	size_t len;

	if (path == NULL || src == NULL || path[0] != '/' || src[0] != '/')
		return false;
	len = strlen(src);
	while (len > 1 && src[len - 1] == '/')
		len--;
	if (len == 1)		/* "/" */
		return true;
	return strncmp(path, src, len) == 0 &&
	    (path[len] == '\0' || path[len] == '/');
}

/* Read a whole (small) file; *lenp gets its length.  NULL on failure. */
static char *
apps_slurp(const char *path, size_t *lenp)
{
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1)
		return NULL;
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= APPS_READ_MAX)
				break;
			cap = cap == 0 ? 4096 : cap * 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				close(fd);
				return NULL;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (buf == NULL && (buf = malloc(1)) == NULL)
		return NULL;
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

/* readlink into a malloc'd string; NULL on failure. */
static char *
apps_readlink(const char *path)
{
	char buf[PATH_MAX + 32];
	ssize_t r;

	if ((r = readlink(path, buf, sizeof buf - 1)) == -1)
		return NULL;
	buf[r] = '\0';
	return strdup(buf);
}

/* Split a NUL-separated buffer into a NULL-terminated vector. */
static char **
apps_split(const char *buf, size_t len)
{
	char **v;
	size_t n = 0, i, k;

	for (i = 0; i < len; i++)
		if (buf[i] == '\0')
			n++;
	if (len > 0 && buf[len - 1] != '\0')
		n++;
	if ((v = calloc(n + 1, sizeof *v)) == NULL)
		return NULL;
	for (i = 0, k = 0; i < len && k < n; k++) {
		if ((v[k] = strndup(buf + i, len - i)) == NULL)
			goto fail;
		i += strlen(v[k]) + 1;
	}
	return v;
fail:
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
	return NULL;
}

static void
apps_strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static const char *
apps_basename(const char *p)
{
	const char *s;

	if (p == NULL)
		return "";
	s = strrchr(p, '/');
	return s != NULL ? s + 1 : p;
}

/* ---- /proc/PID/stat ---- */

/* Parse stat: 0 or -1 (gone, kernel thread, zombie). */
static int
apps_read_stat(pid_t pid, struct apps_proc *p)
{
	char path[64], buf[2048], state, *rp;
	unsigned long long start;
	unsigned long flags;
	int ppid, pgid, sid, fd;
	ssize_t r;
	size_t cl;
	char *lp;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = '\0';
	/* comm may hold spaces and parentheses: it ends at the last ')'. */
	if ((lp = strchr(buf, '(')) == NULL || (rp = strrchr(buf, ')')) ==
	    NULL || rp < lp)
		return -1;
	cl = (size_t)(rp - lp - 1);
	if (cl >= sizeof p->comm)
		cl = sizeof p->comm - 1;
	memcpy(p->comm, lp + 1, cl);
	p->comm[cl] = '\0';
	/* state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	 * cmajflt utime stime cutime cstime priority nice num_threads
	 * itrealvalue starttime */
	/* the kernel writes these numbers, each in range of its type:
	 * NOLINTNEXTLINE(cert-err34-c) */
	if (sscanf(rp + 1, " %c %d %d %d %*d %*d %lu %*u %*u %*u %*u %*u "
	    "%*u %*d %*d %*d %*d %*d %*d %llu", &state, &ppid, &pgid, &sid,
	    &flags, &start) != 6)
		return -1;
	if ((flags & APPS_PF_KTHREAD) || state == 'Z' || state == 'X' ||
	    state == 'x')
		return -1;
	p->pid = pid;
	p->ppid = ppid;
	p->pgid = pgid;
	p->sid = sid;
	p->start = start;
	return 0;
}

uint64_t
apps_start_time(pid_t pid)
{
	struct apps_proc p;

	memset(&p, 0, sizeof p);
	if (apps_read_stat(pid, &p) == -1)
		return 0;
	return p.start;
}

/* Real uid from /proc/PID/status; -1 when unreadable. */
static long long
apps_read_uid(pid_t pid)
{
	char path[64], *buf, *l;
	long long uid = -1;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((buf = apps_slurp(path, NULL)) == NULL)
		return -1;
	if ((l = strstr(buf, "\nUid:")) != NULL)
		uid = strtoll(l + 5, NULL, 10);
	free(buf);
	return uid;
}

/* The cgroup v2 path ("0::/..."), or NULL. */
static char *
apps_read_cgroup(pid_t pid)
{
	char path[64], *buf, *l, *e, *r = NULL;

	snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
	if ((buf = apps_slurp(path, NULL)) == NULL)
		return NULL;
	for (l = buf; l != NULL && *l != '\0'; l = e != NULL ? e + 1 : NULL) {
		e = strchr(l, '\n');
		if (e != NULL)
			*e = '\0';
		if (strncmp(l, "0::", 3) == 0) {
			r = strdup(l + 3);
			break;
		}
	}
	free(buf);
	return r;
}

/*
 * A cgroup that holds one app: the leaf is a .scope or .service, but not a
 * login session's scope, init.scope or a user manager (user@UID.service).
 */
static bool
apps_cgroup_dedicated(const char *cg)
{
	const char *leaf;
	size_t len;

	if (cg == NULL)
		return false;
	leaf = apps_basename(cg);
	len = strlen(leaf);
	if (strncmp(leaf, "session-", 8) == 0 || strcmp(leaf, "init.scope") ==
	    0 || strncmp(leaf, "user@", 5) == 0)
		return false;
	return (len > 6 && strcmp(leaf + len - 6, ".scope") == 0) ||
	    (len > 8 && strcmp(leaf + len - 8, ".service") == 0);
}

/* ---- the process table ---- */

static struct apps_proc *
apps_lookup(struct apps_table *t, pid_t pid)
{
	size_t lo = 0, hi = t->n, mid;

	while (lo < hi) {	/* v is sorted by pid */
		mid = (lo + hi) / 2;
		if (t->v[mid].pid == pid)
			return &t->v[mid];
		if (t->v[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
apps_pid_cmp(const void *a, const void *b)
{
	const struct apps_proc *x = a, *y = b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static void
apps_table_clear(struct apps_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->v[i].cgroup);
		apps_strv_free(t->v[i].files);
	}
	free(t->v);
	memset(t, 0, sizeof *t);
}

static int
apps_table_load(struct apps_table *t, uid_t uid, struct vg_err *err)
{
	struct apps_proc p, *nv;
	struct dirent *de;
	DIR *d;
	char *end;
	long pid;

	if ((d = opendir("/proc")) == NULL) {
		vg_err_sys(err, "cannot list /proc: the agent finds apps "
		    "there; is /proc mounted?");
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = strtol(de->d_name, &end, 10);
		if (*end != '\0' || pid <= 0 || pid > INT_MAX)
			continue;
		memset(&p, 0, sizeof p);
		if (apps_read_stat((pid_t)pid, &p) == -1)
			continue;
		if (apps_read_uid((pid_t)pid) != (long long)uid)
			continue;
		if (t->n == t->cap) {
			t->cap = t->cap == 0 ? 256 : t->cap * 2;
			if ((nv = realloc(t->v, t->cap * sizeof *nv)) ==
			    NULL) {
				closedir(d);
				vg_err_sys(err, "process table");
				return -1;
			}
			t->v = nv;
		}
		p.cgroup = apps_read_cgroup((pid_t)pid);
		p.top = p.pid;
		t->v[t->n++] = p;
	}
	closedir(d);
	if (t->n > 0)
		qsort(t->v, t->n, sizeof *t->v, apps_pid_cmp);
	return 0;
}

/* Mark the agent and its ancestors (whatever their uid). */
static void
apps_mark_self(struct apps_table *t, pid_t self)
{
	struct apps_proc p, *e;
	pid_t pid = self;
	int guard = 0;

	while (pid > 1 && guard++ < 4096) {
		if ((e = apps_lookup(t, pid)) != NULL)
			e->excluded = true;
		memset(&p, 0, sizeof p);
		if (apps_read_stat(pid, &p) == -1)
			break;
		pid = p.ppid;
	}
}

/* ---- what a process holds ---- */

static int
apps_add_file(struct apps_proc *p, const char *path)
{
	char **nv;
	size_t i;

	for (i = 0; i < p->nkept; i++)
		if (strcmp(p->files[i], path) == 0)
			return 0;
	p->nfiles++;
	if (p->nkept >= APPS_FILES_MAX)
		return 0;
	if ((nv = realloc(p->files, (p->nkept + 2) * sizeof *nv)) == NULL)
		return -1;
	p->files = nv;
	if ((nv[p->nkept] = strdup(path)) == NULL)
		return -1;
	nv[++p->nkept] = NULL;
	return 0;
}

static bool
apps_under_any(const char *path, const struct apps_query *q,
    char *const *canon)
{
	size_t i;

	for (i = 0; i < q->nsources; i++)
		if (apps_path_under(path, q->sources[i]) ||
		    (canon[i] != NULL && apps_path_under(path, canon[i])))
			return true;
	return false;
}

/* Open fds that are regular files under the sources. */
static int
apps_scan_fds(struct apps_proc *p, const struct apps_query *q,
    char *const *canon)
{
	char dpath[64], fpath[352], *target;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = 0;

	snprintf(dpath, sizeof dpath, "/proc/%d/fd", (int)p->pid);
	if ((d = opendir(dpath)) == NULL)
		return 0;	/* gone, or not ours to read */
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(fpath, sizeof fpath, "%s/%s", dpath, de->d_name);
		if ((target = apps_readlink(fpath)) == NULL)
			continue;
		if (target[0] == '/' && apps_under_any(target, q, canon) &&
		    stat(fpath, &st) == 0 && S_ISREG(st.st_mode) &&
		    (strlen(target) < 10 || strcmp(target + strlen(target) -
		    10, " (deleted)") != 0)) {
			if (apps_add_file(p, target) == -1)
				rc = -1;
		}
		free(target);
	}
	closedir(d);
	return rc;
}

/* Non-executable file mappings under the sources (libraries and programs
 * are mapped executable and say nothing about the user's data). */
static int
apps_scan_maps(struct apps_proc *p, const struct apps_query *q,
    char *const *canon)
{
	char path[64], *buf, *l, *e, *f, perms[8];
	size_t len;
	int rc = 0, n;

	snprintf(path, sizeof path, "/proc/%d/maps", (int)p->pid);
	if ((buf = apps_slurp(path, &len)) == NULL)
		return 0;
	for (l = buf; l < buf + len && *l != '\0'; l = e + 1) {
		if ((e = strchr(l, '\n')) == NULL)
			e = l + strlen(l);
		*e = '\0';
		/* addr perms offset dev inode path */
		n = 0;
		if (sscanf(l, "%*s %7s %*s %*s %*s %n", perms, &n) < 1 ||
		    n == 0)
			continue;
		f = l + n;
		if (f[0] != '/' || strchr(perms, 'x') != NULL)
			continue;
		if (strlen(f) >= 10 && strcmp(f + strlen(f) - 10,
		    " (deleted)") == 0)
			continue;
		if (apps_under_any(f, q, canon) && apps_add_file(p, f) == -1)
			rc = -1;
		if (e >= buf + len)
			break;
	}
	free(buf);
	return rc;
}

static bool
apps_name_is(const char *have, const char *want)
{
	size_t wl;

	if (have == NULL || *have == '\0')
		return false;
	if (strcmp(have, want) == 0)
		return true;
	/* comm is cut to 15 bytes */
	wl = strlen(want);
	return wl > 15 && strlen(have) == 15 && strncmp(have, want, 15) == 0;
}

static bool
apps_is_named(const struct apps_proc *p, const struct apps_query *q)
{
	char path[64], *exe = NULL, *cmd = NULL, *sp;
	const char *eb, *ab = NULL;
	bool hit = false;
	size_t i, len;

	if (q->nnames == 0)
		return false;
	snprintf(path, sizeof path, "/proc/%d/exe", (int)p->pid);
	exe = apps_readlink(path);
	if (exe != NULL && (sp = strstr(exe, " (deleted)")) != NULL &&
	    sp[10] == '\0')
		*sp = '\0';
	eb = apps_basename(exe);
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)p->pid);
	if ((cmd = apps_slurp(path, &len)) != NULL && len > 0)
		ab = apps_basename(cmd);
	for (i = 0; i < q->nnames && !hit; i++) {
		if (q->names[i] == NULL || q->names[i][0] == '\0')
			continue;
		hit = strcmp(p->comm, q->names[i]) == 0 ||
		    apps_name_is(p->comm, q->names[i]) ||
		    (exe != NULL && strcmp(eb, q->names[i]) == 0) ||
		    (ab != NULL && strcmp(ab, q->names[i]) == 0);
	}
	free(exe);
	free(cmd);
	return hit;
}

/* ---- lifting ---- */

/* Command interpreters: a process running one of these is a shell (see
 * apps.h), never an app that lifting may end at. */
static const char *const apps_shells[] = {
	"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "ash", "csh",
	"tcsh", "busybox", NULL
};

static bool
apps_shell_name(const char *name)
{
	size_t i;

	if (name == NULL)
		return false;
	for (i = 0; apps_shells[i] != NULL; i++)
		if (strcmp(name, apps_shells[i]) == 0)
			return true;
	return false;
}

/* A shell: a login shell (argv[0] starts with '-'), or a process whose
 * executable, argv[0] or comm is a known shell.  A subshell (a fork of a
 * shell without exec) has its shell's executable, so it counts too. */
static bool
apps_is_shell(const struct apps_proc *p)
{
	char path[64], *exe = NULL, *cmd = NULL, *sp;
	size_t len;
	bool shell;

	shell = apps_shell_name(p->comm);
	snprintf(path, sizeof path, "/proc/%d/exe", (int)p->pid);
	if (!shell && (exe = apps_readlink(path)) != NULL) {
		if ((sp = strstr(exe, " (deleted)")) != NULL && sp[10] == '\0')
			*sp = '\0';
		shell = apps_shell_name(apps_basename(exe));
	}
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)p->pid);
	if (!shell && (cmd = apps_slurp(path, &len)) != NULL && len > 0)
		shell = cmd[0] == '-' || apps_shell_name(apps_basename(cmd));
	free(exe);
	free(cmd);
	return shell;
}

static bool
apps_lift_ok(struct apps_table *t, const struct apps_proc *p,
    const struct apps_proc *pp)
{
	(void)t;
	if (pp == NULL || pp->excluded || pp->pid <= 1 ||
	    strcmp(pp->comm, "systemd") == 0)
		return false;
	if (p->pid == p->sid)		/* a session leader is the top */
		return false;
	if (p->pgid != pp->pgid && !(apps_cgroup_dedicated(p->cgroup) &&
	    pp->cgroup != NULL && strcmp(p->cgroup, pp->cgroup) == 0 &&
	    pp->pid != pp->sid))
		return false;
	/* Never end at a shell: it leads a job (a subshell of an `a && b &`
	 * list, `sh -c 'app & wait'`), and closing it ends the job rather
	 * than an app that can be reopened. */
	return !apps_is_shell(pp);
}

static pid_t
apps_lift(struct apps_table *t, struct apps_proc *p)
{
	struct apps_proc *cur = p, *pp;
	int guard = 0;

	while (guard++ < 4096) {
		pp = apps_lookup(t, cur->ppid);
		if (!apps_lift_ok(t, cur, pp))
			break;
		cur = pp;
	}
	return cur->pid;
}

/* ---- display connections (sock_diag) ---- */

static int
apps_sock_kind(const char *name, size_t len)
{
	const char *b;
	char buf[256];
	size_t i;

	if (len == 0)
		return 0;
	if (name[0] == '\0') {	/* abstract: "@/tmp/.X11-unix/X0" */
		name++;
		len--;
	}
	if (len >= sizeof buf)
		return 0;
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (strncmp(buf, "/tmp/.X11-unix/X", 16) == 0 && buf[16] != '\0') {
		for (i = 16; buf[i] != '\0'; i++)
			if (!isdigit((unsigned char)buf[i]))
				return 0;
		return APPS_SOCK_X11;
	}
	b = apps_basename(buf);
	if (strncmp(b, "wayland-", 8) == 0 && b[8] != '\0') {
		for (i = 8; b[i] != '\0'; i++)
			if (!isdigit((unsigned char)b[i]))
				return 0;
		return APPS_SOCK_WAYLAND;
	}
	return 0;
}

static int
apps_sock_cmp(const void *a, const void *b)
{
	const struct apps_sock *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static const struct apps_sock *
apps_sock_find(const struct apps_socks *s, uint64_t ino)
{
	struct apps_sock key;

	if (s->n == 0)
		return NULL;
	memset(&key, 0, sizeof key);
	key.ino = ino;
	return bsearch(&key, s->v, s->n, sizeof *s->v, apps_sock_cmp);
}

/* Dump every Unix socket with its name and peer. */
static void
apps_socks_load(struct apps_socks *s)
{
	struct {
		struct nlmsghdr		nlh;
		struct unix_diag_req	req;
	} rq;
	struct sockaddr_nl sa;
	struct apps_sock *nv, e;
	struct unix_diag_msg *m;
	struct nlmsghdr *h;
	struct rtattr *a;
	long buf[8192 / sizeof(long)];
	ssize_t r;
	int fd, alen, done = 0;

	memset(s, 0, sizeof *s);
	if ((fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
	    NETLINK_SOCK_DIAG)) == -1)
		return;
	memset(&sa, 0, sizeof sa);
	sa.nl_family = AF_NETLINK;
	memset(&rq, 0, sizeof rq);
	rq.nlh.nlmsg_len = sizeof rq;
	rq.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	rq.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	rq.req.sdiag_family = AF_UNIX;
	rq.req.udiag_states = (uint32_t)-1;
	rq.req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER;
	if (sendto(fd, &rq, sizeof rq, 0, (struct sockaddr *)&sa,
	    sizeof sa) == -1)
		goto out;
	while (!done) {
		r = recv(fd, buf, sizeof buf, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			goto out;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)r);
		    h = NLMSG_NEXT(h, r)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR)
				goto out;
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof *m))
				continue;
			m = NLMSG_DATA(h);
			memset(&e, 0, sizeof e);
			e.ino = m->udiag_ino;
			alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
			for (a = (struct rtattr *)(m + 1); RTA_OK(a, alen);
			    a = RTA_NEXT(a, alen)) {
				if (a->rta_type == UNIX_DIAG_NAME)
					e.kind = apps_sock_kind(RTA_DATA(a),
					    RTA_PAYLOAD(a));
				else if (a->rta_type == UNIX_DIAG_PEER &&
				    RTA_PAYLOAD(a) >= sizeof(uint32_t))
					e.peer = *(uint32_t *)RTA_DATA(a);
			}
			if (s->n == s->cap) {
				s->cap = s->cap == 0 ? 512 : s->cap * 2;
				if ((nv = realloc(s->v, s->cap * sizeof *nv))
				    == NULL)
					goto out;
				s->v = nv;
			}
			s->v[s->n++] = e;
		}
	}
	if (s->n > 0)	/* qsort's base must not be NULL, even for 0 */
		qsort(s->v, s->n, sizeof *s->v, apps_sock_cmp);
	s->ok = true;
out:
	close(fd);
	if (!s->ok) {
		free(s->v);
		memset(s, 0, sizeof *s);
	}
}

/*
 * Which display servers pid talks to: each socket fd whose peer is bound
 * to an X11 or Wayland name.  Without sock_diag, a process with Unix
 * sockets and DISPLAY or WAYLAND_DISPLAY in its environment is taken as
 * connected (env_x11/env_wl).
 */
static void
apps_display_of(const struct apps_socks *s, pid_t pid, bool env_x11,
    bool env_wl, bool *x11, bool *wl)
{
	char dpath[64], fpath[352], *target;
	const struct apps_sock *me, *peer;
	unsigned long long ino;
	struct dirent *de;
	DIR *d;

	snprintf(dpath, sizeof dpath, "/proc/%d/fd", (int)pid);
	if ((d = opendir(dpath)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(fpath, sizeof fpath, "%s/%s", dpath, de->d_name);
		if ((target = apps_readlink(fpath)) == NULL)
			continue;
		/* a link the kernel writes: an inode number fits:
		 * NOLINTNEXTLINE(cert-err34-c) */
		if (sscanf(target, "socket:[%llu]", &ino) == 1) {
			if (!s->ok) {
				*x11 = *x11 || env_x11;
				*wl = *wl || env_wl;
			} else if ((me = apps_sock_find(s, ino)) != NULL &&
			    me->peer != 0 && (peer = apps_sock_find(s,
			    me->peer)) != NULL) {
				if (peer->kind == APPS_SOCK_X11)
					*x11 = true;
				else if (peer->kind == APPS_SOCK_WAYLAND)
					*wl = true;
			}
		}
		free(target);
	}
	closedir(d);
}

/* ---- building the list ---- */

void
apps_app_clear(struct vg_app *a)
{
	if (a == NULL)
		return;
	free(a->name);
	free(a->exe);
	apps_strv_free(a->argv);
	free(a->cwd);
	apps_strv_free(a->env);
	free(a->display);
	apps_strv_free(a->files);
	free(a->pids);
	free(a->starts);
	memset(a, 0, sizeof *a);
}

void
apps_list_free(struct vg_applist *l)
{
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < l->n; i++)
		apps_app_clear(&l->v[i]);
	free(l->v);
	free(l);
}

int
apps_list_take(struct vg_applist *l, struct vg_app *a)
{
	struct vg_app *nv;

	if ((nv = realloc(l->v, (l->n + 1) * sizeof *nv)) == NULL)
		return -1;
	l->v = nv;
	l->v[l->n++] = *a;
	memset(a, 0, sizeof *a);
	return 0;
}

static const char *
apps_env_get(char **env, const char *key)
{
	size_t kl = strlen(key), i;

	for (i = 0; env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
			return env[i] + kl + 1;
	return NULL;
}

/* Fill the app whose top is p; -1 when it vanished or memory ran out. */
static int
apps_describe(struct vg_app *a, struct apps_table *t, struct apps_proc *top,
    const struct apps_socks *socks)
{
	char path[64], *buf, *sp;
	const char *v;
	bool ex, ew;
	size_t len, i, j;
	pid_t *np;
	uint64_t *ns;

	a->pid = top->pid;
	a->start = top->start;
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)top->pid);
	if ((buf = apps_slurp(path, &len)) == NULL || len == 0) {
		free(buf);
		return -1;	/* gone, or a zombie by now */
	}
	a->argv = apps_split(buf, len);
	free(buf);
	if (a->argv == NULL || a->argv[0] == NULL)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/environ", (int)top->pid);
	if ((buf = apps_slurp(path, &len)) != NULL) {
		a->env = apps_split(buf, len);
		free(buf);
	}
	if (a->env == NULL && (a->env = calloc(1, sizeof *a->env)) == NULL)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/cwd", (int)top->pid);
	a->cwd = apps_readlink(path);
	snprintf(path, sizeof path, "/proc/%d/exe", (int)top->pid);
	if ((a->exe = apps_readlink(path)) != NULL &&
	    (sp = strstr(a->exe, " (deleted)")) != NULL && sp[10] == '\0')
		*sp = '\0';
	if ((v = apps_env_get(a->env, "DISPLAY")) != NULL &&
	    (a->display = strdup(v)) == NULL)
		return -1;
	if (a->argv[0][0] != '\0')
		a->name = strdup(apps_basename(a->argv[0]));
	else if (a->exe != NULL)
		a->name = strdup(apps_basename(a->exe));
	else
		a->name = strdup(top->comm);
	if (a->name == NULL)
		return -1;
	if ((a->files = calloc(1, sizeof *a->files)) == NULL)
		return -1;
	ex = apps_env_get(a->env, "DISPLAY") != NULL;
	ew = apps_env_get(a->env, "WAYLAND_DISPLAY") != NULL;
	/* Every process of the app, top first. */
	for (i = 0; i < t->n; i++) {
		struct apps_proc *p = &t->v[i];

		if (p->excluded || p->top != top->pid)
			continue;
		np = realloc(a->pids, (a->npids + 1) * sizeof *np);
		if (np == NULL)
			return -1;
		a->pids = np;
		ns = realloc(a->starts, (a->npids + 1) * sizeof *ns);
		if (ns == NULL)
			return -1;
		a->starts = ns;
		if (p == top && a->npids > 0) {
			memmove(a->pids + 1, a->pids, a->npids * sizeof *np);
			memmove(a->starts + 1, a->starts, a->npids *
			    sizeof *ns);
			a->pids[0] = p->pid;
			a->starts[0] = p->start;
		} else {
			a->pids[a->npids] = p->pid;
			a->starts[a->npids] = p->start;
		}
		a->npids++;
		a->named = a->named || p->named;
		for (j = 0; j < p->nkept; j++) {
			char **nf;
			size_t k;
			bool dup = false;

			for (k = 0; a->files[k] != NULL && !dup; k++)
				dup = strcmp(a->files[k], p->files[j]) == 0;
			if (dup)
				continue;
			if (k >= APPS_FILES_MAX) {
				a->nfiles++;
				continue;
			}
			if ((nf = realloc(a->files, (k + 2) * sizeof *nf)) ==
			    NULL)
				return -1;
			a->files = nf;
			if ((nf[k] = strdup(p->files[j])) == NULL)
				return -1;
			nf[k + 1] = NULL;
			a->nfiles++;
		}
		if (p->nfiles > p->nkept)
			a->nfiles += p->nfiles - p->nkept;
		apps_display_of(socks, p->pid, ex, ew, &a->x11, &a->wayland);
	}
	return 0;
}

static int
apps_app_cmp(const void *a, const void *b)
{
	const struct vg_app *x = a, *y = b;

	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

int
apps_find(const struct apps_query *q, struct vg_applist **out,
    struct vg_err *err)
{
	struct apps_table t;
	struct apps_socks socks;
	struct vg_applist *l = NULL;
	struct vg_app a;
	char **canon = NULL;
	bool socks_tried = false;
	size_t i, j;
	int rc = -1;

	*out = NULL;
	memset(&t, 0, sizeof t);
	memset(&socks, 0, sizeof socks);
	memset(&a, 0, sizeof a);
	if ((l = calloc(1, sizeof *l)) == NULL ||
	    (canon = calloc(q->nsources + 1, sizeof *canon)) == NULL) {
		vg_err_sys(err, "apps");
		goto out;
	}
	/* A source reached through a symlink shows in /proc by its real
	 * path: match both. */
	for (i = 0; i < q->nsources; i++)
		canon[i] = realpath(q->sources[i], NULL);
	if (apps_table_load(&t, q->uid, err) == -1)
		goto out;
	apps_mark_self(&t, q->self > 0 ? q->self : getpid());
	for (i = 0; i < t.n; i++) {
		struct apps_proc *p = &t.v[i];

		if (p->excluded)
			continue;
		if ((q->nsources > 0 && (apps_scan_fds(p, q, canon) == -1 ||
		    apps_scan_maps(p, q, canon) == -1))) {
			vg_err_sys(err, "held files of pid %d", (int)p->pid);
			goto out;
		}
		p->named = apps_is_named(p, q);
		p->matched = p->nfiles > 0 || p->named;
	}
	for (i = 0; i < t.n; i++)
		if (!t.v[i].excluded)
			t.v[i].top = apps_lift(&t, &t.v[i]);
	for (i = 0; i < t.n; i++) {
		struct apps_proc *top;
		bool seen = false;

		if (t.v[i].excluded || !t.v[i].matched)
			continue;
		if ((top = apps_lookup(&t, t.v[i].top)) == NULL)
			continue;
		for (j = 0; j < l->n && !seen; j++)
			seen = l->v[j].pid == top->pid;
		if (seen)
			continue;
		if (!socks_tried) {
			apps_socks_load(&socks);
			socks_tried = true;
		}
		if (apps_describe(&a, &t, top, &socks) == -1) {
			apps_app_clear(&a);	/* vanished: skip it */
			continue;
		}
		if (apps_list_take(l, &a) == -1) {
			vg_err_sys(err, "apps");
			goto out;
		}
	}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof *l->v, apps_app_cmp);
	*out = l;
	l = NULL;
	rc = 0;
out:
	apps_app_clear(&a);
	apps_list_free(l);
	for (i = 0; canon != NULL && i < q->nsources; i++)
		free(canon[i]);
	free(canon);
	free(socks.v);
	apps_table_clear(&t);
	return rc;
}
