// SPDX-License-Identifier: MIT
/*
 * The per-callback stream's records (format 1.4, docs/RECORD.md "Every
 * callback"): CB_RUNS, each callback of a thread as four varints of deltas
 * from the one before, its key an index into the CB_KEY records before it.
 * Apart from cbstream.c so that the reader (and fuzz_replay) need nothing
 * else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/pycallback_events.h"
#include "loopscope/pycallback.h"
#include "loopscope/record.h"
#include "record/format.h"
#include "record/varint.h"

/* Signed deltas as unsigned (zigzag: 0, -1, 1, -2 ... as 0, 1, 2, 3). */
static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

size_t rec_cbruns_encode(uint8_t *out, uint32_t tgid, const struct ls_callback_event *e,
			 const uint32_t *idx, size_t n)
{
	uint64_t t = e[0].start_ns;
	uint32_t seq = e[0].seq;
	size_t o = REC_CBRUNS_FIXED;

	rec_w32(out, tgid);
	rec_w32(out + 4, e[0].tid);
	rec_w32(out + 8, (uint32_t)n);
	rec_w32(out + 12, seq);
	rec_w64(out + 16, t);
	for (size_t i = 0; i < n; i++) {
		o += ls_varint_put(out + o, (uint32_t)(e[i].seq - seq));
		o += ls_varint_put(out + o, zigzag((int64_t)(e[i].start_ns - t)));
		o += ls_varint_put(out + o, e[i].duration_ns);
		o += ls_varint_put(out + o, idx[i]);
		seq = e[i].seq;
		t = e[i].start_ns + e[i].duration_ns;
	}
	return o;
}

int rec_cbruns_decode(const uint8_t *p, size_t len, const struct ls_cb_key *keys, size_t nkeys,
		      struct ls_callback_event **buf, size_t *cap, size_t *n)
{
	uint32_t tid, cnt, seq;
	uint64_t t;
	size_t off = REC_CBRUNS_FIXED;

	if (len < REC_CBRUNS_FIXED)
		return -EBADMSG;
	tid = rec_r32(p + 4);
	cnt = rec_r32(p + 8);
	seq = rec_r32(p + 12);
	t = rec_r64(p + 16);
	/* Each callback takes 4 bytes at least: a count its payload cannot
	 * hold is a corrupt record, not an allocation. */
	if (cnt > (len - REC_CBRUNS_FIXED) / 4)
		return -EBADMSG;
	if (cnt > *cap) {
		struct ls_callback_event *g = realloc(*buf, (cnt + 1) * sizeof(**buf));

		if (!g)
			return -ENOMEM;
		*buf = g;
		*cap = cnt;
	}
	for (uint32_t i = 0; i < cnt; i++) {
		struct ls_callback_event *e = &(*buf)[i];
		uint64_t dseq, ds, d, k;

		if (ls_varint_get(p, len, &off, &dseq) || ls_varint_get(p, len, &off, &ds) ||
		    ls_varint_get(p, len, &off, &d) || ls_varint_get(p, len, &off, &k) ||
		    dseq > UINT32_MAX || k >= nkeys)
			return -EBADMSG;
		memset(e, 0, sizeof(*e));
		e->tid = tid;
		seq += (uint32_t)dseq;
		e->seq = seq;
		e->start_ns = t + (uint64_t)unzigzag(ds);
		e->duration_ns = d;
		e->key = keys[k];
		t = e->start_ns + d;
	}
	*n = cnt;
	return 0;
}
