//! The stream transport (TCP and Unix sockets): asyncio's `_SelectorSocketTransport`
//! contract, with reads and writes done in Rust.
//!
//! The object protocols see is the Python class `ferroloop.transports.SocketTransport` (an
//! `asyncio.Transport`, which a native class cannot be because of `BaseTransport`'s
//! `__slots__`); it owns one `StreamTransport` and binds the hot methods (`write`,
//! `is_closing`, ...) straight to it. Reads and writes run as native watchers: one `recv`
//! per readiness event into the loop's buffer, writes tried at once and only the rest
//! buffered, flushed with one vectored send.

use std::io::IoSlice;
use std::os::fd::RawFd;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{
    PyBufferError, PyConnectionError, PyKeyboardInterrupt, PyOSError, PyRuntimeError, PySystemExit,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::write_buffer::WriteBuffer;
use crate::core::event_loop::LoopCore;
use crate::core::gil_cell::GilCell;
use crate::core::io_table::{Direction, NativeWatcher};
use crate::core::stdlib;
use crate::errors::os_error;
use crate::sys;

/// asyncio's `max_size`: the most one read hands to `data_received`.
const MAX_READ: usize = 256 * 1024;
/// asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES: writes after the connection was lost are
/// dropped, with a warning once this many have been.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;
use super::flow_control::DEFAULT_HIGH_WATER;

/// A Python `bytes` kept by reference in the write buffer: immutable, so its memory stays
/// valid and unchanged while we hold it.
pub struct SharedBytes {
    _owner: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointer is into an immutable bytes object owned by `_owner`; it is only read,
// under the GIL.
unsafe impl Send for SharedBytes {}

pub enum Chunk {
    Shared(SharedBytes),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        match self {
            // SAFETY: see SharedBytes.
            Chunk::Shared(b) => unsafe { std::slice::from_raw_parts(b.ptr, b.len) },
            Chunk::Owned(v) => v,
        }
    }
}

/// The protocol and the bound methods the read path calls, looked up once.
struct Protocol {
    obj: Py<PyAny>,
    /// `data_received`, or None for a BufferedProtocol.
    data_received: Option<Py<PyAny>>,
    /// `(get_buffer, buffer_updated)` of a BufferedProtocol.
    buffered: Option<(Py<PyAny>, Py<PyAny>)>,
}

impl Protocol {
    fn new(obj: &Bound<'_, PyAny>) -> PyResult<Protocol> {
        let py = obj.py();
        let buffered_type = stdlib::buffered_protocol_type(py)?;
        if obj.is_instance(buffered_type)? {
            Ok(Protocol {
                obj: obj.clone().unbind(),
                data_received: None,
                buffered: Some((
                    obj.getattr("get_buffer")?.unbind(),
                    obj.getattr("buffer_updated")?.unbind(),
                )),
            })
        } else {
            Ok(Protocol {
                obj: obj.clone().unbind(),
                data_received: Some(obj.getattr("data_received")?.unbind()),
                buffered: None,
            })
        }
    }
}

struct State {
    /// The `asyncio.Transport` the protocol sees; dropped once the connection is lost.
    wrapper: Option<Py<PyAny>>,
    sock: Option<Py<PyAny>>,
    protocol: Option<Protocol>,
    server: Option<Py<PyAny>>,
    buffer: WriteBuffer<Chunk>,
    high_water: usize,
    low_water: usize,
    /// close() was called (or the connection failed): no more reading.
    closing: bool,
    /// write_eof() was called.
    eof: bool,
    /// pause_reading() is in force.
    paused: bool,
    /// The reader is installed: a read event queued before it was removed is ignored.
    reading: bool,
    /// pause_writing() was called on the protocol and resume_writing() not yet.
    protocol_paused: bool,
    /// Set when connection_lost is scheduled; counts writes attempted after that.
    conn_lost: u32,
    /// sendfile in progress: completed when the write buffer is empty.
    empty_waiter: Option<Py<PyAny>>,
}

#[pyclass(frozen, module = "ferroloop._ferroloop", name = "StreamTransport")]
pub struct StreamTransport {
    loop_: Py<LoopCore>,
    fd: RawFd,
    state: GilCell<State>,
}

fn is_fatal_signal(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py)
}

