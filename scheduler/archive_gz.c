/*
 * archive_gz.c: a parallel gzip writer (archive_int.h), as pigz does it.
 *
 * The input is cut into blocks.  A ring of ARC_GZ_SLOTS(n) slots holds
 * blocks in flight: the producer fills slot seq % nslots, copies the last
 * 32 KiB of the block before it as the slot's dictionary and marks it
 * ready; worker threads take ready slots in sequence order, compress each
 * into raw deflate (sync flush, or finish for the last block) and compute
 * its crc32; the producer writes finished slots out strictly in sequence
 * order before it reuses them.  The stream is: a 10-byte gzip header, the
 * blocks' deflate data back to back (each sync flush ends byte-aligned, so
 * the concatenation is one deflate stream), the crc32 of everything
 * (crc32_combine over the blocks) and the length mod 2^32.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "scheduler/archive_int.h"

#define ARC_GZ_DICT	32768
#define ARC_GZ_MAXTHR	16

enum arc_gz_state { GZ_FREE, GZ_READY, GZ_BUSY, GZ_DONE };

struct arc_gz_slot {
	enum arc_gz_state state;
	uint64_t	 seq;
	unsigned char	*in;
	size_t		 in_len;
	unsigned char	*dict;
	size_t		 dict_len;
	unsigned char	*out;
	size_t		 out_cap, out_len;
	uLong		 crc;
	bool		 last;
	int		 zerr;
};

struct arc_gz {
	int		 fd;
	int		 level;
	size_t		 bsize;
	unsigned	 nthreads;
	pthread_t	 thr[ARC_GZ_MAXTHR];
	unsigned	 nstarted;
	pthread_mutex_t	 mu;
	pthread_cond_t	 work;		/* a slot became READY, or quit */
	pthread_cond_t	 done;		/* a slot became DONE */
	struct arc_gz_slot *slots;
	size_t		 nslots;
	uint64_t	 fill_seq;	/* the block being filled */
	uint64_t	 take_seq;	/* next block a worker takes */
	uint64_t	 write_seq;	/* next block to write out */
	bool		 quit;
	bool		 finished;
	uLong		 crc;
	uint64_t	 total_in;
	uint64_t	 out_bytes;
	int		 failed;	/* zlib error seen */
};

static int
arc_gz_compress(z_stream *zs, int level, struct arc_gz_slot *s)
{
	int rc;

	if (deflateReset(zs) != Z_OK)
		return -1;
	(void)level;
	if (s->dict_len > 0 && deflateSetDictionary(zs, s->dict,
	    (uInt)s->dict_len) != Z_OK)
		return -1;
	zs->next_in = s->in;
	zs->avail_in = (uInt)s->in_len;
	zs->next_out = s->out;
	zs->avail_out = (uInt)s->out_cap;
	rc = deflate(zs, s->last ? Z_FINISH : Z_SYNC_FLUSH);
	if (s->last ? rc != Z_STREAM_END : (rc != Z_OK || zs->avail_in != 0 ||
	    zs->avail_out == 0))
		return -1;
	s->out_len = s->out_cap - zs->avail_out;
	s->crc = crc32(0L, s->in, (uInt)s->in_len);
	return 0;
}

static void *
arc_gz_worker(void *arg)
{
	struct arc_gz *gz = arg;
	struct arc_gz_slot *s;
	z_stream zs;
	int ok;

	memset(&zs, 0, sizeof zs);
	ok = deflateInit2(&zs, gz->level, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY) == Z_OK;
	pthread_mutex_lock(&gz->mu);
	for (;;) {
		while (!gz->quit && (gz->take_seq >= gz->fill_seq ||
		    gz->slots[gz->take_seq % gz->nslots].state != GZ_READY ||
		    gz->slots[gz->take_seq % gz->nslots].seq != gz->take_seq))
			pthread_cond_wait(&gz->work, &gz->mu);
		if (gz->quit)
			break;
		s = &gz->slots[gz->take_seq % gz->nslots];
		gz->take_seq++;
		s->state = GZ_BUSY;
		pthread_mutex_unlock(&gz->mu);
		s->zerr = !ok || arc_gz_compress(&zs, gz->level, s) == -1;
		pthread_mutex_lock(&gz->mu);
		s->state = GZ_DONE;
		pthread_cond_broadcast(&gz->done);
		/* a later slot may be ready already */
		pthread_cond_broadcast(&gz->work);
	}
	pthread_mutex_unlock(&gz->mu);
	if (ok)
		deflateEnd(&zs);
	return NULL;
}

