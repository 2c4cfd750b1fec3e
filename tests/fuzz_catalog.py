"""What the fuzz calls: every public method of the loop, of each transport, of Server and of
the handles, with the parameter names of asyncio's own implementation.

Shared by the fuzz test (which generates calls) and its worker process (which makes the
objects and runs the calls), so it holds only plain data and the `Tok` marker. Arguments
travel to the worker as literals (ints, floats, str, bytes, None, tuples, lists, dicts) or
as `Tok(kind, variant)`: an object the worker makes for each loop anew (a socket in a given
state, a protocol factory, a coroutine, a pipe end, ...).
"""

import asyncio
import inspect
from asyncio import base_events, base_subprocess, events, selector_events, unix_events
from typing import NamedTuple


class Tok(NamedTuple):
    """An argument the worker makes: ``Tok('sock', 'closed')`` is a closed socket."""

    kind: str
    variant: str = ''


# The objects whose methods are called, with the asyncio class that defines their contract
# (its public methods and their signatures). ferroloop's own public methods are added to
# these in `methods_of` (tests/test_fuzz.py checks that none is left out).
TARGETS = {
    'loop': asyncio.SelectorEventLoop,
    'stream': selector_events._SelectorSocketTransport,
    'datagram': selector_events._SelectorDatagramTransport,
    'read_pipe': unix_events._UnixReadPipeTransport,
    'write_pipe': unix_events._UnixWritePipeTransport,
    'subprocess': base_subprocess.BaseSubprocessTransport,
    'server': base_events.Server,
    'handle': events.Handle,
    'timer': events.TimerHandle,
}

# Attributes a program sets rather than calls: the fuzz assigns them, as a pseudo-method
# named '<attribute>='.
SETTABLE = {
    'loop': ['slow_callback_duration'],
}


def public_methods(cls):
    return {name for name in dir(cls)
            if not name.startswith('_') and callable(getattr(cls, name, None))}


def ferroloop_classes():
    import ferroloop
    from ferroloop import datagram, pipes, process, servers, transports
    handle = ferroloop._ferroloop.Handle
    return {
        'loop': ferroloop.EventLoop,
        'stream': transports.SocketTransport,
        'datagram': datagram.DatagramTransport,
        'read_pipe': pipes.ReadPipeTransport,
        'write_pipe': pipes.WritePipeTransport,
        'subprocess': process.SubprocessTransport,
        'server': servers.Server,
        'handle': handle,
        'timer': ferroloop._ferroloop.TimerHandle,
    }


def methods_of(target):
    """Every public method of ``target`` on either loop, and its settable attributes."""
    names = public_methods(TARGETS[target]) | public_methods(ferroloop_classes()[target])
    return sorted(names) + [f'{name}=' for name in SETTABLE.get(target, [])]


def all_methods():
    return [(target, name) for target in TARGETS for name in methods_of(target)]


class Param(NamedTuple):
    name: str
    # 'positional', 'varargs' or 'keyword'
    how: str
    required: bool


def parameters(target, method):
    """The parameters of ``method`` as asyncio's implementation declares them (ferroloop's
    for a method asyncio lacks); ``[]`` when there is no signature to read."""
    if method.endswith('='):
        return [Param('value', 'positional', True)]
    for cls in (TARGETS[target], ferroloop_classes()[target]):
        function = getattr(cls, method, None)
        if function is None:
            continue
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            continue
        params = []
        for p in list(signature.parameters.values()):
            if p.name == 'self':
                continue
            if p.kind is p.VAR_POSITIONAL:
                params.append(Param(p.name, 'varargs', False))
            elif p.kind is p.VAR_KEYWORD:
                continue
            elif p.kind is p.KEYWORD_ONLY:
                params.append(Param(p.name, 'keyword', p.default is p.empty))
            else:
                params.append(Param(p.name, 'positional', p.default is p.empty))
        return params
    return []


# What kind of value each parameter name takes; the fuzz draws a plausible value of that
# kind or garbage. Names not listed take garbage only.
PARAM_KINDS = {
    'fd': 'fd', 'callback': 'callback', 'func': 'callback', 'handler': 'handler',
    'delay': 'delay', 'when': 'delay', 'sock': 'sock', 'n': 'nbytes', 'nbytes': 'nbytes',
    'bufsize': 'nbytes', 'buf': 'buffer', 'data': 'data', 'list_of_data': 'data_list',
    'address': 'address', 'addr': 'address', 'local_addr': 'address',
    'remote_addr': 'address', 'host': 'host', 'port': 'port',
    'protocol_factory': 'protocol_factory', 'protocol': 'protocol', 'coro': 'coro',
    'future': 'future', 'executor': 'executor', 'sig': 'signal', 'signal': 'signal',
    'pipe': 'pipe', 'path': 'path', 'family': 'int_flag', 'proto': 'int_flag',
    'flags': 'int_flag', 'type': 'int_flag', 'ssl': 'ssl', 'sslcontext': 'ssl',
    'server_hostname': 'host', 'context': 'context', 'factory': 'task_factory',
    'enabled': 'flag', 'value': 'number', 'high': 'number', 'low': 'number',
    'timeout': 'number', 'ssl_handshake_timeout': 'number',
    'ssl_shutdown_timeout': 'number', 'happy_eyeballs_delay': 'number',
    'interleave': 'number', 'backlog': 'number', 'name': 'name', 'file': 'file',
    'offset': 'number', 'count': 'number', 'fallback': 'flag', 'transport': 'transport',
    'program': 'program', 'cmd': 'program', 'args': 'program_args', 'stdin': 'stdio',
    'stdout': 'stdio', 'stderr': 'stdio', 'reuse_address': 'flag', 'reuse_port': 'flag',
    'allow_broadcast': 'flag', 'start_serving': 'flag', 'server_side': 'flag',
    'universal_newlines': 'flag', 'shell': 'flag', 'text': 'flag', 'encoding': 'name',
    'errors': 'name', 'extra': 'name', 'default': 'name', 'sockaddr': 'address',
}
