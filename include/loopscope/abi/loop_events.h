/* SPDX-License-Identifier: MIT */
/*
 * Epoll-level loop health: per-thread state and histograms kept by
 * bpf/loop.bpf.c, read by agent/session/loop.c. One definition for both sides.
 *
 * Vocabulary (docs/DESIGN.md): an iteration runs from one poll entry to the next;
 * poll time is spent inside epoll_wait/epoll_pwait/epoll_pwait2; busy time
 * runs from a poll's return to the next poll entry; loop lag is timer
 * lateness, defined in bpf/loop.bpf.c (the comment above poll_enter) and
 * docs/METRICS.md.
 */
#ifndef LOOPSCOPE_LOOP_EVENTS_H
#define LOOPSCOPE_LOOP_EVENTS_H

#include "loopscope/hist.h"
#include "loopscope/abi/py_offsets.h"

/* Threads tracked at once (all targets together). The map is not
 * preallocated: memory is spent only on threads that poll. */
#define LS_MAX_THREADS 4096
/* Threads one target may hold in the `threads` map at once, by default
 * (issue #12 item 2: a process starting thousands of short-lived loop
 * threads must not take the whole table). A thread of a target at its
 * quota is not tracked and is counted (struct ls_target_threads.dropped);
 * user space frees the entries of exited threads (ls_loop_prune). */
#define LS_THREAD_QUOTA 512
/* Threads not tracked (over the quota) remembered at once, so that each is
 * counted once, not at each of its polls (an LRU: beyond it, a thread may
 * be counted again). */
#define LS_UNTRACKED_MAX 1024
/* Target processes (tgids) at once. */
#define LS_MAX_TARGETS 1024
/* Ring buffer for slow events, bytes (power of two, page multiple). */
#define LS_RINGBUF_BYTES (256 * 1024)
/* The per-poll stream's ring buffer (`polls`, only with every_poll),
 * bytes: 4 MiB hold ~100,000 records (struct ls_poll_event and the ring's
 * 8-byte header), ~0.8 s of the callback storm's polls; user space drains
 * it at each of its wake-ups (at least every 100 ms). Without every_poll
 * the map is one page. */
#define LS_POLL_RINGBUF_BYTES (4 * 1024 * 1024)

/* Value of the `target_threads` map, keyed by tgid: the target's use of
 * the `threads` map. Written by BPF only, with atomic adds; user space
 * counts what it deleted itself in `target_released` (tgid -> __u64), so
 * the target's entries now are inserted - evicted - released. */
struct ls_target_threads {
	__u64 inserted; /* entries its threads got */
	__u64 evicted;  /* its entries a thread of another process took over (a reused tid) */
	__u64 dropped;  /* threads not tracked: the target was at its quota */
};

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
	__u32 unmarked;      /* 1: its task-storage marker could not be made (counted in unmarked) */
	__u32 pad4;
	/* Where the busy period in progress went off the CPU
	 * (tp_btf/sched_switch and sched_wakeup): reset at each poll return. */
	__u64 off_since_ns;   /* left the CPU, or was woken, at; 0 while on it */
	__u32 off_state;      /* LS_OFF_BLOCKED or LS_OFF_RUNNABLE while off */
	__s32 off_syscall;    /* syscall of the block in progress, -1 none */
	__u64 cur_blocked_ns; /* blocked (sleeping) so far in this busy period */
	__u64 cur_runnable_ns;/* runnable but waiting for a CPU so far */
	__u64 cur_top_block_ns;  /* the longest single block so far */
	__s32 cur_top_syscall;   /* ... and the syscall it was in, -1 none */
	/* Python stacks of slow busy periods (bpf/loop.bpf.c, "Stacks"): the
	 * off-CPU episode in progress or just ended, whose stack is taken when
	 * the thread next runs in its own context. */
	__u32 walk_pending;      /* 1: its walk is scheduled (task work) */
	__s32 ep_syscall;        /* syscall the episode blocked in, -1 none */
	__s32 carry_syscall;     /* the last carried episode's syscall, -1 none */
	__u32 slot;              /* its busy_since[] slot (the sampler gate) */
	__u64 ep_start_ns;       /* left the CPU at */
	__u64 ep_blocked_ns;     /* of the episode: sleeping in the kernel */
	__u64 ep_runnable_ns;    /* of the episode: waiting for a CPU */
	/* Off-CPU time of episodes whose stack was not taken (preemptions, and
	 * episodes less than a sampling period after the last walk): it goes
	 * with the next stack taken, so walks stay under two per period. */
	__u64 carry_blocked_ns;
	__u64 carry_runnable_ns;
	__u64 exec_at_exit_ns;   /* task->se.sum_exec_runtime at the poll return (on-CPU check) */
	__u64 last_walk_ns;      /* when this thread's stack was last taken */
	__u64 period_walks;      /* walks in the busy period in progress */
	/* Its on-CPU samples (ls_stack_sample) in the busy period that began
	 * at sampled_busy_ns (reset at the first sample of a new one, not at
	 * each poll): their weight so far, and the sampling event's count
	 * where the period's samples start. */
	__u64 sampled_busy_ns;
	__u64 period_sampled_ns;
	__u64 sample_base_ns;
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
	LS_EV_STACK = 5,
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

