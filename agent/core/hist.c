// SPDX-License-Identifier: MIT
/* User-space operations on the log-linear histogram of loopscope/hist.h. */
#include <math.h>
#include <stdint.h>

#include "loopscope/hist.h"

void ls_hist_record(struct ls_hist *h, __u64 v)
{
	h->slots[ls_hist_slot(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
}

void ls_hist_merge(struct ls_hist *dst, const struct ls_hist *src)
{
	for (unsigned i = 0; i < LS_HIST_NSLOTS; i++)
		dst->slots[i] += src->slots[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->max > dst->max)
		dst->max = src->max;
}

/* a - b, or 0 when b is ahead: a snapshot read while the BPF side updates
 * the same histogram (count, slots and sum are separate, non-atomic stores)
 * can be a few values behind in one field; never wrap to 2^64. */
static __u64 sat_sub(__u64 a, __u64 b)
{
	return a > b ? a - b : 0;
}

/* Upper bound of slot idx; the last slot has none (it also holds every value
 * >= 2^LS_HIST_MAX_LOG2), so its nominal upper bound would be too small. */
static __u64 slot_ceiling(unsigned idx)
{
	return idx == LS_HIST_NSLOTS - 1 ? UINT64_MAX : ls_hist_slot_upper(idx);
}

void ls_hist_sub(struct ls_hist *out, const struct ls_hist *now,
		 const struct ls_hist *before)
{
	__u64 now_max = now->max; /* out may alias now */
	__u64 max = 0;

	for (unsigned i = 0; i < LS_HIST_NSLOTS; i++) {
		out->slots[i] = sat_sub(now->slots[i], before->slots[i]);
		if (out->slots[i])
			max = slot_ceiling(i);
	}
	out->count = sat_sub(now->count, before->count);
	out->sum = sat_sub(now->sum, before->sum);
	/* When the largest value ever seen came in between the snapshots it is
	 * in the highest non-empty slot of the difference, so the clamp makes
	 * out->max exact in that case. */
	out->max = max < now_max ? max : now_max;
}

/* Nearest rank ceil(q/100 * n), in [1, n]. The product is computed in
 * floating point, where 99.9/100 * 1000 may come out as 999.0000000000001:
 * a relative slack of 1e-12 keeps such ranks at the integer a person
 * expects, and is far below any real fraction of a rank for n < 2^40. */
static __u64 nearest_rank(double q, __u64 n)
{
	double x;
	__u64 rank;

	if (!(q > 0)) /* also NaN */
		return 1;
	if (q >= 100)
		return n;
	x = q / 100.0 * (double)n;
	x = ceil(x - x * 1e-12);
	rank = x < 1 ? 1 : (__u64)x;
	return rank > n ? n : rank;
}

__u64 ls_hist_percentile(const struct ls_hist *h, double q)
{
	__u64 n = 0, rank, seen = 0;
	unsigned i;

	/* Rank against the slots themselves rather than h->count: in a torn
	 * snapshot (see sat_sub) the two may differ by a few values, and the
	 * walk below must find the rank inside the slots. */
	for (i = 0; i < LS_HIST_NSLOTS; i++)
		n += h->slots[i];
	if (n == 0)
		return 0;
	rank = nearest_rank(q, n);
	for (i = 0; i < LS_HIST_NSLOTS; i++) {
		seen += h->slots[i];
		if (seen >= rank)
			break;
	}

	__u64 lo = ls_hist_slot_lower(i), hi = ls_hist_slot_upper(i);
	__u64 mid = lo + (hi - lo) / 2;

	/* A max below the slot can only come from a torn snapshot; then the
	 * midpoint is the better guess. Otherwise the largest value is known
	 * exactly, and clamping to it keeps every estimate no larger. */
	if (h->max < lo)
		return mid;
	if (rank == n || h->max < mid)
		return h->max;
	return mid;
}
