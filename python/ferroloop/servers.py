"""Listening: ``create_server``, ``create_unix_server`` and the ``Server`` they return.

Accepting runs as a reader callback on each listening socket: it accepts up to ``backlog``
connections per readiness event and makes each a native transport on the spot (no task per
connection, unlike asyncio).
"""

import collections.abc
import contextvars
import errno
import itertools
import os
import socket
import weakref
from asyncio import events, exceptions, tasks
from asyncio.log import logger

from . import _ferroloop, versions
from .connections import bind_error_message, check_not_ssl_socket, check_ssl_only_arguments
from .transports import TransportSocket

# asyncio.constants.ACCEPT_RETRY_DELAY: how long accepting pauses when the process is out of
# file descriptors (or memory), instead of spinning on a listening socket that stays readable.
ACCEPT_RETRY_DELAY = 1
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Server(events.AbstractServer):
    """Listening sockets serving one protocol factory (``asyncio.Server``'s contract, as the
    running Python's asyncio has it: see ``versions``)."""

    def __init__(self, loop, sockets, protocol_factory, ssl_context, backlog,
                 ssl_handshake_timeout, ssl_shutdown_timeout=None, unix_inodes=None):
        self._loop = loop
        self._sockets = sockets
        # The transports of the connections, weakly: a transport nobody closed must still be
        # collected (and warn as unclosed).
        self._clients = weakref.WeakSet()
        self._waiters = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut = None
        # Each connection starts from a copy of this context (see _start_serving).
        self._context = contextvars.copy_context()
        # Listening Unix sockets whose file close() removes: {socket: the file's inode}.
        self._unix_inodes = unix_inodes or {}

    def __repr__(self):
        return f'<{self.__class__.__name__} sockets={self.sockets!r}>'

    # Connections made by this server count themselves in and out (transport calls).
    def _attach(self, transport):
        self._clients.add(transport)

    def _detach(self, transport):
        if transport is not None:
            self._clients.discard(transport)
        if len(self._clients) == 0 and self._sockets is None:
            self._wakeup()

    def _wakeup(self):
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _start_serving(self):
        if self._serving:
            return
        self._serving = True
        if not versions.SERVER_KEEPS_CREATION_CONTEXT:
            # Before 3.15 a connection's context derives from the one current when the
            # server starts accepting (asyncio copies it as it installs its reader).
            self._context = contextvars.copy_context()
        for sock in self._sockets:
            sock.listen(self._backlog)
            self._loop._start_accepting(self, sock)

    def get_loop(self):
        return self._loop

    def is_serving(self):
        return self._serving

    @property
    def sockets(self):
        if self._sockets is None:
            return ()
        return tuple(TransportSocket(s) for s in self._sockets)

    def close(self):
        """Stop listening and close the listening sockets; connections stay open."""
        sockets, self._sockets = self._sockets, None
        if sockets is None:
            return
        for sock in sockets:
            self._loop._stop_accepting(sock, self._unix_inodes.pop(sock, None))
        self._serving = False
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        if len(self._clients) == 0:
            self._wakeup()

    if versions.SERVER_CLIENTS_API:
        def close_clients(self):
            """Close every connection of the server (each flushes its buffer first)."""
            for transport in self._clients.copy():
                transport.close()

        def abort_clients(self):
            """Close every connection of the server at once, dropping unsent data."""
            for transport in self._clients.copy():
                transport.abort()

    async def start_serving(self):
        self._start_serving()
        # One iteration, so the listening sockets are being watched when this returns.
        await tasks.sleep(0)

    async def serve_forever(self):
        if self._serving_forever_fut is not None:
            raise RuntimeError(f'server {self!r} is already being awaited on serve_forever()')
        if self._sockets is None:
            raise RuntimeError(f'server {self!r} is closed')
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except exceptions.CancelledError:
            try:
                self.close()
                if versions.SERVE_FOREVER_CANCEL_CLOSES_CLIENTS:
                    # Or wait_closed() would wait for every client to hang up.
                    self.close_clients()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self):
        """Wait until the server is closed and its connections are gone.

        On Python 3.11 it returns at once once the server is closed, connections or not."""
        if self._waiters is None:
            return
        if self._sockets is None and not versions.SERVER_WAIT_CLOSED_WAITS_FOR_CONNECTIONS:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


