"""The transport objects protocols see.

A native class cannot be an ``asyncio.Transport`` (``BaseTransport`` has ``__slots__``, which
conflicts with any native instance layout), and libraries check
``isinstance(t, asyncio.Transport)``. So each transport is a thin Python object, owning the
native core that does the work; the hot methods are the core's own, bound in the instance
dict, so calling them costs no Python frame. Monkeypatching ``transport.write`` still works.

The stream transport is here, with what every transport's Python face shares (``CoreTransport``
and its mixins); the pipe and datagram transports are in ``pipes.py`` and ``datagram.py``.
"""

import enum
import math
import socket
import warnings
from asyncio import constants, trsock
from asyncio.transports import _FlowControlMixin

from . import _ferroloop


async def until_made(transport, waiter):
    """Waits for ``waiter``, done once the protocol's ``connection_made`` ran; if that fails or
    the caller is cancelled, the transport is closed rather than left open behind it."""
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    finally:
        # A failed TLS handshake's exception holds this frame through its traceback, and the
        # waiter holds the exception: a cycle that would keep the transport alive.
        waiter = None


def set_nodelay(sock):
    """Small writes go out at once (no Nagle delay) on every TCP connection.

    asyncio does this only for sockets made with proto=IPPROTO_TCP; a socket from
    socket.create_server() or socket.socket() has proto 0 and would then suffer 40 ms
    delayed-ACK stalls on request/response traffic.
    """
    if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
            and sock.proto in (0, socket.IPPROTO_TCP)):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TransportSocket(trsock.TransportSocket):
    """asyncio's socket wrapper, whose repr names the family and type (as uvloop's does):
    since 3.11 ``str()`` of an IntEnum is its number, and asyncio's shows ``family=2``."""

    __slots__ = ()

    def __repr__(self):
        parts = [f'fd={self.fileno()}', f'family={_enum_name(self.family)}',
                 f'type={_enum_name(self.type)}', f'proto={self.proto}']
        if self.fileno() != -1:
            for name, get in (('laddr', self.getsockname), ('raddr', self.getpeername)):
                try:
                    address = get()
                except OSError:
                    continue
                if address:
                    parts.append(f'{name}={address}')
        return f'<asyncio.TransportSocket {", ".join(parts)}>'


def _enum_name(value):
    """``AddressFamily.AF_INET`` for a member, the number for a value the enum lacks."""
    if isinstance(value, enum.Enum):
        return f'{type(value).__name__}.{value.name}'
    return str(value)


def socket_extra_info(info, sock):
    """Fills asyncio's extra info of a socket transport: socket, sockname, peername."""
    info['socket'] = TransportSocket(sock)
    try:
        info['sockname'] = sock.getsockname()
    except OSError:
        info['sockname'] = None
    if 'peername' not in info:
        try:
            info['peername'] = sock.getpeername()
        except OSError:
            info['peername'] = None


class CoreTransport:
    """What every transport's Python face does the same way, around its native core.

    The methods defined here are for callers that go through the class (and for help()):
    ``_attach`` binds the core's own methods named in ``_hot_methods`` in the instance dict.
    """

    __slots__ = ()
    _hot_methods = ()

    def _attach(self, core, waiter):
        """Owns ``core``, binds its hot methods, and starts it (``connection_made`` next)."""
        self._core = core
        for name in self._hot_methods:
            setattr(self, name, getattr(core, name))
        core._begin(waiter)

    def __repr__(self):
        core = self._core
        info = [self.__class__.__name__]
        if not core._open:
            info.append('closed')
        elif core.is_closing():
            info.append('closing')
        info.append(f'fd={core._fd}')
        info.extend(self._repr_io(core))
        return '<{}>'.format(' '.join(info))

    def _repr_io(self, core):
        """The repr's words on reading and writing, after ``fd=``."""
        return ()

    def __del__(self, _warn=warnings.warn):
        core = self.__dict__.get('_core')
        if core is not None and core._open:
            _warn(f'unclosed transport {self!r}', ResourceWarning, source=self)
            core._release()

    def is_closing(self):
        return self._core.is_closing()

    def close(self):
        self._core.close()

    def get_protocol(self):
        return self._core.get_protocol()

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    @property
    def _protocol(self):
        return self._core.get_protocol()


