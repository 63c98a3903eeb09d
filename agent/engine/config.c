// SPDX-License-Identifier: MIT
/* loopscoped's config file (libconfig, which reports syntax errors with
 * their line) and the flag forms of the same settings. */
#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/abi/loop_events.h"
#include "loopscope/config.h"
#include "loopscope/duration.h"

void ls_config_defaults(struct ls_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen, sizeof(c->listen), "%s", LS_CFG_DEFAULT_LISTEN);
	snprintf(c->socket_path, sizeof(c->socket_path), "%s", LS_CFG_DEFAULT_SOCKET);
	c->threshold_ns = LS_DEFAULT_THRESHOLD_NS;
	c->interval_ns = 1000000000ULL;
	c->grace_ns = 30000000000ULL;
	c->scan_ns = 10000000000ULL;
	c->max_targets = 512;
	c->thread_quota = LS_THREAD_QUOTA;
	c->stacks = true;
	c->flight_seconds_ns = 30000000000ULL;
	c->flight_bytes = 4ULL << 20;
	c->flight_threshold_ns = 1000000000ULL;
	c->flight_after_ns = 5000000000ULL;
	c->flight_max_files = 20;
	c->flight_max_bytes = 256ULL << 20;
}

int ls_config_parse_size(const char *s, uint64_t *bytes)
{
	static const struct { const char *unit; unsigned shift; } units[] = {
		{ "", 0 }, { "B", 0 }, { "K", 10 }, { "KiB", 10 }, { "M", 20 }, { "MiB", 20 },
		{ "G", 30 }, { "GiB", 30 },
	};
	uint64_t v = 0;
	const char *p = s;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit))
			continue;
		if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
			return -ERANGE;
		*bytes = v << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

int ls_config_parse_mode(const char *s, enum ls_mode *mode)
{
	if (!strcmp(s, "light"))
		*mode = LS_MODE_LIGHT;
	else if (!strcmp(s, "precise"))
		*mode = LS_MODE_PRECISE;
	else
		return -EINVAL;
	return 0;
}

const char *ls_config_mode_name(enum ls_mode mode)
{
	return mode == LS_MODE_PRECISE ? "precise" : "light";
}

int ls_config_parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	struct in_addr a;
	char *end;
	long p;

	if (!colon || colon == s || (size_t)(colon - s) >= hostlen)
		return -EINVAL;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (strcmp(host, "*") && strcmp(host, "localhost") && inet_pton(AF_INET, host, &a) != 1)
		return -EINVAL; /* the HTTP server binds IPv4 only (agent/daemon/prom.c) */
	*port = (int)p;
	return 0;
}

int ls_config_copy_str(char *dst, size_t cap, const char *v)
{
	if (strlen(v) >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

bool ls_rule_has_matcher(const struct ls_rule *r)
{
	return r->pid || r->exe[0] || r->cmdline[0] || r->cgroup[0];
}

/* err is one line for a person (config.h), but it quotes what the user
 * wrote: control bytes (a "\n" in a config string or a flag) as '?' (#12,
 * found by fuzz_config). Returns -EINVAL. */
static int one_line(char *err)
{
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -EINVAL;
}

static int rule_set(struct ls_rule *r, const char *key, const char *val, char *err, size_t len);

int ls_rule_set(struct ls_rule *r, const char *key, const char *val, char *err, size_t len)
{
	int ret = rule_set(r, key, val, err, len);

	return ret ? one_line(err) : 0;
}

static int rule_set(struct ls_rule *r, const char *key, const char *val, char *err, size_t len)
{
	if (!strcmp(key, "service")) {
		if (!*val || ls_config_copy_str(r->service, sizeof(r->service), val)) {
			snprintf(err, len, "service must be 1-%zu characters", sizeof(r->service) - 1);
			return -EINVAL;
		}
	} else if (!strcmp(key, "pid")) {
		char *end;
		long p;

		errno = 0;
		p = strtol(val, &end, 10);
		if (errno || *end || end == val || p <= 0 || p > 0x3fffffff) {
			snprintf(err, len, "invalid pid '%s'", val);
			return -EINVAL;
		}
		r->pid = (pid_t)p;
	} else if (!strcmp(key, "exe") || !strcmp(key, "cmdline") || !strcmp(key, "cgroup")) {
		char *dst = !strcmp(key, "exe") ? r->exe : !strcmp(key, "cmdline") ? r->cmdline : r->cgroup;
		size_t cap = !strcmp(key, "exe") ? sizeof(r->exe) :
			     !strcmp(key, "cmdline") ? sizeof(r->cmdline) : sizeof(r->cgroup);

		if (!*val || ls_config_copy_str(dst, cap, val)) {
			snprintf(err, len, "%s pattern must be 1-%zu characters", key, cap - 1);
			return -EINVAL;
		}
	} else if (!strcmp(key, "mode")) {
		if (ls_config_parse_mode(val, &r->mode)) {
			snprintf(err, len, "unknown mode '%s' (light or precise)", val);
			return -EINVAL;
		}
	} else {
		snprintf(err, len, "unknown rule key '%s' (service, pid, exe, cmdline, cgroup, mode)", key);
		return -EINVAL;
	}
	return 0;
}

int ls_config_parse_rule(const char *spec, struct ls_rule *r, char *err, size_t len)
{
	char *copy = strdup(spec), *save = NULL, *item;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	snprintf(r->service, sizeof(r->service), "default");
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '='), e[200];

		if (!eq) {
			snprintf(err, len, "rule '%s': '%s' is not KEY=VALUE", spec, item);
			ret = -EINVAL;
			break;
		}
		*eq = '\0';
		if (ls_rule_set(r, item, eq + 1, e, sizeof(e))) {
			snprintf(err, len, "rule '%s': %s", spec, e);
			ret = -EINVAL;
			break;
		}
	}
	if (!ret && !ls_rule_has_matcher(r)) {
		snprintf(err, len, "rule '%s' matches nothing: it needs pid, exe, cmdline or cgroup", spec);
		ret = -EINVAL;
	}
	free(copy);
	return ret == -EINVAL ? one_line(err) : ret;
}

bool ls_rule_match(const struct ls_rule *r, pid_t pid, const char *exe, const char *cmdline,
		   const char *cgroup)
{
	if (r->pid && r->pid != pid)
		return false;
	if (r->exe[0] && (!exe[0] || fnmatch(r->exe, exe, 0)))
		return false;
	if (r->cmdline[0] && (!cmdline[0] || fnmatch(r->cmdline, cmdline, 0)))
		return false;
	if (r->cgroup[0] && (!cgroup[0] || fnmatch(r->cgroup, cgroup, 0)))
		return false;
	return true;
}
