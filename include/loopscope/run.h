/* SPDX-License-Identifier: MIT */
/*
 * `loopscope run [gates] [reports] -- CMD ARGS...`: the result of one run,
 * built by cli/run.c and written by agent/gate/run_report.c in each report format
 * (in the agent library so that unit tests can link the writers).
 */
#ifndef LOOPSCOPE_RUN_H
#define LOOPSCOPE_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Exit codes of `run` beyond CMD's own (documented in --help and README):
 * CMD's exit code when no gate failed (128+N when a signal N killed it);
 * LS_RUN_EXIT_GATE when a gate failed and CMD succeeded (CMD's own non-zero
 * code wins when it failed too); LS_RUN_EXIT_ERROR for loopscope's own
 * errors (bad arguments included: 2 stays argument errors of CMD). */
#define LS_RUN_EXIT_GATE 86
#define LS_RUN_EXIT_ERROR 87
#define LS_RUN_EXIT_NOT_FOUND 127 /* CMD not found or not executable, as shells */

#define LS_RUN_MAX_ALLOW 32
#define LS_RUN_MAX_PROCS 512
#define LS_RUN_MAX_SLOW 4096

enum ls_run_slow_kind {
	LS_RUN_SLOW_CALLBACK, /* a Python callback (precise mode) */
	LS_RUN_SLOW_BUSY,     /* a busy period (epoll level: no precise mode there) */
};

/* One monitored process: CMD or a descendant that exec'd. */
struct ls_run_process {
	pid_t pid, ppid;
	char cmdline[512];  /* argv joined with spaces, from /proc/PID/cmdline at exec */
	char python[16];    /* "3.11" when CPython was resolved, "" otherwise */
	bool precise;       /* callbacks timed (else epoll level only) */
	int loop_threads;   /* threads that polled */
	uint64_t lag_p99_ns;/* worst loop thread's lag p99 (0 when no lag sample) */
	uint32_t lag_p99_tid;
};

/* A slow callback or busy period, whether a gate counts it or not. */
struct ls_run_slow {
	enum ls_run_slow_kind kind;
	char name[600];     /* "Task test_blocks() test_app.py:12", or "busy period" */
	char file[256];     /* co_filename, "" when unknown */
	int line;           /* co_firstlineno, 0 when unknown */
	char test[256];     /* pytest test it ran under ("test_app.py::test_blocks"), "" if none */
	char why[1024];     /* where the time went, with the Python stack (ls_slowstack_text), "" if unknown */
	/* The application frame (loopscope/appframe.h): the blocking line in
	 * the user's code; app_file "" when unknown. */
	char app_function[256];
	char app_file[256];
	int app_line;       /* the line it was on (its first line when unknown), 0 when none */
	/* The culprit (heaviest) stack, innermost first, one frame a line:
	 * "FUNCTION\tFILE\tLINE\n"; cut at a frame boundary; "" when none. */
	char frames[1536];
	pid_t pid, tid;
	uint64_t start_ns, duration_ns;
	/* Where its time went (times_known): on CPU, sleeping in the kernel,
	 * waiting for a CPU; ns. Exact for a busy period and for a callback
	 * whose event carries its split; else unknown (not the stack sums). */
	bool times_known;
	uint64_t on_cpu_ns, blocked_ns, runnable_ns;
	bool allowed;       /* matched an --allow pattern: reported, not counted */
};

struct ls_run_result {
	/* what ran */
	char cmd[1024];          /* CMD ARGS joined */
	int cmd_exit;            /* CMD's exit code, or -1 when a signal killed it */
	int cmd_signal;          /* the signal, 0 when it exited */
	uint64_t start_ns, end_ns;
	/* gates (0 / -1 = off) */
	uint64_t fail_on_slow_ns;
	uint64_t fail_on_lag_p99_ns;
	long max_slow;           /* -1: off; N: tolerate up to N counted slow events */
	const char *allow[LS_RUN_MAX_ALLOW];
	int nallow;
	/* what was seen */
	struct ls_run_process procs[LS_RUN_MAX_PROCS];
	int nprocs;
	struct ls_run_slow slow[LS_RUN_MAX_SLOW];
	int nslow;
	long slow_not_kept;      /* beyond LS_RUN_MAX_SLOW */
	uint64_t lost_events;    /* ring buffer full */
	/* verdicts */
	long slow_counted;       /* slow events above fail_on_slow_ns and not allowed */
	bool slow_gate_failed;
	bool lag_gate_failed;
	int exit_code;           /* what `run` exits with */
};

/* Report writers (agent/gate/run_report.c). Each returns 0 or -errno (file not
 * writable, ENOMEM). path "-" writes to stdout. */
int ls_run_write_json(const struct ls_run_result *r, const char *path);
int ls_run_write_junit(const struct ls_run_result *r, const char *path);
/* GitHub Actions workflow commands, one per counted violation, to f:
 * "::error file=F,line=L,title=loopscope slow callback::NAME ran 150.3 ms
 * in test T (pid P: CMDLINE)" where F:L is the application frame (the
 * blocking line) when known, else the event's file and line (" in test T"
 * only under a test)
 * (title "loopscope busy period" for a busy period; file/line omitted when
 * unknown; an absolute file under $GITHUB_WORKSPACE, else under the current
 * directory, is made relative to it as GitHub expects) and "::error title=loopscope loop lag::pid P (CMDLINE): loop lag
 * p99 62.0 ms on thread T, above 50.0 ms". Errors only when the gate failed;
 * counted slow events that --max-slow tolerated are "::warning". Escaped as
 * GitHub reads them: % \r \n -> %25 %0D %0A, and in properties : , -> %3A %2C. */
void ls_run_print_annotations(const struct ls_run_result *r, FILE *f);
/* Text summary for a person (stderr at the end of the run). */
void ls_run_print_summary(const struct ls_run_result *r, FILE *f);
/* Check that path can be written (created or truncated) before CMD starts:
 * 0 or -errno. */
int ls_run_check_writable(const char *path);

/* The verdicts (allowed, counted, gates failed) are decided by
 * loopscope/gate.h; the writers only say what was decided. */

#endif /* LOOPSCOPE_RUN_H */
