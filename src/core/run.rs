//! The run loop: one iteration mirrors asyncio's `BaseEventLoop._run_once`.

use std::io;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::debug;
use super::event_loop::{monotonic, LoopCore};
use super::handle::{Handle, RunOutcome};
use super::io_table::{NativeWatcher, Ready, WAKER_TOKEN};
use crate::errors::{is_fatal_signal, os_error};

/// asyncio's MAXIMUM_SELECT_TIMEOUT: never sleep longer than a day in one poll.
const MAX_POLL_TIMEOUT: f64 = 24.0 * 3600.0;
/// Compact the timer heap when it holds more than this many timers, over half cancelled.
const MIN_TIMERS_TO_COMPACT: usize = 100;
/// The ready queue keeps this much capacity however short it gets.
const READY_CAPACITY_KEPT: usize = 4096;

impl LoopCore {
    /// Drops cancelled timers: all of them when they are most of a large heap, otherwise just
    /// those at the top (so the poll timeout is computed from a live timer).
    fn drop_cancelled_timers(&self, py: Python<'_>) {
        let compact = {
            let st = self.state.borrow(py);
            if st.cancelled_timers == 0 {
                return;
            }
            st.timers.len() > MIN_TIMERS_TO_COMPACT && st.cancelled_timers * 2 > st.timers.len()
        };
        if compact {
            let mut removed = Vec::new();
            {
                let mut st = self.state.borrow_mut(py);
                st.timers
                    .retain(|t| !t.get().is_cancelled(py), |t| removed.push(t));
                st.cancelled_timers = 0;
                st.timers.shrink_if_sparse();
            }
            for timer in &removed {
                timer.get().set_scheduled(py, false);
                Handle::expose_if_shared(timer.bind(py));
            }
            drop(removed);
            return;
        }
        loop {
            let popped = {
                let mut st = self.state.borrow_mut(py);
                match st.timers.peek() {
                    Some((_, t)) if t.get().is_cancelled(py) => {
                        st.cancelled_timers = st.cancelled_timers.saturating_sub(1);
                        st.timers.pop()
                    }
                    _ => None,
                }
            };
            match popped {
                Some((_, timer)) => {
                    timer.get().set_scheduled(py, false);
                    Handle::expose_if_shared(timer.bind(py));
                    drop(timer);
                }
                None => break,
            }
        }
    }

    /// How long the poll may block: not at all if work is ready or a stop was asked for,
    /// until the nearest timer otherwise, forever if there is nothing to wait for but I/O.
    fn poll_timeout(&self, py: Python<'_>) -> Option<Duration> {
        let st = self.state.borrow(py);
        if !st.ready.is_empty() || self.stopping.get(py) {
            return Some(Duration::ZERO);
        }
        st.timers.peek().map(|(when, _)| {
            let delay = (when - monotonic()).clamp(0.0, MAX_POLL_TIMEOUT);
            // NaN deadlines (call_at(float('nan'))) fire at once rather than never.
            Duration::try_from_secs_f64(delay).unwrap_or(Duration::ZERO)
        })
    }

