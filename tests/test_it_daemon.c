// SPDX-License-Identifier: MIT
/*
 * Integration: loopscoped's control socket, `loopscope status` and
 * `loopscope top` (under tmux), containers (unshare), a target that execs
 * into a non-Python binary, SIGHUP and SIGTERM, and bad input (port in
 * use, socket in use or not a socket, config errors with line numbers).
 * Every test starts its own daemon on its own socket and port, with rules
 * that match only the apps it starts (their temp dir is in their command
 * line), and kills what it started.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "daemon.h"
#include "loopscope/ctl.h"
#include "loopscope/loopscope.h"
#include "loopscope/monitor.h"
#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define APP LS_SOURCE_DIR "/examples/python/blocking_sleep.py"
#define PYTHON "/usr/bin/python3"

struct fx {
	struct ls_test_daemon d;
	pid_t apps[4];
	char out[4][128];
	int napps;
};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	ls_test_daemon_init(&f->d, "daemon");
}

/* An app in f's dir (it blocks 150 ms every second for 60 s); its pid. */
static pid_t fx_app(struct fx *f, const char *name)
{
	char log[256], spid[32];
	char *argv[] = { PYTHON, APP, "--log", log, "--every", "1", "--sleep", "0.15", "--duration",
			 "60", NULL };
	int i = f->napps++;

	snprintf(log, sizeof(log), "%s/%s.log", f->d.dir, name);
	f->apps[i] = ls_test_start_target(argv, f->out[i], sizeof(f->out[i]), spid, sizeof(spid), 10000);
	return f->apps[i];
}

/* The line of APP's time.sleep call (its "# the culprit" comment). */
static int app_sleep_line(void)
{
	char *text = ls_test_slurp(APP), *p;
	int line = 1;

	ck_assert_ptr_nonnull(text);
	p = strstr(text, "# the culprit");
	ck_assert_ptr_nonnull(p);
	for (char *c = text; c < p; c++)
		line += *c == '\n';
	free(text);
	return line;
}

static void fx_done(struct fx *f)
{
	for (int i = 0; i < f->napps; i++) {
		ls_test_kill(f->apps[i]);
		unlink(f->out[i]);
	}
	ls_test_daemon_done(&f->d);
}

static json_object *ctl(const char *sock, const char *req_text)
{
	json_object *req = json_tokener_parse(req_text), *resp = NULL;
	int fd = ls_ctl_connect(sock);

	ck_assert_msg(fd >= 0, "connect %s: %s", sock, strerror(-fd));
	if (req)
		ck_assert_int_eq(ls_ctl_call(fd, req, &resp, 5000), 0);
	close(fd);
	json_object_put(req);
	return resp;
}

static json_object *target_of(json_object *list, pid_t pid)
{
	json_object *t, *v;

	if (!json_object_object_get_ex(list, "targets", &t))
		return NULL;
	for (size_t i = 0; i < json_object_array_length(t); i++) {
		json_object *e = json_object_array_get_idx(t, i);

		if (json_object_object_get_ex(e, "pid", &v) && json_object_get_int(v) == pid)
			return e;
	}
	return NULL;
}

/* Wait for the daemon's log to contain needle. */
static bool log_has(struct fx *f, const char *needle, int timeout_ms)
{
	return ls_test_daemon_log_has(&f->d, needle, timeout_ms);
}

static void start_daemon_rule(struct fx *f, const char *rule)
{
	char *args[] = { "--rule", (char *)rule, "--socket", f->d.sock, "--listen", "none", NULL };

	ls_test_daemon_start(&f->d, args);
}

static void stop_daemon(struct fx *f)
{
	ls_test_daemon_stop(&f->d);
}

/* Connect, wait delay_ms, write text as is, read n answer lines (at most
 * 5 s). */
static int raw_lines(const char *sock, int delay_ms, const char *text, json_object **lines, int n)
{
	char buf[65536];
	size_t len = 0;
	int fd = ls_ctl_connect(sock), got = 0;

	ck_assert_int_ge(fd, 0);
	usleep((useconds_t)delay_ms * 1000);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char *nl;
		ssize_t r;

		if (poll(&p, 1, 5000) <= 0)
			break;
		r = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		while (got < n && (nl = memchr(buf, '\n', len))) {
			*nl = '\0';
			lines[got++] = json_tokener_parse(buf);
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len);
		}
	}
	close(fd);
	return got;
}

/* A slow event of duration d from a 150 ms time.sleep of the app
 * blocking_sleep.py: at least 145 ms, at most 160 ms plus what the app
 * waited for a CPU over the time the events come from (waited_ns: its
 * schedstat run_delay, ls_test_runq; the event holds the wait for a CPU
 * after the sleep ends, 15.5 ms seen beside two CPU hogs; ~0 on a quiet
 * machine, where the bound is 150 ms within 10 ms). */
static bool is_150ms_block(uint64_t d, uint64_t waited_ns)
{
	return d >= 145000000ULL && d <= 160000000ULL + waited_ns;
}

/* ---- control socket and status ------------------------------------------- */

