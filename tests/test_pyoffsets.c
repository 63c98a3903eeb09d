// SPDX-License-Identifier: MIT
/*
 * Suite "pyoffsets": the generated offset table (agent/python/py_offsets_table.c,
 * include/loopscope/abi/py_offsets.h) checked against live interpreters.
 *
 * For every CPython 3.8-3.13 under /root/.pyenv/versions, and for Debian's
 * /usr/bin/python3.11 (a different build of the same minor version: it must
 * be read with the 3.11 row, since patch releases and distribution builds
 * share a minor version's layout), a small script builds known objects (a
 * function, its code, a bound method, a functools.partial, a coroutine, C
 * asyncio Tasks with their step and wakeup callbacks, strings), prints their
 * id() (the address) and blocks in a known function. The test then reads
 * /proc/PID/mem at those addresses plus the table's offsets and checks that
 * following them yields the expected objects, names and numbers, and walks
 * _PyRuntime -> interpreter -> thread states -> top frame.
 *
 * Interpreters that are not installed, and installed ones the table does not
 * support (2.7, 3.6, 3.7), are reported with a SKIP line naming them.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/abi/py_offsets.h"
#include "loopscope/pytarget.h"
#include "pythons.h"
#include "spawn.h"

#define PYENV "/root/.pyenv/versions"

struct target {
	const char *label;   /* for messages */
	const char *pattern; /* glob of the interpreter */
	int minor;           /* the 3.X row it must use */
};

static const struct target targets[] = {
	{ "pyenv 3.8", PYENV "/3.8.*/bin/python3.8", 8 },
	{ "pyenv 3.9", PYENV "/3.9.*/bin/python3.9", 9 },
	{ "pyenv 3.10", PYENV "/3.10.*/bin/python3.10", 10 },
	{ "pyenv 3.11", PYENV "/3.11.*/bin/python3.11", 11 },
	{ "pyenv 3.12", PYENV "/3.12.*/bin/python3.12", 12 },
	{ "pyenv 3.13", PYENV "/3.13.*/bin/python3.13", 13 },
	/* Debian 12's build (3.11.2, stripped, static): the 3.11 row. */
	{ "debian 3.11", "/usr/bin/python3.11", 11 },
};
#define NTARGETS ((int)(sizeof(targets) / sizeof(targets[0])))

/* The script's objects; every id() is printed on one "LS " line. Line
 * numbers matter: Foo.bar starts on line 5 of the file. */
static const char script[] =
	"import asyncio, builtins, ctypes, functools, sys, threading, time\n"
	"\n"
	"\n"
	"class Foo:\n"
	"    def bar(self):\n"
	"        return 1\n"
	"\n"
	"    async def run(self, fut=None):\n"
	"        if fut is not None:\n"
	"            await fut\n"
	"        await asyncio.sleep(3600)\n"
	"\n"
	"\n"
	"def waiter():\n"
	"    time.sleep(3600)\n"
	"\n"
	"\n"
	"steps = []\n"
	"\n"
	"\n"
	"class Loop(asyncio.SelectorEventLoop):\n"
	"    def call_soon(self, callback, *args, **kw):\n"
	"        if type(callback).__name__ == 'TaskStepMethWrapper':\n"
	"            steps.append(callback)\n"
	"        return super().call_soon(callback, *args, **kw)\n"
	"\n"
	"\n"
	"foo = Foo()\n"
	"meth = foo.bar\n"
	"part = functools.partial(Foo.bar, foo)\n"
	"coro = foo.run()\n"
	"s_ascii = 'loopscope-' + str(len(sys.argv) * 7)\n"
	"s_latin = 'h\\xe9llo-' + str(len(sys.argv) * 7)\n"
	"loop = Loop()\n"
	"asyncio.set_event_loop(loop)\n"
	"task = loop.create_task(Foo().run(), name='ls-task')\n"
	"fut = loop.create_future()\n"
	"task2 = loop.create_task(Foo().run(fut))\n"
	"loop.run_until_complete(asyncio.sleep(0.01))\n"
	"wake = fut._callbacks[0][0]\n"
	"rt = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, '_PyRuntime'))\n"
	"v = {\n"
	"    'major': sys.version_info[0], 'minor': sys.version_info[1],\n"
	"    'func': id(Foo.bar), 'code': id(Foo.bar.__code__),\n"
	"    'firstlineno': Foo.bar.__code__.co_firstlineno,\n"
	"    'meth': id(meth), 'foo': id(foo), 'part': id(part),\n"
	"    'coro': id(coro), 'coro_code': id(Foo.run.__code__),\n"
	"    'task': id(task), 'task_coro': id(task.get_coro()),\n"
	"    'step': id(steps[0]) if steps else 0, 'steps': len(steps),\n"
	"    'task2': id(task2), 'wake': id(wake),\n"
	"    'len': id(len), 'builtins': id(builtins),\n"
	"    's_ascii': id(s_ascii), 's_latin': id(s_latin),\n"
	"    'runtime': rt, 'tid': threading.get_ident(),\n"
	"    'ntid': threading.get_native_id(),\n"
	"    'waiter_code': id(waiter.__code__),\n"
	"    'waiter_len': len(waiter.__code__.co_code),\n"
	"}\n"
	"print('LS ' + ' '.join('%s=%d' % kv for kv in v.items()), flush=True)\n"
	"waiter()\n";

