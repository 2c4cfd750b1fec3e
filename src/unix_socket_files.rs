//! A Unix server's socket file, looked at and removed without a blocking `os` call from the
//! Python face on the loop thread (`ferroloop/servers.py`): the stale file of an earlier run
//! before `bind()`, and on close (Python 3.13's `cleanup_socket`) the server's own file, if it
//! is still the one it bound.
//!
//! Errors are `os.stat`'s and `os.unlink`'s, filename included, for the Python face to report
//! as asyncio does.

use std::ffi::CString;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::strerror;
use crate::sys;

/// `path` (a str or bytes, as `os.fspath` gives it) as the C string the OS takes, encoded as
/// `os.stat` encodes it.
fn c_path(path: &Bound<'_, PyAny>) -> PyResult<CString> {
    let py = path.py();
    let encoded = py.import("os")?.getattr("fsencode")?.call1((path,))?;
    let bytes = encoded.cast::<PyBytes>()?.as_bytes();
    CString::new(bytes).map_err(|_| PyValueError::new_err("embedded null byte"))
}

fn path_error(path: &Bound<'_, PyAny>, err: std::io::Error) -> PyErr {
    match err.raw_os_error() {
        Some(errno) => PyOSError::new_err((errno, strerror(errno), path.clone().unbind())),
        None => PyOSError::new_err(err.to_string()),
    }
}

/// `_remove_stale_unix_socket(path)`: removes the socket file at `path`; any other kind of
/// file is left alone (bind() then says the address is in use).
#[pyfunction]
#[pyo3(name = "_remove_stale_unix_socket")]
pub fn remove_stale_unix_socket(path: &Bound<'_, PyAny>) -> PyResult<()> {
    let c = c_path(path)?;
    let st = sys::stat(&c).map_err(|e| path_error(path, e))?;
    if st.is_socket {
        sys::unlink(&c).map_err(|e| path_error(path, e))?;
    }
    Ok(())
}

/// `_unix_socket_inode(path)`: the inode of the file at `path`, None if there is none.
#[pyfunction]
#[pyo3(name = "_unix_socket_inode")]
pub fn unix_socket_inode(path: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
    match sys::stat(&c_path(path)?) {
        Ok(st) => Ok(Some(st.inode)),
        Err(e) if e.raw_os_error() == Some(sys::ENOENT) => Ok(None),
        Err(e) => Err(path_error(path, e)),
    }
}

/// `_remove_unix_socket_file(path, inode)`: removes the file at `path` if it is still the one
/// with `inode` (not one someone put in its place).
#[pyfunction]
#[pyo3(name = "_remove_unix_socket_file")]
pub fn remove_unix_socket_file(path: &Bound<'_, PyAny>, inode: u64) -> PyResult<()> {
    let c = c_path(path)?;
    let st = sys::stat(&c).map_err(|e| path_error(path, e))?;
    if st.inode == inode {
        sys::unlink(&c).map_err(|e| path_error(path, e))?;
    }
    Ok(())
}
