/*
 * test_archive.c: archive mode on real temp folders: the parallel gzip
 * writer against zlib, the manifest format against hostile text, full and
 * incremental runs restored as of each run, and hostile archives crafted
 * with libarchive that must write nothing outside the restore target.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>
#include <zlib.h>

#include "common/config.h"
#include "common/err.h"
#include "db/catalogue.h"
#include "scheduler/archive.h"
#include "scheduler/archive_int.h"

struct fx {
	char			 root[256];
	char			 src[300], dest[300], out[300], outside[300];
	char			 catpath[300];
	struct vg_job_def	*job;
	struct vg_catalogue	*cat;
	bool			 fresh;
	int64_t			 run;
};

/* ---- helpers ------------------------------------------------------- */

static void
rmtree(const char *path)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", path);
}

static void
put(const char *dir, const char *rel, const char *content)
{
	char p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof p, "%s/%s", dir, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	assert_int_equal(fclose(f), 0);
}

static char *
slurp(const char *dir, const char *rel)
{
	static char buf[65536];
	char p[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(p, sizeof p, "%s/%s", dir, rel);
	if ((fd = open(p, O_RDONLY | O_NOFOLLOW)) == -1)
		return NULL;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static bool
exists(const char *dir, const char *rel)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof p, "%s/%s", dir, rel);
	return lstat(p, &st) == 0;
}

