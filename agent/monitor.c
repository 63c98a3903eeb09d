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

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "loopscope/discover_events.h"
#include "loopscope/monitor.h"
#include "loopscope/pycallback.h"
#include "loopscope/pyname.h"
#include "loopscope/pytarget.h"
#include "loopscope/utf8.h"
#include "discover.skel.h"

/* Retries of precise-mode resolution after an exec: the interpreter's
 * shared library is mapped by the dynamic loader a little after the exec
 * event, so a first failure is not final. */
#define RESOLVE_TRIES 4
/* Before the 2nd, 3rd and 4th try (the 1st is at once). */
static const uint64_t resolve_delay_ns[RESOLVE_TRIES - 1] = {
	400000000ULL, 1000000000ULL, 3000000000ULL,
};

struct precise_job {
	bool add;             /* set up precise mode, or take it down */
	pid_t pid;
	uint64_t attached_ns; /* which target of that pid (add) */
	uint64_t gen;         /* and which of its lives (add): ls_mon_target.gen */
};

struct ls_mon {
	struct ls_config cfg;
	ls_mon_log_fn log;
	void *log_ctx;
	pthread_mutex_t lock;
	struct ls_loop *loop;
	struct ls_pycb *pycb;        /* NULL until a target needs precise mode */
	bool pycb_failed;
	struct ls_pyname_cache *names;
	struct discover_bpf *disc;
	struct ring_buffer *disc_rb;
	struct ls_mon_target *targets;
	size_t ntargets, cap;
	struct ls_mon_slow *slow;    /* LS_MON_SLOW_KEPT, oldest first */
	size_t nslow;
	uint64_t slow_seq;
	uint64_t attached_total;
	uint64_t next_tick_ns, next_scan_ns, window_end_ns;
	bool limit_logged;
	pid_t self;
	char self_exe[256];          /* other loopscope agents are never targets */
	/* The precise-mode worker (see job_add). */
	pthread_mutex_t pylock;
	pthread_mutex_t job_lock;
	pthread_cond_t job_cond;
	pthread_t worker;
	bool worker_started, worker_stop;
	struct precise_job *jobs;    /* oldest first; set-ups are served first */
	size_t njobs, jobs_cap;
};

static void logf_(struct ls_mon *m, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (m->log)
		m->log(line, m->log_ctx);
}

/* ---- /proc ---------------------------------------------------------------- */

static ssize_t read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		buf[0] = '\0';
		return -1;
	}
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	return (ssize_t)n;
}

struct proc_info {
	char exe[256], cmdline[512], cgroup[256], comm[16];
	pid_t ns_pid;
};

