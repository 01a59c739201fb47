#!/bin/bash
# test_tray.sh: vigil-tray under Xvfb, embedded in a real XEmbed tray host
# (trayer), driven with xdotool like a person would, against a real
# `vigild --user` on a temp state folder and socket.
#
#   1. the icon appears in the tray, green (idle): a pixel count checks it;
#   2. the menu opens with a click; "Run now" of job docs is clicked; the
#      run is in `vigil history`;
#   3. "Run now" of job wrecked (its source is gone) fails: the icon turns
#      red, and the notifications went out on the session bus;
#   4. vigild stops: the icon turns grey (disconnected); vigild comes back:
#      the tray reconnects by itself and the icon is red again;
#   5. "Edit jobs…": an invalid line is typed and saved: the window title
#      names its line and `vigil jobs export` is unchanged; the line is then
#      made valid, saved, and the export has it;
#   6. "Quit" ends the tray.
# Screenshots are kept in --out (printed at the end).  Exit 77: cannot run
# here (no Xvfb, trayer, xdotool, ImageMagick, or no vigil-tray built); with
# CI=true that is a failure.
set -u

VIGIL="" VIGILD="" TRAY="" ICONS="" OUT=""
while [ $# -gt 0 ]; do
	case "$1" in
	--vigil) VIGIL=$2; shift 2 ;;
	--vigild) VIGILD=$2; shift 2 ;;
	--tray=*) TRAY=${1#--tray=}; shift ;;
	--tray) TRAY=$2; shift 2 ;;
	--icons) ICONS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	*) echo "test_tray.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

skip() {
	echo "SKIPPED: $*"
	if [ "${CI:-}" = true ]; then
		echo "FAIL: CI=true: this test must run in CI"
		exit 1
	fi
	exit 77
}

[ -n "$TRAY" ] && [ -x "$TRAY" ] ||
	skip "vigil-tray was not built (apt-get install libgtk-3-dev libayatana-appindicator3-dev)"
for tool in Xvfb trayer xdotool xprop import convert dbus-run-session dbus-monitor; do
	command -v "$tool" >/dev/null 2>&1 ||
		skip "$tool is missing (apt-get install xvfb trayer xdotool x11-utils imagemagick dbus-x11)"
done
convert -version 2>/dev/null | grep -q ImageMagick ||
	skip "convert is not ImageMagick (apt-get install imagemagick)"

T=$(mktemp -d /tmp/vigil-tray-test.XXXXXX)
OUT=${OUT:-$T/shots}
mkdir -p "$OUT" "$T/rt" "$T/home"
chmod 700 "$T/rt"
SOCK=$T/vigil.sock
PIDS=""
XVFB_PID="" TRAYER_PID="" TRAY_PID="" VIGILD_PID=""
SHOTS=""

