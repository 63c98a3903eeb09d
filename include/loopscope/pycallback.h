/* SPDX-License-Identifier: MIT */
/* CPython precise mode (agent/session/pycallback.c): a uprobe and a uretprobe on
 * context_run per target process (and entry uprobes on PyContext_Enter/Exit,
 * for uvloop); every asyncio callback's duration, per callback (struct
 * ls_cb_key), and an event for each slow one. */
#ifndef LOOPSCOPE_PYCALLBACK_H
#define LOOPSCOPE_PYCALLBACK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loopscope/abi/pycallback_events.h"
#include "loopscope/pytarget.h"

struct ls_pycb;
struct ls_loop;

typedef void (*ls_slow_callback_fn)(const struct ls_slow_callback_event *e, void *ctx);
/* The per-callback stream: n records (struct ls_callback_event), in the
 * ring's order (each thread's in the order its callbacks ended). */
typedef void (*ls_callbacks_fn)(const struct ls_callback_event *e, size_t n, void *ctx);

struct ls_pycb_opts {
	uint64_t slow_threshold_ns;          /* 0: 100 ms */
	ls_slow_callback_fn on_slow_callback; /* from ls_pycb_poll; may be NULL */
	void *ctx;
	const char *btf_path;                /* NULL: the running kernel's */
	/* The epoll-level session of the same targets, whose scheduler
	 * programs time every off-CPU episode: with it, slow-callback events
	 * carry their exact split (ls_slow_callback_event.split; this session
	 * shares two of its maps, ls_loop_cb_maps; kernel maps are reference-
	 * counted, so either session may close first).
	 * NULL: no split (LS_CB_SPLIT_NONE). */
	struct ls_loop *loop;
	/* The per-callback stream (`record --mode precise --every-callback`):
	 * every callback counted (tid, the thread's callback count, start,
	 * duration, key) handed to on_callbacks from ls_pycb_poll, in
	 * batches. NULL: off, and the return programs are loaded without it
	 * (a .rodata flag the verifier prunes: they cost what they cost
	 * without the stream). Records the ring could not take:
	 * ls_pycb_lost_callbacks. on_callbacks gets ctx. */
	ls_callbacks_fn on_callbacks;
};

/* Load bpf/pycallback.bpf.c (nothing attached yet). 0 and *out, or a
 * negative errno from libbpf (-EPERM without privileges; with opts->loop,
 * -EINVAL when its maps do not fit, which cannot happen with one build). */
int ls_pycb_open(const struct ls_pycb_opts *opts, struct ls_pycb **out);

/* Start timing the callbacks of the resolved target t (ls_py_resolve): its
 * offsets row goes to the kernel, a uprobe and a uretprobe go on
 * context_run in t->host_path, filtered to t->pid. 0; -ENOTSUP no offsets
 * for t's version; -E2BIG LS_MAX_PY_TARGETS reached; -errno from the attach
 * (-ENOENT file gone, -EINVAL bad offset). Nothing stays attached on error.
 *
 * Also, optionally (silently skipped when t has no offsets for them or an
 * attach fails), entry uprobes on PyContext_Enter and PyContext_Exit, for
 * callbacks that C code runs in their context without context_run; they
 * are reported with key kind LS_CB_CONTEXT (no name, see
 * pycallback_events.h for the counting rules):
 * - uvloop (checked: 0.17 on CPython 3.11): every Handle and TimerHandle
 *   (call_soon, call_later, call_at, Task steps and wakeups, future
 *   callbacks) runs as Context_Enter(ctx); callback(...); Context_Exit(ctx)
 *   (uvloop/cbhandles.pyx). Measured: each one's exact duration (Enter to
 *   Exit, so it includes uvloop's own few us around the call) in one
 *   histogram per process and slow-callback events. Not measured: which
 *   callback it was (the Handle is not an argument of PyContext_Enter:
 *   name it with the Python stack of the slow period instead); protocol
 *   callbacks (data_received, connection_made...), which uvloop runs via
 *   context.run and so are named callbacks like asyncio's; uvloop's
 *   internal idle handle, which wraps each iteration's ready callbacks and
 *   is skipped as a dispatcher.
 * - CPython 3.12+ eager tasks (asyncio.eager_task_factory): the first step
 *   runs inside create_task between PyContext_Enter/Exit (task_eager_start).
 *   On asyncio's own loop create_task is always called from inside another
 *   callback's context_run, so that step is counted as part of its creator
 *   (kind "task" or whichever), never twice; under uvloop it would be a
 *   nested pair, counted separately (the creator's pair becomes a
 *   dispatcher). Plain asyncio callbacks never hit these probes. */
int ls_pycb_add_target(struct ls_pycb *p, const struct ls_py_target *t);

/* Detach target pid (if present) and forget its offsets. */
void ls_pycb_remove_target(struct ls_pycb *p, pid_t pid);

/* Drop process pid's per-callback histograms from the kernel's map (which
 * holds LS_MAX_CALLBACKS of them, all processes together): for a monitor
 * whose processes come and go. 0 or -ENOMEM. Snapshots no longer list them. */
int ls_pycb_forget_stats(struct ls_pycb *p, pid_t pid);

/* Deliver slow-callback events, waiting up to timeout_ms, then (with
 * on_callbacks) the per-callback records the ring holds, without waiting
 * (they never wake the reader). The number of slow-callback events
 * delivered (the stream's records are not counted), or a negative errno
 * (-EINTR on a signal). */
int ls_pycb_poll(struct ls_pycb *p, int timeout_ms);

struct ls_cb_entry {
	struct ls_cb_key key;
	struct ls_cb_stats stats;
};

/* Copy every callback's histogram; *out malloc'd (free()), *n entries.
 * 0 or -ENOMEM. */
int ls_pycb_snapshot(struct ls_pycb *p, struct ls_cb_entry **out, size_t *n);

/* One callback's key and histogram, valid only during the call. */
typedef void (*ls_pycb_walk_fn)(const struct ls_cb_key *key, const struct ls_cb_stats *stats,
				void *ctx);

/* Every callback's histogram through fn, without copying the whole map
 * (memory bounded whatever the number of callbacks: up to LS_MAX_CALLBACKS
 * entries of ~5 KiB each). 0, -ENOMEM or a negative errno of the map
 * lookups (entries before the error were handed to fn). */
int ls_pycb_walk(struct ls_pycb *p, ls_pycb_walk_fn fn, void *ctx);

/* Slow-callback events lost to a full ring buffer. */
uint64_t ls_pycb_lost_events(struct ls_pycb *p);
/* Per-callback records (on_callbacks) the `callbacks` ring could not
 * take: the stream misses that many callbacks (their thread's seq jumps).
 * 0 without on_callbacks. */
uint64_t ls_pycb_lost_callbacks(struct ls_pycb *p);

/* Detach everything, free everything. NULL is fine. */
void ls_pycb_close(struct ls_pycb *p);

#endif
