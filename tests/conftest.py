"""Every behaviour is tested twice, with one test body: on asyncio's own loop, which defines
the expected behaviour, and on ferroloop. A test that passes on asyncio and fails on
ferroloop is a compatibility bug."""

import asyncio
import contextvars
import gc
import os
import sys
import sysconfig
import threading

import blockbuster
import pytest

import ferroloop
from ferroloop import versions

LOOP_FACTORIES = {
    'asyncio': asyncio.SelectorEventLoop,
    'ferroloop': ferroloop.new_event_loop,
}

# Generous: tests assert behaviour, not speed; this only turns a hang into a failure.
HANG_TIMEOUT = 30.0


def pytest_configure(config):
    # A loop that leaks a ResourceWarning (an unclosed fd, an unclosed loop) breaks every test
    # suite that runs with -W error; so does an error swallowed in a finalizer.
    config.addinivalue_line('filterwarnings', 'error::ResourceWarning')
    config.addinivalue_line('filterwarnings', 'error::pytest.PytestUnraisableExceptionWarning')
    config.addinivalue_line('markers', 'without_blockbuster: the test blocks the loop on purpose '
                            'and inspects where: blockbuster would fail it, or stand in its stack')


def pytest_collection_finish(session):
    # Each test ends with gc.collect() (so a leak or an error in a finalizer shows up in the
    # test that caused it). Freezing what exists after collection (modules, pytest's own
    # objects) keeps those collections to the objects the tests make: several times faster.
    gc.collect()
    gc.freeze()


# blockbuster (as anyio's and aiohttp's suites run theirs, and ferroloop's users may run
# theirs): while a loop runs, a blocking os/socket/io/time call made by ferroloop's Python face
# fails the test. Not one made by the test itself (tests block on purpose: slow callbacks,
# blocking sockets for the other end) nor by asyncio's loop: a call is ferroloop's when the
# nearest frame outside the standard library that led to it is in the ferroloop package. The
# loop running callbacks is not such a frame (for asyncio's loop it is in the standard library):
# ``call_soon(time.sleep, 1)`` blocks in the caller's callback, not in ferroloop's code.
_LOOP_RUNNING = ferroloop.EventLoop.run_forever.__code__
_FERROLOOP_DIR = os.path.dirname(ferroloop.__file__) + os.sep
_STDLIB_DIRS = tuple({sysconfig.get_paths()[name] + os.sep for name in ('stdlib', 'platstdlib')}
                     | {os.path.dirname(blockbuster.__file__) + os.sep, '<frozen '})


def _made_by_ferroloop():
    frame = sys._getframe(2)  # past this check and blockbuster's wrapper
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_FERROLOOP_DIR) and frame.f_code is not _LOOP_RUNNING:
            return True
        if not filename.startswith(_STDLIB_DIRS) and frame.f_code is not _LOOP_RUNNING:
            return False
        frame = frame.f_back
    return False


def _allowed_unless_ferroloops(can_block):
    return lambda *args, **kwargs: can_block(*args, **kwargs) or not _made_by_ferroloop()


_BLOCKBUSTER = blockbuster.BlockBuster()
for _function in _BLOCKBUSTER.functions.values():
    # blockbuster's own exemptions (what asyncio's loop and the interpreter legitimately do,
    # file objects that do not block) stay.
    _function.can_block_predicate = _allowed_unless_ferroloops(_function.can_block_predicate)

# shutdown_default_executor joins the thread that shut the executor down once it said so (it
# may still be ending): as asyncio's, which blockbuster exempts by name.
_BLOCKBUSTER.functions['threading.Lock.acquire'].can_block_in('ferroloop/executor.py',
                                                              'shutdown_default_executor')


# preexec_fn runs Python in the child, so only subprocess.Popen can start it: the one spawn
# left on the Popen path (README, differences), whose fork/exec handshake reads a pipe.
_BLOCKBUSTER.functions['os.read'].can_block_in('ferroloop/process.py', '_start_child')


@pytest.fixture(autouse=True)
def no_blocking_calls_from_ferroloop(request):
    if request.node.get_closest_marker('without_blockbuster'):
        yield
        return
    _BLOCKBUSTER.activate()
    try:
        yield
    finally:
        _BLOCKBUSTER.deactivate()


@pytest.fixture(params=list(LOOP_FACTORIES))
def loop_name(request):
    return request.param


def expect_asyncio_bug(request, loop_name, fact, strict=True):
    """Marks this test an expected failure on asyncio's loop where the running version's
    asyncio departs from the behaviour the test pins: where ``ferroloop.versions.<fact>``
    (one of its ASYNCIO_* facts) is true."""
    if getattr(versions, fact) and loop_name == 'asyncio':
        request.applymarker(pytest.mark.xfail(reason=f'asyncio: versions.{fact}', strict=strict))


@pytest.fixture
def loop_factory(loop_name):
    return LOOP_FACTORIES[loop_name]


@pytest.fixture
def loop(loop_factory):
    loop = loop_factory()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    if not loop.is_closed():
        if not loop.is_running():
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    gc.collect()


