"""Runs the tests of one test.test_asyncio module on the loop under test, in its own process.

Started by runner.py, one process per module (and a new one after a hang or a crash, which
skips what is done). It tells the runner what happens through a file of JSON lines, written
as it goes so that a killed worker leaves everything up to its last test:

    plan      the tests it will run: [[id, set, why], ...], the unclassified ones, notes
    start     a test begins
    loop      the first loop of a kind (target, other, fake) a test showed
    result    a test's outcome, time, detail and guard verdict
    restored  global state the previous test left changed, now put back
    fixture   a class or module fixture that failed or skipped
    skipped   the whole module skips on this platform
    finished  every test ran

A test that overruns is stopped by faulthandler's watchdog, a C thread that needs neither
the GIL nor a signal (tests use SIGALRM), so it also stops a loop stuck in native code.
"""

import argparse
import faulthandler
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
import unittest

if __name__ == '__main__':
    # Run as a file: make the package importable, and nothing else from tests/compat.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from compat.classification import REPLACED, UNCLASSIFIED
from compat.guard import Guard
from compat.isolation import GlobalState
from compat.routing import Router
from compat.versions import for_python

SEVERITY = ['skipped', 'passed', 'expected_failure', 'unexpected_success', 'failed', 'error']


class EventFile:
    def __init__(self, path):
        # Open for the worker's life: it ends with os._exit(), after a flush per event.
        self.file = open(path, 'a', encoding='utf-8')   # noqa: SIM115
        self.lock = threading.Lock()    # loops call back into the guard from other threads

    def write(self, event, **fields):
        line = json.dumps({'event': event, **fields}, default=str) + '\n'
        with self.lock:
            self.file.write(line)
            self.file.flush()


def describe(exc_info):
    """'Type: first line of the message @ file:line function' of the innermost frame."""
    kind, value, tb = exc_info
    lines = str(value).strip().splitlines()
    message = lines[0][:300] if lines else ''
    name = kind.__name__
    if name == 'AttributeError' and "'asyncio.futures' has no attribute 'TimeoutError'" in message:
        # 3.11's test_utils.run_until() means to raise TimeoutError after SHORT_TIMEOUT
        # and names it wrongly: what happened is that the awaited condition never came.
        name, message = 'RunUntilTimeout', 'test_utils.run_until() gave up waiting'
    text = f'{name}: {message}' if message else name
    frames = traceback.extract_tb(tb)
    if frames:
        last = frames[-1]
        text += f' @ {os.path.basename(last.filename)}:{last.lineno} {last.name}'
    return text


class EventResult(unittest.TestResult):
    """Writes each test's outcome as an event; keeps the watchdog armed between tests."""

    def __init__(self, events, guard, timeouts, default_timeout):
        super().__init__()
        self.events = events
        self.guard = guard
        self.timeouts = timeouts            # class name -> seconds, for classes that hung
        self.default_timeout = default_timeout
        self.current = None
        self.outcome = None
        self.detail = ''
        self.started = 0.0
        self.state = None          # (test id, GlobalState) of the test that ran last

    def arm_watchdog(self, seconds):
        faulthandler.dump_traceback_later(seconds, exit=True)

    def put_back_state(self):
        # Called when the next test starts: IsolatedAsyncioTestCase closes its runner
        # after stopTest(), and what that leaves belongs to the test before.
        if self.state is None:
            return
        test_id, state = self.state
        self.state = None
        try:
            changed = state.restore()
        except Exception as exc:    # noqa: BLE001 - isolation must never stop the run
            changed = [f'restoring failed: {exc!r}']
        if changed:
            self.events.write('restored', test=test_id, what=changed)

    def note(self, outcome, detail=''):
        if self.outcome is None or SEVERITY.index(outcome) > SEVERITY.index(self.outcome):
            self.outcome = outcome
            self.detail = detail or self.detail

    def log_traceback(self, test, label, exc_info):
        text = ''.join(traceback.format_exception(*exc_info))
        sys.stderr.write(f'--- {label}: {test}\n{text}\n')
        sys.stderr.flush()

    def is_fixture(self, test):
        return not isinstance(test, unittest.TestCase) or self.current is None

    def startTest(self, test):
        super().startTest(test)
        self.put_back_state()
        self.current = test.id()
        self.outcome, self.detail = None, ''
        self.events.write('start', test=self.current)
        self.arm_watchdog(self.timeouts.get(type(test).__name__, self.default_timeout))
        self.state = (self.current, GlobalState())
        self.guard.begin()
        self.started = time.monotonic()

    def stopTest(self, test):
        seconds = time.monotonic() - self.started
        verdict = self.guard.end()
        super().stopTest(test)
        self.events.write('result', test=test.id(), outcome=self.outcome or 'passed',
                     seconds=round(seconds, 3), detail=self.detail, guard=verdict)
        self.current = None
        self.arm_watchdog(self.default_timeout)    # class and module fixtures come next

    def addSuccess(self, test):
        super().addSuccess(test)
        self.note('passed')

    def addError(self, test, err):
        super().addError(test, err)
        self.log_traceback(test, 'error', err)
        if self.is_fixture(test):
            self.events.write('fixture', name=str(test), outcome='error', detail=describe(err))
        else:
            self.note('error', describe(err))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.log_traceback(test, 'failure', err)
        self.note('failed', describe(err))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if self.is_fixture(test):
            self.events.write('fixture', name=str(test), outcome='skipped', detail=str(reason))
        else:
            self.note('skipped', str(reason)[:300])

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.note('expected_failure')

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.note('unexpected_success')

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.log_traceback(subtest, 'subtest', err)
            failed = issubclass(err[0], test.failureException)
            self.note('failed' if failed else 'error', '[subtest] ' + describe(err))



