// SPDX-License-Identifier: MIT
/* Suite "pycode": the line table decoder of agent/python/pycode.c on forged
 * tables (ls_pycode_table_line), and ls_pycode_frame on a forged code object
 * in this very process (read back through /proc/self/mem). Real code objects
 * of every interpreter are it_pycode's. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/abi/py_offsets.h"
#include "loopscope/pycode.h"
#include "loopscope/abi/pycallback_events.h"
#include "loopscope/pyname.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct want {
	int64_t offset;
	int line;
};

/* Every offset's line, through the checkpoints and from the start. */
static void check_lines(uint32_t flags, const uint8_t *t, uint32_t len, int first,
			int64_t code_len, const struct want *w, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (int cp = 0; cp < 2; cp++) {
			int line = 12345;

			ck_assert_int_eq(ls_pycode_table_line(flags, t, len, first, code_len,
							      w[i].offset, cp, &line), 0);
			ck_assert_msg(line == w[i].line, "flags %u first %d offset %lld: line %d, want %d",
				      flags, first, (long long)w[i].offset, line, w[i].line);
		}
	}
}

/* One table of each format, decoded as CPython does (pycode.h). */
START_TEST(test_each_format)
{
	/* 3.8/3.9 lnotab: +2 bytes +1 line, +4 bytes +3 lines; the last line
	 * holds to the end. */
	static const uint8_t lnotab[] = { 2, 1, 4, 3 };
	static const struct want wl[] = { { 0, 10 }, { 1, 10 }, { 2, 11 }, { 5, 11 }, { 6, 14 },
					  { 19, 14 }, { 20, -1 }, { -1, -1 } };
	/* 3.10: 2 bytes at +1, 2 bytes without a line, 4 bytes at +2. */
	static const uint8_t t310[] = { 2, 1, 2, 0x80, 4, 2 };
	static const struct want w310[] = { { 0, 11 }, { 2, -1 }, { 4, 13 }, { 7, 13 }, { 8, -1 } };
	/* 3.11+: a no-column entry (kind 13) of 1 unit at +100 (svarint 200:
	 * 0x48 0x03), a one-line entry (kind 11: +1) of 2 units with its two
	 * column bytes, a no-location entry (kind 15) of 1 unit. */
	static const uint8_t loc[] = { 0x80 | 13 << 3 | 0, 0x48, 0x03, 0x80 | 11 << 3 | 1, 0, 5,
				       0x80 | 15 << 3 | 0 };
	static const struct want wloc[] = { { 0, 110 }, { 1, 110 }, { 2, 111 }, { 5, 111 },
					    { 6, -1 }, { 8, -1 } };

	check_lines(LS_PYOFF_LNOTAB, lnotab, sizeof(lnotab), 10, 20, wl, N(wl));
	check_lines(LS_PYOFF_LINETABLE_310, t310, sizeof(t310), 10, 20, w310, N(w310));
	check_lines(LS_PYOFF_LOCATIONS, loc, sizeof(loc), 10, 20, wloc, N(wloc));
}
END_TEST

/* Issue #12: line deltas added to a co_firstlineno near INT_MAX (or
 * INT_MIN) overflowed a signed int (undefined behaviour; in practice a huge
 * negative line). A line past the int range is unknown, from there on. */
START_TEST(test_line_overflow_is_unknown)
{
	static const uint8_t lnotab[] = { 2, 1, 2, 5, 2, 0 };
	static const struct want wl[] = { { 0, INT_MAX - 1 }, { 2, INT_MAX }, { 3, INT_MAX },
					  { 4, -1 }, { 7, -1 }, { 100, -1 } };
	static const uint8_t t310[] = { 2, 1, 2, 127, 2, 0 };
	static const struct want w310[] = { { 0, INT_MAX }, { 2, -1 }, { 4, -1 } };
	static const uint8_t t310_down[] = { 2, (uint8_t)-1, 2, (uint8_t)-5 };
	static const struct want w310_down[] = { { 0, INT_MIN }, { 2, -1 } };
	/* kind 13, +100 (svarint 200), then kind 10 (+0) */
	static const uint8_t loc[] = { 0x80 | 10 << 3 | 0, 0, 1, 0x80 | 13 << 3 | 0, 0x48, 0x03,
				       0x80 | 10 << 3 | 0, 0, 1 };
	static const struct want wloc[] = { { 0, INT_MAX - 50 }, { 2, -1 }, { 4, -1 } };
	/* kind 14 (long form) with the largest negative delta a varint holds */
	static const uint8_t loc_down[] = { 0x80 | 14 << 3 | 0, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x03 };
	static const struct want wloc_down[] = { { 0, -1 } };

	check_lines(LS_PYOFF_LNOTAB, lnotab, sizeof(lnotab), INT_MAX - 1, 200, wl, N(wl));
	check_lines(LS_PYOFF_LINETABLE_310, t310, sizeof(t310), INT_MAX - 1, 200, w310, N(w310));
	check_lines(LS_PYOFF_LINETABLE_310, t310_down, sizeof(t310_down), INT_MIN + 1, 200,
		    w310_down, N(w310_down));
	check_lines(LS_PYOFF_LOCATIONS, loc, sizeof(loc), INT_MAX - 50, 200, wloc, N(wloc));
	check_lines(LS_PYOFF_LOCATIONS, loc_down, sizeof(loc_down), -10, 200, wloc_down,
		    N(wloc_down));
}
END_TEST

