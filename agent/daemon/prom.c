// SPDX-License-Identifier: MIT
/* Prometheus exposition: histograms converted to fixed `le` bounds, and the
 * HTTP endpoint (libmicrohttpd, its own polling thread). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "loopscope/prom.h"
#include "loopscope/loopscope.h"
#include "loopscope/utf8.h"

/* 50 us .. 10 s in 1-2.5-5 steps: loop lag of a healthy asyncio loop is
 * tens to hundreds of us; asyncio's slow_callback_duration is 100 ms. */
const uint64_t ls_prom_bounds_ns[LS_PROM_NBUCKETS] = {
	50000ULL, 100000ULL, 250000ULL, 500000ULL,
	1000000ULL, 2500000ULL, 5000000ULL, 10000000ULL, 25000000ULL, 50000000ULL,
	100000000ULL, 250000000ULL, 500000000ULL,
	1000000000ULL, 2500000000ULL, 5000000000ULL, 10000000000ULL,
};
static const char *const bound_text[LS_PROM_NBUCKETS] = {
	"5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
	"0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
};

void ls_prom_hist_buckets(const struct ls_hist *h, uint64_t counts[LS_PROM_NBUCKETS],
			  uint64_t *total)
{
	uint64_t cum = 0;
	unsigned b = 0;

	for (unsigned i = 0; i < LS_HIST_NSLOTS; i++) {
		uint64_t lo = ls_hist_slot_lower(i), hi = ls_hist_slot_upper(i);
		uint64_t mid = lo + (hi - lo) / 2;

		/* Bounds below this slot's midpoint are complete. */
		while (b < LS_PROM_NBUCKETS && ls_prom_bounds_ns[b] < mid)
			counts[b++] = cum;
		cum += h->slots[i];
	}
	while (b < LS_PROM_NBUCKETS)
		counts[b++] = cum;
	*total = cum;
}

void ls_prom_label_value(FILE *f, const char *v)
{
	size_t n = strlen(v);

	for (size_t i = 0; i < n;) {
		size_t len = ls_utf8_len(v + i, n - i);

		if (!len) {
			fputs("\xef\xbf\xbd", f); /* U+FFFD REPLACEMENT CHARACTER */
			i++;
		} else if (v[i] == '\\' || v[i] == '"') {
			fprintf(f, "\\%c", v[i]);
			i++;
		} else if (v[i] == '\n') {
			fputs("\\n", f);
			i++;
		} else {
			fwrite(v + i, 1, len, f);
			i += len;
		}
	}
}

static void put_label(FILE *f, const char *name, const char *v, bool first)
{
	fprintf(f, "%s%s=\"", first ? "" : ",", name);
	ls_prom_label_value(f, v);
	fputc('"', f);
}

/* service, pid, comm and, for tid > 0, thread. */
static void put_labels(FILE *f, const struct ls_mon_target *t, uint32_t tid)
{
	char buf[16];

	put_label(f, "service", t->service, true);
	snprintf(buf, sizeof(buf), "%d", (int)t->pid);
	put_label(f, "pid", buf, false);
	put_label(f, "comm", t->comm, false);
	if (tid) {
		snprintf(buf, sizeof(buf), "%u", tid);
		put_label(f, "thread", buf, false);
	}
}