static size_t
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0))
			n++;
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	snprintf(f->root, sizeof f->root, "/tmp/vigil-test-archive-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->src, sizeof f->src, "%s/src", f->root);
	snprintf(f->dest, sizeof f->dest, "%s/dest", f->root);
	snprintf(f->out, sizeof f->out, "%s/out", f->root);
	snprintf(f->outside, sizeof f->outside, "%s/outside", f->root);
	snprintf(f->catpath, sizeof f->catpath, "%s/cat.db", f->root);
	assert_int_equal(mkdir(f->src, 0755), 0);
	assert_int_equal(mkdir(f->dest, 0700), 0);
	assert_int_equal(mkdir(f->outside, 0755), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	if (f->cat != NULL)
		catalogue_close(f->cat);
	job_def_free(f->job);
	rmtree(f->root);
	free(f);
	return 0;
}

static void
make_job(struct fx *f, const char *format, const char *kind, bool verify)
{
	struct vg_diags d = { 0 };
	char text[2048];

	snprintf(text, sizeof text, "[job t]\nsource = %s\ndestination = %s\n"
	    "mode = archive\nformat = %s\narchive = %s\nverify = %s\n",
	    f->src, f->dest, format, kind, verify ? "yes" : "no");
	job_def_free(f->job);
	f->job = config_parse_job(text, &d);
	if (f->job == NULL && d.n > 0)
		fprintf(stderr, "job: %s\n", d.v[0].msg);
	assert_non_null(f->job);
	diags_free(&d);
}

/* One archive run through the catalogue, as the runner does it. */
static enum vg_run_status
run_archive(struct fx *f, struct vg_engine_result *res, int64_t now_ms)
{
	struct engine_source es;
	struct engine_opts o;
	struct vg_err err;

	if (f->cat == NULL) {
		assert_int_equal(catalogue_open(f->catpath, "key", &f->cat,
		    &f->fresh, &err), 0);
	} else
		f->fresh = false;
	memset(&es, 0, sizeof es);
	es.path = f->job->sources.v[0];
	es.capture = VG_CAP_LIVE;
	memset(&o, 0, sizeof o);
	o.job = f->job;
	o.sources = &es;
	o.nsources = 1;
	o.catalogue = f->cat;
	o.catalogue_fresh = f->fresh;
	o.run_id = ++f->run;
	o.now_ms = now_ms;
	memset(res, 0, sizeof *res);
	if (archive_run(&o, res, &err) == -1)
		fprintf(stderr, "archive_run: %s\n", err.msg);
	if (res->status != VG_RUN_OK && res->message != NULL)
		fprintf(stderr, "archive_run: %s\n", res->message);
	/* reopen as the next run would (the dirty flag is read at open) */
	catalogue_close(f->cat);
	f->cat = NULL;
	assert_int_equal(catalogue_open(f->catpath, "key", &f->cat, &f->fresh,
	    &err), 0);
	return res->status;
}

static int
restore(struct fx *f, int64_t as_of_run, const char *to,
    struct restore_result *rr)
{
	struct restore_opts ro;
	struct vg_err err;
	int rc;

	memset(&ro, 0, sizeof ro);
	ro.job = f->job;
	ro.as_of_run = as_of_run;
	ro.to = to;
	ro.overwrite = true;
	vg_err_clear(&err);
	rc = archive_restore(&ro, rr, &err);
	if (rc == -1 && err.msg[0] != '\0')
		fprintf(stderr, "restore: %s\n", err.msg);
	return rc;
}

/* ---- parallel gzip -------------------------------------------------- */

static unsigned char *
gz_input(size_t n)
{
	unsigned char *b = malloc(n);
	uint32_t x = 12345;
	size_t i;

	assert_non_null(b);
	for (i = 0; i < n; i++) {
		/* text-like runs mixed with noise, so blocks matter */
		x = x * 1103515245 + 12345;
		b[i] = (i / 4096) % 3 == 0 ? (unsigned char)(x >> 24) :
		    (unsigned char)("vigil archives the night "[i % 25]);
	}
	return b;
}

static void
gz_roundtrip(size_t n, size_t block, unsigned threads, size_t chunk)
{
	char path[] = "/tmp/vigil-test-gz-XXXXXX";
	unsigned char *in = gz_input(n), *back, *comp;
	struct arc_gz *gz;
	struct vg_err err;
	struct stat st;
	z_stream zs;
	size_t off, k;
	int fd;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	gz = arc_gz_new(fd, 6, block, threads, &err);
	assert_non_null(gz);
	for (off = 0; off < n; off += k) {
		k = n - off < chunk ? n - off : chunk;
		assert_int_equal(arc_gz_write(gz, in + off, k, &err), 0);
	}
	assert_int_equal(arc_gz_finish(gz, &err), 0);
	arc_gz_free(gz);
	assert_int_equal(fstat(fd, &st), 0);
	comp = malloc((size_t)st.st_size);
	back = malloc(n + 1);
	assert_non_null(comp);
	assert_non_null(back);
	assert_int_equal(pread(fd, comp, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	unlink(path);
	/* a plain zlib gzip decoder reads it as one member */
	memset(&zs, 0, sizeof zs);
	assert_int_equal(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
	zs.next_in = comp;
	zs.avail_in = (uInt)st.st_size;
	zs.next_out = back;
	zs.avail_out = (uInt)n + 1;
	assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
	assert_int_equal(zs.total_out, n);
	assert_int_equal(zs.avail_in, 0);	/* nothing after the member */
	inflateEnd(&zs);
	assert_memory_equal(in, back, n);
	free(in);
	free(back);
	free(comp);
}

static void
test_gz_many_blocks_roundtrip(void **state)
{
	(void)state;
	gz_roundtrip(3 * 1024 * 1024 + 777, 65536, 2, 10240);
}

static void
test_gz_one_thread_odd_chunks(void **state)
{
	(void)state;
	gz_roundtrip(500000, 32768, 1, 333);
}

static void
test_gz_empty_stream(void **state)
{
	(void)state;
	gz_roundtrip(0, 65536, 2, 1);
}

/* The dictionary makes blocks cost (almost) nothing against one stream. */
static void
test_gz_size_close_to_single_stream(void **state)
{
	char path[] = "/tmp/vigil-test-gz-XXXXXX";
	size_t n = 4 * 1024 * 1024;
	unsigned char *in = gz_input(n), *one;
	struct arc_gz *gz;
	struct vg_err err;
	struct stat st;
	uLongf olen = compressBound(n);
	int fd;

	(void)state;
	one = malloc(olen);
	assert_non_null(one);
	assert_int_equal(compress2(one, &olen, in, n, 6), Z_OK);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	gz = arc_gz_new(fd, 6, 128 * 1024, 2, &err);
	assert_non_null(gz);
	assert_int_equal(arc_gz_write(gz, in, n, &err), 0);
	assert_int_equal(arc_gz_finish(gz, &err), 0);
	arc_gz_free(gz);
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	unlink(path);
	/* within 3 %, header and trailer differences included */
	assert_true((double)st.st_size <= (double)olen * 1.03);
	free(in);
	free(one);
}

/* ---- manifest format ------------------------------------------------- */

static void
test_path_escape_roundtrip(void **state)
{
	const char raw[] = "a b/%c\x01\xff\tz";
	char *e, *back;
	size_t len;

	(void)state;
	e = arc_path_escape(raw, sizeof raw - 1);
	assert_non_null(e);
	assert_null(strpbrk(e, " \t\n"));
	assert_int_equal(arc_path_unescape(e, &back, &len), 0);
	assert_int_equal(len, sizeof raw - 1);
	assert_memory_equal(back, raw, len);
	free(e);
	free(back);
	assert_int_equal(arc_path_unescape("a%00b", &back, &len), -1);
	assert_int_equal(arc_path_unescape("a%4", &back, &len), -1);
	assert_int_equal(arc_path_unescape("a%zz", &back, &len), -1);
	assert_int_equal(arc_path_unescape("", &back, &len), -1);
}

static void
test_path_safe(void **state)
{
	(void)state;
	assert_true(arc_path_safe("a/b/c", 5));
	assert_true(arc_path_safe("..a/b..", 7));
	assert_false(arc_path_safe("", 0));
	assert_false(arc_path_safe("/etc/passwd", 11));
	assert_false(arc_path_safe("../x", 4));
	assert_false(arc_path_safe("a/../../x", 9));
	assert_false(arc_path_safe("a/./b", 5));
	assert_false(arc_path_safe("a//b", 4));
	assert_false(arc_path_safe("a/", 2));
	assert_false(arc_path_safe("a\0b", 3));
}

static int
write_manifest(const char *dir, const char *name, const char *text)
{
	char p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof p, "%s/%s", dir, name);
	if ((f = fopen(p, "w")) == NULL)
		return -1;
	fputs(text, f);
	return fclose(f);
}

#define MHEAD "vigil-archive 1\nrun 3\ntime 1000\nkind full\n" \
	"format tar.zst\narchive t-x-full.tar.zst\nparent -\n"

static void
test_manifest_reads_valid(void **state)
{
	struct fx *f = *state;
	struct arc_manifest m;
	struct vg_err err;
	int dfd;

	assert_int_equal(write_manifest(f->root, "s.manifest", MHEAD
	    "E f ok 3 5 000102030405060708090a0b0c0d0e0f a%20b\n"
	    "E d ok 0 5 - d\nD gone\nend 2 1\n"), 0);
	dfd = open(f->root, O_RDONLY | O_DIRECTORY);
	assert_int_equal(arc_manifest_read(dfd, "s.manifest", false, &m, &err),
	    0);
	assert_int_equal(m.run, 3);
	assert_true(m.full);
	assert_null(m.parent);
	assert_int_equal(m.n, 3);
	assert_string_equal(m.v[0].path, "a b");
	assert_int_equal(m.v[0].sum[15], 0x0f);
	assert_int_equal(m.v[2].type, 'D');
	arc_manifest_free(&m);
	close(dfd);
}

static void
manifest_refused(struct fx *f, const char *text, const char *what)
{
	struct arc_manifest m;
	struct vg_err err;
	int dfd;

	assert_int_equal(write_manifest(f->root, "b.manifest", text), 0);
	dfd = open(f->root, O_RDONLY | O_DIRECTORY);
	vg_err_clear(&err);
	if (arc_manifest_read(dfd, "b.manifest", false, &m, &err) == 0)
		fail_msg("manifest accepted: %s", what);
	assert_non_null(strstr(err.msg, "b.manifest, line"));
	close(dfd);
}

static void
test_manifest_refuses_cut_short(void **state)
{
	manifest_refused(*state, MHEAD "E d ok 0 5 - d\n", "no end line");
	manifest_refused(*state, MHEAD "E d ok 0 5 - d\nend 1 0", "cut line");
}

static void
test_manifest_refuses_wrong_counts(void **state)
{
	manifest_refused(*state, MHEAD "E d ok 0 5 - d\nend 2 0\n", "count");
}

static void
test_manifest_refuses_unsafe_paths(void **state)
{
	manifest_refused(*state, MHEAD "E f ok 0 5 - ../x\nend 1 0\n", "..");
	manifest_refused(*state, MHEAD "E f ok 0 5 - /etc/x\nend 1 0\n", "abs");
	manifest_refused(*state, MHEAD "D a/%2E%2E/b\nend 0 1\n", "escaped ..");
	manifest_refused(*state, "vigil-archive 1\nrun 3\ntime 1\nkind full\n"
	    "format tar.zst\narchive ../x.tar\nparent -\nend 0 0\n",
	    "archive outside the destination");
}

/* ---- runs and restores ---------------------------------------------- */

static void
chain_restores_each_run(void **state, const char *format)
{
	struct fx *f = *state;
	struct vg_engine_result res;
	struct restore_result rr;
	char o1[400], o2[400], o3[400];
	struct timespec ts[2] = { { 1600000000, 0 }, { 1600000000, 0 } };

	make_job(f, format, "incremental", true);
	assert_int_equal(mkdir(strcat(strcpy(o1, f->src), "/sub"), 0755), 0);
	put(f->src, "a.txt", "alpha");
	put(f->src, "sub/b.txt", "beta");
	put(f->src, "gone.txt", "to be deleted");
	assert_int_equal(symlink("a.txt", strcat(strcpy(o1, f->src), "/ln")),
	    0);
	assert_int_equal(run_archive(f, &res, 1000000), VG_RUN_OK);
	assert_int_equal(res.files_copied, 4);
	engine_result_free(&res);

	/* run 2: change one, delete one, add one */
	put(f->src, "a.txt", "alpha, changed");
	utimensat(AT_FDCWD, strcat(strcpy(o1, f->src), "/a.txt"), ts, 0);
	assert_int_equal(unlink(strcat(strcpy(o1, f->src), "/gone.txt")), 0);
	put(f->src, "sub/new.txt", "new");
	assert_int_equal(run_archive(f, &res, 2000000), VG_RUN_OK);
	assert_int_equal(res.files_copied, 2);
	assert_int_equal(res.files_deleted, 1);
	assert_int_equal(res.files_unchanged, 2);
	engine_result_free(&res);

	/* run 3: no change at all: an empty incremental */
	assert_int_equal(run_archive(f, &res, 3000000), VG_RUN_OK);
	assert_int_equal(res.files_copied, 0);
	engine_result_free(&res);

	snprintf(o1, sizeof o1, "%s/r1", f->out);
	snprintf(o2, sizeof o2, "%s/r2", f->out);
	snprintf(o3, sizeof o3, "%s/r3", f->out);
	assert_int_equal(restore(f, 1, o1, &rr), 0);
	restore_result_free(&rr);
	assert_string_equal(slurp(o1, "a.txt"), "alpha");
	assert_string_equal(slurp(o1, "gone.txt"), "to be deleted");
	assert_false(exists(o1, "sub/new.txt"));
	assert_string_equal(slurp(o1, "sub/b.txt"), "beta");
	assert_int_equal(restore(f, 2, o2, &rr), 0);
	restore_result_free(&rr);
	assert_string_equal(slurp(o2, "a.txt"), "alpha, changed");
	assert_false(exists(o2, "gone.txt"));
	assert_string_equal(slurp(o2, "sub/new.txt"), "new");
	assert_string_equal(slurp(o2, "sub/b.txt"), "beta");
	assert_int_equal(restore(f, 0, o3, &rr), 0);
	restore_result_free(&rr);
	assert_string_equal(slurp(o3, "a.txt"), "alpha, changed");
	assert_false(exists(o3, "gone.txt"));
	{
		char t[64];
		ssize_t n = readlink(strcat(strcpy(o1, o3), "/ln"), t,
		    sizeof t);

		assert_int_equal(n, 5);
		assert_memory_equal(t, "a.txt", 5);
	}
}

static void
test_chain_tar_zst(void **state)
{
	chain_restores_each_run(state, "tar.zst");
}

static void
test_chain_tar_gz(void **state)
{
	chain_restores_each_run(state, "tar.gz");
}

static void
test_chain_zip(void **state)
{
	chain_restores_each_run(state, "zip");
}

static void
test_cancelled_run_leaves_nothing_complete(void **state)
{
	struct fx *f = *state;
	struct vg_engine_result res;
	struct engine_source es;
	struct engine_opts o;
	struct vg_err err;
	volatile sig_atomic_t cancel = 1;
	char p[400];

	make_job(f, "tar.zst", "full", false);
	put(f->src, "a.txt", "alpha");
	memset(&es, 0, sizeof es);
	es.path = f->src;
	memset(&o, 0, sizeof o);
	o.job = f->job;
	o.sources = &es;
	o.nsources = 1;
	o.run_id = 7;
	o.now_ms = 1000;
	o.cancel = &cancel;
	assert_int_equal(archive_run(&o, &res, &err), 0);
	assert_int_equal(res.status, VG_RUN_CANCELLED);
	engine_result_free(&res);
	/* only .vigil in the destination, no manifest, no temp file */
	assert_int_equal(count_entries(f->dest), 1);
	snprintf(p, sizeof p, "%s/.vigil/archives", f->dest);
	assert_int_equal(count_entries(p), 0);
}

static void
test_incremental_after_unfinished_run_is_full(void **state)
{
	struct fx *f = *state;
	struct vg_engine_result res;
	struct vg_err err;

	make_job(f, "tar.zst", "incremental", false);
	put(f->src, "a.txt", "alpha");
	assert_int_equal(run_archive(f, &res, 1000), VG_RUN_OK);
	engine_result_free(&res);
	/* a run killed after setting the flag */
	assert_int_equal(catalogue_set_dirty(f->cat, true, &err), 0);
	catalogue_close(f->cat);
	f->cat = NULL;
	assert_int_equal(run_archive(f, &res, 2000), VG_RUN_OK);
	assert_int_equal(res.files_copied, 1);	/* all again: a full */
	assert_non_null(strstr(res.message, "(full)"));
	engine_result_free(&res);
}

static void
test_special_and_unreadable_make_partial(void **state)
{
	struct fx *f = *state;
	struct vg_engine_result res;
	char p[400];
	size_t i;
	bool fifo = false;

	make_job(f, "tar.gz", "full", false);
	put(f->src, "a.txt", "alpha");
	snprintf(p, sizeof p, "%s/fifo", f->src);
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(run_archive(f, &res, 1000), VG_RUN_PARTIAL);
	for (i = 0; i < res.nproblems; i++)
		if (strcmp(res.problems[i].path, "fifo") == 0 &&
		    strcmp(res.problems[i].problem, "special-file") == 0)
			fifo = true;
	assert_true(fifo);
	assert_int_equal(res.files_copied, 1);
	engine_result_free(&res);
}

static void
test_filters_and_dest_inside_source(void **state)
{
	struct fx *f = *state;
	struct vg_engine_result res;
	struct restore_result rr;
	struct vg_diags d = { 0 };
	char text[1024], o1[400];

	put(f->src, "keep.txt", "k");
	put(f->src, "skip.tmp", "s");
	snprintf(f->dest, sizeof f->dest, "%s/src/backup", f->root);
	assert_int_equal(mkdir(f->dest, 0700), 0);
	snprintf(text, sizeof text, "[job t]\nsource = %s\ndestination = %s\n"
	    "mode = archive\nexclude = *.tmp\n", f->src, f->dest);
	f->job = config_parse_job(text, &d);
	assert_non_null(f->job);
	diags_free(&d);
	assert_int_equal(run_archive(f, &res, 1000), VG_RUN_OK);
	assert_int_equal(res.files_copied, 1);
	engine_result_free(&res);
	snprintf(o1, sizeof o1, "%s/r", f->out);
	assert_int_equal(restore(f, 0, o1, &rr), 0);
	restore_result_free(&rr);
	assert_true(exists(o1, "keep.txt"));
	assert_false(exists(o1, "skip.tmp"));
	assert_false(exists(o1, "backup"));
}

/* ---- hostile archives ------------------------------------------------ */

struct hent {
	const char	*path;
	mode_t		 type;
	mode_t		 perm;
	const char	*data;		/* file content or link target */
	bool		 hard;
};

/* Write <dest>/t-h-full.tar and a manifest listing mpaths. */
static void
craft(struct fx *f, const struct hent *v, size_t n, const char *mlines,
    size_t ne)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e;
	char p[400], text[8192];
	size_t i;

	snprintf(p, sizeof p, "%s/t-h-full.tar.zst", f->dest);
	assert_int_equal(archive_write_set_format_pax(a), ARCHIVE_OK);
	assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, p), ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		e = archive_entry_new();
		archive_entry_set_pathname(e, v[i].path);
		archive_entry_set_filetype(e, v[i].type);
		archive_entry_set_perm(e, v[i].perm);
		archive_entry_set_mtime(e, 1600000000, 0);
		if (v[i].hard)
			archive_entry_set_hardlink(e, v[i].data);
		else if (v[i].type == AE_IFLNK)
			archive_entry_set_symlink(e, v[i].data);
		else if (v[i].type == AE_IFREG)
			archive_entry_set_size(e, (la_int64_t)strlen(
			    v[i].data));
		assert_true(archive_write_header(a, e) >= ARCHIVE_WARN);
		if (v[i].type == AE_IFREG && !v[i].hard)
			assert_int_equal(archive_write_data(a, v[i].data,
			    strlen(v[i].data)), (la_ssize_t)strlen(v[i].data));
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	snprintf(p, sizeof p, "%s/.vigil", f->dest);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/.vigil/archives", f->dest);
	mkdir(p, 0700);
	snprintf(text, sizeof text, "vigil-archive 1\nrun 1\ntime 1000\n"
	    "kind full\nformat tar.zst\narchive t-h-full.tar.zst\nparent -\n"
	    "%send %zu 0\n", mlines, ne);
	assert_int_equal(write_manifest(p, "19700101T000001Z-r1.manifest",
	    text), 0);
}

static void
assert_outside_untouched(struct fx *f)
{
	assert_int_equal(count_entries(f->outside), 0);
	assert_false(exists(f->root, "evil"));
	assert_false(exists("/tmp", "vigil-archive-test-abs-evil"));
}

static void
test_hostile_dotdot_and_absolute(void **state)
{
	struct fx *f = *state;
	struct restore_result rr;
	const struct hent v[] = {
		{ "../evil", AE_IFREG, 0644, "x", false },
		{ "../outside/evil", AE_IFREG, 0644, "x", false },
		{ "/tmp/vigil-archive-test-abs-evil", AE_IFREG, 0644, "x",
		    false },
		{ "ok", AE_IFREG, 0644, "fine", false },
	};

	make_job(f, "tar.zst", "full", false);
	craft(f, v, 4, "E f ok 4 0 - ok\n", 1);
	assert_int_equal(restore(f, 0, f->out, &rr), -1);
	assert_true(rr.errors >= 3);
	restore_result_free(&rr);
	assert_string_equal(slurp(f->out, "ok"), "fine");
	assert_outside_untouched(f);
}

static void
test_hostile_symlink_then_file_through_it(void **state)
{
	struct fx *f = *state;
	struct restore_result rr;
	char lines[512];
	const struct hent v[] = {
		{ "ln", AE_IFLNK, 0777, f->outside, false },
		{ "ln/evil", AE_IFREG, 0644, "x", false },
		{ "rel", AE_IFLNK, 0777, "../outside", false },
		{ "rel/evil2", AE_IFREG, 0644, "x", false },
	};

	make_job(f, "tar.zst", "full", false);
	snprintf(lines, sizeof lines, "E l ok 1 0 - ln\nE f ok 1 0 - ln/evil\n"
	    "E l ok 1 0 - rel\nE f ok 1 0 - rel/evil2\n");
	craft(f, v, 4, lines, 4);
	assert_int_equal(restore(f, 0, f->out, &rr), -1);
	assert_int_equal(rr.errors, 2);
	restore_result_free(&rr);
	assert_outside_untouched(f);
}

static void
test_hostile_planted_symlink_in_target(void **state)
{
	struct fx *f = *state;
	struct restore_result rr;
	char p[400];
	const struct hent v[] = {
		{ "d", AE_IFDIR, 0755, NULL, false },
		{ "d/evil", AE_IFREG, 0644, "x", false },
	};

	make_job(f, "tar.zst", "full", false);
	craft(f, v, 2, "E d ok 0 0 - d\nE f ok 1 0 - d/evil\n", 2);
	assert_int_equal(mkdir(f->out, 0755), 0);
	snprintf(p, sizeof p, "%s/d", f->out);
	assert_int_equal(symlink(f->outside, p), 0);
	(void)restore(f, 0, f->out, &rr);
	restore_result_free(&rr);
	assert_outside_untouched(f);
}

static void
test_hostile_hardlink_outside(void **state)
{
	struct fx *f = *state;
	struct restore_result rr;
	const struct hent v[] = {
		{ "hl", AE_IFREG, 0644, "../outside/x", true },
		{ "hl2", AE_IFREG, 0644, "/etc/passwd", true },
	};

	make_job(f, "tar.zst", "full", false);
	craft(f, v, 2, "E h ok 0 0 - hl\nE h ok 0 0 - hl2\n", 2);
	assert_int_equal(restore(f, 0, f->out, &rr), -1);
	assert_int_equal(rr.errors, 2);
	restore_result_free(&rr);
	assert_false(exists(f->out, "hl"));
	assert_false(exists(f->out, "hl2"));
}

static void
test_setuid_and_devices_refused_without_flag(void **state)
{
	struct fx *f = *state;
	struct restore_result rr;
	const struct hent v[] = {
		{ "suid", AE_IFREG, 04755, "x", false },
		{ "fifo", AE_IFIFO, 0644, NULL, false },
		{ "chr", AE_IFCHR, 0644, NULL, false },
		{ "plain", AE_IFREG, 0644, "p", false },
	};

	make_job(f, "tar.zst", "full", false);
	craft(f, v, 4, "E f ok 1 0 - suid\nE f ok 0 0 - fifo\n"
	    "E f ok 0 0 - chr\nE f ok 1 0 - plain\n", 4);
	assert_int_equal(restore(f, 0, f->out, &rr), -1);
	assert_int_equal(rr.errors, 3);
	assert_non_null(strstr(rr.messages[0], "--allow-special"));
	restore_result_free(&rr);
	assert_false(exists(f->out, "suid"));
	assert_false(exists(f->out, "fifo"));
	assert_false(exists(f->out, "chr"));
	assert_true(exists(f->out, "plain"));
}

static void
test_missing_parent_manifest_is_clear(void **state)
{
	struct fx *f = *state;
	struct restore_result rr;
	struct restore_opts ro;
	struct vg_err err;
	char p[400];

	make_job(f, "tar.zst", "incremental", false);
	snprintf(p, sizeof p, "%s/.vigil", f->dest);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/.vigil/archives", f->dest);
	mkdir(p, 0700);
	assert_int_equal(write_manifest(p, "19700101T000002Z-r2.manifest",
	    "vigil-archive 1\nrun 2\ntime 2000\nkind incremental\n"
	    "format tar.zst\narchive t-i.tar.zst\n"
	    "parent 19700101T000001Z-r1\nend 0 0\n"), 0);
	memset(&ro, 0, sizeof ro);
	ro.job = f->job;
	ro.to = f->out;
	vg_err_clear(&err);
	assert_int_equal(archive_restore(&ro, &rr, &err), -1);
	assert_non_null(strstr(err.msg, "19700101T000001Z-r1"));
	assert_non_null(strstr(err.msg, "missing"));
	restore_result_free(&rr);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gz_many_blocks_roundtrip),
		cmocka_unit_test(test_gz_one_thread_odd_chunks),
		cmocka_unit_test(test_gz_empty_stream),
		cmocka_unit_test(test_gz_size_close_to_single_stream),
		cmocka_unit_test(test_path_escape_roundtrip),
		cmocka_unit_test(test_path_safe),
		cmocka_unit_test_setup_teardown(test_manifest_reads_valid,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_refuses_cut_short,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_manifest_refuses_wrong_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_manifest_refuses_unsafe_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_tar_zst, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_chain_tar_gz, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_chain_zip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_cancelled_run_leaves_nothing_complete, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_incremental_after_unfinished_run_is_full, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_special_and_unreadable_make_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_filters_and_dest_inside_source, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_hostile_dotdot_and_absolute, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_hostile_symlink_then_file_through_it, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_hostile_planted_symlink_in_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_hardlink_outside,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_setuid_and_devices_refused_without_flag, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_missing_parent_manifest_is_clear, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
