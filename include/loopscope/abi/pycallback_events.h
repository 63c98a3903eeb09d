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

/* Per-process configuration, written by user space when a target is added. */
struct ls_py_proc {
	struct ls_py_offsets off;
};

enum ls_py_event_type {
	LS_EV_SLOW_CALLBACK = 2, /* after LS_EV_SLOW_BUSY in loop_events.h */
};

/* A callback longer than the threshold, sent when it returns. */
struct ls_slow_callback_event {
	__u32 type; /* LS_EV_SLOW_CALLBACK */
	__u32 tid;
	struct ls_cb_key key;
	__u64 start_ns;
	__u64 duration_ns;
};

#endif /* LOOPSCOPE_PYCALLBACK_EVENTS_H */
