// SPDX-License-Identifier: MIT
/* A BPF ring buffer read on a time budget (see ringbuf.h). */
#include <errno.h>
#include <stdlib.h>

#include <bpf/libbpf.h>

#include "loopscope/loopscope.h"
#include "ringbuf.h"

struct ls_ringbuf {
	struct ring_buffer *rb;
	ls_ringbuf_fn fn;
	void *ctx;
	uint64_t budget_ns;        /* 0: none */
	int delivered;
	uint64_t consume_until_ns; /* one poll stops consuming at this time */
};

static int on_record(void *ctx, void *data, size_t size)
{
	struct ls_ringbuf *r = ctx;

	if (r->fn(r->ctx, data, size))
		r->delivered++;
	/* libbpf 1.1 consumes until it sees the ring empty, which a flooding
	 * target never lets happen: a negative return ends the poll (this
	 * record counts as read). The clock is read every 64 records. */
	if (r->budget_ns && (r->delivered & 63) == 63 && ls_sys_now_ns() >= r->consume_until_ns)
		return -EAGAIN;
	return 0;
}

int ls_ringbuf_open(int map_fd, ls_ringbuf_fn fn, void *ctx, uint64_t budget_ns,
		    struct ls_ringbuf **out)
{
	struct ls_ringbuf *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->fn = fn;
	r->ctx = ctx;
	r->budget_ns = budget_ns;
	r->rb = ring_buffer__new(map_fd, on_record, r, NULL);
	if (!r->rb) {
		err = -errno;
		free(r);
		return err < 0 ? err : -EINVAL;
	}
	*out = r;
	return 0;
}

int ls_ringbuf_poll(struct ls_ringbuf *r, int timeout_ms)
{
	int err;

	r->delivered = 0;
	r->consume_until_ns = ls_sys_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000 +
			      r->budget_ns;
	err = ring_buffer__poll(r->rb, timeout_ms);
	if (err == -EAGAIN)
		return r->delivered;
	return err < 0 ? err : r->delivered;
}

int ls_ringbuf_consume(struct ls_ringbuf *r)
{
	int err;

	r->delivered = 0;
	r->consume_until_ns = ls_sys_now_ns() + r->budget_ns;
	err = ring_buffer__consume(r->rb);
	if (err == -EAGAIN)
		return r->delivered;
	return err < 0 ? err : r->delivered;
}

void ls_ringbuf_free(struct ls_ringbuf *r)
{
	if (!r)
		return;
	ring_buffer__free(r->rb);
	free(r);
}
