"""call_soon_threadsafe: callbacks from other threads, and waking a loop blocked in poll."""

import asyncio
import contextlib
import signal
import threading
import time

from ferroloop import versions

HANG_TIMEOUT = 30.0


class Hang(Exception):
    pass


@contextlib.contextmanager
def hang_guard(seconds=HANG_TIMEOUT):
    """Turns a loop that never wakes up into a failing test (SIGALRM interrupts the poll)."""
    def on_alarm(signum, frame):
        raise Hang(f'loop still blocked after {seconds}s')

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def start_when_running(loop, target, *args):
    """Start ``target(*args)`` in a thread once the loop runs; returns the thread."""
    thread = threading.Thread(target=target, args=args)
    loop.call_soon(thread.start)
    return thread


def idle_then(delay, action):
    def body():
        # Give the loop time to go to sleep in its poller: there is nothing else to do.
        time.sleep(delay)
        action()
    return body


def test_wakes_a_loop_blocked_in_poll_without_timers(loop):
    seen = []

    def from_thread():
        loop.call_soon_threadsafe(seen.append, threading.get_ident())
        loop.call_soon_threadsafe(loop.stop)

    thread = start_when_running(loop, idle_then(0.05, from_thread))
    with hang_guard():
        loop.run_forever()
    thread.join()
    assert seen == [thread.ident]


def test_wakes_a_loop_sleeping_until_a_distant_timer(loop):
    far = loop.call_later(3600, print)
    thread = start_when_running(loop, idle_then(0.05, lambda: loop.call_soon_threadsafe(loop.stop)))
    with hang_guard():
        loop.run_forever()
    thread.join()
    assert not far.cancelled()


def test_wakes_the_loop_again_and_again(loop):
    # Each wake-up is consumed: the loop sleeps again and must be woken again, many times.
    rounds = 50
    seen = []
    turn = threading.Event()

    def on_loop(i):
        seen.append(i)
        if i == rounds - 1:
            loop.stop()
        else:
            turn.set()

    def worker():
        for i in range(rounds):
            if not turn.wait(HANG_TIMEOUT):
                return
            turn.clear()
            loop.call_soon_threadsafe(on_loop, i)

    thread = start_when_running(loop, worker)
    loop.call_soon(turn.set)
    with hang_guard():
        loop.run_forever()
    thread.join()
    assert seen == list(range(rounds))


def test_many_threads_many_calls_all_arrive_in_per_thread_order(loop):
    threads, calls = 8, 2000
    seen = {t: [] for t in range(threads)}
    total = [0]

    def record(t, i):
        seen[t].append(i)
        total[0] += 1
        if total[0] == threads * calls:
            loop.stop()

    barrier = threading.Barrier(threads)

    def worker(t):
        barrier.wait()
        for i in range(calls):
            loop.call_soon_threadsafe(record, t, i)
            if i % 500 == 0:
                time.sleep(0.001)  # let the loop drain and go back to sleep in between

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        loop.call_soon(w.start)
    with hang_guard():
        loop.run_forever()
    for w in workers:
        w.join()
    assert all(seen[t] == list(range(calls)) for t in range(threads))


def test_calls_made_before_the_loop_runs_are_kept(loop):
    seen = []
    thread = threading.Thread(target=lambda: [loop.call_soon_threadsafe(seen.append, i)
                                              for i in range(3)])
    thread.start()
    thread.join()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [0, 1, 2]


def test_handle_from_another_thread_can_be_cancelled(loop):
    seen = []
    handles = []
    thread = threading.Thread(
        target=lambda: handles.append(loop.call_soon_threadsafe(seen.append, 'cancelled')))
    thread.start()
    thread.join()
    handles[0].cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == []


def test_callback_context_and_arguments(loop):
    import contextvars
    var = contextvars.ContextVar('var', default='default')
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'ctx')
    seen = []
    loop.call_soon_threadsafe(lambda a, b: seen.append((a, b, var.get())), 1, 2, context=ctx)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [(1, 2, 'ctx')]


def test_run_coroutine_threadsafe_from_another_thread(loop):
    async def double(x):
        await asyncio.sleep(0)
        return x * 2

    results = []

    def worker():
        futures = [asyncio.run_coroutine_threadsafe(double(i), loop) for i in range(20)]
        results.extend(f.result(HANG_TIMEOUT) for f in futures)
        loop.call_soon_threadsafe(loop.stop)

    thread = start_when_running(loop, worker)
    with hang_guard():
        loop.run_forever()
    thread.join()
    assert results == [i * 2 for i in range(20)]


def test_future_completed_from_a_thread_wakes_its_waiter(loop):
    async def main():
        fut = loop.create_future()
        thread = threading.Thread(
            target=idle_then(0.02, lambda: loop.call_soon_threadsafe(fut.set_result, 'done')))
        thread.start()
        try:
            return await fut
        finally:
            thread.join()

    with hang_guard():
        assert loop.run_until_complete(main()) == 'done'


