// SPDX-License-Identifier: MIT
/*
 * Integration: hostile clients of loopscoped (issue #12 item 3).
 *
 * Slowloris: 200 connections from 127.0.0.1 that each send a request line
 * and then one header line every 2 s, never finishing the request, and
 * reconnect whenever the daemon closes them. Meanwhile a normal scrape of
 * /metrics must be answered (status 200, a full page) within 3 s, five
 * times over ~15 s. Before the fix (64 connections, a 10 s idle timeout
 * that every header line restarted) no scrape was answered.
 *
 * Bounded: 200 sockets, 127.0.0.1 only, at most ~25 s of attack.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopscope/loopscope.h"
#include "daemon.h"
#include "pythons.h"
#include "spawn.h"

#define NSLOW 200
#define SCRAPE_BOUND_MS 3000

struct loris {
	int port;
	int fds[NSLOW];
	volatile int stop;
	unsigned reconnects;
};

static int open_nb(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends what it can without blocking; < 0 when the peer is gone. */
static int trickle(int fd, const char *s)
{
	char buf[256];
	ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN))
		return -1;
	r = send(fd, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)
		return -1;
	return 0;
}

static void *loris_run(void *arg)
{
	struct loris *l = arg;
	uint64_t end = ls_sys_now_ns() + 25000000000ULL;

	for (int i = 0; i < NSLOW; i++) {
		l->fds[i] = open_nb(l->port);
		usleep(1000);
	}
	usleep(200000);
	for (int i = 0; i < NSLOW; i++)
		if (l->fds[i] >= 0)
			trickle(l->fds[i], "GET /metrics HTTP/1.1\r\n");
	while (!l->stop && ls_sys_now_ns() < end) {
		for (int k = 0; k < 20 && !l->stop; k++)
			usleep(100000);
		for (int i = 0; i < NSLOW && !l->stop; i++) {
			if (l->fds[i] >= 0 && !trickle(l->fds[i], "X-Slow: 1\r\n"))
				continue;
			/* Closed by the daemon: come back, as an attacker would. */
			if (l->fds[i] >= 0)
				close(l->fds[i]);
			l->fds[i] = open_nb(l->port);
			l->reconnects++;
			if (l->fds[i] >= 0)
				trickle(l->fds[i], "GET /metrics HTTP/1.1\r\n");
		}
	}
	for (int i = 0; i < NSLOW; i++)
		if (l->fds[i] >= 0)
			close(l->fds[i]);
	return NULL;
}

/* GET /metrics with a total deadline (connect included). Returns the HTTP
 * status, or -ETIMEDOUT / -errno; *len gets the body's length. */
static int scrape(int port, int deadline_ms, size_t *len)
{
	uint64_t end = ls_sys_now_ns() + (uint64_t)deadline_ms * 1000000ULL;
	static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	char *buf = malloc(1 << 22), *p;
	size_t n = 0, sent = 0;
	int fd = open_nb(port), status = -ETIMEDOUT;

	*len = 0;
	ck_assert_ptr_nonnull(buf);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	for (;;) {
		uint64_t now = ls_sys_now_ns();
		struct pollfd pf = { .fd = fd, .events = sent < sizeof(req) - 1 ? POLLOUT : POLLIN };
		ssize_t r;

		if (now >= end)
			goto out;
		if (poll(&pf, 1, (int)((end - now) / 1000000ULL) + 1) <= 0)
			continue;
		if (sent < sizeof(req) - 1) {
			r = send(fd, req + sent, sizeof(req) - 1 - sent, MSG_NOSIGNAL);
			if (r < 0 && errno != EAGAIN) {
				status = -errno;
				goto out;
			}
			if (r > 0)
				sent += (size_t)r;
			continue;
		}
		r = recv(fd, buf + n, (1 << 22) - 1 - n, 0);
		if (r < 0 && errno == EAGAIN)
			continue;
		if (r < 0) {
			status = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	status = -EIO;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		goto out;
	p = strstr(buf, "\r\n\r\n");
	*len = p ? strlen(p + 4) : 0;
out:
	free(buf);
	close(fd);
	return status;
}

START_TEST(test_slowloris_does_not_starve_scrapes)
{
	char dir[] = "/tmp/ls-it-dhostile-XXXXXX", listen[64], sock[600], err[600], rule[700];
	struct loris l = { 0 };
	pthread_t th;
	pid_t d;
	size_t len;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	l.port = ls_test_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", l.port);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	snprintf(err, sizeof(err), "%s/daemon.err", dir);
	snprintf(rule, sizeof(rule), "service=none,cmdline=*%s/nothing*", dir);
	{
		char *args[] = { "--rule", rule, "--listen", listen, "--socket", sock, NULL };

		d = ls_test_start_daemon(LOOPSCOPED, args, err, 20000);
	}
	ck_assert_int_eq(scrape(l.port, SCRAPE_BOUND_MS, &len), 200);
	ck_assert_int_eq(pthread_create(&th, NULL, loris_run, &l), 0);
	sleep(3); /* all 200 connected and sending */
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = ls_sys_now_ns();
		int st = scrape(l.port, SCRAPE_BOUND_MS, &len);
		double ms = (ls_sys_now_ns() - t0) / 1e6;

		fprintf(stderr, "it_daemon_hostile: scrape %d under slowloris: status %d, %zu bytes, %.0f ms\n",
			i, st, len, ms);
		ck_assert_msg(st == 200 && len > 0, "scrape %d: status %d after %.0f ms", i, st, ms);
		sleep(2);
	}
	l.stop = 1;
	pthread_join(th, NULL);
	fprintf(stderr, "it_daemon_hostile: slowloris reconnects: %u\n", l.reconnects);
	ls_test_kill(d);
	unlink(sock);
	unlink(err);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_daemon_hostile");
	TCase *tc = tcase_create("clients");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_slowloris_does_not_starve_scrapes);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
