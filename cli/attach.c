// SPDX-License-Identifier: MIT
/* `loopscope attach -p PID[,PID...]`: per-thread loop health every interval,
 * a report at the end (duration elapsed, Ctrl-C, SIGTERM, targets gone). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <json-c/json.h>

#include "attach.h"
#include "cli.h"
#include "loopscope/abi/loop_events.h"
#include "loopscope/busywhy.h"
#include "loopscope/loopscope.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

void cli_attach_set_thread_name(struct attach *a, uint32_t tid, const char *name)
{
	struct thread_name *grown;

	for (size_t i = 0; i < a->nnames; i++)
		if (a->names[i].tid == tid) {
			snprintf(a->names[i].name, sizeof(a->names[i].name), "%s", name);
			return;
		}
	grown = realloc(a->names, (a->nnames + 1) * sizeof(*a->names));
	if (!grown)
		return;
	a->names = grown;
	a->names[a->nnames].tid = tid;
	snprintf(a->names[a->nnames++].name, sizeof(a->names[0].name), "%s", name);
}

const char *cli_attach_thread_name(struct attach *a, uint32_t tgid, uint32_t tid)
{
	char name[16];

	for (size_t i = 0; i < a->nnames; i++)
		if (a->names[i].tid == tid)
			return a->names[i].name;
	if (a->replay)
		return "?";
	ls_target_thread_name((pid_t)tgid, (pid_t)tid, name, sizeof(name));
	cli_attach_set_thread_name(a, tid, name);
	if (a->rec && !a->rec_err)
		cli_attach_record_status(a, ls_record_put_thread(a->rec, tgid, tid, name));
	for (size_t i = 0; i < a->nnames; i++)
		if (a->names[i].tid == tid)
			return a->names[i].name;
	return "?";
}

#define thread_name cli_attach_thread_name

static json_object *window_json(struct attach *a, const struct ls_thread_window *w)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "pid", json_object_new_int((int)w->tgid));
	json_object_object_add(o, "tid", json_object_new_int((int)w->tid));
	json_object_object_add(o, "thread", json_object_new_string(thread_name(a, w->tgid, w->tid)));
	json_object_object_add(o, "poll_syscall", json_object_new_string(ls_poll_kind_name(w->poll_kind)));
	ls_json_add_u64(o, "window_ns", w->window_ns);
	ls_json_add_u64(o, "polls", w->polls);
	ls_json_add_u64(o, "iterations", w->iterations);
	json_object_object_add(o, "iterations_per_s", json_object_new_double(w->iterations_per_s));
	if (w->utilization >= 0)
		json_object_object_add(o, "utilization", json_object_new_double(w->utilization));
	else
		json_object_object_add(o, "utilization", NULL);
	ls_json_add_u64(o, "busy_now_ns", w->busy_now_ns);
	json_object_object_add(o, "busy_max_exact", json_object_new_boolean(w->busy_max_exact));
	ls_json_add_u64(o, "slow_busy", w->slow_busy);
	ls_json_add_u64(o, "lag_missed", w->lag_missed);
	ls_json_add_u64(o, "first_poll_enter_ns", w->first_enter_ns);
	ls_json_add_u64(o, "last_poll_enter_ns", w->last_enter_ns);
	json_object_object_add(o, "busy", cli_hist_json(&w->busy));
	json_object_object_add(o, "poll", cli_hist_json(&w->poll));
	json_object_object_add(o, "lag", cli_hist_json(&w->lag));
	{
		json_object *d = json_object_new_object();

		ls_json_add_u64(d, "p50_ns", ls_stats_delay_percentile(&w->busy, w->poll.sum, 50));
		ls_json_add_u64(d, "p90_ns", ls_stats_delay_percentile(&w->busy, w->poll.sum, 90));
		ls_json_add_u64(d, "p99_ns", ls_stats_delay_percentile(&w->busy, w->poll.sum, 99));
		ls_json_add_u64(d, "p999_ns", ls_stats_delay_percentile(&w->busy, w->poll.sum, 99.9));
		ls_json_add_u64(d, "max_ns", w->busy.max);
		json_object_object_add(o, "delay", d);
	}
	return o;
}

/* Remember a slow period's end for the next interval line's maximum. At
 * most SLOW_ENDS_MAX are kept: a target whose every period is slow (a
 * flood, with a long -i) would grow the list without bound. When full,
 * neighbouring entries of one thread merge into one (the later end, the
 * longer duration): a merged pair that straddles an interval boundary gives
 * its maximum to the later interval; when too few merge, the oldest go. */
