"""Which tests of CPython's test.test_asyncio judge a drop-in loop, read from the 3.11 sources.

Set (a) holds the tests that exercise public asyncio API on a real loop, which the harness
makes the loop under test: a drop-in loop should pass all of them. Set (b) holds the tests of
asyncio's own implementation (mocked or fake-clock loops, private attributes, stdlib
transports, C-vs-Python Task/Future details, Windows code): run, reported, never held against
the loop. REPLACED marks upstream's per-selector or per-watcher copies of a test class that
hard-code a stdlib loop; a generated ``TargetLoop_*`` class (see ``GENERATED``) runs their
methods once on the loop under test instead.

The tables describe 3.11; what later versions add or change is in versions.py, whose
``for_python()`` gives the merged tables of one version.
"""

import dataclasses

A = 'a'
B = 'b'
REPLACED = 'replaced'
UNCLASSIFIED = 'unclassified'

FAKE_CLOCK = 'runs on test_utils.TestLoop, a fake-clock BaseEventLoop: asyncio internals'
MOCK_LOOP = 'runs on a bare or mocked asyncio.BaseEventLoop'
NO_LOOP = 'no loop involved (ABCs, helpers, plain classes)'
WINDOWS = 'Windows only'
ISOLATED = 'IsolatedAsyncioTestCase: asyncio.Runner asks the policy, which the harness routes'
NEW_LOOP = 'builds its loop with asyncio.new_event_loop(), which the harness routes'
PER_SELECTOR = 'one copy per stdlib selector, each building asyncio.SelectorEventLoop'
PRIVATE = 'depends on stdlib-private details: '
TASK_MATRIX = 'one of the C/Python Task x Future combinations: ' + FAKE_CLOCK


@dataclasses.dataclass(frozen=True)
class Generated:
    """A test class the harness builds in a test module so that it runs on the loop under test.

    ``bases`` are names in the test module (dotted for ``test_utils.TestCase``); ``routed``
    names the ``routing.LOOP_HOOKS`` entry that replaces how the bases obtain their loop.
    """
    bases: tuple
    routed: str


