// SPDX-License-Identifier: MIT
/*
 * Prints one C initializer of struct ls_py_offsets (include/loopscope/
 * py_offsets.h) for the CPython whose headers it is compiled against.
 * Built and run once per installed interpreter by tools/pyoffsets/gen.sh:
 *
 *   cc -std=c11 -DPy_BUILD_CORE -DLS_PY_INCLUDE_DIR="\"$inc\"" -I$inc \
 *      gen_pyoffsets.c [-L$prefix/lib -lpython3.X]   (the library: 3.13+)
 *
 * Every value is offsetof()/sizeof() on a real header struct, except the
 * structs CPython keeps in .c files (functools.partial, the C asyncio Task
 * and its method wrappers), declared below per version from the named
 * source files. Layouts do not change within a minor version for the header
 * structs (CPython's ABI policy for patch releases); the .c-file structs are
 * private, so ls_py_offsets.task_size / partial_size carry their sizeof for
 * a check against the target's tp_basicsize (see TaskObj for 3.10).
 *
 * 3.13+: the values shared with _Py_DebugOffsets (first member of
 * _PyRuntime, internal/pycore_runtime.h) are compared with the copy the
 * interpreter itself was compiled with, read from the linked libpython;
 * any mismatch fails the generator.
 */
#ifndef Py_BUILD_CORE
#define Py_BUILD_CORE 1
#endif
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/py_offsets.h" /* LS_PYOFF_* flags */

#if PY_VERSION_HEX < 0x03080000 || PY_VERSION_HEX >= 0x030e0000
#error "gen_pyoffsets: CPython 3.8-3.13 only"
#endif

#if PY_VERSION_HEX < 0x030b0000
#include <frameobject.h> /* PyFrameObject: frameobject.h (3.8/3.9), cpython/frameobject.h (3.10) */
#endif
#if PY_VERSION_HEX < 0x03090000
#include "internal/pycore_pystate.h" /* _PyRuntimeState, PyInterpreterState (3.8) */
#else
#include "internal/pycore_runtime.h" /* _PyRuntimeState */
#include "internal/pycore_interp.h"  /* PyInterpreterState */
#endif
#if PY_VERSION_HEX >= 0x030b0000
#include "internal/pycore_frame.h" /* _PyInterpreterFrame */
#endif

#ifndef LS_PY_INCLUDE_DIR
#define LS_PY_INCLUDE_DIR "?"
#endif

/* ---- Modules/_functoolsmodule.c: partialobject ----
 * 3.8, 3.9: { PyObject_HEAD; fn; args; kw; dict; weakreflist; int use_fastcall; }
 * 3.10-3.13: the int became `vectorcallfunc vectorcall;` (same size after
 * padding). Only `fn` is read; the rest is declared for sizeof. */
typedef struct {
	PyObject_HEAD
	PyObject *fn;
	PyObject *args;
	PyObject *kw;
	PyObject *dict;
	PyObject *weakreflist;
#if PY_VERSION_HEX < 0x030a0000
	int use_fastcall;
#else
	vectorcallfunc vectorcall;
#endif
} ls_partialobject;

/* ---- Modules/_asynciomodule.c: FutureObj_HEAD(task) + TaskObj ----
 * fut_state is an enum (int). Fields listed in source order per version. */
typedef enum { LS_STATE_PENDING, LS_STATE_CANCELLED, LS_STATE_FINISHED } ls_fut_state;

