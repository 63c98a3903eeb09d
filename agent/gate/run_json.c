// SPDX-License-Identifier: MIT
/* The JSON report of `loopscope run` (json-c; docs/run-report.schema.json). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "loopscope/gate.h"
#include "loopscope/json.h"
#include "loopscope/run.h"
#include "report.h"

#ifndef LS_VERSION
#define LS_VERSION "unknown"
#endif

/* ---- JSON -------------------------------------------------------------- */

static int jadd_str(json_object *o, const char *k, const char *v, bool null_if_empty)
{
	char *c;

	if (null_if_empty && (!v || !*v)) {
		json_object_object_add(o, k, NULL);
		return 0;
	}
	c = ls_report_clean(v ? v : "");
	if (!c)
		return -ENOMEM;
	json_object_object_add(o, k, json_object_new_string(c));
	free(c);
	return 0;
}

static json_object *json_report(const struct ls_run_result *r)
{
	json_object *o = json_object_new_object(), *g, *allow, *procs, *slow, *v;
	int rc = 0;

	if (!o)
		return NULL;
	rc |= jadd_str(o, "loopscope_version", LS_VERSION, false);
	rc |= jadd_str(o, "cmd", FIELD(r->cmd), false);
	ls_json_add_i64(o, "cmd_exit", r->cmd_exit);
	ls_json_add_i64(o, "cmd_signal", r->cmd_signal);
	ls_json_add_u64(o, "duration_ns", ls_report_duration_ns(r));

	g = json_object_new_object();
	json_object_object_add(o, "gates", g);
	if (r->fail_on_slow_ns > 0)
		ls_json_add_u64(g, "fail_on_slow_ns", r->fail_on_slow_ns);
	else
		json_object_object_add(g, "fail_on_slow_ns", NULL);
	if (r->fail_on_lag_p99_ns > 0)
		ls_json_add_u64(g, "fail_on_lag_p99_ns", r->fail_on_lag_p99_ns);
	else
		json_object_object_add(g, "fail_on_lag_p99_ns", NULL);
	if (r->max_slow >= 0)
		ls_json_add_i64(g, "max_slow", r->max_slow);
	else
		json_object_object_add(g, "max_slow", NULL);
	allow = json_object_new_array();
	json_object_object_add(g, "allow", allow);
	for (int i = 0; i < r->nallow && i < LS_RUN_MAX_ALLOW; i++) {
		char *c = r->allow[i] ? ls_report_clean(r->allow[i]) : NULL;
		if (!r->allow[i])
			continue;
		if (!c) {
			rc = -ENOMEM;
			break;
		}
		json_object_array_add(allow, json_object_new_string(c));
		free(c);
	}

	procs = json_object_new_array();
	json_object_object_add(o, "processes", procs);
	for (int i = 0; i < ls_report_nprocs(r); i++) {
		const struct ls_run_process *p = &r->procs[i];
		json_object *jp = json_object_new_object();

		json_object_array_add(procs, jp);
		ls_json_add_i64(jp, "pid", p->pid);
		ls_json_add_i64(jp, "ppid", p->ppid);
		rc |= jadd_str(jp, "cmdline", FIELD(p->cmdline), false);
		rc |= jadd_str(jp, "python", FIELD(p->python), true);
		json_object_object_add(jp, "mode",
				       json_object_new_string(p->precise ? "precise" : "epoll"));
		ls_json_add_i64(jp, "loop_threads", p->loop_threads);
		ls_json_add_u64(jp, "lag_p99_ns", p->lag_p99_ns);
		ls_json_add_u64(jp, "lag_p99_tid", p->lag_p99_tid);
	}

	slow = json_object_new_array();
	json_object_object_add(o, "slow", slow);
	for (int i = 0; i < ls_report_nslow(r); i++) {
		const struct ls_run_slow *s = &r->slow[i];
		json_object *js = json_object_new_object();

		json_object_array_add(slow, js);
		json_object_object_add(js, "kind", json_object_new_string(
			s->kind == LS_RUN_SLOW_BUSY ? "busy" : "callback"));
		rc |= jadd_str(js, "name", FIELD(s->name), false);
		rc |= jadd_str(js, "file", FIELD(s->file), true);
		if (s->line > 0)
			ls_json_add_i64(js, "line", s->line);
		else
			json_object_object_add(js, "line", NULL);
		rc |= jadd_str(js, "test", FIELD(s->test), true);
		if (s->app_file[0]) {
			json_object *ja = json_object_new_object();

			rc |= jadd_str(ja, "function", FIELD(s->app_function), false);
			rc |= jadd_str(ja, "file", FIELD(s->app_file), false);
			ls_json_add_i64(ja, "line", s->app_line);
			json_object_object_add(js, "app_frame", ja);
		} else {
			json_object_object_add(js, "app_frame", NULL);
		}
		rc |= jadd_str(js, "why", FIELD(s->why), true);
		ls_json_add_i64(js, "pid", s->pid);
		ls_json_add_i64(js, "tid", s->tid);
		ls_json_add_u64(js, "start_ns", s->start_ns);
		ls_json_add_u64(js, "duration_ns", s->duration_ns);
		if (s->times_known) {
			ls_json_add_u64(js, "on_cpu_ns", s->on_cpu_ns);
			ls_json_add_u64(js, "blocked_ns", s->blocked_ns);
			ls_json_add_u64(js, "runnable_ns", s->runnable_ns);
		} else {
			json_object_object_add(js, "on_cpu_ns", NULL);
			json_object_object_add(js, "blocked_ns", NULL);
			json_object_object_add(js, "runnable_ns", NULL);
		}
		json_object_object_add(js, "allowed", json_object_new_boolean(s->allowed));
	}
	ls_json_add_i64(o, "slow_not_kept", r->slow_not_kept < 0 ? 0 : r->slow_not_kept);
	ls_json_add_u64(o, "lost_events", r->lost_events);

	v = json_object_new_object();
	json_object_object_add(o, "verdict", v);
	ls_json_add_i64(v, "slow_counted", r->slow_counted);
	json_object_object_add(v, "slow_gate_failed", json_object_new_boolean(r->slow_gate_failed));
	json_object_object_add(v, "lag_gate_failed", json_object_new_boolean(r->lag_gate_failed));
	ls_json_add_i64(v, "exit_code", r->exit_code);

	if (rc) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int ls_run_write_json(const struct ls_run_result *r, const char *path)
{
	json_object *o = json_report(r);
	const char *s;
	char *doc;
	size_t n;
	int rc;

	if (!o)
		return -ENOMEM;
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_SPACED |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s) {
		json_object_put(o);
		return -ENOMEM;
	}
	n = strlen(s);
	doc = malloc(n + 2);
	if (!doc) {
		json_object_put(o);
		return -ENOMEM;
	}
	memcpy(doc, s, n);
	doc[n++] = '\n';
	doc[n] = '\0';
	json_object_put(o);
	rc = ls_report_write_file(path, doc, n);
	free(doc);
	return rc;
}
