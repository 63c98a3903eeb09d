/* SPDX-License-Identifier: MIT */
/*
 * Python stacks of slow periods (agent/python/slowstack.c): collects the stack
 * events of bpf/loop.bpf.c ("Stacks"), hands out those of one thread over
 * one slow period (a busy period, or a precise-mode callback), merged by
 * stack and symbolized (agent/python/pycode.c), and renders them as a line of
 * text, JSON, or Brendan Gregg's folded format (flamegraph.pl, speedscope).
 */
#ifndef LOOPSCOPE_SLOWSTACK_H
#define LOOPSCOPE_SLOWSTACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <json-c/json.h>

/* Kernel records (loopscope/abi/loop_events.h), read by callers that
 * include it; here only pointed to. */
struct ls_stack_event;
struct ls_slow_busy_event;
#include "loopscope/pycode.h"
#include "loopscope/pytask.h"

struct ls_slowstack;

/* One distinct stack of a slow period and the time spent in it. */
struct ls_stack_agg {
	uint32_t kind;          /* enum ls_stack_kind */
	int32_t syscall;        /* off-CPU: the syscall it blocked in, -1 none */
	uint64_t on_cpu_ns;     /* on-CPU samples x the sampling period */
	uint64_t blocked_ns;    /* off-CPU episodes: sleeping in the kernel */
	uint64_t runnable_ns;   /* off-CPU episodes: waiting for a CPU */
	uint32_t events;        /* samples or episodes merged into this one */
	bool truncated;         /* deeper than LS_STACK_MAX frames */
	uint8_t error;          /* enum ls_stack_error, when nframes is 0 */
	uint16_t nframes;
	struct ls_pyframe *frames; /* innermost first */
};

/* Distinct stacks kept for one slow period (the heaviest). */
#define LS_SUMMARY_STACKS_MAX 16

/* The stacks of one slow period, merged by function, file and line of each
 * frame, heaviest (on_cpu + blocked + runnable) first. */
struct ls_stack_summary {
	struct ls_stack_agg *stacks;
	size_t n;
	size_t dropped;      /* lighter distinct stacks beyond LS_SUMMARY_STACKS_MAX */
	uint64_t on_cpu_ns;  /* sum of on_cpu_ns: the sampled part */
	uint64_t off_cpu_ns; /* sum of blocked_ns + runnable_ns */
	struct ls_pytask_chain chain; /* the running Task's await chain (3.14+; n 0: none) */
	bool has_app;        /* app holds the application frame (loopscope/appframe.h) */
	struct ls_pyframe app; /* the innermost frame of the user's code in the culprit
				* (heaviest) stack; set by ls_appframe_pick */
};

/* An empty collector; NULL on ENOMEM. ls_slowstack_new keeps at most
 * 16384 events and caches code objects within the LS_PYCODE_MAX_* bounds;
 * ls_slowstack_new_max at most keep_max events and code_entries code
 * objects of code_bytes line tables (a long-running agent's bounds on
 * memory: each event is a header and its frames, 16 bytes a frame, at most
 * 1 KiB of them; a code object ~0.6 KiB and its line table). */
struct ls_slowstack *ls_slowstack_new(void);
struct ls_slowstack *ls_slowstack_new_max(size_t keep_max, size_t code_entries, size_t code_bytes);
void ls_slowstack_free(struct ls_slowstack *s);

/* Use off (the target's layouts, struct ls_py_target.off; copied) to name
 * the frames of process pid. 0 or -ENOMEM. ls_slowstack_forget drops pid's events, its
 * row and its cached code objects. */
int ls_slowstack_set_python(struct ls_slowstack *s, pid_t pid, const struct ls_py_offsets *off);
void ls_slowstack_forget(struct ls_slowstack *s, pid_t pid);

/* Keep a copy of stack event e (header and e->nframes frames; a record
 * with more than LS_STACK_MAX frames is ignored). At most the collector's
 * bound are kept; beyond, the oldest go (counted: ls_slowstack_dropped). */
void ls_slowstack_add(struct ls_slowstack *s, const struct ls_stack_event *e);
uint64_t ls_slowstack_dropped(const struct ls_slowstack *s);
/* Events kept now. */
size_t ls_slowstack_kept(const struct ls_slowstack *s);

