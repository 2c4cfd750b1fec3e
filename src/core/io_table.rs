//! Which callback waits on which fd, and keeping epoll's interest set in step with it.
//!
//! Each fd has at most one reader and one writer. A watcher is either a user `Handle`
//! (`add_reader`/`add_writer`: appended to the ready queue, as asyncio does) or a native
//! watcher (sock_* operations, transports): a Rust function called with its target object,
//! with no Python handle allocated per event.
//!
//! An fd number is not an identity: the kernel hands a closed number to the next socket or
//! pipe at once. So every registration remembers the object it was made through (its
//! *origin*: the socket or file object; none for a bare int, whose number is all asyncio knows
//! too), and epoll reports each fd with a token that carries a *generation* besides the number.
//! When a registration arrives for a number whose earlier registrations came through objects
//! that no longer have that number (closed, detached), those are evicted first (see
//! `LoopCore::evict_stale`) and the generation changes, so nothing registered for the old
//! file is ever run for the new one, and an event epoll still reports for the old file (kept
//! open elsewhere, by a dup or a child process) is recognised and ignored.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::RawFd;

use pyo3::prelude::*;

use super::event_loop::LoopCore;
use super::handle::Handle;
use crate::reactor::{Event, Interest, Poller};
use crate::sys;

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

    /// The object this watcher stands for: its handle, or its native target.
    fn object(&self) -> &Py<PyAny> {
        match self {
            Watcher::Handle(h) => h.as_any(),
            Watcher::Native(n) => &n.target,
        }
    }

    pub fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        match self {
            Watcher::Handle(h) => super::event_loop::visit_owned_handle(h, visit),
            Watcher::Native(n) => visit.call(&n.target),
        }
    }
}

/// A watcher and the object it was registered through.
pub struct Registration {
    pub watcher: Watcher,
    /// The socket or file object whose fd this is; None for a bare number or an fd the loop
    /// owns itself (a transport's).
    pub origin: Option<Py<PyAny>>,
    /// What becomes of the watcher when its origin is found closed: run once more (the loop's
    /// own operations, which then fail with the socket's EBADF, as asyncio's would), or be
    /// dropped (a user's `add_reader` callback, never called for another file).
    pub run_when_stale: bool,
}

impl Registration {
    /// The loop's own operation on an object's fd: it must end once that object is closed,
    /// which the loop finds out only by looking (see `closed_sockets.rs`).
    fn is_swept(&self) -> bool {
        self.run_when_stale && self.origin.is_some()
    }
}

/// 1 if the slot holds a swept registration.
fn swept_in(slot: &Option<Registration>) -> usize {
    usize::from(slot.as_ref().is_some_and(Registration::is_swept))
}

/// The transport that owns an fd, and the object (its socket) the number belongs to.
pub struct Owner {
    pub transport: Py<PyAny>,
    pub origin: Option<Py<PyAny>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Read,
    Write,
}

/// epoll's token for the loop's waker, which is not in the table.
pub const WAKER_TOKEN: u64 = u64::MAX;

/// An fd's token: the generation in the high half, the number in the low half (an fd is a
/// non-negative `i32`, so no token equals [`WAKER_TOKEN`]).
fn token(fd: RawFd, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(fd as u32)
}

fn token_parts(token: u64) -> (RawFd, u32) {
    ((token & 0xffff_ffff) as u32 as RawFd, (token >> 32) as u32)
}

struct FdEntry {
    reader: Option<Registration>,
    writer: Option<Registration>,
    /// What epoll currently watches this fd for.
    registered: Interest,
    /// The transport that owns the fd; `add_reader` on it is refused, as in asyncio.
    owner: Option<Owner>,
    generation: u32,
}

impl FdEntry {
    fn new(generation: u32) -> FdEntry {
        FdEntry {
            reader: None,
            writer: None,
            registered: Interest::NONE,
            owner: None,
            generation,
        }
    }

    fn desired(&self) -> Interest {
        Interest {
            readable: self.reader.is_some(),
            writable: self.writer.is_some(),
        }
    }

