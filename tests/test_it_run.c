// SPDX-License-Identifier: MIT
/*
 * Integration: `loopscope run [gates] -- CMD` on real commands with Debian's
 * python3 (/usr/bin/python3.11: stripped, precise mode through the
 * tp_methods route). Known truth: examples/python/blocking_sleep.py blocks
 * its loop in time.sleep(S) every E seconds; the gate must fail exactly when
 * S is above the gate and pass when below, with the documented exit codes,
 * across process trees (fork, exec, a child that lives 300 ms), and the
 * reports must carry the callback, its file:line and the process.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loopscope/run.h"
#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define PY "/usr/bin/python3.11"
#define APP LS_SOURCE_DIR "/examples/python/blocking_sleep.py"
#define CI_DIR LS_SOURCE_DIR "/examples/ci"
#define REFLOOP LS_BINARY_DIR "/examples/refloop/refloop"

/* One loopscope run, captured. */
static int run_ls(struct ls_test_out *o, char **argv)
{
	return ls_test_run_capture(o, argv, 120000);
}

static json_object *load_json(const char *path)
{
	json_object *o = json_object_from_file(path);

	ck_assert_msg(o != NULL, "no JSON report in %s", path);
	return o;
}

START_TEST(test_clean_app_passes_the_gate)
{
	struct ls_test_out o = { 0 };

	ls_test_tmp(o.log, sizeof(o.log), "log");
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--", PY, APP, "--log",
			 o.log, "--every", "0.2", "--sleep", "0.02", "--duration", "1.2", NULL };
	ck_assert_int_eq(run_ls(&o, argv), 0);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "PASS"));
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_cmd_exit_code_passes_through)
{
	struct ls_test_out o = { 0 };
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--", "/bin/sh", "-c",
			 "exit 3", NULL };

	ck_assert_int_eq(run_ls(&o, argv), 3);
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_150ms_block_fails_100ms_gate_and_names_callback)
{
	struct ls_test_out o = { 0 };
	char json[128];

	ls_test_tmp(o.log, sizeof(o.log), "log");
	ls_test_tmp(json, sizeof(json), "json");
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--json-out", json, "--",
			 PY, APP, "--log", o.log, "--every", "0.3", "--sleep", "0.15",
			 "--duration", "1", NULL };
	ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_GATE);
	json_object *rep = load_json(json), *slow = ls_test_jget(rep, "slow");
	int counted = 0;

	for (size_t i = 0; i < json_object_array_length(slow); i++) {
		json_object *s = json_object_array_get_idx(slow, i);
		const char *name = json_object_get_string(ls_test_jget(s, "name"));

		ck_assert_str_eq(json_object_get_string(ls_test_jget(s, "kind")), "callback");
		ck_assert_msg(strstr(name, "blocking_sleep() blocking_sleep.py:"), "name %s", name);
		ck_assert_ptr_nonnull(strstr(json_object_get_string(ls_test_jget(s, "file")),
					     "examples/python/blocking_sleep.py"));
		ck_assert_uint_ge(ls_test_ju64(s, "duration_ns"), 150000000ULL);
		ck_assert_uint_lt(ls_test_ju64(s, "duration_ns"), 160000000ULL);
		counted++;
	}
	/* One block every 0.3 s for 1 s: 3. */
	ck_assert_int_eq(counted, 3);
	json_object *verdict = ls_test_jget(rep, "verdict");
	ck_assert(json_object_get_boolean(ls_test_jget(verdict, "slow_gate_failed")));
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "FAIL"));
	json_object_put(rep);
	unlink(json);
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_allow_pattern_tolerates_the_known_spot)
{
	struct ls_test_out o = { 0 };

	ls_test_tmp(o.log, sizeof(o.log), "log");
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--allow",
			 "blocking_sleep.py:*", "--", PY, APP, "--log", o.log, "--every", "0.3",
			 "--sleep", "0.15", "--duration", "0.7", NULL };
	ck_assert_int_eq(run_ls(&o, argv), 0);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "allowed"));
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_max_slow_tolerates_n)
{
	struct ls_test_out o = { 0 };

	ls_test_tmp(o.log, sizeof(o.log), "log");
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--max-slow", "5", "--",
			 PY, APP, "--log", o.log, "--every", "0.3", "--sleep", "0.15",
			 "--duration", "0.7", NULL };
	ck_assert_int_eq(run_ls(&o, argv), 0);
	ls_test_out_free(&o);
}
END_TEST

