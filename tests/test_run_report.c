// SPDX-License-Identifier: MIT
/* Suite "run_report": the reports of `loopscope run` (agent/gate/run_report.c),
 * read back by real parsers: the JSON against docs/run-report.schema.json
 * (python3-jsonschema), the JUnit XML by xmllint and python3's xml.etree,
 * the GitHub annotations compared line by line. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#include "loopscope/run.h"
#include "../agent/gate/report.h" /* ls_report_slow_message */
#include "spawn.h"

#define MS 1000000ULL
#define PY "/usr/bin/python3" /* Debian's, where python3-jsonschema lives */

static struct ls_run_result *result_with_failures(void)
{
	struct ls_run_result *r = calloc(1, sizeof(*r));
	struct ls_run_slow *s;

	ck_assert_ptr_nonnull(r);
	snprintf(r->cmd, sizeof(r->cmd), "python3 -m pytest -q examples/ci");
	r->cmd_exit = 0;
	r->start_ns = 1000 * MS;
	r->end_ns = 3500 * MS; /* 2.5 s */
	r->fail_on_slow_ns = 100 * MS;
	r->fail_on_lag_p99_ns = 50 * MS;
	r->max_slow = -1;
	r->allow[0] = "*warmup*";
	r->nallow = 1;

	r->procs[0] = (struct ls_run_process){ .pid = 1000, .ppid = 999, .precise = true,
					       .loop_threads = 1, .lag_p99_ns = 62 * MS,
					       .lag_p99_tid = 1000 };
	snprintf(r->procs[0].cmdline, sizeof(r->procs[0].cmdline), "python3 -m pytest -q examples/ci");
	snprintf(r->procs[0].python, sizeof(r->procs[0].python), "3.11");
	r->procs[1] = (struct ls_run_process){ .pid = 1010, .ppid = 1000, .precise = false,
					       .loop_threads = 1, .lag_p99_ns = 3 * MS,
					       .lag_p99_tid = 1011 };
	snprintf(r->procs[1].cmdline, sizeof(r->procs[1].cmdline), "node server.js");
	/* not UTF-8: the JSON and XML must still parse */
	r->procs[2] = (struct ls_run_process){ .pid = 1020, .ppid = 1000 };
	snprintf(r->procs[2].cmdline, sizeof(r->procs[2].cmdline), "bad\xff\x01name");
	r->nprocs = 3;

	s = &r->slow[0]; /* counted */
	*s = (struct ls_run_slow){ .kind = LS_RUN_SLOW_CALLBACK, .line = 12, .pid = 1000,
				   .tid = 1000, .start_ns = 1500 * MS, .duration_ns = 150300 * 1000 };
	snprintf(s->name, sizeof(s->name), "Task test_blocks()");
	snprintf(s->file, sizeof(s->file), "tests/test_app.py");
	snprintf(s->test, sizeof(s->test), "tests/test_app.py::test_blocks");
	s = &r->slow[1]; /* allowed */
	*s = (struct ls_run_slow){ .kind = LS_RUN_SLOW_CALLBACK, .line = 3, .pid = 1000,
				   .tid = 1000, .start_ns = 1200 * MS, .duration_ns = 120 * MS,
				   .allowed = true };
	snprintf(s->name, sizeof(s->name), "Task warmup()");
	snprintf(s->file, sizeof(s->file), "tests/conftest.py");
	s = &r->slow[2]; /* busy period, no file: counted */
	*s = (struct ls_run_slow){ .kind = LS_RUN_SLOW_BUSY, .pid = 1010, .tid = 1011,
				   .start_ns = 2000 * MS, .duration_ns = 200 * MS };
	snprintf(s->name, sizeof(s->name), "busy period");
	s = &r->slow[3]; /* name and file needing escapes: counted */
	*s = (struct ls_run_slow){ .kind = LS_RUN_SLOW_CALLBACK, .line = 7, .pid = 1000,
				   .tid = 1001, .start_ns = 2500 * MS, .duration_ns = 101 * MS };
	snprintf(s->name, sizeof(s->name), "Handle weird:name,100%%\nsecond\r");
	snprintf(s->file, sizeof(s->file), "dir:x,y/t%%.py");
	s = &r->slow[4]; /* exactly at the gate: not above it, not counted */
	*s = (struct ls_run_slow){ .kind = LS_RUN_SLOW_CALLBACK, .line = 20, .pid = 1000,
				   .tid = 1000, .start_ns = 3000 * MS, .duration_ns = 100 * MS };
	snprintf(s->name, sizeof(s->name), "Task at_gate()");
	snprintf(s->file, sizeof(s->file), "tests/test_app.py");
	r->nslow = 5;
	r->slow_not_kept = 0;
	r->lost_events = 2;