    /// Waits for I/O and queues the watchers of every ready fd.
    fn poll_io(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<()> {
        let (reactor, mut events) = {
            let mut st = self.state.borrow_mut(py);
            if timeout == Some(Duration::ZERO) && !st.io.has_registered_fds() {
                // Nothing is watched, so nothing can be ready: skip the syscall. (Other threads
                // reach a non-blocking loop through the ready queue, not the waker.)
                return if st.reactor.is_some() {
                    Ok(())
                } else {
                    Err(crate::errors::loop_closed())
                };
            }
            let reactor = st.reactor.clone().ok_or_else(crate::errors::loop_closed)?;
            (reactor, std::mem::take(&mut st.events))
        };
        let result = if timeout == Some(Duration::ZERO) {
            // A non-blocking poll is one quick syscall: not worth releasing the GIL for.
            reactor.poller.wait(&mut events, timeout)
        } else {
            self.in_poll.set(py, true);
            let timing = self.timing.get(py);
            let started = if timing { monotonic() } else { 0.0 };
            let result = py.detach(|| reactor.poller.wait(&mut events, timeout));
            if timing {
                self.metrics.borrow_mut(py).poll_seconds += monotonic() - started;
            }
            self.in_poll.set(py, false);
            result
        };
        let interrupted = match result {
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) => {
                self.state.borrow_mut(py).events = events;
                return Err(os_error(e));
            }
        };
        let ghost = {
            let mut guard = self.state.borrow_mut(py);
            let st = &mut *guard;
            for event in events.iter() {
                if event.token == WAKER_TOKEN {
                    reactor.waker.drain();
                } else {
                    st.io
                        .dispatch(py, &reactor.poller, event, &mut st.ready, &mut st.io_ready);
                }
            }
            events.grow_if_full();
            st.events = events;
            st.io.take_ghost()
        };
        if ghost {
            self.forget_ghosts(py, &reactor)?;
        }
        if interrupted {
            // A signal arrived: run the Python-level handlers now (Ctrl-C raises
            // KeyboardInterrupt here and leaves run_forever, as with asyncio).
            py.check_signals()?;
        }
        Ok(())
    }

    /// Moves every timer that is due to the ready queue.
    fn queue_due_timers(&self, py: Python<'_>) {
        if self.state.borrow(py).timers.is_empty() {
            return;
        }
        let now = monotonic();
        let end_time = now + self.clock_resolution;
        let timing = self.timing.get(py);
        loop {
            let due = {
                let mut st = self.state.borrow_mut(py);
                // asyncio tests `when >= end_time` for "not yet", so a NaN deadline is due.
                let when = match st.timers.peek() {
                    Some((when, _)) if when < end_time || when.is_nan() => when,
                    _ => break,
                };
                let Some((_, timer)) = st.timers.pop() else {
                    break;
                };
                timer.get().set_scheduled(py, false);
                if timer.get().is_cancelled(py) {
                    st.cancelled_timers = st.cancelled_timers.saturating_sub(1);
                    Some(timer)
                } else {
                    st.ready.push_back(Ready::Handle(timer));
                    if timing {
                        // How late the loop gets to it: what a blocked loop costs its timers.
                        drop(st);
                        self.metrics.borrow_mut(py).lag.record(now - when);
                    }
                    None
                }
            };
            if let Some(cancelled) = due {
                Handle::expose_if_shared(cancelled.bind(py));
            }
        }
        // After a burst (100,000 timers), give the heap's memory back.
        self.state.borrow_mut(py).timers.shrink_if_sparse();
    }

    /// Runs one ready item, with debug mode's slow-callback report; a one-shot handle lets go
    /// of its callback afterwards.
    fn run_item(slf: &Bound<'_, LoopCore>, item: Ready) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let debug = this.debug.get(py);
        let started = if debug { monotonic() } else { 0.0 };
        let outcome = match &item {
            Ready::Handle(handle) => {
                let handle = handle.bind(py);
                if handle.get().is_cancelled(py) {
                    Handle::expose_if_shared(handle);
                    return Ok(());
                }
                this.progress.begin(handle.as_ptr());
                Handle::run(handle)
            }
            Ready::Native(watcher) => {
                this.progress.begin(watcher.target.as_ptr());
                run_native(slf, watcher)
            }
        };
        this.progress.end();
        let reported = match &outcome {
            RunOutcome::Ok if debug => {
                let elapsed = monotonic() - started;
                match this.is_slow_callback(py, elapsed) {
                    Ok(true) => debug::warn_slow_callback(py, &item, elapsed),
                    other => other.map(drop),
                }
            }
            _ => Ok(()),
        };
        if let Some(handle) = item.handle() {
            handle.get().release_if_oneshot(py);
            Handle::expose_if_shared(handle.bind(py));
        }
        match item {
            // A plain decref (see `GilPy`).
            Ready::Handle(handle) => drop(handle.into_bound(py)),
            Ready::Native(watcher) => drop(watcher),
        }
        if let RunOutcome::Propagate(err) = outcome {
            return Err(err);
        }
        reported
    }

