// SPDX-License-Identifier: MIT
/*
 * The per-callback stream of a recording (`record --mode precise
 * --every-callback`, format 1.4, docs/RECORD.md "Every callback"): the
 * writer's key table and per-thread batches (encoded by cbcodec.c), and
 * the per-callback table a window of the stream gives.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/pycallback_events.h"
#include "loopscope/pycallback.h"
#include "loopscope/record.h"
#include "record/format.h"

/* Per callback at most: 4 varints of 10 bytes. */
#define CB_MAX_BYTES 40
/* Callbacks in one CB_RUNS record at most (writer; the reader takes any n
 * its payload holds). */
#define CBS_PER_RECORD 4096

/* ---- the writer's key table and batches ---- */

struct cb_batch {
	uint32_t tgid, tid;
	struct ls_callback_event *v;
	uint32_t *idx;
	size_t n, cap;
};

struct key_slot {
	struct ls_cb_key key;
	uint32_t idx; /* index + 1; 0: free */
};

struct rec_cbs {
	struct key_slot *keys; /* open addressing, power-of-two size */
	size_t nkeys, keys_cap;
	struct cb_batch *b;
	size_t n, cap;
	size_t last; /* the batch of the last callback added */
	uint8_t *enc;
	uint64_t added, dropped;
};

void rec_cbs_free(struct rec_cbs *rc)
{
	if (!rc)
		return;
	for (size_t i = 0; i < rc->n; i++) {
		free(rc->b[i].v);
		free(rc->b[i].idx);
	}
	free(rc->b);
	free(rc->keys);
	free(rc->enc);
	free(rc);
}

uint64_t rec_cbs_added(const struct rec_cbs *rc, uint64_t *dropped)
{
	if (dropped)
		*dropped = rc ? rc->dropped : 0;
	return rc ? rc->added : 0;
}

static uint32_t hash_key(const struct ls_cb_key *k)
{
	uint64_t h = k->code * 0x9e3779b97f4a7c15ULL ^ k->name * 0xc2b2ae3d27d4eb4fULL ^
		     ((uint64_t)k->tgid << 8 | k->kind);

	return (uint32_t)(h ^ h >> 29);
}

static bool same_key(const struct ls_cb_key *a, const struct ls_cb_key *b)
{
	return a->tgid == b->tgid && a->kind == b->kind && a->code == b->code && a->name == b->name;
}

/* The slot of k: its own, or the free one where it goes. NULL: no room. */
static struct key_slot *slot_of(struct rec_cbs *rc, const struct ls_cb_key *k)
{
	if (2 * (rc->nkeys + 1) > rc->keys_cap) {
		size_t cap = rc->keys_cap ? 2 * rc->keys_cap : 256;
		struct key_slot *g = calloc(cap, sizeof(*g));

		if (!g)
			return NULL;
		for (size_t i = 0; i < rc->keys_cap; i++) {
			if (!rc->keys[i].idx)
				continue;
			size_t j = hash_key(&rc->keys[i].key) & (cap - 1);

			while (g[j].idx)
				j = (j + 1) & (cap - 1);
			g[j] = rc->keys[i];
		}
		free(rc->keys);
		rc->keys = g;
		rc->keys_cap = cap;
	}
	size_t j = hash_key(k) & (rc->keys_cap - 1);

	while (rc->keys[j].idx && !same_key(&rc->keys[j].key, k))
		j = (j + 1) & (rc->keys_cap - 1);
	return &rc->keys[j];
}

/* k's index (*idx), its CB_KEY record written when new (named by name).
 * 0; 1: the table is full (REC_CBKEYS_MAX), no index; -errno. */
static int index_of(struct ls_record_writer *w, struct rec_cbs *rc, const struct ls_cb_key *k,
		    ls_record_cb_name_fn name, void *ctx, uint32_t *idx)
{
	struct key_slot *s = slot_of(rc, k);
	int err;

	if (!s)
		return -ENOMEM;
	if (s->idx) {
		*idx = s->idx - 1;
		return 0;
	}
	if (rc->nkeys == REC_CBKEYS_MAX)
		return 1;
	err = rec_put_cbkey(w, (uint32_t)rc->nkeys, k, name ? name(k, ctx) : NULL);
	if (err)
		return err;
	s->key = *k;
	s->idx = (uint32_t)++rc->nkeys;
	*idx = s->idx - 1;
	return 0;
}

static struct cb_batch *batch_of(struct rec_cbs *rc, uint32_t tgid, uint32_t tid)
{
	if (rc->last < rc->n && rc->b[rc->last].tid == tid && rc->b[rc->last].tgid == tgid)
		return &rc->b[rc->last];
	for (size_t i = 0; i < rc->n; i++)
		if (rc->b[i].tid == tid && rc->b[i].tgid == tgid) {
			rc->last = i;
			return &rc->b[i];
		}
	if (rc->n == rc->cap) {
		size_t cap = rc->cap ? 2 * rc->cap : 16;
		struct cb_batch *g = realloc(rc->b, cap * sizeof(*g));

		if (!g)
			return NULL;
		rc->b = g;
		rc->cap = cap;
	}
	memset(&rc->b[rc->n], 0, sizeof(rc->b[0]));
	rc->b[rc->n].tgid = tgid;
	rc->b[rc->n].tid = tid;
	rc->last = rc->n;
	return &rc->b[rc->n++];
}

/* One thread's batch into CB_RUNS records. */
static int batch_write(struct ls_record_writer *w, struct rec_cbs *rc, struct cb_batch *b)
{
	if (!rc->enc && !(rc->enc = malloc(REC_CBRUNS_FIXED + CBS_PER_RECORD * CB_MAX_BYTES)))
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i += CBS_PER_RECORD) {
		size_t k = b->n - i < CBS_PER_RECORD ? b->n - i : CBS_PER_RECORD;
		size_t len = rec_cbruns_encode(rc->enc, b->tgid, b->v + i, b->idx + i, k);
		int err = rec_put_raw(w, LS_REC_CB_RUNS, rc->enc, len);

		if (err)
			return err;
	}
	b->n = 0;
	return 0;
}

