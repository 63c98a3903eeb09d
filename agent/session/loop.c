// SPDX-License-Identifier: MIT
/* The epoll-level BPF session: load bpf/loop.bpf.c, attach, targets, slow
 * events, snapshots. libbpf skeleton life cycle: open -> load -> attach ->
 * destroy (libbpf-bootstrap). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/loopscope.h"
#include "loop.skel.h"
#include "maps.h"
#include "links.h"
#include "ringbuf.h"


struct ls_thread_stats;
struct ls_thread_view;
static void view_of(const struct ls_thread_stats *st, struct ls_thread_view *v);

struct ls_loop {
	struct loop_bpf *skel;
	struct ls_ringbuf *rb;
	struct ls_ringbuf *polls_rb;    /* the per-poll stream (on_polls), else NULL */
	ls_polls_fn on_polls;
	void *polls_ctx;
	struct ls_poll_event pbuf[256]; /* a batch for on_polls */
	size_t npbuf;
	ls_slow_busy_fn on_slow_busy;
	ls_proc_fn on_proc;
	ls_stack_fn on_stack;
	void *ctx, *stack_ctx;
	int stacks_err;            /* why stacks asked for could not be set up */
	bool sampling;                  /* stacks on: sample each target's threads */
	bool follow;                    /* targets' children become targets */
	struct sampled *sampled;        /* per target: its threads' cpu-clock events */
	int nsampled;
	uint64_t pruned;                /* entries ls_loop_prune removed, all targets */
	/* The sampler's gate (gate_main): a target's events exist only while
	 * one of its loop threads' busy period is past the stack-after time. */
	pthread_mutex_t gate_lock;      /* sampled[], nsampled */
	pthread_t gate_thread;
	bool gate_started;
	volatile bool gate_stop;
	uint64_t gate_every_ns;         /* how often the gate looks */
	uint64_t gate_after_ns;         /* open at busy periods this old */
	uint64_t gate_flips;            /* opens and closes, for tests */
};

/* A record of the ring buffer: true when delivered (ls_ringbuf_fn). */
static bool on_ring_record(void *ctx, const void *data, size_t size)
{
	struct ls_loop *l = ctx;
	const __u32 *type = data;

	if (size < sizeof(*type))
		return false;
	if (*type == LS_EV_SLOW_BUSY && size >= sizeof(struct ls_slow_busy_event)) {
		if (l->on_slow_busy)
			l->on_slow_busy(data, l->ctx);
		return true;
	} else if (*type == LS_EV_STACK && size >= LS_STACK_EVENT_HDR) {
		const struct ls_stack_event *e = data;

		if (size < LS_STACK_EVENT_HDR + (size_t)e->nframes * sizeof(e->frames[0]) ||
		    e->nframes > LS_STACK_MAX)
			return false;
		if (l->on_stack)
			l->on_stack(e, l->stack_ctx);
		return true;
	} else if ((*type == LS_EV_FORK || *type == LS_EV_EXEC) &&
		   size >= sizeof(struct ls_proc_event)) {
		if (l->on_proc)
			l->on_proc(data, l->ctx);
		return true;
	}
	return false;
}

/* The per-poll stream's batch to its callback. */
static void polls_flush(struct ls_loop *l)
{
	if (l->npbuf)
		l->on_polls(l->pbuf, l->npbuf, l->polls_ctx);
	l->npbuf = 0;
}

/* A record of the `polls` ring (ls_ringbuf_fn): batched. */
static bool on_poll_record(void *ctx, const void *data, size_t size)
{
	struct ls_loop *l = ctx;

	if (size < sizeof(struct ls_poll_event))
		return false;
	memcpy(&l->pbuf[l->npbuf++], data, sizeof(struct ls_poll_event));
	if (l->npbuf == sizeof(l->pbuf) / sizeof(l->pbuf[0]))
		polls_flush(l);
	return true;
}

