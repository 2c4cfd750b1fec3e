"""A closed socket's pending operation never touches the connection that reuses its fd number.

The kernel hands a closed fd number to the next socket, pipe or file at once. Each test here
closes an object the loop is using, makes the number belong to an unrelated connection, and
checks that nothing the loop does for the old object reaches the new one, and that the new
one's own operations work. "No stray byte" is checked deterministically: the unrelated side
finally receives a marker, and any byte the loop wrote there would have arrived first.

asyncio's loop (3.11) keys its registrations by number too, and several of these scenarios
break it: the new socket's registration fails with ENOENT from its selector, is silently never
made, or (pipes) reads the new file. Those variants are strict xfails naming the defect, so
they run and would report it if asyncio changed.
"""

import asyncio
import contextlib
import os
import socket

import pytest
from conftest import expect_asyncio_bug

MARKER = b'END'


@contextlib.contextmanager
def next_fd_is(number):
    """Makes ``number`` (just closed) the lowest free fd, which the kernel hands out next,
    by holding every lower free number for the duration of the block."""
    fillers = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            if fd == number:
                os.close(fd)
                break
            if fd > number:
                os.close(fd)
                raise AssertionError(f'fd {number} is not free')
            fillers.append(fd)
        yield
    finally:
        for fd in fillers:
            os.close(fd)


@pytest.fixture
def closing():
    """Objects closed at teardown (sockets, files, transports, servers)."""
    made = []
    yield lambda obj: made.append(obj) or obj
    for obj in reversed(made):
        obj.close()


@pytest.fixture
def asyncio_defect(request, loop_name):
    """Marks the asyncio variant as a strict xfail: asyncio's own loop breaks here."""
    def mark(reason, raises):
        if loop_name == 'asyncio':
            request.applymarker(pytest.mark.xfail(strict=True, raises=raises,
                                                  reason=f'asyncio 3.11: {reason}'))
    return mark


async def iterations(count=5):
    """Lets the loop go round a few times: enough for anything already readable or writable
    to be reported by the (level-triggered) poll and handled."""
    for _ in range(count):
        await asyncio.sleep(0)


def tcp_listener(closing):
    listener = closing(socket.socket())
    listener.bind(('127.0.0.1', 0))
    listener.listen()
    return listener


def blocking_pair(closing, listener):
    """A connected (client, accepted) pair of blocking sockets."""
    client = closing(socket.create_connection(listener.getsockname()))
    conn, _ = listener.accept()
    return client, closing(conn)


async def read_until_marker(loop, sock):
    """Everything ``sock`` (non-blocking) receives up to and including the marker."""
    data = b''
    while not data.endswith(MARKER):
        chunk = await loop.sock_recv(sock, 65536)
        assert chunk, f'EOF before the marker; got {data!r}'
        data += chunk
    return data


def assert_failed_with_oserror(task):
    assert task.done(), 'the operation on the closed socket is still pending'
    assert isinstance(task.exception(), OSError), task.exception()


