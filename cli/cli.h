/* SPDX-License-Identifier: MIT */
/* The loopscope command line: argument parsing and presentation only. */
#ifndef LOOPSCOPE_CLI_H
#define LOOPSCOPE_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <stdarg.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>

#include "loopscope/appframe.h"
#include "loopscope/json.h"
#include "loopscope/loopscope.h"
#include "loopscope/pycallback.h"
#include "loopscope/pyname.h"
#include "loopscope/run.h"
#include "loopscope/slowstack.h"

/* `loopscope attach`: argv[0] is "attach". Returns an enum ls_exit code. */
int cli_attach(int argc, char **argv);
void cli_attach_usage(FILE *f);

/* `loopscope run ... -- CMD`: argv[0] is "run". Returns CMD's exit code,
 * or LS_RUN_EXIT_* (include/loopscope/run.h). */
int cli_run(int argc, char **argv);
void cli_run_usage(FILE *f);

/* `loopscope top` (live view) and `loopscope status` (printed once):
 * argv[0] is the command. An enum ls_exit code. (cli/top.c) */
int cli_top(int argc, char **argv);
int cli_status(int argc, char **argv);

/* ---- options.c: the options attach and run share ------------------------ */

enum cli_mode { CLI_MODE_DEFAULT, CLI_MODE_LIGHT, CLI_MODE_PRECISE };

struct cli_common {
	uint64_t threshold_ns;     /* --threshold DURATION (LS_DEFAULT_THRESHOLD_NS) */
	enum cli_mode mode;        /* --mode light|precise; each command has its default */
	bool quiet;                /* -q, --quiet */
	bool stacks;               /* true unless --no-stacks */
	const char *folded_path;   /* --folded FILE, NULL without */
	const char *app_paths[LS_APPFRAME_MAX_PATHS]; /* --app-path PATH, repeatable */
	int napp_paths;            /* 0: each target's working directory */
};

/* The shared entries of a command's getopt_long table (put them first;
 * their values are the short options of cli_common_option; -h is the
 * command's own). */
#define CLI_COMMON_OPTIONS                                        \
	{ "threshold", required_argument, NULL, 't' },            \
	{ "mode", required_argument, NULL, 'm' },                 \
	{ "quiet", no_argument, NULL, 'q' },                      \
	{ "no-stacks", no_argument, NULL, 'S' },                  \
	{ "folded", required_argument, NULL, 'F' },               \
	{ "app-path", required_argument, NULL, 'P' },             \
	{ "help", no_argument, NULL, 'h' }

/* c with every shared option at its default. */
void cli_common_defaults(struct cli_common *c);
/* Take option opt (getopt_long's return) with its argument arg when it is
 * a shared one: 1 taken, 0 not a shared option (the command's own), or
 * -EINVAL after one line on stderr (a malformed duration or mode). */
int cli_common_option(struct cli_common *c, int opt, const char *arg);
/* After parsing: 0, or -EINVAL after one line on stderr (--folded with
 * --no-stacks). */
int cli_common_check(const struct cli_common *c);

/* ---- output.c ---------------------------------------------------------- */

/* libbpf's messages: silent (errors are reported by us, in one line),
 * warnings on stderr with LOOPSCOPE_DEBUG set. For libbpf_set_print(). */
int cli_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args);

/* Parse the value of duration option opt ("--threshold") into *ns: 0, or
 * -EINVAL for a malformed or zero duration, after one line on stderr. */
int cli_parse_duration(const char *opt, const char *val, uint64_t *ns);

/* Wall-clock "HH:MM:SS.mmm" of CLOCK_MONOTONIC time mono_ns. */
char *cli_clock(int64_t mono_to_real_ns, uint64_t mono_ns, char *buf, size_t len);
/* Print o as one JSON line on stdout and release it. */
void cli_print_json(json_object *o);
/* The await chain of a slow period on its own line under it (nothing when
 * there is none): indent, then ls_pytask_chain_text. */
void cli_print_chain(const struct ls_pytask_chain *c, const char *indent);
/* {count, sum_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns} */
json_object *cli_hist_json(const struct ls_hist *h);

/* ---- stacks.c: Python stacks of slow periods ---------------------------- */

