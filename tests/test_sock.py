"""The low-level socket API: sock_connect/accept/recv/recv_into/sendall, UDP, Unix sockets."""

import asyncio
import errno
import os
import socket
import ssl
import struct

import pytest
from conftest import expect_asyncio_bug


def nonblocking(sock):
    sock.setblocking(False)
    return sock


@pytest.fixture
def sockets():
    """Sockets made by a test, closed at teardown."""
    made = []

    def track(sock):
        made.append(sock)
        return sock

    yield track
    for sock in made:
        sock.close()


async def tcp_pair(loop, track, family=socket.AF_INET, host='127.0.0.1'):
    """A connected (client, server-side) pair of non-blocking TCP sockets, made with
    sock_connect and sock_accept."""
    listener = track(nonblocking(socket.socket(family, socket.SOCK_STREAM)))
    listener.bind((host, 0))
    listener.listen()
    client = track(nonblocking(socket.socket(family, socket.SOCK_STREAM)))
    accepted = loop.create_task(loop.sock_accept(listener))
    await loop.sock_connect(client, listener.getsockname())
    conn, address = await accepted
    track(conn)
    assert address == client.getsockname()
    return client, conn


def reset_by_peer(sock):
    """Close ``sock`` so that its peer sees a reset (RST), not an orderly EOF."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    sock.close()


def test_tcp_connect_accept_send_receive(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        assert conn.gettimeout() == 0  # sock_accept returns a non-blocking socket
        await loop.sock_sendall(client, b'ping')
        assert await loop.sock_recv(conn, 100) == b'ping'
        await loop.sock_sendall(conn, b'pong')
        assert await loop.sock_recv(client, 100) == b'pong'
        client.shutdown(socket.SHUT_WR)
        assert await loop.sock_recv(conn, 100) == b''

    run_async(main())


def test_sock_recv_waits_for_data(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        pending = loop.create_task(loop.sock_recv(conn, 100))
        await asyncio.sleep(0.01)
        assert not pending.done()
        client.send(b'late')
        return await pending

    assert run_async(main()) == b'late'


def test_sock_recv_returns_at_most_n_bytes(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        client.send(b'0123456789')
        await asyncio.sleep(0.01)
        first = await loop.sock_recv(conn, 4)
        rest = await loop.sock_recv(conn, 100)
        return first, rest

    assert run_async(main()) == (b'0123', b'456789')


def test_zero_size_receive_returns_at_once_on_an_idle_socket(loop, run_async, sockets):
    # As socket.recv(0): no syscall that could say EAGAIN, no waiting for data that may
    # never come.
    async def main():
        _, conn = await tcp_pair(loop, sockets)
        return await loop.sock_recv(conn, 0), await loop.sock_recv_into(conn, bytearray())

    assert run_async(main(), timeout=5) == (b'', 0)


def test_sock_recv_into(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        buf = bytearray(10)
        pending = loop.create_task(loop.sock_recv_into(conn, memoryview(buf)[2:]))
        await asyncio.sleep(0)
        client.send(b'abc')
        n = await pending
        return n, bytes(buf)

    assert run_async(main()) == (3, b'\0\0abc\0\0\0\0\0')


@pytest.mark.parametrize('buf', [b'read-only', memoryview(bytearray(8))[::2], 'text', None, 5],
                         ids=['bytes', 'strided-memoryview', 'str', 'None', 'int'])
def test_sock_recv_into_refuses_what_socket_recv_into_refuses(loop, run_async, sockets, buf):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        with pytest.raises(TypeError) as expected:
            conn.recv_into(buf)
        client.send(b'data')
        with pytest.raises(TypeError) as got:
            await loop.sock_recv_into(conn, buf)
        assert str(got.value) == str(expected.value)

    run_async(main())


@pytest.mark.parametrize('kind', [bytes, bytearray, memoryview])
def test_sock_sendall_of_several_megabytes(loop, run_async, sockets, kind):
    size = 4 * 1024 * 1024 + 17
    payload = os.urandom(size)

    async def main():
        client, conn = await tcp_pair(loop, sockets)
        # Small buffers: the send is certainly split into many partial sends.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sending = loop.create_task(loop.sock_sendall(client, kind(payload)))
        received = bytearray()
        while len(received) < size:
            chunk = await loop.sock_recv(conn, 65536)
            assert chunk, 'early EOF'
            received += chunk
        assert await sending is None
        return bytes(received)

    assert run_async(main()) == payload


def test_sendall_and_recv_at_once_on_one_socket(loop, run_async, sockets):
    # A reader and a writer on the same fd, both pending: full-duplex.
    size = 2 * 1024 * 1024
    data_a, data_b = os.urandom(size), os.urandom(size)

    async def receive_all(sock):
        received = bytearray()
        while len(received) < size:
            chunk = await loop.sock_recv(sock, 65536)
            assert chunk
            received += chunk
        return bytes(received)

    async def main():
        a, b = await tcp_pair(loop, sockets)
        results = await asyncio.gather(
            loop.sock_sendall(a, data_a), receive_all(a),
            loop.sock_sendall(b, data_b), receive_all(b))
        return results[1], results[3]

    got_a, got_b = run_async(main())
    assert got_a == data_b
    assert got_b == data_a


def test_sock_sendall_of_nothing(loop, run_async, sockets):
    async def main():
        client, _ = await tcp_pair(loop, sockets)
        return await loop.sock_sendall(client, b'')

    assert run_async(main()) is None


def test_sock_connect_resolves_localhost(loop, run_async, sockets):
    async def main():
        listener = sockets(nonblocking(socket.socket()))
        listener.bind(('127.0.0.1', 0))
        listener.listen()
        client = sockets(nonblocking(socket.socket()))
        accepted = loop.create_task(loop.sock_accept(listener))
        await loop.sock_connect(client, ('localhost', listener.getsockname()[1]))
        conn, _ = await accepted
        sockets(conn)
        return client.getpeername()

    assert run_async(main())[0] == '127.0.0.1'


def test_sock_connect_refused(loop, run_async, sockets):
    async def main():
        # A port nobody listens on: bind one, then close it.
        probe = socket.socket()
        probe.bind(('127.0.0.1', 0))
        address = probe.getsockname()
        probe.close()
        client = sockets(nonblocking(socket.socket()))
        with pytest.raises(ConnectionRefusedError):
            await loop.sock_connect(client, address)

    run_async(main())


def test_tcp_over_ipv6(loop, run_async, sockets):
    if not socket.has_ipv6:
        pytest.skip('no IPv6')
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(('::1', 0))
        probe.close()
    except OSError:
        pytest.skip('no IPv6 loopback')

    async def main():
        client, conn = await tcp_pair(loop, sockets, socket.AF_INET6, '::1')
        await loop.sock_sendall(client, b'six')
        return await loop.sock_recv(conn, 10)

    assert run_async(main()) == b'six'


def test_udp_sendto_recvfrom(loop, run_async, sockets):
    async def main():
        a = sockets(nonblocking(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
        b = sockets(nonblocking(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
        a.bind(('127.0.0.1', 0))
        b.bind(('127.0.0.1', 0))
        pending = loop.create_task(loop.sock_recvfrom(b, 100))
        await asyncio.sleep(0)
        assert await loop.sock_sendto(a, b'datagram', b.getsockname()) == 8
        data, address = await pending
        assert (data, address) == (b'datagram', a.getsockname())

        await loop.sock_sendto(b, b'reply-datagram', a.getsockname())
        buf = bytearray(32)
        n, address = await loop.sock_recvfrom_into(a, buf)
        assert (bytes(buf[:n]), address) == (b'reply-datagram', b.getsockname())

        await loop.sock_sendto(b, b'truncated', a.getsockname())
        buf = bytearray(32)
        n, _ = await loop.sock_recvfrom_into(a, buf, 5)
        assert bytes(buf[:n]) == b'trunc'

    run_async(main())


def test_udp_connected_socket_with_recv_and_sendall(loop, run_async, sockets):
    async def main():
        a = sockets(nonblocking(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
        b = sockets(nonblocking(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)))
        a.bind(('127.0.0.1', 0))
        b.bind(('127.0.0.1', 0))
        await loop.sock_connect(a, b.getsockname())
        await loop.sock_sendall(a, b'one')
        return await loop.sock_recv(b, 100)

    assert run_async(main()) == b'one'


def test_unix_stream_sockets(loop, run_async, sockets, tmp_path):
    path = str(tmp_path / 'sock')

    async def main():
        listener = sockets(nonblocking(socket.socket(socket.AF_UNIX)))
        listener.bind(path)
        listener.listen()
        client = sockets(nonblocking(socket.socket(socket.AF_UNIX)))
        accepted = loop.create_task(loop.sock_accept(listener))
        await loop.sock_connect(client, path)
        conn, _ = await accepted
        sockets(conn)
        await loop.sock_sendall(client, b'over unix')
        return await loop.sock_recv(conn, 100)

    assert run_async(main()) == b'over unix'


def test_unix_connect_to_missing_path(loop, run_async, sockets, tmp_path):
    async def main():
        client = sockets(nonblocking(socket.socket(socket.AF_UNIX)))
        with pytest.raises(FileNotFoundError):
            await loop.sock_connect(client, str(tmp_path / 'nobody-here'))

    run_async(main())


def test_unix_datagram_sockets(loop, run_async, sockets, tmp_path):
    async def main():
        a = sockets(nonblocking(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)))
        b = sockets(nonblocking(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)))
        a.bind(str(tmp_path / 'a'))
        b.bind(str(tmp_path / 'b'))
        await loop.sock_sendto(a, b'unix-datagram', str(tmp_path / 'b'))
        return await loop.sock_recvfrom(b, 100)

    assert run_async(main()) == (b'unix-datagram', str(tmp_path / 'a'))


def test_socketpair_both_ways(loop, run_async, sockets):
    async def main():
        a, b = (sockets(nonblocking(s)) for s in socket.socketpair())
        await loop.sock_sendall(a, b'left')
        await loop.sock_sendall(b, b'right')
        return await loop.sock_recv(b, 10), await loop.sock_recv(a, 10)

    assert run_async(main()) == (b'left', b'right')


def test_cancelled_sock_recv_then_the_socket_is_reused(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        pending = loop.create_task(loop.sock_recv(conn, 100))
        await asyncio.sleep(0.01)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        # Data sent after the cancellation goes to the next receiver, not the cancelled one.
        client.send(b'after cancel')
        first = await loop.sock_recv(conn, 100)
        # And the fd is watched again for another pending receive.
        pending = loop.create_task(loop.sock_recv(conn, 100))
        await asyncio.sleep(0.01)
        client.send(b'second')
        return first, await pending

    assert run_async(main()) == (b'after cancel', b'second')


def test_cancelled_sock_recv_into_does_not_write_the_buffer(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        buf = bytearray(10)
        pending = loop.create_task(loop.sock_recv_into(conn, buf))
        await asyncio.sleep(0.01)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        client.send(b'xyz')
        await asyncio.sleep(0.01)
        assert buf == bytearray(10)
        return await loop.sock_recv(conn, 100)

    assert run_async(main()) == b'xyz'


def test_cancelled_sock_accept_then_the_listener_is_reused(loop, run_async, sockets):
    async def main():
        listener = sockets(nonblocking(socket.socket()))
        listener.bind(('127.0.0.1', 0))
        listener.listen()
        pending = loop.create_task(loop.sock_accept(listener))
        await asyncio.sleep(0.01)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        client = sockets(nonblocking(socket.socket()))
        accepting = loop.create_task(loop.sock_accept(listener))
        await loop.sock_connect(client, listener.getsockname())
        conn, address = await accepting
        sockets(conn)
        return address == client.getsockname()

    assert run_async(main())


def test_cancelled_sock_sendall_leaves_the_socket_usable(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sending = loop.create_task(loop.sock_sendall(client, b'x' * (8 * 1024 * 1024)))
        await asyncio.sleep(0.01)
        assert not sending.done()
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
        # Nothing is sent behind our back any more: drain what was sent, then talk again.
        received = 0
        while True:
            try:
                received += len(conn.recv(1 << 20))
            except BlockingIOError:
                await asyncio.sleep(0.01)
                try:
                    received += len(conn.recv(1 << 20))
                except BlockingIOError:
                    break
        assert 0 < received < 8 * 1024 * 1024
        await loop.sock_sendall(client, b'end')
        return await loop.sock_recv(conn, 10)

    assert run_async(main()) == b'end'


def test_peer_reset_while_waiting(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        pending = loop.create_task(loop.sock_recv(client, 100))
        await asyncio.sleep(0.01)
        reset_by_peer(conn)
        with pytest.raises(ConnectionResetError):
            await pending

    run_async(main())


def test_peer_reset_before_recv(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        reset_by_peer(conn)
        await asyncio.sleep(0.01)
        with pytest.raises(ConnectionResetError):
            await loop.sock_recv(client, 100)

    run_async(main())


def test_peer_reset_during_sendall(loop, run_async, sockets):
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sending = loop.create_task(loop.sock_sendall(client, b'x' * (8 * 1024 * 1024)))
        await asyncio.sleep(0.01)
        reset_by_peer(conn)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            await sending

    run_async(main())


SOCK_CALLS = {
    'sock_recv': lambda loop, s: loop.sock_recv(s, 10),
    'sock_recv_into': lambda loop, s: loop.sock_recv_into(s, bytearray(10)),
    'sock_sendall': lambda loop, s: loop.sock_sendall(s, b'x'),
    'sock_recvfrom': lambda loop, s: loop.sock_recvfrom(s, 10),
    'sock_recvfrom_into': lambda loop, s: loop.sock_recvfrom_into(s, bytearray(10)),
    'sock_sendto': lambda loop, s: loop.sock_sendto(s, b'x', ('127.0.0.1', 9)),
    'sock_accept': lambda loop, s: loop.sock_accept(s),
    'sock_connect': lambda loop, s: loop.sock_connect(s, ('127.0.0.1', 9)),
}


@pytest.mark.parametrize('method', list(SOCK_CALLS))
def test_blocking_socket_is_refused(loop, run_async, sockets, method):
    # asyncio checks this only in debug mode; ferroloop always does. Debug mode on for both.
    loop.set_debug(True)
    sock = sockets(socket.socket())
    assert sock.gettimeout() is None

    async def main():
        with pytest.raises(ValueError, match='^the socket must be non-blocking$'):
            await SOCK_CALLS[method](loop, sock)

    run_async(main())


@pytest.mark.parametrize('method', list(SOCK_CALLS))
def test_ssl_socket_is_refused(loop, run_async, sockets, method):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sock = sockets(context.wrap_socket(socket.socket(), server_hostname='example.com',
                                       do_handshake_on_connect=False))

    async def main():
        with pytest.raises(TypeError, match='Socket cannot be of type SSLSocket'):
            await SOCK_CALLS[method](loop, sock)

    run_async(main())


@pytest.mark.parametrize('method', ['sock_recv', 'sock_recv_into', 'sock_sendall'])
def test_sock_methods_return_coroutines(loop, sockets, method):
    a = sockets(nonblocking(socket.socket()))
    coro = SOCK_CALLS[method](loop, a)
    assert asyncio.iscoroutine(coro)
    coro.close()


@pytest.mark.parametrize('method', ['sock_recv', 'sock_recv_into', 'sock_sendall',
                                    'sock_recvfrom', 'sock_sendto'])
def test_operation_on_a_closed_socket_is_an_os_error(loop, run_async, method):
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.setblocking(False)
    a.close()

    async def main():
        with pytest.raises(OSError):
            await SOCK_CALLS[method](loop, a)

    run_async(main())


def test_recv_after_close_of_own_socket_is_an_os_error(loop, run_async, sockets):
    async def main():
        client, _ = await tcp_pair(loop, sockets)
        client.close()
        with pytest.raises(OSError):
            await loop.sock_recv(client, 10)

    run_async(main())


def test_negative_recv_size(loop, run_async, sockets):
    async def main():
        _, conn = await tcp_pair(loop, sockets)
        with pytest.raises(ValueError, match='negative buffersize in recv'):
            await loop.sock_recv(conn, -1)

    run_async(main())


def test_sock_sendall_refuses_a_non_buffer(loop, run_async, sockets):
    async def main():
        client, _ = await tcp_pair(loop, sockets)
        with pytest.raises(TypeError):
            await loop.sock_sendall(client, 'text is not bytes')

    run_async(main())


def test_many_concurrent_connections(loop, run_async, sockets):
    async def echo(conn):
        data = await loop.sock_recv(conn, 100)
        await loop.sock_sendall(conn, data.upper())

    async def main():
        pairs = [await tcp_pair(loop, sockets) for _ in range(30)]
        servers = [loop.create_task(echo(conn)) for _, conn in pairs]
        for i, (client, _) in enumerate(pairs):
            await loop.sock_sendall(client, f'msg{i}'.encode())
        replies = await asyncio.gather(*(loop.sock_recv(c, 100) for c, _ in pairs))
        await asyncio.gather(*servers)
        return replies

    assert run_async(main()) == [f'MSG{i}'.encode() for i in range(30)]


@pytest.mark.parametrize('method', ['sock_recv', 'sock_recv_into', 'sock_sendall', 'sock_accept',
                                    'sock_connect', 'sock_recvfrom', 'sock_recvfrom_into',
                                    'sock_sendto', 'sock_sendfile'])
def test_closed_socket_is_ebadf(loop, run_async, method, tmp_path):
    """What the first attempt on a closed socket raises, before any check of its mode."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.close()
    path = tmp_path / 'file'
    path.write_bytes(b'data')
    args = {
        'sock_recv': (4,), 'sock_recv_into': (bytearray(4),), 'sock_sendall': (b'data',),
        'sock_accept': (), 'sock_connect': (('127.0.0.1', 9),), 'sock_recvfrom': (4,),
        'sock_recvfrom_into': (bytearray(4),), 'sock_sendto': (b'x', ('127.0.0.1', 9)),
    }

    async def main():
        if method == 'sock_sendfile':
            with open(path, 'rb') as f:
                return await loop.sock_sendfile(sock, f)
        return await getattr(loop, method)(sock, *args[method])

    with pytest.raises(OSError) as info:
        run_async(main())
    assert info.value.errno == errno.EBADF


