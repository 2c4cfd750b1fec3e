"""Handles and the objects their callbacks and contexts reference are freed: after running,
after cancelling, and with a loop that is dropped without being closed."""

import asyncio
import contextvars
import gc
import os
import threading
import warnings
import weakref

from conftest import HANG_TIMEOUT


class Owner:
    """Keeps the handle that calls back into it: a reference cycle through the handle."""

    def method(self):
        self.called = True


def collected(ref):
    for _ in range(3):
        gc.collect()
    return ref() is None


def collected_warning_texts(ref):
    """collected(ref), and the texts of the warnings given meanwhile. Only the texts: a
    recorded warning keeps its source, such as the loop whose finalizer warns and so
    resurrects it, and from 3.15 on a weak reference outlives that resurrection."""
    texts = []
    with warnings.catch_warnings():
        warnings.simplefilter('always')
        warnings.showwarning = lambda message, *args, **kwargs: texts.append(str(message))
        return collected(ref), texts


def test_handle_kept_by_its_callback_owner_is_freed_after_running(loop):
    owner = Owner()
    owner.handle = loop.call_soon(owner.method)
    ref = weakref.ref(owner)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert owner.called
    del owner
    assert collected(ref)


def test_cancelled_timer_kept_by_its_callback_owner_is_freed(loop):
    owner = Owner()
    owner.timer = loop.call_later(3600, owner.method)
    ref = weakref.ref(owner)
    owner.timer.cancel()
    del owner
    assert collected(ref)


def test_pending_timer_keeps_its_owner_alive_until_it_fires(loop):
    calls = []

    class Recording(Owner):
        def method(self):
            calls.append('fired')

    owner = Recording()
    owner.timer = loop.call_later(0.01, owner.method)
    ref = weakref.ref(owner)
    weakref.finalize(owner, calls.append, 'freed')
    del owner
    gc.collect()
    assert ref() is not None  # the loop still has to call it
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert collected(ref)
    assert calls == ['fired', 'freed']


def test_closing_the_loop_frees_what_pending_callbacks_reference(loop):
    owner = Owner()
    owner.timer = loop.call_later(3600, owner.method)
    owner.soon = loop.call_soon(owner.method)
    ref = weakref.ref(owner)
    del owner
    loop.close()
    assert collected(ref)


def test_unclosed_loop_with_pending_callbacks_is_collected(loop_factory):
    loop = loop_factory()
    owner = Owner()
    owner.loop = loop  # callback -> owner -> loop -> ready queue -> callback
    loop.call_soon(owner.method)
    loop.call_later(3600, owner.method)
    loop_ref = weakref.ref(loop)
    owner_ref = weakref.ref(owner)
    del loop, owner
    is_collected, warned = collected_warning_texts(loop_ref)
    assert is_collected
    assert collected(owner_ref)
    assert any('unclosed event loop' in message for message in warned)


# A request object that keeps its own timeout handle while a context variable holds the
# request: the handle's context (a copy of the caller's) closes the cycle
# request -> handle -> context -> request. Web frameworks do exactly this.
request_var = contextvars.ContextVar('request')


class Request(Owner):
    pass


def request_with_timeout(loop, delay):
    request = Request()

    def in_request_context():
        request_var.set(request)
        request.timer = loop.call_later(delay, request.method)

    contextvars.copy_context().run(in_request_context)
    return request


def test_fired_timer_in_a_cycle_through_its_context_is_freed(loop):
    request = request_with_timeout(loop, 0.001)
    ref = weakref.ref(request)
    del request
    loop.run_until_complete(asyncio.sleep(0.05))
    assert ref().called
    assert collected(ref)


def test_cancelled_timer_in_a_cycle_through_its_context_is_freed(loop):
    request = request_with_timeout(loop, 3600)
    request.timer.cancel()
    ref = weakref.ref(request)
    del request
    loop.run_until_complete(asyncio.sleep(0))  # the loop drops the cancelled timer
    assert collected(ref)


def test_pending_timer_in_a_cycle_through_its_context_is_freed_when_the_loop_closes(loop):
    ref = weakref.ref(request_with_timeout(loop, 3600))
    loop.close()
    assert collected(ref)


def test_callbacks_from_a_thread_run_in_its_context_across_collections(loop):
    # Thousands of callbacks wait at once, each with a copy of the producing thread's
    # context, while collections run: every one still runs in the context it was sent from.
    var = contextvars.ContextVar('var')
    seen = []
    count = 20_000

    def produce():
        for i in range(count):
            var.set(i)
            loop.call_soon_threadsafe(lambda: seen.append(var.get()))
            if i % 5_000 == 0:
                gc.collect()
        loop.call_soon_threadsafe(loop.stop)

    producer = threading.Thread(target=produce)
    loop.call_soon(producer.start)
    loop.call_later(HANG_TIMEOUT, loop.stop)
    loop.run_forever()
    producer.join()
    gc.collect()
    assert seen == list(range(count))


def test_context_kept_from_a_handle_outlives_it(loop):
    var = contextvars.ContextVar('var')
    var.set('scheduled')
    # Handle.get_context() arrived in asyncio with Python 3.12; _context is where it reads.
    contexts = [loop.call_soon(var.set, 'ran')._context for _ in range(100)]
    loop.call_soon(loop.stop)
    loop.run_forever()
    gc.collect()
    assert [ctx[var] for ctx in contexts] == ['ran'] * 100
    assert var.get() == 'scheduled'


loop_var = contextvars.ContextVar('loop')


def test_unclosed_loop_referenced_from_a_pending_callbacks_context_is_collected(loop_factory):
    # The cycle runs through the context the callbacks were scheduled in (a copy of one in
    # which a context variable holds the loop): loop -> handle -> context -> loop.
    loop = loop_factory()
    rfd, wfd = os.pipe()

    def schedule():
        loop_var.set(loop)
        loop.call_soon(print)
        loop.call_later(3600, print)
        loop.add_reader(rfd, print)

    contextvars.copy_context().run(schedule)
    loop_ref = weakref.ref(loop)
    del loop
    try:
        is_collected, warned = collected_warning_texts(loop_ref)
        assert is_collected
        assert any('unclosed event loop' in message for message in warned)
    finally:
        os.close(rfd)
        os.close(wfd)
