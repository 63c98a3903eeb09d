// SPDX-License-Identifier: MIT
/* The engine's precise mode: set-up and take-down jobs for its worker
 * (jobq.c), and when a target's set-up is due. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/monitor.h"
#include "loopscope/pycallback.h"
#include "loopscope/pytarget.h"
#include "engine.h"
#include "jobq.h"

/* Retries of precise-mode resolution after an exec: the interpreter's
 * shared library is mapped by the dynamic loader a little after the exec
 * event, so a first failure is not final. */
/* Before the 2nd, 3rd and 4th try (the 1st is at once). */
static const uint64_t resolve_delay_ns[RESOLVE_TRIES - 1] = {
	400000000ULL, 1000000000ULL, 3000000000ULL,
};

struct precise_job {
	bool add;             /* set up precise mode, or take it down */
	bool version;         /* add in light mode: only learn the CPython version */
	pid_t pid;
	uint64_t attached_ns; /* which target of that pid (add) */
	uint64_t gen;         /* and which of its lives (add): ls_mon_target.gen */
};

/*
 * Precise mode is set up and taken down by a worker thread, one job at a
 * time in order, never by the engine's thread: resolving a CPython (ELF
 * reading) and attaching uprobes take 10-500 ms under load, and destroying
 * a target's uprobe links waits for RCU grace periods (~0.7 s for the four
 * links of one target, measured on Linux 6.18). Done inline, a wave of
 * execs stalled discovery and events for seconds. Jobs name a target by
 * pid and attach time, so a finished job for a target that is gone (or a
 * new process that reuses the pid) is recognized. pylock serializes the
 * calls that touch the precise session's target table
 * (ls_pycb_add_target / ls_pycb_remove_target); its ring buffer and map
 * reads (ls_pycb_poll, ls_pycb_walk) need no lock.
 */
static struct ls_mon_target *find_target_at(struct ls_mon *m, pid_t pid, uint64_t attached_ns)
{
	for (size_t i = 0; i < m->ntargets; i++)
		if (m->targets[i].pid == pid && m->targets[i].attached_ns == attached_ns &&
		    !m->targets[i].exited_ns)
			return &m->targets[i];
	return NULL;
}

struct ls_pycb *ls_mon_pycb(struct ls_mon *m)
{
	return __atomic_load_n(&m->pycb, __ATOMIC_ACQUIRE);
}

/* A resolved CPython whose stacks can be walked (offsets known, _PyRuntime
 * found): the engine's thread sets them up (ls_mon_stacks_step). Lock held. */
static void want_stacks(struct ls_mon_target *t, const struct ls_py_target *py)
{
	if (t->stacks_on || !t->py_off || !py->off.version_hex || !py->runtime.vaddr)
		return;
	t->py_runtime_addr = py->bias + py->runtime.vaddr;
	t->stacks_pending = true;
}

/* Worker: the ADD job. Resolve and attach without the engine's lock, then
 * record the outcome under it. */
