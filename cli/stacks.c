// SPDX-License-Identifier: MIT
/* Python stacks of slow periods in `attach` and `run`: set-up per target,
 * the stacks of one period, --folded FILE. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "loopscope/abi/loop_events.h"
#include "loopscope/procfs.h"
#include "loopscope/pytarget.h"

/* Stacks are taken in busy periods older than threshold / STACK_AFTER_DIV:
 * early enough to see most of a slow period, late enough that a healthy
 * loop (periods far below the threshold) costs no walk at all. */
#define STACK_AFTER_DIV 4
#define KEEP_NS 10000000000ULL

/* Await chains (CPython 3.14+, include/loopscope/pytask.h): read once per
 * slow busy period, at its first stack record, while the loop thread is
 * still blocked in the callback (the task objects do not change under a
 * stuck loop); kept in a ring of the last TASK_READS chains. */
#define TASK_READS 64

struct cli_task_proc {
	pid_t pid;
	int memfd;
	uint64_t runtime_addr;
	struct ls_py_offsets off;
	struct ls_pytask_offsets ao;
};

struct cli_task_read {
	uint32_t tgid, tid;
	uint64_t busy_start_ns;
	struct ls_pytask_chain chain;
};

static struct cli_task_proc *task_proc(struct cli_stacks *cs, pid_t pid)
{
	for (size_t i = 0; i < cs->ntask_procs; i++)
		if (cs->task_procs[i].pid == pid)
			return &cs->task_procs[i];
	return NULL;
}

static void read_chain(struct cli_stacks *cs, const struct ls_stack_event *e)
{
	struct cli_task_proc *p = task_proc(cs, (pid_t)e->tgid);
	struct cli_task_read *r;

	if (!p || !e->task)
		return;
	for (size_t i = 0; i < TASK_READS && cs->task_reads; i++) {
		r = &cs->task_reads[i];
		if (r->tid == e->tid && r->tgid == e->tgid && r->busy_start_ns == e->busy_start_ns)
			return; /* this period's chain is read */
	}
	if (!cs->task_reads && !(cs->task_reads = calloc(TASK_READS, sizeof(*cs->task_reads))))
		return;
	r = &cs->task_reads[cs->task_next++ % TASK_READS];
	memset(r, 0, sizeof(*r));
	r->tgid = e->tgid;
	r->tid = e->tid;
	r->busy_start_ns = e->busy_start_ns;
	/* From the Task the walker saw running: a blocked thread is walked
	 * when its block ends, so reading the thread state now would be late. */
	if (ls_pytask_chain_from(p->memfd, &p->off, &p->ao, e->task, &r->chain))
		r->chain.n = 0;
	r->chain.read_ns = ls_sys_now_ns();
}

static void on_stack(const struct ls_stack_event *e, void *ctx)
{
	struct cli_stacks *cs = ctx;

	if (cs->col)
		ls_slowstack_add(cs->col, e);
	if (cs->ntask_procs)
		read_chain(cs, e);
}

/* Read await chains of t's process when its CPython has them (3.14+):
 * its entry, or NULL. */
static struct cli_task_proc *task_proc_add(struct cli_stacks *cs, const struct ls_py_target *t,
					   const struct ls_py_offsets *off)
{
	struct cli_task_proc p = { .pid = t->pid, .runtime_addr = t->bias + t->runtime.vaddr,
				   .off = *off };
	struct cli_task_proc *grown;
	char why[320];
	int err;

	if (t->minor < 14)
		return NULL;
	if (task_proc(cs, t->pid))
		return task_proc(cs, t->pid);
	err = ls_pytask_find(t, &p.ao, why, sizeof(why));
	if (err) {
		if (!cs->quiet && err != -ENOENT)
			fprintf(stderr, "loopscope: pid %d: no await chains: %s\n", t->pid, why);
		return NULL;
	}
	p.memfd = ls_proc_mem_open(t->pid);
	if (p.memfd < 0)
		return NULL;
	grown = realloc(cs->task_procs, (cs->ntask_procs + 1) * sizeof(*grown));
	if (!grown) {
		close(p.memfd);
		return NULL;
	}
	cs->task_procs = grown;
	cs->task_procs[cs->ntask_procs++] = p;
	return &cs->task_procs[cs->ntask_procs - 1];
}

