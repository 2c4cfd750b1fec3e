"""HTTP/1.1 server: ``http_asgi``'s app under uvicorn with its pure-Python h11 parser, one
worker, on the loop ``--loop`` names."""

import functools

from bench.servers.http_asgi import start
from bench.servers.serve import serve

if __name__ == '__main__':
    serve(functools.partial(start, http='h11'), __doc__)
