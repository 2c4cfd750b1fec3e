"""sendfile: loop.sock_sendfile and loop.sendfile (os.sendfile and the fallback)."""

import asyncio
import io
import os
import socket
import tempfile

import pytest
from conftest import expect_asyncio_bug

from ferroloop import versions

DATA = os.urandom(1024 * 1024 + 123)
SMALL_BUFFER = 4096


@pytest.fixture(scope='module')
def data_path():
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(DATA)
    yield f.name
    os.unlink(f.name)


@pytest.fixture
def data_file(data_path):
    with open(data_path, 'rb') as f:
        yield f


class Receiver(asyncio.Protocol):
    """The server side: collects everything, optionally hangs up after `close_after` bytes."""

    def __init__(self, loop, close_after=0, small_window=False):
        self.data = bytearray()
        self.close_after = close_after
        self.small_window = small_window or bool(close_after)
        self.transport = None
        self.lost = loop.create_future()

    def connection_made(self, transport):
        self.transport = transport
        if self.small_window:
            # Small, so the sender is still sending when this side hangs up or stops reading.
            # (Not for the other tests: a tiny receive window on loopback stalls on delayed
            # ACKs.)
            transport.get_extra_info('socket').setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                                          SMALL_BUFFER)

    def data_received(self, data):
        self.data += data
        if self.close_after and len(self.data) >= self.close_after:
            self.transport.close()

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


async def serve(loop, close_after=0, small_window=False):
    """A server with one receiver; returns (server, receiver, address)."""
    receiver = Receiver(loop, close_after, small_window)
    server = await loop.create_server(lambda: receiver, '127.0.0.1', 0)
    return server, receiver, server.sockets[0].getsockname()


async def connected_socket(loop, address):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, address)
    # Small buffers: the transfer needs many rounds of "wait until writable".
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    return sock


async def end_transfer(client, receiver, server):
    """Closes the sending side (a socket or a transport), waits until the receiver has seen
    the connection end, closes the server; returns all that the receiver got."""
    client.close()
    await receiver.lost
    server.close()
    return bytes(receiver.data)


# ---------------------------------------------------------------------------------------
# loop.sock_sendfile

def test_sock_sendfile_sends_the_whole_file(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop)
        sock = await connected_socket(loop, address)
        sent = await loop.sock_sendfile(sock, data_file)
        return sent, await end_transfer(sock, receiver, server)

    sent, received = run_async(main())
    assert sent == len(DATA)
    assert received == DATA
    assert data_file.tell() == len(DATA)


def test_sock_sendfile_with_offset_and_count(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop)
        sock = await connected_socket(loop, address)
        sent = await loop.sock_sendfile(sock, data_file, 1000, 300_000)
        return sent, await end_transfer(sock, receiver, server)

    sent, received = run_async(main())
    assert sent == 300_000
    assert received == DATA[1000:301_000]
    assert data_file.tell() == 301_000


def test_sock_sendfile_mixes_with_regular_sends(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop)
        sock = await connected_socket(loop, address)
        await loop.sock_sendall(sock, b'head')
        sent = await loop.sock_sendfile(sock, data_file, count=10_000)
        await loop.sock_sendall(sock, b'tail')
        return sent, await end_transfer(sock, receiver, server)

    sent, received = run_async(main())
    assert sent == 10_000
    assert received == b'head' + DATA[:10_000] + b'tail'


def test_sock_sendfile_of_an_empty_file(loop, run_async):
    async def main():
        server, receiver, address = await serve(loop)
        sock = await connected_socket(loop, address)
        with tempfile.TemporaryFile() as empty:
            assert await loop.sock_sendfile(sock, empty) == 0
            assert empty.tell() == 0
        await end_transfer(sock, receiver, server)

    run_async(main())


