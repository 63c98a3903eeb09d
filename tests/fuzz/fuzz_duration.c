// SPDX-License-Identifier: MIT
/*
 * fuzz_duration: ls_duration_parse on text from flags and config files, and
 * ls_duration_format on any value. Properties: what parses is at most
 * LS_DURATION_MAX_NS and formats to a text of at most 13 characters that
 * parses back within the rounding of 4 significant digits; parsing leaves
 * *ns alone on error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "loopscope/duration.h"

static void round_trip(uint64_t v)
{
	char buf[32];
	uint64_t back = 0;

	ls_duration_format(v, buf, sizeof(buf));
	FUZZ_CHECK(strlen(buf) <= 13);
	if (v > LS_DURATION_MAX_NS)
		return;
	FUZZ_CHECK(ls_duration_parse(buf, &back) == 0);
	FUZZ_CHECK((back > v ? back - v : v - back) <= v / 200);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	uint64_t v = 0x5555, raw;
	char small[8];

	FUZZ_CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';
	if (ls_duration_parse(s, &v) == 0) {
		FUZZ_CHECK(v <= LS_DURATION_MAX_NS);
		round_trip(v);
	} else {
		FUZZ_CHECK(v == 0x5555);
	}
	free(s);
	if (size >= 8) {
		memcpy(&raw, data, sizeof(raw));
		round_trip(raw);
		round_trip(raw >> (data[0] % 64));
		ls_duration_format(raw, small, (size_t)data[1] % sizeof(small));
	}
	return 0;
}
