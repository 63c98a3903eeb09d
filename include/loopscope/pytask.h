/* SPDX-License-Identifier: MIT */
/* The asyncio Task a loop thread is running and the tasks awaiting it (its
 * await chain), read from the target's memory (agent/python/pytask.c).
 *
 * CPython 3.14+ only: the _asyncio module carries its own layout in the
 * `.AsyncioDebug` ELF section (Modules/_asynciomodule.c,
 * `_Py_AsyncioModuleDebugOffsets`, 3.14.0 and 3.15: thirteen uint64_t),
 * and each thread state holds the Task it runs
 * (`_PyThreadStateImpl.asyncio_running_task`, set by the C Task's step
 * around each step). The section lives in the interpreter (3.15, `_asyncio`
 * built in) or in lib-dynload/_asyncio.cpython-3XX-*.so (3.14 on Debian). */
#ifndef LOOPSCOPE_PYTASK_H
#define LOOPSCOPE_PYTASK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ls_py_offsets;
struct ls_py_target;

/* `.AsyncioDebug` as read and validated: byte offsets into the C TaskObj
 * (whose FutureObj head every Future shares) and into a thread state. */
struct ls_pytask_offsets {
	uint64_t task_size;       /* sizeof(TaskObj) */
	uint64_t task_name;       /* PyObject *: a str, or an int N for "Task-N" */
	uint64_t task_awaited_by; /* PyObject *: one Future/Task, or a set of them */
	uint64_t task_is_task;    /* char, in the Future head */
	uint64_t task_awaited_by_is_set; /* char, in the Future head */
	uint64_t task_coro;       /* PyObject *: the coroutine */
	uint64_t tstate_size;     /* sizeof(_PyThreadStateImpl) */
	uint64_t tstate_running_task; /* PyObject *asyncio_running_task */
};

/* Parse the 104 bytes of a `.AsyncioDebug` section (raw, len bytes, in the
 * target's byte order: x86-64 little-endian) into *out, validating every
 * field before use: a TaskObj between 64 bytes and 4 KiB, every task field
 * inside it (chars at 1 byte, pointers at 8), a thread state under 64 KiB
 * with its running-task pointer inside it. 0; -EINVAL (too short, or a
 * field out of bounds) with the reason in why (len bytes). */
int ls_pytask_parse(const void *raw, size_t len, struct ls_pytask_offsets *out, char *why,
		    size_t why_len);

/* Find and parse `.AsyncioDebug` for resolved CPython target t (3.14+): in
 * t's own ELF file, else in the `_asyncio*.so` process t->pid maps (opened
 * through /proc/PID/map_files, so chroots and containers work). 0;
 * -ENOTSUP (before 3.14), -ENOENT (no section: the process never imported
 * asyncio's C module, or a build without it), -EINVAL (rejected: why says
 * which field), -EACCES/-ESRCH from procfs. why gets one line. */
int ls_pytask_find(const struct ls_py_target *t, struct ls_pytask_offsets *out, char *why,
		   size_t why_len);

#define LS_PYTASK_CHAIN_MAX 16 /* tasks on one chain; longer chains are cut */
#define LS_PYTASK_AWAITERS_MAX 4

struct ls_pytask {
	uint64_t addr;          /* the TaskObj's address: pstree's "task id" */
	char name[128];         /* Task.get_name(): "fetch-42", "Task-7"; "?" unreadable */
	char coro[128];         /* the coroutine's __qualname__; "?" unreadable */
	uint32_t awaiters;      /* how many tasks await this one (a set may hold several) */
};

/* One chain: task[0] is the running task, task[i+1] awaits task[i] (the
 * first task of task[i]'s awaiters). */
struct ls_pytask_chain {
	struct ls_pytask task[LS_PYTASK_CHAIN_MAX];
	uint32_t n;          /* 0: no Task running (a plain callback) */
	uint32_t truncated;  /* 1 when the chain went on past LS_PYTASK_CHAIN_MAX */
	uint64_t read_ns;    /* CLOCK_MONOTONIC of the read */
};

/* The await chain of thread tid (its id in the target's own pid namespace,
 * as CPython's native_thread_id has it: the innermost NSpid of
 * /proc/PID/task/TID/status for a containerised target): its thread state is found in the main
 * interpreter's thread list under runtime_addr (_PyRuntime in the target)
 * with off (the target's object layouts: thread list, unicode, coroutine
 * qualname), then asyncio_running_task and each awaiter in turn, from
 * memfd (an open /proc/PID/mem). Bounded: 4096 thread states, 16 tasks,
 * a cycle stops the chain. 0 (out->n 0 when tid runs no Task); -ESRCH
 * (tid is not a thread of that interpreter), -EFAULT (unreadable memory:
 * the process exited or the layout does not match). */
int ls_pytask_chain(int memfd, const struct ls_py_offsets *off, const struct ls_pytask_offsets *ao,
		    uint64_t runtime_addr, pid_t tid, struct ls_pytask_chain *out);

/* The chain from the Task at task (as the stack walker read it from the
 * thread state: struct ls_stack_event.task) up through its awaiters, read
 * from memfd with off and ao. 0 (out->n 0 when task is 0 or not a Task);
 * bounded as ls_pytask_chain. */
int ls_pytask_chain_from(int memfd, const struct ls_py_offsets *off,
			 const struct ls_pytask_offsets *ao, uint64_t task,
			 struct ls_pytask_chain *out);

/* `task "fetch-42" (fetch) <- awaited by task "handler-7" (handler) <- task
 * "Task-1" (main)` into buf (len bytes); names are escaped for a terminal
 * (control bytes as \xNN). Returns buf. */
char *ls_pytask_chain_text(const struct ls_pytask_chain *c, char *buf, size_t len);

/* The chain as JSON: [{"task": "fetch-42", "coroutine": "fetch",
 * "task_id": "0x7f44...", "awaiters": 1}, ...], running task first; NULL
 * (JSON null) when c has no task. */
struct json_object;
struct json_object *ls_pytask_chain_json(const struct ls_pytask_chain *c);

#endif /* LOOPSCOPE_PYTASK_H */
