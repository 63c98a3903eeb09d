// SPDX-License-Identifier: MIT
/* Reports of `loopscope run`: JSON (json-c), JUnit XML (libxml2's
 * xmlTextWriter), GitHub Actions annotations and the text summary. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libxml/xmlwriter.h>

#include "loopscope/duration.h"
#include "loopscope/gate.h"
#include "loopscope/json.h"
#include "loopscope/loopscope.h"
#include "loopscope/run.h"

#ifndef LS_VERSION
#define LS_VERSION "unknown"
#endif

/* ---- shared helpers ---------------------------------------------------- */

static uint64_t duration_ns(const struct ls_run_result *r)
{
	return r->end_ns > r->start_ns ? r->end_ns - r->start_ns : 0;
}

static const struct ls_run_process *find_proc(const struct ls_run_result *r, pid_t pid)
{
	for (int i = 0; i < r->nprocs && i < LS_RUN_MAX_PROCS; i++)
		if (r->procs[i].pid == pid)
			return &r->procs[i];
	return NULL;
}

static const char *cmdline_of(const struct ls_run_result *r, pid_t pid)
{
	const struct ls_run_process *p = find_proc(r, pid);

	return p && p->cmdline[0] ? p->cmdline : NULL;
}

static int nslow(const struct ls_run_result *r)
{
	return r->nslow < 0 ? 0 : r->nslow > LS_RUN_MAX_SLOW ? LS_RUN_MAX_SLOW : r->nslow;
}

static int nprocs(const struct ls_run_result *r)
{
	return r->nprocs < 0 ? 0 : r->nprocs > LS_RUN_MAX_PROCS ? LS_RUN_MAX_PROCS : r->nprocs;
}

/* Bounded copy of a fixed-size char array (may lack its NUL). */
#define FIELD(a) bounded(a, sizeof(a))
static const char *bounded(const char *a, size_t n)
{
	return memchr(a, '\0', n) ? a : "";
}

static char *dur(uint64_t ns, char *buf, size_t len)
{
	return ls_duration_format(ns, buf, len);
}

/* A gate's value as written on the command line: the largest unit that
 * divides it exactly ("100ms", "1500ms", "2s", "250us"). */
static char *gate_dur(uint64_t ns, char *buf, size_t len)
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
static char *clean(const char *s)
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
static int write_file(const char *path, const char *data, size_t len)
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

/* ---- JSON -------------------------------------------------------------- */

static int jadd_str(json_object *o, const char *k, const char *v, bool null_if_empty)
{
	char *c;

	if (null_if_empty && (!v || !*v)) {
		json_object_object_add(o, k, NULL);
		return 0;
	}
	c = clean(v ? v : "");
	if (!c)
		return -ENOMEM;
	json_object_object_add(o, k, json_object_new_string(c));
	free(c);
	return 0;
}

