// SPDX-License-Identifier: MIT
/* Writing a recording (loopscope/record.h; layout in docs/RECORD.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/abi/pycallback_events.h"
#include "loopscope/pycallback.h"
#include "loopscope/pyname.h"
#include "loopscope/record.h"
#include "record/format.h"

#define BLOCK_FLUSH_AT (256u << 10)
#define NAMES_SLOTS_MIN 1024

struct name_slot {
	char *s;      /* NULL: empty */
	uint32_t id;
};

struct ls_record_writer {
	int fd;               /* -1: blocks go to sink */
	ls_record_sink_fn sink;
	void *sink_ctx;
	int err;              /* first write error, sticky */
	uint8_t *raw;         /* the block being filled */
	size_t len, cap;
	uint8_t *comp;
	size_t comp_cap;
	uint64_t bytes;
	struct name_slot *names; /* open addressing, power-of-two size */
	size_t nnames, names_cap;
	struct rec_polls *polls; /* the per-poll stream's batches (polls.c) */
	struct rec_cbs *cbs;     /* the per-callback stream's (cbstream.c) */
};

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static uint8_t *reserve(struct ls_record_writer *w, size_t n)
{
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 64 * 1024;
		uint8_t *p;

		while (cap < w->len + n)
			cap *= 2;
		p = realloc(w->raw, cap);
		if (!p)
			return NULL;
		w->raw = p;
		w->cap = cap;
	}
	w->len += n;
	return w->raw + w->len - n;
}

/* A sink's blocks are self-contained: each defines the names it uses,
 * from id 0 (a reader restarts its table at id 0). */
static void reset_names(struct ls_record_writer *w)
{
	for (size_t i = 0; i < w->names_cap; i++) {
		free(w->names[i].s);
		w->names[i].s = NULL;
	}
	w->nnames = 0;
}

int ls_record_flush(struct ls_record_writer *w)
{
	uint8_t hdr[REC_BLOCK_HDR];
	uLongf clen;
	uLong crc;
	int err;

	if (w->err)
		return w->err;
	if (!w->len)
		return 0;
	clen = compressBound(w->len);
	if (clen > w->comp_cap) {
		uint8_t *p = realloc(w->comp, clen);

		if (!p)
			return -ENOMEM;
		w->comp = p;
		w->comp_cap = clen;
	}
	if (compress2(w->comp, &clen, w->raw, w->len, 6) != Z_OK)
		return -ENOMEM;
	rec_w32(hdr, REC_BLOCK_MAGIC);
	rec_w32(hdr + 4, (uint32_t)w->len);
	rec_w32(hdr + 8, (uint32_t)clen);
	crc = crc32(0, hdr, 12);
	crc = crc32(crc, w->comp, clen);
	rec_w32(hdr + 12, (uint32_t)crc);
	if (w->sink) {
		err = w->sink(hdr, w->comp, clen, w->sink_ctx);
		if (err)
			return err; /* not sticky: the next block may go */
		reset_names(w);
	} else {
		err = write_all(w->fd, hdr, sizeof(hdr));
		if (!err)
			err = write_all(w->fd, w->comp, clen);
	}
	if (err) {
		w->err = err;
		return err;
	}
	w->bytes += sizeof(hdr) + clen;
	w->len = 0;
	return 0;
}

/* Start a record of type with payload_len bytes: the payload's start. */
static uint8_t *begin(struct ls_record_writer *w, uint16_t type, size_t payload_len)
{
	uint8_t *p;

	if (w->len + REC_HDR + payload_len > BLOCK_FLUSH_AT && w->len && ls_record_flush(w))
		return NULL;
	if (REC_HDR + payload_len > LS_RECORD_BLOCK_MAX)
		return NULL;
	p = reserve(w, REC_HDR + payload_len);
	if (!p)
		return NULL;
	rec_w16(p, type);
	rec_w16(p + 2, 0);
	rec_w32(p + 4, (uint32_t)payload_len);
	return p + REC_HDR;
}

static int fail(struct ls_record_writer *w)
{
	return w->err ? w->err : -ENOMEM;
}

int rec_put_raw(struct ls_record_writer *w, uint16_t type, const uint8_t *payload, size_t len)
{
	uint8_t *p = begin(w, type, len);

	if (!p)
		return fail(w);
	memcpy(p, payload, len);
	return 0;
}

int ls_record_put_polls(struct ls_record_writer *w, const struct ls_poll_event *p, size_t n)
{
	if (w->err)
		return w->err;
	return rec_polls_add(w, &w->polls, p, n);
}

