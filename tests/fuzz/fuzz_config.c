// SPDX-License-Identifier: MIT
/*
 * fuzz_config: loopscoped's configuration as a person (or a config
 * management tool) writes it: the config file (ls_config_load, libconfig
 * syntax, on a temp file), a --rule flag (ls_config_parse_rule) and the
 * listen address (ls_config_parse_listen).
 *
 * Input: byte 0 picks the entry point (% 3: file, rule, listen); the rest
 * is the file or the flag. Properties: an error is one line; a loaded
 * config has durations within their bounds (interval and scan 10 ms to
 * LS_DURATION_MAX_NS: the engine's deadlines cannot wrap), at most
 * LS_CFG_MAX_RULES rules, each with a matcher and a service; a listen
 * address has a port 1-65535 and a NUL-terminated host; the flight
 * recorder's sizes, counts and durations are within their bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "loopscope/config.h"
#include "loopscope/duration.h"

static char dir[64], path[96];

static void one_line(const char *err, size_t len)
{
	FUZZ_CHECK(memchr(err, 0, len));
	FUZZ_CHECK(err[0] && !strchr(err, '\n'));
}

static void check_rule(const struct ls_rule *r)
{
	FUZZ_CHECK(memchr(r->service, 0, sizeof(r->service)) && r->service[0]);
	FUZZ_CHECK(memchr(r->exe, 0, sizeof(r->exe)) && memchr(r->cmdline, 0, sizeof(r->cmdline)) &&
		   memchr(r->cgroup, 0, sizeof(r->cgroup)));
	FUZZ_CHECK(ls_rule_has_matcher(r) && r->pid >= 0);
	FUZZ_CHECK(r->mode == LS_MODE_LIGHT || r->mode == LS_MODE_PRECISE);
	ls_rule_match(r, 4242, "/usr/bin/python3.11", "python3 -m app --port 80", "/system.slice/a.service");
	ls_rule_match(r, r->pid, "", "", "");
}

static void load(const uint8_t *data, size_t size)
{
	static struct ls_config c;
	char err[512];

	fuzz_write_file(path, data, size);
	ls_config_defaults(&c);
	if (ls_config_load(path, &c, err, sizeof(err))) {
		one_line(err, sizeof(err));
		return;
	}
	FUZZ_CHECK(c.threshold_ns >= 1 && c.threshold_ns <= LS_DURATION_MAX_NS);
	FUZZ_CHECK(c.interval_ns >= LS_CFG_MIN_PERIOD_NS && c.interval_ns <= LS_DURATION_MAX_NS);
	FUZZ_CHECK(c.scan_ns >= LS_CFG_MIN_PERIOD_NS && c.scan_ns <= LS_DURATION_MAX_NS);
	FUZZ_CHECK(c.grace_ns <= LS_DURATION_MAX_NS);
	FUZZ_CHECK(c.max_targets >= 1 && c.max_targets <= 1024);
	FUZZ_CHECK(c.flight_seconds_ns >= 1000000000ULL && c.flight_seconds_ns <= LS_DURATION_MAX_NS);
	FUZZ_CHECK(c.flight_threshold_ns >= 1 && c.flight_threshold_ns <= LS_DURATION_MAX_NS);
	FUZZ_CHECK(c.flight_after_ns <= LS_DURATION_MAX_NS);
	FUZZ_CHECK(c.flight_bytes >= LS_CFG_FLIGHT_MIN_BYTES && c.flight_bytes <= LS_CFG_FLIGHT_MAX_BYTES);
	FUZZ_CHECK(c.flight_max_bytes >= 1 && c.flight_max_bytes <= LS_CFG_FLIGHT_MAX_TOTAL);
	FUZZ_CHECK(c.flight_max_files >= 1 && c.flight_max_files <= LS_CFG_FLIGHT_MAX_FILES);
	FUZZ_CHECK(memchr(c.flight_dir, 0, sizeof(c.flight_dir)));
	FUZZ_CHECK(c.nrules >= 0 && c.nrules <= LS_CFG_MAX_RULES);
	FUZZ_CHECK(memchr(c.listen, 0, sizeof(c.listen)) && memchr(c.socket_path, 0, sizeof(c.socket_path)) &&
		   memchr(c.btf_path, 0, sizeof(c.btf_path)));
	for (int i = 0; i < c.nrules; i++)
		check_rule(&c.rules[i]);
}

static void flags(int which, const char *s)
{
	char err[512], host[64];
	struct ls_rule r;
	int port = -1;

	if (which == 1) {
		if (ls_config_parse_rule(s, &r, err, sizeof(err)))
			one_line(err, sizeof(err));
		else
			check_rule(&r);
	} else if (ls_config_parse_listen(s, host, sizeof(host), &port) == 0) {
		FUZZ_CHECK(port >= 1 && port <= 65535 && memchr(host, 0, sizeof(host)));
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/loopscoped.conf", dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	if (data[0] % 3 == 0) {
		load(data + 1, size - 1);
		return 0;
	}
	s = malloc(size);
	FUZZ_CHECK(s);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	flags(data[0] % 3, s);
	free(s);
	return 0;
}
