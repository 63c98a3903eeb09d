// SPDX-License-Identifier: MIT
/*
 * Suite "elf": the ELF reader (agent/python/elf.c) and the CPython resolver
 * (agent/python/pytarget.c). The tp_methods route to context_run is checked against
 * independent facts: the .symtab symbol of the unstripped pyenv builds, the
 * .eh_frame FDE of Debian's stripped python3.11, and live processes whose
 * memory at bias + vaddr must hold the file's bytes at the resolved offset.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "loopscope/pytarget.h"
#include "spawn.h"

#define DEBIAN_PY "/usr/bin/python3.11"
#define PYENV "/root/.pyenv/versions"

static int file_version(const char *path, int *major, int *minor)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	if (sscanf(b, "libpython%d.%d", major, minor) == 2 || sscanf(b, "python%d.%d", major, minor) == 2)
		return 0;
	return -1;
}

/* Check suites run each test in a child, so skips are printed, not counted. */
static void skip(const char *what, const char *why)
{
	fprintf(stderr, "elf: SKIP %s: %s\n", what, why);
}

START_TEST(test_tp_methods_route_equals_symtab_on_pyenv)
{
	glob_t g;
	size_t i;
	int checked = 0;

	if (glob(PYENV "/*/lib/libpython*.so.1.0", 0, NULL, &g)) {
		skip(PYENV, "no pyenv libpython");
		return;
	}
	for (i = 0; i < g.gl_pathc; i++) {
		const char *p = g.gl_pathv[i];
		uint64_t sym = 0, tp = 0;
		int major, minor;

		ck_assert_int_eq(file_version(p, &major, &minor), 0);
		if (major == 2) {
			skip(p, "Python 2 has no contextvars (PyContext_Type and context_run are 3.7+)");
			continue;
		}
		if (minor < 7) {
			skip(p, "no contextvars before 3.7 (PyContext_Type and context_run are 3.7+)");
			continue;
		}
		if (minor < LS_PY_MIN_MINOR) {
			skip(p, "Python 3.7 is unsupported by loopscope (3.8 to 3.13)");
			continue;
		}
		ck_assert_int_eq(ls_py_context_run_via_symtab(p, &sym), 0);
		ck_assert_int_eq(ls_py_context_run_via_tp_methods(p, &tp), 0);
		fprintf(stderr, "elf: %s: context_run .symtab %#llx, tp_methods %#llx\n", p,
			(unsigned long long)sym, (unsigned long long)tp);
		ck_assert_uint_eq(tp, sym);
		checked++;
	}
	globfree(&g);
	fprintf(stderr, "elf: tp_methods route checked on %d pyenv builds\n", checked);
}
END_TEST

static uint64_t uleb(const uint8_t **p)
{
	uint64_t v = 0;
	int shift = 0;

	do
		v |= (uint64_t)(**p & 0x7f) << shift, shift += 7;
	while (*(*p)++ & 0x80);
	return v;
}

