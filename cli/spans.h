/* SPDX-License-Identifier: MIT */
/*
 * Every busy period and every callback of a recording's streams (the
 * per-poll stream, --every-poll; the per-callback stream, --every-callback)
 * kept for the timeline (`report --perfetto`, `--html`; cli/spans.c): per
 * thread and kind, the first CLI_SPANS_MAX whose end is in the report's
 * window, and a count of those left out, which both outputs state.
 */
#ifndef LOOPSCOPE_CLI_SPANS_H
#define LOOPSCOPE_CLI_SPANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/abi/pycallback_events.h"
#include "loopscope/pyname.h"

/* Spans drawn per thread and kind, at most: a storm's 200,000 callbacks a
 * thread would make a 30 MB trace and a page no browser draws quickly;
 * --from/--to choose which ones. */
#define CLI_SPANS_MAX 10000

enum cli_span_kind { CLI_SPAN_BUSY = 0, CLI_SPAN_CALLBACK = 1 };

struct cli_span {
	uint64_t start_ns, duration_ns;
	uint32_t key;               /* CALLBACK: its index in the names */
};

struct cli_span_thread {
	uint32_t tgid, tid;
	struct cli_span *v[2];      /* by enum cli_span_kind */
	size_t n[2], cap[2];
	uint64_t left_out[2];
};

struct cli_spans {
	uint64_t from_ns, to_ns;
	struct cli_span_thread *t;
	size_t nt;
	struct ls_cb_key *keys;     /* the callbacks' keys and names */
	struct ls_cb_name *names;
	size_t nkeys, keys_cap;
	uint64_t drawn[2], left_out[2];
	bool oom;
};

/* Spans ending in (from_ns, to_ns]. NULL on ENOMEM. */
struct cli_spans *cli_spans_new(uint64_t from_ns, uint64_t to_ns);
/* The busy periods n polls give (each from the return before it to its
 * entry). */
void cli_spans_polls(struct cli_spans *s, const struct ls_poll_event *p, size_t n);
/* A stream key's name (an LS_REC_CB_KEY item). */
void cli_spans_key(struct cli_spans *s, const struct ls_cb_key *k, const struct ls_cb_name *nm);
/* n callbacks. */
void cli_spans_cbs(struct cli_spans *s, const struct ls_callback_event *e, size_t n);
/* "name file:line" of callback span c into buf. */
const char *cli_spans_name(const struct cli_spans *s, const struct cli_span *c, char *buf,
			   size_t len);
void cli_spans_free(struct cli_spans *s);

#endif /* LOOPSCOPE_CLI_SPANS_H */
