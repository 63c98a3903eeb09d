// SPDX-License-Identifier: MIT
/* A job queue with one worker thread at a time, and a timeout per job (see
 * jobq.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobq.h"

struct ls_jobq {
	size_t job_size;
	ls_jobq_run_fn run;
	ls_jobq_pick_fn pick;
	ls_jobq_timeout_fn on_timeout;
	uint64_t timeout_ns;
	void *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;    /* jobs queued, or stop */
	pthread_cond_t gone;    /* a worker thread ended */
	bool stop;
	bool orphaned;          /* ls_jobq_free left it to its last thread */
	char *jobs;             /* n records of job_size, oldest first */
	size_t n, cap;
	/* The worker in charge is the one of generation gen; older ones were
	 * abandoned in a job and exit when it returns. */
	unsigned gen;
	bool have_worker;
	unsigned threads;       /* worker threads alive, abandoned ones included */
	uint64_t started_ns;    /* the job in progress began at; 0 when idle */
	char *running;          /* a copy of the job in progress */
	uint64_t timeouts;
};

struct worker_arg {
	struct ls_jobq *q;
	unsigned gen;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void destroy(struct ls_jobq *q)
{
	pthread_cond_destroy(&q->cond);
	pthread_cond_destroy(&q->gone);
	pthread_mutex_destroy(&q->lock);
	free(q->jobs);
	free(q->running);
	free(q);
}

static void *worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	struct ls_jobq *q = wa->q;
	unsigned gen = wa->gen;
	char *job = malloc(q->job_size);

	free(wa);
	pthread_mutex_lock(&q->lock);
	while (job) {
		size_t k;

		while (!q->n && !q->stop)
			pthread_cond_wait(&q->cond, &q->lock);
		if (q->stop || q->gen != gen)
			break;
		k = q->pick ? q->pick(q->jobs, q->n, q->ctx) : 0;
		if (k >= q->n)
			k = 0;
		memcpy(job, q->jobs + k * q->job_size, q->job_size);
		memmove(q->jobs + k * q->job_size, q->jobs + (k + 1) * q->job_size,
			(q->n - k - 1) * q->job_size);
		q->n--;
		memcpy(q->running, job, q->job_size);
		q->started_ns = now_ns();
		pthread_mutex_unlock(&q->lock);
		q->run(job, q->ctx);
		pthread_mutex_lock(&q->lock);
		if (q->gen != gen)
			break; /* abandoned meanwhile: a newer worker has the queue */
		q->started_ns = 0;
	}
	if (!job && q->gen == gen)
		q->have_worker = false; /* no memory: the next push tries again */
	q->threads--;
	pthread_cond_broadcast(&q->gone);
	bool last = q->orphaned && !q->threads;

	pthread_mutex_unlock(&q->lock);
	free(job);
	if (last)
		destroy(q); /* ls_jobq_free gave up on us: nobody else holds q */
	return NULL;
}

/* Start the worker of the current generation. Lock held. */
static bool start_worker(struct ls_jobq *q)
{
	struct worker_arg *wa;
	pthread_attr_t attr;
	pthread_t t;
	bool ok;

	if (q->threads > LS_JOBQ_MAX_STUCK || !(wa = malloc(sizeof(*wa))))
		return false;
	wa->q = q;
	wa->gen = q->gen;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&t, &attr, worker_main, wa) == 0;
	pthread_attr_destroy(&attr);
	if (!ok) {
		free(wa);
		return false;
	}
	q->threads++;
	q->have_worker = true;
	return true;
}

struct ls_jobq *ls_jobq_new(size_t job_size, ls_jobq_run_fn run, ls_jobq_pick_fn pick,
			    ls_jobq_timeout_fn on_timeout, uint64_t timeout_ns, void *ctx)
{
	struct ls_jobq *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->running = malloc(job_size);
	if (!q->running) {
		free(q);
		return NULL;
	}
	q->job_size = job_size;
	q->run = run;
	q->pick = pick;
	q->on_timeout = on_timeout;
	q->timeout_ns = timeout_ns;
	q->ctx = ctx;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	pthread_cond_init(&q->gone, NULL);
	return q;
}

bool ls_jobq_push(struct ls_jobq *q, const void *job)
{
	bool ok = false;

	pthread_mutex_lock(&q->lock);
	if (!q->have_worker)
		start_worker(q);
	if (q->have_worker && q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		char *grown = realloc(q->jobs, cap * q->job_size);

		if (grown) {
			q->jobs = grown;
			q->cap = cap;
		}
	}
	if (q->have_worker && q->n < q->cap) {
		memcpy(q->jobs + q->n * q->job_size, job, q->job_size);
		q->n++;
		pthread_cond_broadcast(&q->cond);
		ok = true;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

uint64_t ls_jobq_watch(struct ls_jobq *q, uint64_t now)
{
	char *job = NULL;
	uint64_t n;

	pthread_mutex_lock(&q->lock);
	if (q->timeout_ns && q->started_ns && now > q->started_ns &&
	    now - q->started_ns > q->timeout_ns && (job = malloc(q->job_size))) {
		memcpy(job, q->running, q->job_size);
		q->gen++;           /* the stuck worker is no longer in charge */
		q->started_ns = 0;
		q->have_worker = false;
		q->timeouts++;
		if (q->n)
			start_worker(q); /* else the next push starts one */
	}
	n = q->timeouts;
	pthread_mutex_unlock(&q->lock);
	if (job && q->on_timeout)
		q->on_timeout(job, q->ctx);
	free(job);
	return n;
}

bool ls_jobq_free(struct ls_jobq *q, uint64_t wait_ns)
{
	struct timespec until;
	bool done;

	if (!q)
		return true;
	clock_gettime(CLOCK_REALTIME, &until); /* pthread_cond_timedwait's clock */
	until.tv_sec += (time_t)(wait_ns / 1000000000ULL);
	until.tv_nsec += (long)(wait_ns % 1000000000ULL);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	while (q->threads && pthread_cond_timedwait(&q->gone, &q->lock, &until) != ETIMEDOUT)
		;
	done = q->threads == 0;
	q->orphaned = !done; /* the last thread frees q when (if) it ends */
	pthread_mutex_unlock(&q->lock);
	if (!done)
		return false;
	destroy(q);
	return true;
}
