"""Debug mode: switching it, PYTHONASYNCIODEBUG, slow callbacks, the thread check."""

import asyncio
import functools
import gc
import logging
import os
import socket
import subprocess
import sys
import time
import warnings
from asyncio import format_helpers

import pytest

from conftest import call_from_thread, run_one_iteration
from ferroloop import versions

THREAD_ERROR = 'Non-thread-safe operation invoked on an event loop other than the current one'


def print_get_debug_program(loop_name):
    """A program for a child process: it prints get_debug() of a new loop of the kind under
    test, which takes debug mode from the child's environment and -X options."""
    return ('import asyncio, ferroloop\n'
            f'loop = {{"asyncio": asyncio.SelectorEventLoop, '
            f'"ferroloop": ferroloop.new_event_loop}}["{loop_name}"]()\n'
            'print(loop.get_debug())\n'
            'loop.close()\n')


def test_set_and_get_debug(loop):
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False


@pytest.mark.parametrize('env, expected', [
    ({'PYTHONASYNCIODEBUG': '1'}, 'True'),
    ({'PYTHONASYNCIODEBUG': ''}, 'False'),
    ({}, 'False'),
])
def test_pythonasynciodebug_environment_variable(loop_name, env, expected):
    code = print_get_debug_program(loop_name)
    child_env = {k: v for k, v in os.environ.items() if k != 'PYTHONASYNCIODEBUG'}
    child_env.update(env)
    result = subprocess.run([sys.executable, '-c', code], env=child_env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
    assert 'PanicException' not in result.stderr


def test_dev_mode_turns_debug_on(loop_name):
    code = print_get_debug_program(loop_name)
    result = subprocess.run([sys.executable, '-X', 'dev', '-c', code],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'True'


def test_slow_callback_is_logged_in_debug_mode(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    def slow_callback():
        time.sleep(0.05)

    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        handle = loop.call_soon(slow_callback)
        # Taken before the run: afterwards a ferroloop handle no longer names its callback.
        handle_str = str(handle)
        run_one_iteration(loop)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == 'asyncio'
    assert warnings[0].msg == 'Executing %s took %.3f seconds'
    what, elapsed = warnings[0].args
    assert what == handle_str
    assert 'slow_callback' in what
    assert elapsed >= 0.01
    assert warnings[0].getMessage().startswith('Executing <Handle ')


def test_slow_task_step_is_reported_as_the_task(loop, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    async def slow_coroutine():
        time.sleep(0.05)  # noqa: ASYNC251 - blocking the loop is the point

    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        task = loop.create_task(slow_coroutine(), name='slow-one')
        loop.run_until_complete(task)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("Executing <Task finished name='slow-one'")
    assert ' took ' in warnings[0]


def test_slow_callback_is_not_logged_without_debug(loop, caplog):
    loop.set_debug(False)
    loop.slow_callback_duration = 0.001
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        loop.call_soon(time.sleep, 0.01)
        run_one_iteration(loop)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_slow_callback_duration_default_and_assignment(loop):
    assert loop.slow_callback_duration == 0.1
    loop.slow_callback_duration = 0.5
    assert loop.slow_callback_duration == 0.5


@pytest.mark.parametrize('method', ['call_soon', 'call_later', 'call_at'])
def test_debug_mode_refuses_non_threadsafe_calls_from_another_thread(loop, method):
    loop.set_debug(True)
    call = {
        'call_soon': lambda: loop.call_soon(print),
        'call_later': lambda: loop.call_later(1, print),
        'call_at': lambda: loop.call_at(loop.time() + 1, print),
    }[method]
    errors = []
    loop.call_soon(lambda: errors.extend(call_from_thread(call)))
    run_one_iteration(loop)
    assert errors == [THREAD_ERROR]


@pytest.mark.parametrize('method', ['close', 'abort'])
def test_debug_mode_refuses_closing_a_transport_from_another_thread(loop, method):
    # asyncio's transports schedule connection_lost through call_soon, which checks the thread.
    loop.set_debug(True)

    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        errors = call_from_thread(getattr(transport, method))
        b.close()
        return errors

    assert loop.run_until_complete(main()) == [THREAD_ERROR]
    # The transport is left half-closed, on either loop: let it go with the loop, quietly.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', ResourceWarning)
        loop.close()
        gc.collect()


def test_debug_thread_check_applies_only_while_running(loop):
    loop.set_debug(True)
    # Not running: no owner thread yet, so any thread may schedule.
    assert call_from_thread(lambda: loop.call_soon(print)) == []


def test_no_thread_check_without_debug(loop):
    loop.set_debug(False)
    errors = []
    handles = []

    def schedule():
        handles.append(loop.call_soon(print))

    loop.call_soon(lambda: errors.extend(call_from_thread(schedule)))
    run_one_iteration(loop)
    assert errors == []
    handles[0].cancel()


def test_debug_handles_record_where_they_were_created(loop):
    loop.set_debug(True)
    handle = loop.call_soon(print)  # this line is the creation site
    assert handle._source_traceback
    assert handle._source_traceback[-1].filename == __file__
    assert 'created at ' + __file__ in repr(handle)
    timer = loop.call_later(10, print)
    assert timer._source_traceback[-1][0] == __file__
    timer.cancel()
    handle.cancel()


def test_handles_made_without_debug_have_no_source_traceback(loop):
    handle = loop.call_soon(print)
    assert not handle._source_traceback
    handle.cancel()


def test_coroutine_origin_tracking_follows_debug_mode(loop):
    before = sys.get_coroutine_origin_tracking_depth()
    loop.set_debug(True)

    async def depth():
        return sys.get_coroutine_origin_tracking_depth()

    assert loop.run_until_complete(depth()) > 0
    assert sys.get_coroutine_origin_tracking_depth() == before
    loop.set_debug(False)
    assert loop.run_until_complete(depth()) == before


def test_close_is_logged_in_debug_mode(loop, caplog):
    loop.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        loop.close()
    assert any(r.getMessage().startswith('Close <') for r in caplog.records)


def test_asyncio_run_debug_flag(loop_factory):
    async def main():
        return asyncio.get_running_loop().get_debug()

    with asyncio.Runner(debug=True, loop_factory=loop_factory) as runner:
        assert runner.run(main()) is True


def _callback(a):
    pass


def shown_args(debug, text):
    """What a callback's arguments look like in a repr: themselves, but from 3.13 on only in
    debug mode (else ``()``)."""
    return text if debug or not versions.CALLBACK_ARGS_ONLY_IN_DEBUG else '()'


@pytest.mark.parametrize('debug', [False, True])
def test_handle_reprs_before_and_after_cancel(loop, debug):
    loop.set_debug(debug)
    handle = loop.call_soon(_callback, 1)
    timer = loop.call_at(10.5, _callback, 2)
    where = f' at {__file__}:{_callback.__code__.co_firstlineno}'
    created = f' created at {__file__}:' if debug else ''
    assert repr(handle).startswith(f'<Handle _callback{shown_args(debug, "(1)")}{where}{created}')
    assert repr(timer).startswith(f'<TimerHandle when=10.5 _callback{shown_args(debug, "(2)")}'
                                  f'{where}')
    before = repr(handle), repr(timer)
    handle.cancel()
    timer.cancel()
    if debug:
        # Debug mode keeps naming the callback of a cancelled handle.
        assert repr(handle) == before[0].replace('<Handle ', '<Handle cancelled ', 1)
        assert repr(timer) == before[1].replace('<TimerHandle ', '<TimerHandle cancelled ', 1)
    else:
        assert repr(handle) == '<Handle cancelled>'
        assert repr(timer) == '<TimerHandle cancelled when=10.5>'


def test_handle_repr_follows_the_loops_debug_mode_of_the_moment(loop):
    # 3.13+: the arguments show while the loop is in debug mode, whenever the handle was made.
    handle = loop.call_soon(_callback, 'secret')
    outside_debug = '_callback' + shown_args(False, "('secret')")
    assert outside_debug in repr(handle)
    loop.set_debug(True)
    assert "_callback('secret')" in repr(handle)
    loop.set_debug(False)
    assert outside_debug in repr(handle)
    handle.cancel()


def test_handle_repr_shortens_long_arguments_and_unwraps_partials(loop):
    loop.set_debug(True)
    long_text = 'x' * 100
    handle = loop.call_soon(functools.partial(_callback, long_text))
    handle2 = loop.call_soon(_callback, list(range(50)))
    expected = format_helpers._format_callback_source(
        functools.partial(_callback, long_text), (),
        **({'debug': True} if versions.CALLBACK_ARGS_ONLY_IN_DEBUG else {}))
    assert repr(handle).startswith(f'<Handle {expected} created at ')
    assert "_callback('xxxxxxxxx" in repr(handle) and '...' in repr(handle)
    assert '_callback([0, 1, 2, 3, 4, 5, ...])' in repr(handle2)
    handle.cancel()
    handle2.cancel()


@pytest.mark.parametrize('debug', [False, True])
def test_exception_in_callback_message_shows_arguments_as_the_repr_does(loop, debug):
    loop.set_debug(debug)
    reports = []
    loop.set_exception_handler(lambda lp, ctx: reports.append(ctx))

    def failing(value):
        raise ZeroDivisionError(value)

    loop.call_soon(failing, 42)
    run_one_iteration(loop)
    message = reports[0]['message']
    assert message.startswith(f'Exception in callback {failing.__qualname__}'
                              f'{shown_args(debug, "(42)")} at {__file__}:')
