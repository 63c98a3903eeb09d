// SPDX-License-Identifier: MIT
/* The engine's windows: every interval, each loop thread's figures since
 * the last one, and precise-mode targets' callback histograms. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "loopscope/abi/pycallback_events.h"
#include "loopscope/monitor.h"
#include "loopscope/pycallback.h"
#include "engine.h"

static void summarize(const struct ls_thread_window *w, struct ls_mon_window *out)
{
	out->window_ns = w->window_ns;
	out->iterations_per_s = w->iterations_per_s;
	out->utilization = w->utilization;
	out->busy_p99_ns = ls_hist_percentile(&w->busy, 99);
	out->busy_max_ns = w->busy.max;
	out->lag_p99_ns = ls_hist_percentile(&w->lag, 99);
	out->lag_max_ns = w->lag.max;
	out->lag_count = w->lag.count;
	out->delay_p99_ns = ls_stats_delay_percentile(&w->busy, w->poll.sum, 99);
	out->busy_now_ns = w->busy_now_ns;
	out->slow = w->slow_busy;
}

/* The session's histograms of t's callbacks now (cur) against the last
 * snapshot: add what is new to t->callbacks. The session's figures only go
 * down when it forgot them (precise mode taken down and set up again):
 * then all of cur is new. */
static void add_callbacks(struct ls_mon_target *t, struct ls_hist *cur)
{
	if (!t->cb_last && !(t->cb_last = calloc(1, sizeof(*t->cb_last))))
		return;
	if (cur->count < t->cb_last->count)
		memset(t->cb_last, 0, sizeof(*t->cb_last));
	ls_hist_sub(t->cb_last, cur, t->cb_last);
	if (t->callbacks.max < cur->max)
		t->callbacks.max = cur->max;
	{
		uint64_t max = t->callbacks.max;

		ls_hist_merge(&t->callbacks, t->cb_last);
		t->callbacks.max = max;
	}
	*t->cb_last = *cur;
}

/* The callbacks' histograms merged per process, as the map is walked:
 * memory grows with the processes, not with their callbacks (#12 item 6:
 * a copy of the whole map was ~5 KiB per callback name every tick). */
struct per_pid {
	struct per_pid_sum {
		uint32_t tgid;
		struct ls_hist h;
	} *v;
	size_t n, cap;
	bool nomem;
};

static void sum_callback(const struct ls_cb_key *k, const struct ls_cb_stats *st, void *ctx)
{
	struct per_pid *pp = ctx;
	size_t i;

	for (i = 0; i < pp->n && pp->v[i].tgid != k->tgid; i++)
		;
	if (i == pp->n) {
		if (pp->n == pp->cap) {
			size_t cap = pp->cap ? pp->cap * 2 : 8;
			struct per_pid_sum *g = realloc(pp->v, cap * sizeof(*g));

			if (!g) {
				pp->nomem = true;
				return;
			}
			pp->v = g;
			pp->cap = cap;
		}
		memset(&pp->v[i], 0, sizeof(pp->v[i]));
		pp->v[i].tgid = k->tgid;
		pp->n++;
	}
	ls_hist_merge(&pp->v[i].h, &st->duration);
}

/* Whether thread tid of pid still exists (/proc/PID/task/TID); anything
 * but ENOENT counts as alive. */
static bool thread_exists(pid_t pid, uint32_t tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%u", (int)pid, tid);
	return access(path, F_OK) == 0 || errno != ENOENT;
}

/* A live target's threads the kernel's table no longer has (pruned: they
 * exited) go, with their series: /metrics and the engine's memory follow
 * the threads alive, not every thread ever seen. Threads known only from
 * a slow callback event go when they exit. Its table counts are copied.
 * Lock held. */
