"""What each CPython version after 3.11 changes in test.test_asyncio, as far as the harness cares.

The only place where versions differ: classification.py describes 3.11, and every entry here
applies from its version on, on top of the earlier ones. A class a version removes needs no
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
    A,
    B,
    Classification,
)


@dataclasses.dataclass(frozen=True)
class Change:
    since: tuple
    classes: dict = dataclasses.field(default_factory=dict)     # module -> {class: (set, why)}
    methods: dict = dataclasses.field(default_factory=dict)     # 'module.Class.method' -> (set, why)
    generated: dict = dataclasses.field(default_factory=dict)   # module -> {class: Generated}


CHANGES = [
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
    Change(since=(3, 13), classes={
        'test_queues': {
            'QueueShutdownTests': (A, ISOLATED),
            'LifoQueueShutdownTests': (A, ISOLATED),
            'PriorityQueueShutdownTests': (A, ISOLATED),
        },
        'test_server': {'UnixServerCleanupTests': (A, ISOLATED)},
        'test_staggered': {'StaggeredTests': (A, ISOLATED)},
    }, methods={
        'test_runners.TargetLoop_RunTests.test_loop_factory_default_event_loop':
            (B, 'asyncio.run(loop_factory=asyncio.EventLoop) asks for asyncio\'s own loop'),
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
