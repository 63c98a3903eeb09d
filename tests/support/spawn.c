// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <check.h>

#include "spawn.h"

static void redirect(const char *path, int fd)
{
	int f = open(path ? path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (f >= 0) {
		dup2(f, fd);
		close(f);
	}
}

pid_t ls_test_spawn(char *const argv[], const char *out_path, const char *err_path)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		redirect(out_path, 1);
		redirect(err_path, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void nap_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int wait_match(const char *path, const char *what, bool anywhere, int timeout_ms,
		      char *line, size_t len)
{
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		FILE *f = fopen(path, "r");
		char buf[4096];

		if (f) {
			while (fgets(buf, sizeof(buf), f)) {
				bool hit = anywhere ? strstr(buf, what) != NULL :
						      !strncmp(buf, what, strlen(what));

				if (hit && strchr(buf, '\n')) {
					buf[strcspn(buf, "\n")] = '\0';
					snprintf(line, len, "%s", buf);
					fclose(f);
					return 0;
				}
			}
			fclose(f);
		}
		nap_ms(10);
	}
	return -ETIMEDOUT;
}

int ls_test_wait_line(const char *path, const char *prefix, int timeout_ms, char *line,
		      size_t len)
{
	return wait_match(path, prefix, false, timeout_ms, line, len);
}

int ls_test_wait_substr(const char *path, const char *needle, int timeout_ms, char *line,
			size_t len)
{
	return wait_match(path, needle, true, timeout_ms, line, len);
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int ls_test_wait(pid_t pid, int timeout_ms, int *status)
{
	int st;

	for (int waited = 0; waited <= timeout_ms; waited += 5) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			*status = exit_code(st);
			return 0;
		}
		if (r < 0)
			return -errno;
		nap_ms(5);
	}
	ls_test_kill(pid);
	return -ETIMEDOUT;
}

static uint64_t runnable_of(const char *path)
{
	unsigned long long run = 0, wait = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &run, &wait) != 2)
		wait = 0;
	fclose(f);
	return wait;
}

uint64_t ls_test_runnable_ns(pid_t pid, pid_t tid)
{
	char path[96];
	uint64_t sum = 0;
	DIR *d;
	struct dirent *de;

	if (tid) {
		snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
		return runnable_of(path);
	}
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.20s/schedstat", (int)pid, de->d_name);
		sum += runnable_of(path);
	}
	closedir(d);
	return sum;
}

static void runq_read(struct ls_test_runq *q, int start)
{
	char path[96];
	DIR *d;
	struct dirent *de;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)q->pid);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		pid_t tid;
		uint64_t v;
		int i;

		if (de->d_name[0] == '.')
			continue;
		tid = (pid_t)atoi(de->d_name);
		snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)q->pid, (int)tid);
		v = runnable_of(path);
		for (i = 0; i < q->n && q->tid[i] != tid; i++)
			;
		if (i == q->n) {
			if (q->n == LS_TEST_RUNQ_MAX)
				continue;
			q->n++;
			q->tid[i] = tid;
			q->first_ns[i] = start ? v : 0;
		}
		if (v > q->last_ns[i] || start)
			q->last_ns[i] = v;
	}
	closedir(d);
}

void ls_test_runq_start(struct ls_test_runq *q, pid_t pid)
{
	memset(q, 0, sizeof(*q));
	q->pid = pid;
	runq_read(q, 1);
}

void ls_test_runq_sample(struct ls_test_runq *q)
{
	runq_read(q, 0);
}

uint64_t ls_test_runq_waited_ns(const struct ls_test_runq *q)
{
	uint64_t sum = 0;

	for (int i = 0; i < q->n; i++)
		if (q->last_ns[i] > q->first_ns[i])
			sum += q->last_ns[i] - q->first_ns[i];
	return sum;
}

int ls_test_wait_unreaped(pid_t pid, int timeout_ms, struct ls_test_runq *q)
{
	for (int waited = 0; waited <= timeout_ms; waited += 5) {
		siginfo_t si;

		if (q)
			ls_test_runq_sample(q);
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
			return -errno;
		if (si.si_pid == pid) {
			if (q)
				ls_test_runq_sample(q);
			return 0;
		}
		nap_ms(5);
	}
	ls_test_kill(pid);
	return -ETIMEDOUT;
}

void ls_test_kill(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int ls_test_run(char *const argv[], const char *out_path, const char *err_path, int timeout_ms)
{
	pid_t pid = ls_test_spawn(argv, out_path, err_path);
	int status, err;

	if (pid < 0)
		return pid;
	err = ls_test_wait(pid, timeout_ms, &status);
	return err ? err : status;
}

json_object *ls_test_json_last(const char *path, const char *type)
{
	json_object *found = NULL;
	char *line = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	while (getline(&line, &cap, f) > 0) {
		json_object *o = json_tokener_parse(line), *t;

		if (o && json_object_object_get_ex(o, "type", &t) &&
		    !strcmp(json_object_get_string(t), type)) {
			json_object_put(found);
			found = o;
		} else {
			json_object_put(o);
		}
	}
	free(line);
	fclose(f);
	return found;
}

char *ls_test_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf) {
		n = (long)fread(buf, 1, (size_t)n, f);
		buf[n] = '\0';
	}
	fclose(f);
	return buf;
}

void ls_test_tmp(char *buf, size_t len, const char *tag)
{
	int fd;

	snprintf(buf, len, "/tmp/loopscope-test-%s.XXXXXX", tag);
	fd = mkstemp(buf);
	if (fd >= 0)
		close(fd);
}

