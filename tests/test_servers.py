"""Servers: the Server object's API and lifetime, create_server's and create_unix_server's
options, as the running Python's asyncio has them (3.12 changed wait_closed(), 3.13 added
close_clients()/abort_clients(), keep_alive= and the Unix socket file's removal)."""

import asyncio
import contextvars
import errno
import os
import socket
import tempfile

import pytest

from conftest import run
from ferroloop import versions


class Peer(asyncio.Protocol):
    """The server's side of a connection: records what reaches it."""

    def __init__(self, loop, made=None):
        self.data = bytearray()
        self.made = made
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        if self.made is not None and not self.made.done():
            self.made.set_result(self)

    def data_received(self, data):
        self.data += data

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


async def serve_one(loop, **kwargs):
    """A server and one client connected to it: (server, client socket, the server's Peer)."""
    made = loop.create_future()
    server = await loop.create_server(lambda: Peer(loop, made), '127.0.0.1', 0, **kwargs)
    client = socket.create_connection(server.sockets[0].getsockname())
    client.setblocking(False)
    peer = await made
    return server, client, peer


async def receive_until_closed(loop, sock):
    """What ``sock`` receives until its peer closes (b'' or a reset)."""
    data = bytearray()
    while True:
        try:
            chunk = await loop.sock_recv(sock, 65536)
        except ConnectionResetError:
            return bytes(data), 'reset'
        if not chunk:
            return bytes(data), 'eof'
        data += chunk


# Server.wait_closed()

def test_wait_closed_waits_for_close_and_for_the_last_connection(loop):
    async def main():
        server, client, peer = await serve_one(loop)
        waiting = loop.create_task(server.wait_closed())
        await asyncio.sleep(0.01)
        assert not waiting.done()  # the server is open
        server.close()
        closed_waiting = loop.create_task(server.wait_closed())
        await asyncio.sleep(0.01)
        # Closed, but a connection is still up: 3.12 and later wait for it; 3.11 did not.
        assert closed_waiting.done() != versions.SERVER_WAIT_CLOSED_WAITS_FOR_CONNECTIONS
        client.close()
        await peer.lost
        await asyncio.wait_for(closed_waiting, 5)
        await asyncio.wait_for(waiting, 5)
        await server.wait_closed()  # closed and no connection: returns at once

    run(loop, main())


def test_wait_closed_of_a_closed_server_without_connections_returns(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, '127.0.0.1', 0)
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)

    run(loop, main())


# Server.close_clients(), Server.abort_clients()

@pytest.mark.skipif(not versions.SERVER_CLIENTS_API, reason='asyncio 3.13 added close_clients()')
def test_close_clients_closes_every_connection_after_its_buffer(loop):
    async def main():
        server, client, peer = await serve_one(loop)
        peer.transport.write(b'last words')
        server.close()
        server.close_clients()
        assert peer.transport.is_closing()
        assert await receive_until_closed(loop, client) == (b'last words', 'eof')
        assert await peer.lost is None
        await asyncio.wait_for(server.wait_closed(), 5)
        client.close()

    run(loop, main())


@pytest.mark.skipif(not versions.SERVER_CLIENTS_API, reason='asyncio 3.13 added abort_clients()')
def test_abort_clients_drops_what_was_not_sent(loop):
    async def main():
        server, client, peer = await serve_one(loop)
        while peer.transport.get_write_buffer_size() == 0:  # the client does not read
            peer.transport.write(b'x' * 65536)
        server.close()
        server.abort_clients()
        assert await peer.lost is None
        assert peer.transport.get_write_buffer_size() == 0
        await asyncio.wait_for(server.wait_closed(), 5)
        client.close()

    run(loop, main())


@pytest.mark.skipif(versions.SERVER_CLIENTS_API, reason='asyncio 3.13 added close_clients()')
def test_no_close_clients_before_3_13(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, '127.0.0.1', 0)
        assert not hasattr(server, 'close_clients')
        assert not hasattr(server, 'abort_clients')
        server.close()

    run(loop, main())


# Server.serve_forever()

def test_cancelling_serve_forever_closes_the_server(loop):
    async def main():
        server, client, peer = await serve_one(loop)
        forever = loop.create_task(server.serve_forever())
        await asyncio.sleep(0.01)
        forever.cancel()
        if versions.SERVE_FOREVER_CANCEL_CLOSES_CLIENTS:
            # gh-123720: its connections are closed too, so it ends at once.
            assert await receive_until_closed(loop, client) == (b'', 'eof')
        elif versions.SERVER_WAIT_CLOSED_WAITS_FOR_CONNECTIONS:
            await asyncio.sleep(0.05)
            assert not forever.done()  # waits in wait_closed() for the client to leave
            assert not peer.lost.done()
            client.close()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(forever, 5)
        assert not server.is_serving()
        assert server.sockets == ()
        client.close()
        await peer.lost

    run(loop, main())