/*
 * A target's sampling: while its gate is open (gate_main), one cpu-clock
 * perf event per thread there when it opens (pid = tid, any CPU, not
 * inherited: see open_sample_event), each running ls_stack_sample. A
 * task-clock-like event ticks only while its thread runs: a loop that
 * polls, or another process's CPU, costs no interrupt.
 *
 * The gate. A per-thread cpu-clock event re-arms its hrtimer at every
 * context switch of its thread (a pipe round trip through a loop thread
 * costs about twice as much with one: docs/BENCHMARKS.md, the sampler
 * variant), and even a disabled one keeps its thread's perf context
 * switching: so a target's events exist only while one of its loop threads
 * is in a busy period older than the stack-after time less one look of the
 * gate (so that sampling starts on time), and are closed when none is. The
 * poll programs keep each loop thread's busy-period start in busy_since[]
 * and its process in slot_tgid[] (.bss, mmapped): the gate reads them in
 * place, no syscall, every gate_every_ns (eight times per stack-after time,
 * 1-20 ms apart), and opens or closes events only when its answer changes.
 */
struct sampled {
	pid_t pid;
	bool on;   /* its gate is open: the events below exist */
	bool want; /* scratch of gate_main */
	struct bpf_link **links;
	int n;
};

static void unsample(struct sampled *t)
{
	for (int i = 0; i < t->n; i++)
		bpf_link__destroy(t->links[i]);
	free(t->links);
	t->links = NULL;
	t->n = 0;
	t->on = false;
}

/* One cpu-clock event on thread tid: its fd, or -1 with errno. */
static int open_sample_event(struct ls_loop *l, int tid, bool enabled)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_SOFTWARE,
		.config = PERF_COUNT_SW_CPU_CLOCK,
		.size = sizeof(attr),
		.sample_period = l->skel->rodata->sample_period_ns,
		/* Not inherited: ls_stack_sample reads the event's count,
		 * which the kernel refuses for inherited events; a thread
		 * made while the gate is open is sampled from its next
		 * opening. */
		.disabled = !enabled,
	};

	return (int)syscall(__NR_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

/* Open t's events: one per thread there now. 0, or -errno (then none). */
static int sample_open(struct ls_loop *l, struct sampled *t)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int err = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)t->pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((d = readdir(dir))) {
		int tid = atoi(d->d_name), fd;
		struct bpf_link **links;

		if (tid <= 0)
			continue;
		fd = open_sample_event(l, tid, true);
		if (fd < 0) {
			if (errno == ESRCH)
				continue; /* the thread is gone */
			err = -errno;
			break;
		}
		links = realloc(t->links, (t->n + 1) * sizeof(*links));
		if (!links) {
			close(fd);
			err = -ENOMEM;
			break;
		}
		t->links = links;
		t->links[t->n] = bpf_program__attach_perf_event(l->skel->progs.ls_stack_sample, fd);
		if (!t->links[t->n]) {
			err = -errno;
			close(fd);
			break;
		}
		t->n++;
	}
	closedir(dir);
	if (err)
		unsample(t);
	else
		t->on = true;
	return err;
}

/* The gate's thread: every gate_every_ns, which targets have a loop thread
 * in a busy period older than gate_after_ns; their events opened, the
 * others' closed. */
static void *gate_main(void *arg)
{
	struct ls_loop *l = arg;
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)l->gate_every_ns };

	while (!l->gate_stop) {
		uint64_t now, n;

		nanosleep(&ts, NULL);
		if (l->gate_stop)
			break;
		n = __atomic_load_n(&l->skel->bss->next_slot, __ATOMIC_RELAXED);
		if (n > LS_MAX_THREADS)
			n = LS_MAX_THREADS;
		now = ls_sys_now_ns();
		pthread_mutex_lock(&l->gate_lock);
		for (int j = 0; j < l->nsampled; j++)
			l->sampled[j].want = false;
		for (uint64_t i = 0; i < n && l->nsampled; i++) {
			uint64_t since = __atomic_load_n(&l->skel->bss->busy_since[i], __ATOMIC_RELAXED);
			pid_t tgid;

			if (!since || now <= since || now - since < l->gate_after_ns)
				continue;
			tgid = (pid_t)__atomic_load_n(&l->skel->bss->slot_tgid[i], __ATOMIC_RELAXED);
			for (int j = 0; j < l->nsampled; j++)
				if (l->sampled[j].pid == tgid)
					l->sampled[j].want = true;
		}
		for (int j = 0; j < l->nsampled; j++) {
			struct sampled *t = &l->sampled[j];

			if (t->want == t->on)
				continue;
			if (!t->want) {
				unsample(t);
			} else {
				int err = sample_open(l, t);

				if (err && err != -ENOENT && !l->stacks_err)
					l->stacks_err = err;
			}
			l->gate_flips++;
		}
		pthread_mutex_unlock(&l->gate_lock);
	}
	return NULL;
}

