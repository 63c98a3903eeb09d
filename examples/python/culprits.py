"""An asyncio app whose loop is blocked by four known culprits, one after the
other, each for about --block seconds (default 0.15):

  sleep  a coroutine calls time.sleep()              (blocked: clock_nanosleep,
                                                      or select on 3.8-3.10)
  spin   a call_soon function spins in pure Python   (on CPU: --block of CPU
                                                      time, however long that takes)
  pipe   a coroutine reads a pipe that a thread        (blocked: read)
         writes to only --block after it starts
  lock   a call_soon function takes a threading.Lock (blocked: futex)
         that another thread holds for --block

Every culprit logs, to --log, one JSON line with its own measurement (all
written at the end, so that no write falls inside a busy period):
  {"name": "sleep", "function": "sleep_culprit", "line": 41,
   "lines": [41], "start_ns": N, "duration_ns": N, "on_cpu_ns": N,
   "wait_ns": N}
start_ns is CLOCK_MONOTONIC (the clock loopscope reports), duration_ns from
time.perf_counter, on_cpu_ns from time.thread_time (this thread's CPU time),
wait_ns from the kernel's schedstat of this thread (time runnable but
waiting for a CPU: /proc/self/task/TID/schedstat, second field),
"line" the line of the blocking call, "lines" every line the culprit may be
found on (a spin loop has two). A last line {"name": "window", "wait_ns": N}
gives the loop thread's schedstat wait over all the rounds. A timer ticks every 10 ms in between, so the
loop is otherwise healthy: busy periods far below 10 ms.

With --wait-file F the culprits start only once F exists (a test creates it
when loopscope is attached). --rounds N repeats the four N times; --only
NAME runs one of them; --depth N runs each N Python calls deep (nest()),
--via-c each of those calls through C (reduce(), so that 3.12+ puts a shim
frame between the Python ones); --threads N starts N idle threads first (the
loop thread's state is then the last of N+1 in the interpreter's list).
--linger S keeps the loop (and its timer) running S seconds after the log
is written, so that a test can end its sessions before the process exits.
"""
import argparse
import asyncio
import functools
import json
import os
import threading
import time

LINES = {}


def _mark(name, extra=0):
    """Record the line after the caller's, where its culprit is (and the
    extra lines after that one, for a culprit that spans lines)."""
    import sys
    first = sys._getframe(1).f_lineno + 1
    LINES[name] = list(range(first, first + 1 + extra))


