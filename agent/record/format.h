/* SPDX-License-Identifier: MIT */
/*
 * The byte layout of a recording (docs/RECORD.md), shared by the writer
 * (record.c) and the reader (replay.c). Integers are little-endian, the
 * byte order of x86-64, written and read with memcpy (no alignment).
 */
#ifndef LS_RECORD_FORMAT_H
#define LS_RECORD_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* File header: magic[8], u16 major, u16 minor, u32 header_len (bytes from
 * offset 0, this field's value: a later minor version may append fields),
 * u32 crc32 of the header with this field 0, then the fields below. */
#define REC_HDR_FIXED 20      /* magic .. crc */
#define REC_HDR_V1_LEN (REC_HDR_FIXED + 5 * 8 + 2 * 4 + LS_RECORD_MAX_PIDS * 4 + 65 + 129 + 32)
#define REC_HDR_MAX 65536     /* a header_len beyond: not a recording */

/* Block: u32 magic "LSBK", u32 raw_len, u32 comp_len, u32 crc32 of the 12
 * bytes before it and the comp_len bytes after, then a zlib stream of
 * raw_len bytes of records. */
#define REC_BLOCK_MAGIC 0x4b42534cu /* "LSBK" as read little-endian */
#define REC_BLOCK_HDR 16
/* A record: u16 type, u16 flags (0), u32 payload length, payload. */
#define REC_HDR 8

/* Per thread in a snapshot: u32 len (of this thread's entry, itself
 * included), then the fields of ls_thread_view in order, the histograms
 * sparse: u64 count, sum, max, u16 nonzero slots, that many (u16 slot,
 * u64 value). */
#define REC_THREAD_FIXED (4 + 4 * 4 + 8 * 8)

/* Slow busy record: the event's fields, u32 thread name id, then the stack
 * summary (docs/RECORD.md). */
#define REC_SLOW_FIXED (2 * 4 + 6 * 8 + 4 + 4)

/* A callback's key and its name (precise mode): u32 tgid, kind, u64 code,
 * name (addresses in the target), u32 qualname id, file id, s32 first line. */
#define REC_CBKEY 36

/* POLLS (1.3, agent/record/pollcodec.c): u32 tgid, tid, n, seq base, u64
 * time base, then n polls (struct ls_poll_event), each four unsigned LEB128
 * varints: seq step; the previous return (0: none, else return - t + 1,
 * where t is the entry before, or the base); the entry - that return (or
 * - t); the timeout code (0 none, 1 infinite, 2 + 2 ms, 3 + 2 ns). */
#define REC_POLLS_FIXED 24

/* CB_KEY (1.4): u32 index (0, 1, 2 ... as first met; an index may be
 * defined again), then a callback key and its name (REC_CBKEY). */
#define REC_CBKEY_REC (4 + REC_CBKEY)
/* Key indexes a recording defines at most (the writer drops the callbacks
 * of keys beyond and counts them lost; the reader refuses more). */
#define REC_CBKEYS_MAX 65536

/* CB_RUNS (1.4, agent/record/cbcodec.c): u32 tgid, tid, n, seq base, u64
 * time base, then n callbacks (struct ls_callback_event), each four
 * unsigned LEB128 varints: seq step (from the base for the first);
 * zigzag(start - t), t the end (start + duration) of the callback before,
 * or the base; the duration; the key index (CB_KEY). */
#define REC_CBRUNS_FIXED 24

struct ls_record_writer;
struct ls_poll_event;
struct ls_callback_event;
struct ls_cb_key;
struct ls_cb_name;
struct rec_cbs;
struct rec_polls;
/* record.c: a record of type with len bytes of payload into the block. */
int rec_put_raw(struct ls_record_writer *w, uint16_t type, const uint8_t *payload, size_t len);
/* polls.c: n polls (one thread, in order, n >= 1) encoded into out (room
 * for REC_POLLS_FIXED + 40 n bytes): the payload's length. */
size_t rec_polls_encode(uint8_t *out, const struct ls_poll_event *p, size_t n);
/* polls.c: a POLLS payload into *buf (grown, *cap entries): 0 and *n, or
 * -EBADMSG (inconsistent with len), -ENOMEM. */
int rec_polls_decode(const uint8_t *p, size_t len, struct ls_poll_event **buf, size_t *cap,
		     size_t *n);
/* polls.c: the writer's per-thread batches (*rpp made at the first). */
int rec_polls_add(struct ls_record_writer *w, struct rec_polls **rpp,
		  const struct ls_poll_event *p, size_t n);
int rec_polls_flush(struct ls_record_writer *w, struct rec_polls *rp);
uint64_t rec_polls_added(const struct rec_polls *rp);
void rec_polls_free(struct rec_polls *rp);

/* record.c: a CB_KEY record: index, key k and its name (NULL: none). */
int rec_put_cbkey(struct ls_record_writer *w, uint32_t index, const struct ls_cb_key *k,
		  const struct ls_cb_name *nm);
/* cbstream.c: the writer's key table and per-thread batches (*rcp made at
 * the first); callbacks whose key finds no index (REC_CBKEYS_MAX) are
 * dropped and counted (rec_cbs_added's *dropped). */
int rec_cbs_add(struct ls_record_writer *w, struct rec_cbs **rcp, const struct ls_callback_event *e,
		size_t n, ls_record_cb_name_fn name, void *ctx);
int rec_cbs_flush(struct ls_record_writer *w, struct rec_cbs *rc);
uint64_t rec_cbs_added(const struct rec_cbs *rc, uint64_t *dropped);
void rec_cbs_free(struct rec_cbs *rc);

/* cbcodec.c: n callbacks e of one thread of tgid, idx[i] e[i]'s key index,
 * encoded into out (room for REC_CBRUNS_FIXED + 40 n bytes): the payload's
 * length. */
size_t rec_cbruns_encode(uint8_t *out, uint32_t tgid, const struct ls_callback_event *e,
			 const uint32_t *idx, size_t n);
/* cbcodec.c: a CB_RUNS payload into *buf (grown, *cap entries), keys[0..
 * nkeys) the keys defined so far: 0 and *n, or -EBADMSG (inconsistent
 * with len, an index not defined), -ENOMEM. */
int rec_cbruns_decode(const uint8_t *p, size_t len, const struct ls_cb_key *keys, size_t nkeys,
		      struct ls_callback_event **buf, size_t *cap, size_t *n);

static inline void rec_w16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static inline void rec_w32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static inline void rec_w64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (8 * i); }
static inline uint16_t rec_r16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t rec_r32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t rec_r64(const uint8_t *p) { return rec_r32(p) | (uint64_t)rec_r32(p + 4) << 32; }

#endif /* LS_RECORD_FORMAT_H */
