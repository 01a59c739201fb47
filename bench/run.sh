#!/bin/bash
# bench/run.sh: vigil against the tools a user would pick instead, on one
# corpus, in one run (issue 3, "Speed").
#
#   bench/run.sh [--build DIR] [--corpus PATH]... [--max-mb N] [--reps N]
#                [--files N] [--age S] [--work DIR] [--keep] [--no-install]
#
# Corpus: a copy of /usr/share and /usr/include (or the --corpus paths),
# cut at --max-mb MiB when given, in a temp folder; it prints what it used.
# --files N adds the memory case: a generated tree of N small files, one
# no-change vigil run over it, peak RSS and catalogue size.
# Each row runs vigil and its peer alternately --reps times (default 3),
# the corpus in page cache, each command after a sync (none pays for the
# other's unwritten data), and prints the medians and vigil/peer.  Times
# run until the output is durable: the command and a sync after it (vigil
# syncs before it reports ok; its peers leave their output in the page
# cache).  The ratio of the times to return is printed beside it.
# The 1 % row changes files of copies made --age seconds before (default
# 45): a nightly run replaces files an earlier run wrote, and some disks
# free blocks written in the last half minute ten times slower (the
# script measures and prints this for the work folder's disk).
# Peers: rsync -a, cp -a, tar czf, tar -I 'zstd -T0' -cf, restic backup,
# bsdtar --format zip.  Peak RSS comes from /usr/bin/time -v.
# Run as any user; as root it installs missing peers with apt-get (never
# in CI: this script is not part of the test suite).
set -u

BUILD=""
CORPUS=()
MAXMB=0
REPS=3
FILES=0
AGE=45
WORK=""
KEEP=0
INSTALL=1
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift 2 ;;
	--corpus) CORPUS+=("$2"); shift 2 ;;
	--max-mb) MAXMB=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--files) FILES=$2; shift 2 ;;
	--age) AGE=$2; shift 2 ;;
	--work) WORK=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--no-install) INSTALL=0; shift ;;
	-h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done
[ ${#CORPUS[@]} -eq 0 ] && CORPUS=(/usr/share /usr/include)
HERE=$(cd "$(dirname "$0")" && pwd)
[ -z "$BUILD" ] && BUILD=$HERE/../build
VIGIL=$BUILD/agent/vigil
if [ ! -x "$VIGIL" ]; then
	echo "bench: no vigil at $VIGIL (build first, or give --build DIR)" >&2
	exit 1
fi

# ---- peers ----
need="rsync restic hyperfine zstd libarchive-tools time"
if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ]; then
	miss=""
	for p in $need; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q "ok installed" || miss="$miss $p"
	done
	if [ -n "$miss" ]; then
		echo "bench: installing$miss"
		apt-get install -y -qq $miss >/dev/null ||
		    { apt-get update -qq && apt-get install -y -qq $miss >/dev/null; }
	fi
fi
for t in rsync restic zstd bsdtar tar cp /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }
done

[ -z "$WORK" ] && WORK=$(mktemp -d /tmp/vigil-bench-XXXXXX)
mkdir -p "$WORK"
[ "$KEEP" = 1 ] || trap 'rm -rf "$WORK"' EXIT
SRC=$WORK/corpus
NCPU=$(nproc)

# ---- the corpus ----
echo "== building the corpus in $SRC from ${CORPUS[*]}" \
    "$([ "$MAXMB" -gt 0 ] && echo "(cut at $MAXMB MiB)")"
mkdir -p "$SRC"
for c in "${CORPUS[@]}"; do
	name=$(basename "$c")
	if [ "$MAXMB" -gt 0 ]; then
		# the first files (in find order) up to the budget
		left=$((MAXMB * 1048576 - $(du -sb "$SRC" | cut -f1)))
		[ $left -le 0 ] && break
		(cd "$(dirname "$c")" && find "$name" -type f -printf '%s %p\n' 2>/dev/null |
		    awk -v left=$left '{ s += $1; if (s > left) exit; sub(/^[0-9]+ /, ""); print }') \
		    > "$WORK/list"
		rsync -a --files-from="$WORK/list" "$(dirname "$c")" "$SRC/" 2>/dev/null
		# symlinks and empty folders too
		(cd "$(dirname "$c")" && find "$name" -type l 2>/dev/null | head -5000) > "$WORK/list"
		rsync -a --files-from="$WORK/list" "$(dirname "$c")" "$SRC/" 2>/dev/null
	else
		cp -a "$c" "$SRC/$name" 2>/dev/null
	fi
