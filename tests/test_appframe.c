// SPDX-License-Identifier: MIT
/* Unit: the application frame (agent/python/appframe.c) and the one --allow
 * rule over it and the culprit stack (agent/gate/gate.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/appframe.h"
#include "loopscope/gate.h"
#include "loopscope/slowstack.h"

START_TEST(test_library_paths)
{
	static const char *lib[] = {
		"/usr/lib/python3.11/json/encoder.py",
		"/root/.pyenv/versions/3.12.3/lib/python3.12/asyncio/events.py",
		"/opt/py/lib64/python3.9/asyncio/base_events.py",
		"/usr/lib/python3/dist-packages/aiohttp/web_protocol.py",
		"/srv/app/.venv/lib/python3.11/site-packages/aiohttp/web_app.py",
		"/srv/app/venv/lib/python3.13/site-packages/x.py",
		"<frozen importlib._bootstrap>",
		"<frozen runpy>",
	};
	static const char *app[] = {
		"/srv/app/aio_app.py", "aio_app.py", "/srv/lib/python/app.py",
		"/srv/lib/python3/app.py", "/home/u/python3.11/x.py", "/srv/libpython3.11/x.py",
		"<string>",
	};

	for (size_t i = 0; i < sizeof(lib) / sizeof(lib[0]); i++)
		ck_assert_msg(ls_appframe_is_library(lib[i]), "%s", lib[i]);
	for (size_t i = 0; i < sizeof(app) / sizeof(app[0]); i++)
		ck_assert_msg(!ls_appframe_is_library(app[i]), "%s", app[i]);
	ck_assert(ls_appframe_under("/srv/app/a.py", "/srv/app"));
	ck_assert(ls_appframe_under("/srv/app/a.py", "/"));
	ck_assert(!ls_appframe_under("/srv/apple/a.py", "/srv/app"));
	ck_assert(ls_appframe_under("a.py", "/srv/app")); /* relative: the cwd's */
	ck_assert(!ls_appframe_under("<string>", "/srv/app"));
}
END_TEST

static void frame(struct ls_pyframe *f, const char *fn, const char *file, int line)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->qualname, sizeof(f->qualname), "%s", fn);
	snprintf(f->filename, sizeof(f->filename), "%s", file);
	f->line = line;
	f->firstlineno = line > 1 ? line - 1 : 1;
}

/* A framework-wrapped stack, innermost first: json (stdlib) <- handler
 * (the app) <- helper of a second app folder <- aiohttp <- asyncio. */
static struct ls_pyframe frames[6];

static void wrapped_stack(struct ls_stack_summary *sum, struct ls_stack_agg *a)
{
	frame(&frames[0], "JSONEncoder.iterencode", "/usr/lib/python3.11/json/encoder.py", 258);
	frame(&frames[1], "report", "/srv/app/aio_app.py", 22);
	frame(&frames[2], "with_retry", "/srv/shared/retry.py", 9);
	frame(&frames[3], "RequestHandler._handle_request",
	      "/usr/lib/python3/dist-packages/aiohttp/web_protocol.py", 430);
	frame(&frames[4], "Handle._run", "/usr/lib/python3.11/asyncio/events.py", 80);
	frame(&frames[5], "<module>", "<frozen runpy>", 1);
	memset(a, 0, sizeof(*a));
	a->nframes = 6;
	a->frames = frames;
	a->on_cpu_ns = 100;
	memset(sum, 0, sizeof(*sum));
	sum->stacks = a;
	sum->n = 1;
}

START_TEST(test_pick_default_and_explicit)
{
	struct ls_stack_summary sum;
	struct ls_stack_agg a;
	struct ls_appframe *af = ls_appframe_new(NULL, 0);
	const char *shared[] = { "/srv/shared/" }, *none[] = { "/nowhere" };

	ck_assert_ptr_nonnull(af);
	wrapped_stack(&sum, &a);
	/* Our own cwd is not /srv/app: the default falls back to the
	 * innermost frame outside the library. */
	ls_appframe_pick(af, getpid(), &sum);
	ck_assert(sum.has_app);
	ck_assert_str_eq(sum.app.qualname, "report");
	ck_assert_int_eq(sum.app.line, 22);
	ls_appframe_free(af);
	/* An explicit path picks the innermost frame under it ... */
	af = ls_appframe_new(shared, 1);
	ls_appframe_pick(af, getpid(), &sum);
	ck_assert(sum.has_app);
	ck_assert_str_eq(sum.app.qualname, "with_retry");
	ls_appframe_free(af);
	/* ... and is strict. */
	af = ls_appframe_new(none, 1);
	ls_appframe_pick(af, getpid(), &sum);
	ck_assert(!sum.has_app);
	ls_appframe_free(af);
	/* The cwd wins over the fallback: a frame under it, though outer. */
	char cwd[200];

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	snprintf(frames[2].filename, sizeof(frames[2].filename), "%s/retry.py", cwd);
	af = ls_appframe_new(NULL, 0);
	ls_appframe_pick(af, getpid(), &sum);
	ck_assert_str_eq(sum.app.qualname, "with_retry");
	ls_appframe_free(af);
	/* Only library frames: none. */
	a.nframes = 1;
	ls_appframe_pick(NULL, getpid(), &sum);
	ck_assert(!sum.has_app);
	/* Bad paths: refused. */
	const char *empty[] = { "" };

	ck_assert_ptr_null(ls_appframe_new(empty, 1));
	ck_assert_ptr_null(ls_appframe_new(shared, LS_APPFRAME_MAX_PATHS + 1));
}
END_TEST

START_TEST(test_allow_matches_app_and_culprit_frames)
{
	static struct ls_run_result r;
	struct ls_run_slow *s = &r.slow[0];

	memset(&r, 0, sizeof(r));
	snprintf(s->name, sizeof(s->name), "Task test_orders() test_orders.py:20");
	snprintf(s->file, sizeof(s->file), "/src/tests/test_orders.py");
	s->line = 20;
	snprintf(s->frames, sizeof(s->frames),
		 "block\t/src/tests/helpers.py\t5\ntest_orders\t/src/tests/test_orders.py\t22\n");
	r.allow[0] = "helpers.py:*";
	r.nallow = 1;
	ck_assert(ls_gate_allowed(&r, s));            /* a culprit-stack frame */
	r.allow[0] = "/src/tests/helpers.py:5";
	ck_assert(ls_gate_allowed(&r, s));            /* full path */
	r.allow[0] = "block";
	ck_assert(ls_gate_allowed(&r, s));            /* a function */
	r.allow[0] = "test_orders.py:20";
	ck_assert(ls_gate_allowed(&r, s));            /* its own place, as before */
	r.allow[0] = "other.py:*";
	ck_assert(!ls_gate_allowed(&r, s));
	snprintf(s->app_function, sizeof(s->app_function), "query");
	snprintf(s->app_file, sizeof(s->app_file), "/src/db.py");
	s->app_line = 7;
	r.allow[0] = "db.py:7";
	ck_assert(ls_gate_allowed(&r, s));            /* the application frame */
	/* A frames text cut mid-line (not one we write) matches nothing more. */
	snprintf(s->frames, sizeof(s->frames), "x\t/a/other.py");
	r.allow[0] = "other.py:*";
	ck_assert(!ls_gate_allowed(&r, s));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("appframe");
	TCase *tc = tcase_create("appframe");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_library_paths);
	tcase_add_test(tc, test_pick_default_and_explicit);
	tcase_add_test(tc, test_allow_matches_app_and_culprit_frames);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
