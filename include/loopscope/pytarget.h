/* SPDX-License-Identifier: MIT */
/*
 * Resolution of a Python target without debug symbols (docs/DESIGN.md, "Resolution
 * of a Python target"): the ELF reader (agent/python/elf.c, ls_elf_*) and the CPython
 * resolver built on it (agent/python/pytarget.c, ls_py_*). x86-64 ELF64 only.
 *
 * Addresses: "vaddr" is a link-time virtual address (as in the ELF file, load
 * bias 0); a runtime address is bias + vaddr. "offset" is a byte offset in
 * the file. All functions return 0 or a negative errno.
 */
#ifndef LOOPSCOPE_PYTARGET_H
#define LOOPSCOPE_PYTARGET_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loopscope/abi/py_offsets.h"

/* ---- ELF reader (agent/python/elf.c) ------------------------------------------- */

struct ls_elf;

enum ls_elf_table { LS_ELF_ANY, LS_ELF_SYMTAB, LS_ELF_DYNSYM };

struct ls_elf_section {
	uint64_t addr;   /* sh_addr (0 when not allocated) */
	uint64_t offset; /* sh_offset */
	uint64_t size;   /* sh_size */
	uint32_t type;   /* sh_type (SHT_*) */
	uint64_t flags;  /* sh_flags (SHF_*) */
};

/* Bounds on what is read from a target's ELF file (issue #12 item 1: a
 * sparse 264 MB "libpython" made attach read 256 MB of holes):
 * LS_ELF_SECTION_MAX is the largest section read or walked whole (symbol
 * tables, their strings, .rela.dyn, the .rodata scan for PY_VERSION; the
 * largest in CPython 3.8-3.15 is .rodata, ~2 MiB, or .rela.dyn, ~1 MiB):
 * a larger one, or one that lies past the end of the file, is taken as
 * absent. LS_ELF_READ_MAX is the largest single ls_elf_read. */
#define LS_ELF_SECTION_MAX (16u << 20)
#define LS_ELF_READ_MAX (4u << 20)

/* Open the ELF file at path, without blocking (O_NONBLOCK). -errno from
 * open(2) (-ENOENT, -EACCES...), -EINVAL when it is not a regular file (a
 * FIFO, a device, a directory), -ENOEXEC when it is not an x86-64 ELF64
 * file. Free with ls_elf_close. */
int ls_elf_open(const char *path, struct ls_elf **out);
void ls_elf_close(struct ls_elf *e);

/* e_type (ET_EXEC for a non-PIE executable, ET_DYN for PIE and .so). */
int ls_elf_type(const struct ls_elf *e);
bool ls_elf_has_symtab(const struct ls_elf *e);

/* Defined symbol `name` (undefined entries are skipped): in .symtab then
 * .dynsym (LS_ELF_ANY) or only one of them. *vaddr = st_value, *size =
 * st_size (either may be NULL). -ENOENT when absent. */
int ls_elf_symbol(struct ls_elf *e, const char *name, enum ls_elf_table table,
		  uint64_t *vaddr, uint64_t *size);

/* Section header of the first section called name; -ENOENT when absent.
 * Only its header: a caller reading it checks out->size itself. */
int ls_elf_section(struct ls_elf *e, const char *name, struct ls_elf_section *out);

/* File offset of vaddr, from the PT_LOAD segment whose file-backed part
 * [p_vaddr, p_vaddr + p_filesz) contains it: vaddr - p_vaddr + p_offset
 * (ELF spec, program header). -EFAULT when no segment holds it (or it lies
 * in .bss). This is the offset uprobes want: libbpf 1.1's
 * bpf_program__attach_uprobe(prog, retprobe, pid, binary_path, func_offset)
 * takes func_offset as an offset within the file (it goes to the kernel as
 * the uprobe's file offset), not a virtual address. */
int ls_elf_vaddr_to_offset(struct ls_elf *e, uint64_t vaddr, uint64_t *offset);

/* Copy len bytes at vaddr from the file (one PT_LOAD segment's file-backed
 * part). -EFAULT when not backed by the file (or past its end), -E2BIG
 * when len > LS_ELF_READ_MAX, -EIO on a short read. */
int ls_elf_read(struct ls_elf *e, uint64_t vaddr, void *buf, size_t len);

/* The dynamic relocation of the 8-byte slot at vaddr, in .rela.dyn, as the
 * loader would apply it with load bias 0 (x86-64 psABI 4.4):
 * R_X86_64_RELATIVE -> r_addend; R_X86_64_64 and R_X86_64_GLOB_DAT -> st_value
 * of the .dynsym symbol + r_addend. -ENOENT when no entry covers vaddr,
 * -ENXIO when the symbol is undefined here (bound to another object at run
 * time), -ENOTSUP for any other relocation type. */
int ls_elf_reloc(struct ls_elf *e, uint64_t vaddr, uint64_t *value);

