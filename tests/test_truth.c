// SPDX-License-Identifier: MIT
/* Unit: the reference loop's truth-log parser and the quantities derived
 * from it, on hand-made logs whose answers are known. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pythons.h"
#include "spawn.h"
#include "truth.h"

static void write_file(char *path, size_t len, const char *text)
{
	FILE *f;

	ls_test_tmp(path, len, "truthlog");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* Three polls: busy periods 1000..1500 (500) and 3000..3100 (100); a timer
 * due at 2000 dispatched at 2600 (600 late), another on time. */
static const char *LOG =
	"{\"ev\":\"start\",\"pid\":42,\"tid\":43,\"poll\":\"epoll_wait\",\"clock\":\"CLOCK_MONOTONIC\"}\n"
	"{\"ev\":\"poll\",\"enter_ns\":100,\"exit_ns\":1000,\"timeout_ns\":-1,\"nevents\":1}\n"
	"{\"ev\":\"callback\",\"name\":\"a\",\"start_ns\":1010,\"end_ns\":1400}\n"
	"{\"ev\":\"poll\",\"enter_ns\":1500,\"exit_ns\":3000,\"timeout_ns\":500000,\"nevents\":0}\n"
	"{\"ev\":\"timer\",\"name\":\"t\",\"deadline_ns\":2000,\"dispatch_ns\":2600}\n"
	"{\"ev\":\"timer\",\"name\":\"u\",\"deadline_ns\":3050,\"dispatch_ns\":3050}\n"
	"{\"ev\":\"poll\",\"enter_ns\":3100,\"exit_ns\":3200,\"timeout_ns\":0,\"nevents\":0}\n"
	"{\"ev\":\"end\",\"polls\":3,\"callbacks\":1}\n";

START_TEST(test_load_reads_every_record)
{
	char path[128];
	struct ls_truth t;

	write_file(path, sizeof(path), LOG);
	ck_assert_int_eq(ls_truth_load(path, &t), 0);
	ck_assert_int_eq(t.pid, 42);
	ck_assert_int_eq(t.tid, 43);
	ck_assert_str_eq(t.poll_kind, "epoll_wait");
	ck_assert_uint_eq(t.npolls, 3);
	ck_assert_int_eq(t.polls[0].timeout_ns, -1);
	ck_assert_uint_eq(t.polls[1].timeout_ns, 500000);
	ck_assert_uint_eq(t.ncallbacks, 1);
	ck_assert_str_eq(t.callbacks[0].name, "a");
	ck_assert_uint_eq(t.ntimers, 2);
	ck_assert_int_eq(t.complete, 1);
	ls_truth_free(&t);
	unlink(path);
}
END_TEST

START_TEST(test_derived_quantities_are_exact)
{
	char path[128];
	struct ls_truth t;
	struct ls_truth_busy *b;
	uint64_t *late;
	size_t n;

	write_file(path, sizeof(path), LOG);
	ck_assert_int_eq(ls_truth_load(path, &t), 0);
	ck_assert_uint_eq(ls_truth_count_polls(&t, 0, 5000), 3);
	ck_assert_uint_eq(ls_truth_count_polls(&t, 1500, 3100), 2);
	ck_assert_uint_eq(ls_truth_count_polls(&t, 1501, 3099), 0);
	n = ls_truth_busy_periods(&t, 0, 5000, 0, &b);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(b[0].start_ns, 1000);
	ck_assert_uint_eq(b[0].duration_ns, 500);
	ck_assert_uint_eq(b[1].duration_ns, 100);
	free(b);
	n = ls_truth_busy_periods(&t, 0, 5000, 100, &b); /* strictly longer */
	ck_assert_uint_eq(n, 1);
	free(b);
	n = ls_truth_busy_periods(&t, 1600, 5000, 0, &b); /* by the end */
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(b[0].start_ns, 3000);
	free(b);
	n = ls_truth_timer_lateness(&t, 0, 5000, &late);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(ls_truth_percentile(late, n, 100), 600);
	ck_assert_uint_eq(ls_truth_percentile(late, n, 50), 0);
	free(late);
	ls_truth_free(&t);
	unlink(path);
}
END_TEST

START_TEST(test_percentile_is_nearest_rank)
{
	uint64_t v[] = { 5, 1, 4, 2, 3, 10, 9, 8, 7, 6 };

	ck_assert_uint_eq(ls_truth_percentile(v, 10, 0), 1);
	ck_assert_uint_eq(ls_truth_percentile(v, 10, 10), 1);
	ck_assert_uint_eq(ls_truth_percentile(v, 10, 11), 2);
	ck_assert_uint_eq(ls_truth_percentile(v, 10, 50), 5);
	ck_assert_uint_eq(ls_truth_percentile(v, 10, 99), 10);
	ck_assert_uint_eq(ls_truth_percentile(v, 0, 50), 0);
}
END_TEST

START_TEST(test_malformed_line_names_file_and_line)
{
	char path[128], want[160];
	struct ls_truth t;

	write_file(path, sizeof(path),
		   "{\"ev\":\"poll\",\"enter_ns\":1,\"exit_ns\":2,\"timeout_ns\":0,\"nevents\":0}\n"
		   "{\"ev\":\"poll\",\"enter_ns\":\"x\"}\n");
	ck_assert_int_eq(ls_truth_load(path, &t), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: missing or mistyped field", path);
	ck_assert_str_eq(t.error, want);
	ls_truth_free(&t);
	unlink(path);

	write_file(path, sizeof(path), "not json\n");
	ck_assert_int_eq(ls_truth_load(path, &t), -EINVAL);
	ck_assert_ptr_nonnull(strstr(t.error, ":1: not a JSON object"));
	ls_truth_free(&t);
	unlink(path);
}
END_TEST

START_TEST(test_unterminated_last_line_is_ignored)
{
	char path[128];
	struct ls_truth t;

	write_file(path, sizeof(path),
		   "{\"ev\":\"poll\",\"enter_ns\":1,\"exit_ns\":2,\"timeout_ns\":0,\"nevents\":0}\n"
		   "{\"ev\":\"poll\",\"enter_n");
	ck_assert_int_eq(ls_truth_load(path, &t), 0);
	ck_assert_uint_eq(t.npolls, 1);
	ck_assert_int_eq(t.complete, 0);
	ls_truth_free(&t);
	unlink(path);
	ck_assert_int_eq(ls_truth_load("/nonexistent/truth", &t), -ENOENT);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("truth");
	TCase *tc = tcase_create("truth");

	tcase_add_test(tc, test_load_reads_every_record);
	tcase_add_test(tc, test_derived_quantities_are_exact);
	tcase_add_test(tc, test_percentile_is_nearest_rank);
	tcase_add_test(tc, test_malformed_line_names_file_and_line);
	tcase_add_test(tc, test_unterminated_last_line_is_ignored);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
