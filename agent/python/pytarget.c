// SPDX-License-Identifier: MIT
/* Resolution of a CPython target from procfs and its ELF file (docs/DESIGN.md,
 * "Resolution of a Python target"): which file holds the interpreter, its
 * load bias and version, and where context_run is, even when stripped. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/pydebug.h"
#include "loopscope/pytarget.h"

/* Layouts (x86-64, release builds), from offsetof() compiled against the
 * headers of every build in /root/.pyenv/versions (3.6-3.13 all agree) and
 * of Debian's 3.14.10 and 3.15.2 (the same; 3.15 grew PyTypeObject at its
 * end, after tp_methods):
 * Include/cpython/object.h (3.8+; Include/object.h before) PyTypeObject:
 * tp_methods at 232; Include/methodobject.h PyMethodDef {ml_name @0,
 * ml_meth @8, ml_flags int @16, ml_doc @24}, 32 bytes. */
#define TP_METHODS_OFF 232
#define METHODDEF_SIZE 32
#define ML_METH_OFF 8
#define MAX_METHODS 64 /* PyContext_Type has 7 on 3.13 */

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

/* "3.12..." -> 3, 12 */
static int parse_version(const char *s, int *major, int *minor)
{
	char *end;
	long a, b;

	if (!isdigit((unsigned char)*s))
		return -1;
	a = strtol(s, &end, 10);
	if (*end != '.' || !isdigit((unsigned char)end[1]))
		return -1;
	b = strtol(end + 1, &end, 10);
	if (a < 2 || a > 3 || b > 99)
		return -1;
	*major = (int)a;
	*minor = (int)b;
	return 0;
}

/* Version from libpython3.12.so.1.0, libpython3.7m.so or python3.11. */
static int version_from_name(const char *path, int *major, int *minor)
{
	const char *b = base_name(path);

	if (!strncmp(b, "libpython", 9))
		return parse_version(b + 9, major, minor);
	if (!strncmp(b, "python", 6))
		return parse_version(b + 6, major, minor);
	return -1;
}

/* PY_VERSION (Include/patchlevel.h), a string literal "3.11.2" in .rodata,
 * possibly tail-merged into another string ("/root/.pyenv/versions/3.12.1"):
 * the first NUL-terminated "3.M.P[suffix]" with M >= 6 not preceded by a
 * digit or a dot (other libraries' "3.2.0" strings are skipped by M).
 * Read in chunks of RODATA_CHUNK, at most LS_ELF_SECTION_MAX bytes of the
 * section (a target's file may claim any size: the memory used is one
 * chunk, the time bounded by the cap; ls_elf_read checks the file's end). */
#define RODATA_CHUNK (64u << 10)
#define RODATA_OVERLAP 64 /* longer than any version string: one split by a chunk's end is seen whole in the next */

static int version_in(const char *buf, size_t n, size_t from, int *major, int *minor)
{
	for (size_t i = from; i + 5 < n; i++) {
		const char *p = buf + i;
		char *end;
		long m;

		if (p[0] != '3' || p[1] != '.' || (i && (isdigit((unsigned char)p[-1]) || p[-1] == '.')))
			continue;
		m = strtol(p + 2, &end, 10);
		if (end == p + 2 || m < 6 || m > 99 || *end != '.' || !isdigit((unsigned char)end[1]))
			continue;
		strtol(end + 1, &end, 10);
		while (isalnum((unsigned char)*end) || *end == '+') /* a1, rc2, + */
			end++;
		if (*end == '\0' && end < buf + n) { /* its NUL in the data */
			*major = 3;
			*minor = (int)m;
			return 0;
		}
	}
	return -1;
}

