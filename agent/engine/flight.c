// SPDX-License-Identifier: MIT
/* The flight recorder (issue #13 item 5; docs/DAEMON.md, "Flight
 * recorder"): per target, the last flight_seconds of what `loopscope
 * record` would write, as compressed record blocks in memory (a block per
 * window, at most flight_bytes per target, oldest dropped); a slow busy
 * period of flight_threshold or more, or `loopscope dump PID`, writes them
 * to a recording in flight_dir that `loopscope report FILE` reads.
 * Called by the engine with the lock held (ls_mon_lock), from the thread
 * that runs ls_mon_poll. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/abi/pycallback_events.h"
#include "loopscope/appframe.h"
#include "loopscope/cbname.h"
#include "loopscope/pyname.h"
#include "loopscope/record.h"
#include "loopscope/slowstack.h"
#include "engine.h"

struct flight_block {
	uint64_t first_ns, last_ns;  /* times of its first and last records */
	size_t len;                  /* 16-byte block header + zlib stream */
	uint8_t *data;
};

struct ls_flight {
	struct ls_mon *m;
	struct ls_record_writer *w;  /* a sink writer: blocks to the ring */
	struct flight_block *blocks; /* oldest first, nblocks of cap */
	size_t nblocks, cap;
	uint64_t bytes;              /* held by the blocks */
	uint64_t fill_first_ns;      /* first record of the block being filled; 0 none */
	uint64_t fill_last_ns;
	uint64_t dump_due_ns;        /* a dump is pending, to be written then; 0 none */
	uint64_t trigger_ns;         /* what caused it (a slow period's end) */
	bool precise;                /* slow callbacks put: a dump says precise mode */
};

bool ls_mon_flight_on(const struct ls_mon *m)
{
	return m->cfg.flight_dir[0] != '\0';
}

static void drop_front(struct ls_flight *f)
{
	f->bytes -= f->blocks[0].len;
	free(f->blocks[0].data);
	memmove(&f->blocks[0], &f->blocks[1], (f->nblocks - 1) * sizeof(f->blocks[0]));
	f->nblocks--;
	f->m->flight_blocks_dropped++;
}

/* Keep within flight_bytes and flight_seconds (now: ns). */
static void prune(struct ls_flight *f, uint64_t now)
{
	while (f->nblocks && f->bytes > f->m->cfg.flight_bytes)
		drop_front(f);
	/* Blocks wholly older than the window, and not needed by a pending
	 * dump (its window starts flight_seconds before its trigger). */
	while (f->nblocks) {
		uint64_t fs = f->m->cfg.flight_seconds_ns;
		uint64_t keep_from = now > fs ? now - fs : 0;

		if (f->dump_due_ns && f->trigger_ns < now)
			keep_from = f->trigger_ns > fs ? f->trigger_ns - fs : 0;
		if (f->blocks[0].last_ns >= keep_from)
			break;
		drop_front(f);
	}
}

