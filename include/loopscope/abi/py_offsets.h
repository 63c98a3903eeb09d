/* SPDX-License-Identifier: MIT */
/*
 * Byte offsets into CPython objects: one row per minor version (3.8-3.13),
 * shared by the BPF programs and user space. The rows are generated
 * (tools/pyoffsets/gen.sh) by offsetof() against the installed headers of
 * each interpreter, compiled with Py_BUILD_CORE so the internal ones
 * (include/python3.X/internal/pycore_*.h) are usable; structs that live in a
 * .c file (functools.partial, the C asyncio Task and its method wrappers) are
 * declared per version in tools/pyoffsets/gen_pyoffsets.c with their source
 * cited. tests/test_pyoffsets.c checks every row against a live interpreter.
 * For 3.13 and later a target's struct is filled from its own
 * _Py_DebugOffsets instead (agent/pydebug.c, include/loopscope/pydebug.h),
 * with the 3.13 row as a cross-check and constants for the rest on 3.14+.
 *
 * All offsets are from the start of the object (x86-64, release builds). A
 * field that does not exist in a version is 0, except where noted (frame
 * fields of 3.12+ are legitimately 0: _PyInterpreterFrame is no PyObject);
 * the flags say which layout applies. Header names below are relative to
 * include/python3.X/.
 */
#ifndef LOOPSCOPE_PY_OFFSETS_H
#define LOOPSCOPE_PY_OFFSETS_H

#ifndef __BPF__
#include <linux/types.h>
#endif

/* flags */
/* co_linetable holds co_lnotab (3.8, 3.9): (addr_incr, line_incr) pairs. */
#define LS_PYOFF_LNOTAB          (1u << 0)
/* co_linetable is the 3.10 table: (byte_delta, line_delta), -128 no line. */
#define LS_PYOFF_LINETABLE_310   (1u << 1)
/* co_linetable is the 3.11+ location table (PEP 657). */
#define LS_PYOFF_LOCATIONS       (1u << 2)
/* Frames are _PyInterpreterFrame (3.11+), not PyFrameObject. */
#define LS_PYOFF_IFRAME          (1u << 3)
/* The top frame is tstate->cframe->current_frame (3.11, 3.12). Without it:
 * tstate_frame (PyFrameObject* <= 3.10, _PyInterpreterFrame* 3.13). */
#define LS_PYOFF_CFRAME          (1u << 4)
/* A coroutine's code is read from its embedded frame (cr_iframe +
 * frame_code, 3.12+); before, cr_code is a direct pointer. */
#define LS_PYOFF_CODE_IN_FRAME   (1u << 5)
/* f_lasti counts code units (3.10) rather than bytes (3.8, 3.9). */
#define LS_PYOFF_LASTI_UNITS     (1u << 6)
/* Task wakeups go through TaskWakeupMethWrapper (3.8, 3.9); later they
 * are a builtin_function_or_method named "task_wakeup" bound to the Task. */
#define LS_PYOFF_WAKEUP_WRAPPER  (1u << 7)
/* The row was checked against the interpreter's own _Py_DebugOffsets (3.13+). */
#define LS_PYOFF_DEBUG_OFFSETS   (1u << 8)
/* frame_code is f_executable (3.13): may be a non-code object (None for
 * shim frames). */
#define LS_PYOFF_EXECUTABLE      (1u << 9)
/* frame_code is a _PyStackRef (3.14+, internal/pycore_stackref.h): the
 * code object's address with tag bits (LS_PY_TAG_BITS) to mask off. */
#define LS_PYOFF_STACKREF        (1u << 10)
/* The layout came from the interpreter's own _Py_DebugOffsets (3.13+,
 * agent/pydebug.c) rather than from a table row alone. */
#define LS_PYOFF_FROM_TARGET     (1u << 11)

/* Py_TAG_BITS of a default (GIL) build, 3.14 and 3.15
 * (internal/pycore_stackref.h): the low bits of a _PyStackRef. */
#define LS_PY_TAG_BITS 3ULL

/* PyASCIIObject.state bits, identical 3.8-3.15 (cpython/unicodeobject.h):
 * interned 0-1, kind 2-4 (1, 2 or 4 bytes a character), compact 5, ascii 6;
 * 3.12+ add statically_allocated at bit 7 (not read). Checked on 3.14.10
 * and 3.15.2 by setting each bit field through their headers. */
#define LS_PY_STATE_KIND_SHIFT   2
#define LS_PY_STATE_KIND_MASK    7
#define LS_PY_STATE_COMPACT      (1u << 5)
#define LS_PY_STATE_ASCII        (1u << 6)

/* _PyInterpreterFrame.owner values (internal/pycore_frame.h, 3.11+). */
#define LS_PY_FRAME_OWNED_BY_THREAD    0
#define LS_PY_FRAME_OWNED_BY_GENERATOR 1
#define LS_PY_FRAME_OWNED_BY_FRAME_OBJECT 2
#define LS_PY_FRAME_OWNED_BY_CSTACK    3 /* 3.12, 3.13: shim/entry frames */
/* 3.14 (internal/pycore_interpframe_structs.h): FRAME_OWNED_BY_INTERPRETER 3,
 * FRAME_OWNED_BY_CSTACK 4; 3.15: FRAME_OWNED_BY_INTERPRETER 3 (CSTACK gone).
 * Every owner >= 3 is a frame of no Python code of its own (3.12+). */
