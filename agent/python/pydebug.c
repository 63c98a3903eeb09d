// SPDX-License-Identifier: MIT
/*
 * CPython 3.13+ layouts from the interpreter's own _Py_DebugOffsets and
 * _Py_AsyncioModuleDebugOffsets (see include/loopscope/pydebug.h): parsing
 * with a per-version layout of those structs, validation, and the constants
 * 3.14+ need beyond them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "loopscope/pydebug.h"
#include "loopscope/pytask.h"

/*
 * The layout of _Py_DebugOffsets itself, per minor version: the byte
 * position in the image of each uint64_t loopscope reads (0: absent in that
 * version). From offsetof() against the headers of 3.13.0 (Include/internal/
 * pycore_runtime.h), 3.14.10 and 3.15.2 (Include/internal/
 * pycore_debug_offsets.h); the struct grows inside its sub-structs between
 * versions (3.14: interpreter_state.threads_main, code_object_generation,
 * tlbc_generation, interpreter_frame.stackpointer, set_object, gen_object,
 * debugger_support...; 3.15: thread_state.base_frame and three more,
 * err_stackitem, type_object.tp_basicsize, heap_type_object, unicode
 * compactunicodeobject_size, gc.frame...), so each version has its own row.
 */
struct dbg_layout {
	int minor;
	uint16_t image_size; /* sizeof(_Py_DebugOffsets) */
	uint16_t runtime_size, interpreters_head;
	uint16_t interp_size, interp_next, interp_threads_head;
	uint16_t ts_size, ts_next, ts_interp, ts_current_frame, ts_thread_id, ts_native_thread_id;
	uint16_t fr_size, fr_previous, fr_executable, fr_instr_ptr, fr_owner;
	uint16_t co_size, co_filename, co_name, co_qualname, co_linetable, co_firstlineno,
		co_code_adaptive;
	uint16_t ob_size, ob_type;
	uint16_t ty_size, tp_name, tp_basicsize;
	uint16_t by_size, by_ob_sval;
	uint16_t uni_size, uni_state, uni_length, uni_ascii_size, uni_compact_size;
	uint16_t gen_size, gen_gi_name, gen_gi_iframe;
};

static const struct dbg_layout layouts[] = {
	{
		.minor = 13, .image_size = 584,
		.runtime_size = 24, .interpreters_head = 40,
		.interp_size = 48, .interp_next = 64, .interp_threads_head = 72,
		.ts_size = 152, .ts_next = 168, .ts_interp = 176, .ts_current_frame = 184,
		.ts_thread_id = 192, .ts_native_thread_id = 200,
		.fr_size = 224, .fr_previous = 232, .fr_executable = 240, .fr_instr_ptr = 248,
		.fr_owner = 264,
		.co_size = 272, .co_filename = 280, .co_name = 288, .co_qualname = 296,
		.co_linetable = 304, .co_firstlineno = 312, .co_code_adaptive = 344,
		.ob_size = 352, .ob_type = 360,
		.ty_size = 368, .tp_name = 376,
		.by_size = 512, .by_ob_sval = 528,
		.uni_size = 536, .uni_state = 544, .uni_length = 552, .uni_ascii_size = 560,
	},
	{
		.minor = 14, .image_size = 760,
		.runtime_size = 24, .interpreters_head = 40,
		.interp_size = 48, .interp_next = 64, .interp_threads_head = 72,
		.ts_size = 176, .ts_next = 192, .ts_interp = 200, .ts_current_frame = 208,
		.ts_thread_id = 216, .ts_native_thread_id = 224,
		.fr_size = 248, .fr_previous = 256, .fr_executable = 264, .fr_instr_ptr = 272,
		.fr_owner = 288,
		.co_size = 312, .co_filename = 320, .co_name = 328, .co_qualname = 336,
		.co_linetable = 344, .co_firstlineno = 352, .co_code_adaptive = 384,
		.ob_size = 400, .ob_type = 408,
		.ty_size = 416, .tp_name = 424,
		.by_size = 592, .by_ob_sval = 608,
		.uni_size = 616, .uni_state = 624, .uni_length = 632, .uni_ascii_size = 640,
		.gen_size = 664, .gen_gi_name = 672, .gen_gi_iframe = 680,
	},
	{
		.minor = 15, .image_size = 888,
		.runtime_size = 24, .interpreters_head = 40,
		.interp_size = 48, .interp_next = 64, .interp_threads_head = 72,
		.ts_size = 176, .ts_next = 192, .ts_interp = 200, .ts_current_frame = 208,
		.ts_thread_id = 240, .ts_native_thread_id = 248,
		.fr_size = 312, .fr_previous = 320, .fr_executable = 328, .fr_instr_ptr = 336,
		.fr_owner = 352,
		.co_size = 376, .co_filename = 384, .co_name = 392, .co_qualname = 400,
		.co_linetable = 408, .co_firstlineno = 416, .co_code_adaptive = 448,
		.ob_size = 464, .ob_type = 472,
		.ty_size = 480, .tp_name = 488, .tp_basicsize = 512,
		.by_size = 688, .by_ob_sval = 704,
		.uni_size = 712, .uni_state = 720, .uni_length = 728, .uni_ascii_size = 736,
		.uni_compact_size = 744,
		.gen_size = 792, .gen_gi_name = 800, .gen_gi_iframe = 808,
	},
};

