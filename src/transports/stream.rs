//! The stream transport (TCP and Unix sockets): asyncio's `_SelectorSocketTransport`
//! contract, with reads and writes done in Rust.
//!
//! The object protocols see is the Python class `ferroloop.transports.SocketTransport` (an
//! `asyncio.Transport`, which a native class cannot be because of `BaseTransport`'s
//! `__slots__`); it owns one `StreamTransport` and binds the hot methods (`write`,
//! `is_closing`, ...) straight to it. Reads and writes run as native watchers: one `recv`
//! per readiness event into the loop's buffer, writes tried at once and only the rest
//! buffered, flushed with one vectored send.

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyConnectionError, PyOSError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};
use pyo3::{PyTraverseError, PyVisit};

use super::base::{
    self, FlowControlled, Lifecycle, LoopFd, NativeTransport, ReadingTransport, SelectorTransport,
};
use super::flow_control::FlowControl;
use super::report::log_transport;
use super::versions;
use super::write_buffer::WriteBuffer;
use crate::core::bytes_read::{self, ReadSize};
use crate::core::event_loop::LoopCore;
use crate::core::gil_cell::GilCell;
use crate::core::io::fileobj_number;
use crate::core::io_table::{Direction, NativeFn};
use crate::core::stdlib;
use crate::errors::os_error;
use crate::sys;

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
    /// `data_received`, or None for a BufferedProtocol, or for a protocol without one (asyncio
    /// accepts any object, None included, and fails when data arrives: looked up then).
    data_received: Option<Py<PyAny>>,
    /// `(get_buffer, buffer_updated)` of a BufferedProtocol.
    buffered: Option<(Py<PyAny>, Py<PyAny>)>,
}

impl Protocol {
    fn new(obj: &Bound<'_, PyAny>) -> PyResult<Protocol> {
        let py = obj.py();
        let buffered_type = stdlib::buffered_protocol_type(py)?;
        let buffered = if obj.is_instance(buffered_type)? {
            match (obj.getattr("get_buffer"), obj.getattr("buffer_updated")) {
                (Ok(get), Ok(updated)) => Some((get.unbind(), updated.unbind())),
                _ => None,
            }
        } else {
            None
        };
        let data_received = match buffered {
            Some(_) => None,
            None => obj.getattr("data_received").ok().map(Bound::unbind),
        };
        Ok(Protocol {
            obj: obj.clone().unbind(),
            data_received,
            buffered,
        })
    }
}

pub struct State {
    /// The `asyncio.Transport` the protocol sees; dropped once the connection is lost.
    wrapper: Option<Py<PyAny>>,
    sock: Option<Py<PyAny>>,
    protocol: Option<Protocol>,
    server: Option<Py<PyAny>>,
    buffer: WriteBuffer<Chunk>,
    flow: FlowControl,
    /// `closing`: close() was called (or the connection failed).
    lifecycle: Lifecycle,
    /// write_eof() was called.
    eof: bool,
    /// Set when connection_lost is scheduled; counts writes attempted after that.
    conn_lost: u32,
    /// A strided memoryview was written behind waiting data (see `Facts`): the next flush
    /// fails, as asyncio's sendmsg() of its buffer does.
    unsendable: bool,
    /// sendfile in progress: completed when the write buffer is empty.
    empty_waiter: Option<Py<PyAny>>,
    /// What the buffer holds was written during this iteration and waits for its end, to
    /// go out in one system call (`write_chunk`); nothing was refused by the kernel yet.
    flush_at_iteration_end: bool,
}

#[pyclass(frozen, module = "ferroloop._ferroloop", name = "StreamTransport")]
pub struct StreamTransport {
    io: LoopFd,
    state: GilCell<State>,
    /// What the last read returned, to guess the next one's size.
    read_size: ReadSize,
}

impl NativeTransport for StreamTransport {
    base::native_transport_fields!(State, obj);

    fn fileobj_of(st: &State) -> Option<&Py<PyAny>> {
        st.sock.as_ref()
    }

    const OWNS_FD: bool = true;

    /// OSErrors are the peer's doing.
    fn is_quiet_error(py: Python<'_>, err: &PyErr) -> bool {
        err.is_instance_of::<PyOSError>(py)
    }

    /// The connection is dropped.
    fn close_after_error(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        base::force_close(slf, Some(exc))
    }
}

impl ReadingTransport for StreamTransport {
    const ON_READABLE: NativeFn = StreamTransport::on_readable;

    fn lifecycle(st: &mut State) -> &mut Lifecycle {
        &mut st.lifecycle
    }
}

