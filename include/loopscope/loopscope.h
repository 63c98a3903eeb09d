/* SPDX-License-Identifier: MIT */
/*
 * libloopscope: the agent library. Everything the CLI and the daemon share:
 * system checks, targets, the epoll-level BPF session and aggregation.
 * All times are CLOCK_MONOTONIC nanoseconds (the clock of bpf_ktime_get_ns).
 */
#ifndef LOOPSCOPE_LOOPSCOPE_H
#define LOOPSCOPE_LOOPSCOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loopscope/duration.h"
#include "loopscope/hist.h"

/* Records of the kernel side (loopscope/abi/loop_events.h), handed to the
 * callbacks below as they come from the ring buffer; a callback that reads
 * them includes that header. */
struct ls_slow_busy_event;
struct ls_proc_event;
struct ls_stack_event;
/* A CPython's offsets row (loopscope/abi/py_offsets.h). */
struct ls_py_offsets;

/* Exit codes of every loopscope command (documented in README and --help). */
enum ls_exit {
	LS_EXIT_OK = 0,
	LS_EXIT_ERROR = 1,        /* internal or unexpected system error */
	LS_EXIT_USAGE = 2,        /* bad arguments (flag, pid list, duration) */
	LS_EXIT_NO_PROCESS = 3,   /* a target pid does not exist */
	LS_EXIT_PERMISSION = 4,   /* not root / missing CAP_BPF, CAP_PERFMON */
	LS_EXIT_UNSUPPORTED = 5,  /* kernel lacks BTF or tracefs cannot be mounted */
	LS_EXIT_TARGET_EXITED = 6,/* a target exited during the run (report printed) */
	LS_EXIT_NO_LOOP = 7,      /* no target thread polled during the run */
};

/* ---- system checks (agent/core/sys.c) ---------------------------------------- */

/* Check what BPF tracing needs on this machine, fixing what can be fixed:
 * kernel BTF (btf_path, or /sys/kernel/btf/vmlinux when NULL) and tracefs, mounted at
 * /sys/kernel/tracing when missing and we are root. Returns 0, or
 * -ENOTSUP (no BTF), -ENOENT (no tracefs and it cannot be mounted), -EPERM
 * (not root and no CAP_BPF+CAP_PERFMON). On error `why` (len bytes) holds one
 * line for a person, saying what to do. */
int ls_sys_check(const char *btf_path, char *why, size_t len);

/* Name of x86-64 syscall number nr into buf ("clock_nanosleep"); "syscall
 * N" when unknown, "no syscall" for a negative nr. */
void ls_sys_syscall_name(int nr, char *buf, size_t len);

/* CLOCK_MONOTONIC now, ns. */
uint64_t ls_sys_now_ns(void);

/* ---- targets (agent/core/target.c) ------------------------------------------- */

/* 0 if process pid exists (a zombie counts as exited), -ESRCH if not. */
int ls_target_alive(pid_t pid);

/* Name of thread tid of process tgid (/proc/TGID/task/TID/comm, at most 15
 * characters) into buf; "?" when unreadable (the thread is gone). */
void ls_target_thread_name(pid_t tgid, pid_t tid, char *buf, size_t len);

/* Parse a pid list "4242" or "4242,4243" into pids (at most max), each pid
 * once (repeats are dropped). Returns the number of distinct pids, or
 * -EINVAL on an empty item, a non-number, a pid <= 0 or more than max pids. */
int ls_target_parse_pids(const char *s, pid_t *pids, int max);

/* ---- the epoll-level BPF session (agent/session/loop.c) --------------------------- */

struct ls_loop;

typedef void (*ls_slow_busy_fn)(const struct ls_slow_busy_event *e, void *ctx);
typedef void (*ls_proc_fn)(const struct ls_proc_event *e, void *ctx);
/* e is variable-size: its header and e->nframes frames are valid. */
typedef void (*ls_stack_fn)(const struct ls_stack_event *e, void *ctx);

