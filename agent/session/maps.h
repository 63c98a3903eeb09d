/* SPDX-License-Identifier: MIT */
/* Reading a BPF hash map whole, for every session of this folder
 * (agent/session/maps.c). */
#ifndef LS_SESSION_MAPS_H
#define LS_SESSION_MAPS_H

#include <stddef.h>

/* Copy every entry of the hash map fd (key_size-byte keys, value_size-byte
 * values) into *keys and *values, two malloc'd arrays in the same order
 * (free() both), and their length into *n.
 * Batches of lookups (BPF_MAP_LOOKUP_BATCH, Linux 5.6+) when the kernel has
 * them, else one key at a time (an entry deleted meanwhile is skipped), as
 * libbpf-tools' map_helpers.c dump_hash. 0, or -ENOMEM, or a negative errno
 * of the batch lookup other than the "not supported" ones. */
int ls_map_dump(int fd, size_t key_size, size_t value_size, void **keys, void **values, size_t *n);

/* One entry (key, value) as the caller wants it, into out. */
typedef void (*ls_map_conv_fn)(const void *key, const void *value, void *out);

/* ls_map_dump, each entry converted by conv into an out_size-byte record:
 * *out a malloc'd array of *n of them (free() it). 0, or the errors of
 * ls_map_dump. */
int ls_map_dump_as(int fd, size_t key_size, size_t value_size, size_t out_size,
		   ls_map_conv_fn conv, void **out, size_t *n);

/* One entry (key, value) handed to an ls_map_walk caller; valid only
 * during the call. */
typedef void (*ls_map_walk_fn)(const void *key, const void *value, void *ctx);

/* Every entry of the hash map at fd through fn, read in batches of about
 * 64 (more only when one bucket holds more), else one key at a time: the
 * memory used does not grow with the map (#12 item 6). Entries added or
 * deleted meanwhile may be seen or not. 0, -ENOMEM, or a negative errno of
 * the batch lookup other than the "not supported" ones (entries before it
 * were handed to fn). */
int ls_map_walk(int fd, size_t key_size, size_t value_size, ls_map_walk_fn fn, void *ctx);

#endif /* LS_SESSION_MAPS_H */
