"""The fuzz's worker process: runs the calls the fuzz generates, on one loop at a time, and
reports how each ended.

It runs apart from pytest so that an interpreter abort (a Rust panic that aborts, a
segfault) or a hang kills only the worker: the fuzz sees it die or fall silent and reports
the call as a crash or a hang. Requests and replies are pickles on two pipes (fds given on
the command line); the worker's own stdout and stderr are the fuzzed code's to write to.

A request is ``(loop_name, scenario, wait)``: ``scenario`` is ``{'debug': bool, 'steps':
[step, ...]}``, a step is ``(target, method, args, kwargs, where)`` (see fuzz_catalog) and
``wait`` how long an awaitable result may take. The reply is ``{'steps': [outcome, ...],
'stderr': text}``, an outcome being ``('ok',)``, ``('pending',)`` (still not done after
``wait``), ``('raise', 'ExceptionType')`` or ``('absent',)`` (no such method).
"""

import asyncio
import contextvars
import decimal
import fractions
import gc
import inspect
import os
import pickle
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import ferroloop
from fuzz_catalog import Tok

LOOPS = {'asyncio': asyncio.SelectorEventLoop, 'ferroloop': ferroloop.new_event_loop}

# A loop left running by a call (run_forever, run_until_complete on a future that never
# completes) is stopped after this long.
RUN_GUARD = 0.3


def exception_name(exc):
    cls = type(exc)
    return cls.__name__ if cls.__module__ == 'builtins' else f'{cls.__module__}.{cls.__qualname__}'


class Watchdog:
    """Stops a loop that a call left running for more than RUN_GUARD seconds, from a thread
    of its own (the stop reaches a loop blocked in its poller through call_soon_threadsafe)."""

    def __init__(self):
        self._lock = threading.Condition()
        self._loop = None
        self._deadline = None
        threading.Thread(target=self._watch, daemon=True, name='fuzz-watchdog').start()

    def arm(self, loop):
        with self._lock:
            self._loop = loop
            self._deadline = time.monotonic() + RUN_GUARD
            self._lock.notify()

    def disarm(self):
        with self._lock:
            self._loop = None

    def _watch(self):
        while True:
            with self._lock:
                while self._loop is None:
                    self._lock.wait()
                timeout = self._deadline - time.monotonic()
                if timeout > 0:
                    self._lock.wait(timeout)
                    continue
                loop = self._loop
                self._deadline = time.monotonic() + RUN_GUARD
            try:
                if loop.is_running():
                    loop.call_soon_threadsafe(loop.stop)
            except Exception:  # noqa: BLE001 - a closed loop needs no stopping
                pass


WATCHDOG = None


# What the tokens become.

class Protocol(asyncio.Protocol):
    pass


class Buffered(asyncio.BufferedProtocol):
    def get_buffer(self, sizehint):
        return bytearray(1024)

    def buffer_updated(self, nbytes):
        pass


def noop(*args):
    return None


def raises(*args):
    raise ValueError('fuzz callback')


async def async_noop(*args):
    return None


def handler(loop, context):
    pass


def task_factory(loop, coro, context=None):
    return asyncio.Task(coro, loop=loop, context=context)


