// SPDX-License-Identifier: MIT
/* `loopscope report FILE --html OUT` (cli/html.h): one self-contained HTML
 * page, no script and no network: inline SVG drawn here. Elements a test
 * finds by id: #summary, #timeline (a lane per loop thread, a rect per slow
 * period), #hist-busy, #hist-poll, #hist-lag (a bar per non-empty
 * histogram slot, per thread), #delay (the delay distribution), #slow-table
 * (the slow periods with their reasons and stacks), #flamegraph (the slow
 * periods' stacks merged, root on top). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "html.h"
#include "spans.h"
#include "loopscope/busywhy.h"

#define W 1100 /* drawing width, px */

static void esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* The flame graph's tree: a node per frame under its caller. */
struct fnode {
	char *name;
	uint64_t weight;
	struct fnode *kids;
	size_t nkids;
};

static struct fnode *child(struct fnode *n, const char *name)
{
	struct fnode *grown;

	for (size_t i = 0; i < n->nkids; i++)
		if (!strcmp(n->kids[i].name, name))
			return &n->kids[i];
	grown = realloc(n->kids, (n->nkids + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	n->kids = grown;
	memset(&n->kids[n->nkids], 0, sizeof(*grown));
	n->kids[n->nkids].name = strdup(name);
	if (!n->kids[n->nkids].name)
		return NULL;
	return &n->kids[n->nkids++];
}

static void tree_free(struct fnode *n)
{
	for (size_t i = 0; i < n->nkids; i++)
		tree_free(&n->kids[i]);
	free(n->kids);
	free(n->name);
}

static int depth_of(const struct fnode *n)
{
	int d = 0;

	for (size_t i = 0; i < n->nkids; i++) {
		int k = depth_of(&n->kids[i]);

		if (k > d)
			d = k;
	}
	return d + 1;
}

static void draw_node(FILE *f, const struct fnode *n, double x, double w, int level, uint64_t total)
{
	char b[32];

	if (w < 0.5)
		return;
	fputs("<g><title>", f);
	esc(f, n->name);
	fprintf(f, " (%s, %.1f%%)</title><rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"17\" "
		"fill=\"hsl(%d,70%%,60%%)\"/>", ls_duration_format(n->weight, b, sizeof(b)),
		100.0 * n->weight / (total ? total : 1), x, level * 18, w, 20 + (level * 37) % 40);
	if (w > 40) {
		fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\">", x + 3,
			level * 18 + 13);
		int room = (int)(w / 6.5);
		char cut[256];

		snprintf(cut, sizeof(cut), "%.*s", room < 250 ? room : 250, n->name);
		esc(f, cut);
		fputs("</text>", f);
	}
	fputs("</g>\n", f);
	for (size_t i = 0; i < n->nkids; i++) {
		double kw = w * (double)n->kids[i].weight / (double)(n->weight ? n->weight : 1);

		draw_node(f, &n->kids[i], x, kw, level + 1, total);
		x += kw;
	}
}

static void flamegraph(FILE *f, const struct attach *a)
{
	struct fnode root = { .name = strdup("all slow periods") };
	char fr[600];

	if (!root.name)
		return;

	for (size_t i = 0; i < a->nslow; i++) {
		const struct ls_stack_summary *st = &a->slow[i].stacks;

		for (size_t k = 0; k < st->n; k++) {
			const struct ls_stack_agg *s = &st->stacks[k];
			uint64_t w = s->on_cpu_ns + s->blocked_ns + s->runnable_ns;
			struct fnode *n = &root;

			root.weight += w;
			for (int j = (int)s->nframes - 1; j >= 0 && n; j--) { /* outermost first */
				n = child(n, ls_slowstack_frame_text(&s->frames[j], fr, sizeof(fr)));
				if (n)
					n->weight += w;
			}
		}
	}
	int depth = depth_of(&root);

	fprintf(f, "<h2>Flame graph of the slow periods' stacks</h2>\n<svg id=\"flamegraph\" "
		"width=\"%d\" height=\"%d\" xmlns=\"http://www.w3.org/2000/svg\">\n", W, depth * 18 + 2);
	if (root.weight)
		draw_node(f, &root, 0, W, 0, root.weight);
	else
		fputs("<text x=\"4\" y=\"13\" font-size=\"12\">no stacks recorded</text>\n", f);
	fputs("</svg>\n", f);
	tree_free(&root);
}

static void histogram(FILE *f, const char *id, const char *title, const struct attach *a,
		      const struct ls_thread_window *w, size_t nw, int which)
{
	char b[32];

	fprintf(f, "<h2>%s</h2>\n<svg id=\"%s\" width=\"%d\" height=\"%zu\" "
		"xmlns=\"http://www.w3.org/2000/svg\">\n", title, id, W, nw * 110 + 20);
	for (size_t t = 0; t < nw; t++) {
		const struct ls_hist *h = which == 0 ? &w[t].busy : which == 1 ? &w[t].poll : &w[t].lag;
		uint64_t top = 1;
		int y0 = (int)t * 110 + 100;

		for (unsigned i = 0; i < LS_HIST_NSLOTS; i++)
			if (h->slots[i] > top)
				top = h->slots[i];
		fprintf(f, "<text x=\"0\" y=\"%d\" font-size=\"12\">tid %u: n=%llu, p50 ", y0 - 88,
			w[t].tid, (unsigned long long)h->count);
		fprintf(f, "%s", ls_duration_format(ls_hist_percentile(h, 50), b, sizeof(b)));
		fprintf(f, ", p99 %s", ls_duration_format(ls_hist_percentile(h, 99), b, sizeof(b)));
		fprintf(f, ", max %s (x: log of the value, 1 ns to 2^44 ns)</text>\n",
			ls_duration_format(h->max, b, sizeof(b)));
		for (unsigned i = 0; i < LS_HIST_NSLOTS; i++) {
			if (!h->slots[i])
				continue;
			double x = (double)i * W / LS_HIST_NSLOTS, hh = 70.0 * h->slots[i] / top;

			fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
				"fill=\"steelblue\"><title>%s: %llu</title></rect>\n", x, y0 - hh,
				(double)W / LS_HIST_NSLOTS, hh, ls_duration_format(ls_hist_slot_lower(i), b,
										   sizeof(b)),
				(unsigned long long)h->slots[i]);
		}
	}
	fputs("</svg>\n", f);
	(void)a;
}