# module -> {class: (set, why)}
CLASSES = {
    'test_base_events': {
        'BaseEventTests': (B, 'base_events helpers (_ipaddr_info, interleaving); ' + NO_LOOP),
        'BaseEventLoopTests': (B, MOCK_LOOP + '; the methods that build a real loop are in METHODS'),
        'BaseEventLoopWithSelectorTests': (B, 'stdlib SelectorEventLoop with mocked sockets and transports'),
        'BaseLoopSockSendfileTests': (B, PRIVATE + 'BaseEventLoop sendfile internals'),
        'RunningLoopTests': (A, 'nested runs of two asyncio.new_event_loop() loops'),
        'TestSelectorUtils': (B, 'base_events._set_nodelay; ' + NO_LOOP),
    },
    'test_buffered_proto': {
        'BufferedProtocolSelectorTests': (REPLACED, 'builds asyncio.SelectorEventLoop()'),
        'BufferedProtocolProactorTests': (B, WINDOWS),
        'TargetLoop_BufferedProtocolTests': (A, 'BufferedProtocol over create_connection/create_server'),
    },
    'test_context': {
        'DecimalContextTest': (A, 'contextvars across tasks under asyncio.run()'),
    },
    'test_events': {
        'SelectEventLoopTests': (REPLACED, PER_SELECTOR),
        'PollEventLoopTests': (REPLACED, PER_SELECTOR),
        'EPollEventLoopTests': (REPLACED, PER_SELECTOR),
        'KqueueEventLoopTests': (REPLACED, PER_SELECTOR),
        'ProactorEventLoopTests': (B, WINDOWS),
        'TargetLoop_EventLoopTests': (A, ('the loop API itself: scheduling, running, executors, '
                                          'fd watchers, sockets, servers, datagrams, pipes, ptys, '
                                          'TLS, signals, subprocesses')),
        'HandleTests': (B, 'the asyncio.Handle class with a mock loop'),
        'TimerTests': (B, 'the asyncio.TimerHandle class with a mock loop'),
        'AbstractEventLoopTests': (B, 'AbstractEventLoop stubs raising NotImplementedError'),
        'PolicyTests': (B, 'the stdlib policy classes'),
        'TestPyGetEventLoop': (B, ('swaps in the pure-Python running-loop registry, which only '
                                   'loops that look it up on every call see')),
        'TestCGetEventLoop': (A, 'get_event_loop()/get_running_loop() while the loop runs'),
        'TestServer': (A, 'Server.get_loop() of a server the loop made'),
        'TestAbstractServer': (B, 'AbstractServer stubs raising NotImplementedError'),
    },
    'test_futures': {name: (B, FAKE_CLOCK) for name in (
        'DuckTests', 'CFutureTests', 'CSubFutureTests', 'PyFutureTests',
        'CFutureDoneCallbackTests', 'CSubFutureDoneCallbackTests', 'PyFutureDoneCallbackTests',
        'CFutureInheritanceTests', 'PyFutureInheritanceTests')},
    'test_futures2': {name: (A, ISOLATED) for name in (
        'CFutureTests', 'PyFutureTests', 'FutureReprTests')},
    'test_locks': {name: (A, ISOLATED) for name in (
        'LockTests', 'EventTests', 'ConditionTests', 'SemaphoreTests', 'BarrierTests')},
    'test_pep492': {
        'BaseTest': (B, 'base class without tests'),
        'LockTests': (REPLACED, MOCK_LOOP),
        'StreamReaderTests': (REPLACED, MOCK_LOOP),
        'CoroutineTests': (REPLACED, MOCK_LOOP),
        'TargetLoop_LockTests': (A, 'async with on the locks'),
        'TargetLoop_StreamReaderTests': (A, 'async for over a StreamReader'),
        'TargetLoop_CoroutineTests': (A, 'coroutines, origin tracking in debug mode, tasks'),
    },
    'test_proactor_events': {name: (B, 'proactor internals; ' + WINDOWS) for name in (
        'ProactorSocketTransportTests', 'ProactorDatagramTransportTests',
        'BaseProactorEventLoopTests', 'ProactorEventLoopUnixSockSendfileTests')},
    'test_protocols': {
        'ProtocolsAbsTests': (B, 'protocol ABCs; ' + NO_LOOP),
    },
    'test_queues': {name: (A, ISOLATED) for name in (
        'QueueBasicTests', 'QueueGetTests', 'QueuePutTests', 'LifoQueueTests',
        'PriorityQueueTests', 'QueueJoinTests', 'LifoQueueJoinTests', 'PriorityQueueJoinTests')},
    'test_runners': {
        'BaseTest': (B, 'base class without tests'),
        'RunTests': (REPLACED, 'asyncio.run() over a mocked BaseEventLoop'),
        'RunnerTests': (REPLACED, 'asyncio.Runner over a mocked BaseEventLoop'),
        'TargetLoop_RunTests': (A, 'asyncio.run() on the loop under test'),
        'TargetLoop_RunnerTests': (A, 'asyncio.Runner on the loop under test'),
    },
    'test_selector_events': {name: (B, 'selector loop and transport internals') for name in (
        'BaseSelectorEventLoopTests', 'SelectorTransportTests', 'SelectorSocketTransportTests',
        'SelectorSocketTransportBufferedProtocolTests', 'SelectorDatagramTransportTests')},
    'test_sendfile': {
        'SelectEventLoopTests': (REPLACED, PER_SELECTOR),
        'PollEventLoopTests': (REPLACED, PER_SELECTOR),
        'EPollEventLoopTests': (REPLACED, PER_SELECTOR),
        'KqueueEventLoopTests': (REPLACED, PER_SELECTOR),
        'ProactorEventLoopTests': (B, WINDOWS),
        'TargetLoop_SendfileTests': (A, 'loop.sendfile() and loop.sock_sendfile()'),
    },
    'test_server': {
        'SelectorStartServerTests': (REPLACED, 'builds asyncio.SelectorEventLoop()'),
        'ProactorStartServerTests': (B, WINDOWS),
        'TargetLoop_StartServerTests': (A, 'start_server, start_unix_server, serve_forever'),
    },
    'test_sock_lowlevel': {
        'SelectEventLoopTests': (REPLACED, PER_SELECTOR),
        'PollEventLoopTests': (REPLACED, PER_SELECTOR),
        'EPollEventLoopTests': (REPLACED, PER_SELECTOR),
        'KqueueEventLoopTests': (REPLACED, PER_SELECTOR),
        'ProactorEventLoopTests': (B, WINDOWS),
        'TargetLoop_SockTests': (A, 'the loop.sock_* methods'),
    },
    'test_ssl': {
        'TestSSL': (A, NEW_LOOP + '; TLS clients, servers, start_tls'),
    },
    'test_sslproto': {
        'SslProtoHandshakeTests': (B, 'sslproto.SSLProtocol with mock transports'),
        'SelectorStartTLSTests': (REPLACED, 'builds asyncio.SelectorEventLoop()'),
        'ProactorStartTLSTests': (B, WINDOWS),
        'TargetLoop_StartTLSTests': (A, 'loop.start_tls()'),
    },
    'test_streams': {
        'StreamTests': (A, NEW_LOOP + '; streams over real sockets'),
    },
    'test_subprocess': {
        'SubprocessTransportTests': (B, 'BaseSubprocessTransport; ' + FAKE_CLOCK),
        'SubprocessThreadedWatcherTests': (REPLACED, 'one copy per stdlib child watcher'),
        'SubprocessMultiLoopWatcherTests': (REPLACED, 'one copy per stdlib child watcher'),
        'SubprocessSafeWatcherTests': (REPLACED, 'one copy per stdlib child watcher'),
        'SubprocessFastWatcherTests': (REPLACED, 'one copy per stdlib child watcher'),
        'SubprocessPidfdWatcherTests': (REPLACED, 'one copy per stdlib child watcher'),
        'GenericWatcherTests': (B, 'what a stdlib child watcher must do when inactive'),
        'TargetLoop_SubprocessTests': (A, ('create_subprocess_exec/_shell and subprocess_exec; '
                                           "the policy's default watcher is there for loops "
                                           'that want one')),
    },
    'test_taskgroups': {
        'TestTaskGroup': (A, ISOLATED),
    },
    'test_tasks': {
        'CTask_CFuture_Tests': (B, FAKE_CLOCK + '; the methods that build a real loop are in METHODS'),
        'PyTask_PyFuture_Tests': (B, FAKE_CLOCK + '; the methods that build a real loop are in METHODS'),
        'CTask_CFuture_SubclassTests': (B, TASK_MATRIX),
        'CTaskSubclass_PyFuture_Tests': (B, TASK_MATRIX),
        'PyTask_CFutureSubclass_Tests': (B, TASK_MATRIX),
        'CTask_PyFuture_Tests': (B, TASK_MATRIX),
        'PyTask_CFuture_Tests': (B, TASK_MATRIX),
        'PyTask_PyFuture_SubclassTests': (B, TASK_MATRIX),
        'CTask_Future_Tests': (A, 'a C Task awaiting a Future subclass; ' + NEW_LOOP),
        'PyIntrospectionTests': (B, 'the _register_task/_enter_task registry; ' + NO_LOOP),
        'CIntrospectionTests': (B, 'the _register_task/_enter_task registry; ' + NO_LOOP),
        'PyCurrentLoopTests': (A, 'current_task() on a real loop; ' + NEW_LOOP),
        'CCurrentLoopTests': (A, 'current_task() on a real loop; ' + NEW_LOOP),
        'GenericTaskTests': (B, NO_LOOP),
        'FutureGatherTests': (B, FAKE_CLOCK),
        'CoroutineGatherTests': (B, FAKE_CLOCK),
        'RunCoroutineThreadsafeTests': (A, 'run_coroutine_threadsafe; ' + NEW_LOOP),
        'SleepTests': (A, NEW_LOOP),
        'CompatibilityTests': (A, NEW_LOOP),
    },
    'test_threads': {
        'ToThreadTests': (A, ISOLATED),
    },
    'test_timeouts': {
        'TimeoutTests': (A, ISOLATED),
    },
    'test_transports': {
        'TransportTests': (B, 'transport ABCs; ' + NO_LOOP),
    },
    'test_unix_events': {
        'SelectorEventLoopSignalTests': (B, 'stdlib signal handling with a mocked signal module'),
        'SelectorEventLoopUnixSocketTests': (REPLACED, 'builds asyncio.SelectorEventLoop()'),
        'SelectorEventLoopUnixSockSendfileTests': (B, PRIVATE + '_sock_sendfile_native'),
        'UnixReadPipeTransportTests': (B, 'the stdlib read pipe transport; ' + FAKE_CLOCK),
        'UnixWritePipeTransportTests': (B, 'the stdlib write pipe transport; ' + FAKE_CLOCK),
        'AbstractChildWatcherTests': (B, 'the child watcher ABC'),
        'BaseChildWatcherTests': (B, 'child watcher internals'),
        'SafeChildWatcherTests': (B, 'SafeChildWatcher; ' + FAKE_CLOCK),
        'FastChildWatcherTests': (B, 'FastChildWatcher; ' + FAKE_CLOCK),
        'PolicyTests': (B, 'child watchers in the unix policy'),
        'TestFunctional': (A, 'add_reader argument checks, who owns a transport\'s fd; ' + NEW_LOOP),
        'TargetLoop_UnixSocketTests': (A, 'create_unix_server and create_unix_connection'),
    },
    'test_waitfor': {
        'AsyncioWaitForTest': (A, ISOLATED),
    },
}