	r->slow_counted = 3;
	r->slow_gate_failed = true;
	r->lag_gate_failed = true;
	r->exit_code = LS_RUN_EXIT_GATE;
	return r;
}

/* Run a python3 script with args; its stdout as a malloc'd string. */
static char *python(const char *script, const char *a1, const char *a2)
{
	char out[128], err[128];
	char *argv[] = { PY, "-c", (char *)script, (char *)a1, (char *)a2, NULL };
	char *o, *e;
	int rc;

	ls_test_tmp(out, sizeof(out), "rr-out");
	ls_test_tmp(err, sizeof(err), "rr-err");
	rc = ls_test_run(argv, out, err, 60000);
	o = ls_test_slurp(out);
	e = ls_test_slurp(err);
	ck_assert_msg(rc == 0, "python3 exited %d: %s", rc, e ? e : "");
	free(e);
	unlink(out);
	unlink(err);
	return o;
}

static const char *const validate_py =
	"import json, sys, jsonschema\n"
	"schema = json.load(open(sys.argv[1]))\n"
	"cls = jsonschema.validators.validator_for(schema)\n"
	"cls.check_schema(schema)\n"
	"doc = json.load(open(sys.argv[2], encoding='utf-8'))\n"
	"errs = sorted(cls(schema).iter_errors(doc), key=str)\n"
	"for e in errs: print('INVALID', list(e.absolute_path), e.message)\n"
	"print('OK' if not errs else 'BAD')\n";

START_TEST(test_json_validates_against_schema)
{
	struct ls_run_result *r = result_with_failures();
	char path[128];
	char *out, *text;
	json_object *o, *slow, *s, *procs, *g, *v;

	ls_test_tmp(path, sizeof(path), "rr-json");
	ck_assert_int_eq(ls_run_write_json(r, path), 0);
	out = python(validate_py, LS_SOURCE_DIR "/docs/run-report.schema.json", path);
	ck_assert_msg(out && strcmp(out, "OK\n") == 0, "schema: %s", out ? out : "(none)");
	free(out);

	text = ls_test_slurp(path);
	o = json_tokener_parse(text);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_object_get_string(ls_test_jget(o, "cmd")), r->cmd);
	ck_assert_uint_eq(ls_test_ju64(o, "duration_ns"), 2500 * MS);
	g = ls_test_jget(o, "gates");
	ck_assert_uint_eq(ls_test_ju64(g, "fail_on_slow_ns"), 100 * MS);
	ck_assert(json_object_object_get_ex(g, "max_slow", &v) && v == NULL);
	procs = ls_test_jget(o, "processes");
	ck_assert_int_eq(json_object_array_length(procs), 3);
	ck_assert_str_eq(json_object_get_string(ls_test_jget(json_object_array_get_idx(procs, 0),
							     "python")), "3.11");
	ck_assert_str_eq(json_object_get_string(ls_test_jget(json_object_array_get_idx(procs, 1),
							     "mode")), "epoll");
	ck_assert_str_eq(json_object_get_string(ls_test_jget(json_object_array_get_idx(procs, 2),
							     "cmdline")), "bad??name");
	slow = ls_test_jget(o, "slow");
	ck_assert_int_eq(json_object_array_length(slow), 5);
	s = json_object_array_get_idx(slow, 0);
	ck_assert_str_eq(json_object_get_string(ls_test_jget(s, "test")),
			 "tests/test_app.py::test_blocks");
	ck_assert_int_eq(json_object_get_int(ls_test_jget(s, "line")), 12);
	s = json_object_array_get_idx(slow, 2);
	ck_assert_str_eq(json_object_get_string(ls_test_jget(s, "kind")), "busy");
	ck_assert(json_object_object_get_ex(s, "file", &v) && v == NULL);
	ck_assert(json_object_object_get_ex(s, "line", &v) && v == NULL);
	s = json_object_array_get_idx(slow, 1);
	ck_assert(json_object_get_boolean(ls_test_jget(s, "allowed")));
	v = ls_test_jget(o, "verdict");
	ck_assert_int_eq(json_object_get_int(ls_test_jget(v, "exit_code")), LS_RUN_EXIT_GATE);
	ck_assert_int_eq(json_object_get_int(ls_test_jget(v, "slow_counted")), 3);
	json_object_put(o);
	free(text);
	unlink(path);
	free(r);
}
END_TEST

