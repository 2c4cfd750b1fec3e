"""Echo server written with streams (``start_server``, ``reader.read``, ``writer.write`` +
``drain``)."""

import asyncio

from bench.servers.serve import is_tcp, serve

READ_SIZE = 65536


async def echo(reader, writer):
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass  # the load generator leaves mid-request when its time is up
    finally:
        writer.close()


async def start(listener):
    if is_tcp(listener):
        return await asyncio.start_server(echo, sock=listener)
    return await asyncio.start_unix_server(echo, sock=listener)


if __name__ == '__main__':
    serve(start, __doc__)
