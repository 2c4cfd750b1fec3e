"""Run the own test suites of anyio and uvicorn on asyncio's loop and on ferroloop, and compare.

For each library: its pinned sdist from PyPI (the tests ship in it; its sha256 is checked),
a venv of its own made from this interpreter (the build's) with the library's pinned test
requirements (tests/libraries/requirements/<library>.txt) and ferroloop's wheel built from
this worktree, then the library's suite twice, the same command both times, with
tests/libraries/ferroloop_suite_plugin.py choosing the loop. Everything is kept under
.library-suites/ (downloads, venvs, logs, one JSON line per test per run).

The run fails when a test that passes on asyncio's loop fails on ferroloop and
tests/libraries/known_differences/<library>.txt does not list it. Tests that fail on
asyncio's loop too, listed tests that pass now (to be removed from the list: the lists only
shrink) and the proof that the tests ran on ferroloop's loop are reported. The tests of the
library's own loop choice that tests/libraries/unrouted/<library>.txt lists run on that choice
in both runs, and are reported as not run on ferroloop. A failed test that
tests/libraries/flaky/<library>.txt lists is run again (see verdicts.py).

    python scripts/library_suites.py [anyio] [uvicorn] [-- PYTEST ARGS]
    make test-libraries
"""

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LIBRARIES_DIR = os.path.join(ROOT, 'tests', 'libraries')
WORK = os.path.join(ROOT, '.library-suites')
sys.path.insert(0, LIBRARIES_DIR)

import verdicts  # noqa: E402  (tests/libraries/verdicts.py)

LOOPS = ('asyncio', 'ferroloop')
# A test that tests/libraries/flaky/<library>.txt lists and that failed is run again with the
# rest of its file (the tests before it are part of what it depends on), on the loop it failed
# on, until it passes or this many reruns failed too.
FLAKY_RERUNS = 3
# A run that hangs this long is ended; its unfinished tests count as not passing.
RUN_TIMEOUT = 600


@dataclass
class Suite:
    version: str
    sdist_sha256: str
    # Beyond the library's own pytest configuration, which stays in force. Deselected only
    # what needs the Internet or is no test of the library on a loop; see each entry.
    pytest_args: tuple
    # Added where `localhost` resolves to no IPv6 address (this machine and CI's: /etc/hosts
    # names only 127.0.0.1), for the tests that connect to `localhost` expecting ::1 too:
    # they fail on every loop there.
    without_ipv6_localhost: tuple = ()


SUITES = {
    'anyio': Suite(
        version='4.16.0',
        sdist_sha256='59bb03251907983d1603d27c3087ddb1e93299ea2163adcdba37899a4fb12ffb',
        # `network`: anyio's own mark for tests that resolve or connect to hosts on the
        # Internet, which this machine and CI cannot reach.
        pytest_args=('-m', 'not network'),
        without_ipv6_localhost=('-k', 'not (TestTCPStream and (ipv6 or dualstack or multi))'),
    ),
    'uvicorn': Suite(
        version='0.55.0',
        sdist_sha256='b65ae5f0f30cdcbc26a104b93d7d19723aa5f46fec3915a6c247d5795449331c',
        # tests/benchmarks: codspeed benchmarks (they need pytest-codspeed), not tests.
        # -n 4: uvicorn's own configuration asks for 8 xdist workers; its tests mostly wait
        # on sockets and timers, so 4 keep 2 cores busy.
        pytest_args=('--ignore=tests/benchmarks', '-n', '4'),
    ),
}


def localhost_has_ipv6():
    try:
        return any(family == socket.AF_INET6
                   for family, *_ in socket.getaddrinfo('localhost', None))
    except socket.gaierror:
        return False


def run(command, **kwargs):
    return subprocess.run(command, check=True, **kwargs)


def build_wheel():
    """ferroloop's wheel for this interpreter, from this worktree (release profile: the same
    cargo artefacts as `make build`, so nothing is rebuilt after it)."""
    out = os.path.join(WORK, 'wheel')
    shutil.rmtree(out, ignore_errors=True)
    maturin = os.path.join(os.path.dirname(sys.executable), 'maturin')
    run([maturin, 'build', '--release', '--quiet', '--interpreter', sys.executable,
         '--out', out], cwd=ROOT)
    [wheel] = os.listdir(out)
    return os.path.join(out, wheel)