/* Start the gate's thread; false when it could not be (then no on-CPU
 * stacks: ls_loop_stacks_error). */
static bool gate_start(struct ls_loop *l, uint64_t stack_after_ns)
{
	l->gate_every_ns = stack_after_ns / 8;
	if (l->gate_every_ns < 1000000)
		l->gate_every_ns = 1000000;
	if (l->gate_every_ns > 20000000)
		l->gate_every_ns = 20000000;
	l->gate_after_ns = stack_after_ns > l->gate_every_ns ? stack_after_ns - l->gate_every_ns : 0;
	/* Signals are the caller's threads' business (Ctrl-C must interrupt
	 * the caller's poll): the gate's thread blocks them all. */
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	l->gate_started = pthread_create(&l->gate_thread, NULL, gate_main, l) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return l->gate_started;
}

/* Sample pid's threads while its gate is open. Whether its threads can be
 * sampled at all is tried now, with one disabled event on its main thread,
 * so that a refusal (perf_event_paranoid, a seccomp'd agent) is reported
 * when the target is added. 0 or -errno. */
static int sample_target(struct ls_loop *l, pid_t pid)
{
	struct sampled *grown, *t;
	int fd;

	fd = open_sample_event(l, pid, false);
	if (fd < 0)
		return -errno;
	close(fd);
	pthread_mutex_lock(&l->gate_lock);
	grown = realloc(l->sampled, (l->nsampled + 1) * sizeof(*grown));
	if (!grown) {
		pthread_mutex_unlock(&l->gate_lock);
		return -ENOMEM;
	}
	l->sampled = grown;
	t = &l->sampled[l->nsampled++];
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	pthread_mutex_unlock(&l->gate_lock);
	return 0;
}

static void unsample_target(struct ls_loop *l, pid_t pid)
{
	pthread_mutex_lock(&l->gate_lock);
	for (int i = 0; i < l->nsampled; i++) {
		if (l->sampled[i].pid == pid) {
			unsample(&l->sampled[i]);
			l->sampled[i] = l->sampled[--l->nsampled];
			break;
		}
	}
	pthread_mutex_unlock(&l->gate_lock);
}

/* Open, load and attach bpf/loop.bpf.c into l->skel, with or without the
 * stack programs. 0, or -errno with nothing left attached. */
static int load_skel(struct ls_loop *l, const struct ls_loop_opts *opts,
		     const struct bpf_object_open_opts *oopts, bool stacks)
{
	int err;

	l->skel = loop_bpf__open_opts(oopts);
	if (!l->skel)
		return -errno;
	l->skel->bss->slow_threshold_ns =
		opts && opts->slow_threshold_ns ? opts->slow_threshold_ns : LS_DEFAULT_THRESHOLD_NS;
	l->skel->data->thread_quota =
		opts && opts->thread_quota ? opts->thread_quota : LS_THREAD_QUOTA;
	if (opts && opts->on_polls) {
		l->skel->rodata->every_poll = 1;
		bpf_map__set_max_entries(l->skel->maps.polls, LS_POLL_RINGBUF_BYTES);
	}
	if (!opts || !opts->follow_children) {
		bpf_program__set_autoload(l->skel->progs.ls_follow_fork, false);
		bpf_program__set_autoload(l->skel->progs.ls_follow_exec, false);
	}
	if (stacks) {
		unsigned int hz = opts->sample_hz ? opts->sample_hz : 1000;

		if (hz > 10000)
			hz = 10000;
		l->skel->rodata->stack_after_ns = opts->stack_after_ns;
		l->skel->rodata->sample_period_ns = 1000000000ULL / hz;
		/* The sched_switch that schedules off-CPU walks (task work). */
		bpf_program__set_autoload(l->skel->progs.ls_sched_switch, false);
	} else {
		bpf_program__set_autoload(l->skel->progs.ls_sched_switch_stacks, false);
		bpf_program__set_autoload(l->skel->progs.ls_stack_sample, false);
		bpf_program__set_autoload(l->skel->progs.ls_thread_exit, false);
	}
	err = loop_bpf__load(l->skel);
	if (!err)
		err = loop_bpf__attach(l->skel);
	l->sampling = !err && stacks;
	if (err) {
		loop_bpf__destroy(l->skel);
		l->skel = NULL;
	}
	return err;
}