cleanup() {
	# The tray runs under dbus-run-session, which ends (and ends its bus)
	# when its child does: stop the child.
	[ -n "$TRAY_PID" ] && pkill -TERM -P "$TRAY_PID" 2>/dev/null
	for p in $TRAYER_PID $VIGILD_PID; do
		kill "$p" 2>/dev/null
	done
	sleep 0.5
	[ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null
	for p in $TRAY_PID $TRAYER_PID $VIGILD_PID $XVFB_PID; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	for f in vigild.log tray.log mon.log; do
		[ -f "$T/$f" ] || continue
		echo "---- $f (last 30 lines)"
		tail -n 30 "$T/$f"
	done
	[ -n "$SHOTS" ] && echo "screenshots:$SHOTS"
	exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local secs=$1 what=$2 end
	shift 2
	end=$((SECONDS + secs))
	while [ $SECONDS -lt $end ]; do
		"$@" && return 0
		sleep 0.2
	done
	fail "timed out after ${secs}s waiting for $what"
}

v() { "$VIGIL" --socket "$SOCK" "$@"; }

start_vigild() {
	"$VIGILD" --user --state-dir "$T/state" --socket "$SOCK" \
	    >>"$T/vigild.log" 2>&1 &
	VIGILD_PID=$!
	wait_for 20 "vigild to answer" v status >/dev/null 2>&1
}

# ---- the service and two jobs ----
mkdir -p "$T/src/sub" "$T/dst" "$T/src2" "$T/dst2"
for i in 1 2 3 4 5; do echo "file $i" >"$T/src/sub/f$i.txt"; done
echo "x" >"$T/src2/x"
cat >"$T/jobs.ini" <<EOF
# Jobs of the tray test.

[job docs]
source = $T/src
destination = $T/dst

[job wrecked]
source = $T/src2
destination = $T/dst2
EOF
start_vigild
v jobs import "$T/jobs.ini" >/dev/null || fail "cannot import the jobs"
rm -rf "$T/src2"	# its run will fail

# ---- the display, the tray host, the tray ----
exec 5>"$T/display"
Xvfb -displayfd 5 -screen 0 640x480x24 -nolisten tcp >"$T/xvfb.log" 2>&1 &
XVFB_PID=$!
exec 5>&-
wait_for 20 "Xvfb to start" test -s "$T/display"
export DISPLAY=":$(head -n1 "$T/display")"
trayer --edge top --align right --widthtype pixel --width 120 \
    --height 32 --transparent false >"$T/trayer.log" 2>&1 &
TRAYER_PID=$!
wait_for 20 "trayer's panel" sh -c 'xdotool search --class trayer >/dev/null'

# A session bus of its own, with a monitor that records the notifications
# the tray sends (nobody serves them here; the calls are still seen).
NO_AT_BRIDGE=1 XDG_RUNTIME_DIR="$T/rt" HOME="$T/home" VISUAL= \
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
    dbus-run-session -- sh -c 'dbus-monitor --session \
	"interface=org.freedesktop.Notifications" >"$0" 2>&1 &
	exec "$@"' "$T/mon.log" \
    "$TRAY" --socket "$SOCK" --icon-dir "$ICONS" >"$T/tray.log" 2>&1 &
TRAY_PID=$!

# The tray icon: vigil-tray's visible window of icon size (the plug).
ICON_X="" ICON_Y="" ICON_W="" ICON_H=""
find_icon() {
	local w WIDTH HEIGHT X Y WINDOW SCREEN
	for w in $(xdotool search --onlyvisible --class vigil-tray 2>/dev/null); do
		xprop -id "$w" _NET_WM_WINDOW_TYPE 2>/dev/null | grep -q POPUP && continue
		eval "$(xdotool getwindowgeometry --shell "$w")"
		if [ "$WIDTH" -le 64 ] && [ "$HEIGHT" -le 64 ] && [ "$WIDTH" -ge 8 ]; then
			ICON_X=$X ICON_Y=$Y ICON_W=$WIDTH ICON_H=$HEIGHT
			return 0
		fi
	done
	return 1
}
wait_for 30 "the tray icon to be embedded" find_icon
grep -q "XEmbed status icon" "$T/tray.log" ||
	fail "the tray did not choose the XEmbed icon without a StatusNotifierItem host"

# Pixel classes in the icon's region of a fresh screenshot: how many are
# strongly green, red, or a neutral mid grey.
SHOT=$T/now.png
icon_pixels() {
	import -window root "$SHOT" 2>/dev/null || return 1
	convert "$SHOT" -crop "${ICON_W}x${ICON_H}+${ICON_X}+${ICON_Y}" +repage \
	    -depth 8 txt:- | awk -F'[(),]' '
	NR > 1 {
		r = $3; g = $4; b = $5
		mx = r > g ? r : g; mx = mx > b ? mx : b
		mn = r < g ? r : g; mn = mn < b ? mn : b
		if (g > r + 60 && g > b + 40) green++
		if (r > g + 80 && r > b + 80) red++
		if (mx - mn < 12 && mx > 110 && mx < 170) grey++
		if (mx - mn > 60) sat++
	}
	END { printf "green=%d red=%d grey=%d sat=%d\n", green, red, grey, sat }'
}
icon_is() {
	local want=$1 counts
	counts=$(icon_pixels) || return 1
	LAST_COUNTS=$counts
	eval "$counts"
	case $want in
	green) [ "$green" -ge 120 ] && [ "$red" -lt 20 ] ;;
	red) [ "$red" -ge 120 ] && [ "$green" -lt 20 ] ;;
	grey) [ "$grey" -ge 120 ] && [ "$sat" -lt 10 ] ;;
	esac
}
keep() {
	cp "$SHOT" "$OUT/$1.png"
	SHOTS="$SHOTS $OUT/$1.png"
}
LAST_COUNTS=""
expect_icon() {
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt $end ]; do
		icon_is "$1" && return 0
		sleep 0.3
	done
	keep "fail-$1"
	fail "the icon is not $1 (pixels: $LAST_COUNTS)"
}

expect_icon green 15
keep 01-idle
echo "ok: the icon is embedded in trayer and green (idle): $LAST_COUNTS"

# ---- the menu: Run now ----
popups() {
	local w
	for w in $(xdotool search --onlyvisible --class vigil-tray 2>/dev/null); do
		xprop -id "$w" _NET_WM_WINDOW_TYPE 2>/dev/null |
		    grep -q POPUP_MENU && echo "$w"
	done
}
npopups_is() { [ "$(popups | wc -l)" -eq "$1" ]; }
open_menu() {
	npopups_is 0 || fail "a menu is still open"
	xdotool mousemove $((ICON_X + ICON_W / 2)) $((ICON_Y + ICON_H / 2)) click 1
	wait_for 10 "the menu to open" npopups_is 1
	MENU=$(popups)
}
# Click the first item ("Run now") of job number $1's submenu.
run_now() {
	local i X Y WIDTH HEIGHT WINDOW SCREEN sub
	open_menu
	for i in $(seq "$1"); do xdotool key Down; sleep 0.2; done
	xdotool key Right
	wait_for 10 "the job's submenu" npopups_is 2
	sub=$(popups | grep -v "^$MENU\$")
	eval "$(xdotool getwindowgeometry --shell "$sub")"
	import -window root "$SHOT" 2>/dev/null
	keep "$2"
	xdotool mousemove $((X + 40)) $((Y + 16))
	sleep 0.3
	xdotool click 1
	wait_for 10 "the menu to close" npopups_is 0
}
history_has() {
	v --json history "$1" 2>/dev/null | grep -q "\"status\": \"$2\""
}