uint64_t ls_record_polls(const struct ls_record_writer *w)
{
	return rec_polls_added(w->polls);
}

int ls_record_put_callback_runs(struct ls_record_writer *w, const struct ls_callback_event *e,
				size_t n, ls_record_cb_name_fn name, void *ctx)
{
	if (w->err)
		return w->err;
	return rec_cbs_add(w, &w->cbs, e, n, name, ctx);
}

uint64_t ls_record_callback_runs(const struct ls_record_writer *w, uint64_t *dropped)
{
	return rec_cbs_added(w->cbs, dropped);
}

/* The streams' batches into records (before a snapshot, the end, close). */
static int flush_streams(struct ls_record_writer *w)
{
	int err = rec_polls_flush(w, w->polls);

	return err ? err : rec_cbs_flush(w, w->cbs);
}

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

/* The id of name s, defined by a LS_REC_STRING record on first use. */
static int name_id(struct ls_record_writer *w, const char *s, uint32_t *id)
{
	size_t mask, i, n;
	uint8_t *p;

	if (!s)
		s = "";
	if ((w->nnames + 1) * 2 > w->names_cap) {
		size_t cap = w->names_cap ? w->names_cap * 2 : NAMES_SLOTS_MIN;
		struct name_slot *t = calloc(cap, sizeof(*t));

		if (!t)
			return -ENOMEM;
		for (i = 0; i < w->names_cap; i++) {
			if (!w->names[i].s)
				continue;
			size_t j = hash_str(w->names[i].s) & (cap - 1);

			while (t[j].s)
				j = (j + 1) & (cap - 1);
			t[j] = w->names[i];
		}
		free(w->names);
		w->names = t;
		w->names_cap = cap;
	}
	mask = w->names_cap - 1;
	for (i = hash_str(s) & mask; w->names[i].s; i = (i + 1) & mask) {
		if (!strcmp(w->names[i].s, s)) {
			*id = w->names[i].id;
			return 0;
		}
	}
	n = strlen(s);
	if (n > 4096)
		n = 4096;
	w->names[i].s = strndup(s, n);
	if (!w->names[i].s)
		return -ENOMEM;
	w->names[i].id = (uint32_t)w->nnames++;
	p = begin(w, LS_REC_STRING, 4 + n);
	if (!p)
		return fail(w);
	rec_w32(p, w->names[i].id);
	memcpy(p + 4, s, n);
	*id = w->names[i].id;
	return 0;
}

size_t ls_record_header_encode(const struct ls_record_header *h, uint8_t *buf, size_t len)
{
	uint8_t *p = buf;

	if (len < REC_HDR_V1_LEN)
		return 0;
	memset(buf, 0, REC_HDR_V1_LEN);
	memcpy(p, LS_RECORD_MAGIC, 8);
	rec_w16(p + 8, LS_RECORD_VERSION_MAJOR);
	rec_w16(p + 10, LS_RECORD_VERSION_MINOR);
	rec_w32(p + 12, REC_HDR_V1_LEN);
	p += REC_HDR_FIXED;
	rec_w64(p, h->realtime_ns);
	rec_w64(p + 8, h->monotonic_ns);
	rec_w64(p + 16, h->start_ns);
	rec_w64(p + 24, h->threshold_ns);
	rec_w64(p + 32, h->interval_ns);
	rec_w32(p + 40, h->mode);
	rec_w32(p + 44, h->npids > LS_RECORD_MAX_PIDS ? LS_RECORD_MAX_PIDS : h->npids);
	p += 48;
	for (int i = 0; i < LS_RECORD_MAX_PIDS; i++, p += 4)
		rec_w32(p, i < (int)h->npids ? h->pids[i] : 0);
	memcpy(p, h->host, strnlen(h->host, 64));
	p += 65;
	memcpy(p, h->kernel, strnlen(h->kernel, 128));
	p += 129;
	memcpy(p, h->tool, strnlen(h->tool, 31));
	rec_w32(buf + 16, (uint32_t)crc32(0, buf, REC_HDR_V1_LEN));
	return REC_HDR_V1_LEN;
}

int ls_record_open(const char *path, const struct ls_record_header *h,
		   struct ls_record_writer **out)
{
	struct ls_record_writer *w = calloc(1, sizeof(*w));
	uint8_t hdr[REC_HDR_V1_LEN];
	int err;