static int version_from_rodata(struct ls_elf *e, int *major, int *minor)
{
	struct ls_elf_section s;
	uint64_t size, done = 0;
	char *buf;
	int ret = -1;

	if (ls_elf_section(e, ".rodata", &s) || !s.size)
		return -1;
	size = s.size < LS_ELF_SECTION_MAX ? s.size : LS_ELF_SECTION_MAX;
	buf = malloc(RODATA_OVERLAP + RODATA_CHUNK + 1);
	if (!buf)
		return -1;
	/* buf: the last RODATA_OVERLAP bytes of the previous chunk (keep),
	 * then this one: a string cut by a chunk's end is seen whole in the
	 * next (the NUL after the data does not count as its end). Matches
	 * start after the overlap's first byte, whose predecessor is gone
	 * (it was looked at with it, in the previous chunk). */
	size_t keep = 0;

	while (done < size && ret) {
		size_t n = size - done < RODATA_CHUNK ? (size_t)(size - done) : RODATA_CHUNK, len, k;

		if (ls_elf_read(e, s.addr + done, buf + keep, n))
			break;
		len = keep + n;
		buf[len] = '\0';
		ret = version_in(buf, len, keep ? 1 : 0, major, minor);
		done += n;
		k = len < RODATA_OVERLAP ? len : RODATA_OVERLAP;
		memmove(buf, buf + len - k, k);
		keep = k;
	}
	free(buf);
	return ret;
}

static int context_run_symtab(struct ls_elf *e, uint64_t *vaddr)
{
	return ls_elf_symbol(e, "context_run", LS_ELF_SYMTAB, vaddr, NULL) ? -ENOENT : 0;
}

/* Python/context.c: PyContext_Type.tp_methods = PyContext_methods, whose
 * entry "run" (METH_FASTCALL | METH_KEYWORDS) has ml_meth = context_run.
 * Every pointer slot is read relocated (R_X86_64_RELATIVE in PIE/.so). */
static int context_run_tp_methods(struct ls_elf *e, uint64_t *vaddr)
{
	struct ls_elf_section text;
	uint64_t type, methods, name, meth;
	int i;

	if (ls_elf_symbol(e, "PyContext_Type", LS_ELF_ANY, &type, NULL) ||
	    ls_elf_read_ptr(e, type + TP_METHODS_OFF, &methods) || !methods)
		return -ENOENT;
	for (i = 0; i < MAX_METHODS; i++) {
		uint64_t def = methods + (uint64_t)i * METHODDEF_SIZE;
		char s[4];

		if (ls_elf_read_ptr(e, def, &name) || !name)
			break;
		if (ls_elf_read(e, name, s, sizeof(s)) || memcmp(s, "run", 4))
			continue;
		if (ls_elf_read_ptr(e, def + ML_METH_OFF, &meth) || !meth)
			return -ENOENT;
		/* A function: it must lie in .text when the section table is there. */
		if (!ls_elf_section(e, ".text", &text) &&
		    (meth < text.addr || meth >= text.addr + text.size))
			return -ENOENT;
		*vaddr = meth;
		return 0;
	}
	return -ENOENT;
}

static int via(const char *path, uint64_t *vaddr,
	       int (*route)(struct ls_elf *, uint64_t *))
{
	struct ls_elf *e;
	int err = ls_elf_open(path, &e);

	if (err)
		return err;
	err = route(e, vaddr);
	ls_elf_close(e);
	return err;
}

int ls_py_context_run_via_symtab(const char *path, uint64_t *vaddr)
{
	return via(path, vaddr, context_run_symtab);
}

int ls_py_context_run_via_tp_methods(const char *path, uint64_t *vaddr)
{
	return via(path, vaddr, context_run_tp_methods);
}

static void export(struct ls_elf *e, const char *name, struct ls_py_addr *a)
{
	/* offset stays 0 for data in .bss (no file bytes; _PyRuntime <= 3.9). */
	if (!ls_elf_symbol(e, name, LS_ELF_ANY, &a->vaddr, NULL) &&
	    ls_elf_vaddr_to_offset(e, a->vaddr, &a->offset))
		a->offset = 0;
}

