"""What a user does first with a freshly installed ferroloop wheel: run real asyncio code on it.

Run by scripts/wheels.py inside a fresh venv holding only the wheel. Prints one line: the
versions and what ran; exits non-zero if anything did not work.
"""

import asyncio
import os
import sys

import ferroloop


async def echo_over_tcp():
    async def handle(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    async with server:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.write(b'ping\n')
        answer = await reader.readline()
        writer.close()
        await writer.wait_closed()
    return answer


async def main():
    loop = asyncio.get_running_loop()
    assert isinstance(loop, ferroloop.EventLoop), type(loop)
    answer = await echo_over_tcp()
    assert answer == b'ping\n', answer
    proc = await asyncio.create_subprocess_exec(sys.executable, '-c', 'print(6 * 7)',
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert out.strip() == b'42', out
    assert await asyncio.to_thread(sum, [1, 2, 3]) == 6
    return 'echo, subprocess, to_thread'


if __name__ == '__main__':
    installed = os.path.dirname(ferroloop.__file__)
    assert 'site-packages' in installed, installed
    what = ferroloop.run(main())
    print(f'Python {sys.version.split()[0]}: ferroloop from {installed.split(os.sep)[-2]}: {what} ok')
