"""Datagrams: create_datagram_endpoint and the datagram transport."""

import asyncio
import contextlib
import os
import socket
import tempfile

import pytest

from conftest import RecordingProtocol, close_and_collect, expect_asyncio_bug
from ferroloop import versions


class Recorder(RecordingProtocol, asyncio.DatagramProtocol):
    """Records what a datagram transport does to its protocol, and the datagrams and errors
    it delivers; ``until`` waits for one of those to make a condition true."""

    def __init__(self, loop):
        super().__init__(loop)
        self.datagrams = []
        self.errors = []
        self._wanted = None

    def datagram_received(self, data, addr):
        self.datagrams.append((data, addr))
        self._wake()

    def error_received(self, exc):
        self.errors.append(exc)
        self._wake()

    def _wake(self):
        if self._wanted is not None and not self._wanted.done():
            self._wanted.set_result(None)

    async def until(self, condition):
        while not condition():
            self._wanted = self.loop.create_future()
            await self._wanted


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def unix_datagram_peer():
    """A bound, non-blocking Unix datagram socket in a fresh directory: (socket, path).
    Nothing reads it but the test's own recv calls, so what is sent to it piles up in its
    queue until the test drains it."""
    with tempfile.TemporaryDirectory() as tmp, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as peer:
        path = os.path.join(tmp, 'peer')
        peer.bind(path)
        peer.setblocking(False)
        yield peer, path


def test_udp_echo_between_a_bound_and_a_connected_endpoint(loop, loop_name, run_async):
    async def main():
        server_tr, server = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=('127.0.0.1', 0))
        assert isinstance(server_tr, asyncio.Transport)
        if loop_name == 'ferroloop' or versions.DATAGRAM_TRANSPORT_SUBCLASSES_IT:
            # asyncio's own became a DatagramTransport with Python 3.12.
            assert isinstance(server_tr, asyncio.DatagramTransport)
        assert server.events == ['made'] and server.transport is server_tr
        server_addr = server_tr.get_extra_info('sockname')
        assert server_tr.get_extra_info('peername') is None

        client_tr, client = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), remote_addr=server_addr)
        assert client_tr.get_extra_info('peername') == server_addr
        client_addr = client_tr.get_extra_info('sockname')

        client_tr.sendto(b'ping')
        client_tr.sendto(bytearray(b'ping2'), server_addr)  # the peer's own address is fine
        await server.until(lambda: len(server.datagrams) == 2)
        assert server.datagrams == [(b'ping', client_addr), (b'ping2', client_addr)]

        server_tr.sendto(memoryview(b'pong'), client_addr)
        await client.until(lambda: client.datagrams)
        assert client.datagrams == [(b'pong', server_addr)]

        client_tr.close()
        server_tr.close()
        assert client_tr.is_closing()
        assert await client.lost is None and await server.lost is None
        assert client.events == ['made', 'lost']

    run_async(main())


def test_connected_endpoint_refuses_other_addresses(loop, run_async):
    async def main():
        tr, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=('127.0.0.1', free_udp_port()))
        peer = tr.get_extra_info('peername')
        with pytest.raises(ValueError, match=r"^Invalid address: must be None or "
                                             + rf"\('127\.0\.0\.1', {peer[1]}\)$"):
            tr.sendto(b'x', ('127.0.0.1', 1))
        tr.close()

    run_async(main())


def test_connection_refused_goes_to_error_received(loop, run_async):
    # Nobody listens on the port: the ICMP "port unreachable" comes back to a connected UDP
    # socket as ECONNREFUSED, which the protocol sees through error_received.
    async def main():
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), remote_addr=('127.0.0.1', free_udp_port()))
        tr.sendto(b'anyone?')
        await proto.until(lambda: proto.errors)
        assert isinstance(proto.errors[0], ConnectionRefusedError)
        assert not tr.is_closing()  # not fatal
        tr.close()
        await proto.lost

    run_async(main())


def test_sendto_argument_errors(loop, run_async):
    async def main():
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=('127.0.0.1', 0))
        with pytest.raises(TypeError, match=r"^data argument must be a bytes-like object, "
                                            r"not 'str'$"):
            tr.sendto('text', ('127.0.0.1', 9))
        tr.sendto(b'', ('127.0.0.1', 9))  # nothing to send (Python 3.11)
        assert tr.get_write_buffer_size() == 0
        tr.close()
        await proto.lost

    run_async(main())