typedef struct ls_TaskObj {
	PyObject_HEAD
	PyObject *task_loop;
	PyObject *task_callback0;
	PyObject *task_context0;
	PyObject *task_callbacks;
	PyObject *task_exception;
#if PY_VERSION_HEX >= 0x030a0000
	/* bpo-45924 (GH-30274, 2022): added on main and backported to the
	 * 3.10 branch, so 3.10 releases before that backport lack it and have
	 * task_coro 8 bytes lower; 3.10.13 has it (checked live, and by
	 * task_size against _asyncio.Task.__basicsize__). */
	PyObject *task_exception_tb;
#endif
	PyObject *task_result;
	PyObject *task_source_tb;
#if PY_VERSION_HEX >= 0x03090000
	PyObject *task_cancel_msg; /* bpo-31033, 3.9 */
#endif
#if PY_VERSION_HEX >= 0x030d0000
	/* 3.13: dict and weakreflist became managed (pre-header); the two
	 * flags became bitfields shared with TaskObj's. */
	PyObject *task_cancelled_exc;
	ls_fut_state task_state;
	unsigned task_log_tb : 1;
	unsigned task_blocking : 1;
	/* TaskObj (3.13) */
	unsigned task_must_cancel : 1;
	unsigned task_log_destroy_pending : 1;
	int task_num_cancels_requested;
	PyObject *task_fut_waiter;
	PyObject *task_coro;
	PyObject *task_name;
	PyObject *task_context;
#else
	ls_fut_state task_state;
	int task_log_tb;
	int task_blocking;
	PyObject *dict;
	PyObject *task_weakreflist;
#if PY_VERSION_HEX >= 0x030b0000
	PyObject *task_cancelled_exc; /* 3.11, 3.12 */
#elif PY_VERSION_HEX >= 0x03090000
	_PyErr_StackItem task_cancelled_exc_state; /* 3.9, 3.10 */
#endif
	/* TaskObj (3.8-3.12) */
	PyObject *task_fut_waiter;
	PyObject *task_coro;
	PyObject *task_name;
	PyObject *task_context;
	int task_must_cancel;
	int task_log_destroy_pending;
#if PY_VERSION_HEX >= 0x030b0000
	int task_num_cancels_requested; /* 3.11, 3.12 */
#endif
#endif
} ls_TaskObj;

/* Modules/_asynciomodule.c, all of 3.8-3.13. */
typedef struct {
	PyObject_HEAD
	ls_TaskObj *sw_task;
	PyObject *sw_arg;
} ls_TaskStepMethWrapper;

#if PY_VERSION_HEX < 0x030a0000
/* Modules/_asynciomodule.c 3.8, 3.9 (3.10 replaced it with a
 * builtin_function_or_method "task_wakeup" bound to the Task). */
typedef struct {
	PyObject_HEAD
	ls_TaskObj *ww_task;
} ls_TaskWakeupMethWrapper;
#endif

#define F(name, value) printf("\t.%s = %lu,\n", #name, (unsigned long)(value))

#if PY_VERSION_HEX >= 0x030d0000
static int bad;

static void check(const char *what, unsigned long ours, uint64_t theirs)
{
	if (ours != theirs) {
		fprintf(stderr, "gen_pyoffsets: %s: offsetof %lu, _Py_DebugOffsets %llu\n", what,
			ours, (unsigned long long)theirs);
		bad = 1;
	}
}

#define CK(name, ours, theirs) check(name, (unsigned long)(ours), (theirs))

/* The interpreter's own table, as compiled into libpython (static data:
 * readable without initializing Python). */