/* #streams: with the per-poll and/or per-callback stream, a lane per loop
 * thread with every busy period (class "busy") and every callback (class
 * "cb") kept (cli/spans.h: the first CLI_SPANS_MAX of each thread in the
 * window), and a line saying how many were drawn and left out. */
static void spans_lanes(FILE *f, struct attach *a, const struct ls_thread_window *w, size_t nw,
			uint64_t span)
{
	const struct cli_spans *s = a->spans;
	char b1[32], b2[32], name[600];

	if (!s || (!s->drawn[0] && !s->drawn[1] && !s->left_out[0] && !s->left_out[1]))
		return;
	fprintf(f, "<h2>Every busy period and callback</h2>\n<p id=\"streams-count\">%llu busy "
		"periods and %llu callbacks drawn; %llu and %llu left out (the first %d of each "
		"thread in the window are drawn: --from/--to choose it).</p>\n<svg id=\"streams\" "
		"width=\"%d\" height=\"%zu\" xmlns=\"http://www.w3.org/2000/svg\">\n",
		(unsigned long long)s->drawn[CLI_SPAN_BUSY],
		(unsigned long long)s->drawn[CLI_SPAN_CALLBACK],
		(unsigned long long)s->left_out[CLI_SPAN_BUSY],
		(unsigned long long)s->left_out[CLI_SPAN_CALLBACK], CLI_SPANS_MAX, W, nw * 56 + 20);
	for (size_t t = 0; t < nw; t++) {
		const struct cli_span_thread *th = NULL;

		for (size_t i = 0; i < s->nt && !th; i++)
			if (s->t[i].tid == w[t].tid && s->t[i].tgid == w[t].tgid)
				th = &s->t[i];
		fprintf(f, "<text x=\"2\" y=\"%zu\" font-size=\"12\">tid %u: busy periods, then "
			"callbacks</text>\n", t * 56 + 12, w[t].tid);
		for (int k = 0; th && k < 2; k++) {
			for (size_t i = 0; i < th->n[k]; i++) {
				const struct cli_span *c = &th->v[k][i];
				double x = c->start_ns > a->start_ns ?
					   (double)(c->start_ns - a->start_ns) * W / span : 0;
				double wd = (double)c->duration_ns * W / span;

				fprintf(f, "<rect class=\"%s\" x=\"%.1f\" y=\"%zu\" width=\"%.2f\" "
					"height=\"16\" fill=\"%s\"><title>", k ? "cb" : "busy", x,
					t * 56 + 18 + (size_t)k * 18, wd < 0.5 ? 0.5 : wd,
					k ? "seagreen" : "steelblue");
				if (k)
					esc(f, cli_spans_name(s, c, name, sizeof(name)));
				else
					fputs("busy", f);
				fprintf(f, " %s at +%s</title></rect>\n",
					ls_duration_format(c->duration_ns, b1, sizeof(b1)),
					ls_duration_format(c->start_ns > a->start_ns ?
							   c->start_ns - a->start_ns : 0, b2, sizeof(b2)));
			}
		}
	}
	fputs("</svg>\n", f);
}

