/* SPDX-License-Identifier: MIT */
/*
 * CPython 3.13+ layouts from the interpreter's own debug offsets
 * (agent/pydebug.c): `_Py_DebugOffsets`, the first member of `_PyRuntime`
 * (section `.PyRuntime`, kept by strip), and `_Py_AsyncioModuleDebugOffsets`
 * (section `.AsyncioDebug` of the binary or of the _asyncio extension,
 * 3.14+), parsed and validated into the struct ls_py_offsets the BPF
 * programs consume. Everything here works on bytes already read: a target
 * can put anything in those sections, so nothing is trusted before it is
 * checked, and a rejection says why in one line.
 *
 * Where each field of ls_py_offsets comes from on 3.13+:
 *  - the debug offsets: ob_type, tp_name, tp_basicsize (3.15+), co_*, frame_*,
 *    runtime/interpreter/thread-state fields, unicode_*, cr_iframe and
 *    cr_name (3.14+: gen_object);
 *  - derived from them: cr_qualname = gen_object.gi_name + 8 (3.14+,
 *    _PyGenObject_HEAD in internal/pycore_genobject.h 3.14/3.15: gi_name
 *    then gi_qualname), compact_data = asciiobject_size + 16 before 3.15
 *    (cpython/unicodeobject.h PyCompactUnicodeObject: PyASCIIObject, then
 *    Py_ssize_t utf8_length and char *utf8);
 *  - 3.13: the generated table row (agent/py_offsets_table.c) for what the
 *    debug offsets lack, and as a cross-check of what they have;
 *  - 3.14+: constants (pydebug.c, each with its source) for function,
 *    method, builtin, partial and TaskStepMethWrapper objects, checked against
 *    the target's own types' tp_basicsize (ls_pydebug_check_types); the
 *    C Task from `.AsyncioDebug` when the target has it (ls_pydebug_asyncio).
 */
#ifndef LOOPSCOPE_PYDEBUG_H
#define LOOPSCOPE_PYDEBUG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loopscope/abi/py_offsets.h"

/* Newest CPython minor version whose _Py_DebugOffsets layout is known here
 * (checked on 3.15.2). Newer ones are parsed with this layout and must
 * pass every check (ls_pydebug_parse sets untested). */
#define LS_PYDEBUG_NEWEST_MINOR 15

/* Bytes of a _Py_DebugOffsets image to read: more than the largest known
 * (888 bytes, 3.15). */
#define LS_PYDEBUG_READ 1024

/* Bytes of a _Py_AsyncioModuleDebugOffsets image (13 uint64_t, 3.14/3.15). */
#define LS_PYDEBUG_ASYNCIO_SIZE 104

struct ls_pydebug_result {
	uint64_t version_hex;  /* the image's PY_VERSION_HEX, e.g. 0x030e0af0 */
	bool free_threaded;    /* Py_GIL_DISABLED build */
	bool untested;         /* minor > LS_PYDEBUG_NEWEST_MINOR: parsed with
				* the newest known layout */
};

/*
 * Parse and validate the _Py_DebugOffsets image at buf (len bytes read from
 * the start of _PyRuntime; section_size: the size of the .PyRuntime section
 * or of the _PyRuntime symbol, 0 when unknown) of a CPython major.minor
 * (from the file's name or its PY_VERSION string), minor >= 13, and fill
 * *out: base (the 3.13 table row, or NULL for 3.14+, which uses pydebug.c's
 * constants) with every field the image holds replaced by its value.
 * Returns 0; -EPROTO when the image is not acceptable (why: one phrase, e.g.
 * "cookie is not \"xdebugpy\"", "thread_state.thread_id 70000 outside
 * PyThreadState (size 936)"); -ENOTSUP when it describes a free-threaded
 * build (res->free_threaded set, *out left unset); -EINVAL for a minor
 * below 13. Checks: cookie, version major.minor equal to major.minor,
 * free_threaded 0 or 1, every struct size within bounds (objects < 64 KiB,
 * runtime and interpreter states < 16 MiB and the runtime within
 * section_size), every offset used plus its field's width within its
 * struct's size, aligned to the field's width, and below 65536 (the
 * ls_py_offsets fields are __u16); the layout facts loopscope hardcodes
 * (ob_type 8, tp_name 24, bytes ob_sval 32) must hold.
 */
int ls_pydebug_parse(const void *buf, size_t len, uint64_t section_size, int major, int minor,
		     const struct ls_py_offsets *base, struct ls_py_offsets *out,
		     struct ls_pydebug_result *res, char *why, size_t why_len);

/*
 * Take the C Task's layout from a _Py_AsyncioModuleDebugOffsets image (buf,
 * len >= LS_PYDEBUG_ASYNCIO_SIZE; Modules/_asynciomodule.c 3.14/3.15:
 * asyncio_task_object {size, task_name, task_awaited_by, task_is_task,
 * task_awaited_by_is_set, task_coro, task_node}, then interpreter and thread
 * state parts): task_size, task_coro, task_name in *off. 0, or -EPROTO with
 * why (size not in [16, 4096), a field outside the Task or unaligned).
 */
int ls_pydebug_asyncio(const void *buf, size_t len, struct ls_py_offsets *off, char *why,
		       size_t why_len);

/*
 * Compare the fields a 3.13 table row shares with the debug offsets: the
 * number that differ (0: all agree); the first is named in what (e.g.
 * "tstate_thread_id 152 in the table, 160 in the interpreter").
 */
int ls_pydebug_crosscheck(const struct ls_py_offsets *dbg, const struct ls_py_offsets *row,
			  char *what, size_t what_len);

/* The object sizes (tp_basicsize, bytes) of a target's types, 0 when not
 * known; filled by the caller from the ELF file (pytarget.c). */
struct ls_pydebug_types {
	uint64_t function, method, cfunction, coro, code, partial, task;
};

/*
 * Check the constant (non-debug-offsets) fields of off against the target's
 * own types: every field read from an object must lie within its type's
 * tp_basicsize (function: func_code, func_qualname; method: im_func,
 * im_self; builtin: m_ml, m_self; coroutine: cr_qualname, cr_iframe; code:
 * co_* header fields; partial: partial_fn, and partial_size = its size).
 * Unknown sizes (0) are not checked. 0, or -EPROTO with why.
 */
int ls_pydebug_check_types(const struct ls_py_offsets *off, const struct ls_pydebug_types *t,
			   char *why, size_t why_len);

struct ls_elf;
struct ls_py_target;

/*
 * Fill out->off for the CPython out->major.out->minor (>= 3.8) whose ELF
 * file e is open (agent/pylayout.c): the table row for 3.8-3.12; for 3.13+
 * the debug offsets of e's .PyRuntime section (else its _PyRuntime symbol),
 * the 3.13 row cross-checked (the interpreter's values win, the difference
 * goes to out->note), on 3.14+ the Task from .AsyncioDebug of e or of the
 * ELF at asyncio_path (the target's mapped _asyncio extension; NULL: none).
 * out->runtime is set from the section when not exported. who: "pid N: " or
 * "". 0, or -ENOTSUP with one line in out->error: no debug offsets,
 * "_Py_DebugOffsets in FILE rejected: REASON", "free-threaded CPython not
 * supported yet", or constants that do not fit the file's own types.
 */
int ls_py_layout_resolve(struct ls_elf *e, struct ls_py_target *out, const char *who,
			 const char *asyncio_path);

#endif
