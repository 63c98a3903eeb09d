"""An asyncio app with a known slow callback: every --every seconds a plain
call_soon callback blocks the loop in time.sleep(--sleep). A timer ticks every
10 ms meanwhile, so the loop has iterations and lag to measure.

Each blocking callback is logged to --log as a JSON line with its own
measurement: start on CLOCK_MONOTONIC (time.monotonic_ns, the clock loopscope
reports) and duration from time.perf_counter:
  {"name": "blocking_sleep", "start_ns": N, "duration_ns": N}
"""
import argparse
import asyncio
import json
import os
import time


def blocking_sleep(seconds, log):
    start_ns = time.monotonic_ns()
    t0 = time.perf_counter()
    time.sleep(seconds)  # the culprit: blocks the whole loop
    duration_ns = int((time.perf_counter() - t0) * 1e9)
    log.write(json.dumps({"name": "blocking_sleep", "start_ns": start_ns,
                          "duration_ns": duration_ns}) + "\n")
    log.flush()


async def main(args):
    loop = asyncio.get_running_loop()
    with open(args.log, "a") as log:
        print(f"pid {os.getpid()}", flush=True)
        deadline = loop.time() + args.duration
        next_block = loop.time() + args.every

        def tick():
            if loop.time() < deadline:
                loop.call_later(0.010, tick)

        tick()
        while loop.time() < deadline:
            await asyncio.sleep(max(0.0, next_block - loop.time()))
            if loop.time() >= deadline:
                break
            loop.call_soon(blocking_sleep, args.sleep, log)
            next_block += args.every


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--log", required=True)
    p.add_argument("--every", type=float, default=1.0)
    p.add_argument("--sleep", type=float, default=0.2)
    p.add_argument("--duration", type=float, default=4.0)
    asyncio.run(main(p.parse_args()))
