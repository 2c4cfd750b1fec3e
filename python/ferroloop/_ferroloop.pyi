"""Type stub of ferroloop's native module (the Rust loop core).

``ferroloop.EventLoop`` subclasses ``LoopCore``; user code should use ``EventLoop`` and the
``asyncio.AbstractEventLoop`` API. The underscore-prefixed members are the core's interface to
the Python face, or asyncio's well-known private attributes kept for compatibility.

Signatures follow typeshed's ``asyncio.AbstractEventLoop`` so that ``EventLoop`` type-checks as
one. For that reason the scheduling methods are typed as returning ``asyncio.Handle`` /
``asyncio.TimerHandle`` (as uvloop's stub does): at runtime they return this module's
``Handle``/``TimerHandle``, which implement the same interface.
"""

import asyncio
import contextvars
import socket
import traceback
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Protocol, Self, TypeAlias, TypeVar, TypeVarTuple, Unpack, final

from _typeshed import FileDescriptorLike, ReadableBuffer, WriteableBuffer

__all__ = ['Handle', 'LoopCore', 'SockOperation', 'TimerHandle', '_check_callback']

_T = TypeVar('_T')
_Ts = TypeVarTuple('_Ts')
_CoroutineLike: TypeAlias = Coroutine[Any, Any, _T] | Generator[Any, None, _T]

class _TaskFactory(Protocol):
    def __call__(self, loop: asyncio.AbstractEventLoop, factory: _CoroutineLike[_T],
                 /, **kwargs: Any) -> asyncio.Future[_T]: ...

class LoopCore:
    """The Rust half of ``ferroloop.EventLoop``: scheduling, timers, the run loop, fd
    watchers and the hot ``sock_*`` paths."""

    slow_callback_duration: float
    """Debug mode: callbacks that run longer than this (seconds) are logged."""
    _debug: bool

    def __new__(cls, *args: Any, **kwargs: Any) -> Self: ...

    # Clock and state.
    def time(self) -> float:
        """The loop's clock: ``time.monotonic()``'s clock, in seconds."""
    def is_running(self) -> bool: ...
    def is_closed(self) -> bool: ...
    def stop(self) -> None:
        """Stop after the callbacks already ready have run."""
    @property
    def _closed(self) -> bool: ...
    @property
    def _stopping(self) -> bool: ...
    @property
    def _thread_id(self) -> int | None:
        """``threading.get_ident()`` of the thread running the loop, or None."""
    @property
    def _clock_resolution(self) -> float: ...
    @property
    def _ready_count(self) -> int:
        """Callbacks waiting in the ready queue."""
    @property
    def _timer_count(self) -> int:
        """Timers in the heap, cancelled ones included until dropped."""

    # Scheduling.
    def call_soon(self, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts,
                  context: contextvars.Context | None = None) -> asyncio.Handle: ...
    def call_soon_threadsafe(self, callback: Callable[[Unpack[_Ts]], object],
                             *args: *_Ts,
                             context: contextvars.Context | None = None) -> asyncio.Handle: ...
    def call_later(self, delay: float, callback: Callable[[Unpack[_Ts]], object],
                   *args: *_Ts,
                   context: contextvars.Context | None = None) -> asyncio.TimerHandle: ...
    def call_at(self, when: float, callback: Callable[[Unpack[_Ts]], object],
                *args: *_Ts,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle: ...

    # Futures and tasks.
    def create_future(self) -> asyncio.Future[Any]: ...
    # name= and context= on every version; 3.13 on, any keyword Task or the factory takes
    # (3.14's eager_start=).
    def create_task(self, coro: _CoroutineLike[_T], **kwargs: Any) -> asyncio.Task[_T]: ...
    def set_task_factory(self, factory: _TaskFactory | None) -> None: ...
    def get_task_factory(self) -> _TaskFactory | None: ...

    # File descriptor watchers.
    def add_reader(self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], Any],
                   *args: *_Ts) -> None: ...
    def add_writer(self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], Any],
                   *args: *_Ts) -> None: ...
    def remove_reader(self, fd: FileDescriptorLike) -> bool: ...
    def remove_writer(self, fd: FileDescriptorLike) -> bool: ...
    def _add_reader(self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], object],
                    *args: *_Ts) -> Handle:
        """``add_reader`` without the transport check, returning the handle."""
    def _add_writer(self, fd: FileDescriptorLike, callback: Callable[[Unpack[_Ts]], object],
                    *args: *_Ts) -> Handle: ...
    def _remove_reader(self, fd: FileDescriptorLike) -> bool: ...
    def _remove_writer(self, fd: FileDescriptorLike) -> bool: ...
    def _discard_watcher(self, fd: int, handle: Handle, write: bool) -> None:
        """Remove the registration ``handle`` was made as, if it is still there."""
    def _ensure_fd_no_transport(self, fd: FileDescriptorLike) -> None:
        """RuntimeError if a live transport owns ``fd``."""

    # The native socket operations behind sock_recv/sock_recv_into/sock_sendall: the result
    # at once if the syscall succeeded, else a pending SockOperation.
    def _sock_recv(self, sock: socket.socket, n: int) -> bytes | SockOperation: ...
    def _sock_recv_into(self, sock: socket.socket, buf: WriteableBuffer) -> int | SockOperation: ...
    def _sock_sendall(self, sock: socket.socket, data: ReadableBuffer) -> SockOperation | None: ...

    # Running, for the Python face.
    def _enter_running(self) -> None: ...
    def _leave_running(self) -> None: ...
    def _run_until_stopped(self) -> None: ...
    def _run_once(self) -> None:
        """Run exactly one iteration (for tests and embedders)."""
    def _close_core(self) -> None: ...

    # The watchdog and metrics, for ferroloop.watchdog.
    def _watchdog_start(self, threshold: float, reporter: Any) -> None:
        """Report callbacks running past ``threshold`` seconds to ``reporter._blocked``
        while they run and to ``reporter._ended`` when they return."""
    def _watchdog_stop(self) -> None: ...
    @property
    def _watchdog_threshold(self) -> float | None: ...
    def _set_metrics_timing(self, enabled: bool) -> None: ...
    def _metrics_core(self) -> dict[str, int | float]: ...

