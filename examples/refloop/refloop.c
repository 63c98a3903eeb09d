// SPDX-License-Identifier: MIT
/* The reference loop: ready queue, timer heap, one iteration as asyncio's
 * _run_once, the truth log and the USDT probes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/sdt.h>

#include "refloop.h"

struct rl_cb {
	const char *name;
	rl_fn fn;
	void *arg;
	uint64_t deadline_ns; /* timers: the deadline, for the truth log; else 0 */
};

struct rl_watch {
	int fd;
	struct rl_cb cb;
};

struct rl_loop {
	struct rl_backend *backend;
	FILE *truth;
	int stopping;
	/* ready queue: a ring of callbacks */
	struct rl_cb *ready;
	size_t rhead, rlen, rcap;
	/* timers: a binary min-heap on deadline_ns */
	struct rl_cb *heap;
	size_t hlen, hcap;
	struct rl_watch *watches;
	size_t nwatches;
	uint64_t polls, callbacks, seq;
};

uint64_t rl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct rl_loop *rl_loop_new(enum rl_poll_kind kind, FILE *truth)
{
	struct rl_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->backend = rl_backend_new(kind);
	if (!l->backend) {
		free(l);
		return NULL;
	}
	l->truth = truth;
	return l;
}

void rl_loop_free(struct rl_loop *l)
{
	if (!l)
		return;
	rl_backend_free(l->backend);
	free(l->ready);
	free(l->heap);
	free(l->watches);
	free(l);
}

