// SPDX-License-Identifier: MIT
/* `loopscope record -p PID[,PID] [-d DURATION] -o FILE` and `record -o FILE
 * -- CMD ARGS`: attach, with everything attach sees written to FILE
 * (docs/RECORD.md) instead of printed; `loopscope report FILE` prints it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "loopscope/record.h"

void cli_record_usage(FILE *f)
{
	fprintf(f,
		"Usage: loopscope record -p PID[,PID...] -o FILE [-d DURATION] [-i INTERVAL]\n"
		"                        [--threshold DURATION] [--mode light|precise] [--no-stacks]\n"
		"                        [--every-poll] [--every-callback]\n"
		"       loopscope record -o FILE [OPTIONS] -- CMD [ARGS...]\n"
		"\n"
		"Record what 'loopscope attach' sees into FILE: every loop thread's figures\n"
		"(iterations, busy, poll and lag histograms) every INTERVAL, and each slow busy\n"
		"period with its reasons and Python stacks (names resolved now, so the\n"
		"file reads anywhere later). Ctrl-C or SIGTERM ends it cleanly; a crash loses\n"
		"at most the last INTERVAL. 'loopscope report FILE' prints the report attach\n"
		"would have printed; the format is in docs/RECORD.md.\n"
		"\n"
		"  -o, --output FILE         the recording (created or truncated)\n"
		"  -p, --pid PID[,PID...]    processes to record (up to %d)\n"
		"  -- CMD [ARGS...]          run CMD and record it until it exits\n"
		"  -d, --duration DURATION   stop after DURATION (default: until Ctrl-C or exit)\n"
		"  -i, --interval DURATION   a snapshot of the figures every INTERVAL (default 1s)\n"
		"      --threshold DURATION  busy periods longer than this are slow (default 100ms);\n"
		"                            a report may raise it later, not lower it\n"
		"      --every-poll          also every poll of every loop thread: its entry, return\n"
		"                            and timeout (the busy period is the gap before an\n"
		"                            entry), ~3 bytes a poll compressed; the report's\n"
		"                            --from/--to then cut at any poll, not at snapshots\n"
		"      --every-callback      with --mode precise: also every callback (its start,\n"
		"                            duration and name); the report's --from/--to then cut\n"
		"                            the callback table at any callback, and the timeline\n"
		"                            draws them\n"
		"      --mode, --no-stacks, --folded, --btf: as for attach\n"
		"\n"
		"Exit codes: as attach's (0 ok, 1 error, 2 bad arguments, 3 no such process,\n"
		"4 no permission, 5 kernel unsupported, 6 a target exited, 7 no loop thread);\n"
		"with -- CMD, CMD ending is no error: 0, or 7 when it never polled.\n",
		CLI_MAX_PIDS);
}

int cli_record(int argc, char **argv)
{
	struct cli_attach_opts o;
	int err = cli_attach_parse(argc, argv, &o), fds[2], ret, status;
	pid_t child;

	if (err)
		return err > 0 ? LS_EXIT_OK : LS_EXIT_USAGE;
	if (!o.cmd)
		return cli_attach_run(&o);
	/* CMD waits on a pipe until the recording is in, so its first poll is
	 * seen; the pipe closed without a byte (set-up failed): it exits. */
	if (pipe2(fds, O_CLOEXEC)) {
		fprintf(stderr, "loopscope: pipe: %s\n", strerror(errno));
		return LS_EXIT_ERROR;
	}
	child = fork();
	if (child < 0) {
		fprintf(stderr, "loopscope: fork: %s\n", strerror(errno));
		return LS_EXIT_ERROR;
	}
	if (child == 0) {
		char go;

		close(fds[1]);
		if (read(fds[0], &go, 1) != 1)
			_exit(127);
		execvp(o.cmd[0], o.cmd);
		fprintf(stderr, "loopscope: cannot run %s: %s\n", o.cmd[0], strerror(errno));
		_exit(127);
	}
	close(fds[0]);
	o.pids[0] = child;
	o.npids = 1;
	o.release_fd = fds[1];
	/* Ctrl-C goes to the whole foreground group: CMD stops too, and the
	 * recording ends when it has. */
	ret = cli_attach_run(&o);
	close(fds[1]); /* not released (set-up failed): CMD exits unrun */
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (ret == LS_EXIT_TARGET_EXITED)
		ret = LS_EXIT_OK; /* CMD's end is the recording's end */
	return ret;
}
