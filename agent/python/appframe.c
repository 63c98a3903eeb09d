// SPDX-License-Identifier: MIT
/* The application frame of a slow period: the innermost frame of the
 * user's code in its culprit stack (rules: loopscope/appframe.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/appframe.h"
#include "loopscope/json.h"
#include "loopscope/slowstack.h"

#define PATH_LEN 256

struct cwd_row {
	pid_t pid;
	bool known;            /* read; path "" when it could not be */
	char path[PATH_LEN];
};

struct ls_appframe {
	char paths[LS_APPFRAME_MAX_PATHS][PATH_LEN];
	int npaths;            /* explicit ones; 0: each target's cwd */
	struct cwd_row *cwd;   /* ring of LS_APPFRAME_MAX_PIDS */
	size_t ncwd, next;
};

static void strip_slash(char *p)
{
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
}

struct ls_appframe *ls_appframe_new(const char *const *paths, int npaths)
{
	struct ls_appframe *af;

	if (npaths < 0 || npaths > LS_APPFRAME_MAX_PATHS) {
		errno = EINVAL;
		return NULL;
	}
	for (int i = 0; i < npaths; i++) {
		if (!paths[i][0] || strlen(paths[i]) >= PATH_LEN) {
			errno = EINVAL;
			return NULL;
		}
	}
	af = calloc(1, sizeof(*af));
	if (!af)
		return NULL;
	for (int i = 0; i < npaths; i++) {
		snprintf(af->paths[i], PATH_LEN, "%s", paths[i]);
		strip_slash(af->paths[i]);
	}
	af->npaths = npaths;
	return af;
}

void ls_appframe_free(struct ls_appframe *af)
{
	if (!af)
		return;
	free(af->cwd);
	free(af);
}

void ls_appframe_forget(struct ls_appframe *af, pid_t pid)
{
	for (size_t i = 0; af && i < af->ncwd; i++)
		if (af->cwd[i].pid == pid)
			af->cwd[i].known = false;
}

/* Whether s holds "/lib/pythonX.Y/" or "/lib64/pythonX.Y/" (digits X, Y). */
static bool has_stdlib_dir(const char *s)
{
	for (const char *p = strstr(s, "/lib"); p; p = strstr(p + 1, "/lib")) {
		const char *q = p + 4;

		if (!strncmp(q, "64", 2))
			q += 2;
		if (strncmp(q, "/python", 7))
			continue;
		q += 7;
		if (*q < '0' || *q > '9')
			continue;
		while (*q >= '0' && *q <= '9')
			q++;
		if (*q++ != '.' || *q < '0' || *q > '9')
			continue;
		while (*q >= '0' && *q <= '9')
			q++;
		if (*q == '/')
			return true;
	}
	return false;
}

bool ls_appframe_is_library(const char *filename)
{
	if (!strncmp(filename, "<frozen", 7))
		return true;
	return strstr(filename, "/site-packages/") || strstr(filename, "/dist-packages/") ||
	       has_stdlib_dir(filename);
}

bool ls_appframe_under(const char *filename, const char *dir)
{
	size_t n = strlen(dir);

	if (filename[0] != '/')
		return filename[0] != '<' && filename[0] != '\0';
	if (!strcmp(dir, "/"))
		return true;
	return !strncmp(filename, dir, n) && filename[n] == '/';
}

/* pid's working directory ("" when unreadable), cached. */
static const char *cwd_of(struct ls_appframe *af, pid_t pid)
{
	struct cwd_row *r = NULL;
	char link[64];
	ssize_t n;

	for (size_t i = 0; i < af->ncwd; i++)
		if (af->cwd[i].pid == pid)
			r = &af->cwd[i];
	if (r && r->known)
		return r->path;
	if (!r) {
		if (!af->cwd && !(af->cwd = calloc(LS_APPFRAME_MAX_PIDS, sizeof(*af->cwd))))
			return "";
		if (af->ncwd < LS_APPFRAME_MAX_PIDS)
			r = &af->cwd[af->ncwd++];
		else
			r = &af->cwd[af->next++ % LS_APPFRAME_MAX_PIDS];
	}
	r->pid = pid;
	r->known = true;
	snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
	n = readlink(link, r->path, PATH_LEN - 1);
	r->path[n > 0 ? n : 0] = '\0';
	/* A directory deleted under the process reads "/x (deleted)". */
	if (n > 10 && !strcmp(r->path + n - 10, " (deleted)"))
		r->path[n - 10] = '\0';
	/* As the target sees it: a chrooted process's cwd reads with its
	 * root in front ("/srv/root/app" for "/app"; a process in its own
	 * mount namespace reads as it sees it already, root "/"). */
	char root[PATH_LEN];

	snprintf(link, sizeof(link), "/proc/%d/root", (int)pid);
	n = readlink(link, root, sizeof(root) - 1);
	root[n > 0 ? n : 0] = '\0';
	size_t rl = strlen(root);

	if (rl > 1 && !strncmp(r->path, root, rl) && (r->path[rl] == '/' || !r->path[rl])) {
		memmove(r->path, r->path + rl, strlen(r->path + rl) + 1);
		if (!r->path[0])
			snprintf(r->path, PATH_LEN, "/");
	}
	return r->path;
}

int ls_appframe_index(struct ls_appframe *af, pid_t pid, const struct ls_stack_agg *a)
{
	const char *cwd = NULL;
	int fallback = -1;

	if (af && !af->npaths)
		cwd = cwd_of(af, pid);
	for (int i = 0; i < a->nframes; i++) {
		const char *file = a->frames[i].filename;
		bool under = false;

		if (!file[0] || ls_appframe_is_library(file))
			continue;
		if (af && af->npaths) {
			for (int k = 0; k < af->npaths && !under; k++)
				under = ls_appframe_under(file, af->paths[k]);
			if (under)
				return i;
			continue;
		}
		if (cwd && cwd[0] && ls_appframe_under(file, cwd))
			return i;
		if (fallback < 0)
			fallback = i;
	}
	return fallback;
}

void ls_appframe_pick(struct ls_appframe *af, pid_t pid, struct ls_stack_summary *sum)
{
	sum->has_app = false;
	for (size_t s = 0; s < sum->n; s++) {
		const struct ls_stack_agg *a = &sum->stacks[s];
		int i;

		if (!a->nframes)
			continue;
		i = ls_appframe_index(af, pid, a);
		if (i >= 0) {
			sum->app = a->frames[i];
			sum->has_app = true;
		}
		return; /* the culprit stack is the heaviest one with frames */
	}
}

json_object *ls_appframe_json(const struct ls_pyframe *f)
{
	json_object *o;

	if (!f)
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "function", json_object_new_string(f->qualname));
	json_object_object_add(o, "file", json_object_new_string(f->filename));
	json_object_object_add(o, "line", json_object_new_int(f->line > 0 ? f->line : f->firstlineno));
	return o;
}

char *ls_appframe_suffix(const struct ls_pyframe *f, char *buf, size_t len)
{
	char fr[600];

	buf[0] = '\0';
	if (f && f->qualname[0])
		snprintf(buf, len, " \u2192 %s", ls_slowstack_frame_text(f, fr, sizeof(fr)));
	return buf;
}
