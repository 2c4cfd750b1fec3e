"""The watchdog: a callback that holds the loop is reported while it does, with the line that
blocks it; and the loop's metrics. asyncio has neither, so these run on ferroloop only."""

import asyncio
import inspect
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import ferroloop
from conftest import HANG_TIMEOUT

THRESHOLD = 0.1


@pytest.fixture
def loop():
    loop = ferroloop.new_event_loop()
    yield loop
    if not loop.is_closed():
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def line_of(function, marker):
    """The line number of the line of ``function`` that holds ``marker``."""
    lines, first = inspect.getsourcelines(function)
    for offset, line in enumerate(lines):
        if marker in line:
            return first + offset
    raise AssertionError(f'{marker!r} is not in {function.__name__}')


class Reports:
    """A watchdog callback keeping what it gets, with when it got it. Given a place
    (``'file:line'``), it keeps only the reports of that place: a busy machine may make some
    other callback of the test slow enough to be reported too."""

    def __init__(self, place=None):
        self.place = place
        self.items = []
        self.first = threading.Event()

    def __call__(self, report):
        if self.place is not None and report.place != self.place:
            return
        self.items.append((time.monotonic(), report))
        self.first.set()

    def blocked(self):
        return [r for _, r in self.items if not r.ended]

    def ended(self):
        return [r for _, r in self.items if r.ended]


def place_of(function, marker):
    return f'{__file__}:{line_of(function, marker)}'


def innermost(report):
    """Where the report places the block: its innermost frame outside the standard library."""
    filename, _, line = report.place.rpartition(':')
    return filename, int(line)


def watch(loop, reports, threshold=THRESHOLD):
    loop.set_watchdog(threshold, callback=reports)


@pytest.mark.without_blockbuster
def test_time_sleep_is_reported_while_it_blocks(loop):
    ended = []

    async def handler():
        time.sleep(0.5)  # blocking-line
        ended.append(time.monotonic())

    reports = Reports(place_of(handler, 'blocking-line'))
    watch(loop, reports)

    loop.run_until_complete(loop.create_task(handler(), name='handler'))
    loop.close()
    [report] = reports.blocked()
    assert reports.items[0][0] < ended[0], 'the first report came after the block ended'
    assert innermost(report) == (__file__, line_of(handler, 'blocking-line'))
    assert "task 'handler'" in report.running and report.task is not None
    assert THRESHOLD <= report.duration < 0.5
    [end] = reports.ended()
    assert 0.4 <= end.duration <= HANG_TIMEOUT
    assert 'time.sleep(0.5)' in str(report)


def test_pure_python_loop_is_reported_at_its_line(loop):
    async def spin():
        # One line, so that whichever part of the loop the stack is taken in, the line is
        # this one; bounded, so that a missing report fails the test instead of hanging it.
        end = time.monotonic() + HANG_TIMEOUT
        while not reports.first.is_set() and time.monotonic() < end: pass  # spinning-line

    reports = Reports(place_of(spin, 'spinning-line'))
    watch(loop, reports)

    loop.run_until_complete(spin())
    [report] = reports.blocked()
    assert innermost(report) == (__file__, line_of(spin, 'spinning-line'))


@pytest.mark.without_blockbuster
def test_blocking_socket_read_is_reported_before_it_returns(loop):
    a, b = socket.socketpair()

    def read():
        a.settimeout(HANG_TIMEOUT)
        return a.recv(1)  # reading-line

    reports = Reports(place_of(read, 'reading-line'))
    # The peer sends only once the report is in: the read ends because it was reported.
    reports_then_send = lambda report: (
        reports(report), report.ended or report.place != reports.place or b.send(b'x'))
    loop.set_watchdog(THRESHOLD, callback=reports_then_send)

    try:
        loop.call_soon(read)
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        a.close()
        b.close()
    report = reports.blocked()[0]
    assert innermost(report) == (__file__, line_of(read, 'reading-line'))
    # A plain callback, not a task: named by its handle.
    assert report.task is None and 'read' in report.running


def test_c_code_holding_the_gil_is_said_at_once_and_its_stack_follows(loop, capfd):
    said_during = []

    async def crunch():
        sum(range(40_000_000))  # crunching-line
        # The monitor wrote to fd 2 while the GIL was held: it is there before we go on.
        said_during.append(capfd.readouterr().err)

    reports = Reports()
    watch(loop, reports)

    loop.run_until_complete(crunch())
    assert 'blocked' in said_during[0] and 'holding the GIL' in said_during[0]
    # The stack is taken the moment the GIL is let go, but the reporting thread may lose the
    # GIL again before it hands the report over: close() waits for it.
    loop.close()
    place = place_of(crunch, 'crunching-line')
    report = next(r for r in reports.blocked() if r.place in (place, None))
    if report.stack:
        assert innermost(report) == (__file__, line_of(crunch, 'crunching-line'))
        assert report.gil_wait > THRESHOLD
    else:
        # Only if the interpreter ran the callback to its end before it let the GIL go.
        assert 'before its stack could be taken' in str(report)


