"""Unix signal handlers run as loop callbacks (``add_signal_handler``).

Python's own C-level handler writes the signal number to a wakeup fd
(``signal.set_wakeup_fd``); the loop watches that fd and runs the registered callback as an
ordinary callback, on the loop's thread, never inside the signal handler itself.
"""

import contextvars
import errno
import signal
import socket
import sys
import warnings
from asyncio import coroutines
from asyncio.log import logger

from . import versions


def _ignore_signal(signum, frame):
    """The Python-level handler: nothing to do but let Python write to the wakeup fd."""


class SignalMixin:

    def _init_signals(self):
        self._signal_handlers = {}
        self._signal_wakeup = None  # (read socket, write socket), made on first use

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f'sig must be an int, not {sig!r}')
        if sig not in signal.valid_signals():
            raise ValueError(f'invalid signal number {sig}')

    def _wakeup_socket(self):
        if self._signal_wakeup is None:
            rsock, wsock = socket.socketpair()
            rsock.setblocking(False)
            wsock.setblocking(False)
            self._signal_wakeup = (rsock, wsock)
            self.add_reader(rsock.fileno(), self._read_signal_numbers)
        return self._signal_wakeup[1]

    def _read_signal_numbers(self):
        rsock = self._signal_wakeup[0]
        while True:
            try:
                data = rsock.recv(4096)
            except InterruptedError:
                continue
            except BlockingIOError:
                return
            if not data:
                return
            for signum in data:
                self._dispatch_signal(signum)

    def _dispatch_signal(self, signum):
        entry = self._signal_handlers.get(signum)
        if entry is not None:
            callback, args, context = entry
            self.call_soon(callback, *args, context=context)

    def add_signal_handler(self, sig, callback, *args):
        """Run ``callback(*args)`` on the loop whenever signal ``sig`` arrives.

        The handler is in force when this returns. Main thread only (RuntimeError otherwise),
        as Python's signal handling is.
        """
        if coroutines.iscoroutine(callback) or versions.iscoroutinefunction(callback):
            raise TypeError('coroutines cannot be used with add_signal_handler()')
        self._check_signal(sig)
        if self.is_closed():
            raise RuntimeError('Event loop is closed')
        wsock = self._wakeup_socket()
        try:
            # Raises ValueError outside the main thread: a loop running in another thread
            # cannot take over the process's signals.
            signal.set_wakeup_fd(wsock.fileno())
        except (ValueError, OSError) as exc:
            raise RuntimeError(str(exc))
        self._signal_handlers[sig] = (callback, args, contextvars.copy_context())
        try:
            signal.signal(sig, _ignore_signal)
            # Restart interrupted system calls in other threads' blocking code.
            signal.siginterrupt(sig, False)
        except OSError as exc:
            del self._signal_handlers[sig]
            if not self._signal_handlers:
                self._release_wakeup_fd()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise

    def remove_signal_handler(self, sig):
        """Remove the handler of ``sig`` and restore the default disposition.

        Returns True if a handler was removed."""
        self._check_signal(sig)
        if self._signal_handlers.pop(sig, None) is None:
            return False
        default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        try:
            signal.signal(sig, default)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f'sig {sig:d} cannot be caught')
            raise
        if not self._signal_handlers:
            self._release_wakeup_fd()
        return True

    def _release_wakeup_fd(self):
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError) as exc:
            logger.info('set_wakeup_fd(-1) failed: %s', exc)

    def _close_signals(self):
        if self._signal_handlers:
            if sys.is_finalizing():
                warnings.warn(f'Closing the loop {self!r} on interpreter shutdown stage, '
                              f'skipping signal handlers removal', ResourceWarning, source=self)
                self._signal_handlers.clear()
            else:
                for sig in list(self._signal_handlers):
                    self.remove_signal_handler(sig)
        if self._signal_wakeup is not None:
            rsock, wsock = self._signal_wakeup
            self._signal_wakeup = None
            self.remove_reader(rsock.fileno())
            rsock.close()
            wsock.close()
