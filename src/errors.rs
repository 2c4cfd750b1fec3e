//! Rust errors as the Python exceptions asyncio raises for them.

use std::io;

use pyo3::exceptions::{
    PyKeyboardInterrupt, PyMemoryError, PyOSError, PyRuntimeError, PySystemExit,
};
use pyo3::{PyErr, Python};

/// `OSError(errno, strerror)`: Python's OSError constructor picks the subclass from the errno
/// (`ConnectionResetError`, `BlockingIOError`, ...), exactly as a failing socket call in
/// Python would raise it.
pub fn os_error(err: io::Error) -> PyErr {
    match err.raw_os_error() {
        Some(errno) => PyOSError::new_err((errno, strerror(errno))),
        // A `bytes` the read could not allocate (see `bytes_read`).
        None if err.kind() == io::ErrorKind::OutOfMemory => PyMemoryError::new_err(()),
        None => PyOSError::new_err(err.to_string()),
    }
}

/// The C library's message for an errno, as `os.strerror` gives it.
pub fn strerror(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    // std appends " (os error N)"; Python's messages do not.
    match text.rfind(" (os error ") {
        Some(pos) => text[..pos].to_owned(),
        None => text,
    }
}

pub fn loop_closed() -> PyErr {
    PyRuntimeError::new_err("Event loop is closed")
}

/// SystemExit and KeyboardInterrupt leave the loop: no callback, transport or handler
/// swallows them.
pub fn is_fatal_signal(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_has_no_rust_suffix() {
        assert_eq!(strerror(libc::ECONNRESET), "Connection reset by peer");
        assert_eq!(strerror(libc::EAGAIN), "Resource temporarily unavailable");
    }
}