START_TEST(test_table_line_errors)
{
	int line;

	ck_assert_int_eq(ls_pycode_table_line(0, (const uint8_t *)"", 0, 1, 10, 0, true, &line),
			 -EINVAL);
	ck_assert_int_eq(ls_pycode_table_line(LS_PYOFF_LNOTAB, NULL, 2, 1, 10, 0, true, &line),
			 -EINVAL);
	ck_assert_int_eq(ls_pycode_table_line(LS_PYOFF_LNOTAB, NULL, 0, 1, -1, 0, true, &line),
			 -EINVAL);
	/* an empty lnotab: the first line holds for the whole bytecode */
	ck_assert_int_eq(ls_pycode_table_line(LS_PYOFF_LNOTAB, NULL, 0, 7, 10, 9, true, &line), 0);
	ck_assert_int_eq(line, 7);
}
END_TEST

/* ---- ls_pycode_frame on a code object forged in this process -------------- */

static uint8_t fake_type[512] __attribute__((aligned(16)));
static uint8_t fake_code[512] __attribute__((aligned(16)));
static uint8_t fake_table[64] __attribute__((aligned(16)));

static void put_u64(uint8_t *b, unsigned at, uint64_t v)
{
	memcpy(b + at, &v, sizeof(v));
}

/* A 3.11 code object: type named "code", bytecode of units code units (the
 * code object's ob_size), co_firstlineno first, the location table loc
 * (a bytes object); names left NULL ("?"). */
static uint64_t forge_311(const struct ls_py_offsets *off, uint64_t units, int32_t first,
			  const uint8_t *loc, size_t len)
{
	static const char code_name[] = "code";

	memset(fake_type, 0, sizeof(fake_type));
	memset(fake_code, 0, sizeof(fake_code));
	memset(fake_table, 0, sizeof(fake_table));
	put_u64(fake_type, off->tp_name, (uint64_t)(uintptr_t)code_name);
	put_u64(fake_code, off->ob_type, (uint64_t)(uintptr_t)fake_type);
	put_u64(fake_code, 16, units); /* PyVarObject.ob_size */
	memcpy(fake_code + off->co_firstlineno, &first, sizeof(first));
	put_u64(fake_code, off->co_linetable, (uint64_t)(uintptr_t)fake_table);
	put_u64(fake_table, 16, len); /* bytes: ob_size, then ob_sval at 32 */
	memcpy(fake_table + 32, loc, len);
	return (uint64_t)(uintptr_t)fake_code;
}

/* Issue #12: a 3.11+ code object's bytecode length is ob_size * 2, and a
 * forged ob_size overflowed the product (undefined behaviour: the ASan and
 * UBSan build of scripts/fuzz.sh aborted here). Now -EINVAL: not a code
 * object. The same object with a sane size is read, and a line past
 * INT_MAX is unknown through ls_pycode_frame too. */
START_TEST(test_frame_forged_sizes_and_lines)
{
	const struct ls_py_offsets *off = ls_py_offsets_for(3, 11);
	static const uint8_t loc[] = { 0x80 | 11 << 3 | 0, 0, 1, 0x80 | 13 << 3 | 0, 0x48, 0x03 };
	static const uint64_t huge[] = { (UINT64_C(1) << 40) / 2 + 1, (UINT64_C(1) << 62) + 1,
					 (UINT64_C(1) << 63) + 7, UINT64_MAX };
	struct ls_pycode_cache *c = ls_pycode_cache_new();
	struct ls_pyframe f;
	uint64_t addr;

	ck_assert_ptr_nonnull(off);
	ck_assert_ptr_nonnull(c);
	addr = forge_311(off, 2, 41, loc, sizeof(loc));
	ck_assert_int_eq(ls_pycode_frame(c, getpid(), off, addr, 0, &f), 0);
	ck_assert_int_eq(f.firstlineno, 41);
	ck_assert_int_eq(f.line, 42);
	ck_assert_int_eq(ls_pycode_frame(c, getpid(), off, addr, 2, &f), 0);
	ck_assert_int_eq(f.line, 142);
	ck_assert_str_eq(f.qualname, "?");

	forge_311(off, 2, INT_MAX - 1, loc, sizeof(loc));
	ck_assert_int_eq(ls_pycode_frame(c, getpid(), off, addr, 0, &f), 0);
	ck_assert_int_eq(f.line, INT_MAX);
	ck_assert_int_eq(ls_pycode_frame(c, getpid(), off, addr, 2, &f), 0);
	ck_assert_int_eq(f.line, -1);

	for (size_t i = 0; i < N(huge); i++) {
		forge_311(off, huge[i], 41, loc, sizeof(loc));
		ck_assert_int_eq(ls_pycode_frame(c, getpid(), off, addr, 0, &f), -EINVAL);
	}
	ls_pycode_cache_free(c);
}
END_TEST