def test_sendto_a_bad_address_is_fatal_to_the_transport(loop, run_async):
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    async def main():
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=('127.0.0.1', 0))
        tr.sendto(b'x', 'not an address')
        exc = await proto.lost
        assert isinstance(exc, TypeError)
        assert tr.is_closing()

    run_async(main())
    assert [c['message'] for c in errors] == ['Fatal write error on datagram transport']


def test_create_datagram_endpoint_argument_checks(loop, run_async):
    async def main():
        # asyncio 3.13 takes any socket but a stream one (SOCK_SEQPACKET, SOCK_RAW, ...).
        expected = ('A datagram socket was expected, got'
                    if versions.DATAGRAM_SOCK_ANY_BUT_STREAM else 'A UDP Socket was expected, got')
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stream, \
                pytest.raises(ValueError, match=expected):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=stream)
        modifiers = (r'^socket modifier keyword arguments can not be used when sock is '
                     r"specified\. \(local_addr=\('127\.0\.0\.1', 0\), reuse_port=True\)$")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram, \
                pytest.raises(ValueError, match=modifiers):
            await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, sock=dgram, local_addr=('127.0.0.1', 0),
                reuse_port=True)
        with pytest.raises(ValueError, match='^unexpected address family$'):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol)
        with pytest.raises(TypeError, match='^2-tuple is expected$'):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                local_addr=('127.0.0.1', 0, 0, 0))
        with pytest.raises(TypeError, match='^string is expected$'):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                family=socket.AF_UNIX, local_addr=b'/tmp/x')
        # Python 3.11 removed reuse_address (unsafe for UDP): an unknown keyword.
        with pytest.raises(TypeError, match='reuse_address'):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                local_addr=('127.0.0.1', 0), reuse_address=True)
        with pytest.raises(ValueError, match='^can not get address information$'):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                local_addr=('127.0.0.1', 0),
                                                remote_addr=('::1', 9))

    run_async(main())


def test_bind_error_is_raised(loop, run_async):
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(('127.0.0.1', 0))
            with pytest.raises(OSError) as info:
                await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    local_addr=taken.getsockname())
            assert isinstance(info.value, OSError)

    run_async(main())


def test_endpoint_over_a_given_socket(loop, run_async):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))

    async def main():
        tr, proto = await loop.create_datagram_endpoint(lambda: Recorder(loop), sock=sock)
        assert tr.get_extra_info('socket').fileno() == sock.fileno()
        assert tr.get_extra_info('sockname') == sock.getsockname()
        assert sock.gettimeout() == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind(('127.0.0.1', 0))
            other.sendto(b'hi', sock.getsockname())
            await proto.until(lambda: proto.datagrams)
            assert proto.datagrams == [(b'hi', other.getsockname())]
        tr.close()
        await proto.lost

    run_async(main())
    assert sock.fileno() == -1  # the transport closed it


@pytest.mark.skipif(not socket.has_ipv6, reason='no IPv6')
def test_ipv6_addresses_have_four_fields(loop, run_async):
    async def main():
        try:
            server_tr, server = await loop.create_datagram_endpoint(
                lambda: Recorder(loop), local_addr=('::1', 0))
        except OSError:
            pytest.skip('IPv6 loopback unavailable')
        client_tr, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=server_tr.get_extra_info('sockname')[:2])
        client_tr.sendto(b'six')
        await server.until(lambda: server.datagrams)
        data, addr = server.datagrams[0]
        assert data == b'six'
        assert addr == client_tr.get_extra_info('sockname')
        assert len(addr) == 4 and addr[0] == '::1'
        client_tr.close()
        server_tr.close()
        await server.lost

    run_async(main())


