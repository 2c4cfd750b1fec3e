//! Which callback waits on which fd, and keeping epoll's interest set in step with it.
//!
//! Each fd has at most one reader and one writer. A watcher is either a user `Handle`
//! (`add_reader`/`add_writer`: appended to the ready queue, as asyncio does) or a native
//! watcher (sock_* operations, transports): a Rust function called with its target object,
//! with no Python handle allocated per event.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

use pyo3::prelude::*;

use super::event_loop::LoopCore;
use super::handle::Handle;
use crate::reactor::{Event, Interest, Poller};

/// What a native watcher runs when its fd is ready: `on_ready(loop, target)`.
pub type NativeFn = for<'py> fn(&Bound<'py, LoopCore>, &Bound<'py, PyAny>) -> PyResult<()>;

pub struct NativeWatcher {
    pub target: Py<PyAny>,
    pub on_ready: NativeFn,
}

impl NativeWatcher {
    pub fn clone_ref(&self, py: Python<'_>) -> NativeWatcher {
        NativeWatcher {
            target: self.target.clone_ref(py),
            on_ready: self.on_ready,
        }
    }
}

pub enum Watcher {
    Handle(Py<Handle>),
    Native(NativeWatcher),
}

/// An entry of the ready queue.
pub enum Ready {
    Handle(Py<Handle>),
    Native(NativeWatcher),
}

impl Ready {
    pub fn handle(&self) -> Option<&Py<Handle>> {
        match self {
            Ready::Handle(h) => Some(h),
            Ready::Native(_) => None,
        }
    }
}

impl Watcher {
    fn to_ready(&self, py: Python<'_>) -> Option<Ready> {
        match self {
            Watcher::Handle(h) if h.get().is_cancelled(py) => None,
            Watcher::Handle(h) => Some(Ready::Handle(h.clone_ref(py))),
            Watcher::Native(n) => Some(Ready::Native(n.clone_ref(py))),
        }
    }

    pub fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        match self {
            Watcher::Handle(h) => super::event_loop::visit_owned_handle(h, visit),
            Watcher::Native(n) => visit.call(&n.target),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

#[derive(Default)]
struct FdEntry {
    reader: Option<Watcher>,
    writer: Option<Watcher>,
    /// What epoll currently watches this fd for.
    registered: Interest,
    /// The transport that owns the fd; `add_reader` on it is refused, as in asyncio.
    owner: Option<Py<PyAny>>,
}

impl FdEntry {
    fn desired(&self) -> Interest {
        Interest {
            readable: self.reader.is_some(),
            writable: self.writer.is_some(),
        }
    }

    fn slot(&mut self, direction: Direction) -> &mut Option<Watcher> {
        match direction {
            Direction::Read => &mut self.reader,
            Direction::Write => &mut self.writer,
        }
    }

    fn is_unused(&self) -> bool {
        self.reader.is_none()
            && self.writer.is_none()
            && self.owner.is_none()
            && self.registered.is_empty()
    }
}

/// Watchers indexed by fd (fds are small dense integers, so a Vec beats a map).
#[derive(Default)]
pub struct IoTable {
    slots: Vec<Option<FdEntry>>,
    /// How many fds epoll watches for us (the loop skips a non-blocking poll when none).
    registered_fds: usize,
}

/// Brings epoll's interest for `fd` in line with what the entry wants, keeping the count of
/// registered fds.
fn sync_interest(
    poller: &Poller,
    fd: RawFd,
    entry: &mut FdEntry,
    registered_fds: &mut usize,
) -> io::Result<()> {
    let was_registered = !entry.registered.is_empty();
    update_interest(poller, fd, entry)?;
    match (was_registered, !entry.registered.is_empty()) {
        (false, true) => *registered_fds += 1,
        (true, false) => *registered_fds -= 1,
        _ => {}
    }
    Ok(())
}

fn update_interest(poller: &Poller, fd: RawFd, entry: &mut FdEntry) -> io::Result<()> {
    let want = entry.desired();
    if want == entry.registered {
        return Ok(());
    }
    if entry.registered.is_empty() {
        match poller.add(fd, want) {
            // Still registered from before we lost track of it (closed and reopened under the
            // same number while registered): take it over.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => poller.modify(fd, want)?,
            other => other?,
        }
    } else if want.is_empty() {
        // EBADF/ENOENT: the fd was closed (epoll forgot it then); nothing left to undo.
        let _ = poller.delete(fd);
    } else {
        match poller.modify(fd, want) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => poller.add(fd, want)?,
            other => other?,
        }
    }
    entry.registered = want;
    Ok(())
}

impl IoTable {
    fn entry(&self, fd: RawFd) -> Option<&FdEntry> {
        self.slots.get(fd as usize).and_then(|e| e.as_ref())
    }

    fn entry_mut(&mut self, fd: RawFd) -> &mut FdEntry {
        let index = fd as usize;
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index].get_or_insert_with(FdEntry::default)
    }

    fn forget_if_unused(&mut self, fd: RawFd) {
        if let Some(slot) = self.slots.get_mut(fd as usize) {
            if slot.as_ref().is_some_and(FdEntry::is_unused) {
                *slot = None;
            }
        }
    }

