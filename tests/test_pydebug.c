// SPDX-License-Identifier: MIT
/*
 * CPython 3.13+ layouts from the interpreter's own _Py_DebugOffsets
 * (agent/pydebug.c, agent/pylayout.c): the real images of the pyenv 3.13
 * libpython and, when the Debian sid root is there ($LS_SID_ROOT, default
 * /var/cache/loopscope/sid-root), of its python3.14 and python3.15; the 3.13
 * table cross-check; and forged images and files, each refused in one line
 * without a number reaching the result.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loopscope/pydebug.h"
#include "loopscope/pytarget.h"

/* Positions in the 3.13 image (pydebug.c's layout row, from offsetof()
 * against 3.13.0's internal/pycore_runtime.h). */
#define P13_FREE_THREADED 16
#define P13_RUNTIME_SIZE 24
#define P13_TS_THREAD_ID 192
#define P13_FR_OWNER 264
#define P13_CO_FILENAME 280
#define P13_OB_TYPE 360

static int lib313(char *out, size_t len)
{
	glob_t g;
	int r = -1;

	if (glob("/root/.pyenv/versions/3.13*/lib/libpython3.13.so.1.0", 0, NULL, &g))
		return -1;
	if (g.gl_pathc) {
		snprintf(out, len, "%s", g.gl_pathv[g.gl_pathc - 1]);
		r = 0;
	}
	globfree(&g);
	return r;
}

static const char *sid_root(void)
{
	const char *r = getenv("LS_SID_ROOT");

	return r && *r ? r : "/var/cache/loopscope/sid-root";
}

/* The .PyRuntime image of path: LS_PYDEBUG_READ bytes, its section's size
 * and the section's file offset. */
static void image_of(const char *path, uint8_t *img, uint64_t *size, uint64_t *file_off)
{
	struct ls_elf *e;
	struct ls_elf_section s;

	ck_assert_int_eq(ls_elf_open(path, &e), 0);
	ck_assert_int_eq(ls_elf_section(e, ".PyRuntime", &s), 0);
	ck_assert_int_eq(ls_elf_read(e, s.addr, img, LS_PYDEBUG_READ), 0);
	*size = s.size;
	if (file_off)
		*file_off = s.offset;
	ls_elf_close(e);
}

static void put_u64(uint8_t *img, unsigned pos, uint64_t v)
{
	memcpy(img + pos, &v, sizeof(v));
}

START_TEST(test_313_image_matches_table)
{
	char path[512], what[160];
	uint8_t img[LS_PYDEBUG_READ];
	uint64_t size;
	struct ls_py_offsets off;
	struct ls_pydebug_result res;
	const struct ls_py_offsets *row = ls_py_offsets_for(3, 13);
	struct ls_py_target t;
	char why[200];

	if (lib313(path, sizeof(path))) {
		fprintf(stderr, "pydebug: no pyenv 3.13: skipped\n");
		return;
	}
	image_of(path, img, &size, NULL);
	ck_assert_int_eq(ls_pydebug_parse(img, sizeof(img), size, 3, 13, row, &off, &res, why,
					  sizeof(why)), 0);
	ck_assert(!res.free_threaded);
	ck_assert(!res.untested);
	ck_assert_uint_eq(res.version_hex >> 16, 0x030d);
	ck_assert(off.flags & LS_PYOFF_FROM_TARGET);
	ck_assert(!(off.flags & LS_PYOFF_STACKREF));
	/* Every field the debug offsets give agrees with the generated row. */
	ck_assert_msg(ls_pydebug_crosscheck(&off, row, what, sizeof(what)) == 0, "%s", what);
	/* ... and the rest is the row's. */
	ck_assert_uint_eq(off.task_coro, row->task_coro);
	ck_assert_uint_eq(off.func_qualname, row->func_qualname);
	ck_assert_uint_eq(off.cr_iframe, row->cr_iframe);

	/* Resolution of the file takes the same, with nothing to say. */
	ck_assert_int_eq(ls_py_resolve_file(path, &t), 0);
	ck_assert(t.off.flags & LS_PYOFF_FROM_TARGET);
	ck_assert_int_eq(ls_pydebug_crosscheck(&t.off, row, what, sizeof(what)), 0);
	ck_assert_msg(t.note[0] == '\0', "%s", t.note);
	/* A 3.13 row with one field changed: reported, and the interpreter's wins. */
	{
		struct ls_py_offsets bad = *row;

		bad.tstate_thread_id += 8;
		ck_assert_int_eq(ls_pydebug_crosscheck(&off, &bad, what, sizeof(what)), 1);
		ck_assert_msg(strstr(what, "tstate_thread_id") && strstr(what, "in the table"), "%s",
			      what);
	}
}
END_TEST