START_TEST(test_status_and_control_socket)
{
	struct fx f;
	char rule[200], req[200], pidtxt[32];
	json_object *r, *t, *v;
	pid_t a, b;

	int sleep_line = app_sleep_line();

	struct ls_test_runq qa, qb;

	fx_init(&f);
	a = fx_app(&f, "ruled");
	b = fx_app(&f, "manual"); /* attached by hand below */
	ls_test_runq_start(&qa, a);
	ls_test_runq_start(&qb, b);
	snprintf(rule, sizeof(rule), "service=web,cmdline=*%s/ruled*", f.d.dir);
	start_daemon_rule(&f, rule);

	/* list: the ruled app, with its ids and mode */
	r = ctl(f.d.sock, "{\"cmd\":\"list\"}");
	t = target_of(r, a);
	ck_assert_msg(t, "pid %d not listed: %s", a, json_object_to_json_string(r));
	ck_assert_str_eq(json_object_get_string(json_object_object_get(t, "service")), "web");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(t, "ns_pid")), a);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(t, "mode")), "light");
	ck_assert_ptr_null(target_of(r, b));
	json_object_put(r);

	/* attach and detach by hand */
	snprintf(req, sizeof(req), "{\"cmd\":\"attach\",\"pid\":%d,\"service\":\"adhoc-checkout-api\",\"mode\":\"precise\"}", b);
	r = ctl(f.d.sock, req);
	ck_assert_msg(json_object_get_boolean(json_object_object_get(r, "ok")), "%s", json_object_to_json_string(r));
	json_object_put(r);
	r = ctl(f.d.sock, req); /* twice: an error, one line */
	ck_assert(!json_object_get_boolean(json_object_object_get(r, "ok")));
	ck_assert_ptr_nonnull(strstr(json_object_get_string(json_object_object_get(r, "error")), "already monitored"));
	json_object_put(r);
	ck_assert(log_has(&f, "service adhoc-checkout-api): precise mode, CPython", 10000));
	r = ctl(f.d.sock, "{\"cmd\":\"list\"}");
	t = target_of(r, b);
	ck_assert_ptr_nonnull(t);
	ck_assert(json_object_get_boolean(json_object_object_get(t, "manual")));
	json_object_put(r);

	{
		/* A client that sends detach and hangs up: its answer goes
		 * nowhere, never to the next client (which may get its fd and
		 * asks only after the engine had time to answer). */
		for (int round = 0; round < 3; round++) {
			json_object *l[1] = { 0 };
			int fd = ls_ctl_connect(f.d.sock);
			const char *d = "{\"cmd\":\"detach\",\"pid\":999999999}\n";

			ck_assert_int_ge(fd, 0);
			ck_assert_int_eq(write(fd, d, strlen(d)), (ssize_t)strlen(d));
			close(fd);
			ck_assert_int_eq(raw_lines(f.d.sock, 250, "{\"cmd\":\"list\"}\n", l, 1), 1);
			ck_assert_msg(json_object_object_get_ex(l[0], "targets", NULL),
				      "another client's answer: %s", json_object_to_json_string(l[0]));
			json_object_put(l[0]);
		}
	}

	{
		/* Answers in the order of the requests, in one write: detach and
		 * attach (run by the engine's thread), then list (answered by
		 * the socket's thread), which must show the new attach. */
		json_object *l[3] = { 0 };

		snprintf(req, sizeof(req), "{\"cmd\":\"detach\",\"pid\":%d}\n"
			 "{\"cmd\":\"attach\",\"pid\":%d,\"service\":\"adhoc-checkout-api\",\"mode\":\"precise\"}\n"
			 "{\"cmd\":\"list\"}\n", b, b);
		ck_assert_int_eq(raw_lines(f.d.sock, 0, req, l, 3), 3);
		for (int i = 0; i < 2; i++)
			ck_assert_msg(json_object_get_boolean(json_object_object_get(l[i], "ok")) &&
				      !json_object_object_get_ex(l[i], "targets", NULL),
				      "answer %d: %s", i, json_object_to_json_string(l[i]));
		ck_assert_msg(target_of(l[2], b), "list before the attach: %s",
			      json_object_to_json_string(l[2]));
		for (int i = 0; i < 3; i++)
			json_object_put(l[i]);
	}
	/* errors: one line each, never a crash */
	static const struct { const char *req, *want; } bad[] = {
		{ "{\"cmd\":\"attach\",\"pid\":999999999}", "no such process" },
		{ "{\"cmd\":\"attach\",\"pid\":\"x\"}", "positive integer" },
		{ "{\"cmd\":\"attach\",\"pid\":1,\"mode\":\"fast\"}", "\"mode\"" },
		{ "{\"cmd\":\"detach\",\"pid\":999999999}", "not monitored" },
		{ "{\"cmd\":\"reboot\"}", "unknown cmd" },
		{ "{\"nocmd\":1}", "\"cmd\"" },
		{ "[1,2]", "\"cmd\"" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = ctl(f.d.sock, bad[i].req);
		ck_assert_msg(!json_object_get_boolean(json_object_object_get(r, "ok")) &&
			      strstr(json_object_get_string(json_object_object_get(r, "error")), bad[i].want),
			      "%s -> %s", bad[i].req, json_object_to_json_string(r));
		json_object_put(r);
	}
	{
		/* Not JSON at all: an error answer, the connection stays usable. */
		int fd = ls_ctl_connect(f.d.sock);
		json_object *ok = json_tokener_parse("{\"cmd\":\"list\"}");

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, "garbage\n", 8), 8);
		ck_assert_int_eq(ls_ctl_call(fd, ok, &r, 5000), 0);
		/* The first answer is the error for the garbage line. */
		ck_assert(!json_object_get_boolean(json_object_object_get(r, "ok")));
		json_object_put(r);
		close(fd);
		json_object_put(ok);
	}

	/* status: both, with a slow event measured from each (150 ms blocks) */
	sleep(2);
	/* #17 item 8: the light-mode target's CPython version is known too */
	r = ctl(f.d.sock, "{\"cmd\":\"list\"}");
	t = target_of(r, a);
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(t, "mode")), "light");
	ck_assert_msg(!strncmp(json_object_get_string(json_object_object_get(t, "python")), "3.", 2),
		      "light target's python: %s", json_object_to_json_string(t));
	json_object_put(r);
	/* #17 item 7: one label-free log line per slow event, named by its
	 * application frame; waited for: then the targets' stacks are set up,
	 * and the last events below have their frames. */
	snprintf(req, sizeof(req), "(service adhoc-checkout-api): slow callback 15");
	ck_assert_msg(log_has(&f, req, 15000), "no log line with '%s'", req);
	{
		char want[200];

		snprintf(want, sizeof(want), "at blocking_sleep blocking_sleep.py:%d: blocking_sleep()",
			 sleep_line);
		ck_assert_msg(log_has(&f, want, 15000), "no log line with '%s'", want);
		snprintf(want, sizeof(want), "(service web): slow busy period 15");
		ck_assert_msg(log_has(&f, want, 15000), "no log line with '%s'", want);
		snprintf(want, sizeof(want), "at blocking_sleep blocking_sleep.py:%d: busy: ", sleep_line);
		ck_assert_msg(log_has(&f, want, 15000), "no log line with '%s'", want);
	}
	{
		struct ls_test_out o = { 0 };
		char *argv[] = { LOOPSCOPE, "status", "--socket", f.d.sock, "--json", NULL };
		json_object *s, *slow, *last_a = NULL, *last_b = NULL;
		int sa = 0, sb = 0, framed = 0;

		ck_assert_int_eq(ls_test_run_capture(&o, argv, 20000), 0);
		ls_test_runq_sample(&qa);
		ls_test_runq_sample(&qb);
		s = json_tokener_parse(o.stdout_text);
		ck_assert_ptr_nonnull(s);
		ck_assert_str_eq(json_object_get_string(json_object_object_get(s, "source")), "daemon");
		ck_assert(json_object_object_get_ex(s, "slow", &slow));
		for (size_t i = 0; i < json_object_array_length(slow); i++) {
			json_object *e = json_object_array_get_idx(slow, i);
			int pid = json_object_get_int(json_object_object_get(e, "pid"));
			uint64_t d = json_object_get_uint64(json_object_object_get(e, "duration_ns"));

			/* 150 ms of time.sleep: within 10 ms */
			if (is_150ms_block(d, ls_test_runq_waited_ns(pid == a ? &qa : &qb))) {
				sa += pid == a;
				sb += pid == b;
				/* #17 item 7: named by the culprit and application
				 * frames, the app's time.sleep line, in light (a) and
				 * precise (b) mode alike: every event once the
				 * target's stacks are set up (the last ones surely). */
				if (pid == a)
					last_a = e;
				if (pid == b)
					last_b = e;
				for (int k = 0; k < 2; k++) {
					json_object *fr = json_object_object_get(e, k ? "culprit_frame" : "app_frame");
					const char *fn = json_object_get_string(json_object_object_get(fr, "function"));
					const char *file = json_object_get_string(json_object_object_get(fr, "file"));

					if (!fr)
						continue; /* before its stacks were set up */
					framed += pid == a || pid == b;
					ck_assert_msg(fn && !strcmp(fn, "blocking_sleep") && file &&
						      !strcmp(file, APP) &&
						      json_object_get_int(json_object_object_get(fr, "line")) == sleep_line,
						      "%s of %s: want blocking_sleep %s:%d", k ? "culprit_frame" : "app_frame",
						      json_object_to_json_string(e), APP, sleep_line);
				}
			}
		}
		ck_assert_msg(sa > 0 && sb > 0, "slow events: %s", json_object_to_json_string(slow));
		ck_assert_msg(json_object_object_get(last_a, "app_frame") &&
			      json_object_object_get(last_b, "app_frame") &&
			      json_object_object_get(last_a, "culprit_frame") &&
			      json_object_object_get(last_b, "culprit_frame") && framed > 0,
			      "the last slow events have no frames: %s", json_object_to_json_string(slow));

		json_object_put(s);
		ls_test_out_free(&o);
	}
	{
		struct ls_test_out o = { 0 };
		char *argv[] = { LOOPSCOPE, "status", "--socket", f.d.sock, NULL };

		ck_assert_int_eq(ls_test_run_capture(&o, argv, 20000), 0);
		snprintf(pidtxt, sizeof(pidtxt), "%d", a);
		ck_assert_ptr_nonnull(strstr(o.stdout_text, pidtxt));
		ck_assert_ptr_nonnull(strstr(o.stdout_text, "blocking_sleep() blocking_sleep.py:17"));
		/* the application frame first */
		snprintf(req, sizeof(req), " blocking_sleep blocking_sleep.py:%d \u2190 ", sleep_line);
		ck_assert_msg(strstr(o.stdout_text, req), "status: %s", o.stdout_text);
		/* #17 item 8: SERVICE is not cut to 12 characters */
		ck_assert_msg(strstr(o.stdout_text, " adhoc-checkout-api "), "status: %s", o.stdout_text);
		ls_test_out_free(&o);
	}
	snprintf(req, sizeof(req), "{\"cmd\":\"detach\",\"pid\":%d}", b);
	r = ctl(f.d.sock, req);
	ck_assert(json_object_get_boolean(json_object_object_get(r, "ok")));
	json_object_put(r);
	r = ctl(f.d.sock, "{\"cmd\":\"list\"}");
	ck_assert_ptr_null(target_of(r, b));
	ck_assert(json_object_object_get_ex(r, "targets", &v));
	json_object_put(r);
	stop_daemon(&f);
	fx_done(&f);
}
END_TEST

