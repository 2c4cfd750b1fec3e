"""Pipes: ``connect_read_pipe``, ``connect_write_pipe`` and their transports.

A pipe transport works on any pipe, socket or character device (a pty, say), as asyncio's
``_UnixReadPipeTransport``/``_UnixWritePipeTransport`` do. The reading and writing are done by
a native core (``_ferroloop.ReadPipeTransport``/``WritePipeTransport``); the objects protocols
see are these thin ``asyncio.ReadTransport``/``asyncio.WriteTransport`` subclasses (a native
class cannot be one), with the hot methods bound straight to the core.
"""

import contextvars
import os
import stat
from asyncio import transports
from asyncio.log import logger

from . import _ferroloop
from .transports import CoreFlowControl, CoreReading, CoreTransport, CoreWriting, until_made


def _check_pipe(pipe, message, allowed):
    fileno = pipe.fileno()
    mode = os.fstat(fileno).st_mode
    if not any(test(mode) for test in allowed):
        raise ValueError(message)
    return fileno, mode


class _PipeTransport(CoreTransport):
    """What the two pipe transports share: asyncio's private attributes of a pipe transport."""

    __slots__ = ()

    def _repr_io(self, core):
        if not core._open:
            return ('closed',)
        if self._loop.is_closed():
            return ('open',)
        return self._repr_polling(core)

    def _fatal_error(self, exc, message='Fatal error on pipe transport'):
        self._core._fatal_error(exc, message)

    @property
    def _fileno(self):
        return self._core._fd

    @property
    def _pipe(self):
        return self._core._pipe

    @_pipe.setter
    def _pipe(self, value):
        # asyncio's tests (and a few programs) clear _pipe after closing the pipe themselves,
        # so that the transport's finaliser leaves it alone.
        if value is not None:
            raise ValueError('_pipe can only be cleared')
        self._core._release(False)


class ReadPipeTransport(_PipeTransport, CoreReading, transports.ReadTransport):
    """The read end of a pipe, socket or character device (``asyncio.ReadTransport``).

    Data arrives through ``protocol.data_received``; the end of the stream calls
    ``eof_received`` then ``connection_lost(None)``. On a pty whose other side was closed the
    read fails with EIO: ``connection_lost`` gets that error, which is not reported otherwise.
    """

    _hot_methods = ('is_reading', 'pause_reading', 'resume_reading', 'is_closing')

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None, context=None):
        super().__init__(extra)
        self._extra['pipe'] = pipe
        self._loop = loop
        fileno, _ = _check_pipe(pipe, 'Pipe transport is for pipes/sockets only.',
                                (stat.S_ISFIFO, stat.S_ISSOCK, stat.S_ISCHR))
        os.set_blocking(fileno, False)
        self._attach(_ferroloop.ReadPipeTransport(loop, self, pipe, protocol, fileno, context),
                     waiter)

    def _repr_polling(self, core):
        return ('polling' if core._reading else 'idle',)


class WritePipeTransport(_PipeTransport, CoreWriting, CoreFlowControl, transports.WriteTransport):
    """The write end of a pipe, socket or character device (``asyncio.WriteTransport``).

    Writes go out at once when the pipe takes them, the rest is buffered with asyncio's flow
    control. On a pipe or socket, the reading end closing is noticed at once:
    ``connection_lost`` gets ``BrokenPipeError`` if data was still waiting, else None.
    """

    _hot_methods = ('write', 'writelines', 'is_closing', 'get_write_buffer_size')

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None, context=None):
        super().__init__(extra)
        self._extra['pipe'] = pipe
        self._loop = loop
        fileno, mode = _check_pipe(pipe, 'Pipe transport is only for pipes, sockets and '
                                         'character devices',
                                   (stat.S_ISFIFO, stat.S_ISSOCK, stat.S_ISCHR))
        is_socket = stat.S_ISSOCK(mode)
        os.set_blocking(fileno, False)
        # A closed reading end makes a pipe or socket readable (EOF or error); a character
        # device gives no such sign.
        watch_peer = is_socket or stat.S_ISFIFO(mode)
        core = _ferroloop.WritePipeTransport(loop, self, pipe, protocol, fileno, is_socket,
                                             watch_peer, context)
        self._attach(core, waiter)

    def _repr_polling(self, core):
        return ('polling' if core._writing else 'idle', f'bufsize={core.get_write_buffer_size()}')


class PipesMixin:

    # ``context``: where the protocol's callbacks run (None: a copy of the current one).
    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None, context=None):
        return ReadPipeTransport(self, pipe, protocol, waiter, extra, context)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None, context=None):
        return WritePipeTransport(self, pipe, protocol, waiter, extra, context)

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Wrap the read end of ``pipe`` (a pipe, socket or character device file object) in a
        transport; return ``(transport, protocol)``. The pipe is made non-blocking and is
        closed by the transport."""
        return await self._connect_pipe('Read', self._make_read_pipe_transport,
                                        protocol_factory, pipe)

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Wrap the write end of ``pipe`` (a pipe, socket or character device file object) in a
        transport; return ``(transport, protocol)``. The pipe is made non-blocking and is
        closed by the transport."""
        return await self._connect_pipe('Write', self._make_write_pipe_transport,
                                        protocol_factory, pipe)

    async def _connect_pipe(self, kind, make_transport, protocol_factory, pipe):
        # The protocol is made in the context its callbacks will run in: what the factory
        # sets there, they see; the caller does not.
        context = contextvars.copy_context()
        protocol = context.run(protocol_factory)
        waiter = self.create_future()
        transport = make_transport(pipe, protocol, waiter, context=context)
        await until_made(transport, waiter)
        if self.get_debug():
            logger.debug('%s pipe %r connected: (%r, %r)', kind, pipe.fileno(), transport,
                         protocol)
        return transport, protocol
