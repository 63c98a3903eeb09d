/* SPDX-License-Identifier: MIT */
/* JSON fields as every loopscope output writes them (agent/core/json.c). */
#ifndef LOOPSCOPE_JSON_H
#define LOOPSCOPE_JSON_H

#include <stdint.h>

#include <json-c/json.h>

/* Add field k to object o: an unsigned (counts, times in ns) or a signed
 * 64-bit integer. k is copied; an existing k is replaced. Out of memory,
 * the field is left out (json-c reports nothing more). */
void ls_json_add_u64(json_object *o, const char *k, uint64_t v);
void ls_json_add_i64(json_object *o, const char *k, int64_t v);

#endif /* LOOPSCOPE_JSON_H */
