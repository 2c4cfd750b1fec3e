"""Pipes: connect_read_pipe / connect_write_pipe over pipes, sockets and ptys."""

import asyncio
import contextlib
import errno
import os
import socket
import subprocess
import sys
import tempfile
import tty

import pytest

from conftest import (ContextTrail, RecordingProtocol, close_and_collect, expect_asyncio_bug,
                      in_context_of, trail_var)


class Recorder(RecordingProtocol, asyncio.Protocol):
    """Records what a read-pipe transport does to its protocol, and the data it delivers.
    (A write-pipe transport's protocol is a plain RecordingProtocol.)"""

    def __init__(self, loop):
        super().__init__(loop)
        self.data = bytearray()

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.events.append('eof')


async def iterations(n=5):
    for _ in range(n):
        await asyncio.sleep(0)


def reader(fd):
    """The read end of a pipe (or pty, or socket) as an unbuffered file object."""
    return open(fd, 'rb', 0)


def writer(fd):
    """The write end, likewise."""
    return open(fd, 'wb', 0)


def read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)


def run_then_close(run_async, coro, fd):
    """Runs ``coro``, then closes ``fd``: the end of the pipe that no transport owns, which
    the test keeps open so that the transport's end stays connected."""
    try:
        return run_async(coro)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------
# Read pipes.

def test_read_pipe_delivers_data_then_eof_then_connection_lost(loop, run_async):
    rfd, wfd = os.pipe()
    pipe = reader(rfd)

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: Recorder(loop), pipe)
        assert proto.events == ['made']
        assert isinstance(transport, asyncio.ReadTransport)
        assert transport.get_extra_info('pipe') is pipe
        assert transport.get_protocol() is proto
        assert transport.is_reading() and not transport.is_closing()
        os.write(wfd, b'hello ')
        os.write(wfd, b'world')
        os.close(wfd)
        assert await proto.lost is None
        assert bytes(proto.data) == b'hello world'
        assert proto.events == ['made', 'eof', 'lost']
        assert transport.is_closing()
        assert pipe.closed

    run_async(main())


def test_read_pipe_large_transfer_arrives_whole(loop, run_async):
    rfd, wfd = os.pipe()
    payload = os.urandom(3 * 1024 * 1024 + 17)

    async def main():
        _, proto = await loop.connect_read_pipe(lambda: Recorder(loop), reader(rfd))

        def write_everything():
            with writer(wfd) as w:
                w.write(payload)

        await asyncio.gather(loop.run_in_executor(None, write_everything), proto.lost)
        assert bytes(proto.data) == payload

    run_async(main())


def test_read_pipe_pause_and_resume_reading(loop, run_async):
    rfd, wfd = os.pipe()

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: Recorder(loop),
                                                        reader(rfd))
        transport.pause_reading()
        assert not transport.is_reading()
        os.write(wfd, b'held back')
        await iterations()
        assert proto.data == b''
        transport.resume_reading()
        assert transport.is_reading()
        os.close(wfd)
        await proto.lost
        assert proto.data == b'held back'

    run_async(main())


def test_read_pipe_close_calls_connection_lost_without_eof(loop, run_async):
    rfd, wfd = os.pipe()

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: Recorder(loop),
                                                        reader(rfd))
        transport.close()
        assert transport.is_closing() and not transport.is_reading()
        transport.close()  # idempotent
        assert await proto.lost is None
        assert proto.events == ['made', 'lost']

    run_then_close(run_async, main(), wfd)


def test_read_pipe_over_a_socket(loop, run_async):
    rsock, wsock = socket.socketpair()

    async def main():
        pipe = reader(rsock.detach())
        _, proto = await loop.connect_read_pipe(lambda: Recorder(loop), pipe)
        wsock.sendall(b'over a socket')
        wsock.close()
        await proto.lost
        assert proto.data == b'over a socket'
        assert proto.events == ['made', 'eof', 'lost']

    run_async(main())


