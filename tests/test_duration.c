// SPDX-License-Identifier: MIT
/* Suite "duration": parsing and formatting of durations (agent/core/duration.c). */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/duration.h"

#define US 1000ULL
#define MS 1000000ULL
#define S 1000000000ULL

struct parse_case {
	const char *in;
	uint64_t ns;
};

static void check_accepts(const struct parse_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t ns = 0xDEADBEEF;
		int rc = ls_duration_parse(c[i].in, &ns);

		ck_assert_msg(rc == 0, "\"%s\" rejected (%d)", c[i].in, rc);
		ck_assert_msg(ns == c[i].ns, "\"%s\" = %llu ns, want %llu", c[i].in,
			      (unsigned long long)ns, (unsigned long long)c[i].ns);
	}
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_parse_each_unit)
{
	static const struct parse_case c[] = {
		{ "7ns", 7 },          { "7us", 7 * US },     { "7ms", 7 * MS },
		{ "7s", 7 * S },       { "2m", 120 * S },     { "1h", 3600 * S },
		{ "0ns", 0 },          { "0s", 0 },           { "0h", 0 },
		{ "007ms", 7 * MS },   { "100ms", 100 * MS }, { "500us", 500 * US },
	};

	check_accepts(c, N(c));
}
END_TEST

/* Decimal fractions are exact: no binary floating point on the way. */
START_TEST(test_parse_decimal_fractions_exactly)
{
	static const struct parse_case c[] = {
		{ "1.5s", 1500 * MS },
		{ "0.25ms", 250 * US },
		{ "0.1s", 100 * MS },
		{ "0.3s", 300 * MS },
		{ "2.675ms", 2675 * US },
		{ "0.001us", 1 },
		{ "0.000000001s", 1 },
		{ "1.5h", 5400 * S },
		{ "0.1m", 6 * S },
		{ "0.0000000001m", 6 },
		{ "1.000000000000000000000000000001s", S },
		{ "0.333333333333333333333333333s", 333333333 },
	};

	check_accepts(c, N(c));
}
END_TEST

/* Below 1 ns a fraction rounds to the nearest ns, halves up, however many
 * digits it takes to tell. */
START_TEST(test_parse_rounds_below_one_ns)
{
	static const struct parse_case c[] = {
		{ "0.4ns", 0 },
		{ "0.5ns", 1 },
		{ "1.5ns", 2 },
		{ "2.49ns", 2 },
		{ "0.0004us", 0 },
		{ "0.0005us", 1 },
		{ "0.0000000004999999999999999999s", 0 },
		{ "0.0000000005s", 1 },
		{ "0.00000000050000000000000000001s", 1 },
		{ "0.0000000015s", 2 },
		{ "0.000000000008m", 0 },  /* 0.48 ns */
		{ "0.00000000001m", 1 },   /* 0.6 ns */
		{ "0.0000000000001h", 0 }, /* 0.36 ns */
		{ "0.00000000000015h", 1 },/* 0.54 ns */
	};

	check_accepts(c, N(c));
}
END_TEST

START_TEST(test_parse_accepts_one_space_before_unit)
{
	static const struct parse_case c[] = {
		{ "212.4 ms", 212400 * US }, { "850 ns", 850 }, { "3.02 s", 3020 * MS },
	};

	check_accepts(c, N(c));
}
END_TEST

START_TEST(test_parse_largest_values)
{
	static const struct parse_case c[] = {
		{ "1000000000000000000ns", LS_DURATION_MAX_NS },
		{ "1000000000s", LS_DURATION_MAX_NS },
		{ "999999999.9999999994s", LS_DURATION_MAX_NS - 1 },
		{ "999999999.9999999995s", LS_DURATION_MAX_NS },
		{ "16666666m", 16666666ULL * 60 * S },
		{ "277777h", 277777ULL * 3600 * S },
		{ "1000000000 s", LS_DURATION_MAX_NS }, /* as ls_duration_format writes it */
	};

	check_accepts(c, N(c));
}
END_TEST

/* Issue #12: values that fit in uint64_t but not below LS_DURATION_MAX_NS
 * were accepted, and `interval = "18446744073709551615ns"` made the daemon's
 * deadline arithmetic wrap (a spinning main loop). */
