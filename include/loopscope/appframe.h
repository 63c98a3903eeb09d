/* SPDX-License-Identifier: MIT */
/*
 * The application frame of a slow period (agent/python/appframe.c): the
 * innermost frame of its culprit stack (the heaviest one) that is the
 * user's code, not the standard library nor an installed package. It names
 * a callback that a framework wrapper hides ("Task
 * RequestHandler._handle_request() -> report aio_app.py:22").
 *
 * Library code, decided from the code object's filename alone:
 *  - the standard library: a path with a ".../lib/pythonX.Y/" or
 *    ".../lib64/pythonX.Y/" component (sysconfig's "stdlib" path,
 *    {installed_base}/lib/pythonX.Y, in Debian's, pyenv's and python.org
 *    builds alike);
 *  - installed packages: any "/site-packages/" or "/dist-packages/" component
 *    (a virtualenv inside the app's folder included);
 *  - frozen modules: "<frozen ...>" (importlib, and since 3.11 some others).
 * Application code: under one of the application paths (--app-path,
 * repeatable; by default the target's working directory, /proc/PID/cwd as
 * seen inside its mount namespace, where co_filename is seen too), or a
 * relative filename (resolved against that directory by the interpreter).
 * With the default path only, a stack with no frame under the working
 * directory falls back to its innermost non-library frame (a service
 * started from "/" or from elsewhere still gets one); explicit paths are
 * strict.
 */
#ifndef LOOPSCOPE_APPFRAME_H
#define LOOPSCOPE_APPFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "loopscope/pycode.h"

struct ls_stack_summary;
struct ls_stack_agg;

#define LS_APPFRAME_MAX_PATHS 16  /* --app-path given at most this often */
#define LS_APPFRAME_MAX_PIDS 1024 /* working directories cached (oldest go) */

struct ls_appframe;

/* A chooser with explicit application paths (npaths 0: each target's
 * working directory). Paths longer than 255 bytes and those beyond
 * LS_APPFRAME_MAX_PATHS are refused: NULL with errno EINVAL; NULL with
 * ENOMEM. A trailing '/' is ignored. */
struct ls_appframe *ls_appframe_new(const char *const *paths, int npaths);
void ls_appframe_free(struct ls_appframe *af);

/* Forget pid's working directory (it exec'd or exited; read again next
 * time). */
void ls_appframe_forget(struct ls_appframe *af, pid_t pid);

/* Whether filename is library code (see above). */
bool ls_appframe_is_library(const char *filename);

/* Whether filename is under dir (a component boundary: "/a/b" holds
 * "/a/b/c.py", not "/a/bc.py"); a relative filename is under any dir. */
bool ls_appframe_under(const char *filename, const char *dir);

/* The application frame of stack a of process pid: index into a->frames,
 * -1 when none. pid's working directory is read once (readlink of
 * /proc/PID/cwd, less the /proc/PID/root prefix of a chrooted process: the
 * path as the target sees it, as its co_filename) and cached; a process
 * gone leaves no path (the fallback rule applies). */
int ls_appframe_index(struct ls_appframe *af, pid_t pid, const struct ls_stack_agg *a);

/* The application frame of sum: that of its heaviest stack with frames
 * (its culprit stack), written into sum->app (sum->has_app true), or
 * sum->has_app false. af NULL: the default rule without a cwd. */
void ls_appframe_pick(struct ls_appframe *af, pid_t pid, struct ls_stack_summary *sum);

/* {"function", "file", "line"} of f (line: the line it was on, else its
 * first line), or NULL (json null) when f is NULL. */
json_object *ls_appframe_json(const struct ls_pyframe *f);

/* " → report aio_app.py:22" (f NULL or empty: "") into buf. */
char *ls_appframe_suffix(const struct ls_pyframe *f, char *buf, size_t len);

#endif /* LOOPSCOPE_APPFRAME_H */
