"""Obtain the CPython versions ferroloop is tested on, from Debian's packages.

    python3 scripts/pythons 3.14                      # -> the path of a python3.14
    python3 scripts/pythons 3.13 3.14 3.15            # one path a line, in that order
    python3 scripts/pythons --venv '.venv-{version}' 3.13 3.14 3.15   # -> each venv's python

Each version is a private root under the cache folder (--cache, else $FERROLOOP_PYTHONS,
else ~/.cache/ferroloop/pythons): Debian's interpreter with venv, ssl, _asyncio, its headers
and its test.test_asyncio (private_root.py says how it runs on this machine). Made once; a
later run only prints its path. --venv makes (or reuses) a venv with pip for each version.
Progress and timings go to stderr, paths to stdout.
"""

import argparse
import fcntl
import os
import subprocess
import sys
import time

import private_root
import venvs
import versions
from debian_archive import ArchiveError, SuiteApt, log


def default_cache():
    if os.environ.get('FERROLOOP_PYTHONS'):
        return os.environ['FERROLOOP_PYTHONS']
    base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    return os.path.join(base, 'ferroloop', 'pythons')


def main():
    parser = argparse.ArgumentParser(prog='scripts/pythons', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('versions', nargs='+', metavar='VERSION',
                        help=f'one of {", ".join(versions.SUITES)}')
    parser.add_argument('--cache', default=default_cache(),
                        help='where the roots live (default %(default)s)')
    parser.add_argument('--venv', metavar='PATH',
                        help="also make a venv with pip there ('{version}' is replaced) "
                             'and print its python instead')
    parser.add_argument('--refresh', action='store_true',
                        help="make the roots anew from the suite's current packages")
    args = parser.parse_args()
    unknown = [v for v in args.versions if v not in versions.SUITES]
    if unknown:
        parser.error(f'no way to obtain {", ".join(unknown)}: this script knows '
                     f'{", ".join(versions.SUITES)} (scripts/pythons/versions.py says why)')
    if args.venv and len(args.versions) > 1 and '{version}' not in args.venv:
        parser.error(f"--venv {args.venv!r} names one folder for {len(args.versions)} versions: "
                     "put '{version}' in it")

    cache = os.path.abspath(args.cache)
    os.makedirs(cache, exist_ok=True)
    # one maker at a time: two runs on one root would unpack over each other
    with open(os.path.join(cache, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            paths = obtain(cache, args.versions, args.venv, args.refresh)
        except (ArchiveError, RuntimeError, subprocess.CalledProcessError) as error:
            log(f'scripts/pythons: {error}')
            return 1
    print('\n'.join(paths))
    return 0


def obtain(cache, wanted, venv_template, refresh):
    apts = {}
    paths = []
    try:
        for version in wanted:
            root = os.path.join(cache, version)
            python = private_root.interpreter(root, version)
            record = None if refresh else private_root.ready(root, version)
            if record is None:
                suite = versions.SUITES[version]
                if suite not in apts:
                    apts[suite] = SuiteApt(os.path.join(cache, f'apt-{suite}'), suite)
                started = time.monotonic()
                record = private_root.build(root, version, apts[suite],
                                            versions.packages(version))
                log(f'{version}: CPython {record["version"]} ready in '
                    f'{time.monotonic() - started:.1f}s: {python}')
            if venv_template:
                python = venvs.make(python, os.path.abspath(venv_template.format(version=version)))
            paths.append(python)
    finally:
        for apt in apts.values():
            apt.clean()
    return paths


if __name__ == '__main__':
    sys.exit(main())
