"""Timer-heavy: K call_later timers alive at once, each re-arming itself with
a delay of 0-5 ms (a fixed pseudo-random sequence), until M timers have fired.
The loop is saturated (demand far above capacity), so it runs many due timers
per poll. Prints ns per timer fire (perf_counter).  Usage: timers.py K M"""
import asyncio
import random
import sys
import time

import bench_common


async def main(k, m):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    rng = random.Random(1)
    delays = [rng.random() * 0.005 for _ in range(4096)]
    fired = 0

    def fire(i):
        nonlocal fired
        fired += 1
        if fired == m:
            done.set_result(None)
        elif fired < m:
            loop.call_later(delays[(i + fired) & 4095], fire, i)

    t0 = time.perf_counter()
    for i in range(k):
        loop.call_later(delays[i & 4095], fire, i)
    await done
    dt = time.perf_counter() - t0
    bench_common.result(timers=k, fires=m, wall_s=dt, ns_per_fire=dt / m * 1e9)


if __name__ == "__main__":
    bench_common.announce()
    bench_common.wait_go()
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
