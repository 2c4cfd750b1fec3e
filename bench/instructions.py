"""Instructions per operation of the micro benchmarks, counted by valgrind's callgrind:
a figure that stays put on a shared machine, where wall time does not.

    python -m bench.instructions --loops ferroloop,ferroloop-watched --bench call_soon,sleep0

Each benchmark runs twice per loop, at two counts; the difference of the instruction totals
divided by the difference of the counts is the cost of one operation, without start-up.

With ``--split``, each cost is also divided by where the instructions ran: the loop's own
native code, the interpreter (CPython and its C accelerators, `_asyncio` among them), the C
library, and the rest. That says how much of a row any loop can still win: a loop that runs
no instruction of its own per operation still pays the interpreter's share.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

from bench.loops import ALL_LOOPS
from bench.micro import BENCHMARKS

# Operations in the two runs, as fractions of the benchmark's full count.
SCALES = (0.01, 0.03)


# Where an instruction ran, by the file of the machine code (callgrind's "ob=").
PARTS = ('loop', 'interpreter', 'libc', 'other')
LOOP_OBJECTS = {'ferroloop': '_ferroloop.', 'ferroloop-watched': '_ferroloop.',
                'uvloop': 'uvloop/', 'rloop': '_rloop.', 'asyncio': '_asyncio.'}


def part_of(loop, obj):
    if LOOP_OBJECTS[loop] in obj:
        return 'loop'
    if 'libpython' in obj or '/bin/python' in obj or '/lib-dynload/' in obj:
        return 'interpreter'
    if '/libc.so' in obj or '/ld-linux' in obj or '/libm.so' in obj:
        return 'libc'
    return 'other'


def self_cost_by_object(path):
    """Instructions run in each object file: the self cost of callgrind's profile, summed
    by "ob=" (the cost lines that follow a "calls=" line are a callee's, and skipped)."""
    names, totals, current, skip_next = {}, {}, None, False
    with open(path) as f:
        for line in f:
            if line.startswith(('ob=', 'cob=')):
                # An object's name is given once, where its id first appears (either line).
                key, _, name = line.partition('=')[2].strip().partition(' ')
                if name:
                    names[key] = name
                if line.startswith('ob='):
                    current = key
            elif line.startswith('calls='):
                skip_next = True
            elif line[:1].isdigit() or line[:1] in '+-*':
                if skip_next:
                    skip_next = False
                    continue
                cost = line.split()
                if len(cost) > 1 and current is not None:
                    totals[current] = totals.get(current, 0) + int(cost[1])
    return {names.get(key, key): cost for key, cost in totals.items()}


def instructions(loop, bench, scale, split=False):
    """Total instructions (every thread) of one run of ``bench.micro`` under callgrind, or
    with ``split``, a dict of them per part (PARTS)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'callgrind.out')
        done = subprocess.run(
            ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}',
             sys.executable, '-m', 'bench.micro', '--loop', loop, '--bench', bench,
             '--scale', str(scale)],
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f'{loop} {bench}: {done.stderr[-2000:]}')
        if split:
            parts = dict.fromkeys(PARTS, 0)
            for obj, cost in self_cost_by_object(out).items():
                parts[part_of(loop, obj)] += cost
            return parts
        with open(out) as f:
            totals = re.search(r'^(?:summary|totals): (\d+)', f.read(), re.MULTILINE)
        return int(totals.group(1))


def per_operation(loop, bench, split=False):
    _, full_count, _ = BENCHMARKS[bench]
    counts = [max(1, round(full_count * scale)) for scale in SCALES]
    totals = [instructions(loop, bench, scale, split) for scale in SCALES]
    ops = counts[1] - counts[0]
    if split:
        return {part: (totals[1][part] - totals[0][part]) / ops for part in PARTS}
    return (totals[1] - totals[0]) / ops


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--loops', default='ferroloop', help=f'comma-separated, of {ALL_LOOPS}')
    parser.add_argument('--bench', default=','.join(BENCHMARKS),
                        help=f'comma-separated, of {", ".join(BENCHMARKS)}')
    parser.add_argument('--split', action='store_true',
                        help="each cost divided into the loop's own code, the interpreter, "
                             'the C library and the rest')
    args = parser.parse_args()
    loops, benches = args.loops.split(','), args.bench.split(',')
    if args.split:
        print('| benchmark | loop | total | ' + ' | '.join(PARTS) + ' |')
        print('|---' * (len(PARTS) + 3) + '|')
        for bench in benches:
            for loop in loops:
                parts = per_operation(loop, bench, split=True)
                cells = [f'{sum(parts.values()):,.0f}'] + [f'{parts[p]:,.0f}' for p in PARTS]
                print(f'| {bench} | {loop} | ' + ' | '.join(cells) + ' |', flush=True)
        return
    print('| benchmark | ' + ' | '.join(loops) + ' |')
    print('|---' * (len(loops) + 1) + '|')
    for bench in benches:
        cells = [f'{per_operation(loop, bench):,.0f}' for loop in loops]
        print(f'| {bench} | ' + ' | '.join(cells) + ' |', flush=True)


if __name__ == '__main__':
    main()