static void drop_gone_threads(struct ls_mon *m, struct ls_mon_target *t)
{
	struct ls_loop_thread_counts c;
	size_t kept = 0;

	if (t->exited_ns)
		return; /* its last figures stay for the grace period */
	if (ls_loop_thread_counts(m->loop, t->pid, &c) == 0) {
		t->threads_untracked = c.untracked;
		t->threads_pruned = c.pruned;
	}
	for (size_t j = 0; j < t->nthreads; j++) {
		struct ls_mon_thread *th = &t->threads[j];

		if (th->has_stats ? th->seen_gen != m->tick_gen : !thread_exists(t->pid, th->tid))
			continue;
		if (kept != j)
			t->threads[kept] = *th;
		kept++;
	}
	if (kept == t->nthreads)
		return;
	t->nthreads = kept;
	if (kept) {
		struct ls_mon_thread *s = realloc(t->threads, kept * sizeof(*s));

		if (s)
			t->threads = s;
	} else {
		free(t->threads);
		t->threads = NULL;
	}
}

void ls_mon_tick(struct ls_mon *m)
{
	struct ls_thread_view *v = NULL;
	struct per_pid cb = { 0 };
	struct ls_thread_window *w;
	struct ls_hist *cur = NULL;
	size_t n = 0;
	bool cb_ok = false;
	uint64_t now;

	/* Exited threads leave the kernel's table first (#12 item 2): a
	 * target churning threads neither fills it nor grows the copy. */
	ls_loop_prune(m->loop, NULL, NULL);
	if (ls_loop_snapshot(m->loop, &v, &n, &now))
		return;
	/* A failed walk leaves the callback histograms as they were. */
	if (ls_mon_pycb(m) && ls_pycb_walk(ls_mon_pycb(m), sum_callback, &cb) == 0 && !cb.nomem)
		cb_ok = (cur = malloc(sizeof(*cur))) != NULL;
	w = malloc(sizeof(*w));
	ls_mon_lock(m);
	m->tick_gen++;
	for (size_t i = 0; w && i < n; i++) {
		struct ls_mon_target *t = ls_mon_find_target(m, (pid_t)v[i].tgid);
		struct ls_mon_thread *th;

		if (!t || !(th = ls_mon_find_thread(t, v[i].tid, true)))
			continue;
		if (th->has_stats && th->stats.thread_start != v[i].thread_start)
			th->has_stats = false; /* a reused tid: a new thread */
		ls_stats_window(&v[i], now, th->has_stats ? &th->stats : NULL,
				th->has_stats ? th->stats_ns : t->attached_ns, w);
		summarize(w, &th->win);
		th->stats = v[i];
		th->stats_ns = now;
		th->has_stats = true;
		th->seen_gen = m->tick_gen;
	}
	for (size_t i = 0; w && i < m->ntargets; i++)
		drop_gone_threads(m, &m->targets[i]);
	for (size_t i = 0; cb_ok && i < m->ntargets; i++) {
		struct ls_mon_target *t = &m->targets[i];

		if (t->exited_ns || !t->precise)
			continue;
		memset(cur, 0, sizeof(*cur));
		for (size_t j = 0; j < cb.n; j++)
			if ((pid_t)cb.v[j].tgid == t->pid)
				*cur = cb.v[j].h;
		add_callbacks(t, cur);
	}
	/* The flight recorder: a snapshot of each target's threads. */
	for (size_t i = 0; ls_mon_flight_on(m) && i < m->ntargets; i++) {
		struct ls_mon_target *t = &m->targets[i];
		struct ls_thread_view *mine;
		size_t k = 0;

		if (t->exited_ns)
			continue;
		mine = malloc((n ? n : 1) * sizeof(*mine));
		if (!mine)
			break;
		for (size_t j = 0; j < n; j++)
			if ((pid_t)v[j].tgid == t->pid)
				mine[k++] = v[j];
		ls_mon_flight_snapshot(m, t, mine, k, now);
		free(mine);
	}
	m->window_end_ns = now;
	ls_mon_unlock(m);
	free(cur);
	free(w);
	free(v);
	free(cb.v);
}

/* Exits the discovery events missed (a full ring buffer), drop expired
 * targets, retry precise-mode resolution. */