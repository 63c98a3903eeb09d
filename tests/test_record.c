// SPDX-License-Identifier: MIT
/*
 * Recordings (agent/record/, cli/report.c): a recording written with the
 * writer reads back field for field; `loopscope report` prints it, applies
 * a larger threshold and a window; and every kind of bad file (the table of
 * docs/RECORD.md) gets its one line and its own exit code, with what
 * precedes the damage still reported.
 *
 * The synthetic recording: one loop thread (pid 4242), three blocks:
 *   block 1: a snapshot at +1 s (100 polls), slow periods of 150 ms (with a
 *            two-frame stack) and 300 ms;
 *   block 2: a snapshot at +2 s (200 polls), a slow period of 250 ms;
 *   block 3: the end record.
 * Its numbers are chosen here, so the report's are known exactly.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/abi/pycallback_events.h"
#include "loopscope/pycallback.h"
#include "loopscope/pyname.h"
#include "loopscope/record.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define MS 1000000ULL
#define T0 (1000ULL * 1000 * MS) /* the start, CLOCK_MONOTONIC */
#define PID 4242

static void view(struct ls_thread_view *v, uint64_t polls, uint64_t at)
{
	memset(v, 0, sizeof(*v));
	v->tgid = v->tid = PID;
	v->poll_kind = LS_POLL_EPOLL_WAIT;
	v->in_poll = true;
	v->first_enter_ns = T0 + MS;
	v->poll_enter_ns = at - MS;
	v->poll_exit_ns = at - 2 * MS;
	v->polls = polls;
	v->iterations = polls - 1;
	for (uint64_t i = 0; i < polls - 1; i++) {
		ls_hist_record(&v->busy, 100000 + i * 1000);
		ls_hist_record(&v->poll, 5 * MS);
	}
	ls_hist_record(&v->lag, 200000);
}

static void slow_event(struct ls_slow_busy_event *e, uint64_t start, uint64_t dur)
{
	memset(e, 0, sizeof(*e));
	e->type = LS_EV_SLOW_BUSY;
	e->tgid = e->tid = PID;
	e->start_ns = start;
	e->duration_ns = dur;
	e->poll_timeout_ns = -1;
	e->blocked_ns = dur - MS;
	e->top_block_ns = dur - MS;
	e->top_syscall = 230; /* clock_nanosleep */
}

/* Write the synthetic recording to path (end: with its end record). */
static void make_recording(const char *path, bool end)
{
	struct ls_record_header h = { 0 };
	struct ls_record_writer *w;
	struct ls_thread_view v;
	struct ls_slow_busy_event e;
	struct ls_pyframe frames[2] = { 0 };
	struct ls_stack_agg agg = { 0 };
	struct ls_stack_summary st = { 0 };

	h.realtime_ns = 1700000000ULL * 1000 * MS;
	h.monotonic_ns = T0;
	h.start_ns = T0;
	h.threshold_ns = 100 * MS;
	h.interval_ns = 1000 * MS;
	h.npids = 1;
	h.pids[0] = PID;
	strcpy(h.host, "testhost");
	strcpy(h.kernel, "6.18 test");
	ck_assert_int_eq(ls_record_open(path, &h, &w), 0);
	ck_assert_int_eq(ls_record_put_process(w, PID, "app", "CPython 3.12"), 0);
	ck_assert_int_eq(ls_record_put_thread(w, PID, PID, "app-loop"), 0);
	view(&v, 100, T0 + 1000 * MS);
	ck_assert_int_eq(ls_record_put_snapshot(w, T0 + 1000 * MS, &v, 1), 0);
	strcpy(frames[0].qualname, "slow_handler");
	strcpy(frames[0].filename, "/srv/app.py");
	frames[0].firstlineno = 40;
	frames[0].line = 45;
	strcpy(frames[1].qualname, "main");
	strcpy(frames[1].filename, "/srv/app.py");
	frames[1].firstlineno = 70;
	frames[1].line = 80;
	agg.kind = LS_STACK_OFF_CPU;
	agg.syscall = 230;
	agg.blocked_ns = 149 * MS;
	agg.events = 1;
	agg.nframes = 2;
	agg.frames = frames;
	st.stacks = &agg;
	st.n = 1;
	st.off_cpu_ns = 149 * MS;
	slow_event(&e, T0 + 200 * MS, 150 * MS);
	ck_assert_int_eq(ls_record_put_slow_busy(w, &e, "app-loop", &st), 0);
	slow_event(&e, T0 + 500 * MS, 300 * MS);
	ck_assert_int_eq(ls_record_put_slow_busy(w, &e, "app-loop", NULL), 0);
	ck_assert_int_eq(ls_record_flush(w), 0);
	view(&v, 200, T0 + 2000 * MS);
	ck_assert_int_eq(ls_record_put_snapshot(w, T0 + 2000 * MS, &v, 1), 0);
	slow_event(&e, T0 + 1200 * MS, 250 * MS);
	ck_assert_int_eq(ls_record_put_slow_busy(w, &e, "app-loop", &st), 0);
	ck_assert_int_eq(ls_record_flush(w), 0);
	if (end) {
		struct ls_record_end en = { .end_ns = T0 + 2000 * MS, .npids = 1, .pids = { PID } };

		ck_assert_int_eq(ls_record_put_end(w, &en), 0);
	}
	ck_assert_int_eq(ls_record_close(w), 0);
}

static char *tmp_recording(bool end)
{
	static char path[128];

	ls_test_tmp(path, sizeof(path), "rec");
	make_recording(path, end);
	return path;
}

