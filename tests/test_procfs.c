// SPDX-License-Identifier: MIT
/* Unit: the procfs reader (agent/core/procfs.c) on this very process and on
 * a child that has exited. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopscope/procfs.h"
#include "pythons.h"

static const char secret[] = "loopscope reads this through /proc/self/mem";

START_TEST(test_mem_read_copies_mapped_bytes)
{
	char buf[sizeof(secret)];
	int fd = ls_proc_mem_open(getpid());

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ls_proc_mem_read(fd, (uint64_t)(uintptr_t)secret, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, secret);
	close(fd);
}
END_TEST

START_TEST(test_mem_read_unmapped_is_efault)
{
	char buf[8];
	int fd = ls_proc_mem_open(getpid());

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ls_proc_mem_read(fd, 0, buf, sizeof(buf)), -EFAULT);
	ck_assert_int_eq(ls_proc_mem_read(fd, UINT64_MAX - 2, buf, sizeof(buf)), -EFAULT);
	ck_assert_int_eq(ls_proc_mem_read_some(fd, 0, buf, sizeof(buf)), -EFAULT);
	close(fd);
}
END_TEST

START_TEST(test_mem_read_some_stops_at_what_it_asked)
{
	char buf[10];
	int fd = ls_proc_mem_open(getpid());

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ls_proc_mem_read_some(fd, (uint64_t)(uintptr_t)secret, buf, 9), 9);
	buf[9] = '\0';
	ck_assert_str_eq(buf, "loopscope");
	close(fd);
}
END_TEST

START_TEST(test_gone_process_is_esrch)
{
	pid_t pid = fork();
	char cmd[64];

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	ck_assert_int_eq(ls_proc_mem_open(pid), -ESRCH);
	ck_assert_uint_eq(ls_proc_cmdline(pid, cmd, sizeof(cmd)), 0);
	ck_assert_str_eq(cmd, "");
}
END_TEST

START_TEST(test_cmdline_joins_arguments_with_spaces)
{
	char cmd[4096], small[5];
	size_t n = ls_proc_cmdline(getpid(), cmd, sizeof(cmd));

	ck_assert_uint_eq(n, strlen(cmd));
	ck_assert_ptr_nonnull(strstr(cmd, "test_procfs"));
	ck_assert_uint_eq(ls_proc_cmdline(getpid(), small, sizeof(small)), 4);
}
END_TEST

START_TEST(test_info_of_self)
{
	struct ls_proc_info pi;

	ls_proc_info(getpid(), &pi);
	ck_assert_str_eq(pi.comm, "test_procfs");
	ck_assert_int_eq(pi.ns_pid, getpid());
	ck_assert_ptr_nonnull(strstr(pi.exe, "test_procfs"));
	ck_assert_ptr_nonnull(strstr(pi.cmdline, "test_procfs"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("procfs");
	TCase *tc = tcase_create("procfs");

	tcase_add_test(tc, test_mem_read_copies_mapped_bytes);
	tcase_add_test(tc, test_mem_read_unmapped_is_efault);
	tcase_add_test(tc, test_mem_read_some_stops_at_what_it_asked);
	tcase_add_test(tc, test_gone_process_is_esrch);
	tcase_add_test(tc, test_cmdline_joins_arguments_with_spaces);
	tcase_add_test(tc, test_info_of_self);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
