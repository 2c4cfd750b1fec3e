"""TCP and Unix stream transports: the protocol contract, flow control, and faults."""

import asyncio
import gc
import inspect
import os
import socket
import tempfile
import warnings

import pytest

from conftest import ContextTrail, expect_asyncio_bug, in_context_of, run, trail_var
from ferroloop import versions


def open_fds():
    return len(os.listdir('/proc/self/fd'))


class Recorder(asyncio.Protocol):
    """Records every callback in order."""

    def __init__(self, loop):
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append('made')

    def data_received(self, data):
        if self.events[-1] != 'data':
            self.events.append('data')
        self.data += data

    def eof_received(self):
        self.events.append('eof')

    def connection_lost(self, exc):
        self.events.append('lost')
        if not self.lost.done():
            self.lost.set_result(exc)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_server(loop, **kwargs):
    server = await loop.create_server(Echo, '127.0.0.1', 0, **kwargs)
    return server, server.sockets[0].getsockname()


def test_transport_is_an_asyncio_transport_with_extra_info(loop):
    async def main():
        server, addr = await echo_server(loop)
        transport, protocol = await loop.create_connection(lambda: Recorder(loop), *addr)
        assert isinstance(transport, asyncio.Transport)
        assert isinstance(transport, asyncio.ReadTransport)
        assert isinstance(transport, asyncio.WriteTransport)
        assert transport.get_extra_info('peername') == addr
        assert transport.get_extra_info('sockname')[0] == '127.0.0.1'
        sock = transport.get_extra_info('socket')
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
        assert transport.get_extra_info('nope', 'default') == 'default'
        assert transport.get_protocol() is protocol
        assert transport.can_write_eof()
        transport.close()
        await protocol.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_callback_order_made_data_eof_lost(loop):
    async def main():
        async def handle(reader, writer):
            writer.write(b'hello')
            await writer.drain()
            writer.write_eof()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        transport, protocol = await loop.create_connection(
            lambda: Recorder(loop), *server.sockets[0].getsockname())
        while b'hello' not in protocol.data or 'eof' not in protocol.events:
            await asyncio.sleep(0.01)
        transport.close()
        assert await protocol.lost is None
        assert protocol.events == ['made', 'data', 'eof', 'lost']
        assert bytes(protocol.data) == b'hello'
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_large_writes_are_buffered_then_flushed_in_order(loop):
    async def main():
        server, addr = await echo_server(loop)
        transport, protocol = await loop.create_connection(lambda: Recorder(loop), *addr)
        payload = bytes(range(256)) * 40_000  # ~10 MB: far more than the socket buffers
        transport.write(payload[:1000])
        transport.write(bytearray(payload[1000:5000]))
        transport.write(memoryview(payload)[5000:])
        assert transport.get_write_buffer_size() > 0
        while len(protocol.data) < len(payload):
            await asyncio.sleep(0.01)
        assert protocol.data == payload
        assert transport.get_write_buffer_size() == 0
        transport.close()
        await protocol.lost
        server.close()

    run(loop, main())


def test_writelines_concatenates(loop):
    async def main():
        server, addr = await echo_server(loop)
        transport, protocol = await loop.create_connection(lambda: Recorder(loop), *addr)
        transport.writelines([b'ab', bytearray(b'cd'), memoryview(b'ef')])
        while len(protocol.data) < 6:
            await asyncio.sleep(0.01)
        assert protocol.data == b'abcdef'
        transport.close()
        await protocol.lost
        server.close()

    run(loop, main())


def test_write_rejects_non_bytes_and_write_after_eof(loop):
    async def main():
        server, addr = await echo_server(loop)
        transport, protocol = await loop.create_connection(lambda: Recorder(loop), *addr)
        # asyncio 3.13 names the types it accepts.
        accepted = ('a bytes, bytearray, or memoryview object'
                    if versions.SOCKET_WRITE_ERROR_NAMES_TYPES else 'a bytes-like object')
        with pytest.raises(TypeError, match=f"data argument must be {accepted}, not 'str'"):
            transport.write('text')
        transport.write_eof()
        with pytest.raises(RuntimeError, match=r'Cannot call write\(\) after write_eof\(\)'):
            transport.write(b'x')
        transport.close()
        await protocol.lost
        server.close()

    run(loop, main())


