"""add_signal_handler/remove_signal_handler."""

import asyncio
import contextvars
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from conftest import HANG_TIMEOUT, call_from_thread, run_until


@pytest.fixture(autouse=True)
def restore_signals():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    signal.set_wakeup_fd(-1)


def test_handler_runs_on_the_loop_with_its_arguments(loop):
    seen = []

    def handler(*args):
        seen.append((args, asyncio.get_running_loop(), threading.current_thread()))

    loop.add_signal_handler(signal.SIGUSR1, handler, 'a', 2)
    os.kill(os.getpid(), signal.SIGUSR1)
    run_until(loop, lambda: seen)
    assert seen == [(('a', 2), loop, threading.main_thread())]


def test_handler_runs_in_the_context_of_registration(loop):
    var = contextvars.ContextVar('var', default='default')
    seen = []
    token = var.set('at-registration')
    loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append(var.get()))
    var.reset(token)
    os.kill(os.getpid(), signal.SIGUSR1)
    run_until(loop, lambda: seen)
    assert seen == ['at-registration']


def test_handler_runs_each_time_the_signal_arrives(loop):
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, seen.append, 1)
    for expected in (1, 2, 3):
        os.kill(os.getpid(), signal.SIGUSR1)
        run_until(loop, lambda expected=expected: len(seen) == expected)
    assert seen == [1, 1, 1]


def test_two_signals_two_handlers(loop):
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, seen.append, 'usr1')
    loop.add_signal_handler(signal.SIGUSR2, seen.append, 'usr2')
    os.kill(os.getpid(), signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGUSR1)
    run_until(loop, lambda: len(seen) == 2)
    assert sorted(seen) == ['usr1', 'usr2']


def test_adding_again_replaces_the_handler(loop):
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, seen.append, 'first')
    loop.add_signal_handler(signal.SIGUSR1, seen.append, 'second')
    os.kill(os.getpid(), signal.SIGUSR1)
    run_until(loop, lambda: seen)
    assert seen == ['second']


def test_signal_wakes_a_loop_blocked_in_poll(loop):
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: (seen.append(1), loop.stop()))
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
    loop.call_soon(timer.start)
    guard = loop.call_later(HANG_TIMEOUT, loop.stop)
    loop.run_forever()
    guard.cancel()
    timer.join()
    assert seen == [1]


def test_error_in_handler_goes_to_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def handler():
        raise ValueError('from the signal handler')

    loop.add_signal_handler(signal.SIGUSR1, handler)
    os.kill(os.getpid(), signal.SIGUSR1)
    run_until(loop, lambda: contexts)
    assert isinstance(contexts[0]['exception'], ValueError)


def test_remove_restores_the_default_disposition(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN)
    assert loop.remove_signal_handler(signal.SIGUSR1) is True
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert loop.remove_signal_handler(signal.SIGUSR1) is False


def test_remove_restores_keyboard_interrupt_for_sigint(loop):
    loop.add_signal_handler(signal.SIGINT, print)
    assert loop.remove_signal_handler(signal.SIGINT) is True
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_removing_the_last_handler_releases_the_wakeup_fd(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.add_signal_handler(signal.SIGUSR2, print)
    loop.remove_signal_handler(signal.SIGUSR1)
    in_use = signal.set_wakeup_fd(-1)
    assert in_use != -1  # SIGUSR2 still needs it
    signal.set_wakeup_fd(in_use)
    loop.remove_signal_handler(signal.SIGUSR2)
    assert signal.set_wakeup_fd(-1) == -1


def test_close_removes_the_handlers(loop):
    loop.add_signal_handler(signal.SIGUSR1, print)
    loop.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1


def test_remove_of_a_never_added_signal(loop):
    assert loop.remove_signal_handler(signal.SIGUSR2) is False


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGSTOP])
def test_uncatchable_signal_is_a_runtime_error(loop, sig):
    with pytest.raises(RuntimeError, match=f'^sig {int(sig)} cannot be caught$'):
        loop.add_signal_handler(sig, print)
    # The failed registration left nothing behind.
    assert loop.remove_signal_handler(sig) is False
    assert signal.set_wakeup_fd(-1) == -1


