"""Datagrams: ``create_datagram_endpoint`` and the transport it returns.

Argument checking, name resolution and socket setup happen here, once per endpoint, with
asyncio 3.11's rules and messages; sending and receiving are done by the native core
(``_ferroloop.DatagramTransport``).
"""

import socket
from asyncio import transports
from asyncio.log import logger

from . import _ferroloop, versions
from .connections import check_resolved_port
from .servers import _set_reuseport, remove_stale_unix_socket
from .transports import (CoreFlowControl, CoreReading, CoreSocket, CoreTransport,
                         socket_extra_info, until_made)


# What asyncio counts, beyond its bytes, for each datagram waiting in the write buffer: the
# UDP header (gh-135444), so that many empty or tiny datagrams still reach the high-water mark.
_HEADER_SIZE = 8


class DatagramTransport(CoreTransport, CoreSocket, CoreReading, CoreFlowControl,
                        transports.Transport, transports.DatagramTransport):
    """A UDP or Unix datagram endpoint (``asyncio.DatagramTransport``).

    It is also an ``asyncio.Transport``, as asyncio's own datagram transport is (3.11 checks
    ``isinstance(t, asyncio.Transport)``; 3.12 made it a ``DatagramTransport`` too).
    """

    _hot_methods = ('sendto', 'is_closing', 'get_write_buffer_size')

    def __init__(self, loop, sock, protocol, address=None, waiter=None, extra=None,
                 users_sock=True):
        super().__init__(extra)
        self._loop = loop
        socket_extra_info(self._extra, sock)
        # Connected: the socket has a peer, even one without a name (a socketpair() end, whose
        # peer's name is ''): asyncio takes that for unconnected and fails in sendto().
        connected = self._extra['peername'] is not None
        core = _ferroloop.DatagramTransport(
            loop, self, sock, protocol, address, connected, users_sock,
            send_empty=versions.DATAGRAM_SENDS_EMPTY,
            header_size=_HEADER_SIZE if versions.DATAGRAM_BUFFER_COUNTS_HEADERS else 0)
        self._attach(core, waiter)

    def _repr_io(self, core):
        if not core._open or self._loop.is_closed():
            return ()
        state = 'polling' if core._writing else 'idle'
        return ('read=polling' if core._reading else 'read=idle',
                f'write=<{state}, bufsize={core.get_write_buffer_size()}>')

    def sendto(self, data, addr=None):
        self._core.sendto(data, addr)

    def abort(self):
        self._core.abort()

    def _fatal_error(self, exc, message='Fatal error on transport'):
        self._core._fatal_error(exc, message)

    @property
    def _address(self):
        return self._core._address