int rec_cbs_add(struct ls_record_writer *w, struct rec_cbs **rcp, const struct ls_callback_event *e,
		size_t n, ls_record_cb_name_fn name, void *ctx)
{
	struct rec_cbs *rc = *rcp;

	if (!rc && !(rc = *rcp = calloc(1, sizeof(*rc))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct cb_batch *b = batch_of(rc, e[i].key.tgid, e[i].tid);
		uint32_t idx;
		int err;

		if (!b)
			return -ENOMEM;
		err = index_of(w, rc, &e[i].key, name, ctx, &idx);
		if (err < 0)
			return err;
		if (err) {
			rc->dropped++; /* no index left: counted as lost */
			continue;
		}
		if (b->n == b->cap) {
			size_t cap = b->cap ? 2 * b->cap : 256;
			struct ls_callback_event *g = realloc(b->v, cap * sizeof(*g));
			uint32_t *gi;

			if (!g)
				return -ENOMEM;
			b->v = g;
			gi = realloc(b->idx, cap * sizeof(*gi));
			if (!gi)
				return -ENOMEM;
			b->idx = gi;
			b->cap = cap;
		}
		b->idx[b->n] = idx;
		b->v[b->n++] = e[i];
		rc->added++;
		if (b->n >= CBS_PER_RECORD) {
			err = batch_write(w, rc, b);
			if (err)
				return err;
		}
	}
	return 0;
}

int rec_cbs_flush(struct ls_record_writer *w, struct rec_cbs *rc)
{
	if (!rc)
		return 0;
	for (size_t i = 0; i < rc->n; i++) {
		int err = batch_write(w, rc, &rc->b[i]);

		if (err)
			return err;
	}
	return 0;
}

/* ---- the table of a window ---- */

struct cbwin_thread {
	uint32_t tgid, tid, seq;
};

struct ls_cbwin {
	uint64_t from_ns, to_ns;
	struct ls_cb_entry *v;  /* one per key met in the window */
	size_t n, cap;
	size_t lastk;           /* the entry of the last callback taken */
	struct cbwin_thread *t;
	size_t nt, capt;
	uint64_t taken, gaps;
};

struct ls_cbwin *ls_cbwin_new(uint64_t from_ns, uint64_t to_ns)
{
	struct ls_cbwin *cw = calloc(1, sizeof(*cw));

	if (cw) {
		cw->from_ns = from_ns;
		cw->to_ns = to_ns;
	}
	return cw;
}

void ls_cbwin_free(struct ls_cbwin *cw)
{
	if (!cw)
		return;
	free(cw->v);
	free(cw->t);
	free(cw);
}

/* The seq step of a thread's record e: the callbacks missing before it
 * (0 when none; a thread that starts again at 1 is a reused tid). */
static int gap_of(struct ls_cbwin *cw, const struct ls_callback_event *e, uint64_t *gap)
{
	struct cbwin_thread *t = NULL;

	for (size_t i = cw->nt; i-- > 0 && !t;)
		if (cw->t[i].tid == e->tid && cw->t[i].tgid == e->key.tgid)
			t = &cw->t[i];
	*gap = 0;
	if (!t) {
		if (cw->nt == cw->capt) {
			size_t cap = cw->capt ? 2 * cw->capt : 16;
			struct cbwin_thread *g = realloc(cw->t, cap * sizeof(*g));

			if (!g)
				return -ENOMEM;
			cw->t = g;
			cw->capt = cap;
		}
		t = &cw->t[cw->nt++];
		t->tgid = e->key.tgid;
		t->tid = e->tid;
		*gap = e->seq > 1 ? e->seq - 1 : 0;
	} else if (e->seq > t->seq + 1) {
		*gap = e->seq - t->seq - 1;
	}
	t->seq = e->seq;
	return 0;
}

int ls_cbwin_add(struct ls_cbwin *cw, const struct ls_callback_event *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t end = e[i].start_ns + e[i].duration_ns, gap;
		struct ls_cb_entry *x = NULL;

		if (gap_of(cw, &e[i], &gap))
			return -ENOMEM;
		cw->gaps += gap;
		if (end <= cw->from_ns || end > cw->to_ns)
			continue;
		if (cw->lastk < cw->n && same_key(&cw->v[cw->lastk].key, &e[i].key))
			x = &cw->v[cw->lastk];
		for (size_t k = 0; k < cw->n && !x; k++)
			if (same_key(&cw->v[k].key, &e[i].key))
				x = &cw->v[k];
		if (!x) {
			if (cw->n == cw->cap) {
				size_t cap = cw->cap ? 2 * cw->cap : 64;
				struct ls_cb_entry *g = realloc(cw->v, cap * sizeof(*g));

				if (!g)
					return -ENOMEM;
				cw->v = g;
				cw->cap = cap;
			}
			x = &cw->v[cw->n++];
			memset(x, 0, sizeof(*x));
			x->key = e[i].key;
		}
		ls_hist_record(&x->stats.duration, e[i].duration_ns);
		cw->lastk = (size_t)(x - cw->v);
		cw->taken++;
	}
	return 0;
}

const struct ls_cb_entry *ls_cbwin_table(const struct ls_cbwin *cw, size_t *n, uint64_t *taken,
					 uint64_t *gaps)
{
	*n = cw->n;
	if (taken)
		*taken = cw->taken;
	if (gaps)
		*gaps = cw->gaps;
	return cw->v;
}