static bool is_cpython(struct ls_elf *e)
{
	return !ls_elf_symbol(e, "PyContext_Type", LS_ELF_ANY, NULL, NULL) ||
	       !ls_elf_symbol(e, "_PyRuntime", LS_ELF_ANY, NULL, NULL);
}

/* The file part. who: "pid 42: " or "". bias_start: runtime start of the
 * mapping with file offset 0, or 0 for a file alone. asyncio_path: the
 * target's mapped _asyncio extension (host path), or NULL. */
static int resolve_elf(struct ls_py_target *out, const char *who, uint64_t map_start,
		       const char *asyncio_path)
{
	const char *file = out->path;
	struct ls_elf *e = NULL;
	uint64_t first_vaddr, first_off;
	bool named;
	int err;

	err = ls_elf_open(out->host_path, &e);
	if (err == -ENOEXEC) {
		snprintf(out->error, sizeof(out->error), "%s%.200s is not an x86-64 ELF64 file", who, file);
		return err;
	} else if (err == -EINVAL) {
		snprintf(out->error, sizeof(out->error), "%s%.200s is not a regular file", who, file);
		return err;
	} else if (err) {
		snprintf(out->error, sizeof(out->error), "%scannot open %.200s: %s", who, file, strerror(-err));
		return err;
	}
	named = !version_from_name(file, &out->major, &out->minor);
	err = -ENOEXEC;
	if (!out->shared && !is_cpython(e)) {
		if (out->pid)
			snprintf(out->error, sizeof(out->error), "%snot a Python process (no libpython "
				 "mapped and %.200s is not CPython)", who, file);
		else
			snprintf(out->error, sizeof(out->error), "%.200s is not CPython (no PyContext_Type "
				 "or _PyRuntime)", file);
		goto cleanup;
	}
	err = -ENOTSUP;
	if (!named && version_from_rodata(e, &out->major, &out->minor)) {
		snprintf(out->error, sizeof(out->error), "%scannot tell the Python version of %.200s", who,
			 file);
		goto cleanup;
	}
	if (out->major != 3 || out->minor < LS_PY_MIN_MINOR) {
		snprintf(out->error, sizeof(out->error), "%sunsupported Python %d.%d in %.200s (loopscope "
			 "supports 3.%d and later)", who, out->major, out->minor, file, LS_PY_MIN_MINOR);
		goto cleanup;
	}
	export(e, "_PyRuntime", &out->runtime);
	/* Layouts: the table (3.8-3.12), the interpreter's debug offsets (3.13+). */
	err = ls_py_layout_resolve(e, out, who, asyncio_path);
	if (err)
		goto cleanup;
	out->has_symtab = ls_elf_has_symtab(e);
	if (out->has_symtab && !context_run_symtab(e, &out->context_run.vaddr))
		out->route = LS_PY_ROUTE_SYMTAB;
	else if (!context_run_tp_methods(e, &out->context_run.vaddr))
		out->route = LS_PY_ROUTE_TP_METHODS;
	err = -ENOENT;
	if (!out->route || ls_elf_vaddr_to_offset(e, out->context_run.vaddr,
						  &out->context_run.offset)) {
		snprintf(out->error, sizeof(out->error), "%scannot find context_run in %.200s (%s)", who,
			 file, out->has_symtab ? "not in .symtab, PyContext_Type.tp_methods route "
			 "failed" : "stripped, PyContext_Type.tp_methods route failed");
		goto cleanup;
	}
	export(e, "PyContext_Enter", &out->context_enter);
	export(e, "PyContext_Exit", &out->context_exit);
	export(e, "PyContext_Type", &out->context_type);
	/* Load bias (gABI "Program Loading"; glibc elf/dl-load.c): the loader
	 * maps the first PT_LOAD from file offset ALIGN_DOWN(p_offset, page)
	 * (0 with every usual linker: the ELF header is in that segment) at
	 * ALIGN_DOWN(p_vaddr, page) + bias. So bias = start of the offset-0
	 * mapping - ALIGN_DOWN(first p_vaddr, page): 0 for ET_EXEC, the load
	 * address for .so/PIE (whose first p_vaddr is 0). */
	err = ls_elf_first_load(e, &first_vaddr, &first_off);
	if (err) {
		snprintf(out->error, sizeof(out->error), "%s%.200s has no PT_LOAD segment", who, file);
		goto cleanup;
	}
	out->bias = map_start ? map_start - first_vaddr : 0;
cleanup:
	ls_elf_close(e);
	return err;
}

