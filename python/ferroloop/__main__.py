"""``python -m ferroloop [--watchdog DURATION] [--metrics] script.py [args...]`` (or
``-m module [args...]``): run an unmodified asyncio program on ferroloop.

``--watchdog 100ms`` reports every callback that holds a loop longer than that, with the
stack that blocks it, on the ``ferroloop.watchdog`` logger (printed to stderr if the program
configures no logging); ``--metrics`` gathers the timing metrics of ``loop.metrics()``.

ferroloop's event loop policy is set before the program starts, so its ``asyncio.run()``,
``asyncio.new_event_loop()`` and ``asyncio.Runner()`` make ferroloop loops, exactly as they
would make asyncio's (a policy is asyncio's only hook for the loop of code that names none).
Python 3.14 deprecates policies, but the program uses none: nothing warns unless it sets one
itself. ``sys.argv`` and ``sys.path[0]`` are what the program would see if run directly.
"""

import importlib.util
import os
import runpy
import sys

from . import watchdog
from .policy import _set_policy

USAGE = ('usage: python -m ferroloop [--watchdog DURATION] [--metrics] '
         '(script.py | -m module) [args...]')


def main(argv):
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE, file=sys.stderr if not argv else sys.stdout)
        return 2 if not argv else 0
    try:
        argv = _take_options(argv)
    except ValueError as exc:
        print(f'{USAGE}\nferroloop: {exc}', file=sys.stderr)
        return 2
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    _set_policy()
    if argv[0] == '-m':
        if len(argv) < 2:
            print(USAGE, file=sys.stderr)
            return 2
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())
        problem = _find_module_problem(argv[1])
        if problem:
            # What `python -m missing` says, with its exit status.
            print(f'{sys.executable}: {problem}', file=sys.stderr)
            return 1
        runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
        return 0
    script = argv[0]
    if not os.path.exists(script):
        # What `python missing.py` says, with its exit status.
        print(f"{sys.executable}: can't open file {os.path.abspath(script)!r}: "
              f'[Errno 2] No such file or directory', file=sys.stderr)
        return 2
    sys.argv = list(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name='__main__')
    return 0


def _take_options(argv):
    """Applies ferroloop's own options, which come before the program; returns the rest."""
    argv = list(argv)
    while argv and argv[0].startswith('--'):
        option = argv.pop(0)
        name, _, value = option.partition('=')
        if name == '--watchdog':
            if not value:
                if not argv:
                    raise ValueError('--watchdog needs a duration, such as 100ms')
                value = argv.pop(0)
            watchdog.default_threshold = watchdog.parse_threshold(value)
        elif name == '--metrics' and not value:
            watchdog.default_metrics = True
        else:
            raise ValueError(f'unknown option {option!r}')
    return argv


def _find_module_problem(name):
    """None if module ``name`` can be run, else the reason, worded as runpy words it."""
    try:
        if importlib.util.find_spec(name) is None:
            return f'No module named {name}'
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        # A parent package is missing or broken, or the name is malformed.
        return (f'Error while finding module specification for {name!r} '
                f'({type(exc).__name__}: {exc})')
    return None


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
