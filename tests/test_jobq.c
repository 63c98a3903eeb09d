// SPDX-License-Identifier: MIT
/*
 * Unit: the engine's job queue (agent/engine/jobq.c) with a job that never
 * returns on its own (issue #12 item 3: a target that blocks its precise-
 * mode set-up, e.g. a libpython on a file system that does not answer).
 * The jobs behind it must still run once the timeout passes, the stuck job
 * is reported once, and freeing the queue returns within its wait (false:
 * the stuck thread still holds the queue) instead of joining for ever.
 * Before (no timeout, pthread_join): the later jobs never ran and the free
 * blocked until the stuck job returned.
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/loopscope.h"
#include "../agent/engine/jobq.h"

struct job {
	int id;
};

struct ctx {
	pthread_mutex_t lock;
	pthread_cond_t release; /* lets the stuck job go (at the end) */
	bool let_go;
	int ran[16], nran;
	int timed_out[16], ntimed_out;
};

static void run(void *job, void *arg)
{
	struct ctx *c = arg;
	const struct job *j = job;

	pthread_mutex_lock(&c->lock);
	if (j->id < 0) { /* the stuck one: waits until let go */
		while (!c->let_go)
			pthread_cond_wait(&c->release, &c->lock);
	} else if (c->nran < 16) {
		c->ran[c->nran++] = j->id;
	}
	pthread_mutex_unlock(&c->lock);
}

static void on_timeout(const void *job, void *arg)
{
	struct ctx *c = arg;

	pthread_mutex_lock(&c->lock);
	if (c->ntimed_out < 16)
		c->timed_out[c->ntimed_out++] = ((const struct job *)job)->id;
	pthread_mutex_unlock(&c->lock);
}

static int nran(struct ctx *c)
{
	int n;

	pthread_mutex_lock(&c->lock);
	n = c->nran;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* Timeout 200 ms, watched every 10 ms: the later jobs run within 200 ms +
 * 10 ms + scheduling (1 s allowed, a loaded machine); before, never. */
START_TEST(test_stuck_job_is_abandoned_and_later_jobs_run)
{
	static struct ctx c = { .lock = PTHREAD_MUTEX_INITIALIZER, .release = PTHREAD_COND_INITIALIZER };
	struct ls_jobq *q = ls_jobq_new(sizeof(struct job), run, NULL, on_timeout, 200000000ULL, &c);
	struct job stuck = { -1 }, a = { 1 }, b = { 2 };
	uint64_t t0 = ls_sys_now_ns(), t1;

	ck_assert_ptr_nonnull(q);
	ck_assert(ls_jobq_push(q, &stuck));
	ck_assert(ls_jobq_push(q, &a));
	ck_assert(ls_jobq_push(q, &b));
	while (nran(&c) < 2 && ls_sys_now_ns() - t0 < 2000000000ULL) {
		ls_jobq_watch(q, ls_sys_now_ns());
		usleep(10000);
	}
	t1 = ls_sys_now_ns();
	ck_assert_int_eq(nran(&c), 2);
	ck_assert_int_eq(c.ran[0], 1);
	ck_assert_int_eq(c.ran[1], 2);
	ck_assert_int_eq(c.ntimed_out, 1);
	ck_assert_int_eq(c.timed_out[0], -1);
	ck_assert_msg(t1 - t0 >= 200000000ULL && t1 - t0 < 1000000000ULL,
		      "later jobs ran after %.0f ms", (t1 - t0) / 1e6);
	/* A job pushed after the timeout runs too (the new worker serves). */
	struct job d = { 3 };

	ck_assert(ls_jobq_push(q, &d));
	for (int i = 0; i < 100 && nran(&c) < 3; i++)
		usleep(10000);
	ck_assert_int_eq(nran(&c), 3);
	/* Free: the stuck thread still runs, so it returns false within its
	 * wait (300 ms; 1 s allowed) rather than joining it for ever. */
	t0 = ls_sys_now_ns();
	ck_assert(!ls_jobq_free(q, 300000000ULL));
	t1 = ls_sys_now_ns();
	ck_assert_msg(t1 - t0 < 1000000000ULL, "free took %.0f ms", (t1 - t0) / 1e6);
	/* Let it go: it returns into the kept queue, exits and frees it
	 * (LeakSanitizer in scripts/fuzz.sh holds us to that). */
	pthread_mutex_lock(&c.lock);
	c.let_go = true;
	pthread_cond_broadcast(&c.release);
	pthread_mutex_unlock(&c.lock);
	usleep(100000);
	ck_assert_int_eq(nran(&c), 3);
}
END_TEST

/* No stuck job: free waits for the job in progress and frees (true). */
START_TEST(test_free_waits_for_a_normal_job)
{
	static struct ctx c = { .lock = PTHREAD_MUTEX_INITIALIZER, .release = PTHREAD_COND_INITIALIZER };
	struct ls_jobq *q = ls_jobq_new(sizeof(struct job), run, NULL, on_timeout, 200000000ULL, &c);
	struct job a = { 7 };

	ck_assert_ptr_nonnull(q);
	ck_assert(ls_jobq_push(q, &a));
	for (int i = 0; i < 100 && nran(&c) < 1; i++)
		usleep(10000);
	ck_assert(ls_jobq_free(q, 1000000000ULL));
	ck_assert_int_eq(c.ntimed_out, 0);
	ck_assert(ls_jobq_free(NULL, 0));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jobq");
	TCase *tc = tcase_create("jobq");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_stuck_job_is_abandoned_and_later_jobs_run);
	tcase_add_test(tc, test_free_waits_for_a_normal_job);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
