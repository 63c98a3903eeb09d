// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * CPython precise mode: the duration and identity of every asyncio callback.
 *
 * `context_run(PyContext *self, PyObject *const *args, Py_ssize_t nargs,
 * PyObject *kwnames)` (Python/context.c, 3.7-3.15; METH_FASTCALL|KEYWORDS)
 * runs args[0] inside the context: asyncio's Handle._run calls
 * `self._context.run(self._callback, *self._args)` for every Handle, timer
 * and Task step. The uprobe on its entry names args[0] and starts the clock,
 * the uretprobe stops it. x86-64 SysV: rsi = args.
 *
 * Every byte offset comes from struct ls_py_offsets (include/loopscope/
 * py_offsets.h, generated from each CPython's headers), per target process.
 *
 * C code can run a callback in a context without context_run, through the
 * exported `int PyContext_Enter(PyObject *ctx)` / `int PyContext_Exit(
 * PyObject *ctx)`: uvloop's Handle._run and TimerHandle._run
 * (uvloop/cbhandles.pyx: Context_Enter(self.context); callback(*args);
 * Context_Exit(context), through uvloop/includes/compat.h) and CPython
 * 3.12+'s task_eager_start (Modules/_asynciomodule.c). Entry uprobes on
 * both (rdi = the context) push and pop frames on the same per-thread stack as
 * context_run (kind LS_CB_CONTEXT), with these rules, checked on uvloop
 * 0.17 / CPython 3.11 and asyncio 3.12 (eager tasks):
 * - a pair entered while a context_run is open on the thread is part of
 *   that callback (e.g. an eager task's first step inside the Task step
 *   that created it): tracked for pairing, not counted;
 * - a pair with another pair entered directly inside it is a dispatcher,
 *   not a callback: uvloop runs each iteration's ready Handles inside its
 *   own idle Handle (Loop._on_idle), so every Handle there is two nested
 *   pairs; only the inner one is counted;
 * - pairing is checked by ctx (PyContext_Exit of the top frame's ctx);
 *   an Exit that does not match (probes attached between an Enter and its
 *   Exit, or a call that CPython will reject) is ignored, and so is an
 *   Enter of a ctx already open on the thread (CPython rejects it: no Exit
 *   follows).
 * context_run's own enter and exit (_PyContext_Enter/_PyContext_Exit,
 * static) do not go through the exported functions: plain asyncio
 * callbacks never hit these probes.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/abi/pycallback_events.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* The slow threshold, ns: fixed at load (.rodata, set by user space before
 * load; the daemon's reload does not change it: precise-mode callbacks
 * take a new threshold after a restart, agent/engine/monitor.c). */
const volatile __u64 slow_threshold_ns;
__u64 lost_events;
/* Callbacks deeper than LS_CB_MAX_DEPTH: counted, not timed. */
__u64 too_deep;

/* The per-callback stream (struct ls_callback_event, `record --mode
 * precise --every-callback`): fixed at load (.rodata, skel->rodata before
 * load); off, the verifier prunes emit_callback and the return programs
 * cost what they cost without it. Records the `callbacks` ring could not
 * take are counted in lost_callbacks (the report says so). */
const volatile __u32 every_callback;
__u64 lost_callbacks;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_PY_TARGETS);
	__type(key, __u32); /* tgid */
	__type(value, struct ls_py_proc);
} py_procs SEC(".maps");

_Static_assert((LS_CB_MAX_DEPTH & (LS_CB_MAX_DEPTH - 1)) == 0,
	       "LS_CB_MAX_DEPTH is a power of two (masked indexes below)");

/* ls_cb_frame.flags */
#define FR_CONTEXT LS_CB_FR_CONTEXT
#define FR_NESTED LS_CB_FR_NESTED
#define FR_DISPATCHER LS_CB_FR_DISPATCHER

/* Shared with bpf/loop.bpf.c when user space hands its fd over (see
 * struct ls_cb_frame): loop.bpf.c's sched_switch adds each off-CPU
 * episode of the thread to its open frames. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_THREADS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* tid */
	__type(value, struct ls_cb_thread);
} cb_threads SEC(".maps");