int ls_py_resolve_file(const char *path, struct ls_py_target *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->path, sizeof(out->path), "%s", path);
	snprintf(out->host_path, sizeof(out->host_path), "%s", path);
	out->shared = !strncmp(base_name(path), "libpython", 9);
	return resolve_elf(out, "", 0, NULL);
}

static void strip_deleted(char *p)
{
	size_t n = strlen(p), k = strlen(" (deleted)");

	if (n > k && !strcmp(p + n - k, " (deleted)"))
		p[n - k] = '\0';
}

/* _asyncio.cpython-314-x86_64-linux-gnu.so (3.14+ may build it shared). */
static bool is_asyncio_ext(const char *p)
{
	const char *b = base_name(p);

	return !strncmp(b, "_asyncio.", 9) && strstr(b, ".so");
}

/* A path of the target's file openable here: through the target's root
 * (its mount namespace), or, when that fails (a chrooted target, whose
 * maps show host paths), through the mapping itself (proc(5):
 * /proc/PID/map_files/START-END, or /proc/PID/exe). */
/* A path this process can open for the file the target maps at
 * [start, end) under path (as /proc/PID/maps names it). Paths in maps are
 * as this process sees them, which for a chrooted target is not what
 * /proc/PID/root holds. The mapping's own link names the mapped file
 * itself, in any root or mount namespace, even deleted or replaced; it
 * needs CAP_SYS_ADMIN. Without it: the executable's link (exe), else the
 * path through the target's root. */
static void host_path_of(pid_t pid, const char *path, unsigned long start, unsigned long end,
			 bool exe, char *out, size_t cap)
{
	snprintf(out, cap, "/proc/%d/map_files/%lx-%lx", (int)pid, start, end);
	if (!access(out, R_OK))
		return;
	if (exe)
		snprintf(out, cap, "/proc/%d/exe", (int)pid);
	else
		snprintf(out, cap, "/proc/%d/root%s", (int)pid, path);
}

/* Whether device major:minor of process pid's mount namespace is a FUSE
 * file system (/proc/PID/mountinfo, proc(5): field 3 "major:minor", the
 * type after " - "; "fuse", "fuse.sshfs", "fuseblk"), with its type in
 * type. Its server is a process that may never answer a read, and a read
 * it holds waits uninterruptibly (fs/fuse/dev.c, request_wait_answer):
 * such a file is not read at all (issue #12 item 3). Only procfs is read
 * here, never the file system itself. */
static bool on_fuse(pid_t pid, unsigned major, unsigned minor, char *type, size_t len)
{
	char path[64], line[4096];
	bool fuse = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!fuse && fgets(line, sizeof(line), f)) {
		unsigned ma, mi;
		char *dash;

		if (sscanf(line, "%*s %*s %u:%u", &ma, &mi) != 2 || ma != major || mi != minor ||
		    !(dash = strstr(line, " - ")))
			continue;
		dash += 3;
		dash[strcspn(dash, " \n")] = '\0';
		if (!strncmp(dash, "fuse", 4)) {
			fuse = true;
			snprintf(type, len, "%s", dash);
		}
	}
	fclose(f);
	return fuse;
}

