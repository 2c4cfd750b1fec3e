"""pytest plugin that runs a library's own test suite on one loop and records each test.

scripts/library_suites.py loads it (``-p ferroloop_suite_plugin``, this folder on PYTHONPATH)
into the library's suite, in the library's own venv, once per loop. Its environment says:

FERROLOOP_SUITE_LOOP      'asyncio' (asyncio's default loop, the reference) or 'ferroloop'
FERROLOOP_SUITE_RESULTS   the JSON-lines file that gets one line per finished test
FERROLOOP_SUITE_LIBRARY   'anyio' or 'uvicorn': which of the ways in below apply

How the tests get ferroloop, when it is the loop:

- ferroloop's event loop policy, so every loop made without naming a factory is ferroloop's:
  ``asyncio.run()``, ``asyncio.Runner()``, ``asyncio.new_event_loop()``, and so anyio's pytest
  runner for a backend without a ``loop_factory`` (uvicorn's tests, anyio's tests that choose
  their backends themselves).
- anyio: the ``anyio_backend`` fixture, where the test does not parametrise it itself, is
  parametrised with ``("asyncio", {"debug": True, "loop_factory": ferroloop.new_event_loop})``
  in place of anyio's own list (asyncio, asyncio+uvloop, trio): its option for another loop,
  as a user would write it. On asyncio the same entry names ``asyncio.new_event_loop``, so
  both runs have the same test ids.
- uvicorn: its ``loop="asyncio"`` choice (``uvicorn.loops.asyncio.asyncio_loop_factory``, which
  names ``asyncio.SelectorEventLoop`` outright) gives ferroloop's loop, so servers started by
  ``Server.run()``/``uvicorn.run()`` run on it too.

Tests of the library's own loop choice (uvicorn's: that ``loop="asyncio"`` gives
``asyncio.SelectorEventLoop``) are no tests of a loop, and routing would fail them by design.
tests/libraries/unrouted/<library>.txt lists them, each with why; in the ferroloop run they
run with the routing taken away (asyncio's policy, the library's own choice), so on asyncio's
loop, and verdicts.py counts them apart: not run on ferroloop, neither a pass nor a failure
of it, and a listed test in which a ferroloop loop ran anyway breaks the run.

The proof: tests/compat/guard.py, the guard of CPython's suite, watches every loop that runs
(asyncio's running-loop registry) during each test's setup, call and teardown; each result
line says whether a ferroloop loop ran in that test (``on_target``) and which loop classes
did. A test that makes no loop (a sync test) shows none.
"""

import asyncio
import gc
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

import pytest
import verdicts     # tests/libraries/verdicts.py: this folder is on PYTHONPATH

LOOP = os.environ.get('FERROLOOP_SUITE_LOOP', 'asyncio')
RESULTS = os.environ.get('FERROLOOP_SUITE_RESULTS')
LIBRARY = os.environ.get('FERROLOOP_SUITE_LIBRARY', '')
if LOOP not in ('asyncio', 'ferroloop'):
    raise pytest.UsageError(f'FERROLOOP_SUITE_LOOP is asyncio or ferroloop, not {LOOP!r}')


def _load_guard():
    # By path: the library's own tests are a package named `tests` too.
    path = Path(__file__).resolve().parents[1] / 'compat' / 'guard.py'
    spec = importlib.util.spec_from_file_location('ferroloop_compat_guard', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GUARD = _load_guard().Guard()
if LOOP == 'ferroloop':
    GUARD.install()     # before ferroloop is imported, as the guard asks
    import ferroloop
    from ferroloop import versions

    GUARD.set_target_class(ferroloop.EventLoop)
    loop_factory = ferroloop.new_event_loop
else:
    loop_factory = asyncio.new_event_loop


UNROUTED = (verdicts.read_list(verdicts.list_path('unrouted', LIBRARY))
            if LOOP == 'ferroloop' else {})


class Routing:
    """The ways in to ferroloop's loop that are not the test's own choice (the policy, and
    uvicorn's "asyncio" choice); taken away for the tests UNROUTED lists."""

    def __init__(self):
        self.uvicorn_choice = None      # uvicorn's own asyncio_loop_factory, when routed

    def install(self):
        with warnings.catch_warnings():
            # 3.14+ deprecates policies; this is the one way in for code that names no
            # factory.
            warnings.simplefilter('ignore', DeprecationWarning)
            ferroloop.install()
        if LIBRARY == 'uvicorn':
            import uvicorn.loops.asyncio

            def asyncio_loop_factory(use_subprocess=False):
                return ferroloop.new_event_loop

            self.uvicorn_choice = uvicorn.loops.asyncio.asyncio_loop_factory
            uvicorn.loops.asyncio.asyncio_loop_factory = asyncio_loop_factory

    def uninstall(self):
        versions.set_event_loop_policy(None)
        if self.uvicorn_choice is not None:
            import uvicorn.loops.asyncio

            uvicorn.loops.asyncio.asyncio_loop_factory = self.uvicorn_choice
            self.uvicorn_choice = None


ROUTING = Routing()


def pytest_configure(config):
    if LOOP == 'ferroloop':
        ROUTING.install()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    unrouted = LOOP == 'ferroloop' and item.nodeid in UNROUTED
    if unrouted:
        ROUTING.uninstall()
    try:
        yield
    finally:
        if unrouted:
            ROUTING.install()


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc):
    # Before pytest's own hooks read the parametrize marks and the fixture's params: with a
    # mark naming anyio_backend, the fixture's own list is not used.
    if LIBRARY != 'anyio' or 'anyio_backend' not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers('parametrize'):
        names = mark.args[0] if mark.args else mark.kwargs.get('argnames', ())
        if isinstance(names, str):
            names = [name.strip() for name in names.split(',')]
        if 'anyio_backend' in names:
            return      # the test's own backends; the policy routes the plain asyncio one
    backend = ('asyncio', {'debug': True, 'loop_factory': loop_factory})
    metafunc.definition.add_marker(pytest.mark.parametrize(
        'anyio_backend', [pytest.param(backend, id='asyncio')], indirect=True))


