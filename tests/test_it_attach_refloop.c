// SPDX-License-Identifier: MIT
/*
 * Integration: `loopscope attach` on the reference loop, every measured value
 * compared with the loop's own ground-truth log.
 *
 * Tolerances (from the issue, and why they hold):
 *  - iterations: within 1% of the truth's poll count over the same window
 *    [first poll entry seen, last poll entry seen]. Every poll entry fires
 *    the tracepoint, so the counts are equal unless events were missed.
 *  - slow busy periods: the same set as the truth's busy periods above the
 *    threshold, matched one to one by start within 1 ms; durations within
 *    max(1%, 50 us). Both sides time the same syscall boundaries, the truth
 *    from user space right around the syscall, we from the tracepoints: they
 *    differ by the syscall entry/exit path: 8-110 us worst per run here.
 *    But on this VM, about once in 1000 periods (2 in ~1500 over 15 runs:
 *    425 and 445 us) the truth's user-space stamp lags the syscall by the
 *    host descheduling the vCPU or interrupt work, which the guest thread
 *    cannot see (no context switch: getrusage's counts were checked and do
 *    not move). So: all but max(1, 5%) of the periods within max(1%, 50 us),
 *    and every period within max(5%, 1 ms).
 *  - loop lag p99 and max: within max(5%, 100 us) of the truth's loop
 *    lateness: for each of the loop's own timers, its first poll return at
 *    or after the deadline, minus the deadline (the definition in
 *    docs/METRICS.md; dispatch - deadline is printed beside it, it adds the
 *    wait behind other callbacks of the same iteration, which loop lag
 *    leaves out by definition). The histogram reports a slot midpoint
 *    (<= 1/32 relative error). Measured here: the late samples read 50-75 us
 *    low, because after a 15 ms CPU spin the kernel reschedules the thread
 *    on its way back from the poll: our exit tracepoint fires before that
 *    wait, the truth's user-space stamp after it. Only epoll_pwait2 is compared: with
 *    epoll_wait/epoll_pwait the ms timeout shifts the inferred deadline by up
 *    to 1 ms (docs/METRICS.md).
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/duration.h"
#include "pythons.h"
#include "spawn.h"
#include "truth.h"

#define REFLOOP LS_BINARY_DIR "/examples/refloop/refloop"
#define LOOPSCOPE LS_BINARY_DIR "/loopscope"

#define MS 1000000ULL

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

struct run {
	char truth[128], loop_out[128], out[128], err[128], text[128];
	bool intervals;  /* attach with interval lines (-i 500ms), then once more in text */
	struct ls_truth t;
	json_object *report, *thread;
	uint64_t first, last;
	uint64_t runnable_ns; /* the loop thread waited for a CPU during the JSON attach */
};

/* Run the reference loop with poll kind `poll` and the given statements,
 * attach for 3 s with threshold_ms, stop the loop, load both sides. */
