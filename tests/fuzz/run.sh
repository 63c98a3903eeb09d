#!/bin/sh
# One bounded libFuzzer run, as CTest's fuzz_NAME runs it (CMakeLists.txt):
#   run.sh BINARY SEEDS WORKDIR SECONDS [libFuzzer flags...]
# SEEDS (tests/fuzz/corpus/NAME) is only read; new inputs go to
# WORKDIR/corpus, build-time seeds are read from WORKDIR/seeds, and a
# crashing input is saved as WORKDIR/artifacts/crash-* (or leak-, timeout-,
# oom-). Fails (libFuzzer's non-zero exit) on any crash, sanitizer report,
# leak, input slower than 10 s, or more than 2 GiB.
set -eu
bin=$1 seeds=$2 work=$3 secs=$4
shift 4
mkdir -p "$work/corpus" "$work/artifacts"
dirs="$work/corpus $seeds"
[ -d "$work/seeds" ] && dirs="$dirs $work/seeds"
dict=$(dirname "$0")/$(basename "$seeds").dict
[ -f "$dict" ] && set -- -dict="$dict" "$@"
# Leaks in the libraries we link (lsan.supp says which, and why).
LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(dirname "$0")/lsan.supp
export LSAN_OPTIONS
# shellcheck disable=SC2086
exec "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$work/artifacts/" "$@" $dirs
