// SPDX-License-Identifier: MIT
/* loopscoped's monitoring engine: rules, discovery, per-target state. */
#include <dirent.h>
#include <malloc.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/discover.h"
#include "loopscope/monitor.h"
#include "loopscope/procfs.h"
#include "loopscope/pycallback.h"
#include "loopscope/pyname.h"
#include "loopscope/pytarget.h"
#include "engine.h"
#include "jobq.h"

void ls_mon_log(struct ls_mon *m, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (m->log)
		m->log(line, m->log_ctx);
}

/* ---- targets -------------------------------------------------------------- */

struct ls_mon_target *ls_mon_find_target(struct ls_mon *m, pid_t pid)
{
	for (size_t i = 0; i < m->ntargets; i++)
		if (m->targets[i].pid == pid && !m->targets[i].exited_ns)
			return &m->targets[i];
	return NULL;
}

static size_t alive_targets(const struct ls_mon *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->ntargets; i++)
		n += !m->targets[i].exited_ns;
	return n;
}

struct ls_mon_thread *ls_mon_find_thread(struct ls_mon_target *t, uint32_t tid, bool create)
{
	struct ls_mon_thread *grown;

	for (size_t i = 0; i < t->nthreads; i++)
		if (t->threads[i].tid == tid)
			return &t->threads[i];
	if (!create)
		return NULL;
	grown = realloc(t->threads, (t->nthreads + 1) * sizeof(*grown));
	if (!grown)
		return NULL;
	t->threads = grown;
	memset(&grown[t->nthreads], 0, sizeof(*grown));
	grown[t->nthreads].tid = tid;
	ls_target_thread_name(t->pid, (pid_t)tid, grown[t->nthreads].name,
			      sizeof(grown[t->nthreads].name));
	grown[t->nthreads].win.utilization = -1;
	return &grown[t->nthreads++];
}

static void free_target_at(struct ls_mon *m, size_t i);

static int add_target(struct ls_mon *m, pid_t pid, const struct ls_proc_info *pi, const char *service,
		      enum ls_mode mode, int rule, bool manual, uint64_t seen_ns, char *err, size_t len)
{
	struct ls_mon_target *t;
	uint64_t now = ls_sys_now_ns();
	int e;

	if ((int)alive_targets(m) >= m->cfg.max_targets) {
		snprintf(err, len, "pid %d: %d targets already (max_targets)", (int)pid,
			 m->cfg.max_targets);
		return -E2BIG;
	}
	e = ls_loop_add_target(m->loop, pid);
	if (e) {
		snprintf(err, len, "pid %d: cannot add target: %s", (int)pid, strerror(-e));
		return e;
	}
	ls_mon_lock(m);
	/* The same pid in its grace period (it exec'd out of the rules and
	 * back, the pid was reused, a reload dropped its rule and it is
	 * attached by hand): its series would be the new one's, twice. */
	for (size_t i = m->ntargets; i-- > 0;)
		if (m->targets[i].pid == pid && m->targets[i].exited_ns)
			free_target_at(m, i);
	if (m->ntargets == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 32;
		struct ls_mon_target *grown = realloc(m->targets, cap * sizeof(*grown));

		if (!grown) {
			ls_mon_unlock(m);
			ls_loop_remove_target(m->loop, pid);
			snprintf(err, len, "out of memory");
			return -ENOMEM;
		}
		m->targets = grown;
		m->cap = cap;
	}
	t = &m->targets[m->ntargets++];
	memset(t, 0, sizeof(*t));
	t->pid = pid;
	t->ns_pid = pi->ns_pid;
	snprintf(t->comm, sizeof(t->comm), "%s", pi->comm);
	snprintf(t->service, sizeof(t->service), "%s", service);
	snprintf(t->exe, sizeof(t->exe), "%s", pi->exe);
	t->mode = mode;
	t->manual = manual;
	t->rule = rule;
	t->attached_ns = now;
	t->seen_ns = seen_ns;
	m->attached_total++;
	ls_discover_watch(m->disc, pid, true);
	if (t->ns_pid != pid)
		ls_mon_log(m, "pid %d (%s, service %s, pid %d in its namespace): attached, %s mode",
		      (int)pid, t->comm, t->service, (int)t->ns_pid, ls_config_mode_name(mode));
	else
		ls_mon_log(m, "pid %d (%s, service %s): attached, %s mode", (int)pid, t->comm, t->service,
		      ls_config_mode_name(mode));
	ls_mon_precise_step(m, t, now);
	ls_mon_unlock(m);
	return 0;
}