#define LS_PY_FRAME_OWNED_MIN_SKIP     3

struct ls_py_offsets {
	__u32 version_hex; /* PY_VERSION_HEX of the headers' major.minor, 0x030c0000 */
	__u32 flags;       /* LS_PYOFF_* */

	/* object.h PyObject / cpython/object.h PyTypeObject */
	__u16 ob_type;
	__u16 tp_name;     /* const char* */
	__u16 tp_basicsize;

	/* funcobject.h (3.8) / cpython/funcobject.h PyFunctionObject */
	__u16 func_code;
	__u16 func_name;
	__u16 func_qualname;

	/* code.h (3.8, 3.9) / cpython/code.h PyCodeObject */
	__u16 co_filename;
	__u16 co_name;
	__u16 co_qualname;      /* 3.11+; 0 before */
	__u16 co_firstlineno;   /* int */
	__u16 co_linetable;     /* co_lnotab 3.8/3.9, co_linetable 3.10+ (flags) */
	__u16 co_code;          /* bytes object, <= 3.10; 0 after */
	__u16 co_code_adaptive; /* inline bytecode, 3.11+; 0 before */

	/* classobject.h (3.8) / cpython/classobject.h PyMethodObject */
	__u16 im_func;
	__u16 im_self;

	/* methodobject.h (3.8) / cpython/methodobject.h PyCFunctionObject,
	 * methodobject.h PyMethodDef */
	__u16 m_ml;
	__u16 m_self;
	__u16 ml_name; /* const char* */

	/* Modules/_functoolsmodule.c partialobject (not in a header) */
	__u16 partial_fn;
	__u16 partial_size; /* sizeof: the target's partial tp_basicsize */

	/* Modules/_asynciomodule.c (not in a header) */
	__u16 sw_task;   /* TaskStepMethWrapper */
	__u16 ww_task;   /* TaskWakeupMethWrapper, 3.8/3.9 only; 0 after */
	__u16 task_coro; /* TaskObj */
	__u16 task_name;
	__u16 task_size; /* sizeof(TaskObj): the target's _asyncio.Task
			  * tp_basicsize; compare before trusting task_* */

	/* genobject.h (<= 3.10) / cpython/genobject.h PyCoroObject */
	__u16 cr_code;     /* <= 3.11; 0 when absent (3.12+: LS_PYOFF_CODE_IN_FRAME) */
	__u16 cr_name;
	__u16 cr_qualname;
	__u16 cr_iframe;   /* 3.11+: embedded _PyInterpreterFrame; 0 before */

	/* internal/pycore_frame.h _PyInterpreterFrame, 3.11+ (all 0 before) */
	__u16 frame_code;     /* f_code (3.11, 3.12), f_executable (3.13+) */
	__u16 frame_previous;
	__u16 frame_instr;    /* prev_instr (3.11, 3.12), instr_ptr (3.13+) */
	__u16 frame_owner;    /* char */

	/* frameobject.h (3.8) / cpython/frameobject.h PyFrameObject, <= 3.10
	 * (all 0 after) */
	__u16 f_back;
	__u16 f_code;
	__u16 f_lasti; /* int; bytes 3.8/3.9, code units 3.10 */

	/* internal/pycore_pystate.h (3.8) / internal/pycore_runtime.h
	 * _PyRuntimeState; internal/pycore_interp.h PyInterpreterState
	 * (tstate_head <= 3.10, threads.head 3.11+) */
	__u16 runtime_interpreters_head;
	__u16 interp_next;
	__u16 interp_threads_head;

	/* cpython/pystate.h PyThreadState */
	__u16 tstate_next;
	__u16 tstate_interp;
	__u16 tstate_thread_id;         /* unsigned long, pthread_self() */
	__u16 tstate_native_thread_id;  /* 3.11+; 0 before */
	__u16 tstate_frame;   /* `frame` <= 3.10, `current_frame` 3.13; 0 in 3.11/3.12 */
	__u16 tstate_cframe;  /* 3.11/3.12 `cframe` (_PyCFrame*); 0 otherwise */
	__u16 cframe_current_frame; /* _PyCFrame.current_frame, 3.11/3.12 */

	/* cpython/unicodeobject.h PyASCIIObject / PyCompactUnicodeObject */
	__u16 unicode_state;  /* bitfield struct, 4 bytes: LS_PY_STATE_* */
	__u16 unicode_length; /* Py_ssize_t, in characters */
	__u16 ascii_data;     /* sizeof(PyASCIIObject): compact ASCII data */
	__u16 compact_data;   /* sizeof(PyCompactUnicodeObject): compact non-ASCII */

	/* 3.14+: _PyThreadStateImpl.asyncio_running_task, from the _asyncio
	 * module's .AsyncioDebug (include/loopscope/pytask.h); 0 when unknown
	 * (the walker then sends no task). Set per target, not in the table. */
	__u16 tstate_running_task;
	__u16 pad_end[3];
};

#ifndef __BPF__
/* The row of CPython major.minor (agent/python/py_offsets_table.c, generated), or
 * NULL when there is none (anything but 3.8-3.13). Patch releases share
 * their minor version's row. Targets take their offsets from the resolved
 * struct ls_py_target.off (3.13+: from the interpreter's debug offsets), not
 * from here. */
const struct ls_py_offsets *ls_py_offsets_for(int major, int minor);
#endif

#endif /* LOOPSCOPE_PY_OFFSETS_H */
