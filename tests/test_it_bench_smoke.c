// SPDX-License-Identifier: MIT
/*
 * Integration: `bench/run --smoke --out DIR` (the benchmark harness, a
 * script; about 20 s on an idle 2-core VM: every workload, every variant and
 * every agent-cost row kind once, briefly) runs to completion within 120 s
 * (the margin is for a loaded machine), exits 0, and writes a markdown
 * report with a table for each workload and the agent-cost table, plus its
 * raw JSON, into DIR (not docs/BENCHMARKS.md). Afterwards none of the
 * processes it started is left: its apps (bench/apps/...), loopscope,
 * bpftrace, wrk, refloop (found by an environment variable they inherit).
 *
 * The cost section runs too (the target pinned to one CPU, the rest to the
 * other; the BPF programs' run time from bpf_stats; the syscall-tax and
 * context-switch probes; the sampler-only variant): its tables are in the
 * markdown and its figures in the JSON are numbers (their values are not
 * checked: a smoke run's are meaningless); a kernel.bpf_stats_enabled not
 * back to what it was is reported (not asserted: others may set it too).
 *
 * On timeout the harness gets SIGTERM (its handler kills everything it
 * started) and then SIGKILL (its children have PR_SET_PDEATHSIG).
 * Needs root, bpftrace, wrk and Debian's python3-aiohttp, like bench/run.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "spawn.h"

#define BENCH LS_SOURCE_DIR "/bench/run"
#define LIMIT_MS 120000

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Processes (other than ourselves) whose /proc/PID/FILE holds needle (its
 * NUL separators read as spaces): FILE is cmdline or environ. */
static int count_procs(const char *file, const char *needle)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[288];
		static char buf[65536];
		ssize_t len, r;
		int fd;

		if (e->d_name[0] < '0' || e->d_name[0] > '9' || atoi(e->d_name) == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%s/%s", e->d_name, file);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		for (len = 0; len < (ssize_t)sizeof(buf) - 1; len += r)
			if ((r = read(fd, buf + len, sizeof(buf) - 1 - len)) <= 0)
				break;
		close(fd);
		if (len <= 0)
			continue;
		for (ssize_t i = 0; i < len; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[len] = '\0';
		if (strstr(buf, needle))
			n++;
	}
	closedir(d);
	return n;
}

/* Every process bench/run starts (its apps, bpftrace, loopscope, wrk,
 * refloop) inherits its environment, which holds this tag. Others' runs on
 * the same machine (another worktree's bench, a daemon test with a
 * loopscope-bench-* directory) do not have it. */
static char tag[160];

static int count_left(void)
{
	return count_procs("environ", tag);
}

/* Run bench/run to completion or LIMIT_MS, then SIGTERM, then SIGKILL. */
static int run_bench(const char *dir, const char *log, int *timed_out)
{
	char *argv[] = { BENCH, "--smoke", "--out", (char *)dir, NULL };
	long long deadline = now_ms() + LIMIT_MS;
	pid_t pid;

	/* This build's binaries, not whatever build/ holds. */
	setenv("LOOPSCOPE_BUILD", LS_BINARY_DIR, 1);
	setenv("LOOPSCOPE_BENCH_TAG", dir, 1);
	pid = ls_test_spawn(argv, log, log);
	int status;

	*timed_out = 0;
	ck_assert_int_gt(pid, 0);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (now_ms() > deadline) {
			*timed_out = 1;
			kill(pid, SIGTERM);
			for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) != pid; i++)
				usleep(100000);
			ls_test_kill(pid);
			return -ETIMEDOUT;
		}
		usleep(100000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Whether text holds "key": followed by a number, at least once. */
static int json_has_number(const char *text, const char *key)
{
	char pat[96];
	const char *p = text;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	while ((p = strstr(p, pat))) {
		char *end;

		p += strlen(pat);
		strtod(p, &end);
		if (end != p)
			return 1;
	}
	return 0;
}

static char *json_file(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *text = NULL;

	if (!d)
		return NULL;
	while ((e = readdir(d)) && !text) {
		size_t l = strlen(e->d_name);
		char path[512];

		if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) {
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			text = ls_test_slurp(path);
		}
	}
	closedir(d);
	return text;
}

static int read_bpf_stats(void)
{
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "r");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int json_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (l > 5 && !strcmp(e->d_name + l - 5, ".json"))
			n++;
	}
	closedir(d);
	return n;
}

