//! Scheduling: `call_soon`, `call_soon_threadsafe`, `call_later`, `call_at`, futures and tasks.

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyFloat, PyInt, PyTuple, PyType};
use pyo3::PyClassInitializer;

use std::ffi::CStr;

use super::create_task::CreateTask;
use super::event_loop::{monotonic, LoopCore};
use super::fastcall::{self, missing_positional, unexpected_keyword, Arguments, FastcallMethod};
use super::handle::{new_untracked, Handle, TimerHandle};
use super::io_table::Ready;
use super::kept_bound;
use super::stdlib;
use super::versions;
use crate::sys;

/// Refuses what asyncio's debug mode refuses. Done in every mode: `callable()` costs next to
/// nothing, and a bad callback found now beats a TypeError in the exception handler later.
/// The coroutine-function test is debug-only, as in asyncio (it is not cheap).
#[inline]
pub fn check_callback(
    py: Python<'_>,
    callback: &Bound<'_, PyAny>,
    method: &str,
    debug: bool,
) -> PyResult<()> {
    if !debug && callback.is_callable() {
        return Ok(());
    }
    check_callback_slowly(py, callback, method, debug)
}

#[cold]
fn check_callback_slowly(
    py: Python<'_>,
    callback: &Bound<'_, PyAny>,
    method: &str,
    debug: bool,
) -> PyResult<()> {
    let is_coroutine = |cb: &Bound<'_, PyAny>| -> PyResult<bool> {
        Ok(stdlib::iscoroutine(py)?.call1((cb,))?.is_truthy()?
            || stdlib::iscoroutinefunction(py)?.call1((cb,))?.is_truthy()?)
    };
    if !callback.is_callable() {
        if is_coroutine(callback)? {
            return Err(PyTypeError::new_err(format!(
                "coroutines cannot be used with {method}()"
            )));
        }
        return Err(PyTypeError::new_err(format!(
            "a callable object was expected by {method}(), got {}",
            callback.repr()?
        )));
    }
    if debug && is_coroutine(callback)? {
        return Err(PyTypeError::new_err(format!(
            "coroutines cannot be used with {method}()"
        )));
    }
    Ok(())
}

/// `call_later`'s deadline: `loop.time() + delay` computed as asyncio computes it, by
/// Python's `+` (so a `Decimal` delay is a TypeError, a `Fraction` one works), then taken as
/// a `call_at` deadline. Floats and ints, nearly every delay, take the direct way.
fn later_deadline(py: Python<'_>, delay: &Bound<'_, PyAny>) -> PyResult<f64> {
    let now = monotonic();
    if let Ok(seconds) = delay.cast_exact::<PyFloat>() {
        return Ok(now + seconds.value());
    }
    if delay.is_exact_instance_of::<PyInt>() {
        // float + int converts the int first: OverflowError past float's range, as in Python.
        return Ok(now + delay.extract::<f64>()?);
    }
    deadline(&PyFloat::new(py, now).add(delay)?)
}

/// A deadline as a float. asyncio keeps whatever object it is given and compares it with the
/// other deadlines later, inside the run loop, where a non-number fails `run_forever`;
/// ferroloop refuses it now (a deliberate difference, see the README).
fn deadline(when: &Bound<'_, PyAny>) -> PyResult<f64> {
    when.extract::<f64>().map_err(|err| {
        if err.is_instance_of::<PyTypeError>(when.py()) {
            let name = when
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            PyTypeError::new_err(format!(
                "a timer's deadline must be a real number, not '{name}'"
            ))
        } else {
            err
        }
    })
}

impl LoopCore {
    /// Debug mode: non-thread-safe methods must be called from the loop's own thread.
    pub fn check_thread(&self, py: Python<'_>) -> PyResult<()> {
        match self.thread_id.get(py) {
            Some(owner) if owner != sys::thread_id() => Err(PyRuntimeError::new_err(
                "Non-thread-safe operation invoked on an event loop other than the current one",
            )),
            _ => Ok(()),
        }
    }

    /// A one-shot handle for `callback(*args)` on this loop.
    fn new_handle(
        slf: &Bound<'_, LoopCore>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Handle> {
        let py = slf.py();
        Handle::new(
            py,
            callback.unbind(),
            args.unbind(),
            context.map(Bound::unbind),
            slf.clone().unbind(),
            slf.get().debug.get(py),
            true,
        )
    }

