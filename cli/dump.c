// SPDX-License-Identifier: MIT
/* `loopscope dump PID`: ask loopscoped's flight recorder to write PID's
 * last seconds to a recording now (docs/DAEMON.md, "Flight recorder"). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "loopscope/config.h"
#include "loopscope/ctl.h"

void cli_dump_usage(FILE *f)
{
	fprintf(f,
		"Usage: loopscope dump PID [--socket PATH]\n"
		"\n"
		"Ask loopscoped's flight recorder to write what it holds of PID (its last\n"
		"flight_seconds) to a recording in its flight_dir now; print the file's path.\n"
		"Read it with 'loopscope report FILE'. The daemon needs flight_dir configured.\n"
		"\n"
		"  --socket PATH   the daemon's control socket (default " LS_CFG_DEFAULT_SOCKET ")\n"
		"\n"
		"Exit codes: 0 written; 1 the daemon could not write it (its line says why) or\n"
		"stopped answering; 2 usage; 3 PID is not monitored, or nothing is recorded yet;\n"
		"4 permission denied (the socket is root's); 8 no daemon answers, or its flight\n"
		"recorder is off.\n");
}

int cli_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *sock = LS_CFG_DEFAULT_SOCKET;
	json_object *req, *resp = NULL, *v;
	char *end;
	long pid;
	int c, fd, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'S': sock = optarg; break;
		case 'h': cli_dump_usage(stdout); return LS_EXIT_OK;
		default: cli_dump_usage(stderr); return LS_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "loopscope: dump needs one PID (try 'loopscope dump --help')\n");
		return LS_EXIT_USAGE;
	}
	errno = 0;
	pid = strtol(argv[optind], &end, 10);
	if (errno || *end || end == argv[optind] || pid <= 0 || pid > 4194304) {
		fprintf(stderr, "loopscope: dump: invalid pid '%s'\n", argv[optind]);
		return LS_EXIT_USAGE;
	}
	fd = ls_ctl_connect(sock);
	if (fd == -EACCES) {
		fprintf(stderr, "loopscope: %s: permission denied (the control socket is root's)\n", sock);
		return LS_EXIT_PERMISSION;
	}
	if (fd < 0) {
		fprintf(stderr, "loopscope: no daemon answers on %s: %s\n", sock, strerror(-fd));
		return CLI_EXIT_NO_DAEMON;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("dump"));
	json_object_object_add(req, "pid", json_object_new_int((int)pid));
	/* A dump is a few MiB written by the daemon: seconds at most. */
	ret = ls_ctl_call(fd, req, &resp, 30000);
	json_object_put(req);
	close(fd);
	if (ret) {
		fprintf(stderr, "loopscope: the daemon on %s stopped answering: %s\n", sock, strerror(-ret));
		return LS_EXIT_ERROR;
	}
	if (json_object_object_get_ex(resp, "ok", &v) && json_object_get_boolean(v) &&
	    json_object_object_get_ex(resp, "file", &v)) {
		printf("%s\n", json_object_get_string(v));
		ret = LS_EXIT_OK;
	} else {
		const char *msg = json_object_object_get_ex(resp, "error", &v) ?
			json_object_get_string(v) : "no answer";

		fprintf(stderr, "loopscope: dump: %s\n", msg);
		ret = strstr(msg, "is off") ? CLI_EXIT_NO_DAEMON :
		      strstr(msg, "not monitored") || strstr(msg, "nothing recorded") ?
		      LS_EXIT_NO_PROCESS : LS_EXIT_ERROR;
	}
	json_object_put(resp);
	return ret;
}
