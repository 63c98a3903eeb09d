// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Epoll-level loop health of target processes: iterations, busy time, poll
 * time, loop lag and slow busy periods, per thread, from the syscall
 * tracepoints of epoll_wait, epoll_pwait and epoll_pwait2.
 *
 * Tracepoint formats (/sys/kernel/tracing/events/syscalls/<name>/format,
 * Linux 6.18): sys_enter_* carry args[0..5] as unsigned long; for all three
 * calls args[3] is the timeout: an int in ms for epoll_wait and epoll_pwait,
 * a `const struct __kernel_timespec __user *` for epoll_pwait2 (NULL means
 * infinite). sys_exit_* carry `long ret` (events, or -errno).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "loopscope/abi/loop_events.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The slow threshold, ns: writable (.bss), not `const volatile`, because
 * user space changes it after load (ls_loop_set_threshold, on the daemon's
 * reload). Set before load too (its default: LS_DEFAULT_THRESHOLD_NS). */
__u64 slow_threshold_ns;

/* Ring buffer records that did not fit (user space reports them): slow
 * events and proc events; stack records apart. */
__u64 lost_events;
__u64 lost_stack_events;

/* The per-poll stream (struct ls_poll_event, `record --every-poll`):
 * fixed at load (.rodata, skel->rodata before load); off, the verifier
 * prunes emit_poll and the default path pays nothing. Records the `polls`
 * ring could not take are counted in lost_polls (the report says so). */
const volatile __u32 every_poll;
__u64 lost_polls;

/* Stacks (see "Stacks", bpf/loop_stacks.bpf.h): take Python stacks in busy periods older
 * than this, ns; 0 = off. Fixed at load (.rodata, set through
 * skel->rodata before load): with 0 the verifier prunes the stack paths. */
const volatile __u64 stack_after_ns;
/* The sampler's gate (see "Stacks"): per loop thread (its slot), the start
 * of its busy period in progress, 0 while it polls. User space reads it in
 * place (.bss is mmapped) a few hundred times a second and opens the
 * threads' cpu-clock events only while one of them is older than
 * stack_after_ns, in that thread's process. A slot is given to each loop
 * thread in turn, modulo LS_MAX_THREADS. */
__u64 busy_since[LS_MAX_THREADS];
__u32 slot_tgid[LS_MAX_THREADS]; /* whose thread holds each slot */
__u64 next_slot;
/* Loop threads whose task-storage marker could not be made (the helper
 * refuses while another task-storage operation is in progress on the CPU):
 * while any, the marker is no filter and every task takes the full path. */
__u64 unmarked;
/* Busy periods of a loop thread whose off-CPU time the scheduler programs
 * did not all see: a switch-in whose switch-out was not seen (a program
 * skipped by the kernel, or a thread not yet marked), a period that ended
 * with the thread still "off" (its switch-in not seen), or a period whose
 * time on the CPU by the scheduler's own clock (task->se.sum_exec_runtime,
 * updated at each switch and tick) is short of duration - blocked -
 * runnable by more than LS_UNSEEN_SLACK_NS (whole episodes unseen: found
 * on this kernel, 1-3 of 500 sleeps of 30 ms with neither the wake-up nor
 * the switch-in traced, by bpftrace either). Those periods' blocked and
 * runnable figures read low; user space reports the count
 * (ls_loop_offcpu_unseen). */
__u64 offcpu_unseen;
/* sum_exec_runtime of a running task lags by up to a tick (4 ms at HZ=250)
 * and the period's edges by a few µs: more than this unexplained is an
 * unseen episode. */
#define LS_UNSEEN_SLACK_NS 5000000ULL
/* Walks in one busy period, at most: a thread that stopped polling (its
 * loop ended, and it went on with other work) stays "busy" for ever. */
#define LS_PERIOD_WALKS_MAX 4096
/* The cpu-clock period (a sample's weight), ns; fixed at load (.rodata). */
const volatile __u64 sample_period_ns = 1000000;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_TARGETS);
	__type(key, __u32);  /* tgid */
	__type(value, __u8); /* unused */
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_THREADS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* tid */
	__type(value, struct ls_thread_stats);
} threads SEC(".maps");

/* The thread table's quota per target (issue #12 item 2; see
 * LS_THREAD_QUOTA): writable, set by user space (ls_loop_opts.thread_quota). */
