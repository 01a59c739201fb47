#!/bin/sh
# Build the Debian packages from this tree (Debian 12):
#     sh packaging/build-deb.sh
# leaves dist/vigil_VERSION_ARCH.deb and dist/vigil-tray_VERSION_ARCH.deb at
# the top of the tree (or in $VIGIL_DIST), then runs lintian on them
# (errors fail the build; warnings are printed).  Missing build tools and
# build dependencies are installed when run as root (or with sudo).
#
# The tree is copied (without build folders, dist/ and .git) to a temp
# folder, packaging/debian becomes its debian/, and dpkg-buildpackage
# builds binary packages only, unsigned.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
dist=${VIGIL_DIST:-$root/dist}	# VIGIL_DIST: elsewhere (the tests)

if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	SUDO="none"
fi

apt_install() {
	if [ "$SUDO" = none ]; then
		echo "build-deb: missing: $*; install them as root:" \
		    "apt-get install $*" >&2
		exit 1
	fi
	echo "build-deb: installing $*"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
	    --no-install-recommends "$@" >/dev/null
}

missing=""
for p in dpkg-dev debhelper fakeroot lintian rsync; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] || apt_install $missing

# The build dependencies named in debian/control, without their versions.
unmet=$(cd "$root/packaging" && dpkg-checkbuilddeps -d "$(sed -n \
    '/^Build-Depends:/,/^[A-Z]/p' debian/control | sed '$d' |
    sed 's/^Build-Depends://' | tr -d '\n')" /dev/null 2>&1 |
    sed -n 's/.*Unmet build dependencies: //p' |
    sed 's/([^)]*)//g; s/|[^ ]*//g' || true)
[ -z "$unmet" ] || apt_install $unmet

version=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog" -S Version)
tmp=$(mktemp -d /tmp/vigil-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
src=$tmp/vigil-$version

echo "build-deb: copying the tree to $src"
rsync -a --exclude='/build*/' --exclude='/dist/' --exclude='/.git/' \
    --exclude='/build-*.log' "$root/" "$src/"
rm -rf "$src/debian"
cp -a "$root/packaging/debian" "$src/debian"

echo "build-deb: dpkg-buildpackage -us -uc -b"
(cd "$src" && DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1) || {
	tail -n 60 "$tmp/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed (the log's end is above)" >&2
	exit 1
}

mkdir -p "$dist"
rm -f "$dist"/vigil_*.deb "$dist"/vigil-tray_*.deb
mv "$tmp"/vigil_*.deb "$tmp"/vigil-tray_*.deb "$dist/"
ls -l "$dist"/vigil_*.deb "$dist"/vigil-tray_*.deb

echo "build-deb: lintian"
lintian --fail-on error --info "$dist"/vigil_*.deb "$dist"/vigil-tray_*.deb ||
	{ echo "build-deb: lintian found errors" >&2; exit 1; }
echo "build-deb: done: $(cd "$dist" && ls vigil_*.deb vigil-tray_*.deb | tr '\n' ' ')"
