/* SPDX-License-Identifier: MIT */
/* Integration-test fixtures for loopscoped: free ports, HTTP GET, starting
 * the daemon and waiting until it is ready, RSS and BPF link counts. */
#ifndef LS_TEST_DAEMON_H
#define LS_TEST_DAEMON_H

#include <stddef.h>
#include <sys/types.h>

/* In test files (which get LS_BINARY_DIR). */
#define LOOPSCOPED LS_BINARY_DIR "/loopscoped"

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int ls_test_free_port(void);

/* GET http://127.0.0.1:port/path (HTTP/1.0). Returns the status code and
 * the body in *body (malloc'd, NUL-terminated), or -errno. */
int ls_test_http_get(int port, const char *path, char **body, int timeout_ms);

/* Percent-encode s for a URL query value into out. */
void ls_test_urlencode(const char *s, char *out, size_t len);

/* Start the loopscoped at bin with the given arguments (args is
 * NULL-terminated) with stderr to err_path, and wait up to timeout_ms for
 * its "loopscoped: ready" line. Fails the running test if it does not
 * come. Returns the daemon's pid. */
pid_t ls_test_start_daemon(const char *bin, char *const args[], const char *err_path, int timeout_ms);

/* Resident set size of pid in kB (VmRSS), -1 when unreadable. */
long ls_test_rss_kb(pid_t pid);

/* BPF links on the whole machine (bpftool link list), -1 on error: for
 * the record only (other test runs on the machine move it). */
int ls_test_bpf_links_total(void);

#endif
