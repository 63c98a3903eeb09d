// SPDX-License-Identifier: MIT
/*
 * Integration: the reference loop's own ground-truth log is self-consistent,
 * so that the eBPF-side tests can trust it. Runs the real refloop binary (no
 * BPF, no root needed) and checks the loop semantics of examples/refloop/
 * refloop.h against what it logged: poll and callback ordering, spin/sleep
 * lengths, the nth rule, fixed-rate deadlines, and the poll-timeout rule.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spawn.h"
#include "truth.h"

#define REFLOOP LS_BINARY_DIR "/examples/refloop/refloop"
#define MS 1000000ULL

/* The demo's shapes, shorter periods so that 1.5 s holds several of each,
 * plus a call_soon storm (ready work waiting: poll timeout must be 0). */
static const char *DEMO[] = {
	"timer tick every=10ms",
	"timer spin8 every=10ms nth=20 spin=8ms",
	"timer burn every=50ms spin=3ms start=25ms",
	"timer nap every=300ms sleep=25ms",
	"pipe pipe every=7ms",
	"soonchain storm count=200",
};
#define NDEMO (sizeof(DEMO) / sizeof(DEMO[0]))

struct run {
	char truth[128], out[128], err[128];
	struct ls_truth t;
	unsigned long long end_polls, end_callbacks;
};

/* Run refloop with the DEMO statements until --duration; load its log. */
static void run_demo(struct run *r, const char *poll, const char *duration)
{
	char *argv[8 + NDEMO], *text;
	pid_t pid;
	int n = 0, status = -1;

	memset(r, 0, sizeof(*r));
	ls_test_tmp(r->truth, sizeof(r->truth), "truth");
	ls_test_tmp(r->out, sizeof(r->out), "out");
	ls_test_tmp(r->err, sizeof(r->err), "err");
	argv[n++] = REFLOOP;
	argv[n++] = "--truth";
	argv[n++] = r->truth;
	argv[n++] = "--poll";
	argv[n++] = (char *)poll;
	argv[n++] = "--duration";
	argv[n++] = (char *)duration;
	for (size_t i = 0; i < NDEMO; i++)
		argv[n++] = (char *)DEMO[i];
	argv[n] = NULL;
	pid = ls_test_spawn(argv, r->out, r->err);
	ck_assert_int_gt(pid, 0);
	/* ls_test_wait kills and reaps the loop when it times out. */
	ck_assert_int_eq(ls_test_wait(pid, 15000, &status), 0);
	if (status != 0) {
		text = ls_test_slurp(r->err);
		ck_abort_msg("refloop exited %d: %s", status, text ? text : "");
	}
	if (ls_truth_load(r->truth, &r->t))
		ck_abort_msg("truth log: %s", r->t.error);
	ck_assert_int_eq(r->t.pid, pid);
	ck_assert_str_eq(r->t.poll_kind, poll);
	ck_assert_int_eq(r->t.complete, 1);
	text = ls_test_slurp(r->truth);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "\"ev\":\"end\""));
	ck_assert_int_eq(sscanf(strstr(text, "\"ev\":\"end\""),
				"\"ev\":\"end\",\"polls\":%llu,\"callbacks\":%llu",
				&r->end_polls, &r->end_callbacks), 2);
	free(text);
	text = ls_test_slurp(r->out);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(strncmp(text, "pid ", 4), 0);
	ck_assert_int_eq(atoi(text + 4), pid);
	free(text);
}

static void run_free(struct run *r)
{
	ls_truth_free(&r->t);
	unlink(r->truth);
	unlink(r->out);
	unlink(r->err);
}

/* One 1.5 s epoll_pwait2 run shared by the tests of the "demo" case. */
static struct run demo;

static void demo_setup(void)
{
	run_demo(&demo, "epoll_pwait2", "1.5s");
}

static void demo_teardown(void)
{
	run_free(&demo);
}

/* Index of the poll after which callbacks starting at start_ns ran: the
 * last poll whose exit is <= start_ns (polls are in time order). */