static int32_t s32(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* The FDE whose initial location is pc, found in .eh_frame_hdr's binary
 * search table (LSB "Exception Frame Header": version 1, eh_frame_ptr,
 * fde_count udata4, table of (initial_location, fde) datarel sdata4 pairs,
 * sorted). Then the FDE itself must start at pc: its CIE is "zR" with
 * pointer encoding pcrel|sdata4 (0x1b), as GCC emits on x86-64. */
static void assert_fde_starts_at(struct ls_elf *e, uint64_t pc)
{
	struct ls_elf_section hdr;
	uint8_t *buf, rec[64], cie[64];
	const uint8_t *q;
	uint32_t count, lo = 0, hi;
	uint64_t fde = 0, cie_at;
	int found = 0;

	ck_assert_int_eq(ls_elf_section(e, ".eh_frame_hdr", &hdr), 0);
	buf = malloc(hdr.size);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(ls_elf_read(e, hdr.addr, buf, hdr.size), 0);
	ck_assert_int_eq(buf[0], 1);
	ck_assert(buf[1] == 0x1b || buf[1] == 0x03 || buf[1] == 0x0b); /* 4-byte eh_frame_ptr */
	ck_assert_int_eq(buf[2], 0x03); /* fde_count: udata4 */
	ck_assert_int_eq(buf[3], 0x3b); /* table: datarel | sdata4 */
	memcpy(&count, buf + 8, 4);
	ck_assert_uint_le(12 + (uint64_t)count * 8, hdr.size);
	hi = count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint64_t loc = hdr.addr + (int64_t)s32(buf + 12 + mid * 8);

		if (loc == pc) {
			fde = hdr.addr + (int64_t)s32(buf + 12 + mid * 8 + 4);
			found = 1;
			break;
		}
		if (loc < pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	free(buf);
	ck_assert_msg(found, "no .eh_frame_hdr entry at %#llx", (unsigned long long)pc);
	/* FDE: length u32, CIE pointer u32 (distance back from this field), pc_begin */
	ck_assert_int_eq(ls_elf_read(e, fde, rec, 12), 0);
	ck_assert_int_ne(s32(rec), -1); /* not the 64-bit DWARF format */
	ck_assert_int_ne(s32(rec + 4), 0); /* an FDE, not a CIE */
	cie_at = fde + 4 - (uint32_t)s32(rec + 4);
	ck_assert_int_eq(ls_elf_read(e, cie_at, cie, sizeof(cie)), 0);
	ck_assert_int_eq(s32(cie + 4), 0); /* CIE id */
	ck_assert_str_eq((const char *)cie + 9, "zR");
	q = cie + 9 + 3;
	uleb(&q); /* code alignment */
	uleb(&q); /* data alignment (sleb, skipped alike) */
	if (cie[8] == 1)
		q++; /* return register: a byte in version 1 */
	else
		uleb(&q);
	uleb(&q); /* augmentation length */
	ck_assert_int_eq(*q, 0x1b); /* FDE pointers: pcrel | sdata4 */
	ck_assert_uint_eq(fde + 8 + (int64_t)s32(rec + 8), pc);
	fprintf(stderr, "elf: FDE at %#llx starts at %#llx\n", (unsigned long long)fde,
		(unsigned long long)pc);
}

START_TEST(test_debian_stripped_tp_methods_route_has_fde)
{
	struct ls_elf *e;
	struct ls_elf_section text;
	struct ls_py_target t;
	uint64_t pc, off;

	if (access(DEBIAN_PY, R_OK)) {
		skip(DEBIAN_PY, "not installed");
		return;
	}
	ck_assert_int_eq(ls_elf_open(DEBIAN_PY, &e), 0);
	ck_assert_int_eq(ls_elf_type(e), ET_EXEC);
	ck_assert(!ls_elf_has_symtab(e));
	ck_assert_int_eq(ls_py_context_run_via_symtab(DEBIAN_PY, &pc), -ENOENT);
	ck_assert_int_eq(ls_py_context_run_via_tp_methods(DEBIAN_PY, &pc), 0);
	ck_assert_int_eq(ls_elf_section(e, ".text", &text), 0);
	ck_assert(pc >= text.addr && pc < text.addr + text.size);
	ck_assert_int_eq(ls_elf_vaddr_to_offset(e, pc, &off), 0);
	fprintf(stderr, "elf: %s: context_run %#llx, file offset %#llx\n", DEBIAN_PY,
		(unsigned long long)pc, (unsigned long long)off);
	assert_fde_starts_at(e, pc);
	ls_elf_close(e);

	ck_assert_int_eq(ls_py_resolve_file(DEBIAN_PY, &t), 0);
	ck_assert_int_eq(t.route, LS_PY_ROUTE_TP_METHODS);
	ck_assert_uint_eq(t.context_run.vaddr, pc);
	ck_assert_uint_eq(t.context_run.offset, off);
	ck_assert(t.major == 3 && t.minor == 11);
}
END_TEST

/* A name that says nothing: the version must come from PY_VERSION in .rodata
 * (standalone in Debian's binary, tail-merged in the pyenv libraries). */
START_TEST(test_version_from_rodata)
{
	const char *files[] = { DEBIAN_PY, PYENV "/3.12.1/lib/libpython3.12.so.1.0",
				PYENV "/3.8.18/lib/libpython3.8.so.1.0" };
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct ls_py_target t;
		char link[64];
		int major, minor;

		if (access(files[i], R_OK)) {
			skip(files[i], "not installed");
			continue;
		}
		ck_assert_int_eq(file_version(files[i], &major, &minor), 0);
		snprintf(link, sizeof(link), "/tmp/loopscope-test-interp.%d", (int)getpid());
		unlink(link);
		ck_assert_int_eq(symlink(files[i], link), 0);
		ck_assert_msg(ls_py_resolve_file(link, &t) == 0, "%s", t.error);
		unlink(link);
		ck_assert_int_eq(t.major, major);
		ck_assert_int_eq(t.minor, minor);
	}
}
END_TEST

static pid_t start_python(const char *py, char *out, size_t len)
{
	char *argv[] = { (char *)py, "-c", "import time; print('ready', flush=True); time.sleep(30)",
			 NULL };
	char line[64];
	pid_t pid;

	ls_test_tmp(out, len, "elf-py");
	pid = ls_test_spawn(argv, out, NULL);
	ck_assert_int_gt(pid, 0);
	if (ls_test_wait_line(out, "ready", 15000, line, sizeof(line))) {
		ls_test_kill(pid);
		ck_abort_msg("%s did not start", py);
	}
	return pid;
}

/* The bytes at the file offset must be the bytes the process has at
 * bias + vaddr: proves offset (uprobe) and bias (runtime) math together. */
static void check_live(const char *py, int minor, enum ls_py_route route)
{
	struct ls_py_target t;
	uint8_t a[32], b[32];
	char out[128], mem[64];
	pid_t pid;
	int fd, err;

	pid = start_python(py, out, sizeof(out));
	err = ls_py_resolve(pid, &t);
	if (err) {
		ls_test_kill(pid);
		ck_abort_msg("%s: %d %s", py, err, t.error);
	}
	fprintf(stderr, "elf: pid %d %s: %s %d.%d bias %#llx context_run %#llx offset %#llx "
		"(%s) _PyRuntime %#llx PyContext_Enter %#llx\n", (int)pid, py, t.path, t.major,
		t.minor, (unsigned long long)t.bias, (unsigned long long)t.context_run.vaddr,
		(unsigned long long)t.context_run.offset,
		t.route == LS_PY_ROUTE_SYMTAB ? "symtab" : "tp_methods",
		(unsigned long long)t.runtime.vaddr, (unsigned long long)t.context_enter.vaddr);
	fd = open(t.host_path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, a, sizeof(a), (off_t)t.context_run.offset), (ssize_t)sizeof(a));
	close(fd);
	snprintf(mem, sizeof(mem), "/proc/%d/mem", (int)pid);
	fd = open(mem, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, b, sizeof(b), (off_t)(t.bias + t.context_run.vaddr)),
			 (ssize_t)sizeof(b));
	close(fd);
	ls_test_kill(pid);
	unlink(out);
	ck_assert_int_eq(t.major, 3);
	ck_assert_int_eq(t.minor, minor);
	ck_assert_int_eq(t.route, route);
	ck_assert_uint_ne(t.context_run.offset, 0);
	ck_assert_uint_ne(t.runtime.vaddr, 0);
	ck_assert_uint_ne(t.context_enter.offset, 0);
	ck_assert_uint_ne(t.context_exit.offset, 0);
	ck_assert_uint_ne(t.context_type.vaddr, 0);
	ck_assert_int_eq(memcmp(a, b, sizeof(a)), 0);
}

