/* SPDX-License-Identifier: MIT */
/*
 * The monitoring engine of loopscoped (agent/engine/monitor.c, precise.c,
 * events.c, windows.c): rules, process
 * discovery (exec/fork/exit events from bpf/discover.bpf.c plus /proc
 * scans), per-target state, light or precise mode per target, windows and
 * cumulative histograms for the exporters (agent/daemon/prom.c, agent/engine/ctl.c).
 *
 * Threads: ls_mon_poll and the functions that change targets are called
 * from one thread (the daemon's main loop). Other threads (the HTTP server,
 * the control socket) read the state through the accessors below while
 * holding ls_mon_lock; the engine takes the same lock whenever it changes
 * that state. All times are CLOCK_MONOTONIC ns.
 */
#ifndef LOOPSCOPE_MONITOR_H
#define LOOPSCOPE_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loopscope/config.h"
#include "loopscope/loopscope.h"

/* Exit codes of loopscoped beyond enum ls_exit (README, "loopscoped"). */
enum ls_mon_exit {
	LS_EXIT_CONFIG = 10,      /* config file unreadable or invalid, bad rule flag */
	LS_EXIT_LISTEN = 11,      /* the Prometheus address cannot be bound (port in use) */
	LS_EXIT_SOCKET = 12,      /* the control socket cannot be created (another daemon) */
};

/* Recent slow events kept for the control socket and `loopscope top`. */
#define LS_MON_SLOW_KEPT 256

/* The last window (cfg.interval_ns) of one loop thread, for top/status
 * and the utilization gauge. */
struct ls_mon_window {
	uint64_t window_ns;
	double iterations_per_s;
	double utilization;       /* 0..1; -1 when nothing was seen */
	uint64_t busy_p99_ns, busy_max_ns;
	uint64_t lag_p99_ns, lag_max_ns, lag_count;
	uint64_t delay_p99_ns;    /* ls_stats_delay_percentile */
	uint64_t busy_now_ns;     /* busy period in progress at the window's end */
	uint64_t slow;            /* slow busy periods that ended in the window */
};

struct ls_mon_thread {
	uint32_t tid;
	char name[16];
	bool has_stats;               /* stats is a copy from the session */
	struct ls_thread_view stats;  /* cumulative since the target was added */
	uint64_t stats_ns;            /* when stats was copied */
	uint64_t slow_callbacks;      /* precise mode: slow callback events of this thread */
	struct ls_mon_window win;
	uint64_t seen_gen;            /* engine-private: the last tick that saw it */
};

struct ls_py_offsets;

struct ls_mon_target {
	pid_t pid;                 /* host pid namespace */
	pid_t ns_pid;              /* in its own pid namespace (== pid outside containers) */
	char comm[16];
	char service[64];
	char exe[256];             /* as the target sees it */
	enum ls_mode mode;         /* asked for by its rule */
	bool precise;              /* precise mode is active */
	int py_major, py_minor;    /* 0 when not (yet) resolved as CPython */
	struct ls_py_offsets *py_off; /* its layouts (a copy of struct ls_py_target.off),
				       * owned; NULL until resolved */
	char note[400];            /* why precise mode is not active, or "" */
	bool manual;               /* attached through the control socket or -p */
	int rule;                  /* index of the matching rule; -1 manual */
	uint64_t attached_ns;
	uint64_t seen_ns;          /* its exec (or fork) event; 0 when found by a /proc scan or by hand */
	uint64_t exited_ns;        /* 0 while alive; series dropped at exited_ns + grace */
	struct ls_hist callbacks;  /* precise mode: every callback's duration, cumulative
				    * (deltas of the session's snapshots; never decreases) */
	bool ever_precise;         /* precise mode was active once: callbacks and the
				    * threads' slow_callbacks are exported from then on */
	struct ls_mon_thread *threads;
	size_t nthreads;
	/* Its use of the kernel's thread table (ls_loop_thread_counts), as of
	 * the last tick: threads not tracked (over the quota) and exited
	 * threads pruned (their series are dropped with them). */
	uint64_t threads_untracked, threads_pruned;
	/* engine-private */
	uint64_t next_resolve_ns;
	int resolve_tries;
	bool precise_queued;       /* a set-up job is queued or running */
	uint64_t next_version_ns;  /* light mode: when to look for its CPython version again */
	int version_tries;         /* light mode: lookups done (RESOLVE_TRIES at most) */
	bool version_queued;       /* light mode: a lookup is queued or running */
	struct ls_hist *cb_last;   /* the session's figures at the last snapshot */
	uint64_t gen;              /* bumped at exec and mode change: a set-up job
				    * started before is stale */
	uint64_t py_runtime_addr;  /* _PyRuntime in the target, 0 until resolved */
	bool stacks_pending;       /* resolved: its Python stacks are to be set up
				    * (by the engine's thread, ls_mon_stacks_step) */
	bool stacks_on;            /* its stacks are walked */
	struct ls_flight *flight;  /* the flight recorder's ring; NULL off or not yet */
};