static void run_refloop(struct run *r, const char *poll, uint64_t threshold_ms,
			const char **stmts, int nstmts)
{
	char *argv[32], line[64], thr[32];
	int n = 0, status, rc;
	pid_t loop;

	ls_test_tmp(r->truth, sizeof(r->truth), "truth");
	ls_test_tmp(r->loop_out, sizeof(r->loop_out), "loop");
	ls_test_tmp(r->out, sizeof(r->out), "out");
	ls_test_tmp(r->err, sizeof(r->err), "err");
	argv[n++] = REFLOOP;
	argv[n++] = "--duration";
	argv[n++] = "20s";
	argv[n++] = "--poll";
	argv[n++] = (char *)poll;
	argv[n++] = "--truth";
	argv[n++] = r->truth;
	for (int i = 0; i < nstmts; i++)
		argv[n++] = (char *)stmts[i];
	argv[n] = NULL;
	loop = ls_test_spawn(argv, r->loop_out, NULL);
	ck_assert_int_gt(loop, 0);
	ck_assert_int_eq(ls_test_wait_line(r->loop_out, "pid ", 5000, line, sizeof(line)), 0);
	usleep(300 * 1000);

	char pidarg[32];
	snprintf(pidarg, sizeof(pidarg), "%d", loop);
	snprintf(thr, sizeof(thr), "%llums", (unsigned long long)threshold_ms);
	char *lsargv[14] = { LOOPSCOPE, "attach", "-p", pidarg, "-d", "3s", "--json", "-q",
			   "--threshold", thr, NULL };
	if (r->intervals) {
		lsargv[7] = "-i";
		lsargv[8] = "500ms";
		lsargv[9] = "--threshold";
		lsargv[10] = thr;
		lsargv[11] = NULL;
	}
	r->runnable_ns = ls_test_runnable_ns(loop, loop);
	rc = ls_test_run(lsargv, r->out, r->err, 30000);
	r->runnable_ns = ls_test_runnable_ns(loop, loop) - r->runnable_ns;
	if (rc == 0 && r->intervals) {
		char *textargv[] = { LOOPSCOPE, "attach", "-p", pidarg, "-d", "3s", "-i", "500ms",
				     "--threshold", thr, NULL };

		ls_test_tmp(r->text, sizeof(r->text), "text");
		rc = ls_test_run(textargv, r->text, r->err, 30000);
	}
	kill(loop, SIGTERM);
	ck_assert_int_eq(ls_test_wait(loop, 5000, &status), 0);
	if (rc != 0) {
		char *e = ls_test_slurp(r->err);
		ck_abort_msg("loopscope exited %d: %s", rc, e ? e : "");
	}
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(ls_truth_load(r->truth, &r->t), 0);

	r->report = ls_test_json_last(r->out, "report");
	ck_assert_ptr_nonnull(r->report);
	json_object *threads = ls_test_jget(r->report, "threads");
	ck_assert_ptr_nonnull(threads);
	ck_assert_int_eq((int)json_object_array_length(threads), 1);
	r->thread = json_object_array_get_idx(threads, 0);
	ck_assert_int_eq((int)ls_test_ju64(r->thread, "tid"), r->t.tid);
	ck_assert_str_eq(json_object_get_string(ls_test_jget(r->thread, "poll_syscall")), poll);
	r->first = ls_test_ju64(r->thread, "first_poll_enter_ns");
	r->last = ls_test_ju64(r->thread, "last_poll_enter_ns");
	ck_assert_uint_gt(r->last, r->first);
}

static void run_free(struct run *r)
{
	json_object_put(r->report);
	ls_truth_free(&r->t);
	unlink(r->truth);
	unlink(r->loop_out);
	unlink(r->out);
	unlink(r->err);
	if (r->text[0])
		unlink(r->text);
}

/* The truth stamps a poll's entry in user space just before the syscall, a
 * few us before our tracepoint: the window starts 20 us early so that the
 * truth's copy of our first poll is in it (iterations here are >= 100 us). */
#define ENTRY_LEAD_NS 20000ULL

static void check_iterations(struct run *r)
{
	uint64_t polls = ls_test_ju64(r->thread, "polls");
	size_t truth = ls_truth_count_polls(&r->t, r->first - ENTRY_LEAD_NS, r->last);

	ck_assert_uint_gt(truth, 100);
	fprintf(stderr, "%s: polls measured %llu, truth %zu\n", r->t.poll_kind,
		(unsigned long long)polls, truth);
	ck_assert_msg(absdiff(polls, truth) * 100 <= truth,
		      "polls measured %llu, truth %zu (more than 1%% apart)",
		      (unsigned long long)polls, truth);
	/* Iterations complete at each poll entry after the first. */
	uint64_t iterations = ls_test_ju64(r->thread, "iterations");

	ck_assert_msg(absdiff(iterations, truth - 1) * 100 <= truth - 1,
		      "iterations measured %llu, truth %zu", (unsigned long long)iterations,
		      truth - 1);
}

/* Slow busy periods: same set as the truth, durations within max(1%, 50 us).
 * On a loaded machine the truth is skewed by starvation: a loop thread kept
 * from the CPU between the poll's return in the kernel (our start) and its
 * user-space stamp (the truth's) starts the truth's period later and makes
 * it shorter, by at most what it waited for a CPU in the window (schedstat,
 * r->runnable_ns; ~0 on a quiet machine; a 20.9 ms period of ours had no
 * truth period within 1 ms beside two CPU hogs and a dd). So the start
 * match and the duration bounds widen by that, the nearest start wins, and
 * a period of ours whose truth counterpart fell below the threshold that
 * way is matched against every truth period. */
