//! Reading and writing sockets and pipes: the syscalls of the hot paths.

use std::io;
use std::os::fd::RawFd;

use super::cvt;
use super::sockaddr::SockAddr;

fn byte_count(ret: isize) -> io::Result<usize> {
    cvt(ret).map(|n| n as usize)
}

/// `recv(fd, buf, 0)`.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a live, writable slice of buf.len() bytes.
    byte_count(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })
}

/// `recv` into raw memory the caller vouches for (a Python buffer held for the call).
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes for the duration of the call.
pub unsafe fn recv_raw(fd: RawFd, ptr: *mut u8, len: usize) -> io::Result<usize> {
    // SAFETY: guaranteed by the caller.
    byte_count(unsafe { libc::recv(fd, ptr.cast(), len, 0) })
}

/// `send(fd, buf, MSG_NOSIGNAL)`: a closed peer is an EPIPE error, never a SIGPIPE, even in
/// an embedding that did not ignore SIGPIPE as Python does.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is a live slice of buf.len() bytes.
    byte_count(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) })
}

/// True for errors that mean "not now, try when the fd is ready again".
pub fn would_block(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// `send(MSG_NOSIGNAL)` on a socket, `write` on any other fd.
pub fn send_or_write(fd: RawFd, data: &[u8], is_socket: bool) -> io::Result<usize> {
    if is_socket {
        send(fd, data)
    } else {
        write(fd, data)
    }
}

/// A vectored send: `sendmsg(fd, iov, MSG_NOSIGNAL)` on sockets, `writev` on other fds (pipes:
/// Python ignores SIGPIPE, so EPIPE comes back as an error there too).
pub fn send_vectored(
    fd: RawFd,
    slices: &[std::io::IoSlice<'_>],
    is_socket: bool,
) -> io::Result<usize> {
    if slices.len() == 1 {
        return send_or_write(fd, &slices[0], is_socket);
    }
    // SAFETY: IoSlice is ABI-compatible with iovec on Unix; the slices outlive the call.
    let ret = unsafe {
        if is_socket {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = slices.len() as _;
            libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL)
        } else {
            libc::writev(
                fd,
                slices.as_ptr() as *const libc::iovec,
                slices.len() as libc::c_int,
            )
        }
    };
    byte_count(ret)
}

/// `write(fd, buf)`, for pipes.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is a live slice of buf.len() bytes.
    byte_count(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// `read(fd, buf)`, for pipes.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a live, writable slice of buf.len() bytes.
    byte_count(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// `recvfrom(fd, buf, 0)`: the datagram's size and the sender's address.
pub fn recvfrom(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SockAddr)> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value. Zeroed as CPython
    // does, so a short address reads as NUL-padded.
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: buf is a live, writable slice; `from` is writable for `len` bytes.
    let n = byte_count(unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut from as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    Ok((n, SockAddr::from_storage(&from, len)))
}

/// `shutdown(fd, SHUT_WR)`: the peer reads EOF once what was sent has arrived.
pub fn shutdown_write(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::shutdown(fd, libc::SHUT_WR) })?;
    Ok(())
}
