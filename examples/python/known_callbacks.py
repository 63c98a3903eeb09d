"""An asyncio app whose slow callbacks are known: each kind asyncio runs
through Context.run, repeated every --every seconds:

- a Task whose coroutine blocks in time.sleep(0.15)      (Task step)
- a plain function queued with call_soon that spins 80 ms (Handle)
- a functools.partial queued with call_later, spins 60 ms (TimerHandle)
- a bound method queued with call_soon, sleeps 110 ms     (Handle)
- a Task subclass's coroutine that spins 70 ms             (Task step)
- a pure-Python Task (asyncio.tasks._PyTask)'s coroutine
  that spins 65 ms                                         (Task.__step)

Each logs its own measurement to --log (JSON lines, written at exit): kind,
qualname, file, first line of its def, start (time.monotonic_ns,
CLOCK_MONOTONIC), duration (time.perf_counter) and wait_ns (the thread's
schedstat wait for a CPU inside that duration); then {"kind": "window",
"wait_ns": N}, the thread's schedstat wait from main()'s start. With --debug, asyncio's own debug mode runs
with slow_callback_duration = --threshold and its "Executing ... took"
warnings go to --debug-log, for comparison with loopscope. --wait-file and
--rounds let a test start the work once it is attached, and stop it.
"""
import argparse
import asyncio
import functools
import json
import logging
import os
import threading
import time

RECORDS = []
WINDOW_WAIT = [None]
# The callback's wait for a CPU as the thread reads it at its stopwatch's
# start (inside it: what is measured between the two reads is inside the
# app's duration).
BEGAN_WAIT = [0]


def wait_ns():
    """This thread's time runnable but not running, ns (schedstat)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        return int(f.read().split()[1])


def record(kind, func, t0_ns, t0):
    # Only an append after the stopwatch: the log is written at exit, so the
    # callback's untimed tail stays a few us (what a tracer sees is the
    # whole callback).
    waited = wait_ns() - BEGAN_WAIT[0]
    RECORDS.append((time.perf_counter() - t0, kind, func, t0_ns, waited))


def began():
    BEGAN_WAIT[0] = wait_ns()


def write_log(path):
    with open(path, "a") as log:
        for seconds, kind, func, t0_ns, waited in RECORDS:
            code = func.__code__
            log.write(json.dumps({
                "kind": kind, "qualname": func.__qualname__,
                "file": code.co_filename, "line": code.co_firstlineno,
                "start_ns": t0_ns, "duration_ns": int(seconds * 1e9),
                "wait_ns": waited}) + "\n")
        if WINDOW_WAIT[0] is not None:
            log.write(json.dumps({"kind": "window",
                                  "wait_ns": wait_ns() - WINDOW_WAIT[0]}) + "\n")


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def blocking_coro():
    t0_ns, t0 = time.monotonic_ns(), time.perf_counter()
    began()
    time.sleep(0.15)
    record("task", blocking_coro, t0_ns, t0)


def spin_soon():
    t0_ns, t0 = time.monotonic_ns(), time.perf_counter()
    began()
    spin(0.08)
    record("function", spin_soon, t0_ns, t0)


def spin_partial(seconds):
    t0_ns, t0 = time.monotonic_ns(), time.perf_counter()
    began()
    spin(seconds)
    record("partial", spin_partial, t0_ns, t0)


class TracedTask(asyncio.Task):
    """A Task subclass, as frameworks define them: its steps are still the
    coroutine's."""


async def subclass_coro():
    t0_ns, t0 = time.monotonic_ns(), time.perf_counter()
    began()
    spin(0.07)
    record("task", subclass_coro, t0_ns, t0)


async def py_task_coro():
    t0_ns, t0 = time.monotonic_ns(), time.perf_counter()
    began()
    spin(0.065)
    record("task", py_task_coro, t0_ns, t0)


class Worker:
    def on_tick(self):
        t0_ns, t0 = time.monotonic_ns(), time.perf_counter()
        began()
        time.sleep(0.11)
        record("method", Worker.on_tick, t0_ns, t0)


async def main(args):
    WINDOW_WAIT[0] = wait_ns()
    loop = asyncio.get_running_loop()
    if args.debug:
        loop.set_debug(True)
        loop.slow_callback_duration = args.threshold
    print(f"pid {os.getpid()}", flush=True)
    worker = Worker()
    if args.wait_file:
        while not os.path.exists(args.wait_file):
            await asyncio.sleep(0.01)
    deadline = loop.time() + args.duration
    await asyncio.sleep(args.every)
    rounds = 0
    while loop.time() < deadline and (not args.rounds or rounds < args.rounds):
        rounds += 1
        loop.create_task(blocking_coro())
        await asyncio.sleep(0.3)
        loop.call_soon(spin_soon)
        await asyncio.sleep(0.3)
        loop.call_later(0.01, functools.partial(spin_partial, 0.06))
        await asyncio.sleep(0.3)
        loop.call_soon(worker.on_tick)
        await asyncio.sleep(0.3)
        TracedTask(subclass_coro())
        await asyncio.sleep(0.3)
        # The pure-Python Task, which asyncio uses when its C module is
        # missing: its steps are the bound method Task.__step.
        asyncio.tasks._PyTask(py_task_coro(), loop=loop)
        await asyncio.sleep(args.every)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--log", required=True)
    p.add_argument("--every", type=float, default=0.3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--debug", action="store_true")
    p.add_argument("--debug-log")
    p.add_argument("--threshold", type=float, default=0.05)
    p.add_argument("--rounds", type=int, default=0,
                   help="stop after this many rounds (0: run for --duration)")
    p.add_argument("--wait-file",
                   help="start the rounds once this file exists")
    a = p.parse_args()
    if a.debug:
        logging.basicConfig(filename=a.debug_log, level=logging.WARNING,
                            format="%(message)s")
    try:
        asyncio.run(main(a))
    finally:
        write_log(a.log)
