// SPDX-License-Identifier: MIT
/* CPython precise mode in `loopscope attach`: resolution messages, slow
 * callback lines, top-callback tables. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "loopscope/busywhy.h"
#include "loopscope/cbname.h"

#define MAX_SLOW_KEPT 10000
#define TOP_N 10

static const struct ls_py_target *target_of(const struct cli_precise *p, uint32_t pid)
{
	for (int i = 0; i < p->ntargets; i++)
		if ((uint32_t)p->targets[i].pid == pid)
			return &p->targets[i];
	return NULL;
}

static const struct ls_cb_name *name_of(struct cli_precise *p, const struct ls_cb_key *k)
{
	const struct ls_py_target *t = target_of(p, k->tgid);
	const struct ls_py_offsets *off = t ? &t->off : NULL;
	static const struct ls_cb_name unknown = { .qualname = "?" };
	const struct ls_cb_name *nm;

	if (p->replay) { /* read back from a recording */
		for (size_t i = 0; i < p->nfixed; i++)
			if (!memcmp(&p->fixed[i].key, k, sizeof(*k)))
				return &p->fixed_names[i];
		for (size_t i = 0; p->slow_key_names && i < p->nslow; i++)
			if (!memcmp(&p->slow[i].key, k, sizeof(*k)))
				return &p->slow_key_names[i];
		for (size_t i = 0; i < p->nstream; i++)
			if (!memcmp(&p->stream_keys[i], k, sizeof(*k)))
				return &p->stream_names[i];
		return &unknown;
	}
	/* off is NULL for a target already removed: its names were read when
	 * its events came, and the cache has them. */
	if (!p->names)
		return &unknown;
	nm = ls_pyname_lookup(p->names, off, k);
	return nm ? nm : &unknown;
}

const struct ls_cb_name *cli_precise_name(struct cli_precise *p, const struct ls_cb_key *k)
{
	return name_of(p, k);
}

static const struct ls_cb_name *slow_name(struct cli_precise *p, size_t i, struct ls_cb_key *k);

const struct ls_cb_name *cli_precise_slow_name(struct cli_precise *p, size_t i,
					       struct ls_cb_key *k)
{
	return slow_name(p, i, k);
}

static const char *kind_name(uint32_t kind)
{
	static const char *names[] = { "other", "function", "method", "partial", "task", "builtin",
				       "context" };

	return kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "other";
}

static json_object *callback_json_named(const struct ls_cb_key *k, const struct ls_cb_name *nm)
{
	json_object *o = json_object_new_object();
	char full[600];

	json_object_object_add(o, "pid", json_object_new_int((int)k->tgid));
	json_object_object_add(o, "kind", json_object_new_string(kind_name(k->kind)));
	json_object_object_add(o, "name", json_object_new_string(ls_pyname_format(k, nm, full, sizeof(full))));
	json_object_object_add(o, "qualname", json_object_new_string(nm->qualname));
	json_object_object_add(o, "file", json_object_new_string(nm->filename));
	json_object_object_add(o, "line", json_object_new_int(nm->firstlineno));
	return o;
}

static json_object *callback_json(struct cli_precise *p, const struct ls_cb_key *k)
{
	return callback_json_named(k, name_of(p, k));
}

/* Slow callback i's key and name: a pure-Python Task's step as its Task,
 * a context callback (uvloop) as the callable its stack shows. */
static const struct ls_cb_name *slow_name(struct cli_precise *p, size_t i, struct ls_cb_key *k)
{
	*k = p->slow[i].key;
	if (p->slow_names && p->slow_names[i].qualname[0]) {
		if (k->kind != LS_CB_CONTEXT)
			k->kind = LS_CB_TASK;
		return &p->slow_names[i];
	}
	return name_of(p, k);
}

/* ": 150.1 ms blocked in clock_nanosleep <- f app.py:3 <- ...; 0.2 ms on
 * CPU" for slow callback e: its exact times (ls_callback_times) with its
 * stacks st when it has them; without the exact times, the sums of its
 * stacks; "" when it has neither. */
