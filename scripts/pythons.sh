#!/usr/bin/env bash
# The Debian sid root the tests run CPython 3.14 and 3.15 from (issue #16):
# a minbase debootstrap with the interpreters, uvloop and aiohttp, cached
# outside the repo in $LS_SID_ROOT (default /var/cache/loopscope/sid-root).
# scripts/sid-python runs its interpreters chrooted or as a container.
#
# Idempotent and cached: the root counts as built only when its stamp file
# holds this exact debootstrap command; a second run does nothing. A build
# goes to a temporary directory next to it and is renamed into place only
# when debootstrap succeeded, so a half-built root never counts. When
# Debian cannot be reached the script says so in one line and exits 0: the
# tests then skip the sid interpreters by name.
set -euo pipefail

ROOT=${LS_SID_ROOT:-/var/cache/loopscope/sid-root}
STAMP=.loopscope-sid-stamp
MIRROR=${LS_SID_MIRROR:-http://deb.debian.org/debian}
INCLUDE=python3.14,python3.15,python3-uvloop,python3-aiohttp
CMD="debootstrap --variant=minbase --include=$INCLUDE sid ROOT $MIRROR"

if [ -f "$ROOT/$STAMP" ] && [ "$(cat "$ROOT/$STAMP")" = "$CMD" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "pythons: no sid root at $ROOT and not root: the sid interpreters will be skipped" >&2
  exit 0
fi

cache=$(dirname "$ROOT")
mkdir -p "$cache"
exec 9>"$ROOT.lock"
flock 9
# Another setup may have built it while this one waited for the lock.
if [ -f "$ROOT/$STAMP" ] && [ "$(cat "$ROOT/$STAMP")" = "$CMD" ]; then
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      debootstrap >/dev/null 2>&1; then
    echo "pythons: cannot install debootstrap: the sid interpreters will be skipped" >&2
    exit 0
  fi
fi

log="$ROOT.log"
tmp=$(mktemp -d "$ROOT.tmp.XXXXXX")
# debootstrap mounts /proc and /sys inside while it works: unmount whatever
# it left before removing a failed build (never cross into another fs).
cleanup() {
  if [ -n "${tmp:-}" ] && [ -d "$tmp" ]; then
    findmnt -rno TARGET | grep -F "$tmp/" | sort -r | xargs -r umount -l 2>/dev/null || true
    rm -rf --one-file-system "$tmp"
  fi
}
trap cleanup EXIT

echo "pythons: building the Debian sid root in $ROOT (about a minute; log $log)" >&2
start=$(date +%s)
if ! debootstrap --variant=minbase --include="$INCLUDE" sid "$tmp" "$MIRROR" >"$log" 2>&1; then
  echo "pythons: debootstrap of Debian sid failed ($(grep -m1 -E '^E:' "$log" || tail -n1 "$log")): the sid interpreters will be skipped" >&2
  exit 0
fi
findmnt -rno TARGET | grep -F "$tmp/" | sort -r | xargs -r umount -l 2>/dev/null || true
rm -rf "$tmp"/var/cache/apt/archives/*.deb
echo "$CMD" >"$tmp/$STAMP"

# Swap the finished root in; an older one goes only after the new is in place.
old=
if [ -e "$ROOT" ]; then
  old="$ROOT.old.$$"
  mv "$ROOT" "$old"
fi
mv "$tmp" "$ROOT"
tmp=
if [ -n "$old" ]; then rm -rf --one-file-system "$old"; fi
echo "pythons: built $ROOT in $(($(date +%s) - start)) s" >&2
