// SPDX-License-Identifier: MIT
/* CPython precise mode: the uprobe/uretprobe session on context_run and
 * the entry uprobes on PyContext_Enter/PyContext_Exit (bpf/pycallback.bpf.c),
 * its targets, slow-callback events and the per-callback histograms. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
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
	int session_fd; /* the uprobe session link on context_run (one trap); -1 none */
	bool keep_return; /* every call keeps its return probe (debug mode at start) */
	/* PyContext_Enter/Exit (uvloop, eager tasks); NULL when not attached. */
	struct bpf_link *ctx_enter, *ctx_exit;
};

struct ls_pycb {
	struct pycallback_bpf *skel;
	struct ls_ringbuf *rb;
	ls_slow_callback_fn on_slow;
	void *ctx;
	struct py_target targets[LS_MAX_PY_TARGETS];
	int ntargets;
	bool one_trap; /* ls_context_run loaded: attach it as a uprobe session */
};

/* enum bpf_attach_type's BPF_TRACE_UPROBE_SESSION (include/uapi/linux/bpf.h,
 * Linux 6.13+); the installed uapi headers may predate it. */
#define LS_BPF_TRACE_UPROBE_SESSION 57

/* Whether the kernel (its BTF: btf_path, or the running kernel's) knows
 * BPF_TRACE_UPROBE_SESSION. */
static bool kernel_has_uprobe_session(const char *btf_path)
{
	struct btf *btf = btf_path ? btf__parse(btf_path, NULL) : btf__load_vmlinux_btf();
	bool found = false;
	__s32 id;

	if (!btf)
		return false;
	id = btf__find_by_name_kind(btf, "bpf_attach_type", BTF_KIND_ENUM);
	if (id > 0) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_enum *e = btf_enum(t);

		for (int i = 0; i < btf_vlen(t); i++)
			if (!strcmp(btf__name_by_offset(btf, e[i].name_off), "BPF_TRACE_UPROBE_SESSION") &&
			    e[i].val == LS_BPF_TRACE_UPROBE_SESSION)
				found = true;
	}
	btf__free(btf);
	return found;
}

/* Whether process pid started with asyncio's debug mode on for every loop
 * (Lib/asyncio/coroutines.py _is_debug_mode: PYTHONASYNCIODEBUG set and
 * not empty, or the development mode: -X dev or PYTHONDEVMODE). A loop put
 * in debug mode at run time (asyncio.run(debug=True), loop.set_debug) is
 * not seen here. Unreadable: false. */
static bool asyncio_debug_env(pid_t pid)
{
	char path[64], buf[16384];
	bool on = false;
	ssize_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	f = fopen(path, "re");
	if (f) {
		n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
			buf[n] = '\0';
			if ((!strncmp(buf + i, "PYTHONASYNCIODEBUG=", 19) && buf[i + 19]) ||
			    (!strncmp(buf + i, "PYTHONDEVMODE=", 14) && buf[i + 14]))
				on = true;
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = fopen(path, "re");
	if (f) {
		n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n > 0 ? n : 0] = '\0';
		/* argv[0], then the interpreter's options up to the script. */
		for (ssize_t i = (ssize_t)strlen(buf) + 1; i < n; i += (ssize_t)strlen(buf + i) + 1) {
			if (!strcmp(buf + i, "-Xdev") ||
			    (!strcmp(buf + i, "-X") && i + 3 < n && !strcmp(buf + i + 3, "dev")))
				on = true;
			if (buf[i] != '-')
				break; /* the script: its own arguments follow */
		}
	}
	return on;
}

/* BPF_LINK_CREATE's uprobe_multi attributes (union bpf_attr,
 * include/uapi/linux/bpf.h, Linux 6.6+): libbpf 1.1 predates them. */
struct uprobe_multi_create {
	__u32 prog_fd;
	__u32 target_fd;
	__u32 attach_type;
	__u32 flags;
	__u64 path;
	__u64 offsets;
	__u64 ref_ctr_offsets;
	__u64 cookies;
	__u32 cnt;
	__u32 um_flags;
	__u32 pid;
	__u32 pad;
};

/* A uprobe session of prog on the function at file offset off of path,
 * in process pid only: the link's fd, or a negative errno. */