static const char *why_text(const struct ls_slow_callback_event *e,
			    const struct ls_stack_summary *st, int max_frames, char *buf,
			    size_t len)
{
	struct ls_period_times t;
	int n;

	buf[0] = '\0';
	if (!ls_callback_times(e, st, &t) && (!st || !st->n))
		return buf;
	n = snprintf(buf, len, ": ");
	ls_slowstack_text(st, &t, max_frames, buf + n, len - (size_t)n);
	return buf;
}

static void on_slow_callback(const struct ls_slow_callback_event *e, void *ctx)
{
	struct cli_precise *p = ctx;
	struct ls_stack_summary st = { 0 };
	char b1[32], b2[32], full[600], why[2048];

	if (p->stacks) {
		char comm[16];

		ls_target_thread_name((pid_t)e->key.tgid, (pid_t)e->tid, comm, sizeof(comm));
		cli_stacks_take(p->stacks, e->key.tgid, e->tid, e->start_ns,
				e->start_ns + e->duration_ns, true, false, comm, &st);
	}
	if (p->nslow < MAX_SLOW_KEPT) {
		struct ls_slow_callback_event *grown = realloc(p->slow, (p->nslow + 1) * sizeof(*e));
		struct ls_stack_summary *gs = realloc(p->slow_stacks, (p->nslow + 1) * sizeof(st));
		struct ls_cb_name *gn = realloc(p->slow_names, (p->nslow + 1) * sizeof(*gn));

		if (gs)
			p->slow_stacks = gs;
		if (grown)
			p->slow = grown;
		if (gn)
			p->slow_names = gn;
		if (grown && gs && gn) {
			p->slow[p->nslow] = *e;
			memset(&p->slow_names[p->nslow], 0, sizeof(*gn));
			if (e->key.kind == LS_CB_CONTEXT)
				ls_cbname_context(&st, &p->slow_names[p->nslow]);
			else
				ls_cbname_task_step(name_of(p, &e->key), &st, &p->slow_names[p->nslow]);
			p->slow_stacks[p->nslow++] = st; /* owned by the list now */
			memset(&st, 0, sizeof(st));
		}
	} else {
		p->slow_dropped++;
	}
	bool is_kept = p->nslow && p->slow[p->nslow - 1].start_ns == e->start_ns &&
		p->slow[p->nslow - 1].tid == e->tid;
	const struct ls_stack_summary *kept = is_kept ? &p->slow_stacks[p->nslow - 1] : &st;
	struct ls_cb_key key = e->key;
	const struct ls_cb_name *nm = is_kept ? slow_name(p, p->nslow - 1, &key) : name_of(p, &key);
	/* Resolve the name now, while the process surely exists: the report
	 * may come after it is gone. */
	name_of(p, &e->key);
	if (is_kept && p->on_kept)
		p->on_kept(p->on_kept_ctx, p->nslow - 1);
	if (p->json) {
		json_object *o = callback_json_named(&key, nm);

		json_object_object_add(o, "type", json_object_new_string("slow_callback"));
		json_object_object_add(o, "tid", json_object_new_int((int)e->tid));
		ls_json_add_u64(o, "start_ns", e->start_ns);
		ls_json_add_u64(o, "duration_ns", e->duration_ns);
		ls_callback_why_json(o, e, kept);
		if (p->stacks) {
			json_object_object_add(o, "app_frame",
					       ls_appframe_json(kept->has_app ? &kept->app : NULL));
			json_object_object_add(o, "stacks", ls_slowstack_json(kept));
			json_object_object_add(o, "await_chain", ls_pytask_chain_json(&kept->chain));
		}
		cli_print_json(o);
	} else if (!p->quiet) {
		char app[700];

		printf("%s  SLOW callback %s%s  %s  pid %u tid %u%s\n",
		       cli_clock(p->mono_to_real_ns, e->start_ns + e->duration_ns, b1, sizeof(b1)),
		       ls_pyname_format(&key, nm, full, sizeof(full)),
		       ls_appframe_suffix(kept->has_app ? &kept->app : NULL, app, sizeof(app)),
		       ls_duration_format(e->duration_ns, b2, sizeof(b2)), e->key.tgid, e->tid,
		       why_text(e, kept, 4, why, sizeof(why)));
		cli_print_chain(&kept->chain, "      ");
		fflush(stdout);
	}
	ls_slowstack_summary_free(&st);
}

