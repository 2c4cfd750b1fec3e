"""Pipes: ``connect_read_pipe``, ``connect_write_pipe`` and their transports.

A pipe transport works on any pipe, socket or character device (a pty, say), as asyncio's
``_UnixReadPipeTransport``/``_UnixWritePipeTransport`` do. The reading and writing are done by
a native core (``_ferroloop.ReadPipeTransport``/``WritePipeTransport``); the objects protocols
see are these thin ``asyncio.ReadTransport``/``asyncio.WriteTransport`` subclasses (a native
class cannot be one), with the hot methods bound straight to the core.
"""

import os
import stat
import warnings
from asyncio import transports
from asyncio.log import logger
from asyncio.transports import _FlowControlMixin

from . import _ferroloop


def _check_pipe(pipe, message, allowed):
    fileno = pipe.fileno()
    mode = os.fstat(fileno).st_mode
    if not any(test(mode) for test in allowed):
        raise ValueError(message)
    return fileno, mode


class ReadPipeTransport(transports.ReadTransport):
    """The read end of a pipe, socket or character device (``asyncio.ReadTransport``).

    Data arrives through ``protocol.data_received``; the end of the stream calls
    ``eof_received`` then ``connection_lost(None)``. On a pty whose other side was closed the
    read fails with EIO: ``connection_lost`` gets that error, which is not reported otherwise.
    """

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        super().__init__(extra)
        self._extra['pipe'] = pipe
        self._loop = loop
        fileno, _ = _check_pipe(pipe, 'Pipe transport is for pipes/sockets only.',
                                (stat.S_ISFIFO, stat.S_ISSOCK, stat.S_ISCHR))
        os.set_blocking(fileno, False)
        core = _ferroloop.ReadPipeTransport(loop, self, pipe, protocol, fileno)
        self._core = core
        self.is_reading = core.is_reading
        self.pause_reading = core.pause_reading
        self.resume_reading = core.resume_reading
        self.is_closing = core.is_closing
        core._begin(waiter)

    def __repr__(self):
        core = self._core
        info = [self.__class__.__name__]
        open_ = core._pipe is not None
        if not open_:
            info.append('closed')
        elif core.is_closing():
            info.append('closing')
        info.append(f'fd={core._fd}')
        if open_ and not self._loop.is_closed():
            info.append('polling' if core._reading else 'idle')
        elif open_:
            info.append('open')
        else:
            info.append('closed')
        return '<{}>'.format(' '.join(info))

    def __del__(self, _warn=warnings.warn):
        core = self.__dict__.get('_core')
        if core is not None and core._pipe is not None:
            _warn(f'unclosed transport {self!r}', ResourceWarning, source=self)
            core._release_pipe()

    def is_reading(self):
        return self._core.is_reading()

    def pause_reading(self):
        self._core.pause_reading()

    def resume_reading(self):
        self._core.resume_reading()

    def is_closing(self):
        return self._core.is_closing()

    def close(self):
        self._core.close()

    def get_protocol(self):
        return self._core.get_protocol()

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    def _fatal_error(self, exc, message='Fatal error on pipe transport'):
        self._core._fatal_error(exc, message)

    @property
    def _fileno(self):
        return self._core._fd

    @property
    def _protocol(self):
        return self._core.get_protocol()

    @property
    def _pipe(self):
        return self._core._pipe

    @_pipe.setter
    def _pipe(self, value):
        # asyncio's tests (and a few programs) clear _pipe after closing the pipe themselves,
        # so that the transport's finaliser leaves it alone.
        if value is not None:
            raise ValueError('_pipe can only be cleared')
        self._core._release_pipe(False)


class WritePipeTransport(_FlowControlMixin, transports.WriteTransport):
    """The write end of a pipe, socket or character device (``asyncio.WriteTransport``).

    Writes go out at once when the pipe takes them, the rest is buffered with asyncio's flow
    control. On a pipe or socket, the reading end closing is noticed at once:
    ``connection_lost`` gets ``BrokenPipeError`` if data was still waiting, else None.
    """

    def __init__(self, loop, pipe, protocol, waiter=None, extra=None):
        # _FlowControlMixin's own state (water marks, paused flag) lives in the core.
        super(_FlowControlMixin, self).__init__(extra)
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
                                             watch_peer)
        self._core = core
        self.write = core.write
        self.writelines = core.writelines
        self.is_closing = core.is_closing
        self.get_write_buffer_size = core.get_write_buffer_size
        core._begin(waiter)

    def __repr__(self):
        core = self._core
        info = [self.__class__.__name__]
        open_ = core._pipe is not None
        if not open_:
            info.append('closed')
        elif core.is_closing():
            info.append('closing')
        info.append(f'fd={core._fd}')
        if open_ and not self._loop.is_closed():
            info.append('polling' if core._writing else 'idle')
            info.append(f'bufsize={core.get_write_buffer_size()}')
        elif open_:
            info.append('open')
        else:
            info.append('closed')
        return '<{}>'.format(' '.join(info))

    def __del__(self, _warn=warnings.warn):
        core = self.__dict__.get('_core')
        if core is not None and core._pipe is not None:
            _warn(f'unclosed transport {self!r}', ResourceWarning, source=self)
            core._release_pipe()

    def write(self, data):
        self._core.write(data)

    def writelines(self, list_of_data):
        self._core.writelines(list_of_data)

    def write_eof(self):
        self._core.write_eof()

    def can_write_eof(self):
        return True

    def is_closing(self):
        return self._core.is_closing()

    def close(self):
        self._core.close()

    def abort(self):
        self._core.abort()

    def get_write_buffer_size(self):
        return self._core.get_write_buffer_size()

    def get_write_buffer_limits(self):
        return self._core.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        self._core.set_write_buffer_limits(high, low)

    def get_protocol(self):
        return self._core.get_protocol()

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    def _fatal_error(self, exc, message='Fatal error on pipe transport'):
        self._core._fatal_error(exc, message)

    @property
    def _protocol_paused(self):
        return self._core._protocol_paused

    @property
    def _low_water(self):
        return self._core.get_write_buffer_limits()[0]

    @property
    def _high_water(self):
        return self._core.get_write_buffer_limits()[1]

    @property
    def _fileno(self):
        return self._core._fd

    @property
    def _protocol(self):
        return self._core.get_protocol()

    @property
    def _pipe(self):
        return self._core._pipe

    @_pipe.setter
    def _pipe(self, value):
        if value is not None:
            raise ValueError('_pipe can only be cleared')
        self._core._release_pipe(False)


class PipesMixin:

    def _make_read_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return ReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(self, pipe, protocol, waiter=None, extra=None):
        return WritePipeTransport(self, pipe, protocol, waiter, extra)

    async def connect_read_pipe(self, protocol_factory, pipe):
        """Wrap the read end of ``pipe`` (a pipe, socket or character device file object) in a
        transport; return ``(transport, protocol)``. The pipe is made non-blocking and is
        closed by the transport."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_read_pipe_transport(pipe, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        if self.get_debug():
            logger.debug('Read pipe %r connected: (%r, %r)', pipe.fileno(), transport, protocol)
        return transport, protocol

    async def connect_write_pipe(self, protocol_factory, pipe):
        """Wrap the write end of ``pipe`` (a pipe, socket or character device file object) in a
        transport; return ``(transport, protocol)``. The pipe is made non-blocking and is
        closed by the transport."""
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_write_pipe_transport(pipe, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        if self.get_debug():
            logger.debug('Write pipe %r connected: (%r, %r)', pipe.fileno(), transport, protocol)
        return transport, protocol
