/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Precise mode's state shared by bpf/pycallback.bpf.c and bpf/loop.bpf.c
 * (included once by each; loop.bpf.c includes it after its maps): the
 * callback frames open per thread (struct ls_cb_frame,
 * include/loopscope/abi/pycallback_events.h), the per-callback histograms,
 * the slow-callback ring and its accounting. When both objects run, user
 * space hands loop.bpf.c's maps to pycallback.bpf.c before that loads
 * (ls_pycb_open), so there is one of each map; loop.bpf.c then
 * - adds each off-CPU episode of a loop thread, as it ends, to the frames
 *   open on it (cb_split_episode), and
 * - ends, at a poll entry, a callback entered without a return probe
 *   (LS_CB_FR_NORET: the loop's next poll is the end of the last callback
 *   of an iteration; cb_poll_enter).
 * Without pycallback.bpf.c these maps stay empty (cb_split is 0: nothing
 * is looked up). */
#ifndef LOOPSCOPE_LOOP_CBSPLIT_BPF_H
#define LOOPSCOPE_LOOP_CBSPLIT_BPF_H

#include "loopscope/abi/loop_events.h"
#include "loopscope/abi/pycallback_events.h"

/* 1 once bpf/pycallback.bpf.c shares cb_threads (ls_loop_cb_split); 0: no
 * precise mode, nothing looked up. (In pycallback.bpf.c: unused.) */
__u32 cb_split;

/* Callback frames, keyed by tid. Not preallocated: memory only for
 * threads that ran a callback in precise mode. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_THREADS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* tid */
	__type(value, struct ls_cb_thread);
} cb_threads SEC(".maps");

/* Per-callback duration histograms. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_CALLBACKS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ls_cb_key);
	__type(value, struct ls_cb_stats);
} cb_stats SEC(".maps");

/* All-zero initial value of a cb_stats entry (5 KiB: not on the stack);
 * each object has its own. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ls_cb_stats);
} zero_cb_stats SEC(".maps");

/* Slow-callback events (struct ls_slow_callback_event). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} cb_events SEC(".maps");

/* [0]: slow-callback events lost to a full ring. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cb_lost SEC(".maps");

/* A callback's frame f of thread tid (state th) ended at now: its
 * histogram, and an event when longer than th->slow_ns, with its off-CPU
 * split when lt (the thread's loop state; NULL: looked up by tid in
 * lt_map, for slow ones only, when lt_map is not NULL) shows that
 * loop.bpf.c followed the thread through all of it (one busy period, from
 * before f began to now). */
static __always_inline void cb_account(__u32 tid, const struct ls_cb_thread *th,
				       struct ls_cb_frame *f, const struct ls_thread_stats *lt,
				       void *lt_map, __u64 now)
{
	__u64 dur = now - f->start_ns;
	struct ls_cb_stats *st;
	__u32 zero = 0;
	void *init;

	st = bpf_map_lookup_elem(&cb_stats, &f->key);
	if (!st) {
		init = bpf_map_lookup_elem(&zero_cb_stats, &zero);
		if (!init)
			return;
		bpf_map_update_elem(&cb_stats, &f->key, init, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&cb_stats, &f->key);
	}
	if (st)
		ls_hist_add_shared(&st->duration, dur);

	if (dur > th->slow_ns) {
		struct ls_slow_callback_event *e;

		e = bpf_ringbuf_reserve(&cb_events, sizeof(*e), 0);
		if (!e) {
			__u64 *lost = bpf_map_lookup_elem(&cb_lost, &zero);

			if (lost)
				__sync_fetch_and_add(lost, 1);
			return;
		}
		e->type = LS_EV_SLOW_CALLBACK;
		e->tid = tid;
		e->key = f->key;
		e->start_ns = f->start_ns;
		e->duration_ns = dur;
		if (!lt && lt_map)
			lt = bpf_map_lookup_elem(lt_map, &tid);
		if (lt && lt->tgid == f->key.tgid && lt->thread_start == th->thread_start &&
		    !lt->in_poll && lt->poll_exit_ns && lt->poll_exit_ns <= f->start_ns) {
			e->split = LS_CB_SPLIT_EXACT;
			e->blocked_ns = f->blocked_ns;
			e->runnable_ns = f->runnable_ns;
			e->top_block_ns = f->top_block_ns;
			e->top_syscall = f->top_syscall;
		} else {
			e->split = LS_CB_SPLIT_NONE;
			e->blocked_ns = 0;
			e->runnable_ns = 0;
			e->top_block_ns = 0;
			e->top_syscall = -1;
		}
		bpf_ringbuf_submit(e, 0);
	}
}