int cli_precise_add(struct cli_precise *p, pid_t pid, bool quiet_not_python,
		    int *resolve_err, struct ls_py_target *t)
{
	int err;

	*resolve_err = ls_py_resolve(pid, t);
	if (*resolve_err) {
		if (!quiet_not_python || (*resolve_err != -ENOEXEC && *resolve_err != -ESRCH))
			fprintf(stderr, "loopscope: %s; epoll level only\n", t->error);
		return 1;
	}
	err = cli_precise_add_resolved(p, t);
	return err == -EAGAIN ? 1 : err;
}

/* ls_callbacks_fn of the session: to p's stream consumer. */
static void on_callbacks(const struct ls_callback_event *e, size_t n, void *ctx)
{
	struct cli_precise *p = ctx;

	p->on_callbacks(e, n, p->on_callbacks_ctx);
}

int cli_precise_open(struct cli_precise *p)
{
	int err;

	if (!p->pycb) {
		struct ls_pycb_opts o = {
			.slow_threshold_ns = p->threshold_ns,
			.on_slow_callback = on_slow_callback,
			.ctx = p,
			.btf_path = p->btf_path,
			.loop = p->loop,
			.on_callbacks = p->on_callbacks ? on_callbacks : NULL,
		};

		err = ls_pycb_open(&o, &p->pycb);
		if (err)
			return err;
		p->names = ls_pyname_cache_new();
		p->targets = calloc(CLI_MAX_TARGETS, sizeof(*p->targets));
		if (!p->names || !p->targets)
			return -ENOMEM;
	}
	return 0;
}

int cli_precise_add_resolved(struct cli_precise *p, const struct ls_py_target *t)
{
	int err = cli_precise_open(p);

	if (err)
		return err;
	if (p->ntargets == CLI_MAX_TARGETS) {
		fprintf(stderr, "loopscope: pid %d: %d Python processes in precise mode already; "
			"epoll level only\n", t->pid, CLI_MAX_TARGETS);
		return -EAGAIN;
	}
	err = ls_pycb_add_target(p->pycb, t);
	if (err) {
		fprintf(stderr, "loopscope: pid %d: cannot probe context_run in %s: %s; epoll level only\n",
			t->pid, t->path, strerror(-err));
		return -EAGAIN;
	}
	p->targets[p->ntargets++] = *t;
	if (!p->quiet_resolve)
		fprintf(stderr, "loopscope: pid %d: CPython %d.%d (%s), precise mode: context_run found via %s%s%s\n",
			t->pid, t->major, t->minor, t->path,
			t->route == LS_PY_ROUTE_SYMTAB ? ".symtab" : "PyContext_Type.tp_methods",
			t->note[0] ? "; " : "", t->note);
	return 0;
}

void cli_precise_remove(struct cli_precise *p, pid_t pid)
{
	if (!p->pycb)
		return;
	ls_pycb_remove_target(p->pycb, pid);
	for (int i = 0; i < p->ntargets; i++) {
		if (p->targets[i].pid == pid) {
			p->targets[i] = p->targets[--p->ntargets];
			break;
		}
	}
}

void cli_precise_poll(struct cli_precise *p)
{
	/* Read what is there, for at most ~100 ms a call (each ls_pycb_poll
	 * stops consuming after 50 ms): a target flooding slow callbacks
	 * cannot keep attach from its interval lines, -d or a signal. */
	uint64_t until = ls_sys_now_ns() + 100000000ULL;

	if (p->pycb)
		while (ls_pycb_poll(p->pycb, 0) > 0 && ls_sys_now_ns() < until)
			;
}

