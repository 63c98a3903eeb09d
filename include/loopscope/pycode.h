/* SPDX-License-Identifier: MIT */
/*
 * Python frames from outside (agent/python/pycode.c): turn (pid, code object
 * address, instruction byte offset), as a stack walker records them, into a
 * qualified name, a file name and the line being executed, by reading the
 * target's memory through /proc/PID/mem.
 *
 * Line numbers are decoded the way CPython itself decodes its line table, in
 * all three formats (the row's flags say which one applies):
 *  - 3.8, 3.9 co_lnotab (LS_PYOFF_LNOTAB): (address increment, signed line
 *    increment) byte pairs from co_firstlineno; Objects/lnotab_notes.txt and
 *    PyCode_Addr2Line() in Objects/codeobject.c of those versions;
 *  - 3.10 co_linetable (LS_PYOFF_LINETABLE_310): (byte delta, line delta)
 *    pairs, each one a range, line delta -128 = a range without a line;
 *    Objects/lnotab_notes.txt and _PyCode_CheckLineNumber() of 3.10;
 *  - 3.11+ location table (LS_PYOFF_LOCATIONS, PEP 657): entries of 1-8
 *    code units whose first byte carries a kind (0-9 short form, 10-12 one
 *    line form, 13 no columns, 14 long form, 15 no location) and whose line
 *    delta is implied or a signed varint; Objects/locations.md and
 *    _PyCode_CheckLineNumber() of 3.11-3.13.
 *
 * Everything read from a code object except its line (names, co_firstlineno,
 * the raw line table) is cached per (pid, code address): a later offset of
 * the same code costs one read of the code object's header (a few hundred
 * bytes, to notice that the address now holds another object) and a decode
 * from memory.
 */
#ifndef LOOPSCOPE_PYCODE_H
#define LOOPSCOPE_PYCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A CPython's offsets row (loopscope/abi/py_offsets.h, ls_py_offsets_for). */
struct ls_py_offsets;

/* Line tables longer than this are cached (and decoded) up to this many
 * bytes only: offsets they do not reach have line -1. 64 KiB covers a
 * function of about 30000 instructions on 3.11+ (two bytes or more an
 * instruction) and 32000 line changes on 3.8-3.10. */
#define LS_PYCODE_MAX_TABLE (64 * 1024)

/* Everything cached is dropped at once when the cache would pass either
 * bound (a crude but bounded policy: it refills on use). */
#define LS_PYCODE_MAX_ENTRIES 16384
#define LS_PYCODE_MAX_BYTES (64u << 20) /* line tables and checkpoints */

struct ls_pyframe {
	char qualname[256]; /* co_qualname (3.11+), co_name before: "Handler.on_data" /
			     * "on_data", "<lambda>", "<module>"; UTF-8, "?" if unreadable */
	char filename[256]; /* co_filename as the interpreter has it, UTF-8 */
	int firstlineno;    /* co_firstlineno: the line of the def (or of the first
			     * decorator), 1 for a module */
	int line;           /* the line of the instruction at byte_offset; -1 when
			     * unknown: offset outside the bytecode, an instruction
			     * CPython itself gives no line (3.10+: co_lines() says
			     * None), or beyond LS_PYCODE_MAX_TABLE of the table */
};

struct ls_pycode_cache;

/* An empty cache; NULL on ENOMEM. It keeps one open /proc/PID/mem per pid
 * it has read (closed by ls_pycode_forget_pid or ls_pycode_cache_free). Not
 * thread-safe: one cache per thread, or a lock around it. */
struct ls_pycode_cache *ls_pycode_cache_new(void);
/* The same with other bounds than LS_PYCODE_MAX_ENTRIES and
 * LS_PYCODE_MAX_BYTES (a long-running agent's smaller ones). */
struct ls_pycode_cache *ls_pycode_cache_new_max(size_t max_entries, size_t max_bytes);
void ls_pycode_cache_free(struct ls_pycode_cache *c);

