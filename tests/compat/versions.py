"""What each CPython version after 3.11 changes in test.test_asyncio, as far as the harness cares.

The one place where the classification differs by version: classification.py describes 3.11,
and every entry here applies from its version on, on top of the earlier ones. A class a version removes needs no
entry (it is no longer found); a class a version adds and nobody has read yet shows up as
unclassified in the report, which is the cue to add it here.
"""

import dataclasses

from compat.classification import (
    CLASSES,
    GENERATED,
    ISOLATED,
    METHODS,
    NEW_LOOP,
    NO_LOOP,
    PRIVATE,
    REPLACED,
    A,
    B,
    Classification,
    Generated,
)

PY_SWAP = ('swaps the pure-Python Task and Future into asyncio\'s module globals, which only '
           'loops that look them up on every call see')


@dataclasses.dataclass(frozen=True)
class Change:
    since: tuple
    classes: dict = dataclasses.field(default_factory=dict)     # module -> {class: (set, why)}
    methods: dict = dataclasses.field(default_factory=dict)     # 'module.Class.method' -> (set, why)
    generated: dict = dataclasses.field(default_factory=dict)   # module -> {class: Generated}


CHANGES = [
    # Checked against 3.12.1 on asyncio's own loop.
    Change(since=(3, 12), classes={
        'test_eager_task_factory': {
            'PyEagerTaskFactoryLoopTests': (A, 'eager task factory with the Python Task; ' + NEW_LOOP),
            'CEagerTaskFactoryLoopTests': (A, 'eager task factory with the C Task; ' + NEW_LOOP),
            'NonEagerTests': (A, NEW_LOOP),
            'EagerTests': (A, NEW_LOOP),
            'NonEagerPyTaskTests': (A, NEW_LOOP),
            'EagerPyTaskTests': (A, NEW_LOOP),
            'NonEagerCTaskTests': (A, NEW_LOOP),
            'EagerCTaskTests': (A, NEW_LOOP),
        },
        'test_server': {'TestServer2': (A, ISOLATED)},
        'test_subprocess': {
            'MultiLoopChildWatcherTests': (B, 'the stdlib MultiLoopChildWatcher'),
        },
        'test_unix_events': {'TestFork': (A, ISOLATED + '; a forked child and the loop')},
        'test_waitfor': {'WaitForShieldTests': (A, ISOLATED)},
    }),
    # Checked against 3.13.0 on asyncio's own loop.
    Change(since=(3, 13), classes={
        'test_queues': {
            'QueueShutdownTests': (A, ISOLATED),
            'LifoQueueShutdownTests': (A, ISOLATED),
            'PriorityQueueShutdownTests': (A, ISOLATED),
        },
        'test_server': {'UnixServerCleanupTests': (A, ISOLATED)},
        'test_staggered': {'StaggeredTests': (A, ISOLATED)},
        # In 3.13's later bug-fix releases (3.13.18 has them) as in 3.14.
        'test_events': {
            'UnixPipeObjectSupportTests': (REPLACED, 'builds asyncio.SelectorEventLoop()'),
            'TargetLoop_UnixPipeObjectSupportTests': (A, ('which objects connect_read_pipe and '
                                                          'connect_write_pipe accept')),
        },
        'test_taskgroups': {
            # TestTaskGroup names asyncio.EventLoop as its loop_factory, which routing.py
            # replaces; this one builds asyncio.EventLoop() itself, for the same tests.
            'TestEagerTaskTaskGroup': (B, ('its loop_factory builds asyncio.EventLoop() itself; '
                                           'TestTaskGroup runs its tests on the loop under test')),
        },
    }, methods={
        'test_runners.TargetLoop_RunTests.test_loop_factory_default_event_loop':
            (B, "asyncio.run(loop_factory=asyncio.EventLoop) asks for asyncio's own loop"),
        # Added in a 3.13 bug-fix release (and 3.14): the sibling of
        # test_remote_shutdown_receives_trailing_data, set (b) since 3.11.
        'test_ssl.TestSSL.test_remote_shutdown_receives_trailing_data_on_slow_socket':
            (B, PRIVATE + 'sslproto._test__append_write_backlog; replaces the socket '
                          "transport's _sock, tests its _read_ready_cb"),
    }, generated={
        'test_events': {
            'TargetLoop_UnixPipeObjectSupportTests': Generated(
                ('UnixPipeObjectSupportTests',), 'plain setUp'),
        },
    }),
    # Checked against 3.14.10 on asyncio's own loop. 3.14 also removes the child watchers:
    # their classes are simply no longer found.
    Change(since=(3, 14), classes={
        'test_eager_task_factory': {
            'DefaultTaskFactoryEagerStart': (B, ('asyncio.run(loop_factory=asyncio.EventLoop) '
                                                 "asks for asyncio's own loop")),
        },
        'test_free_threading': {
            'TestCFreeThreading': (A, 'tasks and all_tasks() across threads; ' + NEW_LOOP),
            'TestEagerCFreeThreading': (A, 'the same with eager tasks; ' + NEW_LOOP),
            'TestPyFreeThreading': (B, PY_SWAP),
            'TestEagerPyFreeThreading': (B, PY_SWAP),
        },
        'test_graph': {
            'TestCallStackC': (A, 'the task call graph; ' + ISOLATED),
            'TestCallStackPy': (B, PY_SWAP),
        },
        'test_tools': {name: (B, 'asyncio.tools, the ps/pstree commands; ' + NO_LOOP) for name in (
            'TestAsyncioToolsBasic', 'TestAsyncioToolsEdgeCases', 'TestAsyncioToolsTable',
            'TestAsyncioToolsTree')},
        'test_unix_events': {
            'TestFork': (B, ('the running-loop registry across fork, with a placeholder object '
                             'or in the child process, where the guard cannot see')),
            'PidfdChildWatcherTests': (B, 'the stdlib pidfd watcher'),
        },
    }, methods={
        # Each asserts, in a thread, isinstance(handle, asyncio.events._ThreadSafeHandle): a
        # private class that only asyncio's own loop can hand out (its assertion failing in
        # that thread, the loop is never stopped and the test hangs). What the handle does,
        # cancel() and cancelled() from another thread waiting while its callback runs, is
        # tested on both loops in tests/test_threadsafe.py.
        **{f'test_events.TargetLoop_EventLoopTests.test_call_soon_threadsafe_handle_{name}':
           (B, PRIVATE + 'the handle is asserted to be an events._ThreadSafeHandle')
           for name in ('block_check_cancelled', 'block_cancellation', 'cancel_same_thread',
                        'cancel_other_thread')},
    }),
    # Checked against 3.15.2 on asyncio's own loop.
    Change(since=(3, 15), classes={
        'test_server_context': {
            'AsyncioEventLoopTests': (A, ('servers keep the context they were made in; '
                                          'asyncio.run(loop_factory=asyncio.new_event_loop), '
                                          'which asks the policy')),
            'AsyncioEventLoopSSLTests': (A, 'the same over TLS'),
        },
    }),
]


def for_python(version_info):
    """The classification of the test.test_asyncio that ships with that Python."""
    classes = {module: dict(table) for module, table in CLASSES.items()}
    methods = dict(METHODS)
    generated = {module: dict(table) for module, table in GENERATED.items()}
    for change in CHANGES:
        if tuple(version_info[:2]) < change.since:
            continue
        for module, table in change.classes.items():
            classes.setdefault(module, {}).update(table)
        methods.update(change.methods)
        for module, table in change.generated.items():
            generated.setdefault(module, {}).update(table)
    return Classification(classes, methods, generated)