def test_debug_mode_allows_call_soon_threadsafe_from_another_thread(loop):
    loop.set_debug(True)
    seen = []
    thread = start_when_running(
        loop, idle_then(0.01, lambda: loop.call_soon_threadsafe(loop.stop)))
    loop.call_soon(seen.append, 'ran')
    with hang_guard():
        loop.run_forever()
    thread.join()
    assert seen == ['ran']


def test_call_soon_threadsafe_on_closed_loop_raises(loop):
    loop.close()
    errors = []

    def worker():
        try:
            loop.call_soon_threadsafe(print)
        except RuntimeError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors == ['Event loop is closed']


def test_close_with_unconsumed_wakeups(loop):
    # Wake-ups nobody consumed must not break close().
    for _ in range(100):
        loop.call_soon_threadsafe(int)
    loop.close()
    assert loop.is_closed()


def test_loops_run_in_several_threads_at_once(loop_factory):
    # Each loop waits in its poller without holding the GIL, so the others keep running.
    threads_count = 4
    results = {}
    barrier = threading.Barrier(threads_count)

    async def ping_pong(n):
        loop = asyncio.get_running_loop()
        for i in range(n):
            fut = loop.create_future()
            loop.call_later(0.001, fut.set_result, i)
            await fut
        return n

    def worker(k):
        barrier.wait()
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            results[k] = runner.run(ping_pong(20))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert results == {k: 20 for k in range(threads_count)}


def test_is_running_seen_from_another_thread(loop):
    seen = []

    def worker():
        seen.append(loop.is_running())
        loop.call_soon_threadsafe(loop.stop)

    thread = start_when_running(loop, worker)
    with hang_guard():
        loop.run_forever()
    thread.join()
    assert seen == [True]
    assert not loop.is_running()


def test_loop_made_in_one_thread_runs_in_another(loop):
    results = []

    async def main():
        await asyncio.sleep(0.001)
        return threading.current_thread().name

    def worker():
        asyncio.set_event_loop(loop)
        results.append(loop.run_until_complete(main()))

    thread = threading.Thread(target=worker, name='runner-thread')
    thread.start()
    thread.join(HANG_TIMEOUT)
    assert results == ['runner-thread']


# 3.14: a call_soon_threadsafe() handle's cancel() and cancelled() called from another thread
# wait while its callback runs (asyncio's _ThreadSafeHandle); before, they answer at once.

def run_threadsafe_callback_and_ask_from_a_thread(loop, ask):
    """Runs a one-second callback scheduled with call_soon_threadsafe; while it runs, another
    thread calls ``ask(handle)``. -> (ask's result, whether the callback had finished by then,
    seconds ask took)."""
    started, finished = threading.Event(), threading.Event()
    seen = []

    def callback():
        started.set()
        time.sleep(1)
        finished.set()

    def other_thread():
        handle = loop.call_soon_threadsafe(callback)
        started.wait(HANG_TIMEOUT)
        began = time.monotonic()
        result = ask(handle)
        seen.append((result, finished.is_set(), time.monotonic() - began))
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=other_thread)
    with hang_guard():
        thread.start()
        loop.run_forever()
    thread.join()
    return seen[0]


def test_cancelled_from_another_thread_while_the_callback_runs(loop):
    cancelled, finished, took = run_threadsafe_callback_and_ask_from_a_thread(
        loop, lambda handle: handle.cancelled())
    assert cancelled is False
    assert finished is versions.THREADSAFE_HANDLE_WAITS_FOR_ITS_RUN
    if not versions.THREADSAFE_HANDLE_WAITS_FOR_ITS_RUN:
        assert took < 0.5


def test_cancel_from_another_thread_while_the_callback_runs(loop):
    def cancel(handle):
        handle.cancel()
        return handle.cancelled()

    cancelled, finished, _ = run_threadsafe_callback_and_ask_from_a_thread(loop, cancel)
    assert cancelled is True
    assert finished is versions.THREADSAFE_HANDLE_WAITS_FOR_ITS_RUN


def test_threadsafe_handle_cancelled_by_its_own_callback_runs_to_the_end(loop):
    # The loop's own thread never waits for itself.
    handles, seen = [], []

    def callback():
        handles[0].cancel()
        seen.append(handles[0].cancelled())
        loop.stop()

    handles.append(loop.call_soon_threadsafe(callback))
    with hang_guard():
        loop.run_forever()
    assert seen == [True]


def test_threadsafe_handle_cancelled_before_it_runs_never_runs(loop):
    ran, cancelled = [], threading.Event()

    def other_thread():
        handle = loop.call_soon_threadsafe(ran.append, 'ran')
        handle.cancel()
        assert handle.cancelled()
        cancelled.set()
        loop.call_soon_threadsafe(loop.stop)

    loop.call_soon(cancelled.wait, HANG_TIMEOUT)  # the loop is busy meanwhile
    thread = threading.Thread(target=other_thread)
    with hang_guard():
        thread.start()
        loop.run_forever()
    thread.join()
    assert ran == []
