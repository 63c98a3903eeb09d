// SPDX-License-Identifier: MIT
/* Reading a recording back (loopscope/record.h; layout in docs/RECORD.md).
 * Every length and id comes from the file and is checked before use: a
 * damaged file ends the reading with an error, never a crash or a read out
 * of bounds (tests/fuzz/fuzz_replay.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/pycallback.h"
#include "loopscope/pyname.h"
#include "loopscope/record.h"
#include "record/format.h"

/* Names one file may define; a file asking for more is corrupt. */
#define NAMES_MAX (1u << 22)
/* Threads in one snapshot, at most (the kernel tracks LS_MAX_THREADS). */
#define SNAP_THREADS_MAX 65536

struct ls_replay {
	uint8_t *data;       /* the whole file */
	size_t len, pos;     /* pos: the next block */
	uint64_t block_off;  /* the current block's offset */
	uint8_t *raw;        /* the current block, decompressed */
	size_t raw_len, raw_cap, rpos;
	char **names;        /* by id */
	size_t nnames, names_cap;
	char **retired;      /* names of earlier tables (id 0 defined again) */
	size_t nretired, retired_cap;
	bool ended;          /* LS_REC_END seen */
	int err;             /* sticky */
	struct ls_thread_view *views;
	size_t views_cap;
	struct ls_slow_busy_event slow;
	struct ls_stack_summary stacks;
	struct ls_slow_callback_event slow_cb;
	struct ls_cb_name cb_name, cb_slow_name;
	struct ls_cb_entry *cbs;     /* the last LS_REC_CALLBACKS */
	struct ls_cb_name *cb_names;
	size_t cbs_cap;
	struct ls_poll_event *polls; /* the last LS_REC_POLLS, decoded */
	size_t polls_cap;
	struct ls_cb_key *cbkeys;    /* CB_KEY records by index */
	struct ls_cb_name cbkey_name; /* the last CB_KEY's name */
	size_t ncbkeys, cbkeys_cap;
	struct ls_callback_event *cbruns; /* the last CB_RUNS, decoded */
	size_t cbruns_cap;
};

int ls_replay_exit_code(int err)
{
	switch (err) {
	case -ENOEXEC: return LS_EXIT_REC_NOT_RECORD;
	case -EPROTONOSUPPORT: return LS_EXIT_REC_NEWER;
	case -ENODATA: return LS_EXIT_REC_TRUNCATED;
	case -EBADMSG: return LS_EXIT_REC_CORRUPT;
	default: return LS_EXIT_REC_UNREADABLE;
	}
}

const char *ls_replay_strerror(int err)
{
	switch (err) {
	case -ENOEXEC: return "not a loopscope recording";
	case -EPROTONOSUPPORT: return "recorded by a newer loopscope (format version)";
	case -ENODATA: return "truncated (the recording did not end cleanly)";
	case -EBADMSG: return "corrupt block";
	case -ENOMEM: return "out of memory";
	default: return strerror(-err);
	}
}

static int parse_header(struct ls_replay *r, struct ls_record_header *h)
{
	const uint8_t *p = r->data;
	uint8_t tmp[REC_HDR_V1_LEN];
	uint32_t hlen, crc;

	memset(h, 0, sizeof(*h));
	if (r->len < REC_HDR_FIXED || memcmp(p, LS_RECORD_MAGIC, 8))
		return -ENOEXEC;
	h->version_major = rec_r16(p + 8);
	h->version_minor = rec_r16(p + 10);
	if (h->version_major > LS_RECORD_VERSION_MAJOR)
		return -EPROTONOSUPPORT;
	if (h->version_major < 1)
		return -ENOEXEC;
	hlen = rec_r32(p + 12);
	if (hlen < REC_HDR_V1_LEN || hlen > REC_HDR_MAX)
		return -ENOEXEC;
	if (hlen > r->len)
		return -ENODATA;
	/* The CRC covers the whole header (a later minor's fields too). */
	crc = rec_r32(p + 16);
	memcpy(tmp, p, sizeof(tmp));
	rec_w32(tmp + 16, 0);
	uLong c = crc32(0, tmp, sizeof(tmp));
	c = crc32(c, p + sizeof(tmp), hlen - sizeof(tmp));
	if ((uint32_t)c != crc)
		return -ENOEXEC;
	p += REC_HDR_FIXED;
	h->realtime_ns = rec_r64(p);
	h->monotonic_ns = rec_r64(p + 8);
	h->start_ns = rec_r64(p + 16);
	h->threshold_ns = rec_r64(p + 24);
	h->interval_ns = rec_r64(p + 32);
	h->mode = rec_r32(p + 40);
	h->npids = rec_r32(p + 44);
	if (h->npids > LS_RECORD_MAX_PIDS)
		return -ENOEXEC;
	p += 48;
	for (int i = 0; i < LS_RECORD_MAX_PIDS; i++, p += 4)
		h->pids[i] = rec_r32(p);
	memcpy(h->host, p, 64);
	p += 65;
	memcpy(h->kernel, p, 128);
	p += 129;
	memcpy(h->tool, p, 31);
	r->pos = hlen;
	return 0;
}

