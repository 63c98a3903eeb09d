// SPDX-License-Identifier: MIT
/*
 * The POLLS record's encoding (format 1.3, docs/RECORD.md "Every poll"):
 * each poll of a thread as four varints of deltas from the one before.
 * Apart from polls.c so that the reader (and fuzz_replay) need nothing else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/record.h"
#include "record/format.h"
#include "record/varint.h"

/* A timeout as the kernel gives it (-1, 0, or ns; epoll_wait's are whole
 * ms): 0 none, 1 infinite, 2 + 2 ms for whole ms, 3 + 2 ns otherwise. */
static uint64_t timeout_code(int64_t t)
{
	if (t == 0)
		return 0;
	if (t < 0)
		return 1;
	if (t % 1000000 == 0)
		return 2 + 2 * (uint64_t)(t / 1000000);
	/* An epoll_pwait2 timespec of centuries: kept as the largest that
	 * fits (its deadline is never reached either way). */
	if ((uint64_t)t > (UINT64_MAX - 3) / 2)
		t = (int64_t)((UINT64_MAX - 3) / 2);
	return 3 + 2 * (uint64_t)t;
}

static int64_t timeout_of(uint64_t c)
{
	if (c == 0)
		return 0;
	if (c == 1)
		return -1;
	if (c % 2 == 0) {
		uint64_t ms = (c - 2) / 2;

		/* beyond any timeout a kernel takes (a corrupt file): saturate */
		return ms > INT64_MAX / 1000000 ? INT64_MAX : (int64_t)ms * 1000000;
	}
	return (int64_t)((c - 3) / 2);
}

size_t rec_polls_encode(uint8_t *out, const struct ls_poll_event *p, size_t n)
{
	uint64_t t = p[0].prev_exit_ns ? p[0].prev_exit_ns : p[0].enter_ns;
	uint32_t seq = p[0].seq;
	size_t o = REC_POLLS_FIXED;

	rec_w32(out, p[0].tgid);
	rec_w32(out + 4, p[0].tid);
	rec_w32(out + 8, (uint32_t)n);
	rec_w32(out + 12, seq);
	rec_w64(out + 16, t);
	for (size_t i = 0; i < n; i++) {
		uint64_t from = p[i].prev_exit_ns ? p[i].prev_exit_ns : t;

		o += ls_varint_put(out + o, (uint32_t)(p[i].seq - seq));
		o += ls_varint_put(out + o, p[i].prev_exit_ns ? p[i].prev_exit_ns - t + 1 : 0);
		o += ls_varint_put(out + o, p[i].enter_ns - from);
		o += ls_varint_put(out + o, timeout_code(p[i].timeout_ns));
		seq = p[i].seq;
		t = p[i].enter_ns;
	}
	return o;
}

int rec_polls_decode(const uint8_t *p, size_t len, struct ls_poll_event **buf, size_t *cap,
		     size_t *n)
{
	uint32_t tgid, tid, cnt, seq;
	uint64_t t;
	size_t off = REC_POLLS_FIXED;

	if (len < REC_POLLS_FIXED)
		return -EBADMSG;
	tgid = rec_r32(p);
	tid = rec_r32(p + 4);
	cnt = rec_r32(p + 8);
	seq = rec_r32(p + 12);
	t = rec_r64(p + 16);
	/* Each poll takes 4 bytes at least: a count its payload cannot hold
	 * is a corrupt record, not an allocation. */
	if (cnt > (len - REC_POLLS_FIXED) / 4)
		return -EBADMSG;
	if (cnt > *cap) {
		struct ls_poll_event *g = realloc(*buf, (cnt + 1) * sizeof(**buf));

		if (!g)
			return -ENOMEM;
		*buf = g;
		*cap = cnt;
	}
	for (uint32_t i = 0; i < cnt; i++) {
		struct ls_poll_event *e = &(*buf)[i];
		uint64_t dseq, x, b, tc;

		if (ls_varint_get(p, len, &off, &dseq) || ls_varint_get(p, len, &off, &x) ||
		    ls_varint_get(p, len, &off, &b) || ls_varint_get(p, len, &off, &tc) ||
		    dseq > UINT32_MAX)
			return -EBADMSG;
		memset(e, 0, sizeof(*e));
		e->tgid = tgid;
		e->tid = tid;
		seq += (uint32_t)dseq;
		e->seq = seq;
		e->prev_exit_ns = x ? t + x - 1 : 0;
		e->enter_ns = (x ? e->prev_exit_ns : t) + b;
		e->timeout_ns = timeout_of(tc);
		t = e->enter_ns;
	}
	*n = cnt;
	return 0;
}
