"""bench/http/client_aiohttp.py URL SECONDS [CONC] [uvloop]: aiohttp's
ClientSession.get over keep-alive (one session, CONC tasks each getting URL
in a loop for SECONDS, at most 60, the body checked); prints `rps=...`.
Debian's /usr/bin/python3 has aiohttp (python3-aiohttp) and uvloop."""
import asyncio
import sys
import time

import aiohttp

url, secs = sys.argv[1], min(float(sys.argv[2]), 60)
conc = int(sys.argv[3]) if len(sys.argv) > 3 else 1
if len(sys.argv) > 4 and sys.argv[4] == "uvloop":
    import uvloop
    uvloop.install()


async def main():
    n = 0
    async with aiohttp.ClientSession() as session:
        t0 = time.monotonic()
        stop = t0 + secs

        async def worker():
            nonlocal n
            while time.monotonic() < stop:
                async with session.get(url) as res:
                    body = await res.read()
                    assert res.status == 200 and body == b"Hello, World!"
                n += 1

        await asyncio.gather(*(worker() for _ in range(conc)))
        dt = time.monotonic() - t0
    print(f"rps={n / dt:.0f} requests={n} seconds={dt:.2f} conc={conc}")


asyncio.run(main())
