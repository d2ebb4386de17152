"""The WebSocket echo of bench/ws_peers.sh: Python's websockets (Debian's
python3-websockets) on uvloop (python3-uvloop) when it is there.
  echo_websockets.py PORT"""
import asyncio
import sys

import websockets

try:
    import uvloop
    uvloop.install()
except ImportError:
    print("echo_websockets: no uvloop, plain asyncio", file=sys.stderr)


async def echo(ws, _path):
    async for message in ws:
        await ws.send(message)


async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=1 << 20,
                                compression=None, ping_interval=None):
        await asyncio.Future()

asyncio.run(main())
