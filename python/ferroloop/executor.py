"""``run_in_executor`` and the default executor."""

import concurrent.futures
import threading
import warnings
from asyncio import futures, timeouts

from . import versions


class ExecutorMixin:

    def _init_executor(self):
        self._default_executor = None
        self._executor_shutdown_called = False

    def _close_executor(self):
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is not None:
            self._default_executor = None
            executor.shutdown(wait=False)

    def run_in_executor(self, executor, func, *args):
        """Run ``func(*args)`` in ``executor`` (None: the default thread pool); return an
        asyncio future for its result."""
        if self.is_closed():
            raise RuntimeError('Event loop is closed')
        if self.get_debug():
            from ._ferroloop import _check_callback
            _check_callback(func, 'run_in_executor')
        if executor is None:
            if self._executor_shutdown_called:
                raise RuntimeError('Executor shutdown has been called')
            executor = self._default_executor
            if executor is None:
                executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix='asyncio')
                self._default_executor = executor
        return futures.wrap_future(executor.submit(func, *args), loop=self)

    def set_default_executor(self, executor):
        """Use ``executor`` (a ThreadPoolExecutor) for ``run_in_executor(None, ...)``."""
        if not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            raise TypeError('executor must be ThreadPoolExecutor instance')
        self._default_executor = executor

    if versions.SHUTDOWN_EXECUTOR_TAKES_TIMEOUT:
        async def shutdown_default_executor(self, timeout=None):
            """Wait for the default executor's threads to finish, without blocking the loop.

            After ``timeout`` seconds (None: no limit) stop waiting: warn, and let the threads
            finish on their own."""
            executor = self._default_executor
            thread, done = self._start_executor_shutdown()
            if thread is None:
                return
            try:
                async with timeouts.timeout(timeout):
                    await done
            except TimeoutError:
                warnings.warn(f'The executor did not finishing joining its threads within '
                              f'{timeout} seconds.', RuntimeWarning, stacklevel=2)
                executor.shutdown(wait=False)
            else:
                thread.join()
    else:
        async def shutdown_default_executor(self):
            """Wait for the default executor's threads to finish, without blocking the loop."""
            thread, done = self._start_executor_shutdown()
            if thread is None:
                return
            try:
                await done
            finally:
                thread.join()

    def _start_executor_shutdown(self):
        """Shuts the default executor down in a thread of its own: (thread, future done when
        it is), or (None, None) if there is no executor to shut down."""
        self._executor_shutdown_called = True
        executor = self._default_executor
        if executor is None:
            return None, None
        done = self.create_future()
        thread = threading.Thread(target=self._shutdown_executor_in_thread, args=(executor, done))
        thread.start()
        return thread, done

    def _shutdown_executor_in_thread(self, executor, done):
        try:
            executor.shutdown(wait=True)
            if not self.is_closed():
                self.call_soon_threadsafe(_set_result_unless_cancelled, done, None)
        except Exception as exc:
            if not self.is_closed():
                self.call_soon_threadsafe(_set_exception_unless_cancelled, done, exc)


def _set_result_unless_cancelled(fut, result):
    if not fut.cancelled():
        fut.set_result(result)


def _set_exception_unless_cancelled(fut, exc):
    if not fut.cancelled():
        fut.set_exception(exc)
