/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* The Python stack walker of bpf/loop.bpf.c, kept in its own room: included
 * once, at the end of loop.bpf.c (one BPF object; its maps, settings and
 * per-thread state are loop.bpf.c's). */
#ifndef LOOPSCOPE_LOOP_STACKS_BPF_H
#define LOOPSCOPE_LOOP_STACKS_BPF_H

/*
 * Stacks: the Python stack of a loop thread inside a busy period already
 * older than stack_after_ns (0: stacks off), so that nothing is walked
 * while the loop is healthy. Two triggers:
 *  - cpu-clock sampling (ls_stack_sample, a perf_event program on each
 *    thread of a target): an on-CPU stack, weighted by the thread's CPU
 *    time since its last sample (a sampling period, more when the timer
 *    missed ticks). The events exist only while some loop thread of the
 *    process is in a busy period older than (nearly) stack_after_ns,
 *    which user space reads in busy_since[] (the poll programs keep it;
 *    agent/session/loop.c, the gate), so a healthy loop's context
 *    switches re-arm no sampling timer;
 *  - the end of an off-CPU episode (sched_switch out, then back in): the
 *    thread's Python stack has not moved while it was off the CPU, but the
 *    switch-in runs in another task's context, where its memory cannot be
 *    read. So the switch-in schedules task work on the thread (arm_walk,
 *    bpf/loop.bpf.c), and the stack is taken in the thread's own context
 *    on its way back to user space from the syscall it blocked in
 *    (walk_work_cb, before any Python code runs again); no program runs at
 *    other syscalls. The time of a preemption (no syscall), or of an
 *    episode less than a sampling period after the thread's last walk, is
 *    carried to the next stack taken (st->carry_*), which bounds walks to
 *    about two per period per thread however often a starved or chatty
 *    thread switches; but a preemption in a period with no stack yet is
 *    walked (a starved thread's samples may not come in time: the gate
 *    that opens them waits for a CPU too).
 *
 * The walk (CPython 3.8+, offsets from the ls_stack_proc of the process:
 * a table row, or the interpreter's own debug offsets on 3.13+): _PyRuntime.interpreters.head -> the interpreter's thread list
 * (tstate_head <= 3.10, threads.head 3.11+), the PyThreadState whose
 * thread_id (pthread_self(), which on x86-64 glibc and musl is the thread
 * pointer, task->thread.fsbase) is this thread's; its top frame (frame
 * <= 3.10, cframe->current_frame 3.11/3.12, current_frame 3.13+); then
 * f_back / previous, at most LS_STACK_MAX frames. The "current thread
 * state" pointers are not used: they are NULL while the thread has
 * released the GIL, which is exactly while it is blocked.
 */
__u64 stack_walks;         /* walks done: the "no work when healthy" proof */
__u64 stack_walk_errors;   /* walks that found no frames */


/* tid -> its PyThreadState, found once by the list walk and re-checked on
 * use; or, when the walk found none, when it last looked (the walk is not
 * repeated within a second: a C thread of a Python process has none). */
struct tstate_cache {
	__u64 tstate;
	__u64 missed_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct tstate_cache);
} tstates SEC(".maps");

/* Thread states looked at in one walk of an interpreter's list, at most. */
#define LS_MAX_PY_THREADS 4096
#define LS_TSTATE_RETRY_NS 1000000000ULL

/* Where a stack event is built: slot 2 for task work (walk_work_cb, which
 * takes it with scratch_busy), slot 1 for the perf_event program, which
 * may interrupt it on the same CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, struct ls_stack_event);
} stack_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} scratch_busy SEC(".maps");

static __always_inline __u64 read_ptr(__u64 addr)
{
	__u64 v = 0;

	if (bpf_probe_read_user(&v, sizeof(v), (const void *)addr))
		return 0;
	return v;
}

struct tstate_walk {
	const struct ls_stack_proc *pp;
	__u64 ts, fsbase, found;
};

static int tstate_one(__u32 i, struct tstate_walk *w)
{
	if (!w->ts)
		return 1;
	if (read_ptr(w->ts + w->pp->off.tstate_thread_id) == w->fsbase) {
		w->found = w->ts;
		return 1;
	}
	w->ts = read_ptr(w->ts + w->pp->off.tstate_next);
	return 0;
}

/* The PyThreadState of the current thread, or 0. The main interpreter's
 * list: _PyRuntime.interpreters.main, which follows interpreters.head in
 * struct pyinterpreters on 3.8-3.15 (internal/pycore_pystate.h 3.8,
 * internal/pycore_runtime.h 3.9-3.13, pycore_runtime_structs.h 3.14/3.15:
 * a lock or PyMutex, head, main; 3.13+ checked: interpreters_head + 16 <=
 * sizeof(_PyRuntimeState) by agent/pydebug.c);
 * interpreters.head is the newest interpreter, not the main one. New
 * thread states are prepended, so a loop thread started first is last. */
