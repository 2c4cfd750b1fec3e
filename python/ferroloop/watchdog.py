"""The watchdog and the metrics: what blocks the loop, reported while it blocks, and how the
loop spends its time.

The watchdog's threads are native (``src/core/watchdog.rs``): one reads the clock and the
loop's progress counter, the other takes the GIL when a callback has held the loop past the
threshold and calls ``_BlockReporter._blocked`` here, which takes the loop thread's stack at
that moment, and ``_BlockReporter._ended`` when the callback returns. Reports go to the
``ferroloop.watchdog`` logger at WARNING, or to a callback the program gives.
"""

import asyncio
import atexit
import dataclasses
import logging
import math
import os
import re
import sys
import sysconfig
import time
import traceback
import weakref

from . import _ferroloop

logger = logging.getLogger('ferroloop.watchdog')

# A place that blocked before is reported again in full only after this long; in between its
# blocks are counted and summed up in one line per window.
REPEAT_WINDOW = 60.0
# Worst stacks kept per loop, for metrics().
PLACES_KEPT = 50

ENV_WATCHDOG = 'FERROLOOP_WATCHDOG'
ENV_METRICS = 'FERROLOOP_METRICS'
# Set by `python -m ferroloop --watchdog ... --metrics` for every loop the program makes.
default_threshold = None
default_metrics = False

_DURATION = re.compile(r'\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(us|µs|ms|s|)\s*')
_UNITS = {'us': 1e-6, 'µs': 1e-6, 'ms': 1e-3, 's': 1.0, '': 1.0}


