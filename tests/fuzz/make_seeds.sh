#!/bin/sh
# Seeds of fuzz_elf: make_seeds.sh CC OUTDIR [machine]
# The fake CPython of fake_cpython.c as a .so with its symbol table and
# stripped (the tp_methods route), each a few KiB: these are what
# tests/fuzz/corpus/elf holds. With "machine", also the small real ELF
# files of this machine's CPython extension modules (under 20 KiB), for the
# build-time seeds (not committed).
set -eu
cc=$1 out=$2
here=$(dirname "$0")
mkdir -p "$out"
$cc -shared -fPIC -nostdlib -Os -fno-asynchronous-unwind-tables \
	-Wl,-z,max-page-size=4096 -Wl,-z,noseparate-code -Wl,--build-id=none \
	-o "$out/fake-cpython-symtab.so" "$here/fake_cpython.c"
objcopy --strip-all "$out/fake-cpython-symtab.so" "$out/fake-cpython-stripped.so"
if [ "${3:-}" = machine ]; then
	for f in /usr/lib/python3*/lib-dynload/_contextvars.*.so /usr/lib/python3*/lib-dynload/_typing.*.so; do
		[ -f "$f" ] && [ "$(stat -c %s "$f")" -lt 20480 ] && cp "$f" "$out/" || true
	done
fi
exit 0
