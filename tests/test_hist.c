// SPDX-License-Identifier: MIT
/*
 * Suite "hist": the log-linear histogram of loopscope/hist.h (slot math shared
 * with BPF) and its user-space operations (agent/core/hist.c).
 *
 * The percentile bound checked here is the documented one: the estimate of
 * the value of nearest rank ceil(q/100 * n) is within 1/32 of it, relative
 * (|estimate - exact| * 32 <= exact, integer arithmetic, so values below 16
 * must come out exact), for every value below 2^LS_HIST_MAX_LOG2.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/hist.h"

#define US 1000ULL
#define MS 1000000ULL
#define S 1000000000ULL
#define TOP (1ULL << LS_HIST_MAX_LOG2)
#define LAST (LS_HIST_NSLOTS - 1)

/* splitmix64 with a fixed seed: the same samples on every run and machine. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	rng_state = seed;
}

static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]; the modulo bias is irrelevant for these tests. */
static uint64_t rng_range(uint64_t lo, uint64_t hi)
{
	return lo + rng_next() % (hi - lo + 1);
}

/* Uniform in [0, 1). */
static double rng_unit(void)
{
	return (double)(rng_next() >> 11) / 9007199254740992.0;
}

static struct ls_hist *hist_new(void)
{
	struct ls_hist *h = calloc(1, sizeof(*h));