static int
arc_gz_put(struct arc_gz *gz, const void *buf, size_t len, struct vg_err *err)
{
	const unsigned char *p = buf;
	ssize_t w;

	while (len > 0) {
		w = write(gz->fd, p, len);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			vg_err_sys(err, "writing the gzip stream");
			return -1;
		}
		p += w;
		len -= (size_t)w;
		gz->out_bytes += (uint64_t)w;
	}
	return 0;
}

/* Wait for block write_seq and write it out.  Called without the lock. */
static int
arc_gz_drain_one(struct arc_gz *gz, struct vg_err *err)
{
	struct arc_gz_slot *s = &gz->slots[gz->write_seq % gz->nslots];

	pthread_mutex_lock(&gz->mu);
	while (s->state != GZ_DONE)
		pthread_cond_wait(&gz->done, &gz->mu);
	pthread_mutex_unlock(&gz->mu);
	if (s->zerr) {
		vg_err_set(err, VG_ERR_INTERNAL, "zlib could not compress "
		    "block %llu of the gzip stream",
		    (unsigned long long)s->seq);
		gz->failed = 1;
		return -1;
	}
	if (arc_gz_put(gz, s->out, s->out_len, err) == -1) {
		gz->failed = 1;
		return -1;
	}
	gz->crc = crc32_combine(gz->crc, s->crc, (z_off_t)s->in_len);
	gz->total_in += s->in_len;
	pthread_mutex_lock(&gz->mu);
	s->state = GZ_FREE;
	pthread_mutex_unlock(&gz->mu);
	gz->write_seq++;
	return 0;
}

/* Hand the slot being filled to the workers; make the next one ready to
 * fill (writing out the block that used it before). */
static int
arc_gz_submit(struct arc_gz *gz, bool last, struct vg_err *err)
{
	struct arc_gz_slot *s = &gz->slots[gz->fill_seq % gz->nslots];
	struct arc_gz_slot *prev, *next;

	s->dict_len = 0;
	if (gz->fill_seq > 0) {
		prev = &gz->slots[(gz->fill_seq - 1) % gz->nslots];
		/* prev's input is intact until it is written out, which
		 * happens only after this copy (single producer). */
		s->dict_len = prev->in_len < ARC_GZ_DICT ? prev->in_len :
		    ARC_GZ_DICT;
		memcpy(s->dict, prev->in + prev->in_len - s->dict_len,
		    s->dict_len);
	}
	s->last = last;
	pthread_mutex_lock(&gz->mu);
	s->state = GZ_READY;
	gz->fill_seq++;
	pthread_cond_broadcast(&gz->work);
	pthread_mutex_unlock(&gz->mu);
	if (last)
		return 0;
	next = &gz->slots[gz->fill_seq % gz->nslots];
	/* The slot after this one must be free, and the slot before the
	 * next fill must keep its input for the dictionary: write out every
	 * block up to fill_seq - nslots + 1. */
	while (gz->write_seq + gz->nslots <= gz->fill_seq + 1)
		if (arc_gz_drain_one(gz, err) == -1)
			return -1;
	next->seq = gz->fill_seq;
	next->in_len = 0;
	return 0;
}

struct arc_gz *
arc_gz_new(int fd, int level, size_t block_size, unsigned nthreads,
    struct vg_err *err)
{
	static const unsigned char hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0,
	    0, 3 };
	struct arc_gz *gz = NULL;
	long ncpu;
	size_t i;

	if (level < 0 || level > 9 || block_size < ARC_GZ_DICT) {
		vg_err_set(err, VG_ERR_INTERNAL, "gzip writer: level %d or "
		    "block size %zu out of range", level, block_size);
		return NULL;
	}
	if (nthreads == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		nthreads = ncpu < 1 ? 1 : (unsigned)ncpu;
	}
	if (nthreads > ARC_GZ_MAXTHR)
		nthreads = ARC_GZ_MAXTHR;
	if ((gz = calloc(1, sizeof *gz)) == NULL)
		goto nomem;
	gz->fd = fd;
	gz->level = level;
	gz->bsize = block_size;
	gz->nthreads = nthreads;
	gz->crc = crc32(0L, Z_NULL, 0);
	gz->nslots = 2 * (size_t)nthreads + 2;
	pthread_mutex_init(&gz->mu, NULL);
	pthread_cond_init(&gz->work, NULL);
	pthread_cond_init(&gz->done, NULL);
	if ((gz->slots = calloc(gz->nslots, sizeof *gz->slots)) == NULL)
		goto nomem;
	for (i = 0; i < gz->nslots; i++) {
		gz->slots[i].out_cap = deflateBound(NULL, (uLong)block_size) +
		    1024;
		if ((gz->slots[i].in = malloc(block_size)) == NULL ||
		    (gz->slots[i].dict = malloc(ARC_GZ_DICT)) == NULL ||
		    (gz->slots[i].out = malloc(gz->slots[i].out_cap)) == NULL)
			goto nomem;
	}
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&gz->thr[i], NULL, arc_gz_worker, gz) != 0) {
			vg_err_set(err, VG_ERR_SYS, "gzip writer: cannot start "
			    "a compression thread");
			arc_gz_free(gz);
			return NULL;
		}
		gz->nstarted++;
	}
	if (arc_gz_put(gz, hdr, sizeof hdr, err) == -1) {
		arc_gz_free(gz);
		return NULL;
	}
	return gz;
