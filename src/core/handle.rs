//! `Handle` and `TimerHandle`: a callback with its arguments and context, as `call_soon`,
//! `call_later` and `add_reader` return them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::event_loop::LoopCore;
use super::gil_cell::{GilCell, GilFlag, GilPy};
use super::handle_context::HandleContext;
use super::stdlib;
use super::versions;
use crate::errors::is_fatal_signal;
use crate::sys;

struct Callback {
    callback: GilPy<PyAny>,
    args: GilPy<PyTuple>,
}

/// A scheduled callback.
///
/// The one-shot handles the loop schedules (call_soon, call_later) are kept out of Python's
/// GC while the loop holds them (see `new_untracked`): `call_soon` makes one per call, and
/// tracking them would have the GC scan and promote every pending one, again and again.
/// Meanwhile the loop reports the contents of those only it holds (`traverse_contents`), so an
/// unclosed loop is still collected with what its callbacks reference. A handle lets go of its
/// callback and arguments once it has run or is cancelled, and one that someone else still
/// holds when the loop lets go of it is tracked from then on (`expose`), like any object.
#[pyclass(subclass, frozen, weakref, module = "ferroloop", name = "Handle")]
pub struct Handle {
    callback: GilCell<Option<Callback>>,
    context: HandleContext,
    loop_: GilPy<LoopCore>,
    cancelled: GilFlag<bool>,
    /// Runs once (call_soon, call_later); reader/writer handles run on every event.
    oneshot: bool,
    /// A timer still in the loop's heap (a cancelled one counts towards heap compaction).
    scheduled: GilFlag<bool>,
    /// Debug mode: where the handle was created, as asyncio's `_source_traceback`.
    source_traceback: Option<Py<PyAny>>,
    /// Debug mode: the repr at cancellation, so a cancelled handle still names its callback.
    cancelled_repr: GilCell<Option<String>>,
    /// `call_soon_threadsafe`'s handles from 3.14 on: the thread running the handle right now
    /// (0 when none), which `cancel()` and `cancelled()` from other threads wait for.
    running_in: Option<AtomicU64>,
}

/// Where other threads wait for a running thread-safe handle to finish (one for the process:
/// waiting is rare, and `WAITERS` spares the run its notification when no one waits).
static RUN_DONE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
static WAITERS: AtomicUsize = AtomicUsize::new(0);

/// Marks a thread-safe handle running on this thread; dropping it marks it done and wakes the
/// threads waiting for that.
struct RunningMark<'a>(&'a AtomicU64);

impl<'a> RunningMark<'a> {
    fn set(running_in: &'a AtomicU64) -> RunningMark<'a> {
        running_in.store(sys::thread_id(), Ordering::SeqCst);
        RunningMark(running_in)
    }
}

impl Drop for RunningMark<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::SeqCst);
        // SeqCst on both sides: a waiter that registered before this load is woken, and one
        // that registers after it sees the handle done and does not wait.
        if WAITERS.load(Ordering::SeqCst) > 0 {
            let _guard = RUN_DONE
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            RUN_DONE.1.notify_all();
        }
    }
}

/// Moves a handle the loop made onto the Python heap, out of the GC's lists (PyO3 makes every
/// class a GC type, tracked from birth). Its deallocator untracks through
/// `PyObject_GC_UnTrack`, which accepts an untracked object.
pub fn new_untracked<T: pyo3::PyClass>(
    py: Python<'_>,
    value: impl Into<pyo3::PyClassInitializer<T>>,
) -> PyResult<Py<T>> {
    let object = Py::new(py, value)?;
    // SAFETY: a live object of a GC type, referenced only by us.
    unsafe { ffi::PyObject_GC_UnTrack(object.as_ptr().cast()) };
    Ok(object)
}

pub enum RunOutcome {
    Ok,
    /// The exception escaped the callback and must leave the loop (`SystemExit`,
    /// `KeyboardInterrupt`, or an error raised by the exception handler itself).
    Propagate(PyErr),
}

