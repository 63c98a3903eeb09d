# SPDX-License-Identifier: MIT
"""it_flight's app: an asyncio loop that blocks once, 300 ms, at a known
time, and logs it with its own clock (CLOCK_MONOTONIC, the daemon's).

Usage: flight_app.py --log FILE --before S --after S
Prints "pid N" first; writes "block START_NS END_NS" to FILE after the block.
"""
import argparse
import asyncio
import os
import time


def flight_culprit():
    time.sleep(0.3)


async def main(args):
    await asyncio.sleep(args.before)
    t0 = time.monotonic_ns()
    flight_culprit()
    t1 = time.monotonic_ns()
    with open(args.log, "w") as f:
        f.write("block %d %d\n" % (t0, t1))
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
