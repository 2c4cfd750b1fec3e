"""The loop's exception handler: set/get, the default handler's log, failing handlers."""

import asyncio
import contextvars
import gc
import logging
from asyncio import format_helpers
from unittest import mock

import pytest

from conftest import run_one_iteration
from ferroloop import versions


def boom():
    raise ZeroDivisionError('boom')


def test_set_and_get_exception_handler(loop):
    def handler(lp, ctx):
        pass

    assert loop.get_exception_handler() is None
    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


@pytest.mark.parametrize('bad', [1, 'handler'])
def test_non_callable_handler_is_a_type_error(loop, bad):
    with pytest.raises(TypeError, match=f'A callable object or None is expected, got {bad!r}'):
        loop.set_exception_handler(bad)


def test_handler_gets_the_loop_and_the_context(loop):
    calls = []
    loop.set_exception_handler(lambda lp, ctx: calls.append((lp, ctx)))
    context = {'message': 'hello', 'extra': 1}
    loop.call_exception_handler(context)
    assert calls == [(loop, context)]


def test_default_handler_logs_message_first_then_sorted_keys(loop, caplog):
    exc = ValueError('the error')
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        loop.call_exception_handler({
            'message': 'Something failed',
            'zeta': 'last',
            'alpha': 1,
            'exception': exc,
            'middle': [1, 2],
        })
    [record] = caplog.records
    assert record.name == 'asyncio'
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "Something failed\nalpha: 1\nmiddle: [1, 2]\nzeta: 'last'"
    assert record.exc_info[1] is exc


def test_default_handler_without_message_or_exception(loop, caplog):
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        loop.call_exception_handler({'key': 'value'})
    [record] = caplog.records
    assert record.getMessage() == "Unhandled exception in event loop\nkey: 'value'"
    assert not record.exc_info


def test_default_handler_formats_source_traceback(loop, caplog):
    import traceback
    stack = traceback.extract_stack()
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        loop.call_exception_handler({'message': 'm', 'source_traceback': stack})
    [record] = caplog.records
    expected = ('m\nsource_traceback: Object created at (most recent call last):\n'
                + ''.join(traceback.format_list(stack)).rstrip())
    assert record.getMessage() == expected


def test_exception_in_callback_is_logged_like_asyncio(loop, caplog):
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        handle = loop.call_soon(boom)
        # Taken before the run: afterwards a ferroloop handle no longer names its callback.
        handle_repr = repr(handle)
        run_one_iteration(loop)
    [record] = caplog.records
    source = format_helpers._format_callback_source(boom, ())
    assert record.getMessage() == f'Exception in callback {source}\nhandle: {handle_repr}'
    assert record.exc_info[0] is ZeroDivisionError


def test_failing_handler_is_logged_not_propagated(loop, caplog):
    def bad_handler(lp, ctx):
        raise RuntimeError('handler is broken')

    loop.set_exception_handler(bad_handler)
    seen = []
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        loop.call_soon(boom)
        loop.call_soon(seen.append, 'loop goes on')
        run_one_iteration(loop)
        loop.call_exception_handler({'message': 'direct call'})
    assert seen == ['loop goes on']
    assert len(caplog.records) == 2
    for record in caplog.records:
        assert record.getMessage().startswith('Unhandled error in exception handler\ncontext: ')
        assert record.exc_info[0] is RuntimeError


def test_handler_raising_keyboard_interrupt_propagates(loop):
    def interrupting_handler(lp, ctx):
        raise KeyboardInterrupt

    loop.set_exception_handler(interrupting_handler)
    with pytest.raises(KeyboardInterrupt):
        loop.call_exception_handler({'message': 'm'})


def test_failing_default_handler_is_logged(loop, caplog):
    with caplog.at_level(logging.DEBUG, logger='asyncio'), \
            mock.patch.object(loop, 'default_exception_handler', side_effect=ValueError('x')):
        loop.call_exception_handler({'message': 'm'})
    [record] = caplog.records
    assert record.getMessage() == 'Exception in default exception handler'


