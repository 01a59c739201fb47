#!/bin/sh
# test_snapshots.sh SNAPDRIVER: the snapshot providers on real filesystems.
#
# As root, makes a btrfs and an XFS (reflink=1) image, loop-mounts them and,
# with a writer process that rewrites one file and appends to another with
# embedded sequence numbers:
#   1. btrfs: the run reads a read-only snapshot; each copied file is one
#      moment and the order of synced writes holds across them; no snapshot
#      remains afterwards;
#   2. XFS: reflink clones; each file is one moment; the staging folder is
#      gone afterwards;
#   3. a snapshot (and a staging folder) held by a killed process is found in
#      the DB and removed by the start-up cleanup;
#   4. auto picks verify on a filesystem that is neither;
#   5. a user's job: the root side takes the snapshot, the copy runs as the
#      user, who reads their own files and nothing more.
# A control copies the live files slowly without any capture and must be
# seen as torn, so the check can fail.
# Where mounting is impossible: prints SKIPPED and exits 77 (1 under
# CI=true).  VIGIL_SNAP_BENCH=1 also measures a btrfs snapshot of a
# subvolume holding copies of /usr/include (about 30k files).
set -u

DRV=${1:?usage: test_snapshots.sh SNAPDRIVER}
TESTUSER=vigilsnaptest

skip() {
	echo "SKIPPED: $*"
	[ "${CI:-}" = true ] && exit 1
	exit 77
}
fail() {
	echo "FAIL: $*"
	exit 1
}
ok() {
	echo "ok: $*"
}

[ "$(id -u)" -eq 0 ] || skip "not root: loop mounts need root"
for t in mkfs.btrfs mkfs.xfs btrfs mount umount losetup truncate; do
	command -v "$t" >/dev/null 2>&1 ||
		skip "$t is missing (apt-get install btrfs-progs xfsprogs)"
done
[ -x "$DRV" ] || fail "no snapdriver at $DRV"

W=$(mktemp -d "${TMPDIR:-/tmp}/vigil-snaptest-XXXXXX") || fail "mktemp"
chmod 755 "$W"
PIDS=""
MADEUSER=""
cleanup() {
	for p in $PIDS; do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
	for m in "$W/b" "$W/x"; do
		mountpoint -q "$m" 2>/dev/null && umount "$m"
	done
	[ -n "$MADEUSER" ] && userdel "$TESTUSER" 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir "$W/b" "$W/x" "$W/plain"
truncate -s 1536M "$W/b.img" && truncate -s 512M "$W/x.img" ||
	fail "cannot make the images"
mkfs.btrfs -q "$W/b.img" >/dev/null 2>&1 || skip "mkfs.btrfs failed"
mkfs.xfs -q -m reflink=1 "$W/x.img" >/dev/null 2>&1 ||
	skip "mkfs.xfs -m reflink=1 failed"
mount -o loop "$W/b.img" "$W/b" 2>"$W/mount.err" ||
	skip "cannot loop-mount btrfs: $(cat "$W/mount.err")"
mount -o loop "$W/x.img" "$W/x" 2>"$W/mount.err" ||
	skip "cannot loop-mount xfs: $(cat "$W/mount.err")"
DB="$W/state/vigil.db"
mkdir -m 700 "$W/state"

# start_writer DIR [--sync]: the writer, once its files exist
start_writer() {
	"$DRV" writer "$@" >"$W/writer.out" 2>&1 &
	WPID=$!
	PIDS="$PIDS $WPID"
	n=0
	until grep -q ready "$W/writer.out" 2>/dev/null; do
		n=$((n + 1))
		[ $n -gt 100 ] && fail "the writer did not start"
		sleep 0.1
	done
	sleep 0.3
}
stop_writer() {
	kill -9 "$WPID" 2>/dev/null
	wait "$WPID" 2>/dev/null
}
field() {	# field FILE KEY
	sed -n "s/^$2 //p" "$1" | head -n 1
}
no_snapshots() {	# no subvolume but the ones named in $@ on $W/b
	left=$(btrfs subvolume list "$W/b" | awk '{print $NF}' | sort | tr '\n' ' ')
	want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
	[ "$left" = "$want" ] || fail "subvolumes left: $left (want $want)"
	[ ! -e "$W/b/.vigil-snapshots" ] || fail ".vigil-snapshots left behind"
}

# ---- control: a live slow copy is torn, and the check sees it ----
mkdir "$W/x/ctl" "$W/ctlcopy"
start_writer "$W/x/ctl"
"$DRV" slowcopy "$W/x/ctl/rewrite.dat" "$W/ctlcopy/rewrite.dat" ||
	fail "slowcopy"
cp "$W/x/ctl/append.log" "$W/ctlcopy/append.log"
stop_writer
if "$DRV" check "$W/ctlcopy" --per-file >"$W/ctl.out"; then
	fail "control: a live slow copy was not seen as torn: $(cat "$W/ctl.out")"
fi
ok "control: live copy is torn ($(cat "$W/ctl.out"))"

# ---- 1. btrfs snapshot ----
btrfs -q subvolume create "$W/b/sv" >/dev/null || fail "subvolume create"
mkdir "$W/out1"
# A snapshot keeps what a crash would keep: each file as of one moment, and
# the order of synced writes (data written without sync after the kernel's
# flush for the snapshot is not in it), so this writer syncs.
start_writer "$W/b/sv" --sync
"$DRV" run "$DB" "$W/b/sv" "$W/out1" auto >"$W/run1.out" 2>&1 ||
	{ cat "$W/run1.out"; fail "btrfs run failed"; }
stop_writer
[ "$(field "$W/run1.out" capture)" = snapshot-btrfs ] ||
	{ cat "$W/run1.out"; fail "auto did not choose btrfs on btrfs"; }
case "$(field "$W/run1.out" read_from)" in
"$W/b/.vigil-snapshots/"*) ;;
*) fail "read_from is not a snapshot: $(field "$W/run1.out" read_from)" ;;
esac
grep -q "^file rewrite.dat snapshot-btrfs copies=1" "$W/run1.out" ||
	{ cat "$W/run1.out"; fail "rewrite.dat not read from the snapshot"; }
