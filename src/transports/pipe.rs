//! Pipe transports: asyncio's `_UnixReadPipeTransport` and `_UnixWritePipeTransport`
//! contracts (pipes, sockets and character devices such as ptys), with the I/O in Rust.
//!
//! Protocols see the thin Python classes of `ferroloop.pipes` (an `asyncio.ReadTransport` and
//! an `asyncio.WriteTransport`), each owning one of these cores, which check the fd type and
//! make it non-blocking before building them. As in asyncio, a pipe transport does not own its
//! fd in the loop's sense: `add_reader` on it is not refused.
//!
//! The read side reads once per readiness event into the loop's buffer. The write side writes
//! at once and buffers only the rest, flushed with one vectored write; on a pipe or a socket it
//! also watches the fd for reading, which is how a peer that closed its end is noticed.

use std::io::IoSlice;
use std::os::fd::RawFd;

use pyo3::exceptions::{PyBrokenPipeError, PyOSError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::flow_control::{water_marks, DEFAULT_HIGH_WATER};
use super::report::{call_flow_control, log_transport, report_fatal_error};
use super::stream::{to_chunk, Chunk};
use super::write_buffer::WriteBuffer;
use crate::core::event_loop::LoopCore;
use crate::core::gil_cell::GilCell;
use crate::core::io_table::{Direction, NativeFn, NativeWatcher};
use crate::core::stdlib;
use crate::errors::os_error;
use crate::sys;

/// asyncio's `max_size`: the most one read hands to `data_received`.
const MAX_READ: usize = 256 * 1024;
/// asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

fn watch(
    lp: &Bound<'_, LoopCore>,
    fd: RawFd,
    direction: Direction,
    target: &Bound<'_, PyAny>,
    on_ready: NativeFn,
) -> PyResult<()> {
    let watcher = NativeWatcher {
        target: target.clone().unbind(),
        on_ready,
    };
    lp.get().set_native_watcher(lp.py(), fd, direction, watcher)
}

/// Stops watching `fd` in one direction if the watcher there is still `target`'s (the fd is
/// not the transport's alone: a user's `add_reader` may have replaced it).
fn unwatch(lp: &Bound<'_, LoopCore>, fd: RawFd, direction: Direction, target: &Bound<'_, PyAny>) {
    let py = lp.py();
    if !lp.get().is_closed_flag(py) {
        lp.get().clear_native_watcher_of(py, fd, direction, target);
    }
}

/// `loop.call_soon(obj.<method>, *args)`.
fn schedule(
    lp: &Bound<'_, LoopCore>,
    obj: &Bound<'_, PyAny>,
    method: &str,
    args: Bound<'_, PyTuple>,
) -> PyResult<()> {
    LoopCore::schedule_callback(lp, obj.getattr(method)?, args)
}

/// Schedules `connection_made(wrapper)`, then `start` (the transport's own method), then the
/// waiter's result: asyncio's order, so no I/O callback precedes `connection_made`.
fn begin(
    lp: &Bound<'_, LoopCore>,
    core: &Bound<'_, PyAny>,
    protocol: Option<Py<PyAny>>,
    wrapper: Option<Py<PyAny>>,
    start: Option<&str>,
    waiter: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let py = lp.py();
    if let (Some(protocol), Some(wrapper)) = (protocol, wrapper) {
        schedule(
            lp,
            protocol.bind(py),
            "connection_made",
            PyTuple::new(py, [wrapper])?,
        )?;
    }
    if let Some(start) = start {
        schedule(lp, core, start, PyTuple::empty(py))?;
    }
    if let Some(waiter) = waiter.filter(|w| !w.is_none()) {
        let set = stdlib::set_result_unless_cancelled(py)?.clone();
        LoopCore::schedule_callback(
            lp,
            set,
            PyTuple::new(py, [waiter.clone(), py.None().into_bound(py)])?,
        )?;
    }
    Ok(())
}

/// `protocol.connection_lost(exc)`, then `pipe.close()` even if that raised.
fn finish(
    py: Python<'_>,
    protocol: Option<Py<PyAny>>,
    pipe: Option<Py<PyAny>>,
    exc: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let lost = match &protocol {
        Some(p) => p.bind(py).call_method1("connection_lost", (exc,)).map(drop),
        None => Ok(()),
    };
    let closed = match &pipe {
        Some(p) => p.bind(py).call_method0("close").map(drop),
        None => Ok(()),
    };
    drop((protocol, pipe));
    lost.and(closed)
}

/// The core's repr: the transport the protocol sees (what error reports should name).
fn core_repr(py: Python<'_>, wrapper: Option<Py<PyAny>>, name: &str, fd: RawFd) -> String {
    wrapper
        .and_then(|w| w.bind(py).repr().ok().map(|r| r.to_string()))
        .unwrap_or_else(|| format!("<{name} closed fd={fd}>"))
}

fn is_eio(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyOSError>(py)
        && err
            .value(py)
            .getattr("errno")
            .and_then(|e| e.extract::<i32>())
            .is_ok_and(|errno| errno == libc::EIO)
}

// ---------------------------------------------------------------------------------------
// The read side.

struct ReadState {
    /// The `asyncio.ReadTransport` the protocol sees; dropped once the connection is lost.
    wrapper: Option<Py<PyAny>>,
    pipe: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    /// `protocol.data_received`, looked up once per protocol.
    data_received: Option<Py<PyAny>>,
    /// close() was called, EOF was read or the transport failed.
    closing: bool,
    /// pause_reading() is in force.
    paused: bool,
    /// The reader is installed: a read event queued before it was removed is ignored.
    reading: bool,
    /// connection_lost is scheduled (or done).
    lost: bool,
}

/// The native half of `ferroloop.pipes.ReadPipeTransport`.
#[pyclass(frozen, module = "ferroloop._ferroloop", name = "ReadPipeTransport")]
pub struct ReadPipeTransport {
    loop_: Py<LoopCore>,
    fd: RawFd,
    state: GilCell<ReadState>,
}

impl ReadPipeTransport {
    fn wrapper(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state
            .borrow(py)
            .wrapper
            .as_ref()
            .map(|w| w.clone_ref(py))
    }

    fn protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state
            .borrow(py)
            .protocol
            .as_ref()
            .map(|p| p.clone_ref(py))
    }

    fn start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut st = this.state.borrow_mut(py);
            if st.closing || st.paused || st.reading {
                return Ok(());
            }
            st.reading = true;
        }
        let result = watch(
            this.loop_.bind(py),
            this.fd,
            Direction::Read,
            slf.as_any(),
            ReadPipeTransport::on_readable,
        );
        if result.is_err() {
            this.state.borrow_mut(py).reading = false;
        }
        result
    }

    fn stop_reading(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        if std::mem::replace(&mut this.state.borrow_mut(py).reading, false) {
            unwatch(this.loop_.bind(py), this.fd, Direction::Read, slf.as_any());
        }
    }

    /// asyncio's `_close`: stop reading, then `connection_lost(exc)` on the next iteration.
    fn close_with(slf: &Bound<'_, Self>, exc: Option<Py<PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let already = {
            let mut st = this.state.borrow_mut(py);
            st.closing = true;
            std::mem::replace(&mut st.lost, true)
        };
        ReadPipeTransport::stop_reading(slf);
        if already {
            return Ok(());
        }
        let exc = exc.unwrap_or_else(|| py.None());
        schedule(
            this.loop_.bind(py),
            slf.as_any(),
            "_call_connection_lost",
            PyTuple::new(py, [exc])?,
        )
    }

    /// asyncio's `_fatal_error`: EIO (what a pty reports once its other side is closed) is
    /// only logged in debug mode, anything else goes to the exception handler; then close.
    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let quiet = is_eio(py, &err);
        // into_value: the exception with its traceback attached (value() leaves it off).
        let exc = err.into_value(py).into_bound(py).into_any();
        report_fatal_error(
            this.loop_.bind(py),
            &exc,
            message,
            quiet,
            this.wrapper(py),
            this.protocol(py),
        )?;
        ReadPipeTransport::close_with(slf, Some(exc.unbind()))
    }

    /// The fd is readable: one read, handed to the protocol. An exception from
    /// `data_received` goes to the exception handler and the transport stays open, as with
    /// asyncio, where the read is a plain callback.
    fn on_readable(lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = lp.py();
        // SAFETY: registered only with a ReadPipeTransport target.
        let slf = unsafe { target.cast_unchecked::<ReadPipeTransport>() };
        let this = slf.get();
        {
            let st = this.state.borrow(py);
            if !st.reading || st.closing {
                return Ok(());
            }
        }
        let read = {
            let mut buffer = lp.get().read_buffer(py);
            let len = buffer.len().min(MAX_READ);
            // Bytes objects are not GC-tracked: making one runs no Python code.
            sys::read(this.fd, &mut buffer[..len])
                .map(|n| (n, PyBytes::new(py, &buffer[..n]).unbind()))
        };
        match read {
            Ok((0, _)) => ReadPipeTransport::on_eof(slf),
            Ok((_, data)) => {
                let method = this
                    .state
                    .borrow(py)
                    .data_received
                    .as_ref()
                    .map(|m| m.clone_ref(py));
                match method {
                    Some(method) => method.bind(py).call1((data,)).map(drop),
                    None => match this.protocol(py) {
                        // No data_received: raise what asyncio's call would.
                        Some(p) => p.bind(py).call_method1("data_received", (data,)).map(drop),
                        None => Ok(()),
                    },
                }
            }
            Err(e) if sys::would_block(&e) => Ok(()),
            Err(e) => ReadPipeTransport::fatal_error(
                slf,
                os_error(e),
                "Fatal read error on pipe transport",
            ),
        }
    }

    fn on_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.loop_.bind(py);
        if lp.get().debug_enabled(py) {
            log_transport(py, "info", "%r was closed by peer", this.wrapper(py))?;
        }
        let protocol = this.protocol(py);
        let already = {
            let mut st = this.state.borrow_mut(py);
            st.closing = true;
            std::mem::replace(&mut st.lost, true)
        };
        ReadPipeTransport::stop_reading(slf);
        if already {
            return Ok(());
        }
        if let Some(protocol) = protocol {
            schedule(lp, protocol.bind(py), "eof_received", PyTuple::empty(py))?;
        }
        schedule(
            lp,
            slf.as_any(),
            "_call_connection_lost",
            PyTuple::new(py, [py.None()])?,
        )
    }

    fn set_protocol_inner(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) {
        let method = protocol.getattr("data_received").ok().map(Bound::unbind);
        let old = {
            let mut st = self.state.borrow_mut(py);
            (
                st.protocol.replace(protocol.clone().unbind()),
                std::mem::replace(&mut st.data_received, method),
            )
        };
        drop(old);
    }
}