/* bpf/loop.bpf.c's `threads` map, shared the same way (else an empty map
 * of our own): read once per slow callback, to tell whether its frame's
 * off-CPU sums cover all of it (enum ls_cb_split). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_THREADS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* tid */
	__type(value, struct ls_thread_stats);
} loop_threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_MAX_CALLBACKS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ls_cb_key);
	__type(value, struct ls_cb_stats);
} cb_stats SEC(".maps");

/* All-zero initial value of a cb_stats entry (5 KiB: not on the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ls_cb_stats);
} zero_cb_stats SEC(".maps");

/* What a type object is, decided once per (process, type) from tp_name. */
enum type_kind {
	TK_OTHER = 1,
	TK_FUNCTION,
	TK_METHOD,
	TK_PARTIAL,
	TK_STEP_WRAPPER,
	TK_CFUNCTION,
	TK_TASK,
	TK_COROUTINE,
	TK_TASK_SMALL, /* "_asyncio.Task" with another TaskObj layout */
};

struct type_key {
	__u32 tgid;
	__u32 pad;
	__u64 type;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct type_key);
	__type(value, __u32);
} type_kinds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* The per-callback stream's ring (LS_CB_RINGBUF_BYTES with every_callback;
 * user space sets its size before load). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} callbacks SEC(".maps");

static __always_inline __u64 read_ptr(__u64 addr)
{
	__u64 v = 0;

	if (addr)
		bpf_probe_read_user(&v, sizeof(v), (const void *)addr);
	return v;
}

#define TP_NAME_LEN 32

static __always_inline bool name_is(const char *buf, const char *lit, int n)
{
	/* n includes the NUL: an exact match, not a prefix. */
	for (int i = 0; i < n; i++)
		if (buf[i] != lit[i])
			return false;
	return true;
}

#define NAME_IS(buf, lit) name_is(buf, lit, sizeof(lit))

/* Kind of the type object at `type` in process tgid, decided from its
 * tp_name. tp_name strings are those of CPython 3.8-3.15: "function"
 * (Objects/funcobject.c), "method" (Objects/classobject.c),
 * "builtin_function_or_method" (Objects/methodobject.c),
 * "functools.partial" (Modules/_functoolsmodule.c), "TaskStepMethWrapper",
 * "_asyncio.Task" (Modules/_asynciomodule.c), "coroutine"
 * (Objects/genobject.c). An "_asyncio.Task" smaller than the offsets
 * table's sizeof(TaskObj) is TK_TASK_SMALL (see name_task). 0 when tp_name
 * cannot be read now (not to be cached). */
static __always_inline __u32 type_kind_read(const struct ls_py_offsets *off, __u64 type)
{
	char buf[TP_NAME_LEN] = {};
	__u32 kind = TK_OTHER;

	if (bpf_probe_read_user_str(buf, sizeof(buf), (const void *)read_ptr(type + off->tp_name)) <= 0)
		return 0;
	if (NAME_IS(buf, "function"))
		kind = TK_FUNCTION;
	else if (NAME_IS(buf, "method"))
		kind = TK_METHOD;
	else if (NAME_IS(buf, "builtin_function_or_method"))
		kind = TK_CFUNCTION;
	else if (NAME_IS(buf, "functools.partial"))
		kind = TK_PARTIAL;
	else if (NAME_IS(buf, "TaskStepMethWrapper") ||
		 NAME_IS(buf, "_asyncio.TaskStepMethWrapper")) /* 3.12+: heap type */
		kind = TK_STEP_WRAPPER;
	else if (NAME_IS(buf, "_asyncio.Task"))
		/* TaskObj changed size inside 3.10 (a field backported in
		 * 3.10.x): a Task type smaller than the table's sizeof(TaskObj)
		 * has another layout. Decided once per type, here. */
		kind = off->task_size && read_ptr(type + off->tp_basicsize) < off->task_size ?
			       TK_TASK_SMALL : TK_TASK;
	else if (NAME_IS(buf, "coroutine"))
		kind = TK_COROUTINE;
	return kind;
}

/* Kind of the type object at `type` in process tgid (proc): from proc's
 * type slots (a few compares), else the LRU hash, else read once
 * (type_kind_read) and remembered in a free slot or the hash. */
