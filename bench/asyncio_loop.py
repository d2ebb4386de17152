"""asyncio / uvloop baselines for bench/core.lua figures (d), (e) and (f),
which the peers' suite's micro/asyncio_micro.py does not measure. Same output
format: "runtime<TAB>operation<TAB>value". Timed with time.process_time (CPU
time), like os.clock in bench/core.lua.

    python3 bench/asyncio_loop.py asyncio|uvloop time [N]   # (d) and (e)
    python3 bench/asyncio_loop.py asyncio|uvloop mem [N]    # (f), fresh process
"""
import asyncio
import gc
import os
import random
import sys
from time import process_time

LOOP = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
MODE = sys.argv[2] if len(sys.argv) > 2 else "time"
N = int(float(sys.argv[3])) if len(sys.argv) > 3 else 0
BATCH = 1000  # callbacks scheduled per loop iteration, as in bench/core.lua


def report(op, value):
    print(f"python {LOOP}\t{op}\t{value:.0f}", flush=True)


async def call_soon(n):
    """n trivial callbacks, BATCH per loop iteration: ops/s"""
    loop = asyncio.get_running_loop()
    count = 0

    def cb():
        nonlocal count
        count += 1

    t0 = process_time()
    for _ in range(n // BATCH):
        for _ in range(BATCH):
            loop.call_soon(cb)
        await asyncio.sleep(0)
    dt = process_time() - t0
    assert count == n // BATCH * BATCH
    report("call_soon callback", count / dt)


async def timers(n):
    """n call_later timers with delays in 0..10 ms, scheduled and fired"""
    loop = asyncio.get_running_loop()
    rnd = random.Random(1)
    delays = [rnd.random() * 0.01 for _ in range(n)]
    done = loop.create_future()
    count = 0

    def cb():
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    t0 = process_time()
    for d in delays:
        loop.call_later(d, cb)
    await done
    report("call_later timers scheduled+fired", n / (process_time() - t0))


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def memory(n):
    """RSS growth per task sleeping in asyncio.sleep(60): bytes"""
    async def sleeper():
        await asyncio.sleep(60)

    gc.collect()
    before = rss()
    tasks = [asyncio.create_task(sleeper()) for _ in range(n)]
    await asyncio.sleep(0)  # every task runs its first step
    gc.collect()
    report("bytes per sleeping task", (rss() - before) / len(tasks))
    os._exit(0)  # no need to cancel 100,000 tasks


async def main():
    if MODE == "mem":
        await memory(N or 100000)
    else:
        await call_soon(N or 1000000)
        await timers(100000)


if LOOP == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
asyncio.run(main())
