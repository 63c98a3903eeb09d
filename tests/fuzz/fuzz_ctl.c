// SPDX-License-Identifier: MIT
/*
 * fuzz_ctl: the control socket's requests (JSON lines from any root client,
 * or from `loopscope top` in-process), as the server handles them: each
 * line parsed by json-c and answered by ls_ctl_handle, against a stub
 * engine (tests/fuzz/stub_monitor.c: two targets, slow events, attach and
 * detach that only check their arguments), so no BPF is needed.
 *
 * Input: request lines separated by '\n'. Properties: every answer is a
 * JSON object with a boolean "ok", an error is one line, and the answer
 * serializes to one line; the engine-less daemon ("starting") answers too.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "loopscope/ctl.h"

struct ls_mon *fuzz_stub_monitor(void);

static void answer(struct ls_mon *m, json_object *req)
{
	json_object *resp = ls_ctl_handle(m, req), *ok, *err;
	const char *text;

	FUZZ_CHECK(resp && json_object_is_type(resp, json_type_object));
	FUZZ_CHECK(json_object_object_get_ex(resp, "ok", &ok) &&
		   json_object_is_type(ok, json_type_boolean));
	if (!json_object_get_boolean(ok)) {
		FUZZ_CHECK(json_object_object_get_ex(resp, "error", &err) &&
			   json_object_is_type(err, json_type_string));
		FUZZ_CHECK(!strchr(json_object_get_string(err), '\n'));
	}
	text = json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PLAIN);
	FUZZ_CHECK(text && !strchr(text, '\n'));
	json_object_put(resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_mon *m = fuzz_stub_monitor();
	char *buf = malloc(size + 1), *line, *nl;

	FUZZ_CHECK(buf);
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (line = buf; line; line = nl ? nl + 1 : NULL) {
		json_object *req;

		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		req = json_tokener_parse(line);
		if (!req)
			continue; /* the server answers "not JSON" itself */
		answer(m, req);
		answer(NULL, req);
		json_object_put(req);
	}
	free(buf);
	return 0;
}
