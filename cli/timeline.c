// SPDX-License-Identifier: MIT
/* Chrome Trace Event JSON of a recording (cli/timeline.h). The format
 * (the "Trace Event Format" document of the Chromium project): an object
 * {"traceEvents": [...]}; "ts" and "dur" in microseconds; "X" complete
 * events are slices on the track of (pid, tid); "C" counter events make a
 * counter track per (pid, name); "M" metadata events name processes and
 * threads. Perfetto's UI, chrome://tracing and speedscope open it. Why
 * this and not Perfetto's TrackEvent protobuf: docs/RECORD.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/pycallback_events.h"
#include "loopscope/busywhy.h"
#include "spans.h"
#include "timeline.h"

struct tl_prev {
	struct ls_thread_view v;
	uint64_t at_ns;
};

struct cli_timeline {
	const char *perfetto_path, *folded_path;
	uint64_t from_ns, to_ns, origin_ns;
	json_object *events;
	struct ls_folded *folded;
	struct tl_prev *prev;   /* each thread's last snapshot */
	size_t nprev;
	uint32_t *named;        /* tids given a thread_name event */
	size_t nnamed;
	json_object *other;     /* "otherData": what the streams' slices hold */
	bool oom;
};

static double us(const struct cli_timeline *t, uint64_t mono_ns)
{
	return mono_ns >= t->origin_ns ? (double)(mono_ns - t->origin_ns) / 1000.0 : 0.0;
}

/* A complete ("X") slice's ts and dur for [start_ns, start_ns + dur_ns):
 * a slice that began before the recording (a callback under way when the
 * session attached) starts at ts 0 and keeps its true end, and says so in
 * args.started_before_recording with its whole duration_ns beside. */
static void slice_span(const struct cli_timeline *t, json_object *o, json_object *args,
		       uint64_t start_ns, uint64_t dur_ns)
{
	uint64_t cut = start_ns < t->origin_ns ? t->origin_ns - start_ns : 0;

	if (cut > dur_ns)
		cut = dur_ns;
	json_object_object_add(o, "ts", json_object_new_double(us(t, start_ns)));
	json_object_object_add(o, "dur", json_object_new_double((dur_ns - cut) / 1000.0));
	if (cut)
		json_object_object_add(args, "started_before_recording",
				       json_object_new_boolean(1));
}

static json_object *event(const char *ph, const char *name, uint32_t pid, uint32_t tid)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ph", json_object_new_string(ph));
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "pid", json_object_new_int((int)pid));
	json_object_object_add(o, "tid", json_object_new_int((int)tid));
	return o;
}

static void name_thread(struct cli_timeline *t, uint32_t pid, uint32_t tid, const char *name)
{
	uint32_t *grown;
	json_object *o, *args;

	for (size_t i = 0; i < t->nnamed; i++)
		if (t->named[i] == tid)
			return;
	grown = realloc(t->named, (t->nnamed + 1) * sizeof(*grown));
	if (!grown) {
		t->oom = true;
		return;
	}
	t->named = grown;
	t->named[t->nnamed++] = tid;
	o = event("M", "thread_name", pid, tid);
	args = json_object_new_object();
	json_object_object_add(args, "name", json_object_new_string(name));
	json_object_object_add(o, "args", args);
	json_object_array_add(t->events, o);
}

struct cli_timeline *cli_timeline_new(const struct ls_record_header *h, const char *perfetto_path,
				      const char *folded_path, uint64_t from_ns, uint64_t to_ns)
{
	struct cli_timeline *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->perfetto_path = perfetto_path;
	t->folded_path = folded_path;
	t->from_ns = from_ns;
	t->to_ns = to_ns;
	t->origin_ns = h->start_ns; /* ts 0: the recording's start */
	t->events = json_object_new_array();
	if (folded_path)
		t->folded = ls_folded_new();
	if (!t->events || (folded_path && !t->folded)) {
		cli_timeline_free(t);
		return NULL;
	}
	return t;
}

void cli_timeline_process(struct cli_timeline *t, uint32_t pid, const char *comm,
			  const char *interp)
{
	json_object *o = event("M", "process_name", pid, pid), *args;
	char name[160];

	snprintf(name, sizeof(name), "%s%s%s%s", comm, *interp ? " (" : "", interp,
		 *interp ? ")" : "");
	args = json_object_new_object();
	json_object_object_add(args, "name", json_object_new_string(name));
	json_object_object_add(o, "args", args);
	json_object_array_add(t->events, o);
}

static void counter(struct cli_timeline *t, const struct ls_thread_view *v, uint64_t at_ns,
		    const char *what, double value)
{
	char name[64];
	json_object *o, *args;

	snprintf(name, sizeof(name), "%s tid %u", what, v->tid);
	o = event("C", name, v->tgid, v->tid);
	json_object_object_add(o, "ts", json_object_new_double(us(t, at_ns)));
	args = json_object_new_object();
	json_object_object_add(args, "value", json_object_new_double(value));
	json_object_object_add(o, "args", args);
	json_object_array_add(t->events, o);
}

