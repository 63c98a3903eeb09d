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
	uint64_t offcpu_unseen;  /* ls_loop_offcpu_unseen at the end (the report prints it) */
	struct thread_name *names;
	size_t nnames;
	struct slow_end *ends;  /* slow periods since the interval lines' last snapshot */
	size_t nends, ends_cap;
	struct cli_precise precise;
	struct cli_stacks stacks;
	struct cli_gone gone;   /* exited loop threads pruned from the table (cli/threads.c) */
	struct ls_loop *loop;   /* the session (NULL in replay) */
	/* recording (`record`, `attach --record FILE`) */
	const char *record_path;
	struct ls_record_writer *rec;
	int rec_err;            /* the first write error: recording stopped */
	bool every_poll;        /* the per-poll stream recorded (--every-poll; replay: END says) */
	uint64_t polls_recorded;/* its polls in the file */
	uint64_t polls_lost;    /* its polls the ring dropped */
	bool every_callback;    /* the per-callback stream recorded (--every-callback; replay: END) */
	uint64_t cbs_recorded;  /* its callbacks in the file */
	uint64_t cbs_lost;      /* its callbacks lost (the ring, the writer's key table) */
	/* replay (`report FILE`): names come from the file, never from /proc;
	 * the window may start at an earlier snapshot (--from) */
	bool replay;
	const struct ls_thread_view *before;
	size_t nbefore;
	struct ls_record_end rend; /* the stacks' counters for the report */
	struct cli_spans *spans;   /* the streams' busy periods and callbacks for the
				    * timeline (cli/spans.h); NULL: none kept */
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
/* attach_record.c: recording. One line on stderr for the first write
 * error err (< 0; 0 does nothing), after which nothing more is written. */
void cli_attach_record_status(struct attach *a, int err);
/* Create a->record_path with its header and the targets' process records
 * (not for `record -- CMD`, cmd: CMD has not exec'd yet). 0, or -errno
 * after one line on stderr. */
int cli_attach_record_open(struct attach *a, bool cmd);
/* Snapshot v (n threads at now_ns), the new threads' names, then the block
 * closed: a crash loses at most what follows. */
void cli_attach_record_snapshot(struct attach *a, const struct ls_thread_view *v, size_t n,
				uint64_t now_ns);
/* ls_polls_fn of the session (--every-poll): polls into the recording. */
void cli_attach_record_polls(const struct ls_poll_event *p, size_t n, void *ctx);
/* ls_callbacks_fn of the precise session (--every-callback): callbacks
 * into the recording, each key named once (cli_precise_name). */
void cli_attach_record_cbs(const struct ls_callback_event *e, size_t n, void *ctx);
/* Precise mode's table (taken once, for the file and the report), the end
 * record (kept in a->rend: the report prints its counters), the file
 * closed. */
void cli_attach_record_end(struct attach *a, struct ls_loop *loop, uint64_t now_ns);
/* `record -- CMD`: once CMD (pid) has exec'd, its stacks and its process
 * record; tried for 2 s after since_ns. true when done. */
bool cli_attach_cmd_resolve(struct attach *a, pid_t pid, uint64_t since_ns, uint64_t now_ns);
/* Without a report (`record`): the targets in which a loop thread was seen. */
int cli_attach_record_seen(struct attach *a, const struct ls_thread_view *v, size_t n);
/* report.c: the stacks' line of a replayed report (the counters of the
 * end record). */
void cli_report_stacks(struct attach *a, json_object *jr);

#endif /* LOOPSCOPE_CLI_ATTACH_H */