/* The process is gone (or no longer matches): stop measuring it, keep its
 * last figures for the grace period. Call with the lock held. */
static void retire_target(struct ls_mon *m, struct ls_mon_target *t, const char *why)
{
	struct ls_loop_thread_counts c;

	ls_mon_precise_stop(m, t);
	if (ls_loop_thread_counts(m->loop, t->pid, &c) == 0) {
		t->threads_untracked = c.untracked;
		t->threads_pruned = c.pruned;
	}
	ls_loop_remove_target(m->loop, t->pid);
	ls_discover_watch(m->disc, t->pid, false);
	t->exited_ns = ls_sys_now_ns();
	ls_mon_log(m, "pid %d (%s, service %s): %s; detached", (int)t->pid, t->comm, t->service, why);
}

static void free_target_at(struct ls_mon *m, size_t i)
{
	ls_pyname_cache_forget(m->names, m->targets[i].pid);
	ls_mon_stacks_forget(m, m->targets[i].pid);
	ls_mon_flight_free(&m->targets[i]);
	free(m->targets[i].threads);
	free(m->targets[i].cb_last);
	free(m->targets[i].py_off);
	memmove(&m->targets[i], &m->targets[i + 1], (m->ntargets - i - 1) * sizeof(m->targets[0]));
	m->ntargets--;
}

/* The first rule matching pid, or -1. */
static int match_rules(const struct ls_mon *m, pid_t pid, const struct ls_proc_info *pi)
{
	for (int i = 0; i < m->cfg.nrules; i++)
		if (ls_rule_match(&m->cfg.rules[i], pid, pi->exe, pi->cmdline, pi->cgroup))
			return i;
	return -1;
}

/* A process appeared (exec, fork of a target, /proc scan): attach it when
 * a rule matches. */
static void consider(struct ls_mon *m, pid_t pid, uint64_t seen_ns)
{
	struct ls_proc_info pi;
	char err[256];
	int r, e;

	if (pid == m->self || pid <= 0 || ls_mon_find_target(m, pid))
		return;
	ls_proc_info(pid, &pi);
	if (!pi.exe[0] && !pi.cmdline[0])
		return; /* gone already, or a kernel thread */
	if (pi.exe[0] && !strcmp(pi.exe, m->self_exe))
		return; /* another loopscoped (its command line may name the rule) */
	r = match_rules(m, pid, &pi);
	if (r < 0)
		return;
	e = add_target(m, pid, &pi, m->cfg.rules[r].service, m->cfg.rules[r].mode, r, false, seen_ns,
		       err, sizeof(err));
	if (e == -E2BIG) {
		if (!m->limit_logged)
			ls_mon_log(m, "%s; more matching processes are not monitored", err);
		m->limit_logged = true;
	} else if (e) {
		ls_mon_log(m, "%s", err);
	}
}