/* Offset of block k (0-based) of recording path. */
static off_t block_offset(const char *path, int k)
{
	unsigned char b[16];
	off_t off;
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, b, 16, 12), 16);
	off = b[0] | b[1] << 8 | b[2] << 16 | (off_t)b[3] << 24; /* header_len */
	while (k--) {
		ck_assert_int_eq(pread(fd, b, 16, off), 16);
		off += 16 + (b[8] | b[9] << 8 | b[10] << 16 | (off_t)b[11] << 24);
	}
	close(fd);
	return off;
}

static void poke(const char *path, off_t off, unsigned char byte)
{
	int fd = open(path, O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &byte, 1, off), 1);
	close(fd);
}

START_TEST(test_round_trip)
{
	char *path = tmp_recording(true);
	struct ls_record_header h;
	struct ls_replay *r;
	struct ls_replay_item it;
	int n_snap = 0, n_slow = 0, n_end = 0, n_thread = 0, n_proc = 0, err;

	ck_assert_int_eq(ls_replay_open(path, &r, &h), 0);
	ck_assert_uint_eq(h.version_major, LS_RECORD_VERSION_MAJOR);
	ck_assert_uint_eq(h.start_ns, T0);
	ck_assert_uint_eq(h.threshold_ns, 100 * MS);
	ck_assert_str_eq(h.host, "testhost");
	ck_assert_str_eq(h.kernel, "6.18 test");
	ck_assert_uint_eq(h.pids[0], PID);
	while ((err = ls_replay_next(r, &it)) > 0) {
		switch (it.type) {
		case LS_REC_SNAPSHOT: {
			struct ls_thread_view v;

			n_snap++;
			view(&v, n_snap * 100, T0 + n_snap * 1000 * MS);
			ck_assert_uint_eq(it.nviews, 1);
			ck_assert_int_eq(memcmp(&v, &it.views[0], sizeof(v)), 0);
			break;
		}
		case LS_REC_SLOW_BUSY:
			n_slow++;
			ck_assert_str_eq(it.thread, "app-loop");
			ck_assert_uint_eq(it.slow->tid, PID);
			ck_assert_int_eq(it.slow->top_syscall, 230);
			ck_assert_uint_eq(it.slow->duration_ns,
					  n_slow == 1 ? 150 * MS : n_slow == 2 ? 300 * MS : 250 * MS);
			if (n_slow == 2) {
				ck_assert_uint_eq(it.stacks.n, 0);
				break;
			}
			ck_assert_uint_eq(it.stacks.n, 1);
			ck_assert_uint_eq(it.stacks.stacks[0].nframes, 2);
			ck_assert_str_eq(it.stacks.stacks[0].frames[0].qualname, "slow_handler");
			ck_assert_str_eq(it.stacks.stacks[0].frames[1].filename, "/srv/app.py");
			ck_assert_int_eq(it.stacks.stacks[0].frames[0].line, 45);
			ck_assert_int_eq(it.stacks.stacks[0].frames[1].firstlineno, 70);
			ck_assert_uint_eq(it.stacks.stacks[0].blocked_ns, 149 * MS);
			break;
		case LS_REC_THREAD:
			n_thread++;
			ck_assert_str_eq(it.name, "app-loop");
			break;
		case LS_REC_PROCESS:
			n_proc++;
			ck_assert_str_eq(it.name, "app");
			ck_assert_str_eq(it.interp, "CPython 3.12");
			break;
		case LS_REC_END:
			n_end++;
			ck_assert_uint_eq(it.end.end_ns, T0 + 2000 * MS);
			break;
		}
	}
	ck_assert_int_eq(err, 0);
	ck_assert_int_eq(n_snap, 2);
	ck_assert_int_eq(n_slow, 3);
	ck_assert_int_eq(n_end, 1);
	ck_assert_int_eq(n_thread, 1);
	ck_assert_int_eq(n_proc, 1);
	ls_replay_close(r);
	unlink(path);
}
END_TEST

/* Run `loopscope report ARGS... FILE`: its exit code, and its output in o. */
static int report(struct ls_test_out *o, const char *path, const char *a1, const char *a2)
{
	char *argv[8] = { LOOPSCOPE, "report", (char *)path, NULL };
	int n = 3;

	if (a1)
		argv[n++] = (char *)a1;
	if (a2)
		argv[n++] = (char *)a2;
	argv[n] = NULL;
	return ls_test_run_capture(o, argv, 20000);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

START_TEST(test_report_clean)
{
	char *path = tmp_recording(true);
	struct ls_test_out o;

	ck_assert_int_eq(report(&o, path, NULL, NULL), 0);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "pid 4242 tid 4242 (app-loop), epoll_wait: 199 "
					      "iterations"));
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "slow busy periods (> 100.0 ms): 3"));
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "<- slow_handler app.py:45 <- main app.py:80"));
	ck_assert_str_eq(o.stderr_text, "");
	ls_test_out_free(&o);
	/* A larger threshold drops the smaller periods: 150 ms goes, 250 and 300 stay. */
	ck_assert_int_eq(report(&o, path, "--threshold", "200ms"), 0);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "slow busy periods (> 200.0 ms): 2"));
	ck_assert_ptr_null(strstr(o.stdout_text, "busy 150.0 ms"));
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "busy 300.0 ms"));
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "busy 250.0 ms"));
	ls_test_out_free(&o);
	/* A smaller one cannot be: those periods were never recorded. */
	ck_assert_int_eq(report(&o, path, "--threshold", "50ms"), 2);
	ck_assert_int_eq(count_lines(o.stderr_text), 1);
	ls_test_out_free(&o);
	/* --to 1s: the first snapshot, the periods ending by then. */
	ck_assert_int_eq(report(&o, path, "--to", "1s"), 0);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "99 iterations"));
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "slow busy periods (> 100.0 ms): 2"));
	ls_test_out_free(&o);
	/* --from 1s: the second snapshot against the first. */
	ck_assert_int_eq(report(&o, path, "--from", "1s"), 0);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "report: 1.00 s"));
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "100 iterations"));
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "slow busy periods (> 100.0 ms): 1"));
	ls_test_out_free(&o);
	unlink(path);
}
END_TEST

