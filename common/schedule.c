/*
 * schedule.c: schedule expressions and the next run time.
 *
 * Every calendar form (daily, weekly, monthly, cron) becomes one cron-like
 * table of bit masks.  schedule_next() walks calendar days in wall-clock
 * terms and turns each matching wall time into an instant with mktime(),
 * trying both DST readings, so that a wall time that occurs twice yields its
 * first occurrence and a wall time that does not exist yields the instant
 * the clock jumps past it.  "every" is elapsed time and ignores the calendar.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/schedule.h"

enum schedule_kind { SCHED_MANUAL, SCHED_CALENDAR, SCHED_EVERY };

struct vg_schedule {
	enum schedule_kind	 kind;
	uint64_t		 minutes;	/* bits 0-59 */
	uint32_t		 hours;		/* bits 0-23 */
	uint32_t		 doms;		/* bits 1-31 */
	uint16_t		 months;	/* bits 1-12 */
	uint8_t			 dows;		/* bits 0-6, 0 = Sunday */
	int			 dom_star, dow_star;
	int64_t			 every_s;
};

/* How many days schedule_next() looks ahead before it gives up. */
#define SCHEDULE_HORIZON_DAYS	(366 * 30)

static const char *schedule_dow_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat"
};
static const char *schedule_dow_long[] = {
	"sunday", "monday", "tuesday", "wednesday", "thursday", "friday",
	"saturday"
};
static const char *schedule_month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
	"nov", "dec"
};

#define HINT_TIME	"expected HH:MM on a 24-hour clock, e.g. daily 02:00"
#define HINT_WEEKLY	"e.g. weekly Mon,Thu 03:30 (days: Mon Tue Wed Thu Fri " \
			"Sat Sun, ranges like Mon-Fri)"
#define HINT_MONTHLY	"e.g. monthly 1,15 04:00 (days of the month 1-31)"
#define HINT_EVERY	"e.g. every 30m, every 4h, every 2d (units m, h, d; " \
			"combine like 1h30m)"
#define HINT_CRON	"cron fields are: minute hour day-of-month month " \
			"day-of-week, e.g. 30 2 * * Mon-Fri"
#define HINT_FORMS	"use manual, daily HH:MM, weekly DAYS HH:MM, monthly " \
			"DAYS HH:MM, every N{m,h,d}, or a 5-field cron line"

static char * __attribute__((format(printf, 1, 2)))
schedule_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	return s;
}

/* Split on blanks into at most max words; returns the count, or max + 1 if
 * there are more. */
