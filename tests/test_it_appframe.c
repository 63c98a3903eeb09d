// SPDX-License-Identifier: MIT
/*
 * Integration (#17 items 2 and 3): slow events named by their application
 * frame, and --allow deciding the same in light and precise mode.
 *
 * examples/python/aio_handlers.py serves two aiohttp handlers that block
 * the loop in different code under one framework wrapper
 * (RequestHandler._handle_request): /report encodes JSON on CPU (the
 * innermost frames are the standard library's json), /db sleeps in
 * aio_helpers.slow_query. Each request logs its handler's own measurement
 * and the line its time goes to (the truth).
 *
 *  - handlers_split: under `attach --mode precise`, every logged request
 *    is one slow callback, all named by the same wrapper, whose app_frame
 *    is the logged function, file and line; the callback table has one row
 *    per (wrapper, application function) whose count is the number of
 *    requests of that handler. On Debian's python3-aiohttp (host 3.11) and
 *    sid's (3.14, 3.15; chrooted and as containers).
 *  - cwd_rule_and_app_path: with aio_helpers imported from a folder
 *    outside the app's (its working directory), /db is named by db's own
 *    call of it; with --app-path on that folder, by the helper, and /report
 *    by nothing (strict). The same interpreters.
 *  - allow_same_in_both_modes: `run --fail-on-slow 100ms --allow
 *    'aio_helpers.py:*'` passes in light and in precise mode (the culprit
 *    is in the helper module); '--allow nomatch.py:*' fails in both, and
 *    its GitHub annotation points at the blocking line (aio_helpers.py:7)
 *    in both.
 *
 * Interpreters without aiohttp are skipped, each named with the reason.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define APP LS_SOURCE_DIR "/examples/python/aio_handlers.py"
#define HELPERS LS_SOURCE_DIR "/examples/python/aio_helpers.py"
#define HOST_PY "/usr/bin/python3.11"

static char aio_py[16][512]; /* interpreters with aiohttp */
static char aio_name[16][64];
static int naio;

static void find_aiohttp(void)
{
	struct ls_test_pythons sid;
	char *check[] = { HOST_PY, "-c", "import aiohttp", NULL };

	if (access(HOST_PY, X_OK))
		fprintf(stderr, "it_appframe: SKIP Debian 3.11: %s not installed\n", HOST_PY);
	else if (ls_test_run(check, NULL, NULL, 30000))
		fprintf(stderr, "it_appframe: SKIP Debian 3.11: python3-aiohttp not installed "
			"(scripts/setup.sh installs it)\n");
	else {
		snprintf(aio_py[naio], sizeof(aio_py[0]), HOST_PY);
		snprintf(aio_name[naio++], sizeof(aio_name[0]), "debian-3.11");
	}
	ls_test_find_sid_pythons("it_appframe", 12, LS_TEST_PY_FULL, &sid);
	for (int i = 0; i < sid.n && naio < 16; i++) {
		char *c2[] = { sid.path[i], "-c", "import aiohttp", NULL };

		if (ls_test_run(c2, NULL, NULL, 60000)) {
			fprintf(stderr, "it_appframe: SKIP %s: python3-aiohttp does not import there\n",
				sid.name[i]);
			continue;
		}
		snprintf(aio_py[naio], sizeof(aio_py[0]), "%s", sid.path[i]);
		snprintf(aio_name[naio++], sizeof(aio_name[0]), "%s", sid.name[i]);
	}
}

struct req {
	char name[16], function[64], file[512], caller_file[512];
	int line, caller_line;
	uint64_t start_ns, duration_ns;
};

static int load_reqs(const char *path, struct req *r, int max)
{
	FILE *f = fopen(path, "r");
	char buf[2048];
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (n < max && fgets(buf, sizeof(buf), f)) {
		json_object *o = json_tokener_parse(buf);

		ck_assert_ptr_nonnull(o);
		snprintf(r[n].name, sizeof(r[n].name), "%s", json_object_get_string(ls_test_jget(o, "name")));
		snprintf(r[n].function, sizeof(r[n].function), "%s",
			 json_object_get_string(ls_test_jget(o, "function")));
		snprintf(r[n].file, sizeof(r[n].file), "%s", json_object_get_string(ls_test_jget(o, "file")));
		r[n].line = json_object_get_int(ls_test_jget(o, "line"));
		snprintf(r[n].caller_file, sizeof(r[n].caller_file), "%s",
			 ls_test_jget(o, "caller_file") ? json_object_get_string(ls_test_jget(o, "caller_file")) : "");
		r[n].caller_line = json_object_get_int(ls_test_jget(o, "caller_line"));
		r[n].start_ns = ls_test_ju64(o, "start_ns");
		r[n].duration_ns = ls_test_ju64(o, "duration_ns");
		json_object_put(o);
		n++;
	}
	fclose(f);
	return n;
}

