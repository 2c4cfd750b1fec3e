"""Echo server written as an ``asyncio.Protocol`` (``create_server``/``create_unix_server``)."""

import asyncio

from bench.servers.serve import is_tcp, serve


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def start(listener):
    loop = asyncio.get_running_loop()
    if is_tcp(listener):
        return await loop.create_server(EchoProtocol, sock=listener)
    return await loop.create_unix_server(EchoProtocol, sock=listener)


if __name__ == '__main__':
    serve(start, __doc__)
