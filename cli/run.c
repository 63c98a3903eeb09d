// SPDX-License-Identifier: MIT
/*
 * `loopscope run [gates] [reports] -- CMD ARGS...`: start CMD under
 * monitoring, follow every descendant (in the kernel, at fork), resolve
 * CPython in each process that execs, wait for CMD, apply the gates, write
 * the reports, exit with CMD's code or the gate's.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <bpf/libbpf.h>

#include "cli.h"
#include "loopscope/abi/loop_events.h"
#include "loopscope/busywhy.h"
#include "loopscope/cbname.h"
#include "loopscope/gate.h"
#include "loopscope/procfs.h"
#include "loopscope/run.h"

/* How long after an exec a process is retried for a libpython mapping:
 * the dynamic loader maps it after the exec event. */
#define RESOLVE_WINDOW_NS (500ULL * 1000000)
#define RESOLVE_RETRY_NS (5ULL * 1000000)
/* How often exited processes are detached from precise mode. */
#define REAP_EVERY_NS (200ULL * 1000000)

struct proc_state {
	uint64_t resolve_until_ns; /* 0: nothing to try */
	uint64_t next_try_ns;
	/* CLOCK_MONOTONIC ns when precise mode's probes were in place (0: not
	 * precise): busy periods that began before it are not covered by
	 * callback events and stay slow events of their own. */
	uint64_t precise_since_ns;
	bool gone;
};

struct run {
	struct ls_run_result *r;
	struct proc_state st[LS_RUN_MAX_PROCS];
	struct cli_precise precise;
	struct cli_stacks stacks;
	const char *json_out, *junit_out;
	bool annotations, light, quiet;
	uint64_t threshold_ns;
	pid_t child;
};

static volatile sig_atomic_t child_pid_for_signals;
static volatile sig_atomic_t got_signal;

/* Forward SIGINT/SIGTERM sent to us by a process (kill, CI runners) to
 * CMD; one typed at the terminal (si_code SI_KERNEL) already went to CMD's
 * process group, which CMD shares with us. */
static void on_signal(int sig, siginfo_t *info, void *uc)
{
	got_signal = sig;
	if (child_pid_for_signals > 0 && info->si_code != SI_KERNEL)
		kill(child_pid_for_signals, sig);
}

static struct ls_run_process *proc_find(struct ls_run_result *r, pid_t pid)
{
	for (int i = 0; i < r->nprocs; i++)
		if (r->procs[i].pid == pid)
			return &r->procs[i];
	return NULL;
}

static struct ls_run_process *proc_add(struct run *run, pid_t pid, pid_t ppid)
{
	struct ls_run_result *r = run->r;
	struct ls_run_process *p = proc_find(r, pid);

	if (p)
		return p;
	if (r->nprocs == LS_RUN_MAX_PROCS)
		return NULL;
	p = &r->procs[r->nprocs];
	memset(p, 0, sizeof(*p));
	memset(&run->st[r->nprocs], 0, sizeof(run->st[0]));
	p->pid = pid;
	p->ppid = ppid;
	ls_proc_cmdline(pid, p->cmdline, sizeof(p->cmdline));
	r->nprocs++;
	return p;
}

static void on_proc(const struct ls_proc_event *e, void *ctx)
{
	struct run *run = ctx;
	struct ls_run_process *p;
	uint64_t now = ls_sys_now_ns();

	p = proc_add(run, (pid_t)e->tgid, (pid_t)e->ppid);
	if (!p)
		return;
	struct proc_state *st = &run->st[p - run->r->procs];
	struct ls_run_process *parent = proc_find(run->r, (pid_t)e->ppid);

	if (e->type == LS_EV_EXEC) {
		ls_proc_cmdline(p->pid, p->cmdline, sizeof(p->cmdline));
		cli_stacks_remove(&run->stacks, p->pid); /* resolved again below */
	}
	/* A new program, or a fork of a Python process that does not exec
	 * (multiprocessing's fork, pre-fork servers): the parent's uprobes are
	 * filtered to the parent's pid, the child needs its own. */
	if (e->type == LS_EV_EXEC || (parent && parent->python[0])) {
		st->resolve_until_ns = now + RESOLVE_WINDOW_NS;
		st->next_try_ns = now;
	}
}

