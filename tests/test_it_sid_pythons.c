// SPDX-License-Identifier: MIT
/*
 * Suite "it_sid_pythons": the launchers the other suites run CPython 3.14
 * and 3.15 of the Debian sid root through (scripts/sid-python, chrooted and
 * as a container; tests/support/pythons.c), checked for what those suites
 * rely on, on each one ls_test_find_sid_pythons gives (SKIP lines name the
 * others: no sid root, LS_TEST_SID=0):
 *  - the interpreter is the sid one of its version, and sees the same
 *    arguments (spaces, empty ones), working directory (a relative script
 *    path) and /tmp files as a process started here;
 *  - its exit code comes back through the launcher;
 *  - ls_test_host_pid gives the interpreter's pid on this host: the
 *    launcher itself chrooted, its child (pid 1 inside) in a container;
 *  - killing the launcher takes the interpreter with it;
 *  - no mount is left on the host (all of them are in the target's own
 *    mount namespace).
 */
#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pythons.h"
#include "spawn.h"

static struct ls_test_pythons py_list;

static const char script[] =
	"import os, sys, time\n"
	"print('pid', os.getpid(), flush=True)\n"
	"print('ver', '%d.%d' % sys.version_info[:2], flush=True)\n"
	"print('exe', sys.executable, flush=True)\n"
	"print('cwd', os.getcwd(), flush=True)\n"
	"print('args', '|'.join(sys.argv[1:]), flush=True)\n"
	"print('tmp', open(sys.argv[1]).read(), flush=True)\n"
	"print('done', flush=True)\n"
	"if sys.argv[2] == 'wait':\n"
	"    time.sleep(60)\n"
	"sys.exit(int(sys.argv[3]))\n";

static char *field(const char *text, const char *key, char *buf, size_t len)
{
	const char *p = text;
	size_t n = strlen(key);

	for (; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, key, n) && p[n] == ' ') {
			snprintf(buf, len, "%.*s", (int)strcspn(p + n + 1, "\n"), p + n + 1);
			return buf;
		}
	}
	ck_abort_msg("no \"%s\" line in: %s", key, text);
	return NULL;
}

/* The host's mounts under the sid root or dir, as text ("" for none):
 * other suites may mount elsewhere meanwhile. */
static char *mounts(const char *dir)
{
	const char *root = getenv("LS_SID_ROOT");
	char *text = ls_test_slurp("/proc/self/mountinfo"), *save = NULL, *out;
	size_t len = 0;

	ck_assert_ptr_nonnull(text);
	out = calloc(1, strlen(text) + 1);
	ck_assert_ptr_nonnull(out);
	if (!root || !*root)
		root = LS_TEST_SID_ROOT;
	for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save))
		if (strstr(ln, root) || strstr(ln, dir))
			len += (size_t)sprintf(out + len, "%s\n", ln);
	free(text);
	return out;
}

static bool alive(pid_t pid)
{
	char path[64], state = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
		state = 0;
	fclose(f);
	return state && state != 'Z';
}

