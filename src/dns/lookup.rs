//! `loop.getaddrinfo` for names: the C resolver on the native pool, its answer delivered to
//! the awaiting future by the loop, converted exactly as `socket.getaddrinfo` converts it.
//! Arguments whose conversion is not certain here (non-ASCII names, which need IDNA; ints
//! out of range; odd types) are refused, and the Python face uses the executor for them.

use std::sync::Arc;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyString, PyTuple};

use super::numeric::{family_member, kind_member};
use super::pool::{self, Answer, Job};
use crate::core::event_loop::LoopCore;
use crate::core::stdlib;
use crate::errors::os_error;
use crate::sys::{c_text, AddrInfo, LookupError, SockAddr};

/// The host as `socket.getaddrinfo` passes it to C, when that is certain without the IDNA
/// codec: None, bytes, or an ASCII str whose labels the codec would pass unchanged.
fn host_bytes(host: &Bound<'_, PyAny>) -> Option<Option<Vec<u8>>> {
    if host.is_none() {
        return Some(None);
    }
    if let Ok(b) = host.cast_exact::<PyBytes>() {
        return Some(Some(b.as_bytes().to_vec()));
    }
    let text = host.cast_exact::<PyString>().ok()?.to_str().ok()?;
    if !text.is_ascii() {
        return None;
    }
    // The codec refuses empty labels (but a final dot) and labels over 63 characters.
    let labels = text.strip_suffix('.').unwrap_or(text);
    if labels
        .split('.')
        .any(|label| label.is_empty() || label.len() > 63)
    {
        return None;
    }
    Some(Some(text.as_bytes().to_vec()))
}

/// The port as `socket.getaddrinfo` passes it to C, when certain: None, an exact int of a
/// port number, or an ASCII str or bytes.
fn service_bytes(port: &Bound<'_, PyAny>) -> Option<Option<Vec<u8>>> {
    if port.is_none() {
        return Some(None);
    }
    if port.is_exact_instance_of::<PyInt>() {
        let number: u16 = port.extract().ok()?;
        return Some(Some(number.to_string().into_bytes()));
    }
    if let Ok(b) = port.cast_exact::<PyBytes>() {
        return Some(Some(b.as_bytes().to_vec()));
    }
    let text = port.cast_exact::<PyString>().ok()?.to_str().ok()?;
    text.is_ascii().then(|| Some(text.as_bytes().to_vec()))
}

/// The answer as `socket.getaddrinfo` returns it, or None where its conversion would differ
/// from ours (a scoped IPv6 address, which it shows with "%interface"; a canonical name that
/// is not UTF-8; a family it does not turn into a 2-tuple or 4-tuple).
fn to_python<'py>(py: Python<'py>, entries: &[AddrInfo]) -> PyResult<Option<Bound<'py, PyList>>> {
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let sockaddr = match &entry.addr {
            SockAddr::Inet4 { host, port } => (host, port).into_pyobject(py)?.into_any(),
            SockAddr::Inet6 {
                host,
                port,
                flowinfo,
                scope_id: 0,
            } => (host, port, flowinfo, 0u32).into_pyobject(py)?.into_any(),
            _ => return Ok(None),
        };
        let canonname = match &entry.canonname {
            None => PyString::new(py, ""),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => PyString::new(py, text),
                Err(_) => return Ok(None),
            },
        };
        let (Some(family), Some(kind)) = (
            family_member(py, entry.family)?,
            kind_member(py, entry.socktype)?,
        ) else {
            return Ok(None);
        };
        out.push(PyTuple::new(
            py,
            [
                family,
                kind,
                entry.protocol.into_pyobject(py)?.into_any(),
                canonname.into_any(),
                sockaddr,
            ],
        )?);
    }
    Ok(Some(PyList::new(py, out)?))
}

/// The exception `socket.getaddrinfo` raises for `error`.
fn to_exception(py: Python<'_>, error: LookupError) -> PyResult<PyErr> {
    Ok(match error {
        LookupError::Os(err) => os_error(err),
        LookupError::Gai { code, message } => {
            PyErr::from_value(stdlib::gaierror(py)?.call1((code, message))?)
        }
    })
}

/// Sets `future` from the answer, unless it was cancelled meanwhile. None as its result
/// asks the Python face to look the name up again the slow way.
fn deliver(py: Python<'_>, future: &Bound<'_, PyAny>, answer: Answer) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    match answer {
        Ok(entries) => match to_python(py, &entries)? {
            Some(list) => future.call_method1("set_result", (list,))?,
            None => future.call_method1("set_result", (py.None(),))?,
        },
        Err(error) => {
            let exception = to_exception(py, error)?;
            future.call_method1("set_exception", (exception.into_value(py),))?
        }
    };
    Ok(())
}

#[pymethods]
impl LoopCore {
    /// Starts looking `host` up on the native pool, `future` getting the answer; False (and
    /// nothing started) when the arguments need `socket.getaddrinfo`'s own conversion.
    #[allow(clippy::too_many_arguments)]
    fn _getaddrinfo(
        &self,
        py: Python<'_>,
        future: Py<PyAny>,
        host: &Bound<'_, PyAny>,
        port: &Bound<'_, PyAny>,
        family: &Bound<'_, PyAny>,
        kind: &Bound<'_, PyAny>,
        proto: &Bound<'_, PyAny>,
        flags: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let (Some(host), Some(service)) = (host_bytes(host), service_bytes(port)) else {
            return Ok(false);
        };
        let Some(hints) = super::hints([family, kind, proto, flags]) else {
            return Ok(false);
        };
        let host = host.map(|h| c_text(&h));
        let service = service.map(|s| c_text(&s));
        // A NUL byte inside: socket.getaddrinfo says so with its own error.
        if matches!(host, Some(None)) || matches!(service, Some(None)) {
            return Ok(false);
        }
        let reactor = self.reactor(py)?;
        let completions = Arc::clone(&self.completions);
        let job = Job {
            host: host.flatten(),
            service: service.flatten(),
            hints,
            done: Box::new(move |answer| {
                let deliver_it = Box::new(move |py: Python<'_>| {
                    let future = future.bind(py);
                    if let Err(err) = deliver(py, future, answer) {
                        // Only a broken future gets here; it is the future's problem.
                        err.write_unraisable(py, Some(future));
                    }
                });
                completions.push(deliver_it, &reactor);
            }),
        };
        pool::submit(job).map_err(|err| PyOSError::new_err(err.to_string()))?;
        Ok(true)
    }
}
