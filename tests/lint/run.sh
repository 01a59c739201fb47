#!/bin/sh
# run.sh BUILD_DIR: the static-analysis gate.  Runs cppcheck and clang-tidy
# over every C file of vigil listed in BUILD_DIR/compile_commands.json (the
# top-level CMakeLists.txt writes it) and fails on any warning from either.
#
# - cppcheck: --enable=warning,performance,portability with the posix
#   library, vigil.cfg (jansson and sys/queue.h macros) and cppcheck-suppressions.txt
#   (whole check ids, each with its reason), on all files.
# - clang-tidy: the root .clang-tidy (the path-sensitive analyzer, bugprone,
#   cert, misc, performance; it says what is off and why) on product code,
#   and clang-tidy-tests.yaml (the same without the analyzer) on tests/.
# A false positive is suppressed at its line with its reason, never per
# file.  Full output goes to BUILD_DIR/lint/.  ctest runs this as "lint".
#
# Exit 0 clean, 1 findings or a tool failure, 77 when cppcheck or clang-tidy
# is missing (packaging/deps.sh installs them; under CI=true that is 1).
# Environment: VIGIL_LINT_JOBS (parallel clang-tidy runs, default 2);
# VIGIL_LINT_MAX_NODES (the analyzer's path budget per function, default
# 50000, a quarter of clang's: it cuts the analyzer's time by about 2/3;
# 0 means clang's default, for a deeper run by hand).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-}
jobs=${VIGIL_LINT_JOBS:-2}
max_nodes=${VIGIL_LINT_MAX_NODES:-50000}

# Files the gate does not check yet (none today): a file set aside while
# it is rewritten, its findings listed for the rewrite.  Patterns match
# paths relative to the source root (shell case patterns).
PENDING=""

if [ -z "$build" ] || [ ! -f "$build/compile_commands.json" ]; then
	echo "usage: run.sh BUILD_DIR (a configured build folder with" \
	    "compile_commands.json)" >&2
	exit 1
fi
build=$(cd "$build" && pwd)

cannot_run() {
	case ${CI:-} in
	true|1|yes) echo "FAIL: CI=true: $1"; exit 1 ;;
	esac
	echo "SKIPPED: $1"
	exit 77
}
command -v cppcheck >/dev/null 2>&1 ||
	cannot_run "cppcheck not found (packaging/deps.sh installs it)"
tidy=""
for t in clang-tidy clang-tidy-14; do
	if command -v "$t" >/dev/null 2>&1; then
		tidy=$t
		break
	fi
done
[ -n "$tidy" ] || cannot_run "clang-tidy not found (packaging/deps.sh installs it)"
command -v python3 >/dev/null 2>&1 || cannot_run "python3 not found"

out=$build/lint
rm -rf "$out"
mkdir -p "$out/db"
start=$(date +%s)

# The compile database of the project's own files, once each (the fuzz
# replay driver is built per target), without the pending ones; and the
# file lists for clang-tidy, largest first so two jobs end together.
python3 - "$build/compile_commands.json" "$root" "$out" "$PENDING" <<'EOF'
import fnmatch, json, os, sys
db, root, out, pending = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
pending = pending.split()
seen, keep, skipped = set(), [], []
for e in json.load(open(db)):
    f = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = os.path.relpath(f, root)
    if rel.startswith("..") or f in seen:
        continue
    seen.add(f)
    if any(fnmatch.fnmatchcase(rel, p) for p in pending):
        skipped.append(rel)
        continue
    keep.append((rel, e))
json.dump([e for _, e in keep], open(os.path.join(out, "db",
          "compile_commands.json"), "w"), indent=1)
size = lambda rel: os.path.getsize(os.path.join(root, rel))
for name, want in (("product", False), ("tests", True)):
    with open(os.path.join(out, name + ".txt"), "w") as fp:
        for rel, _ in sorted(keep, key=lambda k: -size(k[0])):
            if rel.startswith("tests/") == want:
                fp.write(os.path.join(root, rel) + "\n")
# Every C file of the tree must be in the database, or it is not checked.
missing = []
for d, dirs, files in os.walk(root):
    dirs[:] = [x for x in dirs if not x.startswith((".", "build"))
               and os.path.join(d, x) != os.path.join(root, "dist")]
    for n in files:
        rel = os.path.relpath(os.path.join(d, n), root)
        if (n.endswith(".c") and os.path.join(root, rel) not in seen and
                not any(fnmatch.fnmatchcase(rel, p) for p in pending)):
            missing.append(rel)