def test_flow_control_pauses_and_resumes_the_protocol(loop):
    peers = []

    class Slow(asyncio.Protocol):
        def connection_made(self, transport):
            peers.append(transport)
            transport.pause_reading()  # the peer stops reading: our writes pile up

    async def main():
        server = await loop.create_server(Slow, '127.0.0.1', 0)
        calls = []

        class Writer(Recorder):
            def pause_writing(self):
                calls.append('pause')

            def resume_writing(self):
                calls.append('resume')

        transport, protocol = await loop.create_connection(
            lambda: Writer(loop), *server.sockets[0].getsockname())
        transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        while not calls:
            transport.write(b'x' * 65536)
            await asyncio.sleep(0)
        assert calls == ['pause']
        assert transport.get_write_buffer_size() > 64 * 1024
        transport.abort()  # dropping the buffer ends the pause without resume_writing
        await protocol.lost
        assert transport.get_write_buffer_size() == 0
        for peer in peers:
            peer.close()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_pause_and_resume_writing_run_in_the_connections_context(request, loop_name, loop):
    # write() is called in another context (a task's, say): the protocol hears of the pause
    # in its own, like its other callbacks.
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_CALLBACKS_IN_CALLERS_CONTEXT')
    peers = []

    class Slow(asyncio.Protocol):
        def connection_made(self, transport):
            peers.append(transport)
            transport.pause_reading()

    async def main():
        server = await loop.create_server(Slow, '127.0.0.1', 0)
        trail_var.set('connecting')
        transport, protocol = await loop.create_connection(
            lambda: ContextTrail(loop), *server.sockets[0].getsockname())
        transport.set_write_buffer_limits(high=1)
        while not protocol.paused.done():
            in_context_of('writer', transport.write, b'x' * 65536)
            await asyncio.sleep(0)
        peers[0].resume_reading()
        await protocol.resumed
        in_context_of('closer', transport.close)
        await protocol.lost
        peers[0].close()
        server.close()
        # connection_made runs in a copy of the connection's context (what it sees, so does
        # pause_writing), or from 3.15 on, as asyncio's does, in that context itself.
        made = 'made' if versions.CONNECTION_MADE_IN_CONNECTION_CONTEXT else protocol.trail[1][1]
        assert protocol.trail[2:] == [('pause_writing', made),
                                      ('resume_writing', 'pause_writing'),
                                      ('connection_lost', 'resume_writing')]

    run(loop, main())


def test_private_attributes_libraries_read_follow_the_transports_state(loop):
    # asyncio's _SelectorSocketTransport attributes that libraries (and their tests) read:
    # uvicorn's waits on _paused, SMTP and SSH clients check _closing.
    async def main():
        accepted = []

        class Server(asyncio.Protocol):
            def connection_made(self, transport):
                accepted.append(transport)

        server = await loop.create_server(Server, '127.0.0.1', 0)
        transport, protocol = await loop.create_connection(
            lambda: Recorder(loop), *server.sockets[0].getsockname())
        await asyncio.sleep(0.01)
        assert accepted[0]._server is server
        assert transport._server is None
        assert transport._sock_fd == transport.get_extra_info('socket').fileno()
        assert (transport._paused, transport._closing, transport._eof,
                transport._conn_lost) == (False, False, False, 0)
        transport.pause_reading()
        assert transport._paused
        transport.resume_reading()
        assert not transport._paused
        transport.write_eof()
        assert transport._eof
        transport.close()
        assert transport._closing and transport._conn_lost == 1
        await protocol.lost
        accepted[0].close()
        await asyncio.sleep(0)
        assert accepted[0]._server is None
        server.close()

    run(loop, main())


def test_the_transports_socket_repr_names_its_family_and_type(request, loop_name, loop):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_TRANSPORT_SOCKET_REPR_NUMBERS')

    async def main():
        accepted = []
        server = await loop.create_server(lambda: accepted.append(Recorder(loop)) or accepted[-1],
                                          '127.0.0.1', 0)
        transport, protocol = await loop.create_connection(
            lambda: Recorder(loop), *server.sockets[0].getsockname())
        sock = transport.get_extra_info('socket')
        port = server.sockets[0].getsockname()[1]
        expected = (f'<asyncio.TransportSocket fd={sock.fileno()}, '
                    f'family=AddressFamily.AF_INET, type=SocketKind.SOCK_STREAM, proto=6, '
                    f"laddr={sock.getsockname()}, raddr=('127.0.0.1', {port})>")
        seen, listening = repr(sock), repr(server.sockets[0])
        transport.close()
        await protocol.lost
        await accepted[0].lost
        server.close()
        assert seen == expected
        assert 'family=AddressFamily.AF_INET, type=SocketKind.SOCK_STREAM' in listening

    run(loop, main())