START_TEST(test_parse_rejects_above_max)
{
	static const char *bad[] = {
		"18446744073709551615ns", "18446744073.709551615s", "99999999999999s",
		"1000000000000000001ns", "1000000000.000000001s",
		"16666667m", "277778h", "18450000000 s", "307445734m", "5124095h",
	};

	for (size_t i = 0; i < N(bad); i++) {
		uint64_t ns = 0xDEADBEEF;
		int rc = ls_duration_parse(bad[i], &ns);

		ck_assert_msg(rc == -EINVAL, "\"%s\" gave %d (%llu ns), want -EINVAL", bad[i], rc,
			      (unsigned long long)ns);
		ck_assert_msg(ns == 0xDEADBEEF, "\"%s\" changed *ns", bad[i]);
	}
}
END_TEST

START_TEST(test_parse_rejects_malformed_and_overflow)
{
	static const char *bad[] = {
		"", "ms", "-5ms", "5", "5 parsecs", "5msx", "1e3ms", "+5ms",
		" 5ms", "5ms ", "5  ms", "5\tms", "5MS", "5Ms", ".5ms", "5.ms",
		"5.5.5ms", "0x10ms", "5 ", ".", "s", "5sec", "5min", "1,5s",
		"18446744073709551616ns", "18446744073.7095516155s",
		"18446744074s", "307445735m", "5124096h",
		"99999999999999999999999999ns",
	};

	for (size_t i = 0; i < N(bad); i++) {
		uint64_t ns = 0xDEADBEEF;
		int rc = ls_duration_parse(bad[i], &ns);

		ck_assert_msg(rc == -EINVAL, "\"%s\" gave %d, want -EINVAL", bad[i], rc);
		ck_assert_msg(ns == 0xDEADBEEF, "\"%s\" changed *ns", bad[i]);
	}
	ck_assert_int_eq(ls_duration_parse(NULL, &(uint64_t){ 0 }), -EINVAL);
}
END_TEST

/* ---- format ------------------------------------------------------------ */

START_TEST(test_format_examples)
{
	static const struct parse_case c[] = {
		{ "0 ns", 0 },
		{ "850 ns", 850 },
		{ "999 ns", 999 },
		{ "1.00 us", 1000 },
		{ "12.5 us", 12500 },
		{ "212.4 ms", 212400 * US },
		{ "3.02 s", 3020 * MS },
		{ "125.0 s", 125 * S },
		{ "100.0 ms", 100 * MS },
		{ "1.50 s", 1500 * MS },
		{ "999.9 us", 999949 },
		{ "999.9 s", 999949 * MS },
		{ "3600 s", 3600 * S },
		{ "9999 s", 9999 * S },
		{ "12350 s", 12345 * S },
		{ "18450000000 s", UINT64_MAX },
	};
	char buf[32];

	for (size_t i = 0; i < N(c); i++)
		ck_assert_str_eq(ls_duration_format(c[i].ns, buf, sizeof(buf)), c[i].in);
}
END_TEST

/* Rounding happens before the unit is chosen: never "1000.0 us". */
START_TEST(test_format_rounds_then_picks_unit)
{
	static const struct parse_case c[] = {
		{ "10.0 us", 9995 },
		{ "9.99 us", 9994 },
		{ "1.00 ms", 999950 },
		{ "1.00 ms", 999999 },
		{ "1.00 s", 999999999 },
		{ "1000 s", 999950 * MS },
		{ "10000 s", 9999500 * MS },
		{ "1.00 us", 1004 },
		{ "1.01 us", 1005 },
	};
	char buf[32];

	for (size_t i = 0; i < N(c); i++)
		ck_assert_str_eq(ls_duration_format(c[i].ns, buf, sizeof(buf)), c[i].in);
}
END_TEST

START_TEST(test_format_truncates_to_len)
{
	char buf[8] = "xxxxxxx";

	ck_assert_str_eq(ls_duration_format(850, buf, 4), "850");
	ck_assert_ptr_eq(ls_duration_format(850, buf, 0), buf);
	ck_assert_str_eq(buf, "850");
	/* The longest output fits the callers' 16-byte buffers. */
	char big[16];

	ck_assert_uint_eq(strlen(ls_duration_format(UINT64_MAX, big, sizeof(big))), 13);
}
END_TEST

