// SPDX-License-Identifier: MIT
/*
 * refloop: run scripted workloads on the reference loop.
 *
 *   refloop [--truth FILE] [--poll epoll_pwait2|epoll_wait|epoll_pwait]
 *           [--duration DUR] [--scenario FILE] [STATEMENT...]
 *
 * Statements (arguments, or lines of the scenario file; '#' comments):
 *   timer NAME every=DUR [spin=DUR] [sleep=DUR] [nth=N] [start=DUR]
 *       a fixed-rate timer (next deadline = previous deadline + every,
 *       skipping deadlines already past); spin burns CPU, sleep blocks in
 *       nanosleep, on every run or on every Nth run (runs count from 1)
 *   pipe NAME every=DUR [spin=DUR]
 *       a helper thread writes a byte to a pipe every DUR; the fd watcher
 *       NAME drains it, then spins
 *   soonchain NAME count=N
 *       a callback that queues itself again with call_soon, N times
 * DUR: a number with a unit, ns us ms s (1.5ms). Prints "pid N" first; runs
 * until --duration, SIGTERM or SIGINT, then writes the truth log's last line.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "refloop.h"

#define MAX_WORK 32

struct work {
	char kind[16], name[48];
	uint64_t every_ns, spin_ns, sleep_ns, start_ns, nth, count;
	uint64_t runs, deadline_ns;
	int pipe_fd[2];
	pthread_t thread;
};

static struct work works[MAX_WORK];
static int nworks;
static int signal_pipe[2];

static int parse_dur(const char *s, uint64_t *ns)
{
	static const struct { const char *u; uint64_t mul; } units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000 },
	};
	char *end;
	double v = strtod(s, &end);

	if (end == s || v < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcmp(end, units[i].u)) {
			*ns = (uint64_t)(v * (double)units[i].mul + 0.5);
			return 0;
		}
	}
	return -EINVAL;
}

/* A positive decimal integer, the whole word ("nth=abc" is an error). */
static int parse_count(const char *s, uint64_t *n)
{
	char *end;

	errno = 0;
	*n = strtoull(s, &end, 10);
	return end == s || *end || errno || *s == '-' || !*n ? -EINVAL : 0;
}

static void spin_for(uint64_t ns)
{
	uint64_t end = rl_now_ns() + ns;

	while (rl_now_ns() < end)
		;
}

static void sleep_for(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void on_timer(struct rl_loop *loop, void *arg)
{
	struct work *w = arg;
	uint64_t now = rl_now_ns(), next = w->deadline_ns + w->every_ns;

	w->runs++;
	while (next <= now)
		next += w->every_ns;
	w->deadline_ns = next;
	rl_call_at(loop, next, w->name, on_timer, w);
	if (w->nth && w->runs % w->nth)
		return;
	if (w->spin_ns)
		spin_for(w->spin_ns);
	if (w->sleep_ns)
		sleep_for(w->sleep_ns);
}

static void on_pipe(struct rl_loop *loop, void *arg)
{
	struct work *w = arg;
	char buf[256];

	while (read(w->pipe_fd[0], buf, sizeof(buf)) == (ssize_t)sizeof(buf))
		;
	if (w->spin_ns)
		spin_for(w->spin_ns);
}

static void *pipe_feeder(void *arg)
{
	struct work *w = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		uint64_t t = (uint64_t)next.tv_nsec + w->every_ns;

		next.tv_sec += (time_t)(t / 1000000000ULL);
		next.tv_nsec = (long)(t % 1000000000ULL);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		if (write(w->pipe_fd[1], "x", 1) < 0)
			return NULL;
	}
}

static void on_soon(struct rl_loop *loop, void *arg)
{
	struct work *w = arg;

	if (++w->runs < w->count)
		rl_call_soon(loop, w->name, on_soon, w);
}

static void on_stop(struct rl_loop *loop, void *arg)
{
	char buf[16];

	if (arg)
		while (read(signal_pipe[0], buf, sizeof(buf)) > 0)
			;
	rl_stop(loop);
}

static void on_signal(int sig)
{
	(void)!write(signal_pipe[1], "s", 1);
}

