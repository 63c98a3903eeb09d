// SPDX-License-Identifier: MIT
/* The JUnit XML report of `loopscope run` (libxml2's xmlTextWriter). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/xmlwriter.h>

#include "loopscope/duration.h"
#include "loopscope/gate.h"
#include "loopscope/run.h"
#include "report.h"

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
	c = ls_report_clean(v);
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
	c = ls_report_clean(s);
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

	for (int i = 0; i < ls_report_nslow(r); i++) {
		const struct ls_run_slow *s = &r->slow[i];

		if (only_allowed && !s->allowed)
			continue;
		ls_report_slow_message(r, s, m, sizeof(m));
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

	for (int i = 0; i < ls_report_nslow(r); i++) {
		const struct ls_run_slow *s = &r->slow[i];
		char start[32];

		if (!ls_gate_slow_counts(r, s))
			continue;
		ls_report_slow_message(r, s, msg, sizeof(msg));
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
	uint64_t t = ls_report_duration_ns(r);
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
			 ls_report_gate_dur(r->fail_on_slow_ns, g, sizeof(g)));
		testcase_start(&x, name, t);
		if (r->slow_gate_failed)
			slow_failures(&x, r);
		sb_printf(&b, "%ld slow events above %s counted%s\n", r->slow_counted,
			  ls_duration_format(r->fail_on_slow_ns, g, sizeof(g)),
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
			 ls_report_gate_dur(r->fail_on_lag_p99_ns, g, sizeof(g)));
		testcase_start(&x, name, t);
		for (int i = 0; r->lag_gate_failed && i < ls_report_nprocs(r); i++) {
			char msg[1024];

			if (!ls_gate_lag_violates(r, &r->procs[i]))
				continue;
			ls_report_lag_message(r, &r->procs[i], msg, sizeof(msg));
			failure(&x, "loop-lag", msg, NULL);
		}
		for (int i = 0; i < ls_report_nprocs(r); i++) {
			const struct ls_run_process *p = &r->procs[i];
			char d[16];

			if (p->loop_threads <= 0)
				continue;
			sb_printf(&b, "pid %d (%s): lag p99 %s (thread %u)\n", (int)p->pid,
				  FIELD(p->cmdline), p->lag_p99_ns ? ls_duration_format(p->lag_p99_ns, d, sizeof(d)) : "-",
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
		   : ls_report_write_file(path, (const char *)xmlBufferContent(buf), (size_t)xmlBufferLength(buf));
	xmlBufferFree(buf);
	return rc;
}
