// SPDX-License-Identifier: MIT
/* The epoll-level BPF session: load bpf/loop.bpf.c, attach, targets, slow
 * events, snapshots. libbpf skeleton life cycle: open -> load -> attach ->
 * destroy (libbpf-bootstrap). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "loopscope/loopscope.h"
#include "loop.skel.h"

#define LS_DEFAULT_THRESHOLD_NS 100000000ULL

struct ls_loop {
	struct loop_bpf *skel;
	struct ring_buffer *rb;
	ls_slow_busy_fn on_slow_busy;
	ls_proc_fn on_proc;
	void *ctx;
	int delivered;
};

static int on_ring_record(void *ctx, void *data, size_t size)
{
	struct ls_loop *l = ctx;
	const __u32 *type = data;

	if (size < sizeof(*type))
		return 0;
	if (*type == LS_EV_SLOW_BUSY && size >= sizeof(struct ls_slow_busy_event)) {
		if (l->on_slow_busy)
			l->on_slow_busy(data, l->ctx);
		l->delivered++;
	} else if ((*type == LS_EV_FORK || *type == LS_EV_EXEC) &&
		   size >= sizeof(struct ls_proc_event)) {
		if (l->on_proc)
			l->on_proc(data, l->ctx);
		l->delivered++;
	}
	return 0;
}

int ls_loop_open(const struct ls_loop_opts *opts, struct ls_loop **out)
{
	struct ls_loop *l;
	int err;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->on_slow_busy = opts ? opts->on_slow_busy : NULL;
	l->on_proc = opts ? opts->on_proc : NULL;
	l->ctx = opts ? opts->ctx : NULL;

	LIBBPF_OPTS(bpf_object_open_opts, oopts, .btf_custom_path = opts ? opts->btf_path : NULL);

	l->skel = loop_bpf__open_opts(&oopts);
	if (!l->skel) {
		err = -errno;
		goto cleanup;
	}
	l->skel->data->slow_threshold_ns =
		opts && opts->slow_threshold_ns ? opts->slow_threshold_ns : LS_DEFAULT_THRESHOLD_NS;
	if (!opts || !opts->follow_children) {
		bpf_program__set_autoload(l->skel->progs.ls_follow_fork, false);
		bpf_program__set_autoload(l->skel->progs.ls_follow_exec, false);
	}
	err = loop_bpf__load(l->skel);
	if (err)
		goto cleanup;
	err = loop_bpf__attach(l->skel);
	if (err)
		goto cleanup;
	l->rb = ring_buffer__new(bpf_map__fd(l->skel->maps.events), on_ring_record, l, NULL);
	if (!l->rb) {
		err = -errno;
		goto cleanup;
	}
	*out = l;
	return 0;
cleanup:
	ls_loop_close(l);
	return err < 0 ? err : -EINVAL;
}

int ls_loop_add_target(struct ls_loop *l, pid_t pid)
{
	__u32 key = (__u32)pid;
	__u8 one = 1;
	int err;

	err = bpf_map_update_elem(bpf_map__fd(l->skel->maps.targets), &key, &one, BPF_ANY);
	if (err)
		return errno == E2BIG ? -E2BIG : -errno;
	return 0;
}

int ls_loop_remove_target(struct ls_loop *l, pid_t pid)
{
	int tfd = bpf_map__fd(l->skel->maps.threads);
	__u32 key = (__u32)pid, cur, next, *doomed = NULL;
	struct ls_thread_stats *st;
	size_t n = 0, cap = 0;
	bool first = true;
	int err = 0;

	if (bpf_map_delete_elem(bpf_map__fd(l->skel->maps.targets), &key) && errno != ENOENT)
		err = -errno;
	st = malloc(sizeof(*st));
	if (!st)
		return -ENOMEM;
	/* One walk collects the process's threads, then they are deleted:
	 * deleting during the walk would lose its place in the hash. */
	while (bpf_map_get_next_key(tfd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		if (bpf_map_lookup_elem(tfd, &cur, st) || st->tgid != (__u32)pid)
			continue;
		if (n == cap) {
			__u32 *grown = realloc(doomed, (cap = cap ? cap * 2 : 16) * sizeof(*doomed));

			if (!grown) {
				err = -ENOMEM;
				break;
			}
			doomed = grown;
		}
		doomed[n++] = cur;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(tfd, &doomed[i]);
	free(doomed);
	free(st);
	return err;
}

void ls_loop_set_threshold(struct ls_loop *l, uint64_t ns)
{
	l->skel->data->slow_threshold_ns = ns ? ns : LS_DEFAULT_THRESHOLD_NS;
}

int ls_loop_poll(struct ls_loop *l, int timeout_ms)
{
	int err;

	l->delivered = 0;
	err = ring_buffer__poll(l->rb, timeout_ms);
	if (err < 0)
		return err;
	return l->delivered;
}

int ls_loop_snapshot(struct ls_loop *l, struct ls_thread_stats **out, size_t *n,
		     uint64_t *now_ns)
{
	int tfd = bpf_map__fd(l->skel->maps.threads);
	struct ls_thread_stats *v = NULL, *grown;
	size_t len = 0, cap = 0;
	__u32 cur, next;
	bool first = true;

	*now_ns = ls_sys_now_ns();
	while (bpf_map_get_next_key(tfd, first ? NULL : &cur, &next) == 0) {
		first = false;
		cur = next;
		if (len == cap) {
			cap = cap ? cap * 2 : 8;
			grown = realloc(v, cap * sizeof(*v));
			if (!grown) {
				free(v);
				return -ENOMEM;
			}
			v = grown;
		}
		if (bpf_map_lookup_elem(tfd, &cur, &v[len]) == 0)
			len++;
	}
	*out = v;
	*n = len;
	return 0;
}

uint64_t ls_loop_lost_events(struct ls_loop *l)
{
	return l->skel->bss->lost_events;
}

void ls_loop_close(struct ls_loop *l)
{
	if (!l)
		return;
	ring_buffer__free(l->rb);
	loop_bpf__destroy(l->skel);
	free(l);
}