	if (!w)
		return -ENOMEM;
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		err = -errno;
		free(w);
		return err;
	}
	ls_record_header_encode(h, hdr, sizeof(hdr));
	err = write_all(w->fd, hdr, sizeof(hdr));
	if (err) {
		close(w->fd);
		free(w);
		return err;
	}
	w->bytes = sizeof(hdr);
	*out = w;
	return 0;
}

int ls_record_open_sink(ls_record_sink_fn sink, void *ctx, struct ls_record_writer **out)
{
	struct ls_record_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->sink = sink;
	w->sink_ctx = ctx;
	*out = w;
	return 0;
}

void ls_record_discard(struct ls_record_writer *w)
{
	w->len = 0;
	reset_names(w);
}

int ls_record_put_block(struct ls_record_writer *w, const uint8_t *block, size_t len)
{
	int err = ls_record_flush(w);

	if (err)
		return err;
	if (w->fd < 0)
		return -EINVAL;
	err = write_all(w->fd, block, len);
	if (err) {
		w->err = err;
		return err;
	}
	w->bytes += len;
	/* Names in the next block start again from 0: the reader's table is
	 * the copied block's now. */
	reset_names(w);
	return 0;
}

size_t ls_record_pending(const struct ls_record_writer *w)
{
	return w ? w->len : 0;
}

static size_t hist_size(const struct ls_hist *h)
{
	size_t n = 0;

	for (unsigned i = 0; i < LS_HIST_NSLOTS; i++)
		n += h->slots[i] != 0;
	return 3 * 8 + 2 + n * 10;
}

static uint8_t *put_hist(uint8_t *p, const struct ls_hist *h)
{
	uint8_t *cnt;
	uint16_t n = 0;

	rec_w64(p, h->count);
	rec_w64(p + 8, h->sum);
	rec_w64(p + 16, h->max);
	cnt = p + 24;
	p += 26;
	for (unsigned i = 0; i < LS_HIST_NSLOTS; i++) {
		if (!h->slots[i])
			continue;
		rec_w16(p, (uint16_t)i);
		rec_w64(p + 2, h->slots[i]);
		p += 10;
		n++;
	}
	rec_w16(cnt, n);
	return p;
}

int ls_record_put_snapshot(struct ls_record_writer *w, uint64_t now_ns,
			   const struct ls_thread_view *v, size_t n)
{
	size_t total = 8 + 4;
	uint8_t *p;
	int err = flush_streams(w);

	if (err)
		return err;

	for (size_t i = 0; i < n; i++)
		total += REC_THREAD_FIXED + hist_size(&v[i].busy) + hist_size(&v[i].poll) +
			 hist_size(&v[i].lag);
	p = begin(w, LS_REC_SNAPSHOT, total);
	if (!p)
		return fail(w);
	rec_w64(p, now_ns);
	rec_w32(p + 8, (uint32_t)n);
	p += 12;
	for (size_t i = 0; i < n; i++) {
		uint8_t *start = p;
		const struct ls_thread_view *t = &v[i];

		rec_w32(p + 4, t->tgid);
		rec_w32(p + 8, t->tid);
		rec_w32(p + 12, t->poll_kind);
		rec_w32(p + 16, t->in_poll);
		p += 20;
		const uint64_t f[8] = { t->thread_start, t->poll_enter_ns, t->poll_exit_ns,
					t->first_enter_ns, t->polls, t->iterations, t->slow_busy,
					t->lag_missed };
		for (int k = 0; k < 8; k++, p += 8)
			rec_w64(p, f[k]);
		p = put_hist(p, &t->busy);
		p = put_hist(p, &t->poll);
		p = put_hist(p, &t->lag);
		rec_w32(start, (uint32_t)(p - start));
	}
	return 0;
}

int ls_record_put_thread(struct ls_record_writer *w, uint32_t tgid, uint32_t tid,
			 const char *name)
{
	uint32_t id;
	uint8_t *p;
	int err = name_id(w, name, &id);

	if (err)
		return err;
	p = begin(w, LS_REC_THREAD, 12);
	if (!p)
		return fail(w);
	rec_w32(p, tgid);
	rec_w32(p + 4, tid);
	rec_w32(p + 8, id);
	return 0;
}

int ls_record_put_process(struct ls_record_writer *w, uint32_t pid, const char *comm,
			  const char *interp)
{
	uint32_t c, i;
	uint8_t *p;
	int err = name_id(w, comm, &c);

	if (!err)
		err = name_id(w, interp, &i);
	if (err)
		return err;
	p = begin(w, LS_REC_PROCESS, 12);
	if (!p)
		return fail(w);
	rec_w32(p, pid);
	rec_w32(p + 4, c);
	rec_w32(p + 8, i);
	return 0;
}

