//! The datagram transport (UDP and Unix datagram sockets): asyncio's
//! `_SelectorDatagramTransport` contract, with the I/O in Rust.
//!
//! Protocols see `ferroloop.datagram.DatagramTransport`, a thin `asyncio.DatagramTransport`
//! owning this core. One datagram is received per readiness event, into the loop's buffer;
//! the sender's address is converted here for IPv4, IPv6 and Unix sockets exactly as
//! CPython's `socket.recvfrom` converts it (other families call `recvfrom` itself).
//! A connected socket sends with `send()`; an unconnected one calls the socket's own
//! `sendto`, so addresses (host names included) are parsed exactly as Python parses them.
//! What the socket cannot take now is queued, datagram by datagram, and sent when it drains.

use std::collections::VecDeque;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{
    PyBlockingIOError, PyBufferError, PyInterruptedError, PyOSError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};
use pyo3::{PyTraverseError, PyVisit};

use super::base::{
    self, FlowControlled, Lifecycle, LoopFd, NativeTransport, ReadingTransport, SelectorTransport,
};
use super::flow_control::FlowControl;
use crate::core::event_loop::{LoopCore, READ_BUFFER_SIZE};
use crate::core::gil_cell::GilCell;
use crate::core::io::fileobj_number;
use crate::core::io_table::{Direction, NativeFn};
use crate::errors::os_error;
use crate::sys::{self, SockAddr};

/// asyncio's `max_size`: the largest datagram received whole.
const MAX_DATAGRAM: usize = READ_BUFFER_SIZE;

/// The protocol and the bound methods the hot paths call, looked up once. A protocol
/// without one of them gets asyncio's AttributeError when it would be called.
struct Protocol {
    obj: Py<PyAny>,
    datagram_received: Option<Py<PyAny>>,
    error_received: Option<Py<PyAny>>,
}

impl Protocol {
    fn new(obj: &Bound<'_, PyAny>) -> Protocol {
        Protocol {
            obj: obj.clone().unbind(),
            datagram_received: obj.getattr("datagram_received").ok().map(Bound::unbind),
            error_received: obj.getattr("error_received").ok().map(Bound::unbind),
        }
    }
}

/// A datagram waiting for the socket to drain: immutable bytes and where they go.
pub struct Queued {
    data: Py<PyBytes>,
    /// What it counts for in `get_write_buffer_size()`.
    size: usize,
    addr: Py<PyAny>,
}

pub struct State {
    /// The `asyncio.DatagramTransport` the protocol sees; dropped once the connection is lost.
    wrapper: Option<Py<PyAny>>,
    sock: Option<Py<PyAny>>,
    /// `sock.sendto` and `sock.recvfrom`, bound once.
    sendto: Option<Py<PyAny>>,
    recvfrom: Option<Py<PyAny>>,
    protocol: Option<Protocol>,
    /// The remote address the endpoint was created for: sendto() accepts only it (or None).
    address: Option<Py<PyAny>>,
    buffer: VecDeque<Queued>,
    buffer_size: usize,
    flow: FlowControl,
    /// `closing`: close() was called (or the transport failed).
    lifecycle: Lifecycle,
    /// The writer is installed (datagrams are queued).
    writing: bool,
    /// Set when connection_lost is scheduled; counts sends attempted after that.
    conn_lost: u32,
}

/// The native half of `ferroloop.datagram.DatagramTransport`.
#[pyclass(frozen, module = "ferroloop._ferroloop", name = "DatagramTransport")]
pub struct DatagramTransport {
    io: LoopFd,
    family: i32,
    /// The socket has a peer (`get_extra_info('peername')`): datagrams go out with send().
    connected: bool,
    /// `sendto(b'')` sends an empty datagram (asyncio 3.13 and later) instead of nothing.
    send_empty: bool,
    /// What each queued datagram adds to the write buffer size beyond its bytes (asyncio
    /// counts 8 from 3.13.6 and 3.14.1 on).
    header_size: usize,
    state: GilCell<State>,
}

/// What one attempt to send or receive came to.
enum Outcome<T> {
    Done(T),
    NotReady,
    Failed(PyErr),
}

fn would_block(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyBlockingIOError>(py) || err.is_instance_of::<PyInterruptedError>(py)
}

