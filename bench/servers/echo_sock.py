"""Echo server written on raw sockets with ``loop.sock_accept``/``sock_recv``/``sock_sendall``."""

import asyncio
import socket

from bench.servers.serve import is_tcp, serve

READ_SIZE = 65536


async def echo(loop, conn):
    with conn:
        try:
            while data := await loop.sock_recv(conn, READ_SIZE):
                await loop.sock_sendall(conn, data)
        except ConnectionError:
            pass  # the load generator leaves mid-request when its time is up


async def accept_forever(loop, listener):
    connections = set()
    while True:
        conn, _ = await loop.sock_accept(listener)
        if is_tcp(conn):
            # Transports set TCP_NODELAY by themselves; raw sockets need it said, or each
            # reply waits for the peer's delayed ACK.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(echo(loop, conn))
        connections.add(task)
        task.add_done_callback(connections.discard)


async def start(listener):
    loop = asyncio.get_running_loop()
    return loop.create_task(accept_forever(loop, listener))


if __name__ == '__main__':
    serve(start, __doc__)
