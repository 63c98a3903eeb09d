// SPDX-License-Identifier: MIT
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "truth.h"

#define GROW(arr, n, cap)                                                        \
	do {                                                                     \
		if ((n) == (cap)) {                                              \
			size_t c_ = (cap) ? (cap) * 2 : 1024;                    \
			void *p_ = realloc((arr), c_ * sizeof(*(arr)));          \
			if (!p_)                                                 \
				goto nomem;                                      \
			(arr) = p_;                                              \
			(cap) = c_;                                              \
		}                                                                \
	} while (0)

static int get_u64(json_object *o, const char *k, uint64_t *v)
{
	json_object *x;

	if (!json_object_object_get_ex(o, k, &x) || !json_object_is_type(x, json_type_int))
		return -1;
	*v = json_object_get_uint64(x);
	return 0;
}

static int get_i64(json_object *o, const char *k, int64_t *v)
{
	json_object *x;

	if (!json_object_object_get_ex(o, k, &x) || !json_object_is_type(x, json_type_int))
		return -1;
	*v = json_object_get_int64(x);
	return 0;
}

static int get_str(json_object *o, const char *k, char *buf, size_t len)
{
	json_object *x;

	if (!json_object_object_get_ex(o, k, &x) || !json_object_is_type(x, json_type_string))
		return -1;
	snprintf(buf, len, "%s", json_object_get_string(x));
	return 0;
}

/* One line into t; -1 when it is malformed (reason in why). */
static int parse_line(struct ls_truth *t, json_object *o, size_t *cap_p, size_t *cap_c,
		      size_t *cap_t, const char **why)
{
	char ev[16];
	int64_t i64 = 0;
	uint64_t u = 0;

	if (get_str(o, "ev", ev, sizeof(ev))) {
		*why = "no \"ev\"";
		return -1;
	}
	if (!strcmp(ev, "start")) {
		if (get_i64(o, "pid", &i64))
			goto bad;
		t->pid = (int)i64;
		if (get_i64(o, "tid", &i64) || get_str(o, "poll", t->poll_kind, sizeof(t->poll_kind)))
			goto bad;
		t->tid = (int)i64;
	} else if (!strcmp(ev, "poll")) {
		struct ls_truth_poll p;

		if (get_u64(o, "enter_ns", &p.enter_ns) || get_u64(o, "exit_ns", &p.exit_ns) ||
		    get_i64(o, "timeout_ns", &p.timeout_ns) || get_i64(o, "nevents", &i64))
			goto bad;
		p.nevents = (int)i64;
		GROW(t->polls, t->npolls, *cap_p);
		t->polls[t->npolls++] = p;
	} else if (!strcmp(ev, "callback")) {
		struct ls_truth_callback c;

		if (get_str(o, "name", c.name, sizeof(c.name)) || get_u64(o, "start_ns", &c.start_ns) ||
		    get_u64(o, "end_ns", &c.end_ns))
			goto bad;
		GROW(t->callbacks, t->ncallbacks, *cap_c);
		t->callbacks[t->ncallbacks++] = c;
	} else if (!strcmp(ev, "timer")) {
		struct ls_truth_timer tm;

		if (get_str(o, "name", tm.name, sizeof(tm.name)) ||
		    get_u64(o, "deadline_ns", &tm.deadline_ns) ||
		    get_u64(o, "dispatch_ns", &tm.dispatch_ns))
			goto bad;
		GROW(t->timers, t->ntimers, *cap_t);
		t->timers[t->ntimers++] = tm;
	} else if (!strcmp(ev, "end")) {
		if (get_u64(o, "polls", &u))
			goto bad;
		t->complete = 1;
	} else {
		*why = "unknown \"ev\"";
		return -1;
	}
	return 0;
bad:
	*why = "missing or mistyped field";
	return -1;
nomem:
	*why = "out of memory";
	return -1;
}

int ls_truth_load(const char *path, struct ls_truth *t)
{
	size_t cap_p = 0, cap_c = 0, cap_t = 0, cap = 0;
	char *line = NULL;
	ssize_t n;
	int lineno = 0, err = 0;
	FILE *f;

	memset(t, 0, sizeof(*t));
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while ((n = getline(&line, &cap, f)) > 0) {
		const char *why = NULL;
		json_object *o;

		lineno++;
		if (line[n - 1] != '\n' && feof(f))
			break; /* unterminated last line: the writer was killed */
		o = json_tokener_parse(line);
		if (!o || !json_object_is_type(o, json_type_object)) {
			why = "not a JSON object";
		} else {
			parse_line(t, o, &cap_p, &cap_c, &cap_t, &why);
		}
		json_object_put(o);
		if (why) {
			snprintf(t->error, sizeof(t->error), "%s:%d: %s", path, lineno, why);
			err = -EINVAL;
			break;
		}
	}
	free(line);
	fclose(f);
	return err;
}