class DatagramMixin:

    # ``users_sock``: the caller keeps the socket (``sock=``): the transport works on its own
    # duplicate of the fd.
    def _make_datagram_transport(self, sock, protocol, address=None, waiter=None, extra=None,
                                 users_sock=True):
        return DatagramTransport(self, sock, protocol, address, waiter, extra, users_sock)

    async def _datagram_address_pairs(self, local_addr, remote_addr, family, proto, flags):
        """``[((family, proto), (local, remote)), ...]``: the resolved address pairs to try."""
        if not (local_addr or remote_addr):
            if family == 0:
                raise ValueError('unexpected address family')
            return [((family, proto), (None, None))]
        if hasattr(socket, 'AF_UNIX') and family == socket.AF_UNIX:
            for addr in (local_addr, remote_addr):
                if addr is not None and not isinstance(addr, str):
                    raise TypeError('string is expected')
            if local_addr and local_addr[0] not in (0, '\x00'):
                remove_stale_unix_socket(local_addr)
            return [((family, proto), (local_addr, remote_addr))]
        # (family, proto) -> [local, remote], in resolution order.
        by_key = {}
        for index, addr in ((0, local_addr), (1, remote_addr)):
            if addr is None:
                continue
            if not (isinstance(addr, tuple) and len(addr) == 2):
                raise TypeError('2-tuple is expected')
            infos = await self._ensure_resolved(addr, family=family, type=socket.SOCK_DGRAM,
                                                proto=proto, flags=flags)
            if not infos:
                raise OSError('getaddrinfo() returned empty list')
            for info_family, _, info_proto, _, address in infos:
                by_key.setdefault((info_family, info_proto), [None, None])[index] = address
        # Only the (family, proto) pairs that can serve every address that was asked for.
        pairs = [(key, pair) for key, pair in by_key.items()
                 if not ((local_addr and pair[0] is None) or (remote_addr and pair[1] is None))]
        if not pairs:
            raise ValueError('can not get address information')
        return pairs

    async def create_datagram_endpoint(self, protocol_factory, local_addr=None, remote_addr=None,
                                       *, family=0, proto=0, flags=0, reuse_port=None,
                                       allow_broadcast=None, sock=None):
        """Create a datagram endpoint; return ``(transport, protocol)``.

        Bound to ``local_addr`` and/or connected to ``remote_addr`` (host/port 2-tuples, or
        paths for ``family=AF_UNIX``), or over ``sock``, an existing datagram socket. With
        ``allow_broadcast``, ``remote_addr`` is only the default destination (the socket is
        not connected). Python 3.11 has no ``reuse_address`` (it was unsafe for UDP).
        """
        users_sock = sock is not None
        if sock is not None:
            if versions.DATAGRAM_SOCK_ANY_BUT_STREAM:
                if sock.type == socket.SOCK_STREAM:
                    raise ValueError(f'A datagram socket was expected, got {sock!r}')
            elif sock.type != socket.SOCK_DGRAM:
                raise ValueError(f'A UDP Socket was expected, got {sock!r}')
            if (local_addr or remote_addr or family or proto or flags or reuse_port
                    or allow_broadcast):
                given = {'local_addr': local_addr, 'remote_addr': remote_addr, 'family': family,
                         'proto': proto, 'flags': flags, 'reuse_port': reuse_port,
                         'allow_broadcast': allow_broadcast}
                problems = ', '.join(f'{name}={value}' for name, value in given.items() if value)
                raise ValueError(f'socket modifier keyword arguments can not be used '
                                 f'when sock is specified. ({problems})')
            sock.setblocking(False)
            remote = None
        else:
            pairs = await self._datagram_address_pairs(local_addr, remote_addr, family, proto,
                                                       flags)
            errors = []
            for (pair_family, pair_proto), (local, remote_address) in pairs:
                sock = None
                remote = None
                try:
                    sock = socket.socket(family=pair_family, type=socket.SOCK_DGRAM,
                                         proto=pair_proto)
                    if reuse_port:
                        _set_reuseport(sock)
                    if allow_broadcast:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                    sock.setblocking(False)
                    if local_addr:
                        sock.bind(local)
                    if remote_addr:
                        if not allow_broadcast:
                            if pair_family in (socket.AF_INET, socket.AF_INET6):
                                check_resolved_port(remote_address)
                            await self.sock_connect(sock, remote_address)
                        remote = remote_address
                except OSError as exc:
                    if sock is not None:
                        sock.close()
                    errors.append(exc)
                except BaseException:
                    if sock is not None:
                        sock.close()
                    raise
                else:
                    break
            else:
                raise errors[0]

        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_datagram_transport(sock, protocol, remote, waiter,
                                                  users_sock=users_sock)
        if self.get_debug():
            if local_addr:
                logger.info('Datagram endpoint local_addr=%r remote_addr=%r created: (%r, %r)',
                            local_addr, remote_addr, transport, protocol)
            else:
                logger.debug('Datagram endpoint remote_addr=%r created: (%r, %r)',
                             remote_addr, transport, protocol)
        await until_made(transport, waiter)
        return transport, protocol