	ck_assert_ptr_nonnull(h);
	return h;
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* ---- slot math ---------------------------------------------------------- */

START_TEST(test_log2_matches_reference)
{
	ck_assert_uint_eq(ls_log2_u64(0), 0);
	for (unsigned k = 0; k < 64; k++) {
		uint64_t p = 1ULL << k;

		ck_assert_uint_eq(ls_log2_u64(p), k);
		if (k > 0)
			ck_assert_uint_eq(ls_log2_u64(p - 1), k == 1 ? 0 : k - 1);
		if (k > 1)
			ck_assert_uint_eq(ls_log2_u64(p + 1), k);
	}
	ck_assert_uint_eq(ls_log2_u64(UINT64_MAX), 63);
}
END_TEST

START_TEST(test_slot_bounds_round_trip)
{
	for (unsigned i = 0; i < LS_HIST_NSLOTS; i++) {
		uint64_t lo = ls_hist_slot_lower(i), hi = ls_hist_slot_upper(i);

		ck_assert_uint_le(lo, hi);
		ck_assert_uint_eq(ls_hist_slot(lo), i);
		ck_assert_uint_eq(ls_hist_slot(hi), i);
		if (lo + 1 <= hi)
			ck_assert_uint_eq(ls_hist_slot(lo + (hi - lo) / 2), i);
	}
}
END_TEST

START_TEST(test_slots_are_contiguous_and_cover_range)
{
	ck_assert_uint_eq(ls_hist_slot_lower(0), 0);
	for (unsigned i = 0; i + 1 < LS_HIST_NSLOTS; i++)
		ck_assert_uint_eq(ls_hist_slot_lower(i + 1), ls_hist_slot_upper(i) + 1);
	ck_assert_uint_eq(ls_hist_slot_upper(LAST), TOP - 1);
}
END_TEST

START_TEST(test_slot_width_at_most_one_sixteenth_of_lower)
{
	for (unsigned i = 0; i < LS_HIST_SUB; i++)
		ck_assert_uint_eq(ls_hist_slot_upper(i), ls_hist_slot_lower(i));
	for (unsigned i = LS_HIST_SUB; i < LS_HIST_NSLOTS; i++) {
		uint64_t lo = ls_hist_slot_lower(i);
		uint64_t width = ls_hist_slot_upper(i) - lo + 1;

		ck_assert_uint_le(width * 16, lo);
	}
}
END_TEST

START_TEST(test_values_from_top_go_to_last_slot)
{
	const uint64_t v[] = { TOP, TOP + 1, TOP * 2 - 1, TOP * 2, 1ULL << 62,
			       1ULL << 63, UINT64_MAX - 1, UINT64_MAX };

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		ck_assert_uint_eq(ls_hist_slot(v[i]), LAST);
	ck_assert_uint_eq(ls_hist_slot(TOP - 1), LAST);
	ck_assert_uint_eq(ls_hist_slot(ls_hist_slot_lower(LAST) - 1), LAST - 1);
}
END_TEST

/* A value v is in the slot ls_hist_slot(v) says; slots never go backwards
 * and never skip one as v grows by 1. */
START_TEST(test_slot_exhaustive_small_values)
{
	unsigned prev = 0;

	for (uint64_t v = 0; v <= 100000; v++) {
		unsigned s = ls_hist_slot(v);

		ck_assert_uint_le(ls_hist_slot_lower(s), v);
		ck_assert_uint_ge(ls_hist_slot_upper(s), v);
		ck_assert(s == prev || s == prev + 1);
		prev = s;
	}
}
END_TEST

START_TEST(test_slot_powers_of_two_plus_minus_one)
{
	for (unsigned k = 0; k < 64; k++) {
		uint64_t p = 1ULL << k;
		uint64_t v[3] = { p - 1, p, p + 1 };

		for (int j = 0; j < 3; j++) {
			unsigned s = ls_hist_slot(v[j]);

			ck_assert_uint_lt(s, LS_HIST_NSLOTS);
			if (v[j] >= TOP) {
				ck_assert_uint_eq(s, LAST);
				continue;
			}
			ck_assert_uint_le(ls_hist_slot_lower(s), v[j]);
			ck_assert_uint_ge(ls_hist_slot_upper(s), v[j]);
		}
		/* A power of two starts a slot (the first of its octave). */
		if (p < TOP)
			ck_assert_uint_eq(ls_hist_slot_lower(ls_hist_slot(p)), p);
	}
}
END_TEST

/* ---- record and percentiles -------------------------------------------- */

START_TEST(test_record_updates_count_sum_max_and_slot)
{
	struct ls_hist *h = hist_new();

	ls_hist_record(h, 5);
	ls_hist_record(h, 100 * MS);
	ls_hist_record(h, 7 * US);
	ck_assert_uint_eq(h->count, 3);
	ck_assert_uint_eq(h->sum, 5 + 100 * MS + 7 * US);
	ck_assert_uint_eq(h->max, 100 * MS);
	ck_assert_uint_eq(h->slots[5], 1);
	ck_assert_uint_eq(h->slots[ls_hist_slot(100 * MS)], 1);
	ck_assert_uint_eq(h->slots[ls_hist_slot(7 * US)], 1);
	free(h);
}
END_TEST

START_TEST(test_percentile_of_empty_is_zero)
{
	struct ls_hist *h = hist_new();
	const double q[] = { 0, 50, 90, 99, 99.9, 100 };

	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		ck_assert_uint_eq(ls_hist_percentile(h, q[i]), 0);
	free(h);
}
END_TEST

/* q in per-mille, so the exact rank is integer arithmetic. */
static const unsigned q_permille[] = { 0, 500, 900, 990, 999, 1000 };
#define NQ (sizeof(q_permille) / sizeof(q_permille[0]))

/* The nearest-rank percentile of sorted v[0..n). */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, unsigned qm)
{
	uint64_t rank = ((uint64_t)qm * n + 999) / 1000;

	if (rank < 1)
		rank = 1;
	return sorted[rank - 1];
}

/* Record v[0..n) and check every q against the exact percentile: within the
 * documented 1/32, never above the max, q == 100 the exact max, and
 * non-decreasing in q. Sorts v. */
static void check_percentiles(const char *what, uint64_t *v, size_t n)
{
	struct ls_hist *h = hist_new();
	uint64_t prev = 0;

	for (size_t i = 0; i < n; i++)
		ls_hist_record(h, v[i]);
	qsort(v, n, sizeof(*v), cmp_u64);
	ck_assert_uint_eq(h->count, n);
	ck_assert_uint_eq(h->max, v[n - 1]);
	for (size_t i = 0; i < NQ; i++) {
		uint64_t exact = exact_percentile(v, n, q_permille[i]);
		uint64_t est = ls_hist_percentile(h, q_permille[i] / 10.0);

		ck_assert_msg(absdiff(est, exact) * 32 <= exact,
			      "%s: p%.1f = %llu, exact %llu: off by more than 1/32",
			      what, q_permille[i] / 10.0, (unsigned long long)est,
			      (unsigned long long)exact);
		ck_assert_uint_le(est, h->max);
		ck_assert_uint_ge(est, prev);
		prev = est;
	}
	ck_assert_uint_eq(ls_hist_percentile(h, 100), v[n - 1]);
	free(h);
}

