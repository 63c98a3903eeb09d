/* SPDX-License-Identifier: MIT */
/*
 * Recordings (agent/record/): what `loopscope attach` consumes, written to a
 * file by `loopscope record` (or `attach --record FILE`) and read back by
 * `loopscope report`. The layout is documented in docs/RECORD.md: a fixed
 * header (magic, format version, host, kernel, start clocks), then blocks,
 * each a zlib stream of records with its lengths and a CRC-32, so a crash
 * loses at most the block being filled. Every record carries its type and
 * length: a reader skips the types it does not know and the tail of a
 * record longer than it expects (fields added by a later minor version).
 */
#ifndef LOOPSCOPE_RECORD_H
#define LOOPSCOPE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loopscope/loopscope.h"
#include "loopscope/slowstack.h"

/* Kernel records (loopscope/abi/), only pointed to here. */
struct ls_slow_busy_event;
struct ls_slow_callback_event;
struct ls_cb_entry;
struct ls_cb_name;
struct ls_poll_event;
struct ls_callback_event;
struct ls_cb_key;

#define LS_RECORD_MAGIC "LOOPSREC"   /* 8 bytes, no NUL */
#define LS_RECORD_VERSION_MAJOR 1    /* a reader refuses a larger one */
#define LS_RECORD_VERSION_MINOR 4    /* fields appended: readers skip them
				      * (1: precise mode's records, END's flags;
				      * 3: the per-poll stream; 4: the
				      * per-callback stream) */
#define LS_RECORD_MAX_PIDS 64
/* A block's records before compression, at most (the reader refuses more). */
#define LS_RECORD_BLOCK_MAX (4u << 20)

/* Record types (docs/RECORD.md has each payload). */
enum ls_record_type {
	LS_REC_STRING = 1,    /* u32 id, bytes: a name used by later records */
	LS_REC_THREAD = 2,    /* u32 tgid, tid, name id */
	LS_REC_SNAPSHOT = 3,  /* every loop thread's cumulative figures at a time */
	LS_REC_SLOW_BUSY = 4, /* a slow busy period, its reasons and stacks */
	LS_REC_END = 5,       /* the run ended cleanly: end time, counters, exits */
	LS_REC_PROCESS = 6,   /* u32 pid, comm id, interpreter id */
	LS_REC_PRECISE_TARGET = 7, /* a process in precise mode: pid, version, route */
	LS_REC_CALLBACKS = 8,      /* precise mode: every callback's histogram, named */
	LS_REC_SLOW_CALLBACK = 9,  /* precise mode: a slow callback, named, its stacks */
	LS_REC_POLLS = 10,         /* 1.3, --every-poll: polls of one thread, delta-encoded */
	LS_REC_CB_KEY = 11,        /* 1.4, --every-callback: a key index, the key, its name */
	LS_REC_CB_RUNS = 12,       /* 1.4, --every-callback: callbacks of one thread, delta-encoded */
};

/* Exit codes of `loopscope report` for a bad file (beside enum ls_exit):
 * one line on stderr says which; with 22 and 23 what precedes the damage
 * is reported first. */
enum ls_record_exit {
	LS_EXIT_REC_UNREADABLE = 20, /* cannot open or read the file */
	LS_EXIT_REC_NOT_RECORD = 21, /* another kind of file (no magic, bad header) */
	LS_EXIT_REC_NEWER = 22,      /* format version newer than this reader */
	LS_EXIT_REC_TRUNCATED = 23,  /* ends inside a block, or without its end record */
	LS_EXIT_REC_CORRUPT = 24,    /* a block's CRC, lengths or zlib stream are wrong */
};

/* The file header, host byte order (x86-64: little-endian). */
struct ls_record_header {
	uint16_t version_major, version_minor;
	uint64_t realtime_ns;    /* CLOCK_REALTIME at the start */
	uint64_t monotonic_ns;   /* CLOCK_MONOTONIC read right after it */
	uint64_t start_ns;       /* the report window's start, CLOCK_MONOTONIC */
	uint64_t threshold_ns;   /* slow from (the kernel's threshold while recording) */
	uint64_t interval_ns;    /* between snapshots */
	uint32_t mode;           /* 0 light, 1 precise */
	uint32_t npids;
	uint32_t pids[LS_RECORD_MAX_PIDS];
	char host[65];           /* uname nodename */
	char kernel[129];        /* uname release and version */
	char tool[32];           /* loopscope's version */
};

struct ls_record_writer;

/* Create path (truncated if it exists, mode 0644) and write header h (its
 * version fields are set here). 0 and *out, or -errno from open/write. */
int ls_record_open(const char *path, const struct ls_record_header *h,
		   struct ls_record_writer **out);