/* The schema rejects what it should: a missing field, an extra one. */
START_TEST(test_schema_is_strict)
{
	static const char *const py =
		"import json, sys, jsonschema\n"
		"schema = json.load(open(sys.argv[1]))\n"
		"doc = json.load(open(sys.argv[2]))\n"
		"v = jsonschema.validators.validator_for(schema)(schema)\n"
		"bad = 0\n"
		"d = json.loads(json.dumps(doc)); del d['verdict']; bad += v.is_valid(d)\n"
		"d = json.loads(json.dumps(doc)); d['extra'] = 1; bad += v.is_valid(d)\n"
		"d = json.loads(json.dumps(doc)); d['slow'][0]['kind'] = 'x'; bad += v.is_valid(d)\n"
		"d = json.loads(json.dumps(doc)); d['processes'][0]['pid'] = '1'; bad += v.is_valid(d)\n"
		"print('STRICT' if bad == 0 and v.is_valid(doc) else 'LAX')\n";
	struct ls_run_result *r = result_with_failures();
	char path[128], *out;

	ls_test_tmp(path, sizeof(path), "rr-json");
	ck_assert_int_eq(ls_run_write_json(r, path), 0);
	out = python(py, LS_SOURCE_DIR "/docs/run-report.schema.json", path);
	ck_assert_str_eq(out, "STRICT\n");
	free(out);
	unlink(path);
	free(r);
}
END_TEST

/* JUnit as a JSON summary: suite attributes, then each testcase's name,
 * failure messages and types, and system-out. */
static const char *const junit_py =
	"import json, sys, xml.etree.ElementTree as ET\n"
	"root = ET.parse(sys.argv[1]).getroot()\n"
	"assert root.tag == 'testsuites', root.tag\n"
	"suites = root.findall('testsuite')\n"
	"assert len(suites) == 1\n"
	"s = suites[0]\n"
	"out = {'name': s.get('name'), 'tests': int(s.get('tests')),\n"
	"       'failures': int(s.get('failures')), 'time': float(s.get('time')), 'cases': []}\n"
	"for c in s.findall('testcase'):\n"
	"    so = c.find('system-out')\n"
	"    out['cases'].append({'classname': c.get('classname'), 'name': c.get('name'),\n"
	"        'failures': [{'message': f.get('message'), 'type': f.get('type')}\n"
	"                     for f in c.findall('failure')],\n"
	"        'out': so.text if so is not None else ''})\n"
	"print(json.dumps(out))\n";

static json_object *junit_summary(const struct ls_run_result *r)
{
	char path[128], out[128], err[128];
	char *argv[] = { "/usr/bin/xmllint", "--noout", "--schema", LS_SOURCE_DIR "/tests/junit.xsd",
			 path, NULL };
	char *text;
	json_object *o;

	ls_test_tmp(path, sizeof(path), "rr-junit");
	ck_assert_int_eq(ls_run_write_junit(r, path), 0);
	ls_test_tmp(out, sizeof(out), "rr-out");
	ls_test_tmp(err, sizeof(err), "rr-err");
	{ /* libxml2-utils: a test dependency */
		int rc = ls_test_run(argv, out, err, 30000);
		char *e = ls_test_slurp(err);

		ck_assert_msg(rc == 0, "xmllint: %s", e ? e : "");
		free(e);
	}
	unlink(out);
	unlink(err);
	text = python(junit_py, path, NULL);
	o = json_tokener_parse(text);
	ck_assert_msg(o != NULL, "bad summary: %s", text);
	free(text);
	unlink(path);
	return o;
}

