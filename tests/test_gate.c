// SPDX-License-Identifier: MIT
/* Unit: the verdicts of `loopscope run` (agent/gate/gate.c) on hand-made
 * results: which slow events --allow excuses, which count, which gate fails. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "loopscope/gate.h"
#include "pythons.h"

#define MS 1000000ULL

static struct ls_run_result *result_new(void)
{
	struct ls_run_result *r = calloc(1, sizeof(*r));

	ck_assert_ptr_nonnull(r);
	r->max_slow = -1;
	return r;
}

static struct ls_run_slow *add(struct ls_run_result *r, const char *name, const char *file,
			       int line, uint64_t duration_ns)
{
	struct ls_run_slow *s = &r->slow[r->nslow++];

	s->kind = LS_RUN_SLOW_CALLBACK;
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->file, sizeof(s->file), "%s", file);
	s->line = line;
	s->duration_ns = duration_ns;
	return s;
}

START_TEST(test_allow_matches_name_path_and_base_name)
{
	struct ls_run_result *r = result_new();
	struct ls_run_slow *by_name = add(r, "Task warmup() app.py:3", "/src/app.py", 3, 0);
	struct ls_run_slow *by_path = add(r, "Task other()", "/src/lib/db.py", 40, 0);
	struct ls_run_slow *by_base = add(r, "Task third()", "/src/lib/cache.py", 7, 0);
	struct ls_run_slow *none = add(r, "Task fourth()", "/src/lib/cache.py", 8, 0);
	struct ls_run_slow *nofile = add(r, "busy period", "", 0, 0);

	r->allow[r->nallow++] = "*warmup*";
	r->allow[r->nallow++] = "/src/lib/db.py:4*";
	r->allow[r->nallow++] = "cache.py:7";
	ck_assert(ls_gate_allowed(r, by_name));
	ck_assert(ls_gate_allowed(r, by_path));
	ck_assert(ls_gate_allowed(r, by_base));
	ck_assert(!ls_gate_allowed(r, none));
	ck_assert(!ls_gate_allowed(r, nofile));
	free(r);
}
END_TEST

START_TEST(test_no_pattern_allows_nothing)
{
	struct ls_run_result *r = result_new();

	ck_assert(!ls_gate_allowed(r, add(r, "anything", "a.py", 1, 0)));
	free(r);
}
END_TEST

START_TEST(test_counts_above_fail_on_slow_unless_allowed)
{
	struct ls_run_result *r = result_new();

	r->fail_on_slow_ns = 100 * MS;
	r->allow[r->nallow++] = "*ok*";
	add(r, "Task slow()", "", 0, 150 * MS);
	add(r, "Task exactly()", "", 0, 100 * MS); /* not above: not counted */
	add(r, "Task ok()", "", 0, 500 * MS);      /* allowed */
	ls_gate_decide(r);
	ck_assert(!r->slow[0].allowed);
	ck_assert(r->slow[2].allowed);
	ck_assert(ls_gate_slow_counts(r, &r->slow[0]));
	ck_assert(!ls_gate_slow_counts(r, &r->slow[1]));
	ck_assert(!ls_gate_slow_counts(r, &r->slow[2]));
	ck_assert_int_eq(r->slow_counted, 1);
	ck_assert(r->slow_gate_failed);
	ck_assert(!r->lag_gate_failed);
	free(r);
}
END_TEST

START_TEST(test_max_slow_tolerates_up_to_n)
{
	struct ls_run_result *r = result_new();

	r->max_slow = 2;
	add(r, "a", "", 0, 1);
	add(r, "b", "", 0, 1);
	ls_gate_decide(r);
	ck_assert_int_eq(r->slow_counted, 2);
	ck_assert(!r->slow_gate_failed);
	free(r);

	r = result_new();
	r->max_slow = 2;
	add(r, "a", "", 0, 1);
	add(r, "b", "", 0, 1);
	r->slow_not_kept = 1; /* past LS_RUN_MAX_SLOW: counts */
	ls_gate_decide(r);
	ck_assert_int_eq(r->slow_counted, 3);
	ck_assert(r->slow_gate_failed);
	free(r);
}
END_TEST

START_TEST(test_slow_gate_off_counts_but_never_fails)
{
	struct ls_run_result *r = result_new();

	add(r, "a", "", 0, 1);
	ck_assert(!ls_gate_slow_on(r));
	ls_gate_decide(r);
	ck_assert_int_eq(r->slow_counted, 1);
	ck_assert(!r->slow_gate_failed);
	free(r);
}
END_TEST

START_TEST(test_lag_gate_fails_above_its_p99)
{
	struct ls_run_result *r = result_new();

	r->procs[0] = (struct ls_run_process){ .pid = 10, .lag_p99_ns = 50 * MS };
	r->procs[1] = (struct ls_run_process){ .pid = 11, .lag_p99_ns = 62 * MS };
	r->nprocs = 2;
	ck_assert(!ls_gate_lag_violates(r, &r->procs[1])); /* gate off */
	r->fail_on_lag_p99_ns = 50 * MS;
	ck_assert(!ls_gate_lag_violates(r, &r->procs[0])); /* equal: not above */
	ck_assert(ls_gate_lag_violates(r, &r->procs[1]));
	ls_gate_decide(r);
	ck_assert(r->lag_gate_failed);
	ck_assert(!r->slow_gate_failed);
	free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gate");
	TCase *tc = tcase_create("gate");

	tcase_add_test(tc, test_allow_matches_name_path_and_base_name);
	tcase_add_test(tc, test_no_pattern_allows_nothing);
	tcase_add_test(tc, test_counts_above_fail_on_slow_unless_allowed);
	tcase_add_test(tc, test_max_slow_tolerates_up_to_n);
	tcase_add_test(tc, test_slow_gate_off_counts_but_never_fails);
	tcase_add_test(tc, test_lag_gate_fails_above_its_p99);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