def test_sock_sendfile_falls_back_for_non_regular_files(loop, run_async):
    payload = os.urandom(100_000)

    async def main():
        server, receiver, address = await serve(loop)
        sock = await connected_socket(loop, address)
        stream = io.BytesIO(payload)
        with pytest.raises(asyncio.SendfileNotAvailableError, match='not a regular file'):
            await loop.sock_sendfile(sock, stream, fallback=False)
        sent = await loop.sock_sendfile(sock, stream, 10)
        assert stream.tell() == len(payload)
        return sent, await end_transfer(sock, receiver, server)

    sent, received = run_async(main())
    assert sent == len(payload) - 10
    assert received == payload[10:]


@pytest.mark.parametrize('kwargs, error, message', [
    ({'offset': -1}, ValueError, r'^offset must be a non-negative integer \(got -1\)$'),
    ({'offset': 1.5}, TypeError, r'^offset must be a non-negative integer \(got 1\.5\)$'),
    ({'count': 0}, ValueError, r'^count must be a positive integer \(got 0\)$'),
    ({'count': '10'}, TypeError, r"^count must be a positive integer \(got '10'\)$"),
])
def test_sock_sendfile_argument_checks(loop, run_async, data_file, kwargs, error, message):
    async def main():
        with socket.socket() as sock:
            sock.setblocking(False)
            with pytest.raises(error, match=message):
                await loop.sock_sendfile(sock, data_file, **kwargs)

    run_async(main())