static json_object *json_report(const struct ls_run_result *r)
{
	json_object *o = json_object_new_object(), *g, *allow, *procs, *slow, *v;
	int rc = 0;

	if (!o)
		return NULL;
	rc |= jadd_str(o, "loopscope_version", LS_VERSION, false);
	rc |= jadd_str(o, "cmd", FIELD(r->cmd), false);
	ls_json_add_i64(o, "cmd_exit", r->cmd_exit);
	ls_json_add_i64(o, "cmd_signal", r->cmd_signal);
	ls_json_add_u64(o, "duration_ns", duration_ns(r));

	g = json_object_new_object();
	json_object_object_add(o, "gates", g);
	if (r->fail_on_slow_ns > 0)
		ls_json_add_u64(g, "fail_on_slow_ns", r->fail_on_slow_ns);
	else
		json_object_object_add(g, "fail_on_slow_ns", NULL);
	if (r->fail_on_lag_p99_ns > 0)
		ls_json_add_u64(g, "fail_on_lag_p99_ns", r->fail_on_lag_p99_ns);
	else
		json_object_object_add(g, "fail_on_lag_p99_ns", NULL);
	if (r->max_slow >= 0)
		ls_json_add_i64(g, "max_slow", r->max_slow);
	else
		json_object_object_add(g, "max_slow", NULL);
	allow = json_object_new_array();
	json_object_object_add(g, "allow", allow);
	for (int i = 0; i < r->nallow && i < LS_RUN_MAX_ALLOW; i++) {
		char *c = r->allow[i] ? clean(r->allow[i]) : NULL;
		if (!r->allow[i])
			continue;
		if (!c) {
			rc = -ENOMEM;
			break;
		}
		json_object_array_add(allow, json_object_new_string(c));
		free(c);
	}

	procs = json_object_new_array();
	json_object_object_add(o, "processes", procs);
	for (int i = 0; i < nprocs(r); i++) {
		const struct ls_run_process *p = &r->procs[i];
		json_object *jp = json_object_new_object();

		json_object_array_add(procs, jp);
		ls_json_add_i64(jp, "pid", p->pid);
		ls_json_add_i64(jp, "ppid", p->ppid);
		rc |= jadd_str(jp, "cmdline", FIELD(p->cmdline), false);
		rc |= jadd_str(jp, "python", FIELD(p->python), true);
		json_object_object_add(jp, "mode",
				       json_object_new_string(p->precise ? "precise" : "epoll"));
		ls_json_add_i64(jp, "loop_threads", p->loop_threads);
		ls_json_add_u64(jp, "lag_p99_ns", p->lag_p99_ns);
		ls_json_add_u64(jp, "lag_p99_tid", p->lag_p99_tid);
	}

	slow = json_object_new_array();
	json_object_object_add(o, "slow", slow);
	for (int i = 0; i < nslow(r); i++) {
		const struct ls_run_slow *s = &r->slow[i];
		json_object *js = json_object_new_object();

		json_object_array_add(slow, js);
		json_object_object_add(js, "kind", json_object_new_string(
			s->kind == LS_RUN_SLOW_BUSY ? "busy" : "callback"));
		rc |= jadd_str(js, "name", FIELD(s->name), false);
		rc |= jadd_str(js, "file", FIELD(s->file), true);
		if (s->line > 0)
			ls_json_add_i64(js, "line", s->line);
		else
			json_object_object_add(js, "line", NULL);
		rc |= jadd_str(js, "test", FIELD(s->test), true);
		rc |= jadd_str(js, "why", FIELD(s->why), true);
		ls_json_add_i64(js, "pid", s->pid);
		ls_json_add_i64(js, "tid", s->tid);
		ls_json_add_u64(js, "start_ns", s->start_ns);
		ls_json_add_u64(js, "duration_ns", s->duration_ns);
		json_object_object_add(js, "allowed", json_object_new_boolean(s->allowed));
	}
	ls_json_add_i64(o, "slow_not_kept", r->slow_not_kept < 0 ? 0 : r->slow_not_kept);
	ls_json_add_u64(o, "lost_events", r->lost_events);

	v = json_object_new_object();
	json_object_object_add(o, "verdict", v);
	ls_json_add_i64(v, "slow_counted", r->slow_counted);
	json_object_object_add(v, "slow_gate_failed", json_object_new_boolean(r->slow_gate_failed));
	json_object_object_add(v, "lag_gate_failed", json_object_new_boolean(r->lag_gate_failed));
	ls_json_add_i64(v, "exit_code", r->exit_code);

	if (rc) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int ls_run_write_json(const struct ls_run_result *r, const char *path)
{
	json_object *o = json_report(r);
	const char *s;
	char *doc;
	size_t n;
	int rc;

	if (!o)
		return -ENOMEM;
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_SPACED |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s) {
		json_object_put(o);
		return -ENOMEM;
	}
	n = strlen(s);
	doc = malloc(n + 2);
	if (!doc) {
		json_object_put(o);
		return -ENOMEM;
	}
	memcpy(doc, s, n);
	doc[n++] = '\n';
	doc[n] = '\0';
	json_object_put(o);
	rc = write_file(path, doc, n);
	free(doc);
	return rc;
}

/* ---- messages shared by JUnit, annotations and the summary ------------- */

/* "Task test_blocks() ran 150.3 ms" */
static void slow_headline(const struct ls_run_slow *s, char *buf, size_t len)
{
	char d[16];

	snprintf(buf, len, "%s ran %s", FIELD(s->name), dur(s->duration_ns, d, sizeof(d)));
}

/* "(pid 123: python3 -m pytest)" or "(pid 123)" */
static void pid_note(const struct ls_run_result *r, pid_t pid, char *buf, size_t len)
{
	const char *cl = cmdline_of(r, pid);

	if (cl)
		snprintf(buf, len, "(pid %d: %s)", (int)pid, cl);
	else
		snprintf(buf, len, "(pid %d)", (int)pid);
}