class SmallReads(asyncio.BufferedProtocol):
    """A BufferedProtocol server reading 1 KiB at a time: many reads follow the peer's close."""

    def __init__(self, loop):
        self.events = []
        self.data = bytearray()
        self.buffer = bytearray(1024)
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.events.append('made')

    def get_buffer(self, sizehint):
        return self.buffer

    def buffer_updated(self, nbytes):
        self.data += self.buffer[:nbytes]
        if self.events[-1] != 'data':
            self.events.append('data')

    def eof_received(self):
        self.events.append('eof')

    def connection_lost(self, exc):
        self.events.append('lost')
        self.lost.set_result(exc)


@pytest.mark.parametrize('family', ['tcp', 'unix'])
@pytest.mark.parametrize('protocol_class', [Recorder, SmallReads])
def test_a_server_gets_all_a_client_sent_and_closed_at_once(loop, family, protocol_class):
    # The peer's close (EPOLLRDHUP, and EPOLLHUP on a Unix socket) is reported with data still
    # queued: all of it is delivered, then eof_received, then connection_lost(None).
    payload = os.urandom(300_000)

    def client(address):
        kind = socket.AF_INET if family == 'tcp' else socket.AF_UNIX
        with socket.socket(kind, socket.SOCK_STREAM) as sock:
            sock.connect(address)
            sock.sendall(payload)

    async def main():
        accepted = []
        factory = lambda: accepted.append(protocol_class(loop)) or accepted[-1]  # noqa: E731
        with tempfile.TemporaryDirectory() as tmp:
            if family == 'tcp':
                server = await loop.create_server(factory, '127.0.0.1', 0)
                address = server.sockets[0].getsockname()
            else:
                address = os.path.join(tmp, 'sock')
                server = await loop.create_unix_server(factory, address)
            await loop.run_in_executor(None, client, address)
            while not accepted:  # the client may be done before the server accepts
                await asyncio.sleep(0.001)
            assert await accepted[0].lost is None
            server.close()
        assert accepted[0].events == ['made', 'data', 'eof', 'lost']
        assert accepted[0].data == payload

    run(loop, main())


def test_set_write_buffer_limits_validates(loop):
    async def main():
        server, addr = await echo_server(loop)
        transport, protocol = await loop.create_connection(lambda: Recorder(loop), *addr)
        with pytest.raises(ValueError, match='must be >= low'):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.set_write_buffer_limits(low=100)
        assert transport.get_write_buffer_limits() == (100, 400)
        transport.set_write_buffer_limits(high=1000)
        assert transport.get_write_buffer_limits() == (250, 1000)
        transport.close()
        await protocol.lost
        server.close()

    run(loop, main())


def test_pause_reading_stops_data_received(loop):
    async def main():
        server, addr = await echo_server(loop)
        transport, protocol = await loop.create_connection(lambda: Recorder(loop), *addr)
        assert transport.is_reading()
        assert not transport._paused  # asyncio's private flag, which libraries read
        transport.pause_reading()
        assert not transport.is_reading()
        assert transport._paused
        transport.write(b'ping')
        for _ in range(20):
            await asyncio.sleep(0.005)
        assert protocol.data == b''
        transport.resume_reading()
        while protocol.data != b'ping':
            await asyncio.sleep(0.005)
        transport.close()
        assert not transport.is_reading()
        await protocol.lost
        server.close()

    run(loop, main())


def test_buffered_protocol_reads_into_its_own_buffer(loop):
    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buffer = bytearray(7)
            self.received = bytearray()
            self.done = loop.create_future()

        def get_buffer(self, sizehint):
            return self.buffer

        def buffer_updated(self, nbytes):
            self.received += self.buffer[:nbytes]

        def eof_received(self):
            self.done.set_result(bytes(self.received))

    async def main():
        async def handle(reader, writer):
            writer.write(b'0123456789' * 100)
            writer.write_eof()
            await writer.drain()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        transport, protocol = await loop.create_connection(Buffered, *server.sockets[0].getsockname())
        assert await protocol.done == b'0123456789' * 100
        transport.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)  # the server side sees EOF and closes

    run(loop, main())