run_now 1 02-menu-docs
wait_for 60 "a run of docs in vigil history" history_has docs ok
[ -f "$T/dst/sub/f5.txt" ] || fail "the run of docs copied nothing"
echo "ok: Run now (menu, clicked) ran docs: it is in vigil history, ok"

run_now 2 03-menu-wrecked
wait_for 60 "a failed run of wrecked" history_has wrecked failed
expect_icon red 15
keep 04-failed
echo "ok: the failed run of wrecked turned the icon red: $LAST_COUNTS"

notified() { grep -q "$1" "$T/mon.log"; }
wait_for 10 "the notification of docs" notified "Backup docs finished"
wait_for 10 "the notification of wrecked" notified "Backup wrecked failed"
echo "ok: notifications sent for the finished and the failed run"

# ---- disconnected, and back ----
kill "$VIGILD_PID"
wait "$VIGILD_PID" 2>/dev/null
VIGILD_PID=""
expect_icon grey 15
keep 05-disconnected
echo "ok: vigild stopped: the icon is grey (disconnected): $LAST_COUNTS"
start_vigild
expect_icon red 40
echo "ok: vigild back: the tray reconnected by itself (icon red again)"

# ---- the editor ----
mkdir -p "$T/src2"	# the jobs must be valid again to be saved
v jobs export >"$T/before.ini" || fail "jobs export"
open_menu
xdotool key Up
sleep 0.2
xdotool key Up	# Quit, then Edit jobs…
sleep 0.2
xdotool key Return
editor() { xdotool search --onlyvisible --name '^Edit jobs' 2>/dev/null | head -n1; }
has_editor() { [ -n "$(editor)" ]; }
wait_for 20 "the editor window" has_editor
ED=$(editor)
# No window manager: keep the tray icon in sight.
xdotool windowsize "$ED" 560 400 windowmove "$ED" 0 40
wait_for 10 "the jobs in the editor" sh -c \
    "[ \"\$(xdotool getwindowname $ED)\" = 'Edit jobs' ]"
xdotool windowfocus --sync "$ED" 2>/dev/null || xdotool windowfocus "$ED"
sleep 0.5
BAD_LINE=$(($(wc -l <"$T/before.ini") + 1))
xdotool key ctrl+End
xdotool type --delay 15 "this line is wrong"
xdotool key ctrl+s
title_has() { xdotool getwindowname "$ED" | grep -q -- "$1"; }
wait_for 15 "the editor to refuse the file" title_has "not saved"
TITLE=$(xdotool getwindowname "$ED")
import -window root "$SHOT"
keep 06-editor-refused
case $TITLE in
*"line $BAD_LINE)"*) ;;
*) fail "the refusal does not name line $BAD_LINE: \"$TITLE\"" ;;
esac
v jobs export >"$T/after.ini" || fail "jobs export"
cmp -s "$T/before.ini" "$T/after.ini" ||
	fail "an invalid file changed the jobs: $(diff "$T/before.ini" "$T/after.ini")"
echo "ok: the invalid line was refused (\"$TITLE\"); the jobs are unchanged"

# Make the line valid (a key of job wrecked) and save again.
xdotool key ctrl+End Home shift+End
xdotool type --delay 15 "keep-versions = 3"
xdotool key ctrl+s
wait_for 15 "the editor to save" title_has ": saved"
import -window root "$SHOT"
keep 07-editor-saved
v jobs export >"$T/after.ini" || fail "jobs export"
grep -q "^keep-versions = 3\$" "$T/after.ini" ||
	fail "the valid file was not applied: $(cat "$T/after.ini")"
v jobs show wrecked | grep -q "keep-versions = 3" ||
	fail "job wrecked lacks the new key"
echo "ok: the corrected file was applied (keep-versions = 3 in wrecked)"

# ---- Quit ----
xdotool windowmove "$ED" 0 200
open_menu
xdotool key Up Return
tray_gone() { ! kill -0 "$TRAY_PID" 2>/dev/null; }
wait_for 15 "the tray to quit" tray_gone
TRAY_PID=""
echo "ok: Quit ended the tray"

echo "screenshots:"
for s in $SHOTS; do echo "  $s"; done
echo "test_tray: 8 passed, 0 failed"
exit 0