static int
schedule_words(char *s, char **w, int max)
{
	int n = 0;
	char *p = s;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (n == max)
			return max + 1;
		w[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	return n;
}

/* Parse a decimal number of at most 9 digits; *end points past it. */
static int
schedule_num(const char *s, const char **end, long *out)
{
	long v = 0;
	int n = 0;

	while (n < 9 && isdigit((unsigned char)s[n])) {
		v = v * 10 + (s[n] - '0');
		n++;
	}
	if (n == 0 || isdigit((unsigned char)s[n]))
		return -1;
	*end = s + n;
	*out = v;
	return 0;
}

static int
schedule_hhmm(const char *s, int *h, int *m)
{
	const char *e;
	long hh, mm;

	if (schedule_num(s, &e, &hh) == -1 || e - s > 2 || *e != ':')
		return -1;
	s = e + 1;
	if (schedule_num(s, &e, &mm) == -1 || e - s != 2 || *e != '\0')
		return -1;
	if (hh > 23 || mm > 59)
		return -1;
	*h = (int)hh;
	*m = (int)mm;
	return 0;
}

/* A name from a table at the start of s (case-insensitive), returns its
 * index and the length consumed, or -1. */
static int
schedule_name(const char *s, const char **names, int nnames, size_t *len)
{
	int i;
	size_t l;

	for (i = 0; i < nnames; i++) {
		l = strlen(names[i]);
		if (strncasecmp(s, names[i], l) == 0 &&
		    !isalpha((unsigned char)s[l])) {
			*len = l;
			return i;
		}
	}
	return -1;
}

static int
schedule_dow_value(const char *s, const char **end, long *v)
{
	size_t l;
	int i;

	if ((i = schedule_name(s, schedule_dow_long, 7, &l)) == -1)
		i = schedule_name(s, schedule_dow_names, 7, &l);
	if (i != -1) {
		*end = s + l;
		*v = i;
		return 0;
	}
	if (schedule_num(s, end, v) == 0)
		return 0;
	return -1;
}

static int
schedule_month_value(const char *s, const char **end, long *v)
{
	size_t l;
	int i;

	if ((i = schedule_name(s, schedule_month_names, 12, &l)) != -1) {
		*end = s + l;
		*v = i + 1;
		return 0;
	}
	return schedule_num(s, end, v);
}

enum field_kind { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW };

static const struct {
	const char	*name;
	long		 lo, hi;
} schedule_fields[] = {
	{ "minute", 0, 59 },
	{ "hour", 0, 23 },
	{ "day-of-month", 1, 31 },
	{ "month", 1, 12 },
	{ "day-of-week", 0, 7 },
};

static int
schedule_value(enum field_kind k, const char *s, const char **end, long *v)
{
	if (k == F_DOW)
		return schedule_dow_value(s, end, v);
	if (k == F_MON)
		return schedule_month_value(s, end, v);
	return schedule_num(s, end, v);
}

/*
 * One cron field ("*", "*\/5", "1-5", "MON-FRI", "1,15,30-31/2") into a bit
 * mask.  *star is set when the field starts with '*' (cron's rule for the
 * day-of-month / day-of-week OR).
 */
static int
schedule_field(enum field_kind k, const char *s, uint64_t *mask, int *star,
    char **errmsg)
{
	const char *fname = schedule_fields[k].name, *p = s, *e;
	long lo = schedule_fields[k].lo, hi = schedule_fields[k].hi;
	long a, b, step, v;

	*mask = 0;
	*star = (*s == '*');
	for (;;) {
		if (*p == '*') {
			a = lo;
			b = hi;
			p++;
		} else {
			if (schedule_value(k, p, &e, &a) == -1)
				goto bad;
			p = e;
			b = a;
			if (*p == '-') {
				p++;
				if (schedule_value(k, p, &e, &b) == -1)
					goto bad;
				p = e;
			}
			if (a < lo || a > hi || b < lo || b > hi) {
				*errmsg = schedule_fmt("%s field '%s': value "
				    "out of range %ld-%ld", fname, s, lo, hi);
				return -1;
			}
			if (b < a) {
				*errmsg = schedule_fmt("%s field '%s': range "
				    "%ld-%ld runs backwards", fname, s, a, b);
				return -1;
			}
		}
		step = 1;
		if (*p == '/') {
			p++;
			if (schedule_num(p, &e, &step) == -1 || step == 0 ||
			    step > hi) {
				*errmsg = schedule_fmt("%s field '%s': bad step",
				    fname, s);
				return -1;
			}
			p = e;
		}
		for (v = a; v <= b; v += step)
			*mask |= (uint64_t)1 << (k == F_DOW ? v % 7 : v);
		if (*p == '\0')
			break;
		if (*p != ',')
			goto bad;
		p++;
	}
	return 0;
bad:
	*errmsg = schedule_fmt("cannot read the %s field '%s'", fname, s);
	return -1;
}

static int
schedule_days_in_month(int y, int m)
{
	static const int dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
	    31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	/* m is 1..12 (tm_mon + 1 from localtime_r, kept in range by the
	 * caller): NOLINTNEXTLINE(clang-analyzer-core.uninitialized.UndefReturn) */
	return dim[m - 1];
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t
schedule_days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* A calendar schedule that can never match (e.g. "0 0 30 2 *"). */
static int
schedule_impossible(const struct vg_schedule *s)
{
	int m, d;

	if (!s->dom_star && !s->dow_star)
		return 0;	/* OR: any matching weekday will do */
	if (s->dom_star)
		return s->months == 0 || s->dows == 0;
	for (m = 1; m <= 12; m++) {
		if (!(s->months & (1u << m)))
			continue;
		for (d = 1; d <= schedule_days_in_month(2000, m); d++)
			if (s->doms & (1u << d))
				return 0;
	}
	return 1;
}

static int
schedule_parse_every(struct vg_schedule *s, char **w, int n, char **errmsg,
    const char **hint)
{
	const char *p, *e;
	long v;
	int64_t total = 0, unit;

	*hint = HINT_EVERY;
	if (n != 2) {
		*errmsg = schedule_fmt("'every' takes one interval");
		return -1;
	}
	p = w[1];
	while (*p != '\0') {
		if (schedule_num(p, &e, &v) == -1) {
			*errmsg = schedule_fmt("cannot read the interval '%s'",
			    w[1]);
			return -1;
		}
		switch (*e) {
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		case '\0':
			*errmsg = schedule_fmt("the interval '%s' has no unit",
			    w[1]);
			return -1;
		default:
			*errmsg = schedule_fmt("unknown unit '%c' in the "
			    "interval '%s'", *e, w[1]);
			return -1;
		}
		total += v * unit;
		if (total > (int64_t)366 * 86400) {
			*errmsg = schedule_fmt("the interval '%s' is longer "
			    "than a year", w[1]);
			return -1;
		}
		p = e + 1;
	}
	if (total == 0) {
		*errmsg = schedule_fmt("the interval '%s' is zero", w[1]);
		return -1;
	}
	s->kind = SCHED_EVERY;
	s->every_s = total;
	return 0;
}

/* "Mon,Thu", "Mon-Fri" for weekly; "1,15" for monthly. */
static int
schedule_parse_simple(struct vg_schedule *s, int weekly, char **w, int n,
    char **errmsg, const char **hint)
{
	uint64_t mask;
	int h, m, star;
	char *msg = NULL;

	*hint = weekly ? HINT_WEEKLY : HINT_MONTHLY;
	if (n != 3) {
		*errmsg = schedule_fmt("'%s' takes a list of days and a time",
		    weekly ? "weekly" : "monthly");
		return -1;
	}
	if (schedule_field(weekly ? F_DOW : F_DOM, w[1], &mask, &star,
	    &msg) == -1 || star) {
		*errmsg = schedule_fmt("cannot read the days '%s'%s%s", w[1],
		    msg ? ": " : "", msg ? msg : "");
		free(msg);
		return -1;
	}
	if (schedule_hhmm(w[2], &h, &m) == -1) {
		*errmsg = schedule_fmt("cannot read the time '%s'", w[2]);
		*hint = HINT_TIME;
		return -1;
	}
	s->minutes = (uint64_t)1 << m;
	s->hours = 1u << h;
	s->months = 0x1ffe;
	if (weekly) {
		s->dows = (uint8_t)mask;
		s->doms = 0xfffffffe;
		s->dom_star = 1;
	} else {
		s->doms = (uint32_t)mask;
		s->dows = 0x7f;
		s->dow_star = 1;
	}
	s->kind = SCHED_CALENDAR;
	return 0;
}

static int
schedule_parse_cron(struct vg_schedule *s, char **w, char **errmsg)
{
	uint64_t mask[5];
	int star[5], i;

	for (i = 0; i < 5; i++)
		if (schedule_field((enum field_kind)i, w[i], &mask[i], &star[i],
		    errmsg) == -1)
			return -1;
	s->minutes = mask[F_MIN];
	s->hours = (uint32_t)mask[F_HOUR];
	s->doms = (uint32_t)mask[F_DOM];
	s->months = (uint16_t)mask[F_MON];
	s->dows = (uint8_t)mask[F_DOW];
	s->dom_star = star[F_DOM];
	s->dow_star = star[F_DOW];
	s->kind = SCHED_CALENDAR;
	return 0;
}

struct vg_schedule *
schedule_parse(const char *text, char **errmsg, const char **hint)
{
	struct vg_schedule *s = NULL;
	char *copy = NULL, *w[6];
	int n, h, m;

	*errmsg = NULL;
	*hint = NULL;
	if ((s = calloc(1, sizeof *s)) == NULL ||
	    (copy = strdup(text)) == NULL) {
		*errmsg = schedule_fmt("out of memory");
		goto fail;
	}
	n = schedule_words(copy, w, 5);
	if (n == 0) {
		*errmsg = schedule_fmt("the schedule is empty");
		*hint = HINT_FORMS;
		goto fail;
	}
	if (strcasecmp(w[0], "manual") == 0) {
		if (n != 1) {
			*errmsg = schedule_fmt("'manual' takes nothing after it");
			*hint = "write just: manual";
			goto fail;
		}
		s->kind = SCHED_MANUAL;
	} else if (strcasecmp(w[0], "daily") == 0) {
		*hint = HINT_TIME;
		if (n != 2) {
			*errmsg = schedule_fmt("'daily' takes one time");
			goto fail;
		}
		if (schedule_hhmm(w[1], &h, &m) == -1) {
			*errmsg = schedule_fmt("cannot read the time '%s'", w[1]);
			goto fail;
		}
		s->kind = SCHED_CALENDAR;
		s->minutes = (uint64_t)1 << m;
		s->hours = 1u << h;
		s->doms = 0xfffffffe;
		s->months = 0x1ffe;
		s->dows = 0x7f;
		s->dom_star = s->dow_star = 1;
	} else if (strcasecmp(w[0], "weekly") == 0 ||
	    strcasecmp(w[0], "monthly") == 0) {
		if (schedule_parse_simple(s, tolower((unsigned char)w[0][0]) ==
		    'w', w, n, errmsg, hint) == -1)
			goto fail;
	} else if (strcasecmp(w[0], "every") == 0) {
		if (schedule_parse_every(s, w, n, errmsg, hint) == -1)
			goto fail;
	} else if (n == 5 && (isdigit((unsigned char)w[0][0]) ||
	    w[0][0] == '*')) {
		*hint = HINT_CRON;
		if (schedule_parse_cron(s, w, errmsg) == -1)
			goto fail;
	} else if (isdigit((unsigned char)w[0][0]) || w[0][0] == '*') {
		*errmsg = schedule_fmt("a cron line needs 5 fields, this one "
		    "has %s", n > 5 ? "more" : n == 1 ? "1" : n == 2 ? "2" :
		    n == 3 ? "3" : "4");
		*hint = HINT_CRON;
		goto fail;
	} else {
		*errmsg = schedule_fmt("unknown schedule '%s'", w[0]);
		*hint = HINT_FORMS;
		goto fail;
	}
	if (s->kind == SCHED_CALENDAR && schedule_impossible(s)) {
		*errmsg = schedule_fmt("this schedule never runs: no month "
		    "has the days it names");
		*hint = "check the day-of-month and month fields";
		goto fail;
	}
	free(copy);
	return s;
fail:
	if (*errmsg == NULL)
		*errmsg = schedule_fmt("bad schedule");
	free(copy);
	free(s);
	return NULL;
}

void
schedule_free(struct vg_schedule *s)
{
	free(s);
}

bool
schedule_is_manual(const struct vg_schedule *s)
{
	return s == NULL || s->kind == SCHED_MANUAL;
}

/* Wall-clock key of an instant: local civil time as seconds. */
static int64_t
schedule_wallkey(time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL)
		return INT64_MIN;
	return schedule_days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday) * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60 +
	    tm.tm_sec;
}

