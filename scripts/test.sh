#!/usr/bin/env bash
# Quick start (2): set up, build, run every test (unit and integration),
# then the unit suites under ASan+UBSan and the fuzzers (scripts/fuzz.sh,
# about 2 minutes more). Arguments go to the main suite's ctest only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
(cd build && ctest --output-on-failure -j1 "$@")
scripts/fuzz.sh