int ls_loop_open(const struct ls_loop_opts *opts, struct ls_loop **out)
{
	struct ls_loop *l;
	int err;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->on_slow_busy = opts ? opts->on_slow_busy : NULL;
	l->on_proc = opts ? opts->on_proc : NULL;
	l->follow = opts && opts->follow_children;
	l->on_stack = opts ? opts->on_stack : NULL;
	l->ctx = opts ? opts->ctx : NULL;
	l->on_polls = opts ? opts->on_polls : NULL;
	l->polls_ctx = opts && opts->polls_ctx ? opts->polls_ctx : l->ctx;
	l->stack_ctx = opts && opts->stack_ctx ? opts->stack_ctx : l->ctx;
	pthread_mutex_init(&l->gate_lock, NULL);

	LIBBPF_OPTS(bpf_object_open_opts, oopts, .btf_custom_path = opts ? opts->btf_path : NULL);

	err = load_skel(l, opts, &oopts, opts && opts->stack_after_ns);
	if (err && opts && opts->stack_after_ns) {
		/* Stacks are an extra: without them (an older kernel's verifier,
		 * no perf events) the loop figures still come. */
		l->stacks_err = err;
		err = load_skel(l, opts, &oopts, false);
	}
	if (err)
		goto cleanup;
	err = ls_ringbuf_open(bpf_map__fd(l->skel->maps.events), on_ring_record, l,
			      LS_RINGBUF_CONSUME_NS, &l->rb);
	if (err)
		goto cleanup;
	if (l->on_polls) {
		err = ls_ringbuf_open(bpf_map__fd(l->skel->maps.polls), on_poll_record, l,
				      LS_RINGBUF_CONSUME_NS, &l->polls_rb);
		if (err)
			goto cleanup;
	}
	if (l->sampling && !gate_start(l, opts->stack_after_ns)) {
		l->sampling = false; /* off-CPU stacks still come */
		l->stacks_err = -EAGAIN;
	}
	*out = l;
	return 0;
cleanup:
	ls_loop_close(l);
	return err < 0 ? err : -EINVAL;
}

static bool has_python(struct ls_loop *l, pid_t pid)
{
	struct ls_stack_proc pp;
	__u32 key = (__u32)pid;

	return bpf_map_lookup_elem(bpf_map__fd(l->skel->maps.py_procs), &key, &pp) == 0;
}

int ls_loop_add_target(struct ls_loop *l, pid_t pid)
{
	__u32 key = (__u32)pid;
	__u8 one = 1;
	int err;

	err = bpf_map_update_elem(bpf_map__fd(l->skel->maps.targets), &key, &one, BPF_ANY);
	if (err)
		return errno == E2BIG ? -E2BIG : -errno;
	/* On-CPU stacks need its threads sampled (a process with Python stacks
	 * set up, or, when following, any: its Python descendants inherit the
	 * events); without, its off-CPU stacks and every loop figure still
	 * come (ls_loop_stacks_error). */
	if (l->sampling && (l->follow || has_python(l, pid))) {
		unsample_target(l, pid);
		err = sample_target(l, pid);
		if (err && !l->stacks_err)
			l->stacks_err = err;
	}
	return 0;
}

