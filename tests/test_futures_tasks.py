"""create_future/create_task, task factories, current_task/all_tasks, contextvars in tasks."""

import asyncio
import contextvars

import pytest

from ferroloop import versions

var = contextvars.ContextVar('var', default='default')


async def value(x):
    await asyncio.sleep(0)
    return x


def test_create_future_is_an_asyncio_future_of_this_loop(loop):
    fut = loop.create_future()
    assert type(fut) is asyncio.Future
    assert fut.get_loop() is loop
    loop.call_soon(fut.set_result, 1)
    assert loop.run_until_complete(fut) == 1


def test_create_task_is_an_asyncio_task_of_this_loop(loop):
    task = loop.create_task(value(3))
    assert type(task) is asyncio.Task
    assert task.get_loop() is loop
    assert loop.run_until_complete(task) == 3


def test_task_name(loop):
    named = loop.create_task(value(1), name='my-task')
    unnamed = loop.create_task(value(2))
    assert named.get_name() == 'my-task'
    assert unnamed.get_name().startswith('Task-')
    loop.run_until_complete(asyncio.gather(named, unnamed))


def test_task_runs_in_the_given_context(loop):
    ctx = contextvars.copy_context()
    ctx.run(var.set, 'given')

    async def body():
        seen = var.get()
        var.set('changed-by-task')
        return seen

    assert loop.run_until_complete(loop.create_task(body(), context=ctx)) == 'given'
    assert ctx[var] == 'changed-by-task'
    assert var.get() == 'default'


def test_task_copies_the_current_context_at_creation(loop):
    async def body():
        return var.get()

    token = var.set('at-creation')
    try:
        task = loop.create_task(body())
    finally:
        var.reset(token)
    assert loop.run_until_complete(task) == 'at-creation'


def test_context_changes_do_not_leak_between_tasks(loop):
    async def child(name):
        var.set(name)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return var.get()

    async def main():
        var.set('parent')
        results = await asyncio.gather(*(child(f'child-{i}') for i in range(5)))
        return results, var.get()

    results, parent = loop.run_until_complete(main())
    assert results == [f'child-{i}' for i in range(5)]
    assert parent == 'parent'


def test_create_task_refuses_a_non_coroutine(loop):
    with pytest.raises(TypeError, match='a coroutine was expected'):
        loop.create_task(42)


def test_create_task_takes_its_coroutine_as_a_keyword_too(loop):
    task = loop.create_task(coro=value(7), name='by-keyword')
    assert task.get_name() == 'by-keyword'
    assert loop.run_until_complete(task) == 7


def test_create_task_refuses_a_wrong_number_of_coroutines(loop):
    with pytest.raises(TypeError, match='coro'):
        loop.create_task()
    first, second = value(1), value(2)
    with pytest.raises(TypeError):
        loop.create_task(first, second)
    with pytest.raises(TypeError, match='coro'):
        loop.create_task(first, coro=second)
    first.close()
    second.close()


def test_task_factory_is_used_and_gets_loop_and_coroutine(loop):
    calls = []

    def factory(lp, coro):
        calls.append((lp, coro))
        return asyncio.Task(coro, loop=lp)

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    coro = value(5)
    task = loop.create_task(coro)
    assert calls == [(loop, coro)]
    assert loop.run_until_complete(task) == 5
    # ensure_future and asyncio.create_task go through the loop, hence the factory.
    assert loop.run_until_complete(asyncio.ensure_future(value(6), loop=loop)) == 6
    assert len(calls) == 2
    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    loop.run_until_complete(value(7))
    assert len(calls) == 2


def test_task_factory_receives_context_only_when_given(loop):
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append(kwargs)
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.copy_context()
    loop.run_until_complete(loop.create_task(value(1)))
    loop.run_until_complete(loop.create_task(value(2), context=ctx))
    assert calls == [{}, {'context': ctx}]


def test_task_factory_task_gets_the_name(loop):
    # 3.11 to 3.13 name the factory's task themselves; 3.14 hands name= to the factory.
    loop.set_task_factory(lambda lp, coro, **kwargs: asyncio.Task(coro, loop=lp, **kwargs))
    task = loop.create_task(value(1), name='from-factory')
    assert task.get_name() == 'from-factory'
    loop.run_until_complete(task)


