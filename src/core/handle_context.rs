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
//! out by `get_context()`. The exception: an unclosed loop dropped while a pending callback's
//! context holds a value that references the loop stays uncollected (the loop cannot report
//! what an untracked context holds).
//!
//! CPython's `Context` deallocator assumes a tracked object (it unlinks it from a GC list
//! unconditionally), so the copy is tracked again before the handle lets go of it.
//!
//! A context given by the caller (`context=`, what tasks pass) is never touched.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use super::gil_cell::GilFlag;

pub struct HandleContext {
    context: Py<PyAny>,
    /// True while `context` is the loop's own copy and out of the GC.
    untracked: GilFlag<bool>,
}

impl HandleContext {
    /// `given`, or else a copy of the current context.
    pub fn new(py: Python<'_>, given: Option<Py<PyAny>>) -> PyResult<HandleContext> {
        if let Some(context) = given {
            return Ok(HandleContext {
                context,
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
            context,
            untracked: GilFlag::new(true),
        })
    }

    /// The context, to run in; not to be kept.
    pub fn get(&self) -> &Py<PyAny> {
        &self.context
    }

    /// Reports the context when it is tracked: the GC ignores an untracked object, and
    /// `gc.get_referents` need not hand it out.
    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if self.untracked.get_unguarded() {
            return Ok(());
        }
        visit.call(&self.context)
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