static time_t
schedule_mktime(int y, int mon, int d, int h, int min, int isdst)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = min;
	tm.tm_isdst = isdst;
	return mktime(&tm);
}

/*
 * The instant at which wall time y-mon-d h:min first happens: its first
 * occurrence when it happens twice, or the moment the clock jumps past it
 * when it does not exist.  Returns (time_t)-1 if it cannot be computed.
 */
static time_t
schedule_wall_to_time(int y, int mon, int d, int h, int min)
{
	int64_t want = schedule_days_from_civil(y, mon, d) * 86400 +
	    h * 3600 + min * 60;
	time_t cand[3], best = (time_t)-1, lo, hi, mid;
	int i;

	cand[0] = schedule_mktime(y, mon, d, h, min, 1);
	cand[1] = schedule_mktime(y, mon, d, h, min, 0);
	cand[2] = schedule_mktime(y, mon, d, h, min, -1);
	for (i = 0; i < 3; i++) {
		if (cand[i] == (time_t)-1 || schedule_wallkey(cand[i]) != want)
			continue;
		if (best == (time_t)-1 || cand[i] < best)
			best = cand[i];
	}
	if (best != (time_t)-1)
		return best;
	/*
	 * Skipped by a clock change: find the first instant whose wall time
	 * is past the wanted one.  Around one transition the wall time grows
	 * with the instant, so a binary search over a day either side works.
	 */
	if (cand[2] == (time_t)-1)
		return (time_t)-1;
	lo = cand[2] - 86400;
	hi = cand[2] + 86400;
	if (schedule_wallkey(hi) < want)
		return (time_t)-1;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (schedule_wallkey(mid) >= want)
			hi = mid;
		else
			lo = mid + 1;
	}
	/* Round up to a whole minute of the clock. */
	if (lo % 60 != 0)
		lo += 60 - lo % 60;
	return lo;
}