/* The header's bytes in 1.x (REC_HDR_V1_LEN in agent/record/format.h). */
#define LS_RECORD_HEADER_LEN 550
/* Encode header h (version fields set here, CRC computed) into buf (len
 * bytes): LS_RECORD_HEADER_LEN, or 0 when len is smaller. */
size_t ls_record_header_encode(const struct ls_record_header *h, uint8_t *buf, size_t len);

/* A block's bytes for a sink: hdr (16 bytes: magic, lengths, CRC), then
 * comp (clen bytes, the zlib stream). Return 0, or -errno: the block is
 * then kept and offered again at the next flush. */
typedef int (*ls_record_sink_fn)(const uint8_t hdr[16], const uint8_t *comp, size_t clen,
				 void *ctx);
/* A writer without a file (the daemon's flight recorder, agent/engine/
 * flight.c): no header; each block, when flushed, goes to sink, and its
 * names are defined again in the next block (every block self-contained:
 * its STRING records restart at id 0, which a reader takes as a new name
 * table), so blocks can be dropped from the front of a ring and the rest
 * still read. 0 and *out, or -ENOMEM. Free with ls_record_close. */
int ls_record_open_sink(ls_record_sink_fn sink, void *ctx, struct ls_record_writer **out);
/* Drop the block being filled and the names (a sink writer starting over). */
void ls_record_discard(struct ls_record_writer *w);
/* Flush, then append len bytes at block to the file as they are: a whole
 * block (header and zlib stream) a sink received, self-contained. Names
 * put after it are defined again from id 0. 0, -EINVAL (a sink writer),
 * or -errno of write(2) (sticky). */
int ls_record_put_block(struct ls_record_writer *w, const uint8_t *block, size_t len);
/* Bytes of records in the block being filled (before compression). */
size_t ls_record_pending(const struct ls_record_writer *w);

/* Append records; each returns 0 or -errno (-ENOMEM, or a write error of
 * a block filled on the way, which is then remembered: later calls return
 * it too). Records go to the block being filled, written when it reaches
 * 256 KiB or at ls_record_flush. */
int ls_record_put_snapshot(struct ls_record_writer *w, uint64_t now_ns,
			   const struct ls_thread_view *v, size_t n);
/* A slow busy period e of thread `thread` (its comm) with its stacks st
 * (NULL: none). Names are stored once each (LS_REC_STRING). */
int ls_record_put_slow_busy(struct ls_record_writer *w, const struct ls_slow_busy_event *e,
			    const char *thread, const struct ls_stack_summary *st);
int ls_record_put_thread(struct ls_record_writer *w, uint32_t tgid, uint32_t tid,
			 const char *name);
/* Process pid: its comm and interpreter ("CPython 3.12", "" unknown). */
int ls_record_put_process(struct ls_record_writer *w, uint32_t pid, const char *comm,
			  const char *interp);

/* What the end record holds. */
struct ls_record_end {
	uint64_t end_ns;          /* the final snapshot's time */
	uint64_t lost_events;     /* slow events the ring buffer dropped */
	uint64_t slow_not_kept;   /* slow events beyond attach's list */
	uint64_t stack_walks, stack_walk_errors, stack_dropped, stack_lost;
	uint32_t stack_procs;     /* processes whose stacks were walked; 0: stacks off */
	bool stacks_on;
	bool stacks_enabled;      /* stacks asked for (not --no-stacks) */
	uint64_t lost_callback_events; /* precise mode's ring buffer */
	uint64_t slow_callbacks_not_kept;
	uint64_t offcpu_unseen;   /* 1.2: off-CPU episodes the scheduler programs
				   * missed (ls_loop_offcpu_unseen) */
	uint64_t lost_polls;      /* 1.3: per-poll records the ring dropped
				   * (ls_loop_lost_polls) */
	bool every_poll;          /* 1.3: the per-poll stream was on */
	uint64_t lost_callbacks;  /* 1.4: per-callback records lost (the ring's,
				   * ls_pycb_lost_callbacks, and the writer's
				   * beyond its key table) */
	bool every_callback;      /* 1.4: the per-callback stream was on */
	uint32_t npids;
	uint32_t pids[LS_RECORD_MAX_PIDS];
	bool exited[LS_RECORD_MAX_PIDS];
	uint64_t exited_at_ns[LS_RECORD_MAX_PIDS];
};
int ls_record_put_end(struct ls_record_writer *w, const struct ls_record_end *end);

/* The per-poll stream (`--every-poll`): n polls p (any threads, each
 * thread's in its order), kept per thread and written as POLLS records
 * (delta-encoded, docs/RECORD.md) before the next snapshot or end record,
 * or when a thread has 4096 waiting. 0 or -errno as the others. */
int ls_record_put_polls(struct ls_record_writer *w, const struct ls_poll_event *p, size_t n);
/* Polls put so far. */
uint64_t ls_record_polls(const struct ls_record_writer *w);

