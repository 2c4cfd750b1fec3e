//! `sock_recv`, `sock_recv_into`, `sock_sendall` (and sendfile's zero-copy transfer, see
//! `sendfile.rs`): the syscall is tried at once; if it would block, a native watcher finishes
//! the operation when the fd is ready and completes a future. No Python callback or handle is
//! made per readiness event.
//!
//! The Python face (`ferroloop/sock.py`) wraps these in coroutines and calls `abandon()` when
//! the waiting coroutine is cancelled, so the fd stops being watched at once.
//!
//! A pending operation is bound to its socket object, not to the fd number: before each
//! syscall it checks that the socket still has that number, and once the socket is closed it
//! fails with EBADF (as asyncio's `sock.recv()` on a closed socket does) instead of reading or
//! writing whatever the kernel gave the number to next.

use std::os::fd::RawFd;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::{intern, PyTraverseError, PyVisit};

use crate::core::bytes_read;
use crate::core::event_loop::LoopCore;
use crate::core::gil_cell::GilCell;
use crate::core::io::{holds_fd, FdNumber};
use crate::core::io_table::{Direction, NativeWatcher};
use crate::core::stdlib;
use crate::errors::os_error;
use crate::sendfile::{transfer_error, SendFile};
use crate::sock_wait::SockWait;
use crate::sys;

pub(crate) enum Operation {
    Recv { max: usize },
    RecvInto { buffer: PyUntypedBuffer },
    SendAll { data: PyUntypedBuffer, sent: usize },
    SendFile(SendFile),
}

/// One pending socket operation, the target of its fd's native watcher.
#[pyclass(frozen, module = "ferroloop._ferroloop", name = "SockOperation")]
pub struct SockOp {
    loop_: Py<LoopCore>,
    sock: Py<PyAny>,
    fd: RawFd,
    direction: Direction,
    #[pyo3(get)]
    future: Py<PyAny>,
    operation: GilCell<Operation>,
}

impl Operation {
    /// The operation is over (done, failed or given up): what must follow it happens now.
    /// An error here is what the operation then ends with.
    fn finish(&mut self, failed: bool) -> PyResult<()> {
        match self {
            Operation::SendFile(transfer) => transfer.finish(failed),
            _ => Ok(()),
        }
    }
}

pub(crate) enum Progress {
    Done(Py<PyAny>),
    Pending,
}

fn contiguous(buffer: PyUntypedBuffer) -> PyResult<PyUntypedBuffer> {
    if buffer.is_c_contiguous() {
        Ok(buffer)
    } else {
        Err(PyBufferError::new_err(
            "memoryview: underlying buffer is not C-contiguous",
        ))
    }
}

fn writable_buffer(obj: &Bound<'_, PyAny>) -> PyResult<PyUntypedBuffer> {
    // `socket.recv_into`'s own error for anything but a writable C-contiguous buffer (a
    // TypeError, also for a strided memoryview, where a BufferError would not be caught).
    let refused = || {
        let what = if obj.is_none() {
            "None".to_owned()
        } else {
            type_name(obj)
        };
        PyTypeError::new_err(format!(
            "recv_into() argument 1 must be read-write bytes-like object, not {what}"
        ))
    };
    let buffer = PyUntypedBuffer::get(obj).map_err(|_| refused())?;
    if buffer.readonly() || !buffer.is_c_contiguous() {
        return Err(refused());
    }
    Ok(buffer)
}

fn readable_buffer(obj: &Bound<'_, PyAny>) -> PyResult<PyUntypedBuffer> {
    let buffer = PyUntypedBuffer::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "a bytes-like object is required, not '{}'",
            type_name(obj)
        ))
    })?;
    contiguous(buffer)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// One `recv` of at most `max` bytes.
/// An allocation that fails is an OutOfMemory error, which `os_error` makes a MemoryError.
fn recv_bytes(lp: &LoopCore, py: Python<'_>, fd: RawFd, max: usize) -> std::io::Result<Py<PyAny>> {
    let data = bytes_read::recv_bytes(lp, py, fd, Some(max), &lp.sock_read_size)
        .unwrap_or_else(|_| Err(std::io::ErrorKind::OutOfMemory.into()))?;
    Ok(data.into_any().unbind())
}

fn recv_into(py: Python<'_>, fd: RawFd, buffer: &PyUntypedBuffer) -> std::io::Result<Py<PyAny>> {
    // SAFETY: the buffer is held (exported) for the call; its memory stays valid and
    // writable for len_bytes() bytes.
    let n = unsafe { sys::recv_raw(fd, buffer.buf_ptr().cast(), buffer.len_bytes())? };
    Ok(n.into_pyobject(py)
        .map_err(|_| std::io::Error::other("int conversion"))?
        .into_any()
        .unbind())
}