/* "pid 123 (python3 -m pytest): loop lag p99 62.0 ms on thread 124, above 50.0 ms" */
static void lag_message(const struct ls_run_result *r, const struct ls_run_process *p, char *buf,
			size_t len)
{
	char d[16], g[16];

	dur(p->lag_p99_ns, d, sizeof(d));
	dur(r->fail_on_lag_p99_ns, g, sizeof(g));
	if (p->cmdline[0])
		snprintf(buf, len, "pid %d (%s): loop lag p99 %s on thread %u, above %s",
			 (int)p->pid, FIELD(p->cmdline), d, p->lag_p99_tid, g);
	else
		snprintf(buf, len, "pid %d: loop lag p99 %s on thread %u, above %s", (int)p->pid, d,
			 p->lag_p99_tid, g);
}

/* Full line for a slow event: headline, place, pid, test. */
static void slow_message(const struct ls_run_result *r, const struct ls_run_slow *s, char *buf,
			 size_t len)
{
	char head[700], pn[600], at[300] = "", test[300] = "";

	slow_headline(s, head, sizeof(head));
	pid_note(r, s->pid, pn, sizeof(pn));
	if (s->file[0] && s->line > 0)
		snprintf(at, sizeof(at), " at %s:%d", FIELD(s->file), s->line);
	else if (s->file[0])
		snprintf(at, sizeof(at), " at %s", FIELD(s->file));
	if (s->test[0])
		snprintf(test, sizeof(test), " in test %s", FIELD(s->test));
	snprintf(buf, len, "%s%s %s, thread %d%s", head, at, pn, (int)s->tid, test);
}

/* ---- JUnit ------------------------------------------------------------- */

struct xw {
	xmlTextWriterPtr w;
	int err;
};

static void xw_start(struct xw *x, const char *el)
{
	if (!x->err && xmlTextWriterStartElement(x->w, BAD_CAST el) < 0)
		x->err = -EIO;
}

static void xw_end(struct xw *x)
{
	if (!x->err && xmlTextWriterEndElement(x->w) < 0)
		x->err = -EIO;
}

static void xw_attr(struct xw *x, const char *k, const char *v)
{
	char *c;

	if (x->err)
		return;
	c = clean(v);
	if (!c) {
		x->err = -ENOMEM;
		return;
	}
	if (xmlTextWriterWriteAttribute(x->w, BAD_CAST k, BAD_CAST c) < 0)
		x->err = -EIO;
	free(c);
}