def test_sock_sendfile_needs_a_binary_file_and_a_stream_socket(loop, run_async, data_path,
                                                               data_file):
    async def main(text):
        with socket.socket() as sock:
            sock.setblocking(False)
            with pytest.raises(ValueError, match='^file should be opened in binary mode$'):
                await loop.sock_sendfile(sock, text)
        with socket.socket(type=socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            with pytest.raises(ValueError,
                               match='^only SOCK_STREAM type sockets are supported$'):
                await loop.sock_sendfile(sock, data_file)

    with open(data_path, encoding='latin-1') as text:
        run_async(main(text))


def test_sock_sendfile_peer_hanging_up_mid_transfer(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop, close_after=1024)
        sock = await connected_socket(loop, address)
        with pytest.raises(ConnectionError):
            await loop.sock_sendfile(sock, data_file)
        await end_transfer(sock, receiver, server)

    run_async(main())
    # The file position says how far it got.
    assert 1024 <= data_file.tell() < len(DATA)


async def cancel_a_stalled_transfer(loop, receiver, transfer):
    """Start ``transfer`` (a coroutine) while the receiver does not read, so that it stalls
    once the buffers are full, and cancel it mid-way."""
    while receiver.transport is None:
        await asyncio.sleep(0)
    receiver.transport.pause_reading()
    task = loop.create_task(transfer)
    for _ in range(10):
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def check_cut_stream(received, position):
    """The stream: a prefix of the file, as far as the file position says, then b'TAIL'."""
    assert received.endswith(b'TAIL')
    sent = len(received) - 4
    assert 0 < sent < len(DATA)
    assert received[:sent] == DATA[:sent]
    assert position == sent


def test_sock_sendfile_can_be_cancelled(request, loop_name, loop, run_async, data_file):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_SENDFILE_CANCEL_LEAVES_THE_POSITION')

    async def main():
        server, receiver, address = await serve(loop, small_window=True)
        sock = await connected_socket(loop, address)
        await cancel_a_stalled_transfer(loop, receiver, loop.sock_sendfile(sock, data_file))
        # The socket is free for other operations: the rest of the stream follows what
        # sendfile had sent.
        receiver.transport.resume_reading()
        await loop.sock_sendall(sock, b'TAIL')
        return await end_transfer(sock, receiver, server)

    received = run_async(main())
    # The file position says how far it got, cancelled or not.
    check_cut_stream(received, data_file.tell())


def test_sock_sendfile_over_a_unix_socket(loop, run_async, data_file):
    async def main():
        left, right = socket.socketpair()
        with left, right:
            left.setblocking(False)
            right.setblocking(False)
            sender = loop.create_task(loop.sock_sendfile(left, data_file, 10, 500_000))
            received = bytearray()
            while len(received) < 500_000:
                received += await loop.sock_recv(right, 65536)
            return await sender, bytes(received)

    sent, received = run_async(main())
    assert sent == 500_000
    assert received == DATA[10:500_010]
    assert data_file.tell() == 500_010


def test_sock_sendfile_count_past_the_end_of_the_file(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop)
        sock = await connected_socket(loop, address)
        sent = await loop.sock_sendfile(sock, data_file, len(DATA) - 100, 1000)
        return sent, await end_transfer(sock, receiver, server)

    sent, received = run_async(main())
    assert sent == 100
    assert received == DATA[-100:]
    assert data_file.tell() == len(DATA)


def test_sock_sendfile_of_a_pipe_is_not_available(request, loop_name, loop, run_async):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_SENDFILE_SEEK_ERROR_HIDES_NOT_AVAILABLE')
    # A pipe has a descriptor but sendfile(2) cannot read it: the first call fails, nothing
    # is consumed, and without fallback that is SendfileNotAvailableError.
    async def main(reader):
        server, receiver, address = await serve(loop)
        sock = await connected_socket(loop, address)
        try:
            with pytest.raises(asyncio.SendfileNotAvailableError,
                               match='^os.sendfile call failed$'):
                await loop.sock_sendfile(sock, reader, count=5, fallback=False)
        finally:
            received = await end_transfer(sock, receiver, server)
        return received

    read_fd, write_fd = os.pipe()
    os.write(write_fd, b'0123456789')
    os.close(write_fd)
    with open(read_fd, 'rb', buffering=0) as reader:
        assert run_async(main(reader)) == b''
        assert reader.read() == b'0123456789'


# ---------------------------------------------------------------------------------------
# loop.sendfile

async def client_transport(loop, address):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect(address)
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    transport.set_write_buffer_limits(high=SMALL_BUFFER)
    return transport


def test_sendfile_through_a_transport_keeps_write_order(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop)
        transport = await client_transport(loop, address)
        transport.write(b'PREFIX' * 10_000)
        assert transport.is_reading()
        sent = await loop.sendfile(transport, data_file)
        assert transport.is_reading()  # resumed afterwards
        transport.write(b'SUFFIX')
        return sent, await end_transfer(transport, receiver, server)

    sent, received = run_async(main())
    assert sent == len(DATA)
    assert received == b'PREFIX' * 10_000 + DATA + b'SUFFIX'
    assert data_file.tell() == len(DATA)


def test_sendfile_can_be_cancelled(request, loop_name, loop, run_async, data_file):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_SENDFILE_CANCEL_LEAVES_THE_POSITION')

    async def main():
        server, receiver, address = await serve(loop, small_window=True)
        transport = await client_transport(loop, address)
        await cancel_a_stalled_transfer(loop, receiver, loop.sendfile(transport, data_file))
        position = data_file.tell()
        # The transport is usable again, reading resumed: what follows comes after the part
        # of the file sent.
        assert transport.is_reading()
        receiver.transport.resume_reading()
        transport.write(b'TAIL')
        return position, await end_transfer(transport, receiver, server)

    position, received = run_async(main())
    check_cut_stream(received, position)


def test_sendfile_partial(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop)
        transport = await client_transport(loop, address)
        sent = await loop.sendfile(transport, data_file, 5000, 100)
        return sent, await end_transfer(transport, receiver, server)

    sent, received = run_async(main())
    assert sent == 100
    assert received == DATA[5000:5100]
    assert data_file.tell() == 5100


def test_sendfile_refuses_writes_while_in_progress(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop)
        transport = await client_transport(loop, address)
        task = loop.create_task(loop.sendfile(transport, data_file))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match='unable to write; sendfile is in progress'):
            transport.write(b'data')
        assert await task == len(DATA)
        return await end_transfer(transport, receiver, server)

    assert run_async(main()) == DATA