# What the factory gets from create_task(coro, **given), per versions.CREATE_TASK_KEYWORDS.
FACTORY_KEYWORDS = {
    'name-context': [{}, {}, {'context': 'ctx'}, {'context': 'ctx'}],
    'set-name': [{}, {}, {'context': 'ctx'}, {'context': 'ctx'}],
    'kwargs': [{}, {'name': 'n'}, {'context': 'ctx'}, {'name': 'n', 'context': 'ctx'}],
}


def test_task_factory_gets_the_keywords_as_the_version_passes_them(loop):
    ctx = contextvars.copy_context()
    calls = []

    def factory(lp, coro, **kwargs):
        calls.append({k: 'ctx' if v is ctx else v for k, v in kwargs.items()})
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    names = []
    for given in ({}, {'name': 'n'}, {'context': ctx}, {'name': 'n', 'context': ctx}):
        task = loop.create_task(value(1), **given)
        names.append(task.get_name())
        loop.run_until_complete(task)
    assert calls == FACTORY_KEYWORDS[versions.CREATE_TASK_KEYWORDS]
    # 3.13 calls task.set_name(name) even without a name: the task is named 'None'.
    unnamed = 'None' if versions.CREATE_TASK_KEYWORDS == 'set-name' else names[0]
    assert names[0] == unnamed and names[0] != 'n' and names[1] == names[3] == 'n'


def test_task_factory_result_without_set_name(loop):
    # A factory may return a task-like object without set_name(): 3.11 leaves it unnamed with
    # a DeprecationWarning, 3.13 fails on it, 3.14 leaves naming to the factory.
    class Unnameable:
        def __init__(self, task):
            self.task = task

    def factory(lp, coro, **kwargs):
        kwargs.pop('name', None)
        return Unnameable(asyncio.Task(coro, loop=lp, **kwargs))

    loop.set_task_factory(factory)
    style = versions.CREATE_TASK_KEYWORDS
    if style == 'name-context':
        with pytest.warns(DeprecationWarning, match='set_name') as record:
            made = loop.create_task(value(1), name='n')
        assert record[0].filename == __file__
    elif style == 'set-name':
        with pytest.raises(AttributeError, match='set_name'):
            loop.create_task(value(1), name='n')
        made = None
    else:
        made = loop.create_task(value(1), name='n')
    loop.set_task_factory(None)  # the fixture's shutdown_asyncgens() makes a task too
    if made is not None:
        assert loop.run_until_complete(made.task) == 1
    else:
        # The task was made, and scheduled, before set_name failed: let it finish.
        loop.run_until_complete(asyncio.sleep(0))


@pytest.mark.skipif(versions.CREATE_TASK_KEYWORDS != 'name-context',
                    reason='from 3.13 on, create_task passes any keyword on to the task')
