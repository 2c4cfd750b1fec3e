"""Run CPython's asyncio suite, set (a), on ferroloop and compare with the known failures.

Fails when a set-(a) test that is not listed in tests/compat/known_failures.txt does not
pass (a regression), or when the guard shows a test did not run on ferroloop. A listed test
that now passes is reported: remove it from the list (``--update`` does that), so the list
only ever shrinks.

    python scripts/compat_check.py [--update] [-m test_module ...]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KNOWN = os.path.join(ROOT, 'tests', 'compat', 'known_failures.txt')
RUNNER_CANDIDATES = [
    os.environ.get('FERROLOOP_COMPAT_RUNNER', ''),
    os.path.join(ROOT, '..', 'shared', 'compat', 'run_cpython_suite.py'),
]


def load_known():
    with open(KNOWN) as f:
        return {line.split('#')[0].strip() for line in f if line.split('#')[0].strip()}


def write_known(tests, header):
    with open(KNOWN, 'w') as f:
        f.write(header)
        for test in sorted(tests):
            f.write(test + '\n')


def known_header():
    with open(KNOWN) as f:
        return ''.join(line for line in f if line.startswith('#'))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--update', action='store_true', help='drop listed tests that now pass')
    parser.add_argument('-m', dest='modules', action='append', default=[], help='only this module')
    parser.add_argument('--json', help='keep the raw results here')
    args = parser.parse_args()

    runner = next((p for p in RUNNER_CANDIDATES if p and os.path.exists(p)), None)
    if runner is None:
        print('compat: run_cpython_suite.py not found (expected ../shared/compat beside the repo, '
              'or FERROLOOP_COMPAT_RUNNER)', file=sys.stderr)
        return 2
    out = args.json or tempfile.mktemp(prefix='ferroloop-compat-', suffix='.json')
    cmd = [sys.executable, runner, '--loop', 'ferroloop:new_event_loop', '--only-a', '--json', out]
    for module in args.modules:
        cmd += ['-m', module]
    print('compat:', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=False)
    with open(out) as f:
        results = json.load(f)['tests']

    known = load_known()
    set_a = {name: r for name, r in results.items() if r['set'] == 'a'}
    regressions, fixed, off_target = [], [], []
    for name, r in sorted(set_a.items()):
        ok = r['outcome'] in ('passed', 'skipped', 'expected_failure')
        if r.get('guard') not in (None, 'target'):
            off_target.append(f"{name}: guard verdict {r.get('guard')}")
        if not ok and name not in known:
            detail = r.get('detail') or {}
            regressions.append(f"{name}: {r['outcome']} {detail}")
        elif ok and name in known:
            fixed.append(name)
    passed = sum(r['outcome'] == 'passed' for r in set_a.values())
    print(f'\ncompat: set (a) {passed}/{len(set_a)} passed; {len(known)} listed as known failures')
    if fixed:
        print(f'compat: {len(fixed)} listed test(s) now pass; remove them from {KNOWN}:')
        for name in fixed:
            print('   ', name)
        if args.update:
            write_known(known - set(fixed), known_header())
            print('compat: list updated')
    for line in off_target:
        print('compat: NOT ON TARGET', line)
    for line in regressions:
        print('compat: REGRESSION', line)
    if regressions or off_target:
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
