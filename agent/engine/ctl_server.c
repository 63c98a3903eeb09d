// SPDX-License-Identifier: MIT
/* The control socket's server and client: JSON lines over a root-only Unix
 * socket; the commands themselves are in ctl.c (ls_ctl_handle). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "loopscope/ctl.h"

#define MAX_CLIENTS 16

/* ---- server ------------------------------------------------------------------ */

/*
 * Only the server thread writes to clients. attach/detach change targets,
 * so they run in the engine's thread (ls_ctl_server_run_pending), which
 * hands the answer back through a queue and the wake pipe. Requests and
 * answers name a client by a serial number, not its fd: a client that
 * closes meanwhile loses its answer, and another client that gets the same
 * fd number never sees it. A client with a request in the engine's hands
 * is not read further until it has its answer, so answers keep the order
 * of the requests.
 */
struct client {
	int fd;
	uint64_t id;
	bool waiting;       /* a request of it is with the engine */
	char *buf;
	size_t len;
};

struct pending {
	uint64_t client;    /* the client waiting for the answer */
	json_object *req;
};

struct answer {
	uint64_t client;
	char *line;         /* JSON, no newline */
};

struct ls_ctl_server {
	struct ls_mon *m;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd;
	int wake[2];        /* answers ready, or stop */
	pthread_t thread;
	bool started;
	bool stop;          /* under qlock */
	pthread_mutex_t qlock;
	struct pending queue[MAX_CLIENTS];
	int nqueue;
	struct answer answers[MAX_CLIENTS];
	int nanswers;
	struct client clients[MAX_CLIENTS];
	int nclients;
	uint64_t next_id;
};

static int send_text(int fd, const char *s)
{
	size_t len = strlen(s), off = 0;

	while (off < len) {
		ssize_t w = send(fd, s + off, len - off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)w;
	}
	return send(fd, "\n", 1, MSG_NOSIGNAL) == 1 ? 0 : -EIO;
}