static void put_hist(FILE *f, const char *name, const struct ls_mon_target *t, uint32_t tid,
		     const struct ls_hist *h)
{
	uint64_t counts[LS_PROM_NBUCKETS], total;

	ls_prom_hist_buckets(h, counts, &total);
	for (int b = 0; b < LS_PROM_NBUCKETS; b++) {
		fprintf(f, "%s_bucket{", name);
		put_labels(f, t, tid);
		fprintf(f, ",le=\"%s\"} %llu\n", bound_text[b], (unsigned long long)counts[b]);
	}
	fprintf(f, "%s_bucket{", name);
	put_labels(f, t, tid);
	fprintf(f, ",le=\"+Inf\"} %llu\n", (unsigned long long)total);
	fprintf(f, "%s_sum{", name);
	put_labels(f, t, tid);
	fprintf(f, "} %.9f\n", (double)h->sum / 1e9);
	fprintf(f, "%s_count{", name);
	put_labels(f, t, tid);
	fprintf(f, "} %llu\n", (unsigned long long)total);
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum per_thread { H_LAG, H_BUSY, H_POLL, C_ITER, C_SLOW_BUSY, C_SLOW_CB, G_UTIL };

static void put_thread_metric(FILE *f, struct ls_mon *m, enum per_thread what, const char *name)
{
	for (size_t i = 0; i < ls_mon_ntargets(m); i++) {
		const struct ls_mon_target *t = ls_mon_target_at(m, i);

		for (size_t j = 0; j < t->nthreads; j++) {
			const struct ls_mon_thread *th = &t->threads[j];
			const struct ls_thread_view *s = &th->stats;

			if (!th->has_stats || (what == C_SLOW_CB && !t->ever_precise))
				continue;
			switch (what) {
			case H_LAG: put_hist(f, name, t, th->tid, &s->lag); continue;
			case H_BUSY: put_hist(f, name, t, th->tid, &s->busy); continue;
			case H_POLL: put_hist(f, name, t, th->tid, &s->poll); continue;
			default: break;
			}
			fprintf(f, "%s{", name);
			put_labels(f, t, th->tid);
			if (what == C_ITER)
				fprintf(f, "} %llu\n", (unsigned long long)s->iterations);
			else if (what == C_SLOW_BUSY)
				fprintf(f, "} %llu\n", (unsigned long long)s->slow_busy);
			else if (what == C_SLOW_CB)
				fprintf(f, "} %llu\n", (unsigned long long)th->slow_callbacks);
			else
				fprintf(f, "} %.4f\n", th->win.utilization >= 0 ? th->win.utilization : 0.0);
		}
	}
}

int ls_prom_write(struct ls_mon *m, FILE *f)
{
	ls_mon_lock(m);
	header(f, "loopscope_loop_lag_seconds", "histogram",
	       "How late the loop served the timer it slept towards (timer lateness), per loop thread.");
	put_thread_metric(f, m, H_LAG, "loopscope_loop_lag_seconds");
	header(f, "loopscope_busy_seconds", "histogram",
	       "Busy periods: from a poll's return to the next poll entry (callbacks and loop overhead).");
	put_thread_metric(f, m, H_BUSY, "loopscope_busy_seconds");
	header(f, "loopscope_poll_seconds", "histogram",
	       "Time inside epoll_wait/epoll_pwait/epoll_pwait2 (idle).");
	put_thread_metric(f, m, H_POLL, "loopscope_poll_seconds");
	header(f, "loopscope_callback_duration_seconds", "histogram",
	       "Duration of every asyncio callback (precise mode only), per process.");
	for (size_t i = 0; i < ls_mon_ntargets(m); i++) {
		const struct ls_mon_target *t = ls_mon_target_at(m, i);

		if (t->ever_precise)
			put_hist(f, "loopscope_callback_duration_seconds", t, 0, &t->callbacks);
	}
	header(f, "loopscope_iterations_total", "counter",
	       "Loop iterations (poll entry to poll entry).");
	put_thread_metric(f, m, C_ITER, "loopscope_iterations_total");
	header(f, "loopscope_slow_busy_periods_total", "counter",
	       "Busy periods longer than the threshold (every mode).");
	put_thread_metric(f, m, C_SLOW_BUSY, "loopscope_slow_busy_periods_total");
	header(f, "loopscope_slow_callbacks_total", "counter",
	       "Callbacks longer than the threshold (precise mode; from its first set-up on).");
	put_thread_metric(f, m, C_SLOW_CB, "loopscope_slow_callbacks_total");
	header(f, "loopscope_loop_utilization_ratio", "gauge",
	       "Busy / (busy + poll) over the last interval (event loop utilization).");
	put_thread_metric(f, m, G_UTIL, "loopscope_loop_utilization_ratio");
	header(f, "loopscope_target_info", "gauge",
	       "One per monitored process: its pid inside its own pid namespace, mode, Python.");
	for (size_t i = 0; i < ls_mon_ntargets(m); i++) {
		const struct ls_mon_target *t = ls_mon_target_at(m, i);
		char buf[32];

		fprintf(f, "loopscope_target_info{");
		put_labels(f, t, 0);
		snprintf(buf, sizeof(buf), "%d", (int)t->ns_pid);
		put_label(f, "ns_pid", buf, false);
		put_label(f, "mode", t->precise ? "precise" : "light", false);
		if (t->py_major)
			snprintf(buf, sizeof(buf), "%d.%d", t->py_major, t->py_minor);
		else
			snprintf(buf, sizeof(buf), "%s", "");
		put_label(f, "python", buf, false);
		put_label(f, "state", t->exited_ns ? "exited" : "running", false);
		fprintf(f, "} 1\n");
	}
	header(f, "loopscope_threads_untracked_total", "counter",
	       "Threads of a target not tracked: it was at its quota of threads in the kernel's table.");
	for (size_t i = 0; i < ls_mon_ntargets(m); i++) {
		const struct ls_mon_target *t = ls_mon_target_at(m, i);

		fprintf(f, "loopscope_threads_untracked_total{");
		put_labels(f, t, 0);
		fprintf(f, "} %llu\n", (unsigned long long)t->threads_untracked);
	}
	header(f, "loopscope_threads_pruned_total", "counter",
	       "Exited threads of a target removed from the kernel's table (their series dropped).");
	for (size_t i = 0; i < ls_mon_ntargets(m); i++) {
		const struct ls_mon_target *t = ls_mon_target_at(m, i);

		fprintf(f, "loopscope_threads_pruned_total{");
		put_labels(f, t, 0);
		fprintf(f, "} %llu\n", (unsigned long long)t->threads_pruned);
	}
	{
		struct ls_loop_table_counts tc;

		ls_mon_thread_table(m, &tc);
		header(f, "loopscope_thread_quota", "gauge",
		       "Threads one target may have tracked at once (the kernel table's quota).");
		fprintf(f, "loopscope_thread_quota %u\n", tc.quota);
		header(f, "loopscope_threads_untracked_all_total", "counter",
		       "Threads not tracked over a quota, all targets since the agent started.");
		fprintf(f, "loopscope_threads_untracked_all_total %llu\n", (unsigned long long)tc.untracked);
		header(f, "loopscope_threads_pruned_all_total", "counter",
		       "Exited threads removed from the kernel's table, all targets since the agent started.");
		fprintf(f, "loopscope_threads_pruned_all_total %llu\n", (unsigned long long)tc.pruned);
		header(f, "loopscope_thread_table_full_total", "counter",
		       "Polls of new threads refused because the whole thread table was full.");
		fprintf(f, "loopscope_thread_table_full_total %llu\n", (unsigned long long)tc.table_full);
	}
	header(f, "loopscope_lost_events_total", "counter",
	       "Events the kernel-to-agent ring buffers could not take (they were full).");
	fprintf(f, "loopscope_lost_events_total %llu\n", (unsigned long long)ls_mon_lost_events(m));
	header(f, "loopscope_callback_names_cached", "gauge",
	       "Callback names in the agent's bounded name cache (precise mode).");
	fprintf(f, "loopscope_callback_names_cached %zu\n", ls_mon_names_cached(m));
	header(f, "loopscope_callback_names_evicted_total", "counter",
	       "Callback names dropped from the full name cache to make room (read again when seen again).");
	fprintf(f, "loopscope_callback_names_evicted_total %llu\n",
		(unsigned long long)ls_mon_name_evictions(m));
	header(f, "loopscope_attached_total", "counter", "Processes attached since the agent started.");
	fprintf(f, "loopscope_attached_total %llu\n", (unsigned long long)ls_mon_attached_total(m));
	{
		struct ls_mon_flight_stats fs;

		ls_mon_flight_stats(m, &fs);
		header(f, "loopscope_flight_dumps_total", "counter",
		       "Flight recorder dumps: written to flight_dir, or dropped (could not be written).");
		fprintf(f, "loopscope_flight_dumps_total{result=\"written\"} %llu\n",
			(unsigned long long)fs.dumps_written);
		fprintf(f, "loopscope_flight_dumps_total{result=\"dropped\"} %llu\n",
			(unsigned long long)fs.dumps_dropped);
		header(f, "loopscope_flight_bytes", "gauge",
		       "Bytes the flight recorder holds in memory, every target's ring (compressed).");
		fprintf(f, "loopscope_flight_bytes %llu\n", (unsigned long long)fs.bytes);
	}
	ls_mon_unlock(m);
	return ferror(f) ? -EIO : 0;
}

/* ---- HTTP -------------------------------------------------------------------- */

/* Hostile clients (issue #12): a slowloris keeps a connection alive by
 * sending a header line now and then, which restarts libmicrohttpd's idle
 * timeout forever. So besides a short idle timeout every connection gets a
 * deadline to deliver a complete request (from its accept, or from the end
 * of its previous response on a kept-alive connection); a reaper thread
 * shuts down the sockets that miss it. Limits are in docs/DAEMON.md. */
#define CONN_MAX 1000U         /* connections at once (less with a low RLIMIT_NOFILE) */
#define CONN_IDLE_S 5U         /* nothing received or sent for this long: closed */
#define REQ_DEADLINE_NS 3000000000ULL /* a complete request within 3 s */
#define REAP_EVERY_US 200000U

struct conn_slot {
	struct conn_slot *prev, *next;
	int fd;
	bool serving; /* request complete, response under way */
	bool reaped;  /* shut down by the reaper */
	uint64_t since_ns;
};

struct ls_prom_server {
	struct MHD_Daemon *d;
	struct ls_mon *m;
	int port;
	pthread_mutex_t lock; /* conns */
	struct conn_slot conns; /* list head */
	pthread_t reaper;
	bool reaper_running;
	volatile bool stopping;
	unsigned long long reaped_total;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* libmicrohttpd tells us of a connection before it closes its socket, so
 * an fd on the list (under lock) is always the connection's own. */
static void on_connection(void *cls, struct MHD_Connection *c, void **ctx,
			  enum MHD_ConnectionNotificationCode what)
{
	struct ls_prom_server *s = cls;
	struct conn_slot *slot = *ctx;

	if (what == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		slot = calloc(1, sizeof(*slot));
		*ctx = slot;
		if (!slot || !ci)
			return; /* unwatched: the idle timeout still applies */
		slot->fd = ci->connect_fd;
		slot->since_ns = mono_ns();
		pthread_mutex_lock(&s->lock);
		slot->next = s->conns.next;
		slot->prev = &s->conns;
		s->conns.next->prev = slot;
		s->conns.next = slot;
		pthread_mutex_unlock(&s->lock);
	} else if (what == MHD_CONNECTION_NOTIFY_CLOSED && slot) {
		if (slot->next) {
			pthread_mutex_lock(&s->lock);
			slot->prev->next = slot->next;
			slot->next->prev = slot->prev;
			pthread_mutex_unlock(&s->lock);
		}
		free(slot);
		*ctx = NULL;
	}
}

static struct conn_slot *slot_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static void set_serving(struct ls_prom_server *s, struct MHD_Connection *c, bool serving)
{
	struct conn_slot *slot = slot_of(c);

	if (!slot)
		return;
	pthread_mutex_lock(&s->lock);
	slot->serving = serving;
	slot->since_ns = mono_ns();
	pthread_mutex_unlock(&s->lock);
}

/* The response is out (or the request failed): a kept-alive connection
 * gets a fresh deadline for its next request. */
static void on_completed(void *cls, struct MHD_Connection *c, void **state,
			 enum MHD_RequestTerminationCode toe)
{
	(void)state;
	(void)toe;
	set_serving(cls, c, false);
}

static void *reaper_main(void *arg)
{
	struct ls_prom_server *s = arg;

	while (!s->stopping) {
		uint64_t now = mono_ns();

		pthread_mutex_lock(&s->lock);
		for (struct conn_slot *c = s->conns.next; c != &s->conns; c = c->next)
			if (!c->serving && !c->reaped && now - c->since_ns > REQ_DEADLINE_NS) {
				/* libmicrohttpd sees the end of the stream and closes it. */
				shutdown(c->fd, SHUT_RDWR);
				c->reaped = true;
				s->reaped_total++;
			}
		pthread_mutex_unlock(&s->lock);
		usleep(REAP_EVERY_US);
	}
	return NULL;
}

/* CONN_MAX, or half the descriptors this process may open when that is
 * less: the engine needs descriptors too (BPF objects, /proc/PID/mem). */
static unsigned conn_limit(void)
{
	struct rlimit rl;

	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 2 < CONN_MAX)
		return rl.rlim_cur / 2 > 16 ? (unsigned)(rl.rlim_cur / 2) : 16;
	return CONN_MAX;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **state)
{
	struct ls_prom_server *s = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *buf = NULL;
	size_t len = 0;
	unsigned status = MHD_HTTP_OK;
	const char *type = "text/plain; version=0.0.4; charset=utf-8";

	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		static const char msg[] = "only GET\n";

		set_serving(s, c, true);

		r = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
		MHD_destroy_response(r);
		return ret;
	}
	struct ls_mon *m = __atomic_load_n(&s->m, __ATOMIC_ACQUIRE);

	set_serving(s, c, true);

	if (!strcmp(url, "/metrics") && !m) {
		buf = strdup("loopscoped is starting\n");
		len = buf ? strlen(buf) : 0;
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
	} else if (!strcmp(url, "/metrics")) {
		FILE *f = open_memstream(&buf, &len);

		if (!f)
			return MHD_NO;
		if (ls_prom_write(m, f))
			status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		fclose(f);
	} else if (!strcmp(url, "/")) {
		buf = strdup("loopscoped: event-loop metrics at /metrics\n");
		len = buf ? strlen(buf) : 0;
	} else {
		buf = strdup("not found; metrics are at /metrics\n");
		len = buf ? strlen(buf) : 0;
		status = MHD_HTTP_NOT_FOUND;
	}
	if (!buf)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

int ls_prom_start(struct ls_mon *m, const char *host, int port, struct ls_prom_server **out,
		  char *err, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct ls_prom_server *s;
	socklen_t sl = sizeof(sa);
	int fd, one = 1, e;

	if (!strcmp(host, "*") || !strcmp(host, "0.0.0.0"))
		sa.sin_addr.s_addr = htonl(INADDR_ANY);
	else if (!strcmp(host, "localhost"))
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		snprintf(err, len, "listen address '%s' is not an IPv4 address, localhost or *", host);
		return -EINVAL;
	}
	/* Our own socket, so that "port in use" is reported as such. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = -errno;
		snprintf(err, len, "socket: %s", strerror(errno));
		return e;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1024)) {
		e = -errno;
		if (e == -EADDRINUSE)
			snprintf(err, len, "cannot listen on %s:%d: the port is in use", host, port);
		else
			snprintf(err, len, "cannot listen on %s:%d: %s", host, port, strerror(-e));
		close(fd);
		return e;
	}
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	s->m = m;
	s->port = ntohs(sa.sin_port);
	s->conns.next = s->conns.prev = &s->conns;
	pthread_mutex_init(&s->lock, NULL);
	unsigned limit = conn_limit();

	/* epoll: no FD_SETSIZE ceiling and no cost per idle connection. The
	 * per-address cap keeps one remote host from taking every slot (all
	 * local clients share 127.0.0.1, so the deadline is what protects a
	 * local scraper). */
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
				on_request, s, MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_CONNECTION_TIMEOUT, CONN_IDLE_S,
				MHD_OPTION_CONNECTION_LIMIT, limit,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, limit / 2,
				MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
	if (!s->d) {
		snprintf(err, len, "cannot start the HTTP server on %s:%d", host, port);
		close(fd);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return -EIO;
	}
	if (pthread_create(&s->reaper, NULL, reaper_main, s)) {
		snprintf(err, len, "cannot start the HTTP server on %s:%d: no thread", host, port);
		MHD_stop_daemon(s->d);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return -EAGAIN;
	}
	s->reaper_running = true;
	*out = s;
	return 0;
}

void ls_prom_set_mon(struct ls_prom_server *s, struct ls_mon *m)
{
	__atomic_store_n(&s->m, m, __ATOMIC_RELEASE);
}

int ls_prom_port(const struct ls_prom_server *s)
{
	return s->port;
}

void ls_prom_stop(struct ls_prom_server *s)
{
	if (!s)
		return;
	s->stopping = true;
	if (s->reaper_running)
		pthread_join(s->reaper, NULL);
	MHD_stop_daemon(s->d); /* closes the listening socket too */
	pthread_mutex_destroy(&s->lock);
	free(s);
}