/* No daemon on the socket: status runs the engine in-process on -p. */
START_TEST(test_status_in_process_without_daemon)
{
	struct fx f;
	struct ls_test_out o = { 0 };
	char pidtxt[16], *argv[] = { LOOPSCOPE, "status", "--socket", NULL, "-p", pidtxt, "-i", "1500ms",
				     "--json", NULL };
	json_object *s, *threads, *slow;
	bool thread = false, blocked = false;
	pid_t a;

	fx_init(&f);
	struct ls_test_runq q;

	a = fx_app(&f, "alone");
	snprintf(pidtxt, sizeof(pidtxt), "%d", a);
	argv[3] = f.d.sock; /* nobody listens there */
	ls_test_runq_start(&q, a);
	ck_assert_int_eq(ls_test_run_capture(&o, argv, 30000), 0);
	ls_test_runq_sample(&q);
	s = json_tokener_parse(o.stdout_text);
	ck_assert_msg(s, "not JSON: %s", o.stdout_text);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(s, "source")), "in-process");
	ck_assert(json_object_object_get_ex(s, "threads", &threads));
	for (size_t i = 0; i < json_object_array_length(threads); i++)
		thread |= json_object_get_int(json_object_object_get(json_object_array_get_idx(threads, i),
								     "pid")) == a;
	ck_assert(json_object_object_get_ex(s, "slow", &slow));
	for (size_t i = 0; i < json_object_array_length(slow); i++) {
		uint64_t d = json_object_get_uint64(json_object_object_get(json_object_array_get_idx(slow, i),
									   "duration_ns"));

		blocked |= is_150ms_block(d, ls_test_runq_waited_ns(&q));
	}
	ck_assert_msg(thread && blocked, "in-process status: %s", o.stdout_text);
	json_object_put(s);
	ls_test_out_free(&o);
	fx_done(&f);
}
END_TEST

/* ---- top under tmux --------------------------------------------------------- */

/* The tmux server of the running test, killed at exit even when an
 * assertion fails (Check's forked test process exits through exit()). */
static char tmux_sock[128];

static void tmux_kill_server(void)
{
	char cmd[256];

	if (tmux_sock[0]) {
		snprintf(cmd, sizeof(cmd), "tmux -S %s kill-server 2>/dev/null", tmux_sock);
		if (system(cmd)) {
			/* gone already */
		}
	}
}

static int tmux(const char *tsock, const char *args, char **out)
{
	struct ls_test_out o = { 0 };
	char cmd[1024];
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	int rc;

	snprintf(cmd, sizeof(cmd), "TERM=xterm-256color tmux -S %s %s", tsock, args);
	rc = ls_test_run_capture(&o, argv, 20000);
	if (out)
		*out = o.stdout_text ? strdup(o.stdout_text) : strdup("");
	ls_test_out_free(&o);
	return rc;
}

