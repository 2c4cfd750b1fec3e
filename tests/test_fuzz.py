"""Property-based fuzz: every public method of the loop, of each transport (stream, datagram,
read and write pipe, subprocess), of Server and of Handle/TimerHandle, called with generated
arguments (wrong types, huge and negative ints, NaN and infinities, closed and blocking
sockets, pipes and files in every state), in short sequences (so also on closed loops and
closed transports), from the loop's thread and from another one, in and out of debug mode,
on asyncio's loop and on ferroloop.

A call fails the fuzz if on ferroloop it crashes the interpreter, hangs it, lets a Rust panic
out (a PanicException, or a panic message on stderr), or ends with another exception type
than on asyncio's loop, unless the difference is one of the deliberate ones below. The calls
run in a worker process (tests/fuzz_worker.py) so that a crash or a hang shows as a failure.

`make test` runs a few derandomized examples per method; `make fuzz` runs many more, random,
with the failures hypothesis finds kept in .hypothesis/ for the next run. The seed corpus,
`SEED_CORPUS`, is run every time.
"""

import math
import os
import pickle
import select
import struct
import subprocess
import sys
import tempfile
import time
from typing import Callable, NamedTuple

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fuzz_stats
from fuzz_catalog import PARAM_KINDS, TARGETS, Tok, all_methods, methods_of, parameters

WORKER = os.path.join(os.path.dirname(__file__), 'fuzz_worker.py')
# How long an awaitable result may take before it counts as pending; confirmed with
# CONFIRM_WAIT when only one loop left it pending (a busy machine, not a difference).
WAIT = 0.25
CONFIRM_WAIT = 2.0
# A worker that does not answer for this long is hung (a scenario takes milliseconds).
HANG_TIMEOUT = 60.0
PANIC_MARKERS = ('PanicException', 'panicked at')

settings.register_profile(
    'test', max_examples=int(os.environ.get('FERROLOOP_FUZZ_EXAMPLES', 6)), deadline=None,
    derandomize=True, database=None, print_blob=True,
    suppress_health_check=list(HealthCheck))
settings.register_profile(
    'fuzz', max_examples=int(os.environ.get('FERROLOOP_FUZZ_EXAMPLES', 50)), deadline=None,
    print_blob=True, suppress_health_check=list(HealthCheck))
# Many examples, no shrinking: for sorting out what a change broke.
settings.register_profile(
    'triage', max_examples=int(os.environ.get('FERROLOOP_FUZZ_EXAMPLES', 20)), deadline=None,
    database=None, phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get('FERROLOOP_FUZZ_PROFILE', 'test'))


# Arguments

NAN = math.nan
# Values of the wrong kind for nearly every parameter: none of them text or bytes that a
# resolver could be asked about (host names go nowhere but /etc/hosts).
GARBAGE = [
    None, True, False, 0, 1, -1, 7, 2 ** 31 - 1, 2 ** 31, -2 ** 31 - 1, 2 ** 63, 2 ** 64,
    -2 ** 64, 10 ** 30, 0.0, -0.0, 1.5, -1.5, NAN, math.inf, -math.inf, 1e308, (), [], {},
    (1, 2), [b'x'], Tok('object'), Tok('strided'), Tok('decimal', '1.5'),
    Tok('fraction', '1/3'), Tok('bytearray', '4'), Tok('memoryview'), Tok('callable', 'noop'),
    Tok('sock', 'closed'), Tok('sock', 'blocking'),
]
garbage = st.sampled_from(GARBAGE)
anything = st.one_of(garbage, st.integers(), st.floats(), st.text(max_size=6),
                     st.binary(max_size=6))

HOSTS = ['127.0.0.1', 'localhost', '::1', '0.0.0.0', '', None, b'127.0.0.1', 'fe80::1%lo',
         ['127.0.0.1', 'localhost']]
PORTS = [Tok('port', 'listening'), Tok('port', 'free'), 0, 65535, 65536, 70000, -1,
         -2 ** 31 - 1, 2 ** 64, 1.5, True, '80', 'http', b'80', '70000', None]
SOCKS = [Tok('sock', v) for v in ('', 'connected', 'listening', 'udp', 'unix_pair', 'closed',
                                  'blocking')]