/* At most 4 significant digits for every value, and parsing the text back
 * gives the value within the rounding of those digits (1/200 relative). */
START_TEST(test_format_round_trips_through_parse)
{
	uint64_t x = 0x12345678ABCDEFULL;
	char buf[32];

	for (int i = 0; i < 200000; i++) {
		/* xorshift64, then a random magnitude: every unit and boundary. */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t v = x >> (x % 64);
		uint64_t back = 0;
		int digits = 0, zeros_tail = 0;

		ls_duration_format(v, buf, sizeof(buf));
		for (const char *p = buf; *p; p++) {
			if (*p >= '0' && *p <= '9') {
				digits++;
				zeros_tail = *p == '0' ? zeros_tail + 1 : 0;
			} else if (*p != '.') {
				break;
			}
		}
		/* Only whole seconds may pad with zeros past 4 digits. */
		if (digits > 4)
			ck_assert_msg(!strchr(buf, '.') && strstr(buf, " s") &&
					      digits - zeros_tail <= 4,
				      "%llu ns -> \"%s\"", (unsigned long long)v, buf);
		/* Above LS_DURATION_MAX_NS the text rightly does not parse. */
		if (v > LS_DURATION_MAX_NS)
			continue;
		ck_assert_msg(ls_duration_parse(buf, &back) == 0, "%llu ns -> \"%s\" does not parse",
			      (unsigned long long)v, buf);
		ck_assert_msg((back > v ? back - v : v - back) <= v / 200,
			      "%llu ns -> \"%s\" -> %llu ns", (unsigned long long)v,
			      buf, (unsigned long long)back);
	}
}
END_TEST

/* Issue #12: `--check-config` printed "18450000000 s" for an accepted
 * "18446744073709551615ns", and that text does not parse. Whatever parse
 * accepts formats to a text that parses back (within 4 digits' rounding),
 * the largest values and those that round up to the largest included. */
START_TEST(test_what_parses_formats_to_what_parses)
{
	static const char *in[] = {
		"18446744073709551615ns", "18446744073.709551615s", "18445000000s", "5124095h",
		"1000000000s", "999999999999999999ns", "999950000s", "999949999.999999999s",
		"999.95s", "9999.5s",
	};
	char buf[32];

	for (size_t i = 0; i < N(in); i++) {
		uint64_t v, back = 0;

		if (ls_duration_parse(in[i], &v))
			continue;
		ls_duration_format(v, buf, sizeof(buf));
		ck_assert_msg(ls_duration_parse(buf, &back) == 0, "\"%s\" -> \"%s\" does not parse",
			      in[i], buf);
		ck_assert_msg((back > v ? back - v : v - back) <= v / 200, "\"%s\" -> \"%s\" -> %llu ns",
			      in[i], buf, (unsigned long long)back);
	}
	ck_assert_str_eq(ls_duration_format(LS_DURATION_MAX_NS, buf, sizeof(buf)), "1000000000 s");
}
END_TEST

static Suite *duration_suite(void)
{
	Suite *s = suite_create("duration");
	TCase *parse = tcase_create("parse"), *format = tcase_create("format");

	tcase_add_test(parse, test_parse_each_unit);
	tcase_add_test(parse, test_parse_decimal_fractions_exactly);
	tcase_add_test(parse, test_parse_rounds_below_one_ns);
	tcase_add_test(parse, test_parse_accepts_one_space_before_unit);
	tcase_add_test(parse, test_parse_largest_values);
	tcase_add_test(parse, test_parse_rejects_malformed_and_overflow);
	tcase_add_test(parse, test_parse_rejects_above_max);
	suite_add_tcase(s, parse);

	tcase_add_test(format, test_format_examples);
	tcase_add_test(format, test_format_rounds_then_picks_unit);
	tcase_add_test(format, test_format_truncates_to_len);
	tcase_add_test(format, test_format_round_trips_through_parse);
	tcase_add_test(format, test_what_parses_formats_to_what_parses);
	suite_add_tcase(s, format);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(duration_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