static size_t poll_before(const struct ls_truth *t, uint64_t start_ns)
{
	size_t lo = 0, hi = t->npolls;

	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if (t->polls[mid].exit_ns <= start_ns)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static int is_named(const struct ls_truth_callback *c, const char *name)
{
	return !strcmp(c->name, name);
}

START_TEST(test_polls_and_callbacks_are_ordered)
{
	const struct run r = demo;

	ck_assert_uint_eq(r.t.npolls, r.end_polls);
	ck_assert_uint_eq(r.t.ncallbacks, r.end_callbacks);
	ck_assert_uint_gt(r.t.npolls, 100);
	for (size_t i = 0; i < r.t.npolls; i++) {
		const struct ls_truth_poll *p = &r.t.polls[i];

		ck_assert_uint_ge(p->exit_ns, p->enter_ns);
		if (i)
			ck_assert_uint_ge(p->enter_ns, r.t.polls[i - 1].exit_ns);
	}
	/* Callbacks never overlap, and each runs inside one busy period. */
	for (size_t i = 0; i < r.t.ncallbacks; i++) {
		const struct ls_truth_callback *c = &r.t.callbacks[i];
		size_t p = poll_before(&r.t, c->start_ns);

		ck_assert_uint_ge(c->end_ns, c->start_ns);
		if (i)
			ck_assert_uint_ge(c->start_ns, r.t.callbacks[i - 1].end_ns);
		ck_assert_uint_le(r.t.polls[p].exit_ns, c->start_ns);
		if (p + 1 < r.t.npolls)
			ck_assert_uint_le(c->end_ns, r.t.polls[p + 1].enter_ns);
	}
}
END_TEST

START_TEST(test_spin_sleep_and_nth_are_honoured)
{
	const struct run r = demo;
	size_t spin8 = 0, burn = 0, nap = 0, pipe = 0, storm = 0;

	for (size_t i = 0; i < r.t.ncallbacks; i++) {
		const struct ls_truth_callback *c = &r.t.callbacks[i];
		uint64_t d = c->end_ns - c->start_ns;

		if (is_named(c, "spin8")) {
			/* Runs count from 1; only every 20th burns 8 ms. */
			spin8++;
			if (spin8 % 20 == 0)
				ck_assert_msg(d >= 8 * MS, "spin8 run %zu took %" PRIu64 " ns", spin8, d);
			else
				ck_assert_msg(d < 8 * MS, "spin8 run %zu took %" PRIu64 " ns", spin8, d);
		} else if (is_named(c, "burn")) {
			burn++;
			ck_assert_uint_ge(d, 3 * MS);
		} else if (is_named(c, "nap")) {
			nap++;
			ck_assert_uint_ge(d, 25 * MS);
		} else if (is_named(c, "pipe")) {
			pipe++;
			/* The watcher runs only after a poll that reported events. */
			ck_assert_int_gt(r.t.polls[poll_before(&r.t, c->start_ns)].nevents, 0);
		} else if (is_named(c, "storm")) {
			storm++;
		}
	}
	ck_assert_uint_ge(spin8, 40);
	ck_assert_uint_ge(burn, 20);
	ck_assert_uint_ge(nap, 4);
	ck_assert_uint_ge(pipe, 100);
	ck_assert_uint_eq(storm, 200);
}
END_TEST

START_TEST(test_timers_are_fixed_rate_and_never_early)
{
	static const struct { const char *name; uint64_t every_ns; } rates[] = {
		{ "tick", 10 * MS }, { "spin8", 10 * MS }, { "burn", 50 * MS }, { "nap", 300 * MS },
	};
	const struct run r = demo;
	size_t c = 0;

	ck_assert_uint_gt(r.t.ntimers, 200);
	for (size_t i = 0; i < r.t.ntimers; i++) {
		const struct ls_truth_timer *tm = &r.t.timers[i];

		ck_assert_uint_ge(tm->dispatch_ns, tm->deadline_ns);
		/* dispatch is the start of that timer's callback line. */
		while (c < r.t.ncallbacks && r.t.callbacks[c].start_ns < tm->dispatch_ns)
			c++;
		ck_assert_uint_lt(c, r.t.ncallbacks);
		ck_assert_uint_eq(r.t.callbacks[c].start_ns, tm->dispatch_ns);
		ck_assert_str_eq(r.t.callbacks[c].name, tm->name);
	}
	for (size_t k = 0; k < sizeof(rates) / sizeof(rates[0]); k++) {
		const struct ls_truth_timer *prev = NULL;

		for (size_t i = 0; i < r.t.ntimers; i++) {
			const struct ls_truth_timer *tm = &r.t.timers[i];

			if (strcmp(tm->name, rates[k].name))
				continue;
			if (prev) {
				/* Previous deadline + every, skipping to the first
				 * multiple still in the future when rescheduled. */
				ck_assert_uint_gt(tm->deadline_ns, prev->deadline_ns);
				ck_assert_uint_eq((tm->deadline_ns - prev->deadline_ns) % rates[k].every_ns,
						  0);
				ck_assert_uint_gt(tm->deadline_ns, prev->dispatch_ns);
				if (tm->deadline_ns - prev->deadline_ns > rates[k].every_ns)
					ck_assert_uint_le(tm->deadline_ns - rates[k].every_ns,
							  prev->dispatch_ns + 1 * MS);
			}
			prev = tm;
		}
		ck_assert_ptr_nonnull(prev);
	}
}
END_TEST

/* Earliest deadline among the timers pending during poll i, as far as the
 * log shows it: per name, the first timer dispatched after that poll (its
 * previous run, which scheduled it, came before). UINT64_MAX if none. */
static uint64_t next_deadline(const struct ls_truth *t, size_t i)
{
	static const char *names[] = { "tick", "spin8", "burn", "nap", "stop" };
	uint64_t best = UINT64_MAX;

	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		for (size_t j = 0; j < t->ntimers; j++) {
			if (t->timers[j].dispatch_ns >= t->polls[i].exit_ns &&
			    !strcmp(t->timers[j].name, names[k])) {
				if (t->timers[j].deadline_ns < best)
					best = t->timers[j].deadline_ns;
				break;
			}
		}
	}
	return best;
}

