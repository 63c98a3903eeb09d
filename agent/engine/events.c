// SPDX-License-Identifier: MIT
/* The engine's slow events: busy periods and, in precise mode, callbacks,
 * the last LS_MON_SLOW_KEPT kept for the control socket. */
#include <stdio.h>
#include <string.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/abi/pycallback_events.h"
#include "loopscope/busywhy.h"
#include "loopscope/loopscope.h"
#include "loopscope/monitor.h"
#include "loopscope/pycallback.h"
#include "loopscope/pyname.h"
#include "engine.h"

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
	struct ls_mon_target *t = ls_mon_find_target(m, (pid_t)pid);

	for (size_t i = 0; !t && i < m->ntargets; i++)
		if (m->targets[i].pid == (pid_t)pid)
			t = &m->targets[i];
	return t;
}

void ls_mon_on_slow_busy(const struct ls_slow_busy_event *e, void *ctx)
{
	struct ls_mon *m = ctx;
	struct ls_mon_target *t;
	struct ls_mon_slow s = { .kind = LS_MON_SLOW_BUSY };

	ls_mon_lock(m);
	t = live_or_any(m, e->tgid);
	s.pid = e->tgid;
	s.tid = e->tid;
	s.start_ns = e->start_ns;
	s.duration_ns = e->duration_ns;
	snprintf(s.service, sizeof(s.service), "%s", t ? t->service : "?");
	snprintf(s.comm, sizeof(s.comm), "%s", t ? t->comm : "?");
	ls_busy_why_brief(e, s.what, sizeof(s.what));
	ls_mon_stacks_name(m, &s);
	ls_mon_log_slow(m, &s);
	if (t && !t->exited_ns && ls_mon_flight_on(m)) {
		struct ls_mon_thread *th = ls_mon_find_thread(t, e->tid, true);

		ls_mon_flight_slow_busy(m, t, e, th ? th->name : "");
	}
	push_slow(m, &s);
	ls_mon_unlock(m);
}

void ls_mon_on_slow_callback(const struct ls_slow_callback_event *e, void *ctx)
{
	struct ls_mon *m = ctx;
	struct ls_mon_target *t;
	struct ls_mon_thread *th;
	struct ls_mon_slow s = { .kind = LS_MON_SLOW_CALLBACK };
	const struct ls_cb_name *nm = NULL;
	static const struct ls_cb_name unknown = { .qualname = "?" };

	/* Its stack records travel in the loop session's ring: read those
	 * that came (before the lock: they may hold a slow busy period). */
	ls_loop_drain(m->loop, 20);
	ls_mon_lock(m);
	t = live_or_any(m, e->key.tgid);
	if (t && !m->names)
		m->names = ls_pyname_cache_new();
	if (t && m->names)
		nm = ls_pyname_lookup(m->names,
				      t->py_major ? t->py_off : NULL,
				      &e->key);
	if (t && (th = ls_mon_find_thread(t, e->tid, true)))
		th->slow_callbacks++;
	s.pid = e->key.tgid;
	s.tid = e->tid;
	s.start_ns = e->start_ns;
	s.duration_ns = e->duration_ns;
	snprintf(s.service, sizeof(s.service), "%s", t ? t->service : "?");
	snprintf(s.comm, sizeof(s.comm), "%s", t ? t->comm : "?");
	ls_pyname_format(&e->key, nm ? nm : &unknown, s.what, sizeof(s.what));
	ls_mon_stacks_name(m, &s);
	ls_mon_log_slow(m, &s);
	push_slow(m, &s);
	if (t && !t->exited_ns && ls_mon_flight_on(m))
		ls_mon_flight_slow_callback(m, t, e, nm);
	ls_mon_unlock(m);
}