/* A target exec'd: it may have become another program. */
static void target_exec(struct ls_mon *m, struct ls_mon_target *t)
{
	struct ls_proc_info pi;
	int r;

	ls_proc_info(t->pid, &pi);
	r = t->manual ? -1 : match_rules(m, t->pid, &pi);
	ls_mon_lock(m);
	if (!t->manual && r < 0) {
		snprintf(t->comm, sizeof(t->comm), "%s", pi.comm);
		retire_target(m, t, "exec'd a program no rule matches");
		ls_mon_unlock(m);
		return;
	}
	snprintf(t->comm, sizeof(t->comm), "%s", pi.comm);
	snprintf(t->exe, sizeof(t->exe), "%s", pi.exe);
	if (r >= 0) {
		snprintf(t->service, sizeof(t->service), "%s", m->cfg.rules[r].service);
		t->mode = m->cfg.rules[r].mode;
		t->rule = r;
	}
	/* The old image's uprobes are gone with it; resolve the new one. */
	ls_mon_precise_stop(m, t);
	ls_mon_stacks_stop(m, t);
	t->py_major = t->py_minor = 0;
	t->resolve_tries = 0;
	t->version_tries = 0;
	t->next_version_ns = 0;
	t->next_resolve_ns = 0;
	ls_mon_log(m, "pid %d (%s, service %s): exec'd %s", (int)t->pid, t->comm, t->service, t->exe);
	ls_mon_precise_step(m, t, ls_sys_now_ns());
	ls_mon_unlock(m);
}

static void on_discover(enum ls_discover_what what, pid_t pid, uint64_t ts_ns, void *ctx)
{
	struct ls_mon *m = ctx;
	struct ls_mon_target *t = ls_mon_find_target(m, pid);

	switch (what) {
	case LS_DISCOVER_EXEC:
		if (t)
			target_exec(m, t);
		else
			consider(m, pid, ts_ns);
		break;
	case LS_DISCOVER_FORK:
		if (!t)
			consider(m, pid, ts_ns);
		break;
	case LS_DISCOVER_EXIT:
		if (t) {
			ls_mon_lock(m);
			retire_target(m, t, "exited");
			ls_mon_unlock(m);
		}
		break;
	}
}

static void scan_proc(struct ls_mon *m)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0)
			continue;
		consider(m, (pid_t)pid, 0);
	}
	closedir(d);
}

static void housekeeping(struct ls_mon *m, uint64_t now)
{
	size_t before = m->ntargets;

	ls_mon_lock(m);
	for (size_t i = 0; i < m->ntargets;) {
		struct ls_mon_target *t = &m->targets[i];

		if (!t->exited_ns && ls_target_alive(t->pid))
			retire_target(m, t, "exited");
		if (t->exited_ns && now - t->exited_ns >= m->cfg.grace_ns) {
			free_target_at(m, i);
			continue;
		}
		ls_mon_precise_step(m, t, now);
		i++;
	}
	ls_mon_unlock(m);
	/* Targets went away: give their memory back (a daemon under churn
	 * would otherwise keep its high-water mark). */
	if (m->ntargets < before)
		malloc_trim(0);
}

int ls_mon_poll(struct ls_mon *m, int timeout_ms)
{
	uint64_t now;
	int err, e2;

	/* The loop's ring buffer waits; the others are drained right after
	 * (discovery within timeout_ms of an exec). */
	err = ls_loop_poll(m->loop, timeout_ms);
	e2 = ls_discover_poll(m->disc, 0);
	if (ls_mon_pycb(m))
		ls_pycb_poll(ls_mon_pycb(m), 0);
	now = ls_sys_now_ns();
	if (now >= m->next_scan_ns) {
		m->limit_logged = false;
		scan_proc(m);
		m->next_scan_ns = now + m->cfg.scan_ns;
	}
	/* A set-up that hangs (a target blocking it) is abandoned. */
	if (m->jobs)
		ls_jobq_watch(m->jobs, now);
	/* Precise-mode set-ups due (new targets, retries after an exec). */
	ls_mon_lock(m);
	for (size_t i = 0; i < m->ntargets; i++) {
		struct ls_mon_target *t = &m->targets[i];

		if (t->mode == LS_MODE_PRECISE && !t->precise && !t->exited_ns &&
		    t->resolve_tries < RESOLVE_TRIES && now >= t->next_resolve_ns)
			ls_mon_precise_step(m, t, now);
		ls_mon_stacks_step(m, t);
	}
	ls_mon_unlock(m);
	if (now >= m->next_tick_ns) {
		ls_mon_tick(m);
		ls_mon_lock(m);
		ls_mon_flight_step(m, now);
		ls_mon_unlock(m);
		housekeeping(m, now);
		ls_mon_stacks_prune(m, now);
		while (m->next_tick_ns <= now)
			m->next_tick_ns += m->cfg.interval_ns;
	}
	if (err < 0 && err != -EINTR)
		return err;
	if (e2 < 0 && e2 != -EINTR)
		return e2;
	return err == -EINTR || e2 == -EINTR ? -EINTR : 0;
}