static time_t
schedule_next_calendar(const struct vg_schedule *s, time_t after)
{
	struct tm tm;
	int64_t day;
	int y, mon, d, dow, h, min, first, dom_ok, dow_ok, start_h, start_m;
	long i;
	time_t t;

	if (localtime_r(&after, &tm) == NULL)
		return 0;
	y = tm.tm_year + 1900;
	mon = tm.tm_mon + 1;
	d = tm.tm_mday;
	start_h = tm.tm_hour;
	start_m = tm.tm_min;
	first = 1;
	for (i = 0; i < SCHEDULE_HORIZON_DAYS; i++) {
		day = schedule_days_from_civil(y, mon, d);
		dow = (int)(((day % 7) + 11) % 7);	/* 1970-01-01: Thu */
		dom_ok = (s->doms >> d) & 1;
		dow_ok = (s->dows >> dow) & 1;
		if (((s->months >> mon) & 1) &&
		    ((s->dom_star || s->dow_star) ? (dom_ok && dow_ok) :
		    (dom_ok || dow_ok))) {
			for (h = first ? start_h : 0; h < 24; h++) {
				if (!((s->hours >> h) & 1))
					continue;
				for (min = (first && h == start_h) ? start_m : 0;
				    min < 60; min++) {
					if (!((s->minutes >> min) & 1))
						continue;
					t = schedule_wall_to_time(y, mon, d, h,
					    min);
					if (t != (time_t)-1 && t > after)
						return t;
				}
			}
		}
		first = 0;
		if (++d > schedule_days_in_month(y, mon)) {
			d = 1;
			if (++mon > 12) {
				mon = 1;
				y++;
			}
		}
	}
	return 0;
}

time_t
schedule_next(const struct vg_schedule *s, time_t after, time_t last_run)
{
	time_t n;

	if (s == NULL || s->kind == SCHED_MANUAL)
		return 0;
	if (s->kind == SCHED_EVERY) {
		if (last_run <= 0)
			return after + (time_t)s->every_s;
		n = last_run + (time_t)s->every_s;
		if (n > after)
			return n;
		return last_run + ((after - last_run) / s->every_s + 1) *
		    (time_t)s->every_s;
	}
	return schedule_next_calendar(s, after);
}
