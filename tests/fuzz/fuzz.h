/* SPDX-License-Identifier: MIT */
/* Helpers of the libFuzzer harnesses (tests/fuzz/fuzz_*.c). */
#ifndef LOOPSCOPE_FUZZ_H
#define LOOPSCOPE_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A property every input must keep: a report and abort() (libFuzzer saves
 * the input as a crash) when it does not. */
#define FUZZ_CHECK(cond)                                                                 \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__,     \
				#cond);                                                  \
			abort();                                                         \
		}                                                                        \
	} while (0)

/* A private directory for this process's temp files (removed at exit:
 * libFuzzer exits through exit(), -max_total_time included). */
static char fuzz_dir_[64];

static void fuzz_rmdir_(void)
{
	DIR *d = fuzz_dir_[0] ? opendir(fuzz_dir_) : NULL;
	struct dirent *de;
	char p[384];

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", fuzz_dir_, de->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(fuzz_dir_);
}

static inline void fuzz_tmpdir(char *out, size_t len)
{
	snprintf(fuzz_dir_, sizeof(fuzz_dir_), "/tmp/ls-fuzz.XXXXXX");
	if (!mkdtemp(fuzz_dir_)) {
		perror("mkdtemp");
		abort();
	}
	atexit(fuzz_rmdir_);
	snprintf(out, len, "%s", fuzz_dir_);
}

/* Replace the contents of path with data. */
static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0) {
		perror(path);
		abort();
	}
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);

		if (w <= 0) {
			perror(path);
			abort();
		}
		off += (size_t)w;
	}
	close(fd);
}

#endif /* LOOPSCOPE_FUZZ_H */
