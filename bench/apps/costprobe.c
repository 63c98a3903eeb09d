// SPDX-License-Identifier: MIT
/*
 * costprobe: the small C probes of bench/run's cost section (compiled by
 * bench/run at start, `cc -O2`, into its temporary directory).
 *
 *   costprobe syscalls N BATCHES
 *       N getppid() syscalls (raw syscall(2), no libc caching) per batch,
 *       BATCHES batches; prints
 *       "result {"ns_per_syscall": MEDIAN, "min": .., "max": .., "n": N*BATCHES}"
 *       (ns per syscall of each batch, CLOCK_MONOTONIC).
 *   costprobe echo RFD WFD
 *       the partner of a pipe ping-pong: reads a byte from RFD, writes it to
 *       WFD, until EOF.
 *   costprobe sample PID PERIOD_NS
 *       a cpu-clock sampling perf event (PERF_COUNT_SW_CPU_CLOCK, the period
 *       in ns, not inherited) on every thread of PID, as loopscope's stack sampler
 *       opens it, but with no BPF program attached; prints "ready" and holds
 *       the events until SIGINT/SIGTERM.
 */
#define _GNU_SOURCE
#include <linux/perf_event.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int syscalls(long n, int batches)
{
	double *v = calloc(batches, sizeof(*v));

	if (!v || n <= 0 || batches <= 0)
		return 2;
	for (int b = 0; b < batches; b++) {
		long long t0 = now_ns();

		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
		v[b] = (double)(now_ns() - t0) / n;
	}
	qsort(v, batches, sizeof(*v), cmp_d);
	printf("result {\"ns_per_syscall\": %.2f, \"min\": %.2f, \"max\": %.2f, \"n\": %ld}\n",
	       batches % 2 ? v[batches / 2] : (v[batches / 2 - 1] + v[batches / 2]) / 2,
	       v[0], v[batches - 1], n * batches);
	free(v);
	return 0;
}

static int echo(int rfd, int wfd)
{
	char c;

	while (read(rfd, &c, 1) == 1)
		if (write(wfd, &c, 1) != 1)
			return 1;
	return 0;
}

static volatile sig_atomic_t stop;

static void on_sig(int sig)
{
	(void)sig;
	stop = 1;
}

static int sample(int pid, long period)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir) {
		perror(path);
		return 1;
	}
	while ((d = readdir(dir))) {
		int tid = atoi(d->d_name);
		struct perf_event_attr attr = {
			.type = PERF_TYPE_SOFTWARE,
			.config = PERF_COUNT_SW_CPU_CLOCK,
			.size = sizeof(attr),
			.sample_period = (unsigned long long)period,
		};

		if (tid <= 0)
			continue;
		if (syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC) < 0) {
			perror("perf_event_open");
			return 1;
		}
		n++;
	}
	closedir(dir);
	printf("ready %d threads\n", n);
	fflush(stdout);
	while (!stop)
		pause();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "syscalls"))
		return syscalls(atol(argv[2]), atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "echo"))
		return echo(atoi(argv[2]), atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "sample"))
		return sample(atoi(argv[2]), atol(argv[3]));
	fprintf(stderr, "usage: costprobe syscalls N BATCHES | echo RFD WFD | sample PID PERIOD_NS\n");
	return 2;
}