/* A forged image must be refused with one line, and *out never written. */
static void refused(const uint8_t *img, size_t len, uint64_t size, int minor, int want_err,
		    const char *needle)
{
	struct ls_py_offsets off, before;
	struct ls_pydebug_result res;
	char why[200];
	int err;

	memset(&off, 0xA5, sizeof(off));
	before = off;
	err = ls_pydebug_parse(img, len, size, 3, minor, minor == 13 ? ls_py_offsets_for(3, 13) :
			       NULL, &off, &res, why, sizeof(why));
	ck_assert_msg(err == want_err, "%d, wanted %d (%s)", err, want_err, why);
	ck_assert_msg(!memcmp(&off, &before, sizeof(off)), "a refused image wrote offsets");
	if (want_err == -EPROTO) {
		ck_assert_msg(why[0] && !strchr(why, '\n'), "not one line: '%s'", why);
		ck_assert_msg(strstr(why, needle), "'%s' does not say '%s'", why, needle);
	}
}

START_TEST(test_forged_images_refused)
{
	char path[512];
	uint8_t img[LS_PYDEBUG_READ], bad[LS_PYDEBUG_READ];
	uint64_t size;

	if (lib313(path, sizeof(path))) {
		fprintf(stderr, "pydebug: no pyenv 3.13: skipped\n");
		return;
	}
	image_of(path, img, &size, NULL);
#define FORGE(stmt, minor, err, needle)                                                     \
	do {                                                                                 \
		memcpy(bad, img, sizeof(bad));                                               \
		stmt;                                                                        \
		refused(bad, sizeof(bad), size, minor, err, needle);                         \
	} while (0)
	FORGE(memcpy(bad, "ydebugpy", 8), 13, -EPROTO, "cookie");
	FORGE((void)0, 12, -EINVAL, "");                       /* no debug offsets before 3.13 */
	FORGE((void)0, 14, -EPROTO, "version");                /* a 3.13 image in a "3.14" file */
	FORGE(put_u64(bad, 8, 0x030c00f0), 13, -EPROTO, "version");
	FORGE(put_u64(bad, P13_FREE_THREADED, 1), 13, -ENOTSUP, "");
	FORGE(put_u64(bad, P13_FREE_THREADED, 7), 13, -EPROTO, "free_threaded");
	FORGE(put_u64(bad, P13_RUNTIME_SIZE, 0), 13, -EPROTO, "runtime_state.size");
	FORGE(put_u64(bad, P13_RUNTIME_SIZE, size + 8), 13, -EPROTO, "larger than its section");
	FORGE(put_u64(bad, P13_TS_THREAD_ID, 70000), 13, -EPROTO, "thread_state.thread_id 70000");
	FORGE(put_u64(bad, P13_TS_THREAD_ID, 0xffffffffffffff00ull), 13, -EPROTO,
	      "thread_state.thread_id");
	FORGE(put_u64(bad, P13_TS_THREAD_ID, 153), 13, -EPROTO, "misaligned");
	FORGE(put_u64(bad, P13_FR_OWNER, 4096), 13, -EPROTO, "interpreter_frame.owner");
	FORGE(put_u64(bad, P13_CO_FILENAME, 60000), 13, -EPROTO, "code_object.filename");
	FORGE(put_u64(bad, P13_OB_TYPE, 0), 13, -EPROTO, "ob_type");
#undef FORGE
	/* Too short for the version's layout. */
	refused(img, 100, size, 13, -EPROTO, "bytes");
}
END_TEST

/* A copy of the 3.13 libpython with thread_state.thread_id out of bounds in
 * its .PyRuntime section: resolution refuses it in one line. */