static int by_sum(const void *a, const void *b)
{
	const struct cli_cb_row *x = a, *y = b;

	return x->h.sum < y->h.sum ? 1 : x->h.sum > y->h.sum ? -1 : 0;
}

static int by_max(const void *a, const void *b)
{
	const struct cli_cb_row *x = a, *y = b;

	return x->h.max < y->h.max ? 1 : x->h.max > y->h.max ? -1 : 0;
}

/* A row's name: the callable's, then its application frame when split. */
static char *row_name(struct cli_precise *p, const struct cli_cb_row *r, char *buf, size_t len)
{
	char full[600], app[700];

	snprintf(buf, len, "%s%s", ls_pyname_format(&r->key, name_of(p, &r->key), full, sizeof(full)),
		 ls_appframe_suffix(r->has_app ? &r->app : NULL, app, sizeof(app)));
	return buf;
}

static void print_top(struct cli_precise *p, struct cli_cb_row *v, size_t n, uint32_t pid,
		      const char *title)
{
	char b[4][16], full[1400];
	int shown = 0;

	for (size_t i = 0; i < n && !shown; i++)
		shown = v[i].key.tgid == pid;
	if (!shown) {
		printf("    %s: no callback ran\n", title);
		return;
	}
	shown = 0;
	printf("    %s:\n      %8s %10s %10s %10s %10s  %s\n", title, "COUNT", "TOTAL", "p50",
	       "p99", "MAX", "CALLBACK");
	for (size_t i = 0; i < n && shown < TOP_N; i++) {
		const struct ls_hist *h = &v[i].h;

		if (v[i].key.tgid != pid)
			continue;
		shown++;
		printf("      %8llu %10s %10s %10s %10s  %s\n", (unsigned long long)h->count,
		       ls_duration_format(h->sum, b[0], 16),
		       ls_duration_format(ls_hist_percentile(h, 50), b[1], 16),
		       ls_duration_format(ls_hist_percentile(h, 99), b[2], 16),
		       ls_duration_format(h->max, b[3], 16), row_name(p, &v[i], full, sizeof(full)));
	}
}

static uint64_t lost_events(struct cli_precise *p)
{
	/* Taken with the table (cli_precise_fix), or read back. */
	return p->pycb && !p->has_fixed ? ls_pycb_lost_events(p->pycb) : p->replay_lost;
}

int cli_precise_fix(struct cli_precise *p)
{
	struct ls_cb_entry *v = NULL;
	size_t n = 0;

	if (!p->pycb)
		return -ENOENT;
	p->fix_from_ns = ls_sys_now_ns();
	if (ls_pycb_snapshot(p->pycb, &v, &n))
		return -ENOMEM;
	p->fix_to_ns = ls_sys_now_ns();
	cli_precise_poll(p);
	p->replay_lost = ls_pycb_lost_events(p->pycb);
	free(p->fixed);
	p->fixed = v;
	p->nfixed = n;
	p->has_fixed = true;
	return 0;
}

