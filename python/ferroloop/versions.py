"""What each CPython version changed in the asyncio behaviour ferroloop follows: one fact a line.

ferroloop behaves as the asyncio of the interpreter it runs on, so every difference between
versions is decided here, once, and the code (the Rust core too, through
``src/core/versions.rs`` and ``src/transports/versions.rs``) asks for the fact by name, never
``sys.version_info``. A fact with no remaining version below it can go, with the code it
selects. A fact backported to
a bug-fix release names the first release of each line that has it: ``_since((3, 13, 15),
(3, 14, 7))`` is true on 3.13.15 and later 3.13 releases, on 3.14.7 and later 3.14 releases,
and on every version after 3.14 (a fix made on the main line reaches every later version);
false on 3.13.0-3.13.14, 3.14.0-3.14.6 and on 3.12 and older.
"""

import sys
from asyncio import coroutines, events, unix_events


def _since(*firsts, version=sys.version_info):
    """True on ``version`` if it is at least the release of its own line named in ``firsts``,
    or newer than every line named there."""
    line = tuple(version[:2])
    for first in firsts:
        if tuple(first[:2]) == line:
            return tuple(version[:3]) >= (tuple(first) + (0,))[:3]
    return line > max(tuple(first[:2]) for first in firsts)


_RUNNING = sys.version_info[:2]

# ---------------------------------------------------------------------------------------------
# The loop's runtime: scheduling, handles, tasks, the executor, the exception handler,
# subprocesses, policies.
# ---------------------------------------------------------------------------------------------

# 3.12: shutdown_default_executor(timeout=None), which asyncio.run() and Runner.close() pass;
# 3.11's takes no argument.
SHUTDOWN_EXECUTOR_TAKES_TIMEOUT = _since((3, 12))

# 3.12 (gh-96704): a custom exception handler runs in the context of the failing task, future
# or handle.
EXCEPTION_HANDLER_IN_CONTEXT = _since((3, 12))

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
CALLBACK_ARGS_ONLY_IN_DEBUG = _since((3, 13))

# 3.14: while a call_soon_threadsafe() callback runs, its handle's cancel() and cancelled()
# called from another thread wait for the end of the run (asyncio's _ThreadSafeHandle).
THREADSAFE_HANDLE_WAITS_FOR_ITS_RUN = _since((3, 14))

# 3.14: event loop policies are deprecated (removal due in 3.16): set_event_loop_policy() and
# the policy classes warn.
POLICIES_DEPRECATED = _since((3, 14))
# ... and asyncio itself reaches them through private names that do not warn.
DefaultEventLoopPolicy = (unix_events._DefaultEventLoopPolicy if POLICIES_DEPRECATED
                          else unix_events.DefaultEventLoopPolicy)
set_event_loop_policy = (events._set_event_loop_policy if POLICIES_DEPRECATED
                         else events.set_event_loop_policy)
get_event_loop_policy = (events._get_event_loop_policy if POLICIES_DEPRECATED
                         else events.get_event_loop_policy)