def test_many_short_callbacks_are_not_reported(loop):
    reports = Reports()
    watch(loop, reports, threshold=0.5)

    async def busy():
        for _ in range(20_000):
            await asyncio.sleep(0)

    loop.run_until_complete(busy())
    assert reports.items == []


@pytest.mark.without_blockbuster
def test_repeated_blocks_at_one_place_are_counted_not_repeated(loop):
    async def block():
        time.sleep(THRESHOLD * 3)  # repeated-line

    reports = Reports(place_of(block, 'repeated-line'))
    watch(loop, reports)

    async def main():
        for _ in range(4):
            await block()
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    loop.close()  # the last block's end is reported by then
    assert len(reports.blocked()) == 1
    [summary] = [b for b in loop.metrics().blocks if b['place'] == reports.place]
    assert summary['count'] == 4
    assert 'repeated-line' in summary['worst_stack']


@pytest.mark.without_blockbuster
def test_repeated_blocks_are_summed_up_once_a_window(loop, monkeypatch):
    monkeypatch.setattr(ferroloop.watchdog, 'REPEAT_WINDOW', 0.5)

    async def block():
        time.sleep(THRESHOLD * 1.5)  # summed-line

    async def main():
        for _ in range(10):
            await block()
            await asyncio.sleep(0)

    reports = Reports(place_of(block, 'summed-line'))
    watch(loop, reports)
    loop.run_until_complete(main())
    loop.close()
    summaries = [r for r in reports.ended() if r.repeats]
    assert summaries and 'more times at' in str(summaries[0])
    in_full = len(reports.blocked())
    assert 2 <= in_full < 10
    # Every block is accounted for: reported in full, or counted in a summary, or still to
    # be summed up in the place's record.
    [record] = [b for b in loop.metrics().blocks if b['place'] == reports.place]
    assert record['count'] == 10


def test_reports_go_to_the_logger_by_default(loop, caplog):
    async def block():
        time.sleep(THRESHOLD * 4)

    loop.set_watchdog(THRESHOLD)
    with caplog.at_level(logging.WARNING, logger='ferroloop.watchdog'):
        loop.run_until_complete(block())
        loop.close()
    records = [r for r in caplog.records if r.name == 'ferroloop.watchdog']
    assert records and all(r.levelno == logging.WARNING for r in records)
    assert 'time.sleep(THRESHOLD * 4)' in records[0].getMessage()


def watchdog_threads():
    names = []
    for task in os.listdir('/proc/self/task'):
        try:
            with open(f'/proc/self/task/{task}/comm') as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass
    return [name for name in names if name.startswith('ferroloop-wd')]


def threads_become(count):
    """Whether the watchdog threads of this process number ``count`` soon (a thread names
    itself once it runs, and leaves /proc just after it was joined)."""
    deadline = time.monotonic() + HANG_TIMEOUT
    while len(watchdog_threads()) != count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_close_ends_the_watchdog_threads(loop):
    before = len(watchdog_threads())
    loop.set_watchdog(THRESHOLD)
    assert threads_become(before + 2)
    assert loop.get_watchdog() == THRESHOLD
    loop.close()
    assert threads_become(before)
    assert loop.get_watchdog() is None


def test_turned_off_and_on_again(loop):
    before = len(watchdog_threads())
    loop.set_watchdog('100ms')
    assert loop.get_watchdog() == pytest.approx(0.1)
    loop.set_watchdog(0.2)  # replaces the first, does not add threads
    assert threads_become(before + 2)
    loop.set_watchdog(None)
    assert loop.get_watchdog() is None and threads_become(before)


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_the_watchdog_does_not_survive_fork(loop):
    loop.set_watchdog(THRESHOLD)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        status = 0
        try:
            if loop.get_watchdog() is not None or watchdog_threads():
                status = 1
            loop.close()  # must not wait for threads the child does not have
        except BaseException:
            status = 2
        os._exit(status)
    deadline = time.monotonic() + HANG_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail('the forked child hung closing its loop')
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    assert loop.get_watchdog() == THRESHOLD


@pytest.mark.parametrize('value, error', [
    (0, ValueError), (-1, ValueError), (float('nan'), ValueError), (float('inf'), ValueError),
    ('fast', ValueError), ('10 parsecs', ValueError), (True, TypeError), (b'1s', TypeError),
    ([1], TypeError),
])
def test_bad_thresholds_are_refused(loop, value, error):
    with pytest.raises(error, match='watchdog threshold'):
        loop.set_watchdog(value)
    assert loop.get_watchdog() is None


def test_thresholds_in_words():
    parse = ferroloop.watchdog.parse_threshold
    assert parse('100ms') == pytest.approx(0.1)
    assert parse('0.25s') == pytest.approx(0.25)
    assert parse('2') == 2.0
    assert parse('500us') == pytest.approx(0.0005)
    assert parse('off') is None and parse('') is None and parse(None) is None


