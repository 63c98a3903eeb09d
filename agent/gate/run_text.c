// SPDX-License-Identifier: MIT
/* `loopscope run` for people and CI logs: GitHub Actions annotations and
 * the text summary. */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loopscope/duration.h"
#include "loopscope/gate.h"
#include "loopscope/loopscope.h"
#include "loopscope/run.h"
#include "report.h"

/* ---- GitHub Actions annotations ---------------------------------------- */

static void gh_escape(FILE *f, const char *s, bool property)
{
	for (; *s; s++) {
		if (*s == '%')
			fputs("%25", f);
		else if (*s == '\r')
			fputs("%0D", f);
		else if (*s == '\n')
			fputs("%0A", f);
		else if (property && *s == ':')
			fputs("%3A", f);
		else if (property && *s == ',')
			fputs("%2C", f);
		else
			fputc(*s, f);
	}
}

/* GitHub matches annotations by path relative to the repository: strip
 * base ($GITHUB_WORKSPACE, else the current directory) off absolute paths. */
static const char *repo_relative(const char *file, const char *base)
{
	size_t n = base ? strlen(base) : 0;

	while (n > 1 && base[n - 1] == '/')
		n--;
	if (file[0] == '/' && n > 1 && strncmp(file, base, n) == 0 && file[n] == '/' && file[n + 1])
		return file + n + 1;
	return file;
}

void ls_run_print_annotations(const struct ls_run_result *r, FILE *f)
{
	char head[700], pn[600], line[16], cwd[4096];
	const char *base = getenv("GITHUB_WORKSPACE");

	if (!base || !*base)
		base = getcwd(cwd, sizeof(cwd));

	if (ls_gate_slow_on(r)) {
		for (int i = 0; i < ls_report_nslow(r); i++) {
			const struct ls_run_slow *s = &r->slow[i];

			if (!ls_gate_slow_counts(r, s))
				continue;
			/* The blocking line when known: the application frame. */
			const char *file = s->app_file[0] ? FIELD(s->app_file) : FIELD(s->file);
			int at = s->app_file[0] ? s->app_line : s->line;

			fputs(r->slow_gate_failed ? "::error " : "::warning ", f);
			if (file[0]) {
				fputs("file=", f);
				gh_escape(f, repo_relative(file, base), true);
				if (at > 0) {
					snprintf(line, sizeof(line), "%d", at);
					fputs(",line=", f);
					gh_escape(f, line, true);
				}
				fputc(',', f);
			}
			fputs("title=", f);
			gh_escape(f, s->kind == LS_RUN_SLOW_BUSY ? "loopscope busy period"
								 : "loopscope slow callback",
				  true);
			fputs("::", f);
			ls_report_slow_headline(s, head, sizeof(head));
			ls_report_pid_note(r, s->pid, pn, sizeof(pn));
			gh_escape(f, head, false);
			if (s->test[0]) {
				gh_escape(f, " in test ", false);
				gh_escape(f, FIELD(s->test), false);
			}
			fputc(' ', f);
			gh_escape(f, pn, false);
			fputc('\n', f);
		}
	}
	if (r->fail_on_lag_p99_ns > 0 && r->lag_gate_failed) {
		for (int i = 0; i < ls_report_nprocs(r); i++) {
			char msg[1024];

			if (!ls_gate_lag_violates(r, &r->procs[i]))
				continue;
			ls_report_lag_message(r, &r->procs[i], msg, sizeof(msg));
			fputs("::error title=", f);
			gh_escape(f, "loopscope loop lag", true);
			fputs("::", f);
			gh_escape(f, msg, false);
			fputc('\n', f);
		}
	}
	fflush(f);
}

/* ---- text summary ------------------------------------------------------ */