def sdist_tree(name, suite, pip):
    """The library's sdist, fetched, checked and unpacked once: -> its folder."""
    tree = os.path.join(WORK, 'src', f'{name}-{suite.version}')
    if os.path.isdir(tree):
        return tree
    downloads = os.path.join(WORK, 'downloads')
    archive = os.path.join(downloads, f'{name}-{suite.version}.tar.gz')
    if not os.path.exists(archive):
        run([pip, 'download', '--quiet', '--no-deps', '--no-binary', ':all:',
             '--dest', downloads, f'{name}=={suite.version}'])
    with open(archive, 'rb') as file:
        digest = hashlib.sha256(file.read()).hexdigest()
    if digest != suite.sdist_sha256:
        raise SystemExit(f'{archive}: sha256 {digest}, expected {suite.sdist_sha256}')
    with tarfile.open(archive) as tar:
        tar.extractall(os.path.dirname(tree), filter='data')
    if not os.path.isdir(os.path.join(tree, 'tests')):
        raise SystemExit(f'{archive} holds no tests/')
    return tree


def venv(name):
    """The library's venv with its pinned requirements (made again when the file changes)."""
    path = os.path.join(WORK, f'venv-{name}')
    requirements = os.path.join(LIBRARIES_DIR, 'requirements', f'{name}.txt')
    with open(requirements, 'rb') as file:
        stamp = f'{sys.version}\n{hashlib.sha256(file.read()).hexdigest()}\n'
    stamp_path = os.path.join(path, '.requirements')
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        return path
    shutil.rmtree(path, ignore_errors=True)
    run([sys.executable, '-m', 'venv', path])
    pip = os.path.join(path, 'bin', 'pip')
    run([pip, 'install', '--quiet', '--upgrade', 'pip'])
    run([pip, 'install', '--quiet', '-r', requirements])
    with open(stamp_path, 'w') as file:
        file.write(stamp)
    return path


def environment_args(suite):
    return () if localhost_has_ipv6() else suite.without_ipv6_localhost


def run_suite(name, suite, tree, python, loop, extra_args, tag=''):
    """One run of the library's suite; -> (results, seconds, how it ended, its log)."""
    reports = os.path.join(WORK, 'reports')
    os.makedirs(reports, exist_ok=True)
    results_path = os.path.join(reports, f'{name}-{loop}{tag}.jsonl')
    log_path = os.path.join(reports, f'{name}-{loop}{tag}.log')
    if os.path.exists(results_path):
        os.remove(results_path)
    env = dict(os.environ, FERROLOOP_SUITE_LOOP=loop, FERROLOOP_SUITE_LIBRARY=name,
               FERROLOOP_SUITE_RESULTS=results_path, PYTHONPATH=LIBRARIES_DIR,
               PYTHONDONTWRITEBYTECODE='1')
    env.pop('PYTEST_ADDOPTS', None)
    command = [python, '-m', 'pytest', '-p', 'ferroloop_suite_plugin', '-p', 'no:cacheprovider',
               '-q', *suite.pytest_args, *environment_args(suite), *extra_args]
    started = time.monotonic()
    with open(log_path, 'w') as log:
        process = subprocess.Popen(command, cwd=tree, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=RUN_TIMEOUT)
            ended = f'pytest exit {code}'
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            ended = f'ended after {RUN_TIMEOUT} s'
    return verdicts.read_results(results_path), time.monotonic() - started, ended, log_path


def rerun_flaky(name, suite, tree, python, runs, flaky):
    """-> {loop: {test id: [outcome of each rerun]}} of the listed flaky tests that failed."""
    reruns = {}
    for loop in LOOPS:
        for test_id in flaky:
            if runs[loop][0].get(test_id, {}).get('outcome') != 'failed':
                continue
            outcomes = reruns.setdefault(loop, {}).setdefault(test_id, [])
            while len(outcomes) < FLAKY_RERUNS and (not outcomes or outcomes[-1] == 'failed'):
                again = run_suite(name, suite, tree, python, loop, [test_id.split('::')[0]],
                                  tag=f'-rerun{len(outcomes) + 1}')[0].get(test_id)
                outcomes.append(again['outcome'] if again else 'missing')
    return reruns