__u32 thread_quota = LS_THREAD_QUOTA;
__u64 threads_untracked; /* threads not tracked, all targets: over a quota */
__u64 threads_table_full; /* poll entries whose new thread found the table full */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_TARGETS);
	__type(key, __u32); /* tgid */
	__type(value, struct ls_target_threads);
} target_threads SEC(".maps");

/* Entries of each target user space deleted (exited threads), written by
 * user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_TARGETS);
	__type(key, __u32);  /* tgid */
	__type(value, __u64);
} target_released SEC(".maps");

/* Threads counted in `dropped` already: tid -> its start time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LS_UNTRACKED_MAX);
	__type(key, __u32);  /* tid */
	__type(value, __u64);
} untracked SEC(".maps");

/* One all-zero ls_thread_stats: the initial value of a new thread's entry
 * (16 KiB does not fit on the 512-byte BPF stack). Never written. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ls_thread_stats);
} zero_stats SEC(".maps");

/*
 * A marker in task-local storage on each loop thread (made with its
 * `threads` entry at its first poll): the scheduler programs, which run at
 * every context switch and wake-up of the machine, and the poll programs
 * reject a task without task storage with one load (task->bpf_storage,
 * NULL for nearly every task) instead of hash lookups keyed by tgid and
 * tid. The thread's state stays in its `threads` entry.
 */
struct ls_task {
	__u32 tgid;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ls_task);
} tasks SEC(".maps");

/* Stacks: per Python target, what the walker needs (see "Stacks"). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_TARGETS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* tgid */
	__type(value, struct ls_stack_proc);
} py_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LS_RINGBUF_BYTES);
} events SEC(".maps");

/* The per-poll stream's ring (LS_POLL_RINGBUF_BYTES with every_poll; user
 * space sets its size before load). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} polls SEC(".maps");

/* Precise mode's time split: cb_threads, cb_split_episode(). */
#include "loop_cbsplit.bpf.h"

/* Drop an armed walk (the busy period ended): its task work, if it still
 * comes, finds nothing to do. */
static __always_inline void disarm(struct ls_thread_stats *st)
{
	st->walk_pending = 0;
}

/* Whether a new thread of tgid may take an entry of `threads`: its target
 * is under its quota. Counts the entry as inserted (thread_unadmit undoes
 * it when the map refuses it), or the thread as dropped, once per thread.
 * Two threads of one target admitted at the same instant on two CPUs may
 * pass the quota by one each: at most the quota plus one per CPU. */
static __always_inline struct ls_target_threads *thread_admit(__u32 tgid, __u32 tid, __u64 start)
{
	struct ls_target_threads *q = bpf_map_lookup_elem(&target_threads, &tgid), zero = {};
	__u64 *rel, *seen, used;

	if (!q) {
		bpf_map_update_elem(&target_threads, &tgid, &zero, BPF_NOEXIST);
		q = bpf_map_lookup_elem(&target_threads, &tgid);
		if (!q)
			return NULL;
	}
	rel = bpf_map_lookup_elem(&target_released, &tgid);
	used = q->inserted - q->evicted - (rel ? *rel : 0);
	if (used < thread_quota) {
		__sync_fetch_and_add(&q->inserted, 1);
		return q;
	}
	seen = bpf_map_lookup_elem(&untracked, &tid);
	if (!seen || *seen != start) {
		bpf_map_update_elem(&untracked, &tid, &start, BPF_ANY);
		__sync_fetch_and_add(&q->dropped, 1);
		__sync_fetch_and_add(&threads_untracked, 1);
	}
	return NULL;
}

/* A busy_since slot for a new loop thread (compare-and-swap: a fetching
 * add needs BPF v3 atomics, which clang 14 does not emit by default). */
static __always_inline __u32 take_slot(void)
{
	__u64 old = next_slot;

	for (int i = 0; i < 16; i++) {
		__u64 seen = __sync_val_compare_and_swap(&next_slot, old, old + 1);

		if (seen == old)
			break;
		old = seen;
	}
	return old & (LS_MAX_THREADS - 1);
}

/* The calling thread's stats if its process is a target, else NULL. A
 * loop thread has the task storage marker: one load, then its `threads`
 * entry. Any other task finds no storage, then one hash lookup of its tgid
 * in the targets; a target's thread seen for the first time gets both. */
