//! Interrupts a `Poller::wait` from another thread.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// An eventfd registered for reading. `wake` makes it readable; `drain` resets it.
///
/// `pending` coalesces wakes: a thread that floods `call_soon_threadsafe` pays for one `write`
/// per loop iteration, not one per call.
pub struct Waker {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        Ok(Waker {
            fd: sys::eventfd()?,
            pending: AtomicBool::new(false),
        })
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn wake(&self) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        // EAGAIN (counter saturated) still leaves the fd readable, which is all a wake needs.
        let _ = sys::eventfd_write(self.fd.as_fd(), 1);
    }

    /// Called by the loop after the poller reported the waker readable, before it looks for
    /// the work it was woken for. The counter is read first: a wake between the two steps
    /// then finds `pending` still set and writes nothing, and its work is found by the
    /// looking that follows. The other order lets that wake's write be read here while
    /// `pending` stays set: every later wake would then skip its write, and the loop would
    /// sleep through them.
    pub fn drain(&self) {
        // EAGAIN means it was already drained.
        let _ = sys::eventfd_read(self.fd.as_fd());
        self.pending.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::{Events, Interest, Poller};
    use std::time::Duration;

    /// A poller watching a new waker, shared so another thread can wake it.
    fn registered_waker() -> (Poller, std::sync::Arc<Waker>) {
        let poller = Poller::new().unwrap();
        let waker = std::sync::Arc::new(Waker::new().unwrap());
        poller
            .add(waker.as_raw_fd(), Interest::READABLE, 0)
            .unwrap();
        (poller, waker)
    }

    #[test]
    fn no_wake_is_lost_to_a_drain_running_meanwhile() {
        use std::sync::atomic::AtomicBool;
        let (poller, waker) = registered_waker();
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let (remote, finished) = (waker.clone(), done.clone());
        let t = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            while started.elapsed() < Duration::from_millis(300) {
                remote.wake();
            }
            finished.store(true, Ordering::Release);
        });
        let mut events = Events::with_capacity(4);
        while !done.load(Ordering::Acquire) {
            if poller
                .wait(&mut events, Some(Duration::from_millis(1)))
                .unwrap()
                > 0
            {
                waker.drain();
            }
        }
        t.join().unwrap();
        // Whatever state the race left, one more wake must make the fd readable.
        waker.wake();
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
    }

    #[test]
    fn wake_interrupts_wait_from_another_thread() {
        let (poller, waker) = registered_waker();
        let remote = waker.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            remote.wake();
            remote.wake();
        });
        let mut events = Events::with_capacity(4);
        assert_eq!(
            poller
                .wait(&mut events, Some(Duration::from_secs(10)))
                .unwrap(),
            1
        );
        t.join().unwrap();
        waker.drain();
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 0);
        waker.wake();
        assert_eq!(poller.wait(&mut events, Some(Duration::ZERO)).unwrap(), 1);
    }
}
