/*
 * snap_lvm.c: the LVM snapshot provider (common/snapshot.h).
 *
 * Not built yet: an LVM snapshot needs lvcreate -s, a device-mapper
 * snapshot target and a read-only mount of the snapshot, none of which the
 * test machines can exercise.  Until it can be tested on a real volume
 * group, it refuses clearly instead of pretending, and `snapshot = auto`
 * never chooses it.
 */
#include <errno.h>
#include <stdio.h>

#include "common/snapshot.h"

int
snap_lvm_check(const char *path, char *why, size_t whylen)
{
	(void)path;
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "LVM snapshots are not supported by this "
		    "build; use snapshot = auto, btrfs, reflink or verify");
	errno = ENOTSUP;
	return -1;
}
