// SPDX-License-Identifier: MIT
/* The discovery session: bpf/discover.bpf.c's exec, fork and exit events. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "loopscope/abi/discover_events.h"
#include "loopscope/discover.h"
#include "discover.skel.h"
#include "ringbuf.h"

struct ls_discover {
	struct discover_bpf *skel;
	struct ls_ringbuf *rb;
	ls_discover_fn fn;
	void *ctx;
};

_Static_assert((int)LS_DISCOVER_EXEC == LS_DISC_EXEC && (int)LS_DISCOVER_FORK == LS_DISC_FORK &&
		       (int)LS_DISCOVER_EXIT == LS_DISC_EXIT,
	       "the public kinds are the kernel's");

static bool on_record(void *ctx, const void *data, size_t size)
{
	struct ls_discover *d = ctx;
	const struct ls_disc_event *e = data;

	if (size < sizeof(*e))
		return false;
	if (e->type != LS_DISC_EXEC && e->type != LS_DISC_FORK && e->type != LS_DISC_EXIT)
		return false;
	d->fn((enum ls_discover_what)e->type, (pid_t)e->tgid, e->ts_ns, d->ctx);
	return true;
}

int ls_discover_open(const char *btf_path, ls_discover_fn fn, void *ctx, struct ls_discover **out,
		     char *err, size_t len)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts, .btf_custom_path = btf_path);
	struct ls_discover *d = calloc(1, sizeof(*d));
	int e;

	if (!d) {
		snprintf(err, len, "out of memory");
		return -ENOMEM;
	}
	d->fn = fn;
	d->ctx = ctx;
	d->skel = discover_bpf__open_opts(&oopts);
	if (!d->skel) {
		e = -errno;
		snprintf(err, len, "opening the discovery BPF object failed: %s", strerror(-e));
		goto cleanup;
	}
	e = discover_bpf__load(d->skel);
	if (!e)
		e = discover_bpf__attach(d->skel);
	if (e) {
		snprintf(err, len, "loading the discovery BPF programs failed: %s", strerror(-e));
		goto cleanup;
	}
	/* No time budget: an exec event is cheap to read, and the engine's
	 * rules want every one. */
	e = ls_ringbuf_open(bpf_map__fd(d->skel->maps.disc_events), on_record, d, 0, &d->rb);
	if (e) {
		snprintf(err, len, "discovery ring buffer: %s", strerror(-e));
		goto cleanup;
	}
	*out = d;
	return 0;
cleanup:
	ls_discover_close(d);
	return e < 0 ? e : -EINVAL;
}

int ls_discover_watch(struct ls_discover *d, pid_t pid, bool on)
{
	__u32 key = (__u32)pid;
	__u8 one = 1;
	int fd = bpf_map__fd(d->skel->maps.watched);
	int e = on ? bpf_map_update_elem(fd, &key, &one, BPF_ANY) : bpf_map_delete_elem(fd, &key);

	return e ? -errno : 0;
}

int ls_discover_poll(struct ls_discover *d, int timeout_ms)
{
	return ls_ringbuf_poll(d->rb, timeout_ms);
}

uint64_t ls_discover_lost_events(const struct ls_discover *d)
{
	return d->skel->bss->lost_events;
}

void ls_discover_close(struct ls_discover *d)
{
	if (!d)
		return;
	ls_ringbuf_free(d->rb);
	discover_bpf__destroy(d->skel);
	free(d);
}