static void check_timeouts(const struct run *r, int ms_rounded)
{
	const struct ls_truth *t = &r->t;
	size_t c = 0;

	for (size_t i = 0; i < t->npolls; i++) {
		const struct ls_truth_poll *p = &t->polls[i];
		uint64_t next_enter = i + 1 < t->npolls ? t->polls[i + 1].enter_ns : UINT64_MAX;
		int storm_follows = 0, ran = 0;
		uint64_t d;

		/* Timers are always pending here: never an infinite wait. */
		ck_assert_int_ge(p->timeout_ns, 0);
		if (ms_rounded)
			ck_assert_int_eq(p->timeout_ns % (int64_t)MS, 0);
		while (c < t->ncallbacks && t->callbacks[c].start_ns < next_enter) {
			storm_follows += is_named(&t->callbacks[c], "storm");
			ran = 1;
			c++;
		}
		/* Callbacks queued while running wait for the next iteration
		 * (asyncio's ntodo): the storm runs once per iteration. */
		ck_assert_msg(storm_follows <= 1, "poll %zu: %d storm callbacks after it", i,
			      storm_follows);
		/* A storm callback was queued by the previous iteration (or
		 * before the run): ready work was waiting during this poll. */
		if (storm_follows)
			ck_assert_msg(p->timeout_ns == 0, "poll %zu: timeout %" PRId64
				      " with ready work waiting", i, p->timeout_ns);
		/* A zero timeout means ready work or an expired timer, so this
		 * iteration ran something. */
		if (p->timeout_ns == 0)
			ck_assert_msg(ran, "poll %zu: timeout 0 with nothing to run", i);
		/* Otherwise it waited for the earliest deadline, measured just
		 * before the entry: enter + timeout is at most a little past it
		 * (exactly with epoll_pwait2, rounded up to 1 ms otherwise). */
		d = next_deadline(t, i);
		if (p->timeout_ns > 0 && d != UINT64_MAX)
			ck_assert_msg(p->enter_ns + (uint64_t)p->timeout_ns <=
					      d + (ms_rounded ? MS : 0) + 500000,
				      "poll %zu: enter %" PRIu64 " + timeout %" PRId64
				      " past deadline %" PRIu64, i, p->enter_ns, p->timeout_ns, d);
		/* ...and never before it: the earliest pending timer is always
		 * dispatched (the stop timer is pending until the last poll). */
		if (p->timeout_ns > 0 && d != UINT64_MAX)
			ck_assert_uint_ge(p->enter_ns + (uint64_t)p->timeout_ns, d);
	}
}

