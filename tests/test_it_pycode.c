// SPDX-License-Identifier: MIT
/*
 * Suite "it_pycode": ls_pycode_frame (agent/python/pycode.c) against CPython's own
 * line numbers, on every interpreter present (Debian's stripped
 * /usr/bin/python3.11, pyenv 3.8-3.13; older pyenv versions are skipped by
 * name: loopscope supports 3.8 on).
 *
 * tests/pycode_lines_truth.py defines code objects of known shapes
 * (multi-line bodies, a lambda, a nested class's method, closures,
 * comprehensions, try/with blocks with instructions CPython gives no line,
 * a generated function with gaps of 300 and 5000 lines, a line of more than
 * 255 bytecode bytes and a call going back 200 lines; on 3.11+ a copy
 * whose location table uses the no-column and no-location entry kinds; and
 * one whose line table passes 64 KiB), prints each one's id() and the line
 * CPython reports for its instruction offsets, by two routes (co_lines() or
 * dis.findlinestarts, and the C PyCode_Addr2Line through ctypes), then
 * waits on stdin. The test asks ls_pycode_frame for every (code, offset)
 * and asserts:
 *  - the line equals both truths at every offset, and the qualified name,
 *    file name and first line are the code object's;
 *  - past LS_PYCODE_MAX_TABLE of the long table, lines are -1 (unknown),
 *    never wrong, and the ones before are right;
 *  - offsets outside the bytecode give line -1 with the names;
 *  - each code object is read once, every later offset is a cache hit;
 *  - a code object freed and replaced by another at the same address is
 *    noticed (the script makes one when the allocator allows);
 *  - a function and a str are -EINVAL, an unmapped address -EFAULT, the
 *    exited process (zombie, then reaped) -ESRCH.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "loopscope/abi/py_offsets.h"
#include "loopscope/pycode.h"
#include "loopscope/pytarget.h"
#include "pythons.h"
#include "spawn.h"

#define SCRIPT LS_SOURCE_DIR "/tests/pycode_lines_truth.py"
#define GENERATED "<loopscope generated>"
#define MAX_CODES 64

static struct ls_test_pythons py_list;

struct code {
	uint64_t id;
	int first;
	int64_t nbytes;
	char qualname[256], filename[512];
	int n;              /* offsets */
	int64_t *offs;
	int *lines, *a2l;   /* co_lines()/findlinestarts, PyCode_Addr2Line */
};

struct truth {
	struct code codes[MAX_CODES];
	int ncodes;
	char file[512];
	uint64_t notcode[2];
	int ready;
};

/* Start argv with its stdin a pipe (*in: the write end) and stdout to
 * out_path; it dies with the test (PR_SET_PDEATHSIG). */
static pid_t spawn_piped(char *const argv[], const char *out_path, int *in)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid == 0) {
		int f = open(out_path, O_WRONLY | O_TRUNC);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[0], 0);
		dup2(f, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[0]);
	if (pid < 0) {
		close(fds[1]);
		return -errno;
	}
	*in = fds[1];
	return pid;
}

/* "<offset>:<line> ..." into the arrays (allocated). */
static int parse_pairs(char *s, int64_t **offs, int **lines)
{
	int n = 0, cap = 0;
	char *save = NULL;

	*offs = NULL;
	*lines = NULL;
	for (char *tok = strtok_r(s, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			*offs = realloc(*offs, (size_t)cap * sizeof(**offs));
			*lines = realloc(*lines, (size_t)cap * sizeof(**lines));
			ck_assert_ptr_nonnull(*offs);
			ck_assert_ptr_nonnull(*lines);
		}
		ck_assert_msg(sscanf(tok, "%" SCNd64 ":%d", &(*offs)[n], &(*lines)[n]) == 2,
			      "bad pair %s", tok);
		n++;
	}
	return n;
}

static struct code *code_by_id(struct truth *t, uint64_t id)
{
	for (int i = 0; i < t->ncodes; i++)
		if (t->codes[i].id == id)
			return &t->codes[i];
	ck_abort_msg("no CODE line for %" PRIu64, id);
	return NULL;
}