#define NSAMPLES 200000

START_TEST(test_percentile_within_bound_uniform)
{
	uint64_t *v = malloc(NSAMPLES * sizeof(*v));

	rng_seed(1);
	for (size_t i = 0; i < NSAMPLES; i++)
		v[i] = rng_range(1 * US, 1 * S);
	check_percentiles("uniform 1us-1s", v, NSAMPLES);
	free(v);
}
END_TEST

/* Log-uniform over 1 ns .. 2^44 ns: every octave, including the exact slots
 * below 16, gets the same share. */
START_TEST(test_percentile_within_bound_log_uniform)
{
	uint64_t *v = malloc(NSAMPLES * sizeof(*v));

	rng_seed(2);
	for (size_t i = 0; i < NSAMPLES; i++) {
		v[i] = (uint64_t)exp2(rng_unit() * LS_HIST_MAX_LOG2);
		if (v[i] >= TOP)
			v[i] = TOP - 1;
	}
	check_percentiles("log-uniform 1ns-2^44ns", v, NSAMPLES);
	free(v);
}
END_TEST

/* The shape loop lag has in practice: mostly fast, a rare slow mode that
 * p99.9 must see. */
START_TEST(test_percentile_within_bound_bimodal)
{
	uint64_t *v = malloc(NSAMPLES * sizeof(*v));

	rng_seed(3);
	for (size_t i = 0; i < NSAMPLES; i++)
		v[i] = rng_next() % 100 == 0 ? rng_range(39 * MS, 41 * MS)
					     : rng_range(45 * US, 55 * US);
	check_percentiles("bimodal 50us + 1% 40ms", v, NSAMPLES);
	free(v);
}
END_TEST

START_TEST(test_percentile_within_bound_small_n)
{
	uint64_t one[] = { 212 * MS + 345 };
	uint64_t two[] = { 3 * MS + 7, 50 * US + 3 };
	uint64_t tiny[] = { 0, 1, 2, 15, 16, 17, 31, 32, 33 };

	check_percentiles("n=1", one, 1);
	check_percentiles("n=2", two, 2);
	check_percentiles("tiny values", tiny, sizeof(tiny) / sizeof(tiny[0]));
}
END_TEST

START_TEST(test_percentile_all_equal_is_that_value_within_bound)
{
	uint64_t v[1000];

	for (size_t i = 0; i < 1000; i++)
		v[i] = 123456789;
	check_percentiles("all equal", v, 1000);
}
END_TEST

/* 99.9 of 1000 is rank 999 exactly, though 99.9/100*1000 is not an integer
 * in binary floating point; 50 of 2 is rank 1. */
START_TEST(test_percentile_is_nearest_rank)
{
	struct ls_hist *h = hist_new();

	/* 10 has a slot of its own, so its estimate is exact. */
	for (int i = 0; i < 998; i++)
		ls_hist_record(h, 10);
	ls_hist_record(h, 10000);
	ls_hist_record(h, 1000000);
	ck_assert_uint_eq(ls_hist_percentile(h, 99.8), 10);
	ck_assert_uint_eq(ls_hist_slot(ls_hist_percentile(h, 99.9)), ls_hist_slot(10000));
	ck_assert_uint_eq(ls_hist_slot(ls_hist_percentile(h, 99.91)), ls_hist_slot(1000000));
	ck_assert_uint_eq(ls_hist_percentile(h, 100), 1000000);
	ck_assert_uint_eq(ls_hist_percentile(h, 0), 10);
	/* Out of range q is clamped rather than trusted. */
	ck_assert_uint_eq(ls_hist_percentile(h, -5), 10);
	ck_assert_uint_eq(ls_hist_percentile(h, 250), 1000000);
	ck_assert_uint_eq(ls_hist_percentile(h, NAN), 10);
	memset(h, 0, sizeof(*h));
	ls_hist_record(h, 5 * MS);
	ls_hist_record(h, 7);
	ck_assert_uint_eq(ls_hist_percentile(h, 50), 7);
	ck_assert_uint_eq(ls_hist_percentile(h, 50.01), 5 * MS);
	free(h);
}
END_TEST

/* ---- merge and sub ----------------------------------------------------- */