/* The pointer stored at vaddr as seen after relocation with bias 0: the
 * relocated value when .rela.dyn covers the slot, else the 8 file bytes
 * (ET_EXEC: absolute already; PIE slot without relocation: NULL; DT_RELR
 * slots also hold their link-time value in the file). */
int ls_elf_read_ptr(struct ls_elf *e, uint64_t vaddr, uint64_t *value);

/* The first PT_LOAD's p_vaddr and p_offset, both rounded down to the page
 * size (4096), i.e. where the loader starts the first mapping. -ENOENT when
 * there is no PT_LOAD. */
int ls_elf_first_load(struct ls_elf *e, uint64_t *vaddr, uint64_t *offset);

/* ---- CPython targets (agent/python/pytarget.c) --------------------------------- */

#define LS_PY_MIN_MINOR 8  /* 3.8: oldest supported (3.7 and below: -ENOTSUP) */
#define LS_PY_MAX_MINOR 15 /* 3.15: newest tested; newer ones are tried (3.13+
			    * layouts come from the interpreter's debug offsets) */
#define LS_PY_TABLE_MAX_MINOR 13 /* newest with a row in the offsets table */

/* Which way context_run was found. */
enum ls_py_route {
	LS_PY_ROUTE_NONE = 0,
	LS_PY_ROUTE_SYMTAB,     /* the local symbol `context_run` in .symtab */
	LS_PY_ROUTE_TP_METHODS, /* PyContext_Type.tp_methods["run"].ml_meth */
};

struct ls_py_addr {
	uint64_t vaddr;  /* link-time address; 0 when absent */
	uint64_t offset; /* file offset (for uprobes); 0 when absent */
};

struct ls_py_target {
	pid_t pid;                  /* 0 for ls_py_resolve_file */
	char path[PATH_MAX];        /* as in /proc/PID/maps (target's mount ns) */
	char host_path[PATH_MAX + 32]; /* openable here: /proc/PID/map_files/S-E */
	bool shared;                /* libpython3.X.so (true) or the executable */
	uint64_t bias;              /* runtime address = bias + vaddr */
	int major, minor;           /* 3, 11 */
	bool has_symtab;
	enum ls_py_route route;     /* how context_run was found */
	struct ls_py_addr context_run;  /* static PyObject *context_run(...) */
	struct ls_py_addr context_enter; /* exported PyContext_Enter */
	struct ls_py_addr context_exit;  /* exported PyContext_Exit */
	struct ls_py_addr runtime;       /* exported _PyRuntime (data) */
	struct ls_py_addr context_type;  /* exported PyContext_Type (data) */
	/* Object layouts of this interpreter, for the BPF programs and the
	 * readers of its memory: the table row (3.8-3.12), or its own
	 * _Py_DebugOffsets (3.13+, agent/pylayout.c; off.flags has
	 * LS_PYOFF_FROM_TARGET). */
	struct ls_py_offsets off;
	char note[256];             /* one line worth saying on success, else "":
				     * an untested newer minor version, a 3.13
				     * table/interpreter mismatch */
	char error[320];            /* one line for a person when resolution fails */
};

/* Resolve the CPython interpreter running in process pid: the mapping of
 * libpython3.X[m].so[.1.0], else the executable when it is a CPython with
 * the interpreter linked in (it defines PyContext_Type or _PyRuntime).
 * Fills *out (bias from the mapping, see pytarget.c). Errors, with one line
 * in out->error: -ESRCH no such process; -EACCES /proc/PID or the file is
 * not readable; -ENOEXEC not a Python process; -ENOTSUP Python version
 * below 3.8 (3.7 and below, 2.x), or 3.13+ whose _Py_DebugOffsets are
 * missing, rejected ("_Py_DebugOffsets in FILE rejected: REASON") or
 * describe a free-threaded build ("free-threaded CPython not supported
 * yet"); -ENOENT context_run not found in the file (stripped and the
 * tp_methods route failed); -EINVAL the mapped path is not a regular file;
 * -EREMOTE the file is on a FUSE file system (its server, any process, may
 * never answer a read, and the reader would wait uninterruptibly: not read;
 * /proc/PID/mountinfo tells, without touching the file system); other
 * -errno from opening the file. The file is opened through the
 * mapping (host_path: /proc/PID/map_files/START-END), so chrooted targets,
 * other mount namespaces and deleted files work. On success out->off holds
 * the layouts and out->note may hold one line to show. */
int ls_py_resolve(pid_t pid, struct ls_py_target *out);

/* The file part of ls_py_resolve for the ELF at path (bias 0, pid 0): same
 * errors except -ESRCH; -ENOEXEC when path is not an ELF or not CPython. */
int ls_py_resolve_file(const char *path, struct ls_py_target *out);

/* context_run's link-time address in the ELF at path by one route only.
 * -ENOENT when that route fails, or -errno from ls_elf_open. */
int ls_py_context_run_via_symtab(const char *path, uint64_t *vaddr);
int ls_py_context_run_via_tp_methods(const char *path, uint64_t *vaddr);

#endif
