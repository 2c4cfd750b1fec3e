"""Starting children: every ``subprocess.Popen`` argument ``subprocess_exec``/``_shell`` take,
the errors Popen raises when the child cannot start, and nothing left behind."""

import asyncio
import os
import signal
import subprocess
import sys
import warnings

import pytest

from conftest import expect_asyncio_bug

PY = sys.executable


async def output_of(*args, shell=False, **kwargs):
    """The child's stdout (stripped) once it has exited with 0."""
    kwargs.setdefault('stdout', subprocess.PIPE)
    if shell:
        proc = await asyncio.create_subprocess_shell(*args, **kwargs)
    else:
        proc = await asyncio.create_subprocess_exec(*args, **kwargs)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.strip()


def python_output(code, **kwargs):
    return output_of(PY, '-c', code, **kwargs)


def test_stdio_pipe_devnull_stdout_fds_and_files(run_async, tmp_path):
    async def main():
        # stdin from a file object, stdout to an fd, stderr into stdout.
        source = tmp_path / 'in'
        source.write_bytes(b'from a file')
        target = tmp_path / 'out'
        with open(source, 'rb') as stdin, open(target, 'wb') as stdout:
            proc = await asyncio.create_subprocess_exec(
                PY, '-c', 'import sys; print(sys.stdin.read()); print("err", file=sys.stderr)',
                stdin=stdin, stdout=stdout.fileno(), stderr=subprocess.STDOUT)
            assert await proc.wait() == 0
        assert target.read_bytes().split() == [b'from', b'a', b'file', b'err']
        # DEVNULL everywhere: stdin reads nothing.
        proc = await asyncio.create_subprocess_exec(
            PY, '-c', 'import sys; assert sys.stdin.read() == ""', stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert await proc.wait() == 0
        assert proc.stdout is None
        # PIPE on all three.
        proc = await asyncio.create_subprocess_exec(
            PY, '-c', 'import sys; sys.stdout.write(sys.stdin.read()); sys.stderr.write("e")',
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert await proc.communicate(b'piped') == (b'piped', b'e')

    run_async(main())


STDIO_COLLISIONS = '''
import asyncio, os, subprocess, sys, ferroloop
factory = {"asyncio": asyncio.SelectorEventLoop, "ferroloop": ferroloop.new_event_loop}[sys.argv[1]]
# With 0 and 1 closed, the pipes for the child get those numbers: the child's stdin pipe end is
# 0, its stdout pipe end 1, and stderr=STDOUT must follow stdout, not land on the stdin pipe.
out = os.dup(1)
os.close(0)
os.close(1)
async def main():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper()); "
        "sys.stderr.write('!')", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    data, _ = await proc.communicate(b"collide")
    os.write(out, data + b" %d" % proc.returncode)
loop = factory()
loop.run_until_complete(main())
loop.close()
'''


def test_stdio_plan_with_fds_0_and_1_closed(loop_name):
    result = subprocess.run([PY, '-c', STDIO_COLLISIONS, loop_name], capture_output=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b'COLLIDE! 0'


def test_cwd_str_bytes_and_path(run_async, tmp_path):
    async def main():
        for cwd in (str(tmp_path), os.fsencode(tmp_path), tmp_path):
            assert await python_output('import os; print(os.getcwd())', cwd=cwd) == \
                os.fsencode(tmp_path)

    run_async(main())


def test_env_replaces_the_environment_and_its_path_finds_the_program(run_async, tmp_path):
    script = tmp_path / 'only-here'
    script.write_text('#!/bin/sh\necho "found $FOO"\n')
    script.chmod(0o755)

    async def main():
        env = {'FOO': 'bar', 'PATH': str(tmp_path)}
        assert await output_of('only-here', env=env) == b'found bar'
        assert await output_of(PY, '-c', 'import os; print(sorted(os.environ))',
                               env={'A': '1', b'B': b'2'}) in (b"['A', 'B']",
                                                               b"['A', 'B', 'LC_CTYPE']")
        # env=None: this process's environment, changes through os.environ included.
        os.environ['FERROLOOP_SPAWN_TEST'] = 'inherited'
        try:
            assert await python_output(
                'import os; print(os.environ["FERROLOOP_SPAWN_TEST"])') == b'inherited'
        finally:
            del os.environ['FERROLOOP_SPAWN_TEST']

    run_async(main())


def test_executable_and_shell(run_async):
    async def main():
        # executable runs in place of args[0], which the program still sees as its name.
        assert await output_of('a-name', '-c', 'echo $0', executable='/bin/sh') == b'a-name'
        assert await output_of('echo $0', shell=True) == b'/bin/sh'
        assert await output_of('echo $0', shell=True, executable='/bin/bash') == b'/bin/bash'
        assert await output_of('echo "$HOME" | tr a-z A-Z', shell=True,
                               env={'HOME': 'home'}) == b'HOME'

    run_async(main())


def test_pass_fds_and_close_fds(run_async):
    async def main():
        read_end, write_end = os.pipe()
        try:
            code = f'import os; os.write({write_end}, b"passed")'
            await python_output(code, pass_fds=[write_end])
            assert os.read(read_end, 100) == b'passed'
            # Not passed: closed in the child, inheritable or not.
            os.set_inheritable(write_end, True)
            check = f'import os\ntry:\n os.fstat({write_end}); print("open")\n' \
                    'except OSError: print("closed")'
            assert await python_output(check) == b'closed'
            # close_fds=False keeps inheritable fds only.
            assert await python_output(check, close_fds=False) == b'open'
            os.set_inheritable(write_end, False)
            assert await python_output(check, close_fds=False) == b'closed'
            with pytest.warns(RuntimeWarning, match='pass_fds overriding close_fds'):
                await python_output(code, pass_fds=[write_end], close_fds=False)
            assert os.read(read_end, 100) == b'passed'
        finally:
            os.close(read_end)
            os.close(write_end)

    run_async(main())


def test_new_session_and_process_group(run_async):
    async def main():
        ids = 'import os; print(os.getpid(), os.getsid(0), os.getpgid(0))'
        pid, sid, pgid = (await python_output(ids, start_new_session=True)).split()
        assert pid == sid == pgid
        pid, sid, pgid = (await python_output(ids, process_group=0)).split()
        assert pid == pgid and sid != pid
        pid, sid, pgid = (await python_output(ids)).split()
        assert int(pgid) == os.getpgid(0) and pid != pgid

    run_async(main())


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason='changing user and groups needs root')


@needs_root
def test_user_group_and_extra_groups(run_async):
    async def main():
        # A shell, not Python: the interpreter may sit where user nobody cannot read it.
        ids = 'echo $(id -u) $(id -g) $(id -G)'
        out = await output_of(ids, shell=True, user=65534, group=65534,
                              extra_groups=[65533, 65534])
        assert out == b'65534 65534 65534 65533'
        import grp
        import pwd
        user = pwd.getpwuid(65534).pw_name
        group = grp.getgrgid(65534).gr_name
        assert await output_of(ids, shell=True, user=user, group=group,
                               extra_groups=[]) == b'65534 65534 65534'

    run_async(main())


def test_umask(run_async):
    async def main():
        assert await python_output('import os; print(oct(os.umask(0)))', umask=0o027) == b'0o27'

    run_async(main())


def signal_masks(out):
    """The SigBlk and SigIgn masks of a /proc/PID/status."""
    fields = dict(line.split(':\t') for line in out.decode().splitlines())
    return int(fields['SigBlk'], 16), int(fields['SigIgn'], 16)


SIGPIPE_BIT = 1 << (signal.SIGPIPE - 1)
# exec: the shell itself blocks signals while it waits for a child.
READ_MASKS = 'exec grep -E "^Sig(Blk|Ign)" /proc/$$/status'


def test_restore_signals(run_async):
    async def main():
        # Python ignores SIGPIPE; the child gets the default back unless told otherwise.
        _, ignored = signal_masks(await output_of(READ_MASKS, shell=True))
        assert not ignored & SIGPIPE_BIT
        _, ignored = signal_masks(await output_of(READ_MASKS, shell=True, restore_signals=False))
        assert ignored & SIGPIPE_BIT

    run_async(main())


def test_child_starts_with_no_signal_blocked(run_async, loop_name, request):
    # As libuv's children: the mask of the thread that spawns is not the child's.
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_CHILDREN_INHERIT_THE_SIGNAL_MASK')

    async def main():
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            blocked, _ = signal_masks(await output_of(READ_MASKS, shell=True))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        assert blocked == 0

    run_async(main())


def test_preexec_fn(run_async):
    async def main():
        out = await python_output('import os; print(os.getpid() == os.getsid(0))',
                                  preexec_fn=os.setsid)
        assert out == b'True'

    run_async(main())


def not_executable(tmp_path):
    path = tmp_path / 'not-executable'
    path.write_text('#!/bin/sh\n')
    path.chmod(0o644)
    return path


@pytest.mark.parametrize('case', ['missing', 'not-on-path', 'bad-cwd', 'not-executable',
                                  'directory', 'bad-process-group'])
def test_errors_when_the_child_cannot_start(run_async, tmp_path, case):
    program, kwargs = PY, {}
    if case == 'missing':
        program = str(tmp_path / 'missing')
        expected = (FileNotFoundError, program)
    elif case == 'not-on-path':
        program = 'ferroloop-no-such-program'
        expected = (FileNotFoundError, program)
    elif case == 'bad-cwd':
        kwargs['cwd'] = tmp_path / 'no-such-dir'
        expected = (FileNotFoundError, kwargs['cwd'])
    elif case == 'not-executable':
        # A str: 3.13+'s Popen reports a path object's name as str when it spawns with
        # os.posix_spawn, and the object itself otherwise.
        program = str(not_executable(tmp_path))
        expected = (PermissionError, program)
    elif case == 'directory':
        program = str(tmp_path)
        expected = (PermissionError, program)
    else:
        kwargs['process_group'] = 1  # init's: in another session
        expected = (PermissionError, None)

    async def main():
        with pytest.raises(OSError) as info:
            await asyncio.create_subprocess_exec(program, '-c', 'pass', stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                 **kwargs)
        return info.value

    error = run_async(main())
    assert (type(error), error.filename) == expected
    assert error.strerror == os.strerror(error.errno)


def test_bad_arguments(run_async):
    async def main():
        exec_ = asyncio.create_subprocess_exec
        with pytest.raises(ValueError, match='illegal environment variable name'):
            await exec_(PY, '-c', 'pass', env={'A=B': '1'})
        with pytest.raises(ValueError, match='embedded null byte'):
            await exec_(PY, '-c', 'pass\0')
        with pytest.raises(ValueError, match='embedded null byte'):
            await exec_(PY, '-c', 'pass', env={'A': '\0'})
        with pytest.raises(TypeError, match='expected str, bytes or os.PathLike object, not int'):
            await exec_(PY, '-c', 5)
        with pytest.raises(ValueError, match='User ID cannot be negative, got -1'):
            await exec_(PY, user=-1)
        with pytest.raises(ValueError, match='Group ID cannot be negative, got -2'):
            await exec_(PY, group=-2)
        with pytest.raises(TypeError, match='Group must be a string or an integer'):
            await exec_(PY, group=1.5)
        with pytest.raises(ValueError, match='Groups must be a list, not a string'):
            await exec_(PY, extra_groups='wheel')
        with pytest.raises(KeyError):
            await exec_(PY, user='ferroloop-no-such-user')
        with pytest.raises(ValueError, match=r'bad value\(s\) in fds_to_keep'):
            await exec_(PY, pass_fds=[-1])
        with pytest.raises(ValueError, match='startupinfo is only supported on Windows'):
            await exec_(PY, startupinfo=object())
        with pytest.raises(ValueError, match='creationflags is only supported on Windows'):
            await exec_(PY, creationflags=1)

    run_async(main())


def zombies_of_this_process():
    found = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if fields[0] == 'Z' and int(fields[1]) == os.getpid():
            found.append(int(entry))
    return found


def test_no_fd_leak_and_no_zombie_after_many_spawns(run_async, tmp_path):
    async def main():
        for _ in range(3):  # warm up (the loop's own lazily made fds)
            await python_output('pass', stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        before = sorted(os.listdir('/proc/self/fd'))
        for i in range(30):
            await python_output('pass', stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            proc = await asyncio.create_subprocess_exec(
                'true', stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            await proc.wait()
            for kwargs in ({'cwd': tmp_path / 'missing'}, {'process_group': 1}, {}):
                program = PY if kwargs else str(tmp_path / 'missing')
                with pytest.raises(OSError):
                    await asyncio.create_subprocess_exec(
                        program, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, **kwargs)
        assert sorted(os.listdir('/proc/self/fd')) == before
        assert zombies_of_this_process() == []

    run_async(main(), timeout=120)


def test_the_child_object(run_async, loop_name, request):
    # transport.get_extra_info('subprocess'): asyncio's is the Popen; ferroloop's has its pid,
    # args, returncode, poll(), wait(), send_signal(), terminate() and kill().
    async def main():
        args = (PY, '-c', 'import time; time.sleep(60)')
        proc = await asyncio.create_subprocess_exec(*args)
        child = proc._transport.get_extra_info('subprocess')
        assert child.pid == proc.pid
        assert tuple(child.args) == args
        assert child.poll() is None and child.returncode is None
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.05)
        child.send_signal(signal.SIGTERM)
        assert await proc.wait() == -signal.SIGTERM
        assert child.returncode == child.poll() == -signal.SIGTERM
        child.kill()  # exited: nothing happens
        child.terminate()

    run_async(main())


def test_blocking_wait_on_the_child_object_keeps_the_status(run_async, loop_name, request,
                                                             caplog):
    # The child object's wait() (blocking, on the loop's thread) must not reap the child
    # behind the loop's back: the transport then knows its status, not 255.
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_POPEN_WAIT_REAPS_THE_CHILD', strict=False)

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, '-c', 'import sys; sys.exit(3)')
        assert proc._transport.get_extra_info('subprocess').wait() == 3
        return await proc.wait()

    assert run_async(main()) == 3
    assert 'returncode 255' not in caplog.text


def test_spawning_reads_nothing_on_the_loop_thread(run_async, loop_name, request,
                                                   monkeypatch):
    # Popen waits for its child's exec with os.read() on the calling thread: a blocking call
    # on the loop's thread, which blockbuster and its like flag.
    expect_asyncio_bug(request, loop_name, 'ASYNCIO_SPAWN_READS_ON_THE_LOOP_THREAD')
    reads = []
    real_read = os.read

    def read(fd, n):
        reads.append(fd)
        return real_read(fd, n)

    async def main():
        monkeypatch.setattr(os, 'read', read)
        try:
            # With Popen's Windows-only keywords at their defaults, as anyio passes them.
            proc = await asyncio.create_subprocess_exec(
                'true', stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                startupinfo=None, creationflags=0)
            with pytest.raises(FileNotFoundError):
                await asyncio.create_subprocess_exec('/ferroloop/no/such/program')
        finally:
            monkeypatch.undo()
        await proc.communicate()

    run_async(main())
    assert reads == []


def test_no_still_running_warning_once_waited(loop_factory):
    # The child's object is freed after the loop, which reaped the child: no
    # "subprocess ... is still running" ResourceWarning (Popen's __del__ warns when it finds
    # its child not reaped).
    loop = loop_factory()

    async def main():
        proc = await asyncio.create_subprocess_exec(PY, '-c', 'pass', stdout=subprocess.PIPE)
        await proc.communicate()
        return proc

    proc = loop.run_until_complete(main())
    loop.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        del proc
        import gc
        gc.collect()
    assert [str(w.message) for w in caught] == []
