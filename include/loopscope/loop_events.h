/* SPDX-License-Identifier: MIT */
/*
 * Epoll-level loop health: per-thread state and histograms kept by
 * bpf/loop.bpf.c, read by agent/loop.c. One definition for both sides.
 *
 * Vocabulary (DESIGN.md): an iteration runs from one poll entry to the next;
 * poll time is spent inside epoll_wait/epoll_pwait/epoll_pwait2; busy time
 * runs from a poll's return to the next poll entry; loop lag is timer
 * lateness, defined in bpf/loop.bpf.c (the comment above poll_enter) and
 * docs/METRICS.md.
 */
#ifndef LOOPSCOPE_LOOP_EVENTS_H
#define LOOPSCOPE_LOOP_EVENTS_H

#include "loopscope/hist.h"

/* Threads tracked at once (all targets together). The map is not
 * preallocated: memory is spent only on threads that poll. */
#define LS_MAX_THREADS 4096
/* Target processes (tgids) at once. */
#define LS_MAX_TARGETS 1024
/* Ring buffer for slow events, bytes (power of two, page multiple). */
#define LS_RINGBUF_BYTES (256 * 1024)

/* Which poll syscall a thread used last (ls_thread_stats.poll_kind). */
enum ls_poll_kind {
	LS_POLL_NONE = 0,
	LS_POLL_EPOLL_WAIT = 1,
	LS_POLL_EPOLL_PWAIT = 2,
	LS_POLL_EPOLL_PWAIT2 = 3,
};

/* Value of the `threads` hash map, keyed by tid (host pid namespace).
 * Written only by the thread itself (from its own syscall tracepoints), so
 * no locking; user space reads it at any time and may see one update torn,
 * which moves a figure by at most one event. Times are bpf_ktime_get_ns(),
 * i.e. CLOCK_MONOTONIC ns, the clock user space reads with clock_gettime. */
struct ls_thread_stats {
	__u32 tgid;
	__u32 tid;
	__u32 poll_kind;     /* enum ls_poll_kind of the last poll */
	__u32 in_poll;       /* 1 between a poll's entry and its return */
	__u64 thread_start;  /* task_struct.start_time: a reused tid starts afresh */
	__u64 poll_enter_ns; /* entry of the current/last poll */
	__u64 poll_exit_ns;  /* return of the last poll: start of the busy period; 0 before the first */
	__u64 deadline_ns;   /* pending timer deadline (see lag), 0 when none */
	__u64 first_enter_ns;/* first poll entry seen */
	__u64 polls;         /* poll entries seen: iterations + 1 once the loop ran */
	__u64 slow_busy;     /* busy periods longer than the threshold */
	__u64 lag_missed;    /* deadlines superseded before a poll returned at or after them */
	/* Where the busy period in progress went off the CPU
	 * (tp_btf/sched_switch and sched_wakeup): reset at each poll return. */
	__u64 off_since_ns;   /* left the CPU, or was woken, at; 0 while on it */
	__u32 off_state;      /* LS_OFF_BLOCKED or LS_OFF_RUNNABLE while off */
	__s32 off_syscall;    /* syscall of the block in progress, -1 none */
	__u64 cur_blocked_ns; /* blocked (sleeping) so far in this busy period */
	__u64 cur_runnable_ns;/* runnable but waiting for a CPU so far */
	__u64 cur_top_block_ns;  /* the longest single block so far */
	__s32 cur_top_syscall;   /* ... and the syscall it was in, -1 none */
	__u32 pad2;
	struct ls_hist busy; /* busy period lengths, ns */
	struct ls_hist poll; /* poll lengths, ns (polls whose entry was seen) */
	struct ls_hist lag;  /* timer lateness, ns */
};

enum ls_off_state {
	LS_OFF_BLOCKED = 1,  /* switched out not runnable: waiting in the kernel */
	LS_OFF_RUNNABLE = 2, /* preempted, or woken: waiting for a CPU */
};

/* Ring buffer record types. */
enum ls_event_type {
	LS_EV_SLOW_BUSY = 1,
	/* 2 is LS_EV_SLOW_CALLBACK (pycallback_events.h) */
	LS_EV_FORK = 3,
	LS_EV_EXEC = 4,
};

/* With following on (`loopscope run`): a target forked a new process, which
 * the kernel made a target at once (so a short-lived child is not missed),
 * or a target exec'd a new program. */
struct ls_proc_event {
	__u32 type; /* LS_EV_FORK or LS_EV_EXEC */
	__u32 tgid; /* the new process (FORK) or the one that exec'd (EXEC) */
	__u32 ppid; /* its parent's tgid (FORK); 0 for EXEC */
	__u32 pad;
};

/* A busy period longer than the threshold, sent when it ends (at the next
 * poll entry). */
struct ls_slow_busy_event {
	__u32 type; /* LS_EV_SLOW_BUSY */
	__u32 tgid;
	__u32 tid;
	__u32 pad;
	__u64 start_ns;    /* poll return that began it, CLOCK_MONOTONIC */
	__u64 duration_ns; /* to the next poll entry */
	__s64 poll_timeout_ns; /* timeout of the poll that ended it, ns; -1 infinite */
	/* Why it was slow: on CPU = duration - blocked - runnable. */
	__u64 blocked_ns;      /* off the CPU, sleeping in the kernel */
	__u64 runnable_ns;     /* off the CPU, runnable: waiting for a CPU */
	__u64 top_block_ns;    /* the longest single block */
	__s32 top_syscall;     /* the syscall it was in (x86-64 number), -1 none */
	__u32 pad2;
};

#endif /* LOOPSCOPE_LOOP_EVENTS_H */