/* ls_record_sink_fn: a block filled, into the ring. */
static int sink(const uint8_t hdr[16], const uint8_t *comp, size_t clen, void *ctx)
{
	struct ls_flight *f = ctx;
	struct flight_block b = { .first_ns = f->fill_first_ns, .last_ns = f->fill_last_ns,
				  .len = 16 + clen };

	if (b.len > f->m->cfg.flight_bytes) {
		f->m->flight_blocks_dropped++;
		f->fill_first_ns = 0;
		return 0; /* never fits: dropped as the oldest would be */
	}
	if (f->nblocks == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct flight_block *g = realloc(f->blocks, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		f->blocks = g;
		f->cap = cap;
	}
	b.data = malloc(b.len);
	if (!b.data)
		return -ENOMEM;
	memcpy(b.data, hdr, 16);
	memcpy(b.data + 16, comp, clen);
	/* Room first: the blocks held never exceed flight_bytes. */
	while (f->nblocks && f->bytes + b.len > f->m->cfg.flight_bytes)
		drop_front(f);
	f->blocks[f->nblocks++] = b;
	f->bytes += b.len;
	if (f->bytes > f->m->flight_bytes_peak)
		f->m->flight_bytes_peak = f->bytes;
	f->fill_first_ns = 0;
	prune(f, f->fill_last_ns);
	return 0;
}

static struct ls_flight *flight_of(struct ls_mon *m, struct ls_mon_target *t)
{
	if (!ls_mon_flight_on(m))
		return NULL;
	if (!t->flight) {
		struct ls_flight *f = calloc(1, sizeof(*f));

		if (!f)
			return NULL;
		f->m = m;
		if (ls_record_open_sink(sink, f, &f->w)) {
			free(f);
			return NULL;
		}
		t->flight = f;
	}
	return t->flight;
}

static void note_time(struct ls_flight *f, uint64_t ns)
{
	if (!f->fill_first_ns)
		f->fill_first_ns = ns;
	if (ns > f->fill_last_ns)
		f->fill_last_ns = ns;
}

void ls_mon_flight_free(struct ls_mon_target *t)
{
	struct ls_flight *f = t->flight;

	if (!f)
		return;
	for (size_t i = 0; i < f->nblocks; i++)
		free(f->blocks[i].data);
	free(f->blocks);
	ls_record_close(f->w);
	free(f);
	t->flight = NULL;
}

void ls_mon_flight_slow_busy(struct ls_mon *m, struct ls_mon_target *t,
			     const struct ls_slow_busy_event *e, const char *thread)
{
	struct ls_flight *f = t ? flight_of(m, t) : NULL;
	uint64_t end = e->start_ns + e->duration_ns;
	struct ls_stack_summary st;
	bool have = false;

	if (!f)
		return;
	note_time(f, end);
	/* The stacks taken in it (they stay in the collector: culprit.c's
	 * naming took them too), symbolized now: the code objects are gone
	 * when the dump is read. */
	pthread_mutex_lock(&m->stlock);
	if (m->stacks && ls_slowstack_take(m->stacks, e->tgid, e->tid, e->start_ns, end, &st) == 0) {
		ls_appframe_pick(m->app, (pid_t)e->tgid, &st);
		have = true;
	}
	pthread_mutex_unlock(&m->stlock);
	if (ls_record_put_slow_busy(f->w, e, thread, have ? &st : NULL))
		m->flight_put_errors++;
	if (have)
		ls_slowstack_summary_free(&st);
	if (e->duration_ns >= m->cfg.flight_threshold_ns && !f->dump_due_ns) {
		f->trigger_ns = end;
		f->dump_due_ns = ls_sys_now_ns() + m->cfg.flight_after_ns;
		if (!f->dump_due_ns)
			f->dump_due_ns = 1;
	}
}

void ls_mon_flight_slow_callback(struct ls_mon *m, struct ls_mon_target *t,
				 const struct ls_slow_callback_event *e, const struct ls_cb_name *nm)
{
	struct ls_flight *f = t ? flight_of(m, t) : NULL;
	static const struct ls_cb_name unknown = { .qualname = "?" };
	struct ls_cb_name step = { 0 };
	uint64_t end = e->start_ns + e->duration_ns;
	struct ls_stack_summary st;
	bool have = false;

	if (!f)
		return;
	note_time(f, end);
	f->precise = true;
	/* Its stacks, symbolized now (as a slow busy period's), and the
	 * name they give it (a Task's step, or the context's callee), as
	 * attach's precise mode records them (cli/precise.c). */
	pthread_mutex_lock(&m->stlock);
	if (m->stacks && ls_slowstack_take(m->stacks, e->key.tgid, e->tid, e->start_ns, end, &st) == 0) {
		ls_appframe_pick(m->app, (pid_t)e->key.tgid, &st);
		have = true;
	}
	pthread_mutex_unlock(&m->stlock);
	if (e->key.kind == LS_CB_CONTEXT)
		ls_cbname_context(have ? &st : NULL, &step);
	else
		ls_cbname_task_step(nm ? nm : &unknown, have ? &st : NULL, &step);
	if (ls_record_put_slow_callback(f->w, e, nm ? nm : &unknown, &step, have ? &st : NULL))
		m->flight_put_errors++;
	if (have)
		ls_slowstack_summary_free(&st);
	if (e->duration_ns >= m->cfg.flight_threshold_ns && !f->dump_due_ns) {
		f->trigger_ns = end;
		f->dump_due_ns = ls_sys_now_ns() + m->cfg.flight_after_ns;
		if (!f->dump_due_ns)
			f->dump_due_ns = 1;
	}
}

void ls_mon_flight_snapshot(struct ls_mon *m, struct ls_mon_target *t,
			    const struct ls_thread_view *v, size_t n, uint64_t now)
{
	struct ls_flight *f = flight_of(m, t);

	if (!f)
		return;
	note_time(f, now);
	if (ls_record_put_snapshot(f->w, now, v, n) || ls_record_flush(f->w))
		m->flight_put_errors++;
	prune(f, now);
}

/* ---- dumps -------------------------------------------------------------- */

/* "flight-20261202T031200.123Z-4242-7.lsrec": sorts by time. */
static void dump_name(char *buf, size_t len, const char *dir, pid_t pid, uint64_t seq)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%s/flight-%04d%02d%02dT%02d%02d%02d.%03ldZ-%d-%llu.lsrec", dir,
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000000, (int)pid, (unsigned long long)seq);
}