/* Parse one statement; where names the argument or FILE:LINE for errors. */
static int parse_statement(char *line, const char *where)
{
	struct work *w;
	char *tok, *save;

	tok = strtok_r(line, " \t\r\n", &save);
	if (!tok || tok[0] == '#')
		return 0;
	if (nworks == MAX_WORK) {
		fprintf(stderr, "refloop: %s: more than %d statements\n", where, MAX_WORK);
		return -EINVAL;
	}
	w = &works[nworks];
	memset(w, 0, sizeof(*w));
	if (strcmp(tok, "timer") && strcmp(tok, "pipe") && strcmp(tok, "soonchain")) {
		fprintf(stderr, "refloop: %s: unknown statement '%s'\n", where, tok);
		return -EINVAL;
	}
	snprintf(w->kind, sizeof(w->kind), "%s", tok);
	tok = strtok_r(NULL, " \t\r\n", &save);
	if (!tok || strchr(tok, '=')) {
		fprintf(stderr, "refloop: %s: %s needs a NAME\n", where, w->kind);
		return -EINVAL;
	}
	snprintf(w->name, sizeof(w->name), "%s", tok);
	while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
		char *eq = strchr(tok, '=');
		int err = 0;

		if (!eq) {
			fprintf(stderr, "refloop: %s: expected KEY=VALUE, got '%s'\n", where, tok);
			return -EINVAL;
		}
		*eq++ = '\0';
		if (!strcmp(tok, "every"))
			err = parse_dur(eq, &w->every_ns);
		else if (!strcmp(tok, "spin"))
			err = parse_dur(eq, &w->spin_ns);
		else if (!strcmp(tok, "sleep"))
			err = parse_dur(eq, &w->sleep_ns);
		else if (!strcmp(tok, "start"))
			err = parse_dur(eq, &w->start_ns);
		else if (!strcmp(tok, "nth"))
			err = parse_count(eq, &w->nth);
		else if (!strcmp(tok, "count"))
			err = parse_count(eq, &w->count);
		else
			err = -EINVAL;
		if (err) {
			fprintf(stderr, "refloop: %s: bad '%s=%s'\n", where, tok, eq);
			return -EINVAL;
		}
	}
	if (strcmp(w->kind, "soonchain") ? !w->every_ns : !w->count) {
		fprintf(stderr, "refloop: %s: %s %s needs %s\n", where, w->kind, w->name,
			strcmp(w->kind, "soonchain") ? "every=DUR" : "count=N");
		return -EINVAL;
	}
	nworks++;
	return 0;
}

static int parse_file(const char *path)
{
	char line[512], where[300];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (!f) {
		fprintf(stderr, "refloop: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		snprintf(where, sizeof(where), "%s:%d", path, ++n);
		if (parse_statement(line, where)) {
			fclose(f);
			return -EINVAL;
		}
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	enum rl_poll_kind kind = RL_EPOLL_PWAIT2;
	const char *truth_path = NULL;
	uint64_t duration_ns = 0, now;
	struct rl_loop *loop;
	FILE *truth = NULL;
	char where[64];
	int err;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--truth") && i + 1 < argc) {
			truth_path = argv[++i];
		} else if (!strcmp(a, "--poll") && i + 1 < argc) {
			a = argv[++i];
			if (!strcmp(a, "epoll_pwait2"))
				kind = RL_EPOLL_PWAIT2;
			else if (!strcmp(a, "epoll_wait"))
				kind = RL_EPOLL_WAIT;
			else if (!strcmp(a, "epoll_pwait"))
				kind = RL_EPOLL_PWAIT;
			else {
				fprintf(stderr, "refloop: unknown poll kind '%s'\n", a);
				return 2;
			}
		} else if (!strcmp(a, "--duration") && i + 1 < argc) {
			if (parse_dur(argv[++i], &duration_ns)) {
				fprintf(stderr, "refloop: bad duration '%s'\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(a, "--scenario") && i + 1 < argc) {
			if (parse_file(argv[++i]))
				return 2;
		} else if (a[0] == '-') {
			fprintf(stderr, "refloop: unknown option '%s'\n", a);
			return 2;
		} else {
			char buf[512];

			snprintf(buf, sizeof(buf), "%s", a);
			snprintf(where, sizeof(where), "argument %d", i);
			if (parse_statement(buf, where))
				return 2;
		}
	}
	if (truth_path) {
		truth = fopen(truth_path, "w");
		if (!truth) {
			fprintf(stderr, "refloop: %s: %s\n", truth_path, strerror(errno));
			return 1;
		}
		setvbuf(truth, NULL, _IOFBF, 1 << 20);
	}
	loop = rl_loop_new(kind, truth);
	if (!loop || pipe(signal_pipe)) {
		fprintf(stderr, "refloop: %s\n", strerror(errno));
		return 1;
	}
	fcntl(signal_pipe[0], F_SETFL, O_NONBLOCK);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	rl_watch_fd(loop, signal_pipe[0], "signal", on_stop, loop);

	now = rl_now_ns();
	for (int i = 0; i < nworks; i++) {
		struct work *w = &works[i];

		if (!strcmp(w->kind, "timer")) {
			w->deadline_ns = now + (w->start_ns ? w->start_ns : w->every_ns);
			rl_call_at(loop, w->deadline_ns, w->name, on_timer, w);
		} else if (!strcmp(w->kind, "pipe")) {
			if (pipe(w->pipe_fd) || (err = rl_watch_fd(loop, w->pipe_fd[0], w->name, on_pipe, w))) {
				fprintf(stderr, "refloop: pipe %s: %s\n", w->name, strerror(errno));
				return 1;
			}
			fcntl(w->pipe_fd[0], F_SETFL, O_NONBLOCK);
			pthread_create(&w->thread, NULL, pipe_feeder, w);
		} else {
			rl_call_soon(loop, w->name, on_soon, w);
		}
	}
	if (duration_ns)
		rl_call_later(loop, duration_ns, "stop", on_stop, NULL);
	printf("pid %d\n", (int)getpid());
	fflush(stdout);
	err = rl_run(loop);
	if (truth)
		fclose(truth);
	if (err) {
		fprintf(stderr, "refloop: poll failed: %s\n", strerror(-err));
		return 1;
	}
	return 0;
}
