"""Memory stress: does a loop give back what a round of heavy scheduling took?

Each round runs, on one loop:
  * a chain of 1,000,000 call_soon callbacks (each schedules the next), and
  * 100,000 tasks sleeping concurrently on asyncio.sleep (100,000 live timers).

RSS (VmRSS from /proc/self/status) is printed before the first round, after the first round
and after the last one, with the time each round took. The first round raises RSS for good
(queues and heaps keep their capacity); a leak shows as growth *between* the first and the last
round. The script exits 1 if that growth is over the tolerance (10% by default).

Each loop runs in a fresh process of its own, with PYTHONMALLOC=malloc and a malloc_trim()
before each reading. With CPython's own small-object allocator, RSS creeps up by about 1 MiB per
round of 100,000 tasks on asyncio's loop and ferroloop alike while the live heap stays flat: a
few objects that outlive each round pin a fresh 1 MiB arena. That is fragmentation, not a leak,
and it would hide one; with the C allocator and trimming, RSS follows the live heap. The live
heap (malloc'd bytes from mallinfo2; with --pymalloc also CPython's block count) is printed too.
``--pymalloc`` measures with CPython's allocator instead (for information). Timings under
PYTHONMALLOC=malloc are not benchmark figures.

    python scripts/stress_memory.py                       # ferroloop
    python scripts/stress_memory.py --loops ferroloop,asyncio,uvloop --rounds 5
"""

import argparse
import asyncio
import ctypes
import gc
import json
import os
import random
import subprocess
import sys
import time


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks',
        'fordblks', 'keepcost')]


_libc = ctypes.CDLL(None)
_libc.mallinfo2.restype = _Mallinfo2


def rss_kib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise RuntimeError('no VmRSS in /proc/self/status')


def settle():
    """Collect garbage and give free heap memory back to the OS before a reading."""
    gc.collect()
    _libc.malloc_trim(0)


def live_heap():
    """(bytes malloc'd and in use, CPython's allocated block count)."""
    info = _libc.mallinfo2()
    return info.uordblks + info.hblkhd, sys.getallocatedblocks()


def make_loop(name):
    if name == 'ferroloop':
        import ferroloop
        return ferroloop.new_event_loop()
    if name == 'asyncio':
        return asyncio.SelectorEventLoop()
    if name == 'uvloop':
        import uvloop
        return uvloop.new_event_loop()
    raise SystemExit(f'unknown loop {name!r}')


def call_soon_chain(loop, count):
    """``count`` callbacks, each scheduled by the one before it."""
    done = loop.create_future()
    remaining = [count]

    def step():
        remaining[0] -= 1
        if remaining[0]:
            loop.call_soon(step)
        else:
            done.set_result(None)

    loop.call_soon(step)
    loop.run_until_complete(done)


def concurrent_sleeps(loop, count, rng):
    """``count`` tasks, each sleeping a few milliseconds: ``count`` timers alive at once."""
    async def sleeper(delay):
        await asyncio.sleep(delay)

    async def main():
        await asyncio.gather(*(sleeper(rng.uniform(0.001, 0.05)) for _ in range(count)))

    loop.run_until_complete(main())


def run_child(name, rounds, callbacks, timers):
    """One loop, in this process: the measurements as a dict."""
    rng = random.Random(42)
    loop = make_loop(name)
    settle()
    before = rss_kib()
    per_round = []
    after_first = None
    try:
        for i in range(rounds):
            started = time.perf_counter()
            call_soon_chain(loop, callbacks)
            chain_s = time.perf_counter() - started
            started = time.perf_counter()
            concurrent_sleeps(loop, timers, rng)
            sleeps_s = time.perf_counter() - started
            settle()
            rss = rss_kib()
            malloc_bytes, py_blocks = live_heap()
            per_round.append({'round': i + 1, 'call_soon_s': chain_s, 'sleep_s': sleeps_s,
                              'rss_kib': rss, 'malloc_kib': malloc_bytes // 1024,
                              'py_blocks': py_blocks})
            if i == 0:
                after_first = rss
    finally:
        loop.close()
    return {'loop': name, 'before_kib': before, 'after_first_kib': after_first,
            'after_last_kib': per_round[-1]['rss_kib'], 'rounds': per_round}


def report(result, tolerance):
    name = result['loop']
    before, first, last = result['before_kib'], result['after_first_kib'], result['after_last_kib']
    growth = (last - first) / first
    print(f'== {name}')
    for r in result['rounds']:
        # Under PYTHONMALLOC=malloc every Python object is in the malloc figure (and CPython
        # counts no blocks of its own).
        blocks = f', {r["py_blocks"]:,} pymalloc blocks' if r['py_blocks'] else ''
        print(f'   round {r["round"]}: call_soon chain {r["call_soon_s"]:.3f}s, '
              f'sleeps {r["sleep_s"]:.3f}s, RSS {r["rss_kib"] / 1024:.1f} MiB '
              f'(malloc live {r["malloc_kib"] / 1024:.1f} MiB{blocks})')
    print(f'   RSS before {before / 1024:.1f} MiB, after first round {first / 1024:.1f} MiB, '
          f'after last round {last / 1024:.1f} MiB')
    total = sum(r['call_soon_s'] + r['sleep_s'] for r in result['rounds'])
    print(f'   elapsed {total:.3f}s; growth first -> last round {growth:+.1%} '
          f'(limit {tolerance:.0%})')
    leaked = growth > tolerance
    print(f'   {"LEAK?" if leaked else "ok"}')
    return not leaked


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--loops', default='ferroloop',
                        help='comma-separated: ferroloop, asyncio, uvloop (default: ferroloop)')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--callbacks', type=int, default=1_000_000)
    parser.add_argument('--timers', type=int, default=100_000)
    parser.add_argument('--tolerance', type=float, default=0.10,
                        help='largest RSS growth from the first to the last round (0.10 = 10%%)')
    parser.add_argument('--pymalloc', action='store_true',
                        help="measure with CPython's small-object allocator (see above)")
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error('--rounds must be at least 2 to compare the first and last rounds')

    if args.child:
        print(json.dumps(run_child(args.child, args.rounds, args.callbacks, args.timers)))
        return 0

    print(f'{args.rounds} rounds of: a {args.callbacks:,}-callback call_soon chain, then '
          f'{args.timers:,} concurrent asyncio.sleep tasks '
          f'({"pymalloc" if args.pymalloc else "PYTHONMALLOC=malloc, trimmed before readings"})')
    env = dict(os.environ)
    if args.pymalloc:
        env.pop('PYTHONMALLOC', None)
    else:
        env['PYTHONMALLOC'] = 'malloc'
    ok = True
    for name in args.loops.split(','):
        name = name.strip()
        child = subprocess.run(
            [sys.executable, os.path.abspath(__file__), '--child', name,
             '--rounds', str(args.rounds), '--callbacks', str(args.callbacks),
             '--timers', str(args.timers)],
            capture_output=True, text=True, check=False, env=env)
        if child.returncode != 0:
            print(f'== {name}: failed (exit {child.returncode})\n{child.stderr}', file=sys.stderr)
            ok = False
            continue
        ok = report(json.loads(child.stdout.splitlines()[-1]), args.tolerance) and ok
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