/* The per-poll stream (opt-in: bpf/loop.bpf.c every_poll, `record
 * --every-poll`): one record per poll of a loop thread, sent at its entry
 * into the `polls` ring buffer (no wake-up: user space drains it when it
 * wakes), with the return of the thread's previous poll: the busy period
 * before this poll runs from prev_exit_ns to enter_ns, the previous poll
 * from its entry to prev_exit_ns. Sent at the entry, a poll in progress
 * at the end is in the stream; the return of the last poll is in the
 * thread's snapshot (poll_exit_ns). seq is the thread's poll count
 * (ls_thread_stats.polls) with this entry: consecutive polls of a thread
 * differ by 1, a larger step is records lost (the ring was full), and a
 * snapshot's `polls` says which records it covers (seq <= polls). */
struct ls_poll_event {
	__u32 tgid;
	__u32 tid;
	__u32 seq;          /* low 32 bits of polls */
	__u32 pad;
	__u64 enter_ns;     /* this poll's entry, CLOCK_MONOTONIC */
	__u64 prev_exit_ns; /* the return before it; 0: none seen (the first poll, or
			     * the previous entry's return was not seen) */
	__s64 timeout_ns;   /* as the entry gave it: -1 infinite, 0 none */
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
	/* Off the CPU but in no episode the scheduler programs saw (an
	 * episode whose tracepoints did not fire: see offcpu_unseen in
	 * bpf/loop.bpf.c), µs: duration - blocked - runnable - the thread's
	 * on-CPU time by the scheduler's clock (se.sum_exec_runtime), when
	 * that exceeds 5 ms; 0 otherwise. Neither blocked nor runnable can be
	 * told for it; on CPU = duration - blocked - runnable - this. */
	__u32 untraced_us;
};

/*
 * Python stacks of slow busy periods. Per target process, what the BPF
 * stack walker needs (value of the `py_procs` map, keyed by tgid, written
 * by ls_loop_set_python): the offsets row of its CPython and the run-time
 * address of _PyRuntime (exported in .dynsym on 3.8-3.13).
 */
struct ls_stack_proc {
	__u64 runtime_addr;
	struct ls_py_offsets off;
};

/* Frames per stack; deeper stacks keep their innermost LS_STACK_MAX frames
 * and are marked truncated. */
#define LS_STACK_MAX 64

/* One Python frame as the walker found it: the code object and where in it.
 * instr is f_lasti (int) on 3.8-3.10 (bytes 3.8/3.9, code units 3.10), and
 * the instruction pointer (prev_instr 3.11/3.12, instr_ptr 3.13) on 3.11+:
 * agent/python/slowstack.c turns it into a byte offset into the bytecode. */
struct ls_stack_frame {
	__u64 code;
	__u64 instr;
};

enum ls_stack_kind {
	LS_STACK_ON_CPU = 1,  /* a cpu-clock sample while the thread ran */
	LS_STACK_OFF_CPU = 2, /* an off-CPU episode: blocked and/or runnable */
};

/* Why a stack event has no frames. */
enum ls_stack_error {
	LS_STACK_OK = 0,
	LS_STACK_NO_PYTHON = 1,  /* the process has no stack walker set-up */
	LS_STACK_NO_TSTATE = 2,  /* no PyThreadState with this thread's id */
	LS_STACK_READ = 3,       /* interpreter memory unreadable */
};

/* A stack of a loop thread taken inside a busy period already older than
 * the stack-after time (a fraction of the threshold). Variable size: the
 * header plus nframes frames, innermost first. */
struct ls_stack_event {
	__u32 type; /* LS_EV_STACK */
	__u32 tgid;
	__u32 tid;
	__u32 kind;           /* enum ls_stack_kind */
	__u64 busy_start_ns;  /* start of the busy period (its poll return) */
	__u64 time_ns;        /* when taken (off-CPU: when the episode began) */
	__u64 weight_ns;      /* on-CPU: the sampling period; off-CPU: the episode's length */
	__u64 blocked_ns;     /* off-CPU: sleeping in the kernel */
	__u64 runnable_ns;    /* off-CPU: waiting for a CPU */
	__u64 task;           /* 3.14+: the asyncio Task the thread ran when walked
			       * (asyncio_running_task), 0 none or unknown */
	__s32 syscall;        /* off-CPU: the syscall it blocked in, -1 none */
	__u16 nframes;
	__u8 truncated;       /* more frames than LS_STACK_MAX */
	__u8 error;           /* enum ls_stack_error */
	struct ls_stack_frame frames[LS_STACK_MAX];
};

#define LS_STACK_EVENT_HDR (sizeof(struct ls_stack_event) - LS_STACK_MAX * sizeof(struct ls_stack_frame))

#endif /* LOOPSCOPE_LOOP_EVENTS_H */
