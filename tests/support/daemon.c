// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "spawn.h"

int ls_test_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(fd, (struct sockaddr *)&sa, &l);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int ls_test_http_get(int port, const char *path, char **body, int timeout_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char req[8192], *buf = NULL, *p;
	size_t len = 0;
	int fd, status = -EIO;

	*body = NULL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		status = -errno;
		close(fd);
		return status;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
		goto out;
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		char *grown;
		ssize_t r;

		if (poll(&pf, 1, timeout_ms) <= 0) {
			status = -ETIMEDOUT;
			goto out;
		}
		grown = realloc(buf, len + 65537);
		if (!grown)
			goto out;
		buf = grown;
		r = read(fd, buf + len, 65536);
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (!buf)
		goto out;
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
		status = -EIO;
		goto out;
	}
	p = strstr(buf, "\r\n\r\n");
	*body = strdup(p ? p + 4 : "");
out:
	free(buf);
	close(fd);
	return status;
}

void ls_test_urlencode(const char *s, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s && o + 4 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

pid_t ls_test_start_daemon(const char *bin, char *const args[], const char *err_path, int timeout_ms)
{
	char *argv[64], line[512];
	struct ls_test_runq q;
	struct timespec t0;
	int64_t waited_ms = 0;
	pid_t pid;
	int n = 0, status;

	argv[n++] = (char *)bin;
	for (int i = 0; args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = ls_test_spawn(argv, NULL, err_path);
	ck_assert_int_gt(pid, 0);
	ls_test_runq_start(&q, pid);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timespec t;
		int64_t el;

		if (!ls_test_wait_substr(err_path, "loopscoped: ready", 100, line, sizeof(line)))
			return pid;
		ls_test_runq_sample(&q);
		clock_gettime(CLOCK_MONOTONIC, &t);
		el = (int64_t)(t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		waited_ms = (int64_t)(ls_test_runq_waited_ns(&q) / 1000000);
		if (el > timeout_ms + waited_ms || el > 3 * (int64_t)timeout_ms)
			break;
	}
	char *err = ls_test_slurp(err_path);

	if (ls_test_wait(pid, 0, &status))
		ls_test_kill(pid);
	ck_abort_msg("loopscoped did not get ready in %d ms + %lld ms it waited for a CPU: %s", timeout_ms,
		     (long long)waited_ms, err ? err : "(no stderr)");
	return pid;
}

void ls_test_daemon_init(struct ls_test_daemon *d, const char *tag)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/loopscope-test-%s.XXXXXX", tag);
	ck_assert_msg(mkdtemp(d->dir) != NULL, "mkdtemp %s: %s", d->dir, strerror(errno));
	snprintf(d->sock, sizeof(d->sock), "%s/ctl.sock", d->dir);
	snprintf(d->err, sizeof(d->err), "%s/daemon.err", d->dir);
	snprintf(d->conf, sizeof(d->conf), "%s/loopscoped.conf", d->dir);
}

pid_t ls_test_daemon_start(struct ls_test_daemon *d, char *const args[])
{
	d->pid = ls_test_start_daemon(LOOPSCOPED, args, d->err, 20000);
	return d->pid;
}

static void write_conf(struct ls_test_daemon *d, const char *fmt, va_list ap)
{
	FILE *c = fopen(d->conf, "w");

	ck_assert_msg(c != NULL, "%s: %s", d->conf, strerror(errno));
	vfprintf(c, fmt, ap);
	ck_assert_int_eq(fclose(c), 0);
}

void ls_test_daemon_write_conf(struct ls_test_daemon *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_conf(d, fmt, ap);
	va_end(ap);
}

pid_t ls_test_daemon_start_conf(struct ls_test_daemon *d, const char *fmt, ...)
{
	char *args[] = { "-c", d->conf, NULL };
	va_list ap;

	va_start(ap, fmt);
	write_conf(d, fmt, ap);
	va_end(ap);
	return ls_test_daemon_start(d, args);
}

bool ls_test_daemon_log_has(const struct ls_test_daemon *d, const char *needle, int timeout_ms)
{
	return ls_test_wait_substr(d->err, needle, timeout_ms, NULL, 0) == 0;
}

void ls_test_daemon_stop(struct ls_test_daemon *d)
{
	int st;

	kill(d->pid, SIGTERM);
	ck_assert_msg(ls_test_wait(d->pid, 15000, &st) == 0, "loopscoped did not exit on SIGTERM");
	ck_assert_msg(st == 0, "loopscoped exited %d on SIGTERM", st);
	d->pid = 0;
}

void ls_test_daemon_done(struct ls_test_daemon *d)
{
	char cmd[128];

	if (d->pid > 0)
		ls_test_kill(d->pid);
	d->pid = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
	ck_assert_int_eq(system(cmd), 0);
}

long ls_test_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int ls_test_bpf_links_total(void)
{
	FILE *p = popen("bpftool link list 2>/dev/null", "r");
	char line[1024];
	int n = 0;

	if (!p)
		return -1;
	/* One record per link: its first line starts with "ID: type ..." as
	 * "<id>: <type>" at column 0; detail lines are indented. */
	while (fgets(line, sizeof(line), p))
		if (line[0] >= '0' && line[0] <= '9')
			n++;
	return pclose(p) == 0 ? n : -1;
}