impl FlowControlled for StreamTransport {
    fn flow_control(st: &mut State) -> (&mut FlowControl, usize) {
        (&mut st.flow, st.buffer.len())
    }

    /// Data that only waits for the end of the iteration is not reported: asyncio would have
    /// sent it at once, and programs read a non-zero size as the kernel refusing data.
    fn reported_buffer_size(st: &mut State) -> usize {
        if st.flush_at_iteration_end {
            0
        } else {
            st.buffer.len()
        }
    }
}

impl SelectorTransport for StreamTransport {
    type Dropped = Vec<Chunk>;

    fn conn_lost(st: &mut State) -> &mut u32 {
        &mut st.conn_lost
    }

    fn take_write_buffer(st: &mut State) -> Vec<Chunk> {
        st.buffer.take_all()
    }

    fn stop_writing(slf: &Bound<'_, Self>) {
        slf.get().io.unwatch(slf.py(), Direction::Write);
    }
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

/// The most that writes may leave for the end of the iteration (`write_chunk`): enough for a
/// typical response's pieces, little enough that a socket whose kernel buffer is full is
/// found out by the next write of any size.
const WAIT_FOR_ITERATION_END: usize = 16 * 1024;

impl StreamTransport {
    fn watch_write(slf: &Bound<'_, Self>) -> PyResult<()> {
        let io = &slf.get().io;
        io.watch(
            slf.py(),
            Direction::Write,
            slf.as_any(),
            StreamTransport::on_writable,
        )
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
                let fd = self.io.fd(py);
                let lp = self.io.loop_ref(py).get();
                match bytes_read::recv_bytes(lp, py, fd, None, &self.read_size) {
                    Ok(Ok(data)) if data.as_bytes().is_empty() => ReadOutcome::Eof,
                    Ok(Ok(data)) => ReadOutcome::Data(data.into_any().unbind()),
                    Ok(Err(e)) if sys::would_block(&e) => ReadOutcome::NotReady,
                    Ok(Err(e)) => ReadOutcome::Failed(os_error(e), READ_FAILED),
                    Err(err) => ReadOutcome::Failed(err, READ_FAILED),
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
                match unsafe {
                    sys::recv_raw(self.io.fd(py), target.buf_ptr().cast(), target.len_bytes())
                } {
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
            if st.conn_lost > 0 || !st.lifecycle.reading {
                return Ok(());
            }
        }
        let _context = this.io.enter_context(py);
        match this.read_once(py) {
            ReadOutcome::NotReady => Ok(()),
            ReadOutcome::Data(data) => {
                let target = this.state.borrow(py).protocol.as_ref().map(|p| {
                    (
                        p.obj.clone_ref(py),
                        p.data_received.as_ref().map(|m| m.clone_ref(py)),
                    )
                });
                let called = match target {
                    Some((_, Some(method))) => method.bind(py).call1((data,)),
                    Some((obj, None)) => obj.bind(py).call_method1("data_received", (data,)),
                    None => return Ok(()),
                };
                match called {
                    Ok(_) => Ok(()),
                    Err(err) => base::fatal_error(
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
                    Err(err) => base::fatal_error(
                        slf,
                        err,
                        "Fatal error: protocol.buffer_updated() call failed.",
                    ),
                }
            }
            ReadOutcome::Eof => StreamTransport::on_eof(slf),
            ReadOutcome::Failed(err, message) => base::fatal_error(slf, err, message),
        }
    }

    fn on_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.io.debug(py) {
            log_transport(py, "debug", "%r received EOF", this.wrapper(py))?;
        }
        let Some(protocol) = this.protocol_obj(py) else {
            return Ok(());
        };
        match protocol.bind(py).call_method0("eof_received") {
            Ok(keep_open) => {
                if keep_open.is_truthy()? {
                    // Half-closed: the protocol may still write, but nothing more can arrive.
                    base::stop_reading(slf);
                    Ok(())
                } else {
                    base::close(slf)
                }
            }
            Err(err) => base::fatal_error(
                slf,
                err,
                "Fatal error: protocol.eof_received() call failed.",
            ),
        }
    }

    /// The fd is writable: flush as much of the buffer as the kernel takes.
    fn on_writable(lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = lp.py();
        // SAFETY: registered only with a StreamTransport target.
        let slf = unsafe { target.cast_unchecked::<StreamTransport>() };
        let this = slf.get();
        let _context = this.io.enter_context(py);
        let sent = {
            let st = this.state.borrow(py);
            if st.conn_lost > 0 || st.buffer.is_empty() {
                return Ok(());
            }
            if st.unsendable {
                Err(PyBufferError::new_err(NOT_CONTIGUOUS))
            } else {
                match st.buffer.write_to(this.io.fd(py), true) {
                    Err(e) if sys::would_block(&e) => return Ok(()),
                    sent => sent.map_err(os_error),
                }
            }
        };
        match sent {
            Ok(n) => {
                let written = this.state.borrow_mut(py).buffer.consume(n);
                drop(written);
            }
            Err(err) => {
                StreamTransport::stop_writing(slf);
                let dropped = this.state.borrow_mut(py).buffer.take_all();
                drop(dropped);
                let exc = err.clone_ref(py).into_value(py);
                base::fatal_error(slf, err, "Fatal write error on socket transport")?;
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
        base::maybe_resume_protocol(slf)?;
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
                st.lifecycle.closing,
                st.eof,
                st.empty_waiter.as_ref().map(|w| w.clone_ref(py)),
            )
        };
        if !empty {
            return Ok(());
        }
        StreamTransport::stop_writing(slf);
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
        match self.io.fd(py) {
            // Released: the connection is gone already.
            fd if fd < 0 => Ok(()),
            fd => sys::shutdown_write(fd).map_err(os_error),
        }
    }

    /// Sends `chunk`, or queues what the kernel does not take.
    ///
    /// While the loop runs its callbacks, small writes to an empty buffer wait for the end of
    /// the iteration and go out together: a protocol that writes a response as headers then
    /// body (uvicorn does) sends it with one system call, not one per write. A write that
    /// would make them more than `WAIT_FOR_ITERATION_END` goes out at once with them, so what
    /// the kernel refuses is known (to `get_write_buffer_size()`, to flow control) after any
    /// write that could fill its buffer, as with asyncio's immediate send.
    fn write_chunk(slf: &Bound<'_, Self>, chunk: Chunk) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (empty, deferred, buffered) = {
            let st = this.state.borrow(py);
            (
                st.buffer.is_empty(),
                st.flush_at_iteration_end,
                st.buffer.len(),
            )
        };
        let fits = buffered + chunk.as_ref().len() <= WAIT_FOR_ITERATION_END;
        if deferred {
            this.state.borrow_mut(py).buffer.push(chunk, 0);
            return match fits {
                true => Ok(()),
                false => StreamTransport::flush_now(slf),
            };
        }
        if empty
            && fits
            && this.io.loop_ref(py).get().at_iteration_end(
                py,
                slf.as_any(),
                StreamTransport::on_iteration_end,
            )
        {
            let mut st = this.state.borrow_mut(py);
            st.flush_at_iteration_end = true;
            st.buffer.push(chunk, 0);
            return Ok(());
        }
        let mut sent = 0;
        if empty {
            let data = chunk.as_ref();
            match sys::send(this.io.fd(py), data) {
                Ok(n) if n == data.len() => return Ok(()),
                Ok(n) => sent = n,
                Err(e) if sys::would_block(&e) => {}
                Err(e) => {
                    return base::fatal_error(
                        slf,
                        os_error(e),
                        "Fatal write error on socket transport",
                    )
                }
            }
            StreamTransport::watch_write(slf)?;
        }
        this.state.borrow_mut(py).buffer.push(chunk, sent);
        base::maybe_pause_protocol(slf)
    }