enum ls_mon_slow_kind { LS_MON_SLOW_BUSY = 1, LS_MON_SLOW_CALLBACK = 2 };

/* A Python frame of a slow event; function "" when there is none. */
struct ls_mon_frame {
	char function[256];        /* co_qualname (co_name before 3.11) */
	char file[256];            /* co_filename as the target has it */
	int line;                  /* the line it was on (its first line when unknown) */
};

struct ls_mon_slow {
	uint64_t seq;              /* 1, 2, ...: ask for events after a seq */
	enum ls_mon_slow_kind kind;
	uint32_t pid, tid;
	char service[64];
	char comm[16];
	uint64_t start_ns, duration_ns;
	char what[320];            /* callback name, or where a busy period's time went */
	/* From the Python stacks taken in the event (CPython targets whose
	 * stacks can be walked; loopscope/slowstack.h): the innermost frame
	 * of its culprit (heaviest) stack, and its application frame
	 * (loopscope/appframe.h: the innermost one of the user's code, under
	 * the target's working directory). Empty when no stack was taken. */
	struct ls_mon_frame culprit;
	struct ls_mon_frame app;
};

/* One line for the operator ("pid 4242 (python3, service api): attached,
 * light mode"); the daemon writes it to stderr (the journal). */
typedef void (*ls_mon_log_fn)(const char *line, void *ctx);

struct ls_mon;

/* Check the system (ls_sys_check), load the loop and discovery BPF objects
 * (and the precise-mode one when a rule asks for it), scan /proc once and
 * attach every process a rule of cfg matches. cfg is copied. 0 and *out;
 * or -EPERM / -ENOTSUP / -ENOENT from ls_sys_check or -errno from libbpf,
 * with one line in err (len bytes). Nothing stays attached on error. */
int ls_mon_open(const struct ls_config *cfg, ls_mon_log_fn log, void *log_ctx,
		struct ls_mon **out, char *err, size_t len);

/* Wait up to timeout_ms for events and act on them: attach processes a
 * rule matches at exec (or fork of a target), detach exited ones, cut a
 * window every interval, drop exited targets after the grace period, scan
 * /proc every scan period. 0, or a negative errno from the ring buffers
 * (-EINTR: a signal; callers just loop). */
int ls_mon_poll(struct ls_mon *m, int timeout_ms);

/* Apply a new configuration (SIGHUP): rules, threshold, interval, grace,
 * scan, max_targets. Targets that still match keep their histograms;
 * targets no rule matches any more are detached (series kept for the grace
 * period); manual ones stay. listen, socket and btf need a restart (a line
 * says so when they changed). 0 or -ENOMEM. */
int ls_mon_reload(struct ls_mon *m, const struct ls_config *cfg);

/* Attach pid by hand (control socket): 0; -ESRCH no such process;
 * -EEXIST already a target; -E2BIG max_targets reached; -EINVAL pid is
 * the daemon itself; another -errno from the BPF map. err gets one line. */
