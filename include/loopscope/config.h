/* SPDX-License-Identifier: MIT */
/*
 * loopscoped's configuration (agent/daemon/config.c): the config file (libconfig
 * syntax, documented in docs/DAEMON.md) and the flags that say the same.
 * Which processes to monitor is a list of rules; a process is a target when
 * a rule matches it (the first matching rule gives its service label and
 * mode).
 */
#ifndef LOOPSCOPE_CONFIG_H
#define LOOPSCOPE_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LS_CFG_MAX_RULES 64
#define LS_CFG_DEFAULT_LISTEN "127.0.0.1:9466"
#define LS_CFG_DEFAULT_SOCKET "/run/loopscope/loopscoped.sock"
#define LS_CFG_DEFAULT_FILE "/etc/loopscope/loopscoped.conf"

enum ls_mode {
	LS_MODE_LIGHT = 0,   /* epoll tracepoints only */
	LS_MODE_PRECISE = 1, /* plus a uprobe per CPython callback */
};

/* A rule: every matcher that is set must match (AND); unset ones match
 * anything. Globs are fnmatch(3) patterns without flags ('*' crosses '/'). */
struct ls_rule {
	char service[64];   /* the `service` label of its targets; never empty */
	pid_t pid;          /* this pid only; 0: any */
	char exe[256];      /* glob on the executable path (/proc/PID/exe); "" any */
	char cmdline[512];  /* glob on the command line, arguments joined by spaces */
	char cgroup[256];   /* glob on the cgroup v2 path ("/system.slice/api.service") */
	enum ls_mode mode;
	int line;           /* line in the config file; 0 when from a flag */
};

struct ls_config {
	char listen[128];           /* "HOST:PORT" for Prometheus; "" disables HTTP */
	char socket_path[PATH_MAX]; /* control socket; "" disables it */
	uint64_t threshold_ns;      /* slow callback / busy period threshold */
	uint64_t interval_ns;       /* how often windows (utilization, top) are cut */
	uint64_t grace_ns;          /* an exited target's series stay this long */
	uint64_t scan_ns;           /* /proc scan period besides exec events */
	int max_targets;            /* processes monitored at once */
	int thread_quota;           /* threads of one target tracked at once (1..LS_MAX_THREADS) */
	bool stacks;                /* Python stacks of slow events (culprit and
				     * application frames); default true */
	char btf_path[PATH_MAX];    /* "" for the running kernel's */
	/* The flight recorder (agent/engine/flight.c, docs/DAEMON.md): off
	 * while flight_dir is "". */
	char flight_dir[PATH_MAX];  /* where dumps are written */
	uint64_t flight_seconds_ns; /* kept in memory per target (default 30 s) */
	uint64_t flight_bytes;      /* memory cap per target, compressed (default 4 MiB) */
	uint64_t flight_threshold_ns; /* a slow busy period this long dumps (default 1 s) */
	uint64_t flight_after_ns;   /* recorded after the trigger before writing (default 5 s) */
	int flight_max_files;       /* dumps kept in flight_dir (default 20) */
	uint64_t flight_max_bytes;  /* their total size (default 256 MiB) */
	struct ls_rule rules[LS_CFG_MAX_RULES];
	int nrules;
};

/* Defaults: listen LS_CFG_DEFAULT_LISTEN, socket LS_CFG_DEFAULT_SOCKET,
 * threshold 100 ms, interval 1 s, grace 30 s, scan 10 s, 512 targets,
 * thread quota LS_THREAD_QUOTA (512), stacks on, no rules; flight recorder
 * off (flight_dir ""), its limits as above. */
void ls_config_defaults(struct ls_config *c);

/* (agent/daemon/config_file.c, libconfig: loopscoped only.)
 * Read the config file at path into c (on top of what c holds: call
 * ls_config_defaults first; its rules are appended). 0; or -ENOENT/-EACCES
 * (cannot open), -EINVAL (syntax or a bad value), with one line for a
 * person in err (len bytes) naming the file and line:
 * "loopscoped.conf:12: rule 2: unknown mode 'fast' (light or precise)". */
/* Smallest interval and scan period: below, the engine would spin. */
#define LS_CFG_MIN_PERIOD_NS 10000000ULL

int ls_config_load(const char *path, struct ls_config *c, char *err, size_t len);

/* Bounds of the flight recorder's sizes (bytes): flight_bytes from
 * LS_CFG_FLIGHT_MIN_BYTES to LS_CFG_FLIGHT_MAX_BYTES, flight_max_bytes up
 * to LS_CFG_FLIGHT_MAX_TOTAL; flight_max_files 1 to LS_CFG_FLIGHT_MAX_FILES. */
#define LS_CFG_FLIGHT_MIN_BYTES (4ULL << 10)
#define LS_CFG_FLIGHT_MAX_BYTES (1ULL << 30)
#define LS_CFG_FLIGHT_MAX_TOTAL (1ULL << 40)
#define LS_CFG_FLIGHT_MAX_FILES 100000
/* Parse a size: decimal digits, then an optional unit (none or "B": bytes;
 * "K"/"KiB", "M"/"MiB", "G"/"GiB": powers of 1024), no sign, no spaces.
 * 0 and *bytes, or -EINVAL (empty, unknown unit, bad digits) or -ERANGE
 * (beyond UINT64_MAX: every multiplication is checked). */
int ls_config_parse_size(const char *s, uint64_t *bytes);
/* Parse a rule written as a flag, "service=api,exe=*python3*,mode=precise"
 * (keys: service pid exe cmdline cgroup mode; a value may not contain ','),
 * into r. 0 or -EINVAL with one line in err. service defaults to
 * "default"; at least one matcher (pid, exe, cmdline, cgroup) is needed. */
int ls_config_parse_rule(const char *spec, struct ls_rule *r, char *err, size_t len);

/* Split "HOST:PORT" (HOST an IPv4 address, "localhost" or "*"; PORT
 * 1-65535) into host (at least 64 bytes) and *port. 0 or -EINVAL (also
 * for a host name or an IPv6 address: the HTTP server binds IPv4). */
int ls_config_parse_listen(const char *s, char *host, size_t hostlen, int *port);

/* One key=value of a rule (keys as ls_config_parse_rule), from a flag or
 * the file, into r. 0 or -EINVAL with one line in err (len bytes). */
int ls_rule_set(struct ls_rule *r, const char *key, const char *val, char *err, size_t len);

/* Does r have a matcher (pid, exe, cmdline or cgroup)? */
bool ls_rule_has_matcher(const struct ls_rule *r);

/* Copy the string v into dst (cap bytes). 0, or -ENAMETOOLONG when it does
 * not fit (dst unchanged). */
int ls_config_copy_str(char *dst, size_t cap, const char *v);

/* "light" / "precise" -> mode; -EINVAL otherwise. */
int ls_config_parse_mode(const char *s, enum ls_mode *mode);
const char *ls_config_mode_name(enum ls_mode mode);

/* Does rule r match the process described by these fields? exe, cmdline
 * and cgroup may be "" when unreadable (a set matcher then fails). */
bool ls_rule_match(const struct ls_rule *r, pid_t pid, const char *exe, const char *cmdline,
		   const char *cgroup);

#endif /* LOOPSCOPE_CONFIG_H */
