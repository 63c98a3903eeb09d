// SPDX-License-Identifier: MIT
/* loopscoped: the continuous monitoring agent. A thin main over the agent
 * library (engine/monitor.c, daemon/prom.c, engine/ctl.c): flags and config file, signals, the
 * main loop. It sits in agent/daemon/ because it is the daemon's entry point
 * (docs/DESIGN.md: agent/daemon/ holds the one main() in agent/);
 * the CMake glob of the library leaves this file out. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/config.h"
#include "loopscope/ctl.h"
#include "loopscope/monitor.h"
#include "loopscope/prom.h"

static volatile sig_atomic_t stop_signal, reload_signal;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_signal = 1;
	else
		stop_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: loopscoped [-c FILE] [-p PID[,PID...]] [--rule RULE]... [OPTIONS]\n"
		"\n"
		"Monitor the event loops of every process a rule matches, continuously:\n"
		"Prometheus metrics over HTTP, a control socket for 'loopscope top/status'.\n"
		"\n"
		"  -c, --config FILE        config file (docs/DAEMON.md); flags override it\n"
		"  -p, --pid PID[,PID...]   monitor these processes (service label from --service)\n"
		"      --service NAME       service label of -p targets (default \"default\")\n"
		"      --mode light|precise mode of -p targets (default light)\n"
		"  -r, --rule RULE          monitor processes matching RULE, e.g.\n"
		"                           'service=api,cmdline=*gunicorn*,mode=precise'\n"
		"                           (keys: service pid exe cmdline cgroup mode; globs)\n"
		"      --threshold DURATION slow callback / busy period threshold (default 100ms)\n"
		"      --interval DURATION  window of utilization and top (default 1s)\n"
		"      --grace DURATION     keep an exited process's series this long (default 30s)\n"
		"      --scan DURATION      /proc scan period besides exec events (default 10s)\n"
		"      --max-targets N      processes monitored at once (default 512, max 1024)\n"
		"      --thread-quota N     threads of one process tracked at once (default 512, max 4096)\n"
		"      --listen HOST:PORT   Prometheus endpoint (default " LS_CFG_DEFAULT_LISTEN "; none: off)\n"
		"      --socket PATH        control socket (default " LS_CFG_DEFAULT_SOCKET "; none: off)\n"
		"      --btf FILE           kernel BTF when the kernel has none in sysfs\n"
		"      --check-config       validate the config and flags, print the rules, exit\n"
		"  -h, --help, -V, --version\n"
		"\n"
		"Signals: SIGHUP reloads the config file (histograms kept); SIGTERM and\n"
		"SIGINT detach everything and exit 0.\n"
		"\n"
		"Exit codes: 0 ok; 1 internal error; 2 bad arguments; 4 no permission;\n"
		"5 kernel unsupported; 10 config error; 11 cannot listen (port in use);\n"
		"12 control socket in use or not creatable.\n");
}

/* Flags, kept to be applied again on top of the file at each reload. */
struct flags {
	const char *config_path;
	struct ls_rule rules[LS_CFG_MAX_RULES];
	int nrules;
	pid_t pids[256];
	int npids;
	const char *service;
	enum ls_mode mode;
	uint64_t threshold_ns, interval_ns, grace_ns, scan_ns;
	bool grace_set;
	int max_targets, thread_quota;
	const char *listen, *socket_path, *btf;
	bool check;
};

