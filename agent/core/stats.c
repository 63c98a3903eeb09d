// SPDX-License-Identifier: MIT
/* Aggregation of per-thread loop stats over windows. */
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/loopscope.h"

const char *ls_poll_kind_name(uint32_t kind)
{
	switch (kind) {
	case LS_POLL_EPOLL_WAIT: return "epoll_wait";
	case LS_POLL_EPOLL_PWAIT: return "epoll_pwait";
	case LS_POLL_EPOLL_PWAIT2: return "epoll_pwait2";
	default: return "-";
	}
}

/* Busy and poll time accumulated up to time t, counting the period in
 * progress at t (the histograms only hold finished periods). */
static void time_split_at(const struct ls_thread_view *st, uint64_t t,
			  uint64_t *busy, uint64_t *poll)
{
	*busy = st->busy.sum;
	*poll = st->poll.sum;
	if (st->in_poll) {
		if (t > st->poll_enter_ns)
			*poll += t - st->poll_enter_ns;
	} else if (st->poll_exit_ns && t > st->poll_exit_ns) {
		*busy += t - st->poll_exit_ns;
	}
}

void ls_stats_window(const struct ls_thread_view *now, uint64_t now_ns,
		     const struct ls_thread_view *before, uint64_t before_ns,
		     struct ls_thread_window *out)
{
	uint64_t busy1, poll1, busy0 = 0, poll0 = 0, polls0 = 0;

	memset(out, 0, sizeof(*out));
	out->tgid = now->tgid;
	out->tid = now->tid;
	out->poll_kind = now->poll_kind;
	out->window_ns = now_ns > before_ns ? now_ns - before_ns : 0;
	out->first_enter_ns = now->first_enter_ns;
	out->last_enter_ns = now->poll_enter_ns;
	out->lag_missed = now->lag_missed - (before ? before->lag_missed : 0);
	out->slow_busy = now->slow_busy - (before ? before->slow_busy : 0);

	time_split_at(now, now_ns, &busy1, &poll1);
	if (before) {
		time_split_at(before, before_ns, &busy0, &poll0);
		polls0 = before->polls;
		ls_hist_sub(&out->busy, &now->busy, &before->busy);
		ls_hist_sub(&out->poll, &now->poll, &before->poll);
		ls_hist_sub(&out->lag, &now->lag, &before->lag);
	} else {
		out->busy = now->busy;
		out->poll = now->poll;
		out->lag = now->lag;
		/* Before the first poll entry seen, the thread's time is not
		 * known to be loop time: count from that entry. */
		if (now->first_enter_ns > before_ns)
			out->window_ns = now_ns - now->first_enter_ns;
	}
	out->polls = now->polls - polls0;
	/* Iterations complete at a poll entry that follows another one (the
	 * session counts them since the start: now->iterations). */
	out->iterations = before ? out->polls : now->iterations;
	out->iterations_per_s = out->window_ns ?
		(double)out->iterations * 1e9 / (double)out->window_ns : 0.0;
	if (busy1 - busy0 + poll1 - poll0 > 0)
		out->utilization = (double)(busy1 - busy0) / (double)(busy1 - busy0 + poll1 - poll0);
	else
		out->utilization = -1.0;
	if (!now->in_poll && now->poll_exit_ns && now_ns > now->poll_exit_ns)
		out->busy_now_ns = now_ns - now->poll_exit_ns;
	/* ls_hist_sub clamps the slot bound to now->max: exact when that
	 * max was recorded in the window. */
	out->busy_max_exact = !before || !out->busy.count || now->busy.max > before->busy.max;
}

void ls_stats_window_busy_max(struct ls_thread_window *w, uint64_t slow_max_ns,
			      uint64_t threshold_ns)
{
	if (w->busy_max_exact)
		return;
	if (slow_max_ns) {
		w->busy.max = slow_max_ns;
		w->busy_max_exact = true;
	} else if (!w->slow_busy && threshold_ns && w->busy.max > threshold_ns) {
		w->busy.max = threshold_ns;
	}
}

static int desc_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

uint64_t ls_stats_kth_longest(const uint64_t *durations, size_t n, size_t k)
{
	uint64_t *v, kth;

	if (k == 0 || n <= k)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v)
		return 0;
	memcpy(v, durations, n * sizeof(*v));
	qsort(v, n, sizeof(*v), desc_u64);
	kth = v[k - 1];
	free(v);
	return kth;
}

/* Time-weighted share of delays <= x: (poll + sum over slots of
 * count * min(length, x)) / total, each slot's periods at its midpoint. */
static double delay_cdf(const struct ls_hist *busy, uint64_t poll_ns, double total, uint64_t x)
{
	double covered = (double)poll_ns;

	for (__u32 i = 0; i < LS_HIST_NSLOTS; i++) {
		uint64_t len;

		if (!busy->slots[i])
			continue;
		len = ls_hist_slot_lower(i) / 2 + ls_hist_slot_upper(i) / 2;
		if (len > busy->max)
			len = busy->max;
		covered += (double)busy->slots[i] * (double)(len < x ? len : x);
	}
	return covered / total;
}

uint64_t ls_stats_delay_percentile(const struct ls_hist *busy, uint64_t poll_ns, double q)
{
	double total = (double)poll_ns + (double)busy->sum, want = q / 100.0;
	uint64_t lo = 0, hi = busy->max;

	if (total <= 0 || busy->count == 0)
		return 0;
	if (q >= 100)
		return busy->max;
	/* The smallest x with cdf(x) >= q: cdf only grows with x. */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (delay_cdf(busy, poll_ns, total, mid) >= want)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}
