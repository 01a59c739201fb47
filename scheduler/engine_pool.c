/*
 * engine_pool.c: the copier threads (docs/architecture.md, "The walk and
 * the copiers").
 *
 * The walk (the engine's own thread) lists folders, compares, opens each
 * file to copy and checks it is the one listed; a copier thread makes the
 * temp file, copies the content and the metadata (eng_copy_body()).  The
 * walk takes the finished copies back and adds them to the durable batch
 * (engine_copy.c), so the batch, the catalogue, the versions area and the
 * run record stay single-threaded.  What a copier reports is recorded in
 * its task and replayed on the walk's thread in the order it happened.
 *
 * Files that need the walk's state stay on the walk's thread: hard links
 * (their group's first copy must be placed before a later name links to
 * it), SQLite databases and their companions, reflink staging, and files
 * apps refused to close.
 *
 * Ordering: a folder's own metadata item (mode, times) is held back while
 * copies of its files are out (eng_pool_dir_meta()), since a rename after
 * it would move the folder's mtime.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/platform.h"
#include "scheduler/engine_int.h"

/* Copies out at a time, per thread: enough to keep the copiers busy while
 * the walk lists a folder, few enough to bound open files. */
#define ENG_POOL_DEPTH		32
#define ENG_POOL_MAX_THREADS	8

struct eng_rec {
	struct eng_rec	*next;
	int		 kind;
	int		 e;
	int		 vcap;
	bool		 captured;
	char		*rel;
	size_t		 rel_len;
	char		*tag;
	char		*text;
};

struct eng_task {
	struct eng_task	*next;
	struct eng_copy_job j;
	struct eng_item	 it;
	bool		 present;
	int		 rc;
	char		*rel;		/* j.rel points here */
	struct eng_rec	*recs, **recs_tail;
	bool		 rec_oom;	/* a record was lost to memory */
};

struct eng_copier {
	struct eng_pool	*p;
	pthread_t	 th;
	unsigned char	*buf;		/* ENG_BUF bytes */
};

struct eng_pool {
	struct eng_ctx	*c;
	pthread_mutex_t	 mu;
	pthread_cond_t	 work;		/* todo not empty, or quit */
	pthread_cond_t	 done_cv;	/* ndone reached want */
	struct eng_task	*todo, **todo_tail;
	struct eng_task	*done, **done_tail;
	unsigned	 ndone;		/* on the done list; written under mu,
					   read without it (atomics) */
	unsigned	 want;		/* the walk waits for this many done */
	bool		 waiting;
	unsigned	 out;		/* submitted, not collected */
	unsigned	 depth;
	bool		 quit;
	unsigned	 nthreads;	/* running */
	struct eng_copier copiers[ENG_POOL_MAX_THREADS];
};

static __thread struct eng_task *eng_pool_cur;

bool
eng_pool_recording(void)
{
	return eng_pool_cur != NULL;
}

void
eng_pool_record(int kind, const char *rel, size_t rel_len, const char *tag,
    bool captured, int vcap, int e, const char *text)
{
	struct eng_task	*t = eng_pool_cur;
	struct eng_rec	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto oom;
	r->kind = kind;
	r->e = e;
	r->vcap = vcap;
	r->captured = captured;
	if ((rel != NULL && (r->rel = strndup(rel, rel_len)) == NULL) ||
	    (tag != NULL && (r->tag = strdup(tag)) == NULL) ||
	    (text != NULL && (r->text = strdup(text)) == NULL)) {
		free(r->rel);
		free(r->tag);
		free(r);
		goto oom;
	}
	r->rel_len = rel_len;
	*t->recs_tail = r;
	t->recs_tail = &r->next;
	return;
oom:
	t->rec_oom = true;
}

/* Replay what task t's copy reported, then free the records. */
static void
eng_pool_replay(struct eng_ctx *c, struct eng_task *t)
{
	const struct engine_source *saved = c->src;
	struct eng_rec	*r, *n;

	c->src = t->j.src;
	for (r = t->recs; r != NULL; r = n) {
		n = r->next;
		switch (r->kind) {
		case ENG_REC_PROBLEM:
			eng_problem(c, r->rel, r->rel_len, r->tag, r->captured,
			    "%s", r->text ? r->text : "");
			break;
		case ENG_REC_NOTE:
			eng_note(c, r->rel, r->rel_len, r->tag,
			    (enum vg_capture)r->vcap, "%s",
			    r->text ? r->text : "");
			break;
		case ENG_REC_WARN:
			eng_warn(c, "%s", r->text ? r->text : "");
			break;
		case ENG_REC_FATAL:
			eng_fatal(c, r->e, "%s", r->text ? r->text : "");
			break;
		case ENG_REC_DESTERR:
			(void)eng_dest_error(c, r->e, r->rel, r->rel_len,
			    r->tag);
			break;
		}
		free(r->rel);
		free(r->tag);
		free(r->text);
		free(r);
	}
	t->recs = NULL;
	t->recs_tail = &t->recs;
	if (t->rec_oom)
		eng_problem(c, t->rel, t->j.rel_len, "unreadable", false,
		    "a problem of this file was lost: out of memory");
	c->src = saved;
}