def report(name, suite, runs, extra_args, flaky, reruns):
    """Prints the comparison; -> True when ferroloop broke no test beyond the known list."""
    on_asyncio, on_ferroloop = runs['asyncio'][0], runs['ferroloop'][0]
    known_path = verdicts.list_path('known_differences', name)
    unrouted_path = verdicts.list_path('unrouted', name)
    known, unrouted = verdicts.read_list(known_path), verdicts.read_list(unrouted_path)
    result = verdicts.compare(on_asyncio, on_ferroloop, known, unrouted, flaky, reruns)
    relative_known = os.path.relpath(known_path, ROOT)
    print(f'\n== {name} {suite.version} on Python {sys.version.split()[0]}')
    if environment_args(suite):
        print(f'   localhost has no IPv6 address here: {" ".join(environment_args(suite))}')
    print(f'   {"loop":<10} {"passed":>7} {"failed":>7} {"skipped":>8} {"xfailed":>8} '
          f'{"seconds":>8}  log')
    for loop in LOOPS:
        results, seconds, ended, log_path = runs[loop]
        tally = verdicts.counts(results)
        print(f'   {loop:<10} {tally["passed"]:>7} {tally["failed"]:>7} {tally["skipped"]:>8} '
              f'{tally["xfailed"]:>8} {seconds:>8.0f}  {os.path.relpath(log_path, ROOT)} '
              f'({ended})')
    ran = sum(1 for test_id, entry in on_ferroloop.items()
              if entry['outcome'] != 'skipped' and test_id not in unrouted)
    print(f'   on ferroloop\'s loop: {result.on_target} of the {ran} tests that ran there '
          f'(the rest made no loop, as sync tests do, but {len(result.off_target)})')
    for test_id, loops in result.off_target:
        print(f'     ran other loops only: {test_id}: {", ".join(loops)}')
    if unrouted:
        print(f'   not run on ferroloop, left on {name}\'s own loop choice as '
              f'{os.path.relpath(unrouted_path, ROOT)} lists: {len(result.unrouted)}')
    for test_id, outcome, loops in result.unrouted:
        print(f'     {test_id}: {outcome} on {", ".join(loops) or "no loop"}  '
              f'# {unrouted[test_id]}')
    for test_id, why in result.unrouted_broken:
        print(f'     BROKEN: {test_id}: {why}')
    print(f'   failing on ferroloop only: {len(result.new_failures) + len(result.known_failures)}'
          f' ({len(result.known_failures)} listed in {relative_known}), and '
          f'{len(result.knock_ons)} knock-ons')
    for test_id, cause in result.known_failures:
        print(f'     known: {test_id}  # {cause}')
    for test_id, message in result.new_failures:
        print(f'     NEW:   {test_id}: {message}')
    for test_id, previous in result.knock_ons:
        print(f'     knock-on (a leak of the failed test before it, {previous}): {test_id}')
    for test_id in result.fixed:
        print(f'     passes now, remove it from {relative_known}: {test_id}')
    for test_id in result.stale:
        print(f'     listed, but does not pass on asyncio\'s loop either: {test_id}')
    if not extra_args:
        for test_id in result.absent:
            print(f'     listed, but no such test ran: {test_id}')
    flaky_list = os.path.relpath(verdicts.list_path('flaky', name), ROOT)
    for test_id, on_asyncio_loop, on_ferroloop_loop in result.flaky:
        print(f'     flaky on both loops ({flaky_list}): {test_id}: asyncio '
              f'{", then ".join(on_asyncio_loop) or "not run"}; ferroloop '
              f'{", then ".join(on_ferroloop_loop) or "not run"}')
    for test_id in result.skipped_on_ferroloop_only:
        print(f'     skipped on ferroloop only: {test_id}')
    print(f'   failing on asyncio\'s loop too (reported, not counted): '
          f'{len(result.asyncio_failures)}')
    for test_id, message in result.asyncio_failures:
        ferroloop_outcome = on_ferroloop.get(test_id, {}).get('outcome', 'missing')
        print(f'     {test_id} (ferroloop: {ferroloop_outcome}): {message}')
    return result.ok


def main():
    argv = sys.argv[1:]
    split = argv.index('--') if '--' in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     usage='%(prog)s [LIBRARY ...] [-- PYTEST ARGS]')
    parser.add_argument('libraries', nargs='*', metavar='LIBRARY',
                        help=f'of {", ".join(SUITES)} (default: all)')
    arguments = parser.parse_args(argv[:split])
    extra_args = argv[split + 1:]
    unknown = set(arguments.libraries) - set(SUITES)
    if unknown:
        parser.error(f'no suite for {", ".join(sorted(unknown))}: {", ".join(SUITES)}')
    names = arguments.libraries or list(SUITES)
    started = time.monotonic()
    os.makedirs(WORK, exist_ok=True)
    wheel = build_wheel()
    ok = True
    for name in names:
        suite = SUITES[name]
        path = venv(name)
        python = os.path.join(path, 'bin', 'python')
        run([python, '-m', 'pip', 'install', '--quiet', '--force-reinstall', '--no-deps', wheel])
        tree = sdist_tree(name, suite, os.path.join(path, 'bin', 'pip'))
        runs = {loop: run_suite(name, suite, tree, python, loop, extra_args) for loop in LOOPS}
        flaky = verdicts.read_list(verdicts.list_path('flaky', name))
        reruns = rerun_flaky(name, suite, tree, python, runs, flaky)
        ok = report(name, suite, runs, extra_args, flaky, reruns) and ok
    minutes = (time.monotonic() - started) / 60
    print(f'\nlibrary suites: {"no" if ok else "some"} tests fail on ferroloop beyond the known '
          f'differences ({minutes:.1f} min)')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
