"""Run the benchmark suite: every workload on asyncio's loop, uvloop, rloop and ferroloop, the loops
taking turns round by round, and write the table, the JSON and the chart.

    python -m bench.run                  # the full suite, under 15 min -> bench/results/latest.*
    python -m bench.run --quick          # a short smoke run -> bench/results/tmp/latest.*
    python -m bench.run --only 'echo-sock-*' --rounds 5
    python -m bench.run --list           # the workload names --only matches
"""

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ''):  # run as a file (python bench/run.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import chart, report
from bench.loops import ALL_LOOPS, LOOPS
from bench.machine import CpuAccount, facts, load_average
from bench.processes import REPO_ROOT, BenchmarkError, NotAvailable
from bench.results import ERROR, NOT_AVAILABLE, SKIPPED
from bench.sessions import EchoSession, HttpSession, MicroSession, new_cells
from bench.workloads import (
    ECHO_SHAPES,
    ECHO_TRANSPORTS,
    FULL,
    HTTP_CONNECTIONS,
    QUICK,
    echo_workloads,
    http_workloads,
    micro_workloads,
    native_workload,
)

BENCH_DIR = REPO_ROOT / 'bench'
LOADGEN_DIR = BENCH_DIR / 'loadgen'


def selected(key, patterns):
    """Whether --only lets ``key`` through: a glob, or a plain word matched anywhere."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(key, p if any(c in p for c in '*?[') else f'*{p}*')
               for p in patterns)


def plan(settings, loops, patterns, socket_dir):
    """The sessions to run, in order, each holding its cells."""
    sessions = []
    loadgen = LOADGEN_DIR / 'target' / 'release' / 'loadgen'
    native_echo = LOADGEN_DIR / 'target' / 'release' / 'native_echo'
    for transport in ECHO_TRANSPORTS:
        for size, connections in ECHO_SHAPES:
            workloads = [w for w in echo_workloads(transport, size, connections, loops)
                         if selected(w.key, patterns)]
            native = native_workload(transport, size, connections)
            if workloads or selected(native.key, patterns):
                workloads.append(native)  # every echo load is measured with its ceiling
                cells = [cell for workload in workloads for cell in new_cells(workload)]
                sessions.append(EchoSession(cells, settings, socket_dir, loadgen, native_echo))
    for http in http_workloads(loops):
        if not selected(http.key, patterns):
            continue
        cells = new_cells(http)
        sessions.append(HttpSession(cells, settings, HTTP_CONNECTIONS))
        if shutil.which('wrk') is None:
            for cell in cells:
                cell.settle(SKIPPED, 'wrk is not installed (apt-get install wrk)')
    micro = [w for w in micro_workloads(settings.micro_scale, loops) if selected(w.key, patterns)]
    if micro:
        sessions.append(MicroSession([c for w in micro for c in new_cells(w)], settings))
    return sessions


def estimate_seconds(sessions, settings):
    """A rough duration, assuming every cell runs (as it will once ferroloop has transports)."""
    total = 0.0
    for session in sessions:
        runs = len(session.cells) * settings.rounds
        if isinstance(session, EchoSession):
            total += 1.0 + runs * (settings.echo_warmup + settings.echo_duration + 0.15)
        elif isinstance(session, HttpSession):
            total += 1.5 + len(session.cells) * settings.http_warmup
            total += runs * (settings.http_duration + 0.2)
        else:
            total += runs * (2.0 * settings.micro_scale + 0.2)
    return total


def build_native_tools():
    """Build the load generator and the native echo server (quick when up to date)."""
    subprocess.run(['cargo', 'build', '--release', '--quiet', '--manifest-path',
                    str(LOADGEN_DIR / 'Cargo.toml')], check=True)


class Retries:
    """A run during which other processes took more than DISTURBED of a CPU is measured
    again, once, while the time budget lasts (so the suite keeps to its 15 minutes): on a
    shared machine one compile job landing on the server's core can divide a figure by ten."""

    DISTURBED = 0.10   # CPU-seconds others took per second of the run

    def __init__(self, budget_seconds):
        self.seconds_left = budget_seconds
        self.used = 0

    def take(self, seconds):
        """Whether a run of about ``seconds`` may be measured again."""
        if self.seconds_left < seconds:
            return False
        self.seconds_left -= seconds
        self.used += 1
        return True


def measure_watched(session, cell):
    """One run, with the seconds it took and the share of a CPU other processes took."""
    account, started = CpuAccount(), time.monotonic()
    value, detail = session.measure(cell)
    seconds = time.monotonic() - started
    others = account.others_seconds(also_ours=detail.get('server_cpu_s', 0.0))
    detail['others_cpu_share'] = round(others / seconds, 3)
    return value, detail, seconds


