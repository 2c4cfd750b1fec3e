//! Every call into the C library, as safe functions: the rest of the crate calls these, never
//! `libc` itself (mio keeps its OS code the same way, under `sys/`). A failing call becomes an
//! `io::Error` in one place, [`cvt`], which reads errno right after the call.

mod addrinfo;
mod clock;
mod epoll;
mod eventfd;
mod fd;
mod file;
mod sockaddr;
mod socket;
mod spawn;

pub use addrinfo::{c_text, getaddrinfo, AddrInfo, Hints, LookupError};
pub use clock::{monotonic, monotonic_resolution, name_this_thread, thread_id};
pub use epoll::{
    epoll_create, epoll_ctl, epoll_wait, EpollEvent, EpollOp, EMPTY_EVENT, EPOLLERR, EPOLLHUP,
    EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLRDHUP,
};
pub use eventfd::{eventfd, eventfd_read, eventfd_write};
pub use fd::{dup_cloexec, dup_onto, is_open, write_stderr};
pub use file::{fstat, seek_to, sendfile, stat, unlink, FileStat};
pub use sockaddr::{is_decoded_family, parse_ip_literal, SockAddr};
pub use socket::{
    read, recv, recv_raw, recvfrom, send, send_or_write, send_vectored, shutdown_write,
    would_block, write,
};
pub use spawn::{spawn, ChildFailed, ChildPlan, Spawned, Stage};

use std::io;

/// The errno values the loop tells apart.
pub use libc::{EBADF, EEXIST, EIO, ENOENT, ENOTCONN};

/// The return types of C calls that signal failure with -1.
pub trait CReturn: Copy {
    fn is_error(self) -> bool;
}

macro_rules! negative_is_error {
    ($($t:ty),*) => {$(
        impl CReturn for $t {
            fn is_error(self) -> bool {
                self < 0
            }
        }
    )*};
}
negative_is_error!(i32, i64, isize);

/// `ret`, or the errno the call left as an `io::Error`.
#[inline]
pub fn cvt<T: CReturn>(ret: T) -> io::Result<T> {
    if ret.is_error() {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