static int cross_check_debug_offsets(void)
{
	const _Py_DebugOffsets *d = &_PyRuntime.debug_offsets;

	if (memcmp(d->cookie, "xdebugpy", 8) != 0) {
		fprintf(stderr, "gen_pyoffsets: _Py_DebugOffsets: bad cookie\n");
		return -1;
	}
	if ((d->version >> 16) != (PY_VERSION_HEX >> 16)) {
		fprintf(stderr, "gen_pyoffsets: _Py_DebugOffsets: version %llx, headers %x\n",
			(unsigned long long)d->version, PY_VERSION_HEX);
		return -1;
	}
	CK("runtime_state.size", sizeof(_PyRuntimeState), d->runtime_state.size);
	CK("runtime_state.interpreters_head", offsetof(_PyRuntimeState, interpreters.head),
	   d->runtime_state.interpreters_head);
	CK("interpreter_state.size", sizeof(PyInterpreterState), d->interpreter_state.size);
	CK("interpreter_state.next", offsetof(PyInterpreterState, next),
	   d->interpreter_state.next);
	CK("interpreter_state.threads_head", offsetof(PyInterpreterState, threads.head),
	   d->interpreter_state.threads_head);
	CK("thread_state.size", sizeof(PyThreadState), d->thread_state.size);
	CK("thread_state.next", offsetof(PyThreadState, next), d->thread_state.next);
	CK("thread_state.interp", offsetof(PyThreadState, interp), d->thread_state.interp);
	CK("thread_state.current_frame", offsetof(PyThreadState, current_frame),
	   d->thread_state.current_frame);
	CK("thread_state.thread_id", offsetof(PyThreadState, thread_id),
	   d->thread_state.thread_id);
	CK("thread_state.native_thread_id", offsetof(PyThreadState, native_thread_id),
	   d->thread_state.native_thread_id);
	CK("interpreter_frame.size", sizeof(_PyInterpreterFrame), d->interpreter_frame.size);
	CK("interpreter_frame.previous", offsetof(_PyInterpreterFrame, previous),
	   d->interpreter_frame.previous);
	CK("interpreter_frame.executable", offsetof(_PyInterpreterFrame, f_executable),
	   d->interpreter_frame.executable);
	CK("interpreter_frame.instr_ptr", offsetof(_PyInterpreterFrame, instr_ptr),
	   d->interpreter_frame.instr_ptr);
	CK("interpreter_frame.owner", offsetof(_PyInterpreterFrame, owner),
	   d->interpreter_frame.owner);
	CK("code_object.size", sizeof(PyCodeObject), d->code_object.size);
	CK("code_object.filename", offsetof(PyCodeObject, co_filename), d->code_object.filename);
	CK("code_object.name", offsetof(PyCodeObject, co_name), d->code_object.name);
	CK("code_object.qualname", offsetof(PyCodeObject, co_qualname), d->code_object.qualname);
	CK("code_object.linetable", offsetof(PyCodeObject, co_linetable),
	   d->code_object.linetable);
	CK("code_object.firstlineno", offsetof(PyCodeObject, co_firstlineno),
	   d->code_object.firstlineno);
	CK("code_object.co_code_adaptive", offsetof(PyCodeObject, co_code_adaptive),
	   d->code_object.co_code_adaptive);
	CK("pyobject.ob_type", offsetof(PyObject, ob_type), d->pyobject.ob_type);
	CK("type_object.tp_name", offsetof(PyTypeObject, tp_name), d->type_object.tp_name);
	CK("unicode_object.state", offsetof(PyASCIIObject, state), d->unicode_object.state);
	CK("unicode_object.length", offsetof(PyASCIIObject, length), d->unicode_object.length);
	CK("unicode_object.asciiobject_size", sizeof(PyASCIIObject),
	   d->unicode_object.asciiobject_size);
	return bad ? -1 : 0;
}
#endif