int ls_mon_attach(struct ls_mon *m, pid_t pid, const char *service, enum ls_mode mode,
		  char *err, size_t len);

/* Detach pid now (its series are dropped at once): 0 or -ENOENT. */
int ls_mon_detach(struct ls_mon *m, pid_t pid);

/* Detach everything and free everything. NULL is fine. */
void ls_mon_close(struct ls_mon *m);

/* ---- read access (hold the lock) ---------------------------------------- */

void ls_mon_lock(struct ls_mon *m);
void ls_mon_unlock(struct ls_mon *m);

/* Targets, alive and in their grace period, in attach order. */
size_t ls_mon_ntargets(const struct ls_mon *m);
const struct ls_mon_target *ls_mon_target_at(const struct ls_mon *m, size_t i);

/* Slow events kept (at most LS_MON_SLOW_KEPT), oldest first; *n set. */
const struct ls_mon_slow *ls_mon_slow_events(const struct ls_mon *m, size_t *n);

/* Events the ring buffers could not take (loop, precise, discovery). */
uint64_t ls_mon_lost_events(const struct ls_mon *m);
/* Off-CPU episodes of loop threads whose switch-out was not seen, since the
 * engine started (ls_loop_offcpu_unseen): periods whose blocked/runnable
 * read low. */
uint64_t ls_mon_offcpu_unseen(const struct ls_mon *m);
/* Callback names dropped from the bounded name cache to make room
 * (LS_PYNAME_CACHE_CAP entries) since start; names of processes that went
 * are forgotten without counting. Call with m locked. */
uint64_t ls_mon_name_evictions(const struct ls_mon *m);
/* Callback names cached now (at most LS_PYNAME_CACHE_CAP). Call with m
 * locked. */
size_t ls_mon_names_cached(const struct ls_mon *m);
/* The kernel's thread table, all targets since start (struct
 * ls_loop_table_counts: untracked, pruned, table_full, quota). Call with m
 * locked. */
struct ls_loop_table_counts;
void ls_mon_thread_table(const struct ls_mon *m, struct ls_loop_table_counts *out);
/* Processes attached since start (each exec of one counts again). */
uint64_t ls_mon_attached_total(const struct ls_mon *m);
/* The configuration in force. */
const struct ls_config *ls_mon_config(const struct ls_mon *m);
/* When the last window was cut. */
uint64_t ls_mon_window_end_ns(const struct ls_mon *m);

/* ---- the flight recorder (agent/engine/flight.c) -------------------------- */

struct ls_mon_flight_stats {
	bool on;                    /* flight_dir configured */
	uint64_t bytes;             /* held now, every target's ring */
	uint64_t bytes_max_target;  /* held now by the largest ring */
	uint64_t bytes_peak_target; /* the most one ring ever held (<= cap_bytes) */
	uint64_t cap_bytes;         /* flight_bytes */
	uint64_t dumps_written, dumps_dropped; /* dropped: could not be written */
	uint64_t blocks_dropped;    /* out of a ring: older than flight_seconds, or no room */
	uint64_t files_rotated;     /* dumps removed (flight_max_files, flight_max_bytes) */
	uint64_t put_errors;        /* records not kept (out of memory) */
};

/* The flight recorder's figures now. Call with m locked. */
void ls_mon_flight_stats(const struct ls_mon *m, struct ls_mon_flight_stats *s);

/* Write pid's ring now (`loopscope dump PID`): the last flight_seconds up
 * to now, to a new file in flight_dir (rotation applies). Call from the
 * ls_mon_poll thread, without the lock. 0 and the file's path in msg (len
 * bytes); or, with one line in msg: -ENOTSUP the recorder is off, -ENOENT
 * pid is not a target, -ENODATA nothing recorded yet (before its first
 * window), another -errno from creating or writing the file (counted as a
 * dump dropped). */
int ls_mon_flight_dump(struct ls_mon *m, pid_t pid, char *msg, size_t len);

#endif /* LOOPSCOPE_MONITOR_H */
