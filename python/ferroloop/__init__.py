"""ferroloop: a fast asyncio event loop for CPython, written in Rust.

One line switches a program to it::

    asyncio.run(main(), loop_factory=ferroloop.new_event_loop)   # Python 3.12+
    ferroloop.run(main())                                         # any version
    ferroloop.install()                                           # every asyncio.run() after it
    python -m ferroloop app.py                                    # without touching the code
"""

from ._ferroloop import Handle, TimerHandle
from .loop import EventLoop
from .policy import EventLoopPolicy, install, new_event_loop, run
from .watchdog import BlockReport, LoopMetrics

__all__ = ['BlockReport', 'EventLoop', 'EventLoopPolicy', 'Handle', 'LoopMetrics', 'TimerHandle',
           'install', 'new_event_loop', 'run']
__version__ = '0.1.0'