static __always_inline __u32 type_kind(__u32 tgid, struct ls_py_proc *proc, __u64 type)
{
	struct type_key k = { .tgid = tgid, .type = type };
	__u32 *cached, kind;
	int i;

	if (!type)
		return TK_OTHER;
	for (i = 0; i < LS_PY_TYPE_SLOTS; i++) {
		struct ls_py_type_slot *s = &proc->types[i];
		__u64 t = s->type;

		if (t == type) {
			kind = s->kind;
			if (kind)
				return kind;
			break; /* being filled by another thread */
		}
		if (!t)
			break; /* slots fill in order: no further one is used */
	}
	cached = bpf_map_lookup_elem(&type_kinds, &k);
	if (cached)
		return *cached;
	kind = type_kind_read(&proc->off, type);
	if (!kind)
		return TK_OTHER; /* unreadable now: do not cache */
	/* Claim the first free slot (a lost race: the hash keeps it). */
	if (i < LS_PY_TYPE_SLOTS && !proc->types[i & (LS_PY_TYPE_SLOTS - 1)].type &&
	    __sync_val_compare_and_swap(&proc->types[i & (LS_PY_TYPE_SLOTS - 1)].type, 0, type) == 0) {
		proc->types[i & (LS_PY_TYPE_SLOTS - 1)].kind = kind;
		return kind;
	}
	bpf_map_update_elem(&type_kinds, &k, &kind, BPF_ANY);
	return kind;
}

static __always_inline __u64 type_of(const struct ls_py_offsets *off, __u64 obj)
{
	return read_ptr(obj + off->ob_type);
}

/* A Python function object: its code and qualname. */
static __always_inline void name_function(const struct ls_py_offsets *off, __u64 func,
					  struct ls_cb_key *key)
{
	key->code = read_ptr(func + off->func_code);
	key->name = read_ptr(func + off->func_qualname);
}

/* The coroutine of an asyncio Task: its code and qualname. */
static __always_inline void name_task(__u32 tgid, struct ls_py_proc *proc, __u64 task,
				      struct ls_cb_key *key)
{
	const struct ls_py_offsets *off = &proc->off;
	__u64 ttype = type_of(off, task), coro, ctype;
	__u32 tkind = type_kind(tgid, proc, ttype);

	key->kind = LS_CB_TASK;
	/* TaskObj changed size inside 3.10 (a field backported in 3.10.x):
	 * a Task type smaller than the table's sizeof(TaskObj) has another
	 * layout. A subclass is never smaller. Name it by its type then.
	 * (_asyncio.Task itself: decided once, TK_TASK_SMALL; a subclass:
	 * checked here.) */
	if (tkind == TK_TASK_SMALL ||
	    (tkind != TK_TASK && off->task_size &&
	     read_ptr(ttype + off->tp_basicsize) < off->task_size)) {
		key->name = read_ptr(ttype + off->tp_name);
		return;
	}
	coro = read_ptr(task + off->task_coro);
	ctype = type_of(off, coro);
	if (type_kind(tgid, proc, ctype) != TK_COROUTINE) {
		/* A generator-based or foreign awaitable: name its type. */
		key->name = read_ptr(ctype + off->tp_name);
		return;
	}
	if (off->flags & LS_PYOFF_CODE_IN_FRAME) {
		key->code = read_ptr(coro + off->cr_iframe + off->frame_code);
		/* 3.14+: f_executable is a _PyStackRef (tag bits low). */
		if (off->flags & LS_PYOFF_STACKREF)
			key->code &= ~LS_PY_TAG_BITS;
	} else
		key->code = read_ptr(coro + off->cr_code);
	key->name = read_ptr(coro + off->cr_qualname);
}

static __always_inline void name_callable(__u32 tgid, struct ls_py_proc *proc, __u64 obj,
					  struct ls_cb_key *key)
{
	const struct ls_py_offsets *off = &proc->off;
	__u64 type = type_of(off, obj), inner, self;
	__u32 kind = type_kind(tgid, proc, type);

