// SPDX-License-Identifier: MIT
/*
 * Integration: targets that try to hang or flood loopscope (issue #12).
 * Each case runs the real CLI against a hostile target and asserts that it
 * keeps its promises: -d ends the run, Ctrl-C ends it, interval lines keep
 * coming, and what was lost is counted.
 *
 * Bounds: a run of -d D must end within D + 5 s (attach's set-up takes ~1 s
 * here; the final drain is bounded at 50 ms a ring buffer); before the fix a
 * flood kept precise mode reading for as long as records came (> 12 s for
 * -d 5s). SIGINT must end it within 3 s.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "loopscope/loopscope.h"
#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define FLOOD LS_SOURCE_DIR "/examples/python/callback_flood.py"
#define PY "/usr/bin/python3.11"

static int count_lines(const char *path, const char *needle)
{
	char *text = ls_test_slurp(path), *p;
	int n = 0;

	for (p = text; p && (p = strstr(p, needle)); p++)
		n++;
	free(text);
	return n;
}

/* Precise mode, every callback slow (threshold 1 ns), a callback storm:
 * -d 3s ends the run in time, with interval lines while it runs. */
START_TEST(test_precise_flood_keeps_duration_and_intervals)
{
	char spid[32], tout[128];
	char *targv[] = { PY, FLOOD, NULL };
	struct ls_test_out o = { 0 };
	pid_t t;

	if (access(PY, X_OK)) {
		fprintf(stderr, "it_hostile: SKIP %s: not installed\n", PY);
		return;
	}
	t = ls_test_start_target(targv, tout, sizeof(tout), spid, sizeof(spid), 10000);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "--mode", "precise", "--threshold", "1ns",
			 "-d", "3s", "-i", "1s", "--json", NULL };
	uint64_t t0 = ls_sys_now_ns();

	ck_assert_int_eq(ls_test_run_capture(&o, argv, 30000), 0);
	uint64_t took = ls_sys_now_ns() - t0;

	ck_assert_msg(took < 8000000000ULL, "attach -d 3s took %.1f s", took / 1e9);
	ck_assert_int_ge(count_lines(o.out, "\"type\":\"interval\""), 2);
	json_object *rep = ls_test_json_last(o.out, "report");
	ck_assert_ptr_nonnull(rep);
	json_object_put(rep);
	ls_test_out_free(&o);
	ls_test_kill(t);
	unlink(tout);
}
END_TEST

/* The same flood without -d: SIGINT ends the run and prints the report. */
START_TEST(test_precise_flood_obeys_sigint)
{
	char spid[32], tout[128], lout[] = "/tmp/ls-hostile-XXXXXX";
	char *targv[] = { PY, FLOOD, NULL };
	pid_t t, ls;
	int status = -1, fd;

	if (access(PY, X_OK)) {
		fprintf(stderr, "it_hostile: SKIP %s: not installed\n", PY);
		return;
	}
	t = ls_test_start_target(targv, tout, sizeof(tout), spid, sizeof(spid), 10000);
	fd = mkstemp(lout);
	ck_assert_int_ge(fd, 0);
	close(fd);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "--mode", "precise", "--threshold", "1ns",
			 "--json", NULL };
	ls = ls_test_spawn(argv, lout, NULL);
	ck_assert_int_gt(ls, 0);
	ck_assert_int_eq(ls_test_wait_substr(lout, "\"type\":\"interval\"", 15000, NULL, 0), 0);
	uint64_t t0 = ls_sys_now_ns();

	kill(ls, SIGINT);
	ck_assert_int_eq(ls_test_wait(ls, 10000, &status), 0);
	uint64_t took = ls_sys_now_ns() - t0;

	ck_assert_msg(took < 3000000000ULL, "SIGINT to exit took %.1f s", took / 1e9);
	ck_assert_int_eq(status, 0);
	json_object *rep = ls_test_json_last(lout, "report");
	ck_assert_ptr_nonnull(rep);
	json_object_put(rep);
	ls_test_kill(t);
	unlink(tout);
	unlink(lout);
}
END_TEST

/* --btf naming something that is not BTF (a device, a FIFO that would
 * block an open without O_NONBLOCK): exit 5 with one line, at once. */
START_TEST(test_btf_that_is_not_btf_exits_5)
{
	static const char *bad[] = { "/dev/zero", "/tmp/ls-hostile-fifo.btf" };
	char self[32];

	snprintf(self, sizeof(self), "%d", (int)getpid());
	unlink(bad[1]);
	ck_assert_int_eq(mkfifo(bad[1], 0600), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ls_test_out o = { 0 };
		char *argv[] = { LOOPSCOPE, "attach", "-p", self, "--btf", (char *)bad[i], "-d", "1s",
				 NULL };

		ck_assert_int_eq(ls_test_run_capture(&o, argv, 10000), LS_EXIT_UNSUPPORTED);
		ck_assert_msg(strstr(o.stderr_text, "is not a BTF file"), "%s", o.stderr_text);
		ck_assert_ptr_eq(strchr(o.stderr_text, '\n'), o.stderr_text + strlen(o.stderr_text) - 1);
		ls_test_out_free(&o);
	}
	unlink(bad[1]);
}
END_TEST

/* A target that exits before it ever polls: the run ends with exit 6
 * ("a target exited"), not 7 ("never polled"). */
START_TEST(test_target_gone_before_polling_exits_6)
{
	char *sleeper[] = { "/bin/sleep", "0.5", NULL };
	struct ls_test_out o = { 0 };
	char spid[32];
	pid_t t = ls_test_spawn(sleeper, NULL, NULL);

	ck_assert_int_gt(t, 0);
	snprintf(spid, sizeof(spid), "%d", (int)t);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-d", "10s", "-q", NULL };

	ck_assert_int_eq(ls_test_run_capture(&o, argv, 30000), LS_EXIT_TARGET_EXITED);
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "no loop thread seen in any target before it exited"));
	ls_test_out_free(&o);
	ls_test_kill(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_hostile");
	TCase *tc = tcase_create("hostile");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_precise_flood_keeps_duration_and_intervals);
	tcase_add_test(tc, test_precise_flood_obeys_sigint);
	tcase_add_test(tc, test_btf_that_is_not_btf_exits_5);
	tcase_add_test(tc, test_target_gone_before_polling_exits_6);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
