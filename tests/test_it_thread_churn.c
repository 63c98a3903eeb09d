// SPDX-License-Identifier: MIT
/*
 * Integration: a target that churns loop threads (issue #12 item 2).
 *
 * The churner starts 5000 short-lived threads, 64 alive at a time, each
 * polling its own epoll fd every 10 ms for 50 ms; once it has started 4200
 * (more than the kernel's whole thread table, LS_MAX_THREADS 4096) it
 * creates a flag file, and a second app (an asyncio loop) starts. Before
 * the fix the table was never pruned while a target lived: the second app
 * got no entry ("no loop thread seen"; in the daemon, no thread stats for
 * 5-20 s, RSS 7.4 -> 92 MB, /metrics 24-27 MB).
 *
 * Daemon (--thread-quota 32, --interval 250ms): the app's thread stats
 * (loopscope_iterations_total > 0 for its pid) are on /metrics within 1 s
 * of the app printing its pid (its loop starts right after: the engine
 * attaches it from its exec event and the next window, <= 250 ms later,
 * has its thread; 1 s is the documented bound); the churner's untracked
 * and pruned counters are exported and nonzero (64 alive > 32); the
 * daemon's RSS grows by less than 16 MiB over the run (measured: +2 to
 * +4 MiB; the bound is the engine's copy of the quota's threads, ~16 KiB
 * each, twice, plus allocator slack) and /metrics stays under 1 MiB (32
 * threads' series, ~2.5 KiB each, and the app's).
 *
 * CLI: `attach -p CHURNER,APP --thread-quota 32` over the same run reports
 * the app's loop thread with its iterations and, for the churner, threads
 * untracked and pruned, more than the whole table between them.
 *
 * run: `loopscope run` over the churner alone counts more loop threads in
 * its report than the whole table (see the test).
 *
 * Against main before the fix (its binaries, without --thread-quota): the
 * app's stats came after 4.2 s, RSS 7.5 -> 157 MB, /metrics 26 MB; attach's
 * report had no thread of the app.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/loopscope.h"
#include "daemon.h"
#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define PY "/usr/bin/python3.11"

static const char churn_py[] =
	"import os, select, sys, threading, time\n"
	"print('pid', os.getpid(), flush=True)\n"
	"go, flag = sys.argv[1], sys.argv[2]\n"
	"while not os.path.exists(go):\n"
	"    time.sleep(0.02)\n"
	"sem = threading.Semaphore(64)\n"
	"def worker():\n"
	"    try:\n"
	"        ep = select.epoll()\n"
	"        end = time.monotonic() + 0.05\n"
	"        while time.monotonic() < end:\n"
	"            ep.poll(0.01)\n"
	"        ep.close()\n"
	"    finally:\n"
	"        sem.release()\n"
	"for i in range(5000):\n"
	"    sem.acquire()\n"
	"    threading.Thread(target=worker, daemon=True).start()\n"
	"    if i == 4200:\n"
	"        open(flag, 'w').close()\n"
	"for _ in range(64):\n"
	"    sem.acquire()\n"
	"print('started 5000', flush=True)\n"
	"time.sleep(float(sys.argv[3]))\n";

/* The app: prints its pid, waits for the flag argv[1] ("-": none;
 * time.sleep, no epoll), then runs an asyncio loop with a 10 ms timer for
 * argv[2] seconds. */
static const char app_py[] =
	"import asyncio, os, sys, time\n"
	"print('pid', os.getpid(), flush=True)\n"
	"flag = sys.argv[1]\n"
	"while flag != '-' and not os.path.exists(flag):\n"
	"    time.sleep(0.02)\n"
	"async def main():\n"
	"    end = time.monotonic() + float(sys.argv[2])\n"
	"    while time.monotonic() < end:\n"
	"        await asyncio.sleep(0.01)\n"
	"asyncio.run(main())\n";

struct scene {
	char dir[64], churn[128], app[128], go[128], flag[128];
};

