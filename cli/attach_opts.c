// SPDX-License-Identifier: MIT
/* `loopscope attach`: its usage and its options table (cli.h,
 * struct cli_attach_opts); the command itself is in attach.c. */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_attach_usage(FILE *f)
{
	fprintf(f,
		"Usage: loopscope attach -p PID[,PID...] [-d DURATION] [-i INTERVAL]\n"
		"                        [--threshold DURATION] [--mode light|precise]\n"
		"                        [--no-stacks] [--folded FILE] [--app-path PATH] [--json] [-q] [--btf FILE]\n"
		"\n"
		"Watch every thread of the given processes that polls with epoll_wait,\n"
		"epoll_pwait or epoll_pwait2 (a loop thread): iterations/s, utilization,\n"
		"busy time, loop lag and slow busy periods. Works for any epoll loop:\n"
		"CPython asyncio, uvloop, libuv, Node.js. Ctrl-C prints the report.\n"
		"\n"
		"  -p, --pid PID[,PID...]    processes to attach to (up to %d)\n"
		"  -d, --duration DURATION   stop after DURATION (default: until Ctrl-C)\n"
		"  -i, --interval DURATION   print a line per loop thread every INTERVAL (default 1s)\n"
		"      --threshold DURATION  busy periods longer than this are slow (default 100ms)\n"
		"      --json                JSON lines on stdout (units in field names)\n"
		"  -q, --quiet               no interval lines, only the final report\n"
		"      --mode light|precise  light (default): epoll tracepoints only, ~0.7 us an\n"
		"                            iteration; precise: on CPython 3.8+ also time\n"
		"                            and name every asyncio callback (a uprobe and a\n"
		"                            uretprobe on context_run: ~10 us a callback here,\n"
		"                            docs/BENCHMARKS.md)\n"
		"      --no-stacks           no Python stacks for slow periods (by default, CPython\n"
		"                            3.8+ loops get the culprit's stack, on and off\n"
		"                            CPU, sampled at 1 kHz once a busy period passes a\n"
		"                            quarter of the threshold: no walk while healthy)\n"
		"      --folded FILE         write the slow periods' stacks to FILE in folded\n"
		"                            format (flamegraph.pl, speedscope), weights in us\n"
		"      --app-path PATH       your code's folder (repeatable; default: the target's\n"
		"                            working directory): a slow period is also named by\n"
		"                            its innermost frame there, outside the standard\n"
		"                            library and site-packages (\"-> report app.py:22\")\n"
		"      --btf FILE            kernel BTF to use when the kernel has none in sysfs\n"
		"      --thread-quota N      threads of one process tracked at once (default 512,\n"
		"                            1-4096): beyond it, new threads are counted, not tracked\n"
		"      --record FILE         also record what is seen to FILE (docs/RECORD.md);\n"
		"                            'loopscope report FILE' prints this report again\n"
		"      --every-poll          with --record: also record every poll of every loop\n"
		"                            thread (entry, return, timeout: ~3 bytes a poll)\n"
		"      --every-callback      with --record and --mode precise: also record every\n"
		"                            callback (start, duration, which one)\n"
		"  -h, --help                this help\n"
		"\n"
		"DURATION is a number with a unit: 500us, 100ms, 2s, 1.5s, 1m (ns us ms s m h).\n"
		"\n"
		"Exit codes: 0 ok; 1 internal error; 2 bad arguments; 3 no such process;\n"
		"4 no permission (root or CAP_BPF+CAP_PERFMON needed); 5 kernel unsupported\n"
		"(no BTF or no tracefs); 6 a target exited during the run (report printed);\n"
		"7 no loop thread seen in any target.\n",
		CLI_MAX_PIDS);
}

