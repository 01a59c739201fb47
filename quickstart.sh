#!/bin/sh
# One command on a fresh Debian 12: install what is missing, build, and run
# the built-in demo job: vigild in user mode backs up a sample folder under
# your own state folder and prints the run record.
set -eu
cd "$(dirname "$0")"
sh packaging/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/scheduler/vigild --user --demo
