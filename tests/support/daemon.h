/* SPDX-License-Identifier: MIT */
/* Integration-test fixtures for loopscoped: free ports, HTTP GET, starting
 * the daemon and waiting until it is ready, RSS and BPF link counts. */
#ifndef LS_TEST_DAEMON_H
#define LS_TEST_DAEMON_H

#include <stdbool.h>
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
 * NULL-terminated) with stderr to err_path, and wait up to timeout_ms,
 * plus what the daemon waited for a CPU meanwhile (schedstat run_delay of
 * its threads; at most 3 * timeout_ms in all), for its "loopscoped: ready"
 * line. Fails the running test if it does not come. Returns the daemon's
 * pid. */
pid_t ls_test_start_daemon(const char *bin, char *const args[], const char *err_path, int timeout_ms);

/* A loopscoped under test and its files, all in its own temp dir: the
 * apps a test starts carry dir in their command line, so rules that match
 * it match nothing else on the machine. */
struct ls_test_daemon {
	char dir[64];	/* /tmp/loopscope-test-TAG.XXXXXX */
	char sock[100];	/* dir/ctl.sock: its control socket */
	char err[128];	/* dir/daemon.err: its stderr */
	char conf[100];	/* dir/loopscoped.conf: its config file, when it has one */
	pid_t pid;	/* 0 when not running */
};

/* Make d's temp dir (tag: a word naming the suite) and its paths; fails
 * the running test when the dir cannot be made. Starts nothing. */
void ls_test_daemon_init(struct ls_test_daemon *d, const char *tag);

/* Start LOOPSCOPED with args (NULL-terminated, the socket and listen
 * options included: nothing is added), stderr to d->err, and wait up to
 * 20 s for it to be ready (ls_test_start_daemon). Returns d->pid. */
pid_t ls_test_daemon_start(struct ls_test_daemon *d, char *const args[]);

/* Write the libconfig text fmt (printf) to d->conf and start LOOPSCOPED
 * with "-c d->conf" as in ls_test_daemon_start. Returns d->pid. */
pid_t ls_test_daemon_start_conf(struct ls_test_daemon *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Rewrite d->conf (for a SIGHUP) with the libconfig text fmt (printf). */
void ls_test_daemon_write_conf(struct ls_test_daemon *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Wait up to timeout_ms for d's stderr to hold needle: true when it does. */
bool ls_test_daemon_log_has(const struct ls_test_daemon *d, const char *needle, int timeout_ms);

/* SIGTERM d and wait up to 15 s for it: fails the running test unless it
 * exits 0 in time. d->pid is 0 after. */
void ls_test_daemon_stop(struct ls_test_daemon *d);

/* Kill d if it still runs and remove its temp dir (fails the running test
 * when rm fails). */
void ls_test_daemon_done(struct ls_test_daemon *d);

/* Resident set size of pid in kB (VmRSS), -1 when unreadable. */
long ls_test_rss_kb(pid_t pid);

/* BPF links on the whole machine (bpftool link list), -1 on error: for
 * the record only (other test runs on the machine move it). */
int ls_test_bpf_links_total(void);

#endif