def close_ends_it_within(loop_name):
    """How long a test waits for an operation to end once its socket is closed: long enough for
    any loaded machine on ferroloop, which ends it within milliseconds; half a second on
    asyncio's loop, known to wait forever there."""
    return 5 if loop_name == 'ferroloop' else 0.5


def pending_connect(sockets):
    """A socket whose connection attempt stays pending: the listener's backlog is full and it
    never accepts, so the kernel leaves the SYN unanswered."""
    listener = sockets(socket.socket())
    listener.bind(('127.0.0.1', 0))
    listener.listen(0)
    address = listener.getsockname()
    while True:
        filler = sockets(nonblocking(socket.socket()))
        if filler.connect_ex(address) == errno.EINPROGRESS:
            # The backlog is full now: this one waits, and so will the next.
            return nonblocking(socket.socket()), address


@pytest.mark.parametrize('method', ['sock_recv', 'sock_recv_into', 'sock_recvfrom', 'sock_accept',
                                    'sock_sendall', 'sock_connect'])
def test_closing_the_socket_ends_the_operation_waiting_on_it(
        request, loop, loop_name, run_async, sockets, method):
    """A task closes a socket another task's operation waits on: the operation fails with the
    closed socket's EBADF, as the same call on the closed socket would, instead of waiting
    for an event the closed fd can no longer produce."""
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_SOCK_OPERATION_OUTLIVES_ITS_CLOSED_SOCKET')

    async def main():
        if method == 'sock_connect':
            sock, address = pending_connect(sockets)
            waiting = loop.create_task(loop.sock_connect(sock, address))
        elif method == 'sock_accept':
            sock = nonblocking(socket.socket())
            sock.bind(('127.0.0.1', 0))
            sock.listen()
            waiting = loop.create_task(loop.sock_accept(sock))
        else:
            sock, peer = map(nonblocking, socket.socketpair())
            sockets(peer)
            if method == 'sock_sendall':
                waiting = loop.create_task(loop.sock_sendall(sock, bytes(16 * 1024 * 1024)))
            elif method == 'sock_recv_into':
                waiting = loop.create_task(loop.sock_recv_into(sock, bytearray(4)))
            else:
                waiting = loop.create_task(getattr(loop, method)(sock, 4))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not waiting.done()
        sock.close()
        done, _ = await asyncio.wait([waiting], timeout=close_ends_it_within(loop_name))
        if not done:
            waiting.cancel()
            pytest.fail(f'{method} still waits on its closed socket')
        return waiting.exception()

    error = run_async(main())
    assert isinstance(error, OSError) and error.errno == errno.EBADF


