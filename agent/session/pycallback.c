// SPDX-License-Identifier: MIT
/* CPython precise mode: the uprobe/uretprobe session on context_run and
 * the entry uprobes on PyContext_Enter/PyContext_Exit (bpf/pycallback.bpf.c),
 * its targets, slow-callback events and the per-callback histograms. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "loopscope/loopscope.h"
#include "loopscope/pycallback.h"
#include "pycallback.skel.h"
#include "maps.h"
#include "links.h"
#include "ringbuf.h"

struct py_target {
	pid_t pid;
	struct bpf_link *enter, *exit;
	/* PyContext_Enter/Exit (uvloop, eager tasks); NULL when not attached. */
	struct bpf_link *ctx_enter, *ctx_exit;
};

struct ls_pycb {
	struct pycallback_bpf *skel;
	struct ls_ringbuf *rb;
	struct ls_ringbuf *cbs_rb;   /* the per-callback stream (on_cbs), else NULL */
	ls_slow_callback_fn on_slow;
	ls_callbacks_fn on_cbs;
	struct ls_callback_event cbuf[256]; /* a batch for on_cbs */
	size_t ncbuf;
	void *ctx;
	struct py_target targets[LS_MAX_PY_TARGETS];
	int ntargets;
};

/* A record of the ring buffer: true when delivered (ls_ringbuf_fn). */
static bool on_ring_record(void *ctx, const void *data, size_t size)
{
	struct ls_pycb *p = ctx;

	if (size < sizeof(struct ls_slow_callback_event) ||
	    *(const __u32 *)data != LS_EV_SLOW_CALLBACK)
		return false;
	if (p->on_slow)
		p->on_slow(data, p->ctx);
	return true;
}

/* The per-callback stream's batch to its callback. */
static void cbs_flush(struct ls_pycb *p)
{
	if (p->ncbuf)
		p->on_cbs(p->cbuf, p->ncbuf, p->ctx);
	p->ncbuf = 0;
}

