// SPDX-License-Identifier: MIT
/* loopscope: command dispatch, --help, --version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "loopscope/loopscope.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: loopscope COMMAND [OPTIONS]\n"
		"\n"
		"Measure the health of event loops in running processes, from the outside, with eBPF.\n"
		"\n"
		"Commands:\n"
		"  attach -p PID[,PID...]   watch the loop threads of running processes\n"
		"  record -p PID -o FILE    record what attach sees into FILE (or: -- CMD)\n"
		"  report FILE              the report of a recording; --perfetto: its timeline\n"
		"  run [GATES] -- CMD       run CMD under monitoring, following its children;\n"
		"                           gate CI on slow callbacks and loop lag\n"
		"  top                      live view of every loop loopscoped monitors (or of\n"
		"                           local Python processes when no daemon runs)\n"
		"  status                   the same, printed once\n"
		"  dump PID                 loopscoped's flight recorder: write PID's last\n"
		"                           seconds to a recording now\n"
		"  help [COMMAND]           show help\n"
		"\n"
		"Options: -h, --help; -V, --version\n"
		"Run 'loopscope COMMAND --help' for a command's options and exit codes.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return LS_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return LS_EXIT_OK;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("loopscope %s\n", LS_VERSION);
		return LS_EXIT_OK;
	}
	if (!strcmp(argv[1], "help")) {
		if (argc > 2 && !strcmp(argv[2], "attach"))
			cli_attach_usage(stdout);
		else if (argc > 2 && !strcmp(argv[2], "record"))
			cli_record_usage(stdout);
		else if (argc > 2 && !strcmp(argv[2], "report"))
			cli_report_usage(stdout);
		else if (argc > 2 && !strcmp(argv[2], "dump"))
			cli_dump_usage(stdout);
		else if (argc > 2 && !strcmp(argv[2], "run"))
			cli_run_usage(stdout);
		else if (argc > 2 && (!strcmp(argv[2], "top") || !strcmp(argv[2], "status"))) {
			char *help[] = { argv[2], "--help", NULL };

			return !strcmp(argv[2], "top") ? cli_top(2, help) : cli_status(2, help);
		}
		else
			usage(stdout);
		return LS_EXIT_OK;
	}
	if (!strcmp(argv[1], "attach"))
		return cli_attach(argc - 1, argv + 1);
	if (!strcmp(argv[1], "record"))
		return cli_record(argc - 1, argv + 1);
	if (!strcmp(argv[1], "report"))
		return cli_report(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cli_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "top"))
		return cli_top(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cli_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dump"))
		return cli_dump(argc - 1, argv + 1);
	fprintf(stderr, "loopscope: unknown command '%s' (try 'loopscope --help')\n", argv[1]);
	return LS_EXIT_USAGE;
}