int ls_loop_remove_target(struct ls_loop *l, pid_t pid)
{
	int tfd = bpf_map__fd(l->skel->maps.threads);
	__u32 key = (__u32)pid, *tids;
	struct ls_thread_stats *st;
	size_t n;
	int err = 0, e;

	if (bpf_map_delete_elem(bpf_map__fd(l->skel->maps.targets), &key) && errno != ENOENT)
		err = -errno;
	unsample_target(l, pid);
	bpf_map_delete_elem(bpf_map__fd(l->skel->maps.py_procs), &key);
	/* One dump finds the process's threads, then they are deleted:
	 * deleting during a walk would lose its place in the hash. */
	e = ls_map_dump(tfd, sizeof(*tids), sizeof(*st), (void **)&tids, (void **)&st, &n);
	if (e)
		return e;
	for (size_t i = 0; i < n; i++) {
		if (st[i].tgid != (__u32)pid)
			continue;
		/* An armed walk's task work will find no entry: nothing to
		 * give back; an unmarked thread's count is. Its busy_since
		 * slot must not hold the sampler's gate open. */
		if (st[i].unmarked)
			__atomic_fetch_sub(&l->skel->bss->unmarked, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&l->skel->bss->busy_since[st[i].slot & (LS_MAX_THREADS - 1)], 0,
				 __ATOMIC_RELAXED);
		bpf_map_delete_elem(tfd, &tids[i]);
		bpf_map_delete_elem(bpf_map__fd(l->skel->maps.tstates), &tids[i]);
		bpf_map_delete_elem(bpf_map__fd(l->skel->maps.walk_works), &tids[i]);
	}
	free(tids);
	free(st);
	/* Its quota counts last: no thread of it can be admitted now. */
	bpf_map_delete_elem(bpf_map__fd(l->skel->maps.target_threads), &key);
	bpf_map_delete_elem(bpf_map__fd(l->skel->maps.target_released), &key);
	return err;
}

/* ---- pruning the thread table (issue #12 item 2) ---- */

/* An entry whose thread was gone when the table was walked. */
struct gone_thread {
	__u32 tid, tgid;
	__u64 start;
};

struct prune_walk {
	struct gone_thread *v;
	size_t n, cap;
	bool nomem;
};

/* Whether thread tid of tgid still exists: /proc/TGID/task/TID. Anything
 * but "no such file" (a /proc we cannot read) counts as alive: an entry is
 * never removed on a guess. */
static bool thread_exists(__u32 tgid, __u32 tid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%u/task/%u", tgid, tid);
	return access(path, F_OK) == 0 || errno != ENOENT;
}

/* ls_map_walk_fn: note the entries of exited threads. */
static void prune_visit(const void *key, const void *value, void *ctx)
{
	const struct ls_thread_stats *st = value;
	struct prune_walk *w = ctx;
	__u32 tid = *(const __u32 *)key;

	if (thread_exists(st->tgid, tid))
		return;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct gone_thread *g = realloc(w->v, cap * sizeof(*g));

		if (!g) {
			w->nomem = true;
			return;
		}
		w->v = g;
		w->cap = cap;
	}
	w->v[w->n++] = (struct gone_thread){ .tid = tid, .tgid = st->tgid, .start = st->thread_start };
}

/* One more entry of tgid deleted by user space: the BPF quota check reads
 * it (only this process writes target_released). */
static void count_released(struct ls_loop *l, __u32 tgid)
{
	int fd = bpf_map__fd(l->skel->maps.target_released);
	__u64 n = 0;

	bpf_map_lookup_elem(fd, &tgid, &n);
	n++;
	bpf_map_update_elem(fd, &tgid, &n, BPF_ANY);
}