/* The stacks of thread tid of process tgid taken in [from_ns, to_ns]
 * (CLOCK_MONOTONIC ns; an off-CPU episode counts by when it began), merged
 * and symbolized into *out (free with ls_slowstack_summary_free). The
 * events stay (a slow callback and the slow busy period around it share
 * them) until ls_slowstack_prune. 0 (out->n may be 0: no stack was taken),
 * or -ENOMEM. Frames that cannot be read are named "?". */
int ls_slowstack_take(struct ls_slowstack *s, uint32_t tgid, uint32_t tid, uint64_t from_ns,
		      uint64_t to_ns, struct ls_stack_summary *out);
void ls_slowstack_summary_free(struct ls_stack_summary *sum);

/* Drop the events that arrived (ls_slowstack_add) before before_ns
 * (CLOCK_MONOTONIC ns): a stack event is kept until its period has had
 * time to end, however long ago the period began. */
void ls_slowstack_prune(struct ls_slowstack *s, uint64_t before_ns);

/* One frame as "slow_handler app.py:45" (the file's base name; "?" parts
 * when unknown) into buf. */
char *ls_slowstack_frame_text(const struct ls_pyframe *f, char *buf, size_t len);

/* A slow period's times: exact, from the scheduler programs (light mode),
 * or the sums of its stacks (a precise-mode callback). ns. */
struct ls_period_times {
	uint64_t on_cpu_ns;
	uint64_t blocked_ns;    /* sleeping in the kernel, all blocks */
	uint64_t top_block_ns;  /* the longest single block */
	int top_syscall;        /* ... and its syscall, -1 none */
	uint64_t runnable_ns;   /* waiting for a CPU */
	uint64_t untraced_ns;   /* off the CPU in no episode seen (untraced_us of
				 * ls_slow_busy_event): blocked or waiting, unknown */
};

/* Where a slow period's time went, with the stacks: parts ordered by time,
 * those of 0 left out, e.g.
 *   "200.1 ms blocked in clock_nanosleep <- slow_handler app.py:45 <-
 *    main app.py:80; 12.0 ms on CPU <- render app.py:60 <- ...; 0.3 ms
 *    waiting for a CPU"
 * ("X blocked (longest Y in SYSCALL)" when there were several blocks).
 * The stacks are the heaviest blocked one and the heaviest on-CPU one of
 * sum (NULL or empty: times only), at most max_frames frames each. */
char *ls_slowstack_text(const struct ls_stack_summary *sum, const struct ls_period_times *t,
			int max_frames, char *buf, size_t len);

/* The times of slow busy period e (exact: from the scheduler programs). */
void ls_slowstack_busy_times(const struct ls_slow_busy_event *e, struct ls_period_times *t);

/* The times of a period known only by its stacks: sampled on-CPU time,
 * blocked and runnable time of its off-CPU episodes (the heaviest blocked
 * stack's syscall as top_syscall, its time as top_block_ns). */
void ls_slowstack_times(const struct ls_stack_summary *sum, struct ls_period_times *t);

/* [{"kind": "on_cpu"|"off_cpu", "syscall": "read"|null, "on_cpu_ns",
 *   "blocked_ns", "runnable_ns", "events", "truncated", "error": null|"...",
 *   "frames": [{"function", "file", "line", "first_line"}] innermost first}] */
json_object *ls_slowstack_json(const struct ls_stack_summary *sum);

/* Folded stacks (one line per distinct stack: "comm;outer;...;inner;[mark]
 * weight"), accumulated over a run and written at the end. Frames are
 * "function (file:line)"; the leaf [mark] is [on-CPU], [blocked: SYSCALL]
 * or [runnable]; weights are microseconds. */
struct ls_folded;
struct ls_folded *ls_folded_new(void);
/* Add sum's stacks of a period in thread comm. 0 or -ENOMEM. */
int ls_folded_add(struct ls_folded *f, const char *comm, const struct ls_stack_summary *sum);
/* Write every line to out, heaviest first. 0 or -errno of the write. */
int ls_folded_write(const struct ls_folded *f, FILE *out);
void ls_folded_free(struct ls_folded *f);

#endif /* LOOPSCOPE_SLOWSTACK_H */
