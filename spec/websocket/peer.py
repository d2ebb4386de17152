"""The WebSocket peer of spec/websocket/*: Python's websockets library
(Debian's python3-websockets), which no one here wrote.

  peer.py client PORT SCENARIO   runs SCENARIO against ws://127.0.0.1:PORT,
                                 prints what it saw as one JSON object
  peer.py server PORTFILE [CERT KEY]
                                 serves on a free port (wss:// with CERT and
                                 KEY), writes the port to PORTFILE; what each
                                 path does is in SERVER below
"""
import asyncio
import json
import ssl
import sys

import websockets
import websockets.exceptions
from websockets.frames import Opcode

URL = "ws://127.0.0.1:%s%s"


def closed_as(ws):
    return {"code": ws.close_code, "reason": ws.close_reason}


async def fragments():
    for part in ("frag", "ment", "ed é"):
        yield part


async def c_echo(port):
    out = {}
    async with websockets.connect(URL % (port, "/echo"), max_size=None) as ws:
        await ws.send("héllo")
        out["text"] = await ws.recv()
        await ws.send(b"\x00\xffbin")
        out["binary"] = list(await ws.recv())
        big = "x" * (1 << 20)
        await ws.send(big)
        out["big"] = (await ws.recv()) == big
        await ws.send(fragments())
        out["fragments"] = await ws.recv()
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        out["pong"] = True
    out.update(closed_as(ws))
    return out


async def c_subprotocol(port):
    async with websockets.connect(URL % (port, "/echo"), subprotocols=["x", "echo", "chat"]) as ws:
        chosen = ws.subprotocol
    async with websockets.connect(URL % (port, "/echo")) as ws:
        none = ws.subprotocol
    return {"chosen": chosen, "none": none}


async def until_closed(ws):
    try:
        while True:
            await ws.recv()
    except websockets.ConnectionClosed:
        pass
    return closed_as(ws)


async def c_too_big(port):
    async with websockets.connect(URL % (port, "/echo"), max_size=None) as ws:
        try:
            await ws.send("y" * (1024 * 1024 + 1))
        except websockets.ConnectionClosed:
            pass  # closed (1009) while it was still sending
        return await until_closed(ws)


async def c_bad_utf8(port):
    async with websockets.connect(URL % (port, "/echo")) as ws:
        await ws.write_frame(True, Opcode.TEXT, b"ok \xff\xfe")
        return await until_closed(ws)


async def c_stray_continuation(port):
    async with websockets.connect(URL % (port, "/echo")) as ws:
        await ws.write_frame(True, Opcode.CONT, b"a continuation of nothing")
        return await until_closed(ws)


async def c_server_closes(port):
    async with websockets.connect(URL % (port, "/close")) as ws:
        return await until_closed(ws)


async def c_wait_close(port):
    """Stays until the server closes (a drain: 1001)."""
    async with websockets.connect(URL % (port, "/echo")) as ws:
        await ws.send("hello")
        await ws.recv()
        print("open", flush=True)
        return await until_closed(ws)


async def c_not_websocket(port):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    conn.request("GET", "/echo")
    return {"status": conn.getresponse().status}


CLIENT = {name[2:]: fn for name, fn in globals().items() if name.startswith("c_")}


async def serve_path(ws, path):
    if path == "/echo":
        async for m in ws:
            await ws.send(m)
    elif path == "/fragments":
        await ws.send(fragments())
        async for m in ws:
            await ws.send(m)
    elif path == "/ping":
        pong = await ws.ping(b"ping from python")
        await asyncio.wait_for(pong, 5)
        await ws.send("pong came")
        await ws.wait_closed()
    elif path == "/close":
        await ws.close(4000, "bye from python")
    elif path.startswith("/big/"):
        await ws.send("z" * int(path[5:]))
        await ws.wait_closed()
    elif path == "/report":
        # the close code and reason the client sent, as a message first
        await ws.recv()
        await ws.send("ready")
        await ws.wait_closed()
    elif path == "/count":
        n = 0
        async for _ in ws:
            n += 1
        print(json.dumps({"received": n, **closed_as(ws)}), flush=True)


async def server(portfile, cert=None, key=None):
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    async with websockets.serve(serve_path, "127.0.0.1", 0, ssl=ctx, max_size=None,
                                subprotocols=["b", "a"]) as srv:
        port = srv.sockets[0].getsockname()[1]
        with open(portfile + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.rename(portfile + ".tmp", portfile)
        await asyncio.Future()


def main():
    if sys.argv[1] == "client":
        print(json.dumps(asyncio.run(CLIENT[sys.argv[3]](sys.argv[2]))))
    else:
        asyncio.run(server(*sys.argv[2:]))


main()
