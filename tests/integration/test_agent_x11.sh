#!/bin/sh
# test_agent_x11.sh: vigil-agent closes an X11 app the way a user would,
# under Xvfb, and reopens it.
#   1. no window manager: xwin gets WM_DELETE_WINDOW and exits by itself
#      (its marker says so, not SIGTERM), and is reopened with the same
#      argv and cwd;
#   2. with a window manager (fakewm): the agent sends _NET_CLOSE_WINDOW to
#      the root, the manager passes WM_DELETE_WINDOW on, xwin exits;
#   3. without DISPLAY the display app is refused, and left running.
# usage: test_agent_x11.sh VIGIL_AGENT XWIN FAKEWM
# Exit 77 (skipped) where Xvfb or the X11 test apps are missing; under
# CI=true a skip is a failure.
set -u

AGENT=$1 XWIN=$2 FAKEWM=$3
fails=0 checks=0

skip() {
	echo "SKIPPED: $1"
	case "${CI:-}" in
	true|1|yes) echo "SKIPPED is not allowed under CI=true"; exit 1 ;;
	esac
	exit 77
}

check() {	# check WHAT COMMAND...
	what=$1
	shift
	checks=$((checks + 1))
	if "$@"; then
		echo "  ok   $what"
	else
		echo "  FAIL $what"
		fails=$((fails + 1))
	fi
}

command -v Xvfb >/dev/null 2>&1 ||
	skip "no Xvfb (apt-get install xvfb)"
[ -x "$XWIN" ] && [ -x "$FAKEWM" ] ||
	skip "the X11 test apps were not built (no libX11 headers)"
[ -x "$AGENT" ] || { echo "not executable: $AGENT"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vigil-agent-x11.XXXXXX")
XPID="" WMPID=""
cleanup() {
	for p in $(pgrep -f "^$XWIN $T/" 2>/dev/null) \
	    $(pgrep -f "^xprop -root -spy" 2>/dev/null); do
		[ "$(readlink "/proc/$p/fd/1" 2>/dev/null)" = "$T/src/spy.out" ] ||
			case "$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" in
			"$XWIN $T/"*) ;; *) continue ;; esac
		kill -9 "$p" 2>/dev/null
	done
	[ -n "$WMPID" ] && kill "$WMPID" 2>/dev/null
	[ -n "$XPID" ] && kill "$XPID" 2>/dev/null
	wait 2>/dev/null
	[ -n "${VIGIL_TEST_KEEP:-}" ] && echo "   kept $T" || rm -rf "$T"
}
trap cleanup EXIT INT TERM

# A free display number.
n=90
while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do
	n=$((n + 1))
	[ $n -gt 140 ] && skip "no free X display number"
done
export DISPLAY=":$n"
# -noreset: between cases every client leaves, and a server reset then
# races the next client's connect.
Xvfb "$DISPLAY" -nolisten tcp -noreset -screen 0 640x480x24 >"$T/xvfb.log" 2>&1 &
XPID=$!
i=0
until [ -e "/tmp/.X11-unix/X$n" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$XPID" 2>/dev/null; then
		cat "$T/xvfb.log"
		skip "Xvfb did not start"
	fi
	sleep 0.05
done
echo "== agent_x11: Xvfb on $DISPLAY, work folder $T"

mkdir -p "$T/src" "$T/work dir"
export VIGIL_AGENT_RELAUNCH=direct

wait_grep() {	# wait_grep PATTERN FILE
	i=0
	until grep -q "$1" "$2" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 300 ] && return 1
		sleep 0.05
	done
}

start_xwin() {	# start_xwin MARKER: xwin holding src/doc, cwd "work dir"
	(cd "$T/work dir" && exec "$XWIN" "$1" "$T/src/doc") >/dev/null 2>>"$T/xwin.err" &
	wait_grep "^mapped $!" "$1" || { echo "xwin did not map"; exit 1; }
	echo $!
}

quiesce() {	# quiesce ID > file
	cat <<EOF
{"event": "quiesce", "data": {"quiesce": $1, "run": 7, "job": "x11",
 "sources": ["$T/src"], "close_apps": "auto", "close_method": "window",
 "warn_s": 0, "close_timeout_s": 10, "force": false, "may_postpone": false,
 "dry_run": false}}
EOF
}

# 1. no window manager: WM_DELETE_WINDOW
M1="$T/m1"
pid=$(start_xwin "$M1")
quiesce 1 >"$T/q1.json"
"$AGENT" --simulate "$T/q1.json" --hold 1 >"$T/out1" 2>"$T/err1"
rc=$?
check "agent exits 0" [ $rc -eq 0 ]
check "xwin reported closed by window request" \
	grep -q "\"closed\":\[{\"how\":\"window\",\"name\":\"xwin\",\"pid\":$pid}\]" "$T/out1"
