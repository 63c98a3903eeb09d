/* SPDX-License-Identifier: MIT */
/*
 * Where a slow busy period's time went (agent/python/busywhy.c), in each
 * form an output shows it: the line with its Python stacks (attach, run),
 * the JSON fields of attach, the short line of the daemon's event list.
 * The times come from the scheduler programs (ls_slowstack_busy_times):
 * on CPU is the period's length less its blocked and runnable time.
 */
#ifndef LOOPSCOPE_BUSYWHY_H
#define LOOPSCOPE_BUSYWHY_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "loopscope/slowstack.h"

/* "150.2 ms blocked in clock_nanosleep <- handler app.py:12 <- ...; 0.3 ms
 * on CPU" (ls_slowstack_text of e's times and the stacks st, NULL or empty
 * for times only, at most max_frames frames a stack) into buf (len bytes,
 * cut there); returns buf. */
char *ls_busy_why(const struct ls_slow_busy_event *e, const struct ls_stack_summary *st,
		  int max_frames, char *buf, size_t len);

/* "busy: 1.07 ms on CPU, 150.1 ms blocked in clock_nanosleep, 13.2 us
 * waiting for a CPU" (the blocked and waiting parts only when not 0) into
 * buf (len bytes, cut there); returns buf. */
char *ls_busy_why_brief(const struct ls_slow_busy_event *e, char *buf, size_t len);

/* Add to o: on_cpu_ns, blocked_ns, runnable_ns, blocked_syscall (its name,
 * or null when it never blocked) and blocked_syscall_ns (when it did),
 * stacks (ls_slowstack_json of st), await_chain (ls_pytask_chain_json of
 * st's chain). */
void ls_busy_why_json(json_object *o, const struct ls_slow_busy_event *e,
		      const struct ls_stack_summary *st);

/* ---- a slow callback of precise mode (ls_slow_callback_event) ---- */

struct ls_slow_callback_event; /* loopscope/abi/pycallback_events.h */

/* The times of slow callback e: exact, from its event, when e->split is
 * LS_CB_SPLIT_EXACT (returns true); else the sums of its stacks st
 * (ls_slowstack_times: sampled, and only from the stack-after time on;
 * st NULL or empty: all 0) (returns false). */
bool ls_callback_times(const struct ls_slow_callback_event *e, const struct ls_stack_summary *st,
		       struct ls_period_times *t);

/* Add to o what ls_busy_why_json adds for a busy period, from
 * ls_callback_times: on_cpu_ns, blocked_ns, runnable_ns, blocked_syscall,
 * blocked_syscall_ns; plus "split": "exact" or "stacks" (the sums of its
 * sampled stacks: a lower bound, from the stack-after time on) or null
 * (neither: the times are null too). Stacks and await chain are not added. */
void ls_callback_why_json(json_object *o, const struct ls_slow_callback_event *e,
			  const struct ls_stack_summary *st);

#endif /* LOOPSCOPE_BUSYWHY_H */
