/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Precise mode's time split, in bpf/loop.bpf.c (included once by it, after
 * its maps): each off-CPU episode of a loop thread, as it ends, added to the
 * callback frames open on the thread (struct ls_cb_frame,
 * include/loopscope/abi/pycallback_events.h). */
#ifndef LOOPSCOPE_LOOP_CBSPLIT_BPF_H
#define LOOPSCOPE_LOOP_CBSPLIT_BPF_H

#include "loopscope/abi/pycallback_events.h"

/* 1 once bpf/pycallback.bpf.c shares cb_threads (ls_loop_cb_split); 0: no
 * precise mode, nothing looked up. */
__u32 cb_split;

/* bpf/pycallback.bpf.c's callback frames, keyed by tid: the same map (its
 * fd goes to pycallback.bpf.c before that object loads). Not preallocated:
 * memory only for threads that ran a callback in precise mode. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_THREADS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* tid */
	__type(value, struct ls_cb_thread);
} cb_threads SEC(".maps");

/* Loop thread st has just come back on a CPU, ending an off-CPU episode
 * (st->ep_blocked_ns sleeping, in st->ep_syscall; st->ep_runnable_ns
 * waiting for a CPU): add it to every frame open on the thread. Runs in
 * the scheduler, while the thread itself cannot run, so its own uprobes
 * (which push and pop the frames) never race with this. One hash lookup per
 * episode of a busy loop thread, none per callback. */
static __always_inline void cb_split_episode(const struct ls_thread_stats *st)
{
	struct ls_cb_thread *th;
	__u32 tid = st->tid, depth;

	if (!cb_split)
		return;
	th = bpf_map_lookup_elem(&cb_threads, &tid);
	if (!th || !th->depth || th->thread_start != st->thread_start)
		return;
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

#endif /* LOOPSCOPE_LOOP_CBSPLIT_BPF_H */
