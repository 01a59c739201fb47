/*
 * schedule.h: schedule expressions and the next run time.
 *
 * Forms (DESIGN.md, "Scheduler"):
 *   manual
 *   daily HH:MM
 *   weekly DAY[,DAY...] HH:MM        (Mon..Sun, case-insensitive)
 *   monthly D[,D...] HH:MM           (1..31; a month without day D skips it)
 *   every N{m,h,d}                   (interval from the last run, or from
 *                                     the service start when never run)
 *   five-field cron "m h dom mon dow" with *, lists, ranges and steps
 * Times are local time.  A time skipped by a DST change runs at the first
 * valid minute after it; a time that occurs twice (DST fall-back) runs once,
 * at its first occurrence.
 *
 * Ownership: schedule_parse() returns a schedule freed with schedule_free().
 */
#ifndef VIGIL_SCHEDULE_H
#define VIGIL_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct vg_schedule;

/* Returns NULL on error and sets *errmsg and *hint (static strings or
 * malloc'd: errmsg malloc'd, hint static) describing what is wrong. */
struct vg_schedule *schedule_parse(const char *text, char **errmsg,
	    const char **hint);
void	schedule_free(struct vg_schedule *s);
bool	schedule_is_manual(const struct vg_schedule *s);

/*
 * The first run time strictly after `after` (unix seconds), in the local time
 * zone (TZ as set in the environment).  last_run is the start of the last
 * run (0 = never) and matters for "every".  Returns 0 for manual.
 */
time_t	schedule_next(const struct vg_schedule *s, time_t after, time_t last_run);

#endif
