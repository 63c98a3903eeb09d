// SPDX-License-Identifier: MIT
/* The control socket: JSON lines over a root-only Unix socket. */
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

static void jadd_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static json_object *error_reply(const char *msg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	return o;
}

static json_object *ok_reply(void)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static json_object *target_json(const struct ls_mon_target *t)
{
	json_object *o = json_object_new_object();
	char ver[16] = "";

	json_object_object_add(o, "pid", json_object_new_int(t->pid));
	json_object_object_add(o, "ns_pid", json_object_new_int(t->ns_pid));
	json_object_object_add(o, "comm", json_object_new_string(t->comm));
	json_object_object_add(o, "service", json_object_new_string(t->service));
	json_object_object_add(o, "exe", json_object_new_string(t->exe));
	json_object_object_add(o, "mode", json_object_new_string(ls_config_mode_name(t->mode)));
	json_object_object_add(o, "precise", json_object_new_boolean(t->precise));
	if (t->py_major)
		snprintf(ver, sizeof(ver), "%d.%d", t->py_major, t->py_minor);
	json_object_object_add(o, "python", json_object_new_string(ver));
	json_object_object_add(o, "note", json_object_new_string(t->note));
	json_object_object_add(o, "manual", json_object_new_boolean(t->manual));
	jadd_u64(o, "attached_ns", t->attached_ns);
	jadd_u64(o, "exec_ns", t->seen_ns);
	jadd_u64(o, "exited_ns", t->exited_ns);
	json_object_object_add(o, "threads", json_object_new_int((int)t->nthreads));
	return o;
}

static json_object *cmd_list(struct ls_mon *m)
{
	json_object *r = ok_reply(), *a = json_object_new_array();

	ls_mon_lock(m);
	for (size_t i = 0; i < ls_mon_ntargets(m); i++)
		json_object_array_add(a, target_json(ls_mon_target_at(m, i)));
	ls_mon_unlock(m);
	json_object_object_add(r, "targets", a);
	return r;
}

static json_object *cmd_stats(struct ls_mon *m)
{
	json_object *r = ok_reply(), *a = json_object_new_array();

	ls_mon_lock(m);
	jadd_u64(r, "time_ns", ls_mon_window_end_ns(m));
	jadd_u64(r, "interval_ns", ls_mon_config(m)->interval_ns);
	jadd_u64(r, "threshold_ns", ls_mon_config(m)->threshold_ns);
	jadd_u64(r, "lost_events", ls_mon_lost_events(m));
	for (size_t i = 0; i < ls_mon_ntargets(m); i++) {
		const struct ls_mon_target *t = ls_mon_target_at(m, i);

		for (size_t j = 0; j < t->nthreads; j++) {
			const struct ls_mon_thread *th = &t->threads[j];
			const struct ls_mon_window *w = &th->win;
			json_object *o = json_object_new_object();

			if (!th->has_stats)
				continue;
			json_object_object_add(o, "pid", json_object_new_int(t->pid));
			json_object_object_add(o, "ns_pid", json_object_new_int(t->ns_pid));
			json_object_object_add(o, "tid", json_object_new_int((int)th->tid));
			json_object_object_add(o, "thread", json_object_new_string(th->name));
			json_object_object_add(o, "comm", json_object_new_string(t->comm));
			json_object_object_add(o, "service", json_object_new_string(t->service));
			json_object_object_add(o, "mode", json_object_new_string(
				t->precise ? "precise" : "light"));
			json_object_object_add(o, "exited", json_object_new_boolean(t->exited_ns != 0));
			jadd_u64(o, "window_ns", w->window_ns);
			json_object_object_add(o, "iterations_per_s", json_object_new_double(w->iterations_per_s));
			json_object_object_add(o, "utilization", json_object_new_double(w->utilization));
			jadd_u64(o, "busy_p99_ns", w->busy_p99_ns);
			jadd_u64(o, "busy_max_ns", w->busy_max_ns);
			jadd_u64(o, "lag_p99_ns", w->lag_p99_ns);
			jadd_u64(o, "lag_max_ns", w->lag_max_ns);
			jadd_u64(o, "lag_count", w->lag_count);
			jadd_u64(o, "delay_p99_ns", w->delay_p99_ns);
			jadd_u64(o, "busy_now_ns", w->busy_now_ns);
			jadd_u64(o, "slow_in_window", w->slow);
			jadd_u64(o, "iterations_total", th->stats.polls ? th->stats.polls - 1 : 0);
			jadd_u64(o, "slow_busy_total", th->stats.slow_busy);
			jadd_u64(o, "slow_callbacks_total", th->slow_callbacks);
			jadd_u64(o, "lag_p99_total_ns", ls_hist_percentile(&th->stats.lag, 99));
			json_object_array_add(a, o);
		}
	}
	ls_mon_unlock(m);
	json_object_object_add(r, "threads", a);
	return r;
}

