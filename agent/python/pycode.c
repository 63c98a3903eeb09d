// SPDX-License-Identifier: MIT
/*
 * Python frames from outside: names and lines of code objects read from
 * /proc/PID/mem, cached per (pid, code address). The three line table
 * formats are decoded as one sequence of address ranges, each with a line
 * (or none), which is how CPython 3.10+ walks its own tables
 * (PyCodeAddressRange in Objects/codeobject.c) and is equivalent to the
 * 3.8/3.9 loop of PyCode_Addr2Line (Objects/lnotab_notes.txt).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/abi/py_offsets.h"
#include "loopscope/procfs.h"
#include "loopscope/pycode.h"
#include "loopscope/pyname.h"

/* PyVarObject.ob_size (Include/object.h, 3.8-3.13): a bytes object's length
 * in bytes; a 3.11+ code object's bytecode length in code units. */
#define VAR_SIZE 16
/* PyBytesObject.ob_sval: after PyObject_VAR_HEAD (24 bytes) and ob_shash (8);
 * Include/bytesobject.h 3.8, Include/cpython/bytesobject.h 3.9-3.13. */
#define BYTES_DATA 32
/* sizeof(_Py_CODEUNIT), 3.11+ (Include/cpython/code.h). */
#define CODE_UNIT 2

#define NBUCKETS 4096     /* power of two */
#define CHECK_EVERY 256   /* table bytes between two decoder checkpoints */
#define HDR_MAX 256       /* the code object fields we read all lie below */

enum fmt { FMT_LNOTAB = 1, FMT_310, FMT_LOC };

/* Identity of a code object, re-read on every call (see pycode.h). */
enum { ID_TYPE, ID_FIRST, ID_FILE, ID_NAME, ID_QUAL, ID_TABLE, ID_CODE, ID_N };

/* Decoder state at an entry boundary: the next range starts at code byte
 * `start` and the table's running line is `line`. */
struct cursor {
	int64_t start;
	int32_t line;
	uint32_t pos; /* next table byte; UINT32_MAX once the lnotab tail is out */
};

struct entry {
	struct entry *next; /* bucket chain */
	pid_t pid;
	uint64_t addr;
	uint64_t id[ID_N];
	char qualname[256], filename[256];
	int firstlineno;
	int64_t code_len; /* bytes of bytecode */
	bool complete;    /* the whole line table is cached */
	uint32_t table_len;
	uint8_t *table;   /* table_len bytes, then the checkpoints (one malloc) */
	struct cursor *checks;
	uint32_t nchecks;
	size_t bytes;     /* the malloc's size, for the cache's bound */
};

struct proc {
	struct proc *next;
	pid_t pid;
	int fd;             /* /proc/PID/mem */
	uint64_t code_type; /* an ob_type whose tp_name is "code"; 0 unknown */
};

struct ls_pycode_cache {
	struct entry *buckets[NBUCKETS];
	struct proc *procs;
	struct ls_pycode_stats st;
	size_t max_entries, max_bytes; /* the bounds (LS_PYCODE_MAX_* by default) */
};

/* ---- line tables ------------------------------------------------------- */

static enum fmt fmt_of(const struct ls_py_offsets *off)
{
	if (off->flags & LS_PYOFF_LOCATIONS)
		return FMT_LOC;
	if (off->flags & LS_PYOFF_LINETABLE_310)
		return FMT_310;
	if (off->flags & LS_PYOFF_LNOTAB)
		return FMT_LNOTAB;
	return 0;
}

/* The signed varint at t[*pos] of a 3.11+ location table (Objects/locations.md:
 * 6-bit chunks, least significant first, 0x40 on all but the last; then the
 * low bit is the sign). false when it runs off the table or past 32 bits. */
static bool read_svarint(const uint8_t *t, uint32_t len, uint32_t pos, int32_t *v)
{
	uint32_t u = 0;
	unsigned shift = 0;
	uint8_t b;

	do {
		if (pos >= len || shift > 30)
			return false;
		b = t[pos++];
		u |= (uint32_t)(b & 63) << shift;
		shift += 6;
	} while (b & 64);
	*v = (u & 1) ? -(int32_t)(u >> 1) : (int32_t)(u >> 1);
	return true;
}

/* The next range [*rs, *re) of code bytes and its line (-1: CPython has no
 * line for it); false when the (cached part of the) table has no more. */
static bool next_range(enum fmt f, const uint8_t *t, uint32_t len, bool complete,
		       struct cursor *cur, int64_t *rs, int64_t *re, int *line)
{
	uint32_t p = cur->pos;

