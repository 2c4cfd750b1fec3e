"""The proof that a test ran on the loop under test, and not on one asyncio made behind its back.

Three kinds of loop can show up in a test: *target* loops (made by the factory under test, or
of its class when that class is not asyncio's), *fake* ones (test_utils.TestLoop, a bare or
mocked BaseEventLoop) and *other* real loops (a stdlib loop the routing missed). A loop shows
up when it is made (BaseEventLoop.__init__, the factory) or when it runs (_set_running_loop,
get_running_loop, _get_running_loop). Loops are known by (id, class) only: keeping references
would keep them alive past their test.
"""

import asyncio
import asyncio.base_events
import asyncio.events
import threading

TARGET, OTHER, FAKE = 'target', 'other', 'fake'


def qualname(cls):
    return f'{cls.__module__}.{cls.__qualname__}'


def verdict_of(kinds):
    """One word for the kinds of loop a test showed: target, mixed, other, fake or none."""
    if TARGET in kinds:
        return 'mixed' if OTHER in kinds else TARGET
    if OTHER in kinds:
        return OTHER
    return FAKE if FAKE in kinds else 'none'


class Guard:
    def __init__(self):
        self.target_class = None
        self.target_class_proves = False
        self.factory_made = {}          # id -> class of every loop the factory returned
        self.inside_factory = threading.local()
        self.on_first_sighting = None   # (kind, class name) -> None; survives a hang
        self.watching = False
        self.created = set()
        self.runs = {}
        self.kinds_sighted = set()

    def set_target_class(self, cls):
        # An asyncio class proves nothing: the routing could have fallen back to it.
        self.target_class = cls
        self.target_class_proves = not cls.__module__.startswith('asyncio.')

    def kind(self, key):
        loop_id, cls = key
        if self.factory_made.get(loop_id) is cls:
            return TARGET
        if cls is self.target_class and self.target_class_proves:
            return TARGET
        module = cls.__module__ or ''
        if module.startswith('test.') or 'mock' in module or cls is asyncio.base_events.BaseEventLoop:
            return FAKE
        return OTHER

    def _sighted(self, key):
        kind = self.kind(key)
        if kind not in self.kinds_sighted:
            self.kinds_sighted.add(kind)
            if self.on_first_sighting is not None:
                self.on_first_sighting(kind, qualname(key[1]))

    def made_by_factory(self, loop):
        key = (id(loop), type(loop))
        self.factory_made[key[0]] = key[1]
        self._made(key)

    def made(self, loop):
        key = (id(loop), type(loop))
        if getattr(self.inside_factory, 'depth', 0):
            return    # made_by_factory() records it once the factory returns
        if self.factory_made.get(key[0]) is key[1]:
            del self.factory_made[key[0]]   # the id of a dead factory loop, reused
        self._made(key)

    def _made(self, key):
        if self.watching and key not in self.created:
            self.created.add(key)
            self._sighted(key)

    def ran(self, loop):
        if loop is None or not self.watching:
            return
        key = (id(loop), type(loop))
        seen = self.runs.get(key, 0)
        self.runs[key] = seen + 1
        if not seen:
            self._sighted(key)

    def begin(self):
        self.created = set()
        self.runs = {}
        self.kinds_sighted = set()
        self.watching = True

    def end(self):
        """What the test that just finished showed: {'verdict', 'target_ran', 'loops'}."""
        self.watching = False
        keys = self.created | set(self.runs)
        kinds = {self.kind(key) for key in keys}
        return {
            'verdict': verdict_of(kinds),
            'target_ran': any(self.kind(key) == TARGET for key in self.runs),
            'loops': sorted({qualname(cls) for _, cls in keys}),
        }

    def install(self):
        """Watch loop construction and the running-loop registry.

        Must run before the loop's package is imported: a package may keep its own reference
        to asyncio's _set_running_loop (uvloop does), and must get the watched one.
        """
        events = asyncio.events
        set_running, get_running, peek_running = (
            events._set_running_loop, events.get_running_loop, events._get_running_loop)

        def _set_running_loop(loop):
            self.ran(loop)
            return set_running(loop)

        def get_running_loop():
            loop = get_running()
            self.ran(loop)
            return loop

        def _get_running_loop():
            loop = peek_running()
            self.ran(loop)
            return loop

        for watched, original in ((_set_running_loop, set_running),
                                  (get_running_loop, get_running),
                                  (_get_running_loop, peek_running)):
            watched.__doc__ = original.__doc__
            setattr(events, watched.__name__, watched)
            setattr(asyncio, watched.__name__, watched)

        base = asyncio.base_events.BaseEventLoop
        base_init = base.__init__

        def __init__(loop, *args, **kwargs):
            base_init(loop, *args, **kwargs)
            self.made(loop)

        base.__init__ = __init__
