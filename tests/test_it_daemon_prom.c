// SPDX-License-Identifier: MIT
/*
 * Integration: loopscoped scraped by a real Prometheus (Debian's
 * `prometheus`, run here on its own port and data directory, never the
 * system service). Two Python apps block their loop for 150 ms every
 * second; Prometheus scrapes the agent every second; the test asks
 * Prometheus' HTTP API that each app's loop lag histogram and slow-callback
 * counter grow, and that the busy-period p99 computed by Prometheus from our
 * buckets is where the 150 ms blocks are. `promtool check metrics` must
 * accept the exposition.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "daemon.h"
#include "loopscope/ctl.h"
#include "loopscope/loopscope.h"
#include "pythons.h"
#include "spawn.h"

#define APP LS_SOURCE_DIR "/examples/python/blocking_sleep.py"
#define PYTHON "/usr/bin/python3"

static bool have(const char *path)
{
	return access(path, X_OK) == 0;
}

/* Ask Prometheus for an instant vector; each element's "pid" label and
 * value go into pids/vals (at most max). Returns how many, or -1. */
static int prom_query(int port, const char *q, int *pids, double *vals, int max)
{
	char enc[2048], path[2300], *body = NULL;
	json_object *o, *data, *res;
	int st, n = -1;

	ls_test_urlencode(q, enc, sizeof(enc));
	snprintf(path, sizeof(path), "/api/v1/query?query=%s", enc);
	st = ls_test_http_get(port, path, &body, 5000);
	if (st != 200 || !body) {
		free(body);
		return -1;
	}
	o = json_tokener_parse(body);
	free(body);
	if (o && json_object_object_get_ex(o, "data", &data) &&
	    json_object_object_get_ex(data, "result", &res)) {
		n = 0;
		for (size_t i = 0; i < json_object_array_length(res) && n < max; i++) {
			json_object *e = json_object_array_get_idx(res, i), *metric, *pid, *val;

			if (!json_object_object_get_ex(e, "metric", &metric) ||
			    !json_object_object_get_ex(e, "value", &val))
				continue;
			pids[n] = json_object_object_get_ex(metric, "pid", &pid) ?
				  atoi(json_object_get_string(pid)) : 0;
			vals[n] = atof(json_object_get_string(json_object_array_get_idx(val, 1)));
			n++;
		}
	}
	json_object_put(o);
	return n;
}

/* The value for pid in a query result, or -1. */
static double value_of(const int *pids, const double *vals, int n, int pid)
{
	for (int i = 0; i < n; i++)
		if (pids[i] == pid)
			return vals[i];
	return -1;
}

