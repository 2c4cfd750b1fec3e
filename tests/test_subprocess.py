"""Subprocesses: exec and shell, pipes, exit codes, signals, and reaping."""

import asyncio
import contextvars
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest

from conftest import expect_asyncio_bug, run

PY = sys.executable


def test_exec_communicate_and_returncode(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, '-c', 'import sys; data = sys.stdin.buffer.read(); '
                      'sys.stdout.buffer.write(data.upper()); sys.stderr.write("err"); sys.exit(7)',
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate(b'hello' * 100_000)
        assert out == b'HELLO' * 100_000
        assert err == b'err'
        assert proc.returncode == 7

    run(loop, main())


def test_shell_with_stderr_into_stdout(loop):
    async def main():
        proc = await asyncio.create_subprocess_shell(
            'echo out; echo err 1>&2', stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await proc.communicate()
        assert sorted(out.split()) == [b'err', b'out']
        assert proc.returncode == 0

    run(loop, main())


def test_kill_and_signal_exit_codes(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(PY, '-c', 'import time; time.sleep(60)')
        proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == -signal.SIGTERM
        proc = await asyncio.create_subprocess_exec(PY, '-c', 'import time; time.sleep(60)')
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL

    run(loop, main())


def test_wait_on_a_process_that_already_exited(loop):
    async def main():
        proc = await asyncio.create_subprocess_exec(PY, '-c', 'pass')
        await asyncio.sleep(0.2)
        assert await proc.wait() == 0
        assert await proc.wait() == 0

    run(loop, main())


def test_argument_errors(loop):
    async def main():
        with pytest.raises(ValueError, match='cmd must be a string'):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, ['ls'])
        with pytest.raises(ValueError, match='shell must be False'):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, 'ls', shell=True)
        with pytest.raises(ValueError, match='bufsize must be 0'):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, 'ls', bufsize=1)
        with pytest.raises(ValueError, match='text must be False'):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, 'ls', text=True)
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec('/nonexistent/program')

    run(loop, main())


def test_subprocess_protocol_callbacks(loop):
    events = []

    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.done = loop.create_future()

        def connection_made(self, transport):
            events.append('made')

        def pipe_data_received(self, fd, data):
            events.append(('data', fd, data))

        def process_exited(self):
            events.append('exited')

        def connection_lost(self, exc):
            events.append('lost')
            self.done.set_result(None)

    async def main():
        transport, protocol = await loop.subprocess_exec(
            Proto, PY, '-c', 'print("hi", flush=True)', stdin=None, stderr=None)
        await protocol.done
        assert transport.get_returncode() == 0
        transport.close()

    run(loop, main())
    assert events[0] == 'made'
    assert b''.join(e[2] for e in events if e[0] == 'data' and e[1] == 1) == b'hi\n'
    assert events[-1] == 'lost'
    assert 'exited' in events


def test_subprocess_from_a_loop_in_another_thread(loop_factory):
    results = []

    def in_thread():
        async def main():
            proc = await asyncio.create_subprocess_exec(PY, '-c', 'print(42)', stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            return out, proc.returncode

        new_loop = loop_factory()
        try:
            results.append(new_loop.run_until_complete(asyncio.wait_for(main(), 30)))
        finally:
            new_loop.close()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(60)
    assert results == [(b'42\n', 0)]


CHILDREN_OUTLIVE_THEIR_LOOPS = '''
import asyncio, gc, os, subprocess, sys, time, warnings, ferroloop
factory = {"asyncio": asyncio.SelectorEventLoop, "ferroloop": ferroloop.new_event_loop}[sys.argv[1]]
warnings.simplefilter("ignore", ResourceWarning)  # the transports nobody closed say so
fds_before = len(os.listdir("/proc/self/fd"))
pids = []
for _ in range(20):
    loop = factory()
    asyncio.set_event_loop(loop)
    async def spawn():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import time; time.sleep(0.5)", stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        pids.append(proc.pid)
    loop.run_until_complete(spawn())
    asyncio.set_event_loop(None)
    loop.close()
time.sleep(1.5)  # the children exit meanwhile
gc.collect()
print("fds", len(os.listdir("/proc/self/fd")) - fds_before)
def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"
print("zombies", sum(state(pid) == "Z" for pid in pids))
print("still running", len(subprocess._active))
'''


def test_children_that_outlive_their_loop_leave_nothing_behind(loop_name, request):
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_PIDFDS_OUTLIVE_THE_LOOP')
    # Each loop is closed while its child still runs: the loop's fd for the child (ferroloop's
    # pidfd) is closed with it, and the child is still reaped when it exits, leaving no zombie,
    # no Popen waiting in subprocess._active, and (once the child is gone and its transport
    # freed) no fd. In a child process: the closing loops log and warn about the children
    # they abandon.
    result = subprocess.run([PY, '-c', CHILDREN_OUTLIVE_THEIR_LOOPS, loop_name],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split('\n')[:3] == ['fds 0', 'zombies 0', 'still running 0']
    assert 'still running' not in result.stderr


def test_signals_never_reach_a_reaped_child(loop, loop_name, request, monkeypatch):
    # Once the loop reaps the child its pid is free, and the kernel may give it to another
    # process before the exit is published to the transport (one iteration later): kill()
    # must not signal it meanwhile (CPython 3.14's test_send_signal_never_targets_reaped_pid).
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_KILL_SIGNALS_A_REAPED_PID')
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_KILL_MAY_REAP_THE_CHILD', strict=False)
    reaped, stale = set(), []
    real_waitpid, real_kill = os.waitpid, os.kill

    def waitpid(pid, options):
        result = real_waitpid(pid, options)
        if result[0]:
            reaped.add(result[0])
        return result

    def kill(pid, sig):
        if pid in reaped:
            stale.append(pid)
            return
        real_kill(pid, sig)

    monkeypatch.setattr(os, 'waitpid', waitpid)
    monkeypatch.setattr(os, 'kill', kill)

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, '-c', 'import time; time.sleep(60)')
        proc.kill()
        while proc.returncode is None:
            proc.kill()
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0)
        proc.kill()  # after the exit is published: nothing happens, no error
        return await proc.wait()

    assert run(loop, main()) == -signal.SIGKILL
    assert stale == []


