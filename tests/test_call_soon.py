"""call_soon: order, arguments, contexts, handles, cancellation."""

import asyncio
import contextvars
import gc
import weakref

import pytest

from conftest import run_one_iteration


def test_callbacks_run_in_fifo_order_with_their_arguments(loop):
    seen = []
    for i in range(5):
        loop.call_soon(seen.append, i)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [0, 1, 2, 3, 4]


def test_callbacks_scheduled_by_a_callback_run_in_the_next_iteration(loop):
    seen = []

    def first():
        seen.append('first')
        loop.call_soon(seen.append, 'scheduled-by-first')

    loop.call_soon(first)
    loop.call_soon(seen.append, 'second')
    loop.call_soon(loop.stop)
    loop.run_forever()
    # stop() lets the current iteration finish: 'scheduled-by-first' waits for the next run.
    assert seen == ['first', 'second']
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ['first', 'second', 'scheduled-by-first']


def test_cancelled_handle_does_not_run(loop):
    seen = []
    handle = loop.call_soon(seen.append, 'cancelled')
    loop.call_soon(seen.append, 'kept')
    handle.cancel()
    assert handle.cancelled()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ['kept']


def test_callback_runs_in_the_context_it_was_scheduled_from(loop):
    var = contextvars.ContextVar('var', default='default')
    seen = []
    var.set('at-schedule-time')
    loop.call_soon(lambda: seen.append(var.get()))
    var.set('later')
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ['at-schedule-time']


def test_explicit_context_is_used_and_changes_stay_in_it(loop):
    var = contextvars.ContextVar('var', default='default')
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'in-ctx')

    def callback():
        assert var.get() == 'in-ctx'
        var.set('changed-in-callback')

    loop.call_soon(callback, context=ctx)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert ctx[var] == 'changed-in-callback'
    assert var.get() == 'default'


def test_handle_get_context_returns_the_callback_context(loop, loop_name):
    if loop_name == 'asyncio':
        pytest.skip('Handle.get_context() arrived in asyncio with Python 3.12')
    ctx = contextvars.copy_context()
    assert loop.call_soon(print, context=ctx).get_context() is ctx
    assert isinstance(loop.call_soon(print).get_context(), contextvars.Context)


def test_non_callable_is_refused_with_asyncio_message(loop):
    loop.set_debug(True)
    with pytest.raises(TypeError, match='a callable object was expected by call_soon'):
        loop.call_soon(1)


def test_coroutine_is_refused(loop):
    async def coro():
        pass

    loop.set_debug(True)
    c = coro()
    with pytest.raises(TypeError, match=r'coroutines cannot be used with call_soon\(\)'):
        loop.call_soon(c)
    c.close()


def test_scheduling_methods_bind_their_arguments_as_python_does(loop):
    """Parameters before *args may come as keywords; context=None means the current one."""
    seen = []
    loop.call_soon(callback=lambda: seen.append('soon'), context=None)
    loop.call_soon_threadsafe(seen.append, 'threadsafe', context=contextvars.copy_context())
    loop.call_later(callback=lambda: seen.append('later'), delay=0)
    loop.call_at(loop.time(), seen.append, 'at')
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert sorted(seen) == ['at', 'later', 'soon', 'threadsafe']


@pytest.mark.parametrize('call', [
    lambda loop: loop.call_soon(),
    lambda loop: loop.call_soon(print, callback=print),
    lambda loop: loop.call_soon(print, ctx=None),
    lambda loop: loop.call_soon_threadsafe(print, contxt=None),
    lambda loop: loop.call_later(1),
    lambda loop: loop.call_later(callback=print),
    lambda loop: loop.call_at(1, print, when=2),
])
def test_scheduling_methods_refuse_what_python_refuses(loop, call):
    with pytest.raises(TypeError):
        call(loop)