def test_closed_loop_refuses_a_watchdog(loop):
    loop.close()
    with pytest.raises(RuntimeError, match='closed'):
        loop.set_watchdog(THRESHOLD)


PROGRAM = textwrap.dedent('''
    import asyncio, time

    async def main():
        loop = asyncio.get_running_loop()
        print('watchdog', loop.get_watchdog(), 'timing', loop.metrics().timing, flush=True)
        time.sleep(0.3)  # program-line

    asyncio.run(main())
''')


def run_program(tmp_path, args, env=None):
    script = tmp_path / 'program.py'
    script.write_text(PROGRAM)
    return subprocess.run([sys.executable, *args, str(script)], capture_output=True, text=True,
                          timeout=HANG_TIMEOUT, env={**os.environ, **(env or {})})


def test_command_line_option(tmp_path):
    done = run_program(tmp_path, ['-m', 'ferroloop', '--watchdog', '100ms', '--metrics'])
    assert done.returncode == 0, done.stderr
    assert 'watchdog 0.1 timing True' in done.stdout
    assert 'event loop blocked for' in done.stderr
    assert 'time.sleep(0.3)  # program-line' in done.stderr


def test_environment_variable(tmp_path):
    done = run_program(tmp_path, ['-m', 'ferroloop'],
                       env={'FERROLOOP_WATCHDOG': '50ms', 'FERROLOOP_METRICS': '1'})
    assert done.returncode == 0, done.stderr
    assert 'watchdog 0.05 timing True' in done.stdout
    assert 'program-line' in done.stderr


@pytest.mark.without_blockbuster
def test_run_takes_a_watchdog():
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_watchdog(loop.get_watchdog(), callback=reports)
        time.sleep(0.3)  # run-line
        return loop.get_watchdog()

    reports = Reports(place_of(main, 'run-line'))
    assert ferroloop.run(main(), watchdog='100ms') == pytest.approx(0.1)
    assert len(reports.blocked()) == 1


def test_the_example_names_each_blocking_line():
    example = os.path.join(os.path.dirname(__file__), '..', 'examples', 'blocking_server.py')
    done = subprocess.run([sys.executable, '-m', 'ferroloop', '--watchdog', '100ms', example],
                          capture_output=True, text=True, timeout=HANG_TIMEOUT)
    assert done.returncode == 0, done.stderr
    for line in ('time.sleep(0.5)', 'backend.recv(100)', 'sum(i * i for i'):
        assert line in done.stderr
    assert done.stderr.count('event loop was blocked for') == 3


# Metrics.

def test_metrics_count_callbacks_and_iterations(loop):
    before = loop.metrics()

    async def work():
        for _ in range(100):
            await asyncio.sleep(0)

    loop.run_until_complete(work())
    after = loop.metrics()
    assert after.callbacks - before.callbacks >= 100
    assert after.iterations - before.iterations >= 100
    assert not after.timing and after.busy_ratio == 0.0


def test_metrics_timing_sees_idle_time_and_late_timers(loop):
    loop.set_metrics(True)

    async def main():
        await asyncio.sleep(0.2)  # the loop waits in the poller: idle
        fired = loop.create_future()
        loop.call_later(0.01, fired.set_result, None)
        time.sleep(0.3)  # the timer is due during this block: it fires late
        await fired

    loop.run_until_complete(main())
    m = loop.metrics()
    assert m.timing
    assert m.poll_seconds >= 0.15
    assert 0.0 < m.busy_ratio < 1.0
    assert m.busy_seconds >= 0.25
    assert m.lag_count >= 1 and m.lag_max >= 0.2
    assert m.lag_p50 <= m.lag_p99 <= m.lag_max
    loop.set_metrics(False)
    assert not loop.metrics().timing


def test_metrics_count_what_is_alive(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, '127.0.0.1', 0)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, '127.0.0.1', port)
        loop.call_later(3600, lambda: None)
        alive = loop.metrics()
        transport.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)
        return alive, loop.metrics()

    alive, after = loop.run_until_complete(main())
    assert alive.servers == 1 and after.servers == 0
    assert alive.transports >= 2  # the client's and the server's side
    assert alive.timers >= 1
    assert alive.fds_watched >= 3  # listening socket and both connection ends
    assert set(alive.as_dict()) >= {'iterations', 'callbacks', 'lag_p99', 'blocks'}


@pytest.mark.skipif(not hasattr(asyncio, 'format_call_graph'),
                    reason="asyncio's call graph arrived with Python 3.14")
@pytest.mark.without_blockbuster
def test_the_report_shows_the_await_chain_where_asyncio_has_one():
    async def leaf():
        time.sleep(THRESHOLD * 3)  # chain-line

    async def middle():
        await leaf()

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_watchdog(THRESHOLD, callback=reports)
        await asyncio.create_task(middle(), name='worker')

    reports = Reports(place_of(leaf, 'chain-line'))
    ferroloop.run(main())
    [report] = reports.blocked()
    assert "name='worker'" in report.await_chain and 'Awaited by' in report.await_chain
    assert report.await_chain in str(report)