static __always_inline struct ls_thread_stats *loop_thread(__u32 *tid_out)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id, zero = 0;
	__u64 start = task->start_time;
	struct ls_thread_stats *st;
	struct ls_task *lt;
	void *init;

	*tid_out = tid;
	if (task->bpf_storage || unmarked) {
		st = bpf_map_lookup_elem(&threads, &tid);
		if (st && st->tgid == tgid && st->thread_start == start && !st->unmarked)
			return st;
	}
	if (!bpf_map_lookup_elem(&targets, &tgid))
		return NULL;
	st = bpf_map_lookup_elem(&threads, &tid);
	/* A tid the kernel gave out again (another process, or a new thread
	 * of the same one) must not inherit a dead thread's state. */
	if (!st || st->tgid != tgid || st->thread_start != start) {
		__u32 old_tgid = st ? st->tgid : 0;
		struct ls_target_threads *q = NULL;

		init = bpf_map_lookup_elem(&zero_stats, &zero);
		if (!init)
			return NULL;
		/* A new entry, or one taken over from another process's dead
		 * thread, counts against the target's quota (LS_THREAD_QUOTA). */
		if (!st || old_tgid != tgid) {
			q = thread_admit(tgid, tid, start);
			if (!q)
				return NULL;
		}
		if (st) {
			disarm(st); /* the dead thread's armed walk */
			busy_since[st->slot & (LS_MAX_THREADS - 1)] = 0;
			if (st->unmarked) /* its exit was not seen */
				__sync_fetch_and_add(&unmarked, -1);
		}
		if (bpf_map_update_elem(&threads, &tid, init, st ? BPF_EXIST : BPF_NOEXIST)) {
			if (q) {
				__sync_fetch_and_add(&q->inserted, -1);
				if (!st)
					__sync_fetch_and_add(&threads_table_full, 1);
			}
			return NULL;
		}
		if (st && old_tgid != tgid) {
			struct ls_target_threads *oq = bpf_map_lookup_elem(&target_threads, &old_tgid);

			if (oq)
				__sync_fetch_and_add(&oq->evicted, 1);
		}
		st = bpf_map_lookup_elem(&threads, &tid);
		if (!st)
			return NULL;
		st->tgid = tgid;
		st->tid = tid;
		st->thread_start = start;
		st->slot = take_slot();
		slot_tgid[st->slot & (LS_MAX_THREADS - 1)] = tgid;
	}
	/* The marker; when the helper refuses it, the thread is counted in
	 * unmarked (the filters stand aside) and its next polls try again. */
	lt = bpf_task_storage_get(&tasks, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (lt) {
		lt->tgid = tgid;
		if (st->unmarked) {
			st->unmarked = 0;
			__sync_fetch_and_add(&unmarked, -1);
		}
	} else if (!st->unmarked) {
		st->unmarked = 1;
		__sync_fetch_and_add(&unmarked, 1);
	}
	return st;
}

/*
 * Loop lag (timer lateness). A poll entered at t with timeout T > 0 states
 * "my next timer is due at D = t + T": that deadline becomes the thread's
 * pending deadline, replacing any earlier one (the loop recomputes its
 * timeout from its earliest timer at every entry).
 *  - Poll return at x >= D (the timeout expired, or I/O arrived after D):
 *    lateness = x - D, recorded, pending cleared. This includes the wake-up
 *    latency of the kernel timer (timer slack, scheduling).
 *  - Early return x < D (I/O): the deadline still stands; the loop runs its
 *    callbacks and its next entry restates the deadline.
 *  - Entry with T = 0 (ready work waiting, asyncio's "timeout 0 when ready"):
 *    the pending deadline is kept. If the loop was busy past D, this poll
 *    returns at once and its return is when the loop gets back to
 *    dispatching: lateness = that return - D. This is how a callback that
 *    blocks the loop shows up as lag.
 *  - Entry with T = -1 (no timers): pending cleared.
 *  - An entry (T != 0) that finds the pending deadline already passed means
 *    the loop served or dropped that timer without returning from a poll
 *    after it (libuv runs due timers before polling): counted in lag_missed,
 *    not guessed.
 * For epoll_wait/epoll_pwait T is whole ms, which loops round up (asyncio
 * ceils): D may be up to ~1 ms after the loop's real timer, so lateness reads
 * up to ~2 ms low there (asyncio rounds up twice); epoll_pwait2 gives ns.
 * Documented in docs/METRICS.md.
 */
