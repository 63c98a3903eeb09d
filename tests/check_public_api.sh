#!/bin/sh
# Test "public_api": the public headers (include/loopscope/*.h, not abi/)
# compile alone without the kernel ABI headers, and the CLI does not link
# the daemon's libraries.
#   check_public_api.sh SOURCE_DIR CC CLI_BINARY [EXTRA_CFLAGS...]
# Each header is compiled in a file of its own that includes nothing else,
# against a copy of include/loopscope/ without abi/: a header that needs an
# abi/ header fails to compile. loopscope/pycallback.h is the exception
# (struct ls_cb_entry holds the kernel's callback key and histogram by
# value, see issue #15), and so are loopscope/pytarget.h and pydebug.h: a
# resolved CPython target's product is the offsets row the BPF programs
# read (struct ls_py_target.off, abi/py_offsets.h); they are checked to
# compile with abi/ present.
set -u
src=$1 cc=$2 cli=$3
shift 3
tmp=$(mktemp -d /tmp/loopscope-headers.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/noabi/loopscope"
cp "$src"/include/loopscope/*.h "$tmp/noabi/loopscope/"
fail=0
for h in "$src"/include/loopscope/*.h; do
	name=$(basename "$h")
	printf '#include "loopscope/%s"\n' "$name" > "$tmp/t.c"
	case $name in
	pycallback.h | pytarget.h | pydebug.h) inc=$src/include ;;
	*) inc=$tmp/noabi ;;
	esac
	if ! "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsyntax-only -I"$inc" "$@" "$tmp/t.c" \
		2> "$tmp/err"; then
		echo "FAIL: loopscope/$name does not compile alone without abi/:"
		cat "$tmp/err"
		fail=1
	else
		echo "ok: loopscope/$name"
	fi
done
# The CLI links neither libmicrohttpd nor libconfig (the daemon's).
needed=$(readelf -d "$cli" | grep NEEDED) || { echo "FAIL: readelf -d $cli"; exit 1; }
for lib in libmicrohttpd libconfig; do
	if echo "$needed" | grep -q "$lib"; then
		echo "FAIL: $cli links $lib:"
		echo "$needed"
		fail=1
	else
		echo "ok: $(basename "$cli") does not link $lib"
	fi
done
exit $fail