static void job_add(struct ls_mon *m, pid_t pid, uint64_t attached_ns, uint64_t gen)
{
	struct ls_py_target py;
	struct ls_mon_target *t;
	struct ls_pycb *pycb = ls_mon_pycb(m);
	char note[400] = "";
	bool stale;
	int err;

	err = ls_py_resolve(pid, &py);
	if (err) {
		snprintf(note, sizeof(note), "%s", py.error);
	} else {
		if (!pycb && !m->pycb_failed) {
			struct ls_pycb_opts o = {
				.slow_threshold_ns = m->cfg.threshold_ns,
				.on_slow_callback = ls_mon_on_slow_callback,
				.ctx = m,
				.btf_path = m->cfg.btf_path[0] ? m->cfg.btf_path : NULL,
			};

			if (ls_pycb_open(&o, &pycb)) {
				m->pycb_failed = true;
				pycb = NULL;
			} else {
				__atomic_store_n(&m->pycb, pycb, __ATOMIC_RELEASE);
			}
		}
		if (!pycb) {
			snprintf(note, sizeof(note), "precise-mode BPF programs could not be loaded");
			err = -ENOTSUP;
		} else {
			pthread_mutex_lock(&m->pylock);
			err = ls_pycb_add_target(pycb, &py);
			pthread_mutex_unlock(&m->pylock);
			if (err)
				snprintf(note, sizeof(note), "cannot probe context_run in %.200s: %s", py.path,
					 err == -E2BIG ? "too many precise-mode targets" : strerror(-err));
		}
	}
	ls_mon_lock(m);
	t = find_target_at(m, pid, attached_ns);
	/* It exec'd or changed mode meanwhile: what we set up is not what it
	 * wants now. Undo; the engine queues a new set-up if one is due. */
	stale = !t || t->gen != gen;
	if (t && stale) {
		/* nothing recorded */
	} else if (t && !err) {
		t->precise = true;
		t->ever_precise = true;
		t->py_major = py.major;
		t->py_minor = py.minor;
		if (!t->py_off)
			t->py_off = malloc(sizeof(*t->py_off));
		if (t->py_off)
			*t->py_off = py.off;
		want_stacks(t, &py);
		t->note[0] = '\0';
		ls_mon_log(m, "pid %d (%s, service %s): precise mode, CPython %d.%d (%s)", (int)pid, t->comm,
		      t->service, py.major, py.minor, py.path);
	} else if (t) {
		uint64_t now = ls_sys_now_ns();

		snprintf(t->note, sizeof(t->note), "%s", note);
		t->resolve_tries++;
		/* Not Python (yet), or no context_run (yet): an exec in
		 * progress may still map libpython. Other errors are final. */
		if ((err == -ENOEXEC || err == -ENOENT) && t->resolve_tries < RESOLVE_TRIES) {
			t->next_resolve_ns = now + resolve_delay_ns[t->resolve_tries - 1];
		} else {
			t->resolve_tries = RESOLVE_TRIES;
			ls_mon_log(m, "pid %d (%s, service %s): %s; light mode", (int)pid, t->comm, t->service,
			      t->note);
		}
	}
	if (t)
		t->precise_queued = false;
	ls_mon_unlock(m);
	if (stale && !err) {
		pthread_mutex_lock(&m->pylock);
		ls_pycb_remove_target(pycb, pid);
		ls_pycb_forget_stats(pycb, pid);
		pthread_mutex_unlock(&m->pylock);
	}
}

/* Worker: a light-mode target's CPython version (`python` in status and
 * loopscope_target_info), by the same resolution as precise mode, nothing
 * attached. Not CPython (yet: an exec in progress may still map
 * libpython): tried again as a set-up is, then silently given up. */
static void job_version(struct ls_mon *m, pid_t pid, uint64_t attached_ns, uint64_t gen)
{
	struct ls_py_target py;
	struct ls_mon_target *t;
	int err = ls_py_resolve(pid, &py);

	ls_mon_lock(m);
	t = find_target_at(m, pid, attached_ns);
	if (t && t->gen == gen && !t->py_major) {
		/* An unsupported CPython still has a version (3.7, no context_run) */
		if (py.major > 0 && err != -ESRCH && err != -ENOEXEC) {
			t->py_major = py.major;
			t->py_minor = py.minor;
			if (!err) {
				if (!t->py_off)
					t->py_off = malloc(sizeof(*t->py_off));
				if (t->py_off)
					*t->py_off = py.off;
				want_stacks(t, &py);
			}
		} else if (++t->version_tries < RESOLVE_TRIES) {
			t->next_version_ns = ls_sys_now_ns() + resolve_delay_ns[t->version_tries - 1];
		}
	}
	if (t)
		t->version_queued = false;
	ls_mon_unlock(m);
}

/* The job to run next (ls_jobq_pick_fn): the oldest set-up, so that a new
 * target's callbacks are named without waiting behind uprobe removals
 * (~0.7 s each); but a removal for the same pid queued before it goes
 * first (the pid exec'd or was reused: its old probes go before the new
 * ones come). Light-mode version lookups (10-500 ms each) when no set-up
 * waits, removals last. */
static size_t pick_job(const void *queued, size_t n, void *ctx)
{
	const struct precise_job *jobs = queued;
	size_t a;

	for (a = 0; a < n && (!jobs[a].add || jobs[a].version); a++)
		;
	if (a == n) {
		/* No set-up: light-mode version lookups, then removals. */
		for (a = 0; a < n && !jobs[a].version; a++)
			;
		return a < n ? a : 0;
	}
	for (size_t i = 0; i < a; i++)
		if (jobs[i].pid == jobs[a].pid)
			return i;
	return a;
}

