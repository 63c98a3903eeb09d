// SPDX-License-Identifier: MIT
/*
 * Integration: the await chain of a slow busy period (CPython 3.14+,
 * agent/python/pytask.c) against CPython's own view of the same tasks,
 * `python3.X -m asyncio pstree PID`, on every 3.14+ interpreter present
 * (Debian sid's, chrooted and as a container).
 *
 * examples/python/await_chain.py keeps three tasks waiting in a known tree
 * (Task-1 -> handler-7 -> fetch-42) and blocks the loop from fetch-42 with
 * time.sleep every 0.3 s. Every slow busy period loopscope reports must
 * carry the chain fetch-42 <- handler-7 <- Task-1, and each task on it must
 * have the name and coroutine pstree gives it (pstree's path from the root
 * to fetch-42, reversed). No tolerance: names are compared exactly.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <json-c/json.h>

#include "loopscope/loopscope.h"
#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define APP LS_SOURCE_DIR "/examples/python/await_chain.py"

static struct ls_test_pythons py_list;

/* pid's id in its own pid namespace (the last NSpid of /proc/PID/status). */
static pid_t ns_pid(pid_t pid)
{
	char path[64], line[256];
	pid_t id = pid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "NSpid:", 6)) {
			char *last = strrchr(line, '\t');

			id = (pid_t)atoi(last ? last + 1 : line + 6);
		}
	fclose(f);
	return id;
}

struct task_row {
	char name[128];
	char coro[128];
};

/* pstree's lines: "└── (T) NAME" for a task, "└──  FUNC FILE:LINE" for a
 * coroutine frame, nested by indentation (4 columns a level). The path
 * from the root down to the task named leaf: each task with the first
 * coroutine frame under it. Returns its length (0 if leaf is absent). */
static int pstree_path(const char *text, const char *leaf, struct task_row *out, int max)
{
	struct { int depth; struct task_row row; } stack[32];
	int n = 0, want_coro = -1;
	const char *line = text;

	while (line && *line) {
		const char *end = strchr(line, '\n'), *m;
		char buf[512];
		size_t len = end ? (size_t)(end - line) : strlen(line);
		int depth;

		snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) - 1 ? len : sizeof(buf) - 1), line);
		line = end ? end + 1 : NULL;
		m = strstr(buf, "── ");
		if (!m)
			continue;
		/* Columns before the branch: box-drawing characters are 3 bytes. */
		depth = 0;
		for (const char *c = buf; c < m; )
			if ((unsigned char)*c >= 0x80) {
				c += 3;
				depth++;
			} else {
				c++;
				depth++;
			}
		m += strlen("── ");
		if (!strncmp(m, "(T) ", 4)) {
			while (n && stack[n - 1].depth >= depth)
				n--;
			if (n == 32)
				return 0;
			stack[n].depth = depth;
			snprintf(stack[n].row.name, sizeof(stack[n].row.name), "%s", m + 4);
			stack[n].row.coro[0] = '\0';
			want_coro = n++;
			if (!strcmp(stack[n - 1].row.name, leaf)) {
				/* its coroutine is on the next line */
			}
		} else if (want_coro >= 0 && want_coro == n - 1) {
			char func[128];

			while (*m == ' ')
				m++;
			if (sscanf(m, "%127s", func) == 1)
				snprintf(stack[want_coro].row.coro, sizeof(stack[0].row.coro), "%s", func);
			want_coro = -1;
			if (!strcmp(stack[n - 1].row.name, leaf)) {
				int k = n < max ? n : max;

				for (int i = 0; i < k; i++)
					out[i] = stack[i].row;
				return k;
			}
		}
	}
	return 0;
}