def parse_threshold(value):
    """Seconds from a number or a string such as ``'100ms'``, ``'0.1s'``, ``'0.1'``; None
    (watchdog off) from None, ``''``, ``'0'`` or ``'off'``."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ('', '0', 'off', 'no', 'false'):
            return None
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError(f'watchdog threshold {value!r} is not a duration '
                             f"such as '100ms', '0.5s' or '0.1'")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'watchdog threshold must be a number of seconds or a string such as '
                        f"'100ms', not {type(value).__name__}")
    else:
        seconds = float(value)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f'watchdog threshold must be a positive number of seconds, not {value!r}')
    return seconds


@dataclasses.dataclass
class BlockReport:
    """One report of the watchdog: a callback that holds (``ended`` False) or held the loop.

    ``stack`` is the loop thread's stack from the callback down (innermost call last), taken
    while the callback still ran; empty when it could not be taken (code holding the GIL ran
    until the callback returned). ``place`` is ``'file:line'`` of its innermost frame outside
    the standard library.
    ``count``, ``total`` and ``worst`` sum up every block at that place so far; ``repeats``
    is how many of them were not reported one by one (see ``REPEAT_WINDOW``)."""

    duration: float
    ended: bool
    running: str
    task: object = None
    stack: traceback.StackSummary = dataclasses.field(default_factory=traceback.StackSummary)
    place: str = None
    gil_wait: float = 0.0
    await_chain: str = None
    count: int = 1
    total: float = 0.0
    worst: float = 0.0
    repeats: int = 0

    def __str__(self):
        if self.ended and self.repeats:
            return (f'event loop blocked {self.repeats} more times at {self.place} in the last '
                    f'{REPEAT_WINDOW:.0f} s: worst {self.worst:.3f} s; '
                    f'{self.count} times in all, {self.total:.3f} s in all')
        if self.ended:
            return (f'event loop was blocked for {self.duration:.3f} s '
                    f'at {self.place or "an unknown place"} by {self.running}')
        lines = [f'event loop blocked for {self.duration:.3f} s so far by {self.running}']
        if self.gil_wait and not self.stack:
            lines.append(f'code holding the GIL ran for {self.gil_wait:.3f} s more and the '
                         'callback returned before its stack could be taken')
        elif self.gil_wait >= 0.05:
            lines.append(f'(code holding the GIL delayed this report by {self.gil_wait:.3f} s)')
        if self.stack:
            lines.append('Stack of the loop thread (most recent call last):')
            lines.append(''.join(self.stack.format()).rstrip('\n'))
        if self.await_chain:
            lines.append(self.await_chain.rstrip('\n'))
        return '\n'.join(lines)


@dataclasses.dataclass
class _Place:
    count: int = 0
    total: float = 0.0
    worst: float = 0.0
    worst_stack: str = ''
    reported_at: float = -math.inf
    since_report: int = 0
    since_worst: float = 0.0


class _BlockReporter:
    """Called from the watchdog's reporting thread, with the GIL: turns the native events into
    reports. Holds no reference to the loop."""

    def __init__(self, callback):
        self._callback = callback
        self._open = {}  # progress state -> (place key, report, reported in full)
        self.places = {}

    def _emit(self, report):
        if self._callback is not None:
            self._callback(report)
        else:
            logger.warning('%s', report)

    def _blocked(self, state, seconds, gil_wait, still_running, item, thread_ident):
        running, task = _describe(item)
        stack = _loop_stack(thread_ident) if still_running else traceback.StackSummary()
        place = _place(stack)
        key = place or running
        info = self.places.get(key)
        if info is None:
            if len(self.places) >= PLACES_KEPT:
                del self.places[min(self.places, key=lambda k: self.places[k].worst)]
            info = self.places[key] = _Place()
        now = time.monotonic()
        in_full = now - info.reported_at >= REPEAT_WINDOW
        report = BlockReport(duration=seconds, ended=False, running=running, task=task,
                             stack=stack, place=place, gil_wait=gil_wait,
                             await_chain=_await_chain(task) if still_running else None,
                             count=info.count + 1, total=info.total + seconds,
                             worst=max(info.worst, seconds))
        self._open[state] = (key, report, in_full)
        if in_full:
            if info.since_report:
                # The quiet blocks since the last full report, summed up before the new one.
                self._emit(dataclasses.replace(report, ended=True, repeats=info.since_report,
                                               worst=info.since_worst, count=info.count,
                                               total=info.total))
            info.reported_at = now
            info.since_report = info.since_worst = 0
            self._emit(report)

    def _ended(self, state, seconds):
        opened = self._open.pop(state, None)
        if opened is None:
            return  # its _blocked failed (and was reported as unraisable)
        key, blocked, in_full = opened
        info = self.places.get(key)
        if info is None:
            return
        duration = max(seconds, blocked.duration)
        info.count += 1
        info.total += duration
        if duration >= info.worst:
            info.worst = duration
            if blocked.stack:
                info.worst_stack = ''.join(blocked.stack.format())
        report = dataclasses.replace(blocked, duration=duration, ended=True, count=info.count,
                                     total=info.total, worst=info.worst)
        if in_full:
            self._emit(report)
            return
        info.since_report += 1
        info.since_worst = max(info.since_worst, duration)
        now = time.monotonic()
        if now - info.reported_at >= REPEAT_WINDOW:
            self._emit(dataclasses.replace(report, repeats=info.since_report,
                                           worst=info.since_worst))
            info.reported_at = now
            info.since_report = info.since_worst = 0


def _describe(item):
    """What the loop was running, as asyncio's debug mode names it: a task's step is the
    task."""
    if item is None:
        return 'a callback that has returned since', None
    if isinstance(item, _ferroloop.Handle):
        owner = getattr(item._callback, '__self__', None)
        if isinstance(owner, asyncio.Task):
            return _describe_task(owner), owner
    return repr(item), None


def _describe_task(task):
    """``task 'name' (coroutine() at file:line)``: a task's repr without its done callbacks."""
    coro = task.get_coro()
    frame = getattr(coro, 'cr_frame', None) or getattr(coro, 'gi_frame', None)
    name = getattr(coro, '__qualname__', None)
    if frame is None or name is None:
        return repr(task)
    return f'task {task.get_name()!r} ({name}() at {frame.f_code.co_filename}:{frame.f_lineno})'


_LOOP_FILE = None


def _loop_stack(thread_ident):
    """The stack of the loop's thread from the running callback down: the frames of whatever
    started the loop (asyncio.run, run_forever) are left out."""
    global _LOOP_FILE
    frame = sys._current_frames().get(thread_ident)
    if frame is None:
        return traceback.StackSummary()
    stack = traceback.extract_stack(frame)
    if _LOOP_FILE is None:
        from . import loop
        _LOOP_FILE = loop.__file__
    for index in range(len(stack) - 1, -1, -1):
        if stack[index].filename == _LOOP_FILE and stack[index].name == 'run_forever':
            return traceback.StackSummary.from_list(stack[index + 1:])
    return stack


# Where the standard library is: by sysconfig, and where its modules actually are (an
# interpreter installed under another prefix than it was built for differs).
_STDLIB = tuple({sysconfig.get_path('stdlib'), sysconfig.get_path('platstdlib'),
                 os.path.dirname(os.__file__)})


