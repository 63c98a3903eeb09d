"""A small async service and its tests, for `loopscope run` in CI.

Every test is fast except test_report_is_fast, which blocks the event loop
for ~150 ms with time.sleep inside the test coroutine: the kind of mistake
`loopscope run --fail-on-slow 100ms` catches, while pytest itself passes.
"""
import asyncio
import time


class Service:
    """A tiny key-value service with async I/O stand-ins."""

    def __init__(self):
        self.data = {}

    async def put(self, key, value):
        await asyncio.sleep(0.001)  # stand-in for a network round trip
        self.data[key] = value

    async def get(self, key):
        await asyncio.sleep(0.001)
        return self.data.get(key)

    async def report(self):
        await asyncio.sleep(0)
        return {"keys": len(self.data)}


async def test_put_then_get():
    s = Service()
    await s.put("a", 1)
    assert await s.get("a") == 1


async def test_many_concurrent_puts():
    s = Service()
    await asyncio.gather(*(s.put(str(i), i) for i in range(50)))
    assert len(s.data) == 50


async def test_missing_key_is_none():
    assert await Service().get("nope") is None


async def test_report_is_fast():
    s = Service()
    await s.put("a", 1)
    # The bug: a blocking call inside the test coroutine stalls the whole
    # event loop for ~150 ms (asyncio.sleep would not).
    time.sleep(0.15)
    assert await s.report() == {"keys": 1}
