"""The loops compared, by the names the whole suite uses, and the exit convention for a
workload a loop cannot run yet."""

import asyncio
import sys

# rloop: the fastest loop written in Rust besides ferroloop, so every report shows it too.
LOOPS = ('asyncio', 'uvloop', 'rloop', 'ferroloop')
# Run only when asked for (--loops): ferroloop with its watchdog (100 ms) and timing metrics
# on, to show what watching costs beside plain ferroloop in the same run.
WATCHED = 'ferroloop-watched'
ALL_LOOPS = LOOPS + (WATCHED,)

# Exit status of a benchmark process whose loop raised NotImplementedError: the runner
# reports the pair as "n/a" instead of failing the suite.
NOT_AVAILABLE = 3


def loop_factory(name):
    """The loop factory for ``name``, one of ``ALL_LOOPS``."""
    if name == 'asyncio':
        # What asyncio.new_event_loop() gives on Linux, named so no policy can change it.
        return asyncio.SelectorEventLoop
    if name == 'uvloop':
        import uvloop
        return uvloop.new_event_loop
    if name == 'rloop':
        import rloop
        return rloop.new_event_loop
    if name == 'ferroloop':
        import ferroloop
        return ferroloop.new_event_loop
    if name == WATCHED:
        import ferroloop

        def watched():
            loop = ferroloop.new_event_loop()
            loop.set_watchdog(0.1)
            loop.set_metrics(True)
            return loop
        return watched
    raise ValueError(f'unknown loop {name!r}; expected one of {", ".join(ALL_LOOPS)}')


def announce(line):
    """Tell the runner something on stdout, at once (stdout is a pipe, so block-buffered)."""
    print(line, flush=True)


def exit_not_available(error):
    """Report that this loop cannot run the workload yet, and exit."""
    announce(f'N/A {type(error).__name__}: {error}'.replace('\n', ' '))
    sys.exit(NOT_AVAILABLE)