static void *
eng_pool_main(void *arg)
{
	struct eng_copier *w = arg;
	struct eng_pool	*p = w->p;
	struct eng_task	*t;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->todo == NULL && !p->quit)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->todo == NULL)
			break;
		t = p->todo;
		if ((p->todo = t->next) == NULL)
			p->todo_tail = &p->todo;
		pthread_mutex_unlock(&p->mu);

		t->next = NULL;
		t->j.buf = w->buf;
		eng_pool_cur = t;
		t->rc = eng_copy_body(p->c, &t->j, &t->it);
		eng_pool_cur = NULL;

		pthread_mutex_lock(&p->mu);
		*p->done_tail = t;
		p->done_tail = &t->next;
		if (__atomic_add_fetch(&p->ndone, 1, __ATOMIC_RELEASE) >=
		    p->want && p->waiting)
			pthread_cond_signal(&p->done_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

unsigned
eng_pool_threads(void)
{
	const char	*s = getenv("VIGIL_COPY_THREADS");
	char		*end;
	unsigned long	 n;
	long		 cpus;

	if (s != NULL && *s != '\0') {
		errno = 0;
		n = strtoul(s, &end, 10);
		if (errno == 0 && *end == '\0' && *s != '-')
			return n > ENG_POOL_MAX_THREADS ?
			    ENG_POOL_MAX_THREADS : (unsigned)n;
		log_warnx("VIGIL_COPY_THREADS=%s is not a number of threads "
		    "(0 to %d); using one per CPU", s, ENG_POOL_MAX_THREADS);
	}
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus < 1)
		cpus = 1;
	return cpus > ENG_POOL_MAX_THREADS ? ENG_POOL_MAX_THREADS :
	    (unsigned)cpus;
}

int
eng_pool_start(struct eng_ctx *c, unsigned nthreads)
{
	struct eng_pool	*p;
	struct eng_copier *w;
	unsigned	 i;
	int		 e = ENOMEM;

	if (nthreads == 0)
		return 0;
	if (nthreads > ENG_POOL_MAX_THREADS)
		nthreads = ENG_POOL_MAX_THREADS;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	p->c = c;
	p->todo_tail = &p->todo;
	p->done_tail = &p->done;
	p->depth = ENG_POOL_DEPTH * nthreads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	for (i = 0; i < nthreads; i++) {
		w = &p->copiers[p->nthreads];
		w->p = p;
		if ((w->buf = malloc(ENG_BUF)) == NULL)
			break;
		if ((e = pthread_create(&w->th, NULL, eng_pool_main, w)) !=
		    0) {
			free(w->buf);
			w->buf = NULL;
			break;
		}
		p->nthreads++;
	}
	if (p->nthreads == 0)
		goto fail;
	c->pool = p;
	return 0;
fail:
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done_cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	errno = e;
	return -1;
}

bool
eng_pool_takes(struct eng_ctx *c, const struct stat *st, bool fallback,
    bool sqlite_companions)
{
	if (c->pool == NULL || c->pass != ENG_PASS_RUN || c->stop != ENG_GO)
		return false;
	if (st->st_nlink > 1 || fallback || sqlite_companions)
		return false;
	return eng_method(c, c->src, false) != VG_CAP_REFLINK;
}

static void
eng_task_free(struct eng_task *t)
{
	struct eng_rec	*r, *n;

	for (r = t->recs; r != NULL; r = n) {
		n = r->next;
		free(r->rel);
		free(r->tag);
		free(r->text);
		free(r);
	}
	if (t->j.fd != -1)
		close(t->j.fd);
	eng_item_free(&t->it);
	free(t->rel);
	free(t);
}

/* The folder's last copy is back: its metadata item may go now. */
static void
eng_pool_release_dir(struct eng_ctx *c, struct eng_dir *d)
{
	struct eng_item	*m;

	if (--d->pending > 0 || (m = d->deferred_meta) == NULL)
		return;
	d->deferred_meta = NULL;
	if (c->stop == ENG_GO)
		(void)eng_batch_add(c, m);
	else
		eng_item_free(m);
	free(m);
}

