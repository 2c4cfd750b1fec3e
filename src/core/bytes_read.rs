//! The `bytes` a read hands to Python. Small reads land in the loop's buffer and are copied
//! into a `bytes` of their size; large ones land in a `bytes` of their own, as CPython's
//! `socket.recv` makes it (one allocation of the most the read may return, shrunk in place to
//! what it returned): for them the copy was most of a read's cost. Which a read is, is guessed
//! from the last read of the same stream.

use std::os::fd::RawFd;
use std::os::raw::c_int;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::event_loop::{LoopCore, READ_BUFFER_SIZE};
use super::gil_cell::GilFlag;
use crate::sys;

extern "C" {
    // In CPython's C API (cpython/bytesobject.h) on every version ferroloop supports; pyo3-ffi
    // keeps its own declaration private.
    fn _PyBytes_Resize(bytes: *mut *mut ffi::PyObject, newsize: ffi::Py_ssize_t) -> c_int;
}

/// Reads expected at least this large land in a `bytes` of their own; smaller ones are
/// copied, which costs less than the shrinking of a larger allocation.
const DIRECT_FROM: usize = 4096;

/// The most a transport's read into a `bytes` of its own asks for: a `bytes` of it stays
/// under glibc's default mmap threshold (128 KiB), so it comes from the heap whatever the
/// process freed before (above the threshold, an allocation is an mmap, munmap and page
/// faults each time until glibc has raised it).
const DIRECT_CAPACITY: usize = 128 * 1024 - 64;

/// What a stream's last read returned, to guess the size of its next one.
pub struct ReadSize(GilFlag<usize>);

impl Default for ReadSize {
    fn default() -> ReadSize {
        ReadSize(GilFlag::new(0))
    }
}

impl ReadSize {
    /// Whether the next read is expected large enough to land in a `bytes` of its own.
    pub fn expects_large(&self, py: Python<'_>) -> bool {
        self.0.get(py) >= DIRECT_FROM
    }

    pub fn record(&self, py: Python<'_>, n: usize) {
        self.0.set(py, n);
    }
}

/// One `recv` into a `bytes` of exactly the size it returned: of at most `max` bytes (what
/// `sock_recv` was asked for: a datagram socket's read must not cut a datagram the loop's
/// buffer would hold), or of what is there (`None`, a transport's read). `size` is the
/// stream's last read. The outer error is Python's (MemoryError), the inner the read's.
#[inline(always)] // on the read path of every connection: its call cost was a tenth of the work
pub fn recv_bytes<'py>(
    lp: &LoopCore,
    py: Python<'py>,
    fd: RawFd,
    max: Option<usize>,
    size: &ReadSize,
) -> PyResult<std::io::Result<Bound<'py, PyBytes>>> {
    let read = if max != Some(0) && size.expects_large(py) {
        let capacity = max.map_or(DIRECT_CAPACITY, |max| max.min(READ_BUFFER_SIZE));
        // SAFETY: recv writes at most `len` bytes at `ptr`, which read_into_new_bytes
        // vouches for.
        read_into_new_bytes(py, capacity, |ptr, len| unsafe {
            sys::recv_raw(fd, ptr, len)
        })?
    } else {
        lp.read_bytes(py, max.unwrap_or(usize::MAX), |buf| {
            Ok((sys::recv(fd, buf)?, ()))
        })
        .map(|(data, ())| data)
    };
    if let Ok(data) = &read {
        size.record(py, data.as_bytes().len());
    }
    Ok(read)
}

/// One read of at most `capacity` (> 0) bytes (`read` gets memory valid for writes of `len`
/// bytes and returns how many it wrote) into a new `bytes` of exactly that size.
fn read_into_new_bytes<'py>(
    py: Python<'py>,
    capacity: usize,
    read: impl FnOnce(*mut u8, usize) -> std::io::Result<usize>,
) -> PyResult<std::io::Result<Bound<'py, PyBytes>>> {
    debug_assert!(capacity > 0);
    let size = ffi::Py_ssize_t::try_from(capacity).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: a NULL source asks CPython for an uninitialised bytes of `size` (> 0) bytes: a
    // new object of its own, not a shared one, so it may be written and resized until it is
    // handed out.
    let mut object = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
    if object.is_null() {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `object` is the bytes just made; its storage holds `size` bytes.
    let data = unsafe { ffi::PyBytes_AS_STRING(object) }
        .cast_mut()
        .cast::<u8>();
    let n = match read(data, size as usize) {
        Ok(n) => n,
        Err(err) => {
            // SAFETY: our only reference to the object.
            unsafe { ffi::Py_DECREF(object) };
            return Ok(Err(err));
        }
    };
    debug_assert!(n <= size as usize);
    // SAFETY: the object is still ours alone (refcount 1), as _PyBytes_Resize requires; on
    // failure it releases it, sets the error and leaves NULL.
    if n < size as usize && unsafe { _PyBytes_Resize(&mut object, n as ffi::Py_ssize_t) } < 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: an owned reference to a bytes object.
    Ok(Ok(unsafe {
        Bound::from_owned_ptr(py, object).cast_into_unchecked::<PyBytes>()
    }))
}
