/* SPDX-License-Identifier: MIT */
/* Helpers of the libFuzzer harnesses (tests/fuzz/fuzz_*.c). */
#ifndef LOOPSCOPE_FUZZ_H
#define LOOPSCOPE_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* A private directory for this process's temp files, /tmp/ls-fuzz.PID.
 * libFuzzer ends a -max_total_time run with _Exit (no atexit) and a crash
 * with abort, so each start first removes the directories of processes
 * that are gone; a run through -runs removes its own at exit. */
static char fuzz_dir_[64];

static void fuzz_rm_(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[384];

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(dir);
}

static void fuzz_rmdir_(void)
{
	if (fuzz_dir_[0])
		fuzz_rm_(fuzz_dir_);
}

static inline void fuzz_tmpdir(char *out, size_t len)
{
	DIR *d = opendir("/tmp");
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char p[300];
		int pid;

		if (sscanf(de->d_name, "ls-fuzz.%d", &pid) == 1 && pid > 0 &&
		    kill(pid, 0) && errno == ESRCH) {
			snprintf(p, sizeof(p), "/tmp/%s", de->d_name);
			fuzz_rm_(p);
		}
	}
	if (d)
		closedir(d);
	snprintf(fuzz_dir_, sizeof(fuzz_dir_), "/tmp/ls-fuzz.%d", (int)getpid());
	fuzz_rm_(fuzz_dir_); /* a reused pid's */
	if (mkdir(fuzz_dir_, 0700)) {
		perror(fuzz_dir_);
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