	switch (kind) {
	case TK_FUNCTION:
		key->kind = LS_CB_FUNCTION;
		name_function(off, obj, key);
		return;
	case TK_METHOD:
		key->kind = LS_CB_METHOD;
		inner = read_ptr(obj + off->im_func);
		if (type_kind(tgid, proc, type_of(off, inner)) == TK_FUNCTION) {
			name_function(off, inner, key);
			return;
		}
		break;
	case TK_PARTIAL:
		key->kind = LS_CB_PARTIAL;
		inner = read_ptr(obj + off->partial_fn);
		kind = type_kind(tgid, proc, type_of(off, inner));
		if (kind == TK_METHOD) {
			inner = read_ptr(inner + off->im_func);
			kind = type_kind(tgid, proc, type_of(off, inner));
		}
		if (kind == TK_FUNCTION) {
			name_function(off, inner, key);
			return;
		}
		break;
	case TK_STEP_WRAPPER:
		name_task(tgid, proc, read_ptr(obj + off->sw_task), key);
		return;
	case TK_CFUNCTION:
		/* 3.10+: Task wakeups are the builtin task_wakeup bound to the
		 * Task (m_self); anything else is named by its ml_name. */
		self = read_ptr(obj + off->m_self);
		kind = self ? type_kind(tgid, proc, type_of(off, self)) : TK_OTHER;
		if (kind == TK_TASK || kind == TK_TASK_SMALL) {
			name_task(tgid, proc, self, key);
			return;
		}
		key->kind = LS_CB_BUILTIN;
		key->name = read_ptr(read_ptr(obj + off->m_ml) + off->ml_name);
		return;
	default:
		break;
	}
	key->kind = LS_CB_OTHER;
	key->code = 0;
	key->name = read_ptr(type + off->tp_name);
}

static __always_inline struct ls_cb_thread *thread_state(__u32 tid)
{
	__u64 start = bpf_get_current_task_btf()->start_time;
	struct ls_cb_thread *th, zero = {};

	th = bpf_map_lookup_elem(&cb_threads, &tid);
	if (th && th->thread_start == start)
		return th;
	/* New, or a reused tid whose dead thread may have left frames open. */
	zero.thread_start = start;
	bpf_map_update_elem(&cb_threads, &tid, &zero, BPF_ANY);
	return bpf_map_lookup_elem(&cb_threads, &tid);
}

SEC("uprobe")
int BPF_KPROBE(ls_context_run_enter, void *self, void *args)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct ls_py_proc *proc;
	struct ls_cb_thread *th;
	struct ls_cb_frame *f;
	__u32 depth;

	proc = bpf_map_lookup_elem(&py_procs, &tgid);
	if (!proc)
		return 0;
	th = thread_state(tid);
	if (!th)
		return 0;
	depth = th->depth++;
	th->runs++;
	if (depth >= LS_CB_MAX_DEPTH) {
		__sync_fetch_and_add(&too_deep, 1);
		return 0;
	}
	f = &th->frames[depth];
	__builtin_memset(&f->key, 0, sizeof(f->key));
	f->key.tgid = tgid;
	f->ctx = (__u64)self;
	f->flags = 0;
	f->blocked_ns = 0;
	f->runnable_ns = 0;
	f->top_block_ns = 0;
	f->top_syscall = -1;
	name_callable(tgid, proc, read_ptr((__u64)args), &f->key);
	f->start_ns = bpf_ktime_get_ns();
	return 0;
}

/* PyContext_Enter(ctx): push an LS_CB_CONTEXT frame (rules at the top). */
SEC("uprobe")
int BPF_KPROBE(ls_context_enter, void *pyctx)
{
	__u64 id = bpf_get_current_pid_tgid(), now;
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct ls_cb_thread *th;
	struct ls_cb_frame *f;
	__u32 depth;

	if (!bpf_map_lookup_elem(&py_procs, &tgid))
		return 0;
	now = bpf_ktime_get_ns();
	th = thread_state(tid);
	if (!th)
		return 0;
	depth = th->depth;
	for (__u32 i = 0; i < LS_CB_MAX_DEPTH; i++)
		if (i < depth && th->frames[i].ctx == (__u64)pyctx)
			return 0; /* already entered: CPython fails this Enter */
	th->depth = depth + 1;
	if (depth >= LS_CB_MAX_DEPTH) {
		__sync_fetch_and_add(&too_deep, 1);
		return 0;
	}
	if (depth > 0 && depth - 1 < LS_CB_MAX_DEPTH &&
	    (th->frames[depth - 1].flags & FR_CONTEXT))
		th->frames[depth - 1].flags |= FR_DISPATCHER;
	f = &th->frames[depth];
	__builtin_memset(&f->key, 0, sizeof(f->key));
	f->key.tgid = tgid;
	f->key.kind = LS_CB_CONTEXT;
	f->ctx = (__u64)pyctx;
	f->flags = FR_CONTEXT | (th->runs ? FR_NESTED : 0);
	f->blocked_ns = 0;
	f->runnable_ns = 0;
	f->top_block_ns = 0;
	f->top_syscall = -1;
	f->start_ns = now;
	return 0;
}