/// What a read produced.
enum ReadOutcome {
    Data(Py<PyAny>),
    Count(usize),
    Eof,
    NotReady,
    /// The error and asyncio's message for it.
    Failed(PyErr, &'static str),
}

const READ_FAILED: &str = "Fatal read error on socket transport";

impl StreamTransport {
    fn loop_ref<'py>(&self, py: Python<'py>) -> &Bound<'py, LoopCore> {
        self.loop_.bind(py)
    }

    fn wrapper(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state
            .borrow(py)
            .wrapper
            .as_ref()
            .map(|w| w.clone_ref(py))
    }

    fn protocol_obj(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state
            .borrow(py)
            .protocol
            .as_ref()
            .map(|p| p.obj.clone_ref(py))
    }

    fn watch(slf: &Bound<'_, Self>, direction: Direction) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let on_ready: crate::core::io_table::NativeFn = match direction {
            Direction::Read => StreamTransport::on_readable as crate::core::io_table::NativeFn,
            Direction::Write => StreamTransport::on_writable as crate::core::io_table::NativeFn,
        };
        let watcher = NativeWatcher {
            target: slf.clone().into_any().unbind(),
            on_ready,
        };
        this.loop_ref(py)
            .get()
            .set_native_watcher(py, this.fd, direction, watcher)
    }

    fn unwatch(&self, py: Python<'_>, direction: Direction) {
        let lp = self.loop_ref(py).get();
        if !lp.is_closed_flag(py) {
            // Cannot fail in a way the transport could act on (see IoTable::remove_watcher).
            let _ = lp.clear_watcher(py, self.fd, direction);
        }
    }

    fn start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        {
            let mut st = slf.get().state.borrow_mut(py);
            if st.closing || st.paused || st.reading {
                return Ok(());
            }
            st.reading = true;
        }
        StreamTransport::watch(slf, Direction::Read)
    }

    fn stop_reading(&self, py: Python<'_>) {
        let was_reading = std::mem::replace(&mut self.state.borrow_mut(py).reading, false);
        if was_reading {
            self.unwatch(py, Direction::Read);
        }
    }

    fn schedule(slf: &Bound<'_, Self>, method: &str, args: Bound<'_, PyTuple>) -> PyResult<()> {
        let py = slf.py();
        let callback = slf.getattr(method)?;
        LoopCore::schedule_callback(slf.get().loop_ref(py), callback, args)
    }

    /// asyncio's `_fatal_error`: OSErrors are the peer's doing and only logged in debug
    /// mode; anything else goes to the exception handler. Then the connection is dropped.
    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.loop_ref(py);
        let wrapper = this.wrapper(py);
        let is_os_error = err.is_instance_of::<PyOSError>(py);
        // into_value keeps the traceback on the exception (value() would drop it).
        let exc = err.into_value(py).into_bound(py);
        if is_os_error {
            if lp.get().debug_enabled(py) {
                let kwargs = PyDict::new(py);
                kwargs.set_item("exc_info", &exc)?;
                stdlib::asyncio_logger(py)?.call_method(
                    "debug",
                    ("%r: %s", &wrapper, message),
                    Some(&kwargs),
                )?;
            }
        } else {
            let context = PyDict::new(py);
            context.set_item("message", message)?;
            context.set_item("exception", &exc)?;
            context.set_item("transport", &wrapper)?;
            context.set_item("protocol", this.protocol_obj(py))?;
            lp.call_method1("call_exception_handler", (context,))?;
        }
        StreamTransport::force_close(slf, Some(exc.into_any().unbind()))
    }

    /// Reports an error from a protocol callback (never the loop's business to raise it).
    fn protocol_failed(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        if is_fatal_signal(slf.py(), &err) {
            return Err(err);
        }
        StreamTransport::fatal_error(slf, err, message)
    }

    fn force_close(slf: &Bound<'_, Self>, exc: Option<Py<PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (dropped, had_buffer, was_closing) = {
            let mut st = this.state.borrow_mut(py);
            if st.conn_lost > 0 {
                return Ok(());
            }
            let had_buffer = !st.buffer.is_empty();
            let dropped = st.buffer.take_all();
            let was_closing = std::mem::replace(&mut st.closing, true);
            st.conn_lost += 1;
            (dropped, had_buffer, was_closing)
        };
        drop(dropped);
        if had_buffer {
            this.unwatch(py, Direction::Write);
        }
        if !was_closing {
            this.stop_reading(py);
        }
        let exc = exc.unwrap_or_else(|| py.None());
        StreamTransport::schedule(slf, "_call_connection_lost", PyTuple::new(py, [exc])?)
    }

    fn read_once(&self, py: Python<'_>) -> ReadOutcome {
        let buffered = self
            .state
            .borrow(py)
            .protocol
            .as_ref()
            .and_then(|p| p.buffered.as_ref().map(|(get, _)| get.clone_ref(py)));
        match buffered {
            None => {
                let mut buffer = self.loop_ref(py).get().read_buffer(py);
                let len = buffer.len().min(MAX_READ);
                match sys::recv(self.fd, &mut buffer[..len]) {
                    Ok(0) => ReadOutcome::Eof,
                    // Bytes objects are not GC-tracked: making one runs no Python code.
                    Ok(n) => ReadOutcome::Data(PyBytes::new(py, &buffer[..n]).into_any().unbind()),
                    Err(e) if sys::would_block(&e) => ReadOutcome::NotReady,
                    Err(e) => ReadOutcome::Failed(os_error(e), READ_FAILED),
                }
            }
            Some(get_buffer) => {
                let target = match get_buffer.bind(py).call1((-1,)).and_then(|buf| {
                    let view = PyUntypedBuffer::get(&buf)?;
                    if view.len_bytes() == 0 {
                        return Err(PyRuntimeError::new_err(
                            "get_buffer() returned an empty buffer",
                        ));
                    }
                    if view.readonly() || !view.is_c_contiguous() {
                        return Err(PyTypeError::new_err(
                            "get_buffer() must return a writable contiguous buffer",
                        ));
                    }
                    Ok(view)
                }) {
                    Ok(view) => view,
                    Err(err) => {
                        return ReadOutcome::Failed(
                            err,
                            "Fatal error: protocol.get_buffer() call failed.",
                        )
                    }
                };
                // SAFETY: the buffer is held for the call and writable for len_bytes().
                match unsafe { sys::recv_raw(self.fd, target.buf_ptr().cast(), target.len_bytes()) }
                {
                    Ok(0) => ReadOutcome::Eof,
                    Ok(n) => ReadOutcome::Count(n),
                    Err(e) if sys::would_block(&e) => ReadOutcome::NotReady,
                    Err(e) => ReadOutcome::Failed(os_error(e), READ_FAILED),
                }
            }
        }
    }

    /// The fd is readable: one read, handed to the protocol.
    fn on_readable(lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = lp.py();
        // SAFETY: registered only with a StreamTransport target.
        let slf = unsafe { target.cast_unchecked::<StreamTransport>() };
        let this = slf.get();
        {
            let st = this.state.borrow(py);
            if st.conn_lost > 0 || !st.reading {
                return Ok(());
            }
        }
        match this.read_once(py) {
            ReadOutcome::NotReady => Ok(()),
            ReadOutcome::Data(data) => {
                let method = this
                    .state
                    .borrow(py)
                    .protocol
                    .as_ref()
                    .and_then(|p| p.data_received.as_ref().map(|m| m.clone_ref(py)));
                let Some(method) = method else { return Ok(()) };
                match method.bind(py).call1((data,)) {
                    Ok(_) => Ok(()),
                    Err(err) => StreamTransport::protocol_failed(
                        slf,
                        err,
                        "Fatal error: protocol.data_received() call failed.",
                    ),
                }
            }
            ReadOutcome::Count(n) => {
                let method = this
                    .state
                    .borrow(py)
                    .protocol
                    .as_ref()
                    .and_then(|p| p.buffered.as_ref().map(|(_, m)| m.clone_ref(py)));
                let Some(method) = method else { return Ok(()) };
                match method.bind(py).call1((n,)) {
                    Ok(_) => Ok(()),
                    Err(err) => StreamTransport::protocol_failed(
                        slf,
                        err,
                        "Fatal error: protocol.buffer_updated() call failed.",
                    ),
                }
            }
            ReadOutcome::Eof => StreamTransport::on_eof(slf),
            ReadOutcome::Failed(err, message) => {
                StreamTransport::protocol_failed(slf, err, message)
            }
        }
    }

    fn on_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.loop_ref(py).get().debug_enabled(py) {
            stdlib::asyncio_logger(py)?
                .call_method1("debug", ("%r received EOF", this.wrapper(py)))?;
        }
        let Some(protocol) = this.protocol_obj(py) else {
            return Ok(());
        };
        match protocol.bind(py).call_method0("eof_received") {
            Ok(keep_open) => {
                if keep_open.is_truthy()? {
                    // Half-closed: the protocol may still write, but nothing more can arrive.
                    this.stop_reading(py);
                    Ok(())
                } else {
                    StreamTransport::close_transport(slf)
                }
            }
            Err(err) => StreamTransport::protocol_failed(
                slf,
                err,
                "Fatal error: protocol.eof_received() call failed.",
            ),
        }
    }

    fn close_transport(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lose_now = {
            let mut st = this.state.borrow_mut(py);
            if st.closing {
                return Ok(());
            }
            st.closing = true;
            let lose_now = st.buffer.is_empty();
            if lose_now {
                st.conn_lost += 1;
            }
            lose_now
        };
        this.stop_reading(py);
        if lose_now {
            this.unwatch(py, Direction::Write);
            StreamTransport::schedule(
                slf,
                "_call_connection_lost",
                PyTuple::new(py, [py.None()])?,
            )?;
        }
        Ok(())
    }

    /// The fd is writable: flush as much of the buffer as the kernel takes.
    fn on_writable(lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = lp.py();
        // SAFETY: registered only with a StreamTransport target.
        let slf = unsafe { target.cast_unchecked::<StreamTransport>() };
        let this = slf.get();
        let sent = {
            let st = this.state.borrow(py);
            if st.conn_lost > 0 || st.buffer.is_empty() {
                return Ok(());
            }
            let mut slices: Vec<IoSlice<'_>> = Vec::new();
            st.buffer.io_slices(&mut slices);
            sys::send_vectored(this.fd, &slices, true)
        };
        match sent {
            Ok(n) => {
                let written = this.state.borrow_mut(py).buffer.consume(n);
                drop(written);
            }
            Err(e) if sys::would_block(&e) => return Ok(()),
            Err(e) => {
                this.unwatch(py, Direction::Write);
                let dropped = this.state.borrow_mut(py).buffer.take_all();
                drop(dropped);
                let err = os_error(e);
                let exc = err.clone_ref(py).into_value(py);
                StreamTransport::fatal_error(slf, err, "Fatal write error on socket transport")?;
                let waiter = this
                    .state
                    .borrow(py)
                    .empty_waiter
                    .as_ref()
                    .map(|w| w.clone_ref(py));
                if let Some(waiter) = waiter {
                    set_exception_unless_done(waiter.bind(py), exc.bind(py))?;
                }
                return Ok(());
            }
        }
        StreamTransport::maybe_resume_protocol(slf)?;
        StreamTransport::after_flush(slf)
    }

    /// The buffer may be empty now: stop watching for writability and finish what waited
    /// for it (sendfile, close, write_eof).
    fn after_flush(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (empty, closing, eof, waiter) = {
            let st = this.state.borrow(py);
            (
                st.buffer.is_empty(),
                st.closing,
                st.eof,
                st.empty_waiter.as_ref().map(|w| w.clone_ref(py)),
            )
        };
        if !empty {
            return Ok(());
        }
        this.unwatch(py, Direction::Write);
        if let Some(waiter) = waiter {
            waiter.bind(py).call_method1("set_result", (py.None(),))?;
        }
        if closing {
            StreamTransport::connection_lost(slf, py.None().into_bound(py))?;
        } else if eof {
            this.shutdown_write(py)?;
        }
        Ok(())
    }

    fn shutdown_write(&self, py: Python<'_>) -> PyResult<()> {
        let sock = self.state.borrow(py).sock.as_ref().map(|s| s.clone_ref(py));
        if let Some(sock) = sock {
            sock.bind(py).call_method1("shutdown", (libc::SHUT_WR,))?;
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
            st.protocol.as_ref().map(|p| p.obj.clone_ref(py))
        };
        let Some(protocol) = protocol else {
            return Ok(());
        };
        if let Err(err) = protocol.bind(py).call_method0("pause_writing") {
            StreamTransport::report_flow_control_error(
                slf,
                err,
                "protocol.pause_writing() failed",
            )?;
        }
        Ok(())
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
            st.protocol.as_ref().map(|p| p.obj.clone_ref(py))
        };
        let Some(protocol) = protocol else {
            return Ok(());
        };
        if let Err(err) = protocol.bind(py).call_method0("resume_writing") {
            StreamTransport::report_flow_control_error(
                slf,
                err,
                "protocol.resume_writing() failed",
            )?;
        }
        Ok(())
    }

    fn report_flow_control_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        if is_fatal_signal(py, &err) {
            return Err(err);
        }
        let this = slf.get();
        let context = PyDict::new(py);
        context.set_item("message", message)?;
        context.set_item("exception", err.into_value(py))?;
        context.set_item("transport", this.wrapper(py))?;
        context.set_item("protocol", this.protocol_obj(py))?;
        this.loop_ref(py)
            .call_method1("call_exception_handler", (context,))?;
        Ok(())
    }

    /// Sends `chunk` now if nothing is queued; queues what the kernel did not take.
    fn write_chunk(slf: &Bound<'_, Self>, chunk: Chunk) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut sent = 0;
        if this.state.borrow(py).buffer.is_empty() {
            let data = chunk.as_ref();
            match sys::send(this.fd, data) {
                Ok(n) if n == data.len() => return Ok(()),
                Ok(n) => sent = n,
                Err(e) if sys::would_block(&e) => {}
                Err(e) => {
                    return StreamTransport::fatal_error(
                        slf,
                        os_error(e),
                        "Fatal write error on socket transport",
                    )
                }
            }
            StreamTransport::watch(slf, Direction::Write)?;
        }
        this.state.borrow_mut(py).buffer.push(chunk, sent);
        StreamTransport::maybe_pause_protocol(slf)
    }

    fn set_protocol_inner(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let new = Protocol::new(protocol)?;
        let old = self.state.borrow_mut(py).protocol.replace(new);
        drop(old);
        Ok(())
    }

    fn connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (protocol, sock, server, waiter) = {
            let mut st = this.state.borrow_mut(py);
            st.reading = false;
            (
                st.protocol.take(),
                st.sock.take(),
                st.server.take(),
                st.empty_waiter.take(),
            )
        };
        // The fd must leave epoll before the socket closes (and its number can be reused).
        this.unwatch(py, Direction::Read);
        this.unwatch(py, Direction::Write);
        this.loop_ref(py).get().set_fd_owner(py, this.fd, None);
        let result = match &protocol {
            Some(p) => p
                .obj
                .bind(py)
                .call_method1("connection_lost", (&exc,))
                .map(drop),
            None => Ok(()),
        };
        if let Some(sock) = sock {
            sock.bind(py).call_method0("close")?;
        }
        if let Some(server) = server {
            server.bind(py).call_method0("_detach")?;
        }
        if let Some(waiter) = waiter {
            // A failed write may have completed it already (asyncio would raise
            // InvalidStateError here).
            let error = PyConnectionError::new_err("Connection is closed by peer").into_value(py);
            set_exception_unless_done(waiter.bind(py), error.bind(py))?;
        }
        let wrapper = this.state.borrow_mut(py).wrapper.take();
        drop((protocol, wrapper));
        result
    }
}

