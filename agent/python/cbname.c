// SPDX-License-Identifier: MIT
/* Naming an asyncio callback by its stack when its key cannot (see
 * loopscope/cbname.h). */
#include <stdio.h>
#include <string.h>

#include "loopscope/cbname.h"

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && !strcmp(s + n - t, tail);
}

/* A pure-Python Task's step (asyncio.tasks._PyTask, or any Task when the C
 * _asyncio module is missing) reaches context_run as the bound method
 * Task.__step, which does not say which coroutine it drives (the Task keeps
 * it in its instance dict, laid out differently in every version). Its
 * stack does: the frame called by the innermost Task.__step* frame of
 * asyncio/tasks.py (Task.__step, or __step_run_and_handle_result on 3.12+)
 * is the coroutine's, unless it is asyncio/tasks.py's own: a stack taken
 * between __step and the coroutine's send (3.12+: __step calls
 * __step_run_and_handle_result, which sends) names no coroutine, and the
 * next stack is tried (such a stack, the heaviest of a preempted step on a
 * loaded machine, named 3.13's py_task_coro step
 * "Task.__step_run_and_handle_result"). Fills *out with its name, file and
 * first line; false when k is not such a step or no stack shows it. */
bool ls_cbname_task_step(const struct ls_cb_name *nm, const struct ls_stack_summary *st,
			 struct ls_cb_name *out)
{
	if (!ends_with(nm->qualname, "Task.__step") || !ends_with(nm->filename, "asyncio/tasks.py"))
		return false;
	for (size_t s = 0; st && s < st->n; s++) {
		const struct ls_stack_agg *a = &st->stacks[s];

		for (int i = 1; i < a->nframes; i++) {
			const struct ls_pyframe *f = &a->frames[i], *coro = &a->frames[i - 1];

			/* 3.11+ code has qualnames ("Task.__step"); before,
			 * only names ("__step"). */
			if ((strncmp(f->qualname, "Task.__step", 11) &&
			     strncmp(f->qualname, "__step", 6)) ||
			    !ends_with(f->filename, "asyncio/tasks.py") ||
			    ends_with(coro->filename, "asyncio/tasks.py"))
				continue;
			snprintf(out->qualname, sizeof(out->qualname), "%s", coro->qualname);
			snprintf(out->filename, sizeof(out->filename), "%s", coro->filename);
			out->firstlineno = coro->firstlineno;
			return true;
		}
	}
	return false;
}

/* Whether frame f runs a loop rather than a callback: asyncio.run and its
 * Runner (asyncio/runners.py), uvloop.run, BaseEventLoop.run_forever /
 * run_until_complete / _run_once, Handle._run (asyncio/events.py). uvloop's
 * own loop is Cython: no frame of it shows. */
bool ls_cbname_driver_frame(const struct ls_pyframe *f)
{
	const char *q = strrchr(f->qualname, '.');

	q = q ? q + 1 : f->qualname;
	return ends_with(f->filename, "asyncio/runners.py") ||
	       ends_with(f->filename, "uvloop/__init__.py") ||
	       (ends_with(f->filename, "asyncio/base_events.py") &&
		(!strcmp(q, "run_forever") || !strcmp(q, "run_until_complete") ||
		 !strcmp(q, "_run_once"))) ||
	       (ends_with(f->filename, "asyncio/events.py") && !strcmp(q, "_run"));
}

/* A callback that C code ran between PyContext_Enter and PyContext_Exit
 * (uvloop's Handles: LS_CB_CONTEXT) is not passed to either. Its stack
 * names it: the frame called by the innermost loop-driving frame (or, when
 * the loop was started from module level, by the outermost frame) is the
 * callback's, or its coroutine's for a Task step. */
bool ls_cbname_context(const struct ls_stack_summary *st, struct ls_cb_name *out)
{
	const struct ls_stack_agg *a = NULL;

	for (size_t s = 0; st && s < st->n && !a; s++)
		if (st->stacks[s].nframes >= 2 && !st->stacks[s].truncated)
			a = &st->stacks[s];
	if (!a)
		return false;
	int callee = a->nframes - 2; /* inside the outermost frame */

	for (int i = 1; i < a->nframes; i++) {
		if (ls_cbname_driver_frame(&a->frames[i])) {
			callee = i - 1;
			break;
		}
	}
	if (ls_cbname_driver_frame(&a->frames[callee]))
		return false;
	snprintf(out->qualname, sizeof(out->qualname), "%s", a->frames[callee].qualname);
	snprintf(out->filename, sizeof(out->filename), "%s", a->frames[callee].filename);
	out->firstlineno = a->frames[callee].firstlineno;
	return true;
}

/* The pytest node id of function qualname in file ("test_app.py::Cls::test_x")
 * into out when it is a test: a test* function in a test_*.py or *_test.py
 * file; else "". */
void ls_cbname_pytest_node(const char *file, const char *qualname, char *out, size_t len)
{
	const char *base = strrchr(file, '/'), *fn, *dot;
	size_t blen;

	out[0] = '\0';
	base = base ? base + 1 : file;
	blen = strlen(base);
	if (blen < 4 || strcmp(base + blen - 3, ".py"))
		return;
	if (strncmp(base, "test_", 5) && (blen < 8 || strcmp(base + blen - 8, "_test.py")))
		return;
	dot = strrchr(qualname, '.');
	fn = dot ? dot + 1 : qualname;
	if (strncmp(fn, "test", 4))
		return;
	snprintf(out, len, "%s::", base);
	for (const char *c = qualname; *c && strlen(out) + 3 < len; c++) {
		size_t n = strlen(out);

		if (*c == '.') {
			memcpy(out + n, "::", 3);
		} else {
			out[n] = *c;
			out[n + 1] = '\0';
		}
	}
}

/* The pytest node id of the outermost test function on the heaviest
 * stack of st (a sync test that runs its own loop), into out; "" when there
 * is none. */
void ls_cbname_pytest_from_stack(const struct ls_stack_summary *st, char *out, size_t len)
{
	const struct ls_stack_agg *a = st->n ? &st->stacks[0] : NULL;

	out[0] = '\0';
	for (int i = a ? (int)a->nframes - 1 : -1; i >= 0 && !out[0]; i--)
		ls_cbname_pytest_node(a->frames[i].filename, a->frames[i].qualname, out, len);
}