static const char *jstr(json_object *o, const char *k)
{
	const char *s = json_object_get_string(ls_test_jget(o, k));
	return s ? s : "";
}

/* One test case per gate, each with at most one failure, then one per
 * offending pytest test and one per counted event outside a test (#17
 * item 6); the file validates against tests/junit.xsd. */
START_TEST(test_junit_counts_and_messages)
{
	struct ls_run_result *r = result_with_failures();
	json_object *o = junit_summary(r), *cases, *c, *f;

	ck_assert_str_eq(jstr(o, "name"), "loopscope");
	ck_assert_int_eq(json_object_get_int(ls_test_jget(o, "tests")), 5);
	ck_assert_int_eq(json_object_get_int(ls_test_jget(o, "failures")), 5);
	ck_assert(json_object_get_double(ls_test_jget(o, "time")) == 2.5);
	cases = ls_test_jget(o, "cases");
	ck_assert_int_eq(json_object_array_length(cases), 5);

	c = json_object_array_get_idx(cases, 0);
	ck_assert_str_eq(jstr(c, "classname"), "loopscope");
	ck_assert_str_eq(jstr(c, "name"), "fail-on-slow 100ms");
	f = ls_test_jget(c, "failures");
	ck_assert_int_eq(json_object_array_length(f), 1);
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "message"),
			 "3 slow events above 100.0 ms");
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "type"), "fail-on-slow");
	ck_assert_msg(strstr(jstr(c, "out"), "Task warmup() ran 120.0 ms at tests/conftest.py:3") &&
			      strstr(jstr(c, "out"), "(allowed)"),
		      "system-out: %s", jstr(c, "out"));
	ck_assert_msg(!strstr(jstr(c, "out"), "test_blocks"), "counted event in system-out");

	c = json_object_array_get_idx(cases, 1);
	ck_assert_str_eq(jstr(c, "name"), "fail-on-lag-p99 50ms");
	f = ls_test_jget(c, "failures");
	ck_assert_int_eq(json_object_array_length(f), 1);
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "message"),
			 "pid 1000 (python3 -m pytest -q examples/ci): loop lag p99 62.0 ms on "
			 "thread 1000, above 50.0 ms");
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "type"), "loop-lag");

	c = json_object_array_get_idx(cases, 2); /* the pytest test, as pytest names it */
	ck_assert_str_eq(jstr(c, "classname"), "tests.test_app");
	ck_assert_str_eq(jstr(c, "name"), "test_blocks");
	f = ls_test_jget(c, "failures");
	ck_assert_int_eq(json_object_array_length(f), 1);
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "message"),
			 "Task test_blocks() ran 150.3 ms at tests/test_app.py:12 "
			 "(pid 1000: python3 -m pytest -q examples/ci), thread 1000 "
			 "in test tests/test_app.py::test_blocks");
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "type"), "slow-callback");

	c = json_object_array_get_idx(cases, 3); /* events outside a test: one case each */
	ck_assert_str_eq(jstr(c, "classname"), "loopscope");
	ck_assert_str_eq(jstr(c, "name"), "busy period, pid 1010, at +1.000 s");
	f = ls_test_jget(c, "failures");
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "message"),
			 "busy period ran 200.0 ms (pid 1010: node server.js), thread 1011");
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "type"), "slow-busy-period");
	c = json_object_array_get_idx(cases, 4);
	f = ls_test_jget(c, "failures");
	/* the newline survives as an attribute character reference; \r too */
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "message"),
			 "Handle weird:name,100%\nsecond\r ran 101.0 ms at dir:x,y/t%.py:7 "
			 "(pid 1000: python3 -m pytest -q examples/ci), thread 1001");
	json_object_put(o);
	free(r);
}
END_TEST