int ls_loop_prune(struct ls_loop *l, ls_thread_gone_fn gone, void *ctx)
{
	int tfd = bpf_map__fd(l->skel->maps.threads);
	struct prune_walk w = { 0 };
	struct ls_thread_stats *st = malloc(sizeof(*st));
	struct ls_thread_view *view = gone ? malloc(sizeof(*view)) : NULL;
	int err, removed = 0;

	if (!st || (gone && !view)) {
		err = -ENOMEM;
		goto out;
	}
	/* Walk first, delete after: deleting during a walk would lose its
	 * place in the hash. */
	/* One key at a time into one value buffer: a batched walk's buffers
	 * (64 values of ~16 KiB) every tick raised glibc's mmap threshold and
	 * grew the heap for good (+1 MiB RSS in it_daemon_churn). Entries
	 * deleted meanwhile are skipped; one added may be seen or not. */
	{
		__u32 cur = 0, next;
		bool first = true;

		err = 0;
		while (bpf_map_get_next_key(tfd, first ? NULL : &cur, &next) == 0) {
			first = false;
			cur = next;
			if (bpf_map_lookup_elem(tfd, &cur, st) == 0)
				prune_visit(&cur, st, &w);
		}
	}
	if (!err && w.nomem)
		err = -ENOMEM;
	for (size_t i = 0; i < w.n; i++) {
		/* Read again: the tid may have been given to a new thread
		 * since, whose entry stays. */
		if (bpf_map_lookup_elem(tfd, &w.v[i].tid, st) || st->tgid != w.v[i].tgid ||
		    st->thread_start != w.v[i].start)
			continue;
		if (gone) {
			view_of(st, view);
			gone(view, ctx);
		}
		if (bpf_map_delete_elem(tfd, &w.v[i].tid))
			continue;
		/* As ls_loop_remove_target does for each of its threads. */
		if (st->unmarked)
			__atomic_fetch_sub(&l->skel->bss->unmarked, 1, __ATOMIC_SEQ_CST);
		__atomic_store_n(&l->skel->bss->busy_since[st->slot & (LS_MAX_THREADS - 1)], 0,
				 __ATOMIC_SEQ_CST);
		bpf_map_delete_elem(bpf_map__fd(l->skel->maps.tstates), &w.v[i].tid);
		bpf_map_delete_elem(bpf_map__fd(l->skel->maps.walk_works), &w.v[i].tid);
		count_released(l, w.v[i].tgid);
		l->pruned++;
		removed++;
	}
out:
	free(w.v);
	free(st);
	free(view);
	return err ? err : removed;
}

int ls_loop_thread_counts(struct ls_loop *l, pid_t pid, struct ls_loop_thread_counts *out)
{
	struct ls_target_threads q = { 0 };
	__u32 key = (__u32)pid;
	__u64 rel = 0;
	__u8 one;

	memset(out, 0, sizeof(*out));
	if (bpf_map_lookup_elem(bpf_map__fd(l->skel->maps.targets), &key, &one))
		return -ENOENT;
	bpf_map_lookup_elem(bpf_map__fd(l->skel->maps.target_threads), &key, &q);
	bpf_map_lookup_elem(bpf_map__fd(l->skel->maps.target_released), &key, &rel);
	out->untracked = q.dropped;
	out->pruned = rel;
	out->evicted = q.evicted;
	/* Read apart, the three may disagree for an instant: never below 0. */
	out->tracked = q.inserted > q.evicted + rel ? q.inserted - q.evicted - rel : 0;
	return 0;
}

void ls_loop_table_counts(struct ls_loop *l, struct ls_loop_table_counts *out)
{
	out->untracked = l->skel->bss->threads_untracked;
	out->table_full = l->skel->bss->threads_table_full;
	out->pruned = l->pruned;
	out->quota = l->skel->data->thread_quota;
}

int ls_loop_set_python(struct ls_loop *l, pid_t pid, uint64_t runtime_addr,
		       const struct ls_py_offsets *off)
{
	struct ls_stack_proc pp = { .runtime_addr = runtime_addr };
	__u32 key = (__u32)pid;

	if (!off) {
		if (bpf_map_delete_elem(bpf_map__fd(l->skel->maps.py_procs), &key) && errno != ENOENT)
			return -errno;
		return 0;
	}
	pp.off = *off;
	if (bpf_map_update_elem(bpf_map__fd(l->skel->maps.py_procs), &key, &pp, BPF_ANY))
		return errno == E2BIG ? -E2BIG : -errno;
	return 0;
}

int ls_loop_stacks_error(const struct ls_loop *l)
{
	return l->stacks_err;
}

uint64_t ls_loop_lost_stack_events(struct ls_loop *l)
{
	return l->skel->bss->lost_stack_events;
}

uint64_t ls_loop_stack_walks(struct ls_loop *l, uint64_t *errors)
{
	if (errors)
		*errors = l->skel->bss->stack_walk_errors;
	return l->skel->bss->stack_walks;
}

void ls_loop_cb_maps(const struct ls_loop *l, int *cb_threads_fd, int *threads_fd)
{
	*cb_threads_fd = bpf_map__fd(l->skel->maps.cb_threads);
	*threads_fd = bpf_map__fd(l->skel->maps.threads);
}

