/* SPDX-License-Identifier: MIT */
/*
 * Prometheus exposition of loopscoped (agent/daemon/prom.c): the text format
 * (version 0.0.4) over HTTP (libmicrohttpd). Metric names, labels and the
 * fixed histogram bucket bounds are documented in docs/PROMETHEUS.md.
 */
#ifndef LOOPSCOPE_PROM_H
#define LOOPSCOPE_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "loopscope/hist.h"
#include "loopscope/monitor.h"

/* Bucket upper bounds ("le") of every loopscope histogram, in ns, ascending;
 * +Inf follows. Fixed so that series from many hosts aggregate. */
#define LS_PROM_NBUCKETS 17
extern const uint64_t ls_prom_bounds_ns[LS_PROM_NBUCKETS];

/* Cumulative counts of h at each bound of ls_prom_bounds_ns (counts[i] =
 * values <= bound i), from the log-linear slots: a slot wholly below a
 * bound counts, and the one slot a bound falls inside counts when its
 * midpoint is <= the bound. So a value within half a slot width (at
 * most 1/32 of the bound) of a bound may be counted on the other side of
 * it; values farther away never are. *total gets the count (+Inf and _count). */
void ls_prom_hist_buckets(const struct ls_hist *h, uint64_t counts[LS_PROM_NBUCKETS],
			  uint64_t *total);

/* A label value as the text format wants it (exposition format spec):
 * backslash, double quote and newline escaped, and valid UTF-8 (Prometheus
 * rejects the whole page otherwise): each byte that does not start a valid
 * character becomes U+FFFD. */
void ls_prom_label_value(FILE *f, const char *v);

/* Write the exposition of everything m monitors to f (holds m's lock
 * meanwhile). Returns 0 or -EIO when writing failed. */
int ls_prom_write(struct ls_mon *m, FILE *f);

struct ls_prom_server;

/* Serve GET /metrics (and a pointer to it at /) on host:port in a thread
 * of libmicrohttpd's. host is an IPv4 address, "localhost" or "*" (all
 * addresses). m may be NULL: /metrics answers 503 until ls_prom_set_mon
 * (the port is claimed before the engine loads). 0 and *out; -EADDRINUSE the port is taken; -EADDRNOTAVAIL
 * host is not an address of this machine; -EINVAL host unparsable; other
 * -errno from socket/bind/listen; -ENOMEM. err gets one line. */
int ls_prom_start(struct ls_mon *m, const char *host, int port, struct ls_prom_server **out,
		  char *err, size_t len);

void ls_prom_set_mon(struct ls_prom_server *s, struct ls_mon *m);

/* The port actually bound (useful with port 0 in tests). */
int ls_prom_port(const struct ls_prom_server *s);

/* Stop serving and free. NULL is fine. */
void ls_prom_stop(struct ls_prom_server *s);

#endif /* LOOPSCOPE_PROM_H */