START_TEST(test_merge_equals_recording_into_one)
{
	struct ls_hist *all = hist_new(), *merged = hist_new();
	struct ls_hist *part[3] = { hist_new(), hist_new(), hist_new() };

	rng_seed(4);
	for (int i = 0; i < 50000; i++) {
		uint64_t v = (uint64_t)exp2(rng_unit() * 40);

		ls_hist_record(all, v);
		ls_hist_record(part[rng_next() % 3], v);
	}
	for (int i = 0; i < 3; i++)
		ls_hist_merge(merged, part[i]);
	ck_assert_mem_eq(merged, all, sizeof(*all));
	/* Merging an empty histogram changes nothing. */
	memset(part[0], 0, sizeof(*part[0]));
	ls_hist_merge(merged, part[0]);
	ck_assert_mem_eq(merged, all, sizeof(*all));
	free(all);
	free(merged);
	for (int i = 0; i < 3; i++)
		free(part[i]);
}
END_TEST

/* A cumulative histogram (as BPF keeps it) snapshotted before and after a
 * batch: the difference is the batch's own histogram except for max, which
 * obeys the ls_hist_sub contract. */
static void check_sub(const uint64_t *before_v, size_t nb, const uint64_t *between_v,
		      size_t nm, int aliased)
{
	struct ls_hist *cum = hist_new(), *before = hist_new(), *now = hist_new();
	struct ls_hist *want = hist_new(), *out = hist_new();
	uint64_t *sorted = malloc((nm ? nm : 1) * sizeof(*sorted));

	for (size_t i = 0; i < nb; i++)
		ls_hist_record(cum, before_v[i]);
	*before = *cum;
	for (size_t i = 0; i < nm; i++) {
		ls_hist_record(cum, between_v[i]);
		ls_hist_record(want, between_v[i]);
		sorted[i] = between_v[i];
	}
	*now = *cum;
	if (aliased) {
		ls_hist_sub(now, now, before);
		*out = *now;
	} else {
		ls_hist_sub(out, now, before);
		ck_assert_mem_eq(now, cum, sizeof(*cum)); /* inputs untouched */
	}

	ck_assert_uint_eq(out->count, want->count);
	ck_assert_uint_eq(out->sum, want->sum);
	ck_assert_mem_eq(out->slots, want->slots, sizeof(want->slots));
	if (nm == 0) {
		ck_assert_uint_eq(out->max, 0);
		ck_assert_uint_eq(ls_hist_percentile(out, 50), 0);
		goto cleanup;
	}

	/* max: the upper bound of the batch's top slot, clamped to now->max. */
	unsigned top = ls_hist_slot(want->max);
	uint64_t bound = ls_hist_slot_upper(top);

	if (top == LAST)
		bound = UINT64_MAX;
	ck_assert_uint_eq(out->max, bound < cum->max ? bound : cum->max);
	ck_assert_uint_ge(out->max, want->max);
	ck_assert_uint_eq(ls_hist_slot(out->max), top);
	if (want->max == cum->max)
		ck_assert_uint_eq(out->max, want->max);

	qsort(sorted, nm, sizeof(*sorted), cmp_u64);
	for (size_t i = 0; i < NQ; i++) {
		uint64_t exact = exact_percentile(sorted, nm, q_permille[i]);
		uint64_t est = ls_hist_percentile(out, q_permille[i] / 10.0);

		/* Same slots as the batch, so the same estimate unless the clamp
		 * to max applies, and the estimate stays in the exact's slot. */
		if (q_permille[i] < 1000 && ls_hist_slot(exact) != top)
			ck_assert_uint_eq(est, ls_hist_percentile(want, q_permille[i] / 10.0));
		ck_assert_uint_eq(ls_hist_slot(est), ls_hist_slot(exact));
		if (q_permille[i] < 1000 && exact < TOP)
			ck_assert_uint_le(absdiff(est, exact) * 32, exact);
	}
cleanup:
	free(sorted);
	free(cum);
	free(before);
	free(now);
	free(want);
	free(out);
}