	switch (f) {
	case FMT_LNOTAB:
		/* 3.8/3.9 PyCode_Addr2Line: line starts at co_firstlineno; each
		 * pair (addr_incr, line_incr) ends the current line's range
		 * addr_incr bytes further, then moves the line by the signed
		 * line_incr (-128 is a plain delta here). After the last pair,
		 * the line holds to the end of the bytecode. */
		if (p == UINT32_MAX)
			return false;
		*rs = cur->start;
		*line = cur->line;
		if (p + 1 < len) {
			*re = cur->start + t[p];
			cur->start = *re;
			cur->pos = p + 2;
			/* A line past INT_MAX (a forged co_firstlineno): unknown
			 * from the next range on (#12). */
			if (__builtin_add_overflow(cur->line, (int8_t)t[p + 1], &cur->line))
				cur->pos = UINT32_MAX;
			return true;
		}
		if (!complete)
			return false; /* more pairs follow in the target: unknown */
		*re = INT64_MAX;
		cur->pos = UINT32_MAX;
		return true;
	case FMT_310:
		/* 3.10 (Objects/lnotab_notes.txt, advance() in codeobject.c):
		 * each pair (byte_delta, line_delta) is a range of byte_delta
		 * bytes; line_delta -128 means no line and leaves the running
		 * line alone. */
		if (p + 1 >= len)
			return false;
		*rs = cur->start;
		*re = cur->start + t[p];
		if ((int8_t)t[p + 1] == -128) {
			*line = -1;
		} else {
			if (__builtin_add_overflow(cur->line, (int8_t)t[p + 1], &cur->line))
				return false; /* past INT_MAX: unknown from here (#12) */
			*line = cur->line;
		}
		cur->start = *re;
		cur->pos = p + 2;
		return true;
	case FMT_LOC: {
		/* 3.11+ (Objects/locations.md, advance() in codeobject.c): an
		 * entry starts with a byte 1kkkkLLL: kind k, L+1 code units.
		 * Line delta by kind: 0-9 none, 10-12 k-10, 13 and 14 a signed
		 * varint after the first byte, 15 no location (line -1, running
		 * line unchanged). The next entry is the next byte with bit 7
		 * set; the bytes between are its columns. */
		uint8_t b;
		unsigned kind;
		int32_t d = 0;

		if (p >= len)
			return false;
		b = t[p];
		if (!(b & 0x80))
			return false; /* not an entry start: malformed */
		kind = (b >> 3) & 15;
		if (kind == 13 || kind == 14) {
			if (!read_svarint(t, len, p + 1, &d))
				return false; /* cut by the cache's bound, or malformed */
		} else if (kind >= 10 && kind <= 12) {
			d = (int32_t)kind - 10;
		}
		if (__builtin_add_overflow(cur->line, d, &cur->line))
			return false; /* past INT_MAX: unknown from here (#12) */
		*line = kind == 15 ? -1 : cur->line;
		*rs = cur->start;
		*re = cur->start + (int64_t)((b & 7) + 1) * CODE_UNIT;
		cur->start = *re;
		do
			p++;
		while (p < len && !(t[p] & 0x80));
		cur->pos = p;
		return true;
	}
	}
	return false;
}

static void first_cursor(const struct entry *e, struct cursor *cur)
{
	cur->start = 0;
	cur->line = e->firstlineno;
	cur->pos = 0;
}

/* Checkpoints every CHECK_EVERY table bytes, so that a lookup decodes at
 * most about that much of a long table. Ranges start in increasing order
 * (all three formats only add non-negative lengths), so the checkpoints are
 * sorted by start. */
static void build_checks(struct entry *e, enum fmt f, uint32_t max)
{
	struct cursor cur, before;
	uint32_t mark = CHECK_EVERY;
	int64_t rs, re;
	int line;

	e->nchecks = 0;
	first_cursor(e, &cur);
	for (before = cur; e->nchecks < max &&
	     next_range(f, e->table, e->table_len, e->complete, &cur, &rs, &re, &line);
	     before = cur) {
		if (before.pos != UINT32_MAX && before.pos >= mark) {
			e->checks[e->nchecks++] = before;
			mark = before.pos + CHECK_EVERY;
		}
	}
}