/* The user stack pointer of the current task (at a syscall or uprobe:
 * where it was in user space). */
static __always_inline __u64 cb_user_sp(void)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return regs ? BPF_CORE_READ(regs, sp) : 0;
}

/* Loop thread st (task t) has just come back on a CPU, ending an off-CPU
 * episode (from st->ep_start_ns; st->ep_blocked_ns sleeping, in
 * st->ep_syscall; st->ep_runnable_ns waiting for a CPU). First, frames
 * entered without a return probe (LS_CB_FR_NORET) whose call had returned
 * before the episode began end where it began: the thread left the CPU at
 * a user stack position above their context_run entry (pt_regs->sp, saved
 * at its last entry into the kernel before it left), so a preemption or a
 * block between a callback's return and the next context_run or poll
 * entry is not counted in it. Then add the episode to every frame still
 * open. Runs in the scheduler, while the thread itself cannot run, so its
 * own uprobes (which push and pop the frames) never race with this. One
 * hash lookup per episode of a busy loop thread, none per callback. */
static __always_inline void cb_split_episode(const struct ls_thread_stats *st,
					     struct task_struct *t)
{
	struct ls_cb_thread *th;
	__u32 tid = st->tid, depth;

	if (!cb_split)
		return;
	th = bpf_map_lookup_elem(&cb_threads, &tid);
	if (!th || !th->depth || th->thread_start != st->thread_start)
		return;
	if (th->frames[(th->depth - 1) & (LS_CB_MAX_DEPTH - 1)].flags & LS_CB_FR_NORET) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
		__u64 sp = regs ? BPF_CORE_READ(regs, sp) : 0;

		for (int i = 0; i < LS_CB_MAX_DEPTH; i++) {
			__u32 d = th->depth;
			struct ls_cb_frame *f;

			if (d == 0 || d > LS_CB_MAX_DEPTH)
				break;
			f = &th->frames[(d - 1) & (LS_CB_MAX_DEPTH - 1)];
			if (!(f->flags & LS_CB_FR_NORET) || sp <= f->sp ||
			    st->ep_start_ns < f->start_ns)
				break;
			th->depth = d - 1;
			if (th->runs)
				th->runs--;
			cb_account(tid, th, f, st, NULL, st->ep_start_ns);
		}
		if (!th->depth)
			return;
	}
	depth = th->depth;
	for (__u32 i = 0; i < LS_CB_MAX_DEPTH; i++) {
		struct ls_cb_frame *f = &th->frames[i];

		if (i >= depth)
			break;
		f->blocked_ns += st->ep_blocked_ns;
		f->runnable_ns += st->ep_runnable_ns;
		if (st->ep_blocked_ns > f->top_block_ns) {
			f->top_block_ns = st->ep_blocked_ns;
			f->top_syscall = st->ep_syscall;
		}
	}
}

/* Loop thread st (tid) enters its poll at now (called by loop.bpf.c's
 * poll_enter_at before it marks the thread in its poll): end the frames
 * entered without a return probe (LS_CB_FR_NORET, only made on a thread
 * seen polling here) on top of its stack, when this is the poll that
 * follows them, i.e. one of:
 * - this poll is at the same user stack position as the one before the
 *   frame (the loop's next poll: a loop polls from one place);
 * - this poll is above the frame's context_run entry on the stack (so
 *   that call has returned).
 * A poll below the frame at another position is a poll made inside the
 * callback (a nested loop, a blocking selector): the frame stays open.
 * Then remember this poll's position. One hash lookup per poll in precise
 * mode; none otherwise. */
static __always_inline void cb_poll_enter(const struct ls_thread_stats *st, __u32 tid, __u64 now)
{
	struct ls_cb_thread *th;
	__u64 sp;

	if (!cb_split)
		return;
	th = bpf_map_lookup_elem(&cb_threads, &tid);
	if (!th || th->thread_start != st->thread_start)
		return;
	sp = cb_user_sp();
	for (int i = 0; i < LS_CB_MAX_DEPTH; i++) {
		__u32 d = th->depth;
		struct ls_cb_frame *f;

		if (d == 0 || d > LS_CB_MAX_DEPTH)
			break;
		f = &th->frames[(d - 1) & (LS_CB_MAX_DEPTH - 1)];
		if (!(f->flags & LS_CB_FR_NORET))
			break;
		if (f->poll_sp != sp && sp <= f->sp)
			break;
		th->depth = d - 1;
		if (th->runs)
			th->runs--;
		cb_account(tid, th, f, st, NULL, now);
	}
	th->poll_sp = sp;
}

#endif /* LOOPSCOPE_LOOP_CBSPLIT_BPF_H */
