/*
 * archive.h: archive mode (mode = archive): the job's sources written as one
 * standard zip, tar.gz or tar.zst file per run, full or incremental, with a
 * manifest per run, and the restore that reads them back
 * (docs/architecture.md, "Archive mode").
 *
 * archive_run() has engine_run()'s contract (engine.h): the same options
 * (sources with read_from and capture, catalogue, dry run with plan_out,
 * progress, cancel) and the same result, freed with engine_result_free().
 * archive_restore() has restore_run()'s contract (restore.h), which calls it
 * for archive jobs.
 */
#ifndef VIGIL_ARCHIVE_H
#define VIGIL_ARCHIVE_H

#include "common/err.h"
#include "scheduler/engine.h"
#include "scheduler/restore.h"

/*
 * Write one archive of the job's sources into its destination.  Returns 0
 * when the run reached a status (res->status OK, PARTIAL, FAILED or
 * CANCELLED), -1 when it could not start (err says why; res->status is
 * FAILED).  Nothing that looks complete is left behind by a failed, killed
 * or cancelled run: the archive and its manifest are written under temp
 * names, flushed, and renamed only when complete.
 */
int	archive_run(const struct engine_opts *opts, struct vg_engine_result *res,
	    struct vg_err *err);

/*
 * Restore from the archives of an archive job: the chain (a full archive
 * and the incrementals after it) that ends at the run chosen by
 * opts->as_of_run / as_of_ms (the latest by default).  0 when everything
 * asked for was restored or deliberately skipped; -1 when the restore could
 * not start (err) or any entry failed or was refused (res->errors,
 * res->messages).
 */
int	archive_restore(const struct restore_opts *opts,
	    struct restore_result *res, struct vg_err *err);

#endif