START_TEST(test_live_resolve_matches_memory)
{
	static const char *const pyenv[] = { "3.12", "3.13", "3.11", "3.10", "3.9", "3.8" };
	char pattern[128];
	size_t i;
	glob_t g;

	if (!access(DEBIAN_PY, X_OK))
		check_live(DEBIAN_PY, 11, LS_PY_ROUTE_TP_METHODS);
	else
		skip(DEBIAN_PY, "not installed");
	for (i = 0; i < sizeof(pyenv) / sizeof(pyenv[0]); i++) {
		snprintf(pattern, sizeof(pattern), PYENV "/%s.*/bin/python%s", pyenv[i], pyenv[i]);
		if (!glob(pattern, 0, NULL, &g)) {
			check_live(g.gl_pathv[0], atoi(pyenv[i] + 2), LS_PY_ROUTE_SYMTAB);
			globfree(&g);
			return;
		}
	}
	skip(PYENV, "no pyenv Python 3.8-3.13 to run");
}
END_TEST

START_TEST(test_errors)
{
	char *sleep_argv[] = { "/bin/sleep", "30", NULL };
	struct ls_py_target t;
	char out[128];
	glob_t g;
	pid_t pid;
	int err;

	pid = ls_test_spawn(sleep_argv, NULL, NULL);
	ck_assert_int_gt(pid, 0);
	usleep(200 * 1000); /* until exec has replaced the forked test process */
	err = ls_py_resolve(pid, &t);
	ls_test_kill(pid);
	ck_assert_int_eq(err, -ENOEXEC);
	ck_assert_msg(strstr(t.error, "not a Python process"), "%s", t.error);

	ck_assert_int_eq(ls_py_resolve(999999999, &t), -ESRCH);
	ck_assert_msg(strstr(t.error, "no such process"), "%s", t.error);

	if (glob(PYENV "/3.7.*/bin/python3.7", 0, NULL, &g)) {
		skip("Python 3.7", "no pyenv 3.7 to run");
		return;
	}
	pid = start_python(g.gl_pathv[0], out, sizeof(out));
	globfree(&g);
	err = ls_py_resolve(pid, &t);
	ls_test_kill(pid);
	unlink(out);
	ck_assert_int_eq(err, -ENOTSUP);
	ck_assert_msg(strstr(t.error, "unsupported Python 3.7"), "%s", t.error);
	fprintf(stderr, "elf: %s\n", t.error);
}
END_TEST

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The file's bytes at context_run's offset, through host_path, are the
 * process's bytes at bias + vaddr. */
