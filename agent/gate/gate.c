// SPDX-License-Identifier: MIT
/* The verdicts of `loopscope run`: allowed, counted, failed. */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "loopscope/gate.h"

bool ls_gate_allowed(const struct ls_run_result *r, const struct ls_run_slow *s)
{
	char where[300];
	const char *base = strrchr(s->file, '/');

	for (int i = 0; i < r->nallow; i++) {
		if (fnmatch(r->allow[i], s->name, 0) == 0)
			return true;
		if (!s->file[0])
			continue;
		snprintf(where, sizeof(where), "%s:%d", s->file, s->line);
		if (fnmatch(r->allow[i], where, 0) == 0)
			return true;
		snprintf(where, sizeof(where), "%s:%d", base ? base + 1 : s->file, s->line);
		if (fnmatch(r->allow[i], where, 0) == 0)
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