#[pymethods]
impl ReadPipeTransport {
    /// `ReadPipeTransport(loop, wrapper, pipe, protocol, fd)`: `fd` is `pipe.fileno()`,
    /// already checked and made non-blocking. The wrapper calls `_begin`.
    #[new]
    fn new(
        event_loop: &Bound<'_, LoopCore>,
        wrapper: &Bound<'_, PyAny>,
        pipe: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        fd: RawFd,
    ) -> Self {
        ReadPipeTransport {
            loop_: event_loop.clone().unbind(),
            fd,
            state: GilCell::new(ReadState {
                wrapper: Some(wrapper.clone().unbind()),
                pipe: Some(pipe.clone().unbind()),
                protocol: Some(protocol.clone().unbind()),
                data_received: protocol.getattr("data_received").ok().map(Bound::unbind),
                closing: false,
                paused: false,
                reading: false,
                lost: false,
            }),
        }
    }

    /// Schedules `connection_made`, then the start of reading, then the waiter's result.
    #[pyo3(signature = (waiter=None))]
    fn _begin(slf: &Bound<'_, Self>, waiter: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        begin(
            this.loop_.bind(py),
            slf.as_any(),
            this.protocol(py),
            this.wrapper(py),
            Some("_start_reading"),
            waiter,
        )
    }

    fn _start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        ReadPipeTransport::start_reading(slf)
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        ReadPipeTransport::stop_reading(slf);
        let (protocol, pipe, method, wrapper) = {
            let mut st = this.state.borrow_mut(py);
            (
                st.protocol.take(),
                st.pipe.take(),
                st.data_received.take(),
                st.wrapper.take(),
            )
        };
        let result = finish(py, protocol, pipe, &exc);
        drop((method, wrapper));
        result
    }

    fn is_reading(&self, py: Python<'_>) -> bool {
        let st = self.state.borrow(py);
        !st.paused && !st.closing
    }

    fn pause_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut st = this.state.borrow_mut(py);
            if st.paused || st.closing {
                return Ok(());
            }
            st.paused = true;
        }
        ReadPipeTransport::stop_reading(slf);
        if this.loop_.get().debug_enabled(py) {
            log_transport(py, "debug", "%r pauses reading", this.wrapper(py))?;
        }
        Ok(())
    }

    fn resume_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut st = this.state.borrow_mut(py);
            if st.closing || !st.paused {
                return Ok(());
            }
            st.paused = false;
        }
        ReadPipeTransport::start_reading(slf)?;
        if this.loop_.get().debug_enabled(py) {
            log_transport(py, "debug", "%r resumes reading", this.wrapper(py))?;
        }
        Ok(())
    }

    fn is_closing(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).closing
    }

    /// Stops reading; `connection_lost(None)` follows on the next iteration.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.get().state.borrow(slf.py()).closing {
            return Ok(());
        }
        ReadPipeTransport::close_with(slf, None)
    }

    /// asyncio's `_fatal_error(exc, message)`, for the loop's own helpers.
    #[pyo3(signature = (exc, message="Fatal error on pipe transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        ReadPipeTransport::fatal_error(slf, PyErr::from_value(exc), message)
    }

    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol(py)
    }

    fn set_protocol(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) {
        self.set_protocol_inner(py, protocol);
    }

    #[getter]
    fn _fd(&self) -> RawFd {
        self.fd
    }

    /// The pipe object while it is open (until connection_lost).
    #[getter]
    fn _pipe(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state.borrow(py).pipe.as_ref().map(|p| p.clone_ref(py))
    }

    #[getter]
    fn _reading(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).reading
    }

    /// Forgets the pipe without closing it or telling the protocol: `close` (the wrapper's
    /// `__del__`, for a transport nobody closed) also closes it.
    #[pyo3(signature = (close=true))]
    fn _release_pipe(slf: &Bound<'_, Self>, close: bool) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        ReadPipeTransport::stop_reading(slf);
        let pipe = this.state.borrow_mut(py).pipe.take();
        if let (Some(pipe), true) = (&pipe, close) {
            pipe.bind(py).call_method0("close")?;
        }
        drop(pipe);
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        core_repr(py, self.wrapper(py), "ReadPipeTransport", self.fd)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        let Some(st) = self.state.try_borrow_unguarded() else {
            return Ok(());
        };
        for obj in [&st.wrapper, &st.pipe, &st.protocol, &st.data_received]
            .into_iter()
            .flatten()
        {
            visit.call(obj)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken = self.state.try_borrow_mut_unguarded().map(|mut st| {
            (
                st.wrapper.take(),
                st.protocol.take(),
                st.data_received.take(),
            )
        });
        drop(taken);
    }
}