static int ready_push(struct rl_loop *l, struct rl_cb cb)
{
	if (l->rlen == l->rcap) {
		size_t cap = l->rcap ? l->rcap * 2 : 64;
		struct rl_cb *r = malloc(cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		for (size_t i = 0; i < l->rlen; i++)
			r[i] = l->ready[(l->rhead + i) % l->rcap];
		free(l->ready);
		l->ready = r;
		l->rhead = 0;
		l->rcap = cap;
	}
	l->ready[(l->rhead + l->rlen++) % l->rcap] = cb;
	return 0;
}

static struct rl_cb ready_pop(struct rl_loop *l)
{
	struct rl_cb cb = l->ready[l->rhead];

	l->rhead = (l->rhead + 1) % l->rcap;
	l->rlen--;
	return cb;
}

int rl_call_soon(struct rl_loop *l, const char *name, rl_fn fn, void *arg)
{
	return ready_push(l, (struct rl_cb){ name, fn, arg, 0 });
}

int rl_call_at(struct rl_loop *l, uint64_t when_ns, const char *name, rl_fn fn, void *arg)
{
	size_t i;

	if (l->hlen == l->hcap) {
		size_t cap = l->hcap ? l->hcap * 2 : 64;
		struct rl_cb *h = realloc(l->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->hcap = cap;
	}
	i = l->hlen++;
	while (i > 0 && l->heap[(i - 1) / 2].deadline_ns > when_ns) {
		l->heap[i] = l->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	l->heap[i] = (struct rl_cb){ name, fn, arg, when_ns };
	return 0;
}

int rl_call_later(struct rl_loop *l, uint64_t delay_ns, const char *name, rl_fn fn, void *arg)
{
	return rl_call_at(l, rl_now_ns() + delay_ns, name, fn, arg);
}

static struct rl_cb heap_pop(struct rl_loop *l)
{
	struct rl_cb top = l->heap[0], last = l->heap[--l->hlen];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < l->hlen) {
		if (c + 1 < l->hlen && l->heap[c + 1].deadline_ns < l->heap[c].deadline_ns)
			c++;
		if (l->heap[c].deadline_ns >= last.deadline_ns)
			break;
		l->heap[i] = l->heap[c];
		i = c;
	}
	if (l->hlen)
		l->heap[i] = last;
	return top;
}

int rl_watch_fd(struct rl_loop *l, int fd, const char *name, rl_fn fn, void *arg)
{
	struct rl_watch *w = realloc(l->watches, (l->nwatches + 1) * sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	l->watches = w;
	err = rl_backend_add(l->backend, fd, (int)l->nwatches);
	if (err)
		return err;
	l->watches[l->nwatches++] = (struct rl_watch){ fd, { name, fn, arg, 0 } };
	return 0;
}

void rl_stop(struct rl_loop *l)
{
	l->stopping = 1;
}

uint64_t rl_polls(const struct rl_loop *l)
{
	return l->polls;
}

uint64_t rl_callbacks(const struct rl_loop *l)
{
	return l->callbacks;
}

static int run_once(struct rl_loop *l)
{
	int idx[64], n;
	int64_t timeout_ns, passed_ns;
	uint64_t enter, exit_, now;
	size_t ntodo;

	if (l->rlen || l->stopping)
		timeout_ns = 0;
	else if (!l->hlen)
		timeout_ns = -1;
	else {
		now = rl_now_ns();
		timeout_ns = l->heap[0].deadline_ns > now ? (int64_t)(l->heap[0].deadline_ns - now) : 0;
	}
	DTRACE_PROBE1(refloop, poll__start, timeout_ns);
	enter = rl_now_ns();
	n = rl_backend_poll(l->backend, timeout_ns, idx, 64, &passed_ns);
	exit_ = rl_now_ns();
	DTRACE_PROBE1(refloop, poll__end, n);
	if (n < 0)
		return n;
	l->polls++;
	if (l->truth)
		fprintf(l->truth,
			"{\"ev\":\"poll\",\"enter_ns\":%llu,\"exit_ns\":%llu,\"timeout_ns\":%lld,"
			"\"nevents\":%d}\n",
			(unsigned long long)enter, (unsigned long long)exit_, (long long)passed_ns, n);
	for (int i = 0; i < n; i++)
		ready_push(l, l->watches[idx[i]].cb);
	now = exit_;
	while (l->hlen && l->heap[0].deadline_ns <= now)
		ready_push(l, heap_pop(l));

	for (ntodo = l->rlen; ntodo > 0; ntodo--) {
		struct rl_cb cb = ready_pop(l);
		uint64_t start, end, seq = ++l->seq;

		start = rl_now_ns();
		DTRACE_PROBE2(refloop, callback__start, cb.name, seq);
		cb.fn(l, cb.arg);
		DTRACE_PROBE2(refloop, callback__end, cb.name, seq);
		end = rl_now_ns();
		l->callbacks++;
		if (l->truth) {
			fprintf(l->truth, "{\"ev\":\"callback\",\"name\":\"%s\",\"start_ns\":%llu,"
				"\"end_ns\":%llu}\n", cb.name, (unsigned long long)start,
				(unsigned long long)end);
			if (cb.deadline_ns)
				fprintf(l->truth, "{\"ev\":\"timer\",\"name\":\"%s\",\"deadline_ns\":%llu,"
					"\"dispatch_ns\":%llu}\n", cb.name,
					(unsigned long long)cb.deadline_ns, (unsigned long long)start);
		}
	}
	return 0;
}

int rl_run(struct rl_loop *l)
{
	int err = 0;

	if (l->truth)
		fprintf(l->truth, "{\"ev\":\"start\",\"pid\":%d,\"tid\":%d,\"poll\":\"%s\","
			"\"clock\":\"CLOCK_MONOTONIC\"}\n", (int)getpid(), (int)gettid(),
			rl_backend_name(l->backend));
	l->stopping = 0;
	while (!l->stopping && !err)
		err = run_once(l);
	if (l->truth) {
		fprintf(l->truth, "{\"ev\":\"end\",\"polls\":%llu,\"callbacks\":%llu}\n",
			(unsigned long long)l->polls, (unsigned long long)l->callbacks);
		fflush(l->truth);
	}
	return err;
}
