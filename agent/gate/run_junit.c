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

static void testcase_start_in(struct xw *x, const char *classname, const char *name,
			      uint64_t time_ns)
{
	xw_start(x, "testcase");
	xw_attr(x, "classname", classname);
	xw_attr(x, "name", name);
	xw_attrf(x, "time", "%.3f", time_ns / 1e9);
}

static void testcase_start(struct xw *x, const char *name, uint64_t time_ns)
{
	testcase_start_in(x, "loopscope", name, time_ns);
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

/* One counted slow event as a failure's text: message, times, why. */
static void slow_body(const struct ls_run_result *r, const struct ls_run_slow *s, struct sbuf *b)
{
	char msg[2048];

	ls_report_slow_message(r, s, msg, sizeof(msg));
	sb_printf(b, "%s\nstart_ns %llu, duration_ns %llu\n%s%s%s", msg,
		  (unsigned long long)s->start_ns, (unsigned long long)s->duration_ns,
		  s->why[0] ? "why: " : "", FIELD(s->why), s->why[0] ? "\n" : "");
}

static const char *slow_type(const struct ls_run_slow *s)
{
	return s->kind == LS_RUN_SLOW_BUSY ? "slow-busy-period" : "slow-callback";
}

/* The test cases of the violations, when the slow gate failed: one per
 * pytest test that ran counted slow events (classname the module, as pytest
 * writes it: "tests/test_app.py::TestX::test_y" -> "tests.test_app.TestX",
 * name "test_y"), one per counted event outside any test. n counts them
 * when x is NULL (nothing written). */
static int violation_cases(struct xw *x, const struct ls_run_result *r)
{
	int n = 0, nslow = ls_report_nslow(r);

	for (int i = 0; r->slow_gate_failed && i < nslow; i++) {
		const struct ls_run_slow *s = &r->slow[i], *longest = s;
		char cls[300], name[300], msg[2048], head[2200];
		const char *test = FIELD(s->test), *sep = NULL, *br;
		struct sbuf b = { 0 };
		int count = 0;
		bool first = true;

		if (!ls_gate_slow_counts(r, s))
			continue;
		/* a test's events go in the case of its first one */
		for (int j = 0; j < i && *test; j++)
			if (ls_gate_slow_counts(r, &r->slow[j]) &&
			    !strcmp(FIELD(r->slow[j].test), test))
				first = false;
		if (!first)
			continue;
		n++;
		if (!x)
			continue;
		if (*test) {
			br = strchr(test, '[');
			for (const char *p = test; (p = strstr(p, "::")) && (!br || p < br); p += 2)
				sep = p;
			if (sep) {
				size_t len = (size_t)(sep - test), k, o = 0;

				for (k = 0; k < len && o + 1 < sizeof(cls); k++) {
					if (!strncmp(test + k, ".py", 3) && (k + 3 == len || test[k + 3] == ':')) {
						k += 2;
						continue;
					}
					if (test[k] == ':' && test[k + 1] == ':') {
						cls[o++] = '.';
						k++;
						continue;
					}
					cls[o++] = test[k] == '/' ? '.' : test[k];
				}
				cls[o] = 0;
				snprintf(name, sizeof(name), "%s", sep + 2);
			} else {
				snprintf(cls, sizeof(cls), "loopscope");
				snprintf(name, sizeof(name), "%s", test);
			}
			for (int j = i; j < nslow; j++) {
				const struct ls_run_slow *o = &r->slow[j];

				if (!ls_gate_slow_counts(r, o) || strcmp(FIELD(o->test), test))
					continue;
				count++;
				if (o->duration_ns > longest->duration_ns)
					longest = o;
				slow_body(r, o, &b);
			}
		} else {
			snprintf(cls, sizeof(cls), "loopscope");
			snprintf(name, sizeof(name), "%s, pid %d, at +%.3f s", FIELD(s->name), (int)s->pid,
				 s->start_ns > r->start_ns ? (s->start_ns - r->start_ns) / 1e9 : 0.0);
			count = 1;
			slow_body(r, s, &b);
		}
		ls_report_slow_message(r, longest, msg, sizeof(msg));
		if (count > 1)
			snprintf(head, sizeof(head), "%d slow events, the longest: %s", count, msg);
		else
			snprintf(head, sizeof(head), "%s", msg);
		testcase_start_in(x, cls, name, longest->duration_ns);
		if (b.oom)
			x->err = x->err ? x->err : -ENOMEM;
		failure(x, slow_type(longest), head, b.s);
		free(b.s);
		xw_end(x);
	}
	return n;
}

/* The slow gate's one failure: how many were counted, each listed. */
static void slow_gate_failure(struct xw *x, const struct ls_run_result *r, const char *type)
{
	struct sbuf b = { 0 };
	char msg[160], g[32];

	for (int i = 0; i < ls_report_nslow(r); i++)
		if (ls_gate_slow_counts(r, &r->slow[i]))
			slow_body(r, &r->slow[i], &b);
	snprintf(msg, sizeof(msg), "%ld slow events above %s", r->slow_counted,
		 ls_duration_format(r->fail_on_slow_ns, g, sizeof(g)));
	if (b.oom)
		x->err = x->err ? x->err : -ENOMEM;
	failure(x, type, msg, b.s);
	free(b.s);
}

int ls_run_write_junit(const struct ls_run_result *r, const char *path)
{
	xmlBufferPtr buf;
	struct xw x = { 0 };
	char name[128], g[32];
	int tests = 0, failures = 0, rc, n;
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
	n = violation_cases(NULL, r);
	tests += n;
	failures += n;

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
			slow_gate_failure(&x, r, "fail-on-slow");
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
		if (r->lag_gate_failed) {
			struct sbuf f = { 0 };
			char msg[1024], first[1024] = "";
			int nv = 0;

			for (int i = 0; i < ls_report_nprocs(r); i++) {
				if (!ls_gate_lag_violates(r, &r->procs[i]))
					continue;
				ls_report_lag_message(r, &r->procs[i], msg, sizeof(msg));
				if (!nv++)
					snprintf(first, sizeof(first), "%s", msg);
				sb_printf(&f, "%s\n", msg);
			}
			if (nv > 1)
				snprintf(msg, sizeof(msg), "%d processes with loop lag p99 above %s", nv,
					 ls_duration_format(r->fail_on_lag_p99_ns, g, sizeof(g)));
			if (f.oom)
				x.err = x.err ? x.err : -ENOMEM;
			failure(&x, "loop-lag", nv > 1 ? msg : first, nv > 1 ? f.s : NULL);
			free(f.s);
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
	violation_cases(&x, r);
	if (!x.err && xmlTextWriterEndDocument(x.w) < 0)
		x.err = -EIO;
	xmlFreeTextWriter(x.w); /* flushes into buf */
	rc = x.err ? x.err
		   : ls_report_write_file(path, (const char *)xmlBufferContent(buf), (size_t)xmlBufferLength(buf));
	xmlBufferFree(buf);
	return rc;
}
