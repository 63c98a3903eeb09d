// SPDX-License-Identifier: MIT
/*
 * Integration: loopscoped's flight recorder (#13 item 5; docs/DAEMON.md,
 * "Flight recorder"). A scripted slow event (tests/flight_app.py blocks
 * 300 ms once, logged with its own CLOCK_MONOTONIC) makes the daemon write
 * a dump that `loopscope report --json` reads back with that period and
 * its stack; `loopscope dump PID` writes a file; rotation keeps at most
 * flight_max_files; a ring stays within flight_bytes (the engine's
 * counters, through the control socket's stats).
 * Every test starts its own daemon on its own socket, in its own temp dir.
 */
#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "daemon.h"
#include "loopscope/ctl.h"
#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define APP LS_SOURCE_DIR "/tests/flight_app.py"
#define BLOCK_NS 300000000ULL

struct fx {
	struct ls_test_daemon d;
	char dumps[100];
	pid_t apps[LS_TEST_MAX_PYTHONS + 1];
	char spid[LS_TEST_MAX_PYTHONS + 1][32];
	char out[LS_TEST_MAX_PYTHONS + 1][128];
	char log[LS_TEST_MAX_PYTHONS + 1][128];
	int napps;
};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	ls_test_daemon_init(&f->d, "flight");
	snprintf(f->dumps, sizeof(f->dumps), "%s/dumps", f->d.dir);
}

/* The daemon with the flight recorder in f->dumps and the extra settings
 * (libconfig lines); its rule matches the apps of f's dir. */
static void fx_daemon_mode(struct fx *f, const char *extra, const char *mode)
{
	ls_test_daemon_start_conf(&f->d, "socket = \"%s\";\nlisten = \"\";\nthreshold = \"50ms\";\n"
				  "flight_dir = \"%s\";\n%s\n"
				  "rules = ( { service = \"flight\"; cmdline = \"*flight_app.py*%s/*\"; "
				  "mode = \"%s\"; } );\n",
				  f->d.sock, f->dumps, extra, f->d.dir, mode);
}

static void fx_daemon(struct fx *f, const char *extra)
{
	fx_daemon_mode(f, extra, "light");
}

/* An app under python, blocking after `before` s; its index. */
static int fx_app(struct fx *f, const char *python, double before)
{
	int i = f->napps++;
	char sb[32];
	char *argv[] = { (char *)python, APP, "--log", f->log[i], "--before", sb, "--after", "40", NULL };

	char dir[64];

	memcpy(dir, f->d.dir, sizeof(dir));
	snprintf(f->log[i], sizeof(f->log[i]), "%s/app%d.log", dir, i);
	snprintf(sb, sizeof(sb), "%.1f", before);
	f->apps[i] = ls_test_start_target(argv, f->out[i], sizeof(f->out[i]), f->spid[i],
					  sizeof(f->spid[i]), 20000);
	return i;
}

static void fx_done(struct fx *f)
{
	for (int i = 0; i < f->napps; i++) {
		ls_test_kill(f->apps[i]);
		unlink(f->out[i]);
	}
	ls_test_daemon_done(&f->d);
}

/* Files of f->dumps named flight-*.lsrec (no .tmp). */
static int count_dumps(struct fx *f)
{
	DIR *d = opendir(f->dumps);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		n += !strncmp(de->d_name, "flight-", 7) && l > 6 && !strcmp(de->d_name + l - 6, ".lsrec");
	}
	closedir(d);
	return n;
}

/* `loopscope report FILE --json`: the parsed report (put it). */
static json_object *report(const char *file)
{
	struct ls_test_out o;
	char *argv[] = { LOOPSCOPE, "report", (char *)file, "--json", NULL };
	json_object *r;
	int rc = ls_test_run_capture(&o, argv, 30000);

	ck_assert_msg(rc == 0, "report %s: exit %d: %s", file, rc, o.stderr_text);
	r = json_tokener_parse(o.stdout_text);
	ck_assert_msg(r != NULL, "report %s: not JSON: %.300s", file, o.stdout_text);
	ls_test_out_free(&o);
	return r;
}

/* `loopscope dump PID --socket S`: its exit code, the path it printed in
 * path. */
