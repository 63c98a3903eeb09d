/* SPDX-License-Identifier: MIT */
/* The Python interpreters this machine has, for tests that run on each. */
#ifndef LS_TEST_PYTHONS_H
#define LS_TEST_PYTHONS_H

#include <check.h>

#define LS_TEST_MAX_PYTHONS 16

struct ls_test_pythons {
	char path[LS_TEST_MAX_PYTHONS][512]; /* to test on */
	int n;
	char py37[512];                      /* pyenv 3.7 when present, else "" */
};

/* Debian's /usr/bin/python3.11 and every /root/.pyenv/versions/X.Y*
 * bin/pythonX.Y from 3.min_minor on. Each one left out is named on stderr
 * with the reason, prefixed by suite. */
void ls_test_discover_pythons(const char *suite, int min_minor, struct ls_test_pythons *out);

/* Run every test of s (CK_NORMAL output) and return the process exit code:
 * EXIT_SUCCESS when none failed. Frees s's runner. */
int ls_test_run_suite(Suite *s);

#endif
