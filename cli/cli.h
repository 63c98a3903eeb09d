/* SPDX-License-Identifier: MIT */
/* The loopscope command line: argument parsing and presentation only. */
#ifndef LOOPSCOPE_CLI_H
#define LOOPSCOPE_CLI_H

#include <stdio.h>

/* `loopscope attach`: argv[0] is "attach". Returns an enum ls_exit code. */
int cli_attach(int argc, char **argv);
void cli_attach_usage(FILE *f);

#endif /* LOOPSCOPE_CLI_H */
