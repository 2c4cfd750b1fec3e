"""TLS: start_tls() over the native transports, with asyncio's own TLS protocol."""

import asyncio
import gc
import socket
import ssl
import weakref

import pytest

from conftest import (BufferedContextTrail, ContextTrail, expect_asyncio_bug, in_context_of, run,
                      trail_var)
from ferroloop import versions

test_utils = pytest.importorskip('test.test_asyncio.utils')


def finish_handshake(sock, tls, incoming, outgoing):
    """Drive a memory-BIO TLS handshake over the blocking ``sock`` to its end."""
    while True:
        try:
            tls.do_handshake()
            return
        except ssl.SSLWantReadError:
            if outgoing.pending:
                sock.sendall(outgoing.read())
            incoming.write(sock.recv(65536))


def tls_client_sending_its_hello_with(addr, line):
    """A blocking TLS client (run in a thread): sends ``line`` and its TLS hello in one
    segment, completes the handshake, sends b'ping\\n' over TLS; returns what it reads back."""
    with socket.create_connection(addr, timeout=10) as sock:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = test_utils.simple_client_sslcontext().wrap_bio(incoming, outgoing)
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        sock.sendall(line + outgoing.read())
        finish_handshake(sock, tls, incoming, outgoing)
        tls.write(b'ping\n')
        sock.sendall(outgoing.read())
        while True:
            try:
                return tls.read(1024)
            except ssl.SSLWantReadError:
                incoming.write(sock.recv(65536))


@pytest.mark.skipif(not versions.START_TLS_TAKES_STREAM_BUFFER,
                    reason='asyncio 3.13.13 and 3.14.4 fixed it (before: a hang)')
def test_start_tls_takes_what_the_stream_reader_read_ahead(loop):
    # A STARTTLS-style server reads a plaintext line; the client's TLS hello came in the same
    # segment, so the StreamReader holds it already: start_tls() must hand it to TLS.
    async def main():
        async def handle(reader, writer):
            assert await reader.readline() == b'STARTTLS\n'
            await writer.start_tls(test_utils.simple_server_sslcontext())
            assert await reader.readline() == b'ping\n'
            writer.write(b'pong\n')
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, '127.0.0.1', 0)
        addr = server.sockets[0].getsockname()
        answer = await loop.run_in_executor(None, tls_client_sending_its_hello_with, addr,
                                            b'STARTTLS\n')
        assert answer == b'pong\n'
        server.close()

    run(loop, main())


@pytest.mark.skipif(not versions.START_TLS_FAILURE_WITHOUT_CYCLE,
                    reason='asyncio 3.14.9 and 3.15.1 fixed the reference cycle (ferroloop '
                           "has none of its own, but asyncio's TLS protocol of 3.11 has one)")
def test_a_failed_start_tls_leaves_no_reference_cycle(loop):
    async def main():
        server = await loop.create_server(asyncio.Protocol, '127.0.0.1', 0,
                                          ssl=test_utils.simple_server_sslcontext())
        transport, protocol = await loop.create_connection(asyncio.Protocol,
                                                           *server.sockets[0].getsockname())
        raw = weakref.ref(transport)
        verifying = test_utils.simple_client_sslcontext(disable_verify=False)
        try:
            await loop.start_tls(transport, protocol, verifying, server_hostname='')
        except ssl.SSLCertVerificationError:
            pass  # a self-signed certificate
        else:
            pytest.fail('the handshake succeeded')
        del transport, protocol
        await asyncio.sleep(0.01)  # connection_lost has run: the loop lets go of it
        # Freed by reference counting alone: no cycle through the exception.
        assert raw() is None
        server.close()

    gc.disable()
    try:
        run(loop, main())
    finally:
        gc.enable()


# The context the TLS protocol's callbacks run in: the one start_tls() was called in, not
# the plaintext connection's, whoever closes or writes to the TLS transport.

class GreetingServer(asyncio.Protocol):
    """Sends b'hello' once the TLS handshake is done; ``transports`` gets each connection."""

    def __init__(self, transports):
        self.transports = transports

    def connection_made(self, transport):
        self.transports.append(transport)
        transport.write(b'hello')


