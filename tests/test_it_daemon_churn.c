// SPDX-License-Identifier: MIT
/*
 * Integration: process churn under loopscoped. 50 short-lived Python
 * processes that a rule matches (precise mode: a uprobe pair each) start
 * and exit in waves; each must be attached from its exec event and
 * measured (its 120 ms blocking callback seen); after they are gone and the
 * grace period passed, the daemon holds as many BPF links as before and its
 * RSS grew less than 10 %.
 */
#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>

#include <json-c/json.h>

#include "daemon.h"
#include "loopscope/ctl.h"
#include "loopscope/loopscope.h"
#include "pythons.h"
#include "spawn.h"

#define APP LS_SOURCE_DIR "/examples/python/blocking_sleep.py"
#define PYTHON "/usr/bin/python3"
#define NCHURN 50
#define WAVE 10

static json_object *ctl(const char *sock, const char *req_text)
{
	json_object *req = json_tokener_parse(req_text), *resp = NULL;
	int fd = ls_ctl_connect(sock);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ls_ctl_call(fd, req, &resp, 5000), 0);
	close(fd);
	json_object_put(req);
	return resp;
}

/* Targets the daemon lists (alive or in their grace period). */
static int targets_listed(const char *sock)
{
	json_object *r = ctl(sock, "{\"cmd\":\"list\"}"), *t;
	int n;

	ck_assert(json_object_object_get_ex(r, "targets", &t));
	n = (int)json_object_array_length(t);
	json_object_put(r);
	return n;
}

/* attached_ns - exec_ns of pid in the daemon's list (its exec event to its
 * attach), UINT64_MAX when it is not listed, NO_EXEC when it was not found
 * by its exec event (exec_ns 0: a /proc scan) or the times make no sense. */
#define NO_EXEC (UINT64_MAX - 1)
static uint64_t attached_at[NCHURN]; /* attached_ns of each app of the churn, 0: not seen */

static uint64_t attach_latency(json_object *list, pid_t pid, uint64_t *attached)
{
	json_object *t, *e, *v;

	if (!json_object_object_get_ex(list, "targets", &t))
		return 0;
	for (size_t i = 0; i < json_object_array_length(t); i++) {
		e = json_object_array_get_idx(t, i);
		if (json_object_object_get_ex(e, "pid", &v) && json_object_get_int(v) == pid) {
			uint64_t at, ex;

			json_object_object_get_ex(e, "attached_ns", &v);
			at = json_object_get_uint64(v);
			*attached = at;
			json_object_object_get_ex(e, "exec_ns", &v);
			ex = json_object_get_uint64(v);
			return ex && at > ex ? at - ex : NO_EXEC;
		}
	}
	return UINT64_MAX;
}

/* The daemon's slow events read as they come ({"cmd":"slow","after":seq}):
 * it keeps only the last LS_MON_SLOW_KEPT (256), and the warm-up, 50 apps
 * with two 120 ms blocks each (a busy period and a callback event per
 * block in precise mode) and what a loaded machine stretches past the
 * threshold fill that: read once at the end, the first wave's events were
 * gone (2 of 50 apps "not measured" at load 28, 256 events kept). Reading
 * every 50 ms and asserting that no sequence number is skipped keeps the
 * check whole: every event the daemon made is seen. */
struct slow_follow {
	uint64_t after;
	size_t nread;
	bool started; /* the first read (the warm-up's) starts anywhere */
	bool found[NCHURN], named[NCHURN];
};

static void follow_slow(const char *sock, struct slow_follow *fw, const pid_t *apps, int napps)
{
	char req[96];
	json_object *r, *ev;

	snprintf(req, sizeof(req), "{\"cmd\":\"slow\",\"after\":%llu}", (unsigned long long)fw->after);
	r = ctl(sock, req);
	ck_assert(json_object_object_get_ex(r, "events", &ev));
	for (size_t j = 0; j < json_object_array_length(ev); j++) {
		json_object *e = json_object_array_get_idx(ev, j), *v;
		uint64_t seq;
		int pid;

		ck_assert(json_object_object_get_ex(e, "seq", &v));
		seq = json_object_get_uint64(v);
		ck_assert_msg(seq == fw->after + 1 || !fw->started, "slow event %llu read after %llu: the daemon dropped "
			      "events before they were read", (unsigned long long)seq,
			      (unsigned long long)fw->after);
		fw->after = seq;
		fw->started = true;
		fw->nread++;
		pid = json_object_object_get_ex(e, "pid", &v) ? json_object_get_int(v) : 0;
		for (int i = 0; i < napps; i++) {
			if (apps[i] != pid)
				continue;
			fw->found[i] = true;
			fw->named[i] |= json_object_object_get_ex(e, "kind", &v) &&
					!strcmp(json_object_get_string(v), "callback");
		}
	}
	fw->started = true;
	json_object_put(r);
}