/// A sender's address as CPython's `makesockaddr` returns it: `(host, port)` for IPv4,
/// `(host, port, flowinfo, scope_id)` for IPv6, a str path (bytes in Linux's abstract
/// namespace) for Unix sockets, None when there is no address.
fn sockaddr_to_py(py: Python<'_>, addr: SockAddr) -> PyResult<Py<PyAny>> {
    Ok(match addr {
        SockAddr::Inet4 { host, port } => (host, port).into_pyobject(py)?.into_any().unbind(),
        SockAddr::Inet6 {
            host,
            port,
            flowinfo,
            scope_id,
        } => (host, port, flowinfo, scope_id)
            .into_pyobject(py)?
            .into_any()
            .unbind(),
        SockAddr::UnixAbstract(name) => PyBytes::new(py, &name).into_any().unbind(),
        // SAFETY: a valid pointer and length; the result is a new reference or NULL with an
        // exception set.
        SockAddr::UnixPath(path) => unsafe {
            let obj = pyo3::ffi::PyUnicode_DecodeFSDefaultAndSize(
                path.as_ptr().cast(),
                path.len() as pyo3::ffi::Py_ssize_t,
            );
            Bound::from_owned_ptr_or_err(py, obj)?.unbind()
        },
        SockAddr::None | SockAddr::Other(_) => py.None(),
    })
}

impl NativeTransport for DatagramTransport {
    base::native_transport_fields!(State, obj);

    fn fileobj_of(st: &State) -> Option<&Py<PyAny>> {
        st.sock.as_ref()
    }

    const OWNS_FD: bool = true;

    fn is_quiet_error(py: Python<'_>, err: &PyErr) -> bool {
        err.is_instance_of::<PyOSError>(py)
    }

    fn close_after_error(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        base::force_close(slf, Some(exc))
    }
}

impl ReadingTransport for DatagramTransport {
    const ON_READABLE: NativeFn = DatagramTransport::on_readable;

    fn lifecycle(st: &mut State) -> &mut Lifecycle {
        &mut st.lifecycle
    }
}

impl FlowControlled for DatagramTransport {
    fn flow_control(st: &mut State) -> (&mut FlowControl, usize) {
        (&mut st.flow, st.buffer_size)
    }
}

impl SelectorTransport for DatagramTransport {
    type Dropped = VecDeque<Queued>;

    fn conn_lost(st: &mut State) -> &mut u32 {
        &mut st.conn_lost
    }

    fn take_write_buffer(st: &mut State) -> VecDeque<Queued> {
        st.buffer_size = 0;
        std::mem::take(&mut st.buffer)
    }

    fn stop_writing(slf: &Bound<'_, Self>) {
        base::unwatch_with(slf, Direction::Write, |st| &mut st.writing);
    }
}

impl DatagramTransport {
    fn start_writing(slf: &Bound<'_, Self>) -> PyResult<()> {
        base::watch_with(
            slf,
            Direction::Write,
            DatagramTransport::on_writable,
            |st| &mut st.writing,
        )
    }

    /// `protocol.error_received(exc)` for an OSError of a send or receive; anything else is
    /// fatal to the transport.
    fn send_or_receive_failed(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        if !err.is_instance_of::<PyOSError>(py) {
            return base::fatal_error(slf, err, message);
        }
        let this = slf.get();
        let exc = err.into_value(py);
        let method = this.state.borrow(py).protocol.as_ref().map(|p| {
            (
                p.obj.clone_ref(py),
                p.error_received.as_ref().map(|m| m.clone_ref(py)),
            )
        });
        match method {
            Some((_, Some(method))) => method.bind(py).call1((exc,)).map(drop),
            Some((obj, None)) => obj
                .bind(py)
                .call_method1("error_received", (exc,))
                .map(drop),
            None => Ok(()),
        }
    }

    /// One datagram from the socket: `(data, address)`.
    fn receive(&self, py: Python<'_>) -> Outcome<(Py<PyAny>, Py<PyAny>)> {
        if !sys::is_decoded_family(self.family) {
            let recvfrom = self
                .state
                .borrow(py)
                .recvfrom
                .as_ref()
                .map(|m| m.clone_ref(py));
            let Some(recvfrom) = recvfrom else {
                return Outcome::NotReady;
            };
            return match recvfrom
                .bind(py)
                .call1((MAX_DATAGRAM,))
                .and_then(|r| r.extract::<(Py<PyAny>, Py<PyAny>)>())
            {
                Ok(pair) => Outcome::Done(pair),
                Err(err) if would_block(py, &err) => Outcome::NotReady,
                Err(err) => Outcome::Failed(err),
            };
        }
        let received = {
            let fd = self.io.fd(py);
            self.io
                .loop_ref(py)
                .get()
                .read_bytes(py, MAX_DATAGRAM, |buf| sys::recvfrom(fd, buf))
                .map(|(data, from)| (data.into_any().unbind(), from))
        };
        match received {
            Ok((data, from)) => match sockaddr_to_py(py, from) {
                Ok(addr) => Outcome::Done((data, addr)),
                Err(err) => Outcome::Failed(err),
            },
            Err(e) if sys::would_block(&e) => Outcome::NotReady,
            Err(e) => Outcome::Failed(os_error(e)),
        }
    }

