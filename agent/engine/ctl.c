// SPDX-License-Identifier: MIT
/* The control socket's commands: one JSON request, one JSON answer
 * (loopscope/ctl.h); the socket server is in ctl_server.c. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/ctl.h"
#include "loopscope/json.h"
#include "loopscope/loopscope.h"
#include "loopscope/names.h"

json_object *ls_ctl_error(const char *msg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(msg));
	return o;
}

/* A name for JSON (#12 item 5): names read from targets are clean
 * already; service names (the config, the control socket) and exe paths
 * are not, and JSON must stay valid UTF-8. */
static json_object *name_string(const char *v)
{
	size_t n = strlen(v), cap = 3 * n + 1;
	char stack[512], *buf = cap <= sizeof(stack) ? stack : malloc(cap);
	json_object *o;

	if (!buf)
		return json_object_new_string("?");
	ls_name_clean(buf, cap, v, n);
	o = json_object_new_string(buf);
	if (buf != stack)
		free(buf);
	return o;
}

static json_object *ok_reply(void)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static json_object *target_json(const struct ls_mon_target *t)
{
	json_object *o = json_object_new_object();
	char ver[16] = "";

	json_object_object_add(o, "pid", json_object_new_int(t->pid));
	json_object_object_add(o, "ns_pid", json_object_new_int(t->ns_pid));
	json_object_object_add(o, "comm", name_string(t->comm));
	json_object_object_add(o, "service", name_string(t->service));
	json_object_object_add(o, "exe", name_string(t->exe));
	json_object_object_add(o, "mode", json_object_new_string(ls_config_mode_name(t->mode)));
	json_object_object_add(o, "precise", json_object_new_boolean(t->precise));
	if (t->py_major)
		snprintf(ver, sizeof(ver), "%d.%d", t->py_major, t->py_minor);
	json_object_object_add(o, "python", json_object_new_string(ver));
	json_object_object_add(o, "note", json_object_new_string(t->note));
	json_object_object_add(o, "manual", json_object_new_boolean(t->manual));
	ls_json_add_u64(o, "attached_ns", t->attached_ns);
	ls_json_add_u64(o, "exec_ns", t->seen_ns);
	ls_json_add_u64(o, "exited_ns", t->exited_ns);
	json_object_object_add(o, "threads", json_object_new_int((int)t->nthreads));
	ls_json_add_u64(o, "threads_untracked", t->threads_untracked);
	ls_json_add_u64(o, "threads_pruned", t->threads_pruned);
	return o;
}

static json_object *cmd_list(struct ls_mon *m)
{
	json_object *r = ok_reply(), *a = json_object_new_array();

	ls_mon_lock(m);
	for (size_t i = 0; i < ls_mon_ntargets(m); i++)
		json_object_array_add(a, target_json(ls_mon_target_at(m, i)));
	ls_mon_unlock(m);
	json_object_object_add(r, "targets", a);
	return r;
}