void ls_truth_free(struct ls_truth *t)
{
	free(t->polls);
	free(t->callbacks);
	free(t->timers);
	memset(t, 0, sizeof(*t));
}

size_t ls_truth_count_polls(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns)
{
	size_t n = 0;

	for (size_t i = 0; i < t->npolls; i++)
		n += t->polls[i].enter_ns >= from_ns && t->polls[i].enter_ns <= to_ns;
	return n;
}

size_t ls_truth_busy_periods(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns,
			     uint64_t min_ns, struct ls_truth_busy **out)
{
	struct ls_truth_busy *v = NULL;
	size_t n = 0;

	for (size_t i = 1; i < t->npolls; i++) {
		uint64_t start = t->polls[i - 1].exit_ns, end = t->polls[i].enter_ns;

		if (end < from_ns || end > to_ns || end - start <= min_ns)
			continue;
		void *p = realloc(v, (n + 1) * sizeof(*v));
		if (!p)
			break;
		v = p;
		v[n].start_ns = start;
		v[n++].duration_ns = end - start;
	}
	*out = v;
	return n;
}

size_t ls_truth_timer_lateness(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns,
			       uint64_t **out_ns)
{
	uint64_t *v = malloc((t->ntimers + 1) * sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; v && i < t->ntimers; i++) {
		const struct ls_truth_timer *tm = &t->timers[i];

		if (tm->dispatch_ns >= from_ns && tm->dispatch_ns <= to_ns)
			v[n++] = tm->dispatch_ns > tm->deadline_ns ? tm->dispatch_ns - tm->deadline_ns : 0;
	}
	*out_ns = v;
	return n;
}

size_t ls_truth_loop_lateness(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns,
			      uint64_t **out_ns)
{
	uint64_t *v = malloc((t->ntimers + 1) * sizeof(*v));
	size_t n = 0, p = 0;

	/* Timers are logged in dispatch order, so deadlines of timers that
	 * run in order rise too; polls are in time order: one forward pass. */
	for (size_t i = 0; v && i < t->ntimers; i++) {
		const struct ls_truth_timer *tm = &t->timers[i];

		if (tm->dispatch_ns < from_ns || tm->dispatch_ns > to_ns)
			continue;
		while (p > 0 && t->polls[p - 1].exit_ns >= tm->deadline_ns)
			p--;
		while (p < t->npolls && t->polls[p].exit_ns < tm->deadline_ns)
			p++;
		if (p < t->npolls)
			v[n++] = t->polls[p].exit_ns - tm->deadline_ns;
	}
	*out_ns = v;
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t ls_truth_percentile(uint64_t *v, size_t n, double q)
{
	size_t rank;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	rank = (size_t)ceil(q / 100.0 * (double)n - 1e-9);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

uint64_t ls_truth_delay_percentile(const struct ls_truth *t, uint64_t from_ns, uint64_t to_ns,
				   double q)
{
	struct ls_truth_busy *b = NULL;
	size_t n = ls_truth_busy_periods(t, from_ns + 1, to_ns, 0, &b);
	double poll = 0, busy = 0, want = q / 100.0;
	uint64_t lo = 0, hi = 0;

	for (size_t i = 0; i < t->npolls; i++)
		if (t->polls[i].enter_ns >= from_ns && t->polls[i].enter_ns <= to_ns)
			poll += (double)(t->polls[i].exit_ns - t->polls[i].enter_ns);
	for (size_t i = 0; i < n; i++) {
		busy += (double)b[i].duration_ns;
		if (b[i].duration_ns > hi)
			hi = b[i].duration_ns;
	}
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		double covered = poll;

		for (size_t i = 0; i < n; i++)
			covered += (double)(b[i].duration_ns < mid ? b[i].duration_ns : mid);
		if (covered / (poll + busy) >= want)
			hi = mid;
		else
			lo = mid + 1;
	}
	free(b);
	return lo;
}
