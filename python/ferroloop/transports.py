"""The transport objects protocols see.

A native class cannot be an ``asyncio.Transport`` (``BaseTransport`` has ``__slots__``, which
conflicts with any native instance layout), and libraries check
``isinstance(t, asyncio.Transport)``. So each transport is this thin Python object, owning the
native core that does the work; the hot methods are the core's own, bound in the instance
dict, so calling them costs no Python frame. Monkeypatching ``transport.write`` still works.
"""

import socket
import warnings
from asyncio import constants, trsock
from asyncio.transports import _FlowControlMixin

from . import _ferroloop


def set_nodelay(sock):
    """Small writes go out at once (no Nagle delay) on every TCP connection.

    asyncio does this only for sockets made with proto=IPPROTO_TCP; a socket from
    socket.create_server() or socket.socket() has proto 0 and would then suffer 40 ms
    delayed-ACK stalls on request/response traffic.
    """
    if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
            and sock.proto in (0, socket.IPPROTO_TCP)):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SocketTransport(_FlowControlMixin):
    """A TCP or Unix stream connection (``asyncio.Transport``)."""

    # _FlowControlMixin is what asyncio's sendfile fallback requires of a transport; the
    # flow-control state itself lives in the core (see the properties below).
    _start_tls_compatible = True
    # loop.sendfile() may use os.sendfile on it (see sendfile.py).
    _sendfile_compatible = constants._SendfileMode.TRY_NATIVE

    def __init__(self, loop, sock, protocol, waiter=None, extra=None, server=None):
        super(_FlowControlMixin, self).__init__(extra)
        self._loop = loop
        info = self._extra
        info['socket'] = trsock.TransportSocket(sock)
        try:
            info['sockname'] = sock.getsockname()
        except OSError:
            info['sockname'] = None
        if 'peername' not in info:
            try:
                info['peername'] = sock.getpeername()
            except OSError:
                info['peername'] = None
        set_nodelay(sock)
        core = _ferroloop.StreamTransport(loop, self, sock, protocol, server)
        self._core = core
        self.write = core.write
        self.writelines = core.writelines
        self.is_closing = core.is_closing
        self.is_reading = core.is_reading
        self.pause_reading = core.pause_reading
        self.resume_reading = core.resume_reading
        self.get_write_buffer_size = core.get_write_buffer_size
        core._begin(waiter)

    def __repr__(self):
        core = self._core
        info = [self.__class__.__name__]
        if not core._open:
            info.append('closed')
        elif core.is_closing():
            info.append('closing')
        info.append(f'fd={core._fd}')
        if core._open and not self._loop.is_closed():
            info.append('read=polling' if core._reading else 'read=idle')
            size = core.get_write_buffer_size()
            info.append(f"write=<{'polling' if size else 'idle'}, bufsize={size}>")
        return '<{}>'.format(' '.join(info))

    def __del__(self, _warn=warnings.warn):
        core = self.__dict__.get('_core')
        if core is not None and core._open:
            _warn(f'unclosed transport {self!r}', ResourceWarning, source=self)
            core._close_socket()

    # The class-level methods, for callers that go through the class (and for help()); the
    # instance binds the same core methods directly.
    def write(self, data):
        self._core.write(data)

    def writelines(self, list_of_data):
        self._core.writelines(list_of_data)

    def is_closing(self):
        return self._core.is_closing()

    def is_reading(self):
        return self._core.is_reading()

    def pause_reading(self):
        self._core.pause_reading()

    def resume_reading(self):
        self._core.resume_reading()

    def get_write_buffer_size(self):
        return self._core.get_write_buffer_size()

    def write_eof(self):
        self._core.write_eof()

    def can_write_eof(self):
        return True

    def close(self):
        self._core.close()

    def abort(self):
        self._core.abort()

    def _force_close(self, exc):
        self._core._force_close(exc)

    def get_protocol(self):
        return self._core.get_protocol()

    def set_protocol(self, protocol):
        self._core.set_protocol(protocol)

    def set_write_buffer_limits(self, high=None, low=None):
        self._core.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self):
        return self._core.get_write_buffer_limits()

    def _make_empty_waiter(self):
        return self._core._make_empty_waiter()

    def _reset_empty_waiter(self):
        self._core._reset_empty_waiter()

    @property
    def _protocol_paused(self):
        return self._core._protocol_paused

    @property
    def _high_water(self):
        return self._core.get_write_buffer_limits()[1]

    @property
    def _low_water(self):
        return self._core.get_write_buffer_limits()[0]

    @property
    def _sock(self):
        return self._extra['socket']._sock if self._core._open else None

    @property
    def _protocol(self):
        return self._core.get_protocol()
