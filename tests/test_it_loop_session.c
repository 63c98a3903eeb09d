// SPDX-License-Identifier: MIT
/*
 * Integration, in process: the agent's BPF sessions detach everything they
 * attached when closed. Counted as this process's own BPF link fds
 * (/proc/self/fdinfo), so it holds whatever else runs on the machine, and
 * unlike a check after a process has exited (the kernel drops unpinned
 * links then anyway) it fails if ls_loop_close or ls_pycb_close leaks.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/epoll.h>

#include "loopscope/loopscope.h"
#include "loopscope/pycallback.h"
#include "pythons.h"
#include "spawn.h"

START_TEST(test_loop_session_close_detaches_every_link)
{
	struct ls_loop_opts o = { .follow_children = true };
	struct ls_loop *l = NULL;
	int before = ls_test_bpf_links_of(getpid());

	ck_assert_int_ge(before, 0);
	ck_assert_int_eq(ls_loop_open(&o, &l), 0);
	/* Six epoll tracepoints, sched_switch and sched_wakeup, and,
	 * following, fork and exec. */
	ck_assert_int_eq(ls_test_bpf_links_of(getpid()) - before, 10);
	ck_assert_int_eq(ls_loop_add_target(l, getpid()), 0);
	ls_loop_close(l);
	ck_assert_int_eq(ls_test_bpf_links_of(getpid()), before);
}
END_TEST

static int threads_of(struct ls_loop *l, pid_t pid)
{
	struct ls_thread_view *v = NULL;
	size_t n = 0;
	uint64_t now;
	int k = 0;

	ck_assert_int_eq(ls_loop_snapshot(l, &v, &n, &now), 0);
	for (size_t i = 0; i < n; i++)
		k += v[i].tgid == (__u32)pid;
	free(v);
	return k;
}

/* Removing a target drops its threads' stats, and only them. */
START_TEST(test_remove_target_drops_its_threads)
{
	struct ls_loop *l = NULL;
	struct epoll_event ev;
	int ep = epoll_create1(0);

	ck_assert_int_ge(ep, 0);
	ck_assert_int_eq(ls_loop_open(NULL, &l), 0);
	ck_assert_int_eq(ls_loop_add_target(l, getpid()), 0);
	for (int i = 0; i < 3; i++)
		epoll_wait(ep, &ev, 1, 0);
	ck_assert_int_eq(threads_of(l, getpid()), 1);
	ck_assert_int_eq(ls_loop_remove_target(l, getpid()), 0);
	ck_assert_int_eq(threads_of(l, getpid()), 0);
	/* No longer a target: its polls are not counted again. */
	epoll_wait(ep, &ev, 1, 0);
	ck_assert_int_eq(threads_of(l, getpid()), 0);
	ls_loop_close(l);
	close(ep);
}
END_TEST

START_TEST(test_precise_session_close_detaches_every_link)
{
	char *argv[] = { "/usr/bin/python3.11", "-c",
			 "import time; print('ready', flush=True); time.sleep(30)", NULL };
	char out[128], line[64];
	struct ls_pycb *p = NULL;
	struct ls_py_target t;
	int before = ls_test_bpf_links_of(getpid()), attached;
	pid_t py;

	if (access(argv[0], X_OK)) {
		fprintf(stderr, "it_loop_session: SKIP precise: no %s\n", argv[0]);
		return;
	}
	ls_test_tmp(out, sizeof(out), "py");
	py = ls_test_spawn(argv, out, NULL);
	ck_assert_int_eq(ls_test_wait_line(out, "ready", 10000, line, sizeof(line)), 0);
	ck_assert_int_eq(ls_py_resolve(py, &t), 0);
	ck_assert_int_eq(ls_pycb_open(NULL, &p), 0);
	ck_assert_int_eq(ls_pycb_add_target(p, &t), 0);
	attached = ls_test_bpf_links_of(getpid()) - before;
	/* context_run's uprobe and uretprobe, PyContext_Enter/Exit's uprobes. */
	ck_assert_int_ge(attached, 2);
	ls_pycb_remove_target(p, py);
	ck_assert_int_eq(ls_test_bpf_links_of(getpid()), before);
	ck_assert_int_eq(ls_pycb_add_target(p, &t), 0);
	ls_pycb_close(p);
	ck_assert_int_eq(ls_test_bpf_links_of(getpid()), before);
	ls_test_kill(py);
	unlink(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_loop_session");
	TCase *tc = tcase_create("session");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_loop_session_close_detaches_every_link);
	tcase_add_test(tc, test_remove_target_drops_its_threads);
	tcase_add_test(tc, test_precise_session_close_detaches_every_link);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