    /// Sends one datagram: `send()` on a connected socket, `sock.sendto(data, addr)` else.
    fn send_one(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        addr: &Bound<'_, PyAny>,
    ) -> Outcome<()> {
        if self.connected {
            let view = match PyUntypedBuffer::get(data) {
                Ok(view) if view.is_c_contiguous() => view,
                Ok(_) => {
                    return Outcome::Failed(PyBufferError::new_err(
                        "memoryview: underlying buffer is not C-contiguous",
                    ))
                }
                Err(err) => return Outcome::Failed(err),
            };
            // SAFETY: the buffer is held for the call; contiguous and len_bytes() long.
            let bytes = unsafe {
                std::slice::from_raw_parts(view.buf_ptr() as *const u8, view.len_bytes())
            };
            return match sys::send(self.io.fd(py), bytes) {
                Ok(_) => Outcome::Done(()),
                Err(e) if sys::would_block(&e) => Outcome::NotReady,
                Err(e) => Outcome::Failed(os_error(e)),
            };
        }
        let sendto = self
            .state
            .borrow(py)
            .sendto
            .as_ref()
            .map(|m| m.clone_ref(py));
        let Some(sendto) = sendto else {
            return Outcome::Failed(PyOSError::new_err((sys::EBADF, "Bad file descriptor")));
        };
        match sendto.bind(py).call1((data, addr)) {
            Ok(_) => Outcome::Done(()),
            Err(err) if would_block(py, &err) => Outcome::NotReady,
            Err(err) => Outcome::Failed(err),
        }
    }

    /// The socket is readable: one datagram, handed to the protocol. An exception from
    /// `datagram_received`/`error_received` goes to the exception handler, as in asyncio.
    fn on_readable(lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = lp.py();
        // SAFETY: registered only with a DatagramTransport target.
        let slf = unsafe { target.cast_unchecked::<DatagramTransport>() };
        let this = slf.get();
        {
            let st = this.state.borrow(py);
            if st.conn_lost > 0 || !st.lifecycle.reading {
                return Ok(());
            }
        }
        let _context = this.io.enter_context(py);
        match this.receive(py) {
            Outcome::NotReady => Ok(()),
            Outcome::Done((data, addr)) => {
                let method = this.state.borrow(py).protocol.as_ref().map(|p| {
                    (
                        p.obj.clone_ref(py),
                        p.datagram_received.as_ref().map(|m| m.clone_ref(py)),
                    )
                });
                match method {
                    Some((_, Some(method))) => method.bind(py).call1((data, addr)).map(drop),
                    Some((obj, None)) => obj
                        .bind(py)
                        .call_method1("datagram_received", (data, addr))
                        .map(drop),
                    None => Ok(()),
                }
            }
            Outcome::Failed(err) => DatagramTransport::send_or_receive_failed(
                slf,
                err,
                "Fatal read error on datagram transport",
            ),
        }
    }

    /// The socket is writable: send queued datagrams until it would block again.
    fn on_writable(lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = lp.py();
        // SAFETY: registered only with a DatagramTransport target.
        let slf = unsafe { target.cast_unchecked::<DatagramTransport>() };
        let this = slf.get();
        if !this.state.borrow(py).writing {
            return Ok(());
        }
        let _context = this.io.enter_context(py);
        loop {
            let next = {
                let mut st = this.state.borrow_mut(py);
                let next = st.buffer.pop_front();
                if let Some(q) = &next {
                    st.buffer_size -= q.size;
                }
                next
            };
            let Some(queued) = next else { break };
            match this.send_one(py, queued.data.bind(py).as_any(), queued.addr.bind(py)) {
                Outcome::Done(()) => drop(queued),
                Outcome::NotReady => {
                    let mut st = this.state.borrow_mut(py);
                    st.buffer_size += queued.size;
                    st.buffer.push_front(queued);
                    break;
                }
                Outcome::Failed(err) => {
                    drop(queued);
                    // As asyncio: the datagram is dropped and the rest waits for the next
                    // writable event.
                    return DatagramTransport::send_or_receive_failed(
                        slf,
                        err,
                        "Fatal write error on datagram transport",
                    );
                }
            }
        }
        base::maybe_resume_protocol(slf)?;
        let (empty, closing) = {
            let st = this.state.borrow(py);
            (st.buffer.is_empty(), st.lifecycle.closing)
        };
        if empty {
            DatagramTransport::stop_writing(slf);
            if closing {
                let first = {
                    let mut st = this.state.borrow_mut(py);
                    st.conn_lost += 1;
                    st.conn_lost == 1
                };
                if first {
                    DatagramTransport::connection_lost(slf, py.None().into_bound(py))?;
                }
            }
        }
        Ok(())
    }

