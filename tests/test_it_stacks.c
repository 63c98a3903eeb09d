// SPDX-License-Identifier: MIT
/*
 * Integration: Python stacks of slow busy periods (light mode), on every
 * interpreter present (Debian's stripped /usr/bin/python3.11 and pyenv
 * 3.8-3.13; 2.x, 3.6 and 3.7 skipped by name: no stack walker offsets).
 *
 * examples/python/culprits.py blocks its loop four ways, ~150 ms each, and
 * logs each culprit's own measurement: function, the line of the culprit
 * call, perf_counter duration, thread_time (on CPU) and schedstat wait.
 * For each culprit, the slow busy period that holds it must have
 *  - as innermost frame of its heaviest stack of the culprit's kind (on-CPU
 *    for the spin, blocked off-CPU for the others) the culprit function, on
 *    the culprit's line;
 *  - that stack's syscall: nanosleep/clock_nanosleep/select/pselect6 for
 *    time.sleep (select on 3.8-3.10), read for the pipe, futex for the lock;
 *  - on-CPU and off-CPU time within max(10 %, 5 ms) of the app's own
 *    thread_time and perf_counter - thread_time (the bound; the
 *    busy period also holds asyncio's own work of that iteration: < 1 ms).
 * With the loop thread and a CPU hog pinned to one CPU, the runnable time
 * must be within max(10 %, 5 ms) of the thread's schedstat wait.
 * On a loaded machine the truth itself is skewed: the busy period also
 * holds what the loop thread waited for a CPU outside the culprit's own
 * clocks (preempted before the culprit starts or after it ends). The off-CPU
 * and runnable checks widen upwards (only) by that: the thread's schedstat
 * wait over all the rounds less the culprits' own (the app logs both; ~0 on
 * a quiet machine). The app writes its log at the end, not inside a busy
 * period (a write on a busy disk added 20 ms off CPU to a period).
 * A loop whose busy periods stay below a quarter of the threshold (where
 * stacks start) costs no stack walk at all (the report's stacks.walks is 0).
 */
#include <check.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define CULPRITS LS_SOURCE_DIR "/examples/python/culprits.py"
#define BLOCKING LS_SOURCE_DIR "/examples/python/blocking_sleep.py"
#define MS 1000000ULL

static struct ls_test_pythons py_list;

struct culprit {
	char name[16], function[64];
	int lines[4], nlines;
	uint64_t start_ns, duration_ns, on_cpu_ns, wait_ns;
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

static uint64_t bound(uint64_t truth)
{
	return truth / 10 > 5 * MS ? truth / 10 : 5 * MS;
}

/* The loop thread's schedstat wait over the rounds, less the culprits'
 * own: set by load_culprits. */
static uint64_t starved_outside_ns;

static int load_culprits(const char *path, struct culprit *c, int max)
{
	uint64_t window = 0, inside = 0;
	FILE *f = fopen(path, "r");
	char buf[1024];
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (n < max && fgets(buf, sizeof(buf), f)) {
		json_object *o = json_tokener_parse(buf), *lines = ls_test_jget(o, "lines");

		ck_assert_ptr_nonnull(o);
		if (!strcmp(json_object_get_string(ls_test_jget(o, "name")), "window")) {
			window = ls_test_ju64(o, "wait_ns");
			json_object_put(o);
			continue;
		}
		memset(&c[n], 0, sizeof(c[n]));
		snprintf(c[n].name, sizeof(c[n].name), "%s",
			 json_object_get_string(ls_test_jget(o, "name")));
		snprintf(c[n].function, sizeof(c[n].function), "%s",
			 json_object_get_string(ls_test_jget(o, "function")));
		for (size_t i = 0; i < json_object_array_length(lines) && i < 4; i++)
			c[n].lines[c[n].nlines++] = json_object_get_int(json_object_array_get_idx(lines, i));
		c[n].start_ns = ls_test_ju64(o, "start_ns");
		c[n].duration_ns = ls_test_ju64(o, "duration_ns");
		c[n].on_cpu_ns = ls_test_ju64(o, "on_cpu_ns");
		c[n].wait_ns = ls_test_ju64(o, "wait_ns");
		json_object_put(o);
		inside += c[n].wait_ns;
		n++;
	}
	fclose(f);
	starved_outside_ns = window > inside ? window - inside : 0;
	return n;
}

/* Run app_argv (a target that prints "pid N" and, with --wait-file W,
 * starts its work once W exists) under `loopscope attach --json` with
 * extra arguments; returns the report (json_object_put it). */
static json_object *attach_run_folded(char **app_argv, const char *wait_file,
				      const char *threshold, const char *tag, const char *folded)
{
	char appout[128], out[128], err[128], spid[32], line[256];
	pid_t app, ls;
	int status;

	ls_test_tmp(out, sizeof(out), "out");
	ls_test_tmp(err, sizeof(err), "err");
	app = ls_test_start_target(app_argv, appout, sizeof(appout), spid, sizeof(spid), 10000);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-d", "15s", "--json", "-q",
			 "--threshold", (char *)threshold, folded ? "--folded" : NULL,
			 (char *)folded, NULL };

