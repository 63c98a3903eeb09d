// SPDX-License-Identifier: MIT
/* Names from a target made safe for terminals and JSON (#12 item 5):
 * control characters as '?', invalid UTF-8 as U+FFFD, cut at a character
 * boundary, never longer than the buffer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/names.h"
#include "loopscope/utf8.h"

#define FFFD "\xef\xbf\xbd"

static void assert_valid_and_plain(const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n;) {
		size_t len = ls_utf8_len(s + i, n - i);

		ck_assert_msg(len, "invalid UTF-8 at %zu in '%s'", i, s);
		ck_assert_msg(!((unsigned char)s[i] < 0x20 || s[i] == 0x7f), "control at %zu", i);
		ck_assert_msg(!(len == 2 && (unsigned char)s[i] == 0xc2 &&
				(unsigned char)s[i + 1] <= 0x9f), "C1 control at %zu", i);
		i += len;
	}
}

START_TEST(test_clean_cases)
{
	static const struct { const char *in, *want; } c[] = {
		{ "worker-1", "worker-1" },
		{ "", "" },
		{ "evil\n\x1b[2Jx", "evil??[2Jx" },
		{ "a\rb\tc\x7f", "a?b?c?" },
		{ "csi\xc2\x9b" "31m", "csi?31m" },                 /* C1 CSI */
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d" },
		{ "x\xffy", "x" FFFD "y" },
		{ "\xed\xa0\x80", FFFD FFFD FFFD },                 /* a lone surrogate (CESU) */
		{ "\xc0\xaf", FFFD FFFD },                          /* overlong '/' */
		{ "\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD },        /* > U+10FFFF */
		{ "cut\xe2\x82", "cut" FFFD FFFD },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char out[64];
		size_t n = ls_name_clean(out, sizeof(out), c[i].in, strlen(c[i].in));

		ck_assert_str_eq(out, c[i].want);
		ck_assert_uint_eq(n, strlen(c[i].want));
		assert_valid_and_plain(out);
	}
}
END_TEST

START_TEST(test_cut_at_a_character)
{
	char out[6];

	/* "ab" + U+FFFD (3) fills 5 bytes + NUL; the next one does not fit. */
	ck_assert_uint_eq(ls_name_clean(out, sizeof(out), "ab\xff\xff", 4), 5);
	ck_assert_str_eq(out, "ab" FFFD);
	ck_assert_uint_eq(ls_name_clean(out, sizeof(out), "abcd\xc3\xa9", 6), 4);
	ck_assert_str_eq(out, "abcd");
	ck_assert_uint_eq(ls_name_clean(out, 1, "abc", 3), 0);
	ck_assert_str_eq(out, "");
	/* n bounds the input; a NUL ends it earlier. */
	ck_assert_uint_eq(ls_name_clean(out, sizeof(out), "abc\0de", 7), 3);
	ck_assert_uint_eq(ls_name_clean(out, sizeof(out), "abcdef", 2), 2);
	ck_assert_str_eq(out, "ab");
}
END_TEST

START_TEST(test_inplace_grows_within_cap)
{
	char comm[16] = "t\xff\xfe\x1b[2J";

	ls_name_clean_inplace(comm, sizeof(comm));
	ck_assert_str_eq(comm, "t" FFFD FFFD "?[2J");
	assert_valid_and_plain(comm);
	char small[8] = "\xff\xff\xff";

	ls_name_clean_inplace(small, sizeof(small));
	ck_assert_str_eq(small, FFFD FFFD);
}
END_TEST

/* Every byte string of length 1-3 over interesting bytes comes out valid. */
START_TEST(test_every_short_string_is_safe)
{
	static const unsigned char b[] = { 0x00, 0x0a, 0x1b, 0x41, 0x7f, 0x80, 0x9b, 0xbf, 0xc2,
					   0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff };
	size_t nb = sizeof(b);

	for (size_t i = 0; i < nb; i++)
		for (size_t j = 0; j < nb; j++)
			for (size_t k = 0; k < nb; k++) {
				char in[3] = { (char)b[i], (char)b[j], (char)b[k] }, out[16];

				ls_name_clean(out, sizeof(out), in, 3);
				assert_valid_and_plain(out);
			}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("names");
	TCase *tc = tcase_create("names");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_clean_cases);
	tcase_add_test(tc, test_cut_at_a_character);
	tcase_add_test(tc, test_inplace_grows_within_cap);
	tcase_add_test(tc, test_every_short_string_is_safe);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