void cli_timeline_snapshot(struct cli_timeline *t, uint64_t now_ns,
			   const struct ls_thread_view *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct tl_prev *p = NULL;
		struct ls_thread_window w;

		for (size_t k = 0; k < t->nprev; k++)
			if (t->prev[k].v.tid == v[i].tid)
				p = &t->prev[k];
		if (!p) {
			struct tl_prev *grown = realloc(t->prev, (t->nprev + 1) * sizeof(*grown));

			if (!grown) {
				t->oom = true;
				return;
			}
			t->prev = grown;
			p = &t->prev[t->nprev++];
			p->v = v[i];
			p->at_ns = t->origin_ns;
			ls_stats_window(&v[i], now_ns, NULL, t->origin_ns, &w);
		} else {
			ls_stats_window(&v[i], now_ns, &p->v, p->at_ns, &w);
		}
		p->v = v[i];
		p->at_ns = now_ns;
		if (!w.polls || now_ns <= t->from_ns || now_ns > t->to_ns)
			continue;
		/* The interval's figures, stamped at its end. */
		counter(t, &v[i], now_ns, "utilization %", w.utilization >= 0 ? 100.0 * w.utilization : 0);
		counter(t, &v[i], now_ns, "iterations/s", w.iterations_per_s);
		counter(t, &v[i], now_ns, "delay p99 ms",
			w.busy.count ? ls_stats_delay_percentile(&w.busy, w.poll.sum, 99) / 1e6 : 0);
		counter(t, &v[i], now_ns, "lag p99 ms",
			w.lag.count ? ls_hist_percentile(&w.lag, 99) / 1e6 : 0);
	}
}

static json_object *stacks_json(const struct ls_stack_summary *st)
{
	json_object *stacks = json_object_new_array();
	char fr[600];

	for (size_t i = 0; st && i < st->n; i++) {
		const struct ls_stack_agg *a = &st->stacks[i];
		json_object *s = json_object_new_object(), *frames = json_object_new_array();

		ls_json_add_u64(s, "on_cpu_ns", a->on_cpu_ns);
		ls_json_add_u64(s, "blocked_ns", a->blocked_ns);
		ls_json_add_u64(s, "runnable_ns", a->runnable_ns);
		for (uint16_t f = 0; f < a->nframes; f++)
			json_object_array_add(frames, json_object_new_string(
				ls_slowstack_frame_text(&a->frames[f], fr, sizeof(fr))));
		json_object_object_add(s, "frames", frames);
		json_object_array_add(stacks, s);
	}
	return stacks;
}

void cli_timeline_slow_callback(struct cli_timeline *t, const struct ls_slow_callback_event *e,
				const struct ls_cb_name *name, const struct ls_cb_name *slow_name,
				const struct ls_stack_summary *st)
{
	struct ls_cb_key k = e->key;
	const struct ls_cb_name *nm = name;
	char full[600], why[4096];
	json_object *o, *args;
	uint64_t end = e->start_ns + e->duration_ns;

	if (end <= t->from_ns || end > t->to_ns)
		return;
	if (slow_name && slow_name->qualname[0]) { /* as precise mode names it */
		if (k.kind != LS_CB_CONTEXT)
			k.kind = LS_CB_TASK;
		nm = slow_name;
	}
	o = event("X", ls_pyname_format(&k, nm, full, sizeof(full)), e->key.tgid, e->tid);
	json_object_object_add(o, "cat", json_object_new_string("slow_callback"));
	args = json_object_new_object();
	slice_span(t, o, args, e->start_ns, e->duration_ns);
	ls_json_add_u64(args, "duration_ns", e->duration_ns);
	if (st && st->n) {
		struct ls_period_times pt;

		ls_slowstack_times(st, &pt);
		json_object_object_add(args, "why", json_object_new_string(
			ls_slowstack_text(st, &pt, 8, why, sizeof(why))));
	}
	json_object_object_add(args, "stacks", stacks_json(st));
	json_object_object_add(o, "args", args);
	json_object_array_add(t->events, o);
}

