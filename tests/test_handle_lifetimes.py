"""Handles and the objects their callbacks reference are freed: after running, after
cancelling, and with a loop that is dropped without being closed."""

import gc
import warnings
import weakref


class Owner:
    """Keeps the handle that calls back into it: a reference cycle through the handle."""

    def method(self):
        self.called = True


def collected(ref):
    for _ in range(3):
        gc.collect()
    return ref() is None


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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert collected(loop_ref)
    assert collected(owner_ref)
    assert any('unclosed event loop' in str(w.message) for w in caught)
