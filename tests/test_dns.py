"""getaddrinfo/getnameinfo: the answers and the errors of the socket module, without blocking."""

import asyncio
import gc
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
    # IP literals in every form getaddrinfo reads, shown as it shows them.
    pytest.param(('0:0::1', '00080'), {'proto': socket.IPPROTO_TCP}, id='v6-long-form'),
    pytest.param(('::FFFF:1.2.3.4', 80), {'family': socket.AF_INET6}, id='v4-mapped-upper'),
    pytest.param(('2001:db8::1:0:0:1', None), {'type': socket.SOCK_DGRAM,
                                               'proto': socket.IPPROTO_UDP}, id='v6-zeros'),
    pytest.param(('127.1', 80), {}, id='short-v4'),
    pytest.param(('0x7f.0.0.1', 80), {'type': socket.SOCK_STREAM}, id='hex-v4'),
    pytest.param(('::1', 80), {'flags': socket.AI_V4MAPPED | socket.AI_ALL}, id='v4mapped-flags'),
    pytest.param(('127.0.0.1', 65535), {'flags': socket.AI_PASSIVE | socket.AI_NUMERICHOST},
                 id='passive-numeric'),
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
    pytest.param(('127.0.0.1', True), {}, id='bool-port'),
    pytest.param(('127.0.0.1', ' 80'), {'flags': socket.AI_NUMERICSERV}, id='spaced-port'),
    pytest.param(('127.0.0.1', 80), {'proto': socket.IPPROTO_UDP, 'type': socket.SOCK_STREAM},
                 id='proto-mismatch'),
    pytest.param(('::1', 80), {'family': socket.AF_INET}, id='v6-as-v4'),
    pytest.param(('fe80::1%no-such-if', 80), {}, id='unknown-scope'),
]


def outcome(call):
    try:
        return 'ok', call()
    except Exception as exc:  # noqa: BLE001 - the error itself is the result compared
        return 'error', type(exc), str(exc)


@pytest.mark.parametrize('args, kwargs', GETADDRINFO_CASES)
def test_getaddrinfo_answers_like_the_socket_module(loop, run_async, args, kwargs):
    expected = socket.getaddrinfo(*args, **kwargs)
    answer = run_async(loop.getaddrinfo(*args, **kwargs))
    assert answer == expected
    # The same enum members, not just equal ints: their reprs show in logs.
    assert [(f, k) for f, k, *_ in answer] == [(f, k) for f, k, *_ in expected]
    assert all(type(a[0]) is type(e[0]) for a, e in zip(answer, expected))


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


def test_numeric_lookups_of_every_shape_answer_like_the_socket_module(loop, run_async):
    # ferroloop answers IP literals itself; over every combination of the arguments that
    # decide the answer, it must be the socket module's answer or error, enum members included.
    hosts = ['127.0.0.1', '::1', '0:0::1', '::FFFF:1.2.3.4', b'10.1.2.3', '0.0.0.0', '::',
             '127.1', 'fe80::1%lo']
    ports = [0, 80, '80', b'443', None, 65535, '00080', 65536, True]
    combos = [(h, p, f, t, pr, fl) for h in hosts for p in ports
              for f in (0, socket.AF_INET, socket.AF_INET6) for t in (0, 1, 2)
              for pr in (0, 6, 17) for fl in (0, socket.AI_PASSIVE, socket.AI_CANONNAME)]

    def shape(result):
        return result if result[0] == 'error' else ('ok', [tuple(map(repr, r)) for r in result[1]])

    async def compare():
        for args in combos:
            expected = outcome(lambda: socket.getaddrinfo(*args))
            host, port, family, type_, proto, flags = args
            try:
                got = ('ok', await loop.getaddrinfo(host, port, family=family, type=type_,
                                                    proto=proto, flags=flags))
            except Exception as exc:  # noqa: BLE001 - compared below
                got = ('error', type(exc), str(exc))
            assert shape(got) == shape(expected), args

    run_async(compare())


@pytest.mark.parametrize('host', ['localhost', 'LocalHost.', b'localhost', 'a..b', 'host.invalid',
                                  'bücher.invalid', 'x' * 64 + '.invalid', 'local\0host'])
@pytest.mark.parametrize('kwargs', [{}, {'type': socket.SOCK_STREAM},
                                    {'family': socket.AF_INET, 'flags': socket.AI_CANONNAME},
                                    {'proto': socket.IPPROTO_UDP, 'type': socket.SOCK_DGRAM}])
def test_names_resolve_or_fail_like_the_socket_module(loop, run_async, host, kwargs):
    expected = outcome(lambda: socket.getaddrinfo(host, 'http', **kwargs))

    async def resolve():
        return await loop.getaddrinfo(host, 'http', **kwargs)

    got = outcome(lambda: run_async(resolve()))
    assert got == expected
    if got[0] == 'ok':
        assert [type(f) for f, *_ in got[1]] == [type(f) for f, *_ in expected[1]]


def test_cancelled_lookups_leave_the_loop_working(loop, run_async):
    async def main():
        lookups = [loop.create_task(loop.getaddrinfo('localhost', 80)) for _ in range(50)]
        await asyncio.sleep(0)
        # A lookup may already be answered (cancel() is then refused): count those taken.
        taken = sum(task.cancel() for task in lookups[::2])
        results = await asyncio.gather(*lookups, return_exceptions=True)
        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        answered = [r for r in results if isinstance(r, list)]
        return taken, cancelled, answered

    taken, cancelled, answered = run_async(main())
    assert cancelled == taken and len(answered) == 50 - taken
    assert all(a == answered[0] for a in answered)


def test_loop_closed_with_lookups_in_flight(loop_factory):
    loop = loop_factory()

    async def start():
        return [loop.create_task(loop.getaddrinfo('localhost', 80)) for _ in range(20)]

    tasks = loop.run_until_complete(start())
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    gc.collect()