struct ls_loop_opts {
	uint64_t slow_threshold_ns; /* busy periods above this become events; 0 = 100 ms */
	ls_slow_busy_fn on_slow_busy; /* called from ls_loop_poll, may be NULL */
	const char *btf_path;       /* kernel BTF for CO-RE; NULL: /sys/kernel/btf/vmlinux */
	void *ctx;
	/* Follow descendants: every process a target forks becomes a target
	 * (in the kernel, at fork), and on_proc (may be NULL) hears of forks
	 * and execs of targets. Off: the fork/exec programs are not loaded. */
	bool follow_children;
	ls_proc_fn on_proc;
	/* Python stacks of slow busy periods (bpf/loop.bpf.c, "Stacks"): in a
	 * busy period older than stack_after_ns, cpu-clock samples at
	 * sample_hz on each target's threads and the end of each off-CPU episode take the
	 * thread's Python stack, delivered to on_stack. stack_after_ns 0: no
	 * stacks (the sampling program is not even loaded). The cpu-clock
	 * events exist only while some loop thread's busy period is past
	 * stack_after_ns (a gate thread of the session looks a few hundred
	 * times a second); the off-CPU stack is taken as BPF task work.
	 * Stacks are walked only in processes given to ls_loop_set_python. */
	uint64_t stack_after_ns;
	unsigned int sample_hz;     /* 0: 1000 (1 ms period), at most 10000 */
	ls_stack_fn on_stack;
	void *stack_ctx;            /* on_stack's ctx (NULL: ctx) */
	/* Entries of the thread table (LS_MAX_THREADS, all targets) one
	 * target may hold at once; 0: LS_THREAD_QUOTA. A thread of a target
	 * at its quota is not tracked, and counted (ls_loop_thread_counts). */
	unsigned int thread_quota;
};

/* Load bpf/loop.bpf.c and attach its six syscall tracepoints, the
 * sched_switch/sched_wakeup programs (on- and off-CPU time of busy periods),
 * plus the sched_process_fork/exec programs when following (they do nothing
 * until a target is added), and with stack_after_ns the stack programs
 * (sched_switch with walks, sched_process_exit, and cpu-clock events on
 * each target's threads while a busy period is past stack_after_ns); when
 * those fail (Linux before 6.18 lacks bpf_task_work_schedule_resume),
 * the session opens without them (ls_loop_stacks_error says why). Returns
 * 0 and *out, or a negative errno from libbpf: -EPERM without the
 * capabilities, -ENOENT/-EINVAL when the kernel lacks a tracepoint or BTF.
 * Nothing stays attached on error. */
int ls_loop_open(const struct ls_loop_opts *opts, struct ls_loop **out);

/* Start (add) or stop (remove) measuring every thread of process pid.
 * 0, or -E2BIG when LS_MAX_TARGETS targets are already there, or another
 * negative errno from the map update. Removing also drops its threads. */
int ls_loop_add_target(struct ls_loop *l, pid_t pid);
int ls_loop_remove_target(struct ls_loop *l, pid_t pid);

/* Let the stack walker read process pid's Python stacks: runtime_addr is
 * the run-time address of its _PyRuntime, off its CPython's offsets row
 * (py_offsets.h); off NULL forgets pid (it exec'd another program). 0, or
 * -E2BIG (LS_MAX_TARGETS processes), or another negative errno from the map
 * update. ls_loop_remove_target forgets it too. The syscall-exit program
 * that takes off-CPU stacks (it runs at every syscall of the machine) is
 * attached with the first such process and detached when none is left. */
int ls_loop_set_python(struct ls_loop *l, pid_t pid, uint64_t runtime_addr,
		       const struct ls_py_offsets *off);

/* 0 when the stacks asked for (stack_after_ns) are on; else the -errno
 * that kept them off (their programs did not load or attach: the session
 * runs without them). */
int ls_loop_stacks_error(const struct ls_loop *l);

/* Stack records the ring buffer could not take (full). */
uint64_t ls_loop_lost_stack_events(struct ls_loop *l);

/* Stack walks done in the kernel since open, and those that found no
 * frames (no thread state for the thread, memory unreadable). */
uint64_t ls_loop_stack_walks(struct ls_loop *l, uint64_t *errors);

/* Change the slow threshold (ns) at run time. */
void ls_loop_set_threshold(struct ls_loop *l, uint64_t ns);

/* Precise mode's time split (include/loopscope/abi/pycallback_events.h,
 * struct ls_cb_frame): the fds of this session's `cb_threads` map (the
 * callback frames, value struct ls_cb_thread) and `threads` map (struct
 * ls_thread_stats), for bpf/pycallback.bpf.c to use as its own
 * (bpf_map__reuse_fd before its load); they stay owned by l. Once that
 * object is loaded, ls_loop_cb_split_enable(l) has sched_switch add each
 * off-CPU episode of a loop thread to its open callback frames (one more
 * hash lookup per episode of a busy loop thread; none before). */
void ls_loop_cb_maps(const struct ls_loop *l, int *cb_threads_fd, int *threads_fd);
void ls_loop_cb_split_enable(struct ls_loop *l);