void cli_precise_report(struct cli_precise *p, json_object *jr)
{
	struct cli_cb_row *v = NULL;
	json_object *jcb = NULL, *jslow = NULL;
	char b1[32], b2[32], full[600];
	size_t n = 0, overflowed = 0;

	if (!p->pycb && !p->replay)
		return;
	if (!p->has_fixed && !p->replay && cli_precise_fix(p)) {
		fprintf(stderr, "loopscope: reading callback stats failed\n");
		return;
	}
	/* The table as recorded or taken once (cli_precise_fix), split by
	 * application frame from the kept slow callbacks' stacks. */
	if (cli_cb_rows(p, p->fixed, p->nfixed, &v, &n, &overflowed)) {
		fprintf(stderr, "loopscope: out of memory for the callback table\n");
		return;
	}
	if (jr) {
		jcb = json_object_new_array();
		jslow = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			json_object *o = callback_json(p, &v[i].key);

			json_object_object_add(o, "app_frame", ls_appframe_json(v[i].has_app ? &v[i].app : NULL));
			json_object_object_add(o, "duration", cli_hist_json(&v[i].h));
			json_object_array_add(jcb, o);
		}
		for (size_t i = 0; i < p->nslow; i++) {
			struct ls_cb_key key;
			const struct ls_cb_name *nm = slow_name(p, i, &key);
			json_object *o = callback_json_named(&key, nm);

			json_object_object_add(o, "tid", json_object_new_int((int)p->slow[i].tid));
			ls_json_add_u64(o, "start_ns", p->slow[i].start_ns);
			ls_json_add_u64(o, "duration_ns", p->slow[i].duration_ns);
			ls_callback_why_json(o, &p->slow[i], &p->slow_stacks[i]);
			if (p->stacks) {
				const struct ls_stack_summary *ss = &p->slow_stacks[i];

				json_object_object_add(o, "app_frame",
						       ls_appframe_json(ss->has_app ? &ss->app : NULL));
				json_object_object_add(o, "stacks", ls_slowstack_json(&p->slow_stacks[i]));
				json_object_object_add(o, "await_chain",
						       ls_pytask_chain_json(&p->slow_stacks[i].chain));
			}
			json_object_array_add(jslow, o);
		}
		json_object *jt = json_object_new_array();

		for (int t = 0; t < p->ntargets; t++) {
			json_object *o = json_object_new_object();
			char ver[16];

			snprintf(ver, sizeof(ver), "%d.%d", p->targets[t].major, p->targets[t].minor);
			json_object_object_add(o, "pid", json_object_new_int(p->targets[t].pid));
			json_object_object_add(o, "python", json_object_new_string(ver));
			json_object_object_add(o, "context_run_route", json_object_new_string(
				p->targets[t].route == LS_PY_ROUTE_SYMTAB ? "symtab" : "tp_methods"));
			json_object_array_add(jt, o);
		}
		json_object_object_add(jr, "precise_targets", jt);
		json_object_object_add(jr, "callbacks", jcb);
		ls_json_add_u64(jr, "callback_app_rows_max", CLI_CB_APP_ROWS_MAX);
		ls_json_add_u64(jr, "callback_app_rows_overflowed", overflowed);
		json_object_object_add(jr, "slow_callbacks", jslow);
		ls_json_add_u64(jr, "slow_callbacks_not_kept", p->slow_dropped);
		ls_json_add_u64(jr, "lost_callback_events", lost_events(p));
		free(v);
		return;
	}
	for (int t = 0; t < p->ntargets; t++) {
		uint32_t pid = (uint32_t)p->targets[t].pid;

		printf("  callbacks of pid %u (CPython %d.%d, precise mode):\n", pid,
		       p->targets[t].major, p->targets[t].minor);
		if (n)	/* qsort's base may not be NULL */
			qsort(v, n, sizeof(*v), by_sum);
		print_top(p, v, n, pid, "by total time");
		if (n)
			qsort(v, n, sizeof(*v), by_max);
		print_top(p, v, n, pid, "by max");
	}
	if (overflowed)
		printf("  %zu slow callbacks stay in their callable's row: more than %d (callable, "
		       "application frame) rows\n", overflowed, CLI_CB_APP_ROWS_MAX);
	printf("  slow callbacks (> %s): %zu\n", ls_duration_format(p->threshold_ns, b1, sizeof(b1)),
	       p->nslow + p->slow_dropped);
	uint64_t *durs = malloc((p->nslow + 1) * sizeof(*durs)), cut = 0;
	size_t shown = 0;

	for (size_t i = 0; durs && i < p->nslow; i++)
		durs[i] = p->slow[i].duration_ns;
	if (durs)
		cut = ls_stats_kth_longest(durs, p->nslow, LS_TEXT_SLOW_MAX);
	free(durs);
	for (size_t i = 0; i < p->nslow; i++) {
		const struct ls_slow_callback_event *e = &p->slow[i];

		if (e->duration_ns < cut || shown == LS_TEXT_SLOW_MAX)
			continue; /* the longest; JSON lists all */
		shown++;
		char why[4096];
		struct ls_cb_key key;
		const struct ls_cb_name *nm = slow_name(p, i, &key);

		char named[1400], app[700];
		const struct ls_stack_summary *ss = &p->slow_stacks[i];

		snprintf(named, sizeof(named), "%s%s", ls_pyname_format(&key, nm, full, sizeof(full)),
			 ls_appframe_suffix(ss->has_app ? &ss->app : NULL, app, sizeof(app)));
		printf("    %s  %-60s %10s  pid %u tid %u%s\n",
		       cli_clock(p->mono_to_real_ns, e->start_ns, b1, sizeof(b1)), named,
		       ls_duration_format(e->duration_ns, b2, sizeof(b2)), e->key.tgid, e->tid,
		       why_text(e, &p->slow_stacks[i], 8, why, sizeof(why)));
		cli_print_chain(&p->slow_stacks[i].chain, "      ");
	}
	if (shown < p->nslow)
		printf("    (the %zu longest shown; %zu shorter ones: --json lists every one)\n", shown,
		       p->nslow - shown);
	if (lost_events(p))
		printf("  LOST %llu slow callback events: the ring buffer was full\n",
		       (unsigned long long)lost_events(p));
	free(v);
}

