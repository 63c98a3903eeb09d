// SPDX-License-Identifier: MIT
/* Recording in `attach` (`--record FILE`) and `record` (cli/record.c): the
 * header, snapshots, slow events, precise mode's table and the end record
 * written through agent/record (loopscope/record.h; docs/RECORD.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "attach.h"
#include "cli.h"

/* A recording stops at its first write error (one line says so); the
 * run goes on. */
void cli_attach_record_status(struct attach *a, int err)
{
	if (!err || a->rec_err)
		return;
	a->rec_err = err;
	fprintf(stderr, "loopscope: writing %s failed: %s; recording stopped\n", a->record_path,
		strerror(-err));
}

static void record_process(struct attach *a, pid_t pid)
{
	struct ls_py_target t;
	char comm[64] = "?", interp[64] = "", path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "r");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
	}
	if (!ls_py_resolve(pid, &t))
		snprintf(interp, sizeof(interp), "CPython %d.%d", t.major, t.minor);
	cli_attach_record_status(a, ls_record_put_process(a->rec, (uint32_t)pid, comm, interp));
}

/* `record -- CMD`: once CMD has exec'd (its executable is no longer ours),
 * its stacks can be read and its name recorded. Tried every loop wake-up
 * for 2 s after the release (a shared libpython maps a little after the
 * exec); true when done. */
bool cli_attach_cmd_resolve(struct attach *a, pid_t pid, uint64_t since_ns, uint64_t now_ns)
{
	struct stat self, target;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/exe", pid);
	if (stat("/proc/self/exe", &self) || stat(path, &target))
		return true; /* gone */
	if (self.st_dev == target.st_dev && self.st_ino == target.st_ino)
		return false; /* not exec'd yet */
	bool quiet = a->stacks.quiet;
	bool last = now_ns - since_ns > 2000000000ULL;

	a->stacks.quiet = !last;
	bool ok = cli_stacks_add(&a->stacks, pid);

	a->stacks.quiet = quiet;
	if (!ok && !last && a->stacks.enabled && a->stacks.loop)
		return false;
	if (a->rec)
		record_process(a, pid);
	return true;
}

/* Precise mode kept slow callback i: into the recording, names resolved. */
static void record_slow_callback(void *ctx, size_t i)
{
	struct attach *a = ctx;
	struct cli_precise *p = &a->precise;

	if (!a->rec || a->rec_err)
		return;
	cli_attach_record_status(a, ls_record_put_slow_callback(a->rec, &p->slow[i],
						     cli_precise_name(p, &p->slow[i].key),
						     &p->slow_names[i], &p->slow_stacks[i]));
}

/* Precise mode's callback table, taken once for the file and the report. */
static void record_callbacks(struct attach *a, uint64_t now_ns)
{
	struct cli_precise *p = &a->precise;
	const struct ls_cb_name **names;

	if (!p->pycb || cli_precise_fix(p))
		return;
	names = malloc((p->nfixed + 1) * sizeof(*names));
	if (!names) {
		cli_attach_record_status(a, -ENOMEM);
		return;
	}
	for (size_t i = 0; i < p->nfixed; i++)
		names[i] = cli_precise_name(p, &p->fixed[i].key);
	cli_attach_record_status(a, ls_record_put_callbacks(a->rec, now_ns, p->fixed, names, p->nfixed,
							    p->fix_from_ns, p->fix_to_ns));
	free(names);
}

int cli_attach_record_open(struct attach *a, bool cmd)
{
	struct ls_record_header h = { 0 };
	struct timespec real, mono;
	struct utsname u;
	int err;

	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	h.realtime_ns = (uint64_t)real.tv_sec * 1000000000ULL + (uint64_t)real.tv_nsec;
	h.monotonic_ns = (uint64_t)mono.tv_sec * 1000000000ULL + (uint64_t)mono.tv_nsec;
	h.start_ns = a->start_ns;
	h.threshold_ns = a->threshold_ns;
	h.interval_ns = a->interval_ns;
	h.mode = a->want_precise;
	h.npids = (uint32_t)a->npids;
	for (int i = 0; i < a->npids && i < LS_RECORD_MAX_PIDS; i++)
		h.pids[i] = (uint32_t)a->pids[i];
	if (!uname(&u)) {
		snprintf(h.host, sizeof(h.host), "%s", u.nodename);
		snprintf(h.kernel, sizeof(h.kernel), "%.64s %.63s", u.release, u.version);
	}
	snprintf(h.tool, sizeof(h.tool), "loopscope %s", LS_VERSION);
	err = ls_record_open(a->record_path, &h, &a->rec);
	if (err) {
		fprintf(stderr, "loopscope: cannot create %s: %s\n", a->record_path, strerror(-err));
		return err;
	}
	for (int i = 0; i < a->npids && !cmd; i++)
		record_process(a, a->pids[i]);
	for (int i = 0; i < a->precise.ntargets; i++)
		cli_attach_record_status(a, ls_record_put_precise_target(a->rec, (uint32_t)a->precise.targets[i].pid,
							      a->precise.targets[i].major,
							      a->precise.targets[i].minor,
							      a->precise.targets[i].route));
	a->precise.on_kept = record_slow_callback;
	a->precise.on_kept_ctx = a;
	return 0;
}

