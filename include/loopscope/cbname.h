/* SPDX-License-Identifier: MIT */
/*
 * Naming an asyncio callback by its stack when its key cannot
 * (agent/python/cbname.c): a pure-Python Task's step, and a callback C code
 * ran between PyContext_Enter and PyContext_Exit (uvloop), and the pytest
 * test a callback or stack belongs to. Pure functions of names and
 * stacks: no process is read.
 */
#ifndef LOOPSCOPE_CBNAME_H
#define LOOPSCOPE_CBNAME_H

#include <stdbool.h>

#include "loopscope/pyname.h"
#include "loopscope/slowstack.h"

/* A pure-Python Task's step (asyncio.tasks._PyTask, or any Task when the C
 * _asyncio module is missing) reaches context_run as the bound method
 * Task.__step (nm: its name read from the key), which does not say which
 * coroutine it drives. Its stack st does: the frame called by the
 * innermost Task.__step* frame of asyncio/tasks.py is the coroutine's.
 * true and *out (qualname, filename, first line of that frame); false when
 * nm is not such a step or no stack of st (NULL is fine) shows it. */
bool ls_cbname_task_step(const struct ls_cb_name *nm, const struct ls_stack_summary *st,
			 struct ls_cb_name *out);

/* Whether frame f runs a loop rather than a callback: asyncio.run and its
 * Runner (asyncio/runners.py), uvloop.run, BaseEventLoop.run_forever /
 * run_until_complete / _run_once, Handle._run (asyncio/events.py). */
bool ls_cbname_driver_frame(const struct ls_pyframe *f);

/* A callback of kind LS_CB_CONTEXT (uvloop's Handles) by its stack: in the
 * heaviest whole stack of st (at least two frames, not truncated), the
 * frame called by the innermost loop-driving frame, or, when the loop was
 * started from module level, the one called by the outermost frame. true
 * and *out; false when st (NULL is fine) has no such stack or that frame
 * drives a loop itself. */
bool ls_cbname_context(const struct ls_stack_summary *st, struct ls_cb_name *out);

/* The pytest node id of function qualname in file ("test_app.py::Cls::test_x":
 * the file's base name, then the qualname's parts joined by "::") into out
 * (len bytes, cut there) when it is a test: a test* function in a
 * test_*.py or *_test.py file; else out is "". */
void ls_cbname_pytest_node(const char *file, const char *qualname, char *out, size_t len);

/* The pytest node id of the outermost test function on the heaviest stack
 * of st (a sync test that runs its own loop) into out; "" when none. */
void ls_cbname_pytest_from_stack(const struct ls_stack_summary *st, char *out, size_t len);

#endif /* LOOPSCOPE_CBNAME_H */