static __always_inline __u64 find_tstate(const struct ls_stack_proc *pp, __u32 tid)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct tstate_walk w = { .pp = pp, .fsbase = task->thread.fsbase };
	struct tstate_cache *cached, fresh = {};
	__u64 interp, now = bpf_ktime_get_ns();

	cached = bpf_map_lookup_elem(&tstates, &tid);
	if (cached && cached->tstate &&
	    read_ptr(cached->tstate + pp->off.tstate_thread_id) == w.fsbase)
		return cached->tstate;
	if (cached && !cached->tstate && now - cached->missed_ns < LS_TSTATE_RETRY_NS)
		return 0;
	interp = read_ptr(pp->runtime_addr + pp->off.runtime_interpreters_head + 8);
	if (interp) {
		w.ts = read_ptr(interp + pp->off.interp_threads_head);
		bpf_loop(LS_MAX_PY_THREADS, tstate_one, &w, 0);
	}
	fresh.tstate = w.found;
	fresh.missed_ns = w.found ? 0 : now;
	bpf_map_update_elem(&tstates, &tid, &fresh, BPF_ANY);
	return w.found;
}

struct walk_ctx {
	const struct ls_stack_proc *pp;
	struct ls_stack_event *ev;
	__u64 frame;
	__u32 n;
};

static int walk_one(__u32 i, struct walk_ctx *c)
{
	const struct ls_py_offsets *o = &c->pp->off;
	__u64 frame = c->frame, code, instr = 0;

	if (!frame)
		return 1;
	if (o->flags & LS_PYOFF_IFRAME) {
		__u8 owner = 0;

		code = read_ptr(frame + o->frame_code);
		/* 3.14+: f_executable is a _PyStackRef, tagged in its low bits. */
		if (o->flags & LS_PYOFF_STACKREF)
			code &= ~LS_PY_TAG_BITS;
		instr = read_ptr(frame + o->frame_instr);
		bpf_probe_read_user(&owner, 1, (const void *)(frame + o->frame_owner));
		c->frame = read_ptr(frame + o->frame_previous);
		/* 3.12+: shim frames of C entry points (FRAME_OWNED_BY_CSTACK
		 * 3.12/3.13, FRAME_OWNED_BY_INTERPRETER 3.14+) belong to no
		 * code of their own. */
		if (owner >= LS_PY_FRAME_OWNED_MIN_SKIP)
			return 0;
	} else {
		int lasti = 0;

		code = read_ptr(frame + o->f_code);
		bpf_probe_read_user(&lasti, sizeof(lasti), (const void *)(frame + o->f_lasti));
		instr = (__u64)(__s64)lasti;
		c->frame = read_ptr(frame + o->f_back);
	}
	if (!code)
		return 0;
	if (c->n < LS_STACK_MAX) {
		c->ev->frames[c->n & (LS_STACK_MAX - 1)].code = code;
		c->ev->frames[c->n & (LS_STACK_MAX - 1)].instr = instr;
		c->n++;
		return 0;
	}
	c->ev->truncated = 1;
	return 1;
}

/* Fill ev's frames with the current thread's Python stack. */
static __always_inline void walk_stack(struct ls_stack_event *ev, __u32 tgid, __u32 tid)
{
	const struct ls_stack_proc *pp = bpf_map_lookup_elem(&py_procs, &tgid);
	struct walk_ctx c = {};
	__u64 ts, frame;

	ev->nframes = 0;
	ev->truncated = 0;
	ev->task = 0;
	__sync_fetch_and_add(&stack_walks, 1);
	if (!pp) {
		ev->error = LS_STACK_NO_PYTHON;
		goto fail;
	}
	ts = find_tstate(pp, tid);
	if (!ts) {
		ev->error = LS_STACK_NO_TSTATE;
		goto fail;
	}
	/* The Task it runs (3.14+): its await chain is read in user space,
	 * from this address, once per slow period (include/loopscope/pytask.h). */
	if (pp->off.tstate_running_task)
		ev->task = read_ptr(ts + pp->off.tstate_running_task);
	if (pp->off.flags & LS_PYOFF_CFRAME) {
		__u64 cframe = read_ptr(ts + pp->off.tstate_cframe);

		frame = cframe ? read_ptr(cframe + pp->off.cframe_current_frame) : 0;
	} else {
		frame = read_ptr(ts + pp->off.tstate_frame);
	}
	c.pp = pp;
	c.ev = ev;
	c.frame = frame;
	/* Shim frames (3.12+: one per C-to-Python call) take turns too. */
	bpf_loop(2 * LS_STACK_MAX, walk_one, &c, 0);
	if (c.frame)
		ev->truncated = 1; /* frames left when the turns ran out */
	if (c.n == 0 && frame) {
		ev->error = LS_STACK_READ;
		goto fail;
	}
	ev->nframes = c.n;
	ev->error = LS_STACK_OK;
	return;
fail:
	__sync_fetch_and_add(&stack_walk_errors, 1);
}