def test_read_pty_reports_eio_quietly_when_the_other_side_closes(loop, run_async):
    master, slave = os.openpty()
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    async def main():
        _, proto = await loop.connect_read_pipe(lambda: Recorder(loop), reader(master))
        os.write(slave, b'abc')
        while len(proto.data) < 3:
            await asyncio.sleep(0)
        os.close(slave)
        exc = await proto.lost
        # Linux reports a pty whose slave side is gone with EIO: the end of the stream, not
        # an error worth reporting; connection_lost gets it.
        assert isinstance(exc, OSError) and exc.errno == errno.EIO
        assert proto.data == b'abc'

    run_async(main())
    assert errors == []


def test_read_pipe_refuses_a_regular_file(loop, run_async):
    with tempfile.TemporaryFile() as f, \
            pytest.raises(ValueError, match=r'^Pipe transport is for pipes/sockets only\.$'):
        run_async(loop.connect_read_pipe(asyncio.Protocol, f))


def test_read_pipe_data_received_error_goes_to_the_exception_handler(loop, run_async):
    rfd, wfd = os.pipe()
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    class Failing(Recorder):
        def data_received(self, data):
            super().data_received(data)
            raise ZeroDivisionError('in data_received')

    async def main():
        transport, proto = await loop.connect_read_pipe(lambda: Failing(loop),
                                                        reader(rfd))
        os.write(wfd, b'x')
        while not errors:
            await asyncio.sleep(0)
        # As with asyncio: reported, and the transport stays open.
        assert not transport.is_closing()
        os.write(wfd, b'y')
        os.close(wfd)
        await proto.lost
        assert proto.data == b'xy'

    run_async(main())
    assert [type(c['exception']) for c in errors] == [ZeroDivisionError] * 2


def test_stream_reader_reads_everything_a_child_process_wrote_to_a_pipe(loop, run_async):
    # What test_streams.test_read_all_from_pipe_reader checks, with the child started by
    # subprocess.Popen: a StreamReader with a tiny limit reads a pipe to its end.
    rfd, wfd = os.pipe()
    code = 'import os, sys; fd = int(sys.argv[1]); os.write(fd, b"data" * 1000); os.close(fd)'

    def spawn():
        return subprocess.Popen([sys.executable, '-c', code, str(wfd)], pass_fds={wfd})

    async def main():
        stream = asyncio.StreamReader(limit=1)
        protocol = asyncio.StreamReaderProtocol(stream)
        transport, _ = await loop.connect_read_pipe(lambda: protocol, reader(rfd))
        proc = spawn()
        os.close(wfd)
        data = await stream.read(-1)
        await loop.run_in_executor(None, proc.wait)
        assert data == b'data' * 1000
        transport.close()

    run_async(main())


# ---------------------------------------------------------------------------------------
# Write pipes.

def test_write_pipe_writes_and_closes(loop, run_async):
    rfd, wfd = os.pipe()
    pipe = writer(wfd)

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: RecordingProtocol(loop), pipe)
        assert isinstance(transport, asyncio.WriteTransport)
        assert transport.get_extra_info('pipe') is pipe
        assert transport.can_write_eof()
        transport.write(b'one ')
        transport.writelines([b'two ', bytearray(b'three '), memoryview(b'four')])
        assert transport.get_write_buffer_size() == 0  # a pipe this empty takes it all
        transport.close()
        assert transport.is_closing()
        assert await proto.lost is None
        assert proto.events == ['made', 'lost']
        assert pipe.closed

    run_async(main())
    try:
        assert read_all(rfd) == b'one two three four'
    finally:
        os.close(rfd)


def test_write_pipe_refuses_a_regular_file(loop, run_async):
    message = r'^Pipe transport is only for pipes, sockets and character devices$'
    with tempfile.TemporaryFile() as f, pytest.raises(ValueError, match=message):
        run_async(loop.connect_write_pipe(asyncio.BaseProtocol, f))


def test_write_pipe_refuses_non_bytes(loop, run_async):
    rfd, wfd = os.pipe()

    async def main():
        transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, writer(wfd))
        # asyncio asserts (AssertionError); ferroloop raises TypeError, as stream transports do.
        with pytest.raises((TypeError, AssertionError)):
            transport.write('text')
        transport.close()
        await iterations()

    run_then_close(run_async, main(), rfd)


