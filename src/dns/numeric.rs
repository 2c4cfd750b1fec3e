//! The answer of `getaddrinfo` for a numeric address and port, made without calling it: the
//! C library's lookup costs about 7 µs even when there is nothing to look up (it reads its
//! configuration and allocates a list), which made numeric lookups several times slower than
//! on loops that answer them themselves, as asyncio's `_ipaddr_info` and uvloop do.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyString, PyTuple};

use crate::core::stdlib;
use crate::sys::parse_ip_literal;

const AI_PASSIVE: i32 = libc::AI_PASSIVE;
const AI_NUMERICHOST: i32 = libc::AI_NUMERICHOST;
const AI_NUMERICSERV: i32 = libc::AI_NUMERICSERV;

/// `socket.AddressFamily.AF_INET`/`AF_INET6`; None for other families.
pub(super) fn family_member(py: Python<'_>, family: i32) -> PyResult<Option<Bound<'_, PyAny>>> {
    Ok(match family {
        libc::AF_INET => Some(stdlib::af_inet(py)?.clone()),
        libc::AF_INET6 => Some(stdlib::af_inet6(py)?.clone()),
        _ => None,
    })
}

/// `socket.SocketKind.SOCK_STREAM`/`SOCK_DGRAM`/`SOCK_RAW`; None for other kinds.
pub(super) fn kind_member(py: Python<'_>, kind: i32) -> PyResult<Option<Bound<'_, PyAny>>> {
    Ok(match kind {
        libc::SOCK_STREAM => Some(stdlib::sock_stream(py)?.clone()),
        libc::SOCK_DGRAM => Some(stdlib::sock_dgram(py)?.clone()),
        libc::SOCK_RAW => Some(stdlib::sock_raw(py)?.clone()),
        _ => None,
    })
}

/// The port as `getaddrinfo` reads it with `AI_NUMERICSERV`, when that is certain: None,
/// an exact int in range, or decimal digits as str or bytes. Anything else (a bool, a
/// negative number, a service name, " 80") is left to the real lookup and its errors.
fn numeric_port(port: &Bound<'_, PyAny>) -> Option<u16> {
    if port.is_none() {
        return Some(0);
    }
    if port.is_exact_instance_of::<PyInt>() {
        return port.extract::<u16>().ok();
    }
    let text: Vec<u8> = if let Ok(s) = port.cast_exact::<PyString>() {
        s.to_str().ok()?.as_bytes().to_vec()
    } else if let Ok(b) = port.cast_exact::<PyBytes>() {
        b.as_bytes().to_vec()
    } else {
        return None;
    };
    if text.is_empty() || text.len() > 5 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(&text).ok()?.parse().ok()
}

/// The host as text, for an exact str or bytes holding only ASCII.
fn host_text(host: &Bound<'_, PyAny>) -> Option<String> {
    let text = if let Ok(s) = host.cast_exact::<PyString>() {
        s.to_str().ok()?.to_owned()
    } else if let Ok(b) = host.cast_exact::<PyBytes>() {
        String::from_utf8(b.as_bytes().to_vec()).ok()?
    } else {
        return None;
    };
    text.is_ascii().then_some(text)
}

/// `socket.getaddrinfo(host, port, family, type, proto, flags)`'s result when `host` is an
/// IPv4 or IPv6 literal and `port` numeric, or None when only the real lookup can answer.
#[pyfunction]
#[pyo3(name = "_numeric_addrinfo")]
pub fn numeric_addrinfo<'py>(
    py: Python<'py>,
    host: &Bound<'py, PyAny>,
    port: &Bound<'py, PyAny>,
    family: &Bound<'py, PyAny>,
    kind: &Bound<'py, PyAny>,
    proto: &Bound<'py, PyAny>,
    flags: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let Some(hints) = super::hints([family, kind, proto, flags]) else {
        return Ok(None);
    };
    let (family, kind, proto, flags) = (hints.family, hints.socktype, hints.protocol, hints.flags);
    // Flags that change the answer (AI_CANONNAME, AI_ADDRCONFIG, AI_V4MAPPED...) need the
    // real lookup.
    if flags & !(AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV) != 0 {
        return Ok(None);
    }
    let (Some(text), Some(port)) = (host_text(host), numeric_port(port)) else {
        return Ok(None);
    };
    let Some((addr_family, addr)) = parse_ip_literal(&text) else {
        return Ok(None);
    };
    if family != 0 && family != addr_family {
        return Ok(None);
    }
    // What the C library answers per socket type and protocol, in its order.
    let kinds: &[(i32, i32)] = match (kind, proto) {
        (0, 0) => &[
            (libc::SOCK_STREAM, libc::IPPROTO_TCP),
            (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
            (libc::SOCK_RAW, 0),
        ],
        (1, 0) | (1, 6) => &[(libc::SOCK_STREAM, libc::IPPROTO_TCP)],
        (2, 0) | (2, 17) => &[(libc::SOCK_DGRAM, libc::IPPROTO_UDP)],
        _ => return Ok(None),
    };
    let Some(family_obj) = family_member(py, addr_family)? else {
        return Ok(None);
    };
    let sockaddr = if addr_family == libc::AF_INET {
        (addr, port).into_pyobject(py)?.into_any()
    } else {
        (addr, port, 0u32, 0u32).into_pyobject(py)?.into_any()
    };
    let empty = PyString::new(py, "");
    let entries = kinds
        .iter()
        .map(|&(k, p)| {
            PyTuple::new(
                py,
                [
                    family_obj.clone(),
                    kind_member(py, k)?.expect("one of the three kinds above"),
                    p.into_pyobject(py)?.into_any(),
                    empty.clone().into_any(),
                    sockaddr.clone(),
                ],
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    Ok(Some(PyList::new(py, entries)?))
}