int ls_replay_open_mem(const void *data, size_t len, struct ls_replay **out,
		       struct ls_record_header *h)
{
	struct ls_replay *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->data = malloc(len ? len : 1);
	if (!r->data) {
		free(r);
		return -ENOMEM;
	}
	memcpy(r->data, data, len);
	r->len = len;
	err = parse_header(r, h);
	if (err) {
		ls_replay_close(r);
		return err;
	}
	*out = r;
	return 0;
}

int ls_replay_open(const char *path, struct ls_replay **out, struct ls_record_header *h)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -ENOEXEC;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	err = ls_replay_open_mem(buf, got, out, h);
	free(buf);
	return err;
}

/* Decompress the next block: 1, 0 at the end of the file, or an error. */
static int next_block(struct ls_replay *r)
{
	const uint8_t *p;
	uint32_t raw_len, comp_len;
	uLongf out_len;
	uLong crc;

	if (r->pos == r->len)
		return 0;
	r->block_off = r->pos;
	if (r->len - r->pos < REC_BLOCK_HDR)
		return -ENODATA;
	p = r->data + r->pos;
	if (rec_r32(p) != REC_BLOCK_MAGIC)
		return -EBADMSG;
	raw_len = rec_r32(p + 4);
	comp_len = rec_r32(p + 8);
	if (raw_len == 0 || raw_len > LS_RECORD_BLOCK_MAX || comp_len == 0 ||
	    comp_len > compressBound(LS_RECORD_BLOCK_MAX))
		return -EBADMSG;
	if (r->len - r->pos - REC_BLOCK_HDR < comp_len)
		return -ENODATA;
	crc = crc32(0, p, 12);
	crc = crc32(crc, p + REC_BLOCK_HDR, comp_len);
	if ((uint32_t)crc != rec_r32(p + 12))
		return -EBADMSG;
	if (raw_len > r->raw_cap) {
		uint8_t *b = realloc(r->raw, raw_len);

		if (!b)
			return -ENOMEM;
		r->raw = b;
		r->raw_cap = raw_len;
	}
	out_len = raw_len;
	if (uncompress(r->raw, &out_len, p + REC_BLOCK_HDR, comp_len) != Z_OK || out_len != raw_len)
		return -EBADMSG;
	r->raw_len = raw_len;
	r->rpos = 0;
	r->pos += REC_BLOCK_HDR + comp_len;
	return 1;
}

static const char *name_of(struct ls_replay *r, uint32_t id)
{
	return id < r->nnames ? r->names[id] : NULL;
}