/* The ids of the names a stack summary uses, in the order stacks_put
 * writes them, defined first (their string records go before the record
 * that uses them): malloc'd into *ids. */
static int stacks_ids(struct ls_record_writer *w, const struct ls_stack_summary *st, uint32_t **ids)
{
	size_t nids = 2 * (size_t)st->chain.n + 2, k = 0; /* + the application frame's */
	int err = 0;

	for (size_t i = 0; i < st->n; i++)
		nids += 2 * st->stacks[i].nframes;
	*ids = malloc((nids + 1) * sizeof(**ids));
	if (!*ids)
		return -ENOMEM;
	for (uint32_t i = 0; !err && i < st->chain.n && i < LS_PYTASK_CHAIN_MAX; i++) {
		err = name_id(w, st->chain.task[i].name, &(*ids)[k++]);
		if (!err)
			err = name_id(w, st->chain.task[i].coro, &(*ids)[k++]);
	}
	for (size_t i = 0; !err && i < st->n; i++)
		for (uint16_t f = 0; !err && f < st->stacks[i].nframes; f++) {
			err = name_id(w, st->stacks[i].frames[f].qualname, &(*ids)[k++]);
			if (!err)
				err = name_id(w, st->stacks[i].frames[f].filename, &(*ids)[k++]);
		}
	if (!err && st->has_app) {
		err = name_id(w, st->app.qualname, &(*ids)[k++]);
		if (!err)
			err = name_id(w, st->app.filename, &(*ids)[k++]);
	}
	if (err) {
		free(*ids);
		*ids = NULL;
	}
	return err;
}

static size_t stacks_size(const struct ls_stack_summary *st)
{
	size_t total = 40 + st->chain.n * 20;

	for (size_t i = 0; i < st->n; i++)
		total += 40 + st->stacks[i].nframes * 16;
	return total + 20; /* the application frame (format 1.2) */
}

/* The summary: u32 nstacks, u32 dropped, u64 on_cpu, u64 off_cpu, u32
 * chain n, u32 chain truncated, u64 chain read_ns, tasks, stacks; then
 * (format 1.2) the application frame: u32 has_app, u32 qualname id, u32
 * filename id, u32 firstlineno, u32 line (ids 0 when has_app is 0). */
static uint8_t *stacks_put(uint8_t *p, const struct ls_stack_summary *st, const uint32_t *ids)
{
	size_t k = 0;

	rec_w32(p, (uint32_t)st->n);
	rec_w32(p + 4, (uint32_t)st->dropped);
	rec_w64(p + 8, st->on_cpu_ns);
	rec_w64(p + 16, st->off_cpu_ns);
	rec_w32(p + 24, st->chain.n);
	rec_w32(p + 28, st->chain.truncated);
	rec_w64(p + 32, st->chain.read_ns);
	p += 40;
	for (uint32_t i = 0; i < st->chain.n; i++, p += 20) {
		rec_w64(p, st->chain.task[i].addr);
		rec_w32(p + 8, ids[k++]);
		rec_w32(p + 12, ids[k++]);
		rec_w32(p + 16, st->chain.task[i].awaiters);
	}
	for (size_t i = 0; i < st->n; i++) {
		const struct ls_stack_agg *a = &st->stacks[i];

		rec_w32(p, a->kind);
		rec_w32(p + 4, (uint32_t)a->syscall);
		rec_w64(p + 8, a->on_cpu_ns);
		rec_w64(p + 16, a->blocked_ns);
		rec_w64(p + 24, a->runnable_ns);
		rec_w32(p + 32, a->events);
		p[36] = a->truncated;
		p[37] = a->error;
		rec_w16(p + 38, a->nframes);
		p += 40;
		for (uint16_t f = 0; f < a->nframes; f++, p += 16) {
			rec_w32(p, ids[k++]);
			rec_w32(p + 4, ids[k++]);
			rec_w32(p + 8, (uint32_t)a->frames[f].firstlineno);
			rec_w32(p + 12, (uint32_t)a->frames[f].line);
		}
	}
	rec_w32(p, st->has_app);
	rec_w32(p + 4, st->has_app ? ids[k] : 0);
	rec_w32(p + 8, st->has_app ? ids[k + 1] : 0);
	rec_w32(p + 12, st->has_app ? (uint32_t)st->app.firstlineno : 0);
	rec_w32(p + 16, st->has_app ? (uint32_t)st->app.line : 0);
	return p + 20;
}