ADDRESSES = [('127.0.0.1', Tok('port', 'listening')), ('127.0.0.1', Tok('port', 'free')),
             ('localhost', Tok('port', 'free')), ('::1', 0, 0, 0), ('127.0.0.1', 70000),
             ('127.0.0.1', -1), ('127.0.0.1',), ('127.0.0.1', 1.5), ('127.0.0.1', 0, 0),
             Tok('address', 'listening'), Tok('address', 'free'), Tok('path', 'new'),
             Tok('path', 'missing'), Tok('path', 'abstract'), '', ('', 0)]
SIGNALS = [Tok('signal', s) for s in ('SIGUSR1', 'SIGUSR2', 'SIGKILL', 'SIGSTOP', 'SIGCHLD',
                                      'SIGTERM')] + [0, -1, 65, 2 ** 40, 1.5, None]

PLAUSIBLE = {
    'fd': [Tok('fd', v) for v in ('read_fd', 'write_fd', 'closed_fd', 'sock')]
    + [0, 1, -1, -2 ** 31, 2 ** 31 - 1, 2 ** 31, 2 ** 63, Tok('pipe', 'read_end')] + SOCKS,
    'callback': [Tok('callable', v) for v in ('noop', 'raises', 'print', 'stop')]
    + [Tok('coro_fn'), Tok('coro', 'noop')],
    'handler': [None, Tok('callable', 'handler'), Tok('callable', 'noop')],
    'delay': [0, 0.001, -1, 1e9, NAN, math.inf, -math.inf, 2 ** 64, 10 ** 400,
              Tok('decimal', '0.01'), Tok('fraction', '1/100'), True],
    'sock': SOCKS,
    'nbytes': [0, 1, 100, 65536, -1, 2 ** 31, 2 ** 63, 2 ** 64, 1.5, True],
    'buffer': [Tok('bytearray', '16'), Tok('bytearray', '0'), Tok('strided'), b'readonly',
               Tok('memoryview')],
    'data': [b'', b'data', Tok('bytearray', '8'), Tok('memoryview'), Tok('strided'),
             b'x' * 100_000, 'text'],
    'data_list': [[b'a', b'b'], [], [b'a', 'b'], (b'x',), [Tok('strided')], b'ab'],
    'address': ADDRESSES,
    'host': HOSTS,
    'port': PORTS,
    'protocol_factory': [Tok('factory', v) for v in ('protocol', 'datagram', 'buffered',
                                                     'subprocess', 'raises', 'none')],
    'protocol': [Tok('protocol', 'protocol'), Tok('protocol', 'buffered'), None],
    'coro': [Tok('coro', 'noop'), Tok('coro', 'sleep'), Tok('future', 'pending'),
             Tok('future', 'done'), Tok('future', 'other_loop'), Tok('coro_fn')],
    'future': [Tok('coro', 'noop'), Tok('future', 'pending'), Tok('future', 'done'),
               Tok('future', 'other_loop')],
    'executor': [None, Tok('executor')],
    'signal': SIGNALS,
    'pipe': [Tok('pipe', v) for v in ('read_end', 'write_end', 'closed')]
    + [Tok('file', ''), Tok('sock', 'unix_pair'), Tok('sock', 'udp')],
    'path': [Tok('path', v) for v in ('new', 'missing', 'abstract', 'file')] + ['', b'\0x'],
    'int_flag': [0, 1, 2, 10, -1, 2 ** 31, 2 ** 64],
    'ssl': [None, False, True, Tok('ssl')],
    'context': [None, Tok('context')],
    'exc_context': [Tok('exc_context'), {'message': 'x'}, {}],
    'task_factory': [None, Tok('callable', 'task_factory'), Tok('callable', 'print')],
    'flag': [True, False, None, 0, 1],
    'number': [None, 0, 1, 1.5, 100, 2 ** 64, -1, NAN, math.inf, Tok('decimal', '2')],
    'name': ['socket', 'peername', 'sockname', 'pipe', 'x', None],
    'file': [Tok('file', v) for v in ('', 'closed', 'text')] + [Tok('pipe', 'read_end')],
    'transport': [Tok('transport', v) for v in ('stream', 'datagram', 'write_pipe')],
    'program': [Tok('program', v) for v in ('true', 'cat', 'missing')] + [b'/bin/true'],
    'program_args': ['x', '--version', b'x'],
    'stdio': [None, Tok('stdio', 'PIPE'), Tok('stdio', 'DEVNULL'), Tok('stdio', 'STDOUT'),
              -1, 2 ** 31],
}
# Parameters where text could reach a resolver, a file system path or a shell: only the
# plausible values above and non-text garbage.
NO_FREE_TEXT = {'host', 'address', 'path', 'program', 'program_args'}