static int dump(struct fx *f, const char *pid, char *path, size_t len)
{
	struct ls_test_out o;
	char *argv[] = { LOOPSCOPE, "dump", (char *)pid, "--socket", f->d.sock, NULL };
	int rc = ls_test_run_capture(&o, argv, 30000);
	char *nl;

	snprintf(path, len, "%s", o.stdout_text ? o.stdout_text : "");
	if ((nl = strchr(path, '\n')))
		*nl = '\0';
	if (rc)
		fprintf(stderr, "it_flight: dump %s: exit %d: %s", pid, rc, o.stderr_text);
	ls_test_out_free(&o);
	return rc;
}

static json_object *stats(struct fx *f)
{
	json_object *req = json_tokener_parse("{\"cmd\":\"stats\"}"), *resp = NULL;
	int fd = ls_ctl_connect(f->d.sock);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ls_ctl_call(fd, req, &resp, 10000), 0);
	close(fd);
	json_object_put(req);
	return resp;
}

static uint64_t ju64(json_object *o, const char *key)
{
	json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s", key);
	return (uint64_t)json_object_get_int64(v);
}

/* The daemon's log line "pid N (...): flight recorder: wrote PATH" for
 * pid, the first after `skip` others: PATH into path. */
static bool wrote_nth_for(struct fx *f, const char *pid, int skip, char *path, size_t len,
			  int timeout_ms)
{
	char needle[64], *p;

	snprintf(needle, sizeof(needle), "pid %s (", pid);
	for (int waited = 0; waited <= timeout_ms; waited += 200) {
		char *text = ls_test_slurp(f->d.err), *l;

		int n = 0;

		for (l = text ? strtok(text, "\n") : NULL; l; l = strtok(NULL, "\n")) {
			if (strstr(l, needle) == strstr(l, "pid ") && strstr(l, needle) &&
			    (p = strstr(l, "flight recorder: wrote ")) && n++ == skip) {
				p += strlen("flight recorder: wrote ");
				ck_assert_uint_lt(strlen(p), len);
				memcpy(path, p, strlen(p) + 1);
				free(text);
				return true;
			}
		}
		free(text);
		usleep(200000);
	}
	return false;
}

static bool wrote_for(struct fx *f, const char *pid, char *path, size_t len, int timeout_ms)
{
	return wrote_nth_for(f, pid, 0, path, len, timeout_ms);
}

/*
 * What period e held besides waiting: its duration less what it waited for
 * a CPU (runnable_ns) and, when it was blocked in a file syscall (the
 * app's own log write, after its block, in a period of its own: 185 ms
 * blocked beside a dd loop writing to the same disk), less that block too.
 * A period other than the app's scripted block must hold less than the
 * threshold: slow only by the machine's load.
 */
static uint64_t held_besides_waiting(json_object *e)
{
	static const char *const file_io[] = { "write", "openat", "close", "fsync", "fdatasync",
					       "pwrite64", "ftruncate", "newfstatat", "fstat" };
	uint64_t dur = ju64(e, "duration_ns"), off = ju64(e, "runnable_ns");
	json_object *sc;

	if (json_object_object_get_ex(e, "blocked_syscall", &sc) && json_object_get_string(sc))
		for (size_t i = 0; i < sizeof(file_io) / sizeof(file_io[0]); i++)
			if (!strcmp(json_object_get_string(sc), file_io[i]))
				off += ju64(e, "blocked_ns");
	return dur > off ? dur - off : 0;
}

/* The block "block T0 T1 TAIL HEAD" app i logged (0 when it has not). */
static void app_block(struct fx *f, int i, uint64_t *t0, uint64_t *head)
{
	char line[128];
	unsigned long long a, b, c, d;

	*t0 = *head = 0;
	if (ls_test_wait_line(f->log[i], "block ", 0, line, sizeof(line)) == 0 &&
	    sscanf(line, "block %llu %llu %llu %llu", &a, &b, &c, &d) == 4) {
		*t0 = a;
		*head = d;
	}
}

/*
 * Every dump in f->dumps had its reason: a slow period of its process at
 * least thr_ns long. Beyond the apps' scripted blocks (one dump each), a
 * loaded machine stretches other busy periods past the threshold (11 apps
 * made 20 dumps at load 22): such a period is accepted only when it would
 * not have reached thr_ns without waiting for a CPU (duration - runnable_ns
 * < thr_ns, the kernel's split of the period) and the app's threads waited
 * at least that much in all (schedstat run_delay, read now; ~0 on a quiet
 * machine, where there is no such period). Returns the number of dump
 * files; *stretched: the distinct stretched periods seen.
 */
