"""Ways in: ``new_event_loop``, ``run``, ``install`` and ``EventLoopPolicy``.

``new_event_loop`` (as a ``loop_factory``) and ``run`` need no event loop policy. ``install``
and ``python -m ferroloop`` make ferroloop the loop of code that does not ask for one
(``asyncio.run()`` without ``loop_factory``, ``asyncio.new_event_loop()``), and asyncio's only
hook for that is the event loop policy: deprecated from Python 3.14, due for removal in 3.16.
"""

import asyncio
import warnings
from asyncio import events

from . import versions
from .loop import EventLoop
from .watchdog import parse_threshold


def new_event_loop():
    """A new ferroloop event loop."""
    return EventLoop()


class EventLoopPolicy(versions.DefaultEventLoopPolicy):
    """asyncio's default policy, making ferroloop loops."""

    _loop_factory = EventLoop

    def __repr__(self):
        return f'<{self.__class__.__module__}.{self.__class__.__qualname__}>'


def install():
    """Make ferroloop the loop of every later ``asyncio.run()``, ``asyncio.Runner()`` and
    ``asyncio.new_event_loop()`` that does not name a loop factory.

    It sets an event loop policy. From Python 3.14 on, where asyncio deprecates policies
    (``asyncio.set_event_loop_policy`` warns, and 3.16 removes them), it warns likewise: pass
    ``loop_factory=ferroloop.new_event_loop`` to ``asyncio.run``/``asyncio.Runner``, call
    ``ferroloop.run(main())``, or run the program with ``python -m ferroloop``."""
    if versions.POLICIES_DEPRECATED:
        warnings.warn('ferroloop.install() sets an event loop policy, and asyncio deprecates '
                      'policies (removed in Python 3.16): use ferroloop.run(main()), '
                      'asyncio.run(main(), loop_factory=ferroloop.new_event_loop) or '
                      'python -m ferroloop', DeprecationWarning, stacklevel=2)
    _set_policy()


def _set_policy():
    """Installs ferroloop's policy without the warning of 3.14's ``set_event_loop_policy``:
    for ``python -m ferroloop``, where the user asked for no deprecated API."""
    versions.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None, watchdog=None, metrics=False):
    """Run coroutine ``main`` on a new ferroloop loop and return its result, as
    ``asyncio.run`` does (cancelling leftover tasks and closing async generators and the
    default executor before closing the loop). ``watchdog`` (seconds, or a string such as
    ``'100ms'``) reports what blocks the loop longer than that; ``metrics`` gathers the timing
    metrics of ``loop.metrics()``."""
    if events._get_running_loop() is not None:
        raise RuntimeError('asyncio.run() cannot be called from a running event loop')
    threshold = parse_threshold(watchdog)

    def loop_factory():
        loop = new_event_loop()
        if threshold is not None:
            loop.set_watchdog(threshold)
        if metrics:
            loop.set_metrics(True)
        return loop

    with asyncio.Runner(debug=debug, loop_factory=loop_factory) as runner:
        return runner.run(main)
