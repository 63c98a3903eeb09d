// SPDX-License-Identifier: MIT
/* loopscoped's config file (libconfig syntax; docs/DAEMON.md, "Config
 * file"): settings and rules read into struct ls_config. The rules' own
 * grammar and matching are the engine's (agent/engine/config.c). */
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/config.h"
#include "loopscope/duration.h"

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* "FILE:LINE: message" into err. */
static int fail(char *err, size_t len, const char *path, int line, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One line, though it quotes the file ("\n" in a string): control
	 * bytes as '?' (#12, found by fuzz_config). */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	snprintf(err, len, "%s:%d: %s", base_name(path), line, msg);
	return -EINVAL;
}

/* A setting that must be a string (durations are strings: "100ms"). */
static const char *want_string(config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
}

static int load_rule(config_setting_t *g, int idx, struct ls_rule *r, const char *path,
		     char *err, size_t len)
{
	int line = (int)config_setting_source_line(g);

	memset(r, 0, sizeof(*r));
	snprintf(r->service, sizeof(r->service), "default");
	r->line = line;
	if (config_setting_type(g) != CONFIG_TYPE_GROUP)
		return fail(err, len, path, line, "rule %d: expected a group { service = ...; exe = ...; }",
			    idx + 1);
	for (int i = 0; i < config_setting_length(g); i++) {
		config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *key = config_setting_name(s), *val;
		char buf[32], e[200];

		if (!strcmp(key, "pid") && config_setting_type(s) == CONFIG_TYPE_INT) {
			snprintf(buf, sizeof(buf), "%d", config_setting_get_int(s));
			val = buf;
		} else {
			val = want_string(s);
		}
		if (!val)
			return fail(err, len, path, (int)config_setting_source_line(s),
				    "rule %d: %s must be a string%s", idx + 1, key,
				    !strcmp(key, "pid") ? " or an integer" : "");
		if (ls_rule_set(r, key, val, e, sizeof(e)))
			return fail(err, len, path, (int)config_setting_source_line(s), "rule %d: %s",
				    idx + 1, e);
	}
	if (!ls_rule_has_matcher(r))
		return fail(err, len, path, line,
			    "rule %d matches nothing: it needs pid, exe, cmdline or cgroup", idx + 1);
	return 0;
}

static int load_duration(config_setting_t *s, uint64_t *ns, uint64_t min, const char *path,
			 char *err, size_t len)
{
	const char *v = want_string(s);
	uint64_t x;

	if (!v || ls_duration_parse(v, &x) || x < min)
		return fail(err, len, path, (int)config_setting_source_line(s),
			    "%s: invalid duration (a string such as \"500us\", \"100ms\", \"2s\"; %s)",
			    config_setting_name(s), min >= LS_CFG_MIN_PERIOD_NS ? "10ms to 1000000000s" :
			    "at most 1000000000s");
	*ns = x;
	return 0;
}

/* A size: a string ("4MiB") or an integer (bytes), within [min, max]. */
static int load_size(config_setting_t *s, uint64_t *bytes, uint64_t min, uint64_t max,
		     const char *path, char *err, size_t len)
{
	const char *v = want_string(s);
	uint64_t x = 0;
	int bad;

	if (config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64) {
		long long i = config_setting_get_int64(s);

		bad = i < 0;
		x = (uint64_t)i;
	} else {
		bad = !v || ls_config_parse_size(v, &x);
	}
	if (bad || x < min || x > max)
		return fail(err, len, path, (int)config_setting_source_line(s),
			    "%s: invalid size (bytes, or a string such as \"512KiB\", \"4MiB\", \"1GiB\"; "
			    "%llu to %llu bytes)", config_setting_name(s), (unsigned long long)min,
			    (unsigned long long)max);
	*bytes = x;
	return 0;
}

int ls_config_load(const char *path, struct ls_config *c, char *err, size_t len)
{
	config_t cfg;
	config_setting_t *root;
	FILE *f;
	int ret = 0;

	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return ret;
	}
	config_init(&cfg);
	if (!config_read(&cfg, f)) {
		ret = fail(err, len, path, config_error_line(&cfg), "%s", config_error_text(&cfg));
		goto out;
	}
	root = config_root_setting(&cfg);
	for (int i = 0; i < config_setting_length(root) && !ret; i++) {
		config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *key = config_setting_name(s), *v;
		int line = (int)config_setting_source_line(s);

		if (!strcmp(key, "listen") || !strcmp(key, "socket") || !strcmp(key, "btf") ||
		    !strcmp(key, "flight_dir")) {
			char host[64];
			int port;

			v = want_string(s);
			if (!v) {
				ret = fail(err, len, path, line, "%s must be a string", key);
			} else if (!strcmp(key, "listen")) {
				if (*v && ls_config_parse_listen(v, host, sizeof(host), &port))
					ret = fail(err, len, path, line,
						   "listen: '%s' is not HOST:PORT, HOST an IPv4 address, localhost or * "
					   "(\"127.0.0.1:9466\"; \"\" disables)", v);
				else if (ls_config_copy_str(c->listen, sizeof(c->listen), v))
					ret = fail(err, len, path, line, "listen: too long");
			} else if (ls_config_copy_str(!strcmp(key, "socket") ? c->socket_path :
						      !strcmp(key, "btf") ? c->btf_path : c->flight_dir,
					    PATH_MAX, v)) {
				ret = fail(err, len, path, line, "%s: path too long", key);
			}
		} else if (!strcmp(key, "threshold")) {
			ret = load_duration(s, &c->threshold_ns, 1, path, err, len);
		} else if (!strcmp(key, "interval")) {
			ret = load_duration(s, &c->interval_ns, LS_CFG_MIN_PERIOD_NS, path, err, len);
		} else if (!strcmp(key, "grace")) {
			ret = load_duration(s, &c->grace_ns, 0, path, err, len);
		} else if (!strcmp(key, "scan")) {
			ret = load_duration(s, &c->scan_ns, LS_CFG_MIN_PERIOD_NS, path, err, len);
		} else if (!strcmp(key, "flight_seconds")) {
			ret = load_duration(s, &c->flight_seconds_ns, 1000000000ULL, path, err, len);
		} else if (!strcmp(key, "flight_threshold")) {
			ret = load_duration(s, &c->flight_threshold_ns, 1, path, err, len);
		} else if (!strcmp(key, "flight_after")) {
			ret = load_duration(s, &c->flight_after_ns, 0, path, err, len);
		} else if (!strcmp(key, "flight_bytes")) {
			ret = load_size(s, &c->flight_bytes, LS_CFG_FLIGHT_MIN_BYTES,
					LS_CFG_FLIGHT_MAX_BYTES, path, err, len);
		} else if (!strcmp(key, "flight_max_bytes")) {
			ret = load_size(s, &c->flight_max_bytes, 1, LS_CFG_FLIGHT_MAX_TOTAL, path, err, len);
		} else if (!strcmp(key, "flight_max_files")) {
			if (config_setting_type(s) != CONFIG_TYPE_INT || config_setting_get_int(s) < 1 ||
			    config_setting_get_int(s) > LS_CFG_FLIGHT_MAX_FILES)
				ret = fail(err, len, path, line, "flight_max_files must be an integer 1-%d",
					   LS_CFG_FLIGHT_MAX_FILES);
			else
				c->flight_max_files = config_setting_get_int(s);
		} else if (!strcmp(key, "max_targets")) {
			if (config_setting_type(s) != CONFIG_TYPE_INT || config_setting_get_int(s) < 1 ||
			    config_setting_get_int(s) > 1024)
				ret = fail(err, len, path, line, "max_targets must be an integer 1-1024");
			else
				c->max_targets = config_setting_get_int(s);
		} else if (!strcmp(key, "thread_quota")) {
			if (config_setting_type(s) != CONFIG_TYPE_INT || config_setting_get_int(s) < 1 ||
			    config_setting_get_int(s) > LS_MAX_THREADS)
				ret = fail(err, len, path, line, "thread_quota must be an integer 1-%d",
					   LS_MAX_THREADS);
			else
				c->thread_quota = config_setting_get_int(s);
		} else if (!strcmp(key, "stacks")) {
			if (config_setting_type(s) != CONFIG_TYPE_BOOL)
				ret = fail(err, len, path, line, "stacks must be true or false");
			else
				c->stacks = config_setting_get_bool(s);
		} else if (!strcmp(key, "rules")) {
			if (config_setting_type(s) != CONFIG_TYPE_LIST) {
				ret = fail(err, len, path, line,
					   "rules must be a list: rules = ( { ... }, { ... } );");
				break;
			}
			for (int r = 0; r < config_setting_length(s) && !ret; r++) {
				if (c->nrules == LS_CFG_MAX_RULES) {
					ret = fail(err, len, path, line, "more than %d rules",
						   LS_CFG_MAX_RULES);
					break;
				}
				ret = load_rule(config_setting_get_elem(s, (unsigned)r), r,
						&c->rules[c->nrules], path, err, len);
				if (!ret)
					c->nrules++;
			}
		} else {
			ret = fail(err, len, path, line,
				   "unknown setting '%s' (listen, socket, threshold, interval, grace, "
				   "scan, max_targets, thread_quota, stacks, btf, flight_dir, flight_seconds, "
				   "flight_bytes, flight_threshold, flight_after, flight_max_files, "
				   "flight_max_bytes, rules)", key);
		}
	}
out:
	config_destroy(&cfg);
	fclose(f);
	return ret;
}