/*
 * 3.14+: what the debug offsets do not give, x86-64 release (GIL) builds.
 * Checked by offsetof() against the 3.14.10 and 3.15.2 headers, and live
 * (reading the fields of real objects through ctypes) on both; checked at
 * resolution against the target's tp_basicsize (ls_pydebug_check_types),
 * and the Task's in BPF before each use (task_size).
 */
static const struct ls_py_offsets base_314 = {
	.flags = LS_PYOFF_LOCATIONS | LS_PYOFF_IFRAME | LS_PYOFF_CODE_IN_FRAME |
		 LS_PYOFF_EXECUTABLE | LS_PYOFF_DEBUG_OFFSETS | LS_PYOFF_STACKREF,
	/* cpython/object.h PyTypeObject: PyObject_VAR_HEAD (24), tp_name,
	 * tp_basicsize (3.15 also gives it in the debug offsets). */
	.tp_basicsize = 32,
	/* cpython/funcobject.h _Py_COMMON_FIELDS(func_): PyObject_HEAD,
	 * func_globals, func_builtins, func_name, func_qualname, func_code. */
	.func_name = 32,
	.func_qualname = 40,
	.func_code = 48,
	/* cpython/classobject.h PyMethodObject: PyObject_HEAD, im_func, im_self. */
	.im_func = 16,
	.im_self = 24,
	/* cpython/methodobject.h PyCFunctionObject: PyObject_HEAD, m_ml, m_self;
	 * methodobject.h PyMethodDef: ml_name first. */
	.m_ml = 16,
	.m_self = 24,
	.ml_name = 0,
	/* Modules/_functoolsmodule.c partialobject 3.14/3.15: PyObject_HEAD, fn,
	 * args, kw, dict, weakreflist, phcount, vectorcall: 80 bytes. */
	.partial_fn = 16,
	.partial_size = 80,
	/* Modules/_asynciomodule.c TaskStepMethWrapper: PyObject_HEAD, sw_task. */
	.sw_task = 16,
	/* Modules/_asynciomodule.c TaskObj 3.14/3.15 (FutureObj_HEAD(task), then
	 * task_fut_waiter, task_coro, task_name, task_context, task_node): the
	 * values of its .AsyncioDebug section, used when that is not found. */
	.task_coro = 128,
	.task_name = 136,
	.task_size = 168,
};

