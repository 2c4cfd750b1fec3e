"""Per-request costs of the echo servers that stay put on a shared machine, where requests per
second do not: instructions (callgrind), system calls and page faults (perf stat).

    python -m bench.echo_counts --loops ferroloop,uvloop,rloop --echo protocol:10k,sock:100k
    python -m bench.echo_counts --echo protocol:1k --connections 1 --what instructions

Each figure comes from one server process: it is started (under valgrind for instructions),
warmed up by one load, then counted over a second load of new connections, and the count is
divided by the requests the load generator saw finished. The warm-up load runs first so
that what a loop allocates once (its buffers, the interpreter's caches) is not counted.

Whether glibc trims its heap (a brk down, then up again with a page fault for every page
touched) depends on what the process freed before: until a chunk allocated by mmap is freed,
its trim threshold stays at 128 KiB, and a server allocating ~64 KiB bytes per read trims
again and again. The page faults of the large rows are that, the same for every loop.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.loops import ALL_LOOPS
from bench.processes import REPO_ROOT

LOADGEN = REPO_ROOT / 'bench' / 'loadgen' / 'target' / 'release' / 'loadgen'
WHAT = ('instructions', 'syscalls')
# Seconds of each load, natively and under valgrind (which runs the server ~50 times slower).
LOAD_SECONDS = {'native': (0.5, 1.0), 'valgrind': (3.0, 6.0)}


def parse_echo(text):
    """``protocol:10k`` -> ('protocol', 10240)."""
    variant, _, size = text.partition(':')
    if variant not in ('protocol', 'streams', 'sock') or not size.endswith('k'):
        raise argparse.ArgumentTypeError(f'{text!r}: expected VARIANT:SIZEk, e.g. protocol:10k')
    return variant, int(size[:-1]) * 1024


class Server:
    def __init__(self, loop, variant, connections, prefix=()):
        self.connections = connections
        self.process = subprocess.Popen(
            [*prefix, sys.executable, '-m', f'bench.servers.echo_{variant}', '--loop', loop,
             '--listen', 'tcp:127.0.0.1:0'],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT)
        line = self.process.stdout.readline().strip()
        if not line.startswith('READY '):
            self.stop()
            raise RuntimeError(f'{loop} {variant}: {line!r}')
        self.endpoint = line.removeprefix('READY ')
        self.pid = self.process.pid

    def load(self, size, seconds):
        """Requests finished by one load of ``seconds`` on new connections."""
        done = subprocess.run(
            [str(LOADGEN), '--connect', self.endpoint, '--connections', str(self.connections),
             '--size', str(size), '--warmup', '0', '--duration', str(seconds)],
            capture_output=True, text=True, check=True)
        # Let the server see the connections close before anything is read from it.
        time.sleep(0.2)
        return json.loads(done.stdout)['all_requests']

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def syscalls(loop, variant, size, connections, shown):
    """Calls per request of the ``shown`` system calls (all of them as ``syscalls``) and page
    faults, counted by ``perf stat`` over the counted load. Counted, not traced: strace stops
    the server at every call, which changes what the allocator does (its trimming depends on
    how requests interleave) and hid the faults this counts."""
    server = Server(loop, variant, connections)
    events = ['page-faults', 'raw_syscalls:sys_enter',
              *(f'syscalls:sys_enter_{name}' for name in shown)]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'perf')
        try:
            warm, seconds = LOAD_SECONDS['native']
            server.load(size, warm)
            perf = subprocess.Popen(['perf', 'stat', '-x,', '-o', out, '-e', ','.join(events),
                                     '-p', str(server.pid)], stderr=subprocess.DEVNULL)
            time.sleep(0.3)
            requests = server.load(size, seconds)
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=30)
        finally:
            server.stop()
        counts = {}
        with open(out) as f:
            for line in f:
                cells = line.strip().split(',')
                if len(cells) > 2 and cells[0].isdigit():
                    name = cells[2].removeprefix('syscalls:sys_enter_')
                    name = {'raw_syscalls:sys_enter': 'syscalls'}.get(name, name)
                    counts[name] = int(cells[0]) / requests
        return counts


def instructions(loop, variant, size, connections):
    """Instructions per request, every thread's, counted from after the warm-up load (the
    counters zeroed, then dumped, by callgrind_control). valgrind counts each byte a
    `rep movsb` copies as an instruction: the large copies glibc's memcpy makes that way
    weigh more here than in time."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'callgrind.out')
        valgrind = ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}']
        server = Server(loop, variant, connections, valgrind)
        try:
            warm, seconds = LOAD_SECONDS['valgrind']
            server.load(size, warm)
            subprocess.run(['callgrind_control', '-z', str(server.pid)], check=True,
                           capture_output=True)
            requests = server.load(size, seconds)
            subprocess.run(['callgrind_control', '-d', str(server.pid)], check=True,
                           capture_output=True)
        finally:
            server.stop()
        dumps = sorted(Path(tmp).glob('callgrind.out.*'))
        text = dumps[-1].read_text()
        total = int(re.search(r'^(?:summary|totals): (\d+)', text, re.MULTILINE).group(1))
        return {'instructions': total / requests}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--loops', default='ferroloop,uvloop,rloop',
                        help=f'comma-separated, of {ALL_LOOPS}')
    parser.add_argument('--echo', default='protocol:1k,protocol:10k,sock:100k',
                        help='comma-separated VARIANT:SIZEk')
    parser.add_argument('--connections', type=int, default=10,
                        help='of the load generator; 1 gives the steadiest instruction counts '
                             '(every request a loop iteration of its own)')
    parser.add_argument('--what', default=','.join(WHAT), help=f'comma-separated, of {WHAT}')
    parser.add_argument('--syscalls', default='brk,mmap,munmap,madvise',
                        help='the system calls counted one by one, beside their total')
    args = parser.parse_args()
    shown = args.syscalls.split(',')
    for variant, size in (parse_echo(e) for e in args.echo.split(',')):
        for loop in args.loops.split(','):
            row = {}
            for what in args.what.split(','):
                if what == 'syscalls':
                    row.update(syscalls(loop, variant, size, args.connections, shown))
                elif what == 'instructions':
                    row.update(instructions(loop, variant, size, args.connections))
                else:
                    parser.error(f'--what {what!r}: expected some of {", ".join(WHAT)}')
            cells = [f'{key} {value:,.2f}' if value < 100 else f'{key} {value:,.0f}'
                     for key, value in row.items()]
            print(f'{variant} {size // 1024}k {loop}: ' + ', '.join(cells), flush=True)


if __name__ == '__main__':
    main()
