/* SPDX-License-Identifier: MIT */
/*
 * Timeline export of a recording (`loopscope report FILE --perfetto OUT`,
 * `--folded OUT`; cli/timeline.c): Chrome Trace Event JSON, one track per
 * loop thread (docs/RECORD.md, "Timeline").
 */
#ifndef LOOPSCOPE_CLI_TIMELINE_H
#define LOOPSCOPE_CLI_TIMELINE_H

#include "attach.h"

struct cli_timeline;

/* A timeline of recording h over [from_ns, to_ns] (CLOCK_MONOTONIC),
 * written to perfetto_path and/or folded_path (NULL: not asked) by
 * cli_timeline_finish. NULL on ENOMEM. */
struct cli_timeline *cli_timeline_new(const struct ls_record_header *h, const char *perfetto_path,
				      const char *folded_path, uint64_t from_ns, uint64_t to_ns);
/* Process pid's track: named "comm (interp)". */
void cli_timeline_process(struct cli_timeline *t, uint32_t pid, const char *comm,
			  const char *interp);
/* A snapshot: counters of each thread's interval since the previous one. */
void cli_timeline_snapshot(struct cli_timeline *t, uint64_t now_ns,
			   const struct ls_thread_view *v, size_t n);
/* A slow busy period: a slice on its thread's track, named by its culprit
 * frame, its stacks as arguments. */
void cli_timeline_slow(struct cli_timeline *t, const struct ls_slow_busy_event *e,
		       const char *thread, const struct ls_stack_summary *st);
/* A slow callback (precise mode): a slice on its thread's track (inside
 * its busy period's), named by the callback (its Task's when its stack
 * names one: slow_name), its stacks as arguments. */
void cli_timeline_slow_callback(struct cli_timeline *t, const struct ls_slow_callback_event *e,
				const struct ls_cb_name *name, const struct ls_cb_name *slow_name,
				const struct ls_stack_summary *st);
/* Every busy period and callback the streams hold (s: NULL or none:
 * nothing), a slice each on its thread's track ("busy", named "busy";
 * "callback", named by the callback), as many as s kept; the trace's
 * "otherData" and one line on stderr say how many were left out. */
struct cli_spans;
void cli_timeline_spans(struct cli_timeline *t, const struct cli_spans *s);
/* Write the files: 0, or 1 after one line on stderr. */
int cli_timeline_finish(struct cli_timeline *t);
void cli_timeline_free(struct cli_timeline *t);

#endif /* LOOPSCOPE_CLI_TIMELINE_H */