/*
 * The per-poll stream (format 1.3): thread A (PID) polls NPOLLS times,
 * each poll 6 ms with a 5 ms timeout (whole ms: epoll_wait's; lateness 1
 * ms each), 4 ms busy between, except a 150 ms busy period before poll
 * 100 (slow); thread B (PID + 1) with ns timeouts, infinite and none. The
 * polls are put in two batches around a snapshot, the threads
 * interleaved. Every value is known here.
 */
#define NPOLLS 300
static void polls_of(struct ls_poll_event *a, struct ls_poll_event *b)
{
	uint64_t t = T0 + 10 * MS;

	for (int k = 0; k < NPOLLS; k++) {
		memset(&a[k], 0, sizeof(a[k]));
		a[k].tgid = a[k].tid = PID;
		a[k].seq = (uint32_t)k + 1;
		a[k].prev_exit_ns = k ? t : 0;
		t += k ? (k == 100 ? 150 * MS : 4 * MS) : 0;
		a[k].enter_ns = t;
		a[k].timeout_ns = 5 * MS;
		t += 6 * MS;
		memset(&b[k], 0, sizeof(b[k]));
		b[k].tgid = PID;
		b[k].tid = PID + 1;
		b[k].seq = (uint32_t)k + 1;
		b[k].enter_ns = T0 + 10 * MS + (uint64_t)k * 3 * MS + 17;
		b[k].prev_exit_ns = k ? b[k].enter_ns - 777 : 0;
		b[k].timeout_ns = k % 3 == 0 ? 2500017 : k % 3 == 1 ? -1 : 0;
	}
}

static char *tmp_polls_recording(struct ls_poll_event *a, struct ls_poll_event *b)
{
	static char path[128];
	struct ls_record_header h = { 0 };
	struct ls_record_writer *w;
	struct ls_thread_view v[2];
	struct ls_record_end en = { .end_ns = T0 + 3000 * MS, .npids = 1, .pids = { PID },
				    .every_poll = true };

	ls_test_tmp(path, sizeof(path), "polls");
	polls_of(a, b);
	h.monotonic_ns = h.start_ns = T0;
	h.threshold_ns = 100 * MS;
	h.interval_ns = 1000 * MS;
	h.npids = 1;
	h.pids[0] = PID;
	ck_assert_int_eq(ls_record_open(path, &h, &w), 0);
	for (int k = 0; k < NPOLLS / 2; k++) {
		ck_assert_int_eq(ls_record_put_polls(w, &a[k], 1), 0);
		ck_assert_int_eq(ls_record_put_polls(w, &b[k], 1), 0);
	}
	view(&v[0], 100, T0 + 1000 * MS);
	view(&v[1], 100, T0 + 1000 * MS);
	v[1].tid = PID + 1;
	ck_assert_int_eq(ls_record_put_snapshot(w, T0 + 1000 * MS, v, 2), 0);
	ck_assert_int_eq(ls_record_put_polls(w, a + NPOLLS / 2, NPOLLS / 2), 0);
	ck_assert_int_eq(ls_record_put_polls(w, b + NPOLLS / 2, NPOLLS / 2), 0);
	ck_assert_uint_eq(ls_record_polls(w), 2 * NPOLLS);
	/* The last snapshot: A returned from its last poll at +6 ms. */
	view(&v[0], NPOLLS, T0 + 3000 * MS);
	v[0].in_poll = false;
	v[0].poll_enter_ns = a[NPOLLS - 1].enter_ns;
	v[0].poll_exit_ns = a[NPOLLS - 1].enter_ns + 6 * MS;
	view(&v[1], NPOLLS, T0 + 3000 * MS);
	v[1].tid = PID + 1;
	ck_assert_int_eq(ls_record_put_snapshot(w, T0 + 3000 * MS, v, 2), 0);
	ck_assert_int_eq(ls_record_put_end(w, &en), 0);
	ck_assert_int_eq(ls_record_close(w), 0);
	return path;
}