static void check_slow(struct run *r, uint64_t threshold_ns, size_t min_expected)
{
	json_object *slow = ls_test_jget(r->report, "slow_busy");
	struct ls_truth_busy *tb = NULL;
	size_t ntb, nslow, matched = 0, outliers = 0, starved = 0;
	uint64_t worst = 0;

	/* (first, last]: the busy period ending at the first entry we saw may
	 * have begun before we attached. */
	ntb = ls_truth_busy_periods(&r->t, r->first + 1, r->last, threshold_ns, &tb);
	ck_assert_uint_ge(ntb, min_expected);
	bool *taken = calloc(ntb ? ntb : 1, sizeof(*taken));
	nslow = json_object_array_length(slow);
	for (size_t i = 0; i < nslow; i++) {
		json_object *e = json_object_array_get_idx(slow, i);
		uint64_t start = ls_test_ju64(e, "start_ns"), dur = ls_test_ju64(e, "duration_ns");
		bool found = false;

		/* The truth is cut to periods ending in (first, last]: so are
		 * ours. Attaching while the loop polls, we see that poll's
		 * return, and the busy period after it ends at our first entry. */
		if (start + dur > r->last || start + dur <= r->first)
			continue;
		size_t best = ntb;

		for (size_t j = 0; j < ntb; j++) {
			/* One measured period per truth period: two matching the
			 * same one could hide a missed one. */
			if (taken[j] || absdiff(tb[j].start_ns, start) > 1 * MS + r->runnable_ns)
				continue;
			if (best == ntb || absdiff(tb[j].start_ns, start) < absdiff(tb[best].start_ns, start))
				best = j;
		}
		for (size_t j = best; j < ntb; j++) {
			taken[j] = true;
			/* Within max(1%, 50 us), but for rare outliers (see the
			 * header), and every one within max(5%, 1 ms). */
			if (absdiff(tb[j].duration_ns, dur) >
			    max_u64(tb[j].duration_ns / 100, 50000) + r->runnable_ns)
				outliers++;
			ck_assert_msg(absdiff(tb[j].duration_ns, dur) <=
					      max_u64(tb[j].duration_ns / 20, 1000000) + r->runnable_ns,
				      "slow busy at %llu: measured %llu ns, truth %llu ns",
				      (unsigned long long)start, (unsigned long long)dur,
				      (unsigned long long)tb[j].duration_ns);
			found = true;
			matched++;
			if (absdiff(tb[j].duration_ns, dur) > worst)
				worst = absdiff(tb[j].duration_ns, dur);
			break;
		}
		if (!found && r->runnable_ns) {
			struct ls_truth_busy *all = NULL;
			size_t nall = ls_truth_busy_periods(&r->t, r->first + 1, r->last, 0, &all);

			for (size_t j = 0; j < nall && !found; j++)
				found = all[j].start_ns >= start &&
					all[j].start_ns - start <= 1 * MS + r->runnable_ns &&
					all[j].duration_ns < threshold_ns &&
					absdiff(all[j].duration_ns, dur) <=
						max_u64(all[j].duration_ns / 20, 1000000) + r->runnable_ns;
			free(all);
			starved += found;
		}
		ck_assert_msg(found, "slow busy period at %llu (%llu ns) is not in the truth log "
			      "(the loop thread waited %llu ns for a CPU in the window)",
			      (unsigned long long)start, (unsigned long long)dur,
			      (unsigned long long)r->runnable_ns);
	}
	fprintf(stderr, "%s: slow busy periods: truth %zu, matched %zu, worst duration error "
		"%llu ns, %zu beyond max(1%%, 50 us); %zu below the threshold in the truth by "
		"starvation (runnable %llu ns)\n", r->t.poll_kind, ntb, matched,
		(unsigned long long)worst, outliers, starved, (unsigned long long)r->runnable_ns);
	ck_assert_msg(outliers <= (ntb / 20 > 1 ? ntb / 20 : 1),
		      "%zu of %zu periods beyond max(1%%, 50 us)", outliers, ntb);
	ck_assert_msg(matched == ntb, "truth has %zu busy periods > %llu ns, loopscope reported %zu",
		      ntb, (unsigned long long)threshold_ns, matched);
	free(taken);
	free(tb);
}

