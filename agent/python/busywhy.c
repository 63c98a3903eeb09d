// SPDX-License-Identifier: MIT
/* Where a slow busy period's time went, in each form an output shows it. */
#include <stdio.h>
#include <string.h>

#include "loopscope/abi/pycallback_events.h"
#include "loopscope/appframe.h"
#include "loopscope/busywhy.h"
#include "loopscope/json.h"
#include "loopscope/loopscope.h"
#include "loopscope/pytask.h"

char *ls_busy_why(const struct ls_slow_busy_event *e, const struct ls_stack_summary *st,
		  int max_frames, char *buf, size_t len)
{
	struct ls_period_times t;

	ls_slowstack_busy_times(e, &t);
	return ls_slowstack_text(st, &t, max_frames, buf, len);
}

char *ls_busy_why_brief(const struct ls_slow_busy_event *e, char *buf, size_t len)
{
	struct ls_period_times t;
	char d[3][16], sc[64];
	int n;

	ls_slowstack_busy_times(e, &t);
	n = snprintf(buf, len, "busy: %s on CPU", ls_duration_format(t.on_cpu_ns, d[0], 16));
	if (t.blocked_ns && n > 0 && (size_t)n < len) {
		ls_sys_syscall_name(t.top_syscall, sc, sizeof(sc));
		n += snprintf(buf + n, len - (size_t)n, ", %s blocked in %s",
			      ls_duration_format(t.blocked_ns, d[1], 16), sc);
	}
	if (t.runnable_ns && n > 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, ", %s waiting for a CPU",
			      ls_duration_format(t.runnable_ns, d[2], 16));
	if (t.untraced_ns && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", %s off CPU untraced",
			 ls_duration_format(t.untraced_ns, d[2], 16));
	return buf;
}

void ls_busy_why_json(json_object *o, const struct ls_slow_busy_event *e,
		      const struct ls_stack_summary *st)
{
	struct ls_period_times t;
	char sc[64];

	ls_slowstack_busy_times(e, &t);
	ls_json_add_u64(o, "on_cpu_ns", t.on_cpu_ns);
	ls_json_add_u64(o, "blocked_ns", t.blocked_ns);
	ls_json_add_u64(o, "runnable_ns", t.runnable_ns);
	if (t.untraced_ns)
		ls_json_add_u64(o, "offcpu_untraced_ns", t.untraced_ns);
	if (t.blocked_ns) {
		ls_sys_syscall_name(t.top_syscall, sc, sizeof(sc));
		json_object_object_add(o, "blocked_syscall", json_object_new_string(sc));
		ls_json_add_u64(o, "blocked_syscall_ns", t.top_block_ns);
	} else {
		json_object_object_add(o, "blocked_syscall", NULL);
	}
	json_object_object_add(o, "app_frame", ls_appframe_json(st && st->has_app ? &st->app : NULL));
	json_object_object_add(o, "stacks", ls_slowstack_json(st));
	json_object_object_add(o, "await_chain", ls_pytask_chain_json(st ? &st->chain : NULL));
}

bool ls_callback_times(const struct ls_slow_callback_event *e, const struct ls_stack_summary *st,
		       struct ls_period_times *t)
{
	uint64_t off;

	if (e->split != LS_CB_SPLIT_EXACT) {
		ls_slowstack_times(st, t);
		return false;
	}
	memset(t, 0, sizeof(*t));
	off = e->blocked_ns + e->runnable_ns;
	t->on_cpu_ns = e->duration_ns > off ? e->duration_ns - off : 0;
	t->blocked_ns = e->blocked_ns;
	t->runnable_ns = e->runnable_ns;
	t->top_block_ns = e->top_block_ns;
	t->top_syscall = e->top_syscall;
	return true;
}

void ls_callback_why_json(json_object *o, const struct ls_slow_callback_event *e,
			  const struct ls_stack_summary *st)
{
	struct ls_period_times t;
	bool exact = ls_callback_times(e, st, &t);
	char sc[64];

	if (!exact && !(st && st->n)) {
		static const char *const keys[] = { "on_cpu_ns", "blocked_ns", "runnable_ns",
						     "blocked_syscall", "split" };

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			json_object_object_add(o, keys[i], NULL);
		return;
	}
	ls_json_add_u64(o, "on_cpu_ns", t.on_cpu_ns);
	ls_json_add_u64(o, "blocked_ns", t.blocked_ns);
	ls_json_add_u64(o, "runnable_ns", t.runnable_ns);
	if (t.blocked_ns) {
		ls_sys_syscall_name(t.top_syscall, sc, sizeof(sc));
		json_object_object_add(o, "blocked_syscall", json_object_new_string(sc));
		ls_json_add_u64(o, "blocked_syscall_ns", t.top_block_ns);
	} else {
		json_object_object_add(o, "blocked_syscall", NULL);
	}
	json_object_object_add(o, "split", json_object_new_string(exact ? "exact" : "stacks"));
}