void cli_timeline_slow(struct cli_timeline *t, const struct ls_slow_busy_event *e,
		       const char *thread, const struct ls_stack_summary *st)
{
	char name[600], why[4096];
	json_object *o, *args, *stacks;
	uint64_t end = e->start_ns + e->duration_ns;

	if (end <= t->from_ns || end > t->to_ns)
		return;
	if (t->folded && ls_folded_add(t->folded, thread, st))
		t->oom = true;
	name_thread(t, e->tgid, e->tid, thread);
	/* Named by the culprit: the innermost frame of the heaviest stack. */
	if (st && st->n && st->stacks[0].nframes)
		ls_slowstack_frame_text(&st->stacks[0].frames[0], name, sizeof(name));
	else
		snprintf(name, sizeof(name), "slow busy");
	o = event("X", name, e->tgid, e->tid);
	json_object_object_add(o, "cat", json_object_new_string("slow_busy"));
	args = json_object_new_object();
	slice_span(t, o, args, e->start_ns, e->duration_ns);
	ls_json_add_u64(args, "duration_ns", e->duration_ns);
	json_object_object_add(args, "why", json_object_new_string(ls_busy_why(e, st, 8, why,
									      sizeof(why))));
	stacks = stacks_json(st);
	json_object_object_add(args, "stacks", stacks);
	json_object_object_add(o, "args", args);
	json_object_array_add(t->events, o);
}

static void span_slice(struct cli_timeline *t, uint32_t pid, uint32_t tid, const char *cat,
		       const char *name, const struct cli_span *c)
{
	json_object *o = event("X", name, pid, tid), *args = json_object_new_object();

	json_object_object_add(o, "cat", json_object_new_string(cat));
	slice_span(t, o, args, c->start_ns, c->duration_ns);
	if (json_object_object_length(args))
		json_object_object_add(o, "args", args);
	else
		json_object_put(args);
	json_object_array_add(t->events, o);
}

void cli_timeline_spans(struct cli_timeline *t, const struct cli_spans *s)
{
	char name[600];

	if (!s || (!s->drawn[0] && !s->drawn[1] && !s->left_out[0] && !s->left_out[1]))
		return;
	if (s->oom)
		t->oom = true;
	for (size_t i = 0; i < s->nt; i++) {
		const struct cli_span_thread *th = &s->t[i];

		for (size_t k = 0; k < th->n[CLI_SPAN_BUSY]; k++)
			span_slice(t, th->tgid, th->tid, "busy", "busy", &th->v[CLI_SPAN_BUSY][k]);
		for (size_t k = 0; k < th->n[CLI_SPAN_CALLBACK]; k++)
			span_slice(t, th->tgid, th->tid, "callback",
				   cli_spans_name(s, &th->v[CLI_SPAN_CALLBACK][k], name, sizeof(name)),
				   &th->v[CLI_SPAN_CALLBACK][k]);
	}
	/* Never silently partial: the counts in the trace, and a line. */
	t->other = json_object_new_object();
	ls_json_add_u64(t->other, "spans_max_per_thread", CLI_SPANS_MAX);
	ls_json_add_u64(t->other, "busy_periods_drawn", s->drawn[CLI_SPAN_BUSY]);
	ls_json_add_u64(t->other, "busy_periods_left_out", s->left_out[CLI_SPAN_BUSY]);
	ls_json_add_u64(t->other, "callbacks_drawn", s->drawn[CLI_SPAN_CALLBACK]);
	ls_json_add_u64(t->other, "callbacks_left_out", s->left_out[CLI_SPAN_CALLBACK]);
	if (s->left_out[0] || s->left_out[1])
		fprintf(stderr, "loopscope: timeline: the first %d busy periods and callbacks of each "
			"thread drawn; %llu busy periods and %llu callbacks left out (--from/--to "
			"choose the window)\n", CLI_SPANS_MAX,
			(unsigned long long)s->left_out[CLI_SPAN_BUSY],
			(unsigned long long)s->left_out[CLI_SPAN_CALLBACK]);
}

int cli_timeline_finish(struct cli_timeline *t)
{
	int ret = 0;

	if (t->oom) {
		fprintf(stderr, "loopscope: out of memory writing the timeline\n");
		return 1;
	}
	if (t->perfetto_path) {
		json_object *root = json_object_new_object();

		json_object_object_add(root, "traceEvents", json_object_get(t->events));
		json_object_object_add(root, "displayTimeUnit", json_object_new_string("ms"));
		if (t->other)
			json_object_object_add(root, "otherData", json_object_get(t->other));
		if (json_object_to_file_ext(t->perfetto_path, root, JSON_C_TO_STRING_PLAIN)) {
			fprintf(stderr, "loopscope: cannot write %s: %s\n", t->perfetto_path,
				strerror(errno));
			ret = 1;
		}
		json_object_put(root);
	}
	if (t->folded_path) {
		FILE *f = fopen(t->folded_path, "w");

		if (!f || ls_folded_write(t->folded, f) || fclose(f)) {
			fprintf(stderr, "loopscope: cannot write %s: %s\n", t->folded_path,
				strerror(errno));
			ret = 1;
		}
	}
	return ret;
}

void cli_timeline_free(struct cli_timeline *t)
{
	if (!t)
		return;
	json_object_put(t->events);
	json_object_put(t->other);
	ls_folded_free(t->folded);
	free(t->prev);
	free(t->named);
	free(t);
}