static int send_line(int fd, json_object *o)
{
	return send_text(fd, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

static void drop_client(struct ls_ctl_server *s, int i)
{
	close(s->clients[i].fd);
	free(s->clients[i].buf);
	s->clients[i] = s->clients[--s->nclients];
}

static bool is_change(json_object *req)
{
	json_object *v;

	return req && json_object_is_type(req, json_type_object) &&
	       json_object_object_get_ex(req, "cmd", &v) && json_object_is_type(v, json_type_string) &&
	       (!strcmp(json_object_get_string(v), "attach") ||
		!strcmp(json_object_get_string(v), "detach") ||
		!strcmp(json_object_get_string(v), "dump"));
}

/* Handle the complete lines in client i's buffer, up to the first one
 * handed to the engine; -1 when the client must go. */
static int client_lines(struct ls_ctl_server *s, int i)
{
	struct client *c = &s->clients[i];
	char *nl;

	while (!c->waiting && (nl = memchr(c->buf, '\n', c->len))) {
		json_object *req, *resp = NULL;
		size_t used = (size_t)(nl - c->buf) + 1;

		*nl = '\0';
		req = json_tokener_parse(c->buf);
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
		if (is_change(req)) {
			pthread_mutex_lock(&s->qlock);
			if (s->nqueue < MAX_CLIENTS) {
				s->queue[s->nqueue].client = c->id;
				s->queue[s->nqueue++].req = req;
				req = NULL;
				c->waiting = true;
			} else {
				resp = ls_ctl_error("busy: too many queued requests");
			}
			pthread_mutex_unlock(&s->qlock);
		} else {
			resp = req ? ls_ctl_handle(__atomic_load_n(&s->m, __ATOMIC_ACQUIRE), req) :
				     ls_ctl_error("not JSON");
		}
		json_object_put(req);
		if (resp) {
			int e = send_line(c->fd, resp);

			json_object_put(resp);
			if (e)
				return -1;
		}
	}
	return 0;
}

/* Answers from the engine: each to its client if it is still there, then
 * that client's next lines. */
static void deliver_answers(struct ls_ctl_server *s)
{
	struct answer a[MAX_CLIENTS];
	int n;

	pthread_mutex_lock(&s->qlock);
	n = s->nanswers;
	memcpy(a, s->answers, (size_t)n * sizeof(a[0]));
	s->nanswers = 0;
	pthread_mutex_unlock(&s->qlock);
	for (int k = 0; k < n; k++) {
		for (int i = 0; i < s->nclients; i++) {
			struct client *c = &s->clients[i];

			if (c->id != a[k].client)
				continue;
			c->waiting = false;
			if (send_text(c->fd, a[k].line) || client_lines(s, i) ||
			    c->len > LS_CTL_MAX_LINE)
				drop_client(s, i);
			break;
		}
		free(a[k].line);
	}
}

static bool uid_is_root(int fd)
{
	struct ucred cr;
	socklen_t l = sizeof(cr);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 && cr.uid == 0;
}

static void *serve(void *arg)
{
	struct ls_ctl_server *s = arg;

	for (;;) {
		struct pollfd p[MAX_CLIENTS + 2];
		int n = 0, nc = s->nclients;
		bool stop;

		p[n++] = (struct pollfd){ .fd = s->wake[0], .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		/* A waiting client is polled for hang-ups only (order). */
		for (int i = 0; i < nc; i++)
			p[n++] = (struct pollfd){ .fd = s->clients[i].fd,
						  .events = s->clients[i].waiting ? 0 : POLLIN };
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents) {
			char junk[64];

			if (read(s->wake[0], junk, sizeof(junk)) < 0) {
				/* nothing to drain */
			}
			pthread_mutex_lock(&s->qlock);
			stop = s->stop;
			pthread_mutex_unlock(&s->qlock);
			if (stop)
				break;
		}
		/* Clients first (indices match p[2..]), from the end so that
		 * dropping one does not move one not yet looked at. */
		for (int i = nc - 1; i >= 0; i--) {
			struct client *c = &s->clients[i];
			char *grown;
			ssize_t r;

			if (!p[2 + i].revents)
				continue;
			if (c->waiting) {
				/* POLLHUP/POLLERR: it went away; its answer is dropped. */
				drop_client(s, i);
				continue;
			}
			grown = realloc(c->buf, c->len + 65536);
			if (!grown) {
				drop_client(s, i);
				continue;
			}
			c->buf = grown;
			r = recv(c->fd, c->buf + c->len, 65535, 0);
			if (r <= 0) {
				drop_client(s, i);
				continue;
			}
			c->len += (size_t)r;
			if (client_lines(s, i) || c->len > LS_CTL_MAX_LINE)
				drop_client(s, i);
		}
		/* After the clients: a client dropped above has lost its answer. */
		if (p[0].revents)
			deliver_answers(s);
		if (p[1].revents & POLLIN) {
			int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
			/* A client that does not read must not stall the others. */
			struct timeval tv = { .tv_sec = 1 };

			if (fd < 0)
				continue;
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			if (s->nclients == MAX_CLIENTS || !uid_is_root(fd)) {
				json_object *e = ls_ctl_error(s->nclients == MAX_CLIENTS ?
					"too many clients" : "only root may use this socket");

				send_line(fd, e);
				json_object_put(e);
				close(fd);
				continue;
			}
			s->clients[s->nclients++] = (struct client){ .fd = fd, .id = ++s->next_id };
		}
	}
	return NULL;
}

void ls_ctl_server_set_mon(struct ls_ctl_server *s, struct ls_mon *m)
{
	__atomic_store_n(&s->m, m, __ATOMIC_RELEASE);
}

void ls_ctl_server_run_pending(struct ls_ctl_server *s)
{
	struct pending q[MAX_CLIENTS];
	int n;

	if (!s)
		return;
	pthread_mutex_lock(&s->qlock);
	n = s->nqueue;
	memcpy(q, s->queue, (size_t)n * sizeof(q[0]));
	s->nqueue = 0;
	pthread_mutex_unlock(&s->qlock);
	for (int i = 0; i < n; i++) {
		json_object *resp = ls_ctl_handle(s->m, q[i].req);
		char *line = strdup(json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PLAIN));

		json_object_put(resp);
		json_object_put(q[i].req);
		if (!line)
			line = strdup("{\"ok\":false,\"error\":\"out of memory\"}");
		pthread_mutex_lock(&s->qlock);
		/* At most one request per client is queued: room for all. */
		if (line && s->nanswers < MAX_CLIENTS) {
			s->answers[s->nanswers].client = q[i].client;
			s->answers[s->nanswers++].line = line;
			line = NULL;
		}
		pthread_mutex_unlock(&s->qlock);
		free(line);
	}
	if (n && write(s->wake[1], "a", 1) < 0) {
		/* the pipe is full: the thread is awake already */
	}
}

int ls_ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

int ls_ctl_server_start(struct ls_mon *m, const char *path, struct ls_ctl_server **out,
			char *err, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ls_ctl_server *s;
	struct stat sb;
	char dir[sizeof(sa.sun_path)], *slash;
	int e;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, len, "socket path too long (max %zu): %s", sizeof(sa.sun_path) - 1, path);
		return -ENAMETOOLONG;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) && errno != EEXIST) {
			e = -errno;
			snprintf(err, len, "cannot create %s: %s", dir, strerror(errno));
			return e;
		}
	}
	if (lstat(path, &sb) == 0) {
		int fd;

		if (!S_ISSOCK(sb.st_mode)) {
			snprintf(err, len, "%s exists and is not a socket; remove it or choose another path",
				 path);
			return -EEXIST;
		}
		fd = ls_ctl_connect(path);
		if (fd >= 0) {
			close(fd);
			snprintf(err, len, "%s: another loopscoped is running (it answers on this socket)",
				 path);
			return -EADDRINUSE;
		}
		unlink(path); /* stale: left by a daemon that was killed */
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->lfd = -1;
	s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->qlock, NULL);
	snprintf(s->path, sizeof(s->path), "%s", path);
	strcpy(sa.sun_path, path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || pipe2(s->wake, O_CLOEXEC | O_NONBLOCK)) {
		e = -errno;
		snprintf(err, len, "control socket: %s", strerror(errno));
		goto fail;
	}
	{
		/* Created 0600 from the start: no window in which others could
		 * connect. */
		mode_t old = umask(0177);

		e = bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
		umask(old);
	}
	if (e || listen(s->lfd, 16)) {
		e = e ? e : -errno;
		snprintf(err, len, "cannot create control socket %s: %s", path, strerror(-e));
		goto fail;
	}
	e = -pthread_create(&s->thread, NULL, serve, s);
	if (e) {
		snprintf(err, len, "control socket thread: %s", strerror(-e));
		unlink(path);
		goto fail;
	}
	s->started = true;
	*out = s;
	return 0;
