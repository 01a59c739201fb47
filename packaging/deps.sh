#!/bin/sh
# Install what building and testing vigil needs on Debian 12, if missing.
# Used by quickstart.sh and check.sh; safe to run again.
set -eu

PKGS="build-essential cmake pkg-config libsqlite3-dev libarchive-dev
zlib1g-dev libcmocka-dev libjansson-dev libsystemd-dev libxxhash-dev
python3 rsync sqlite3 attr acl util-linux passwd e2fsprogs strace
btrfs-progs xfsprogs clang libclang-rt-14-dev clang-tidy cppcheck
libx11-dev xvfb x11-utils dbus
libarchive-tools unzip zstd libfuse3-dev fuse3
libgtk-3-dev libayatana-appindicator3-dev librsvg2-common
xdotool trayer imagemagick dbus-x11 dbus-bin
dpkg-dev debhelper fakeroot lintian"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "vigil: missing packages:$missing" >&2
	echo "vigil: install them as root: apt-get install$missing" >&2
	exit 1
fi
echo "vigil: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
