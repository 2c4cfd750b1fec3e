"""Build ferroloop for each other CPython it supports and run every test there.

For each version: its interpreter and a venv `.venv-3.X` (scripts/pythons), the test
requirements (tests/requirements.txt), an editable release build (its own cargo target
folder, so versions do not rebuild each other), then pytest and CPython's own test_asyncio of
that version through tests/compat (scripts/compat_check.py, with that version's list of known
failures). `make test-versions` runs it; .ci/run runs that after `make test`.

    python3 scripts/test_versions.py [VERSION ...]     # default: every version scripts/pythons knows
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, 'pythons'))

import versions as known  # noqa: E402  (scripts/pythons/versions.py)


def step(name, command, env=None):
    """Runs ``command`` in the repo, its output passed through; returns (ok, seconds)."""
    print(f'\n== {name}: {" ".join(command)}', flush=True)
    started = time.monotonic()
    ok = subprocess.run(command, cwd=ROOT, env=env).returncode == 0
    return ok, time.monotonic() - started


def venv_python(version):
    out = subprocess.run([sys.executable, os.path.join(HERE, 'pythons'), '--venv',
                          os.path.join(ROOT, '.venv-{version}'), version],
                         check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip()


def test_version(version):
    """The steps' outcomes for one version, stopping at the first that fails."""
    results = []
    python = venv_python(version)
    venv = os.path.dirname(os.path.dirname(python))
    env = dict(os.environ, VIRTUAL_ENV=venv,
               CARGO_TARGET_DIR=os.path.join(ROOT, 'target', f'py{version}'))
    steps = [
        ('requirements', [python, '-m', 'pip', 'install', '--quiet', '-r',
                          os.path.join('tests', 'requirements.txt')]),
        ('build', [os.path.join(venv, 'bin', 'maturin'), 'develop', '--release', '--quiet']),
        ('pytest', [python, '-m', 'pytest', '-q']),
        ('CPython suite', [python, os.path.join('scripts', 'compat_check.py')]),
    ]
    for name, command in steps:
        ok, seconds = step(f'{version} {name}', command, env)
        results.append((name, ok, seconds))
        if not ok:
            break
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('versions', nargs='*', default=list(known.SUITES))
    args = parser.parse_args()
    summary = {version: test_version(version) for version in args.versions}
    print('\nversion  step            result  seconds')
    failed = False
    for version, results in summary.items():
        for name, ok, seconds in results:
            failed |= not ok
            print(f'{version:8} {name:15} {"ok" if ok else "FAILED":7} {seconds:7.0f}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
