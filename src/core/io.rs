//! Fd watchers: `add_reader`/`add_writer`/`remove_reader`/`remove_writer`, and the same
//! service for native watchers (sock_* operations, transports).
//!
//! A registration is bound to the object it was made through, not only to its number (see
//! `io_table`): before anything registers on a number, registrations made through objects
//! that no longer have it are evicted, so a closed socket's reader never runs for the socket
//! that reuses its number.

use std::os::fd::RawFd;

use pyo3::exceptions::{
    PyAttributeError, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyTuple};

use super::event_loop::LoopCore;
use super::handle::Handle;
use super::io_table::{Direction, NativeWatcher, Owner, Ready, Registration, Watcher};
use crate::errors::os_error;

/// What an fd argument (an int or an object with `fileno()`) comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdNumber {
    Valid(RawFd),
    /// Negative: asyncio's ValueError; the number is kept for its message when it fits.
    Negative(Option<i64>),
    /// Beyond a C int: asyncio's OverflowError when registering, "not registered" otherwise.
    TooLarge,
}

impl FdNumber {
    /// The fd, or the error asyncio raises when registering this number.
    pub fn for_registering(self) -> PyResult<RawFd> {
        match self {
            FdNumber::Valid(fd) => Ok(fd),
            FdNumber::Negative(n) => Err(invalid_fd(n)),
            FdNumber::TooLarge => Err(PyOverflowError::new_err(
                "Python int too large to convert to C int",
            )),
        }
    }
}

fn invalid_fd(number: Option<i64>) -> PyErr {
    let shown = number.map_or_else(|| "a negative number".to_owned(), |n| n.to_string());
    PyValueError::new_err(format!("Invalid file descriptor: {shown}"))
}

/// The fd number of an int or of an object with `fileno()`, as `selectors` reads it: only an
/// AttributeError, TypeError or ValueError from `fileno()` means "not a file object"; other
/// errors propagate.
pub fn fileobj_number(obj: &Bound<'_, PyAny>) -> PyResult<FdNumber> {
    if obj.is_instance_of::<PyInt>() {
        return int_number(obj);
    }
    let py = obj.py();
    let invalid = |err: PyErr| {
        if err.is_instance_of::<PyAttributeError>(py)
            || err.is_instance_of::<PyTypeError>(py)
            || err.is_instance_of::<PyValueError>(py)
        {
            PyValueError::new_err(format!("Invalid file object: {}", repr(obj)))
        } else {
            err
        }
    };
    let fileno = super::stdlib::fileno(obj).map_err(invalid)?;
    if fileno.is_exact_instance_of::<PyInt>() {
        return int_number(&fileno);
    }
    // int(fileobj.fileno()), as selectors does (a float fileno is accepted).
    int_number(&py.get_type::<PyInt>().call1((fileno,)).map_err(invalid)?)
}

fn int_number(number: &Bound<'_, PyAny>) -> PyResult<FdNumber> {
    Ok(match number.extract::<i64>() {
        Ok(n) if n < 0 => FdNumber::Negative(Some(n)),
        Ok(n) => RawFd::try_from(n).map_or(FdNumber::TooLarge, FdNumber::Valid),
        Err(_) if number.lt(0)? => FdNumber::Negative(None),
        Err(_) => FdNumber::TooLarge,
    })
}

/// Whether `obj` (a socket or file object) still has the number `fd`: false once it was
/// closed or detached, which is what makes a registration made through it stale.
pub fn holds_fd(obj: &Bound<'_, PyAny>, fd: RawFd) -> bool {
    matches!(fileobj_number(obj), Ok(FdNumber::Valid(n)) if n == fd)
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unprintable>".to_owned())
}

/// The object a registration is bound to: the argument itself unless it is a bare number.
fn origin_of<'a, 'py>(fileobj: &'a Bound<'py, PyAny>) -> Option<&'a Bound<'py, PyAny>> {
    (!fileobj.is_instance_of::<PyInt>()).then_some(fileobj)
}

fn release(watcher: Option<Watcher>, py: Python<'_>) -> PyResult<bool> {
    match watcher {
        Some(Watcher::Handle(handle)) => {
            handle.bind(py).call_method0("cancel")?;
            Ok(true)
        }
        Some(Watcher::Native(native)) => {
            drop(native);
            Ok(true)
        }
        None => Ok(false),
    }
}

impl LoopCore {
    /// asyncio refuses `add_reader` & co. on an fd that a live transport owns. A transport
    /// whose socket no longer has that number (closed behind its back) owns it no more.
    pub(crate) fn ensure_fd_no_transport(
        &self,
        py: Python<'_>,
        number: FdNumber,
        fileobj: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let FdNumber::Valid(fd) = number else {
            return Ok(());
        };
        let owner = self.state.borrow(py).io.owner(fd).map(|o| {
            (
                o.transport.clone_ref(py),
                o.origin.as_ref().map(|s| s.clone_ref(py)),
            )
        });
        let Some((transport, origin)) = owner else {
            return Ok(());
        };
        if origin.is_some_and(|origin| !holds_fd(origin.bind(py), fd)) {
            let stale = self.state.borrow_mut(py).io.set_owner(fd, None);
            drop(stale);
            return Ok(());
        }
        let transport = transport.bind(py);
        if !transport.call_method0("is_closing")?.is_truthy()? {
            return Err(PyRuntimeError::new_err(format!(
                "File descriptor {} is used by transport {}",
                repr(fileobj),
                repr(transport)
            )));
        }
        Ok(())
    }