def _place(stack):
    """``'file:line'`` of the innermost frame of the program (or of a library it uses), not of
    the standard library: a block in ``threading.Event.wait()`` is placed where it was
    called."""
    for frame in reversed(stack):
        if not frame.filename.startswith(_STDLIB) or 'site-packages' in frame.filename:
            return f'{frame.filename}:{frame.lineno}'
    return f'{stack[-1].filename}:{stack[-1].lineno}' if stack else None


def _await_chain(task):
    """The task's await chain, where asyncio can show it (3.14's call graph)."""
    format_call_graph = getattr(asyncio, 'format_call_graph', None)
    if task is None or format_call_graph is None:
        return None
    try:
        return format_call_graph(task)
    except Exception:  # a best-effort addition to the report, never the reason it fails
        return None


@dataclasses.dataclass(frozen=True)
class LoopMetrics:
    """A snapshot of ``loop.metrics()``; see the README's "Metrics" section for each field."""

    iterations: int
    callbacks: int
    ready: int
    timers: int
    transports: int
    servers: int
    fds_watched: int
    timing: bool
    wall_seconds: float = 0.0
    poll_seconds: float = 0.0
    busy_seconds: float = 0.0
    busy_ratio: float = 0.0
    lag_count: int = 0
    lag_p50: float = 0.0
    lag_p99: float = 0.0
    lag_max: float = 0.0
    lag_mean: float = 0.0
    watchdog_threshold: float = None
    blocks: tuple = ()

    def as_dict(self):
        return dataclasses.asdict(self)


_watched_loops = weakref.WeakSet()


@atexit.register
def _stop_watchdogs():
    # Before the interpreter finalizes: its reporting thread must not wait for the GIL then.
    for loop in list(_watched_loops):
        loop._watchdog_stop()


class WatchdogMixin:
    """``set_watchdog``/``get_watchdog`` and ``set_metrics``/``metrics`` of ``EventLoop``."""

    def _init_watchdog(self):
        self._block_reporter = None
        self._servers = weakref.WeakSet()
        threshold = default_threshold
        if threshold is None:
            threshold = parse_threshold(os.environ.get(ENV_WATCHDOG))
        if threshold is not None:
            self.set_watchdog(threshold)
        if default_metrics or os.environ.get(ENV_METRICS, '').strip().lower() in (
                '1', 'true', 'yes', 'on'):
            self.set_metrics(True)

    def set_watchdog(self, threshold, *, callback=None):
        """Report every callback that holds the loop longer than ``threshold`` (seconds, or
        a string such as ``'100ms'``) while it does, with the loop thread's stack; None
        turns the watchdog off. Reports go to the ``ferroloop.watchdog`` logger at WARNING,
        or to ``callback(report)`` (a ``BlockReport``), called from the watchdog's thread."""
        seconds = parse_threshold(threshold)
        if callback is not None and not callable(callback):
            raise TypeError('callback must be callable or None')
        if seconds is None:
            self._watchdog_stop()
            _watched_loops.discard(self)
            return
        if self.is_closed():
            raise RuntimeError('Event loop is closed')
        reporter = _BlockReporter(callback)
        self._watchdog_start(seconds, reporter)
        self._block_reporter = reporter
        _watched_loops.add(self)

    def get_watchdog(self):
        """The watchdog's threshold in seconds, or None when it is off."""
        return self._watchdog_threshold

    def set_metrics(self, enabled):
        """Gather the timing metrics (time in the poller, timer lateness) from now on, or
        stop; the counts of ``metrics()`` are always kept."""
        self._set_metrics_timing(bool(enabled))

    def metrics(self):
        """A ``LoopMetrics`` snapshot of this loop."""
        core = self._metrics_core()
        timing = 'wall_seconds' in core
        wall = core.get('wall_seconds', 0.0)
        reporter = self._block_reporter
        blocks = ()
        if reporter is not None:
            places = sorted(reporter.places.items(), key=lambda kv: kv[1].worst, reverse=True)
            blocks = tuple({'place': key, 'count': p.count, 'total': p.total,
                            'worst': p.worst, 'worst_stack': p.worst_stack}
                           for key, p in places if p.count)
        return LoopMetrics(
            **core, timing=timing, servers=len(self._servers_alive()),
            busy_ratio=core.get('busy_seconds', 0.0) / wall if wall > 0 else 0.0,
            watchdog_threshold=self.get_watchdog(), blocks=blocks)

    def _servers_alive(self):
        return [server for server in self._servers if server._sockets is not None]

