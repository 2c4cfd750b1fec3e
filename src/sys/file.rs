//! Files by descriptor and by path: the calls of `sendfile` and of Unix servers' socket files,
//! made here so that the Python face never blocks the loop thread in an `os` call.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

use super::cvt;

/// What `stat`/`fstat` say about a file, the fields the loop reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub inode: u64,
    pub is_socket: bool,
}

impl FileStat {
    fn from_raw(st: &libc::stat) -> FileStat {
        FileStat {
            size: st.st_size as u64,
            inode: st.st_ino,
            is_socket: st.st_mode & libc::S_IFMT == libc::S_IFSOCK,
        }
    }
}

/// `fstat(fd)`.
pub fn fstat(fd: RawFd) -> io::Result<FileStat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: st is writable for one struct stat; an invalid fd is an EBADF error.
    cvt(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled st.
    Ok(FileStat::from_raw(unsafe { &st.assume_init() }))
}

/// `stat(path)`, following symlinks as `os.stat` does.
pub fn stat(path: &CStr) -> io::Result<FileStat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: path is NUL-terminated; st is writable for one struct stat.
    cvt(unsafe { libc::stat(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: stat succeeded, so it filled st.
    Ok(FileStat::from_raw(unsafe { &st.assume_init() }))
}

/// `unlink(path)`.
pub fn unlink(path: &CStr) -> io::Result<()> {
    // SAFETY: path is NUL-terminated.
    cvt(unsafe { libc::unlink(path.as_ptr()) }).map(drop)
}

/// `lseek(fd, offset, SEEK_SET)`.
pub fn seek_to(fd: RawFd, offset: u64) -> io::Result<()> {
    let offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: plain syscall on a number; an invalid fd is an EBADF error.
    cvt(unsafe { libc::lseek(fd, offset, libc::SEEK_SET) }).map(drop)
}

/// `sendfile(out_fd, in_fd, &offset, count)`: up to `count` bytes of `in_fd` from `offset`
/// (which it leaves alone: the file position does not move) to `out_fd`; 0 at end of file.
pub fn sendfile(out_fd: RawFd, in_fd: RawFd, offset: u64, count: usize) -> io::Result<usize> {
    let mut offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: plain syscall; offset is a live off_t the kernel updates.
    let sent = cvt(unsafe { libc::sendfile(out_fd, in_fd, &mut offset, count) })?;
    Ok(sent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn stat_of_a_file_and_of_nothing() {
        let mut file = tempfile_in_tmp();
        file.1.write_all(b"hello").unwrap();
        let by_fd = fstat(file.1.as_raw_fd()).unwrap();
        assert_eq!(by_fd.size, 5);
        assert!(!by_fd.is_socket);
        let path = CString::new(file.0.clone()).unwrap();
        assert_eq!(stat(&path).unwrap(), by_fd);
        unlink(&path).unwrap();
        let gone = stat(&path).unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::ENOENT));
        assert_eq!(
            unlink(&path).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn fstat_of_a_bad_fd() {
        assert_eq!(fstat(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }

    fn tempfile_in_tmp() -> (String, std::fs::File) {
        let path = format!(
            "{}/ferroloop-sys-file-{}-{:?}",
            std::env::temp_dir().display(),
            std::process::id(),
            std::thread::current().id()
        );
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }
}