START_TEST(test_launcher_keeps_args_cwd_status_and_host_pid)
{
	const char *py = py_list.path[_i], *name = py_list.name[_i];
	char dir[] = "/tmp/loopscope-test-sid.XXXXXX", rel[PATH_MAX], data[PATH_MAX];
	char out[128], line[256], buf[PATH_MAX], cwd[PATH_MAX], want[PATH_MAX + 64], spid[32];
	char *argv[] = { (char *)py, rel, data, "exit", "7", "a b", "", NULL };
	char *waitv[] = { (char *)py, rel, data, "wait", "0", NULL };
	char *before, *after, *text;
	pid_t pid, host;
	int status;
	FILE *f;

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	before = mounts(dir);
	/* A script named relative to a working directory under /tmp. */
	snprintf(buf, sizeof(buf), "%s/s.py", dir);
	f = fopen(buf, "w");
	ck_assert_ptr_nonnull(f);
	fputs(script, f);
	fclose(f);
	snprintf(data, sizeof(data), "%s/data", dir);
	f = fopen(data, "w");
	ck_assert_ptr_nonnull(f);
	fputs("from the host", f);
	fclose(f);
	snprintf(rel, sizeof(rel), "s.py");
	ck_assert_int_eq(chdir(dir), 0);

	ls_test_tmp(out, sizeof(out), "sid-out");
	pid = ls_test_spawn(argv, out, NULL);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(ls_test_wait(pid, 20000, &status), 0);
	ck_assert_msg(status == 7, "%s: exit code %d, not the script's 7", name, status);
	text = ls_test_slurp(out);
	ck_assert_ptr_nonnull(text);
	snprintf(want, sizeof(want), "3.%d", py_list.minor[_i]);
	ck_assert_str_eq(field(text, "ver", buf, sizeof(buf)), want);
	snprintf(want, sizeof(want), "/usr/bin/python3.%d", py_list.minor[_i]);
	ck_assert_str_eq(field(text, "exe", buf, sizeof(buf)), want);
	ck_assert_str_eq(field(text, "cwd", buf, sizeof(buf)), dir);
	snprintf(want, sizeof(want), "%s|exit|7|a b|", data);
	ck_assert_str_eq(field(text, "args", buf, sizeof(buf)), want);
	ck_assert_str_eq(field(text, "tmp", buf, sizeof(buf)), "from the host");
	free(text);

	/* The host pid of a running one, and what killing the launcher does. */
	pid = ls_test_start_target(waitv, out, sizeof(out), spid, sizeof(spid), 20000);
	ck_assert_int_eq(ls_test_wait_line(out, "done", 20000, line, sizeof(line)), 0);
	host = (pid_t)atoi(spid);
	ck_assert_int_eq(host, ls_test_host_pid(pid));
	text = ls_test_slurp(out);
	/* Its executable: the sid one, as the host sees it. */
	snprintf(buf, sizeof(buf), "/proc/%d/exe", (int)host);
	memset(want, 0, sizeof(want));
	ck_assert_int_gt(readlink(buf, want, sizeof(want) - 1), 0);
	snprintf(buf, sizeof(buf), "/usr/bin/python3.%d", py_list.minor[_i]);
	ck_assert_msg(strstr(want, buf), "%s: pid %d runs %s", name, (int)host, want);
	if (strstr(name, "container")) {
		ck_assert_int_ne(host, pid);
		ck_assert_str_eq(field(text, "pid", line, sizeof(line)), "1");
	} else {
		ck_assert_int_eq(host, pid);
		snprintf(want, sizeof(want), "%d", (int)pid);
		ck_assert_str_eq(field(text, "pid", line, sizeof(line)), want);
	}
	free(text);
	ck_assert(alive(host));
	ls_test_kill(pid);
	for (int waited = 0; alive(host) && waited < 5000; waited += 10)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	ck_assert_msg(!alive(host), "%s: pid %d outlived its launcher", name, (int)host);

	after = mounts(dir);
	ck_assert_msg(!strcmp(before, after), "%s: mounts on the host changed:\n%s\nthen\n%s", name,
		      before, after);
	fprintf(stderr, "it_sid_pythons: %s: 3.%d, args, cwd, /tmp, exit code, host pid %d "
		"(launcher %d), killed with its launcher, no mount left\n", name,
		py_list.minor[_i], (int)host, (int)pid);
	free(before);
	free(after);
	ck_assert_int_eq(chdir(cwd), 0);
	unlink(out);
	unlink(data);
	snprintf(buf, sizeof(buf), "%s/s.py", dir);
	unlink(buf);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_sid_pythons");
	TCase *tc = tcase_create("sid");

	/* Only the sid ones: what is checked here is their launcher. */
	ls_test_find_sid_pythons("it_sid_pythons", 14, LS_TEST_PY_ALL, &py_list);
	if (py_list.n == 0) {
		fprintf(stderr, "it_sid_pythons: SKIP: no sid interpreter to check (see above)\n");
		return EXIT_SUCCESS;
	}
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_launcher_keeps_args_cwd_status_and_host_pid, 0, py_list.n);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
