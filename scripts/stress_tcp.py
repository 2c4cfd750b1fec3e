"""Connection stress on a ferroloop echo server: many at once, then many one after another.

1. Opens 5,000 concurrent TCP connections to an echo server (asyncio.Protocol), each echoing a
   message while all are open, then closes them.
2. Churns 200,000 connect / echo / close cycles (streams: open_connection, write, readexactly,
   close, wait_closed), 64 at a time.

Server and clients run on the same ferroloop loop. Checks: every byte echoed; no fd left open
afterwards (/proc/self/fd against the count before the server started); RSS at the end of the
last 50,000 cycles within 10% of RSS at the end of the first 50,000. Prints the figures; exits
non-zero if a check fails.

    python scripts/stress_tcp.py [--concurrent 5000] [--cycles 200000] [--loop ferroloop|asyncio|uvloop]
"""

import argparse
import asyncio
import gc
import os
import resource
import socket
import sys
import time

HOSTS = ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']  # more 4-tuples for the churn


def rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError('no VmRSS in /proc/self/status')


def open_fds():
    return len(os.listdir('/proc/self/fd'))


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Client(asyncio.Protocol):
    """Sends one message when connected and records when all of it came back."""

    def __init__(self, message, done):
        self.message = message
        self.received = bytearray()
        self.done = done

    def connection_made(self, transport):
        transport.write(self.message)

    def data_received(self, data):
        self.received += data
        if len(self.received) >= len(self.message) and not self.done.done():
            self.done.set_result(bytes(self.received))

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError('closed before the echo'))


async def concurrent_phase(loop, port, count):
    transports = []
    batch = 500  # under the listen backlog, so no SYN is dropped and retried a second later
    echoed = 0
    for start in range(0, count, batch):
        pending = []
        for i in range(start, min(start + batch, count)):
            message = f'connection {i:06d} '.encode() * 4
            done = loop.create_future()
            pending.append((message, done, loop.create_connection(
                lambda m=message, d=done: Client(m, d), HOSTS[i % len(HOSTS)], port)))
        results = await asyncio.gather(*[c for _, _, c in pending])
        transports.extend(t for t, _ in results)
        for message, done, _ in pending:
            if await done != message:
                raise AssertionError('echo mismatch while concurrent')
            echoed += len(message)
    open_now = open_fds()
    for transport in transports:
        transport.close()
    return echoed, open_now


async def churn_worker(port, cycles, counter, samples, block):
    echoed = 0
    for _ in range(cycles):
        n = counter[0]
        counter[0] += 1
        message = b'%08d' % n * (1 + n % 64)
        reader, writer = await asyncio.open_connection(HOSTS[n % len(HOSTS)], port)
        writer.write(message)
        if await reader.readexactly(len(message)) != message:
            raise AssertionError(f'echo mismatch in cycle {n}')
        writer.close()
        await writer.wait_closed()
        echoed += len(message)
        counter[1] += 1
        if counter[1] % block == 0:
            samples.append((counter[1], rss_mib(), open_fds()))
    return echoed


async def main(concurrent, cycles, workers):
    loop = asyncio.get_running_loop()
    # One port on every host address: ask the kernel for a free one first.
    with socket.socket() as probe:
        probe.bind((HOSTS[0], 0))
        port = probe.getsockname()[1]
    server = await loop.create_server(Echo, HOSTS, port, backlog=4096)

    started = time.monotonic()
    echoed, peak_fds = await concurrent_phase(loop, port, concurrent)
    await asyncio.sleep(0.2)  # let both ends finish closing
    concurrent_s = time.monotonic() - started
    print(f'concurrent: {concurrent} connections open at once ({peak_fds} fds), '
          f'{echoed} bytes echoed, {concurrent_s:.1f}s')

    block = max(1, cycles // 4)
    counter, samples = [0, 0], []  # cycles started, cycles finished
    started = time.monotonic()
    per_worker = [cycles // workers + (1 if i < cycles % workers else 0) for i in range(workers)]
    churned = sum(await asyncio.gather(*[churn_worker(port, n, counter, samples, block) for n in per_worker]))
    churn_s = time.monotonic() - started
    print(f'churn: {counter[0]} connect/echo/close cycles, {churned} bytes echoed, {churn_s:.1f}s '
          f'({counter[0] / churn_s:,.0f} cycles/s)')
    for done, rss, fds in samples:
        print(f'  after {done:>7} cycles: RSS {rss:7.1f} MiB, {fds} fds open')

    server.close()
    await server.wait_closed()
    return samples


def run():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--concurrent', type=int, default=5000)
    parser.add_argument('--cycles', type=int, default=200_000)
    parser.add_argument('--workers', type=int, default=64)
    parser.add_argument('--loop', default='ferroloop', choices=['ferroloop', 'asyncio', 'uvloop'])
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * args.concurrent + 200
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

    if args.loop == 'ferroloop':
        import ferroloop
        factory = ferroloop.new_event_loop
    elif args.loop == 'uvloop':
        import uvloop
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.SelectorEventLoop

    fds_before = open_fds()
    with asyncio.Runner(loop_factory=factory) as runner:
        samples = runner.run(main(args.concurrent, args.cycles, args.workers))
    gc.collect()
    fds_after = open_fds()
    print(f'fds: {fds_before} before the server started, {fds_after} after everything closed')

    failures = []
    if fds_after != fds_before:
        failures.append(f'{fds_after - fds_before} fds left open')
    if len(samples) >= 2:
        first, last = samples[0][1], samples[-1][1]
        growth = (last - first) / first
        print(f'RSS: {first:.1f} MiB after the first block, {last:.1f} MiB after the last ({growth:+.1%})')
        if abs(growth) > 0.10:
            failures.append(f'RSS changed by {growth:+.1%} between the first and last block')
    if failures:
        print('FAILED:', '; '.join(failures))
        return 1
    print('OK')
    return 0


if __name__ == '__main__':
    sys.exit(run())
