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

use std::os::fd::RawFd;

use pyo3::exceptions::{PyBrokenPipeError, PyBufferError, PyOSError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::base::{self, FlowControlled, Lifecycle, LoopFd, NativeTransport, ReadingTransport};
use super::flow_control::FlowControl;
use super::report::log_transport;
use super::stream::{write_chunk, Chunk, NOT_CONTIGUOUS, NOT_CONTIGUOUS_WRITE};
use super::write_buffer::WriteBuffer;
use crate::core::event_loop::LoopCore;
use crate::core::gil_cell::GilCell;
use crate::core::io_table::{Direction, NativeFn};
use crate::errors::os_error;
use crate::sys;

fn is_eio(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyOSError>(py)
        && err
            .value(py)
            .getattr("errno")
            .and_then(|e| e.extract::<i32>())
            .is_ok_and(|errno| errno == sys::EIO)
}

// ---------------------------------------------------------------------------------------
// The read side.

pub struct ReadState {
    /// The `asyncio.ReadTransport` the protocol sees; dropped once the connection is lost.
    wrapper: Option<Py<PyAny>>,
    pipe: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    /// `protocol.data_received`, looked up once per protocol.
    data_received: Option<Py<PyAny>>,
    /// `closing`: close() was called, EOF was read or the transport failed.
    lifecycle: Lifecycle,
    /// connection_lost is scheduled (or done).
    lost: bool,
}

/// The native half of `ferroloop.pipes.ReadPipeTransport`.
#[pyclass(frozen, module = "ferroloop._ferroloop", name = "ReadPipeTransport")]
pub struct ReadPipeTransport {
    io: LoopFd,
    state: GilCell<ReadState>,
}

impl NativeTransport for ReadPipeTransport {
    base::native_transport_fields!(ReadState);

    fn fileobj_of(st: &ReadState) -> Option<&Py<PyAny>> {
        st.pipe.as_ref()
    }

    const OWNS_FD: bool = false;

    /// EIO is what a pty reports once its other side is closed.
    fn is_quiet_error(py: Python<'_>, err: &PyErr) -> bool {
        is_eio(py, err)
    }

    fn close_after_error(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        ReadPipeTransport::close_with(slf, Some(exc))
    }
}

impl ReadingTransport for ReadPipeTransport {
    const ON_READABLE: NativeFn = ReadPipeTransport::on_readable;

    fn lifecycle(st: &mut ReadState) -> &mut Lifecycle {
        &mut st.lifecycle
    }
}

impl ReadPipeTransport {
    /// asyncio's `_close`: stop reading, then `connection_lost(exc)` on the next iteration.
    fn close_with(slf: &Bound<'_, Self>, exc: Option<Py<PyAny>>) -> PyResult<()> {
        let already = {
            let mut st = slf.get().state.borrow_mut(slf.py());
            st.lifecycle.closing = true;
            std::mem::replace(&mut st.lost, true)
        };
        base::stop_reading(slf);
        if already {
            return Ok(());
        }
        base::schedule_connection_lost(slf, exc)
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
            if !st.lifecycle.reading || st.lifecycle.closing {
                return Ok(());
            }
        }
        let _context = this.io.enter_context(py);
        let read = {
            let fd = this.io.fd(py);
            lp.get()
                .read_bytes(py, usize::MAX, |buf| Ok((sys::read(fd, buf)?, ())))
                .map(|(data, ())| (data.as_bytes().len(), data.unbind()))
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
                    None => match this.protocol_obj(py) {
                        // No data_received: raise what asyncio's call would.
                        Some(p) => p.bind(py).call_method1("data_received", (data,)).map(drop),
                        None => Ok(()),
                    },
                }
            }
            Err(e) if sys::would_block(&e) => Ok(()),
            Err(e) => base::fatal_error(slf, os_error(e), "Fatal read error on pipe transport"),
        }
    }

    fn on_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.io.debug(py) {
            log_transport(py, "info", "%r was closed by peer", this.wrapper(py))?;
        }
        let protocol = this.protocol_obj(py);
        let already = {
            let mut st = this.state.borrow_mut(py);
            st.lifecycle.closing = true;
            std::mem::replace(&mut st.lost, true)
        };
        base::stop_reading(slf);
        if already {
            return Ok(());
        }
        if let Some(protocol) = protocol {
            this.io
                .schedule(protocol.bind(py), "eof_received", PyTuple::empty(py))?;
        }
        base::schedule_connection_lost(slf, None)
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
    /// `ReadPipeTransport(loop, wrapper, pipe, protocol, fd, context)`: `fd` is
    /// `pipe.fileno()`, already checked and made non-blocking. The transport reads a duplicate
    /// of it, so the caller closing `pipe` cannot redirect it (see `LoopFd`). `context`: where
    /// the protocol's callbacks run (None: a copy of the current context). The wrapper calls
    /// `_begin`.
    #[new]
    #[pyo3(signature = (event_loop, wrapper, pipe, protocol, fd, context=None))]
    fn new(
        event_loop: &Bound<'_, LoopCore>,
        wrapper: &Bound<'_, PyAny>,
        pipe: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        fd: RawFd,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(ReadPipeTransport {
            io: LoopFd::new(event_loop, fd, true, context)?,
            state: GilCell::new(ReadState {
                wrapper: Some(wrapper.clone().unbind()),
                pipe: Some(pipe.clone().unbind()),
                protocol: Some(protocol.clone().unbind()),
                data_received: protocol.getattr("data_received").ok().map(Bound::unbind),
                lifecycle: Lifecycle::default(),
                lost: false,
            }),
        })
    }

    /// Schedules `connection_made`, then the start of reading, then the waiter's result.
    #[pyo3(signature = (waiter=None))]
    fn _begin(slf: &Bound<'_, Self>, waiter: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        base::begin(slf, Some("_start_reading"), waiter, false)
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        base::retire(slf);
        base::stop_reading(slf);
        let (protocol, pipe, method, wrapper) = {
            let mut st = this.state.borrow_mut(py);
            (
                st.protocol.take(),
                st.pipe.take(),
                st.data_received.take(),
                st.wrapper.take(),
            )
        };
        let result = base::finish(&this.io, py, protocol, pipe, &exc);
        drop((method, wrapper));
        result
    }

    /// Stops reading; `connection_lost(None)` follows on the next iteration.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.get().state.borrow(slf.py()).lifecycle.closing {
            return Ok(());
        }
        ReadPipeTransport::close_with(slf, None)
    }

    /// asyncio's `_fatal_error(exc, message)`, for the loop's own helpers.
    #[pyo3(signature = (exc, message="Fatal error on pipe transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        base::fatal_error(slf, PyErr::from_value(exc), message)
    }

    fn set_protocol(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) {
        self.set_protocol_inner(py, protocol);
    }

    /// The pipe object while it is open (until connection_lost).
    #[getter]
    fn _pipe(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state.borrow(py).pipe.as_ref().map(|p| p.clone_ref(py))
    }

    /// Whether the pipe is still open (connection_lost has not run yet).
    #[getter]
    fn _open(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).pipe.is_some()
    }

    /// Forgets the pipe without closing it or telling the protocol: `close` (the wrapper's
    /// `__del__`, for a transport nobody closed) also closes it.
    #[pyo3(signature = (close=true))]
    fn _release(slf: &Bound<'_, Self>, close: bool) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        base::retire(slf);
        base::stop_reading(slf);
        this.io.release(py);
        let pipe = this.state.borrow_mut(py).pipe.take();
        if let (Some(pipe), true) = (&pipe, close) {
            pipe.bind(py).call_method0("close")?;
        }
        drop(pipe);
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.io.traverse(&visit)?;
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
        self.io.clear_context();
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

base::common_pymethods!(ReadPipeTransport);
base::reading_pymethods!(ReadPipeTransport);

// ---------------------------------------------------------------------------------------
// The write side.

pub struct WriteState {
    /// The `asyncio.WriteTransport` the protocol sees; dropped once the connection is lost.
    wrapper: Option<Py<PyAny>>,
    pipe: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    buffer: WriteBuffer<Chunk>,
    flow: FlowControl,
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
    io: LoopFd,
    /// Sockets are written with `send(MSG_NOSIGNAL)`, other fds with `write`.
    is_socket: bool,
    /// Pipes and sockets report the peer closing as readability; character devices do not.
    watch_peer: bool,
    state: GilCell<WriteState>,
}

impl NativeTransport for WritePipeTransport {
    base::native_transport_fields!(WriteState);

    fn fileobj_of(st: &WriteState) -> Option<&Py<PyAny>> {
        st.pipe.as_ref()
    }

    const OWNS_FD: bool = false;

    fn is_quiet_error(py: Python<'_>, err: &PyErr) -> bool {
        err.is_instance_of::<PyOSError>(py)
    }

    fn close_after_error(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        WritePipeTransport::close_with(slf, Some(exc))
    }
}

impl FlowControlled for WritePipeTransport {
    fn flow_control(st: &mut WriteState) -> (&mut FlowControl, usize) {
        (&mut st.flow, st.buffer.len())
    }
}

impl WritePipeTransport {
    fn start_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        base::watch_with(
            slf,
            Direction::Write,
            WritePipeTransport::on_writable,
            |st| &mut st.writing,
        )
    }

    fn stop_writing(slf: &Bound<'_, Self>) {
        base::unwatch_with(slf, Direction::Write, |st| &mut st.writing);
    }

    fn stop_watching_peer(slf: &Bound<'_, Self>) {
        base::unwatch_with(slf, Direction::Read, |st| &mut st.watching_peer);
    }

    fn schedule_connection_lost(slf: &Bound<'_, Self>, exc: Option<Py<PyAny>>) -> PyResult<()> {
        if std::mem::replace(&mut slf.get().state.borrow_mut(slf.py()).lost, true) {
            return Ok(());
        }
        base::schedule_connection_lost(slf, exc)
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

    fn write_now(&self, py: Python<'_>, data: &[u8]) -> std::io::Result<usize> {
        sys::send_or_write(self.io.fd(py), data, self.is_socket)
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
        let _context = this.io.enter_context(py);
        if this.io.debug(py) {
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
        let _context = this.io.enter_context(py);
        let written = {
            let st = this.state.borrow(py);
            if !st.writing || st.buffer.is_empty() {
                return Ok(());
            }
            st.buffer.write_to(this.io.fd(py), this.is_socket)
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
                return base::fatal_error(slf, os_error(e), "Fatal write error on pipe transport");
            }
        }
        if !this.state.borrow(py).buffer.is_empty() {
            return Ok(());
        }
        WritePipeTransport::stop_writing(slf);
        // resume_writing() may write more (into the emptied buffer).
        base::maybe_resume_protocol(slf)?;
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

    fn connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        base::retire(slf);
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
        let result = base::finish(&this.io, py, protocol, pipe, &exc);
        drop(wrapper);
        result
    }
}

#[pymethods]
impl WritePipeTransport {
    /// `WritePipeTransport(loop, wrapper, pipe, protocol, fd, is_socket, watch_peer,
    /// context)`: `fd` is `pipe.fileno()`, already checked and made non-blocking (the
    /// transport writes a duplicate of it, see `LoopFd`); `watch_peer` says whether the fd
    /// reports its peer closing as readability (pipes and sockets); `context` as for
    /// `ReadPipeTransport`.
    #[new]
    #[pyo3(signature = (event_loop, wrapper, pipe, protocol, fd, is_socket, watch_peer, context=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        event_loop: &Bound<'_, LoopCore>,
        wrapper: &Bound<'_, PyAny>,
        pipe: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        fd: RawFd,
        is_socket: bool,
        watch_peer: bool,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(WritePipeTransport {
            io: LoopFd::new(event_loop, fd, true, context)?,
            is_socket,
            watch_peer,
            state: GilCell::new(WriteState {
                wrapper: Some(wrapper.clone().unbind()),
                pipe: Some(pipe.clone().unbind()),
                protocol: Some(protocol.clone().unbind()),
                buffer: WriteBuffer::default(),
                flow: FlowControl::default(),
                conn_lost: 0,
                closing: false,
                writing: false,
                watching_peer: false,
                lost: false,
            }),
        })
    }

    /// Schedules `connection_made`, then (pipes and sockets) watching for the peer closing,
    /// then the waiter's result.
    #[pyo3(signature = (waiter=None))]
    fn _begin(slf: &Bound<'_, Self>, waiter: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        base::begin(
            slf,
            slf.get().watch_peer.then_some("_watch_peer"),
            waiter,
            false,
        )
    }

    fn _watch_peer(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.get().state.borrow(slf.py()).closing {
            return Ok(());
        }
        base::watch_with(
            slf,
            Direction::Read,
            WritePipeTransport::on_peer_closed,
            |st| &mut st.watching_peer,
        )
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        WritePipeTransport::connection_lost(slf, exc)
    }

    /// Writes `data` (bytes, bytearray or memoryview), buffering what the pipe cannot take
    /// now. After close() or a failure, data is dropped (with a warning after a few writes).
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let chunk = write_chunk(data, false)?;
        let empty = match &chunk {
            Some(chunk) => chunk.as_ref().is_empty(),
            None => !data.is_truthy()?,
        };
        if empty {
            return Ok(());
        }
        let buffered = {
            let mut st = this.state.borrow_mut(py);
            if st.conn_lost > 0 || st.closing {
                let warn = base::count_lost_write(&mut st.conn_lost);
                drop(st);
                drop(chunk);
                if warn {
                    base::warn_lost_write(
                        py,
                        "pipe closed by peer or os.write(pipe, data) raised exception.",
                    )?;
                }
                return Ok(());
            }
            !st.buffer.is_empty()
        };
        let Some(chunk) = chunk else {
            // A strided memoryview: asyncio's os.write() of it fails with BufferError, a fatal
            // error of the transport; with data already waiting, its buffer refuses it with
            // TypeError instead.
            if buffered {
                return Err(PyTypeError::new_err(NOT_CONTIGUOUS_WRITE));
            }
            this.state.borrow_mut(py).conn_lost += 1;
            return base::fatal_error(
                slf,
                PyBufferError::new_err(NOT_CONTIGUOUS),
                "Fatal write error on pipe transport",
            );
        };
        let mut written = 0;
        if !buffered {
            match this.write_now(py, chunk.as_ref()) {
                Ok(n) if n == chunk.as_ref().len() => return Ok(()),
                Ok(n) => written = n,
                Err(e) if sys::would_block(&e) => {}
                Err(e) => {
                    this.state.borrow_mut(py).conn_lost += 1;
                    drop(chunk);
                    return base::fatal_error(
                        slf,
                        os_error(e),
                        "Fatal write error on pipe transport",
                    );
                }
            }
            WritePipeTransport::start_writing(slf)?;
        }
        this.state.borrow_mut(py).buffer.push(chunk, written);
        base::maybe_pause_protocol(slf)
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
        base::fatal_error(slf, PyErr::from_value(exc), message)
    }

    fn is_closing(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).closing
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
    fn _pipe(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state.borrow(py).pipe.as_ref().map(|p| p.clone_ref(py))
    }

    /// Whether the pipe is still open (connection_lost has not run yet).
    #[getter]
    fn _open(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).pipe.is_some()
    }

    #[getter]
    fn _writing(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).writing
    }

    #[getter]
    fn _conn_lost(&self, py: Python<'_>) -> u32 {
        self.state.borrow(py).conn_lost
    }

    /// Forgets the pipe without telling the protocol, closing it if `close` (the wrapper's
    /// `__del__`, for a transport nobody closed).
    #[pyo3(signature = (close=true))]
    fn _release(slf: &Bound<'_, Self>, close: bool) -> PyResult<()> {
        let py = slf.py();
        WritePipeTransport::stop_writing(slf);
        WritePipeTransport::stop_watching_peer(slf);
        slf.get().io.release(py);
        let pipe = slf.get().state.borrow_mut(py).pipe.take();
        if let (Some(pipe), true) = (&pipe, close) {
            pipe.bind(py).call_method0("close")?;
        }
        drop(pipe);
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.io.traverse(&visit)?;
        let Some(st) = self.state.try_borrow_unguarded() else {
            return Ok(());
        };
        for obj in [&st.wrapper, &st.pipe, &st.protocol].into_iter().flatten() {
            visit.call(obj)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        self.io.clear_context();
        let taken = self
            .state
            .try_borrow_mut_unguarded()
            .map(|mut st| (st.wrapper.take(), st.protocol.take()));
        drop(taken);
    }
}

base::common_pymethods!(WritePipeTransport);
base::flow_control_pymethods!(WritePipeTransport);