static void task_proc_remove(struct cli_stacks *cs, pid_t pid)
{
	struct cli_task_proc *p = task_proc(cs, pid);

	if (!p)
		return;
	close(p->memfd);
	*p = cs->task_procs[--cs->ntask_procs];
}

/* The chain read in the period [from_ns, to_ns] of thread tid: the one read
 * at that busy period's start, else the latest read within it. */
static void take_chain(struct cli_stacks *cs, uint32_t tgid, uint32_t tid, uint64_t from_ns,
		       uint64_t to_ns, struct ls_pytask_chain *out)
{
	const struct cli_task_read *best = NULL;

	for (size_t i = 0; cs->task_reads && i < TASK_READS; i++) {
		const struct cli_task_read *r = &cs->task_reads[i];

		if (r->tgid != tgid || r->tid != tid || !r->chain.n || r->busy_start_ns > to_ns ||
		    r->chain.read_ns < from_ns)
			continue;
		if (!best || r->chain.read_ns > best->chain.read_ns)
			best = r;
	}
	if (best)
		*out = best->chain;
}

int cli_stacks_init(struct cli_stacks *cs)
{
	if (!cs->enabled)
		return 0;
	cs->col = ls_slowstack_new();
	cs->app = ls_appframe_new(cs->app_paths, cs->napp_paths);
	if (!cs->col || !cs->app)
		return -ENOMEM;
	if (cs->folded_path) {
		cs->folded = ls_folded_new();
		if (!cs->folded)
			return -ENOMEM;
	}
	return 0;
}

void cli_stacks_loop_opts(struct cli_stacks *cs, uint64_t threshold_ns, struct ls_loop_opts *o)
{
	if (!cs->enabled)
		return;
	o->stack_after_ns = threshold_ns / STACK_AFTER_DIV ? threshold_ns / STACK_AFTER_DIV : 1;
	o->sample_hz = 1000;
	o->on_stack = on_stack;
	o->stack_ctx = cs;
}

void cli_stacks_opened(struct cli_stacks *cs, struct ls_loop *l)
{
	int err;

	cs->loop = l;
	if (!cs->enabled || !(err = ls_loop_stacks_error(l)))
		return;
	fprintf(stderr, "loopscope: no Python stacks: their BPF programs could not be set up (%s); "
		"slow periods keep their syscall and times\n", strerror(-err));
	cs->enabled = false;
}

bool cli_stacks_add_resolved(struct cli_stacks *cs, const struct ls_py_target *t)
{
	const struct ls_py_offsets *off = t->off.version_hex ? &t->off : NULL;
	int err;

	if (!cs->enabled || !cs->loop)
		return false;
	if (!off || !t->runtime.vaddr) {
		if (!cs->quiet)
			fprintf(stderr, "loopscope: pid %d: no Python stacks (CPython %d.%d: %s); slow "
				"periods still get their syscall and times\n", t->pid, t->major,
				t->minor, off ? "_PyRuntime not found" : "no offsets for this version");
		return false;
	}
	/* 3.14+: the walker also reads the running Task (its await chain). */
	struct cli_task_proc *tp = task_proc_add(cs, t, off);
	struct ls_py_offsets walk = *off;

	if (tp)
		walk.tstate_running_task = (__u16)tp->ao.tstate_running_task;
	err = ls_loop_set_python(cs->loop, t->pid, t->bias + t->runtime.vaddr, &walk);
	if (!err)
		err = ls_slowstack_set_python(cs->col, t->pid, off);
	if (err) {
		if (!cs->quiet)
			fprintf(stderr, "loopscope: pid %d: no Python stacks: %s\n", t->pid,
				strerror(-err));
		task_proc_remove(cs, t->pid);
		return false;
	}
	cs->nprocs++;
	return true;
}

