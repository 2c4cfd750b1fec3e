//! File descriptors as such: duplicating one, asking whether a number is open.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// A close-on-exec duplicate of `fd`, owned by the caller: the same open file, under a number
/// nobody else can close.
pub fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    dup_cloexec_above(fd, 0)
}

/// Whether `fd` is an open file descriptor of this process (EBADF otherwise).
pub fn is_open(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    Ok(())
}

/// Writes `line` to fd 2 as far as it goes, without Python (whose `sys.stderr` needs the GIL):
/// for what must be said while another thread holds the GIL.
pub fn write_stderr(line: &[u8]) {
    let mut rest = line;
    while !rest.is_empty() {
        // SAFETY: writes from a live slice; fd 2 may be closed, which is an error we ignore.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        match n {
            n if n > 0 => rest = &rest[n as usize..],
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// A close-on-exec duplicate of `fd` numbered `lowest` or more.
pub fn dup_cloexec_above(fd: RawFd, lowest: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; an invalid fd is an EBADF error.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, lowest) })?;
    // SAFETY: new was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Makes the number of `target` refer to `fd`'s open file (close-on-exec), closing in the same
/// step the file it referred to: whoever holds that number keeps it, with the new file.
pub fn dup_onto(fd: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: both are open descriptors borrowed for the call.
    cvt(unsafe { libc::dup3(fd.as_raw_fd(), target.as_raw_fd(), libc::O_CLOEXEC) })?;
    Ok(())
}
