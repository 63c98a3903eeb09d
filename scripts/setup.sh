#!/usr/bin/env bash
# Install every Debian 12 package loopscope's build, demo and tests need, and
# build it into ./build. Idempotent: packages already present are not fetched
# again, and the build is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # build
  clang llvm cmake make gcc pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev
  libjson-c-dev libxml2-dev libseccomp-dev systemtap-sdt-dev
  # loopscoped: HTTP exposition, config file
  libmicrohttpd-dev libconfig-dev
  # tests
  check python3 python3-uvloop python3-aiohttp python3-jsonschema
  python3-pytest-asyncio libxml2-utils util-linux
  # loopscoped tests: a real Prometheus (and promtool), tmux for `loopscope top`
  prometheus tmux
  # it_record: `report --html` loaded in headless Chromium
  chromium
  # benchmarks (bench/run and its smoke test): the tools users compare us with
  wrk bpftrace
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CPython 3.14 and 3.15 for the tests: a Debian sid root, cached outside the
# repo (scripts/pythons.sh; about a minute the first time, nothing after).
scripts/pythons.sh

# tracefs: libbpf reads tracepoint ids from it (loopscope mounts it too).
if [ "$(id -u)" = 0 ] && [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "setup: built build/loopscope" >&2
