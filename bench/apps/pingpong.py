"""Context-switch probe: a pipe ping-pong run by an asyncio loop thread (the
monitored target) with a partner process (costprobe echo). Usage:
pingpong.py WFD RFD CHUNK

An idle service until told: a 10 ms call_later tick keeps the loop polling.
Each "go N" line on stdin runs N round trips (write a byte to WFD, read the
echo from RFD: two context switches of this thread when the partner shares
its CPU), CHUNK per callback, the chunks chained with call_soon so that the
loop polls between them and no busy period grows long enough to be sampled
for stacks; answers "result {"ns_per_rt": ..., "n": N}" (perf_counter over
the N round trips, polls between chunks included). EOF on stdin ends it.
"""
import asyncio
import json
import os
import statistics
import sys
import time

import bench_common


async def main(wfd, rfd, chunk):
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def tick():
        loop.call_later(0.01, tick)

    def run(n, left, t0, chunks):
        k = min(chunk, left)
        c0 = time.perf_counter()
        for _ in range(k):
            os.write(wfd, b"x")
            os.read(rfd, 1)
        chunks.append((time.perf_counter() - c0) / k)
        left -= k
        if left:
            loop.call_soon(run, n, left, t0, chunks)
            return
        dt = time.perf_counter() - t0
        print("result " + json.dumps({"ns_per_rt": statistics.median(chunks) * 1e9,
                                      "total_ns_per_rt": dt / n * 1e9, "n": n}), flush=True)

    buf = b""

    def on_stdin():
        nonlocal buf
        data = os.read(0, 4096)
        if not data:
            loop.remove_reader(0)
            done.set_result(None)
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            w = line.split()
            if len(w) == 2 and w[0] == b"go":
                loop.call_soon(run, int(w[1]), int(w[1]), time.perf_counter(), [])

    loop.add_reader(0, on_stdin)
    tick()
    await done


if __name__ == "__main__":
    bench_common.announce()
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
