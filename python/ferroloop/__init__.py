"""ferroloop: a fast asyncio event loop for CPython, written in Rust.

One line switches a program to it::

    asyncio.run(main(), loop_factory=ferroloop.new_event_loop)   # Python 3.12+
    ferroloop.run(main())                                         # any version
    python -m ferroloop app.py                                    # without touching the code
    ferroloop.install()                                           # every asyncio.run() after it
                                                                  # (warns from 3.14 on: policies)
"""

from . import policy as _policy
from . import versions as _versions
from ._ferroloop import Handle, TimerHandle
from .loop import EventLoop
from .policy import install, new_event_loop, run
from .watchdog import BlockReport, LoopMetrics

__all__ = ['BlockReport', 'EventLoop', 'Handle', 'LoopMetrics', 'TimerHandle', 'install',
           'new_event_loop', 'run']
__version__ = '0.1.0'

if _versions.POLICIES_DEPRECATED:
    # As asyncio.DefaultEventLoopPolicy: still there, but looking it up warns, and
    # `import *` leaves it out.
    def __getattr__(name):
        if name == 'EventLoopPolicy':
            import warnings
            warnings.warn("'ferroloop.EventLoopPolicy' is deprecated, as asyncio's event loop "
                          'policies are (removed in Python 3.16): use '
                          'loop_factory=ferroloop.new_event_loop', DeprecationWarning,
                          stacklevel=2)
            return _policy.EventLoopPolicy
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
else:
    EventLoopPolicy = _policy.EventLoopPolicy
    __all__.append('EventLoopPolicy')