	ls = ls_test_spawn(argv, out, err);
	ck_assert_int_gt(ls, 0);
	if (ls_test_wait_substr(err, "attached", 10000, line, sizeof(line))) {
		char *e = ls_test_slurp(err);

		ls_test_kill(app);
		ls_test_kill(ls);
		ck_abort_msg("%s: loopscope did not attach: %s", tag, e ? e : "");
	}
	if (wait_file) {
		FILE *f = fopen(wait_file, "w");

		ck_assert_ptr_nonnull(f);
		fclose(f);
	}
	ck_assert_int_eq(ls_test_wait(app, 30000, &status), 0);
	ck_assert_int_eq(status, 0);
	/* The target is gone: loopscope prints the report and exits 6. */
	ck_assert_int_eq(ls_test_wait(ls, 10000, &status), 0);
	if (status != 6) {
		char *e = ls_test_slurp(err);

		ck_abort_msg("%s: loopscope exited %d: %s", tag, status, e ? e : "");
	}
	json_object *rep = ls_test_json_last(out, "report");

	ck_assert_ptr_nonnull(rep);
	unlink(appout);
	unlink(out);
	unlink(err);
	return rep;
}

static json_object *attach_run(char **app_argv, const char *wait_file, const char *threshold,
			       const char *tag)
{
	return attach_run_folded(app_argv, wait_file, threshold, tag, NULL);
}

/* The slow busy period of rep that holds culprit c, or NULL. */
static json_object *period_of(json_object *rep, const struct culprit *c)
{
	json_object *slow = ls_test_jget(rep, "slow_busy");

	for (size_t i = 0; i < json_object_array_length(slow); i++) {
		json_object *e = json_object_array_get_idx(slow, i);
		uint64_t s = ls_test_ju64(e, "start_ns"), d = ls_test_ju64(e, "duration_ns");

		if (s <= c->start_ns && s + d >= c->start_ns + c->duration_ns)
			return e;
	}
	return NULL;
}

/* The heaviest stack of a kind: on_cpu by on_cpu_ns, off_cpu by blocked_ns. */
static json_object *heaviest(json_object *period, const char *kind)
{
	json_object *stacks = ls_test_jget(period, "stacks"), *best = NULL;
	uint64_t bw = 0;
	bool on = !strcmp(kind, "on_cpu");

	for (size_t i = 0; i < json_object_array_length(stacks); i++) {
		json_object *s = json_object_array_get_idx(stacks, i);
		uint64_t w = ls_test_ju64(s, on ? "on_cpu_ns" : "blocked_ns");

		if (!strcmp(json_object_get_string(ls_test_jget(s, "kind")), kind) && w > bw) {
			best = s;
			bw = w;
		}
	}
	return best;
}

static bool syscall_ok(const char *culprit, const char *sc)
{
	if (!sc)
		return false;
	if (!strcmp(culprit, "sleep"))
		return !strcmp(sc, "clock_nanosleep") || !strcmp(sc, "nanosleep") ||
		       !strcmp(sc, "select") || !strcmp(sc, "pselect6");
	if (!strcmp(culprit, "pipe"))
		return !strcmp(sc, "read");
	if (!strcmp(culprit, "lock"))
		return !strcmp(sc, "futex");
	return false;
}

/* The checks on one culprit's period; runnable_vs_wait adds the schedstat one. */
/* Why the last check_culprit failed. */
static char why_failed[2048];

#define CHECK(cond, ...)                                                         \
	do {                                                                     \
		if (!(cond)) {                                                   \
			snprintf(why_failed, sizeof(why_failed), __VA_ARGS__);   \
			return false;                                            \
		}                                                                \
	} while (0)