static int line_at(const struct entry *e, enum fmt f, int64_t off)
{
	struct cursor cur;
	int64_t rs, re;
	int line;
	uint32_t lo = 0, hi = e->nchecks;

	if (off < 0 || off >= e->code_len)
		return -1;
	/* the last checkpoint whose next range starts at or before off */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (e->checks[mid].start <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo)
		cur = e->checks[lo - 1];
	else
		first_cursor(e, &cur);
	while (next_range(f, e->table, e->table_len, e->complete, &cur, &rs, &re, &line)) {
		if (off < rs)
			return -1;
		if (off < re)
			return line;
	}
	return -1;
}

/* ---- the target's memory ----------------------------------------------- */

/* 0; -ESRCH when the address space is gone (reads return nothing once the
 * process has exited, also through a file opened before); -EFAULT when
 * [addr, addr + len) is not all mapped. */
static int rd(const struct proc *p, uint64_t addr, void *buf, size_t len)
{
	return ls_proc_mem_read(p->fd, addr, buf, len);
}

static uint64_t get_u64(const uint8_t *hdr, unsigned at)
{
	uint64_t v;

	memcpy(&v, hdr + at, sizeof(v));
	return v;
}

static int32_t get_i32(const uint8_t *hdr, unsigned at)
{
	int32_t v;

	memcpy(&v, hdr + at, sizeof(v));
	return v;
}

/* ---- the cache --------------------------------------------------------- */

static unsigned bucket(pid_t pid, uint64_t addr)
{
	uint64_t h = (addr ^ ((uint64_t)(uint32_t)pid << 40)) * 0x9E3779B97F4A7C15ull;

	return (unsigned)(h >> 52) & (NBUCKETS - 1);
}

static void free_entry(struct ls_pycode_cache *c, struct entry *e)
{
	c->st.entries--;
	c->st.bytes -= e->bytes;
	free(e->table);
	free(e);
}

/* Drop the entries of pid (pid 0: all of them). */
static void drop_entries(struct ls_pycode_cache *c, pid_t pid)
{
	for (unsigned i = 0; i < NBUCKETS; i++) {
		struct entry **pp = &c->buckets[i];

		while (*pp) {
			struct entry *e = *pp;

			if (pid && e->pid != pid) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			free_entry(c, e);
		}
	}
}

struct ls_pycode_cache *ls_pycode_cache_new(void)
{
	return ls_pycode_cache_new_max(LS_PYCODE_MAX_ENTRIES, LS_PYCODE_MAX_BYTES);
}

struct ls_pycode_cache *ls_pycode_cache_new_max(size_t max_entries, size_t max_bytes)
{
	struct ls_pycode_cache *c = calloc(1, sizeof(struct ls_pycode_cache));

	if (c) {
		c->max_entries = max_entries ? max_entries : 1;
		c->max_bytes = max_bytes;
	}
	return c;
}

void ls_pycode_forget_pid(struct ls_pycode_cache *c, pid_t pid)
{
	struct proc **pp;

	if (!c || pid <= 0)
		return;
	drop_entries(c, pid);
	for (pp = &c->procs; *pp; pp = &(*pp)->next) {
		struct proc *p = *pp;

		if (p->pid == pid) {
			*pp = p->next;
			close(p->fd);
			free(p);
			c->st.pids--;
			return;
		}
	}
}

void ls_pycode_cache_free(struct ls_pycode_cache *c)
{
	if (!c)
		return;
	drop_entries(c, 0);
	while (c->procs)
		ls_pycode_forget_pid(c, c->procs->pid);
	free(c);
}

void ls_pycode_stats(const struct ls_pycode_cache *c, struct ls_pycode_stats *out)
{
	*out = c->st;
}

static int get_proc(struct ls_pycode_cache *c, pid_t pid, struct proc **out, bool *fresh)
{
	struct proc *p;
	int fd;

	for (p = c->procs; p; p = p->next) {
		if (p->pid == pid) {
			*out = p;
			*fresh = false;
			return 0;
		}
	}
	fd = ls_proc_mem_open(pid);
	if (fd < 0)
		return fd;
	p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return -ENOMEM;
	}
	p->pid = pid;
	p->fd = fd;
	p->next = c->procs;
	c->procs = p;
	c->st.pids++;
	*out = p;
	*fresh = true;
	return 0;
}

/* The fields of the code object's header that identify it. */
static void identity(const uint8_t *hdr, const struct ls_py_offsets *off, uint64_t *id)
{
	id[ID_TYPE] = get_u64(hdr, off->ob_type);
	id[ID_FIRST] = (uint32_t)get_i32(hdr, off->co_firstlineno);
	id[ID_FILE] = get_u64(hdr, off->co_filename);
	id[ID_NAME] = get_u64(hdr, off->co_name);
	id[ID_QUAL] = off->co_qualname ? get_u64(hdr, off->co_qualname) : 0;
	id[ID_TABLE] = get_u64(hdr, off->co_linetable);
	id[ID_CODE] = off->co_code ? get_u64(hdr, off->co_code) : get_u64(hdr, VAR_SIZE);
}