def test_create_task_refuses_other_keywords(loop):
    coro = value(1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'eager_start'"):
        loop.create_task(coro, eager_start=True)
    loop.set_task_factory(lambda lp, c, **kwargs: asyncio.Task(c, loop=lp, **kwargs))
    with pytest.raises(TypeError, match="unexpected keyword argument 'eager_start'"):
        loop.create_task(coro, eager_start=True)
    coro.close()


@pytest.mark.skipif(versions.CREATE_TASK_KEYWORDS == 'name-context',
                    reason='create_task passes eager_start= on to the task from 3.13 on')
@pytest.mark.parametrize('factory', [None, 'passing keywords on'])
def test_create_task_eager_start(loop, factory):
    steps = []

    async def body():
        steps.append('started')
        await asyncio.sleep(0)
        steps.append('resumed')
        return 'done'

    async def main():
        task = loop.create_task(body(), eager_start=True, name='eager')
        # Eager: it ran up to its first await inside create_task.
        assert steps == ['started']
        assert task.get_name() == 'eager'
        return await task

    if factory:
        loop.set_task_factory(lambda lp, coro, **kwargs: asyncio.Task(coro, loop=lp, **kwargs))
    assert loop.run_until_complete(main()) == 'done'
    assert steps == ['started', 'resumed']


def test_unexpected_loop_keyword_is_a_type_error(loop):
    coro = value(1)
    with pytest.raises(TypeError):
        loop.create_task(coro, loop=loop)
    coro.close()


@pytest.mark.skipif(not hasattr(asyncio, 'eager_task_factory'),
                    reason='eager task factories arrived with 3.12')
def test_eager_task_factory(loop):
    loop.set_task_factory(asyncio.eager_task_factory)
    seen = []
    ctx_var = contextvars.ContextVar('ctx_var', default='unset')

    async def no_suspension():
        seen.append((asyncio.current_task() is not None, ctx_var.get()))
        return 'at once'

    async def main():
        ctx_var.set('main')
        task = loop.create_task(no_suspension(), name='eager-one')
        # Done inside create_task: it never suspended.
        assert task.done() and task.result() == 'at once'
        assert task.get_name() == 'eager-one'
        lazy = loop.create_task(value(7))
        assert not lazy.done()
        return await lazy, await asyncio.create_task(no_suspension())

    assert loop.run_until_complete(main()) == (7, 'at once')
    assert seen == [(True, 'main'), (True, 'main')]


@pytest.mark.skipif(not hasattr(asyncio, 'create_eager_task_factory'),
                    reason='eager task factories arrived with 3.12')
def test_custom_eager_task_factory(loop):
    class MyTask(asyncio.Task):
        pass

    loop.set_task_factory(asyncio.create_eager_task_factory(MyTask))

    async def main():
        return type(asyncio.current_task())

    task = loop.run_until_complete(asyncio.wait_for(main(), 30))
    assert task is MyTask


def test_task_factory_may_return_a_task_subclass(loop):
    class MyTask(asyncio.Task):
        pass

    loop.set_task_factory(lambda lp, coro: MyTask(coro, loop=lp))

    async def main():
        return type(asyncio.current_task())

    assert loop.run_until_complete(main()) is MyTask


@pytest.mark.parametrize('bad', [1, 'factory', object()])
def test_non_callable_task_factory_is_a_type_error(loop, bad):
    with pytest.raises(TypeError, match='task factory must be a callable or None'):
        loop.set_task_factory(bad)
    assert loop.get_task_factory() is None


def test_current_task_and_all_tasks(loop):
    async def sleeper(event):
        await event.wait()

    async def main():
        me = asyncio.current_task()
        assert asyncio.current_task(loop) is me
        event = asyncio.Event()
        others = [loop.create_task(sleeper(event)) for _ in range(3)]
        await asyncio.sleep(0)
        tasks = asyncio.all_tasks()
        assert asyncio.all_tasks(loop) == tasks
        event.set()
        await asyncio.gather(*others)
        return me, tasks, others

    me, tasks, others = loop.run_until_complete(main())
    assert tasks == {me, *others}
    assert asyncio.current_task(loop) is None
    assert asyncio.all_tasks(loop) == set()


def test_current_task_is_none_in_a_plain_callback(loop):
    seen = []
    loop.call_soon(lambda: seen.append(asyncio.current_task()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [None]


def test_task_cancellation(loop):
    started = []

    async def forever():
        started.append(True)
        await asyncio.sleep(3600)

    async def main():
        task = loop.create_task(forever())
        await asyncio.sleep(0)
        task.cancel('stop it')
        with pytest.raises(asyncio.CancelledError):
            await task
        return task

    task = loop.run_until_complete(main())
    assert started == [True]
    assert task.cancelled()


def test_high_level_helpers_work_on_the_loop(loop):
    async def main():
        gathered = await asyncio.gather(value(1), value(2))
        waited = await asyncio.wait_for(value(3), 30)
        shielded = await asyncio.shield(value(4))
        done, _ = await asyncio.wait([loop.create_task(value(5))])
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(3600), 0.01)
        queue = asyncio.Queue()
        loop.call_later(0.001, queue.put_nowait, 6)
        from_queue = await queue.get()
        return gathered, waited, shielded, done.pop().result(), from_queue

    assert loop.run_until_complete(main()) == ([1, 2], 3, 4, 5, 6)


def test_task_done_callbacks_run_on_the_loop(loop):
    seen = []

    async def main():
        task = loop.create_task(value('v'))
        task.add_done_callback(lambda t: seen.append((t.result(), asyncio.get_running_loop())))
        await task
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    assert seen == [('v', loop)]


def test_unretrieved_task_exception_is_reported(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def fail():
        raise ValueError('never retrieved')

    async def main():
        loop.create_task(fail())
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    loop.run_until_complete(main())
    import gc
    gc.collect()
    assert [type(c.get('exception')) for c in contexts] == [ValueError]
    assert contexts[0]['message'] == 'Task exception was never retrieved'
