#!/usr/bin/env bash
# Quick start (2): set up, build, run every test (unit and integration).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
ctest --output-on-failure -j1 "$@"