static void exit_reason(const struct ls_run_result *r, char *buf, size_t len)
{
	bool gate = r->slow_gate_failed || r->lag_gate_failed;
	const char *which = r->slow_gate_failed && r->lag_gate_failed ? "the slow and lag gates"
			    : r->slow_gate_failed			 ? "the slow gate"
								 : "the lag gate";

	if (r->exit_code == LS_RUN_EXIT_ERROR)
		snprintf(buf, len, "loopscope error");
	else if (r->cmd_signal > 0 && r->exit_code == 128 + r->cmd_signal)
		snprintf(buf, len, "the command was killed by signal %d (%s)%s%s", r->cmd_signal,
			 strsignal(r->cmd_signal), gate ? "; also failed: " : "", gate ? which : "");
	else if (r->exit_code == LS_RUN_EXIT_NOT_FOUND && r->cmd_exit == LS_RUN_EXIT_NOT_FOUND)
		snprintf(buf, len, "the command was not found or could not run");
	else if (r->cmd_exit > 0 && r->exit_code == r->cmd_exit)
		snprintf(buf, len, "the command failed%s%s", gate ? "; also failed: " : "",
			 gate ? which : "");
	else if (gate && r->exit_code == LS_RUN_EXIT_GATE)
		snprintf(buf, len, "%s failed", which);
	else if (r->exit_code == 0)
		snprintf(buf, len, "the command succeeded and no gate failed");
	else
		snprintf(buf, len, "the command's exit code");
}

/* s on one line: \n and \r shown as the two characters "\\n", "\\r". */
static void put_one_line(FILE *f, const char *s)
{
	for (; *s; s++)
		if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '\r')
			fputs("\\r", f);
		else
			fputc(*s, f);
}

