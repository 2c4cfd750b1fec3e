"""Ways in: EventLoopPolicy, install(), run(), asyncio.Runner, ``python -m ferroloop``."""

import asyncio
import contextlib
import inspect
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

import ferroloop
from ferroloop import versions

# The policy functions without 3.14's deprecation warnings (the tests save and restore the
# policy; they are not what is under test).
get_policy = versions.get_event_loop_policy
set_policy = versions.set_event_loop_policy


@pytest.fixture
def restore_policy():
    saved = get_policy()
    yield
    set_policy(saved)


@contextlib.contextmanager
def deprecated_with_policies(match):
    """Expects a DeprecationWarning (matching ``match``) where asyncio deprecates policies
    (3.14+), and no warning at all before."""
    if versions.POLICIES_DEPRECATED:
        with pytest.warns(DeprecationWarning, match=match) as record:
            yield
        assert all(w.filename == __file__ for w in record), [str(w) for w in record]
    else:
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            yield


async def loop_facts():
    loop = asyncio.get_running_loop()
    return type(loop), loop.get_debug()


def test_new_event_loop_is_an_abstract_event_loop():
    loop = ferroloop.new_event_loop()
    try:
        assert isinstance(loop, ferroloop.EventLoop)
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


def test_event_loop_class_can_be_constructed_directly():
    loop = ferroloop.EventLoop()
    try:
        assert loop.run_until_complete(loop_facts())[0] is ferroloop.EventLoop
    finally:
        loop.close()


def test_policy_makes_ferroloop_loops(restore_policy):
    with deprecated_with_policies("'ferroloop.EventLoopPolicy' is deprecated"):
        policy_class = ferroloop.EventLoopPolicy
    policy = policy_class()
    assert isinstance(policy, versions.DefaultEventLoopPolicy)
    loop = policy.new_event_loop()
    try:
        assert type(loop) is ferroloop.EventLoop
    finally:
        loop.close()
    set_policy(policy)
    assert asyncio.run(loop_facts())[0] is ferroloop.EventLoop
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is ferroloop.EventLoop
    finally:
        loop.close()


def test_event_loop_policy_is_exported_while_asyncio_exports_its_own():
    assert ('EventLoopPolicy' in ferroloop.__all__) is not versions.POLICIES_DEPRECATED
    with pytest.raises(AttributeError, match="has no attribute 'no_such_thing'"):
        ferroloop.no_such_thing


def test_install_makes_asyncio_run_use_ferroloop(restore_policy):
    with deprecated_with_policies(r'ferroloop\.install\(\) sets an event loop policy'):
        ferroloop.install()
    assert type(get_policy()).__name__ == 'EventLoopPolicy'
    assert type(get_policy()).__module__ == 'ferroloop.policy'
    assert asyncio.run(loop_facts()) == (ferroloop.EventLoop, False)
    assert asyncio.run(loop_facts(), debug=True) == (ferroloop.EventLoop, True)
    with asyncio.Runner() as runner:
        assert runner.run(loop_facts())[0] is ferroloop.EventLoop
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is ferroloop.EventLoop
    finally:
        loop.close()


@pytest.mark.skipif('loop_factory' not in inspect.signature(asyncio.run).parameters,
                    reason='asyncio.run takes loop_factory from 3.12 on')
@pytest.mark.parametrize('factory', [ferroloop.new_event_loop, ferroloop.EventLoop])
def test_asyncio_run_with_a_ferroloop_loop_factory(factory):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert asyncio.run(loop_facts(), loop_factory=factory) == (ferroloop.EventLoop, False)
        assert asyncio.run(loop_facts(), debug=True, loop_factory=factory) == (
            ferroloop.EventLoop, True)


def test_importing_ferroloop_is_silent_under_w_error(tmp_path):
    result = run_python('-W', 'error', '-c', 'import ferroloop, ferroloop.versions; '
                        'from ferroloop import *; print(EventLoop.__name__)', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'EventLoop\n'
    assert result.stderr == ''


def test_run_returns_the_result_and_honours_debug():
    assert ferroloop.run(loop_facts()) == (ferroloop.EventLoop, False)
    assert ferroloop.run(loop_facts(), debug=True) == (ferroloop.EventLoop, True)


def test_run_raises_the_coroutine_exception():
    async def fail():
        raise KeyError('inside')

    with pytest.raises(KeyError, match='inside'):
        ferroloop.run(fail())


def test_run_refuses_a_non_coroutine_as_asyncio_run_does():
    # ValueError up to 3.13, TypeError from 3.14 on (which also runs any awaitable).
    with pytest.raises((ValueError, TypeError)) as expected:
        asyncio.run(42)
    with pytest.raises(type(expected.value), match=str(expected.value)):
        ferroloop.run(42)


def test_run_inside_a_running_loop_is_refused():
    async def outer():
        inner = loop_facts()
        try:
            ferroloop.run(inner)
        finally:
            inner.close()

    with pytest.raises(RuntimeError, match=r'asyncio.run\(\) cannot be called from a running'):
        ferroloop.run(outer())


def test_run_cancels_leftover_tasks():
    cancelled = []

    async def leftover():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main():
        asyncio.get_running_loop().create_task(leftover())
        await asyncio.sleep(0)

    ferroloop.run(main())
    assert cancelled == [True]


def test_asyncio_runner_with_ferroloop_factory():
    with asyncio.Runner(loop_factory=ferroloop.new_event_loop) as runner:
        assert runner.run(loop_facts())[0] is ferroloop.EventLoop
        loop = runner.get_loop()
        assert type(loop) is ferroloop.EventLoop
        # Several runs on one loop.
        assert runner.run(loop_facts())[0] is ferroloop.EventLoop
        assert runner.get_loop() is loop
    assert loop.is_closed()


SCRIPT = textwrap.dedent('''
    import asyncio, json, os, sys

    async def main():
        return type(asyncio.get_running_loop()).__module__ + '.' + \\
            type(asyncio.get_running_loop()).__qualname__

    print(json.dumps({
        'argv': sys.argv,
        'name': __name__,
        'path0': os.path.realpath(sys.path[0]),
        'loop': asyncio.run(main()),
    }))
''')


def run_python(*args, cwd):
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60, check=False)
    assert 'PanicException' not in result.stderr
    return result


