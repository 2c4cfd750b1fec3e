//! `getaddrinfo(3)`, answered as plain Rust values.

use std::ffi::{CStr, CString};
use std::io;

use super::sockaddr::SockAddr;

/// One entry of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    pub family: i32,
    pub socktype: i32,
    pub protocol: i32,
    /// The canonical name, as bytes (only the first entry has one, and only if asked for).
    pub canonname: Option<Vec<u8>>,
    pub addr: SockAddr,
}

/// Why a lookup failed: an `EAI_*` code with the C library's message, or, for
/// `EAI_SYSTEM`, the OS error.
#[derive(Debug)]
pub enum LookupError {
    Gai { code: i32, message: String },
    Os(io::Error),
}

pub struct Hints {
    pub family: i32,
    pub socktype: i32,
    pub protocol: i32,
    pub flags: i32,
}

/// Blocks for as long as the resolver takes: call it on a thread that may wait.
pub fn getaddrinfo(
    host: Option<&CStr>,
    service: Option<&CStr>,
    hints: &Hints,
) -> Result<Vec<AddrInfo>, LookupError> {
    // SAFETY: an all-zero addrinfo is a valid "no hints" value; we then set the four fields.
    let mut c_hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    c_hints.ai_family = hints.family;
    c_hints.ai_socktype = hints.socktype;
    c_hints.ai_protocol = hints.protocol;
    c_hints.ai_flags = hints.flags;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated strings or NULL, valid hints, and an out-pointer.
    let code = unsafe {
        libc::getaddrinfo(
            host.map_or(std::ptr::null(), CStr::as_ptr),
            service.map_or(std::ptr::null(), CStr::as_ptr),
            &c_hints,
            &mut list,
        )
    };
    if code != 0 {
        if code == libc::EAI_SYSTEM {
            return Err(LookupError::Os(io::Error::last_os_error()));
        }
        // SAFETY: gai_strerror returns a static NUL-terminated string for any code.
        let message = unsafe { CStr::from_ptr(libc::gai_strerror(code)) };
        return Err(LookupError::Gai {
            code,
            message: message.to_string_lossy().into_owned(),
        });
    }
    let mut entries = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a node of the list getaddrinfo returned, alive until freeaddrinfo.
        let info = unsafe { &*cursor };
        // SAFETY: zero storage is a valid sockaddr_storage; the copy is bounded by its size.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = (info.ai_addrlen as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
        if !info.ai_addr.is_null() {
            // SAFETY: ai_addr points at ai_addrlen bytes; storage holds at least len bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    info.ai_addr.cast::<u8>(),
                    (&mut storage as *mut libc::sockaddr_storage).cast::<u8>(),
                    len,
                )
            };
        }
        let canonname = (!info.ai_canonname.is_null())
            // SAFETY: a NUL-terminated string owned by the list.
            .then(|| {
                unsafe { CStr::from_ptr(info.ai_canonname) }
                    .to_bytes()
                    .to_vec()
            });
        entries.push(AddrInfo {
            family: info.ai_family,
            socktype: info.ai_socktype,
            protocol: info.ai_protocol,
            canonname,
            addr: SockAddr::from_storage(&storage, len as libc::socklen_t),
        });
        cursor = info.ai_next;
    }
    if !list.is_null() {
        // SAFETY: the list getaddrinfo returned, freed once.
        unsafe { libc::freeaddrinfo(list) };
    }
    Ok(entries)
}

/// Argument text for [`getaddrinfo`] (a host or service): None if it holds a NUL byte.
pub fn c_text(bytes: &[u8]) -> Option<CString> {
    CString::new(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_resolves_and_unknown_names_fail_with_a_gai_code() {
        let hints = Hints {
            family: libc::AF_INET,
            socktype: libc::SOCK_STREAM,
            protocol: 0,
            flags: 0,
        };
        let host = c_text(b"127.0.0.1").unwrap();
        let port = c_text(b"80").unwrap();
        let found = getaddrinfo(Some(&host), Some(&port), &hints).unwrap();
        assert_eq!(
            found[0].addr,
            SockAddr::Inet4 {
                host: "127.0.0.1".into(),
                port: 80
            }
        );
        let bad = c_text(b"no-such-service-name").unwrap();
        match getaddrinfo(Some(&host), Some(&bad), &hints) {
            Err(LookupError::Gai { code, message }) => {
                assert_eq!(code, libc::EAI_SERVICE);
                assert!(!message.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
}