def test_call_exception_handler_can_be_patched_on_the_instance(loop):
    with mock.patch.object(loop, 'call_exception_handler') as patched:
        handle = loop.call_soon(boom)
        run_one_iteration(loop)
    patched.assert_called_once()
    [context] = patched.call_args.args
    assert context['handle'] is handle
    assert isinstance(context['exception'], ZeroDivisionError)
    assert 'call_exception_handler' not in vars(loop)


def test_task_exception_never_retrieved_goes_to_the_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def fail():
        raise ValueError('lost')

    task = loop.create_task(fail())
    run_one_iteration(loop)
    run_one_iteration(loop)
    del task
    gc.collect()
    assert len(contexts) == 1
    assert contexts[0]['message'] == 'Task exception was never retrieved'
    assert isinstance(contexts[0]['exception'], ValueError)


def test_future_exception_never_retrieved_goes_to_the_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    fut = loop.create_future()
    fut.set_exception(KeyError('lost'))
    del fut
    gc.collect()
    assert [c['message'] for c in contexts] == ['Future exception was never retrieved']


def test_exception_handler_runs_on_the_loop_for_a_task(loop):
    seen = []

    def handler(lp, ctx):
        seen.append(asyncio.get_running_loop())

    loop.set_exception_handler(handler)

    async def main():
        loop.call_soon(boom)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert seen == [loop]


def test_debug_handle_traceback_is_logged_for_errors_reported_inside_a_callback(loop, caplog):
    loop.set_debug(True)

    def report():
        assert loop._current_handle is handle
        loop.call_exception_handler({'message': 'reported from a callback'})

    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        handle = loop.call_soon(report)
        run_one_iteration(loop)
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(messages) == 1
    assert messages[0].startswith('reported from a callback\n'
                                  'handle_traceback: Handle created at (most recent call last):\n')
    assert 'test_exception_handler.py' in messages[0]
    assert loop._current_handle is None


# 3.12 (gh-96704): a custom handler runs in the context of the task, future or handle it
# reports on; before, in whatever context the report was made from.

culprit_var = contextvars.ContextVar('culprit_var', default='outside')


def expected_context_value(inside):
    return inside if versions.EXCEPTION_HANDLER_IN_CONTEXT else 'outside'


def test_handler_runs_in_the_failing_callbacks_context(loop):
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(culprit_var.get()))

    def callback():
        culprit_var.set('callback')
        raise ZeroDivisionError

    loop.call_soon(callback)
    run_one_iteration(loop)
    assert seen == [expected_context_value('callback')]


def test_handler_runs_in_the_context_of_a_task_whose_exception_was_never_retrieved(loop):
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append((culprit_var.get(), 'task' in ctx
                                                            or 'future' in ctx)))

    async def failing():
        culprit_var.set('task')
        raise ZeroDivisionError

    task = loop.create_task(failing())
    run_one_iteration(loop)
    assert task.done()
    del task
    gc.collect()
    assert seen == [(expected_context_value('task'), True)]


def test_handler_runs_in_the_context_given_with_call_soon(loop):
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(culprit_var.get()))
    context = contextvars.copy_context()
    context.run(culprit_var.set, 'given')
    loop.call_soon(boom, context=context)
    run_one_iteration(loop)
    assert seen == [expected_context_value('given')]


def test_handler_for_a_report_without_culprit_runs_where_it_is_called(loop):
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(culprit_var.get()))
    context = contextvars.copy_context()
    context.run(culprit_var.set, 'caller')
    context.run(loop.call_exception_handler, {'message': 'no culprit'})
    assert seen == ['caller']


def test_handler_cannot_enter_a_context_already_entered(loop, caplog):
    # Reporting on the running task from inside it: its context is the current one, and a
    # context cannot be entered twice, so (3.12+) the handler fails and the default handler
    # logs that; before 3.12 the handler simply runs.
    seen = []
    loop.set_exception_handler(lambda lp, ctx: seen.append(culprit_var.get()))

    async def main():
        culprit_var.set('running')
        loop.call_exception_handler({'message': 'about me', 'task': asyncio.current_task()})

    with caplog.at_level(logging.ERROR, logger='asyncio'):
        loop.run_until_complete(main())
    if versions.EXCEPTION_HANDLER_IN_CONTEXT:
        assert seen == []
        assert 'Unhandled error in exception handler' in caplog.text
        assert 'RuntimeError' in caplog.text
    else:
        assert seen == ['running']
