"""Bad and odd arguments get asyncio's answer: ports out of range or given as float/bool/str,
debug flags that are not bools, deadlines that are not floats (or are NaN), water marks that
are floats or huge, a protocol of None, strided memoryviews."""

import asyncio
import decimal
import fractions
import logging
import math
import os
import socket

import pytest

from conftest import run, run_one_iteration
from ferroloop import versions


def free_tcp_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# Ports

@pytest.mark.parametrize('port', [70000, 65536, -1, -2147483649, 2 ** 64, '70000', '-1'])
def test_out_of_range_port_with_an_ip_address_is_an_overflow_error(loop, port):
    # getaddrinfo would wrap 70000 to 4464: the server would listen, and the connection go, to
    # the wrong port.
    async def main():
        with pytest.raises(OverflowError, match='port must be 0-65535'):
            await loop.create_server(asyncio.Protocol, '127.0.0.1', port)
        with pytest.raises(OverflowError, match='port must be 0-65535'):
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', port)
        with pytest.raises(OverflowError, match='port must be 0-65535'):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                local_addr=('127.0.0.1', port))
        with pytest.raises(OverflowError, match='port must be 0-65535'):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                remote_addr=('127.0.0.1', port))

    run(loop, main())


@pytest.mark.parametrize('port', [70000, -1, '70000'])
def test_out_of_range_port_with_a_host_name_is_an_overflow_error(loop, loop_name, port):
    if loop_name == 'asyncio':
        pytest.skip('deliberate difference: asyncio lets getaddrinfo wrap a host name\'s port '
                    '(70000 becomes 4464)')

    async def main():
        with pytest.raises(OverflowError, match='port must be 0-65535'):
            await loop.create_server(asyncio.Protocol, 'localhost', port)
        with pytest.raises(OverflowError, match='port must be 0-65535'):
            await loop.create_server(asyncio.Protocol, None, port)
        with pytest.raises(OverflowError, match='port must be 0-65535'):
            await loop.create_connection(asyncio.Protocol, 'localhost', port)
        with pytest.raises(OverflowError, match='port must be 0-65535'):
            await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                local_addr=('localhost', port))

    run(loop, main())


def test_numeric_ports_of_other_types_are_converted_with_int(loop):
    # asyncio's shortcut for an IP address takes int(port): 12345.7 is port 12345, '12345'
    # too, True is port 1.
    async def main():
        port = free_tcp_port()
        for given in (float(port) + 0.7, str(port), str(port).encode()):
            server = await loop.create_server(asyncio.Protocol, '127.0.0.1', given)
            assert server.sockets[0].getsockname() == ('127.0.0.1', port)
            transport, _ = await loop.create_connection(asyncio.Protocol, '127.0.0.1', given)
            assert transport.get_extra_info('peername') == ('127.0.0.1', port)
            transport.close()
            server.close()
            await server.wait_closed()
        endpoint, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=('127.0.0.1', float(port)))
        assert endpoint.get_extra_info('sockname') == ('127.0.0.1', port)
        endpoint.close()
        with pytest.raises(ConnectionRefusedError, match=r"\('127.0.0.1', 1\)"):
            await loop.create_connection(asyncio.Protocol, '127.0.0.1', True)

    run(loop, main())


def test_unix_connection_server_hostname_must_be_a_str(loop, loop_name):
    # asyncio asserts it; an assert is no check under -O, and ferroloop raises TypeError.
    expected = AssertionError if loop_name == 'asyncio' else TypeError

    async def main():
        with pytest.raises(expected):
            await loop.create_unix_connection(asyncio.Protocol, '/nonexistent',
                                              server_hostname=1.5)

    run(loop, main())


def test_a_float_port_with_a_host_name_is_refused_by_getaddrinfo(loop):
    async def main():
        with pytest.raises(OSError, match='Int or String expected'):
            await loop.create_connection(asyncio.Protocol, 'localhost', 80.0)

    run(loop, main())


# Debug mode

@pytest.mark.parametrize('value, enabled', [(0, False), (1, True), (None, False), ('', False),
                                            ('yes', True)])
def test_set_debug_takes_any_value_for_its_truth(loop, value, enabled):
    loop.set_debug(value)
    assert bool(loop.get_debug()) is enabled
    future = loop.create_future()  # asyncio.Future asks the loop for its debug mode
    assert bool(future._source_traceback) is enabled


def test_runner_with_an_int_debug_flag(loop_factory):
    with asyncio.Runner(debug=1, loop_factory=loop_factory) as runner:
        assert runner.get_loop().get_debug()
        assert runner.run(asyncio.sleep(0, 'done')) == 'done'


@pytest.mark.parametrize('value', [0, 2 ** 70, decimal.Decimal('0.5'), fractions.Fraction(1, 3),
                                   None, 'slow'])
def test_slow_callback_duration_keeps_what_it_is_given(loop, value):
    loop.slow_callback_duration = value
    assert loop.slow_callback_duration is value
    run_one_iteration(loop)  # only debug mode compares it


