/* SPDX-License-Identifier: MIT */
/* CPython precise mode (agent/pycallback.c): a uprobe and a uretprobe on
 * context_run per target process; every asyncio callback's duration, per
 * callback (struct ls_cb_key), and an event for each slow one. */
#ifndef LOOPSCOPE_PYCALLBACK_H
#define LOOPSCOPE_PYCALLBACK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loopscope/pycallback_events.h"
#include "loopscope/pytarget.h"

struct ls_pycb;

typedef void (*ls_slow_callback_fn)(const struct ls_slow_callback_event *e, void *ctx);

struct ls_pycb_opts {
	uint64_t slow_threshold_ns;          /* 0: 100 ms */
	ls_slow_callback_fn on_slow_callback; /* from ls_pycb_poll; may be NULL */
	void *ctx;
	const char *btf_path;                /* NULL: the running kernel's */
};

/* Load bpf/pycallback.bpf.c (nothing attached yet). 0 and *out, or a
 * negative errno from libbpf (-EPERM without privileges). */
int ls_pycb_open(const struct ls_pycb_opts *opts, struct ls_pycb **out);

/* Start timing the callbacks of the resolved target t (ls_py_resolve): its
 * offsets row goes to the kernel, a uprobe and a uretprobe go on
 * context_run in t->host_path, filtered to t->pid. 0; -ENOTSUP no offsets
 * for t's version; -E2BIG LS_MAX_PY_TARGETS reached; -errno from the attach
 * (-ENOENT file gone, -EINVAL bad offset). Nothing stays attached on error. */
int ls_pycb_add_target(struct ls_pycb *p, const struct ls_py_target *t);

/* Detach target pid (if present) and forget its offsets. */
void ls_pycb_remove_target(struct ls_pycb *p, pid_t pid);

/* Deliver slow-callback events, waiting up to timeout_ms. The number
 * delivered, or a negative errno (-EINTR on a signal). */
int ls_pycb_poll(struct ls_pycb *p, int timeout_ms);

struct ls_cb_entry {
	struct ls_cb_key key;
	struct ls_cb_stats stats;
};

/* Copy every callback's histogram; *out malloc'd (free()), *n entries.
 * 0 or -ENOMEM. */
int ls_pycb_snapshot(struct ls_pycb *p, struct ls_cb_entry **out, size_t *n);

/* Slow-callback events lost to a full ring buffer. */
uint64_t ls_pycb_lost_events(struct ls_pycb *p);

/* Detach everything, free everything. NULL is fine. */
void ls_pycb_close(struct ls_pycb *p);

#endif
