#!/bin/sh
# test_install.sh BUILD_DIR: `cmake --install BUILD_DIR --prefix T` puts
# vigild, vigil and the system unit in place, and the installed unit starts
# the installed kind of vigild (ExecStart names .../sbin/vigild).
set -u
build=${1:?usage: test_install.sh BUILD_DIR}
fail=0
ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; fail=1; }

echo "== install: cmake --install $build"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vigil-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
if ! out=$(cmake --install "$build" --prefix "$tmp/prefix" 2>&1); then
	bad "cmake --install failed"
	printf '%s\n' "$out" | tail -20 | sed 's/^/       | /'
	exit 1
fi
p=$tmp/prefix
for f in sbin/vigild bin/vigil; do
	if [ -x "$p/$f" ]; then ok "$f is installed and executable"
	else bad "$f is not installed (or not executable)"; fi
done
unit=$p/lib/systemd/system/vigild.service
if [ -f "$unit" ]; then
	ok "lib/systemd/system/vigild.service is installed"
	if grep -q '^ExecStart=/[^ ]*/sbin/vigild ' "$unit" &&
	    grep -q '^StateDirectory=vigil' "$unit" &&
	    grep -q '^RuntimeDirectory=vigil' "$unit"; then
		ok "the installed unit starts sbin/vigild and keeps its directories"
	else
		bad "the installed unit lost ExecStart, StateDirectory or RuntimeDirectory"
		grep -E '^(ExecStart|StateDirectory|RuntimeDirectory)=' "$unit" |
		    sed 's/^/       | /'
	fi
else
	bad "lib/systemd/system/vigild.service is not installed"
fi
uunit=$p/lib/systemd/user/vigil-agent.service
if [ -f "$uunit" ] && grep -q '^ExecStart=/[^ ]*/bin/vigil-agent$' "$uunit"; then
	ok "lib/systemd/user/vigil-agent.service is installed and starts bin/vigil-agent"
else
	bad "lib/systemd/user/vigil-agent.service is missing or its ExecStart is wrong"
	[ -f "$uunit" ] && grep '^ExecStart=' "$uunit" | sed 's/^/       | /'
fi
if [ -x "$p/sbin/vigild" ] && "$p/sbin/vigild" --version | grep -q '^vigild '; then
	ok "the installed vigild runs (--version)"
else
	bad "the installed vigild does not run"
fi
if [ -x "$p/bin/vigil" ] && "$p/bin/vigil" --help >/dev/null 2>&1; then
	ok "the installed vigil runs (--help)"
else
	bad "the installed vigil does not run"
fi
[ "$fail" -eq 0 ] && { echo "== install: passed"; exit 0; }
echo "== install: FAILED"
exit 1