/* Loop delay (work arriving at a random moment, Node's
 * monitorEventLoopDelay done exactly): p90 and p99 within max(5%, 100 us) of
 * the same formula on the truth's own busy periods and poll times. Ours
 * takes each busy period at its histogram slot's midpoint (within 1/32).
 * The two windows differ by the periods at their edges, which moves the
 * weights by a fraction of a percent: where the distribution has a gap at
 * the quantile (the demo's 10 ms blocks and little between), that alone
 * moves p90 across the gap (9.2 vs 10.2 ms, seen once in ~20 runs). So
 * ours must lie within the truth's quantiles one point either side (half
 * a point for p99), each widened by max(5%, 100 us).
 *
 * Starvation skews ours one way only: a thread kept from the CPU between
 * the poll's return in the kernel (where our busy period starts) and its
 * user-space stamp (the truth's), or between its stamp and the next poll
 * entry, makes our period longer than the truth's by that wait e_i (and
 * the truth's poll time longer by as much). Then for every d, ours covers
 * poll - E + sum min(B_i + e_i, d) >= the truth's coverage - E, E = sum
 * e_i: our quantile q is at most the truth's at q + 100 E / window. E is
 * at most what the loop thread waited for a CPU during the attach
 * (schedstat, r->runnable_ns; ~0 on a quiet machine): the upper side's
 * slack widens by that share of the window. Seen at load 28: p90 measured
 * 26.7 ms, truth 22.8 (21.0 to 24.7) with 2.1 s of the 3 s window waited. */
static void check_delay(struct run *r)
{
	json_object *d = ls_test_jget(r->thread, "delay");
	static const double qs[] = { 90, 99 }, slack[] = { 1.0, 0.5 };
	static const char *keys[] = { "p90_ns", "p99_ns" };
	double starved = r->last > r->first ? 100.0 * (double)r->runnable_ns /
						   (double)(r->last - r->first) : 0;

	ck_assert_ptr_nonnull(d);
	for (int i = 0; i < 2; i++) {
		double qhi = qs[i] + slack[i] + starved;
		uint64_t truth = ls_truth_delay_percentile(&r->t, r->first, r->last, qs[i]);
		uint64_t lo = ls_truth_delay_percentile(&r->t, r->first, r->last, qs[i] - slack[i]);
		uint64_t hi = ls_truth_delay_percentile(&r->t, r->first, r->last, qhi > 100 ? 100 : qhi);
		uint64_t ours = ls_test_ju64(d, keys[i]);

		fprintf(stderr, "%s: delay %s truth %llu (%llu to %llu: p%.1f, the loop thread waited "
			"%.1f %% of the window for a CPU), measured %llu\n",
			r->t.poll_kind, keys[i], (unsigned long long)truth, (unsigned long long)lo,
			(unsigned long long)hi, qhi > 100 ? 100 : qhi, starved, (unsigned long long)ours);
		ck_assert_msg(ours + max_u64(lo / 20, 100000) >= lo &&
			      ours <= hi + max_u64(hi / 20, 100000),
			      "delay %s measured %llu, truth %llu (%llu to %llu)", keys[i],
			      (unsigned long long)ours, (unsigned long long)truth,
			      (unsigned long long)lo, (unsigned long long)hi);
	}
}

