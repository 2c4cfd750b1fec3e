"""What every benchmark server shares: its command line, its listening socket and the
readiness line the runner waits for.

    python -m bench.servers.echo_sock --loop ferroloop --listen tcp:127.0.0.1:0
    python -m bench.servers.echo_sock --loop uvloop --listen unix:/tmp/echo.sock

A server prints ``READY <endpoint>`` (the port filled in) once it accepts connections, or
``N/A <reason>`` and exits with status 3 when its loop cannot run it yet, then serves until
it is killed. Endpoints are spelled as the load generator spells them.
"""

import argparse
import asyncio
import socket

from bench.loops import ALL_LOOPS, announce, exit_not_available, loop_factory

# Room for the 100-connection workloads (and wrk) connecting all at once.
BACKLOG = 1024


def listening_socket(endpoint):
    """A non-blocking socket listening on ``tcp:HOST:PORT`` or ``unix:PATH``."""
    kind, _, address = endpoint.partition(':')
    if kind == 'tcp':
        host, _, port = address.rpartition(':')
        # proto must say IPPROTO_TCP, as getaddrinfo's sockets (what create_server(host, port)
        # binds) do: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
        # socket.create_server leaves it 0 — uvicorn on asyncio then waits 40 ms for a delayed
        # ACK between headers and body.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(BACKLOG)
    elif kind == 'unix':
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(address)
        sock.listen(BACKLOG)
    else:
        raise ValueError(f'endpoint {endpoint!r} is neither tcp:HOST:PORT nor unix:PATH')
    sock.setblocking(False)
    return sock


def endpoint_of(sock):
    """The endpoint a listening socket is bound to, port included."""
    if sock.family == socket.AF_UNIX:
        return f'unix:{sock.getsockname()}'
    host, port = sock.getsockname()[:2]
    return f'tcp:{host}:{port}'


def is_tcp(sock):
    return sock.family in (socket.AF_INET, socket.AF_INET6)


async def _serve_forever(kept):
    """Wait until killed, holding what ``start`` returned (a server, a task) alive."""
    await asyncio.get_running_loop().create_future()


def settle_the_heap():
    """Puts glibc's heap in the state a long-running server reaches anyway, the same for
    every loop. Until the process frees one block larger than 128 KiB, glibc gives freed
    memory at the top of the heap back to the kernel and faults it in again: each 100 KiB
    reply then costs page faults and brk calls. Whether something earlier in the process
    (imports, compiling a missing .pyc) freed such a block decided that, so identical builds
    measured 0.6x or 1.1x of each other on the 100 KiB rows. Freeing one block raises glibc's
    thresholds for good; no malloc setting is changed."""
    block = bytes(1 << 20)
    del block


def serve(start, description):
    """Run ``await start(listener)`` on the loop named by ``--loop``, announce readiness and
    serve until killed. ``start`` returns what must stay referenced while serving."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--loop', choices=ALL_LOOPS, required=True)
    parser.add_argument('--listen', default='tcp:127.0.0.1:0', help='tcp:HOST:PORT or unix:PATH')
    args = parser.parse_args()
    settle_the_heap()
    listener = listening_socket(args.listen)
    # Read before the loop gets the socket: some loops (rloop) take its fd and close it.
    endpoint = endpoint_of(listener)
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        try:
            kept = runner.run(start(listener))
        except NotImplementedError as error:
            exit_not_available(error)
        announce(f'READY {endpoint}')
        runner.run(_serve_forever(kept))