START_TEST(test_top_under_tmux)
{
	struct fx f;
	char rule[200], tsock[128], args[600], *screen = NULL, pa[16], pb[16];
	pid_t a, b;
	bool ok = false;

	if (access("/usr/bin/tmux", X_OK)) {
		fprintf(stderr, "it_daemon: top: skipped: tmux is not installed\n");
		return;
	}
	fx_init(&f);
	a = fx_app(&f, "a");
	b = fx_app(&f, "b");
	snprintf(pa, sizeof(pa), "%d", a);
	snprintf(pb, sizeof(pb), "%d", b);
	snprintf(rule, sizeof(rule), "service=shop,cmdline=*%s/*,mode=precise", f.d.dir);
	start_daemon_rule(&f, rule);
	snprintf(tsock, sizeof(tsock), "%s/tmux.sock", f.d.dir);
	snprintf(tmux_sock, sizeof(tmux_sock), "%s", tsock);
	atexit(tmux_kill_server);
	/* A shell in a 160x40 pane; top runs in it, so that what it leaves
	 * behind (screen, tty modes) is seen afterwards. */
	ck_assert_int_eq(tmux(tsock, "new-session -d -s top -x 160 -y 40 /bin/sh", NULL), 0);
	/* top last on its line: the shell goes on with the rest of a list
	 * when Ctrl-Z stops a command. Its exit status is asked for after q. */
	snprintf(args, sizeof(args), "send-keys -t top 'echo BEFORE-TOP; %s top --socket %s' Enter",
		 LOOPSCOPE, f.d.sock);
	ck_assert_int_eq(tmux(tsock, args, NULL), 0);
	/* Both apps listed and a slow callback named, within 8 s. */
	for (int i = 0; i < 80 && !ok; i++) {
		usleep(100000);
		free(screen);
		tmux(tsock, "capture-pane -p -t top", &screen);
		ok = strstr(screen, "loopscope top") && strstr(screen, pa) && strstr(screen, pb) &&
		     strstr(screen, "blocking_sleep() blocking_sleep.py:17");
	}
	ck_assert_msg(ok, "top screen lacks the apps or a slow event:\n%s", screen);
	ck_assert_ptr_null(strstr(screen, "BEFORE-TOP")); /* the alternate screen */
	/* Ctrl-Z: the shell's screen while stopped; fg: top again. */
	ck_assert_int_eq(tmux(tsock, "send-keys -t top C-z", NULL), 0);
	ok = false;
	for (int i = 0; i < 30 && !ok; i++) {
		usleep(100000);
		free(screen);
		tmux(tsock, "capture-pane -p -t top", &screen);
		ok = strstr(screen, "BEFORE-TOP") && !strstr(screen, "(q quits)");
	}
	ck_assert_msg(ok, "top kept the screen when stopped:\n%s", screen);
	ck_assert_int_eq(tmux(tsock, "send-keys -t top fg Enter", NULL), 0);
	ok = false;
	for (int i = 0; i < 30 && !ok; i++) {
		usleep(100000);
		free(screen);
		tmux(tsock, "capture-pane -p -t top", &screen);
		ok = strstr(screen, "(q quits)") && !strstr(screen, "BEFORE-TOP");
	}
	ck_assert_msg(ok, "top did not come back after fg:\n%s", screen);
	ck_assert_int_eq(tmux(tsock, "send-keys -t top q", NULL), 0);
	ck_assert_int_eq(tmux(tsock, "send-keys -t top 'echo AFTER-TOP rc=$?' Enter", NULL), 0);
	ok = false;
	for (int i = 0; i < 50 && !ok; i++) {
		usleep(100000);
		free(screen);
		tmux(tsock, "capture-pane -p -t top", &screen);
		ok = strstr(screen, "AFTER-TOP rc=0") != NULL;
	}
	ck_assert_msg(ok, "top did not quit on q:\n%s", screen);
	/* The terminal is back: the shell's screen (not top's), and canonical
	 * mode with echo. */
	ck_assert_ptr_nonnull(strstr(screen, "BEFORE-TOP"));
	ck_assert_ptr_null(strstr(screen, "(q quits)")); /* top's header line */
	ck_assert_int_eq(tmux(tsock, "send-keys -t top 'stty -a | tr \" \" \"\\\\n\" | grep -xE -e \"-?(icanon|echo)\" | tr \"\\\\n\" \" \"; echo' Enter", NULL), 0);
	ok = false;
	for (int i = 0; i < 30 && !ok; i++) {
		usleep(100000);
		free(screen);
		tmux(tsock, "capture-pane -p -t top", &screen);
		ok = strstr(screen, "icanon echo") != NULL;
	}
	ck_assert_msg(ok, "tty modes not restored:\n%s", screen);
	free(screen);
	tmux(tsock, "kill-server", NULL);
	stop_daemon(&f);
	fx_done(&f);
}
END_TEST

/* ---- containers --------------------------------------------------------------- */

START_TEST(test_container_target_in_own_pid_and_mount_ns)
{
	struct fx f;
	char rule[200], log[256], line[256];
	char *argv[] = { "/usr/bin/unshare", "--pid", "--mount", "--fork", PYTHON, APP, "--log", log,
			 "--every", "1", "--sleep", "0.15", "--duration", "60", NULL };
	json_object *r, *t = NULL, *targets;
	pid_t outer;
	int host_pid = 0;
	struct ls_test_runq q;

	fx_init(&f);
	snprintf(rule, sizeof(rule), "service=boxed,cmdline=*%s/boxed*,mode=precise", f.d.dir);
	start_daemon_rule(&f, rule);
	snprintf(log, sizeof(log), "%s/boxed.log", f.d.dir);
	/* Started after the daemon: found by its exec event. */
	snprintf(f.out[0], sizeof(f.out[0]), "%s/boxed.out", f.d.dir);
	outer = ls_test_spawn(argv, f.out[0], NULL);
	ck_assert_int_gt(outer, 0);
	f.apps[f.napps++] = outer;
	/* The app prints its own pid: 1 in its namespace. */
	ck_assert_int_eq(ls_test_wait_line(f.out[0], "pid ", 10000, line, sizeof(line)), 0);
	ck_assert_str_eq(line, "pid 1");
	ck_assert(log_has(&f, "service boxed, pid 1 in its namespace): attached", 10000));
	ck_assert(log_has(&f, "service boxed): precise mode, CPython", 10000));
	r = ctl(f.d.sock, "{\"cmd\":\"list\"}");
	ck_assert(json_object_object_get_ex(r, "targets", &targets));
	for (size_t i = 0; i < json_object_array_length(targets); i++) {
		json_object *e = json_object_array_get_idx(targets, i);

		if (json_object_get_int(json_object_object_get(e, "ns_pid")) == 1)
			t = e;
	}
	ck_assert_msg(t, "no target with ns_pid 1: %s", json_object_to_json_string(r));
	host_pid = json_object_get_int(json_object_object_get(t, "pid"));
	ck_assert_int_gt(host_pid, 1);
	ck_assert(json_object_get_boolean(json_object_object_get(t, "precise")));
	json_object_put(r);
	ls_test_runq_start(&q, host_pid);
	/* Measured: its 150 ms blocks (busy periods, within 10 ms plus its
	 * wait for a CPU) and the blocking callback, named, by its host pid. */
	{
		bool named = false, busy = false;
		char *log;

		for (int i = 0; i < 60 && !(named && busy); i++) {
			json_object *ev;

			usleep(100000);
			ls_test_runq_sample(&q);
			r = ctl(f.d.sock, "{\"cmd\":\"slow\"}");
			ck_assert(json_object_object_get_ex(r, "events", &ev));
			for (size_t j = 0; j < json_object_array_length(ev); j++) {
				json_object *e = json_object_array_get_idx(ev, j);
				uint64_t d = json_object_get_uint64(json_object_object_get(e, "duration_ns"));

				if (json_object_get_int(json_object_object_get(e, "pid")) != host_pid)
					continue;
				named |= !strcmp(json_object_get_string(json_object_object_get(e, "what")),
						 "blocking_sleep() blocking_sleep.py:17");
				busy |= !strcmp(json_object_get_string(json_object_object_get(e, "kind")), "busy") &&
					is_150ms_block(d, ls_test_runq_waited_ns(&q));
			}
			if (!(named && busy) && i == 59)
				fprintf(stderr, "it_daemon: container: events %s\n", json_object_to_json_string(ev));
			json_object_put(r);
		}
		log = ls_test_slurp(f.d.err);
		ck_assert_msg(busy, "pid %d: no 150 ms slow busy period; daemon log:\n%.2000s", host_pid, log);
		/* Twice, early on, no callback was named here while other
		 * agents' uprobes were live on the same binary; not seen since
		 * and not understood, so a failure, not a warning. */
		ck_assert_msg(named, "container pid %d: precise mode active but no named slow callback; "
			      "daemon log:\n%.2000s", host_pid, log);
		free(log);
	}
	fprintf(stderr, "it_daemon: container app: host pid %d, pid 1 in its namespace, precise mode\n",
		host_pid);
	stop_daemon(&f);
	/* unshare --fork: killing it leaves its child (pid 1 inside) to be
	 * killed with the namespace. */
	kill(host_pid, SIGKILL);
	fx_done(&f);
}
END_TEST