static const char *jstr(json_object *o, const char *k)
{
	const char *s = json_object_get_string(ls_test_jget(o, k));

	return s ? s : "";
}

/* The app under `loopscope attach --mode precise --json`; its report.
 * helpers: --helpers-dir for the app (NULL: none); app_path: --app-path
 * for loopscope (NULL: none). */
static json_object *attach_app_with(const char *py, const char *tag, const char *applog,
				    const char *helpers, const char *app_path)
{
	char appout[128], out[128], err[128], spid[32], line[256], wait_file[128];
	char *app_argv[] = { (char *)py, APP, "--rounds", "3", "--block", "0.15", "--log",
			     (char *)applog, "--wait-file", wait_file,
			     helpers ? "--helpers-dir" : NULL, (char *)helpers, NULL };
	pid_t app, ls;
	int status;

	ls_test_tmp(out, sizeof(out), "out");
	ls_test_tmp(err, sizeof(err), "err");
	ls_test_tmp(wait_file, sizeof(wait_file), "go");
	unlink(wait_file);
	app = ls_test_start_target(app_argv, appout, sizeof(appout), spid, sizeof(spid), 30000);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-d", "30s", "--json", "-q", "--mode",
			 "precise", "--threshold", "100ms", app_path ? "--app-path" : NULL,
			 (char *)app_path, NULL };

	ls = ls_test_spawn(argv, out, err);
	ck_assert_int_gt(ls, 0);
	if (ls_test_wait_substr(err, "attached", 20000, line, sizeof(line))) {
		char *e = ls_test_slurp(err);

		ls_test_kill(app);
		ls_test_kill(ls);
		ck_abort_msg("%s: loopscope did not attach: %s", tag, e ? e : "");
	}
	FILE *f = fopen(wait_file, "w");

	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(ls_test_wait(app, 60000, &status), 0);
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(ls_test_wait(ls, 20000, &status), 0);
	if (status != 6) { /* the target exited: the report, exit 6 */
		char *e = ls_test_slurp(err);

		ck_abort_msg("%s: loopscope exited %d: %s", tag, status, e ? e : "");
	}
	json_object *rep = ls_test_json_last(out, "report");

	ck_assert_ptr_nonnull(rep);
	unlink(wait_file);
	unlink(appout);
	unlink(out);
	unlink(err);
	return rep;
}

static json_object *attach_app(const char *py, const char *tag, const char *applog)
{
	return attach_app_with(py, tag, applog, NULL, NULL);
}

/* The slow callback of rep holding request q (its interval inside). */
static json_object *callback_of(json_object *rep, const struct req *q)
{
	json_object *slow = ls_test_jget(rep, "slow_callbacks"), *hit = NULL;

	for (size_t k = 0; slow && k < json_object_array_length(slow); k++) {
		json_object *e = json_object_array_get_idx(slow, k);
		uint64_t s = ls_test_ju64(e, "start_ns"), d = ls_test_ju64(e, "duration_ns");

		if (s <= q->start_ns && q->start_ns + q->duration_ns <= s + d + 1000000)
			hit = e;
	}
	return hit;
}

/* Whether app_frame af is function fn at file:line. */
static bool frame_is(json_object *af, const char *fn, const char *file, int line)
{
	return af && !strcmp(jstr(af, "function"), fn) && !strcmp(jstr(af, "file"), file) &&
	       json_object_get_int(ls_test_jget(af, "line")) == line;
}