static int parse_flags(int argc, char **argv, struct flags *fl)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "pid", required_argument, NULL, 'p' },
		{ "rule", required_argument, NULL, 'r' },
		{ "service", required_argument, NULL, 'S' },
		{ "mode", required_argument, NULL, 'm' },
		{ "threshold", required_argument, NULL, 't' },
		{ "interval", required_argument, NULL, 'i' },
		{ "grace", required_argument, NULL, 'g' },
		{ "scan", required_argument, NULL, 's' },
		{ "max-targets", required_argument, NULL, 'M' },
		{ "thread-quota", required_argument, NULL, 'Q' },
		{ "listen", required_argument, NULL, 'l' },
		{ "socket", required_argument, NULL, 'u' },
		{ "btf", required_argument, NULL, 'b' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	char err[512];
	uint64_t *dur;
	int c, n;

	while ((c = getopt_long(argc, argv, "c:p:r:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': fl->config_path = optarg; break;
		case 'p':
			n = ls_target_parse_pids(optarg, fl->pids + fl->npids, 256 - fl->npids);
			if (n < 0) {
				fprintf(stderr, "loopscoped: invalid pid list '%s' (expected PID[,PID...])\n", optarg);
				return LS_EXIT_USAGE;
			}
			fl->npids += n;
			break;
		case 'r':
			if (fl->nrules == LS_CFG_MAX_RULES) {
				fprintf(stderr, "loopscoped: more than %d rules\n", LS_CFG_MAX_RULES);
				return LS_EXIT_USAGE;
			}
			if (ls_config_parse_rule(optarg, &fl->rules[fl->nrules], err, sizeof(err))) {
				fprintf(stderr, "loopscoped: --rule: %s\n", err);
				return LS_EXIT_USAGE;
			}
			fl->nrules++;
			break;
		case 'S':
			if (!*optarg || strlen(optarg) >= 64) {
				fprintf(stderr, "loopscoped: --service must be 1-63 characters\n");
				return LS_EXIT_USAGE;
			}
			fl->service = optarg;
			break;
		case 'm':
			if (ls_config_parse_mode(optarg, &fl->mode)) {
				fprintf(stderr, "loopscoped: invalid mode '%s' (light or precise)\n", optarg);
				return LS_EXIT_USAGE;
			}
			break;
		case 't': case 'i': case 'g': case 's':
			dur = c == 't' ? &fl->threshold_ns : c == 'i' ? &fl->interval_ns :
			      c == 'g' ? &fl->grace_ns : &fl->scan_ns;
			if (ls_duration_parse(optarg, dur) || (c != 'g' && *dur == 0)) {
				fprintf(stderr, "loopscoped: invalid duration '%s' (examples: 500us, 100ms, 2s)\n",
					optarg);
				return LS_EXIT_USAGE;
			}
			if ((c == 'i' || c == 's') && *dur < LS_CFG_MIN_PERIOD_NS) {
				fprintf(stderr, "loopscoped: --%s must be at least 10ms\n",
					c == 'i' ? "interval" : "scan");
				return LS_EXIT_USAGE;
			}
			fl->grace_set |= c == 'g';
			break;
		case 'M': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 1024) {
				fprintf(stderr, "loopscoped: --max-targets must be 1-1024\n");
				return LS_EXIT_USAGE;
			}
			fl->max_targets = (int)v;
			break;
		}
		case 'Q': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > LS_MAX_THREADS) {
				fprintf(stderr, "loopscoped: --thread-quota must be 1-%d\n", LS_MAX_THREADS);
				return LS_EXIT_USAGE;
			}
			fl->thread_quota = (int)v;
			break;
		}
		case 'l': {
			char host[64];
			int port;

			if (strcmp(optarg, "none") &&
			    ls_config_parse_listen(optarg, host, sizeof(host), &port)) {
				fprintf(stderr, "loopscoped: invalid --listen '%s' (HOST:PORT, e.g. 127.0.0.1:9466, or none)\n",
					optarg);
				return LS_EXIT_USAGE;
			}
			fl->listen = optarg;
			break;
		}
		case 'u': fl->socket_path = optarg; break;
		case 'b': fl->btf = optarg; break;
		case 'C': fl->check = true; break;
		case 'h': usage(stdout); return -1;
		case 'V': printf("loopscoped %s\n", LS_VERSION); return -1;
		default:
			fprintf(stderr, "loopscoped: try 'loopscoped --help'\n");
			return LS_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "loopscoped: unexpected argument '%s'\n", argv[optind]);
		return LS_EXIT_USAGE;
	}
	return 0;
}

