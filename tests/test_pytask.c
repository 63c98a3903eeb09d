// SPDX-License-Identifier: MIT
/* Suite "pytask": validation of a target's `.AsyncioDebug` section and the
 * await chain's text (agent/python/pytask.c). The live chain is checked
 * against `python -m asyncio pstree` in it_stacks. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/pytarget.h"
#include "loopscope/pytask.h"
#include "pythons.h"
#include "spawn.h"

/* The section of Debian sid's _asyncio for CPython 3.14.10 (readelf -x
 * .AsyncioDebug), whose TaskObj is 168 bytes. */
static const uint64_t sec314[13] = { 168, 136, 96, 108, 109, 128, 152, 225864, 10880,
				     936, 864, 872, 880 };

START_TEST(parses_a_real_section)
{
	struct ls_pytask_offsets o;
	char why[256] = "";

	ck_assert_int_eq(ls_pytask_parse(sec314, sizeof(sec314), &o, why, sizeof(why)), 0);
	ck_assert_uint_eq(o.task_size, 168);
	ck_assert_uint_eq(o.task_name, 136);
	ck_assert_uint_eq(o.task_awaited_by, 96);
	ck_assert_uint_eq(o.task_is_task, 108);
	ck_assert_uint_eq(o.task_awaited_by_is_set, 109);
	ck_assert_uint_eq(o.task_coro, 128);
	ck_assert_uint_eq(o.tstate_size, 936);
	ck_assert_uint_eq(o.tstate_running_task, 872);
}
END_TEST

/* Each field forged out of bounds, one at a time: refused, with a reason
 * naming the field. */
START_TEST(refuses_a_forged_field)
{
	static const struct { int idx; uint64_t value; const char *needle; } forged[] = {
		{ 0, 8, "TaskObj size" },          /* smaller than a Future head */
		{ 0, 1u << 20, "TaskObj size" },
		{ 1, 168, "task_name" },            /* at the end: 8 bytes past it */
		{ 1, 4, "task_name" },              /* inside the object header */
		{ 2, 1000, "task_awaited_by" },
		{ 3, 168, "task_is_task" },
		{ 4, 9999, "task_awaited_by_is_set" },
		{ 5, 161, "task_coro" },
		{ 9, 1u << 30, "thread state" },
		{ 11, 936, "running task" },
	};
	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
		uint64_t sec[13];
		struct ls_pytask_offsets o;
		char why[256] = "";

		memcpy(sec, sec314, sizeof(sec));
		sec[forged[i].idx] = forged[i].value;
		ck_assert_int_eq(ls_pytask_parse(sec, sizeof(sec), &o, why, sizeof(why)), -EINVAL);
		ck_assert_msg(strstr(why, forged[i].needle), "field %d: '%s'", forged[i].idx, why);
		ck_assert_ptr_null(strchr(why, '\n'));
	}
}
END_TEST

START_TEST(refuses_a_short_section)
{
	struct ls_pytask_offsets o;
	char why[256] = "";

	ck_assert_int_eq(ls_pytask_parse(sec314, 96, &o, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "96 bytes"));
}
END_TEST

/* Issue #12 (fuzz_elf): a 3.14 target's file that is not an ELF (it
 * changed since it was resolved) gave an error with an empty why; every
 * error says why in one line. */
START_TEST(find_says_why_for_a_file_it_cannot_read)
{
	static struct ls_py_target t;
	struct ls_pytask_offsets o;
	char path[128], why[256];
	FILE *f;

	ls_test_tmp(path, sizeof(path), "pytask-notelf");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("not an ELF file", f);
	fclose(f);
	t.pid = getpid();
	t.major = 3;
	t.minor = 14;
	snprintf(t.path, sizeof(t.path), "/usr/lib/libpython3.14.so.1.0");
	snprintf(t.host_path, sizeof(t.host_path), "%s", path);
	memset(why, 'x', sizeof(why));
	ck_assert_int_eq(ls_pytask_find(&t, &o, why, sizeof(why)), -ENOEXEC);
	ck_assert_str_eq(why, "cannot read /usr/lib/libpython3.14.so.1.0: not an x86-64 ELF64 file");
	unlink(path);
}
END_TEST

START_TEST(chain_text_names_each_task)
{
	struct ls_pytask_chain c = { .n = 3 };
	char buf[512];

	strcpy(c.task[0].name, "fetch-42");
	strcpy(c.task[0].coro, "fetch");
	strcpy(c.task[1].name, "handler-7");
	strcpy(c.task[1].coro, "Handler.run");
	c.task[1].awaiters = 2;
	strcpy(c.task[2].name, "Task-1");
	strcpy(c.task[2].coro, "main");
	ck_assert_str_eq(ls_pytask_chain_text(&c, buf, sizeof(buf)),
			 "task \"fetch-42\" (fetch) <- awaited by task \"handler-7\" (Handler.run) "
			 "(+ other awaiters) <- task \"Task-1\" (main)");
	c.n = 1;
	c.truncated = 1;
	ck_assert_str_eq(ls_pytask_chain_text(&c, buf, sizeof(buf)),
			 "task \"fetch-42\" (fetch) <- ...");
}
END_TEST

/* A target names its tasks: escape sequences and newlines cannot reach the
 * terminal or forge report lines. */
START_TEST(chain_text_escapes_control_bytes)
{
	struct ls_pytask_chain c = { .n = 1 };
	char buf[256];

	strcpy(c.task[0].name, "evil\n\x1b[2J\"x");
	strcpy(c.task[0].coro, "c");
	ls_pytask_chain_text(&c, buf, sizeof(buf));
	ck_assert_str_eq(buf, "task \"evil\\x0a\\x1b[2J\\x22x\" (c)");
}
END_TEST

START_TEST(chain_text_fits_any_buffer)
{
	struct ls_pytask_chain c = { .n = LS_PYTASK_CHAIN_MAX };
	char buf[64];

	for (int i = 0; i < LS_PYTASK_CHAIN_MAX; i++) {
		memset(c.task[i].name, 'n', 100);
		strcpy(c.task[i].coro, "coro");
	}
	for (size_t len = 1; len <= sizeof(buf); len++) {
		memset(buf, 'Z', sizeof(buf));
		ls_pytask_chain_text(&c, buf, len);
		ck_assert_uint_lt(strlen(buf), len);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pytask");
	TCase *tc = tcase_create("pytask");

	tcase_add_test(tc, parses_a_real_section);
	tcase_add_test(tc, refuses_a_forged_field);
	tcase_add_test(tc, refuses_a_short_section);
	tcase_add_test(tc, find_says_why_for_a_file_it_cannot_read);
	tcase_add_test(tc, chain_text_names_each_task);
	tcase_add_test(tc, chain_text_escapes_control_bytes);
	tcase_add_test(tc, chain_text_fits_any_buffer);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