/* One poll of st entered at `now` (every_poll): into the `polls` ring,
 * without waking the reader (it drains the ring when it wakes: a wake-up
 * per poll would cost the target an irq_work each). Called before the
 * thread's state moves on: poll_exit_ns is still the previous return. */
static __always_inline void emit_poll(struct ls_thread_stats *st, __u32 tid, __u64 now,
				      __s64 timeout_ns)
{
	struct ls_poll_event *e;

	if (!every_poll)
		return;
	e = bpf_ringbuf_reserve(&polls, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&lost_polls, 1);
		return;
	}
	e->tgid = st->tgid;
	e->tid = tid;
	e->seq = (__u32)(st->polls + 1);
	e->pad = 0;
	e->enter_ns = now;
	e->prev_exit_ns = st->in_poll ? 0 : st->poll_exit_ns;
	e->timeout_ns = timeout_ns;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* The end of a slow busy period that has on-CPU samples: their weight
 * caught up with the scheduler's clock (on: its on-CPU time) after the
 * last sample (bpf/loop_stacks.bpf.h). */
static __always_inline void sample_tail(struct ls_thread_stats *st, __u32 tid, __u64 on);

/*
 * Cost (issue #14 item 2; bpf_stats on the 3.12 callback storm, this 2-vCPU
 * KVM guest, micro-programs measured alone on sys_enter_epoll_wait, medians
 * of 5): an empty program reads ~50 ns (the stats' own clock reads),
 * bpf_ktime_get_ns ~145 ns more at a poll entry (the first clock read after
 * the loop's own code; kvm-clock, whose clock_gettime costs ~90 ns in user
 * space here too; far less at the return just after), a hash lookup by tid
 * ~85, an inlined array lookup ~45, bpf_task_storage_get ~155, the
 * task->bpf_storage load ~35. Dropping the entry's clock read moved its
 * cost to the return: one cold clock read per iteration stays.
 */
static __always_inline void poll_enter_at(enum ls_poll_kind kind, __s64 timeout_ns,
					  struct ls_thread_stats *st, __u32 tid)
{
	__u64 now, busy;

	now = bpf_ktime_get_ns();
	emit_poll(st, tid, now, timeout_ns);

	if (st->poll_exit_ns && !st->in_poll) {
		busy = now - st->poll_exit_ns;
		ls_hist_add(&st->busy, busy);
		if (busy > slow_threshold_ns) {
			/* The on/off-CPU split checked against the scheduler's
			 * own on-CPU clock (see offcpu_unseen). */
			__u64 on = bpf_get_current_task_btf()->se.sum_exec_runtime - st->exec_at_exit_ns;
			__u64 off = st->cur_blocked_ns + st->cur_runnable_ns, untraced = 0;

			if (busy > off + on && busy - off - on > LS_UNSEEN_SLACK_NS)
				untraced = busy - off - on;
			if (st->off_since_ns || untraced)
				__sync_fetch_and_add(&offcpu_unseen, 1);
			if (st->sampled_busy_ns == st->poll_exit_ns && st->period_sampled_ns)
				sample_tail(st, tid, on);

			struct ls_slow_busy_event *e;

			st->slow_busy++;
			e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
			if (e) {
				e->type = LS_EV_SLOW_BUSY;
				e->tgid = st->tgid;
				e->tid = tid;
				e->pad = 0;
				e->start_ns = st->poll_exit_ns;
				e->duration_ns = busy;
				e->poll_timeout_ns = timeout_ns;
				e->blocked_ns = st->cur_blocked_ns;
				e->runnable_ns = st->cur_runnable_ns;
				e->top_block_ns = st->cur_top_block_ns;
				e->top_syscall = st->cur_top_syscall;
				e->untraced_us = untraced / 1000 > 0xffffffffULL ? 0xffffffffU
									       : (__u32)(untraced / 1000);
				bpf_ringbuf_submit(e, 0);
			} else {
				__sync_fetch_and_add(&lost_events, 1);
			}
		}
	}

	if (timeout_ns != 0) {
		if (st->deadline_ns && st->deadline_ns <= now)
			st->lag_missed++;
		st->deadline_ns = timeout_ns > 0 ? now + (__u64)timeout_ns : 0;
	}