/* Names and line of the frame executing the instruction at byte_offset of
 * the code object at code_addr in process pid (a tgid), read with off, the
 * offsets row of that process's CPython (ls_py_offsets_for(3, minor)).
 *
 * byte_offset counts bytes from the start of the code's bytecode, CACHE
 * entries included (the caller converts: 3.8/3.9 f_lasti; 3.10 f_lasti * 2,
 * f_lasti counting code units; 3.11+ the frame's instruction pointer
 * (prev_instr 3.11/3.12, instr_ptr 3.13) minus (code_addr +
 * off->co_code_adaptive)). Any value is accepted: negative or past the end
 * gives line -1 with the names filled.
 *
 * The object is first checked to be a code object (ob_type->tp_name is
 * "code", the type of CPython's Objects/codeobject.c PyCode_Type; checked once
 * per pid and type address). Fields come from PyCodeObject in Include/code.h
 * (3.8) / Include/cpython/code.h (3.9-3.13), strings are compact str objects
 * (Include/cpython/unicodeobject.h), the line table and the 3.8-3.10 co_code
 * are bytes objects (ob_size at 16, ob_sval at 32: PyBytesObject,
 * Include/bytesobject.h 3.8, Include/cpython/bytesobject.h 3.9-3.13), and
 * the 3.11+ bytecode length is the code object's own ob_size in code units
 * (_PyCode_NBYTES, Include/cpython/code.h 3.11/3.12,
 * Include/internal/pycore_code.h 3.13).
 *
 * Returns 0 and fills *out; on error *out is untouched and:
 *  -ESRCH  no such process (exited, reaped, or a zombie without memory);
 *  -EFAULT code_addr, or a string or table it points to, cannot be read
 *          (not mapped; or freed and unmapped while being read);
 *  -EINVAL the object at code_addr is not a code object (its type has
 *          another name, or its ob_type cannot be followed), or off is NULL
 *          or says no line table format;
 *  -EACCES / -EPERM  not allowed to read the process's memory (ptrace
 *          access mode, e.g. not root and another user's process);
 *  -ENOMEM out of memory; other -errno from opening /proc/PID/mem (-EMFILE).
 * The target keeps running while it is read: a code object freed meanwhile
 * can give -EFAULT, -EINVAL or names of whatever replaced it, never a crash.
 *
 * Cache validity: a cached entry is used only when the identity fields
 * re-read from the code object's header (ob_type, co_firstlineno and the
 * pointers to co_filename, co_name, co_qualname, the line table and co_code,
 * or the 3.11+ bytecode length) are those it was filled with; otherwise it
 * is refilled. Code objects are immutable, so a code object freed and
 * another allocated at its address is noticed unless the new one shares
 * every one of those objects and numbers, in which case it has the same
 * names and line table, hence the same answers. A pid that died and was
 * reused is noticed by its /proc/PID/mem (reads of the old process's return
 * nothing): the pid's entries are dropped and the file reopened. */
int ls_pycode_frame(struct ls_pycode_cache *c, pid_t pid, const struct ls_py_offsets *off,
		    uint64_t code_addr, int64_t byte_offset, struct ls_pyframe *out);

/* Drop pid's cached code objects and close its /proc/PID/mem (when the
 * process exits, or to force re-reading). Unknown pids are ignored. */
void ls_pycode_forget_pid(struct ls_pycode_cache *c, pid_t pid);

struct ls_pycode_stats {
	uint64_t hits;       /* calls answered from a valid cached entry */
	uint64_t fills;      /* code objects read in full (first use, or refills) */
	uint64_t refills;    /* of fills: entries whose address held another code
			      * object (identity fields changed) */
	uint64_t truncated;  /* of fills: line tables longer than LS_PYCODE_MAX_TABLE */
	size_t entries;      /* code objects cached now */
	size_t bytes;        /* bytes of line tables and checkpoints cached now */
	size_t pids;         /* processes with an open /proc/PID/mem */
};

/* Counters since ls_pycode_cache_new, and the cache's size now. */
void ls_pycode_stats(const struct ls_pycode_cache *c, struct ls_pycode_stats *out);

/* ---- For tests (tests/test_pycode.c, tests/fuzz/fuzz_pycode.c) ------------ */

/* The line table decoder of ls_pycode_frame alone, on a table in memory:
 * *line is the line of the instruction at byte_offset of a code object
 * whose bytecode is code_len bytes and whose co_firstlineno is firstlineno,
 * decoded from the len bytes at table in the format flags names
 * (LS_PYOFF_LNOTAB, LS_PYOFF_LINETABLE_310 or LS_PYOFF_LOCATIONS; the
 * others are ignored), cut at LS_PYCODE_MAX_TABLE as the cache cuts it.
 * checkpoints: look up through the checkpoints the cache keeps (true) or
 * decode from the start (false); both give the same line. *line is -1 when
 * unknown, as ls_pyframe.line (also when a line would pass INT_MAX or
 * INT_MIN: a forged table). 0; -EINVAL (no format in flags, code_len < 0,
 * NULL table with len > 0 or NULL line); -ENOMEM. */
int ls_pycode_table_line(uint32_t flags, const uint8_t *table, uint32_t len, int firstlineno,
			 int64_t code_len, int64_t byte_offset, bool checkpoints, int *line);

#endif /* LOOPSCOPE_PYCODE_H */