/* Two violations in two pytest tests (and two in one): two failing test
 * cases named as pytest names them, beside the gate's one. */
START_TEST(test_junit_one_case_per_pytest_test)
{
	struct ls_run_result *r = result_with_failures();
	json_object *o, *cases, *c, *f;
	struct ls_run_slow *s;

	r->fail_on_lag_p99_ns = 0;
	r->lag_gate_failed = false;
	r->nslow = 0;
	for (int i = 0; i < 3; i++) {
		s = &r->slow[r->nslow++];
		*s = (struct ls_run_slow){ .kind = LS_RUN_SLOW_CALLBACK, .line = 10 + i, .pid = 1000,
					   .tid = 1000, .start_ns = (1100 + 300 * i) * MS,
					   .duration_ns = (150 + i) * MS };
		snprintf(s->name, sizeof(s->name), "Task t%d()", i);
		snprintf(s->file, sizeof(s->file), "tests/test_app.py");
		snprintf(s->test, sizeof(s->test), i == 1 ? "tests/test_app.py::TestX::test_two[a::b]"
						       : "tests/test_app.py::test_one");
	}
	r->slow_counted = 3;
	o = junit_summary(r);
	ck_assert_int_eq(json_object_get_int(ls_test_jget(o, "tests")), 3);
	ck_assert_int_eq(json_object_get_int(ls_test_jget(o, "failures")), 3);
	cases = ls_test_jget(o, "cases");
	ck_assert_int_eq(json_object_array_length(cases), 3);
	ck_assert_str_eq(jstr(json_object_array_get_idx(cases, 0), "name"), "fail-on-slow 100ms");
	c = json_object_array_get_idx(cases, 1);
	ck_assert_str_eq(jstr(c, "classname"), "tests.test_app");
	ck_assert_str_eq(jstr(c, "name"), "test_one");
	f = ls_test_jget(c, "failures");
	ck_assert_int_eq(json_object_array_length(f), 1);
	ck_assert_msg(!strncmp(jstr(json_object_array_get_idx(f, 0), "message"),
			       "2 slow events, the longest: Task t2() ran 152.0 ms", 48),
		      "message: %s", jstr(json_object_array_get_idx(f, 0), "message"));
	c = json_object_array_get_idx(cases, 2);
	ck_assert_str_eq(jstr(c, "classname"), "tests.test_app.TestX");
	ck_assert_str_eq(jstr(c, "name"), "test_two[a::b]");
	ck_assert_int_eq(json_object_array_length(ls_test_jget(c, "failures")), 1);
	json_object_put(o);
	free(r);
}
END_TEST

START_TEST(test_junit_without_gates_is_one_passing_report)
{
	struct ls_run_result *r = result_with_failures();
	json_object *o, *c;

	r->fail_on_slow_ns = 0;
	r->fail_on_lag_p99_ns = 0;
	r->max_slow = -1;
	r->slow_gate_failed = r->lag_gate_failed = false;
	r->exit_code = 0;
	o = junit_summary(r);
	ck_assert_int_eq(json_object_get_int(ls_test_jget(o, "tests")), 1);
	ck_assert_int_eq(json_object_get_int(ls_test_jget(o, "failures")), 0);
	c = json_object_array_get_idx(ls_test_jget(o, "cases"), 0);
	ck_assert_str_eq(jstr(c, "name"), "report");
	ck_assert_int_eq(json_object_array_length(ls_test_jget(c, "failures")), 0);
	ck_assert_msg(strstr(jstr(c, "out"), "Task test_blocks() ran 150.3 ms") &&
			      strstr(jstr(c, "out"), "busy period ran 200.0 ms"),
		      "system-out: %s", jstr(c, "out"));
	json_object_put(o);
	free(r);
}
END_TEST