# A few method parameters whose name means something else there.
SPECIAL_KINDS = {
    ('loop', 'call_exception_handler', 'context'): 'exc_context',
    ('loop', 'default_exception_handler', 'context'): 'exc_context',
    ('loop', 'getnameinfo', 'sockaddr'): 'sockaddr',
    ('loop', 'subprocess_exec', 'args'): 'program_args',
    ('loop', 'run_in_executor', 'args'): 'program_args',
    ('subprocess', 'get_pipe_transport', 'fd'): 'number',
    ('subprocess', 'send_signal', 'signal'): 'signal',
}
PLAUSIBLE['sockaddr'] = [('127.0.0.1', 80), ('127.0.0.1', 70000), ('127.0.0.1',), None]
NO_FREE_TEXT.add('sockaddr')


def value(kind):
    garbage_values = garbage if kind in NO_FREE_TEXT else anything
    if kind not in PLAUSIBLE:
        return garbage_values
    return st.one_of(st.sampled_from(PLAUSIBLE[kind]), st.sampled_from(PLAUSIBLE[kind]),
                     garbage_values)


def kind_of(target, method, name):
    return SPECIAL_KINDS.get((target, method, name)) or PARAM_KINDS.get(name, 'garbage')


@st.composite
def steps(draw, target, method):
    """One call of ``method`` on ``target``: plausible or garbage arguments for each
    parameter, now and then one argument too few or too many."""
    args, kwargs = [], {}
    for param in parameters(target, method):
        strategy = value(kind_of(target, method, param.name))
        if param.how == 'positional':
            if param.required or draw(st.booleans()):
                args.append(draw(strategy))
        elif param.how == 'varargs':
            args.extend(draw(st.lists(strategy, max_size=2)))
        elif param.required or draw(st.integers(0, 3)) == 0:
            kwargs[param.name] = draw(strategy)
    arity = draw(st.integers(0, 9))
    if arity == 0 and args:
        args.pop()
    elif arity == 1:
        args.append(draw(anything))
    where = draw(st.sampled_from(['outside', 'outside', 'inside', 'inside', 'thread']))
    return (target, method, tuple(args), kwargs, where)


@st.composite
def scenarios(draw, target, method):
    """``method`` called once, maybe after and before other calls on the same objects (a
    loop or transport closed first, say)."""
    others = st.sampled_from([(target, m) for m in methods_of(target)] + [('loop', 'close'),
                                                                           ('loop', 'stop')])
    before = draw(st.lists(others, max_size=1))
    after = draw(st.lists(others, max_size=1))
    calls = [draw(steps(*pair)) for pair in before]
    calls.append(draw(steps(target, method)))
    calls.extend(draw(steps(*pair)) for pair in after)
    return {'debug': draw(st.booleans()), 'steps': calls}


# The worker

