/* SPDX-License-Identifier: MIT */
/*
 * Inside the monitoring engine (loopscope/monitor.h): its state and what
 * its files share. monitor.c keeps the target table and its policy
 * (rules, discovery, life cycle); precise.c sets precise mode up and down
 * through the worker's job queue (jobq.c); events.c keeps the slow events;
 * windows.c cuts the windows. The lock (ls_mon_lock) guards the target
 * table and the slow events.
 */
#ifndef LS_ENGINE_H
#define LS_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "loopscope/monitor.h"

struct ls_slow_busy_event;
struct ls_slow_callback_event;
struct ls_cb_name;
struct ls_stack_event;

/* Retries of precise-mode resolution after an exec: the interpreter's
 * shared library is mapped by the dynamic loader a little after the exec
 * event, so a first failure is not final. */
#define RESOLVE_TRIES 4

struct ls_mon {
	struct ls_config cfg;
	ls_mon_log_fn log;
	void *log_ctx;
	pthread_mutex_t lock;
	struct ls_loop *loop;
	struct ls_pycb *pycb;        /* NULL until a target needs precise mode */
	bool pycb_failed;
	struct ls_pyname_cache *names;
	struct ls_discover *disc;
	struct ls_mon_target *targets;
	size_t ntargets, cap;
	struct ls_mon_slow *slow;    /* LS_MON_SLOW_KEPT, oldest first */
	size_t nslow;
	uint64_t slow_seq;
	uint64_t attached_total;
	uint64_t tick_gen;           /* windows cut so far (ls_mon_thread.seen_gen) */
	uint64_t next_tick_ns, next_scan_ns, window_end_ns;
	bool limit_logged;
	pid_t self;
	char self_exe[256];          /* other loopscope agents are never targets */
	/* Python stacks of slow events (culprit.c): the collector and the
	 * application-frame chooser, guarded by stlock (taken after lock,
	 * never before). */
	pthread_mutex_t stlock;
	struct ls_slowstack *stacks;
	struct ls_appframe *app;
	uint64_t log_second, log_in_second, log_suppressed; /* slow-event log lines */
	/* The precise-mode worker (see job_add). */
	pthread_mutex_t pylock;
	struct ls_jobq *jobs;        /* of struct precise_job; set-ups are served first */
	/* The flight recorder (flight.c): counters since start. */
	uint64_t flight_seq;         /* dumps written, numbering their files */
	uint64_t flight_dumps_written, flight_dumps_dropped;
	uint64_t flight_blocks_dropped; /* blocks out of the ring (age or flight_bytes) */
	uint64_t flight_files_rotated;  /* dumps removed by rotation */
	uint64_t flight_put_errors;  /* records not kept (ENOMEM) */
	uint64_t flight_bytes_peak;  /* most one target's ring held */
};

