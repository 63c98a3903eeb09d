// SPDX-License-Identifier: MIT
/* Unit: loopscoped's config file and rule flags (agent/daemon/config.c), and the
 * conversion of log-linear histograms to Prometheus buckets (agent/daemon/prom.c). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopscope/config.h"
#include "loopscope/duration.h"
#include "loopscope/prom.h"
#include "loopscope/utf8.h"
#include "pythons.h"
#include "spawn.h"

/* Write text to a fresh temp file; its path into path. */
static void write_conf(char *path, size_t len, const char *text)
{
	FILE *f;

	ls_test_tmp(path, len, "conf");
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static int load(const char *text, struct ls_config *c, char *err, size_t len)
{
	char path[128];
	int e;

	write_conf(path, sizeof(path), text);
	ls_config_defaults(c);
	err[0] = '\0';
	e = ls_config_load(path, c, err, len);
	unlink(path);
	return e;
}

START_TEST(test_full_config_is_read)
{
	struct ls_config c;
	char err[512];

	ck_assert_int_eq(load("# a comment\n"
			      "listen = \"0.0.0.0:9500\";\n"
			      "socket = \"/tmp/x.sock\";\n"
			      "threshold = \"50ms\";\n"
			      "grace = \"0s\";\n"
			      "max_targets = 100;\n"
			      "stacks = false;\n"
			      "rules = (\n"
			      "  { service = \"api\"; cmdline = \"*gunicorn*\"; mode = \"precise\"; },\n"
			      "  { service = \"batch\"; pid = 4242; },\n"
			      "  { service = \"svc\"; cgroup = \"/system.slice/x.service\"; exe = \"*/python3*\"; }\n"
			      ");\n", &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.listen, "0.0.0.0:9500");
	ck_assert_str_eq(c.socket_path, "/tmp/x.sock");
	ck_assert_uint_eq(c.threshold_ns, 50000000ULL);
	ck_assert_uint_eq(c.grace_ns, 0);
	ck_assert_uint_eq(c.interval_ns, 1000000000ULL); /* default kept */
	ck_assert_int_eq(c.max_targets, 100);
	ck_assert(!c.stacks);
	ck_assert_int_eq(c.nrules, 3);
	ck_assert_str_eq(c.rules[0].service, "api");
	ck_assert_int_eq(c.rules[0].mode, LS_MODE_PRECISE);
	ck_assert_int_eq(c.rules[0].line, 9);
	ck_assert_int_eq(c.rules[1].pid, 4242);
	ck_assert_int_eq(c.rules[1].mode, LS_MODE_LIGHT);
	ck_assert_str_eq(c.rules[2].cgroup, "/system.slice/x.service");
}
END_TEST

/* Each bad file: its error names the file's line. */
START_TEST(test_errors_name_the_line)
{
	static const struct { const char *text; const char *want; } bad[] = {
		{ "listen = \"1.2.3.4:80\";\nthreshold = = \"1s\";\n", ":2: syntax error" },
		{ "\n\nthreshold = \"fast\";\n", ":3: threshold: invalid duration" },
		{ "threshold = 100;\n", ":1: threshold: invalid duration" },
		{ "listen = \"nocolon\";\n", ":1: listen: 'nocolon' is not HOST:PORT" },
		{ "bogus = 1;\n", ":1: unknown setting 'bogus'" },
		{ "rules = (\n { service = \"a\"; exe = \"*py*\"; },\n { service = \"b\";\n   mode = \"fast\"; exe = \"x\"; }\n);\n",
		  ":4: rule 2: unknown mode 'fast'" },
		{ "rules = ( { service = \"a\"; } );\n", ":1: rule 1 matches nothing" },
		{ "rules = ( { service = \"a\"; pid = \"x\"; } );\n", ":1: rule 1: invalid pid 'x'" },
		{ "rules = ( { service = \"a\"; colour = \"red\"; } );\n", "unknown rule key 'colour'" },
		{ "max_targets = 0;\n", ":1: max_targets must be an integer 1-1024" },
		{ "stacks = \"yes\";\n", ":1: stacks must be true or false" },
		{ "interval = \"5ms\";\n", ":1: interval: invalid duration" },
		{ "scan = \"1us\";\n", ":1: scan: invalid duration" },
		{ "listen = \"example.com:9466\";\n", ":1: listen: 'example.com:9466' is not HOST:PORT" },
		{ "listen = \"[::1]:9466\";\n", ":1: listen: '[::1]:9466' is not HOST:PORT" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ls_config c;
		char err[512];

		ck_assert_int_eq(load(bad[i].text, &c, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, bad[i].want), "case %zu: '%s' lacks '%s'", i, err, bad[i].want);
		ck_assert_msg(!strchr(err, '\n'), "case %zu: more than one line: %s", i, err);
	}
}
END_TEST

/* Issue #12: a duration that fits in uint64_t but wraps the engine's
 * deadlines (interval = UINT64_MAX ns made the daemon spin) is refused with
 * the file's line, for every duration setting; the largest accepted one is
 * LS_DURATION_MAX_NS, and --check-config's text for it parses back. */
START_TEST(test_huge_durations_are_refused_with_the_line)
{
	static const char *keys[] = { "threshold", "interval", "grace", "scan" };
	static const char *vals[] = { "18446744073709551615ns", "99999999999999s", "18450000000 s",
				      "1000000000.000000001s" };

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
			struct ls_config c;
			char text[128], want[64], err[512];

			snprintf(text, sizeof(text), "# loopscoped\n\n%s = \"%s\";\n", keys[k], vals[v]);
			snprintf(want, sizeof(want), ":3: %s: invalid duration", keys[k]);
			ck_assert_msg(load(text, &c, err, sizeof(err)) == -EINVAL, "%s accepted", text);
			ck_assert_msg(strstr(err, want), "'%s' lacks '%s'", err, want);
			ck_assert_msg(!strchr(err, '\n'), "more than one line: %s", err);
		}
	}
	{
		struct ls_config c;
		char err[512], buf[32];
		uint64_t back;

		ck_assert_int_eq(load("interval = \"1000000000s\";\n", &c, err, sizeof(err)), 0);
		ck_assert_uint_eq(c.interval_ns, LS_DURATION_MAX_NS);
		ck_assert_int_eq(ls_duration_parse(ls_duration_format(c.interval_ns, buf, sizeof(buf)),
						   &back), 0);
	}
}
END_TEST

/* Issue #12 (fuzz_config): errors quote what was written, and a newline
 * there (a flag's, or a "\n" escape in a config string) made a two-line
 * error; control bytes are shown as '?'. */
START_TEST(test_errors_quoting_input_stay_one_line)
{
	static const struct { const char *text; const char *want; } file[] = {
		{ "rules = ( { exe = \"x\"; mode = \"a\\nb\"; } );\n", ":1: rule 1: unknown mode 'a?b'" },
		{ "rules = ( { pid = \"1\\r\\n\"; } );\n", ":1: rule 1: invalid pid '1?" "?'" },
		{ "listen = \"1.2.3.4:\\n\";\n", ":1: listen: '1.2.3.4:?' is not HOST:PORT" },
	};
	static const struct { const char *spec; const char *want; } flag[] = {
		{ "p0\";\nsocket", "rule 'p0\";?socket': 'p0\";?socket' is not KEY=VALUE" },
		{ "exe=x,mode=\x1b[2J", "rule 'exe=x,mode=?[2J': unknown mode '?[2J'" },
		{ "service=a\tb", "rule 'service=a?b' matches nothing" },
	};

	for (size_t i = 0; i < sizeof(file) / sizeof(file[0]); i++) {
		struct ls_config c;
		char err[512];

		ck_assert_int_eq(load(file[i].text, &c, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, file[i].want), "'%s' lacks '%s'", err, file[i].want);
		ck_assert_msg(!strpbrk(err, "\n\r\t\x1b"), "control byte in '%s'", err);
	}
	for (size_t i = 0; i < sizeof(flag) / sizeof(flag[0]); i++) {
		struct ls_rule r;
		char err[512];

		ck_assert_int_eq(ls_config_parse_rule(flag[i].spec, &r, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, flag[i].want), "'%s' lacks '%s'", err, flag[i].want);
		ck_assert_msg(!strpbrk(err, "\n\r\t\x1b"), "control byte in '%s'", err);
	}
}
END_TEST

/* The flight recorder's keys (#13 item 5): off by default, read with their
 * units, bad values and overflowing sizes refused with the line. */
START_TEST(test_flight_keys)
{
	static const struct { const char *text; const char *want; } bad[] = {
		{ "flight_bytes = \"4XB\";\n", ":1: flight_bytes: invalid size" },
		{ "flight_bytes = \"1KiB\";\n", ":1: flight_bytes: invalid size" },  /* < 4 KiB */
		{ "flight_bytes = \"2GiB\";\n", ":1: flight_bytes: invalid size" },  /* > 1 GiB */
		{ "\nflight_bytes = \"18446744073709551616\";\n", ":2: flight_bytes: invalid size" },
		{ "flight_bytes = \"18014398509481984K\";\n", ":1: flight_bytes: invalid size" },
		{ "flight_bytes = -5;\n", ":1: flight_bytes: invalid size" },
		{ "flight_bytes = \" 4MiB\";\n", ":1: flight_bytes: invalid size" },
		{ "flight_max_bytes = \"17179869184GiB\";\n", ":1: flight_max_bytes: invalid size" },
		{ "flight_max_bytes = 0;\n", ":1: flight_max_bytes: invalid size" },
		{ "flight_max_files = 0;\n", ":1: flight_max_files must be an integer 1-100000" },
		{ "flight_max_files = \"3\";\n", ":1: flight_max_files must be an integer" },
		{ "flight_seconds = \"500ms\";\n", ":1: flight_seconds: invalid duration" },
		{ "flight_seconds = \"99999999999999s\";\n", ":1: flight_seconds: invalid duration" },
		{ "flight_after = \"18446744073709551615ns\";\n", ":1: flight_after: invalid duration" },
		{ "flight_threshold = \"0ms\";\n", ":1: flight_threshold: invalid duration" },
		{ "flight_dir = 3;\n", ":1: flight_dir must be a string" },
	};
	struct ls_config c;
	char err[512];
	uint64_t b;

	ls_config_defaults(&c);
	ck_assert_str_eq(c.flight_dir, ""); /* off */
	ck_assert_uint_eq(c.flight_bytes, 4ULL << 20);
	ck_assert_uint_eq(c.flight_seconds_ns, 30000000000ULL);
	ck_assert_int_eq(load("flight_dir = \"/var/lib/loopscope/flight\";\n"
			      "flight_seconds = \"2m\";\n"
			      "flight_bytes = \"512KiB\";\n"
			      "flight_threshold = \"750ms\";\n"
			      "flight_after = \"0s\";\n"
			      "flight_max_files = 7;\n"
			      "flight_max_bytes = 1048576;\n", &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.flight_dir, "/var/lib/loopscope/flight");
	ck_assert_uint_eq(c.flight_seconds_ns, 120000000000ULL);
	ck_assert_uint_eq(c.flight_bytes, 512ULL << 10);
	ck_assert_uint_eq(c.flight_threshold_ns, 750000000ULL);
	ck_assert_uint_eq(c.flight_after_ns, 0);
	ck_assert_int_eq(c.flight_max_files, 7);
	ck_assert_uint_eq(c.flight_max_bytes, 1048576);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(load(bad[i].text, &c, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, bad[i].want), "case %zu: '%s' lacks '%s'", i, err, bad[i].want);
		ck_assert_msg(!strchr(err, '\n'), "case %zu: more than one line: %s", i, err);
	}
	/* The size parser alone: units, and overflow at each step. */
	ck_assert_int_eq(ls_config_parse_size("0", &b), 0);
	ck_assert_uint_eq(b, 0);
	ck_assert_int_eq(ls_config_parse_size("3M", &b), 0);
	ck_assert_uint_eq(b, 3ULL << 20);
	ck_assert_int_eq(ls_config_parse_size("2GiB", &b), 0);
	ck_assert_uint_eq(b, 2ULL << 30);
	ck_assert_int_eq(ls_config_parse_size("18446744073709551615", &b), 0);
	ck_assert_uint_eq(b, UINT64_MAX);
	ck_assert_int_eq(ls_config_parse_size("18446744073709551616", &b), -ERANGE);
	ck_assert_int_eq(ls_config_parse_size("17179869184G", &b), -ERANGE);
	ck_assert_int_eq(ls_config_parse_size("17179869183G", &b), 0);
	ck_assert_int_eq(ls_config_parse_size("", &b), -EINVAL);
	ck_assert_int_eq(ls_config_parse_size("-1", &b), -EINVAL);
	ck_assert_int_eq(ls_config_parse_size("1 M", &b), -EINVAL);
	ck_assert_int_eq(ls_config_parse_size("1MB", &b), -EINVAL);
	ck_assert_int_eq(ls_config_parse_size(NULL, &b), -EINVAL);
}
END_TEST

START_TEST(test_missing_file_is_enoent)
{
	struct ls_config c;
	char err[512];

	ls_config_defaults(&c);
	ck_assert_int_eq(ls_config_load("/nonexistent/loopscoped.conf", &c, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/loopscoped.conf"));
}
END_TEST

START_TEST(test_rule_flags)
{
	struct ls_rule r;
	char err[256];

	ck_assert_int_eq(ls_config_parse_rule("service=api,exe=*python3*,mode=precise", &r, err,
					      sizeof(err)), 0);
	ck_assert_str_eq(r.service, "api");
	ck_assert_str_eq(r.exe, "*python3*");
	ck_assert_int_eq(r.mode, LS_MODE_PRECISE);
	ck_assert_int_eq(ls_config_parse_rule("cmdline=*app.py*", &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.service, "default");
	ck_assert_int_eq(ls_config_parse_rule("service=x", &r, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "matches nothing"));
	ck_assert_int_eq(ls_config_parse_rule("pid=abc", &r, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(ls_config_parse_rule("exe", &r, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(ls_config_parse_rule("exe=x,mode=fast", &r, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_rule_matching)
{
	struct ls_rule r;
	char err[256];

	ck_assert_int_eq(ls_config_parse_rule("exe=*/python3*,cmdline=* app.py*", &r, err, sizeof(err)), 0);
	ck_assert(ls_rule_match(&r, 1, "/usr/bin/python3.11", "python3 app.py --x", ""));
	ck_assert(!ls_rule_match(&r, 1, "/usr/bin/python3.11", "python3 other.py", ""));
	ck_assert(!ls_rule_match(&r, 1, "/usr/bin/node", "node app.py", ""));
	ck_assert(!ls_rule_match(&r, 1, "", "python3 app.py", "")); /* exe unreadable */
	ck_assert_int_eq(ls_config_parse_rule("pid=42,cgroup=/system.slice/*", &r, err, sizeof(err)), 0);
	ck_assert(ls_rule_match(&r, 42, "", "", "/system.slice/a.service"));
	ck_assert(!ls_rule_match(&r, 43, "", "", "/system.slice/a.service"));
	ck_assert(!ls_rule_match(&r, 42, "", "", "/user.slice/a.scope"));
}
END_TEST

START_TEST(test_listen_parse)
{
	char host[64];
	int port;

	ck_assert_int_eq(ls_config_parse_listen("127.0.0.1:9466", host, sizeof(host), &port), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_int_eq(port, 9466);
	ck_assert_int_eq(ls_config_parse_listen("*:80", host, sizeof(host), &port), 0);
	ck_assert_int_eq(ls_config_parse_listen("127.0.0.1", host, sizeof(host), &port), -EINVAL);
	ck_assert_int_eq(ls_config_parse_listen("h:0", host, sizeof(host), &port), -EINVAL);
	ck_assert_int_eq(ls_config_parse_listen("h:70000", host, sizeof(host), &port), -EINVAL);
	ck_assert_int_eq(ls_config_parse_listen(":80", host, sizeof(host), &port), -EINVAL);
	ck_assert_int_eq(ls_config_parse_listen("localhost:80", host, sizeof(host), &port), 0);
	ck_assert_int_eq(ls_config_parse_listen("0.0.0.0:80", host, sizeof(host), &port), 0);
	ck_assert_int_eq(ls_config_parse_listen("example.com:80", host, sizeof(host), &port), -EINVAL);
	ck_assert_int_eq(ls_config_parse_listen("::1:80", host, sizeof(host), &port), -EINVAL);
}
END_TEST

/* Buckets: exact far from a bound; within one slot of a bound either side. */
START_TEST(test_prom_buckets_within_a_slot)
{
	struct ls_hist *h = calloc(1, sizeof(*h));
	uint64_t counts[LS_PROM_NBUCKETS], total;
	/* ns values and the index of the first bound at or above them (when
	 * farther than 1/16 from any bound). */
	static const struct { uint64_t v; int first; } cases[] = {
		{ 1000, 0 },            /* 1 us <= 50 us */
		{ 70000, 1 },           /* 70 us: le=100us */
		{ 150000000, 11 },      /* 150 ms: le=0.25 */
		{ 3000000000ULL, 15 },  /* 3 s: le=5 */
		{ 20000000000ULL, 17 }, /* 20 s: +Inf only */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(h, 0, sizeof(*h));
		ls_hist_record(h, cases[i].v);
		ls_prom_hist_buckets(h, counts, &total);
		ck_assert_uint_eq(total, 1);
		for (int b = 0; b < LS_PROM_NBUCKETS; b++)
			ck_assert_msg(counts[b] == (b >= cases[i].first), "value %llu bound %d: %llu",
				      (unsigned long long)cases[i].v, b, (unsigned long long)counts[b]);
	}
	/* Near a bound: a value more than half a slot (1/32 of the bound)
	 * above it is never counted below it, and one more than 1/32 below is
	 * always counted. */
	for (int b = 0; b < LS_PROM_NBUCKETS; b++) {
		uint64_t bound = ls_prom_bounds_ns[b];

		memset(h, 0, sizeof(*h));
		ls_hist_record(h, bound + bound / 32 + 1);
		ls_hist_record(h, bound - bound / 32 - 1);
		ls_prom_hist_buckets(h, counts, &total);
		ck_assert_uint_eq(counts[b], 1);
	}
	/* Cumulative and monotonic over many values. */
	memset(h, 0, sizeof(*h));
	for (uint64_t v = 1; v < 20000000000ULL; v = v * 3 / 2 + 1)
		ls_hist_record(h, v);
	ls_prom_hist_buckets(h, counts, &total);
	for (int b = 1; b < LS_PROM_NBUCKETS; b++)
		ck_assert_uint_ge(counts[b], counts[b - 1]);
	ck_assert_uint_eq(total, h->count);
	free(h);
}
END_TEST

static char *label_text(const char *v)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	ls_prom_label_value(f, v);
	fclose(f);
	return buf;
}

/* Label values are valid UTF-8 whatever the name holds: a comm cut by the
 * kernel inside a character, stray bytes, an overlong form, a surrogate. */
START_TEST(test_prom_label_values_are_utf8)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "python3", "python3" },
		{ "a\"b\\c\nd", "a\\\"b\\\\c\\nd" },
		{ "caf\xc3\xa9-\xe6\x97\xa5\xf0\x9f\x90\x8d", "caf\xc3\xa9-\xe6\x97\xa5\xf0\x9f\x90\x8d" },
		{ "worker-\xe6\x97", "worker-\xef\xbf\xbd\xef\xbf\xbd" }, /* cut inside */
		{ "x\xffy", "x\xef\xbf\xbdy" },
		{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },          /* overlong '/' */
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* surrogate */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = label_text(cases[i].in);

		ck_assert_msg(!strcmp(got, cases[i].out), "case %zu: got '%s'", i, got);
		free(got);
	}
}
END_TEST

/* A comm the kernel cut at 15 bytes inside a character loses that
 * character's start; complete names are kept. */
START_TEST(test_utf8_cut_at_a_character)
{
	char a[] = "snake-\xf0\x9f\x90\x8d\xf0\x9f\x90", b[] = "caf\xc3\xa9", c[] = "ab\xc3",
	     d[] = "plain";

	ls_utf8_cut(a);
	ls_utf8_cut(b);
	ls_utf8_cut(c);
	ls_utf8_cut(d);
	ck_assert_str_eq(a, "snake-\xf0\x9f\x90\x8d");
	ck_assert_str_eq(b, "caf\xc3\xa9");
	ck_assert_str_eq(c, "ab");
	ck_assert_str_eq(d, "plain");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("daemon_config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, test_full_config_is_read);
	tcase_add_test(tc, test_errors_name_the_line);
	tcase_add_test(tc, test_huge_durations_are_refused_with_the_line);
	tcase_add_test(tc, test_errors_quoting_input_stay_one_line);
	tcase_add_test(tc, test_flight_keys);
	tcase_add_test(tc, test_missing_file_is_enoent);
	tcase_add_test(tc, test_rule_flags);
	tcase_add_test(tc, test_rule_matching);
	tcase_add_test(tc, test_listen_parse);
	tcase_add_test(tc, test_prom_buckets_within_a_slot);
	tcase_add_test(tc, test_prom_label_values_are_utf8);
	tcase_add_test(tc, test_utf8_cut_at_a_character);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
