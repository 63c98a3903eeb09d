// SPDX-License-Identifier: MIT
/* Python stacks of slow periods in `attach` and `run`: set-up per target,
 * the stacks of one period, --folded FILE. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "loopscope/pytarget.h"

/* Stacks are taken in busy periods older than threshold / STACK_AFTER_DIV:
 * early enough to see most of a slow period, late enough that a healthy
 * loop (periods far below the threshold) costs no walk at all. */
#define STACK_AFTER_DIV 4
#define KEEP_NS 10000000000ULL

static void on_stack(const struct ls_stack_event *e, void *ctx)
{
	struct cli_stacks *cs = ctx;

	if (cs->col)
		ls_slowstack_add(cs->col, e);
}

int cli_stacks_init(struct cli_stacks *cs)
{
	if (!cs->enabled)
		return 0;
	cs->col = ls_slowstack_new();
	if (!cs->col)
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
	err = ls_loop_set_python(cs->loop, t->pid, t->bias + t->runtime.vaddr, off);
	if (!err)
		err = ls_slowstack_set_python(cs->col, t->pid, off);
	if (err) {
		if (!cs->quiet)
			fprintf(stderr, "loopscope: pid %d: no Python stacks: %s\n", t->pid,
				strerror(-err));
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
		cli_jadd_u64(o, "walks", walks);
		cli_jadd_u64(o, "walks_without_frames", errors);
		cli_jadd_u64(o, "events_dropped", cs->col ? ls_slowstack_dropped(cs->col) : 0);
		cli_jadd_u64(o, "events_lost", ls_loop_lost_stack_events(cs->loop));
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
	cs->col = NULL;
	cs->folded = NULL;
}
