//! The context a handle runs in.
//!
//! With no `context=` argument, a handle runs in a copy of the caller's context, as in
//! asyncio: one new `contextvars.Context` per `call_soon`, `call_soon_threadsafe` and
//! `call_later`. Contexts are GC-tracked objects, so a thread that floods the loop with
//! `call_soon_threadsafe` (or a program with 100,000 pending timers) fills the youngest GC
//! generation with them; each one then sits through several collections and is promoted into
//! the old generation, whose growth triggers full collections of the whole heap. Profiled,
//! that collecting was half of what a `call_soon_threadsafe` cost.
//!
//! So a copy made here stays out of the GC while the loop holds its handle. Nothing but the
//! handle refers to the copy (a running callback cannot reach its own context object:
//! `copy_context()` returns another copy), so a cycle through the copy runs through the
//! handle, and a handle that can be in a garbage cycle, one someone else holds after the loop
//! let go of it, is tracked again with its context (`Handle::expose`), as is a context handed
//! out by `get_context()`. While the copy is untracked and its handle's alone, the handle
//! reports what the copy references as its own (`traverse`), and the loop does the same for
//! handles only it holds: so an unclosed loop dropped while a pending callback's context
//! holds a value that references the loop is still collected, cycle and all.
//!
//! CPython's `Context` deallocator assumes a tracked object (it unlinks it from a GC list
//! unconditionally), so the copy is tracked again before the handle lets go of it.
//!
//! A context given by the caller (`context=`, what tasks pass) is never touched.

use std::ffi::{c_int, c_void};
use std::mem::ManuallyDrop;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use super::gil_cell::{GilFlag, GilPy};

pub struct HandleContext {
    context: GilPy<PyAny>,
    /// True while `context` is the loop's own copy and out of the GC.
    untracked: GilFlag<bool>,
}

impl HandleContext {
    /// `given`, or else a copy of the current context.
    pub fn new(py: Python<'_>, given: Option<Py<PyAny>>) -> PyResult<HandleContext> {
        if let Some(context) = given {
            return Ok(HandleContext {
                context: GilPy::new(context),
                untracked: GilFlag::new(false),
            });
        }
        // SAFETY: PyContext_CopyCurrent returns a new reference (or NULL with an exception
        // set). The copy is a fresh object only we reference; UnTrack accepts a tracked one.
        let context = unsafe {
            let copy = Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())?;
            ffi::PyObject_GC_UnTrack(copy.as_ptr().cast());
            copy.unbind()
        };
        Ok(HandleContext {
            context: GilPy::new(context),
            untracked: GilFlag::new(true),
        })
    }

    /// The context, to run in; not to be kept.
    pub fn get(&self) -> &Py<PyAny> {
        &self.context
    }

    /// Reports the context when it is tracked. An untracked copy is invisible to the GC (it
    /// ignores an untracked object), so what the copy references is reported instead, on its
    /// behalf, while this handle holds the only reference to it; with another holder (the
    /// thread state, while the callback runs in it) it is not: reporting a reference the GC
    /// cannot account for could have it free live objects, whereas leaving one out only
    /// keeps garbage for later.
    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if !self.untracked.get_unguarded() {
            return visit.call(&*self.context);
        }
        // SAFETY: reading the reference count of a live object we hold.
        if unsafe { ffi::Py_REFCNT(self.context.as_ptr()) } != 1 {
            return Ok(());
        }
        traverse_on_behalf_of(&self.context, visit)
    }

    /// Puts the loop's copy back under the GC: for a context that may now be kept elsewhere
    /// or take part in a cycle through its handle (see `Handle::expose`).
    pub fn track(&self, py: Python<'_>) {
        if self.untracked.get(py) {
            self.untracked.set(py, false);
            // SAFETY: the object is alive and, per the flag, not tracked.
            unsafe { ffi::PyObject_GC_Track(self.context.as_ptr().cast()) };
        }
    }
}

impl Drop for HandleContext {
    fn drop(&mut self) {
        // No `Python` token here: a HandleContext lives inside a Handle, which is dropped by
        // its Python object's deallocator or, if that object was never made, inside
        // `Handle::new`'s caller; both hold the GIL.
        if self.untracked.get_unguarded() {
            // SAFETY: the object is alive (we still own a reference) and, per the flag, not
            // tracked.
            unsafe { ffi::PyObject_GC_Track(self.context.as_ptr().cast()) };
        }
    }
}

/// Calls `object`'s own `tp_traverse` with a visitor that hands each referent to `visit`: the
/// GC then sees them as referenced by whatever `visit` belongs to.
fn traverse_on_behalf_of(object: &Py<PyAny>, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
    struct Forward<'a, 'b> {
        visit: &'a PyVisit<'b>,
        error: Option<PyTraverseError>,
    }

    unsafe extern "C" fn forward(referent: *mut ffi::PyObject, arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `Forward` below, alive for the whole tp_traverse call; the GC
        // traverses with the thread attached. `referent` is a live object (Py_VISIT passes
        // no NULL) borrowed for the call: wrapped without a new reference and never
        // released, so its count is left as it was.
        unsafe {
            let state = &mut *arg.cast::<Forward<'_, '_>>();
            let py = Python::assume_attached();
            let referent = ManuallyDrop::new(Bound::from_owned_ptr(py, referent).unbind());
            match state.visit.call(&*referent) {
                Ok(()) => 0,
                Err(err) => {
                    state.error = Some(err);
                    -1
                }
            }
        }
    }

    let mut state = Forward { visit, error: None };
    // SAFETY: `object` is alive; its type's tp_traverse only reads its fields and calls the
    // visitor, which upholds the visitproc contract.
    let failed = unsafe {
        let ptr = object.as_ptr();
        match (*ffi::Py_TYPE(ptr)).tp_traverse {
            Some(traverse) => {
                traverse(ptr, forward, (&mut state as *mut Forward<'_, '_>).cast()) != 0
            }
            None => false,
        }
    };
    match state.error {
        Some(err) if failed => Err(err),
        _ => Ok(()),
    }
}