/* Is ob_type the code type? Asked of the target once per pid and type. */
static int check_type(struct proc *p, const struct ls_py_offsets *off, uint64_t type)
{
	uint64_t name;
	char buf[5];
	int r;

	if (type && type == p->code_type)
		return 0;
	r = rd(p, type + off->tp_name, &name, sizeof(name));
	if (r == 0)
		r = rd(p, name, buf, sizeof(buf));
	if (r == -ESRCH)
		return r;
	if (r || memcmp(buf, "code", 5))
		return -EINVAL; /* Objects/codeobject.c: PyCode_Type.tp_name "code" */
	p->code_type = type;
	return 0;
}

/* A str at obj into out; "?" when it is not a readable compact str. */
static int read_name(const struct proc *p, const struct ls_py_offsets *off, uint64_t obj,
		     char *out, size_t cap)
{
	int r = ls_pyname_read_str(p->fd, off, obj, out, cap);

	if (r == -EFAULT)
		return r;
	if (r)
		snprintf(out, cap, "?");
	return 0;
}

/* Read the rest of the code object whose header is hdr into e (its id
 * already set); e->table is malloc'd on success. */
static int fill(const struct proc *p, const struct ls_py_offsets *off, enum fmt f,
		const uint8_t *hdr, struct entry *e)
{
	uint64_t table = e->id[ID_TABLE];
	int64_t size, code_len;
	uint32_t len, max_checks;
	size_t bytes;
	uint8_t *buf;
	int r;

	e->firstlineno = get_i32(hdr, off->co_firstlineno);
	r = read_name(p, off, off->co_qualname ? e->id[ID_QUAL] : e->id[ID_NAME], e->qualname,
		      sizeof(e->qualname));
	if (r == 0)
		r = read_name(p, off, e->id[ID_FILE], e->filename, sizeof(e->filename));
	if (r)
		return r;
	if (off->co_code) {
		r = rd(p, e->id[ID_CODE] + VAR_SIZE, &code_len, sizeof(code_len));
		if (r)
			return r;
	} else {
		if (e->id[ID_CODE] > (UINT64_C(1) << 40) / CODE_UNIT)
			return -EINVAL; /* ob_size * 2 would overflow (#12): not a code object */
		code_len = (int64_t)e->id[ID_CODE] * CODE_UNIT;
	}
	r = rd(p, table + VAR_SIZE, &size, sizeof(size));
	if (r)
		return r;
	if (size < 0 || code_len < 0 || code_len > (INT64_C(1) << 40))
		return -EINVAL; /* not the bytes and sizes of a code object */
	e->code_len = code_len;
	e->complete = size <= LS_PYCODE_MAX_TABLE;
	len = (uint32_t)(e->complete ? size : LS_PYCODE_MAX_TABLE);
	if (f != FMT_LOC)
		len &= ~1u; /* whole pairs only */
	max_checks = len / CHECK_EVERY + 1;
	bytes = (len + 7) / 8 * 8 + (size_t)max_checks * sizeof(struct cursor);
	buf = malloc(bytes);
	if (!buf)
		return -ENOMEM;
	r = len ? rd(p, table + BYTES_DATA, buf, len) : 0;
	if (r) {
		free(buf);
		return r;
	}
	e->table = buf;
	e->table_len = len;
	e->checks = (struct cursor *)(buf + (len + 7) / 8 * 8);
	e->bytes = bytes;
	build_checks(e, f, max_checks);
	return 0;
}

static struct entry *find(struct ls_pycode_cache *c, pid_t pid, uint64_t addr)
{
	for (struct entry *e = c->buckets[bucket(pid, addr)]; e; e = e->next)
		if (e->pid == pid && e->addr == addr)
			return e;
	return NULL;
}

static void unlink_entry(struct ls_pycode_cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[bucket(e->pid, e->addr)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
}

/* Bytes of the code object's header that hold every field we read. */
static unsigned header_len(const struct ls_py_offsets *off)
{
	const uint16_t fields[] = { VAR_SIZE,	       off->ob_type,  off->co_firstlineno,
				    off->co_filename,  off->co_name,  off->co_qualname,
				    off->co_linetable, off->co_code };
	unsigned len = 0;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i] + 8u > len)
			len = fields[i] + 8u;
	return len;
}