int cli_precise_stream_key(struct cli_precise *p, const struct ls_cb_key *k,
			   const struct ls_cb_name *nm)
{
	for (size_t i = 0; i < p->nstream; i++)
		if (!memcmp(&p->stream_keys[i], k, sizeof(*k))) {
			p->stream_names[i] = *nm;
			return 0;
		}
	if (p->nstream == p->stream_cap) {
		size_t cap = p->stream_cap ? 2 * p->stream_cap : 64;
		struct ls_cb_key *gk = realloc(p->stream_keys, cap * sizeof(*gk));
		struct ls_cb_name *gn;

		if (!gk)
			return -ENOMEM;
		p->stream_keys = gk;
		gn = realloc(p->stream_names, cap * sizeof(*gn));
		if (!gn)
			return -ENOMEM;
		p->stream_names = gn;
		p->stream_cap = cap;
	}
	p->stream_keys[p->nstream] = *k;
	p->stream_names[p->nstream++] = *nm;
	return 0;
}

int cli_precise_window(struct cli_precise *p, const struct ls_cb_entry *v, size_t n)
{
	struct ls_cb_entry *nv = malloc((n + 1) * sizeof(*nv));
	struct ls_cb_name *nn = malloc((n + 1) * sizeof(*nn));

	if (!nv || !nn) {
		free(nv);
		free(nn);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		nv[i] = v[i];
		nn[i] = *name_of(p, &v[i].key); /* the old table's names still in place */
	}
	free(p->fixed);
	free(p->fixed_names);
	p->fixed = nv;
	p->fixed_names = nn;
	p->nfixed = n;
	p->has_fixed = true;
	return 0;
}

void cli_precise_close(struct cli_precise *p)
{
	ls_pycb_close(p->pycb);
	ls_pyname_cache_free(p->names);
	free(p->targets);
	for (size_t i = 0; i < p->nslow && p->slow_stacks; i++)
		ls_slowstack_summary_free(&p->slow_stacks[i]);
	free(p->slow_stacks);
	free(p->slow_names);
	free(p->slow);
	free(p->fixed);
	free(p->fixed_names);
	free(p->slow_key_names);
	free(p->stream_keys);
	free(p->stream_names);
	memset(p, 0, sizeof(*p));
}