static json_object *cmd_stats(struct ls_mon *m)
{
	json_object *r = ok_reply(), *a = json_object_new_array();

	ls_mon_lock(m);
	ls_json_add_u64(r, "time_ns", ls_mon_window_end_ns(m));
	ls_json_add_u64(r, "interval_ns", ls_mon_config(m)->interval_ns);
	ls_json_add_u64(r, "threshold_ns", ls_mon_config(m)->threshold_ns);
	ls_json_add_u64(r, "lost_events", ls_mon_lost_events(m));
	ls_json_add_u64(r, "offcpu_unseen", ls_mon_offcpu_unseen(m));
	ls_json_add_u64(r, "names_cached", ls_mon_names_cached(m));
	ls_json_add_u64(r, "names_evicted", ls_mon_name_evictions(m));
	{
		struct ls_loop_table_counts tc;

		ls_mon_thread_table(m, &tc);
		ls_json_add_u64(r, "thread_quota", tc.quota);
		ls_json_add_u64(r, "threads_untracked", tc.untracked);
		ls_json_add_u64(r, "threads_pruned", tc.pruned);
		ls_json_add_u64(r, "thread_table_full", tc.table_full);
	}
	{
		struct ls_mon_flight_stats fs;
		json_object *f = json_object_new_object();

		ls_mon_flight_stats(m, &fs);
		json_object_object_add(f, "on", json_object_new_boolean(fs.on));
		ls_json_add_u64(f, "bytes", fs.bytes);
		ls_json_add_u64(f, "bytes_max_target", fs.bytes_max_target);
		ls_json_add_u64(f, "bytes_peak_target", fs.bytes_peak_target);
		ls_json_add_u64(f, "cap_bytes", fs.cap_bytes);
		ls_json_add_u64(f, "dumps_written", fs.dumps_written);
		ls_json_add_u64(f, "dumps_dropped", fs.dumps_dropped);
		ls_json_add_u64(f, "blocks_dropped", fs.blocks_dropped);
		ls_json_add_u64(f, "files_rotated", fs.files_rotated);
		ls_json_add_u64(f, "put_errors", fs.put_errors);
		json_object_object_add(r, "flight", f);
	}
	for (size_t i = 0; i < ls_mon_ntargets(m); i++) {
		const struct ls_mon_target *t = ls_mon_target_at(m, i);

		for (size_t j = 0; j < t->nthreads; j++) {
			const struct ls_mon_thread *th = &t->threads[j];
			const struct ls_mon_window *w = &th->win;
			json_object *o = json_object_new_object();

			if (!th->has_stats)
				continue;
			json_object_object_add(o, "pid", json_object_new_int(t->pid));
			json_object_object_add(o, "ns_pid", json_object_new_int(t->ns_pid));
			json_object_object_add(o, "tid", json_object_new_int((int)th->tid));
			json_object_object_add(o, "thread", name_string(th->name));
			json_object_object_add(o, "comm", name_string(t->comm));
			json_object_object_add(o, "service", name_string(t->service));
			json_object_object_add(o, "mode", json_object_new_string(
				t->precise ? "precise" : "light"));
			json_object_object_add(o, "exited", json_object_new_boolean(t->exited_ns != 0));
			ls_json_add_u64(o, "window_ns", w->window_ns);
			json_object_object_add(o, "iterations_per_s", json_object_new_double(w->iterations_per_s));
			json_object_object_add(o, "utilization", json_object_new_double(w->utilization));
			ls_json_add_u64(o, "busy_p99_ns", w->busy_p99_ns);
			ls_json_add_u64(o, "busy_max_ns", w->busy_max_ns);
			ls_json_add_u64(o, "lag_p99_ns", w->lag_p99_ns);
			ls_json_add_u64(o, "lag_max_ns", w->lag_max_ns);
			ls_json_add_u64(o, "lag_count", w->lag_count);
			ls_json_add_u64(o, "delay_p99_ns", w->delay_p99_ns);
			ls_json_add_u64(o, "busy_now_ns", w->busy_now_ns);
			ls_json_add_u64(o, "slow_in_window", w->slow);
			ls_json_add_u64(o, "iterations_total", th->stats.iterations);
			ls_json_add_u64(o, "slow_busy_total", th->stats.slow_busy);
			ls_json_add_u64(o, "slow_callbacks_total", th->slow_callbacks);
			ls_json_add_u64(o, "lag_p99_total_ns", ls_hist_percentile(&th->stats.lag, 99));
			json_object_array_add(a, o);
		}
	}
	ls_mon_unlock(m);
	json_object_object_add(r, "threads", a);
	return r;
}

/* {"function", "file", "line"}, or null when the event has no such frame. */
static json_object *frame_json(const struct ls_mon_frame *f)
{
	json_object *o;

	if (!f->function[0])
		return NULL;
	o = json_object_new_object();
	json_object_object_add(o, "function", name_string(f->function));
	json_object_object_add(o, "file", name_string(f->file));
	json_object_object_add(o, "line", json_object_new_int(f->line));
	return o;
}

