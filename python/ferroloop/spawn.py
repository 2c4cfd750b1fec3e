"""Starting a subprocess transport's child natively (``_ferroloop._spawn``), with
``subprocess.Popen``'s arguments read as Popen reads them.

Popen's own fork/exec waits for the exec by reading its error pipe with ``os.read`` on the
calling thread, the loop's: a blocking call in the middle of a coroutine (blockbuster and
similar checkers flag it). Here the wait is native and takes no time: the child is a
``clone(CLONE_VM | CLONE_VFORK)``, and the parent resumes once it has exec'd. A
``preexec_fn`` (Python code run in the child) still needs Popen: such children are started
by it.
"""

import fcntl
import grp
import io
import os
import pwd
import signal
import subprocess
import sys
import warnings
from select import select
from subprocess import DEVNULL, PIPE, STDOUT

from . import _ferroloop


class Child:
    """What ``transport.get_extra_info('subprocess')`` gives for a natively started child:
    the part of ``subprocess.Popen`` that does not race with the loop, which alone reaps the
    child (``poll()`` and ``wait()`` report its exit without reaping it)."""

    def __init__(self, args, pid, stdin, stdout, stderr):
        self.args = args
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = None
        # Set by the loop when it reaps the child (before its return code is published to
        # the transport): from then on the pid may belong to another process.
        self._reaped = False

    def __repr__(self):
        return f'<{type(self).__name__}: returncode: {self.returncode} args: {self.args!r}>'

    def poll(self):
        """The return code if the child has exited, else None. The child is not reaped: the
        loop does that (so another process cannot get its pid before the loop knows)."""
        if self.returncode is None and not self._reaped:
            try:
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None  # reaped meanwhile by the loop, which sets returncode
            if info is not None:
                self.returncode = (info.si_status if info.si_code == os.CLD_EXITED
                                   else -info.si_status)
        return self.returncode

    def wait(self, timeout=None):
        """Blocks until the child exits (``subprocess.TimeoutExpired`` after ``timeout``
        seconds) and returns its return code, leaving it for the loop to reap."""
        if self.poll() is not None or self._reaped:
            return self.returncode
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return self.returncode
        try:
            if not select([pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout)
        finally:
            os.close(pidfd)
        return self.poll()

    def send_signal(self, sig):
        """Sends ``sig`` to the child unless the loop has reaped it (its pid is free then)."""
        if self._reaped or self.returncode is not None:
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


def _group_id(group, what):
    if isinstance(group, str):
        return grp.getgrnam(group).gr_gid
    if isinstance(group, int):
        return group
    raise TypeError(f'{what} must be a string or an integer, not {type(group)}')


def _checked_id(value, kind):
    if value < 0:
        raise ValueError(f'{kind} ID cannot be negative, got {value}')
    return value


def _ids(user, group, extra_groups):
    """Popen's reading of ``user``, ``group`` and ``extra_groups`` (names looked up)."""
    gid = None if group is None else _checked_id(_group_id(group, 'Group'), 'Group')
    gids = None
    if extra_groups is not None:
        if isinstance(extra_groups, str):
            raise ValueError('Groups must be a list, not a string')
        gids = [_group_id(g, 'Items in extra_groups') for g in extra_groups]
        for value in gids:
            _checked_id(value, 'Group')
    uid = None
    if user is not None:
        if isinstance(user, str):
            uid = pwd.getpwnam(user).pw_uid
        elif isinstance(user, int):
            uid = user
        else:
            raise TypeError('User must be a string or an integer')
        _checked_id(uid, 'User')
    return uid, gid, gids


class _Stdio:
    """Popen's ``_get_handles``: the fds to give the child and the pipe ends this side
    keeps. ``close()`` closes what was opened for the child (its pipe ends, /dev/null) once
    it has them, ``abort()`` everything opened."""

    def __init__(self, stdin, stdout, stderr):
        self.child = [-1, -1, -1]
        self.parent = [None, None, None]
        self._opened = []
        try:
            for fd, (spec, writes) in enumerate(((stdin, False), (stdout, True),
                                                 (stderr, True))):
                self.child[fd] = self._child_fd(fd, spec, writes)
        except BaseException:
            self.abort()
            raise

    def _child_fd(self, fd, spec, writes):
        if spec is None:
            return -1
        if spec == PIPE:
            read_end, write_end = os.pipe()
            self._opened.append(read_end)
            self._opened.append(write_end)
            self.parent[fd] = read_end if writes else write_end
            return write_end if writes else read_end
        if spec == DEVNULL:
            devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            self._opened.append(devnull)
            return devnull
        if spec == STDOUT and fd == 2:
            return self.child[1] if self.child[1] != -1 else sys.__stdout__.fileno()
        if isinstance(spec, int):
            return spec
        return spec.fileno()

    def close(self):
        """The child has its ends: close ours of them; return our ends as file objects."""
        kept = {fd for fd in self.parent if fd is not None}
        for fd in self._opened:
            if fd not in kept:
                os.close(fd)
        self._opened = []
        return [None if fd is None else io.open(fd, 'wb' if n == 0 else 'rb', 0)
                for n, fd in enumerate(self.parent)]

    def abort(self):
        for fd in self._opened:
            os.close(fd)
        self._opened = []


def _program(args, shell, executable):
    """Popen's ``args`` and ``executable`` as the argv list and the program to find."""
    if isinstance(args, (str, bytes)):
        args = [args]
    elif isinstance(args, os.PathLike):
        if shell:
            raise TypeError('path-like args is not allowed when shell is true')
        args = [args]
    else:
        args = list(args)
    if shell:
        args = ['/bin/sh', '-c', *args]
        if executable:
            args[0] = executable
    if executable is None:
        executable = args[0]
    return args, executable


def _candidates(executable, env):
    """The paths exec tries, as Popen (and os.execvpe) search PATH."""
    executable = os.fsencode(executable)
    if os.path.dirname(executable):
        return [executable]
    return [os.path.join(os.fsencode(directory), executable)
            for directory in os.get_exec_path(env)]


def _environment(env):
    if env is None:
        return None
    entries = []
    for key, value in env.items():
        key = os.fsencode(key)
        if b'=' in key:
            raise ValueError('illegal environment variable name')
        entries.append(key + b'=' + os.fsencode(value))
    return entries


def spawn(args, *, stdin, stdout, stderr, shell=False, executable=None, close_fds=True,
          pass_fds=(), cwd=None, env=None, restore_signals=True, start_new_session=False,
          process_group=None, user=None, group=None, extra_groups=None, umask=-1,
          pipesize=-1, startupinfo=None, creationflags=0):
    """Starts a child as ``subprocess.Popen(args, ...)`` (bytes pipes, no preexec_fn)
    would; returns its ``Child``."""
    if startupinfo is not None:
        raise ValueError('startupinfo is only supported on Windows platforms')
    if creationflags != 0:
        raise ValueError('creationflags is only supported on Windows platforms')
    if pass_fds and not close_fds:
        warnings.warn('pass_fds overriding close_fds.', RuntimeWarning, stacklevel=4)
        close_fds = True
    uid, gid, gids = _ids(user, group, extra_groups)
    argv, program = _program(args, shell, executable)
    sys.audit('subprocess.Popen', program, argv, cwd, env)
    env_list = _environment(env)
    candidates = _candidates(program, env)
    argv_bytes = [os.fsencode(arg) for arg in argv]
    cwd_bytes = None if cwd is None else os.fsencode(cwd)
    fds_to_keep = sorted({int(fd) for fd in pass_fds})
    if fds_to_keep and fds_to_keep[0] < 0:
        raise ValueError('bad value(s) in fds_to_keep')
    stdio = _Stdio(stdin, stdout, stderr)
    try:
        if pipesize > 0:
            for fd in filter(None, stdio.parent):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, pipesize)
        pid = _ferroloop._spawn(
            candidates, argv_bytes, env_list, cwd_bytes, stdio.child, fds_to_keep, close_fds,
            restore_signals, start_new_session,
            None if process_group is None or process_group < 0 else process_group,
            gids, gid, uid, None if umask < 0 else umask, program, cwd)
    except BaseException:
        stdio.abort()
        raise
    return Child(args, pid, *stdio.close())