def test_protocol_error_goes_to_the_exception_handler_and_closes(loop):
    class Failing(Recorder):
        def data_received(self, data):
            raise ZeroDivisionError('protocol bug')

    async def main():
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        server, addr = await echo_server(loop)
        transport, protocol = await loop.create_connection(lambda: Failing(loop), *addr)
        transport.write(b'boom')
        exc = await protocol.lost
        assert isinstance(exc, ZeroDivisionError)
        assert exc.__traceback__ is not None
        assert contexts[0]['message'] == 'Fatal error: protocol.data_received() call failed.'
        assert contexts[0]['transport'] is transport
        assert contexts[0]['protocol'] is protocol
        server.close()

    run(loop, main())


def test_peer_reset_mid_write_reaches_connection_lost(loop):
    async def main():
        accepted = loop.create_future()

        class Grab(asyncio.Protocol):
            def connection_made(self, transport):
                transport.pause_reading()
                accepted.set_result(transport)

        server = await loop.create_server(Grab, '127.0.0.1', 0)
        transport, protocol = await loop.create_connection(
            lambda: Recorder(loop), *server.sockets[0].getsockname())
        peer = await accepted
        transport.write(b'x' * (8 * 1024 * 1024))  # stays partly buffered
        # An abortive close: RST instead of FIN.
        peer.get_extra_info('socket').setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
        peer.abort()
        exc = await protocol.lost
        assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
        assert transport.is_closing()
        transport.write(b'after')  # ignored once the connection is lost, as asyncio does
        server.close()

    run(loop, main())


def test_cancelled_create_connection_leaves_no_socket_behind(loop):
    async def main():
        server, addr = await echo_server(loop)
        baseline = open_fds()
        for steps in range(6):
            task = loop.create_task(loop.create_connection(lambda: Recorder(loop), *addr))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                transport, protocol = await task
            except asyncio.CancelledError:
                pass
            else:
                transport.close()
                await protocol.lost
        for _ in range(10):
            await asyncio.sleep(0.01)
        gc.collect()
        assert open_fds() == baseline
        # A connection made now (likely reusing a cancelled attempt's fd number) gets its
        # own data, not a stale registration's.
        transport, protocol = await loop.create_connection(lambda: Recorder(loop), *addr)
        transport.write(b'mine')
        while protocol.data != b'mine':
            await asyncio.sleep(0.01)
        transport.close()
        await protocol.lost
        server.close()

    run(loop, main())


def test_accept_out_of_fds_pauses_instead_of_spinning(loop, loop_name):
    import resource

    async def main():
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
        server, addr = await echo_server(loop)
        clients = []
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            # Room for the client sockets but none for the server's accept().
            client = socket.socket()
            client.setblocking(False)
            clients.append(client)
            # New fds take the lowest free number: with the limit set to it, the next one
            # (the server's accept) fails with EMFILE.
            lowest_free = os.dup(0)
            os.close(lowest_free)
            resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
            try:
                client.connect(addr)
            except BlockingIOError:
                pass
            await asyncio.sleep(0.05)
            reported = len(contexts)
            await asyncio.sleep(0.25)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        # Reported, then accepting pauses (for a second) instead of failing in a busy loop.
        assert reported >= 1
        assert len(contexts) == reported
        if loop_name == 'ferroloop':
            # asyncio goes on trying (and reporting) up to `backlog` times in that event.
            assert reported == 1
        assert contexts[0]['message'] == 'socket.accept() out of system resource'
        assert isinstance(contexts[0]['exception'], OSError)
        # With fds available again, accepting resumes (after asyncio's one-second pause).
        await loop.sock_sendall(clients[0], b'resumed')
        assert await asyncio.wait_for(loop.sock_recv(clients[0], 100), 5) == b'resumed'
        for client in clients:
            client.close()
        server.close()

    run(loop, main())


def test_server_close_keeps_connections_and_wait_closed(loop):
    async def main():
        server, addr = await echo_server(loop)
        assert server.is_serving()
        assert server.get_loop() is loop
        transport, protocol = await loop.create_connection(lambda: Recorder(loop), *addr)
        server.close()
        assert not server.is_serving()
        assert server.sockets == ()
        transport.write(b'still here')
        while protocol.data != b'still here':
            await asyncio.sleep(0.01)
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(lambda: Recorder(loop), *addr)
        transport.close()
        await protocol.lost
        await server.wait_closed()

    run(loop, main())


