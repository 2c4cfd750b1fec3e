//! The CPython objects the core calls, looked up once per process.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple};

macro_rules! cached_attr {
    ($(#[$doc:meta])* $name:ident, $module:literal, $attr:literal) => {
        $(#[$doc])*
        pub fn $name(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
            static CELL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            CELL.get_or_try_init(py, || Ok::<_, PyErr>(py.import($module)?.getattr($attr)?.unbind()))
                .map(|obj| obj.bind(py))
        }
    };
}

cached_attr!(
    /// `socket.AF_INET`: the `socket.AddressFamily` member `socket.getaddrinfo` answers with.
    af_inet, "socket", "AF_INET");
cached_attr!(
    /// `socket.AF_INET6`.
    af_inet6, "socket", "AF_INET6");
cached_attr!(
    /// `socket.SOCK_STREAM`: the `socket.SocketKind` member.
    sock_stream, "socket", "SOCK_STREAM");
cached_attr!(
    /// `socket.SOCK_DGRAM`.
    sock_dgram, "socket", "SOCK_DGRAM");
cached_attr!(
    /// `socket.SOCK_RAW`.
    sock_raw, "socket", "SOCK_RAW");
cached_attr!(
    /// `socket.gaierror`: what a failed lookup raises.
    gaierror, "socket", "gaierror");
cached_attr!(
    /// `asyncio.Future`: the C implementation, so futures are exactly asyncio's.
    future_type, "asyncio", "Future");
cached_attr!(
    /// `asyncio.Task`.
    task_type, "asyncio", "Task");
cached_attr!(
    /// `asyncio.format_helpers._format_callback_source(callback, args)`: how asyncio names a
    /// callback in reprs and error messages.
    format_callback_source, "asyncio.format_helpers", "_format_callback_source");
cached_attr!(
    /// `asyncio.format_helpers.extract_stack(frame)`: debug-mode source tracebacks.
    extract_stack, "asyncio.format_helpers", "extract_stack");
cached_attr!(
    /// The `asyncio` logger, so ferroloop's warnings obey the user's logging configuration.
    asyncio_logger, "asyncio.log", "logger");
cached_attr!(
    /// `asyncio.coroutines.iscoroutine`.
    iscoroutine, "asyncio.coroutines", "iscoroutine");
cached_attr!(
    /// The running version's `asyncio.coroutines.iscoroutinefunction` (3.14 deprecates the
    /// public name; `ferroloop.versions` picks the one asyncio's own checks use).
    iscoroutinefunction, "ferroloop.versions", "iscoroutinefunction");
cached_attr!(
    /// `sys._getframe`, for debug-mode source tracebacks.
    sys_getframe, "sys", "_getframe");

cached_attr!(
    /// `asyncio.BufferedProtocol`: protocols that read straight into their own buffer.
    buffered_protocol_type, "asyncio", "BufferedProtocol");
cached_attr!(
    /// `asyncio.futures._set_result_unless_cancelled(fut, result)`.
    set_result_unless_cancelled, "asyncio.futures", "_set_result_unless_cancelled");

cached_attr!(
    /// `asyncio.SendfileNotAvailableError`: sendfile's "use the fallback" answer.
    sendfile_not_available, "asyncio.exceptions", "SendfileNotAvailableError");

cached_attr!(
    /// `socket.socket`, the class of nearly every socket a program hands the loop.
    socket_type, "socket", "socket");
cached_attr!(
    /// `_socket.socket.fileno`, the C method `socket.socket` inherits.
    c_socket_fileno, "_socket", "socket");

/// `sock.fileno()`. For a plain `socket.socket` the C method is called directly, without the
/// attribute lookup: sock_* operations ask this before every syscall.
pub fn fileno<'py>(sock: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = sock.py();
    if sock.get_type().is(socket_type(py)?) {
        static METHOD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let method = METHOD.get_or_try_init(py, || {
            Ok::<_, PyErr>(c_socket_fileno(py)?.getattr("fileno")?.unbind())
        })?;
        return vectorcall(method.bind(py), [sock], None);
    }
    sock.call_method0(pyo3::intern!(py, "fileno"))
}

cached_attr!(
    /// `ferroloop.sock._check_socket(loop, sock)`: asyncio's checks of a sock_* argument.
    check_socket, "ferroloop.sock", "_check_socket");

/// Whether `sock` is a plain `socket.socket` in non-blocking mode: the case in which asyncio's
/// checks of a sock_* argument (`check_socket`) certainly pass, told without running them.
pub fn is_plain_nonblocking_socket(sock: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = sock.py();
    if !sock.get_type().is(socket_type(py)?) {
        return Ok(false);
    }
    static METHOD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let method = METHOD.get_or_try_init(py, || {
        Ok::<_, PyErr>(c_socket_fileno(py)?.getattr("gettimeout")?.unbind())
    })?;
    let timeout = vectorcall(method.bind(py), [sock], None)?;
    Ok(timeout
        .cast_exact::<pyo3::types::PyFloat>()
        .is_ok_and(|t| t.value() == 0.0))
}

/// A tuple of interned keyword names for vectorcall, built once.
pub fn kwnames<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyTuple>>,
    names: &[&str],
) -> PyResult<&'py Bound<'py, PyTuple>> {
    cell.get_or_try_init(py, || {
        let items: Vec<Bound<'_, PyString>> =
            names.iter().map(|n| PyString::intern(py, n)).collect();
        Ok::<_, PyErr>(PyTuple::new(py, items)?.unbind())
    })
    .map(|t| t.bind(py))
}

/// `callable(*positional, **dict(zip(kwnames, keyword_values)))` through vectorcall: no
/// argument tuple or keyword dict is built. `args` holds the positional values followed by
/// the keyword values.
pub fn vectorcall<'py, const N: usize>(
    callable: &Bound<'py, PyAny>,
    args: [&Bound<'py, PyAny>; N],
    kwnames: Option<&Bound<'py, PyTuple>>,
) -> PyResult<Bound<'py, PyAny>> {
    let nkw = kwnames.map_or(0, |k| k.len());
    let ptrs = args.map(|a| a.as_ptr());
    // SAFETY: `ptrs` holds borrowed pointers kept alive by `args` for the call; the result is
    // a new reference or NULL with an exception set.
    unsafe {
        let result = pyo3::ffi::PyObject_Vectorcall(
            callable.as_ptr(),
            ptrs.as_ptr(),
            N.saturating_sub(nkw),
            kwnames.map_or(std::ptr::null_mut(), |k| k.as_ptr()),
        );
        Bound::from_owned_ptr_or_err(callable.py(), result)
    }
}