    fn connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        base::retire(slf);
        // The fd must leave epoll before the socket closes (and its number can be reused).
        base::stop_reading(slf);
        DatagramTransport::stop_writing(slf);
        this.io.set_owner(py, None);
        let (protocol, sock, methods, dropped) = {
            let mut st = this.state.borrow_mut(py);
            st.buffer_size = 0;
            (
                st.protocol.take(),
                st.sock.take(),
                (st.sendto.take(), st.recvfrom.take()),
                std::mem::take(&mut st.buffer),
            )
        };
        drop((methods, dropped));
        let result = base::finish(&this.io, py, protocol.map(|p| p.obj), sock, &exc);
        let wrapper = this.state.borrow_mut(py).wrapper.take();
        drop(wrapper);
        result
    }
}

/// `data` as sendto() accepts it: bytes, bytearray or memoryview, else asyncio's TypeError.
fn check_data(data: &Bound<'_, PyAny>) -> PyResult<()> {
    if data.is_instance_of::<PyBytes>()
        || data.is_instance_of::<PyByteArray>()
        || data.is_instance_of::<PyMemoryView>()
    {
        return Ok(());
    }
    let name = data.get_type().name()?;
    Err(PyTypeError::new_err(format!(
        "data argument must be a bytes-like object, not {}",
        name.repr()?
    )))
}