START_TEST(test_polls_stream)
{
	static struct ls_poll_event a[NPOLLS], b[NPOLLS], back[2][NPOLLS];
	char *path = tmp_polls_recording(a, b);
	size_t n[2] = { 0, 0 };
	struct ls_record_header h;
	struct ls_replay *r;
	struct ls_replay_item it;
	struct ls_thread_view v = { 0 }, last = { 0 };
	struct ls_polls *ps;
	uint64_t gaps = 9, total = 0;
	struct ls_test_out o;
	int err;

	/* Read back, field for field, each thread's in its order. */
	ck_assert_int_eq(ls_replay_open(path, &r, &h), 0);
	ck_assert_uint_eq(h.version_minor, LS_RECORD_VERSION_MINOR);
	while ((err = ls_replay_next(r, &it)) > 0) {
		if (it.type == LS_REC_END)
			ck_assert(it.end.every_poll && it.end.lost_polls == 0);
		if (it.type == LS_REC_SNAPSHOT)
			last = it.views[0];
		if (it.type != LS_REC_POLLS)
			continue;
		int k = it.tid == PID ? 0 : 1;

		ck_assert_uint_le(n[k] + it.npolls, NPOLLS);
		memcpy(&back[k][n[k]], it.polls, it.npolls * sizeof(*it.polls));
		n[k] += it.npolls;
	}
	ck_assert_int_eq(err, 0);
	ls_replay_close(r);
	ck_assert_uint_eq(n[0], NPOLLS);
	ck_assert_uint_eq(n[1], NPOLLS);
	ck_assert_int_eq(memcmp(back[0], a, sizeof(a)), 0);
	ck_assert_int_eq(memcmp(back[1], b, sizeof(b)), 0);

	/* The figures of A, to the end: 300 polls, 299 busy periods (the
	 * first poll has no return before it), one of them slow; 299 polls
	 * returned in the stream, the last one's return from the snapshot. */
	ps = ls_polls_new(100 * MS, UINT64_MAX);
	ck_assert_int_eq(ls_polls_add(ps, back[0], NPOLLS), 0);
	ck_assert_int_eq(ls_polls_add(ps, back[1], NPOLLS), 0);
	ck_assert_int_eq(ls_polls_view(ps, PID, &v, &gaps), 0);
	ck_assert_uint_eq(gaps, 0);
	ck_assert_uint_eq(v.polls, NPOLLS);
	ck_assert_uint_eq(v.busy.count, NPOLLS - 1);
	ck_assert_uint_eq(v.busy.max, 150 * MS);
	ck_assert_uint_eq(v.busy.sum, (NPOLLS - 2) * 4 * MS + 150 * MS);
	ck_assert_uint_eq(v.slow_busy, 1);
	ck_assert(v.in_poll);
	ck_assert_uint_eq(v.poll.count, NPOLLS - 1);
	ck_assert_uint_eq(v.lag.count, NPOLLS - 1);
	ck_assert_uint_eq(v.lag.max, MS);
	ls_polls_complete(ps, &last);
	ck_assert_int_eq(ls_polls_view(ps, PID, &v, NULL), 0);
	ck_assert(!v.in_poll);
	ck_assert_uint_eq(v.poll.count, NPOLLS);
	ck_assert_uint_eq(v.poll.sum, NPOLLS * 6 * MS);
	ck_assert_uint_eq(v.lag.count, NPOLLS);
	ck_assert_uint_eq(v.lag.sum, NPOLLS * MS);
	ck_assert_uint_eq(v.poll_exit_ns, a[NPOLLS - 1].enter_ns + 6 * MS);
	/* B: timeouts of ns, infinite and none, an entry every 3 ms, each
	 * return 777 ns before the next entry: every third poll (2.5 ms + 17
	 * ns timeout) returns 499,206 ns late, to the ns. */
	ck_assert_int_eq(ls_polls_view(ps, PID + 1, &v, NULL), 0);
	ck_assert_uint_eq(v.busy.count, NPOLLS - 1);
	ck_assert_uint_eq(v.busy.max, 777);
	ck_assert_uint_eq(v.lag.count, NPOLLS / 3);
	ck_assert_uint_eq(v.lag.max, 3 * MS - 777 - 2500017);
	ck_assert_uint_eq(v.lag_missed, 0);
	ck_assert_uint_eq(ls_polls_records(ps, &gaps), 2 * NPOLLS);
	ls_polls_free(ps);

	/* Cut inside A's poll 150, 3 ms after its entry: a snapshot then
	 * would read 151 polls, 150 busy periods and 150 returns. */
	ps = ls_polls_new(100 * MS, a[150].enter_ns + 3 * MS);
	ck_assert_int_eq(ls_polls_add(ps, back[0], NPOLLS), 0);
	ck_assert_int_eq(ls_polls_view(ps, PID, &v, NULL), 0);
	ck_assert_uint_eq(v.polls, 151);
	ck_assert(v.in_poll);
	ck_assert_uint_eq(v.busy.count, 150);
	ck_assert_uint_eq(v.poll.count, 150);
	ck_assert_uint_eq(v.lag.count, 150);
	ck_assert_uint_eq(v.poll_enter_ns, a[150].enter_ns);
	ls_polls_free(ps);

	/* A lost record (seq 51 of A): counted, and the busy period after
	 * it still known (its start comes with the next record). */
	ps = ls_polls_new(100 * MS, UINT64_MAX);
	ck_assert_int_eq(ls_polls_add(ps, back[0], 50), 0);
	ck_assert_int_eq(ls_polls_add(ps, back[0] + 51, NPOLLS - 51), 0);
	ck_assert_int_eq(ls_polls_view(ps, PID, &v, &gaps), 0);
	ck_assert_uint_eq(gaps, 1);
	ck_assert_uint_eq(v.polls, NPOLLS);
	ck_assert_uint_eq(v.busy.count, NPOLLS - 2);
	ck_assert_uint_eq(v.poll.count, NPOLLS - 3); /* the lost one's, and the one before */
	ls_polls_free(ps);

	/* report --from/--to: cut at the polls, not at the snapshots (1 s
	 * and 3 s). A's entries after 500 ms and up to 1500 ms: its polls
	 * start at 10 ms, every 10 ms, the 100th 146 ms later. */
	for (int k = 0; k < NPOLLS; k++)
		total += a[k].enter_ns > T0 + 500 * MS && a[k].enter_ns <= T0 + 1500 * MS;
	ck_assert_int_eq(report(&o, path, "--from=500ms", "--to=1500ms"), 0);
	char want[128];

	snprintf(want, sizeof(want), "tid %d (?), epoll_wait: %llu iterations", PID,
		 (unsigned long long)total);
	ck_assert_msg(strstr(o.stdout_text, want), "no '%s' in %s", want, o.stdout_text);
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "report: 1.00 s"));
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "every poll recorded: 600 polls"));
	ls_test_out_free(&o);
	unlink(path);
}
END_TEST

/*
 * The per-callback stream (format 1.4): a precise recording with three
 * callback keys and two threads: A (pid's main thread) runs NCBS
 * callbacks, one every 10 ms from +10 ms, of (k % 7 + 1) us, the 100th
 * 150 ms long, every 50th with a nested callback of 2 us inside it (ended
 * first: its start is before the previous record's end, a negative
 * delta); B (tid + 1) NCBS callbacks of 3 us every 3 ms. The recorded
 * table is the histograms of them all. Read back field for field; the
 * stream whole gives the table slot for slot; a record missing is a gap;
 * report --from/--to cuts the table at the callbacks.
 */