static bool check_culprit(const char *py, json_object *rep, const struct culprit *c,
			  bool runnable_vs_wait)
{
	json_object *p = period_of(rep, c), *st, *frames, *top;
	bool spin = !strcmp(c->name, "spin");
	const char *fn, *sc = NULL;
	int line;
	bool line_ok = false;

	CHECK(p, "%s: %s: no slow busy period holds it", py, c->name);
	st = heaviest(p, spin ? "on_cpu" : "off_cpu");
	CHECK(st, "%s: %s: no %s stack", py, c->name, spin ? "on-CPU" : "off-CPU");
	frames = ls_test_jget(st, "frames");
	CHECK(json_object_array_length(frames) > 0, "%s: %s: empty stack (error %s)", py,
		      c->name, json_object_get_string(ls_test_jget(st, "error")));
	top = json_object_array_get_idx(frames, 0);
	fn = json_object_get_string(ls_test_jget(top, "function"));
	line = json_object_get_int(ls_test_jget(top, "line"));
	for (int i = 0; i < c->nlines; i++)
		line_ok |= line == c->lines[i];
	CHECK(fn && !strcmp(fn, c->function) && line_ok,
		      "%s: %s: innermost frame %s line %d, expected %s line %d", py, c->name,
		      fn ? fn : "?", line, c->function, c->lines[0]);
	if (!spin) {
		sc = json_object_get_string(ls_test_jget(st, "syscall"));
		CHECK(syscall_ok(c->name, sc), "%s: %s: blocked in %s", py, c->name,
			      sc ? sc : "(none)");
	}
	uint64_t on = ls_test_ju64(p, "on_cpu_ns");
	uint64_t off = ls_test_ju64(p, "blocked_ns") + ls_test_ju64(p, "runnable_ns");
	uint64_t app_off = c->duration_ns > c->on_cpu_ns ? c->duration_ns - c->on_cpu_ns : 0;

	CHECK(absdiff(on, c->on_cpu_ns) <= bound(c->duration_ns),
		      "%s: %s: on CPU %llu ns, the app's thread_time says %llu ns", py, c->name,
		      (unsigned long long)on, (unsigned long long)c->on_cpu_ns);
	CHECK(off + bound(c->duration_ns) >= app_off &&
		      off <= app_off + bound(c->duration_ns) + starved_outside_ns,
		      "%s: %s: off CPU %llu ns, the app's perf_counter - thread_time says %llu ns "
		      "(+ up to %llu ns waiting for a CPU outside its clocks)",
		      py, c->name, (unsigned long long)off, (unsigned long long)app_off,
		      (unsigned long long)starved_outside_ns);
	/* The stacks themselves carry the culprit's time: a block is one
	 * off-CPU episode, with its stack, blocked then runnable once woken;
	 * a spin's samples start a quarter of the threshold (25 ms) in. */
	if (!spin) {
		uint64_t st_off = ls_test_ju64(st, "blocked_ns") + ls_test_ju64(st, "runnable_ns");

		/* The app's off-CPU time also holds what the thread waited for
		 * a CPU around the block, inside its clocks (schedstat,
		 * c->wait_ns): preemptions, which go with other stacks. Beside
		 * two hogs and a dd a 3.8 sleep's stack held 150.3 ms of the
		 * app's 179.6 ms. */
		CHECK(absdiff(st_off, app_off) <= bound(c->duration_ns) + c->wait_ns,
			      "%s: %s: its stack holds %llu ns off CPU, the app says %llu ns (of "
			      "which %llu ns waiting for a CPU)", py, c->name,
			      (unsigned long long)st_off, (unsigned long long)app_off,
			      (unsigned long long)c->wait_ns);
	} else {
		uint64_t sampled = 0, lo = c->on_cpu_ns > 25 * MS ? (c->on_cpu_ns - 25 * MS) * 9 / 10 : 0;
		json_object *stacks = ls_test_jget(p, "stacks");

		for (size_t i = 0; i < json_object_array_length(stacks); i++) {
			json_object *s = json_object_array_get_idx(stacks, i);
			json_object *f0 = json_object_array_get_idx(ls_test_jget(s, "frames"), 0);

			if (f0 && !strcmp(json_object_get_string(ls_test_jget(f0, "function")), c->function))
				sampled += ls_test_ju64(s, "on_cpu_ns");
		}
		CHECK(sampled >= lo && sampled <= c->on_cpu_ns * 11 / 10 + 5 * MS,
			      "%s: spin: %llu ns of on-CPU samples in it, thread_time %llu ns", py,
			      (unsigned long long)sampled, (unsigned long long)c->on_cpu_ns);
	}
	if (runnable_vs_wait) {
		uint64_t run = ls_test_ju64(p, "runnable_ns"), st_run = 0;
		json_object *stacks = ls_test_jget(p, "stacks");

		CHECK(run + bound(c->wait_ns) >= c->wait_ns &&
			      run <= c->wait_ns + bound(c->wait_ns) + starved_outside_ns,
		      "%s: %s: runnable %llu ns, schedstat wait %llu ns (+ up to %llu outside)", py,
			      c->name, (unsigned long long)run, (unsigned long long)c->wait_ns,
			      (unsigned long long)starved_outside_ns);
		/* The stacks' runnable time (preemptions carried to the next
		 * sample) is part of it, from 25 ms in. */
		for (size_t i = 0; i < json_object_array_length(stacks); i++)
			st_run += ls_test_ju64(json_object_array_get_idx(stacks, i), "runnable_ns");
		CHECK(st_run <= run + MS &&
			      st_run >= (c->wait_ns > 25 * MS ? (c->wait_ns - 25 * MS) / 2 : 0),
			      "%s: %s: stacks hold %llu ns runnable of %llu ns (schedstat %llu ns)", py,
			      c->name, (unsigned long long)st_run, (unsigned long long)run,
			      (unsigned long long)c->wait_ns);
	}
	fprintf(stderr, "it_stacks: %s: %-5s %s:%d%s%s on %llu/%llu off %llu/%llu us (ours/app)%s\n",
		py, c->name, fn, line, sc ? " in " : "", sc ? sc : "",
		(unsigned long long)on / 1000, (unsigned long long)c->on_cpu_ns / 1000,
		(unsigned long long)off / 1000, (unsigned long long)app_off / 1000,
		runnable_vs_wait ? "" : "");
	if (runnable_vs_wait)
		fprintf(stderr, "it_stacks: %s: %-5s runnable %llu us, schedstat wait %llu us\n", py,
			c->name, (unsigned long long)ls_test_ju64(p, "runnable_ns") / 1000,
			(unsigned long long)c->wait_ns / 1000);
	return true;
}

