//! What the native transports have in common, written once: the loop and fd they work on
//! and their native watchers, the reading switches (`pause_reading`/`resume_reading`),
//! asyncio's start (`connection_made`, then reading, then the waiter) and end
//! (`_call_connection_lost` on the next iteration), write flow control and the repr.
//!
//! Each transport keeps its own behaviour (asyncio's socket, pipe and datagram transports
//! differ on purpose: which errors are quiet, what EOF and `write_eof` mean) and says what it
//! is through [`NativeTransport`]. The helpers here are generic over it, so each is compiled
//! for each transport: no dynamic dispatch and no extra allocation on the per-event paths.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::types::PyTuple;
use pyo3::{PyClass, PyTraverseError, PyVisit};

use super::flow_control::{water_marks, FlowControl};
use super::report::{call_flow_control, log_transport, report_fatal_error};
use crate::core::event_loop::LoopCore;
use crate::core::gil_cell::{GilCell, GilFlag};
use crate::core::handle::{new_untracked, Handle};
use crate::core::io_table::{Direction, NativeFn, NativeWatcher};
use crate::core::stdlib;
use crate::errors::{is_fatal_signal, os_error};
use crate::sys;

/// asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES: writes after the connection was lost are
/// dropped, with a warning once this many have been.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// The loop a transport runs on and the fd it reads and writes.
///
/// A transport made from an object the user keeps (`sock=`, `connect_accepted_socket`, a pipe)
/// works on its own duplicate of the fd, as uvloop does: closing the user's object cannot turn
/// the transport's number into someone else's connection. A transport made from a socket the
/// loop created uses that socket's fd, which only the transport closes (users reach it through
/// `asyncio.trsock.TransportSocket`, which has no `close()`). Either way the number is set to
/// -1 when the transport lets go of it, so a late call fails with EBADF rather than reach
/// whatever the kernel gives the number to next.
pub struct LoopFd {
    loop_: Py<LoopCore>,
    fd: GilFlag<RawFd>,
    /// The number of the object the transport was made from: what users see (`repr`) and what
    /// `add_reader`'s transport check looks up.
    shown_fd: RawFd,
    /// The transport's own duplicate, if it made one.
    duplicate: GilCell<Option<OwnedFd>>,
    /// The `contextvars.Context` every protocol callback of the transport runs in: the one
    /// current when the connection, endpoint or pipe was made, or, for a server's
    /// connection, a copy of the server's. Without it, a read would run the protocol in
    /// whatever context the loop itself runs in, and a variable one connection sets would be
    /// seen by every other connection. None only once cleared by the garbage collector.
    context: GilCell<Option<Py<PyAny>>>,
}

/// A transport's context, entered for the length of one native callback (a read or write
/// event) and left when dropped.
pub struct EnteredContext<'py> {
    context: Option<Bound<'py, PyAny>>,
}

impl Drop for EnteredContext<'_> {
    fn drop(&mut self) {
        if let Some(context) = self.context.take() {
            // SAFETY: entered by `LoopFd::enter_context`, on this thread, and still current:
            // every callback run inside it has returned.
            if unsafe { ffi::PyContext_Exit(context.as_ptr()) } < 0 {
                // Not current any more: a callback left a context it had not entered. Nothing
                // to restore, and nobody to tell.
                drop(PyErr::take(context.py()));
            }
        }
    }
}

/// Enters `context` (a `contextvars.Context`) until the guard is dropped. If it is current
/// already, or cannot be entered (it is entered further up the stack), or is not a Context,
/// what follows runs where it is.
pub fn enter_context<'py>(
    py: Python<'py>,
    context: Option<Bound<'py, PyAny>>,
) -> EnteredContext<'py> {
    let entered = context.filter(|c| {
        // SAFETY: a live object; PyContext_Enter is only called on an exact Context and
        // fails (exception set, taken below) if it is entered already.
        unsafe {
            ffi::PyContext_CheckExact(c.as_ptr()) != 0
                && (ffi::PyContext_Enter(c.as_ptr()) == 0 || {
                    drop(PyErr::take(py));
                    false
                })
        }
    });
    EnteredContext { context: entered }
}

/// `_run_in_context(context, fn)`: `fn()` in `context` (see [`enter_context`]), for the
/// Python face's paths into a protocol that start from a user's call (the TLS transport's
/// `close()` reads what is left, and calls the protocol, from wherever it is called).
#[pyfunction]
#[pyo3(name = "_run_in_context")]
pub fn run_in_context<'py>(
    context: Option<Bound<'py, PyAny>>,
    callable: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let _entered = enter_context(callable.py(), context.filter(|c| !c.is_none()));
    callable.call0()
}