#define NCBS 300
static const struct ls_cb_name cb_names[3] = {
	{ "handler", "/srv/app.py", 10 }, { "Worker.tick", "/srv/app.py", 30 }, { "inner", "/srv/lib.py", 5 },
};

static const struct ls_cb_name *cb_name_of(const struct ls_cb_key *k, void *ctx)
{
	(void)ctx;
	return &cb_names[(k->code - 0x1000) / 0x100];
}

static struct ls_cb_key cb_key(int i)
{
	struct ls_cb_key k = { .tgid = PID, .kind = i == 1 ? LS_CB_METHOD : LS_CB_FUNCTION,
			       .code = 0x1000 + 0x100 * (uint64_t)i, .name = 0x9000 + (uint64_t)i };

	return k;
}

/* The stream: a[0..*na), b[0..NCBS), in each thread's order of ends. */
static void cbs_of(struct ls_callback_event *a, size_t *na, struct ls_callback_event *b)
{
	size_t n = 0;

	for (int k = 0; k < NCBS; k++) {
		uint64_t start = T0 + 10 * MS * (uint64_t)(k + 1);
		uint64_t dur = k == 100 ? 150 * MS : (uint64_t)(k % 7 + 1) * 1000;

		if (k % 50 == 0) { /* the nested one ends first */
			a[n] = (struct ls_callback_event){ .tid = PID, .seq = (uint32_t)n + 1,
							   .start_ns = start + 100, .duration_ns = 2000,
							   .key = cb_key(2) };
			n++;
			dur += 5000;
		}
		a[n] = (struct ls_callback_event){ .tid = PID, .seq = (uint32_t)n + 1,
						   .start_ns = start, .duration_ns = dur,
						   .key = cb_key(k % 2) };
		n++;
		b[k] = (struct ls_callback_event){ .tid = PID + 1, .seq = (uint32_t)k + 1,
						   .start_ns = T0 + 3 * MS * (uint64_t)(k + 1),
						   .duration_ns = 3000, .key = cb_key(0) };
	}
	*na = n;
}

/* The stream a, b (na, NCBS) and its table into a recording at path; its
 * END says lost callbacks were lost. */
static void write_cb_recording(const char *path, const struct ls_callback_event *a, size_t na,
			       const struct ls_callback_event *b, const struct ls_cb_entry *table,
			       uint64_t lost)
{
	struct ls_record_header h = { 0 };
	struct ls_record_writer *w;
	const struct ls_cb_name *names[3] = { &cb_names[0], &cb_names[1], &cb_names[2] };

	h.monotonic_ns = h.start_ns = T0;
	h.threshold_ns = 100 * MS;
	h.interval_ns = 1000 * MS;
	h.mode = 1;
	h.npids = 1;
	h.pids[0] = PID;
	ck_assert_int_eq(ls_record_open(path, &h, &w), 0);
	ck_assert_int_eq(ls_record_put_precise_target(w, PID, 3, 12, 1), 0);
	for (int k = 1; k <= 4; k++) { /* the epoll level's snapshots */
		struct ls_thread_view sv;

		view(&sv, 100 * (uint64_t)k, T0 + 1000 * MS * (uint64_t)k);
		ck_assert_int_eq(ls_record_put_snapshot(w, T0 + 1000 * MS * (uint64_t)k, &sv, 1), 0);
	}
	/* In batches as the ring hands them over, the threads interleaved. */
	for (size_t ia = 0, ib = 0; ia < na || ib < NCBS;) {
		size_t ka = na - ia < 64 ? na - ia : 64, kb = NCBS - ib < 32 ? NCBS - ib : 32;

		ck_assert_int_eq(ls_record_put_callback_runs(w, a + ia, ka, cb_name_of, NULL), 0);
		ck_assert_int_eq(ls_record_put_callback_runs(w, b + ib, kb, cb_name_of, NULL), 0);
		ia += ka;
		ib += kb;
	}
	ck_assert_uint_eq(ls_record_callback_runs(w, NULL), na + NCBS);
	ck_assert_int_eq(ls_record_put_callbacks(w, T0 + 4000 * MS, table, names, 3, T0 + 3999 * MS,
						 T0 + 4000 * MS), 0);
	struct ls_record_end en = { .end_ns = T0 + 4000 * MS, .npids = 1, .pids = { PID },
				    .every_callback = true,
				    .lost_callbacks = lost };

	ck_assert_int_eq(ls_record_put_end(w, &en), 0);
	ck_assert_int_eq(ls_record_close(w), 0);
}

