"""Subprocesses: ``subprocess_exec`` and ``subprocess_shell`` (so
``asyncio.create_subprocess_exec``/``create_subprocess_shell``).

The child's pipes are ferroloop's native pipe transports, driven by asyncio's own
``BaseSubprocessTransport``. The child is reaped through a pidfd the loop watches like any fd:
no child-watcher thread per process, and it works on a loop in any thread. (asyncio 3.11's
child watchers are not consulted.)
"""

import os
import subprocess
import threading
from asyncio import base_subprocess
from asyncio.log import logger
from signal import SIGKILL, SIGTERM

# What asyncio reports for a child it could not wait for (reaped by someone else).
_UNKNOWN_RETURNCODE = 255


class SubprocessTransport(base_subprocess.BaseSubprocessTransport):
    """An ``asyncio.SubprocessTransport`` whose pipes are native transports."""

    # Set by the loop in the very callback that reaps the child. Its exit is published one
    # iteration later (so output written before exiting is delivered first), and meanwhile the
    # pid is free for the kernel to hand to another process: signals must stop here, not when
    # the return code is known.
    _reaped = False

    def send_signal(self, signal):
        """Send ``signal`` to the child, unless it has exited (then nothing happens).

        Never through ``Popen.send_signal``: its ``poll()`` would reap the child behind the
        loop's back, which then could only report return code 255."""
        self._check_proc()
        if self._reaped or self._returncode is not None:
            return
        try:
            os.kill(self._proc.pid, signal)
        except ProcessLookupError:
            pass

    def terminate(self):
        self.send_signal(SIGTERM)

    def kill(self):
        self.send_signal(SIGKILL)

    def _start(self, args, shell, stdin, stdout, stderr, bufsize, **kwargs):
        self._proc = subprocess.Popen(args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
                                      universal_newlines=False, bufsize=bufsize, **kwargs)


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


def _reap_orphan(pid, loop_repr, transport):
    """Waits for a child whose loop closed before it exited, so it does not stay a zombie, and
    says so as asyncio's child watcher does. The thread holds the transport until then: its
    ``Popen``, freed after, finds the child reaped (no "still running" warning)."""
    try:
        # Wait without reaping first: the pid stays the child's until the transport knows
        # that signalling it must stop (a kill() after the loop closed must not reach whatever
        # process gets the number next).
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        transport._reaped = True
        os.waitpid(pid, 0)
    except ChildProcessError:
        transport._reaped = True  # reaped by someone else's waitpid() meanwhile
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
            threading.Thread(target=_reap_orphan, args=(pid, loop_repr, transport),
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
        protocol = protocol_factory()
        debug = self.get_debug()
        if debug:
            parts = [description]
            if stdin is not None:
                parts.append(f'stdin={_describe_pipe(stdin)}')
            if stdout is not None and stderr == subprocess.STDOUT:
                parts.append(f'stdout=stderr={_describe_pipe(stdout)}')
            else:
                if stdout is not None:
                    parts.append(f'stdout={_describe_pipe(stdout)}')
                if stderr is not None:
                    parts.append(f'stderr={_describe_pipe(stderr)}')
            logger.debug(' '.join(parts))
        transport = await self._make_subprocess_transport(protocol, args, shell, stdin, stdout,
                                                          stderr, bufsize, **kwargs)
        if debug:
            logger.info('%s: %r', description, transport)
        return transport, protocol

    async def _make_subprocess_transport(self, protocol, args, shell, stdin, stdout, stderr,
                                         bufsize, extra=None, **kwargs):
        waiter = self.create_future()
        transport = SubprocessTransport(self, protocol, args, shell, stdin, stdout, stderr, bufsize,
                                        waiter=waiter, extra=extra, **kwargs)
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
        transport._reaped = True
        try:
            reaped, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            reaped = None
        if reaped == 0:
            transport._reaped = False
            return  # not exited after all
        self.remove_reader(pidfd)
        del self._children[pidfd]
        os.close(pidfd)
        if reaped is None:
            self._child_gone(pid, transport)
            return
        # One more iteration first, as asyncio does: output the child wrote before exiting is
        # delivered before process_exited().
        self.call_soon(transport._process_exited, os.waitstatus_to_exitcode(status))

    def _child_gone(self, pid, transport):
        transport._reaped = True
        logger.warning('Unknown child process pid %d, will report returncode %d', pid,
                       _UNKNOWN_RETURNCODE)
        self.call_soon(transport._process_exited, _UNKNOWN_RETURNCODE)