def test_exception_in_callback_goes_to_exception_handler_and_loop_goes_on(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    def boom():
        raise ZeroDivisionError('boom')

    seen = []
    handle = loop.call_soon(boom)
    loop.call_soon(seen.append, 'after')
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ['after']
    assert len(contexts) == 1
    assert isinstance(contexts[0]['exception'], ZeroDivisionError)
    assert contexts[0]['handle'] is handle
    assert contexts[0]['message'].startswith('Exception in callback ')
    # The traceback reaches the handler, so logs show where the callback failed.
    tb = contexts[0]['exception'].__traceback__
    assert tb is not None
    while tb.tb_next:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_name == 'boom'


def test_keyboard_interrupt_in_callback_leaves_run_forever(loop):
    def interrupt():
        raise KeyboardInterrupt

    seen = []
    loop.call_soon(interrupt)
    loop.call_soon(seen.append, 'still-queued')
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert not loop.is_running()
    # What was queued behind the interrupted callback still runs on the next run.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ['still-queued']


def test_call_soon_on_closed_loop_raises(loop):
    loop.close()
    with pytest.raises(RuntimeError, match='Event loop is closed'):
        loop.call_soon(print)


def test_handle_repr_names_the_callback(loop):
    def my_callback():
        pass

    handle = loop.call_soon(my_callback)
    assert 'my_callback' in repr(handle)
    handle.cancel()
    assert 'cancelled' in repr(handle)


def test_call_soon_replaced_on_the_loop_is_what_tasks_and_futures_use(loop):
    calls = []
    original = loop.call_soon

    def recording(callback, *args, context=None):
        calls.append(callback)
        return original(callback, *args, context=context)

    loop.call_soon = recording

    async def main():
        future = loop.create_future()
        future.add_done_callback(lambda f: None)
        loop.call_later(0, future.set_result, None)
        await future

    loop.run_until_complete(main())
    assert len(calls) >= 2  # the task's first step, the future's done callbacks


def test_call_soon_is_a_method_of_the_loop_class_not_an_instance_attribute(loop, loop_name):
    # Left out of the instance dict, `loop.call_soon(cb)` in Python code is a method call
    # CPython specialises (no bound method made per call).
    assert 'call_soon' not in vars(loop)
    seen = []
    bound = loop.call_soon
    assert bound.__self__ is loop and bound.__name__ == 'call_soon'
    type(loop).call_soon(loop, seen.append, 'through the class')
    bound(seen.append, 'bound')
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == ['through the class', 'bound']
    # A native method refuses another `self`; asyncio's, a Python function, fails on the
    # first attribute it reads.
    with pytest.raises(TypeError if loop_name == 'ferroloop' else AttributeError):
        type(loop).call_soon(object(), print)
    with pytest.raises(TypeError):
        type(loop).call_soon()


def test_call_soon_read_as_an_attribute_is_kept_until_close(loop, loop_name):
    # What asyncio's C tasks and futures do on every step (before 3.12): on ferroloop, the
    # same bound method each time, not a new one.
    first = loop.call_soon
    if loop_name == 'ferroloop':
        assert loop.call_soon is first
    loop.close()
    assert loop.call_soon is not loop.call_soon


def test_unclosed_loop_holding_its_bound_call_soon_is_collected(loop_factory):
    lp = loop_factory()
    lp.call_soon  # kept by ferroloop's loop: a cycle the GC must see through
    lp.run_until_complete(asyncio.sleep(0))
    ref = weakref.ref(lp)
    with pytest.warns(ResourceWarning, match='unclosed event loop'):
        del lp
        gc.collect()
    assert ref() is None


def test_closed_loop_is_freed_without_the_gc(loop_factory):
    loop = loop_factory()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    ref = weakref.ref(loop)
    gc.disable()
    try:
        del loop
        assert ref() is None
    finally:
        gc.enable()


def test_handles_and_timer_handles_accept_weak_references(loop):
    # asyncio's do (libraries keep weak sets of scheduled handles).
    handle = loop.call_soon(print)
    timer = loop.call_later(60, print)
    refs = [weakref.ref(handle), weakref.ref(timer)]
    assert [ref() for ref in refs] == [handle, timer]
    handle.cancel()
    timer.cancel()
    del handle, timer
    run_one_iteration(loop)  # the loop lets go of the cancelled handles
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