/* Wait up to timeout_ms for events and deliver them to on_slow_busy,
 * on_proc and on_stack, spending at most about 50 ms reading them (a
 * flooding target cannot keep the caller there).
 * Returns the number delivered, or a negative errno (-EINTR when a signal
 * interrupted the wait: not an error for callers that loop). */
int ls_loop_poll(struct ls_loop *l, int timeout_ms);

/* Deliver what the ring buffer holds now, for at most max_ms ms (a target
 * that floods it would otherwise keep the caller reading forever). Returns
 * the number delivered. */
int ls_loop_drain(struct ls_loop *l, int max_ms);

/* One loop thread's figures, cumulative since its process became a target
 * (a user-space view of the kernel's per-thread record). */
struct ls_thread_view {
	uint32_t tgid, tid;
	uint32_t poll_kind;      /* enum ls_poll_kind of the last poll */
	bool in_poll;            /* between a poll's entry and its return */
	uint64_t thread_start;   /* the thread's start time: a reused tid starts afresh */
	uint64_t poll_enter_ns;  /* entry of the current/last poll */
	uint64_t poll_exit_ns;   /* return of the last poll: start of the busy period; 0 before the first */
	uint64_t first_enter_ns; /* first poll entry seen */
	uint64_t polls;          /* poll entries seen */
	uint64_t iterations;     /* completed iterations: polls - 1 once the loop ran, else 0 */
	uint64_t slow_busy;      /* busy periods longer than the threshold */
	uint64_t lag_missed;     /* deadlines superseded before a poll returned at or after them */
	struct ls_hist busy;     /* busy period lengths, ns */
	struct ls_hist poll;     /* poll lengths, ns (polls whose entry was seen) */
	struct ls_hist lag;      /* timer lateness, ns */
};

/* Copy every tracked thread's figures. *out is malloc'd (free() it), *n
 * its length, *now_ns the time of the copy. 0 or -ENOMEM / map read
 * errors. */
int ls_loop_snapshot(struct ls_loop *l, struct ls_thread_view **out, size_t *n,
		     uint64_t *now_ns);

/* Slow events the ring buffer could not take (it was full). */
uint64_t ls_loop_lost_events(struct ls_loop *l);

/* ---- the thread table's bounds (issue #12 item 2) ---- */

/* A tracked thread that exited, as ls_loop_prune removes it: its last
 * figures (valid during the call only). */
typedef void (*ls_thread_gone_fn)(const struct ls_thread_view *v, void *ctx);

/* Remove the entries of threads that exited from the thread table, so a
 * target that starts and ends threads all the time does not fill it: a
 * thread is gone when /proc/TGID/task/TID is (host pid namespace; a
 * zombie leader stays until reaped). Each one removed is handed to gone
 * (may be NULL) first. Call it every second or so (the engine's tick,
 * attach's interval): a target's new threads are tracked again as soon as
 * its exited ones are pruned. Returns the number removed, or -ENOMEM, or a
 * negative errno of the map walk. Not thread-safe against
 * ls_loop_remove_target of the same session (one thread drives both). */
int ls_loop_prune(struct ls_loop *l, ls_thread_gone_fn gone, void *ctx);

/* One target's use of the thread table, since it was added. */
struct ls_loop_thread_counts {
	uint64_t tracked;   /* its entries now */
	uint64_t untracked; /* threads not tracked: it was at its quota */
	uint64_t pruned;    /* entries of its exited threads removed (ls_loop_prune) */
	uint64_t evicted;   /* its dead threads' entries taken over by a reused tid */
};

/* The counts of target pid into *out (all zero when it has no thread
 * yet). 0, or -ENOENT when pid is not a target of l. */
int ls_loop_thread_counts(struct ls_loop *l, pid_t pid, struct ls_loop_thread_counts *out);

/* All targets together since the session opened: threads not tracked
 * (over a quota), entries pruned, and poll entries of new threads that
 * found the whole table (LS_MAX_THREADS) full. */
struct ls_loop_table_counts {
	uint64_t untracked;
	uint64_t pruned;
	uint64_t table_full;
	unsigned int quota;  /* the per-target quota in force */
};
void ls_loop_table_counts(struct ls_loop *l, struct ls_loop_table_counts *out);
/* Integrity of the off-CPU figures (blocked_ns/runnable_ns of busy periods).
 * Returns how many times since open a loop thread was switched back in
 * inside a busy period without its switch-out having been seen (the
 * kernel skipped a scheduler program, or the thread's task-storage marker
 * was missing): each such episode's off-CPU time is absent from its
 * period's figures, which read low. *unmarked (optional): loop threads
 * whose marker the kernel refused right now (while any, the scheduler
 * programs take the full path for every task; see bpf/loop.bpf.c). Never
 * fails. */
