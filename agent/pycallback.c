// SPDX-License-Identifier: MIT
/* CPython precise mode: the uprobe/uretprobe session on context_run and
 * the entry uprobes on PyContext_Enter/PyContext_Exit (bpf/pycallback.bpf.c),
 * its targets, slow-callback events and the per-callback histograms. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "loopscope/loopscope.h"
#include "loopscope/pycallback.h"
#include "pycallback.skel.h"

#define LS_DEFAULT_THRESHOLD_NS 100000000ULL

struct py_target {
	pid_t pid;
	struct bpf_link *enter, *exit;
	/* PyContext_Enter/Exit (uvloop, eager tasks); NULL when not attached. */
	struct bpf_link *ctx_enter, *ctx_exit;
};

struct ls_pycb {
	struct pycallback_bpf *skel;
	struct ring_buffer *rb;
	ls_slow_callback_fn on_slow;
	void *ctx;
	int delivered;
	uint64_t consume_until_ns; /* one poll stops consuming at this time */
	struct py_target targets[LS_MAX_PY_TARGETS];
	int ntargets;
};

static int on_ring_record(void *ctx, void *data, size_t size)
{
	struct ls_pycb *p = ctx;

	if (size >= sizeof(struct ls_slow_callback_event) &&
	    *(const __u32 *)data == LS_EV_SLOW_CALLBACK) {
		if (p->on_slow)
			p->on_slow(data, p->ctx);
		p->delivered++;
	}
	/* Ends the poll under a flood (see agent/loop.c on_ring_record). */
	if ((p->delivered & 63) == 63 && ls_sys_now_ns() >= p->consume_until_ns)
		return -EAGAIN;
	return 0;
}

int ls_pycb_open(const struct ls_pycb_opts *opts, struct ls_pycb **out)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts, .btf_custom_path = opts ? opts->btf_path : NULL);
	struct ls_pycb *p;
	int err;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->on_slow = opts ? opts->on_slow_callback : NULL;
	p->ctx = opts ? opts->ctx : NULL;
	p->skel = pycallback_bpf__open_opts(&oopts);
	if (!p->skel) {
		err = -errno;
		goto cleanup;
	}
	p->skel->data->slow_threshold_ns =
		opts && opts->slow_threshold_ns ? opts->slow_threshold_ns : LS_DEFAULT_THRESHOLD_NS;
	/* Programs are attached per target (uprobes name a file). */
	err = pycallback_bpf__load(p->skel);
	if (err)
		goto cleanup;
	p->rb = ring_buffer__new(bpf_map__fd(p->skel->maps.events), on_ring_record, p, NULL);
	if (!p->rb) {
		err = -errno;
		goto cleanup;
	}
	*out = p;
	return 0;
cleanup:
	ls_pycb_close(p);
	return err < 0 ? err : -EINVAL;
}

int ls_pycb_add_target(struct ls_pycb *p, const struct ls_py_target *t)
{
	const struct ls_py_offsets *off = t->off.version_hex ? &t->off : NULL;
	struct ls_py_proc proc = { 0 };
	struct py_target *pt;
	__u32 key = (__u32)t->pid;
	int err;

	if (!off)
		return -ENOTSUP;
	if (p->ntargets == LS_MAX_PY_TARGETS)
		return -E2BIG;
	proc.off = *off;
	if (bpf_map_update_elem(bpf_map__fd(p->skel->maps.py_procs), &key, &proc, BPF_ANY))
		return -errno;
	pt = &p->targets[p->ntargets];
	memset(pt, 0, sizeof(*pt)); /* the slot may hold a removed target's links */
	pt->pid = t->pid;
	/* pid-filtered uprobes: the breakpoint is only installed in this
	 * process, so other processes sharing the file pay nothing. */
	pt->enter = bpf_program__attach_uprobe(p->skel->progs.ls_context_run_enter, false, t->pid,
					       t->host_path, t->context_run.offset);
	if (!pt->enter) {
		err = -errno;
		goto fail;
	}
	pt->exit = bpf_program__attach_uprobe(p->skel->progs.ls_context_run_exit, true, t->pid,
					      t->host_path, t->context_run.offset);
	if (!pt->exit) {
		err = -errno;
		goto fail;
	}
	/* Optional: PyContext_Enter/Exit, both or neither (an Enter without
	 * its Exit would leave frames open). Without them, callbacks run
	 * through that API (uvloop, eager tasks) are only seen at the epoll
	 * level; nothing else changes, so no warning. */
	if (t->context_enter.offset && t->context_exit.offset) {
		pt->ctx_enter = bpf_program__attach_uprobe(p->skel->progs.ls_context_enter, false,
							   t->pid, t->host_path,
							   t->context_enter.offset);
		if (pt->ctx_enter)
			pt->ctx_exit = bpf_program__attach_uprobe(p->skel->progs.ls_context_exit,
								  false, t->pid, t->host_path,
								  t->context_exit.offset);
		if (!pt->ctx_exit) {
			bpf_link__destroy(pt->ctx_enter);
			pt->ctx_enter = NULL;
		}
	}
	p->ntargets++;
	return 0;
fail:
	bpf_link__destroy(pt->enter);
	pt->enter = NULL;
	pt->exit = NULL;
	bpf_map_delete_elem(bpf_map__fd(p->skel->maps.py_procs), &key);
	return err;
}