#define SLOW_ENDS_MAX 65536
static void slow_end_add(struct attach *a, uint32_t tid, uint64_t end_ns, uint64_t duration_ns)
{
	if (a->nends == SLOW_ENDS_MAX) {
		size_t w = 0;

		for (size_t r = 0; r < a->nends; r++) {
			if (w && a->ends[w - 1].tid == a->ends[r].tid && r % 2) {
				struct slow_end *m = &a->ends[w - 1];

				if (a->ends[r].end_ns > m->end_ns)
					m->end_ns = a->ends[r].end_ns;
				if (a->ends[r].duration_ns > m->duration_ns)
					m->duration_ns = a->ends[r].duration_ns;
				continue;
			}
			a->ends[w++] = a->ends[r];
		}
		if (w > SLOW_ENDS_MAX / 4 * 3) { /* few neighbours merged: the oldest go */
			memmove(a->ends, a->ends + (w - SLOW_ENDS_MAX / 2),
				SLOW_ENDS_MAX / 2 * sizeof(*a->ends));
			w = SLOW_ENDS_MAX / 2;
		}
		a->nends = w;
	}
	if (a->nends == a->ends_cap) {
		size_t cap = a->ends_cap ? a->ends_cap * 2 : 256;
		struct slow_end *grown = realloc(a->ends, cap * sizeof(*grown));

		if (!grown)
			return;
		a->ends = grown;
		a->ends_cap = cap;
	}
	a->ends[a->nends++] = (struct slow_end){ tid, end_ns, duration_ns };
}

static void on_slow_busy(const struct ls_slow_busy_event *e, void *ctx)
{
	struct attach *a = ctx;
	const char *name = thread_name(a, e->tgid, e->tid);
	struct ls_stack_summary st;
	char b1[32], b2[32];

	cli_stacks_take(&a->stacks, e->tgid, e->tid, e->start_ns, e->start_ns + e->duration_ns,
			false, true, name, &st);
	if (!a->quiet)
		slow_end_add(a, e->tid, e->start_ns + e->duration_ns, e->duration_ns);
	if (a->nslow < MAX_SLOW_KEPT) {
		if (!a->slow)
			a->slow = calloc(MAX_SLOW_KEPT, sizeof(*a->slow));
		if (a->slow) {
			a->slow[a->nslow].ev = *e;
			snprintf(a->slow[a->nslow].thread, sizeof(a->slow[0].thread), "%s", name);
			a->slow[a->nslow].stacks = st; /* owned by the record now */
			memset(&st, 0, sizeof(st));
			a->nslow++;
		}
	} else {
		a->slow_dropped++;
	}
	const struct ls_stack_summary *kept = a->slow && a->nslow &&
		a->slow[a->nslow - 1].ev.start_ns == e->start_ns ? &a->slow[a->nslow - 1].stacks : &st;
	if (a->rec && !a->rec_err)
		cli_attach_record_status(a, ls_record_put_slow_busy(a->rec, e, name, kept));
	if (a->json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "type", json_object_new_string("slow_busy"));
		json_object_object_add(o, "pid", json_object_new_int((int)e->tgid));
		json_object_object_add(o, "tid", json_object_new_int((int)e->tid));
		json_object_object_add(o, "thread", json_object_new_string(name));
		ls_json_add_u64(o, "start_ns", e->start_ns);
		ls_json_add_u64(o, "duration_ns", e->duration_ns);
		ls_busy_why_json(o, e, kept);
		cli_print_json(o);
	} else if (!a->quiet) {
		char b3[32], why[2048];

		char app[700];

		printf("%s  SLOW busy %s%s since %s  pid %u tid %u (%s): %s\n",
		       cli_clock(a->mono_to_real_ns, e->start_ns + e->duration_ns, b1, sizeof(b1)),
		       ls_duration_format(e->duration_ns, b2, sizeof(b2)),
		       ls_appframe_suffix(kept->has_app ? &kept->app : NULL, app, sizeof(app)),
		       cli_clock(a->mono_to_real_ns, e->start_ns, b3, sizeof(b3)), e->tgid, e->tid,
		       name, ls_busy_why(e, kept, 4, why, sizeof(why)));
		cli_print_chain(&kept->chain, "      ");
		fflush(stdout);
	}
	ls_slowstack_summary_free(&st);
}