@pytest.mark.parametrize('value', [0, decimal.Decimal(0), fractions.Fraction(0)])
def test_slow_callback_duration_of_other_numbers_reports_slow_callbacks(loop, value, caplog):
    loop.set_debug(True)
    loop.slow_callback_duration = value
    with caplog.at_level(logging.WARNING, logger='asyncio'):
        run_one_iteration(loop)
    assert 'took' in caplog.text


def test_slow_callback_duration_that_is_not_a_number_fails_the_run_in_debug_mode(loop):
    loop.set_debug(True)
    loop.slow_callback_duration = None
    loop.call_soon(loop.stop)
    with pytest.raises(TypeError, match="'>=' not supported"):
        loop.run_forever()
    loop.slow_callback_duration = 0.1


# Deadlines

@pytest.mark.parametrize('delay', [decimal.Decimal('0.1'), '1', b'1'])
def test_call_later_delay_must_add_to_the_loop_time(loop, delay):
    # asyncio computes loop.time() + delay: a float and a Decimal do not add up.
    with pytest.raises(TypeError):
        loop.call_later(delay, print)
    assert loop.call_later(fractions.Fraction(1, 2), print).when() > loop.time()


def test_call_at_takes_a_decimal_deadline(loop):
    seen = []
    loop.call_at(decimal.Decimal(0), seen.append, 'decimal')
    run_one_iteration(loop)
    assert seen == ['decimal']


def test_call_at_refuses_a_deadline_that_is_not_a_number(loop, loop_name):
    if loop_name == 'asyncio':
        # asyncio stores it and fails on it later: here at the next timer's heappush.
        loop.call_at('soon', print)
        with pytest.raises(TypeError):
            loop.call_at(1.0, print)
        loop.close()  # its heap cannot be run any more
        return
    with pytest.raises(TypeError, match="deadline must be a real number, not 'str'"):
        loop.call_at('soon', print)


def ran_in_one_iteration(loop, deadlines):
    """Schedules a timer per (name, deadline) (None for NaN, else seconds before now, so all
    are due) and runs one iteration: the order they ran in is the order the heap gave."""
    seen = []
    now = loop.time()
    for name, ago in deadlines:
        loop.call_at(math.nan if ago is None else now - ago, seen.append, name)
    run_one_iteration(loop)
    return seen


@pytest.mark.parametrize('deadlines, expected', [
    ([('a', 3), ('b', 2), ('c', 1), ('nan', None), ('d', 4)], ['d', 'a', 'b', 'nan', 'c']),
    ([('a', 1), ('b', 2), ('c', 3), ('nan', None), ('d', 4), ('e', 5)],
     ['e', 'd', 'c', 'b', 'nan', 'a']),
    ([('nan', None), ('nan2', None), ('a', 1)], ['nan', 'nan2', 'a']),
    ([('a', 1), ('nan', None), ('b', 0.5)], ['a', 'nan', 'b']),
    # Equal deadlines come out in heapq's order, not first-scheduled first.
    ([(name, 1) for name in 'abcde'], ['a', 'c', 'e', 'b', 'd']),
])
def test_timers_come_out_in_asyncios_heap_order(loop, deadlines, expected):
    assert ran_in_one_iteration(loop, deadlines) == expected


def test_nan_deadline_waits_behind_an_earlier_timer(loop):
    # A NaN pushed after a pending timer stays below it in the heap: it runs when that timer
    # has been popped, not at once.
    seen = []
    loop.call_later(0.05, seen.append, 'later')
    loop.call_at(math.nan, seen.append, 'nan')
    loop.call_later(0.2, loop.stop)
    loop.run_forever()
    assert seen == ['later', 'nan']


# Water marks

async def stream_pair(loop):
    a, b = socket.socketpair()
    transport, protocol = await loop.create_connection(asyncio.Protocol, sock=a)
    return transport, b


LIMITS = [
    ((1.5,), (0.0, 1.5)),
    ((2 ** 64, 5), (5, 2 ** 64)),
    ((None, 2 ** 62), (2 ** 62, 2 ** 64)),
    ((None, 2 ** 64), (2 ** 64, 2 ** 66)),
    ((math.inf, 0), (0, math.inf)),
    ((True,), (0, True)),
    ((None, 1.5), (1.5, 6.0)),
]


async def check_limits(transport):
    for args, expected in LIMITS:
        transport.set_write_buffer_limits(*args)
        assert transport.get_write_buffer_limits() == expected
        assert (transport._low_water, transport._high_water) == expected
    with pytest.raises(ValueError, match=r'high \(nan\) must be >= low \(nan\)'):
        transport.set_write_buffer_limits(math.nan)
    with pytest.raises(ValueError, match=r'high \(inf\) must be >= low \(nan\)'):
        transport.set_write_buffer_limits(math.inf)
    with pytest.raises(TypeError, match='//'):
        transport.set_write_buffer_limits('big')
    assert transport.get_write_buffer_limits() == LIMITS[-1][1]


