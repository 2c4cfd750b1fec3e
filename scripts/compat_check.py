"""Run CPython's asyncio test suite on ferroloop and compare with the known failures.

Runs the test.test_asyncio that ships with this interpreter through the harness in
tests/compat/. Fails when a set-(a) test does not pass and is not listed in
tests/compat/known_failures/<python version>.txt (a regression), or when the guard shows a
set-(a) test that did not run on the loop under test. A listed test that now passes is
reported: remove it from the list (``--update`` does), so that the list only shrinks.

For another loop (``--loop asyncio:new_event_loop``, the baseline) no list applies: every
set-(a) failure counts. Set (b) is reported, never held against the loop.

    python scripts/compat_check.py                     # set (a) on ferroloop, as `make test`
    python scripts/compat_check.py --loop asyncio:new_event_loop --sets ab
    python scripts/compat_check.py -m test_streams -v --json out.json
    python scripts/compat_check.py --summarize out.json
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests'))

from compat import report, runner

FERROLOOP = 'ferroloop:new_event_loop'
PASSING = ('passed', 'skipped', 'expected_failure')


def known_failures_path():
    version = f'{sys.version_info.major}.{sys.version_info.minor}'
    return os.path.join(ROOT, 'tests', 'compat', 'known_failures', f'{version}.txt')


def read_known_failures(path):
    if not os.path.exists(path):
        return set(), ''
    with open(path) as f:
        lines = f.readlines()
    header = ''.join(line for line in lines if line.startswith('#'))
    return {line.split('#')[0].strip() for line in lines} - {''}, header


def write_known_failures(path, tests, header):
    with open(path, 'w') as f:
        f.write(header + ''.join(f'{test}\n' for test in sorted(tests)))


def judge(results, known):
    """-> (regressions, listed tests that now pass, set-(a) tests not run on the target)."""
    regressions, fixed, off_target = [], [], []
    for test_id, record in sorted(results['tests'].items()):
        if record['set'] != 'a':
            continue
        passing = record['outcome'] in PASSING
        if record['outcome'] != 'skipped' and record['guard'] not in ('target', None):
            off_target.append(f"{test_id}: guard says {record['guard']} {record.get('loops', '')}")
        if not passing and test_id not in known:
            regressions.append(f"{test_id}: {record['outcome']} {record.get('detail', '')}")
        elif passing and test_id in known:
            fixed.append(test_id)
    return regressions, fixed, off_target


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--loop', default=FERROLOOP,
                        help=f'module:callable making a new loop (default {FERROLOOP})')
    parser.add_argument('--sets', default='a', choices=['a', 'b', 'ab'],
                        help='which sets to run (default a; ab runs everything)')
    parser.add_argument('-m', dest='modules', action='append', default=[],
                        help='only this test module (repeatable), e.g. -m test_streams')
    parser.add_argument('-j', dest='jobs', type=int, default=1,
                        help='modules at a time (default 1: timing tests are noisy on 2 cores)')
    parser.add_argument('--timeout', type=float, default=35.0, help='seconds per test at most')
    parser.add_argument('--json', help='keep the per-test results here')
    parser.add_argument('--logs', help='keep the worker logs (full tracebacks) under this folder')
    parser.add_argument('--run-replaced', action='store_true',
                        help="also run upstream's stdlib-loop copies of the generated classes")
    parser.add_argument('--guard-selftest', action='store_true',
                        help='hand out asyncio loops behind the guard\'s back: it must say so')
    parser.add_argument('--update', action='store_true', help='drop listed tests that now pass')
    parser.add_argument('--summarize', metavar='JSON', help='report on saved results, run nothing')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='per-class tables for every set, every failing test')
    args = parser.parse_args()

    if args.summarize:
        print(report.render(runner.load(args.summarize), verbose=args.verbose))
        return 0
    options = runner.Options(loop=args.loop, sets=args.sets, modules=args.modules,
                             jobs=args.jobs, timeout=args.timeout, log_dir=args.logs,
                             run_replaced=args.run_replaced, guard_selftest=args.guard_selftest)
    print(f'compat: test.test_asyncio of Python {sys.version.split()[0]} on {args.loop}, '
          f'set(s) {args.sets}', flush=True)
    results = runner.run(options, progress=lambda line: print(line, flush=True))
    if args.json:
        runner.save(results, args.json)
    print()
    print(report.render(results, verbose=args.verbose))
    if args.logs:
        print(f"\ncompat: worker logs in {results['meta']['logs']}")

    path = known_failures_path()
    known, header = read_known_failures(path) if args.loop == FERROLOOP else (set(), '')
    regressions, fixed, off_target = judge(results, known)
    set_a = [r for r in results['tests'].values() if r['set'] == 'a']
    passed = sum(r['outcome'] in PASSING for r in set_a)
    print(f'\ncompat: set (a) {passed}/{len(set_a)} passed', end='')
    if args.loop == FERROLOOP:
        listed = os.path.relpath(path, ROOT) if os.path.exists(path) else f'no {os.path.relpath(path, ROOT)}'
        print(f'; {len(known)} listed as known failures ({listed})')
    else:
        print(' (no known-failures list for this loop: every failure counts)')
    if fixed:
        print(f'compat: {len(fixed)} listed test(s) now pass; remove them from the list:')
        print(''.join(f'    {test_id}\n' for test_id in fixed), end='')
        if args.update:
            write_known_failures(path, known - set(fixed), header)
            print('compat: list updated')
    for line in off_target:
        print('compat: NOT ON THE LOOP UNDER TEST', line)
    for line in regressions:
        print('compat: REGRESSION', line)
    broken = [f"{module}: {info['broken']}" for module, info in sorted(results['modules'].items())
              if info.get('broken')]
    for line in broken:
        print('compat: MODULE NOT RUN', line)
    return 1 if regressions or off_target or broken else 0


if __name__ == '__main__':
    sys.exit(main())
