// SPDX-License-Identifier: MIT
/*
 * A stand-in for the monitoring engine (include/loopscope/monitor.h) for
 * fuzz_ctl: fixed targets, threads and slow events, and attach/detach that
 * check their arguments as the engine's contract says, with no BPF. Only
 * what agent/engine/ctl.c calls.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "loopscope/loopscope.h"
#include "loopscope/monitor.h"

struct ls_mon {
	struct ls_config cfg;
	struct ls_mon_target targets[2];
	struct ls_mon_thread threads[2];
	struct ls_mon_slow slow[3];
	int locked;
};

static struct ls_mon stub;

struct ls_mon *fuzz_stub_monitor(void);

struct ls_mon *fuzz_stub_monitor(void)
{
	if (stub.targets[0].pid)
		return &stub;
	ls_config_defaults(&stub.cfg);
	for (int i = 0; i < 2; i++) {
		struct ls_mon_target *t = &stub.targets[i];
		struct ls_mon_thread *th = &stub.threads[i];

		t->pid = t->ns_pid = 4242 + i;
		snprintf(t->comm, sizeof(t->comm), i ? "py\x1b[2Jthon" : "python3.11");
		snprintf(t->service, sizeof(t->service), "api");
		snprintf(t->exe, sizeof(t->exe), i ? "/usr/bin/\xff\xfe" : "/usr/bin/python3.11");
		t->mode = i ? LS_MODE_PRECISE : LS_MODE_LIGHT;
		t->py_major = 3;
		t->py_minor = 11;
		t->threads = th;
		t->nthreads = 1;
		th->tid = (uint32_t)t->pid;
		th->has_stats = true;
		th->stats.polls = i;
		th->win.utilization = i ? -1 : 0.5;
		snprintf(th->name, sizeof(th->name), "loop");
	}
	for (int i = 0; i < 3; i++) {
		stub.slow[i].seq = (uint64_t)i + 1;
		stub.slow[i].kind = i ? LS_MON_SLOW_CALLBACK : LS_MON_SLOW_BUSY;
		stub.slow[i].pid = stub.slow[i].tid = 4242;
		stub.slow[i].duration_ns = 150000000ULL * (uint64_t)(i + 1);
		snprintf(stub.slow[i].what, sizeof(stub.slow[i].what), "Task \"x\\\n%d\" app.py:42", i);
	}
	return &stub;
}

void ls_mon_lock(struct ls_mon *m)
{
	FUZZ_CHECK(!m->locked);
	m->locked = 1;
}

void ls_mon_unlock(struct ls_mon *m)
{
	FUZZ_CHECK(m->locked);
	m->locked = 0;
}

size_t ls_mon_ntargets(const struct ls_mon *m)
{
	FUZZ_CHECK(m->locked);
	return 2;
}

const struct ls_mon_target *ls_mon_target_at(const struct ls_mon *m, size_t i)
{
	FUZZ_CHECK(m->locked && i < 2);
	return &m->targets[i];
}

const struct ls_mon_slow *ls_mon_slow_events(const struct ls_mon *m, size_t *n)
{
	FUZZ_CHECK(m->locked);
	*n = 3;
	return m->slow;
}

uint64_t ls_mon_lost_events(const struct ls_mon *m)
{
	return 7;
}

const struct ls_config *ls_mon_config(const struct ls_mon *m)
{
	return &m->cfg;
}

uint64_t ls_mon_window_end_ns(const struct ls_mon *m)
{
	return 123456789;
}

int ls_mon_attach(struct ls_mon *m, pid_t pid, const char *service, enum ls_mode mode,
		  char *err, size_t len)
{
	FUZZ_CHECK(!m->locked && pid > 0);
	FUZZ_CHECK(!service || strlen(service) < 64);
	FUZZ_CHECK(mode == LS_MODE_LIGHT || mode == LS_MODE_PRECISE);
	if (pid == 4242) {
		snprintf(err, len, "pid %d is already monitored", (int)pid);
		return -EEXIST;
	}
	snprintf(err, len, "pid %d: no such process", (int)pid);
	return -ESRCH;
}

int ls_mon_detach(struct ls_mon *m, pid_t pid)
{
	FUZZ_CHECK(!m->locked && pid > 0);
	return pid == 4242 ? 0 : -ENOENT;
}

uint64_t ls_mon_offcpu_unseen(const struct ls_mon *m)
{
	(void)m;
	return 0;
}

uint64_t ls_mon_name_evictions(const struct ls_mon *m)
{
	(void)m;
	return 7;
}

void ls_mon_thread_table(const struct ls_mon *m, struct ls_loop_table_counts *out)
{
	(void)m;
	memset(out, 0, sizeof(*out));
	out->quota = 512;
	out->untracked = 5;
}

size_t ls_mon_names_cached(const struct ls_mon *m)
{
	(void)m;
	return 3;
}

/* The flight recorder: off (no flight_dir), as the engine answers then. */
void ls_mon_flight_stats(const struct ls_mon *m, struct ls_mon_flight_stats *s)
{
	(void)m;
	memset(s, 0, sizeof(*s));
}

int ls_mon_flight_dump(struct ls_mon *m, pid_t pid, char *msg, size_t len)
{
	(void)m;
	if (pid <= 0)
		return -EINVAL;
	snprintf(msg, len, "the flight recorder is off (no flight_dir configured)");
	return -ENOTSUP;
}
