// SPDX-License-Identifier: MIT
/* Durations as a person writes and reads them (loopscope/duration.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "loopscope/duration.h"

/* A unit is a small factor times a power of ten ns, so that shifting the
 * decimal point by `exp10` digits makes the fraction exact (see parse). */
struct unit {
	const char *name;
	unsigned factor;
	unsigned exp10;
};

static const struct unit units[] = {
	{ "ns", 1, 0 }, { "us", 1, 3 },    { "ms", 1, 6 },
	{ "s", 1, 9 },  { "m", 60, 9 },    { "h", 3600, 9 },
};

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* *acc = *acc * 10 + d, or -1 on overflow of uint64_t. */
static int push_digit(uint64_t *acc, unsigned d)
{
	if (*acc > (UINT64_MAX - d) / 10)
		return -1;
	*acc = *acc * 10 + d;
	return 0;
}

/*
 * The value is factor * N * 10^exp10 ns where N is the decimal number as
 * written. Moving the decimal point of N right by exp10 digits splits it into
 * an integer part I and a fraction R = 0.r1r2...rk, both exact, and the
 * result is factor * I + round(factor * R). factor * R is computed digit by
 * digit from the right with a carry (schoolbook multiplication by a small
 * integer), so inputs of any length round exactly, without strtod's binary
 * fractions ("0.1s" is 100000000 ns, not 99999999).
 */
int ls_duration_parse(const char *s, uint64_t *ns)
{
	const char *ip, *fp = NULL, *p, *u;
	size_t nint, nfrac = 0;
	const struct unit *unit = NULL;
	uint64_t whole = 0, carry = 0, total;
	unsigned round_up = 0;

	if (!s)
		return -EINVAL;
	ip = p = s;
	while (is_digit(*p))
		p++;
	nint = (size_t)(p - ip);
	if (nint == 0) /* "", "ms", "-5ms", ".5ms", "+5ms" */
		return -EINVAL;
	if (*p == '.') {
		fp = ++p;
		while (is_digit(*p))
			p++;
		nfrac = (size_t)(p - fp);
		if (nfrac == 0) /* "5.ms" */
			return -EINVAL;
	}
	u = p;
	if (*u == ' ') /* "212.4 ms", as ls_duration_format writes it */
		u++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(u, units[i].name) == 0) {
			unit = &units[i];
			break;
		}
	}
	if (!unit) /* "5", "5 parsecs", "5msx", "1e3ms", "5  ms" */
		return -EINVAL;

	for (size_t i = 0; i < nint; i++)
		if (push_digit(&whole, (unsigned)(ip[i] - '0')))
			return -EINVAL;
	for (size_t i = 0; i < unit->exp10; i++)
		if (push_digit(&whole, i < nfrac ? (unsigned)(fp[i] - '0') : 0))
			return -EINVAL;
	if (nfrac > unit->exp10) {
		unsigned digit = 0;

		for (size_t i = nfrac; i-- > unit->exp10;) {
			uint64_t t = (uint64_t)(fp[i] - '0') * unit->factor + carry;

			digit = (unsigned)(t % 10);
			carry = t / 10;
		}
		/* digit is now the first decimal of factor * R: halves round up. */
		round_up = digit >= 5;
	}

	if (whole > UINT64_MAX / unit->factor)
		return -EINVAL;
	total = whole * unit->factor;
	if (total > UINT64_MAX - carry - round_up)
		return -EINVAL;
	total += carry + round_up;
	if (total > LS_DURATION_MAX_NS) /* "18446744073709551615ns": deadlines would wrap */
		return -EINVAL;
	*ns = total;
	return 0;
}

/* ns / div rounded to the nearest integer, halves up; no overflow. */
static uint64_t div_round(uint64_t ns, uint64_t div)
{
	uint64_t q = ns / div, r = ns % div;

	return q + (r >= div - r);
}

/*
 * Shown as: ns as an integer ("850 ns"); us, ms and s with two decimals below
 * 10 ("3.02 s") and one below 1000 ("12.5 us", "212.4 ms"), so never more than
 * 4 significant digits. The unit is chosen after rounding: 999.96 us is
 * "1.00 ms", not "1000.0 us". Seconds are the largest unit: from 999.95 s on
 * they are whole, and from 9999.5 s on rounded to 4 significant digits
 * ("12350 s").
 */
char *ls_duration_format(uint64_t ns, char *buf, size_t len)
{
	static const struct {
		const char *name;
		uint64_t scale;
	} big[] = { { "us", 1000ULL }, { "ms", 1000000ULL }, { "s", 1000000000ULL } };
	const size_t nbig = sizeof(big) / sizeof(big[0]);
	size_t i = 0;
	uint64_t q, div;

	if (!buf || len == 0)
		return buf;
	if (ns < 1000) {
		snprintf(buf, len, "%" PRIu64 " ns", ns);
		return buf;
	}
	while (i + 1 < nbig && ns >= big[i + 1].scale)
		i++;
	for (; i < nbig; i++) {
		q = div_round(ns, big[i].scale / 100);
		if (q < 1000) {
			snprintf(buf, len, "%" PRIu64 ".%02" PRIu64 " %s", q / 100,
				 q % 100, big[i].name);
			return buf;
		}
		q = div_round(ns, big[i].scale / 10);
		if (q < 10000) {
			snprintf(buf, len, "%" PRIu64 ".%01" PRIu64 " %s", q / 10,
				 q % 10, big[i].name);
			return buf;
		}
	}
	/* 999.95 s and above: whole seconds, then 4 significant digits. */
	div = big[nbig - 1].scale;
	while ((q = div_round(ns, div)) >= 10000)
		div *= 10;
	snprintf(buf, len, "%" PRIu64 " s", q * (div / big[nbig - 1].scale));
	return buf;
}
