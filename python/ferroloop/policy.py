"""Ways in: ``new_event_loop``, ``EventLoopPolicy``, ``install`` and ``run``."""

import asyncio
from asyncio import events

from .loop import EventLoop


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


def run(main, *, debug=None):
    """Run coroutine ``main`` on a new ferroloop loop and return its result, as
    ``asyncio.run`` does (cancelling leftover tasks and closing async generators and the
    default executor before closing the loop)."""
    if events._get_running_loop() is not None:
        raise RuntimeError('asyncio.run() cannot be called from a running event loop')
    with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)