def pytest_runtest_logstart(nodeid, location):
    GUARD.begin()


class LeakCollector:
    """Collects garbage around a failed test, so that what it leaked warns in it or the next.

    A leak (a Popen object whose child still runs, an unclosed socket) warns when it is
    collected, and pytest fails the test in whose phase the warning came: left to chance,
    any later test, which no list of known differences can name. Failed tests leak most
    (an exception thrown through half-made objects), and their traceback holds the leak:
    sys.last_* keeps it for post-mortem debugging until the next failure, anyio's test
    runner keeps the exception until it runs the next test. So after a failure, garbage is
    collected at the end of the failed test's teardown and of the next test's phases
    (before pytest looks for such warnings: its hooks are trylast too, registered before
    this plugin, so they run after these), and the leak is reported by the failed test or
    the next one (verdicts.py counts the next one's warning as a knock-on). Only after
    failures: a collection per phase of every test made runs several times slower.
    """

    def __init__(self):
        self.phases_left = 0

    def failed(self, phase):
        # The rest of this test's phases that have a collection (none after a teardown),
        # then the next test's three.
        self.phases_left = 3 if phase == 'teardown' else 4

    def maybe_collect(self):
        if not self.phases_left:
            return
        self.phases_left -= 1
        for name in ('last_type', 'last_value', 'last_traceback', 'last_exc'):
            if hasattr(sys, name):
                setattr(sys, name, None)
        gc.collect()


LEAKS = LeakCollector()


@pytest.hookimpl(trylast=True)
def pytest_runtest_setup(item):
    LEAKS.maybe_collect()


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item):
    LEAKS.maybe_collect()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    LEAKS.maybe_collect()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == 'teardown':
        # Carried on the report, so that it crosses from an xdist worker to the controller.
        seen = GUARD.end()
        outcome.get_result().user_properties.append(
            ('ferroloop_loops', {'on_target': seen['target_ran'], 'loops': seen['loops']}))


class Recorder:
    """Folds each test's setup/call/teardown reports into one line of RESULTS, written as
    soon as the test ends (so in the order each worker ran them): a crash or a hang later
    in the run keeps what was recorded."""

    def __init__(self, path):
        self.file = open(path, 'a', encoding='utf-8')
        self.pending = {}

    def add(self, report):
        node = getattr(report, 'node', None)     # under xdist, the worker that ran it
        worker = node.gateway.id if node is not None else ''
        entry = self.pending.setdefault(
            report.nodeid, {'outcome': 'passed', 'message': '', 'worker': worker})
        if report.failed:
            if entry['outcome'] != 'failed':
                entry['outcome'] = 'failed'
                entry['message'] = _crash_message(report)
        elif report.skipped and entry['outcome'] == 'passed':
            entry['outcome'] = 'xfailed' if hasattr(report, 'wasxfail') else 'skipped'
        if report.when == 'teardown':
            for name, value in report.user_properties:
                if name == 'ferroloop_loops':
                    entry.update(value)
            del self.pending[report.nodeid]
            self.file.write(json.dumps({'id': report.nodeid, **entry}) + '\n')
            self.file.flush()

    def close(self):
        self.file.close()


def _crash_message(report):
    crash = getattr(report.longrepr, 'reprcrash', None)
    text = crash.message if crash is not None else str(report.longrepr)
    return f'{report.when}: {text.strip().splitlines()[0] if text.strip() else ""}'[:300]


_recorder = None


def pytest_sessionstart(session):
    global _recorder
    # Under xdist the controller records (it sees every worker's reports); workers do not.
    if RESULTS and not hasattr(session.config, 'workerinput'):
        _recorder = Recorder(RESULTS)


def pytest_runtest_logreport(report):
    if report.failed:
        LEAKS.failed(report.when)
    if _recorder is not None:
        _recorder.add(report)


def pytest_sessionfinish(session):
    if _recorder is not None:
        _recorder.close()
