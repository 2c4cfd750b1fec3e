//! What the loop thread publishes about its progress for threads that watch it without the
//! GIL (the watchdog). Writing it is the whole cost of watching on the hot path: two plain
//! stores per callback, no atomic read-modify-write and no clock read, since only the loop
//! thread writes and the watcher reads the clock itself.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

#[derive(Default)]
pub struct Progress {
    /// Twice the number of callbacks started, plus one while one runs: a watcher that sees
    /// the same odd value twice knows one callback ran all the time in between.
    state: AtomicU64,
    /// The object being run (the handle, or the native transport or operation) while `state`
    /// is odd. Borrowed, not owned: it is alive while `state` has not moved, and `state` only
    /// moves with the GIL held, so a reader holding the GIL may take a reference to it.
    current: AtomicPtr<ffi::PyObject>,
    /// `threading.get_ident()` of the thread running the loop, 0 when it is not running.
    thread: AtomicU64,
}

impl Progress {
    /// A callback starts: `item` runs until [`Progress::end`].
    #[inline]
    pub fn begin(&self, item: *mut ffi::PyObject) {
        self.current.store(item, Ordering::Relaxed);
        let state = self.state.load(Ordering::Relaxed);
        self.state.store(state + 1, Ordering::Release);
    }

    /// The callback started by [`Progress::begin`] returned (before it is let go of).
    #[inline]
    pub fn end(&self) {
        let state = self.state.load(Ordering::Relaxed);
        self.state.store(state + 1, Ordering::Release);
        self.current.store(ptr::null_mut(), Ordering::Relaxed);
    }

    pub fn state(&self) -> u64 {
        self.state.load(Ordering::Acquire)
    }

    pub fn callbacks_run(&self) -> u64 {
        self.state.load(Ordering::Relaxed).div_ceil(2)
    }

    pub fn set_thread(&self, ident: u64) {
        self.thread.store(ident, Ordering::Relaxed);
    }

    pub fn thread(&self) -> u64 {
        self.thread.load(Ordering::Relaxed)
    }

    /// With the GIL held: the object still running in `state`, if the loop is still there.
    pub fn running_in<'py>(&self, py: Python<'py>, state: u64) -> Option<Bound<'py, PyAny>> {
        if !is_running_state(state) || self.state() != state {
            return None;
        }
        let item = self.current.load(Ordering::Relaxed);
        if item.is_null() {
            return None;
        }
        // SAFETY: `state` is unchanged and we hold the GIL, so the loop thread is still inside
        // that callback, holding its own reference to `item` (see the field's comment).
        Some(unsafe { Bound::from_borrowed_ptr(py, item) })
    }
}

/// Whether a callback runs in progress state `state` (odd states).
pub fn is_running_state(state: u64) -> bool {
    !state.is_multiple_of(2)
}
