"""The low-level socket API: ``sock_recv``, ``sock_sendall``, ``sock_accept``, ...

``sock_recv``, ``sock_recv_into`` and ``sock_sendall`` are the hot ones: the loop core tries
the syscall at once and, if it would block, completes a future from the poller without a
Python callback per event. The others follow asyncio: try now, else retry each time the
socket is ready. All of them are coroutines, like asyncio's, so bad arguments raise when
awaited and ``create_task(loop.sock_recv(...))`` works.
"""

import socket

try:
    import ssl
except ImportError:  # Python built without ssl
    ssl = None


def _check_socket(loop, sock):
    if ssl is not None and isinstance(sock, ssl.SSLSocket):
        raise TypeError('Socket cannot be of type SSLSocket')
    try:
        gettimeout = sock.gettimeout
    except AttributeError:
        if loop.get_debug():
            raise  # asyncio's debug-mode check asks first
        # Not a socket: the operation raises what its first use of it raises, as asyncio's.
        return
    # asyncio checks this only in debug mode; a blocking socket would freeze the whole loop,
    # so ferroloop always refuses it. Outside debug mode a closed socket is left to the
    # operation's first attempt, which raises what asyncio's does (EBADF, or TypeError for a
    # bad argument).
    if gettimeout() != 0 and (loop.get_debug() or sock.fileno() != -1):
        raise ValueError('the socket must be non-blocking')


class SockMixin:

    # The loop core runs _check_socket for these three when it might fail. Awaiting a pending
    # operation awaits its future; if the waiter gives up (cancelled, closed), the operation
    # stops watching the fd at once.

    async def sock_recv(self, sock, n):
        """Receive up to ``n`` bytes from ``sock``."""
        op = self._sock_recv(sock, n)
        if op.__class__ is bytes:
            return op
        return await op

    async def sock_recv_into(self, sock, buf):
        """Receive into the writable buffer ``buf``; return the number of bytes received."""
        op = self._sock_recv_into(sock, buf)
        if op.__class__ is int:
            return op
        return await op

    async def sock_sendall(self, sock, data):
        """Send all of ``data``; return None once the kernel has taken every byte."""
        op = self._sock_sendall(sock, data)
        if op is None:
            return None
        return await op

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of up to ``bufsize`` bytes; return ``(data, address)``."""
        _check_socket(self, sock)
        return await self._sock_retry(sock, False, sock.recvfrom, bufsize)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into ``buf``; return ``(nbytes, address)``."""
        _check_socket(self, sock)
        if not nbytes:
            nbytes = len(buf)
        return await self._sock_retry(sock, False, sock.recvfrom_into, buf, nbytes)

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to ``address``; return the number of bytes sent."""
        _check_socket(self, sock)
        # Looked up on every attempt: a later attempt must use what sock.sendto is then.
        return await self._sock_retry(sock, True, lambda: sock.sendto(data, address))

    async def sock_accept(self, sock):
        """Accept a connection; return ``(conn, address)`` with ``conn`` non-blocking."""
        _check_socket(self, sock)
        conn, address = await self._sock_retry(sock, False, sock.accept)
        conn.setblocking(False)
        return conn, address

    async def sock_connect(self, sock, address):
        """Connect ``sock`` to ``address`` (resolved first for IP families)."""
        _check_socket(self, sock)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio's resolution: an IP address as it is (so its port is range-checked by
            # connect()), anything else through getaddrinfo.
            infos = await self._ensure_resolved(address, family=sock.family, type=sock.type,
                                                proto=sock.proto)
            if not infos:
                raise OSError(f'getaddrinfo({address[0]!r}) returned empty list')
            address = infos[0][4]
        try:
            sock.connect(address)
            return None
        except (BlockingIOError, InterruptedError):
            # Connecting in the background: writable means finished, SO_ERROR tells how.
            pass
        return await self._sock_retry(sock, True, _connect_result, sock, address, first_now=False)

    async def _sock_retry(self, sock, write, attempt, *args, first_now=True):
        """``attempt(*args)`` now, and again whenever ``sock`` is ready, until it stops
        raising BlockingIOError; returns its result."""
        if first_now:
            try:
                return attempt(*args)
            except (BlockingIOError, InterruptedError):
                pass
        fut = self.create_future()
        self._ensure_fd_no_transport(sock)
        fd = sock.fileno()
        # Registered through the socket object: once it is closed, the registration cannot
        # serve whatever socket reuses the number; it runs once more and the attempt fails
        # with the closed socket's EBADF (see the loop core's io_table).
        handle = (self._add_writer if write else self._add_reader)(
            sock, _retry_when_ready, fut, attempt, args)
        try:
            return await fut
        finally:
            self._discard_watcher(fd, handle, write)
            # A failure's traceback holds this frame: the handle's arguments hold the
            # future, which holds the exception (a cycle).
            fut = handle = None


def _retry_when_ready(fut, attempt, args):
    if fut.done():
        return
    try:
        result = attempt(*args)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(result)
    finally:
        # The exception's traceback holds this frame: it must not hold the future, which
        # holds the exception (a cycle only the garbage collector would free).
        fut = None


def _connect_result(sock, address):
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err != 0:
        raise OSError(err, f'Connect call failed {address}')
