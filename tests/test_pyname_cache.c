// SPDX-License-Identifier: MIT
/* The callback-name cache is bounded (#12 item 6): least recently used
 * names go first and are counted, a process's names are forgotten at
 * once, and lookups stay right across evictions and forgets. Names are C
 * strings of this process (LS_CB_BUILTIN keys), read through
 * /proc/self/mem as a target's would be. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/abi/py_offsets.h"
#include "loopscope/abi/pycallback_events.h"
#include "loopscope/pyname.h"

#define N 64
static char names[N][32];

static struct ls_cb_key key(int i, uint32_t tgid)
{
	struct ls_cb_key k = { .tgid = tgid, .kind = LS_CB_BUILTIN,
			       .name = (uint64_t)(uintptr_t)names[i] };

	return k;
}

static const struct ls_py_offsets *off(void)
{
	return ls_py_offsets_for(3, 11);
}

static void setup(void)
{
	for (int i = 0; i < N; i++)
		snprintf(names[i], sizeof(names[i]), "name_%d", i);
}

START_TEST(test_bound_and_lru_eviction)
{
	struct ls_pyname_cache *c = ls_pyname_cache_new_cap(4);
	uint32_t me = (uint32_t)getpid();
	struct ls_cb_key k;

	ck_assert_ptr_nonnull(c);
	for (int i = 0; i < 4; i++) {
		k = key(i, me);
		ck_assert_str_eq(ls_pyname_lookup(c, off(), &k)->qualname, names[i]);
	}
	ck_assert_uint_eq(ls_pyname_cache_size(c), 4);
	ck_assert_uint_eq(ls_pyname_cache_evictions(c), 0);
	/* 0 is used again: 1 is now the least recently used. */
	k = key(0, me);
	ck_assert_ptr_nonnull(ls_pyname_lookup(c, NULL, &k));
	k = key(4, me);
	ck_assert_str_eq(ls_pyname_lookup(c, off(), &k)->qualname, "name_4");
	ck_assert_uint_eq(ls_pyname_cache_size(c), 4);
	ck_assert_uint_eq(ls_pyname_cache_evictions(c), 1);
	k = key(1, me);
	ck_assert_ptr_null(ls_pyname_lookup(c, NULL, &k)); /* evicted */
	for (int i = 0; i < 5; i++) {
		k = key(i, me);
		if (i != 1)
			ck_assert_str_eq(ls_pyname_lookup(c, NULL, &k)->qualname, names[i]);
	}
	/* Many more: the size stays at the bound, every miss evicts one. */
	for (int i = 5; i < N; i++) {
		k = key(i, me);
		ck_assert_str_eq(ls_pyname_lookup(c, off(), &k)->qualname, names[i]);
	}
	ck_assert_uint_eq(ls_pyname_cache_size(c), 4);
	ck_assert_uint_eq(ls_pyname_cache_evictions(c), 1 + N - 5);
	for (int i = N - 4; i < N; i++) {
		k = key(i, me);
		ck_assert_str_eq(ls_pyname_lookup(c, NULL, &k)->qualname, names[i]);
	}
	ls_pyname_cache_free(c);
}
END_TEST

/* Keys differ by pid: a name cached for one process is not another's. */
START_TEST(test_forget_a_process)
{
	struct ls_pyname_cache *c = ls_pyname_cache_new_cap(100);
	uint32_t me = (uint32_t)getpid();
	struct ls_cb_key k;

	ck_assert_ptr_nonnull(c);
	for (int i = 0; i < 10; i++) {
		k = key(i, me);
		ck_assert_ptr_nonnull(ls_pyname_lookup(c, off(), &k));
	}
	k = key(0, me + 1000000); /* no such process: not cached */
	ck_assert_ptr_null(ls_pyname_lookup(c, NULL, &k));
	ck_assert_uint_eq(ls_pyname_cache_forget(c, (pid_t)me + 1000000), 0);
	ck_assert_uint_eq(ls_pyname_cache_size(c), 10);
	ck_assert_uint_eq(ls_pyname_cache_forget(c, (pid_t)me), 10);
	ck_assert_uint_eq(ls_pyname_cache_size(c), 0);
	ck_assert_uint_eq(ls_pyname_cache_evictions(c), 0);
	k = key(3, me);
	ck_assert_ptr_null(ls_pyname_lookup(c, NULL, &k));
	/* Usable again after it gave its memory back. */
	for (int i = 0; i < N; i++) {
		k = key(i, me);
		ck_assert_str_eq(ls_pyname_lookup(c, off(), &k)->qualname, names[i]);
	}
	ck_assert_uint_eq(ls_pyname_cache_size(c), N);
	ck_assert_uint_eq(ls_pyname_cache_forget(c, (pid_t)me), N);
	ck_assert_uint_eq(ls_pyname_cache_forget(NULL, (pid_t)me), 0);
	ls_pyname_cache_free(c);
}
END_TEST

/* Forgetting from the middle of a full cache keeps the LRU order and the
 * free slots right: refill, evict, forget in turns. */
START_TEST(test_churn_keeps_the_structure)
{
	struct ls_pyname_cache *c = ls_pyname_cache_new_cap(8);
	uint32_t me = (uint32_t)getpid();
	struct ls_cb_key k;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_null(ls_pyname_cache_new_cap(0));
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < N; i += 1 + round % 3) {
			k = key(i, me);
			ck_assert_str_eq(ls_pyname_lookup(c, off(), &k)->qualname, names[i]);
			ck_assert_uint_le(ls_pyname_cache_size(c), 8);
		}
		if (round % 5 == 4) {
			ls_pyname_cache_forget(c, (pid_t)me);
			ck_assert_uint_eq(ls_pyname_cache_size(c), 0);
		}
	}
	ck_assert_uint_gt(ls_pyname_cache_evictions(c), 0);
	ls_pyname_cache_free(c);
	ck_assert_ptr_nonnull(c = ls_pyname_cache_new());
	ls_pyname_cache_free(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pyname_cache");
	TCase *tc = tcase_create("cache");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_bound_and_lru_eviction);
	tcase_add_test(tc, test_forget_a_process);
	tcase_add_test(tc, test_churn_keeps_the_structure);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