def test_water_marks_of_any_size_and_kind_on_a_stream(loop):
    async def main():
        transport, peer = await stream_pair(loop)
        await check_limits(transport)
        transport.close()
        peer.close()

    run(loop, main())


def test_water_marks_of_any_size_and_kind_on_a_datagram_endpoint(loop):
    async def main():
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                           local_addr=('127.0.0.1', 0))
        await check_limits(transport)
        transport.close()

    run(loop, main())


def test_water_marks_of_any_size_and_kind_on_a_write_pipe(loop):
    async def main():
        rfd, wfd = os.pipe()
        transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol,
                                                     os.fdopen(wfd, 'wb', buffering=0))
        await check_limits(transport)
        transport.close()
        os.close(rfd)

    run(loop, main())


def test_fractional_high_water_mark_pauses_as_its_floor(loop):
    async def main():
        paused = []

        class Writer(asyncio.Protocol):
            def pause_writing(self):
                paused.append(True)

        a, b = socket.socketpair()
        transport, _ = await loop.create_connection(Writer, sock=a)
        while transport.get_write_buffer_size() == 0:  # nobody reads b: fill the socket
            transport.write(b'x' * 65536)
        transport.set_write_buffer_limits(high=transport.get_write_buffer_size() + 0.5)
        assert not paused
        transport.write(b'x')
        assert paused
        transport.abort()
        b.close()

    run(loop, main())


def test_native_water_marks_never_overflow(loop, loop_name):
    if loop_name == 'asyncio':
        pytest.skip("ferroloop's native transport core")

    async def main():
        transport, peer = await stream_pair(loop)
        transport._core.set_write_buffer_limits(None, 2 ** 62)
        assert transport._core.get_write_buffer_limits() == (2 ** 62, 2 ** 64 - 1)
        with pytest.raises(ValueError, match='must be >= low'):
            transport._core.set_write_buffer_limits(-2 ** 100 // 2 ** 40, None)
        transport.close()
        peer.close()

    run(loop, main())


# What a stream transport is given

def test_set_protocol_none_fails_when_data_arrives(loop):
    async def main():
        reports = []
        loop.set_exception_handler(lambda _, context: reports.append(context))
        transport, peer = await stream_pair(loop)
        transport.set_protocol(None)
        assert transport.get_protocol() is None
        peer.send(b'data')
        while not reports:
            await asyncio.sleep(0.01)
        assert reports[0]['message'] == 'Fatal error: protocol.data_received() call failed.'
        assert isinstance(reports[0]['exception'], AttributeError)
        assert transport.is_closing()
        peer.close()

    run(loop, main())


def test_strided_memoryview_write_is_a_fatal_write_error(loop):
    async def main():
        reports = []
        loop.set_exception_handler(lambda _, context: reports.append(context))
        transport, peer = await stream_pair(loop)
        transport.write(memoryview(b'abcdef')[::2])
        assert transport.is_closing()
        assert reports[0]['message'] == 'Fatal write error on socket transport'
        assert isinstance(reports[0]['exception'], BufferError)
        transport.write(memoryview(b'')[::2])  # empty: nothing to do, nothing reported
        peer.close()

    run(loop, main())


@pytest.mark.skipif(versions.SOCKET_WRITE_QUEUES_ANY_VIEW,
                    reason="asyncio 3.12 queues it: see the test below")
def test_strided_memoryview_write_behind_buffered_data_is_a_type_error(loop):
    async def main():
        transport, peer = await stream_pair(loop)
        while transport.get_write_buffer_size() == 0:  # nobody reads the peer
            transport.write(b'x' * 65536)
        with pytest.raises(TypeError):
            transport.write(memoryview(b'abcdef')[::2])
        assert not transport.is_closing()
        transport.abort()
        peer.close()

    run(loop, main())


@pytest.mark.skipif(not versions.SOCKET_WRITE_QUEUES_ANY_VIEW,
                    reason='asyncio 3.11 refuses it with TypeError: see the test above')
def test_strided_memoryview_write_behind_buffered_data_fails_when_flushed(loop):
    async def main():
        reports = []
        loop.set_exception_handler(lambda _, context: reports.append(context))
        transport, peer = await stream_pair(loop)
        while transport.get_write_buffer_size() == 0:  # nobody reads the peer
            transport.write(b'x' * 65536)
        transport.write(memoryview(b'abcdef')[::2])
        assert not transport.is_closing()
        peer.setblocking(False)
        while not transport.is_closing():  # the peer reads: the transport flushes
            try:
                while peer.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass
            await asyncio.sleep(0.001)
        assert reports[0]['message'] == 'Fatal write error on socket transport'
        assert isinstance(reports[0]['exception'], BufferError)
        peer.close()

    run(loop, main())