class Env:
    """One loop, and what the calls of one scenario use and leave behind."""

    def __init__(self, loop_name, debug):
        self.loop = LOOPS[loop_name]()
        self.loop.set_debug(debug)
        self.loop.set_exception_handler(handler)
        self.other_loop = None
        self.tmp = tempfile.mkdtemp(prefix='ferroloop-fuzz-')
        self.closers = []
        self.targets = {}
        self.listener = None

    # Resources

    def keep(self, obj, close='close'):
        self.closers.append((obj, close))
        return obj

    def listening(self):
        if self.listener is None:
            self.listener = self.keep(socket.create_server(('127.0.0.1', 0), backlog=64))
            self.listener.setblocking(False)
        return self.listener

    def port(self, variant):
        if variant == 'listening':
            return self.listening().getsockname()[1]
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            return s.getsockname()[1]

    def sock(self, variant):
        if variant == 'listening':
            return self.listening()
        if variant == 'udp':
            s = self.keep(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            s.bind(('127.0.0.1', 0))
            s.setblocking(False)
            return s
        if variant == 'unix_pair':
            a, b = socket.socketpair()
            self.keep(b)
            a.setblocking(False)
            return self.keep(a)
        if variant == 'connected':
            s = self.keep(socket.create_connection(self.listening().getsockname()))
            s.setblocking(False)
            return s
        s = self.keep(socket.socket())
        if variant == 'closed':
            s.close()
        elif variant == 'blocking':
            # Blocking (asyncio's check is gettimeout() != 0) but never for long: asyncio's
            # loop would otherwise block for good in a sock_* call on it.
            s.settimeout(0.05)
        else:
            s.setblocking(False)
        return s

    def pipe(self, variant):
        r, w = os.pipe()
        read_end = self.keep(os.fdopen(r, 'rb', buffering=0))
        write_end = self.keep(os.fdopen(w, 'wb', buffering=0))
        if variant == 'read_end':
            return read_end
        if variant == 'write_end':
            return write_end
        if variant == 'closed':
            read_end.close()
            return read_end
        if variant == 'read_fd':
            return r
        if variant == 'write_fd':
            return w
        if variant == 'closed_fd':
            write_end.close()
            return w
        raise ValueError(variant)

    def file(self, variant):
        path = os.path.join(self.tmp, 'file')
        with open(path, 'wb') as f:
            f.write(b'x' * 1000)
        if variant == 'text':
            return self.keep(open(path, encoding='ascii'))  # noqa: SIM115
        f = self.keep(open(path, 'rb'))  # noqa: SIM115
        if variant == 'closed':
            f.close()
        return f

    def path(self, variant):
        if variant == 'missing':
            return os.path.join(self.tmp, 'missing', 'sock')
        if variant == 'abstract':
            return f'\0ferroloop-fuzz-{os.getpid()}-{len(self.closers)}'
        if variant == 'file':
            return self.file('')
        return os.path.join(self.tmp, f'sock{len(self.closers)}')

    def make(self, value):
        """The object an argument token stands for; literals as they are."""
        if isinstance(value, list):
            return [self.make(v) for v in value]
        if isinstance(value, tuple) and not isinstance(value, Tok):
            return tuple(self.make(v) for v in value)
        if isinstance(value, dict):
            return {k: self.make(v) for k, v in value.items()}
        if not isinstance(value, Tok):
            return value
        kind, variant = value
        loop = self.loop
        if kind == 'float':
            return float(variant)
        if kind == 'decimal':
            return decimal.Decimal(variant)
        if kind == 'fraction':
            return fractions.Fraction(variant)
        if kind == 'object':
            return object()
        if kind == 'strided':
            return memoryview(bytearray(b'abcdefgh'))[::2]
        if kind == 'memoryview':
            return memoryview(b'data')
        if kind == 'bytearray':
            return bytearray(int(variant or 16))
        if kind == 'callable':
            return {'noop': noop, 'raises': raises, 'print': print, 'handler': handler,
                    'task_factory': task_factory, 'stop': loop.stop}[variant]
        if kind == 'coro_fn':
            return async_noop
        if kind == 'coro':
            return async_noop() if variant == 'noop' else asyncio.sleep(0.01)
        if kind == 'future':
            if variant == 'other_loop':
                if self.other_loop is None:
                    self.other_loop = self.keep(asyncio.new_event_loop())
                return self.other_loop.create_future()
            future = loop.create_future() if not loop.is_closed() else asyncio.Future(loop=loop)
            if variant == 'done':
                future.set_result(None)
            return future
        if kind == 'factory':
            return {'protocol': Protocol, 'datagram': asyncio.DatagramProtocol,
                    'buffered': Buffered, 'subprocess': asyncio.SubprocessProtocol,
                    'raises': raises, 'none': noop}[variant]
        if kind == 'protocol':
            return {'protocol': Protocol, 'buffered': Buffered}[variant]()
        if kind == 'executor':
            from concurrent.futures import ThreadPoolExecutor
            return self.keep(ThreadPoolExecutor(1), 'shutdown')
        if kind == 'context':
            return contextvars.copy_context()
        if kind == 'exc_context':
            return {'message': 'fuzz', 'exception': ValueError('fuzz')}
        if kind == 'ssl':
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if kind == 'port':
            return self.port(variant)
        if kind == 'sock':
            return self.sock(variant)
        if kind == 'fd':
            if variant == 'sock':
                return self.sock('').fileno()
            return self.pipe(variant)
        if kind == 'pipe':
            return self.pipe(variant)
        if kind == 'file':
            return self.file(variant)
        if kind == 'path':
            return self.path(variant)
        if kind == 'signal':
            return getattr(signal, variant)
        if kind == 'program':
            return {'python': sys.executable, 'true': '/bin/true', 'cat': '/bin/cat',
                    'missing': os.path.join(self.tmp, 'missing-program')}[variant]
        if kind == 'stdio':
            return getattr(subprocess, variant)
        if kind == 'transport':
            return self.target(variant)
        if kind == 'address':
            if variant == 'listening':
                return self.listening().getsockname()
            if variant == 'free':
                return ('127.0.0.1', self.port('free'))
            return self.path(variant)
        raise ValueError(f'unknown token {value!r}')

    # Targets

    def target(self, name):
        if name not in self.targets:
            self.targets[name] = self._build(name)
        return self.targets[name]

    def _build(self, name):
        loop = self.loop
        if name == 'loop':
            return loop
        if name == 'handle':
            return loop.call_soon(noop)
        if name == 'timer':
            return loop.call_later(3600, noop)

        async def build():
            if name == 'stream':
                sock = socket.create_connection(self.listening().getsockname())
                transport, _ = await loop.create_connection(Protocol, sock=sock)
                return transport
            if name == 'datagram':
                transport, _ = await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, local_addr=('127.0.0.1', 0))
                return transport
            if name == 'read_pipe':
                transport, _ = await loop.connect_read_pipe(Protocol, self.pipe('read_end'))
                return transport
            if name == 'write_pipe':
                transport, _ = await loop.connect_write_pipe(Protocol, self.pipe('write_end'))
                return transport
            if name == 'subprocess':
                transport, _ = await loop.subprocess_exec(asyncio.SubprocessProtocol,
                                                          '/bin/cat')
                return transport
            if name == 'server':
                return await loop.create_server(Protocol, '127.0.0.1', 0)
            raise ValueError(name)

        built = loop.run_until_complete(asyncio.wait_for(build(), 10))
        self.keep(built)
        return built

    def close(self):
        loop = self.loop
        if not loop.is_closed() and not loop.is_running():
            subprocess_transport = self.targets.get('subprocess')
            if subprocess_transport is not None:
                subprocess_transport.close()
                try:
                    loop.run_until_complete(asyncio.wait_for(subprocess_transport._wait(), 5))
                except BaseException:  # noqa: BLE001, S110 - whatever the calls left behind
                    pass
            for obj, how in reversed(self.closers):
                try:
                    getattr(obj, how)()
                except BaseException:  # noqa: BLE001, S110
                    pass
            try:
                loop.run_until_complete(asyncio.sleep(0))
            except BaseException:  # noqa: BLE001, S110
                pass
        if not loop.is_running():
            loop.close()
        for obj, how in self.closers:
            try:
                getattr(obj, how)()
            except BaseException:  # noqa: BLE001, S110
                pass
        for name in os.listdir(self.tmp):
            try:
                os.unlink(os.path.join(self.tmp, name))
            except OSError:
                pass
        os.rmdir(self.tmp)