static int fail(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

static uint64_t u64_at(const uint8_t *b, uint16_t pos)
{
	uint64_t v;

	memcpy(&v, b + pos, sizeof(v));
	return v;
}

struct parse {
	const uint8_t *img;
	const struct dbg_layout *L;
	char *why;
	size_t why_len;
	int err;
};

/* A struct size at pos: 0 < size <= max. */
static uint64_t size_at(struct parse *p, uint16_t pos, const char *name, uint64_t max)
{
	uint64_t v = u64_at(p->img, pos);

	if (!p->err && (v == 0 || v > max))
		p->err = fail(p->why, p->why_len, "%s %llu out of bounds (1 to %llu)", name,
			      (unsigned long long)v, (unsigned long long)max);
	return v;
}

/* A field offset at pos, of a field `width` bytes wide, inside a struct of
 * size `size` named `in`: offset + width <= size, aligned to the width (at
 * most 8), and < 65536. Returns it (0 after a failure). */
static uint16_t field_at(struct parse *p, uint16_t pos, const char *name, unsigned width,
			 uint64_t size, const char *in)
{
	uint64_t v = u64_at(p->img, pos);
	unsigned align = width < 8 ? width : 8;

	if (p->err)
		return 0;
	if (v > 0xffff || v + width > size || v % align) {
		p->err = fail(p->why, p->why_len, "%s %llu %s %s (size %llu)", name,
			      (unsigned long long)v, v % align && v + width <= size ?
			      "misaligned in" : "outside", in, (unsigned long long)size);
		return 0;
	}
	return (uint16_t)v;
}

static const struct dbg_layout *layout_for(int minor)
{
	const struct dbg_layout *L = NULL;

	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		if (layouts[i].minor <= minor)
			L = &layouts[i];
	return L;
}

#define OBJ_MAX   (64u * 1024)        /* any object, frame or thread state */
#define STATE_MAX (16u * 1024 * 1024) /* _PyRuntimeState, PyInterpreterState */

int ls_pydebug_parse(const void *buf, size_t len, uint64_t section_size, int major, int minor,
		     const struct ls_py_offsets *base, struct ls_py_offsets *out,
		     struct ls_pydebug_result *res, char *why, size_t why_len)
{
	const uint8_t *img = buf;
	struct parse p = { .img = img, .why = why, .why_len = why_len };
	const struct dbg_layout *L;
	struct ls_py_offsets o;
	uint64_t version, ft, rt, in, ts, fr, co, ob, ty, by, un, gen = 0;

	memset(res, 0, sizeof(*res));
	if (why_len)
		why[0] = '\0';
	if (major != 3 || minor < 13 || minor > 99)
		return -EINVAL;
	L = layout_for(minor);
	p.L = L;
	res->untested = minor > LS_PYDEBUG_NEWEST_MINOR;
	if (len < L->image_size)
		return fail(why, why_len, "%zu bytes, the 3.%d layout has %u", len, L->minor,
			    L->image_size);
	/* Internal/pycore_debug_offsets.h (3.14+), pycore_runtime.h (3.13):
	 * char cookie[8] = "xdebugpy", no NUL. */
	if (memcmp(img, "xdebugpy", 8))
		return fail(why, why_len, "cookie is not \"xdebugpy\"");
	version = u64_at(img, 8);
	res->version_hex = version;
	if ((version >> 24) != (uint64_t)major || ((version >> 16) & 0xff) != (uint64_t)minor ||
	    version > 0xffffffffull)
		return fail(why, why_len, "version 0x%llx is not that of Python %d.%d",
			    (unsigned long long)version, major, minor);
	ft = u64_at(img, 16);
	if (ft > 1)
		return fail(why, why_len, "free_threaded is %llu, not 0 or 1",
			    (unsigned long long)ft);
	res->free_threaded = ft == 1;
	if (res->free_threaded)
		return -ENOTSUP;

	o = base ? *base : base_314;
	/* runtime and interpreter states: sizes up to 16 MiB; the runtime
	 * state is the whole of _PyRuntime, so its section holds it. */
	rt = size_at(&p, L->runtime_size, "runtime_state.size", STATE_MAX);
	if (!p.err && section_size && rt > section_size)
		p.err = fail(why, why_len, "runtime_state.size %llu larger than its section (%llu)",
			     (unsigned long long)rt, (unsigned long long)section_size);
	/* interpreters.head, then interpreters.main (read by the walker). */
	o.runtime_interpreters_head = field_at(&p, L->interpreters_head,
					       "runtime_state.interpreters_head", 16, rt,
					       "_PyRuntimeState");
	in = size_at(&p, L->interp_size, "interpreter_state.size", STATE_MAX);
	o.interp_next = field_at(&p, L->interp_next, "interpreter_state.next", 8, in,
				 "PyInterpreterState");
	o.interp_threads_head = field_at(&p, L->interp_threads_head,
					 "interpreter_state.threads_head", 8, in,
					 "PyInterpreterState");
	ts = size_at(&p, L->ts_size, "thread_state.size", OBJ_MAX);
	o.tstate_next = field_at(&p, L->ts_next, "thread_state.next", 8, ts, "PyThreadState");
	o.tstate_interp = field_at(&p, L->ts_interp, "thread_state.interp", 8, ts,
				   "PyThreadState");
	o.tstate_frame = field_at(&p, L->ts_current_frame, "thread_state.current_frame", 8, ts,
				  "PyThreadState");
	o.tstate_thread_id = field_at(&p, L->ts_thread_id, "thread_state.thread_id", 8, ts,
				      "PyThreadState");
	o.tstate_native_thread_id = field_at(&p, L->ts_native_thread_id,
					     "thread_state.native_thread_id", 8, ts,
					     "PyThreadState");
	o.tstate_cframe = 0;
	o.cframe_current_frame = 0;
	fr = size_at(&p, L->fr_size, "interpreter_frame.size", OBJ_MAX);
	o.frame_previous = field_at(&p, L->fr_previous, "interpreter_frame.previous", 8, fr,
				    "_PyInterpreterFrame");
	o.frame_code = field_at(&p, L->fr_executable, "interpreter_frame.executable", 8, fr,
				"_PyInterpreterFrame");
	o.frame_instr = field_at(&p, L->fr_instr_ptr, "interpreter_frame.instr_ptr", 8, fr,
				 "_PyInterpreterFrame");
	o.frame_owner = field_at(&p, L->fr_owner, "interpreter_frame.owner", 1, fr,
				 "_PyInterpreterFrame");
	co = size_at(&p, L->co_size, "code_object.size", OBJ_MAX);
	o.co_filename = field_at(&p, L->co_filename, "code_object.filename", 8, co,
				 "PyCodeObject");
	o.co_name = field_at(&p, L->co_name, "code_object.name", 8, co, "PyCodeObject");
	o.co_qualname = field_at(&p, L->co_qualname, "code_object.qualname", 8, co,
				 "PyCodeObject");
	o.co_linetable = field_at(&p, L->co_linetable, "code_object.linetable", 8, co,
				  "PyCodeObject");
	o.co_firstlineno = field_at(&p, L->co_firstlineno, "code_object.firstlineno", 4, co,
				    "PyCodeObject");
	/* co_code_adaptive is the flexible array at the end: it may equal
	 * sizeof(PyCodeObject). */
	o.co_code_adaptive = field_at(&p, L->co_code_adaptive, "code_object.co_code_adaptive",
				      2, co + 2, "PyCodeObject");
	o.co_code = 0;
	o.cr_code = 0;
	ob = size_at(&p, L->ob_size, "pyobject.size", OBJ_MAX);
	o.ob_type = field_at(&p, L->ob_type, "pyobject.ob_type", 8, ob, "PyObject");
	ty = size_at(&p, L->ty_size, "type_object.size", OBJ_MAX);
	o.tp_name = field_at(&p, L->tp_name, "type_object.tp_name", 8, ty, "PyTypeObject");
	if (L->tp_basicsize)
		o.tp_basicsize = field_at(&p, L->tp_basicsize, "type_object.tp_basicsize", 8, ty,
					  "PyTypeObject");
	by = size_at(&p, L->by_size, "bytes_object.size", OBJ_MAX);
	un = size_at(&p, L->uni_size, "unicode_object.size", OBJ_MAX);
	o.unicode_state = field_at(&p, L->uni_state, "unicode_object.state", 4, un,
				   "PyUnicodeObject");
	o.unicode_length = field_at(&p, L->uni_length, "unicode_object.length", 8, un,
				    "PyUnicodeObject");
	o.ascii_data = field_at(&p, L->uni_ascii_size, "unicode_object.asciiobject_size", 8,
				un + 8, "PyUnicodeObject");
	if (L->uni_compact_size)
		o.compact_data = field_at(&p, L->uni_compact_size,
					  "unicode_object.compactunicodeobject_size", 8, un + 8,
					  "PyUnicodeObject");
	else if (!p.err)
		o.compact_data = (uint16_t)(o.ascii_data + 16);
	if (L->gen_size) {
		gen = size_at(&p, L->gen_size, "gen_object.size", OBJ_MAX);
		/* gi_name, then gi_qualname (_PyGenObject_HEAD). */
		o.cr_name = field_at(&p, L->gen_gi_name, "gen_object.gi_name", 16, gen,
				     "PyGenObject");
		o.cr_qualname = (uint16_t)(o.cr_name + 8);
		o.cr_iframe = field_at(&p, L->gen_gi_iframe, "gen_object.gi_iframe", 8, gen,
				       "PyGenObject");
		/* The embedded frame's f_executable lies inside the coroutine. */
		if (!p.err && (uint64_t)o.cr_iframe + o.frame_code + 8 > gen)
			p.err = fail(why, why_len, "gen_object.gi_iframe %u + executable %u outside "
				     "PyGenObject (size %llu)", o.cr_iframe, o.frame_code,
				     (unsigned long long)gen);
	}
	if (p.err)
		return p.err;
	/* What loopscope hardcodes elsewhere must hold (object.h: ob_type after
	 * ob_refcnt; cpython/object.h: tp_name after PyObject_VAR_HEAD;
	 * cpython/bytesobject.h: ob_sval at 32, read by agent/pycode.c). */
	if (o.ob_type != 8 || o.tp_name != 24 || (o.tp_basicsize && o.tp_basicsize != 32))
		return fail(why, why_len, "PyObject/PyTypeObject layout differs (ob_type %u, "
			    "tp_name %u)", o.ob_type, o.tp_name);
	if (u64_at(img, L->by_ob_sval) != 32 || by < 33)
		return fail(why, why_len, "bytes_object.ob_sval %llu, not 32",
			    (unsigned long long)u64_at(img, L->by_ob_sval));
	if (!o.tp_basicsize)
		o.tp_basicsize = 32;
	o.version_hex = (uint32_t)(version & 0xffff0000u);
	o.flags |= LS_PYOFF_DEBUG_OFFSETS | LS_PYOFF_FROM_TARGET | LS_PYOFF_LOCATIONS |
		   LS_PYOFF_IFRAME | LS_PYOFF_CODE_IN_FRAME | LS_PYOFF_EXECUTABLE;
	o.flags &= ~(LS_PYOFF_CFRAME | LS_PYOFF_LNOTAB | LS_PYOFF_LINETABLE_310 |
		     LS_PYOFF_LASTI_UNITS | LS_PYOFF_WAKEUP_WRAPPER);
	if (minor >= 14)
		o.flags |= LS_PYOFF_STACKREF;
	*out = o;
	return 0;
}

int ls_pydebug_asyncio(const void *buf, size_t len, struct ls_py_offsets *off, char *why,
		       size_t why_len)
{
	struct ls_pytask_offsets ao;
	int err;

	/* One validator for the section (agent/python/pytask.c): every field
	 * inside TaskObj, the running-task pointer inside the thread state. */
	err = ls_pytask_parse(buf, len, &ao, why, why_len);
	if (err)
		return -EPROTO; /* rejected, as every check here */
	off->task_size = (uint16_t)ao.task_size;
	off->task_name = (uint16_t)ao.task_name;
	off->task_coro = (uint16_t)ao.task_coro;
	off->tstate_running_task = (uint16_t)ao.tstate_running_task;
	return 0;
}

int ls_pydebug_crosscheck(const struct ls_py_offsets *dbg, const struct ls_py_offsets *row,
			  char *what, size_t what_len)
{
#define F(f) { #f, offsetof(struct ls_py_offsets, f) }
	static const struct { const char *name; size_t at; } shared[] = {
		F(ob_type), F(tp_name), F(co_filename), F(co_name), F(co_qualname),
		F(co_firstlineno), F(co_linetable), F(co_code_adaptive), F(frame_code),
		F(frame_previous), F(frame_instr), F(frame_owner),
		F(runtime_interpreters_head), F(interp_next), F(interp_threads_head),
		F(tstate_next), F(tstate_interp), F(tstate_thread_id),
		F(tstate_native_thread_id), F(tstate_frame), F(unicode_state),
		F(unicode_length), F(ascii_data), F(compact_data),
	};
#undef F
	int n = 0;

	if (what_len)
		what[0] = '\0';
	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++) {
		uint16_t a, b;

		memcpy(&a, (const char *)dbg + shared[i].at, sizeof(a));
		memcpy(&b, (const char *)row + shared[i].at, sizeof(b));
		if (a == b)
			continue;
		if (!n++)
			snprintf(what, what_len, "%s %u in the table, %u in the interpreter",
				 shared[i].name, b, a);
	}
	return n;
}

