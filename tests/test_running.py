"""run_forever/stop, run_until_complete, nested runs, is_running/is_closed, close()."""

import asyncio
import concurrent.futures
import os
import select
import signal
import socket
import sys

import pytest

from conftest import HANG_TIMEOUT


async def return_value(value):
    await asyncio.sleep(0)
    return value


async def raise_error():
    await asyncio.sleep(0)
    raise ValueError('from the coroutine')


# run_forever / stop

def test_stop_before_run_forever_runs_one_iteration(loop):
    seen = []
    loop.call_soon(seen.append, 1)
    loop.stop()
    loop.run_forever()
    assert seen == [1]
    assert not loop.is_running()


def test_stop_lets_the_current_iteration_finish(loop):
    seen = []
    loop.call_soon(loop.stop)
    loop.call_soon(seen.append, 'same-iteration')
    loop.run_forever()
    assert seen == ['same-iteration']


def test_run_forever_can_run_again_after_stop(loop):
    seen = []
    for i in range(3):
        loop.call_soon(seen.append, i)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert seen == [0, 1, 2]


def test_stop_from_a_timer(loop):
    seen = []
    loop.call_later(0.01, loop.stop)
    loop.call_later(0.001, seen.append, 'timer')
    loop.run_forever()
    assert seen == ['timer']


def test_is_running_inside_and_outside(loop):
    seen = []
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(loop.stop)
    assert not loop.is_running()
    loop.run_forever()
    assert not loop.is_running()
    assert seen == [True]