START_TEST(test_bench_quick)
{
	char dir[] = "/tmp/loopscope-test-bench.XXXXXX", md[128], log[128], cmd[160];
	static const char *workloads[] = {
		"Callback storm", "Timer-heavy", "aiohttp hello world", "Reference C loop",
	};
	static const char *agent_rows[] = {
		"| Python 3.11 | bare (no observer) |", "| Python 3.11 | light |",
		"| Python 3.11 | light, every event |", "| Python 3.11 | precise |",
		"| Python 3.11 | precise, every event |", "| C loop | light |",
	};
	static const char *cost_md[] = {
		"## Cost of watching, per unit of work", "### Goals",
		"### Syscall tax on an unrelated process", "### Context switches of the watched thread",
		"### BPF programs, per event and per unit of work (bpf_stats)",
		"| aiohttp (request) | light_stacks |", "| storm (callback) | precise |",
		"| aiohttp | light_stacks | `ls_", "| storm | precise | `ls_context_run",
		"| sampler |",
	};
	/* per run (cost_raw) and per summary (cost: medians) */
	static const char *cost_json[] = {
		"target_us_per_unit", "target_sched_us_per_unit", "machine_us_per_unit",
		"bpf_ns_per_unit", "run_time_ns", "run_cnt", "ns_per_syscall", "ns_per_rt",
		"units", "median",
	};
	int rc, timed_out, left, stats0 = read_bpf_stats();
	long long t0 = now_ms(), wall_ms;
	char *text, *logtext, *json;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(tag, sizeof(tag), "LOOPSCOPE_BENCH_TAG=%s ", dir);
	snprintf(md, sizeof(md), "%s/BENCHMARKS.md", dir);
	snprintf(log, sizeof(log), "%s/run.log", dir);
	rc = run_bench(dir, log, &timed_out);
	wall_ms = now_ms() - t0;
	logtext = ls_test_slurp(log);
	left = count_left();
	ck_assert_msg(!timed_out, "bench/run --smoke took over %d s: %s", LIMIT_MS / 1000,
		      logtext ? logtext : "");
	ck_assert_msg(rc == 0, "bench/run --smoke exited %d: %s", rc, logtext ? logtext : "");
	ck_assert_msg(left <= 0, "%d processes of bench/run left behind", left);
	text = ls_test_slurp(md);
	ck_assert_msg(text, "no %s", md);
	ck_assert_msg(strstr(text, "| variant | slowdown median (min–max) |"),
		      "no results table in %s", md);
	for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
		ck_assert_msg(strstr(text, workloads[i]), "%s lacks workload '%s'", md,
			      workloads[i]);
	ck_assert_msg(strstr(text, "| bare |") && strstr(text, "| light |") &&
		      strstr(text, "| precise |"), "variant rows missing in %s", md);
	ck_assert_msg(strstr(text, "## Agent cost at fixed event rates"),
		      "no agent-cost section in %s", md);
	for (size_t i = 0; i < sizeof(agent_rows) / sizeof(agent_rows[0]); i++)
		ck_assert_msg(strstr(text, agent_rows[i]), "%s lacks agent-cost row '%s'", md,
			      agent_rows[i]);
	ck_assert_msg(json_files(dir) == 1, "expected one raw JSON file in %s", dir);
	for (size_t i = 0; i < sizeof(cost_md) / sizeof(cost_md[0]); i++)
		ck_assert_msg(strstr(text, cost_md[i]), "%s lacks '%s'", md, cost_md[i]);
	json = json_file(dir);
	ck_assert_msg(json, "no raw JSON in %s", dir);
	ck_assert_msg(strstr(json, "\"cost_raw\": [") && strstr(json, "\"cost\": {"),
		      "no cost section in the raw JSON");
	for (size_t i = 0; i < sizeof(cost_json) / sizeof(cost_json[0]); i++)
		ck_assert_msg(json_has_number(json, cost_json[i]),
			      "the raw JSON has no number for \"%s\"", cost_json[i]);
	/* Not asserted: another run on this machine may set it meanwhile. */
	if (read_bpf_stats() != stats0)
		printf("bench smoke: kernel.bpf_stats_enabled %d after the run, %d before\n",
		       read_bpf_stats(), stats0);
	free(json);
	printf("bench smoke: %.1f s wall; %s", wall_ms / 1000.0,
	       logtext ? strstr(logtext, "loopscope bench") ?
	       strstr(logtext, "loopscope bench") : logtext : "");
	free(text);
	free(logtext);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_bench_smoke");
	TCase *tc = tcase_create("quick");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, test_bench_quick);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