/* ---- the "LS k=v ..." line ---- */

static char line[4096];

static uint64_t val(const char *key)
{
	size_t n = strlen(key);

	for (const char *p = line; (p = strstr(p, key)) != NULL; p += n) {
		if ((p == line || p[-1] == ' ') && p[n] == '=')
			return strtoull(p + n + 1, NULL, 10);
	}
	ck_abort_msg("key %s missing from: %s", key, line);
	return 0;
}

/* ---- the target's memory ---- */

static int memfd = -1;
static const char *who = "";

static void rd(uint64_t addr, void *buf, size_t n)
{
	ssize_t got = pread(memfd, buf, n, (off_t)addr);

	ck_assert_msg(got == (ssize_t)n, "%s: read %zu bytes at 0x%llx: %s", who, n,
		      (unsigned long long)addr, got < 0 ? strerror(errno) : "short");
}

static uint64_t rd64(uint64_t addr)
{
	uint64_t v;

	rd(addr, &v, sizeof(v));
	return v;
}

static uint32_t rd32(uint64_t addr)
{
	uint32_t v;

	rd(addr, &v, sizeof(v));
	return v;
}

static uint8_t rd8(uint64_t addr)
{
	uint8_t v;

	rd(addr, &v, sizeof(v));
	return v;
}

/* A NUL-terminated C string (tp_name, ml_name). */
static void rd_cstr(uint64_t addr, char *out, size_t cap)
{
	size_t i;

	for (i = 0; i + 1 < cap; i++) {
		out[i] = (char)rd8(addr + i);
		if (out[i] == '\0')
			return;
	}
	out[i] = '\0';
}

/* A compact str whose characters are all below 256 (kind 1), as Latin-1
 * bytes; checks the state bits on the way. */
static void rd_str(const struct ls_py_offsets *o, uint64_t obj, char *out, size_t cap)
{
	uint32_t st = rd32(obj + o->unicode_state);
	uint64_t len = rd64(obj + o->unicode_length);
	unsigned kind = (st >> LS_PY_STATE_KIND_SHIFT) & LS_PY_STATE_KIND_MASK;

	ck_assert_msg(st & LS_PY_STATE_COMPACT, "%s: str 0x%llx not compact (state 0x%x)", who,
		      (unsigned long long)obj, st);
	ck_assert_msg(kind == 1, "%s: str 0x%llx kind %u", who, (unsigned long long)obj, kind);
	ck_assert_msg(len < cap, "%s: str 0x%llx length %llu", who, (unsigned long long)obj,
		      (unsigned long long)len);
	rd(obj + ((st & LS_PY_STATE_ASCII) ? o->ascii_data : o->compact_data), out, len);
	out[len] = '\0';
}

static void type_name(const struct ls_py_offsets *o, uint64_t obj, char *out, size_t cap)
{
	rd_cstr(rd64(rd64(obj + o->ob_type) + o->tp_name), out, cap);
}

static uint64_t type_basicsize(const struct ls_py_offsets *o, uint64_t obj)
{
	return rd64(rd64(obj + o->ob_type) + o->tp_basicsize);
}