    /// `call_soon(callback, *args)` for the loop's own components (transports): the current
    /// context, and only debug mode's thread check (asyncio's transports schedule through
    /// `call_soon`, so a transport closed from another thread fails there in debug mode).
    pub fn schedule_callback(
        slf: &Bound<'_, LoopCore>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.debug.get(py) {
            this.check_thread(py)?;
        }
        let handle = new_untracked(py, LoopCore::new_handle(slf, callback, args, None)?)?;
        this.push_ready(py, handle);
        Ok(())
    }

    /// Appends a handle to the ready queue (the common tail of call_soon and friends).
    pub fn push_ready(&self, py: Python<'_>, handle: Py<Handle>) {
        self.state
            .borrow_mut(py)
            .ready
            .push_back(Ready::Handle(handle));
    }

    fn schedule_timer(
        slf: &Bound<'_, LoopCore>,
        when: f64,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
        method: &str,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed(py)?;
        let debug = this.debug.get(py);
        if debug {
            this.check_thread(py)?;
        }
        check_callback(py, &callback, method, debug)?;
        let base = LoopCore::new_handle(slf, callback, args, context)?;
        base.set_scheduled(py, true);
        let timer = new_untracked(
            py,
            PyClassInitializer::from(base).add_subclass(TimerHandle::new(when)),
        )?;
        let queued: Py<Handle> = timer.bind(py).clone().into_super().unbind();
        this.state.borrow_mut(py).timers.push(when, queued);
        Ok(timer)
    }
}

#[pymethods]
impl LoopCore {
    /// A new `asyncio.Future` attached to this loop.
    fn create_future<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        static KW: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();
        let py = slf.py();
        let kwnames = stdlib::kwnames(py, &KW, &["loop"])?;
        stdlib::vectorcall(stdlib::future_type(py)?, [slf.as_any()], Some(kwnames))
    }

    /// Sets the factory `create_task` uses: `factory(loop, coro, context=None)`, or None for
    /// plain `asyncio.Task`.
    fn set_task_factory(&self, py: Python<'_>, factory: &Bound<'_, PyAny>) -> PyResult<()> {
        if !factory.is_none() && !factory.is_callable() {
            return Err(PyTypeError::new_err(
                "task factory must be a callable or None",
            ));
        }
        let new = if factory.is_none() {
            None
        } else {
            Some(factory.clone().unbind())
        };
        let old = std::mem::replace(&mut self.state.borrow_mut(py).task_factory, new);
        drop(old);
        Ok(())
    }

    fn get_task_factory(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.state
            .borrow(py)
            .task_factory
            .as_ref()
            .map(|f| f.clone_ref(py))
    }
}

/// The scheduling methods' bodies; Python reaches them through the fastcall methods below.
impl LoopCore {
    /// Schedules `callback(*args)` for the next iteration, in `context` (default: a copy of
    /// the current context). Returns a `Handle` that can cancel it.
    pub fn call_soon(
        slf: &Bound<'_, LoopCore>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed(py)?;
        let debug = this.debug.get(py);
        if debug {
            this.check_thread(py)?;
        }
        check_callback(py, &callback, "call_soon", debug)?;
        let handle = new_untracked(py, LoopCore::new_handle(slf, callback, args, context)?)?;
        this.push_ready(py, handle.clone_ref(py));
        Ok(handle)
    }

    /// `call_soon` from any thread: also wakes the loop if it is waiting for I/O.
    pub fn call_soon_threadsafe(
        slf: &Bound<'_, LoopCore>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed(py)?;
        check_callback(py, &callback, "call_soon_threadsafe", this.debug.get(py))?;
        let mut handle = LoopCore::new_handle(slf, callback, args, context)?;
        if versions::threadsafe_handle_waits_for_its_run(py)? {
            handle = handle.waited_for_by_other_threads();
        }
        let handle = new_untracked(py, handle)?;
        this.push_ready(py, handle.clone_ref(py));
        this.wake(py);
        Ok(handle)
    }

    /// Schedules `callback(*args)` to run `delay` seconds from now.
    pub fn call_later(
        slf: &Bound<'_, LoopCore>,
        delay: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        if delay.is_none() {
            return Err(PyTypeError::new_err("delay must not be None"));
        }
        let when = later_deadline(slf.py(), delay)?;
        LoopCore::schedule_timer(slf, when, callback, args, context, "call_at")
    }

    /// Schedules `callback(*args)` to run at `when`, a time on the loop's clock.
    pub fn call_at(
        slf: &Bound<'_, LoopCore>,
        when: &Bound<'_, PyAny>,
        callback: Bound<'_, PyAny>,
        args: Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        if when.is_none() {
            return Err(PyTypeError::new_err("when cannot be None"));
        }
        let when = deadline(when)?;
        LoopCore::schedule_timer(slf, when, callback, args, context, "call_at")
    }
}

/// `(callback, *args, context=None)`, after `leading` (call_later's delay, call_at's when).
struct CallbackArguments<'a, 'py> {
    leading: Option<Borrowed<'a, 'py, PyAny>>,
    callback: Bound<'py, PyAny>,
    args: Bound<'py, PyTuple>,
    context: Option<Bound<'py, PyAny>>,
}

