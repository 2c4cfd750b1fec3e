//! sendfile's zero-copy transfer (`loop.sock_sendfile`, and `loop.sendfile` on a plain
//! socket transport): `sendfile(2)` from the file to the socket each time the socket can take
//! more, as a native socket operation (see `sock.rs`), so no Python runs per block and the
//! loop thread never waits on the socket.
//!
//! asyncio's contract, which the Python face (`ferroloop/sendfile.py`) relies on to choose the
//! fallback: `SendfileNotAvailableError` when the file cannot be sent this way (no size to
//! read, or the first `sendfile` fails); the file position ends at the offset after the last
//! byte sent, whatever ends the transfer (done, error, cancellation).

use std::os::fd::RawFd;

use pyo3::exceptions::PyConnectionError;
use pyo3::prelude::*;
use pyo3::types::PyInt;

use crate::core::event_loop::LoopCore;
use crate::core::io_table::Direction;
use crate::core::{stdlib, versions};
use crate::errors::os_error;
use crate::sock::{socket_fd, Operation, Progress, SockOp};
use crate::sys;

/// The most one call asks for (asyncio's bound; Linux sends at most about 2 GiB anyway).
const MAX_BLOCK: u64 = 1 << 30;

/// One transfer's progress.
pub(crate) struct SendFile {
    file_fd: RawFd,
    /// Where the next byte comes from.
    offset: u64,
    /// The bytes to send in all; None: until the end of the file.
    count: Option<u64>,
    /// What each call asks for without a count: the file's size when the transfer began.
    size: u64,
    sent: u64,
    /// Set the position even if nothing was sent (`versions.SENDFILE_ALWAYS_SEEKS`).
    always_seek: bool,
    finished: bool,
}

fn not_available(py: Python<'_>, message: &str) -> PyErr {
    match stdlib::sendfile_not_available(py).and_then(|cls| cls.call1((message,))) {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// The exception for a failed `sendfile`, `sent` bytes into the transfer. `waited`: the socket
/// was watched before this call, so an ENOTCONN means the peer went away in the middle.
pub(crate) fn transfer_error(
    py: Python<'_>,
    sent: u64,
    err: std::io::Error,
    waited: bool,
) -> PyErr {
    if sent == 0 {
        // Most likely a file sendfile cannot map (not a regular file): the fallback can still
        // send it.
        return not_available(py, "os.sendfile call failed");
    }
    if waited && err.raw_os_error() == Some(sys::ENOTCONN) {
        // The same error on every POSIX system, as asyncio normalises it.
        let exc = PyConnectionError::new_err(("socket is not connected", sys::ENOTCONN));
        exc.set_cause(py, Some(os_error(err)));
        return exc;
    }
    os_error(err)
}

impl SendFile {
    /// Sends what the socket takes now: `Done(total)` at the end of the file or of `count`,
    /// `Pending` when the socket is full (a WouldBlock error has the same meaning).
    pub(crate) fn step(&mut self, py: Python<'_>, sock_fd: RawFd) -> std::io::Result<Progress> {
        loop {
            let want = match self.count {
                Some(count) if self.sent >= count => return self.done(py),
                Some(count) => count - self.sent,
                None => self.size,
            }
            .min(MAX_BLOCK);
            let n = sys::sendfile(sock_fd, self.file_fd, self.offset, want as usize)? as u64;
            if n == 0 {
                return self.done(py);
            }
            self.offset += n;
            self.sent += n;
            if n < want && self.count.is_none_or(|count| self.sent < count) {
                // The socket took less than asked: full, or the file ended. Either way the
                // next call can wait until the socket is writable again.
                return Ok(Progress::Pending);
            }
        }
    }

    fn done(&self, py: Python<'_>) -> std::io::Result<Progress> {
        let total = self
            .sent
            .into_pyobject(py)
            .map_err(|_| std::io::Error::other("int conversion"))?;
        Ok(Progress::Done(total.into_any().unbind()))
    }

    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// The transfer is over: the file position goes to the offset after the last byte sent
    /// (once). `failed`: it ends with another error, which a seek error does not replace.
    pub(crate) fn finish(&mut self, failed: bool) -> PyResult<()> {
        if std::mem::replace(&mut self.finished, true) {
            return Ok(());
        }
        if self.sent == 0 && !self.always_seek {
            return Ok(());
        }
        match sys::seek_to(self.file_fd, self.offset) {
            // A file that cannot seek, and nothing sent: the fallback (or the caller) goes
            // on from here, with the error that matters.
            Err(err) if !failed && self.sent > 0 => Err(os_error(err)),
            _ => Ok(()),
        }
    }
}

#[pymethods]
impl LoopCore {
    /// sendfile's zero-copy transfer of `count` bytes (None: to the end) of the file `file_fd`
    /// from `offset` over the non-blocking stream socket `sock`: the number of bytes sent if
    /// that is known at once, else a SockOperation whose future gets it. `check_transport`
    /// false: `sock` is a transport's, which the caller has made idle.
    #[pyo3(signature = (sock, file_fd, offset, count, check_transport))]
    fn _sendfile_transfer(
        slf: &Bound<'_, Self>,
        sock: &Bound<'_, PyAny>,
        file_fd: RawFd,
        offset: u64,
        count: Option<&Bound<'_, PyInt>>,
        check_transport: bool,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let fd = socket_fd(sock)?;
        let size = sys::fstat(file_fd)
            .map_err(|_| not_available(py, "not a regular file"))?
            .size;
        // A count beyond any file's size is the same as "to the end".
        let count = count.map(|c| c.extract::<u64>().unwrap_or(u64::MAX));
        if count.unwrap_or(size) == 0 {
            return Ok(0u64.into_pyobject(py)?.into_any().unbind());
        }
        let mut transfer = SendFile {
            file_fd,
            offset,
            count,
            size,
            sent: 0,
            always_seek: versions::sendfile_always_seeks(py)?,
            finished: false,
        };
        match transfer.step(py, fd) {
            Ok(Progress::Done(total)) => transfer.finish(false).map(|()| total),
            Err(err) if !sys::would_block(&err) => {
                let err = transfer_error(py, transfer.sent, err, false);
                let _ = transfer.finish(true);
                Err(err)
            }
            _ => SockOp::wait(
                slf,
                sock,
                fd,
                Direction::Write,
                Operation::SendFile(transfer),
                check_transport,
            )
            .map(|op| op.into_any()),
        }
    }
}
