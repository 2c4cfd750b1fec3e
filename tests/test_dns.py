"""getaddrinfo/getnameinfo: the answers and the errors of the socket module, without blocking."""

import logging
import socket

import pytest

GETADDRINFO_CASES = [
    pytest.param(('127.0.0.1', 80), {}, id='numeric-v4'),
    pytest.param(('127.0.0.1', 80), {'type': socket.SOCK_STREAM}, id='numeric-v4-stream'),
    pytest.param(('127.0.0.1', '8080'), {'family': socket.AF_INET}, id='numeric-str-port'),
    pytest.param(('::1', 443), {'type': socket.SOCK_DGRAM}, id='numeric-v6'),
    pytest.param(('localhost', 80), {'type': socket.SOCK_STREAM}, id='localhost'),
    pytest.param(('localhost', None), {}, id='localhost-no-port'),
    pytest.param((None, 0), {'flags': socket.AI_PASSIVE, 'type': socket.SOCK_STREAM},
                 id='passive'),
    pytest.param(('127.0.0.1', 80), {'flags': socket.AI_CANONNAME}, id='canonname'),
    pytest.param((b'127.0.0.1', b'80'), {}, id='bytes'),
    pytest.param(('127.0.0.1', 'http'), {'type': socket.SOCK_STREAM}, id='service-name'),
]

BAD_GETADDRINFO_CASES = [
    pytest.param(('127.0.0.1', 'no-such-service'), {}, id='unknown-service'),
    pytest.param(('127.0.0.1', 80), {'family': socket.AF_INET6}, id='family-mismatch'),
    pytest.param(('host.invalid', 80), {}, id='unknown-host'),
    pytest.param((123, 80), {}, id='int-host'),
    pytest.param(('127.0.0.1', 80.5), {}, id='float-port'),
    pytest.param(('127.0.0.1', 70000), {}, id='port-out-of-range'),
    pytest.param(('127.0.0.1', -1), {}, id='negative-port'),
    pytest.param(('127.0.0.1', [80]), {}, id='list-port'),
    pytest.param(('127.0.0.1', 80), {'type': 12345}, id='bad-socktype'),
    pytest.param(('127.0.0.1', 80), {'family': 'inet'}, id='str-family'),
    pytest.param(('\udc80', 80), {}, id='surrogate-host'),
    pytest.param(('a' * 300, 80), {}, id='label-too-long'),
    pytest.param(('', 80), {}, id='empty-host'),
    pytest.param((None, None), {}, id='no-host-no-port'),
]


def outcome(call):
    try:
        return 'ok', call()
    except Exception as exc:  # noqa: BLE001 - the error itself is the result compared
        return 'error', type(exc), str(exc)


@pytest.mark.parametrize('args, kwargs', GETADDRINFO_CASES)
def test_getaddrinfo_answers_like_the_socket_module(loop, run_async, args, kwargs):
    expected = socket.getaddrinfo(*args, **kwargs)
    assert run_async(loop.getaddrinfo(*args, **kwargs)) == expected


@pytest.mark.parametrize('args, kwargs', BAD_GETADDRINFO_CASES)
def test_getaddrinfo_errors_like_the_socket_module(loop, run_async, args, kwargs):
    expected = outcome(lambda: socket.getaddrinfo(*args, **kwargs))

    async def resolve():
        return await loop.getaddrinfo(*args, **kwargs)

    assert outcome(lambda: run_async(resolve())) == expected


@pytest.mark.parametrize('debug', [False, True])
def test_getaddrinfo_in_debug_mode_gives_the_same_answers(loop, run_async, debug):
    loop.set_debug(debug)
    assert (run_async(loop.getaddrinfo('127.0.0.1', 80, type=socket.SOCK_STREAM))
            == socket.getaddrinfo('127.0.0.1', 80, type=socket.SOCK_STREAM))


def test_getaddrinfo_is_logged_in_debug_mode(loop, run_async, caplog):
    loop.set_debug(True)
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        run_async(loop.getaddrinfo('127.0.0.1', 80, family=socket.AF_INET))
    messages = [r.getMessage() for r in caplog.records]
    assert 'Get address info 127.0.0.1:80, family=<AddressFamily.AF_INET: 2>' in messages
    assert any(m.startswith('Getting address info 127.0.0.1:80, family=<AddressFamily.AF_INET: 2> '
                            'took ') for m in messages)


def test_getaddrinfo_returns_a_coroutine(loop):
    coro = loop.getaddrinfo('127.0.0.1', 80)
    assert hasattr(coro, 'send')
    coro.close()


GETNAMEINFO_CASES = [
    pytest.param(('127.0.0.1', 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV, id='numeric'),
    pytest.param(('127.0.0.1', 80), 0, id='names'),
    pytest.param(('::1', 80, 0, 0), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV, id='v6'),
    pytest.param(('127.0.0.1', 53), socket.NI_DGRAM, id='dgram'),
]

BAD_GETNAMEINFO_CASES = [
    pytest.param('127.0.0.1', 0, id='not-a-tuple'),
    pytest.param(('127.0.0.1',), 0, id='short-tuple'),
    pytest.param(('127.0.0.1', 'x'), 0, id='str-port'),
    pytest.param(('127.0.0.1', 80), 'flags', id='str-flags'),
    pytest.param(('host.invalid', 80), 0, id='unknown-host'),
    pytest.param(('127.0.0.1', 70000), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV,
                 id='port-out-of-range'),
    pytest.param(('127.0.0.1', 80), 2 ** 70, id='huge-flags'),
    pytest.param(('localhost', 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV,
                 id='name-in-address'),
]


@pytest.mark.parametrize('sockaddr, flags', GETNAMEINFO_CASES)
def test_getnameinfo_answers_like_the_socket_module(loop, run_async, sockaddr, flags):
    assert run_async(loop.getnameinfo(sockaddr, flags)) == socket.getnameinfo(sockaddr, flags)


@pytest.mark.parametrize('sockaddr, flags', BAD_GETNAMEINFO_CASES)
def test_getnameinfo_errors_like_the_socket_module(loop, run_async, sockaddr, flags):
    expected = outcome(lambda: socket.getnameinfo(sockaddr, flags))

    async def resolve():
        return await loop.getnameinfo(sockaddr, flags)

    assert outcome(lambda: run_async(resolve())) == expected


def test_slow_lookup_is_logged_at_info_level_in_debug_mode(loop, run_async, caplog):
    # asyncio logs a lookup that took at least slow_callback_duration at INFO.
    loop.set_debug(True)
    loop.slow_callback_duration = 0.0
    with caplog.at_level(logging.DEBUG, logger='asyncio'):
        run_async(loop.getaddrinfo('127.0.0.1', 80))
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert infos[0].startswith('Getting address info 127.0.0.1:80 took ')
