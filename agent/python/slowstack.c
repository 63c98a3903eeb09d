// SPDX-License-Identifier: MIT
/* Python stacks of slow periods: collect, merge, symbolize, render. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/abi/py_offsets.h"
#include "loopscope/loopscope.h"
#include "loopscope/slowstack.h"

#define KEEP_MAX 16384

struct py_row {
	pid_t pid;
	struct ls_py_offsets off; /* a copy: the caller's may not outlive the call */
};

/* A stack event as kept: when it arrived, the latest ev.time_ns of it and
 * of every event kept before it (nondecreasing along the ring: an off-CPU
 * episode arrives after later on-CPU samples, so time_ns itself is not),
 * and a copy of it. */
struct kept {
	uint64_t arrived_ns;
	uint64_t upto_ns;
	struct ls_stack_event ev;
};

struct ls_slowstack {
	struct kept **ev;           /* ring of cap copies, oldest at head */
	size_t head, n, cap;
	uint64_t dropped;
	struct py_row *rows;
	size_t nrows;
	struct ls_pycode_cache *code;
};

struct ls_slowstack *ls_slowstack_new(void)
{
	return ls_slowstack_new_max(KEEP_MAX, LS_PYCODE_MAX_ENTRIES, LS_PYCODE_MAX_BYTES);
}

struct ls_slowstack *ls_slowstack_new_max(size_t keep_max, size_t code_entries, size_t code_bytes)
{
	struct ls_slowstack *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->cap = keep_max ? keep_max : 1;
	s->ev = calloc(s->cap, sizeof(*s->ev));
	s->code = ls_pycode_cache_new_max(code_entries, code_bytes);
	if (!s->ev || !s->code) {
		ls_slowstack_free(s);
		return NULL;
	}
	return s;
}

void ls_slowstack_free(struct ls_slowstack *s)
{
	if (!s)
		return;
	for (size_t i = 0; s->ev && i < s->cap; i++)
		free(s->ev[i]);
	free(s->ev);
	free(s->rows);
	ls_pycode_cache_free(s->code);
	free(s);
}

static const struct ls_py_offsets *row_of(const struct ls_slowstack *s, pid_t pid)
{
	for (size_t i = 0; i < s->nrows; i++)
		if (s->rows[i].pid == pid)
			return &s->rows[i].off;
	return NULL;
}