def test_running_loop_is_registered_while_running(loop):
    seen = []
    loop.call_soon(lambda: seen.append(asyncio.get_running_loop()))
    loop.call_soon(lambda: seen.append(asyncio.get_event_loop()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [loop, loop]
    with pytest.raises(RuntimeError, match='no running event loop'):
        asyncio.get_running_loop()


@pytest.mark.skipif(not hasattr(asyncio.BaseEventLoop, '_run_forever_setup'),
                    reason="run_forever's two halves arrived with asyncio 3.13")
def test_iterations_driven_from_outside_run_forever(loop):
    # What loops embedded in a GUI toolkit's do (3.13): run_forever's setup, iterations run
    # one by one, then its cleanup.
    seen = []
    hooks_before = sys.get_asyncgen_hooks()
    loop._run_forever_setup()
    try:
        assert loop.is_running() and asyncio.get_running_loop() is loop
        assert sys.get_asyncgen_hooks() != hooks_before
        loop.call_soon(seen.append, 'first')
        loop._run_once()
        loop.call_soon(seen.append, 'second')
        loop._run_once()
    finally:
        loop._run_forever_cleanup()
    assert seen == ['first', 'second']
    assert not loop.is_running()
    assert sys.get_asyncgen_hooks() == hooks_before
    with pytest.raises(RuntimeError, match='no running event loop'):
        asyncio.get_running_loop()
    assert loop.run_until_complete(return_value(3)) == 3


def test_exception_leaving_run_forever_leaves_loop_reusable(loop):
    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert not loop.is_running()
    with pytest.raises(RuntimeError, match='no running event loop'):
        asyncio.get_running_loop()
    assert loop.run_until_complete(return_value(5)) == 5


# run_until_complete

def test_run_until_complete_returns_the_coroutine_result(loop):
    assert loop.run_until_complete(return_value(42)) == 42


def test_run_until_complete_accepts_a_future_and_a_task(loop):
    fut = loop.create_future()
    loop.call_soon(fut.set_result, 'fut')
    assert loop.run_until_complete(fut) == 'fut'
    task = loop.create_task(return_value('task'))
    assert loop.run_until_complete(task) == 'task'


def test_run_until_complete_raises_the_coroutine_exception(loop):
    with pytest.raises(ValueError, match='from the coroutine'):
        loop.run_until_complete(raise_error())


def test_run_until_complete_of_cancelled_future_raises_cancelled_error(loop):
    fut = loop.create_future()
    loop.call_soon(fut.cancel)
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(fut)


def test_run_until_complete_of_done_future(loop):
    fut = loop.create_future()
    fut.set_result(7)
    assert loop.run_until_complete(fut) == 7


def test_run_until_complete_refuses_a_future_of_another_loop(loop, loop_factory):
    other = loop_factory()
    try:
        fut = other.create_future()
        with pytest.raises(ValueError, match='The future belongs to a different loop'):
            loop.run_until_complete(fut)
    finally:
        other.close()


def test_run_until_complete_refuses_a_non_awaitable(loop):
    with pytest.raises(TypeError,
                       match='An asyncio.Future, a coroutine or an awaitable is required'):
        loop.run_until_complete(42)


def test_run_until_complete_stopped_before_completion(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match=r'^Event loop stopped before Future completed\.$'):
        loop.run_until_complete(fut)
    assert not fut.done()
    # The future is still usable on a later run.
    loop.call_soon(fut.set_result, 'later')
    assert loop.run_until_complete(fut) == 'later'


def test_run_until_complete_does_not_leave_a_pending_stop(loop):
    # The future's done-callback stops the loop; it must not stop the next run_forever early.
    loop.run_until_complete(return_value(1))
    seen = []
    loop.call_later(0.01, seen.append, 'timer')
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert seen == ['timer']


def test_run_until_complete_with_system_exit_in_task(loop):
    async def leave():
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        loop.run_until_complete(leave())
    assert not loop.is_running()
    assert loop.run_until_complete(return_value('again')) == 'again'


# nested runs

def test_nested_run_forever_is_refused(loop):
    errors = []

    def nested():
        try:
            loop.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(nested)
    loop.run_forever()
    assert errors == ['This event loop is already running']


def test_nested_run_until_complete_is_refused(loop):
    async def outer():
        inner = return_value(1)
        try:
            loop.run_until_complete(inner)
        finally:
            inner.close()

    with pytest.raises(RuntimeError, match='^This event loop is already running$'):
        loop.run_until_complete(outer())


def test_running_another_loop_inside_a_running_loop_is_refused(loop, loop_factory):
    other = loop_factory()
    errors = []

    async def outer():
        inner = return_value(1)
        try:
            other.run_until_complete(inner)
        except RuntimeError as exc:
            errors.append(str(exc))
        finally:
            inner.close()
        try:
            other.run_forever()
        except RuntimeError as exc:
            errors.append(str(exc))

    try:
        loop.run_until_complete(outer())
    finally:
        other.close()
    assert errors == ['Cannot run the event loop while another loop is running'] * 2


def test_asyncio_run_inside_a_running_loop_is_refused(loop):
    async def outer():
        inner = return_value(1)
        try:
            asyncio.run(inner)
        finally:
            inner.close()

    with pytest.raises(RuntimeError, match='cannot be called from a running event loop'):
        loop.run_until_complete(outer())


# close

def test_close_is_idempotent_and_sets_closed(loop):
    assert not loop.is_closed()
    assert loop._closed is False
    loop.close()
    assert loop.is_closed()
    assert loop._closed is True
    loop.close()
    assert loop.is_closed()


def test_close_of_a_running_loop_is_refused(loop):
    errors = []

    def close_now():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(close_now)
    loop.run_forever()
    assert errors == ['Cannot close a running event loop']
    assert not loop.is_closed()


def test_close_drops_pending_callbacks_and_timers(loop):
    seen = []
    loop.call_soon(seen.append, 'soon')
    loop.call_later(0, seen.append, 'timer')
    loop.close()
    assert seen == []


def test_close_shuts_the_default_executor_down(loop):
    loop.run_until_complete(loop.run_in_executor(None, int))
    executor = loop._default_executor
    assert executor is not None
    loop.close()
    with pytest.raises(RuntimeError):
        executor.submit(int)


async def _coro():
    pass


def _create_task_of_closed_coroutine(loop):
    coro = _coro()
    try:
        loop.create_task(coro)
    finally:
        coro.close()


def _closed_loop_calls(loop, sock):
    """The public methods asyncio's loop refuses to run once closed (checked on asyncio)."""
    return {
        'call_soon': lambda: loop.call_soon(print),
        'call_later': lambda: loop.call_later(1, print),
        'call_at': lambda: loop.call_at(1, print),
        'call_soon_threadsafe': lambda: loop.call_soon_threadsafe(print),
        'run_forever': lambda: loop.run_forever(),
        'run_until_complete': lambda: loop.run_until_complete(loop.create_future()),
        'create_task': lambda: _create_task_of_closed_coroutine(loop),
        'run_in_executor': lambda: loop.run_in_executor(None, print),
        'add_reader': lambda: loop.add_reader(sock, print),
        'add_writer': lambda: loop.add_writer(sock, print),
        'add_signal_handler': lambda: loop.add_signal_handler(signal.SIGUSR1, print),
    }


@pytest.mark.parametrize('method', list(_closed_loop_calls(None, None)))
def test_use_after_close_raises_event_loop_is_closed(loop, method):
    a, b = socket.socketpair()
    try:
        loop.close()
        call = _closed_loop_calls(loop, a)[method]
        with pytest.raises(RuntimeError, match='^Event loop is closed$'):
            call()
    finally:
        a.close()
        b.close()


def test_what_still_works_after_close(loop):
    a, b = socket.socketpair()
    try:
        loop.close()
        assert loop.remove_reader(a) is False
        assert loop.remove_writer(a) is False
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        assert isinstance(loop.time(), float)
        loop.stop()
        loop.set_debug(True)
        assert loop.get_debug()
        loop.set_exception_handler(None)
        loop.set_task_factory(None)
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(1))
        fut = loop.create_future()
        assert isinstance(fut, asyncio.Future)
        fut.cancel()
    finally:
        a.close()
        b.close()


def test_awaited_sock_recv_on_closed_loop_raises(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        coro = loop.sock_recv(a, 10)
        loop.close()
        with pytest.raises(RuntimeError, match='Event loop is closed'):
            coro.send(None)
    finally:
        a.close()
        b.close()


def test_repr_tells_the_state(loop):
    assert 'running=False' in repr(loop)
    assert 'closed=False' in repr(loop)
    loop.close()
    assert 'closed=True' in repr(loop)


def open_fds():
    return set(os.listdir('/proc/self/fd'))


def test_close_releases_the_loops_own_file_descriptors(loop_factory):
    before = open_fds()
    loops = [loop_factory() for _ in range(10)]
    for lp in loops:
        lp.add_signal_handler(signal.SIGUSR1, print)  # the signal wake-up fds too
        lp.run_until_complete(lp.run_in_executor(None, int))
        lp.close()
    assert open_fds() == before


def test_loop_is_an_abstract_event_loop(loop):
    assert isinstance(loop, asyncio.AbstractEventLoop)


def test_callbacks_queued_before_the_poll_run_before_what_it_finds(loop):
    # A program starts waiting (a task's first step, queued) for a datagram that has already
    # arrived: the task must run before datagram_received, or the protocol finds no waiter.
    order = []

    class Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            order.append('datagram_received')

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(('127.0.0.1', 0))
    transport, _ = loop.run_until_complete(
        loop.create_datagram_endpoint(Protocol, sock=receiver))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.sendto(b'x', receiver.getsockname())
        select.select([receiver], [], [], HANG_TIMEOUT)  # it has arrived

        async def waiter():
            order.append('task started')
            deadline = loop.time() + HANG_TIMEOUT
            while 'datagram_received' not in order and loop.time() < deadline:
                await asyncio.sleep(0)

        loop.call_soon(order.append, 'call_soon')
        loop.run_until_complete(waiter())
    finally:
        sender.close()
        transport.close()
        loop.run_until_complete(asyncio.sleep(0))
    assert order == ['call_soon', 'task started', 'datagram_received']


def test_callbacks_run_in_the_order_they_were_scheduled_across_io(loop):
    # One callback queued before the poll schedules X; the data the poll finds makes the
    # protocol schedule Y. X was scheduled first, so it runs first (a subprocess's
    # connection_made before its first pipe_data_received relies on this).
    order = []
    ours, peer = socket.socketpair()

    class Protocol(asyncio.Protocol):
        def data_received(self, data):
            order.append('data_received')
            loop.call_soon(order.append, 'Y')

    transport, _ = loop.run_until_complete(loop.create_connection(Protocol, sock=ours))
    try:
        peer.sendall(b'x')
        select.select([ours], [], [], HANG_TIMEOUT)

        def first():
            order.append('first')
            loop.call_soon(order.append, 'X')

        loop.call_soon(first)

        async def until_both():
            deadline = loop.time() + HANG_TIMEOUT
            while 'Y' not in order and loop.time() < deadline:
                await asyncio.sleep(0)

        loop.run_until_complete(until_both())
    finally:
        transport.close()
        peer.close()
        loop.run_until_complete(asyncio.sleep(0))
    assert order.index('X') < order.index('Y')
    assert order[:2] == ['first', 'data_received']