    /// The end of the iteration in which `write_chunk` let data wait.
    fn on_iteration_end(_lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        // SAFETY: queued only with a StreamTransport target.
        let slf = unsafe { target.cast_unchecked::<StreamTransport>() };
        StreamTransport::flush_now(slf)
    }

    /// Sends what waits for the end of the iteration now, as if the fd had turned writable;
    /// what the kernel refuses waits for writability as usual.
    fn flush_now(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        {
            let mut st = this.state.borrow_mut(py);
            if !std::mem::replace(&mut st.flush_at_iteration_end, false) {
                return Ok(());
            }
        }
        StreamTransport::on_writable(this.io.loop_ref(py), slf.as_any())?;
        let waiting = {
            let st = this.state.borrow(py);
            st.conn_lost == 0 && !st.buffer.is_empty()
        };
        if waiting {
            StreamTransport::watch_write(slf)?;
            base::maybe_pause_protocol(slf)?;
        }
        Ok(())
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
        base::retire(slf);
        let (protocol, sock, server, waiter) = {
            let mut st = this.state.borrow_mut(py);
            st.lifecycle.reading = false;
            (
                st.protocol.take(),
                st.sock.take(),
                st.server.take(),
                st.empty_waiter.take(),
            )
        };
        // The fd must leave epoll before the socket closes (and its number can be reused).
        this.io.unwatch(py, Direction::Read);
        this.io.unwatch(py, Direction::Write);
        this.io.set_owner(py, None);
        this.io.release(py);
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
            let wrapper = this
                .state
                .borrow(py)
                .wrapper
                .as_ref()
                .map(|w| w.clone_ref(py));
            server.bind(py).call_method1("_detach", (wrapper,))?;
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
    /// `StreamTransport(loop, wrapper, sock, protocol, server, users_sock, context)`; the
    /// wrapper calls `_begin`. `users_sock`: the caller keeps `sock` (the transport then works
    /// on a duplicate of its fd, see `LoopFd`). `context`: where the protocol's callbacks run
    /// (None: a copy of the current context).
    #[new]
    #[pyo3(signature = (event_loop, wrapper, sock, protocol, server=None, users_sock=true, context=None))]
    fn new(
        event_loop: &Bound<'_, LoopCore>,
        wrapper: &Bound<'_, PyAny>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        server: Option<&Bound<'_, PyAny>>,
        users_sock: bool,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let fd = fileobj_number(sock)?.for_registering()?;
        let transport = StreamTransport {
            io: LoopFd::new(event_loop, fd, users_sock, context)?,
            state: GilCell::new(State {
                wrapper: Some(wrapper.clone().unbind()),
                sock: Some(sock.clone().unbind()),
                protocol: Some(Protocol::new(protocol)?),
                server: server.filter(|s| !s.is_none()).map(|s| s.clone().unbind()),
                buffer: WriteBuffer::default(),
                flow: FlowControl::default(),
                lifecycle: Lifecycle::default(),
                eof: false,
                conn_lost: 0,
                unsendable: false,
                empty_waiter: None,
                flush_at_iteration_end: false,
            }),
            read_size: ReadSize::default(),
        };
        Ok(transport)
    }

    /// Schedules `connection_made`, then the start of reading, then the waiter's result,
    /// in that order (asyncio's guarantee: no data_received before connection_made).
    #[pyo3(signature = (waiter=None))]
    fn _begin(slf: &Bound<'_, Self>, waiter: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let (server, wrapper) = {
            let st = slf.get().state.borrow(py);
            (
                st.server.as_ref().map(|s| s.clone_ref(py)),
                st.wrapper.as_ref().map(|w| w.clone_ref(py)),
            )
        };
        if let Some(server) = server {
            // The server keeps the transport the protocol sees (weakly): close_clients() and
            // abort_clients() go through it, and wait_closed() waits until it is gone.
            server.bind(py).call_method1("_attach", (wrapper,))?;
        }
        let made_in_context = versions::facts(py)?.connection_made_in_context;
        base::begin(slf, Some("_start_reading"), waiter, made_in_context)
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        StreamTransport::connection_lost(slf, exc)
    }