#define EXPECT_STR(got, want, what)                                                       \
	ck_assert_msg(strcmp((got), (want)) == 0, "%s: %s: got \"%s\", want \"%s\"", who, \
		      (what), (got), (want))
#define EXPECT_EQ(got, want, what)                                                    \
	ck_assert_msg((uint64_t)(got) == (uint64_t)(want), "%s: %s: got %llu, want %llu", \
		      who, (what), (unsigned long long)(got), (unsigned long long)(want))

/* ---- the checks, one group per kind of object ---- */

static void check_function_and_code(const struct ls_py_offsets *o, const char *path)
{
	uint64_t f = val("func"), code = val("code");
	char s[256];

	type_name(o, f, s, sizeof(s));
	EXPECT_STR(s, "function", "function ob_type->tp_name");
	EXPECT_EQ(rd64(f + o->func_code), code, "func_code");
	rd_str(o, rd64(f + o->func_qualname), s, sizeof(s));
	EXPECT_STR(s, "Foo.bar", "func_qualname");
	rd_str(o, rd64(f + o->func_name), s, sizeof(s));
	EXPECT_STR(s, "bar", "func_name");

	type_name(o, code, s, sizeof(s));
	EXPECT_STR(s, "code", "code ob_type->tp_name");
	EXPECT_EQ(rd32(code + o->co_firstlineno), val("firstlineno"), "co_firstlineno");
	EXPECT_EQ(rd32(code + o->co_firstlineno), 5, "co_firstlineno (line of def bar)");
	rd_str(o, rd64(code + o->co_name), s, sizeof(s));
	EXPECT_STR(s, "bar", "co_name");
	rd_str(o, rd64(code + o->co_filename), s, sizeof(s));
	EXPECT_STR(s, path, "co_filename");
	if (o->co_qualname) {
		rd_str(o, rd64(code + o->co_qualname), s, sizeof(s));
		EXPECT_STR(s, "Foo.bar", "co_qualname");
	}
	type_name(o, rd64(code + o->co_linetable), s, sizeof(s));
	EXPECT_STR(s, "bytes", "co_linetable/co_lnotab type");
	if (o->co_code) {
		type_name(o, rd64(code + o->co_code), s, sizeof(s));
		EXPECT_STR(s, "bytes", "co_code type");
	}
	if (o->co_code_adaptive)
		EXPECT_EQ(type_basicsize(o, code), o->co_code_adaptive,
			  "PyCode_Type.tp_basicsize == co_code_adaptive");
}

static void check_method_partial_builtin(const struct ls_py_offsets *o)
{
	uint64_t m = val("meth"), p = val("part"), b = val("len");
	char s[256];

	type_name(o, m, s, sizeof(s));
	EXPECT_STR(s, "method", "method tp_name");
	EXPECT_EQ(rd64(m + o->im_func), val("func"), "im_func");
	EXPECT_EQ(rd64(m + o->im_self), val("foo"), "im_self");

	type_name(o, p, s, sizeof(s));
	EXPECT_STR(s, "functools.partial", "partial tp_name");
	EXPECT_EQ(rd64(p + o->partial_fn), val("func"), "partial_fn");
	EXPECT_EQ(type_basicsize(o, p), o->partial_size, "partial tp_basicsize == partial_size");

	type_name(o, b, s, sizeof(s));
	EXPECT_STR(s, "builtin_function_or_method", "len tp_name");
	EXPECT_EQ(rd64(b + o->m_self), val("builtins"), "m_self of len");
	rd_cstr(rd64(rd64(b + o->m_ml) + o->ml_name), s, sizeof(s));
	EXPECT_STR(s, "len", "m_ml->ml_name");
}