def test_write_pipe_large_transfer_with_flow_control(loop, run_async):
    rfd, wfd = os.pipe()
    payload = os.urandom(4 * 1024 * 1024 + 3)

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: RecordingProtocol(loop),
                                                         writer(wfd))
        transport.set_write_buffer_limits(high=64 * 1024)
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        received = loop.run_in_executor(None, read_all, rfd)
        # The pipe holds far less than this: the rest is buffered and the protocol paused.
        transport.write(payload)
        assert transport.get_write_buffer_size() > 64 * 1024
        assert proto.events == ['made', 'pause']
        await proto.resumed
        assert transport.get_write_buffer_size() <= 16 * 1024
        transport.close()
        assert await proto.lost is None
        assert await received == payload
        assert proto.events == ['made', 'pause', 'resume', 'lost']

    run_then_close(run_async, main(), rfd)


def test_write_pipe_flushes_buffered_data_before_connection_lost(loop, run_async):
    rfd, wfd = os.pipe()
    payload = b'z' * (1024 * 1024)

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: RecordingProtocol(loop),
                                                         writer(wfd))
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        transport.write_eof()
        assert transport.is_closing()
        # After close, writes are dropped silently (asyncio's pipe contract).
        transport.write(b'dropped')
        received = loop.run_in_executor(None, read_all, rfd)
        assert await proto.lost is None
        assert await received == payload

    run_then_close(run_async, main(), rfd)


def test_write_pipe_abort_drops_buffered_data(loop, run_async):
    rfd, wfd = os.pipe()

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: RecordingProtocol(loop),
                                                         writer(wfd))
        transport.write(b'a' * (1024 * 1024))
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        assert transport.get_write_buffer_size() == 0
        assert await proto.lost is None
        return read_all(rfd)

    data = run_then_close(run_async, main(), rfd)
    assert 0 < len(data) < 1024 * 1024


def test_write_pipe_peer_closing_with_pending_data_is_a_broken_pipe(loop, run_async):
    rfd, wfd = os.pipe()
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: RecordingProtocol(loop),
                                                         writer(wfd))
        transport.write(b'x' * (1024 * 1024))
        assert transport.get_write_buffer_size() > 0
        os.close(rfd)  # the reader goes away mid-write
        exc = await proto.lost
        assert isinstance(exc, BrokenPipeError)
        assert transport.is_closing()
        assert transport.get_write_buffer_size() == 0
        transport.write(b'after')  # dropped, no error

    run_async(main())
    assert errors == []


def test_write_pipe_peer_closing_with_nothing_pending_is_a_clean_close(loop, run_async):
    rfd, wfd = os.pipe()

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: RecordingProtocol(loop),
                                                         writer(wfd))
        transport.write(b'small')
        os.close(rfd)
        assert await proto.lost is None
        assert transport.is_closing()

    run_async(main())


def test_write_pipe_over_a_socket_notices_the_peer_closing(loop, run_async):
    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)

    async def main():
        pipe = writer(wsock.detach())
        transport, proto = await loop.connect_write_pipe(lambda: RecordingProtocol(loop), pipe)
        transport.write(b'1')
        assert await loop.sock_recv(rsock, 1024) == b'1'
        rsock.close()
        assert await proto.lost is None
        assert proto.events == ['made', 'lost']

    run_async(main())


def test_write_pipe_pause_writing_error_goes_to_the_exception_handler(loop, run_async):
    rfd, wfd = os.pipe()
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))

    class Failing(RecordingProtocol):
        def pause_writing(self):
            raise ZeroDivisionError('in pause_writing')

    async def main():
        transport, proto = await loop.connect_write_pipe(lambda: Failing(loop),
                                                         writer(wfd))
        transport.write(b'x' * (1024 * 1024))
        assert [c['message'] for c in errors] == ['protocol.pause_writing() failed']
        assert isinstance(errors[0]['exception'], ZeroDivisionError)
        assert errors[0]['exception'].__traceback__ is not None  # logged with its traceback
        assert errors[0]['transport'] is transport
        assert errors[0]['protocol'] is proto
        transport.abort()
        await proto.lost

    run_then_close(run_async, main(), rfd)


def test_write_pipe_bad_water_marks(loop, run_async):
    rfd, wfd = os.pipe()

    async def main():
        transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, writer(wfd))
        with pytest.raises(ValueError, match=r'high \(1\) must be >= low \(2\) must be >= 0'):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.close()
        await iterations()

    run_then_close(run_async, main(), rfd)