/* Whether churn app i (its log: one JSON line per block, start_ns on
 * CLOCK_MONOTONIC) blocked at least 10 ms after its attach: a busy period
 * begun before the daemon took the process cannot be its to see. */
static bool blocked_after_attach(const char *dir, int i)
{
	char path[600], buf[512];
	bool after = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/churn%d.log", dir, i);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(buf, sizeof(buf), f)) {
		json_object *o = json_tokener_parse(buf), *v;

		if (o && json_object_object_get_ex(o, "start_ns", &v) && attached_at[i] &&
		    json_object_get_uint64(v) >= attached_at[i] + 10000000ULL)
			after = true;
		json_object_put(o);
	}
	fclose(f);
	return after;
}

/* Start n short-lived apps (1.2 s each, one 120 ms block at 0.4 s). */
static void start_apps_for(const char *dir, int first, int n, pid_t *pids, const char *duration)
{
	for (int i = 0; i < n; i++) {
		char log[600];
		char *argv[] = { PYTHON, APP, "--log", log, "--every", "0.4", "--sleep", "0.12",
				 "--duration", (char *)duration, NULL };

		snprintf(log, sizeof(log), "%s/churn%d.log", dir, first + i);
		pids[i] = ls_test_spawn(argv, NULL, NULL);
		ck_assert_int_gt(pids[i], 0);
	}
}

static void start_apps(const char *dir, int first, int n, pid_t *pids)
{
	start_apps_for(dir, first, n, pids, "1.2");
}

static void reap_all(pid_t *pids, int n)
{
	for (int i = 0; i < n; i++) {
		int st;

		if (ls_test_wait(pids[i], 15000, &st))
			ck_abort_msg("app %d did not exit", pids[i]);
		pids[i] = 0;
	}
}

/* Wait until the daemon holds at most `links` BPF links. */
static void wait_links(pid_t daemon, int links, int timeout_ms)
{
	for (int t = 0; t < timeout_ms && ls_test_bpf_links_of(daemon) > links; t += 100)
		usleep(100000);
}

/* Wait until the daemon lists no target (all exited, grace over). */
static void wait_empty(const char *sock, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 100) {
		if (targets_listed(sock) == 0)
			return;
		usleep(100000);
	}
	ck_abort_msg("exited targets still listed after %d ms", timeout_ms);
}

