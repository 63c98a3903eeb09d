// SPDX-License-Identifier: MIT
/*
 * Integration: where a slow callback's time went (on CPU, blocked, waiting
 * for a CPU) is exact from its first nanosecond, the same on its busy-period
 * line and its callback line, in text and in JSON, in precise and light
 * mode (issue #17 item 1: precise mode used to drop the part before the
 * stack-after time, a quarter of the threshold).
 *
 * examples/python/split_app.py runs callbacks that alternately spin and
 * sleep (time.sleep) 150 ms, each logging its own wall time (perf_counter)
 * and CPU time (time.thread_time_ns). Under `loopscope attach` with the
 * default 100 ms threshold (stack-after 25 ms), for every app callback:
 *  - spin: "on CPU" within max(5%, 5 ms) of the app's thread_time delta;
 *  - sleep: blocked + waiting within max(5%, 5 ms) of the app's wall time
 *    less its thread_time (its own off-CPU time), and blocked at least the
 *    150 ms asked less 1 ms (a sleep does not end early);
 * checked on the live "SLOW busy" and "SLOW callback" text lines and in the
 * JSON report's slow_busy and slow_callbacks records (precise mode; light
 * mode has busy periods only). All four come from four attaches started
 * together on the same app run (precise and light, text and JSON; each its
 * own BPF objects and probes, like four users): one app run per
 * interpreter checks them all, each against the app's own record of the
 * same callbacks. The 5 ms floor covers what the event holds
 * and the app's own clocks do not: the loop's and the callback's own code
 * around the measured part (the app writes its log line after its clocks
 * stop) and one scheduler tick (4 ms at HZ=250) of a preemption that
 * straddles the app's clock reads; 5% the same at a scale, on a loaded
 * machine where the spin is preempted tens of times.
 *
 * Starvation skews the truth: on this VM the hypervisor takes the vCPU away
 * now and then (steal time), which thread_time leaves out and the guest
 * scheduler does not see (the thread stays "running"): a spin's wall time
 * less its thread_time less its schedstat wait (all the app's own) is that
 * stolen time (up to 40 ms of a 220 ms spin, seen here under load), and the
 * spin's on-CPU check widens upwards by it; a sleep (time.sleep computes an
 * absolute deadline first) blocks for less than asked by what the thread
 * waited for a CPU before it slept, so its lower bound widens by the app's
 * schedstat wait. And the spin's on-CPU upper bound (the sleep's off-CPU
 * bound) widens by the thread's schedstat wait in the callback: beside
 * other sessions' load on this machine our runnable time (sched_switch)
 * read up to 8-12 ms below the thread's schedstat wait over the same
 * callback, that time going to "on CPU" (typically ~1 ms; exact to 0.3 ms
 * with one CPU hog pinned beside the loop thread; not explained yet). A
 * sleep's off-CPU upper bound widens also by what the loop thread waited
 * for a CPU outside the callbacks' clocks (the app's "window" schedstat wait
 * less the callbacks' own): preempted after the poll returned and before
 * the callback began, that wait is in the busy period and its line. The
 * lower bound stays tight: an on-CPU time that misses the callback's start
 * (the bug this suite is for: 25 ms of a 150 ms spin) still fails, and on
 * a quiet machine (wait ~0) both bounds are max(5%, 5 ms).
 *
 * On every CPython loopscope supports (pyenv 3.8-3.13, Debian's 3.11, sid's
 * 3.14/3.15 chrooted and as containers) and uvloop where it imports
 * (Debian's python3-uvloop on 3.11, sid's on 3.14): missing ones are named
 * as skipped.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define APP LS_SOURCE_DIR "/examples/python/split_app.py"
#define MAX_BLK 16
#define ROUNDS "4"
#define BLOCK_NS 150000000ULL

struct py {
	char path[512], name[96];
	bool uvloop;
};

static struct py pys[LS_TEST_MAX_PYTHONS + 8];
static int npys;

static void discover(void)
{
	struct ls_test_pythons all;

	ls_test_find_pythons("it_split", 8, LS_TEST_PY_FULL, &all);
	for (int i = 0; i < all.n; i++) {
		snprintf(pys[npys].path, sizeof(pys[0].path), "%s", all.path[i]);
		snprintf(pys[npys].name, sizeof(pys[0].name), "%s", all.name[i]);
		npys++;
	}
	/* uvloop where it imports: Debian's 3.11, sid's 3.14. */
	for (int i = 0; i < all.n; i++) {
		char *check[] = { all.path[i], "-c", "import uvloop", NULL };

		if (strcmp(all.path[i], "/usr/bin/python3.11") && !strstr(all.name[i], "sid"))
			continue; /* pyenv builds have no uvloop here */
		if (ls_test_run(check, NULL, NULL, 20000) != 0) {
			fprintf(stderr, "it_split: SKIP uvloop on %s: uvloop does not import there\n",
				all.name[i]);
			continue;
		}
		snprintf(pys[npys].path, sizeof(pys[0].path), "%s", all.path[i]);
		snprintf(pys[npys].name, sizeof(pys[0].name), "%s + uvloop", all.name[i]);
		pys[npys].uvloop = true;
		npys++;
	}
}

