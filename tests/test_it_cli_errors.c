// SPDX-License-Identifier: MIT
/*
 * Integration: bad input and clean-up of `loopscope attach`. Each case checks
 * the documented exit code and that stderr says why in one line; the
 * signal cases check that the report is printed, that the run held its BPF
 * links, and that nothing outlives it (pinned objects, tracefs probe events).
 * Whether the session code itself detaches is tested in process by
 * it_loop_session: at exit the kernel drops unpinned links anyway.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/loopscope.h"
#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define REFLOOP LS_BINARY_DIR "/examples/refloop/refloop"

/* One loopscope run, captured. */
static int run_ls(struct ls_test_out *o, char **argv)
{
	return ls_test_run_capture(o, argv, 30000);
}

/* stderr holds exactly one line containing `needle`. */
static void assert_one_line(const struct ls_test_out *o, const char *needle)
{
	const char *e = o->stderr_text;

	ck_assert_ptr_nonnull(e);
	ck_assert_msg(strstr(e, needle), "stderr lacks '%s': %s", needle, e);
	ck_assert_msg(strchr(e, '\n') == e + strlen(e) - 1, "stderr is not one line: %s", e);
	ck_assert_msg(!strncmp(e, "loopscope: ", 11), "stderr does not start with 'loopscope: ': %s", e);
}

START_TEST(test_no_such_pid_exits_3)
{
	struct ls_test_out o = { 0 };
	char *argv[] = { LOOPSCOPE, "attach", "-p", "999999999", NULL };

	/* 999999999 > pid_max (4194304 at most on Linux): never a process. */
	ck_assert_int_eq(run_ls(&o, argv), LS_EXIT_NO_PROCESS);
	assert_one_line(&o, "pid 999999999: no such process");
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_invalid_duration_exits_2)
{
	static const char *bad[] = { "5", "abc", "-5ms", "10parsecs", "" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ls_test_out o = { 0 };
		char self[32];
		char *argv[] = { LOOPSCOPE, "attach", "-p", self, "-d", (char *)bad[i], NULL };

		snprintf(self, sizeof(self), "%d", getpid());
		ck_assert_int_eq(run_ls(&o, argv), LS_EXIT_USAGE);
		assert_one_line(&o, "invalid duration");
		ls_test_out_free(&o);
	}
}
END_TEST

START_TEST(test_invalid_pid_list_exits_2)
{
	static const char *bad[] = { "abc", "12,", ",12", "0", "-4", "12,x" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ls_test_out o = { 0 };
		char *argv[] = { LOOPSCOPE, "attach", "-p", (char *)bad[i], NULL };

		ck_assert_int_eq(run_ls(&o, argv), LS_EXIT_USAGE);
		assert_one_line(&o, "invalid pid list");
		ls_test_out_free(&o);
	}
}
END_TEST

START_TEST(test_missing_pid_and_unknown_command_exit_2)
{
	struct ls_test_out o = { 0 };
	char *a1[] = { LOOPSCOPE, "attach", NULL };
	char *a2[] = { LOOPSCOPE, "frobnicate", NULL };

	ck_assert_int_eq(run_ls(&o, a1), LS_EXIT_USAGE);
	assert_one_line(&o, "needs -p PID");
	ls_test_out_free(&o);
	ck_assert_int_eq(run_ls(&o, a2), LS_EXIT_USAGE);
	assert_one_line(&o, "unknown command");
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_help_and_version_exit_0)
{
	struct ls_test_out o = { 0 };
	char *a1[] = { LOOPSCOPE, "attach", "--help", NULL };
	char *a2[] = { LOOPSCOPE, "--version", NULL };

	ck_assert_int_eq(run_ls(&o, a1), 0);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "Exit codes"));
	ls_test_out_free(&o);
	ck_assert_int_eq(run_ls(&o, a2), 0);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "loopscope "));
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_not_root_exits_4)
{
	struct ls_test_out o = { 0 };
	char self[32];
	/* setpriv (util-linux) drops to nobody with no capabilities. */
	char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			 "--inh-caps=-all", LOOPSCOPE, "attach", "-p", self, "-d", "1s", NULL };

	snprintf(self, sizeof(self), "%d", getpid());
	ck_assert_int_eq(run_ls(&o, argv), LS_EXIT_PERMISSION);
	assert_one_line(&o, "need root or CAP_BPF");
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_kernel_without_btf_exits_5)
{
	struct ls_test_out o = { 0 };
	char self[32];
	char *argv[] = { LOOPSCOPE, "attach", "-p", self, "--btf", "/nonexistent/vmlinux", NULL };

	snprintf(self, sizeof(self), "%d", getpid());
	ck_assert_int_eq(run_ls(&o, argv), LS_EXIT_UNSUPPORTED);
	assert_one_line(&o, "kernel has no BTF");
	ls_test_out_free(&o);
}
END_TEST

