#!/usr/bin/env bash
# Quick start (1): set up, build, start the reference loop with a scripted
# slow callback, attach loopscope to it for 3 s, print the report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
truth=$(mktemp /tmp/loopscope-demo-truth.XXXXXX)
build/examples/refloop/refloop --duration 6s --truth "$truth" \
  --scenario examples/refloop/scenarios/demo.scn > /tmp/loopscope-demo.out &
loop=$!
trap 'kill $loop 2>/dev/null; wait $loop 2>/dev/null; rm -f "$truth"' EXIT
sleep 0.5
echo "\$ loopscope attach -p $loop -d 3s"
build/loopscope attach -p "$loop" -d 3s