int ls_py_resolve(pid_t pid, struct ls_py_target *out)
{
	unsigned lib_dev[2] = { 0 }, exe_dev[2] = { 0 }, aio_dev[2] = { 0 };
	char fstype[64];
	char who[32], maps[64], exe[PATH_MAX] = "", line[PATH_MAX + 128];
	char aio[PATH_MAX] = "", aio_host[PATH_MAX + 64] = "";
	uint64_t lib_start = 0, lib_end = 0, exe_start = 0, exe_end = 0, aio_start = 0, aio_end = 0;
	FILE *f;
	ssize_t n;

	memset(out, 0, sizeof(*out));
	out->pid = pid;
	snprintf(who, sizeof(who), "pid %d: ", (int)pid);
	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
	f = pid > 0 ? fopen(maps, "re") : NULL;
	if (!f) {
		int err = pid > 0 && (errno == EACCES || errno == EPERM) ? -EACCES : -ESRCH;

		snprintf(out->error, sizeof(out->error), "%s%s", who,
			 err == -ESRCH ? "no such process" : "permission denied reading its maps");
		return err;
	}
	snprintf(line, sizeof(line), "/proc/%d/exe", (int)pid);
	n = readlink(line, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	strip_deleted(exe);
	/* "start-end perms offset dev inode   path" (proc(5)) */
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end, off;
		unsigned dmaj, dmin;
		int pos = 0;
		char *p;

		if (sscanf(line, "%lx-%lx %*s %lx %x:%x %*s %n", &start, &end, &off, &dmaj, &dmin,
			   &pos) < 5 || !pos)
			continue;
		p = line + pos;
		p[strcspn(p, "\n")] = '\0';
		strip_deleted(p);
		if (*p != '/' || off)
			continue;
		if (!lib_start && !strncmp(base_name(p), "libpython", 9)) {
			lib_start = start;
			lib_end = end;
			lib_dev[0] = dmaj;
			lib_dev[1] = dmin;
			snprintf(out->path, sizeof(out->path), "%s", p);
		} else if (!exe_start && *exe && !strcmp(p, exe)) {
			exe_start = start;
			exe_end = end;
			exe_dev[0] = dmaj;
			exe_dev[1] = dmin;
		} else if (!aio_start && is_asyncio_ext(p)) {
			aio_start = start;
			aio_end = end;
			aio_dev[0] = dmaj;
			aio_dev[1] = dmin;
			snprintf(aio, sizeof(aio), "%s", p);
		}
	}
	fclose(f);
	if (!lib_start && !exe_start) {
		/* A kernel thread, or a process that exited between the reads. */
		snprintf(out->error, sizeof(out->error), "%snot a Python process (no libpython or "
			 "executable mapping)", who);
		return access(maps, F_OK) ? -ESRCH : -ENOEXEC;
	}
	out->shared = lib_start != 0;
	if (!out->shared)
		snprintf(out->path, sizeof(out->path), "%s", exe);
	{
		const unsigned *dev = out->shared ? lib_dev : exe_dev;

		if (on_fuse(pid, dev[0], dev[1], fstype, sizeof(fstype))) {
			snprintf(out->error, sizeof(out->error), "%s%.160s is on a FUSE file system (%.40s): "
				 "not read (its server could stall loopscope)", who, out->path, fstype);
			return -EREMOTE;
		}
		if (aio_start && on_fuse(pid, aio_dev[0], aio_dev[1], fstype, sizeof(fstype)))
			aio_start = 0; /* the Task offsets are an extra: without them */
	}
	/* Paths in maps are as the target sees them: open them through its
	 * root so targets in other mount namespaces (containers) work too. */
	host_path_of(pid, out->path, out->shared ? lib_start : exe_start,
		     out->shared ? lib_end : exe_end, !out->shared, out->host_path,
		     sizeof(out->host_path));
	if (aio_start)
		host_path_of(pid, aio, aio_start, aio_end, false, aio_host, sizeof(aio_host));
	return resolve_elf(out, who, out->shared ? lib_start : exe_start, aio_start ? aio_host : NULL);
}