START_TEST(test_await_chain_matches_pstree)
{
	const char *py = py_list.path[_i];
	char spid[32], tout[128], log[] = "/tmp/ls-ac-log-XXXXXX", go[64];
	char *targv[] = { (char *)py, APP, "--log", log, "--wait-file", go, NULL };
	struct task_row path[8];
	struct ls_test_out tree = { 0 }, o = { 0 };
	int fd, npath, periods = 0;

	pid_t t;

	fd = mkstemp(log);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(go, sizeof(go), "%s.go", log);
	t = ls_test_start_target(targv, tout, sizeof(tout), spid, sizeof(spid), 20000);

	/* CPython's view of the same process, from inside its own root, mount
	 * and pid namespaces (where its maps' paths and pid mean what they say):
	 * nsenter into the target, then the same interpreter's pstree. */
	char nspid[32], py_in[32];
	snprintf(nspid, sizeof(nspid), "%d", (int)ns_pid(atoi(spid)));
	snprintf(py_in, sizeof(py_in), "/usr/bin/python3.%d", py_list.minor[_i]);
	char *pargv[] = { "/usr/bin/nsenter", "-t", spid, "-m", "-p", "-r", "-w", py_in, "-m",
			  "asyncio", "pstree", nspid, NULL };
	ck_assert_int_eq(ls_test_run_capture(&tree, pargv, 30000), 0);
	npath = pstree_path(tree.stdout_text, "fetch-42", path, 8);
	ck_assert_msg(npath == 3, "%s: pstree path to fetch-42 has %d tasks:\n%s", py_list.name[_i],
		      npath, tree.stdout_text);

	/* The blocks start now: one every 0.45 s, 2.5 s watched. */
	fd = open(go, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	char *argv[] = { LOOPSCOPE, "attach", "-p", spid, "-d", "2500ms", "--json", "-q", NULL };
	ck_assert_int_eq(ls_test_run_capture(&o, argv, 60000), 0);

	char *line = o.stdout_text;
	while (line && *line) {
		char *end = strchr(line, '\n');
		json_object *ev, *chain;

		if (end)
			*end = '\0';
		ev = json_tokener_parse(line);
		line = end ? end + 1 : NULL;
		if (!ev)
			continue;
		if (strcmp(json_object_get_string(ls_test_jget(ev, "type")), "slow_busy")) {
			json_object_put(ev);
			continue;
		}
		periods++;
		chain = ls_test_jget(ev, "await_chain");
		ck_assert_msg(chain && json_object_is_type(chain, json_type_array),
			      "%s: slow period without an await chain: %s", py_list.name[_i],
			      json_object_to_json_string(ev));
		ck_assert_int_eq((int)json_object_array_length(chain), npath);
		for (int i = 0; i < npath; i++) {
			json_object *task = json_object_array_get_idx(chain, (size_t)i);
			const struct task_row *want = &path[npath - 1 - i];

			ck_assert_str_eq(json_object_get_string(ls_test_jget(task, "task")), want->name);
			ck_assert_str_eq(json_object_get_string(ls_test_jget(task, "coroutine")),
					 want->coro);
		}
		json_object_put(ev);
	}
	/* 2.5 s of one block every 0.45 s: at least 3 (set-up may take one). */
	ck_assert_msg(periods >= 3, "%s: %d slow periods", py_list.name[_i], periods);
	fprintf(stderr, "it_await_chain: %s: %d slow periods, each with the chain %s <- %s <- %s\n",
		py_list.name[_i], periods, path[2].name, path[1].name, path[0].name);
	ls_test_out_free(&o);
	ls_test_out_free(&tree);
	ls_test_kill(t);
	unlink(tout);
	unlink(log);
	unlink(go);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_await_chain");
	TCase *tc = tcase_create("await_chain");

	struct ls_test_pythons all;

	ls_test_find_pythons("it_await_chain", 14, LS_TEST_PY_FULL, &all);
	/* Await chains need 3.14+ (Debian's python3.11 is always listed). */
	memset(&py_list, 0, sizeof(py_list));
	for (int i = 0; i < all.n; i++) {
		if (all.minor[i] < 14) {
			fprintf(stderr, "it_await_chain: SKIP %s: before 3.14 (no .AsyncioDebug)\n",
				all.name[i]);
			continue;
		}
		snprintf(py_list.path[py_list.n], sizeof(py_list.path[0]), "%s", all.path[i]);
		snprintf(py_list.name[py_list.n], sizeof(py_list.name[0]), "%s", all.name[i]);
		py_list.minor[py_list.n] = all.minor[i];
		py_list.launcher[py_list.n++] = all.launcher[i];
	}
	tcase_set_timeout(tc, 120);
	if (py_list.n)
		tcase_add_loop_test(tc, test_await_chain_matches_pstree, 0, py_list.n);
	else
		fprintf(stderr, "it_await_chain: SKIP: no CPython 3.14+ on this machine\n");
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