static void check_bytes(pid_t pid, const struct ls_py_target *t)
{
	uint8_t a[32], b[32];
	char mem[64];
	int fd;

	fd = open(t->host_path, O_RDONLY);
	ck_assert_msg(fd >= 0, "open %s: %s", t->host_path, strerror(errno));
	ck_assert_int_eq(pread(fd, a, sizeof(a), (off_t)t->context_run.offset), (ssize_t)sizeof(a));
	close(fd);
	snprintf(mem, sizeof(mem), "/proc/%d/mem", (int)pid);
	fd = open(mem, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, b, sizeof(b), (off_t)(t->bias + t->context_run.vaddr)),
			 (ssize_t)sizeof(b));
	close(fd);
	ck_assert_int_eq(memcmp(a, b, sizeof(a)), 0);
}

/* A chrooted target (issue #16 item 7): Debian's python3.11 in a root of
 * /usr bind-mounted (private mount namespace) and the usr-merge links.
 * The host path of its executable, joined to /proc/PID/root, names
 * nothing; the resolver opens the mapping itself. */
START_TEST(test_chrooted_target_resolves)
{
	char root[] = "/tmp/loopscope-test-chroot.XXXXXX", path[PATH_MAX + 64], usr[PATH_MAX];
	char script[PATH_MAX + 200], out[128], line[64];
	char *argv[] = { "/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh",
			 "-c", script, NULL };
	static const char *const links[] = { "bin", "lib", "lib64" };
	struct ls_py_target t;
	pid_t pid;
	int err;

	if (access(DEBIAN_PY, X_OK)) {
		skip(DEBIAN_PY, "not installed");
		return;
	}
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(usr, sizeof(usr), "%s/usr", root);
	ck_assert_int_eq(mkdir(usr, 0755), 0);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		char target[16];

		snprintf(target, sizeof(target), "usr/%s", links[i]);
		snprintf(path, sizeof(path), "%s/%s", root, links[i]);
		ck_assert_int_eq(symlink(target, path), 0);
	}
	snprintf(script, sizeof(script), "mount --bind /usr %s && exec chroot %s " DEBIAN_PY
		 " -c \"import time; print('ready', flush=True); time.sleep(30)\"", usr, root);
	ls_test_tmp(out, sizeof(out), "elf-chroot");
	pid = ls_test_spawn(argv, out, NULL);
	ck_assert_int_gt(pid, 0);
	if (ls_test_wait_line(out, "ready", 15000, line, sizeof(line))) {
		ls_test_kill(pid);
		ck_abort_msg("chrooted %s did not start", DEBIAN_PY);
	}
	err = ls_py_resolve(pid, &t);
	if (err) {
		ls_test_kill(pid);
		ck_abort_msg("chrooted: %d %s", err, t.error);
	}
	/* What the old join opened: the host path under the target's root. */
	snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, t.path);
	ck_assert_msg(access(path, F_OK) != 0, "%s exists", path);
	ck_assert_msg(!strncmp(t.path, root, strlen(root)), "path %s", t.path);
	check_bytes(pid, &t);
	ck_assert_int_eq(t.minor, 11);
	fprintf(stderr, "elf: chrooted pid %d: %s opened as %s; %s does not exist\n", (int)pid,
		t.path, t.host_path, path);
	ls_test_kill(pid);
	unlink(out);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", root, links[i]);
		unlink(path);
	}
	rmdir(usr);
	rmdir(root);
}
END_TEST