bool cli_stacks_add(struct cli_stacks *cs, pid_t pid)
{
	struct ls_py_target t;
	int err;

	if (!cs->enabled || !cs->loop)
		return false;
	err = ls_py_resolve(pid, &t);
	cs->npython += err != -ENOEXEC && err != -ESRCH;
	if (err) {
		/* A process that is not Python has no Python stack to miss. */
		if (!cs->quiet && !cs->resolve_said_elsewhere && err != -ENOEXEC && err != -ESRCH)
			fprintf(stderr, "loopscope: no Python stacks for %s\n", t.error);
		return false;
	}
	if (t.note[0] && !cs->quiet && !cs->resolve_said_elsewhere)
		fprintf(stderr, "loopscope: pid %d: %s\n", t.pid, t.note);
	return cli_stacks_add_resolved(cs, &t);
}

void cli_stacks_remove(struct cli_stacks *cs, pid_t pid)
{
	if (cs->loop && cs->enabled)
		ls_loop_set_python(cs->loop, pid, 0, NULL);
	if (cs->col)
		ls_slowstack_forget(cs->col, pid);
	ls_appframe_forget(cs->app, pid);
	task_proc_remove(cs, pid);
}

void cli_stacks_take(struct cli_stacks *cs, uint32_t tgid, uint32_t tid, uint64_t from_ns,
		     uint64_t to_ns, bool drain, bool fold, const char *comm,
		     struct ls_stack_summary *sum)
{
	memset(sum, 0, sizeof(*sum));
	if (!cs || !cs->col)
		return;
	if (drain && cs->loop)
		ls_loop_drain(cs->loop, 20);
	if (ls_slowstack_take(cs->col, tgid, tid, from_ns, to_ns, sum))
		return;
	take_chain(cs, tgid, tid, from_ns, to_ns, &sum->chain);
	ls_appframe_pick(cs->app, (pid_t)tgid, sum);
	if (fold && cs->folded && ls_folded_add(cs->folded, comm, sum))
		fprintf(stderr, "loopscope: out of memory for --folded\n");
}

void cli_stacks_prune(struct cli_stacks *cs, uint64_t now_ns)
{
	if (cs->col && now_ns > KEEP_NS)
		ls_slowstack_prune(cs->col, now_ns - KEEP_NS);
}

int cli_stacks_write_folded(struct cli_stacks *cs)
{
	FILE *f;
	int err;

	if (!cs->folded)
		return 0;
	f = fopen(cs->folded_path, "w");
	if (!f) {
		fprintf(stderr, "loopscope: cannot write %s: %s\n", cs->folded_path, strerror(errno));
		return 1;
	}
	err = ls_folded_write(cs->folded, f);
	if (fclose(f) && !err)
		err = -errno;
	if (err) {
		fprintf(stderr, "loopscope: writing %s failed: %s\n", cs->folded_path, strerror(-err));
		return 1;
	}
	return 0;
}

void cli_stacks_report(struct cli_stacks *cs, json_object *jr)
{
	uint64_t walks, errors = 0;

	if (!cs->enabled || !cs->loop)
		return;
	walks = ls_loop_stack_walks(cs->loop, &errors);
	if (jr) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "processes", json_object_new_int(cs->nprocs));
		ls_json_add_u64(o, "walks", walks);
		ls_json_add_u64(o, "walks_without_frames", errors);
		ls_json_add_u64(o, "events_dropped", cs->col ? ls_slowstack_dropped(cs->col) : 0);
		ls_json_add_u64(o, "events_lost", ls_loop_lost_stack_events(cs->loop));
		json_object_object_add(jr, "stacks", o);
		return;
	}
	if (walks)
		printf("  Python stacks: %llu taken in slow periods (%llu without frames)\n",
		       (unsigned long long)walks, (unsigned long long)errors);
	if (ls_loop_lost_stack_events(cs->loop))
		printf("  LOST %llu stack records: the ring buffer was full (stacks of some slow "
		       "periods are partial)\n",
		       (unsigned long long)ls_loop_lost_stack_events(cs->loop));
}

void cli_stacks_close(struct cli_stacks *cs)
{
	ls_slowstack_free(cs->col);
	ls_folded_free(cs->folded);
	ls_appframe_free(cs->app);
	cs->app = NULL;
	cs->col = NULL;
	cs->folded = NULL;
	while (cs->ntask_procs)
		task_proc_remove(cs, cs->task_procs[0].pid);
	free(cs->task_procs);
	free(cs->task_reads);
	cs->task_procs = NULL;
	cs->task_reads = NULL;
}