def test_pending_sendall_does_not_reach_the_connection_reusing_its_number(
        loop, run_async, closing, asyncio_defect):
    """sock_sendall pending (peer not reading), its socket closed, a server then accepts an
    unrelated client under the same number: that client receives none of the payload, the
    old operation fails, and the new connection works both ways."""
    asyncio_defect('the new transport cannot register its fd (ENOENT) and the old operation '
                   'stays pending forever', AssertionError)

    async def main():
        peer_listener = tcp_listener(closing)
        c1 = socket.create_connection(peer_listener.getsockname())
        c1.setblocking(False)
        closing(peer_listener.accept()[0])  # never reads: the send buffer fills up
        number = c1.fileno()
        pending = loop.create_task(loop.sock_sendall(c1, b'x' * (8 << 20)))
        await iterations()
        assert not pending.done()

        accepted = loop.create_future()
        received = []

        class Server(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.set_result(transport)

            def data_received(self, data):
                received.append(data)

        server = closing(await loop.create_server(Server, '127.0.0.1', 0))
        unrelated = closing(socket.socket())
        c1.close()
        with next_fd_is(number):
            unrelated.connect(server.sockets[0].getsockname())
            transport = await accepted
        closing(transport)
        assert transport.get_extra_info('socket').fileno() == number
        transport.write(MARKER)
        unrelated.setblocking(False)
        assert await read_until_marker(loop, unrelated) == MARKER
        await loop.sock_sendall(unrelated, b'hello')
        await iterations()
        assert received == [b'hello']
        assert_failed_with_oserror(pending)

    run_async(main())


def test_pending_recv_does_not_take_the_data_of_the_socket_reusing_its_number(
        loop, run_async, closing, asyncio_defect):
    """A task waits in sock_recv(c1); c1 is closed; c2 takes the number and connects: the old
    task fails (it does not return c2's data), and c2's own sock_recv gets the data."""
    asyncio_defect("c2's sock_connect fails: its selector still has c1's key", FileNotFoundError)

    async def main():
        listener = tcp_listener(closing)
        c1, _ = blocking_pair(closing, listener)
        c1.setblocking(False)
        number = c1.fileno()
        old = loop.create_task(loop.sock_recv(c1, 1024))
        await iterations()
        c1.close()
        with next_fd_is(number):
            c2 = closing(socket.socket())
        assert c2.fileno() == number
        c2.setblocking(False)
        await loop.sock_connect(c2, listener.getsockname())
        conn, _ = listener.accept()
        closing(conn).sendall(b'for c2')
        assert await loop.sock_recv(c2, 1024) == b'for c2'
        assert_failed_with_oserror(old)

    run_async(main())


@pytest.mark.parametrize('method', ['sock_recv_into', 'sock_accept', 'sock_recvfrom'])
def test_other_pending_reads_fail_once_the_number_is_reused(
        loop, run_async, closing, asyncio_defect, method):
    asyncio_defect("c2's sock_connect fails: its selector still has c1's key", FileNotFoundError)

    async def main():
        listener = tcp_listener(closing)
        if method == 'sock_accept':
            c1 = socket.socket()
            c1.bind(('127.0.0.1', 0))
            c1.listen()
        elif method == 'sock_recvfrom':
            c1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c1.bind(('127.0.0.1', 0))
        else:
            c1, _ = blocking_pair(closing, listener)
        c1.setblocking(False)
        number = c1.fileno()
        if method == 'sock_recv_into':
            old = loop.create_task(loop.sock_recv_into(c1, bytearray(16)))
        elif method == 'sock_accept':
            old = loop.create_task(loop.sock_accept(c1))
        else:
            old = loop.create_task(loop.sock_recvfrom(c1, 16))
        await iterations()
        c1.close()
        with next_fd_is(number):
            c2 = closing(socket.socket())
        assert c2.fileno() == number
        c2.setblocking(False)
        await loop.sock_connect(c2, listener.getsockname())
        conn, _ = listener.accept()
        closing(conn).sendall(b'for c2')
        assert await loop.sock_recv(c2, 1024) == b'for c2'
        await iterations()
        assert_failed_with_oserror(old)

    run_async(main())


def test_sock_transport_write_after_its_socket_closed_misses_the_reused_number(
        loop, loop_name, run_async, closing):
    """A transport made with create_connection(sock=s); s.close(); the number goes to an
    unrelated connection: the transport's write() does not reach it."""
    async def main():
        listener = tcp_listener(closing)
        s = socket.create_connection(listener.getsockname())
        original_peer = closing(listener.accept()[0])
        number = s.fileno()
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=s)
        closing(transport)
        unrelated_client = closing(socket.socket())
        s.close()
        with next_fd_is(number):
            unrelated_client.connect(listener.getsockname())
            unrelated = closing(listener.accept()[0])
        assert unrelated.fileno() == number
        transport.write(b'LEAK')
        await iterations()
        unrelated.sendall(MARKER)
        unrelated_client.setblocking(False)
        assert await read_until_marker(loop, unrelated_client) == MARKER
        if loop_name == 'ferroloop':
            # The transport works on its own duplicate of the fd (as uvloop's does): the
            # write went to its own peer. asyncio's fails with EBADF and closes.
            original_peer.settimeout(30)
            assert original_peer.recv(16) == b'LEAK'

    run_async(main())