def plan_module(module, short_name, classification, sets, run_replaced):
    """-> (tests to run as [(test, id, set, why)], ids of unclassified tests left out)."""
    loader = unittest.TestLoader()
    planned, left_out = [], []
    for class_name, cls in sorted(vars(module).items()):
        if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)
                and cls.__module__ == module.__name__):
            continue
        if classification.of_class(short_name, class_name)[0] == REPLACED and not run_replaced:
            continue
        for test in loader.loadTestsFromTestCase(cls):
            test_set, why = classification.of_test(short_name, class_name, test._testMethodName)
            if test_set == REPLACED:
                test_set = 'b'
            if test_set in sets or (test_set == UNCLASSIFIED and 'b' in sets):
                planned.append((test, test.id(), test_set, why))
            elif test_set == UNCLASSIFIED:
                left_out.append(test.id())
    return planned, left_out


def main():
    parser = argparse.ArgumentParser(description='Run one test.test_asyncio module (see runner.py).')
    parser.add_argument('--loop', required=True)
    parser.add_argument('--module', required=True)
    parser.add_argument('--events', required=True)
    parser.add_argument('--resume', help='JSON: {"done": [test ids], "timeouts": {class: s}}')
    parser.add_argument('--timeout', type=float, default=35.0)
    parser.add_argument('--sets', default='a')
    parser.add_argument('--run-replaced', action='store_true')
    parser.add_argument('--guard-selftest', action='store_true')
    args = parser.parse_args()

    faulthandler.enable(all_threads=True)
    # A job started in the background inherits SIGINT ignored; asyncio.Runner then installs
    # no Ctrl-C handler and the tests that interrupt a Runner hang.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    faulthandler.dump_traceback_later(max(args.timeout, 60), exit=True)   # imports, setup
    events = EventFile(args.events)
    resume = {}
    if args.resume and os.path.exists(args.resume):
        with open(args.resume) as f:
            resume = json.load(f)

    # Before anything imports the loop's package or a test module: see Guard.install.
    guard = Guard()
    guard.install()
    router = Router(args.loop, guard, sabotage=args.guard_selftest)
    target_class = router.install()

    try:
        from test.test_asyncio import utils as test_utils
        module = importlib.import_module('test.test_asyncio.' + args.module)
    except unittest.SkipTest as exc:
        events.write('skipped', reason=str(exc))
        events.write('finished', shims={})
        os._exit(0)
    router.shim_test_utils(test_utils)
    classification = for_python(sys.version_info)
    notes = router.generate(module, test_utils, classification.generated.get(args.module, {}))
    router.route_loop_factories(module)
    planned, left_out = plan_module(module, args.module, classification, set(args.sets),
                                    args.run_replaced)
    events.write('plan', tests=[[test_id, test_set, why] for _, test_id, test_set, why in planned],
                 unclassified=left_out, notes=notes,
                 target=f'{target_class.__module__}.{target_class.__qualname__}')

    done = set(resume.get('done', ()))
    suite = unittest.TestSuite([test for test, test_id, *_ in planned if test_id not in done])
    result = EventResult(events, guard, resume.get('timeouts', {}), args.timeout)

    def first_sighting(kind, cls):
        if result.current is not None:
            events.write('loop', test=result.current, kind=kind, cls=cls)
    guard.on_first_sighting = first_sighting
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    suite.run(result)
    result.put_back_state()
    faulthandler.cancel_dump_traceback_later()
    events.write('finished', shims=router.shims_used)
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is on disk; a loop that misbehaves at interpreter exit must not turn a
    # finished module into a crash.
    os._exit(0)


if __name__ == '__main__':
    main()