    /// False when epoll watches nothing for us: a non-blocking poll could only return empty.
    pub fn has_registered_fds(&self) -> bool {
        self.registered_fds > 0
    }

    pub fn owner(&self, fd: RawFd) -> Option<&Py<PyAny>> {
        self.entry(fd).and_then(|e| e.owner.as_ref())
    }

    /// Records (or clears) the transport that owns `fd`; returns the previous owner.
    pub fn set_owner(&mut self, fd: RawFd, owner: Option<Py<PyAny>>) -> Option<Py<PyAny>> {
        let previous = std::mem::replace(&mut self.entry_mut(fd).owner, owner);
        self.forget_if_unused(fd);
        previous
    }

    /// Installs a watcher, returning the one it replaces (for the caller to drop once its
    /// borrow of the loop state has ended). On failure the table is left as it was and the
    /// new watcher is handed back.
    pub fn set_watcher(
        &mut self,
        poller: &Poller,
        fd: RawFd,
        direction: Direction,
        watcher: Watcher,
    ) -> Result<Option<Watcher>, (io::Error, Watcher)> {
        let index = fd as usize;
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        let entry = self.slots[index].get_or_insert_with(FdEntry::default);
        let previous = entry.slot(direction).replace(watcher);
        if let Err(err) = sync_interest(poller, fd, entry, &mut self.registered_fds) {
            let failed = std::mem::replace(entry.slot(direction), previous);
            self.forget_if_unused(fd);
            return Err((err, failed.expect("the watcher just installed")));
        }
        Ok(previous)
    }

    /// Removes the watcher of one direction; returns it (None if there was none).
    pub fn remove_watcher(
        &mut self,
        poller: &Poller,
        fd: RawFd,
        direction: Direction,
    ) -> Option<Watcher> {
        let index = fd as usize;
        let entry = self.slots.get_mut(index)?.as_mut()?;
        let removed = entry.slot(direction).take();
        if removed.is_some() {
            // Removal cannot fail in a way the caller could act on (see update_interest).
            let _ = sync_interest(poller, fd, entry, &mut self.registered_fds);
            self.forget_if_unused(fd);
        }
        removed
    }

    /// Removes the watcher of one direction only if it is the native watcher of `target`
    /// (another operation may have replaced it since).
    pub fn remove_native_watcher_of(
        &mut self,
        poller: &Poller,
        fd: RawFd,
        direction: Direction,
        target: &Bound<'_, PyAny>,
    ) -> Option<Watcher> {
        let entry = self.slots.get_mut(fd as usize)?.as_mut()?;
        match entry.slot(direction) {
            Some(Watcher::Native(n)) if n.target.as_ptr() == target.as_ptr() => {}
            _ => return None,
        }
        self.remove_watcher(poller, fd, direction)
    }

    /// Queues the watchers an event concerns. An event nobody waits for means epoll still
    /// watches an fd we no longer care about: stop watching it.
    /// User handles go to the ready queue (after what is already there, as in asyncio);
    /// native watchers go to `io_ready`, which the loop runs right after the poll.
    pub fn dispatch(
        &mut self,
        py: Python<'_>,
        poller: &Poller,
        event: Event,
        ready: &mut VecDeque<Ready>,
        io_ready: &mut Vec<NativeWatcher>,
    ) {
        let index = event.fd as usize;
        let Some(entry) = self.slots.get_mut(index).and_then(|e| e.as_mut()) else {
            let _ = poller.delete(event.fd);
            return;
        };
        let mut stale = false;
        for (wanted, watcher) in [
            (event.readable && entry.registered.readable, &entry.reader),
            (event.writable && entry.registered.writable, &entry.writer),
        ] {
            if !wanted {
                continue;
            }
            match watcher {
                Some(Watcher::Native(n)) => io_ready.push(n.clone_ref(py)),
                Some(w) => ready.extend(w.to_ready(py)),
                None => stale = true,
            }
        }
        if stale {
            let _ = sync_interest(poller, event.fd, entry, &mut self.registered_fds);
        }
    }

    /// Empties the table (loop close), returning everything it held.
    pub fn drain(&mut self, poller: &Poller) -> (Vec<Watcher>, Vec<Py<PyAny>>) {
        let mut watchers = Vec::new();
        let mut owners = Vec::new();
        for (fd, slot) in self.slots.iter_mut().enumerate() {
            if let Some(mut entry) = slot.take() {
                if !entry.registered.is_empty() {
                    let _ = poller.delete(fd as RawFd);
                }
                watchers.extend(entry.reader.take());
                watchers.extend(entry.writer.take());
                owners.extend(entry.owner.take());
            }
        }
        self.slots = Vec::new();
        self.registered_fds = 0;
        (watchers, owners)
    }

    pub fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        for entry in self.slots.iter().flatten() {
            if let Some(w) = &entry.reader {
                w.traverse(visit)?;
            }
            if let Some(w) = &entry.writer {
                w.traverse(visit)?;
            }
            if let Some(owner) = &entry.owner {
                visit.call(owner)?;
            }
        }
        Ok(())
    }
}