/* A shell forks a shell that forks a Python grandchild (the "; true" keeps
 * each shell from exec'ing its last command), which lives 300 ms and blocks
 * 150 ms once: followed in the kernel from the fork on. */
START_TEST(test_short_lived_grandchild_is_caught)
{
	struct ls_test_out o = { 0 };
	char json[128], script[1024];

	ls_test_tmp(o.log, sizeof(o.log), "log");
	ls_test_tmp(json, sizeof(json), "json");
	snprintf(script, sizeof(script),
		 "/bin/sh -c '" PY " " APP " --log %s --every 0.1 --sleep 0.15 --duration 0.3; "
		 "true'; true", o.log);
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--json-out", json, "--",
			 "/bin/sh", "-c", script, NULL };
	ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_GATE);
	json_object *rep = load_json(json);
	json_object *slow = json_object_array_get_idx(ls_test_jget(rep, "slow"), 0);
	ck_assert_ptr_nonnull(slow);
	int pid = json_object_get_int(ls_test_jget(slow, "pid"));
	json_object *procs = ls_test_jget(rep, "processes");
	bool found = false;

	for (size_t i = 0; i < json_object_array_length(procs); i++) {
		json_object *p = json_object_array_get_idx(procs, i);

		if (json_object_get_int(ls_test_jget(p, "pid")) != pid)
			continue;
		found = true;
		ck_assert_ptr_nonnull(strstr(json_object_get_string(ls_test_jget(p, "cmdline")),
					     "blocking_sleep.py --log"));
	}
	ck_assert_msg(found, "the grandchild %d is not among the processes", pid);
	/* Three processes: sh, sh, python. */
	ck_assert_int_ge((int)json_object_array_length(procs), 3);
	json_object_put(rep);
	unlink(json);
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_killed_by_signal_exits_128_plus_n)
{
	struct ls_test_out o = { 0 };
	char *argv[] = { LOOPSCOPE, "run", "--", "/bin/sh", "-c", "kill -TERM $$", NULL };

	ck_assert_int_eq(run_ls(&o, argv), 128 + 15);
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_cmd_not_found_exits_127)
{
	struct ls_test_out o = { 0 };
	char *argv[] = { LOOPSCOPE, "run", "--", "/nonexistent/cmd", NULL };

	ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "/nonexistent/cmd: No such file or directory"));
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_unwritable_report_fails_before_cmd)
{
	struct ls_test_out o = { 0 };
	char marker[128];

	ls_test_tmp(marker, sizeof(marker), "marker");
	unlink(marker);
	char *argv[] = { LOOPSCOPE, "run", "--junit", "/nonexistent/dir/r.xml", "--", "/bin/touch",
			 marker, NULL };
	ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "cannot write report /nonexistent/dir/r.xml"));
	ck_assert_int_ne(access(marker, F_OK), 0); /* CMD never ran */
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_invalid_gate_value_exits_87)
{
	struct ls_test_out o = { 0 };
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "fast", "--", "/bin/true", NULL };
	char *argv2[] = { LOOPSCOPE, "run", "--max-slow", "-1", "--", "/bin/true", NULL };
	char *argv3[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", NULL };

	ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "invalid duration 'fast' for --fail-on-slow"));
	ls_test_out_free(&o);
	ck_assert_int_eq(run_ls(&o, argv2), LS_RUN_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "invalid count '-1' for --max-slow"));
	ls_test_out_free(&o);
	ck_assert_int_eq(run_ls(&o, argv3), LS_RUN_EXIT_ERROR);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "run needs a command"));
	ls_test_out_free(&o);
}
END_TEST