static void proc_info(pid_t pid, struct proc_info *pi)
{
	char path[64], buf[4096], *p;
	ssize_t n;

	memset(pi, 0, sizeof(*pi));
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, pi->exe, sizeof(pi->exe) - 1);
	pi->exe[n > 0 ? n : 0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	n = read_file(path, pi->cmdline, sizeof(pi->cmdline));
	for (ssize_t i = 0; i + 1 < n; i++)
		if (pi->cmdline[i] == '\0')
			pi->cmdline[i] = ' ';
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	read_file(path, buf, sizeof(buf));
	/* cgroup v2: the line "0::/path" (cgroups(7)). */
	for (p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (!strncmp(p, "0::", 3)) {
			size_t l = strcspn(p + 3, "\n");

			if (l >= sizeof(pi->cgroup))
				l = sizeof(pi->cgroup) - 1;
			memcpy(pi->cgroup, p + 3, l);
			pi->cgroup[l] = '\0';
			break;
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	read_file(path, pi->comm, sizeof(pi->comm));
	pi->comm[strcspn(pi->comm, "\n")] = '\0';
	/* The kernel cuts comm at 15 bytes, maybe inside a character. */
	ls_utf8_cut(pi->comm);
	/* NSpid: the pid in each pid namespace, outermost first (proc(5)). */
	pi->ns_pid = pid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	read_file(path, buf, sizeof(buf));
	p = strstr(buf, "\nNSpid:");
	if (p) {
		char *end = p + 7 + strcspn(p + 7, "\n"), *last = NULL;

		for (char *q = p + 7; q < end; q++)
			if ((*q >= '0' && *q <= '9') && (q[-1] == ' ' || q[-1] == '\t'))
				last = q;
		if (last)
			pi->ns_pid = (pid_t)atoi(last);
	}
}

/* ---- targets -------------------------------------------------------------- */

static struct ls_mon_target *find_target(struct ls_mon *m, pid_t pid)
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

static struct ls_mon_thread *find_thread(struct ls_mon_target *t, uint32_t tid, bool create)
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

static void watch(struct ls_mon *m, pid_t pid, bool on)
{
	__u32 key = (__u32)pid;
	__u8 one = 1;
	int fd = bpf_map__fd(m->disc->maps.watched);

	if (on)
		bpf_map_update_elem(fd, &key, &one, BPF_ANY);
	else
		bpf_map_delete_elem(fd, &key);
}

static void on_slow_callback(const struct ls_slow_callback_event *e, void *ctx);

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
 * reads (ls_pycb_poll, ls_pycb_snapshot) need no lock.
 */
static struct ls_mon_target *find_target_at(struct ls_mon *m, pid_t pid, uint64_t attached_ns)
{
	for (size_t i = 0; i < m->ntargets; i++)
		if (m->targets[i].pid == pid && m->targets[i].attached_ns == attached_ns &&
		    !m->targets[i].exited_ns)
			return &m->targets[i];
	return NULL;
}

static struct ls_pycb *pycb_of(struct ls_mon *m)
{
	return __atomic_load_n(&m->pycb, __ATOMIC_ACQUIRE);
}

/* Worker: the ADD job. Resolve and attach without the engine's lock, then
 * record the outcome under it. */
static void job_add(struct ls_mon *m, pid_t pid, uint64_t attached_ns, uint64_t gen)
{
	struct ls_py_target py;
	struct ls_mon_target *t;
	struct ls_pycb *pycb = pycb_of(m);
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
				.on_slow_callback = on_slow_callback,
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
		t->py_off = py.off;
		t->note[0] = '\0';
		logf_(m, "pid %d (%s, service %s): precise mode, CPython %d.%d (%s)", (int)pid, t->comm,
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
			logf_(m, "pid %d (%s, service %s): %s; light mode", (int)pid, t->comm, t->service,
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

/* The job to run next (job_lock held, njobs > 0): the oldest set-up, so
 * that a new target's callbacks are named without waiting behind uprobe
 * removals (~0.7 s each); but a removal for the same pid queued before it
 * goes first (the pid exec'd or was reused: its old probes go before the
 * new ones come). Removals when no set-up waits. */
static size_t next_job(struct ls_mon *m)
{
	size_t a;

	for (a = 0; a < m->njobs && !m->jobs[a].add; a++)
		;
	if (a == m->njobs)
		return 0;
	for (size_t i = 0; i < a; i++)
		if (m->jobs[i].pid == m->jobs[a].pid)
			return i;
	return a;
}

static void *worker_main(void *arg)
{
	struct ls_mon *m = arg;

	pthread_mutex_lock(&m->job_lock);
	for (;;) {
		struct precise_job j;
		size_t k;

		while (!m->njobs && !m->worker_stop)
			pthread_cond_wait(&m->job_cond, &m->job_lock);
		if (m->worker_stop)
			break;
		k = next_job(m);
		j = m->jobs[k];
		memmove(&m->jobs[k], &m->jobs[k + 1], (m->njobs - k - 1) * sizeof(m->jobs[0]));
		m->njobs--;
		pthread_mutex_unlock(&m->job_lock);
		if (j.add) {
			job_add(m, j.pid, j.attached_ns, j.gen);
		} else if (pycb_of(m)) {
			pthread_mutex_lock(&m->pylock);
			ls_pycb_remove_target(pycb_of(m), j.pid);
			/* Its callback histograms too: the map is shared by
			 * every process, and churn would fill it. */
			ls_pycb_forget_stats(pycb_of(m), j.pid);
			pthread_mutex_unlock(&m->pylock);
			logf_(m, "pid %d: precise-mode uprobes removed", (int)j.pid);
		}
		pthread_mutex_lock(&m->job_lock);
	}
	pthread_mutex_unlock(&m->job_lock);
	return NULL;
}

/* Queue a job; false when no worker or no memory (then the caller does
 * without). */
static bool queue_job(struct ls_mon *m, bool add, pid_t pid, uint64_t attached_ns, uint64_t gen)
{
	bool ok = false;

	pthread_mutex_lock(&m->job_lock);
	if (!m->worker_started && pthread_create(&m->worker, NULL, worker_main, m) == 0)
		m->worker_started = true;
	if (m->worker_started && m->njobs == m->jobs_cap) {
		size_t cap = m->jobs_cap ? m->jobs_cap * 2 : 64;
		struct precise_job *grown = realloc(m->jobs, cap * sizeof(*grown));

		if (grown) {
			m->jobs = grown;
			m->jobs_cap = cap;
		}
	}
	if (m->worker_started && m->njobs < m->jobs_cap) {
		m->jobs[m->njobs++] = (struct precise_job){ .add = add, .pid = pid,
							     .attached_ns = attached_ns, .gen = gen };
		pthread_cond_signal(&m->job_cond);
		ok = true;
	}
	pthread_mutex_unlock(&m->job_lock);
	return ok;
}

/* Take t out of precise mode (its uprobes go in the worker). Engine lock
 * held. */
static void stop_precise(struct ls_mon *m, struct ls_mon_target *t)
{
	if (t->precise && pycb_of(m) && !queue_job(m, false, t->pid, 0, 0)) {
		pthread_mutex_lock(&m->pylock);
		ls_pycb_remove_target(pycb_of(m), t->pid);
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
static void resolve_step(struct ls_mon *m, struct ls_mon_target *t, uint64_t now)
{
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

static void free_target_at(struct ls_mon *m, size_t i);

static int add_target(struct ls_mon *m, pid_t pid, const struct proc_info *pi, const char *service,
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
	watch(m, pid, true);
	if (t->ns_pid != pid)
		logf_(m, "pid %d (%s, service %s, pid %d in its namespace): attached, %s mode",
		      (int)pid, t->comm, t->service, (int)t->ns_pid, ls_config_mode_name(mode));
	else
		logf_(m, "pid %d (%s, service %s): attached, %s mode", (int)pid, t->comm, t->service,
		      ls_config_mode_name(mode));
	resolve_step(m, t, now);
	ls_mon_unlock(m);
	return 0;
}

/* The process is gone (or no longer matches): stop measuring it, keep its
 * last figures for the grace period. Call with the lock held. */
static void retire_target(struct ls_mon *m, struct ls_mon_target *t, const char *why)
{
	stop_precise(m, t);
	ls_loop_remove_target(m->loop, t->pid);
	watch(m, t->pid, false);
	t->exited_ns = ls_sys_now_ns();
	logf_(m, "pid %d (%s, service %s): %s; detached", (int)t->pid, t->comm, t->service, why);
}

static void free_target_at(struct ls_mon *m, size_t i)
{
	free(m->targets[i].threads);
	free(m->targets[i].cb_last);
	memmove(&m->targets[i], &m->targets[i + 1], (m->ntargets - i - 1) * sizeof(m->targets[0]));
	m->ntargets--;
}

/* The first rule matching pid, or -1. */
static int match_rules(const struct ls_mon *m, pid_t pid, const struct proc_info *pi)
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
	struct proc_info pi;
	char err[256];
	int r, e;

	if (pid == m->self || pid <= 0 || find_target(m, pid))
		return;
	proc_info(pid, &pi);
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
			logf_(m, "%s; more matching processes are not monitored", err);
		m->limit_logged = true;
	} else if (e) {
		logf_(m, "%s", err);
	}
}

/* A target exec'd: it may have become another program. */
static void target_exec(struct ls_mon *m, struct ls_mon_target *t)
{
	struct proc_info pi;
	int r;

	proc_info(t->pid, &pi);
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
	stop_precise(m, t);
	t->py_major = t->py_minor = 0;
	t->resolve_tries = 0;
	t->next_resolve_ns = 0;
	logf_(m, "pid %d (%s, service %s): exec'd %s", (int)t->pid, t->comm, t->service, t->exe);
	resolve_step(m, t, ls_sys_now_ns());
	ls_mon_unlock(m);
}

static int on_disc(void *ctx, void *data, size_t size)
{
	struct ls_mon *m = ctx;
	const struct ls_disc_event *e = data;
	struct ls_mon_target *t;

	if (size < sizeof(*e))
		return 0;
	t = find_target(m, (pid_t)e->tgid);
	switch (e->type) {
	case LS_DISC_EXEC:
		if (t)
			target_exec(m, t);
		else
			consider(m, (pid_t)e->tgid, e->ts_ns);
		break;
	case LS_DISC_FORK:
		if (!t)
			consider(m, (pid_t)e->tgid, e->ts_ns);
		break;
	case LS_DISC_EXIT:
		if (t) {
			ls_mon_lock(m);
			retire_target(m, t, "exited");
			ls_mon_unlock(m);
		}
		break;
	}
	return 0;
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

/* ---- events ----------------------------------------------------------------- */

static void push_slow(struct ls_mon *m, const struct ls_mon_slow *s)
{
	if (m->nslow == LS_MON_SLOW_KEPT) {
		memmove(&m->slow[0], &m->slow[1], (LS_MON_SLOW_KEPT - 1) * sizeof(m->slow[0]));
		m->nslow--;
	}
	m->slow[m->nslow] = *s;
	m->slow[m->nslow].seq = ++m->slow_seq;
	m->nslow++;
}

static struct ls_mon_target *live_or_any(struct ls_mon *m, uint32_t pid)
{
	struct ls_mon_target *t = find_target(m, (pid_t)pid);

	for (size_t i = 0; !t && i < m->ntargets; i++)
		if (m->targets[i].pid == (pid_t)pid)
			t = &m->targets[i];
	return t;
}

static void on_slow_busy(const struct ls_slow_busy_event *e, void *ctx)
{
	struct ls_mon *m = ctx;
	struct ls_mon_target *t;
	struct ls_mon_slow s = { .kind = LS_MON_SLOW_BUSY };
	uint64_t off = e->blocked_ns + e->runnable_ns;
	char d[3][16], sc[64];
	int n;

	ls_mon_lock(m);
	t = live_or_any(m, e->tgid);
	s.pid = e->tgid;
	s.tid = e->tid;
	s.start_ns = e->start_ns;
	s.duration_ns = e->duration_ns;
	snprintf(s.service, sizeof(s.service), "%s", t ? t->service : "?");
	snprintf(s.comm, sizeof(s.comm), "%s", t ? t->comm : "?");
	n = snprintf(s.what, sizeof(s.what), "busy: %s on CPU",
		     ls_duration_format(e->duration_ns > off ? e->duration_ns - off : 0, d[0], 16));
	if (e->blocked_ns && n > 0 && (size_t)n < sizeof(s.what)) {
		ls_sys_syscall_name(e->top_syscall, sc, sizeof(sc));
		n += snprintf(s.what + n, sizeof(s.what) - (size_t)n, ", %s blocked in %s",
			      ls_duration_format(e->blocked_ns, d[1], 16), sc);
	}
	if (e->runnable_ns && n > 0 && (size_t)n < sizeof(s.what))
		snprintf(s.what + n, sizeof(s.what) - (size_t)n, ", %s waiting for a CPU",
			 ls_duration_format(e->runnable_ns, d[2], 16));
	push_slow(m, &s);
	ls_mon_unlock(m);
}

static void on_slow_callback(const struct ls_slow_callback_event *e, void *ctx)
{
	struct ls_mon *m = ctx;
	struct ls_mon_target *t;
	struct ls_mon_thread *th;
	struct ls_mon_slow s = { .kind = LS_MON_SLOW_CALLBACK };
	const struct ls_cb_name *nm = NULL;
	static const struct ls_cb_name unknown = { .qualname = "?" };

	ls_mon_lock(m);
	t = live_or_any(m, e->key.tgid);
	if (t && !m->names)
		m->names = ls_pyname_cache_new();
	if (t && m->names)
		nm = ls_pyname_lookup(m->names,
				      t->py_major ? &t->py_off : NULL,
				      &e->key);
	if (t && (th = find_thread(t, e->tid, true)))
		th->slow_callbacks++;
	s.pid = e->key.tgid;
	s.tid = e->tid;
	s.start_ns = e->start_ns;
	s.duration_ns = e->duration_ns;
	snprintf(s.service, sizeof(s.service), "%s", t ? t->service : "?");
	snprintf(s.comm, sizeof(s.comm), "%s", t ? t->comm : "?");
	ls_pyname_format(&e->key, nm ? nm : &unknown, s.what, sizeof(s.what));
	push_slow(m, &s);
	ls_mon_unlock(m);
}

/* ---- windows ---------------------------------------------------------------- */

static void summarize(const struct ls_thread_window *w, struct ls_mon_window *out)
{
	out->window_ns = w->window_ns;
	out->iterations_per_s = w->iterations_per_s;
	out->utilization = w->utilization;
	out->busy_p99_ns = ls_hist_percentile(&w->busy, 99);
	out->busy_max_ns = w->busy.max;
	out->lag_p99_ns = ls_hist_percentile(&w->lag, 99);
	out->lag_max_ns = w->lag.max;
	out->lag_count = w->lag.count;
	out->delay_p99_ns = ls_stats_delay_percentile(&w->busy, w->poll.sum, 99);
	out->busy_now_ns = w->busy_now_ns;
	out->slow = w->slow_busy;
}

/* The session's histograms of t's callbacks now (cur) against the last
 * snapshot: add what is new to t->callbacks. The session's figures only go
 * down when it forgot them (precise mode taken down and set up again):
 * then all of cur is new. */
static void add_callbacks(struct ls_mon_target *t, struct ls_hist *cur)
{
	if (!t->cb_last && !(t->cb_last = calloc(1, sizeof(*t->cb_last))))
		return;
	if (cur->count < t->cb_last->count)
		memset(t->cb_last, 0, sizeof(*t->cb_last));
	ls_hist_sub(t->cb_last, cur, t->cb_last);
	if (t->callbacks.max < cur->max)
		t->callbacks.max = cur->max;
	{
		uint64_t max = t->callbacks.max;

		ls_hist_merge(&t->callbacks, t->cb_last);
		t->callbacks.max = max;
	}
	*t->cb_last = *cur;
}

static void tick(struct ls_mon *m)
{
	struct ls_thread_stats *v = NULL;
	struct ls_cb_entry *cb = NULL;
	struct ls_thread_window *w;
	struct ls_hist *cur = NULL;
	size_t n = 0, ncb = 0;
	bool cb_ok = false;
	uint64_t now;

	if (ls_loop_snapshot(m->loop, &v, &n, &now))
		return;
	/* A failed snapshot leaves the callback histograms as they were. */
	if (pycb_of(m) && ls_pycb_snapshot(pycb_of(m), &cb, &ncb) == 0)
		cb_ok = (cur = malloc(sizeof(*cur))) != NULL;
	w = malloc(sizeof(*w));
	ls_mon_lock(m);
	for (size_t i = 0; w && i < n; i++) {
		struct ls_mon_target *t = find_target(m, (pid_t)v[i].tgid);
		struct ls_mon_thread *th;

		if (!t || !(th = find_thread(t, v[i].tid, true)))
			continue;
		if (th->has_stats && th->stats.thread_start != v[i].thread_start)
			th->has_stats = false; /* a reused tid: a new thread */
		ls_stats_window(&v[i], now, th->has_stats ? &th->stats : NULL,
				th->has_stats ? th->stats_ns : t->attached_ns, w);
		summarize(w, &th->win);
		th->stats = v[i];
		th->stats_ns = now;
		th->has_stats = true;
	}
	for (size_t i = 0; cb_ok && i < m->ntargets; i++) {
		struct ls_mon_target *t = &m->targets[i];

		if (t->exited_ns || !t->precise)
			continue;
		memset(cur, 0, sizeof(*cur));
		for (size_t j = 0; j < ncb; j++)
			if ((pid_t)cb[j].key.tgid == t->pid)
				ls_hist_merge(cur, &cb[j].stats.duration);
		add_callbacks(t, cur);
	}
	m->window_end_ns = now;
	ls_mon_unlock(m);
	free(cur);
	free(w);
	free(v);
	free(cb);
}

/* Exits the discovery events missed (a full ring buffer), drop expired
 * targets, retry precise-mode resolution. */
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
		resolve_step(m, t, now);
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
	e2 = ring_buffer__poll(m->disc_rb, 0);
	if (pycb_of(m))
		ls_pycb_poll(pycb_of(m), 0);
	now = ls_sys_now_ns();
	if (now >= m->next_scan_ns) {
		m->limit_logged = false;
		scan_proc(m);
		m->next_scan_ns = now + m->cfg.scan_ns;
	}
	/* Precise-mode set-ups due (new targets, retries after an exec). */
	ls_mon_lock(m);
	for (size_t i = 0; i < m->ntargets; i++) {
		struct ls_mon_target *t = &m->targets[i];

		if (t->mode == LS_MODE_PRECISE && !t->precise && !t->exited_ns &&
		    t->resolve_tries < RESOLVE_TRIES && now >= t->next_resolve_ns)
			resolve_step(m, t, now);
	}
	ls_mon_unlock(m);
	if (now >= m->next_tick_ns) {
		tick(m);
		housekeeping(m, now);
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
	pthread_mutex_init(&m->job_lock, NULL);
	pthread_cond_init(&m->job_cond, NULL);
	m->slow = calloc(LS_MON_SLOW_KEPT, sizeof(*m->slow));
	if (!m->slow) {
		e = -ENOMEM;
		snprintf(err, len, "out of memory");
		goto cleanup;
	}
	lopts.slow_threshold_ns = cfg->threshold_ns;
	lopts.btf_path = btf;
	lopts.on_slow_busy = on_slow_busy;
	lopts.ctx = m;
	e = ls_loop_open(&lopts, &m->loop);
	if (e) {
		snprintf(err, len, "loading BPF programs failed: %s", strerror(-e));
		goto cleanup;
	}
	{
		LIBBPF_OPTS(bpf_object_open_opts, oopts, .btf_custom_path = btf);

		m->disc = discover_bpf__open_opts(&oopts);
		if (!m->disc) {
			e = -errno;
			snprintf(err, len, "opening the discovery BPF object failed: %s", strerror(-e));
			goto cleanup;
		}
	}
	e = discover_bpf__load(m->disc);
	if (!e)
		e = discover_bpf__attach(m->disc);
	if (e) {
		snprintf(err, len, "loading the discovery BPF programs failed: %s", strerror(-e));
		goto cleanup;
	}
	m->disc_rb = ring_buffer__new(bpf_map__fd(m->disc->maps.disc_events), on_disc, m, NULL);
	if (!m->disc_rb) {
		e = -errno;
		snprintf(err, len, "discovery ring buffer: %s", strerror(-e));
		goto cleanup;
	}
	/* Exec events first, then the scan: a process that execs in between
	 * is seen twice, and attached once. */
	scan_proc(m);
	for (int i = 0; i < m->cfg.nrules; i++) {
		bool any = false;

		for (size_t t = 0; t < m->ntargets && !any; t++)
			any = m->targets[t].rule == i;
		if (!any)
			logf_(m, "rule %d (service %s%s%.0d) matches no process yet; waiting for one to start",
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
		logf_(m, "reload: listen, socket and btf changes need a restart; kept the old ones");
	if (cfg->threshold_ns != m->cfg.threshold_ns && pycb_of(m))
		logf_(m, "reload: the new threshold applies to busy periods now, to precise-mode "
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
	for (size_t i = 0; i < m->ntargets; i++) {
		struct ls_mon_target *t = &m->targets[i];
		struct proc_info pi;
		int r;

		if (t->exited_ns || t->manual)
			continue;
		proc_info(t->pid, &pi);
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
				stop_precise(m, t);
			} else {
				t->gen++;
				t->resolve_tries = 0;
				t->next_resolve_ns = 0;
				resolve_step(m, t, ls_sys_now_ns());
			}
		}
	}
	ls_mon_unlock(m);
	scan_proc(m);
	logf_(m, "reloaded: %d rule%s, %zu target%s", m->cfg.nrules, m->cfg.nrules == 1 ? "" : "s",
	      alive_targets(m), alive_targets(m) == 1 ? "" : "s");
	return 0;
}

int ls_mon_attach(struct ls_mon *m, pid_t pid, const char *service, enum ls_mode mode,
		  char *err, size_t len)
{
	struct proc_info pi;

	if (pid == m->self) {
		snprintf(err, len, "pid %d is loopscoped itself", (int)pid);
		return -EINVAL;
	}
	if (ls_target_alive(pid)) {
		snprintf(err, len, "pid %d: no such process", (int)pid);
		return -ESRCH;
	}
	if (find_target(m, pid)) {
		snprintf(err, len, "pid %d: already monitored", (int)pid);
		return -EEXIST;
	}
	proc_info(pid, &pi);
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
	t = find_target(m, pid);
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
	if (m->worker_started) {
		/* It finishes the job in progress; ls_pycb_close takes down
		 * every uprobe left, queued for removal or not. */
		pthread_mutex_lock(&m->job_lock);
		m->worker_stop = true;
		pthread_cond_signal(&m->job_cond);
		pthread_mutex_unlock(&m->job_lock);
		pthread_join(m->worker, NULL);
	}
	ring_buffer__free(m->disc_rb);
	discover_bpf__destroy(m->disc);
	ls_pycb_close(m->pycb);
	ls_loop_close(m->loop);
	ls_pyname_cache_free(m->names);
	for (size_t i = 0; i < m->ntargets; i++) {
		free(m->targets[i].threads);
		free(m->targets[i].cb_last);
	}
	free(m->targets);
	free(m->slow);
	free(m->jobs);
	pthread_cond_destroy(&m->job_cond);
	pthread_mutex_destroy(&m->job_lock);
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
	return ls_loop_lost_events(m->loop) + (pycb_of((struct ls_mon *)m) ?
		ls_pycb_lost_events(pycb_of((struct ls_mon *)m)) : 0) +
	       m->disc->bss->lost_events;
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
