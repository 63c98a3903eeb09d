// SPDX-License-Identifier: MIT
/*
 * fuzz_elf: the ELF reader and CPython resolution on a file an attacker
 * controls (a target's libpython or executable): the input is the whole
 * file. It is resolved twice, as "libpython3.11.so" (version from the name)
 * and as "python" (an executable: CPython symbols needed, version from
 * .rodata), then read through every ls_elf_* entry point at the addresses
 * its own symbols and sections give, and searched for `.AsyncioDebug` as
 * for a CPython 3.14 target (ls_pytask_find: the section read from the
 * file and validated).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "loopscope/pytarget.h"
#include "loopscope/pytask.h"

static char dir[64], lib[96], exe[96];

static void read_around(struct ls_elf *e, uint64_t vaddr)
{
	unsigned char buf[64];
	uint64_t v, off;

	ls_elf_vaddr_to_offset(e, vaddr, &off);
	ls_elf_read(e, vaddr, buf, sizeof(buf));
	ls_elf_read(e, vaddr, buf, 1);
	ls_elf_reloc(e, vaddr, &v);
	if (ls_elf_read_ptr(e, vaddr, &v) == 0)
		ls_elf_read(e, v, buf, 8);
}

static void walk(const char *path)
{
	static const char *syms[] = { "PyContext_Type", "_PyRuntime", "context_run",
				      "PyContext_Enter", "PyContext_Exit", "" };
	static const char *secs[] = { ".text", ".rodata", ".AsyncioDebug", ".rela.dyn", ".data", "" };
	struct ls_elf_section s;
	struct ls_elf *e;
	uint64_t v, sz, off;

	if (ls_elf_open(path, &e))
		return;
	ls_elf_type(e);
	ls_elf_has_symtab(e);
	ls_elf_first_load(e, &v, &off);
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		for (int t = LS_ELF_ANY; t <= LS_ELF_DYNSYM; t++)
			if (!ls_elf_symbol(e, syms[i], t, &v, &sz))
				read_around(e, v);
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
		if (ls_elf_section(e, secs[i], &s))
			continue;
		read_around(e, s.addr);
		read_around(e, s.addr + s.size - 8);
	}
	ls_elf_close(e);
}

/* As for a 3.14 target whose interpreter is this file (the process is this
 * fuzzer, which maps no _asyncio module: the file's section or -ENOENT). */
static void asyncio_debug(const char *path)
{
	static struct ls_py_target t;
	struct ls_pytask_offsets o;
	char why[256];
	int err;

	memset(&t, 0, sizeof(t));
	t.pid = getpid();
	t.major = 3;
	t.minor = 14;
	snprintf(t.host_path, sizeof(t.host_path), "%s", path);
	err = ls_pytask_find(&t, &o, why, sizeof(why));
	FUZZ_CHECK(err == 0 || err == -ENOENT || err == -EINVAL || err == -ENOEXEC);
	if (err)
		FUZZ_CHECK(memchr(why, 0, sizeof(why)) && why[0] && !strchr(why, '\n'));
	else
		FUZZ_CHECK(o.task_size >= 64 && o.task_size <= 4096 && o.tstate_size <= 65536);
}

static void resolve(const char *path)
{
	struct ls_py_target t;
	uint64_t v;
	int err = ls_py_resolve_file(path, &t);

	/* A failure names itself in one line; a success has its addresses. */
	if (err)
		FUZZ_CHECK(t.error[0] && !strchr(t.error, '\n') && strlen(t.error) < sizeof(t.error));
	else
		FUZZ_CHECK(t.route != LS_PY_ROUTE_NONE && t.minor >= LS_PY_MIN_MINOR &&
			   t.minor <= LS_PY_MAX_MINOR);
	ls_py_context_run_via_symtab(path, &v);
	ls_py_context_run_via_tp_methods(path, &v);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_tmpdir(dir, sizeof(dir));
	snprintf(lib, sizeof(lib), "%s/libpython3.11.so", dir);
	snprintf(exe, sizeof(exe), "%s/python", dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_write_file(lib, data, size);
	resolve(lib);
	walk(lib);
	asyncio_debug(lib);
	FUZZ_CHECK(rename(lib, exe) == 0);
	resolve(exe);
	unlink(exe);
	return 0;
}