static void scene_make(struct scene *s)
{
	FILE *f;

	snprintf(s->dir, sizeof(s->dir), "/tmp/ls-it-churn-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(s->dir));
	snprintf(s->churn, sizeof(s->churn), "%s/churn.py", s->dir);
	snprintf(s->app, sizeof(s->app), "%s/app.py", s->dir);
	snprintf(s->go, sizeof(s->go), "%s/go", s->dir);
	snprintf(s->flag, sizeof(s->flag), "%s/flag", s->dir);
	f = fopen(s->churn, "w");
	ck_assert_ptr_nonnull(f);
	fputs(churn_py, f);
	fclose(f);
	f = fopen(s->app, "w");
	ck_assert_ptr_nonnull(f);
	fputs(app_py, f);
	fclose(f);
}

static void scene_clean(struct scene *s)
{
	unlink(s->churn);
	unlink(s->app);
	unlink(s->go);
	unlink(s->flag);
	rmdir(s->dir);
}

static void touch(const char *path)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fclose(f);
}

/* The value of the first series of name on page whose labels contain
 * label (e.g. pid="42"); -1 when there is none. */
static long long series(const char *page, const char *name, const char *label)
{
	const char *p = page;
	size_t n = strlen(name);

	while ((p = strstr(p, name))) {
		const char *eol = strchr(p, '\n'), *lab;

		if ((p == page || p[-1] == '\n') && p[n] == '{' &&
		    (lab = strstr(p, label)) && (!eol || lab < eol)) {
			const char *v = strchr(p, '}');

			if (v && (!eol || v < eol))
				return strtoll(v + 1, NULL, 10);
		}
		p += n;
	}
	return -1;
}

START_TEST(test_daemon_churn_does_not_starve_a_second_app)
{
	struct scene s;
	char listen[64], sock[200], err[200], rule1[300], rule2[300], out_c[128], out_a[128];
	char spid_c[32], spid_a[32], label[48];
	long rss0, rss_max = 0;
	size_t page_max = 0;
	long long iters = -1, untracked, pruned;
	uint64_t t_app, t_seen = 0;
	pid_t d, c, a;
	int port, st;

	if (access(PY, X_OK)) {
		fprintf(stderr, "it_thread_churn: SKIP daemon: no %s\n", PY);
		return;
	}
	scene_make(&s);
	port = ls_test_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", s.dir);
	snprintf(err, sizeof(err), "%s/daemon.err", s.dir);
	snprintf(rule1, sizeof(rule1), "service=churn,cmdline=*%s/churn.py*", s.dir);
	snprintf(rule2, sizeof(rule2), "service=app,cmdline=*%s/app.py*", s.dir);
	{
		char *args[] = { "--rule", rule1, "--rule", rule2, "--listen", listen, "--socket", sock,
				 "--interval", "250ms", "--thread-quota", "32", NULL };

		d = ls_test_start_daemon(LOOPSCOPED, args, err, 20000);
	}
	rss0 = ls_test_rss_kb(d);
	{
		char *argv[] = { PY, s.churn, s.go, s.flag, "3", NULL };

		c = ls_test_start_target(argv, out_c, sizeof(out_c), spid_c, sizeof(spid_c), 10000);
	}
	ck_assert_int_eq(ls_test_wait_substr(err, "service churn", 10000, NULL, 0), 0);
	touch(s.go);
	/* The app starts once the churner has started 4200 threads. */
	for (int i = 0; access(s.flag, F_OK); i++) {
		ck_assert_msg(i < 3000, "the churner did not start 4200 threads in 60 s");
		usleep(20000);
	}
	{
		char *argv[] = { PY, s.app, "-", "8", NULL };

		a = ls_test_start_target(argv, out_a, sizeof(out_a), spid_a, sizeof(spid_a), 10000);
	}
	t_app = ls_sys_now_ns();
	snprintf(label, sizeof(label), "pid=\"%s\"", spid_a);
	/* Scrape until the churner is done, the app's stats first. */
	for (int i = 0; ls_test_wait_substr(out_c, "started 5000", 10, NULL, 0) || !t_seen; i++) {
		char *page = NULL;

		ck_assert_msg(i < 600, "the churner did not finish in 60 s");
		if (ls_test_http_get(port, "/metrics", &page, 5000) == 200) {
			if (strlen(page) > page_max)
				page_max = strlen(page);
			if (!t_seen && (iters = series(page, "loopscope_iterations_total", label)) > 0)
				t_seen = ls_sys_now_ns();
		}
		free(page);
		long rss = ls_test_rss_kb(d);

		if (rss > rss_max)
			rss_max = rss;
		if (t_seen)
			usleep(100000);
	}
	FILE *lf = fopen("/proc/loadavg", "r");
	char load[64] = "?";

	if (lf) {
		if (fgets(load, sizeof(load), lf))
			load[strcspn(load, "\n")] = 0;
		fclose(lf);
	}
	{
		char *page = NULL;
		char lc[48];

		ck_assert_int_eq(ls_test_http_get(port, "/metrics", &page, 5000), 200);
		snprintf(lc, sizeof(lc), "pid=\"%s\"", spid_c);
		untracked = series(page, "loopscope_threads_untracked_total", lc);
		pruned = series(page, "loopscope_threads_pruned_total", lc);
		free(page);
	}
	fprintf(stderr, "it_thread_churn: daemon: app stats after %.0f ms (iterations %lld); churner "
		"untracked %lld, pruned %lld; RSS %ld -> max %ld kB; /metrics max %zu bytes; load %s\n",
		(t_seen - t_app) / 1e6, iters, untracked, pruned, rss0, rss_max, page_max, load);
	ck_assert_msg(t_seen - t_app < 1000000000ULL, "the app's thread stats came after %.0f ms",
		      (t_seen - t_app) / 1e6);
	ck_assert_int_gt(untracked, 0);
	ck_assert_int_gt(pruned, 0);
	ck_assert_int_lt(rss_max - rss0, 16 * 1024);
	ck_assert_uint_lt(page_max, 1024 * 1024);
	ck_assert_int_eq(ls_test_wait(c, 20000, &st), 0);
	ck_assert_int_eq(ls_test_wait(a, 20000, &st), 0);
	ls_test_kill(d);
	unlink(out_c);
	unlink(out_a);
	unlink(sock);
	unlink(err);
	scene_clean(&s);
}
END_TEST

