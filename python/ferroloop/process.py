"""Subprocesses: ``subprocess_exec`` and ``subprocess_shell`` (so
``asyncio.create_subprocess_exec``/``create_subprocess_shell``).

The child is started natively (``spawn.py``); its pipes are ferroloop's native pipe
transports, under a ``SubprocessTransport`` that behaves as asyncio's
``BaseSubprocessTransport`` of the latest Python (``wait()`` returns when the child exits, even
while something else holds its pipes open), with every protocol callback in the context of the
call that made it. The child is reaped through a pidfd the loop watches like any fd: no
child-watcher thread per process, and it works on a loop in any thread. (asyncio 3.11's child
watchers are not consulted.)
"""

import collections
import contextvars
import os
import subprocess
import threading
import warnings
from asyncio import transports
from asyncio.base_subprocess import ReadSubprocessPipeProto, WriteSubprocessPipeProto
from asyncio.log import logger
from signal import SIGKILL, SIGTERM

from . import spawn

# What asyncio reports for a child it could not wait for (reaped by someone else).
_UNKNOWN_RETURNCODE = 255

# Popen's keywords the native spawn takes (the Windows-only ones refused as Popen refuses
# them); any other (``preexec_fn``, which runs Python in the child, or one this Python's Popen
# may not know) goes to ``subprocess.Popen`` itself.
_NATIVE_KEYWORDS = frozenset((
    'executable', 'close_fds', 'pass_fds', 'cwd', 'env', 'restore_signals', 'start_new_session',
    'process_group', 'user', 'group', 'extra_groups', 'umask', 'pipesize', 'startupinfo',
    'creationflags'))


def _start_child(args, shell, stdin, stdout, stderr, bufsize, kwargs):
    """The child object of a new transport: a ``spawn.Child``, or a ``subprocess.Popen``
    where only Popen can do what is asked."""
    if kwargs.get('preexec_fn') is None:
        kwargs.pop('preexec_fn', None)
        if kwargs.keys() <= _NATIVE_KEYWORDS:
            return spawn.spawn(args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
                               **kwargs)
    proc = subprocess.Popen(args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
                            universal_newlines=False, bufsize=bufsize, **kwargs)
    proc._reaped = False  # as spawn.Child's: set by the loop when it reaps the child
    return proc


def _has_exited(proc):
    """Whether the child has exited, reaped or not. A Popen is not asked: its poll() would
    reap the child behind the loop's back."""
    return (proc.poll() if isinstance(proc, spawn.Child) else proc.returncode) is not None