/* A slow callback that ran before precise mode's probes were in place (a
 * short test whose set-up lost the race on a loaded CI machine) still fails
 * the gate, as the busy period that holds it. The race is made certain: the
 * command stops loopscope (its parent) with SIGSTOP and has it continued
 * 1 s later, after the app's one 150 ms block; the app then idles 2 s, so
 * precise mode attaches to it while it lives. Before the fix, the busy
 * period was dropped as "a precise process's" and the gate passed. */
#define EARLY_APP                                                                         \
	"import asyncio, json, sys, time\n"                                               \
	"def block():\n"                                                                  \
	"    s = time.monotonic_ns(); t = time.perf_counter(); time.sleep(0.15)\n"       \
	"    d = int((time.perf_counter() - t) * 1e9)\n"                                  \
	"    open(sys.argv[1], 'a').write(json.dumps({'start_ns': s, 'duration_ns': d}) + '\\n')\n" \
	"async def main():\n"                                                             \
	"    await asyncio.sleep(0.05)\n"                                                 \
	"    asyncio.get_running_loop().call_soon(block)\n"                               \
	"    await asyncio.sleep(2.0)\n"                                                  \
	"asyncio.run(main())\n"

START_TEST(test_block_before_precise_attach_fails_the_gate)
{
	struct ls_test_out o = { 0 };
	char json[128], script[1024];

	ls_test_tmp(o.log, sizeof(o.log), "log");
	ls_test_tmp(json, sizeof(json), "json");
	snprintf(script, sizeof(script),
		 "kill -STOP $PPID; (sleep 1; kill -CONT $PPID) & exec " PY " -c \"$0\" %s",
		 o.log);
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--json-out", json, "--",
			 "/bin/sh", "-c", script, EARLY_APP, NULL };
	ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_GATE);

	json_object *app = load_json(o.log); /* one line: the one block */
	uint64_t bst = ls_test_ju64(app, "start_ns"), bdu = ls_test_ju64(app, "duration_ns");
	json_object *rep = load_json(json);
	json_object *slow = ls_test_jget(rep, "slow");
	ck_assert_int_eq(json_object_array_length(slow), 1);
	json_object *s = json_object_array_get_idx(slow, 0);
	ck_assert_str_eq(json_object_get_string(ls_test_jget(s, "kind")), "busy");
	/* The busy period holds the block: it starts before it (the poll's
	 * return) by at most the rest of that iteration, 20 ms with room for a
	 * loaded machine, and lasts at least as long. */
	uint64_t st = ls_test_ju64(s, "start_ns"), du = ls_test_ju64(s, "duration_ns");
	ck_assert_msg(st <= bst && bst - st < 20000000ULL,
		      "busy period starts %llu, block %llu", (unsigned long long)st,
		      (unsigned long long)bst);
	ck_assert_msg(du + 1000000ULL >= bdu, "busy %llu < block %llu",
		      (unsigned long long)du, (unsigned long long)bdu);
	json_object_put(rep);
	json_object_put(app);
	unlink(json);
	ls_test_out_free(&o);
}
END_TEST

/* The JUnit file is XML a real parser reads, with the failure in it; the
 * annotations have the documented form; the JSON matches the schema. */