/* The code of a coroutine: direct (<= 3.11) and through its frame (3.11+). */
static void check_coroutine(const struct ls_py_offsets *o)
{
	uint64_t c = val("coro"), code = val("coro_code");
	char s[256];

	type_name(o, c, s, sizeof(s));
	EXPECT_STR(s, "coroutine", "coroutine tp_name");
	rd_str(o, rd64(c + o->cr_qualname), s, sizeof(s));
	EXPECT_STR(s, "Foo.run", "cr_qualname");
	rd_str(o, rd64(c + o->cr_name), s, sizeof(s));
	EXPECT_STR(s, "run", "cr_name");
	if (o->flags & LS_PYOFF_CODE_IN_FRAME)
		ck_assert_msg(o->cr_code == 0, "%s: cr_code set with CODE_IN_FRAME", who);
	else
		EXPECT_EQ(rd64(c + o->cr_code), code, "cr_code");
	if (o->flags & LS_PYOFF_IFRAME) {
		uint64_t fr = c + o->cr_iframe;

		EXPECT_EQ(rd64(fr + o->frame_code), code, "cr_iframe + frame_code");
		EXPECT_EQ(rd8(fr + o->frame_owner), LS_PY_FRAME_OWNED_BY_GENERATOR,
			  "cr_iframe + frame_owner");
	}
}

static void check_tasks(const struct ls_py_offsets *o)
{
	uint64_t t = val("task"), w = val("wake"), st = val("step");
	char s[256];

	type_name(o, t, s, sizeof(s));
	EXPECT_STR(s, "_asyncio.Task", "Task tp_name");
	EXPECT_EQ(type_basicsize(o, t), o->task_size, "_asyncio.Task tp_basicsize == task_size");
	EXPECT_EQ(rd64(t + o->task_coro), val("task_coro"), "task_coro");
	rd_str(o, rd64(t + o->task_name), s, sizeof(s));
	EXPECT_STR(s, "ls-task", "task_name");

	ck_assert_msg(st != 0, "%s: no TaskStepMethWrapper reached loop.call_soon", who);
	/* 3.12 made _asyncio's types heap types: the name gained its module. */
	type_name(o, st, s, sizeof(s));
	EXPECT_STR(s, o->version_hex >= 0x030c0000 ? "_asyncio.TaskStepMethWrapper"
						    : "TaskStepMethWrapper",
		   "step wrapper tp_name");
	EXPECT_EQ(rd64(st + o->sw_task), t, "sw_task");

	type_name(o, w, s, sizeof(s));
	if (o->flags & LS_PYOFF_WAKEUP_WRAPPER) {
		EXPECT_STR(s, "TaskWakeupMethWrapper", "wakeup tp_name");
		EXPECT_EQ(rd64(w + o->ww_task), val("task2"), "ww_task");
	} else {
		EXPECT_STR(s, "builtin_function_or_method", "wakeup tp_name");
		EXPECT_EQ(rd64(w + o->m_self), val("task2"), "task_wakeup m_self");
		rd_cstr(rd64(rd64(w + o->m_ml) + o->ml_name), s, sizeof(s));
		EXPECT_STR(s, "task_wakeup", "task_wakeup ml_name");
	}
}

static void check_strings(const struct ls_py_offsets *o)
{
	uint64_t a = val("s_ascii"), l = val("s_latin");
	char s[256];

	rd_str(o, a, s, sizeof(s));
	EXPECT_STR(s, "loopscope-7", "compact ASCII str at ascii_data");
	ck_assert_msg(rd32(a + o->unicode_state) & LS_PY_STATE_ASCII, "%s: ascii bit", who);
	rd_str(o, l, s, sizeof(s));
	EXPECT_STR(s, "h\xe9llo-7", "compact Latin-1 str at compact_data");
	ck_assert_msg(!(rd32(l + o->unicode_state) & LS_PY_STATE_ASCII), "%s: ascii bit", who);
}

/* _PyRuntime -> interpreters.head -> threads -> the main thread (blocked in
 * waiter() -> time.sleep) -> its top frame is waiter's, called by <module>. */