def test_bidirectional_pty(loop, run_async):
    master, slave = os.openpty()
    write_slave = os.dup(slave)
    tty.setraw(slave)

    async def main():
        read_tr, read_proto = await loop.connect_read_pipe(lambda: Recorder(loop),
                                                           reader(slave))
        write_tr, write_proto = await loop.connect_write_pipe(lambda: RecordingProtocol(loop),
                                                              writer(write_slave))
        write_tr.write(b'to master')
        got = b''
        while len(got) < 9:
            got += await loop.run_in_executor(None, os.read, master, 1024)
        assert got == b'to master'
        os.write(master, b'to slave')
        while len(read_proto.data) < 8:
            await asyncio.sleep(0)
        assert read_proto.data == b'to slave'
        os.close(master)
        read_tr.close()
        write_tr.close()
        await read_proto.lost
        assert await write_proto.lost is None

    run_async(main())


def test_unclosed_pipe_transports_warn_and_close_their_pipe(loop, run_async):
    rfd, wfd = os.pipe()
    rpipe, wpipe = reader(rfd), writer(wfd)

    async def main():
        await loop.connect_read_pipe(asyncio.Protocol, rpipe)
        await loop.connect_write_pipe(asyncio.BaseProtocol, wpipe)

    run_async(main())
    with pytest.warns(ResourceWarning, match='unclosed transport'):
        close_and_collect(loop)
    assert rpipe.closed and wpipe.closed


# ---------------------------------------------------------------------------------------
# The context the protocol's callbacks run in: the one the pipe was connected in (with what
# the factory set there), whoever calls close() or write().

def test_read_pipe_callbacks_run_in_the_context_it_was_connected_in(loop, run_async):
    rfd, wfd = os.pipe()

    async def main():
        trail_var.set('connecting')
        _, proto = await loop.connect_read_pipe(lambda: ContextTrail(loop), reader(rfd))
        trail_var.set('changed after')
        os.write(wfd, b'data')
        await proto.received
        os.close(wfd)
        await proto.lost
        assert proto.trail[:-1] == [('factory', 'connecting'), ('made', 'factory'),
                                    ('data_received', 'factory'),
                                    ('eof_received', 'data_received')]
        # asyncio runs connection_lost in its own copy of the context, made before
        # eof_received ran; ferroloop (as uvloop) in the transport's, after it.
        assert proto.trail[-1] in (('connection_lost', 'data_received'),
                                   ('connection_lost', 'eof_received'))
        assert trail_var.get() == 'changed after'

    run_async(main())


def test_read_pipe_factory_and_connection_lost_run_in_its_context_not_the_callers(
        request, loop_name, loop, run_async):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_CALLBACKS_IN_CALLERS_CONTEXT')
    rfd, wfd = os.pipe()

    async def main():
        trail_var.set('connecting')
        transport, proto = await loop.connect_read_pipe(lambda: ContextTrail(loop),
                                                        reader(rfd))
        # The factory ran in the transport's context, not in this one.
        assert trail_var.get() == 'connecting'
        os.write(wfd, b'data')
        await proto.received
        in_context_of('closer', transport.close)
        await proto.lost
        assert proto.trail[-1] == ('connection_lost', 'data_received')

    run_then_close(run_async, main(), wfd)


def test_write_pipe_callbacks_run_in_its_context_whoever_writes_and_closes(
        request, loop_name, loop, run_async):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_CALLBACKS_IN_CALLERS_CONTEXT')
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)

    async def main():
        trail_var.set('connecting')
        transport, proto = await loop.connect_write_pipe(lambda: ContextTrail(loop),
                                                         writer(wfd))
        transport.set_write_buffer_limits(high=1)
        in_context_of('writer', transport.write, b'x' * (1 << 20))
        await proto.paused
        while not proto.resumed.done():
            with contextlib.suppress(BlockingIOError):
                os.read(rfd, 1 << 20)
            await asyncio.sleep(0.001)
        in_context_of('closer', transport.close)
        await proto.lost
        assert proto.trail == [('factory', 'connecting'), ('made', 'factory'),
                               ('pause_writing', 'factory'),
                               ('resume_writing', 'pause_writing'),
                               ('connection_lost', 'resume_writing')]

    run_then_close(run_async, main(), rfd)