START_TEST(test_junit_max_slow_gate)
{
	struct ls_run_result *r = result_with_failures();
	json_object *o, *cases, *c, *f;

	r->fail_on_lag_p99_ns = 0;
	r->lag_gate_failed = false;
	r->max_slow = 2; /* 3 counted */
	o = junit_summary(r);
	/* the two gates and the three counted events */
	ck_assert_int_eq(json_object_get_int(ls_test_jget(o, "tests")), 5);
	ck_assert_int_eq(json_object_get_int(ls_test_jget(o, "failures")), 5);
	cases = ls_test_jget(o, "cases");
	c = json_object_array_get_idx(cases, 1);
	ck_assert_str_eq(jstr(c, "name"), "max-slow 2");
	f = ls_test_jget(c, "failures");
	ck_assert_int_eq(json_object_array_length(f), 1);
	ck_assert_str_eq(jstr(json_object_array_get_idx(f, 0), "message"),
			 "3 slow events counted, more than max-slow 2");
	json_object_put(o);
	free(r);
}
END_TEST

static char *capture(void (*fn)(const struct ls_run_result *, FILE *),
		     const struct ls_run_result *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	fn(r, f);
	fclose(f);
	return buf;
}

START_TEST(test_annotations_exact)
{
	struct ls_run_result *r = result_with_failures();
	char *out = capture(ls_run_print_annotations, r);

	ck_assert_str_eq(
		out,
		"::error file=tests/test_app.py,line=12,title=loopscope slow callback::"
		"Task test_blocks() ran 150.3 ms in test tests/test_app.py::test_blocks "
		"(pid 1000: python3 -m pytest -q examples/ci)\n"
		"::error title=loopscope busy period::"
		"busy period ran 200.0 ms (pid 1010: node server.js)\n"
		"::error file=dir%3Ax%2Cy/t%25.py,line=7,title=loopscope slow callback::"
		"Handle weird:name,100%25%0Asecond%0D ran 101.0 ms "
		"(pid 1000: python3 -m pytest -q examples/ci)\n"
		"::error title=loopscope loop lag::"
		"pid 1000 (python3 -m pytest -q examples/ci): loop lag p99 62.0 ms on thread "
		"1000, above 50.0 ms\n");
	free(out);

	/* absolute paths under $GITHUB_WORKSPACE become relative to it */
	snprintf(r->slow[0].file, sizeof(r->slow[0].file), "/src/repo/tests/test_app.py");
	setenv("GITHUB_WORKSPACE", "/src/repo/", 1);
	out = capture(ls_run_print_annotations, r);
	ck_assert_msg(strncmp(out, "::error file=tests/test_app.py,line=12,", 39) == 0, "%s", out);
	free(out);
	setenv("GITHUB_WORKSPACE", "/src/rep", 1);
	out = capture(ls_run_print_annotations, r);
	ck_assert_msg(strncmp(out, "::error file=/src/repo/tests/test_app.py,", 41) == 0, "%s",
		      out);
	free(out);
	unsetenv("GITHUB_WORKSPACE");
	snprintf(r->slow[0].file, sizeof(r->slow[0].file), "tests/test_app.py");

	/* #17 item 3: at the blocking line (the application frame), the
	 * test in the message; the JUnit message says both. */
	snprintf(r->slow[0].app_function, sizeof(r->slow[0].app_function), "block");
	snprintf(r->slow[0].app_file, sizeof(r->slow[0].app_file), "tests/helpers.py");
	r->slow[0].app_line = 5;
	out = capture(ls_run_print_annotations, r);
	{
		static const char want[] =
			"::error file=tests/helpers.py,line=5,title=loopscope slow callback::"
			"Task test_blocks() ran 150.3 ms in test tests/test_app.py::test_blocks (";

		ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "%s", out);
	}
	free(out);
	{
		char m[2048];

		ls_report_slow_message(r, &r->slow[0], m, sizeof(m));
		ck_assert_msg(strstr(m, "at tests/test_app.py:12 \u2192 block helpers.py:5 (pid 1000") &&
			      strstr(m, "in test tests/test_app.py::test_blocks"), "%s", m);
	}
	r->slow[0].app_file[0] = '\0';

	/* gates that passed: nothing to annotate; tolerated by --max-slow: warnings */
	r->slow_gate_failed = r->lag_gate_failed = false;
	r->fail_on_lag_p99_ns = 0;
	r->max_slow = 5;
	out = capture(ls_run_print_annotations, r);
	ck_assert_msg(strncmp(out, "::warning file=tests/test_app.py,line=12,", 41) == 0, "%s",
		      out);
	ck_assert_ptr_null(strstr(out, "::error"));
	free(out);
	r->max_slow = -1;
	r->fail_on_slow_ns = 0;
	out = capture(ls_run_print_annotations, r);
	ck_assert_str_eq(out, "");
	free(out);
	free(r);
}
END_TEST