struct blk {
	bool sleep;
	uint64_t start, dur, cpu, wait;
};

/* The loop thread's schedstat wait over the rounds (the app's "window"
 * line), and that less the callbacks' own: what it waited for a CPU outside
 * the callbacks' clocks, part of which may fall in their busy periods
 * (preempted after the poll returned, before the callback began). Set by
 * read_app_log. */
static uint64_t window_wait_ns, starved_outside_ns;

static int read_app_log(const char *path, struct blk *b)
{
	FILE *f = fopen(path, "r");
	char buf[512];
	uint64_t inside = 0;
	int n = 0;

	window_wait_ns = 0;

	ck_assert_ptr_nonnull(f);
	while (n < MAX_BLK && fgets(buf, sizeof(buf), f)) {
		json_object *o = json_tokener_parse(buf), *k = ls_test_jget(o, "kind");

		if (k && !strcmp(json_object_get_string(k), "window")) {
			window_wait_ns = ls_test_ju64(o, "wait_ns");
			json_object_put(o);
			continue;
		}
		b[n].sleep = k && !strcmp(json_object_get_string(k), "sleep");
		b[n].start = ls_test_ju64(o, "start_ns");
		b[n].dur = ls_test_ju64(o, "duration_ns");
		b[n].cpu = ls_test_ju64(o, "cpu_ns");
		b[n].wait = ls_test_ju64(o, "wait_ns");
		n++;
		json_object_put(o);
	}
	fclose(f);
	for (int i = 0; i < n; i++)
		inside += b[i].wait;
	starved_outside_ns = window_wait_ns > inside ? window_wait_ns - inside : 0;
	return n;
}

/* max(5%, 5 ms) of the truth. */
static uint64_t tolerance(uint64_t truth)
{
	return truth / 20 > 5000000ULL ? truth / 20 : 5000000ULL;
}

struct split {
	uint64_t on_cpu, blocked, runnable;
	/* off the CPU in an episode the scheduler programs did not see (the
	 * tool says so: "off CPU untraced", offcpu_untraced_ns), blocked or
	 * waiting unknown: counted with either where the split is checked */
	uint64_t untraced;
	/* the report counted off-CPU episodes its scheduler programs missed
	 * (offcpu_unseen; "OFF-CPU UNSEEN n"): a callback's split, which has
	 * no untraced part, may then read 0 for a sleep, said, not silent */
	bool unseen_reported;
};