/* Run culprits.py with extra arguments (one culprit: --only NAME) under
 * attach and check that culprit; once more when a check fails, printed
 * with its evidence, as in the test below. The report of the passing run
 * (json_object_put it), and the culprit in *c; a second failure fails.
 * Why a second run here too: beside dd and two CPU hogs, in about 90 runs
 * of these two tests, a 3.14 sleep's busy period held 28.7 ms on CPU where
 * the culprit's clocks saw 0.8 ms (this VM charges a thread 10-28 ms
 * stalls of its virtual CPU, here outside the culprit's clocks), and a 3.8
 * sleep's 32 ms more off CPU than the app's clocks say (a block outside
 * them: schedstat's wait does not see a page fault waiting for the busy
 * disk, and the app cannot measure it without delay accounting,
 * kernel.task_delayacct, off here). Neither came twice in a row. */
static json_object *attach_run_one(const char *py, char **extra, const char *tag,
				   struct culprit *c)
{
	char applog[128], wait_file[128];
	char *app_argv[24] = { (char *)py, CULPRITS, "--log", applog, "--wait-file", wait_file };
	int n = 6;

	for (int i = 0; extra[i] && n < 23; i++)
		app_argv[n++] = extra[i];
	app_argv[n] = NULL;
	for (int attempt = 1; attempt <= 2; attempt++) {
		struct culprit two[2];
		json_object *rep;
		bool ok;

		ls_test_tmp(applog, sizeof(applog), tag);
		ls_test_tmp(wait_file, sizeof(wait_file), "go");
		unlink(wait_file);
		rep = attach_run(app_argv, wait_file, "100ms", tag);
		/* Room for two: the "window" line after the culprit's is read
		 * only while there is (it sets starved_outside_ns). */
		ck_assert_int_eq(load_culprits(applog, two, 2), 1);
		*c = two[0];
		unlink(applog);
		unlink(wait_file);
		ok = check_culprit(py, rep, c, false);
		if (ok)
			return rep;
		fprintf(stderr, "it_stacks: %s: %s: attempt %d: %s; the period: %s\n", py, tag,
			attempt, why_failed, json_object_to_json_string(period_of(rep, c)));
		json_object_put(rep);
	}
	ck_abort_msg("%s: %s (in two runs)", tag, why_failed);
	return NULL;
}