static json_object *cmd_slow(struct ls_mon *m, json_object *req)
{
	json_object *r = ok_reply(), *a = json_object_new_array(), *v;
	uint64_t after = 0, last = 0;
	const struct ls_mon_slow *s;
	size_t n;

	if (json_object_object_get_ex(req, "after", &v))
		after = json_object_get_uint64(v);
	ls_mon_lock(m);
	s = ls_mon_slow_events(m, &n);
	for (size_t i = 0; i < n; i++) {
		json_object *o;

		last = s[i].seq;
		if (s[i].seq <= after)
			continue;
		o = json_object_new_object();
		ls_json_add_u64(o, "seq", s[i].seq);
		json_object_object_add(o, "kind", json_object_new_string(
			s[i].kind == LS_MON_SLOW_CALLBACK ? "callback" : "busy"));
		json_object_object_add(o, "pid", json_object_new_int((int)s[i].pid));
		json_object_object_add(o, "tid", json_object_new_int((int)s[i].tid));
		json_object_object_add(o, "service", name_string(s[i].service));
		json_object_object_add(o, "comm", name_string(s[i].comm));
		ls_json_add_u64(o, "start_ns", s[i].start_ns);
		ls_json_add_u64(o, "duration_ns", s[i].duration_ns);
		json_object_object_add(o, "what", name_string(s[i].what));
		json_object_object_add(o, "app_frame", frame_json(&s[i].app));
		json_object_object_add(o, "culprit_frame", frame_json(&s[i].culprit));
		json_object_array_add(a, o);
	}
	ls_mon_unlock(m);
	ls_json_add_u64(r, "last", last > after ? last : after);
	json_object_object_add(r, "events", a);
	return r;
}

static int req_pid(json_object *req, pid_t *pid)
{
	json_object *v;

	if (!json_object_object_get_ex(req, "pid", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) <= 0 || json_object_get_int64(v) > 0x3fffffff)
		return -EINVAL;
	*pid = (pid_t)json_object_get_int64(v);
	return 0;
}

json_object *ls_ctl_handle(struct ls_mon *m, json_object *req)
{
	json_object *v;
	const char *cmd;
	char err[256];
	pid_t pid;

	if (!m)
		return ls_ctl_error("loopscoped is starting; try again");
	if (!req || !json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &v) || !json_object_is_type(v, json_type_string))
		return ls_ctl_error("expected a JSON object with a \"cmd\" string");
	cmd = json_object_get_string(v);
	if (!strcmp(cmd, "list"))
		return cmd_list(m);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(m);
	if (!strcmp(cmd, "slow"))
		return cmd_slow(m, req);
	if (!strcmp(cmd, "dump")) {
		char msg[PATH_MAX + 128];
		json_object *r;

		if (req_pid(req, &pid))
			return ls_ctl_error("\"pid\" must be a positive integer");
		if (ls_mon_flight_dump(m, pid, msg, sizeof(msg)))
			return ls_ctl_error(msg);
		r = ok_reply();
		json_object_object_add(r, "file", json_object_new_string(msg));
		return r;
	}
	if (!strcmp(cmd, "attach") || !strcmp(cmd, "detach")) {
		if (req_pid(req, &pid))
			return ls_ctl_error("\"pid\" must be a positive integer");
		if (!strcmp(cmd, "detach")) {
			if (ls_mon_detach(m, pid)) {
				snprintf(err, sizeof(err), "pid %d is not monitored", (int)pid);
				return ls_ctl_error(err);
			}
			return ok_reply();
		}
		enum ls_mode mode = LS_MODE_LIGHT;
		const char *service = NULL;

		if (json_object_object_get_ex(req, "mode", &v) &&
		    (!json_object_is_type(v, json_type_string) ||
		     ls_config_parse_mode(json_object_get_string(v), &mode)))
			return ls_ctl_error("\"mode\" must be \"light\" or \"precise\"");
		if (json_object_object_get_ex(req, "service", &v)) {
			if (!json_object_is_type(v, json_type_string) ||
			    strlen(json_object_get_string(v)) >= 64)
				return ls_ctl_error("\"service\" must be a string of at most 63 characters");
			service = json_object_get_string(v);
		}
		if (ls_mon_attach(m, pid, service, mode, err, sizeof(err)))
			return ls_ctl_error(err);
		return ok_reply();
	}
	/* Echoed in an error, which is one line (a client prints it): control
	 * bytes of the client's string ("\n" in JSON) as '?' (#12, fuzz_ctl). */
	char shown[65];
	size_t i;

	for (i = 0; cmd[i] && i < sizeof(shown) - 1; i++)
		shown[i] = (unsigned char)cmd[i] < 0x20 || cmd[i] == 0x7f ? '?' : cmd[i];
	shown[i] = '\0';
	snprintf(err, sizeof(err), "unknown cmd '%s' (list, stats, slow, attach, detach, dump)", shown);
	return ls_ctl_error(err);
}