@pytest.mark.parametrize('sig', [0, -1, 1000])
def test_invalid_signal_number_is_a_value_error(loop, sig):
    with pytest.raises(ValueError, match=f'^invalid signal number {sig}$'):
        loop.add_signal_handler(sig, print)
    with pytest.raises(ValueError, match=f'^invalid signal number {sig}$'):
        loop.remove_signal_handler(sig)


@pytest.mark.parametrize('sig', ['SIGUSR1', 10.0, None])
def test_non_int_signal_is_a_type_error(loop, sig):
    with pytest.raises(TypeError, match=f'^sig must be an int, not {sig!r}$'):
        loop.add_signal_handler(sig, print)
    with pytest.raises(TypeError, match=f'^sig must be an int, not {sig!r}$'):
        loop.remove_signal_handler(sig)


def test_signal_enum_member_is_accepted(loop):
    loop.add_signal_handler(signal.Signals.SIGUSR1, print)
    assert loop.remove_signal_handler(signal.Signals.SIGUSR1) is True


def test_coroutine_callbacks_are_a_type_error(loop):
    async def coroutine_function():
        pass

    coro = coroutine_function()
    for callback in (coroutine_function, coro):
        with pytest.raises(TypeError,
                           match=r'coroutines cannot be used with add_signal_handler\(\)'):
            loop.add_signal_handler(signal.SIGUSR1, callback)
    coro.close()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_add_from_another_thread_is_a_runtime_error(loop):
    errors = call_from_thread(lambda: loop.add_signal_handler(signal.SIGUSR1, print))
    assert len(errors) == 1
    assert 'main thread' in errors[0]
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


CHILD = textwrap.dedent('''
    import asyncio, os, signal, sys
    import ferroloop

    loop = {'asyncio': asyncio.SelectorEventLoop,
            'ferroloop': ferroloop.new_event_loop}[sys.argv[1]]()
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, seen.append, 'handled')
    # At once, before the loop ever ran: the handler must already be in force, or the
    # default disposition of SIGUSR1 kills this process.
    os.kill(os.getpid(), signal.SIGUSR1)
    guard = loop.call_later(30, loop.stop)

    def check():
        if seen:
            loop.stop()
        else:
            loop.call_soon(check)

    loop.call_soon(check)
    loop.run_forever()
    loop.remove_signal_handler(signal.SIGUSR1)
    print(seen)
    loop.close()
    # The default is back: this kills the process.
    os.kill(os.getpid(), signal.SIGUSR1)
    print('still alive')
''')


def test_handler_is_in_force_when_the_call_returns_and_removal_restores_default(loop_name):
    result = subprocess.run([sys.executable, '-c', CHILD, loop_name],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout == "['handled']\n"
    assert result.returncode == -signal.SIGUSR1, result.stderr
    assert 'PanicException' not in result.stderr


CTRL_C_CHILD = textwrap.dedent('''
    import asyncio, os, signal, sys, threading
    import ferroloop

    factory = {'asyncio': asyncio.SelectorEventLoop,
               'ferroloop': ferroloop.new_event_loop}[sys.argv[1]]
    # A child started in the background by a non-interactive shell inherits SIGINT ignored,
    # and Python then installs no handler: Ctrl-C's handler is what is tested here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt_soon = lambda: threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()

    # 1. A loop blocked in poll, no handler of ours: KeyboardInterrupt leaves run_forever.
    loop = factory()
    loop.call_soon(interrupt_soon)
    guard = loop.call_later(30, loop.stop)
    try:
        loop.run_forever()
        print('not interrupted')
    except KeyboardInterrupt:
        print('run_forever: KeyboardInterrupt')
    guard.cancel()
    loop.close()

    # 2. asyncio.Runner: Ctrl-C cancels the main task, then KeyboardInterrupt.
    cancelled = []

    async def main():
        interrupt_soon()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        print('Runner: KeyboardInterrupt, main task cancelled:', cancelled == [True])
''')


def test_ctrl_c_interrupts_the_loop_as_with_asyncio(loop_name):
    result = subprocess.run([sys.executable, '-c', CTRL_C_CHILD, loop_name],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        'run_forever: KeyboardInterrupt',
        'Runner: KeyboardInterrupt, main task cancelled: True',
    ]
    assert 'PanicException' not in result.stderr