void cli_attach_record_snapshot(struct attach *a, const struct ls_thread_view *v, size_t n,
			    uint64_t now_ns)
{
	if (!a->rec || a->rec_err)
		return;
	for (size_t i = 0; i < n; i++)
		if (v[i].polls)
			cli_attach_thread_name(a, v[i].tgid, v[i].tid); /* recorded on first sight */
	cli_attach_record_status(a, ls_record_put_snapshot(a->rec, now_ns, v, n));
	cli_attach_record_status(a, ls_record_flush(a->rec)); /* a crash loses at most this interval */
}

void cli_attach_record_polls(const struct ls_poll_event *p, size_t n, void *ctx)
{
	struct attach *a = ctx;

	if (a->rec && !a->rec_err)
		cli_attach_record_status(a, ls_record_put_polls(a->rec, p, n));
}

/* A stream key's name (ls_record_cb_name_fn): as the table names it. */
static const struct ls_cb_name *stream_name(const struct ls_cb_key *k, void *ctx)
{
	struct attach *a = ctx;

	return cli_precise_name(&a->precise, k);
}

void cli_attach_record_cbs(const struct ls_callback_event *e, size_t n, void *ctx)
{
	struct attach *a = ctx;

	if (a->rec && !a->rec_err)
		cli_attach_record_status(a, ls_record_put_callback_runs(a->rec, e, n, stream_name, a));
}

/* The end record (kept in a->rend: the report prints the same counters
 * as the file holds), then the file closed. */
void cli_attach_record_end(struct attach *a, struct ls_loop *loop, uint64_t now_ns)
{
	struct ls_record_end e = { 0 };
	int err;

	record_callbacks(a, now_ns); /* its slow callbacks still queued go first */
	e.end_ns = now_ns;
	e.lost_events = ls_loop_lost_events(loop);
	e.slow_not_kept = a->slow_dropped;
	e.stacks_on = a->stacks.enabled && a->stacks.loop;
	e.stacks_enabled = a->stacks.enabled;
	e.lost_callback_events = a->precise.replay_lost;
	e.slow_callbacks_not_kept = a->precise.slow_dropped;
	e.offcpu_unseen = a->offcpu_unseen;
	e.every_poll = a->every_poll;
	if (a->every_poll)
		e.lost_polls = a->polls_lost = ls_loop_lost_polls(loop);
	/* No precise session (-- CMD, no CPython target): no stream either. */
	a->every_callback = a->every_callback && a->precise.pycb;
	e.every_callback = a->every_callback;
	if (a->every_callback) {
		uint64_t dropped = 0;

		ls_record_callback_runs(a->rec, &dropped);
		e.lost_callbacks = dropped + (a->precise.pycb ? ls_pycb_lost_callbacks(a->precise.pycb) : 0);
		a->cbs_lost = e.lost_callbacks;
	}
	if (e.stacks_on) {
		e.stack_walks = ls_loop_stack_walks(loop, &e.stack_walk_errors);
		e.stack_dropped = a->stacks.col ? ls_slowstack_dropped(a->stacks.col) : 0;
		e.stack_lost = ls_loop_lost_stack_events(loop);
		e.stack_procs = (uint32_t)a->stacks.nprocs;
	}
	e.npids = (uint32_t)a->npids;
	for (int i = 0; i < a->npids && i < LS_RECORD_MAX_PIDS; i++) {
		e.pids[i] = (uint32_t)a->pids[i];
		e.exited[i] = a->exited[i];
		e.exited_at_ns[i] = a->exited_at_ns[i];
	}
	a->rend = e;
	a->rend_used = true;
	if (!a->rec_err)
		cli_attach_record_status(a, ls_record_put_end(a->rec, &e));
	a->polls_recorded = ls_record_polls(a->rec);
	a->cbs_recorded = ls_record_callback_runs(a->rec, NULL);
	err = ls_record_close(a->rec);
	a->rec = NULL;
	if (!a->rec_err)
		cli_attach_record_status(a, err);
	if (!a->rec_err && !a->json)
		fprintf(stderr, "loopscope: recorded to %s ('loopscope report %s' prints it)\n",
			a->record_path, a->record_path);
}

/* Without a report (`record`): the targets in which a loop thread was seen. */
int cli_attach_record_seen(struct attach *a, const struct ls_thread_view *v, size_t n)
{
	bool seen[MAX_PIDS] = { false };
	int nseen = 0;

	for (size_t i = 0; i < n; i++) {
		int pi = -1;

		for (int k = 0; k < a->npids; k++)
			if ((uint32_t)a->pids[k] == v[i].tgid)
				pi = k;

		if (v[i].polls && pi >= 0 && !seen[pi]) {
			seen[pi] = true;
			nseen++;
		}
	}
	return nseen;
}

