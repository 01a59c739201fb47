/*
 * fuzz_schedule.c: libFuzzer target for schedule expressions
 * (common/schedule.h): `schedule = ...` in a jobs file.
 *
 * The input's first line is the expression.  Bytes after the first newline,
 * if any, choose the moment: 8 bytes of "after" (kept between 1970 and
 * 2200), 8 bytes of the last run (kept at or before "after"), and one byte
 * picking the time zone (UTC and zones with DST, half-hour DST and
 * southern-hemisphere DST).  Checked: schedule_parse() ends and frees
 * cleanly; every error comes with a message; schedule_next() ends (the
 * fuzzer's timeout catches a loop) and returns 0 or a time after "after";
 * asked again from that time it moves on (five steps).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/schedule.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_T_MAX	((time_t)7258118400LL)	/* 2200-01-01 */

static const char *const fuzz_zones[] = {
	"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
	"Pacific/Chatham", "America/Santiago", "Asia/Kolkata",
	"America/St_Johns",
};

static int	fuzz_zone = -1;

static uint64_t
fuzz_u64(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < 8 && i < n; i++)
		v = v << 8 | p[i];
	return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vg_schedule *s;
	const uint8_t *nl, *rest;
	const char *hint = NULL;
	char *text, *errmsg = NULL;
	size_t len, nrest;
	time_t after = 1700000000, last = 0, n, prev;
	int zone = 0, i;

	if (size > 4096)
		return 0;
	nl = memchr(data, '\n', size);
	len = nl != NULL ? (size_t)(nl - data) : size;
	if ((text = malloc(len + 1)) == NULL)
		return 0;
	memcpy(text, data, len);
	text[len] = '\0';
	if (nl != NULL) {
		rest = nl + 1;
		nrest = size - len - 1;
		if (nrest >= 8)
			after = (time_t)(fuzz_u64(rest, 8) %
			    (uint64_t)FUZZ_T_MAX);
		if (nrest >= 16)
			last = after == 0 ? 0 : (time_t)(fuzz_u64(rest + 8,
			    8) % (uint64_t)after);
		if (nrest >= 17)
			zone = rest[16] % (int)(sizeof fuzz_zones /
			    sizeof fuzz_zones[0]);
	}
	if (zone != fuzz_zone) {
		setenv("TZ", fuzz_zones[zone], 1);
		tzset();
		fuzz_zone = zone;
	}

	if ((s = schedule_parse(text, &errmsg, &hint)) == NULL) {
		if (errmsg == NULL || errmsg[0] == '\0') {
			fprintf(stderr, "schedule_parse failed without a "
			    "message\n");
			abort();
		}
		free(errmsg);
		free(text);
		return 0;
	}
	free(errmsg);
	prev = after;
	for (i = 0; i < 5; i++) {
		n = schedule_next(s, prev, last);
		if (n == 0)
			break;	/* manual, or never (Feb 30) */
		if (n <= prev) {
			fprintf(stderr, "schedule_next(\"%s\", %lld, %lld) = "
			    "%lld, not after\n", text, (long long)prev,
			    (long long)last, (long long)n);
			abort();
		}
		prev = n;
	}
	if (schedule_is_manual(s) && schedule_next(s, after, last) != 0)
		abort();
	schedule_free(s);
	free(text);
	return 0;
}