def test_unix_datagram_endpoints_by_path(loop, run_async):
    with tempfile.TemporaryDirectory() as tmp:
        server_path = os.path.join(tmp, 'server')
        client_path = os.path.join(tmp, 'client')
        # A stale socket file is replaced, as asyncio does.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stale.bind(server_path)
        stale.close()

        async def main():
            server_tr, server = await loop.create_datagram_endpoint(
                lambda: Recorder(loop), local_addr=server_path, family=socket.AF_UNIX)
            client_tr, client = await loop.create_datagram_endpoint(
                lambda: Recorder(loop), local_addr=client_path, remote_addr=server_path,
                family=socket.AF_UNIX)
            assert client_tr.get_extra_info('peername') == server_path
            client_tr.sendto(b'unix')
            await server.until(lambda: server.datagrams)
            assert server.datagrams == [(b'unix', client_path)]
            server_tr.sendto(b'back', client_path)
            await client.until(lambda: client.datagrams)
            assert client.datagrams == [(b'back', server_path)]
            client_tr.close()
            server_tr.close()
            await client.lost
            await server.lost

        run_async(main())


def test_unnamed_and_abstract_unix_senders(loop, loop_name, run_async):
    name = f'\0ferroloop-test-{os.getpid()}-{loop_name}'

    async def main():
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=name, family=socket.AF_UNIX)
        assert tr.get_extra_info('sockname') == name.encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unnamed:
            unnamed.sendto(b'anonymous', name)
            await proto.until(lambda: proto.datagrams)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
            abstract.bind(name + '-sender')
            abstract.sendto(b'named', name)
            await proto.until(lambda: len(proto.datagrams) == 2)
        # Addresses exactly as socket.recvfrom gives them.
        assert proto.datagrams == [(b'anonymous', None), (b'named', (name + '-sender').encode())]
        tr.close()
        await proto.lost

    run_async(main())


def test_endpoint_on_a_socketpair_end_talks_to_its_unnamed_peer(
        request, loop, loop_name, run_async):
    # The peer has no name (getpeername() gives ''), yet the socket is connected: sendto(data)
    # sends to it, and nothing goes to the exception handler (as on uvloop).
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_DATAGRAM_SOCKETPAIR_SENDTO_FAILS')
    reported = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)

    async def main():
        with ours, peer:
            tr, proto = await loop.create_datagram_endpoint(lambda: Recorder(loop), sock=ours)
            peer.send(b'ping')
            await proto.until(lambda: proto.datagrams)
            assert proto.datagrams == [(b'ping', None)]
            tr.sendto(b'pong')
            await asyncio.sleep(0.01)
            peer.setblocking(False)
            assert peer.recv(16) == b'pong'
            tr.close()
            await proto.lost
        assert reported == [] and proto.errors == []

    run_async(main())


def test_private_attributes_libraries_read_follow_the_endpoints_state(loop, run_async):
    async def main():
        tr, proto = await loop.create_datagram_endpoint(lambda: Recorder(loop),
                                                        local_addr=('127.0.0.1', 0))
        assert tr._sock_fd == tr.get_extra_info('socket').fileno()
        assert (tr._paused, tr._closing, tr._conn_lost) == (False, False, 0)
        tr.pause_reading()
        assert tr._paused
        tr.close()
        assert tr._closing and tr._conn_lost == 1
        await proto.lost

    run_async(main())


def test_full_socket_buffers_datagrams_with_flow_control(loop, run_async):
    # A Unix datagram socket whose peer does not read refuses more once the peer's queue is
    # full: the transport queues the rest, pauses the protocol, and sends it all, in order,
    # once the peer reads.
    with unix_datagram_peer() as (peer, peer_path):
        count = 2000

        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                lambda: Recorder(loop), remote_addr=peer_path, family=socket.AF_UNIX)
            tr.set_write_buffer_limits(high=4096)
            for i in range(count):
                tr.sendto(b'%06d' % i + b'.' * 58)
            assert tr.get_write_buffer_size() > 4096
            assert proto.events == ['made', 'pause']
            received = []
            while len(received) < count:
                try:
                    received.append(peer.recv(1024))
                except BlockingIOError:
                    await asyncio.sleep(0)
            assert received == [b'%06d' % i + b'.' * 58 for i in range(count)]
            assert tr.get_write_buffer_size() == 0
            assert proto.events == ['made', 'pause', 'resume']
            tr.close()
            await proto.lost

        run_async(main())


