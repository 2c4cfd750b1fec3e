//! What the loop does about files closed under it, which the kernel does not tell it about.
//!
//! A socket closed while one of the loop's own operations waits on it (`sock_recv`,
//! `sock_accept`, `sock_connect`, ...): closing the fd takes it out of epoll without an
//! event, so nothing would ever end the operation — asyncio's and uvloop's wait forever
//! there. The loop looks instead. A close can only come from Python code, so after an
//! iteration that ran some, the loop checks that each object with an operation pending still
//! has its number, and evicts those that do not: the operation runs once more and fails
//! with the closed socket's EBADF (see `LoopCore::evict_stale`).
//!
//! Looking costs a `fileno()` call per pending operation, so it is done at most every
//! [`MIN_INTERVAL`], and less often when there are so many operations that a sweep takes
//! more than 1% of that time. An idle loop does not wake up for it: only code that ran since
//! the last sweep can have closed anything.
//!
//! A number closed while a duplicate keeps its file open (a forked child's, `sock.dup()`):
//! epoll keeps the registration, keyed by number and file, and no call can name it any more
//! (the number names nothing, or another file). Its events are recognised by their token and
//! ignored, but level-triggered they would wake every poll: the loop then makes its epoll set
//! afresh from what it watches.

use std::time::Duration;

use pyo3::prelude::*;

use super::event_loop::{monotonic, LoopCore, Reactor};
use super::io::holds_fd;
use super::io_table::WAKER_TOKEN;
use crate::errors::os_error;
use crate::reactor::{Interest, Poller};

/// How soon after a close the waiting operation ends, at most (with few operations pending).
const MIN_INTERVAL: f64 = 0.01;
/// A sweep may take this fraction of the time between sweeps.
const MAX_SHARE: f64 = 0.01;

#[derive(Clone, Copy, Default)]
pub struct Sweep {
    /// When the next sweep may run (the loop's clock).
    due: f64,
    /// Whether Python code ran since the last sweep.
    owed: bool,
}

impl LoopCore {
    /// Python code ran (callbacks, or the program before `run_forever`): it may have closed a
    /// socket the loop waits on.
    #[inline]
    pub(crate) fn owe_sweep(&self, py: Python<'_>) {
        let sweep = self.sweep.get(py);
        if !sweep.owed {
            self.sweep.set(
                py,
                Sweep {
                    owed: true,
                    ..sweep
                },
            );
        }
    }

    /// Before an iteration's poll: ends the operations whose socket was closed, if a sweep is
    /// owed and due. Returns how long the poll may wait before a sweep owed but not yet due.
    #[inline]
    pub(crate) fn sweep_closed_sockets(&self, py: Python<'_>) -> PyResult<Option<Duration>> {
        let sweep = self.sweep.get(py);
        if !sweep.owed || !self.state.borrow(py).io.has_swept() {
            return Ok(None);
        }
        self.sweep_if_due(py, sweep)
    }

    #[cold]
    fn sweep_if_due(&self, py: Python<'_>, sweep: Sweep) -> PyResult<Option<Duration>> {
        let now = monotonic();
        if now < sweep.due {
            return Ok(Some(Duration::from_secs_f64(sweep.due - now)));
        }
        let pending = self.state.borrow(py).io.swept_origins(py);
        for (fd, origin) in pending {
            if !holds_fd(origin.bind(py), fd) {
                self.evict_stale(py, fd, None)?;
            }
        }
        let took = monotonic() - now;
        self.sweep.set(
            py,
            Sweep {
                due: now + MIN_INTERVAL.max(took / MAX_SHARE),
                owed: false,
            },
        );
        Ok(None)
    }

    /// After a poll that reported a file epoll cannot be told to forget: a fresh epoll set of
    /// what the loop watches replaces the old one under the same number. An fd whose object
    /// no longer has that number is left out (its number may name another file by now).
    pub(crate) fn forget_ghosts(&self, py: Python<'_>, reactor: &Reactor) -> PyResult<()> {
        let watched = self.state.borrow(py).io.registered_origins(py);
        let mut closed: Vec<_> = watched
            .into_iter()
            .filter(|(fd, origins)| origins.iter().any(|o| !holds_fd(o.bind(py), *fd)))
            .map(|(fd, _)| fd)
            .collect();
        let fresh = Poller::new().map_err(os_error)?;
        fresh
            .add(reactor.waker.as_raw_fd(), Interest::READABLE, WAKER_TOKEN)
            .map_err(os_error)?;
        closed.sort_unstable();
        self.state.borrow_mut(py).io.register_all(&fresh, &closed);
        reactor.poller.replace_with(fresh).map_err(os_error)
    }
}