static const struct ls_thread_view *find_thread(const struct ls_thread_view *v, size_t n,
						 uint32_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].tid == tid)
			return &v[i];
	return NULL;
}

static void print_header(void)
{
	printf("%-12s %7s %7s %-15s %8s %5s  %9s %9s  %9s %9s  %9s %9s %5s\n", "TIME", "PID",
	       "TID", "THREAD", "ITER/s", "UTIL%", "BUSY p99", "max", "DELAY p99", "max",
	       "LAG p99", "max", "SLOW");
	fflush(stdout);
}

static void print_interval(struct attach *a, const struct ls_thread_view *now, size_t n,
			   uint64_t now_ns, const struct ls_thread_view *prev, size_t nprev,
			   uint64_t prev_ns)
{
	char t[32], busy_now[32], b[6][16];

	for (size_t i = 0; i < n; i++) {
		const struct ls_thread_view *before = find_thread(prev, nprev, now[i].tid);
		struct ls_thread_window w;

		ls_stats_window(&now[i], now_ns, before, before ? prev_ns : a->start_ns, &w);
		if (before) {
			uint64_t slow_max = 0;

			for (size_t k = 0; k < a->nends; k++)
				if (a->ends[k].tid == now[i].tid &&
				    a->ends[k].end_ns > before->poll_enter_ns &&
				    a->ends[k].end_ns <= now[i].poll_enter_ns &&
				    a->ends[k].duration_ns > slow_max)
					slow_max = a->ends[k].duration_ns;
			ls_stats_window_busy_max(&w, slow_max, a->threshold_ns);
		}
		if (!w.polls && !w.busy_now_ns)
			continue; /* not a loop thread in this window */
		if (a->json) {
			json_object *o = window_json(a, &w);

			json_object_object_add(o, "type", json_object_new_string("interval"));
			ls_json_add_u64(o, "time_ns", now_ns);
			cli_print_json(o);
			continue;
		}
		printf("%-12s %7u %7u %-15s %8.1f %5.1f  %9s %9s  %9s %9s  %9s %9s %5llu%s%s\n",
		       cli_clock(a->mono_to_real_ns, now_ns, t, sizeof(t)), w.tgid, w.tid,
		       thread_name(a, w.tgid, w.tid), w.iterations_per_s,
		       w.utilization >= 0 ? 100.0 * w.utilization : 0.0,
		       /* "-" when no busy period ended in the window, as LAG */
		       w.busy.count ? ls_duration_format(ls_hist_percentile(&w.busy, 99), b[0], 16) : "-",
		       w.busy.count ? ls_duration_format(w.busy.max, b[1], 16) : "-",
		       w.busy.count ? ls_duration_format(ls_stats_delay_percentile(&w.busy, w.poll.sum, 99),
							 b[2], 16) : "-",
		       w.busy.count ? ls_duration_format(w.busy.max, b[3], 16) : "-",
		       w.lag.count ? ls_duration_format(ls_hist_percentile(&w.lag, 99), b[4], 16) : "-",
		       w.lag.count ? ls_duration_format(w.lag.max, b[5], 16) : "-",
		       (unsigned long long)w.slow_busy,
		       w.busy_now_ns > a->threshold_ns ? "  BUSY NOW " : "",
		       w.busy_now_ns > a->threshold_ns ?
			       ls_duration_format(w.busy_now_ns, busy_now, sizeof(busy_now)) : "");
	}
	fflush(stdout);
	/* Keep the slow periods the next lines count: those ending after
	 * their thread's last poll entry in this snapshot (a thread gone
	 * from it keeps its own for a minute). */
	size_t kept = 0;

	for (size_t k = 0; k < a->nends; k++) {
		const struct ls_thread_view *t = find_thread(now, n, a->ends[k].tid);

		if (t ? a->ends[k].end_ns > t->poll_enter_ns
		      : a->ends[k].end_ns + 60000000000ULL > now_ns)
			a->ends[kept++] = a->ends[k];
	}
	a->nends = kept;
}

/* Delay of work arriving at a random moment (ls_stats_delay_percentile). */
static void print_delay_line(const struct ls_thread_window *w)
{
	char b[5][16];

	if (!w->busy.count)
		return;
	printf("    %-5s          p50 %-9s p90 %-9s p99 %-9s p99.9 %-9s max %s\n", "delay",
	       ls_duration_format(ls_stats_delay_percentile(&w->busy, w->poll.sum, 50), b[0], 16),
	       ls_duration_format(ls_stats_delay_percentile(&w->busy, w->poll.sum, 90), b[1], 16),
	       ls_duration_format(ls_stats_delay_percentile(&w->busy, w->poll.sum, 99), b[2], 16),
	       ls_duration_format(ls_stats_delay_percentile(&w->busy, w->poll.sum, 99.9), b[3], 16),
	       ls_duration_format(w->busy.max, b[4], 16));
}