/* Move the names to the retired list, the table starts over. */
static int retire_names(struct ls_replay *r)
{
	if (r->nretired + r->nnames > NAMES_MAX)
		return -EBADMSG;
	if (r->nretired + r->nnames > r->retired_cap) {
		size_t cap = r->retired_cap ? r->retired_cap : 256;
		char **t;

		while (cap < r->nretired + r->nnames)
			cap *= 2;
		t = realloc(r->retired, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		r->retired = t;
		r->retired_cap = cap;
	}
	memcpy(r->retired + r->nretired, r->names, r->nnames * sizeof(*r->names));
	r->nretired += r->nnames;
	r->nnames = 0;
	return 0;
}

static int add_name(struct ls_replay *r, const uint8_t *p, uint32_t len)
{
	char *s;

	if (len >= 4 && rec_r32(p) == 0 && r->nnames) {
		/* A new name table (a flight recorder's dump: each block defines
		 * its own names from 0). The old names stay allocated until
		 * close: items already returned may point to them. */
		int err = retire_names(r);

		if (err)
			return err;
	}
	if (len < 4 || rec_r32(p) != r->nnames || r->nnames >= NAMES_MAX)
		return -EBADMSG; /* ids are defined in order, once each */
	if (r->nnames == r->names_cap) {
		size_t cap = r->names_cap ? r->names_cap * 2 : 256;
		char **t = realloc(r->names, cap * sizeof(*t));

		if (!t)
			return -ENOMEM;
		r->names = t;
		r->names_cap = cap;
	}
	s = strndup((const char *)p + 4, len - 4);
	if (!s)
		return -ENOMEM;
	r->names[r->nnames++] = s;
	return 0;
}

/* Read a sparse histogram at *p (end: the entry's end) into h. */
static int get_hist(const uint8_t **pp, const uint8_t *end, struct ls_hist *h)
{
	const uint8_t *p = *pp;
	uint16_t n;

	memset(h, 0, sizeof(*h));
	if (end - p < 26)
		return -EBADMSG;
	h->count = rec_r64(p);
	h->sum = rec_r64(p + 8);
	h->max = rec_r64(p + 16);
	n = rec_r16(p + 24);
	p += 26;
	if ((size_t)(end - p) < (size_t)n * 10)
		return -EBADMSG;
	for (uint16_t i = 0; i < n; i++, p += 10) {
		uint16_t slot = rec_r16(p);

		if (slot >= LS_HIST_NSLOTS)
			return -EBADMSG;
		h->slots[slot] = rec_r64(p + 2);
	}
	*pp = p;
	return 0;
}

static int get_snapshot(struct ls_replay *r, const uint8_t *p, uint32_t len,
			struct ls_replay_item *it)
{
	const uint8_t *end = p + len;
	uint32_t n;

	if (len < 12)
		return -EBADMSG;
	it->now_ns = rec_r64(p);
	n = rec_r32(p + 8);
	p += 12;
	if (n > SNAP_THREADS_MAX || (size_t)n * REC_THREAD_FIXED > (size_t)(end - p))
		return -EBADMSG;
	if (n > r->views_cap) {
		struct ls_thread_view *v = realloc(r->views, n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->views = v;
		r->views_cap = n;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct ls_thread_view *t = &r->views[i];
		const uint8_t *q, *tend;
		uint32_t tlen;

		if (end - p < 4)
			return -EBADMSG;
		tlen = rec_r32(p);
		if (tlen < REC_THREAD_FIXED || tlen > (size_t)(end - p))
			return -EBADMSG;
		tend = p + tlen;
		memset(t, 0, sizeof(*t));
		t->tgid = rec_r32(p + 4);
		t->tid = rec_r32(p + 8);
		t->poll_kind = rec_r32(p + 12);
		t->in_poll = rec_r32(p + 16) != 0;
		q = p + 20;
		t->thread_start = rec_r64(q);
		t->poll_enter_ns = rec_r64(q + 8);
		t->poll_exit_ns = rec_r64(q + 16);
		t->first_enter_ns = rec_r64(q + 24);
		t->polls = rec_r64(q + 32);
		t->iterations = rec_r64(q + 40);
		t->slow_busy = rec_r64(q + 48);
		t->lag_missed = rec_r64(q + 56);
		q += 64;
		if (get_hist(&q, tend, &t->busy) || get_hist(&q, tend, &t->poll) ||
		    get_hist(&q, tend, &t->lag))
			return -EBADMSG;
		p = tend; /* fields a later minor version appended: skipped */
	}
	it->views = r->views;
	it->nviews = n;
	return 0;
}

/* ls_slowstack_summary_free's job, here so the reader needs no Python
 * reading code (and its fuzzer builds alone). */
static void summary_free(struct ls_stack_summary *st)
{
	for (size_t i = 0; i < st->n; i++)
		free(st->stacks[i].frames);
	free(st->stacks);
	memset(st, 0, sizeof(*st));
}

/* A stack summary at *pp (end: the record's end) into r->stacks. */
static int get_stacks(struct ls_replay *r, const uint8_t **pp, const uint8_t *end)
{
	struct ls_stack_summary *st = &r->stacks;
	const uint8_t *p = *pp;
	uint32_t nstacks, nchain;

	if (end - p < 40)
		return -EBADMSG;
	nstacks = rec_r32(p);
	st->dropped = rec_r32(p + 4);
	st->on_cpu_ns = rec_r64(p + 8);
	st->off_cpu_ns = rec_r64(p + 16);
	nchain = rec_r32(p + 24);
	st->chain.truncated = rec_r32(p + 28);
	st->chain.read_ns = rec_r64(p + 32);
	p += 40;
	if (nchain > LS_PYTASK_CHAIN_MAX || nstacks > LS_SUMMARY_STACKS_MAX ||
	    (size_t)(end - p) < (size_t)nchain * 20 + (size_t)nstacks * 40)
		return -EBADMSG;
	for (uint32_t i = 0; i < nchain; i++, p += 20) {
		const char *nm = name_of(r, rec_r32(p + 8)), *co = name_of(r, rec_r32(p + 12));

		if (!nm || !co)
			return -EBADMSG;
		st->chain.task[i].addr = rec_r64(p);
		snprintf(st->chain.task[i].name, sizeof(st->chain.task[i].name), "%s", nm);
		snprintf(st->chain.task[i].coro, sizeof(st->chain.task[i].coro), "%s", co);
		st->chain.task[i].awaiters = rec_r32(p + 16);
	}
	st->chain.n = nchain;
	if (nstacks) {
		st->stacks = calloc(nstacks, sizeof(*st->stacks));
		if (!st->stacks)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < nstacks; i++) {
		struct ls_stack_agg *a = &st->stacks[i];
		uint16_t nf;

		if (end - p < 40)
			return -EBADMSG;
		a->kind = rec_r32(p);
		a->syscall = (int32_t)rec_r32(p + 4);
		a->on_cpu_ns = rec_r64(p + 8);
		a->blocked_ns = rec_r64(p + 16);
		a->runnable_ns = rec_r64(p + 24);
		a->events = rec_r32(p + 32);
		a->truncated = p[36] != 0;
		a->error = p[37];
		nf = rec_r16(p + 38);
		p += 40;
		if (nf > LS_STACK_MAX || (size_t)(end - p) < (size_t)nf * 16)
			return -EBADMSG;
		if (nf) {
			a->frames = calloc(nf, sizeof(*a->frames));
			if (!a->frames)
				return -ENOMEM;
		}
		st->n = i + 1; /* freed with the summary from here on */
		for (uint16_t f = 0; f < nf; f++, p += 16) {
			const char *q = name_of(r, rec_r32(p)), *fn = name_of(r, rec_r32(p + 4));

			if (!q || !fn)
				return -EBADMSG;
			snprintf(a->frames[f].qualname, sizeof(a->frames[f].qualname), "%s", q);
			snprintf(a->frames[f].filename, sizeof(a->frames[f].filename), "%s", fn);
			a->frames[f].firstlineno = (int32_t)rec_r32(p + 8);
			a->frames[f].line = (int32_t)rec_r32(p + 12);
		}
		a->nframes = nf;
	}
	st->n = nstacks;
	/* The application frame (format 1.2; absent before: none). */
	if (end - p >= 20 && rec_r32(p)) {
		const char *q = name_of(r, rec_r32(p + 4)), *fn = name_of(r, rec_r32(p + 8));

		if (!q || !fn)
			return -EBADMSG;
		st->has_app = true;
		snprintf(st->app.qualname, sizeof(st->app.qualname), "%s", q);
		snprintf(st->app.filename, sizeof(st->app.filename), "%s", fn);
		st->app.firstlineno = (int32_t)rec_r32(p + 12);
		st->app.line = (int32_t)rec_r32(p + 16);
	}
	if (end - p >= 20)
		p += 20;
	*pp = p;
	return 0;
}

static int get_slow(struct ls_replay *r, const uint8_t *p, uint32_t len, struct ls_replay_item *it)
{
	const uint8_t *end = p + len;
	struct ls_slow_busy_event *e = &r->slow;
	int err;

	summary_free(&r->stacks);
	if (len < REC_SLOW_FIXED)
		return -EBADMSG;
	memset(e, 0, sizeof(*e));
	e->type = LS_EV_SLOW_BUSY;
	e->tgid = rec_r32(p);
	e->tid = rec_r32(p + 4);
	e->start_ns = rec_r64(p + 8);
	e->duration_ns = rec_r64(p + 16);
	e->poll_timeout_ns = (int64_t)rec_r64(p + 24);
	e->blocked_ns = rec_r64(p + 32);
	e->runnable_ns = rec_r64(p + 40);
	e->top_block_ns = rec_r64(p + 48);
	e->top_syscall = (int32_t)rec_r32(p + 56);
	it->thread = name_of(r, rec_r32(p + 60));
	if (!it->thread)
		return -EBADMSG;
	p += REC_SLOW_FIXED;
	err = get_stacks(r, &p, end);
	if (err)
		return err;
	if (end - p >= 4) /* 1.2 */
		e->untraced_us = rec_r32(p);
	it->slow = e;
	it->stacks = r->stacks;
	return 0;
}

/* A callback key and its name at p (REC_CBKEY bytes, checked by the caller). */
static int get_cbkey(struct ls_replay *r, const uint8_t *p, struct ls_cb_key *k,
		     struct ls_cb_name *nm)
{
	const char *q = name_of(r, rec_r32(p + 24)), *f = name_of(r, rec_r32(p + 28));

	if (!q || !f)
		return -EBADMSG;
	k->tgid = rec_r32(p);
	k->kind = rec_r32(p + 4);
	k->code = rec_r64(p + 8);
	k->name = rec_r64(p + 16);
	snprintf(nm->qualname, sizeof(nm->qualname), "%s", q);
	snprintf(nm->filename, sizeof(nm->filename), "%s", f);
	nm->firstlineno = (int32_t)rec_r32(p + 32);
	return 0;
}

static int get_callbacks(struct ls_replay *r, const uint8_t *p, uint32_t len,
			 struct ls_replay_item *it)
{
	const uint8_t *end = p + len;
	uint32_t n;

	if (len < 12)
		return -EBADMSG;
	it->now_ns = rec_r64(p);
	n = rec_r32(p + 8);
	p += 12;
	if (n > SNAP_THREADS_MAX || (size_t)n * (4 + REC_CBKEY + 26) > (size_t)(end - p))
		return -EBADMSG;
	if (n > r->cbs_cap) {
		struct ls_cb_entry *v = realloc(r->cbs, n * sizeof(*v));
		struct ls_cb_name *nm;

		if (!v)
			return -ENOMEM;
		r->cbs = v;
		nm = realloc(r->cb_names, n * sizeof(*nm));
		if (!nm)
			return -ENOMEM;
		r->cb_names = nm;
		r->cbs_cap = n;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *q;
		uint32_t elen;

		if (end - p < 4)
			return -EBADMSG;
		elen = rec_r32(p);
		if (elen < 4 + REC_CBKEY + 26 || elen > (size_t)(end - p))
			return -EBADMSG;
		memset(&r->cbs[i], 0, sizeof(r->cbs[i]));
		if (get_cbkey(r, p + 4, &r->cbs[i].key, &r->cb_names[i]))
			return -EBADMSG;
		q = p + 4 + REC_CBKEY;
		if (get_hist(&q, p + elen, &r->cbs[i].stats.duration))
			return -EBADMSG;
		p += elen;
	}
	if (end - p >= 16) { /* 1.4 */
		it->cb_read_from_ns = rec_r64(p);
		it->cb_read_to_ns = rec_r64(p + 8);
	}
	it->callbacks = r->cbs;
	it->callback_names = r->cb_names;
	it->ncallbacks = n;
	return 0;
}

/* CB_KEY: index (at most the next one), key and name. */
static int get_cb_key(struct ls_replay *r, const uint8_t *p, uint32_t len,
		      struct ls_replay_item *it)
{
	uint32_t idx;
	struct ls_cb_key k;

	if (len < REC_CBKEY_REC)
		return -EBADMSG;
	idx = rec_r32(p);
	if (idx > r->ncbkeys || idx >= REC_CBKEYS_MAX || get_cbkey(r, p + 4, &k, &r->cbkey_name))
		return -EBADMSG;
	if (idx == r->ncbkeys) {
		if (r->ncbkeys == r->cbkeys_cap) {
			size_t cap = r->cbkeys_cap ? 2 * r->cbkeys_cap : 64;
			struct ls_cb_key *g = realloc(r->cbkeys, cap * sizeof(*g));

			if (!g)
				return -ENOMEM;
			r->cbkeys = g;
			r->cbkeys_cap = cap;
		}
		r->ncbkeys++;
	}
	r->cbkeys[idx] = k;
	it->cb_index = idx;
	it->cb_key = &r->cbkeys[idx];
	it->cb_name = &r->cbkey_name;
	return 0;
}

static int get_slow_cb(struct ls_replay *r, const uint8_t *p, uint32_t len,
		       struct ls_replay_item *it)
{
	const uint8_t *end = p + len;
	struct ls_slow_callback_event *e = &r->slow_cb;
	struct ls_cb_key k2;
	int err;

	summary_free(&r->stacks);
	if (len < 20 + 2 * REC_CBKEY)
		return -EBADMSG;
	memset(e, 0, sizeof(*e));
	e->type = LS_EV_SLOW_CALLBACK;
	e->tid = rec_r32(p);
	e->start_ns = rec_r64(p + 4);
	e->duration_ns = rec_r64(p + 12);
	if (get_cbkey(r, p + 20, &e->key, &r->cb_name) ||
	    get_cbkey(r, p + 20 + REC_CBKEY, &k2, &r->cb_slow_name))
		return -EBADMSG;
	p += 20 + 2 * REC_CBKEY;
	err = get_stacks(r, &p, end);
	if (err)
		return err;
	/* Where its time went (format 1.2; absent before: split NONE). */
	if (end - p >= 32) {
		e->blocked_ns = rec_r64(p);
		e->runnable_ns = rec_r64(p + 8);
		e->top_block_ns = rec_r64(p + 16);
		e->top_syscall = (int32_t)rec_r32(p + 24);
		e->split = rec_r32(p + 28);
	}
	it->slow_cb = e;
	it->cb_name = &r->cb_name;
	it->cb_slow_name = &r->cb_slow_name;
	it->stacks = r->stacks;
	return 0;
}

static int get_end(const uint8_t *p, uint32_t len, struct ls_replay_item *it)
{
	struct ls_record_end *e = &it->end;
	uint32_t n;

	if (len < 7 * 8 + 12)
		return -EBADMSG;
	e->end_ns = rec_r64(p);
	e->lost_events = rec_r64(p + 8);
	e->slow_not_kept = rec_r64(p + 16);
	e->stack_walks = rec_r64(p + 24);
	e->stack_walk_errors = rec_r64(p + 32);
	e->stack_dropped = rec_r64(p + 40);
	e->stack_lost = rec_r64(p + 48);
	e->stack_procs = rec_r32(p + 56);
	e->stacks_on = rec_r32(p + 60) != 0;
	n = rec_r32(p + 64);
	p += 68;
	if (n > LS_RECORD_MAX_PIDS || len < 68 + n * 16)
		return -EBADMSG;
	e->npids = n;
	for (uint32_t i = 0; i < n; i++, p += 16) {
		e->pids[i] = rec_r32(p);
		e->exited[i] = rec_r32(p + 4) != 0;
		e->exited_at_ns[i] = rec_r64(p + 8);
	}
	if (len >= 68 + n * 16 + 20) { /* 1.1 */
		e->stacks_enabled = rec_r32(p) != 0;
		e->lost_callback_events = rec_r64(p + 4);
		e->slow_callbacks_not_kept = rec_r64(p + 12);
		if (len >= 68 + n * 16 + 28) /* 1.2 */
			e->offcpu_unseen = rec_r64(p + 20);
		if (len >= 68 + n * 16 + 40) { /* 1.3 */
			e->lost_polls = rec_r64(p + 28);
			e->every_poll = rec_r32(p + 36) != 0;
		}
		if (len >= 68 + n * 16 + 52) { /* 1.4 */
			e->lost_callbacks = rec_r64(p + 40);
			e->every_callback = rec_r32(p + 48) != 0;
		}
	} else {
		e->stacks_enabled = e->stacks_on;
	}
	return 0;
}

static int next(struct ls_replay *r, struct ls_replay_item *it)
{
	for (;;) {
		const uint8_t *p;
		uint16_t type;
		uint32_t len;
		int err;

		if (r->rpos == r->raw_len) {
			err = next_block(r);
			if (err < 0)
				return err;
			if (err == 0)
				return r->ended ? 0 : -ENODATA;
			if (r->ended)
				return -EBADMSG; /* blocks after the end record */
		}
		if (r->raw_len - r->rpos < REC_HDR)
			return -EBADMSG;
		p = r->raw + r->rpos;
		type = rec_r16(p);
		len = rec_r32(p + 4);
		if (len > r->raw_len - r->rpos - REC_HDR)
			return -EBADMSG;
		p += REC_HDR;
		r->rpos += REC_HDR + len;
		memset(it, 0, sizeof(*it));
		it->type = type;
		switch (type) {
		case LS_REC_STRING:
			err = add_name(r, p, len);
			if (err)
				return err;
			continue; /* names are the reader's own business */
		case LS_REC_THREAD:
			if (len < 12 || !(it->name = name_of(r, rec_r32(p + 8))))
				return -EBADMSG;
			it->tgid = rec_r32(p);
			it->tid = rec_r32(p + 4);
			return 1;
		case LS_REC_PROCESS:
			if (len < 12 || !(it->name = name_of(r, rec_r32(p + 4))) ||
			    !(it->interp = name_of(r, rec_r32(p + 8))))
				return -EBADMSG;
			it->tgid = rec_r32(p);
			return 1;
		case LS_REC_SNAPSHOT:
			err = get_snapshot(r, p, len, it);
			return err ? err : 1;
		case LS_REC_SLOW_BUSY:
			err = get_slow(r, p, len, it);
			return err ? err : 1;
		case LS_REC_PRECISE_TARGET:
			if (len < 16)
				return -EBADMSG;
			it->tgid = rec_r32(p);
			it->major = (int)rec_r32(p + 4);
			it->minor = (int)rec_r32(p + 8);
			it->route = rec_r32(p + 12);
			return 1;
		case LS_REC_CALLBACKS:
			err = get_callbacks(r, p, len, it);
			return err ? err : 1;
		case LS_REC_SLOW_CALLBACK:
			err = get_slow_cb(r, p, len, it);
			return err ? err : 1;
		case LS_REC_POLLS:
			err = rec_polls_decode(p, len, &r->polls, &r->polls_cap, &it->npolls);
			if (err)
				return err;
			it->tgid = rec_r32(p);
			it->tid = rec_r32(p + 4);
			it->polls = r->polls;
			return 1;
		case LS_REC_CB_KEY:
			err = get_cb_key(r, p, len, it);
			return err ? err : 1;
		case LS_REC_CB_RUNS:
			err = rec_cbruns_decode(p, len, r->cbkeys, r->ncbkeys, &r->cbruns,
						&r->cbruns_cap, &it->ncbruns);
			if (err)
				return err;
			it->tgid = rec_r32(p);
			it->tid = rec_r32(p + 4);
			it->cbruns = r->cbruns;
			return 1;
		case LS_REC_END:
			if (r->ended)
				return -EBADMSG;
			err = get_end(p, len, it);
			if (err)
				return err;
			r->ended = true;
			return 1;
		default:
			continue; /* a type of a later version */
		}
	}
}

int ls_replay_next(struct ls_replay *r, struct ls_replay_item *it)
{
	int ret;

	if (r->err)
		return r->err;
	ret = next(r, it);
	if (ret < 0)
		r->err = ret;
	return ret;
}

void ls_replay_take_stacks(struct ls_replay *r, struct ls_replay_item *it,
			   struct ls_stack_summary *out)
{
	*out = r->stacks;
	memset(&r->stacks, 0, sizeof(r->stacks));
	memset(&it->stacks, 0, sizeof(it->stacks));
}

uint64_t ls_replay_offset(const struct ls_replay *r)
{
	return r->block_off;
}

void ls_replay_close(struct ls_replay *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nnames; i++)
		free(r->names[i]);
	for (size_t i = 0; i < r->nretired; i++)
		free(r->retired[i]);
	free(r->retired);
	free(r->names);
	free(r->data);
	free(r->raw);
	free(r->views);
	free(r->cbs);
	free(r->cb_names);
	free(r->polls);
	free(r->cbkeys);
	free(r->cbruns);
	summary_free(&r->stacks);
	free(r);
}