#[pymethods]
impl StreamTransport {
    /// `StreamTransport(loop, wrapper, sock, protocol, server)`; the wrapper calls `_begin`.
    #[new]
    #[pyo3(signature = (event_loop, wrapper, sock, protocol, server=None))]
    fn new(
        event_loop: &Bound<'_, LoopCore>,
        wrapper: &Bound<'_, PyAny>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        server: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let fd: RawFd = sock.call_method0("fileno")?.extract()?;
        if fd < 0 {
            return Err(PyValueError::new_err("the socket is closed"));
        }
        let transport = StreamTransport {
            loop_: event_loop.clone().unbind(),
            fd,
            state: GilCell::new(State {
                wrapper: Some(wrapper.clone().unbind()),
                sock: Some(sock.clone().unbind()),
                protocol: Some(Protocol::new(protocol)?),
                server: server.filter(|s| !s.is_none()).map(|s| s.clone().unbind()),
                buffer: WriteBuffer::default(),
                high_water: DEFAULT_HIGH_WATER as usize,
                low_water: DEFAULT_HIGH_WATER as usize / 4,
                closing: false,
                eof: false,
                paused: false,
                reading: false,
                protocol_paused: false,
                conn_lost: 0,
                empty_waiter: None,
            }),
        };
        Ok(transport)
    }

