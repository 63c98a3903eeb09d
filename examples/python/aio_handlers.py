"""An aiohttp service with two handlers that block its loop in different
code, under the one framework wrapper (RequestHandler._handle_request):

  /report  encodes a large document with json.dumps for about --block
           seconds (on CPU; the innermost Python frames are the standard
           library's json module)
  /db      calls aio_helpers.slow_query(), which sleeps --block seconds
           (blocked in clock_nanosleep)

A client thread (urllib: no callback on the loop) requests them in turn,
--rounds times each (--only NAME: that one only), once --wait-file exists (a test creates it when
loopscope is attached), then the app exits. Every request logs, to --log,
one JSON line with the handler's own measurement:
  {"name": "report", "function": "report", "file": "/abs/aio_handlers.py",
   "line": 40, "start_ns": N, "duration_ns": N}
"line" is the line the handler's time goes to: report's json.dumps call,
slow_query's time.sleep (in aio_helpers.py; /db also logs "caller_file" and
"caller_line", its own call of slow_query). start_ns is CLOCK_MONOTONIC,
duration_ns from time.perf_counter. --helpers-dir DIR imports aio_helpers
from DIR (a copy outside the app's folder). """
import argparse
import inspect
import json
import os
import socket
import threading
import time
import urllib.request

from aiohttp import web

aio_helpers = None  # imported in __main__, from --helpers-dir when given

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = None
LOG = None


def line_of(func, marker):
    lines, first = inspect.getsourcelines(func)
    for i, text in enumerate(lines):
        if marker in text:
            return first + i
    raise ValueError(marker)


def log(name, function, file, line, began, caller=None):
    duration_ns = int((time.perf_counter() - began[1]) * 1e9)
    rec = {"name": name, "function": function, "file": file, "line": line,
           "start_ns": began[0], "duration_ns": duration_ns}
    if caller:
        rec["caller_file"], rec["caller_line"] = caller
    LOG.write(json.dumps(rec) + "\n")
    LOG.flush()


DOC = {"rows": [{"id": i, "name": "row %d" % i, "tags": ["a", "b", "c"], "v": i * 0.5}
                for i in range(2000)]}


async def report(request):
    began = (time.monotonic_ns(), time.perf_counter())
    until = time.perf_counter() + ARGS.block
    while time.perf_counter() < until:
        json.dumps(DOC)  # REPORT_LINE
    log("report", "report", os.path.abspath(__file__), line_of(report, "# REPORT_LINE"), began)
    return web.Response(text="ok")


async def db(request):
    began = (time.monotonic_ns(), time.perf_counter())
    aio_helpers.slow_query(ARGS.block)  # DB_CALL
    log("db", "slow_query", os.path.abspath(aio_helpers.__file__),
        line_of(aio_helpers.slow_query, "# QUERY_LINE"), began,
        caller=(os.path.abspath(__file__), line_of(db, "# DB_CALL")))
    return web.Response(text="ok")


def client(port, loop, app_runner_done):
    while ARGS.wait_file and not os.path.exists(ARGS.wait_file):
        time.sleep(0.02)
    for _ in range(ARGS.rounds):
        for path in ("/report", "/db"):
            if ARGS.only and path != "/" + ARGS.only:
                continue
            urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=30).read()
            time.sleep(0.05)
    loop.call_soon_threadsafe(app_runner_done.set)


async def main():
    import asyncio
    app = web.Application()
    app.router.add_get("/report", report)
    app.router.add_get("/db", db)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    site = web.SockSite(runner, sock)
    await site.start()
    done = asyncio.Event()
    print("pid %d" % os.getpid(), flush=True)
    threading.Thread(target=client, args=(port, asyncio.get_running_loop(), done),
                     daemon=True).start()
    await done.wait()
    await runner.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--block", type=float, default=0.15)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--log", default="/dev/null")
    p.add_argument("--wait-file")
    p.add_argument("--only", choices=("report", "db"))
    p.add_argument("--helpers-dir")
    ARGS = p.parse_args()
    import sys
    sys.path.insert(0, ARGS.helpers_dir or HERE)
    import aio_helpers
    LOG = open(ARGS.log, "a")
    import asyncio
    asyncio.run(main())