/* The per-callback stream (`--every-callback`): n callbacks e (any
 * threads, each thread's in its order), kept per thread and written as
 * CB_RUNS records (delta-encoded, docs/RECORD.md) before the next snapshot
 * or end record, or when a thread has 4096 waiting; each key's CB_KEY
 * record (named by name(key, ctx); name NULL or its result NULL: no name)
 * is written when first met. Keys beyond 65,536: their callbacks are
 * dropped and counted (ls_record_callback_runs). 0 or -errno as the
 * others. */
typedef const struct ls_cb_name *(*ls_record_cb_name_fn)(const struct ls_cb_key *k, void *ctx);
int ls_record_put_callback_runs(struct ls_record_writer *w, const struct ls_callback_event *e,
				size_t n, ls_record_cb_name_fn name, void *ctx);
/* Callbacks put so far, *dropped (may be NULL) those dropped. */
uint64_t ls_record_callback_runs(const struct ls_record_writer *w, uint64_t *dropped);

/* Precise mode. A target: pid, CPython major.minor, how context_run was
 * found (enum ls_py_route). */
int ls_record_put_precise_target(struct ls_record_writer *w, uint32_t pid, int major, int minor,
				 uint32_t route);
/* Every callback's duration histogram at now_ns: n entries v, names[i]
 * the name of v[i].key; read_from_ns..read_to_ns (1.4; 0 0: unknown) the
 * time the kernel's table was read in (a callback that ended before
 * read_from_ns is in it, one that ended after read_to_ns is not). */
int ls_record_put_callbacks(struct ls_record_writer *w, uint64_t now_ns,
			    const struct ls_cb_entry *v, const struct ls_cb_name *const *names,
			    size_t n, uint64_t read_from_ns, uint64_t read_to_ns);
/* A slow callback e: its key's name, the name its stack gave it (a
 * Task's step; qualname "" none), its stacks (NULL: none). */
int ls_record_put_slow_callback(struct ls_record_writer *w, const struct ls_slow_callback_event *e,
				const struct ls_cb_name *name, const struct ls_cb_name *slow_name,
				const struct ls_stack_summary *st);

/* Compress and write the block being filled (nothing when empty): once
 * written the kernel has it, and a crash of the recorder loses nothing
 * before it (no fsync: a crash of the machine may). 0 or -errno of
 * write(2), -ENOMEM. */
int ls_record_flush(struct ls_record_writer *w);
/* Flush, close, free: 0 or the first error seen. NULL is fine. */
int ls_record_close(struct ls_record_writer *w);
/* Bytes written so far (header and blocks), and records put. */
uint64_t ls_record_bytes(const struct ls_record_writer *w);

/* ---- reading ---- */

struct ls_replay;

/* One record read back. Pointers stay valid until the next
 * ls_replay_next or ls_replay_close. */
struct ls_replay_item {
	uint16_t type;                        /* enum ls_record_type */
	/* LS_REC_SNAPSHOT */
	uint64_t now_ns;
	struct ls_thread_view *views;
	size_t nviews;
	/* LS_REC_SLOW_BUSY: the event, its thread's comm, its stacks (owned by
	 * the reader: ls_replay_take_stacks moves them to the caller) */
	const struct ls_slow_busy_event *slow;
	const char *thread;
	struct ls_stack_summary stacks;
	/* LS_REC_THREAD, LS_REC_PROCESS */
	uint32_t tgid, tid;
	const char *name;                     /* THREAD: comm; PROCESS: comm */
	const char *interp;                   /* PROCESS */
	/* LS_REC_END */
	struct ls_record_end end;
	/* LS_REC_PRECISE_TARGET: tgid, and */
	int major, minor;
	uint32_t route;
	/* LS_REC_CALLBACKS: now_ns, and entries with their names (reader's),
	 * the time the table was read in (1.4; 0 0 unknown) */
	uint64_t cb_read_from_ns, cb_read_to_ns;
	const struct ls_cb_entry *callbacks;
	const struct ls_cb_name *callback_names;
	size_t ncallbacks;
	/* LS_REC_SLOW_CALLBACK: the event, its names, stacks (as SLOW_BUSY) */
	const struct ls_slow_callback_event *slow_cb;
	const struct ls_cb_name *cb_name, *cb_slow_name;
	/* LS_REC_POLLS: tgid, tid, and the polls decoded */
	const struct ls_poll_event *polls;
	size_t npolls;
	/* LS_REC_CB_KEY: the index, the key and its name (cb_name) */
	uint32_t cb_index;
	const struct ls_cb_key *cb_key;
	/* LS_REC_CB_RUNS: tgid, tid, and the callbacks decoded (keys resolved) */
	const struct ls_callback_event *cbruns;
	size_t ncbruns;
};