START_TEST(test_callback_stream)
{
	static struct ls_callback_event a[2 * NCBS], b[NCBS], back[2][2 * NCBS];
	struct ls_record_header h;
	struct ls_cb_entry table[3];
	struct ls_replay *r;
	struct ls_replay_item it;
	struct ls_test_out o;
	size_t na, n[2] = { 0, 0 }, nkeys = 0, nwin;
	uint64_t gaps = 9, taken;
	char path[128];
	int err;

	cbs_of(a, &na, b);
	memset(table, 0, sizeof(table));
	for (int i = 0; i < 3; i++)
		table[i].key = cb_key(i);
	for (size_t i = 0; i < na; i++)
		ls_hist_record(&table[(a[i].key.code - 0x1000) / 0x100].stats.duration, a[i].duration_ns);
	for (size_t i = 0; i < NCBS; i++)
		ls_hist_record(&table[0].stats.duration, b[i].duration_ns);
	ls_test_tmp(path, sizeof(path), "cbrec");
	write_cb_recording(path, a, na, b, table, 0);

	/* Read back, field for field, keys resolved; each key named once. */
	struct ls_cbwin *all = ls_cbwin_new(0, UINT64_MAX);

	ck_assert_int_eq(ls_replay_open(path, &r, &h), 0);
	ck_assert_uint_eq(h.version_minor, 4);
	while ((err = ls_replay_next(r, &it)) > 0) {
		if (it.type == LS_REC_CB_KEY) {
			ck_assert_uint_eq(it.cb_index, nkeys);
			ck_assert_str_eq(it.cb_name->qualname, cb_name_of(it.cb_key, NULL)->qualname);
			nkeys++;
		} else if (it.type == LS_REC_CB_RUNS) {
			int k = it.tid == PID ? 0 : 1;

			memcpy(&back[k][n[k]], it.cbruns, it.ncbruns * sizeof(*it.cbruns));
			n[k] += it.ncbruns;
			ck_assert_int_eq(ls_cbwin_add(all, it.cbruns, it.ncbruns), 0);
		} else if (it.type == LS_REC_CALLBACKS) {
			ck_assert_uint_eq(it.cb_read_from_ns, T0 + 3999 * MS);
			ck_assert_uint_eq(it.cb_read_to_ns, T0 + 4000 * MS);
		} else if (it.type == LS_REC_END) {
			ck_assert(it.end.every_callback && it.end.lost_callbacks == 0);
		}
	}
	ck_assert_int_eq(err, 0);
	ls_replay_close(r);
	ck_assert_uint_eq(nkeys, 3);
	ck_assert_uint_eq(n[0], na);
	ck_assert_uint_eq(n[1], NCBS);
	ck_assert_int_eq(memcmp(back[0], a, na * sizeof(*a)), 0);
	ck_assert_int_eq(memcmp(back[1], b, sizeof(b)), 0);

	/* The stream whole is the table, slot for slot. */
	const struct ls_cb_entry *v = ls_cbwin_table(all, &nwin, &taken, &gaps);

	ck_assert_uint_eq(nwin, 3);
	ck_assert_uint_eq(taken, na + NCBS);
	ck_assert_uint_eq(gaps, 0);
	for (size_t i = 0; i < nwin; i++) {
		const struct ls_cb_entry *t = &table[(v[i].key.code - 0x1000) / 0x100];

		ck_assert_int_eq(memcmp(&v[i].key, &t->key, sizeof(t->key)), 0);
		ck_assert_int_eq(memcmp(&v[i].stats, &t->stats, sizeof(t->stats)), 0);
	}
	ls_cbwin_free(all);

	/* A record missing (A's 51st): one callback missing, counted. */
	all = ls_cbwin_new(0, UINT64_MAX);
	ck_assert_int_eq(ls_cbwin_add(all, back[0], 50), 0);
	ck_assert_int_eq(ls_cbwin_add(all, back[0] + 51, na - 51), 0);
	ls_cbwin_table(all, &nwin, &taken, &gaps);
	ck_assert_uint_eq(gaps, 1);
	ck_assert_uint_eq(taken, na - 1);
	ls_cbwin_free(all);

	/* report --from/--to: the table of the callbacks ending in (500 ms,
	 * 1500 ms]: A's callbacks k = 49..148 (start (k + 1) * 10 ms; the
	 * 149th ends after 1500 ms... computed here), B's from the stream. */
	uint64_t want[3] = { 0, 0, 0 };

	for (size_t i = 0; i < na; i++) {
		uint64_t end = a[i].start_ns + a[i].duration_ns;

		want[(a[i].key.code - 0x1000) / 0x100] += end > T0 + 500 * MS && end <= T0 + 1500 * MS;
	}
	for (size_t i = 0; i < NCBS; i++) {
		uint64_t end = b[i].start_ns + b[i].duration_ns;

		want[0] += end > T0 + 500 * MS && end <= T0 + 1500 * MS;
	}
	char *argv[] = { LOOPSCOPE, "report", path, "--json", "--from=500ms", "--to=1500ms", NULL };

	ck_assert_int_eq(ls_test_run_capture(&o, argv, 30000), 0);
	for (int i = 0; i < 3; i++) {
		char needle[600];

		snprintf(needle, sizeof(needle), "\"qualname\":\"%.100s\"", cb_names[i].qualname);
		char *at = strstr(o.stdout_text, needle);

		ck_assert_msg(at, "no %s in %s", needle, o.stdout_text);
		char *cnt = strstr(at, "\"count\":");

		ck_assert_ptr_nonnull(cnt);
		ck_assert_msg(strtoull(cnt + 8, NULL, 10) == want[i], "%s: %s, want %llu",
			      cb_names[i].qualname, cnt, (unsigned long long)want[i]);
	}
	ck_assert_ptr_nonnull(strstr(o.stdout_text, "\"every_callback\":{\"callbacks_recorded\":"));
	ls_test_out_free(&o);
	unlink(path);

	/* Records lost: one line says so, and --from/--to keep the table
	 * whole (never a table of a partial stream). */
	write_cb_recording(path, a, na, b, table, 3);
	char *targv[] = { LOOPSCOPE, "report", path, "--from=500ms", "--to=1500ms", NULL };

	ck_assert_int_eq(ls_test_run_capture(&o, targv, 30000), 0);
	ck_assert_msg(strstr(o.stdout_text, "CALLBACK STREAM INCOMPLETE: 3 callbacks lost"), "%s",
		      o.stdout_text);
	char whole[64];

	snprintf(whole, sizeof(whole), "%8llu ", (unsigned long long)table[0].stats.duration.count);
	ck_assert_msg(strstr(o.stdout_text, whole), "no whole-table count %s in %s", whole,
		      o.stdout_text);
	ls_test_out_free(&o);
	unlink(path);
}
END_TEST

