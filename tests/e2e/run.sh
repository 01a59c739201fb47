#!/bin/bash
# End to end in a real systemd with a real logind (the session issue).
#
#     tests/e2e/run.sh BUILD
#
# As root: builds (once, cached) a Debian 12 root filesystem with debootstrap,
# installs vigil into a throw-away overlay of it (the Debian package from
# dist/ when it is at least as new as BUILD's binaries, else `cmake --install`
# of BUILD), boots it with systemd-nspawn, and checks three scenarios:
#   1. nobody logged on: a scheduled job runs through the fallback at once;
#   2. alice logs in (PAM `login`, a logind user-class session); her agent
#      starts as a systemd user unit; a test app of hers holds a file under
#      the job's source; the job closes it, backs up, and reopens it;
#   3. alice's agent is stopped while she stays logged in: the job falls back
#      within its deadline, naming her session without an agent.
#
# Exit: 0 passed, 1 failed, 77 skipped (not root, no systemd-nspawn or
# debootstrap, the Debian mirror unreachable).  Under CI=true a skip for want
# of a tool or network is a failure (exit 1); VIGIL_E2E=0 always skips (77).
#
# Environment:
#   VIGIL_E2E=0             skip ("disabled")
#   VIGIL_E2E_CACHE=DIR     where the root filesystem is kept
#                           (default /var/cache/vigil-e2e)
#   VIGIL_E2E_MIRROR=URL    Debian mirror (default http://deb.debian.org/debian)
#   VIGIL_E2E_INSTALL=deb|build|auto   how vigil gets into the container
#   VIGIL_E2E_KEEP=1        keep the overlay of a failed run for inspection
# Logs (console, journal, vigil's answers) go to BUILD/test-artefacts/e2e.

set -u
umask 022
export LC_ALL=C

T0=$(date +%s)
say() { printf 'e2e: %s\n' "$*"; }
elapsed() { echo $(( $(date +%s) - T0 )); }

skip() {
	say "SKIPPED: $*"
	if [ "${CI:-}" = true ] && [ "${SKIP_IS_OK:-0}" != 1 ]; then
		say "CI=true: a skipped e2e test counts as a failure" \
		    "(set VIGIL_E2E=0 to skip it on purpose)"
		exit 1
	fi
	exit 77
}

if [ "${VIGIL_E2E:-1}" = 0 ]; then
	SKIP_IS_OK=1 skip "disabled (VIGIL_E2E=0)"
fi
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
BUILD=$(cd "$1" 2>/dev/null && pwd) || { echo "e2e: no build folder $1" >&2; exit 2; }
SRC=$(cd "$(dirname "$0")/../.." && pwd)

[ "$(id -u)" -eq 0 ] || skip "needs root (systemd-nspawn boots a container)"
command -v systemd-nspawn >/dev/null ||
	skip "systemd-nspawn is missing (apt-get install systemd-container)"
command -v debootstrap >/dev/null ||
	skip "debootstrap is missing (apt-get install debootstrap)"
for t in nsenter python3 flock; do
	command -v $t >/dev/null || skip "$t is missing"
done

VIGILD=$BUILD/scheduler/vigild
VIGIL=$BUILD/agent/vigil
AGENT=$BUILD/agent/vigil-agent
HOLDFILE=$BUILD/tests/apps/holdfile
for b in "$VIGILD" "$VIGIL" "$AGENT" "$HOLDFILE"; do
	[ -x "$b" ] || { say "FAILED: $b is not built"; exit 1; }
done