START_TEST(test_culprits_named_with_syscall_and_split)
{
	const char *py = py_list.path[_i];
	char applog[128], wait_file[128];
	char *app_argv[] = { (char *)py, CULPRITS, "--log", applog, "--wait-file", wait_file, NULL };
	char folded[128];
	struct culprit c[8];
	json_object *rep;
	int n;

	bool ok = false;

	/* Once more when a check fails, printed with its evidence; a second
	 * failure fails. Why: in ~60 runs on this loaded 2-core VM one run
	 * missed one culprit's off-CPU stack (3.10, the lock), not seen again
	 * in 11 runs of that culprit alone, with and without CPU hogs. */
	for (int attempt = 1; attempt <= 2 && !ok; attempt++) {
		ls_test_tmp(applog, sizeof(applog), "culprits");
		ls_test_tmp(wait_file, sizeof(wait_file), "go");
		ls_test_tmp(folded, sizeof(folded), "folded");
		unlink(wait_file);
		rep = attach_run_folded(app_argv, wait_file, "100ms", py, folded);
		n = load_culprits(applog, c, 8);
		ck_assert_int_eq(n, 4);
		ok = true;
		for (int i = 0; i < n && ok; i++) {
			ok = check_culprit(py, rep, &c[i], false);
			if (!ok)
				fprintf(stderr, "it_stacks: %s: attempt %d: %s; the period: %s; "
					"stacks: %s\n", py, attempt, why_failed,
					json_object_to_json_string(period_of(rep, &c[i])),
					json_object_to_json_string(ls_test_jget(rep, "stacks")));
		}
		json_object_put(rep);
		if (!ok) {
			unlink(applog);
			unlink(folded);
		}
	}
	ck_assert_msg(ok, "%s (in two runs)", why_failed);
	/* --folded: "comm;outer;...;inner;[mark] weight_us" lines, heaviest
	 * first; each culprit's leaf frame and mark is there with about its
	 * time (on CPU: sampled, so only above half of it). */
	static const char *leaf[4][2] = {
		{ "sleep_culprit_(culprits.py:%d);[blocked:_", "sleep" },
		{ "spin_culprit_(culprits.py:%d);[on-CPU] ", "spin" },
		{ "pipe_culprit_(culprits.py:%d);[blocked:_read] ", "pipe" },
		{ "lock_culprit_(culprits.py:%d);[blocked:_futex] ", "lock" },
	};
	char *text = ls_test_slurp(folded);

	ck_assert_ptr_nonnull(text);
	for (int k = 0; k < 4; k++) {
		const struct culprit *cu = NULL;
		char want[128];
		uint64_t us = 0;

		for (int i = 0; i < n; i++)
			if (!strcmp(c[i].name, leaf[k][1]))
				cu = &c[i];
		ck_assert_ptr_nonnull(cu);
		snprintf(want, sizeof(want), leaf[k][0], cu->lines[0]);
		char *copy = strdup(text), *save = NULL;

		for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			if (strstr(l, want))
				us += strtoull(strrchr(l, ' ') + 1, NULL, 10);
		free(copy);
		/* Its time of that kind: on CPU for the spin (thread_time),
		 * blocked for the others (at most their wall time). */
		uint64_t kind_ns = k == 1 ? cu->on_cpu_ns : cu->duration_ns - cu->on_cpu_ns;

		ck_assert_msg(us * 1000 >= kind_ns / 2 && us * 1000 <= kind_ns * 11 / 10 + 5 * MS,
			      "%s: folded %s: %llu us for %llu us of the culprit", py, want,
			      (unsigned long long)us, (unsigned long long)kind_ns / 1000);
	}
	free(text);
	unlink(folded);
	unlink(applog);
	unlink(wait_file);
}
END_TEST

/* The loop thread and a CPU hog share CPU 0: the spin culprit (150 ms of
 * CPU time) takes ~300 ms, half of it runnable but not running. One
 * interpreter is enough (this is the scheduler programs' test): Debian's
 * when present, else the first found. */