async def start_tls_from_another_context(loop, proto):
    """A plaintext connection made in one context, upgraded with start_tls(proto) in
    another; returns the server, the connections it accepted and the TLS transport."""
    accepted = []
    server = await loop.create_server(lambda: GreetingServer(accepted), '127.0.0.1', 0,
                                      ssl=test_utils.simple_server_sslcontext())
    trail_var.set('plaintext')
    transport, _ = await loop.create_connection(asyncio.Protocol,
                                                *server.sockets[0].getsockname())
    trail_var.set('start_tls')
    tls = await loop.start_tls(transport, proto, test_utils.simple_client_sslcontext(),
                               server_hostname='')
    trail_var.set('changed after')
    await proto.received
    return server, accepted, tls


@pytest.mark.parametrize('protocol', [ContextTrail, BufferedContextTrail])
def test_start_tls_protocol_runs_in_the_context_start_tls_was_called_in(request, loop_name, loop,
                                                                     protocol):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_START_TLS_KEEPS_THE_CONNECTIONS_CONTEXT')

    async def main():
        trail_var.set('start_tls')
        proto = protocol(loop)
        server, accepted, tls = await start_tls_from_another_context(loop, proto)
        accepted[0].close()
        await proto.lost
        tls.close()
        server.close()
        first = 'get_buffer' if protocol is BufferedContextTrail else 'data_received'
        assert proto.first_seen()[first] == 'start_tls'
        assert proto.trail[-1][0] == 'connection_lost'
        # Every callback saw the context start_tls() was called in, or what an earlier
        # callback set there: never the plaintext connection's, nor the caller's later one.
        callbacks = {name for name, _ in proto.trail}
        assert {value for _, value in proto.trail[1:]} <= callbacks | {'start_tls'}

    run(loop, main())


@pytest.mark.parametrize('protocol', [ContextTrail, BufferedContextTrail])
def test_start_tls_protocol_stays_in_its_context_whoever_writes_and_closes(
        request, loop_name, loop, protocol):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_CALLBACKS_IN_CALLERS_CONTEXT')

    async def main():
        trail_var.set('start_tls')
        proto = protocol(loop)
        server, accepted, tls = await start_tls_from_another_context(loop, proto)
        # The server reads nothing: what the client writes piles up until it is paused.
        accepted[0].pause_reading()
        tls.set_write_buffer_limits(high=1)
        for _ in range(1000):
            if proto.paused.done():
                break
            in_context_of('writer', tls.write, b'x' * 65536)
            await asyncio.sleep(0)
        await proto.paused
        accepted[0].resume_reading()
        await proto.resumed
        # close() reads what is left, calling the protocol, before it shuts TLS down.
        in_context_of('closer', tls.close)
        await proto.lost
        server.close()
        assert proto.first_seen()['pause_writing'] not in ('writer', 'closer')
        callbacks = {name for name, _ in proto.trail}
        assert {value for _, value in proto.trail[1:]} <= callbacks | {'start_tls'}

    run(loop, main())


def tls_server_writing_after_the_clients_close_notify(listener):
    """A blocking TLS server (run in a thread): completes the handshake, waits for the
    client's close_notify, sends application data after it, then its own close_notify."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = test_utils.simple_server_sslcontext().wrap_bio(incoming, outgoing,
                                                             server_side=True)
        finish_handshake(conn, tls, incoming, outgoing)
        tls.write(b'hello')  # the client closes once it has this
        conn.sendall(outgoing.read())
        incoming.write(conn.recv(65536))  # the client's close_notify, not read yet
        tls.write(b'late data')
        conn.sendall(outgoing.read())
        try:
            tls.unwrap()
        except ssl.SSLError:
            pass
        conn.sendall(outgoing.read())


def test_tls_data_after_close_notify_is_discarded_not_an_error(request, loop_name, loop):
    # The client closed (sent close_notify); the server had data on the way: it is dropped,
    # and the connection ends cleanly (as on uvloop).
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_TLS_DATA_AFTER_CLOSE_NOTIFY_FAILS')
    reported = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))

    async def main():
        with socket.create_server(('127.0.0.1', 0)) as listener:
            serving = loop.run_in_executor(None, tls_server_writing_after_the_clients_close_notify,
                                           listener)
            transport, proto = await loop.create_connection(
                lambda: ContextTrail(loop), *listener.getsockname(),
                ssl=test_utils.simple_client_sslcontext(), server_hostname='')
            await proto.received
            transport.close()
            exc = await proto.lost
            await serving
        assert exc is None
        assert reported == []
        assert [name for name, _ in proto.trail] == [
            'factory', 'made', 'data_received', 'eof_received', 'connection_lost']

    run(loop, main())
