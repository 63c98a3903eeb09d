"""An asyncio app whose tasks wait in a known tree, and whose innermost task
blocks the loop with time.sleep() every --period seconds for --block seconds
(defaults 0.3 and 0.15):

    task "Task-1" (main)            asyncio.run's task
      awaits task "handler-7" (handler)
        awaits task "fetch-42" (Fetcher.fetch)   <- blocks the loop
    task "idle-3" (idle)            awaits nothing of the chain

So each slow busy period's await chain is
    task "fetch-42" (Fetcher.fetch) <- awaited by task "handler-7" (handler)
    <- task "Task-1" (main)
which `python3 -m asyncio pstree PID` (CPython 3.14+) shows as the path
from the root to fetch-42.

Prints "pid N" first; with --log FILE, one JSON line per block:
  {"start_ns": N, "duration_ns": N}   (CLOCK_MONOTONIC, perf_counter)
With --wait-file F the blocks start once F exists.
"""
import argparse
import asyncio
import json
import os
import time


class Fetcher:
    def __init__(self, args):
        self.args = args

    async def fetch(self):
        while not (self.args.wait_file is None or os.path.exists(self.args.wait_file)):
            await asyncio.sleep(0.01)
        while True:
            await asyncio.sleep(self.args.period)
            start, t0 = time.monotonic_ns(), time.perf_counter()
            time.sleep(self.args.block)
            took = time.perf_counter() - t0
            if self.args.log:
                with open(self.args.log, "a") as f:
                    f.write(json.dumps({"start_ns": start,
                                        "duration_ns": int(took * 1e9)}) + "\n")


async def handler(args):
    await asyncio.create_task(Fetcher(args).fetch(), name="fetch-42")


async def idle():
    await asyncio.sleep(3600)


async def main(args):
    asyncio.create_task(idle(), name="idle-3")
    h = asyncio.create_task(handler(args), name="handler-7")
    print("pid", os.getpid(), flush=True)
    await h


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--period", type=float, default=0.3)
    p.add_argument("--block", type=float, default=0.15)
    p.add_argument("--log")
    p.add_argument("--wait-file")
    asyncio.run(main(p.parse_args()))
