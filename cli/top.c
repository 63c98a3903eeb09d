// SPDX-License-Identifier: MIT
/* `loopscope top` (a live full-screen view, plain ANSI) and `loopscope
 * status` (the same, printed once): every monitored loop thread sorted by
 * loop lag p99, slow events below. Data come from loopscoped's control
 * socket, or, when no daemon answers, from the monitoring engine run here
 * (agent/engine/monitor.c) with the same requests (ls_ctl_handle). */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "loopscope/config.h"
#include "loopscope/ctl.h"
#include "loopscope/monitor.h"

#define SLOW_SHOWN_MAX 200

struct view {
	/* options */
	const char *socket_path;
	uint64_t interval_ns;
	struct ls_config cfg;      /* in-process engine */
	bool have_targets;         /* -p or --rule given */
	bool json;
	/* source */
	int fd;                    /* daemon connection, or -1 */
	struct ls_mon *m;          /* in-process engine, or NULL */
	char last_log[256];
	int64_t mono_to_real_ns;
	/* slow events seen, newest last */
	json_object *slow[SLOW_SHOWN_MAX];
	int nslow;
	uint64_t slow_after;
};

static volatile sig_atomic_t stop_signal, resized, suspended, continued;

static void on_signal(int sig)
{
	if (sig == SIGWINCH)
		resized = 1;
	else if (sig == SIGTSTP)
		suspended = 1;
	else if (sig == SIGCONT)
		continued = resized = 1;
	else
		stop_signal = sig;
}

static void usage(FILE *f, const char *cmd)
{
	fprintf(f,
		"Usage: loopscope %s [--socket PATH] [-i INTERVAL] [-p PID[,PID...]] [--rule RULE]%s\n"
		"\n"
		"%s every monitored loop thread, sorted by loop lag p99, with the slow\n"
		"events below. Reads loopscoped's control socket (default " LS_CFG_DEFAULT_SOCKET ");\n"
		"when no daemon answers there, runs the monitoring engine here: on -p and\n"
		"--rule targets, or by default on every process whose executable is python*.\n"
		"\n"
		"  --socket PATH            the daemon's control socket\n"
		"  -i, --interval DURATION  refresh (and, in-process, window) period (default 1s)\n"
		"  -p, --pid PID[,PID...]   in-process: monitor these processes\n"
		"  -r, --rule RULE          in-process: monitor matching processes (see loopscoped --help)\n"
		"%s"
		"  -h, --help               this help\n"
		"\n"
		"Exit codes: 0 ok; 1 internal error; 2 bad arguments; 4 no permission\n"
		"(the socket is root's, BPF needs root); 5 kernel unsupported.\n",
		cmd, !strcmp(cmd, "status") ? " [--json]" : "",
		!strcmp(cmd, "top") ? "A live full-screen view of" : "Print, once,",
		!strcmp(cmd, "status") ? "      --json               the daemon's answers as one JSON object\n" :
					 "Keys: q quits.\n");
}

static void log_to_view(const char *line, void *ctx)
{
	struct view *v = ctx;

	snprintf(v->last_log, sizeof(v->last_log), "%s", line);
}

