// SPDX-License-Identifier: MIT
/* Suite "ctl": the control socket's answers to requests it refuses before
 * asking the engine (agent/engine/ctl.c, ls_ctl_handle). The engine is
 * never touched on these paths, so an opaque non-NULL handle stands in for
 * it; the protocol against a real daemon is it_daemon's. */
#include <check.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/ctl.h"

static struct ls_mon *no_engine(void)
{
	static char opaque[64];

	return (struct ls_mon *)(void *)opaque;
}

/* The error of the answer to the request text req (asserting it is one). */
static char *error_of(const char *req_text)
{
	json_object *req = json_tokener_parse(req_text), *resp, *v;
	char *err;

	ck_assert_ptr_nonnull(req);
	resp = ls_ctl_handle(no_engine(), req);
	ck_assert(json_object_object_get_ex(resp, "ok", &v) && !json_object_get_boolean(v));
	ck_assert(json_object_object_get_ex(resp, "error", &v));
	err = strdup(json_object_get_string(v));
	json_object_put(resp);
	json_object_put(req);
	return err;
}

/* Issue #12 (fuzz_ctl): an unknown cmd is echoed in the error, which must
 * stay one line: a "\n" (or any control byte) in the client's string broke
 * it, and went to the terminal of whoever printed the error. */
START_TEST(test_unknown_cmd_error_is_one_line)
{
	static const char *reqs[] = {
		"{\"cmd\":\"\\n\"}", "{\"cmd\":\"a\\nb\\r\\u001b[2J\\u007f\"}", "{\"cmd\":\"reboot\"}",
	};

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		char *e = error_of(reqs[i]);

		ck_assert_msg(strstr(e, "unknown cmd '"), "%s", e);
		for (const char *p = e; *p; p++)
			ck_assert_msg((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte in '%s'", e);
		free(e);
	}
	{
		char *e = error_of("{\"cmd\":\"a\\nb\"}");

		ck_assert_str_eq(e, "unknown cmd 'a?b' (list, stats, slow, attach, detach, dump)");
		free(e);
	}
}
END_TEST

START_TEST(test_bad_requests)
{
	static const struct { const char *req, *want; } c[] = {
		{ "[1]", "expected a JSON object" },
		{ "{\"cmd\":1}", "expected a JSON object" },
		{ "{\"cmd\":\"attach\"}", "\"pid\" must be a positive integer" },
		{ "{\"cmd\":\"detach\",\"pid\":-1}", "\"pid\" must be a positive integer" },
		{ "{\"cmd\":\"attach\",\"pid\":1073741824}", "\"pid\" must be a positive integer" },
		{ "{\"cmd\":\"attach\",\"pid\":\"1\"}", "\"pid\" must be a positive integer" },
		{ "{\"cmd\":\"attach\",\"pid\":1,\"mode\":\"fast\"}", "\"mode\" must be" },
		{ "{\"cmd\":\"attach\",\"pid\":1,\"service\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
		  "\"service\" must be a string of at most 63" },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char *e = error_of(c[i].req);

		ck_assert_msg(strstr(e, c[i].want), "%s: '%s' lacks '%s'", c[i].req, e, c[i].want);
		free(e);
	}
}
END_TEST

static Suite *ctl_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("ctl");

	tcase_add_test(tc, test_unknown_cmd_error_is_one_line);
	tcase_add_test(tc, test_bad_requests);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ctl_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
