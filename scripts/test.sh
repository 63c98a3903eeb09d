#!/usr/bin/env bash
# Quick start (2): set up, build, run every test (unit and integration),
# then the unit suites under ASan+UBSan and the fuzzers (scripts/fuzz.sh,
# about 2 minutes more). Arguments go to the main suite's ctest only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The suites labelled "parallel" (unit suites without a time bound) two at
# a time, then the rest (integration and timed suites) one at a time: their
# bounds assume a machine not loaded by the suite itself.
rc=0
(cd build && ctest --output-on-failure -j2 -L '^parallel$' "$@") || rc=$?
(cd build && ctest --output-on-failure -j1 -LE '^parallel$' "$@") || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"
scripts/fuzz.sh