START_TEST(test_forged_file_refused)
{
	char path[512], dir[] = "/tmp/ls-pydebug.XXXXXX", copy[600], cmd[1400];
	uint8_t img[LS_PYDEBUG_READ];
	uint64_t size, file_off, v = 70000;
	struct ls_py_target t;
	int fd;

	if (lib313(path, sizeof(path))) {
		fprintf(stderr, "pydebug: no pyenv 3.13: skipped\n");
		return;
	}
	image_of(path, img, &size, &file_off);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(copy, sizeof(copy), "%s/libpython3.13.so.1.0", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, copy);
	ck_assert_int_eq(system(cmd), 0);
	fd = open(copy, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &v, sizeof(v), (off_t)(file_off + P13_TS_THREAD_ID)),
			 sizeof(v));
	close(fd);
	ck_assert_int_eq(ls_py_resolve_file(copy, &t), -ENOTSUP);
	ck_assert_msg(strstr(t.error, "_Py_DebugOffsets in ") && strstr(t.error, copy) &&
		      strstr(t.error, "rejected: thread_state.thread_id 70000 outside "
				      "PyThreadState") && !strchr(t.error, '\n'),
		      "%s", t.error);
	unlink(copy);
	rmdir(dir);
}
END_TEST

/* 3.14 and 3.15 of the sid root: their images parse, with the layouts
 * checked by hand (offsetof() against their headers). */
START_TEST(test_sid_images)
{
	static const struct {
		int minor;
		uint16_t thread_id, current_frame, frame_owner, co_code_adaptive, interp_head;
	} want[] = {
		{ 14, 152, 72, 74, 208, 808 },
		{ 15, 0, 0, 74, 208, 936 }, /* thread state moved: not pinned */
	};
	char path[600], why[200];

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		uint8_t img[LS_PYDEBUG_READ];
		uint64_t size;
		struct ls_py_offsets off;
		struct ls_pydebug_result res;
		struct ls_py_target t;

		snprintf(path, sizeof(path), "%s/usr/bin/python3.%d", sid_root(), want[i].minor);
		if (access(path, R_OK)) {
			fprintf(stderr, "pydebug: no %s: skipped\n", path);
			continue;
		}
		image_of(path, img, &size, NULL);
		ck_assert_int_eq(ls_pydebug_parse(img, sizeof(img), size, 3, want[i].minor, NULL, &off,
						  &res, why, sizeof(why)), 0);
		ck_assert(off.flags & LS_PYOFF_STACKREF);
		ck_assert_uint_eq(off.frame_owner, want[i].frame_owner);
		ck_assert_uint_eq(off.co_code_adaptive, want[i].co_code_adaptive);
		ck_assert_uint_eq(off.runtime_interpreters_head, want[i].interp_head);
		if (want[i].thread_id) {
			ck_assert_uint_eq(off.tstate_thread_id, want[i].thread_id);
			ck_assert_uint_eq(off.tstate_frame, want[i].current_frame);
		}
		ck_assert_uint_eq(off.cr_iframe, 72);
		ck_assert_uint_eq(off.cr_qualname, 32);
		ck_assert_uint_eq(off.compact_data, 56);
		/* A newer minor version with the same image: parsed with the
		 * newest layout, flagged untested (its version field says
		 * 3.%d, so it is refused for "3.16": the image must match). */
		ck_assert_int_eq(ls_pydebug_parse(img, sizeof(img), size, 3, 16, NULL, &off, &res,
						  why, sizeof(why)), -EPROTO);
		ck_assert(res.untested);
		/* The file resolves, the Task from .AsyncioDebug when built in. */
		ck_assert_int_eq(ls_py_resolve_file(path, &t), 0);
		ck_assert_msg(t.note[0] == '\0', "%s", t.note);
		ck_assert_uint_eq(t.off.task_coro, 128);
		ck_assert_uint_eq(t.off.task_size, 168);
		ck_assert(t.context_run.vaddr && t.runtime.vaddr);
	}
}
END_TEST

/* A newer minor version whose debug offsets pass the checks is tried, with
 * one line saying so: python3.15 copied as "python3.16", its image's
 * version set to 3.16. */