# create_server(keep_alive=)

@pytest.mark.skipif(not versions.CREATE_SERVER_KEEP_ALIVE, reason='asyncio 3.13 added keep_alive')
@pytest.mark.parametrize('keep_alive', [True, False])
def test_keep_alive_sets_so_keepalive_on_connections(loop, keep_alive):
    async def main():
        server, client, peer = await serve_one(loop, keep_alive=keep_alive)
        sock = peer.transport.get_extra_info('socket')
        assert bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)) == keep_alive
        client.close()
        await peer.lost
        server.close()

    run(loop, main())


@pytest.mark.skipif(versions.CREATE_SERVER_KEEP_ALIVE, reason='asyncio 3.13 added keep_alive')
def test_no_keep_alive_before_3_13(loop):
    async def main():
        with pytest.raises(TypeError, match="unexpected keyword argument 'keep_alive'"):
            await loop.create_server(asyncio.Protocol, '127.0.0.1', 0, keep_alive=True)

    run(loop, main())


# create_server: addresses that cannot be bound

# TEST-NET-1 (RFC 5737): never an address of this host.
UNAVAILABLE = '192.0.2.1'


def test_an_unavailable_address_among_others(loop):
    async def main():
        if versions.CREATE_SERVER_SKIPS_UNAVAILABLE_ADDRESS:
            # 3.13: skipped (its family is most likely disabled); served on the others.
            server = await loop.create_server(asyncio.Protocol, ['127.0.0.1', UNAVAILABLE], 0)
            assert [s.getsockname()[0] for s in server.sockets] == ['127.0.0.1']
            server.close()
            with pytest.raises(OSError, match=r'^could not bind on any address out of '
                                              r"\[\('192\.0\.2\.1', 0\)\]$"):
                await loop.create_server(asyncio.Protocol, UNAVAILABLE, 0)
        else:
            with pytest.raises(OSError) as info:
                await loop.create_server(asyncio.Protocol, ['127.0.0.1', UNAVAILABLE], 0)
            assert info.value.errno == errno.EADDRNOTAVAIL
            assert str(info.value).endswith(
                "error while attempting to bind on address ('192.0.2.1', 0): "
                'cannot assign requested address')

    run(loop, main())


def test_bind_error_message(loop):
    async def main():
        with socket.create_server(('127.0.0.1', 0)) as taken:
            address = taken.getsockname()
            with pytest.raises(OSError) as info:
                await loop.create_server(asyncio.Protocol, *address, reuse_address=False)
        assert info.value.errno == errno.EADDRINUSE
        # 3.13 keeps the errno in the words.
        reason = (f'[errno {errno.EADDRINUSE}] address already in use'
                  if versions.BIND_ERROR_SHOWS_ERRNO else 'address already in use')
        assert info.value.strerror == (f'error while attempting to bind on address '
                                       f'{address!r}: {reason}')

    run(loop, main())


# create_unix_server: the socket file

@pytest.fixture
def socket_path():
    with tempfile.TemporaryDirectory() as tmp:
        yield os.path.join(tmp, 'server.sock')


def test_unix_server_socket_file_on_close(loop, socket_path):
    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, socket_path)
        assert os.path.exists(socket_path)
        server.close()
        # 3.13 removes it; 3.11 leaves it (the next server removes a stale one).
        assert os.path.exists(socket_path) != versions.UNIX_SERVER_CLEANUP_SOCKET

    run(loop, main())


@pytest.mark.parametrize('as_bytes', [False, True])
def test_unix_server_replaces_a_stale_socket_file_but_no_other_file(loop, socket_path,
                                                                     as_bytes):
    path = os.fsencode(socket_path) if as_bytes else socket_path

    async def main():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
            stale.bind(socket_path)  # an earlier run's
        server = await loop.create_unix_server(asyncio.Protocol, path)
        assert server.sockets[0].getsockname() == socket_path
        server.close()
        await server.wait_closed()
        assert os.path.exists(socket_path) != versions.UNIX_SERVER_CLEANUP_SOCKET
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        with open(socket_path, 'wb') as other:
            other.write(b'not a socket')
        with pytest.raises(OSError, match='already in use') as info:
            await loop.create_unix_server(asyncio.Protocol, path)
        assert info.value.errno == errno.EADDRINUSE
        with open(socket_path, 'rb') as other:
            assert other.read() == b'not a socket'

    run(loop, main())


