// SPDX-License-Identifier: MIT
/* Every busy period and callback of a recording's streams, capped, for
 * the timeline (cli/spans.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/pyname.h"
#include "spans.h"

struct cli_spans *cli_spans_new(uint64_t from_ns, uint64_t to_ns)
{
	struct cli_spans *s = calloc(1, sizeof(*s));

	if (s) {
		s->from_ns = from_ns;
		s->to_ns = to_ns;
	}
	return s;
}

static struct cli_span_thread *thread_of(struct cli_spans *s, uint32_t tgid, uint32_t tid)
{
	for (size_t i = s->nt; i-- > 0;)
		if (s->t[i].tid == tid && s->t[i].tgid == tgid)
			return &s->t[i];
	struct cli_span_thread *g = realloc(s->t, (s->nt + 1) * sizeof(*g));

	if (!g) {
		s->oom = true;
		return NULL;
	}
	s->t = g;
	memset(&g[s->nt], 0, sizeof(g[0]));
	g[s->nt].tgid = tgid;
	g[s->nt].tid = tid;
	return &g[s->nt++];
}

static void add(struct cli_spans *s, uint32_t tgid, uint32_t tid, int kind, uint64_t start,
		uint64_t dur, uint32_t key)
{
	struct cli_span_thread *t;

	if (start + dur <= s->from_ns || start + dur > s->to_ns)
		return;
	t = thread_of(s, tgid, tid);
	if (!t)
		return;
	if (t->n[kind] >= CLI_SPANS_MAX) {
		t->left_out[kind]++;
		s->left_out[kind]++;
		return;
	}
	if (t->n[kind] == t->cap[kind]) {
		size_t cap = t->cap[kind] ? 2 * t->cap[kind] : 256;
		struct cli_span *g = realloc(t->v[kind], cap * sizeof(*g));

		if (!g) {
			s->oom = true;
			return;
		}
		t->v[kind] = g;
		t->cap[kind] = cap;
	}
	t->v[kind][t->n[kind]++] = (struct cli_span){ start, dur, key };
	s->drawn[kind]++;
}

void cli_spans_polls(struct cli_spans *s, const struct ls_poll_event *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].prev_exit_ns && p[i].prev_exit_ns <= p[i].enter_ns)
			add(s, p[i].tgid, p[i].tid, CLI_SPAN_BUSY, p[i].prev_exit_ns,
			    p[i].enter_ns - p[i].prev_exit_ns, 0);
}

static size_t key_index(const struct cli_spans *s, const struct ls_cb_key *k)
{
	for (size_t i = 0; i < s->nkeys; i++)
		if (!memcmp(&s->keys[i], k, sizeof(*k)))
			return i;
	return s->nkeys;
}

void cli_spans_key(struct cli_spans *s, const struct ls_cb_key *k, const struct ls_cb_name *nm)
{
	size_t i = key_index(s, k);

	if (i == s->nkeys) {
		if (s->nkeys == s->keys_cap) {
			size_t cap = s->keys_cap ? 2 * s->keys_cap : 64;
			struct ls_cb_key *gk = realloc(s->keys, cap * sizeof(*gk));
			struct ls_cb_name *gn;

			if (!gk) {
				s->oom = true;
				return;
			}
			s->keys = gk;
			gn = realloc(s->names, cap * sizeof(*gn));
			if (!gn) {
				s->oom = true;
				return;
			}
			s->names = gn;
			s->keys_cap = cap;
		}
		s->keys[s->nkeys++] = *k;
	}
	s->names[i] = *nm;
}

void cli_spans_cbs(struct cli_spans *s, const struct ls_callback_event *e, size_t n)
{
	size_t last = 0;

	for (size_t i = 0; i < n; i++) {
		if (last >= s->nkeys || memcmp(&s->keys[last], &e[i].key, sizeof(e[i].key)))
			last = key_index(s, &e[i].key); /* nkeys: no name */
		add(s, e[i].key.tgid, e[i].tid, CLI_SPAN_CALLBACK, e[i].start_ns, e[i].duration_ns,
		    (uint32_t)last);
	}
}

const char *cli_spans_name(const struct cli_spans *s, const struct cli_span *c, char *buf,
			   size_t len)
{
	if (c->key >= s->nkeys) {
		snprintf(buf, len, "callback");
		return buf;
	}
	return ls_pyname_format(&s->keys[c->key], &s->names[c->key], buf, len);
}

void cli_spans_free(struct cli_spans *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nt; i++) {
		free(s->t[i].v[0]);
		free(s->t[i].v[1]);
	}
	free(s->t);
	free(s->keys);
	free(s->names);
	free(s);
}