static void load_truth(const char *path, struct truth *t)
{
	char *text = ls_test_slurp(path), *save = NULL;

	ck_assert_ptr_nonnull(text);
	memset(t, 0, sizeof(*t));
	for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
		uint64_t id;
		int pos = 0;

		if (!strncmp(ln, "FILE ", 5)) {
			snprintf(t->file, sizeof(t->file), "%s", ln + 5);
		} else if (!strncmp(ln, "CODE ", 5)) {
			struct code *c = &t->codes[t->ncodes];

			ck_assert_int_lt(t->ncodes, MAX_CODES);
			ck_assert_int_eq(sscanf(ln, "CODE %" SCNu64 " %d %" SCNd64 " %255s %n", &c->id,
						&c->first, &c->nbytes, c->qualname, &pos),
					 4);
			snprintf(c->filename, sizeof(c->filename), "%s", ln + pos);
			t->ncodes++;
		} else if (sscanf(ln, "LINES %" SCNu64 " %n", &id, &pos) == 1 && pos) {
			struct code *c = code_by_id(t, id);

			c->n = parse_pairs(ln + pos, &c->offs, &c->lines);
		} else if (sscanf(ln, "ADDR2LINE %" SCNu64 " %n", &id, &pos) == 1 && pos) {
			struct code *c = code_by_id(t, id);
			int64_t *offs;
			int n = parse_pairs(ln + pos, &offs, &c->a2l);

			ck_assert_int_eq(n, c->n);
			for (int i = 0; i < n; i++)
				ck_assert(offs[i] == c->offs[i]);
			free(offs);
		} else if (!strncmp(ln, "NOTCODE ", 8)) {
			ck_assert_int_eq(sscanf(ln, "NOTCODE %" SCNu64 " %" SCNu64, &t->notcode[0],
						&t->notcode[1]),
					 2);
		} else if (!strncmp(ln, "READY ", 6)) {
			t->ready = atoi(ln + 6);
		}
	}
	free(text);
	ck_assert_int_eq(t->ready, t->ncodes);
}

static void free_truth(struct truth *t)
{
	for (int i = 0; i < t->ncodes; i++) {
		free(t->codes[i].offs);
		free(t->codes[i].lines);
		free(t->codes[i].a2l);
	}
}

/* /proc/PID/stat says Z (exited, not reaped yet) within timeout_ms. */
static bool wait_zombie(pid_t pid, int timeout_ms)
{
	char path[64], buf[256];

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int waited = 0; waited <= timeout_ms; waited += 5) {
		FILE *f = fopen(path, "r");
		char *rp;

		if (f) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);

			fclose(f);
			buf[n] = '\0';
			rp = strrchr(buf, ')');
			if (rp && rp[1] == ' ' && rp[2] == 'Z')
				return true;
		}
		nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	return false;
}