# Methods whose set differs from their class's: 'module.Class.method' -> (set, why).
METHODS = {
    'test_base_events.BaseEventLoopTests.test_create_task_error_closes_coro':
        (A, 'ensure_future() on a closed asyncio.new_event_loop()'),
    'test_base_events.BaseEventLoopTests.test_create_named_task_with_default_factory':
        (A, 'create_task(name=) on asyncio.new_event_loop()'),
    'test_base_events.BaseEventLoopTests.test_create_named_task_with_custom_factory':
        (A, 'set_task_factory() and create_task(name=) on asyncio.new_event_loop()'),
    'test_runners.TargetLoop_RunnerTests.test_custom_factory':
        (B, 'Runner(loop_factory=) handing out a Mock: no real loop'),
    'test_events.TargetLoop_EventLoopTests.test_create_server_multiple_hosts_ipv4':
        (B, PRIVATE + "mock.patch('asyncio.base_events.socket')"),
    'test_events.TargetLoop_EventLoopTests.test_create_server_multiple_hosts_ipv6':
        (B, PRIVATE + "mock.patch('asyncio.base_events.socket')"),
    'test_events.TargetLoop_EventLoopTests.test_internal_fds':
        (B, PRIVATE + 'loop._ssock, _csock, _internal_fds'),
    'test_events.TargetLoop_EventLoopTests.test_prompt_cancellation':
        (B, PRIVATE + 'loop._stop_serving()'),
    'test_events.TargetLoop_EventLoopTests.test_timeout_rounding':
        (B, PRIVATE + 'loop._run_once, _selector, _clock_resolution'),
    'test_events.TargetLoop_EventLoopTests.test_unclosed_pipe_transport':
        (B, PRIVATE + "the stdlib pipe transports' _pipe"),
    'test_sendfile.TargetLoop_SendfileTests.test_sendfile_force_fallback':
        (B, PRIVATE + 'replaces loop._sendfile_native'),
    'test_sendfile.TargetLoop_SendfileTests.test_sendfile_force_unsupported_native':
        (B, PRIVATE + 'replaces loop._sendfile_native'),
    'test_sendfile.TargetLoop_SendfileTests.test_sendfile_fallback_close_peer_in_the_middle_of_receiving':
        (B, PRIVATE + 'replaces loop._sendfile_native'),
    'test_sendfile.TargetLoop_SendfileTests.test_sendfile_no_fallback_for_fallback_transport':
        (B, PRIVATE + 'a mock transport speaking _sendfile_compatible'),
    'test_server.TargetLoop_StartServerTests.test_start_server_1':
        (B, PRIVATE + 'Server._sockets and _waiters'),
    'test_server.TargetLoop_StartServerTests.test_start_unix_server_1':
        (B, PRIVATE + 'Server._sockets and _waiters'),
    'test_ssl.TestSSL.test_flush_before_shutdown':
        (B, PRIVATE + "the transport's _ssl_protocol"),
    'test_ssl.TestSSL.test_remote_shutdown_receives_trailing_data':
        (B, PRIVATE + 'sslproto._test__append_write_backlog'),
    'test_subprocess.TargetLoop_SubprocessTests.test_pause_reading':
        (B, PRIVATE + 'replaces loop.connect_read_pipe, reads proc._transport'),
    'test_subprocess.TargetLoop_SubprocessTests.test_close_kill_running':
        (B, PRIVATE + "awaits the stdlib subprocess transport's _wait()"),
    'test_subprocess.TargetLoop_SubprocessTests.test_popen_error':
        (B, PRIVATE + "mock.patch('subprocess.Popen'): assumes the loop spawns with Popen"),
    'test_subprocess.TargetLoop_SubprocessTests.test_popen_error_with_stdin_pipe':
        (B, PRIVATE + "mock.patch('subprocess.Popen'): assumes the loop spawns with Popen"),
    'test_unix_events.TargetLoop_UnixSocketTests.test_create_unix_server_bind_error':
        (B, PRIVATE + "mock.patch('asyncio.unix_events.socket')"),
}

