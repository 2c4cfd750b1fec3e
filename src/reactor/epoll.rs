//! Level-triggered epoll.

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::time::Duration;

use super::Interest;
use crate::sys::{self, EpollEvent, EpollOp};

/// An epoll instance. Every registration carries a token the caller chooses (the loop's is
/// the fd and a generation, so a stale event for a reused number is recognised).
pub struct Poller {
    epfd: OwnedFd,
}

/// One readiness report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The token the fd was registered with.
    pub token: u64,
    /// Data can be read, or the peer hung up, or the fd has an error: a reader must look.
    pub readable: bool,
    /// Data can be written, or the fd has an error or hang-up: a writer must look.
    pub writable: bool,
}

/// The buffer `Poller::wait` fills; reused across iterations so waiting never allocates.
#[derive(Default)]
pub struct Events {
    buf: Vec<EpollEvent>,
    len: usize,
}

impl Events {
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            buf: vec![sys::EMPTY_EVENT; capacity.max(1)],
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn get(&self, index: usize) -> Event {
        let raw = self.buf[index];
        let bits = raw.events;
        // Errors and hang-ups wake both directions, as asyncio's selectors module reports them:
        // the reader sees EOF or the error on its next recv, the writer on its next send.
        let trouble = bits & (sys::EPOLLERR | sys::EPOLLHUP) != 0;
        Event {
            token: raw.u64,
            readable: trouble || bits & (sys::EPOLLIN | sys::EPOLLRDHUP | sys::EPOLLPRI) != 0,
            writable: trouble || bits & sys::EPOLLOUT != 0,
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
            self.buf.resize(new_len, sys::EMPTY_EVENT);
        }
    }
}

fn event_bits(interest: Interest) -> u32 {
    let mut bits = 0;
    if interest.readable {
        bits |= sys::EPOLLIN;
    }
    if interest.writable {
        bits |= sys::EPOLLOUT;
    }
    bits
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        Ok(Poller {
            epfd: sys::epoll_create()?,
        })
    }

    /// Starts watching `fd`, reporting its events with `token`. Fails with `EEXIST` if it is
    /// already registered.
    pub fn add(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        sys::epoll_ctl(
            self.epfd.as_fd(),
            EpollOp::Add,
            fd,
            event_bits(interest),
            token,
        )
    }

    /// Changes what a registered `fd` is watched for, and its token. Fails with `ENOENT` if it
    /// is not registered (for instance because it was closed, which drops it from epoll).
    pub fn modify(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        sys::epoll_ctl(
            self.epfd.as_fd(),
            EpollOp::Modify,
            fd,
            event_bits(interest),
            token,
        )
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        sys::epoll_ctl(self.epfd.as_fd(), EpollOp::Delete, fd, 0, 0)
    }

    /// Takes `fresh`'s registrations instead of its own, under its own fd number, dropping all
    /// it had. The only way to drop a registration for a file whose number was closed while a
    /// duplicate keeps the file open (epoll keys it by number and file, and the number now
    /// names nothing, or another file). Only the thread that waits may call it.
    pub fn replace_with(&self, fresh: Poller) -> io::Result<()> {
        sys::dup_onto(fresh.epfd.as_fd(), self.epfd.as_fd())
    }

    /// Blocks until an fd is ready, the timeout passes (`None`: no limit), or a signal arrives
    /// (`ErrorKind::Interrupted`). Call it with the GIL released.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        events.len = 0;
        let n = sys::epoll_wait(self.epfd.as_fd(), &mut events.buf, timeout)?;
        events.len = n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn level_triggered_reports_until_drained() {
        let poller = Poller::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        poller.add(a.as_raw_fd(), Interest::READABLE, 7).unwrap();
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
            assert_eq!(ev.token, 7);
            assert!(ev.readable);
            assert!(!ev.writable);
        }
    }

    #[test]
    fn replacing_the_set_drops_a_registration_no_number_names() {
        let poller = Poller::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        let (kept, _kept_peer) = UnixStream::pair().unwrap();
        let duplicate = a.try_clone().unwrap();
        poller.add(a.as_raw_fd(), Interest::READABLE, 1).unwrap();
        poller.add(kept.as_raw_fd(), Interest::WRITABLE, 2).unwrap();
        let number = a.as_raw_fd();
        drop(a);
        b.write_all(b"x").unwrap();
        let mut events = Events::with_capacity(8);
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 2);
        assert!(
            poller.delete(number).is_err(),
            "the number names nothing now"
        );
        let fresh = Poller::new().unwrap();
        fresh.add(kept.as_raw_fd(), Interest::WRITABLE, 2).unwrap();
        poller.replace_with(fresh).unwrap();
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
        assert_eq!(events.get(0).token, 2);
        drop(duplicate);
    }

    #[test]
    fn modify_switches_direction_and_delete_silences() {
        let poller = Poller::new().unwrap();
        let (a, _b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        poller.add(fd, Interest::READABLE, 1).unwrap();
        poller.modify(fd, Interest::WRITABLE, 1).unwrap();
        let mut events = Events::with_capacity(8);
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
        assert!(events.get(0).writable);
        poller.delete(fd).unwrap();
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        assert_eq!(
            poller
                .modify(fd, Interest::READABLE, 1)
                .unwrap_err()
                .raw_os_error(),
            Some(sys::ENOENT)
        );
    }

    #[test]
    fn hangup_wakes_reader_and_writer() {
        let poller = Poller::new().unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        poller.add(a.as_raw_fd(), Interest::READABLE, 1).unwrap();
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
            poller.add(a.as_raw_fd(), Interest::WRITABLE, 1).unwrap();
        }
        let mut events = Events::with_capacity(2);
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 2);
        events.grow_if_full();
        assert_eq!(events.capacity(), 4);
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 3);
    }
}
