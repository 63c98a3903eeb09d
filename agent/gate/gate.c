// SPDX-License-Identifier: MIT
/* The verdicts of `loopscope run`: allowed, counted, failed. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/gate.h"

/* Whether pattern matches a place: "FILE:LINE", "BASE:LINE", or FUNCTION
 * (NULL: none). */
static bool place_matches(const char *pattern, const char *function, const char *file, int line)
{
	char where[600];
	const char *base = strrchr(file, '/');

	if (function && function[0] && fnmatch(pattern, function, 0) == 0)
		return true;
	if (!file[0])
		return false;
	snprintf(where, sizeof(where), "%s:%d", file, line);
	if (fnmatch(pattern, where, 0) == 0)
		return true;
	snprintf(where, sizeof(where), "%s:%d", base ? base + 1 : file, line);
	return fnmatch(pattern, where, 0) == 0;
}

/* Whether pattern matches a frame of frames ("FUNCTION\tFILE\tLINE\n"...). */
static bool frames_match(const char *pattern, const char *frames)
{
	char fn[256], file[256];
	int line;

	for (const char *p = frames; *p;) {
		const char *nl = strchr(p, '\n');
		const char *t1 = strchr(p, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;

		if (!nl || !t1 || !t2 || t2 > nl)
			break; /* not a line the run wrote */
		snprintf(fn, sizeof(fn), "%.*s", (int)(t1 - p), p);
		snprintf(file, sizeof(file), "%.*s", (int)(t2 - t1 - 1), t1 + 1);
		line = atoi(t2 + 1);
		if (place_matches(pattern, fn, file, line))
			return true;
		p = nl + 1;
	}
	return false;
}

bool ls_gate_allowed(const struct ls_run_result *r, const struct ls_run_slow *s)
{
	for (int i = 0; i < r->nallow; i++) {
		const char *pat = r->allow[i];

		if (fnmatch(pat, s->name, 0) == 0 || place_matches(pat, NULL, s->file, s->line) ||
		    place_matches(pat, s->app_function, s->app_file, s->app_line) ||
		    frames_match(pat, s->frames))
			return true;
	}
	return false;
}

bool ls_gate_slow_on(const struct ls_run_result *r)
{
	return r->fail_on_slow_ns > 0 || r->max_slow >= 0;
}

bool ls_gate_slow_counts(const struct ls_run_result *r, const struct ls_run_slow *s)
{
	return !s->allowed && s->duration_ns > r->fail_on_slow_ns;
}

bool ls_gate_lag_violates(const struct ls_run_result *r, const struct ls_run_process *p)
{
	return r->fail_on_lag_p99_ns > 0 && p->lag_p99_ns > r->fail_on_lag_p99_ns;
}

void ls_gate_decide(struct ls_run_result *r)
{
	for (int i = 0; i < r->nprocs; i++)
		r->lag_gate_failed |= ls_gate_lag_violates(r, &r->procs[i]);
	for (int i = 0; i < r->nslow; i++) {
		struct ls_run_slow *s = &r->slow[i];

		s->allowed = ls_gate_allowed(r, s);
		/* The same rule the report writers list violations by. */
		if (ls_gate_slow_counts(r, s))
			r->slow_counted++;
	}
	r->slow_counted += r->slow_not_kept;
	if (ls_gate_slow_on(r))
		r->slow_gate_failed = r->slow_counted > (r->max_slow >= 0 ? r->max_slow : 0);
}