/* Open recording path and read its header into *h: 0 and *out, or
 * -errno (open/read: -ENOENT, -EACCES, -EISDIR...), -ENOEXEC (not a
 * recording: no magic, a header too short or inconsistent), -EPROTONOSUPPORT
 * (a newer major version; *h has its version). The file is read whole. */
int ls_replay_open(const char *path, struct ls_replay **out, struct ls_record_header *h);
/* Same, over len bytes at data (copied). */
int ls_replay_open_mem(const void *data, size_t len, struct ls_replay **out,
		       struct ls_record_header *h);
/* The next record: 1 and *it; 0 at the clean end (after LS_REC_END and the
 * last block); -ENODATA truncated (the file ends inside a block, or
 * without an end record); -EBADMSG a corrupt block (CRC, lengths, zlib) or
 * record (a length beyond its block, a payload shorter than its fields, a
 * name id never defined); -ENOMEM. A STRING record of id 0 after names
 * were defined starts a new name table (the flight recorder's blocks each
 * define their own). After an error, further calls return
 * it again; the records before it were all delivered. */
int ls_replay_next(struct ls_replay *r, struct ls_replay_item *it);
/* Move the stacks of the last LS_REC_SLOW_BUSY item to *out (the caller
 * frees them with ls_slowstack_summary_free). */
void ls_replay_take_stacks(struct ls_replay *r, struct ls_replay_item *it,
			   struct ls_stack_summary *out);
/* Byte offset in the file of the block the last error is in. */
uint64_t ls_replay_offset(const struct ls_replay *r);
void ls_replay_close(struct ls_replay *r);

/* The exit code (enum ls_record_exit) and a few words for error err of
 * ls_replay_open/ls_replay_next. */
int ls_replay_exit_code(int err);
const char *ls_replay_strerror(int err);

/* ---- figures from the per-poll stream (agent/record/polls.c) ---- */

/* Each loop thread's figures as bpf/loop.bpf.c counts them (busy, poll and
 * lag histograms, polls, slow busy periods above threshold_ns, lag missed),
 * computed again from its polls, as a snapshot taken at cut_ns would have
 * read them (UINT64_MAX: after the last poll): a busy period counts at the
 * entry that ends it, a poll and its lateness at its return. A thread's
 * records must come in its order; across lost records (its seq jumps) the
 * busy period is not known and not counted. */
struct ls_polls;
/* NULL when out of memory. */
struct ls_polls *ls_polls_new(uint64_t threshold_ns, uint64_t cut_ns);
/* Add n polls (an LS_REC_POLLS item's). 0 or -ENOMEM. */
int ls_polls_add(struct ls_polls *ps, const struct ls_poll_event *p, size_t n);
/* The return of a thread's last poll is in no record (a record comes with
 * the next entry): take it from snap, that thread's last snapshot, when
 * that snapshot saw the same last entry (its polls) and the return after
 * it, at or before the cut. Call after the last ls_polls_add. */
void ls_polls_complete(struct ls_polls *ps, const struct ls_thread_view *snap);
/* Thread tid's figures into the fields of *v the stream gives (tgid, tid,
 * in_poll, poll entry and return, first entry, polls, iterations, slow
 * busy, lag missed, histograms; poll_kind and thread_start are left as
 * they are), *gaps (may be NULL) the polls missing between its records.
 * 0, or -ENOENT: no record of tid at or before the cut. */
int ls_polls_view(const struct ls_polls *ps, uint32_t tid, struct ls_thread_view *v,
		  uint64_t *gaps);
/* Records taken (at or before the cut) and polls missing between them. */
uint64_t ls_polls_records(const struct ls_polls *ps, uint64_t *gaps);
void ls_polls_free(struct ls_polls *ps);

/* ---- the per-callback table of a window (agent/record/cbstream.c) ---- */

/* Each callback key's duration histogram over the callbacks of the stream
 * whose end (start + duration) is in (from_ns, to_ns], as the kernel's
 * table counts them (ls_hist_record of each duration). */
struct ls_cbwin;
/* NULL when out of memory. */
struct ls_cbwin *ls_cbwin_new(uint64_t from_ns, uint64_t to_ns);
/* Add n callbacks (an LS_REC_CB_RUNS item's). 0 or -ENOMEM. */
int ls_cbwin_add(struct ls_cbwin *cw, const struct ls_callback_event *e, size_t n);
/* The table: *n entries (valid until the next add or free); *taken
 * callbacks in the window, *gaps callbacks missing between the records of
 * a thread (its seq jumps; anywhere in the stream); either may be NULL. */
const struct ls_cb_entry *ls_cbwin_table(const struct ls_cbwin *cw, size_t *n, uint64_t *taken,
					 uint64_t *gaps);
void ls_cbwin_free(struct ls_cbwin *cw);

#endif /* LOOPSCOPE_RECORD_H */