START_TEST(test_handlers_split)
{
	const char *py = aio_py[_i], *tag = aio_name[_i];
	char applog[128], wrapper[600] = "";
	struct req r[16];
	json_object *rep, *slow, *rows;
	int n, want_rows[2] = { 0, 0 }, got_rows[2] = { 0, 0 };

	ls_test_tmp(applog, sizeof(applog), "aiolog");
	rep = attach_app(py, tag, applog);
	n = load_reqs(applog, r, 16);
	ck_assert_msg(n == 6, "%s: %d requests logged, want 6", tag, n);
	slow = ls_test_jget(rep, "slow_callbacks");
	rows = ls_test_jget(rep, "callbacks");
	ck_assert_ptr_nonnull(slow);
	ck_assert_ptr_nonnull(rows);
	for (int i = 0; i < n; i++) {
		json_object *hit = NULL;

		for (size_t k = 0; k < json_object_array_length(slow); k++) {
			json_object *e = json_object_array_get_idx(slow, k);
			uint64_t s = ls_test_ju64(e, "start_ns"), d = ls_test_ju64(e, "duration_ns");

			/* The handler's own interval lies inside its callback. */
			if (s <= r[i].start_ns && r[i].start_ns + r[i].duration_ns <= s + d + 1000000)
				hit = e;
		}
		ck_assert_msg(hit, "%s: request %s at %llu: no slow callback holds it: %s", tag, r[i].name,
			      (unsigned long long)r[i].start_ns, json_object_to_json_string(slow));
		/* One wrapper names them all ... */
		if (!wrapper[0])
			snprintf(wrapper, sizeof(wrapper), "%s", jstr(hit, "name"));
		ck_assert_msg(!strcmp(wrapper, jstr(hit, "name")), "%s: callbacks %s and %s", tag, wrapper,
			      jstr(hit, "name"));
		/* ... the application frame tells them apart: the handler's own
		 * function, file and line. */
		json_object *af = ls_test_jget(hit, "app_frame");

		ck_assert_msg(af && !strcmp(jstr(af, "function"), r[i].function) &&
			      !strcmp(jstr(af, "file"), r[i].file) &&
			      json_object_get_int(ls_test_jget(af, "line")) == r[i].line,
			      "%s: request %s: app_frame %s, want %s %s:%d", tag, r[i].name,
			      json_object_to_json_string(af), r[i].function, r[i].file, r[i].line);
		want_rows[strcmp(r[i].name, "report") == 0]++;
	}
	/* (the wrapper: RequestHandler._handle_request in aiohttp 3.8,
	 * RequestHandler.start in 3.14) */
	ck_assert_msg(strstr(wrapper, "RequestHandler."), "%s: wrapper %s", tag, wrapper);
	/* The table: one row per handler under the wrapper, with its count. */
	for (size_t k = 0; k < json_object_array_length(rows); k++) {
		json_object *e = json_object_array_get_idx(rows, k), *af = ls_test_jget(e, "app_frame");
		uint64_t count = ls_test_ju64(ls_test_jget(e, "duration"), "count");

		if (!af || strcmp(jstr(e, "name"), wrapper))
			continue;
		if (!strcmp(jstr(af, "function"), "report")) {
			ck_assert_msg(!got_rows[1]++, "%s: two report rows", tag);
			ck_assert_msg(count == (uint64_t)want_rows[1], "%s: report row count %llu, want %d",
				      tag, (unsigned long long)count, want_rows[1]);
		} else if (!strcmp(jstr(af, "function"), "slow_query")) {
			ck_assert_msg(!got_rows[0]++, "%s: two slow_query rows", tag);
			ck_assert_msg(count == (uint64_t)want_rows[0], "%s: slow_query row count %llu, want %d",
				      tag, (unsigned long long)count, want_rows[0]);
		}
	}
	ck_assert_msg(got_rows[0] == 1 && got_rows[1] == 1, "%s: rows %d %d: %s", tag, got_rows[0],
		      got_rows[1], json_object_to_json_string(rows));
	ck_assert_int_eq(ls_test_ju64(rep, "callback_app_rows_overflowed"), 0);
	json_object_put(rep);
	unlink(applog);
}
END_TEST

/* The rule's other branches: the working directory (the app's folder)
 * wins over the fallback, also for a chrooted target (whose
 * /proc/PID/cwd reads with its root in front): with aio_helpers imported
 * from a folder outside it, /db's application frame is db's own call of
 * slow_query, not the helper; --app-path HELPERS_DIR (strict) names the
 * helper, and nothing for /report (no frame there). */