json_object *ls_test_jget(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

uint64_t ls_test_ju64(json_object *o, const char *key)
{
	json_object *v = ls_test_jget(o, key);

	return v ? json_object_get_uint64(v) : 0;
}

int ls_test_bpf_links_of(pid_t pid)
{
	char dir[64], path[320], line[256];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", (int)pid);
	d = opendir(dir);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "link_id:", 8)) {
				n++;
				break;
			}
		fclose(f);
	}
	closedir(d);
	return n;
}

char *ls_test_bpf_leftovers(void)
{
	static const char *files[] = { "/sys/kernel/tracing/uprobe_events",
				       "/sys/kernel/tracing/kprobe_events" };
	size_t cap = 4096, len = 0;
	char *out = calloc(1, cap);
	struct dirent *e;
	DIR *d;

	for (size_t i = 0; out && i < sizeof(files) / sizeof(files[0]); i++) {
		char *text = ls_test_slurp(files[i]);

		len += (size_t)snprintf(out + len, cap - len, "%s:\n%.1000s", files[i],
					text ? text : "");
		free(text);
	}
	d = opendir("/sys/fs/bpf");
	while (out && d && (e = readdir(d)) && len < cap - 300)
		len += (size_t)snprintf(out + len, cap - len, "pin %s\n", e->d_name);
	if (d)
		closedir(d);
	return out;
}

int ls_test_run_capture(struct ls_test_out *o, char *const argv[], int timeout_ms)
{
	int rc;

	ls_test_tmp(o->out, sizeof(o->out), "out");
	ls_test_tmp(o->err, sizeof(o->err), "err");
	rc = ls_test_run(argv, o->out, o->err, timeout_ms);
	o->stdout_text = ls_test_slurp(o->out);
	o->stderr_text = ls_test_slurp(o->err);
	return rc;
}

void ls_test_run_capture_n(int n, struct ls_test_out *o, char *const *const argv[], int *rc,
			   int timeout_ms)
{
	pid_t pid[16];

	ck_assert_int_le(n, 16);
	for (int i = 0; i < n; i++) {
		ls_test_tmp(o[i].out, sizeof(o[i].out), "out");
		ls_test_tmp(o[i].err, sizeof(o[i].err), "err");
		pid[i] = ls_test_spawn(argv[i], o[i].out, o[i].err);
		ck_assert_int_gt(pid[i], 0);
	}
	for (int i = 0; i < n; i++) {
		int st;

		rc[i] = ls_test_wait(pid[i], timeout_ms, &st) == 0 ? st : -ETIMEDOUT;
		o[i].stdout_text = ls_test_slurp(o[i].out);
		o[i].stderr_text = ls_test_slurp(o[i].err);
	}
}

void ls_test_out_free(struct ls_test_out *o)
{
	free(o->stdout_text);
	free(o->stderr_text);
	o->stdout_text = o->stderr_text = NULL;
	unlink(o->out);
	unlink(o->err);
	if (o->log[0])
		unlink(o->log);
}

pid_t ls_test_start_target(char *const argv[], char *out, size_t len, char *spid,
			   size_t spid_len, int timeout_ms)
{
	char line[64];
	pid_t pid;

	ls_test_tmp(out, len, "target");
	pid = ls_test_spawn(argv, out, NULL);
	ck_assert_int_gt(pid, 0);
	ck_assert_msg(ls_test_wait_line(out, "pid ", timeout_ms, line, sizeof(line)) == 0,
		      "%s did not start", argv[0]);
	snprintf(spid, spid_len, "%d", (int)ls_test_host_pid(pid));
	return pid;
}

/* PPid and NSpid of /proc/PID/status: *depth pid namespaces (outermost
 * first), *inner the pid in the innermost. -1 when it cannot be read. */
static int ns_status(pid_t pid, pid_t *ppid, int *depth, pid_t *inner)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	*depth = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "PPid:", 5)) {
			*ppid = (pid_t)atoi(line + 5);
		} else if (!strncmp(line, "NSpid:", 6)) {
			char *p = line + 6, *end;

			for (long v = strtol(p, &end, 10); end != p; v = strtol(p, &end, 10)) {
				(*depth)++;
				*inner = (pid_t)v;
				p = end;
			}
		}
	}
	fclose(f);
	return *depth ? 0 : -1;
}

/* anc is pid or one of its ancestors. */
static bool descends(pid_t pid, pid_t anc)
{
	for (int hops = 0; pid > 1 && hops < 64; hops++) {
		pid_t ppid = 0, inner;
		int depth;

		if (pid == anc)
			return true;
		if (ns_status(pid, &ppid, &depth, &inner))
			return false;
		pid = ppid;
	}
	return pid == anc;
}

pid_t ls_test_host_pid(pid_t pid)
{
	pid_t ppid, inner, found = pid;
	int depth;
	struct dirent *e;
	DIR *d;

	if (ns_status(pid, &ppid, &depth, &inner))
		return pid;
	d = opendir("/proc");
	while (d && (e = readdir(d))) {
		pid_t q = (pid_t)atoi(e->d_name), qppid, qinner;
		int qdepth;

		if (q <= 0 || q == pid || ns_status(q, &qppid, &qdepth, &qinner))
			continue;
		if (qdepth == depth + 1 && qinner == 1 && descends(qppid, pid)) {
			found = q;
			break;
		}
	}
	if (d)
		closedir(d);
	return found;
}
