/* SPDX-License-Identifier: MIT */
/*
 * A BPF ring buffer read on a time budget (agent/session/ringbuf.c), for
 * every session of this folder: libbpf (1.1) consumes until it sees the
 * ring empty, which a flooding target never lets happen, so one poll could
 * keep its caller reading for ever.
 */
#ifndef LS_SESSION_RINGBUF_H
#define LS_SESSION_RINGBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one ls_ringbuf_poll of a session's events spends reading records,
 * at most (plus its wait), ns. */
#define LS_RINGBUF_CONSUME_NS (50ULL * 1000000)

/* One record (data, size bytes, as the BPF program reserved it): true when
 * it was delivered to someone (it counts in ls_ringbuf_poll's result and
 * its budget), false when it was skipped (unknown type, too short). */
typedef bool (*ls_ringbuf_fn)(void *ctx, const void *data, size_t size);

struct ls_ringbuf;

/* Read the BPF_MAP_TYPE_RINGBUF map map_fd with fn(ctx, ...), each poll
 * reading for at most budget_ns once records come (0: until the ring is
 * empty). 0 and *out, or a negative errno from libbpf (-ENOMEM, -EINVAL for
 * a map of another type). */
int ls_ringbuf_open(int map_fd, ls_ringbuf_fn fn, void *ctx, uint64_t budget_ns,
		    struct ls_ringbuf **out);

/* Wait up to timeout_ms (0: do not wait, -1: for ever) for records and
 * hand them to fn, spending at most the budget reading them once they come
 * (the clock is read every 64 delivered records). Returns
 * the number delivered, or a negative errno from epoll (-EINTR: a signal
 * interrupted the wait). */
int ls_ringbuf_poll(struct ls_ringbuf *rb, int timeout_ms);

/* Read what the ring holds now, without waiting (a ring whose producer
 * submits without wake-ups, BPF_RB_NO_WAKEUP, never looks ready to
 * epoll): the number delivered, or a negative errno. Same budget. */
int ls_ringbuf_consume(struct ls_ringbuf *rb);

/* NULL is fine. */
void ls_ringbuf_free(struct ls_ringbuf *rb);

#endif /* LS_SESSION_RINGBUF_H */