class Worker:
    """The worker process, started again after a crash or a hang."""

    def __init__(self):
        self.proc = None
        self.capture = tempfile.NamedTemporaryFile(prefix='ferroloop-fuzz-', suffix='.err')

    def start(self):
        requests_r, self.requests = os.pipe()
        self.replies, replies_w = os.pipe()
        env = dict(os.environ, PYTHONFAULTHANDLER='1')
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, str(requests_r), str(replies_w)],
            pass_fds=(requests_r, replies_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.capture, env=env,
            cwd=os.path.dirname(__file__))
        os.close(requests_r)
        os.close(replies_w)

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            os.close(self.requests)
            os.close(self.replies)
            self.proc = None

    def run(self, loop_name, scenario, wait):
        """The worker's reply, or ``{'died': how, 'stderr': ...}`` if it crashed or hung."""
        if self.proc is None:
            self.start()
        request = pickle.dumps((loop_name, scenario, wait))
        try:
            os.write(self.requests, struct.pack('>I', len(request)) + request)
            header = self._read(4)
            return pickle.loads(self._read(struct.unpack('>I', header)[0]))
        except (EOFError, TimeoutError, BrokenPipeError) as exc:
            how = 'hang' if isinstance(exc, TimeoutError) else 'crash'
            self.proc.kill()
            code = self.proc.wait()
            self.capture.seek(0)
            stderr = self.capture.read().decode('utf-8', 'replace')[-20000:]
            self.stop_quietly()
            return {'died': f'{how} (exit status {code})', 'stderr': stderr}

    def stop_quietly(self):
        os.close(self.requests)
        os.close(self.replies)
        self.proc = None

    def _read(self, size):
        data = b''
        deadline = time.monotonic() + HANG_TIMEOUT
        while len(data) < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.replies], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self.replies, size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data


WORKER_PROCESS = Worker()


# Judging

class Difference(NamedTuple):
    """A difference from asyncio that is kept on purpose (README, "Deliberate differences")."""
    name: str
    why: str
    applies: Callable


def argument_values(step):
    _, _, args, kwargs, _ = step
    return list(args) + list(kwargs.values())


# Where the callback is among the arguments of the methods that take one.
CALLBACK_POSITION = {'call_soon': 0, 'call_soon_threadsafe': 0, 'call_later': 1, 'call_at': 1,
                     'add_reader': 1, 'add_writer': 1}


def callback_argument(step):
    args = step[2]
    position = CALLBACK_POSITION[step[1]]
    return args[position] if len(args) > position else None


def is_plain_callable(value):
    return isinstance(value, Tok) and value.kind in ('callable', 'factory')


def port_out_of_range(value):
    if isinstance(value, Tok) or value is None:
        return False
    try:
        port = int(value) if not isinstance(value, (str, bytes)) or value else 0
    except (TypeError, ValueError):
        return False
    return not 0 <= port <= 65535


def addresses_with_port_out_of_range(step):
    _, _, args, kwargs, _ = step
    values = list(args[1:3]) + [kwargs.get('port')]
    for value in list(args[1:]) + list(kwargs.values()):
        if isinstance(value, tuple) and len(value) >= 2:
            values.append(value[1])
    return any(port_out_of_range(v) for v in values)


DELIBERATE_DIFFERENCES = [
    Difference(
        'non-callable callback refused at once',
        'README: call_soon & co. (add_reader and add_writer too) refuse a non-callable at once '
        'in every mode, and a coroutine function in debug mode; asyncio checks call_soon\'s '
        'only in debug mode, add_reader\'s never, and fails later.',
        lambda step, a, f: (f == ('raise', 'TypeError') and a != f
                            and step[1] in CALLBACK_POSITION
                            and not is_plain_callable(callback_argument(step)))),
    Difference(
        'blocking socket refused by sock_*',
        'README: sock_* methods refuse a blocking socket in every mode (a blocking call would '
        'freeze the loop); asyncio checks only in debug mode.',
        lambda step, a, f: (step[1].startswith('sock_') and f == ('raise', 'ValueError')
                            and Tok('sock', 'blocking') in argument_values(step))),
    Difference(
        "TypeError where asyncio asserts an argument's type",
        "README: a write pipe's write() data, create_unix_connection's server_hostname; an "
        'assert is no check under python -O.',
        lambda step, a, f: a == ('raise', 'AssertionError') and f == ('raise', 'TypeError')),
    Difference(
        'out-of-range port with a host name',
        'README: an OverflowError whatever the host; asyncio lets getaddrinfo wrap the port of '
        'a host name (70000 connects to, or listens on, 4464).',
        lambda step, a, f: (step[1] in ('create_server', 'create_connection',
                                        'create_datagram_endpoint')
                            and f == ('raise', 'OverflowError')
                            and addresses_with_port_out_of_range(step))),
    Difference(
        'a finished transport takes calls as a closed one',
        "README: asyncio's sendto() on an unconnected datagram endpoint and a write pipe's "
        'abort() fail with AttributeError from inside asyncio once connection_lost has run.',
        lambda step, a, f: (step[0] in ('datagram', 'write_pipe')
                            and step[1] in ('sendto', 'abort', 'close')
                            and a == ('raise', 'AttributeError') and f == ('ok',))),
    Difference(
        'deadline that is not a real number refused at once',
        'README: call_at/call_later refuse it with TypeError; asyncio stores it and fails on it '
        'later (the next call_at, or run_forever).',
        lambda step, a, f: (step[1] in ('call_at', 'call_later')
                            and f in (('raise', 'TypeError'), ('raise', 'OverflowError'))
                            and a[0] in ('ok', 'raise'))),
]