START_TEST(test_runnable_matches_schedstat_wait_under_a_hog)
{
	const char *py = py_list.path[0];
	char applog[128], wait_file[128];
	char *app_argv[] = { "/usr/bin/taskset", "-c", "0", (char *)py, CULPRITS, "--log", applog,
			     "--wait-file", wait_file, NULL };
	char *hog_argv[] = { "/usr/bin/taskset", "-c", "0", "/bin/sh", "-c",
			     "while :; do :; done", NULL };
	struct culprit c[8];
	json_object *rep;
	pid_t hog;
	int n;

	ls_test_tmp(applog, sizeof(applog), "culprits");
	ls_test_tmp(wait_file, sizeof(wait_file), "go");
	unlink(wait_file);
	hog = ls_test_spawn(hog_argv, NULL, NULL);
	ck_assert_int_gt(hog, 0);
	rep = attach_run(app_argv, wait_file, "100ms", "hog");
	ls_test_kill(hog);
	n = load_culprits(applog, c, 8);
	ck_assert_int_eq(n, 4);
	for (int i = 0; i < n; i++) {
		if (!strcmp(c[i].name, "spin")) {
			ck_assert_msg(c[i].wait_ns > 50 * MS,
				      "the hog did not compete: schedstat wait %llu ns",
				      (unsigned long long)c[i].wait_ns);
			ck_assert_msg(check_culprit(py, rep, &c[i], true), "%s", why_failed);
		}
	}
	json_object_put(rep);
	unlink(applog);
	unlink(wait_file);
}
END_TEST

/* Perf events process pid holds (fds linked to "anon_inode:[perf_event]"),
 * less the syscall tracepoints among them (libbpf attaches a tracepoint
 * program through a perf event: the entries of `bpftool perf show -j` with
 * its pid and fd_type "tracepoint"; bpftool does not list cpu-clock
 * events): its cpu-clock sampling events. -1 when unreadable. */
static int sample_events_of(pid_t pid)
{
	char path[64], link[64], buf[4096];
	FILE *p = popen("bpftool perf show -j 2>/dev/null", "r");
	char *text = NULL;
	size_t cap = 0, len = 0, k;
	struct dirent *d;
	json_object *all;
	int n = 0;
	DIR *dir;

	if (!p)
		return -1;
	while ((k = fread(buf, 1, sizeof(buf), p)) > 0) {
		if (len + k + 1 > cap) {
			char *grown = realloc(text, cap = (len + k + 1) * 2);

			if (!grown)
				break;
			text = grown;
		}
		memcpy(text + len, buf, k);
		len += k;
	}
	pclose(p);
	if (!text)
		return -1;
	text[len] = 0;
	all = json_tokener_parse(text);
	free(text);
	if (!all || !json_object_is_type(all, json_type_array)) {
		json_object_put(all);
		return -1;
	}
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		json_object *e = json_object_array_get_idx(all, i);
		const char *type = json_object_get_string(ls_test_jget(e, "fd_type"));

		if (ls_test_ju64(e, "pid") == (uint64_t)pid && type && !strcmp(type, "tracepoint"))
			n--;
	}
	json_object_put(all);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir))) {
		char fd[64 + sizeof(d->d_name)];
		ssize_t r;

		snprintf(fd, sizeof(fd), "%s/%s", path, d->d_name);
		r = readlink(fd, link, sizeof(link) - 1);
		if (r > 0) {
			link[r] = 0;
			n += strcmp(link, "anon_inode:[perf_event]") == 0;
		}
	}
	closedir(dir);
	return n;
}

/* 5 ms blocks every 50 ms, threshold 100 ms: stacks start at 25 ms into a
 * busy period, which never comes. Nothing samples either: the per-thread
 * cpu-clock events (which make every context switch of the thread dearer)
 * are opened only while a busy period is past the stack-after time, so a
 * healthy loop's tracer holds none (it held one per thread of the target
 * before: the check fails on that code). */
