// SPDX-License-Identifier: MIT
/* Names from a target made safe for terminals and JSON (loopscope/names.h). */
#include <stdlib.h>
#include <string.h>

#include "loopscope/names.h"
#include "loopscope/utf8.h"

size_t ls_name_clean(char *dst, size_t cap, const char *src, size_t n)
{
	static const char fffd[] = "\xef\xbf\xbd"; /* U+FFFD REPLACEMENT CHARACTER */
	size_t o = 0, i = 0;

	if (!cap)
		return 0;
	n = strnlen(src, n);
	while (i < n) {
		size_t len = ls_utf8_len(src + i, n - i);
		const unsigned char *u = (const unsigned char *)src + i;
		const char *put = src + i;
		size_t plen = len;

		if (!len) {
			put = fffd;
			plen = 3;
			len = 1;
		} else if ((len == 1 && (u[0] < 0x20 || u[0] == 0x7f)) ||
			   (len == 2 && u[0] == 0xc2 && u[1] <= 0x9f)) {
			put = "?";
			plen = 1;
		}
		if (o + plen >= cap)
			break;
		memcpy(dst + o, put, plen);
		o += plen;
		i += len;
	}
	dst[o] = '\0';
	return o;
}

void ls_name_clean_inplace(char *s, size_t cap)
{
	char stack[256], *tmp = cap <= sizeof(stack) ? stack : malloc(cap);

	if (!cap)
		return;
	if (!tmp) {
		s[0] = '\0';
		return;
	}
	memcpy(tmp, s, strnlen(s, cap - 1));
	tmp[strnlen(s, cap - 1)] = '\0';
	ls_name_clean(s, cap, tmp, cap);
	if (tmp != stack)
		free(tmp);
}