def first_problem(scenario, asyncio_reply, ferroloop_reply):
    """What is wrong with ferroloop's reply, or None; with the step it concerns."""
    if 'died' in ferroloop_reply:
        return f"ferroloop's worker died: {ferroloop_reply['died']}", None
    stderr = ferroloop_reply['stderr']
    for marker in PANIC_MARKERS:
        if marker in stderr:
            return f'a Rust panic reached Python ({marker})', None
    if 'died' in asyncio_reply:
        return None, None  # asyncio's own crash or hang: nothing to compare with
    for step, a, f in zip(scenario['steps'], asyncio_reply['steps'], ferroloop_reply['steps']):
        if any(marker in str(f) for marker in PANIC_MARKERS):
            return f'a Rust panic reached Python ({f})', step
        if a == ('absent',):
            continue  # a ferroloop-only method: checked for crashes and panics only
        if a == f:
            continue
        if any(d.applies(step, a, f) for d in DELIBERATE_DIFFERENCES):
            return None, None  # the calls after it start from different states
        return f'asyncio: {a}, ferroloop: {f}', step
    return None, None


def describe(scenario):
    lines = [f"debug={scenario['debug']}"]
    for target, method, args, kwargs, where in scenario['steps']:
        call = ', '.join([repr(a) for a in args] + [f'{k}={v!r}' for k, v in kwargs.items()])
        lines.append(f'  [{where}] {target}.{method}({call})')
    return '\n'.join(lines)


def run_both(scenario, wait=WAIT):
    return (WORKER_PROCESS.run('asyncio', scenario, wait),
            WORKER_PROCESS.run('ferroloop', scenario, wait))


def check(scenario):
    """Runs ``scenario`` on both loops and fails on what ferroloop does wrong."""
    started = time.monotonic()
    asyncio_reply, ferroloop_reply = run_both(scenario)
    problem, step = first_problem(scenario, asyncio_reply, ferroloop_reply)
    # A difference must show every time: some outcomes depend on timing (a child process
    # that may or may not have exited yet, an operation that takes a while on a busy
    # machine), and either loop may come out either way.
    for _ in range(2 if problem and step is not None else 0):
        again = run_both(scenario, CONFIRM_WAIT)
        if first_problem(scenario, *again)[0] is None:
            problem = None
            break
    fuzz_stats.record(scenario, time.monotonic() - started)
    if problem is None:
        return
    where = '' if step is None else f' (call {scenario["steps"].index(step) + 1})'
    pytest.fail(f'{problem}{where}\nscenario:\n{describe(scenario)}\n'
                f"ferroloop's stderr:\n{ferroloop_reply['stderr'][-3000:]}", pytrace=False)


# The tests

ALL = all_methods()


@pytest.mark.parametrize('target, method', ALL, ids=[f'{t}.{m}' for t, m in ALL])
@given(data=st.data())
def test_fuzz(target, method, data):
    check(data.draw(scenarios(target, method), label='scenario'))


def scenario(*calls, debug=False):
    return {'debug': debug, 'steps': [(*call, 'outside') if len(call) == 4 else call
                                      for call in calls]}


