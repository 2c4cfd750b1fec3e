"""sendfile: ``loop.sock_sendfile`` and ``loop.sendfile``, with asyncio's semantics.

The file goes out with the zero-copy sendfile(2) whenever that is possible (a regular file
and a plain stream socket): the loop core sends it each time the socket is writable again,
with no Python code per block and no blocking call on the loop thread (src/sendfile.rs).
Otherwise, unless ``fallback=False``, it is read in blocks (in the default executor: the read
may block) and sent as ordinary data. Either way the file position ends just after the last
byte sent, so ``file.tell()`` says how far a failed transfer got.
"""

import io
import socket
from asyncio import constants, exceptions, protocols, transports

from . import versions
from .sock import _check_socket


def _check_sendfile_params(sock, file, offset, count):
    if 'b' not in getattr(file, 'mode', 'b'):
        raise ValueError('file should be opened in binary mode')
    if not sock.type == socket.SOCK_STREAM:
        raise ValueError('only SOCK_STREAM type sockets are supported')
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f'count must be a positive integer (got {count!r})')
        if count <= 0:
            raise ValueError(f'count must be a positive integer (got {count!r})')
    if not isinstance(offset, int):
        raise TypeError(f'offset must be a non-negative integer (got {offset!r})')
    if offset < 0:
        raise ValueError(f'offset must be a non-negative integer (got {offset!r})')


def _seek_to_offset(file, offset):
    """Where the fallback starts reading: at ``offset``; before Python 3.13.14 and 3.14.6,
    offset 0 meant "where the file is" (asyncio seeked only for a non-zero offset)."""
    if versions.SENDFILE_ALWAYS_SEEKS:
        if hasattr(file, 'seek'):
            file.seek(offset)
    elif offset:
        file.seek(offset)


class _SendfileFallbackProtocol(protocols.Protocol):
    """Stands in for a transport's protocol while the fallback writes a file through it:
    reading is paused, and the protocol's flow control gates each write."""

    def __init__(self, transport):
        if not isinstance(transport, transports._FlowControlMixin):
            raise TypeError('transport should be _FlowControlMixin instance')
        self._transport = transport
        self._protocol = transport.get_protocol()
        self._resume_reading = transport.is_reading()
        self._resume_writing = transport._protocol_paused
        transport.pause_reading()
        transport.set_protocol(self)
        # Set while writing is paused; resolved when the transport drains.
        self._writable = transport._loop.create_future() if self._resume_writing else None

    async def drain(self):
        if self._transport.is_closing():
            raise ConnectionError('Connection closed by peer')
        if self._writable is not None:
            await self._writable

    def connection_made(self, transport):
        raise RuntimeError('Invalid state: connection should have been established already.')

    def connection_lost(self, exc):
        if self._writable is not None:
            # The peer went away in the middle of the file: always an error for the sender.
            self._writable.set_exception(
                exc if exc is not None else ConnectionError('Connection is closed by peer'))
        self._protocol.connection_lost(exc)

    def pause_writing(self):
        if self._writable is None:
            self._writable = self._transport._loop.create_future()

    def resume_writing(self):
        if self._writable is not None:
            self._writable.set_result(False)
            self._writable = None

    def data_received(self, data):
        raise RuntimeError('Invalid state: reading should be paused')

    def eof_received(self):
        raise RuntimeError('Invalid state: reading should be paused')

    async def restore(self):
        self._transport.set_protocol(self._protocol)
        if self._resume_reading:
            self._transport.resume_reading()
        if self._writable is not None:
            # Nobody waits on it any more; the protocol is back in charge.
            self._writable.cancel()
        if self._resume_writing:
            self._protocol.resume_writing()