	if (!st->first_enter_ns)
		st->first_enter_ns = now;
	st->polls++;
	st->poll_kind = kind;
	st->poll_enter_ns = now;
	st->in_poll = 1;
	busy_since[st->slot & (LS_MAX_THREADS - 1)] = 0;
}

static __always_inline void poll_enter(enum ls_poll_kind kind, __s64 timeout_ns)
{
	struct ls_thread_stats *st;
	__u32 tid;

	st = loop_thread(&tid);
	if (st)
		poll_enter_at(kind, timeout_ns, st, tid);
}

static __always_inline void poll_exit(void)
{
	struct ls_thread_stats *st;
	__u64 now;
	__u32 tid;

	st = loop_thread(&tid);
	if (!st)
		return;
	now = bpf_ktime_get_ns();
	if (st->in_poll)
		ls_hist_add(&st->poll, now - st->poll_enter_ns);
	if (st->deadline_ns && now >= st->deadline_ns) {
		ls_hist_add(&st->lag, now - st->deadline_ns);
		st->deadline_ns = 0;
	}
	st->in_poll = 0;
	st->poll_exit_ns = now;
	st->exec_at_exit_ns = bpf_get_current_task_btf()->se.sum_exec_runtime;
	busy_since[st->slot & (LS_MAX_THREADS - 1)] = now;
	disarm(st); /* an armed walk of the last busy period */
	/* A new busy period: its off-CPU accounting starts from zero. */
	st->off_since_ns = 0;
	st->cur_blocked_ns = 0;
	st->cur_runnable_ns = 0;
	st->carry_blocked_ns = 0;
	st->carry_runnable_ns = 0;
	st->carry_syscall = -1;
	st->period_walks = 0;
	st->cur_top_block_ns = 0;
	st->cur_top_syscall = -1;
}

static __always_inline __s64 ms_timeout_ns(unsigned long arg)
{
	int ms = (int)arg;

	return ms < 0 ? -1 : (__s64)ms * 1000000;
}