class CoreSocket:
    """What the socket transports (stream, datagram) share of asyncio's private surface
    (``_SelectorTransport``'s), read-only: libraries and tests read these."""

    __slots__ = ()

    def _force_close(self, exc):
        self._core._force_close(exc)

    @property
    def _sock(self):
        return self._extra['socket']._sock if self._core._open else None

    @property
    def _sock_fd(self):
        return self._core._fd

    @property
    def _closing(self):
        return self._core.is_closing()

    @property
    def _paused(self):
        # pause_reading() is in force.
        return self._core._paused

    @property
    def _conn_lost(self):
        return self._core._conn_lost


class CoreReading:
    """``is_reading``/``pause_reading``/``resume_reading`` of a transport that reads."""

    __slots__ = ()

    def is_reading(self):
        return self._core.is_reading()

    def pause_reading(self):
        self._core.pause_reading()

    def resume_reading(self):
        self._core.resume_reading()


class CoreWriting:
    """The byte-stream writing of a stream or write-pipe transport."""

    __slots__ = ()

    def write(self, data):
        self._core.write(data)

    def writelines(self, list_of_data):
        self._core.writelines(list_of_data)

    def write_eof(self):
        self._core.write_eof()

    def can_write_eof(self):
        return True

    def abort(self):
        self._core.abort()


def _byte_count(mark):
    """A water mark as the byte count the core compares sizes with: a buffer of ``n`` bytes
    is above ``mark`` exactly when it is above ``floor(mark)``; past what a buffer can ever
    hold it is as good as infinite."""
    if mark >= _MAX_BYTE_COUNT:
        return _MAX_BYTE_COUNT
    return math.floor(mark)


_MAX_BYTE_COUNT = 2 ** 64 - 1


class CoreFlowControl(_FlowControlMixin):
    """Write flow control, kept by the core.

    ``_FlowControlMixin`` is what asyncio's sendfile fallback requires of a transport; its own
    state (water marks, paused flag) lives in the core, hence the properties below and an
    ``__init__`` that skips the mixin's.
    """

    __slots__ = ()
    # The marks as the program gave them (asyncio keeps and returns them as they are: 1.5
    # stays 1.5, 2**64 stays 2**64), once set_write_buffer_limits() was called.
    _water_marks = None

    def __init__(self, extra=None):
        super(_FlowControlMixin, self).__init__(extra)

    def get_write_buffer_size(self):
        return self._core.get_write_buffer_size()

    def get_write_buffer_limits(self):
        if self._water_marks is not None:
            return self._water_marks
        return self._core.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None):
        # asyncio's arithmetic and check, on whatever numbers it is given.
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f'high ({high!r}) must be >= low ({low!r}) must be >= 0')
        self._core.set_write_buffer_limits(_byte_count(high), _byte_count(low))
        self._water_marks = (low, high)

    @property
    def _protocol_paused(self):
        return self._core._protocol_paused

    @property
    def _low_water(self):
        return self.get_write_buffer_limits()[0]

    @property
    def _high_water(self):
        return self.get_write_buffer_limits()[1]


class SocketTransport(CoreTransport, CoreSocket, CoreReading, CoreWriting, CoreFlowControl):
    """A TCP or Unix stream connection (``asyncio.Transport``)."""

    _start_tls_compatible = True
    # loop.sendfile() may use os.sendfile on it (see sendfile.py).
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE
    _hot_methods = ('write', 'writelines', 'is_closing', 'is_reading', 'pause_reading',
                    'resume_reading', 'get_write_buffer_size')

    def __init__(self, loop, sock, protocol, waiter=None, extra=None, server=None,
                 users_sock=True, context=None):
        super().__init__(extra)
        self._loop = loop
        socket_extra_info(self._extra, sock)
        set_nodelay(sock)
        core = _ferroloop.StreamTransport(loop, self, sock, protocol, server, users_sock,
                                          context)
        self._attach(core, waiter)

    @property
    def _eof(self):
        return self._core._eof

    @property
    def _server(self):
        return self._core._server

    def _repr_io(self, core):
        if not core._open or self._loop.is_closed():
            return ()
        size = core.get_write_buffer_size()
        return ('read=polling' if core._reading else 'read=idle',
                f"write=<{'polling' if size else 'idle'}, bufsize={size}>")

    def _make_empty_waiter(self):
        return self._core._make_empty_waiter()

    def _reset_empty_waiter(self):
        self._core._reset_empty_waiter()