def test_server_async_with_and_serve_forever(loop):
    async def main():
        server = await loop.create_server(Echo, '127.0.0.1', 0, start_serving=False)
        assert not server.is_serving()
        async with server:
            forever = loop.create_task(server.serve_forever())
            await asyncio.sleep(0)
            assert server.is_serving()
            with pytest.raises(RuntimeError, match='is already being awaited on serve_forever'):
                await server.serve_forever()
            forever.cancel()
            with pytest.raises(asyncio.CancelledError):
                await forever
        assert not server.is_serving()

    run(loop, main())


def test_create_server_several_hosts_and_sock(loop):
    async def main():
        server = await loop.create_server(Echo, ['127.0.0.1', '127.0.0.2'], 0)
        families = sorted(s.getsockname()[0] for s in server.sockets)
        assert families == ['127.0.0.1', '127.0.0.2']
        server.close()
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            server = await loop.create_server(Echo, sock=sock)
            assert server.sockets[0].getsockname() == sock.getsockname()
            server.close()
        with pytest.raises(ValueError, match='Neither host/port nor sock were specified'):
            await loop.create_server(Echo)
        with pytest.raises(TypeError, match='ssl argument must be an SSLContext or None'):
            await loop.create_server(Echo, '127.0.0.1', 0, ssl=True)
        with pytest.raises(ValueError, match='ssl_handshake_timeout is only meaningful with ssl'):
            await loop.create_server(Echo, '127.0.0.1', 0, ssl_handshake_timeout=1)

    run(loop, main())


def test_reuse_port_lets_two_servers_share_a_port(loop):
    async def main():
        first = await loop.create_server(Echo, '127.0.0.1', 0, reuse_port=True)
        port = first.sockets[0].getsockname()[1]
        second = await loop.create_server(Echo, '127.0.0.1', port, reuse_port=True)
        with pytest.raises(OSError):
            await loop.create_server(Echo, '127.0.0.1', port)
        first.close()
        second.close()

    run(loop, main())


def test_create_connection_argument_errors(loop):
    async def main():
        server, addr = await echo_server(loop)
        with pytest.raises(ValueError, match='server_hostname is only meaningful with ssl'):
            await loop.create_connection(asyncio.Protocol, *addr, server_hostname='x')
        with pytest.raises(ValueError, match='ssl_handshake_timeout is only meaningful with ssl'):
            await loop.create_connection(asyncio.Protocol, *addr, ssl_handshake_timeout=1)
        with pytest.raises(ValueError, match='host and port was not specified and no sock specified'):
            await loop.create_connection(asyncio.Protocol)
        with socket.socket() as sock:
            with pytest.raises(ValueError, match='host/port and sock can not be specified at the same time'):
                await loop.create_connection(asyncio.Protocol, *addr, sock=sock)
        with socket.socket(type=socket.SOCK_DGRAM) as sock:
            with pytest.raises(ValueError, match='A Stream Socket was expected'):
                await loop.create_connection(asyncio.Protocol, sock=sock)
        server.close()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, *addr)

    run(loop, main())


def test_create_connection_local_addr_and_happy_eyeballs(loop):
    async def main():
        server, addr = await echo_server(loop)
        transport, protocol = await loop.create_connection(
            lambda: Recorder(loop), *addr, local_addr=('127.0.0.1', 0), happy_eyeballs_delay=0.25)
        assert transport.get_extra_info('sockname')[0] == '127.0.0.1'
        transport.close()
        await protocol.lost
        server.close()

    run(loop, main())


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not versions.CREATE_CONNECTION_ALL_ERRORS,
                    reason='asyncio 3.12 added all_errors')
def test_create_connection_all_errors_raises_every_attempts_error(loop):
    async def main():
        port = free_port()
        with pytest.raises(ExceptionGroup) as info:
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', port, all_errors=True)
        assert str(info.value).startswith('create_connection failed')
        assert [type(e) for e in info.value.exceptions] == [ConnectionRefusedError]
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', port, all_errors=False)

    run(loop, main())


@pytest.mark.skipif(versions.CREATE_CONNECTION_ALL_ERRORS, reason='asyncio 3.12 added all_errors')
def test_no_all_errors_before_3_12(loop):
    async def main():
        with pytest.raises(TypeError, match="unexpected keyword argument 'all_errors'"):
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', free_port(),
                                         all_errors=False)

    run(loop, main())


