/* SPDX-License-Identifier: MIT */
/*
 * A job queue with one worker thread (agent/engine/jobq.c): the engine
 * hands it slow work (precise-mode set-ups and take-downs: ELF reading,
 * uprobe attaches, RCU waits) so that its own thread keeps serving events.
 * Jobs are fixed-size records copied in; one runs at a time, in the order
 * the pick callback chooses.
 */
#ifndef LS_ENGINE_JOBQ_H
#define LS_ENGINE_JOBQ_H

#include <stdbool.h>
#include <stddef.h>

/* Run one job (a copy, job_size bytes), on the worker thread, with no lock
 * of the queue held. */
typedef void (*ls_jobq_run_fn)(void *job, void *ctx);
/* Which of the n >= 1 queued jobs (jobs: n records, oldest first) runs
 * next: an index below n. Called on the worker thread with the queue's
 * lock held: it must not push. NULL: the oldest. */
typedef size_t (*ls_jobq_pick_fn)(const void *jobs, size_t n, void *ctx);

struct ls_jobq;

/* An empty queue of job_size-byte jobs for run(job, ctx), ordered by
 * pick(jobs, n, ctx). Its thread starts with the first job. NULL on
 * ENOMEM. */
struct ls_jobq *ls_jobq_new(size_t job_size, ls_jobq_run_fn run, ls_jobq_pick_fn pick, void *ctx);

/* Queue a copy of job: true; false when the worker thread cannot be started
 * or there is no memory (then the caller does without). */
bool ls_jobq_push(struct ls_jobq *q, const void *job);

/* Stop the worker after the job in progress (jobs still queued are not
 * run) and free everything. NULL is fine. */
void ls_jobq_free(struct ls_jobq *q);

#endif /* LS_ENGINE_JOBQ_H */
