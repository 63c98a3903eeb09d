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

#include "loopscope/loopscope.h"
#include "loopscope/pycallback.h"
#include "loopscope/pyname.h"

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
void cli_jadd_u64(json_object *o, const char *k, uint64_t v);
/* {count, sum_ns, p50_ns, p90_ns, p99_ns, p999_ns, max_ns} */
json_object *cli_hist_json(const struct ls_hist *h);

/* ---- precise.c: CPython precise mode in `attach` ------------------------ */

#define CLI_MAX_PIDS 64
/* Python processes in precise mode at once (run follows descendants). */
#define CLI_MAX_TARGETS LS_MAX_PY_TARGETS

struct cli_precise {
	bool json, quiet;
	bool quiet_resolve;              /* no "precise mode" line per target */
	int64_t mono_to_real_ns;
	uint64_t threshold_ns;
	const char *btf_path;
	struct ls_pycb *pycb;            /* NULL until a target resolves */
	struct ls_pyname_cache *names;
	struct ls_py_target *targets;    /* resolved and attached ones */
	int ntargets;
	struct ls_slow_callback_event *slow; /* kept for the report */
	size_t nslow, slow_dropped;
};

/* Resolve pid's CPython (into *t) and attach precise mode to it. Returns 0
 * when attached; 1 when pid stays at epoll level: one line on stderr says
 * why (not for a process that is not Python, or gone, when
 * quiet_not_python), *resolve_err being ls_py_resolve's error, or 0 when it
 * resolved but could not be probed; -errno when the BPF object could not be
 * loaded. A target in precise mode gets a line too, and the JSON report of
 * attach lists them in "precise_targets". */
int cli_precise_add(struct cli_precise *p, pid_t pid, bool quiet_not_python,
		    int *resolve_err, struct ls_py_target *t);
/* Attach precise mode to an already resolved target: 0; -EAGAIN when it
 * could not be probed (one line said why; epoll level goes on); -errno when
 * the BPF object could not be loaded. */
int cli_precise_add_resolved(struct cli_precise *p, const struct ls_py_target *t);
/* The name of callback k (cached; read from the process on first use). */
const struct ls_cb_name *cli_precise_name(struct cli_precise *p, const struct ls_cb_key *k);
void cli_precise_remove(struct cli_precise *p, pid_t pid);
/* Deliver pending slow-callback events (printed as they come). */
void cli_precise_poll(struct cli_precise *p);
/* The report part: top callbacks per process, slow callbacks. Text on
 * stdout, or fields added to the JSON report object jr. */
void cli_precise_report(struct cli_precise *p, json_object *jr);
void cli_precise_close(struct cli_precise *p);

#endif /* LOOPSCOPE_CLI_H */
