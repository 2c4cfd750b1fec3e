"""Process-wide state a test can leave behind, put back after every test.

regrtest only reports such a change ("environment changed") and goes on in the changed state;
here one leaking test would turn into dozens of failures of the tests after it, each blamed on
the loop. What had to be put back is still reported, with the test that changed it.
"""

import asyncio
import asyncio.events
import signal
import sys

from compat.routing import default_policy_class

WATCHED_SIGNALS = [getattr(signal, name) for name in (
    'SIGINT', 'SIGCHLD', 'SIGTERM', 'SIGHUP', 'SIGALRM', 'SIGUSR1', 'SIGUSR2')]

POLICY_MADE_WATCHERS = ('ThreadedChildWatcher', 'PidfdChildWatcher')


class GlobalState:
    """Taken before a test; restore() after it puts things back and names what it put back."""

    def __init__(self):
        self.asyncgen_hooks = sys.get_asyncgen_hooks()
        self.origin_tracking_depth = sys.get_coroutine_origin_tracking_depth()
        self.handlers = {sig: signal.getsignal(sig) for sig in WATCHED_SIGNALS}

    def restore(self):
        changed = self._drop_policy()
        # Straight to the C registry: the public names are the guard's wrappers.
        events = asyncio.events
        get_running = getattr(events, '_c__get_running_loop', events._get_running_loop)
        if get_running() is not None:
            getattr(events, '_c__set_running_loop', events._set_running_loop)(None)
            changed.append('running loop')
        if sys.get_asyncgen_hooks() != self.asyncgen_hooks:
            sys.set_asyncgen_hooks(*self.asyncgen_hooks)
            changed.append('asyncgen hooks')
        if sys.get_coroutine_origin_tracking_depth() != self.origin_tracking_depth:
            sys.set_coroutine_origin_tracking_depth(self.origin_tracking_depth)
            changed.append('coroutine origin tracking')
        if signal.set_wakeup_fd(-1) != -1:
            changed.append('signal wakeup fd')
        for sig, handler in self.handlers.items():
            if signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
                changed.append(f'handler of {signal.Signals(sig).name}')
        return changed

    @staticmethod
    def _drop_policy():
        # Every test starts with a fresh default policy: no loop set, no child watcher.
        policy = asyncio.events._event_loop_policy
        asyncio.events._event_loop_policy = None
        if policy is None:
            return []
        changed = []
        if not isinstance(policy, default_policy_class()):
            changed.append(f'policy {type(policy).__name__}')
        if getattr(getattr(policy, '_local', None), '_loop', None) is not None:
            changed.append('current loop of the policy')
        # The policy makes a threaded or pidfd watcher by itself (test_utils' close_loop asks
        # for one); any other was installed by the test. Both are gone with 3.14.
        watcher = getattr(policy, '_watcher', None)
        if watcher is not None and type(watcher).__name__ not in POLICY_MADE_WATCHERS:
            changed.append('child watcher')
        return changed
