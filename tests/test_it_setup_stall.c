// SPDX-License-Identifier: MIT
/*
 * Integration: a target that stalls whoever reads its interpreter (issue
 * #12 item 3). Its "libpython3.11.so" is mapped from a FUSE file system
 * served by a thread of the target itself, which answers every request but
 * READ: a read of the file's bytes waits uninterruptibly (fs/fuse/dev.c,
 * request_wait_answer) for as long as the target likes. Before the fix the
 * daemon's one set-up worker blocked in it for good: a later precise
 * target was never set up and SIGTERM no longer stopped the daemon (its
 * main thread joined the worker); `attach --mode precise` hung the same.
 *
 * Now resolution reads /proc/PID/mountinfo and does not open a file on
 * FUSE (one line saying so; light mode), and the worker abandons any job
 * running past 5 s (unit suite jobq). Bounds: the later target is in
 * precise mode within 15 s of its start (a set-up takes ~1 s here; 15 s
 * leaves room for the 5 s timeout and a loaded machine); SIGTERM stops the
 * daemon within 5 s (documented: 3 s; a poll of at most 100 ms, then at
 * most 2 s for a job in progress, then the BPF close); attach -d 2s ends
 * within 2 s + 5 s.
 *
 * The target answers its pending reads with EIO and unmounts on SIGTERM,
 * so nothing stays stuck after the test, on old code either.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loopscope/loopscope.h"
#include "daemon.h"
#include "pythons.h"
#include "spawn.h"

#define LOOPSCOPE LS_BINARY_DIR "/loopscope"
#define PY "/usr/bin/python3.11"

static const char stall_py[] =
	"import asyncio, ctypes, errno, os, struct, sys, threading\n"
	"# A process whose \"libpython3.11.so\" lives on a FUSE file system (served\n"
	"# by a thread of this process) that answers everything but READ: whoever\n"
	"# reads the file's bytes waits until this process dies.\n"
	"mnt = sys.argv[1]\n"
	"libc = ctypes.CDLL(None, use_errno=True)\n"
	"fd = os.open('/dev/fuse', os.O_RDWR)\n"
	"opts = ('fd=%d,rootmode=40000,user_id=0,group_id=0' % fd).encode()\n"
	"if libc.mount(b'lsstall', mnt.encode(), b'fuse', 0, opts):\n"
	"    print('mount failed', os.strerror(ctypes.get_errno()), flush=True)\n"
	"    sys.exit(1)\n"
	"NAME = b'libpython3.11.so'\n"
	"pending = []\n"
	"def attr(ino):\n"
	"    if ino == 1:\n"
	"        return struct.pack('<QQQQQQIIIIIIIIII', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0o40755, 2, 0, 0, 0, 4096, 0)\n"
	"    return struct.pack('<QQQQQQIIIIIIIIII', 2, 4 << 20, 8192, 0, 0, 0, 0, 0, 0, 0o100755, 1, 0, 0, 0, 4096, 0)\n"
	"def reply(unique, err=0, data=b''):\n"
	"    try:\n"
	"        os.write(fd, struct.pack('<IiQ', 16 + len(data), -err, unique) + data)\n"
	"    except OSError:\n"
	"        pass\n"
	"def serve():\n"
	"    while True:\n"
	"        try:\n"
	"            req = os.read(fd, 1 << 17)\n"
	"        except OSError as e:\n"
	"            if e.errno in (errno.EINTR, errno.EAGAIN):\n"
	"                continue\n"
	"            return\n"
	"        ln, op, unique, node = struct.unpack_from('<IIQQ', req)\n"
	"        body = req[40:]\n"
	"        if op == 26:    # INIT\n"
	"            reply(unique, 0, struct.pack('<IIIIHHIIHHII', 7, 31, 0, 0, 16, 12, 1 << 16, 1, 0, 0, 0, 0) + b'\\0' * 24)\n"
	"        elif op == 1:   # LOOKUP\n"
	"            if body.split(b'\\0')[0] == NAME and node == 1:\n"
	"                reply(unique, 0, struct.pack('<QQQQII', 2, 0, 3600, 3600, 0, 0) + attr(2))\n"
	"            else:\n"
	"                reply(unique, errno.ENOENT)\n"
	"        elif op == 3:   # GETATTR\n"
	"            reply(unique, 0, struct.pack('<QII', 3600, 0, 0) + attr(node))\n"
	"        elif op in (14, 27):  # OPEN, OPENDIR\n"
	"            reply(unique, 0, struct.pack('<QII', 1, 0, 0))\n"
	"        elif op == 15:  # READ: never answered (until SIGTERM)\n"
	"            pending.append(unique)\n"
	"        elif op in (2, 36, 38, 42):  # FORGET, INTERRUPT, DESTROY, BATCH_FORGET: no reply\n"
	"            pass\n"
	"        elif op in (18, 25, 29, 34):  # RELEASE, FLUSH, RELEASEDIR, ACCESS\n"
	"            reply(unique)\n"
	"        else:\n"
	"            reply(unique, errno.ENOSYS)\n"
	"threading.Thread(target=serve, daemon=True).start()\n"
	"import mmap\n"
	"f = os.open(os.path.join(mnt, NAME.decode()), os.O_RDONLY)\n"
	"m = mmap.mmap(f, 4096, prot=mmap.PROT_READ)   # mapped, never touched\n"
	"print('pid', os.getpid(), flush=True)\n"
	"def bye():\n"
	"    m.close()\n"
	"    os.close(f)  # its FLUSH answered while the server thread runs\n"
	"    for u in pending:\n"
	"        reply(u, errno.EIO)\n"
	"    libc.umount2(mnt.encode(), 2)\n"
	"    os._exit(0)\n"
	"async def main():\n"
	"    asyncio.get_running_loop().add_signal_handler(15, bye)\n"
	"    while True:\n"
	"        await asyncio.sleep(0.01)\n"
	"asyncio.run(main())\n"
;

static const char app_py[] =
	"import asyncio, os\n"
	"print('pid', os.getpid(), flush=True)\n"
	"async def main():\n"
	"    while True:\n"
	"        await asyncio.sleep(0.01)\n"
	"asyncio.run(main())\n";

struct scene {
	char dir[64], mnt[96], stall[96], app[96];
	pid_t target;
	char out[128], spid[32];
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* The stalling target, running; false (test skipped) without FUSE. */
static bool scene_start(struct scene *s)
{
	char line[256];

	if (access(PY, X_OK) || access("/dev/fuse", R_OK | W_OK)) {
		fprintf(stderr, "it_setup_stall: SKIP: no %s or no /dev/fuse\n", PY);
		return false;
	}
	snprintf(s->dir, sizeof(s->dir), "/tmp/ls-it-stall-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(s->dir));
	snprintf(s->mnt, sizeof(s->mnt), "%s/mnt", s->dir);
	snprintf(s->stall, sizeof(s->stall), "%s/stall.py", s->dir);
	snprintf(s->app, sizeof(s->app), "%s/app.py", s->dir);
	ck_assert_int_eq(mkdir(s->mnt, 0700), 0);
	write_file(s->stall, stall_py);
	write_file(s->app, app_py);
	char *argv[] = { PY, s->stall, s->mnt, NULL };

	ls_test_tmp(s->out, sizeof(s->out), "stall");
	s->target = ls_test_spawn(argv, s->out, NULL);
	ck_assert_int_gt(s->target, 0);
	if (ls_test_wait_line(s->out, "pid ", 10000, line, sizeof(line))) {
		char *text = ls_test_slurp(s->out);

		fprintf(stderr, "it_setup_stall: SKIP: the FUSE target did not start: %s\n",
			text ? text : "?");
		free(text);
		ls_test_kill(s->target);
		return false;
	}
	snprintf(s->spid, sizeof(s->spid), "%d", atoi(line + 4));
	return true;
}

static void scene_stop(struct scene *s)
{
	int st;

	kill(s->target, SIGTERM); /* answers its reads with EIO, unmounts */
	if (ls_test_wait(s->target, 5000, &st))
		ls_test_kill(s->target);
	unlink(s->out);
	unlink(s->stall);
	unlink(s->app);
	rmdir(s->mnt);
	rmdir(s->dir);
}

START_TEST(test_daemon_stalled_setup_does_not_block_later_targets)
{
	struct scene s;
	char sock[160], err[160], rule1[300], rule2[300], out[128], spid[32];
	pid_t d, a;
	int st = -1;

	if (!scene_start(&s))
		return;
	snprintf(sock, sizeof(sock), "%s/ctl.sock", s.dir);
	snprintf(err, sizeof(err), "%s/daemon.err", s.dir);
	snprintf(rule1, sizeof(rule1), "service=stall,cmdline=*%s/stall.py*,mode=precise", s.dir);
	snprintf(rule2, sizeof(rule2), "service=later,cmdline=*%s/app.py*,mode=precise", s.dir);
	{
		char *args[] = { "--rule", rule1, "--rule", rule2, "--listen", "none", "--socket", sock,
				 NULL };

		d = ls_test_start_daemon(LOOPSCOPED, args, err, 20000);
	}
	/* The stalling target is found by the scan at start; its set-up is
	 * the worker's first job. */
	ck_assert_int_eq(ls_test_wait_substr(err, "service stall): attached", 10000, NULL, 0), 0);
	{
		char *argv[] = { PY, s.app, NULL };

		a = ls_test_start_target(argv, out, sizeof(out), spid, sizeof(spid), 10000);
	}
	uint64_t t0 = ls_sys_now_ns();
	int got = ls_test_wait_substr(err, "service later): precise mode, CPython", 15000, NULL, 0);
	uint64_t t1 = ls_sys_now_ns();
	char *log = ls_test_slurp(err);

	fprintf(stderr, "it_setup_stall: daemon: later target in precise mode after %.0f ms: %s\n",
		(t1 - t0) / 1e6, got ? "NO" : "yes");
	ck_assert_msg(got == 0, "the later target was not set up; daemon log:\n%s", log ? log : "");
	ck_assert_msg(log && strstr(log, "FUSE"), "no word of the FUSE file; log:\n%s", log ? log : "");
	free(log);
	t0 = ls_sys_now_ns();
	kill(d, SIGTERM);
	got = ls_test_wait(d, 10000, &st);
	t1 = ls_sys_now_ns();
	fprintf(stderr, "it_setup_stall: daemon: SIGTERM to exit %.0f ms, status %d\n", (t1 - t0) / 1e6,
		st);
	ck_assert_msg(got == 0 && t1 - t0 < 5000000000ULL, "SIGTERM: the daemon took %.0f ms",
		      (t1 - t0) / 1e6);
	ck_assert_int_eq(st, 0);
	ls_test_kill(a);
	unlink(out);
	unlink(sock);
	unlink(err);
	scene_stop(&s);
}
END_TEST

START_TEST(test_cli_attach_precise_on_a_stalling_target_ends)
{
	struct scene s;
	struct ls_test_out o = { 0 };

	if (!scene_start(&s))
		return;
	char *argv[] = { LOOPSCOPE, "attach", "-p", s.spid, "--mode", "precise", "-d", "2s", "-q", NULL };
	uint64_t t0 = ls_sys_now_ns();
	int st = ls_test_run_capture(&o, argv, 20000);
	uint64_t took = ls_sys_now_ns() - t0;

	fprintf(stderr, "it_setup_stall: attach --mode precise -d 2s: exit %d after %.0f ms\n", st,
		took / 1e6);
	ck_assert_msg(st == 0, "exit %d; stderr: %s", st, o.stderr_text ? o.stderr_text : "");
	ck_assert_msg(took < 7000000000ULL, "attach -d 2s took %.0f ms", took / 1e6);
	ck_assert_msg(o.stderr_text && strstr(o.stderr_text, "FUSE"), "no word of FUSE: %s", o.stderr_text ? o.stderr_text : "");
	ck_assert_msg(o.stdout_text && strstr(o.stdout_text, "iterations"), "no loop figures: %s", o.stdout_text ? o.stdout_text : "");
	ls_test_out_free(&o);
	scene_stop(&s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("it_setup_stall");
	TCase *tc = tcase_create("stall");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_daemon_stalled_setup_does_not_block_later_targets);
	tcase_add_test(tc, test_cli_attach_precise_on_a_stalling_target_ends);
	suite_add_tcase(s, tc);
	return ls_test_run_suite(s);
}
