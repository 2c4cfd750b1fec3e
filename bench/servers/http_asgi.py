"""HTTP/1.1 server: a minimal ASGI app (a fixed 13-byte body) under uvicorn with httptools,
one worker, on the loop ``--loop`` names (``http_h11`` runs it with uvicorn's h11 parser).

uvicorn is run programmatically (``Server.serve`` inside our own ``asyncio.Runner``) rather
than through its ``--loop`` option, so the loop factory is exactly the one the echo servers
use, whatever uvicorn's version.
"""

import asyncio

import uvicorn

from bench.servers.serve import serve

BODY = b'Hello, world!'
HEADERS = [(b'content-type', b'text/plain'), (b'content-length', str(len(BODY)).encode())]


async def app(scope, receive, send):
    assert scope['type'] == 'http'
    await send({'type': 'http.response.start', 'status': 200, 'headers': HEADERS})
    await send({'type': 'http.response.body', 'body': BODY})


async def start(listener, http='httptools'):
    config = uvicorn.Config(
        app, http=http, lifespan='off', access_log=False, log_level='warning', workers=1)
    server = uvicorn.Server(config)
    serving = asyncio.get_running_loop().create_task(server.serve(sockets=[listener]))
    # Ready once uvicorn has its listening server; a loop without create_server fails here.
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError('uvicorn stopped before it started serving')
        await asyncio.sleep(0.005)
    return serving


if __name__ == '__main__':
    serve(start, __doc__)
