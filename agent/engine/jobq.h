/* SPDX-License-Identifier: MIT */
/*
 * A job queue with one worker thread (agent/engine/jobq.c): the engine
 * hands it slow work (precise-mode set-ups and take-downs: ELF reading,
 * uprobe attaches, RCU waits) so that its own thread keeps serving events.
 * Jobs are fixed-size records copied in; one runs at a time, in the order
 * the pick callback chooses.
 *
 * A job that runs longer than the queue's timeout (a target that blocks
 * its own set-up: a libpython on a file system that never answers a read)
 * is abandoned (issue #12 item 3): ls_jobq_watch hands it to on_timeout
 * and starts a new worker for the jobs behind it; the stuck thread exits
 * when (if) its job returns. At most LS_JOBQ_MAX_STUCK threads may be
 * stuck at once; beyond that the queue refuses new jobs.
 */
#ifndef LS_ENGINE_JOBQ_H
#define LS_ENGINE_JOBQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_JOBQ_MAX_STUCK 4

/* Run one job (a copy, job_size bytes), on the worker thread, with no lock
 * of the queue held. */
typedef void (*ls_jobq_run_fn)(void *job, void *ctx);
/* Which of the n >= 1 queued jobs (jobs: n records, oldest first) runs
 * next: an index below n. Called on the worker thread with the queue's
 * lock held: it must not push. NULL: the oldest. */
typedef size_t (*ls_jobq_pick_fn)(const void *jobs, size_t n, void *ctx);
/* A job that ran past the timeout and was abandoned (a copy, valid during
 * the call), on the thread that called ls_jobq_watch, no queue lock held.
 * Its run may still return later, on the abandoned thread. */
typedef void (*ls_jobq_timeout_fn)(const void *job, void *ctx);

struct ls_jobq;

/* An empty queue of job_size-byte jobs for run(job, ctx), ordered by
 * pick(jobs, n, ctx); a job running more than timeout_ns (0: never) is
 * abandoned, and on_timeout (may be NULL) told. Its thread starts with the
 * first job. NULL on ENOMEM. */
struct ls_jobq *ls_jobq_new(size_t job_size, ls_jobq_run_fn run, ls_jobq_pick_fn pick,
			    ls_jobq_timeout_fn on_timeout, uint64_t timeout_ns, void *ctx);

/* Queue a copy of job: true; false when no worker thread can be started,
 * LS_JOBQ_MAX_STUCK threads are stuck, or there is no memory (then the
 * caller does without). */
bool ls_jobq_push(struct ls_jobq *q, const void *job);

/* Abandon the job in progress if it started more than the timeout before
 * now_ns (CLOCK_MONOTONIC ns): on_timeout(job), and a new worker for the
 * rest. Call it often (the engine does at each poll). The number of jobs
 * abandoned so far. */
uint64_t ls_jobq_watch(struct ls_jobq *q, uint64_t now_ns);

/* Stop the worker after the job in progress (jobs still queued are not
 * run) and wait up to wait_ns for every worker thread, stuck ones
 * included, to end; then free everything and return true. When one is
 * still running, return false: the queue is freed by its last thread when
 * (if) its job returns, and the caller must keep what its jobs use (the
 * process is about to exit). NULL is fine (true). */
bool ls_jobq_free(struct ls_jobq *q, uint64_t wait_ns);

#endif /* LS_ENGINE_JOBQ_H */