int ls_slowstack_set_python(struct ls_slowstack *s, pid_t pid, const struct ls_py_offsets *off)
{
	struct py_row *grown;

	for (size_t i = 0; i < s->nrows; i++) {
		if (s->rows[i].pid == pid) {
			s->rows[i].off = *off;
			return 0;
		}
	}
	grown = realloc(s->rows, (s->nrows + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	s->rows = grown;
	s->rows[s->nrows].pid = pid;
	s->rows[s->nrows++].off = *off;
	return 0;
}

/* Slot i of the ring (0 = oldest). */
static struct kept **slot(struct ls_slowstack *s, size_t i)
{
	return &s->ev[(s->head + i) % s->cap];
}

/* Drop the events for which drop() is true; keep the others in order. */
static void compact(struct ls_slowstack *s, bool (*drop)(const struct kept *, const void *),
		    const void *arg)
{
	size_t w = 0;

	for (size_t r = 0; r < s->n; r++) {
		struct kept *e = *slot(s, r);

		if (drop(e, arg)) {
			free(e);
			continue;
		}
		*slot(s, w++) = e;
	}
	for (size_t i = w; i < s->n; i++)
		*slot(s, i) = NULL;
	s->n = w;
	for (size_t i = 0; i < s->n; i++) {
		struct kept *e = *slot(s, i);
		uint64_t before = i ? (*slot(s, i - 1))->upto_ns : 0;

		e->upto_ns = e->ev.time_ns > before ? e->ev.time_ns : before;
	}
}

static bool drop_pid(const struct kept *k, const void *arg)
{
	return k->ev.tgid == *(const uint32_t *)arg;
}

void ls_slowstack_forget(struct ls_slowstack *s, pid_t pid)
{
	uint32_t tgid = (uint32_t)pid;

	compact(s, drop_pid, &tgid);
	for (size_t i = 0; i < s->nrows; i++) {
		if (s->rows[i].pid == pid) {
			s->rows[i] = s->rows[--s->nrows];
			break;
		}
	}
	ls_pycode_forget_pid(s->code, pid);
}

void ls_slowstack_add(struct ls_slowstack *s, const struct ls_stack_event *e)
{
	struct kept *copy;

	if (e->nframes > LS_STACK_MAX)
		return; /* not a record bpf/loop.bpf.c makes */
	/* Only the frames it has (a copy of 64 would be 1 KiB each). */
	copy = malloc(offsetof(struct kept, ev) + LS_STACK_EVENT_HDR +
		      (size_t)e->nframes * sizeof(e->frames[0]));
	if (!copy) {
		s->dropped++;
		return;
	}
	copy->arrived_ns = ls_sys_now_ns();
	memcpy(&copy->ev, e, LS_STACK_EVENT_HDR + (size_t)e->nframes * sizeof(e->frames[0]));
	copy->upto_ns = e->time_ns;
	if (s->n && (*slot(s, s->n - 1))->upto_ns > copy->upto_ns)
		copy->upto_ns = (*slot(s, s->n - 1))->upto_ns;
	if (s->n == s->cap) {
		free(*slot(s, 0));
		*slot(s, 0) = NULL;
		s->head = (s->head + 1) % s->cap;
		s->n--;
		s->dropped++;
	}
	*slot(s, s->n++) = copy;
}

uint64_t ls_slowstack_dropped(const struct ls_slowstack *s)
{
	return s->dropped;
}

size_t ls_slowstack_kept(const struct ls_slowstack *s)
{
	return s->n;
}

static bool drop_old(const struct kept *k, const void *arg)
{
	return k->arrived_ns < *(const uint64_t *)arg;
}

void ls_slowstack_prune(struct ls_slowstack *s, uint64_t before_ns)
{
	compact(s, drop_old, &before_ns);
}

static bool same_stack(const struct ls_stack_event *a, const struct ls_stack_event *b)
{
	return a->kind == b->kind && a->nframes == b->nframes && a->error == b->error &&
	       (a->kind == LS_STACK_ON_CPU || a->syscall == b->syscall) &&
	       !memcmp(a->frames, b->frames, a->nframes * sizeof(a->frames[0]));
}

/* The byte offset into the bytecode of a frame's instruction field
 * (struct ls_stack_frame.instr), -1 when it has not started. */
static int64_t byte_offset(const struct ls_py_offsets *o, const struct ls_stack_frame *f)
{
	int lasti;

	if (o->flags & LS_PYOFF_IFRAME) /* 3.11+: a pointer into co_code_adaptive */
		return f->instr >= f->code + o->co_code_adaptive ?
			       (int64_t)(f->instr - (f->code + o->co_code_adaptive)) : -1;
	lasti = (int)(int64_t)f->instr; /* f_lasti, an int */
	if (lasti < 0)
		return -1;
	return (o->flags & LS_PYOFF_LASTI_UNITS) ? (int64_t)lasti * 2 : lasti;
}

static int cmp_weight(const void *pa, const void *pb)
{
	const struct ls_stack_agg *a = pa, *b = pb;
	uint64_t wa = a->on_cpu_ns + a->blocked_ns + a->runnable_ns;
	uint64_t wb = b->on_cpu_ns + b->blocked_ns + b->runnable_ns;

	return wa < wb ? 1 : wa > wb ? -1 : 0;
}

static bool same_frames(const struct ls_stack_agg *a, const struct ls_stack_agg *b)
{
	if (a->kind != b->kind || a->syscall != b->syscall || a->nframes != b->nframes ||
	    a->truncated != b->truncated || a->error != b->error)
		return false;
	for (uint16_t f = 0; f < a->nframes; f++)
		if (a->frames[f].line != b->frames[f].line ||
		    strcmp(a->frames[f].qualname, b->frames[f].qualname) ||
		    strcmp(a->frames[f].filename, b->frames[f].filename))
			return false;
	return true;
}

/* Stacks differ by instruction, people read lines: merge the stacks whose
 * frames have the same function, file and line. */
static void merge_by_line(struct ls_stack_summary *sum)
{
	size_t w = 0;

	for (size_t r = 0; r < sum->n; r++) {
		struct ls_stack_agg *a = &sum->stacks[r];
		size_t k;

		for (k = 0; k < w && !same_frames(&sum->stacks[k], a); k++)
			;
		if (k == w) {
			sum->stacks[w++] = *a;
			continue;
		}
		sum->stacks[k].on_cpu_ns += a->on_cpu_ns;
		sum->stacks[k].blocked_ns += a->blocked_ns;
		sum->stacks[k].runnable_ns += a->runnable_ns;
		sum->stacks[k].events += a->events;
		free(a->frames);
	}
	sum->n = w;
}

int ls_slowstack_take(struct ls_slowstack *s, uint32_t tgid, uint32_t tid, uint64_t from_ns,
		      uint64_t to_ns, struct ls_stack_summary *out)
{
	const struct ls_stack_event **firsts = NULL;
	const struct ls_py_offsets *off = row_of(s, (pid_t)tgid);
	int err = 0;

	size_t lo = 0, hi = s->n;

	memset(out, 0, sizeof(*out));
	/* Skip, by bisection on upto_ns, the events that all began before
	 * from_ns: a flood of slow periods (every callback slow) would
	 * otherwise scan the whole ring once per period. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if ((*slot(s, mid))->upto_ns < from_ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < s->n; i++) {
		const struct ls_stack_event *e = &(*slot(s, i))->ev;
		struct ls_stack_agg *a = NULL;

		if (e->tgid != tgid || e->tid != tid || e->time_ns < from_ns || e->time_ns > to_ns)
			continue;
		for (size_t k = 0; k < out->n; k++) {
			if (same_stack(firsts[k], e)) {
				a = &out->stacks[k];
				break;
			}
		}
		if (!a) {
			struct ls_stack_agg *grown = realloc(out->stacks, (out->n + 1) * sizeof(*grown));
			const struct ls_stack_event **gf;

			if (!grown) {
				err = -ENOMEM;
				break;
			}
			out->stacks = grown;
			gf = realloc(firsts, (out->n + 1) * sizeof(*gf));
			if (!gf) {
				err = -ENOMEM;
				break;
			}
			firsts = gf;
			firsts[out->n] = e;
			a = &out->stacks[out->n++];
			memset(a, 0, sizeof(*a));
			a->kind = e->kind;
			a->syscall = e->kind == LS_STACK_OFF_CPU ? e->syscall : -1;
			a->truncated = e->truncated;
			a->error = e->error;
			a->nframes = e->nframes;
		}
		a->events++;
		if (e->kind == LS_STACK_ON_CPU) {
			a->on_cpu_ns += e->weight_ns;
			out->on_cpu_ns += e->weight_ns;
		} else {
			a->blocked_ns += e->blocked_ns;
			a->runnable_ns += e->runnable_ns;
			out->off_cpu_ns += e->blocked_ns + e->runnable_ns;
		}
	}
	/* Symbolize each distinct stack once. */
	for (size_t k = 0; !err && k < out->n; k++) {
		struct ls_stack_agg *a = &out->stacks[k];

		if (!a->nframes)
			continue;
		a->frames = calloc(a->nframes, sizeof(*a->frames));
		if (!a->frames) {
			a->nframes = 0;
			err = -ENOMEM;
			break;
		}
		for (uint16_t f = 0; f < a->nframes; f++) {
			const struct ls_stack_frame *raw = &firsts[k]->frames[f];
			struct ls_pyframe *pf = &a->frames[f];

			if (!off || ls_pycode_frame(s->code, (pid_t)tgid, off, raw->code,
						    byte_offset(off, raw), pf)) {
				snprintf(pf->qualname, sizeof(pf->qualname), "?");
				pf->filename[0] = '\0';
				pf->line = -1;
			}
		}
	}
	free(firsts);
	if (err) {
		ls_slowstack_summary_free(out);
		return err;
	}
	merge_by_line(out);
	if (out->n)	/* qsort's base may not be NULL, even for 0 elements */
		qsort(out->stacks, out->n, sizeof(*out->stacks), cmp_weight);
	/* The heaviest are kept; the rest only count in the totals. */
	for (size_t k = LS_SUMMARY_STACKS_MAX; k < out->n; k++) {
		free(out->stacks[k].frames);
		out->dropped++;
	}
	if (out->n > LS_SUMMARY_STACKS_MAX)
		out->n = LS_SUMMARY_STACKS_MAX;
	return 0;
}

void ls_slowstack_summary_free(struct ls_stack_summary *sum)
{
	if (!sum)
		return;
	for (size_t i = 0; i < sum->n; i++)
		free(sum->stacks[i].frames);
	free(sum->stacks);
	memset(sum, 0, sizeof(*sum));
}

char *ls_slowstack_frame_text(const struct ls_pyframe *f, char *buf, size_t len)
{
	const char *base = strrchr(f->filename, '/');

	base = base ? base + 1 : f->filename;
	if (!f->filename[0])
		snprintf(buf, len, "%s", f->qualname[0] ? f->qualname : "?");
	else if (f->line >= 0)
		snprintf(buf, len, "%s %s:%d", f->qualname, base, f->line);
	else
		snprintf(buf, len, "%s %s", f->qualname, base);
	return buf;
}

/* Append " <- f1 <- f2 ..." of a, at most max frames. */
static size_t put_frames(const struct ls_stack_agg *a, int max, char *buf, size_t pos, size_t len)
{
	char fr[600];

	if (!a || !a->nframes) {
		if (a && a->error && pos < len)
			pos += (size_t)snprintf(buf + pos, len - pos, " (no Python stack: %s)",
						a->error == LS_STACK_NO_TSTATE ? "no thread state" :
						a->error == LS_STACK_NO_PYTHON ? "not set up" :
										 "unreadable");
		return pos < len ? pos : len;
	}
	for (int i = 0; i < a->nframes && i < max && pos < len; i++)
		pos += (size_t)snprintf(buf + pos, len - pos, " <- %s",
					ls_slowstack_frame_text(&a->frames[i], fr, sizeof(fr)));
	if ((a->nframes > max || a->truncated) && pos < len)
		pos += (size_t)snprintf(buf + pos, len - pos, " <- ...");
	return pos < len ? pos : len;
}

/* The heaviest stack of a kind (off-CPU: blocked ones only when blocked). */
static const struct ls_stack_agg *heaviest(const struct ls_stack_summary *sum, uint32_t kind,
					   bool blocked)
{
	const struct ls_stack_agg *best = NULL;
	uint64_t bw = 0;

	for (size_t i = 0; sum && i < sum->n; i++) {
		const struct ls_stack_agg *a = &sum->stacks[i];
		uint64_t w = kind == LS_STACK_ON_CPU ? a->on_cpu_ns :
			     blocked ? a->blocked_ns : a->runnable_ns;

		if (a->kind == kind && w > bw) {
			best = a;
			bw = w;
		}
	}
	return best;
}

/* A cut at a byte count may split a UTF-8 character (names are UTF-8):
 * drop an incomplete one at the end. */
static void utf8_trim(char *buf)
{
	size_t n = strlen(buf), i = n, need;

	while (i > 0 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80 && n - i < 3)
		i--;
	if (i == 0 || (unsigned char)buf[i - 1] < 0xC0)
		return; /* ends in ASCII, or no lead byte found */
	unsigned char lead = (unsigned char)buf[i - 1];

	need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
	if (n - (i - 1) < need)
		buf[i - 1] = '\0';
}

char *ls_slowstack_text(const struct ls_stack_summary *sum, const struct ls_period_times *t,
			int max_frames, char *buf, size_t len)
{
	struct {
		uint64_t ns;
		int what; /* 0 blocked, 1 on CPU, 2 runnable, 3 untraced */
	} part[4] = { { t->blocked_ns, 0 }, { t->on_cpu_ns, 1 }, { t->runnable_ns, 2 },
		      { t->untraced_ns, 3 } }, tmp;
	size_t pos = 0;
	char d[32], d2[32], sc[64];

	/* The parts, by time (a tiny sort). */
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			if (part[j].ns > part[i].ns) {
				tmp = part[i];
				part[i] = part[j];
				part[j] = tmp;
			}
	buf[0] = '\0';
	for (int i = 0; i < 4 && pos < len; i++) {
		const struct ls_stack_agg *a = NULL;

		/* On CPU is said even when 0 if nothing else is. */
		if (!part[i].ns && !(part[i].what == 1 && !t->blocked_ns && !t->runnable_ns &&
				     !t->untraced_ns))
			continue;
		if (pos)
			pos += (size_t)snprintf(buf + pos, len - pos, "; ");
		if (pos >= len)
			break;
		ls_duration_format(part[i].ns, d, sizeof(d));
		switch (part[i].what) {
		case 0:
			ls_sys_syscall_name(t->top_syscall, sc, sizeof(sc));
			if (t->top_block_ns >= t->blocked_ns)
				pos += (size_t)snprintf(buf + pos, len - pos, "%s blocked in %s", d, sc);
			else
				pos += (size_t)snprintf(buf + pos, len - pos, "%s blocked (longest %s in %s)",
							d, ls_duration_format(t->top_block_ns, d2, sizeof(d2)),
							sc);
			a = heaviest(sum, LS_STACK_OFF_CPU, true);
			break;
		case 1:
			pos += (size_t)snprintf(buf + pos, len - pos, "%s on CPU", d);
			a = heaviest(sum, LS_STACK_ON_CPU, false);
			break;
		case 2:
			pos += (size_t)snprintf(buf + pos, len - pos, "%s waiting for a CPU", d);
			break;
		default: /* no stack: the episode was not seen */
			pos += (size_t)snprintf(buf + pos, len - pos,
						"%s off CPU untraced (blocked or waiting)", d);
		}
		if (pos < len && a)
			pos = put_frames(a, max_frames, buf, pos, len);
	}
	utf8_trim(buf);
	return buf;
}

void ls_slowstack_busy_times(const struct ls_slow_busy_event *e, struct ls_period_times *t)
{
	uint64_t untraced = (uint64_t)e->untraced_us * 1000;
	uint64_t off = e->blocked_ns + e->runnable_ns + untraced;

	t->on_cpu_ns = e->duration_ns > off ? e->duration_ns - off : 0;
	t->untraced_ns = untraced;
	t->blocked_ns = e->blocked_ns;
	t->top_block_ns = e->top_block_ns;
	t->top_syscall = e->top_syscall;
	t->runnable_ns = e->runnable_ns;
}

void ls_slowstack_times(const struct ls_stack_summary *sum, struct ls_period_times *t)
{
	const struct ls_stack_agg *top = heaviest(sum, LS_STACK_OFF_CPU, true);

	memset(t, 0, sizeof(*t));
	/* Stacks do not tell single blocks apart: the heaviest blocked
	 * stack's syscall names all the blocked time. */
	t->top_syscall = top ? top->syscall : -1;
	for (size_t i = 0; sum && i < sum->n; i++) {
		t->on_cpu_ns += sum->stacks[i].on_cpu_ns;
		t->blocked_ns += sum->stacks[i].blocked_ns;
		t->runnable_ns += sum->stacks[i].runnable_ns;
	}
	t->top_block_ns = t->blocked_ns;
}

json_object *ls_slowstack_json(const struct ls_stack_summary *sum)
{
	json_object *arr = json_object_new_array();
	char sc[64];

	for (size_t i = 0; sum && i < sum->n; i++) {
		const struct ls_stack_agg *a = &sum->stacks[i];
		json_object *o = json_object_new_object(), *frames = json_object_new_array();

		json_object_object_add(o, "kind", json_object_new_string(
				a->kind == LS_STACK_ON_CPU ? "on_cpu" : "off_cpu"));
		if (a->kind == LS_STACK_OFF_CPU && a->syscall >= 0) {
			ls_sys_syscall_name(a->syscall, sc, sizeof(sc));
			json_object_object_add(o, "syscall", json_object_new_string(sc));
		} else {
			json_object_object_add(o, "syscall", NULL);
		}
		json_object_object_add(o, "on_cpu_ns", json_object_new_uint64(a->on_cpu_ns));
		json_object_object_add(o, "blocked_ns", json_object_new_uint64(a->blocked_ns));
		json_object_object_add(o, "runnable_ns", json_object_new_uint64(a->runnable_ns));
		json_object_object_add(o, "events", json_object_new_int((int)a->events));
		json_object_object_add(o, "truncated", json_object_new_boolean(a->truncated));
		json_object_object_add(o, "error", a->error == LS_STACK_OK ? NULL :
				json_object_new_string(a->error == LS_STACK_NO_TSTATE ? "no_thread_state" :
						       a->error == LS_STACK_NO_PYTHON ? "not_set_up" :
											"unreadable"));
		for (uint16_t f = 0; f < a->nframes; f++) {
			json_object *jf = json_object_new_object();

			json_object_object_add(jf, "function", json_object_new_string(a->frames[f].qualname));
			json_object_object_add(jf, "file", json_object_new_string(a->frames[f].filename));
			json_object_object_add(jf, "line", json_object_new_int(a->frames[f].line));
			json_object_object_add(jf, "first_line", json_object_new_int(a->frames[f].firstlineno));
			json_object_array_add(frames, jf);
		}
		json_object_object_add(o, "frames", frames);
		json_object_array_add(arr, o);
	}
	return arr;
}

struct folded_line {
	char *text;
	uint64_t weight_us;
};

struct ls_folded {
	struct folded_line *lines;
	size_t n;
};

struct ls_folded *ls_folded_new(void)
{
	return calloc(1, sizeof(struct ls_folded));
}

void ls_folded_free(struct ls_folded *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->lines[i].text);
	free(f->lines);
	free(f);
}

/* Folded-format frame text: ';' separates frames, and a space ends the
 * stack, so neither may appear inside a frame. */
static size_t put_folded(char *buf, size_t pos, size_t len, const char *s)
{
	for (; *s && pos + 1 < len; s++)
		buf[pos++] = *s == ';' ? ':' : *s == ' ' ? '_' : *s;
	buf[pos] = '\0';
	return pos;
}

static int folded_put(struct ls_folded *f, const char *text, uint64_t us)
{
	struct folded_line *grown;

	if (!us)
		return 0;
	for (size_t i = 0; i < f->n; i++) {
		if (!strcmp(f->lines[i].text, text)) {
			f->lines[i].weight_us += us;
			return 0;
		}
	}
	grown = realloc(f->lines, (f->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	f->lines = grown;
	f->lines[f->n].text = strdup(text);
	if (!f->lines[f->n].text)
		return -ENOMEM;
	f->lines[f->n++].weight_us = us;
	return 0;
}

int ls_folded_add(struct ls_folded *f, const char *comm, const struct ls_stack_summary *sum)
{
	static char line[16384];
	char fr[600], sc[64];

	for (size_t i = 0; i < sum->n; i++) {
		const struct ls_stack_agg *a = &sum->stacks[i];
		size_t pos = put_folded(line, 0, sizeof(line), comm);

		for (int k = (int)a->nframes - 1; k >= 0; k--) {
			const struct ls_pyframe *pf = &a->frames[k];
			const char *base = strrchr(pf->filename, '/');

			base = base ? base + 1 : pf->filename;
			snprintf(fr, sizeof(fr), "%s (%s:%d)", pf->qualname, base, pf->line);
			if (pos + 1 < sizeof(line)) {
				line[pos++] = ';';
				line[pos] = '\0';
			}
			pos = put_folded(line, pos, sizeof(line), fr);
		}
		if (a->kind == LS_STACK_ON_CPU) {
			if (folded_put(f, strncat(line, ";[on-CPU]", sizeof(line) - pos - 1),
				       a->on_cpu_ns / 1000))
				return -ENOMEM;
			continue;
		}
		ls_sys_syscall_name(a->syscall, sc, sizeof(sc));
		snprintf(fr, sizeof(fr), ";[blocked:_%s]", sc);
		line[pos] = '\0';
		if (folded_put(f, strncat(line, fr, sizeof(line) - pos - 1), a->blocked_ns / 1000))
			return -ENOMEM;
		line[pos] = '\0';
		if (folded_put(f, strncat(line, ";[runnable]", sizeof(line) - pos - 1),
			       a->runnable_ns / 1000))
			return -ENOMEM;
	}
	return 0;
}

static int cmp_line(const void *pa, const void *pb)
{
	const struct folded_line *a = pa, *b = pb;

	return a->weight_us < b->weight_us ? 1 : a->weight_us > b->weight_us ? -1 : 0;
}

int ls_folded_write(const struct ls_folded *f, FILE *out)
{
	if (f->n)
		qsort(f->lines, f->n, sizeof(*f->lines), cmp_line);
	for (size_t i = 0; i < f->n; i++)
		if (fprintf(out, "%s %llu\n", f->lines[i].text,
			    (unsigned long long)f->lines[i].weight_us) < 0)
			return -errno;
	return fflush(out) ? -errno : 0;
}
