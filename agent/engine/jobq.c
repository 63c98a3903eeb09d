// SPDX-License-Identifier: MIT
/* A job queue with one worker thread (see jobq.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "jobq.h"

struct ls_jobq {
	size_t job_size;
	ls_jobq_run_fn run;
	ls_jobq_pick_fn pick;
	void *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t worker;
	bool started, stop;
	char *jobs;   /* n records of job_size, oldest first */
	size_t n, cap;
	char *current; /* the job the worker runs (a copy) */
};

static void *worker_main(void *arg)
{
	struct ls_jobq *q = arg;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		size_t k;

		while (!q->n && !q->stop)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stop)
			break;
		k = q->pick ? q->pick(q->jobs, q->n, q->ctx) : 0;
		if (k >= q->n)
			k = 0;
		memcpy(q->current, q->jobs + k * q->job_size, q->job_size);
		memmove(q->jobs + k * q->job_size, q->jobs + (k + 1) * q->job_size,
			(q->n - k - 1) * q->job_size);
		q->n--;
		pthread_mutex_unlock(&q->lock);
		q->run(q->current, q->ctx);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

struct ls_jobq *ls_jobq_new(size_t job_size, ls_jobq_run_fn run, ls_jobq_pick_fn pick, void *ctx)
{
	struct ls_jobq *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->current = malloc(job_size);
	if (!q->current) {
		free(q);
		return NULL;
	}
	q->job_size = job_size;
	q->run = run;
	q->pick = pick;
	q->ctx = ctx;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	return q;
}

bool ls_jobq_push(struct ls_jobq *q, const void *job)
{
	bool ok = false;

	pthread_mutex_lock(&q->lock);
	if (!q->started && pthread_create(&q->worker, NULL, worker_main, q) == 0)
		q->started = true;
	if (q->started && q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		char *grown = realloc(q->jobs, cap * q->job_size);

		if (grown) {
			q->jobs = grown;
			q->cap = cap;
		}
	}
	if (q->started && q->n < q->cap) {
		memcpy(q->jobs + q->n * q->job_size, job, q->job_size);
		q->n++;
		pthread_cond_signal(&q->cond);
		ok = true;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

void ls_jobq_free(struct ls_jobq *q)
{
	if (!q)
		return;
	if (q->started) {
		pthread_mutex_lock(&q->lock);
		q->stop = true;
		pthread_cond_signal(&q->cond);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->worker, NULL);
	}
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q->jobs);
	free(q->current);
	free(q);
}