START_TEST(test_process_that_never_polls_exits_7)
{
	struct ls_test_out o = { 0 };
	char *sleeper[] = { "/bin/sleep", "30", NULL };
	pid_t pid = ls_test_spawn(sleeper, NULL, NULL);
	char spid[32];
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-d", "1s", "-q", NULL };

	snprintf(spid, sizeof(spid), "%d", pid);
	ck_assert_int_eq(run_ls(&o, argv), LS_EXIT_NO_LOOP);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "no loop thread seen"));
	ck_assert_ptr_nonnull(strstr(o.stderr_text, "no loop thread seen in any target"));
	ls_test_out_free(&o);
	ls_test_kill(pid);
}
END_TEST

START_TEST(test_target_exit_mid_run_reports_and_exits_6)
{
	char spid[32], lout[128];
	struct ls_test_out o = { 0 };
	char *loop_argv[] = { REFLOOP, "--duration", "1500ms", "timer tick every=5ms", NULL };
	pid_t loop;
	char *leftovers = ls_test_bpf_leftovers();

	loop = ls_test_start_target(loop_argv, lout, sizeof(lout), spid, sizeof(spid), 5000);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-d", "20s", "--json", "-q", NULL };

	uint64_t t0 = ls_sys_now_ns();
	/* The loop exits after 1.5 s and stays our zombie: loopscope must take
	 * a zombie for an exited process and end the run early. */
	ck_assert_int_eq(run_ls(&o, argv), LS_EXIT_TARGET_EXITED);
	ck_assert_uint_lt(ls_sys_now_ns() - t0, 10000000000ULL);
	json_object *rep = ls_test_json_last(o.out, "report");
	ck_assert_ptr_nonnull(rep);
	json_object *exited = ls_test_jget(rep, "exited");
	ck_assert_int_eq((int)json_object_array_length(exited), 1);
	ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(exited, 0)), loop);
	json_object *t0j = json_object_array_get_idx(ls_test_jget(rep, "threads"), 0);
	ck_assert_uint_gt(ls_test_ju64(t0j, "polls"), 50);
	json_object_put(rep);
	ls_test_out_free(&o);
	ls_test_kill(loop);
	unlink(lout);
	char *after = ls_test_bpf_leftovers();
	ck_assert_str_eq(after, leftovers);
	free(after);
	free(leftovers);
}
END_TEST

/* --mode precise on a process that is not Python: one line, epoll level. */
START_TEST(test_precise_on_non_python_falls_back_with_one_line)
{
	char spid[32], lout[128];
	struct ls_test_out o = { 0 };
	char *loop_argv[] = { REFLOOP, "--duration", "20s", "timer tick every=5ms", NULL };
	pid_t loop;

	loop = ls_test_start_target(loop_argv, lout, sizeof(lout), spid, sizeof(spid), 5000);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "--mode", "precise", "-d", "500ms", "-q",
			 NULL };
	ck_assert_int_eq(run_ls(&o, argv), 0);
	ck_assert_msg(strstr(o.stderr_text, "not a Python process") &&
			      strstr(o.stderr_text, "epoll level only"),
		      "stderr: %s", o.stderr_text);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "iterations"));
	ls_test_out_free(&o);
	ls_test_kill(loop);
	unlink(lout);
}
END_TEST

/* A full ring buffer: counted and reported. A callback storm with a 1 us
 * threshold makes every busy period a slow event (hundreds of thousands a
 * second); loopscope is stopped for a second, so the 256 KiB buffer
 * (~6500 events) overflows whatever the machine's speed. */
