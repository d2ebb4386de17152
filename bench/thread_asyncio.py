"""asyncio / uvloop baseline for bench/thread.lua: round trips of a
trivial function through asyncio.to_thread, one in flight and 64 in
flight, on the default executor. Timed on the wall clock (the work is
in other threads). Output lines: "runtime<TAB>figure<TAB>calls/s".

    python3 bench/thread_asyncio.py asyncio|uvloop N
"""
import asyncio
import sys
from time import perf_counter

LOOP = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
N = int(float(sys.argv[2])) if len(sys.argv) > 2 else 20000
WIDTH = 64


def trivial(x):
    return x


async def sequential(n):
    t0 = perf_counter()
    for i in range(n):
        assert await asyncio.to_thread(trivial, i) == i
    return n / (perf_counter() - t0)


async def concurrent(n):
    async def lane(k):
        for i in range(k):
            await asyncio.to_thread(trivial, i)
    t0 = perf_counter()
    await asyncio.gather(*(lane(n // WIDTH) for _ in range(WIDTH)))
    return (n // WIDTH) * WIDTH / (perf_counter() - t0)


async def main():
    await asyncio.to_thread(trivial, 0)  # the executor's threads exist
    print(f"python {LOOP}\tsequential\t{await sequential(N):.0f}", flush=True)
    print(f"python {LOOP}\t{WIDTH} in flight\t{await concurrent(N):.0f}",
          flush=True)


if LOOP == "uvloop":
    import uvloop
    uvloop.install()
asyncio.run(main())
