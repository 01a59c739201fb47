/*
 * engine_dest.c: removing and versioning destination entries, and the
 * list of entries a run created (<stamp>.added).  Layout in
 * docs/architecture.md and versions.h.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/platform.h"
#include "scheduler/engine_int.h"
#include "scheduler/versions.h"

int
eng_open_chain(int root, const char *path, size_t len, bool create)
{
	char		 comp[NAME_MAX + 1];
	const char	*p = path, *end = path + len, *slash;
	size_t		 n;
	int		 fd, next, saved;

	if ((fd = dup(root)) == -1)
		return -1;
	while (p < end) {
		slash = memchr(p, '/', (size_t)(end - p));
		n = slash ? (size_t)(slash - p) : (size_t)(end - p);
		if (n == 0) {
			p++;
			continue;
		}
		if (n > NAME_MAX) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (next == -1 && errno == ENOENT && create) {
			if (mkdirat(fd, comp, 0700) == -1 && errno != EEXIST) {
				saved = errno;
				close(fd);
				errno = saved;
				return -1;
			}
			if (engine_flush_mode == ENGINE_FLUSH_FSYNC)
				(void)fsync(fd);
			next = openat(fd, comp, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
		}
		saved = errno;
		close(fd);
		if (next == -1) {
			errno = saved;
			return -1;
		}
		fd = next;
		p += n;
	}
	return fd;
}

/* Open (creating) the versions folder for the parent of rel. */
static struct eng_dir *
eng_vdir(struct eng_ctx *c, const char *rel, size_t dirlen)
{
	char	*path = NULL;
	size_t	 plen;
	int	 fd;

	plen = strlen(VERSIONS_DIR) + 1 + strlen(c->stamp) + 1 + dirlen;
	if ((path = malloc(plen + 1)) == NULL)
		return NULL;
	snprintf(path, plen + 1, "%s/%s/", VERSIONS_DIR, c->stamp);
	memcpy(path + strlen(path), rel, dirlen);
	plen = strlen(VERSIONS_DIR) + 1 + strlen(c->stamp) + 1 + dirlen;
	path[plen] = '\0';
	if (c->vdir != NULL && c->vdir_len == plen &&
	    memcmp(c->vdir_rel, path, plen) == 0) {
		free(path);
		return c->vdir;
	}
	if ((fd = eng_open_chain(c->dest_fd, path, plen, true)) == -1) {
		free(path);
		return NULL;
	}
	if (c->vdir != NULL) {
		if (c->vdir->touched &&
		    engine_flush_mode == ENGINE_FLUSH_FSYNC)
			(void)fsync(c->vdir->fd);
		eng_dir_unref(c->vdir);
	}
	free(c->vdir_rel);
	c->vdir_rel = path;
	c->vdir_len = plen;
	if ((c->vdir = eng_dir_new(fd)) == NULL) {
		close(fd);
		return NULL;
	}
	return c->vdir;
}

int
eng_version(struct eng_ctx *c, struct eng_dir *d, const char *name,
    const char *rel, size_t rel_len, bool link_only)
{
	struct eng_dir	*v;
	const char	*slash, *base;
	size_t		 dirlen;

	slash = memrchr(rel, '/', rel_len);
	dirlen = slash ? (size_t)(slash - rel) : 0;
	base = slash ? slash + 1 : rel;
	if ((v = eng_vdir(c, rel, dirlen)) == NULL)
		return -1;
	if (link_only) {
		if (linkat(d->fd, name, v->fd, base, 0) == 0) {
			v->touched = true;
			c->res->files_versioned++;
			return 0;
		}
		if (errno == EEXIST)
			return 0;	/* kept once already: see below */
		if (errno == ENOENT)
			return -1;
		/* links refused (EPERM, EMLINK, ...): move it instead */
	}
	if (plat_rename_noreplace(d->fd, name, v->fd, base) == 0) {
		v->touched = true;
		d->touched = true;
		c->res->files_versioned++;
		return 0;
	}
	if (errno != EEXIST)
		return -1;
	/*
	 * This run kept the path already.  That first copy is what the path
	 * held before the run; what it holds now this run placed itself, so
	 * it is not kept again (a rename would lose the first copy).  The
	 * entry still leaves when the caller asked for a move.
	 */
	if (link_only)
		return 0;
	if (unlinkat(d->fd, name, 0) == -1)
		return -1;
	d->touched = true;
	return 0;
}

static size_t
eng_rel_push(struct eng_ctx *c, const char *name)
{
	size_t	 old = c->rel_len, len = strlen(name), need = old + len + 2;
	char	*n;

	if (need > c->rel_cap) {
		if ((n = realloc(c->rel, need * 2)) == NULL)
			fatal("out of memory");
		c->rel = n;
		c->rel_cap = need * 2;
	}
	if (old)
		c->rel[c->rel_len++] = '/';
	memcpy(c->rel + c->rel_len, name, len + 1);
	c->rel_len += len;
	return old;
}

