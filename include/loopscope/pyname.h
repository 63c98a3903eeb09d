/* SPDX-License-Identifier: MIT */
/* Names of Python callbacks (agent/python/pyname.c): code objects and strings read
 * from the target's memory once each and cached. */
#ifndef LOOPSCOPE_PYNAME_H
#define LOOPSCOPE_PYNAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A callback's key (loopscope/abi/pycallback_events.h) and a CPython's
 * offsets row (loopscope/abi/py_offsets.h): callers that fill them include
 * those headers. */
struct ls_cb_key;
struct ls_py_offsets;

struct ls_cb_name {
	char qualname[256]; /* "Handler.on_request", "slow_handler", ml_name, tp_name */
	char filename[256]; /* co_filename as the interpreter has it; "" when no code */
	int firstlineno;    /* co_firstlineno; 0 when no code */
};

struct ls_pyname_cache;

/* Entries an ls_pyname_cache_new cache holds at most (~2 MiB of names). */
#define LS_PYNAME_CACHE_CAP 4096

/* An empty cache of at most LS_PYNAME_CACHE_CAP names: when full, a new
 * name replaces the least recently looked up one (an eviction). NULL on
 * ENOMEM. */
struct ls_pyname_cache *ls_pyname_cache_new(void);
/* The same with a bound of cap entries (1 .. 2^24); NULL for a cap out of
 * range or on ENOMEM. */
struct ls_pyname_cache *ls_pyname_cache_new_cap(size_t cap);
void ls_pyname_cache_free(struct ls_pyname_cache *c);

/* Names cached now (0 for NULL). */
size_t ls_pyname_cache_size(const struct ls_pyname_cache *c);
/* Names dropped to make room since the cache was made (0 for NULL);
 * names forgotten with ls_pyname_cache_forget are not counted. */
uint64_t ls_pyname_cache_evictions(const struct ls_pyname_cache *c);
/* Drop every name of process tgid (it exited: its addresses mean nothing
 * any more); an empty cache gives its entries' memory back. Returns how
 * many were dropped; c may be NULL. */
size_t ls_pyname_cache_forget(struct ls_pyname_cache *c, pid_t tgid);

/* The name of callback key k (looked up by its tgid and all its fields),
 * read from /proc/TGID/mem with the offsets of the target's CPython on
 * first use, then from the cache. Fields that cannot be read are "?". With
 * off NULL, only the cache is asked. NULL when not cached and off is NULL,
 * when the process is gone before its first lookup, or on ENOMEM. The
 * result is valid until the next lookup or forget on c (an eviction may
 * reuse its memory): copy or format it at once. */
const struct ls_cb_name *ls_pyname_lookup(struct ls_pyname_cache *c,
					  const struct ls_py_offsets *off,
					  const struct ls_cb_key *k);

/* Read the str object at obj (a compact PyUnicodeObject, CPython 3.8-3.13)
 * from memfd (an open /proc/PID/mem) as UTF-8 into out (cap bytes, at most
 * 256 characters), control characters (C0, DEL, C1) as '?': names are shown
 * on terminals. 0, -EFAULT unreadable, -ENOTSUP not compact, -EINVAL bad
 * kind. */
int ls_pyname_read_str(int memfd, const struct ls_py_offsets *off, uint64_t obj, char *out,
		       size_t cap);

/* A person's name for a callback: "Task handle_request() app.py:42",
 * "slow_handler() app.py:45", "Conn.on_data() app.py:12",
 * "partial(fetch) app.py:30", "print (builtin)", "<SomeType>"; a context
 * callback (LS_CB_CONTEXT) "spin_soon() app.py:12" when nm names it (from
 * its stack: the key does not), else "<context enter/exit callback>". */
char *ls_pyname_format(const struct ls_cb_key *k, const struct ls_cb_name *nm, char *buf,
		       size_t len);

#endif /* LOOPSCOPE_PYNAME_H */