START_TEST(test_no_stack_walk_while_healthy)
{
	const char *py = py_list.path[0];
	char applog[128];
	/* The app outlives the 2 s watch: its exit (interpreter teardown, one
	 * busy period of tens of ms that no poll ends) stays out of it. */
	char *app_argv[] = { (char *)py, BLOCKING, "--log", applog, "--every", "0.05", "--sleep",
			     "0.005", "--duration", "30", NULL };
	char appout[128], spid[32], line[256];
	struct ls_test_out o = { 0 };
	json_object *rep, *stacks;
	pid_t app, tracer;
	int status, perf_max = 0;

	ls_test_tmp(applog, sizeof(applog), "applog");
	app = ls_test_start_target(app_argv, appout, sizeof(appout), spid, sizeof(spid), 10000);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-d", "4s", "--json", "-q", "--threshold",
			 "100ms", NULL };
	ls_test_tmp(o.out, sizeof(o.out), "out");
	ls_test_tmp(o.err, sizeof(o.err), "err");
	tracer = ls_test_spawn(argv, o.out, o.err);
	ck_assert_int_gt(tracer, 0);
	/* Attached ("attached" on stderr, as -q leaves it), then looked at
	 * every 50 ms for a second and a half, by the clock: beside two CPU
	 * hogs and a dd, 30 looks (each a bpftool run) once outlasted the
	 * tracer's -d, and a look at an exited tracer finds no fds. */
	ck_assert_int_eq(ls_test_wait_substr(o.err, "attached", 20000, line, sizeof(line)), 0);
	for (uint64_t t0 = now_ns(); now_ns() - t0 < 1500 * MS;) {
		int k = sample_events_of(tracer);

		ck_assert_int_ge(k, 0);
		perf_max = k > perf_max ? k : perf_max;
		usleep(50000);
	}
	ck_assert_int_eq(ls_test_wait(tracer, 30000, &status), 0);
	ck_assert_int_eq(status, 0);
	o.stdout_text = ls_test_slurp(o.out);
	o.stderr_text = ls_test_slurp(o.err);
	ls_test_kill(app);
	unlink(appout);
	rep = ls_test_json_last(o.out, "report");
	ck_assert_ptr_nonnull(rep);
	stacks = ls_test_jget(rep, "stacks");
	ck_assert_ptr_nonnull(stacks);
	/* The walker was set up for the app: zero walks means something. */
	ck_assert_int_eq(json_object_get_int(ls_test_jget(stacks, "processes")), 1);
	ck_assert_uint_eq(json_object_array_length(ls_test_jget(rep, "slow_busy")), 0);
	/* The claim holds for busy periods below the stack-after time (25 ms
	 * here). A machine loaded enough to stretch a 5 ms block past 25 ms
	 * (seen at load average 11 on 2 cores, other suites beside this one)
	 * takes stacks there, rightly: said, not failed. */
	json_object *threads = ls_test_jget(rep, "threads");
	uint64_t busy_max = 0;

	for (size_t i = 0; i < json_object_array_length(threads); i++) {
		uint64_t m = ls_test_ju64(ls_test_jget(json_object_array_get_idx(threads, i), "busy"),
					  "max_ns");

		busy_max = m > busy_max ? m : busy_max;
	}
	ck_assert_int_gt(busy_max, 0);
	if (busy_max >= 25 * MS) {
		fprintf(stderr, "it_stacks: healthy-loop claim not checked: a busy period reached "
			"%llu us (overloaded machine); %llu walks\n",
			(unsigned long long)busy_max / 1000,
			(unsigned long long)ls_test_ju64(stacks, "walks"));
	} else {
		ck_assert_msg(ls_test_ju64(stacks, "walks") == 0,
			      "%llu stack walks in a healthy loop (busy max %llu us)",
			      (unsigned long long)ls_test_ju64(stacks, "walks"),
			      (unsigned long long)busy_max / 1000);
		ck_assert_msg(perf_max == 0, "%d cpu-clock events held for a healthy loop",
			      perf_max);
		fprintf(stderr, "it_stacks: healthy loop (busy max %llu us, threshold 100 ms): "
			"0 stack walks, 0 sampling events\n", (unsigned long long)busy_max / 1000);
	}
	json_object_put(rep);
	ls_test_out_free(&o);
	unlink(applog);
}
END_TEST

/* 100 extra levels, each a call through C (reduce(): on 3.12+ a shim frame
 * between Python ones, which the walk skips but which take its turns): the
 * innermost LS_STACK_MAX (64) frames are kept, the stack is marked
 * truncated, and the culprit is still its innermost frame. On every
 * interpreter. */
START_TEST(test_deep_stack_is_truncated)
{
	const char *py = py_list.path[_i];
	char *extra[] = { "--only", "sleep", "--depth", "100", "--via-c", NULL };
	struct culprit c;
	json_object *rep, *st;

	rep = attach_run_one(py, extra, "deep", &c);
	st = heaviest(period_of(rep, &c), "off_cpu");
	ck_assert_int_eq(json_object_array_length(ls_test_jget(st, "frames")), 64);
	ck_assert(json_object_get_boolean(ls_test_jget(st, "truncated")));
	json_object_put(rep);
}
END_TEST

