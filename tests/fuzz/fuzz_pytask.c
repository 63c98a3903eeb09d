// SPDX-License-Identifier: MIT
/*
 * fuzz_pytask: the `.AsyncioDebug` validator (ls_pytask_parse) on section
 * bytes a target's _asyncio module controls, and the await chain's text
 * and JSON (ls_pytask_chain_text, ls_pytask_chain_json) on task names and
 * coroutine names read from a target.
 *
 * Input: the section (its first 104 bytes, or fewer), then byte 104:
 *  - bit 7 clear: the text buffer's size (x 32), then byte 105 the chain's
 *    length and truncation, and the rest NUL-separated names;
 *  - bit 7 set: the rest is a target's memory (up to 8 KiB) in which
 *    ls_pytask_chain follows the thread list from _PyRuntime (its start)
 *    to thread 4242's running Task and its awaiters, with the 3.13 object
 *    layouts and the section's offsets (when it parses). Pointers are the
 *    words whose top 16 bits are 0xa5a5: the image's address plus the low
 *    14 bits. It is read back through /proc/self/mem, as a target's.
 * Properties: what parses has every field inside its object (pytask.h);
 * the chain has at most LS_PYTASK_CHAIN_MAX tasks with NUL-terminated
 * names; the text is NUL-terminated inside its buffer and has no control
 * byte (names are escaped for a terminal).
 *
 * FUZZ_PYTASK_PRINT=1 prints each chain read (to check a seed);
 * FUZZ_PYTASK_SEED=FILE writes a seed of the memory mode (a chain of three
 * tasks, a str, an int and a set as awaited_by) to FILE and exits.
 */
#include <fcntl.h>
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "loopscope/abi/py_offsets.h"
#include "loopscope/pytask.h"

#define SECTION 104
#define MEM 16384      /* the image's room; pointers reach its first 16 KiB */
#define IMAGE_MAX 8192
#define PTR_TAG 0xa5a5ULL
#define TID 4242

static uint8_t mem[MEM] __attribute__((aligned(64)));
static int memfd = -1;

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
	len = (size_t)(data[0] & 0x7f) * 32 + 1;
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