static uint8_t fake_str[2][128] __attribute__((aligned(16)));

/* A compact str of 1-byte characters (ASCII or Latin-1) at fake_str[i]. */
static uint64_t forge_str(const struct ls_py_offsets *off, int i, const char *text, bool ascii)
{
	uint32_t state = LS_PY_STATE_COMPACT | 1u << LS_PY_STATE_KIND_SHIFT |
			 (ascii ? LS_PY_STATE_ASCII : 0);

	memset(fake_str[i], 0, sizeof(fake_str[i]));
	put_u64(fake_str[i], off->unicode_length, strlen(text));
	memcpy(fake_str[i] + off->unicode_state, &state, sizeof(state));
	memcpy(fake_str[i] + (ascii ? off->ascii_data : off->compact_data), text, strlen(text));
	return (uint64_t)(uintptr_t)fake_str[i];
}

/* Issue #12 (fuzz_pycode): a target names its code objects, and the names
 * go to the operator's terminal (`attach` lines, reports): an escape
 * sequence in a co_filename (compile(src, "\x1b]0;...\x07", "exec")) or a
 * C1 control (U+009B is CSI) reached it as is. Control characters are '?'. */
START_TEST(test_frame_names_have_no_control_characters)
{
	const struct ls_py_offsets *off = ls_py_offsets_for(3, 11);
	static const uint8_t loc[] = { 0x80 | 11 << 3 | 0, 0, 1 };
	struct ls_pycode_cache *c = ls_pycode_cache_new();
	struct ls_pyframe f;
	uint64_t addr;

	ck_assert_ptr_nonnull(c);
	addr = forge_311(off, 1, 41, loc, sizeof(loc));
	put_u64(fake_code, off->co_filename, forge_str(off, 0, "\x1b]0;pwned\x07" "evil\x7f.py", true));
	put_u64(fake_code, off->co_qualname, forge_str(off, 1, "a\x9b" "2Jb\xe9", false));
	ck_assert_int_eq(ls_pycode_frame(c, getpid(), off, addr, 0, &f), 0);
	ck_assert_str_eq(f.filename, "?]0;pwned?evil?.py");
	ck_assert_str_eq(f.qualname, "a?2Jb\xc3\xa9"); /* U+00E9 stays */
	ck_assert_int_eq(f.line, 42);
	ls_pycode_cache_free(c);
}
END_TEST

/* The same for a C callback's name (ml_name or tp_name, a C string a
 * target's extension module chooses), through ls_pyname_lookup. */
START_TEST(test_builtin_names_have_no_control_characters)
{
	static const char name[] = "print\x1b[2J\xc2\x9b" "31m\xc3\xa9\n";
	struct ls_pyname_cache *c = ls_pyname_cache_new();
	struct ls_cb_key k = { .tgid = (uint32_t)getpid(), .kind = LS_CB_BUILTIN,
			       .name = (uint64_t)(uintptr_t)name };
	const struct ls_cb_name *nm;

	ck_assert_ptr_nonnull(c);
	nm = ls_pyname_lookup(c, ls_py_offsets_for(3, 11), &k);
	ck_assert_ptr_nonnull(nm);
	ck_assert_str_eq(nm->qualname, "print?[2J?31m\xc3\xa9?"); /* one ? a character */
	ls_pyname_cache_free(c);
}
END_TEST

static Suite *pycode_suite(void)
{
	Suite *s = suite_create("pycode");
	TCase *tc = tcase_create("pycode");

	tcase_add_test(tc, test_each_format);
	tcase_add_test(tc, test_line_overflow_is_unknown);
	tcase_add_test(tc, test_table_line_errors);
	tcase_add_test(tc, test_frame_forged_sizes_and_lines);
	tcase_add_test(tc, test_frame_names_have_no_control_characters);
	tcase_add_test(tc, test_builtin_names_have_no_control_characters);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pycode_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