START_TEST(test_cli_attach_reports_the_second_app)
{
	struct scene s;
	char out_c[128], out_a[128], spid_c[32], spid_a[32], pids[80], lout[200], lerr[200];
	json_object *rep, *threads, *table;
	bool app_seen = false;
	uint64_t app_iters = 0, untracked = 0, pruned = 0;
	pid_t c, a, ls;
	int st = -1;

	if (access(PY, X_OK)) {
		fprintf(stderr, "it_thread_churn: SKIP cli: no %s\n", PY);
		return;
	}
	scene_make(&s);
	{
		char *argv[] = { PY, s.churn, s.go, s.flag, "4", NULL };

		c = ls_test_start_target(argv, out_c, sizeof(out_c), spid_c, sizeof(spid_c), 10000);
	}
	/* The app exists when attach starts; its loop starts at the flag. */
	{
		char *argv[] = { PY, s.app, s.flag, "6", NULL };

		a = ls_test_start_target(argv, out_a, sizeof(out_a), spid_a, sizeof(spid_a), 10000);
	}
	snprintf(pids, sizeof(pids), "%s,%s", spid_c, spid_a);
	snprintf(lout, sizeof(lout), "%s/attach.out", s.dir);
	snprintf(lerr, sizeof(lerr), "%s/attach.err", s.dir);
	{
		char *argv[] = { LOOPSCOPE, "attach", "-p", pids, "-d", "14s", "-q", "--json",
				 "--thread-quota", "32", "--no-stacks", NULL };

		ls = ls_test_spawn(argv, lout, lerr);
	}
	ck_assert_int_eq(ls_test_wait_substr(lerr, "attached to", 20000, NULL, 0), 0);
	touch(s.go);
	ck_assert_int_eq(ls_test_wait(ls, 40000, &st), 0);
	rep = ls_test_json_last(lout, "report");
	ck_assert_msg(rep != NULL, "no report; stderr: %s", ls_test_slurp(lerr));
	threads = ls_test_jget(rep, "threads");
	for (size_t i = 0; threads && i < json_object_array_length(threads); i++) {
		json_object *t = json_object_array_get_idx(threads, i);

		if ((int)ls_test_ju64(t, "pid") == atoi(spid_a)) {
			app_seen = true;
			app_iters = ls_test_ju64(t, "iterations");
		}
	}
	table = ls_test_jget(rep, "thread_table");
	for (size_t i = 0; table && i < json_object_array_length(table); i++) {
		json_object *t = json_object_array_get_idx(table, i);

		if ((int)ls_test_ju64(t, "pid") == atoi(spid_c)) {
			untracked = ls_test_ju64(t, "untracked");
			pruned = ls_test_ju64(t, "pruned");
		}
	}
	fprintf(stderr, "it_thread_churn: cli: exit %d; app thread seen %d with %llu iterations; "
		"churner untracked %llu, pruned %llu\n", st, app_seen, (unsigned long long)app_iters,
		(unsigned long long)untracked, (unsigned long long)pruned);
	/* Exit 6: the churner exits during the run (after its 5000 threads). */
	ck_assert_msg(st == 0 || st == 6, "attach exited %d", st);
	ck_assert_msg(app_seen, "the app's loop thread is not in the report");
	/* 10 ms timer for >= 4 s of the run: >= 100 iterations with margin. */
	ck_assert_uint_gt(app_iters, 100);
	ck_assert_uint_gt(untracked, 0);
	/* More threads than the whole table passed through it. */
	ck_assert_uint_gt(pruned + untracked, 4096);
	json_object_put(rep);
	ls_test_kill(c);
	ls_test_kill(a);
	unlink(out_c);
	unlink(out_a);
	unlink(lout);
	unlink(lerr);
	scene_clean(&s);
}
END_TEST

