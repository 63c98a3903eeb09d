/* SPDX-License-Identifier: MIT */
/*
 * Reading other processes through procfs (agent/core/procfs.c): their
 * memory (/proc/PID/mem, as austin's copy_memory), their command line and
 * what the engine's rules match on. One reader for every caller.
 */
#ifndef LOOPSCOPE_PROCFS_H
#define LOOPSCOPE_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Open process pid's memory for ls_proc_mem_read (read-only, O_CLOEXEC;
 * close() it). The fd, or -ESRCH (no such process), -EACCES / -EPERM (not
 * allowed to trace it), another -errno from open(2). */
int ls_proc_mem_open(pid_t pid);

/* Read len bytes at address addr of the process whose memory fd is: 0;
 * -ESRCH when its address space is gone (reads return nothing once the
 * process has exited, also through an fd opened before); -EFAULT when
 * [addr, addr + len) is not all mapped (or addr + len overflows). */
int ls_proc_mem_read(int fd, uint64_t addr, void *buf, size_t len);

/* Read at most len bytes at addr, stopping at the first unmapped byte: the
 * number read (> 0), or -ESRCH / -EFAULT as ls_proc_mem_read when not one
 * byte could be. For strings whose length is not known. */
ssize_t ls_proc_mem_read_some(int fd, uint64_t addr, void *buf, size_t len);

/* Process pid's command line into buf (len bytes, len > 0), arguments
 * separated by one space, cut at len - 1 bytes; "" when unreadable (the
 * process is gone, a kernel thread). Returns the length written. */
size_t ls_proc_cmdline(pid_t pid, char *buf, size_t len);

/* What the engine's rules match a process on (README, "loopscoped"). */
struct ls_proc_info {
	char exe[256];      /* /proc/PID/exe's target, as the process sees it; "" when unreadable */
	char cmdline[512];  /* ls_proc_cmdline */
	char cgroup[256];   /* cgroup v2 path ("0::" line of /proc/PID/cgroup); "" without */
	char comm[16];      /* /proc/PID/comm, cut at a whole UTF-8 character */
	pid_t ns_pid;       /* its pid in its own pid namespace (NSpid's last); pid when unknown */
};

/* Fill *pi for process pid; fields that cannot be read stay "" (a process
 * that is gone gives all ""). Never fails. */
void ls_proc_info(pid_t pid, struct ls_proc_info *pi);

#endif /* LOOPSCOPE_PROCFS_H */
