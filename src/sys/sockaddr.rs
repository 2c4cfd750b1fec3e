//! Socket addresses as the kernel writes them, decoded into plain Rust values.

use std::ffi::CStr;

/// A sender's address, in the forms CPython's `socket.recvfrom` distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    /// No address (an unnamed Unix socket, or nothing reported).
    None,
    Inet4 {
        host: String,
        port: u16,
    },
    Inet6 {
        host: String,
        port: u16,
        flowinfo: u32,
        scope_id: u32,
    },
    /// A filesystem path, up to its first NUL, as bytes (decoded by the caller with the
    /// filesystem encoding).
    UnixPath(Vec<u8>),
    /// Linux's abstract namespace: the name, its leading NUL included.
    UnixAbstract(Vec<u8>),
    /// A family this decoder does not know.
    Other(i32),
}

extern "C" {
    // POSIX; the libc crate binds neither.
    fn inet_pton(af: libc::c_int, src: *const libc::c_char, dst: *mut libc::c_void) -> libc::c_int;
    fn inet_ntop(
        af: libc::c_int,
        src: *const libc::c_void,
        dst: *mut libc::c_char,
        size: libc::socklen_t,
    ) -> *const libc::c_char;
}

/// An IPv4 or IPv6 address as text, by the C library's `inet_ntop`, as CPython formats it
/// (Rust's `Display` differs for IPv4-compatible IPv6 addresses).
fn ntop(family: i32, addr: *const libc::c_void) -> String {
    let mut text = [0 as libc::c_char; 64];
    // SAFETY: `addr` points at an in_addr/in6_addr matching `family`; `text` is large enough
    // for either and inet_ntop NUL-terminates on success.
    let ok = unsafe {
        !inet_ntop(
            family,
            addr,
            text.as_mut_ptr(),
            text.len() as libc::socklen_t,
        )
        .is_null()
    };
    if !ok {
        return String::new();
    }
    // SAFETY: NUL-terminated by inet_ntop.
    unsafe { CStr::from_ptr(text.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// A numeric IPv4 or IPv6 address, strictly as `inet_pton` reads it (no "127.1", no scope
/// "%eth0"): its family and its text as CPython would show it after a lookup. None for
/// anything else, which only a real `getaddrinfo` may answer.
pub fn parse_ip_literal(text: &str) -> Option<(i32, String)> {
    if text.len() > 64 || text.bytes().any(|b| b == 0) {
        return None;
    }
    let c_text = std::ffi::CString::new(text).ok()?;
    let mut addr = [0u8; 16];
    for family in [libc::AF_INET, libc::AF_INET6] {
        // SAFETY: a NUL-terminated string and a buffer as large as an in6_addr.
        let parsed = unsafe { inet_pton(family, c_text.as_ptr(), addr.as_mut_ptr().cast()) };
        if parsed == 1 {
            return Some((family, ntop(family, addr.as_ptr().cast())));
        }
    }
    None
}

/// The address families the loop decodes natively (others go through Python's socket).
pub fn is_decoded_family(family: i32) -> bool {
    matches!(family, libc::AF_INET | libc::AF_INET6 | libc::AF_UNIX)
}

impl SockAddr {
    /// Decodes the first `len` bytes of `storage`, as CPython's `makesockaddr` reads them.
    pub fn from_storage(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> SockAddr {
        if len == 0 {
            return SockAddr::None;
        }
        let family = i32::from(storage.ss_family);
        let ptr = (storage as *const libc::sockaddr_storage).cast::<u8>();
        match family {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in; sockaddr_storage is large and
                // aligned enough for it.
                let sin = unsafe { &*ptr.cast::<libc::sockaddr_in>() };
                SockAddr::Inet4 {
                    host: ntop(family, (&sin.sin_addr as *const libc::in_addr).cast()),
                    port: u16::from_be(sin.sin_port),
                }
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*ptr.cast::<libc::sockaddr_in6>() };
                SockAddr::Inet6 {
                    host: ntop(family, (&sin6.sin6_addr as *const libc::in6_addr).cast()),
                    port: u16::from_be(sin6.sin6_port),
                    flowinfo: u32::from_be(sin6.sin6_flowinfo),
                    scope_id: sin6.sin6_scope_id,
                }
            }
            libc::AF_UNIX => {
                let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
                let storage_size = std::mem::size_of::<libc::sockaddr_storage>();
                // SAFETY: the path lies inside the (zero-initialised) storage.
                let path =
                    unsafe { std::slice::from_raw_parts(ptr.add(offset), storage_size - offset) };
                let path_len = (len as usize).saturating_sub(offset).min(path.len());
                if path_len > 0 && path[0] == 0 {
                    return SockAddr::UnixAbstract(path[..path_len].to_vec());
                }
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                SockAddr::UnixPath(path[..end].to_vec())
            }
            other => SockAddr::Other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn ip_literals_are_read_strictly_and_shown_as_the_c_library_shows_them() {
        let v4 = Some((libc::AF_INET, "127.0.0.1".to_owned()));
        assert_eq!(parse_ip_literal("127.0.0.1"), v4);
        let v6 = Some((libc::AF_INET6, "::1".to_owned()));
        assert_eq!(parse_ip_literal("0:0::1"), v6);
        let mapped = Some((libc::AF_INET6, "::ffff:1.2.3.4".to_owned()));
        assert_eq!(parse_ip_literal("::FFFF:1.2.3.4"), mapped);
        for not_strict in [
            "127.1",
            "010.0.0.1",
            "fe80::1%lo",
            "localhost",
            "",
            "1.2.3.4 ",
        ] {
            assert_eq!(parse_ip_literal(not_strict), None, "{not_strict}");
        }
    }

    #[test]
    fn ipv4_sender_is_decoded() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.send_to(b"hi", a.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = super::super::recvfrom(a.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert_eq!(
            from,
            SockAddr::Inet4 {
                host: "127.0.0.1".into(),
                port: b.local_addr().unwrap().port()
            }
        );
    }
}
