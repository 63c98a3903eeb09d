// SPDX-License-Identifier: MIT
/* What BPF tracing needs from the machine: BTF, tracefs, privileges. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <seccomp.h>
#include <stdlib.h>

#include "loopscope/loopscope.h"

#define LS_TRACEFS "/sys/kernel/tracing"
#define LS_TRACEFS_PROBE LS_TRACEFS "/events/syscalls/sys_enter_epoll_wait"
#define LS_DEBUGFS_PROBE "/sys/kernel/debug/tracing/events/syscalls/sys_enter_epoll_wait"

uint64_t ls_sys_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* CAP_BPF (39) and CAP_PERFMON (38) are what loading tracing programs needs
 * since Linux 5.8; CAP_SYS_ADMIN covers both. Read from capget(2) so that a
 * non-root user with file capabilities passes too. */
static int have_bpf_caps(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	__u64 eff;

	if (geteuid() == 0)
		return 1;
	if (syscall(SYS_capget, &hdr, data))
		return 0;
	eff = (__u64)data[1].effective << 32 | data[0].effective;
	if (eff & (1ULL << 21)) /* CAP_SYS_ADMIN */
		return 1;
	return (eff & (1ULL << 39)) && (eff & (1ULL << 38));
}

/* A regular file that starts as raw BTF does (struct btf_header: magic
 * 0xeb9f, include/uapi/linux/btf.h) or as an ELF file (libbpf reads the
 * .BTF section of those): what libbpf's btf__parse accepts, checked
 * without blocking on a FIFO or reading a device. */
static bool btf_looks_right(const char *path)
{
	unsigned char magic[4];
	struct stat sb;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = !fstat(fd, &sb) && S_ISREG(sb.st_mode) && read(fd, magic, 4) == 4 &&
	     ((magic[0] == 0x9f && magic[1] == 0xeb) || !memcmp(magic, "\x7f" "ELF", 4));
	close(fd);
	return ok;
}

int ls_sys_check(const char *btf_path, char *why, size_t len)
{
	struct stat sb;

	if (!have_bpf_caps()) {
		snprintf(why, len, "need root or CAP_BPF and CAP_PERFMON to load BPF programs "
			 "(run with sudo)");
		return -EPERM;
	}
	if (!btf_path)
		btf_path = "/sys/kernel/btf/vmlinux";
	if (stat(btf_path, &sb)) {
		snprintf(why, len, "kernel has no BTF (%s missing): a kernel built with "
			 "CONFIG_DEBUG_INFO_BTF=y is needed, or --btf FILE for this kernel", btf_path);
		return -ENOTSUP;
	}
	if (!btf_looks_right(btf_path)) {
		snprintf(why, len, "%s is not a BTF file (raw BTF, magic 0xeb9f, or an ELF file "
			 "with a .BTF section is needed)", btf_path);
		return -ENOTSUP;
	}
	if (stat(LS_TRACEFS_PROBE, &sb) == 0 || stat(LS_DEBUGFS_PROBE, &sb) == 0)
		return 0;
	/* tracefs is where libbpf reads tracepoint ids from. */
	if (mount("nodev", LS_TRACEFS, "tracefs", 0, NULL) && errno != EBUSY) {
		snprintf(why, len, "tracefs is not mounted and mounting it failed (%s): "
			 "run 'mount -t tracefs nodev " LS_TRACEFS "'", strerror(errno));
		return -ENOENT;
	}
	if (stat(LS_TRACEFS_PROBE, &sb)) {
		snprintf(why, len, "no tracepoint syscalls:sys_enter_epoll_wait in " LS_TRACEFS
			 " (kernel without CONFIG_FTRACE_SYSCALLS?)");
		return -ENOENT;
	}
	return 0;
}

void ls_sys_syscall_name(int nr, char *buf, size_t len)
{
	/* libseccomp's table of x86-64 syscall numbers. */
	char *name = nr >= 0 ? seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr) : NULL;

	if (name)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, nr >= 0 ? "syscall %d" : "no syscall", nr);
	free(name);
}
