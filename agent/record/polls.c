// SPDX-License-Identifier: MIT
/*
 * The per-poll stream of a recording (`record --every-poll`, format 1.3,
 * docs/RECORD.md "Every poll"): the writer's per-thread batches (encoded
 * by pollcodec.c), and the figures a thread's polls
 * give (struct ls_thread_view, as the kernel keeps them) cut at any time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/record.h"
#include "record/format.h"

/* Per poll at most: 4 varints of 10 bytes. */
#define POLL_MAX_BYTES 40
/* Polls in one POLLS record at most (writer; the reader takes any n its
 * payload holds). */
#define POLLS_PER_RECORD 4096

/* ---- the writer's batches ---- */

struct poll_batch {
	uint32_t tid;
	struct ls_poll_event *v;
	size_t n, cap;
};

struct rec_polls {
	struct poll_batch *b;
	size_t n, cap;
	size_t last; /* the batch of the last poll added */
	uint8_t *enc;
	uint64_t added;
};

void rec_polls_free(struct rec_polls *rp)
{
	if (!rp)
		return;
	for (size_t i = 0; i < rp->n; i++)
		free(rp->b[i].v);
	free(rp->b);
	free(rp->enc);
	free(rp);
}

uint64_t rec_polls_added(const struct rec_polls *rp)
{
	return rp ? rp->added : 0;
}

/* The batch of thread tid (made when new), or NULL (out of memory). */
static struct poll_batch *batch_of(struct rec_polls *rp, uint32_t tid)
{
	if (rp->last < rp->n && rp->b[rp->last].tid == tid)
		return &rp->b[rp->last];
	for (size_t i = 0; i < rp->n; i++)
		if (rp->b[i].tid == tid) {
			rp->last = i;
			return &rp->b[i];
		}
	if (rp->n == rp->cap) {
		size_t cap = rp->cap ? 2 * rp->cap : 16;
		struct poll_batch *g = realloc(rp->b, cap * sizeof(*g));

		if (!g)
			return NULL;
		rp->b = g;
		rp->cap = cap;
	}
	memset(&rp->b[rp->n], 0, sizeof(rp->b[0]));
	rp->b[rp->n].tid = tid;
	rp->last = rp->n;
	return &rp->b[rp->n++];
}

/* One thread's batch into POLLS records (put: record.c's writer). A poll
 * out of its thread's order in time (never from one ring: a thread's
 * records are in its program order) starts a new record, whose base it
 * becomes. */
static int batch_write(struct ls_record_writer *w, struct rec_polls *rp, struct poll_batch *b)
{
	size_t i = 0;

	if (!rp->enc && !(rp->enc = malloc(REC_POLLS_FIXED + POLLS_PER_RECORD * POLL_MAX_BYTES)))
		return -ENOMEM;
	while (i < b->n) {
		size_t k = i + 1;
		uint64_t t = b->v[i].enter_ns;

		if (b->v[i].prev_exit_ns > b->v[i].enter_ns)
			b->v[i].prev_exit_ns = 0; /* torn: keep its entry only */
		while (k < b->n && k - i < POLLS_PER_RECORD &&
		       (b->v[k].prev_exit_ns ? b->v[k].prev_exit_ns >= t &&
					       b->v[k].enter_ns >= b->v[k].prev_exit_ns
					     : b->v[k].enter_ns >= t)) {
			t = b->v[k].enter_ns;
			k++;
		}
		size_t len = rec_polls_encode(rp->enc, b->v + i, k - i);
		int err = rec_put_raw(w, LS_REC_POLLS, rp->enc, len);

		if (err)
			return err;
		i = k;
	}
	b->n = 0;
	return 0;
}

int rec_polls_add(struct ls_record_writer *w, struct rec_polls **rpp,
		  const struct ls_poll_event *p, size_t n)
{
	struct rec_polls *rp = *rpp;

	if (!rp && !(rp = *rpp = calloc(1, sizeof(*rp))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct poll_batch *b = batch_of(rp, p[i].tid);

		if (!b)
			return -ENOMEM;
		if (b->n == b->cap) {
			size_t cap = b->cap ? 2 * b->cap : 256;
			struct ls_poll_event *g = realloc(b->v, cap * sizeof(*g));

			if (!g)
				return -ENOMEM;
			b->v = g;
			b->cap = cap;
		}
		b->v[b->n++] = p[i];
		rp->added++;
		if (b->n >= POLLS_PER_RECORD) {
			int err = batch_write(w, rp, b);

			if (err)
				return err;
		}
	}
	return 0;
}

int rec_polls_flush(struct ls_record_writer *w, struct rec_polls *rp)
{
	if (!rp)
		return 0;
	for (size_t i = 0; i < rp->n; i++) {
		int err = batch_write(w, rp, &rp->b[i]);

		if (err)
			return err;
	}
	return 0;
}

/* ---- figures from the polls ---- */

struct poll_thread {
	uint32_t tgid, tid;
	bool seen;          /* a record taken */
	bool cut;           /* a record past the cut seen: nothing more taken */
	bool in_poll;
	uint32_t seq;       /* of the last record taken */
	uint64_t gaps;      /* polls missing between its records */
	uint64_t enter, exit, deadline, first_enter;
	uint64_t polls, slow_busy, lag_missed, nrecords;
	struct ls_hist busy, poll, lag;
};

struct ls_polls {
	uint64_t threshold_ns;
	uint64_t cut_ns;    /* UINT64_MAX: none */
	struct poll_thread **t;
	size_t n, cap;
	uint64_t records, gaps;
};

struct ls_polls *ls_polls_new(uint64_t threshold_ns, uint64_t cut_ns)
{
	struct ls_polls *ps = calloc(1, sizeof(*ps));

	if (ps) {
		ps->threshold_ns = threshold_ns;
		ps->cut_ns = cut_ns;
	}
	return ps;
}

void ls_polls_free(struct ls_polls *ps)
{
	if (!ps)
		return;
	for (size_t i = 0; i < ps->n; i++)
		free(ps->t[i]);
	free(ps->t);
	free(ps);
}

static struct poll_thread *thread_of(struct ls_polls *ps, uint32_t tgid, uint32_t tid)
{
	for (size_t i = ps->n; i-- > 0;)
		if (ps->t[i]->tid == tid && ps->t[i]->tgid == tgid)
			return ps->t[i];
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? 2 * ps->cap : 16;
		struct poll_thread **g = realloc(ps->t, cap * sizeof(*g));

		if (!g)
			return NULL;
		ps->t = g;
		ps->cap = cap;
	}
	struct poll_thread *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->tgid = tgid;
	t->tid = tid;
	ps->t[ps->n++] = t;
	return t;
}