// ---------------------------------------------------------------------------------------
// The write side.

struct WriteState {
    /// The `asyncio.WriteTransport` the protocol sees; dropped once the connection is lost.
    wrapper: Option<Py<PyAny>>,
    pipe: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    buffer: WriteBuffer<Chunk>,
    high_water: usize,
    low_water: usize,
    /// pause_writing() was called on the protocol and resume_writing() not yet.
    protocol_paused: bool,
    /// Writes attempted after a write failed or the peer went away.
    conn_lost: u32,
    /// close(), write_eof() or abort() was called, or the peer closed: nothing more is sent.
    closing: bool,
    /// The writer is installed (data is buffered).
    writing: bool,
    /// The reader that notices the peer closing is installed.
    watching_peer: bool,
    /// connection_lost is scheduled (or done).
    lost: bool,
}

/// The native half of `ferroloop.pipes.WritePipeTransport`.
#[pyclass(frozen, module = "ferroloop._ferroloop", name = "WritePipeTransport")]
pub struct WritePipeTransport {
    loop_: Py<LoopCore>,
    fd: RawFd,
    /// Sockets are written with `send(MSG_NOSIGNAL)`, other fds with `write`.
    is_socket: bool,
    /// Pipes and sockets report the peer closing as readability; character devices do not.
    watch_peer: bool,
    state: GilCell<WriteState>,
}