struct cli_stacks {
	bool enabled;               /* --no-stacks turns them off */
	bool quiet;                 /* no "stacks off" lines */
	bool resolve_said_elsewhere; /* precise mode prints resolution errors
				      * (and notes) of the same pids itself */
	struct ls_loop *loop;       /* the session whose stack events these are */
	struct ls_slowstack *col;
	struct ls_folded *folded;   /* with --folded FILE */
	int nprocs;                 /* processes whose stacks can be walked */
	int npython;                /* processes cli_stacks_add found to be CPython
				     * (supported or not) */
	const char *folded_path;
	const char *const *app_paths; /* --app-path (napp_paths of them; 0: cwd) */
	int napp_paths;
	struct ls_appframe *app;    /* names each period's application frame */
	struct cli_task_proc *task_procs; /* 3.14+ processes whose await chains are read */
	size_t ntask_procs;
	struct cli_task_read *task_reads; /* the last chains read, a ring */
	size_t task_next;
};

/* Make the collector (and the folded accumulator when folded_path is set).
 * 0 or -ENOMEM. */
int cli_stacks_init(struct cli_stacks *cs);
/* Options for ls_loop_open: stacks in busy periods older than a quarter of
 * the threshold, sampled at 1 kHz, into cs. */
void cli_stacks_loop_opts(struct cli_stacks *cs, uint64_t threshold_ns, struct ls_loop_opts *o);
/* The session is open: stacks come from loop l, unless their programs
 * could not be set up (then one line on stderr says so, and they are off). */
void cli_stacks_opened(struct cli_stacks *cs, struct ls_loop *l);
/* Resolve pid's CPython and let the walker read its stacks: true when it
 * can; else false and, unless quiet, one line on stderr saying why. */
bool cli_stacks_add(struct cli_stacks *cs, pid_t pid);
/* Same, for a target ls_py_resolve has already resolved. */
bool cli_stacks_add_resolved(struct cli_stacks *cs, const struct ls_py_target *t);
/* Stop walking pid's stacks and forget them (it exec'd: its old image's
 * offsets no longer apply). */
void cli_stacks_remove(struct cli_stacks *cs, pid_t pid);
/* The stacks of tid over [from_ns, to_ns] into *sum (empty when stacks are
 * off); with drain, first read stack events still in the loop's ring buffer
 * (callers outside that ring buffer's own callbacks: precise mode). With
 * fold, --folded output accumulates them, under thread name comm (slow busy
 * periods fold; the slow callbacks inside them would count twice). */
void cli_stacks_take(struct cli_stacks *cs, uint32_t tgid, uint32_t tid, uint64_t from_ns,
		     uint64_t to_ns, bool drain, bool fold, const char *comm,
		     struct ls_stack_summary *sum);
/* Drop events that arrived more than 10 s before now_ns. */
void cli_stacks_prune(struct cli_stacks *cs, uint64_t now_ns);
/* Write --folded FILE (when asked): 0, or 1 after one line on stderr. */
int cli_stacks_write_folded(struct cli_stacks *cs);
/* One report line about stacks: walks done, those without frames. */
void cli_stacks_report(struct cli_stacks *cs, json_object *jr);
void cli_stacks_close(struct cli_stacks *cs);

/* ---- precise.c: CPython precise mode in `attach` ------------------------ */

#define CLI_MAX_PIDS 64

/* ---- cli/threads.c: exited threads and the thread table's counts ---- */

/* Exited loop threads whose last figures stay for attach's report. */
#define CLI_GONE_KEPT 64

struct cli_gone {
	struct ls_thread_view *v; /* at most CLI_GONE_KEPT, malloc'd on first use */
	size_t n;
	unsigned long long more;  /* exited loop threads beyond those kept */
	unsigned long long idle;  /* exited threads that never completed an iteration */
};

/* ls_thread_gone_fn for ls_loop_prune (ctx: a struct cli_gone): keep v. */
void cli_gone_keep(const struct ls_thread_view *v, void *ctx);
/* Append the kept views to *cur (realloc'd; *ncur grows). 0, or -1 on
 * ENOMEM (*cur unchanged). */
int cli_gone_append(const struct cli_gone *g, struct ls_thread_view **cur, size_t *ncur);
void cli_gone_free(struct cli_gone *g);
/* The report's lines (text: targets with untracked threads, exited
 * threads not listed, a full table) or, with jr, its JSON fields
 * "thread_table" [{pid, tracked, untracked, pruned}], "thread_quota",
 * "threads_table_full", "exited_threads_not_listed" (only when a thread
 * was untracked or pruned: a replayed recording has none of them). */
void cli_threads_report(struct ls_loop *l, const pid_t *pids, int npids, const struct cli_gone *g,
			json_object *jr);
/* Python processes in precise mode at once (run follows descendants). */
#define CLI_MAX_TARGETS LS_MAX_PY_TARGETS

