// SPDX-License-Identifier: MIT
/* Target processes and threads, from procfs. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/names.h"
#include "loopscope/utf8.h"
#include "loopscope/loopscope.h"

int ls_target_alive(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	/* /proc/PID/stat, not kill(pid, 0): a zombie still answers kill() but
	 * has no loop any more. Field 3 (after the last ')') is the state. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -ESRCH;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return -ESRCH;
	return 0;
}

void ls_target_thread_name(pid_t tgid, pid_t tid, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)tgid, (int)tid);
	f = fopen(path, "r");
	if (!f || !fgets(buf, (int)len, f)) {
		snprintf(buf, len, "?");
	} else {
		buf[strcspn(buf, "\n")] = '\0';
		/* (#12) The target names its threads: safe for terminals and JSON. */
		ls_utf8_cut(buf);
		ls_name_clean_inplace(buf, len);
	}
	if (f)
		fclose(f);
}

int ls_target_parse_pids(const char *s, pid_t *pids, int max)
{
	const char *p = s;
	int n = 0;

	if (!s || !*s)
		return -EINVAL;
	for (;;) {
		char *end;
		long v;

		errno = 0;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = strtol(p, &end, 10);
		if (errno || v <= 0 || v > INT_MAX || n >= max)
			return -EINVAL;
		for (int i = 0; i < n; i++)
			if (pids[i] == (pid_t)v)
				goto next; /* a repeat: attaching twice would count twice */
		pids[n++] = (pid_t)v;
next:
		if (*end == '\0')
			return n;
		if (*end != ',')
			return -EINVAL;
		p = end + 1;
	}
}