class SendfileMixin:

    async def sock_sendfile(self, sock, file, offset=0, count=None, *, fallback=True):
        """Send ``count`` bytes of ``file`` (all of it by default) from ``offset`` over the
        non-blocking stream socket ``sock``; return the number of bytes sent.

        The zero-copy sendfile(2) is used when possible; otherwise the file is read and sent, unless
        ``fallback`` is false (then ``asyncio.SendfileNotAvailableError``).
        """
        return await self._sock_sendfile(sock, file, offset, count, fallback, for_transport=False)

    async def _sock_sendfile(self, sock, file, offset, count, fallback, for_transport):
        _check_socket(self, sock)
        _check_sendfile_params(sock, file, offset, count)
        try:
            if for_transport:
                return await self._os_sendfile(sock, file, offset, count, for_transport=True)
            # Looked up by name, with asyncio's signature: programs (and asyncio's tests)
            # replace it to force the fallback.
            return await self._sock_sendfile_native(sock, file, offset, count)
        except exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        return await self._os_sendfile(sock, file, offset, count)

    async def _os_sendfile(self, sock, file, offset, count, *, for_transport=False):
        """The zero-copy transfer (the loop core's); SendfileNotAvailableError when it cannot
        be used. The file position ends at the offset after the last byte sent, whatever
        happens; before Python 3.13.14 and 3.14.6, only if something was sent."""
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            raise exceptions.SendfileNotAvailableError('not a regular file') from None
        # sock_sendfile() on a transport's socket is refused, as add_writer is.
        op = self._sendfile_transfer(sock, fileno, offset, count, not for_transport)
        if op.__class__ is int:
            return op
        return await op

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        _seek_to_offset(file, offset)
        # Read at call time: programs (and asyncio's tests) tune it.
        blocksize = constants.SENDFILE_FALLBACK_READBUFFER_SIZE
        if count:
            blocksize = min(count, blocksize)
        buf = bytearray(blocksize)
        total_sent = 0
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    break  # end of file
                await self.sock_sendall(sock, view[:read])
                total_sent += read
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + total_sent)

    async def sendfile(self, transport, file, offset=0, count=None, *, fallback=True):
        """Send ``count`` bytes of ``file`` (all of it by default) from ``offset`` through
        ``transport``; return the number of bytes sent.

        The transport's buffered data goes first, and reading pauses during the transfer. A
        plain TCP/Unix transport uses the zero-copy sendfile(2); TLS transports, or when that is not
        possible, read and write the file unless ``fallback`` is false.
        """
        if transport.is_closing():
            raise RuntimeError('Transport is closing')
        mode = getattr(transport, '_sendfile_compatible', constants._SendfileMode.UNSUPPORTED)
        if mode is constants._SendfileMode.UNSUPPORTED:
            raise RuntimeError(f'sendfile is not supported for transport {transport!r}')
        if mode is constants._SendfileMode.TRY_NATIVE:
            try:
                return await self._sendfile_native(transport, file, offset, count)
            except exceptions.SendfileNotAvailableError:
                if not fallback:
                    raise
        if not fallback:
            raise RuntimeError(f'fallback is disabled and native sendfile is not supported '
                               f'for transport {transport!r}')
        return await self._sendfile_fallback(transport, file, offset, count)

    async def _sendfile_native(self, transp, file, offset, count):
        resume_reading = transp.is_reading()
        transp.pause_reading()
        # What was written before goes first; meanwhile write() refuses new data.
        await transp._make_empty_waiter()
        try:
            return await self._sock_sendfile(transp._sock, file, offset, count, False,
                                             for_transport=True)
        finally:
            transp._reset_empty_waiter()
            if resume_reading:
                transp.resume_reading()

    async def _sendfile_fallback(self, transp, file, offset, count):
        _seek_to_offset(file, offset)
        blocksize = min(count, 16384) if count else 16384
        buf = bytearray(blocksize)
        total_sent = 0
        proto = _SendfileFallbackProtocol(transp)
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        return total_sent
                view = memoryview(buf)[:blocksize]
                read = await self.run_in_executor(None, file.readinto, view)
                if not read:
                    return total_sent  # end of file
                transp.write(view[:read])
                # After the write, so the last block is flushed (or at least below the
                # high-water mark) before sendfile returns.
                await proto.drain()
                total_sent += read
        finally:
            if total_sent > 0 and hasattr(file, 'seek'):
                file.seek(offset + total_sent)
            await proto.restore()
