// SPDX-License-Identifier: MIT
/* The options attach and run share: parsed here once (cli.h,
 * CLI_COMMON_OPTIONS). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_common_defaults(struct cli_common *c)
{
	memset(c, 0, sizeof(*c));
	c->threshold_ns = LS_DEFAULT_THRESHOLD_NS;
	c->mode = CLI_MODE_DEFAULT;
	c->stacks = true;
}

int cli_common_option(struct cli_common *c, int opt, const char *arg)
{
	switch (opt) {
	case 't':
		return cli_parse_duration("--threshold", arg, &c->threshold_ns) ? -EINVAL : 1;
	case 'm':
		if (strcmp(arg, "light") && strcmp(arg, "precise")) {
			fprintf(stderr, "loopscope: invalid mode '%s' (light or precise)\n", arg);
			return -EINVAL;
		}
		c->mode = !strcmp(arg, "precise") ? CLI_MODE_PRECISE : CLI_MODE_LIGHT;
		return 1;
	case 'q':
		c->quiet = true;
		return 1;
	case 'S':
		c->stacks = false;
		return 1;
	case 'F':
		c->folded_path = arg;
		return 1;
	case 'P':
		if (c->napp_paths == LS_APPFRAME_MAX_PATHS) {
			fprintf(stderr, "loopscope: more than %d --app-path options\n",
				LS_APPFRAME_MAX_PATHS);
			return -EINVAL;
		}
		if (!arg[0] || strlen(arg) > 255) {
			fprintf(stderr, "loopscope: invalid --app-path '%.300s' (1 to 255 bytes)\n", arg);
			return -EINVAL;
		}
		c->app_paths[c->napp_paths++] = arg;
		return 1;
	default:
		return 0;
	}
}

int cli_common_check(const struct cli_common *c)
{
	if (c->folded_path && !c->stacks) {
		fprintf(stderr, "loopscope: --folded needs stacks (drop --no-stacks)\n");
		return -EINVAL;
	}
	return 0;
}
