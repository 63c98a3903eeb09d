// SPDX-License-Identifier: MIT
/* Reading other processes through procfs: memory, command line, the
 * fields the engine's rules match on. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/names.h"
#include "loopscope/procfs.h"
#include "loopscope/utf8.h"

int ls_proc_mem_open(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? -ESRCH : -errno;
	return fd;
}

int ls_proc_mem_read(int fd, uint64_t addr, void *buf, size_t len)
{
	ssize_t n;

	if (addr > (uint64_t)INT64_MAX - len)
		return -EFAULT;
	n = pread(fd, buf, len, (off_t)addr);
	if (n == (ssize_t)len)
		return 0;
	return n == 0 ? -ESRCH : -EFAULT;
}

ssize_t ls_proc_mem_read_some(int fd, uint64_t addr, void *buf, size_t len)
{
	ssize_t n;

	if (!len || addr > (uint64_t)INT64_MAX - len)
		return -EFAULT;
	n = pread(fd, buf, len, (off_t)addr);
	if (n > 0)
		return n;
	return n == 0 ? -ESRCH : -EFAULT;
}

/* The file at path into buf (len bytes, NUL-terminated): the bytes read,
 * or -1 (buf "") when it cannot be opened. */
static ssize_t read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		buf[0] = '\0';
		return -1;
	}
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (ssize_t)n;
}

size_t ls_proc_cmdline(pid_t pid, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	n = read_file(path, buf, len);
	if (n <= 0)
		return 0;
	/* Arguments end with a NUL each; the last one stays the end. */
	for (ssize_t i = 0; i + 1 < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	return strlen(buf);
}

void ls_proc_info(pid_t pid, struct ls_proc_info *pi)
{
	char path[64], buf[4096], *p;
	ssize_t n;

	memset(pi, 0, sizeof(*pi));
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, pi->exe, sizeof(pi->exe) - 1);
	pi->exe[n > 0 ? n : 0] = '\0';
	ls_proc_cmdline(pid, pi->cmdline, sizeof(pi->cmdline));
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	read_file(path, buf, sizeof(buf));
	/* cgroup v2: the line "0::/path" (cgroups(7)). */
	for (p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, "0::", 3)) {
			size_t l = strcspn(p + 3, "\n");

			if (l >= sizeof(pi->cgroup))
				l = sizeof(pi->cgroup) - 1;
			memcpy(pi->cgroup, p + 3, l);
			pi->cgroup[l] = '\0';
			break;
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	read_file(path, pi->comm, sizeof(pi->comm));
	pi->comm[strcspn(pi->comm, "\n")] = '\0';
	/* The kernel cuts comm at 15 bytes, maybe inside a character. */
	ls_utf8_cut(pi->comm);
	/* (#12) Chosen by the target (prctl, /proc/self/comm): made safe for
	 * terminals and JSON. */
	ls_name_clean_inplace(pi->comm, sizeof(pi->comm));
	/* NSpid: the pid in each pid namespace, outermost first (proc(5)). */
	pi->ns_pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	read_file(path, buf, sizeof(buf));
	p = strstr(buf, "\nNSpid:");
	if (p) {
		char *end = p + 7 + strcspn(p + 7, "\n"), *last = NULL;

		for (char *q = p + 7; q < end; q++)
			if ((*q >= '0' && *q <= '9') && (q[-1] == ' ' || q[-1] == '\t'))
				last = q;
		if (last)
			pi->ns_pid = (pid_t)atoi(last);
	}
}
