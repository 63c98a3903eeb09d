// SPDX-License-Identifier: MIT
/* Names of Python callbacks: read code objects and strings out of a target
 * once each (they are immutable) and cache them. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/abi/py_offsets.h"
#include "loopscope/abi/pycallback_events.h"
#include "loopscope/names.h"
#include "loopscope/procfs.h"
#include "loopscope/pyname.h"

/* A bounded cache (#12 item 6): entries in one array (grown up to cap),
 * a hash of (tgid, key) with chains through the entries, and a list of
 * them from most to least recently used; a miss when full reuses the
 * least recently used entry. Indices, not pointers, so the array can grow.
 * NIL ends chains and lists. */
#define NIL UINT32_MAX

struct entry {
	struct ls_cb_key key;
	struct ls_cb_name name;
	uint32_t hnext;           /* hash chain */
	uint32_t newer, older;    /* LRU list; free entries chain through older */
};

struct ls_pyname_cache {
	struct entry *e;
	uint32_t n, alloc, cap;   /* in use, allocated, bound */
	uint32_t *bucket;         /* nbuckets heads */
	uint32_t nbuckets;        /* a power of two >= 2 * cap */
	uint32_t newest, oldest, free;
	uint64_t evictions;
};

struct ls_pyname_cache *ls_pyname_cache_new_cap(size_t cap)
{
	struct ls_pyname_cache *c;

	if (!cap || cap > (1U << 24))
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->cap = (uint32_t)cap;
	c->nbuckets = 2;
	while (c->nbuckets < 2 * c->cap)
		c->nbuckets *= 2;
	c->bucket = malloc(c->nbuckets * sizeof(*c->bucket));
	if (!c->bucket) {
		free(c);
		return NULL;
	}
	for (uint32_t i = 0; i < c->nbuckets; i++)
		c->bucket[i] = NIL;
	c->newest = c->oldest = c->free = NIL;
	return c;
}

struct ls_pyname_cache *ls_pyname_cache_new(void)
{
	return ls_pyname_cache_new_cap(LS_PYNAME_CACHE_CAP);
}

void ls_pyname_cache_free(struct ls_pyname_cache *c)
{
	if (!c)
		return;
	free(c->e);
	free(c->bucket);
	free(c);
}

size_t ls_pyname_cache_size(const struct ls_pyname_cache *c)
{
	return c ? c->n : 0;
}

uint64_t ls_pyname_cache_evictions(const struct ls_pyname_cache *c)
{
	return c ? c->evictions : 0;
}

static uint32_t hash_key(const struct ls_pyname_cache *c, const struct ls_cb_key *k)
{
	/* FNV-1a over the key's fields (no padding reads). */
	uint64_t f[4] = { k->tgid, k->kind, k->code, k->name }, h = 1469598103934665603ULL;

	for (int i = 0; i < 4; i++)
		for (int b = 0; b < 64; b += 8) {
			h ^= (f[i] >> b) & 0xff;
			h *= 1099511628211ULL;
		}
	return (uint32_t)(h ^ (h >> 32)) & (c->nbuckets - 1);
}

static bool same_key(const struct ls_cb_key *a, const struct ls_cb_key *b)
{
	return a->tgid == b->tgid && a->kind == b->kind && a->code == b->code && a->name == b->name;
}

static void lru_unlink(struct ls_pyname_cache *c, uint32_t i)
{
	struct entry *x = &c->e[i];

	if (x->newer != NIL)
		c->e[x->newer].older = x->older;
	else
		c->newest = x->older;
	if (x->older != NIL)
		c->e[x->older].newer = x->newer;
	else
		c->oldest = x->newer;
}

static void lru_push(struct ls_pyname_cache *c, uint32_t i)
{
	struct entry *x = &c->e[i];

	x->newer = NIL;
	x->older = c->newest;
	if (c->newest != NIL)
		c->e[c->newest].newer = i;
	c->newest = i;
	if (c->oldest == NIL)
		c->oldest = i;
}

/* Unlink entry i from its hash chain and the LRU list (n drops by one). */
static void drop(struct ls_pyname_cache *c, uint32_t i)
{
	uint32_t *p = &c->bucket[hash_key(c, &c->e[i].key)];

	while (*p != i)
		p = &c->e[*p].hnext;
	*p = c->e[i].hnext;
	lru_unlink(c, i);
	c->n--;
}