static int check_dump_reasons(struct fx *f, uint64_t thr_ns, int *stretched)
{
	uint64_t seen_start[256], waited[LS_TEST_MAX_PYTHONS + 1] = { 0 };
	int nseen = 0, files = 0;
	DIR *d = opendir(f->dumps);
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char path[512], *dash;
		json_object *r, *slow;
		int app = -1, reasons = 0;

		if (strncmp(de->d_name, "flight-", 7) || l < 7 || strcmp(de->d_name + l - 6, ".lsrec"))
			continue;
		files++;
		snprintf(path, sizeof(path), "%s/%s", f->dumps, de->d_name);
		/* flight-TIME-PID-SEQ.lsrec */
		de->d_name[l - 6] = '\0';
		dash = strrchr(de->d_name, '-');
		ck_assert_ptr_nonnull(dash);
		*dash = '\0';
		dash = strrchr(de->d_name, '-');
		ck_assert_ptr_nonnull(dash);
		for (int i = 0; i < f->napps; i++)
			if (!strcmp(dash + 1, f->spid[i]))
				app = i;
		ck_assert_msg(app >= 0, "dump %s: of no app", path);
		r = report(path);
		ck_assert(json_object_object_get_ex(r, "slow_busy", &slow));
		for (size_t k = 0; k < json_object_array_length(slow); k++) {
			json_object *e = json_object_array_get_idx(slow, k);
			uint64_t start = ju64(e, "start_ns"), dur = ju64(e, "duration_ns");
			uint64_t run = ju64(e, "runnable_ns"), t0, head;
			bool dup = false;

			if (dur < thr_ns)
				continue;
			reasons++;
			app_block(f, app, &t0, &head);
			if (t0 && start <= t0 && t0 - start <= 5000000 + head)
				continue; /* the scripted block */
			ck_assert_msg(held_besides_waiting(e) < thr_ns, "dump %s: a period of %" PRIu64 " ns (%" PRIu64
				      " ns waiting for a CPU) that is not the app's block", path, dur, run);
			for (int j = 0; j < nseen; j++)
				dup |= seen_start[j] == start;
			if (!dup && nseen < 256) {
				seen_start[nseen++] = start;
				waited[app] += run;
			}
		}
		ck_assert_msg(reasons > 0, "dump %s: no slow period of %" PRIu64 " ns or more", path, thr_ns);
		json_object_put(r);
	}
	closedir(d);
	for (int i = 0; i < f->napps; i++) {
		uint64_t rd = ls_test_runnable_ns((pid_t)atoi(f->spid[i]), 0);

		ck_assert_msg(waited[i] <= rd, "%s: its stretched periods waited %" PRIu64 " ns for a CPU, "
			      "its threads %" PRIu64 " ns in all (schedstat)", f->spid[i], waited[i], rd);
	}
	*stretched = nseen;
	return files;
}

/*
 * The scripted slow event, on every interpreter with stacks: each app
 * blocks 300 ms in flight_culprit() 3 s after it starts; the daemon
 * (flight_threshold 200 ms, flight_after 1 s) writes a dump per app. The
 * dump's report holds the period: its duration within the app's own
 * measure ± max(5 %, 5 ms) (the app's clock reads bracket the sleep, the
 * kernel's busy period brackets the callback: they differ by the
 * callback's few µs around the sleep, and the ±5 % covers a loaded
 * machine's scheduling delay inside the period; above, also what the
 * app's thread waited for a CPU before and after its clock inside the
 * period, schedstat, logged by the app), its start within 5 ms (plus that
 * wait before) before the app's first clock read (the callback began just
 * before), and a stack whose frames name flight_culprit.
 */
