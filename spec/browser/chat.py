"""make test-browser: examples/ws_chat.lua in two real headless Chromium
instances, driven over the DevTools protocol (its WebSocket, through
Debian's python3-websockets: no other driver needed).

  chat.py LASYNC SCREENSHOT

starts `LASYNC serve examples/ws_chat.lua --http` on a free port, opens the
page in two Chromium processes, types a message in each (real key events)
and checks that it appears in the other, saves a screenshot of the second
to SCREENSHOT, and stops every process it started by its pid. The last
line is "N passed, N failed"; the exit status is 1 when anything failed.
"""
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TIMEOUT = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, what, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


class Browser:
    """One headless Chromium process and the DevTools session of its page."""

    def __init__(self, procs):
        self.dir = tempfile.mkdtemp(prefix="lasync-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", "--remote-debugging-port=0",
             "--user-data-dir=" + self.dir, "--window-size=800,600", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(self.proc)
        self.seq = 0

    async def open(self):
        path = os.path.join(self.dir, "DevToolsActivePort")
        port = wait_for(lambda: os.path.exists(path) and open(path).readline().strip(),
                        "Chromium's DevTools port")
        pages = json.load(urllib.request.urlopen("http://127.0.0.1:%s/json/list" % port))
        url = [p for p in pages if p["type"] == "page"][0]["webSocketDebuggerUrl"]
        self.ws = await websockets.connect(url, max_size=None)

    async def call(self, method, **params):
        self.seq += 1
        await self.ws.send(json.dumps({"id": self.seq, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self.seq:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg["result"]

    async def eval(self, expr):
        r = await self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")

    async def until(self, expr, what):
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            if await self.eval(expr):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("timed out waiting for " + what)

    async def type_line(self, text):
        """Types text into the message box and presses Enter, as a user does."""
        await self.eval("document.getElementById('text').focus()")
        await self.call("Input.insertText", text=text)
        for kind in ("keyDown", "keyUp"):
            await self.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter",
                            windowsVirtualKeyCode=13, text="\r" if kind == "keyDown" else "")

    def messages(self):
        return "[...document.querySelectorAll('#log li')].map(li => li.textContent)"

    async def shows(self, text):
        try:
            await self.until("%s.includes(%s)" % (self.messages(), json.dumps(text)),
                             "the message %r" % text)
        except RuntimeError as e:
            raise RuntimeError("%s; the page shows %r" % (e, await self.eval(self.messages())))


async def scenario(port, screenshot, check):
    procs = []
    try:
        a, b = Browser(procs), Browser(procs)
        for br in (a, b):  # one after the other: the first is guest1
            await br.open()
            await br.call("Page.navigate", url="http://127.0.0.1:%d/" % port)
            await br.until("document.body && document.body.dataset.state === 'open'",
                           "the WebSocket to open")
        check("both pages opened their WebSocket", True)
        title = await a.eval("document.title")
        check("the page is the chat", title == "lasync chat")
        await a.type_line("hello from the first browser")
        await b.shows("guest1: hello from the first browser")
        check("a message typed in the first browser appears in the second", True)
        await b.type_line("and back from the second")
        await a.shows("guest2: and back from the second")
        check("and one typed in the second appears in the first", True)
        shown = await b.eval(b.messages())
        check("the second shows its own message too, after the first's",
              shown.index("guest1: hello from the first browser") <
              shown.index("guest2: and back from the second"))
        shot = await b.call("Page.captureScreenshot", format="png")
        os.makedirs(os.path.dirname(screenshot) or ".", exist_ok=True)
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        check("a screenshot is saved", os.path.getsize(screenshot) > 1000)
        for br in (a, b):
            await br.ws.close()
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main():
    lasync, screenshot = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    example = os.path.join(here, "..", "..", "examples", "ws_chat.lua")
    port = free_port()
    server = subprocess.Popen([lasync, "serve", example, "--http", "--quiet",
                               "--listen", "127.0.0.1:%d" % port])
    results = []

    def check(name, ok):
        results.append(ok)
        print(("ok   " if ok else "FAIL ") + name, flush=True)

    try:
        wait_for(lambda: listening(port) or server.poll() is not None, "the server")
        check("lasync serve examples/ws_chat.lua listens", server.poll() is None)
        asyncio.run(asyncio.wait_for(scenario(port, screenshot, check), 3 * TIMEOUT))
    except Exception as e:  # noqa: BLE001 - any failure is one failed check
        check("the browser scenario ran (%s: %s)" % (type(e).__name__, e), False)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            check("the server drains and exits 0 on SIGTERM", server.wait(15) == 0)
        except subprocess.TimeoutExpired:
            server.kill()
            check("the server drains and exits 0 on SIGTERM", False)
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    sys.exit(0 if passed == len(results) else 1)


main()