impl<'a, 'py> CallbackArguments<'a, 'py> {
    /// As Python binds `def method(self, [leading,] callback, *args, context=None)`: the
    /// parameters before `*args` may also come as keywords when not given by position.
    fn read(args: &Arguments<'a, 'py>, method: &str, leading: Option<&str>) -> PyResult<Self> {
        let py = args.py();
        let first = usize::from(leading.is_some());
        if args.nargs() > first && !args.has_keywords() {
            // The commonest call of all: `call_soon(callback)`, by position.
            return Ok(CallbackArguments {
                leading: leading.map(|_| args.positional(0)),
                callback: args.positional(first).to_owned(),
                args: args.rest(first + 1)?,
                context: None,
            });
        }
        let context_name = pyo3::intern!(py, "context");
        // The common calls, by tasks and futures among others: every parameter before *args
        // by position, and at most `context=`, under the interned name CPython passes.
        let by_position = args.nargs() > first
            && match args.keyword_count() {
                0 => true,
                1 => args
                    .keywords()
                    .all(|(name, _)| name.as_ptr() == context_name.as_ptr()),
                _ => false,
            };
        if by_position {
            return Ok(CallbackArguments {
                leading: leading.map(|_| args.positional(0)),
                callback: args.positional(first).to_owned(),
                args: args.rest(first + 1)?,
                context: args
                    .keywords()
                    .next()
                    .map(|(_, context)| context)
                    .filter(|context| !context.is_none())
                    .map(|context| context.to_owned()),
            });
        }
        let names: &[&str] = match leading {
            Some(leading) => &[leading, "callback"],
            None => &["callback"],
        };
        let mut slots: [Option<Borrowed<'a, 'py, PyAny>>; 2] = [None, None];
        for (i, slot) in slots.iter_mut().enumerate().take(names.len()) {
            if i < args.nargs() {
                *slot = Some(args.positional(i));
            }
        }
        let mut context = None;
        for (name, value) in args.keywords() {
            if name.as_ptr() == pyo3::intern!(py, "context").as_ptr() || name.to_cow()? == "context"
            {
                context = Some(value);
                continue;
            }
            let given = name.to_cow()?;
            let Some(i) = names.iter().position(|n| *n == given) else {
                return Err(unexpected_keyword(method, &name));
            };
            if slots[i].replace(value).is_some() {
                return Err(PyTypeError::new_err(format!(
                    "{method}() got multiple values for argument '{given}'"
                )));
            }
        }
        if let Some(i) = slots.iter().take(names.len()).position(Option::is_none) {
            return Err(missing_positional(method, names[i]));
        }
        let [first, second] = slots;
        let (leading, callback) = match leading {
            Some(_) => (first, second),
            None => (None, first),
        };
        Ok(CallbackArguments {
            leading,
            callback: callback.expect("checked above").to_owned(),
            args: args.rest(names.len())?,
            context: context
                .filter(|context| !context.is_none())
                .map(|context| context.to_owned()),
        })
    }
}

macro_rules! scheduling_method {
    ($name:ident, $method:literal, $doc:literal, $leading:expr, |$slf:ident, $a:ident| $body:expr) => {
        pub struct $name;

        impl FastcallMethod for $name {
            const NAME: &'static str = $method;
            const DOC: &'static CStr = $doc;

            fn call<'py>(
                $slf: &Bound<'py, LoopCore>,
                arguments: &Arguments<'_, 'py>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let $a = CallbackArguments::read(arguments, $method, $leading)?;
                Ok($body?.into_bound($slf.py()).into_any())
            }
        }
    };
}

scheduling_method!(
    CallSoon,
    "call_soon",
    c"call_soon($self, callback, *args, context=None)\n--\n\n\
Schedules callback(*args) for the next iteration, in context (default: a copy of the \
current context). Returns a Handle that can cancel it.",
    None,
    |slf, a| LoopCore::call_soon(slf, a.callback, a.args, a.context)
);

scheduling_method!(
    CallSoonThreadsafe,
    "call_soon_threadsafe",
    c"call_soon_threadsafe($self, callback, *args, context=None)\n--\n\n\
call_soon from any thread: also wakes the loop if it is waiting for I/O.",
    None,
    |slf, a| LoopCore::call_soon_threadsafe(slf, a.callback, a.args, a.context)
);

scheduling_method!(
    CallLater,
    "call_later",
    c"call_later($self, delay, callback, *args, context=None)\n--\n\n\
Schedules callback(*args) to run delay seconds from now.",
    Some("delay"),
    |slf, a| LoopCore::call_later(
        slf,
        &a.leading.expect("read"),
        a.callback,
        a.args,
        a.context
    )
);

scheduling_method!(
    CallAt,
    "call_at",
    c"call_at($self, when, callback, *args, context=None)\n--\n\n\
Schedules callback(*args) to run at when, a time on the loop's clock.",
    Some("when"),
    |slf, a| LoopCore::call_at(
        slf,
        &a.leading.expect("read"),
        a.callback,
        a.args,
        a.context
    )
);

/// Puts the scheduling methods and `create_task` on the loop's native type.
pub fn install(loop_type: &Bound<'_, PyType>) -> PyResult<()> {
    kept_bound::install::<CallSoon>(loop_type, |core| &core.kept_call_soon)?;
    fastcall::install::<CallSoonThreadsafe>(loop_type)?;
    fastcall::install::<CallLater>(loop_type)?;
    fastcall::install::<CallAt>(loop_type)?;
    fastcall::install::<CreateTask>(loop_type)
}