@pytest.mark.skipif(not versions.UNIX_SERVER_CLEANUP_SOCKET,
                    reason='asyncio 3.13 removes the socket file')
def test_unix_server_removes_the_file_of_a_socket_it_was_given(loop, socket_path):
    async def main():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(socket_path)
            server = await loop.create_unix_server(asyncio.Protocol, sock=sock)
            server.close()
            assert not os.path.exists(socket_path)

    run(loop, main())


@pytest.mark.skipif(not versions.UNIX_SERVER_CLEANUP_SOCKET,
                    reason='asyncio 3.13 added cleanup_socket')
def test_unix_server_leaves_a_replaced_file_and_obeys_cleanup_socket(loop, socket_path):
    async def main():
        server = await loop.create_unix_server(asyncio.Protocol, socket_path)
        os.unlink(socket_path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
            other.bind(socket_path)  # someone else's socket, at the same path
            server.close()
            assert os.path.exists(socket_path)
        os.unlink(socket_path)
        server = await loop.create_unix_server(asyncio.Protocol, socket_path,
                                               cleanup_socket=False)
        server.close()
        assert os.path.exists(socket_path)
        # A file already gone is no error.
        server = await loop.create_unix_server(asyncio.Protocol, socket_path)
        os.unlink(socket_path)
        server.close()
        # The streams API passes it through.
        server = await asyncio.start_unix_server(lambda r, w: None, socket_path,
                                                 cleanup_socket=False)
        server.close()
        assert os.path.exists(socket_path)

    run(loop, main())


@pytest.mark.skipif(versions.UNIX_SERVER_CLEANUP_SOCKET,
                    reason='asyncio 3.13 added cleanup_socket')
def test_no_cleanup_socket_before_3_13(loop, socket_path):
    async def main():
        with pytest.raises(TypeError, match="unexpected keyword argument 'cleanup_socket'"):
            await loop.create_unix_server(asyncio.Protocol, socket_path, cleanup_socket=False)

    run(loop, main())


# The context connections run in

request_id = contextvars.ContextVar('request_id', default='unset')


class ContextRecorder(asyncio.Protocol):
    """Records the variable as each callback sees it, then sets it to its own name."""

    def __init__(self, loop, name, seen):
        self.name = name
        self.seen = seen
        self.lost = loop.create_future()
        seen.append((name, 'made by the factory', request_id.get()))

    def connection_made(self, transport):
        self.transport = transport
        self.seen.append((self.name, 'connection_made', request_id.get()))
        request_id.set(self.name)

    def data_received(self, data):
        self.seen.append((self.name, 'data_received', request_id.get()))
        request_id.set(self.name)
        self.transport.close()

    def connection_lost(self, exc):
        self.seen.append((self.name, 'connection_lost', request_id.get()))
        self.lost.set_result(None)


def test_connections_start_from_the_servers_context_and_stay_apart(loop):
    async def main():
        seen = []
        names = iter(['first', 'second'])
        request_id.set('server')
        server = await loop.create_server(lambda: ContextRecorder(loop, next(names), seen),
                                          '127.0.0.1', 0)
        request_id.set('changed after')
        for count in (4, 8):
            with socket.create_connection(server.sockets[0].getsockname()) as client:
                client.sendall(b'hello')
                while len(seen) < count:  # until this connection is lost
                    await asyncio.sleep(0.001)
        server.close()
        # 3.15 runs connection_made in the connection's own context, like its other
        # callbacks; before, in a copy of it, so what it sets is not seen afterwards.
        after_made = (lambda name: name) if versions.CONNECTION_MADE_IN_CONNECTION_CONTEXT \
            else (lambda name: 'server')
        for name in ('first', 'second'):
            assert [s for s in seen if s[0] == name] == [
                (name, 'made by the factory', 'server'),
                (name, 'connection_made', 'server'),
                (name, 'data_received', after_made(name)),
                (name, 'connection_lost', name),
            ]
        # What a connection set stays with it: not seen by the next one, nor here.
        assert request_id.get() == 'changed after'

    run(loop, main())


def test_a_client_connection_starts_from_the_context_it_was_made_in(loop):
    async def main():
        seen = []
        server = await loop.create_server(asyncio.Protocol, '127.0.0.1', 0)
        request_id.set('client')
        transport, protocol = await loop.create_connection(
            lambda: ContextRecorder(loop, 'conn', seen), *server.sockets[0].getsockname())
        request_id.set('changed after')
        await asyncio.sleep(0)
        transport.close()
        await protocol.lost
        server.close()
        assert seen[:2] == [('conn', 'made by the factory', 'client'),
                            ('conn', 'connection_made', 'client')]
        assert request_id.get() == 'changed after'

    run(loop, main())