def run_sessions(sessions, rounds, retries):
    for session in sessions:
        with session:
            for round_number in range(1, rounds + 1):
                for cell in session.cells:
                    if not cell.done:
                        run_cell(session, cell, f'[{round_number}/{rounds}]', retries)
        for cell in session.cells:
            if cell.status == NOT_AVAILABLE:
                print(f'{cell.workload.key} on {cell.runner}: n/a', file=sys.stderr)


def run_cell(session, cell, round_label, retries):
    name = f'{round_label} {cell.workload.key} on {cell.runner}'
    try:
        value, detail, seconds = measure_watched(session, cell)
        if detail['others_cpu_share'] > Retries.DISTURBED and retries.take(seconds):
            print(f'{name}: disturbed (other processes took {detail["others_cpu_share"]:.0%} '
                  f'of a CPU), measuring again', file=sys.stderr)
            value, detail, _ = measure_watched(session, cell)
    except NotAvailable as error:
        cell.settle(NOT_AVAILABLE, str(error))
    except BenchmarkError as error:
        cell.settle(ERROR, str(error))
        print(f'{name}: ERROR {error}', file=sys.stderr)
    else:
        cell.add(value, detail)
        print(f'{name}: {report.rate(value)} {cell.workload.unit}', file=sys.stderr)


def main():
    summary, _, examples = __doc__.partition('\n\n')
    parser = argparse.ArgumentParser(description=' '.join(summary.split()), epilog=examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='short runs, 2 rounds, micro at 5%%')
    parser.add_argument('--rounds', type=int, help='rounds per workload (default 3, quick 2)')
    parser.add_argument('--only', action='append', default=[], metavar='PATTERN',
                        help='workloads whose name matches (glob, or a word); repeatable')
    parser.add_argument('--loops', default=','.join(LOOPS),
                        help=f'comma-separated subset of {",".join(ALL_LOOPS)}')
    parser.add_argument('--output', type=Path,
                        help='directory for latest.{json,md,png} (default bench/results for the '
                             'full suite, bench/results/tmp for a quick or partial run)')
    parser.add_argument('--list', action='store_true', help='print the workload names and exit')
    parser.add_argument('--replot', type=Path, metavar='JSON',
                        help='measure nothing: rewrite the table and chart from a saved JSON')
    args = parser.parse_args()
    if args.replot:
        cells, meta = report.read_json(args.replot)
        write_outputs(args.output or args.replot.parent, cells, meta, json_too=False)
        return

    settings = QUICK if args.quick else FULL
    if args.rounds:
        settings = type(settings)(**{**settings.__dict__, 'rounds': args.rounds})
    loops = tuple(name for name in ALL_LOOPS if name in args.loops.split(','))
    unknown = set(args.loops.split(',')) - set(ALL_LOOPS)
    if unknown or not loops:
        parser.error(f'--loops: unknown {", ".join(sorted(unknown)) or "(empty)"}')
    partial = args.quick or args.only or args.rounds or loops != LOOPS
    output = args.output or (BENCH_DIR / 'results' / ('tmp' if partial else ''))

    with tempfile.TemporaryDirectory(prefix='ferroloop-bench-') as socket_dir:
        sessions = plan(settings, loops, args.only, socket_dir)
        if args.list:
            keys = dict.fromkeys(cell.workload.key for s in sessions for cell in s.cells)
            print('\n'.join(keys))
            return
        if not sessions:
            parser.error(f'--only {args.only} matches no workload (see --list)')
        runs = sum(len(s.cells) for s in sessions) * settings.rounds
        print(f'{runs} runs planned, about {estimate_seconds(sessions, settings) / 60:.0f} min '
              f'if every loop runs every workload (more if disturbed runs are measured again)',
              file=sys.stderr)
        if any(isinstance(session, EchoSession) for session in sessions):
            build_native_tools()
        meta = {'started': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                'loops': list(loops), 'settings': settings.__dict__, **facts(),
                'load_before': load_average()}
        started = time.monotonic()
        cpu = CpuAccount()
        retries = Retries(settings.retry_budget)
        run_sessions(sessions, settings.rounds, retries)
        meta['retried_runs'] = retries.used
        elapsed = time.monotonic() - started
        meta['elapsed_s'] = round(elapsed, 1)
        meta['load_after'] = load_average()
        cpu_seconds = elapsed * (os.cpu_count() or 1)
        meta['others_cpu_share'] = round(cpu.others_seconds() / cpu_seconds, 3)

    write_outputs(output, [cell for session in sessions for cell in session.cells], meta)


def write_outputs(output, cells, meta, json_too=True):
    output.mkdir(parents=True, exist_ok=True)
    if json_too:
        report.write_json(output / 'latest.json', cells, meta)
    table = report.markdown(cells, meta)
    (output / 'latest.md').write_text(table)
    chart.write_png(output / 'latest.png', cells, meta)
    print(table)
    print(f'wrote {output}/latest.{{json,md,png}}', file=sys.stderr)


if __name__ == '__main__':
    main()