# 3.14: asyncio.iscoroutinefunction() warns (deprecated); asyncio's own checks use the private
# function behind it, which every version has under one of these names.
iscoroutinefunction = (coroutines._iscoroutinefunction if _since((3, 14))
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
ASYNCIO_PIDFDS_OUTLIVE_THE_LOOP = _since((3, 12))

# Every version: subprocess.Popen waits for its child's exec with os.read() on the loop's
# thread (ferroloop spawns natively, as uvloop does).
ASYNCIO_SPAWN_READS_ON_THE_LOOP_THREAD = True

# Before 3.12: the threaded child watcher keeps a closed loop's subprocess transports, and their
# running children, until each child exits on its own (from 3.12 they go with the loop: each
# warns "unclosed transport" and kills its child, as ferroloop's do on every version).
ASYNCIO_CLOSED_LOOP_KEEPS_ITS_CHILDREN = _RUNNING < (3, 12)

# Every version: a child starts with the signal mask of the thread that spawned it (ferroloop's
# and libuv's start with none blocked).
ASYNCIO_CHILDREN_INHERIT_THE_SIGNAL_MASK = True

# Every version: get_extra_info('subprocess') is the Popen, whose wait() reaps the child
# behind the child watcher's back (which then reports return code 255).
ASYNCIO_POPEN_WAIT_REAPS_THE_CHILD = True

# Every version: subprocess protocol callbacks run in the context of whatever scheduled them
# (the pipes', the child watcher's, a close() caller's), not of the subprocess_exec() call.
ASYNCIO_SUBPROCESS_CALLBACKS_IN_OTHER_CONTEXTS = True

# Before 3.13: wait() returns only once the child's pipes are closed too, which a grandchild
# holding them delays (gh-119710, fixed in 2026 in the bug-fix releases of 3.13 on).
ASYNCIO_WAIT_WAITS_FOR_THE_PIPES = _RUNNING < (3, 13)

# 3.13 on: a NaN deadline reaches the selector as a NaN timeout, and run_forever() fails with
# ValueError (before, the timer ran at once).
ASYNCIO_NAN_DEADLINE_BREAKS_THE_LOOP = _since((3, 13))

# Every version: a protocol callback that a call on the transport sets off runs in the caller's
# context, not the transport's: pause_writing() in write()'s, a pipe's connection_lost() in
# close()'s, what the TLS transport's close() still reads in close()'s; and a pipe's protocol
# factory runs in the caller's own context. ferroloop (like uvloop) runs every protocol
# callback, and the pipe's factory, in the transport's context.
ASYNCIO_CALLBACKS_IN_CALLERS_CONTEXT = True

# 3.15 on: the protocol start_tls() hands over runs in the plaintext connection's context (its
# SSL layer became the connection's protocol), as on uvloop, not in the context start_tls()
# was called in, where ferroloop runs it on every version.
ASYNCIO_START_TLS_KEEPS_THE_CONNECTIONS_CONTEXT = _since((3, 15))

# Every version: a datagram endpoint on a socketpair() end takes the unnamed peer ('') for no
# peer, and sendto(data) fails (TypeError, to the exception handler).
ASYNCIO_DATAGRAM_SOCKETPAIR_SENDTO_FAILS = True

# 3.11 on: TransportSocket's repr shows the family and type as numbers (str() of an IntEnum).
ASYNCIO_TRANSPORT_SOCKET_REPR_NUMBERS = _since((3, 11))

# Every version: application data the TLS peer sent after our close_notify fails the shutdown
# (SSLError 'application data after close notify', given to connection_lost).
ASYNCIO_TLS_DATA_AFTER_CLOSE_NOTIFY_FAILS = True

# Every version: a sock_* operation waiting on a socket that is then closed waits forever
# (closing the fd takes it out of the selector without an event; uvloop 0.23 hangs too).
ASYNCIO_SOCK_OPERATION_OUTLIVES_ITS_CLOSED_SOCKET = True

# Every version: a socket closed while registered, its file kept open by a duplicate, stays in
# epoll's set once its number is gone (unregister fails with EBADF and is ignored): when that
# file becomes readable, every poll returns at once for it and the loop spins.
ASYNCIO_SPINS_ON_A_CLOSED_SOCKETS_FILE = True

# ---------------------------------------------------------------------------------------------
# Servers and transports.
# ---------------------------------------------------------------------------------------------

# Servers (asyncio.base_events.Server, create_server, create_unix_server).
SERVER_WAIT_CLOSED_WAITS_FOR_CONNECTIONS = _since((3, 12))  # also once closed, till they are gone
SERVER_CLIENTS_API = _since((3, 13))  # Server.close_clients(), Server.abort_clients()
SERVE_FOREVER_CANCEL_CLOSES_CLIENTS = _since((3, 13, 15), (3, 14, 7))  # gh-123720
SERVER_KEEPS_CREATION_CONTEXT = _since((3, 15))  # connections start from its creation context
UNIX_SERVER_CLEANUP_SOCKET = _since((3, 13))  # cleanup_socket=, the socket file unlinked on close
CREATE_SERVER_KEEP_ALIVE = _since((3, 13))  # create_server(keep_alive=)
CREATE_SERVER_SKIPS_UNAVAILABLE_ADDRESS = _since((3, 13))  # EADDRNOTAVAIL: that address skipped
REUSE_PORT_ONLY_FOR_IP = _since((3, 13, 2), (3, 14))  # gh-128916: not set on other families
BIND_ERROR_SHOWS_ERRNO = _since((3, 13))  # '... on address X: [errno 98] address already in use'

# Stream transports.
SOCKET_WRITE_QUEUES_ANY_VIEW = _since((3, 12))  # a strided memoryview fails when sent, not written
SOCKET_WRITE_ERROR_NAMES_TYPES = _since((3, 13))  # 'must be a bytes, bytearray, or memoryview ...'
CONNECTION_MADE_IN_CONNECTION_CONTEXT = _since((3, 15))  # not in a copy: its set() seen later

# Connections (create_connection, start_tls).
CREATE_CONNECTION_ALL_ERRORS = _since((3, 12))  # create_connection(all_errors=)
START_TLS_TAKES_STREAM_BUFFER = _since((3, 13, 13), (3, 14, 4))  # gh-142352

# Datagrams (create_datagram_endpoint and its transport).
DATAGRAM_TRANSPORT_SUBCLASSES_IT = _since((3, 12))  # asyncio's is an asyncio.DatagramTransport
DATAGRAM_SOCK_ANY_BUT_STREAM = _since((3, 13))  # sock= of any type but SOCK_STREAM
DATAGRAM_SENDS_EMPTY = _since((3, 13))  # sendto(b'') sends an empty datagram
DATAGRAM_BUFFER_COUNTS_HEADERS = _since((3, 13, 6), (3, 14, 1))  # gh-135444: +8 per datagram

# sendfile.
# gh-150107: the fallback seeks to offset 0 too; the position is set even if nothing was sent.
SENDFILE_ALWAYS_SEEKS = _since((3, 13, 14), (3, 14, 6))
# Every version: a zero-copy sendfile cancelled while it waits leaves the file position where
# it was, not after the last byte sent.
ASYNCIO_SENDFILE_CANCEL_LEAVES_THE_POSITION = True
# With gh-150107: a file that cannot seek (a pipe) fails the zero-copy attempt with the seek's
# ESPIPE instead of SendfileNotAvailableError, so the fallback is not tried.
ASYNCIO_SENDFILE_SEEK_ERROR_HIDES_NOT_AVAILABLE = SENDFILE_ALWAYS_SEEKS

# Reference cycles through a connection's errors that asyncio fixed. ferroloop's own code has
# none on any version (its happy-eyeballs race is its own), but it runs asyncio's TLS protocol,
# which keeps its cycle until the releases below.
ASYNCIO_HAPPY_EYEBALLS_ERRORS_IN_A_CYCLE = not _since((3, 13, 1))  # gh-124858: staggered_race
START_TLS_FAILURE_WITHOUT_CYCLE = _since((3, 14, 9), (3, 15, 1))  # gh-159049