static void print_hist_line(const char *what, const struct ls_hist *h)
{
	char b[6][16];

	if (!h->count) {
		printf("    %-5s n=0\n", what);
		return;
	}
	printf("    %-5s n=%-8llu p50 %-9s p90 %-9s p99 %-9s p99.9 %-9s max %s\n", what,
	       (unsigned long long)h->count, ls_duration_format(ls_hist_percentile(h, 50), b[0], 16),
	       ls_duration_format(ls_hist_percentile(h, 90), b[1], 16),
	       ls_duration_format(ls_hist_percentile(h, 99), b[2], 16),
	       ls_duration_format(ls_hist_percentile(h, 99.9), b[3], 16), ls_duration_format(h->max, b[4], 16));
}

static int pid_index(const struct attach *a, uint32_t pid)
{
	for (int i = 0; i < a->npids; i++)
		if ((uint32_t)a->pids[i] == pid)
			return i;
	return -1;
}

int cli_attach_report(struct attach *a, const struct ls_thread_view *v, size_t n,
		      uint64_t now_ns, uint64_t lost)
{
	json_object *jr = NULL, *jthreads = NULL, *jslow = NULL, *jexited = NULL, *jnoloop = NULL;
	bool seen[MAX_PIDS] = { false };
	int nseen = 0;
	char b1[32], b2[32];

	if (a->json) {
		jr = json_object_new_object();
		jthreads = json_object_new_array();
		jslow = json_object_new_array();
		jexited = json_object_new_array();
		jnoloop = json_object_new_array();
		json_object_object_add(jr, "type", json_object_new_string("report"));
		ls_json_add_u64(jr, "start_ns", a->start_ns);
		ls_json_add_u64(jr, "end_ns", now_ns);
		ls_json_add_u64(jr, "duration_ns", now_ns - a->start_ns);
		ls_json_add_u64(jr, "threshold_ns", a->threshold_ns);
	} else {
		printf("\n== loopscope report: %s, threshold %s ==\n",
		       ls_duration_format(now_ns - a->start_ns, b1, sizeof(b1)),
		       ls_duration_format(a->threshold_ns, b2, sizeof(b2)));
	}
	for (size_t i = 0; i < n; i++) {
		struct ls_thread_window w;
		int pi = pid_index(a, v[i].tgid);
		const struct ls_thread_view *before =
			a->before ? find_thread(a->before, a->nbefore, v[i].tid) : NULL;

		ls_stats_window(&v[i], now_ns, before, a->start_ns, &w);
		if (!w.polls)
			continue;
		if (a->replay) {
			/* The slow periods of this window above the report's
			 * threshold (it may be larger than the recording's). */
			w.slow_busy = 0;
			for (size_t k = 0; k < a->nslow; k++)
				w.slow_busy += a->slow[k].ev.tid == w.tid;
		}
		if (pi >= 0 && !seen[pi]) {
			seen[pi] = true;
			nseen++;
		}
		if (a->json) {
			json_object_array_add(jthreads, window_json(a, &w));
			continue;
		}
		printf("  pid %u tid %u (%s), %s: %llu iterations (%.1f/s), utilization %.1f%%\n",
		       w.tgid, w.tid, thread_name(a, w.tgid, w.tid), ls_poll_kind_name(w.poll_kind),
		       (unsigned long long)w.iterations, w.iterations_per_s,
		       w.utilization >= 0 ? 100.0 * w.utilization : 0.0);
		print_hist_line("busy", &w.busy);
		print_hist_line("poll", &w.poll);
		print_delay_line(&w);
		print_hist_line("lag", &w.lag);
		if (w.busy_now_ns > a->threshold_ns)
			printf("    busy right now for %s (the loop is stuck in a callback)\n",
			       ls_duration_format(w.busy_now_ns, b1, sizeof(b1)));
	}
	if (!a->json)
		printf("  slow busy periods (> %s): %zu\n", ls_duration_format(a->threshold_ns, b1, sizeof(b1)),
		       a->nslow + a->slow_dropped);
	uint64_t *durs = malloc((a->nslow + 1) * sizeof(*durs)), cut = 0;
	size_t shown = 0;

	for (size_t i = 0; durs && i < a->nslow; i++)
		durs[i] = a->slow[i].ev.duration_ns;
	if (durs && !a->json)
		cut = ls_stats_kth_longest(durs, a->nslow, LS_TEXT_SLOW_MAX);
	free(durs);
	for (size_t i = 0; i < a->nslow; i++) {
		const struct slow_rec *s = &a->slow[i];

		if (!a->json && (s->ev.duration_ns < cut || shown == LS_TEXT_SLOW_MAX))
			continue; /* the text lists the longest; JSON lists all */
		shown++;
		if (a->json) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "pid", json_object_new_int((int)s->ev.tgid));
			json_object_object_add(o, "tid", json_object_new_int((int)s->ev.tid));
			json_object_object_add(o, "thread", json_object_new_string(s->thread));
			ls_json_add_u64(o, "start_ns", s->ev.start_ns);
			ls_json_add_u64(o, "duration_ns", s->ev.duration_ns);
			ls_busy_why_json(o, &s->ev, &s->stacks);
			json_object_array_add(jslow, o);
		} else {
			char why[4096];

			char app[700];

			printf("    %s  busy %-9s%s  pid %u tid %u (%s): %s\n",
			       cli_clock(a->mono_to_real_ns, s->ev.start_ns, b1, sizeof(b1)),
			       ls_duration_format(s->ev.duration_ns, b2, sizeof(b2)),
			       ls_appframe_suffix(s->stacks.has_app ? &s->stacks.app : NULL, app, sizeof(app)),
			       s->ev.tgid, s->ev.tid,
			       s->thread, ls_busy_why(&s->ev, &s->stacks, 8, why, sizeof(why)));
			cli_print_chain(&s->stacks.chain, "      ");
		}
	}
	if (!a->json && shown < a->nslow)
		printf("    (the %zu longest shown; %zu shorter ones: --json lists every one)\n", shown,
		       a->nslow - shown);
	if (!a->json && a->slow_dropped)
		printf("    (%zu more not kept)\n", a->slow_dropped);
	for (int i = 0; i < a->npids; i++) {
		if (a->exited[i]) {
			if (a->json)
				json_object_array_add(jexited, json_object_new_int(a->pids[i]));
			else
				printf("  pid %d exited after %s\n", a->pids[i],
				       ls_duration_format(a->exited_at_ns[i] - a->start_ns, b1, sizeof(b1)));
		}
		if (!seen[i]) {
			if (a->json)
				json_object_array_add(jnoloop, json_object_new_int(a->pids[i]));
			else
				printf("  pid %d: no loop thread seen (no epoll_wait, epoll_pwait or "
				       "epoll_pwait2 call)\n", a->pids[i]);
		}
	}
	if (lost && !a->json)
		printf("  LOST %llu slow events: the ring buffer was full\n", (unsigned long long)lost);
	if (a->loop) /* not in a replay */
		cli_threads_report(a->loop, a->pids, a->npids, &a->gone, jr);
	if (a->every_poll && !a->json) {
		printf("  every poll recorded: %llu polls\n", (unsigned long long)a->polls_recorded);
		if (a->polls_lost)
			printf("  PER-POLL STREAM INCOMPLETE: %llu polls lost (its ring buffer was "
			       "full); the histograms are the snapshots'\n",
			       (unsigned long long)a->polls_lost);
	}
	if (a->every_callback && !a->json) {
		printf("  every callback recorded: %llu callbacks\n",
		       (unsigned long long)a->cbs_recorded);
		if (a->cbs_lost)
			printf("  CALLBACK STREAM INCOMPLETE: %llu callbacks lost (its ring buffer was "
			       "full); the callback table is the whole recording's\n",
			       (unsigned long long)a->cbs_lost);
	}
	if (a->offcpu_unseen && !a->json)
		printf("  OFF-CPU UNSEEN %llu: busy periods with off-CPU time the scheduler programs "
		       "did not see; their blocked/runnable read low\n",
		       (unsigned long long)a->offcpu_unseen);
	cli_precise_report(&a->precise, jr);
	if (a->replay || a->rend_used)
		cli_report_stacks(a, jr);
	else
		cli_stacks_report(&a->stacks, jr);
	if (a->json) {
		json_object_object_add(jr, "threads", jthreads);
		json_object_object_add(jr, "slow_busy", jslow);
		ls_json_add_u64(jr, "slow_busy_not_kept", a->slow_dropped);
		ls_json_add_u64(jr, "lost_events", lost);
		/* Only when nonzero: a recording does not carry it yet, and
		 * report's replay must equal attach's own report. */
		if (a->offcpu_unseen)
			ls_json_add_u64(jr, "offcpu_unseen", a->offcpu_unseen);
		if (a->every_poll) {
			json_object *jp = json_object_new_object();

			ls_json_add_u64(jp, "polls_recorded", a->polls_recorded);
			ls_json_add_u64(jp, "polls_lost", a->polls_lost);
			json_object_object_add(jr, "every_poll", jp);
		}
		if (a->every_callback) {
			json_object *jc = json_object_new_object();

			ls_json_add_u64(jc, "callbacks_recorded", a->cbs_recorded);
			ls_json_add_u64(jc, "callbacks_lost", a->cbs_lost);
			json_object_object_add(jr, "every_callback", jc);
		}
		json_object_object_add(jr, "exited", jexited);
		json_object_object_add(jr, "no_loop", jnoloop);
		cli_print_json(jr);
	}
	fflush(stdout);
	return nseen;
}

