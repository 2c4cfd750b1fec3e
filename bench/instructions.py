"""Instructions per operation of the micro benchmarks, counted by valgrind's callgrind:
a figure that stays put on a shared machine, where wall time does not.

    python -m bench.instructions --loops ferroloop,ferroloop-watched --bench call_soon,sleep0

Each benchmark runs twice per loop, at two counts; the difference of the instruction totals
divided by the difference of the counts is the cost of one operation, without start-up.
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


def instructions(loop, bench, scale):
    """Total instructions (every thread) of one run of ``bench.micro`` under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'callgrind.out')
        done = subprocess.run(
            ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}',
             sys.executable, '-m', 'bench.micro', '--loop', loop, '--bench', bench,
             '--scale', str(scale)],
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f'{loop} {bench}: {done.stderr[-2000:]}')
        with open(out) as f:
            totals = re.search(r'^(?:summary|totals): (\d+)', f.read(), re.MULTILINE)
        return int(totals.group(1))


def per_operation(loop, bench):
    _, full_count, _ = BENCHMARKS[bench]
    counts = [max(1, round(full_count * scale)) for scale in SCALES]
    totals = [instructions(loop, bench, scale) for scale in SCALES]
    return (totals[1] - totals[0]) / (counts[1] - counts[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--loops', default='ferroloop', help=f'comma-separated, of {ALL_LOOPS}')
    parser.add_argument('--bench', default=','.join(BENCHMARKS),
                        help=f'comma-separated, of {", ".join(BENCHMARKS)}')
    args = parser.parse_args()
    loops, benches = args.loops.split(','), args.bench.split(',')
    print('| benchmark | ' + ' | '.join(loops) + ' |')
    print('|---' * (len(loops) + 1) + '|')
    for bench in benches:
        cells = [f'{per_operation(loop, bench):,.0f}' for loop in loops]
        print(f'| {bench} | ' + ' | '.join(cells) + ' |', flush=True)


if __name__ == '__main__':
    main()
