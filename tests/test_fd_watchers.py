"""add_reader/add_writer/remove_reader/remove_writer on sockets, pipes and file objects."""

import errno
import os
import socket

import pytest

from conftest import run_until


@pytest.fixture
def socketpair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


class FileLike:
    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return self.fd

    def __repr__(self):
        return '<FileLike>'


def test_reader_is_called_with_its_arguments_when_data_arrives(loop, socketpair):
    a, b = socketpair
    seen = []

    def on_readable(sock, tag):
        seen.append((tag, sock.recv(100)))

    assert loop.add_reader(a, on_readable, a, 'tag') is None
    b.send(b'hello')
    run_until(loop, lambda: seen)
    assert seen == [('tag', b'hello')]
    assert loop.remove_reader(a) is True


def test_reader_on_a_raw_fd_of_a_pipe(loop, pipe):
    r, w = pipe
    seen = []
    loop.add_reader(r, lambda: seen.append(os.read(r, 100)))
    os.write(w, b'through the pipe')
    run_until(loop, lambda: seen)
    assert seen == [b'through the pipe']
    assert loop.remove_reader(r) is True


def test_writer_on_a_pipe(loop, pipe):
    r, w = pipe
    seen = []

    def on_writable():
        seen.append(os.write(w, b'x'))
        loop.remove_writer(w)

    loop.add_writer(w, on_writable)
    run_until(loop, lambda: seen)
    assert seen == [1]
    assert os.read(r, 10) == b'x'


def test_object_with_fileno_is_accepted(loop, socketpair):
    a, b = socketpair
    seen = []
    loop.add_reader(FileLike(a.fileno()), lambda: seen.append(a.recv(10)))
    b.send(b'x')
    run_until(loop, lambda: seen)
    assert seen == [b'x']
    # The same fd, named by number or by another object, is the same registration.
    assert loop.remove_reader(a.fileno()) is True
    assert loop.remove_reader(FileLike(a.fileno())) is False


def test_reader_is_level_triggered(loop, socketpair):
    # A reader that takes only part of the data is called again for the rest.
    a, b = socketpair
    chunks = []

    def read_one_byte():
        chunks.append(a.recv(1))

    loop.add_reader(a, read_one_byte)
    b.send(b'abcdef')
    run_until(loop, lambda: len(chunks) == 6)
    loop.remove_reader(a)
    assert b''.join(chunks) == b'abcdef'


def test_writer_is_level_triggered(loop, socketpair):
    a, _ = socketpair
    calls = []
    loop.add_writer(a, lambda: calls.append(1))
    run_until(loop, lambda: len(calls) >= 3)
    assert loop.remove_writer(a) is True


def test_adding_a_reader_again_replaces_the_first(loop, socketpair):
    a, b = socketpair
    seen = []
    loop.add_reader(a, lambda: seen.append(('first', a.recv(10))))
    loop.add_reader(a, lambda: seen.append(('second', a.recv(10))))
    b.send(b'x')
    run_until(loop, lambda: seen)
    assert seen == [('second', b'x')]
    assert loop.remove_reader(a) is True
    assert loop.remove_reader(a) is False


def test_reader_and_writer_on_one_fd_are_independent(loop, socketpair):
    a, b = socketpair
    seen = []
    loop.add_reader(a, lambda: seen.append(('read', a.recv(10))))
    loop.add_writer(a, lambda: seen.append('write'))
    run_until(loop, lambda: 'write' in seen)
    assert loop.remove_writer(a) is True
    seen.clear()
    b.send(b'y')
    run_until(loop, lambda: seen)
    assert seen == [('read', b'y')]
    assert loop.remove_reader(a) is True
    assert loop.remove_writer(a) is False


def test_removed_reader_is_not_called(loop, socketpair):
    a, b = socketpair
    seen = []
    loop.add_reader(a, seen.append, 'reader')
    assert loop.remove_reader(a) is True
    b.send(b'x')
    ticks = []
    loop.call_later(0.01, ticks.append, 1)
    run_until(loop, lambda: ticks)
    assert seen == []


def test_reader_removed_by_an_earlier_callback_in_the_same_iteration(loop, socketpair):
    a, b = socketpair
    seen = []
    loop.add_reader(a, lambda: seen.append('a'))
    loop.add_reader(b, lambda: (seen.append('b'), loop.remove_reader(a)))
    a.send(b'to-b')
    b.send(b'to-a')
    # Whichever runs first, 'a' must not run after 'b' removed it.
    run_until(loop, lambda: 'b' in seen)
    ticks = []
    loop.call_later(0.01, ticks.append, 1)
    run_until(loop, lambda: ticks)
    loop.remove_reader(b)
    assert seen.count('b') >= 1
    assert 'a' not in seen[seen.index('b'):]


def test_remove_without_registration_returns_false(loop, socketpair):
    a, _ = socketpair
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False


def test_remove_after_the_fd_was_closed(loop):
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, print)
    a.close()
    b.close()
    assert loop.remove_reader(fd) is True


def test_exception_in_reader_goes_to_the_handler_and_reader_stays(loop, socketpair):
    a, b = socketpair
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    calls = []

    def reader():
        calls.append(a.recv(1))
        if len(calls) == 1:
            raise ValueError('reader failed')

    loop.add_reader(a, reader)
    b.send(b'12')
    run_until(loop, lambda: len(calls) == 2)
    loop.remove_reader(a)
    assert calls == [b'1', b'2']
    assert [type(c['exception']) for c in contexts] == [ValueError]


