// SPDX-License-Identifier: MIT
/* Precise mode's per-callback table, one row per (callable, application
 * frame): the kernel keeps one histogram per callable (bpf/pycallback.bpf.c);
 * the slow callbacks whose stacks name an application frame are moved out
 * of their callable's row into one of their own, so two handlers under one
 * framework wrapper (aiohttp's RequestHandler._handle_request) are two
 * rows. Fast callbacks have no stack: they stay in the callable's row. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static bool same_app(const struct ls_pyframe *a, const struct ls_pyframe *b)
{
	return a->firstlineno == b->firstlineno && !strcmp(a->qualname, b->qualname) &&
	       !strcmp(a->filename, b->filename);
}

int cli_cb_rows(const struct cli_precise *p, const struct ls_cb_entry *v, size_t n,
		struct cli_cb_row **out, size_t *nout, size_t *overflowed)
{
	struct cli_cb_row *rows = calloc(n + CLI_CB_APP_ROWS_MAX, sizeof(*rows));
	size_t nrows = n, napp = 0;

	*overflowed = 0;
	if (!rows)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		rows[i].key = v[i].key;
		rows[i].h = v[i].stats.duration;
	}
	for (size_t s = 0; p->slow_stacks && s < p->nslow; s++) {
		const struct ls_stack_summary *st = &p->slow_stacks[s];
		struct cli_cb_row *parent = NULL, *row = NULL;

		if (!st->has_app)
			continue;
		for (size_t i = 0; i < n && !parent; i++)
			if (!memcmp(&rows[i].key, &p->slow[s].key, sizeof(rows[i].key)))
				parent = &rows[i];
		if (!parent)
			continue; /* its process's histograms are gone */
		for (size_t r = n; r < nrows && !row; r++)
			if (!memcmp(&rows[r].key, &parent->key, sizeof(parent->key)) &&
			    same_app(&rows[r].app, &st->app))
				row = &rows[r];
		if (!row) {
			if (napp == CLI_CB_APP_ROWS_MAX) {
				(*overflowed)++;
				continue;
			}
			row = &rows[nrows++];
			napp++;
			row->key = parent->key;
			row->has_app = true;
			row->app = st->app;
			row->app.line = st->app.firstlineno; /* a row is a function: its def line */
			row->parent = parent - rows;
		}
		ls_hist_record(&row->h, p->slow[s].duration_ns);
	}
	/* The callable's row keeps the rest. A slow callback counted here
	 * that the kernel's snapshot (taken before the last events were
	 * read) does not have yet makes ls_hist_sub clamp at 0. */
	for (size_t r = n; r < nrows; r++) {
		struct cli_cb_row *parent = &rows[rows[r].parent];

		ls_hist_sub(&parent->h, &parent->h, &rows[r].h);
	}
	/* A callable whose every call moved out has no row of its own. */
	size_t w = 0;

	for (size_t r = 0; r < nrows; r++)
		if (r >= n || rows[r].h.count)
			rows[w++] = rows[r];
	*out = rows;
	*nout = w;
	return 0;
}