static bool is_dump(const char *name)
{
	size_t n = strlen(name);

	return !strncmp(name, "flight-", 7) && n > 13 && !strcmp(name + n - 6, ".lsrec");
}

struct dump_file {
	char name[256];
	uint64_t size;
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct dump_file *)a)->name, ((const struct dump_file *)b)->name);
}

/* Remove the oldest dumps beyond flight_max_files or flight_max_bytes (the
 * newest is always kept). */
static void rotate(struct ls_mon *m)
{
	DIR *d = opendir(m->cfg.flight_dir);
	struct dump_file *v = NULL;
	size_t n = 0, cap = 0, i;
	uint64_t total = 0;
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		struct stat st;

		if (!is_dump(de->d_name) || strlen(de->d_name) >= sizeof(v->name) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			struct dump_file *g = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*g));

			if (!g)
				break;
			v = g;
		}
		snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
		v[n].size = (uint64_t)st.st_size;
		total += v[n++].size;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_name);
	for (i = 0; i + 1 < n && (n - i > (size_t)m->cfg.flight_max_files ||
				  total > m->cfg.flight_max_bytes); i++) {
		if (unlinkat(dirfd(d), v[i].name, 0) == 0)
			m->flight_files_rotated++;
		total -= v[i].size;
	}
	closedir(d);
	free(v);
}

/* Write t's ring to a new file in flight_dir: the header, a block with the
 * process and its threads, the ring's blocks, an end record. 0 and path,
 * or -errno. */