START_TEST(test_sub_of_snapshots_is_histogram_in_between)
{
	enum { NB = 30000, NM = 20000 };
	uint64_t *b = malloc(NB * sizeof(*b)), *m = malloc(NM * sizeof(*m));

	rng_seed(5);
	for (int i = 0; i < NB; i++)
		b[i] = rng_range(1 * US, 1 * S);
	for (int i = 0; i < NM; i++)
		m[i] = rng_range(1 * US, 2 * S); /* the overall max is in here */
	check_sub(b, NB, m, NM, 0);
	check_sub(b, NB, m, NM, 1);
	for (int i = 0; i < NM; i++)
		m[i] = rng_range(1 * US, 10 * MS); /* below the earlier max */
	check_sub(b, NB, m, NM, 0);
	check_sub(b, NB, m, NM, 1);
	check_sub(b, NB, m, 0, 0); /* nothing in between */
	check_sub(NULL, 0, m, NM, 0); /* from an empty start */
	free(b);
	free(m);
}
END_TEST

/* The batch's max shares its slot with a larger value recorded before: the
 * bound is clamped to now->max, not beyond it. */
START_TEST(test_sub_max_clamped_to_now_max)
{
	uint64_t b[] = { 1000 * US + 900 }, m[] = { 1000 * US, 1000 * US + 1 };

	ck_assert_uint_eq(ls_hist_slot(b[0]), ls_hist_slot(m[0]));
	check_sub(b, 1, m, 2, 0);
}
END_TEST

/* The last slot has no upper bound: a batch there takes now->max. */
START_TEST(test_sub_max_in_last_slot_is_now_max)
{
	uint64_t b[] = { 3 * MS }, m[] = { TOP * 4, 5 * US };
	struct ls_hist *before = hist_new(), *now = hist_new(), *out = hist_new();

	check_sub(b, 1, m, 2, 0);
	ls_hist_record(before, b[0]);
	*now = *before;
	ls_hist_record(now, m[0]);
	ls_hist_sub(out, now, before);
	ck_assert_uint_eq(out->max, TOP * 4);
	free(before);
	free(now);
	free(out);
}
END_TEST

/* A snapshot torn by a concurrent BPF update can be behind in one field;
 * the difference saturates at 0 instead of wrapping. */
START_TEST(test_sub_saturates_when_before_is_ahead)
{
	struct ls_hist *before = hist_new(), *now = hist_new(), *out = hist_new();

	ls_hist_record(now, 10 * US);
	*before = *now;
	before->count++;
	before->sum += 5;
	before->slots[3]++;
	ls_hist_sub(out, now, before);
	ck_assert_uint_eq(out->count, 0);
	ck_assert_uint_eq(out->sum, 0);
	for (unsigned i = 0; i < LS_HIST_NSLOTS; i++)
		ck_assert_uint_eq(out->slots[i], 0);
	ck_assert_uint_eq(out->max, 0);
	free(before);
	free(now);
	free(out);
}
END_TEST

static Suite *hist_suite(void)
{
	Suite *s = suite_create("hist");
	TCase *slots = tcase_create("slots"), *pct = tcase_create("percentile");
	TCase *ops = tcase_create("merge_sub");

	tcase_add_test(slots, test_log2_matches_reference);
	tcase_add_test(slots, test_slot_bounds_round_trip);
	tcase_add_test(slots, test_slots_are_contiguous_and_cover_range);
	tcase_add_test(slots, test_slot_width_at_most_one_sixteenth_of_lower);
	tcase_add_test(slots, test_values_from_top_go_to_last_slot);
	tcase_add_test(slots, test_slot_exhaustive_small_values);
	tcase_add_test(slots, test_slot_powers_of_two_plus_minus_one);
	suite_add_tcase(s, slots);

	tcase_add_test(pct, test_record_updates_count_sum_max_and_slot);
	tcase_add_test(pct, test_percentile_of_empty_is_zero);
	tcase_add_test(pct, test_percentile_within_bound_uniform);
	tcase_add_test(pct, test_percentile_within_bound_log_uniform);
	tcase_add_test(pct, test_percentile_within_bound_bimodal);
	tcase_add_test(pct, test_percentile_within_bound_small_n);
	tcase_add_test(pct, test_percentile_all_equal_is_that_value_within_bound);
	tcase_add_test(pct, test_percentile_is_nearest_rank);
	suite_add_tcase(s, pct);

	tcase_add_test(ops, test_merge_equals_recording_into_one);
	tcase_add_test(ops, test_sub_of_snapshots_is_histogram_in_between);
	tcase_add_test(ops, test_sub_max_clamped_to_now_max);
	tcase_add_test(ops, test_sub_max_in_last_slot_is_now_max);
	tcase_add_test(ops, test_sub_saturates_when_before_is_ahead);
	suite_add_tcase(s, ops);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hist_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