static void xw_attrf(struct xw *x, const char *k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void xw_attrf(struct xw *x, const char *k, const char *fmt, ...)
{
	char buf[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	xw_attr(x, k, buf);
}

static void xw_text(struct xw *x, const char *s)
{
	char *c;

	if (x->err)
		return;
	c = clean(s);
	if (!c) {
		x->err = -ENOMEM;
		return;
	}
	if (xmlTextWriterWriteString(x->w, BAD_CAST c) < 0)
		x->err = -EIO;
	free(c);
}

/* Growing text buffer for system-out. */
struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 1024);
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(b->s, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void slow_list(const struct ls_run_result *r, struct sbuf *b, bool only_allowed)
{
	char m[2048];
	int n = 0;

	for (int i = 0; i < nslow(r); i++) {
		const struct ls_run_slow *s = &r->slow[i];

		if (only_allowed && !s->allowed)
			continue;
		slow_message(r, s, m, sizeof(m));
		sb_printf(b, "%s%s%s\n", s->kind == LS_RUN_SLOW_BUSY ? "busy period: " : "", m,
			  s->allowed ? " (allowed)" : "");
		n++;
	}
	if (r->slow_not_kept > 0)
		sb_printf(b, "%ld more slow events not kept\n", r->slow_not_kept);
	if (r->lost_events > 0)
		sb_printf(b, "%llu events lost (ring buffer full)\n",
			  (unsigned long long)r->lost_events);
	if (n == 0 && !only_allowed)
		sb_printf(b, "no slow callbacks\n");
}

static void testcase_start(struct xw *x, const char *name, uint64_t time_ns)
{
	xw_start(x, "testcase");
	xw_attr(x, "classname", "loopscope");
	xw_attr(x, "name", name);
	xw_attrf(x, "time", "%.3f", time_ns / 1e9);
}

static void failure(struct xw *x, const char *type, const char *message, const char *body)
{
	xw_start(x, "failure");
	xw_attr(x, "message", message);
	xw_attr(x, "type", type);
	if (body && *body)
		xw_text(x, body);
	xw_end(x);
}

static void system_out(struct xw *x, struct sbuf *b)
{
	if (b->oom) {
		x->err = x->err ? x->err : -ENOMEM;
		return;
	}
	if (!b->len)
		return;
	xw_start(x, "system-out");
	xw_text(x, b->s);
	xw_end(x);
}

static void slow_failures(struct xw *x, const struct ls_run_result *r)
{
	char msg[2048], body[3400];

	for (int i = 0; i < nslow(r); i++) {
		const struct ls_run_slow *s = &r->slow[i];
		char start[32];

		if (!ls_gate_slow_counts(r, s))
			continue;
		slow_message(r, s, msg, sizeof(msg));
		snprintf(start, sizeof(start), "%llu", (unsigned long long)s->start_ns);
		snprintf(body, sizeof(body), "%s\nstart_ns %s, duration_ns %llu\n%s%s%s", msg, start,
			 (unsigned long long)s->duration_ns, s->why[0] ? "why: " : "", FIELD(s->why),
			 s->why[0] ? "\n" : "");
		failure(x, s->kind == LS_RUN_SLOW_BUSY ? "slow-busy-period" : "slow-callback", msg,
			body);
	}
}

int ls_run_write_junit(const struct ls_run_result *r, const char *path)
{
	xmlBufferPtr buf;
	struct xw x = { 0 };
	char name[128], g[32];
	int tests = 0, failures = 0, rc;
	uint64_t t = duration_ns(r);
	bool lag_on = r->fail_on_lag_p99_ns > 0;

	if (r->fail_on_slow_ns > 0) {
		tests++;
		failures += r->slow_gate_failed;
	}
	if (r->max_slow >= 0) {
		tests++;
		failures += r->slow_gate_failed;
	}
	if (lag_on) {
		tests++;
		failures += r->lag_gate_failed;
	}
	if (!tests)
		tests = 1; /* "report" */

	xmlInitParser();
	buf = xmlBufferCreate();
	if (!buf)
		return -ENOMEM;
	x.w = xmlNewTextWriterMemory(buf, 0);
	if (!x.w) {
		xmlBufferFree(buf);
		return -ENOMEM;
	}
	xmlTextWriterSetIndent(x.w, 1);
	xmlTextWriterSetIndentString(x.w, BAD_CAST "  ");
	if (xmlTextWriterStartDocument(x.w, NULL, "UTF-8", NULL) < 0)
		x.err = -EIO;
	xw_start(&x, "testsuites");
	xw_attr(&x, "name", "loopscope");
	xw_attrf(&x, "tests", "%d", tests);
	xw_attrf(&x, "failures", "%d", failures);
	xw_attrf(&x, "errors", "%d", 0);
	xw_attrf(&x, "time", "%.3f", t / 1e9);
	xw_start(&x, "testsuite");
	xw_attr(&x, "name", "loopscope");
	xw_attrf(&x, "tests", "%d", tests);
	xw_attrf(&x, "failures", "%d", failures);
	xw_attrf(&x, "errors", "%d", 0);
	xw_attrf(&x, "skipped", "%d", 0);
	xw_attrf(&x, "time", "%.3f", t / 1e9);

	if (r->fail_on_slow_ns > 0) {
		struct sbuf b = { 0 };

		snprintf(name, sizeof(name), "fail-on-slow %s",
			 gate_dur(r->fail_on_slow_ns, g, sizeof(g)));
		testcase_start(&x, name, t);
		if (r->slow_gate_failed)
			slow_failures(&x, r);
		sb_printf(&b, "%ld slow events above %s counted%s\n", r->slow_counted,
			  dur(r->fail_on_slow_ns, g, sizeof(g)),
			  r->max_slow >= 0 ? " (see max-slow)" : "");
		slow_list(r, &b, true);
		system_out(&x, &b);
		free(b.s);
		xw_end(&x);
	}
	if (r->max_slow >= 0) {
		struct sbuf b = { 0 };

		snprintf(name, sizeof(name), "max-slow %ld", r->max_slow);
		testcase_start(&x, name, t);
		if (r->slow_gate_failed) {
			char msg[160];

			snprintf(msg, sizeof(msg), "%ld slow events counted, more than max-slow %ld",
				 r->slow_counted, r->max_slow);
			failure(&x, "max-slow", msg, NULL);
			if (r->fail_on_slow_ns == 0)
				slow_failures(&x, r);
		}
		if (r->fail_on_slow_ns == 0)
			slow_list(r, &b, true);
		else
			sb_printf(&b, "%ld slow events counted, at most %ld tolerated\n",
				  r->slow_counted, r->max_slow);
		system_out(&x, &b);
		free(b.s);
		xw_end(&x);
	}
	if (lag_on) {
		struct sbuf b = { 0 };

		snprintf(name, sizeof(name), "fail-on-lag-p99 %s",
			 gate_dur(r->fail_on_lag_p99_ns, g, sizeof(g)));
		testcase_start(&x, name, t);
		for (int i = 0; r->lag_gate_failed && i < nprocs(r); i++) {
			char msg[1024];

			if (!ls_gate_lag_violates(r, &r->procs[i]))
				continue;
			lag_message(r, &r->procs[i], msg, sizeof(msg));
			failure(&x, "loop-lag", msg, NULL);
		}
		for (int i = 0; i < nprocs(r); i++) {
			const struct ls_run_process *p = &r->procs[i];
			char d[16];

			if (p->loop_threads <= 0)
				continue;
			sb_printf(&b, "pid %d (%s): lag p99 %s (thread %u)\n", (int)p->pid,
				  FIELD(p->cmdline), p->lag_p99_ns ? dur(p->lag_p99_ns, d, sizeof(d)) : "-",
				  p->lag_p99_tid);
		}
		system_out(&x, &b);
		free(b.s);
		xw_end(&x);
	}
	if (!ls_gate_slow_on(r) && !lag_on) {
		struct sbuf b = { 0 };

		testcase_start(&x, "report", t);
		slow_list(r, &b, false);
		system_out(&x, &b);
		free(b.s);
		xw_end(&x);
	}
	if (!x.err && xmlTextWriterEndDocument(x.w) < 0)
		x.err = -EIO;
	xmlFreeTextWriter(x.w); /* flushes into buf */
	rc = x.err ? x.err
		   : write_file(path, (const char *)xmlBufferContent(buf), (size_t)xmlBufferLength(buf));
	xmlBufferFree(buf);
	return rc;
}

/* ---- GitHub Actions annotations ---------------------------------------- */

static void gh_escape(FILE *f, const char *s, bool property)
{
	for (; *s; s++) {
		if (*s == '%')
			fputs("%25", f);
		else if (*s == '\r')
			fputs("%0D", f);
		else if (*s == '\n')
			fputs("%0A", f);
		else if (property && *s == ':')
			fputs("%3A", f);
		else if (property && *s == ',')
			fputs("%2C", f);
		else
			fputc(*s, f);
	}
}

/* GitHub matches annotations by path relative to the repository: strip
 * base ($GITHUB_WORKSPACE, else the current directory) off absolute paths. */
static const char *repo_relative(const char *file, const char *base)
{
	size_t n = base ? strlen(base) : 0;

	while (n > 1 && base[n - 1] == '/')
		n--;
	if (file[0] == '/' && n > 1 && strncmp(file, base, n) == 0 && file[n] == '/' && file[n + 1])
		return file + n + 1;
	return file;
}

void ls_run_print_annotations(const struct ls_run_result *r, FILE *f)
{
	char head[700], pn[600], line[16], cwd[4096];
	const char *base = getenv("GITHUB_WORKSPACE");

	if (!base || !*base)
		base = getcwd(cwd, sizeof(cwd));

	if (ls_gate_slow_on(r)) {
		for (int i = 0; i < nslow(r); i++) {
			const struct ls_run_slow *s = &r->slow[i];

			if (!ls_gate_slow_counts(r, s))
				continue;
			fputs(r->slow_gate_failed ? "::error " : "::warning ", f);
			if (s->file[0]) {
				fputs("file=", f);
				gh_escape(f, repo_relative(FIELD(s->file), base), true);
				if (s->line > 0) {
					snprintf(line, sizeof(line), "%d", s->line);
					fputs(",line=", f);
					gh_escape(f, line, true);
				}
				fputc(',', f);
			}
			fputs("title=", f);
			gh_escape(f, s->kind == LS_RUN_SLOW_BUSY ? "loopscope busy period"
								 : "loopscope slow callback",
				  true);
			fputs("::", f);
			slow_headline(s, head, sizeof(head));
			pid_note(r, s->pid, pn, sizeof(pn));
			gh_escape(f, head, false);
			fputc(' ', f);
			gh_escape(f, pn, false);
			fputc('\n', f);
		}
	}
	if (r->fail_on_lag_p99_ns > 0 && r->lag_gate_failed) {
		for (int i = 0; i < nprocs(r); i++) {
			char msg[1024];

			if (!ls_gate_lag_violates(r, &r->procs[i]))
				continue;
			lag_message(r, &r->procs[i], msg, sizeof(msg));
			fputs("::error title=", f);
			gh_escape(f, "loopscope loop lag", true);
			fputs("::", f);
			gh_escape(f, msg, false);
			fputc('\n', f);
		}
	}
	fflush(f);
}

/* ---- text summary ------------------------------------------------------ */

static void exit_reason(const struct ls_run_result *r, char *buf, size_t len)
{
	bool gate = r->slow_gate_failed || r->lag_gate_failed;
	const char *which = r->slow_gate_failed && r->lag_gate_failed ? "the slow and lag gates"
			    : r->slow_gate_failed			 ? "the slow gate"
								 : "the lag gate";

	if (r->exit_code == LS_RUN_EXIT_ERROR)
		snprintf(buf, len, "loopscope error");
	else if (r->cmd_signal > 0 && r->exit_code == 128 + r->cmd_signal)
		snprintf(buf, len, "the command was killed by signal %d (%s)%s%s", r->cmd_signal,
			 strsignal(r->cmd_signal), gate ? "; also failed: " : "", gate ? which : "");
	else if (r->exit_code == LS_RUN_EXIT_NOT_FOUND && r->cmd_exit == LS_RUN_EXIT_NOT_FOUND)
		snprintf(buf, len, "the command was not found or could not run");
	else if (r->cmd_exit > 0 && r->exit_code == r->cmd_exit)
		snprintf(buf, len, "the command failed%s%s", gate ? "; also failed: " : "",
			 gate ? which : "");
	else if (gate && r->exit_code == LS_RUN_EXIT_GATE)
		snprintf(buf, len, "%s failed", which);
	else if (r->exit_code == 0)
		snprintf(buf, len, "the command succeeded and no gate failed");
	else
		snprintf(buf, len, "the command's exit code");
}

/* s on one line: \n and \r shown as the two characters "\\n", "\\r". */
static void put_one_line(FILE *f, const char *s)
{
	for (; *s; s++)
		if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '\r')
			fputs("\\r", f);
		else
			fputc(*s, f);
}

void ls_run_print_summary(const struct ls_run_result *r, FILE *f)
{
	char d[16], g[32], m[2048], why[256];

	fprintf(f, "loopscope run: %s\n", FIELD(r->cmd));
	if (r->cmd_signal > 0)
		fprintf(f, "  killed by signal %d (%s) after %s\n", r->cmd_signal,
			strsignal(r->cmd_signal), dur(duration_ns(r), d, sizeof(d)));
	else
		fprintf(f, "  exited with %d after %s\n", r->cmd_exit, dur(duration_ns(r), d, sizeof(d)));

	fprintf(f, "processes (%d):\n", nprocs(r));
	for (int i = 0; i < nprocs(r); i++) {
		const struct ls_run_process *p = &r->procs[i];

		fprintf(f, "  pid %d (parent %d): %s\n", (int)p->pid, (int)p->ppid, FIELD(p->cmdline));
		if (p->python[0])
			fprintf(f, "    CPython %s, %s", FIELD(p->python),
				p->precise ? "precise mode" : "epoll level");
		else
			fprintf(f, "    %s", p->precise ? "precise mode" : "epoll level");
		fprintf(f, ", %d loop thread%s", p->loop_threads, p->loop_threads == 1 ? "" : "s");
		if (p->lag_p99_ns)
			fprintf(f, ", lag p99 %s (thread %u)%s", dur(p->lag_p99_ns, d, sizeof(d)),
				p->lag_p99_tid, ls_gate_lag_violates(r, p) ? " ABOVE GATE" : "");
		fputc('\n', f);
	}

	if (nslow(r) == 0 && r->slow_not_kept <= 0)
		fprintf(f, "slow callbacks: none\n");
	else
		fprintf(f, "slow callbacks and busy periods (%d):\n", nslow(r));
	uint64_t *durs = malloc(((size_t)nslow(r) + 1) * sizeof(*durs)), cut = 0;
	int shown = 0;

	for (int i = 0; durs && i < nslow(r); i++)
		durs[i] = r->slow[i].duration_ns;
	if (durs)
		cut = ls_stats_kth_longest(durs, (size_t)nslow(r), LS_TEXT_SLOW_MAX);
	free(durs);
	for (int i = 0; i < nslow(r); i++) {
		const struct ls_run_slow *s = &r->slow[i];

		if (s->duration_ns < cut || shown == LS_TEXT_SLOW_MAX)
			continue; /* the longest; the JSON and JUnit reports list all */
		shown++;
		fprintf(f, "  %9s  ", dur(s->duration_ns, d, sizeof(d)));
		if (s->kind == LS_RUN_SLOW_BUSY && strncmp(s->name, "busy period", 11) != 0)
			fputs("busy period: ", f);
		put_one_line(f, FIELD(s->name));
		fputc('\n', f);
		fputs("             ", f);
		if (s->file[0] && s->line > 0)
			fprintf(f, "%s:%d, ", FIELD(s->file), s->line);
		else if (s->file[0])
			fprintf(f, "%s, ", FIELD(s->file));
		fprintf(f, "pid %d thread %d", (int)s->pid, (int)s->tid);
		if (s->test[0])
			fprintf(f, ", test %s", FIELD(s->test));
		if (s->allowed)
			fputs(" (allowed)", f);
		fputc('\n', f);
		if (s->why[0]) {
			fputs("             ", f);
			put_one_line(f, FIELD(s->why));
			fputc('\n', f);
		}
	}
	if (shown < nslow(r))
		fprintf(f, "  (the %d longest shown; %d shorter ones: --json-out lists every one)\n",
			shown, nslow(r) - shown);
	if (r->slow_not_kept > 0)
		fprintf(f, "  ... %ld more not kept\n", r->slow_not_kept);
	if (r->lost_events > 0)
		fprintf(f, "  %llu events lost (ring buffer full): counts may be low\n",
			(unsigned long long)r->lost_events);

	if (!ls_gate_slow_on(r) && r->fail_on_lag_p99_ns == 0) {
		fprintf(f, "gates: none\n");
	} else {
		fprintf(f, "gates:\n");
		if (r->fail_on_slow_ns > 0)
			fprintf(f, "  fail-on-slow %s: %s (%ld counted above %s%s)\n",
				gate_dur(r->fail_on_slow_ns, g, sizeof(g)),
				r->slow_gate_failed ? "FAIL" : "PASS", r->slow_counted,
				dur(r->fail_on_slow_ns, d, sizeof(d)),
				r->nallow > 0 ? ", allowed ones excluded" : "");
		if (r->max_slow >= 0)
			fprintf(f, "  max-slow %ld: %s (%ld counted)\n", r->max_slow,
				r->slow_gate_failed ? "FAIL" : "PASS", r->slow_counted);
		for (int i = 0; i < r->nallow && i < LS_RUN_MAX_ALLOW; i++)
			if (r->allow[i])
				fprintf(f, "  allow %s\n", r->allow[i]);
		if (r->fail_on_lag_p99_ns > 0) {
			fprintf(f, "  fail-on-lag-p99 %s: %s\n",
				gate_dur(r->fail_on_lag_p99_ns, g, sizeof(g)),
				r->lag_gate_failed ? "FAIL" : "PASS");
			for (int i = 0; i < nprocs(r); i++)
				if (ls_gate_lag_violates(r, &r->procs[i])) {
					lag_message(r, &r->procs[i], m, sizeof(m));
					fprintf(f, "    %s\n", m);
				}
		}
	}
	exit_reason(r, why, sizeof(why));
	fprintf(f, "exit %d: %s\n", r->exit_code, why);
	fflush(f);
}