def cleanup(env, result):
    """Releases what a call returned, so that it does not leak into the next scenario."""
    items = result if isinstance(result, tuple) else (result,)
    for item in items:
        for how in ('cancel', 'close'):
            if hasattr(item, how) and not isinstance(item, type):
                env.closers.append((item, how))
                break


def wait_outcome(env, result, wait):
    """The outcome of a call that returned ``result``, outside the loop: an awaitable is run
    on the loop for up to ``wait`` seconds."""
    loop = env.loop
    if not inspect.isawaitable(result):
        cleanup(env, result)
        return ('ok',)
    if loop.is_closed() or loop.is_running():
        if inspect.iscoroutine(result):
            result.close()
        return ('ok',)

    async def settle():
        future = asyncio.ensure_future(result)
        done, _ = await asyncio.wait([future], timeout=wait)
        if not done:
            future.cancel()
            return ('pending',), None
        try:
            value = future.result()
        except BaseException as exc:  # noqa: BLE001
            return ('raise', exception_name(exc)), None
        return ('ok',), value

    WATCHDOG.arm(loop)
    try:
        outcome, value = loop.run_until_complete(settle())
    except BaseException as exc:  # noqa: BLE001
        return ('raise', 'harness:' + exception_name(exc))
    finally:
        WATCHDOG.disarm()
    cleanup(env, value)
    return outcome


def call_outside(env, fn, args, kwargs, wait):
    WATCHDOG.arm(env.loop)
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001
        return ('raise', exception_name(exc))
    finally:
        WATCHDOG.disarm()
    return wait_outcome(env, result, wait)


