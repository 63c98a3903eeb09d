// SPDX-License-Identifier: MIT
/*
 * fuzz_replay: the recording reader (agent/record/replay.c) on any bytes.
 * The first input byte picks how the rest is used:
 *   even: as a whole file (header, blocks: CRCs and zlib must hold, so
 *         mutations mostly exercise the header and block checks);
 *   odd:  as the records of one block, which the harness wraps in a valid
 *         header and a valid block (compressed, its CRC computed), so that
 *         mutations reach every record decoder.
 * Properties: no crash, leak or read out of bounds (ASan); the reader ends
 * with 0 or one of its documented errors, and keeps returning it; every
 * item's strings are NUL-terminated and its arrays as long as it says.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "fuzz.h"
#include "loopscope/abi/loop_events.h"
#include "loopscope/pycallback.h"
#include "loopscope/pyname.h"
#include "loopscope/record.h"
#include "record/format.h"

static volatile size_t sink;

static void touch_item(const struct ls_replay_item *it)
{
	switch (it->type) {
	case LS_REC_SNAPSHOT:
		for (size_t i = 0; i < it->nviews; i++)
			sink += it->views[i].busy.slots[LS_HIST_NSLOTS - 1] + it->views[i].tid;
		break;
	case LS_REC_SLOW_BUSY:
		sink += strlen(it->thread) + it->slow->duration_ns;
		FUZZ_CHECK(it->stacks.n <= LS_SUMMARY_STACKS_MAX);
		FUZZ_CHECK(it->stacks.chain.n <= LS_PYTASK_CHAIN_MAX);
		for (uint32_t i = 0; i < it->stacks.chain.n; i++)
			sink += strlen(it->stacks.chain.task[i].name) + strlen(it->stacks.chain.task[i].coro);
		for (size_t i = 0; i < it->stacks.n; i++) {
			FUZZ_CHECK(it->stacks.stacks[i].nframes <= LS_STACK_MAX);
			for (uint16_t f = 0; f < it->stacks.stacks[i].nframes; f++)
				sink += strlen(it->stacks.stacks[i].frames[f].qualname) +
					strlen(it->stacks.stacks[i].frames[f].filename);
		}
		break;
	case LS_REC_THREAD:
		sink += strlen(it->name);
		break;
	case LS_REC_PROCESS:
		sink += strlen(it->name) + strlen(it->interp);
		break;
	case LS_REC_END:
		FUZZ_CHECK(it->end.npids <= LS_RECORD_MAX_PIDS);
		break;
	case LS_REC_PRECISE_TARGET:
		break;
	case LS_REC_CALLBACKS:
		for (size_t i = 0; i < it->ncallbacks; i++)
			sink += strlen(it->callback_names[i].qualname) +
				strlen(it->callback_names[i].filename) +
				it->callbacks[i].stats.duration.slots[LS_HIST_NSLOTS - 1];
		break;
	case LS_REC_SLOW_CALLBACK:
		sink += strlen(it->cb_name->qualname) + strlen(it->cb_slow_name->filename) +
			it->slow_cb->duration_ns;
		FUZZ_CHECK(it->stacks.n <= LS_SUMMARY_STACKS_MAX);
		for (size_t i = 0; i < it->stacks.n; i++)
			for (uint16_t f = 0; f < it->stacks.stacks[i].nframes; f++)
				sink += strlen(it->stacks.stacks[i].frames[f].qualname);
		break;
	case LS_REC_POLLS:
		/* as long as it says, each poll of the record's thread */
		for (size_t i = 0; i < it->npolls; i++) {
			FUZZ_CHECK(it->polls[i].tid == it->tid);
			sink += it->polls[i].enter_ns + it->polls[i].prev_exit_ns;
		}
		break;
	case LS_REC_CB_KEY:
		sink += strlen(it->cb_name->qualname) + strlen(it->cb_name->filename) +
			it->cb_key->code + it->cb_index;
		break;
	case LS_REC_CB_RUNS:
		/* as long as it says, each callback of the record's thread */
		for (size_t i = 0; i < it->ncbruns; i++) {
			FUZZ_CHECK(it->cbruns[i].tid == it->tid);
			sink += it->cbruns[i].start_ns + it->cbruns[i].duration_ns +
				it->cbruns[i].key.code;
		}
		break;
	default:
		FUZZ_CHECK(0); /* unknown types are skipped, never handed out */
	}
}

static void read_all(const uint8_t *data, size_t size)
{
	struct ls_replay *r;
	struct ls_record_header h;
	struct ls_replay_item it;
	int err, n = 0;

	err = ls_replay_open_mem(data, size, &r, &h);
	if (err) {
		FUZZ_CHECK(err == -ENOEXEC || err == -EPROTONOSUPPORT || err == -ENODATA ||
			   err == -ENOMEM);
		return;
	}
	FUZZ_CHECK(h.npids <= LS_RECORD_MAX_PIDS);
	FUZZ_CHECK(memchr(h.host, 0, sizeof(h.host)) && memchr(h.kernel, 0, sizeof(h.kernel)));
	while ((err = ls_replay_next(r, &it)) > 0) {
		touch_item(&it);
		if ((it.type == LS_REC_SLOW_BUSY || it.type == LS_REC_SLOW_CALLBACK) && (n++ & 1)) {
			struct ls_stack_summary st;

			ls_replay_take_stacks(r, &it, &st);
			for (size_t i = 0; i < st.n; i++)
				free(st.stacks[i].frames);
			free(st.stacks);
		}
	}
	FUZZ_CHECK(err == 0 || err == -ENODATA || err == -EBADMSG || err == -ENOMEM);
	FUZZ_CHECK(ls_replay_next(r, &it) == err);
	FUZZ_CHECK(ls_replay_exit_code(err) >= LS_EXIT_REC_UNREADABLE || err == 0);
	ls_replay_close(r);
}

/* A valid header (no pids) followed by one valid block of the records
 * in data. */
static void wrap_and_read(const uint8_t *data, size_t size)
{
	size_t hl = REC_HDR_V1_LEN;
	uLongf clen = compressBound(size);
	uint8_t *f = calloc(1, hl + REC_BLOCK_HDR + clen);
	uLong crc;

	FUZZ_CHECK(f);
	memcpy(f, LS_RECORD_MAGIC, 8);
	rec_w16(f + 8, LS_RECORD_VERSION_MAJOR);
	rec_w32(f + 12, (uint32_t)hl);
	rec_w32(f + 16, (uint32_t)crc32(0, f, hl));
	if (size == 0 || size > LS_RECORD_BLOCK_MAX ||
	    compress2(f + hl + REC_BLOCK_HDR, &clen, data, size, 1) != Z_OK) {
		read_all(f, hl);
		free(f);
		return;
	}
	rec_w32(f + hl, REC_BLOCK_MAGIC);
	rec_w32(f + hl + 4, (uint32_t)size);
	rec_w32(f + hl + 8, (uint32_t)clen);
	crc = crc32(0, f + hl, 12);
	crc = crc32(crc, f + hl + REC_BLOCK_HDR, clen);
	rec_w32(f + hl + 12, (uint32_t)crc);
	read_all(f, hl + REC_BLOCK_HDR + clen);
	free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		wrap_and_read(data + 1, size - 1);
	else
		read_all(data + 1, size - 1);
	return 0;
}
