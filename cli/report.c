// SPDX-License-Identifier: MIT
/* `loopscope report FILE`: the report `attach` printed, computed again from
 * a recording (cli/record.c) by attach's own report code (cli/attach.c):
 * the file is read back into the same struct attach. A damaged file is
 * reported up to the damage, then one line says what is wrong, with an
 * exit code of its own (loopscope/record.h, enum ls_record_exit). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach.h"
#include "cli.h"
#include "html.h"
#include "spans.h"
#include "timeline.h"

void cli_report_usage(FILE *f)
{
	fprintf(f,
		"Usage: loopscope report FILE [--json] [--threshold DURATION]\n"
		"                        [--from T] [--to T] [--perfetto OUT] [--folded OUT]\n"
		"                        [--html OUT]\n"
		"\n"
		"Print the report 'loopscope attach' printed, from a recording made by\n"
		"'loopscope record' or 'attach --record' (docs/RECORD.md).\n"
		"\n"
		"      --json                the report as one JSON object (as attach --json)\n"
		"      --threshold DURATION  list only slow periods longer than DURATION (at\n"
		"                            least the recording's own threshold)\n"
		"      --from T, --to T      only the window from T to T after the start (90s,\n"
		"                            2m; --from 0), at the recorded snapshots: the\n"
		"                            nearest one at or before each\n"
		"      --perfetto OUT        write the timeline to OUT as Chrome Trace Event JSON\n"
		"                            (Perfetto UI, chrome://tracing, speedscope open it):\n"
		"                            a track per loop thread, slow periods as slices\n"
		"                            with their stacks, utilization, delay and lag counters\n"
		"      --folded OUT          the slow periods' stacks in folded format\n"
		"                            (flamegraph.pl, speedscope), weights in us\n"
		"      --html OUT            one self-contained HTML page (no script, no network):\n"
		"                            timeline, histograms, delay, slow periods, flame graph\n"
		"  -h, --help                this help\n"
		"\n"
		"Exit codes: 0 ok; 1 internal error; 2 bad arguments; 6 a target exited while\n"
		"recording; 7 no loop thread was recorded; for a bad FILE (one line on\n"
		"stderr says which; what precedes the damage is reported first):\n"
		"20 cannot open or read it; 21 not a loopscope recording; 22 recorded by a\n"
		"newer loopscope; 23 truncated (the recording did not end cleanly, e.g. the\n"
		"recorder was killed); 24 a corrupt block.\n");
}

struct report_opts {
	const char *path, *perfetto, *folded, *html;
	bool json;
	uint64_t threshold_ns; /* 0: the recording's */
	uint64_t from_ns, to_ns; /* offsets from the start; to 0: the end */
	bool has_from, has_to;
};

static int parse(int argc, char **argv, struct report_opts *o)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "threshold", required_argument, NULL, 't' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 'T' },
		{ "perfetto", required_argument, NULL, 'P' },
		{ "folded", required_argument, NULL, 'F' },
		{ "html", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o->json = true;
			break;
		case 't':
			if (cli_parse_duration("--threshold", optarg, &o->threshold_ns))
				return -EINVAL;
			break;
		case 'f':
			/* 0 is a fine start: parsed without cli_parse_duration's "not 0" */
			if (strcmp(optarg, "0") && cli_parse_duration("--from", optarg, &o->from_ns))
				return -EINVAL;
			o->has_from = true;
			break;
		case 'T':
			if (cli_parse_duration("--to", optarg, &o->to_ns))
				return -EINVAL;
			o->has_to = true;
			break;
		case 'P':
			o->perfetto = optarg;
			break;
		case 'F':
			o->folded = optarg;
			break;
		case 'H':
			o->html = optarg;
			break;
		case 'h':
			cli_report_usage(stdout);
			return 1;
		default:
			fprintf(stderr, "loopscope: try 'loopscope report --help'\n");
			return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "loopscope: report needs one FILE (try 'loopscope report --help')\n");
		return -EINVAL;
	}
	o->path = argv[optind];
	if (o->has_from && o->has_to && o->to_ns <= o->from_ns) {
		fprintf(stderr, "loopscope: --to must be after --from\n");
		return -EINVAL;
	}
	return 0;
}

