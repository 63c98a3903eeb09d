"""Callback storm: one call_soon chain, each callback queues itself again, so
the loop polls (with timeout 0) once per callback. Prints ns per callback,
timed by the app with perf_counter.  Usage: storm.py N [--repeat]

--repeat (bench/run's cost section): the loop stays up, idle in epoll
between storms; each "go" line on stdin runs one storm and answers its
result line; EOF ends it."""
import asyncio
import os
import sys
import time

import bench_common


async def main(n):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count < n:
            loop.call_soon(cb)
        else:
            done.set_result(None)

    t0 = time.perf_counter()
    loop.call_soon(cb)
    await done
    dt = time.perf_counter() - t0
    bench_common.result(n=n, wall_s=dt, ns_per_cb=dt / n * 1e9)


async def repeat(n):
    loop = asyncio.get_running_loop()
    eof = loop.create_future()
    lines = asyncio.Queue()
    buf = b""

    def on_stdin():
        nonlocal buf
        data = os.read(0, 4096)
        if not data:
            loop.remove_reader(0)
            eof.set_result(None)
            return
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.put_nowait(line)

    loop.add_reader(0, on_stdin)
    while True:
        get = asyncio.ensure_future(lines.get())
        await asyncio.wait([get, eof], return_when=asyncio.FIRST_COMPLETED)
        if not get.done():
            get.cancel()
            return
        if get.result().strip() == b"go":
            await main(n)


if __name__ == "__main__":
    bench_common.announce()
    if "--repeat" in sys.argv[2:]:
        asyncio.run(repeat(int(sys.argv[1])))
    else:
        bench_common.wait_go()
        asyncio.run(main(int(sys.argv[1])))
