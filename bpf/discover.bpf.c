// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Process discovery for loopscoped (include/loopscope/abi/discover_events.h):
 * every exec on the machine, and forks and exits of watched processes, to a
 * ring buffer. BTF tracepoints (include/trace/events/sched.h, Linux 6.18):
 * sched_process_exec(struct task_struct *p, pid_t old_pid,
 * struct linux_binprm *bprm) runs in the exec'ing task after the new image
 * is in place (so /proc/PID/exe and cmdline are the new program's);
 * sched_process_fork(struct task_struct *parent, struct task_struct *child);
 * sched_process_exit(struct task_struct *p, ...) for each exiting thread.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "loopscope/abi/discover_events.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

__u64 lost_events;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LS_DISC_MAX_WATCHED);
	__type(key, __u32);  /* tgid */
	__type(value, __u8);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, LS_DISC_RINGBUF_BYTES);
} disc_events SEC(".maps");

static __always_inline void emit(__u32 type, __u32 tgid, __u32 ppid)
{
	struct ls_disc_event *e = bpf_ringbuf_reserve(&disc_events, sizeof(*e), 0);

	if (!e) {
		__sync_fetch_and_add(&lost_events, 1);
		return;
	}
	e->type = type;
	e->tgid = tgid;
	e->ppid = ppid;
	e->pad = 0;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ls_disc_exec, struct task_struct *p)
{
	emit(LS_DISC_EXEC, p->tgid, 0);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(ls_disc_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid;

	if (child->pid != child->tgid) /* a new thread, not a process */
		return 0;
	if (!bpf_map_lookup_elem(&watched, &ptgid))
		return 0;
	emit(LS_DISC_FORK, child->tgid, ptgid);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ls_disc_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if (p->pid != p->tgid) /* another thread: the process lives on */
		return 0;
	if (!bpf_map_lookup_elem(&watched, &tgid))
		return 0;
	emit(LS_DISC_EXIT, tgid, 0);
	return 0;
}