/* One event's split against app callback b: fails the test when off. */
static void check_split(const char *py, const char *what, const struct blk *b,
			const struct split *s)
{
	if (!b->sleep) {
		uint64_t stolen = b->dur > b->cpu + b->wait ? b->dur - b->cpu - b->wait : 0;

		ck_assert_msg(s->on_cpu + tolerance(b->cpu) >= b->cpu &&
			      s->on_cpu <= b->cpu + tolerance(b->cpu) + stolen + b->wait,
			      "%s: %s of a spin: %.2f ms on CPU vs the app's thread_time %.2f ms "
			      "(+ up to %.2f ms stolen; blocked %.2f, waiting %.2f ms; the app's wall "
			      "%.2f ms, schedstat wait %.2f ms)", py, what, s->on_cpu / 1e6,
			      b->cpu / 1e6, stolen / 1e6, s->blocked / 1e6, s->runnable / 1e6,
			      b->dur / 1e6, b->wait / 1e6);
		return;
	}
	uint64_t off = b->dur > b->cpu ? b->dur - b->cpu : 0;

	if (s->unseen_reported && !s->blocked && !s->runnable && !s->untraced) {
		fprintf(stderr, "it_split: %s: %s of a sleep read 0 off CPU, with the report's "
			"offcpu_unseen counting it\n", py, what);
		return;
	}
	uint64_t ours = s->blocked + s->runnable + s->untraced;

	/* Upwards also by the wait outside the callbacks' clocks: beside two
	 * CPU hogs and a dd a 150 ms sleep's busy period once held 59.8 ms
	 * waiting for a CPU that its clocks did not. */
	ck_assert_msg(ours + tolerance(off) + b->wait >= off &&
		      ours <= off + tolerance(off) + b->wait + starved_outside_ns,
		      "%s: %s of a sleep: %.2f ms blocked + %.2f ms waiting + %.2f ms untraced vs "
		      "the app's wall less thread_time %.2f ms (+ up to %.2f ms waiting for a CPU "
		      "outside its clocks)", py, what, s->blocked / 1e6, s->runnable / 1e6,
		      s->untraced / 1e6, off / 1e6, starved_outside_ns / 1e6);
	ck_assert_msg(s->blocked + s->untraced + b->wait + 1000000ULL >= BLOCK_NS,
		      "%s: %s of a 150 ms sleep: only %.2f ms blocked (the app waited %.2f ms for "
		      "a CPU)", py, what, s->blocked / 1e6, b->wait / 1e6);
}

/* "114.5 ms" ending at end (exclusive) of s: ns, or -1. */
static int64_t duration_before(const char *s, const char *end)
{
	static const struct { const char *u; double mul; } units[] = {
		{ "ns", 1 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 } };
	const char *u = end, *num;
	char word[8];

	while (u > s && u[-1] != ' ')
		u--;
	if (u <= s + 1 || end - u >= (long)sizeof(word))
		return -1;
	memcpy(word, u, (size_t)(end - u));
	word[end - u] = '\0';
	num = u - 1;
	while (num > s && num[-1] != ' ')
		num--;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(word, units[i].u))
			return (int64_t)(strtod(num, NULL) * units[i].mul + 0.5);
	return -1;
}

/* The times of a live line "...: 150.1 ms blocked in clock_nanosleep <- ...;
 * 225.3 us on CPU; 76.6 us waiting for a CPU" (parts in any order, those of
 * 0 left out). */
static void parse_line(const char *py, const char *line, struct split *s)
{
	const char *parts = strstr(line, ": "), *p;
	int64_t v;

	ck_assert_msg(parts, "%s: no times in %s", py, line);
	memset(s, 0, sizeof(*s));
	if ((p = strstr(parts, " on CPU"))) {
		v = duration_before(parts, p);
		ck_assert_msg(v >= 0, "%s: unreadable on-CPU time in %s", py, line);
		s->on_cpu = (uint64_t)v;
	}
	if ((p = strstr(parts, " blocked"))) {
		v = duration_before(parts, p);
		ck_assert_msg(v >= 0, "%s: unreadable blocked time in %s", py, line);
		s->blocked = (uint64_t)v;
	}
	if ((p = strstr(parts, " waiting for a CPU"))) {
		v = duration_before(parts, p);
		ck_assert_msg(v >= 0, "%s: unreadable waiting time in %s", py, line);
		s->runnable = (uint64_t)v;
	}
	if ((p = strstr(parts, " off CPU untraced"))) {
		v = duration_before(parts, p);
		ck_assert_msg(v >= 0, "%s: unreadable untraced time in %s", py, line);
		s->untraced = (uint64_t)v;
	}
}