static uint32_t find(struct ls_pyname_cache *c, const struct ls_cb_key *k)
{
	for (uint32_t i = c->bucket[hash_key(c, k)]; i != NIL; i = c->e[i].hnext)
		if (same_key(&c->e[i].key, k))
			return i;
	return NIL;
}

/* A slot for a new entry: a free one, a new one, or the least recently
 * used (evicted). NIL on ENOMEM. */
static uint32_t take_slot(struct ls_pyname_cache *c)
{
	uint32_t i;

	if (c->free != NIL) {
		i = c->free;
		c->free = c->e[i].older;
		return i;
	}
	if (c->alloc < c->cap) {
		uint32_t na = c->alloc ? c->alloc * 2 : 64;
		struct entry *ne;

		if (na > c->cap)
			na = c->cap;
		ne = realloc(c->e, (size_t)na * sizeof(*ne));
		if (!ne)
			return NIL;
		c->e = ne;
		for (i = na; i-- > c->alloc + 1;) {
			c->e[i].older = c->free;
			c->free = i;
		}
		i = c->alloc;
		c->alloc = na;
		return i;
	}
	i = c->oldest;
	drop(c, i);
	c->evictions++;
	return i;
}

size_t ls_pyname_cache_forget(struct ls_pyname_cache *c, pid_t tgid)
{
	size_t gone = 0;

	if (!c)
		return 0;
	for (uint32_t i = c->newest, next; i != NIL; i = next) {
		next = c->e[i].older;
		if (c->e[i].key.tgid != (uint32_t)tgid)
			continue;
		drop(c, i);
		c->e[i].older = c->free;
		c->free = i;
		gone++;
	}
	if (!c->n && c->e) {
		/* Empty: give the memory back (a daemon's last target went). */
		free(c->e);
		c->e = NULL;
		c->alloc = 0;
		c->free = c->newest = c->oldest = NIL;
	}
	return gone;
}

static int read_u64(int fd, uint64_t addr, uint64_t *v)
{
	return ls_proc_mem_read(fd, addr, v, sizeof(*v));
}