/* ---- exec into a non-Python binary -------------------------------------------- */

START_TEST(test_target_execs_non_python)
{
	struct fx f;
	char script[512], pidtxt[16], needle[128], go[128];
	char *argv[] = { PYTHON, "-c", script, NULL };
	pid_t p;

	fx_init(&f);
	/* An asyncio loop until the test creates go (once the daemon set up
	 * precise mode: a fixed 1.5 s raced the set-up beside two CPU hogs),
	 * then exec sleep 20: alive through the engine's resolve retries (0.4,
	 * 1 and 3 s after the exec, each behind whatever the set-up worker is
	 * doing), so the last one says "not a Python process" rather than
	 * finding it gone (a sleep 5 raced it on a loaded machine). */
	snprintf(go, sizeof(go), "%s/go", f.d.dir);
	snprintf(script, sizeof(script),
		 "import asyncio, os\n"
		 "async def main():\n"
		 "    while not os.path.exists('%s'):\n"
		 "        await asyncio.sleep(0.01)\n"
		 "asyncio.run(main())\n"
		 "os.execv('/bin/sleep', ['sleep', '20'])  # %s\n", go, f.d.dir);
	p = ls_test_spawn(argv, NULL, NULL);
	ck_assert_int_gt(p, 0);
	f.apps[f.napps++] = p;
	snprintf(pidtxt, sizeof(pidtxt), "%d", p);
	{
		char *args[] = { "-p", pidtxt, "--mode", "precise", "--service", "morph", "--socket",
				 f.d.sock, "--listen", "none", NULL };

		ls_test_daemon_start(&f.d, args);
	}
	snprintf(needle, sizeof(needle), "pid %d (python3, service morph): precise mode", p);
	ck_assert(log_has(&f, needle, 10000));
	{
		FILE *g = fopen(go, "w");

		ck_assert_ptr_nonnull(g);
		fclose(g);
	}
	/* The pid rule still matches the new program: it stays a target, at
	 * epoll level, with one line saying why. */
	snprintf(needle, sizeof(needle), "pid %d (sleep, service morph): exec'd /usr/bin/sleep", p);
	ck_assert(log_has(&f, needle, 10000));
	ck_assert(log_has(&f, "not a Python process", 10000));
	ck_assert(log_has(&f, "; light mode", 10000));
	/* #17 item 8: a target that exited is not detached from. */
	{
		int status;

		kill(p, SIGKILL);
		ck_assert_int_eq(ls_test_wait(p, 5000, &status), 0);
		if (f.napps && f.apps[f.napps - 1] == p)
			f.napps--; /* reaped: not to be killed again */
	}
	stop_daemon(&f);
	ck_assert(log_has(&f, "detaching from 0 processes (1 had exited)", 1000));
	fx_done(&f);
}
END_TEST

/* ---- SIGHUP and SIGTERM --------------------------------------------------------- */

static uint64_t iterations_of(const char *sock, pid_t pid)
{
	json_object *r = ctl(sock, "{\"cmd\":\"stats\"}"), *th;
	uint64_t n = 0;

	if (json_object_object_get_ex(r, "threads", &th))
		for (size_t i = 0; i < json_object_array_length(th); i++) {
			json_object *e = json_object_array_get_idx(th, i);

			if (json_object_get_int(json_object_object_get(e, "pid")) == pid)
				n = json_object_get_uint64(json_object_object_get(e, "iterations_total"));
		}
	json_object_put(r);
	return n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Poll the daemon's stats every 100 ms until pid's iterations_total is
 * above `above`; every sample is at least `floor` and at least the one
 * before (a reload keeps the histograms: a counter reset would show as a
 * drop on the way up). Fails the test when base_ms, plus what the app and
 * the daemon waited for a CPU meanwhile (schedstat run_delay of every
 * thread of each, ls_test_runq), pass first: base_ms is what a quiet
 * machine needs (the app ticks every 10 ms, ~90 iterations a second; the
 * daemon publishes once a 1 s window); a starved app makes fewer
 * iterations and a starved daemon attaches and publishes later, by what
 * they waited. Returns the last sample.
 */
static uint64_t wait_iterations_above(struct fx *f, pid_t pid, uint64_t floor, uint64_t above,
				      int base_ms, const char *what)
{
	struct ls_test_runq qa, qd;
	int64_t t0 = now_ms(), waited_ms = 0;
	uint64_t n = 0, prev = floor;

	ls_test_runq_start(&qa, pid);
	ls_test_runq_start(&qd, f->d.pid);
	for (;;) {
		n = iterations_of(f->d.sock, pid);
		ck_assert_msg(n >= prev, "%s: iterations of pid %d went from %llu to %llu", what, pid,
			      (unsigned long long)prev, (unsigned long long)n);
		prev = n;
		if (n > above)
			break;
		ls_test_runq_sample(&qa);
		ls_test_runq_sample(&qd);
		waited_ms = (int64_t)((ls_test_runq_waited_ns(&qa) + ls_test_runq_waited_ns(&qd)) / 1000000);
		ck_assert_msg(now_ms() - t0 <= base_ms + waited_ms,
			      "%s: %llu iterations of pid %d after %lld ms, want more than %llu within "
			      "%d ms + %lld ms the app and the daemon waited for a CPU", what,
			      (unsigned long long)n, pid, (long long)(now_ms() - t0), (unsigned long long)above,
			      base_ms, (long long)waited_ms);
		usleep(100000);
	}
	fprintf(stderr, "it_daemon: %s: %llu iterations of pid %d after %lld ms (bound %d ms + %lld ms "
		"waited for a CPU)\n", what, (unsigned long long)n, pid, (long long)(now_ms() - t0), base_ms,
		(long long)waited_ms);
	return n;
}

START_TEST(test_sighup_reloads_keeping_histograms_sigterm_detaches)
{
	struct fx f;
	char *leftovers, *after;
	pid_t a, b;
	uint64_t before, later;
	int links;

	fx_init(&f);
	a = fx_app(&f, "first");
	b = fx_app(&f, "second");
	leftovers = ls_test_bpf_leftovers();
	ls_test_daemon_start_conf(&f.d, "socket = \"%s\";\nlisten = \"\";\nrules = (\n"
				  "  { service = \"one\"; cmdline = \"*%s/first*\"; mode = \"precise\"; }\n);\n",
				  f.d.sock, f.d.dir);
	before = wait_iterations_above(&f, a, 0, 50, 2000, "first rule");
	ck_assert_uint_eq(iterations_of(f.d.sock, b), 0);
	/* A second rule, a new threshold; the first target keeps counting. */
	ls_test_daemon_write_conf(&f.d, "socket = \"%s\";\nlisten = \"\";\nthreshold = \"50ms\";\nrules = (\n"
				  "  { service = \"one\"; cmdline = \"*%s/first*\"; mode = \"precise\"; },\n"
				  "  { service = \"two\"; cmdline = \"*%s/second*\"; }\n);\n",
				  f.d.sock, f.d.dir, f.d.dir);
	kill(f.d.pid, SIGHUP);
	ck_assert(log_has(&f, "reloaded: 2 rules, 2 targets", 10000));
	later = wait_iterations_above(&f, a, before, before + 50, 2000, "after SIGHUP"); /* not reset */
	fprintf(stderr, "it_daemon: iterations of pid %d: %llu before SIGHUP, %llu after\n", a,
		(unsigned long long)before, (unsigned long long)later);
	wait_iterations_above(&f, b, 0, 0, 2000, "second rule");
	/* A broken config: the old one stays, the daemon lives on. */
	ls_test_daemon_write_conf(&f.d, "rules = ( { service = \"x\"; mode = \"fast\"; cmdline = \"y\"; } );\n");
	kill(f.d.pid, SIGHUP);
	ck_assert(log_has(&f, "loopscoped.conf:1: rule 1: unknown mode 'fast'", 10000));
	ck_assert(log_has(&f, "reload failed; the old configuration stays", 10000));
	wait_iterations_above(&f, a, later, later, 1500, "after the failed reload"); /* a window later */

	/* SIGTERM: everything detached, exit 0, socket removed, nothing left. */
	links = ls_test_bpf_links_of(f.d.pid);
	ck_assert_int_gt(links, 11); /* tracepoints + the precise target's uprobes */
	stop_daemon(&f);
	ck_assert(log_has(&f, "detaching from 2 processes", 1000));
	ck_assert_int_ne(access(f.d.sock, F_OK), 0);
	after = ls_test_bpf_leftovers();
	ck_assert_str_eq(after, leftovers);
	free(after);
	free(leftovers);
	fx_done(&f);
}
END_TEST

/* ---- more matching processes than max_targets --------------------------------- */

START_TEST(test_max_targets_limit)
{
	struct fx f;
	char rule[200];
	json_object *r, *t;

	fx_init(&f);
	fx_app(&f, "m1");
	fx_app(&f, "m2");
	fx_app(&f, "m3");
	snprintf(rule, sizeof(rule), "service=many,cmdline=*%s/m*", f.d.dir);
	{
		char *args[] = { "--rule", rule, "--socket", f.d.sock, "--listen", "none", "--max-targets",
				 "2", NULL };

		ls_test_daemon_start(&f.d, args);
	}
	/* Two monitored, one line about the rest; the daemon goes on. */
	ck_assert(log_has(&f, "2 targets already (max_targets); more matching processes are not "
			      "monitored", 5000));
	r = ctl(f.d.sock, "{\"cmd\":\"list\"}");
	ck_assert(json_object_object_get_ex(r, "targets", &t));
	ck_assert_int_eq(json_object_array_length(t), 2);
	json_object_put(r);
	stop_daemon(&f);
	fx_done(&f);
}
END_TEST

/* ---- one pid, one set of series ------------------------------------------------ */

/* Lines of a Prometheus page that repeat a series (name and labels) of
 * pid; 0 when every series is there once. */
static int duplicate_series(const char *page, pid_t pid, int *nseries)
{
	char needle[32], *copy = strdup(page), *save = NULL, **seen = NULL;
	int n = 0, dups = 0;

	snprintf(needle, sizeof(needle), "pid=\"%d\"", (int)pid);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *sp = strrchr(l, ' ');

		if (l[0] == '#' || !sp || !strstr(l, needle))
			continue;
		*sp = '\0';
		for (int i = 0; i < n; i++)
			if (!strcmp(seen[i], l)) {
				fprintf(stderr, "it_daemon: duplicate series %s\n", l);
				dups++;
			}
		seen = realloc(seen, (size_t)(n + 1) * sizeof(*seen));
		seen[n++] = l;
	}
	*nseries = n;
	free(seen);
	free(copy);
	return dups;
}