/* Field [at, at + width) within size bytes (size 0: unknown, not checked). */
static int within(uint64_t size, unsigned at, unsigned width, const char *field,
		  const char *type, char *why, size_t why_len)
{
	if (!size || at + width <= size)
		return 0;
	return fail(why, why_len, "%s %u outside the target's %s (tp_basicsize %llu)", field, at,
		    type, (unsigned long long)size);
}

int ls_pydebug_check_types(const struct ls_py_offsets *o, const struct ls_pydebug_types *t,
			   char *why, size_t why_len)
{
	const struct {
		uint64_t size;
		unsigned at, width;
		const char *field, *type;
	} checks[] = {
		{ t->function, o->func_code, 8, "func_code", "function" },
		{ t->function, o->func_qualname, 8, "func_qualname", "function" },
		{ t->method, o->im_func, 8, "im_func", "method" },
		{ t->method, o->im_self, 8, "im_self", "method" },
		{ t->cfunction, o->m_ml, 8, "m_ml", "builtin_function_or_method" },
		{ t->cfunction, o->m_self, 8, "m_self", "builtin_function_or_method" },
		{ t->coro, o->cr_qualname, 8, "cr_qualname", "coroutine" },
		{ t->coro, (unsigned)o->cr_iframe + o->frame_code, 8, "cr_iframe", "coroutine" },
		{ t->code, o->co_linetable, 8, "co_linetable", "code" },
		{ t->code, o->co_qualname, 8, "co_qualname", "code" },
		/* the variable part (bytecode) starts at tp_basicsize */
		{ t->code, o->co_code_adaptive, 0, "co_code_adaptive", "code" },
		{ t->partial, o->partial_fn, 8, "partial_fn", "functools.partial" },
	};

	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		int err = within(checks[i].size, checks[i].at, checks[i].width, checks[i].field,
				 checks[i].type, why, why_len);

		if (err)
			return err;
	}
	if (t->partial && o->partial_size && t->partial != o->partial_size)
		return fail(why, why_len, "functools.partial is %llu bytes, not %u",
			    (unsigned long long)t->partial, o->partial_size);
	return 0;
}