CACHE=${VIGIL_E2E_CACHE:-/var/cache/vigil-e2e}
MIRROR=${VIGIL_E2E_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# What the container needs: systemd with logind and PAM sessions, and the
# libraries vigil links (libx11-6 for the agent's X11 close requests;
# adduser and init-system-helpers for the package's maintainer scripts).
PKGS=systemd,systemd-sysv,dbus,libpam-systemd,login,passwd,util-linux,procps
PKGS=$PKGS,adduser,init-system-helpers,libsqlite3-0,libarchive13,libjansson4
PKGS=$PKGS,libxxhash0,libsystemd0,libx11-6,zlib1g
ROOTFS=$CACHE/rootfs-$SUITE
STAMP="suite=$SUITE variant=minbase mirror=$MIRROR include=$PKGS"
ART=$BUILD/test-artefacts/e2e
mkdir -p "$CACHE" "$ART" || skip "cannot create $CACHE"
rm -f "$ART"/*

# ---- 1. the cached root filesystem ---------------------------------------
build_rootfs() {
	local new=$ROOTFS.new t
	rm -rf "$new"
	say "building the $SUITE root filesystem in $ROOTFS (once; cached)"
	t=$(date +%s)
	if ! debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$new" \
	    "$MIRROR" >"$ART/debootstrap.log" 2>&1; then
		tail -n 5 "$ART/debootstrap.log" | sed 's/^/e2e:   /'
		rm -rf "$new"
		if grep -qiE 'resolve|connect|network|timed out|Release' \
		    "$ART/debootstrap.log"; then
			skip "debootstrap could not reach $MIRROR (no network?)"
		fi
		say "FAILED: debootstrap failed (log: $ART/debootstrap.log)"
		exit 1
	fi
	# Quiet, fast boots: no getty on the console, no first-boot wizard.
	chroot "$new" systemctl mask console-getty.service \
	    systemd-firstboot.service >/dev/null 2>&1
	echo vigil-e2e >"$new/etc/hostname"
	rm -rf "$ROOTFS"
	mv "$new" "$ROOTFS" || exit 1
	printf '%s\n' "$STAMP" >"$ROOTFS.stamp"
	say "root filesystem built in $(( $(date +%s) - t )) s"
}

# Leftovers of a run that was killed (a test timeout sends SIGKILL): its
# container (the systemd-nspawn recorded in its folder, booted from that
# folder), its overlay mount, its folder.
for old in "$CACHE"/run.*; do
	[ -f "$old/pids" ] || continue
	owner= npid= cpid=
	read -r owner npid cpid <"$old/pids"
	kill -0 "$owner" 2>/dev/null && continue
	# Only what that run started: the container's init (its root is
	# that run's folder) and the systemd-nspawn booted from it.
	if [ -n "$cpid" ] && [ "$(readlink /proc/$cpid/root)" = "$old/root" ]
	then
		say "stopping the container a killed run left ($old)"
		kill -KILL "$cpid" 2>/dev/null
	fi
	if [ -n "$npid" ] && [ "$(cat /proc/$npid/comm 2>/dev/null)" = \
	    systemd-nspawn ] && tr '\0' ' ' </proc/$npid/cmdline |
	    grep -q -- "-D $old/root "; then
		kill -KILL "$npid" 2>/dev/null
	fi
	sleep 1
	umount "$old/root" 2>/dev/null || umount -l "$old/root" 2>/dev/null
	rm -rf "$old"
done

exec 8>"$CACHE/lock"
flock 8
if [ ! -d "$ROOTFS" ] || [ "$(cat "$ROOTFS.stamp" 2>/dev/null)" != "$STAMP" ]
then
	build_rootfs
else
	say "using the cached root filesystem $ROOTFS"
fi
exec 8>&-	# (no child may inherit the lock)

# ---- 2. a throw-away overlay with vigil installed --------------------------
MACHINE=vigil-e2e-$$
RUN=$(mktemp -d "$CACHE/run.XXXXXX")
echo "$$" >"$RUN/pids"
ROOT=$RUN/root
NSPAWN_PID=
CPID=
LOGIN_PID=
FAILED=0
OVERLAY=0

cleanup() {
	local i
	exec 9>&- 2>/dev/null
	if [ -n "$CPID" ] && kill -0 "$CPID" 2>/dev/null; then
		cin journalctl -b --no-pager -o short-monotonic \
		    >"$ART/journal.log" 2>&1
		# SIGRTMIN+4 asks the container's systemd to power off.
		kill -s RTMIN+4 "$CPID" 2>/dev/null
	fi
	if [ -n "$NSPAWN_PID" ]; then
		for i in $(seq 1 60); do
			kill -0 "$NSPAWN_PID" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$NSPAWN_PID" 2>/dev/null; then
			say "the container did not power off in 30 s; killing it"
			[ -n "$CPID" ] && kill -KILL "$CPID" 2>/dev/null
			kill -KILL "$NSPAWN_PID" 2>/dev/null
		fi
		wait "$NSPAWN_PID" 2>/dev/null
	fi
	[ -n "$LOGIN_PID" ] && kill "$LOGIN_PID" 2>/dev/null
	wait 2>/dev/null
	if [ "$OVERLAY" = 1 ]; then
		umount "$ROOT" 2>/dev/null || umount -l "$ROOT" 2>/dev/null
	fi
	if [ "$FAILED" = 1 ] && [ "${VIGIL_E2E_KEEP:-0}" = 1 ]; then
		say "kept $RUN for inspection"
	else
		rm -rf "$RUN"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

mkdir -p "$RUN/upper" "$RUN/work" "$ROOT"
if mount -t overlay overlay \
    -o "lowerdir=$ROOTFS,upperdir=$RUN/upper,workdir=$RUN/work" "$ROOT" \
    2>/dev/null; then
	OVERLAY=1
else
	say "no overlayfs here; copying the root filesystem instead"
	cp -a "$ROOTFS/." "$ROOT/" || { say "FAILED: copy"; exit 1; }
fi

# Run a command in a container that is not booted (the install).
prep() {
	systemd-nspawn -q -D "$ROOT" --register=no --keep-unit \
	    -M "$MACHINE-prep" -E PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# Which vigil: the Debian package (issue 7) when it is not older than the
# build's binaries, or the build itself.
how=${VIGIL_E2E_INSTALL:-auto}
deb=$(ls -t "$SRC"/dist/vigil_*.deb 2>/dev/null | head -n 1)
if [ "$how" = auto ]; then
	if [ -n "$deb" ] && [ ! "$deb" -ot "$VIGILD" ]; then
		how=deb
	else
		how=build
		if [ -n "$deb" ]; then
			say "note: $deb is older than $VIGILD: installing the" \
			    "build (run packaging/build-deb.sh to test the package)"
		fi
	fi
fi
case $how in
deb)
	[ -n "$deb" ] || { say "FAILED: no dist/vigil_*.deb"; exit 1; }
	say "installing $(basename "$deb") with dpkg -i"
	cp "$deb" "$ROOT/var/tmp/vigil.deb"
	if ! prep dpkg -i /var/tmp/vigil.deb >"$ART/install.log" 2>&1; then
		cat "$ART/install.log"
		say "FAILED: dpkg -i of $(basename "$deb") in a fresh container"
		exit 1
	fi
	rm -f "$ROOT/var/tmp/vigil.deb"
	;;
build)
	if ldd "$VIGILD" | grep -q libasan; then
		SKIP_IS_OK=1 skip "$BUILD is a sanitizer build; the container" \
		    "has no ASan runtime"
	fi
	say "installing $BUILD with cmake --install (DESTDIR)"
	if ! DESTDIR=$RUN/stage cmake --install "$BUILD" --prefix /usr \
	    >"$ART/install.log" 2>&1; then
		cat "$ART/install.log"
		say "FAILED: cmake --install"
		exit 1
	fi
	# A build configured for another prefix names that prefix in the
	# system unit: point ExecStart at what this install put in place.
	for u in $(find "$RUN/stage" -name '*.service'); do
		exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$u")
		if [ -n "$exe" ] && [ ! -e "$RUN/stage$exe" ]; then
			found=$(cd "$RUN/stage" && find . -type f \
			    -name "$(basename "$exe")" | head -n 1)
			found=${found#.}
			say "note: $(basename "$u") names $exe, which this" \
			    "install does not have; using $found"
			sed -i "s|^ExecStart=$exe|ExecStart=$found|" "$u"
		fi
	done
	cp -a "$RUN/stage/." "$ROOT/"
	prep sh -c 'set -e
	    getent group vigil >/dev/null || groupadd --system vigil
	    install -d -m 0711 /var/lib/vigil
	    systemctl enable vigild.service
	    systemctl --global enable vigil-agent.service' \
	    >"$ART/install.log" 2>&1 || {
		cat "$ART/install.log"; say "FAILED: enabling the units"; exit 1; }
	;;
*)
	say "VIGIL_E2E_INSTALL must be deb, build or auto"; exit 2 ;;
esac

install -m 0755 "$HOLDFILE" "$ROOT/usr/local/bin/holdfile"
if ! prep sh -c 'set -e
    for b in vigild vigil vigil-agent holdfile; do
	p=$(command -v $b) || { echo "$b is not installed"; exit 1; }
	if ldd "$p" | grep "not found"; then echo "$p: missing libraries"; exit 1; fi
    done
    useradd --create-home --shell /bin/bash --uid 1000 alice
    install -d -o alice -g alice /home/alice/docs /home/alice/backup
    echo "first line" >/home/alice/docs/notes.txt
    echo "a report" >/home/alice/docs/report.txt
    chown alice:alice /home/alice/docs/*.txt
    install -d -m 0700 /var/lib/vigil-e2e' >"$ART/prepare.log" 2>&1; then
	cat "$ART/prepare.log"
	say "FAILED: preparing the container"
	exit 1
fi
say "installed vigil ($how) at $(elapsed) s"

# ---- 3. boot -------------------------------------------------------------
systemd-nspawn -D "$ROOT" -b --register=no --keep-unit -M "$MACHINE" \
    --console=read-only >"$ART/console.log" 2>&1 &
NSPAWN_PID=$!
echo "$$ $NSPAWN_PID" >"$RUN/pids"

# The container's PID 1 as the host sees it: the child of nspawn that is
# pid 1 in its own pid namespace (nspawn's helper children are not).
find_cpid() {
	local p
	CPID=
	for p in $(ps -o pid= --ppid "$NSPAWN_PID" 2>/dev/null); do
		if awk '$1 == "NSpid:" && NF > 2 && $NF == 1 { ok = 1 }
		    END { exit !ok }' /proc/$p/status 2>/dev/null; then
			CPID=$p
			return 0
		fi
	done
	return 1
}
for i in $(seq 1 300); do
	find_cpid && break
	kill -0 "$NSPAWN_PID" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$CPID" ]; then
	tail -n 20 "$ART/console.log" | sed 's/^/e2e:   /'
	skip "systemd-nspawn could not start the container here"
fi
echo "$$ $NSPAWN_PID $CPID" >"$RUN/pids"

# Run a command inside the booted container, as root; as alice.
cin() {
	nsenter -t "$CPID" -a -- env -i LANG=C.UTF-8 \
	    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	    "$@"
}
ALICE_UID=1000
asalice() {
	cin setpriv --reuid=alice --regid=alice --init-groups \
	    env HOME=/home/alice USER=alice LOGNAME=alice \
	    XDG_RUNTIME_DIR=/run/user/$ALICE_UID \
	    DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$ALICE_UID/bus "$@"
}
# A field of a JSON document on stdin: jget 'd["path"]'.
jget() {
	python3 -c 'import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d})
print(json.dumps(v) if isinstance(v, (dict, list)) else v)' "$1"
}

state=
for i in $(seq 1 360); do
	state=$(cin systemctl is-system-running 2>/dev/null)
	case $state in running|degraded) break ;; esac
	kill -0 "$NSPAWN_PID" 2>/dev/null || break
	sleep 0.5
done
case $state in
running|degraded) say "booted ($state) at $(elapsed) s" ;;
*)
	tail -n 30 "$ART/console.log" | sed 's/^/e2e:   /'
	skip "the container did not boot (state: ${state:-none})"
	;;
esac
if [ "$state" = degraded ]; then
	cin systemctl --failed --no-legend --plain | sed 's/^/e2e:   failed unit: /'
fi
if ! cin systemctl is-active -q vigild.service; then
	cin systemctl status vigild.service --no-pager -l | sed 's/^/e2e:   /'
	cin journalctl -u vigild.service -b --no-pager | tail -n 20 |
	    sed 's/^/e2e:   /'
	say "FAILED: vigild is not running after boot"
	FAILED=1
	exit 1
fi
cin test -d /run/systemd/seats || say "warning: no /run/systemd/seats"

RESULTS=()
result() {	# NAME PASS|FAIL DETAIL
	RESULTS+=("$1: $2${3:+ ($3)}")
	say "scenario $1: $2${3:+ ($3)}"
	[ "$2" = PASS ] || FAILED=1
}
check() {	# DESCRIPTION COMMAND...: prints and counts a failed check
	local what=$1
	shift
	if "$@"; then
		say "  ok: $what"
		return 0
	fi
	say "  NOT OK: $what"
	BAD=$((BAD + 1))
	return 1
}

# The job: alice's documents, warn 0, a short close timeout.
write_job() {	# SCHEDULE
	cat >"$ROOT/home/alice/jobs.ini" <<EOF
# e2e: alice's documents
[job docs]
source        = /home/alice/docs
destination   = /home/alice/backup/docs
mode          = backup
schedule      = $1
close-apps    = auto
close-method  = term
warn          = 0s
close-timeout = 5s
EOF
	chown 1000:1000 "$ROOT/home/alice/jobs.ini"
	asalice vigil jobs import --replace /home/alice/jobs.ini \
	    >>"$ART/vigil.log" 2>&1
}
last_run() {	# prints the newest run of docs as JSON
	asalice vigil --json history --limit 1 docs 2>>"$ART/vigil.log" |
	    jget 'd[0] if d else None'
}

# ---- scenario 1: nobody logged on ------------------------------------------
BAD=0
say "scenario 1: nobody logged on, a scheduled run"
now=$(cin date +%s)
at=$(( (now / 60 + 1) * 60 ))
[ $((at - now)) -ge 8 ] || at=$((at + 60))
hhmm=$(cin date -d "@$at" +%H:%M)
if ! write_job "daily $hhmm"; then
	cat "$ART/vigil.log"
	result 1 FAIL "vigil jobs import failed"
else
	sessions=$(cin vigil --json sessions 2>>"$ART/vigil.log")
	echo "$sessions" >"$ART/s1-sessions.json"
	check "vigil sessions lists nobody" \
	    [ "$(echo "$sessions" | jget 'len(d)')" = 0 ]
	say "  job due at $hhmm ($((at - now)) s from now)"
	run=None
	for i in $(seq 1 $((at - now + 60))); do
		r=$(last_run)
		if [ -n "$r" ] && [ "$r" != None ] &&
		    [ "$(echo "$r" | jget 'd["status"]')" != running ]; then
			run=$(echo "$r" | jget 'd["id"]')
			break
		fi
		sleep 1
	done
	if [ "$run" = None ]; then
		result 1 FAIL "no run by $((at - now + 60)) s after scheduling"
	else
		log=$(asalice vigil --json log "$run")
		echo "$log" >"$ART/s1-log.json"
		started=$(echo "$log" | jget 'd["started"]')
		st=$(cin date -d "$started" +%s.%N)
		check "the run was scheduled (trigger $(echo "$log" | jget 'd["trigger"]'))" \
		    [ "$(echo "$log" | jget 'd["trigger"]')" = schedule ]
		check "status $(echo "$log" | jget 'd["status"]')" \
		    [ "$(echo "$log" | jget 'd["status"]')" = ok ]
		check "path $(echo "$log" | jget 'd["path"]'): fallback" \
		    [ "$(echo "$log" | jget 'd["path"]')" = fallback ]
		reason=$(echo "$log" | jget 'd["path_reason"]')
		check "reason \"$reason\" says nobody is logged on" \
		    eval 'echo "$reason" | grep -qE "not logged on|nobody is logged on"'
		lag=$(python3 -c "print(round($st - $at, 2))")
		dur=$(echo "$log" | jget 'd["duration_ms"]')
		check "started ${lag} s after the scheduled minute (< 5 s)" \
		    python3 -c "import sys; sys.exit(not (-1 < $lag < 5))"
		check "the run took ${dur} ms: no wait for an agent (< 5000)" \
		    [ "$dur" -lt 5000 ]
		check "no agent was asked" \
		    [ "$(echo "$log" | jget 'len((d.get("details") or {}).get("agents") or [])')" = 0 ]
		check "the backup has notes.txt" \
		    cmp -s "$ROOT/home/alice/docs/notes.txt" \
		    "$ROOT/home/alice/backup/docs/notes.txt"
		[ $BAD -eq 0 ] && result 1 PASS "run $run: fallback, ${dur} ms" ||
		    result 1 FAIL "$BAD checks failed; see $ART/s1-log.json"
	fi
fi

# ---- scenario 2: alice logs in ---------------------------------------------
BAD=0
say "scenario 2: alice logs in; her app is closed, backed up, reopened"
FIFO=$ROOT/var/lib/vigil-e2e/login.fifo
mkfifo "$FIFO"
# login -f through script(1) for a pty, its stdin held open by our fd 9.
nsenter -t "$CPID" -a -- env -i TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    script -qfc 'login -f alice' /dev/null <"$FIFO" >"$ART/login.log" 2>&1 &
LOGIN_PID=$!
exec 9>"$FIFO"
to_shell() { printf '%s\n' "$*" >&9; }

sid=
for i in $(seq 1 60); do
	sid=$(cin loginctl list-sessions --no-legend 2>/dev/null |
	    awk '$3 == "alice" { print $1; exit }')
	[ -n "$sid" ] && break
	sleep 0.5
done
s2_ok=1
if [ -z "$sid" ]; then
	result 2 FAIL "logind registered no session for alice"
	s2_ok=0
else
	props=$(cin loginctl show-session "$sid" -p Class -p Type -p State |
	    tr '\n' ' ')
	say "  logind session $sid: $props"
	check "session $sid is a user-class session" \
	    eval 'echo "$props" | grep -q "Class=user"'
	agent=
	for i in $(seq 1 60); do
		sessions=$(cin vigil --json sessions 2>>"$ART/vigil.log")
		agent=$(echo "$sessions" | jget "[s for s in d if s['id'] == '$sid' and s.get('agent')]" 2>/dev/null)
		[ -n "$agent" ] && [ "$agent" != "[]" ] && break
		sleep 0.5
	done
	echo "$sessions" >"$ART/s2-sessions.json"
	asalice systemctl --user status vigil-agent.service --no-pager \
	    >"$ART/s2-agent-status.txt" 2>&1
	if ! check "vigil sessions shows session $sid with its agent" \
	    [ "${agent:-[]}" != "[]" ]; then
		sed 's/^/e2e:   /' "$ART/s2-agent-status.txt"
		s2_ok=0
	fi
fi
if [ $s2_ok = 1 ]; then
	# The app, started from her login shell as its own job: it holds
	# open.txt open.
	to_shell "cd /home/alice/docs"
	to_shell "holdfile /home/alice/docs/open.txt /home/alice/marker.txt --e2e-arg &"
	pid=
	for i in $(seq 1 40); do
		pid=$(cin pgrep -u alice -x holdfile | head -n 1)
		[ -n "$pid" ] && grep -q "opened by" \
		    "$ROOT/home/alice/docs/open.txt" 2>/dev/null && break
		sleep 0.25
	done
	if [ -z "$pid" ]; then
		result 2 FAIL "holdfile did not start in alice's session"
	else
		argv=$(cin cat /proc/$pid/cmdline | tr '\0' ' ')
		cgroup=$(cin cat /proc/$pid/cgroup | sed -n 's|^0::.*/||p')
		say "  holdfile pid $pid ($argv) in $cgroup"
		t=$(date +%s.%N)
		asalice sh -c 'cd && vigil run --wait docs' >"$ART/s2-run.txt" 2>&1
		rc=$?
		took=$(python3 -c "print(round($(date +%s.%N) - $t, 1))")
		sed 's/^/e2e:   | /' "$ART/s2-run.txt"
		check "vigil run --wait exited 0 (it said $rc) in $took s" [ $rc -eq 0 ]
		run=$(last_run | jget 'd["id"]')
		log=$(asalice vigil --json log "$run")
		echo "$log" >"$ART/s2-log.json"
		check "path $(echo "$log" | jget 'd["path"]'): agent" \
		    [ "$(echo "$log" | jget 'd["path"]')" = agent ]
		check "marker says holdfile $pid got SIGTERM" \
		    grep -qx "sigterm $pid" "$ROOT/home/alice/marker.txt"
		bak=$ROOT/home/alice/backup/docs/open.txt
		check "the backup of open.txt ends with the app's last save" \
		    [ "$(tail -n 1 "$bak" 2>/dev/null)" = "saved by $pid" ]
		newpid=
		for i in $(seq 1 40); do
			newpid=$(cin pgrep -u alice -x holdfile | head -n 1)
			[ -n "$newpid" ] && [ "$newpid" != "$pid" ] && break
			sleep 0.25
		done
		check "holdfile runs again as alice with a new pid ($newpid)" \
		    [ "${newpid:-$pid}" != "$pid" ]
		if [ -n "$newpid" ]; then
			argv2=$(cin cat /proc/$newpid/cmdline | tr '\0' ' ')
			# systemd-run resolves argv[0] along PATH before it
			# execs (the reopen runs under systemd-run --user
			# --scope), so argv[0] may come back as the absolute
			# path of the same program; the rest must be equal.
			exe0=$(cin sh -c 'command -v "$1"' sh "${argv%% *}")
			check "with the same argv ($argv2)" \
			    eval '[ "$argv2" = "$argv" ] ||
			        [ "$argv2" = "$exe0 ${argv#* }" ]'
			[ "$argv2" = "$argv" ] ||
				say "  note: argv[0] came back as $exe0 (was ${argv%% *})"
			check "and the same cwd" [ "$(cin readlink /proc/$newpid/cwd)" = /home/alice/docs ]
			say "  reopened in $(cin cat /proc/$newpid/cgroup |
			    sed -n 's|^0::.*/||p')"
			check "the backup was taken before the reopen" \
			    eval '! grep -q "opened by $newpid" "$bak"'
		fi
		# The agent confirms the reopen after the run is recorded;
		# vigild merges it into the record when it arrives.
		for i in $(seq 1 40); do
			log=$(asalice vigil --json log "$run")
			reopened=$(echo "$log" | jget '[a["pid"] for a in d["details"]["apps"]["reopened"]]')
			[ "$reopened" != "[]" ] && break
			sleep 0.25
		done
		echo "$log" >"$ART/s2-log.json"
		closed=$(echo "$log" | jget '[a["pid"] for a in d["details"]["apps"]["closed"]]')
		check "vigil log lists holdfile $pid closed ($closed)" \
		    [ "$closed" = "[$pid]" ]
		check "vigil log lists holdfile $newpid reopened ($reopened)" \
		    [ "$reopened" = "[$newpid]" ]
		[ $BAD -eq 0 ] && result 2 PASS "run $run: agent; closed $pid, reopened $newpid; $took s" ||
		    result 2 FAIL "$BAD checks failed; see $ART/s2-log.json"
	fi