static const struct ls_stack_summary no_stacks;

int ls_record_put_slow_busy(struct ls_record_writer *w, const struct ls_slow_busy_event *e,
			    const char *thread, const struct ls_stack_summary *st)
{
	uint32_t tid_name, *ids = NULL;
	uint8_t *p;
	int err;

	if (!st)
		st = &no_stacks;
	err = name_id(w, thread, &tid_name);
	if (!err)
		err = stacks_ids(w, st, &ids);
	if (err)
		return err;
	p = begin(w, LS_REC_SLOW_BUSY, REC_SLOW_FIXED + stacks_size(st) + 4);
	if (!p) {
		free(ids);
		return fail(w);
	}
	rec_w32(p, e->tgid);
	rec_w32(p + 4, e->tid);
	rec_w64(p + 8, e->start_ns);
	rec_w64(p + 16, e->duration_ns);
	rec_w64(p + 24, (uint64_t)e->poll_timeout_ns);
	rec_w64(p + 32, e->blocked_ns);
	rec_w64(p + 40, e->runnable_ns);
	rec_w64(p + 48, e->top_block_ns);
	rec_w32(p + 56, (uint32_t)e->top_syscall);
	rec_w32(p + 60, tid_name);
	p = stacks_put(p + REC_SLOW_FIXED, st, ids);
	rec_w32(p, e->untraced_us); /* 1.2 */
	free(ids);
	return 0;
}

int ls_record_put_precise_target(struct ls_record_writer *w, uint32_t pid, int major, int minor,
				 uint32_t route)
{
	uint8_t *p = begin(w, LS_REC_PRECISE_TARGET, 16);

	if (!p)
		return fail(w);
	rec_w32(p, pid);
	rec_w32(p + 4, (uint32_t)major);
	rec_w32(p + 8, (uint32_t)minor);
	rec_w32(p + 12, route);
	return 0;
}

/* A callback key and its name: u32 tgid, kind, u64 code, name, u32
 * qualname id, file id, s32 first line (REC_CBKEY bytes). */
static int cbname_ids(struct ls_record_writer *w, const struct ls_cb_name *nm, uint32_t id[2])
{
	int err = name_id(w, nm ? nm->qualname : "", &id[0]);

	return err ? err : name_id(w, nm ? nm->filename : "", &id[1]);
}

static uint8_t *cbkey_put(uint8_t *p, const struct ls_cb_key *k, const uint32_t id[2],
			  const struct ls_cb_name *nm)
{
	rec_w32(p, k->tgid);
	rec_w32(p + 4, k->kind);
	rec_w64(p + 8, k->code);
	rec_w64(p + 16, k->name);
	rec_w32(p + 24, id[0]);
	rec_w32(p + 28, id[1]);
	rec_w32(p + 32, (uint32_t)(nm ? nm->firstlineno : 0));
	return p + REC_CBKEY;
}

int rec_put_cbkey(struct ls_record_writer *w, uint32_t index, const struct ls_cb_key *k,
		  const struct ls_cb_name *nm)
{
	uint32_t id[2];
	uint8_t *p;
	int err = cbname_ids(w, nm, id);

	if (err)
		return err;
	p = begin(w, LS_REC_CB_KEY, REC_CBKEY_REC);
	if (!p)
		return fail(w);
	rec_w32(p, index);
	cbkey_put(p + 4, k, id, nm);
	return 0;
}

int ls_record_put_callbacks(struct ls_record_writer *w, uint64_t now_ns,
			    const struct ls_cb_entry *v, const struct ls_cb_name *const *names,
			    size_t n, uint64_t read_from_ns, uint64_t read_to_ns)
{
	uint32_t (*ids)[2] = malloc((n + 1) * sizeof(*ids));
	size_t total = 12 + 16;
	uint8_t *p;
	int err = ids ? 0 : -ENOMEM;

	for (size_t i = 0; !err && i < n; i++) {
		err = cbname_ids(w, names[i], ids[i]);
		total += 4 + REC_CBKEY + hist_size(&v[i].stats.duration);
	}
	if (err) {
		free(ids);
		return err;
	}
	p = begin(w, LS_REC_CALLBACKS, total);
	if (!p) {
		free(ids);
		return fail(w);
	}
	rec_w64(p, now_ns);
	rec_w32(p + 8, (uint32_t)n);
	p += 12;
	for (size_t i = 0; i < n; i++) {
		uint8_t *start = p;

		p = cbkey_put(p + 4, &v[i].key, ids[i], names[i]);
		p = put_hist(p, &v[i].stats.duration);
		rec_w32(start, (uint32_t)(p - start));
	}
	/* 1.4, after the entries (a 1.3 reader stops at n) */
	rec_w64(p, read_from_ns);
	rec_w64(p + 8, read_to_ns);
	free(ids);
	return 0;
}

