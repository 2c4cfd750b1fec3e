"""Micro benchmarks of the loop's own machinery, one per run, in a fresh process:

    python -m bench.micro --loop ferroloop --bench sleep0 [--scale 0.1]

prints one JSON object (``ops``, ``seconds``, ``ops_per_s``), or ``N/A <reason>`` with exit
status 3 when the loop cannot run it yet. Only the benchmark coroutine is timed: interpreter
start-up and loop creation are not.
"""

import argparse
import asyncio
import gc
import json
import socket
import threading
import time

from bench.loops import ALL_LOOPS, exit_not_available, loop_factory


def _noop():
    pass


async def call_soon_chain(n):
    """A callback that schedules the next one with ``call_soon``, n times."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    remaining = n

    def step():
        nonlocal remaining
        remaining -= 1
        if remaining:
            loop.call_soon(step)
        else:
            done.set_result(None)

    loop.call_soon(step)
    await done


async def sleep0(n):
    """One task yielding to the loop with ``await asyncio.sleep(0)``, n times."""
    for _ in range(n):
        await asyncio.sleep(0)


async def _nothing():
    pass


async def gather(n):
    """n trivial coroutines run as tasks by one ``gather``."""
    await asyncio.gather(*[_nothing() for _ in range(n)])


async def create_task_await(n):
    """n tasks created and awaited one at a time: the cost of one task's whole life."""
    loop = asyncio.get_running_loop()
    for _ in range(n):
        await loop.create_task(_nothing())


# Lookups in flight at once, as a client connecting to many peers has.
LOOKUPS_IN_FLIGHT = 32


async def _lookups(n, host):
    loop = asyncio.get_running_loop()

    async def one_stream(count):
        for _ in range(count):
            await loop.getaddrinfo(host, 80, type=socket.SOCK_STREAM)

    per_stream, extra = divmod(n, LOOKUPS_IN_FLIGHT)
    await asyncio.gather(*[one_stream(per_stream + (i < extra)) for i in range(LOOKUPS_IN_FLIGHT)])


async def getaddrinfo_numeric(n):
    """n ``getaddrinfo('127.0.0.1', 80)``, 32 in flight: nothing to look up."""
    await _lookups(n, '127.0.0.1')


async def getaddrinfo_localhost(n):
    """n ``getaddrinfo('localhost', 80)``, 32 in flight: the C resolver (/etc/hosts)."""
    await _lookups(n, 'localhost')


def _countdown(loop, n):
    """A future and the callback that resolves it on its n-th call, for the benchmarks that
    end each operation in a callback. The callback is the same closure each benchmark would
    write for itself, so the timed path costs what it did."""
    done = loop.create_future()
    remaining = n

    def count():
        nonlocal remaining
        remaining -= 1
        if not remaining:
            done.set_result(None)

    return done, count


async def timers(n):
    """n timers pending at once (``call_later``, delays 0-10 ms in scrambled order), all fired."""
    loop = asyncio.get_running_loop()
    done, fired = _countdown(loop, n)
    for i in range(n):
        # 7919 is prime, so i * 7919 % n visits every slot once: a permutation, no RNG cost.
        loop.call_later((i * 7919 % n) / n * 0.01, fired)
    await done


async def timer_churn(n):
    """n ``call_later`` + ``cancel`` pairs, the way timeouts are set and reset: 1,000 live
    timers, each replaced in turn, 100 replacements per loop iteration."""
    loop = asyncio.get_running_loop()
    live = [loop.call_later(60, _noop) for _ in range(1000)]
    done = loop.create_future()
    replaced = 0

    def churn():
        nonlocal replaced
        for _ in range(100):
            slot = replaced % 1000
            live[slot].cancel()
            live[slot] = loop.call_later(60 + slot * 0.001, _noop)
            replaced += 1
        if replaced < n:
            loop.call_soon(churn)
        else:
            for handle in live:
                handle.cancel()
            done.set_result(None)

    loop.call_soon(churn)
    await done


async def queue(n):
    """n items through an ``asyncio.Queue(maxsize=100)`` from one producer task to one
    consumer task (bounded, so the two take turns as real pipelines do)."""
    items = asyncio.Queue(maxsize=100)

    async def produce():
        for i in range(n):
            await items.put(i)

    async def consume():
        for _ in range(n):
            await items.get()

    await asyncio.gather(produce(), consume())


async def to_thread(n):
    """n ``asyncio.to_thread`` calls, one after another (round trips through the executor)."""
    for _ in range(n):
        await asyncio.to_thread(_noop)


async def subprocess_spawn(n):
    """n children running ``true``, each started with ``create_subprocess_exec`` and waited
    for before the next."""
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec('true')
        await proc.wait()


async def call_soon_threadsafe(n):
    """n ``call_soon_threadsafe`` calls from another thread, until the loop has run them all."""
    loop = asyncio.get_running_loop()
    done, arrived = _countdown(loop, n)

    def produce():
        for _ in range(n):
            loop.call_soon_threadsafe(arrived)

    thread = threading.Thread(target=produce)
    thread.start()
    await done
    thread.join()


# name -> (benchmark, operations at scale 1, what one operation is)
BENCHMARKS = {
    'call_soon': (call_soon_chain, 1_000_000, 'call_soon callbacks in a chain'),
    'sleep0': (sleep0, 1_000_000, 'asyncio.sleep(0) yields'),
    'gather': (gather, 100_000, 'tasks through one gather'),
    'gather_10k': (gather, 10_000, 'tasks through one gather'),
    'create_task': (create_task_await, 200_000, 'tasks created and awaited one by one'),
    'timers': (timers, 100_000, 'concurrent call_later timers'),
    'timer_churn': (timer_churn, 500_000, 'call_later + cancel pairs'),
    'queue': (queue, 1_000_000, 'asyncio.Queue items, producer to consumer'),
    'to_thread': (to_thread, 20_000, 'asyncio.to_thread calls'),
    'subprocess_spawn': (subprocess_spawn, 2_000, "create_subprocess_exec('true') + wait"),
    'call_soon_threadsafe': (call_soon_threadsafe, 1_000_000, 'call_soon_threadsafe from a thread'),
    'getaddrinfo': (getaddrinfo_numeric, 200_000, "getaddrinfo('127.0.0.1'), 32 in flight"),
    'getaddrinfo_localhost': (getaddrinfo_localhost, 20_000, "getaddrinfo('localhost'), 32 in flight"),
}


def measure(loop_name, bench_name, scale):
    benchmark, full_count, _ = BENCHMARKS[bench_name]
    count = max(1, round(full_count * scale))
    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        # The collector starts every run at the same phase: otherwise a build that makes a few
        # more objects at start-up (imports) moves when the measured part's collections fall,
        # and the instruction counts of allocation-heavy rows differ by 2% for the same code.
        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        runner.run(benchmark(count))
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started  # all threads: to_thread's workers count too
    return {'bench': bench_name, 'loop': loop_name, 'ops': count, 'seconds': seconds,
            'ops_per_s': count / seconds, 'cpu_s': cpu, 'ops_per_cpu_s': count / cpu}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--loop', choices=ALL_LOOPS, required=True)
    parser.add_argument('--bench', choices=BENCHMARKS, required=True)
    parser.add_argument('--scale', type=float, default=1.0, help='fraction of the full count')
    args = parser.parse_args()
    try:
        result = measure(args.loop, args.bench, args.scale)
    except NotImplementedError as error:
        exit_not_available(error)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