static __always_inline void output(struct ls_stack_event *ev)
{
	__u64 size = LS_STACK_EVENT_HDR + (__u64)(ev->nframes & (LS_STACK_MAX - 1)) *
		sizeof(struct ls_stack_frame);

	if (ev->nframes >= LS_STACK_MAX)
		size = sizeof(*ev);
	if (bpf_ringbuf_output(&events, ev, size, 0))
		__sync_fetch_and_add(&lost_stack_events, 1);
}

/* Send ev as an on-CPU record of weight_ns (its stack and time as built). */
static __always_inline void output_on_cpu(struct ls_stack_event *ev, __u64 weight_ns)
{
	ev->kind = LS_STACK_ON_CPU;
	ev->weight_ns = weight_ns;
	ev->blocked_ns = 0;
	ev->runnable_ns = 0;
	ev->syscall = -1;
	output(ev);
}

/* Take the thread's stack and send it: an on-CPU sample, or the off-CPU
 * episode just ended. Carried off-CPU time goes with it (on a sample, as a
 * second, off-CPU record of the same stack). */
static __always_inline void emit_stack(__u32 slot, struct ls_thread_stats *st, __u32 tid,
				       __u32 kind, __u64 now, __u64 weight_ns)
{
	struct ls_stack_event *ev = bpf_map_lookup_elem(&stack_scratch, &slot);
	/* Taken first: the cpu-clock program may interrupt this one (it runs
	 * in hard interrupt context) and take the carry itself. */
	__u64 carry_blocked = st->carry_blocked_ns, carry_runnable = st->carry_runnable_ns;
	__s32 carry_syscall = st->carry_syscall;

	st->carry_blocked_ns = 0;
	st->carry_runnable_ns = 0;
	if (!ev)
		return;
	/* A thread past its walks (it stopped polling) holds no gate open. */
	if (++st->period_walks >= LS_PERIOD_WALKS_MAX)
		busy_since[st->slot & (LS_MAX_THREADS - 1)] = 0;
	ev->type = LS_EV_STACK;
	ev->tgid = st->tgid;
	ev->tid = tid;
	ev->busy_start_ns = st->poll_exit_ns;
	walk_stack(ev, st->tgid, tid);
	st->last_walk_ns = now;
	if (kind == LS_STACK_ON_CPU) {
		ev->time_ns = now;
		output_on_cpu(ev, weight_ns);
		if (!carry_blocked && !carry_runnable)
			return;
		ev->time_ns = now;
		ev->blocked_ns = carry_blocked;
		ev->runnable_ns = carry_runnable;
		ev->syscall = carry_blocked ? carry_syscall : -1;
	} else {
		ev->time_ns = st->ep_start_ns;
		ev->blocked_ns = carry_blocked + st->ep_blocked_ns;
		ev->runnable_ns = carry_runnable + st->ep_runnable_ns;
		ev->syscall = st->ep_blocked_ns ? st->ep_syscall :
			      carry_blocked ? carry_syscall : -1;
	}
	ev->kind = LS_STACK_OFF_CPU;
	ev->weight_ns = ev->blocked_ns + ev->runnable_ns;
	output(ev);
}


/* Task work of an armed thread (arm_walk), in its own context on its way
 * back to user space: the off-CPU episode's stack. It may be preempted
 * (task work runs with migration disabled only), so it builds its record
 * in its own scratch slot, taken with a compare-and-swap: a second walk on
 * the same CPU meanwhile finds it taken and carries its time instead. */
static int walk_work_cb(struct bpf_map *map, void *key, void *value)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, zero = 0;
	struct ls_thread_stats *st = bpf_map_lookup_elem(&threads, &tid);
	__u64 *busy;

	if (!st || st->tgid != id >> 32 || !st->walk_pending)
		return 0;
	st->walk_pending = 0;
	if (st->in_poll || !st->poll_exit_ns)
		return 0;
	busy = bpf_map_lookup_elem(&scratch_busy, &zero);
	if (!busy || __sync_val_compare_and_swap(busy, 0, 1) != 0) {
		st->carry_blocked_ns += st->ep_blocked_ns;
		st->carry_runnable_ns += st->ep_runnable_ns;
		if (st->ep_blocked_ns)
			st->carry_syscall = st->ep_syscall;
		return 0;
	}
	emit_stack(2, st, tid, LS_STACK_OFF_CPU, bpf_ktime_get_ns(), 0);
	*busy = 0;
	return 0;
}

