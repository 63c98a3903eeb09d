// SPDX-License-Identifier: MIT
/* Presentation helpers shared by the commands: clock times, JSON lines. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "loopscope/loopscope.h"

char *cli_clock(int64_t mono_to_real_ns, uint64_t mono_ns, char *buf, size_t len)
{
	int64_t real = (int64_t)mono_ns + mono_to_real_ns;
	time_t sec = (time_t)(real / 1000000000LL);
	struct tm tm;

	localtime_r(&sec, &tm);
	snprintf(buf, len, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)((real / 1000000) % 1000));
	return buf;
}

void cli_print_json(json_object *o)
{
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
	json_object_put(o);
}

json_object *cli_hist_json(const struct ls_hist *h)
{
	json_object *o = json_object_new_object();

	ls_json_add_u64(o, "count", h->count);
	ls_json_add_u64(o, "sum_ns", h->sum);
	ls_json_add_u64(o, "p50_ns", ls_hist_percentile(h, 50));
	ls_json_add_u64(o, "p90_ns", ls_hist_percentile(h, 90));
	ls_json_add_u64(o, "p99_ns", ls_hist_percentile(h, 99));
	ls_json_add_u64(o, "p999_ns", ls_hist_percentile(h, 99.9));
	ls_json_add_u64(o, "max_ns", h->max);
	return o;
}

int cli_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_WARN && getenv("LOOPSCOPE_DEBUG"))
		return vfprintf(stderr, fmt, args);
	return 0;
}

int cli_parse_duration(const char *opt, const char *val, uint64_t *ns)
{
	uint64_t v;

	if (ls_duration_parse(val, &v) || v == 0) {
		fprintf(stderr, "loopscope: invalid duration '%s' for %s (examples: 500us, 100ms, 2s)\n",
			val, opt);
		return -EINVAL;
	}
	*ns = v;
	return 0;
}

void cli_print_chain(const struct ls_pytask_chain *c, const char *indent)
{
	char buf[2048];

	if (c && c->n)
		printf("%s%s\n", indent, ls_pytask_chain_text(c, buf, sizeof(buf)));
}
