"""asyncio / uvloop baselines for bench/sync.lua: the same four figures,
written the same way. Output lines: "runtime<TAB>operation<TAB>ops/s".
Timed with time.process_time (CPU time), like os.clock in bench/sync.lua.

    python3 bench/sync_asyncio.py asyncio|uvloop [N]
"""
import asyncio
import sys
from time import process_time

LOOP = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
N = int(float(sys.argv[2])) if len(sys.argv) > 2 else 100000


def report(op, ops, dt):
    print(f"python {LOOP}\t{op}\t{ops / dt:.0f}", flush=True)


async def queue(maxsize, n):
    """a producer task puts n items, a consumer task gets them: items/s"""
    q = asyncio.Queue(maxsize)

    async def producer():
        for i in range(n):
            await q.put(i)

    async def consumer():
        for _ in range(n):
            await q.get()

    t0 = process_time()
    await asyncio.gather(producer(), consumer())
    report(f"Queue(maxsize={maxsize}) put+get", n, process_time() - t0)


async def lock_handoff(n):
    """two tasks each take the lock n times, giving way while they hold it,
    so that every acquire but the first waits for the other: acquires/s"""
    lock = asyncio.Lock()

    async def worker():
        for _ in range(n):
            await lock.acquire()
            await asyncio.sleep(0)
            lock.release()

    t0 = process_time()
    await asyncio.gather(worker(), worker())
    report("Lock handoff", 2 * n, process_time() - t0)


async def event_wakeup(n):
    """two tasks wake each other through two Events: wake-ups/s"""
    ping, pong = asyncio.Event(), asyncio.Event()

    async def a():
        for _ in range(n):
            await ping.wait()
            ping.clear()
            pong.set()

    async def b():
        for _ in range(n):
            ping.set()
            await pong.wait()
            pong.clear()

    t0 = process_time()
    await asyncio.gather(a(), b())
    report("Event set->wait wake-up", 2 * n, process_time() - t0)


async def main():
    await queue(1, N)
    await queue(0, 5 * N)
    await lock_handoff(N)
    await event_wakeup(N)


if LOOP == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
asyncio.run(main())
