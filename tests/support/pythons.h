/* SPDX-License-Identifier: MIT */
/* The Python interpreters this machine has, for tests that run on each. */
#ifndef LS_TEST_PYTHONS_H
#define LS_TEST_PYTHONS_H

#include <check.h>
#include <stdbool.h>

#define LS_TEST_MAX_PYTHONS 24

/* The Debian sid root of scripts/pythons.sh ($LS_SID_ROOT overrides). */
#define LS_TEST_SID_ROOT "/var/cache/loopscope/sid-root"

struct ls_test_pythons {
	char path[LS_TEST_MAX_PYTHONS][512]; /* argv[0] to start each with */
	char name[LS_TEST_MAX_PYTHONS][64];  /* for messages: "pyenv 3.12.1",
					      * "sid-container:python3.14" */
	int minor[LS_TEST_MAX_PYTHONS];      /* 3.X */
	/* path is scripts/sid-python: the target is pid 1 of its own pid
	 * namespace (container) or chrooted (chroot); start it with
	 * ls_test_start_target or map its pid with ls_test_host_pid. */
	bool launcher[LS_TEST_MAX_PYTHONS];
	int n;
	char py37[512];                      /* pyenv 3.7 when present, else "" */
};

/* Which interpreters a suite wants. */
enum ls_test_py_want {
	/* Those loopscope fully supports (precise mode, stacks, frame
	 * names): 3.8 on, with the offset table up to 3.13 and the
	 * interpreter's own _Py_DebugOffsets after. */
	LS_TEST_PY_FULL,
	/* Every one present, also those measured at epoll level only. */
	LS_TEST_PY_ALL,
};

/* The interpreters to test on, from 3.min_minor on, as want says: Debian's
 * /usr/bin/python3.11, every /root/.pyenv/versions/X.Y*\/bin/pythonX.Y, and
 * CPython 3.14 and 3.15 of the Debian sid root, each both chrooted
 * ("sid-chroot:python3.14") and as a container ("sid-container:..."),
 * started through links to scripts/sid-python under the build directory.
 * The sid ones are in when the sid root is there, unless LS_TEST_SID=0;
 * LS_TEST_SID=1 puts them in every suite even where want would leave them
 * out. Each one left out is named on stderr with the reason, prefixed by
 * suite. Fills *out (out->n may be 0). */
void ls_test_find_pythons(const char *suite, int min_minor, enum ls_test_py_want want,
			  struct ls_test_pythons *out);

/* Only the sid ones of ls_test_find_pythons, for suites with their own
 * list of this machine's interpreters. */
void ls_test_find_sid_pythons(const char *suite, int min_minor, enum ls_test_py_want want,
			      struct ls_test_pythons *out);

/* ls_test_find_pythons(suite, min_minor, LS_TEST_PY_FULL, out). */
void ls_test_discover_pythons(const char *suite, int min_minor, struct ls_test_pythons *out);

/* Run every test of s (CK_NORMAL output) and return the process exit code:
 * EXIT_SUCCESS when none failed. Frees s's runner. */
int ls_test_run_suite(Suite *s);

#endif
