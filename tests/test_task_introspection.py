"""Looking at a running program's tasks from outside: ``python -m asyncio ps PID`` and
``pstree PID`` (3.14), which read the tasks out of the process's memory."""

import importlib.util
import subprocess
import sys
import textwrap

import pytest

PY = sys.executable

pytestmark = pytest.mark.skipif(importlib.util.find_spec('asyncio.tools') is None,
                                reason='python -m asyncio ps/pstree arrived with 3.14')

PROGRAM = textwrap.dedent('''
    import asyncio, sys, ferroloop

    async def sleeper():
        await asyncio.sleep(120)

    async def supervisor():
        async with asyncio.TaskGroup() as group:
            group.create_task(sleeper(), name='sleeper-one')
            group.create_task(sleeper(), name='sleeper-two')
            await asyncio.sleep(0)
            print('ready', flush=True)

    factory = {'asyncio': asyncio.SelectorEventLoop, 'ferroloop': ferroloop.new_event_loop}
    asyncio.run(supervisor(), loop_factory=factory[sys.argv[1]])
''')


@pytest.fixture
def running_program(loop_name):
    program = subprocess.Popen([PY, '-c', PROGRAM, loop_name], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert program.stdout.readline() == 'ready\n', program.stderr.read()
        yield program.pid
    finally:
        program.kill()
        program.wait()
        program.stdout.close()
        program.stderr.close()


def asyncio_tool(command, pid):
    result = subprocess.run([PY, '-m', 'asyncio', command, str(pid)], capture_output=True,
                            text=True, timeout=60, check=False)
    if result.returncode != 0 and 'permission' in (result.stdout + result.stderr).lower():
        pytest.skip(f'not allowed to read another process: {result.stderr.strip()}')
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_asyncio_ps_lists_the_tasks(running_program):
    rows = [line.split() for line in asyncio_tool('ps', running_program).splitlines()[2:]]
    by_name = {row[2]: row for row in rows}
    assert set(by_name) == {'Task-1', 'sleeper-one', 'sleeper-two'}
    for name in ('sleeper-one', 'sleeper-two'):
        text = ' '.join(by_name[name])
        assert 'sleep -> sleeper' in text
        assert 'supervisor' in text and 'Task-1' in text  # awaited by the main task


def test_asyncio_pstree_shows_who_awaits_whom(running_program):
    tree = asyncio_tool('pstree', running_program)
    lines = tree.splitlines()
    assert '(T) Task-1' in lines[0]
    assert any('supervisor' in line for line in lines)
    sleepers = [line for line in lines if '(T) sleeper-' in line]
    assert len(sleepers) == 2
    assert all(line.index('(T)') > lines[0].index('(T)') for line in sleepers)
