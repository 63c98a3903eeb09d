// SPDX-License-Identifier: MIT
/* ls_slowstack_take finds a period's stack events by time, also when they
 * arrive out of order (an off-CPU episode is stamped with its start and
 * arrives after the on-CPU samples taken later), across the ring's
 * wrap-around and after pruning. Truth: a linear scan of the events added. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/slowstack.h"

struct added {
	uint32_t tid;
	uint64_t time_ns, weight_ns;
	uint32_t kind;
};

static void add(struct ls_slowstack *s, uint32_t tid, uint32_t kind, uint64_t time_ns,
		uint64_t weight_ns)
{
	struct ls_stack_event e;

	memset(&e, 0, LS_STACK_EVENT_HDR);
	e.type = LS_EV_STACK;
	e.tgid = 7;
	e.tid = tid;
	e.kind = kind;
	e.time_ns = time_ns;
	e.syscall = -1;
	if (kind == LS_STACK_ON_CPU)
		e.weight_ns = weight_ns;
	else
		e.blocked_ns = weight_ns;
	ls_slowstack_add(s, &e);
}

/* Sum of the weights of the events in [from, to] of tid among the last
 * `kept` of added[0..n-1]: what take must find. */
static uint64_t truth(const struct added *a, size_t n, size_t kept, uint32_t tid, uint64_t from,
		      uint64_t to)
{
	uint64_t sum = 0;

	for (size_t i = n > kept ? n - kept : 0; i < n; i++)
		if (a[i].tid == tid && a[i].time_ns >= from && a[i].time_ns <= to)
			sum += a[i].weight_ns;
	return sum;
}

static uint64_t taken(struct ls_slowstack *s, uint32_t tid, uint64_t from, uint64_t to)
{
	struct ls_stack_summary sum;

	ck_assert_int_eq(ls_slowstack_take(s, 7, tid, from, to, &sum), 0);
	uint64_t w = sum.on_cpu_ns + sum.off_cpu_ns;

	ls_slowstack_summary_free(&sum);
	return w;
}

START_TEST(test_take_finds_late_and_wrapped_events)
{
	enum { N = 5000, KEEP = 1024 };
	struct ls_slowstack *s = ls_slowstack_new_max(KEEP, 16, 1 << 16);
	struct added *a = calloc(N, sizeof(*a));
	unsigned seed = 12345;

	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(a);
	for (size_t i = 0; i < N; i++) {
		/* Mostly on-CPU samples at rising times on two threads; one in
		 * eight an off-CPU episode stamped up to 40 events back. */
		uint32_t tid = 1 + (rand_r(&seed) & 1);
		bool off = rand_r(&seed) % 8 == 0;
		uint64_t t = 1000 * (uint64_t)i - (off ? 1000 * (uint64_t)(rand_r(&seed) % 40) : 0);

		a[i] = (struct added){ tid, t, 1 + rand_r(&seed) % 1000,
				       off ? LS_STACK_OFF_CPU : LS_STACK_ON_CPU };
		add(s, tid, a[i].kind, a[i].time_ns, a[i].weight_ns);
		if (i % 97 == 0 && i > 200) {
			uint64_t from = 1000 * (uint64_t)(i - rand_r(&seed) % 200), to = 1000 * (uint64_t)i;

			ck_assert_uint_eq(taken(s, tid, from, to), truth(a, i + 1, KEEP, tid, from, to));
		}
	}
	/* Every window over what is kept, both threads. */
	for (uint64_t from = 1000 * (N - KEEP - 50); from < 1000 * N; from += 7919)
		for (uint32_t tid = 1; tid <= 2; tid++)
			ck_assert_uint_eq(taken(s, tid, from, from + 300000),
					  truth(a, N, KEEP, tid, from, from + 300000));
	ck_assert_uint_eq(ls_slowstack_kept(s), KEEP);
	ck_assert_uint_eq(ls_slowstack_dropped(s), N - KEEP);
	/* Pruning everything that arrived so far leaves nothing to find. */
	ls_slowstack_prune(s, UINT64_MAX);
	ck_assert_uint_eq(taken(s, 1, 0, UINT64_MAX), 0);
	/* New events after the prune are found again. */
	add(s, 1, LS_STACK_OFF_CPU, 10, 5);
	add(s, 1, LS_STACK_ON_CPU, 20, 6);
	ck_assert_uint_eq(taken(s, 1, 0, 15), 5);
	ck_assert_uint_eq(taken(s, 1, 15, 25), 6);
	free(a);
	ls_slowstack_free(s);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("slowstack");
	TCase *tc = tcase_create("take");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_take_finds_late_and_wrapped_events);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
