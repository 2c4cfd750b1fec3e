"""``EventLoop``: the Rust core plus the rarely-hot part of asyncio's loop API.

The hot paths (scheduling, timers, the run loop, fd watchers, ``sock_recv``/``sock_sendall``)
are methods of ``_ferroloop.LoopCore``. This class adds what runs once per program or per
connection: running and closing, debug mode, and (through the mixins) exception handling,
executors, name resolution, signals and the socket helpers.
"""

import asyncio
import sys
import warnings
from asyncio import coroutines, events, futures, tasks

from . import _ferroloop
from .asyncgens import AsyncGenMixin
from .connections import ConnectionsMixin
from .datagram import DatagramMixin
from .dns import DnsMixin
from .exception_handler import ExceptionHandlerMixin
from .executor import ExecutorMixin
from .pipes import PipesMixin
from .process import SubprocessMixin
from .sendfile import SendfileMixin
from .servers import ServersMixin
from .signals import SignalMixin
from .sock import SockMixin
from .tls import TlsMixin
from .watchdog import WatchdogMixin

# asyncio.constants.DEBUG_STACK_DEPTH: frames kept by coroutine origin tracking in debug mode.
_DEBUG_STACK_DEPTH = 10


def _stop_when_done(fut):
    """Done-callback of ``run_until_complete``'s future: stop the loop.

    ``SystemExit``/``KeyboardInterrupt`` raised inside the future have already left
    ``run_forever`` by the time this runs; stopping again would stop the *next* run.
    """
    if not fut.cancelled() and isinstance(fut.exception(), (SystemExit, KeyboardInterrupt)):
        return
    futures._get_loop(fut).stop()


class EventLoop(
    _ferroloop.LoopCore,
    ExceptionHandlerMixin,
    ExecutorMixin,
    AsyncGenMixin,
    DnsMixin,
    SockMixin,
    ConnectionsMixin,
    ServersMixin,
    DatagramMixin,
    PipesMixin,
    SubprocessMixin,
    SendfileMixin,
    TlsMixin,
    SignalMixin,
    WatchdogMixin,
    asyncio.AbstractEventLoop,
):
    """An asyncio event loop implemented in Rust. Drop-in for asyncio's default loop."""

    def __init__(self):
        # -X dev or PYTHONASYNCIODEBUG, read the way asyncio reads them.
        self._debug = coroutines._is_debug_mode()
        self._coroutine_origin_tracking_enabled = False
        self._coroutine_origin_tracking_saved_depth = None
        # The asyncgen hooks run_forever replaced, to put back when it ends.
        self._old_agen_hooks = None
        ExceptionHandlerMixin._init_exception_handler(self)
        ExecutorMixin._init_executor(self)
        AsyncGenMixin._init_asyncgens(self)
        SignalMixin._init_signals(self)
        SubprocessMixin._init_subprocesses(self)
        WatchdogMixin._init_watchdog(self)

    def __repr__(self):
        return (f'<{self.__class__.__name__} running={self.is_running()} '
                f'closed={self.is_closed()} debug={self.get_debug()}>')

    # Running and stopping.

    def _check_running(self):
        if self.is_running():
            raise RuntimeError('This event loop is already running')
        if events._get_running_loop() is not None:
            raise RuntimeError('Cannot run the event loop while another loop is running')

    def run_forever(self):
        """Run until ``stop()`` is called."""
        self._run_forever_setup()
        try:
            self._run_until_stopped()
        finally:
            self._run_forever_cleanup()

    # run_forever in two halves, as asyncio has them from 3.13 on: for subclasses that run the
    # iterations themselves (``_run_once``), such as loops driven by a GUI toolkit's.

    def _run_forever_setup(self):
        """Everything ``run_forever`` does before its first iteration."""
        if self.is_closed():
            raise RuntimeError('Event loop is closed')
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        self._old_agen_hooks = sys.get_asyncgen_hooks()
        self._enter_running()
        sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                               finalizer=self._asyncgen_finalizer_hook)
        events._set_running_loop(self)

    def _run_forever_cleanup(self):
        """Everything ``run_forever`` does after its last iteration."""
        self._leave_running()
        events._set_running_loop(None)
        self._set_coroutine_origin_tracking(False)
        if self._old_agen_hooks is not None:
            sys.set_asyncgen_hooks(*self._old_agen_hooks)
            self._old_agen_hooks = None

    def run_until_complete(self, future):
        """Run until ``future`` (a future, task or coroutine) is done; return its result."""
        if self.is_closed():
            raise RuntimeError('Event loop is closed')
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            # The task is ours: if the loop stops early, it is not the user's leak to report.
            future._log_destroy_pending = False
        future.add_done_callback(_stop_when_done)
        try:
            self.run_forever()
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                # The exception is about to propagate; mark it retrieved so the task does
                # not also log "exception was never retrieved".
                future.exception()
            raise
        finally:
            future.remove_done_callback(_stop_when_done)
        if not future.done():
            raise RuntimeError('Event loop stopped before Future completed.')
        return future.result()

    def close(self):
        """Close the loop: drop pending callbacks, shut the default executor down (without
        waiting) and release the loop's file descriptors. Idempotent."""
        if self.is_running():
            raise RuntimeError('Cannot close a running event loop')
        if self.is_closed():
            return
        if self._debug:
            from asyncio.log import logger
            logger.debug('Close %r', self)
        SignalMixin._close_signals(self)
        self._close_core()
        # After the core let go of the pidfds' watchers: a closed fd must leave epoll first.
        SubprocessMixin._close_subprocesses(self)
        ExecutorMixin._close_executor(self)

    def __del__(self, _warn=warnings.warn):
        if not self.is_closed():
            _warn(f'unclosed event loop {self!r}', ResourceWarning, source=self)
            if not self.is_running():
                self.close()

    def _timer_handle_cancelled(self, handle):
        """Called by ``asyncio.TimerHandle.cancel()`` for a handle made with this loop by hand.

        Such a handle is not in the loop's timer heap (only ``call_later``/``call_at`` put
        timers there, and theirs count their own cancellations), so there is nothing to do.
        """

    # Debug mode.

    # get_debug() is the core's: asyncio.Future() calls it for every future it makes.

    def set_debug(self, enabled):
        self._debug = enabled
        if self.is_running():
            self.call_soon_threadsafe(self._set_coroutine_origin_tracking, enabled)

    def _set_coroutine_origin_tracking(self, enabled):
        if bool(enabled) == bool(self._coroutine_origin_tracking_enabled):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(_DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(self._coroutine_origin_tracking_saved_depth)
        self._coroutine_origin_tracking_enabled = enabled