/* One line for the operator (ls_mon_log_fn), printf-style. */
void ls_mon_log(struct ls_mon *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The live target of pid (not in its grace period), or NULL. */
struct ls_mon_target *ls_mon_find_target(struct ls_mon *m, pid_t pid);
/* Thread tid of t; with create, added (its name read) when missing. NULL
 * when missing and not created, or on ENOMEM. */
struct ls_mon_thread *ls_mon_find_thread(struct ls_mon_target *t, uint32_t tid, bool create);

/* A precise-mode job (set-up, take-down, version lookup) running longer
 * than this is abandoned (#12 item 3): normal ones take 10-500 ms, a
 * take-down ~0.7 s (RCU). And how long ls_mon_close waits for the job in
 * progress before it leaves a stuck worker to the process's exit. */
#define LS_MON_JOB_TIMEOUT_NS 5000000000ULL
#define LS_MON_CLOSE_WAIT_NS 2000000000ULL

/* ---- precise.c ---- */

/* The precise session, NULL until a target needed it (read by any thread). */
struct ls_pycb *ls_mon_pycb(struct ls_mon *m);
/* The worker's queue of precise-mode jobs; NULL on ENOMEM. */
struct ls_jobq *ls_mon_precise_queue(struct ls_mon *m);
/* Take t out of precise mode (its uprobes go in the worker). Lock held. */
void ls_mon_precise_stop(struct ls_mon *m, struct ls_mon_target *t);
/* Precise mode wanted but not active: queue its set-up when due (now: ns).
 * Lock held. */
void ls_mon_precise_step(struct ls_mon *m, struct ls_mon_target *t, uint64_t now);

/* ---- events.c: the sessions' callbacks (ctx: the engine) ---- */

void ls_mon_on_slow_busy(const struct ls_slow_busy_event *e, void *ctx);
void ls_mon_on_slow_callback(const struct ls_slow_callback_event *e, void *ctx);

/* ---- culprit.c: Python stacks of slow events ---- */

/* Stack records kept at most (the oldest go): ~2.3 MiB at 64 frames each. */
#define LS_MON_STACKS_KEPT 2048
/* Code objects cached to name frames (all dropped at once past either
 * bound, then refilled on use): ~0.6 MiB of names and 2 MiB of tables. */
#define LS_MON_CODE_KEPT 1024
#define LS_MON_CODE_BYTES (2u << 20)
/* Stacks are taken in busy periods older than threshold / this. */
#define LS_MON_STACK_AFTER_DIV 4
/* At most this many slow-event log lines a second (the rest are counted
 * and said in the next line that is written). */
#define LS_MON_SLOW_LOG_PER_S 20

/* Make the collector and the chooser: 0 or -ENOMEM. */
int ls_mon_stacks_open(struct ls_mon *m);
void ls_mon_stacks_close(struct ls_mon *m);
/* A stack record of the loop session (ls_stack_fn; ctx: the engine). */
void ls_mon_on_stack(const struct ls_stack_event *e, void *ctx);
/* t was resolved (stacks_pending): walk its Python stacks from now on.
 * Engine thread, lock held. */
void ls_mon_stacks_step(struct ls_mon *m, struct ls_mon_target *t);
/* t exec'd: its stacks are walked no more (the old image's layouts),
 * until its new image resolves. Lock held. */
void ls_mon_stacks_stop(struct ls_mon *m, struct ls_mon_target *t);
/* t's pid is gone for good: drop what is kept of it. Lock held. */
void ls_mon_stacks_forget(struct ls_mon *m, pid_t pid);
/* The culprit and application frames of s (pid, tid, start_ns and
 * duration_ns set) from the stacks taken in it. Lock held. */
void ls_mon_stacks_name(struct ls_mon *m, struct ls_mon_slow *s);
/* The operator's line for slow event s, label-free ("pid 42 (service
 * api): slow callback 151.0 ms at slow_query helpers.py:7 in Task ...;
 * culprit ..."), at most LS_MON_SLOW_LOG_PER_S a second. Lock held. */
void ls_mon_log_slow(struct ls_mon *m, const struct ls_mon_slow *s);
/* Drop stack records older than the events they may belong to. */
void ls_mon_stacks_prune(struct ls_mon *m, uint64_t now);

/* ---- windows.c ---- */

/* Cut a window: every loop thread's figures since the last one, and the
 * precise-mode targets' callback histograms. Takes the lock. */
void ls_mon_tick(struct ls_mon *m);

/* ---- flight.c: the flight recorder (lock held in each) ---- */

struct ls_stack_summary;
struct ls_thread_view;

/* Is it on (flight_dir configured)? */
bool ls_mon_flight_on(const struct ls_mon *m);
/* Slow busy period e of target t (NULL: not a target; nothing done) and
 * its thread's name, with its stacks (culprit.c's collector, when stacks
 * are on), into t's ring; a dump due flight_after from now when e lasted
 * flight_threshold or more. */
void ls_mon_flight_slow_busy(struct ls_mon *m, struct ls_mon_target *t,
			     const struct ls_slow_busy_event *e, const char *thread);
/* The window cut at now: t's n threads' figures v close a block. */
/* Precise mode: slow callback e of t, named nm (NULL: unknown), with its
 * stacks and the name they give it, into t's ring (as attach --mode
 * precise --record writes it); one of flight_threshold or more schedules a
 * dump. Lock held. */
void ls_mon_flight_slow_callback(struct ls_mon *m, struct ls_mon_target *t,
				 const struct ls_slow_callback_event *e, const struct ls_cb_name *nm);
void ls_mon_flight_snapshot(struct ls_mon *m, struct ls_mon_target *t,
			    const struct ls_thread_view *v, size_t n, uint64_t now);
/* Write the dumps due at now (ls_mon_poll, each tick). */
void ls_mon_flight_step(struct ls_mon *m, uint64_t now);
/* Free t's ring (the target goes). */
void ls_mon_flight_free(struct ls_mon_target *t);

#endif /* LS_ENGINE_H */