START_TEST(test_reload_drops_rule_then_manual_attach_no_duplicates)
{
	struct fx f;
	char listen[64], req[200], *page = NULL;
	json_object *r;
	pid_t a;
	int port, n = 0, st;

	fx_init(&f);
	a = fx_app(&f, "dup");
	port = ls_test_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	ls_test_daemon_start_conf(&f.d, "socket = \"%s\";\nlisten = \"%s\";\ninterval = \"200ms\";\n"
		   "rules = ( { service = \"svc\"; cmdline = \"*%s/dup*\"; } );\n", f.d.sock, listen, f.d.dir);
	usleep(400000);
	/* The rule goes; the process stays in its grace period (30 s) ... */
	ls_test_daemon_write_conf(&f.d, "socket = \"%s\";\nlisten = \"%s\";\ninterval = \"200ms\";\n", f.d.sock, listen);
	kill(f.d.pid, SIGHUP);
	ck_assert(log_has(&f, "no rule matches it any more; detached", 5000));
	/* ... and is attached by hand under the same service. */
	snprintf(req, sizeof(req), "{\"cmd\":\"attach\",\"pid\":%d,\"service\":\"svc\"}", a);
	r = ctl(f.d.sock, req);
	ck_assert_msg(json_object_get_boolean(json_object_object_get(r, "ok")), "%s",
		      json_object_to_json_string(r));
	json_object_put(r);
	usleep(400000); /* windows of the new entry */
	st = ls_test_http_get(port, "/metrics", &page, 5000);
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(duplicate_series(page, a, &n), 0);
	ck_assert_msg(n > 0, "no series of pid %d:\n%s", a, page);
	free(page);
	r = ctl(f.d.sock, "{\"cmd\":\"list\"}");
	ck_assert_int_eq(json_object_array_length(json_object_object_get(r, "targets")), 1);
	json_object_put(r);
	/* detach: gone from the list and the page, and detached for real. */
	snprintf(req, sizeof(req), "{\"cmd\":\"detach\",\"pid\":%d}", a);
	r = ctl(f.d.sock, req);
	ck_assert(json_object_get_boolean(json_object_object_get(r, "ok")));
	json_object_put(r);
	r = ctl(f.d.sock, "{\"cmd\":\"list\"}");
	ck_assert_ptr_null(target_of(r, a));
	json_object_put(r);
	r = ctl(f.d.sock, req);
	ck_assert(!json_object_get_boolean(json_object_object_get(r, "ok"))); /* not monitored */
	json_object_put(r);
	st = ls_test_http_get(port, "/metrics", &page, 5000);
	ck_assert_int_eq(st, 200);
	duplicate_series(page, a, &n);
	ck_assert_msg(n == 0, "series of pid %d after detach:\n%s", a, page);
	free(page);
	stop_daemon(&f);
	fx_done(&f);
}
END_TEST

/* ---- counters never go down ------------------------------------------------------ */

/* Sum of the values of metric name (exactly: "name{") for pid on a page;
 * -1 when there is none. */
static double metric_of(const char *page, const char *name, pid_t pid)
{
	char head[128], lab[32];
	double sum = -1;
	size_t hl;

	snprintf(head, sizeof(head), "%s{", name);
	snprintf(lab, sizeof(lab), "pid=\"%d\"", (int)pid);
	hl = strlen(head);
	for (const char *l = page; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *end = strchr(l, '\n'), *sp;
		char line[1024];
		size_t len = end ? (size_t)(end - l) : strlen(l);

		if (strncmp(l, head, hl) || len >= sizeof(line))
			continue;
		memcpy(line, l, len);
		line[len] = '\0';
		sp = strrchr(line, ' ');
		if (!strstr(line, lab) || !sp)
			continue;
		sum = (sum < 0 ? 0 : sum) + atof(sp + 1);
	}
	return sum;
}