SEC("tracepoint/syscalls/sys_enter_epoll_wait")
int ls_enter_epoll_wait(struct trace_event_raw_sys_enter *ctx)
{
	poll_enter(LS_POLL_EPOLL_WAIT, ms_timeout_ns(ctx->args[3]));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_epoll_pwait")
int ls_enter_epoll_pwait(struct trace_event_raw_sys_enter *ctx)
{
	poll_enter(LS_POLL_EPOLL_PWAIT, ms_timeout_ns(ctx->args[3]));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_epoll_pwait2")
int ls_enter_epoll_pwait2(struct trace_event_raw_sys_enter *ctx)
{
	struct __kernel_timespec ts;
	const void *uts = (const void *)ctx->args[3];
	__s64 timeout_ns = -1;
	struct ls_thread_stats *st;
	__u32 tid;

	/* Only read the timespec of targets: the thread first. */
	st = loop_thread(&tid);
	if (!st)
		return 0;
	if (uts) {
		if (bpf_probe_read_user(&ts, sizeof(ts), uts) == 0 &&
		    ts.tv_sec >= 0 && ts.tv_nsec >= 0)
			timeout_ns = ts.tv_sec * 1000000000LL + ts.tv_nsec;
		else
			timeout_ns = 0; /* the kernel fails the call: EINVAL/EFAULT */
	}
	poll_enter_at(LS_POLL_EPOLL_PWAIT2, timeout_ns, st, tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_wait")
int ls_exit_epoll_wait(struct trace_event_raw_sys_exit *ctx)
{
	poll_exit();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_pwait")
int ls_exit_epoll_pwait(struct trace_event_raw_sys_exit *ctx)
{
	poll_exit();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_pwait2")
int ls_exit_epoll_pwait2(struct trace_event_raw_sys_exit *ctx)
{
	poll_exit();
	return 0;
}

/*
 * Following descendants (`loopscope run`; not loaded by `attach`). BTF
 * tracepoints (kernel/fork.c trace_sched_process_fork(current, p) and
 * fs/exec.c trace_sched_process_exec(current, old_pid, bprm)); they run
 * for every fork and exec on the machine, so the filter comes first.
 */
static __always_inline void proc_event(__u32 type, __u32 tgid, __u32 ppid)
{
	struct ls_proc_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		__sync_fetch_and_add(&lost_events, 1);
		return;
	}
	e->type = type;
	e->tgid = tgid;
	e->ppid = ppid;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(ls_follow_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid), ctgid = BPF_CORE_READ(child, tgid);
	__u8 one = 1;

	if (ptgid == ctgid || !bpf_map_lookup_elem(&targets, &ptgid))
		return 0; /* a new thread, or not ours */
	/* In the kernel, before the child runs: nothing it does is missed. */
	bpf_map_update_elem(&targets, &ctgid, &one, BPF_ANY);
	proc_event(LS_EV_FORK, ctgid, ptgid);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ls_follow_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	proc_event(LS_EV_EXEC, tgid, 0);
	return 0;
}

/*
 * On or off the CPU during a busy period: BTF tracepoints
 * sched_switch(preempt, prev, next, prev_state) (kernel/sched/core.c,
 * __schedule; prev_state since 5.18) and sched_wakeup(p) (ttwu). A target
 * thread that leaves the CPU inside a busy period is blocked (prev_state not
 * TASK_RUNNING: it sleeps in the kernel, in the syscall its saved registers
 * name, pt_regs->orig_ax on x86-64) or runnable (preempted). A wake-up
 * turns blocked into runnable; being switched back in ends it. These run at
 * every context switch of the machine: the filter comes first.
 */
static __always_inline struct ls_thread_stats *busy_thread(struct task_struct *t)
{
	struct ls_thread_stats *st;
	__u32 tid;

	/* Most tasks have no task storage at all: one load (a wake-up of
	 * another CPU's task finds that cache line cold already). */
	if (!t->bpf_storage && !unmarked)
		return NULL;
	tid = t->pid;
	st = bpf_map_lookup_elem(&threads, &tid);
	if (!st || st->tgid != t->tgid || st->in_poll || !st->poll_exit_ns)
		return NULL; /* not a loop thread, or not in a busy period */
	return st;
}

static __always_inline void end_block(struct ls_thread_stats *st, __u64 now)
{
	__u64 d = now - st->off_since_ns;

	st->cur_blocked_ns += d;
	st->ep_blocked_ns += d;
	if (d > st->cur_top_block_ns) {
		st->cur_top_block_ns = d;
		st->cur_top_syscall = st->off_syscall;
	}
}

/*
 * The walk at the end of an off-CPU episode runs in the thread's own
 * context, as task work (kernel/bpf/helpers.c bpf_task_work_schedule_resume,
 * TWA_RESUME: on its way back to user space, before any Python code runs
 * again). Its struct bpf_task_work lives in a map value: one per thread,
 * keyed by tid, made at its first walk.
 */
extern int bpf_task_work_schedule_resume_impl(struct task_struct *task, struct bpf_task_work *tw,
					      void *map__map, bpf_task_work_callback_t callback,
					      void *aux__prog) __ksym;

struct walk_work {
	struct bpf_task_work tw;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_THREADS);
	__type(key, __u32); /* tid */
	__type(value, struct walk_work);
} walk_works SEC(".maps");

static int walk_work_cb(struct bpf_map *map, void *key, void *value);

/* Schedule the off-CPU walk of t (a thread switched in); false when it
 * cannot be (no room, or one is still scheduled): its time is carried. */
static __always_inline bool arm_walk(struct task_struct *t, struct ls_thread_stats *st)
{
	__u32 tid = t->pid;
	struct walk_work *w = bpf_map_lookup_elem(&walk_works, &tid);

	if (!w) {
		struct walk_work zero = {};

		bpf_map_update_elem(&walk_works, &tid, &zero, BPF_NOEXIST);
		w = bpf_map_lookup_elem(&walk_works, &tid);
		if (!w)
			return false;
	}
	return bpf_task_work_schedule_resume_impl(t, &w->tw, &walk_works, walk_work_cb, NULL) == 0;
}

static __always_inline int sched_switch(struct task_struct *prev, struct task_struct *next,
					unsigned int prev_state, bool stacks)
{
	struct ls_thread_stats *st;
	__u64 now = 0;

	st = busy_thread(prev);
	if (st) {
		now = bpf_ktime_get_ns();
		st->off_since_ns = now;
		if (prev_state == 0) { /* TASK_RUNNING: preempted */
			st->off_state = LS_OFF_RUNNABLE;
			st->off_syscall = -1;
		} else {
			struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(prev);

			st->off_state = LS_OFF_BLOCKED;
			st->off_syscall = regs ? (__s32)BPF_CORE_READ(regs, orig_ax) : -1;
			/* Stopped (SIGSTOP, a debugger) or traced: orig_ax
			 * is the last syscall, not one in progress, and no
			 * syscall return follows (include/linux/sched.h __TASK_STOPPED
			 * 0x4, __TASK_TRACED 0x8). */
			if (prev_state & (0x4 | 0x8))
				st->off_syscall = -1;
		}
		if (st->walk_pending) { /* its walk has not come yet: keep its time */
			st->carry_blocked_ns += st->ep_blocked_ns;
			st->carry_runnable_ns += st->ep_runnable_ns;
			/* Only a block names the syscall: a second preemption
			 * before the walk (a loaded machine) must not replace
			 * the carried block's syscall with none. */
			if (st->ep_blocked_ns)
				st->carry_syscall = st->ep_syscall;
		}
		st->ep_start_ns = now;
		st->ep_syscall = st->off_syscall;
		st->ep_blocked_ns = 0;
		st->ep_runnable_ns = 0;
	}
	st = busy_thread(next);
	if (st && !st->off_since_ns)
		__sync_fetch_and_add(&offcpu_unseen, 1);
	if (st && st->off_since_ns) {
		if (!now)
			now = bpf_ktime_get_ns();
		if (st->off_state == LS_OFF_BLOCKED) {
			end_block(st, now); /* no wake-up seen: all of it blocked */
		} else {
			st->cur_runnable_ns += now - st->off_since_ns;
			st->ep_runnable_ns += now - st->off_since_ns;
		}
		st->off_since_ns = 0;
		cb_split_episode(st);
		/* Stacks: take this episode's stack in the thread's own
		 * context on its way back to user space (see "Stacks",
		 * bpf/loop_stacks.bpf.h); a
		 * preemption, or an episode soon after the last walk, goes
		 * with the next stack taken instead, unless the period has
		 * no stack yet: then the preemption's is taken (its wait for
		 * a CPU, on its stack). A starved thread's on-CPU samples
		 * may never come: the gate that opens them is a thread of
		 * ours, which waits for a CPU too (beside dd and two CPU
		 * hogs, 2 of 5 uvloop runs had an 80 ms callback, 31-64 ms
		 * of it waiting for a CPU, with no stack and so no name). */
		if (stacks && stack_after_ns && !st->walk_pending &&
		    now - st->poll_exit_ns >= stack_after_ns &&
		    st->period_walks < LS_PERIOD_WALKS_MAX &&
		    bpf_map_lookup_elem(&py_procs, &st->tgid)) {
			if ((st->ep_syscall < 0 && st->period_walks) ||
			    now - st->last_walk_ns < sample_period_ns) {
				st->carry_blocked_ns += st->ep_blocked_ns;
				st->carry_runnable_ns += st->ep_runnable_ns;
				if (st->ep_blocked_ns)
					st->carry_syscall = st->ep_syscall;
			} else if (arm_walk(next, st)) {
				st->walk_pending = 1;
			} else {
				st->carry_blocked_ns += st->ep_blocked_ns;
				st->carry_runnable_ns += st->ep_runnable_ns;
				if (st->ep_blocked_ns)
					st->carry_syscall = st->ep_syscall;
			}
		}
	}
	return 0;
}

/* Two versions, one loaded: with stacks, the switch-in may schedule a walk
 * (a kfunc of 6.18+, bpf_task_work_schedule_resume); without, the light
 * mode's programs load on kernels that lack it. */
SEC("tp_btf/sched_switch")
int BPF_PROG(ls_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	return sched_switch(prev, next, prev_state, false);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ls_sched_switch_stacks, bool preempt, struct task_struct *prev,
	     struct task_struct *next, unsigned int prev_state)
{
	return sched_switch(prev, next, prev_state, true);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(ls_sched_wakeup, struct task_struct *p)
{
	struct ls_thread_stats *st = busy_thread(p);
	__u64 now;

	if (!st || !st->off_since_ns || st->off_state != LS_OFF_BLOCKED)
		return 0;
	now = bpf_ktime_get_ns();
	end_block(st, now);
	st->off_since_ns = now;
	st->off_state = LS_OFF_RUNNABLE;
	return 0;
}

/* Stacks: the walker and its triggers (bpf/loop_stacks.bpf.h). */
#include "loop_stacks.bpf.h"