/* `loopscope run` over the churner itself (its go file made first, no app):
 * run prunes the table as attach does and folds each exited thread into
 * the report as it leaves. Its 5000 threads are each a loop thread (five
 * polls); with 64 alive at a time and run's pruning every 200 ms, the
 * quota (512) holds them, and the report counts more loop threads than the
 * whole table (4096). Without the pruning the quota filled after ~512 and
 * the rest were untracked: the report said ~512. */
START_TEST(test_run_prunes_and_reports_churned_threads)
{
	struct scene s;
	char jout[200], lout[200], lerr[200];
	json_object *rep, *procs;
	long long loop_threads = -1;
	pid_t ls;
	int st = -1;

	if (access(PY, X_OK)) {
		fprintf(stderr, "it_thread_churn: SKIP run: no %s\n", PY);
		return;
	}
	scene_make(&s);
	touch(s.go);
	snprintf(jout, sizeof(jout), "%s/run.json", s.dir);
	snprintf(lout, sizeof(lout), "%s/run.out", s.dir);
	snprintf(lerr, sizeof(lerr), "%s/run.err", s.dir);
	{
		char *argv[] = { LOOPSCOPE, "run", "--mode", "light", "--no-stacks", "-q",
				 "--json-out", jout, "--", PY, s.churn, s.go, s.flag, "0", NULL };

		ls = ls_test_spawn(argv, lout, lerr);
	}
	ck_assert_int_gt(ls, 0);
	ck_assert_int_eq(ls_test_wait(ls, 90000, &st), 0);
	ck_assert_msg(st == 0, "run exited %d: %s", st, ls_test_slurp(lerr));
	char *text = ls_test_slurp(jout);

	ck_assert_ptr_nonnull(text);
	rep = json_tokener_parse(text);
	free(text);
	ck_assert_ptr_nonnull(rep);
	procs = ls_test_jget(rep, "processes");
	for (size_t i = 0; procs && i < json_object_array_length(procs); i++) {
		json_object *p = json_object_array_get_idx(procs, i);
		const char *cmd = json_object_get_string(ls_test_jget(p, "cmdline"));

		if (cmd && strstr(cmd, "churn.py"))
			loop_threads = (long long)ls_test_ju64(p, "loop_threads");
	}
	fprintf(stderr, "it_thread_churn: run: the churner's report counts %lld loop threads of "
		"5000\n", loop_threads);
	ck_assert_int_gt(loop_threads, 4096);
	ck_assert_int_le(loop_threads, 5000);
	json_object_put(rep);
	unlink(jout);
	unlink(lout);
	unlink(lerr);
	scene_clean(&s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_thread_churn");
	TCase *tc = tcase_create("churn");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_daemon_churn_does_not_starve_a_second_app);
	tcase_add_test(tc, test_cli_attach_reports_the_second_app);
	tcase_add_test(tc, test_run_prunes_and_reports_churned_threads);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