START_TEST(test_slow_event_writes_a_dump_with_its_stack)
{
	struct ls_test_pythons py;
	struct fx f;

	ls_test_find_pythons("it_flight", 8, LS_TEST_PY_FULL, &py);
	fx_init(&f);
	fx_daemon(&f, "flight_threshold = \"200ms\";\nflight_after = \"1s\";\nflight_seconds = \"20s\";\n"
		      "interval = \"250ms\";\nflight_max_files = 100;");
	for (int i = 0; i < py.n && f.napps < LS_TEST_MAX_PYTHONS; i++)
		fx_app(&f, py.path[i], 3.0);
	ck_assert_int_gt(f.napps, 0);
	for (int i = 0; i < f.napps; i++) {
		char path[512], line[128];
		unsigned long long t0, t1, tail, head;
		json_object *r, *slow, *e, *st;
		int found = 0, ndump = 0;

		ck_assert_msg(ls_test_wait_line(f.log[i], "block ", 30000, line, sizeof(line)) == 0,
			      "%s: the app did not block", py.name[i]);
		ck_assert_int_eq(sscanf(line, "block %llu %llu %llu %llu", &t0, &t1, &tail, &head), 4);
		/* The block's dump: a stretched period before it may have
		 * written an earlier one (no block in it, 3.8 at load 21). */
	next_dump:
		ck_assert_msg(wrote_nth_for(&f, f.spid[i], ndump, path, sizeof(path), 20000),
			      "%s: no dump %d for pid %s", py.name[i], ndump, f.spid[i]);
		r = report(path);
		ck_assert(json_object_object_get_ex(r, "slow_busy", &slow));
		for (size_t k = 0; k < json_object_array_length(slow); k++) {
			uint64_t start, dur, app = t1 - t0, tol;

			e = json_object_array_get_idx(slow, k);
			start = ju64(e, "start_ns");
			dur = ju64(e, "duration_ns");
			if (dur < BLOCK_NS / 2)
				continue;
			/* Not the block: a period a loaded machine stretched (a
			 * 168 ms one seen at load 18): long only by waiting for
			 * a CPU (check_dump_reasons bounds the wait). */
			if (start > t0 || t0 - start > 5000000 + head) {
				ck_assert_msg(held_besides_waiting(e) < BLOCK_NS / 2,
					      "%s: a period of %" PRIu64 " ns at %" PRIu64 ", not the app's block "
					      "at %llu, waiting %" PRIu64 " ns for a CPU", py.name[i], dur, start,
					      t0, ju64(e, "runnable_ns"));
				continue;
			}
			found++;
			tol = app / 20 > 5000000 ? app / 20 : 5000000;
			/* Above: also what the thread waited for a CPU before
			 * and after the block inside the period (the app's head
			 * and tail waits). */
			ck_assert_msg(dur + tol >= app && dur <= app + tol + tail + head,
				      "%s: dump's period %" PRIu64 " ns, the app's %" PRIu64 " ns (± %" PRIu64
				      ", + %llu ns waited after it, %llu ns before)", py.name[i], dur, app, tol,
				      tail, head);
			ck_assert_msg(start <= t0 && t0 - start <= 5000000 + head,
				      "%s: period starts %" PRIu64 ", the app's block at %llu",
				      py.name[i], start, t0);
			ck_assert(json_object_object_get_ex(e, "stacks", &st));
			ck_assert_msg(strstr(json_object_to_json_string(st), "flight_culprit"),
				      "%s: the dump's stacks lack flight_culprit: %s", py.name[i],
				      json_object_to_json_string(st));
		}
		if (found == 0 && ndump < 5) {
			json_object_put(r);
			ndump++;
			goto next_dump;
		}
		ck_assert_msg(found == 1, "%s: %d slow periods of ~300 ms in the dump", py.name[i], found);
		json_object_put(r);
	}
	{
		json_object *s = stats(&f), *fl;

		int stretched, files;

		ck_assert(json_object_object_get_ex(s, "flight", &fl));
		files = check_dump_reasons(&f, BLOCK_NS * 2 / 3, &stretched);
		fprintf(stderr, "it_flight: %d apps, %" PRIu64 " dumps written, %d files; %d other periods "
			"of 200 ms or more, each by waiting for a CPU\n", f.napps,
			ju64(fl, "dumps_written"), files, stretched);
		ck_assert_uint_eq(ju64(fl, "dumps_dropped"), 0);
		ck_assert_uint_eq(ju64(fl, "files_rotated"), 0);
		ck_assert_uint_eq(ju64(fl, "dumps_written"), (uint64_t)files);
		/* One dump per app, and at most one more per stretched period. */
		ck_assert_int_ge(files, f.napps);
		ck_assert_int_le(files, f.napps + stretched);
		json_object_put(s);
	}
	fx_done(&f);
}
END_TEST

/*
 * Precise mode: the same scripted block under a daemon whose rule asks
 * for precise mode, on one interpreter (the first unstripped one: precise
 * mode's set-up is the slow part, and the other tests cover the
 * interpreters). The dump holds the 300 ms callback as a slow callback:
 * named by its Task's step (main, flight_app.py), its duration within the
 * app's own measure ± max(5 %, 5 ms) (the bounds above: the callback's
 * uprobes bracket the same sleep), its stack naming flight_culprit; and
 * the report says precise mode (precise_targets).
 */