def call_inside(env, fn, args, kwargs, wait):
    loop = env.loop
    if loop.is_closed() or loop.is_running():
        return ('raise', 'harness:loop-unusable')

    async def body():
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            return ('raise', exception_name(exc))
        if not inspect.isawaitable(result):
            cleanup(env, result)
            return ('ok',)
        future = asyncio.ensure_future(result)
        done, _ = await asyncio.wait([future], timeout=wait)
        if not done:
            future.cancel()
            return ('pending',)
        try:
            cleanup(env, future.result())
        except BaseException as exc:  # noqa: BLE001
            return ('raise', exception_name(exc))
        return ('ok',)

    WATCHDOG.arm(loop)
    try:
        return loop.run_until_complete(body())
    except BaseException as exc:  # noqa: BLE001
        return ('raise', 'harness:' + exception_name(exc))
    finally:
        WATCHDOG.disarm()


def call_from_thread(env, fn, args, kwargs, wait):
    loop = env.loop
    if loop.is_closed() or loop.is_running():
        return ('raise', 'harness:loop-unusable')
    outcome = []

    def in_thread():
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            outcome.append(('raise', exception_name(exc)))
            return
        if inspect.iscoroutine(result):
            result.close()
        cleanup(env, result)
        outcome.append(('ok',))

    async def host():
        thread = threading.Thread(target=in_thread, daemon=True, name='fuzz-call')
        thread.start()
        deadline = time.monotonic() + wait
        while thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    WATCHDOG.arm(loop)
    try:
        loop.run_until_complete(host())
    except RuntimeError as exc:
        # The call (a stop() from the thread) may end the run before host() sees the thread
        # done, on either loop, as the threads happen to be scheduled: that is its effect,
        # not a failure of the harness.
        if 'stopped before Future completed' not in str(exc):
            return ('raise', 'harness:' + exception_name(exc))
        threads = [t for t in threading.enumerate() if t.name == 'fuzz-call']
        for thread in threads:
            thread.join(wait)
    except BaseException as exc:  # noqa: BLE001
        return ('raise', 'harness:' + exception_name(exc))
    finally:
        WATCHDOG.disarm()
    return outcome[0] if outcome else ('pending',)


CALLERS = {'outside': call_outside, 'inside': call_inside, 'thread': call_from_thread}


def run_step(env, step, wait):
    target, method, args, kwargs, where = step
    try:
        obj = env.target(target)
    except BaseException as exc:  # noqa: BLE001
        return ('raise', 'build:' + exception_name(exc))
    try:
        args = env.make(args)
        kwargs = env.make(kwargs)
    except BaseException as exc:  # noqa: BLE001
        return ('raise', 'make:' + exception_name(exc))
    if method.endswith('='):
        name = method[:-1]

        def fn(value):
            setattr(obj, name, value)
    else:
        fn = getattr(obj, method, None)
        if fn is None:
            return ('absent',)
    return CALLERS[where](env, fn, args, kwargs, wait)


def settle(env):
    """After a call on a child process, lets the loop take in what the child did (exit, say)
    before the next call: otherwise the next call's outcome depends on the machine's timing."""
    loop = env.loop
    if 'subprocess' not in env.targets or loop.is_closed() or loop.is_running():
        return
    try:
        loop.run_until_complete(asyncio.sleep(0.05))
    except BaseException:  # noqa: BLE001, S110 - the next call meets whatever this left
        pass


def run_scenario(loop_name, scenario, wait):
    env = Env(loop_name, scenario['debug'])
    outcomes = []
    try:
        for step in scenario['steps']:
            outcomes.append(run_step(env, step, wait))
            settle(env)
    finally:
        env.close()
        del env
        gc.collect()
    return outcomes


def main():
    global WATCHDOG
    requests = os.fdopen(int(sys.argv[1]), 'rb')
    replies = os.fdopen(int(sys.argv[2]), 'wb')
    warnings.simplefilter('ignore')
    WATCHDOG = Watchdog()
    # stderr is a file the fuzz reads after a crash; each scenario starts it anew, and its
    # text comes back with the reply (a panic message is looked for there).
    while True:
        header = requests.read(4)
        if len(header) < 4:
            return
        loop_name, scenario, wait = pickle.loads(requests.read(struct.unpack('>I', header)[0]))
        sys.stderr.flush()
        os.ftruncate(2, 0)
        os.lseek(2, 0, os.SEEK_SET)
        try:
            outcomes = run_scenario(loop_name, scenario, wait)
        except BaseException as exc:  # noqa: BLE001
            outcomes = [('raise', 'harness:' + exception_name(exc))]
        finally:
            sys.stderr.flush()
            asyncio.set_event_loop(None)
        text = os.pread(2, 1 << 20, 0).decode('utf-8', 'replace')
        reply = pickle.dumps({'steps': outcomes, 'stderr': text[-20000:]})
        replies.write(struct.pack('>I', len(reply)) + reply)
        replies.flush()


if __name__ == '__main__':
    main()