START_TEST(test_lines_names_match_cpython)
{
	const char *py = py_list.path[_i];
	char out[128], line[512];
	char *argv[] = { (char *)py, SCRIPT, NULL };
	struct ls_pycode_cache *cache = ls_pycode_cache_new();
	struct ls_pycode_stats st;
	struct ls_py_target tgt;
	const struct ls_py_offsets *off;
	struct ls_pyframe fr;
	static struct truth t;
	int in = -1, status, calls = 0, compared = 0, nolines = 0, huge_ok = 0, huge_unknown = 0;
	const char *reuse = "not tried";
	pid_t pid, launcher;

	ck_assert_ptr_nonnull(cache);
	ls_test_tmp(out, sizeof(out), "pycode");
	launcher = spawn_piped(argv, out, &in);
	ck_assert_int_gt(launcher, 0);
	if (ls_test_wait_line(out, "READY ", 15000, line, sizeof(line))) {
		ls_test_kill(launcher);
		ck_abort_msg("%s: the truth script did not get ready", py);
	}
	/* The interpreter: launcher itself, or its child in a container. */
	pid = ls_test_host_pid(launcher);
	ck_assert_msg(ls_py_resolve(pid, &tgt) == 0, "%s: %s", py, tgt.error);
	off = &tgt.off;
	ck_assert_ptr_nonnull(off);
	load_truth(out, &t);
	ck_assert_str_eq(t.file, SCRIPT);

	for (int k = 0; k < t.ncodes; k++) {
		struct code *c = &t.codes[k];
		bool huge = !strcmp(c->qualname, "huge"), unknown_seen = false;

		ck_assert_int_gt(c->n, 0);
		for (int i = 0; i < c->n; i++) {
			int r = ls_pycode_frame(cache, pid, off, c->id, c->offs[i], &fr);

			calls++;
			ck_assert_msg(r == 0, "%s: %s at %" PRId64 ": %s", py, c->qualname, c->offs[i],
				      strerror(-r));
			ck_assert_msg(c->lines[i] == c->a2l[i],
				      "%s: CPython disagrees with itself: %s offset %" PRId64
				      ": co_lines/findlinestarts %d, PyCode_Addr2Line %d",
				      py, c->qualname, c->offs[i], c->lines[i], c->a2l[i]);
			if (i == 0) {
				ck_assert_str_eq(fr.qualname, c->qualname);
				ck_assert_str_eq(fr.filename, c->filename);
				ck_assert_int_eq(fr.firstlineno, c->first);
				if (strcmp(c->filename, GENERATED))
					ck_assert_str_eq(fr.filename, SCRIPT);
			}
			if (huge) {
				/* right up to where the cached table ends, unknown after */
				if (fr.line == -1 && c->lines[i] != -1)
					unknown_seen = true;
				ck_assert_msg(unknown_seen ? fr.line == -1 : fr.line == c->lines[i],
					      "%s: huge offset %" PRId64 ": line %d, CPython %d", py,
					      c->offs[i], fr.line, c->lines[i]);
				huge_ok += !unknown_seen;
				huge_unknown += unknown_seen;
				continue;
			}
			ck_assert_msg(fr.line == c->lines[i],
				      "%s: %s (first line %d) offset %" PRId64 ": line %d, CPython %d",
				      py, c->qualname, c->first, c->offs[i], fr.line, c->lines[i]);
			compared++;
			nolines += c->lines[i] == -1;
		}
		/* outside the bytecode: unknown line, names still there */
		const int64_t outside[] = { -2, -1, c->nbytes, c->nbytes + 1000, INT64_MAX,
					    INT64_MIN };
		for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
			memset(&fr, 0, sizeof(fr));
			ck_assert_int_eq(ls_pycode_frame(cache, pid, off, c->id, outside[i], &fr), 0);
			calls++;
			ck_assert_int_eq(fr.line, -1);
			ck_assert_str_eq(fr.qualname, c->qualname);
			ck_assert_int_eq(fr.firstlineno, c->first);
		}
	}
	ck_assert_msg(huge_ok > 0 && huge_unknown > 0, "%s: huge: %d right, %d unknown", py, huge_ok,
		      huge_unknown);
	if (tgt.minor >= 10)
		ck_assert_msg(nolines > 0, "%s: no offset without a line was compared", py);
	ls_pycode_stats(cache, &st);
	ck_assert_int_eq(st.fills, t.ncodes);
	ck_assert_int_eq(st.hits, calls - t.ncodes);
	ck_assert_int_eq(st.refills, 0);
	ck_assert_int_eq(st.truncated, 1);
	ck_assert_int_eq(st.entries, t.ncodes);
	ck_assert_int_eq(st.pids, 1);

	/* not code objects, unmapped memory */
	ck_assert_int_eq(ls_pycode_frame(cache, pid, off, t.notcode[0], 0, &fr), -EINVAL);
	ck_assert_int_eq(ls_pycode_frame(cache, pid, off, t.notcode[1], 0, &fr), -EINVAL);
	ck_assert_int_eq(ls_pycode_frame(cache, pid, off, 8, 0, &fr), -EFAULT);
	ck_assert_int_eq(ls_pycode_frame(cache, pid, off, UINT64_MAX - 16, 0, &fr), -EFAULT);

	/* a code object freed and another allocated at its address */
	ck_assert_int_eq(write(in, "reuse\n", 6), 6);
	ck_assert_int_eq(ls_test_wait_line(out, "REUSED ", 10000, line, sizeof(line)), 0);
	if (strcmp(line, "REUSED none")) {
		uint64_t id;
		int first, rline;
		int64_t roff;
		char qual[64];
		struct code *victim = NULL;

		ck_assert_int_eq(sscanf(line, "REUSED %" SCNu64 " %d %63s %" SCNd64 ":%d", &id, &first,
					qual, &roff, &rline),
				 5);
		victim = code_by_id(&t, id);
		ck_assert_str_eq(victim->qualname, "victim");
		ck_assert_int_eq(ls_pycode_frame(cache, pid, off, id, roff, &fr), 0);
		ck_assert_str_eq(fr.qualname, qual);
		ck_assert_str_eq(fr.qualname, "reborn");
		ck_assert_int_eq(fr.firstlineno, first);
		ck_assert_int_eq(fr.line, rline);
		ls_pycode_stats(cache, &st);
		ck_assert_int_eq(st.refills, 1);
		reuse = "noticed";
	} else {
		reuse = "the allocator gave no address back (not checked)";
	}

	/* forgetting the pid drops its entries and file; a later call refills */
	ls_pycode_forget_pid(cache, pid);
	ls_pycode_stats(cache, &st);
	ck_assert_int_eq(st.entries, 0);
	ck_assert_int_eq(st.bytes, 0);
	ck_assert_int_eq(st.pids, 0);
	ck_assert_int_eq(ls_pycode_frame(cache, pid, off, t.codes[1].id, t.codes[1].offs[0], &fr), 0);
	ck_assert_int_eq(fr.line, t.codes[1].lines[0]);

	/* the process exits: a zombie first (no memory left), then reaped */
	close(in);
	/* (A container's launcher reaps it at once: then only reaped.) */
	if (pid == launcher)
		ck_assert_msg(wait_zombie(pid, 10000), "%s: the script did not exit on EOF", py);
	else
		ck_assert_msg(ls_test_wait(launcher, 10000, &status) == 0 && status == 0,
			      "%s: the script did not exit on EOF", py);
	ck_assert_int_eq(ls_pycode_frame(cache, pid, off, t.codes[1].id, 0, &fr), -ESRCH);
	ls_pycode_stats(cache, &st);
	ck_assert_int_eq(st.pids, 0);
	ck_assert_int_eq(st.entries, 0);
	if (pid == launcher)
		ck_assert_int_eq(ls_test_wait(pid, 5000, &status), 0);
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(ls_pycode_frame(cache, pid, off, t.codes[1].id, 0, &fr), -ESRCH);
	ls_pycode_cache_free(cache);

	fprintf(stderr,
		"it_pycode: %s (3.%d): %d code objects, %d offsets equal to CPython's line "
		"(co_lines/findlinestarts and PyCode_Addr2Line), %d of them without a line; "
		"huge: %d sampled offsets right, %d unknown past %d KiB of table; address "
		"reuse: %s\n",
		py, tgt.minor, t.ncodes, compared, nolines, huge_ok, huge_unknown,
		LS_PYCODE_MAX_TABLE / 1024, reuse);
	free_truth(&t);
	unlink(out);
}
END_TEST

