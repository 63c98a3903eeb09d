// SPDX-License-Identifier: MIT
/* CPython precise mode in `loopscope attach`: resolution messages, slow
 * callback lines, top-callback tables. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && !strcmp(s + n - t, tail);
}

/* A pure-Python Task's step (asyncio.tasks._PyTask, or any Task when the C
 * _asyncio module is missing) reaches context_run as the bound method
 * Task.__step, which does not say which coroutine it drives (the Task keeps
 * it in its instance dict, laid out differently in every version). Its
 * stack does: the frame called by the innermost Task.__step* frame of
 * asyncio/tasks.py (Task.__step, or __step_run_and_handle_result on 3.12+)
 * is the coroutine's. Fills *out with its name, file and first line; false
 * when k is not such a step or no stack shows it. */
static bool py_task_step_name(const struct ls_cb_name *nm, const struct ls_stack_summary *st,
			      struct ls_cb_name *out)
{
	if (!ends_with(nm->qualname, "Task.__step") || !ends_with(nm->filename, "asyncio/tasks.py"))
		return false;
	for (size_t s = 0; st && s < st->n; s++) {
		const struct ls_stack_agg *a = &st->stacks[s];

		for (int i = 1; i < a->nframes; i++) {
			const struct ls_pyframe *f = &a->frames[i], *coro = &a->frames[i - 1];

			/* 3.11+ code has qualnames ("Task.__step"); before,
			 * only names ("__step"). */
			if ((strncmp(f->qualname, "Task.__step", 11) &&
			     strncmp(f->qualname, "__step", 6)) ||
			    !ends_with(f->filename, "asyncio/tasks.py"))
				continue;
			snprintf(out->qualname, sizeof(out->qualname), "%s", coro->qualname);
			snprintf(out->filename, sizeof(out->filename), "%s", coro->filename);
			out->firstlineno = coro->firstlineno;
			return true;
		}
	}
	return false;
}

/* Whether frame f runs a loop rather than a callback: asyncio.run and its
 * Runner (asyncio/runners.py), uvloop.run, BaseEventLoop.run_forever /
 * run_until_complete / _run_once, Handle._run (asyncio/events.py). uvloop's
 * own loop is Cython: no frame of it shows. */
static bool driver_frame(const struct ls_pyframe *f)
{
	const char *q = strrchr(f->qualname, '.');

	q = q ? q + 1 : f->qualname;
	return ends_with(f->filename, "asyncio/runners.py") ||
	       ends_with(f->filename, "uvloop/__init__.py") ||
	       (ends_with(f->filename, "asyncio/base_events.py") &&
		(!strcmp(q, "run_forever") || !strcmp(q, "run_until_complete") ||
		 !strcmp(q, "_run_once"))) ||
	       (ends_with(f->filename, "asyncio/events.py") && !strcmp(q, "_run"));
}

/* A callback that C code ran between PyContext_Enter and PyContext_Exit
 * (uvloop's Handles: LS_CB_CONTEXT) is not passed to either. Its stack
 * names it: the frame called by the innermost loop-driving frame (or, when
 * the loop was started from module level, by the outermost frame) is the
 * callback's, or its coroutine's for a Task step. */
