"""A hostile target for loopscope's own tests: an endless chain of call_soon
callbacks, so with a tiny threshold every callback and every busy period is
"slow" and the ring buffers never empty. Prints "pid N" first."""
import asyncio
import os


async def main():
    loop = asyncio.get_running_loop()

    def cb():
        loop.call_soon(cb)

    print("pid", os.getpid(), flush=True)
    loop.call_soon(cb)
    await asyncio.sleep(3600)


asyncio.run(main())
