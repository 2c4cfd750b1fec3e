//! `LoopCore`: the Rust half of `ferroloop.EventLoop` and the state every part of the loop
//! shares. The scheduling API lives in `scheduling.rs`, the run loop in `run.rs`, fd watchers
//! in `io.rs`; the Python class `ferroloop.EventLoop` subclasses this one and adds the
//! rarely-hot API.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat};
use pyo3::{PyTraverseError, PyVisit};

use super::bytes_read::ReadSize;
use super::closed_sockets::Sweep;
use super::completions::Completions;
use super::gil_cell::{GilCell, GilFlag};
use super::handle::Handle;
use super::io_table::{IoTable, NativeFn, NativeWatcher, Ready, WAKER_TOKEN};
use super::kept_bound::{self, KeptBound};
use super::metrics::Metrics;
use super::progress::Progress;
use super::timer_heap::TimerHeap;
use super::watchdog::Watchdog;
use crate::errors::{loop_closed, os_error};
use crate::reactor::{Events, Interest, Poller, Waker};

/// The OS side of a loop: its epoll instance and its cross-thread waker. Shared through an
/// `Arc` so a poll can run with the GIL released while `close()` may drop the loop's handle.
pub struct Reactor {
    pub poller: Poller,
    pub waker: Waker,
}

pub struct LoopState {
    pub ready: VecDeque<Ready>,
    /// During an iteration: what the callbacks queued before the poll scheduled, set aside so
    /// that what the poll found and the due timers run first (see `run_once`). Empty between
    /// iterations; kept for its capacity.
    pub later: VecDeque<Ready>,
    /// Native watchers whose fd the last poll found ready, run before the ready queue.
    pub io_ready: Vec<NativeWatcher>,
    pub timers: TimerHeap<Py<Handle>>,
    /// Cancelled timers still in the heap, for deciding when to compact it.
    pub cancelled_timers: usize,
    pub io: IoTable,
    pub events: Events,
    /// None once the loop is closed.
    pub reactor: Option<Arc<Reactor>>,
    pub task_factory: Option<Py<PyAny>>,
    /// The native transports of this loop not yet finished, by object address: `close()`
    /// tells each to let go of its Python peers (see `_close_core`).
    pub transports: HashMap<usize, Py<PyAny>>,
    /// Work left for the end of this iteration (`at_iteration_end`); empty between them.
    pub at_iteration_end: Vec<NativeWatcher>,
}

#[pyclass(subclass, frozen, module = "ferroloop._ferroloop", name = "LoopCore")]
pub struct LoopCore {
    pub(crate) state: GilCell<LoopState>,
    pub(crate) closed: GilFlag<bool>,
    pub(crate) stopping: GilFlag<bool>,
    pub(crate) debug: GilFlag<bool>,
    pub(crate) slow_callback_duration: GilCell<SlowCallbackDuration>,
    /// `pthread_self()` of the thread running the loop (what `threading.get_ident()` returns).
    pub(crate) thread_id: GilFlag<Option<u64>>,
    /// True while the loop waits in the poller with the GIL released: only then does
    /// `call_soon_threadsafe` need to write to the waker.
    pub(crate) in_poll: GilFlag<bool>,
    /// True from the start of an iteration until its `at_iteration_end` work is done.
    pub(crate) in_iteration: GilFlag<bool>,
    /// One buffer for every read the loop does on the user's behalf (allocated on first use).
    read_buffer: GilCell<Vec<u8>>,
    /// What the last `sock_recv` on this loop returned, to guess the next one's size.
    pub(crate) sock_read_size: ReadSize,
    pub(crate) clock_resolution: f64,
    /// Written as callbacks run, read by the watchdog's thread.
    pub(crate) progress: Arc<Progress>,
    pub(crate) watchdog: GilCell<Option<Watchdog>>,
    pub(crate) iterations: GilFlag<u64>,
    /// Whether the timing metrics (poll time, timer lateness) are gathered.
    pub(crate) timing: GilFlag<bool>,
    pub(crate) metrics: GilCell<Metrics>,
    /// Work done on other threads for this loop (name lookups), waiting to be delivered.
    pub(crate) completions: Arc<Completions>,
    /// When to look for sockets closed under the loop's own operations.
    pub(crate) sweep: GilFlag<Sweep>,
    /// `call_soon` bound to this loop, while it is open (see `kept_bound`).
    pub(crate) kept_call_soon: KeptBound,
}

/// The loop's clock: `CLOCK_MONOTONIC`, the clock of `time.monotonic()`, so deadlines computed
/// from either agree.
pub use crate::sys::monotonic;