/* ---- life cycle -------------------------------------------------------------- */

int ls_mon_open(const struct ls_config *cfg, ls_mon_log_fn log, void *log_ctx,
		struct ls_mon **out, char *err, size_t len)
{
	struct ls_loop_opts lopts = { 0 };
	struct ls_mon *m;
	const char *btf = cfg->btf_path[0] ? cfg->btf_path : NULL;
	int e;

	e = ls_sys_check(btf, err, len);
	if (e)
		return e;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	m->log = log;
	m->log_ctx = log_ctx;
	m->self = getpid();
	{
		ssize_t n = readlink("/proc/self/exe", m->self_exe, sizeof(m->self_exe) - 1);

		m->self_exe[n > 0 ? n : 0] = '\0';
	}
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->pylock, NULL);
	m->slow = calloc(LS_MON_SLOW_KEPT, sizeof(*m->slow));
	/* Touched now (~0.4 MiB): the agent's memory is what it is from the
	 * start, it does not grow as slow events fill the ring. */
	if (m->slow)
		explicit_bzero(m->slow, LS_MON_SLOW_KEPT * sizeof(*m->slow));
	m->jobs = ls_mon_precise_queue(m);
	if (!m->slow || !m->jobs) {
		e = -ENOMEM;
		snprintf(err, len, "out of memory");
		goto cleanup;
	}
	lopts.slow_threshold_ns = cfg->threshold_ns;
	lopts.thread_quota = (unsigned int)cfg->thread_quota;
	lopts.btf_path = btf;
	lopts.on_slow_busy = ls_mon_on_slow_busy;
	lopts.ctx = m;
	/* Python stacks of slow periods, as attach takes them: sampled at
	 * 1 kHz, only in busy periods past a quarter of the threshold. */
	if (cfg->stacks) {
		lopts.stack_after_ns = cfg->threshold_ns / LS_MON_STACK_AFTER_DIV ?
					       cfg->threshold_ns / LS_MON_STACK_AFTER_DIV : 1;
		lopts.sample_hz = 1000;
		lopts.on_stack = ls_mon_on_stack;
	}
	if (ls_mon_stacks_open(m)) {
		e = -ENOMEM;
		snprintf(err, len, "out of memory");
		goto cleanup;
	}
	e = ls_loop_open(&lopts, &m->loop);
	if (e) {
		snprintf(err, len, "loading BPF programs failed: %s", strerror(-e));
		goto cleanup;
	}
	if (ls_loop_stacks_error(m->loop))
		ls_mon_log(m, "no Python stacks of slow events: their BPF programs could not be set up "
			   "(%s); slow events keep their times", strerror(-ls_loop_stacks_error(m->loop)));
	e = ls_discover_open(btf, on_discover, m, &m->disc, err, len);
	if (e)
		goto cleanup;
	/* Exec events first, then the scan: a process that execs in between
	 * is seen twice, and attached once. */
	scan_proc(m);
	for (int i = 0; i < m->cfg.nrules; i++) {
		bool any = false;

		for (size_t t = 0; t < m->ntargets && !any; t++)
			any = m->targets[t].rule == i;
		if (!any)
			ls_mon_log(m, "rule %d (service %s%s%.0d) matches no process yet; waiting for one to start",
			      i + 1, m->cfg.rules[i].service, m->cfg.rules[i].line ? ", line " : "",
			      m->cfg.rules[i].line);
	}
	m->next_scan_ns = ls_sys_now_ns() + m->cfg.scan_ns;
	m->next_tick_ns = ls_sys_now_ns() + m->cfg.interval_ns;
	*out = m;
	return 0;