impl WritePipeTransport {
    fn wrapper(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state
            .borrow(py)
            .wrapper
            .as_ref()
            .map(|w| w.clone_ref(py))
    }

    fn protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state
            .borrow(py)
            .protocol
            .as_ref()
            .map(|p| p.clone_ref(py))
    }

    fn start_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if std::mem::replace(&mut this.state.borrow_mut(py).writing, true) {
            return Ok(());
        }
        let result = watch(
            this.loop_.bind(py),
            this.fd,
            Direction::Write,
            slf.as_any(),
            WritePipeTransport::on_writable,
        );
        if result.is_err() {
            this.state.borrow_mut(py).writing = false;
        }
        result
    }

    fn stop_writing(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        if std::mem::replace(&mut this.state.borrow_mut(py).writing, false) {
            unwatch(this.loop_.bind(py), this.fd, Direction::Write, slf.as_any());
        }
    }

    fn stop_watching_peer(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        if std::mem::replace(&mut this.state.borrow_mut(py).watching_peer, false) {
            unwatch(this.loop_.bind(py), this.fd, Direction::Read, slf.as_any());
        }
    }

    fn schedule_connection_lost(slf: &Bound<'_, Self>, exc: Option<Py<PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if std::mem::replace(&mut this.state.borrow_mut(py).lost, true) {
            return Ok(());
        }
        let exc = exc.unwrap_or_else(|| py.None());
        schedule(
            this.loop_.bind(py),
            slf.as_any(),
            "_call_connection_lost",
            PyTuple::new(py, [exc])?,
        )
    }

    /// asyncio's `_close`: drop what is buffered, stop watching, and `connection_lost(exc)`
    /// on the next iteration.
    fn close_with(slf: &Bound<'_, Self>, exc: Option<Py<PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let dropped = {
            let mut st = slf.get().state.borrow_mut(py);
            st.closing = true;
            st.buffer.take_all()
        };
        drop(dropped);
        WritePipeTransport::stop_writing(slf);
        WritePipeTransport::stop_watching_peer(slf);
        WritePipeTransport::schedule_connection_lost(slf, exc)
    }

    /// asyncio's `_fatal_error`: OSErrors are only logged in debug mode, anything else goes
    /// to the exception handler; then the transport closes.
    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let quiet = err.is_instance_of::<PyOSError>(py);
        let exc = err.into_value(py).into_bound(py).into_any();
        report_fatal_error(
            this.loop_.bind(py),
            &exc,
            message,
            quiet,
            this.wrapper(py),
            this.protocol(py),
        )?;
        WritePipeTransport::close_with(slf, Some(exc.unbind()))
    }

    fn write_now(&self, data: &[u8]) -> std::io::Result<usize> {
        if self.is_socket {
            sys::send(self.fd, data)
        } else {
            sys::write(self.fd, data)
        }
    }

    /// The fd became readable: on a write pipe that means the reading end was closed.
    fn on_peer_closed(lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = lp.py();
        // SAFETY: registered only with a WritePipeTransport target.
        let slf = unsafe { target.cast_unchecked::<WritePipeTransport>() };
        let this = slf.get();
        let pending = {
            let st = this.state.borrow(py);
            if !st.watching_peer {
                return Ok(());
            }
            !st.buffer.is_empty()
        };
        if lp.get().debug_enabled(py) {
            log_transport(py, "info", "%r was closed by peer", this.wrapper(py))?;
        }
        // Data that can no longer be delivered is an error; a clean close is not.
        let exc = if pending {
            Some(
                PyBrokenPipeError::new_err(())
                    .value(py)
                    .clone()
                    .into_any()
                    .unbind(),
            )
        } else {
            None
        };
        WritePipeTransport::close_with(slf, exc)
    }

    /// The fd is writable: flush as much of the buffer as the kernel takes.
    fn on_writable(lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = lp.py();
        // SAFETY: registered only with a WritePipeTransport target.
        let slf = unsafe { target.cast_unchecked::<WritePipeTransport>() };
        let this = slf.get();
        let written = {
            let st = this.state.borrow(py);
            if !st.writing || st.buffer.is_empty() {
                return Ok(());
            }
            let mut slices: Vec<IoSlice<'_>> = Vec::new();
            st.buffer.io_slices(&mut slices);
            sys::send_vectored(this.fd, &slices, this.is_socket)
        };
        match written {
            Ok(n) => {
                let done = this.state.borrow_mut(py).buffer.consume(n);
                drop(done);
            }
            Err(e) if sys::would_block(&e) => return Ok(()),
            Err(e) => {
                let dropped = {
                    let mut st = this.state.borrow_mut(py);
                    st.conn_lost += 1;
                    st.buffer.take_all()
                };
                drop(dropped);
                WritePipeTransport::stop_writing(slf);
                return WritePipeTransport::fatal_error(
                    slf,
                    os_error(e),
                    "Fatal write error on pipe transport",
                );
            }
        }
        if !this.state.borrow(py).buffer.is_empty() {
            return Ok(());
        }
        WritePipeTransport::stop_writing(slf);
        // resume_writing() may write more (into the emptied buffer).
        WritePipeTransport::maybe_resume_protocol(slf)?;
        let finished = {
            let st = this.state.borrow(py);
            st.closing && st.buffer.is_empty() && !st.lost
        };
        if finished {
            WritePipeTransport::stop_watching_peer(slf);
            this.state.borrow_mut(py).lost = true;
            WritePipeTransport::connection_lost(slf, py.None().into_bound(py))?;
        }
        Ok(())
    }

    fn maybe_pause_protocol(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let protocol = {
            let mut st = this.state.borrow_mut(py);
            if st.buffer.len() <= st.high_water || st.protocol_paused {
                return Ok(());
            }
            st.protocol_paused = true;
            st.protocol.as_ref().map(|p| p.clone_ref(py))
        };
        match protocol {
            Some(p) => call_flow_control(
                this.loop_.bind(py),
                p.bind(py),
                "pause_writing",
                this.wrapper(py),
            ),
            None => Ok(()),
        }
    }

    fn maybe_resume_protocol(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let protocol = {
            let mut st = this.state.borrow_mut(py);
            if !st.protocol_paused || st.buffer.len() > st.low_water {
                return Ok(());
            }
            st.protocol_paused = false;
            st.protocol.as_ref().map(|p| p.clone_ref(py))
        };
        match protocol {
            Some(p) => call_flow_control(
                this.loop_.bind(py),
                p.bind(py),
                "resume_writing",
                this.wrapper(py),
            ),
            None => Ok(()),
        }
    }

    fn connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        // The fd must leave epoll before the pipe closes (and its number can be reused).
        WritePipeTransport::stop_writing(slf);
        WritePipeTransport::stop_watching_peer(slf);
        let (protocol, pipe, wrapper, dropped) = {
            let mut st = this.state.borrow_mut(py);
            (
                st.protocol.take(),
                st.pipe.take(),
                st.wrapper.take(),
                st.buffer.take_all(),
            )
        };
        drop(dropped);
        let result = finish(py, protocol, pipe, &exc);
        drop(wrapper);
        result
    }
}