fn send_from(fd: RawFd, data: &PyUntypedBuffer, sent: usize) -> std::io::Result<usize> {
    // SAFETY: the buffer is held for the call; it is valid for len_bytes() bytes.
    let all = unsafe { std::slice::from_raw_parts(data.buf_ptr() as *const u8, data.len_bytes()) };
    sys::send(fd, &all[sent..])
}

impl SockOp {
    fn attempt(&self, py: Python<'_>) -> std::io::Result<Progress> {
        let mut operation = self.operation.borrow_mut(py);
        let result = match &mut *operation {
            Operation::Recv { max } => {
                recv_bytes(self.loop_.get(), py, self.fd, *max).map(Progress::Done)
            }
            Operation::RecvInto { buffer } => recv_into(py, self.fd, buffer).map(Progress::Done),
            Operation::SendAll { data, sent } => {
                *sent += send_from(self.fd, data, *sent)?;
                if *sent == data.len_bytes() {
                    Ok(Progress::Done(py.None()))
                } else {
                    Ok(Progress::Pending)
                }
            }
            Operation::SendFile(transfer) => transfer.step(py, self.fd),
        };
        match result {
            Err(e) if sys::would_block(&e) => Ok(Progress::Pending),
            other => other,
        }
    }

    /// The exception a failed attempt raises.
    fn error(&self, py: Python<'_>, err: std::io::Error) -> PyErr {
        let sendfile_sent = match &*self.operation.borrow(py) {
            Operation::SendFile(transfer) => Some(transfer.sent()),
            _ => None,
        };
        match sendfile_sent {
            Some(sent) => transfer_error(py, sent, err, true),
            None => os_error(err),
        }
    }

    fn finish(&self, py: Python<'_>, failed: bool) -> PyResult<()> {
        self.operation.borrow_mut(py).finish(failed)
    }

    /// The fd is ready: make progress, and complete the future when done.
    fn on_ready(lp: &Bound<'_, LoopCore>, target: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = lp.py();
        // SAFETY: this function is only ever registered with a SockOp as its target.
        let op = unsafe { target.cast_unchecked::<SockOp>() };
        let this = op.get();
        let future = this.future.bind(py);
        if future.call_method0(intern!(py, "done"))?.is_truthy()? {
            // Cancelled while waiting and not yet abandoned.
            lp.get()
                .clear_watcher_of(py, this.fd, this.direction, target);
            return this.finish(py, true);
        }
        let outcome = if holds_fd(this.sock.bind(py), this.fd) {
            this.attempt(py).map_err(|err| this.error(py, err))
        } else {
            Err(os_error(std::io::Error::from_raw_os_error(sys::EBADF)))
        };
        let outcome = match outcome {
            Ok(Progress::Pending) => return Ok(()),
            Ok(Progress::Done(value)) => this.finish(py, false).map(|()| value),
            Err(err) => {
                // The operation's own error wins over one in cleaning up after it.
                let _ = this.finish(py, true);
                Err(err)
            }
        };
        lp.get()
            .clear_watcher_of(py, this.fd, this.direction, target);
        match outcome {
            Ok(value) => future.call_method1(intern!(py, "set_result"), (value,))?,
            Err(err) => future.call_method1(intern!(py, "set_exception"), (err.into_value(py),))?,
        };
        Ok(())
    }

    /// Starts waiting: a future completed when the operation finishes. `check_transport`
    /// false is for the loop's own work on a transport's socket (sendfile through it).
    pub(crate) fn wait(
        slf: &Bound<'_, LoopCore>,
        sock: &Bound<'_, PyAny>,
        fd: RawFd,
        direction: Direction,
        operation: Operation,
        check_transport: bool,
    ) -> PyResult<Py<SockOp>> {
        let py = slf.py();
        let prepared = if check_transport {
            slf.get()
                .ensure_fd_no_transport(py, FdNumber::Valid(fd), sock)
        } else {
            Ok(())
        }
        // Through Python: a loop subclass may make its own futures.
        .and_then(|()| slf.call_method0(intern!(py, "create_future")));
        let future = match prepared {
            Ok(future) => future.unbind(),
            Err(err) => {
                let mut operation = operation;
                let _ = operation.finish(true);
                return Err(err);
            }
        };
        let op = Py::new(
            py,
            SockOp {
                loop_: slf.clone().unbind(),
                sock: sock.clone().unbind(),
                fd,
                direction,
                future,
                operation: GilCell::new(operation),
            },
        )?;
        let watcher = NativeWatcher {
            target: op.clone_ref(py).into_any(),
            on_ready: SockOp::on_ready,
        };
        if let Err(err) = slf
            .get()
            .set_native_watcher(py, fd, direction, watcher, Some(sock))
        {
            let _ = op.get().finish(py, true);
            return Err(err);
        }
        Ok(op)
    }
}

