"""Spawn+wait of /bin/true with asyncio: COUNT processes, CONC in flight;
prints "<loop> <processes per second>".
    python3 bench/spawn/spawn_asyncio.py asyncio|uvloop COUNT CONC"""
import asyncio
import sys
import time


async def worker(n):
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("/bin/true")
        await p.wait()


async def main(count, conc):
    started = time.monotonic()
    await asyncio.gather(*(worker(count // conc + (1 if i < count % conc else 0))
                           for i in range(conc)))
    return count / (time.monotonic() - started)


def run(kind, count, conc):
    if kind == "uvloop":
        import uvloop
        return uvloop.run(main(count, conc)) if hasattr(uvloop, "run") else \
            uvloop.new_event_loop().run_until_complete(main(count, conc))
    return asyncio.run(main(count, conc))


if __name__ == "__main__":
    kind, count, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(f"{kind} {run(kind, count, conc):.0f}")