static json_object *cmd_slow(struct ls_mon *m, json_object *req)
{
	json_object *r = ok_reply(), *a = json_object_new_array(), *v;
	uint64_t after = 0, last = 0;
	const struct ls_mon_slow *s;
	size_t n;

	if (json_object_object_get_ex(req, "after", &v))
		after = json_object_get_uint64(v);
	ls_mon_lock(m);
	s = ls_mon_slow_events(m, &n);
	for (size_t i = 0; i < n; i++) {
		json_object *o;

		last = s[i].seq;
		if (s[i].seq <= after)
			continue;
		o = json_object_new_object();
		jadd_u64(o, "seq", s[i].seq);
		json_object_object_add(o, "kind", json_object_new_string(
			s[i].kind == LS_MON_SLOW_CALLBACK ? "callback" : "busy"));
		json_object_object_add(o, "pid", json_object_new_int((int)s[i].pid));
		json_object_object_add(o, "tid", json_object_new_int((int)s[i].tid));
		json_object_object_add(o, "service", json_object_new_string(s[i].service));
		json_object_object_add(o, "comm", json_object_new_string(s[i].comm));
		jadd_u64(o, "start_ns", s[i].start_ns);
		jadd_u64(o, "duration_ns", s[i].duration_ns);
		json_object_object_add(o, "what", json_object_new_string(s[i].what));
		json_object_array_add(a, o);
	}
	ls_mon_unlock(m);
	jadd_u64(r, "last", last > after ? last : after);
	json_object_object_add(r, "events", a);
	return r;
}

static int req_pid(json_object *req, pid_t *pid)
{
	json_object *v;

	if (!json_object_object_get_ex(req, "pid", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) <= 0 || json_object_get_int64(v) > 0x3fffffff)
		return -EINVAL;
	*pid = (pid_t)json_object_get_int64(v);
	return 0;
}

json_object *ls_ctl_handle(struct ls_mon *m, json_object *req)
{
	json_object *v;
	const char *cmd;
	char err[256];
	pid_t pid;

	if (!m)
		return error_reply("loopscoped is starting; try again");
	if (!req || !json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &v) || !json_object_is_type(v, json_type_string))
		return error_reply("expected a JSON object with a \"cmd\" string");
	cmd = json_object_get_string(v);
	if (!strcmp(cmd, "list"))
		return cmd_list(m);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(m);
	if (!strcmp(cmd, "slow"))
		return cmd_slow(m, req);
	if (!strcmp(cmd, "attach") || !strcmp(cmd, "detach")) {
		if (req_pid(req, &pid))
			return error_reply("\"pid\" must be a positive integer");
		if (!strcmp(cmd, "detach")) {
			if (ls_mon_detach(m, pid)) {
				snprintf(err, sizeof(err), "pid %d is not monitored", (int)pid);
				return error_reply(err);
			}
			return ok_reply();
		}
		enum ls_mode mode = LS_MODE_LIGHT;
		const char *service = NULL;

		if (json_object_object_get_ex(req, "mode", &v) &&
		    (!json_object_is_type(v, json_type_string) ||
		     ls_config_parse_mode(json_object_get_string(v), &mode)))
			return error_reply("\"mode\" must be \"light\" or \"precise\"");
		if (json_object_object_get_ex(req, "service", &v)) {
			if (!json_object_is_type(v, json_type_string) ||
			    strlen(json_object_get_string(v)) >= 64)
				return error_reply("\"service\" must be a string of at most 63 characters");
			service = json_object_get_string(v);
		}
		if (ls_mon_attach(m, pid, service, mode, err, sizeof(err)))
			return error_reply(err);
		return ok_reply();
	}
	/* Echoed in an error, which is one line (a client prints it): control
	 * bytes of the client's string ("\n" in JSON) as '?' (#12, fuzz_ctl). */
	char shown[65];
	size_t i;

	for (i = 0; cmd[i] && i < sizeof(shown) - 1; i++)
		shown[i] = (unsigned char)cmd[i] < 0x20 || cmd[i] == 0x7f ? '?' : cmd[i];
	shown[i] = '\0';
	snprintf(err, sizeof(err), "unknown cmd '%s' (list, stats, slow, attach, detach)", shown);
	return error_reply(err);
}

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
		!strcmp(json_object_get_string(v), "detach"));
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
				resp = error_reply("busy: too many queued requests");
			}
			pthread_mutex_unlock(&s->qlock);
		} else {
			resp = req ? ls_ctl_handle(__atomic_load_n(&s->m, __ATOMIC_ACQUIRE), req) :
				     error_reply("not JSON");
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
				json_object *e = error_reply(s->nclients == MAX_CLIENTS ?
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