    /// Before `origin` (None: a bare number or the loop's own fd) registers on `fd`: the
    /// registrations made through other objects that no longer have this number are taken
    /// out. The loop's own (sock_* operations) run once more, find their socket closed and
    /// fail with EBADF, as asyncio's would; a user's `add_reader` handle is cancelled.
    pub(crate) fn evict_stale(
        &self,
        py: Python<'_>,
        fd: RawFd,
        origin: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let others = self.state.borrow(py).io.other_origins(py, fd, origin);
        if others.is_empty() {
            return Ok(());
        }
        let stale: Vec<Py<PyAny>> = others
            .into_iter()
            .filter(|o| !holds_fd(o.bind(py), fd))
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let Some(reactor) = self.state.borrow(py).reactor.clone() else {
            return Ok(());
        };
        let evicted = self
            .state
            .borrow_mut(py)
            .io
            .evict(&reactor.poller, fd, &stale);
        let mut result = Ok(());
        for registration in evicted.registrations {
            let ready = match registration.watcher {
                Watcher::Native(native) => Ready::Native(native),
                Watcher::Handle(handle) if registration.run_when_stale => Ready::Handle(handle),
                handle => {
                    result = result.and(release(Some(handle), py).map(drop));
                    continue;
                }
            };
            self.state.borrow_mut(py).ready.push_back(ready);
        }
        drop((evicted.owner, stale));
        result
    }

    fn install_watcher(
        &self,
        py: Python<'_>,
        fd: RawFd,
        direction: Direction,
        watcher: Watcher,
        origin: Option<&Bound<'_, PyAny>>,
        run_when_stale: bool,
    ) -> PyResult<()> {
        // A native watcher without an origin is a transport's, on an fd only it can close.
        if origin.is_some() || matches!(watcher, Watcher::Handle(_)) {
            self.evict_stale(py, fd, origin)?;
        }
        let reactor = self.reactor(py)?;
        let registration = Registration {
            watcher,
            origin: origin.map(|o| o.clone().unbind()),
            run_when_stale,
        };
        let result =
            self.state
                .borrow_mut(py)
                .io
                .set_watcher(&reactor.poller, fd, direction, registration);
        match result {
            Ok(previous) => release(previous.map(|r| r.watcher), py).map(drop),
            Err((err, rejected)) => {
                drop(rejected);
                Err(os_error(err))
            }
        }
    }

    fn uninstall_watcher(&self, py: Python<'_>, fd: RawFd, direction: Direction) -> PyResult<bool> {
        let Some(reactor) = self.state.borrow(py).reactor.clone() else {
            return Ok(false);
        };
        let removed = self
            .state
            .borrow_mut(py)
            .io
            .remove_watcher(&reactor.poller, fd, direction);
        release(removed.map(|r| r.watcher), py)
    }

    fn add_handle_watcher(
        slf: &Bound<'_, LoopCore>,
        fileobj: &Bound<'_, PyAny>,
        direction: Direction,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        method: &str,
        check_transport: bool,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        // asyncio's order: a bad object, a transport's fd, a closed loop, a negative fd.
        let number = fileobj_number(fileobj)?;
        if check_transport {
            this.ensure_fd_no_transport(py, number, fileobj)?;
        }
        this.check_closed(py)?;
        let fd = number.for_registering()?;
        // No thread check, even in debug mode: asyncio's add_reader has none either.
        let debug = this.debug.get(py);
        super::scheduling::check_callback(py, &callback, method, debug)?;
        let handle = Handle::new(
            py,
            callback.unbind(),
            args.unbind(),
            None,
            slf.clone().unbind(),
            debug,
            false,
        )?;
        let handle = Py::new(py, handle)?;
        // A watcher lives as long as its fd is watched: an ordinary tracked object, context
        // included (unlike the one-shot handles, see `Handle`).
        Handle::expose(handle.bind(py));
        // The loop's own helpers (no transport check) find out themselves that their socket
        // was closed; a user's callback is not called for another file.
        this.install_watcher(
            py,
            fd,
            direction,
            Watcher::Handle(handle.clone_ref(py)),
            origin_of(fileobj),
            !check_transport,
        )?;
        Ok(handle)
    }

