/* SPDX-License-Identifier: MIT */
/*
 * The verdicts of `loopscope run` (agent/gate/gate.c): which slow events an
 * --allow pattern excuses, which count against --fail-on-slow/--max-slow,
 * and whether each gate failed. cli/run.c collects a struct ls_run_result
 * (loopscope/run.h); these decide; the report writers say what was decided.
 */
#ifndef LOOPSCOPE_GATE_H
#define LOOPSCOPE_GATE_H

#include <stdbool.h>

#include "loopscope/run.h"

/* Whether --allow excuses s: one of r->allow[] (fnmatch(3) globs, no
 * flags) matches s->name; or a place of s: its own file and line, its
 * application frame, or any frame of its culprit stack (s->frames), each
 * as "FILE:LINE" with the file as recorded or with its base name alone
 * ("app.py:42"), or the frame's function name alone. The same rule in
 * light and precise mode: a callback's stack holds the frames a busy
 * period is named by. */
bool ls_gate_allowed(const struct ls_run_result *r, const struct ls_run_slow *s);

/* Whether the slow gate is on: --fail-on-slow or --max-slow was given. */
bool ls_gate_slow_on(const struct ls_run_result *r);

/* A slow event counts when it is not allowed and lasted more than
 * fail_on_slow_ns (every non-allowed one when that gate is off). */
bool ls_gate_slow_counts(const struct ls_run_result *r, const struct ls_run_slow *s);

/* A process violates the lag gate when the gate is on and its lag_p99_ns
 * is above fail_on_lag_p99_ns. */
bool ls_gate_lag_violates(const struct ls_run_result *r, const struct ls_run_process *p);

/* Decide r's verdicts from what was seen (r->slow, r->procs, the gates):
 * set each slow event's allowed, r->slow_counted (events past
 * LS_RUN_MAX_SLOW, r->slow_not_kept, count too: whether a pattern would
 * have excused them cannot be known), r->slow_gate_failed (more counted
 * than --max-slow tolerates, 0 without it) and r->lag_gate_failed. Adds to
 * slow_counted and ORs lag_gate_failed: call it once per result. */
void ls_gate_decide(struct ls_run_result *r);

#endif /* LOOPSCOPE_GATE_H */
