#!/bin/sh
# One command on a fresh Debian 12: install what is missing, build with
# -Werror, build the Debian packages, and run the whole test suite (unit,
# integration, and the end-to-end test in a booted container that installs
# the package); then the same again under AddressSanitizer and
# UndefinedBehaviorSanitizer; the copy engine under ThreadSanitizer; then
# each parser under libFuzzer.
set -eu
cd "$(dirname "$0")"
sh packaging/deps.sh
jobs=$(nproc)

echo "== build (warnings are errors)"
cmake -S . -B build-check -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_WERROR=ON >/dev/null
cmake --build build-check -j"$jobs"
echo "== Debian packages (dist/), tested below and installed in the e2e container"
sh packaging/build-deb.sh
echo "== tests"
VIGIL_DEB_DIST="$PWD/dist" VIGIL_E2E_INSTALL=deb \
	ctest --test-dir build-check --output-on-failure -j"$jobs"

echo "== build with ASan and UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVIGIL_WERROR=ON -DVIGIL_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests under ASan and UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE 'e2e|lint'

echo "== the copy engine under ThreadSanitizer (the walk and its copier threads)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIL_WERROR=ON -DVIGIL_TSAN=ON >/dev/null
cmake --build build-tsan -j"$jobs" --target vigil vigild test_engine test_capture
TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
	ctest --test-dir build-tsan --output-on-failure -j"$jobs" \
	-R '^(unit_engine|unit_capture|integ_differential|integ_faults_deep)$'

echo "== fuzzing: each parser for ${VIGIL_FUZZ_SECONDS:-60} s under ASan and UBSan (libFuzzer)"
sh tests/fuzz/run.sh "${VIGIL_FUZZ_SECONDS:-60}"