START_TEST(test_full_ring_buffer_is_counted_and_reported)
{
	char line[256], spid[32], lout[128];
	struct ls_test_out o = { 0 };
	char *loop_argv[] = { REFLOOP, "--duration", "20s", "soonchain storm count=100000000", NULL };
	int status;
	pid_t loop, ls;

	loop = ls_test_start_target(loop_argv, lout, sizeof(lout), spid, sizeof(spid), 5000);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-d", "3s", "-q", "--threshold", "1us",
			 NULL };
	ls_test_tmp(o.out, sizeof(o.out), "out");
	ls_test_tmp(o.err, sizeof(o.err), "err");
	ls = ls_test_spawn(argv, o.out, o.err);
	ck_assert_int_eq(ls_test_wait_line(o.err, "loopscope: attached", 10000, line, sizeof(line)), 0);
	kill(ls, SIGSTOP);
	usleep(1000 * 1000);
	kill(ls, SIGCONT);
	ck_assert_int_eq(ls_test_wait(ls, 20000, &status), 0);
	ck_assert_int_eq(status, 0);
	o.stdout_text = ls_test_slurp(o.out);
	ck_assert_msg(strstr(o.stdout_text, "LOST ") && strstr(o.stdout_text, "ring buffer was full"),
		      "no lost-events line: %.2000s", o.stdout_text);
	/* Thousands of slow periods: the text lists the longest 50. */
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "(the 50 longest shown;"));
	ls_test_out_free(&o);
	ls_test_kill(loop);
	unlink(lout);
}
END_TEST

static void signal_case(int sig)
{
	char line[64], spid[32], lout[128];
	struct ls_test_out o = { 0 };
	char *loop_argv[] = { REFLOOP, "--duration", "20s", "timer tick every=5ms", NULL };
	char *leftovers = ls_test_bpf_leftovers(), *after;
	int status;
	pid_t loop, ls;

	loop = ls_test_start_target(loop_argv, lout, sizeof(lout), spid, sizeof(spid), 5000);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-i", "500ms", NULL };

	ls_test_tmp(o.out, sizeof(o.out), "out");
	ls_test_tmp(o.err, sizeof(o.err), "err");
	ls = ls_test_spawn(argv, o.out, o.err);
	/* Measuring once an interval line names the loop's thread: it polled. */
	ck_assert_int_eq(ls_test_wait_substr(o.out, " refloop ", 10000, line, sizeof(line)), 0);
	/* The six epoll tracepoints and the two scheduler ones at least. */
	ck_assert_int_ge(ls_test_bpf_links_of(ls), 8);
	kill(ls, sig);
	ck_assert_int_eq(ls_test_wait(ls, 10000, &status), 0);
	ck_assert_int_eq(status, 0);
	o.stdout_text = ls_test_slurp(o.out);
	o.stderr_text = ls_test_slurp(o.err);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "== loopscope report"));
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "iterations"));
	after = ls_test_bpf_leftovers();
	ck_assert_str_eq(after, leftovers);
	free(after);
	free(leftovers);
	ls_test_out_free(&o);
	ls_test_kill(loop);
	unlink(lout);
}

START_TEST(test_sigint_prints_report_and_detaches)
{
	signal_case(SIGINT);
}
END_TEST

START_TEST(test_sigterm_prints_report_and_detaches)
{
	signal_case(SIGTERM);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_cli_errors");
	TCase *tc = tcase_create("errors");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_no_such_pid_exits_3);
	tcase_add_test(tc, test_invalid_duration_exits_2);
	tcase_add_test(tc, test_invalid_pid_list_exits_2);
	tcase_add_test(tc, test_missing_pid_and_unknown_command_exit_2);
	tcase_add_test(tc, test_help_and_version_exit_0);
	tcase_add_test(tc, test_not_root_exits_4);
	tcase_add_test(tc, test_kernel_without_btf_exits_5);
	tcase_add_test(tc, test_process_that_never_polls_exits_7);
	tcase_add_test(tc, test_target_exit_mid_run_reports_and_exits_6);
	tcase_add_test(tc, test_precise_on_non_python_falls_back_with_one_line);
	tcase_add_test(tc, test_full_ring_buffer_is_counted_and_reported);
	tcase_add_test(tc, test_sigint_prints_report_and_detaches);
	tcase_add_test(tc, test_sigterm_prints_report_and_detaches);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