/* 100 idle threads started before the loop: the loop thread's state is the
 * last of 101 in the interpreter's list (new ones are prepended), and its
 * stack is still found. And a shallow stack through C is complete (not
 * truncated: it ends at <module>). */
START_TEST(test_loop_thread_found_among_many)
{
	const char *py = py_list.path[_i];
	char *extra[] = { "--only", "sleep", "--threads", "100", "--depth", "3", "--via-c", NULL };
	struct culprit c;
	json_object *rep, *st, *frames;

	rep = attach_run_one(py, extra, "threads", &c);
	st = heaviest(period_of(rep, &c), "off_cpu");
	frames = ls_test_jget(st, "frames");
	ck_assert(!json_object_get_boolean(ls_test_jget(st, "truncated")));
	ck_assert_str_eq(json_object_get_string(ls_test_jget(
		json_object_array_get_idx(frames, json_object_array_length(frames) - 1), "function")),
		"<module>");
	json_object_put(rep);
}
END_TEST

/* CPython 3.7 has no stack walker offsets: one line says stacks are off
 * and why, and slow periods still come with their syscall and times. */
START_TEST(test_unsupported_python_keeps_syscall_and_times)
{
	char applog[128], appout[128], out[128], err[128], spid[32], line[256];
	/* 6 s of blocks, every 0.4 s: under load attach's set-up took longer
	 * than the 1.5 s this once ran for, and saw no block at all. */
	char *app_argv[] = { py_list.py37, BLOCKING, "--log", applog, "--every", "0.4", "--sleep",
			     "0.15", "--duration", "6", NULL };
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-d", "15s", "--json", "-q", NULL };
	json_object *rep, *slow, *e;
	pid_t app, ls;
	int status;

	if (!py_list.py37[0]) {
		fprintf(stderr, "it_stacks: SKIP the unsupported-version test: no pyenv 3.7\n");
		return;
	}
	ls_test_tmp(applog, sizeof(applog), "applog");
	ls_test_tmp(out, sizeof(out), "out");
	ls_test_tmp(err, sizeof(err), "err");
	app = ls_test_start_target(app_argv, appout, sizeof(appout), spid, sizeof(spid), 10000);
	ls = ls_test_spawn(argv, out, err);
	ck_assert_int_eq(ls_test_wait(app, 30000, &status), 0);
	ck_assert_int_eq(ls_test_wait(ls, 10000, &status), 0);
	ck_assert_int_eq(status, 6);
	ck_assert_int_eq(ls_test_wait_substr(err, "no Python stacks", 0, line, sizeof(line)), 0);
	ck_assert_msg(strstr(line, "3.7"), "the line does not say why: %s", line);
	rep = ls_test_json_last(out, "report");
	slow = ls_test_jget(rep, "slow_busy");
	ck_assert_int_ge(json_object_array_length(slow), 1);
	e = json_object_array_get_idx(slow, 0);
	ck_assert_ptr_nonnull(json_object_get_string(ls_test_jget(e, "blocked_syscall")));
	ck_assert_int_ge(ls_test_ju64(e, "blocked_ns"), 140 * MS);
	ck_assert_int_eq(json_object_array_length(ls_test_jget(e, "stacks")), 0);
	fprintf(stderr, "it_stacks: 3.7: \"%s\"; slow period still blocked %llu us in %s\n", line,
		(unsigned long long)ls_test_ju64(e, "blocked_ns") / 1000,
		json_object_get_string(ls_test_jget(e, "blocked_syscall")));
	json_object_put(rep);
	unlink(applog);
	unlink(appout);
	unlink(out);
	unlink(err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_stacks");
	TCase *tc = tcase_create("stacks");

	/* 3.8 on: the stack walker's offsets table starts there. */
	ls_test_discover_pythons("it_stacks", 8, &py_list);
	if (py_list.n == 0) {
		fprintf(stderr, "it_stacks: no Python interpreter to test\n");
		return EXIT_FAILURE;
	}
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_culprits_named_with_syscall_and_split, 0, py_list.n);
	tcase_add_test(tc, test_runnable_matches_schedstat_wait_under_a_hog);
	tcase_add_test(tc, test_no_stack_walk_while_healthy);
	tcase_add_loop_test(tc, test_deep_stack_is_truncated, 0, py_list.n);
	tcase_add_loop_test(tc, test_loop_thread_found_among_many, 0, py_list.n);
	tcase_add_test(tc, test_unsupported_python_keeps_syscall_and_times);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