static void check_lag(struct run *r)
{
	json_object *lag = ls_test_jget(r->thread, "lag");
	uint64_t *late = NULL, p99, max, m99, mmax;
	size_t n;

	n = ls_truth_timer_lateness(&r->t, r->first, r->last, &late);
	fprintf(stderr, "lag: truth dispatch - deadline: p99=%llu max=%llu\n",
		(unsigned long long)ls_truth_percentile(late, n, 99),
		(unsigned long long)ls_truth_percentile(late, n, 100));
	free(late);
	n = ls_truth_loop_lateness(&r->t, r->first, r->last, &late);
	ck_assert_uint_gt(n, 100);
	p99 = ls_truth_percentile(late, n, 99);
	max = ls_truth_percentile(late, n, 100);
	m99 = ls_test_ju64(lag, "p99_ns");
	mmax = ls_test_ju64(lag, "max_ns");
	fprintf(stderr, "lag: truth n=%zu p99=%llu max=%llu; measured n=%llu p99=%llu max=%llu\n",
		n, (unsigned long long)p99, (unsigned long long)max,
		(unsigned long long)ls_test_ju64(lag, "count"), (unsigned long long)m99,
		(unsigned long long)mmax);
	/* Starvation skews the truth one way only: a thread kept from the
	 * CPU between the poll's return in the kernel (ours) and its user-space
	 * stamp (the truth) makes the truth later, by at most what it waited
	 * for a CPU in the window (schedstat; ~0 on a quiet machine). */
	fprintf(stderr, "lag: the loop thread waited %llu ns for a CPU during the attach\n",
		(unsigned long long)r->runnable_ns);
	ck_assert_msg(m99 <= p99 + max_u64(p99 / 20, 100000) &&
		      m99 + max_u64(p99 / 20, 100000) + r->runnable_ns >= p99,
		      "lag p99 measured %llu, truth %llu (runnable %llu)", (unsigned long long)m99,
		      (unsigned long long)p99, (unsigned long long)r->runnable_ns);
	ck_assert_msg(mmax <= max + max_u64(max / 20, 100000) &&
		      mmax + max_u64(max / 20, 100000) + r->runnable_ns >= max,
		      "lag max measured %llu, truth %llu (runnable %llu)", (unsigned long long)mmax,
		      (unsigned long long)max, (unsigned long long)r->runnable_ns);
	free(late);
}

/* One timer (every deadline is the one the loop sleeps towards) and a pipe
 * watcher whose callback spins 15 ms; 47 ms against 10 ms drifts the phase,
 * so ticks come 5-15 ms late about 20 times a second, and each such busy
 * period is slow at a 10 ms threshold. */
static const char *lag_scenario[] = { "timer tick every=10ms", "pipe feed every=47ms spin=15ms" };

START_TEST(test_pwait2_iterations_slow_and_lag_match_truth)
{
	struct run r = { 0 };

	run_refloop(&r, "epoll_pwait2", 10, lag_scenario, 2);
	check_iterations(&r);
	check_slow(&r, 10 * MS, 30);
	check_lag(&r);
	check_delay(&r);
	run_free(&r);
}
END_TEST

/* The demo workload: CPU spins of 40 ms and nanosleeps of 25 ms. */
static const char *demo_scenario[] = {
	"timer tick every=10ms", "timer spin40 every=10ms nth=50 spin=40ms",
	"timer nap25 every=300ms sleep=25ms", "pipe pipe every=7ms",
};

/* Where each slow busy period's time went, against what the truth says ran
 * in it: "nap25" callbacks sleep in nanosleep (glibc: the clock_nanosleep
 * syscall), the others spin on the CPU. Blocked time within max(10%, 5 ms)
 * of the naps' own time (the bound of the stacks issue; on a loaded machine
 * a woken nap may also wait for a CPU: then blocked + runnable covers it),
 * the syscall named;
 * a period without a nap is blocked less than 5 ms.
 *
 * Untraced naps. On this KVM guest 1 to 6 in 1,300 nanosleeps under load
 * ends with no sched_wakeup and no sched_switch into the thread that any
 * tracer sees: `perf record -k CLOCK_MONOTONIC -e sched:sched_switch -e
 * sched:sched_wakeup -a` (no BPF), bpftrace's classic tracepoints and our
 * tp_btf programs all showed the switch out into the nap and nothing more
 * until the thread's next switch out, 25 ms later. loopscope then reports
 * the nap as offcpu_untraced_ns (the scheduler's own on-CPU clock says the
 * thread was off the CPU) and counts it in the report's offcpu_unseen. Such
 * a period passes when blocked + runnable + untraced covers its naps, and
 * there are no more of them than offcpu_unseen counted. */