impl Handle {
    /// `context` None means "the current context", copied now, as asyncio does.
    pub fn new(
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
        loop_: Py<LoopCore>,
        debug: bool,
        oneshot: bool,
    ) -> PyResult<Handle> {
        let context = HandleContext::new(py, context)?;
        let source_traceback = if debug {
            Some(capture_source_traceback(py)?)
        } else {
            None
        };
        Ok(Handle {
            callback: GilCell::new(Some(Callback {
                callback: GilPy::new(callback),
                args: GilPy::new(args),
            })),
            context,
            loop_: GilPy::new(loop_),
            cancelled: GilFlag::new(false),
            oneshot,
            scheduled: GilFlag::new(false),
            source_traceback,
            cancelled_repr: GilCell::new(None),
            running_in: None,
        })
    }

    /// Makes this a thread-safe handle in 3.14's sense (asyncio's `_ThreadSafeHandle`): while
    /// it runs, `cancel()` and `cancelled()` called from another thread wait for the end of
    /// the run, so no thread sees it half-run.
    pub fn waited_for_by_other_threads(mut self) -> Handle {
        self.running_in = Some(AtomicU64::new(0));
        self
    }

    /// Waits, without the GIL, while this handle runs in another thread (a thread-safe handle
    /// only). Signals are still handled meanwhile, as while waiting for a lock.
    fn wait_for_run_elsewhere(&self, py: Python<'_>) -> PyResult<()> {
        let Some(running_in) = &self.running_in else {
            return Ok(());
        };
        let me = sys::thread_id();
        let busy = || {
            let runner = running_in.load(Ordering::SeqCst);
            runner != 0 && runner != me
        };
        while busy() {
            let still_busy = py.detach(|| {
                let guard = RUN_DONE
                    .0
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                WAITERS.fetch_add(1, Ordering::SeqCst);
                let still_busy = if busy() {
                    let (_guard, _) = RUN_DONE
                        .1
                        .wait_timeout(guard, Duration::from_millis(50))
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    busy()
                } else {
                    false
                };
                WAITERS.fetch_sub(1, Ordering::SeqCst);
                still_busy
            });
            if still_busy {
                py.check_signals()?;
            }
        }
        Ok(())
    }

    pub fn is_cancelled(&self, py: Python<'_>) -> bool {
        self.cancelled.get(py)
    }

    pub fn set_scheduled(&self, py: Python<'_>, scheduled: bool) {
        self.scheduled.set(py, scheduled);
    }

    /// After a one-shot handle ran: drop the callback and its arguments (nothing can run them
    /// again, and they may hold a reference cycle through this untracked handle).
    pub fn release_if_oneshot(&self, py: Python<'_>) {
        if self.oneshot {
            let taken = self.callback.borrow_mut(py).take();
            drop(taken);
        }
    }

    /// Tracks a handle made by `new_untracked`, and its context, from now on: for one that
    /// outlives the loop's hold on it (kept after it ran, was cancelled, or its loop closed),
    /// so that a cycle through it is collected (an object that keeps its own timeout handle,
    /// with the object in a context variable). Cheap: tracking allocates nothing and does not
    /// count towards a collection.
    pub fn expose(slf: &Bound<'_, Handle>) {
        // SAFETY: a live object of a GC type; tracked only if it is not already.
        unsafe {
            if ffi::PyObject_GC_IsTracked(slf.as_ptr()) == 0 {
                ffi::PyObject_GC_Track(slf.as_ptr().cast());
            }
        }
        slf.get().context.track(slf.py());
    }

    /// After the loop let go of the handle: exposed if someone else still holds it.
    pub fn expose_if_shared(slf: &Bound<'_, Handle>) {
        // SAFETY: reading the reference count of a live object; `slf` is one reference.
        if unsafe { ffi::Py_REFCNT(slf.as_ptr()) } > 1 {
            Handle::expose(slf);
        }
    }

    /// Reports what the handle references: its own `__traverse__`, and for an untracked one,
    /// part of its owner's. Only an owner that holds the sole reference may report it, or the
    /// GC could wrongly conclude that these objects are unreachable.
    pub fn traverse_contents(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.context.traverse(visit)?;
        visit.call(&*self.loop_)?;
        if let Some(tb) = &self.source_traceback {
            visit.call(tb)?;
        }
        if let Some(cb) = self.callback.try_borrow_unguarded() {
            if let Some(cb) = &*cb {
                visit.call(&*cb.callback)?;
                visit.call(&*cb.args)?;
            }
        }
        Ok(())
    }

