/* SPDX-License-Identifier: MIT */
/*
 * UTF-8 checks for names that come from outside (a process's comm, a
 * service name from the control socket): Prometheus rejects a whole page
 * whose label values are not valid UTF-8, and JSON readers reject invalid
 * strings. Valid means RFC 3629: shortest form, no surrogates, at most
 * U+10FFFF.
 */
#ifndef LOOPSCOPE_UTF8_H
#define LOOPSCOPE_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Length (1-4) of the valid UTF-8 character at s (n bytes available), or
 * 0 when the bytes there are not one. */
static inline size_t ls_utf8_len(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len;
	uint32_t cp;

	if (!n)
		return 0;
	if (u[0] < 0x80)
		return 1;
	if ((u[0] & 0xe0) == 0xc0)
		len = 2, cp = u[0] & 0x1f;
	else if ((u[0] & 0xf0) == 0xe0)
		len = 3, cp = u[0] & 0x0f;
	else if ((u[0] & 0xf8) == 0xf0)
		len = 4, cp = u[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((u[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (u[k] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Drop an incomplete character at the end of s: a name cut at a byte
 * count (the kernel's comm, TASK_COMM_LEN 16) may split one. Invalid bytes
 * elsewhere stay (exporters replace them). */
static inline void ls_utf8_cut(char *s)
{
	size_t n = strlen(s), i = n;

	/* The last lead byte, at most 3 continuation bytes back. */
	while (i > 0 && n - i < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i > 0 && (unsigned char)s[i - 1] >= 0xc0 && !ls_utf8_len(s + i - 1, n - i + 1))
		s[i - 1] = '\0';
}

#endif /* LOOPSCOPE_UTF8_H */