def run(loop, coro, timeout=HANG_TIMEOUT):
    """Run ``coro`` to completion on ``loop``, failing instead of hanging."""
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


@pytest.fixture
def run_async(loop):
    return lambda coro, timeout=HANG_TIMEOUT: run(loop, coro, timeout)


def run_until(loop, condition, timeout=HANG_TIMEOUT):
    """Run ``loop`` until ``condition()`` is true (checked every iteration), failing instead
    of hanging. For tests that drive the loop with callbacks rather than a coroutine."""
    guard = loop.call_later(timeout, loop.stop)

    def check():
        if condition():
            loop.stop()
        else:
            loop.call_soon(check)

    loop.call_soon(check)
    loop.run_forever()
    guard.cancel()
    assert condition(), 'condition not reached before the hang timeout'


def run_one_iteration(loop):
    loop.call_soon(loop.stop)
    loop.run_forever()


def call_from_thread(fn):
    """Calls ``fn`` in another thread and waits for it; returns the messages of the
    RuntimeError it raised, if any: the loop's answer to a call from the wrong thread."""
    errors = []

    def body():
        try:
            fn()
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return errors


def close_and_collect(loop):
    """Closes the loop and collects what it held (where unclosed transports warn)."""
    loop.close()
    gc.collect()


class RecordingProtocol(asyncio.BaseProtocol):
    """Records in ``events`` what a transport does to its protocol ('made', 'pause',
    'resume', 'lost'). ``lost`` resolves with what connection_lost got; ``resumed``, made
    anew at each pause, resolves when writing resumes. Pipe and datagram transports share
    this part of the contract; their tests add what differs (data, datagrams) in subclasses."""

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.events = []
        self.lost = loop.create_future()
        self.resumed = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append('made')

    def pause_writing(self):
        self.events.append('pause')
        self.resumed = self.loop.create_future()

    def resume_writing(self):
        self.events.append('resume')
        self.resumed.set_result(None)

    def connection_lost(self, exc):
        self.events.append('lost')
        self.lost.set_result(exc)


trail_var = contextvars.ContextVar('trail_var', default='unset')


class ContextTrail(asyncio.Protocol):
    """Records, in ``trail``, each callback with the value of ``trail_var`` it sees, then sets
    the variable to the callback's name: the trail shows which context each callback ran in
    and whose changes it saw. The factory's call is the first entry."""

    def __init__(self, loop):
        self.trail = [('factory', trail_var.get())]
        trail_var.set('factory')
        self.lost = loop.create_future()
        self.received = loop.create_future()
        self.paused = loop.create_future()
        self.resumed = loop.create_future()

    def _record(self, name):
        self.trail.append((name, trail_var.get()))
        trail_var.set(name)

    def first_seen(self):
        """Each callback's name with what its first call saw."""
        firsts = {}
        for name, value in self.trail:
            firsts.setdefault(name, value)
        return firsts

    def connection_made(self, transport):
        self._record('made')

    def data_received(self, data):
        self._record('data_received')
        if not self.received.done():
            self.received.set_result(None)

    def eof_received(self):
        self._record('eof_received')

    def pause_writing(self):
        self._record('pause_writing')
        self.paused.set_result(None)

    def resume_writing(self):
        self._record('resume_writing')
        self.resumed.set_result(None)

    def connection_lost(self, exc):
        self._record('connection_lost')
        self.lost.set_result(exc)


class BufferedContextTrail(ContextTrail, asyncio.BufferedProtocol):

    def get_buffer(self, sizehint):
        self._record('get_buffer')
        return bytearray(65536)

    def buffer_updated(self, nbytes):
        self._record('buffer_updated')
        if not self.received.done():
            self.received.set_result(None)


def in_context_of(name, fn, *args):
    """``fn(*args)`` in a new context where ``trail_var`` is ``name``."""
    def body():
        trail_var.set(name)
        return fn(*args)
    return contextvars.Context().run(body)


# A Rust panic must never reach Python: as a pyo3 PanicException (a BaseException that user
# code does not catch) or as the panic message Rust prints to stderr. Any test whose report or
# captured output shows one fails, even if the panic was swallowed (in __del__, in a thread).
PANIC_MARKERS = ('PanicException', 'panicked at')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    texts = [report.longreprtext] + [content for _, content in report.sections]
    found = [m for m in PANIC_MARKERS if any(m in text for text in texts)]
    if found and not hasattr(report, 'wasxfail'):
        report.outcome = 'failed'
        report.longrepr = (f'a Rust panic reached Python ({", ".join(found)}):\n\n'
                           + '\n'.join(texts))


def pytest_terminal_summary(terminalreporter):
    fuzz_stats = sys.modules.get('fuzz_stats')
    text = fuzz_stats and fuzz_stats.summary()
    if text:
        terminalreporter.write_line(text)


def pytest_report_header(config):
    return f'loops under test: {", ".join(LOOP_FACTORIES)} (python {sys.version.split()[0]})'
