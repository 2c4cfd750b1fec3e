"""How the tests of a module get the loop under test instead of one of asyncio's.

Most tests ask asyncio's default policy, directly (asyncio.new_event_loop()) or through
asyncio.run(), asyncio.Runner and IsolatedAsyncioTestCase: the policy class's loop factory is
replaced, so every instance of it, and of its subclasses, makes the loop under test. The rest
build a stdlib or fake loop in a hook of their own (create_event_loop, new_loop, setUp):
classification.GENERATED lists the subclasses generated with that hook replaced.
"""

import asyncio
import asyncio.events
import asyncio.unix_events
import importlib
import unittest


def resolve_factory(spec):
    """'package.module:callable' -> the callable."""
    module_name, colon, attribute = spec.partition(':')
    if not colon:
        raise SystemExit(f'a loop factory is module:callable, got {spec!r}')
    factory = importlib.import_module(module_name)
    for name in attribute.split('.'):
        factory = getattr(factory, name)
    if not callable(factory):
        raise SystemExit(f'{spec} is not callable')
    return factory


def default_policy_class():
    # vars(): 3.14 deprecates the public name, and a module __getattr__ would warn.
    names = vars(asyncio.unix_events)
    return names.get('_DefaultEventLoopPolicy') or names['DefaultEventLoopPolicy']


def policy_functions():
    """(get, set) of the event loop policy without 3.14's deprecation warnings."""
    events = asyncio.events
    return (getattr(events, '_get_event_loop_policy', None) or events.get_event_loop_policy,
            getattr(events, '_set_event_loop_policy', None) or events.set_event_loop_policy)


class Router:
    """Hands out loops of the factory under test, telling the guard about each one."""

    def __init__(self, spec, guard, sabotage=False):
        self.guard = guard
        self.policy_class = default_policy_class()
        self.stdlib_factory = self.policy_class._loop_factory
        factory = resolve_factory(spec)
        # asyncio's own new_event_loop asks the policy, which would ask us again.
        self.factory = self.stdlib_factory if factory is asyncio.events.new_event_loop else factory
        # --guard-selftest: tests silently get asyncio's loop; the guard must notice.
        self.sabotage = sabotage
        self.shims_used = {}

    def install(self):
        self.policy_class._loop_factory = staticmethod(self.new_loop)
        policy_functions()[1](None)
        probe = self.factory()
        self.guard.set_target_class(type(probe))
        probe.close()
        return type(probe)

    def new_loop(self):
        if self.sabotage:
            return self.stdlib_factory()
        inside = self.guard.inside_factory
        depth = getattr(inside, 'depth', 0)
        if depth:
            # The factory asked a default policy in turn: give it asyncio's loop.
            return self.stdlib_factory()
        inside.depth = depth + 1
        try:
            loop = self.factory()
        finally:
            inside.depth = depth
        self.guard.made_by_factory(loop)
        return loop

    def route_loop_factories(self, module):
        """IsolatedAsyncioTestCase classes that name asyncio's loop class as their loop_factory
        (3.14's test_taskgroups) get the loop under test instead; their ids stay the same."""
        for cls in vars(module).values():
            if (isinstance(cls, type) and issubclass(cls, unittest.IsolatedAsyncioTestCase)
                    and _is_asyncio_loop_class(cls.__dict__.get('loop_factory'))):
                cls.loop_factory = staticmethod(self.new_loop)

    # -- generated classes ------------------------------------------------------------------

    def generate(self, module, test_utils, table):
        """Add the generated classes of `table` to `module`; -> notes on those left out."""
        notes = []
        for name, spec in table.items():
            try:
                bases = tuple(_lookup(module, base) for base in spec.bases)
            except AttributeError as exc:
                notes.append(f'{name} not generated: {exc}')
                continue
            namespace = {'__module__': module.__name__, '__qualname__': name,
                         '__doc__': f'{", ".join(spec.bases)} on the loop under test'}
            namespace.update(LOOP_HOOKS[spec.routed](self, test_utils))
            setattr(module, name, type(name, bases, namespace))
        return notes

    # -- helpers of test_utils that read stdlib-private loop attributes ---------------------

    def shim_test_utils(self, test_utils):
        """Let two shared helpers work with loops that lack asyncio's private attributes.

        Only the helpers, never a test body: for a loop that has the attributes, the
        original helper runs.
        """
        close_loop = test_utils.TestCase.close_loop

        def close_loop_publicly(loop):
            if hasattr(loop, '_default_executor'):
                return close_loop(loop)
            self._shim_used('close_loop')
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

        def run_briefly(loop):
            async def once():
                pass
            coro = once()
            task = loop.create_task(coro)
            try:
                task._log_destroy_pending = False
            except AttributeError:
                self._shim_used('run_briefly')
            try:
                loop.run_until_complete(task)
            finally:
                coro.close()

        test_utils.TestCase.close_loop = staticmethod(close_loop_publicly)
        test_utils.run_briefly = run_briefly

    def _shim_used(self, name):
        self.shims_used[name] = self.shims_used.get(name, 0) + 1


def _is_asyncio_loop_class(candidate):
    return (isinstance(candidate, type) and issubclass(candidate, asyncio.AbstractEventLoop)
            and candidate.__module__.startswith('asyncio.'))


def _lookup(module, dotted):
    found = module
    for name in dotted.split('.'):
        found = getattr(found, name)
    return found


def _loop_returned_by(method_name):
    def hook(router, test_utils):
        def make_loop(self):
            return router.new_loop()
        make_loop.__name__ = method_name
        return {method_name: make_loop}
    return hook


def _set_up_on_target(router, test_utils):
    # Replaces a setUp that builds asyncio.SelectorEventLoop() or a mocked BaseEventLoop.
    def setUp(self):
        test_utils.TestCase.setUp(self)
        self.loop = router.new_loop()
        self.set_event_loop(self.loop)
    return {'setUp': setUp}


def _plain_set_up_on_target(router, test_utils):
    # Replaces a unittest.TestCase setUp that builds asyncio.SelectorEventLoop() and closes it.
    def setUp(self):
        unittest.TestCase.setUp(self)
        self.loop = router.new_loop()
        self.addCleanup(self.loop.close)
    return {'setUp': setUp}


def _runners_on_target(router, test_utils):
    # test_runners' policy hands out mocked loops and its tearDown checks a flag only the
    # mock sets; the loop under test must still be left closed.
    def new_loop(self):
        return router.new_loop()

    def tearDown(self):
        get_policy, set_policy = policy_functions()
        loop = getattr(get_policy(), 'loop', None)
        if loop is not None:
            self.assertTrue(loop.is_closed())
        set_policy(None)
        unittest.TestCase.tearDown(self)
    return {'new_loop': new_loop, 'tearDown': tearDown}


LOOP_HOOKS = {
    'create_event_loop': _loop_returned_by('create_event_loop'),
    'new_loop': _loop_returned_by('new_loop'),
    'setUp': _set_up_on_target,
    'plain setUp': _plain_set_up_on_target,
    'runners': _runners_on_target,
}