    /// Schedules `connection_made`, then the start of reading, then the waiter's result,
    /// in that order (asyncio's guarantee: no data_received before connection_made).
    #[pyo3(signature = (waiter=None))]
    fn _begin(slf: &Bound<'_, Self>, waiter: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (server, wrapper, protocol) = {
            let st = this.state.borrow(py);
            (
                st.server.as_ref().map(|s| s.clone_ref(py)),
                st.wrapper.as_ref().map(|w| w.clone_ref(py)),
                st.protocol.as_ref().map(|p| p.obj.clone_ref(py)),
            )
        };
        if let Some(server) = server {
            server.bind(py).call_method0("_attach")?;
        }
        this.loop_ref(py).get().set_fd_owner(
            py,
            this.fd,
            wrapper.as_ref().map(|w| w.clone_ref(py)),
        );
        let lp = this.loop_ref(py);
        if let (Some(protocol), Some(wrapper)) = (protocol, wrapper) {
            let connection_made = protocol.bind(py).getattr("connection_made")?;
            LoopCore::schedule_callback(lp, connection_made, PyTuple::new(py, [wrapper])?)?;
        }
        StreamTransport::schedule(slf, "_start_reading", PyTuple::empty(py))?;
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

    fn _start_reading(slf: &Bound<'_, Self>) -> PyResult<()> {
        StreamTransport::start_reading(slf)
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        StreamTransport::connection_lost(slf, exc)
    }