START_TEST(test_precise_slow_callback_in_dump)
{
	struct ls_test_pythons py;
	struct fx f;
	char path[512], line[128];
	unsigned long long t0, t1, tail, head;
	uint64_t start;
	json_object *r, *slow, *e, *st, *tg;
	int found = 0;

	ls_test_find_pythons("it_flight precise", 8, LS_TEST_PY_FULL, &py);
	if (!py.n)
		return;
	fx_init(&f);
	fx_daemon_mode(&f, "flight_threshold = \"200ms\";\nflight_after = \"1s\";\n"
			   "flight_seconds = \"20s\";\ninterval = \"250ms\";", "precise");
	/* 5 s before the block: precise mode's set-up (ELF, a BPF load, the
	 * uprobe) is done by then on a loaded machine. */
	fx_app(&f, py.path[py.n - 1], 5.0);
	ck_assert_msg(ls_test_wait_line(f.log[0], "block ", 30000, line, sizeof(line)) == 0,
		      "the app did not block");
	ck_assert_int_eq(sscanf(line, "block %llu %llu %llu %llu", &t0, &t1, &tail, &head), 4);
	ck_assert_msg(wrote_for(&f, f.spid[0], path, sizeof(path), 20000), "no dump for pid %s",
		      f.spid[0]);
	r = report(path);
	ck_assert(json_object_object_get_ex(r, "precise_targets", &tg));
	ck_assert_int_eq((int)json_object_array_length(tg), 1);
	ck_assert_msg(json_object_object_get_ex(r, "slow_callbacks", &slow), "no slow_callbacks: %s",
		      json_object_to_json_string(r));
	for (size_t k = 0; k < json_object_array_length(slow); k++) {
		uint64_t dur, app = t1 - t0, tol = app / 20 > 5000000 ? app / 20 : 5000000;

		e = json_object_array_get_idx(slow, k);
		dur = ju64(e, "duration_ns");
		if (dur < BLOCK_NS / 2)
			continue;
		start = ju64(e, "start_ns");
		if (start > t0 || t0 - start > 5000000 + head) {
			/* another callback, long only by waiting for a CPU */
			ck_assert_msg(held_besides_waiting(e) < BLOCK_NS / 2,
				      "%s: a slow callback of %" PRIu64 " ns, not the app's block",
				      py.name[py.n - 1], dur);
			continue;
		}
		found++;
		ck_assert_msg(dur + tol >= app && dur <= app + tol + tail + head,
			      "%s: the dump's slow callback %" PRIu64 " ns, the app's %" PRIu64 " ns (+ %llu "
			      "and %llu ns waited after and before it)", py.name[py.n - 1], dur, app, tail, head);
		ck_assert_msg(strstr(json_object_to_json_string(e), "\"main\""),
			      "%s: the slow callback is not named main: %s", py.name[py.n - 1],
			      json_object_to_json_string(e));
		ck_assert(json_object_object_get_ex(e, "stacks", &st));
		ck_assert_msg(strstr(json_object_to_json_string(st), "flight_culprit"),
			      "%s: the slow callback's stacks lack flight_culprit: %s",
			      py.name[py.n - 1], json_object_to_json_string(st));
	}
	ck_assert_msg(found == 1, "%s: %d slow callbacks of ~300 ms in the dump", py.name[py.n - 1],
		      found);
	fprintf(stderr, "it_flight: %s: precise mode's slow callback in the dump, with its stack\n",
		py.name[py.n - 1]);
	json_object_put(r);
	fx_done(&f);
}
END_TEST

/* `loopscope dump PID` writes a file the report reads (the app's thread
 * in it); an unmonitored pid is exit 3; rotation (flight_max_files 2)
 * keeps the two newest of four dumps. */