def test_happy_eyeballs_starts_the_next_address_as_soon_as_one_fails(loop):
    # The first address refuses at once: the second is tried then, not after the delay.
    async def main():
        server, addr = await echo_server(loop)
        refused = ('127.0.0.1', free_port())

        async def two_addresses(host, port, **kwargs):
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, '', refused),
                    (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, '', addr)]

        loop.getaddrinfo = two_addresses
        transport, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: Recorder(loop), 'two.example', addr[1],
                                   happy_eyeballs_delay=3600),
            timeout=10)
        assert transport.get_extra_info('peername') == addr
        transport.close()
        await protocol.lost
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_failed_happy_eyeballs_leaves_no_reference_cycle(request, loop_name, loop):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_HAPPY_EYEBALLS_ERRORS_IN_A_CYCLE')
    # Only the frames that caught it may reference the error: a list, a future or a
    # handle argument holding it too would be a cycle through its traceback.
    async def main():
        error = None
        try:
            await loop.create_connection(asyncio.Protocol, 'localhost', free_port(),
                                         happy_eyeballs_delay=0.25)
        except OSError as exc:
            error = exc
        assert error is not None
        holders = [r for r in gc.get_referrers(error)
                   if not inspect.isframe(r) and not inspect.iscoroutine(r)]
        assert holders == []

    run(loop, main())


def test_create_connection_with_sock_keeps_the_users_socket(loop):
    async def main():
        server, addr = await echo_server(loop)
        sock = socket.create_connection(addr)
        transport, protocol = await loop.create_connection(lambda: Recorder(loop), sock=sock)
        assert transport.get_extra_info('socket').fileno() == sock.fileno()
        transport.write(b'via sock')
        while protocol.data != b'via sock':
            await asyncio.sleep(0.01)
        transport.close()
        await protocol.lost
        assert sock.fileno() == -1  # the transport owned it, and closed it at connection_lost
        server.close()

    run(loop, main())


def test_unix_server_and_connection_replace_a_stale_socket_file(loop):
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'sock')
            stale = socket.socket(socket.AF_UNIX)
            stale.bind(path)
            stale.close()  # leaves the socket file behind
            server = await loop.create_unix_server(Echo, path)
            transport, protocol = await loop.create_unix_connection(lambda: Recorder(loop), path)
            assert transport.get_extra_info('peername') == path
            transport.write(b'unix')
            while protocol.data != b'unix':
                await asyncio.sleep(0.01)
            transport.close()
            await protocol.lost
            server.close()
            await server.wait_closed()

    run(loop, main())


def test_unix_abstract_namespace(loop):
    async def main():
        name = f'\0ferroloop-test-{os.getpid()}-{id(loop)}'
        server = await loop.create_unix_server(Echo, name)
        reader, writer = await asyncio.open_unix_connection(name)
        writer.write(b'abstract')
        assert await reader.readexactly(8) == b'abstract'
        writer.close()
        await writer.wait_closed()
        server.close()

    run(loop, main())


def test_connect_accepted_socket(loop):
    async def main():
        listener = socket.create_server(('127.0.0.1', 0))
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        transport, protocol = await loop.connect_accepted_socket(lambda: Recorder(loop), conn)
        client.sendall(b'accepted')
        while protocol.data != b'accepted':
            await asyncio.sleep(0.01)
        transport.close()
        await protocol.lost
        client.close()
        listener.close()

    run(loop, main())


def test_streams_round_trip(loop):
    async def main():
        async def handle(reader, writer):
            while line := await reader.readline():
                writer.write(line.upper())
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, '127.0.0.1', 0, limit=1 << 20)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname(), limit=1 << 20)
        for word in (b'alpha\n', b'beta\n', b'x' * 200_000 + b'\n'):
            writer.write(word)
            await writer.drain()
            assert await reader.readline() == word.upper()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run(loop, main())


