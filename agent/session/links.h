/* SPDX-License-Identifier: MIT */
/*
 * Detaching many BPF links at once (agent/session/links.c), for every
 * session of this folder. Each link's close waits in the kernel for its own
 * grace period (a tracepoint's or a uprobe's unregister synchronizes with
 * the programs running on it); on a loaded machine that took 0.1-0.35 s a
 * link here (load ~18, 2 CPUs), 2-3 s for a precise session's dozen links,
 * one after the other. Closed from several threads, they wait together.
 */
#ifndef LS_SESSION_LINKS_H
#define LS_SESSION_LINKS_H

#include <stddef.h>

struct bpf_link;

/* Destroy *links[0..n-1] (bpf_link__destroy; NULL entries skipped) and set
 * each to NULL, closing up to 16 at a time from threads of their own; when a
 * thread cannot be started, the rest are closed in the caller. Returns once
 * every link is gone. Never fails. */
void ls_links_destroy(struct bpf_link **links[], size_t n);

#endif /* LS_SESSION_LINKS_H */