START_TEST(test_counters_never_decrease_light_to_precise)
{
	static const char *const names[] = { "loopscope_slow_callbacks_total",
		"loopscope_slow_busy_periods_total", "loopscope_callback_duration_seconds_count",
		"loopscope_iterations_total" };
	struct fx f;
	char listen[64], needle[128], *page = NULL;
	double last[4] = { -1, -1, -1, -1 };
	pid_t a;
	int port;
	bool precise = false;

	fx_init(&f);
	a = fx_app(&f, "mode");
	port = ls_test_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	ls_test_daemon_start_conf(&f.d, "socket = \"%s\";\nlisten = \"%s\";\ninterval = \"200ms\";\n"
		   "rules = ( { service = \"m\"; cmdline = \"*%s/mode*\"; } );\n", f.d.sock, listen, f.d.dir);
	/* Light mode, scraped every 200 ms until a slow busy period; then
	 * precise mode (SIGHUP) until a slow callback: no counter goes down. */
	for (int i = 0; i < 100; i++) {
		usleep(200000);
		ck_assert_int_eq(ls_test_http_get(port, "/metrics", &page, 5000), 200);
		for (int k = 0; k < 4; k++) {
			double v = metric_of(page, names[k], a);

			ck_assert_msg(v >= last[k], "%s of pid %d went from %.0f to %.0f (scrape %d%s)",
				      names[k], a, last[k], v, i, precise ? ", precise" : "");
			last[k] = v;
		}
		free(page);
		page = NULL;
		if (!precise && last[1] >= 1) {
			ls_test_daemon_write_conf(&f.d, "socket = \"%s\";\nlisten = \"%s\";\ninterval = \"200ms\";\n"
				   "rules = ( { service = \"m\"; cmdline = \"*%s/mode*\"; mode = \"precise\"; } );\n",
				f.d.sock, listen, f.d.dir);
			kill(f.d.pid, SIGHUP);
			precise = true;
		}
		if (precise && last[0] >= 1 && last[2] > 0)
			break;
	}
	snprintf(needle, sizeof(needle), "pid %d (python3, service m): precise mode", a);
	ck_assert(log_has(&f, needle, 100));
	ck_assert_msg(precise && last[0] >= 1 && last[2] > 0,
		      "no slow callback counted in precise mode: %.0f slow callbacks, %.0f callbacks",
		      last[0], last[2]);
	stop_daemon(&f);
	fx_done(&f);
}
END_TEST

/* ---- precise-mode set-ups before uprobe removals ------------------------------- */

/* Two precise targets detached (each one's uprobe links take 0.15-0.7 s
 * to go: RCU grace periods), then a new one attached in precise mode: its
 * set-up does not wait for the removals. The daemon's log says in which
 * order the worker did them. */
START_TEST(test_setup_not_behind_removals)
{
	struct fx f;
	char rule[200], req[600], needle[128], *log, *setup;
	json_object *l[3] = { 0 };
	pid_t old[2], fresh;
	int after = 0;

	fx_init(&f);
	for (int i = 0; i < 2; i++) {
		char name[16];

		snprintf(name, sizeof(name), "old%d", i);
		old[i] = fx_app(&f, name);
	}
	fresh = fx_app(&f, "fresh");
	snprintf(rule, sizeof(rule), "service=q,cmdline=*%s/old*,mode=precise", f.d.dir);
	start_daemon_rule(&f, rule);
	for (int i = 0; i < 2; i++) {
		snprintf(needle, sizeof(needle), "pid %d (python3, service q): precise mode", old[i]);
		ck_assert(log_has(&f, needle, 15000));
	}
	snprintf(req, sizeof(req), "{\"cmd\":\"detach\",\"pid\":%d}\n{\"cmd\":\"detach\",\"pid\":%d}\n"
		 "{\"cmd\":\"attach\",\"pid\":%d,\"mode\":\"precise\"}\n", old[0], old[1], fresh);
	ck_assert_int_eq(raw_lines(f.d.sock, 0, req, l, 3), 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_msg(json_object_get_boolean(json_object_object_get(l[i], "ok")), "answer %d: %s", i,
			      json_object_to_json_string(l[i]));
		json_object_put(l[i]);
	}
	snprintf(needle, sizeof(needle), "pid %d (python3, service manual): precise mode", fresh);
	ck_assert(log_has(&f, needle, 10000));
	log = ls_test_slurp(f.d.err);
	setup = strstr(log, needle);
	/* The first removal may have started before the set-up was queued;
	 * the other comes after the set-up. */
	for (int i = 0; i < 2; i++) {
		char *rm;

		snprintf(needle, sizeof(needle), "pid %d: precise-mode uprobes removed", old[i]);
		rm = strstr(log, needle);
		after += !rm || rm > setup;
	}
	ck_assert_msg(after >= 1, "the set-up waited for every removal:\n%.3000s", log);
	free(log);
	stop_daemon(&f);
	fx_done(&f);
}
END_TEST

/* ---- a set-up whose target changed meanwhile --------------------------------- */

/* A precise rule, then at once (while the worker loads the precise-mode
 * programs and probes the target: 0.3-1 s) a reload that makes it light:
 * the set-up, done for a target that no longer wants it, is undone. */
START_TEST(test_setup_undone_when_mode_changed_meanwhile)
{
	struct fx f;
	char needle[128];
	pid_t a;

	fx_init(&f);
	a = fx_app(&f, "gen");
	ls_test_daemon_start_conf(&f.d, "socket = \"%s\";\nlisten = \"\";\n"
		   "rules = ( { service = \"g\"; cmdline = \"*%s/gen*\"; mode = \"precise\"; } );\n",
		f.d.sock, f.d.dir);
	ls_test_daemon_write_conf(&f.d, "socket = \"%s\";\nlisten = \"\";\n"
		   "rules = ( { service = \"g\"; cmdline = \"*%s/gen*\"; mode = \"light\"; } );\n",
		f.d.sock, f.d.dir);
	kill(f.d.pid, SIGHUP);
	ck_assert(log_has(&f, "reloaded: 1 rule, 1 target", 5000));
	snprintf(needle, sizeof(needle), "pid %d (python3, service g): precise mode", a);
	if (log_has(&f, needle, 1))
		fprintf(stderr, "it_daemon: the set-up ended before the reload; nothing to undo\n");
	/* Light from now on, whenever the worker is done. */
	for (int i = 0; i < 20; i++) {
		json_object *r = ctl(f.d.sock, "{\"cmd\":\"list\"}"), *t = target_of(r, a);

		ck_assert_ptr_nonnull(t);
		ck_assert_msg(!json_object_get_boolean(json_object_object_get(t, "precise")),
			      "precise mode active after the reload to light: %s", json_object_to_json_string(t));
		json_object_put(r);
		usleep(100000);
	}
	stop_daemon(&f);
	fx_done(&f);
}
END_TEST

/* ---- bad input ---------------------------------------------------------------- */

static int run_daemon(char **args, struct ls_test_out *o)
{
	char *argv[32];
	int n = 0;

	argv[n++] = LOOPSCOPED;
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return ls_test_run_capture(o, argv, 30000);
}