def test_closing_another_socket_leaves_the_operation_waiting(loop, loop_name, run_async, sockets):
    """Only the closed socket's operation ends: one on a socket still open keeps waiting and
    gets its data."""
    async def main():
        open_sock, open_peer = (sockets(nonblocking(s)) for s in socket.socketpair())
        closed_sock, closed_peer = (sockets(nonblocking(s)) for s in socket.socketpair())
        kept = loop.create_task(loop.sock_recv(open_sock, 4))
        ended = loop.create_task(loop.sock_recv(closed_sock, 4))
        await asyncio.sleep(0)
        closed_sock.close()
        await asyncio.wait([ended], timeout=close_ends_it_within(loop_name))
        assert not kept.done()
        open_peer.send(b'data')
        ended.cancel()
        return await asyncio.wait_for(kept, 5)

    assert run_async(main()) == b'data'


# Sizes whose reads alternate between large (a bytes of its own) and small (copied out of the
# loop's buffer), each after a read of the other kind, the first small one after the largest.
ALTERNATING_SIZES = (200_000, 10, 70_000, 1, 5000, 3, 150_000)


async def sock_receive_exactly(loop, sock, size, n):
    """``size`` bytes read by sock_recv(sock, n) calls, and the chunks they came in."""
    chunks = []
    while sum(map(len, chunks)) < size:
        chunk = await loop.sock_recv(sock, n)
        assert chunk, 'early EOF'
        chunks.append(chunk)
    return chunks


