// SPDX-License-Identifier: MIT
/* `loopscope run`: its usage and its options table (cli.h,
 * struct cli_run_opts); the command itself is in run.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "loopscope/run.h"

void cli_run_usage(FILE *f)
{
	fprintf(f,
		"Usage: loopscope run [GATES] [REPORTS] [OPTIONS] -- CMD [ARGS...]\n"
		"\n"
		"Run CMD (stdin, stdout, stderr untouched) and monitor it and every process it\n"
		"starts: CPython processes in precise mode (every asyncio callback), any other\n"
		"at epoll level (busy periods). SIGINT and SIGTERM are forwarded to CMD.\n"
		"\n"
		"Gates (none: report only):\n"
		"  --fail-on-slow DURATION      fail on a callback (or, outside precise mode,\n"
		"                               a busy period) longer than DURATION\n"
		"  --max-slow N                 tolerate up to N such events (default 0)\n"
		"  --fail-on-lag-p99 DURATION   fail when a loop thread's lag p99 is above it\n"
		"  --allow PATTERN              report but do not count an event whose name,\n"
		"                               application frame or any culprit-stack frame\n"
		"                               matches the glob (FILE:LINE, basename or full\n"
		"                               path; the same in light and precise mode);\n"
		"                               repeatable\n"
		"Reports (a summary always goes to stderr at the end):\n"
		"  --json-out FILE              machine summary (docs/run-report.schema.json)\n"
		"  --junit FILE                 JUnit XML: each gate a test case, each violation\n"
		"                               a failure\n"
		"  --annotations github|none    GitHub Actions ::error lines (default: github\n"
		"                               when GITHUB_ACTIONS=true)\n"
		"Options:\n"
		"  --threshold DURATION         what counts as slow without --fail-on-slow\n"
		"                               (default 100ms)\n"
		"  --mode light|precise         precise (default) or epoll level everywhere\n"
		"  -q, --quiet                  no per-process lines while running\n"
		"  --no-stacks                  no Python stacks of slow events (by default\n"
		"                               each one says where its time went: on CPU or\n"
		"                               blocked in which syscall, at which line)\n"
		"  --folded FILE                the slow events' stacks in folded format\n"
		"                               (flamegraph.pl, speedscope), weights in us\n"
		"  --app-path PATH              your code's folder (repeatable; default: each\n"
		"                               process's working directory): events are also\n"
		"                               named by their innermost frame there, outside\n"
		"                               the standard library and site-packages\n"
		"  -h, --help\n"
		"\n"
		"Exit codes: CMD's own when no gate fails (128+N when signal N killed it);\n"
		"%d when a gate failed and CMD succeeded; %d loopscope's own error (bad\n"
		"arguments, unwritable report, no BPF); %d CMD not found or not executable.\n",
		LS_RUN_EXIT_GATE, LS_RUN_EXIT_ERROR, LS_RUN_EXIT_NOT_FOUND);
}

int cli_run_parse(int argc, char **argv, struct ls_run_result *r, struct cli_run_opts *run)
{
	static const struct option opts[] = {
		CLI_COMMON_OPTIONS,
		{ "fail-on-slow", required_argument, NULL, 's' },
		{ "fail-on-lag-p99", required_argument, NULL, 'l' },
		{ "max-slow", required_argument, NULL, 'n' },
		{ "allow", required_argument, NULL, 'a' },
		{ "json-out", required_argument, NULL, 'j' },
		{ "junit", required_argument, NULL, 'u' },
		{ "annotations", required_argument, NULL, 'A' },
		{ 0 },
	};
	const char *gha = getenv("GITHUB_ACTIONS");
	char *end;
	int c, n;

	memset(run, 0, sizeof(*run));
	cli_common_defaults(&run->common);
	r->max_slow = -1;
	run->annotations = gha && !strcmp(gha, "true");
	optind = 1;
	/* "+": stop at the first non-option, CMD's own flags are its own. */
	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		n = cli_common_option(&run->common, c, optarg);
		if (n < 0)
			return n;
		if (n > 0)
			continue;
		switch (c) {
		case 's':
			if (cli_parse_duration("--fail-on-slow", optarg, &r->fail_on_slow_ns))
				return -EINVAL;
			break;
		case 'l':
			if (cli_parse_duration("--fail-on-lag-p99", optarg, &r->fail_on_lag_p99_ns))
				return -EINVAL;
			break;
		case 'n':
			errno = 0;
			r->max_slow = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || r->max_slow < 0) {
				fprintf(stderr, "loopscope: invalid count '%s' for --max-slow\n", optarg);
				return -EINVAL;
			}
			break;
		case 'a':
			if (r->nallow == LS_RUN_MAX_ALLOW) {
				fprintf(stderr, "loopscope: more than %d --allow patterns\n", LS_RUN_MAX_ALLOW);
				return -EINVAL;
			}
			r->allow[r->nallow++] = optarg;
			break;
		case 'j':
			run->json_out = optarg;
			break;
		case 'u':
			run->junit_out = optarg;
			break;
		case 'A':
			if (strcmp(optarg, "github") && strcmp(optarg, "none")) {
				fprintf(stderr, "loopscope: invalid --annotations '%s' (github or none)\n",
					optarg);
				return -EINVAL;
			}
			run->annotations = !strcmp(optarg, "github");
			break;
		case 'h':
			cli_run_usage(stdout);
			return 1;
		default:
			fprintf(stderr, "loopscope: try 'loopscope run --help'\n");
			return -EINVAL;
		}
	}
	run->threshold_ns = r->fail_on_slow_ns ? r->fail_on_slow_ns : run->common.threshold_ns;
	if (optind >= argc) {
		fprintf(stderr, "loopscope: run needs a command: loopscope run [OPTIONS] -- CMD [ARGS...]\n");
		return -EINVAL;
	}
	if (cli_common_check(&run->common))
		return -EINVAL;
	for (int i = optind; i < argc; i++) {
		size_t len = strlen(r->cmd);

		snprintf(r->cmd + len, sizeof(r->cmd) - len, "%s%s", i > optind ? " " : "", argv[i]);
	}
	return 0;
}
