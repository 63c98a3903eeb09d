#!/usr/bin/env bash
# Sanitizers and fuzzing (README, "Tests"; scripts/test.sh runs it after the
# main suite): a second build tree, build-asan, compiled by clang with
# AddressSanitizer and UndefinedBehaviorSanitizer (any report aborts), in
# which CTest runs
#   - the unit suites (every suite but the it_* integration ones), and
#   - the libFuzzer harnesses of tests/fuzz, fuzz_NAME, LS_FUZZ_SECONDS each
#     (default 20) over tests/fuzz/corpus/NAME.
# Any failure fails the script. Extra arguments go to ctest (-R fuzz_elf).
# LS_FUZZ_SECONDS=600 scripts/fuzz.sh -R fuzz_elf: one harness, longer.
set -euo pipefail
cd "$(dirname "$0")/.."

CC_FUZZ=${CC_FUZZ:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$CC_FUZZ" ]; then
  echo "fuzz: clang not found (scripts/setup.sh installs it)" >&2
  exit 1
fi
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CC="$CC_FUZZ" cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug \
  "-DCMAKE_C_FLAGS=-O1 -g $SAN" \
  -DLS_FUZZ_SECONDS="${LS_FUZZ_SECONDS:-20}" >/dev/null
# The unit suites and the fuzzers only (not the CLI, nor the it_* suites).
cmake --build build-asan -j"$(nproc)" --target unit_and_fuzz >/dev/null
cd build-asan
# LS_FUZZ defaults to on when this clang links -fsanitize=fuzzer
# (libclang_rt.fuzzer); without it the unit suites still run, and we say so.
if ! grep -q '^LS_FUZZ:BOOL=ON' CMakeCache.txt; then
  echo "fuzz: $CC_FUZZ cannot link -fsanitize=fuzzer: fuzzers not built, unit suites only" >&2
fi
# A leak is an error too (LeakSanitizer, on with ASan): Check forks each
# test, and a leak fails it.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
ctest --output-on-failure -E '^(it_|public_api$)' -j"$(nproc)" "$@"
