"""Outgoing stream connections: ``create_connection``, ``create_unix_connection``,
``connect_accepted_socket``.

Argument checking and connecting happen here, once per connection; the connection itself is
a native transport (``transports.SocketTransport``).
"""

import asyncio
import collections
import contextvars
import itertools
import os
import socket
from asyncio.log import logger

from . import versions
from .transports import SocketTransport, until_made

try:
    import ssl as _ssl
except ImportError:  # Python built without ssl
    _ssl = None


def check_not_ssl_socket(sock):
    if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
        raise TypeError('Socket cannot be of type SSLSocket')


def check_ssl_only_arguments(ssl, **arguments):
    """ValueError for TLS-only arguments given without TLS, in asyncio's words."""
    if not ssl:
        for name, value in arguments.items():
            if value is not None:
                raise ValueError(f'{name} is only meaningful with ssl')


def bind_error_message(address, err):
    """asyncio's words for a failed bind(): 3.13 and later keep the errno in them."""
    reason = str(err) if versions.BIND_ERROR_SHOWS_ERRNO else err.strerror
    return f'error while attempting to bind on address {address!r}: {reason.lower()}'


def interleave_addrinfos(addrinfos, first_address_family_count=1):
    """Reorder addresses so families alternate (RFC 8305), starting with
    ``first_address_family_count`` of the first family."""
    by_family = collections.OrderedDict()
    for info in addrinfos:
        by_family.setdefault(info[0], []).append(info)
    queues = list(by_family.values())
    ordered = []
    if first_address_family_count > 1:
        ordered.extend(queues[0][:first_address_family_count - 1])
        del queues[0][:first_address_family_count - 1]
    for round_ in itertools.zip_longest(*queues):
        ordered.extend(info for info in round_ if info is not None)
    return ordered


def single_error(errors):
    """The one exception to raise for several failed connection attempts."""
    if not errors:
        # Every attempt was cancelled before failing.
        return TimeoutError('create_connection failed')
    if len(errors) == 1 or all(str(e) == str(errors[0]) for e in errors):
        return errors[0]
    return OSError('Multiple exceptions: {}'.format(', '.join(str(e) for e in errors)))


def _port_number(port):
    """The port as asyncio's IP-address shortcut reads it: None and an empty string or bytes
    are 0, anything else goes through ``int()`` (so 80.0, True and '80' are ports, and 1.5 is
    port 1); None for what ``int()`` refuses (a service name such as 'http')."""
    if port is None or (isinstance(port, (str, bytes)) and not port):
        return 0
    try:
        return int(port)
    except (TypeError, ValueError):
        return None


def numeric_addrinfo(host, port, family, type, proto, flowinfo=0, scopeid=0):
    """The one addrinfo tuple for an IP address ``host``, made without ``getaddrinfo``, as
    asyncio's ``_ipaddr_info`` makes it; None when a lookup is needed.

    The port is not range-checked here: ``bind()``/``connect()`` raise asyncio's
    ``OverflowError('... port must be 0-65535.')`` for it, where ``getaddrinfo`` would have
    wrapped 70000 to 4464.
    """
    if host is None or proto not in (0, socket.IPPROTO_TCP, socket.IPPROTO_UDP):
        return None
    if type == socket.SOCK_STREAM:
        proto = socket.IPPROTO_TCP
    elif type == socket.SOCK_DGRAM:
        proto = socket.IPPROTO_UDP
    else:
        return None
    port = _port_number(port)
    if port is None:
        return None
    if isinstance(host, bytes):
        host = host.decode('idna')
    if '%' in host:
        # A scoped IPv6 address ('fe80::1%eth0'): inet_pton refuses the zone, getaddrinfo
        # resolves it.
        return None
    families = [socket.AF_INET, socket.AF_INET6] if family == socket.AF_UNSPEC else [family]
    for candidate in families:
        try:
            socket.inet_pton(candidate, host)
        except OSError:
            continue
        if candidate == socket.AF_INET6:
            return candidate, type, proto, '', (host, port, flowinfo, scopeid)
        return candidate, type, proto, '', (host, port)
    return None