static void json_split(const char *py, json_object *e, struct split *s)
{
	ck_assert_msg(ls_test_jget(e, "on_cpu_ns") && ls_test_jget(e, "blocked_ns") &&
		      ls_test_jget(e, "runnable_ns"), "%s: a slow record without its split: %s", py,
		      json_object_to_json_string(e));
	s->on_cpu = ls_test_ju64(e, "on_cpu_ns");
	s->blocked = ls_test_ju64(e, "blocked_ns");
	s->runnable = ls_test_ju64(e, "runnable_ns");
	s->untraced = ls_test_jget(e, "offcpu_untraced_ns") ? ls_test_ju64(e, "offcpu_untraced_ns") : 0;
}

/* The record of arr that holds app callback b, or NULL. */
static json_object *holding(json_object *arr, const struct blk *b)
{
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		uint64_t es = ls_test_ju64(e, "start_ns"), ed = ls_test_ju64(e, "duration_ns");

		if (es <= b->start && es + ed >= b->start + b->dur)
			return e;
	}
	return NULL;
}

/* The four attaches of a run: precise and light mode, each with text
 * output and with --json. */
enum { PRECISE_TEXT, PRECISE_JSON, LIGHT_TEXT, LIGHT_JSON, NATTACH };
static const char *const attach_mode[NATTACH] = { "precise", "precise", "light", "light" };

/* The last run's attaches' stderr, for failure messages. */
static char attach_err[NATTACH][2048];

/* Run the app on py under four `loopscope attach` at once (precise and
 * light mode, text and --json) until it exits; the rounds start once all
 * say they are attached. Their output files into out[], the app's
 * callbacks into blk. */
static int run_one(const struct py *py, char out[NATTACH][128], struct blk *blk)
{
	char applog[128], go[128], appout[128], err[NATTACH][128], spid[32];
	char *app_argv[] = { (char *)py->path, APP, "--log", applog, "--wait-file", go, "--rounds",
			     ROUNDS, py->uvloop ? "--uvloop" : NULL, NULL };
	pid_t app, cli[NATTACH];
	int status, n;
	FILE *f;

	ls_test_tmp(applog, sizeof(applog), "splitlog");
	ls_test_tmp(go, sizeof(go), "splitgo");
	unlink(go);
	app = ls_test_start_target(app_argv, appout, sizeof(appout), spid, sizeof(spid), 20000);
	for (int j = 0; j < NATTACH; j++) {
		bool json = j == PRECISE_JSON || j == LIGHT_JSON;
		char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "--mode", (char *)attach_mode[j],
				 "-d", "30s", json ? "--json" : NULL, NULL };

		ls_test_tmp(out[j], 128, "splitout");
		ls_test_tmp(err[j], sizeof(err[j]), "spliterr");
		cli[j] = ls_test_spawn(argv, out[j], err[j]);
		ck_assert_int_gt(cli[j], 0);
	}
	for (int j = 0; j < NATTACH; j++) {
		if (ls_test_wait_substr(err[j], "attached to", 20000, NULL, 0) != 0) {
			char *e = ls_test_slurp(err[j]);

			ls_test_kill(app);
			for (int k = 0; k < NATTACH; k++)
				ls_test_kill(cli[k]);
			ck_abort_msg("%s: attach %d (%s) did not start: %s", py->name, j,
				     attach_mode[j], e ? e : "");
		}
	}
	f = fopen(go, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_msg(ls_test_wait(app, 30000, &status) == 0 && status == 0,
		      "%s: the app did not finish well", py->name);
	for (int j = 0; j < NATTACH; j++) {
		/* 6: its target exited (the report is printed then). */
		ck_assert_msg(ls_test_wait(cli[j], 30000, &status) == 0 && status == 6,
			      "%s: attach %d (%s) exited %d", py->name, j, attach_mode[j], status);
		char *e = ls_test_slurp(err[j]);

		snprintf(attach_err[j], sizeof(attach_err[j]), "%s", e ? e : "");
		free(e);
		unlink(err[j]);
	}
	n = read_app_log(applog, blk);
	ck_assert_msg(n == atoi(ROUNDS), "%s: the app logged %d callbacks", py->name, n);
	unlink(applog);
	unlink(go);
	unlink(appout);
	return n;
}

