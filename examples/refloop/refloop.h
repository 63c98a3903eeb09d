/* SPDX-License-Identifier: MIT */
/*
 * The reference event loop: a small epoll loop in the spirit of Redis ae.c,
 * whose every poll, callback and timer is written to a ground-truth log
 * (JSON lines, CLOCK_MONOTONIC ns) that tests compare loopscope with.
 *
 * One iteration is asyncio's BaseEventLoop._run_once:
 *  1. timeout = 0 if callbacks are ready (or the loop is stopping), -1 if no
 *     timer, else max(0, earliest deadline - now);
 *  2. poll (epoll_pwait2 with that timeout in ns, or epoll_wait/epoll_pwait
 *     with it rounded up to whole ms);
 *  3. fd watchers with events become ready callbacks;
 *  4. timers whose deadline has passed become ready, earliest first;
 *  5. the callbacks ready at this point run; those they add wait for the
 *     next iteration.
 */
#ifndef REFLOOP_H
#define REFLOOP_H

#include <stdint.h>
#include <stdio.h>

struct rl_loop;
typedef void (*rl_fn)(struct rl_loop *loop, void *arg);

enum rl_poll_kind { RL_EPOLL_PWAIT2, RL_EPOLL_WAIT, RL_EPOLL_PWAIT };

/* A loop polling with `kind`, logging truth to `truth` (NULL: no log).
 * NULL on error (errno set). */
struct rl_loop *rl_loop_new(enum rl_poll_kind kind, FILE *truth);
void rl_loop_free(struct rl_loop *loop);

/* CLOCK_MONOTONIC now, ns. */
uint64_t rl_now_ns(void);

/* Queue fn(arg) to run in the next iteration. name: static string. 0 or -ENOMEM. */
int rl_call_soon(struct rl_loop *loop, const char *name, rl_fn fn, void *arg);
/* Run fn(arg) once CLOCK_MONOTONIC reaches when_ns / now + delay_ns. */
int rl_call_at(struct rl_loop *loop, uint64_t when_ns, const char *name, rl_fn fn, void *arg);
int rl_call_later(struct rl_loop *loop, uint64_t delay_ns, const char *name, rl_fn fn, void *arg);
/* Run fn(arg) whenever fd is readable. 0 or -errno from epoll_ctl. */
int rl_watch_fd(struct rl_loop *loop, int fd, const char *name, rl_fn fn, void *arg);

/* Run iterations until rl_stop(). 0, or -errno of a failed poll. */
int rl_run(struct rl_loop *loop);
void rl_stop(struct rl_loop *loop);

/* Totals for the log's last line. */
uint64_t rl_polls(const struct rl_loop *loop);
uint64_t rl_callbacks(const struct rl_loop *loop);

/* The backend (refloop_epoll.c): one epoll instance. */
struct rl_backend;
struct rl_backend *rl_backend_new(enum rl_poll_kind kind);
void rl_backend_free(struct rl_backend *b);
int rl_backend_add(struct rl_backend *b, int fd, int index);
/* Poll with timeout_ns (-1 infinite); returns the number of ready fds and
 * their indexes in idx (at most max), or -errno. *timeout_passed_ns is the
 * timeout as the syscall got it, in ns (ms-rounded for epoll_wait/pwait). */
int rl_backend_poll(struct rl_backend *b, int64_t timeout_ns, int *idx, int max,
		    int64_t *timeout_passed_ns);
const char *rl_backend_name(const struct rl_backend *b);

#endif