    /// Writes `data` (bytes, bytearray or memoryview), buffering what cannot go out now.
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let chunk = to_chunk(data)?;
        {
            let mut st = this.state.borrow_mut(py);
            if st.eof {
                return Err(PyRuntimeError::new_err(
                    "Cannot call write() after write_eof()",
                ));
            }
            if st.empty_waiter.is_some() {
                return Err(PyRuntimeError::new_err(
                    "unable to write; sendfile is in progress",
                ));
            }
            if chunk.as_ref().is_empty() {
                return Ok(());
            }
            if st.conn_lost > 0 {
                st.conn_lost += 1;
                let warn = st.conn_lost > LOG_THRESHOLD_FOR_CONNLOST_WRITES;
                drop(st);
                if warn {
                    stdlib::asyncio_logger(py)?
                        .call_method1("warning", ("socket.send() raised exception.",))?;
                }
                return Ok(());
            }
        }
        StreamTransport::write_chunk(slf, chunk)
    }

    /// Writes the concatenation of `list_of_data`.
    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let joined = PyBytes::new(py, b"").call_method1("join", (list_of_data,))?;
        StreamTransport::write(slf, &joined)
    }

    /// Closes the write side once the buffer is flushed; reading goes on.
    fn write_eof(&self, py: Python<'_>) -> PyResult<()> {
        let shutdown_now = {
            let mut st = self.state.borrow_mut(py);
            if st.closing || st.eof {
                return Ok(());
            }
            st.eof = true;
            st.buffer.is_empty()
        };
        if shutdown_now {
            self.shutdown_write(py)?;
        }
        Ok(())
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn is_closing(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).closing
    }

    /// Closes after the buffered data is flushed; `connection_lost(None)` follows.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        StreamTransport::close_transport(slf)
    }

    /// Closes at once, dropping buffered data; `connection_lost(None)` follows.
    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        StreamTransport::force_close(slf, None)
    }

    /// `abort()` with the exception `connection_lost` gets (asyncio's TLS layer uses it).
    #[pyo3(signature = (exc=None))]
    fn _force_close(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        StreamTransport::force_close(slf, exc.filter(|e| !e.is_none()).map(Bound::unbind))
    }

    fn is_reading(&self, py: Python<'_>) -> bool {
        let st = self.state.borrow(py);
        !st.closing && !st.paused
    }

    fn pause_reading(&self, py: Python<'_>) -> PyResult<()> {
        {
            let mut st = self.state.borrow_mut(py);
            if st.closing || st.paused {
                return Ok(());
            }
            st.paused = true;
        }
        self.stop_reading(py);
        if self.loop_ref(py).get().debug_enabled(py) {
            stdlib::asyncio_logger(py)?
                .call_method1("debug", ("%r pauses reading", self.wrapper(py)))?;
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
        StreamTransport::start_reading(slf)?;
        if this.loop_ref(py).get().debug_enabled(py) {
            stdlib::asyncio_logger(py)?
                .call_method1("debug", ("%r resumes reading", this.wrapper(py)))?;
        }
        Ok(())
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
        let (high, low) = crate::transports::flow_control::water_marks(py, high, low)?;
        {
            let mut st = slf.get().state.borrow_mut(py);
            st.high_water = high;
            st.low_water = low;
        }
        StreamTransport::maybe_pause_protocol(slf)
    }

    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol_obj(py)
    }

    fn set_protocol(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_protocol_inner(py, protocol)
    }

    /// sendfile support: a future completed once the write buffer is empty.
    fn _make_empty_waiter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.state.borrow(py).empty_waiter.is_some() {
            return Err(PyRuntimeError::new_err("Empty waiter is already set"));
        }
        let waiter = self.loop_ref(py).call_method0("create_future")?;
        let empty = self.state.borrow(py).buffer.is_empty();
        if empty {
            waiter.call_method1("set_result", (py.None(),))?;
        }
        self.state.borrow_mut(py).empty_waiter = Some(waiter.clone().unbind());
        Ok(waiter.unbind())
    }

    fn _reset_empty_waiter(&self, py: Python<'_>) {
        let old = self.state.borrow_mut(py).empty_waiter.take();
        drop(old);
    }

    #[getter]
    fn _fd(&self) -> RawFd {
        self.fd
    }

    /// Whether the socket is still open (connection_lost has not run yet).
    #[getter]
    fn _open(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).sock.is_some()
    }

    #[getter]
    fn _reading(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).reading
    }

    #[getter]
    fn _protocol_paused(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).protocol_paused
    }

    #[getter]
    fn _conn_lost(&self, py: Python<'_>) -> u32 {
        self.state.borrow(py).conn_lost
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> Py<LoopCore> {
        self.loop_.clone_ref(py)
    }

    /// Closes the socket without telling the protocol (the wrapper's `__del__`, after its
    /// ResourceWarning, for a transport nobody closed).
    fn _close_socket(&self, py: Python<'_>) -> PyResult<()> {
        let sock = self.state.borrow_mut(py).sock.take();
        if let Some(sock) = sock {
            self.unwatch(py, Direction::Read);
            self.unwatch(py, Direction::Write);
            self.loop_ref(py).get().set_fd_owner(py, self.fd, None);
            sock.bind(py).call_method0("close")?;
        }
        Ok(())
    }

    /// The transport the protocol sees, so error reports about this core name it.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        match self.wrapper(py) {
            Some(wrapper) => wrapper.bind(py).repr()?.extract(),
            None => Ok(format!("<StreamTransport closed fd={}>", self.fd)),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        let Some(st) = self.state.try_borrow_unguarded() else {
            return Ok(());
        };
        for obj in [&st.wrapper, &st.sock, &st.server, &st.empty_waiter]
            .into_iter()
            .flatten()
        {
            visit.call(obj)?;
        }
        if let Some(p) = &st.protocol {
            visit.call(&p.obj)?;
            if let Some(m) = &p.data_received {
                visit.call(m)?;
            }
            if let Some((g, u)) = &p.buffered {
                visit.call(g)?;
                visit.call(u)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken = self.state.try_borrow_mut_unguarded().map(|mut st| {
            (
                st.wrapper.take(),
                st.protocol.take(),
                st.server.take(),
                st.empty_waiter.take(),
            )
        });
        drop(taken);
    }
}

fn set_exception_unless_done(future: &Bound<'_, PyAny>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
    if !future.call_method0("done")?.is_truthy()? {
        future.call_method1("set_exception", (exc,))?;
    }
    Ok(())
}

/// The bytes of a write: a `bytes` object is kept by reference, a mutable buffer is copied
/// (the caller may change it once write() returns).
pub fn to_chunk(data: &Bound<'_, PyAny>) -> PyResult<Chunk> {
    if let Ok(bytes) = data.cast::<PyBytes>() {
        let slice = bytes.as_bytes();
        let (ptr, len) = (slice.as_ptr(), slice.len());
        return Ok(Chunk::Shared(SharedBytes {
            _owner: bytes.clone().unbind(),
            ptr,
            len,
        }));
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        return Ok(Chunk::Owned(array.to_vec()));
    }
    if data.is_instance_of::<PyMemoryView>() {
        let view = PyUntypedBuffer::get(data)?;
        if !view.is_c_contiguous() {
            return Err(PyBufferError::new_err(
                "memoryview: underlying buffer is not C-contiguous",
            ));
        }
        // SAFETY: the view is held while we copy; contiguous and len_bytes() long.
        let bytes =
            unsafe { std::slice::from_raw_parts(view.buf_ptr() as *const u8, view.len_bytes()) };
        return Ok(Chunk::Owned(bytes.to_vec()));
    }
    let name = data.get_type().name()?;
    Err(PyTypeError::new_err(format!(
        "data argument must be a bytes-like object, not {}",
        name.repr()?
    )))
}