class Handle:
    """A scheduled callback (``asyncio.Handle``'s interface)."""

    def cancel(self) -> None: ...
    def cancelled(self) -> bool: ...
    def get_context(self) -> contextvars.Context: ...
    def _run(self) -> None: ...
    @property
    def _callback(self) -> Callable[..., object] | None:
        """None once cancelled, as in asyncio."""
    @property
    def _args(self) -> tuple[Any, ...] | None: ...
    @property
    def _cancelled(self) -> bool: ...
    @property
    def _loop(self) -> LoopCore: ...
    @property
    def _context(self) -> contextvars.Context: ...
    @property
    def _source_traceback(self) -> traceback.StackSummary | None:
        """Debug mode: where the handle was created."""

@final
class TimerHandle(Handle):
    """A callback scheduled for a deadline on the loop's clock (``asyncio.TimerHandle``)."""

    def when(self) -> float: ...
    @property
    def _when(self) -> float: ...
    @property
    def _scheduled(self) -> bool:
        """Still in the loop's timer heap."""
    def __hash__(self) -> int: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __lt__(self, other: TimerHandle, /) -> bool: ...
    def __le__(self, other: TimerHandle, /) -> bool: ...
    def __gt__(self, other: TimerHandle, /) -> bool: ...
    def __ge__(self, other: TimerHandle, /) -> bool: ...

@final
class SockOperation:
    """A pending native socket operation; ``future`` gets its result."""

    @property
    def future(self) -> asyncio.Future[Any]: ...
    def abandon(self) -> None:
        """Stop watching the fd for this operation (its waiter was cancelled)."""

def _check_callback(callback: object, method: str) -> None:
    """Raise asyncio's debug-mode TypeError for a coroutine or a non-callable ``callback``."""
