// SPDX-License-Identifier: MIT
/*
 * A tiny ELF that resolves like a CPython (tests/fuzz/make_seeds.sh builds
 * it into the seeds of fuzz_elf): PyContext_Type whose tp_methods (at 232,
 * agent/python/pytarget.c) holds a PyMethodDef "run" pointing at a
 * function in .text, PyContext_Enter/Exit, _PyRuntime, a PY_VERSION string
 * in .rodata and a `.AsyncioDebug` section (the 13 fields of CPython
 * 3.14's _asyncio). Built -shared -fPIC -nostdlib: the pointers are
 * R_X86_64_RELATIVE relocations in .rela.dyn, as in a real libpython.
 */
struct methoddef {
	const char *name;
	void *meth;
	int flags;
	const char *doc;
};

static long context_run(long a)
{
	return a + 1;
}

static struct methoddef methods[] = {
	{ "copy", (void *)0, 4, 0 },
	{ "run", (void *)context_run, 0x82, 0 },
	{ 0, 0, 0, 0 },
};

struct type {
	char head[232];
	struct methoddef *tp_methods;
	char tail[160];
};

struct type PyContext_Type = { .tp_methods = methods };
char _PyRuntime[64] = { 1 };
const char py_version[] = "3.11.4";

long PyContext_Enter(long a)
{
	return context_run(a);
}

long PyContext_Exit(long a)
{
	return a;
}

__attribute__((section(".AsyncioDebug"), used))
static const unsigned long long asyncio_debug[13] = { 168, 136, 96, 108, 109, 128, 152,
						       225864, 10880, 936, 864, 872, 880 };
