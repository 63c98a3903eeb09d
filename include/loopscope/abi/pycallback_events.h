/* SPDX-License-Identifier: MIT */
/*
 * CPython precise mode: one uprobe on `context_run` (Python/context.c, the C
 * function behind `Context.run`, through which asyncio runs every Handle,
 * timer and Task step) and one uretprobe on its return; plus entry uprobes
 * on the exported C API `PyContext_Enter` / `PyContext_Exit`, through which
 * uvloop runs every Handle and CPython 3.12+ runs an eager task's first
 * step (LS_CB_CONTEXT below). Shared by bpf/pycallback.bpf.c and
 * agent/session/pycallback.c.
 */
#ifndef LOOPSCOPE_PYCALLBACK_EVENTS_H
#define LOOPSCOPE_PYCALLBACK_EVENTS_H

#include "loopscope/hist.h"
#include "loopscope/abi/py_offsets.h"

/* Distinct callbacks (key below) measured at once, all targets together. */
#define LS_MAX_CALLBACKS 8192
/* Python target processes at once. */
#define LS_MAX_PY_TARGETS 256
/* Nested context_run calls and PyContext_Enter/Exit pairs tracked per
 * thread (a callback that runs a nested loop, or calls ctx.run itself;
 * uvloop's idle handler around its callbacks). Deeper calls are not timed. */
#define LS_CB_MAX_DEPTH 4

/* What args[0] of context_run was. */
enum ls_cb_kind {
	LS_CB_OTHER = 0,    /* any other callable: named by its type (tp_name) */
	LS_CB_FUNCTION = 1, /* Python function: code + func_qualname */
	LS_CB_METHOD = 2,   /* bound method: its function's code + qualname */
	LS_CB_PARTIAL = 3,  /* functools.partial of a function or method */
	LS_CB_TASK = 4,     /* asyncio Task step or wakeup: the coroutine's code + cr_qualname */
	LS_CB_BUILTIN = 5,  /* C function (builtin_function_or_method): ml_name */
	/* Not a context_run: a PyContext_Enter(ctx) ... PyContext_Exit(ctx)
	 * pair made by C code (uvloop's Handle._run and TimerHandle._run;
	 * CPython 3.12+ task_eager_start). The callable is not visible at this
	 * level: code = 0, name = 0, so all of a process's such callbacks share
	 * one key. Counted only outside any context_run (a pair inside one is
	 * part of that callback's time) and only when no other pair was entered
	 * inside it (an outer pair is a dispatcher, e.g. uvloop's _on_idle
	 * handle around each iteration's ready callbacks). */
	LS_CB_CONTEXT = 6,
};

/* Identity of a callback: what the per-callback histograms are keyed by.
 * Pointers are addresses in the target; user space turns them into names
 * once each (code objects and strings are immutable) and caches them. */
struct ls_cb_key {
	__u32 tgid;
	__u32 kind;  /* enum ls_cb_kind */
	__u64 code;  /* PyCodeObject* (FUNCTION, METHOD, PARTIAL, TASK), else 0 */
	__u64 name;  /* PyUnicodeObject* qualname (Python kinds), const char* ml_name
		      * (BUILTIN) or tp_name (OTHER) */
};

struct ls_cb_stats {
	struct ls_hist duration; /* ns, from context_run entry to its return
				  * (LS_CB_CONTEXT: PyContext_Enter entry to
				  * PyContext_Exit entry) */
};

/* Type objects whose kind bpf/pycallback.bpf.c has decided (from tp_name,
 * once per type), per process: a few compares per callback instead of a hash
 * lookup per type object met. A slot is claimed by a compare-and-swap of
 * `type` from 0, and only its claimer then writes `kind`: a reader trusts a
 * slot whose kind is set (kind 0: being filled, read as a miss). Types past
 * the last slot go to an LRU hash. */
#define LS_PY_TYPE_SLOTS 16

struct ls_py_type_slot {
	__u64 type; /* PyTypeObject* in the target; 0: free */
	__u32 kind; /* bpf/pycallback.bpf.c's enum type_kind; 0: not yet */
	__u32 pad;
};

/* Per-process configuration, written by user space when a target is added
 * (types all zero); types are then filled in by the BPF programs. */
struct ls_py_proc {
	struct ls_py_offsets off;
	struct ls_py_type_slot types[LS_PY_TYPE_SLOTS];
};

enum ls_py_event_type {
	LS_EV_SLOW_CALLBACK = 2, /* after LS_EV_SLOW_BUSY in loop_events.h */
};