START_TEST(test_cwd_rule_and_app_path)
{
	const char *py = aio_py[_i], *tag = aio_name[_i];
	char applog[128], dir[64] = "/tmp/loopscope-test-helpers.XXXXXX", copy[128];
	char *text = ls_test_slurp(HELPERS);
	struct req r[16];
	FILE *f;

	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(copy, sizeof(copy), "%s/aio_helpers.py", dir);
	f = fopen(copy, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	free(text);
	/* Check runs each test in its own process: the cwd is this test's. */
	ck_assert_int_eq(chdir(LS_SOURCE_DIR "/examples/python"), 0);
	for (int pass = 0; pass < 2; pass++) {
		json_object *rep;
		int n;

		ls_test_tmp(applog, sizeof(applog), "aiolog");
		rep = attach_app_with(py, tag, applog, dir, pass ? dir : NULL);
		n = load_reqs(applog, r, 16);
		ck_assert_msg(n == 6, "%s: %d requests logged, want 6", tag, n);
		for (int i = 0; i < n; i++) {
			json_object *hit = callback_of(rep, &r[i]), *af;
			bool db = !strcmp(r[i].name, "db");

			ck_assert_msg(hit, "%s: request %s: no slow callback holds it", tag, r[i].name);
			af = ls_test_jget(hit, "app_frame");
			if (!pass && db)
				ck_assert_msg(frame_is(af, "db", r[i].caller_file, r[i].caller_line),
					      "%s: cwd rule: /db app_frame %s, want db %s:%d", tag,
					      json_object_to_json_string(af), r[i].caller_file, r[i].caller_line);
			else if (!pass || db)
				ck_assert_msg(frame_is(af, r[i].function, r[i].file, r[i].line),
					      "%s: %s: %s app_frame %s, want %s %s:%d", tag,
					      pass ? "--app-path" : "cwd rule", r[i].name,
					      json_object_to_json_string(af), r[i].function, r[i].file, r[i].line);
			else
				ck_assert_msg(!af, "%s: --app-path %s: /report app_frame %s, want null", tag,
					      dir, json_object_to_json_string(af));
		}
		json_object_put(rep);
		unlink(applog);
	}
	unlink(copy);
	rmdir(dir);
}
END_TEST

/* `loopscope run` in mode with allow; its exit code, report and stdout. */
static int run_gate(const char *mode, const char *allow, json_object **rep, char **stdout_text)
{
	char jout[128];
	struct ls_test_out o = { 0 };
	char *argv[] = { LOOPSCOPE, "run", "--mode", (char *)mode, "--fail-on-slow", "100ms",
			 "--allow", (char *)allow, "--json-out", jout, "--annotations", "github", "-q",
			 "--", HOST_PY, APP, "--only", "db", "--rounds", "2", NULL };
	int rc;

	ls_test_tmp(jout, sizeof(jout), "runjson");
	rc = ls_test_run_capture(&o, argv, 60000);
	*rep = json_object_from_file(jout);
	*stdout_text = strdup(o.stdout_text ? o.stdout_text : "");
	ck_assert_msg(*rep, "run --mode %s: no JSON report; stderr: %s", mode, o.stderr_text);
	ls_test_out_free(&o);
	unlink(jout);
	return rc;
}

START_TEST(test_allow_same_in_both_modes)
{
	static const char *modes[] = { "light", "precise" };
	char want_ann[700];

	if (!naio || strcmp(aio_py[0], HOST_PY)) {
		fprintf(stderr, "it_appframe: SKIP allow_same_in_both_modes: no aiohttp for %s\n", HOST_PY);
		return;
	}
	/* The blocking line: time.sleep in aio_helpers.slow_query. */
	char *text = ls_test_slurp(HELPERS), *p;
	int line = 1;

	ck_assert_ptr_nonnull(text);
	p = strstr(text, "# QUERY_LINE");
	ck_assert_ptr_nonnull(p);
	for (char *c = text; c < p; c++)
		line += *c == '\n';
	free(text);
	snprintf(want_ann, sizeof(want_ann), "aio_helpers.py,line=%d,title=", line);
	for (int m = 0; m < 2; m++) {
		json_object *rep, *slow;
		char *out;
		int rc = run_gate(modes[m], "aio_helpers.py:*", &rep, &out);
		int nslow = 0;

		slow = ls_test_jget(rep, "slow");
		for (size_t k = 0; k < json_object_array_length(slow); k++) {
			json_object *e = json_object_array_get_idx(slow, k);

			if (ls_test_ju64(e, "duration_ns") <= 100000000ULL)
				continue;
			nslow++;
			ck_assert_msg(json_object_get_boolean(ls_test_jget(e, "allowed")),
				      "--mode %s: not allowed: %s", modes[m], json_object_to_json_string(e));
		}
		ck_assert_msg(nslow >= 2, "--mode %s: %d slow events, want the 2 blocks: %s", modes[m],
			      nslow, json_object_to_json_string(slow));
		ck_assert_msg(rc == 0, "--mode %s --allow 'aio_helpers.py:*': exit %d, want 0", modes[m], rc);
		json_object_put(rep);
		free(out);

		rc = run_gate(modes[m], "nomatch.py:*", &rep, &out);
		ck_assert_msg(rc == 86, "--mode %s --allow 'nomatch.py:*': exit %d, want 86", modes[m], rc);
		/* The annotation points at the blocking line in both modes. */
		ck_assert_msg(strstr(out, "::error file=") && strstr(out, want_ann),
			      "--mode %s: annotations %s, want %s", modes[m], out, want_ann);
		json_object_put(rep);
		free(out);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_appframe");
	TCase *tc = tcase_create("appframe");

	find_aiohttp();
	tcase_set_timeout(tc, 120);
	if (naio) {
		tcase_add_loop_test(tc, test_handlers_split, 0, naio);
		tcase_add_loop_test(tc, test_cwd_rule_and_app_path, 0, naio);
	} else
		fprintf(stderr, "it_appframe: SKIP handlers_split: no interpreter with aiohttp\n");
	tcase_add_test(tc, test_allow_same_in_both_modes);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
