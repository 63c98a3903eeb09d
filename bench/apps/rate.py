"""Fixed-rate callbacks: one chain of callbacks, one loop iteration each,
paced to RATE callbacks per second (0: as fast as the loop goes, like
storm.py). Usage: rate.py RATE

asyncio cannot sleep less than 1 ms (epoll's timeout is in milliseconds), so
the pacing is by deficit: each callback runs, then, if the schedule
(t0 + done / RATE) says more are owed, queues the next with call_soon (so the
next callback is the next iteration, after a poll with timeout 0); otherwise
it arms a call_at for the next slot (the loop sleeps in epoll, ~1 ms) and the
owed callbacks then run as a call_soon chain, one per iteration. At most 5 ms
of backlog is kept, so a stall (an observer attaching) is not made up later at
full speed. When RATE is beyond what the loop can do, it runs flat out.

Protocol with bench/run: "pid N" on stdout; "go" on stdin starts the chain;
then each "mark" line on stdin is answered with
"mark COUNT MONOTONIC_NS" (callbacks run so far, CLOCK_MONOTONIC), read by a
reader on stdin in the same loop; EOF on stdin ends the app.
"""
import asyncio
import os
import sys
import time

import bench_common

MAX_BACKLOG_S = 0.005


async def main(rate):
    loop = asyncio.get_running_loop()
    done_fut = loop.create_future()
    clock = time.monotonic
    state = {"done": 0, "t0": clock(), "base": 0}

    def link():
        state["done"] += 1
        if not rate:
            loop.call_soon(link)
            return
        now = clock()
        owed = rate * (now - state["t0"]) - (state["done"] - state["base"])
        if owed >= 1:
            if owed > rate * MAX_BACKLOG_S:  # stalled: restart the schedule
                state["t0"], state["base"] = now, state["done"]
            loop.call_soon(link)
        else:
            loop.call_at(state["t0"] + (state["done"] - state["base"] + 1) / rate, link)

    buf = b""

    def on_stdin():
        nonlocal buf
        data = os.read(0, 4096)
        if not data:
            loop.remove_reader(0)
            if not done_fut.done():
                done_fut.set_result(None)
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip() == b"mark":
                print(f"mark {state['done']} {time.monotonic_ns()}", flush=True)

    loop.add_reader(0, on_stdin)
    state["t0"] = clock()
    loop.call_soon(link)
    await done_fut


if __name__ == "__main__":
    bench_common.announce()
    bench_common.wait_go()
    asyncio.run(main(float(sys.argv[1])))
