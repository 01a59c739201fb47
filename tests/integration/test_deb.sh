#!/bin/sh
# test_deb.sh: the Debian packages, built from this tree by
# packaging/build-deb.sh into a temp folder (VIGIL_DEB_DIST=DIR reuses .debs
# already built there instead), are checked for:
#   - their contents: binaries, the system unit, the agent's user unit and
#     autostart file, man pages, bash completion; the tray, its icons and
#     its autostart file only in vigil-tray; no GTK in vigil's dependencies;
#   - the system unit starting the vigild the package ships;
#   - maintainer scripts: the vigil group, /var/lib/vigil 0711, vigild
#     enabled and started, the agent's user unit enabled for every user,
#     state removed only on purge;
#   - man pages that man(1) renders without warnings;
#   - lintian: no errors (warnings are printed).
# Exit 77 when this is not a Debian system with dpkg-buildpackage (CI=true
# turns that into a failure).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

skip() {
	echo "SKIPPED: $*"
	if [ "${CI:-}" = true ]; then
		echo "FAIL: CI=true: this test must run in CI"
		exit 1
	fi
	exit 77
}
failures=0
passes=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; passes=$((passes + 1)); }

command -v dpkg-deb >/dev/null 2>&1 || skip "not a Debian system (no dpkg-deb)"

tmp=$(mktemp -d /tmp/vigil-test-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

if [ -n "${VIGIL_DEB_DIST:-}" ]; then
	dist=$VIGIL_DEB_DIST
else
	dist=$tmp/dist
	if ! VIGIL_DIST=$dist sh "$root/packaging/build-deb.sh" \
	    >"$tmp/build.log" 2>&1; then
		tail -n 40 "$tmp/build.log"
		echo "FAIL: packaging/build-deb.sh failed"
		exit 1
	fi
fi
deb=$(ls "$dist"/vigil_*.deb 2>/dev/null | head -n1)
tray=$(ls "$dist"/vigil-tray_*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] && [ -n "$tray" ] || { echo "FAIL: no vigil_*.deb and vigil-tray_*.deb in $dist"; exit 1; }
echo "packages: $deb $tray"

# ---- contents ----
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/vigil.list"
dpkg-deb -c "$tray" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/tray.list"
for f in /usr/sbin/vigild /usr/bin/vigil /usr/bin/vigil-agent \
    /lib/systemd/system/vigild.service \
    /usr/lib/systemd/user/vigil-agent.service \
    /etc/xdg/autostart/vigil-agent.desktop \
    /usr/share/man/man1/vigil.1.gz /usr/share/man/man5/vigil-jobs.5.gz \
    /usr/share/man/man8/vigild.8.gz \
    /usr/share/bash-completion/completions/vigil /etc/vigil/; do
	grep -qx "$f" "$tmp/vigil.list" || fail "vigil lacks $f"
done
for f in /usr/bin/vigil-tray /usr/share/applications/vigil-tray.desktop \
    /etc/xdg/autostart/vigil-tray.desktop \
    /usr/share/icons/hicolor/scalable/status/vigil-idle.svg \
    /usr/share/icons/hicolor/scalable/status/vigil-disconnected.svg \
    /usr/share/man/man1/vigil-tray.1.gz; do
	grep -qx "$f" "$tmp/tray.list" || fail "vigil-tray lacks $f"
done
grep -q vigil-tray "$tmp/vigil.list" && fail "vigil ships tray files"
[ $failures -eq 0 ] && pass "both packages hold what they should"

depends=$(dpkg-deb -f "$deb" Depends)
case $depends in
*gtk*|*ayatana*) fail "vigil depends on GTK: $depends" ;;
*) pass "vigil does not pull in GTK (Depends: $depends)" ;;
esac
case $(dpkg-deb -f "$tray" Depends) in
*"vigil (= "*) pass "vigil-tray depends on the same vigil" ;;
*) fail "vigil-tray does not depend on vigil of its version" ;;
esac

# ---- the unit ----
mkdir -p "$tmp/x" "$tmp/ctl"
dpkg-deb -x "$deb" "$tmp/x"
grep -q '^ExecStart=/usr/sbin/vigild ' "$tmp/x/lib/systemd/system/vigild.service" &&
	pass "the unit starts /usr/sbin/vigild" ||
	fail "the unit's ExecStart: $(grep ExecStart= "$tmp/x/lib/systemd/system/vigild.service")"
grep -q '^ExecStart=/usr/bin/vigil-agent' "$tmp/x/usr/lib/systemd/user/vigil-agent.service" &&
	pass "the user unit starts /usr/bin/vigil-agent" ||
	fail "the user unit does not start /usr/bin/vigil-agent"

# ---- maintainer scripts ----
dpkg-deb -e "$deb" "$tmp/ctl"
check_script() {	# FILE PATTERN WHAT
	grep -q -- "$2" "$tmp/ctl/$1" && pass "$1: $3" || fail "$1: $3 (no '$2')"
}
check_script postinst "addgroup --system --quiet vigil" "creates the vigil group"
check_script postinst "chmod 0711 /var/lib/vigil" "/var/lib/vigil mode 0711"
check_script postinst "deb-systemd-helper enable 'vigild.service'" "enables vigild"
check_script postinst "deb-systemd-invoke \$_dh_action 'vigild.service'" "starts vigild"
check_script postinst "deb-systemd-helper --user enable 'vigil-agent.service'" \
    "enables the agent's user unit for every user"
# State goes only on purge: the rm is inside the purge branch.
awk '/^purge\)/{p=1} /;;/{p=0} /rm -rf \/var\/lib\/vigil/{ if (!p) bad=1; seen=1 }
    END { exit !(seen && !bad) }' "$tmp/ctl/postrm" &&
	pass "postrm removes the state on purge only" ||
	fail "postrm: state removal is not limited to purge"
for s in postinst postrm prerm; do
	sh -n "$tmp/ctl/$s" || fail "$s: syntax"
done

# ---- man pages ----
if command -v man >/dev/null 2>&1; then
	for m in usr/share/man/man1/vigil.1.gz usr/share/man/man5/vigil-jobs.5.gz \
	    usr/share/man/man8/vigild.8.gz; do
		w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$tmp/x/$m" 2>&1 >/dev/null)
		[ -z "$w" ] && pass "man $(basename "$m") renders cleanly" ||
			fail "man $(basename "$m"): $w"
	done
fi

# ---- lintian ----
if command -v lintian >/dev/null 2>&1; then
	lintian --fail-on error "$deb" "$tray" >"$tmp/lintian.log" 2>&1
	rc=$?
	grep -v "running with root privileges" "$tmp/lintian.log"
	[ $rc -eq 0 ] && pass "lintian: no errors" || fail "lintian found errors"
elif [ "${CI:-}" = true ]; then
	fail "lintian is not installed"
else
	echo "SKIPPED: lintian is not installed"
fi

echo "test_deb: $passes passed, $failures failed"
[ $failures -eq 0 ]