START_TEST(test_newer_minor_tried)
{
	char path[600], dir[] = "/tmp/ls-pydebug16.XXXXXX", copy[600], cmd[1400];
	uint64_t v = 0x031000a0, size, file_off;
	uint8_t img[LS_PYDEBUG_READ];
	struct ls_py_target t;
	int fd;

	snprintf(path, sizeof(path), "%s/usr/bin/python3.15", sid_root());
	if (access(path, R_OK)) {
		fprintf(stderr, "pydebug: no %s: skipped\n", path);
		return;
	}
	image_of(path, img, &size, &file_off);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(copy, sizeof(copy), "%s/python3.16", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", path, copy);
	ck_assert_int_eq(system(cmd), 0);
	fd = open(copy, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &v, sizeof(v), (off_t)(file_off + 8)), sizeof(v));
	close(fd);
	ck_assert_msg(ls_py_resolve_file(copy, &t) == 0, "%s", t.error);
	ck_assert_int_eq(t.minor, 16);
	ck_assert_msg(!strcmp(t.note, "CPython 3.16 is newer than the newest tested (3.15); "
			      "trying its debug offsets"), "%s", t.note);
	ck_assert(t.off.flags & LS_PYOFF_FROM_TARGET);
	unlink(copy);
	rmdir(dir);
}
END_TEST

START_TEST(test_asyncio_image)
{
	uint64_t a[13] = { 168, 136, 96, 108, 109, 128, 152, 225864, 10880, 936, 864, 872, 880 };
	struct ls_py_offsets off = { 0 }, before;
	char why[160];

	ck_assert_int_eq(ls_pydebug_asyncio(a, sizeof(a), &off, why, sizeof(why)), 0);
	ck_assert_uint_eq(off.task_size, 168);
	ck_assert_uint_eq(off.task_coro, 128);
	ck_assert_uint_eq(off.task_name, 136);
	before = off;
	a[5] = 168; /* task_coro at the end of the Task */
	ck_assert_int_eq(ls_pydebug_asyncio(a, sizeof(a), &off, why, sizeof(why)), -EPROTO);
	ck_assert_msg(strstr(why, "task_coro"), "%s", why);
	a[5] = 128;
	a[0] = 1u << 20;
	ck_assert_int_eq(ls_pydebug_asyncio(a, sizeof(a), &off, why, sizeof(why)), -EPROTO);
	ck_assert_int_eq(ls_pydebug_asyncio(a, 50, &off, why, sizeof(why)), -EPROTO);
	ck_assert(!memcmp(&off, &before, sizeof(off)));
}
END_TEST

START_TEST(test_type_checks)
{
	struct ls_py_offsets off;
	struct ls_pydebug_types ty = { .function = 152, .method = 48, .cfunction = 56,
				       .coro = 152, .code = 208 };
	char why[160], path[600];
	uint8_t img[LS_PYDEBUG_READ];
	uint64_t size;
	struct ls_pydebug_result res;

	snprintf(path, sizeof(path), "%s/usr/bin/python3.14", sid_root());
	if (access(path, R_OK)) {
		fprintf(stderr, "pydebug: no %s: skipped\n", path);
		return;
	}
	image_of(path, img, &size, NULL);
	ck_assert_int_eq(ls_pydebug_parse(img, sizeof(img), size, 3, 14, NULL, &off, &res, why,
					  sizeof(why)), 0);
	ck_assert_int_eq(ls_pydebug_check_types(&off, &ty, why, sizeof(why)), 0);
	ty.method = 24; /* im_self at 24 does not fit */
	ck_assert_int_eq(ls_pydebug_check_types(&off, &ty, why, sizeof(why)), -EPROTO);
	ck_assert_msg(strstr(why, "im_self 24 outside the target's method"), "%s", why);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pydebug");
	TCase *tc = tcase_create("pydebug");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_313_image_matches_table);
	tcase_add_test(tc, test_forged_images_refused);
	tcase_add_test(tc, test_forged_file_refused);
	tcase_add_test(tc, test_sid_images);
	tcase_add_test(tc, test_newer_minor_tried);
	tcase_add_test(tc, test_asyncio_image);
	tcase_add_test(tc, test_type_checks);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