    /// Runs the native watchers (transports, sock_* operations) of the fds the poll found
    /// ready, at once, as libuv-based loops do: what they schedule (a task waiting for the
    /// data, say) then runs in this same iteration instead of costing another poll.
    fn run_io(slf: &Bound<'_, LoopCore>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut io_ready = std::mem::take(&mut this.state.borrow_mut(py).io_ready);
        let mut result = Ok(());
        let mut pending = io_ready.drain(..);
        for watcher in pending.by_ref() {
            if let Err(err) = LoopCore::run_item(slf, Ready::Native(watcher)) {
                result = Err(err);
                break;
            }
        }
        // SystemExit/KeyboardInterrupt left the loop mid-batch: the rest runs next time.
        let rest: Vec<Ready> = pending.map(Ready::Native).collect();
        let mut st = this.state.borrow_mut(py);
        for item in rest.into_iter().rev() {
            st.ready.push_front(item);
        }
        st.io_ready = io_ready;
        result
    }

    /// Runs the `count` callbacks at the front of the ready queue; those they schedule queue
    /// up behind.
    fn run_first(slf: &Bound<'_, LoopCore>, count: usize) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        for _ in 0..count {
            let Some(item) = this.state.borrow_mut(py).ready.pop_front() else {
                break;
            };
            LoopCore::run_item(slf, item)?;
        }
        Ok(())
    }

    /// Runs the callbacks that were ready when this pass began; those they schedule wait for
    /// the next iteration.
    fn run_ready(slf: &Bound<'_, LoopCore>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let ntodo = this.state.borrow(py).ready.len();
        LoopCore::run_first(slf, ntodo)?;
        let mut st = this.state.borrow_mut(py);
        if st.ready.capacity() > READY_CAPACITY_KEPT && st.ready.len() * 4 < st.ready.capacity() {
            // After a burst of callbacks, give the queue's memory back.
            let keep = st.ready.len().max(READY_CAPACITY_KEPT);
            st.ready.shrink_to(keep);
        }
        Ok(())
    }

    /// Sets aside what was scheduled behind the `found` handles the poll queued: it waits for
    /// the next iteration, as with asyncio, while what the poll found and the due timers run
    /// now. `restore_later` puts it back in front.
    fn set_aside_later(&self, py: Python<'_>, found: usize) {
        let mut guard = self.state.borrow_mut(py);
        let st = &mut *guard;
        if st.ready.len() > found {
            st.later.extend(st.ready.drain(found..));
        }
    }

    /// Whether the poll found no native work and no lookups completed (the Python watchers
    /// and due timers are counted by the caller): then the iteration is over once the
    /// callbacks queued before the poll have run.
    fn nothing_else_this_iteration(&self, py: Python<'_>) -> bool {
        self.state.borrow(py).io_ready.is_empty() && !self.completions.is_pending()
    }

    /// Puts back in front what `set_aside_later` set aside.
    fn restore_later(&self, py: Python<'_>) {
        let mut guard = self.state.borrow_mut(py);
        let st = &mut *guard;
        if st.later.is_empty() {
            return;
        }
        if st.ready.is_empty() {
            std::mem::swap(&mut st.ready, &mut st.later);
        } else {
            while let Some(item) = st.later.pop_back() {
                st.ready.push_front(item);
            }
        }
    }

    /// One iteration, in asyncio's order: poll and queue the due timers; run the callbacks
    /// that were ready before the poll; then what the poll found (native watchers at once,
    /// then the Python ones) and the due timers. What native watchers schedule (a task
    /// waiting for their data, say) runs in this same iteration instead of costing another
    /// poll, as on libuv-based loops, unless earlier callbacks' must run first.
    pub fn run_once(slf: &Bound<'_, LoopCore>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.in_iteration.set(py, true);
        let result = LoopCore::run_iteration(slf);
        let ended = LoopCore::end_iteration(slf);
        this.in_iteration.set(py, false);
        result.and(ended)
    }

    /// The work callbacks left for the end of the iteration (`at_iteration_end`): transports
    /// send what their protocols wrote during it in one system call each.
    fn end_iteration(slf: &Bound<'_, LoopCore>) -> PyResult<()> {
        let py = slf.py();
        let mut first_error = None;
        loop {
            let mut batch = {
                let mut st = slf.get().state.borrow_mut(py);
                if st.at_iteration_end.is_empty() {
                    return first_error.map_or(Ok(()), Err);
                }
                std::mem::take(&mut st.at_iteration_end)
            };
            for watcher in &batch {
                if let RunOutcome::Propagate(err) = run_native(slf, watcher) {
                    first_error.get_or_insert(err);
                }
            }
            // The list goes back, emptied, for its capacity: no allocation per iteration.
            batch.clear();
            let mut st = slf.get().state.borrow_mut(py);
            if st.at_iteration_end.is_empty() {
                st.at_iteration_end = batch;
            }
        }
    }

    fn run_iteration(slf: &Bound<'_, LoopCore>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        // Python runs signal handlers between bytecodes; an iteration that runs only native
        // work (or none) would never give it the chance, and Ctrl-C would go unnoticed. The
        // check is one atomic load when no signal is pending.
        py.check_signals()?;
        this.iterations.set(py, this.iterations.get(py) + 1);
        this.drop_cancelled_timers(py);
        let next_sweep = this.sweep_closed_sockets(py)?;
        let mut timeout = this.poll_timeout(py);
        if let Some(sweep) = next_sweep {
            timeout = Some(timeout.map_or(sweep, |t| t.min(sweep)));
        }
        let queued_before = this.state.borrow(py).ready.len();
        this.poll_io(py, timeout)?;
        // Due timers join what the poll found, now: a timer set by a callback of this
        // iteration is not due before the next one, as with asyncio.
        this.queue_due_timers(py);
        let found_by_poll = this.state.borrow(py).ready.len() - queued_before;
        if queued_before > 0 || found_by_poll > 0 || !this.nothing_else_this_iteration(py) {
            this.owe_sweep(py);
        }
        if queued_before > 0 {
            LoopCore::run_first(slf, queued_before)?;
            if found_by_poll == 0 && this.nothing_else_this_iteration(py) {
                // The common case of a busy loop: what they scheduled simply waits for the
                // next iteration where it is.
                return Ok(());
            }
            this.set_aside_later(py, found_by_poll);
        }
        let result = (|| {
            for completion in this.completions.take() {
                completion(py);
            }
            LoopCore::run_io(slf)?;
            // Callbacks run in the order they were scheduled: if some were set aside for the
            // next iteration, what the native watchers scheduled since goes behind them.
            let has_later = !this.state.borrow(py).later.is_empty();
            if has_later {
                this.set_aside_later(py, found_by_poll);
            }
            LoopCore::run_ready(slf)
        })();
        this.restore_later(py);
        result
    }
}