    /// Marks the handle cancelled; true if it was not already.
    fn mark_cancelled(slf: &Bound<'_, Handle>) -> PyResult<bool> {
        let py = slf.py();
        let this = slf.get();
        if this.cancelled.get(py) {
            return Ok(false);
        }
        this.cancelled.set(py, true);
        if this.loop_.get().debug_enabled(py) {
            // Taken once cancelled, as asyncio does: "<Handle cancelled cb() at ...>" keeps
            // naming the callback after it is dropped.
            let text = repr_of(slf)?;
            *this.cancelled_repr.borrow_mut(py) = Some(text);
        }
        let dropped = this.callback.borrow_mut(py).take();
        drop(dropped);
        Ok(true)
    }

    /// Runs the callback in its context. Errors other than `SystemExit`/`KeyboardInterrupt`
    /// go to the loop's exception handler, as `asyncio.Handle._run` does.
    pub fn run(slf: &Bound<'_, Handle>) -> RunOutcome {
        let py = slf.py();
        let this = slf.get();
        // Bound, not Py: released by a plain decref (a Py asks first whether the thread is
        // attached), and the callback may cancel its own handle, dropping the handle's refs.
        let (callback, args) = match &*this.callback.borrow(py) {
            Some(cb) => (cb.callback.bind(py).clone(), cb.args.bind(py).clone()),
            None => return RunOutcome::Ok,
        };
        // Until the end of the run, the exception handler's included: a thread-safe handle's
        // cancel() from another thread waits for it.
        let _running = this.running_in.as_ref().map(RunningMark::set);
        // Debug mode, as asyncio: while the handle runs it is the loop's `_current_handle`, so
        // an error reported from inside the callback is logged with where the handle was made
        // (`handle_traceback`). Only handles made in debug mode carry that traceback.
        let current = this.source_traceback.as_ref().map(|_| this.loop_.bind(py));
        if let Some(loop_) = current {
            // A loop without an instance dict cannot record it; nothing else depends on it.
            let _ = loop_.setattr("_current_handle", slf);
        }
        let outcome = match call_in_context(py, this.context.get().bind(py), &callback, &args) {
            Ok(()) => RunOutcome::Ok,
            Err(err) => report_callback_error(py, err, slf.as_any(), &callback, &args, this),
        };
        if let Some(loop_) = current {
            let _ = loop_.setattr("_current_handle", py.None());
        }
        outcome
    }

    fn repr_parts(slf: &Bound<'_, Handle>) -> PyResult<Vec<String>> {
        let py = slf.py();
        let this = slf.get();
        let class_name = slf.get_type().name()?.to_string();
        let mut info = vec![class_name];
        if this.cancelled.get(py) {
            info.push("cancelled".to_owned());
        }
        let callback = this
            .callback
            .borrow(py)
            .as_ref()
            .map(|cb| (cb.callback.clone_ref(py), cb.args.clone_ref(py)));
        if let Some((callback, args)) = callback {
            let text = format_callback(this.loop_.bind(py), callback.bind(py), args.bind(py))?;
            info.push(text.extract::<String>()?);
        }
        if let Some(created) = created_at(py, &this.source_traceback)? {
            info.push(created);
        }
        Ok(info)
    }
}

/// Runs `callback(*args)` inside `context`. A real `contextvars.Context` is entered through the
/// C API (no `Context.run` call, no argument re-packing); anything else is asked to `.run()`.
pub fn call_in_context(
    py: Python<'_>,
    context: &Bound<'_, PyAny>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
) -> PyResult<()> {
    // SAFETY: all pointers are live borrowed references; PyContext_Enter/Exit are paired and
    // the call result is an owned reference we release at once.
    unsafe {
        if ffi::PyContext_CheckExact(context.as_ptr()) != 0 {
            if ffi::PyContext_Enter(context.as_ptr()) < 0 {
                return Err(PyErr::fetch(py));
            }
            let result = ffi::PyObject_Call(callback.as_ptr(), args.as_ptr(), std::ptr::null_mut());
            let failed = result.is_null();
            let pending = if failed { Some(PyErr::fetch(py)) } else { None };
            ffi::Py_XDECREF(result);
            if ffi::PyContext_Exit(context.as_ptr()) < 0 {
                return Err(PyErr::fetch(py));
            }
            match pending {
                Some(err) => Err(err),
                None => Ok(()),
            }
        } else {
            let mut full = Vec::with_capacity(args.len() + 1);
            full.push(callback.clone());
            full.extend(args.iter());
            context.call_method1("run", PyTuple::new(py, full)?)?;
            Ok(())
        }
    }
}

