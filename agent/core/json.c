// SPDX-License-Identifier: MIT
/* JSON fields as every loopscope output writes them. */
#include "loopscope/json.h"

void ls_json_add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

void ls_json_add_i64(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}