/* The live lines of out that contain tag, in order, at most max. */
static int live_lines(const char *out, const char *tag, char lines[][4096], int max)
{
	FILE *f = fopen(out, "r");
	char buf[4096];
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(buf, sizeof(buf), f))
		if (strstr(buf, tag) && n < max)
			memcpy(lines[n++], buf, sizeof(buf));
	fclose(f);
	return n;
}

/* The ms of the day (local time, as the live lines print it) of
 * CLOCK_MONOTONIC time mono_ns. */
static int64_t day_ms_of_mono(uint64_t mono_ns)
{
	struct timespec r, m;
	struct tm tm;
	int64_t real;
	time_t sec;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	real = (int64_t)mono_ns + ((int64_t)r.tv_sec - m.tv_sec) * 1000000000LL +
	       (r.tv_nsec - m.tv_nsec);
	sec = (time_t)(real / 1000000000LL);
	localtime_r(&sec, &tm);
	return ((tm.tm_hour * 60LL + tm.tm_min) * 60 + tm.tm_sec) * 1000 + (real / 1000000) % 1000;
}

/* The ms of the day a live line begins with ("HH:MM:SS.mmm  SLOW ...": when
 * the period or callback ended), or -1. */
static int64_t line_day_ms(const char *line)
{
	int h, m, sec, ms;

	if (sscanf(line, "%d:%d:%d.%d", &h, &m, &sec, &ms) != 4)
		return -1;
	return ((h * 60LL + m) * 60 + sec) * 1000 + ms;
}

/* The live lines of each kind are paired with the app's callbacks by their
 * end time (the line's first field, ms): the nearest within 50 ms, the
 * callbacks being 250 ms apart or more. A slow period that is not an app
 * callback is a right answer the app did not log, not a mismatch: beside
 * two CPU hogs and a dd, the loop's start once waited 100.5 ms for a CPU
 * (a 107.9 ms period before the first callback) and asyncio.run's
 * teardown once blocked 301 ms outside any syscall (by all signs a page
 * fault on the busy disk). They are printed and left out. */
static void check_text(const struct py *py, const char *mode, const char *out,
		       const struct blk *blk, int n)
{
	char lines[MAX_BLK][4096], what[96];
	bool precise = !strcmp(mode, "precise");
	char *text = ls_test_slurp(out);
	bool unseen = text && strstr(text, "OFF-CPU UNSEEN");

	free(text);
	for (int k = 0; k < 2; k++) {
		const char *tag = k ? "  SLOW callback " : "  SLOW busy ";
		bool used[MAX_BLK] = { false };
		int nl;

		if (k && !precise)
			break;
		nl = live_lines(out, tag, lines, MAX_BLK);
		for (int i = 0; i < n; i++) {
			int64_t want = day_ms_of_mono(blk[i].start + blk[i].dur), best_d = 0;
			int best = -1;
			struct split s;

			for (int j = 0; j < nl; j++) {
				int64_t d = line_day_ms(lines[j]) - want;

				d = d < 0 ? -d : d;
				d = d > 43200000 ? 86400000 - d : d; /* midnight */
				if (!used[j] && line_day_ms(lines[j]) >= 0 && (best < 0 || d < best_d)) {
					best = j;
					best_d = d;
				}
			}
			if (best < 0 || best_d > 50)
				for (int j = 0; j < nl; j++)
					fprintf(stderr, "it_split: %s: %s mode: line %d: %s", py->name,
						mode, j, lines[j]);
			ck_assert_msg(best >= 0 && best_d <= 50,
				      "%s: %s mode: no%sline ends within 50 ms of app callback %d "
				      "(%d lines for %d slow app callbacks); attach said: %s", py->name,
				      mode, tag + 1, i, nl, n,
				      attach_err[precise ? PRECISE_TEXT : LIGHT_TEXT]);
			used[best] = true;
			parse_line(py->name, lines[best], &s);
			s.unseen_reported = unseen;
			snprintf(what, sizeof(what), "%s mode,%s line", mode, tag + 6);
			check_split(py->name, what, &blk[i], &s);
		}
		for (int j = 0; j < nl; j++)
			if (!used[j])
				fprintf(stderr, "it_split: %s: %s mode: a slow period that is not an app "
					"callback: %s", py->name, mode, lines[j]);
	}
	unlink(out);
}