static bool context_name(const struct ls_stack_summary *st, struct ls_cb_name *out)
{
	const struct ls_stack_agg *a = NULL;

	for (size_t s = 0; st && s < st->n && !a; s++)
		if (st->stacks[s].nframes >= 2 && !st->stacks[s].truncated)
			a = &st->stacks[s];
	if (!a)
		return false;
	int callee = a->nframes - 2; /* inside the outermost frame */

	for (int i = 1; i < a->nframes; i++) {
		if (driver_frame(&a->frames[i])) {
			callee = i - 1;
			break;
		}
	}
	if (driver_frame(&a->frames[callee]))
		return false;
	snprintf(out->qualname, sizeof(out->qualname), "%s", a->frames[callee].qualname);
	snprintf(out->filename, sizeof(out->filename), "%s", a->frames[callee].filename);
	out->firstlineno = a->frames[callee].firstlineno;
	return true;
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

/* "; stacks: 150.1 ms blocked in clock_nanosleep <- f app.py:3 <- ..." for
 * a slow callback with stacks, "" without. */
static const char *stack_text(const struct ls_stack_summary *st, int max_frames, char *buf,
			      size_t len)
{
	struct ls_period_times t;
	int n;

	buf[0] = '\0';
	if (!st || !st->n)
		return buf;
	ls_slowstack_times(st, &t);
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
				context_name(&st, &p->slow_names[p->nslow]);
			else
				py_task_step_name(name_of(p, &e->key), &st, &p->slow_names[p->nslow]);
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
	if (p->json) {
		json_object *o = callback_json_named(&key, nm);

		json_object_object_add(o, "type", json_object_new_string("slow_callback"));
		json_object_object_add(o, "tid", json_object_new_int((int)e->tid));
		cli_jadd_u64(o, "start_ns", e->start_ns);
		cli_jadd_u64(o, "duration_ns", e->duration_ns);
		if (p->stacks)
			json_object_object_add(o, "stacks", ls_slowstack_json(kept));
		cli_print_json(o);
	} else if (!p->quiet) {
		printf("%s  SLOW callback %s  %s  pid %u tid %u%s\n",
		       cli_clock(p->mono_to_real_ns, e->start_ns + e->duration_ns, b1, sizeof(b1)),
		       ls_pyname_format(&key, nm, full, sizeof(full)),
		       ls_duration_format(e->duration_ns, b2, sizeof(b2)), e->key.tgid, e->tid,
		       stack_text(kept, 4, why, sizeof(why)));
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

int cli_precise_add_resolved(struct cli_precise *p, const struct ls_py_target *t)
{
	int err;

	if (!p->pycb) {
		struct ls_pycb_opts o = {
			.slow_threshold_ns = p->threshold_ns,
			.on_slow_callback = on_slow_callback,
			.ctx = p,
			.btf_path = p->btf_path,
		};

		err = ls_pycb_open(&o, &p->pycb);
		if (err)
			return err;
		p->names = ls_pyname_cache_new();
		p->targets = calloc(CLI_MAX_TARGETS, sizeof(*p->targets));
		if (!p->names || !p->targets)
			return -ENOMEM;
	}
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
	if (p->pycb)
		while (ls_pycb_poll(p->pycb, 0) > 0)
			;
}

static int by_sum(const void *a, const void *b)
{
	const struct ls_cb_entry *x = a, *y = b;

	return x->stats.duration.sum < y->stats.duration.sum ? 1 :
	       x->stats.duration.sum > y->stats.duration.sum ? -1 : 0;
}

static int by_max(const void *a, const void *b)
{
	const struct ls_cb_entry *x = a, *y = b;

	return x->stats.duration.max < y->stats.duration.max ? 1 :
	       x->stats.duration.max > y->stats.duration.max ? -1 : 0;
}

static void print_top(struct cli_precise *p, struct ls_cb_entry *v, size_t n, uint32_t pid,
		      const char *title)
{
	char b[4][16], full[600];
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
		const struct ls_hist *h = &v[i].stats.duration;

		if (v[i].key.tgid != pid)
			continue;
		shown++;
		printf("      %8llu %10s %10s %10s %10s  %s\n", (unsigned long long)h->count,
		       ls_duration_format(h->sum, b[0], 16),
		       ls_duration_format(ls_hist_percentile(h, 50), b[1], 16),
		       ls_duration_format(ls_hist_percentile(h, 99), b[2], 16),
		       ls_duration_format(h->max, b[3], 16),
		       ls_pyname_format(&v[i].key, name_of(p, &v[i].key), full, sizeof(full)));
	}
}

void cli_precise_report(struct cli_precise *p, json_object *jr)
{
	struct ls_cb_entry *v = NULL;
	json_object *jcb = NULL, *jslow = NULL;
	char b1[32], b2[32], full[600];
	size_t n = 0;

	if (!p->pycb)
		return;
	if (ls_pycb_snapshot(p->pycb, &v, &n)) {
		fprintf(stderr, "loopscope: reading callback stats failed\n");
		return;
	}
	cli_precise_poll(p);
	if (jr) {
		jcb = json_object_new_array();
		jslow = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			json_object *o = callback_json(p, &v[i].key);

			json_object_object_add(o, "duration", cli_hist_json(&v[i].stats.duration));
			json_object_array_add(jcb, o);
		}
		for (size_t i = 0; i < p->nslow; i++) {
			struct ls_cb_key key;
			const struct ls_cb_name *nm = slow_name(p, i, &key);
			json_object *o = callback_json_named(&key, nm);

			json_object_object_add(o, "tid", json_object_new_int((int)p->slow[i].tid));
			cli_jadd_u64(o, "start_ns", p->slow[i].start_ns);
			cli_jadd_u64(o, "duration_ns", p->slow[i].duration_ns);
			if (p->stacks)
				json_object_object_add(o, "stacks", ls_slowstack_json(&p->slow_stacks[i]));
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
		json_object_object_add(jr, "slow_callbacks", jslow);
		cli_jadd_u64(jr, "slow_callbacks_not_kept", p->slow_dropped);
		cli_jadd_u64(jr, "lost_callback_events", ls_pycb_lost_events(p->pycb));
		free(v);
		return;
	}
	for (int t = 0; t < p->ntargets; t++) {
		uint32_t pid = (uint32_t)p->targets[t].pid;

		printf("  callbacks of pid %u (CPython %d.%d, precise mode):\n", pid,
		       p->targets[t].major, p->targets[t].minor);
		qsort(v, n, sizeof(*v), by_sum);
		print_top(p, v, n, pid, "by total time");
		qsort(v, n, sizeof(*v), by_max);
		print_top(p, v, n, pid, "by max");
	}
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

		printf("    %s  %-60s %10s  pid %u tid %u%s\n",
		       cli_clock(p->mono_to_real_ns, e->start_ns, b1, sizeof(b1)),
		       ls_pyname_format(&key, nm, full, sizeof(full)),
		       ls_duration_format(e->duration_ns, b2, sizeof(b2)), e->key.tgid, e->tid,
		       stack_text(&p->slow_stacks[i], 8, why, sizeof(why)));
	}
	if (shown < p->nslow)
		printf("    (the %zu longest shown; %zu shorter ones: --json lists every one)\n", shown,
		       p->nslow - shown);
	if (ls_pycb_lost_events(p->pycb))
		printf("  LOST %llu slow callback events: the ring buffer was full\n",
		       (unsigned long long)ls_pycb_lost_events(p->pycb));
	free(v);
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
	memset(p, 0, sizeof(*p));
}
