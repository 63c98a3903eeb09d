/* SPDX-License-Identifier: MIT */
/*
 * Log-linear (HDR-style) histogram shared by the BPF programs and user space.
 *
 * Layout: values 0..15 each have their own slot; every power of two
 * [2^k, 2^(k+1)) for k = 4..LS_HIST_MAX_LOG2-1 is split into LS_HIST_SUB
 * equal slots, so a slot is at most 1/16 of its lower bound wide: any value
 * is known to within a relative error of 1/16 (1/32 when the slot midpoint is
 * reported). Values >= 2^LS_HIST_MAX_LOG2 (about 4.9 hours in ns) fall into
 * the last slot; `max` stays exact.
 *
 * Histograms are mergeable by adding slots: same layout in every thread,
 * process and host.
 */
#ifndef LOOPSCOPE_HIST_H
#define LOOPSCOPE_HIST_H

#ifdef __BPF__
/* vmlinux.h provides __u32/__u64 on the BPF side. */
#else
#include <linux/types.h>
#endif

#define LS_HIST_SUB_BITS 4
#define LS_HIST_SUB (1u << LS_HIST_SUB_BITS)
#define LS_HIST_MAX_LOG2 44
#define LS_HIST_NSLOTS ((LS_HIST_MAX_LOG2 - LS_HIST_SUB_BITS + 1) * LS_HIST_SUB)

struct ls_hist {
	__u64 count; /* number of values recorded */
	__u64 sum;   /* sum of values (ns for durations) */
	__u64 max;   /* exact largest value */
	__u64 slots[LS_HIST_NSLOTS];
};

/* floor(log2(v)) for v > 0; 0 for v == 0. Branch-free so the BPF verifier
 * sees a straight line (the shape of libbpf-tools' bits.bpf.h log2). */
static inline __u32 ls_log2_u64(__u64 v)
{
	__u32 r = 0, s;

	s = (v > 0xFFFFFFFFULL) << 5; v >>= s; r |= s;
	s = (v > 0xFFFFULL) << 4;     v >>= s; r |= s;
	s = (v > 0xFFULL) << 3;       v >>= s; r |= s;
	s = (v > 0xFULL) << 2;        v >>= s; r |= s;
	s = (v > 0x3ULL) << 1;        v >>= s; r |= s;
	r |= (__u32)(v >> 1);
	return r;
}

/* Slot index of value v, in [0, LS_HIST_NSLOTS). */
static inline __u32 ls_hist_slot(__u64 v)
{
	__u32 k, sub;

	if (v < LS_HIST_SUB)
		return (__u32)v;
	k = ls_log2_u64(v);
	if (k >= LS_HIST_MAX_LOG2)
		return LS_HIST_NSLOTS - 1;
	sub = (__u32)(v >> (k - LS_HIST_SUB_BITS)) & (LS_HIST_SUB - 1);
	return (k - LS_HIST_SUB_BITS + 1) * LS_HIST_SUB + sub;
}

/* Smallest value that maps to slot idx. */
static inline __u64 ls_hist_slot_lower(__u32 idx)
{
	__u32 k, sub;

	if (idx < LS_HIST_SUB)
		return idx;
	k = idx / LS_HIST_SUB + LS_HIST_SUB_BITS - 1;
	sub = idx % LS_HIST_SUB;
	return (__u64)(LS_HIST_SUB + sub) << (k - LS_HIST_SUB_BITS);
}

/* Largest value that maps to slot idx (the last slot also holds everything
 * above 2^LS_HIST_MAX_LOG2; its nominal upper bound is returned). */
static inline __u64 ls_hist_slot_upper(__u32 idx)
{
	__u32 k;

	if (idx < LS_HIST_SUB)
		return idx;
	k = idx / LS_HIST_SUB + LS_HIST_SUB_BITS - 1;
	return ls_hist_slot_lower(idx) + (1ULL << (k - LS_HIST_SUB_BITS)) - 1;
}

#ifdef __BPF__
/* Record v in h from a BPF program that is h's only writer (a thread's own
 * state): plain increments. */
static inline __attribute__((always_inline)) void ls_hist_add(struct ls_hist *h, __u64 v)
{
	__u32 slot = ls_hist_slot(v);

	if (slot >= LS_HIST_NSLOTS) /* for the verifier */
		return;
	h->slots[slot]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

/* The same for a histogram several CPUs record into at once (one callback
 * run by threads of one process): atomic adds, and max by compare-and-swap
 * so that it stays exact. */
static inline __attribute__((always_inline)) void ls_hist_add_shared(struct ls_hist *h, __u64 v)
{
	__u32 slot = ls_hist_slot(v);
	__u64 old;

	if (slot >= LS_HIST_NSLOTS)
		return;
	__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->count, 1);
	__sync_fetch_and_add(&h->sum, v);
	for (int i = 0; i < 8; i++) { /* bounded: a writer that loses 8 times is rare */
		old = h->max;
		if (v <= old || __sync_val_compare_and_swap(&h->max, old, v) == old)
			break;
	}
}
#else
/* User-space operations (agent/core/hist.c). */

/* Add value v (any unit; ns for durations) to h. */
void ls_hist_record(struct ls_hist *h, __u64 v);

/* dst += src, slot by slot; dst->max = max of both. */
void ls_hist_merge(struct ls_hist *dst, const struct ls_hist *src);

/* out = now - before: the values recorded between two snapshots of one
 * cumulative histogram. out->max is not knowable exactly from two snapshots:
 * it is the upper bound of the highest non-empty slot of the difference
 * (unbounded for the last slot), clamped to now->max; so it is exact when
 * now->max was recorded in between, and 0 when nothing was. Fields where
 * before is ahead of now (a snapshot torn by a concurrent BPF update) give 0,
 * never a wrapped value. out may alias now. */
void ls_hist_sub(struct ls_hist *out, const struct ls_hist *now,
		 const struct ls_hist *before);

/* The q-th percentile (q in [0, 100]) by nearest rank: the value of rank
 * ceil(q/100 * count) (rank 1 for q == 0; q is clamped to [0, 100] and the
 * product taken with a 1e-12 relative slack, so 99.9 of 1000 is rank 999).
 * Returns the midpoint of that value's slot, clamped to h->max, so the result
 * is within 1/32 of the true sample (relative; values below 16 are exact)
 * and never above the largest one. The top rank (q == 100) returns h->max
 * itself: exact for a recorded histogram, the bound described at ls_hist_sub
 * for a difference. count is taken as the sum of the slots. 0 when h is
 * empty. */
__u64 ls_hist_percentile(const struct ls_hist *h, double q);
#endif

#endif /* LOOPSCOPE_HIST_H */
