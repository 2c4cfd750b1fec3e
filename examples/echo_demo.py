"""An echo server and its clients on loopback, run on asyncio's loop and on ferroloop.

The same asyncio program runs twice (three times with uvloop installed): a server accepting
connections and echoing every message, and concurrent clients doing request/response round
trips. It prints what it did and how fast, per loop.

    python examples/echo_demo.py [--api streams|sock] [--clients 10] [--seconds 2] [--size 1024]

``--api streams`` (the default) is asyncio.start_server / open_connection; ``--api sock`` is the
low-level loop.sock_accept / sock_recv / sock_sendall.
"""

import argparse
import asyncio
import socket
import time

import ferroloop


async def serve_connection(loop, conn):
    with conn:
        while True:
            data = await loop.sock_recv(conn, 65536)
            if not data:
                return
            await loop.sock_sendall(conn, data)


async def server(loop, listener, tasks):
    while True:
        conn, _ = await loop.sock_accept(listener)
        tasks.add(loop.create_task(serve_connection(loop, conn)))


async def client(loop, address, message, deadline):
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, address)
    round_trips = 0
    with sock:
        while time.monotonic() < deadline:
            await loop.sock_sendall(sock, message)
            received = 0
            while received < len(message):
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    raise ConnectionError('server closed the connection')
                received += len(chunk)
            round_trips += 1
    return round_trips


async def serve_stream(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def stream_client(address, message, deadline):
    reader, writer = await asyncio.open_connection(*address)
    round_trips = 0
    while time.monotonic() < deadline:
        writer.write(message)
        await writer.drain()
        await reader.readexactly(len(message))
        round_trips += 1
    writer.close()
    await writer.wait_closed()
    return round_trips


async def main_streams(clients, seconds, size):
    server = await asyncio.start_server(serve_stream, '127.0.0.1', 0)
    address = server.sockets[0].getsockname()
    message = b'x' * size
    started = time.monotonic()
    counts = await asyncio.gather(*[stream_client(address, message, started + seconds) for _ in range(clients)])
    elapsed = time.monotonic() - started
    server.close()
    await server.wait_closed()
    return sum(counts), elapsed


async def main_sock(clients, seconds, size):
    loop = asyncio.get_running_loop()
    listener = socket.create_server(('127.0.0.1', 0))
    listener.setblocking(False)
    address = listener.getsockname()
    connection_tasks = set()
    server_task = loop.create_task(server(loop, listener, connection_tasks))
    message = b'x' * size
    started = time.monotonic()
    counts = await asyncio.gather(*[client(loop, address, message, started + seconds) for _ in range(clients)])
    elapsed = time.monotonic() - started
    server_task.cancel()
    for task in connection_tasks:
        task.cancel()
    await asyncio.gather(server_task, *connection_tasks, return_exceptions=True)
    listener.close()
    return sum(counts), elapsed


def run_on(name, factory, args):
    main = main_streams if args.api == 'streams' else main_sock
    with asyncio.Runner(loop_factory=factory) as runner:
        kind = type(runner.get_loop()).__module__.split('.')[0]
        total, elapsed = runner.run(main(args.clients, args.seconds, args.size))
    rate = total / elapsed
    print(f'{name:<10} ({kind} loop): {total:>8} round trips of {args.size} bytes by {args.clients} clients '
          f'in {elapsed:.2f}s = {rate:>9,.0f} req/s')
    return rate


def cli():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--api', choices=['streams', 'sock'], default='streams')
    parser.add_argument('--clients', type=int, default=10)
    parser.add_argument('--seconds', type=float, default=2.0)
    parser.add_argument('--size', type=int, default=1024)
    args = parser.parse_args()
    loops = [('asyncio', asyncio.SelectorEventLoop), ('ferroloop', ferroloop.new_event_loop)]
    try:
        import uvloop
        loops.insert(1, ('uvloop', uvloop.new_event_loop))
    except ImportError:
        pass
    api = ('asyncio.start_server / open_connection' if args.api == 'streams'
           else 'loop.sock_accept / sock_recv / sock_sendall')
    print(f'echo over TCP loopback with {api}; server and clients share one loop')
    rates = {name: run_on(name, factory, args) for name, factory in loops}
    base = rates['asyncio']
    print('ferroloop / asyncio: {:.2f}x'.format(rates['ferroloop'] / base)
          + (', ferroloop / uvloop: {:.2f}x'.format(rates['ferroloop'] / rates['uvloop']) if 'uvloop' in rates else ''))


if __name__ == '__main__':
    cli()