/* Whether a target is CPython (supported or not): the precise-mode hint is
 * for those only. The stacks set-up resolved them already; without stacks,
 * resolve here. */
static bool any_cpython(struct attach *a)
{
	struct ls_py_target t;
	int err;

	if (a->stacks.npython > 0)
		return true;
	if (a->stacks.enabled && a->stacks.loop)
		return false;
	for (int i = 0; i < a->npids; i++) {
		err = ls_py_resolve(a->pids[i], &t);
		if (err != -ENOEXEC && err != -ESRCH)
			return true;
	}
	return false;
}

/* The recording's header: clocks, host, kernel, threshold, pids. */
void cli_attach_free(struct attach *a)
{
	for (size_t i = 0; i < a->nslow; i++)
		ls_slowstack_summary_free(&a->slow[i].stacks);
	free(a->slow);
	free(a->names);
	free(a->ends);
	a->slow = NULL;
	a->names = NULL;
	a->ends = NULL;
	a->nslow = a->nnames = a->nends = a->ends_cap = 0;
}

int cli_attach(int argc, char **argv)
{
	struct cli_attach_opts o;
	int err = cli_attach_parse(argc, argv, &o);

	if (err)
		return err > 0 ? LS_EXIT_OK : LS_EXIT_USAGE;
	return cli_attach_run(&o);
}

