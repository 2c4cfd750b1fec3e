//! epoll's three calls. What the bits mean and how registrations are kept is the reactor's
//! business (`reactor::epoll`); this is only the C boundary.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::cvt;

/// A new close-on-exec epoll instance.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpollOp {
    Add,
    Modify,
    Delete,
}

/// `epoll_ctl(epfd, op, fd, {events, data})`.
pub fn epoll_ctl(
    epfd: BorrowedFd<'_>,
    op: EpollOp,
    fd: RawFd,
    events: u32,
    data: u64,
) -> io::Result<()> {
    let op = match op {
        EpollOp::Add => libc::EPOLL_CTL_ADD,
        EpollOp::Modify => libc::EPOLL_CTL_MOD,
        EpollOp::Delete => libc::EPOLL_CTL_DEL,
    };
    let mut event = libc::epoll_event { events, u64: data };
    // SAFETY: `event` is a valid epoll_event for the duration of the call.
    cvt(unsafe { libc::epoll_ctl(epfd.as_raw_fd(), op, fd, &mut event) })?;
    Ok(())
}

/// `epoll_pwait2` (nanosecond timeouts) needs Linux 5.11; once it says ENOSYS, `epoll_wait`
/// is used, with the timeout rounded *up* to whole milliseconds so a timer never fires early.
static HAS_PWAIT2: AtomicBool = AtomicBool::new(true);

/// Waits for events into `events` (`None`: no time limit); returns how many were written.
/// Fails with `ErrorKind::Interrupted` when a signal arrives.
pub fn epoll_wait(
    epfd: BorrowedFd<'_>,
    events: &mut [libc::epoll_event],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
    let ptr = events.as_mut_ptr();
    let epfd = epfd.as_raw_fd();
    if HAS_PWAIT2.load(Ordering::Relaxed) {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: ptr/max describe the caller's buffer; ts_ptr is null or points to a live
        // timespec. Called through syscall() so the wheel does not need glibc >= 2.35.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                epfd,
                ptr,
                max,
                ts_ptr,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        match cvt(ret) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                HAS_PWAIT2.store(false, Ordering::Relaxed);
            }
            other => return other.map(|n| n as usize),
        }
    }
    let ms = match timeout {
        None => -1,
        Some(t) => t
            .as_nanos()
            .div_ceil(1_000_000)
            .min(libc::c_int::MAX as u128) as libc::c_int,
    };
    // SAFETY: ptr/max describe the caller's buffer.
    cvt(unsafe { libc::epoll_wait(epfd, ptr, max, ms) }).map(|n| n as usize)
}

/// One entry of the buffer `epoll_wait` fills.
pub type EpollEvent = libc::epoll_event;

pub const EPOLLIN: u32 = libc::EPOLLIN as u32;
pub const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
pub const EPOLLPRI: u32 = libc::EPOLLPRI as u32;
pub const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
pub const EPOLLERR: u32 = libc::EPOLLERR as u32;
pub const EPOLLHUP: u32 = libc::EPOLLHUP as u32;

/// An empty event, to fill buffers with.
pub const EMPTY_EVENT: EpollEvent = EpollEvent { events: 0, u64: 0 };
