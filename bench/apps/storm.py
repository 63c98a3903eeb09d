"""Callback storm: one call_soon chain, each callback queues itself again, so
the loop polls (with timeout 0) once per callback. Prints ns per callback,
timed by the app with perf_counter.  Usage: storm.py N"""
import asyncio
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


if __name__ == "__main__":
    bench_common.announce()
    bench_common.wait_go()
    asyncio.run(main(int(sys.argv[1])))
