/* SPDX-License-Identifier: MIT */
/*
 * Unsigned LEB128 varints, as the per-poll and per-callback streams'
 * records store their deltas (docs/RECORD.md "Every poll", "Every
 * callback"). Internal to agent/record.
 */
#ifndef LS_RECORD_VARINT_H
#define LS_RECORD_VARINT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* v into p (room for 10 bytes): 7 bits a byte, low first; the bytes
 * written (1-10). */
static inline size_t ls_varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* The varint at p[*off] of len bytes: 0 with *v set and *off past it, or
 * -EBADMSG (past the end, or longer than 10 bytes / above 64 bits). */
static inline int ls_varint_get(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned int shift = 0; shift < 70; shift += 7) {
		uint8_t b;

		if (*off >= len)
			return -EBADMSG;
		b = p[(*off)++];
		if (shift == 63 && b > 1)
			return -EBADMSG;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -EBADMSG;
}

#endif