/* Cache tmp (filled) in place of old (NULL: none); NULL on ENOMEM. */
static struct entry *insert(struct ls_pycode_cache *c, struct entry *old, const struct entry *tmp)
{
	struct entry *e;
	unsigned b = bucket(tmp->pid, tmp->addr);

	if (old) {
		c->st.refills++;
		unlink_entry(c, old);
		free_entry(c, old);
	}
	if (c->st.entries + 1 > c->max_entries || c->st.bytes + tmp->bytes > c->max_bytes)
		drop_entries(c, 0);
	e = malloc(sizeof(*e));
	if (!e)
		return NULL;
	*e = *tmp;
	e->next = c->buckets[b];
	c->buckets[b] = e;
	c->st.entries++;
	c->st.bytes += e->bytes;
	c->st.fills++;
	if (!e->complete)
		c->st.truncated++;
	return e;
}

int ls_pycode_frame(struct ls_pycode_cache *c, pid_t pid, const struct ls_py_offsets *off,
		    uint64_t code_addr, int64_t byte_offset, struct ls_pyframe *out)
{
	uint8_t hdr[HDR_MAX];
	uint64_t id[ID_N];
	unsigned hdr_len;
	struct proc *p;
	struct entry *e;
	bool fresh;
	enum fmt f;
	int r;

	if (!c || !off || !out || !(f = fmt_of(off)))
		return -EINVAL;
	hdr_len = header_len(off);
	if (hdr_len > sizeof(hdr))
		return -EINVAL;
	r = get_proc(c, pid, &p, &fresh);
	if (r)
		return r;
	r = rd(p, code_addr, hdr, hdr_len);
	if (r == -ESRCH && !fresh) {
		/* The process this file was opened on is gone; the pid may
		 * name another one now: start over with a new file. */
		ls_pycode_forget_pid(c, pid);
		r = get_proc(c, pid, &p, &fresh);
		if (r)
			return r;
		r = rd(p, code_addr, hdr, hdr_len);
	}
	if (r == 0) {
		identity(hdr, off, id);
		r = check_type(p, off, id[ID_TYPE]);
	}
	if (r == -ESRCH)
		ls_pycode_forget_pid(c, pid); /* exited, or a zombie */
	if (r)
		return r;

	e = find(c, pid, code_addr);
	if (e && !memcmp(e->id, id, sizeof(id))) {
		c->st.hits++;
	} else {
		struct entry tmp = { .pid = pid, .addr = code_addr };

		memcpy(tmp.id, id, sizeof(id));
		r = fill(p, off, f, hdr, &tmp);
		if (r)
			return r; /* a stale entry stays: its check fails again next time */
		e = insert(c, e, &tmp);
		if (!e) {
			free(tmp.table);
			return -ENOMEM;
		}
	}
	memcpy(out->qualname, e->qualname, sizeof(out->qualname));
	memcpy(out->filename, e->filename, sizeof(out->filename));
	out->firstlineno = e->firstlineno;
	out->line = line_at(e, f, byte_offset);
	return 0;
}

/* ---- for tests (tests/test_pycode.c, tests/fuzz/fuzz_pycode.c) ----------- */

/* The decoder alone, as ls_pycode_frame runs it on a cached table (see
 * pycode.h, "For tests"). Kept here, not in the tests, so that what is
 * tested is the decoder itself; not used by the agent. */
int ls_pycode_table_line(uint32_t flags, const uint8_t *table, uint32_t len, int firstlineno,
			 int64_t code_len, int64_t byte_offset, bool checkpoints, int *line)
{
	struct ls_py_offsets off = { .flags = flags };
	struct entry e = { .firstlineno = firstlineno, .code_len = code_len, .complete = true };
	enum fmt f = fmt_of(&off);
	uint32_t max_checks;

	if (!f || code_len < 0 || (len && !table) || !line)
		return -EINVAL;
	if (len > LS_PYCODE_MAX_TABLE) { /* as fill() caches it */
		len = LS_PYCODE_MAX_TABLE;
		e.complete = false;
	}
	if (f != FMT_LOC)
		len &= ~1u;
	max_checks = checkpoints ? len / CHECK_EVERY + 1 : 0;
	e.table = (uint8_t *)table; /* only read */
	e.table_len = len;
	e.checks = calloc(max_checks ? max_checks : 1, sizeof(*e.checks));
	if (!e.checks)
		return -ENOMEM;
	build_checks(&e, f, max_checks);
	*line = line_at(&e, f, byte_offset);
	free(e.checks);
	return 0;
}