def test_sendfile_on_a_closing_transport(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop)
        transport = await client_transport(loop, address)
        transport.close()
        with pytest.raises(RuntimeError, match='^Transport is closing$'):
            await loop.sendfile(transport, data_file)
        await receiver.lost
        server.close()

    run_async(main())
    assert data_file.tell() == 0


def test_sendfile_of_a_non_regular_file_uses_the_fallback(loop, run_async):
    payload = os.urandom(200_000)

    async def main():
        server, receiver, address = await serve(loop)
        transport = await client_transport(loop, address)
        with pytest.raises(asyncio.SendfileNotAvailableError):
            await loop.sendfile(transport, io.BytesIO(payload), fallback=False)
        assert transport.is_reading()
        sent = await loop.sendfile(transport, io.BytesIO(payload))
        transport.write(b'!')
        return sent, await end_transfer(transport, receiver, server)

    sent, received = run_async(main())
    assert sent == len(payload)
    assert received == payload + b'!'


def test_sendfile_peer_hanging_up_mid_transfer(loop, run_async, data_file):
    async def main():
        server, receiver, address = await serve(loop, close_after=1024)
        transport = await client_transport(loop, address)
        with pytest.raises(ConnectionError):
            await loop.sendfile(transport, data_file)
        await receiver.lost
        server.close()
        transport.close()

    run_async(main())
    assert 1024 <= data_file.tell() < len(DATA)


def test_sendfile_is_not_supported_on_datagram_transports(loop, run_async, data_file):
    async def main():
        tr, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    family=socket.AF_INET)
        with pytest.raises(RuntimeError, match='sendfile is not supported for transport'):
            await loop.sendfile(tr, data_file)
        tr.close()

    run_async(main())
    assert data_file.tell() == 0


# Where the file position ends

# From asyncio 3.13.14 and 3.14.6 on, the position is set to the offset after the last byte
# sent even when nothing was; before, a transfer that sent nothing left it where it was.
POSITION_AFTER_NOTHING_SENT = len(DATA) if versions.SENDFILE_ALWAYS_SEEKS else 123


@pytest.mark.parametrize('fallback', [False, True])
def test_sendfile_from_the_end_of_the_file_moves_the_file_position(loop, run_async, data_file,
                                                                  fallback):
    async def main():
        server, receiver, address = await serve(loop)
        transport, _ = await loop.create_connection(asyncio.Protocol, *address)
        data_file.seek(123)
        assert await loop.sendfile(transport, data_file, len(DATA), fallback=fallback) == 0
        assert data_file.tell() == POSITION_AFTER_NOTHING_SENT
        assert await end_transfer(transport, receiver, server) == b''

    run_async(main())


def test_sock_sendfile_from_the_end_of_the_file_moves_the_file_position(loop, run_async,
                                                                       data_file):
    async def main():
        server, receiver, address = await serve(loop)
        sock = await connected_socket(loop, address)
        data_file.seek(123)
        assert await loop.sock_sendfile(sock, data_file, len(DATA)) == 0
        assert data_file.tell() == POSITION_AFTER_NOTHING_SENT
        assert await end_transfer(sock, receiver, server) == b''

    run_async(main())


def test_fallback_from_offset_zero(loop, run_async):
    # A file with no descriptor takes the fallback. Offset 0 means the start of the file from
    # asyncio 3.13.14 and 3.14.6 on; before, it meant where the file was.
    async def main():
        server, receiver, address = await serve(loop)
        sock = await connected_socket(loop, address)
        source = io.BytesIO(b'0123456789')
        source.seek(4)
        sent = await loop.sock_sendfile(sock, source)
        expected = b'0123456789' if versions.SENDFILE_ALWAYS_SEEKS else b'456789'
        assert sent == len(expected)
        # Then it sets the position to offset + sent: 6 when 6 bytes were sent from 4.
        assert source.tell() == len(expected)
        assert await end_transfer(sock, receiver, server) == expected

    run_async(main())
