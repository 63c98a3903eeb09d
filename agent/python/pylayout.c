// SPDX-License-Identifier: MIT
/*
 * A resolved CPython target's object layouts (struct ls_py_target.off):
 * the generated table row for 3.8-3.12; for 3.13 and later the target's own
 * _Py_DebugOffsets read from its ELF file (agent/pydebug.c validates them),
 * cross-checked against the 3.13 row, with the C Task from .AsyncioDebug
 * (3.14+) and the remaining constants checked against the file's own types.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "loopscope/pydebug.h"
#include "loopscope/pytarget.h"

/* tp_basicsize of the statically allocated type exported as `sym`, from the
 * file (its initializer), 0 when unknown. */
static uint64_t type_size(struct ls_elf *e, const char *sym, const struct ls_py_offsets *o)
{
	uint64_t type, size = 0;

	if (ls_elf_symbol(e, sym, LS_ELF_ANY, &type, NULL) ||
	    ls_elf_read(e, type + o->tp_basicsize, &size, sizeof(size)) || size > (1u << 20))
		return 0;
	return size;
}

/* Read an .AsyncioDebug section of the ELF at path (or of e when path is
 * NULL) into buf: 0, -ENOENT when there is none. */
static int asyncio_image(struct ls_elf *e, const char *path, uint8_t *buf)
{
	struct ls_elf *a = e;
	struct ls_elf_section s;
	int err;

	if (path && ls_elf_open(path, &a))
		return -ENOENT;
	err = ls_elf_section(a, ".AsyncioDebug", &s);
	if (!err && (s.type == SHT_NOBITS || s.size < LS_PYDEBUG_ASYNCIO_SIZE))
		err = -ENOENT;
	if (!err && ls_elf_read(a, s.addr, buf, LS_PYDEBUG_ASYNCIO_SIZE))
		err = -ENOENT;
	if (a != e)
		ls_elf_close(a);
	return err;
}

static void add_note(struct ls_py_target *out, const char *fmt, const char *a, const char *b)
{
	size_t n = strlen(out->note);

	if (n && n + 2 < sizeof(out->note)) {
		memcpy(out->note + n, "; ", 3);
		n += 2;
	}
	if (n < sizeof(out->note))
		snprintf(out->note + n, sizeof(out->note) - n, fmt, a, b);
}

int ls_py_layout_resolve(struct ls_elf *e, struct ls_py_target *out, const char *who,
			 const char *asyncio_path)
{
	const struct ls_py_offsets *row = ls_py_offsets_for(out->major, out->minor);
	const char *file = out->path;
	struct ls_elf_section s;
	struct ls_pydebug_result res;
	struct ls_pydebug_types types = { 0 };
	uint8_t img[LS_PYDEBUG_READ], aimg[LS_PYDEBUG_ASYNCIO_SIZE];
	uint64_t addr = 0, size = 0;
	char why[200], what[160];
	size_t n;
	int err, diff;

	if (out->minor < 13) {
		if (!row) {
			snprintf(out->error, sizeof(out->error), "%sno offsets for Python %d.%d in %.200s",
				 who, out->major, out->minor, file);
			return -ENOTSUP;
		}
		out->off = *row;
		return 0;
	}
	/* _PyRuntime, whose first member is _Py_DebugOffsets: the section
	 * .PyRuntime (3.13+: GENERATE_DEBUG_SECTION(PyRuntime, ...) in
	 * Python/pylifecycle.c; sections survive strip), else the exported
	 * symbol. Its initializer is in the file: the image is read there,
	 * never from the target's (writable) memory. */
	if (!ls_elf_section(e, ".PyRuntime", &s) && s.type != SHT_NOBITS && s.size) {
		addr = s.addr;
		size = s.size;
	} else if (ls_elf_symbol(e, "_PyRuntime", LS_ELF_ANY, &addr, &size)) {
		addr = 0;
	}
	n = size && size < sizeof(img) ? size : sizeof(img);
	if (!addr || ls_elf_read(e, addr, img, n)) {
		snprintf(out->error, sizeof(out->error), "%sno _Py_DebugOffsets in %.200s (no "
			 ".PyRuntime section or _PyRuntime data in the file)", who, file);
		return -ENOTSUP;
	}
	err = ls_pydebug_parse(img, n, size, out->major, out->minor, row, &out->off, &res, why,
			       sizeof(why));
	if (err == -ENOTSUP) {
		snprintf(out->error, sizeof(out->error), "%sfree-threaded CPython not supported yet "
			 "(%.200s)", who, file);
		return -ENOTSUP;
	}
	if (err) {
		snprintf(out->error, sizeof(out->error), "%s_Py_DebugOffsets in %.160s rejected: %.120s",
			 who, file, why);
		return -ENOTSUP;
	}
	if (!out->runtime.vaddr) {
		out->runtime.vaddr = addr;
		ls_elf_vaddr_to_offset(e, addr, &out->runtime.offset);
	}
	if (row) {
		/* 3.13: the table row was generated from 3.13.0's headers and
		 * patch releases keep layouts; a difference means another build
		 * (or a forged section that still passed every check). The
		 * interpreter's own values win: they are what it runs with. */
		diff = ls_pydebug_crosscheck(&out->off, row, what, sizeof(what));
		if (diff) {
			char cnt[48];

			snprintf(cnt, sizeof(cnt), "%d", diff);
			add_note(out, "%s offsets differ from loopscope's 3.13 table (%s); using the "
				 "interpreter's own", cnt, what);
		}
		return 0;
	}
	/* 3.14+: the constants, checked against the file's own types. */
	types.function = type_size(e, "PyFunction_Type", &out->off);
	types.method = type_size(e, "PyMethod_Type", &out->off);
	types.cfunction = type_size(e, "PyCFunction_Type", &out->off);
	types.coro = type_size(e, "PyCoro_Type", &out->off);
	types.code = type_size(e, "PyCode_Type", &out->off);
	err = ls_pydebug_check_types(&out->off, &types, why, sizeof(why));
	if (err) {
		snprintf(out->error, sizeof(out->error), "%sobject layouts of %.160s rejected: %.120s", who,
			 file, why);
		return -ENOTSUP;
	}
	/* The C Task: .AsyncioDebug of the interpreter (_asyncio built in)
	 * or of the _asyncio extension the target has mapped; else the
	 * constants, which BPF checks against the Task's tp_basicsize. */
	if (!asyncio_image(e, NULL, aimg) ||
	    (asyncio_path && !asyncio_image(e, asyncio_path, aimg))) {
		struct ls_py_offsets t = out->off;

		if (ls_pydebug_asyncio(aimg, sizeof(aimg), &t, why, sizeof(why)))
			add_note(out, ".AsyncioDebug rejected (%s)%s; Tasks named with the built-in "
				 "layout", why, "");
		else
			out->off = t;
	}
	if (res.untested) {
		char v[48], t[48];

		snprintf(v, sizeof(v), "3.%d", out->minor);
		snprintf(t, sizeof(t), "3.%d", LS_PY_MAX_MINOR);
		add_note(out, "CPython %s is newer than the newest tested (%s); trying its debug "
			 "offsets", v, t);
	}
	return 0;
}