START_TEST(test_dump_command_and_rotation)
{
	char paths[4][512], path[512];
	struct stat st;
	struct fx f;
	json_object *r, *threads;
	int i;

	fx_init(&f);
	fx_daemon(&f, "flight_max_files = 2;\ninterval = \"200ms\";");
	i = fx_app(&f, "/usr/bin/python3", 0.2); /* then its loop turns every 10 ms */
	usleep(1500000); /* windows recorded */
	for (int k = 0; k < 4; k++) {
		ck_assert_int_eq(dump(&f, f.spid[i], paths[k], sizeof(paths[k])), 0);
		ck_assert_msg(strstr(paths[k], f.dumps) == paths[k], "'%s' is not in %s", paths[k],
			      f.dumps);
		if (k == 0) {
			ck_assert_int_eq(stat(paths[0], &st), 0);
			r = report(paths[0]);
			ck_assert(json_object_object_get_ex(r, "threads", &threads));
			ck_assert_int_ge(json_object_array_length(threads), 1);
			ck_assert_int_eq(json_object_get_int(json_object_object_get(
				json_object_array_get_idx(threads, 0), "pid")), atoi(f.spid[i]));
			ck_assert_uint_gt(ju64(json_object_array_get_idx(threads, 0), "iterations"), 0);
			json_object_put(r);
		}
		usleep(20000);
	}
	ck_assert_int_eq(count_dumps(&f), 2);
	ck_assert_int_ne(stat(paths[0], &st), 0);
	ck_assert_int_ne(stat(paths[1], &st), 0);
	ck_assert_int_eq(stat(paths[2], &st), 0);
	ck_assert_int_eq(stat(paths[3], &st), 0);
	ck_assert_int_eq(dump(&f, "999999", path, sizeof(path)), 3);
	{
		json_object *s = stats(&f), *fl;

		ck_assert(json_object_object_get_ex(s, "flight", &fl));
		ck_assert_uint_eq(ju64(fl, "dumps_written"), 4);
		ck_assert_uint_eq(ju64(fl, "files_rotated"), 2);
		json_object_put(s);
	}
	fx_done(&f);
}
END_TEST

/* The ring stays within flight_bytes: 4 KiB (the least) and a long
 * flight_seconds, windows every 20 ms (the daemon cuts one per wake-up,
 * a few a second: blocks of ~200 bytes): within 30 s blocks are dropped
 * for room, and then the most a ring ever held (the engine's peak
 * counter) is at most 4 KiB and more than half of it (the cap is what
 * bounds it, not the age). */
START_TEST(test_ring_stays_within_flight_bytes)
{
	struct fx f;
	json_object *s = NULL, *fl = NULL;

	fx_init(&f);
	fx_daemon(&f, "flight_bytes = \"4KiB\";\nflight_seconds = \"1000s\";\ninterval = \"20ms\";");
	fx_app(&f, "/usr/bin/python3", 60);
	for (int waited = 0; waited < 30000; waited += 500) {
		usleep(500000);
		json_object_put(s);
		s = stats(&f);
		ck_assert(json_object_object_get_ex(s, "flight", &fl));
		if (ju64(fl, "blocks_dropped") > 3)
			break;
	}
	ck_assert_uint_eq(ju64(fl, "cap_bytes"), 4096);
	ck_assert_uint_gt(ju64(fl, "blocks_dropped"), 3);
	ck_assert_uint_le(ju64(fl, "bytes_peak_target"), 4096);
	ck_assert_uint_gt(ju64(fl, "bytes_peak_target"), 2048);
	ck_assert_uint_le(ju64(fl, "bytes_max_target"), 4096);
	ck_assert_uint_gt(ju64(fl, "bytes_max_target"), 2048);
	ck_assert_uint_eq(ju64(fl, "put_errors"), 0);
	json_object_put(s);
	fx_done(&f);
}
END_TEST

/* A dump that cannot be written (flight_dir is a regular file) is counted
 * as dropped, and `loopscope dump` says why with exit 1. */
START_TEST(test_unwritable_dump_is_dropped)
{
	char path[512];
	struct fx f;
	json_object *s, *fl;
	FILE *c;
	int i;

	fx_init(&f);
	c = fopen(f.dumps, "w");
	ck_assert_ptr_nonnull(c);
	fclose(c);
	fx_daemon(&f, "interval = \"200ms\";");
	i = fx_app(&f, "/usr/bin/python3", 0.2);
	usleep(1000000);
	ck_assert_int_eq(dump(&f, f.spid[i], path, sizeof(path)), 1);
	s = stats(&f);
	ck_assert(json_object_object_get_ex(s, "flight", &fl));
	ck_assert_uint_eq(ju64(fl, "dumps_dropped"), 1);
	ck_assert_uint_eq(ju64(fl, "dumps_written"), 0);
	json_object_put(s);
	fx_done(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("it_flight");
	TCase *tc = tcase_create("flight");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_slow_event_writes_a_dump_with_its_stack);
	tcase_add_test(tc, test_precise_slow_callback_in_dump);
	tcase_add_test(tc, test_dump_command_and_rotation);
	tcase_add_test(tc, test_ring_stays_within_flight_bytes);
	tcase_add_test(tc, test_unwritable_dump_is_dropped);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