static void check_thread_and_frames(const struct ls_py_offsets *o)
{
	uint64_t interp = rd64(val("runtime") + o->runtime_interpreters_head);
	uint64_t ts, frame, code, caller, caller_code, instr;
	char s[256];
	int n = 0;

	ck_assert_msg(interp != 0, "%s: _PyRuntime.interpreters.head is NULL", who);
	EXPECT_EQ(rd64(interp + o->interp_next), 0, "main interpreter's next");
	for (ts = rd64(interp + o->interp_threads_head); ts && n < 64;
	     ts = rd64(ts + o->tstate_next), n++) {
		EXPECT_EQ(rd64(ts + o->tstate_interp), interp, "tstate_interp");
		if (rd64(ts + o->tstate_thread_id) == val("tid"))
			break;
	}
	ck_assert_msg(ts != 0, "%s: no thread state with thread_id %llu", who,
		      (unsigned long long)val("tid"));
	if (o->tstate_native_thread_id)
		EXPECT_EQ(rd64(ts + o->tstate_native_thread_id), val("ntid"),
			  "tstate_native_thread_id");

	if (o->flags & LS_PYOFF_CFRAME)
		frame = rd64(rd64(ts + o->tstate_cframe) + o->cframe_current_frame);
	else
		frame = rd64(ts + o->tstate_frame);
	ck_assert_msg(frame != 0, "%s: no current frame", who);

	if (o->flags & LS_PYOFF_IFRAME) {
		code = rd64(frame + o->frame_code);
		EXPECT_EQ(rd8(frame + o->frame_owner), LS_PY_FRAME_OWNED_BY_THREAD, "frame_owner");
		instr = rd64(frame + o->frame_instr);
		ck_assert_msg(instr >= code + o->co_code_adaptive &&
				      instr < code + o->co_code_adaptive + val("waiter_len"),
			      "%s: frame_instr 0x%llx outside waiter's bytecode", who,
			      (unsigned long long)instr);
		caller = rd64(frame + o->frame_previous);
		ck_assert_msg(caller != 0, "%s: waiter frame has no previous", who);
		caller_code = rd64(caller + o->frame_code);
	} else {
		int lasti = (int)rd32(frame + o->f_lasti);
		int bytes = (o->flags & LS_PYOFF_LASTI_UNITS) ? 2 * lasti : lasti;

		code = rd64(frame + o->f_code);
		type_name(o, frame, s, sizeof(s));
		EXPECT_STR(s, "frame", "frame tp_name");
		ck_assert_msg(bytes >= 0 && (uint64_t)bytes < val("waiter_len"),
			      "%s: f_lasti %d outside waiter's bytecode", who, lasti);
		caller = rd64(frame + o->f_back);
		ck_assert_msg(caller != 0, "%s: waiter frame has no f_back", who);
		caller_code = rd64(caller + o->f_code);
	}
	EXPECT_EQ(code, val("waiter_code"), "top frame's code");
	rd_str(o, rd64(caller_code + o->co_name), s, sizeof(s));
	EXPECT_STR(s, "<module>", "caller frame's co_name");
}

/* ---- fixtures ---- */

static int find_interpreter(const char *pattern, char *out, size_t len)
{
	glob_t g;
	int rc = -ENOENT;

	if (glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0) {
		/* glob sorts; the last is the newest patch in practice. */
		snprintf(out, len, "%s", g.gl_pathv[g.gl_pathc - 1]);
		rc = access(out, X_OK) == 0 ? 0 : -errno;
	}
	globfree(&g);
	return rc;
}

/* The script on interpreter py (label for messages), checked against the
 * row of 3.minor. */