class SubprocessTransport(transports.SubprocessTransport):
    """An ``asyncio.SubprocessTransport`` whose pipes are native transports.

    Its protocol's callbacks all run in ``context``: that of the ``subprocess_exec()`` or
    ``subprocess_shell()`` call, as uvloop runs them (asyncio runs each in whichever
    context scheduled it: the pipes', the child watcher's, a ``close()`` caller's)."""

    def __init__(self, loop, protocol, context, proc, args, waiter, extra=None):
        super().__init__(extra)
        self._loop = loop
        self._protocol = protocol
        self._context = context
        self._proc = proc
        self._pid = proc.pid
        self._extra['subprocess'] = proc
        self._closed = False
        self._returncode = None
        self._exit_waiters = set()
        self._pending_calls = collections.deque()
        self._finished = False
        self._pipes = {fd: None for fd, pipe in enumerate((proc.stdin, proc.stdout, proc.stderr))
                       if pipe is not None}
        if loop.get_debug():
            program = args if isinstance(args, (bytes, str)) else args[0]
            logger.debug('process %r created: pid %s', program, self._pid)
        loop.create_task(self._connect_pipes(waiter), context=context)

    def __repr__(self):
        info = [type(self).__name__]
        if self._closed:
            info.append('closed')
        info.append(f'pid={self._pid}')
        if self._returncode is not None:
            info.append(f'returncode={self._returncode}')
        else:
            info.append('running')
        stdin, stdout, stderr = (self._pipes.get(fd) for fd in (0, 1, 2))
        info.extend(_describe_stdio(stdin, stdout, stderr, stdout is not None and stderr is stdout,
                                    lambda proto: proto.pipe))
        return '<{}>'.format(' '.join(info))

    def set_protocol(self, protocol):
        self._protocol = protocol

    def get_protocol(self):
        return self._protocol

    def is_closing(self):
        return self._closed

    def close(self):
        if self._closed:
            return
        self._closed = True
        for proto in self._pipes.values():
            if proto is not None:
                proto.pipe.close()
        proc = self._proc
        if proc is not None and self._returncode is None and not _has_exited(proc):
            if self._loop.get_debug():
                logger.warning('Close running child process: kill %r', self)
            try:
                self.kill()
            except PermissionError:
                pass  # a setuid child

    def __del__(self, _warn=warnings.warn):
        if not self._closed:
            _warn(f'unclosed transport {self!r}', ResourceWarning, source=self)
            self.close()

    def get_pid(self):
        return self._pid

    def get_returncode(self):
        return self._returncode

    def get_pipe_transport(self, fd):
        if fd in self._pipes:
            return self._pipes[fd].pipe
        return None

    def _check_proc(self):
        if self._proc is None:
            raise ProcessLookupError()

    def send_signal(self, signal):
        """Send ``signal`` to the child, unless it has exited (then nothing happens).

        Never through ``Popen.send_signal``: its ``poll()`` would reap the child behind the
        loop's back, which then could only report return code 255. Nor once the loop has
        reaped the child: its exit is published one iteration later (so output written before
        exiting is delivered first), and meanwhile the pid is free for the kernel to hand to
        another process."""
        self._check_proc()
        proc = self._proc
        if proc._reaped or self._returncode is not None:
            return
        try:
            os.kill(proc.pid, signal)
        except ProcessLookupError:
            pass

    def terminate(self):
        self.send_signal(SIGTERM)

    def kill(self):
        self.send_signal(SIGKILL)

    async def _connect_pipes(self, waiter):
        proc = self._proc
        loop = self._loop
        try:
            if proc.stdin is not None:
                _, self._pipes[0] = await loop.connect_write_pipe(
                    lambda: WriteSubprocessPipeProto(self, 0), proc.stdin)
            for fd, pipe in ((1, proc.stdout), (2, proc.stderr)):
                if pipe is not None:
                    _, self._pipes[fd] = await loop.connect_read_pipe(
                        lambda fd=fd: ReadSubprocessPipeProto(self, fd), pipe)
            loop.call_soon(self._protocol.connection_made, self, context=self._context)
            for callback, data in self._pending_calls:
                loop.call_soon(callback, *data, context=self._context)
            self._pending_calls = None
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            # Nothing may stay open: the pipes connected so far, and the child's ends.
            for proto in self._pipes.values():
                if proto is not None:
                    proto.pipe.close()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            if waiter is not None and not waiter.cancelled():
                waiter.set_exception(exc)
        else:
            if waiter is not None and not waiter.cancelled():
                waiter.set_result(None)

    def _call(self, callback, *data):
        if self._pending_calls is not None:
            self._pending_calls.append((callback, data))
        else:
            self._loop.call_soon(callback, *data, context=self._context)

    def _pipe_connection_lost(self, fd, exc):
        self._call(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _pipe_data_received(self, fd, data):
        self._call(self._protocol.pipe_data_received, fd, data)

    def _process_exited(self, returncode):
        if self._loop.get_debug():
            logger.info('%r exited with return code %r', self, returncode)
        self._returncode = returncode
        if self._proc.returncode is None:
            self._proc.returncode = returncode
        self._call(self._protocol.process_exited)
        # wait() returns now, not when the pipes close: a grandchild may hold them open.
        for waiter in self._exit_waiters:
            if not waiter.done():
                waiter.set_result(returncode)
        self._exit_waiters = None
        self._try_finish()

    async def _wait(self):
        """Wait until the child exits; return its return code."""
        if self._returncode is not None:
            return self._returncode
        waiter = self._loop.create_future()
        self._exit_waiters.add(waiter)
        try:
            return await waiter
        finally:
            if self._exit_waiters is not None:
                self._exit_waiters.discard(waiter)

    def _try_finish(self):
        if self._returncode is None or self._finished:
            return
        if all(p is not None and p.disconnected for p in self._pipes.values()):
            self._finished = True
            self._call(self._call_connection_lost, None)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._loop = None
            self._proc = None
            self._protocol = None


def _describe_stdio(stdin, stdout, stderr, stderr_is_stdout, describe):
    """asyncio's ``stdin=... stdout=stderr=...`` words for a subprocess's standard streams,
    each present one shown by ``describe``."""
    words = []
    if stdin is not None:
        words.append(f'stdin={describe(stdin)}')
    if stderr_is_stdout:
        words.append(f'stdout=stderr={describe(stdout)}')
    else:
        if stdout is not None:
            words.append(f'stdout={describe(stdout)}')
        if stderr is not None:
            words.append(f'stderr={describe(stderr)}')
    return words


def _describe_pipe(fd):
    if fd == subprocess.PIPE:
        return '<pipe>'
    if fd == subprocess.STDOUT:
        return '<stdout>'
    return repr(fd)


def _check_byte_stream_arguments(bufsize, text, encoding, errors):
    if bufsize != 0:
        raise ValueError('bufsize must be 0')
    if text:
        raise ValueError('text must be False')
    if encoding is not None:
        raise ValueError('encoding must be None')
    if errors is not None:
        raise ValueError('errors must be None')


def _reap_orphan(pid, loop_repr, proc):
    """Waits for a child whose loop closed before it exited, so it does not stay a zombie, and
    says so as asyncio's child watcher does."""
    try:
        # Wait without reaping first: the pid stays the child's until its object knows that
        # signalling it must stop (a kill() after the loop closed must not reach whatever
        # process gets the number next).
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        proc._reaped = True
        _, status = os.waitpid(pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        proc._reaped = True  # reaped by someone else's waitpid() meanwhile
    logger.warning('Loop %s that handles pid %r is closed', loop_repr, pid)


class SubprocessMixin:

    def _init_subprocesses(self):
        # pidfd -> (pid, transport) of every child not yet reaped.
        self._children = {}

    def _close_subprocesses(self):
        """The loop closes with children still running: their pidfds are closed and each is
        waited for by a thread of its own, as asyncio 3.11's default child watcher waits for
        every child, so that it is reaped whenever it exits."""
        children, self._children = self._children, {}
        loop_repr = repr(self)
        for pidfd, (pid, transport) in children.items():
            os.close(pidfd)
            threading.Thread(target=_reap_orphan, args=(pid, loop_repr, transport._proc),
                             name=f'ferroloop-reaper-{pid}', daemon=True).start()

    async def subprocess_shell(self, protocol_factory, cmd, *, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=False, shell=True, bufsize=0, encoding=None,
                               errors=None, text=None, **kwargs):
        """Run ``cmd`` through the shell; return ``(transport, protocol)``."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError('cmd must be a string')
        if universal_newlines:
            raise ValueError('universal_newlines must be False')
        if not shell:
            raise ValueError('shell must be True')
        _check_byte_stream_arguments(bufsize, text, encoding, errors)
        # The command itself is not logged: it may hold secrets.
        return await self._spawn(protocol_factory, cmd, True, stdin, stdout, stderr, bufsize,
                                 f'run shell command {cmd!r}', kwargs)

    async def subprocess_exec(self, protocol_factory, program, *args, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=False, shell=False, bufsize=0, encoding=None,
                              errors=None, text=None, **kwargs):
        """Run ``program`` with ``args``; return ``(transport, protocol)``."""
        if universal_newlines:
            raise ValueError('universal_newlines must be False')
        if shell:
            raise ValueError('shell must be False')
        _check_byte_stream_arguments(bufsize, text, encoding, errors)
        return await self._spawn(protocol_factory, (program, *args), False, stdin, stdout, stderr,
                                 bufsize, f'execute program {program!r}', kwargs)

    async def _spawn(self, protocol_factory, args, shell, stdin, stdout, stderr, bufsize,
                     description, kwargs):
        # The protocol is made, and all its callbacks run, in the context of this call.
        context = contextvars.copy_context()
        protocol = context.run(protocol_factory)
        debug = self.get_debug()
        if debug:
            parts = [description]
            parts.extend(_describe_stdio(stdin, stdout, stderr,
                                         stdout is not None and stderr == subprocess.STDOUT,
                                         _describe_pipe))
            logger.debug(' '.join(parts))
        transport = await self._make_subprocess_transport(protocol, args, shell, stdin, stdout,
                                                          stderr, bufsize, context=context,
                                                          **kwargs)
        if debug:
            logger.info('%s: %r', description, transport)
        return transport, protocol

    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr,
                                         bufsize, extra=None, *, context=None, **kwargs):
        proc = _start_child(args, shell, stdin, stdout, stderr, bufsize, kwargs)
        waiter = self.create_future()
        transport = SubprocessTransport(self, protocol, context or contextvars.copy_context(),
                                        proc, args, waiter, extra)
        self._watch_child(transport)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transport.close()
            await transport._wait()
            raise
        return transport

    def _watch_child(self, transport):
        pid = transport.get_pid()
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            # Already reaped by someone else's waitpid(): its status is gone.
            self._child_gone(pid, transport)
            return
        try:
            self._add_reader(pidfd, self._reap_child, pid, pidfd, transport)
        except BaseException:
            os.close(pidfd)
            raise
        self._children[pidfd] = (pid, transport)

    def _reap_child(self, pid, pidfd, transport):
        # Before waitpid, not after: another thread's kill() between the two would signal a
        # freed pid. A readable pidfd means the child has exited, so no signal is lost.
        proc = transport._proc
        proc._reaped = True
        try:
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            reaped = None
        if reaped == 0:
            proc._reaped = False
            return  # not exited after all
        self.remove_reader(pidfd)
        del self._children[pidfd]
        os.close(pidfd)
        if reaped is None:
            self._child_gone(pid, transport)
            return
        # Known to the child's object at once (its poll() and wait() report it), but published
        # to the transport one iteration later, as asyncio does: output the child wrote before
        # exiting is delivered before process_exited().
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.call_soon(transport._process_exited, proc.returncode)

    def _child_gone(self, pid, transport):
        transport._proc._reaped = True
        logger.warning('Unknown child process pid %d, will report returncode %d', pid,
                       _UNKNOWN_RETURNCODE)
        self.call_soon(transport._process_exited, _UNKNOWN_RETURNCODE)