int cli_attach_parse(int argc, char **argv, struct cli_attach_opts *a)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "interval", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "btf", required_argument, NULL, 'b' },
		{ "thread-quota", required_argument, NULL, 'Q' },
		{ "record", required_argument, NULL, 'R' },
		{ "output", required_argument, NULL, 'o' },
		{ "every-poll", no_argument, NULL, 'E' },
		{ "every-callback", no_argument, NULL, 'K' },
		{ 0 },
	};
	bool record = !strcmp(argv[0], "record");
	int c, n;

	memset(a, 0, sizeof(*a));
	cli_common_defaults(&a->common);
	a->interval_ns = 1000000000ULL;
	a->release_fd = -1;
	if (record) {
		a->no_report = true;
		a->common.quiet = true;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, record ? "+p:d:i:o:h" : "+p:d:i:qh", opts, NULL)) != -1) {
		n = cli_common_option(&a->common, c, optarg);
		if (n < 0)
			return n;
		if (n > 0)
			continue;
		switch (c) {
		case 'p':
			n = ls_target_parse_pids(optarg, a->pids + a->npids, CLI_MAX_PIDS - a->npids);
			if (n < 0) {
				fprintf(stderr, "loopscope: invalid pid list '%s' (expected PID[,PID...], "
					"at most %d)\n", optarg, CLI_MAX_PIDS);
				return -EINVAL;
			}
			a->npids += n;
			break;
		case 'd':
			if (cli_parse_duration("--duration", optarg, &a->duration_ns))
				return -EINVAL;
			break;
		case 'i':
			if (cli_parse_duration("--interval", optarg, &a->interval_ns))
				return -EINVAL;
			break;
		case 'j':
			a->json = true;
			break;
		case 'b':
			a->btf_path = optarg;
			break;
		case 'Q': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (!*optarg || *end || v < 1 || v > 4096) {
				fprintf(stderr, "loopscope: --thread-quota must be 1-4096\n");
				return -EINVAL;
			}
			a->thread_quota = (unsigned int)v;
			break;
		}
		case 'R':
		case 'o':
			if ((c == 'o') != record) {
				fprintf(stderr, "loopscope: %s is an option of 'loopscope %s'\n",
					c == 'o' ? "-o" : "--record", c == 'o' ? "record" : "attach");
				return -EINVAL;
			}
			a->record_path = optarg;
			break;
		case 'E':
			a->every_poll = true;
			break;
		case 'K':
			a->every_callback = true;
			break;
		case 'h':
			if (record)
				cli_record_usage(stdout);
			else
				cli_attach_usage(stdout);
			return 1;
		default:
			fprintf(stderr, "loopscope: try 'loopscope %s --help'\n", argv[0]);
			return -EINVAL;
		}
	}
	if (record && optind < argc && !a->npids && !strcmp(argv[optind - 1], "--")) {
		a->cmd = argv + optind; /* record -- CMD ARGS */
		optind = argc;
	}
	if (optind < argc) {
		fprintf(stderr, "loopscope: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (!a->npids && !a->cmd) {
		fprintf(stderr, "loopscope: %s needs -p PID%s (try 'loopscope %s --help')\n", argv[0],
			record ? " or -- CMD" : "", argv[0]);
		return -EINVAL;
	}
	if (record && !a->record_path) {
		fprintf(stderr, "loopscope: record needs -o FILE\n");
		return -EINVAL;
	}
	if (a->every_poll && !a->record_path) {
		fprintf(stderr, "loopscope: --every-poll needs --record FILE\n");
		return -EINVAL;
	}
	if (a->every_callback && !a->record_path) {
		fprintf(stderr, "loopscope: --every-callback needs --record FILE\n");
		return -EINVAL;
	}
	if (a->every_callback && a->common.mode != CLI_MODE_PRECISE) {
		fprintf(stderr, "loopscope: --every-callback needs --mode precise (light mode has no "
			"per-callback probe; --every-poll records every busy period)\n");
		return -EINVAL;
	}
	if (cli_common_check(&a->common))
		return -EINVAL;
	return 0;
}