    fn slot(&mut self, direction: Direction) -> &mut Option<Registration> {
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

    fn origins(&self) -> impl Iterator<Item = &Py<PyAny>> {
        [
            self.reader.as_ref().and_then(|r| r.origin.as_ref()),
            self.writer.as_ref().and_then(|r| r.origin.as_ref()),
            self.owner.as_ref().and_then(|o| o.origin.as_ref()),
        ]
        .into_iter()
        .flatten()
    }
}

/// Fds below this number live in a vector indexed by fd (the common case: small dense
/// numbers); higher ones in a map, so an untrusted number costs no memory.
const DENSE_FDS: usize = 1 << 16;

/// The entries, by fd.
struct Entries {
    dense: Vec<Option<FdEntry>>,
    sparse: HashMap<RawFd, FdEntry>,
    /// Fds below this are in `dense` ([`DENSE_FDS`]; smaller in unit tests).
    dense_limit: usize,
}

impl Default for Entries {
    fn default() -> Entries {
        Entries {
            dense: Vec::new(),
            sparse: HashMap::new(),
            dense_limit: DENSE_FDS,
        }
    }
}

impl Entries {
    fn get(&self, fd: RawFd) -> Option<&FdEntry> {
        let index = usize::try_from(fd).ok()?;
        if index < self.dense_limit {
            self.dense.get(index).and_then(Option::as_ref)
        } else {
            self.sparse.get(&fd)
        }
    }

    fn get_mut(&mut self, fd: RawFd) -> Option<&mut FdEntry> {
        let index = usize::try_from(fd).ok()?;
        if index < self.dense_limit {
            self.dense.get_mut(index).and_then(Option::as_mut)
        } else {
            self.sparse.get_mut(&fd)
        }
    }

    /// The entry of `fd`, made (with the generation `next_generation` hands out) if there is
    /// none. The table grows only for an open fd: a number nothing has open gets EBADF,
    /// whatever its size, at no memory cost.
    fn get_or_insert(&mut self, fd: RawFd, next_generation: &mut u32) -> io::Result<&mut FdEntry> {
        let index = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(sys::EBADF))?;
        let generation = *next_generation;
        if index < self.dense_limit {
            if index >= self.dense.len() {
                sys::is_open(fd)?;
                self.dense.resize_with(index + 1, || None);
            }
            let slot = &mut self.dense[index];
            if slot.is_none() {
                *next_generation = generation.wrapping_add(1);
            }
            Ok(slot.get_or_insert_with(|| FdEntry::new(generation)))
        } else {
            if !self.sparse.contains_key(&fd) {
                sys::is_open(fd)?;
                *next_generation = generation.wrapping_add(1);
            }
            Ok(self
                .sparse
                .entry(fd)
                .or_insert_with(|| FdEntry::new(generation)))
        }
    }

    fn forget_if_unused(&mut self, fd: RawFd) {
        let Ok(index) = usize::try_from(fd) else {
            return;
        };
        if index < self.dense_limit {
            if let Some(slot) = self.dense.get_mut(index) {
                if slot.as_ref().is_some_and(FdEntry::is_unused) {
                    *slot = None;
                }
            }
        } else if self.sparse.get(&fd).is_some_and(FdEntry::is_unused) {
            self.sparse.remove(&fd);
        }
    }

