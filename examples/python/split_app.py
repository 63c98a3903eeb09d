"""Known on-CPU and off-CPU time in slow callbacks, for checking the time
split of slow callbacks and busy periods (tests/test_it_split.c).

Every --every seconds one callback queued with call_soon either spins for
--ms milliseconds (all on CPU, as far as the scheduler lets it) or sleeps
in time.sleep for --ms milliseconds (blocked), alternately (spin first).
Each keeps its own measurement, and all are written to --log at the end (no
I/O inside a callback) as JSON lines: kind ("spin" or
"sleep"), start_ns (time.monotonic_ns, CLOCK_MONOTONIC), duration_ns
(time.perf_counter) and cpu_ns (time.thread_time_ns: the thread's own CPU
time, the truth for "on CPU") and wait_ns (its schedstat wait for a CPU
over about the same time). --uvloop runs it on uvloop (where each Handle
is a PyContext_Enter/Exit pair, not a Context.run). --wait-file starts the
rounds once that file exists; --rounds stops after that many callbacks.
"""
import argparse
import asyncio
import json
import os
import threading
import time

LOG = None
RECORDS = []


def wait_ns():
    """This thread's time runnable but not running, ns (schedstat)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        return int(f.read().split()[1])


def block(kind, seconds):
    w0 = wait_ns()
    t0_ns, t0, c0 = time.monotonic_ns(), time.perf_counter(), time.thread_time_ns()
    if kind == "sleep":
        time.sleep(seconds)
    else:
        end = t0 + seconds
        while time.perf_counter() < end:
            pass
    dur = int((time.perf_counter() - t0) * 1e9)
    cpu = time.thread_time_ns() - c0
    waited = wait_ns() - w0
    # Written at the end: no I/O inside the measured callbacks.
    RECORDS.append({"kind": kind, "start_ns": t0_ns, "duration_ns": dur, "cpu_ns": cpu,
                    "wait_ns": waited})


async def main(args):
    loop = asyncio.get_running_loop()
    print(f"pid {os.getpid()} loop {type(loop).__module__}.{type(loop).__name__}", flush=True)
    if args.wait_file:
        while not os.path.exists(args.wait_file):
            await asyncio.sleep(0.01)
    await asyncio.sleep(args.every)
    window0 = wait_ns()
    for i in range(args.rounds):
        loop.call_soon(block, "spin" if i % 2 == 0 else "sleep", args.ms / 1000)
        await asyncio.sleep(args.every)
    # What the loop thread waited for a CPU over the rounds, callbacks
    # included: the rest is waiting outside the callbacks' clocks, some of
    # it inside their busy periods (before a callback starts, after it ends).
    RECORDS.append({"kind": "window", "wait_ns": wait_ns() - window0})
    for r in RECORDS:
        LOG.write(json.dumps(r) + "\n")
    LOG.flush()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--log", required=True)
    p.add_argument("--ms", type=float, default=150)
    p.add_argument("--every", type=float, default=0.25)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--wait-file")
    p.add_argument("--uvloop", action="store_true")
    a = p.parse_args()
    LOG = open(a.log, "a")
    if a.uvloop:
        import uvloop
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main(a))
        finally:
            loop.close()
    else:
        asyncio.run(main(a))