    /// Writes `data` (bytes, bytearray or memoryview), buffering what cannot go out now.
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let facts = versions::facts(py)?;
        let queue_any_view = facts.write_queues_any_view;
        let chunk = write_chunk(data, facts.write_error_names_types)?;
        let empty = match &chunk {
            Some(chunk) => chunk.as_ref().is_empty(),
            None => !data.is_truthy()?,
        };
        if chunk.is_none() {
            // What asyncio makes of a strided view depends on whether data waits before it:
            // what waits only for the end of the iteration would have gone out with asyncio.
            StreamTransport::flush_now(slf)?;
        }
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
            if empty {
                return Ok(());
            }
            if st.conn_lost > 0 {
                let warn = base::count_lost_write(&mut st.conn_lost);
                drop(st);
                if warn {
                    base::warn_lost_write(py, "socket.send() raised exception.")?;
                }
                return Ok(());
            }
            if chunk.is_none() {
                // A strided memoryview: asyncio's send() of it fails with BufferError, a
                // fatal error of the transport. With data already waiting, asyncio 3.11's
                // bytearray buffer refuses it with TypeError; later ones queue it, and the
                // flush that reaches it fails.
                let waiting = !st.buffer.is_empty();
                if waiting && queue_any_view {
                    st.unsendable = true;
                    return Ok(());
                }
                drop(st);
                if waiting {
                    return Err(PyTypeError::new_err(NOT_CONTIGUOUS_WRITE));
                }
                return base::fatal_error(
                    slf,
                    PyBufferError::new_err(NOT_CONTIGUOUS),
                    "Fatal write error on socket transport",
                );
            }
        }
        match chunk {
            Some(chunk) => StreamTransport::write_chunk(slf, chunk),
            None => Ok(()),
        }
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
            if st.lifecycle.closing || st.eof {
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

    fn set_protocol(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set_protocol_inner(py, protocol)
    }

    /// The context the protocol's callbacks run in from now on (see `LoopFd::set_context`).
    fn _set_context(&self, py: Python<'_>, context: &Bound<'_, PyAny>) {
        self.io.set_context(py, context);
    }

    /// sendfile support: a future completed once the write buffer is empty.
    fn _make_empty_waiter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.state.borrow(py).empty_waiter.is_some() {
            return Err(PyRuntimeError::new_err("Empty waiter is already set"));
        }
        let waiter = self.io.loop_ref(py).call_method0("create_future")?;
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

    /// Whether the socket is still open (connection_lost has not run yet).
    #[getter]
    fn _open(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).sock.is_some()
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> Py<LoopCore> {
        self.io.loop_obj(py)
    }

    /// Whether write_eof() was called.
    #[getter]
    fn _eof(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).eof
    }