uint64_t ls_loop_offcpu_unseen(struct ls_loop *l, uint64_t *unmarked);

/* Detach every program, free every map. NULL is fine. */
void ls_loop_close(struct ls_loop *l);

/* ---- aggregation (agent/core/stats.c) ----------------------------------------- */

/* One loop thread over a window [from_ns, to_ns]. */
struct ls_thread_window {
	uint32_t tgid, tid;
	uint32_t poll_kind;      /* enum ls_poll_kind */
	uint64_t window_ns;
	uint64_t polls;          /* poll entries in the window */
	uint64_t iterations;     /* completed iterations (poll entry to poll entry) */
	double iterations_per_s;
	double utilization;      /* busy / (busy + poll), 0..1; -1 when nothing was seen */
	uint64_t busy_now_ns;    /* length of the busy period in progress at to_ns, 0 if polling */
	uint64_t slow_busy;      /* busy periods above the threshold that ended in the window */
	uint64_t lag_missed;
	uint64_t first_enter_ns; /* first poll entry ever seen on this thread */
	uint64_t last_enter_ns;  /* latest poll entry seen */
	struct ls_hist busy, poll, lag; /* values recorded in the window */
	bool busy_max_exact;     /* busy.max is the window's longest period, not a bound
				  * (ls_stats_window_busy_max) */
};

/* Summarize thread stats `now` (copied at now_ns) against an earlier copy
 * `before` of the same thread (copied at before_ns), or since the start of
 * the measurement (before == NULL, before_ns = when the target was added).
 * Busy and poll time count the parts of periods still in progress at either
 * end, so utilization is exact over the window even while the loop is stuck. */
void ls_stats_window(const struct ls_thread_view *now, uint64_t now_ns,
		     const struct ls_thread_view *before, uint64_t before_ns,
		     struct ls_thread_window *out);

/* Make an interval's busy max exact where it matters. Two snapshots of a
 * cumulative histogram only bound a window's longest period (the upper
 * bound of its highest filled slot); ls_stats_window already makes it exact
 * when the window is the whole run (before == NULL) or the thread's
 * cumulative max grew inside it. Otherwise every period longer than the
 * threshold ended as a slow busy event, so:
 *  - slow_max_ns > 0, the longest slow event of this thread whose end (its
 *    poll entry) is in (before->poll_enter_ns, now->poll_enter_ns]: that is
 *    the window's max, exact;
 *  - no slow event and none counted (w->slow_busy == 0): every period was
 *    <= threshold_ns, so the bound is clamped to it (still a bound: not
 *    exact);
 *  - slow periods counted but none delivered (ring buffer full): the bound
 *    stays.
 * w comes from ls_stats_window (an exact max is left alone). Sets
 * w->busy.max and w->busy_max_exact; no errors. */
void ls_stats_window_busy_max(struct ls_thread_window *w, uint64_t slow_max_ns,
			      uint64_t threshold_ns);

/* Loop delay, as Node's monitorEventLoopDelay estimates it by sampling a
 * timer, but exact: how late work that arrives at a uniformly random moment
 * is served. Arriving during a poll it is served at once; during a busy
 * period of length B it waits uniformly between 0 and B. So
 *   P(delay <= x) = (poll_ns + sum_i min(B_i, x)) / (poll_ns + sum_i B_i),
 * computed from the busy histogram (each period taken at its slot's
 * midpoint: within 1/32) and the poll time of the same window. Returns the
 * q-th percentile (q in [0, 100]) in ns; busy->max for q = 100; 0 when
 * nothing was recorded. */
uint64_t ls_stats_delay_percentile(const struct ls_hist *busy, uint64_t poll_ns, double q);

/* Text reports list at most this many slow events: the longest ones (JSON
 * and JUnit list every one). */
#define LS_TEXT_SLOW_MAX 50

/* The k-th longest of n durations (k >= 1), or 0 when n <= k: events at or
 * above it are the k longest (a tie may let one more through; callers stop
 * at k). 0 as well when out of memory (then all are listed). */
uint64_t ls_stats_kth_longest(const uint64_t *durations, size_t n, size_t k);

/* Name of a poll kind: "epoll_wait", "epoll_pwait", "epoll_pwait2" or "-". */
const char *ls_poll_kind_name(uint32_t kind);

#endif /* LOOPSCOPE_LOOPSCOPE_H */