def test_closing_the_loop_with_live_connections_releases_their_fds(loop_factory):
    loop = loop_factory()
    baseline = open_fds()
    # The peers wait, unaccepted, in a plain listening socket's backlog: on asyncio 3.12 and
    # later, a Server's transports finalized after the server closed fail in
    # Server._wakeup() (its waiters are gone), an asyncio bug beside the point here.
    listener = socket.create_server(('127.0.0.1', 0), backlog=10)
    addr = listener.getsockname()

    async def main():
        return [await loop.create_connection(lambda: Recorder(loop), *addr) for _ in range(5)]

    connections = loop.run_until_complete(main())
    # Unclosed transports warn and close their sockets when they are freed: at close() for
    # those only the loop held, at the next collection for the rest. (asyncio may also warn
    # about a socket the GC happened to finalize before its transport.)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        loop.close()
        del connections
        gc.collect()
    gc.collect()
    listener.close()
    assert any('unclosed transport' in str(w.message) for w in caught)
    assert open_fds() <= baseline


# Writes made while the loop runs callbacks (ferroloop sends small ones together at the end
# of the iteration): what the peer gets, in what order, and what the transport reports.

async def _connected_pair(loop):
    a, b = socket.socketpair()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=a)
    b.setblocking(False)
    return transport, b


async def _read_to_eof(loop, sock):
    chunks = []
    while chunk := await loop.sock_recv(sock, 1 << 20):
        chunks.append(chunk)
    return b''.join(chunks)


@pytest.mark.parametrize('ending', ['close', 'write_eof'])
def test_writes_of_one_callback_reach_the_peer_in_order_before_the_end(loop, ending):
    pieces = [b'head', b'x' * 100, b'y' * 20_000, b'tail', b'z' * 70_000, b'!']

    async def main():
        transport, peer = await _connected_pair(loop)
        for piece in pieces:
            transport.write(piece)
        getattr(transport, ending)()
        received = await _read_to_eof(loop, peer)
        transport.close()
        peer.close()
        return received

    assert run(loop, main()) == b''.join(pieces)


def test_a_small_write_on_an_idle_connection_leaves_nothing_buffered(loop):
    async def main():
        transport, peer = await _connected_pair(loop)
        transport.write(b'request')
        size = transport.get_write_buffer_size()
        await asyncio.sleep(0)
        data = await loop.sock_recv(peer, 100)
        transport.close()
        peer.close()
        return size, data

    assert run(loop, main()) == (0, b'request')


def test_abort_right_after_writes_drops_them_and_loses_the_connection(loop):
    async def main():
        lost = loop.create_future()

        class Writer(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        a, peer = socket.socketpair()
        transport, _ = await loop.create_connection(Writer, sock=a)
        transport.write(b'never flushed')
        transport.abort()
        exc = await lost
        assert transport.get_write_buffer_size() == 0
        peer.close()
        return exc

    assert run(loop, main()) is None


def test_a_transport_writing_while_the_loop_is_not_running_sends_at_once(loop):
    transport, peer = loop.run_until_complete(_connected_pair(loop))
    transport.write(b'outside the loop')
    peer.setblocking(True)
    peer.settimeout(10)
    try:
        assert peer.recv(100) == b'outside the loop'
    finally:
        transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        peer.close()


class Chunks(asyncio.Protocol):
    """Keeps every chunk data_received got, and wakes whoever waits for a total."""

    def __init__(self, loop):
        self.loop = loop
        self.chunks = []
        self.waiting = None

    def data_received(self, data):
        self.chunks.append(data)
        if self.waiting and sum(map(len, self.chunks)) >= self.waiting[0]:
            self.waiting[1].set_result(None)

    async def received(self, total):
        if sum(map(len, self.chunks)) < total:
            self.waiting = (total, self.loop.create_future())
            await self.waiting[1]
        return self.chunks


def test_data_received_of_alternating_large_and_small_reads(loop):
    # Reads alternate between large (each into a bytes of its own) and small (copied out of
    # the loop's buffer), each after a read of the other kind. Every chunk is an exact bytes:
    # right length, contents and hash.
    sizes = (200_000, 10, 70_000, 1, 5000, 3, 150_000)

    async def main():
        accepted = []
        factory = lambda: accepted.append(Chunks(loop)) or accepted[-1]  # noqa: E731
        server = await loop.create_server(factory, '127.0.0.1', 0)
        _, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        while not accepted:
            await asyncio.sleep(0.001)
        protocol = accepted[0]
        sent = b''
        for size in sizes:
            payload = os.urandom(size)
            writer.write(payload)
            sent += payload
            chunks = await protocol.received(len(sent))
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        assert all(type(chunk) is bytes and chunk for chunk in chunks)
        assert [hash(c) for c in chunks] == [hash(bytes(bytearray(c))) for c in chunks]
        assert b''.join(chunks) == sent

    run(loop, main())