fi

# ---- scenario 3a: alice's agent hangs (SIGSTOP) ----------------------------
# It stays connected but answers nothing: the run must go ahead by the
# fallback once the deadline (warn 0 + close-timeout 5 s + 10 s) passes, and
# when the agent wakes up, whatever it closes late is reopened.
BAD=0
say "scenario 3a: alice's agent hangs; the run goes ahead at its deadline"
if [ -z "$sid" ]; then
	result 3a FAIL "no session for alice (scenario 2)"
else
	hpid=$(cin pgrep -u alice -x holdfile | head -n 1)
	asalice systemctl --user kill --signal=SIGSTOP vigil-agent.service \
	    >>"$ART/vigil.log" 2>&1
	t=$(date +%s.%N)
	asalice sh -c 'cd && vigil run --wait docs' >"$ART/s3a-run.txt" 2>&1
	took=$(python3 -c "print(round($(date +%s.%N) - $t, 1))")
	sed 's/^/e2e:   | /' "$ART/s3a-run.txt"
	run=$(last_run | jget 'd["id"]')
	log=$(asalice vigil --json log "$run")
	echo "$log" >"$ART/s3a-log.json"
	check "the run waited for the deadline and no longer ($took s; 15 s)" \
	    python3 -c "import sys; sys.exit(not 14 <= $took < 20)"
	check "path $(echo "$log" | jget 'd["path"]'): fallback" \
	    [ "$(echo "$log" | jget 'd["path"]')" = fallback ]
	reason=$(echo "$log" | jget 'd["path_reason"]')
	check "reason \"$reason\" says the agent did not answer" \
	    eval 'echo "$reason" | grep -q "did not answer"'
	asalice systemctl --user kill --signal=SIGCONT vigil-agent.service \
	    >>"$ART/vigil.log" 2>&1
	# Awake again, the agent hears that vigild no longer waits on it:
	# it must close nothing (the copy is over; closing now would only
	# interrupt alice).
	sleep 3
	back=$(cin pgrep -u alice -x holdfile | head -n 1)
	check "holdfile still runs, untouched, after the agent woke up (pid ${back:-none}, was $hpid)" \
	    [ "$back" = "$hpid" ]
	cin journalctl -b --no-pager -o cat \
	    _SYSTEMD_USER_UNIT=vigil-agent.service 2>/dev/null | tail -n 3 |
	    sed 's/^/e2e:   agent: /'
	log=$(asalice vigil --json log "$run")
	echo "$log" >"$ART/s3a-log-after.json"
	late=$(echo "$log" | jget '[(a["pid"]) for a in d["details"]["apps"]["closed"]]')
	check "the run's record lists no app closed ($late)" [ "$late" = "[]" ]
	[ $BAD -eq 0 ] && result 3a PASS "run $run: fallback after $took s: $reason" ||
	    result 3a FAIL "$BAD checks failed; see $ART/s3a-log.json"