def test_python_m_ferroloop_runs_a_script_as_python_would(tmp_path):
    import json
    script = tmp_path / 'script.py'
    script.write_text(SCRIPT)
    direct = run_python('script.py', 'a', 'b', cwd=tmp_path)
    via = run_python('-m', 'ferroloop', 'script.py', 'a', 'b', cwd=tmp_path)
    assert direct.returncode == 0, direct.stderr
    assert via.returncode == 0, via.stderr
    direct, via = json.loads(direct.stdout), json.loads(via.stdout)
    assert via['argv'] == direct['argv'] == ['script.py', 'a', 'b']
    assert via['name'] == direct['name'] == '__main__'
    assert via['path0'] == direct['path0'] == os.path.realpath(tmp_path)
    assert direct['loop'] == 'asyncio.unix_events._UnixSelectorEventLoop'
    assert via['loop'] == 'ferroloop.loop.EventLoop'


def test_python_m_ferroloop_is_silent_under_w_error(tmp_path):
    # The program uses no deprecated API, so nothing may warn: not even on 3.14, where the
    # policy ferroloop sets is deprecated.
    script = tmp_path / 'script.py'
    script.write_text(SCRIPT)
    result = run_python('-W', 'error', '-m', 'ferroloop', 'script.py', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ''


def test_python_m_ferroloop_keeps_the_programs_own_policy_warnings(tmp_path):
    # A program that sets a policy itself is warned as asyncio would warn it.
    (tmp_path / 'sets_policy.py').write_text(textwrap.dedent('''
        import asyncio
        asyncio.set_event_loop_policy(None)
        print(type(asyncio.new_event_loop()).__module__)
    '''))
    result = run_python('-W', 'error::DeprecationWarning', '-m', 'ferroloop', 'sets_policy.py',
                        cwd=tmp_path)
    if versions.POLICIES_DEPRECATED:
        assert result.returncode == 1
        assert 'DeprecationWarning' in result.stderr and 'set_event_loop_policy' in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout == 'asyncio.unix_events\n'


def test_python_m_ferroloop_runs_a_module(tmp_path):
    import json
    (tmp_path / 'my_app.py').write_text(SCRIPT)
    result = run_python('-m', 'ferroloop', '-m', 'my_app', 'x', '--flag', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts['argv'][1:] == ['x', '--flag']
    assert facts['argv'][0].endswith('my_app.py')
    assert facts['name'] == '__main__'
    assert facts['loop'] == 'ferroloop.loop.EventLoop'


def test_python_m_ferroloop_passes_the_exit_status_on(tmp_path):
    (tmp_path / 'exits.py').write_text('import sys\nsys.exit(3)\n')
    (tmp_path / 'fails.py').write_text('raise ValueError("script failed")\n')
    assert run_python('-m', 'ferroloop', 'exits.py', cwd=tmp_path).returncode == 3
    failed = run_python('-m', 'ferroloop', 'fails.py', cwd=tmp_path)
    assert failed.returncode == 1
    assert 'ValueError: script failed' in failed.stderr


def test_python_m_ferroloop_usage(tmp_path):
    no_args = run_python('-m', 'ferroloop', cwd=tmp_path)
    assert no_args.returncode == 2
    assert 'usage: python -m ferroloop' in no_args.stderr
    helped = run_python('-m', 'ferroloop', '--help', cwd=tmp_path)
    assert helped.returncode == 0
    assert 'usage: python -m ferroloop' in helped.stdout


def test_python_m_ferroloop_missing_script_or_module_fails_like_python(tmp_path):
    for args in (['missing.py'], ['-m', 'missing_module'], ['-m', 'missing_pkg.sub']):
        direct = run_python(*args, cwd=tmp_path)
        via = run_python('-m', 'ferroloop', *args, cwd=tmp_path)
        assert via.returncode == direct.returncode != 0
        assert via.stderr == direct.stderr
        assert 'Traceback' not in via.stderr
