# SPDX-License-Identifier: MIT
"""it_flight's app: an asyncio loop that blocks once, 300 ms, at a known
time, and logs it with its own clock (CLOCK_MONOTONIC, the daemon's).

Usage: flight_app.py --log FILE --before S --after S
Prints "pid N" first; writes "block START_NS END_NS TAIL_WAIT_NS HEAD_WAIT_NS" to FILE
after the block, in a later step: the block's busy period ends before the
file is written (a period of 621 ms for a 333 ms block was seen at load
16, with a dd loop writing to the disk). TAIL_WAIT_NS: the thread's schedstat wait for a CPU from the block's
end to that later step (the busy period's tail, outside the app's clock);
HEAD_WAIT_NS: its wait from the sleep before the block to START_NS (it
holds the busy period's head, before the app's clock: 40 ms more than
the app's measure was seen at load 22).
"""
import argparse
import asyncio
import os
import threading
import time


def wait_ns():
    """This thread's time runnable but not running, ns (schedstat)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
        return int(f.read().split()[1])


def flight_culprit():
    time.sleep(0.3)


async def main(args):
    w0 = wait_ns()
    await asyncio.sleep(args.before)
    t0 = time.monotonic_ns()
    head = wait_ns() - w0
    flight_culprit()
    t1 = time.monotonic_ns()
    w1 = wait_ns()
    await asyncio.sleep(0)  # a poll (zero timeout) ends the busy period
    tail = wait_ns() - w1
    with open(args.log, "w") as f:
        f.write("block %d %d %d %d\n" % (t0, t1, tail, head))
    # Keep the loop turning (short sleeps) so windows keep coming.
    end = time.monotonic() + args.after
    while time.monotonic() < end:
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    p.add_argument("--before", type=float, default=2.0)
    p.add_argument("--after", type=float, default=30.0)
    a = p.parse_args()
    print("pid %d" % os.getpid(), flush=True)
    asyncio.run(main(a))