fail:
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->wake[0] >= 0) {
		close(s->wake[0]);
		close(s->wake[1]);
	}
	free(s);
	return e;
}

void ls_ctl_server_stop(struct ls_ctl_server *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->qlock);
		s->stop = true;
		pthread_mutex_unlock(&s->qlock);
		if (write(s->wake[1], "x", 1) < 0) {
			/* the thread is stuck anyway; closing its fds below ends poll */
		}
		pthread_join(s->thread, NULL);
	}
	for (int i = s->nclients - 1; i >= 0; i--)
		drop_client(s, i);
	for (int i = 0; i < s->nqueue; i++)
		json_object_put(s->queue[i].req);
	for (int i = 0; i < s->nanswers; i++)
		free(s->answers[i].line);
	close(s->lfd);
	close(s->wake[0]);
	close(s->wake[1]);
	unlink(s->path);
	pthread_mutex_destroy(&s->qlock);
	free(s);
}

int ls_ctl_call(int fd, json_object *req, json_object **resp, int timeout_ms)
{
	char *buf = NULL, *nl;
	size_t len = 0;
	int e;

	*resp = NULL;
	e = send_line(fd, req);
	if (e)
		return -EIO;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char *grown;
		ssize_t r;

		e = poll(&p, 1, timeout_ms);
		if (e < 0 && errno == EINTR)
			continue;
		if (e <= 0) {
			free(buf);
			return e == 0 ? -ETIMEDOUT : -EIO;
		}
		grown = realloc(buf, len + 65537);
		if (!grown) {
			free(buf);
			return -ENOMEM;
		}
		buf = grown;
		r = recv(fd, buf + len, 65536, 0);
		if (r <= 0 || len + (size_t)r > LS_CTL_MAX_LINE) {
			free(buf);
			return -EIO;
		}
		len += (size_t)r;
		buf[len] = '\0';
		nl = memchr(buf, '\n', len);
		if (nl) {
			*nl = '\0';
			*resp = json_tokener_parse(buf);
			free(buf);
			return *resp ? 0 : -EIO;
		}
	}
}
