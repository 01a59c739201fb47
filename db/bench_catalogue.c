/*
 * bench_catalogue.c: size and speed of the catalogue.
 *
 *   bench_catalogue DIR [FILES [DIRS]]
 *
 * Writes FILES entries (default 1,000,000) spread over DIRS directories
 * (default 50,000) in batches of 1000 per transaction, then reports the file
 * size on disk, the time to reopen (quick_check included) and the time for
 * catalogue_dir_load() over every directory, as a no-change run does.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "db/catalogue.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
dir_name(char *buf, size_t len, long d)
{
	/* about 40 bytes, several levels, like a home folder */
	snprintf(buf, len, "home/alice/projects/p%03ld/src/module-%05ld",
	    d / 500, d);
}

static long long
disk_bytes(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) == -1)
		return 0;
	return (long long)sb.st_blocks * 512;
}

int
main(int argc, char *argv[])
{
	struct vg_catalogue *cat = NULL;
	struct catalogue_entry e, *v = NULL;
	struct vg_err err = { 0 };
	char path[4096], wal[4200], dir[128], name[64];
	long files = 1000000, dirs = 50000, per, d, f, done = 0;
	int pass;
	size_t n, total = 0;
	double t0, t1;
	bool fresh;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_catalogue DIR [FILES [DIRS]]\n");
		return 2;
	}
	/* garbage reads as 0, refused below: */
	if (argc > 2)
		files = atol(argv[2]);	/* NOLINT(cert-err34-c) */
	if (argc > 3)
		dirs = atol(argv[3]);	/* NOLINT(cert-err34-c) */
	if (files <= 0 || dirs <= 0 || files < dirs) {
		fprintf(stderr, "bench_catalogue: need FILES >= DIRS > 0\n");
		return 2;
	}
	per = files / dirs;
	snprintf(path, sizeof path, "%s/bench-catalogue.db", argv[1]);
	snprintf(wal, sizeof wal, "%s-wal", path);
	unlink(path);
	unlink(wal);

	if (catalogue_open(path, "bench", &cat, &fresh, &err) == -1)
		goto fail;
	memset(&e, 0, sizeof e);
	t0 = now();
	if (catalogue_begin(cat, &err) == -1)
		goto fail;
	for (d = 0; d < dirs; d++) {
		dir_name(dir, sizeof dir, d);
		for (f = 0; f < per; f++) {
			e.name_len = (size_t)snprintf(name, sizeof name,
			    "file-%06ld.txt", f * 7919 % 1000003);
			e.name = name;
			e.type = CAT_FILE;
			e.size = (uint64_t)(f * 1237 % 65536);
			e.mtime_ns = 1700000000123456789LL + f;
			e.ctime_ns = 1700000000987654321LL + f;
			e.ino = (uint64_t)(1000000 + d * per + f);
			e.dev = 2049;
			e.mode = 0100644;
			e.uid = e.gid = 1000;
			e.has_sum = true;
			memset(e.sum, (int)f, sizeof e.sum);
			if (catalogue_put(cat, dir, strlen(dir), &e, &err) ==
			    -1)
				goto fail;
			if (++done % 1000 == 0 &&
			    (catalogue_commit(cat, &err) == -1 ||
			    catalogue_begin(cat, &err) == -1))
				goto fail;
		}
	}
	if (catalogue_commit(cat, &err) == -1)
		goto fail;
	t1 = now();
	printf("insert: %ld entries in %ld dirs, batches of 1000: %.2f s "
	    "(%.1f us/entry)\n", done, dirs, t1 - t0,
	    (t1 - t0) * 1e6 / (double)done);
	catalogue_close(cat);
	cat = NULL;
	printf("size on disk after close: %.1f MB (%.0f bytes/entry), wal "
	    "%.1f MB\n", disk_bytes(path) / 1e6,
	    (double)disk_bytes(path) / (double)done, disk_bytes(wal) / 1e6);

	t0 = now();
	if (catalogue_open(path, "bench", &cat, &fresh, &err) == -1)
		goto fail;
	t1 = now();
	printf("reopen (quick_check included): %.1f ms, fresh %d\n",
	    (t1 - t0) * 1e3, fresh);

	/* First pass right after open, as a run does; then a warm one. */
	for (pass = 0; pass < 2; pass++) {
		total = 0;
		t0 = now();
		for (d = 0; d < dirs; d++) {
			dir_name(dir, sizeof dir, d);
			if (catalogue_dir_load(cat, dir, strlen(dir), &v, &n,
			    &err) == -1)
				goto fail;
			total += n;
			catalogue_entries_free(v, n);
		}
		t1 = now();
		printf("dir_load over %ld dirs (%s): %zu entries in %.1f ms "
		    "(%.2f us/entry)\n", dirs, pass == 0 ? "first" : "again",
		    total, (t1 - t0) * 1e3, (t1 - t0) * 1e6 / (double)total);
		if (total != (size_t)done) {
			fprintf(stderr, "loaded %zu entries, wrote %ld\n",
			    total, done);
			return 1;
		}
	}
	catalogue_close(cat);
	unlink(path);
	unlink(wal);
	return 0;
fail:
	fprintf(stderr, "bench_catalogue: %s\n", err.msg);
	catalogue_close(cat);
	return 1;
}
