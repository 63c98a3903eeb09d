/* SPDX-License-Identifier: MIT */
/*
 * Process discovery for loopscoped: bpf/discover.bpf.c tells user space
 * (agent/session/discover.c, for agent/engine/monitor.c) of every exec on the machine, and of forks and exits of
 * watched processes, through a ring buffer. User space checks its rules.
 */
#ifndef LOOPSCOPE_DISCOVER_EVENTS_H
#define LOOPSCOPE_DISCOVER_EVENTS_H

#ifndef __BPF__
#include <linux/types.h>
#endif

/* Processes whose forks and exits are reported (the monitored ones). */
#define LS_DISC_MAX_WATCHED 4096
/* Ring buffer bytes: 24-byte records (+8 header), 8192 events between two polls. */
#define LS_DISC_RINGBUF_BYTES (256 * 1024)

enum ls_disc_type {
	LS_DISC_EXEC = 1, /* any process exec'd a program */
	LS_DISC_FORK = 2, /* a watched process forked a new process (not a thread) */
	LS_DISC_EXIT = 3, /* a watched process's leader thread exited */
};

struct ls_disc_event {
	__u32 type;  /* enum ls_disc_type */
	__u32 tgid;  /* host pid namespace */
	__u32 ppid;  /* FORK: the parent; else 0 */
	__u32 pad;
	__u64 ts_ns; /* bpf_ktime_get_ns() at the event: CLOCK_MONOTONIC */
};

#endif /* LOOPSCOPE_DISCOVER_EVENTS_H */