static int parse(struct view *v, const char *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "interval", required_argument, NULL, 'i' },
		{ "pid", required_argument, NULL, 'p' },
		{ "rule", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char err[512];
	pid_t pids[CLI_MAX_PIDS];
	int c, n;

	v->socket_path = LS_CFG_DEFAULT_SOCKET;
	v->interval_ns = 1000000000ULL;
	ls_config_defaults(&v->cfg);
	v->cfg.listen[0] = v->cfg.socket_path[0] = '\0';
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:p:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'S': v->socket_path = optarg; break;
		case 'i':
			if (cli_parse_duration("--interval", optarg, &v->interval_ns))
				return -EINVAL;
			break;
		case 'p':
			n = ls_target_parse_pids(optarg, pids, CLI_MAX_PIDS);
			if (n < 0) {
				fprintf(stderr, "loopscope: invalid pid list '%s' (expected PID[,PID...])\n", optarg);
				return -EINVAL;
			}
			for (int i = 0; i < n && v->cfg.nrules < LS_CFG_MAX_RULES; i++) {
				struct ls_rule *r = &v->cfg.rules[v->cfg.nrules++];

				memset(r, 0, sizeof(*r));
				r->pid = pids[i];
				snprintf(r->service, sizeof(r->service), "default");
			}
			v->have_targets = true;
			break;
		case 'r':
			if (v->cfg.nrules == LS_CFG_MAX_RULES ||
			    ls_config_parse_rule(optarg, &v->cfg.rules[v->cfg.nrules], err, sizeof(err))) {
				fprintf(stderr, "loopscope: --rule: %s\n",
					v->cfg.nrules == LS_CFG_MAX_RULES ? "too many rules" : err);
				return -EINVAL;
			}
			v->cfg.nrules++;
			v->have_targets = true;
			break;
		case 'j':
			if (strcmp(cmd, "status"))
				goto bad;
			v->json = true;
			break;
		case 'h':
			usage(stdout, cmd);
			return 1;
		default:
bad:
			fprintf(stderr, "loopscope: try 'loopscope %s --help'\n", cmd);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "loopscope: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	v->cfg.interval_ns = v->interval_ns;
	if (!v->have_targets) {
		struct ls_rule *r = &v->cfg.rules[v->cfg.nrules++];

		memset(r, 0, sizeof(*r));
		snprintf(r->service, sizeof(r->service), "python");
		snprintf(r->exe, sizeof(r->exe), "*/python*");
	}
	return 0;
}

/* Connect to the daemon, or start the engine here. An enum ls_exit. */
static int open_source(struct view *v)
{
	char err[512];
	int e;

	v->fd = ls_ctl_connect(v->socket_path);
	if (v->fd >= 0) {
		if (v->have_targets)
			fprintf(stderr, "loopscope: a daemon answers on %s: showing its targets "
				"(-p/--rule are for the in-process mode)\n", v->socket_path);
		return LS_EXIT_OK;
	}
	if (v->fd == -EACCES) {
		fprintf(stderr, "loopscope: %s: permission denied (the control socket is root's)\n",
			v->socket_path);
		return LS_EXIT_PERMISSION;
	}
	libbpf_set_print(cli_libbpf_print);
	e = ls_mon_open(&v->cfg, log_to_view, v, &v->m, err, sizeof(err));
	if (e) {
		fprintf(stderr, "loopscope: no daemon on %s, and running the agent here failed: %s\n",
			v->socket_path, err);
		return e == -EPERM ? LS_EXIT_PERMISSION :
		       e == -ENOTSUP || e == -ENOENT ? LS_EXIT_UNSUPPORTED : LS_EXIT_ERROR;
	}
	return LS_EXIT_OK;
}

/* One request: to the daemon, or answered here. NULL on a broken daemon
 * connection (one line on stderr said so). */