static void check_offcpu(struct run *r)
{
	json_object *slow = ls_test_jget(r->report, "slow_busy");
	uint64_t unseen = ls_test_ju64(r->report, "offcpu_unseen");
	int with_nap = 0, without = 0, untraced_naps = 0;

	for (size_t i = 0; i < json_object_array_length(slow); i++) {
		json_object *e = json_object_array_get_idx(slow, i);
		uint64_t start = ls_test_ju64(e, "start_ns"), dur = ls_test_ju64(e, "duration_ns");
		uint64_t blocked = ls_test_ju64(e, "blocked_ns"), naps = 0;

		for (size_t c = 0; c < r->t.ncallbacks; c++) {
			const struct ls_truth_callback *cb = &r->t.callbacks[c];

			if (!strcmp(cb->name, "nap25") && cb->start_ns >= start &&
			    cb->end_ns <= start + dur)
				naps += cb->end_ns - cb->start_ns;
		}
		if (naps) {
			const char *sc = json_object_get_string(ls_test_jget(e, "blocked_syscall"));

			uint64_t runnable = ls_test_ju64(e, "runnable_ns");
			uint64_t untraced = ls_test_ju64(e, "offcpu_untraced_ns");
			uint64_t tol = max_u64(naps / 10, 5 * MS);

			with_nap++;
			/* A nap's wall time is its block plus, once woken, any
			 * wait for a CPU (ms on a loaded machine): blocked is
			 * not above the naps, and blocked + runnable covers
			 * them; on an idle machine runnable is ~0, so blocked
			 * is within tol of the naps. */
			ck_assert_msg(blocked <= naps + tol &&
					      blocked + runnable + untraced + tol >= naps,
				      "period at %llu: blocked %llu ns + runnable %llu ns + untraced "
				      "%llu ns, naps %llu ns",
				      (unsigned long long)start, (unsigned long long)blocked,
				      (unsigned long long)runnable, (unsigned long long)untraced,
				      (unsigned long long)naps);
			if (blocked + runnable + tol < naps) {
				untraced_naps++;
				fprintf(stderr,
					"%s: period at %llu: %llu ns of naps untraced (blocked %llu, "
					"runnable %llu, untraced %llu ns)\n",
					r->t.poll_kind, (unsigned long long)start,
					(unsigned long long)naps, (unsigned long long)blocked,
					(unsigned long long)runnable, (unsigned long long)untraced);
			}
			/* Nothing blocked: the naps were untraced, not read
			 * as something else. */
			if (blocked)
				ck_assert_msg(sc && !strcmp(sc, "clock_nanosleep"), "blocked in %s",
					      sc ? sc : "(null)");
			else
				ck_assert_msg(untraced + tol >= naps,
					      "period at %llu: nothing blocked, untraced %llu ns, "
					      "naps %llu ns",
					      (unsigned long long)start, (unsigned long long)untraced,
					      (unsigned long long)naps);
		} else {
			without++;
			ck_assert_msg(blocked < 5 * MS, "period at %llu with no nap: blocked %llu ns",
				      (unsigned long long)start, (unsigned long long)blocked);
		}
		ck_assert_uint_ge(ls_test_ju64(e, "on_cpu_ns") + blocked +
					  ls_test_ju64(e, "runnable_ns") +
					  ls_test_ju64(e, "offcpu_untraced_ns"),
				  dur - 1);
	}
	fprintf(stderr, "%s: on/off CPU: %d periods with a nap, %d without, all as the truth says; "
		"%d with naps untraced, offcpu_unseen %llu\n",
		r->t.poll_kind, with_nap, without, untraced_naps, (unsigned long long)unseen);
	ck_assert_msg((uint64_t)untraced_naps <= unseen,
		      "%d periods' naps untraced, but offcpu_unseen is %llu", untraced_naps,
		      (unsigned long long)unseen);
	ck_assert_int_ge(with_nap, 3);
	ck_assert_int_ge(without, 3);
}

static void check_demo(const char *poll)
{
	struct run r = { 0 };

	run_refloop(&r, poll, 20, demo_scenario, 4);
	check_iterations(&r);
	check_slow(&r, 20 * MS, 12);
	check_delay(&r);
	check_offcpu(&r);
	run_free(&r);
}