    /// The server that accepted the connection, until the connection is lost.
    #[getter]
    fn _server(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state
            .borrow(py)
            .server
            .as_ref()
            .map(|s| s.clone_ref(py))
    }

    /// Closes the socket without telling the protocol (the wrapper's `__del__`, after its
    /// ResourceWarning, for a transport nobody closed).
    fn _release(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        base::retire(slf);
        let (sock, server, wrapper) = {
            let mut st = slf.get().state.borrow_mut(py);
            let wrapper = st.wrapper.as_ref().map(|w| w.clone_ref(py));
            (st.sock.take(), st.server.take(), wrapper)
        };
        let released = base::release_socket(slf, sock);
        if let Some(server) = server {
            // As asyncio's transport finaliser does: a server waiting in wait_closed() for
            // its last connection is told this one is gone.
            server.bind(py).call_method1("_detach", (wrapper,))?;
        }
        released
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.io.traverse(&visit)?;
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
        self.io.clear_context();
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

base::common_pymethods!(StreamTransport);
base::reading_pymethods!(StreamTransport);
base::flow_control_pymethods!(StreamTransport);
base::selector_pymethods!(StreamTransport);

fn set_exception_unless_done(future: &Bound<'_, PyAny>, exc: &Bound<'_, PyAny>) -> PyResult<()> {
    if !future.call_method0("done")?.is_truthy()? {
        future.call_method1("set_exception", (exc,))?;
    }
    Ok(())
}

pub const NOT_CONTIGUOUS: &str = "memoryview: underlying buffer is not C-contiguous";
pub const NOT_CONTIGUOUS_WRITE: &str =
    "cannot buffer a memoryview that is not C-contiguous; write bytes(view) instead";

/// The bytes of a write: a `bytes` object is kept by reference, a mutable buffer is copied
/// (the caller may change it once write() returns). None for a memoryview that is not
/// C-contiguous (a strided slice), which cannot be sent as it is: the caller reports it as
/// asyncio does. `names_types`: the TypeError for anything else names the three types
/// accepted (asyncio 3.13 and later, socket transports).
pub fn write_chunk(data: &Bound<'_, PyAny>, names_types: bool) -> PyResult<Option<Chunk>> {
    if let Ok(bytes) = data.cast::<PyBytes>() {
        let slice = bytes.as_bytes();
        let (ptr, len) = (slice.as_ptr(), slice.len());
        return Ok(Some(Chunk::Shared(SharedBytes {
            _owner: bytes.clone().unbind(),
            ptr,
            len,
        })));
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        return Ok(Some(Chunk::Owned(array.to_vec())));
    }
    if data.is_instance_of::<PyMemoryView>() {
        let view = PyUntypedBuffer::get(data)?;
        if !view.is_c_contiguous() {
            return Ok(None);
        }
        // SAFETY: the view is held while we copy; contiguous and len_bytes() long.
        let bytes =
            unsafe { std::slice::from_raw_parts(view.buf_ptr() as *const u8, view.len_bytes()) };
        return Ok(Some(Chunk::Owned(bytes.to_vec())));
    }
    let name = data.get_type().name()?;
    let expected = if names_types {
        "a bytes, bytearray, or memoryview object"
    } else {
        "a bytes-like object"
    };
    Err(PyTypeError::new_err(format!(
        "data argument must be {expected}, not {}",
        name.repr()?
    )))
}