/// A tracked handle is reported as such. An untracked one (see `Handle`) that only this loop
/// holds has what it references reported as the loop's own references, so a loop dropped
/// without `close()` can still be collected with everything its pending callbacks reference.
pub fn visit_owned_handle(handle: &Py<Handle>, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
    // SAFETY: reading the GC state and reference count of a live object we hold.
    let (tracked, refcnt) = unsafe {
        (
            pyo3::ffi::PyObject_GC_IsTracked(handle.as_ptr()) != 0,
            pyo3::ffi::Py_REFCNT(handle.as_ptr()),
        )
    };
    if tracked {
        visit.call(handle)?;
    } else if refcnt == 1 {
        handle.get().traverse_contents(visit)?;
    }
    Ok(())
}

/// `slow_callback_duration`: a float compared natively, or whatever else the program set
/// (an int too large for a float, a `Decimal`, ...), compared as Python compares it.
pub enum SlowCallbackDuration {
    Seconds(f64),
    Object(Py<PyAny>),
}

impl SlowCallbackDuration {
    fn from_value(value: &Bound<'_, PyAny>) -> SlowCallbackDuration {
        if let Ok(float) = value.cast_exact::<PyFloat>() {
            return SlowCallbackDuration::Seconds(float.value());
        }
        SlowCallbackDuration::Object(value.clone().unbind())
    }
}

/// Size of the loop's read buffer: the most one read returns.
pub const READ_BUFFER_SIZE: usize = 256 * 1024;

