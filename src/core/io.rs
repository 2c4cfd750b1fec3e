//! Fd watchers: `add_reader`/`add_writer`/`remove_reader`/`remove_writer`, and the same
//! service for native watchers (sock_* operations, transports).

use std::os::fd::RawFd;

use pyo3::exceptions::{PyAttributeError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyTuple};

use super::event_loop::LoopCore;
use super::handle::Handle;
use super::io_table::{Direction, NativeWatcher, Watcher};
use crate::errors::os_error;

/// The fd number of an int or of an object with `fileno()`, as `selectors` reads it: only an
/// AttributeError, TypeError or ValueError from `fileno()` means "not a file object"; other
/// errors propagate. Negative numbers pass: asyncio refuses them later (see `valid_fd`).
pub fn fileobj_number(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    if obj.is_instance_of::<PyInt>() {
        return obj.extract();
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
    let fileno = obj.call_method0("fileno").map_err(invalid)?;
    // int(fileobj.fileno()), as selectors does (a float fileno is accepted).
    let number = py.get_type::<PyInt>().call1((fileno,)).map_err(invalid)?;
    number.extract()
}

/// `fd` as a file descriptor, or asyncio's ValueError for a negative one.
pub fn valid_fd(number: i64) -> PyResult<RawFd> {
    RawFd::try_from(number)
        .ok()
        .filter(|fd| *fd >= 0)
        .ok_or_else(|| PyValueError::new_err(format!("Invalid file descriptor: {number}")))
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "<unprintable>".to_owned())
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
    /// asyncio refuses `add_reader` & co. on an fd that a live transport owns.
    pub(crate) fn ensure_fd_no_transport(
        &self,
        py: Python<'_>,
        number: i64,
        fileobj: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // A negative or oversized number cannot belong to a transport.
        let Ok(fd) = RawFd::try_from(number) else {
            return Ok(());
        };
        if fd < 0 {
            return Ok(());
        }
        let owner = self.state.borrow(py).io.owner(fd).map(|o| o.clone_ref(py));
        if let Some(owner) = owner {
            let owner = owner.bind(py);
            if !owner.call_method0("is_closing")?.is_truthy()? {
                return Err(PyRuntimeError::new_err(format!(
                    "File descriptor {} is used by transport {}",
                    repr(fileobj),
                    repr(owner)
                )));
            }
        }
        Ok(())
    }

    fn install_watcher(
        &self,
        py: Python<'_>,
        fd: RawFd,
        direction: Direction,
        watcher: Watcher,
    ) -> PyResult<()> {
        let reactor = self.reactor(py)?;
        let result =
            self.state
                .borrow_mut(py)
                .io
                .set_watcher(&reactor.poller, fd, direction, watcher);
        match result {
            Ok(previous) => release(previous, py).map(drop),
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
        release(removed, py)
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
        let fd = valid_fd(number)?;
        let debug = this.debug.get(py);
        if debug {
            this.check_thread(py)?;
        }
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
        this.install_watcher(py, fd, direction, Watcher::Handle(handle.clone_ref(py)))?;
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
        this.uninstall_watcher(py, valid_fd(number)?, direction)
    }

    /// Makes `watcher` the reader or writer of `fd` (replacing any other).
    pub fn set_native_watcher(
        &self,
        py: Python<'_>,
        fd: RawFd,
        direction: Direction,
        watcher: NativeWatcher,
    ) -> PyResult<()> {
        self.install_watcher(py, fd, direction, Watcher::Native(watcher))
    }

    /// Removes the reader or writer of `fd`; true if there was one.
    pub fn clear_watcher(&self, py: Python<'_>, fd: RawFd, direction: Direction) -> PyResult<bool> {
        self.uninstall_watcher(py, fd, direction)
    }

    /// Removes the reader or writer of `fd` if it is still `target`'s native watcher.
    pub fn clear_native_watcher_of(
        &self,
        py: Python<'_>,
        fd: RawFd,
        direction: Direction,
        target: &Bound<'_, PyAny>,
    ) {
        let Some(reactor) = self.state.borrow(py).reactor.clone() else {
            return;
        };
        let removed = self.state.borrow_mut(py).io.remove_native_watcher_of(
            &reactor.poller,
            fd,
            direction,
            target,
        );
        drop(removed);
    }

    /// Records the transport owning `fd` (None to release it).
    pub fn set_fd_owner(&self, py: Python<'_>, fd: RawFd, owner: Option<Py<PyAny>>) {
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