/* The return of thread t's poll at x (poll_exit in bpf/loop.bpf.c): its
 * length and lateness; gap: polls were lost before it (the poll that
 * returned is not the one t holds, and its deadline is not known). */
static void exit_at(struct poll_thread *t, uint64_t x, bool gap)
{
	if (gap) {
		t->deadline = 0;
	} else {
		if (t->in_poll)
			ls_hist_record(&t->poll, x - t->enter);
		if (t->deadline && x >= t->deadline) {
			ls_hist_record(&t->lag, x - t->deadline);
			t->deadline = 0;
		}
	}
	t->in_poll = false;
	t->exit = x;
}

/*
 * One poll e of thread t, as bpf/loop.bpf.c counts it: the previous poll's
 * return (poll_exit), then this entry (poll_enter_at), each only at or
 * before the cut: the thread's figures then are those a snapshot taken at
 * the cut would have read.
 */
static void take(struct ls_polls *ps, struct poll_thread *t, const struct ls_poll_event *e)
{
	bool gap = t->seen && e->seq != t->seq + 1;

	if (t->cut)
		return;
	if (e->prev_exit_ns > ps->cut_ns) {
		t->cut = true;
		return;
	}
	if (gap && e->seq > t->seq + 1) {
		t->gaps += e->seq - t->seq - 1;
		ps->gaps += e->seq - t->seq - 1;
	}
	if (e->prev_exit_ns)
		exit_at(t, e->prev_exit_ns, gap);
	if (e->enter_ns > ps->cut_ns) {
		t->cut = true;
		return;
	}
	t->nrecords++;
	ps->records++;
	/* The busy period before it (known across lost polls too: its
	 * start came with this record). */
	if (t->exit && !t->in_poll) {
		uint64_t busy = e->enter_ns - t->exit;

		ls_hist_record(&t->busy, busy);
		if (busy > ps->threshold_ns)
			t->slow_busy++;
	}
	if (e->timeout_ns != 0) {
		if (t->deadline && t->deadline <= e->enter_ns)
			t->lag_missed++;
		t->deadline = e->timeout_ns > 0 ? e->enter_ns + (uint64_t)e->timeout_ns : 0;
	}
	if (!t->first_enter)
		t->first_enter = e->enter_ns;
	t->polls = e->seq;
	t->enter = e->enter_ns;
	t->in_poll = true;
	t->seen = true;
	t->seq = e->seq;
}

void ls_polls_complete(struct ls_polls *ps, const struct ls_thread_view *snap)
{
	for (size_t i = 0; i < ps->n; i++) {
		struct poll_thread *t = ps->t[i];

		if (t->tid != snap->tid || t->tgid != snap->tgid)
			continue;
		if (t->in_poll && !t->cut && !snap->in_poll && snap->polls == t->polls &&
		    snap->poll_exit_ns >= t->enter && snap->poll_exit_ns <= ps->cut_ns)
			exit_at(t, snap->poll_exit_ns, false);
		return;
	}
}

int ls_polls_add(struct ls_polls *ps, const struct ls_poll_event *p, size_t n)
{
	struct poll_thread *t = NULL;

	for (size_t i = 0; i < n; i++) {
		if (!t || t->tid != p[i].tid || t->tgid != p[i].tgid)
			t = thread_of(ps, p[i].tgid, p[i].tid);
		if (!t)
			return -ENOMEM;
		take(ps, t, &p[i]);
	}
	return 0;
}

uint64_t ls_polls_records(const struct ls_polls *ps, uint64_t *gaps)
{
	if (gaps)
		*gaps = ps->gaps;
	return ps->records;
}

int ls_polls_view(const struct ls_polls *ps, uint32_t tid, struct ls_thread_view *v,
		  uint64_t *gaps)
{
	for (size_t i = 0; i < ps->n; i++) {
		const struct poll_thread *t = ps->t[i];

		if (t->tid != tid || !t->nrecords)
			continue;
		v->tgid = t->tgid;
		v->tid = t->tid;
		v->in_poll = t->in_poll;
		v->poll_enter_ns = t->enter;
		v->poll_exit_ns = t->exit;
		v->first_enter_ns = t->first_enter;
		v->polls = t->polls;
		v->iterations = t->polls ? t->polls - 1 : 0;
		v->slow_busy = t->slow_busy;
		v->lag_missed = t->lag_missed;
		v->busy = t->busy;
		v->poll = t->poll;
		v->lag = t->lag;
		if (gaps)
			*gaps = t->gaps;
		return 0;
	}
	return -ENOENT;
}