static int attach_uprobe_session(const struct bpf_program *prog, const char *path, __u64 off,
				 pid_t pid)
{
	struct uprobe_multi_create a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.prog_fd = (__u32)bpf_program__fd(prog);
	a.attach_type = LS_BPF_TRACE_UPROBE_SESSION;
	a.path = (__u64)(unsigned long)path;
	a.offsets = (__u64)(unsigned long)&off;
	a.cnt = 1;
	a.pid = (__u32)pid;
	fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof(a));
	return fd < 0 ? -errno : fd;
}

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
	p->skel->rodata->slow_threshold_ns =
		opts && opts->slow_threshold_ns ? opts->slow_threshold_ns : LS_DEFAULT_THRESHOLD_NS;
	if (opts && opts->loop) {
		static const char *const shared[] = { "cb_stats", "cb_events", "cb_lost" };
		const char *traps = getenv("LOOPSCOPE_PRECISE_TRAPS");
		int cb_fd, th_fd;

		ls_loop_cb_maps(opts->loop, &cb_fd, &th_fd);
		err = bpf_map__reuse_fd(p->skel->maps.cb_threads, cb_fd);
		if (!err)
			err = bpf_map__reuse_fd(p->skel->maps.loop_threads, th_fd);
		for (size_t i = 0; !err && i < sizeof(shared) / sizeof(shared[0]); i++) {
			int fd = ls_loop_cb_map_fd(opts->loop, shared[i]);

			err = fd < 0 ? fd :
			      bpf_map__reuse_fd(bpf_object__find_map_by_name(p->skel->obj, shared[i]), fd);
		}
		if (err)
			goto cleanup;
		/* One trap per callback (opt-in: LOOPSCOPE_PRECISE_TRAPS=1)
		 * needs the loop's polls (they end each iteration's last
		 * callback) and uprobe sessions. */
		p->one_trap = traps && !strcmp(traps, "1") &&
			      kernel_has_uprobe_session(opts->btf_path);
	}
	if (p->one_trap)
		bpf_program__set_expected_attach_type(p->skel->progs.ls_context_run,
						      (enum bpf_attach_type)LS_BPF_TRACE_UPROBE_SESSION);
	else
		bpf_program__set_autoload(p->skel->progs.ls_context_run, false);
	/* Programs are attached per target (uprobes name a file). */
	err = pycallback_bpf__load(p->skel);
	if (err)
		goto cleanup;
	if (opts && opts->loop)
		ls_loop_cb_split_enable(opts->loop);
	err = ls_ringbuf_open(bpf_map__fd(p->skel->maps.cb_events), on_ring_record, p,
			      LS_RINGBUF_CONSUME_NS, &p->rb);
	if (err)
		goto cleanup;
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
	proc.keep_return = p->one_trap && asyncio_debug_env(t->pid);
	if (bpf_map_update_elem(bpf_map__fd(p->skel->maps.py_procs), &key, &proc, BPF_ANY))
		return -errno;
	pt = &p->targets[p->ntargets];
	memset(pt, 0, sizeof(*pt)); /* the slot may hold a removed target's links */
	pt->pid = t->pid;
	pt->session_fd = -1;
	/* pid-filtered uprobes: the breakpoint is only installed in this
	 * process, so other processes sharing the file pay nothing. One
	 * trap per callback where the kernel has uprobe sessions (entry and
	 * return in one link), else (or when that attach fails) a uprobe and
	 * a uretprobe. The return probe first: a uretprobe takes hold of a
	 * call at its entry, so calls that entered between an entry probe's
	 * attach and the return probe's would push frames that never pop;
	 * the target's thread then stayed LS_CB_MAX_DEPTH deep and no
	 * callback of it was ever counted (seen on a loaded machine: 1 run in
	 * ~8 with 0 callbacks). A return without its entry finds no frame:
	 * ignored. */
	if (p->one_trap) {
		pt->session_fd = attach_uprobe_session(p->skel->progs.ls_context_run, t->host_path,
						       t->context_run.offset, t->pid);
		pt->keep_return = proc.keep_return;
		if (pt->session_fd >= 0)
			goto context_api;
	}
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
context_api:
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
	if (pt->session_fd >= 0)
		close(pt->session_fd);
	pt->session_fd = -1;
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
		if (p->targets[i].session_fd >= 0)
			close(p->targets[i].session_fd);
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
	return ls_ringbuf_poll(p->rb, timeout_ms);
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

int ls_pycb_traps(const struct ls_pycb *p, pid_t pid)
{
	for (int i = 0; i < p->ntargets; i++)
		if (p->targets[i].pid == pid)
			return p->targets[i].session_fd >= 0 && !p->targets[i].keep_return ? 1 : 2;
	return 0;
}

uint64_t ls_pycb_lost_events(struct ls_pycb *p)
{
	__u32 zero = 0;
	__u64 lost = 0;

	bpf_map_lookup_elem(bpf_map__fd(p->skel->maps.cb_lost), &zero, &lost);
	return lost;
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
		/* A uprobe session link (one trap): a plain fd, closed here. */
		if (p->targets[i].session_fd >= 0)
			close(p->targets[i].session_fd);
		p->targets[i].session_fd = -1;
	}
	ls_links_destroy(links, n);
	ls_ringbuf_free(p->rb);
	pycallback_bpf__destroy(p->skel);
	free(p);
}