void cli_report_stacks(struct attach *a, json_object *jr)
{
	const struct ls_record_end *e = &a->rend;

	if (!e->stacks_on)
		return;
	if (jr) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "processes", json_object_new_int((int)e->stack_procs));
		ls_json_add_u64(o, "walks", e->stack_walks);
		ls_json_add_u64(o, "walks_without_frames", e->stack_walk_errors);
		ls_json_add_u64(o, "events_dropped", e->stack_dropped);
		ls_json_add_u64(o, "events_lost", e->stack_lost);
		json_object_object_add(jr, "stacks", o);
		return;
	}
	if (e->stack_walks)
		printf("  Python stacks: %llu taken in slow periods (%llu without frames)\n",
		       (unsigned long long)e->stack_walks, (unsigned long long)e->stack_walk_errors);
	if (e->stack_lost)
		printf("  LOST %llu stack records: the ring buffer was full (stacks of some slow "
		       "periods are partial)\n", (unsigned long long)e->stack_lost);
}

/* Precise mode's records into a->precise, as attach's precise mode fills
 * it while it runs. 0 or -ENOMEM. */
static int replay_precise(struct attach *a, struct ls_replay *r, struct ls_replay_item *it,
			  uint64_t win_from, uint64_t win_to, bool has_from)
{
	struct cli_precise *p = &a->precise;

	p->replay = true;
	if (it->type == LS_REC_PRECISE_TARGET) {
		if (!p->targets && !(p->targets = calloc(CLI_MAX_TARGETS, sizeof(*p->targets))))
			return -ENOMEM;
		if (p->ntargets < CLI_MAX_TARGETS) {
			struct ls_py_target *t = &p->targets[p->ntargets++];

			t->pid = (pid_t)it->tgid;
			t->major = it->major;
			t->minor = it->minor;
			t->route = (enum ls_py_route)it->route;
		}
		return 0;
	}
	if (it->type == LS_REC_CALLBACKS) {
		struct ls_cb_entry *v = malloc((it->ncallbacks + 1) * sizeof(*v));
		struct ls_cb_name *nm = malloc((it->ncallbacks + 1) * sizeof(*nm));

		if (!v || !nm) {
			free(v);
			free(nm);
			return -ENOMEM;
		}
		memcpy(v, it->callbacks, it->ncallbacks * sizeof(*v));
		memcpy(nm, it->callback_names, it->ncallbacks * sizeof(*nm));
		free(p->fixed);
		free(p->fixed_names);
		p->fixed = v;
		p->fixed_names = nm;
		p->nfixed = it->ncallbacks;
		p->has_fixed = true;
		return 0;
	}
	/* LS_REC_SLOW_CALLBACK */
	const struct ls_slow_callback_event *e = it->slow_cb;
	uint64_t end = e->start_ns + e->duration_ns;

	if (e->duration_ns <= a->threshold_ns || end > win_to || (has_from && end <= win_from))
		return 0;
	if (p->nslow >= MAX_SLOW_KEPT) {
		p->slow_dropped++;
		return 0;
	}
	void *g1 = realloc(p->slow, (p->nslow + 1) * sizeof(*p->slow));
	if (g1)
		p->slow = g1;
	void *g2 = realloc(p->slow_stacks, (p->nslow + 1) * sizeof(*p->slow_stacks));
	if (g2)
		p->slow_stacks = g2;
	void *g3 = realloc(p->slow_names, (p->nslow + 1) * sizeof(*p->slow_names));
	if (g3)
		p->slow_names = g3;
	void *g4 = realloc(p->slow_key_names, (p->nslow + 1) * sizeof(*p->slow_key_names));
	if (g4)
		p->slow_key_names = g4;
	if (!g1 || !g2 || !g3 || !g4)
		return -ENOMEM;
	p->slow[p->nslow] = *e;
	p->slow_names[p->nslow] = *it->cb_slow_name;
	p->slow_key_names[p->nslow] = *it->cb_name;
	ls_replay_take_stacks(r, it, &p->slow_stacks[p->nslow]);
	p->nslow++;
	return 0;
}

/* The window's views from the per-poll stream: for each thread of views
 * v (n, a snapshot's: they give poll_kind and thread_start), its figures
 * at ps's cut, into *out (malloc'd, *nout). Threads with no poll by then
 * are left out, as a snapshot then would have. 0 or -ENOMEM. */
static int views_at(struct ls_polls *ps, const struct ls_thread_view *v, size_t n,
		    struct ls_thread_view **out, size_t *nout)
{
	struct ls_thread_view *w = malloc((n + 1) * sizeof(*w));
	size_t k = 0;

	if (!w)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		w[k] = v[i];
		ls_polls_complete(ps, &v[i]);
		if (!ls_polls_view(ps, v[i].tid, &w[k], NULL))
			k++;
	}
	free(*out);
	*out = w;
	*nout = k;
	return 0;
}