def test_datagram_transport_on_a_closed_sock_misses_the_reused_number(
        loop, run_async, closing):
    async def main():
        old_peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        old_peer.bind(('127.0.0.1', 0))
        unrelated_peer = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        unrelated_peer.bind(('127.0.0.1', 0))
        received = []

        class Endpoint(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                received.append(data)

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(old_peer.getsockname())
        number = s.fileno()
        transport, _ = await loop.create_datagram_endpoint(Endpoint, sock=s)
        closing(transport)
        s.close()
        with next_fd_is(number):
            unrelated = closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        assert unrelated.fileno() == number
        unrelated.connect(unrelated_peer.getsockname())
        transport.sendto(b'LEAK')
        await iterations()
        unrelated.send(MARKER)
        unrelated_peer.settimeout(30)
        assert unrelated_peer.recv(64) == MARKER
        # A datagram for the unrelated socket is not the transport's either.
        unrelated_peer.sendto(b'not yours', unrelated.getsockname())
        await iterations()
        assert received == []
        assert unrelated.recv(64) == b'not yours'

    run_async(main())


def test_write_pipe_transport_misses_the_reused_number(
        loop, run_async, closing, asyncio_defect):
    asyncio_defect('the transport writes to the number it was given: the new pipe gets the data',
                   AssertionError)

    async def main():
        r, w = os.pipe()
        closing(open(r, 'rb', buffering=0))
        writer = open(w, 'wb', buffering=0)
        transport, _ = await loop.connect_write_pipe(asyncio.Protocol, writer)
        closing(transport)
        r2, w2 = os.pipe()
        unrelated_reader = closing(open(r2, 'rb', buffering=0))
        writer.close()
        # The unrelated pipe's write end takes the number.
        os.dup2(w2, w)
        os.close(w2)
        unrelated_writer = closing(open(w, 'wb', buffering=0))
        transport.write(b'LEAK')
        await iterations()
        unrelated_writer.write(MARKER)
        os.set_blocking(r2, False)
        assert unrelated_reader.read(64) == MARKER

    run_async(main())


def test_read_pipe_transport_misses_the_reused_number(
        loop, run_async, closing, asyncio_defect):
    asyncio_defect('the transport keeps the number: watching it again reads the new pipe',
                   AssertionError)

    async def main():
        received = []

        class Reader(asyncio.Protocol):
            def data_received(self, data):
                received.append(data)

        r, w = os.pipe()
        closing(open(w, 'wb', buffering=0))
        pipe = open(r, 'rb', buffering=0)
        transport, _ = await loop.connect_read_pipe(Reader, pipe)
        closing(transport)
        pipe.close()
        with next_fd_is(r):
            r2, w2 = os.pipe()
        unrelated_reader = closing(open(r2, 'rb', buffering=0))
        unrelated_writer = closing(open(w2, 'wb', buffering=0))
        assert r in (r2, w2)
        unrelated_writer.write(b'not yours')
        # Watching again is where a number-keyed registration would pick up the new pipe.
        transport.pause_reading()
        transport.resume_reading()
        await iterations()
        assert received == []
        assert unrelated_reader.read(64) == b'not yours'

    run_async(main())


# What asyncio's selector does when the new socket registers under the old socket's number.
OLD_KEY_DEFECT = {
    'reader': ("the new socket's add_reader only replaces the old key's data: it is never "
               'watched', AssertionError),
    'writer': ("the new socket's add_reader fails: its selector still has the old key",
               FileNotFoundError),
}


@pytest.mark.parametrize('direction', ['reader', 'writer'])
def test_watcher_of_a_closed_socket_is_not_called_for_the_socket_reusing_its_number(
        loop, run_async, closing, asyncio_defect, direction):
    asyncio_defect(*OLD_KEY_DEFECT[direction])

    async def main():
        a, b = socket.socketpair()
        closing(b)
        number = a.fileno()
        calls = []
        getattr(loop, f'add_{direction}')(a, calls.append, 'old')
        a.close()
        with next_fd_is(number):
            c, d = socket.socketpair()
        closing(c)
        closing(d)
        assert c.fileno() == number
        loop.add_reader(c, lambda: calls.append('new') if 'new' not in calls else None)
        d.send(b'data for c')
        await iterations()
        assert loop.remove_reader(c)
        assert calls == ['new']

    run_async(main())


@pytest.mark.parametrize('direction', ['reader', 'writer'])
def test_remove_watcher_of_a_closed_socket_finds_it_by_the_object(loop, direction):
    """anyio removes the reader of a socket it has already closed: as selectors, the loop
    finds the registration by the object and returns True."""
    a, b = socket.socketpair()
    try:
        getattr(loop, f'add_{direction}')(a, print)
        a.close()
        assert a.fileno() == -1
        assert getattr(loop, f'remove_{direction}')(a) is True
        # Gone now: asyncio's answer for a closed object it does not know.
        with pytest.raises(ValueError, match='Invalid file descriptor: -1'):
            getattr(loop, f'remove_{direction}')(a)
    finally:
        a.close()
        b.close()


def test_remove_reader_of_a_closed_socket_registered_only_for_writing(loop):
    a, b = socket.socketpair()
    try:
        loop.add_writer(a, print)
        a.close()
        assert loop.remove_reader(a) is False
        assert loop.remove_writer(a) is True
    finally:
        b.close()


def test_server_whose_socket_was_closed_does_not_accept_for_the_reused_number(
        loop, run_async, closing, asyncio_defect):
    """Server A serves on the user's socket L1; L1 is closed behind its back; L2 takes the
    number and server B serves on it: B gets the connection, A nothing."""
    asyncio_defect("server B's reader only replaces server A's key data: B never accepts",
                   AssertionError)

    async def main():
        seen = []

        def factory(name):
            class Proto(asyncio.Protocol):
                def connection_made(self, transport):
                    seen.append(name)
                    transport.close()
            return Proto

        l1 = socket.socket()
        l1.bind(('127.0.0.1', 0))
        l1.listen()
        number = l1.fileno()
        server_a = await loop.create_server(factory('A'), sock=l1)
        l1.close()
        with next_fd_is(number):
            l2 = socket.socket()
        assert l2.fileno() == number
        l2.bind(('127.0.0.1', 0))
        l2.listen()
        server_b = closing(await loop.create_server(factory('B'), sock=l2))
        client = closing(socket.create_connection(l2.getsockname()))
        await iterations()
        assert seen == ['B']
        client.settimeout(30)
        assert client.recv(16) == b''
        server_a.close()
        server_b.close()
        await server_b.wait_closed()

    run_async(main())


def poll_counter(loop):
    """A function returning how many times ``loop`` has polled for I/O so far."""
    if hasattr(loop, 'metrics'):
        return lambda: loop.metrics().iterations
    select = loop._selector.select
    count = 0

    def counting(timeout=None):
        nonlocal count
        count += 1
        return select(timeout)

    loop._selector.select = counting
    return lambda: count


@pytest.mark.parametrize('registration', ['add_reader', 'sock_recv'])
def test_closed_sockets_file_kept_open_elsewhere_does_not_wake_the_loop(
        request, loop, loop_name, run_async, closing, registration):
    """A registered socket is closed while a duplicate (a forked child's, ``sock.dup()``)
    keeps its file open, and that file then becomes readable: epoll keeps the registration
    of the file, which no call can name any more. The idle loop must still sleep, not wake
    for it on every poll."""
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_SPINS_ON_A_CLOSED_SOCKETS_FILE')
    if registration == 'sock_recv':
        expect_asyncio_bug(request, loop_name, 'ASYNCIO_SOCK_OPERATION_OUTLIVES_ITS_CLOSED_SOCKET')

    async def main():
        polls = poll_counter(loop)
        sock, peer = socket.socketpair()
        closing(peer)
        sock.setblocking(False)
        duplicate = closing(sock.dup())
        if registration == 'add_reader':
            loop.add_reader(sock, lambda: None)
            sock.close()
            assert loop.remove_reader(sock)
        else:
            waiting = loop.create_task(loop.sock_recv(sock, 4))
            await iterations()
            sock.close()
            done, _ = await asyncio.wait([waiting], timeout=5)
            assert done, 'sock_recv still waits on its closed socket'
        peer.send(b'data')  # the duplicate's file, still in epoll's set, is readable now
        await iterations()
        before = polls()
        await asyncio.sleep(0.2)
        return polls() - before, duplicate.recv(4)

    polled, data = run_async(main())
    assert data == b'data'
    assert polled < 20, f'the loop polled {polled} times in 0.2 s of sleep'