/* Defaults, then the file, then the flags. 0 or LS_EXIT_CONFIG. */
static int build_config(const struct flags *fl, struct ls_config *c)
{
	char err[512];

	ls_config_defaults(c);
	if (fl->config_path && ls_config_load(fl->config_path, c, err, sizeof(err))) {
		fprintf(stderr, "loopscoped: %s\n", err);
		return LS_EXIT_CONFIG;
	}
	for (int i = 0; i < fl->nrules; i++) {
		if (c->nrules == LS_CFG_MAX_RULES)
			goto too_many;
		c->rules[c->nrules++] = fl->rules[i];
	}
	for (int i = 0; i < fl->npids; i++) {
		struct ls_rule *r;

		if (c->nrules == LS_CFG_MAX_RULES)
			goto too_many;
		r = &c->rules[c->nrules++];
		memset(r, 0, sizeof(*r));
		r->pid = fl->pids[i];
		r->mode = fl->mode;
		snprintf(r->service, sizeof(r->service), "%s", fl->service ? fl->service : "default");
	}
	if (fl->threshold_ns)
		c->threshold_ns = fl->threshold_ns;
	if (fl->interval_ns)
		c->interval_ns = fl->interval_ns;
	if (fl->grace_set)
		c->grace_ns = fl->grace_ns;
	if (fl->scan_ns)
		c->scan_ns = fl->scan_ns;
	if (fl->max_targets)
		c->max_targets = fl->max_targets;
	if (fl->thread_quota)
		c->thread_quota = fl->thread_quota;
	if (fl->listen)
		snprintf(c->listen, sizeof(c->listen), "%s", strcmp(fl->listen, "none") ? fl->listen : "");
	if (fl->socket_path)
		snprintf(c->socket_path, sizeof(c->socket_path), "%s",
			 strcmp(fl->socket_path, "none") ? fl->socket_path : "");
	if (fl->btf)
		snprintf(c->btf_path, sizeof(c->btf_path), "%s", fl->btf);
	return 0;
too_many:
	fprintf(stderr, "loopscoped: more than %d rules (file and flags together)\n", LS_CFG_MAX_RULES);
	return LS_EXIT_CONFIG;
}

static void log_line(const char *line, void *ctx)
{
	fprintf(stderr, "loopscoped: %s\n", line);
	fflush(stderr);
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_WARN && getenv("LOOPSCOPE_DEBUG"))
		return vfprintf(stderr, fmt, args);
	return 0;
}