/* Append code point cp as UTF-8. */
static size_t put_utf8(char *out, size_t pos, size_t cap, uint32_t cp)
{
	char tmp[4];
	size_t n;

	if (cp < 0x80) {
		tmp[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		tmp[0] = (char)(0xC0 | cp >> 6);
		tmp[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		tmp[0] = (char)(0xE0 | cp >> 12);
		tmp[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		tmp[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		tmp[0] = (char)(0xF0 | cp >> 18);
		tmp[1] = (char)(0x80 | (cp >> 12 & 0x3F));
		tmp[2] = (char)(0x80 | (cp >> 6 & 0x3F));
		tmp[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	if (pos + n >= cap)
		return pos;
	memcpy(out + pos, tmp, n);
	return pos + n;
}

int ls_pyname_read_str(int memfd, const struct ls_py_offsets *off, uint64_t obj, char *out,
		       size_t cap)
{
	uint64_t len;
	uint32_t state;
	unsigned kind;
	unsigned char raw[4 * 256];
	size_t pos = 0, n;

	out[0] = '\0';
	if (!obj || cap == 0)
		return -EINVAL;
	/* PyASCIIObject (Include/cpython/unicodeobject.h, 3.8-3.15): `length`
	 * (Py_ssize_t) and the `state` bit field: interned bits 0-1, kind
	 * bits 2-4 (1, 2 or 4 bytes per character), compact bit 5, ascii bit 6
	 * (3.12+: statically_allocated bit 7, not read). Offsets from off
	 * (3.13+: the interpreter's debug offsets). */
	if (read_u64(memfd, obj + off->unicode_length, &len) ||
	    ls_proc_mem_read(memfd, obj + off->unicode_state, &state, sizeof(state)))
		return -EFAULT;
	if (!(state & (1u << 5)))
		return -ENOTSUP; /* legacy non-compact string: not used for names */
	kind = (state >> 2) & 7;
	if (kind != 1 && kind != 2 && kind != 4)
		return -EINVAL;
	if (len > 256)
		len = 256;
	n = (size_t)len * kind;
	if (ls_proc_mem_read(memfd, obj + ((state & (1u << 6)) ? off->ascii_data : off->compact_data), raw, n))
		return -EFAULT;
	for (size_t i = 0; i < len; i++) {
		uint32_t cp = kind == 1 ? raw[i] :
			      kind == 2 ? (uint32_t)raw[2 * i] | (uint32_t)raw[2 * i + 1] << 8 :
			      (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
				      (uint32_t)raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24;
		/* (#12, fuzz_pycode) Names go to terminals: a target's C0,
		 * DEL and C1 controls (an escape sequence in a co_filename) as '?'. */
		if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
			cp = '?';
		/* (#12) A str may hold lone surrogates (and a forged one any
		 * value): not UTF-8, so not for JSON. */
		else if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			cp = 0xfffd;
		pos = put_utf8(out, pos, cap, cp);
	}
	out[pos] = '\0';
	return 0;
}

static void read_cstr(int fd, uint64_t addr, char *out, size_t cap)
{
	ssize_t n = addr ? ls_proc_mem_read_some(fd, addr, out, cap - 1) : -1;

	if (n <= 0) {
		snprintf(out, cap, "?");
		return;
	}
	out[n] = '\0';
	/* (#12) As for str names: control characters as '?', and bytes that
	 * are not UTF-8 as U+FFFD (names go to terminals and JSON). */
	ls_name_clean_inplace(out, cap);
}

static void resolve(int fd, const struct ls_py_offsets *off, const struct ls_cb_key *k,
		    struct ls_cb_name *nm)
{
	int32_t line = 0;
	uint64_t file = 0;

	memset(nm, 0, sizeof(*nm));
	if (k->kind == LS_CB_CONTEXT)
		return; /* nothing to read: the callable is not known */
	if (k->kind == LS_CB_BUILTIN || k->kind == LS_CB_OTHER) {
		read_cstr(fd, k->name, nm->qualname, sizeof(nm->qualname));
		return;
	}
	if (ls_pyname_read_str(fd, off, k->name, nm->qualname, sizeof(nm->qualname)))
		snprintf(nm->qualname, sizeof(nm->qualname), "?");
	if (!k->code)
		return;
	/* PyCodeObject (Include/cpython/code.h): co_filename (str),
	 * co_firstlineno (int). */
	if (read_u64(fd, k->code + off->co_filename, &file) == 0)
		ls_pyname_read_str(fd, off, file, nm->filename, sizeof(nm->filename));
	if (ls_proc_mem_read(fd, k->code + off->co_firstlineno, &line, sizeof(line)) == 0)
		nm->firstlineno = line;
}

const struct ls_cb_name *ls_pyname_lookup(struct ls_pyname_cache *c,
					  const struct ls_py_offsets *off,
					  const struct ls_cb_key *k)
{
	uint32_t i = find(c, k);
	struct ls_cb_name nm;
	int fd;

	if (i != NIL) {
		lru_unlink(c, i);
		lru_push(c, i);
		return &c->e[i].name;
	}
	if (!off)
		return NULL; /* cache only: the target is gone */
	fd = ls_proc_mem_open((pid_t)k->tgid);
	if (fd < 0)
		return NULL; /* the process is gone: nothing to cache */
	resolve(fd, off, k, &nm);
	close(fd);
	i = take_slot(c);
	if (i == NIL)
		return NULL;
	c->e[i].key = *k;
	c->e[i].name = nm;
	c->e[i].hnext = c->bucket[hash_key(c, k)];
	c->bucket[hash_key(c, k)] = i;
	lru_push(c, i);
	c->n++;
	return &c->e[i].name;
}

char *ls_pyname_format(const struct ls_cb_key *k, const struct ls_cb_name *nm, char *buf,
		       size_t len)
{
	const char *base = strrchr(nm->filename, '/');
	char where[320] = "";

	base = base ? base + 1 : nm->filename;
	if (nm->filename[0])
		snprintf(where, sizeof(where), " %s:%d", base, nm->firstlineno);
	switch (k->kind) {
	case LS_CB_TASK:
		snprintf(buf, len, "Task %s()%s", nm->qualname, where);
		break;
	case LS_CB_PARTIAL:
		snprintf(buf, len, "partial(%s)%s", nm->qualname, where);
		break;
	case LS_CB_BUILTIN:
		snprintf(buf, len, "%s (builtin)", nm->qualname);
		break;
	case LS_CB_OTHER:
		snprintf(buf, len, "<%s>", nm->qualname);
		break;
	case LS_CB_CONTEXT:
		/* Its name, when known, came from its stack (the key has none). */
		if (nm->qualname[0])
			snprintf(buf, len, "%s()%s", nm->qualname, where);
		else
			snprintf(buf, len, "<context enter/exit callback>");
		break;
	default:
		snprintf(buf, len, "%s()%s", nm->qualname, where);
	}
	return buf;
}
