// SPDX-License-Identifier: MIT
/*
 * fuzz_pytask: the `.AsyncioDebug` validator (ls_pytask_parse) on section
 * bytes a target's _asyncio module controls, and the await chain's text
 * and JSON (ls_pytask_chain_text, ls_pytask_chain_json) on task names and
 * coroutine names read from a target.
 *
 * Input: the section (its first 104 bytes, or fewer), then byte 104 the
 * text buffer's size, 105 the chain's length and truncation, and the rest
 * NUL-separated names. Properties: what parses has every field inside its
 * object (pytask.h); the text is NUL-terminated inside its buffer and has
 * no control byte (names are escaped for a terminal).
 */
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "loopscope/pytask.h"

#define SECTION 104

static void check_parse(const uint8_t *data, size_t size)
{
	struct ls_pytask_offsets o;
	char why[256];
	int r;

	memset(why, 'x', sizeof(why));
	r = ls_pytask_parse(data, size, &o, why, sizeof(why));
	if (r) {
		FUZZ_CHECK(r == -EINVAL && memchr(why, 0, sizeof(why)) && why[0]);
		return;
	}
	FUZZ_CHECK(o.task_size >= 64 && o.task_size <= 4096);
	FUZZ_CHECK(o.task_name >= 16 && o.task_name + 8 <= o.task_size);
	FUZZ_CHECK(o.task_awaited_by >= 16 && o.task_awaited_by + 8 <= o.task_size);
	FUZZ_CHECK(o.task_coro >= 16 && o.task_coro + 8 <= o.task_size);
	FUZZ_CHECK(o.task_is_task >= 16 && o.task_is_task < o.task_size);
	FUZZ_CHECK(o.task_awaited_by_is_set >= 16 && o.task_awaited_by_is_set < o.task_size);
	FUZZ_CHECK(o.tstate_size >= 64 && o.tstate_size <= 65536);
	FUZZ_CHECK(o.tstate_running_task + 8 <= o.tstate_size);
}

static void check_text(const uint8_t *data, size_t size)
{
	static struct ls_pytask_chain c;
	char buf[4096 + 1];
	size_t len, pos = 2;
	json_object *j;

	if (size < 2)
		return;
	memset(&c, 0, sizeof(c));
	len = (size_t)data[0] * 16 + 1 < sizeof(buf) ? (size_t)data[0] * 16 + 1 : sizeof(buf);
	c.n = (data[1] & 31) % (LS_PYTASK_CHAIN_MAX + 1);
	c.truncated = data[1] >> 7;
	for (uint32_t i = 0; i < c.n; i++) {
		char *dst[2] = { c.task[i].name, c.task[i].coro };

		c.task[i].addr = 0x7f0000001000ULL + i * 64;
		c.task[i].awaiters = i & 3;
		for (int k = 0; k < 2; k++) {
			size_t n = 0;

			while (pos < size && data[pos] && n < sizeof(c.task[i].name) - 1)
				dst[k][n++] = (char)data[pos++];
			dst[k][n] = '\0';
			pos++;
		}
	}
	memset(buf, 'x', sizeof(buf));
	ls_pytask_chain_text(&c, buf, len);
	FUZZ_CHECK(memchr(buf, 0, len));
	for (const char *p = buf; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	j = ls_pytask_chain_json(&c);
	FUZZ_CHECK(!c.n == !j);
	if (j) {
		FUZZ_CHECK(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
		json_object_put(j);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parse(data, size < SECTION ? size : SECTION);
	if (size > SECTION)
		check_text(data + SECTION, size - SECTION);
	return 0;
}