def test_kill_after_the_child_exited_keeps_its_exit_status(loop, loop_name, request, caplog):
    # The child has exited, and the loop has not reaped it yet: kill() must neither signal
    # nor reap it (which would leave the loop without its status, reporting 255).
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_KILL_MAY_REAP_THE_CHILD', strict=False)

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, '-c', 'import sys; sys.exit(7)')
        try:
            # Blocks the loop until the child is a zombie, without reaping it.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass  # a watcher thread (asyncio 3.11) reaped it already
        proc.kill()
        proc.terminate()
        return await proc.wait()

    assert run(loop, main()) == 7
    assert 'returncode 255' not in caplog.text


CALLER = contextvars.ContextVar('caller', default=None)
FACTORY = contextvars.ContextVar('factory', default=None)
SHARED = contextvars.ContextVar('shared', default=None)


class ContextRecordingProtocol(asyncio.SubprocessProtocol):
    """Records, for each callback, the values of the context variables it sees."""

    def __init__(self, loop):
        FACTORY.set('factory')
        self.seen = [('factory', CALLER.get(), None, None)]
        self.done = loop.create_future()

    def record(self, name):
        self.seen.append((name, CALLER.get(), FACTORY.get(), SHARED.get()))

    def connection_made(self, transport):
        self.record('connection_made')
        SHARED.set('made')  # the callbacks share one context

    def pipe_data_received(self, fd, data):
        self.record('pipe_data_received')

    def pipe_connection_lost(self, fd, exc):
        self.record('pipe_connection_lost')

    def process_exited(self):
        self.record('process_exited')

    def connection_lost(self, exc):
        self.record('connection_lost')
        self.done.set_result(None)


@pytest.mark.parametrize('closed_elsewhere', [False, True])
def test_protocol_callbacks_run_in_the_callers_context(loop, loop_name, request,
                                                       closed_elsewhere):
    # Every callback, the factory included, in the context of the subprocess_exec() call (as
    # on uvloop), even when the transport is closed from another context.
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_SUBPROCESS_CALLBACKS_IN_OTHER_CONTEXTS')

    async def main():
        CALLER.set('caller')
        code = 'import sys, time; print("out", flush=True); time.sleep(60 if sys.argv[1:] else 0)'
        args = [PY, '-c', code] + (['block'] if closed_elsewhere else [])
        transport, protocol = await loop.subprocess_exec(
            lambda: ContextRecordingProtocol(loop), *args, stdin=None, stderr=None)
        if closed_elsewhere:
            while len(protocol.seen) < 3:  # made, then the output
                await asyncio.sleep(0.01)
            loop.call_soon(transport.close, context=contextvars.Context())
        await protocol.done
        transport.close()
        return protocol.seen

    seen = run(loop, main())
    names = [entry[0] for entry in seen]
    assert names[:2] == ['factory', 'connection_made']
    assert {'pipe_data_received', 'pipe_connection_lost', 'process_exited'} <= set(names)
    assert names[-1] == 'connection_lost'
    assert seen[0][1] == 'caller'
    assert all(entry[1:] == ('caller', 'factory', None) for entry in seen[1:2])
    assert all(entry[1:] == ('caller', 'factory', 'made') for entry in seen[2:])


WAITS_FOR_ITS_GRANDCHILD = '''
import subprocess, sys
# The grandchild keeps stdout and stderr open until its stdin (the child's) closes.
subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"])
'''