fi

# ---- scenario 3: alice's agent stopped, alice still logged on ---------------
BAD=0
say "scenario 3: alice's agent stopped while she stays logged in"
if [ -z "$sid" ]; then
	result 3 FAIL "no session for alice (scenario 2)"
else
	asalice systemctl --user stop vigil-agent.service >>"$ART/vigil.log" 2>&1
	check "her agent is stopped" \
	    eval '! asalice systemctl --user is-active -q vigil-agent.service'
	gone=0
	for i in $(seq 1 40); do
		sessions=$(cin vigil --json sessions 2>>"$ART/vigil.log")
		[ "$(echo "$sessions" | jget "[s['id'] for s in d if s['id'] == '$sid' and not s.get('agent')]")" = "[\"$sid\"]" ] &&
		    { gone=1; break; }
		sleep 0.25
	done
	echo "$sessions" >"$ART/s3-sessions.json"
	check "vigil sessions shows session $sid without an agent" [ $gone = 1 ]
	st=$(cin loginctl show-session "$sid" -p State --value 2>&1)
	check "alice is still logged on (session $sid: $st)" \
	    eval '[ "$st" = active ] || [ "$st" = online ]'
	t=$(date +%s.%N)
	asalice sh -c 'cd && vigil run --wait docs' >"$ART/s3-run.txt" 2>&1
	rc=$?
	took=$(python3 -c "print(round($(date +%s.%N) - $t, 1))")
	sed 's/^/e2e:   | /' "$ART/s3-run.txt"
	run=$(last_run | jget 'd["id"]')
	log=$(asalice vigil --json log "$run")
	echo "$log" >"$ART/s3-log.json"
	# The deadline: warn 0 + close-timeout 5 s + 10 s.
	check "the run ended in $took s, within its deadline (15 s)" \
	    python3 -c "import sys; sys.exit(not $took < 15)"
	check "path $(echo "$log" | jget 'd["path"]'): fallback" \
	    [ "$(echo "$log" | jget 'd["path"]')" = fallback ]
	reason=$(echo "$log" | jget 'd["path_reason"]')
	check "reason \"$reason\" names session $sid without an agent" \
	    eval 'echo "$reason" | grep -q "session $sid" &&
	        echo "$reason" | grep -q "no agent"'
	check "nothing was closed" \
	    [ "$(echo "$log" | jget 'len(d["details"].get("apps", {}).get("closed", []))')" = 0 ]
	[ $BAD -eq 0 ] && result 3 PASS "run $run: fallback in $took s: $reason" ||
	    result 3 FAIL "$BAD checks failed; see $ART/s3-log.json"
fi

to_shell "exit"
say "----"
for r in "${RESULTS[@]}"; do say "$r"; done
say "total $(elapsed) s; logs in $ART"
if [ "$FAILED" = 1 ]; then
	say "FAILED"
	exit 1
fi
say "PASSED"
exit 0