/* Callback f of thread th, dur ns long, into the `callbacks` ring
 * (every_callback), without waking the reader: a wake-up per callback
 * would cost the target an irq_work each; user space drains the ring
 * whenever it wakes. */
static __always_inline void emit_callback(__u32 tid, struct ls_cb_thread *th,
					  const struct ls_cb_frame *f, __u64 dur)
{
	struct ls_callback_event *e;

	if (!every_callback)
		return;
	th->seq++;
	e = bpf_ringbuf_reserve(&callbacks, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&lost_callbacks, 1);
		return;
	}
	e->tid = tid;
	e->seq = th->seq;
	e->start_ns = f->start_ns;
	e->duration_ns = dur;
	e->key = f->key;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* A callback's frame f of thread th ended at now: histogram, and an event
 * when slow, with its off-CPU split when loop.bpf.c followed the thread
 * through all of it (one busy period, from before f began to now). */
static __always_inline void account(__u32 tid, struct ls_cb_thread *th,
				    struct ls_cb_frame *f, __u64 now)
{
	__u64 dur = now - f->start_ns;
	struct ls_cb_stats *st;
	__u32 zero = 0;
	void *init;

	emit_callback(tid, th, f, dur);

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

	if (dur > slow_threshold_ns) {
		struct ls_slow_callback_event *e;
		struct ls_thread_stats *lt = bpf_map_lookup_elem(&loop_threads, &tid);

		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			__sync_fetch_and_add(&lost_events, 1);
			return;
		}
		e->type = LS_EV_SLOW_CALLBACK;
		e->tid = tid;
		e->key = f->key;
		e->start_ns = f->start_ns;
		e->duration_ns = dur;
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

SEC("uretprobe")
int BPF_KRETPROBE(ls_context_run_exit)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), depth;
	struct ls_cb_thread *th;

	th = bpf_map_lookup_elem(&cb_threads, &tid);
	if (!th || th->depth == 0)
		return 0;
	depth = th->depth;
	/* Enter frames left open above it (an Enter whose Exit never came):
	 * they ended with this context_run at the latest. */
	for (int i = 0; i < LS_CB_MAX_DEPTH; i++) {
		if (depth == 0 || depth > LS_CB_MAX_DEPTH ||
		    !(th->frames[(depth - 1) & (LS_CB_MAX_DEPTH - 1)].flags & FR_CONTEXT))
			break;
		depth--;
	}
	if (depth == 0) {
		th->depth = 0;
		return 0;
	}
	th->depth = --depth;
	if (th->runs)
		th->runs--;
	if (depth >= LS_CB_MAX_DEPTH)
		return 0;
	account(tid, th, &th->frames[depth], now);
	return 0;
}

/* PyContext_Exit(ctx): pop the matching LS_CB_CONTEXT frame. */
SEC("uprobe")
int BPF_KPROBE(ls_context_exit, void *pyctx)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 tid = (__u32)bpf_get_current_pid_tgid(), depth;
	struct ls_cb_thread *th;
	struct ls_cb_frame *f;

	th = bpf_map_lookup_elem(&cb_threads, &tid);
	if (!th || th->depth == 0)
		return 0;
	depth = th->depth - 1;
	if (depth >= LS_CB_MAX_DEPTH) {
		th->depth = depth; /* beyond the array: not timed, not checked */
		return 0;
	}
	f = &th->frames[depth];
	if (!(f->flags & FR_CONTEXT) || f->ctx != (__u64)pyctx)
		return 0; /* not the Exit of the top frame: ignored */
	th->depth = depth;
	if (f->flags & (FR_NESTED | FR_DISPATCHER))
		return 0;
	account(tid, th, f, now);
	return 0;
}