impl LoopFd {
    /// `fileobj_fd` is the number of the object the transport is made from; `duplicate` says
    /// whether the user keeps that object (see above).
    pub fn new(
        event_loop: &Bound<'_, LoopCore>,
        fileobj_fd: RawFd,
        duplicate: bool,
        context: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<LoopFd> {
        if fileobj_fd < 0 {
            return Err(PyValueError::new_err(format!(
                "Invalid file descriptor: {fileobj_fd}"
            )));
        }
        let owned = if duplicate {
            Some(sys::dup_cloexec(fileobj_fd).map_err(os_error)?)
        } else {
            None
        };
        let context = match context.filter(|c| !c.is_none()) {
            Some(context) => context.clone().unbind(),
            // SAFETY: PyContext_CopyCurrent returns a new reference, or NULL with an
            // exception set.
            None => unsafe {
                Bound::from_owned_ptr_or_err(event_loop.py(), ffi::PyContext_CopyCurrent())?
                    .unbind()
            },
        };
        Ok(LoopFd {
            loop_: event_loop.clone().unbind(),
            fd: GilFlag::new(owned.as_ref().map_or(fileobj_fd, |o| o.as_raw_fd())),
            shown_fd: fileobj_fd,
            duplicate: GilCell::new(owned),
            context: GilCell::new(Some(context)),
        })
    }

    /// Enters the transport's context for a native callback (the caller keeps the guard
    /// while it runs protocol code). If that context is current already, or cannot be
    /// entered (it is entered further up the stack), the callback runs where it is.
    pub fn enter_context<'py>(&self, py: Python<'py>) -> EnteredContext<'py> {
        enter_context(
            py,
            self.context.borrow(py).as_ref().map(|c| c.bind(py).clone()),
        )
    }

    /// The transport's context (for `context=` of what it schedules).
    pub fn context(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.context.borrow(py).as_ref().map(|c| c.clone_ref(py))
    }

    /// Makes `context` the one the protocol's callbacks run in from now on: `start_tls` hands
    /// the connection to a new protocol, whose callbacks run where `start_tls` was called.
    pub fn set_context(&self, py: Python<'_>, context: &Bound<'_, PyAny>) {
        let old = self
            .context
            .borrow_mut(py)
            .replace(context.clone().unbind());
        drop(old);
    }

    /// Drops the context (`__clear__`: it may hold the transport in a variable).
    pub fn clear_context(&self) {
        let taken = self
            .context
            .try_borrow_mut_unguarded()
            .and_then(|mut c| c.take());
        drop(taken);
    }

    /// The fd to read and write; -1 once released.
    #[inline]
    pub fn fd(&self, py: Python<'_>) -> RawFd {
        self.fd.get(py)
    }

    /// The number users know the transport by.
    pub fn shown_fd(&self) -> RawFd {
        self.shown_fd
    }

    /// The transport is done with its fd (its watchers are removed): forget the number and
    /// close the duplicate, if any.
    pub fn release(&self, py: Python<'_>) {
        self.fd.set(py, -1);
        let duplicate = self.duplicate.borrow_mut(py).take();
        drop(duplicate);
    }

    #[inline]
    pub fn loop_ref<'py>(&self, py: Python<'py>) -> &Bound<'py, LoopCore> {
        self.loop_.bind(py)
    }

    /// The loop object (the `_loop` getter).
    pub fn loop_obj(&self, py: Python<'_>) -> Py<LoopCore> {
        self.loop_.clone_ref(py)
    }

    pub fn debug(&self, py: Python<'_>) -> bool {
        self.loop_.get().debug_enabled(py)
    }

    /// Calls `on_ready(loop, target)` whenever the fd is ready in `direction`.
    pub fn watch(
        &self,
        py: Python<'_>,
        direction: Direction,
        target: &Bound<'_, PyAny>,
        on_ready: NativeFn,
    ) -> PyResult<()> {
        let watcher = NativeWatcher {
            target: target.clone().unbind(),
            on_ready,
        };
        self.loop_
            .get()
            .set_native_watcher(py, self.fd(py), direction, watcher, None)
    }

    /// Stops watching the fd in `direction`, whoever's watcher is there (for a transport that
    /// owns its fd: nobody else can watch it).
    pub fn unwatch(&self, py: Python<'_>, direction: Direction) {
        let lp = self.loop_.get();
        if !lp.is_closed_flag(py) {
            // Cannot fail in a way the transport could act on (see IoTable::remove_watcher).
            let _ = lp.clear_watcher(py, self.fd(py), direction);
        }
    }

    /// Stops watching the fd in `direction` if the watcher there is still `target`'s (a fd
    /// the transport does not own: a user's `add_reader` may have replaced it).
    pub fn unwatch_own(&self, py: Python<'_>, direction: Direction, target: &Bound<'_, PyAny>) {
        let lp = self.loop_.get();
        if !lp.is_closed_flag(py) {
            lp.clear_watcher_of(py, self.fd(py), direction, target);
        }
    }

    /// Records `owner` as the transport owning the number of `fileobj` (None: the number is
    /// free again).
    pub fn set_owner(&self, py: Python<'_>, owner: Option<(Py<PyAny>, Option<Py<PyAny>>)>) {
        self.loop_.get().set_fd_owner(py, self.shown_fd, owner);
    }

    /// `loop.call_soon(obj.<method>, *args, context=<the transport's context>)`.
    pub fn schedule(
        &self,
        obj: &Bound<'_, PyAny>,
        method: &str,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        self.schedule_in(obj, method, args, self.context(obj.py()))
    }

    /// `loop.call_soon(obj.<method>, *args)` in a copy of the transport's context: what it
    /// sets there is not seen by the transport's later callbacks.
    pub fn schedule_in_copy(
        &self,
        obj: &Bound<'_, PyAny>,
        method: &str,
        args: Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        let py = obj.py();
        let copy = match self.context(py) {
            // SAFETY: a live Context (LoopFd::new took it from copy_context() or the
            // caller's Context); PyContext_Copy returns a new reference or NULL with an
            // exception set.
            Some(context) if unsafe { ffi::PyContext_CheckExact(context.as_ptr()) } != 0 => {
                Some(unsafe {
                    Bound::from_owned_ptr_or_err(py, ffi::PyContext_Copy(context.as_ptr()))?
                        .unbind()
                })
            }
            other => other,
        };
        self.schedule_in(obj, method, args, copy)
    }

    fn schedule_in(
        &self,
        obj: &Bound<'_, PyAny>,
        method: &str,
        args: Bound<'_, PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let py = obj.py();
        let lp = self.loop_ref(py);
        let core = lp.get();
        let debug = core.debug_enabled(py);
        if debug {
            // asyncio's transports schedule through call_soon: a transport closed from
            // another thread fails here in debug mode.
            core.check_thread(py)?;
        }
        let handle = Handle::new(
            py,
            obj.getattr(method)?.unbind(),
            args.unbind(),
            context,
            lp.clone().unbind(),
            debug,
            true,
        )?;
        core.push_ready(py, new_untracked(py, handle)?);
        Ok(())
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        if let Some(context) = self.context.try_borrow_unguarded() {
            if let Some(context) = context.as_ref() {
                visit.call(context)?;
            }
        }
        Ok(())
    }
}

