"""Ways in: ``new_event_loop``, ``EventLoopPolicy``, ``install`` and ``run``."""

import asyncio
from asyncio import events

from .loop import EventLoop
from .watchdog import parse_threshold


def new_event_loop():
    """A new ferroloop event loop."""
    return EventLoop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """asyncio's default policy, making ferroloop loops."""

    _loop_factory = EventLoop

    def __repr__(self):
        return f'<{self.__class__.__module__}.{self.__class__.__qualname__}>'


def install():
    """Make ferroloop the loop of every ``asyncio.run()``/``asyncio.new_event_loop()``."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


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