/// Runs a native watcher; its errors go to the exception handler like a callback's.
fn run_native(slf: &Bound<'_, LoopCore>, watcher: &NativeWatcher) -> RunOutcome {
    let py = slf.py();
    let target = watcher.target.bind(py);
    match (watcher.on_ready)(slf, target) {
        Ok(()) => RunOutcome::Ok,
        Err(err) if is_fatal_signal(py, &err) => RunOutcome::Propagate(err),
        Err(err) => {
            let reported = (|| -> PyResult<()> {
                let context = PyDict::new(py);
                context.set_item(
                    "message",
                    format!("Exception in callback {}", target.repr()?),
                )?;
                context.set_item("exception", err.into_value(py))?;
                slf.call_method1("call_exception_handler", (context,))?;
                Ok(())
            })();
            match reported {
                Ok(()) => RunOutcome::Ok,
                Err(e) => RunOutcome::Propagate(e),
            }
        }
    }
}

#[pymethods]
impl LoopCore {
    /// Runs iterations until `stop()` is called. `run_forever` wraps this with the
    /// running-loop, asyncgen-hook and origin-tracking setup.
    fn _run_until_stopped(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        // The program may have closed a socket the loop waits on since it last ran.
        slf.get().owe_sweep(py);
        loop {
            LoopCore::run_once(slf)?;
            if slf.get().stopping.get(py) {
                return Ok(());
            }
        }
    }

    /// Runs exactly one iteration (for tests and embedders).
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        LoopCore::run_once(slf)
    }
}