/// The reading switches of asyncio's transports.
#[derive(Default)]
pub struct Lifecycle {
    /// close() was called or the transport failed (or, on a read pipe, EOF came): no more
    /// reading.
    pub closing: bool,
    /// pause_reading() is in force.
    pub paused: bool,
    /// The reader is installed: a read event queued before it was removed is ignored.
    pub reading: bool,
}

impl Lifecycle {
    /// `is_reading()`: neither closing nor paused.
    pub fn is_reading(&self) -> bool {
        !self.closing && !self.paused
    }
}

/// A native transport core, as the shared helpers see it.
pub trait NativeTransport: PyClass<Frozen = True> + Sync {
    /// Its mutable state (behind the GIL).
    type State;
    /// Whether the transport owns its fd in the loop's sense (sockets: `add_reader` on the fd
    /// is refused). Pipes do not, so they remove only their own watchers.
    const OWNS_FD: bool;

    fn io(&self) -> &LoopFd;
    fn state(&self) -> &GilCell<Self::State>;
    /// The `asyncio` transport the protocol sees, until the connection is lost.
    fn wrapper_of(st: &Self::State) -> Option<&Py<PyAny>>;
    fn protocol_of(st: &Self::State) -> Option<&Py<PyAny>>;
    /// The socket or pipe object the transport was made from, until it is closed.
    fn fileobj_of(st: &Self::State) -> Option<&Py<PyAny>>;
    /// Whether `_fatal_error` only logs `err` (in debug mode) instead of reporting it.
    fn is_quiet_error(py: Python<'_>, err: &PyErr) -> bool;
    /// What `_fatal_error` does once the error is reported: asyncio's `_force_close(exc)`
    /// for sockets, `_close(exc)` for pipes.
    fn close_after_error(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()>;

    /// Takes the wrapper and the protocol out of the state (`_loop_closed`); the caller
    /// drops them once the borrow has ended.
    fn take_peers(st: &mut Self::State) -> (Option<Py<PyAny>>, Option<Py<PyAny>>);

    fn wrapper(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        Self::wrapper_of(&self.state().borrow(py)).map(|w| w.clone_ref(py))
    }

    fn protocol_obj(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        Self::protocol_of(&self.state().borrow(py)).map(|p| p.clone_ref(py))
    }
}

/// A transport that reads, with asyncio's `pause_reading`/`resume_reading`.
pub trait ReadingTransport: NativeTransport {
    /// What runs when the fd is readable.
    const ON_READABLE: NativeFn;
    fn lifecycle(st: &mut Self::State) -> &mut Lifecycle;
}

/// A transport with a write buffer and asyncio's `_FlowControlMixin` water marks.
pub trait FlowControlled: NativeTransport {
    /// The flow-control state and the size of the write buffer.
    fn flow_control(st: &mut Self::State) -> (&mut FlowControl, usize);

    /// What `get_write_buffer_size()` reports: the buffer, unless some of it only waits for
    /// the end of the iteration (see the stream transport's `write_chunk`).
    fn reported_buffer_size(st: &mut Self::State) -> usize {
        Self::flow_control(st).1
    }
}

/// asyncio's `_SelectorTransport` (the socket transports): `close()` lets the write buffer
/// drain first, `_force_close()` drops it; `conn_lost` is set once `connection_lost` is
/// scheduled and counts the writes attempted after that.
pub trait SelectorTransport: ReadingTransport + FlowControlled {
    /// What the write buffer held, taken out to be dropped once the borrow has ended.
    type Dropped;
    fn conn_lost(st: &mut Self::State) -> &mut u32;
    fn take_write_buffer(st: &mut Self::State) -> Self::Dropped;
    /// Removes the writer, if it is installed.
    fn stop_writing(slf: &Bound<'_, Self>);
}

/// Stops watching the fd in `direction` (only the transport's own watcher if it does not
/// own the fd).
#[inline]
pub fn unwatch<T: NativeTransport>(slf: &Bound<'_, T>, direction: Direction) {
    let io = slf.get().io();
    if T::OWNS_FD {
        io.unwatch(slf.py(), direction);
    } else {
        io.unwatch_own(slf.py(), direction, slf.as_any());
    }
}

/// Installs `on_ready` for `direction` unless `switch` (a flag of the state) says it is
/// installed already; the switch is turned back off if installing fails.
#[inline]
pub fn watch_with<T: NativeTransport>(
    slf: &Bound<'_, T>,
    direction: Direction,
    on_ready: NativeFn,
    switch: impl Fn(&mut T::State) -> &mut bool,
) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();
    if std::mem::replace(switch(&mut this.state().borrow_mut(py)), true) {
        return Ok(());
    }
    let result = this.io().watch(py, direction, slf.as_any(), on_ready);
    if result.is_err() {
        *switch(&mut this.state().borrow_mut(py)) = false;
    }
    result
}

/// Removes the watcher `switch` says is installed for `direction`, and turns it off.
#[inline]
pub fn unwatch_with<T: NativeTransport>(
    slf: &Bound<'_, T>,
    direction: Direction,
    switch: impl Fn(&mut T::State) -> &mut bool,
) {
    let was_on = std::mem::replace(switch(&mut slf.get().state().borrow_mut(slf.py())), false);
    if was_on {
        unwatch(slf, direction);
    }
}

/// Installs the reader, unless closing, paused or reading already.
pub fn start_reading<T: ReadingTransport>(slf: &Bound<'_, T>) -> PyResult<()> {
    {
        let mut st = slf.get().state().borrow_mut(slf.py());
        let lifecycle = T::lifecycle(&mut st);
        if lifecycle.closing || lifecycle.paused {
            return Ok(());
        }
    }
    watch_with(slf, Direction::Read, T::ON_READABLE, |st| {
        &mut T::lifecycle(st).reading
    })
}

/// Removes the reader if it is installed.
pub fn stop_reading<T: ReadingTransport>(slf: &Bound<'_, T>) {
    unwatch_with(slf, Direction::Read, |st| &mut T::lifecycle(st).reading);
}

pub fn is_reading<T: ReadingTransport>(this: &T, py: Python<'_>) -> bool {
    T::lifecycle(&mut this.state().borrow_mut(py)).is_reading()
}

pub fn is_closing<T: ReadingTransport>(this: &T, py: Python<'_>) -> bool {
    T::lifecycle(&mut this.state().borrow_mut(py)).closing
}

pub fn is_paused<T: ReadingTransport>(this: &T, py: Python<'_>) -> bool {
    T::lifecycle(&mut this.state().borrow_mut(py)).paused
}

pub fn is_reader_installed<T: ReadingTransport>(this: &T, py: Python<'_>) -> bool {
    T::lifecycle(&mut this.state().borrow_mut(py)).reading
}

/// asyncio's `pause_reading()`: no more `data_received` until `resume_reading()`.
pub fn pause_reading<T: ReadingTransport>(slf: &Bound<'_, T>) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();
    {
        let mut st = this.state().borrow_mut(py);
        let lifecycle = T::lifecycle(&mut st);
        if lifecycle.closing || lifecycle.paused {
            return Ok(());
        }
        lifecycle.paused = true;
    }
    stop_reading(slf);
    if this.io().debug(py) {
        log_transport(py, "debug", "%r pauses reading", this.wrapper(py))?;
    }
    Ok(())
}

pub fn resume_reading<T: ReadingTransport>(slf: &Bound<'_, T>) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();
    {
        let mut st = this.state().borrow_mut(py);
        let lifecycle = T::lifecycle(&mut st);
        if lifecycle.closing || !lifecycle.paused {
            return Ok(());
        }
        lifecycle.paused = false;
    }
    start_reading(slf)?;
    if this.io().debug(py) {
        log_transport(py, "debug", "%r resumes reading", this.wrapper(py))?;
    }
    Ok(())
}

/// asyncio's `close()` of a socket transport: no more reading; `connection_lost(None)` on the
/// next iteration, or once the write buffer is flushed.
pub fn close<T: SelectorTransport>(slf: &Bound<'_, T>) -> PyResult<()> {
    let lose_now = {
        let mut st = slf.get().state().borrow_mut(slf.py());
        let lifecycle = T::lifecycle(&mut st);
        if lifecycle.closing {
            return Ok(());
        }
        lifecycle.closing = true;
        let lose_now = T::flow_control(&mut st).1 == 0;
        if lose_now {
            *T::conn_lost(&mut st) += 1;
        }
        lose_now
    };
    stop_reading(slf);
    if lose_now {
        T::stop_writing(slf);
        schedule_connection_lost(slf, None)?;
    }
    Ok(())
}

/// asyncio's `_force_close(exc)`: the write buffer is dropped, reading stops, and
/// `connection_lost(exc)` follows on the next iteration.
pub fn force_close<T: SelectorTransport>(
    slf: &Bound<'_, T>,
    exc: Option<Py<PyAny>>,
) -> PyResult<()> {
    let (dropped, was_closing) = {
        let mut st = slf.get().state().borrow_mut(slf.py());
        let conn_lost = T::conn_lost(&mut st);
        if *conn_lost > 0 {
            return Ok(());
        }
        *conn_lost += 1;
        let dropped = T::take_write_buffer(&mut st);
        (
            dropped,
            std::mem::replace(&mut T::lifecycle(&mut st).closing, true),
        )
    };
    drop(dropped);
    T::stop_writing(slf);
    if !was_closing {
        stop_reading(slf);
    }
    schedule_connection_lost(slf, exc)
}

/// Schedules `connection_made(wrapper)`, then `start` (a method of the core, if any), then
/// the waiter's result: asyncio's order, so no I/O callback precedes `connection_made`. A
/// transport that owns its fd is recorded as its owner first. `made_in_context`:
/// `connection_made` runs in the transport's context itself, so what it sets is seen by the
/// later callbacks (asyncio 3.15's stream transports); else in a copy of it.
pub fn begin<T: NativeTransport>(
    slf: &Bound<'_, T>,
    start: Option<&str>,
    waiter: Option<&Bound<'_, PyAny>>,
    made_in_context: bool,
) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();
    let io = this.io();
    let wrapper = this.wrapper(py);
    if T::OWNS_FD {
        let fileobj = T::fileobj_of(&this.state().borrow(py)).map(|f| f.clone_ref(py));
        io.set_owner(py, wrapper.as_ref().map(|w| (w.clone_ref(py), fileobj)));
    }
    io.loop_ref(py).get().register_transport(py, slf.as_any());
    if let (Some(protocol), Some(wrapper)) = (this.protocol_obj(py), wrapper) {
        let args = PyTuple::new(py, [wrapper])?;
        if made_in_context {
            io.schedule(protocol.bind(py), "connection_made", args)?;
        } else {
            io.schedule_in_copy(protocol.bind(py), "connection_made", args)?;
        }
    }
    if let Some(start) = start {
        io.schedule(slf.as_any(), start, PyTuple::empty(py))?;
    }
    if let Some(waiter) = waiter.filter(|w| !w.is_none()) {
        let set = stdlib::set_result_unless_cancelled(py)?.clone();
        LoopCore::schedule_callback(
            io.loop_ref(py),
            set,
            PyTuple::new(py, [waiter.clone(), py.None().into_bound(py)])?,
        )?;
    }
    Ok(())
}

/// `_call_connection_lost(exc)` on the next iteration.
pub fn schedule_connection_lost<T: NativeTransport>(
    slf: &Bound<'_, T>,
    exc: Option<Py<PyAny>>,
) -> PyResult<()> {
    let py = slf.py();
    let exc = exc.unwrap_or_else(|| py.None());
    slf.get().io().schedule(
        slf.as_any(),
        "_call_connection_lost",
        PyTuple::new(py, [exc])?,
    )
}

/// The end of a transport whose watchers are removed: it lets go of its fd, then
/// `protocol.connection_lost(exc)`, then `resource.close()` even if that raised.
pub fn finish(
    io: &LoopFd,
    py: Python<'_>,
    protocol: Option<Py<PyAny>>,
    resource: Option<Py<PyAny>>,
    exc: &Bound<'_, PyAny>,
) -> PyResult<()> {
    io.release(py);
    let lost = match &protocol {
        Some(p) => p.bind(py).call_method1("connection_lost", (exc,)).map(drop),
        None => Ok(()),
    };
    let closed = match &resource {
        Some(r) => r.bind(py).call_method0("close").map(drop),
        None => Ok(()),
    };
    drop((protocol, resource));
    lost.and(closed)
}

/// The transport is done (connection lost, or its resource released): the loop forgets it.
pub fn retire<T: NativeTransport>(slf: &Bound<'_, T>) {
    let py = slf.py();
    slf.get()
        .io()
        .loop_ref(py)
        .get()
        .unregister_transport(py, slf.as_any());
}

/// The end of a socket transport's `_release`: once the transport has let go of `sock`, stop
/// watching the fd and close the socket, without telling the protocol (the wrapper's
/// `__del__`, after its ResourceWarning, for a transport nobody closed).
pub fn release_socket<T: SelectorTransport>(
    slf: &Bound<'_, T>,
    sock: Option<Py<PyAny>>,
) -> PyResult<()> {
    let Some(sock) = sock else { return Ok(()) };
    let py = slf.py();
    stop_reading(slf);
    T::stop_writing(slf);
    let io = slf.get().io();
    io.set_owner(py, None);
    io.release(py);
    sock.bind(py).call_method0("close")?;
    Ok(())
}

/// The loop closed while the transport was open: let go of the wrapper and the protocol
/// (see `LoopCore::_close_core`).
pub fn loop_closed<T: NativeTransport>(slf: &Bound<'_, T>) {
    let peers = T::take_peers(&mut slf.get().state().borrow_mut(slf.py()));
    drop(peers);
}

/// asyncio's `_fatal_error`: the error is reported (or, when quiet for this transport, only
/// logged in debug mode), then the transport closes with it. SystemExit and
/// KeyboardInterrupt (from a protocol callback) are not the transport's to report: they leave
/// the loop.
pub fn fatal_error<T: NativeTransport>(
    slf: &Bound<'_, T>,
    err: PyErr,
    message: &str,
) -> PyResult<()> {
    let py = slf.py();
    if is_fatal_signal(py, &err) {
        return Err(err);
    }
    let this = slf.get();
    let quiet = T::is_quiet_error(py, &err);
    // into_value: the exception with its traceback attached (value() leaves it off).
    let exc = err.into_value(py).into_bound(py).into_any();
    report_fatal_error(
        this.io().loop_ref(py),
        &exc,
        message,
        quiet,
        this.wrapper(py),
        this.protocol_obj(py),
    )?;
    T::close_after_error(slf, exc.unbind())
}

/// Counts a write made after the connection was lost; true when it is one to warn about.
pub fn count_lost_write(conn_lost: &mut u32) -> bool {
    let warn = *conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES;
    *conn_lost += 1;
    warn
}

/// The warning for writes made after the connection was lost.
pub fn warn_lost_write(py: Python<'_>, message: &str) -> PyResult<()> {
    stdlib::asyncio_logger(py)?.call_method1("warning", (message,))?;
    Ok(())
}

/// `protocol.pause_writing()` once the buffer grows past the high-water mark.
pub fn maybe_pause_protocol<T: FlowControlled>(slf: &Bound<'_, T>) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();
    let pause = {
        let mut st = this.state().borrow_mut(py);
        let (flow, size) = T::flow_control(&mut st);
        flow.should_pause(size)
    };
    if pause {
        call_protocol_flow_control(slf, "pause_writing")?;
    }
    Ok(())
}

/// `protocol.resume_writing()` once the buffer drains to the low-water mark.
pub fn maybe_resume_protocol<T: FlowControlled>(slf: &Bound<'_, T>) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();
    let resume = {
        let mut st = this.state().borrow_mut(py);
        let (flow, size) = T::flow_control(&mut st);
        flow.should_resume(size)
    };
    if resume {
        call_protocol_flow_control(slf, "resume_writing")?;
    }
    Ok(())
}

fn call_protocol_flow_control<T: NativeTransport>(
    slf: &Bound<'_, T>,
    method: &str,
) -> PyResult<()> {
    let py = slf.py();
    let this = slf.get();
    // Paused from a write() in whatever context that runs: the protocol hears it in its own.
    let _context = this.io().enter_context(py);
    match this.protocol_obj(py) {
        Some(protocol) => call_flow_control(
            this.io().loop_ref(py),
            protocol.bind(py),
            method,
            this.wrapper(py),
        ),
        None => Ok(()),
    }
}

/// `get_write_buffer_size()`: the bytes waiting to be sent.
pub fn write_buffer_size<T: FlowControlled>(this: &T, py: Python<'_>) -> usize {
    T::reported_buffer_size(&mut this.state().borrow_mut(py))
}

/// `get_write_buffer_limits()`: `(low, high)`.
pub fn write_buffer_limits<T: FlowControlled>(this: &T, py: Python<'_>) -> (usize, usize) {
    T::flow_control(&mut this.state().borrow_mut(py)).0.limits()
}

/// `set_write_buffer_limits(high, low)` with asyncio's defaults and checks; the protocol is
/// paused at once if the buffer is already over the new high-water mark.
pub fn set_write_buffer_limits<T: FlowControlled>(
    slf: &Bound<'_, T>,
    high: Option<&Bound<'_, PyAny>>,
    low: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let py = slf.py();
    let (high, low) = water_marks(high, low)?;
    T::flow_control(&mut slf.get().state().borrow_mut(py))
        .0
        .set_limits(high, low);
    maybe_pause_protocol(slf)
}

pub fn protocol_paused<T: FlowControlled>(this: &T, py: Python<'_>) -> bool {
    T::flow_control(&mut this.state().borrow_mut(py))
        .0
        .is_paused()
}

/// The core's repr is the transport the protocol sees, so error reports about the core name
/// that transport.
pub fn repr<T: NativeTransport>(this: &T, py: Python<'_>) -> PyResult<String> {
    match this.wrapper(py) {
        Some(wrapper) => wrapper.bind(py).repr()?.extract(),
        None => Ok(format!(
            "<{} closed fd={}>",
            <T as PyClass>::NAME,
            this.io().shown_fd()
        )),
    }
}

/// The [`NativeTransport`] accessors every transport writes the same way, for a class with
/// `io` and `state` fields whose state holds `wrapper` and `protocol`. `protocol` is the
/// protocol object itself, or (second form) a struct that holds it in its `obj` field.
macro_rules! native_transport_fields {
    ($state:ty) => {
        $crate::transports::base::native_transport_fields!(@common $state);

        fn protocol_of(st: &$state) -> Option<&::pyo3::Py<::pyo3::PyAny>> {
            st.protocol.as_ref()
        }

        fn take_peers(
            st: &mut $state,
        ) -> (Option<::pyo3::Py<::pyo3::PyAny>>, Option<::pyo3::Py<::pyo3::PyAny>>) {
            (st.wrapper.take(), st.protocol.take())
        }
    };
    ($state:ty, obj) => {
        $crate::transports::base::native_transport_fields!(@common $state);

        fn protocol_of(st: &$state) -> Option<&::pyo3::Py<::pyo3::PyAny>> {
            st.protocol.as_ref().map(|p| &p.obj)
        }

        fn take_peers(
            st: &mut $state,
        ) -> (Option<::pyo3::Py<::pyo3::PyAny>>, Option<::pyo3::Py<::pyo3::PyAny>>) {
            (st.wrapper.take(), st.protocol.take().map(|p| p.obj))
        }
    };
    (@common $state:ty) => {
        type State = $state;

        fn io(&self) -> &$crate::transports::base::LoopFd {
            &self.io
        }

        fn state(&self) -> &$crate::core::gil_cell::GilCell<$state> {
            &self.state
        }

        fn wrapper_of(st: &$state) -> Option<&::pyo3::Py<::pyo3::PyAny>> {
            st.wrapper.as_ref()
        }
    };
}
pub(crate) use native_transport_fields;

// pyo3 methods cannot be generic, so the `#[pymethods]` that are the same for every native
// transport are written for each class by these macros, delegating to the helpers above.

/// `get_protocol()`, the `_fd` getter and the repr.
macro_rules! common_pymethods {
    ($transport:ident) => {
        #[::pyo3::pymethods]
        impl $transport {
            fn get_protocol(&self, py: ::pyo3::Python<'_>) -> Option<::pyo3::Py<::pyo3::PyAny>> {
                $crate::transports::base::NativeTransport::protocol_obj(self, py)
            }

            #[getter]
            fn _fd(&self) -> ::std::os::fd::RawFd {
                $crate::transports::base::NativeTransport::io(self).shown_fd()
            }

            /// The transport the protocol sees, so error reports about this core name it.
            fn __repr__(&self, py: ::pyo3::Python<'_>) -> ::pyo3::PyResult<String> {
                $crate::transports::base::repr(self, py)
            }

            /// Called by a closing loop (see `base::loop_closed`).
            fn _loop_closed(slf: &::pyo3::Bound<'_, Self>) {
                $crate::transports::base::loop_closed(slf)
            }
        }
    };
}
pub(crate) use common_pymethods;

/// `is_reading()`, `pause_reading()`, `resume_reading()`, `is_closing()`, `_start_reading`
/// (what `_begin` schedules) and the `_reading` and `_paused` getters.
macro_rules! reading_pymethods {
    ($transport:ident) => {
        #[::pyo3::pymethods]
        impl $transport {
            fn is_reading(&self, py: ::pyo3::Python<'_>) -> bool {
                $crate::transports::base::is_reading(self, py)
            }

            fn pause_reading(slf: &::pyo3::Bound<'_, Self>) -> ::pyo3::PyResult<()> {
                $crate::transports::base::pause_reading(slf)
            }

            fn resume_reading(slf: &::pyo3::Bound<'_, Self>) -> ::pyo3::PyResult<()> {
                $crate::transports::base::resume_reading(slf)
            }

            fn is_closing(&self, py: ::pyo3::Python<'_>) -> bool {
                $crate::transports::base::is_closing(self, py)
            }

            fn _start_reading(slf: &::pyo3::Bound<'_, Self>) -> ::pyo3::PyResult<()> {
                $crate::transports::base::start_reading(slf)
            }

            /// Whether the reader is installed.
            #[getter]
            fn _reading(&self, py: ::pyo3::Python<'_>) -> bool {
                $crate::transports::base::is_reader_installed(self, py)
            }

            /// Whether pause_reading() is in force.
            #[getter]
            fn _paused(&self, py: ::pyo3::Python<'_>) -> bool {
                $crate::transports::base::is_paused(self, py)
            }
        }
    };
}
pub(crate) use reading_pymethods;

/// `get_write_buffer_size()`, `get/set_write_buffer_limits()` and the `_protocol_paused`
/// getter.
macro_rules! flow_control_pymethods {
    ($transport:ident) => {
        #[::pyo3::pymethods]
        impl $transport {
            fn get_write_buffer_size(&self, py: ::pyo3::Python<'_>) -> usize {
                $crate::transports::base::write_buffer_size(self, py)
            }

            fn get_write_buffer_limits(&self, py: ::pyo3::Python<'_>) -> (usize, usize) {
                $crate::transports::base::write_buffer_limits(self, py)
            }

            /// asyncio's defaults: high 64 KiB, low a quarter of high; `high >= low >= 0`.
            #[pyo3(signature = (high=None, low=None))]
            fn set_write_buffer_limits(
                slf: &::pyo3::Bound<'_, Self>,
                high: Option<&::pyo3::Bound<'_, ::pyo3::PyAny>>,
                low: Option<&::pyo3::Bound<'_, ::pyo3::PyAny>>,
            ) -> ::pyo3::PyResult<()> {
                $crate::transports::base::set_write_buffer_limits(slf, high, low)
            }

            #[getter]
            fn _protocol_paused(&self, py: ::pyo3::Python<'_>) -> bool {
                $crate::transports::base::protocol_paused(self, py)
            }
        }
    };
}
pub(crate) use flow_control_pymethods;

/// `close()`, `abort()`, `_force_close(exc)` and the `_conn_lost` getter of a socket
/// transport.
macro_rules! selector_pymethods {
    ($transport:ident) => {
        #[::pyo3::pymethods]
        impl $transport {
            /// Stops reading; `connection_lost(None)` follows once the buffer is flushed.
            fn close(slf: &::pyo3::Bound<'_, Self>) -> ::pyo3::PyResult<()> {
                $crate::transports::base::close(slf)
            }

            /// Closes at once, dropping buffered data; `connection_lost(None)` follows.
            fn abort(slf: &::pyo3::Bound<'_, Self>) -> ::pyo3::PyResult<()> {
                $crate::transports::base::force_close(slf, None)
            }

            /// `abort()` with the exception `connection_lost` gets (asyncio's TLS layer uses it).
            #[pyo3(signature = (exc=None))]
            fn _force_close(
                slf: &::pyo3::Bound<'_, Self>,
                exc: Option<::pyo3::Bound<'_, ::pyo3::PyAny>>,
            ) -> ::pyo3::PyResult<()> {
                let exc = exc.filter(|e| !e.is_none()).map(::pyo3::Bound::unbind);
                $crate::transports::base::force_close(slf, exc)
            }

            #[getter]
            fn _conn_lost(&self, py: ::pyo3::Python<'_>) -> u32 {
                let this = $crate::transports::base::NativeTransport::state(self);
                *<Self as $crate::transports::base::SelectorTransport>::conn_lost(
                    &mut this.borrow_mut(py),
                )
            }
        }
    };
}
pub(crate) use selector_pymethods;
