//! The watchdog: a thread that watches the loop's [`Progress`] and reports, while it happens,
//! a callback holding the loop longer than a threshold.
//!
//! Two threads, because a report needs the GIL and the code blocking the loop may hold it.
//! The monitor never touches Python: it reads the clock and the loop's progress counter every
//! tick, and when one callback has run past the threshold it asks the reporter for a report
//! and, if the reporter cannot get the GIL soon, writes a line to stderr itself. The reporter
//! takes the GIL and calls the Python side (`ferroloop.watchdog`), which takes the loop
//! thread's stack and logs. Neither holds a reference to the loop: a loop dropped unclosed
//! stops them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::progress::{is_running_state, Progress};

/// A state the reporter never reaches: no report is being made.
const NO_STATE: u64 = u64::MAX;

enum Event {
    /// The callback of progress state `state` has run for `seconds` and still runs.
    Blocked {
        state: u64,
        seconds: f64,
        seen: Instant,
    },
    /// It ended after about `seconds`.
    Ended { state: u64, seconds: f64 },
}

struct Shared {
    progress: Arc<Progress>,
    threshold: Duration,
    tick: Duration,
    /// Set by `stop`; the condvar wakes the monitor from its tick.
    stopping: Mutex<bool>,
    wake: Condvar,
    /// The state the reporter last got the GIL for.
    reporting: AtomicU64,
}

pub struct Watchdog {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The process that started the threads: after fork() they do not exist in the child.
    pid: u32,
}

impl Watchdog {
    /// Starts watching `progress`; `reporter` is the Python object whose `_blocked` and
    /// `_ended` methods get the reports.
    pub fn start(
        progress: Arc<Progress>,
        threshold: Duration,
        reporter: Py<PyAny>,
    ) -> std::io::Result<Watchdog> {
        // A tenth of the threshold: a block is seen at most 10% after it crossed it.
        let tick = (threshold / 10).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let shared = Arc::new(Shared {
            progress,
            threshold,
            tick,
            stopping: Mutex::new(false),
            wake: Condvar::new(),
            reporting: AtomicU64::new(NO_STATE),
        });
        let (sender, receiver) = mpsc::channel();
        let mut watchdog = Watchdog {
            shared: shared.clone(),
            threads: Vec::new(),
            pid: std::process::id(),
        };
        let reporter_shared = shared.clone();
        watchdog.threads.push(
            std::thread::Builder::new()
                .name("ferroloop-watchdog-report".into())
                .spawn(move || {
                    crate::sys::name_this_thread(c"ferroloop-wd-rep");
                    report_loop(&reporter_shared, receiver, reporter)
                })?,
        );
        match std::thread::Builder::new()
            .name("ferroloop-watchdog".into())
            .spawn(move || {
                crate::sys::name_this_thread(c"ferroloop-wd");
                monitor_loop(&shared, sender)
            }) {
            Ok(monitor) => watchdog.threads.push(monitor),
            Err(err) => {
                // Dropping the watchdog stops the reporter (its channel closes with the
                // sender, which the failed spawn dropped).
                return Err(err);
            }
        }
        Ok(watchdog)
    }

    pub fn threshold(&self) -> Duration {
        self.shared.threshold
    }

    /// Whether the threads run in this process (they do not survive fork()).
    pub fn is_alive(&self) -> bool {
        self.pid == std::process::id()
    }

    /// Stops both threads and waits for them. Call with the GIL released: the reporter may
    /// be waiting for it.
    pub fn stop(mut self) {
        self.signal_stop();
        if self.is_alive() {
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        } else {
            // The threads belong to the parent process; there is nothing here to join.
            std::mem::forget(std::mem::take(&mut self.threads));
        }
    }

    fn signal_stop(&self) {
        if !self.is_alive() {
            // A forked child: the lock may have been held by a thread that is not here.
            return;
        }
        if let Ok(mut stopping) = self.shared.stopping.lock() {
            *stopping = true;
        }
        self.shared.wake.notify_all();
    }
}