def test_wait_returns_when_the_child_exits_while_its_pipes_stay_open(loop, loop_name,
                                                                      request):
    # anyio's test_wait_returns_on_process_exit_with_open_stdout: wait() is the child's exit,
    # not the end of its output, which a grandchild may hold open.
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_WAIT_WAITS_FOR_THE_PIPES')

    async def main():
        proc = await asyncio.create_subprocess_exec(
            PY, '-c', WAITS_FOR_ITS_GRANDCHILD, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        try:
            returncode = await asyncio.wait_for(proc.wait(), 3)
        finally:
            proc.stdin.close()  # the grandchild exits
            await proc.stdout.read()
            await proc.stderr.read()
        return returncode

    assert run(loop, main()) == 0


LEAVES_A_GRANDCHILD_WRITING = '''
import subprocess, sys
# The grandchild holds stdout, and writes to it after the child has exited.
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3); print('late')"])
print("early", flush=True)
'''


def test_reading_the_output_ends_when_the_last_holder_of_the_pipe_closes_it(loop):
    # The child's exit is not the end of its output: read() and communicate() go on to the
    # end of the pipe, whoever holds it.
    async def main():
        proc = await asyncio.create_subprocess_exec(PY, '-c', LEAVES_A_GRANDCHILD_WRITING,
                                                    stdout=subprocess.PIPE)
        output, _ = await asyncio.wait_for(proc.communicate(), 10)
        return output, proc.returncode

    assert run(loop, main()) == (b'early\nlate\n', 0)


def test_a_child_that_closes_its_stdout_and_runs_on(loop):
    # The end of the pipe is reported while the child still runs; its exit comes later.
    async def main():
        proc = await asyncio.create_subprocess_exec(
            'sh', '-c', 'echo out; exec 1>&-; sleep 0.3; exit 3', stdout=subprocess.PIPE)
        output = await asyncio.wait_for(proc.stdout.read(), 5)
        running_at_eof = proc.returncode is None
        return output, running_at_eof, await asyncio.wait_for(proc.wait(), 5)

    assert run(loop, main()) == (b'out\n', True, 3)


def test_all_a_child_wrote_before_exiting_comes_before_its_pipe_is_lost(loop):
    # The child's last write and its end of the pipe closing arrive together (EPOLLIN with
    # EPOLLHUP): the data is delivered first, then pipe_connection_lost, and connection_lost
    # comes last.
    size = 1024 * 1024 + 7
    events = []

    class Recorder(asyncio.SubprocessProtocol):
        def __init__(self):
            self.data = bytearray()
            self.done = loop.create_future()

        def pipe_data_received(self, fd, data):
            self.data += data
            if events[-1:] != [('data', fd)]:
                events.append(('data', fd))

        def pipe_connection_lost(self, fd, exc):
            events.append(('lost', fd, exc))

        def process_exited(self):
            events.append('exited')

        def connection_lost(self, exc):
            events.append('connection_lost')
            self.done.set_result(exc)

    async def main():
        transport, protocol = await loop.subprocess_exec(
            Recorder, PY, '-c', f'import os; os.write(1, b"x" * {size})', stdin=None,
            stderr=None)
        assert await asyncio.wait_for(protocol.done, 10) is None
        transport.close()
        return len(protocol.data)

    assert run(loop, main()) == size
    lost = events.index(('lost', 1, None))
    assert ('data', 1) in events[:lost] and ('data', 1) not in events[lost:]
    assert 'exited' in events and events[-1] == 'connection_lost'


def process_state(pid):
    """The state letter of /proc/<pid>/stat (R, S, Z...), or None once the process is gone."""
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return None


def test_a_transport_left_open_when_its_loop_closes_warns_and_kills_its_child(
        loop_factory, loop_name, request, monkeypatch):
    # As base_subprocess's __del__ does: a transport collected unclosed warns "unclosed
    # transport" (a ResourceWarning) and closes, which kills a running child. A closed loop
    # no longer keeps the transport of its running children.
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_CLOSED_LOOP_KEEPS_ITS_CHILDREN')
    loop = loop_factory()

    async def main():
        proc = await asyncio.create_subprocess_exec('sleep', '30', stdout=subprocess.PIPE)
        return proc.pid

    pid = loop.run_until_complete(main())
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            loop.close()
            del loop
            gc.collect()
        messages = [str(warning.message) for warning in caught
                    if warning.category is ResourceWarning]
        assert any(message.startswith('unclosed transport <') and f'pid={pid}' in message
                   for message in messages), messages
        deadline = time.monotonic() + 5
        while process_state(pid) not in (None, 'Z') and time.monotonic() < deadline:
            time.sleep(0.01)
        assert process_state(pid) in (None, 'Z')
    finally:
        if process_state(pid) not in (None, 'Z'):
            # asyncio before 3.12: its child watcher's thread still waits for the child, with
            # the transport, whose __del__ fails on the closed loop once the thread ends.
            watchers = [thread for thread in threading.enumerate()
                        if thread.name.startswith('asyncio-waitpid-')]
            monkeypatch.setattr(sys, 'unraisablehook', lambda unraisable: None)
            os.kill(pid, signal.SIGKILL)
            for thread in watchers:
                thread.join(5)
            gc.collect()
            monkeypatch.undo()