/* A copy of snapshot views (the reader reuses its buffer). */
static int keep_views(struct ls_thread_view **dst, size_t *n, const struct ls_replay_item *it)
{
	struct ls_thread_view *v = malloc((it->nviews + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	memcpy(v, it->views, it->nviews * sizeof(*v));
	free(*dst);
	*dst = v;
	*n = it->nviews;
	return 0;
}

int cli_report(int argc, char **argv)
{
	struct report_opts o;
	struct attach a = { 0 };
	struct ls_record_header h;
	struct ls_replay *r = NULL;
	struct ls_replay_item it;
	struct ls_thread_view *now = NULL, *before = NULL, *last = NULL;
	struct cli_timeline *tl = NULL;
	struct ls_polls *pfrom = NULL, *pto = NULL;
	struct ls_cbwin *cw = NULL;
	struct cli_spans *spans = NULL;
	size_t nnow = 0, nbefore = 0, nlast = 0;
	uint64_t last_ns = 0;
	uint64_t now_ns = 0, before_ns = 0, win_from, win_to, lost = 0;
	bool have_now = false, html_failed = false;
	int err, rerr = 0, ret = LS_EXIT_ERROR;

	err = parse(argc, argv, &o);
	if (err)
		return err > 0 ? LS_EXIT_OK : LS_EXIT_USAGE;
	err = ls_replay_open(o.path, &r, &h);
	if (err) {
		fprintf(stderr, "loopscope: %s: %s\n", o.path, ls_replay_strerror(err));
		return ls_replay_exit_code(err);
	}
	if (o.threshold_ns && o.threshold_ns < h.threshold_ns) {
		char b1[32], b2[32];

		fprintf(stderr, "loopscope: --threshold %s is below the recording's %s: shorter "
			"periods were not recorded\n", ls_duration_format(o.threshold_ns, b1, sizeof(b1)),
			ls_duration_format(h.threshold_ns, b2, sizeof(b2)));
		ls_replay_close(r);
		return LS_EXIT_USAGE;
	}
	a.replay = true;
	a.json = o.json;
	a.npids = (int)(h.npids < MAX_PIDS ? h.npids : MAX_PIDS);
	for (int i = 0; i < a.npids; i++)
		a.pids[i] = (pid_t)h.pids[i];
	a.threshold_ns = o.threshold_ns ? o.threshold_ns : h.threshold_ns;
	a.interval_ns = h.interval_ns;
	a.mono_to_real_ns = (int64_t)(h.realtime_ns - h.monotonic_ns);
	a.start_ns = h.start_ns;
	a.precise.json = a.json;
	a.precise.threshold_ns = a.threshold_ns;
	a.precise.mono_to_real_ns = a.mono_to_real_ns;
	win_from = h.start_ns + o.from_ns;
	win_to = o.has_to ? h.start_ns + o.to_ns : UINT64_MAX;
	/* With the per-poll stream, the window is cut at any poll: the
	 * figures at --from and at --to computed from the polls. */
	if ((o.has_from || o.has_to) &&
	    (!(pfrom = ls_polls_new(h.threshold_ns, o.has_from ? win_from : 0)) ||
	     !(pto = ls_polls_new(h.threshold_ns, win_to)) ||
	     !(cw = ls_cbwin_new(o.has_from ? win_from : 0, win_to))))
		goto oom;
	if ((o.perfetto || o.html) && !(spans = cli_spans_new(o.has_from ? win_from : 0, win_to)))
		goto oom;
	a.spans = spans;
	if (o.perfetto || o.folded) {
		tl = cli_timeline_new(&h, o.perfetto, o.folded, win_from, win_to);
		if (!tl) {
			fprintf(stderr, "loopscope: out of memory\n");
			goto out;
		}
	}
	while ((err = ls_replay_next(r, &it)) > 0) {
		switch (it.type) {
		case LS_REC_THREAD:
			cli_attach_set_thread_name(&a, it.tid, it.name);
			break;
		case LS_REC_PROCESS:
			if (tl)
				cli_timeline_process(tl, it.tgid, it.name, it.interp);
			break;
		case LS_REC_POLLS:
			a.polls_recorded += it.npolls;
			if (spans)
				cli_spans_polls(spans, it.polls, it.npolls);
			if (pfrom && (ls_polls_add(pfrom, it.polls, it.npolls) ||
				      ls_polls_add(pto, it.polls, it.npolls)))
				goto oom;
			break;
		case LS_REC_CB_KEY:
			a.precise.replay = true;
			if (cli_precise_stream_key(&a.precise, it.cb_key, it.cb_name))
				goto oom;
			if (spans)
				cli_spans_key(spans, it.cb_key, it.cb_name);
			break;
		case LS_REC_CB_RUNS:
			a.cbs_recorded += it.ncbruns;
			if (cw && ls_cbwin_add(cw, it.cbruns, it.ncbruns))
				goto oom;
			if (spans)
				cli_spans_cbs(spans, it.cbruns, it.ncbruns);
			break;
		case LS_REC_SNAPSHOT:
			if (tl)
				cli_timeline_snapshot(tl, it.now_ns, it.views, it.nviews);
			if (pfrom) {
				if (keep_views(&last, &nlast, &it))
					goto oom;
				last_ns = it.now_ns;
			}
			if (o.has_from && it.now_ns <= win_from) {
				if (keep_views(&before, &nbefore, &it))
					goto oom;
				before_ns = it.now_ns;
			}
			if (it.now_ns <= win_to) {
				if (keep_views(&now, &nnow, &it))
					goto oom;
				now_ns = it.now_ns;
				have_now = true;
			}
			break;
		case LS_REC_SLOW_BUSY: {
			uint64_t end = it.slow->start_ns + it.slow->duration_ns;

			if (tl)
				cli_timeline_slow(tl, it.slow, it.thread, &it.stacks);
			/* Only what surely ends before the window: it starts at
			 * the last snapshot at or before --from (before_ns so far
			 * or later), which a loaded recorder takes late, well
			 * before --from (a period ending between the two was
			 * dropped here, yet inside the reported window). */
			if (it.slow->duration_ns <= a.threshold_ns || end > win_to ||
			    (o.has_from && before && end <= before_ns))
				break;
			if (a.nslow >= MAX_SLOW_KEPT) {
				a.slow_dropped++;
				break;
			}
			if (!a.slow && !(a.slow = calloc(MAX_SLOW_KEPT, sizeof(*a.slow))))
				goto oom;
			a.slow[a.nslow].ev = *it.slow;
			snprintf(a.slow[a.nslow].thread, sizeof(a.slow[0].thread), "%s", it.thread);
			ls_replay_take_stacks(r, &it, &a.slow[a.nslow].stacks);
			a.nslow++;
			break;
		}
		case LS_REC_SLOW_CALLBACK:
			if (tl)
				cli_timeline_slow_callback(tl, it.slow_cb, it.cb_name, it.cb_slow_name,
							   &it.stacks);
			/* fall through */
		case LS_REC_PRECISE_TARGET:
		case LS_REC_CALLBACKS:
			if (replay_precise(&a, r, &it, before_ns, win_to, o.has_from && before))
				goto oom;
			break;
		case LS_REC_END:
			a.rend = it.end;
			a.precise.replay_lost = it.end.lost_callback_events;
			a.precise.slow_dropped += it.end.slow_callbacks_not_kept;
			a.offcpu_unseen = it.end.offcpu_unseen;
			a.every_poll = it.end.every_poll;
			a.polls_lost = it.end.lost_polls;
			a.every_callback = it.end.every_callback;
			a.cbs_lost = it.end.lost_callbacks;
			a.precise.stacks = it.end.stacks_enabled ? &a.stacks : NULL;
			lost = it.end.lost_events;
			/* (slow_not_kept: attach's list was full; the file has them all) */
			for (uint32_t i = 0; i < it.end.npids; i++)
				for (int k = 0; k < a.npids; k++)
					if ((uint32_t)a.pids[k] == it.end.pids[i] && it.end.exited[i] &&
					    it.end.exited_at_ns[i] <= win_to) {
						a.exited[k] = true;
						a.exited_at_ns[k] = it.end.exited_at_ns[i];
					}
			break;
		default:
			break;
		}
	}
	rerr = err;
	uint64_t gaps = 0;

	if (pfrom)
		ls_polls_records(pto, &gaps);
	/* The stream whole (no poll lost, none missing between records):
	 * --from and --to cut at the polls, exactly (a time past the last
	 * snapshot keeps that snapshot: polls recorded after it, while the
	 * session closed, are not in attach's report either). */
	if (pfrom && a.every_poll && !a.polls_lost && !gaps && !rerr && have_now) {
		if (o.has_to && win_to < last_ns) {
			if (views_at(pto, last, nlast, &now, &nnow))
				goto oom;
			now_ns = win_to;
		}
		if (o.has_from) {
			if (views_at(pfrom, last, nlast, &before, &nbefore))
				goto oom;
			before_ns = win_from;
		}
	}
	/* The per-callback stream whole (none lost, no seq gap): the
	 * callback table is the window's, cut at the callbacks exactly (those
	 * ending in (--from, --to]), and so are the slow callbacks. */
	bool cb_exact = false;

	if (cw) {
		uint64_t cbgaps = 0, taken = 0;
		size_t ncw = 0;
		const struct ls_cb_entry *cv = ls_cbwin_table(cw, &ncw, &taken, &cbgaps);

		if (a.every_callback && !a.cbs_lost && !cbgaps && !rerr && a.precise.has_fixed) {
			if (cli_precise_window(&a.precise, cv, ncw))
				goto oom;
			cb_exact = true;
		}
	}
	/* With --from/--to, the window is that of the snapshots found: keep
	 * the slow periods ending inside it, as attach's interval lines count
	 * them (without, every period recorded: attach lists those it drained
	 * after its last snapshot too). */
	if (o.has_from || o.has_to) {
		uint64_t lo = o.has_from && before ? before_ns : 0, hi = o.has_to ? now_ns : UINT64_MAX;
		uint64_t clo = cb_exact ? (o.has_from ? win_from : 0) : lo;
		uint64_t chi = cb_exact ? win_to : hi;
		size_t k = 0, kp = 0;

		for (size_t i = 0; i < a.nslow; i++) {
			uint64_t end = a.slow[i].ev.start_ns + a.slow[i].ev.duration_ns;

			if (end > lo && end <= hi)
				a.slow[k++] = a.slow[i];
			else
				ls_slowstack_summary_free(&a.slow[i].stacks);
		}
		a.nslow = k;
		for (size_t i = 0; i < a.precise.nslow; i++) {
			uint64_t end = a.precise.slow[i].start_ns + a.precise.slow[i].duration_ns;

			if (end > clo && end <= chi) {
				a.precise.slow[kp] = a.precise.slow[i];
				a.precise.slow_stacks[kp] = a.precise.slow_stacks[i];
				a.precise.slow_names[kp] = a.precise.slow_names[i];
				a.precise.slow_key_names[kp++] = a.precise.slow_key_names[i];
			} else {
				ls_slowstack_summary_free(&a.precise.slow_stacks[i]);
			}
		}
		a.precise.nslow = kp;
	}
	if (o.has_from) {
		if (before) {
			a.before = before;
			a.nbefore = nbefore;
			a.start_ns = before_ns;
		}
	}
	if (!have_now) {
		if (!rerr)
			fprintf(stderr, "loopscope: %s: no snapshot in the window asked for\n", o.path);
		ret = rerr ? ls_replay_exit_code(rerr) : LS_EXIT_NO_LOOP;
	} else {
		int nseen = cli_attach_report(&a, now, nnow, now_ns, lost);

		if (o.html && (err = cli_html_write(o.html, &a, now, nnow, now_ns))) {
			fprintf(stderr, "loopscope: cannot write %s: %s\n", o.html, strerror(-err));
			html_failed = true;
		}
		bool any_exited = false;

		for (int i = 0; i < a.npids; i++)
			any_exited |= a.exited[i];
		ret = nseen == 0 ? (any_exited ? LS_EXIT_TARGET_EXITED : LS_EXIT_NO_LOOP)
				 : (any_exited ? LS_EXIT_TARGET_EXITED : LS_EXIT_OK);
		if (rerr)
			ret = ls_replay_exit_code(rerr);
		else if (html_failed && ret == LS_EXIT_OK)
			ret = LS_EXIT_ERROR;
	}
	if (rerr)
		fprintf(stderr, "loopscope: %s: %s at byte %llu; the report covers what precedes it\n",
			o.path, ls_replay_strerror(rerr), (unsigned long long)ls_replay_offset(r));
	if (tl)
		cli_timeline_spans(tl, spans);
	if (tl && cli_timeline_finish(tl) && ret == LS_EXIT_OK)
		ret = LS_EXIT_ERROR;
	goto out;
oom:
	fprintf(stderr, "loopscope: out of memory\n");
	ret = LS_EXIT_ERROR;
out:
	cli_timeline_free(tl);
	cli_spans_free(spans);
	cli_precise_close(&a.precise);
	ls_replay_close(r);
	free(now);
	free(before);
	free(last);
	ls_polls_free(pfrom);
	ls_polls_free(pto);
	ls_cbwin_free(cw);
	cli_attach_free(&a);
	return ret;
}
