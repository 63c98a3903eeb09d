// SPDX-License-Identifier: MIT
/* Reports of `loopscope run`: what the writers share (report.h): bounds,
 * cleaning for JSON and XML, gate values, file output, the messages of
 * JUnit, annotations and the summary. Each format has its file:
 * run_json.c, run_junit.c, run_text.c (annotations and summary). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/duration.h"
#include "loopscope/run.h"
#include "report.h"

/* ---- shared helpers ---------------------------------------------------- */

uint64_t ls_report_duration_ns(const struct ls_run_result *r)
{
	return r->end_ns > r->start_ns ? r->end_ns - r->start_ns : 0;
}

const struct ls_run_process *ls_report_find_proc(const struct ls_run_result *r, pid_t pid)
{
	for (int i = 0; i < r->nprocs && i < LS_RUN_MAX_PROCS; i++)
		if (r->procs[i].pid == pid)
			return &r->procs[i];
	return NULL;
}

const char *ls_report_cmdline_of(const struct ls_run_result *r, pid_t pid)
{
	const struct ls_run_process *p = ls_report_find_proc(r, pid);

	return p && p->cmdline[0] ? p->cmdline : NULL;
}

int ls_report_nslow(const struct ls_run_result *r)
{
	return r->nslow < 0 ? 0 : r->nslow > LS_RUN_MAX_SLOW ? LS_RUN_MAX_SLOW : r->nslow;
}

int ls_report_nprocs(const struct ls_run_result *r)
{
	return r->nprocs < 0 ? 0 : r->nprocs > LS_RUN_MAX_PROCS ? LS_RUN_MAX_PROCS : r->nprocs;
}

const char *ls_report_field(const char *a, size_t n)
{
	return memchr(a, '\0', n) ? a : "";
}

/* A gate's value as written on the command line: the largest unit that
 * divides it exactly ("100ms", "1500ms", "2s", "250us"). */
char *ls_report_gate_dur(uint64_t ns, char *buf, size_t len)
{
	static const struct {
		uint64_t mult;
		const char *unit;
	} u[] = { { 3600000000000ULL, "h" }, { 60000000000ULL, "m" }, { 1000000000ULL, "s" },
		  { 1000000ULL, "ms" },      { 1000ULL, "us" } };

	for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
		if (ns >= u[i].mult && ns % u[i].mult == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(ns / u[i].mult), u[i].unit);
			return buf;
		}
	snprintf(buf, len, "%lluns", (unsigned long long)ns);
	return buf;
}

/* s with invalid UTF-8 and control characters (but \t, \n, \r) replaced by '?':
 * JSON and XML readers reject them. malloc'd; NULL on ENOMEM. */
char *ls_report_clean(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t len = 0;
		uint32_t cp = 0;

		if (c < 0x80) {
			out[o++] = (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f ? '?' : (char)c;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			len = 2, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			len = 3, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			len = 4, cp = c & 0x07;
		bool ok = len && i + len <= n;
		for (size_t k = 1; ok && k < len; k++) {
			unsigned char cc = (unsigned char)s[i + k];
			if ((cc & 0xc0) != 0x80)
				ok = false;
			else
				cp = (cp << 6) | (cc & 0x3f);
		}
		if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
			   (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
			   (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe || cp == 0xffff))
			ok = false;
		if (!ok) {
			out[o++] = '?';
			i++;
			continue;
		}
		memcpy(out + o, s + i, len);
		o += len;
		i += len;
	}
	out[o] = '\0';
	return out;
}

/* Write len bytes to path ("-": stdout), creating or truncating it. */
int ls_report_write_file(const char *path, const char *data, size_t len)
{
	FILE *f;
	int err = 0;

	if (strcmp(path, "-") == 0) {
		if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
			return -(errno ? errno : EIO);
		return 0;
	}
	f = fopen(path, "w");
	if (!f)
		return -errno;
	if (fwrite(data, 1, len, f) != len)
		err = -(errno ? errno : EIO);
	if (fclose(f) != 0 && !err)
		err = -(errno ? errno : EIO);
	return err;
}

int ls_run_check_writable(const char *path)
{
	int fd;

	if (!path || !*path)
		return -EINVAL;
	if (strcmp(path, "-") == 0)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (close(fd) != 0)
		return -errno;
	return 0;
}

/* ---- messages shared by JUnit, annotations and the summary ------------- */

/* "Task test_blocks() ran 150.3 ms" */
void ls_report_slow_headline(const struct ls_run_slow *s, char *buf, size_t len)
{
	char d[16];

	snprintf(buf, len, "%s ran %s", FIELD(s->name), ls_duration_format(s->duration_ns, d, sizeof(d)));
}

/* "(pid 123: python3 -m pytest)" or "(pid 123)" */
void ls_report_pid_note(const struct ls_run_result *r, pid_t pid, char *buf, size_t len)
{
	const char *cl = ls_report_cmdline_of(r, pid);

	if (cl)
		snprintf(buf, len, "(pid %d: %s)", (int)pid, cl);
	else
		snprintf(buf, len, "(pid %d)", (int)pid);
}

/* "pid 123 (python3 -m pytest): loop lag p99 62.0 ms on thread 124, above 50.0 ms" */
void ls_report_lag_message(const struct ls_run_result *r, const struct ls_run_process *p, char *buf,
			size_t len)
{
	char d[16], g[16];

	ls_duration_format(p->lag_p99_ns, d, sizeof(d));
	ls_duration_format(r->fail_on_lag_p99_ns, g, sizeof(g));
	if (p->cmdline[0])
		snprintf(buf, len, "pid %d (%s): loop lag p99 %s on thread %u, above %s",
			 (int)p->pid, FIELD(p->cmdline), d, p->lag_p99_tid, g);
	else
		snprintf(buf, len, "pid %d: loop lag p99 %s on thread %u, above %s", (int)p->pid, d,
			 p->lag_p99_tid, g);
}

/* Full line for a slow event: headline, place, pid, test. */
void ls_report_slow_message(const struct ls_run_result *r, const struct ls_run_slow *s, char *buf,
			 size_t len)
{
	char head[700], pn[600], at[300] = "", test[300] = "", app[600] = "";

	ls_report_slow_headline(s, head, sizeof(head));
	ls_report_pid_note(r, s->pid, pn, sizeof(pn));
	if (s->file[0] && s->line > 0)
		snprintf(at, sizeof(at), " at %s:%d", FIELD(s->file), s->line);
	else if (s->file[0])
		snprintf(at, sizeof(at), " at %s", FIELD(s->file));
	if (s->app_file[0]) {
		/* the blocking line: the application frame */
		const char *af = FIELD(s->app_file), *ab = strrchr(af, '/');

		snprintf(app, sizeof(app), " \u2192 %s %s:%d", FIELD(s->app_function), ab ? ab + 1 : af,
			 s->app_line);
	}
	if (s->test[0])
		snprintf(test, sizeof(test), " in test %s", FIELD(s->test));
	snprintf(buf, len, "%s%s%s %s, thread %d%s", head, at, app, pn, (int)s->tid, test);
}
