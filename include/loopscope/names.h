/* SPDX-License-Identifier: MIT */
/*
 * Names that come from a monitored process (issue #12 item 5): a thread's
 * comm, a process's comm, a C callback's ml_name/tp_name, Python
 * qualnames, filenames and Task names. The target chooses their bytes, and
 * they reach terminals (attach, run, status, top) and JSON. They are made
 * safe once, where they are read from the target (agent/core/target.c,
 * agent/core/procfs.c, agent/python/pyname.c), so that every output path,
 * text or JSON, gets the same safe string:
 *   - control characters (C0, DEL, C1: U+0000-001F, U+007F-009F) as '?'
 *     (no escape sequence, no line break a target could forge a report
 *     line with; '?' as elsewhere in loopscope, e.g. config errors);
 *   - bytes that are not valid UTF-8 (RFC 3629: overlong forms, lone
 *     surrogates, beyond U+10FFFF, cut sequences) as U+FFFD, one per byte.
 * Prometheus label values are escaped again at exposition (prom.c).
 */
#ifndef LOOPSCOPE_NAMES_H
#define LOOPSCOPE_NAMES_H

#include <stddef.h>

/* The safe form of src (at most n bytes, or up to its NUL) into dst (cap
 * bytes, cap >= 1): always NUL-terminated, valid UTF-8, no control
 * characters; cut at a character boundary when it does not fit. dst and
 * src must not overlap. Returns the length written (without the NUL). */
size_t ls_name_clean(char *dst, size_t cap, const char *src, size_t n);

/* ls_name_clean of s into itself (s holds cap bytes; the result can be
 * longer than s: U+FFFD is 3 bytes for 1). */
void ls_name_clean_inplace(char *s, size_t cap);

#endif /* LOOPSCOPE_NAMES_H */