# Calls worth trying every time: the bad input issue 8 lists, and what the fuzz found.
SEED_CORPUS = [
    scenario(('loop', 'create_server', (Tok('factory', 'protocol'), '127.0.0.1', 70000), {})),
    scenario(('loop', 'create_connection', (Tok('factory', 'protocol'), '127.0.0.1', 70000),
              {})),
    scenario(('loop', 'create_datagram_endpoint', (Tok('factory', 'datagram'),),
              {'local_addr': ('127.0.0.1', 70001)})),
    scenario(('loop', 'create_server', (Tok('factory', 'protocol'), '127.0.0.1', -1), {})),
    scenario(('loop', 'create_server', (Tok('factory', 'protocol'), '127.0.0.1',
                                        -2147483649), {})),
    scenario(('loop', 'create_server', (Tok('factory', 'protocol'), '127.0.0.1', 1.5), {})),
    scenario(('loop', 'create_connection', (Tok('factory', 'protocol'), '127.0.0.1', True),
              {})),
    scenario(('loop', 'set_debug', (0,), {}), ('loop', 'set_debug', (None,), {})),
    scenario(('loop', 'slow_callback_duration=', (None,), {}), ('loop', 'stop', (), {})),
    scenario(('loop', 'call_later', (Tok('decimal', '0.1'), Tok('callable', 'noop')), {})),
    scenario(('loop', 'call_at', (NAN, Tok('callable', 'noop')), {}),
             ('loop', 'call_later', (NAN, Tok('callable', 'noop')), {})),
    scenario(('stream', 'set_write_buffer_limits', (1.5,), {})),
    scenario(('stream', 'set_write_buffer_limits', (2 ** 64, 5), {})),
    scenario(('stream', 'set_write_buffer_limits', (None, 2 ** 62), {})),
    scenario(('stream', 'set_protocol', (None,), {})),
    scenario(('stream', 'write', (Tok('strided'),), {})),
    scenario(('write_pipe', 'write', (Tok('strided'),), {})),
    scenario(('loop', 'add_reader', (2 ** 31 - 1, Tok('callable', 'noop')), {})),
    scenario(('loop', 'remove_reader', (2 ** 31,), {})),
    scenario(('loop', 'sock_recv', (Tok('sock', 'closed'), 10), {})),
    scenario(('loop', 'sock_sendall', (Tok('sock', 'closed'), b'x'), {})),
    scenario(('loop', 'sock_recvfrom_into', (None, None), {})),
    scenario(('loop', 'sock_sendall', (Tok('sock', ''), b''), {})),
    scenario(('loop', 'add_writer', (Tok('sock', 'listening'), Tok('callable', 'noop')), {},
              'thread'), debug=True),
    scenario(('loop', 'sock_connect', (Tok('sock', ''), ('127.0.0.1', 70000)), {})),
    scenario(('datagram', 'abort', (), {}, 'inside'), ('datagram', 'sendto', (b'data',), {})),
    scenario(('loop', 'create_unix_connection', (Tok('factory', 'protocol'),),
              {'server_hostname': 1.5})),
    scenario(('stream', 'abort', (), {}, 'thread'), debug=True),
    scenario(('loop', 'close', (), {}), ('stream', 'write', (b'x',), {})),
    scenario(('loop', 'run_forever', (), {}, 'thread')),
    scenario(('loop', 'create_server', (Tok('factory', 'protocol'),),
              {'sock': Tok('sock', ''), 'backlog': None, 'ssl': 0, 'ssl_handshake_timeout': 0})),
    scenario(('loop', 'create_server', (Tok('factory', 'protocol'),),
              {'sock': Tok('sock', ''), 'ssl': 0, 'ssl_shutdown_timeout': 1})),
]


@pytest.mark.parametrize('seed', SEED_CORPUS, ids=[describe(s).split('\n')[1].strip()[:70]
                                                   for s in SEED_CORPUS])
def test_fuzz_seed_corpus(seed):
    check(seed)


def test_fuzz_covers_every_public_method():
    covered = set(ALL)
    for target, cls in TARGETS.items():
        for name in dir(cls):
            if not name.startswith('_') and callable(getattr(cls, name)):
                assert (target, name) in covered, f'{target}.{name} is not fuzzed'
    fuzz_stats.set_method_count(len(covered))
    assert len(covered) > 120


@pytest.fixture(scope='module', autouse=True)
def stop_worker():
    yield
    WORKER_PROCESS.stop()
