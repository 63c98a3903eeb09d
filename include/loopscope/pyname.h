/* SPDX-License-Identifier: MIT */
/* Names of Python callbacks (agent/python/pyname.c): code objects and strings read
 * from the target's memory once each and cached. */
#ifndef LOOPSCOPE_PYNAME_H
#define LOOPSCOPE_PYNAME_H

#include <stddef.h>
#include <stdint.h>

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

/* An empty cache; NULL on ENOMEM. */
struct ls_pyname_cache *ls_pyname_cache_new(void);
void ls_pyname_cache_free(struct ls_pyname_cache *c);

/* The name of callback key k, read from /proc/TGID/mem with the offsets of
 * the target's CPython on first use, then from the cache. Fields that cannot
 * be read are "?". With off NULL, only the cache is asked. NULL when the
 * process is gone before its first lookup, or on ENOMEM. The result lives as
 * long as the cache. */
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
