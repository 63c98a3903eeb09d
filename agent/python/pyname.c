// SPDX-License-Identifier: MIT
/* Names of Python callbacks: read code objects and strings out of a target
 * once each (they are immutable) and cache them. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/abi/py_offsets.h"
#include "loopscope/abi/pycallback_events.h"
#include "loopscope/procfs.h"
#include "loopscope/pyname.h"

struct ls_pyname_cache {
	struct ls_cb_key *keys;
	struct ls_cb_name *names;
	size_t n, cap;
};

struct ls_pyname_cache *ls_pyname_cache_new(void)
{
	return calloc(1, sizeof(struct ls_pyname_cache));
}

void ls_pyname_cache_free(struct ls_pyname_cache *c)
{
	if (!c)
		return;
	free(c->keys);
	free(c->names);
	free(c);
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
	out[strnlen(out, (size_t)n)] = '\0';
	/* (#12) As for str names: C0 and DEL bytes, and C1 controls in UTF-8
	 * (0xc2 0x80-0x9f), as '?'. */
	for (unsigned char *u = (unsigned char *)out; *u; u++) {
		if (*u == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f)
			*u++ = '?', *u = '?';
		else if (*u < 0x20 || *u == 0x7f)
			*u = '?';
	}
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
	int fd;

	for (size_t i = 0; i < c->n; i++)
		if (!memcmp(&c->keys[i], k, sizeof(*k)))
			return &c->names[i];
	if (!off)
		return NULL; /* cache only: the target is gone */
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct ls_cb_key *nk = realloc(c->keys, cap * sizeof(*nk));
		struct ls_cb_name *nn;

		if (!nk)
			return NULL;
		c->keys = nk;
		nn = realloc(c->names, cap * sizeof(*nn));
		if (!nn)
			return NULL;
		c->names = nn;
		c->cap = cap;
	}
	fd = ls_proc_mem_open((pid_t)k->tgid);
	if (fd < 0)
		return NULL; /* the process is gone: nothing to cache */
	resolve(fd, off, k, &c->names[c->n]);
	close(fd);
	c->keys[c->n] = *k;
	return &c->names[c->n++];
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