int cli_attach_run(const struct cli_attach_opts *op)
{
	struct attach a = { 0 };
	const struct cli_attach_opts o = *op;
	/* `record -- CMD`: pids[0] is CMD, still loopscope until it execs */
	bool cmd = o.release_fd >= 0;
	uint64_t cmd_since = 0;
	struct ls_loop_opts lopts = { 0 };
	struct ls_loop *loop = NULL;
	struct ls_thread_view *prev = NULL, *cur = NULL;
	size_t nprev = 0, ncur = 0;
	uint64_t prev_ns, now_ns, next_tick, deadline;
	struct sigaction sa = { 0 };
	struct timespec mono, real;
	char why[256];
	int err, ret = LS_EXIT_ERROR, nalive;

	memcpy(a.pids, o.pids, sizeof(a.pids));
	a.npids = o.npids;
	a.duration_ns = o.duration_ns;
	a.interval_ns = o.interval_ns;
	a.json = o.json;
	a.btf_path = o.btf_path;
	a.threshold_ns = o.common.threshold_ns;
	a.quiet = o.common.quiet;
	a.want_precise = o.common.mode == CLI_MODE_PRECISE;
	a.stacks.enabled = o.common.stacks;
	a.stacks.folded_path = o.common.folded_path;
	a.record_path = o.record_path;
	a.no_report = o.no_report;
	a.stacks.app_paths = o.common.app_paths;
	a.stacks.napp_paths = o.common.napp_paths;
	for (int i = 0; i < a.npids; i++) {
		if (ls_target_alive(a.pids[i])) {
			fprintf(stderr, "loopscope: pid %d: no such process\n", a.pids[i]);
			return LS_EXIT_NO_PROCESS;
		}
	}
	err = ls_sys_check(a.btf_path, why, sizeof(why));
	if (err) {
		fprintf(stderr, "loopscope: %s\n", why);
		return err == -EPERM ? LS_EXIT_PERMISSION : LS_EXIT_UNSUPPORTED;
	}

	libbpf_set_print(cli_libbpf_print);
	sa.sa_handler = on_signal; /* no SA_RESTART: the ring buffer wait returns EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	lopts.slow_threshold_ns = a.threshold_ns;
	lopts.btf_path = a.btf_path;
	lopts.thread_quota = o.thread_quota;
	lopts.on_slow_busy = on_slow_busy;
	lopts.ctx = &a;
	a.every_poll = o.every_poll;
	if (a.every_poll)
		lopts.on_polls = cli_attach_record_polls;
	a.every_callback = o.every_callback;
	if (a.every_callback) {
		a.precise.on_callbacks = cli_attach_record_cbs;
		a.precise.on_callbacks_ctx = &a;
	}
	if (cli_stacks_init(&a.stacks)) {
		fprintf(stderr, "loopscope: out of memory\n");
		goto cleanup;
	}
	cli_stacks_loop_opts(&a.stacks, a.threshold_ns, &lopts);
	err = ls_loop_open(&lopts, &loop);
	if (err) {
		fprintf(stderr, "loopscope: loading BPF programs failed: %s\n", strerror(-err));
		ret = err == -EPERM ? LS_EXIT_PERMISSION : LS_EXIT_ERROR;
		goto cleanup;
	}
	a.loop = loop;
	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	a.mono_to_real_ns = ((int64_t)real.tv_sec - mono.tv_sec) * 1000000000LL +
			    (real.tv_nsec - mono.tv_nsec);
	a.precise.json = a.json;
	a.precise.quiet = a.quiet;
	a.precise.mono_to_real_ns = a.mono_to_real_ns;
	a.precise.threshold_ns = a.threshold_ns;
	a.precise.btf_path = a.btf_path;
	a.precise.loop = loop;
	cli_stacks_opened(&a.stacks, loop);
	a.precise.stacks = a.stacks.enabled ? &a.stacks : NULL;
	a.stacks.resolve_said_elsewhere = a.want_precise;
	for (int i = 0; i < a.npids && !cmd; i++)
		cli_stacks_add(&a.stacks, a.pids[i]);
	if (cmd && a.want_precise)
		fprintf(stderr, "loopscope: --mode precise needs -p PID; -- CMD is recorded at the "
			"epoll level\n");
	for (int i = 0; i < a.npids && a.want_precise && !cmd; i++) {
		struct ls_py_target t;
		int resolve_err;

		err = cli_precise_add(&a.precise, a.pids[i], false, &resolve_err, &t);
		if (err < 0) {
			fprintf(stderr, "loopscope: loading precise-mode BPF programs failed: %s; "
				"epoll level only\n", strerror(-err));
			cli_precise_close(&a.precise);
			break;
		}
	}
	/* Targets are added last, after the precise-mode set-up (ELF reading,
	 * a BPF load, uprobes: up to hundreds of ms), and the window starts
	 * right then: the report covers exactly [start_ns, end]. */
	for (int i = 0; i < a.npids; i++) {
		err = ls_loop_add_target(loop, a.pids[i]);
		if (err) {
			fprintf(stderr, "loopscope: pid %d: cannot add target: %s\n", a.pids[i],
				strerror(-err));
			goto cleanup;
		}
	}
	a.start_ns = prev_ns = ls_sys_now_ns();
	next_tick = a.start_ns + a.interval_ns;
	if (a.record_path && cli_attach_record_open(&a, cmd)) {
		ret = LS_EXIT_ERROR;
		goto cleanup;
	}
	if (o.release_fd >= 0) { /* `record -- CMD`: CMD may start now */
		(void)!write(o.release_fd, "g", 1);
		cmd_since = a.start_ns;
	}
	deadline = a.duration_ns ? a.start_ns + a.duration_ns : UINT64_MAX;
	/* On stderr in JSON mode too: scripts wait for it to know we are in. */
	fprintf(stderr, "loopscope: attached to %d process%s; threshold %s; Ctrl-C for the report\n",
			a.npids, a.npids > 1 ? "es" : "",
			ls_duration_format(a.threshold_ns, why, sizeof(why)));
	if (!a.want_precise && !a.json && any_cpython(&a))
		fprintf(stderr, "loopscope: light mode (epoll level); --mode precise also times and "
			"names each CPython callback, at ~10 us a callback\n");
	if (!a.json && !a.quiet)
		print_header();

	while (!stop_signal) {
		now_ns = ls_sys_now_ns();
		if (now_ns >= deadline)
			break;
		uint64_t until = next_tick < deadline ? next_tick : deadline;
		/* Printing may have taken us past the tick: never a negative wait,
		 * which the ring buffer would take as "wait forever". */
		uint64_t wait_ns = until > now_ns ? until - now_ns : 0;
		/* Wake at least every 100 ms to notice targets that exit. */
		int wait_ms = (int)((wait_ns + 999999) / 1000000);
		err = ls_loop_poll(loop, wait_ms < 100 ? wait_ms : 100);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "loopscope: reading events failed: %s\n", strerror(-err));
			goto cleanup;
		}
		cli_precise_poll(&a.precise);
		nalive = 0;
		now_ns = ls_sys_now_ns();
		if (cmd_since && cli_attach_cmd_resolve(&a, a.pids[0], cmd_since, now_ns))
			cmd_since = 0;
		for (int i = 0; i < a.npids; i++) {
			if (!a.exited[i] && ls_target_alive(a.pids[i])) {
				a.exited[i] = true;
				/* Its precise-mode entry stays: the report lists its
				 * callbacks; a dead pid's uprobes cost nothing. */
				a.exited_at_ns[i] = now_ns;
				if (!a.json)
					fprintf(stderr, "loopscope: pid %d exited\n", a.pids[i]);
			}
			nalive += !a.exited[i];
		}
		if (!nalive)
			break;
		if (now_ns >= next_tick && (!a.quiet || a.rec)) {
			err = ls_loop_snapshot(loop, &cur, &ncur, &now_ns);
			if (err)
				goto snapshot_failed;
			/* The slow events of periods in the snapshot, submitted
			 * just before it: the interval's max is theirs. */
			ls_loop_poll(loop, 0);
			cli_attach_record_snapshot(&a, cur, ncur, now_ns);
			if (!a.quiet)
				print_interval(&a, cur, ncur, now_ns, prev, nprev, prev_ns);
			free(prev);
			prev = cur;
			nprev = ncur;
			cur = NULL;
			prev_ns = now_ns;
		}
		if (now_ns >= next_tick) {
			cli_stacks_prune(&a.stacks, now_ns);
			/* Exited threads out of the kernel's table: a target
			 * that churns threads does not keep it full. */
			ls_loop_prune(loop, cli_gone_keep, &a.gone);
		}
		while (next_tick <= now_ns)
			next_tick += a.interval_ns;
	}
	/* Snapshot first, then drain: every slow period that ended before the
	 * snapshot's last poll entry is then in the report's list. */
	err = ls_loop_snapshot(loop, &cur, &ncur, &now_ns);
	if (err)
		goto snapshot_failed;
	cli_attach_record_snapshot(&a, cur, ncur, now_ns);
	ls_loop_drain(loop, 300);
	cli_gone_append(&a.gone, &cur, &ncur);
	bool folded_failed = cli_stacks_write_folded(&a.stacks) != 0;

	bool any_exited = false;

	for (int i = 0; i < a.npids; i++)
		any_exited |= a.exited[i];
	a.offcpu_unseen = ls_loop_offcpu_unseen(loop, NULL);
	if (a.rec)
		cli_attach_record_end(&a, loop, now_ns);
	int nseen = a.no_report ? cli_attach_record_seen(&a, cur, ncur)
				: cli_attach_report(&a, cur, ncur, now_ns,
						    a.rend_used ? a.rend.lost_events
								: ls_loop_lost_events(loop));
	if (nseen == 0) {
		/* A target that exits before it polls is an exit (6), not a
		 * target without a loop (7). */
		fprintf(stderr, "loopscope: no loop thread seen in any target%s\n",
			any_exited ? " before it exited" : "");
		ret = any_exited ? LS_EXIT_TARGET_EXITED : LS_EXIT_NO_LOOP;
	} else {
		ret = any_exited ? LS_EXIT_TARGET_EXITED : LS_EXIT_OK;
		if (folded_failed)
			ret = LS_EXIT_ERROR; /* the file asked for is not there */
	}
	goto cleanup;
snapshot_failed:
	fprintf(stderr, "loopscope: reading loop stats failed: %s\n", strerror(-err));
	ret = LS_EXIT_ERROR;
cleanup:
	if (a.rec) /* an error path: what was recorded stays readable */
		ls_record_close(a.rec);
	cli_precise_close(&a.precise);
	ls_loop_close(loop);
	free(prev);
	free(cur);
	cli_stacks_close(&a.stacks);
	cli_gone_free(&a.gone);
	cli_attach_free(&a);
	return ret;
}