void ls_loop_cb_split_enable(struct ls_loop *l)
{
	__atomic_store_n(&l->skel->bss->cb_split, 1, __ATOMIC_RELEASE);
}

void ls_loop_set_threshold(struct ls_loop *l, uint64_t ns)
{
	l->skel->bss->slow_threshold_ns = ns ? ns : LS_DEFAULT_THRESHOLD_NS;
}

int ls_loop_poll(struct ls_loop *l, int timeout_ms)
{
	int n = ls_ringbuf_poll(l->rb, timeout_ms), np;

	if (l->polls_rb) {
		/* Its records never wake us (BPF_RB_NO_WAKEUP): read them
		 * whenever the session wakes, without waiting. */
		np = ls_ringbuf_consume(l->polls_rb);
		polls_flush(l);
		if (np > 0 && n >= 0)
			n += np;
	}
	return n;
}

int ls_loop_drain(struct ls_loop *l, int max_ms)
{
	uint64_t until = ls_sys_now_ns() + (uint64_t)max_ms * 1000000;
	int n, total = 0;

	while ((n = ls_loop_poll(l, 0)) > 0) {
		total += n;
		if (ls_sys_now_ns() >= until)
			break;
	}
	return total;
}

/* The user-space view of a thread's kernel record: what callers may use,
 * iterations counted here once (a poll entry that follows another one
 * completes an iteration). */
static void view_of(const struct ls_thread_stats *st, struct ls_thread_view *v)
{
	v->tgid = st->tgid;
	v->tid = st->tid;
	v->poll_kind = st->poll_kind;
	v->in_poll = st->in_poll != 0;
	v->thread_start = st->thread_start;
	v->poll_enter_ns = st->poll_enter_ns;
	v->poll_exit_ns = st->poll_exit_ns;
	v->first_enter_ns = st->first_enter_ns;
	v->polls = st->polls;
	v->iterations = st->polls ? st->polls - 1 : 0;
	v->slow_busy = st->slow_busy;
	v->lag_missed = st->lag_missed;
	v->busy = st->busy;
	v->poll = st->poll;
	v->lag = st->lag;
}

/* ls_map_conv_fn: a threads entry's view. */
static void entry_view(const void *key, const void *value, void *out)
{
	view_of(value, out);
}

int ls_loop_snapshot(struct ls_loop *l, struct ls_thread_view **out, size_t *n,
		     uint64_t *now_ns)
{
	*now_ns = ls_sys_now_ns();
	return ls_map_dump_as(bpf_map__fd(l->skel->maps.threads), sizeof(__u32),
			      sizeof(struct ls_thread_stats), sizeof(**out), entry_view, (void **)out, n);
}

uint64_t ls_loop_lost_events(struct ls_loop *l)
{
	return l->skel->bss->lost_events;
}

uint64_t ls_loop_lost_polls(struct ls_loop *l)
{
	return __atomic_load_n(&l->skel->bss->lost_polls, __ATOMIC_RELAXED);
}

uint64_t ls_loop_offcpu_unseen(struct ls_loop *l, uint64_t *unmarked)
{
	if (unmarked)
		*unmarked = __atomic_load_n(&l->skel->bss->unmarked, __ATOMIC_RELAXED);
	return __atomic_load_n(&l->skel->bss->offcpu_unseen, __ATOMIC_RELAXED);
}

void ls_loop_close(struct ls_loop *l)
{
	if (!l)
		return;
	if (l->gate_started) {
		l->gate_stop = true;
		pthread_join(l->gate_thread, NULL);
	}
	for (int i = 0; i < l->nsampled; i++)
		unsample(&l->sampled[i]);
	free(l->sampled);
	pthread_mutex_destroy(&l->gate_lock);
	ls_ringbuf_free(l->rb);
	ls_ringbuf_free(l->polls_rb);
	if (l->skel) { /* the skeleton's links, detached together (links.h) */
		const struct bpf_object_skeleton *s = l->skel->skeleton;
		struct bpf_link **links[32];
		size_t n = 0;

		for (int i = 0; s && i < s->prog_cnt && n < 32; i++)
			links[n++] = s->progs[i].link;
		ls_links_destroy(links, n);
	}
	loop_bpf__destroy(l->skel);
	free(l);
}
