// SPDX-License-Identifier: MIT
/* epoll backend of the reference loop. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/syscall.h>

#include "refloop.h"

#ifndef SYS_epoll_pwait2
#define SYS_epoll_pwait2 441
#endif

struct rl_backend {
	int epfd;
	enum rl_poll_kind kind;
};

struct rl_backend *rl_backend_new(enum rl_poll_kind kind)
{
	struct rl_backend *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->kind = kind;
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (b->epfd < 0) {
		free(b);
		return NULL;
	}
	return b;
}

void rl_backend_free(struct rl_backend *b)
{
	if (!b)
		return;
	close(b->epfd);
	free(b);
}

int rl_backend_add(struct rl_backend *b, int fd, int index)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)index };

	return epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

const char *rl_backend_name(const struct rl_backend *b)
{
	switch (b->kind) {
	case RL_EPOLL_WAIT: return "epoll_wait";
	case RL_EPOLL_PWAIT: return "epoll_pwait";
	default: return "epoll_pwait2";
	}
}

int rl_backend_poll(struct rl_backend *b, int64_t timeout_ns, int *idx, int max,
		    int64_t *timeout_passed_ns)
{
	struct epoll_event evs[64];
	int n, ms;

	if (max > 64)
		max = 64;
	if (b->kind == RL_EPOLL_PWAIT2) {
		struct timespec ts = { timeout_ns / 1000000000LL, timeout_ns % 1000000000LL };

		*timeout_passed_ns = timeout_ns;
		n = (int)syscall(SYS_epoll_pwait2, b->epfd, evs, max, timeout_ns < 0 ? NULL : &ts,
				 NULL, 8);
	} else {
		/* Whole ms, rounded up as asyncio's selector does. */
		ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
		*timeout_passed_ns = ms < 0 ? -1 : (int64_t)ms * 1000000;
		n = b->kind == RL_EPOLL_WAIT ? epoll_wait(b->epfd, evs, max, ms) :
					       epoll_pwait(b->epfd, evs, max, ms, NULL);
	}
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++)
		idx[i] = (int)evs[i].data.u32;
	return n;
}