    /// `remove_reader`/`remove_writer`; `check_transport` false is asyncio's `_remove_reader`/
    /// `_remove_writer`, for the loop's own helpers working on a transport's fd (sendfile).
    fn remove_handle_watcher(
        slf: &Bound<'_, LoopCore>,
        fileobj: &Bound<'_, PyAny>,
        direction: Direction,
        check_transport: bool,
    ) -> PyResult<bool> {
        let py = slf.py();
        let this = slf.get();
        let number = fileobj_number(fileobj)?;
        if check_transport {
            this.ensure_fd_no_transport(py, number, fileobj)?;
        }
        if this.closed.get(py) {
            return Ok(false);
        }
        match number {
            FdNumber::Valid(fd) => this.uninstall_watcher(py, fd, direction),
            // No fd can be registered under it.
            FdNumber::TooLarge => Ok(false),
            FdNumber::Negative(n) => {
                // A closed object is found by identity, as `selectors` finds it.
                let Some(origin) = origin_of(fileobj) else {
                    return Err(invalid_fd(n));
                };
                let Some(reactor) = this.state.borrow(py).reactor.clone() else {
                    return Ok(false);
                };
                let removed = this.state.borrow_mut(py).io.remove_by_origin(
                    &reactor.poller,
                    direction,
                    origin,
                );
                match removed {
                    None => Err(invalid_fd(n)),
                    Some(registration) => release(registration.map(|r| r.watcher), py),
                }
            }
        }
    }

    /// Makes `watcher` the reader or writer of `fd` (replacing any other). `origin` is the
    /// object the fd belongs to (a sock_* operation's socket), None for a transport's own fd.
    pub fn set_native_watcher(
        &self,
        py: Python<'_>,
        fd: RawFd,
        direction: Direction,
        watcher: NativeWatcher,
        origin: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.install_watcher(py, fd, direction, Watcher::Native(watcher), origin, true)
    }

    /// Removes the reader or writer of `fd`; true if there was one.
    pub fn clear_watcher(&self, py: Python<'_>, fd: RawFd, direction: Direction) -> PyResult<bool> {
        self.uninstall_watcher(py, fd, direction)
    }

    /// Removes the reader or writer of `fd` if it is still `object`'s (its native watcher).
    pub fn clear_watcher_of(
        &self,
        py: Python<'_>,
        fd: RawFd,
        direction: Direction,
        object: &Bound<'_, PyAny>,
    ) {
        let Some(reactor) = self.state.borrow(py).reactor.clone() else {
            return;
        };
        let removed =
            self.state
                .borrow_mut(py)
                .io
                .remove_watcher_of(&reactor.poller, fd, direction, object);
        drop(removed);
    }

    /// Records `transport` as the owner of `fd`, the number of `origin` (its socket); None
    /// releases the fd.
    pub fn set_fd_owner(
        &self,
        py: Python<'_>,
        fd: RawFd,
        owner: Option<(Py<PyAny>, Option<Py<PyAny>>)>,
    ) {
        let owner = owner.map(|(transport, origin)| Owner { transport, origin });
        let previous = self.state.borrow_mut(py).io.set_owner(fd, owner);
        drop(previous);
    }
}

#[pymethods]
impl LoopCore {
    /// Calls `callback(*args)` whenever `fd` (an int or an object with `fileno()`) is readable.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        LoopCore::add_handle_watcher(slf, fd, Direction::Read, callback, args, "add_reader", true)
            .map(drop)
    }

    /// Calls `callback(*args)` whenever `fd` is writable.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        LoopCore::add_handle_watcher(
            slf,
            fd,
            Direction::Write,
            callback,
            args,
            "add_writer",
            true,
        )
        .map(drop)
    }

    /// `add_reader` without the transport check, returning the handle (asyncio's
    /// `_add_reader`, which the loop's own helpers use).
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        LoopCore::add_handle_watcher(
            slf,
            fd,
            Direction::Read,
            callback,
            args,
            "add_reader",
            false,
        )
    }

    /// `add_writer` without the transport check, returning the handle.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<Py<Handle>> {
        LoopCore::add_handle_watcher(
            slf,
            fd,
            Direction::Write,
            callback,
            args,
            "add_writer",
            false,
        )
    }

    /// `remove_reader` without the transport check (asyncio's `_remove_reader`).
    fn _remove_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        LoopCore::remove_handle_watcher(slf, fd, Direction::Read, false)
    }

    /// `remove_writer` without the transport check (asyncio's `_remove_writer`).
    fn _remove_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        LoopCore::remove_handle_watcher(slf, fd, Direction::Write, false)
    }

    /// Removes the watcher the loop's own `handle` was registered as (under the number `fd`
    /// in the given direction), if it is still there: never another registration.
    fn _discard_watcher(&self, py: Python<'_>, fd: RawFd, handle: &Bound<'_, PyAny>, write: bool) {
        let direction = if write {
            Direction::Write
        } else {
            Direction::Read
        };
        self.clear_watcher_of(py, fd, direction, handle);
    }

    /// RuntimeError if a live transport owns `fd`.
    fn _ensure_fd_no_transport(&self, py: Python<'_>, fd: &Bound<'_, PyAny>) -> PyResult<()> {
        let number = fileobj_number(fd)?;
        self.ensure_fd_no_transport(py, number, fd)
    }

    /// Stops watching `fd` for reading; True if a reader was registered.
    fn remove_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        LoopCore::remove_handle_watcher(slf, fd, Direction::Read, true)
    }

    /// Stops watching `fd` for writing; True if a writer was registered.
    fn remove_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        LoopCore::remove_handle_watcher(slf, fd, Direction::Write, true)
    }
}
