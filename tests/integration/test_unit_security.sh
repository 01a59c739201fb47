#!/bin/sh
# test_unit_security.sh UNIT: the hardening of vigild's systemd unit.
#   - `systemd-analyze security --offline=yes` scores it at or under 2.5;
#   - every capability in CapabilityBoundingSet= is explained in a comment
#     of the unit;
#   - StateDirectory= and RuntimeDirectory= are set.
# Exit 0 pass, 1 fail, 77 skip (no systemd-analyze), which CI=true fails.
set -u
unit=${1:?usage: test_unit_security.sh path/to/vigild.service}
limit=2.5
fail=0

ci=false
case "${CI:-}" in true|1|yes|TRUE|True) ci=true ;; esac

ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; fail=1; }

echo "== unit_security: $unit"
if [ ! -r "$unit" ]; then
	bad "cannot read $unit"
	exit 1
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
	if [ "$ci" = true ]; then
		echo "SKIPPED is not allowed under CI=true: systemd-analyze is missing"
		exit 1
	fi
	echo "SKIPPED: systemd-analyze is missing"
	exit 77
fi

# systemd-analyze wants the file name to match the unit name.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vigil-unit.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
cp "$unit" "$tmp/vigild.service"
out=$(cd "$tmp" && systemd-analyze security --offline=yes --no-pager \
    vigild.service 2>&1)
rc=$?
score=$(printf '%s\n' "$out" |
    sed -n 's/.*Overall exposure level for vigild\.service: *\([0-9][0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
	bad "no exposure level in systemd-analyze's output (exit $rc)"
	printf '%s\n' "$out" | tail -20 | sed 's/^/       | /'
else
	if awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s + 0 <= l + 0) }'; then
		ok "systemd-analyze security --offline=yes: exposure $score <= $limit"
	else
		bad "exposure $score is over $limit; the worst settings:"
		printf '%s\n' "$out" | grep '✗' | head -20 | sed 's/^/       | /'
	fi
fi

# Every capability kept is explained in a comment.
caps=$(sed -n 's/^[[:space:]]*CapabilityBoundingSet=//p' "$unit" | tr ' ' '\n' |
    sed -n 's/^~\{0,1\}\(CAP_[A-Z_]*\)$/\1/p' | sort -u)
if [ -z "$caps" ]; then
	bad "no CapabilityBoundingSet= with capabilities in the unit"
fi
comments=$(grep '^[[:space:]]*#' "$unit")
n=0
for c in $caps; do
	n=$((n + 1))
	# The capability must be named in a comment as a whole word, with
	# words of explanation on its line (or the next comment line).
	line=$(printf '%s\n' "$comments" | grep -n -w -- "$c" | head -1)
	if [ -z "$line" ]; then
		bad "$c is kept but no comment explains it"
		continue
	fi
	num=${line%%:*}
	text=$(printf '%s\n' "$comments" | sed -n "${num}p;$((num + 1))p" |
	    sed 's/CAP_[A-Z_]*//g; s/[#,[:space:]]//g')
	if [ ${#text} -lt 10 ]; then
		bad "$c is named in a comment without an explanation"
	fi
done
[ "$n" -gt 0 ] && [ "$fail" -eq 0 ] && ok "each of the $n capabilities kept is explained in a comment"

for k in StateDirectory RuntimeDirectory; do
	if grep -q "^$k=vigil" "$unit"; then
		ok "$k=vigil is set"
	else
		bad "$k=vigil is not set"
	fi
done

if [ "$fail" -ne 0 ]; then
	echo "== unit_security: FAILED"
	exit 1
fi
echo "== unit_security: passed"
exit 0
