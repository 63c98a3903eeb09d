// SPDX-License-Identifier: MIT
/* Unit: naming callbacks by their stacks (agent/python/cbname.c) on
 * hand-made names and stacks, innermost frame first as the walker gives
 * them. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "loopscope/cbname.h"
#include "pythons.h"

#define NFRAMES 8

struct stack {
	struct ls_pyframe frames[NFRAMES];
	struct ls_stack_agg agg;
	struct ls_stack_summary sum;
};

/* frames: "qualname@file:firstline|...", innermost first. */
static void make(struct stack *s, const char *frames, bool truncated)
{
	const char *p = frames;
	int n = 0;

	memset(s, 0, sizeof(*s));
	for (; p; n++) {
		struct ls_pyframe *f = &s->frames[n];
		char q[256], file[256];

		ck_assert_int_lt(n, NFRAMES);
		ck_assert_int_eq(sscanf(p, "%255[^@]@%255[^:]:%d", q, file, &f->firstlineno), 3);
		snprintf(f->qualname, sizeof(f->qualname), "%s", q);
		snprintf(f->filename, sizeof(f->filename), "%s", file);
		p = strchr(p, '|');
		p = p ? p + 1 : NULL;
	}
	s->agg.frames = s->frames;
	s->agg.nframes = (uint16_t)n;
	s->agg.truncated = truncated;
	s->sum.stacks = &s->agg;
	s->sum.n = 1;
}

static const struct ls_cb_name py_step = {
	.qualname = "Task.__step", .filename = "/usr/lib/python3.11/asyncio/tasks.py",
	.firstlineno = 260,
};

/* What the last task_step_of / context_of named. */
static struct ls_cb_name named;

/* ls_cbname_task_step of py_step on the stack frames (whole). */
static bool task_step_of(const char *frames)
{
	struct stack s;

	make(&s, frames, false);
	memset(&named, 0, sizeof(named));
	return ls_cbname_task_step(&py_step, &s.sum, &named);
}

/* ls_cbname_context on the stack frames (whole). */
static bool context_of(const char *frames)
{
	struct stack s;

	make(&s, frames, false);
	memset(&named, 0, sizeof(named));
	return ls_cbname_context(&s.sum, &named);
}

START_TEST(test_task_step_is_named_by_its_coroutine)
{
	static const char frames[] =
		"sleep_culprit@/app/culprits.py:80|handler@/app/app.py:42|"
		"Task.__step_run_and_handle_result@/usr/lib/python3.12/asyncio/tasks.py:290|"
		"Task.__step@/usr/lib/python3.12/asyncio/tasks.py:260|"
		"Handle._run@/usr/lib/python3.12/asyncio/events.py:80";
	ck_assert(task_step_of(frames));
	ck_assert_str_eq(named.qualname, "handler");
	ck_assert_str_eq(named.filename, "/app/app.py");
	ck_assert_int_eq(named.firstlineno, 42);
}
END_TEST

/* A stack taken inside __step_run_and_handle_result before it sends to
 * the coroutine names none: another stack must (two stacks, the first
 * without the coroutine, as a preempted step's may be). */
START_TEST(test_task_step_not_named_by_tasks_py_itself)
{
	static const char inside[] =
		"Task.__step_run_and_handle_result@/usr/lib/python3.13/asyncio/tasks.py:290|"
		"Task.__step@/usr/lib/python3.13/asyncio/tasks.py:260|"
		"Handle._run@/usr/lib/python3.13/asyncio/events.py:80";
	static const char sent[] =
		"handler@/app/app.py:42|"
		"Task.__step_run_and_handle_result@/usr/lib/python3.13/asyncio/tasks.py:290|"
		"Task.__step@/usr/lib/python3.13/asyncio/tasks.py:260";
	struct stack a, b;
	struct ls_stack_agg both[2];
	struct ls_stack_summary sum = { .stacks = both, .n = 2 };

	ck_assert(!task_step_of(inside));
	ck_assert_str_eq(named.qualname, "");
	make(&a, inside, false);
	make(&b, sent, false);
	both[0] = a.agg;
	both[1] = b.agg;
	memset(&named, 0, sizeof(named));
	ck_assert(ls_cbname_task_step(&py_step, &sum, &named));
	ck_assert_str_eq(named.qualname, "handler");
}
END_TEST

START_TEST(test_task_step_before_311_has_names_only)
{
	static const char frames[] = "handler@/app/app.py:42|__step@/usr/lib/python3.10/asyncio/tasks.py:232";
	ck_assert(task_step_of(frames));
	ck_assert_str_eq(named.qualname, "handler");
}
END_TEST

START_TEST(test_task_step_needs_a_step_and_its_frame)
{
	static const char frames[] = "handler@/app/app.py:42";
	static const struct ls_cb_name other = { .qualname = "Handler.on_data",
						 .filename = "/app/app.py" };
	struct stack s;
	struct ls_cb_name out = { 0 };

	make(&s, frames, false);
	ck_assert(!ls_cbname_task_step(&other, &s.sum, &out)); /* not a Task step */
	ck_assert(!ls_cbname_task_step(&py_step, &s.sum, &out)); /* no __step frame */
	ck_assert(!ls_cbname_task_step(&py_step, NULL, &out));   /* no stacks */
	ck_assert_str_eq(out.qualname, "");
}
END_TEST

