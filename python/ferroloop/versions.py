"""What each CPython version asks of the loop, one fact a line.

asyncio's own loop is the target on every version, and asyncio changes between versions. Every
difference ferroloop knows of is stated here and nowhere else: other modules (and the Rust core,
through ``src/core/versions.rs``) test these facts, never ``sys.version_info``. Each fact names
the version that brought the change; a fact with no remaining version below it can go, with
the code it selects.
"""

import sys
from asyncio import coroutines, events, unix_events

_RUNNING = sys.version_info[:2]

# ---------------------------------------------------------------------------------------------
# The loop's runtime: scheduling, handles, tasks, the executor, the exception handler,
# subprocesses, policies.
# ---------------------------------------------------------------------------------------------

# 3.12: shutdown_default_executor(timeout=None), which asyncio.run() and Runner.close() pass;
# 3.11's takes no argument.
SHUTDOWN_EXECUTOR_TAKES_TIMEOUT = _RUNNING >= (3, 12)

# 3.12 (gh-96704): a custom exception handler runs in the context of the failing task, future
# or handle.
EXCEPTION_HANDLER_IN_CONTEXT = _RUNNING >= (3, 12)

# How create_task() hands its keywords on to Task or to the task factory:
#   'name-context' (3.11, 3.12): only name= and context=; the factory gets context= alone, and
#                  only when given; the task is named afterwards, if a name was given.
#   'set-name'     (3.13): any keyword; the factory gets all but name= (context= when not
#                  None), then task.set_name(name) is called, even with None.
#   'kwargs'       (3.14): any keyword, passed on unchanged to Task or to the factory.
CREATE_TASK_KEYWORDS = ('name-context' if _RUNNING < (3, 13)
                        else 'set-name' if _RUNNING < (3, 14) else 'kwargs')

# 3.13: a handle's repr and "Exception in callback" messages show the callback's arguments
# only in debug mode (they may hold secrets): _format_callback_source takes debug=.
CALLBACK_ARGS_ONLY_IN_DEBUG = _RUNNING >= (3, 13)

# 3.14: while a call_soon_threadsafe() callback runs, its handle's cancel() and cancelled()
# called from another thread wait for the end of the run (asyncio's _ThreadSafeHandle).
THREADSAFE_HANDLE_WAITS_FOR_ITS_RUN = _RUNNING >= (3, 14)

# 3.14: event loop policies are deprecated (removal due in 3.16): set_event_loop_policy() and
# the policy classes warn.
POLICIES_DEPRECATED = _RUNNING >= (3, 14)
# ... and asyncio itself reaches them through private names that do not warn.
DefaultEventLoopPolicy = (unix_events._DefaultEventLoopPolicy if POLICIES_DEPRECATED
                          else unix_events.DefaultEventLoopPolicy)
set_event_loop_policy = (events._set_event_loop_policy if POLICIES_DEPRECATED
                         else events.set_event_loop_policy)
get_event_loop_policy = (events._get_event_loop_policy if POLICIES_DEPRECATED
                         else events.get_event_loop_policy)

# 3.14: asyncio.iscoroutinefunction() warns (deprecated); asyncio's own checks use the private
# function behind it, which every version has under one of these names.
iscoroutinefunction = (coroutines._iscoroutinefunction if _RUNNING >= (3, 14)
                       else coroutines.iscoroutinefunction)

# ---------------------------------------------------------------------------------------------
# asyncio's own loop where it departs from what ferroloop does on every version, for the tests
# that run on both loops (tests/conftest.py's expect_asyncio_bug): ferroloop never reads these.
# ---------------------------------------------------------------------------------------------

# Before 3.13: kill() goes through Popen.send_signal, whose poll() may reap an exited child
# behind the child watcher's back (which then reports return code 255).
ASYNCIO_KILL_MAY_REAP_THE_CHILD = _RUNNING < (3, 13)

# 3.13 (fixed in 3.14, gh-127049): kill() signals the pid the child watcher has reaped, until
# the exit is published an iteration later.
ASYNCIO_KILL_SIGNALS_A_REAPED_PID = _RUNNING == (3, 13)

# 3.12 on: the pidfd child watcher's fds stay open in a loop closed before its children exit.
ASYNCIO_PIDFDS_OUTLIVE_THE_LOOP = _RUNNING >= (3, 12)

# 3.13 on: a NaN deadline reaches the selector as a NaN timeout, and run_forever() fails with
# ValueError (before, the timer ran at once).
ASYNCIO_NAN_DEADLINE_BREAKS_THE_LOOP = _RUNNING >= (3, 13)