#[pymethods]
impl DatagramTransport {
    /// `DatagramTransport(loop, wrapper, sock, protocol, address, connected, users_sock,
    /// context, send_empty, header_size)`: `address` is the remote address given to
    /// create_datagram_endpoint (or None), `connected` whether the socket has a peer,
    /// `users_sock` whether the caller keeps `sock` (the transport then works on a duplicate
    /// of its fd, see `LoopFd`), `context` where the protocol's callbacks run (None: a copy of
    /// the current context); `send_empty` and `header_size` are what the running Python's
    /// asyncio does (see the fields). The wrapper calls `_begin`.
    #[new]
    #[pyo3(signature = (
        event_loop, wrapper, sock, protocol, address, connected, users_sock=true, context=None,
        send_empty=false, header_size=0
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        event_loop: &Bound<'_, LoopCore>,
        wrapper: &Bound<'_, PyAny>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        address: &Bound<'_, PyAny>,
        connected: bool,
        users_sock: bool,
        context: Option<&Bound<'_, PyAny>>,
        send_empty: bool,
        header_size: usize,
    ) -> PyResult<Self> {
        let fd = fileobj_number(sock)?.for_registering()?;
        let family: i32 = sock.getattr("family")?.extract()?;
        Ok(DatagramTransport {
            io: LoopFd::new(event_loop, fd, users_sock, context)?,
            family,
            connected,
            send_empty,
            header_size,
            state: GilCell::new(State {
                wrapper: Some(wrapper.clone().unbind()),
                sock: Some(sock.clone().unbind()),
                sendto: Some(sock.getattr("sendto")?.unbind()),
                recvfrom: Some(sock.getattr("recvfrom")?.unbind()),
                protocol: Some(Protocol::new(protocol)),
                address: (!address.is_none()).then(|| address.clone().unbind()),
                buffer: VecDeque::new(),
                buffer_size: 0,
                flow: FlowControl::default(),
                lifecycle: Lifecycle::default(),
                writing: false,
                conn_lost: 0,
            }),
        })
    }

    /// Takes ownership of the fd, then schedules `connection_made`, the start of reading and
    /// the waiter's result, in that order.
    #[pyo3(signature = (waiter=None))]
    fn _begin(slf: &Bound<'_, Self>, waiter: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        base::begin(slf, Some("_start_reading"), waiter, false)
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        DatagramTransport::connection_lost(slf, exc)
    }

    /// Sends `data` to `addr` (None on a connected endpoint, or its remote address). What
    /// the socket cannot take now is queued; an OSError goes to `protocol.error_received`.
    #[pyo3(signature = (data, addr=None))]
    fn sendto(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        addr: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        check_data(data)?;
        if !this.send_empty && !data.is_truthy()? {
            return Ok(());
        }
        let mut addr = addr.unwrap_or_else(|| py.None().into_bound(py));
        let address = this
            .state
            .borrow(py)
            .address
            .as_ref()
            .map(|a| a.clone_ref(py));
        if let Some(address) = &address {
            let address = address.bind(py);
            if !addr.is_none() && !addr.eq(address)? {
                return Err(PyValueError::new_err(format!(
                    "Invalid address: must be None or {}",
                    address.str()?
                )));
            }
            addr = address.clone();
        }
        let queued = {
            let mut st = this.state.borrow_mut(py);
            // Once connection_lost is scheduled the datagram has nowhere to go: dropped, with
            // a warning after a few (asyncio does so for connected endpoints; an unconnected
            // one would fail on the closed socket).
            if st.conn_lost > 0 && (address.is_some() || st.sock.is_none()) {
                let warn = base::count_lost_write(&mut st.conn_lost);
                drop(st);
                if warn {
                    base::warn_lost_write(py, "socket.send() raised exception.")?;
                }
                return Ok(());
            }
            !st.buffer.is_empty()
        };
        if !queued {
            match this.send_one(py, data, &addr) {
                Outcome::Done(()) => return Ok(()),
                Outcome::NotReady => DatagramTransport::start_writing(slf)?,
                Outcome::Failed(err) => {
                    return DatagramTransport::send_or_receive_failed(
                        slf,
                        err,
                        "Fatal write error on datagram transport",
                    )
                }
            }
        }
        // Queued as immutable bytes: the caller may change a bytearray once we return.
        let bytes = if let Ok(bytes) = data.cast::<PyBytes>() {
            bytes.clone()
        } else {
            py.get_type::<PyBytes>()
                .call1((data,))?
                .cast_into::<PyBytes>()?
        };
        let size = bytes.as_bytes().len() + this.header_size;
        {
            let mut st = this.state.borrow_mut(py);
            st.buffer_size += size;
            st.buffer.push_back(Queued {
                data: bytes.unbind(),
                size,
                addr: addr.unbind(),
            });
        }
        base::maybe_pause_protocol(slf)
    }

    /// asyncio's `_fatal_error(exc, message)`.
    #[pyo3(signature = (exc, message="Fatal error on transport"))]
    fn _fatal_error(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>, message: &str) -> PyResult<()> {
        base::fatal_error(slf, PyErr::from_value(exc), message)
    }

    fn set_protocol(&self, py: Python<'_>, protocol: &Bound<'_, PyAny>) {
        let new = Protocol::new(protocol);
        let old = self.state.borrow_mut(py).protocol.replace(new);
        drop(old);
    }

    #[getter]
    fn _address(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state
            .borrow(py)
            .address
            .as_ref()
            .map(|a| a.clone_ref(py))
    }

    /// Whether the socket is still open (connection_lost has not run yet).
    #[getter]
    fn _open(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).sock.is_some()
    }

    #[getter]
    fn _writing(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).writing
    }

    /// Closes the socket without telling the protocol (the wrapper's `__del__`, after its
    /// ResourceWarning, for a transport nobody closed).
    fn _release(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        base::retire(slf);
        let (sock, methods) = {
            let mut st = this.state.borrow_mut(py);
            (st.sock.take(), (st.sendto.take(), st.recvfrom.take()))
        };
        drop(methods);
        base::release_socket(slf, sock)
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.io.traverse(&visit)?;
        let Some(st) = self.state.try_borrow_unguarded() else {
            return Ok(());
        };
        for obj in [&st.wrapper, &st.sock, &st.sendto, &st.recvfrom, &st.address]
            .into_iter()
            .flatten()
        {
            visit.call(obj)?;
        }
        if let Some(p) = &st.protocol {
            visit.call(&p.obj)?;
            for m in [&p.datagram_received, &p.error_received]
                .into_iter()
                .flatten()
            {
                visit.call(m)?;
            }
        }
        for queued in &st.buffer {
            visit.call(&queued.addr)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        self.io.clear_context();
        let taken = self.state.try_borrow_mut_unguarded().map(|mut st| {
            (
                st.wrapper.take(),
                st.protocol.take(),
                st.address.take(),
                std::mem::take(&mut st.buffer),
            )
        });
        drop(taken);
    }
}

base::common_pymethods!(DatagramTransport);
base::reading_pymethods!(DatagramTransport);
base::flow_control_pymethods!(DatagramTransport);
base::selector_pymethods!(DatagramTransport);
