// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "loopscope/abi/py_offsets.h"
#include "loopscope/pytarget.h"
#include "pythons.h"

/* The sid root's interpreters, and the two ways each one runs. */
static const int sid_minors[] = { 14, 15 };
static const char *const sid_ways[] = { "chroot", "container" };

static void add(struct ls_test_pythons *out, const char *path, const char *name, int minor,
		bool launcher)
{
	int i = out->n++;

	snprintf(out->path[i], sizeof(out->path[0]), "%s", path);
	snprintf(out->name[i], sizeof(out->name[0]), "%s", name);
	out->minor[i] = minor;
	out->launcher[i] = launcher;
}

/* NULL when loopscope fully supports 3.minor, else why not. The sid
 * interpreters (3.14, 3.15) are: layouts from their own _Py_DebugOffsets
 * (agent/python/pydebug.c). */
static const char *not_full(int minor)
{
	return minor >= LS_PY_MIN_MINOR ? NULL : "older than loopscope supports";
}

/* LS_BINARY_DIR/sid-WAY/python3.MINOR -> scripts/sid-python, made on first
 * use (the launcher takes its way and version from the link's name). */
static int sid_link(const char *way, int minor, char *path, size_t len)
{
	char dir[400];

	snprintf(dir, sizeof(dir), "%s/sid-%s", LS_BINARY_DIR, way);
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	snprintf(path, len, "%s/python3.%d", dir, minor);
	if (symlink(LS_SOURCE_DIR "/scripts/sid-python", path) && errno != EEXIST)
		return -errno;
	return access(path, X_OK) ? -errno : 0;
}

static void find_sid(const char *suite, int min_minor, enum ls_test_py_want want,
		     struct ls_test_pythons *out)
{
	const char *env = getenv("LS_TEST_SID"), *root = getenv("LS_SID_ROOT");
	/* On unless LS_TEST_SID=0: the sid interpreters are test interpreters
	 * like the others. */
	bool off = env && !strcmp(env, "0");
	bool every = env && !strcmp(env, "1"), supported = !off && !every;
	char stamp[600], bin[600], path[512], name[64];

	if (!root || !*root)
		root = LS_TEST_SID_ROOT;
	snprintf(stamp, sizeof(stamp), "%s/.loopscope-sid-stamp", root);
	for (size_t m = 0; m < sizeof(sid_minors) / sizeof(sid_minors[0]); m++) {
		for (size_t w = 0; w < sizeof(sid_ways) / sizeof(sid_ways[0]); w++) {
			int minor = sid_minors[m];
			const char *why = NULL;

			snprintf(name, sizeof(name), "sid-%s:python3.%d", sid_ways[w], minor);
			snprintf(bin, sizeof(bin), "%s/usr/bin/python3.%d", root, minor);
			if (off)
				why = "LS_TEST_SID=0";
			else if (minor < min_minor)
				why = "before the suite's oldest";
			else if (supported && want == LS_TEST_PY_FULL)
				why = not_full(minor);
			if (!why && (access(stamp, F_OK) || access(bin, X_OK)))
				why = "no Debian sid root (scripts/pythons.sh builds it)";
			if (!why && getuid() != 0)
				why = "not root (namespaces, chroot)";
			if (!why && out->n == LS_TEST_MAX_PYTHONS)
				why = "LS_TEST_MAX_PYTHONS reached";
			if (!why && sid_link(sid_ways[w], minor, path, sizeof(path)))
				why = "cannot link scripts/sid-python into the build directory";
			if (why) {
				fprintf(stderr, "%s: SKIP %s: %s\n", suite, name, why);
				continue;
			}
			add(out, path, name, minor, true);
		}
	}
}

void ls_test_find_pythons(const char *suite, int min_minor, enum ls_test_py_want want,
			  struct ls_test_pythons *out)
{
	DIR *d;
	struct dirent *e;

	memset(out, 0, sizeof(*out));
	if (access("/usr/bin/python3.11", X_OK) == 0)
		add(out, "/usr/bin/python3.11", "/usr/bin/python3.11", 11, false);
	else
		fprintf(stderr, "%s: SKIP /usr/bin/python3.11: not installed\n", suite);
	d = opendir("/root/.pyenv/versions");
	if (!d)
		fprintf(stderr, "%s: SKIP pyenv: /root/.pyenv/versions not present\n", suite);
	while (d && (e = readdir(d)) && out->n < LS_TEST_MAX_PYTHONS) {
		int major, minor;
		char path[400], name[64];

		if (sscanf(e->d_name, "%d.%d", &major, &minor) != 2)
			continue;
		snprintf(path, sizeof(path), "/root/.pyenv/versions/%.256s/bin/python%d.%d",
			 e->d_name, major, minor);
		if (major == 3 && minor == 7 && access(path, X_OK) == 0)
			snprintf(out->py37, sizeof(out->py37), "%s", path);
		if (major < 3 || (major == 3 && minor < min_minor)) {
			fprintf(stderr, "%s: SKIP pyenv %s: before 3.%d\n", suite, e->d_name, min_minor);
			continue;
		}
		if (want == LS_TEST_PY_FULL && not_full(minor)) {
			fprintf(stderr, "%s: SKIP pyenv %s: %s\n", suite, e->d_name, not_full(minor));
			continue;
		}
		snprintf(name, sizeof(name), "pyenv %.56s", e->d_name);
		if (access(path, X_OK) == 0)
			add(out, path, name, minor, false);
	}
	if (d)
		closedir(d);
	find_sid(suite, min_minor, want, out);
}

void ls_test_find_sid_pythons(const char *suite, int min_minor, enum ls_test_py_want want,
			      struct ls_test_pythons *out)
{
	memset(out, 0, sizeof(*out));
	find_sid(suite, min_minor, want, out);
}

void ls_test_discover_pythons(const char *suite, int min_minor, struct ls_test_pythons *out)
{
	ls_test_find_pythons(suite, min_minor, LS_TEST_PY_FULL, out);
}

int ls_test_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