/* A pid that never existed, and arguments without a table format. */
START_TEST(test_errors_without_target)
{
	struct ls_pycode_cache *cache = ls_pycode_cache_new();
	const struct ls_py_offsets *off = ls_py_offsets_for(3, 11);
	struct ls_py_offsets none;
	struct ls_pyframe fr;

	ck_assert_ptr_nonnull(off);
	ck_assert_int_eq(ls_pycode_frame(cache, 0x3fffffff, off, 0x1000, 0, &fr), -ESRCH);
	none = *off;
	none.flags &= ~(LS_PYOFF_LNOTAB | LS_PYOFF_LINETABLE_310 | LS_PYOFF_LOCATIONS);
	ck_assert_int_eq(ls_pycode_frame(cache, getpid(), &none, 0x1000, 0, &fr), -EINVAL);
	ck_assert_int_eq(ls_pycode_frame(cache, getpid(), NULL, 0x1000, 0, &fr), -EINVAL);
	ls_pycode_forget_pid(cache, 0x3fffffff); /* unknown: ignored */
	ls_pycode_cache_free(cache);
	ls_pycode_cache_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_pycode");
	TCase *tc = tcase_create("pycode");

	signal(SIGPIPE, SIG_IGN);
	ls_test_discover_pythons("it_pycode", 8, &py_list);
	if (py_list.n == 0) {
		fprintf(stderr, "it_pycode: no Python interpreter to test\n");
		return EXIT_FAILURE;
	}
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_lines_names_match_cpython, 0, py_list.n);
	tcase_add_test(tc, test_errors_without_target);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