static json_object *call(struct view *v, const char *text)
{
	json_object *req = json_tokener_parse(text), *resp = NULL;

	if (v->m) {
		resp = ls_ctl_handle(v->m, req);
	} else if (ls_ctl_call(v->fd, req, &resp, 5000)) {
		resp = NULL;
	}
	json_object_put(req);
	return resp;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static uint64_t ju64(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_uint64(v) : 0;
}

static double jdbl(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0;
}

static int by_lag_p99(const void *a, const void *b)
{
	uint64_t x = ju64(*(json_object *const *)a, "lag_p99_ns");
	uint64_t y = ju64(*(json_object *const *)b, "lag_p99_ns");

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Fetch new slow events into v->slow. false on a broken connection. */
static bool fetch_slow(struct view *v)
{
	char req[96];
	json_object *r, *ev;

	snprintf(req, sizeof(req), "{\"cmd\":\"slow\",\"after\":%llu}", (unsigned long long)v->slow_after);
	r = call(v, req);
	if (!r)
		return false;
	if (json_object_object_get_ex(r, "events", &ev)) {
		for (size_t i = 0; i < json_object_array_length(ev); i++) {
			if (v->nslow == SLOW_SHOWN_MAX) {
				json_object_put(v->slow[0]);
				memmove(&v->slow[0], &v->slow[1], (SLOW_SHOWN_MAX - 1) * sizeof(v->slow[0]));
				v->nslow--;
			}
			v->slow[v->nslow++] = json_object_get(json_object_array_get_idx(ev, i));
		}
	}
	v->slow_after = ju64(r, "last");
	json_object_put(r);
	return true;
}

static int print_threads(struct view *v, FILE *f, json_object *stats, int max_rows, int *nloops)
{
	json_object *threads, **rows;
	size_t n;
	int shown = 0;
	char b[5][16];

	*nloops = 0;
	if (!json_object_object_get_ex(stats, "threads", &threads))
		return 0;
	n = json_object_array_length(threads);
	rows = calloc(n + 1, sizeof(*rows));
	if (!rows)
		return 0;
	for (size_t i = 0; i < n; i++)
		rows[i] = json_object_array_get_idx(threads, i);
	qsort(rows, n, sizeof(*rows), by_lag_p99);
	*nloops = (int)n;
	/* SERVICE as wide as the longest shown (names are the operator's,
	 * from the config: never cut), at least its title. */
	int sw = 7;

	for (size_t i = 0; i < n && (int)i < max_rows; i++) {
		int len = (int)strlen(jstr(rows[i], "service"));

		if (len > sw)
			sw = len;
	}
	fprintf(f, "%7s %7s %7s %-*s %-15s %7s %5s %9s %9s %9s %9s %5s %-7s\n", "PID", "NSPID", "TID",
		sw, "SERVICE", "THREAD", "ITER/s", "UTIL%", "LAG p99", "LAG max", "DELAY p99", "BUSY max",
		"SLOW", "MODE");
	for (size_t i = 0; i < n && shown < max_rows; i++, shown++) {
		json_object *t = rows[i];
		double util = jdbl(t, "utilization");
		bool exited = json_object_get_boolean(json_object_object_get(t, "exited"));

		/* No busy period ended in the window: no delay sample either
		 * ("-", as LAG; every busy period lasts > 0 ns). */
		bool busy = ju64(t, "busy_max_ns") > 0;

		fprintf(f, "%7d %7d %7d %-*s %-15.15s %7.1f %5.1f %9s %9s %9s %9s %5llu %-7s%s\n",
			(int)ju64(t, "pid"), (int)ju64(t, "ns_pid"), (int)ju64(t, "tid"), sw, jstr(t, "service"),
			jstr(t, "thread"), jdbl(t, "iterations_per_s"), util >= 0 ? 100 * util : 0.0,
			ju64(t, "lag_count") ? ls_duration_format(ju64(t, "lag_p99_ns"), b[0], 16) : "-",
			ju64(t, "lag_count") ? ls_duration_format(ju64(t, "lag_max_ns"), b[1], 16) : "-",
			busy ? ls_duration_format(ju64(t, "delay_p99_ns"), b[2], 16) : "-",
			busy ? ls_duration_format(ju64(t, "busy_max_ns"), b[3], 16) : "-",
			(unsigned long long)(ju64(t, "slow_callbacks_total") ? ju64(t, "slow_callbacks_total") :
					     ju64(t, "slow_busy_total")),
			jstr(t, "mode"), exited ? " exited" : "");
	}
	free(rows);
	return shown;
}

static void print_slow(struct view *v, FILE *f, int max_rows)
{
	int first = v->nslow > max_rows ? v->nslow - max_rows : 0;
	char t[32], d[16];

	for (int i = first; i < v->nslow; i++) {
		json_object *e = v->slow[i], *app = NULL;
		char at[600] = "";

		/* The application frame first: the line of the user's code. */
		if (json_object_object_get_ex(e, "app_frame", &app) && app) {
			const char *file = jstr(app, "file"), *base = strrchr(file, '/');

			snprintf(at, sizeof(at), "%s %s:%d \u2190 ", jstr(app, "function"),
				 base ? base + 1 : file, (int)ju64(app, "line"));
		}
		fprintf(f, "%s  %8s  %-8s pid %d tid %d %-12s %s%s\n",
			cli_clock(v->mono_to_real_ns, ju64(e, "start_ns"), t, sizeof(t)),
			ls_duration_format(ju64(e, "duration_ns"), d, sizeof(d)), jstr(e, "kind"),
			(int)ju64(e, "pid"), (int)ju64(e, "tid"), jstr(e, "service"), at, jstr(e, "what"));
	}
	if (!v->nslow)
		fprintf(f, "(none yet)\n");
}

static void mono_to_real(struct view *v)
{
	struct timespec mono, real;

	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	v->mono_to_real_ns = ((int64_t)real.tv_sec - mono.tv_sec) * 1000000000LL +
			     (real.tv_nsec - mono.tv_nsec);
}

/* Wait up to ns, pumping the in-process engine. */
static void wait_for(struct view *v, uint64_t ns, int key_fd, bool *key_q)
{
	uint64_t end = ls_sys_now_ns() + ns;

	while (!stop_signal && !resized && !suspended) {
		uint64_t now = ls_sys_now_ns();
		int ms;

		if (now >= end)
			return;
		ms = (int)((end - now) / 1000000) + 1;
		if (ms > 100)
			ms = 100;
		if (key_fd >= 0) {
			struct pollfd p = { .fd = key_fd, .events = POLLIN };
			char c;

			if (poll(&p, 1, v->m ? 0 : ms) > 0 && read(key_fd, &c, 1) == 1 &&
			    (c == 'q' || c == 'Q')) {
				*key_q = true;
				return;
			}
		}
		if (v->m)
			ls_mon_poll(v->m, ms);
		else if (key_fd < 0)
			usleep((useconds_t)ms * 1000);
	}
}

/* Targets with threads the kernel's table did not track (over their
 * quota, #12 item 2): one line each; and a full table. */
static void print_untracked(json_object *targets, json_object *stats)
{
	for (size_t i = 0; targets && i < json_object_array_length(targets); i++) {
		json_object *t = json_object_array_get_idx(targets, i);

		if (ju64(t, "threads_untracked"))
			printf("pid %d (%s): %llu threads not tracked (over its quota of %llu threads "
			       "at once); %llu exited ones pruned\n", (int)ju64(t, "pid"),
			       jstr(t, "service"), (unsigned long long)ju64(t, "threads_untracked"),
			       (unsigned long long)ju64(stats, "thread_quota"),
			       (unsigned long long)ju64(t, "threads_pruned"));
	}
	if (ju64(stats, "thread_table_full"))
		printf("thread table full: %llu polls of new threads not tracked\n",
		       (unsigned long long)ju64(stats, "thread_table_full"));
}

int cli_status(int argc, char **argv)
{
	struct view v = { .fd = -1 };
	json_object *list = NULL, *stats = NULL;
	int ret, nloops;
	bool q = false;

	ret = parse(&v, "status", argc, argv);
	if (ret)
		return ret > 0 ? LS_EXIT_OK : LS_EXIT_USAGE;
	ret = open_source(&v);
	if (ret)
		return ret;
	mono_to_real(&v);
	if (v.m) /* one window of measurement first */
		wait_for(&v, v.interval_ns + 200000000ULL, -1, &q);
	list = call(&v, "{\"cmd\":\"list\"}");
	stats = call(&v, "{\"cmd\":\"stats\"}");
	if (!list || !stats || !fetch_slow(&v)) {
		fprintf(stderr, "loopscope: the daemon on %s stopped answering\n", v.socket_path);
		ret = LS_EXIT_ERROR;
		goto out;
	}
	if (v.json) {
		json_object *o = json_object_new_object(), *a = json_object_new_array();

		json_object_object_add(o, "source", json_object_new_string(v.m ? "in-process" : "daemon"));
		json_object_object_add(o, "targets", json_object_get(json_object_object_get(list, "targets")));
		json_object_object_add(o, "threads", json_object_get(json_object_object_get(stats, "threads")));
		for (int i = 0; i < v.nslow; i++)
			json_object_array_add(a, json_object_get(v.slow[i]));
		json_object_object_add(o, "slow", a);
		cli_print_json(o);
	} else {
		json_object *targets = json_object_object_get(list, "targets");

		printf("loopscope status: %s, %zu process%s monitored\n",
		       v.m ? "in-process (no daemon)" : v.socket_path,
		       targets ? json_object_array_length(targets) : 0,
		       targets && json_object_array_length(targets) == 1 ? "" : "es");
		print_threads(&v, stdout, stats, 1 << 30, &nloops);
		print_untracked(targets, stats);
		printf("slow events (latest %d):\n", v.nslow < 20 ? v.nslow : 20);
		print_slow(&v, stdout, 20);
	}
	ret = LS_EXIT_OK;
out:
	json_object_put(list);
	json_object_put(stats);
	for (int i = 0; i < v.nslow; i++)
		json_object_put(v.slow[i]);
	if (v.fd >= 0)
		close(v.fd);
	ls_mon_close(v.m);
	return ret;
}

int cli_top(int argc, char **argv)
{
	struct view v = { .fd = -1 };
	struct sigaction sa = { 0 };
	struct termios saved, raw;
	bool tty_set = false, q = false;
	int ret;

	ret = parse(&v, "top", argc, argv);
	if (ret)
		return ret > 0 ? LS_EXIT_OK : LS_EXIT_USAGE;
	if (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO)) {
		fprintf(stderr, "loopscope: top needs a terminal (use 'loopscope status' in scripts)\n");
		return LS_EXIT_USAGE;
	}
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGWINCH, &sa, NULL);
	sigaction(SIGTSTP, &sa, NULL);
	sigaction(SIGCONT, &sa, NULL);
	ret = open_source(&v);
	if (ret)
		return ret;
	mono_to_real(&v);
	if (tcgetattr(STDIN_FILENO, &saved) == 0) {
		raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tty_set = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
	}
	/* Alternate screen, cursor hidden: restored below on every way out. */
	fputs("\033[?1049h\033[?25l", stdout);
	fflush(stdout);
	while (!stop_signal && !q) {
		struct winsize ws = { 0 };
		json_object *stats;
		char *frame = NULL, clock[32];
		size_t flen = 0;
		FILE *f;
		int rows, shown, nloops;

		resized = 0;
		if (suspended) {
			/* Ctrl-Z: the shell's screen and modes back while stopped,
			 * ours again after SIGCONT (the default action stops us). */
			suspended = 0;
			fputs("\033[?25h\033[?1049l", stdout);
			fflush(stdout);
			if (tty_set)
				tcsetattr(STDIN_FILENO, TCSANOW, &saved);
			signal(SIGTSTP, SIG_DFL);
			raise(SIGTSTP);
			sigaction(SIGTSTP, &sa, NULL);
			continued = 1;
		}
		if (continued) {
			/* Back from a stop (ours above, or SIGSTOP): the shell
			 * may have reset the terminal meanwhile. */
			continued = 0;
			if (tty_set)
				tcsetattr(STDIN_FILENO, TCSANOW, &raw);
			fputs("\033[?1049h\033[?25l", stdout);
			fflush(stdout);
		}
		if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) || ws.ws_row < 8)
			ws.ws_row = 24;
		rows = ws.ws_row;
		stats = call(&v, "{\"cmd\":\"stats\"}");
		if (!stats || !fetch_slow(&v)) {
			json_object_put(stats);
			ret = LS_EXIT_ERROR;
			snprintf(v.last_log, sizeof(v.last_log), "the daemon stopped answering");
			break;
		}
		f = open_memstream(&frame, &flen);
		if (!f) {
			json_object_put(stats);
			ret = LS_EXIT_ERROR;
			break;
		}
		fprintf(f, "loopscope top - %s - %s  (q quits)\n",
			v.m ? "in-process (no daemon)" : v.socket_path,
			cli_clock(v.mono_to_real_ns, ls_sys_now_ns(), clock, sizeof(clock)));
		shown = print_threads(&v, f, stats, rows / 2 - 3, &nloops);
		fprintf(f, "%d loop thread%s%s; slow events (newest last):\n", nloops,
			nloops == 1 ? "" : "s", shown < nloops ? " (top by lag p99 shown)" : "");
		print_slow(&v, f, rows - shown - 5);
		if (v.m && v.last_log[0])
			fprintf(f, "agent: %s\n", v.last_log);
		fclose(f);
		/* Home, the frame with each line's rest cleared, then the
		 * rest of the screen cleared: no flicker. */
		fputs("\033[H", stdout);
		for (char *line = frame, *nl; line && *line; line = nl ? nl + 1 : NULL) {
			int len;

			nl = strchr(line, '\n');
			len = nl ? (int)(nl - line) : (int)strlen(line);
			if (ws.ws_col && len > ws.ws_col)
				len = ws.ws_col; /* no wrapping: one row per line */
			fprintf(stdout, "%.*s\033[K\r\n", len, line);
		}
		fputs("\033[J", stdout);
		fflush(stdout);
		free(frame);
		json_object_put(stats);
		wait_for(&v, v.interval_ns, STDIN_FILENO, &q);
	}
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (tty_set)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	if (ret)
		fprintf(stderr, "loopscope: %s\n", v.last_log[0] ? v.last_log : "top failed");
	for (int i = 0; i < v.nslow; i++)
		json_object_put(v.slow[i]);
	if (v.fd >= 0)
		close(v.fd);
	ls_mon_close(v.m);
	return ret;
}
