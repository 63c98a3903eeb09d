"""A uvloop app whose slow callbacks are known (uvloop runs every Handle
through PyContext_Enter/PyContext_Exit, not Context.run), repeated every
--every seconds:

- a plain function queued with call_soon that spins 80 ms      (Handle)
- a Task whose coroutine blocks in time.sleep(0.12)             (Task step)

Each logs its own measurement to --log (JSON lines, all written at the end:
no file I/O inside a callback), as known_callbacks.py does: kind, qualname,
file, first line of its def, start (time.monotonic_ns, CLOCK_MONOTONIC),
duration (time.perf_counter) and wait_ns (the thread's schedstat wait for a
CPU over that duration); then {"kind": "window", "wait_ns": N}, the
thread's schedstat wait over all the rounds.
--wait-file and --rounds let a test start the work once it is attached, and
stop it. --eager (CPython 3.12+, asyncio's own loop, no uvloop) instead
creates, with asyncio.eager_task_factory, a Task whose first step blocks in
time.sleep(0.1) inside create_task; it logs as kind "eager".
"""
import argparse
import asyncio
import json
import os
import threading
import time

LOG = None
LINES = []


def wait_ns():
    """This thread's time runnable but not running, ns (schedstat)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        return int(f.read().split()[1])


def begin():
    return time.monotonic_ns(), time.perf_counter(), wait_ns()


def record(kind, func, began):
    # Kept in memory, written at the end: no file I/O inside a callback.
    duration_ns = int((time.perf_counter() - began[1]) * 1e9)
    code = func.__code__
    LINES.append(json.dumps({
        "kind": kind, "qualname": func.__qualname__, "file": code.co_filename,
        "line": code.co_firstlineno, "start_ns": began[0],
        "duration_ns": duration_ns, "wait_ns": wait_ns() - began[2]}))


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def spin_soon():
    began = begin()
    spin(0.08)
    record("function", spin_soon, began)


async def blocking_coro():
    began = begin()
    time.sleep(0.12)
    record("task", blocking_coro, began)


async def eager_coro():
    # The first step (up to the first real suspension) runs inside
    # create_task under eager_task_factory.
    began = begin()
    time.sleep(0.1)
    record("eager", eager_coro, began)
    await asyncio.sleep(0.01)


async def main(args):
    loop = asyncio.get_running_loop()
    if args.eager:
        loop.set_task_factory(asyncio.eager_task_factory)
    print(f"pid {os.getpid()} loop {type(loop).__module__}.{type(loop).__name__}", flush=True)
    if args.wait_file:
        while not os.path.exists(args.wait_file):
            await asyncio.sleep(0.01)
    deadline = loop.time() + args.duration
    window_wait = wait_ns()
    await asyncio.sleep(args.every)
    rounds = 0
    while loop.time() < deadline and (not args.rounds or rounds < args.rounds):
        rounds += 1
        if args.eager:
            await loop.create_task(eager_coro())
            await asyncio.sleep(args.every)
            continue
        loop.call_soon(spin_soon)
        await asyncio.sleep(0.3)
        await loop.create_task(blocking_coro())
        await asyncio.sleep(args.every)
    for line in LINES:
        LOG.write(line + "\n")
    LOG.write(json.dumps({"kind": "window", "wait_ns": wait_ns() - window_wait}) + "\n")
    LOG.flush()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--log", required=True)
    p.add_argument("--every", type=float, default=0.3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=0,
                   help="stop after this many rounds (0: run for --duration)")
    p.add_argument("--wait-file", help="start the rounds once this file exists")
    p.add_argument("--eager", action="store_true",
                   help="asyncio (3.12+) with eager_task_factory instead of uvloop")
    a = p.parse_args()
    LOG = open(a.log, "a")
    if a.eager:
        asyncio.run(main(a))
    else:
        import uvloop
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main(a))
        finally:
            loop.close()