impl Drop for Watchdog {
    /// A loop dropped without `close()`: the threads end on their own (not joined, since the
    /// GIL may be held here and the reporter may be waiting for it).
    fn drop(&mut self) {
        self.signal_stop();
        if !self.is_alive() {
            std::mem::forget(std::mem::take(&mut self.threads));
        }
    }
}

impl Shared {
    /// Sleeps one tick, or less if stopped; false once stopped.
    fn sleep_tick(&self) -> bool {
        let Ok(guard) = self.stopping.lock() else {
            return false;
        };
        if *guard {
            return false;
        }
        match self.wake.wait_timeout(guard, self.tick) {
            Ok((guard, _)) => !*guard,
            Err(_) => false,
        }
    }
}

/// The monitor thread: no Python, only the clock and the loop's progress counter.
fn monitor_loop(shared: &Shared, sender: Sender<Event>) {
    let mut last = shared.progress.state();
    let mut seen = Instant::now();
    let mut reported: Option<(u64, Instant)> = None;
    let mut noted_gil = false;
    loop {
        let running = shared.sleep_tick();
        if !running {
            // Stopped (the loop is closing): a block reported and over since the last tick
            // still gets its end.
            if let Some((reported_state, _)) = reported {
                if shared.progress.state() != reported_state {
                    let seconds = Instant::now().duration_since(seen).as_secs_f64();
                    let _ = sender.send(Event::Ended {
                        state: reported_state,
                        seconds,
                    });
                }
            }
            return;
        }
        let now = Instant::now();
        let state = shared.progress.state();
        if state != last {
            if let Some((reported_state, _)) = reported.take() {
                let seconds = now.duration_since(seen).as_secs_f64();
                let event = Event::Ended {
                    state: reported_state,
                    seconds,
                };
                if sender.send(event).is_err() {
                    return;
                }
            }
            last = state;
            seen = now;
            noted_gil = false;
            continue;
        }
        if !is_running_state(state) {
            continue;
        }
        let blocked = now.duration_since(seen);
        match reported {
            None if blocked >= shared.threshold => {
                let event = Event::Blocked {
                    state,
                    seconds: blocked.as_secs_f64(),
                    seen: now,
                };
                if sender.send(event).is_err() {
                    return;
                }
                reported = Some((state, now));
            }
            Some((reported_state, asked))
                if !noted_gil
                    && shared.reporting.load(Ordering::Acquire) != reported_state
                    && now.duration_since(asked) >= shared.threshold.max(shared.tick * 5) =>
            {
                // The reporter has waited for the GIL all this time: code that does not
                // release it (a C extension, a long C call) is running. Say so now; the stack
                // follows when the GIL is free.
                noted_gil = true;
                let line = format!(
                    "ferroloop watchdog: the event loop has been blocked for {:.3} s by code \
                     holding the GIL; its Python stack will be reported when it lets go\n",
                    blocked.as_secs_f64()
                );
                crate::sys::write_stderr(line.as_bytes());
            }
            _ => {}
        }
    }
}

/// The reporter thread: takes the GIL for each event and hands it to the Python side, until
/// the monitor has ended (its sender is dropped then), so a block's end is always reported.
fn report_loop(shared: &Shared, events: Receiver<Event>, reporter: Py<PyAny>) {
    while let Ok(event) = events.recv() {
        Python::attach(|py| {
            let result = match event {
                Event::Blocked {
                    state,
                    seconds,
                    seen,
                } => {
                    shared.reporting.store(state, Ordering::Release);
                    let waited = seen.elapsed().as_secs_f64();
                    let item = shared.progress.running_in(py, state);
                    let still_running = shared.progress.state() == state;
                    reporter.bind(py).call_method1(
                        "_blocked",
                        (
                            state,
                            seconds + waited,
                            waited,
                            still_running,
                            item,
                            shared.progress.thread(),
                        ),
                    )
                }
                Event::Ended { state, seconds } => {
                    reporter.bind(py).call_method1("_ended", (state, seconds))
                }
            };
            if let Err(err) = result {
                err.write_unraisable(py, Some(reporter.bind(py)));
            }
        });
    }
    // Without the GIL, PyO3 defers the decref to the next time some thread holds it: safe
    // even if the interpreter is already finalizing.
    drop(reporter);
}