/// How asyncio names `callback(*args)` in a handle's repr and in error messages: its name, its
/// arguments (from 3.13 on, in debug mode only) and where it was defined.
fn format_callback<'py>(
    loop_: &Bound<'py, LoopCore>,
    callback: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = loop_.py();
    let format = stdlib::format_callback_source(py)?;
    if !versions::callback_args_only_in_debug(py)? {
        return format.call1((callback, args));
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item(pyo3::intern!(py, "debug"), loop_.get().debug_enabled(py))?;
    format.call((callback, args), Some(&kwargs))
}

fn report_callback_error(
    py: Python<'_>,
    err: PyErr,
    handle: &Bound<'_, PyAny>,
    callback: &Bound<'_, PyAny>,
    args: &Bound<'_, PyTuple>,
    this: &Handle,
) -> RunOutcome {
    if is_fatal_signal(py, &err) {
        return RunOutcome::Propagate(err);
    }
    let result = (|| -> PyResult<()> {
        let source = format_callback(this.loop_.bind(py), callback, args)?;
        let context = PyDict::new(py);
        context.set_item("message", format!("Exception in callback {source}"))?;
        context.set_item("exception", err.clone_ref(py).into_value(py))?;
        context.set_item("handle", handle)?;
        if let Some(tb) = &this.source_traceback {
            context.set_item("source_traceback", tb)?;
        }
        this.loop_
            .bind(py)
            .call_method1("call_exception_handler", (context,))?;
        Ok(())
    })();
    match result {
        Ok(()) => RunOutcome::Ok,
        Err(handler_err) => RunOutcome::Propagate(handler_err),
    }
}

fn capture_source_traceback(py: Python<'_>) -> PyResult<Py<PyAny>> {
    // No Rust frame sits on the Python stack, so frame 0 is the caller of call_soon & co.:
    // the same stack asyncio ends up with after trimming its own frames.
    let frame = stdlib::sys_getframe(py)?.call1((0,))?;
    Ok(stdlib::extract_stack(py)?.call1((frame,))?.unbind())
}

fn created_at(py: Python<'_>, tb: &Option<Py<PyAny>>) -> PyResult<Option<String>> {
    let Some(tb) = tb else { return Ok(None) };
    let tb = tb.bind(py);
    if !tb.is_truthy()? {
        return Ok(None);
    }
    let frame = tb.get_item(-1)?;
    let filename = frame.get_item(0)?.str()?;
    let lineno = frame.get_item(1)?.str()?;
    Ok(Some(format!("created at {filename}:{lineno}")))
}

fn repr_of(slf: &Bound<'_, Handle>) -> PyResult<String> {
    slf.as_any().repr()?.extract()
}

#[pymethods]
impl Handle {
    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get().wait_for_run_elsewhere(slf.py())?;
        Handle::mark_cancelled(slf)?;
        Ok(())
    }

    fn cancelled(&self, py: Python<'_>) -> PyResult<bool> {
        self.wait_for_run_elsewhere(py)?;
        Ok(self.cancelled.get(py))
    }

    fn get_context(slf: &Bound<'_, Self>) -> Py<PyAny> {
        Handle::expose(slf);
        slf.get().context.get().clone_ref(slf.py())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse_contents(&visit)
    }

    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        match Handle::run(slf) {
            RunOutcome::Ok => Ok(()),
            RunOutcome::Propagate(err) => Err(err),
        }
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.callback
            .borrow(py)
            .as_ref()
            .map(|cb| cb.callback.clone_ref(py))
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.callback
            .borrow(py)
            .as_ref()
            .map(|cb| cb.args.clone_ref(py))
    }

    #[getter]
    fn _cancelled(&self, py: Python<'_>) -> bool {
        self.cancelled.get(py)
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> Py<LoopCore> {
        self.loop_.clone_ref(py)
    }

    #[getter]
    fn _context(slf: &Bound<'_, Self>) -> Py<PyAny> {
        Handle::get_context(slf)
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.source_traceback.as_ref().map(|tb| tb.clone_ref(py))
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        if let Some(text) = &*slf.get().cancelled_repr.borrow(slf.py()) {
            return Ok(text.clone());
        }
        Ok(format!("<{}>", Handle::repr_parts(slf)?.join(" ")))
    }
}