# The socket files' stat and unlink are the loop core's (src/unix_socket_files.rs): no blocking
# os call from Python on the loop thread.

def remove_stale_unix_socket(path):
    """A socket file left at ``path`` by an earlier run is removed, so bind() can succeed."""
    try:
        _ferroloop._remove_stale_unix_socket(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        # The directory may allow creating the socket but not inspecting it.
        logger.error('Unable to check or remove stale UNIX socket %r: %r', path, err)


def _unix_socket_inode(sock):
    """The inode of the file a listening Unix socket is bound to (None: abstract, unnamed, or
    already gone), so that close() removes that file and not one someone put in its place."""
    path = sock.getsockname()
    if not path or path[0] in (0, '\x00'):
        return None
    return _ferroloop._unix_socket_inode(path)


def _remove_unix_socket_file(path, inode):
    """After the server's socket is closed: its file is removed, unless it was replaced."""
    try:
        _ferroloop._remove_unix_socket_file(path, inode)
    except FileNotFoundError:
        pass
    except OSError as err:
        logger.error('Unable to clean up listening UNIX socket %r: %r', path, err)


def _set_reuseport(sock):
    if not hasattr(socket, 'SO_REUSEPORT'):
        raise ValueError('reuse_port not supported by socket module')
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError('reuse_port not supported by socket module, '
                         'SO_REUSEPORT defined but not implemented.')


def _bind_all(infos, reuse_address, reuse_port, keep_alive, debug):
    """A bound socket per address; all closed again if any bind fails."""
    sockets = []
    completed = False
    try:
        for family, type_, proto, _, address in infos:
            try:
                sock = socket.socket(family, type_, proto)
            except OSError:
                # A family/type/protocol combination this host cannot make: skip it.
                if debug:
                    logger.warning('create_server() failed to create socket.socket(%r, %r, %r)',
                                   family, type_, proto, exc_info=True)
                continue
            sockets.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
            # Linux 6.12.9 and later refuse SO_REUSEPORT on families other than IP ones.
            if reuse_port and (family in (socket.AF_INET, socket.AF_INET6)
                               or not versions.REUSE_PORT_ONLY_FOR_IP):
                _set_reuseport(sock)
            if keep_alive:
                # Accepted connections inherit it.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, True)
            if family == socket.AF_INET6 and hasattr(socket, 'IPPROTO_IPV6'):
                # One socket per family: no dual-stack socket also taking IPv4.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
            try:
                sock.bind(address)
            except OSError as err:
                message = bind_error_message(address, err)
                if (err.errno == errno.EADDRNOTAVAIL
                        and versions.CREATE_SERVER_SKIPS_UNAVAILABLE_ADDRESS):
                    # That family is most likely disabled on this host (IPv6 on a host
                    # without an IPv6 address): serve on the others.
                    sockets.pop()
                    sock.close()
                    if debug:
                        logger.warning(message)
                    continue
                raise OSError(err.errno, message) from None
        if not sockets and versions.CREATE_SERVER_SKIPS_UNAVAILABLE_ADDRESS:
            raise OSError(f'could not bind on any address out of '
                          f'{[info[4] for info in infos]!r}')
        completed = True
    finally:
        if not completed:
            for sock in sockets:
                sock.close()
    return sockets


class ServersMixin:

    # Registered through the socket object, so a listening socket closed behind the server's
    # back cannot leave it accepting on whatever reuses the number.
    def _start_accepting(self, server, sock):
        self._add_reader(sock, self._accept_connections, server, sock)

    def _stop_accepting(self, sock, unix_inode=None):
        path = None
        if unix_inode is not None:
            try:
                path = sock.getsockname()
            except OSError:
                pass  # closed behind the server's back: its file is left alone
        try:
            self._remove_reader(sock)
        except ValueError:
            # Closed behind the server's back, and its registration gone already.
            pass
        sock.close()
        if path:
            _remove_unix_socket_file(path, unix_inode)

    def _accept_connections(self, server, sock):
        # Several connections may be waiting: take up to backlog of them per event.
        for _ in range(server._backlog):
            try:
                conn, address = sock.accept()
                conn.setblocking(False)
            except ConnectionAbortedError:
                # Reset by the peer before it was accepted: the next one may be fine.
                continue
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise  # reported by the loop, which goes on
                # Linux keeps reporting the socket readable: stop watching it for a while
                # rather than spin.
                self.call_exception_handler({
                    'message': 'socket.accept() out of system resource',
                    'exception': exc,
                    'socket': TransportSocket(sock),
                })
                self._remove_reader(sock)
                self.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting, server, sock)
                return
            if self.get_debug():
                logger.debug('%r got a new connection from %r: %r', server, address, conn)
            self._serve_connection(server, conn, {'peername': address})

    def _resume_accepting(self, server, sock):
        if server._sockets is not None and sock in server._sockets:
            self._start_accepting(server, sock)

    def _serve_connection(self, server, conn, extra):
        # The connection's own copy of the server's context: the protocol is made in it and
        # its callbacks run in it, so what one connection sets is not seen by the next.
        context = server._context.copy()
        protocol = transport = None
        try:
            protocol = context.run(server._protocol_factory)
            if server._ssl_context:
                waiter = self.create_future()
                transport = self._make_ssl_transport(
                    conn, protocol, server._ssl_context, waiter, server_side=True, extra=extra,
                    server=server, ssl_handshake_timeout=server._ssl_handshake_timeout,
                    ssl_shutdown_timeout=server._ssl_shutdown_timeout, users_sock=False,
                    context=context)
                self.create_task(self._wait_tls_handshake(waiter, transport, protocol),
                                 context=context)
            else:
                transport = self._make_socket_transport(conn, protocol, extra=extra, server=server,
                                                        users_sock=False, context=context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if transport is None:
                conn.close()
            self._report_accept_error(exc, protocol, transport)

    async def _wait_tls_handshake(self, waiter, transport, protocol):
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport.close()
            self._report_accept_error(exc, protocol, transport)
        finally:
            # A failed handshake's exception holds this frame through its traceback.
            waiter = None

    def _report_accept_error(self, exc, protocol, transport):
        # As asyncio: there is nobody to raise to, so only debug mode reports it.
        if self.get_debug():
            context = {'message': 'Error on transport creation for incoming connection',
                       'exception': exc}
            if protocol is not None:
                context['protocol'] = protocol
            if transport is not None:
                context['transport'] = transport
            self.call_exception_handler(context)

    async def _create_server_getaddrinfo(self, host, port, family, flags):
        infos = await self._ensure_resolved((host, port), family=family, type=socket.SOCK_STREAM, flags=flags)
        if not infos:
            raise OSError(f'getaddrinfo({host!r}) returned empty list')
        return infos

    async def create_server(self, protocol_factory, host=None, port=None, *, family=socket.AF_UNSPEC,
                            flags=socket.AI_PASSIVE, sock=None, backlog=100, ssl=None,
                            reuse_address=None, reuse_port=None, keep_alive=None,
                            ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                            start_serving=True):
        """Listen on ``host:port`` (``host`` may be a sequence of hosts) or on ``sock``.

        ``keep_alive`` (Python 3.13 and later) sets SO_KEEPALIVE on the connections."""
        if isinstance(ssl, bool):
            raise TypeError('ssl argument must be an SSLContext or None')
        # asyncio's create_server refuses the TLS-only arguments when ssl is None, not when it
        # is merely false (ssl=0 serves plain TCP and ignores them), unlike every other method.
        if ssl is None:
            check_ssl_only_arguments(ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                                     ssl_shutdown_timeout=ssl_shutdown_timeout)
        if sock is not None:
            check_not_ssl_socket(sock)
        if host is not None or port is not None:
            if sock is not None:
                raise ValueError('host/port and sock can not be specified at the same time')
            if reuse_address is None:
                reuse_address = True
            if host == '':
                hosts = [None]
            elif isinstance(host, str) or not isinstance(host, collections.abc.Iterable):
                hosts = [host]
            else:
                hosts = host
            resolved = await tasks.gather(*[self._create_server_getaddrinfo(h, port, family, flags)
                                            for h in hosts])
            infos = set(itertools.chain.from_iterable(resolved))
            sockets = _bind_all(infos, reuse_address, reuse_port, keep_alive, self.get_debug())
        else:
            if sock is None:
                raise ValueError('Neither host/port nor sock were specified')
            if sock.type != socket.SOCK_STREAM:
                raise ValueError(f'A Stream Socket was expected, got {sock!r}')
            sockets = [sock]
        return await self._serve(sockets, protocol_factory, ssl, backlog, ssl_handshake_timeout,
                                 ssl_shutdown_timeout, start_serving)

    if not versions.CREATE_SERVER_KEEP_ALIVE:
        # asyncio 3.12's signature: keep_alive= is refused, as an unknown keyword is.
        _create_server_with_keep_alive = create_server

        async def create_server(self, protocol_factory, host=None, port=None, *,
                                family=socket.AF_UNSPEC, flags=socket.AI_PASSIVE, sock=None,
                                backlog=100, ssl=None, reuse_address=None, reuse_port=None,
                                ssl_handshake_timeout=None, ssl_shutdown_timeout=None,
                                start_serving=True):
            """Listen on ``host:port`` (``host`` may be a sequence of hosts) or on ``sock``."""
            return await self._create_server_with_keep_alive(
                protocol_factory, host, port, family=family, flags=flags, sock=sock,
                backlog=backlog, ssl=ssl, reuse_address=reuse_address, reuse_port=reuse_port,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout, start_serving=start_serving)

    async def _serve(self, sockets, protocol_factory, ssl, backlog, ssl_handshake_timeout,
                     ssl_shutdown_timeout, start_serving, unix_inodes=None):
        for sock in sockets:
            sock.setblocking(False)
        server = Server(self, sockets, protocol_factory, ssl, backlog, ssl_handshake_timeout,
                        ssl_shutdown_timeout, unix_inodes)
        self._servers.add(server)  # for metrics(): a weak set
        if start_serving:
            server._start_serving()
            await tasks.sleep(0)
        if self.get_debug():
            logger.info('%r is serving', server)
        return server

    async def create_unix_server(
            self, protocol_factory, path=None, *, sock=None, backlog=100, ssl=None,
            ssl_handshake_timeout=None, ssl_shutdown_timeout=None, start_serving=True,
            cleanup_socket=True):
        """Listen on the Unix socket ``path`` (a stale socket file there is replaced; a path
        starting with a NUL byte is in the abstract namespace) or on ``sock``.

        From Python 3.13, unless ``cleanup_socket`` is false, closing the server removes the
        socket file (if it is still the one the server listens on)."""
        if isinstance(ssl, bool):
            raise TypeError('ssl argument must be an SSLContext or None')
        check_ssl_only_arguments(ssl, ssl_handshake_timeout=ssl_handshake_timeout,
                                 ssl_shutdown_timeout=ssl_shutdown_timeout)
        if path is not None:
            if sock is not None:
                raise ValueError('path and sock can not be specified at the same time')
            path = os.fspath(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if path[0] not in (0, '\x00'):
                remove_stale_unix_socket(path)
            try:
                sock.bind(path)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    raise OSError(errno.EADDRINUSE, f'Address {path!r} is already in use') from None
                raise
            except BaseException:
                sock.close()
                raise
        else:
            if sock is None:
                raise ValueError('path was not specified, and no sock specified')
            if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                raise ValueError(f'A UNIX Domain Stream Socket was expected, got {sock!r}')
        unix_inodes = {}
        if cleanup_socket:
            inode = _unix_socket_inode(sock)
            if inode is not None:
                unix_inodes[sock] = inode
        return await self._serve([sock], protocol_factory, ssl, backlog, ssl_handshake_timeout,
                                 ssl_shutdown_timeout, start_serving, unix_inodes)

    if not versions.UNIX_SERVER_CLEANUP_SOCKET:
        # asyncio 3.12's signature and behaviour: the socket file stays after close(), and
        # cleanup_socket= is refused, as an unknown keyword is.
        _create_unix_server_with_cleanup = create_unix_server

        async def create_unix_server(self, protocol_factory, path=None, *, sock=None,
                                     backlog=100, ssl=None, ssl_handshake_timeout=None,
                                     ssl_shutdown_timeout=None, start_serving=True):
            """Listen on the Unix socket ``path`` (a stale socket file there is replaced; a
            path starting with a NUL byte is in the abstract namespace) or on ``sock``."""
            return await self._create_unix_server_with_cleanup(
                protocol_factory, path, sock=sock, backlog=backlog, ssl=ssl,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout, start_serving=start_serving,
                cleanup_socket=False)