nomem:
	vg_err_sys(err, "gzip writer: out of memory");
	arc_gz_free(gz);
	return NULL;
}

int
arc_gz_write(struct arc_gz *gz, const void *buf, size_t len,
    struct vg_err *err)
{
	const unsigned char *p = buf;
	struct arc_gz_slot *s;
	size_t n;

	if (gz->failed || gz->finished) {
		vg_err_set(err, VG_ERR_INTERNAL, "gzip writer: write after an "
		    "error or after the end");
		return -1;
	}
	while (len > 0) {
		s = &gz->slots[gz->fill_seq % gz->nslots];
		n = gz->bsize - s->in_len;
		if (n > len)
			n = len;
		memcpy(s->in + s->in_len, p, n);
		s->in_len += n;
		p += n;
		len -= n;
		if (s->in_len == gz->bsize && arc_gz_submit(gz, false,
		    err) == -1)
			return -1;
	}
	return 0;
}

int
arc_gz_finish(struct arc_gz *gz, struct vg_err *err)
{
	unsigned char tr[8];
	uint32_t isize;

	if (gz->failed || gz->finished) {
		vg_err_set(err, VG_ERR_INTERNAL, "gzip writer: finished twice "
		    "or after an error");
		return -1;
	}
	gz->finished = true;
	if (arc_gz_submit(gz, true, err) == -1)
		return -1;
	while (gz->write_seq < gz->fill_seq)
		if (arc_gz_drain_one(gz, err) == -1)
			return -1;
	isize = (uint32_t)gz->total_in;
	tr[0] = (unsigned char)gz->crc;
	tr[1] = (unsigned char)(gz->crc >> 8);
	tr[2] = (unsigned char)(gz->crc >> 16);
	tr[3] = (unsigned char)(gz->crc >> 24);
	tr[4] = (unsigned char)isize;
	tr[5] = (unsigned char)(isize >> 8);
	tr[6] = (unsigned char)(isize >> 16);
	tr[7] = (unsigned char)(isize >> 24);
	return arc_gz_put(gz, tr, sizeof tr, err);
}

uint64_t
arc_gz_out_bytes(const struct arc_gz *gz)
{
	return gz->out_bytes;
}

void
arc_gz_free(struct arc_gz *gz)
{
	size_t i;

	if (gz == NULL)
		return;
	if (gz->slots != NULL) {
		/* let busy workers finish their block before quitting */
		pthread_mutex_lock(&gz->mu);
		for (;;) {
			for (i = 0; i < gz->nslots; i++)
				if (gz->slots[i].state == GZ_BUSY)
					break;
			if (i == gz->nslots)
				break;
			pthread_cond_wait(&gz->done, &gz->mu);
		}
		gz->quit = true;
		pthread_cond_broadcast(&gz->work);
		pthread_mutex_unlock(&gz->mu);
	}
	for (i = 0; i < gz->nstarted; i++)
		pthread_join(gz->thr[i], NULL);
	if (gz->slots != NULL)
		for (i = 0; i < gz->nslots; i++) {
			free(gz->slots[i].in);
			free(gz->slots[i].dict);
			free(gz->slots[i].out);
		}
	free(gz->slots);
	pthread_mutex_destroy(&gz->mu);
	pthread_cond_destroy(&gz->work);
	pthread_cond_destroy(&gz->done);
	free(gz);
}