SEC("perf_event")
int ls_stack_sample(struct bpf_perf_event_data *ctx)
{
	struct bpf_perf_event_value v;
	struct ls_thread_stats *st;
	__u64 id = bpf_get_current_pid_tgid(), now, weight, due;
	__u32 tgid = id >> 32, tid = (__u32)id;

	if (!stack_after_ns)
		return 0;
	st = busy_thread(bpf_get_current_task_btf());
	if (!st)
		return 0;
	if (!bpf_map_lookup_elem(&py_procs, &tgid))
		return 0; /* no Python stack to take here */
	now = bpf_ktime_get_ns();
	if (now - st->poll_exit_ns < stack_after_ns || st->period_walks >= LS_PERIOD_WALKS_MAX)
		return 0;
	/* A sample stands for the thread's CPU time since the one before,
	 * by the sampling event's own count (its task's on-CPU ns since the
	 * event was opened, read here: perf_event_read_local, which refuses
	 * inherited events, hence none). It is a sampling period unless the
	 * timer missed ticks, which it does on this loaded VM: beside two CPU
	 * hogs and a dd, a thread that ran 150 ms by its own thread_time got
	 * 67-128 samples of 1 ms, from perf record's event as from ours (a
	 * stall of the virtual CPU, 10-28 ms that the guest counts as the
	 * thread's CPU time, goes to the sample after it). The first sample
	 * of a period stands for one period (the samples start
	 * stack_after_ns into it). */
	if (st->sampled_busy_ns != st->poll_exit_ns) { /* its first sample in this period */
		st->sampled_busy_ns = st->poll_exit_ns;
		st->period_sampled_ns = 0;
	}
	weight = sample_period_ns;
	if (bpf_perf_prog_read_value(ctx, &v, sizeof(v)) == 0) {
		due = v.counter - st->sample_base_ns;
		if (st->period_sampled_ns && v.counter > st->sample_base_ns &&
		    due > st->period_sampled_ns)
			weight = due - st->period_sampled_ns;
		else /* the first, or the event was opened again: start over */
			st->sample_base_ns = v.counter - st->period_sampled_ns - weight;
	}
	st->period_sampled_ns += weight;
	emit_stack(1, st, tid, LS_STACK_ON_CPU, now, weight);
	return 0;
}

/* The last sample of a slow busy period is followed by the period's
 * rest, where the timer may have missed ticks too (a thread whose culprit
 * ends on a 10 ms gap counted as its CPU time, with no sample after it).
 * At the period's end (the next poll entry, in the thread's context) what
 * the samples still lack of the scheduler's on-CPU time past
 * stack_after_ns goes to the last sample's stack: the record is still in
 * this CPU's scratch slot when the thread did not move to another CPU
 * since (else it is left out, as before). Less than two sampling periods
 * are left as they are: the period's own last instants (asyncio's work
 * between the callback and the poll) are not the last sample's. */
static __always_inline void sample_tail(struct ls_thread_stats *st, __u32 tid, __u64 on)
{
	__u32 slot = 1;
	struct ls_stack_event *ev;
	__u64 tail;

	if (!stack_after_ns || on <= stack_after_ns + st->period_sampled_ns + 2 * sample_period_ns)
		return;
	tail = on - stack_after_ns - st->period_sampled_ns;
	ev = bpf_map_lookup_elem(&stack_scratch, &slot);
	if (!ev || ev->type != LS_EV_STACK || ev->tid != tid || ev->busy_start_ns != st->poll_exit_ns)
		return;
	st->period_sampled_ns += tail;
	output_on_cpu(ev, tail);
}

/* A loop thread that exits inside a busy period must not hold the
 * sampler's gate open, and its walk_works entry goes with it (a daemon
 * sees threads come and go for months). BTF tracepoint sched_process_exit(p, group_dead)
 * (kernel/exit.c do_exit), for every exiting thread: one load rejects a
 * task without task storage. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(ls_thread_exit, struct task_struct *p, bool group_dead)
{
	struct ls_thread_stats *st;
	__u32 tid;

	if (!p->bpf_storage && !unmarked)
		return 0;
	tid = p->pid;
	st = bpf_map_lookup_elem(&threads, &tid);
	if (st && st->tgid == p->tgid) {
		if (st->unmarked) {
			st->unmarked = 0;
			__sync_fetch_and_add(&unmarked, -1);
		}
		disarm(st);
		busy_since[st->slot & (LS_MAX_THREADS - 1)] = 0;
		bpf_map_delete_elem(&walk_works, &tid);
	}
	return 0;
}

#endif /* LOOPSCOPE_LOOP_STACKS_BPF_H */