"$DRV" check "$W/out1" --ordered >"$W/check1.out" ||
	fail "btrfs: $(cat "$W/check1.out")"
# the snapshot is older than the live files: the writer went on
live=$(tail -n 1 "$W/b/sv/append.log")
got=$(tail -n 1 "$W/out1/append.log")
[ "$live" -gt "$got" ] || fail "btrfs: the copy ($got) is not older than the live file ($live)"
no_snapshots sv
ok "btrfs: $(cat "$W/check1.out"), snapshot removed"

# ---- 2. reflink on XFS ----
mkdir "$W/x/src" "$W/out2"
start_writer "$W/x/src"
"$DRV" run "$DB" "$W/x/src" "$W/out2" auto >"$W/run2.out" 2>&1 ||
	{ cat "$W/run2.out"; fail "xfs run failed"; }
stop_writer
[ "$(field "$W/run2.out" capture)" = reflink ] ||
	{ cat "$W/run2.out"; fail "auto did not choose reflink on xfs"; }
staging=$(field "$W/run2.out" staging)
[ "$staging" = "$W/x/.vigil-staging-r$(field "$W/run2.out" run)" ] ||
	fail "staging folder $staging is not at the mount root"
grep -q "^file rewrite.dat reflink copies=1" "$W/run2.out" ||
	{ cat "$W/run2.out"; fail "rewrite.dat was not cloned"; }
"$DRV" check "$W/out2" --per-file >"$W/check2.out" ||
	fail "xfs: $(cat "$W/check2.out")"
ls -a "$W/x" | grep -q '^\.vigil-staging' && fail "xfs: staging folder left"
ok "xfs reflink: $(cat "$W/check2.out"), staging removed"

# ---- 3. a killed run's snapshot and staging folder ----
"$DRV" hold "$DB" "$W/b/sv" btrfs >"$W/hold.out" 2>&1 &
HPID=$!
PIDS="$PIDS $HPID"
"$DRV" hold "$DB" "$W/x/src" reflink >"$W/hold2.out" 2>&1 &
H2PID=$!
PIDS="$PIDS $H2PID"
n=0
until grep -q holding "$W/hold.out" && grep -q holding "$W/hold2.out"; do
	n=$((n + 1))
	[ $n -gt 100 ] && { cat "$W/hold.out" "$W/hold2.out"; fail "hold"; }
	sleep 0.1