int main(void)
{
	const char *flags;

#if PY_VERSION_HEX < 0x030a0000
	flags = "LS_PYOFF_LNOTAB | LS_PYOFF_WAKEUP_WRAPPER";
#elif PY_VERSION_HEX < 0x030b0000
	flags = "LS_PYOFF_LINETABLE_310 | LS_PYOFF_LASTI_UNITS";
#elif PY_VERSION_HEX < 0x030c0000
	flags = "LS_PYOFF_LOCATIONS | LS_PYOFF_IFRAME | LS_PYOFF_CFRAME";
#elif PY_VERSION_HEX < 0x030d0000
	flags = "LS_PYOFF_LOCATIONS | LS_PYOFF_IFRAME | LS_PYOFF_CFRAME | LS_PYOFF_CODE_IN_FRAME";
#else
	if (cross_check_debug_offsets() != 0)
		return 1;
	flags = "LS_PYOFF_LOCATIONS | LS_PYOFF_IFRAME | LS_PYOFF_CODE_IN_FRAME |\n"
		"\t\t LS_PYOFF_EXECUTABLE | LS_PYOFF_DEBUG_OFFSETS";
#endif

	printf("/* generated from %s (%s) */\n{\n", LS_PY_INCLUDE_DIR, PY_VERSION);
	printf("\t.version_hex = 0x%08x,\n", (unsigned)(PY_VERSION_HEX & 0xffff0000));
	printf("\t.flags = %s,\n", flags);

	F(ob_type, offsetof(PyObject, ob_type));
	F(tp_name, offsetof(PyTypeObject, tp_name));
	F(tp_basicsize, offsetof(PyTypeObject, tp_basicsize));

	F(func_code, offsetof(PyFunctionObject, func_code));
	F(func_name, offsetof(PyFunctionObject, func_name));
	F(func_qualname, offsetof(PyFunctionObject, func_qualname));

	F(co_filename, offsetof(PyCodeObject, co_filename));
	F(co_name, offsetof(PyCodeObject, co_name));
#if PY_VERSION_HEX >= 0x030b0000
	F(co_qualname, offsetof(PyCodeObject, co_qualname));
#endif
	F(co_firstlineno, offsetof(PyCodeObject, co_firstlineno));
#if PY_VERSION_HEX < 0x030a0000
	F(co_linetable, offsetof(PyCodeObject, co_lnotab));
#else
	F(co_linetable, offsetof(PyCodeObject, co_linetable));
#endif
#if PY_VERSION_HEX < 0x030b0000
	F(co_code, offsetof(PyCodeObject, co_code));
#else
	F(co_code_adaptive, offsetof(PyCodeObject, co_code_adaptive));
#endif

	F(im_func, offsetof(PyMethodObject, im_func));
	F(im_self, offsetof(PyMethodObject, im_self));
	F(m_ml, offsetof(PyCFunctionObject, m_ml));
	F(m_self, offsetof(PyCFunctionObject, m_self));
	F(ml_name, offsetof(PyMethodDef, ml_name));

	F(partial_fn, offsetof(ls_partialobject, fn));
	F(partial_size, sizeof(ls_partialobject));
	F(sw_task, offsetof(ls_TaskStepMethWrapper, sw_task));
#if PY_VERSION_HEX < 0x030a0000
	F(ww_task, offsetof(ls_TaskWakeupMethWrapper, ww_task));
#endif
	F(task_coro, offsetof(ls_TaskObj, task_coro));
	F(task_name, offsetof(ls_TaskObj, task_name));
	F(task_size, sizeof(ls_TaskObj));

#if PY_VERSION_HEX < 0x030c0000
	F(cr_code, offsetof(PyCoroObject, cr_code));
#endif
	F(cr_name, offsetof(PyCoroObject, cr_name));
	F(cr_qualname, offsetof(PyCoroObject, cr_qualname));
#if PY_VERSION_HEX >= 0x030b0000
	F(cr_iframe, offsetof(PyCoroObject, cr_iframe));
#endif

#if PY_VERSION_HEX >= 0x030d0000
	F(frame_code, offsetof(_PyInterpreterFrame, f_executable));
	F(frame_previous, offsetof(_PyInterpreterFrame, previous));
	F(frame_instr, offsetof(_PyInterpreterFrame, instr_ptr));
	F(frame_owner, offsetof(_PyInterpreterFrame, owner));
#elif PY_VERSION_HEX >= 0x030b0000
	F(frame_code, offsetof(_PyInterpreterFrame, f_code));
	F(frame_previous, offsetof(_PyInterpreterFrame, previous));
	F(frame_instr, offsetof(_PyInterpreterFrame, prev_instr));
	F(frame_owner, offsetof(_PyInterpreterFrame, owner));
#else
	F(f_back, offsetof(PyFrameObject, f_back));
	F(f_code, offsetof(PyFrameObject, f_code));
	F(f_lasti, offsetof(PyFrameObject, f_lasti));
#endif

	F(runtime_interpreters_head, offsetof(_PyRuntimeState, interpreters.head));
	F(interp_next, offsetof(PyInterpreterState, next));
#if PY_VERSION_HEX >= 0x030b0000
	F(interp_threads_head, offsetof(PyInterpreterState, threads.head));
#else
	F(interp_threads_head, offsetof(PyInterpreterState, tstate_head));
#endif
	F(tstate_next, offsetof(PyThreadState, next));
	F(tstate_interp, offsetof(PyThreadState, interp));
	F(tstate_thread_id, offsetof(PyThreadState, thread_id));
#if PY_VERSION_HEX >= 0x030b0000
	F(tstate_native_thread_id, offsetof(PyThreadState, native_thread_id));
#endif
#if PY_VERSION_HEX >= 0x030d0000
	F(tstate_frame, offsetof(PyThreadState, current_frame));
#elif PY_VERSION_HEX >= 0x030b0000
	F(tstate_cframe, offsetof(PyThreadState, cframe));
	F(cframe_current_frame, offsetof(_PyCFrame, current_frame));
#else
	F(tstate_frame, offsetof(PyThreadState, frame));
#endif

	F(unicode_state, offsetof(PyASCIIObject, state));
	F(unicode_length, offsetof(PyASCIIObject, length));
	F(ascii_data, sizeof(PyASCIIObject));
	F(compact_data, sizeof(PyCompactUnicodeObject));
	printf("},\n");
	return 0;
}