/*
 * A callback in progress on a thread (value of bpf/pycallback.bpf.c's
 * `cb_threads` map, keyed by tid). The map is shared with bpf/loop.bpf.c
 * (user space hands its fd over, ls_loop_cb_split): loop.bpf.c's
 * sched_switch program, which already times every off-CPU episode of a loop
 * thread in a busy period, adds each episode, as it ends (switch-in), to
 * every frame open on the thread (blocked_ns ...). An episode that ends
 * while a frame is open began after the frame did (a frame is entered and
 * left on the CPU), so each frame's sums are exactly the off-CPU time
 * between its start and its end, from the first nanosecond, at no cost per
 * callback beyond zeroing them at entry.
 */
#define LS_CB_FR_CONTEXT 1u    /* a PyContext_Enter frame (else a context_run one) */
#define LS_CB_FR_NESTED 2u     /* entered inside an open context_run: not counted */
#define LS_CB_FR_DISPATCHER 4u /* another Enter frame was pushed on it: not counted */

struct ls_cb_frame {
	__u64 start_ns;
	__u64 ctx;   /* the PyContext* entered (context_run's self, Enter's arg) */
	__u32 flags; /* LS_CB_FR_* */
	__s32 top_syscall;    /* syscall of the longest block, -1 none */
	/* Off the CPU since start_ns (written by loop.bpf.c), ns. */
	__u64 blocked_ns;     /* sleeping in the kernel */
	__u64 runnable_ns;    /* runnable, waiting for a CPU */
	__u64 top_block_ns;   /* the longest single block */
	struct ls_cb_key key;
};

struct ls_cb_thread {
	__u64 thread_start; /* task_struct.start_time: a reused tid starts afresh */
	__u32 depth; /* frames open, of both sorts (some beyond the array) */
	__u32 runs;  /* of which context_run frames */
	struct ls_cb_frame frames[LS_CB_MAX_DEPTH];
	__u32 seq;   /* callbacks counted on the thread (every_callback only:
		      * struct ls_callback_event.seq), low 32 bits */
	__u32 pad;
};

/* ls_slow_callback_event.split */
enum ls_cb_split {
	LS_CB_SPLIT_NONE = 0,  /* no off-CPU accounting for this thread: blocked_ns,
				* runnable_ns and top_* are 0 and mean nothing */
	LS_CB_SPLIT_EXACT = 1, /* from the scheduler programs, over the whole callback */
};

/* A callback longer than the threshold, sent when it returns. */
struct ls_slow_callback_event {
	__u32 type; /* LS_EV_SLOW_CALLBACK */
	__u32 tid;
	struct ls_cb_key key;
	__u64 start_ns;
	__u64 duration_ns;
	/* Where its time went (split == LS_CB_SPLIT_EXACT): on CPU =
	 * duration - blocked - runnable. The split is exact when the thread
	 * is a loop thread that bpf/loop.bpf.c follows, in one busy period
	 * from the callback's start to its end; otherwise NONE (a callback on
	 * a thread that never polls, or around a nested poll), and user space
	 * falls back to the sums of the callback's stacks. */
	__u64 blocked_ns;
	__u64 runnable_ns;
	__u64 top_block_ns;
	__s32 top_syscall; /* x86-64 number, -1 none */
	__u32 split;       /* enum ls_cb_split */
};

/* The per-callback stream's ring buffer (`callbacks`, only with
 * every_callback), bytes: 8 MiB hold ~150,000 records (struct
 * ls_callback_event and the ring's 8-byte header), ~1.3 s of the callback
 * storm (bench/apps/storm.py); user space drains it at each of its
 * wake-ups (at least every 100 ms). Without every_callback the map is one
 * page. */
#define LS_CB_RINGBUF_BYTES (8 * 1024 * 1024)

/*
 * The per-callback stream (opt-in: bpf/pycallback.bpf.c every_callback,
 * `record --mode precise --every-callback`): one record per callback
 * counted (every value the per-callback histograms receive), sent when it
 * ends into the `callbacks` ring buffer without waking the reader (user
 * space drains it when it wakes). seq is the thread's count of callbacks
 * with this one (ls_cb_thread.seq): consecutive records of a thread differ
 * by 1, a larger step is records lost (the ring was full; counted in
 * lost_callbacks). A thread's records come in the order its callbacks
 * ended (a nested callback before the one around it).
 */
struct ls_callback_event {
	__u32 tid;
	__u32 seq;          /* low 32 bits of ls_cb_thread.seq */
	__u64 start_ns;     /* CLOCK_MONOTONIC */
	__u64 duration_ns;  /* the value its histogram got */
	struct ls_cb_key key;
};

#endif /* LOOPSCOPE_PYCALLBACK_EVENTS_H */
