// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pythons.h"

void ls_test_discover_pythons(const char *suite, int min_minor, struct ls_test_pythons *out)
{
	DIR *d;
	struct dirent *e;

	memset(out, 0, sizeof(*out));
	if (access("/usr/bin/python3.11", X_OK) == 0)
		snprintf(out->path[out->n++], sizeof(out->path[0]), "/usr/bin/python3.11");
	else
		fprintf(stderr, "%s: SKIP /usr/bin/python3.11: not installed\n", suite);
	d = opendir("/root/.pyenv/versions");
	if (!d) {
		fprintf(stderr, "%s: SKIP pyenv: /root/.pyenv/versions not present\n", suite);
		return;
	}
	while ((e = readdir(d)) && out->n < LS_TEST_MAX_PYTHONS) {
		int major, minor;
		char path[400];

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
		if (access(path, X_OK) == 0)
			snprintf(out->path[out->n++], sizeof(out->path[0]), "%s", path);
	}
	closedir(d);
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