START_TEST(test_prometheus_scrapes_lag_and_slow_callbacks)
{
	struct ls_test_daemon d;
	char path[512], rule[600], listen[64], prom_listen[64], target[64], out[2][128],
	     spid[2][32], prom_err[600], *body = NULL, *cfgtext;
	pid_t apps[2] = { 0 }, prom = 0, odd = 0;
	int port, pport, st, n, pids[16];
	double v0[2][2], vals[16];
	FILE *f;

	if (!have("/usr/bin/prometheus") || !have("/usr/bin/promtool")) {
		fprintf(stderr, "it_daemon_prom: skipped: Debian's prometheus package is not installed\n");
		return;
	}
	ls_test_daemon_init(&d, "dprom");
	/* The apps carry the temp dir in their command line: the daemon's rule
	 * matches them and nothing else on the machine. */
	for (int i = 0; i < 2; i++) {
		char log[600];
		char *argv[] = { PYTHON, APP, "--log", log, "--every", "1", "--sleep", "0.15",
				 "--duration", "60", NULL };

		snprintf(log, sizeof(log), "%s/app%d.log", d.dir, i);
		apps[i] = ls_test_start_target(argv, out[i], sizeof(out[i]), spid[i], sizeof(spid[i]),
					       10000);
	}
	port = ls_test_free_port();
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(rule, sizeof(rule), "service=webapp,cmdline=*%s/app*,mode=precise", d.dir);
	{
		char *args[] = { "--rule", rule, "--listen", listen, "--socket", d.sock, NULL };

		ls_test_daemon_start(&d, args);
	}

	/* A process whose name the kernel cuts inside a character (16 bytes
	 * of "sleepy-" and three CJK characters: comm keeps 15), attached by
	 * hand with a service name that is not UTF-8: the page must stay
	 * valid UTF-8 for promtool and Prometheus. */
	{
		char link[600], sock[600], req[200];
		char *argv[] = { link, "60", NULL };
		json_object *r = NULL, *o;
		int fd;

		snprintf(link, sizeof(link), "%s/sleepy-\xe6\x97\xa5\xe6\x97\xa5\xe6\x97\xa5", d.dir);
		ck_assert_int_eq(symlink("/bin/sleep", link), 0);
		odd = ls_test_spawn(argv, NULL, NULL);
		ck_assert_int_gt(odd, 0);
		usleep(100000);
		snprintf(sock, sizeof(sock), "%s/ctl.sock", d.dir);
		snprintf(req, sizeof(req), "{\"cmd\":\"attach\",\"pid\":%d,\"service\":\"odd\"}", odd);
		o = json_tokener_parse(req);
		/* The service's bytes go raw: json-c writes what it was given. */
		json_object_object_add(o, "service", json_object_new_string("odd-\xff\xe6"));
		fd = ls_ctl_connect(sock);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ls_ctl_call(fd, o, &r, 5000), 0);
		ck_assert_msg(json_object_get_boolean(json_object_object_get(r, "ok")), "attach: %s",
			      json_object_to_json_string(r));
		json_object_put(r);
		json_object_put(o);
		/* (#12 item 5) The control socket's answers stay valid UTF-8
		 * too: the service's invalid bytes as U+FFFD. */
		o = json_tokener_parse("{\"cmd\":\"list\"}");
		ck_assert_int_eq(ls_ctl_call(fd, o, &r, 5000), 0);
		ck_assert_msg(strstr(json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN),
				     "\"service\":\"odd-\xef\xbf\xbd\xef\xbf\xbd\""),
			      "list: %s", json_object_to_json_string(r));
		json_object_put(r);
		json_object_put(o);
		close(fd);
	}
	/* promtool accepts the exposition (once both apps have a loop thread). */
	for (int tries = 0; tries < 50; tries++) {
		free(body);
		st = ls_test_http_get(port, "/metrics", &body, 5000);
		ck_assert_int_eq(st, 200);
		if (strstr(body, spid[0]) && strstr(body, spid[1]) &&
		    strstr(body, "loopscope_loop_lag_seconds_bucket"))
			break;
		usleep(100000);
	}
	{
		const char *info = strstr(body, "loopscope_target_info{");

		ck_assert_msg(strstr(body, "comm=\"sleepy-\xe6\x97\xa5\xe6\x97\xa5\""),
			      "the cut name is not cut at a character: %.600s", info ? info : "");
		ck_assert_msg(strstr(body, "service=\"odd-\xef\xbf\xbd\xef\xbf\xbd\""),
			      "invalid bytes of the service not replaced: %.600s", info ? info : "");
	}
	ck_assert_msg(strstr(body, "loopscope_loop_lag_seconds_bucket"), "no lag histogram: %s", body);
	snprintf(path, sizeof(path), "%s/metrics.txt", d.dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(body, f);
	fclose(f);
	free(body);
	body = NULL;
	{
		struct ls_test_out o = { 0 };
		char cmd[1200];
		char *argv[] = { "/bin/sh", "-c", cmd, NULL };

		snprintf(cmd, sizeof(cmd), "/usr/bin/promtool check metrics < %s", path);
		st = ls_test_run_capture(&o, argv, 30000);
		ck_assert_msg(st == 0, "promtool check metrics: exit %d: %s%s", st,
			      o.stdout_text ? o.stdout_text : "", o.stderr_text ? o.stderr_text : "");
		ls_test_out_free(&o);
	}

	/* Our own Prometheus: own port, own data dir, scraping every second. */
	pport = ls_test_free_port();
	snprintf(prom_listen, sizeof(prom_listen), "127.0.0.1:%d", pport);
	snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	snprintf(path, sizeof(path), "%s/prometheus.yml", d.dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
		   "scrape_configs:\n  - job_name: loopscope\n    static_configs:\n"
		   "      - targets: ['%s']\n", target);
	fclose(f);
	{
		char cfg_arg[600], data_arg[600], listen_arg[100];
		char *argv[] = { "/usr/bin/prometheus", cfg_arg, data_arg, listen_arg,
				 "--storage.tsdb.retention.time=1h", NULL };

		snprintf(cfg_arg, sizeof(cfg_arg), "--config.file=%s", path);
		snprintf(data_arg, sizeof(data_arg), "--storage.tsdb.path=%s/data", d.dir);
		snprintf(listen_arg, sizeof(listen_arg), "--web.listen-address=%s", prom_listen);
		snprintf(prom_err, sizeof(prom_err), "%s/prometheus.err", d.dir);
		prom = ls_test_spawn(argv, NULL, prom_err);
		ck_assert_int_gt(prom, 0);
	}
	for (st = 0, n = 0; n < 300 && st != 200; n++) {
		usleep(100000);
		st = ls_test_http_get(pport, "/-/ready", &body, 2000);
		free(body);
		body = NULL;
	}
	cfgtext = ls_test_slurp(prom_err);
	ck_assert_msg(st == 200, "prometheus not ready: %s", cfgtext ? cfgtext : "");
	free(cfgtext);

	/* First samples of both apps' series... */
	for (n = 0; n < 150; n++) {
		int nl = prom_query(pport, "sum by (pid) (loopscope_loop_lag_seconds_count{service=\"webapp\"})",
				    pids, vals, 16);
		double a = value_of(pids, vals, nl, atoi(spid[0])), b = value_of(pids, vals, nl, atoi(spid[1]));
		int ns = prom_query(pport, "sum by (pid) (loopscope_slow_callbacks_total{service=\"webapp\"})",
				    pids, vals, 16);
		double c = value_of(pids, vals, ns, atoi(spid[0])), d = value_of(pids, vals, ns, atoi(spid[1]));

		if (a >= 0 && b >= 0 && c >= 0 && d >= 0) {
			v0[0][0] = a, v0[1][0] = b, v0[0][1] = c, v0[1][1] = d;
			break;
		}
		usleep(100000);
	}
	ck_assert_msg(n < 150, "Prometheus has no loopscope series of both apps after 15 s");
	/* ...then, 4 s (4 scrapes, 4 blocks of each app) later, they grew. */
	sleep(4);
	for (int app = 0; app < 2; app++) {
		int p = atoi(spid[app]);
		double lag, slow;

		n = prom_query(pport, "sum by (pid) (loopscope_loop_lag_seconds_count{service=\"webapp\"})",
			       pids, vals, 16);
		lag = value_of(pids, vals, n, p);
		n = prom_query(pport, "sum by (pid) (loopscope_slow_callbacks_total{service=\"webapp\"})",
			       pids, vals, 16);
		slow = value_of(pids, vals, n, p);
		fprintf(stderr, "it_daemon_prom: app %d: lag count %.0f -> %.0f, slow callbacks %.0f -> %.0f\n",
			p, v0[app][0], lag, v0[app][1], slow);
		/* A 10 ms timer: ~100 lag samples a second. */
		ck_assert_msg(lag >= v0[app][0] + 100, "pid %d: lag count %.0f -> %.0f", p, v0[app][0], lag);
		/* One 150 ms block a second: at least 2 in 4 s with scrape jitter. */
		ck_assert_msg(slow >= v0[app][1] + 2, "pid %d: slow callbacks %.0f -> %.0f", p, v0[app][1],
			      slow);
		/* Busy p99 from our fixed buckets, by Prometheus: the 150 ms
		 * blocks are the top 1 %, between the 0.1 and 0.25 bounds. */
		n = prom_query(pport, "histogram_quantile(0.99, sum by (pid, le) "
				      "(increase(loopscope_busy_seconds_bucket{service=\"webapp\"}[10s])))",
			       pids, vals, 16);
		double p99 = value_of(pids, vals, n, p);

		fprintf(stderr, "it_daemon_prom: app %d: busy p99 by Prometheus %.3f s\n", p, p99);
		ck_assert_msg(p99 > 0.1 && p99 <= 0.25, "pid %d: busy p99 %.3f s", p, p99);
	}
	/* The callback histogram (precise mode) is there too. */
	n = prom_query(pport, "sum by (pid) (loopscope_callback_duration_seconds_count{service=\"webapp\"})",
		       pids, vals, 16);
	ck_assert_msg(value_of(pids, vals, n, atoi(spid[0])) > 0 && value_of(pids, vals, n, atoi(spid[1])) > 0,
		      "no callback histogram for both apps");

	ls_test_daemon_stop(&d);
	ls_test_kill(prom);
	ls_test_kill(apps[0]);
	ls_test_kill(apps[1]);
	ls_test_kill(odd);
	ls_test_daemon_done(&d);
	unlink(out[0]);
	unlink(out[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_daemon_prom");
	TCase *tc = tcase_create("prometheus");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_prometheus_scrapes_lag_and_slow_callbacks);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