START_TEST(test_reports_parse_and_validate)
{
	struct ls_test_out o = { 0 }, v = { 0 };
	char json[128], junit[128], code[1024];

	ls_test_tmp(o.log, sizeof(o.log), "log");
	ls_test_tmp(json, sizeof(json), "json");
	ls_test_tmp(junit, sizeof(junit), "junit");
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--json-out", json, "--junit",
			 junit, "--annotations", "github", "--", PY, APP, "--log", o.log,
			 "--every", "0.3", "--sleep", "0.15", "--duration", "0.7", NULL };
	ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_GATE);
	ck_assert_msg(strstr(o.stdout_text, "::error file=") &&
			      strstr(o.stdout_text, "blocking_sleep.py,line=") &&
			      strstr(o.stdout_text, "::blocking_sleep()"),
		      "annotations: %s", o.stdout_text);
	snprintf(code, sizeof(code),
		 "import json, sys, xml.etree.ElementTree as ET, jsonschema\n"
		 "root = ET.parse('%s').getroot()\n"
		 "fails = [f for f in root.findall('.//failure')\n"
		 "         if 'blocking_sleep()' in f.get('message')]\n"
		 "assert len(fails) >= 1, 'no failure naming blocking_sleep()'\n"
		 "schema = json.load(open('%s/docs/run-report.schema.json'))\n"
		 "jsonschema.validate(json.load(open('%s')), schema)\n"
		 "print('ok')\n", junit, LS_SOURCE_DIR, json);
	char *pyargv[] = { PY, "-c", code, NULL };
	ck_assert_msg(run_ls(&v, pyargv) == 0, "junit %s: %s; loopscope run said: %s", junit,
		      v.stderr_text, o.stderr_text);
	ck_assert_msg(strstr(v.stdout_text, "ok"), "validation: %s", v.stderr_text);
	ls_test_out_free(&v);
	unlink(json);
	unlink(junit);
	ls_test_out_free(&o);
}
END_TEST

/* The lag gate on a C loop (no Python: epoll-level gates still work). The
 * kernel wakes a 5 ms timer 50-100 us late here: a 1 us limit fails, a 1 s
 * limit passes. */
START_TEST(test_lag_gate_on_a_c_loop)
{
	struct ls_test_out o = { 0 };
	char *fail[] = { LOOPSCOPE, "run", "--fail-on-lag-p99", "1us", "--", REFLOOP,
			 "--duration", "1s", "timer tick every=5ms", NULL };
	char *pass[] = { LOOPSCOPE, "run", "--fail-on-lag-p99", "1s", "--", REFLOOP,
			 "--duration", "1s", "timer tick every=5ms", NULL };

	ck_assert_int_eq(run_ls(&o, fail), LS_RUN_EXIT_GATE);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "no Python process"));
	ls_test_out_free(&o);
	ck_assert_int_eq(run_ls(&o, pass), 0);
	ls_test_out_free(&o);
}
END_TEST

/* SIGTERM to loopscope reaches CMD (the reference loop stops cleanly on it
 * and exits 0), and the report still comes. */
START_TEST(test_sigterm_is_forwarded_to_cmd)
{
	struct ls_test_out o = { 0 };
	char line[256];
	char *argv[] = { LOOPSCOPE, "run", "--", REFLOOP, "--duration", "30s", "timer tick every=5ms",
			 NULL };
	int status;
	pid_t ls;

	ls_test_tmp(o.out, sizeof(o.out), "out");
	ls_test_tmp(o.err, sizeof(o.err), "err");
	ls = ls_test_spawn(argv, o.out, o.err);
	ck_assert_int_eq(ls_test_wait_line(o.out, "pid ", 10000, line, sizeof(line)), 0);
	kill(ls, SIGTERM);
	ck_assert_int_eq(ls_test_wait(ls, 10000, &status), 0);
	ck_assert_int_eq(status, 0);
	o.stdout_text = ls_test_slurp(o.out);
	o.stderr_text = ls_test_slurp(o.err);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "exited with 0"));
	ls_test_out_free(&o);
}
END_TEST

/* The CI example: the gate fails the pytest run and names the blocking test. */
START_TEST(test_ci_example_names_the_blocking_test)
{
	struct ls_test_out o = { 0 };
	char json[128];

	ls_test_tmp(json, sizeof(json), "json");
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--json-out", json, "--",
			 PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", CI_DIR, NULL };
	ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_GATE);
	json_object *rep = load_json(json), *slow = ls_test_jget(rep, "slow");
	ck_assert_int_eq((int)json_object_array_length(slow), 1);
	const char *test = json_object_get_string(
		ls_test_jget(json_object_array_get_idx(slow, 0), "test"));
	ck_assert_msg(test && !strcmp(test, "test_service.py::test_report_is_fast"), "test: %s",
		      test ? test : "(null)");
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "test_service.py::test_report_is_fast"));
	json_object_put(rep);
	unlink(json);
	ls_test_out_free(&o);
}
END_TEST