    fn iter(&self) -> impl Iterator<Item = (RawFd, &FdEntry)> {
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter_map(|(fd, e)| e.as_ref().map(|e| (fd as RawFd, e)));
        dense.chain(self.sparse.iter().map(|(fd, e)| (*fd, e)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (RawFd, &mut FdEntry)> {
        let dense = self
            .dense
            .iter_mut()
            .enumerate()
            .filter_map(|(fd, e)| e.as_mut().map(|e| (fd as RawFd, e)));
        dense.chain(self.sparse.iter_mut().map(|(fd, e)| (*fd, e)))
    }
}

/// The registrations of every fd the loop watches or knows a transport for.
#[derive(Default)]
pub struct IoTable {
    entries: Entries,
    /// How many fds epoll watches for us (the loop skips a non-blocking poll when none).
    registered_fds: usize,
    /// The generation the next new entry gets.
    next_generation: u32,
    /// How many registrations are the loop's own operations on an object's fd.
    swept: usize,
    /// epoll reported a file that is no longer the one registered under its number and that
    /// it could not be told to forget: its number was closed while a duplicate (a forked
    /// child's, `sock.dup()`) keeps the file open. Level-triggered, it would wake every poll
    /// until the epoll set is made afresh (see `LoopCore::forget_ghosts`).
    ghost: bool,
}

/// What evicting the stale registrations of an fd took out, for the caller to finish once its
/// borrow of the loop state has ended.
#[derive(Default)]
pub struct Evicted {
    pub registrations: Vec<Registration>,
    pub owner: Option<Owner>,
}

impl IoTable {
    /// False when epoll watches nothing for us: a non-blocking poll could only return empty.
    pub fn has_registered_fds(&self) -> bool {
        self.registered_fds > 0
    }

    /// How many fds epoll watches for this loop.
    pub fn registered_count(&self) -> usize {
        self.registered_fds
    }

    /// Whether any registration is the loop's own operation on an object's fd.
    pub fn has_swept(&self) -> bool {
        self.swept > 0
    }

    /// The fd and object of every registration that is the loop's own operation on an
    /// object's fd, to be checked for an object closed under it.
    pub fn swept_origins(&self, py: Python<'_>) -> Vec<(RawFd, Py<PyAny>)> {
        if self.swept == 0 {
            return Vec::new();
        }
        let mut origins = Vec::new();
        for (fd, entry) in self.entries.iter() {
            for registration in [&entry.reader, &entry.writer].into_iter().flatten() {
                if let (true, Some(origin)) = (registration.is_swept(), &registration.origin) {
                    origins.push((fd, origin.clone_ref(py)));
                }
            }
        }
        origins
    }

    pub fn owner(&self, fd: RawFd) -> Option<&Owner> {
        self.entries.get(fd).and_then(|e| e.owner.as_ref())
    }

    /// Records (or clears) the transport that owns `fd`; returns the previous owner.
    pub fn set_owner(&mut self, fd: RawFd, owner: Option<Owner>) -> Option<Owner> {
        let previous = match owner {
            Some(owner) => match self.entries.get_or_insert(fd, &mut self.next_generation) {
                Ok(entry) => entry.owner.replace(owner),
                // Not an open fd: nothing can be registered on it, so nothing to refuse.
                Err(_) => None,
            },
            None => self.entries.get_mut(fd).and_then(|e| e.owner.take()),
        };
        self.entries.forget_if_unused(fd);
        previous
    }

    /// The origins registered on `fd` other than `origin` itself: the objects whose hold on
    /// the number must be checked before `origin` registers on it.
    pub fn other_origins(
        &self,
        py: Python<'_>,
        fd: RawFd,
        origin: Option<&Bound<'_, PyAny>>,
    ) -> Vec<Py<PyAny>> {
        let Some(entry) = self.entries.get(fd) else {
            return Vec::new();
        };
        let same = |o: &Py<PyAny>| origin.is_some_and(|origin| o.as_ptr() == origin.as_ptr());
        entry
            .origins()
            .filter(|o| !same(o))
            .map(|o| o.clone_ref(py))
            .collect()
    }

    /// Takes out every registration and the owner of `fd` that came through one of `stale`
    /// (objects that no longer have this number). The entry starts a new generation, and
    /// epoll's registration is made afresh for what remains.
    pub fn evict(&mut self, poller: &Poller, fd: RawFd, stale: &[Py<PyAny>]) -> Evicted {
        let generation = self.next_generation;
        let mut evicted = Evicted::default();
        let Some(entry) = self.entries.get_mut(fd) else {
            return evicted;
        };
        let is_stale = |origin: &Option<Py<PyAny>>| {
            origin
                .as_ref()
                .is_some_and(|o| stale.iter().any(|s| s.as_ptr() == o.as_ptr()))
        };
        for direction in [Direction::Read, Direction::Write] {
            let slot = entry.slot(direction);
            if slot.as_ref().is_some_and(|r| is_stale(&r.origin)) {
                evicted.registrations.extend(slot.take());
            }
        }
        if entry.owner.as_ref().is_some_and(|o| is_stale(&o.origin)) {
            evicted.owner = entry.owner.take();
        }
        if evicted.registrations.is_empty() && evicted.owner.is_none() {
            return evicted;
        }
        self.swept -= evicted
            .registrations
            .iter()
            .filter(|r| r.is_swept())
            .count();
        // Whatever epoll holds under this number belongs to the old file, or is ours to make
        // again: drop it, and register what remains under the new generation.
        if !entry.registered.is_empty() {
            let _ = poller.delete(fd);
            entry.registered = Interest::NONE;
            self.registered_fds -= 1;
        }
        entry.generation = generation;
        self.next_generation = generation.wrapping_add(1);
        let entry = self.entries.get_mut(fd).expect("still there");
        // A failure here leaves the remaining watchers unregistered, as a closed fd would.
        let _ = sync_interest(poller, fd, entry, &mut self.registered_fds);
        self.entries.forget_if_unused(fd);
        evicted
    }

    /// Installs a watcher, returning the registration it replaces (for the caller to drop once
    /// its borrow of the loop state has ended). On failure the table is left as it was and the
    /// new watcher is handed back.
    pub fn set_watcher(
        &mut self,
        poller: &Poller,
        fd: RawFd,
        direction: Direction,
        registration: Registration,
    ) -> Result<Option<Registration>, (io::Error, Registration)> {
        let entry = match self.entries.get_or_insert(fd, &mut self.next_generation) {
            Ok(entry) => entry,
            Err(err) => return Err((err, registration)),
        };
        let added = usize::from(registration.is_swept());
        let previous = entry.slot(direction).replace(registration);
        if let Err(err) = sync_interest(poller, fd, entry, &mut self.registered_fds) {
            let failed = std::mem::replace(entry.slot(direction), previous);
            self.entries.forget_if_unused(fd);
            return Err((err, failed.expect("the watcher just installed")));
        }
        self.swept = self.swept + added - swept_in(&previous);
        Ok(previous)
    }

    /// Removes the watcher of one direction; returns it (None if there was none).
    pub fn remove_watcher(
        &mut self,
        poller: &Poller,
        fd: RawFd,
        direction: Direction,
    ) -> Option<Registration> {
        let entry = self.entries.get_mut(fd)?;
        let removed = entry.slot(direction).take();
        self.swept -= swept_in(&removed);
        if removed.is_some() {
            // Removal cannot fail in a way the caller could act on (see update_interest).
            let _ = sync_interest(poller, fd, entry, &mut self.registered_fds);
            self.entries.forget_if_unused(fd);
        }
        removed
    }

    /// Removes the watcher of one direction only if it is `object`'s (its handle, or the
    /// target of a native watcher): another registration may have replaced it since.
    pub fn remove_watcher_of(
        &mut self,
        poller: &Poller,
        fd: RawFd,
        direction: Direction,
        object: &Bound<'_, PyAny>,
    ) -> Option<Registration> {
        let entry = self.entries.get_mut(fd)?;
        match entry.slot(direction) {
            Some(r) if r.watcher.object().as_ptr() == object.as_ptr() => {}
            _ => return None,
        }
        self.remove_watcher(poller, fd, direction)
    }

    /// Removes the registration in `direction` made through `origin`, wherever it is: for an
    /// object that no longer has a number of its own (a closed socket), found by identity as
    /// `selectors` finds it. None if `origin` has no registration at all; `Some(None)` if it
    /// has one only in the other direction.
    pub fn remove_by_origin(
        &mut self,
        poller: &Poller,
        direction: Direction,
        origin: &Bound<'_, PyAny>,
    ) -> Option<Option<Registration>> {
        let through = |r: &Option<Registration>| {
            r.as_ref()
                .and_then(|r| r.origin.as_ref())
                .is_some_and(|o| o.as_ptr() == origin.as_ptr())
        };
        let (fd, in_direction) = self.entries.iter_mut().find_map(|(fd, e)| {
            let (this, other) = match direction {
                Direction::Read => (&e.reader, &e.writer),
                Direction::Write => (&e.writer, &e.reader),
            };
            if through(this) {
                Some((fd, true))
            } else if through(other) {
                Some((fd, false))
            } else {
                None
            }
        })?;
        Some(if in_direction {
            self.remove_watcher(poller, fd, direction)
        } else {
            None
        })
    }

    /// Queues the watchers an event concerns. An event nobody waits for means epoll still
    /// watches an fd we no longer care about: stop watching it. An event of an earlier
    /// generation concerns a file that is no longer the one registered under its number:
    /// it is not ours to act on.
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
        let (fd, generation) = token_parts(event.token);
        let Some(entry) = self.entries.get_mut(fd) else {
            // Nothing of ours has the number: forget it, if the number still names the file.
            self.ghost |= poller.delete(fd).is_err();
            return;
        };
        if entry.generation != generation {
            self.ghost = true;
            return;
        }
        let mut stale = false;
        for (wanted, registration) in [
            (event.readable && entry.registered.readable, &entry.reader),
            (event.writable && entry.registered.writable, &entry.writer),
        ] {
            if !wanted {
                continue;
            }
            match registration.as_ref().map(|r| &r.watcher) {
                Some(Watcher::Native(n)) => io_ready.push(n.clone_ref(py)),
                Some(w) => ready.extend(w.to_ready(py)),
                None => stale = true,
            }
        }
        if stale {
            let _ = sync_interest(poller, fd, entry, &mut self.registered_fds);
        }
    }

    /// Whether a poll found a registration epoll cannot be told to forget (see `ghost`);
    /// cleared by the call.
    pub fn take_ghost(&mut self) -> bool {
        std::mem::take(&mut self.ghost)
    }

    /// Every fd epoll watches for us, with the objects it was registered through.
    pub fn registered_origins(&self, py: Python<'_>) -> Vec<(RawFd, Vec<Py<PyAny>>)> {
        self.entries
            .iter()
            .filter(|(_, entry)| !entry.registered.is_empty())
            .map(|(fd, entry)| (fd, entry.origins().map(|o| o.clone_ref(py)).collect()))
            .collect()
    }

    /// Registers in `fresh` every fd epoll watches for us, under its token, except those in
    /// `closed` (sorted: registered through an object that no longer has the number) and
    /// those `fresh` refuses (a number closed meanwhile): for them, nothing is watched now.
    pub fn register_all(&mut self, fresh: &Poller, closed: &[RawFd]) {
        let mut registered = 0;
        for (fd, entry) in self.entries.iter_mut() {
            if entry.registered.is_empty() {
                continue;
            }
            let kept = closed.binary_search(&fd).is_err()
                && fresh
                    .add(fd, entry.registered, token(fd, entry.generation))
                    .is_ok();
            if kept {
                registered += 1;
            } else {
                entry.registered = Interest::NONE;
            }
        }
        self.registered_fds = registered;
    }

    /// Empties the table (loop close), returning everything it held.
    pub fn drain(&mut self, poller: &Poller) -> (Vec<Registration>, Vec<Owner>) {
        let mut registrations = Vec::new();
        let mut owners = Vec::new();
        for (fd, entry) in self.entries.iter_mut() {
            if !entry.registered.is_empty() {
                let _ = poller.delete(fd);
            }
            registrations.extend(entry.reader.take());
            registrations.extend(entry.writer.take());
            owners.extend(entry.owner.take());
        }
        self.entries = Entries {
            dense_limit: self.entries.dense_limit,
            ..Entries::default()
        };
        self.registered_fds = 0;
        self.swept = 0;
        (registrations, owners)
    }

    pub fn traverse(&self, visit: &pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        for (_, entry) in self.entries.iter() {
            for registration in [&entry.reader, &entry.writer].into_iter().flatten() {
                registration.watcher.traverse(visit)?;
                if let Some(origin) = &registration.origin {
                    visit.call(origin)?;
                }
            }
            if let Some(owner) = &entry.owner {
                visit.call(&owner.transport)?;
                if let Some(origin) = &owner.origin {
                    visit.call(origin)?;
                }
            }
        }
        Ok(())
    }
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
    let token = token(fd, entry.generation);
    if entry.registered.is_empty() {
        match poller.add(fd, want, token) {
            // Still registered from before we lost track of it (closed and reopened under the
            // same number while registered): take it over.
            Err(e) if e.raw_os_error() == Some(sys::EEXIST) => poller.modify(fd, want, token)?,
            other => other?,
        }
    } else if want.is_empty() {
        // EBADF/ENOENT: the fd was closed (epoll forgot it then); nothing left to undo.
        let _ = poller.delete(fd);
    } else {
        match poller.modify(fd, want, token) {
            Err(e) if e.raw_os_error() == Some(sys::ENOENT) => poller.add(fd, want, token)?,
            other => other?,
        }
    }
    entry.registered = want;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_never_equals_the_waker() {
        for (fd, generation) in [(0, 0), (5, 1), (i32::MAX, u32::MAX), (65536, 7)] {
            let t = token(fd, generation);
            assert_eq!(token_parts(t), (fd, generation));
            assert_ne!(t, WAKER_TOKEN);
        }
    }

    fn pair() -> (
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    ) {
        std::os::unix::net::UnixStream::pair().unwrap()
    }

    #[test]
    fn fds_past_the_dense_part_live_in_the_map() {
        use std::os::fd::AsRawFd;
        let mut table = IoTable::default();
        table.entries.dense_limit = 2;
        let (a, _b) = pair();
        let fd = a.as_raw_fd();
        assert!(fd >= 2);
        let generation = table
            .entries
            .get_or_insert(fd, &mut table.next_generation)
            .unwrap()
            .generation;
        assert!(table.entries.dense.is_empty());
        assert_eq!(
            table.entries.get(fd).map(|e| e.generation),
            Some(generation)
        );
        table.entries.forget_if_unused(fd);
        assert!(table.entries.sparse.is_empty());
        // A new entry for the same number is a new generation.
        let again = table
            .entries
            .get_or_insert(fd, &mut table.next_generation)
            .unwrap()
            .generation;
        assert_ne!(again, generation);
    }

    #[test]
    fn no_entry_for_a_number_nothing_has_open() {
        let mut table = IoTable::default();
        for fd in [i32::MAX, 10_000_000, 70_000, -1] {
            let err = table
                .entries
                .get_or_insert(fd, &mut table.next_generation)
                .err()
                .expect("refused");
            assert_eq!(err.raw_os_error(), Some(sys::EBADF));
        }
        assert!(table.entries.dense.is_empty() && table.entries.sparse.is_empty());
    }
}