struct cli_precise {
	bool json, quiet;
	bool quiet_resolve;              /* no "precise mode" line per target */
	int64_t mono_to_real_ns;
	uint64_t threshold_ns;
	const char *btf_path;
	struct ls_loop *loop;            /* its epoll-level session: the callbacks' split */
	struct ls_pycb *pycb;            /* NULL until a target resolves */
	struct ls_pyname_cache *names;
	struct ls_py_target *targets;    /* resolved and attached ones */
	int ntargets;
	struct ls_slow_callback_event *slow; /* kept for the report */
	struct ls_stack_summary *slow_stacks; /* the stacks of each */
	struct ls_cb_name *slow_names;   /* of each: its name from its stack when
					  * the key cannot tell (a pure-Python
					  * Task's step); qualname "" otherwise */
	size_t nslow, slow_dropped;
	struct cli_stacks *stacks;       /* NULL: no stacks */
	/* Recording (cli/attach.c) and replay (cli/report.c): */
	void (*on_kept)(void *ctx, size_t i); /* slow callback i was kept */
	void *on_kept_ctx;
	struct ls_cb_entry *fixed;       /* the report's callback table when taken
					  * already (recorded, or read back); owned */
	size_t nfixed;
	bool has_fixed;
	bool replay;                     /* names from fixed_names, not the process */
	struct ls_cb_name *fixed_names;  /* of fixed[i]; owned */
	struct ls_cb_name *slow_key_names; /* replay: of slow[i].key; owned */
	uint64_t replay_lost;            /* lost events, as recorded */
	/* The per-callback stream (--every-callback): handed its batches
	 * from the session (NULL: off); the time the table was read in
	 * (cli_precise_fix), for the recording. */
	ls_callbacks_fn on_callbacks;
	void *on_callbacks_ctx;
	uint64_t fix_from_ns, fix_to_ns;
	/* replay: the stream's keys and names (CB_KEY records), for the
	 * names of a window's table (cli_precise_window) */
	struct ls_cb_key *stream_keys;
	struct ls_cb_name *stream_names;
	size_t nstream, stream_cap;
};

/* Replay: the name of a stream key (an LS_REC_CB_KEY item). 0 or -ENOMEM. */
int cli_precise_stream_key(struct cli_precise *p, const struct ls_cb_key *k,
			   const struct ls_cb_name *nm);
/* Replay: the callback table becomes the n entries v (a window of the
 * per-callback stream, ls_cbwin_table), named from the recorded table or
 * the stream's keys. 0 or -ENOMEM. */
int cli_precise_window(struct cli_precise *p, const struct ls_cb_entry *v, size_t n);

/* The callback table of the report, taken now (a snapshot and the slow
 * callbacks still queued), kept in p->fixed: what the recording writes and
 * the report prints are then the same. 0, or -errno. */
int cli_precise_fix(struct cli_precise *p);
/* A row of precise mode's per-callback table (cli/cbrows.c). */
#define CLI_CB_APP_ROWS_MAX 256 /* (callable, application frame) rows at most */
struct cli_cb_row {
	struct ls_cb_key key;     /* the callable (the kernel's key) */
	bool has_app;             /* split out by this application frame (a function:
				   * app.line is its def line, as app.firstlineno) */
	struct ls_pyframe app;
	size_t parent;            /* (cli_cb_rows' use) */
	struct ls_hist h;         /* durations, ns */
};

/* The table of p's callbacks: one row per kernel entry v[0..n) (its
 * callable), less the kept slow callbacks whose stacks name an
 * application frame, which go to a row per (callable, application
 * function); at most CLI_CB_APP_ROWS_MAX such rows, the slow callbacks
 * beyond stay in their callable's row and are counted in *overflowed. A
 * callable row left empty is dropped. *out malloc'd (free()), *nout rows.
 * The callable row's max is exact when its largest call stayed in it, else
 * the upper bound of its highest slot (<= 1/16 above; ls_hist_sub). 0 or
 * -ENOMEM. */
int cli_cb_rows(const struct cli_precise *p, const struct ls_cb_entry *v, size_t n,
		struct cli_cb_row **out, size_t *nout, size_t *overflowed);

/* Resolve pid's CPython (into *t) and attach precise mode to it. Returns 0
 * when attached; 1 when pid stays at epoll level: one line on stderr says
 * why (not for a process that is not Python, or gone, when
 * quiet_not_python), *resolve_err being ls_py_resolve's error, or 0 when it
 * resolved but could not be probed; -errno when the BPF object could not be
 * loaded. A target in precise mode gets a line too, and the JSON report of
 * attach lists them in "precise_targets". */
int cli_precise_add(struct cli_precise *p, pid_t pid, bool quiet_not_python,
		    int *resolve_err, struct ls_py_target *t);