START_TEST(test_churn_all_seen_no_leak)
{
	struct ls_test_daemon d;
	char rule[600], *log;
	pid_t daemon, warm[5], apps[NCHURN] = { 0 };
	int links0, links1, links_mid = 0, seen = 0, measured = 0, listed = 0, precise = 0, measurable = 0,
	    no_exec = 0;
	uint64_t worst_ns = 0, worst_wait_ns = 0;
	int late = 0;
	long rss0, rss1;
	json_object *r;
	struct slow_follow fw = { 0 };

	ls_test_daemon_init(&d, "dchurn");
	snprintf(rule, sizeof(rule), "service=churn,cmdline=*%s/churn*,mode=precise", d.dir);
	{
		/* grace 1 s; a /proc scan only every minute: discovery here is
		 * the exec events' job. */
		char *args[] = { "--rule", rule, "--socket", d.sock, "--listen", "none", "--grace", "1s",
				 "--scan", "60s", NULL };

		daemon = ls_test_daemon_start(&d, args);
	}
	/* Links: the tracepoints only, before any target. Warm-up: the
	 * precise-mode BPF object loads with the first Python target; the RSS
	 * baseline is taken after it, once no target and no uprobe is left. */
	links0 = ls_test_bpf_links_of(daemon);
	/* Long enough for slow events after their Python stacks are set up:
	 * the stacks' one-time allocations (code cache, ring pages) belong to
	 * the baseline too. */
	start_apps_for(d.dir, 1000, 5, warm, "3");
	reap_all(warm, 5);
	wait_empty(d.sock, 10000);
	wait_links(daemon, links0, 60000);
	rss0 = ls_test_rss_kb(daemon);
	/* The warm-up's slow events: read, not counted (no app of the churn). */
	follow_slow(d.sock, &fw, apps, 0);
	fw.nread = 0;
	fprintf(stderr, "it_daemon_churn: baseline: %d BPF links, RSS %ld kB; machine: %d links\n",
		links0, rss0, ls_test_bpf_links_total());

	for (int w = 0; w < NCHURN / WAVE; w++) {
		uint64_t lat[WAVE], t0 = ls_sys_now_ns(), waited;
		struct ls_test_runq q;
		int nlisted = 0;

		ls_test_runq_start(&q, daemon);
		start_apps(d.dir, w * WAVE, WAVE, apps + w * WAVE);
		for (int i = 0; i < WAVE; i++)
			lat[i] = UINT64_MAX;
		/* Waves start 0.4 s apart (they overlap: each app lives 1.2 s);
		 * the list is read until every app of the wave is in it (each
		 * stays listed for its 1.2 s and the 1 s grace after), at most
		 * 5 s plus what the daemon waited for a CPU meanwhile and the
		 * longest any app of the wave waited since its fork (its exec
		 * comes that late: a whole wave not listed in 6 s at load 37,
		 * each attached 1.7 s at most after its exec), 15 s at most
		 * (the test's 120 s). How late each attach was is the latency
		 * below, measured from its exec: a loaded machine may start
		 * the processes late, which is not the daemon's doing. */
		for (;;) {
			uint64_t appwait = 0, el = ls_sys_now_ns() - t0;

			for (int i = 0; i < WAVE; i++) {
				uint64_t a = ls_test_runnable_ns(apps[w * WAVE + i], 0);

				appwait = a > appwait ? a : appwait;
			}
			if (el >= 400000000ULL &&
			    (nlisted == WAVE || el >= 15000000000ULL ||
			     el >= 5000000000ULL + ls_test_runq_waited_ns(&q) + appwait))
				break;
			usleep(50000);
			r = ctl(d.sock, "{\"cmd\":\"list\"}");
			nlisted = 0;
			for (int i = 0; i < WAVE; i++) {
				if (lat[i] == UINT64_MAX)
					lat[i] = attach_latency(r, apps[w * WAVE + i], &attached_at[w * WAVE + i]);
				nlisted += lat[i] != UINT64_MAX;
			}
			json_object_put(r);
			follow_slow(d.sock, &fw, apps, (w + 1) * WAVE);
			ls_test_runq_sample(&q);
		}
		/* Discovery latency: from the kernel's exec event to the
		 * attach (CLOCK_MONOTONIC on both sides). Its bound (1 s)
		 * widens by what the daemon's threads waited for a CPU over
		 * the wave (schedstat run_delay, all threads summed: an upper
		 * bound of the wait on the path from exec event to attach). */
		waited = ls_test_runq_waited_ns(&q);
		if (waited > worst_wait_ns)
			worst_wait_ns = waited;
		for (int i = 0; i < WAVE; i++) {
			if (lat[i] == NO_EXEC) {
				fprintf(stderr, "it_daemon_churn: pid %d: no exec time\n", apps[w * WAVE + i]);
				no_exec++;
			} else if (lat[i] != UINT64_MAX && lat[i] > 1000000000ULL + waited) {
				fprintf(stderr, "it_daemon_churn: pid %d attached %.1f ms after its exec "
					"(the daemon waited %.1f ms for a CPU in its wave)\n",
					apps[w * WAVE + i], lat[i] / 1e6, waited / 1e6);
				late++;
			}
			if (lat[i] != UINT64_MAX && lat[i] != NO_EXEC && lat[i] > worst_ns)
				worst_ns = lat[i];
			if (lat[i] == UINT64_MAX)
				fprintf(stderr, "it_daemon_churn: pid %d not listed within %.1f s of its "
					"wave's start\n", apps[w * WAVE + i], (ls_sys_now_ns() - t0) / 1e9);
		}
		listed += nlisted;
		if (w == NCHURN / WAVE - 1)
			links_mid = ls_test_bpf_links_of(daemon);
	}
	reap_all(apps, 0); /* (pids kept for the checks below) */
	for (int i = 0; i < NCHURN; i++) {
		int st;

		ck_assert_int_eq(ls_test_wait(apps[i], 15000, &st), 0);
	}
	/* Every one was attached (its line in the daemon's log) ... */
	log = ls_test_slurp(d.err);
	ck_assert_ptr_nonnull(log);
	for (int i = 0; i < NCHURN; i++) {
		char needle[64];

		snprintf(needle, sizeof(needle), "pid %d (python3, service churn): attached", apps[i]);
		if (strstr(log, needle))
			seen++;
		else
			fprintf(stderr, "it_daemon_churn: pid %d never attached\n", apps[i]);
	}
	/* ... and measured: its 120 ms block is among the slow events (read
	 * as they came, the last ones now, every app exited). */
	follow_slow(d.sock, &fw, apps, NCHURN);
	fprintf(stderr, "it_daemon_churn: %zu slow events read, none skipped\n", fw.nread);
	for (int i = 0; i < NCHURN; i++) {
		bool after = blocked_after_attach(d.dir, i);

		measured += fw.found[i];
		precise += fw.named[i];
		measurable += after;
		if (!fw.found[i])
			fprintf(stderr, "it_daemon_churn: pid %d: no slow event (%s)\n", apps[i],
				after ? "it blocked after its attach" : "every block before its attach");
		ck_assert_msg(fw.found[i] || !after, "pid %d blocked after its attach and has no slow "
			      "event", apps[i]);
	}
	fprintf(stderr, "it_daemon_churn: %d/%d attached, %d/%d measured (%d with the slow callback "
		"named in precise mode); %d BPF links during the churn\n",
		seen, NCHURN, measured, NCHURN, precise, links_mid);
	fprintf(stderr, "it_daemon_churn: %d listed within 5 s of their wave's start; slowest attach "
		"%.1f ms after its exec; the daemon waited up to %.1f ms for a CPU in a wave\n", listed,
		(double)worst_ns / 1e6, (double)worst_wait_ns / 1e6);
	ck_assert_int_eq(seen, NCHURN);
	ck_assert_int_eq(listed, NCHURN);
	ck_assert_msg(no_exec == 0, "%d processes without an exec time: their latency is unknown", no_exec);
	ck_assert_msg(late == 0, "%d attaches came later than 1 s after the exec plus the daemon's "
		      "wait for a CPU (slowest %.1f ms)", late, (double)worst_ns / 1e6);
	/* Each app blocks 0.4 s and 0.8 s into its loop: on a quiet machine
	 * every attach comes before (all 50 measurable); a loaded one starts
	 * the apps late and the attach within its bound (above) can come
	 * after both blocks (3 of 50 at load 22, the daemon waiting up to
	 * 16 s for a CPU in a wave). Those cannot be measured; every other
	 * one must be (above), and most are. */
	fprintf(stderr, "it_daemon_churn: %d of %d blocked after their attach\n", measurable, NCHURN);
	ck_assert_int_ge(measurable, NCHURN / 2);

	wait_empty(d.sock, 15000);
	/* Uprobe links go in the daemon's precise-mode worker, one target at
	 * a time (~0.7 s each here: RCU grace periods); wait for it. */
	wait_links(daemon, links0, 90000);
	links1 = ls_test_bpf_links_of(daemon);
	rss1 = ls_test_rss_kb(daemon);
	fprintf(stderr, "it_daemon_churn: after: %d BPF links, RSS %ld kB (%+.1f%%); machine: %d links\n",
		links1, rss1, 100.0 * (double)(rss1 - rss0) / (double)rss0, ls_test_bpf_links_total());
	ck_assert_int_eq(links1, links0);
	ck_assert_msg(rss1 <= rss0 + rss0 / 10, "RSS grew from %ld to %ld kB", rss0, rss1);

	ls_test_daemon_stop(&d);
	free(log);
	ls_test_daemon_done(&d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_daemon_churn");
	TCase *tc = tcase_create("churn");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_churn_all_seen_no_leak);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
