// SPDX-License-Identifier: MIT
/*
 * Integration: a CPython whose _Py_DebugOffsets are forged is refused in one
 * line and measured at epoll level. The pyenv 3.13 interpreter runs with a
 * copy of its libpython (LD_PRELOAD: the copy then satisfies the
 * libpython3.13.so.1.0 dependency, and is what /proc/PID/maps shows) whose
 * .PyRuntime section has thread_state.thread_id out of bounds.
 */
#include <check.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/pytarget.h"
#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
/* Position of thread_state.thread_id in a 3.13 image (agent/pydebug.c). */
#define P13_TS_THREAD_ID 192

static int prefix313(char *out, size_t len)
{
	glob_t g;
	int r = -1;

	if (glob("/root/.pyenv/versions/3.13*/lib/libpython3.13.so.1.0", 0, NULL, &g))
		return -1;
	if (g.gl_pathc) {
		char *lib = g.gl_pathv[g.gl_pathc - 1];

		snprintf(out, len, "%.*s", (int)(strstr(lib, "/lib/libpython") - lib), lib);
		r = 0;
	}
	globfree(&g);
	return r;
}

/* The lines of text containing needle. */
static int count_lines_with(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

START_TEST(test_forged_debug_offsets_refused_in_one_line)
{
	char prefix[400], dir[] = "/tmp/ls-it-pydebug.XXXXXX", copy[600], cmd[1400];
	char python[600], pid[16], needle[800];
	uint64_t v = 70000;
	struct ls_elf *e;
	struct ls_elf_section s;
	struct ls_test_out o;
	pid_t p;
	int fd;

	if (prefix313(prefix, sizeof(prefix))) {
		fprintf(stderr, "it_pydebug: no pyenv 3.13: skipped\n");
		return;
	}
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(copy, sizeof(copy), "%s/libpython3.13.so.1.0", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s/lib/libpython3.13.so.1.0' '%s'", prefix, copy);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(ls_elf_open(copy, &e), 0);
	ck_assert_int_eq(ls_elf_section(e, ".PyRuntime", &s), 0);
	ls_elf_close(e);
	fd = open(copy, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &v, sizeof(v), (off_t)(s.offset + P13_TS_THREAD_ID)),
			 sizeof(v));
	close(fd);

	snprintf(python, sizeof(python), "%s/bin/python3.13", prefix);
	{
		char *argv[] = { python, "-c",
				 "import asyncio\n"
				 "async def main():\n"
				 "    for _ in range(400):\n"
				 "        await asyncio.sleep(0.02)\n"
				 "asyncio.run(main())\n", NULL };

		setenv("LD_PRELOAD", copy, 1);
		p = ls_test_spawn(argv, NULL, NULL);
		unsetenv("LD_PRELOAD");
	}
	ck_assert_int_gt(p, 0);
	usleep(700000);
	snprintf(pid, sizeof(pid), "%d", p);
	snprintf(needle, sizeof(needle), "loopscope: pid %d: _Py_DebugOffsets in %s rejected: "
		 "thread_state.thread_id 70000 outside PyThreadState", p, copy);
	{
		char *argv[] = { LOOPSCOPE, "attach", "-p", pid, "--mode", "precise", "-d", "1s",
				 NULL };

		ck_assert_int_eq(ls_test_run_capture(&o, argv, 30000), 0);
	}
	/* One line says it, with the consequence; the loop is still measured. */
	ck_assert_msg(strstr(o.stderr_text, needle), "%s", o.stderr_text);
	ck_assert_msg(strstr(o.stderr_text, "; epoll level only\n"), "%s", o.stderr_text);
	ck_assert_int_eq(count_lines_with(o.stderr_text, "_Py_DebugOffsets"), 1);
	ck_assert_msg(strstr(o.stdout_text, "iterations"), "%s", o.stdout_text);
	ck_assert_msg(!strstr(o.stdout_text, "precise mode"), "%s", o.stdout_text);
	ls_test_out_free(&o);
	/* Light mode: one line that stacks are off, and why. */
	{
		char *argv[] = { LOOPSCOPE, "attach", "-p", pid, "-d", "1s", NULL };

		ck_assert_int_eq(ls_test_run_capture(&o, argv, 30000), 0);
	}
	ck_assert_msg(strstr(o.stderr_text, "no Python stacks for pid") &&
		      strstr(o.stderr_text, "rejected: thread_state.thread_id 70000"), "%s",
		      o.stderr_text);
	ck_assert_int_eq(count_lines_with(o.stderr_text, "_Py_DebugOffsets"), 1);
	ls_test_out_free(&o);
	ls_test_kill(p);
	unlink(copy);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_pydebug");
	TCase *tc = tcase_create("pydebug");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_forged_debug_offsets_refused_in_one_line);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