def wait_ns():
    """This thread's time runnable but not running, ns (schedstat)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        return int(f.read().split()[1])


def begin():
    return time.monotonic_ns(), time.perf_counter(), time.thread_time(), wait_ns()


class Log:
    """Measurements kept in memory and written at the end (close): a write
    inside the loop's busy period would add the file system's time to the
    period, which the culprit's own clocks do not see (on a busy disk, tens
    of ms)."""
    def __init__(self, path):
        self.f = open(path, "a")
        self.lines = []

    def write(self, name, function, began):
        """Take the culprit's clocks now; the JSON is made at close: what
        runs after the clocks and before the loop polls again is in the
        busy period but not in the culprit's thread_time, and on this VM a
        thread is at times charged 10-28 ms of CPU time it did not run, which
        json.dumps here once took (3.14 beside two CPU hogs and a dd)."""
        ended = time.perf_counter(), time.thread_time(), wait_ns()
        self.lines.append((name, function, began, ended))

    def close(self, window_wait_ns):
        """Write every line, then one {"name": "window", "wait_ns": N}: what
        the loop thread waited for a CPU from the start of the rounds to
        their end (schedstat), culprits included."""
        for name, function, began, ended in self.lines:
            lines = LINES[name]
            self.f.write(json.dumps({"name": name, "function": function, "line": lines[0],
                                     "lines": lines, "start_ns": began[0],
                                     "duration_ns": int((ended[0] - began[1]) * 1e9),
                                     "on_cpu_ns": int((ended[1] - began[2]) * 1e9),
                                     "wait_ns": ended[2] - began[3]}) + "\n")
        self.f.write(json.dumps({"name": "window", "wait_ns": window_wait_ns}) + "\n")
        self.f.close()


async def sleep_culprit(log, block):
    began = begin()
    _mark("sleep")
    time.sleep(block)
    log.write("sleep", "sleep_culprit", began)


def spin_culprit(log, block):
    began = begin()
    x = 0
    _mark("spin", extra=1)
    while time.thread_time() - began[2] < block:
        x += 1
    log.write("spin", "spin_culprit", began)


class PipeWriter:
    """The pipe culprit's writer: a thread started before the culprit's busy
    period (starting one inside it waits for the new thread to run: beside
    two CPU hogs that wait, in Event.wait, outweighed the 150 ms read), which
    writes one byte --block seconds after go() is called."""
    def __init__(self, block):
        self.r, self.w = os.pipe()
        self.block = block
        self.go_event = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        self.go_event.wait()
        time.sleep(self.block)
        os.write(self.w, b"x")

    def go(self):
        self.go_event.set()

    def close(self):
        self.thread.join()
        os.close(self.r)
        os.close(self.w)


async def pipe_culprit(log, writer):
    began = begin()
    writer.go()
    _mark("pipe")
    os.read(writer.r, 1)
    log.write("pipe", "pipe_culprit", began)


def lock_culprit(log, block, lock, held):
    held.wait()
    began = begin()
    _mark("lock")
    lock.acquire()
    lock.release()
    log.write("lock", "lock_culprit", began)


def hold_lock(lock, held, block):
    with lock:
        held.set()
        time.sleep(block)


VIA_C = False


def nest(depth, fn, *args):
    """Call fn(*args) under depth more Python frames (via C: reduce())."""
    if depth <= 0:
        return fn(*args)
    if VIA_C:
        # reduce() is C, and lets StopIteration through (map would end).
        return functools.reduce(lambda _a, _b: nest(depth - 1, fn, *args), [0, 0])
    return nest(depth - 1, fn, *args)


async def nested(depth, coro_fn, *args):
    """Await coro_fn(*args) under depth more Python frames (the coroutine
    is driven by hand: each level is a plain call)."""
    coro = coro_fn(*args)
    try:
        nest(depth, coro.send, None)
    except StopIteration:
        pass


async def main(args):
    loop = asyncio.get_running_loop()
    log = Log(args.log)
    print(f"pid {os.getpid()}", flush=True)
    stop = False

    def tick():
        if not stop:
            loop.call_later(0.010, tick)

    tick()
    if args.wait_file:
        while not os.path.exists(args.wait_file):
            await asyncio.sleep(0.02)
    def want(name):
        return args.only in (None, name)

    d = args.depth
    window_wait = wait_ns()
    for _ in range(args.rounds):
        if want("sleep"):
            await asyncio.sleep(args.gap)
            await loop.create_task(nested(d, sleep_culprit, log, args.block))
        if want("spin"):
            await asyncio.sleep(args.gap)
            loop.call_soon(nest, d, spin_culprit, log, args.block)
        if want("pipe"):
            writer = PipeWriter(args.block)
            await asyncio.sleep(args.gap)
            await loop.create_task(nested(d, pipe_culprit, log, writer))
            writer.close()
        if want("lock"):
            await asyncio.sleep(args.gap)
            lock, held = threading.Lock(), threading.Event()
            holder = threading.Thread(target=hold_lock, args=(lock, held, args.block))
            holder.start()
            held.wait()
            loop.call_soon(nest, d, lock_culprit, log, args.block, lock, held)
            await asyncio.sleep(args.gap)
            holder.join()
    await asyncio.sleep(args.gap)
    log.close(wait_ns() - window_wait)
    await asyncio.sleep(args.linger)
    stop = True


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", required=True)
    p.add_argument("--block", type=float, default=0.15)
    p.add_argument("--gap", type=float, default=0.3)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--wait-file")
    p.add_argument("--only", choices=["sleep", "spin", "pipe", "lock"])
    p.add_argument("--depth", type=int, default=0)
    p.add_argument("--via-c", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--linger", type=float, default=0.0)
    a = p.parse_args()
    VIA_C = a.via_c
    idle = threading.Event()
    for _ in range(a.threads):
        threading.Thread(target=idle.wait, daemon=True).start()
    asyncio.run(main(a))
    idle.set()
