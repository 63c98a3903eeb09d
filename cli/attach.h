/* SPDX-License-Identifier: MIT */
/*
 * The state of `loopscope attach` (cli/attach.c), shared with the commands
 * that record it (cli/record.c) and replay it (cli/report.c): a recording
 * is read back into the same struct and printed by the same report code.
 */
#ifndef LOOPSCOPE_CLI_ATTACH_H
#define LOOPSCOPE_CLI_ATTACH_H

#include "cli.h"
#include "loopscope/abi/loop_events.h"
#include "loopscope/record.h"

#define MAX_PIDS CLI_MAX_PIDS
#define MAX_SLOW_KEPT 10000

struct slow_rec {
	struct ls_slow_busy_event ev;
	char thread[16];
	struct ls_stack_summary stacks; /* Python stacks of the period */
};

/* A slow period not yet counted in an interval line: its exact length makes
 * that interval's max exact (ls_stats_window_busy_max). */
struct slow_end {
	uint32_t tid;
	uint64_t end_ns, duration_ns;
};

struct thread_name {
	uint32_t tid;
	char name[16];
};

struct attach {
	/* options */
	pid_t pids[MAX_PIDS];
	int npids;
	uint64_t duration_ns;   /* 0: until Ctrl-C */
	uint64_t interval_ns;
	uint64_t threshold_ns;
	bool json, quiet;
	bool no_report;         /* `record`: no report at the end */
	const char *btf_path;   /* NULL: the running kernel's */
	bool want_precise;      /* --mode precise: per-callback probes on CPython */
	/* state */
	bool exited[MAX_PIDS];
	uint64_t exited_at_ns[MAX_PIDS];
	uint64_t start_ns;
	int64_t mono_to_real_ns;
	struct slow_rec *slow;
	size_t nslow, slow_dropped;
	struct thread_name *names;
	size_t nnames;
	struct slow_end *ends;  /* slow periods since the interval lines' last snapshot */
	size_t nends;
	struct cli_precise precise;
	struct cli_stacks stacks;
	/* recording (`record`, `attach --record FILE`) */
	const char *record_path;
	struct ls_record_writer *rec;
	int rec_err;            /* the first write error: recording stopped */
	/* replay (`report FILE`): names come from the file, never from /proc;
	 * the window may start at an earlier snapshot (--from) */
	bool replay;
	const struct ls_thread_view *before;
	size_t nbefore;
	struct ls_record_end rend; /* the stacks' counters for the report */
	bool rend_used;            /* recording: the report prints rend's counters,
				    * read once, as the file has them */
};

/* The final report of views v (n threads, copied at now_ns), lost slow
 * events: text or JSON on stdout. Returns the number of targets in which a
 * loop thread was seen. */
int cli_attach_report(struct attach *a, const struct ls_thread_view *v, size_t n,
		      uint64_t now_ns, uint64_t lost);
/* Thread tid's name: cached, else read from /proc (replay: "?"). */
const char *cli_attach_thread_name(struct attach *a, uint32_t tgid, uint32_t tid);
/* Add a name to the cache (replay). */
void cli_attach_set_thread_name(struct attach *a, uint32_t tid, const char *name);
/* Free what the report's state holds. */
void cli_attach_free(struct attach *a);
/* report.c: the stacks' line of a replayed report (the counters of the
 * end record). */
void cli_report_stacks(struct attach *a, json_object *jr);

#endif /* LOOPSCOPE_CLI_ATTACH_H */