def check_port_range(port):
    """OverflowError for a port number outside 0-65535 given with a host name (or none).

    asyncio raises it for an IP address only (from bind/connect); for a host name it lets the
    C library's getaddrinfo parse the number, and glibc wraps it modulo 65536: port 70000
    would connect to, or listen on, port 4464. A deliberate difference (see the README).
    """
    if not isinstance(port, (int, str, bytes)):
        return
    number = _port_number(port)
    if number is not None and not 0 <= number <= 65535:
        raise OverflowError(f'port must be 0-65535, got {port!r}')


def check_resolved_port(address):
    """What connect() raises for an IP address whose port is out of range, raised before
    ``sock_connect``, which would look the address up again: getaddrinfo wraps such a port
    (70000 -> 4464), and the connection would go to the wrong port."""
    if not 0 <= address[1] <= 65535:
        raise OverflowError('connect(): port must be 0-65535.')


class ConnectionsMixin:

    # ``users_sock``: the caller keeps the socket (``sock=``, ``connect_accepted_socket``), so
    # the transport works on its own duplicate of the fd (see the README's differences).
    # ``context``: where the protocol's callbacks run (None: a copy of the current one).
    def _make_socket_transport(self, sock, protocol, waiter=None, *, extra=None, server=None,
                               users_sock=True, context=None):
        return SocketTransport(self, sock, protocol, waiter, extra, server, users_sock, context)

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *, server_side=False,
                            server_hostname=None, extra=None, server=None,
                            ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                            users_sock=True, context=None):
        from .tls import make_ssl_transport
        return make_ssl_transport(self, rawsock, protocol, sslcontext, waiter, server_side,
                                  server_hostname, extra, server, ssl_handshake_timeout,
                                  ssl_shutdown_timeout, users_sock, context)

    async def _ensure_resolved(self, address, *, family=0, type=socket.SOCK_STREAM, proto=0, flags=0):
        """The addrinfo list to connect or bind to ``address``: asyncio's shortcut for an IP
        address, else ``getaddrinfo`` (after the port range check that keeps a host name's
        port from wrapping)."""
        host, port = address[:2]
        info = numeric_addrinfo(host, port, family, type, proto, *address[2:])
        if info is not None:
            return [info]
        check_port_range(port)
        infos = await self.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)
        if len(address) > 2 and family in (0, socket.AF_INET6):
            # Keep the caller's IPv6 flowinfo and scope id.
            infos = [(*info[:4], info[4][:2] + tuple(address[2:])) if info[0] == socket.AF_INET6 else info
                     for info in infos]
        return infos

    async def _connect_sock(self, errors, addrinfo, local_addrinfos=None):
        """Create, bind and connect one socket; its errors go to ``errors``."""
        mine = []
        errors.append(mine)
        family, type_, proto, _, address = addrinfo
        sock = None
        try:
            sock = socket.socket(family=family, type=type_, proto=proto)
            sock.setblocking(False)
            if local_addrinfos is not None:
                for lfamily, _, _, _, laddr in local_addrinfos:
                    if lfamily != family:
                        continue
                    try:
                        sock.bind(laddr)
                        break
                    except OSError as exc:
                        mine.append(OSError(exc.errno, bind_error_message(laddr, exc)))
                else:
                    if mine:
                        raise mine.pop()
                    raise OSError(f'no matching local address with family={family!r} found')
            if family in (socket.AF_INET, socket.AF_INET6):
                check_resolved_port(address)
            await self.sock_connect(sock, address)
            return sock
        except OSError as exc:
            mine.append(exc)
            if sock is not None:
                sock.close()
            raise
        except BaseException:
            # Cancelled: the half-made socket must not outlive the attempt (its fd number
            # would be reused by the next connection).
            if sock is not None:
                sock.close()
            raise
        finally:
            # The exception raised from here holds this frame through its traceback: the
            # lists holding the exception must not be reachable from it (a reference cycle
            # that only the garbage collector would free, with the sockets' frames).
            errors = mine = None

    async def _happy_eyeballs(self, attempts, delay):
        """RFC 8305's race: each attempt starts ``delay`` seconds after the one before, or
        as soon as it fails; the first connected socket wins and the others are cancelled
        (or closed, if they connected meanwhile). None when every attempt failed.

        asyncio's staggered_race (before 3.13.1) keeps every failed attempt's exception in
        a list its own frames reference: a cycle through each traceback, freed only by the
        garbage collector. Here a failed attempt leaves nothing behind but the error its
        `_connect_sock` recorded."""
        running = set()
        attempts = iter(attempts)
        started = True
        winner = None
        try:
            while winner is None:
                start = next(attempts, None) if started else None
                if start is not None:
                    running.add(self.create_task(start()))
                else:
                    started = False
                if not running:
                    return None
                done, _ = await asyncio.wait(running, timeout=delay if started else None,
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    running.discard(task)
                    if not task.cancelled() and task.exception() is None and winner is None:
                        winner = task.result()
                    elif not task.cancelled() and task.exception() is None:
                        task.result().close()
                done = None
            return winner
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)
            for task in running:
                if not task.cancelled() and task.exception() is None:
                    task.result().close()
            running = None

    async def create_connection(
            self, protocol_factory, host=None, port=None, *, ssl=None, family=0, proto=0,
            flags=0, sock=None, local_addr=None, server_hostname=None,
            ssl_handshake_timeout=None, ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
            interleave=None, all_errors=False):
        """Open a stream connection to ``host:port`` (or over ``sock``); return
        ``(transport, protocol)``.

        When every address fails: the one error (or an ``OSError`` naming them all), or
        with ``all_errors`` (Python 3.12 and later) an ``ExceptionGroup`` of them."""
        if server_hostname is not None and not ssl:
            raise ValueError('server_hostname is only meaningful with ssl')
        if server_hostname is None and ssl:
            if not host:
                raise ValueError('You must set server_hostname when using ssl without a host')
            server_hostname = host
        check_ssl_only_arguments(ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                                 ssl_shutdown_timeout=ssl_shutdown_timeout)
        if sock is not None:
            check_not_ssl_socket(sock)
        if happy_eyeballs_delay is not None and interleave is None:
            interleave = 1
        users_sock = sock is not None

        if host is not None or port is not None:
            if sock is not None:
                raise ValueError('host/port and sock can not be specified at the same time')
            infos = await self._ensure_resolved((host, port), family=family, type=socket.SOCK_STREAM,
                                                proto=proto, flags=flags)
            if not infos:
                raise OSError('getaddrinfo() returned empty list')
            local_infos = None
            if local_addr is not None:
                local_infos = await self._ensure_resolved(local_addr, family=family, type=socket.SOCK_STREAM,
                                                          proto=proto, flags=flags)
                if not local_infos:
                    raise OSError('getaddrinfo() returned empty list')
            if interleave:
                infos = interleave_addrinfos(infos, interleave)
            errors = []
            if happy_eyeballs_delay is None:
                for info in infos:
                    try:
                        sock = await self._connect_sock(errors, info, local_infos)
                        break
                    except OSError:
                        continue
            else:
                # Each attempt reaches `errors` through this frame's cell, which is cleared
                # below; a functools.partial would hold the list itself, and the frames of
                # the failed attempts (in their exceptions' tracebacks) hold their partial:
                # a reference cycle through every exception.
                sock = await self._happy_eyeballs(
                    (lambda info=info: self._connect_sock(errors, info, local_infos)
                     for info in infos),
                    happy_eyeballs_delay)
            if sock is None:
                flat = [exc for attempt in errors for exc in attempt]
                try:
                    if all_errors:
                        raise ExceptionGroup('create_connection failed', flat)
                    raise single_error(flat)
                finally:
                    flat = errors = None
            errors = None
        else:
            if sock is None:
                raise ValueError('host and port was not specified and no sock specified')
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f'A Stream Socket was expected, got {sock!r}')

        transport, protocol = await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
            users_sock=users_sock)
        if self.get_debug():
            logger.debug('%r connected to %s:%r: (%r, %r)', transport.get_extra_info('socket'),
                         host, port, transport, protocol)
        return transport, protocol

    if not versions.CREATE_CONNECTION_ALL_ERRORS:
        # asyncio 3.11's signature: all_errors= is refused, as an unknown keyword is.
        _create_connection_with_all_errors = create_connection

        async def create_connection(
                self, protocol_factory, host=None, port=None, *, ssl=None, family=0, proto=0,
                flags=0, sock=None, local_addr=None, server_hostname=None,
                ssl_handshake_timeout=None, ssl_shutdown_timeout=None, happy_eyeballs_delay=None,
                interleave=None):
            """Open a stream connection to ``host:port`` (or over ``sock``); return
            ``(transport, protocol)``."""
            return await self._create_connection_with_all_errors(
                protocol_factory, host, port, ssl=ssl, family=family, proto=proto, flags=flags,
                sock=sock, local_addr=local_addr, server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
                happy_eyeballs_delay=happy_eyeballs_delay, interleave=interleave)

    async def _create_connection_transport(self, sock, protocol_factory, ssl, server_hostname,
                                           server_side=False, ssl_handshake_timeout=None,
                                           ssl_shutdown_timeout=None, users_sock=True):
        # The protocol's callbacks run in the context of whoever asked for the connection.
        context = contextvars.copy_context()
        try:
            sock.setblocking(False)
            protocol = protocol_factory()
            waiter = self.create_future()
            if ssl:
                sslcontext = None if isinstance(ssl, bool) else ssl
                transport = self._make_ssl_transport(
                    sock, protocol, sslcontext, waiter, server_side=server_side,
                    server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout, users_sock=users_sock,
                    context=context)
            else:
                transport = self._make_socket_transport(sock, protocol, waiter,
                                                        users_sock=users_sock, context=context)
        except BaseException:
            # No transport owns the socket: it would be left open.
            sock.close()
            raise
        try:
            await until_made(transport, waiter)
        finally:
            # A failed TLS handshake's exception holds this frame through its traceback.
            waiter = None
        return transport, protocol

    async def create_unix_connection(self, protocol_factory, path=None, *, ssl=None, sock=None,
                                     server_hostname=None, ssl_handshake_timeout=None,
                                     ssl_shutdown_timeout=None):
        """Open a Unix stream connection to ``path`` (or over ``sock``)."""
        if server_hostname is not None and not isinstance(server_hostname, str):
            # asyncio asserts this (no check at all under -O).
            raise TypeError(f'server_hostname must be a str or None, not '
                            f'{type(server_hostname).__name__}')
        if ssl:
            if server_hostname is None:
                raise ValueError('you have to pass server_hostname when using ssl')
        else:
            if server_hostname is not None:
                raise ValueError('server_hostname is only meaningful with ssl')
            check_ssl_only_arguments(ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                                     ssl_shutdown_timeout=ssl_shutdown_timeout)
        users_sock = path is None
        if path is not None:
            if sock is not None:
                raise ValueError('path and sock can not be specified at the same time')
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
            try:
                sock.setblocking(False)
                await self.sock_connect(sock, path)
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError('no path and sock were specified')
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f'A UNIX Domain Stream Socket was expected, got {sock!r}')
            sock.setblocking(False)
        return await self._create_connection_transport(
            sock, protocol_factory, ssl, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout,
            users_sock=users_sock)

    async def connect_accepted_socket(self, protocol_factory, sock, *, ssl=None,
                                      ssl_handshake_timeout=None, ssl_shutdown_timeout=None):
        """Wrap an already accepted (or connected) stream socket in a transport."""
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f'A Stream Socket was expected, got {sock!r}')
        check_ssl_only_arguments(ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                                 ssl_shutdown_timeout=ssl_shutdown_timeout)
        check_not_ssl_socket(sock)
        transport, protocol = await self._create_connection_transport(
            sock, protocol_factory, ssl, '', server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout)
        if self.get_debug():
            logger.debug('%r handled: (%r, %r)', transport.get_extra_info('socket'), transport, protocol)
        return transport, protocol