static int write_dump(struct ls_mon *m, struct ls_mon_target *t, char *path, size_t len)
{
	struct ls_flight *f = t->flight;
	struct ls_record_header h = { 0 };
	struct ls_record_end end = { 0 };
	struct ls_record_writer *w;
	struct timespec rt, mt;
	struct utsname u;
	char tmp[PATH_MAX + 128];
	int err;

	ls_record_flush(f->w); /* what came since the last window */
	if (!f->nblocks)
		return -ENODATA;
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	h.realtime_ns = (uint64_t)rt.tv_sec * 1000000000ULL + (uint64_t)rt.tv_nsec;
	h.monotonic_ns = (uint64_t)mt.tv_sec * 1000000000ULL + (uint64_t)mt.tv_nsec;
	/* The snapshots are cumulative since the target was added (as
	 * attach's): the report's window starts there, so its rates are
	 * right; its slow periods are the dump's seconds only. */
	h.start_ns = t->attached_ns;
	h.threshold_ns = m->cfg.threshold_ns;
	h.interval_ns = m->cfg.interval_ns;
	h.mode = f->precise || t->precise;
	h.npids = 1;
	h.pids[0] = (uint32_t)t->pid;
	if (!uname(&u)) {
		snprintf(h.host, sizeof(h.host), "%s", u.nodename);
		snprintf(h.kernel, sizeof(h.kernel), "%.64s %.63s", u.release, u.version);
	}
	snprintf(h.tool, sizeof(h.tool), "loopscoped %s", LS_VERSION);
	if (mkdir(m->cfg.flight_dir, 0750) && errno != EEXIST)
		return -errno;
	dump_name(path, len, m->cfg.flight_dir, t->pid, m->flight_seq + 1);
	/* Written beside, renamed when whole: rotation and readers never see
	 * half a dump. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	err = ls_record_open(tmp, &h, &w);
	if (err)
		return err;
	char interp[32] = "";

	if (t->py_major)
		snprintf(interp, sizeof(interp), "CPython %d.%d", t->py_major, t->py_minor);
	err = ls_record_put_process(w, (uint32_t)t->pid, t->comm, interp);
	/* Precise mode: the report lists the ring's slow callbacks (route 0:
	 * the daemon does not keep how context_run was found). */
	if (!err && h.mode)
		err = ls_record_put_precise_target(w, (uint32_t)t->pid, t->py_major, t->py_minor, 0);
	for (size_t i = 0; !err && i < t->nthreads; i++)
		err = ls_record_put_thread(w, (uint32_t)t->pid, t->threads[i].tid, t->threads[i].name);
	if (!err)
		err = ls_record_flush(w);
	for (size_t i = 0; !err && i < f->nblocks; i++)
		err = ls_record_put_block(w, f->blocks[i].data, f->blocks[i].len);
	/* The end record in a block of its own, after the ring's (END uses
	 * no name). */
	end.end_ns = f->blocks[f->nblocks - 1].last_ns;
	end.npids = 1;
	end.pids[0] = (uint32_t)t->pid;
	end.exited[0] = t->exited_ns != 0;
	end.exited_at_ns[0] = t->exited_ns;
	end.stacks_enabled = m->stacks != NULL; /* the report shows the stacks recorded */
	if (!err)
		err = ls_record_put_end(w, &end);
	{
		int e2 = ls_record_close(w);

		if (!err)
			err = e2;
	}
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

static int dump_target(struct ls_mon *m, struct ls_mon_target *t, char *path, size_t len)
{
	int err = write_dump(m, t, path, len);

	if (err) {
		m->flight_dumps_dropped++;
		ls_mon_log(m, "pid %d (%s): flight recorder: no dump written: %s", (int)t->pid,
			   t->comm, err == -ENODATA ? "nothing recorded yet" : strerror(-err));
		return err;
	}
	m->flight_seq++;
	m->flight_dumps_written++;
	ls_mon_log(m, "pid %d (%s, service %s): flight recorder: wrote %s", (int)t->pid, t->comm,
		   t->service, path);
	rotate(m);
	return 0;
}

void ls_mon_flight_step(struct ls_mon *m, uint64_t now)
{
	char path[PATH_MAX + 64];


	for (size_t i = 0; i < m->ntargets; i++) {
		struct ls_mon_target *t = &m->targets[i];
		struct ls_flight *f = t->flight;

		if (!f || !f->dump_due_ns || now < f->dump_due_ns)
			continue;
		f->dump_due_ns = 0;
		dump_target(m, t, path, sizeof(path));
	}
}

int ls_mon_flight_dump(struct ls_mon *m, pid_t pid, char *path, size_t len)
{
	struct ls_mon_target *t;
	int err;

	if (!ls_mon_flight_on(m)) {
		snprintf(path, len, "the flight recorder is off (no flight_dir configured)");
		return -ENOTSUP;
	}
	ls_mon_lock(m);
	t = ls_mon_find_target(m, pid);
	if (!t) {
		ls_mon_unlock(m);
		snprintf(path, len, "pid %d is not monitored", (int)pid);
		return -ENOENT;
	}
	if (!t->flight) {
		ls_mon_unlock(m);
		snprintf(path, len, "pid %d: nothing recorded yet", (int)pid);
		return -ENODATA;
	}
	err = dump_target(m, t, path, len);
	if (err && err != -ENODATA) {
		char msg[PATH_MAX + 64];

		snprintf(msg, sizeof(msg), "pid %d: cannot write a dump in %s: %s", (int)pid,
			 m->cfg.flight_dir, strerror(-err));
		snprintf(path, len, "%s", msg);
	} else if (err) {
		snprintf(path, len, "pid %d: nothing recorded yet", (int)pid);
	}
	ls_mon_unlock(m);
	return err;
}

void ls_mon_flight_stats(const struct ls_mon *m, struct ls_mon_flight_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->on = ls_mon_flight_on(m);
	s->cap_bytes = m->cfg.flight_bytes;
	s->dumps_written = m->flight_dumps_written;
	s->dumps_dropped = m->flight_dumps_dropped;
	s->blocks_dropped = m->flight_blocks_dropped;
	s->files_rotated = m->flight_files_rotated;
	s->put_errors = m->flight_put_errors;
	for (size_t i = 0; i < m->ntargets; i++) {
		const struct ls_flight *f = m->targets[i].flight;

		if (!f)
			continue;
		s->bytes += f->bytes;
		if (f->bytes > s->bytes_max_target)
			s->bytes_max_target = f->bytes;
	}
	s->bytes_peak_target = m->flight_bytes_peak;
}
