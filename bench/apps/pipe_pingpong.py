"""Context-switch cost of a monitored loop thread: a pipe ping-pong served by
an asyncio loop (add_reader), driven by a forked client that blocks on each
reply. Each round trip switches the loop thread out (epoll_wait blocks) and
back in. Prints the round trip (client's wall time) and the server's own CPU
per request (time.process_time of the serving process).  Usage: pipe_pingpong.py N

bench/bpfstats's pingpong workload; bench/run's ctxsw workload is
pingpong.py (an idle service with a partner process)."""
import asyncio
import os
import sys
import time

import bench_common


def client(n, w, r):
    os.read(r, 1)  # go
    t0 = time.perf_counter()
    for _ in range(n):
        os.write(w, b"x")
        os.read(r, 1)
    dt = time.perf_counter() - t0
    os.write(w, b"q" + str(dt).encode())
    os._exit(0)


async def serve(req_r, rep_w, n):
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_req():
        b = os.read(req_r, 64)
        if b[:1] == b"q":
            done.set_result(float(b[1:]))
            return
        os.write(rep_w, b"y")

    loop.add_reader(req_r, on_req)
    os.write(rep_w, b"g")
    c0 = time.process_time()
    wall = await done
    cpu = time.process_time() - c0
    loop.remove_reader(req_r)
    bench_common.result(n=n, rt_us=wall / n * 1e6, cpu_ns_per_req=cpu / n * 1e9)


def main():
    n = int(sys.argv[1])
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    if os.fork() == 0:
        client(n, req_w, rep_r)
    bench_common.announce()
    bench_common.wait_go()
    asyncio.run(serve(req_r, rep_w, n))


if __name__ == "__main__":
    main()