/// asyncio's checks of a sock_* argument, run only when they might fail (not for a plain
/// non-blocking `socket.socket`).
fn check_socket(lp: &Bound<'_, LoopCore>, sock: &Bound<'_, PyAny>) -> PyResult<()> {
    if !stdlib::is_plain_nonblocking_socket(sock)? {
        stdlib::check_socket(lp.py())?.call1((lp, sock))?;
    }
    Ok(())
}

pub(crate) fn socket_fd(sock: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    stdlib::fileno(sock)?.extract()
}

#[pymethods]
impl SockOp {
    /// Stops watching the fd for this operation (its waiter was cancelled), and ends it.
    pub(crate) fn abandon(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.loop_
            .get()
            .clear_watcher_of(py, this.fd, this.direction, slf.as_any());
        this.finish(py, true)
    }

    /// Awaits the future, abandoning the operation if the waiter gives up (see `sock_wait.rs`).
    fn __await__(slf: &Bound<'_, Self>) -> PyResult<SockWait> {
        SockWait::new(slf, slf.get().future.bind(slf.py()))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        visit.call(&self.sock)?;
        visit.call(&self.future)
    }
}

#[pymethods]
impl LoopCore {
    /// `sock.recv(n)` now, or a SockOperation whose future gets the bytes.
    fn _sock_recv(
        slf: &Bound<'_, Self>,
        sock: &Bound<'_, PyAny>,
        n: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        check_socket(slf, sock)?;
        // asyncio's order: `sock.recv(n)` fails on a non-socket before it looks at `n`.
        let fd = socket_fd(sock)?;
        let n: isize = n.extract()?;
        if n < 0 {
            return Err(PyValueError::new_err("negative buffersize in recv"));
        }
        let max = n as usize;
        if max == 0 {
            // As `socket.recv(0)`: an empty result at once. The syscall would say EAGAIN on
            // an idle socket, and waiting for readability could wait forever.
            return Ok(PyBytes::new(py, b"").into_any().unbind());
        }
        match recv_bytes(slf.get(), py, fd, max) {
            Ok(bytes) => Ok(bytes),
            Err(e) if sys::would_block(&e) => Ok(SockOp::wait(
                slf,
                sock,
                fd,
                Direction::Read,
                Operation::Recv { max },
                true,
            )?
            .into_any()),
            Err(e) => Err(os_error(e)),
        }
    }

    /// `sock.recv_into(buf)` now, or a SockOperation whose future gets the byte count.
    fn _sock_recv_into(
        slf: &Bound<'_, Self>,
        sock: &Bound<'_, PyAny>,
        buf: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        check_socket(slf, sock)?;
        let fd = socket_fd(sock)?;
        let buffer = writable_buffer(buf)?;
        if buffer.len_bytes() == 0 {
            // As `socket.recv_into()` of an empty buffer: 0 at once (see `_sock_recv`).
            return Ok(0usize.into_pyobject(py)?.into_any().unbind());
        }
        match recv_into(py, fd, &buffer) {
            Ok(n) => Ok(n),
            Err(e) if sys::would_block(&e) => Ok(SockOp::wait(
                slf,
                sock,
                fd,
                Direction::Read,
                Operation::RecvInto { buffer },
                true,
            )?
            .into_any()),
            Err(e) => Err(os_error(e)),
        }
    }

    /// Sends what the socket takes now; None if that was everything, else a SockOperation
    /// that sends the rest as the socket drains.
    fn _sock_sendall(
        slf: &Bound<'_, Self>,
        sock: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<SockOp>>> {
        check_socket(slf, sock)?;
        let fd = socket_fd(sock)?;
        let data = readable_buffer(data)?;
        // Even empty data is sent, as asyncio does: an unconnected socket says EPIPE.
        let sent = match send_from(fd, &data, 0) {
            Ok(n) => n,
            Err(e) if sys::would_block(&e) => 0,
            Err(e) => return Err(os_error(e)),
        };
        if sent == data.len_bytes() {
            return Ok(None);
        }
        Ok(Some(SockOp::wait(
            slf,
            sock,
            fd,
            Direction::Write,
            Operation::SendAll { data, sent },
            true,
        )?))
    }
}