START_TEST(test_summary_mentions_everything)
{
	struct ls_run_result *r = result_with_failures();
	char cwd[200], *out;

	/* an absolute file under the current directory is shown relative */
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	snprintf(r->slow[0].file, sizeof(r->slow[0].file), "%s/tests/test_app.py", cwd);
	out = capture(ls_run_print_summary, r);
	ck_assert_msg(!strstr(out, cwd) || !strcmp(cwd, "/"), "absolute path in:\n%s", out);
	static const char *const want[] = {
		"loopscope run: python3 -m pytest -q examples/ci",
		"exited with 0 after 2.50 s",
		"pid 1000",
		"CPython 3.11, precise mode",
		"node server.js",
		"epoll level",
		"150.3 ms",
		"Task test_blocks()",
		"tests/test_app.py:12",
		"test tests/test_app.py::test_blocks",
		"Task warmup()",
		"(allowed)",
		"busy period",
		"fail-on-slow 100ms: FAIL",
		"fail-on-lag-p99 50ms: FAIL",
		"2 events lost",
		"exit 86: the slow and lag gates failed",
		/* #17 item 8: processes without a loop are counted, not listed */
		"processes (3): 2 with an event loop, listed; 1 without one",
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(strstr(out, want[i]), "missing \"%s\" in:\n%s", want[i], out);
	ck_assert_msg(!strstr(out, "pid 1020"), "a process without a loop listed:\n%s", out);
	free(out);

	r->slow_gate_failed = r->lag_gate_failed = false;
	r->exit_code = 0;
	out = capture(ls_run_print_summary, r);
	ck_assert_msg(strstr(out, "fail-on-slow 100ms: PASS") &&
			      strstr(out, "exit 0: the command succeeded and no gate failed"),
		      "%s", out);
	free(out);

	r->cmd_exit = -1;
	r->cmd_signal = 9;
	r->exit_code = 137;
	out = capture(ls_run_print_summary, r);
	ck_assert_msg(strstr(out, "killed by signal 9") && strstr(out, "exit 137: "), "%s", out);
	free(out);
	free(r);
}
END_TEST

START_TEST(test_check_writable)
{
	struct ls_run_result *r = result_with_failures();
	char path[128];
	FILE *f;

	ck_assert_int_eq(ls_run_check_writable("/nonexistent/dir/x.xml"), -ENOENT);
	ck_assert_int_eq(ls_run_write_json(r, "/nonexistent/dir/x.json"), -ENOENT);
	free(r); /* the ASan build (scripts/fuzz.sh) checks for leaks */
	ls_test_tmp(path, sizeof(path), "rr-w");
	f = fopen(path, "w");
	fputs("old content", f);
	fclose(f);
	ck_assert_int_eq(ls_run_check_writable(path), 0);
	f = fopen(path, "r");
	ck_assert_int_eq(fgetc(f), EOF); /* truncated */
	fclose(f);
	unlink(path);
	ck_assert_int_eq(ls_run_check_writable(path), 0); /* created */
	ck_assert_int_eq(access(path, F_OK), 0);
	unlink(path);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("run_report");
	TCase *tc = tcase_create("run_report");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_json_validates_against_schema);
	tcase_add_test(tc, test_schema_is_strict);
	tcase_add_test(tc, test_junit_counts_and_messages);
	tcase_add_test(tc, test_junit_one_case_per_pytest_test);
	tcase_add_test(tc, test_junit_without_gates_is_one_passing_report);
	tcase_add_test(tc, test_junit_max_slow_gate);
	tcase_add_test(tc, test_annotations_exact);
	tcase_add_test(tc, test_summary_mentions_everything);
	tcase_add_test(tc, test_check_writable);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