/* A bad file: exit code want, one line on stderr holding what, and (when
 * nslow >= 0) a report of the nslow periods before the damage. */
static void expect_bad(const char *path, int want, const char *what, int nslow)
{
	struct ls_test_out o;
	char line[64];

	ck_assert_int_eq(report(&o, path, NULL, NULL), want);
	ck_assert_int_eq(count_lines(o.stderr_text), 1);
	ck_assert_msg(strstr(o.stderr_text, what), "stderr: %s", o.stderr_text);
	if (nslow >= 0) {
		snprintf(line, sizeof(line), "slow busy periods (> 100.0 ms): %d", nslow);
		ck_assert_msg(strstr(o.stdout_text, line), "stdout: %s", o.stdout_text);
	} else {
		ck_assert_str_eq(o.stdout_text, "");
	}
	ls_test_out_free(&o);
}

START_TEST(test_truncated)
{
	char *path = tmp_recording(true);

	/* Cut inside the second block: the first one is reported. */
	ck_assert_int_eq(truncate(path, block_offset(path, 1) + 20), 0);
	expect_bad(path, LS_EXIT_REC_TRUNCATED, "truncated", 2);
	/* Cut inside a block header. */
	ck_assert_int_eq(truncate(path, block_offset(path, 1) + 5), 0);
	expect_bad(path, LS_EXIT_REC_TRUNCATED, "truncated", 2);
	unlink(path);
	/* The recorder killed: whole blocks, no end record. */
	path = tmp_recording(false);
	expect_bad(path, LS_EXIT_REC_TRUNCATED, "truncated", 3);
	unlink(path);
	/* Cut inside the header. */
	path = tmp_recording(true);
	ck_assert_int_eq(truncate(path, 100), 0);
	expect_bad(path, LS_EXIT_REC_TRUNCATED, "truncated", -1);
	unlink(path);
}
END_TEST

START_TEST(test_corrupt_block)
{
	char *path = tmp_recording(true);
	off_t b1 = block_offset(path, 1), b2 = block_offset(path, 2);

	/* A byte of the second block's data flipped: its CRC fails. */
	poke(path, b1 + 16 + (b2 - b1 - 16) / 2, 0x5a);
	expect_bad(path, LS_EXIT_REC_CORRUPT, "corrupt block", 2);
	unlink(path);
	/* Its length made huge. */
	path = tmp_recording(true);
	poke(path, block_offset(path, 1) + 11, 0x7f);
	expect_bad(path, LS_EXIT_REC_CORRUPT, "corrupt block", 2);
	unlink(path);
	/* Garbage after the end. */
	path = tmp_recording(true);
	int fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_eq(write(fd, "garbage!garbage!garbage!", 24), 24);
	close(fd);
	expect_bad(path, LS_EXIT_REC_CORRUPT, "corrupt block", 3);
	unlink(path);
}
END_TEST

START_TEST(test_newer_version)
{
	char *path = tmp_recording(true);

	poke(path, 8, LS_RECORD_VERSION_MAJOR + 1);
	expect_bad(path, LS_EXIT_REC_NEWER, "newer loopscope", -1);
	unlink(path);
}
END_TEST

START_TEST(test_not_a_recording)
{
	char path[128];
	int fd;

	ls_test_tmp(path, sizeof(path), "notrec");
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_eq(write(fd, "\x89PNG\r\n\x1a\n0000000000000000", 24), 24);
	close(fd);
	expect_bad(path, LS_EXIT_REC_NOT_RECORD, "not a loopscope recording", -1);
	ck_assert_int_eq(truncate(path, 0), 0);
	expect_bad(path, LS_EXIT_REC_NOT_RECORD, "not a loopscope recording", -1);
	unlink(path);
	/* A recording whose header was damaged (its CRC fails). */
	char *rec = tmp_recording(true);
	poke(rec, 100, 0xff);
	expect_bad(rec, LS_EXIT_REC_NOT_RECORD, "not a loopscope recording", -1);
	unlink(rec);
	expect_bad("/nonexistent/loopscope.rec", LS_EXIT_REC_UNREADABLE, "No such file", -1);
	expect_bad("/tmp", LS_EXIT_REC_UNREADABLE, "directory", -1);
}
END_TEST

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Record types and fields a later minor version may add are skipped: a
 * block made here of an unknown record (type 99), a name, a thread record
 * 4 bytes longer than this reader knows, and an end record. */
START_TEST(test_reader_skips_unknown)
{
	char *path = tmp_recording(true);
	struct ls_replay *r;
	struct ls_record_header h;
	struct ls_replay_item it;
	unsigned char file[4096], raw[256], *p = raw;
	off_t hlen = block_offset(path, 0);
	uLongf clen = sizeof(file) - hlen - 16;
	int fd = open(path, O_RDONLY), n = 0, err;

	ck_assert_int_eq(read(fd, file, hlen), hlen);
	close(fd);
	put32(p, 99); put32(p + 4, 5); memcpy(p + 8, "hello", 5); p += 13;
	put32(p, LS_REC_STRING); put32(p + 4, 5); put32(p + 8, 0); p[12] = 'T'; p += 13;
	put32(p, LS_REC_THREAD); put32(p + 4, 16); put32(p + 8, 7); put32(p + 12, 8);
	put32(p + 16, 0); put32(p + 20, 0xdeadbeef); p += 24;
	put32(p, LS_REC_END); put32(p + 4, 68); memset(p + 8, 0, 68); p += 76;
	ck_assert_int_eq(compress(file + hlen + 16, &clen, raw, p - raw), Z_OK);
	put32(file + hlen, 0x4b42534c);
	put32(file + hlen + 4, p - raw);
	put32(file + hlen + 8, clen);
	uLong crc = crc32(crc32(0, file + hlen, 12), file + hlen + 16, clen);
	put32(file + hlen + 12, crc);
	ck_assert_int_eq(ls_replay_open_mem(file, hlen + 16 + clen, &r, &h), 0);
	while ((err = ls_replay_next(r, &it)) > 0) {
		n++;
		if (it.type == LS_REC_THREAD) {
			ck_assert_str_eq(it.name, "T");
			ck_assert_uint_eq(it.tid, 8);
		}
	}
	ck_assert_int_eq(err, 0);
	ck_assert_int_eq(n, 2); /* the thread and the end */
	ls_replay_close(r);
	unlink(path);
}
END_TEST