impl LoopCore {
    /// One read (`read` gets the loop's buffer, at most `max` bytes of it, and returns how
    /// many bytes it read plus whatever else the syscall gave) copied out into a `bytes` of
    /// the exact size: no per-read allocation of the whole buffer (asyncio's 256 KiB costs
    /// mmap and page faults). Bytes objects are not GC-tracked, so making one runs no Python
    /// code and the buffer's borrow may span it.
    #[inline(always)] // small reads' path: the call cost as much as the copy
    pub fn read_bytes<'py, R>(
        &self,
        py: Python<'py>,
        max: usize,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<(usize, R)>,
    ) -> std::io::Result<(Bound<'py, PyBytes>, R)> {
        let mut buffer = self.read_buffer.borrow_mut(py);
        if buffer.is_empty() {
            buffer.resize(READ_BUFFER_SIZE, 0);
        }
        let len = max.min(buffer.len());
        let (n, extra) = read(&mut buffer[..len])?;
        Ok((PyBytes::new(py, &buffer[..n]), extra))
    }

    /// Runs `on_end(loop, target)` once this iteration's callbacks have run, before the next
    /// poll. False, with nothing queued, outside an iteration (or from another thread while
    /// the loop polls): the caller then does its work at once.
    pub fn at_iteration_end(
        &self,
        py: Python<'_>,
        target: &Bound<'_, PyAny>,
        on_end: NativeFn,
    ) -> bool {
        if !self.in_iteration.get(py) || self.in_poll.get(py) {
            return false;
        }
        self.state
            .borrow_mut(py)
            .at_iteration_end
            .push(NativeWatcher {
                target: target.clone().unbind(),
                on_ready: on_end,
            });
        true
    }

    pub fn debug_enabled(&self, py: Python<'_>) -> bool {
        self.debug.get(py)
    }

    /// Debug mode: whether a callback that ran `elapsed` seconds was slow (`elapsed >=
    /// slow_callback_duration`, compared as Python compares it: a value that cannot be
    /// compared with a float raises, out of the run loop, as with asyncio).
    pub fn is_slow_callback(&self, py: Python<'_>, elapsed: f64) -> PyResult<bool> {
        let limit = match &*self.slow_callback_duration.borrow(py) {
            SlowCallbackDuration::Seconds(seconds) => return Ok(elapsed >= *seconds),
            SlowCallbackDuration::Object(value) => value.clone_ref(py),
        };
        // Compared outside the borrow: the object's __le__ may set the attribute again.
        PyFloat::new(py, elapsed).ge(limit.bind(py))
    }

    pub fn is_closed_flag(&self, py: Python<'_>) -> bool {
        self.closed.get(py)
    }

    pub fn check_closed(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.get(py) {
            Err(loop_closed())
        } else {
            Ok(())
        }
    }

    /// The reactor, or RuntimeError('Event loop is closed').
    pub fn reactor(&self, py: Python<'_>) -> PyResult<Arc<Reactor>> {
        self.state
            .borrow(py)
            .reactor
            .clone()
            .ok_or_else(loop_closed)
    }

    pub fn timer_cancelled(&self, py: Python<'_>) {
        self.state.borrow_mut(py).cancelled_timers += 1;
    }

    /// Records a live native transport (until `unregister_transport`).
    pub fn register_transport(&self, py: Python<'_>, transport: &Bound<'_, PyAny>) {
        let previous = self
            .state
            .borrow_mut(py)
            .transports
            .insert(transport.as_ptr() as usize, transport.clone().unbind());
        drop(previous);
    }

    pub fn unregister_transport(&self, py: Python<'_>, transport: &Bound<'_, PyAny>) {
        let removed = self
            .state
            .borrow_mut(py)
            .transports
            .remove(&(transport.as_ptr() as usize));
        drop(removed);
    }

    /// Wakes the poller if the loop is blocked in it (another thread scheduled work).
    pub fn wake(&self, py: Python<'_>) {
        if self.in_poll.get(py) {
            if let Some(reactor) = &self.state.borrow(py).reactor {
                reactor.waker.wake();
            }
        }
    }
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        _args: &Bound<'_, pyo3::types::PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Self> {
        let poller = Poller::new().map_err(os_error)?;
        let waker = Waker::new().map_err(os_error)?;
        poller
            .add(waker.as_raw_fd(), Interest::READABLE, WAKER_TOKEN)
            .map_err(os_error)?;
        Ok(LoopCore {
            state: GilCell::new(LoopState {
                ready: VecDeque::with_capacity(64),
                later: VecDeque::new(),
                io_ready: Vec::with_capacity(64),
                timers: TimerHeap::default(),
                cancelled_timers: 0,
                io: IoTable::default(),
                events: Events::with_capacity(256),
                reactor: Some(Arc::new(Reactor { poller, waker })),
                task_factory: None,
                transports: HashMap::new(),
                at_iteration_end: Vec::new(),
            }),
            closed: GilFlag::new(false),
            stopping: GilFlag::new(false),
            debug: GilFlag::new(false),
            slow_callback_duration: GilCell::new(SlowCallbackDuration::Seconds(0.1)),
            thread_id: GilFlag::new(None),
            in_poll: GilFlag::new(false),
            in_iteration: GilFlag::new(false),
            read_buffer: GilCell::new(Vec::new()),
            sock_read_size: ReadSize::default(),
            clock_resolution: crate::sys::monotonic_resolution(),
            progress: Arc::new(Progress::default()),
            watchdog: GilCell::new(None),
            iterations: GilFlag::new(0),
            timing: GilFlag::new(false),
            metrics: GilCell::new(Metrics::default()),
            completions: Arc::new(Completions::default()),
            sweep: GilFlag::new(Sweep::default()),
            kept_call_soon: GilCell::new(None),
        })
    }

    /// The loop's clock (`time.monotonic()`'s clock), in seconds.
    fn time(&self) -> f64 {
        monotonic()
    }

    fn is_running(&self, py: Python<'_>) -> bool {
        self.thread_id.get(py).is_some()
    }

    fn is_closed(&self, py: Python<'_>) -> bool {
        self.closed.get(py)
    }

    #[getter]
    fn _closed(&self, py: Python<'_>) -> bool {
        self.closed.get(py)
    }

    #[getter]
    fn _stopping(&self, py: Python<'_>) -> bool {
        self.stopping.get(py)
    }

    #[getter]
    fn _thread_id(&self, py: Python<'_>) -> Option<u64> {
        self.thread_id.get(py)
    }

    #[getter]
    fn _clock_resolution(&self) -> f64 {
        self.clock_resolution
    }

    /// Stops the loop after the callbacks already ready have run (the current iteration).
    fn stop(&self, py: Python<'_>) {
        self.stopping.set(py, true);
    }

    /// Whether debug mode is on. (Native, not Python: the C `asyncio.Future` constructor
    /// calls it for every future and task.)
    fn get_debug(&self, py: Python<'_>) -> bool {
        self.debug.get(py)
    }

    #[getter(_debug)]
    fn get_debug_flag(&self, py: Python<'_>) -> bool {
        self.debug.get(py)
    }

    /// Any object, taken for its truth value: asyncio stores what it is given (aiohttp's
    /// suite calls `set_debug(0)`, `asyncio.Runner(debug=1)` passes an int on).
    #[setter(_debug)]
    fn set_debug_flag(&self, py: Python<'_>, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        self.debug.set(py, enabled.is_truthy()?);
        Ok(())
    }

    #[getter(slow_callback_duration)]
    fn get_slow_callback_duration(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &*self.slow_callback_duration.borrow(py) {
            SlowCallbackDuration::Seconds(seconds) => {
                Ok(seconds.into_pyobject(py)?.into_any().unbind())
            }
            SlowCallbackDuration::Object(value) => Ok(value.clone_ref(py)),
        }
    }

    /// Any object, as asyncio's plain attribute takes it; it is only compared with the
    /// duration of a callback, in debug mode.
    #[setter(slow_callback_duration)]
    fn set_slow_callback_duration(&self, py: Python<'_>, value: &Bound<'_, PyAny>) {
        let new = SlowCallbackDuration::from_value(value);
        let old = std::mem::replace(&mut *self.slow_callback_duration.borrow_mut(py), new);
        drop(old);
    }

    /// Marks the loop running on this thread (`run_forever` calls it before its setup).
    fn _enter_running(&self, py: Python<'_>) -> PyResult<()> {
        self.check_closed(py)?;
        if self.thread_id.get(py).is_some() {
            return Err(PyRuntimeError::new_err(
                "This event loop is already running",
            ));
        }
        let thread = crate::sys::thread_id();
        self.thread_id.set(py, Some(thread));
        self.progress.set_thread(thread);
        Ok(())
    }

    /// Undoes `_enter_running`; also forgets a `stop()` request, as asyncio does.
    fn _leave_running(&self, py: Python<'_>) {
        self.stopping.set(py, false);
        self.thread_id.set(py, None);
        self.progress.set_thread(0);
    }

    /// Drops every pending callback, timer and fd watcher and closes the loop's own fds. The
    /// Python `close()` checks that the loop is not running and shuts the executor down.
    fn _close_core(&self, py: Python<'_>) {
        if self.closed.get(py) {
            return;
        }
        self.closed.set(py, true);
        kept_bound::release(py, &self.kept_call_soon);
        self.stop_watchdog(py);
        // Lookups finished but not delivered: their futures are dropped with the loop.
        drop(self.completions.take());
        let (ready, timers, watchers, owners, reactor, factory, transports) = {
            let mut st = self.state.borrow_mut(py);
            let reactor = st.reactor.take();
            let (watchers, owners) = match &reactor {
                Some(r) => st.io.drain(&r.poller),
                None => (Vec::new(), Vec::new()),
            };
            let ready = std::mem::take(&mut st.ready);
            let timers = st.timers.drain();
            st.cancelled_timers = 0;
            (
                ready,
                timers,
                watchers,
                owners,
                reactor,
                st.task_factory.take(),
                std::mem::take(&mut st.transports),
            )
        };
        // Released outside the borrow: dropping them may run arbitrary Python code.
        for handle in timers.iter().chain(ready.iter().filter_map(Ready::handle)) {
            handle.get().set_scheduled(py, false);
            // Pending callbacks will never run: release them (closing breaks their cycles).
            handle.get().release_if_oneshot(py);
            Handle::expose_if_shared(handle.bind(py));
        }
        drop((ready, timers, watchers, owners, factory));
        drop(reactor);
        // Transports still open can never hear from this loop again. Each lets go of its
        // wrapper and protocol now, so refcounting frees them in order (the wrapper's
        // "unclosed transport" warning closes the socket) rather than the GC freeing the
        // cycle wrapper <-> core in whatever order it likes, socket first.
        for transport in transports.values() {
            let _ = transport.bind(py).call_method0("_loop_closed");
        }
        drop(transports);
    }

    /// Number of callbacks waiting in the ready queue (for tests and metrics).
    #[getter]
    fn _ready_count(&self, py: Python<'_>) -> usize {
        self.state.borrow(py).ready.len()
    }

    /// Number of timers in the heap, cancelled ones included until they are dropped.
    #[getter]
    fn _timer_count(&self, py: Python<'_>) -> usize {
        self.state.borrow(py).timers.len()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let Some(st) = self.state.try_borrow_unguarded() else {
            return Ok(());
        };
        for item in &st.ready {
            match item {
                Ready::Handle(h) => visit_owned_handle(h, &visit)?,
                Ready::Native(n) => visit.call(&n.target)?,
            }
        }
        for timer in st.timers.iter() {
            visit_owned_handle(timer, &visit)?;
        }
        st.io.traverse(&visit)?;
        if let Some(f) = &st.task_factory {
            visit.call(f)?;
        }
        if let Some(slow) = self.slow_callback_duration.try_borrow_unguarded() {
            if let SlowCallbackDuration::Object(value) = &*slow {
                visit.call(value)?;
            }
        }
        for transport in st.transports.values() {
            visit.call(transport)?;
        }
        if let Some(kept) = self.kept_call_soon.try_borrow_unguarded() {
            if let Some(bound) = &*kept {
                visit.call(bound)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken = self.state.try_borrow_mut_unguarded().map(|mut st| {
            let watchers = match &st.reactor {
                Some(r) => {
                    let r = r.clone();
                    st.io.drain(&r.poller)
                }
                None => (Vec::new(), Vec::new()),
            };
            (
                std::mem::take(&mut st.ready),
                st.timers.drain(),
                st.task_factory.take(),
                watchers,
            )
        });
        // Dropped after the borrow ended: releasing them may run Python code.
        drop(taken);
        let kept = self
            .kept_call_soon
            .try_borrow_mut_unguarded()
            .and_then(|mut k| k.take());
        drop(kept);
    }
}