/* Load precise mode's BPF object (verified once, no probe attached yet) with
 * p->threshold_ns, p->btf_path: 0, or -errno from ls_pycb_open / -ENOMEM.
 * Idempotent. `run` calls it before CMD starts, so that a target's set-up
 * is only its uprobes (the verifier's load took 0.1-0.5 s on a busy
 * machine, while a short test already ran); the add functions call it. */
int cli_precise_open(struct cli_precise *p);
/* Attach precise mode to an already resolved target: 0; -EAGAIN when it
 * could not be probed (one line said why; epoll level goes on); -errno when
 * the BPF object could not be loaded. */
int cli_precise_add_resolved(struct cli_precise *p, const struct ls_py_target *t);
/* Slow callback i (of p->slow): its key into *k and its name, a pure-Python
 * Task's step named as its Task (by its stack; kind LS_CB_TASK). */
const struct ls_cb_name *cli_precise_slow_name(struct cli_precise *p, size_t i,
					       struct ls_cb_key *k);
/* The name of callback k (cached; read from the process on first use). */
const struct ls_cb_name *cli_precise_name(struct cli_precise *p, const struct ls_cb_key *k);
void cli_precise_remove(struct cli_precise *p, pid_t pid);
/* Deliver pending slow-callback events (printed as they come). */
void cli_precise_poll(struct cli_precise *p);
/* The report part: top callbacks per process, slow callbacks. Text on
 * stdout, or fields added to the JSON report object jr. */
void cli_precise_report(struct cli_precise *p, json_object *jr);
void cli_precise_close(struct cli_precise *p);

/* ---- attach_opts.c, run_opts.c: each command's options ----------------- */

struct cli_attach_opts {
	pid_t pids[CLI_MAX_PIDS];  /* -p PID[,PID...], each once */
	int npids;
	uint64_t duration_ns;      /* -d; 0: until Ctrl-C */
	uint64_t interval_ns;      /* -i; 1 s */
	bool json;                 /* --json */
	const char *btf_path;      /* --btf; NULL: the running kernel's */
	unsigned int thread_quota; /* --thread-quota; 0: LS_THREAD_QUOTA */
	struct cli_common common;
	const char *record_path;   /* --record FILE (record: -o FILE); NULL without */
	bool no_report;            /* record: no report at the end */
	bool every_poll;           /* --every-poll: the per-poll stream into the recording */
	bool every_callback;       /* --every-callback: the per-callback stream (precise) */
	int release_fd;            /* record -- CMD: written once attached; -1 none */
	char **cmd;                /* record -- CMD ARGS: argv of CMD (NULL-ended) */
};

/* Attach with options o (cli_attach_parse's): an enum ls_exit code. */
int cli_attach_run(const struct cli_attach_opts *o);

/* `loopscope record` and `loopscope report FILE` (cli/record.c,
 * cli/report.c): enum ls_exit codes, enum ls_record_exit for bad files. */
int cli_record(int argc, char **argv);
void cli_record_usage(FILE *f);
int cli_report(int argc, char **argv);
/* `loopscope dump PID` (cli/dump.c). */
#define CLI_EXIT_NO_DAEMON 8 /* no daemon answers, or its flight recorder is off */
void cli_dump_usage(FILE *f);
int cli_dump(int argc, char **argv);
void cli_report_usage(FILE *f);

/* Parse attach's argv (argv[0] "attach", or "record": then -o FILE is
 * required, no report is printed, and -- CMD ARGS may stand for -p) into
 * *o: 0; 1 after --help printed the usage; -EINVAL after one line on
 * stderr (a bad option or value, no -p). */
int cli_attach_parse(int argc, char **argv, struct cli_attach_opts *o);

struct cli_run_opts {
	const char *json_out;      /* --json-out FILE, NULL without */
	const char *junit_out;     /* --junit FILE, NULL without */
	bool annotations;          /* --annotations; default: $GITHUB_ACTIONS is "true" */
	uint64_t threshold_ns;     /* slow from: --fail-on-slow when given, else --threshold */
	struct cli_common common;
};

/* Parse run's argv (argv[0] "run") into *o and the gates (--fail-on-slow,
 * --fail-on-lag-p99, --max-slow, --allow) and CMD ARGS joined (cmd) into
 * *r; CMD starts at argv[optind]. 0; 1 after --help printed the usage;
 * -EINVAL after one line on stderr (a bad option or value, no CMD). */
int cli_run_parse(int argc, char **argv, struct ls_run_result *r, struct cli_run_opts *o);

#endif /* LOOPSCOPE_CLI_H */