#[pymethods]
impl WritePipeTransport {
    /// `WritePipeTransport(loop, wrapper, pipe, protocol, fd, is_socket, watch_peer)`: `fd`
    /// is `pipe.fileno()`, already checked and made non-blocking; `watch_peer` says whether
    /// the fd reports its peer closing as readability (pipes and sockets).
    #[new]
    fn new(
        event_loop: &Bound<'_, LoopCore>,
        wrapper: &Bound<'_, PyAny>,
        pipe: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        fd: RawFd,
        is_socket: bool,
        watch_peer: bool,
    ) -> Self {
        WritePipeTransport {
            loop_: event_loop.clone().unbind(),
            fd,
            is_socket,
            watch_peer,
            state: GilCell::new(WriteState {
                wrapper: Some(wrapper.clone().unbind()),
                pipe: Some(pipe.clone().unbind()),
                protocol: Some(protocol.clone().unbind()),
                buffer: WriteBuffer::default(),
                high_water: DEFAULT_HIGH_WATER as usize,
                low_water: DEFAULT_HIGH_WATER as usize / 4,
                protocol_paused: false,
                conn_lost: 0,
                closing: false,
                writing: false,
                watching_peer: false,
                lost: false,
            }),
        }
    }

    /// Schedules `connection_made`, then (pipes and sockets) watching for the peer closing,
    /// then the waiter's result.
    #[pyo3(signature = (waiter=None))]
    fn _begin(slf: &Bound<'_, Self>, waiter: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        begin(
            this.loop_.bind(py),
            slf.as_any(),
            this.protocol(py),
            this.wrapper(py),
            this.watch_peer.then_some("_watch_peer"),
            waiter,
        )
    }

    fn _watch_peer(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut st = this.state.borrow_mut(py);
            if st.closing || st.watching_peer {
                return Ok(());
            }
            st.watching_peer = true;
        }
        let result = watch(
            this.loop_.bind(py),
            this.fd,
            Direction::Read,
            slf.as_any(),
            WritePipeTransport::on_peer_closed,
        );
        if result.is_err() {
            this.state.borrow_mut(py).watching_peer = false;
        }
        result
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        WritePipeTransport::connection_lost(slf, exc)
    }

    /// Writes `data` (bytes, bytearray or memoryview), buffering what the pipe cannot take
    /// now. After close() or a failure, data is dropped (with a warning after a few writes).
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let chunk = to_chunk(data)?;
        if chunk.as_ref().is_empty() {
            return Ok(());
        }
        let buffered = {
            let mut st = this.state.borrow_mut(py);
            if st.conn_lost > 0 || st.closing {
                let warn = st.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES;
                st.conn_lost += 1;
                drop(st);
                drop(chunk);
                if warn {
                    stdlib::asyncio_logger(py)?.call_method1(
                        "warning",
                        ("pipe closed by peer or os.write(pipe, data) raised exception.",),
                    )?;
                }
                return Ok(());
            }
            !st.buffer.is_empty()
        };
        let mut written = 0;
        if !buffered {
            match this.write_now(chunk.as_ref()) {
                Ok(n) if n == chunk.as_ref().len() => return Ok(()),
                Ok(n) => written = n,
                Err(e) if sys::would_block(&e) => {}
                Err(e) => {
                    this.state.borrow_mut(py).conn_lost += 1;
                    drop(chunk);
                    return WritePipeTransport::fatal_error(
                        slf,
                        os_error(e),
                        "Fatal write error on pipe transport",
                    );
                }
            }
            WritePipeTransport::start_writing(slf)?;
        }
        this.state.borrow_mut(py).buffer.push(chunk, written);
        WritePipeTransport::maybe_pause_protocol(slf)
    }

    /// Writes the concatenation of `list_of_data`.
    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let joined = PyBytes::new(slf.py(), b"").call_method1("join", (list_of_data,))?;
        WritePipeTransport::write(slf, &joined)
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes the pipe once the buffered data is written; `connection_lost(None)` follows.
    fn write_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let flushed = {
            let mut st = slf.get().state.borrow_mut(py);
            if st.closing {
                return Ok(());
            }
            st.closing = true;
            st.buffer.is_empty()
        };
        if flushed {
            WritePipeTransport::stop_watching_peer(slf);
            WritePipeTransport::schedule_connection_lost(slf, None)?;
        }
        Ok(())
    }

    /// `write_eof()`: a write pipe has nothing else to close.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let open = {
            let st = slf.get().state.borrow(slf.py());
            st.pipe.is_some() && !st.closing
        };
        if open {
            WritePipeTransport::write_eof(slf)?;
        }
        Ok(())
    }

    /// Closes at once, dropping buffered data; `connection_lost(None)` follows.
    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        WritePipeTransport::close_with(slf, None)
    }

    /// asyncio's `_fatal_error(exc, message)`, for the loop's own helpers.
    #[pyo3(signature = (exc, message="Fatal error on pipe transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        WritePipeTransport::fatal_error(slf, PyErr::from_value(exc), message)
    }

    fn is_closing(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).closing
    }

    fn get_write_buffer_size(&self, py: Python<'_>) -> usize {
        self.state.borrow(py).buffer.len()
    }

    fn get_write_buffer_limits(&self, py: Python<'_>) -> (usize, usize) {
        let st = self.state.borrow(py);
        (st.low_water, st.high_water)
    }

    /// asyncio's defaults: high 64 KiB, low a quarter of high; `high >= low >= 0`.
    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(
        slf: &Bound<'_, Self>,
        high: Option<&Bound<'_, PyAny>>,
        low: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let (high, low) = water_marks(py, high, low)?;
        {
            let mut st = slf.get().state.borrow_mut(py);
            st.high_water = high;
            st.low_water = low;
        }
        WritePipeTransport::maybe_pause_protocol(slf)
    }

    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol(py)
    }

    fn set_protocol(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) {
        let old = self
            .state
            .borrow_mut(py)
            .protocol
            .replace(protocol.clone().unbind());
        drop(old);
    }

    #[getter]
    fn _fd(&self) -> RawFd {
        self.fd
    }

    #[getter]
    fn _pipe(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state.borrow(py).pipe.as_ref().map(|p| p.clone_ref(py))
    }

    #[getter]
    fn _writing(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).writing
    }

    #[getter]
    fn _protocol_paused(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).protocol_paused
    }

    #[getter]
    fn _conn_lost(&self, py: Python<'_>) -> u32 {
        self.state.borrow(py).conn_lost
    }

    /// Forgets the pipe without telling the protocol, closing it if `close` (the wrapper's
    /// `__del__`, for a transport nobody closed).
    #[pyo3(signature = (close=true))]
    fn _release_pipe(slf: &Bound<'_, Self>, close: bool) -> PyResult<()> {
        let py = slf.py();
        WritePipeTransport::stop_writing(slf);
        WritePipeTransport::stop_watching_peer(slf);
        let pipe = slf.get().state.borrow_mut(py).pipe.take();
        if let (Some(pipe), true) = (&pipe, close) {
            pipe.bind(py).call_method0("close")?;
        }
        drop(pipe);
        Ok(())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        core_repr(py, self.wrapper(py), "WritePipeTransport", self.fd)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        let Some(st) = self.state.try_borrow_unguarded() else {
            return Ok(());
        };
        for obj in [&st.wrapper, &st.pipe, &st.protocol].into_iter().flatten() {
            visit.call(obj)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken = self
            .state
            .try_borrow_mut_unguarded()
            .map(|mut st| (st.wrapper.take(), st.protocol.take()));
        drop(taken);
    }
}