/* A record of the `callbacks` ring (ls_ringbuf_fn): batched. */
static bool on_cb_record(void *ctx, const void *data, size_t size)
{
	struct ls_pycb *p = ctx;

	if (size < sizeof(struct ls_callback_event))
		return false;
	memcpy(&p->cbuf[p->ncbuf++], data, sizeof(struct ls_callback_event));
	if (p->ncbuf == sizeof(p->cbuf) / sizeof(p->cbuf[0]))
		cbs_flush(p);
	return true;
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
	p->on_cbs = opts ? opts->on_callbacks : NULL;
	p->ctx = opts ? opts->ctx : NULL;
	p->skel = pycallback_bpf__open_opts(&oopts);
	if (!p->skel) {
		err = -errno;
		goto cleanup;
	}
	p->skel->rodata->slow_threshold_ns =
		opts && opts->slow_threshold_ns ? opts->slow_threshold_ns : LS_DEFAULT_THRESHOLD_NS;
	if (p->on_cbs) {
		p->skel->rodata->every_callback = 1;
		bpf_map__set_max_entries(p->skel->maps.callbacks, LS_CB_RINGBUF_BYTES);
	}
	if (opts && opts->loop) {
		int cb_fd, th_fd;

		ls_loop_cb_maps(opts->loop, &cb_fd, &th_fd);
		err = bpf_map__reuse_fd(p->skel->maps.cb_threads, cb_fd);
		if (!err)
			err = bpf_map__reuse_fd(p->skel->maps.loop_threads, th_fd);
		if (err)
			goto cleanup;
	}
	/* Programs are attached per target (uprobes name a file). */
	err = pycallback_bpf__load(p->skel);
	if (err)
		goto cleanup;
	if (opts && opts->loop)
		ls_loop_cb_split_enable(opts->loop);
	err = ls_ringbuf_open(bpf_map__fd(p->skel->maps.events), on_ring_record, p,
			      LS_RINGBUF_CONSUME_NS, &p->rb);
	if (err)
		goto cleanup;
	if (p->on_cbs) {
		err = ls_ringbuf_open(bpf_map__fd(p->skel->maps.callbacks), on_cb_record, p,
				      LS_RINGBUF_CONSUME_NS, &p->cbs_rb);
		if (err)
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
	 * process, so other processes sharing the file pay nothing. The
	 * return probe first: a uretprobe takes hold of a call at its
	 * entry, so calls that entered between an entry probe's attach and
	 * the return probe's would push frames that never pop; the target's
	 * thread then stayed LS_CB_MAX_DEPTH deep and no callback of it was
	 * ever counted (seen on a loaded machine: 1 run in ~8 with 0
	 * callbacks). A return without its entry finds no frame: ignored. */
	pt->exit = bpf_program__attach_uprobe(p->skel->progs.ls_context_run_exit, true, t->pid,
					      t->host_path, t->context_run.offset);
	if (!pt->exit) {
		err = -errno;
		goto fail;
	}
	pt->enter = bpf_program__attach_uprobe(p->skel->progs.ls_context_run_enter, false, t->pid,
					       t->host_path, t->context_run.offset);
	if (!pt->enter) {
		err = -errno;
		goto fail;
	}
	/* Optional: PyContext_Enter/Exit, both or neither (an Enter without
	 * its Exit would leave frames open). Without them, callbacks run
	 * through that API (uvloop, eager tasks) are only seen at the epoll
	 * level; nothing else changes, so no warning. */
	if (t->context_enter.offset && t->context_exit.offset) {
		/* Exit first, for the same reason (an Exit without its Enter
		 * matches no frame). */
		pt->ctx_exit = bpf_program__attach_uprobe(p->skel->progs.ls_context_exit, false,
							  t->pid, t->host_path,
							  t->context_exit.offset);
		if (pt->ctx_exit)
			pt->ctx_enter = bpf_program__attach_uprobe(p->skel->progs.ls_context_enter,
								   false, t->pid, t->host_path,
								   t->context_enter.offset);
		if (!pt->ctx_enter) {
			bpf_link__destroy(pt->ctx_exit);
			pt->ctx_exit = NULL;
		}
	}
	p->ntargets++;
	return 0;
fail:
	bpf_link__destroy(pt->enter);
	bpf_link__destroy(pt->exit);
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

struct forget_ctx {
	__u32 tgid;
	struct ls_cb_key *keys;
	size_t n, cap;
	bool nomem;
};

static void collect_key(const void *key, const void *value, void *ctx)
{
	const struct ls_cb_key *k = key;
	struct forget_ctx *f = ctx;

	(void)value;
	if (k->tgid != f->tgid)
		return;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct ls_cb_key *g = realloc(f->keys, cap * sizeof(*g));

		if (!g) {
			f->nomem = true;
			return;
		}
		f->keys = g;
		f->cap = cap;
	}
	f->keys[f->n++] = *k;
}

int ls_pycb_forget_stats(struct ls_pycb *p, pid_t pid)
{
	int fd = bpf_map__fd(p->skel->maps.cb_stats);
	struct forget_ctx f = { .tgid = (__u32)pid };
	int err;

	/* Collect the keys, then delete: deleting during a walk loses its
	 * place. Only this process's keys are kept (not the whole map). */
	err = ls_map_walk(fd, sizeof(struct ls_cb_key), sizeof(struct ls_cb_stats), collect_key, &f);
	if (!err && f.nomem)
		err = -ENOMEM;
	for (size_t i = 0; i < f.n; i++)
		bpf_map_delete_elem(fd, &f.keys[i]);
	free(f.keys);
	return err;
}

int ls_pycb_poll(struct ls_pycb *p, int timeout_ms)
{
	int n = ls_ringbuf_poll(p->rb, timeout_ms);

	if (p->cbs_rb) {
		/* Its records never wake us (BPF_RB_NO_WAKEUP): read them
		 * whenever the session wakes, without waiting. Not counted in
		 * the result: a caller that loops while events come (to drain
		 * the slow ones) would spin on a storm's steady stream. */
		ls_ringbuf_consume(p->cbs_rb);
		cbs_flush(p);
	}
	return n;
}

/* ls_map_conv_fn: a cb_stats entry as struct ls_cb_entry. */
static void entry_of(const void *key, const void *value, void *out)
{
	struct ls_cb_entry *e = out;

	memcpy(&e->key, key, sizeof(e->key));
	memcpy(&e->stats, value, sizeof(e->stats));
}

int ls_pycb_snapshot(struct ls_pycb *p, struct ls_cb_entry **out, size_t *n)
{
	return ls_map_dump_as(bpf_map__fd(p->skel->maps.cb_stats), sizeof(struct ls_cb_key),
			      sizeof(struct ls_cb_stats), sizeof(**out), entry_of, (void **)out, n);
}

struct walk_ctx {
	ls_pycb_walk_fn fn;
	void *ctx;
};

static void walk_one(const void *key, const void *value, void *ctx)
{
	struct walk_ctx *w = ctx;

	w->fn(key, value, w->ctx);
}

int ls_pycb_walk(struct ls_pycb *p, ls_pycb_walk_fn fn, void *ctx)
{
	struct walk_ctx w = { .fn = fn, .ctx = ctx };

	return ls_map_walk(bpf_map__fd(p->skel->maps.cb_stats), sizeof(struct ls_cb_key),
			   sizeof(struct ls_cb_stats), walk_one, &w);
}

uint64_t ls_pycb_lost_events(struct ls_pycb *p)
{
	return p->skel->bss->lost_events;
}

uint64_t ls_pycb_lost_callbacks(struct ls_pycb *p)
{
	return __atomic_load_n(&p->skel->bss->lost_callbacks, __ATOMIC_RELAXED);
}

void ls_pycb_close(struct ls_pycb *p)
{
	if (!p)
		return;
	struct bpf_link **links[4 * 64];
	size_t n = 0;

	/* Four probes a target: detached together (links.h). */
	for (int i = 0; i < p->ntargets; i++) {
		if (n + 4 > sizeof(links) / sizeof(links[0])) {
			ls_links_destroy(links, n);
			n = 0;
		}
		links[n++] = &p->targets[i].enter;
		links[n++] = &p->targets[i].exit;
		links[n++] = &p->targets[i].ctx_enter;
		links[n++] = &p->targets[i].ctx_exit;
	}
	ls_links_destroy(links, n);
	ls_ringbuf_free(p->rb);
	ls_ringbuf_free(p->cbs_rb);
	pycallback_bpf__destroy(p->skel);
	free(p);
}
