/* SPDX-License-Identifier: MIT */
/* TEMPORARY stand-in, replaced by the pycode branch. */
#ifndef LOOPSCOPE_PYCODE_H
#define LOOPSCOPE_PYCODE_H
#include <stdint.h>
#include <sys/types.h>
#include "loopscope/py_offsets.h"
struct ls_pyframe {
	char qualname[256];
	char filename[256];
	int firstlineno;
	int line;
};
struct ls_pycode_cache;
struct ls_pycode_cache *ls_pycode_cache_new(void);
void ls_pycode_cache_free(struct ls_pycode_cache *c);
int ls_pycode_frame(struct ls_pycode_cache *c, pid_t pid, const struct ls_py_offsets *off,
		    uint64_t code_addr, int64_t byte_offset, struct ls_pyframe *out);
void ls_pycode_forget_pid(struct ls_pycode_cache *c, pid_t pid);
#endif