cleanup:
	ls_mon_close(m);
	return e < 0 ? e : -EINVAL;
}

int ls_mon_reload(struct ls_mon *m, const struct ls_config *cfg)
{
	if (strcmp(cfg->listen, m->cfg.listen) || strcmp(cfg->socket_path, m->cfg.socket_path) ||
	    strcmp(cfg->btf_path, m->cfg.btf_path))
		ls_mon_log(m, "reload: listen, socket and btf changes need a restart; kept the old ones");
	if (cfg->threshold_ns != m->cfg.threshold_ns && ls_mon_pycb(m))
		ls_mon_log(m, "reload: the new threshold applies to busy periods now, to precise-mode "
		      "callbacks after a restart");
	ls_mon_lock(m);
	{
		struct ls_config keep = m->cfg;

		m->cfg = *cfg;
		snprintf(m->cfg.listen, sizeof(m->cfg.listen), "%s", keep.listen);
		snprintf(m->cfg.socket_path, sizeof(m->cfg.socket_path), "%s", keep.socket_path);
		snprintf(m->cfg.btf_path, sizeof(m->cfg.btf_path), "%s", keep.btf_path);
	}
	ls_loop_set_threshold(m->loop, m->cfg.threshold_ns);
	/* The flight recorder turned off: its memory goes. */
	for (size_t i = 0; !ls_mon_flight_on(m) && i < m->ntargets; i++)
		ls_mon_flight_free(&m->targets[i]);
	for (size_t i = 0; i < m->ntargets; i++) {
		struct ls_mon_target *t = &m->targets[i];
		struct ls_proc_info pi;
		int r;

		if (t->exited_ns || t->manual)
			continue;
		ls_proc_info(t->pid, &pi);
		r = match_rules(m, t->pid, &pi);
		if (r < 0) {
			retire_target(m, t, "no rule matches it any more");
			continue;
		}
		t->rule = r;
		snprintf(t->service, sizeof(t->service), "%s", m->cfg.rules[r].service);
		if (t->mode != m->cfg.rules[r].mode) {
			t->mode = m->cfg.rules[r].mode;
			if (t->mode == LS_MODE_LIGHT) {
				ls_mon_precise_stop(m, t);
			} else {
				t->gen++;
				t->resolve_tries = 0;
				t->next_resolve_ns = 0;
				ls_mon_precise_step(m, t, ls_sys_now_ns());
			}
		}
	}
	ls_mon_unlock(m);
	scan_proc(m);
	ls_mon_log(m, "reloaded: %d rule%s, %zu target%s", m->cfg.nrules, m->cfg.nrules == 1 ? "" : "s",
	      alive_targets(m), alive_targets(m) == 1 ? "" : "s");
	return 0;
}

int ls_mon_attach(struct ls_mon *m, pid_t pid, const char *service, enum ls_mode mode,
		  char *err, size_t len)
{
	struct ls_proc_info pi;

	if (pid == m->self) {
		snprintf(err, len, "pid %d is loopscoped itself", (int)pid);
		return -EINVAL;
	}
	if (ls_target_alive(pid)) {
		snprintf(err, len, "pid %d: no such process", (int)pid);
		return -ESRCH;
	}
	if (ls_mon_find_target(m, pid)) {
		snprintf(err, len, "pid %d: already monitored", (int)pid);
		return -EEXIST;
	}
	ls_proc_info(pid, &pi);
	return add_target(m, pid, &pi, service && *service ? service : "manual", mode, -1, true, 0,
			  err, len);
}

