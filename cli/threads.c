// SPDX-License-Identifier: MIT
/* `loopscope attach`'s side of the thread table's bounds (issue #12 item
 * 2): exited threads are pruned from the kernel's table every interval so
 * a target that churns threads does not hold it; the last figures of the
 * first CLI_GONE_KEPT exited loop threads stay for the report; each
 * target's untracked (over its quota) and pruned threads are reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "loopscope/abi/loop_events.h"
#include "loopscope/json.h"
#include "loopscope/loopscope.h"

void cli_gone_keep(const struct ls_thread_view *v, void *ctx)
{
	struct cli_gone *g = ctx;

	if (v->polls < 2) {
		g->idle++; /* never completed an iteration: nothing to report */
		return;
	}
	if (g->n == CLI_GONE_KEPT || (!g->v && !(g->v = malloc(CLI_GONE_KEPT * sizeof(*g->v))))) {
		g->more++;
		return;
	}
	g->v[g->n++] = *v;
}

int cli_gone_append(const struct cli_gone *g, struct ls_thread_view **cur, size_t *ncur)
{
	struct ls_thread_view *v;

	if (!g->n)
		return 0;
	v = realloc(*cur, (*ncur + g->n) * sizeof(*v));
	if (!v)
		return -1;
	memcpy(v + *ncur, g->v, g->n * sizeof(*v));
	*cur = v;
	*ncur += g->n;
	return 0;
}

void cli_gone_free(struct cli_gone *g)
{
	free(g->v);
	memset(g, 0, sizeof(*g));
}

void cli_threads_report(struct ls_loop *l, const pid_t *pids, int npids, const struct cli_gone *g,
			json_object *jr)
{
	struct ls_loop_table_counts tc;
	json_object *a = NULL;

	ls_loop_table_counts(l, &tc);
	/* JSON: the fields only when the table dropped or pruned something,
	 * so that a quiet run's report is the one `report FILE` replays (a
	 * recording does not carry these counts). */
	if (jr && (tc.untracked || tc.pruned || tc.table_full || g->more))
		a = json_object_new_array();
	else if (jr)
		return;
	for (int i = 0; i < npids; i++) {
		struct ls_loop_thread_counts c;

		if (ls_loop_thread_counts(l, pids[i], &c))
			continue;
		if (a) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "pid", json_object_new_int(pids[i]));
			ls_json_add_u64(o, "tracked", c.tracked);
			ls_json_add_u64(o, "untracked", c.untracked);
			ls_json_add_u64(o, "pruned", c.pruned);
			json_object_array_add(a, o);
		} else if (c.untracked) {
			printf("  pid %d: %llu threads not tracked (over its quota of %u threads at "
			       "once); %llu exited ones pruned\n", pids[i],
			       (unsigned long long)c.untracked, tc.quota, (unsigned long long)c.pruned);
		}
	}
	if (a) {
		json_object_object_add(jr, "thread_table", a);
		ls_json_add_u64(jr, "thread_quota", tc.quota);
		ls_json_add_u64(jr, "threads_table_full", tc.table_full);
		ls_json_add_u64(jr, "exited_threads_not_listed", g->more);
		return;
	}
	if (g->more)
		printf("  %llu more loop threads exited during the run (not listed)\n",
		       (unsigned long long)g->more);
	if (tc.table_full)
		printf("  thread table full (%u threads): %llu polls of new threads not tracked\n",
		       LS_MAX_THREADS, (unsigned long long)tc.table_full);
}