/* A sink writer's blocks (the daemon's flight recorder) are each
 * self-contained: with the first of three dropped, a file of the other two
 * (copied with ls_record_put_block after a block of the writer's own
 * names) reads back whole, every name right (the reader restarts its name
 * table at id 0); the old code refused the second id 0 (corrupt). */
struct sink_blocks {
	unsigned char *b[4];
	size_t len[4];
	int n;
};

static int keep_block(const uint8_t hdr[16], const uint8_t *comp, size_t clen, void *ctx)
{
	struct sink_blocks *sb = ctx;

	ck_assert_int_lt(sb->n, 4);
	sb->b[sb->n] = malloc(16 + clen);
	ck_assert_ptr_nonnull(sb->b[sb->n]);
	memcpy(sb->b[sb->n], hdr, 16);
	memcpy(sb->b[sb->n] + 16, comp, clen);
	sb->len[sb->n++] = 16 + clen;
	return 0;
}

START_TEST(test_sink_blocks_stand_alone)
{
	static const char *threads[3] = { "loop-a", "loop-b", "loop-c" };
	struct sink_blocks sb = { 0 };
	struct ls_record_header h = { 0 };
	struct ls_record_writer *w;
	struct ls_record_end en = { .npids = 1, .pids = { PID } };
	struct ls_replay *r;
	struct ls_replay_item it;
	struct ls_slow_busy_event e;
	struct ls_thread_view v;
	char path[128];
	int ret, nslow = 0, nsnap = 0;
	bool saw_proc = false;

	ck_assert_int_eq(ls_record_open_sink(keep_block, &sb, &w), 0);
	for (int k = 0; k < 3; k++) {
		slow_event(&e, T0 + (uint64_t)k * 1000 * MS + 100 * MS, 150 * MS);
		ck_assert_int_eq(ls_record_put_slow_busy(w, &e, threads[k], NULL), 0);
		view(&v, 100 + (uint64_t)k * 100, T0 + (uint64_t)(k + 1) * 1000 * MS);
		ck_assert_int_eq(ls_record_put_snapshot(w, T0 + (uint64_t)(k + 1) * 1000 * MS, &v, 1), 0);
		ck_assert_int_eq(ls_record_flush(w), 0);
	}
	ck_assert_int_eq(sb.n, 3);
	ck_assert_uint_eq(ls_record_pending(w), 0);
	ck_assert_int_eq(ls_record_put_block(w, sb.b[0], sb.len[0]), -EINVAL); /* a sink's */
	ck_assert_int_eq(ls_record_close(w), 0);

	h.start_ns = T0 + 1000 * MS;
	h.threshold_ns = 100 * MS;
	h.interval_ns = 1000 * MS;
	h.npids = 1;
	h.pids[0] = PID;
	ls_test_tmp(path, sizeof(path), "flight");
	ck_assert_int_eq(ls_record_open(path, &h, &w), 0);
	ck_assert_int_eq(ls_record_put_process(w, PID, "app", ""), 0);
	ck_assert_int_eq(ls_record_put_thread(w, PID, PID, "loop-c"), 0);
	for (int k = 1; k < 3; k++)
		ck_assert_int_eq(ls_record_put_block(w, sb.b[k], sb.len[k]), 0);
	en.end_ns = T0 + 3000 * MS;
	ck_assert_int_eq(ls_record_put_end(w, &en), 0);
	ck_assert_int_eq(ls_record_close(w), 0);

	ck_assert_int_eq(ls_replay_open(path, &r, &h), 0);
	while ((ret = ls_replay_next(r, &it)) == 1) {
		if (it.type == LS_REC_PROCESS) {
			ck_assert_str_eq(it.name, "app");
			saw_proc = true;
		} else if (it.type == LS_REC_SLOW_BUSY) {
			ck_assert_str_eq(it.thread, threads[1 + nslow]);
			ck_assert_uint_eq(it.slow->start_ns, T0 + (uint64_t)(1 + nslow) * 1000 * MS + 100 * MS);
			nslow++;
		} else if (it.type == LS_REC_SNAPSHOT) {
			ck_assert_uint_eq(it.views[0].polls, 200 + (uint64_t)nsnap * 100);
			nsnap++;
		}
	}
	ck_assert_int_eq(ret, 0);
	ck_assert(saw_proc);
	ck_assert_int_eq(nslow, 2);
	ck_assert_int_eq(nsnap, 2);
	ls_replay_close(r);
	unlink(path);
	for (int k = 0; k < sb.n; k++)
		free(sb.b[k]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("record");
	TCase *tc = tcase_create("record");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_report_clean);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_corrupt_block);
	tcase_add_test(tc, test_newer_version);
	tcase_add_test(tc, test_not_a_recording);
	tcase_add_test(tc, test_reader_skips_unknown);
	tcase_add_test(tc, test_sink_blocks_stand_alone);
	tcase_add_test(tc, test_polls_stream);
	tcase_add_test(tc, test_callback_stream);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
