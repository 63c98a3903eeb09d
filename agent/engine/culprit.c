// SPDX-License-Identifier: MIT
/* The engine's Python stacks: each slow event named by its culprit frame
 * and its application frame (loopscope/appframe.h), as `loopscope attach`
 * and `run` name them, in `status --json`, `top` and one log line. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/appframe.h"
#include "loopscope/loopscope.h"
#include "loopscope/monitor.h"
#include "loopscope/slowstack.h"
#include "engine.h"

/* Stack records are kept this long after they arrive: a slow event
 * arrives at its end, its records before. */
#define KEEP_NS 10000000000ULL

int ls_mon_stacks_open(struct ls_mon *m)
{
	pthread_mutex_init(&m->stlock, NULL);
	m->stacks = ls_slowstack_new_max(LS_MON_STACKS_KEPT, LS_MON_CODE_KEPT, LS_MON_CODE_BYTES);
	m->app = ls_appframe_new(NULL, 0);
	return m->stacks && m->app ? 0 : -ENOMEM;
}

void ls_mon_stacks_close(struct ls_mon *m)
{
	ls_slowstack_free(m->stacks);
	ls_appframe_free(m->app);
	m->stacks = NULL;
	m->app = NULL;
	pthread_mutex_destroy(&m->stlock);
}

void ls_mon_on_stack(const struct ls_stack_event *e, void *ctx)
{
	struct ls_mon *m = ctx;

	pthread_mutex_lock(&m->stlock);
	if (m->stacks)
		ls_slowstack_add(m->stacks, e);
	pthread_mutex_unlock(&m->stlock);
}

void ls_mon_stacks_step(struct ls_mon *m, struct ls_mon_target *t)
{
	int err;

	if (!t->stacks_pending || t->exited_ns)
		return;
	t->stacks_pending = false;
	if (!m->cfg.stacks || !m->stacks || !t->py_off || !t->py_runtime_addr || t->stacks_on)
		return;
	err = ls_loop_set_python(m->loop, t->pid, t->py_runtime_addr, t->py_off);
	pthread_mutex_lock(&m->stlock);
	if (!err)
		err = ls_slowstack_set_python(m->stacks, t->pid, t->py_off);
	ls_appframe_forget(m->app, t->pid);
	pthread_mutex_unlock(&m->stlock);
	/* Added again: its threads are sampled now that it has stacks. */
	if (!err)
		err = ls_loop_add_target(m->loop, t->pid);
	if (err) {
		ls_mon_log(m, "pid %d (%s, service %s): no Python stacks: %s", (int)t->pid, t->comm,
			   t->service, strerror(-err));
		return;
	}
	t->stacks_on = true;
}

void ls_mon_stacks_stop(struct ls_mon *m, struct ls_mon_target *t)
{
	if (t->stacks_on)
		ls_loop_set_python(m->loop, t->pid, 0, NULL);
	t->stacks_on = false;
	t->stacks_pending = false;
	t->py_runtime_addr = 0;
	ls_mon_stacks_forget(m, t->pid);
}

void ls_mon_stacks_forget(struct ls_mon *m, pid_t pid)
{
	pthread_mutex_lock(&m->stlock);
	if (m->stacks)
		ls_slowstack_forget(m->stacks, pid);
	ls_appframe_forget(m->app, pid);
	pthread_mutex_unlock(&m->stlock);
}

void ls_mon_stacks_prune(struct ls_mon *m, uint64_t now)
{
	size_t before = 0, after = 0;

	pthread_mutex_lock(&m->stlock);
	if (m->stacks && now > KEEP_NS) {
		before = ls_slowstack_kept(m->stacks);
		ls_slowstack_prune(m->stacks, now - KEEP_NS);
		after = ls_slowstack_kept(m->stacks);
	}
	pthread_mutex_unlock(&m->stlock);
	/* Records went: give their memory back (many small blocks freed in
	 * the middle of the heap stay the process's otherwise). */
	if (after < before)
		malloc_trim(0);
}

static void put_frame(struct ls_mon_frame *out, const struct ls_pyframe *f)
{
	snprintf(out->function, sizeof(out->function), "%s", f->qualname);
	snprintf(out->file, sizeof(out->file), "%s", f->filename);
	out->line = f->line > 0 ? f->line : f->firstlineno;
}

void ls_mon_stacks_name(struct ls_mon *m, struct ls_mon_slow *s)
{
	struct ls_stack_summary sum;

	pthread_mutex_lock(&m->stlock);
	if (!m->stacks ||
	    ls_slowstack_take(m->stacks, s->pid, s->tid, s->start_ns, s->start_ns + s->duration_ns,
			      &sum)) {
		pthread_mutex_unlock(&m->stlock);
		return;
	}
	ls_appframe_pick(m->app, (pid_t)s->pid, &sum);
	pthread_mutex_unlock(&m->stlock);
	for (size_t k = 0; k < sum.n; k++) {
		if (sum.stacks[k].nframes) {
			put_frame(&s->culprit, &sum.stacks[k].frames[0]);
			break;
		}
	}
	if (sum.has_app)
		put_frame(&s->app, &sum.app);
	ls_slowstack_summary_free(&sum);
}

/* "f file.py:12" (the file's base name) */
static char *frame_text(const struct ls_mon_frame *f, char *buf, size_t len)
{
	const char *base = strrchr(f->file, '/');

	snprintf(buf, len, "%s %s:%d", f->function, base ? base + 1 : f->file, f->line);
	return buf;
}

void ls_mon_log_slow(struct ls_mon *m, const struct ls_mon_slow *s)
{
	uint64_t sec = ls_sys_now_ns() / 1000000000ULL;
	char d[16], at[620] = "", cu[640] = "", fr[600], sup[64] = "";

	if (sec != m->log_second) {
		m->log_second = sec;
		m->log_in_second = 0;
	}
	if (m->log_in_second++ >= LS_MON_SLOW_LOG_PER_S) {
		m->log_suppressed++;
		return;
	}
	if (s->app.function[0])
		snprintf(at, sizeof(at), " at %s", frame_text(&s->app, fr, sizeof(fr)));
	if (s->culprit.function[0] &&
	    (strcmp(s->culprit.function, s->app.function) || strcmp(s->culprit.file, s->app.file) ||
	     s->culprit.line != s->app.line))
		snprintf(cu, sizeof(cu), "; culprit %s", frame_text(&s->culprit, fr, sizeof(fr)));
	if (m->log_suppressed) {
		snprintf(sup, sizeof(sup), " (%llu slow-event lines not written before)",
			 (unsigned long long)m->log_suppressed);
		m->log_suppressed = 0;
	}
	ls_mon_log(m, "pid %u (service %s): slow %s %s%s: %s%s%s", s->pid, s->service,
		   s->kind == LS_MON_SLOW_CALLBACK ? "callback" : "busy period",
		   ls_duration_format(s->duration_ns, d, sizeof(d)), at, s->what, cu, sup);
}
