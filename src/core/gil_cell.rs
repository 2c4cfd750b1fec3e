//! Interior mutability guarded by the GIL.
//!
//! Loop, handle and transport state is touched only by code holding the GIL (every entry point
//! is a Python call), and the module declares `gil_used = true`, so the GIL is what serialises
//! access. A `RefCell` inside turns an accidental re-entrant borrow into a panic instead of
//! undefined behaviour.
//!
//! The rule that keeps borrows from overlapping: **never run Python code while a borrow is
//! alive**. That includes creating Python objects (the GC may run finalizers) and dropping
//! them (`__del__`, weakref callbacks). Move values out of the state, let the borrow end, then
//! call or drop them.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::mem::ManuallyDrop;
use std::ops::Deref;

use pyo3::{Py, Python};

pub struct GilCell<T>(RefCell<T>);

// SAFETY: every accessor takes a `Python` token, which in a GIL build proves the GIL is held,
// so no two threads reach the RefCell at once; the values themselves are `Send`.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub const fn new(value: T) -> Self {
        GilCell(RefCell::new(value))
    }

    #[inline]
    pub fn borrow<'a>(&'a self, _py: Python<'_>) -> Ref<'a, T> {
        self.0.borrow()
    }

    #[inline]
    pub fn borrow_mut<'a>(&'a self, _py: Python<'_>) -> RefMut<'a, T> {
        self.0.borrow_mut()
    }

    /// For `__traverse__`, which runs inside the GC without a `Python` token and may interrupt
    /// a borrow: a `None` here only means those references go unreported this time.
    pub fn try_borrow_unguarded(&self) -> Option<Ref<'_, T>> {
        self.0.try_borrow().ok()
    }

    /// For `__clear__`, likewise: a `None` leaves the references for a later collection.
    pub fn try_borrow_mut_unguarded(&self) -> Option<RefMut<'_, T>> {
        self.0.try_borrow_mut().ok()
    }
}

/// A `Copy` value guarded by the GIL; no borrow bookkeeping at all.
pub struct GilFlag<T: Copy>(Cell<T>);

// SAFETY: as for GilCell.
unsafe impl<T: Copy + Send> Sync for GilFlag<T> {}

impl<T: Copy> GilFlag<T> {
    pub const fn new(value: T) -> Self {
        GilFlag(Cell::new(value))
    }

    #[inline]
    pub fn get(&self, _py: Python<'_>) -> T {
        self.0.get()
    }

    #[inline]
    pub fn set(&self, _py: Python<'_>, value: T) {
        self.0.set(value)
    }

    /// For `__traverse__` and `Drop`, which run under the GIL without a `Python` token.
    #[inline]
    pub fn get_unguarded(&self) -> T {
        self.0.get()
    }
}

/// A `Py` owned by a value that is only ever dropped with the GIL held (a handle's fields: a
/// handle is freed by its Python object's deallocator, or dropped by the loop code that made
/// it). Released by a plain decref, where dropping a `Py` first asks the thread-local state
/// whether the thread is attached: on the path every callback takes, that lookup shows.
pub struct GilPy<T>(ManuallyDrop<Py<T>>);

impl<T> GilPy<T> {
    pub fn new(object: Py<T>) -> Self {
        GilPy(ManuallyDrop::new(object))
    }
}

impl<T> Deref for GilPy<T> {
    type Target = Py<T>;

    #[inline]
    fn deref(&self) -> &Py<T> {
        &self.0
    }
}

impl<T> Drop for GilPy<T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the GIL is held (see above); we own this reference and give it up once.
        unsafe { pyo3::ffi::Py_DECREF(self.0.as_ptr()) }
    }
}
