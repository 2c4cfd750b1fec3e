//! eventfd: a counter the kernel makes readable, to wake a blocked poll from another thread.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// A new non-blocking, close-on-exec eventfd with a zero counter.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `value` to the counter (the fd becomes readable).
pub fn eventfd_write(fd: BorrowedFd<'_>, value: u64) -> io::Result<()> {
    // SAFETY: writes 8 bytes from a live u64.
    cvt(unsafe { libc::write(fd.as_raw_fd(), (&value as *const u64).cast(), 8) })?;
    Ok(())
}

/// Reads and resets the counter.
pub fn eventfd_read(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut counter: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64.
    cvt(unsafe { libc::read(fd.as_raw_fd(), (&mut counter as *mut u64).cast(), 8) })?;
    Ok(counter)
}