int ls_mon_detach(struct ls_mon *m, pid_t pid)
{
	struct ls_mon_target *t;
	bool found = false;

	ls_mon_lock(m);
	/* The live entry first (its probes go), then every entry of the pid
	 * (one in its grace period may be there too). */
	t = ls_mon_find_target(m, pid);
	if (t)
		retire_target(m, t, "detached on request");
	for (size_t i = m->ntargets; i-- > 0;) {
		if (m->targets[i].pid != pid)
			continue;
		free_target_at(m, i);
		found = true;
	}
	ls_mon_unlock(m);
	return found ? 0 : -ENOENT;
}

void ls_mon_close(struct ls_mon *m)
{
	if (!m)
		return;
	/* The worker finishes the job in progress; ls_pycb_close takes down
	 * every uprobe left, queued for removal or not. A worker stuck in a
	 * job (a target blocking its set-up) is not waited for beyond
	 * LS_MON_CLOSE_WAIT_NS: what it may still touch (the engine, the
	 * precise session) is left to the process's exit, which closes every
	 * BPF link and program with its file descriptors. */
	if (!ls_jobq_free(m->jobs, LS_MON_CLOSE_WAIT_NS)) {
		ls_mon_log(m, "a precise-mode job is stuck; leaving it to the exit");
		ls_discover_close(m->disc);
		ls_loop_close(m->loop);
		return;
	}
	ls_discover_close(m->disc);
	ls_pycb_close(m->pycb);
	ls_loop_close(m->loop);
	ls_mon_stacks_close(m);
	ls_pyname_cache_free(m->names);
	for (size_t i = 0; i < m->ntargets; i++) {
		ls_mon_flight_free(&m->targets[i]);
		free(m->targets[i].threads);
		free(m->targets[i].cb_last);
		free(m->targets[i].py_off);
	}
	free(m->targets);
	free(m->slow);
	pthread_mutex_destroy(&m->pylock);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- read access ------------------------------------------------------------- */

void ls_mon_lock(struct ls_mon *m)
{
	pthread_mutex_lock(&m->lock);
}

void ls_mon_unlock(struct ls_mon *m)
{
	pthread_mutex_unlock(&m->lock);
}

size_t ls_mon_ntargets(const struct ls_mon *m)
{
	return m->ntargets;
}

const struct ls_mon_target *ls_mon_target_at(const struct ls_mon *m, size_t i)
{
	return i < m->ntargets ? &m->targets[i] : NULL;
}

const struct ls_mon_slow *ls_mon_slow_events(const struct ls_mon *m, size_t *n)
{
	*n = m->nslow;
	return m->slow;
}

uint64_t ls_mon_lost_events(const struct ls_mon *m)
{
	return ls_loop_lost_events(m->loop) + (ls_mon_pycb((struct ls_mon *)m) ?
		ls_pycb_lost_events(ls_mon_pycb((struct ls_mon *)m)) : 0) +
	       ls_discover_lost_events(m->disc);
}

uint64_t ls_mon_offcpu_unseen(const struct ls_mon *m)
{
	return ls_loop_offcpu_unseen(m->loop, NULL);
}

uint64_t ls_mon_name_evictions(const struct ls_mon *m)
{
	return ls_pyname_cache_evictions(m->names);
}

size_t ls_mon_names_cached(const struct ls_mon *m)
{
	return ls_pyname_cache_size(m->names);
}

void ls_mon_thread_table(const struct ls_mon *m, struct ls_loop_table_counts *out)
{
	ls_loop_table_counts(m->loop, out);
}

uint64_t ls_mon_attached_total(const struct ls_mon *m)
{
	return m->attached_total;
}

const struct ls_config *ls_mon_config(const struct ls_mon *m)
{
	return &m->cfg;
}

uint64_t ls_mon_window_end_ns(const struct ls_mon *m)
{
	return m->window_end_ns;
}