/* The worker runs one job (ls_jobq_run_fn). */
static void run_job(void *job, void *ctx)
{
	const struct precise_job *j = job;
	struct ls_mon *m = ctx;

	if (j->add && j->version) {
		job_version(m, j->pid, j->attached_ns, j->gen);
	} else if (j->add) {
		job_add(m, j->pid, j->attached_ns, j->gen);
	} else if (ls_mon_pycb(m)) {
		pthread_mutex_lock(&m->pylock);
		ls_pycb_remove_target(ls_mon_pycb(m), j->pid);
		/* Its callback histograms too: the map is shared by every
		 * process, and churn would fill it. */
		ls_pycb_forget_stats(ls_mon_pycb(m), j->pid);
		pthread_mutex_unlock(&m->pylock);
		ls_mon_log(m, "pid %d: precise-mode uprobes removed", (int)j->pid);
	}
}

/* Queue a job; false when no worker or no memory (then the caller does
 * without). */
static bool queue_job(struct ls_mon *m, bool add, pid_t pid, uint64_t attached_ns, uint64_t gen)
{
	struct precise_job j = { .add = add, .pid = pid, .attached_ns = attached_ns, .gen = gen };

	return m->jobs && ls_jobq_push(m->jobs, &j);
}

/* Take t out of precise mode (its uprobes go in the worker). Engine lock
 * held. */
void ls_mon_precise_stop(struct ls_mon *m, struct ls_mon_target *t)
{
	if (t->precise && ls_mon_pycb(m) && !queue_job(m, false, t->pid, 0, 0)) {
		pthread_mutex_lock(&m->pylock);
		ls_pycb_remove_target(ls_mon_pycb(m), t->pid);
		pthread_mutex_unlock(&m->pylock);
	}
	t->precise = false;
	t->gen++;
	/* The session forgets its histograms with its probes (the worker's
	 * ls_pycb_forget_stats): a later set-up counts from zero again. */
	free(t->cb_last);
	t->cb_last = NULL;
}

/* Precise mode wanted but not active: queue its set-up when due. Engine
 * lock held. */
void ls_mon_precise_step(struct ls_mon *m, struct ls_mon_target *t, uint64_t now)
{
	if (t->mode != LS_MODE_PRECISE) {
		struct precise_job j = { .add = true, .version = true, .pid = t->pid,
					 .attached_ns = t->attached_ns, .gen = t->gen };

		/* Light mode: its version only, when not known yet. */
		if (t->py_major || t->version_queued || t->exited_ns ||
		    t->version_tries >= RESOLVE_TRIES || now < t->next_version_ns)
			return;
		if (m->jobs && ls_jobq_push(m->jobs, &j))
			t->version_queued = true;
		else
			t->version_tries = RESOLVE_TRIES;
		return;
	}
	if (t->mode != LS_MODE_PRECISE || t->precise || t->precise_queued || t->exited_ns ||
	    t->resolve_tries >= RESOLVE_TRIES || now < t->next_resolve_ns)
		return;
	if (queue_job(m, true, t->pid, t->attached_ns, t->gen)) {
		t->precise_queued = true;
	} else {
		t->resolve_tries = RESOLVE_TRIES;
		snprintf(t->note, sizeof(t->note), "no thread for the precise-mode set-up");
	}
}

/* A job ran past LS_MON_JOB_TIMEOUT_NS (ls_jobq_timeout_fn, on the
 * engine's thread): the target blocks its own set-up (its files or memory
 * do not answer). It stays in light mode, not tried again; the jobs behind
 * it go on in a new worker. */
static void job_timed_out(const void *job, void *ctx)
{
	const struct precise_job *j = job;
	struct ls_mon *m = ctx;
	struct ls_mon_target *t;

	ls_mon_lock(m);
	t = j->add ? find_target_at(m, j->pid, j->attached_ns) : NULL;
	if (t && j->version) {
		t->version_queued = false;
		t->version_tries = RESOLVE_TRIES;
	} else if (t) {
		t->precise_queued = false;
		t->resolve_tries = RESOLVE_TRIES;
		snprintf(t->note, sizeof(t->note), "precise-mode set-up did not finish in %llu s (the "
			 "process's files or memory do not answer)",
			 (unsigned long long)(LS_MON_JOB_TIMEOUT_NS / 1000000000ULL));
	}
	ls_mon_log(m, "pid %d: %s did not finish in %llu s; abandoned (later targets go on)",
		   (int)j->pid, !j->add ? "precise-mode take-down" : j->version ? "version lookup" :
		   "precise-mode set-up", (unsigned long long)(LS_MON_JOB_TIMEOUT_NS / 1000000000ULL));
	ls_mon_unlock(m);
}

struct ls_jobq *ls_mon_precise_queue(struct ls_mon *m)
{
	return ls_jobq_new(sizeof(struct precise_job), run_job, pick_job, job_timed_out,
			   LS_MON_JOB_TIMEOUT_NS, m);
}
