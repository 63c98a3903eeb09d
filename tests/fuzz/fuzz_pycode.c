// SPDX-License-Identifier: MIT
/*
 * fuzz_pycode: the line table decoders of agent/python/pycode.c (3.8/3.9
 * co_lnotab, 3.10 co_linetable, 3.11+ location table), on tables, first
 * line numbers and sizes a target controls.
 *
 * Input: byte 0 picks the format (bits 0-1: lnotab, 3.10, locations) and
 * the path (bit 2: ls_pycode_frame on a code object forged in this process,
 * read back through /proc/self/mem; else ls_pycode_table_line); bytes 1-4
 * co_firstlineno, 5-12 the bytecode size (bytes; code units for 3.11+
 * through ls_pycode_frame), 13-20 the size the table's bytes object claims
 * (frame path); the rest is the table, whose first 64 bytes are also the
 * code object's file name and qualified name (a str of 1-byte characters,
 * as a target may forge it). Properties: through the checkpoints and from
 * the start the decoder agrees on every offset, past the bytecode the line
 * is -1; names are NUL-terminated and hold no control character (C0, DEL,
 * C1: they go to terminals).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "loopscope/abi/py_offsets.h"
#include "loopscope/pycode.h"

#define HDR 21

static const uint32_t fmts[] = { LS_PYOFF_LNOTAB, LS_PYOFF_LINETABLE_310, LS_PYOFF_LOCATIONS,
				 LS_PYOFF_LOCATIONS };
/* a row of each format: 3.9 (lnotab), 3.10, 3.11/3.12/3.13 (locations) */
static const int minors[] = { 9, 10, 11, 13 };

static struct ls_pycode_cache *cache;
static uint8_t fake_type[512] __attribute__((aligned(16)));
static uint8_t fake_code[512] __attribute__((aligned(16)));
static uint8_t fake_bytecode[64] __attribute__((aligned(16)));
static uint8_t *fake_table; /* 32 + table bytes */
static uint8_t fake_str[2][128] __attribute__((aligned(16)));

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void put64(uint8_t *b, unsigned at, uint64_t v)
{
	memcpy(b + at, &v, sizeof(v));
}

/* A compact str of 1-byte characters (ASCII when all are, else Latin-1). */
static uint64_t forge_str(const struct ls_py_offsets *off, int i, const uint8_t *t, size_t len)
{
	uint32_t state = LS_PY_STATE_COMPACT | 1u << LS_PY_STATE_KIND_SHIFT;
	unsigned at;

	if (len > 64)
		len = 64;
	state |= LS_PY_STATE_ASCII;
	for (size_t k = 0; k < len; k++)
		if (t[k] >= 0x80)
			state &= ~LS_PY_STATE_ASCII;
	at = state & LS_PY_STATE_ASCII ? off->ascii_data : off->compact_data;
	memset(fake_str[i], 0, sizeof(fake_str[i]));
	put64(fake_str[i], off->unicode_length, len);
	memcpy(fake_str[i] + off->unicode_state, &state, sizeof(state));
	if (at + len <= sizeof(fake_str[i]))
		memcpy(fake_str[i] + at, t, len);
	return (uint64_t)(uintptr_t)fake_str[i];
}

/* Nothing a terminal would act on: C0 controls, DEL, and C1 controls
 * (U+0080-U+009F, 0xc2 0x80-0x9f in UTF-8). */
static void check_shown(const char *s, size_t cap)
{
	const unsigned char *u = (const unsigned char *)s;

	FUZZ_CHECK(memchr(s, 0, cap));
	for (size_t i = 0; u[i]; i++) {
		FUZZ_CHECK(u[i] >= 0x20 && u[i] != 0x7f);
		FUZZ_CHECK(!(u[i] == 0xc2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f));
	}
}

static void table_path(uint32_t flags, const uint8_t *t, uint32_t len, int first, int64_t code_len)
{
	int64_t step = code_len / 256 + 1;

	/* every offset of a small code object, a sample of a large one */
	for (int64_t off = -1; off <= code_len; off += step) { /* code_len < 2^16 */
		int a = 0, b = 0;

		FUZZ_CHECK(ls_pycode_table_line(flags, t, len, first, code_len, off, true, &a) == 0);
		FUZZ_CHECK(ls_pycode_table_line(flags, t, len, first, code_len, off, false, &b) == 0);
		FUZZ_CHECK(a == b);
		if (off < 0 || off >= code_len)
			FUZZ_CHECK(a == -1);
	}
}

static void frame_path(int fmt, const uint8_t *t, size_t len, int32_t first, uint64_t code_size,
		       uint64_t claimed)
{
	static const char code_name[] = "code";
	const struct ls_py_offsets *off = ls_py_offsets_for(3, minors[fmt]);
	struct ls_pyframe f;
	uint64_t addr = (uint64_t)(uintptr_t)fake_code;

	if (!off)
		return;
	free(fake_table);
	/* room for whatever size the object claims, up to what is cached:
	 * reads past it stay deterministic */
	fake_table = calloc(1, 32 + len + LS_PYCODE_MAX_TABLE);
	FUZZ_CHECK(fake_table);
	memset(fake_type, 0, sizeof(fake_type));
	memset(fake_code, 0, sizeof(fake_code));
	memset(fake_bytecode, 0, sizeof(fake_bytecode));
	put64(fake_type, off->tp_name, (uint64_t)(uintptr_t)code_name);
	put64(fake_code, off->ob_type, (uint64_t)(uintptr_t)fake_type);
	memcpy(fake_code + off->co_firstlineno, &first, sizeof(first));
	put64(fake_code, off->co_linetable, (uint64_t)(uintptr_t)fake_table);
	put64(fake_code, off->co_filename, forge_str(off, 0, t, len));
	put64(fake_code, off->co_qualname ? off->co_qualname : off->co_name,
	      forge_str(off, 1, t + len / 2, len - len / 2));
	if (off->co_code) { /* <= 3.10: a bytes object */
		put64(fake_code, off->co_code, (uint64_t)(uintptr_t)fake_bytecode);
		put64(fake_bytecode, 16, code_size);
	} else {            /* 3.11+: the code object's ob_size, in code units */
		put64(fake_code, 16, code_size);
	}
	/* The table's size as its bytes object claims it: the real one, or
	 * (when claimed says so) a larger or absurd one. */
	put64(fake_table, 16, claimed & 1 ? claimed >> 1 : len);
	memcpy(fake_table + 32, t, len);
	ls_pycode_forget_pid(cache, getpid());
	for (int64_t o = -2; o < 64; o += 8) {
		int r = ls_pycode_frame(cache, getpid(), off, addr, o, &f);

		FUZZ_CHECK(r == 0 || r == -EINVAL || r == -EFAULT);
		if (r == 0) {
			FUZZ_CHECK(f.firstlineno == first);
			check_shown(f.qualname, sizeof(f.qualname));
			check_shown(f.filename, sizeof(f.filename));
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int32_t first;
	uint64_t code_size, claimed;
	int fmt;

	if (size < HDR)
		return 0;
	if (!cache)
		cache = ls_pycode_cache_new();
	FUZZ_CHECK(cache);
	fmt = data[0] & 3;
	memcpy(&first, data + 1, sizeof(first));
	code_size = get64(data + 5);
	claimed = get64(data + 13);
	if (data[0] & 4)
		frame_path(fmt, data + HDR, size - HDR, first, code_size, claimed);
	else
		table_path(fmts[fmt], data + HDR, (uint32_t)(size - HDR), first,
			   (int64_t)(code_size % (1u << 16)));
	return 0;
}