done
nfiles=$(find "$SRC" -type f | wc -l)
nlinks=$(find "$SRC" -type l | wc -l)
bytes=$(du -sb --apparent-size "$SRC" | cut -f1)
echo "   corpus: $nfiles files, $nlinks symlinks, $((bytes / 1048576)) MiB" \
    "(apparent), on $(df -T "$SRC" | awk 'NR==2 {print $2}'), $NCPU CPUs"
tar cf /dev/null "$SRC" 2>/dev/null	# into page cache

# ---- timing helpers ----
# A backup is done when it is on disk, not when the command returns:
# vigil syncs what it wrote before it reports ok, rsync, cp, tar and
# restic leave it in the page cache.  So each command is timed until its
# output is durable: the command, then a sync, both on the clock.  The
# time to return alone is kept as well and printed beside the ratio.
#
# t_run NAME CMD...: wall seconds until durable to $WORK/t.NAME, until
# return to $WORK/r.NAME, peak RSS KiB to $WORK/m.NAME (each appended).
t_run() {
	local name=$1; shift
	# no dirty pages of the previous command: a tool that flushes (vigil's
	# syncfs) must not pay for what its peer left unwritten
	sync
	/usr/bin/time -f "%e %M" -o "$WORK/tt" "$@" >"$WORK/out.$name" 2>&1
	local rc=$?
	local s0 s1
	s0=$(date +%s.%N)
	sync
	s1=$(date +%s.%N)
	read -r e m < <(tail -1 "$WORK/tt")
	echo "$e" >> "$WORK/r.$name"
	awk -v e="$e" -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f\n", e + b - a }' >> "$WORK/t.$name"
	echo "$m" >> "$WORK/m.$name"
	if [ $rc -ne 0 ] && [ $rc -ne 3 ]; then
		echo "   ($name exited $rc: $(tail -3 "$WORK/out.$name" | tr '\n' ' '))"
	fi
}
med() { sort -g "$1" | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
median() { med "$WORK/t.$1"; }
rmedian() { med "$WORK/r.$1"; }
maxrss() { sort -g "$WORK/m.$1" | tail -1; }
ratio() { awk -v v="$1" -v p="$2" 'BEGIN { printf "%.2f", (p > 0) ? v / p : 0 }'; }
ROWS=()
row() {	# row CASE PEER VIGILKEY PEERKEY TARGET [EXTRA]
	local v p r ok rr
	v=$(median "$3"); p=$(median "$4")
	r=$(ratio "$v" "$p")
	rr=$(ratio "$(rmedian "$3")" "$(rmedian "$4")")
	ok=$(awk -v r="$r" -v t="$5" 'BEGIN { print (r <= t) ? "yes" : "NO" }')
	ROWS+=("$(printf '| %s | %s | %ss | %ss | %s | ≤ %s | %s | %s (%ss / %ss) |%s' "$1" "$2" "$v" "$p" "$r" "$5" "$ok" "$rr" "$(rmedian "$3")" "$(rmedian "$4")" "${6:-}")")
}

VV=("$VIGIL" --state-dir "$WORK/state")
V() { "${VV[@]}" "$@"; }
jobs_ini() {	# NAME DEST MODE [key=value...]
	local n=$1 d=$2 m=$3; shift 3
	{ echo "[job $n]"; echo "source = $SRC"; echo "destination = $d"
	  echo "mode = $m"; for kv in "$@"; do echo "${kv%%=*} = ${kv#*=}"; done
	  echo; } > "$WORK/$n.ini"
	V jobs import "$WORK/$n.ini" >/dev/null
}

export RESTIC_PASSWORD=bench
alternate() {	# REP: run A then B on even reps, B then A on odd
	[ $(($1 % 2)) -eq 0 ]
}

# free_probe fresh|aged: what removing a file costs on the work folder's
# disk, per file, for 200 files of 40 KB: written just now ("fresh"), or
# written before the --age wait ("aged": made by the fresh call).  Both
# tools free the old copy of each file they replace in the 1 % row.
free_probe() {
	local d=$WORK/probe s e
	if [ "$1" = fresh ]; then
		mkdir -p "$d.f" "$d.a"
		for n in $(seq 1 200); do
			head -c 40000 /dev/zero > "$d.f/$n"
			head -c 40000 /dev/zero > "$d.a/$n"
		done
		sync
		d=$d.f
	else
		d=$d.a
	fi
	s=$(date +%s%N); rm -rf "$d"; sync; e=$(date +%s%N)
	FREE+=("$1: $(( (e - s) / 200000 )) us a file")
}
FREE=()
LATER=()

# ---- 1-3: backup mode against rsync -a ----
echo "== backup mode against rsync -a ($REPS reps)"
for i in $(seq 1 "$REPS"); do
	# A new destination each rep, all removed after the last: ext4
	# passes over inodes freed in the last minutes when it allocates
	# (recently_deleted()), so copies made just after removing the last
	# rep's 160,000 files measured that scan as much as the tools.
	rm -rf "$WORK/state"
	rd=$WORK/rd$i
	jobs_ini bk "$WORK/vd$i" backup
	if alternate "$i"; then
		t_run v_first "${VV[@]}" run bk --wait; t_run r_first rsync -a "$SRC/" "$rd/"
	else
		t_run r_first rsync -a "$SRC/" "$rd/"; t_run v_first "${VV[@]}" run bk --wait
	fi
	if alternate "$i"; then
		t_run v_nochg "${VV[@]}" run bk --wait; t_run r_nochg rsync -a "$SRC/" "$rd/"
	else
		t_run r_nochg rsync -a "$SRC/" "$rd/"; t_run v_nochg "${VV[@]}" run bk --wait
	fi
	# 1 % of the files changed (a different 1 % each rep), in copies
	# --age seconds old: the probe below shows why
	[ "$i" = 1 ] && free_probe fresh
	sleep "$AGE"
	[ "$i" = 1 ] && free_probe aged
	find "$SRC" -type f | awk -v s="$i" 'BEGIN { srand(s) } rand() < 0.01' > "$WORK/chg"
	while IFS= read -r f; do printf 'x' >> "$f"; done < "$WORK/chg"
	if alternate "$i"; then
		t_run v_1pct "${VV[@]}" run bk --wait; t_run r_1pct rsync -a "$SRC/" "$rd/"
	else
		t_run r_1pct rsync -a "$SRC/" "$rd/"; t_run v_1pct "${VV[@]}" run bk --wait
	fi
done
catsize=$(du -sb "$WORK/state/catalogue" 2>/dev/null | cut -f1)
row "first full copy (backup mode)" 'rsync -a' v_first r_first 0.8
row "no-change incremental" 'rsync -a, second run' v_nochg r_nochg 0.5
row "1 % of files changed" 'rsync -a' v_1pct r_1pct 0.6

# cp -a, for reference (no target in the issue)
for i in $(seq 1 "$REPS"); do
	t_run cp_first cp -a "$SRC" "$WORK/cd$i"
done
rm -rf "$WORK"/cd[0-9]* "$WORK"/rd[0-9]* "$WORK"/vd[0-9]*

# ---- 4 and 7: restic ----
echo "== restic ($REPS reps)"
for i in $(seq 1 "$REPS"); do
	rm -rf "$WORK/repo" "$WORK/ad"
	restic init --repo "$WORK/repo" -q >/dev/null 2>&1
	jobs_ini az "$WORK/ad" archive format=tar.zst compression=6
	if alternate "$i"; then
		t_run va_first "${VV[@]}" run az --wait
		t_run rs_first restic backup --repo "$WORK/repo" -q "$SRC"
	else
		t_run rs_first restic backup --repo "$WORK/repo" -q "$SRC"
		t_run va_first "${VV[@]}" run az --wait
	fi
	t_run rs_nochg restic backup --repo "$WORK/repo" -q "$SRC"
done
rm -rf "$WORK/repo" "$WORK/ad"
row "no-change incremental" 'restic backup, second run' v_nochg rs_nochg 0.15
row "first archive backup, tar.zst" 'restic backup, first run' va_first rs_first 1.0

# ---- 5, 6, 8: archives ----
echo "== archives ($REPS reps)"
gzsize=0; vgzsize=0
for i in $(seq 1 "$REPS"); do
	for fmt in tar.gz tar.zst zip; do
		k=${fmt//./}
		rm -rf "$WORK/state" "$WORK/ad" "$WORK/peer.$fmt"
		jobs_ini "a$k" "$WORK/ad" archive format=$fmt compression=6
		case $fmt in
		tar.gz) peer=(tar czf "$WORK/peer.$fmt" -C "$WORK" corpus) ;;
		tar.zst) peer=(tar -I 'zstd -T0' -cf "$WORK/peer.$fmt" -C "$WORK" corpus) ;;
		zip) peer=(bsdtar --format zip -cf "$WORK/peer.$fmt" -C "$WORK" corpus) ;;
		esac
		if alternate "$i"; then
			t_run "v_$k" "${VV[@]}" run "a$k" --wait; t_run "p_$k" "${peer[@]}"
		else
			t_run "p_$k" "${peer[@]}"; t_run "v_$k" "${VV[@]}" run "a$k" --wait
		fi
		vs=$(stat -c %s "$WORK"/ad/*."$fmt" 2>/dev/null | head -1)
		ps=$(stat -c %s "$WORK/peer.$fmt")
		echo "$vs $ps" > "$WORK/size.$k"
	done
done
sz() { awk '{ printf " vigil %.1f MiB, peer %.1f MiB (%+.1f %%)", $1 / 1048576, $2 / 1048576, ($1 - $2) * 100 / $2 }' "$WORK/size.$1"; }
row "tar.gz archive, level 6" 'tar czf' v_targz p_targz 0.6 "$(sz targz)"
row "tar.zst archive" "tar -I 'zstd -T0' -cf" v_tarzst p_tarzst 1.0 "$(sz tarzst)"
row "zip archive" 'bsdtar --format zip' v_zip p_zip 1.0 "$(sz zip)"
rm -rf "$WORK/ad" "$WORK"/peer.*

# ---- memory ----
MEM=()
MEM+=("peak RSS, vigil no-change run over the corpus ($nfiles files): $(( $(maxrss v_nochg) / 1024 )) MiB")
MEM+=("catalogue for the corpus: $(( ${catsize:-0} / 1024 )) KiB")
if [ "$FILES" -gt 0 ]; then
	echo "== generating $FILES small files"
	G=$WORK/many
	python3 - "$G" "$FILES" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root, exist_ok=True)
per = 1000
for i in range(n):
    d = os.path.join(root, "d%04d" % (i // per))
    if i % per == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d.txt" % i), "w") as f:
        f.write("small file %d\n" % i)
EOF
	rm -rf "$WORK/state" "$WORK/md"
	{ echo "[job many]"; echo "source = $G"; echo "destination = $WORK/md"
	  echo "mode = backup"; echo; } > "$WORK/many.ini"
	V jobs import "$WORK/many.ini" >/dev/null
	t_run m_first "${VV[@]}" run many --wait
	t_run m_nochg "${VV[@]}" run many --wait
	csz=$(du -sb "$WORK/state/catalogue" | cut -f1)
	MEM+=("peak RSS, no-change run over $FILES small files: $(( $(maxrss m_nochg) / 1024 )) MiB (limit 100 MiB), took $(median m_nochg)s")
	MEM+=("catalogue for $FILES files: $(( csz / 1048576 )) MiB (limit 200 MB)")
	LATER+=("$G" "$WORK/md")	# removed after the table: 2,000,000 files
fi

echo
echo "corpus: $nfiles files, $((bytes / 1048576)) MiB from ${CORPUS[*]}$([ "$MAXMB" -gt 0 ] && echo " (cut at $MAXMB MiB)"); $REPS reps; $NCPU CPUs; medians of wall-clock seconds"
echo
echo "Times are until durable (the command, then sync); the last column is"
echo "the ratio of the times to return, with those times."
echo
echo "| case | peer | vigil | peer | vigil/peer | target | met | to return |"
echo "|---|---|---|---|---|---|---|---|"
for r in "${ROWS[@]}"; do echo "$r"; done
echo "| (reference) first copy | cp -a | $(median v_first)s | $(median cp_first)s | $(ratio "$(median v_first)" "$(median cp_first)") | - | - | $(ratio "$(rmedian v_first)" "$(rmedian cp_first)") |"
echo
for m in "${MEM[@]}"; do echo "- $m"; done
echo "- removing a 40 KB file from the work folder's disk, written just now"
echo "  and ${AGE} s before: ${FREE[*]}"
if [ ${#LATER[@]} -gt 0 ]; then rm -rf "${LATER[@]}"; fi
