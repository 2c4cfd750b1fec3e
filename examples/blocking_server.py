"""A small HTTP server with three handlers that block its event loop, the way real programs do
by mistake, and a client that calls each of them while a fast endpoint is polled.

    python -m ferroloop --watchdog 100ms examples/blocking_server.py

The watchdog reports each block while it happens, with the line that blocks:
``/report`` sleeps with ``time.sleep`` instead of ``await asyncio.sleep``, ``/price`` asks a
slow backend with a plain blocking socket, ``/stats`` does CPU-bound work on the loop. The
``/health`` endpoint, polled all along, shows what the blocks cost everyone else.
"""

import asyncio
import socket
import threading
import time


def slow_backend():
    """A backend service answering after 300 ms (in a thread: it is not the loop's)."""
    listener = socket.create_server(('127.0.0.1', 0))

    def serve():
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.recv(100)
                time.sleep(0.3)
                conn.sendall(b'42.00\n')

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()


BACKEND = slow_backend()


def make_report():
    time.sleep(0.5)  # should be: await asyncio.sleep(0.5)
    return 'report ready'


def fetch_price():
    with socket.create_connection(BACKEND) as backend:
        backend.sendall(b'price?\n')
        return backend.recv(100).decode().strip()  # a blocking read on the loop


def compute_stats():
    return f'{sum(i * i for i in range(3_000_000))}'  # CPU-bound work on the loop


ROUTES = {'/report': make_report, '/price': fetch_price, '/stats': compute_stats,
          '/health': lambda: 'ok'}


async def handle(reader, writer):
    request = await reader.readline()
    while (await reader.readline()).strip():
        pass  # headers
    path = request.split()[1].decode()
    body = ROUTES[path]().encode() + b'\n'
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s'
                 % (len(body), body))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def get(port, path):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    writer.write(f'GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n'.encode())
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return response.rsplit(b'\r\n\r\n', 1)[1].decode().strip()


async def main():
    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    port = server.sockets[0].getsockname()[1]
    worst = 0.0

    async def poll_health():
        nonlocal worst
        while True:
            started = time.monotonic()
            await get(port, '/health')
            worst = max(worst, time.monotonic() - started)
            await asyncio.sleep(0.02)

    poller = asyncio.create_task(poll_health())
    for path in ('/report', '/price', '/stats'):
        print(f'GET {path}: {await get(port, path)}')
    poller.cancel()
    server.close()
    await server.wait_closed()
    print(f'slowest /health answer while they ran: {worst * 1000:.0f} ms')


if __name__ == '__main__':
    asyncio.run(main())
