//! Work finished on other threads (without the GIL) handed back to the loop: each completion
//! is a closure the loop runs with the GIL at its next iteration, typically setting a
//! future's result. The first completion since the loop last looked wakes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use pyo3::prelude::*;

use super::event_loop::Reactor;

pub type Completion = Box<dyn FnOnce(Python<'_>) + Send>;

#[derive(Default)]
pub struct Completions {
    queue: Mutex<Vec<Completion>>,
    pending: AtomicBool,
}

impl Completions {
    /// From any thread: queue `completion` and wake the loop if it may be waiting.
    pub fn push(&self, completion: Completion, reactor: &Reactor) {
        match self.queue.lock() {
            Ok(mut queue) => queue.push(completion),
            // A thread panicked while pushing: the queue itself is still sound.
            Err(poisoned) => poisoned.into_inner().push(completion),
        }
        if !self.pending.swap(true, Ordering::AcqRel) {
            reactor.waker.wake();
        }
    }

    /// Whether something completed since the last `take`.
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// On the loop thread: what has completed since the last call (usually nothing: one
    /// atomic load).
    pub fn take(&self) -> Vec<Completion> {
        if !self.pending.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.pending.store(false, Ordering::Release);
        match self.queue.lock() {
            Ok(mut queue) => std::mem::take(&mut *queue),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}