START_TEST(test_epoll_wait_iterations_and_slow_match_truth)
{
	check_demo("epoll_wait");
}
END_TEST

START_TEST(test_epoll_pwait_iterations_and_slow_match_truth)
{
	check_demo("epoll_pwait");
}
END_TEST

START_TEST(test_pwait2_demo_iterations_and_slow_match_truth)
{
	check_demo("epoll_pwait2");
}
END_TEST

/* A text duration as ls_duration_format writes it ("40.3 ms"), from the
 * token at *p and its unit after it; false for "-" (no sample). */
static bool text_duration(char ***tok, uint64_t *ns)
{
	char buf[64];

	if (!strcmp((*tok)[0], "-")) {
		(*tok)++;
		return false;
	}
	snprintf(buf, sizeof(buf), "%s %s", (*tok)[0], (*tok)[1]);
	ck_assert_int_eq(ls_duration_parse(buf, ns), 0);
	*tok += 2;
	return true;
}

/* Interval maxima (#17 item 4): each interval's busy max is the longest
 * busy period of that interval, exactly (within max(1%, 50 us), the bound of
 * the slow periods) when that period is a slow one, in JSON and in text; a
 * histogram's slot bound (up to 1/16 high) is not. JSON: the periods of an
 * interval are those ending in (the previous line's last poll entry, this
 * line's]. Text lines carry no poll entry: each max above the threshold
 * must be a truth period's length (+ 0.05 ms of display rounding). */
static void check_interval_max(struct run *r, uint64_t threshold_ns)
{
	char *out = ls_test_slurp(r->out), *save = NULL, *line;
	uint64_t prev_enter = 0;
	int compared = 0, text_compared = 0, nline = 0;
	struct ls_truth_busy *all = NULL;
	size_t nall;

	ck_assert_ptr_nonnull(out);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_object *o = json_tokener_parse(line), *d;
		struct ls_truth_busy *tb = NULL;
		uint64_t enter, mmax, tmax = 0;
		size_t ntb;

		if (!o)
			continue;
		d = ls_test_jget(o, "type");
		if (!d || strcmp(json_object_get_string(d), "interval")) {
			json_object_put(o);
			continue;
		}
		enter = ls_test_ju64(o, "last_poll_enter_ns");
		mmax = ls_test_ju64(ls_test_jget(o, "busy"), "max_ns");
		ck_assert_uint_eq(ls_test_ju64(ls_test_jget(o, "delay"), "max_ns"), mmax);
		if (prev_enter) {
			ntb = ls_truth_busy_periods(&r->t, prev_enter + 1, enter, 0, &tb);
			for (size_t i = 0; i < ntb; i++)
				if (tb[i].duration_ns > tmax)
					tmax = tb[i].duration_ns;
			free(tb);
			fprintf(stderr, "interval to %llu: max measured %llu, truth %llu, exact %d\n",
				(unsigned long long)enter, (unsigned long long)mmax,
				(unsigned long long)tmax,
				json_object_get_boolean(ls_test_jget(o, "busy_max_exact")));
			if (tmax > threshold_ns) {
				ck_assert_msg(absdiff(mmax, tmax) <= max_u64(tmax / 100, 50000),
					      "interval to %llu: busy max %llu ns, truth %llu ns",
					      (unsigned long long)enter, (unsigned long long)mmax,
					      (unsigned long long)tmax);
				ck_assert(json_object_get_boolean(ls_test_jget(o, "busy_max_exact")));
				compared++;
			} else {
				/* A bound: not below the truth, not above the threshold. */
				ck_assert_uint_le(mmax, threshold_ns);
				ck_assert_uint_ge(mmax + max_u64(tmax / 100, 50000), tmax);
			}
		}
		prev_enter = enter;
		json_object_put(o);
	}
	free(out);
	ck_assert_int_ge(compared, 3);

	out = ls_test_slurp(r->text);
	ck_assert_ptr_nonnull(out);
	nall = ls_truth_busy_periods(&r->t, 0, UINT64_MAX, threshold_ns, &all);
	save = NULL;
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tok[32], **p = tok, *s2 = NULL;
		int ntok = 0;
		uint64_t busy99, bmax;
		bool found = false;

		for (char *t = strtok_r(line, " ", &s2); t && ntok < 31; t = strtok_r(NULL, " ", &s2))
			tok[ntok++] = t;
		tok[ntok] = NULL;
		/* TIME PID TID THREAD ITER/s UTIL% then the durations */
		if (ntok < 12 || !strcmp(tok[0], "TIME") || atoi(tok[1]) <= 0 || atoi(tok[2]) <= 0)
			continue;
		if (nline++ == 0)
			continue; /* the first covers the whole run so far: exact by construction */
		p = tok + 6;
		ck_assert(text_duration(&p, &busy99));
		ck_assert(text_duration(&p, &bmax));
		if (bmax <= threshold_ns)
			continue;
		for (size_t i = 0; i < nall && !found; i++)
			found = absdiff(all[i].duration_ns, bmax) <=
				max_u64(all[i].duration_ns / 100, 50000) + 50000;
		fprintf(stderr, "text interval max %llu: %s\n", (unsigned long long)bmax,
			found ? "a truth period" : "NOT a truth period");
		ck_assert_msg(found, "text interval max %llu ns is no busy period of the truth",
			      (unsigned long long)bmax);
		text_compared++;
	}
	free(all);
	free(out);
	ck_assert_int_ge(text_compared, 3);
}