START_TEST(test_driver_frames)
{
	struct ls_pyframe f = { 0 };

	snprintf(f.filename, sizeof(f.filename), "/usr/lib/python3.11/asyncio/base_events.py");
	snprintf(f.qualname, sizeof(f.qualname), "BaseEventLoop.run_forever");
	ck_assert(ls_cbname_driver_frame(&f));
	snprintf(f.qualname, sizeof(f.qualname), "_run_once"); /* before 3.11: names */
	ck_assert(ls_cbname_driver_frame(&f));
	snprintf(f.qualname, sizeof(f.qualname), "BaseEventLoop.create_task");
	ck_assert(!ls_cbname_driver_frame(&f));
	snprintf(f.filename, sizeof(f.filename), "/usr/lib/python3.11/asyncio/events.py");
	snprintf(f.qualname, sizeof(f.qualname), "Handle._run");
	ck_assert(ls_cbname_driver_frame(&f));
	snprintf(f.filename, sizeof(f.filename), "/venv/lib/uvloop/__init__.py");
	snprintf(f.qualname, sizeof(f.qualname), "run");
	ck_assert(ls_cbname_driver_frame(&f));
	snprintf(f.filename, sizeof(f.filename), "/app/runners.py"); /* not asyncio's */
	ck_assert(!ls_cbname_driver_frame(&f));
}
END_TEST

START_TEST(test_context_callback_is_the_frame_under_the_loop)
{
	static const char frames[] =
		"spin@/app/app.py:10|on_timer@/app/app.py:20|"
		"run@/venv/lib/uvloop/__init__.py:100|<module>@/app/app.py:1";
	ck_assert(context_of(frames));
	ck_assert_str_eq(named.qualname, "on_timer");
	ck_assert_int_eq(named.firstlineno, 20);
}
END_TEST

START_TEST(test_context_callback_from_module_level)
{
	/* No driver frame: the frame called by the outermost one. */
	static const char frames[] = "spin@/app/app.py:10|on_timer@/app/app.py:20|<module>@/app/app.py:1";
	ck_assert(context_of(frames));
	ck_assert_str_eq(named.qualname, "on_timer");
}
END_TEST

START_TEST(test_context_needs_a_whole_stack)
{
	static const char deep[] = "a@/app/a.py:1|b@/app/a.py:2";
	static const char one[] = "a@/app/a.py:1";
	static const char loop_only[] =
		"BaseEventLoop._run_once@/usr/lib/python3.11/asyncio/base_events.py:1800|"
		"BaseEventLoop.run_forever@/usr/lib/python3.11/asyncio/base_events.py:600";
	struct stack s;
	struct ls_cb_name out = { 0 };

	make(&s, deep, true); /* truncated */
	ck_assert(!ls_cbname_context(&s.sum, &out));
	make(&s, one, false); /* one frame */
	ck_assert(!ls_cbname_context(&s.sum, &out));
	make(&s, loop_only, false); /* the loop itself */
	ck_assert(!ls_cbname_context(&s.sum, &out));
	ck_assert(!ls_cbname_context(NULL, &out));
	ck_assert_str_eq(out.qualname, "");
}
END_TEST

START_TEST(test_pytest_node_of_test_functions)
{
	char out[256];

	ls_cbname_pytest_node("/src/tests/test_app.py", "test_blocks", out, sizeof(out));
	ck_assert_str_eq(out, "test_app.py::test_blocks");
	ls_cbname_pytest_node("tests/app_test.py", "TestApi.test_get", out, sizeof(out));
	ck_assert_str_eq(out, "app_test.py::TestApi::test_get");
	ls_cbname_pytest_node("/src/app.py", "test_blocks", out, sizeof(out)); /* not a test file */
	ck_assert_str_eq(out, "");
	ls_cbname_pytest_node("/src/test_app.py", "helper", out, sizeof(out)); /* not a test */
	ck_assert_str_eq(out, "");
	ls_cbname_pytest_node("/src/test_app.pyc", "test_x", out, sizeof(out));
	ck_assert_str_eq(out, "");
	ls_cbname_pytest_node("test_app.py", "TestApi.test_get", out, 20); /* cut */
	ck_assert_uint_lt(strlen(out), 20);
	ck_assert_str_eq(out, "test_app.py::Test"); /* whole characters, room for "::" */
}
END_TEST

START_TEST(test_pytest_from_stack_takes_the_outermost_test)
{
	static const char frames[] =
		"spin@/app/app.py:10|test_inner@/src/test_app.py:20|"
		"test_outer@/src/test_app.py:30|"
		"pytest_pyfunc_call@/venv/_pytest/python.py:190";
	static const char none[] = "spin@/app/app.py:10";
	struct stack s;
	char out[256];

	make(&s, frames, false);
	ls_cbname_pytest_from_stack(&s.sum, out, sizeof(out));
	ck_assert_str_eq(out, "test_app.py::test_outer");
	make(&s, none, false);
	ls_cbname_pytest_from_stack(&s.sum, out, sizeof(out));
	ck_assert_str_eq(out, "");
	s.sum.n = 0;
	ls_cbname_pytest_from_stack(&s.sum, out, sizeof(out));
	ck_assert_str_eq(out, "");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cbname");
	TCase *tc = tcase_create("cbname");

	tcase_add_test(tc, test_task_step_is_named_by_its_coroutine);
	tcase_add_test(tc, test_task_step_not_named_by_tasks_py_itself);
	tcase_add_test(tc, test_task_step_before_311_has_names_only);
	tcase_add_test(tc, test_task_step_needs_a_step_and_its_frame);
	tcase_add_test(tc, test_driver_frames);
	tcase_add_test(tc, test_context_callback_is_the_frame_under_the_loop);
	tcase_add_test(tc, test_context_callback_from_module_level);
	tcase_add_test(tc, test_context_needs_a_whole_stack);
	tcase_add_test(tc, test_pytest_node_of_test_functions);
	tcase_add_test(tc, test_pytest_from_stack_takes_the_outermost_test);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
