"""aiohttp hello-world server on 127.0.0.1 (an ephemeral port), no access
log. Prints "pid N port P" once it listens; runs until killed."""
import asyncio

from aiohttp import web

import bench_common


async def hello(request):
    return web.Response(text="Hello, World!")


async def main():
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    bench_common.announce(port=port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