void ls_run_print_summary(const struct ls_run_result *r, FILE *f)
{
	char d[16], g[32], m[2048], why[256], cwd[4096];
	const char *base = getcwd(cwd, sizeof(cwd));

	fprintf(f, "loopscope run: %s\n", FIELD(r->cmd));
	if (r->cmd_signal > 0)
		fprintf(f, "  killed by signal %d (%s) after %s\n", r->cmd_signal,
			strsignal(r->cmd_signal), ls_duration_format(ls_report_duration_ns(r), d, sizeof(d)));
	else
		fprintf(f, "  exited with %d after %s\n", r->cmd_exit, ls_duration_format(ls_report_duration_ns(r), d, sizeof(d)));

	/* The processes with an event loop; the others (a pyenv shim's bash
	 * helpers, ...) only counted. */
	int nloop = 0;

	for (int i = 0; i < ls_report_nprocs(r); i++)
		nloop += r->procs[i].loop_threads > 0;
	if (nloop == ls_report_nprocs(r))
		fprintf(f, "processes (%d):\n", nloop);
	else if (nloop)
		fprintf(f, "processes (%d): %d with an event loop, listed; %d without one\n",
			ls_report_nprocs(r), nloop, ls_report_nprocs(r) - nloop);
	else
		fprintf(f, "processes (%d): none with an event loop\n", ls_report_nprocs(r));
	for (int i = 0; i < ls_report_nprocs(r); i++) {
		const struct ls_run_process *p = &r->procs[i];

		if (p->loop_threads <= 0)
			continue;

		fprintf(f, "  pid %d (parent %d): %s\n", (int)p->pid, (int)p->ppid, FIELD(p->cmdline));
		if (p->python[0])
			fprintf(f, "    CPython %s, %s", FIELD(p->python),
				p->precise ? "precise mode" : "epoll level");
		else
			fprintf(f, "    %s", p->precise ? "precise mode" : "epoll level");
		fprintf(f, ", %d loop thread%s", p->loop_threads, p->loop_threads == 1 ? "" : "s");
		if (p->lag_p99_ns)
			fprintf(f, ", lag p99 %s (thread %u)%s", ls_duration_format(p->lag_p99_ns, d, sizeof(d)),
				p->lag_p99_tid, ls_gate_lag_violates(r, p) ? " ABOVE GATE" : "");
		fputc('\n', f);
	}

	if (ls_report_nslow(r) == 0 && r->slow_not_kept <= 0)
		fprintf(f, "slow callbacks: none\n");
	else
		fprintf(f, "slow callbacks and busy periods (%d):\n", ls_report_nslow(r));
	uint64_t *durs = malloc(((size_t)ls_report_nslow(r) + 1) * sizeof(*durs)), cut = 0;
	int shown = 0;

	for (int i = 0; durs && i < ls_report_nslow(r); i++)
		durs[i] = r->slow[i].duration_ns;
	if (durs)
		cut = ls_stats_kth_longest(durs, (size_t)ls_report_nslow(r), LS_TEXT_SLOW_MAX);
	free(durs);
	for (int i = 0; i < ls_report_nslow(r); i++) {
		const struct ls_run_slow *s = &r->slow[i];

		if (s->duration_ns < cut || shown == LS_TEXT_SLOW_MAX)
			continue; /* the longest; the JSON and JUnit reports list all */
		shown++;
		fprintf(f, "  %9s  ", ls_duration_format(s->duration_ns, d, sizeof(d)));
		if (s->kind == LS_RUN_SLOW_BUSY && strncmp(s->name, "busy period", 11) != 0)
			fputs("busy period: ", f);
		put_one_line(f, FIELD(s->name));
		if (s->app_file[0]) {
			const char *af = FIELD(s->app_file), *ab = strrchr(af, '/');

			fprintf(f, " \u2192 ");
			put_one_line(f, FIELD(s->app_function));
			fputc(' ', f);
			put_one_line(f, ab ? ab + 1 : af);
			fprintf(f, ":%d", s->app_line);
		}
		fputc('\n', f);
		fputs("             ", f);
		/* for the person in the directory CMD ran in: relative to it */
		if (s->file[0] && s->line > 0)
			fprintf(f, "%s:%d, ", repo_relative(FIELD(s->file), base), s->line);
		else if (s->file[0])
			fprintf(f, "%s, ", repo_relative(FIELD(s->file), base));
		fprintf(f, "pid %d thread %d", (int)s->pid, (int)s->tid);
		if (s->test[0])
			fprintf(f, ", test %s", FIELD(s->test));
		if (s->allowed)
			fputs(" (allowed)", f);
		fputc('\n', f);
		if (s->why[0]) {
			fputs("             ", f);
			put_one_line(f, FIELD(s->why));
			fputc('\n', f);
		}
	}
	if (shown < ls_report_nslow(r))
		fprintf(f, "  (the %d longest shown; %d shorter ones: --json-out lists every one)\n",
			shown, ls_report_nslow(r) - shown);
	if (r->slow_not_kept > 0)
		fprintf(f, "  ... %ld more not kept\n", r->slow_not_kept);
	if (r->lost_events > 0)
		fprintf(f, "  %llu events lost (ring buffer full): counts may be low\n",
			(unsigned long long)r->lost_events);

	if (!ls_gate_slow_on(r) && r->fail_on_lag_p99_ns == 0) {
		fprintf(f, "gates: none\n");
	} else {
		fprintf(f, "gates:\n");
		if (r->fail_on_slow_ns > 0)
			fprintf(f, "  fail-on-slow %s: %s (%ld counted above %s%s)\n",
				ls_report_gate_dur(r->fail_on_slow_ns, g, sizeof(g)),
				r->slow_gate_failed ? "FAIL" : "PASS", r->slow_counted,
				ls_duration_format(r->fail_on_slow_ns, d, sizeof(d)),
				r->nallow > 0 ? ", allowed ones excluded" : "");
		if (r->max_slow >= 0)
			fprintf(f, "  max-slow %ld: %s (%ld counted)\n", r->max_slow,
				r->slow_gate_failed ? "FAIL" : "PASS", r->slow_counted);
		for (int i = 0; i < r->nallow && i < LS_RUN_MAX_ALLOW; i++)
			if (r->allow[i])
				fprintf(f, "  allow %s\n", r->allow[i]);
		if (r->fail_on_lag_p99_ns > 0) {
			fprintf(f, "  fail-on-lag-p99 %s: %s\n",
				ls_report_gate_dur(r->fail_on_lag_p99_ns, g, sizeof(g)),
				r->lag_gate_failed ? "FAIL" : "PASS");
			for (int i = 0; i < ls_report_nprocs(r); i++)
				if (ls_gate_lag_violates(r, &r->procs[i])) {
					ls_report_lag_message(r, &r->procs[i], m, sizeof(m));
					fprintf(f, "    %s\n", m);
				}
		}
	}
	exit_reason(r, why, sizeof(why));
	fprintf(f, "exit %d: %s\n", r->exit_code, why);
	fflush(f);
}