static void assert_one_line(const struct ls_test_out *o, const char *needle)
{
	const char *e = o->stderr_text;

	ck_assert_ptr_nonnull(e);
	ck_assert_msg(strstr(e, needle), "stderr lacks '%s': %s", needle, e);
	ck_assert_msg(strchr(e, '\n') == e + strlen(e) - 1, "stderr is not one line: %s", e);
	ck_assert_msg(!strncmp(e, "loopscoped: ", 12), "stderr does not start with 'loopscoped: ': %s", e);
}

START_TEST(test_bad_input_exit_codes)
{
	struct fx f;
	struct ls_test_out o;
	char listen_at[64], conf[160], path[160];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd;
	FILE *c;

	fx_init(&f);
	/* Port in use */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", ntohs(sa.sin_port));
	{
		char *args[] = { "--listen", listen_at, "--socket", f.d.sock, "-r", "cmdline=*nothing*", NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(run_daemon(args, &o), LS_EXIT_LISTEN);
		assert_one_line(&o, "the port is in use");
		ls_test_out_free(&o);
	}
	close(fd);
	/* Control socket path: a regular file */
	snprintf(path, sizeof(path), "%s/file", f.d.dir);
	c = fopen(path, "w");
	fclose(c);
	{
		char *args[] = { "--listen", "none", "--socket", path, NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(run_daemon(args, &o), LS_EXIT_SOCKET);
		assert_one_line(&o, "exists and is not a socket");
		ls_test_out_free(&o);
	}
	/* A stale socket (nobody listening) is replaced; a live one is not. */
	{
		struct sockaddr_un su = { .sun_family = AF_UNIX };
		int us = socket(AF_UNIX, SOCK_STREAM, 0);

		snprintf(su.sun_path, sizeof(su.sun_path), "%s", f.d.sock);
		ck_assert_int_eq(bind(us, (struct sockaddr *)&su, sizeof(su)), 0);
		close(us); /* the file stays, nobody answers */
	}
	start_daemon_rule(&f, "cmdline=*no-such-process-anywhere*");
	ck_assert(log_has(&f, "rule 1 (service default) matches no process yet", 1000));
	{
		char *args[] = { "--listen", "none", "--socket", f.d.sock, NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(run_daemon(args, &o), LS_EXIT_SOCKET);
		assert_one_line(&o, "another loopscoped is running");
		ls_test_out_free(&o);
	}
	{
		/* The socket is root's alone */
		char cmd[256];
		struct ls_test_out so = { 0 };
		char *argv[] = { "/bin/sh", "-c", cmd, NULL };

		snprintf(cmd, sizeof(cmd), "stat -c %%a:%%U %s", f.d.sock);
		ck_assert_int_eq(ls_test_run_capture(&so, argv, 5000), 0);
		ck_assert_str_eq(so.stdout_text, "600:root\n");
		ls_test_out_free(&so);
	}
	stop_daemon(&f);
	/* Config errors: file and line */
	snprintf(conf, sizeof(conf), "%s/bad.conf", f.d.dir);
	c = fopen(conf, "w");
	fprintf(c, "listen = \"127.0.0.1:9\";\n\nrules = (\n  { service = \"a\"; exe = \"*py*\"; },\n"
		   "  { service = \"b\"; }\n);\n");
	fclose(c);
	{
		char *args[] = { "-c", conf, NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(run_daemon(args, &o), LS_EXIT_CONFIG);
		assert_one_line(&o, "bad.conf:5: rule 2 matches nothing");
		ls_test_out_free(&o);
	}
	c = fopen(conf, "w");
	fprintf(c, "threshold = \"100ms\"\nlisten = \"x\" \"y\" = 3;\n");
	fclose(c);
	{
		char *args[] = { "-c", conf, NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(run_daemon(args, &o), LS_EXIT_CONFIG);
		assert_one_line(&o, "bad.conf:2: syntax error");
		ls_test_out_free(&o);
	}
	/* A host name where an IPv4 address belongs: a config error (10),
	 * not a failed bind (11). */
	c = fopen(conf, "w");
	fprintf(c, "listen = \"example.com:9466\";\n");
	fclose(c);
	{
		char *args[] = { "-c", conf, NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(run_daemon(args, &o), LS_EXIT_CONFIG);
		assert_one_line(&o, "bad.conf:1: listen: 'example.com:9466' is not HOST:PORT");
		ls_test_out_free(&o);
	}
	{
		char *args[] = { "-c", "/nonexistent/loopscoped.conf", NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(run_daemon(args, &o), LS_EXIT_CONFIG);
		assert_one_line(&o, "/nonexistent/loopscoped.conf: No such file or directory");
		ls_test_out_free(&o);
	}
	/* Kernel without BTF (a missing --btf file): 5; not root: 4. */
	{
		char *args[] = { "--btf", "/nonexistent/vmlinux", "--listen", "none", "--socket", "none", NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(run_daemon(args, &o), LS_EXIT_UNSUPPORTED);
		assert_one_line(&o, "kernel has no BTF");
		ls_test_out_free(&o);
	}
	{
		char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				 LOOPSCOPED, "--listen", "none", "--socket", "none", NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(ls_test_run_capture(&o, argv, 30000), LS_EXIT_PERMISSION);
		assert_one_line(&o, "need root or CAP_BPF and CAP_PERFMON");
		ls_test_out_free(&o);
	}
	/* Flags */
	static const char *bad_flags[][3] = {
		{ "--rule", "service=x", "matches nothing" },
		{ "--rule", "cmdline=a,mode=fast", "unknown mode 'fast'" },
		{ "--threshold", "soon", "invalid duration" },
		{ "--listen", "localhost", "invalid --listen" },
		{ "-p", "12,x", "invalid pid list" },
		{ "--max-targets", "0", "--max-targets must be 1-1024" },
		{ "--interval", "1ms", "--interval must be at least 10ms" },
	};
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		char *args[] = { (char *)bad_flags[i][0], (char *)bad_flags[i][1], NULL };

		memset(&o, 0, sizeof(o));
		ck_assert_int_eq(run_daemon(args, &o), LS_EXIT_USAGE);
		assert_one_line(&o, bad_flags[i][2]);
		ls_test_out_free(&o);
	}
	fx_done(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_daemon");
	TCase *tc = tcase_create("daemon");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_status_and_control_socket);
	tcase_add_test(tc, test_status_in_process_without_daemon);
	tcase_add_test(tc, test_top_under_tmux);
	tcase_add_test(tc, test_container_target_in_own_pid_and_mount_ns);
	tcase_add_test(tc, test_target_execs_non_python);
	tcase_add_test(tc, test_sighup_reloads_keeping_histograms_sigterm_detaches);
	tcase_add_test(tc, test_max_targets_limit);
	tcase_add_test(tc, test_reload_drops_rule_then_manual_attach_no_duplicates);
	tcase_add_test(tc, test_counters_never_decrease_light_to_precise);
	tcase_add_test(tc, test_setup_not_behind_removals);
	tcase_add_test(tc, test_setup_undone_when_mode_changed_meanwhile);
	tcase_add_test(tc, test_bad_input_exit_codes);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