# BaseTaskTests methods that also build a real loop with asyncio.new_event_loop() and use only
# public API on it: set (a) in the two plain pairings (C Task + C Future, Python + Python);
# the other six pairings add nothing about the loop.
_TASK_METHODS_ON_A_REAL_LOOP = (
    'test_other_loop_future', 'test_task_class', 'test_ensure_future_future',
    'test_ensure_future_task', 'test_ensure_future_awaitable', 'test_ensure_future_error_msg',
    'test_exception_chaining_after_await', 'test_exception_chaining_after_await_with_context_cycle',
    'test_cancelling', 'test_uncancel_basic', 'test_uncancel_structured_blocks',
    'test_cancel_with_message_then_future_result', 'test_cancel_with_message_then_future_exception',
    'test_cancellation_exception_context', 'test_cancel_with_message_before_starting_task',
    'test_cancel_current_task', 'test_cancel_at_end', 'test_cancel_awaited_task',
    'test_cancel_traceback_for_future_result', 'test_cancel_traceback_for_future_exception',
    'test_tb_logger_not_called_after_cancel', 'test_cancel_gather_1', 'test_cancel_gather_2',
    'test_context_1', 'test_context_2', 'test_context_3', 'test_context_4', 'test_context_5',
    'test_context_6', 'test_get_coro',
)
METHODS.update({
    f'test_tasks.{cls}.{method}': (A, 'also builds a real loop with asyncio.new_event_loop()')
    for cls in ('CTask_CFuture_Tests', 'PyTask_PyFuture_Tests')
    for method in _TASK_METHODS_ON_A_REAL_LOOP
})