def test_write_buffer_size_counts_each_waiting_datagram(loop, run_async):
    # asyncio 3.13.6 and 3.14.1 count a UDP header's 8 bytes for each waiting datagram, so
    # that a flood of tiny ones still reaches the high-water mark.
    header = 8 if versions.DATAGRAM_BUFFER_COUNTS_HEADERS else 0
    payload = b'x' * 100
    with unix_datagram_peer() as (peer, peer_path):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                lambda: Recorder(loop), remote_addr=peer_path, family=socket.AF_UNIX)
            tr.set_write_buffer_limits(high=10 ** 9)
            while tr.get_write_buffer_size() == 0:  # until the peer's queue is full
                tr.sendto(payload)
            for _ in range(9):
                tr.sendto(payload)
            assert tr.get_write_buffer_size() == 10 * (len(payload) + header)
            tr.abort()
            await proto.lost

        run_async(main())


def test_sendto_empty_data(loop, run_async):
    # asyncio 3.13 sends an empty datagram; 3.11 sent nothing.
    with unix_datagram_peer() as (peer, peer_path):
        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                lambda: Recorder(loop), remote_addr=peer_path, family=socket.AF_UNIX)
            tr.sendto(b'')
            tr.sendto(b'after')
            received = []
            while b'after' not in received:
                try:
                    received.append(peer.recv(1024))
                except BlockingIOError:
                    await asyncio.sleep(0.001)
            assert received == ([b'', b'after'] if versions.DATAGRAM_SENDS_EMPTY else [b'after'])
            tr.close()
            await proto.lost

        run_async(main())


def test_close_sends_queued_datagrams_first_abort_drops_them(loop, run_async):
    with unix_datagram_peer() as (peer, peer_path):
        def drain():
            got = []
            while True:
                try:
                    got.append(peer.recv(1024))
                except BlockingIOError:
                    return got

        async def fill(tr):
            i = 0
            while not tr.get_write_buffer_size():
                tr.sendto(b'%d' % i)
                i += 1
            tr.sendto(b'last')
            return i + 1

        async def main():
            tr, proto = await loop.create_datagram_endpoint(
                lambda: Recorder(loop), remote_addr=peer_path, family=socket.AF_UNIX)
            sent = await fill(tr)
            tr.close()
            assert tr.is_closing()
            got = []
            while not proto.lost.done():
                got += drain()
                await asyncio.sleep(0)
            got += drain()
            assert len(got) == sent and got[-1] == b'last'

            tr, proto = await loop.create_datagram_endpoint(
                lambda: Recorder(loop), remote_addr=peer_path, family=socket.AF_UNIX)
            sent = await fill(tr)
            tr.abort()
            assert await proto.lost is None
            assert len(drain()) < sent

        run_async(main())


def test_pause_and_resume_reading(loop, run_async):
    async def main():
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Recorder(loop), local_addr=('127.0.0.1', 0))
        tr.pause_reading()
        assert not tr.is_reading()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.sendto(b'later', tr.get_extra_info('sockname'))
            for _ in range(5):
                await asyncio.sleep(0)
            assert proto.datagrams == []
            tr.resume_reading()
            assert tr.is_reading()
            await proto.until(lambda: proto.datagrams)
        assert proto.datagrams[0][0] == b'later'
        tr.close()
        await proto.lost

    run_async(main())


def test_datagram_received_error_goes_to_the_exception_handler(loop, run_async):
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    class Failing(Recorder):
        def datagram_received(self, data, addr):
            super().datagram_received(data, addr)
            raise ZeroDivisionError

    async def main():
        tr, proto = await loop.create_datagram_endpoint(
            lambda: Failing(loop), local_addr=('127.0.0.1', 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.sendto(b'1', tr.get_extra_info('sockname'))
            other.sendto(b'2', tr.get_extra_info('sockname'))
            await proto.until(lambda: len(proto.datagrams) == 2)
        assert not tr.is_closing()
        tr.close()
        await proto.lost

    run_async(main())
    assert [type(c['exception']) for c in errors] == [ZeroDivisionError] * 2


def test_unclosed_datagram_transport_warns(loop, run_async):
    async def main():
        tr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    local_addr=('127.0.0.1', 0))
        return tr.get_extra_info('socket').fileno()

    run_async(main())
    with pytest.warns(ResourceWarning, match='unclosed transport'):
        close_and_collect(loop)
