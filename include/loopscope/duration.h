/* SPDX-License-Identifier: MIT */
/* Durations as a person writes and reads them ("500us", "100ms", "212.4 ms"). */
#ifndef LOOPSCOPE_DURATION_H
#define LOOPSCOPE_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Busy periods and callbacks longer than this are slow unless told
 * otherwise (--threshold, the config file): asyncio's own
 * slow_callback_duration, 100 ms. */
#define LS_DEFAULT_THRESHOLD_NS 100000000ULL

/* Largest duration ls_duration_parse accepts: 10^9 s (31.7 years). Far
 * below UINT64_MAX ns, so that a deadline now + d (or a sum of a few) cannot
 * wrap, and a whole number of seconds with 4 significant digits, so that
 * whatever ls_duration_format writes for a value up to it parses back
 * ("1000000000 s"). */
#define LS_DURATION_MAX_NS 1000000000000000000ULL

/* Parse a duration: a non-negative decimal number (digits, optionally '.'
 * and more digits: "1.5s", not ".5s" or "5.s") followed by a unit: ns, us,
 * ms, s, m, h, optionally after one space ("212.4 ms", as
 * ls_duration_format writes it). No unit, an unknown unit, a negative or
 * empty number, a sign, an exponent, other whitespace, trailing junk or a
 * value above LS_DURATION_MAX_NS (after rounding) give -EINVAL and leave
 * *ns untouched. On success
 * *ns is the value in nanoseconds, computed exactly from the decimal digits
 * ("0.1s" is 100000000) and rounded to the nearest ns, halves up, and 0 is
 * returned. */
int ls_duration_parse(const char *s, uint64_t *ns);

/* Format ns for a person with 4 significant digits at most and the largest
 * unit that keeps the number >= 1: ns as an integer ("850 ns"); us, ms and s
 * with two decimals below 10 ("3.02 s", "1.00 us") and one below 1000
 * ("12.5 us", "212.4 ms"), rounded to nearest, halves up, before the unit is
 * chosen (999999 ns is "1.00 ms"). Minutes and above stay in s: "125.0 s";
 * from 999.95 s whole seconds ("3600 s"), from 9999.5 s rounded to 4
 * significant digits ("12350 s"). At most 14 bytes with the NUL. Every
 * value up to LS_DURATION_MAX_NS gives a text ls_duration_parse accepts
 * (within the rounding of 4 digits); above it ("18450000000 s" for
 * UINT64_MAX) the text is still written but does not parse. Writes at
 * most len bytes including the NUL (truncating); returns buf. */
char *ls_duration_format(uint64_t ns, char *buf, size_t len);

#endif /* LOOPSCOPE_DURATION_H */
