//! Level-triggered epoll.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Interest;

/// An epoll instance. Every registration carries its fd as the event's user data.
pub struct Poller {
    epfd: OwnedFd,
    /// `epoll_pwait2` (nanosecond timeouts) needs Linux 5.11; older kernels fall back to
    /// `epoll_wait`, whose timeout is rounded *up* to whole milliseconds so a timer never fires
    /// early.
    has_pwait2: AtomicBool,
}

/// One readiness report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub fd: RawFd,
    /// Data can be read, or the peer hung up, or the fd has an error: a reader must look.
    pub readable: bool,
    /// Data can be written, or the fd has an error or hang-up: a writer must look.
    pub writable: bool,
}

/// The buffer `Poller::wait` fills; reused across iterations so waiting never allocates.
pub struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl Default for Events {
    /// An empty buffer (no allocation): a placeholder while the real one is lent to a wait.
    fn default() -> Events {
        Events {
            buf: Vec::new(),
            len: 0,
        }
    }
}

impl Events {
    pub fn with_capacity(capacity: usize) -> Events {
        let capacity = capacity.max(1);
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; capacity],
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn get(&self, index: usize) -> Event {
        let raw = self.buf[index];
        let bits = raw.events as libc::c_int;
        // Errors and hang-ups wake both directions, as asyncio's selectors module reports them:
        // the reader sees EOF or the error on its next recv, the writer on its next send.
        let trouble = bits & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
        Event {
            fd: raw.u64 as RawFd,
            readable: trouble || bits & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI) != 0,
            writable: trouble || bits & libc::EPOLLOUT != 0,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        (0..self.len).map(|i| self.get(i))
    }

    /// Doubles the buffer when the last wait filled it, so a busy loop with many ready fds
    /// catches up in fewer waits.
    pub fn grow_if_full(&mut self) {
        if self.len == self.buf.len() && self.buf.len() < 64 * 1024 {
            let new_len = self.buf.len() * 2;
            self.buf
                .resize(new_len, libc::epoll_event { events: 0, u64: 0 });
        }
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn event_bits(interest: Interest) -> u32 {
    let mut bits = 0;
    if interest.readable {
        bits |= libc::EPOLLIN;
    }
    if interest.writable {
        bits |= libc::EPOLLOUT;
    }
    bits as u32
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        // SAFETY: plain syscall; the returned fd is owned by the OwnedFd below.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fd was just created and is owned by nobody else.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poller {
            epfd,
            has_pwait2: AtomicBool::new(true),
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: event_bits(interest),
            u64: fd as u64,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) })?;
        Ok(())
    }

    /// Starts watching `fd`. Fails with `EEXIST` if it is already registered.
    pub fn add(&self, fd: RawFd, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest)
    }

    /// Changes what a registered `fd` is watched for. Fails with `ENOENT` if it is not
    /// registered (for instance because it was closed, which drops it from epoll).
    pub fn modify(&self, fd: RawFd, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, Interest::NONE)
    }

    /// Blocks until an fd is ready, the timeout passes (`None`: no limit), or a signal arrives
    /// (`ErrorKind::Interrupted`). Call it with the GIL released.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.len = 0;
        let max = events.buf.len() as libc::c_int;
        let ptr = events.buf.as_mut_ptr();
        let epfd = self.epfd.as_raw_fd();
        let n = if self.has_pwait2.load(Ordering::Relaxed) {
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: t.subsec_nanos() as libc::c_long,
            });
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: ptr/max describe our buffer; ts_ptr is null or points to a live timespec.
            // Called through syscall() so the wheel does not need glibc >= 2.35.
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
            } as libc::c_int;
            if ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                self.has_pwait2.store(false, Ordering::Relaxed);
                return self.wait(events, timeout);
            }
            ret
        } else {
            let ms = match timeout {
                None => -1,
                Some(t) => {
                    let ms = t.as_nanos().div_ceil(1_000_000);
                    ms.min(libc::c_int::MAX as u128) as libc::c_int
                }
            };
            // SAFETY: ptr/max describe our buffer.
            unsafe { libc::epoll_wait(epfd, ptr, max, ms) }
        };
        let n = cvt(n)? as usize;
        events.len = n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn level_triggered_reports_until_drained() {
        let poller = Poller::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        poller.add(a.as_raw_fd(), Interest::READABLE).unwrap();
        let mut events = Events::with_capacity(8);
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        b.write_all(b"xy").unwrap();
        for _ in 0..2 {
            assert_eq!(
                poller
                    .wait(&mut events, Some(Duration::from_secs(5)))
                    .unwrap(),
                1
            );
            let ev = events.get(0);
            assert_eq!(ev.fd, a.as_raw_fd());
            assert!(ev.readable);
            assert!(!ev.writable);
        }
    }

    #[test]
    fn modify_switches_direction_and_delete_silences() {
        let poller = Poller::new().unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        poller.add(fd, Interest::READABLE).unwrap();
        poller.modify(fd, Interest::WRITABLE).unwrap();
        let mut events = Events::with_capacity(8);
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
        assert!(events.get(0).writable);
        poller.delete(fd).unwrap();
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        assert_eq!(
            poller
                .modify(fd, Interest::READABLE)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOENT)
        );
    }

    #[test]
    fn hangup_wakes_reader_and_writer() {
        let poller = Poller::new().unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        poller
            .add(
                a.as_raw_fd(),
                Interest {
                    readable: true,
                    writable: false,
                },
            )
            .unwrap();
        drop(b);
        let mut events = Events::with_capacity(8);
        assert_eq!(
            poller
                .wait(&mut events, Some(Duration::from_secs(5)))
                .unwrap(),
            1
        );
        assert!(events.get(0).readable);
    }

    #[test]
    fn timeout_is_not_shorter_than_asked() {
        let poller = Poller::new().unwrap();
        let mut events = Events::with_capacity(1);
        for micros in [300u64, 1500, 2500] {
            let start = std::time::Instant::now();
            poller
                .wait(&mut events, Some(Duration::from_micros(micros)))
                .unwrap();
            assert!(start.elapsed() >= Duration::from_micros(micros));
        }
    }

    #[test]
    fn full_buffer_grows() {
        let poller = Poller::new().unwrap();
        let pairs: Vec<_> = (0..3).map(|_| UnixStream::pair().unwrap()).collect();
        for (a, _) in &pairs {
            poller.add(a.as_raw_fd(), Interest::WRITABLE).unwrap();
        }
        let mut events = Events::with_capacity(2);
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 2);
        events.grow_if_full();
        assert_eq!(events.capacity(), 4);
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 3);
    }
}
