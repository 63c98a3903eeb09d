/* SPDX-License-Identifier: MIT */
/*
 * What the report writers of `loopscope run` share (agent/gate/run_report.c):
 * run_json.c, run_junit.c and run_text.c each write one format of the same
 * struct ls_run_result.
 */
#ifndef LS_GATE_REPORT_H
#define LS_GATE_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loopscope/run.h"

/* A fixed-size char array of a result (it may lack its NUL: then ""). */
#define FIELD(a) ls_report_field(a, sizeof(a))
const char *ls_report_field(const char *a, size_t n);

/* The run's length, ns (0 when it has no end). */
uint64_t ls_report_duration_ns(const struct ls_run_result *r);
/* Process pid of r, NULL when not listed. */
const struct ls_run_process *ls_report_find_proc(const struct ls_run_result *r, pid_t pid);
/* Its command line, NULL when unknown. */
const char *ls_report_cmdline_of(const struct ls_run_result *r, pid_t pid);
/* r->nslow and r->nprocs within their arrays. */
int ls_report_nslow(const struct ls_run_result *r);
int ls_report_nprocs(const struct ls_run_result *r);

/* A gate's value as written on the command line: the largest unit that
 * divides it exactly ("100ms", "1500ms", "2s", "250us"); returns buf. */
char *ls_report_gate_dur(uint64_t ns, char *buf, size_t len);

/* s with invalid UTF-8 and control characters (but \t, \n, \r) replaced
 * by '?': JSON and XML readers reject them. malloc'd; NULL on ENOMEM. */
char *ls_report_clean(const char *s);

/* Write len bytes to path ("-": stdout), creating or truncating it: 0 or
 * -errno (-EIO when the stream says nothing more). */
int ls_report_write_file(const char *path, const char *data, size_t len);

/* Messages shared by JUnit, annotations and the summary, into buf (len
 * bytes, cut there):
 *   headline  "Task test_blocks() ran 150.3 ms"
 *   pid note  "(pid 123: python3 -m pytest)" or "(pid 123)"
 *   lag       "pid 123 (python3 -m pytest): loop lag p99 62.0 ms on thread 124, above 50.0 ms"
 *   slow      the headline, place, pid note, thread and test of s. */
void ls_report_slow_headline(const struct ls_run_slow *s, char *buf, size_t len);
void ls_report_pid_note(const struct ls_run_result *r, pid_t pid, char *buf, size_t len);
void ls_report_lag_message(const struct ls_run_result *r, const struct ls_run_process *p, char *buf,
			   size_t len);
void ls_report_slow_message(const struct ls_run_result *r, const struct ls_run_slow *s, char *buf,
			    size_t len);

#endif /* LS_GATE_REPORT_H */