int
eng_remove(struct eng_ctx *c, struct eng_dir *d, const char *name,
    bool counted)
{
	struct stat	 st;
	struct eng_dir	*cd;
	struct dirent	*de;
	DIR		*dp;
	size_t		 old;
	int		 fd, dfd, rc = 0;

	if (fstatat(d->fd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT)
			return 0;
		return eng_dest_error(c, errno, c->rel, c->rel_len,
		    "examining");
	}
	if (counted) {
		c->n_dest++;
		c->n_del++;
	}
	if (S_ISDIR(st.st_mode)) {
		fd = openat(d->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (fd == -1)
			return eng_dest_error(c, errno, c->rel, c->rel_len,
			    "opening the folder");
		if ((cd = eng_dir_new(fd)) == NULL) {
			close(fd);
			eng_fatal(c, ENOMEM, "removing");
			return -1;
		}
		if ((dfd = dup(fd)) == -1 || (dp = fdopendir(dfd)) == NULL) {
			if (dfd != -1)
				close(dfd);
			eng_dir_unref(cd);
			return eng_dest_error(c, errno, c->rel, c->rel_len,
			    "listing the folder");
		}
		while ((de = readdir(dp)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			old = eng_rel_push(c, de->d_name);
			rc = eng_remove(c, cd, de->d_name, counted);
			c->rel_len = old;
			c->rel[old] = '\0';
			if (rc == -1)
				break;
		}
		closedir(dp);
		if (c->pass == ENG_PASS_RUN && cd->touched &&
		    engine_flush_mode == ENGINE_FLUSH_FSYNC)
			(void)fsync(cd->fd);
		eng_dir_unref(cd);
		if (rc == -1)
			return -1;
		eng_plan(c, "delete", c->rel, c->rel_len, -1);
		if (c->pass != ENG_PASS_RUN)
			return 0;
		if (unlinkat(d->fd, name, AT_REMOVEDIR) == -1)
			return eng_dest_error(c, errno, c->rel, c->rel_len,
			    "removing the folder");
	} else {
		if (c->keep)
			eng_plan(c, "version", c->rel, c->rel_len, -1);
		eng_plan(c, "delete", c->rel, c->rel_len, -1);
		if (c->pass != ENG_PASS_RUN)
			return 0;
		if (c->keep) {
			if (eng_version(c, d, name, c->rel, c->rel_len,
			    false) == -1) {
				if (errno == ENOENT)
					return 0;
				return eng_dest_error(c, errno, c->rel,
				    c->rel_len, "moving to the versions area");
			}
		} else if (unlinkat(d->fd, name, 0) == -1) {
			if (errno == ENOENT)
				return 0;
			return eng_dest_error(c, errno, c->rel, c->rel_len,
			    "removing");
		}
	}
	d->touched = true;
	c->res->files_deleted++;
	return 0;
}

void
eng_added(struct eng_ctx *c, const char *rel, size_t rel_len)
{
	int	 vfd, fd;
	FILE	*fp;

	if (!c->keep || c->pass != ENG_PASS_RUN)
		return;
	if (c->added_fp == NULL) {
		if (c->added_failed)
			return;
		vfd = eng_open_chain(c->dest_fd, VERSIONS_DIR,
		    strlen(VERSIONS_DIR), true);
		snprintf(c->added_tmp, sizeof(c->added_tmp), ENG_TMP_PREFIX
		    "%lld-added", (long long)c->o->run_id);
		/* whatever sits at the temp name (a killed run's list, or
		   a planted link) goes; the list is always a new file */
		if (vfd != -1)
			(void)unlinkat(vfd, c->added_tmp, 0);
		fd = vfd == -1 ? -1 : openat(vfd, c->added_tmp, O_WRONLY |
		    O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (vfd != -1)
			close(vfd);
		if (fd == -1 || (fp = fdopen(fd, "w")) == NULL) {
			if (fd != -1)
				close(fd);
			c->added_failed = true;
			eng_warn(c, "cannot write the list of added entries "
			    "in %s: %s", VERSIONS_DIR, strerror(errno));
			return;
		}
		c->added_fp = fp;
	}
	if (fwrite(rel, 1, rel_len, c->added_fp) != rel_len ||
	    fputc('\0', c->added_fp) == EOF)
		c->added_failed = true;
	c->added_count++;
}

int
eng_added_finish(struct eng_ctx *c)
{
	char	 name[VERSIONS_STAMP_MAX + 8];
	int	 vfd, rc = -1, e = EIO;

	if (c->added_fp == NULL)
		return 0;
	if (fflush(c->added_fp) == EOF || fsync(fileno(c->added_fp)) == -1 ||
	    c->added_failed) {
		if (!c->added_failed)
			e = errno;
		goto out;
	}
	snprintf(name, sizeof(name), "%s.added", c->stamp);
	vfd = eng_open_chain(c->dest_fd, VERSIONS_DIR, strlen(VERSIONS_DIR),
	    false);
	if (vfd == -1) {
		e = errno;
		goto out;
	}
	if (renameat(vfd, c->added_tmp, vfd, name) == 0 && fsync(vfd) == 0)
		rc = 0;
	else
		e = errno;
	close(vfd);
out:
	fclose(c->added_fp);
	c->added_fp = NULL;
	if (rc == -1)
		errno = e;	/* the caller names it */
	return rc;
}

void
eng_versions_close(struct eng_ctx *c)
{
	int	 vfd;

	if (c->added_fp != NULL) {
		fclose(c->added_fp);
		c->added_fp = NULL;
		vfd = eng_open_chain(c->dest_fd, VERSIONS_DIR,
		    strlen(VERSIONS_DIR), false);
		if (vfd != -1) {
			(void)unlinkat(vfd, c->added_tmp, 0);
			close(vfd);
		}
	}
	if (c->vdir != NULL) {
		if (c->vdir->touched)
			(void)fsync(c->vdir->fd);
		eng_dir_unref(c->vdir);
		c->vdir = NULL;
	}
	free(c->vdir_rel);
	c->vdir_rel = NULL;
}