int ls_record_put_slow_callback(struct ls_record_writer *w, const struct ls_slow_callback_event *e,
				const struct ls_cb_name *name, const struct ls_cb_name *slow_name,
				const struct ls_stack_summary *st)
{
	uint32_t id[2], sid[2], *ids = NULL;
	uint8_t *p;
	int err;

	if (!st)
		st = &no_stacks;
	err = cbname_ids(w, name, id);
	if (!err)
		err = cbname_ids(w, slow_name, sid);
	if (!err)
		err = stacks_ids(w, st, &ids);
	if (err)
		return err;
	p = begin(w, LS_REC_SLOW_CALLBACK, 4 + 16 + 2 * REC_CBKEY + stacks_size(st) + 32);
	if (!p) {
		free(ids);
		return fail(w);
	}
	rec_w32(p, e->tid);
	rec_w64(p + 4, e->start_ns);
	rec_w64(p + 12, e->duration_ns);
	p = cbkey_put(p + 20, &e->key, id, name);
	p = cbkey_put(p, &e->key, sid, slow_name);
	p = stacks_put(p, st, ids);
	/* 1.2: the exact split (bpf/loop.bpf.c's off-CPU episodes) */
	rec_w64(p, e->blocked_ns);
	rec_w64(p + 8, e->runnable_ns);
	rec_w64(p + 16, e->top_block_ns);
	rec_w32(p + 24, (uint32_t)e->top_syscall);
	rec_w32(p + 28, e->split);
	free(ids);
	return 0;
}

int ls_record_put_end(struct ls_record_writer *w, const struct ls_record_end *e)
{
	uint32_t n = e->npids > LS_RECORD_MAX_PIDS ? LS_RECORD_MAX_PIDS : e->npids;
	int err = flush_streams(w);
	uint8_t *p = err ? NULL : begin(w, LS_REC_END, 7 * 8 + 3 * 4 + n * 16 + 4 + 2 * 8 + 8 + 8 + 4 +
						      8 + 4);

	if (!p)
		return fail(w);
	const uint64_t f[7] = { e->end_ns, e->lost_events, e->slow_not_kept, e->stack_walks,
				e->stack_walk_errors, e->stack_dropped, e->stack_lost };
	for (int k = 0; k < 7; k++, p += 8)
		rec_w64(p, f[k]);
	rec_w32(p, e->stack_procs);
	rec_w32(p + 4, e->stacks_on);
	rec_w32(p + 8, n);
	p += 12;
	for (uint32_t i = 0; i < n; i++, p += 16) {
		rec_w32(p, e->pids[i]);
		rec_w32(p + 4, e->exited[i]);
		rec_w64(p + 8, e->exited_at_ns[i]);
	}
	/* 1.1 */
	rec_w32(p, e->stacks_enabled);
	rec_w64(p + 4, e->lost_callback_events);
	rec_w64(p + 12, e->slow_callbacks_not_kept);
	/* 1.2 */
	rec_w64(p + 20, e->offcpu_unseen);
	/* 1.3 */
	rec_w64(p + 28, e->lost_polls);
	rec_w32(p + 36, e->every_poll);
	/* 1.4 */
	rec_w64(p + 40, e->lost_callbacks);
	rec_w32(p + 48, e->every_callback);
	return 0;
}

uint64_t ls_record_bytes(const struct ls_record_writer *w)
{
	return w ? w->bytes : 0;
}

int ls_record_close(struct ls_record_writer *w)
{
	int err;

	if (!w)
		return 0;
	err = flush_streams(w);
	if (!err)
		err = ls_record_flush(w);
	rec_polls_free(w->polls);
	rec_cbs_free(w->cbs);
	if (w->fd >= 0 && close(w->fd) && !err)
		err = -errno;
	for (size_t i = 0; i < w->names_cap; i++)
		free(w->names[i].s);
	free(w->names);
	free(w->raw);
	free(w->comp);
	free(w);
	return err;
}