@pytest.mark.parametrize('bad', ['not-a-file', 1.5, None, object()])
def test_invalid_file_object(loop, bad):
    message = f'Invalid file object: {bad!r}'
    for method in (loop.add_reader, loop.add_writer):
        with pytest.raises(ValueError) as info:
            method(bad, print)
        assert str(info.value) == message
    for method in (loop.remove_reader, loop.remove_writer):
        with pytest.raises(ValueError) as info:
            method(bad)
        assert str(info.value) == message


def test_fileno_raising_value_error_is_an_invalid_file_object(loop, tmp_path):
    with open(tmp_path / 'closed', 'w') as f:
        pass
    with pytest.raises(ValueError, match='Invalid file object: '):
        loop.add_reader(f, print)


@pytest.mark.parametrize('fd', [-1, FileLike(-1)])
def test_negative_file_descriptor(loop, fd):
    for method in (loop.add_reader, loop.add_writer):
        with pytest.raises(ValueError) as info:
            method(fd, print)
        assert str(info.value) == 'Invalid file descriptor: -1'


def test_closed_socket_object_is_an_invalid_descriptor(loop):
    a, b = socket.socketpair()
    a.close()
    b.close()
    with pytest.raises(ValueError, match='^Invalid file descriptor: -1$'):
        loop.add_reader(a, print)


def test_regular_file_is_refused_by_epoll(loop, tmp_path):
    path = tmp_path / 'regular'
    path.write_bytes(b'data')
    with open(path, 'rb') as f:
        with pytest.raises(PermissionError) as info:
            loop.add_reader(f, print)
        assert info.value.errno == errno.EPERM
        with pytest.raises(PermissionError):
            loop.add_writer(f.fileno(), print)
        # The refused registration left nothing behind.
        assert loop.remove_reader(f) is False
        assert loop.remove_writer(f) is False


def test_many_fds_at_once(loop):
    pairs = [socket.socketpair() for _ in range(50)]
    try:
        seen = set()
        for i, (a, b) in enumerate(pairs):
            a.setblocking(False)
            loop.add_reader(a, lambda i=i, a=a: (seen.add(i), a.recv(10)))
        for _, peer in pairs:
            peer.send(b'x')
        run_until(loop, lambda: len(seen) == 50)
        for a, _ in pairs:
            assert loop.remove_reader(a) is True
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_peer_close_makes_the_reader_run(loop, socketpair):
    a, b = socketpair
    seen = []

    def reader():
        seen.append(a.recv(10))
        loop.remove_reader(a)

    loop.add_reader(a, reader)
    b.close()
    run_until(loop, lambda: seen)
    assert seen == [b'']


def test_close_drops_the_watchers(loop, socketpair):
    a, _ = socketpair
    loop.add_reader(a, print)
    loop.add_writer(a, print)
    loop.close()
    assert loop.remove_reader(a) is False
    assert loop.remove_writer(a) is False


class FilenoRaises:
    def __init__(self, exc):
        self.exc = exc

    def fileno(self):
        raise self.exc


def test_fileno_error_other_than_value_type_attribute_propagates(loop):
    with pytest.raises(OSError, match='from fileno'):
        loop.add_reader(FilenoRaises(OSError(errno.EBADF, 'from fileno')), print)


class FilenoIsFloat:
    def __init__(self, fd):
        self.fd = fd

    def fileno(self):
        return float(self.fd)


def test_fileno_result_is_passed_through_int(loop, pipe):
    r, w = pipe
    seen = []
    loop.add_reader(FilenoIsFloat(r), lambda: seen.append(os.read(r, 10)))
    os.write(w, b'x')
    run_until(loop, lambda: seen)
    assert loop.remove_reader(r) is True


def test_closed_loop_is_reported_before_a_negative_fd(loop):
    loop.close()
    with pytest.raises(RuntimeError, match='^Event loop is closed$'):
        loop.add_reader(-1, print)


def rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


@pytest.mark.parametrize('fd', [2 ** 31 - 1, 10_000_000, 70_000])
@pytest.mark.parametrize('method', ['add_reader', 'add_writer'])
def test_a_number_nothing_has_open_is_ebadf_at_no_memory_cost(loop, fd, method):
    """An fd table sized by the number it is given would let one bad call allocate gigabytes
    (or abort the interpreter)."""
    before = rss_bytes()
    with pytest.raises(OSError) as info:
        getattr(loop, method)(fd, print)
    assert info.value.errno == errno.EBADF
    assert rss_bytes() - before < 8 << 20
    assert getattr(loop, method.replace('add', 'remove'))(fd) is False


@pytest.mark.parametrize('fd', [2 ** 31, 2 ** 64, 10 ** 30])
def test_a_number_beyond_a_c_int(loop, fd):
    with pytest.raises(OverflowError):
        loop.add_reader(fd, print)
    with pytest.raises(OverflowError):
        loop.add_writer(fd, print)
    assert loop.remove_reader(fd) is False
    assert loop.remove_writer(fd) is False


@pytest.mark.parametrize('fd', [-2, -2 ** 31 - 1, -2 ** 64])
def test_a_negative_number_of_any_size(loop, fd):
    for method in ('add_reader', 'add_writer'):
        with pytest.raises(ValueError, match='Invalid file descriptor: '):
            getattr(loop, method)(fd, print)
    for method in ('remove_reader', 'remove_writer'):
        with pytest.raises(ValueError, match='Invalid file descriptor: '):
            getattr(loop, method)(fd)