/* A FIFO is refused at once, never read (a read would block): as a file,
 * and where a running target's executable was (issue #12 item 1), where
 * the mapping itself is read instead. */
START_TEST(test_fifo_refused_without_blocking)
{
	char dir[] = "/tmp/loopscope-test-fifo.XXXXXX", fifo[64], copy[64], out[128], cmd[256];
	char line[64];
	char *argv[] = { copy, "-c", "import time; print('ready', flush=True); time.sleep(30)", NULL };
	struct ls_py_target t;
	struct ls_elf *e = NULL;
	struct timespec t0;
	pid_t pid;
	int err;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(ls_elf_open(fifo, &e), -EINVAL);
	ck_assert_int_eq(ls_py_resolve_file(fifo, &t), -EINVAL);
	ck_assert_msg(strstr(t.error, "not a regular file"), "%s", t.error);
	ck_assert_int_eq(ls_elf_open(dir, &e), -EINVAL);
	ck_assert_int_lt(elapsed_ms(&t0), 100);
	unlink(fifo);

	if (access(DEBIAN_PY, X_OK)) {
		skip(DEBIAN_PY, "not installed");
		rmdir(dir);
		return;
	}
	snprintf(copy, sizeof(copy), "%s/python3.11", dir);
	snprintf(cmd, sizeof(cmd), "cp " DEBIAN_PY " %s", copy);
	ck_assert_int_eq(system(cmd), 0);
	ls_test_tmp(out, sizeof(out), "elf-fifo");
	pid = ls_test_spawn(argv, out, NULL);
	ck_assert_int_gt(pid, 0);
	if (ls_test_wait_line(out, "ready", 15000, line, sizeof(line))) {
		ls_test_kill(pid);
		ck_abort_msg("%s did not start", copy);
	}
	unlink(copy);
	ck_assert_int_eq(mkfifo(copy, 0700), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = ls_py_resolve(pid, &t);
	ck_assert_msg(err == 0, "%d %s", err, t.error);
	ck_assert_int_lt(elapsed_ms(&t0), 1000);
	check_bytes(pid, &t);
	fprintf(stderr, "elf: pid %d: %s replaced by a FIFO: resolved through %s\n", (int)pid, copy,
		t.host_path);
	ls_test_kill(pid);
	unlink(copy);
	unlink(out);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("elf");
	TCase *tc = tcase_create("elf");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tp_methods_route_equals_symtab_on_pyenv);
	tcase_add_test(tc, test_debian_stripped_tp_methods_route_has_fde);
	tcase_add_test(tc, test_version_from_rodata);
	tcase_add_test(tc, test_live_resolve_matches_memory);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_chrooted_target_resolves);
	tcase_add_test(tc, test_fifo_refused_without_blocking);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_VERBOSE);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