static void check_live(const char *label, const char *py, int minor)
{
	const struct target one = { label, py, minor }, *t = &one;
	const struct ls_py_offsets *o;
	char path[256], out[256], err[256], memp[64];
	char *argv[3];
	pid_t pid, host;
	FILE *f;
	int rc;

	who = label;
	/* 3.8-3.13: the table's row; later ones have none, and are checked
	 * with what resolution gives them (their own _Py_DebugOffsets and the
	 * constants checked against their types), below. */
	o = ls_py_offsets_for(3, t->minor);
	ck_assert_msg(o != NULL || t->minor > LS_PY_TABLE_MAX_MINOR, "%s: no table row for 3.%d",
		      t->label, t->minor);
	if (o)
		EXPECT_EQ(o->version_hex, 0x03000000u | ((unsigned)t->minor << 16), "row version_hex");

	ls_test_tmp(path, sizeof(path), "pyoff-script");
	ls_test_tmp(out, sizeof(out), "pyoff-out");
	ls_test_tmp(err, sizeof(err), "pyoff-err");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(script, f);
	fclose(f);

	argv[0] = (char *)py;
	argv[1] = path;
	argv[2] = NULL;
	pid = ls_test_spawn(argv, out, err);
	ck_assert_msg(pid > 0, "%s: spawn %s: %s", t->label, py, strerror((int)-pid));
	rc = ls_test_wait_line(out, "LS ", 30000, line, sizeof(line));
	if (rc != 0) {
		char *e = ls_test_slurp(err);

		ls_test_kill(pid);
		ck_abort_msg("%s: %s printed no LS line: %s", t->label, py, e ? e : "?");
	}
	EXPECT_EQ(val("major"), 3, "sys.version_info.major");
	EXPECT_EQ(val("minor"), (uint64_t)t->minor, "sys.version_info.minor");

	/* A container's interpreter is the launcher's child. */
	host = ls_test_host_pid(pid);
	if (!o) {
		static struct ls_py_target resolved;
		int err = ls_py_resolve(host, &resolved);

		ck_assert_msg(err == 0, "%s: resolve: %s", t->label, resolved.error);
		o = &resolved.off;
		EXPECT_EQ(o->version_hex >> 16, 0x0300u | (unsigned)t->minor, "resolved version_hex");
	}
	snprintf(memp, sizeof(memp), "/proc/%d/mem", (int)host);
	memfd = open(memp, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(memfd >= 0, "%s: open %s: %s", t->label, memp, strerror(errno));

	check_function_and_code(o, path);
	check_method_partial_builtin(o);
	check_coroutine(o);
	check_tasks(o);
	check_strings(o);
	check_thread_and_frames(o);
	printf("ok pyoffsets: %s (%s, pid %d): all offsets of the 3.%d row verified\n",
	       t->label, py, (int)host, t->minor);

	close(memfd);
	memfd = -1;
	ls_test_kill(pid);
	unlink(path);
	unlink(out);
	unlink(err);
}
START_TEST(test_offsets_follow_live_objects)
{
	const struct target *t = &targets[_i];
	char py[512];

	if (find_interpreter(t->pattern, py, sizeof(py)) != 0) {
		printf("SKIP pyoffsets: %s: no interpreter at %s\n", t->label, t->pattern);
		return;
	}
	check_live(t->label, py, t->minor);
}
END_TEST

/* CPython 3.14 and 3.15 of the Debian sid root, chrooted and as a
 * container (tests/support/pythons.h; LS_TEST_SID=0 leaves them out). */
static struct ls_test_pythons sid;

START_TEST(test_offsets_follow_live_objects_sid)
{
	check_live(sid.name[_i], sid.path[_i], sid.minor[_i]);
}
END_TEST

START_TEST(test_unsupported_versions_have_no_row)
{
	static const struct {
		int major, minor;
		const char *pattern;
	} old[] = {
		{ 2, 7, PYENV "/2.7.*/bin/python2.7" },
		{ 3, 6, PYENV "/3.6.*/bin/python3.6" },
		{ 3, 7, PYENV "/3.7.*/bin/python3.7" },
	};
	char py[512];

	for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		ck_assert_ptr_null(ls_py_offsets_for(old[i].major, old[i].minor));
		if (find_interpreter(old[i].pattern, py, sizeof(py)) == 0)
			printf("SKIP pyoffsets: python %d.%d (%s): unsupported\n", old[i].major,
			       old[i].minor, py);
	}
	ck_assert_ptr_null(ls_py_offsets_for(3, 14));
	ck_assert_ptr_null(ls_py_offsets_for(4, 0));
	for (int m = 8; m <= 13; m++) {
		const struct ls_py_offsets *o = ls_py_offsets_for(3, m);

		ck_assert_ptr_nonnull(o);
		ck_assert_uint_eq(o->version_hex, 0x03000000u | ((unsigned)m << 16));
	}
}
END_TEST

static Suite *pyoffsets_suite(void)
{
	Suite *s = suite_create("pyoffsets");
	TCase *tc = tcase_create("live");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_unsupported_versions_have_no_row);
	tcase_add_loop_test(tc, test_offsets_follow_live_objects, 0, NTARGETS);
	ls_test_find_sid_pythons("pyoffsets", 8, LS_TEST_PY_FULL, &sid);
	tcase_add_loop_test(tc, test_offsets_follow_live_objects_sid, 0, sid.n);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pyoffsets_suite());
	int failed;

	srunner_run_all(sr, CK_VERBOSE);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
