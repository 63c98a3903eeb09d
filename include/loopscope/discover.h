/* SPDX-License-Identifier: MIT */
/*
 * The discovery session (agent/session/discover.c): bpf/discover.bpf.c
 * reports every exec on the machine, and forks and exits of watched
 * processes, through a ring buffer; the engine (agent/engine/monitor.c)
 * decides what to do with them.
 */
#ifndef LOOPSCOPE_DISCOVER_H
#define LOOPSCOPE_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ls_discover_what {
	LS_DISCOVER_EXEC = 1, /* any process exec'd a program */
	LS_DISCOVER_FORK = 2, /* a watched process forked a new process (pid: the child) */
	LS_DISCOVER_EXIT = 3, /* a watched process's leader thread exited */
};

/* One event: what happened to process pid (host pid namespace) at ts_ns
 * (CLOCK_MONOTONIC). */
typedef void (*ls_discover_fn)(enum ls_discover_what what, pid_t pid, uint64_t ts_ns, void *ctx);

struct ls_discover;

/* Load and attach bpf/discover.bpf.c (kernel BTF btf_path, NULL:
 * /sys/kernel/btf/vmlinux) and its ring buffer; events go to fn(..., ctx)
 * from ls_discover_poll. 0 and *out; or -errno from libbpf with one line
 * in err (len bytes) naming the step that failed. Nothing stays attached
 * on error. */
int ls_discover_open(const char *btf_path, ls_discover_fn fn, void *ctx, struct ls_discover **out,
		     char *err, size_t len);

/* Report (on) or stop reporting (off) the forks and exit of process pid.
 * 0, or -errno from the map update (-E2BIG: LS_DISC_MAX_WATCHED already;
 * off: -ENOENT when it was not watched). */
int ls_discover_watch(struct ls_discover *d, pid_t pid, bool on);

/* Wait up to timeout_ms (0: not at all) and deliver every event the ring
 * buffer holds. The number delivered, or a negative errno (-EINTR: a
 * signal). */
int ls_discover_poll(struct ls_discover *d, int timeout_ms);

/* Events the ring buffer could not take (it was full). */
uint64_t ls_discover_lost_events(const struct ls_discover *d);

/* Detach and free everything. NULL is fine. */
void ls_discover_close(struct ls_discover *d);

#endif /* LOOPSCOPE_DISCOVER_H */