static void add_slow(struct ls_run_result *r, enum ls_run_slow_kind kind, pid_t pid, pid_t tid,
		     uint64_t start_ns, uint64_t duration_ns)
{
	struct ls_run_slow *s;

	if (r->nslow == LS_RUN_MAX_SLOW) {
		r->slow_not_kept++;
		return;
	}
	s = &r->slow[r->nslow++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->pid = pid;
	s->tid = tid;
	s->start_ns = start_ns;
	s->duration_ns = duration_ns;
	snprintf(s->name, sizeof(s->name), "busy period");
}

/* The culprit stack (the heaviest with frames) into s->frames, whole
 * frames only (--allow matches any of them). */
static void put_culprit_frames(struct ls_run_slow *s, const struct ls_stack_summary *st)
{
	size_t pos = 0;

	for (size_t k = 0; k < st->n; k++) {
		const struct ls_stack_agg *a = &st->stacks[k];

		if (!a->nframes)
			continue;
		for (uint16_t i = 0; i < a->nframes; i++) {
			const struct ls_pyframe *f = &a->frames[i];
			char one[700];
			int n = snprintf(one, sizeof(one), "%s\t%s\t%d\n", f->qualname, f->filename,
					 f->line > 0 ? f->line : f->firstlineno);

			if (n <= 0 || pos + (size_t)n >= sizeof(s->frames))
				break;
			memcpy(s->frames + pos, one, (size_t)n + 1);
			pos += (size_t)n;
		}
		return;
	}
}

/* What the stacks of a slow event say: why, the test, and for a busy
 * period (which has no name of its own) the culprit: the innermost frame
 * of its heaviest stack, with the line it was on. */
static void explain(struct ls_run_slow *s, const struct ls_stack_summary *st,
		    const struct ls_period_times *t, bool exact)
{
	if (exact) {
		s->times_known = true;
		s->on_cpu_ns = t->on_cpu_ns;
		s->blocked_ns = t->blocked_ns;
		s->runnable_ns = t->runnable_ns;
		if (s->kind == LS_RUN_SLOW_CALLBACK && !st->n)
			ls_slowstack_text(NULL, t, 6, s->why, sizeof(s->why));
	}
	if (!st->n)
		return;
	ls_slowstack_text(st, t, 6, s->why, sizeof(s->why));
	if (st->has_app) {
		snprintf(s->app_function, sizeof(s->app_function), "%s", st->app.qualname);
		snprintf(s->app_file, sizeof(s->app_file), "%s", st->app.filename);
		s->app_line = st->app.line > 0 ? st->app.line : st->app.firstlineno;
	}
	put_culprit_frames(s, st);
	if (!s->test[0])
		ls_cbname_pytest_from_stack(st, s->test, sizeof(s->test));
	if (s->kind == LS_RUN_SLOW_BUSY && st->stacks[0].nframes) {
		const struct ls_pyframe *f = &st->stacks[0].frames[0];

		snprintf(s->name, sizeof(s->name), "busy period in %s()", f->qualname);
		snprintf(s->file, sizeof(s->file), "%s", f->filename);
		s->line = f->line > 0 ? f->line : f->firstlineno;
	}
}

static void on_slow_busy(const struct ls_slow_busy_event *e, void *ctx)
{
	struct run *run = ctx;
	struct ls_stack_summary st;
	char comm[16];
	struct ls_period_times t;

	ls_slowstack_busy_times(e, &t);

	add_slow(run->r, LS_RUN_SLOW_BUSY, (pid_t)e->tgid, (pid_t)e->tid, e->start_ns,
		 e->duration_ns);
	ls_target_thread_name((pid_t)e->tgid, (pid_t)e->tid, comm, sizeof(comm));
	cli_stacks_take(&run->stacks, e->tgid, e->tid, e->start_ns, e->start_ns + e->duration_ns,
			false, true, comm, &st);
	if (run->r->nslow && run->r->slow[run->r->nslow - 1].start_ns == e->start_ns)
		explain(&run->r->slow[run->r->nslow - 1], &st, &t, true);
	ls_slowstack_summary_free(&st);
}

/* Try to resolve CPython in processes that exec'd recently. */
static void resolve_pending(struct run *run)
{
	uint64_t now = ls_sys_now_ns();

	for (int i = 0; i < run->r->nprocs; i++) {
		struct proc_state *st = &run->st[i];
		struct ls_run_process *p = &run->r->procs[i];
		struct ls_py_target t;
		int err, resolve_err;

		if (!st->resolve_until_ns || now < st->next_try_ns)
			continue;
		if (run->light) {
			resolve_err = ls_py_resolve(p->pid, &t);
			err = 1; /* epoll level by choice */
		} else {
			err = cli_precise_add(&run->precise, p->pid, true, &resolve_err, &t);
		}
		if (resolve_err == -ENOEXEC && now < st->resolve_until_ns) {
			st->next_try_ns = now + RESOLVE_RETRY_NS; /* libpython not mapped yet */
			continue;
		}
		st->resolve_until_ns = 0;
		if (!resolve_err) {
			snprintf(p->python, sizeof(p->python), "%d.%d", t.major, t.minor);
			cli_stacks_add_resolved(&run->stacks, &t);
		}
		if (err == 0) {
			p->precise = true;
			st->precise_since_ns = ls_sys_now_ns();
		}
		else if (err < 0)
			fprintf(stderr, "loopscope: loading precise-mode BPF programs failed: %s\n",
				strerror(-err));
	}
}

/* Fold one loop thread's figures (a view copied at now_ns) into its
 * ls_run_process, when that process is selected by `only` (NULL: all):
 * a loop thread when it polled since the run began, and the worst lag
 * p99. */
static void fold_thread(struct run *run, const struct ls_thread_view *v, uint64_t now_ns,
			const bool *only)
{
	struct ls_run_result *r = run->r;
	struct ls_run_process *p = proc_find(r, (pid_t)v->tgid);
	struct ls_thread_window w;
	uint64_t p99;

	if (!p || (only && !only[p - r->procs]))
		return;
	ls_stats_window(v, now_ns, NULL, r->start_ns, &w);
	if (!w.polls)
		return;
	p->loop_threads++;
	p99 = ls_hist_percentile(&w.lag, 99);
	if (w.lag.count && p99 >= p->lag_p99_ns) {
		p->lag_p99_ns = p99;
		p->lag_p99_tid = w.tid;
	}
}

/* Fold the loop threads of the processes selected by `only` (NULL: all)
 * from one snapshot into their ls_run_process. */
static void fold_loop_stats(struct run *run, struct ls_loop *loop, const bool *only)
{
	struct ls_thread_view *v = NULL;
	size_t n = 0;
	uint64_t now;

	if (ls_loop_snapshot(loop, &v, &n, &now))
		return;
	for (size_t i = 0; i < n; i++)
		fold_thread(run, &v[i], now, only);
	free(v);
}

/* ls_thread_gone_fn of ls_loop_prune (ctx: the run): an exited thread of a
 * process that lives on is folded as it leaves the table, so a process
 * that churns loop threads neither fills the table nor loses them from
 * the report. Its figures are final: the copy's time is now. */
static void fold_gone_thread(const struct ls_thread_view *v, void *ctx)
{
	fold_thread(ctx, v, ls_sys_now_ns(), NULL);
}

/* Processes that have exited: their loop figures are folded into the
 * result, then they leave the kernel's target map (and precise mode), so a
 * test suite that starts hundreds of processes does not fill the maps. */
static void reap_gone(struct run *run, struct ls_loop *loop)
{
	bool gone[LS_RUN_MAX_PROCS] = { false };
	int ngone = 0;

	for (int i = 0; i < run->r->nprocs; i++) {
		struct ls_run_process *p = &run->r->procs[i];

		if (run->st[i].gone || p->pid == run->child || ls_target_alive(p->pid) == 0)
			continue;
		gone[i] = run->st[i].gone = true;
		run->st[i].resolve_until_ns = 0;
		ngone++;
	}
	if (!ngone)
		return;
	fold_loop_stats(run, loop, gone);
	for (int i = 0; i < run->r->nprocs; i++) {
		if (!gone[i])
			continue;
		ls_loop_remove_target(loop, run->r->procs[i].pid);
		if (run->r->procs[i].precise)
			cli_precise_remove(&run->precise, run->r->procs[i].pid);
		/* Not its stacks: slow events of it may still be in the ring. */
	}
}

/* pytest-asyncio runs each async test as a Task of the test coroutine, so a
 * slow Task step of a test function is that test. */
static void pytest_name(const struct ls_cb_key *k, const struct ls_cb_name *nm, char *out,
			size_t len)
{
	out[0] = '\0';
	if (k->kind == LS_CB_TASK)
		ls_cbname_pytest_node(nm->filename, nm->qualname, out, len);
}

/* Whether a slow callback of precise mode lies inside busy period `s`
 * (same thread): then the callback stands for it. */
static bool slow_callback_within(const struct cli_precise *pr, const struct ls_run_slow *s)
{
	for (size_t i = 0; i < pr->nslow; i++) {
		const struct ls_slow_callback_event *e = &pr->slow[i];

		if ((pid_t)e->tid == s->tid && e->start_ns >= s->start_ns &&
		    e->start_ns < s->start_ns + s->duration_ns)
			return true;
	}
	return false;
}

/* Collect slow callbacks (precise processes) in place of their busy
 * periods, the loop threads' lag, then the verdicts. */
static void finish(struct run *run, struct ls_loop *loop)
{
	struct ls_run_result *r = run->r;
	struct cli_precise *pr = &run->precise;
	int kept = 0;

	/* A precise process's slow busy periods are its slow callbacks, once
	 * its probes were in place: a busy period that began before (a short
	 * test whose set-up lost the race on a loaded CI machine) has no
	 * callback event and stays a slow event of its own. */
	for (int i = 0; i < r->nslow; i++) {
		struct ls_run_process *p = proc_find(r, r->slow[i].pid);

		if (!(p && p->precise) ||
		    (r->slow[i].start_ns < run->st[p - r->procs].precise_since_ns &&
		     !slow_callback_within(pr, &r->slow[i])))
			r->slow[kept++] = r->slow[i];
	}
	r->nslow = kept;
	for (size_t i = 0; i < pr->nslow && r->nslow < LS_RUN_MAX_SLOW; i++) {
		const struct ls_slow_callback_event *e = &pr->slow[i];
		struct ls_cb_key key;
		const struct ls_cb_name *nm = cli_precise_slow_name(pr, i, &key);
		struct ls_run_slow *s;

		add_slow(r, LS_RUN_SLOW_CALLBACK, (pid_t)e->key.tgid, (pid_t)e->tid, e->start_ns,
			 e->duration_ns);
		s = &r->slow[r->nslow - 1];
		ls_pyname_format(&key, nm, s->name, sizeof(s->name));
		snprintf(s->file, sizeof(s->file), "%s", nm->filename);
		s->line = nm->firstlineno;
		pytest_name(&key, nm, s->test, sizeof(s->test));
		if (pr->slow_stacks) {
			struct ls_period_times t;
			bool exact = ls_callback_times(e, &pr->slow_stacks[i], &t);

			explain(s, &pr->slow_stacks[i], &t, exact);
		}
	}
	r->slow_not_kept += (long)pr->slow_dropped;
	r->lost_events = ls_loop_lost_events(loop) + (pr->pycb ? ls_pycb_lost_events(pr->pycb) : 0);

	{
		/* Those still in the map: every one not folded when it exited. */
		bool left[LS_RUN_MAX_PROCS];

		for (int i = 0; i < r->nprocs; i++)
			left[i] = !run->st[i].gone;
		fold_loop_stats(run, loop, left);
	}
	ls_gate_decide(r);
}

int cli_run(int argc, char **argv)
{
	struct run run = { 0 };
	struct cli_run_opts o;
	struct ls_loop_opts lopts = { 0 };
	struct ls_loop *loop = NULL;
	struct sigaction sa = { 0 };
	int go[2] = { -1, -1 }, execerr[2] = { -1, -1 }, status, err, exec_errno = 0;
	char why[256];
	pid_t child = -1;
	int ret = LS_RUN_EXIT_ERROR;
	uint64_t next_reap_ns = 0;

	run.r = calloc(1, sizeof(*run.r));
	if (!run.r) {
		fprintf(stderr, "loopscope: out of memory\n");
		return LS_RUN_EXIT_ERROR;
	}
	err = cli_run_parse(argc, argv, run.r, &o);
	if (err) {
		free(run.r);
		return err > 0 ? LS_EXIT_OK : LS_RUN_EXIT_ERROR;
	}
	run.json_out = o.json_out;
	run.junit_out = o.junit_out;
	run.annotations = o.annotations;
	run.threshold_ns = o.threshold_ns;
	run.light = o.common.mode == CLI_MODE_LIGHT;
	run.quiet = o.common.quiet;
	run.stacks.enabled = o.common.stacks;
	run.stacks.folded_path = o.common.folded_path;
	run.stacks.app_paths = o.common.app_paths;
	run.stacks.napp_paths = o.common.napp_paths;
	/* Fail before CMD runs when a report cannot be written. */
	const char *outs[] = { run.json_out, run.junit_out };
	for (size_t i = 0; i < 2; i++) {
		if (outs[i] && (err = ls_run_check_writable(outs[i]))) {
			fprintf(stderr, "loopscope: cannot write report %s: %s\n", outs[i], strerror(-err));
			goto cleanup;
		}
	}
	err = ls_sys_check(NULL, why, sizeof(why));
	if (err) {
		fprintf(stderr, "loopscope: %s\n", why);
		goto cleanup;
	}
	libbpf_set_print(cli_libbpf_print);
	lopts.slow_threshold_ns = run.threshold_ns;
	lopts.on_slow_busy = on_slow_busy;
	lopts.on_proc = on_proc;
	lopts.follow_children = true;
	lopts.ctx = &run;
	run.stacks.quiet = true; /* the report says what it has */
	if (cli_stacks_init(&run.stacks)) {
		fprintf(stderr, "loopscope: out of memory\n");
		goto cleanup;
	}
	cli_stacks_loop_opts(&run.stacks, run.threshold_ns, &lopts);
	err = ls_loop_open(&lopts, &loop);
	if (err) {
		fprintf(stderr, "loopscope: loading BPF programs failed: %s\n", strerror(-err));
		goto cleanup;
	}
	run.precise.quiet = true; /* no lines on stdout: CMD owns it */
	run.precise.quiet_resolve = run.quiet;
	run.precise.threshold_ns = run.threshold_ns;
	run.precise.loop = loop;
	cli_stacks_opened(&run.stacks, loop);
	run.precise.stacks = run.stacks.enabled ? &run.stacks : NULL;
	if (!run.light && (err = cli_precise_open(&run.precise))) {
		fprintf(stderr, "loopscope: loading precise-mode BPF programs failed: %s; "
			"epoll level only\n", strerror(-err));
		run.light = true;
	}

	if (pipe2(go, O_CLOEXEC) || pipe2(execerr, O_CLOEXEC)) {
		fprintf(stderr, "loopscope: pipe: %s\n", strerror(errno));
		goto cleanup;
	}
	child = fork();
	if (child < 0) {
		fprintf(stderr, "loopscope: fork: %s\n", strerror(errno));
		goto cleanup;
	}
	if (child == 0) {
		char c;

		/* Wait until we are a target: nothing CMD does is missed. */
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(LS_RUN_EXIT_ERROR);
		execvp(argv[optind], argv + optind);
		err = errno;
		(void)!write(execerr[1], &err, sizeof(err));
		_exit(LS_RUN_EXIT_NOT_FOUND);
	}
	close(go[0]);
	go[0] = -1;
	close(execerr[1]);
	execerr[1] = -1;
	run.child = child;
	proc_add(&run, child, getpid());
	err = ls_loop_add_target(loop, child);
	if (err) {
		fprintf(stderr, "loopscope: cannot monitor CMD: %s\n", strerror(-err));
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		goto cleanup;
	}
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO;
	child_pid_for_signals = child;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	run.r->start_ns = ls_sys_now_ns();
	(void)!write(go[1], "g", 1);
	close(go[1]);
	go[1] = -1;
	if (read(execerr[0], &exec_errno, sizeof(exec_errno)) == sizeof(exec_errno)) {
		fprintf(stderr, "loopscope: %s: %s\n", argv[optind], strerror(exec_errno));
		waitpid(child, NULL, 0);
		ret = LS_RUN_EXIT_NOT_FOUND;
		goto cleanup;
	}

	for (;;) {
		pid_t w = waitpid(child, &status, WNOHANG);

		if (w == child)
			break;
		/* Ring buffer reads wake at once on an event: names of a slow
		 * callback are read while its process still runs. */
		ls_loop_poll(loop, 10);
		cli_precise_poll(&run.precise);
		resolve_pending(&run);
		/* A /proc read per process: not at every turn of a 10 ms loop. */
		if (ls_sys_now_ns() >= next_reap_ns) {
			reap_gone(&run, loop);
			/* Exited threads of live processes out of the kernel's
			 * table (attach does the same each interval). */
			ls_loop_prune(loop, fold_gone_thread, &run);
			next_reap_ns = ls_sys_now_ns() + REAP_EVERY_NS;
			cli_stacks_prune(&run.stacks, ls_sys_now_ns());
		}
	}
	child_pid_for_signals = 0;
	run.r->end_ns = ls_sys_now_ns();
	ls_loop_drain(loop, 300);
	cli_precise_poll(&run.precise);
	if (WIFSIGNALED(status)) {
		run.r->cmd_exit = -1;
		run.r->cmd_signal = WTERMSIG(status);
	} else {
		run.r->cmd_exit = WEXITSTATUS(status);
	}
	finish(&run, loop);
	if (run.r->cmd_signal)
		ret = 128 + run.r->cmd_signal;
	else if (run.r->cmd_exit)
		ret = run.r->cmd_exit;
	else if (run.r->slow_gate_failed || run.r->lag_gate_failed)
		ret = LS_RUN_EXIT_GATE;
	else
		ret = LS_EXIT_OK;
	run.r->exit_code = ret;
	ls_run_print_summary(run.r, stderr);
	if (!run.light) {
		bool any = false;

		for (int i = 0; i < run.r->nprocs; i++)
			any |= run.r->procs[i].precise;
		if (!any)
			fprintf(stderr, "loopscope: no Python process in precise mode: gates applied at "
				"epoll level (busy periods, loop lag)\n");
	}
	if (run.annotations)
		ls_run_print_annotations(run.r, stdout);
	if (cli_stacks_write_folded(&run.stacks))
		ret = LS_RUN_EXIT_ERROR;
	if (run.json_out && (err = ls_run_write_json(run.r, run.json_out))) {
		fprintf(stderr, "loopscope: writing %s: %s\n", run.json_out, strerror(-err));
		ret = LS_RUN_EXIT_ERROR;
	}
	if (run.junit_out && (err = ls_run_write_junit(run.r, run.junit_out))) {
		fprintf(stderr, "loopscope: writing %s: %s\n", run.junit_out, strerror(-err));
		ret = LS_RUN_EXIT_ERROR;
	}
cleanup:
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (execerr[i] >= 0)
			close(execerr[i]);
	}
	cli_precise_close(&run.precise);
	cli_stacks_close(&run.stacks);
	ls_loop_close(loop);
	free(run.r);
	return ret;
}