void ls_pycb_remove_target(struct ls_pycb *p, pid_t pid)
{
	__u32 key = (__u32)pid;

	for (int i = 0; i < p->ntargets; i++) {
		if (p->targets[i].pid != pid)
			continue;
		bpf_link__destroy(p->targets[i].enter);
		bpf_link__destroy(p->targets[i].exit);
		bpf_link__destroy(p->targets[i].ctx_enter);
		bpf_link__destroy(p->targets[i].ctx_exit);
		p->targets[i] = p->targets[--p->ntargets];
		break;
	}
	bpf_map_delete_elem(bpf_map__fd(p->skel->maps.py_procs), &key);
}

int ls_pycb_forget_stats(struct ls_pycb *p, pid_t pid)
{
	int fd = bpf_map__fd(p->skel->maps.cb_stats);
	struct ls_cb_key cur, next, *doomed = NULL;
	size_t n = 0, cap = 0;
	bool first = true;
	int err = 0;

	/* Collect, then delete: deleting during the walk loses its place. */
	while (bpf_map_get_next_key(fd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		if (cur.tgid != (__u32)pid)
			continue;
		if (n == cap) {
			struct ls_cb_key *grown = realloc(doomed, (cap = cap ? cap * 2 : 16) * sizeof(*doomed));

			if (!grown) {
				err = -ENOMEM;
				break;
			}
			doomed = grown;
		}
		doomed[n++] = cur;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(fd, &doomed[i]);
	free(doomed);
	return err;
}

int ls_pycb_poll(struct ls_pycb *p, int timeout_ms)
{
	int err;

	p->delivered = 0;
	/* At most 50 ms reading records (plus the wait): see ls_loop_poll. */
	p->consume_until_ns = ls_sys_now_ns() +
			      (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000 + 50000000ULL;
	err = ring_buffer__poll(p->rb, timeout_ms);
	if (err == -EAGAIN)
		return p->delivered;
	return err < 0 ? err : p->delivered;
}

int ls_pycb_snapshot(struct ls_pycb *p, struct ls_cb_entry **out, size_t *n)
{
	int fd = bpf_map__fd(p->skel->maps.cb_stats);
	struct ls_cb_entry *v = NULL, *grown;
	struct ls_cb_key cur, next;
	size_t len = 0, cap = 0;
	bool first = true;

	while (bpf_map_get_next_key(fd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		if (len == cap) {
			cap = cap ? cap * 2 : 32;
			grown = realloc(v, cap * sizeof(*v));
			if (!grown) {
				free(v);
				return -ENOMEM;
			}
			v = grown;
		}
		v[len].key = cur;
		if (bpf_map_lookup_elem(fd, &cur, &v[len].stats) == 0)
			len++;
	}
	*out = v;
	*n = len;
	return 0;
}

uint64_t ls_pycb_lost_events(struct ls_pycb *p)
{
	return p->skel->bss->lost_events;
}

void ls_pycb_close(struct ls_pycb *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->ntargets; i++) {
		bpf_link__destroy(p->targets[i].enter);
		bpf_link__destroy(p->targets[i].exit);
		bpf_link__destroy(p->targets[i].ctx_enter);
		bpf_link__destroy(p->targets[i].ctx_exit);
	}
	ring_buffer__free(p->rb);
	pycallback_bpf__destroy(p->skel);
	free(p);
}
