/* SPDX-License-Identifier: MIT */
/* `loopscope report FILE --html OUT` (cli/html.c). */
#ifndef LOOPSCOPE_CLI_HTML_H
#define LOOPSCOPE_CLI_HTML_H

#include "attach.h"

/* Write the report of a (its slow periods, names, window) with views v
 * (n threads at now_ns) to path as one self-contained HTML page (inline
 * SVG, no script, no network). 0, or -errno (-ENOMEM, open/write errors). */
int cli_html_write(const char *path, struct attach *a, const struct ls_thread_view *v, size_t n,
		   uint64_t now_ns);

#endif /* LOOPSCOPE_CLI_HTML_H */