@pytest.mark.parametrize('n', [1 << 20, 65536, 4096])
def test_sock_recv_of_alternating_large_and_small_reads(loop, run_async, sockets, n):
    # Every chunk is an exact bytes: right length, contents and hash (a bytes shrunk after a
    # read into it must not carry a stale hash or size).
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        for size in ALTERNATING_SIZES:
            payload = os.urandom(size)
            sending = loop.create_task(loop.sock_sendall(client, payload))
            chunks = await sock_receive_exactly(loop, conn, size, n)
            await sending
            assert all(type(chunk) is bytes and 0 < len(chunk) <= n for chunk in chunks)
            assert [hash(c) for c in chunks] == [hash(bytes(bytearray(c))) for c in chunks]
            assert b''.join(chunks) == payload

    run_async(main())


def test_sock_recv_of_exactly_what_is_waiting_and_of_nothing(loop, run_async, sockets):
    # After a large read: a read of exactly the bytes waiting (no shrinking), then of zero.
    async def main():
        client, conn = await tcp_pair(loop, sockets)
        await loop.sock_sendall(client, b'x' * 100_000)
        await sock_receive_exactly(loop, conn, 100_000, 1 << 20)
        await loop.sock_sendall(client, b'0123456789')
        await asyncio.sleep(0.01)
        return await loop.sock_recv(conn, 10), await loop.sock_recv(conn, 0)

    assert run_async(main()) == (b'0123456789', b'')


def test_sock_recv_after_a_large_read_keeps_a_large_datagram_whole(loop, run_async, sockets):
    # A read into a bytes of its own is as large as the loop's buffer for sock_recv: a Unix
    # datagram larger than a transport's read, asked for whole, is not cut.
    size = 150_000

    async def main():
        a, b = (sockets(nonblocking(s)) for s in socket.socketpair(socket.AF_UNIX,
                                                                     socket.SOCK_DGRAM))
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * size)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * size)
        sizes = []
        for _ in range(3):
            a.send(b'd' * size)
            sizes.append(len(await loop.sock_recv(b, 2 * size)))
        return sizes

    assert run_async(main()) == [size] * 3
