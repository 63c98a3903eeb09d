/* SPDX-License-Identifier: MIT */
/* The reference loop's ground-truth log (examples/refloop/refloop.h):
 * JSON lines, CLOCK_MONOTONIC ns. Parsed with json-c. */
#ifndef LS_TEST_TRUTH_H
#define LS_TEST_TRUTH_H

#include <stddef.h>
#include <stdint.h>

struct ls_truth_poll {
	uint64_t enter_ns, exit_ns;
	int64_t timeout_ns; /* as the syscall got it; -1 infinite */
	int nevents;
};

struct ls_truth_callback {
	char name[64];
	uint64_t start_ns, end_ns;
};

struct ls_truth_timer {
	char name[64];
	uint64_t deadline_ns, dispatch_ns;
};

struct ls_truth {
	int pid, tid;
	char poll_kind[16];
	struct ls_truth_poll *polls;
	size_t npolls;
	struct ls_truth_callback *callbacks;
	size_t ncallbacks;
	struct ls_truth_timer *timers;
	size_t ntimers;
	int complete;     /* the "end" line was there */
	char error[256];  /* "FILE:LINE: reason" after -EINVAL */
};

struct ls_truth_busy {
	uint64_t start_ns, duration_ns;
};

/* Load the log at path into out (zeroed first). 0; -errno when the file
 * cannot be read; -EINVAL on a malformed line (out->error says where), except
 * an unterminated last line (the writer was killed), which is ignored. */
int ls_truth_load(const char *path, struct ls_truth *out);
void ls_truth_free(struct ls_truth *t);

/* Polls whose entry is in [from_ns, to_ns]. */
size_t ls_truth_count_polls(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns);

/* Busy periods (a poll's exit to the next poll's entry) longer than min_ns
 * whose end (that next entry) is in [from_ns, to_ns]; *out is malloc'd. */
size_t ls_truth_busy_periods(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns,
			     uint64_t min_ns, struct ls_truth_busy **out);

/* Timer lateness (dispatch - deadline, ns) of the timers dispatched in
 * [from_ns, to_ns]; *out_ns is malloc'd. */
size_t ls_truth_timer_lateness(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns,
			       uint64_t **out_ns);

/* Loop lateness of the timers dispatched in [from_ns, to_ns]: for each, the
 * first poll exit at or after its deadline, minus the deadline: how late the
 * loop got back to dispatching, which is what loopscope's loop lag measures
 * (docs/METRICS.md); unlike dispatch - deadline it leaves out the wait behind
 * other callbacks of the same iteration. *out_ns is malloc'd. */
size_t ls_truth_loop_lateness(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns,
			      uint64_t **out_ns);

/* Loop delay exactly (loopscope's ls_stats_delay_percentile estimates it
 * from histograms): over busy periods ending in (from_ns, to_ns] and polls
 * entered in [from_ns, to_ns], the smallest x with
 * (poll time + sum min(B_i, x)) / (poll time + sum B_i) >= q / 100. */
uint64_t ls_truth_delay_percentile(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns,
				   double q);

/* Exact nearest-rank percentile (rank ceil(q/100 * n), at least 1) of v[n];
 * sorts v in place. 0 when n == 0. */
uint64_t ls_truth_percentile(uint64_t *v, size_t n, double q);

#endif
