#!/bin/sh
# run.sh [SECONDS]: build vigil's libFuzzer targets with clang (ASan and
# UBSan) in build-fuzz, and run each one for SECONDS (default
# $VIGIL_FUZZ_SECONDS, else 60) on a temp copy of its seed corpus.  Fails
# when a target crashes, leaks, times out, runs out of memory or prints a
# sanitizer report; the reproducer is copied to build-fuzz/fuzz-artifacts/.
# Prints the executions per target.  tests/fuzz/README says more.
#
# Environment: VIGIL_FUZZ_SECONDS (per target), VIGIL_FUZZ_TARGETS (a
# subset, e.g. "config filter"), VIGIL_FUZZ_BUILD (build folder),
# CC (default clang).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-${VIGIL_FUZZ_SECONDS:-60}}
build=${VIGIL_FUZZ_BUILD:-$root/build-fuzz}
targets=${VIGIL_FUZZ_TARGETS:-"ipc config schedule filter quiesce"}
cc=${CC:-clang}

case $secs in
''|*[!0-9]*) echo "run.sh: SECONDS must be a number (got '$secs')" >&2; exit 2 ;;
esac
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "run.sh: $cc not found; install clang and libclang-rt-14-dev" \
	    "(packaging/deps.sh does)" >&2
	exit 1
fi

echo "== fuzz: configuring $build with $cc"
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DVIGIL_FUZZ=ON \
    -DVIGIL_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >"$build/fuzz-cmake.log" 2>&1 || { cat "$build/fuzz-cmake.log"; exit 1; }
tl=""
for t in $targets; do tl="$tl fuzz_$t"; done
echo "== fuzz: building$tl"
# shellcheck disable=SC2086
cmake --build "$build" --target $tl -j2 >"$build/fuzz-build.log" 2>&1 ||
    { tail -50 "$build/fuzz-build.log"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/vigil-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
arts="$build/fuzz-artifacts"
failed=""
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

for t in $targets; do
	mkdir -p "$work/$t/corpus" "$work/$t/art"
	cp "$here/corpus/$t/"* "$work/$t/corpus/"
	nseed=$(ls "$work/$t/corpus" | wc -l)
	rc=0
	TMPDIR="$work/$t" "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" \
	    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$work/$t/art/" "$work/$t/corpus" \
	    >"$work/$t/log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log" |
	    tail -1)
	ncorp=$(ls "$work/$t/corpus" | wc -l)
	bad=$(grep -c -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|deadly signal|ERROR: libFuzzer' \
	    "$work/$t/log" || true)
	if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ] || [ -z "$execs" ]; then
		failed="$failed $t"
		mkdir -p "$arts/$t"
		cp "$work/$t/art/"* "$arts/$t/" 2>/dev/null || true
		cp "$work/$t/log" "$arts/$t/log"
		echo "FAIL fuzz_$t: exit $rc after ${execs:-?} executions;" \
		    "log and reproducer in $arts/$t/"
		grep -A30 -m1 -E 'ERROR: |runtime error:|deadly signal' \
		    "$work/$t/log" | head -40
	else
		printf '  ok   fuzz_%-9s %10s executions in %s s, corpus %s -> %s\n' \
		    "$t" "$execs" "$secs" "$nseed" "$ncorp"
	fi
done
if [ -n "$failed" ]; then
	echo "== fuzz: FAILED:$failed"
	exit 1
fi
echo "== fuzz: all targets ran $secs s without a finding"