/// A handle that runs at a deadline on the loop's clock.
#[pyclass(extends = Handle, frozen, module = "ferroloop", name = "TimerHandle")]
pub struct TimerHandle {
    when: f64,
}

impl TimerHandle {
    pub fn new(when: f64) -> TimerHandle {
        TimerHandle { when }
    }
}

#[pymethods]
impl TimerHandle {
    fn cancel(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let base = slf.as_super();
        if Handle::mark_cancelled(base)? && base.get().scheduled.get(py) {
            base.get().loop_.get().timer_cancelled(py);
        }
        Ok(())
    }

    fn when(&self) -> f64 {
        self.when
    }

    #[getter]
    fn _when(&self) -> f64 {
        self.when
    }

    #[getter]
    fn _scheduled(slf: &Bound<'_, Self>) -> bool {
        slf.as_super().get().scheduled.get(slf.py())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let base = slf.as_super();
        if let Some(text) = &*base.get().cancelled_repr.borrow(py) {
            return Ok(text.clone());
        }
        let mut parts = Handle::repr_parts(base)?;
        let pos = if base.get().is_cancelled(py) { 2 } else { 1 };
        parts.insert(pos, format!("when={}", float_repr(py, slf.get().when)?));
        Ok(format!("<{}>", parts.join(" ")))
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.when.into_pyobject(py)?.hash()
    }

    fn __richcmp__(
        slf: &Bound<'_, Self>,
        other: &Bound<'_, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<Py<PyAny>> {
        use pyo3::basic::CompareOp::*;
        let py = slf.py();
        let Ok(other) = other.cast::<TimerHandle>() else {
            return Ok(py.NotImplemented());
        };
        let (a, b) = (slf.get().when, other.get().when);
        let result = match op {
            Lt => a < b,
            Gt => a > b,
            Le => a < b || TimerHandle::same_timer(slf, other)?,
            Ge => a > b || TimerHandle::same_timer(slf, other)?,
            Eq => TimerHandle::same_timer(slf, other)?,
            Ne => !TimerHandle::same_timer(slf, other)?,
        };
        Ok(pyo3::types::PyBool::new(py, result)
            .to_owned()
            .into_any()
            .unbind())
    }
}

impl TimerHandle {
    /// asyncio's TimerHandle equality: same deadline, callback, arguments and cancelled state.
    fn same_timer(a: &Bound<'_, TimerHandle>, b: &Bound<'_, TimerHandle>) -> PyResult<bool> {
        if a.is(b) {
            return Ok(true);
        }
        let py = a.py();
        let (x, y) = (a.as_super().get(), b.as_super().get());
        if a.get().when != b.get().when || x.is_cancelled(py) != y.is_cancelled(py) {
            return Ok(false);
        }
        let parts = |h: &Handle| {
            h.callback
                .borrow(py)
                .as_ref()
                .map(|cb| (cb.callback.clone_ref(py), cb.args.clone_ref(py)))
        };
        match (parts(x), parts(y)) {
            (Some((f, p)), Some((g, q))) => {
                Ok(f.bind(py).eq(g.bind(py))? && p.bind(py).eq(q.bind(py))?)
            }
            (None, None) => Ok(true),
            _ => Ok(false),
        }
    }
}

fn float_repr(py: Python<'_>, value: f64) -> PyResult<String> {
    value.into_pyobject(py)?.repr()?.extract()
}