START_TEST(test_interval_max_is_exact)
{
	struct run r = { .intervals = true };

	run_refloop(&r, "epoll_pwait2", 20, demo_scenario, 4);
	check_interval_max(&r, 20 * MS);
	run_free(&r);
}
END_TEST

/* Attach to pid in text mode for 1 s: its stderr (malloc'd). */
static char *attach_stderr(pid_t pid)
{
	char out[128], err[128], pidarg[32], *e;
	char *argv[] = { LOOPSCOPE, "attach", "-p", pidarg, "-d", "1s", NULL };

	snprintf(pidarg, sizeof(pidarg), "%d", (int)pid);
	ls_test_tmp(out, sizeof(out), "out");
	ls_test_tmp(err, sizeof(err), "err");
	ck_assert_int_eq(ls_test_run(argv, out, err, 30000), 0);
	e = ls_test_slurp(err);
	ck_assert_ptr_nonnull(e);
	unlink(out);
	unlink(err);
	return e;
}

/* #17 item 8: the "--mode precise" hint is for CPython targets only. */
START_TEST(test_precise_hint_only_for_cpython)
{
	char lout[128], line[64], *e;
	char *loop[] = { REFLOOP, "--duration", "20s", "timer tick every=10ms", NULL };
	char *py[] = { "/usr/bin/python3", "-c",
		       "import asyncio\nasync def main():\n    print('pid', flush=True)\n"
		       "    while True: await asyncio.sleep(0.01)\nasyncio.run(main())\n", NULL };
	pid_t pid;
	int status;

	for (int i = 0; i < 2; i++) {
		ls_test_tmp(lout, sizeof(lout), "loop");
		pid = ls_test_spawn(i ? py : loop, lout, NULL);
		ck_assert_int_gt(pid, 0);
		ck_assert_int_eq(ls_test_wait_line(lout, "pid", 10000, line, sizeof(line)), 0);
		e = attach_stderr(pid);
		kill(pid, SIGKILL);
		ls_test_wait(pid, 5000, &status);
		unlink(lout);
		if (i)
			ck_assert_msg(strstr(e, "--mode precise"), "CPython, no hint: %s", e);
		else
			ck_assert_msg(!strstr(e, "--mode precise"), "C loop, hint: %s", e);
		free(e);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_attach_refloop");
	TCase *tc = tcase_create("refloop");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pwait2_iterations_slow_and_lag_match_truth);
	tcase_add_test(tc, test_epoll_wait_iterations_and_slow_match_truth);
	tcase_add_test(tc, test_epoll_pwait_iterations_and_slow_match_truth);
	tcase_add_test(tc, test_pwait2_demo_iterations_and_slow_match_truth);
	tcase_add_test(tc, test_interval_max_is_exact);
	tcase_add_test(tc, test_precise_hint_only_for_cpython);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
