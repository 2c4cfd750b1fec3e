"""call_later/call_at: order, deadlines on loop.time(), TimerHandle, cancellation."""

import random
import time

import pytest

from conftest import run_until


def test_timers_run_in_deadline_order_not_scheduling_order(loop):
    seen = []
    loop.call_later(0.03, seen.append, 3)
    loop.call_later(0.01, seen.append, 1)
    loop.call_later(0.02, seen.append, 2)
    loop.call_later(0.04, loop.stop)
    loop.run_forever()
    assert seen == [1, 2, 3]


def test_call_at_and_call_later_share_one_clock(loop):
    seen = []
    now = loop.time()
    loop.call_at(now + 0.02, seen.append, 'at')
    loop.call_later(0.01, seen.append, 'later')
    loop.call_at(now + 0.03, loop.stop)
    loop.run_forever()
    assert seen == ['later', 'at']


def test_timer_never_runs_before_its_deadline(loop):
    ran_at = {}
    handles = [loop.call_later(delay, lambda i=i: ran_at.setdefault(i, loop.time()))
               for i, delay in enumerate([0.001, 0.005, 0.01, 0.02])]
    loop.call_later(0.03, loop.stop)
    loop.run_forever()
    assert sorted(ran_at) == [0, 1, 2, 3]
    for i, handle in enumerate(handles):
        # asyncio runs a timer once loop.time() + the clock resolution passes its deadline.
        assert ran_at[i] >= handle.when() - loop._clock_resolution


def test_timer_handle_when_is_the_deadline_on_loop_time(loop):
    before = loop.time()
    handle = loop.call_later(10, print)
    after = loop.time()
    assert before + 10 <= handle.when() <= after + 10
    assert loop.call_at(12345.5, print).when() == 12345.5
    assert handle._when == handle.when()


def test_timer_handles_order_by_deadline(loop):
    early = loop.call_at(100.0, print)
    late = loop.call_at(200.0, print)
    assert early < late
    assert late > early
    assert early <= early  # noqa: PLR0124 - the same timer
    assert early == early  # noqa: PLR0124
    assert early != late


def test_past_deadline_runs_after_callbacks_already_ready(loop):
    seen = []
    loop.call_at(loop.time() - 10, seen.append, 'timer')
    loop.call_soon(seen.append, 'soon')
    loop.call_later(-1, seen.append, 'negative-delay')
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == ['soon', 'timer', 'negative-delay']


def test_zero_delay_timer_runs(loop):
    seen = []
    loop.call_later(0, seen.append, 'zero')
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == ['zero']


def test_timer_arguments_and_context(loop):
    import contextvars
    var = contextvars.ContextVar('var', default='default')
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'in-ctx')
    seen = []
    loop.call_later(0, lambda a, b: seen.append((a, b, var.get())), 1, 'two', context=ctx)
    loop.call_at(loop.time(), lambda: seen.append(var.get()))
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == [(1, 'two', 'in-ctx'), 'default']


def test_cancelled_timer_never_runs(loop):
    seen = []
    handle = loop.call_later(0.001, seen.append, 'cancelled')
    loop.call_later(0.002, seen.append, 'kept')
    handle.cancel()
    assert handle.cancelled()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert seen == ['kept']


def test_timer_cancelled_by_an_earlier_callback_in_the_same_iteration(loop):
    seen = []
    now = loop.time()
    victim = loop.call_at(now + 0.002, seen.append, 'victim')
    loop.call_at(now + 0.001, victim.cancel)
    loop.call_at(now + 0.003, seen.append, 'after')
    # Make both due in the same iteration: block briefly before the loop starts.
    time.sleep(0.01)
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert seen == ['after']


def test_cancel_twice_and_after_running_is_harmless(loop):
    seen = []
    handle = loop.call_later(0, seen.append, 'ran')
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    handle.cancel()
    handle.cancel()
    assert seen == ['ran']
    assert handle.cancelled()


def test_many_cancelled_timers_do_not_disturb_the_order_of_the_others(loop):
    rng = random.Random(1234)
    count = 2000
    now = loop.time()
    seen = []
    handles = {i: loop.call_at(now + 0.001 + i * 1e-5, seen.append, i) for i in range(count)}
    # Cancel most of them (enough for a loop to compact its heap), in random order.
    cancelled = rng.sample(range(count), 1800)
    for i in cancelled:
        handles[i].cancel()
    # Timers scheduled after the cancellations must interleave with the survivors.
    for i in range(count, count + 50):
        handles[i] = loop.call_at(now + 0.001 + (i - count) * 4e-4 + 5e-6, seen.append, i)
    expected = sorted(set(handles) - set(cancelled), key=lambda i: handles[i].when())
    run_until(loop, lambda: len(seen) >= len(expected))
    assert seen == expected


def test_cancelling_every_timer_lets_the_loop_stop(loop):
    handles = [loop.call_later(3600 + i, print, i) for i in range(500)]
    for handle in handles:
        handle.cancel()
    loop.call_later(0.01, loop.stop)
    loop.run_forever()  # would hang for an hour if a cancelled timer still set the poll timeout


def test_call_later_none_delay_is_a_type_error(loop):
    with pytest.raises(TypeError, match='delay must not be None'):
        loop.call_later(None, print)


def test_call_at_none_when_is_a_type_error(loop):
    with pytest.raises(TypeError, match='when cannot be None'):
        loop.call_at(None, print)


@pytest.mark.parametrize('bad', ['1', [1], object()])
def test_non_numeric_delay_is_a_type_error(loop, bad):
    with pytest.raises(TypeError):
        loop.call_later(bad, print)


def test_non_callable_timer_callback_is_refused(loop):
    loop.set_debug(True)
    # asyncio's call_later is call_at underneath, and its message says so.
    with pytest.raises(TypeError, match=r'a callable object was expected by call_at\(\), got 1'):
        loop.call_later(1, 1)
    with pytest.raises(TypeError, match=r'a callable object was expected by call_at\(\), got 1'):
        loop.call_at(1, 1)


def test_loop_time_is_time_monotonic_clock(loop):
    for _ in range(100):
        before = time.monotonic()
        now = loop.time()
        after = time.monotonic()
        assert before <= now <= after


def test_loop_time_never_goes_backwards(loop):
    last = loop.time()
    for _ in range(10000):
        now = loop.time()
        assert now >= last
        last = now


def test_timer_on_closed_loop_raises(loop):
    loop.close()
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        loop.call_later(1, print)
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        loop.call_at(1, print)


def test_timer_repr_shows_deadline_and_callback(loop):
    def my_timer_callback():
        pass

    handle = loop.call_at(123.5, my_timer_callback)
    assert 'when=123.5' in repr(handle)
    assert 'my_timer_callback' in repr(handle)
    assert repr(handle).startswith('<TimerHandle')
