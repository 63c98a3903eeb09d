"""Shared by the bench apps: the variant set up from the environment, and
the go/result protocol with bench/run.

BENCH_PATCH=1 wraps asyncio.events.Handle._run with a perf_counter timer and
logs callbacks slower than 100 ms, as aiodebug does (the "patch" variant).
PYTHONASYNCIODEBUG=1 (asyncio's own debug mode, slow_callback_duration
0.1 s) is set by bench/run itself (the "debug" variant).
"""
import asyncio
import asyncio.events
import json
import logging
import os
import sys
import time

SLOW_S = 0.1

if os.environ.get("BENCH_PATCH") == "1":
    _orig_run = asyncio.events.Handle._run
    _log = logging.getLogger("bench.slow")

    def _timed_run(self):
        t0 = time.perf_counter()
        try:
            return _orig_run(self)
        finally:
            dt = time.perf_counter() - t0
            if dt >= SLOW_S:
                _log.warning("slow callback %r took %.3f s", self, dt)

    asyncio.events.Handle._run = _timed_run


def announce(**extra):
    """Print our pid (and extra fields) for bench/run, flushed."""
    fields = " ".join(f"{k} {v}" for k, v in extra.items())
    print(f"pid {os.getpid()} {fields}".rstrip(), flush=True)


def wait_go():
    """Block until bench/run writes a line (its tracer is attached)."""
    sys.stdin.readline()


def result(**values):
    print("result " + json.dumps(values), flush=True)
