// SPDX-License-Identifier: MIT
/* Unit: aggregation of per-thread loop stats (agent/core/stats.c) on hand-made
 * views whose answers are computed by hand. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/loopscope.h"
#include "pythons.h"

#define MS 1000000ULL

static struct ls_thread_view *stats_new(void)
{
	struct ls_thread_view *st = calloc(1, sizeof(*st));

	ck_assert_ptr_nonnull(st);
	st->tgid = 10;
	st->tid = 11;
	return st;
}

/* 4 polls of 30 ms and 3 busy periods of 10 ms, then polling again: over
 * [0, 200 ms] busy 30 ms, poll 120 ms + the poll in progress since 150 ms. */
START_TEST(test_window_counts_periods_in_progress)
{
	struct ls_thread_view *st = stats_new();
	struct ls_thread_window w;

	for (int i = 0; i < 4; i++)
		ls_hist_record(&st->poll, 30 * MS);
	for (int i = 0; i < 3; i++)
		ls_hist_record(&st->busy, 10 * MS);
	st->polls = 5;
	st->iterations = 4; /* as the session counts them: polls - 1 */
	st->first_enter_ns = 0;
	st->in_poll = 1;
	st->poll_enter_ns = 150 * MS;
	ls_stats_window(st, 200 * MS, NULL, 0, &w);
	ck_assert_uint_eq(w.iterations, 4);
	ck_assert_uint_eq(w.busy_now_ns, 0);
	/* busy 30 / (busy 30 + poll 120 + 50 in progress) */
	ck_assert_double_eq_tol(w.utilization, 30.0 / 200.0, 1e-9);
	ck_assert_double_eq_tol(w.iterations_per_s, 4 / 0.2, 1e-9);

	/* Stuck in a callback since 150 ms: that time is busy, and shown. */
	st->in_poll = 0;
	st->poll_exit_ns = 150 * MS;
	ls_stats_window(st, 400 * MS, NULL, 0, &w);
	ck_assert_uint_eq(w.busy_now_ns, 250 * MS);
	ck_assert_double_eq_tol(w.utilization, (30.0 + 250.0) / (30.0 + 120.0 + 250.0), 1e-9);
	free(st);
}
END_TEST

/* Between two snapshots: only what happened in between. */
START_TEST(test_window_between_snapshots)
{
	struct ls_thread_view *a = stats_new(), *b;
	struct ls_thread_window w;

	ls_hist_record(&a->busy, 5 * MS);
	ls_hist_record(&a->poll, 5 * MS);
	a->polls = 2;
	a->iterations = 1;
	a->slow_busy = 1;
	a->in_poll = 1;
	a->poll_enter_ns = 10 * MS;
	b = malloc(sizeof(*b));
	memcpy(b, a, sizeof(*b));
	ls_hist_record(&b->poll, 20 * MS);    /* the poll from 10 to 30 ms */
	ls_hist_record(&b->busy, 120 * MS);   /* 30 to 150 ms */
	b->polls = 3;
	b->iterations = 2;
	b->slow_busy = 2;
	b->poll_enter_ns = 150 * MS;          /* polling since */
	ls_stats_window(b, 200 * MS, a, 20 * MS, &w);
	ck_assert_uint_eq(w.polls, 1);
	ck_assert_uint_eq(w.iterations, 1);
	ck_assert_uint_eq(w.slow_busy, 1);
	ck_assert_uint_eq(w.busy.count, 1);
	ck_assert_uint_eq(w.busy.max, 120 * MS);
	/* In [20, 200]: poll 10 (20-30) + 50 (150-200), busy 120. */
	ck_assert_double_eq_tol(w.utilization, 120.0 / 180.0, 1e-9);
	free(a);
	free(b);
}
END_TEST

/* An interval whose longest period is not the run's longest: the slot
 * bound, made exact by the slow event's length, clamped to the threshold
 * when nothing was slow (#17 item 4). */
START_TEST(test_window_busy_max)
{
	struct ls_thread_view *a = stats_new(), *b;
	struct ls_thread_window w;

	ls_hist_record(&a->busy, 300 * MS);  /* the run's max, before the window */
	a->slow_busy = 1;
	b = malloc(sizeof(*b));
	memcpy(b, a, sizeof(*b));
	ls_hist_record(&b->busy, 121320000); /* 121.32 ms, slow */
	ls_hist_record(&b->busy, 5 * MS);
	b->slow_busy = 2;
	b->polls = 2;
	ls_stats_window(b, 1000 * MS, a, 0, &w);
	ck_assert(!w.busy_max_exact);
	ck_assert_uint_gt(w.busy.max, 121320000); /* a slot's upper bound */
	ls_stats_window_busy_max(&w, 121320000, 100 * MS);
	ck_assert(w.busy_max_exact);
	ck_assert_uint_eq(w.busy.max, 121320000);

	/* Nothing slow: at most the threshold, still a bound. */
	memcpy(a, b, sizeof(*a));
	ls_hist_record(&b->busy, 99 * MS);
	ls_stats_window(b, 2000 * MS, a, 1000 * MS, &w);
	ck_assert_uint_gt(w.busy.max, 99 * MS);
	ls_stats_window_busy_max(&w, 0, 99500000);
	ck_assert(!w.busy_max_exact);
	ck_assert_uint_eq(w.busy.max, 99500000);

	/* The cumulative max grew: exact without events. */
	memcpy(a, b, sizeof(*a));
	ls_hist_record(&b->busy, 301 * MS);
	b->slow_busy++;
	ls_stats_window(b, 3000 * MS, a, 2000 * MS, &w);
	ck_assert(w.busy_max_exact);
	ck_assert_uint_eq(w.busy.max, 301 * MS);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_kth_longest)
{
	uint64_t v[] = { 5, 9, 1, 7, 3, 9 };

	ck_assert_uint_eq(ls_stats_kth_longest(v, 6, 1), 9);
	ck_assert_uint_eq(ls_stats_kth_longest(v, 6, 3), 7);
	ck_assert_uint_eq(ls_stats_kth_longest(v, 6, 5), 3);
	ck_assert_uint_eq(ls_stats_kth_longest(v, 6, 6), 0); /* all listed */
	ck_assert_uint_eq(ls_stats_kth_longest(v, 6, 50), 0);
	ck_assert_uint_eq(v[0], 5);                           /* input untouched */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");

	tcase_add_test(tc, test_window_counts_periods_in_progress);
	tcase_add_test(tc, test_window_between_snapshots);
	tcase_add_test(tc, test_kth_longest);
	tcase_add_test(tc, test_window_busy_max);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