# module -> {generated class: Generated}
GENERATED = {
    'test_buffered_proto': {
        'TargetLoop_BufferedProtocolTests': Generated(('BufferedProtocolSelectorTests',), 'new_loop'),
    },
    # From the mixins, as upstream builds its Windows classes: UnixEventLoopTestsMixin would
    # attach a stdlib child watcher to the loop, which only asyncio's own subprocess code uses.
    'test_events': {
        'TargetLoop_EventLoopTests': Generated(
            ('EventLoopTestsMixin', 'SubprocessTestsMixin', 'test_utils.TestCase'),
            'create_event_loop'),
    },
    'test_pep492': {
        'TargetLoop_LockTests': Generated(('LockTests',), 'setUp'),
        'TargetLoop_StreamReaderTests': Generated(('StreamReaderTests',), 'setUp'),
        'TargetLoop_CoroutineTests': Generated(('CoroutineTests',), 'setUp'),
    },
    'test_runners': {
        'TargetLoop_RunTests': Generated(('RunTests',), 'runners'),
        'TargetLoop_RunnerTests': Generated(('RunnerTests',), 'runners'),
    },
    'test_sendfile': {
        'TargetLoop_SendfileTests': Generated(
            ('SendfileTestsBase', 'test_utils.TestCase'), 'create_event_loop'),
    },
    'test_server': {
        'TargetLoop_StartServerTests': Generated(('SelectorStartServerTests',), 'new_loop'),
    },
    'test_sock_lowlevel': {
        'TargetLoop_SockTests': Generated(
            ('BaseSockTestsMixin', 'test_utils.TestCase'), 'create_event_loop'),
    },
    'test_sslproto': {
        'TargetLoop_StartTLSTests': Generated(('SelectorStartTLSTests',), 'new_loop'),
    },
    # From the mixin rather than one of the per-watcher classes: those are gone in 3.14, and a
    # loop that reaps its own children needs no watcher (asyncio's loop gets the policy's).
    'test_subprocess': {
        'TargetLoop_SubprocessTests': Generated(('SubprocessMixin', 'test_utils.TestCase'), 'setUp'),
    },
    'test_unix_events': {
        'TargetLoop_UnixSocketTests': Generated(('SelectorEventLoopUnixSocketTests',), 'setUp'),
    },
}


class Classification:
    """The tables for one Python version: 3.11's with the later versions' changes applied."""

    def __init__(self, classes, methods, generated):
        self.classes = classes
        self.methods = methods
        self.generated = generated

    def of_class(self, module, cls):
        return self.classes.get(module, {}).get(cls, (UNCLASSIFIED, 'not in the tables'))

    def of_test(self, module, cls, method):
        found = self.methods.get(f'{module}.{cls}.{method}')
        return found if found is not None else self.of_class(module, cls)