/* A sync pytest test that runs its own loop (asyncio.run) is not a Task of
 * pytest-asyncio: its slow callback is named by its stack, in precise mode
 * (a slow Task handler()) and in light mode (a busy period, whose name,
 * file and line are the culprit's frame: the time.sleep line). */
START_TEST(test_sync_test_named_by_its_stack)
{
	static const char *src =
		"import asyncio\n"
		"import time\n"
		"\n"
		"\n"
		"async def handler():\n"
		"    time.sleep(0.15)\n"
		"\n"
		"\n"
		"def test_runs_its_own_loop():\n"
		"    asyncio.run(handler())\n";
	const char *modes[] = { "precise", "light" };
	char dir[128], file[200], json[128];
	FILE *f;

	ls_test_tmp(dir, sizeof(dir), "pytestdir");
	unlink(dir); /* ls_test_tmp made a file of that name */
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(file, sizeof(file), "%s/test_sync_loop.py", dir);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fputs(src, f);
	fclose(f);
	/* What this test checks is naming, not the set-up race (that is
	 * test_block_before_precise_attach_fails_the_gate): a conftest that
	 * sleeps 1 s at collection gives precise mode's set-up (~0.2 s after
	 * exec here, more on a loaded machine) time to finish first. */
	snprintf(file, sizeof(file), "%s/conftest.py", dir);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fputs("import time\ntime.sleep(1.0)\n", f);
	fclose(f);
	snprintf(file, sizeof(file), "%s/test_sync_loop.py", dir);
	for (int m = 0; m < 2; m++) {
		struct ls_test_out o = { 0 };

		ls_test_tmp(json, sizeof(json), "json");
		char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--mode",
				 (char *)modes[m], "--json-out", json, "--", PY, "-m", "pytest",
				 "-q", "-p", "no:cacheprovider", file, NULL };
		ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_GATE);
		json_object *rep = load_json(json), *slow = ls_test_jget(rep, "slow");
		ck_assert_int_eq((int)json_object_array_length(slow), 1);
		json_object *e = json_object_array_get_idx(slow, 0);
		const char *test = json_object_get_string(ls_test_jget(e, "test"));
		const char *why = json_object_get_string(ls_test_jget(e, "why"));
		const char *name = json_object_get_string(ls_test_jget(e, "name"));

		ck_assert_msg(test && !strcmp(test, "test_sync_loop.py::test_runs_its_own_loop"),
			      "%s: test: %s", modes[m], test ? test : "(null)");
		ck_assert_msg(why && strstr(why, "blocked in clock_nanosleep <- handler test_sync_loop.py:6"),
			      "%s: why: %s", modes[m], why ? why : "(null)");
		if (m == 1) {
			ck_assert_str_eq(name, "busy period in handler()");
			ck_assert_int_eq(json_object_get_int(ls_test_jget(e, "line")), 6);
		} else {
			ck_assert_str_eq(name, "Task handler() test_sync_loop.py:5");
		}
		fprintf(stderr, "it_run: sync test, %s mode: %s, test %s, why: %.80s...\n", modes[m],
			name, test, why);
		json_object_put(rep);
		unlink(json);
		ls_test_out_free(&o);
	}
	/* the test, its conftest and pytest's __pycache__ */
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* JUnit (#17 item 6): two slow periods in two pytest tests are two failing
 * test cases, named as pytest names them, beside the gate's own; the file
 * validates against tests/junit.xsd (one result per test case). */
START_TEST(test_junit_case_per_pytest_test)
{
	static const char *src =
		"import asyncio\n"
		"import time\n"
		"\n"
		"\n"
		"async def handler():\n"
		"    time.sleep(0.15)\n"
		"\n"
		"\n"
		"def test_one():\n"
		"    asyncio.run(handler())\n"
		"\n"
		"\n"
		"def test_two():\n"
		"    asyncio.run(handler())\n"
		"\n"
		"\n"
		"def test_fast():\n"
		"    asyncio.run(asyncio.sleep(0.01))\n";
	struct ls_test_out o = { 0 }, v = { 0 };
	char dir[128], file[200], junit[128], code[1024];
	FILE *f;

	ls_test_tmp(dir, sizeof(dir), "pytestdir");
	unlink(dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(file, sizeof(file), "%s/test_two_slow.py", dir);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fputs(src, f);
	fclose(f);
	ls_test_tmp(junit, sizeof(junit), "junit");
	char *argv[] = { LOOPSCOPE, "run", "--fail-on-slow", "100ms", "--junit", junit, "--", PY,
			 "-m", "pytest", "-q", "-p", "no:cacheprovider", file, NULL };
	ck_assert_int_eq(run_ls(&o, argv), LS_RUN_EXIT_GATE);
	char *xargv[] = { "/usr/bin/xmllint", "--noout", "--schema",
			  LS_SOURCE_DIR "/tests/junit.xsd", junit, NULL };
	ck_assert_msg(run_ls(&v, xargv) == 0, "xmllint: %s", v.stderr_text);
	ls_test_out_free(&v);
	snprintf(code, sizeof(code),
		 "import xml.etree.ElementTree as ET\n"
		 "s = ET.parse('%s').getroot().find('testsuite')\n"
		 "assert (s.get('tests'), s.get('failures')) == ('3', '3'), s.attrib\n"
		 "cs = [(c.get('classname'), c.get('name'), len(c.findall('failure')))\n"
		 "      for c in s.findall('testcase')]\n"
		 "assert cs == [('loopscope', 'fail-on-slow 100ms', 1),\n"
		 "              ('test_two_slow', 'test_one', 1),\n"
		 "              ('test_two_slow', 'test_two', 1)], cs\n"
		 "print('ok')\n", junit);
	char *pyargv[] = { PY, "-c", code, NULL };
	ck_assert_msg(run_ls(&v, pyargv) == 0, "junit %s: %s; loopscope run said: %s", junit,
		      v.stderr_text, o.stderr_text);
	ck_assert_msg(strstr(v.stdout_text, "ok"), "junit: %s", v.stderr_text);
	ls_test_out_free(&v);
	ls_test_out_free(&o);
	unlink(junit);
	unlink(file);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_run");
	TCase *tc = tcase_create("run");

	if (access(PY, X_OK)) {
		fprintf(stderr, "it_run: SKIP: %s not installed\n", PY);
		return EXIT_SUCCESS;
	}
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_clean_app_passes_the_gate);
	tcase_add_test(tc, test_cmd_exit_code_passes_through);
	tcase_add_test(tc, test_150ms_block_fails_100ms_gate_and_names_callback);
	tcase_add_test(tc, test_allow_pattern_tolerates_the_known_spot);
	tcase_add_test(tc, test_max_slow_tolerates_n);
	tcase_add_test(tc, test_short_lived_grandchild_is_caught);
	tcase_add_test(tc, test_block_before_precise_attach_fails_the_gate);
	tcase_add_test(tc, test_killed_by_signal_exits_128_plus_n);
	tcase_add_test(tc, test_cmd_not_found_exits_127);
	tcase_add_test(tc, test_unwritable_report_fails_before_cmd);
	tcase_add_test(tc, test_invalid_gate_value_exits_87);
	tcase_add_test(tc, test_reports_parse_and_validate);
	tcase_add_test(tc, test_lag_gate_on_a_c_loop);
	tcase_add_test(tc, test_sigterm_is_forwarded_to_cmd);
	tcase_add_test(tc, test_ci_example_names_the_blocking_test);
	tcase_add_test(tc, test_sync_test_named_by_its_stack);
	tcase_add_test(tc, test_junit_case_per_pytest_test);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
