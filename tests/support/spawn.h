/* SPDX-License-Identifier: MIT */
/* Integration-test fixtures: start targets and the loopscope CLI, wait for
 * them with timeouts, read their JSON-lines output. Every process started
 * here dies with the test (PR_SET_PDEATHSIG) and is reaped by ls_test_kill. */
#ifndef LS_TEST_SPAWN_H
#define LS_TEST_SPAWN_H

#include <stddef.h>
#include <sys/types.h>
#include <json-c/json.h>

/* Start argv[0] (a path) with stdout and stderr written to the given files
 * (NULL: /dev/null). Returns the child's pid, or -errno. */
pid_t ls_test_spawn(char *const argv[], const char *out_path, const char *err_path);

/* Start a target that prints "pid N" as its first line (refloop, the
 * example apps): stdout to a fresh temporary file (path into out, len
 * bytes), stderr to /dev/null. Returns the pid of the process started (to
 * wait for and kill) and writes the target's pid on this host in decimal
 * into spid (to attach to): the same, except when argv[0] is a container
 * launcher (see ls_test_host_pid). Fails the running test when the line
 * does not come within timeout_ms. */
pid_t ls_test_start_target(char *const argv[], char *out, size_t len, char *spid,
			   size_t spid_len, int timeout_ms);

/* The pid on this host of the target that pid started: pid itself, or,
 * when pid put it into a new pid namespace (scripts/sid-python container:
 * the target is pid 1 there, and pid waits for it), that namespace's init
 * among pid's descendants: one NSpid level below pid's, innermost pid 1
 * (/proc/PID/status, proc(5)). Call it once the target is running (it has
 * printed something). Returns pid when there is no such descendant. */
pid_t ls_test_host_pid(pid_t pid);

/* Wait up to timeout_ms for the file at path to hold a line starting with
 * prefix; copy that line (without the newline) into line. 0 or -ETIMEDOUT. */
int ls_test_wait_line(const char *path, const char *prefix, int timeout_ms, char *line,
		      size_t len);

/* The same for a line containing needle anywhere. */
int ls_test_wait_substr(const char *path, const char *needle, int timeout_ms, char *line,
			size_t len);

/* Wait up to timeout_ms for pid to exit; *status is its exit code (or
 * 128+signal). 0, or -ETIMEDOUT (the child is then killed and reaped). */
int ls_test_wait(pid_t pid, int timeout_ms, int *status);

/* Time thread tid of process pid has spent runnable but waiting for a CPU
 * since it started, ns: the second field of /proc/PID/task/TID/schedstat
 * (the scheduler's run_delay, Documentation/scheduler/sched-stats.rst).
 * tid 0: the sum over the threads of pid that exist now (a thread that
 * has exited no longer counts: to follow a process to its exit, use
 * struct ls_test_runq). A zombie still reads. 0 when nothing reads. For
 * tests whose truth is skewed by starvation (a loaded machine): the bound
 * widens by what the thread waited. */
uint64_t ls_test_runnable_ns(pid_t pid, pid_t tid);

/* The run_delay growth of every thread of a process from a start point,
 * threads that exit on the way included: each thread's last value read
 * (/proc/PID/task/TID/schedstat, as above) minus its value at the start (0
 * for a thread born later). At most LS_TEST_RUNQ_MAX threads followed;
 * later ones are not counted. */
#define LS_TEST_RUNQ_MAX 128
struct ls_test_runq {
	pid_t pid;
	int n;
	pid_t tid[LS_TEST_RUNQ_MAX];
	uint64_t first_ns[LS_TEST_RUNQ_MAX], last_ns[LS_TEST_RUNQ_MAX];
};

/* Start following pid: read every thread's run_delay now. */
void ls_test_runq_start(struct ls_test_runq *q, pid_t pid);
/* Read every thread of q->pid again (threads gone keep their last value). */
void ls_test_runq_sample(struct ls_test_runq *q);
/* The growth since ls_test_runq_start, ns, summed over threads. */
uint64_t ls_test_runq_waited_ns(const struct ls_test_runq *q);

/* Wait up to timeout_ms for pid to exit, without reaping it (waitid with
 * WNOWAIT), so that its /proc files still read; reap it with ls_test_wait
 * then. q (may be NULL), started on pid, is sampled every 5 ms on the way,
 * so that a thread that exits before its process still counts. 0, or
 * -ETIMEDOUT (then killed and reaped). */
int ls_test_wait_unreaped(pid_t pid, int timeout_ms, struct ls_test_runq *q);

/* SIGKILL pid and reap it; pid <= 0 is ignored. */
void ls_test_kill(pid_t pid);

/* Run argv to completion (at most timeout_ms), capturing stdout and stderr
 * into the files; returns its exit code, 128+signal, or -ETIMEDOUT. */
int ls_test_run(char *const argv[], const char *out_path, const char *err_path, int timeout_ms);

/* A command run to completion with its output captured: the files, and
 * their text once it ended. log is a spare temporary path for the test
 * ("" when unused); ls_test_out_free removes every file. */
struct ls_test_out {
	char out[128], err[128], log[128];
	char *stdout_text, *stderr_text;
};

/* ls_test_run into fresh temporary files, then read them into o. Returns
 * the exit code as ls_test_run. */
int ls_test_run_capture(struct ls_test_out *o, char *const argv[], int timeout_ms);
void ls_test_out_free(struct ls_test_out *o);

/* Run the n commands argv[0..n-1] at the same time, each captured into
 * o[i] as ls_test_run_capture does, and wait up to timeout_ms for each:
 * rc[i] is its exit code (128 + signal when killed) or -ETIMEDOUT (it is
 * killed then). For checks that observe the same target and time: one
 * wait instead of n. */
void ls_test_run_capture_n(int n, struct ls_test_out *o, char *const *const argv[], int *rc,
			   int timeout_ms);

/* The last JSON object in a JSON-lines file whose "type" equals type; NULL
 * when there is none. The caller json_object_put()s it. */
json_object *ls_test_json_last(const char *path, const char *type);

/* Whole file as a NUL-terminated string (malloc'd), NULL on error. */
char *ls_test_slurp(const char *path);

/* A fresh temporary path /tmp/loopscope-test-TAG.XXXXXX (file created). */
void ls_test_tmp(char *buf, size_t len, const char *tag);

/* BPF links held open by process pid (fds whose /proc/PID/fdinfo has a
 * link_id), -1 when it cannot be read: proves a running tool attached. */
int ls_test_bpf_links_of(pid_t pid);

/* What could outlive a process that attached BPF programs: pinned objects
 * under /sys/fs/bpf and tracefs-created probe events (uprobe_events,
 * kprobe_events), as one malloc'd string to compare before and after. The
 * kernel drops unpinned links by itself when their fds close. */
char *ls_test_bpf_leftovers(void);

/* Helpers for json-c lookups; 0 / NULL when the key is missing. */
uint64_t ls_test_ju64(json_object *o, const char *key);
json_object *ls_test_jget(json_object *o, const char *key);

#endif
