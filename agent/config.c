// SPDX-License-Identifier: MIT
/* loopscoped's config file (libconfig, which reports syntax errors with
 * their line) and the flag forms of the same settings. */
#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/config.h"
#include "loopscope/duration.h"

void ls_config_defaults(struct ls_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen, sizeof(c->listen), "%s", LS_CFG_DEFAULT_LISTEN);
	snprintf(c->socket_path, sizeof(c->socket_path), "%s", LS_CFG_DEFAULT_SOCKET);
	c->threshold_ns = 100000000ULL;
	c->interval_ns = 1000000000ULL;
	c->grace_ns = 30000000000ULL;
	c->scan_ns = 10000000000ULL;
	c->max_targets = 512;
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
		return -EINVAL; /* the HTTP server binds IPv4 only (agent/prom.c) */
	*port = (int)p;
	return 0;
}

static int copy_str(char *dst, size_t cap, const char *v)
{
	if (strlen(v) >= cap)
		return -ENAMETOOLONG;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static bool rule_has_matcher(const struct ls_rule *r)
{
	return r->pid || r->exe[0] || r->cmdline[0] || r->cgroup[0];
}

/* One key=value of a rule, from a flag or the file. */
static int rule_set(struct ls_rule *r, const char *key, const char *val, char *err, size_t len)
{
	if (!strcmp(key, "service")) {
		if (!*val || copy_str(r->service, sizeof(r->service), val)) {
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

		if (!*val || copy_str(dst, cap, val)) {
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
		if (rule_set(r, item, eq + 1, e, sizeof(e))) {
			snprintf(err, len, "rule '%s': %s", spec, e);
			ret = -EINVAL;
			break;
		}
	}
	if (!ret && !rule_has_matcher(r)) {
		snprintf(err, len, "rule '%s' matches nothing: it needs pid, exe, cmdline or cgroup", spec);
		ret = -EINVAL;
	}
	free(copy);
	return ret;
}

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
		if (rule_set(r, key, val, e, sizeof(e)))
			return fail(err, len, path, (int)config_setting_source_line(s), "rule %d: %s",
				    idx + 1, e);
	}
	if (!rule_has_matcher(r))
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
			    "%s: invalid duration (a string such as \"500us\", \"100ms\", \"2s\"%s)",
			    config_setting_name(s), min >= LS_CFG_MIN_PERIOD_NS ? "; at least 10ms" : "");
	*ns = x;
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

		if (!strcmp(key, "listen") || !strcmp(key, "socket") || !strcmp(key, "btf")) {
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
				else if (copy_str(c->listen, sizeof(c->listen), v))
					ret = fail(err, len, path, line, "listen: too long");
			} else if (copy_str(!strcmp(key, "socket") ? c->socket_path : c->btf_path,
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
		} else if (!strcmp(key, "max_targets")) {
			if (config_setting_type(s) != CONFIG_TYPE_INT || config_setting_get_int(s) < 1 ||
			    config_setting_get_int(s) > 1024)
				ret = fail(err, len, path, line, "max_targets must be an integer 1-1024");
			else
				c->max_targets = config_setting_get_int(s);
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
				   "scan, max_targets, btf, rules)", key);
		}
	}
out:
	config_destroy(&cfg);
	fclose(f);
	return ret;
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