check "xwin exited on WM_DELETE_WINDOW" grep -q "^WM_DELETE_WINDOW $pid" "$M1"
check "xwin got no SIGTERM" sh -c "! grep -q SIGTERM '$M1'"
npid=$(sed -n 's/.*"reopened":\[{"name":"xwin","pid":\([0-9]*\)}.*/\1/p' "$T/out1")
check "xwin reported reopened" [ -n "$npid" ]
check "the reopened xwin maps its window" wait_grep "^mapped $npid" "$M1"
check "same argv after reopening" sh -c "tr '\0' ' ' </proc/$npid/cmdline |
	grep -qxF '$XWIN $M1 $T/src/doc '"
check "same cwd after reopening" \
	[ "$(readlink "/proc/$npid/cwd")" = "$T/work dir" ]
check "no sanitizer report" sh -c "! grep -qE 'Sanitizer|runtime error' '$T/err1'"
kill "$npid" 2>/dev/null

# 2. with a window manager: _NET_CLOSE_WINDOW through the manager
"$FAKEWM" "$T/wm.log" 2>"$T/wm.err" &
WMPID=$!
if wait_grep ready "$T/wm.log"; then
	M2="$T/m2"
	pid=$(start_xwin "$M2")
	quiesce 2 >"$T/q2.json"
	"$AGENT" --simulate "$T/q2.json" >"$T/out2" 2>"$T/err2"
	check "with a window manager: closed by window request" \
		grep -q "\"how\":\"window\",\"name\":\"xwin\",\"pid\":$pid" "$T/out2"
	check "the manager got _NET_CLOSE_WINDOW" grep -q "^close 0x" "$T/wm.log"
	check "xwin exited on the manager's WM_DELETE_WINDOW" \
		grep -q "^WM_DELETE_WINDOW $pid" "$M2"
	npid=$(sed -n 's/.*"reopened":\[{"name":"xwin","pid":\([0-9]*\)}.*/\1/p' "$T/out2")
	[ -n "$npid" ] && kill "$npid" 2>/dev/null
	kill "$WMPID"
	wait "$WMPID" 2>/dev/null
	WMPID=""
else
	echo "  FAIL fakewm did not start: $(cat "$T/wm.err")"
	fails=$((fails + 1))
fi

# 3. the agent has no DISPLAY: the app's own environment names it
M3="$T/m3"
pid=$(start_xwin "$M3")
quiesce 3 >"$T/q3.json"
env -u DISPLAY "$AGENT" --simulate "$T/q3.json" >"$T/out3" 2>"$T/err3"
check "reached through the app's own DISPLAY" \
	grep -q "\"how\":\"window\",\"name\":\"xwin\",\"pid\":$pid" "$T/out3"
check "... and closed by WM_DELETE_WINDOW" grep -q "^WM_DELETE_WINDOW $pid" "$M3"
npid=$(sed -n 's/.*"reopened":\[{"name":"xwin","pid":\([0-9]*\)}.*/\1/p' "$T/out3")
[ -n "$npid" ] && kill "$npid" 2>/dev/null

# 4. a display client without a window (xprop -spy): refused and left
#    running under close-method window; SIGTERM'd under term
if command -v xprop >/dev/null 2>&1; then
	xprop -root -spy >"$T/src/spy.out" 2>&1 &
	SPY=$!
	sleep 0.5
	quiesce 4 | sed 's/"close_timeout_s": 10/"close_timeout_s": 1/' >"$T/q4.json"
	"$AGENT" --simulate "$T/q4.json" >"$T/out4" 2>"$T/err4"
	check "a display app without a window is refused" \
		grep -q "\"refused\":\[{.*\"name\":\"xprop\",.*\"pid\":$SPY,\"reason\":\"no window of its own" "$T/out4"
	check "... and left running" kill -0 "$SPY"
	quiesce 5 | sed 's/"close_method": "window"/"close_method": "term"/' >"$T/q5.json"
	"$AGENT" --simulate "$T/q5.json" >"$T/out5" 2>"$T/err5"
	check "close-method term: SIGTERM instead" \
		grep -q "\"how\":\"sigterm\",\"name\":\"xprop\",\"pid\":$SPY" "$T/out5"
	npid=$(sed -n 's/.*"reopened":\[{"name":"xprop","pid":\([0-9]*\)}.*/\1/p' "$T/out5")
	[ -n "$npid" ] && kill "$npid" 2>/dev/null
	kill "$SPY" 2>/dev/null
else
	echo "  ..   no xprop (x11-utils): the refusal case is not run"
fi

echo "== agent_x11: $checks checks, $fails failed"
[ $fails -eq 0 ] && [ $checks -gt 0 ]