static void check_json(const struct py *py, const char *mode, const char *out,
		       const struct blk *blk, int n)
{
	char what[96];
	bool precise = !strcmp(mode, "precise");
	json_object *rep = ls_test_json_last(out, "report");

	ck_assert_msg(rep, "%s: no JSON report", py->name);
	for (int k = 0; k < 2; k++) {
		const char *key = k ? "slow_callbacks" : "slow_busy";
		json_object *arr = ls_test_jget(rep, key);

		if (k && !precise)
			break;
		ck_assert_msg(arr, "%s: no %s in the report", py->name, key);
		for (int i = 0; i < n; i++) {
			json_object *e = holding(arr, &blk[i]);
			struct split s;

			ck_assert_msg(e, "%s: %s mode: no %s record holds app callback %d "
				      "(%s, start %llu, %llu ns): %s; precise_targets %s, %zu callbacks, "
				      "lost_callback_events %llu; attach said: %s", py->name, mode, key, i,
				      blk[i].sleep ? "sleep" : "spin", (unsigned long long)blk[i].start,
				      (unsigned long long)blk[i].dur, json_object_to_json_string(arr),
				      json_object_to_json_string(ls_test_jget(rep, "precise_targets")),
				      ls_test_jget(rep, "callbacks") ?
				      json_object_array_length(ls_test_jget(rep, "callbacks")) : 0,
				      (unsigned long long)ls_test_ju64(rep, "lost_callback_events"),
				      attach_err[precise ? PRECISE_JSON : LIGHT_JSON]);
			json_split(py->name, e, &s);
			s.unseen_reported = ls_test_jget(rep, "offcpu_unseen") &&
					    ls_test_ju64(rep, "offcpu_unseen") > 0;
			if (k) {
				json_object *sp = ls_test_jget(e, "split");

				ck_assert_msg(sp && !strcmp(json_object_get_string(sp), "exact"),
					      "%s: a slow callback's split is not exact: %s", py->name,
					      json_object_to_json_string(e));
			}
			snprintf(what, sizeof(what), "%s mode, JSON %s", mode, key);
			check_split(py->name, what, &blk[i], &s);
		}
	}
	json_object_put(rep);
	unlink(out);
}

/* One run under the four attaches: each output within max(5%, 5 ms). */
START_TEST(test_split)
{
	char out[NATTACH][128];
	struct blk blk[MAX_BLK];
	int n = run_one(&pys[_i], out, blk);

	check_text(&pys[_i], "precise", out[PRECISE_TEXT], blk, n);
	check_json(&pys[_i], "precise", out[PRECISE_JSON], blk, n);
	check_text(&pys[_i], "light", out[LIGHT_TEXT], blk, n);
	check_json(&pys[_i], "light", out[LIGHT_JSON], blk, n);
	fprintf(stderr, "it_split: %s: precise (busy and callback times) and light (busy periods), "
		"text and JSON: within max(5%%, 5 ms)\n", pys[_i].name);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_split");
	TCase *tc = tcase_create("split");

	discover();
	if (!npys) {
		fprintf(stderr, "it_split: SKIP all: no supported CPython found\n");
		return EXIT_SUCCESS;
	}
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_split, 0, npys);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
