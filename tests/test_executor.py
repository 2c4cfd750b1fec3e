"""run_in_executor, the default executor, shutdown_default_executor, asyncio.to_thread."""

import asyncio
import concurrent.futures
import contextvars
import threading
import time
import warnings

import pytest

from ferroloop import versions

var = contextvars.ContextVar('var', default='default')


def thread_name():
    return threading.current_thread().name


def fail():
    raise ValueError('in the executor')


def test_default_executor_runs_in_another_thread(loop):
    fut = loop.run_in_executor(None, thread_name)
    assert isinstance(fut, asyncio.Future)
    name = loop.run_until_complete(fut)
    assert name != threading.current_thread().name
    assert name.startswith('asyncio')


def test_arguments_results_and_exceptions(loop):
    assert loop.run_until_complete(loop.run_in_executor(None, pow, 2, 10)) == 1024
    with pytest.raises(ValueError, match='in the executor'):
        loop.run_until_complete(loop.run_in_executor(None, fail))


def test_many_jobs_complete(loop):
    async def main():
        return await asyncio.gather(*(loop.run_in_executor(None, pow, i, 2) for i in range(100)))

    assert loop.run_until_complete(main()) == [i * i for i in range(100)]


def test_custom_executor(loop):
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='custom') as executor:
        name = loop.run_until_complete(loop.run_in_executor(executor, thread_name))
    assert name.startswith('custom')


def test_set_default_executor(loop):
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='my-default')
    loop.set_default_executor(executor)
    assert loop.run_until_complete(loop.run_in_executor(None, thread_name)).startswith('my-default')
    loop.run_until_complete(loop.shutdown_default_executor())
    assert executor._shutdown


@pytest.mark.parametrize('bad', [None, object(), 'executor'])
def test_set_default_executor_refuses_other_objects(loop, bad):
    with pytest.raises(TypeError, match='executor must be ThreadPoolExecutor instance'):
        loop.set_default_executor(bad)


def test_shutdown_default_executor_waits_for_running_jobs(loop):
    release = threading.Event()
    finished = []

    def job():
        release.wait(30)
        finished.append(True)

    async def main():
        loop.run_in_executor(None, job)
        loop.call_later(0.01, release.set)
        await loop.shutdown_default_executor()
        return list(finished)

    assert loop.run_until_complete(main()) == [True]


def test_shutdown_default_executor_without_executor(loop):
    loop.run_until_complete(loop.shutdown_default_executor())


def test_run_in_default_executor_after_shutdown_is_refused(loop):
    loop.run_until_complete(loop.run_in_executor(None, int))
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match='Executor shutdown has been called'):
        loop.run_in_executor(None, int)
    # A custom executor is still fine.
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        assert loop.run_until_complete(loop.run_in_executor(executor, int, '5')) == 5


def test_run_in_executor_after_shutdown_without_prior_executor_is_refused(loop):
    loop.run_until_complete(loop.shutdown_default_executor())
    with pytest.raises(RuntimeError, match='Executor shutdown has been called'):
        loop.run_in_executor(None, int)


def test_to_thread_copies_the_context(loop):
    async def main():
        var.set('in-task')
        return await asyncio.to_thread(lambda x: (var.get(), thread_name(), x), 7)

    value, name, x = loop.run_until_complete(main())
    assert (value, x) == ('in-task', 7)
    assert name != threading.current_thread().name


def test_debug_mode_refuses_a_coroutine_function(loop):
    async def coro_fn():
        pass

    loop.set_debug(True)
    with pytest.raises(TypeError, match=r'coroutines cannot be used with run_in_executor\(\)'):
        loop.run_in_executor(None, coro_fn)


def test_cancelling_the_wrapper_future(loop):
    release = threading.Event()

    async def main():
        fut = loop.run_in_executor(None, release.wait, 30)
        await asyncio.sleep(0)
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        release.set()

    loop.run_until_complete(main())


def test_asyncio_run_shuts_the_default_executor_down(loop_factory):
    executors = []

    async def main():
        await asyncio.get_running_loop().run_in_executor(None, int)
        executors.append(asyncio.get_running_loop()._default_executor)

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
    assert executors[0]._shutdown


# 3.12: shutdown_default_executor(timeout=None), which asyncio.run and Runner.close pass.

needs_timeout = pytest.mark.skipif(not versions.SHUTDOWN_EXECUTOR_TAKES_TIMEOUT,
                                   reason='shutdown_default_executor takes a timeout from 3.12 on')


@pytest.mark.skipif(versions.SHUTDOWN_EXECUTOR_TAKES_TIMEOUT,
                    reason="3.11's shutdown_default_executor takes no timeout")
def test_shutdown_default_executor_takes_no_timeout_on_3_11(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(loop.shutdown_default_executor(1))


@needs_timeout
def test_shutdown_default_executor_with_a_timeout_that_is_not_reached(loop):
    loop.run_until_complete(loop.run_in_executor(None, time.sleep, 0.01))
    executor = loop._default_executor
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        loop.run_until_complete(loop.shutdown_default_executor(timeout=30))
        loop.run_until_complete(loop.shutdown_default_executor(None))
    assert executor._shutdown


@needs_timeout
def test_shutdown_default_executor_timeout_warns_and_stops_waiting(loop):
    release = threading.Event()
    job = loop.run_in_executor(None, release.wait, 30)
    started = time.monotonic()
    try:
        with pytest.warns(RuntimeWarning, match=r'The executor did not finishing joining its '
                                                r'threads within 0\.1 seconds\.'):
            loop.run_until_complete(loop.shutdown_default_executor(0.1))
        assert time.monotonic() - started < 10
        assert not job.done()
    finally:
        release.set()
    assert loop.run_until_complete(job) is True
    # The executor's threads end on their own once the job returns.
    with pytest.raises(RuntimeError, match='Executor shutdown has been called'):
        loop.run_in_executor(None, int)


@needs_timeout
def test_runner_passes_its_timeout_and_closes_the_loop(loop_factory):
    # Runner.close() calls shutdown_default_executor(THREAD_JOIN_TIMEOUT).
    seen = []

    async def main():
        loop = asyncio.get_running_loop()
        original = loop.shutdown_default_executor

        async def spy(*args, **kwargs):
            seen.append((args, kwargs))
            return await original(*args, **kwargs)

        loop.shutdown_default_executor = spy
        return await loop.run_in_executor(None, sum, [1, 2])

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(main()) == 3
        loop = runner.get_loop()
    assert loop.is_closed()
    assert seen == [((asyncio.constants.THREAD_JOIN_TIMEOUT,), {})]


def test_a_cancelled_to_thread_returns_at_once_and_shutdown_waits_for_its_worker(loop_factory):
    # The thread cannot be stopped: cancelling asyncio.to_thread() ends the awaiting task at
    # once, the worker runs on to its end, and closing the loop (Runner.close's
    # shutdown_default_executor) waits for it, leaving no thread behind.
    release = threading.Event()
    started = threading.Event()
    finished = []
    workers = []

    def job():
        workers.append(threading.current_thread())
        started.set()
        release.wait(30)
        finished.append(True)

    async def main():
        task = asyncio.create_task(asyncio.to_thread(job))
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert finished == []   # the worker is still running
        assert workers[0].is_alive()

    # Releases the worker only once the runner is closing the loop.
    release_later = threading.Timer(0.2, release.set)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
        release_later.start()
    release_later.join()
    assert finished == [True]
    assert not workers[0].is_alive()