with open(os.path.join(out, "missing.txt"), "w") as fp:
    fp.writelines(m + "\n" for m in sorted(missing))
with open(os.path.join(out, "pending.txt"), "w") as fp:
    fp.writelines(m + "\n" for m in sorted(skipped))
EOF
nprod=$(wc -l <"$out/product.txt")
ntest=$(wc -l <"$out/tests.txt")
echo "== lint: $nprod product and $ntest test files$([ -s "$out/pending.txt" ] &&
    echo "; set aside, not checked: $(tr '\n' ' ' <"$out/pending.txt")")"
status=0
if [ -s "$out/missing.txt" ]; then
	echo "NOT CHECKED (not in the build, e.g. the tray without GTK):"
	sed 's/^/  /' "$out/missing.txt"
	case ${CI:-} in
	true|1|yes) echo "FAIL: CI=true: every C file must be checked"; status=1 ;;
	esac
fi

# A finding counts unless it is in a pending file (findings.py).
count_findings() {
	python3 "$here/findings.py" "$root" "$PENDING"
}

echo "== cppcheck $(cppcheck --version | sed 's/^Cppcheck //')"
t0=$(date +%s)
rc=0
(cd "$root" && cppcheck --project="$out/db/compile_commands.json" \
    --enable=warning,performance,portability --library=posix \
    --library="$here/vigil.cfg" --suppressions-list="$here/cppcheck-suppressions.txt" \
    --inline-suppr --error-exitcode=1 -j"$jobs" --quiet \
    --template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
    >"$out/cppcheck.log" 2>&1) || rc=$?
count_findings <"$out/cppcheck.log" >"$out/cppcheck.findings"
n=$(wc -l <"$out/cppcheck.findings")
echo "   $n findings, $(($(date +%s) - t0)) s"
cat "$out/cppcheck.findings"
# exit 1 with findings is expected (some may be in pending files); exit 1
# without any finding line is cppcheck failing (a bad option, say)
if [ "$n" -gt 0 ] || { [ "$rc" -ne 0 ] &&
    ! grep -qE '^[^ ]+:[0-9]+:[0-9]+: ' "$out/cppcheck.log"; }; then
	[ "$n" -gt 0 ] || { echo "cppcheck failed (exit $rc):"; cat "$out/cppcheck.log"; }
	status=1
fi

echo "== $($tidy --version | grep -i 'llvm version' | sed 's/^ *//'), $jobs jobs"
t0=$(date +%s)
rc=0
# product code: the root .clang-tidy, found from each file's folder
set --
if [ "$max_nodes" != 0 ]; then
	set -- --extra-arg=-Xclang --extra-arg=-analyzer-config \
	    --extra-arg=-Xclang --extra-arg=max-nodes="$max_nodes"
fi
xargs -P"$jobs" -n1 "$tidy" -p "$out/db" --quiet --extra-arg=-Wno-error "$@" \
    --header-filter="^$root/(agent|common|db|scheduler|tests)/" \
    <"$out/product.txt" >"$out/clang-tidy.log" 2>"$out/clang-tidy.err" || rc=$?
# test code: the lighter set
xargs -P"$jobs" -n1 "$tidy" -p "$out/db" --quiet --extra-arg=-Wno-error \
    --config-file="$here/clang-tidy-tests.yaml" \
    --header-filter="^$root/(agent|common|db|scheduler|tests)/" \
    <"$out/tests.txt" >>"$out/clang-tidy.log" 2>>"$out/clang-tidy.err" || rc=$?
grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' "$out/clang-tidy.log" |
	count_findings >"$out/clang-tidy.findings" || true
n=$(wc -l <"$out/clang-tidy.findings")
echo "   $n findings, $(($(date +%s) - t0)) s"
cat "$out/clang-tidy.findings"
# rc is 0 or 123 (some run exited non-zero: with findings, or a compile
# error, which is printed as an error finding); anything else is a crash.
if [ "$n" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 123 ]; }; then
	[ "$n" -gt 0 ] || { echo "clang-tidy failed (exit $rc):"; tail -20 "$out/clang-tidy.err"; }
	status=1
fi

echo "== lint: $(($(date +%s) - start)) s in all;" \
    "$( [ $status -eq 0 ] && echo clean || echo "FAILED (full output: $out)")"
exit $status