int cli_html_write(const char *path, struct attach *a, const struct ls_thread_view *v, size_t n,
		   uint64_t now_ns)
{
	struct ls_thread_window *w = calloc(n + 1, sizeof(*w));
	size_t nw = 0;
	uint64_t span = now_ns > a->start_ns ? now_ns - a->start_ns : 1;
	char b1[32], b2[32], why[4096];
	FILE *f;

	if (!w)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct ls_thread_view *before = NULL;

		for (size_t k = 0; a->before && k < a->nbefore; k++)
			if (a->before[k].tid == v[i].tid)
				before = &a->before[k];
		ls_stats_window(&v[i], now_ns, before, a->start_ns, &w[nw]);
		if (w[nw].polls)
			nw++;
	}
	f = fopen(path, "w");
	if (!f) {
		free(w);
		return -errno;
	}
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		"<title>loopscope report</title>\n<style>body{font-family:sans-serif;margin:16px}"
		"table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
		"padding:3px 6px;text-align:left;vertical-align:top}svg{border:1px solid #eee}"
		"</style></head><body>\n<h1>loopscope report</h1>\n<p id=\"summary\">%s recorded, "
		"threshold %s, %zu loop thread%s, %zu slow period%s.</p>\n",
		ls_duration_format(span, b1, sizeof(b1)),
		ls_duration_format(a->threshold_ns, b2, sizeof(b2)), nw, nw == 1 ? "" : "s",
		a->nslow, a->nslow == 1 ? "" : "s");
	/* Timeline: a lane per thread, slow periods as rects. */
	fprintf(f, "<h2>Timeline of slow busy periods</h2>\n<svg id=\"timeline\" width=\"%d\" "
		"height=\"%zu\" xmlns=\"http://www.w3.org/2000/svg\">\n", W, nw * 40 + 20);
	for (size_t t = 0; t < nw; t++) {
		fprintf(f, "<text x=\"2\" y=\"%zu\" font-size=\"12\">tid %u (", t * 40 + 12, w[t].tid);
		esc(f, cli_attach_thread_name(a, w[t].tgid, w[t].tid));
		fprintf(f, "), utilization %.1f%%</text>\n<line x1=\"0\" x2=\"%d\" y1=\"%zu\" y2=\"%zu\" "
			"stroke=\"#ccc\"/>\n", w[t].utilization >= 0 ? 100 * w[t].utilization : 0.0, W,
			t * 40 + 30, t * 40 + 30);
		for (size_t i = 0; i < a->nslow; i++) {
			const struct slow_rec *s = &a->slow[i];

			if (s->ev.tid != w[t].tid || s->ev.start_ns + s->ev.duration_ns < a->start_ns)
				continue;
			double x = s->ev.start_ns > a->start_ns ?
				   (double)(s->ev.start_ns - a->start_ns) * W / span : 0;
			double wd = (double)s->ev.duration_ns * W / span;

			fprintf(f, "<rect class=\"slow\" x=\"%.1f\" y=\"%zu\" width=\"%.1f\" height=\"20\" "
				"fill=\"crimson\"><title>%s at +%s: ", x, t * 40 + 18, wd < 1 ? 1 : wd,
				ls_duration_format(s->ev.duration_ns, b1, sizeof(b1)),
				ls_duration_format(s->ev.start_ns - a->start_ns, b2, sizeof(b2)));
			esc(f, ls_busy_why(&s->ev, &s->stacks, 4, why, sizeof(why)));
			fputs("</title></rect>\n", f);
		}
	}
	fputs("</svg>\n", f);
	spans_lanes(f, a, w, nw, span);
	histogram(f, "hist-busy", "Busy periods", a, w, nw, 0);
	histogram(f, "hist-poll", "Polls", a, w, nw, 1);
	histogram(f, "hist-lag", "Loop lag (timer lateness)", a, w, nw, 2);
	/* Delay: its percentiles 1..100 as a curve per thread. */
	fprintf(f, "<h2>Delay of work arriving at a random moment (percentiles)</h2>\n<svg "
		"id=\"delay\" width=\"%d\" height=\"%zu\" xmlns=\"http://www.w3.org/2000/svg\">\n", W,
		nw * 130 + 10);
	for (size_t t = 0; t < nw; t++) {
		uint64_t max = w[t].busy.max ? w[t].busy.max : 1;
		int y0 = (int)t * 130 + 120;

		fprintf(f, "<text x=\"0\" y=\"%d\" font-size=\"12\">tid %u: p99 %s, max %s</text>\n"
			"<polyline fill=\"none\" stroke=\"darkorange\" points=\"", y0 - 105, w[t].tid,
			ls_duration_format(ls_stats_delay_percentile(&w[t].busy, w[t].poll.sum, 99), b1,
					   sizeof(b1)),
			ls_duration_format(max, b2, sizeof(b2)));
		for (int q = 0; q <= 100; q++)
			fprintf(f, "%.1f,%.1f ", q * (W - 10) / 100.0,
				y0 - 90.0 * ls_stats_delay_percentile(&w[t].busy, w[t].poll.sum, q) / max);
		fputs("\"/>\n", f);
	}
	fputs("</svg>\n", f);
	/* The slow periods with their reasons and stacks. */
	fputs("<h2>Slow busy periods</h2>\n<table id=\"slow-table\"><tr><th>time</th><th>busy</th>"
	      "<th>pid</th><th>thread</th><th>why, with the stacks</th></tr>\n", f);
	for (size_t i = 0; i < a->nslow; i++) {
		const struct slow_rec *s = &a->slow[i];
		char clock[32];

		fprintf(f, "<tr><td>%s</td><td>%s</td><td>%u</td><td>",
			cli_clock(a->mono_to_real_ns, s->ev.start_ns, clock, sizeof(clock)),
			ls_duration_format(s->ev.duration_ns, b1, sizeof(b1)), s->ev.tgid);
		esc(f, s->thread);
		fputs("</td><td>", f);
		esc(f, ls_busy_why(&s->ev, &s->stacks, 16, why, sizeof(why)));
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n", f);
	flamegraph(f, a);
	fputs("</body></html>\n", f);
	free(w);
	if (ferror(f) | fclose(f))
		return -EIO;
	return 0;
}