static void print_rules(const struct ls_config *c)
{
	char d[3][16];

	printf("listen %s, socket %s, threshold %s, interval %s, grace %s, max_targets %d\n",
	       c->listen[0] ? c->listen : "none", c->socket_path[0] ? c->socket_path : "none",
	       ls_duration_format(c->threshold_ns, d[0], 16), ls_duration_format(c->interval_ns, d[1], 16),
	       ls_duration_format(c->grace_ns, d[2], 16), c->max_targets);
	if (c->flight_dir[0])
		printf("flight recorder: %s, %s kept, at most %llu bytes a target; dump at %s, %s after; "
		       "at most %d files, %llu bytes\n", c->flight_dir,
		       ls_duration_format(c->flight_seconds_ns, d[0], 16),
		       (unsigned long long)c->flight_bytes,
		       ls_duration_format(c->flight_threshold_ns, d[1], 16),
		       ls_duration_format(c->flight_after_ns, d[2], 16), c->flight_max_files,
		       (unsigned long long)c->flight_max_bytes);
	else
		printf("flight recorder: off (no flight_dir)\n");
	for (int i = 0; i < c->nrules; i++) {
		const struct ls_rule *r = &c->rules[i];

		printf("rule %d: service=%s mode=%s", i + 1, r->service, ls_config_mode_name(r->mode));
		if (r->pid)
			printf(" pid=%d", (int)r->pid);
		if (r->exe[0])
			printf(" exe=%s", r->exe);
		if (r->cmdline[0])
			printf(" cmdline=%s", r->cmdline);
		if (r->cgroup[0])
			printf(" cgroup=%s", r->cgroup);
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	struct flags fl = { .mode = LS_MODE_LIGHT };
	struct ls_config cfg;
	struct ls_mon *m = NULL;
	struct ls_prom_server *prom = NULL;
	struct ls_ctl_server *ctl = NULL;
	struct sigaction sa = { 0 };
	char err[512], host[64];
	int ret, e, port;

	ret = parse_flags(argc, argv, &fl);
	if (ret)
		return ret < 0 ? LS_EXIT_OK : ret;
	ret = build_config(&fl, &cfg);
	if (ret)
		return ret;
	if (fl.check) {
		print_rules(&cfg);
		return LS_EXIT_OK;
	}
	/* Snapshots of the BPF maps are large (16 KiB a thread) and short-lived:
	 * a fixed mmap threshold gives them back to the kernel when freed,
	 * where glibc's adaptive one would keep them resident after the first
	 * free (mallopt(3)): RSS then follows the number of targets. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	libbpf_set_print(libbpf_quiet);
	sa.sa_handler = on_signal; /* no SA_RESTART: waits return EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Privileges and kernel first (one clear line, exit 4 or 5), then the
	 * port and the socket: a second daemon fails before loading anything. */
	e = ls_sys_check(cfg.btf_path[0] ? cfg.btf_path : NULL, err, sizeof(err));
	if (e) {
		fprintf(stderr, "loopscoped: %s\n", err);
		return e == -EPERM ? LS_EXIT_PERMISSION : LS_EXIT_UNSUPPORTED;
	}
	if (cfg.listen[0]) {
		ls_config_parse_listen(cfg.listen, host, sizeof(host), &port);
		e = ls_prom_start(NULL, host, port, &prom, err, sizeof(err));
		if (e) {
			fprintf(stderr, "loopscoped: %s\n", err);
			return e == -ENOMEM ? LS_EXIT_ERROR : LS_EXIT_LISTEN;
		}
	}
	if (cfg.socket_path[0]) {
		e = ls_ctl_server_start(NULL, cfg.socket_path, &ctl, err, sizeof(err));
		if (e) {
			fprintf(stderr, "loopscoped: %s\n", err);
			ret = e == -ENOMEM ? LS_EXIT_ERROR : LS_EXIT_SOCKET;
			goto cleanup;
		}
	}
	e = ls_mon_open(&cfg, log_line, NULL, &m, err, sizeof(err));
	if (e) {
		fprintf(stderr, "loopscoped: %s\n", err);
		ret = e == -EPERM ? LS_EXIT_PERMISSION :
		      e == -ENOTSUP || e == -ENOENT ? LS_EXIT_UNSUPPORTED : LS_EXIT_ERROR;
		goto cleanup;
	}
	if (prom)
		ls_prom_set_mon(prom, m);
	if (ctl)
		ls_ctl_server_set_mon(ctl, m);
	fprintf(stderr, "loopscoped: ready: %zu target%s, %d rule%s; metrics %s%s%s; control socket %s\n",
		ls_mon_ntargets(m), ls_mon_ntargets(m) == 1 ? "" : "s", cfg.nrules,
		cfg.nrules == 1 ? "" : "s", prom ? "http://" : "off", prom ? cfg.listen : "",
		prom ? "/metrics" : "", ctl ? cfg.socket_path : "off");
	if (!cfg.nrules)
		fprintf(stderr, "loopscoped: no rule and no -p: nothing is monitored until a pid is "
			"attached through the control socket\n");
	fflush(stderr);

	while (!stop_signal) {
		e = ls_mon_poll(m, 100);
		if (e < 0 && e != -EINTR) {
			fprintf(stderr, "loopscoped: reading events failed: %s\n", strerror(-e));
			ret = LS_EXIT_ERROR;
			goto cleanup;
		}
		ls_ctl_server_run_pending(ctl);
		if (reload_signal) {
			struct ls_config next;

			reload_signal = 0;
			if (build_config(&fl, &next) == 0)
				ls_mon_reload(m, &next);
			else
				fprintf(stderr, "loopscoped: reload failed; the old configuration stays\n");
		}
	}
	{
		/* Targets kept after they exited (for their figures), or gone
		 * since the last check, are not detached from. */
		size_t live = 0, gone = 0;

		for (size_t i = 0; i < ls_mon_ntargets(m); i++) {
			const struct ls_mon_target *t = ls_mon_target_at(m, i);

			if (!t->exited_ns && !ls_target_alive(t->pid))
				live++;
			else
				gone++;
		}
		if (gone)
			fprintf(stderr, "loopscoped: %s: detaching from %zu process%s (%zu had exited)\n",
				strsignal(stop_signal), live, live == 1 ? "" : "es", gone);
		else
			fprintf(stderr, "loopscoped: %s: detaching from %zu process%s\n",
				strsignal(stop_signal), live, live == 1 ? "" : "es");
	}
	ret = LS_EXIT_OK;
cleanup:
	/* Servers first: they read the engine. */
	ls_prom_stop(prom);
	ls_ctl_server_stop(ctl);
	ls_mon_close(m);
	return ret;
}
