// SPDX-License-Identifier: MIT
/* Reading a BPF hash map whole: batch lookups, else one key at a time. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "maps.h"

struct dump {
	size_t key_size, value_size;
	char *keys, *values;
	size_t n, cap;
};

/* Room for at least `room` more entries than d->n. */
static int reserve(struct dump *d, size_t room)
{
	size_t cap = d->cap ? d->cap : 32;
	char *k, *v;

	while (cap - d->n < room)
		cap *= 2;
	if (cap == d->cap)
		return 0;
	k = realloc(d->keys, cap * d->key_size);
	if (!k)
		return -ENOMEM;
	d->keys = k;
	v = realloc(d->values, cap * d->value_size);
	if (!v)
		return -ENOMEM;
	d->values = v;
	d->cap = cap;
	return 0;
}

/* 0 when done, -EOPNOTSUPP when the kernel has no batch lookup for this map
 * (nothing read: iterate instead), another -errno on error. */
static int dump_batch(int fd, struct dump *d)
{
	uint64_t in = 0, out = 0; /* a hash map's batch token: a bucket index */
	size_t room = 1;
	bool first = true;
	int err;

	for (;;) {
		__u32 count;

		err = reserve(d, room);
		if (err)
			return err;
		count = (__u32)(d->cap - d->n);
		err = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, d->keys + d->n * d->key_size,
					   d->values + d->n * d->value_size, &count, NULL);
		err = err ? -errno : 0;
		if (err == -ENOSPC) {
			/* One bucket holds more entries than there is room
			 * for (none was copied): the same bucket again, with
			 * twice the room. */
			in = out;
			first = false;
			room = (d->cap - d->n) * 2;
			continue;
		}
		if (err && err != -ENOENT)
			return first && (err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP) ?
				       -EOPNOTSUPP : err;
		d->n += count;
		if (err == -ENOENT)
			return 0; /* the last buckets were read */
		in = out;
		first = false;
		room = 1;
	}
}

static int dump_iterate(int fd, struct dump *d)
{
	char *cur = malloc(d->key_size), *next = malloc(d->key_size);
	bool first = true;
	int err = 0;

	if (!cur || !next) {
		err = -ENOMEM;
		goto out;
	}
	while (bpf_map_get_next_key(fd, first ? NULL : cur, next) == 0) {
		first = false;
		memcpy(cur, next, d->key_size);
		err = reserve(d, 1);
		if (err)
			break;
		memcpy(d->keys + d->n * d->key_size, cur, d->key_size);
		if (bpf_map_lookup_elem(fd, cur, d->values + d->n * d->value_size) == 0)
			d->n++;
	}
out:
	free(cur);
	free(next);
	return err;
}

int ls_map_dump(int fd, size_t key_size, size_t value_size, void **keys, void **values, size_t *n)
{
	struct dump d = { .key_size = key_size, .value_size = value_size };
	int err = dump_batch(fd, &d);

	if (err == -EOPNOTSUPP) {
		d.n = 0;
		err = dump_iterate(fd, &d);
	}
	if (err) {
		free(d.keys);
		free(d.values);
		return err;
	}
	*keys = d.keys;
	*values = d.values;
	*n = d.n;
	return 0;
}

int ls_map_dump_as(int fd, size_t key_size, size_t value_size, size_t out_size,
		   ls_map_conv_fn conv, void **out, size_t *n)
{
	char *keys, *values, *v;
	size_t len;
	int err = ls_map_dump(fd, key_size, value_size, (void **)&keys, (void **)&values, &len);

	if (err)
		return err;
	v = malloc((len ? len : 1) * out_size);
	for (size_t i = 0; v && i < len; i++)
		conv(keys + i * key_size, values + i * value_size, v + i * out_size);
	free(keys);
	free(values);
	if (!v)
		return -ENOMEM;
	*out = v;
	*n = len;
	return 0;
}

/* One key at a time into one buffer each (an entry deleted meanwhile is
 * skipped). */
static int walk_iterate(int fd, size_t key_size, size_t value_size, ls_map_walk_fn fn, void *ctx)
{
	char *cur = malloc(key_size), *next = malloc(key_size), *val = malloc(value_size);
	bool first = true;
	int err = 0;

	if (!cur || !next || !val) {
		err = -ENOMEM;
		goto out;
	}
	while (bpf_map_get_next_key(fd, first ? NULL : cur, next) == 0) {
		first = false;
		memcpy(cur, next, key_size);
		if (bpf_map_lookup_elem(fd, cur, val) == 0)
			fn(cur, val, ctx);
	}
out:
	free(cur);
	free(next);
	free(val);
	return err;
}

int ls_map_walk(int fd, size_t key_size, size_t value_size, ls_map_walk_fn fn, void *ctx)
{
	struct dump d = { .key_size = key_size, .value_size = value_size };
	uint64_t in = 0, out = 0; /* a hash map's batch token: a bucket index */
	size_t room = 64;
	bool first = true;
	int err;

	for (;;) {
		__u32 count;

		d.n = 0;
		err = reserve(&d, room);
		if (err)
			break;
		count = (__u32)d.cap;
		err = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, d.keys, d.values, &count,
					   NULL);
		err = err ? -errno : 0;
		if (err == -ENOSPC) {
			/* One bucket holds more entries than the buffer: the
			 * same bucket again, with twice the room. */
			in = out;
			first = false;
			room = d.cap * 2;
			continue;
		}
		if (err && err != -ENOENT) {
			if (first && (err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP)) {
				free(d.keys);
				free(d.values);
				return walk_iterate(fd, key_size, value_size, fn, ctx);
			}
			break;
		}
		for (__u32 i = 0; i < count; i++)
			fn(d.keys + i * key_size, d.values + i * value_size, ctx);
		if (err == -ENOENT) {
			err = 0; /* the last buckets were read */
			break;
		}
		in = out;
		first = false;
		room = 64;
	}
	free(d.keys);
	free(d.values);
	return err;
}