done
snap=$(field "$W/hold.out" read_from)
stg=$(field "$W/hold2.out" staging)
[ -d "$snap" ] || fail "the held snapshot $snap does not exist"
[ -d "$stg" ] || fail "the held staging folder $stg does not exist"
kill -9 "$HPID" "$H2PID"
wait "$HPID" "$H2PID" 2>/dev/null
[ -d "$snap" ] || fail "the snapshot went with the process"
"$DRV" cleanup "$DB" >"$W/cleanup.out" 2>&1 ||
	{ cat "$W/cleanup.out"; fail "cleanup"; }
grep -q "removed 2 failed 0" "$W/cleanup.out" ||
	fail "cleanup: $(cat "$W/cleanup.out")"
[ ! -e "$snap" ] || fail "cleanup left $snap"
[ ! -e "$stg" ] || fail "cleanup left $stg"
no_snapshots sv
"$DRV" cleanup "$DB" | grep -q "removed 0 failed 0" ||
	fail "a second cleanup found more"
ok "killed run: snapshot and staging removed at the next start"

# ---- 4. neither btrfs nor reflink: verify ----
case "$(stat -f -c %T "$W/plain")" in
btrfs | xfs) echo "note: the temp folder is on btrfs/xfs; step 4 not run" ;;
*)
	echo data >"$W/plain/f"
	mkdir "$W/out4"
	"$DRV" run "$DB" "$W/plain" "$W/out4" auto >"$W/run4.out" 2>&1 ||
		fail "plain run: $(cat "$W/run4.out")"
	[ "$(field "$W/run4.out" capture)" = verified ] ||
		fail "auto did not choose verify: $(cat "$W/run4.out")"
	grep -q "^reason verified copy; no btrfs snapshot: not btrfs" \
	    "$W/run4.out" || fail "no reason: $(cat "$W/run4.out")"
	ok "plain filesystem: $(field "$W/run4.out" reason)"
	;;
esac

# ---- 5. a user's job on btrfs ----
if ! id "$TESTUSER" >/dev/null 2>&1; then
	useradd -M -r -s /usr/sbin/nologin "$TESTUSER" >/dev/null 2>&1 &&
		MADEUSER=1
fi
if id "$TESTUSER" >/dev/null 2>&1; then
	U=$(id -u "$TESTUSER")
	G=$(id -g "$TESTUSER")
	btrfs -q subvolume create "$W/b/usv" >/dev/null
	chown "$U:$G" "$W/b/usv"
	echo mine >"$W/b/usv/own.txt"
	chown "$U:$G" "$W/b/usv/own.txt"
	echo root-only >"$W/b/usv/secret.txt"
	chmod 600 "$W/b/usv/secret.txt"
	mkdir "$W/out5"
	chown "$U:$G" "$W/out5"
	"$DRV" run "$DB" "$W/b/usv" "$W/out5" auto "$U" "$G" \
	    >"$W/run5.out" 2>&1
	rc=$?
	[ "$(field "$W/run5.out" capture)" = snapshot-btrfs ] ||
		fail "user job: $(cat "$W/run5.out")"
	grep -q "^file own.txt snapshot-btrfs" "$W/run5.out" ||
		fail "user job: own.txt not copied: $(cat "$W/run5.out")"
	grep -q "^file secret.txt unreadable" "$W/run5.out" ||
		fail "user job: the user read secret.txt: $(cat "$W/run5.out")"
	[ $rc -eq 1 ] || fail "user job: exit $rc, want 1 (one unreadable)"
	[ "$(cat "$W/out5/own.txt")" = mine ] || fail "user job: own.txt"
	[ ! -e "$W/out5/secret.txt" ] || fail "user job: secret.txt copied"
	grep -q released "$W/run5.out" || fail "user job: not released"
	no_snapshots sv usv
	ok "user job: snapshot by root, read as uid $U, no more access"
else
	echo "note: cannot create user $TESTUSER; step 5 not run"
fi

# ---- measurement ----
if [ "${VIGIL_SNAP_BENCH:-}" = 1 ]; then
	btrfs -q subvolume create "$W/b/bench" >/dev/null
	start=$(date +%s.%N)
	for i in 1 2 3 4; do
		cp -a /usr/include "$W/b/bench/inc$i"
	done
	sync
	end=$(date +%s.%N)
	echo "bench: $(find "$W/b/bench" | wc -l) entries," \
	    "$(du -sh "$W/b/bench" | cut -f1); cp -a took" \
	    "$(echo "$end - $start" | bc) s"
	"$DRV" bench "$W/b/bench" 5 "$DB" | tail -n 1
fi

echo "PASS"
exit 0