START_TEST(test_poll_timeout_follows_rule_pwait2)
{
	check_timeouts(&demo, 0);
	/* The storm's first callback was queued before the first poll. */
	ck_assert_int_eq(demo.t.polls[0].timeout_ns, 0);
}
END_TEST

START_TEST(test_poll_timeout_follows_rule_epoll_wait)
{
	static const char *kinds[] = { "epoll_wait", "epoll_pwait" };

	for (size_t k = 0; k < 2; k++) {
		struct run r;

		run_demo(&r, kinds[k], "600ms");
		check_timeouts(&r, 1);
		run_free(&r);
	}
}
END_TEST

START_TEST(test_sigterm_stops_cleanly)
{
	char truth[128], out[128], line[64];
	char *argv[] = { REFLOOP, "--truth", truth, "timer tick every=5ms", NULL };
	struct ls_truth t;
	pid_t pid;
	int status = -1;

	ls_test_tmp(truth, sizeof(truth), "truth");
	ls_test_tmp(out, sizeof(out), "out");
	pid = ls_test_spawn(argv, out, NULL);
	ck_assert_int_gt(pid, 0);
	if (ls_test_wait_line(out, "pid ", 5000, line, sizeof(line))) {
		ls_test_kill(pid);
		ck_abort_msg("refloop printed no pid line");
	}
	usleep(200 * 1000);
	kill(pid, SIGTERM);
	ck_assert_int_eq(ls_test_wait(pid, 5000, &status), 0);
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(ls_truth_load(truth, &t), 0);
	ck_assert_int_eq(t.complete, 1);
	ck_assert_uint_ge(t.ntimers, 10);
	ls_truth_free(&t);
	unlink(truth);
	unlink(out);
}
END_TEST

START_TEST(test_bad_statement_exits_2)
{
	char err[128], scn[128];
	char *argv1[] = { REFLOOP, "timer tick every=10parsecs", NULL };
	char *argv2[] = { REFLOOP, "--scenario", scn, NULL };
	char *argv3[] = { REFLOOP, "timer tick every=10ms nth=abc", NULL };
	char *text;
	FILE *f;

	ls_test_tmp(err, sizeof(err), "err");
	ck_assert_int_eq(ls_test_run(argv1, NULL, err, 5000), 2);
	text = ls_test_slurp(err);
	ck_assert_ptr_nonnull(strstr(text, "argument 1"));
	free(text);
	ck_assert_int_eq(ls_test_run(argv3, NULL, NULL, 5000), 2);

	ls_test_tmp(scn, sizeof(scn), "scn");
	f = fopen(scn, "w");
	ck_assert_ptr_nonnull(f);
	fputs("# comment\n\ntimer tick every=10ms\nwobble x\n", f);
	fclose(f);
	ck_assert_int_eq(ls_test_run(argv2, NULL, err, 5000), 2);
	text = ls_test_slurp(err);
	ck_assert_ptr_nonnull(strstr(text, ":4:"));
	free(text);
	unlink(err);
	unlink(scn);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_refloop_truth");
	TCase *tc = tcase_create("demo"), *tc2 = tcase_create("modes");
	SRunner *sr;
	int failed;

	if (access(REFLOOP, X_OK)) {
		fprintf(stderr, "%s: %s (build the refloop target)\n", REFLOOP, strerror(errno));
		return EXIT_FAILURE;
	}
	/* Unchecked: the loop runs once, in this process, for all demo tests. */
	tcase_add_unchecked_fixture(tc, demo_setup, demo_teardown);
	tcase_add_test(tc, test_polls_and_callbacks_are_ordered);
	tcase_add_test(tc, test_spin_sleep_and_nth_are_honoured);
	tcase_add_test(tc, test_timers_are_fixed_rate_and_never_early);
	tcase_add_test(tc, test_poll_timeout_follows_rule_pwait2);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tc2, 60);
	tcase_add_test(tc2, test_poll_timeout_follows_rule_epoll_wait);
	tcase_add_test(tc2, test_sigterm_stops_cleanly);
	tcase_add_test(tc2, test_bad_statement_exits_2);
	suite_add_tcase(s, tc2);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