/* A finished copy, on the walk's thread. */
static void
eng_pool_finish(struct eng_ctx *c, struct eng_task *t)
{
	struct eng_dir	*d = t->it.dir;

	eng_pool_replay(c, t);
	if (t->rc == 0 && c->stop == ENG_GO) {
		t->it.version = t->present && c->keep;
		t->it.has_cat = t->it.has_cat && c->cat != NULL;
		t->it.rel = t->rel;
		t->it.rel_len = t->j.rel_len;
		t->it.name_off = t->j.rel_len - strlen(t->j.name);
		t->it.ce.name = t->it.rel + t->it.name_off;
		t->it.ce.name_len = t->j.rel_len - t->it.name_off;
		t->rel = NULL;
		if (!t->present)
			eng_added(c, t->it.rel, t->it.rel_len);
		/* the batch takes the item and its folder reference; the
		   folder stays referenced by the walk or the batch */
		d = eng_dir_ref(d);
		(void)eng_batch_add(c, &t->it);
	} else {
		if (t->rc == 0)		/* stopping: the copy is not kept */
			(void)unlinkat(d->fd, t->it.tmp, 0);
		d = eng_dir_ref(d);
	}
	eng_task_free(t);
	eng_pool_release_dir(c, d);
	eng_dir_unref(d);
}

void
eng_pool_collect(struct eng_ctx *c, enum eng_collect how)
{
	struct eng_pool	*p = c->pool;
	struct eng_task	*t, *n;
	unsigned	 left;

	if (p == NULL)
		return;
	/* nothing back yet: no lock (this runs after every entry) */
	if (how == ENG_COLLECT_READY &&
	    __atomic_load_n(&p->ndone, __ATOMIC_ACQUIRE) == 0)
		return;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		if (how != ENG_COLLECT_READY) {
			p->want = how == ENG_COLLECT_ALL ? p->out :
			    p->depth / 4;
			if (p->want > p->out)
				p->want = p->out;
			if (p->want == 0 && p->out > 0)
				p->want = 1;
			p->waiting = true;
			while (__atomic_load_n(&p->ndone, __ATOMIC_RELAXED) <
			    p->want)
				pthread_cond_wait(&p->done_cv, &p->mu);
			p->waiting = false;
		}
		t = p->done;
		p->done = NULL;
		p->done_tail = &p->done;
		p->out -= __atomic_load_n(&p->ndone, __ATOMIC_RELAXED);
		__atomic_store_n(&p->ndone, 0, __ATOMIC_RELAXED);
		left = p->out;
		pthread_mutex_unlock(&p->mu);
		for (; t != NULL; t = n) {
			n = t->next;
			eng_pool_finish(c, t);
		}
		eng_progress(c, false);
		if (how != ENG_COLLECT_ALL || left == 0)
			return;
	}
}

int
eng_pool_submit(struct eng_ctx *c, struct eng_copy_job *j,
    struct eng_dir *d, bool present)
{
	struct eng_pool	*p = c->pool;
	struct eng_task	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->rel = strndup(j->rel, j->rel_len)) == NULL) {
		free(t);
		close(j->fd);
		j->fd = -1;
		eng_fatal(c, ENOMEM, "queueing a file");
		return -1;
	}
	t->j = *j;
	j->fd = -1;
	t->j.rel = t->rel;
	t->j.name = t->rel + j->rel_len - strlen(j->name);
	t->j.sfd = -1;		/* not read on a copier thread */
	t->present = present;
	t->recs_tail = &t->recs;
	t->it.fd = -1;
	eng_next_tmp(c, t->it.tmp, sizeof(t->it.tmp));
	t->it.dir = eng_dir_ref(d);
	d->pending++;

	/* bounded: take back finished copies first when too many are out */
	for (;;) {
		pthread_mutex_lock(&p->mu);
		if (p->out < p->depth)
			break;
		pthread_mutex_unlock(&p->mu);
		eng_pool_collect(c, ENG_COLLECT_MANY);
	}
	p->out++;
	*p->todo_tail = t;
	p->todo_tail = &t->next;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	return c->stop == ENG_GO ? 0 : -1;
}

int
eng_pool_dir_meta(struct eng_ctx *c, struct eng_item *it)
{
	struct eng_dir	*d = it->self;
	struct eng_item	*m;

	if (c->pool == NULL || d == NULL || d->pending == 0)
		return eng_batch_add(c, it);
	if ((m = malloc(sizeof(*m))) == NULL) {
		eng_item_free(it);
		eng_fatal(c, ENOMEM, "queueing a folder");
		return -1;
	}
	*m = *it;
	memset(it, 0, sizeof(*it));
	it->fd = -1;
	if (d->deferred_meta != NULL) {		/* cannot happen: one per
						   folder */
		eng_item_free(d->deferred_meta);
		free(d->deferred_meta);
	}
	d->deferred_meta = m;
	return 0;
}

void
eng_pool_stop(struct eng_ctx *c)
{
	struct eng_pool	*p = c->pool;
	unsigned	 i;

	if (p == NULL)
		return;
	eng_pool_collect(c, ENG_COLLECT_ALL);
	pthread_mutex_lock(&p->mu);
	p->quit = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++) {
		pthread_join(p->copiers[i].th, NULL);
		free(p->copiers[i].buf);
	}
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done_cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	c->pool = NULL;
}