static void check_chain_of(const struct ls_pytask_chain *c)
{
	char buf[512];

	FUZZ_CHECK(c->n <= LS_PYTASK_CHAIN_MAX && c->truncated <= 1);
	for (uint32_t i = 0; i < c->n; i++)
		FUZZ_CHECK(memchr(c->task[i].name, 0, sizeof(c->task[i].name)) &&
			   memchr(c->task[i].coro, 0, sizeof(c->task[i].coro)));
	ls_pytask_chain_text(c, buf, sizeof(buf));
	for (const char *p = buf; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static void check_memory(const uint8_t *section, const uint8_t *image, size_t size)
{
	const struct ls_py_offsets *off = ls_py_offsets_for(3, 13);
	struct ls_pytask_offsets ao;
	static struct ls_pytask_chain c;
	char why[256];
	int r;

	if (ls_pytask_parse(section, SECTION, &ao, why, sizeof(why)))
		return;
	FUZZ_CHECK(off);
	if (size > IMAGE_MAX)
		size = IMAGE_MAX;
	memset(mem, 0, sizeof(mem));
	memcpy(mem, image, size);
	for (size_t i = 0; i + 8 <= size; i += 8) {
		uint64_t w;

		memcpy(&w, mem + i, 8);
		if (w >> 48 == PTR_TAG) {
			w = (uint64_t)(uintptr_t)mem + (w & (MEM - 1));
			memcpy(mem + i, &w, 8);
		}
	}
	if (memfd < 0)
		memfd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
	FUZZ_CHECK(memfd >= 0);
	r = ls_pytask_chain(memfd, off, &ao, (uint64_t)(uintptr_t)mem, TID, &c);
	if (getenv("FUZZ_PYTASK_PRINT")) {
		ls_pytask_chain_text(&c, why, sizeof(why));
		fprintf(stderr, "chain: %d, %u tasks: %s\n", r, c.n, why);
	}
	FUZZ_CHECK(r == 0 || r == -ESRCH || r == -EFAULT);
	if (r == 0)
		check_chain_of(&c);
}

/* ---- the seed of the memory mode ----------------------------------------- */

static uint8_t *seed;

static void sptr(unsigned at, unsigned to)
{
	uint64_t w = PTR_TAG << 48 | to;

	memcpy(seed + at, &w, 8);
}

static void su64(unsigned at, uint64_t v)
{
	memcpy(seed + at, &v, 8);
}

static void sstr(const struct ls_py_offsets *off, unsigned at, unsigned type, const char *s)
{
	uint32_t state = LS_PY_STATE_COMPACT | LS_PY_STATE_ASCII | 1u << LS_PY_STATE_KIND_SHIFT;

	sptr(at + off->ob_type, type);
	su64(at + off->unicode_length, strlen(s));
	memcpy(seed + at + off->unicode_state, &state, sizeof(state));
	memcpy(seed + at + off->ascii_data, s, strlen(s));
}

static void write_seed(const char *path)
{
	static const uint64_t sec[13] = { 168, 136, 96, 108, 109, 128, 152, 225864, 10880,
					  936, 864, 872, 880 };
	const struct ls_py_offsets *off = ls_py_offsets_for(3, 13);
	/* The interpreter state overlaps the runtime at the image's start: of
	 * its ~7 KiB only next (0) and the thread list's head are read. */
	enum { INTERP = 0, TS = 0x200, T1 = 0x600, T2 = 0x700, T3 = 0x800, NAME1 = 0x900,
	       NAME3 = 0x980, INT7 = 0xa00, CORO = 0xa80, QN = 0xb80, SET = 0xc00, TABLE = 0xc80,
	       STRT = 0x1000, INTT = 0x1100, COROT = 0x1200, NAMES = 0x1300 };
	const unsigned END = off ? off->interp_threads_head + 8u : 0;
	uint8_t head[SECTION + 1];
	FILE *f;

	FUZZ_CHECK(off && END > NAMES + 32 && END <= IMAGE_MAX);
	seed = calloc(1, END);
	FUZZ_CHECK(seed);
	sptr(off->runtime_interpreters_head, INTERP);
	sptr(INTERP + off->interp_threads_head, TS);
	su64(TS + off->tstate_native_thread_id, TID);
	sptr(TS + sec[11], T1); /* asyncio_running_task */
	for (unsigned t = T1; t <= T3; t += 0x100) {
		seed[t + sec[3]] = 1; /* task_is_task */
		sptr(t + sec[5], CORO);
	}
	sptr(T1 + sec[1], NAME1);
	sptr(T1 + sec[2], T2);
	sptr(T2 + sec[1], INT7);
	sptr(T2 + sec[2], SET);
	seed[T2 + sec[4]] = 1; /* awaited_by is a set */
	sptr(T3 + sec[1], NAME3);
	sstr(off, NAME1, STRT, "fetch-42");
	sstr(off, NAME3, STRT, "main\x1b[2J");
	sptr(INT7 + off->ob_type, INTT);
	su64(INT7 + 16, 1 << 3); /* lv_tag: one digit, positive */
	su64(INT7 + 24, 7);
	sptr(CORO + off->ob_type, COROT);
	sptr(CORO + off->cr_qualname, QN);
	sstr(off, QN, STRT, "Handler.fetch");
	su64(SET + 32, 3); /* mask */
	sptr(SET + 40, TABLE);
	sptr(TABLE + 16, T3);
	sptr(TABLE + 48, T1); /* and T1 again: a cycle */
	sptr(STRT + off->tp_name, NAMES);
	sptr(INTT + off->tp_name, NAMES + 8);
	sptr(COROT + off->tp_name, NAMES + 16);
	memcpy(seed + NAMES, "str\0\0\0\0\0int\0\0\0\0\0coroutine", 25);
	memcpy(head, sec, SECTION);
	head[SECTION] = 0x80;
	f = fopen(path, "wb");
	FUZZ_CHECK(f && fwrite(head, 1, sizeof(head), f) == sizeof(head) &&
		   fwrite(seed, 1, END, f) == END && fclose(f) == 0);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	if (getenv("FUZZ_PYTASK_SEED"))
		write_seed(getenv("FUZZ_PYTASK_SEED"));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parse(data, size < SECTION ? size : SECTION);
	if (size > SECTION + 1 && data[SECTION] & 0x80)
		check_memory(data, data + SECTION + 1, size - SECTION - 1);
	else if (size > SECTION)
		check_text(data + SECTION, size - SECTION);
	return 0;
}
